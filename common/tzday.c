/*  tzday - calendar days in a named time zone (see tzday.h).
 *
 *  A TZif file: a v1 block with 32-bit times, then (version '2' and later) a header and
 *  block again with 64-bit times, which is the one read here.  Only transition times,
 *  their type indices and each type's UT offset are needed.
 */
#include "tzday.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_FILE   (256 * 1024)
#define S_MAX_TRANS  10000

struct _mesh_tz_t {
    char name[128];
    size_t count;                   //  transitions
    int64_t *at;                    //  transition times, ascending
    int32_t *offset;                //  the offset in force from at[i]
    int32_t first;                  //  the offset before the first transition
};

static uint32_t
s_be32 (const unsigned char *p)
{
    return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

static bool
s_name_ok (const char *name)
{
    size_t length = strlen (name);
    if (length == 0 || length >= 100 || name[0] == '/' || strstr (name, ".."))
        return false;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')
              || *c == '_' || *c == '-' || *c == '+' || *c == '/'))
            return false;
    return true;
}

//  Parse the counts of a header at P (44 bytes); false if it is not one.
static bool
s_header (const unsigned char *p, size_t left, uint32_t counts[6])
{
    if (left < 44 || memcmp (p, "TZif", 4) != 0)
        return false;
    for (int i = 0; i < 6; i++)
        counts[i] = s_be32 (p + 20 + 4 * i);    //  isut, isstd, leap, time, type, char
    return counts[3] <= S_MAX_TRANS && counts[4] >= 1 && counts[4] <= 256;
}

//  The size of a data block with COUNTS and time size TS.
static size_t
s_block (const uint32_t counts[6], size_t ts)
{
    return counts[3] * ts + counts[3] + counts[4] * 6 + counts[5] + counts[2] * (ts + 4)
           + counts[1] + counts[0];
}

mesh_tz_t *
mesh_tz_load (const char *name, char *why, size_t why_size)
{
    if (!name || !s_name_ok (name)) {
        snprintf (why, why_size, "'%.100s' is not a time zone name (like UTC or Europe/Berlin)",
                  name ? name : "");
        return NULL;
    }
    const char *dir = getenv ("TZDIR");
    char path[512];
    snprintf (path, sizeof path, "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", name);
    FILE *file = fopen (path, "rbe");
    if (!file) {
        snprintf (why, why_size, "time zone '%s': cannot read %s: %s", name, path,
                  strerror (errno));
        return NULL;
    }
    unsigned char *data = malloc (S_MAX_FILE);
    size_t size = data ? fread (data, 1, S_MAX_FILE, file) : 0;
    fclose (file);
    uint32_t c1[6], c2[6];
    mesh_tz_t *self = NULL;
    if (!data || !s_header (data, size, c1)) {
        snprintf (why, why_size, "time zone '%s': %s is not a TZif file", name, path);
        goto done;
    }
    size_t at = 44 + s_block (c1, 4);
    bool v2 = data[4] >= '2' && at <= size && s_header (data + at, size - at, c2);
    const uint32_t *c = v2 ? c2 : c1;
    size_t ts = v2 ? 8 : 4;
    const unsigned char *p = data + (v2 ? at + 44 : 44);
    if ((size_t) (p - data) + s_block (c, ts) > size) {
        snprintf (why, why_size, "time zone '%s': %s is cut short", name, path);
        goto done;
    }
    self = calloc (1, sizeof *self);
    if (!self || !(self->at = calloc (c[3] + 1, sizeof *self->at))
        || !(self->offset = calloc (c[3] + 1, sizeof *self->offset))) {
        snprintf (why, why_size, "out of memory");
        mesh_tz_destroy (&self);
        goto done;
    }
    snprintf (self->name, sizeof self->name, "%s", name);
    const unsigned char *times = p, *idx = p + c[3] * ts, *types = idx + c[3];
    for (uint32_t i = 0; i < c[3]; i++) {
        int64_t t = ts == 8 ? (int64_t) ((uint64_t) s_be32 (times + 8 * i) << 32
                                         | s_be32 (times + 8 * i + 4))
                            : (int32_t) s_be32 (times + 4 * i);
        if (idx[i] >= c[4] || (i > 0 && t <= self->at[i - 1])) {
            snprintf (why, why_size, "time zone '%s': %s has a bad transition table", name, path);
            mesh_tz_destroy (&self);
            goto done;
        }
        self->at[i] = t;
        self->offset[i] = (int32_t) s_be32 (types + 6 * idx[i]);
    }
    self->count = c[3];
    self->first = (int32_t) s_be32 (types);     //  RFC 8536: type 0 before the first
    for (uint32_t i = 0; i < c[4]; i++) {
        int32_t off = (int32_t) s_be32 (types + 6 * i);
        if (off < -26 * 3600 || off > 26 * 3600) {
            snprintf (why, why_size, "time zone '%s': an offset of %d s", name, off);
            mesh_tz_destroy (&self);
            goto done;
        }
    }
done:
    free (data);
    return self;
}

void
mesh_tz_destroy (mesh_tz_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free ((*self_p)->at);
    free ((*self_p)->offset);
    free (*self_p);
    *self_p = NULL;
}

const char *
mesh_tz_name (const mesh_tz_t *self)
{
    return self->name;
}

int32_t
mesh_tz_offset (const mesh_tz_t *self, int64_t t)
{
    if (self->count == 0 || t < self->at[0])
        return self->first;
    size_t lo = 0, hi = self->count;        //  the last transition at or before t
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (self->at[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return self->offset[lo];
}

static int64_t
s_floor_day (int64_t local)
{
    int64_t day = local / 86400;
    if (local % 86400 < 0)
        day--;
    return day * 86400;
}

//  The instant local midnight LOCAL_MIDNIGHT happens (offsets may differ either side of
//  it; a midnight skipped by a transition starts the day at the transition).
static int64_t
s_midnight (const mesh_tz_t *self, int64_t local_midnight, int32_t hint)
{
    int64_t guess = local_midnight - hint;
    int32_t off = mesh_tz_offset (self, guess);
    guess = local_midnight - off;
    if (mesh_tz_offset (self, guess) != off) {
        //  No instant has this local time (a gap at midnight): the day starts when the
        //  gap ends, the first transition after the guess.
        for (size_t i = 0; i < self->count; i++)
            if (self->at[i] > guess - 26 * 3600 && self->at[i] + self->offset[i] >= local_midnight)
                return self->at[i];
    }
    return guess;
}

int64_t
mesh_tz_day_start (const mesh_tz_t *self, int64_t t, int64_t *next_p)
{
    int32_t off = mesh_tz_offset (self, t);
    int64_t midnight = s_floor_day (t + off);
    int64_t start = s_midnight (self, midnight, off);
    if (start > t)                      //  a day that started "late" because of a gap
        start = s_midnight (self, midnight - 86400, off);
    if (next_p)
        *next_p = s_midnight (self, midnight + 86400, off);
    return start;
}

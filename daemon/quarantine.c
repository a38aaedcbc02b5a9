/*  quarantine - the strike table (quarantine.h).
 *
 *  A flat array, searched linearly: it holds the positions that killed an agent, which
 *  are few (each costs a death and a restart) and bounded by MESH_QUARANTINE_MAX.  The
 *  file is the table in JSON, rewritten whole at each change:
 *
 *      {"version":1,"positions":[{"agent","topic","partition","offset","strikes",
 *                                 "quarantined","at"}]}
 *
 *  `at` is the wall-clock time of the last strike (ms): the order of "most recent".
 */
#include "quarantine.h"
#include "log.h"

#include <czmq.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    char *agent;
    mesh_inflight_pos_t pos;
    int strikes;
    bool quarantined;
    int64_t at;
} s_entry_t;

struct _mesh_quarantine_t {
    char *path;
    s_entry_t *entries;
    size_t count, cap;
};

static bool
s_same (const s_entry_t *e, const char *agent, const mesh_inflight_pos_t *pos)
{
    return e->pos.offset == pos->offset && e->pos.partition == pos->partition
           && strcmp (e->pos.topic, pos->topic) == 0 && strcmp (e->agent, agent) == 0;
}

static s_entry_t *
s_find (mesh_quarantine_t *self, const char *agent, const mesh_inflight_pos_t *pos)
{
    for (size_t i = 0; i < self->count; i++)
        if (s_same (&self->entries[i], agent, pos))
            return &self->entries[i];
    return NULL;
}

static void
s_remove (mesh_quarantine_t *self, size_t i)
{
    free (self->entries[i].agent);
    self->entries[i] = self->entries[--self->count];
}

//  Room for one more: forget the oldest entry with strikes only, else the oldest one.
static void
s_make_room (mesh_quarantine_t *self)
{
    if (self->count < MESH_QUARANTINE_MAX)
        return;
    size_t victim = 0;
    for (int pass = 0; pass < 2; pass++) {
        bool found = false;
        for (size_t i = 0; i < self->count; i++) {
            if (pass == 0 && self->entries[i].quarantined)
                continue;
            if (!found || self->entries[i].at < self->entries[victim].at)
                victim = i;
            found = true;
        }
        if (found)
            break;
    }
    mesh_warn ("quarantine: table full (%d positions): forgetting %s %s[%d]@%lld",
               MESH_QUARANTINE_MAX, self->entries[victim].agent, self->entries[victim].pos.topic,
               self->entries[victim].pos.partition, (long long) self->entries[victim].pos.offset);
    s_remove (self, victim);
}

static s_entry_t *
s_add (mesh_quarantine_t *self, const char *agent, const mesh_inflight_pos_t *pos)
{
    s_make_room (self);
    if (self->count == self->cap) {
        self->cap = self->cap ? self->cap * 2 : 16;
        self->entries = realloc (self->entries, self->cap * sizeof *self->entries);
    }
    s_entry_t *e = &self->entries[self->count++];
    *e = (s_entry_t) {.agent = strdup (agent), .pos = *pos};
    return e;
}

static void
s_save (mesh_quarantine_t *self)
{
    if (!self->path)
        return;
    json_t *list = json_array ();
    for (size_t i = 0; i < self->count; i++) {
        s_entry_t *e = &self->entries[i];
        json_array_append_new (list, json_pack ("{ss ss si sI si sb sI}", "agent", e->agent,
                                                "topic", e->pos.topic, "partition",
                                                (int) e->pos.partition, "offset",
                                                (json_int_t) e->pos.offset, "strikes",
                                                e->strikes, "quarantined", e->quarantined,
                                                "at", (json_int_t) e->at));
    }
    json_t *doc = json_pack ("{si so}", "version", 1, "positions", list);
    char *tmp = zsys_sprintf ("%s.tmp", self->path);
    FILE *file = fopen (tmp, "w");
    bool ok = file && json_dumpf (doc, file, JSON_COMPACT) == 0 && fputc ('\n', file) != EOF
              && fflush (file) == 0 && fsync (fileno (file)) == 0;
    int err = errno;
    if (file && fclose (file) != 0)
        ok = false;
    if (ok && rename (tmp, self->path) != 0) {
        ok = false;
        err = errno;
    }
    if (!ok) {
        mesh_err ("quarantine: cannot write %s: %s; strikes are kept in memory only",
                  self->path, strerror (err));
        unlink (tmp);
    }
    free (tmp);
    json_decref (doc);
}

//  One entry of the file, or a complaint naming its index.
static void
s_load_entry (mesh_quarantine_t *self, json_t *item, size_t index)
{
    const char *agent = json_string_value (json_object_get (item, "agent"));
    const char *topic = json_string_value (json_object_get (item, "topic"));
    json_t *partition = json_object_get (item, "partition");
    json_t *offset = json_object_get (item, "offset");
    json_t *strikes = json_object_get (item, "strikes");
    if (!agent || !*agent || !topic || !mesh_inflight_topic_valid (topic, strlen (topic))
        || !json_is_integer (partition) || json_integer_value (partition) < 0
        || json_integer_value (partition) > INT32_MAX || !json_is_integer (offset)
        || json_integer_value (offset) < 0 || !json_is_integer (strikes)
        || json_integer_value (strikes) < 1
        || json_integer_value (strikes) > MESH_QUARANTINE_AFTER_MAX) {
        mesh_warn ("quarantine: %s: positions[%zu] is not a valid position (agent, topic, "
                   "partition, offset, strikes 1..%d); skipped", self->path, index,
                   MESH_QUARANTINE_AFTER_MAX);
        return;
    }
    mesh_inflight_pos_t pos = {.partition = (int32_t) json_integer_value (partition),
                               .offset = json_integer_value (offset)};
    snprintf (pos.topic, sizeof pos.topic, "%s", topic);
    if (s_find (self, agent, &pos))
        return;
    s_entry_t *e = s_add (self, agent, &pos);
    e->strikes = (int) json_integer_value (strikes);
    e->quarantined = json_is_true (json_object_get (item, "quarantined"));
    e->at = json_integer_value (json_object_get (item, "at"));
}

mesh_quarantine_t *
mesh_quarantine_new (const char *path)
{
    mesh_quarantine_t *self = calloc (1, sizeof *self);
    self->path = path ? strdup (path) : NULL;
    if (!path || access (path, F_OK) != 0)
        return self;
    json_error_t jerr;
    json_t *doc = json_load_file (path, JSON_REJECT_DUPLICATES, &jerr);
    json_t *list = json_object_get (doc, "positions");
    if (!doc || !json_is_array (list)) {
        char *aside = zsys_sprintf ("%s.bad", path);
        if (!doc)
            mesh_err ("quarantine: %s:%d:%d: %s; moved aside to %s, strikes start afresh",
                      path, jerr.line, jerr.column, jerr.text, aside);
        else
            mesh_err ("quarantine: %s:1:1: no \"positions\" list; moved aside to %s, strikes "
                      "start afresh", path, aside);
        rename (path, aside);
        free (aside);
        json_decref (doc);
        return self;
    }
    size_t i;
    json_t *item;
    json_array_foreach (list, i, item)
        s_load_entry (self, item, i);
    json_decref (doc);
    size_t quarantined = 0;
    for (size_t k = 0; k < self->count; k++)
        quarantined += self->entries[k].quarantined;
    if (self->count)
        mesh_info ("quarantine: %zu position(s) with strikes, %zu quarantined (%s)",
                   self->count, quarantined, path);
    return self;
}

void
mesh_quarantine_destroy (mesh_quarantine_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mesh_quarantine_t *self = *self_p;
    while (self->count)
        s_remove (self, 0);
    free (self->entries);
    free (self->path);
    free (self);
    *self_p = NULL;
}

int
mesh_quarantine_strike (mesh_quarantine_t *self, const char *agent,
                        const mesh_inflight_pos_t *pos, int limit, bool *reached)
{
    *reached = false;
    s_entry_t *e = s_find (self, agent, pos);
    if (!e)
        e = s_add (self, agent, pos);
    if (e->strikes < MESH_QUARANTINE_AFTER_MAX)
        e->strikes++;
    e->at = zclock_time ();
    if (!e->quarantined && e->strikes >= limit) {
        e->quarantined = true;
        *reached = true;
    }
    int strikes = e->strikes;
    s_save (self);
    return strikes;
}

void
mesh_quarantine_clear (mesh_quarantine_t *self, const char *agent,
                       const mesh_inflight_pos_t *pos)
{
    s_entry_t *e = s_find (self, agent, pos);
    if (!e || e->quarantined)
        return;
    s_remove (self, (size_t) (e - self->entries));
    s_save (self);
}

//  Whether A comes before B among marks: quarantined first, then most recent.
static bool
s_before (const s_entry_t *a, const s_entry_t *b)
{
    if (a->quarantined != b->quarantined)
        return a->quarantined;
    return a->at > b->at;
}

size_t
mesh_quarantine_marks (mesh_quarantine_t *self, const char *agent, mesh_inflight_pos_t *pos,
                       bool *quarantined, size_t max)
{
    //  Selection: MAX is small (MESH_INFLIGHT_MARKS) and so is the table in practice.
    const s_entry_t *chosen[MESH_INFLIGHT_MARKS];
    size_t n = 0;
    if (max > MESH_INFLIGHT_MARKS)
        max = MESH_INFLIGHT_MARKS;
    for (size_t i = 0; i < self->count; i++) {
        const s_entry_t *e = &self->entries[i];
        if (strcmp (e->agent, agent) != 0)
            continue;
        size_t at = n;
        while (at > 0 && s_before (e, chosen[at - 1]))
            at--;
        if (at >= max)
            continue;
        if (n < max)
            n++;
        memmove (&chosen[at + 1], &chosen[at], (n - 1 - at) * sizeof *chosen);
        chosen[at] = e;
    }
    for (size_t i = 0; i < n; i++) {
        pos[i] = chosen[i]->pos;
        quarantined[i] = chosen[i]->quarantined;
    }
    return n;
}

size_t
mesh_quarantine_count (mesh_quarantine_t *self, const char *agent)
{
    size_t n = 0;
    for (size_t i = 0; i < self->count; i++)
        n += self->entries[i].quarantined && strcmp (self->entries[i].agent, agent) == 0;
    return n;
}

size_t
mesh_quarantine_suspects (mesh_quarantine_t *self, const char *agent)
{
    size_t n = 0;
    for (size_t i = 0; i < self->count; i++)
        n += !self->entries[i].quarantined && strcmp (self->entries[i].agent, agent) == 0;
    return n;
}

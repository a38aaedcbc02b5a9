/*  silence - operator mutes over key fields, in wall-clock time.
 *
 *  A set is a plain array: silences are few (an operator types each one), and a
 *  point is checked against them only when it is anomalous, so a linear scan of
 *  compiled matchers costs nothing that matters and keeps the order stable (the
 *  first match names the silence in the counters).  Regular expressions are
 *  compiled once, when a silence enters the set, wrapped as ^(re)$ so that they
 *  match the whole value as Alertmanager's do.
 *
 *  The file is JSON, {"version": 1, "silences": [...]}, with times as RFC 3339
 *  strings so that an operator can read and, in a pinch, edit it.  A file that
 *  does not parse leaves the set as it was (an agent keeps muting what it muted);
 *  an entry that does not check is skipped with a warning rather than taking the
 *  other silences down with it.  Writes go through a temporary file, fsync and
 *  rename, so a reader sees the old file or the new one, never half of one; a lock
 *  file serialises concurrent meshctl edits.
 */
#include "silence.h"
#include "config.h"
#include "log.h"
#include "proto.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <regex.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define S_VALUE_MAX 1024                //  bytes of a matcher's value or regex
#define S_NAME_MAX 256                  //  bytes of a matcher's field name
#define S_COMMENT_MAX 1024
#define S_FILE_MAX (16 * 1024 * 1024)   //  a larger silences file is refused

typedef enum { S_EQ, S_NE, S_RE, S_NRE } s_op_t;

typedef struct {
    char *text;                         //  as written, for listings
    char *name;
    s_op_t op;
    char *value;
    regex_t regex;                      //  S_RE, S_NRE
} s_matcher_t;

typedef struct {
    char *id;
    s_matcher_t *matchers;
    size_t matcher_count;
    int64_t starts_ms, ends_ms, created_ms;     //  0: unbounded / unknown
    char *comment;
} s_silence_t;

struct _mesh_silences_t {
    s_silence_t *items;
    size_t count, alloc;
    bool file_seen;                     //  refresh: the identity of the file last read
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
};

//  --- matchers, times, durations --------------------------------------------------

//  Split TEXT into name, op and value (pointers into TEXT; name not terminated).
static int
s_split (const char *text, size_t *name_len, s_op_t *op, const char **value, char *why,
         size_t why_size)
{
    size_t n = strcspn (text, "=!~");
    if (n == 0) {
        snprintf (why, why_size, "matcher '%.64s' has no field name (expected field=value, "
                  "field!=value, field=~regex or field!~regex)", text);
        return -1;
    }
    const char *rest = text + n;
    if (!strncmp (rest, "=~", 2))
        *op = S_RE, *value = rest + 2;
    else
    if (!strncmp (rest, "!~", 2))
        *op = S_NRE, *value = rest + 2;
    else
    if (!strncmp (rest, "!=", 2))
        *op = S_NE, *value = rest + 2;
    else
    if (*rest == '=')
        *op = S_EQ, *value = rest + 1;
    else {
        snprintf (why, why_size, "matcher '%.64s' has no operator (expected field=value, "
                  "field!=value, field=~regex or field!~regex)", text);
        return -1;
    }
    if (n > S_NAME_MAX || strlen (*value) > S_VALUE_MAX) {
        snprintf (why, why_size, "matcher '%.64s...' is too long (name at most %d bytes, "
                  "value at most %d)", text, S_NAME_MAX, S_VALUE_MAX);
        return -1;
    }
    for (const unsigned char *p = (const unsigned char *) text; *p; p++)
        if (*p < 0x20 || *p == 0x7f) {
            snprintf (why, why_size, "matcher has a control character");
            return -1;
        }
    *name_len = n;
    return 0;
}

static int
s_compile (regex_t *regex, const char *value, char *why, size_t why_size)
{
    char anchored[S_VALUE_MAX + 8];
    snprintf (anchored, sizeof anchored, "^(%s)$", value);
    int rc = regcomp (regex, anchored, REG_EXTENDED | REG_NOSUB);
    if (rc) {
        char err[128];
        regerror (rc, regex, err, sizeof err);
        snprintf (why, why_size, "'%.64s' is not a POSIX extended regular expression (%s)",
                  value, err);
        return -1;
    }
    return 0;
}

static void
s_matcher_free (s_matcher_t *m)
{
    if (m->op == S_RE || m->op == S_NRE)
        regfree (&m->regex);
    free (m->text);
    free (m->name);
    free (m->value);
}

static int
s_matcher_init (s_matcher_t *m, const char *text, char *why, size_t why_size)
{
    size_t name_len;
    const char *value;
    memset (m, 0, sizeof *m);
    if (s_split (text, &name_len, &m->op, &value, why, why_size))
        return -1;
    if ((m->op == S_RE || m->op == S_NRE) && s_compile (&m->regex, value, why, why_size))
        return -1;
    m->text = strdup (text);
    m->name = strndup (text, name_len);
    m->value = strdup (value);
    if (!m->text || !m->name || !m->value) {
        snprintf (why, why_size, "out of memory");
        s_matcher_free (m);
        return -1;
    }
    return 0;
}

static bool
s_matcher_holds (const s_matcher_t *m, const char *value)
{
    if (!value)
        value = "";
    switch (m->op) {
        case S_EQ:
            return strcmp (value, m->value) == 0;
        case S_NE:
            return strcmp (value, m->value) != 0;
        case S_RE:
            return regexec (&m->regex, value, 0, NULL, 0) == 0;
        case S_NRE:
            return regexec (&m->regex, value, 0, NULL, 0) != 0;
    }
    return false;
}

int
mesh_silence_matcher_check (const char *text, char *why, size_t why_size)
{
    assert (text);
    s_matcher_t m;
    if (s_matcher_init (&m, text, why, why_size))
        return -1;
    s_matcher_free (&m);
    return 0;
}

bool
mesh_silence_matcher_matches_empty (const char *text)
{
    s_matcher_t m;
    char why[256];
    if (s_matcher_init (&m, text, why, sizeof why))
        return false;
    bool holds = s_matcher_holds (&m, "");
    s_matcher_free (&m);
    return holds;
}

//  N decimal digits at *p into *value; advances *p.
static bool
s_digits (const char **p, int n, int *value)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit ((unsigned char) (*p)[i]))
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *value = v;
    return true;
}

int
mesh_silence_parse_time (const char *text, int64_t *ms_p)
{
    assert (text);
    const char *p = text;
    int year, mon, day, hour, min, sec, frac_ms = 0;
    if (!s_digits (&p, 4, &year) || *p++ != '-' || !s_digits (&p, 2, &mon) || *p++ != '-'
        || !s_digits (&p, 2, &day) || (*p != 'T' && *p != 't' && *p != ' '))
        return -1;
    p++;
    if (!s_digits (&p, 2, &hour) || *p++ != ':' || !s_digits (&p, 2, &min) || *p++ != ':'
        || !s_digits (&p, 2, &sec))
        return -1;
    if (*p == '.') {
        p++;
        int scale = 100, digits = 0;
        while (isdigit ((unsigned char) *p)) {
            frac_ms += (*p - '0') * scale;
            scale /= 10;
            p++;
            digits++;
        }
        if (!digits)
            return -1;
    }
    int offset_min = 0;
    if (*p == 'Z' || *p == 'z')
        p++;
    else
    if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;
        if (!s_digits (&p, 2, &oh) || *p++ != ':' || !s_digits (&p, 2, &om) || oh > 23
            || om > 59)
            return -1;
        offset_min = sign * (oh * 60 + om);
    }
    else
        return -1;
    if (*p || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
        return -1;
    struct tm tm = { .tm_year = year - 1900, .tm_mon = mon - 1, .tm_mday = day,
                     .tm_hour = hour, .tm_min = min, .tm_sec = sec };
    time_t t = timegm (&tm);
    if (tm.tm_mday != day)              //  timegm normalised an impossible date (Feb 30)
        return -1;
    *ms_p = ((int64_t) t - (int64_t) offset_min * 60) * 1000 + frac_ms;
    return 0;
}

int
mesh_silence_parse_duration (const char *text, int64_t *ms_p)
{
    assert (text);
    const char *p = text;
    int64_t total = 0;
    if (!*p)
        return -1;
    while (*p) {
        if (!isdigit ((unsigned char) *p))
            return -1;
        int64_t n = 0;
        while (isdigit ((unsigned char) *p)) {
            n = n * 10 + (*p++ - '0');
            if (n > 100000000)
                return -1;
        }
        int64_t unit;
        if (!strncmp (p, "ms", 2))
            unit = 1, p += 2;
        else
        if (*p == 's')
            unit = 1000, p++;
        else
        if (*p == 'm')
            unit = 60000, p++;
        else
        if (*p == 'h')
            unit = 3600000, p++;
        else
        if (*p == 'd')
            unit = 86400000, p++;
        else
        if (*p == 'w')
            unit = 7 * 86400000LL, p++;
        else
            return -1;
        total += n * unit;
        if (total > 100LL * 365 * 86400000)
            return -1;                  //  a century is long enough for any silence
    }
    if (total <= 0)
        return -1;
    *ms_p = total;
    return 0;
}

void
mesh_silence_format_time (int64_t ms, char *buf, size_t size)
{
    int64_t s = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    int frac = (int) (ms - s * 1000);
    time_t t = (time_t) s;
    struct tm tm;
    if (!gmtime_r (&t, &tm)) {
        snprintf (buf, size, "?");
        return;
    }
    if (frac)
        snprintf (buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
    else
        snprintf (buf, size, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

//  --- the set ------------------------------------------------------------------------

mesh_silences_t *
mesh_silences_new (void)
{
    if (sodium_init () < 0) {
        mesh_err ("silence: libsodium cannot start");
        return NULL;
    }
    mesh_silences_t *self = calloc (1, sizeof *self);
    if (!self)
        mesh_err ("silence: out of memory");
    return self;
}

static void
s_silence_free (s_silence_t *s)
{
    for (size_t i = 0; i < s->matcher_count; i++)
        s_matcher_free (&s->matchers[i]);
    free (s->matchers);
    free (s->id);
    free (s->comment);
    memset (s, 0, sizeof *s);
}

static void
s_clear (mesh_silences_t *self)
{
    for (size_t i = 0; i < self->count; i++)
        s_silence_free (&self->items[i]);
    self->count = 0;
}

void
mesh_silences_destroy (mesh_silences_t **self_p)
{
    assert (self_p);
    mesh_silences_t *self = *self_p;
    if (!self)
        return;
    s_clear (self);
    free (self->items);
    free (self);
    *self_p = NULL;
}

static bool
s_id_ok (const char *id)
{
    size_t n = strlen (id);
    if (n == 0 || n > 64)
        return false;
    for (const char *p = id; *p; p++)
        if (!isalnum ((unsigned char) *p) && *p != '-' && *p != '_' && *p != '.' && *p != ':')
            return false;
    return true;
}

static s_silence_t *
s_find (const mesh_silences_t *self, const char *id)
{
    for (size_t i = 0; i < self->count; i++)
        if (!strcmp (self->items[i].id, id))
            return &self->items[i];
    return NULL;
}

const char *
mesh_silences_add (mesh_silences_t *self, const char *id, const char *const *matchers,
                   size_t matcher_count, int64_t starts_ms, int64_t ends_ms,
                   const char *comment, int64_t created_ms, char *why, size_t why_size)
{
    assert (self);
    assert (matchers || matcher_count == 0);
    char fresh[17];
    if (!id) {
        unsigned char bytes[8];
        randombytes_buf (bytes, sizeof bytes);
        sodium_bin2hex (fresh, sizeof fresh, bytes, sizeof bytes);
        id = fresh;
    }
    if (!s_id_ok (id)) {
        snprintf (why, why_size, "silence id '%.64s' is not 1-64 of [A-Za-z0-9._:-]", id);
        return NULL;
    }
    if (s_find (self, id)) {
        snprintf (why, why_size, "a silence with id %s exists already", id);
        return NULL;
    }
    if (matcher_count == 0 || matcher_count > MESH_SILENCE_MATCHERS_MAX) {
        snprintf (why, why_size, "a silence needs 1 to %d matchers, got %zu",
                  MESH_SILENCE_MATCHERS_MAX, matcher_count);
        return NULL;
    }
    if (ends_ms && starts_ms && ends_ms <= starts_ms) {
        snprintf (why, why_size, "a silence must end after it starts");
        return NULL;
    }
    if (comment && (strlen (comment) > S_COMMENT_MAX)) {
        snprintf (why, why_size, "comment longer than %d bytes", S_COMMENT_MAX);
        return NULL;
    }
    if (self->count == MESH_SILENCE_MAX) {
        snprintf (why, why_size, "too many silences (%d); expire some first", MESH_SILENCE_MAX);
        return NULL;
    }
    if (self->count == self->alloc) {
        size_t alloc = self->alloc ? self->alloc * 2 : 8;
        s_silence_t *items = realloc (self->items, alloc * sizeof *items);
        if (!items) {
            snprintf (why, why_size, "out of memory");
            return NULL;
        }
        self->items = items;
        self->alloc = alloc;
    }
    s_silence_t s = { .starts_ms = starts_ms, .ends_ms = ends_ms, .created_ms = created_ms };
    s.matchers = calloc (matcher_count, sizeof *s.matchers);
    s.id = strdup (id);
    s.comment = comment ? strdup (comment) : NULL;
    if (!s.matchers || !s.id || (comment && !s.comment)) {
        snprintf (why, why_size, "out of memory");
        s_silence_free (&s);
        return NULL;
    }
    bool only_empty = true;
    for (size_t i = 0; i < matcher_count; i++) {
        if (s_matcher_init (&s.matchers[i], matchers[i], why, why_size)) {
            s_silence_free (&s);
            return NULL;
        }
        s.matcher_count++;
        if (!s_matcher_holds (&s.matchers[i], ""))
            only_empty = false;
    }
    if (only_empty) {
        snprintf (why, why_size, "every matcher of this silence matches an empty field, so it "
                  "would mute everything; add one that names a value (e.g. host=web-1)");
        s_silence_free (&s);
        return NULL;
    }
    self->items[self->count++] = s;
    return self->items[self->count - 1].id;
}

int
mesh_silences_expire (mesh_silences_t *self, const char *prefix, int64_t now_ms, char *why,
                      size_t why_size)
{
    assert (self);
    assert (prefix);
    s_silence_t *found = NULL;
    size_t matches = 0, plen = strlen (prefix);
    for (size_t i = 0; i < self->count; i++)
        if (plen && !strncmp (self->items[i].id, prefix, plen)) {
            if (!strcmp (self->items[i].id, prefix)) {      //  an exact id wins
                found = &self->items[i];
                matches = 1;
                break;
            }
            found = &self->items[i];
            matches++;
        }
    if (matches == 0) {
        snprintf (why, why_size, "no silence with id %.64s", prefix);
        return -1;
    }
    if (matches > 1) {
        snprintf (why, why_size, "%zu silences have ids starting with %.64s; give more of the id",
                  matches, prefix);
        return -1;
    }
    if (found->ends_ms && found->ends_ms <= now_ms) {
        snprintf (why, why_size, "silence %s has already ended", found->id);
        return -1;
    }
    found->ends_ms = now_ms;
    if (found->starts_ms && found->starts_ms >= now_ms)
        found->starts_ms = now_ms - 1;  //  a pending silence expires without ever starting
    return 0;
}

size_t
mesh_silences_prune (mesh_silences_t *self, int64_t now_ms, int64_t keep_ms)
{
    assert (self);
    size_t kept = 0, dropped = 0;
    for (size_t i = 0; i < self->count; i++) {
        s_silence_t *s = &self->items[i];
        if (s->ends_ms && s->ends_ms + keep_ms < now_ms) {
            s_silence_free (s);
            dropped++;
        }
        else
            self->items[kept++] = *s;
    }
    self->count = kept;
    return dropped;
}

static bool
s_active (const s_silence_t *s, int64_t now_ms)
{
    return (!s->starts_ms || now_ms >= s->starts_ms) && (!s->ends_ms || now_ms < s->ends_ms);
}

const char *
mesh_silences_match (const mesh_silences_t *self, mesh_silence_field_fn *field, void *arg,
                     int64_t now_ms)
{
    assert (self);
    assert (field);
    for (size_t i = 0; i < self->count; i++) {
        const s_silence_t *s = &self->items[i];
        if (!s_active (s, now_ms))
            continue;
        bool all = true;
        for (size_t j = 0; all && j < s->matcher_count; j++)
            all = s_matcher_holds (&s->matchers[j], field (arg, s->matchers[j].name));
        if (all)
            return s->id;
    }
    return NULL;
}

size_t
mesh_silences_size (const mesh_silences_t *self)
{
    assert (self);
    return self->count;
}

size_t
mesh_silences_active (const mesh_silences_t *self, int64_t now_ms)
{
    assert (self);
    size_t n = 0;
    for (size_t i = 0; i < self->count; i++)
        n += s_active (&self->items[i], now_ms);
    return n;
}

static json_t *
s_time_json (int64_t ms)
{
    if (!ms)
        return json_null ();
    char buf[40];
    mesh_silence_format_time (ms, buf, sizeof buf);
    return json_string (buf);
}

json_t *
mesh_silences_json (const mesh_silences_t *self, int64_t now_ms)
{
    assert (self);
    json_t *array = json_array ();
    for (size_t i = 0; array && i < self->count; i++) {
        const s_silence_t *s = &self->items[i];
        json_t *matchers = json_array ();
        for (size_t j = 0; j < s->matcher_count; j++)
            json_array_append_new (matchers, json_string (s->matchers[j].text));
        const char *state = s_active (s, now_ms) ? "active"
                          : (s->ends_ms && now_ms >= s->ends_ms) ? "expired" : "pending";
        json_array_append_new (array, json_pack ("{s:s, s:o, s:o, s:o, s:o, s:o, s:s}",
                                                 "id", s->id, "matchers", matchers,
                                                 "starts_at", s_time_json (s->starts_ms),
                                                 "ends_at", s_time_json (s->ends_ms),
                                                 "comment", s->comment ? json_string (s->comment)
                                                                       : json_null (),
                                                 "created_at", s_time_json (s->created_ms),
                                                 "state", state));
    }
    return array;
}

//  --- the file ---------------------------------------------------------------------

//  A time field of an entry: absent or null -> 0; else RFC 3339.
static int
s_entry_time (json_t *entry, const char *key, int64_t *ms)
{
    json_t *v = json_object_get (entry, key);
    *ms = 0;
    if (!v || json_is_null (v))
        return 0;
    return json_is_string (v) ? mesh_silence_parse_time (json_string_value (v), ms) : -1;
}

int
mesh_silences_load (mesh_silences_t *self, const char *path)
{
    assert (self);
    assert (path);
    struct stat st;
    if (stat (path, &st) != 0) {
        if (errno == ENOENT) {
            s_clear (self);
            return 0;
        }
        mesh_warn ("silence: cannot read %s: %s", path, strerror (errno));
        return -1;
    }
    if (st.st_size > S_FILE_MAX) {
        mesh_warn ("silence: %s is larger than %d bytes; not read", path, S_FILE_MAX);
        return -1;
    }
    json_error_t jerr;
    json_t *root = json_load_file (path, JSON_REJECT_DUPLICATES, &jerr);
    json_t *list = json_object_get (root, "silences");
    if (!root || !json_is_array (list)) {
        mesh_warn ("silence: %s is not a silences file (%s); keeping the silences in force",
                   path, root ? "no \"silences\" array" : jerr.text);
        json_decref (root);
        return -1;
    }
    mesh_silences_t *fresh = mesh_silences_new ();
    if (!fresh) {
        json_decref (root);
        return -1;
    }
    size_t i;
    json_t *entry;
    json_array_foreach (list, i, entry) {
        const char *id = json_string_value (json_object_get (entry, "id"));
        json_t *jm = json_object_get (entry, "matchers");
        const char *comment = json_string_value (json_object_get (entry, "comment"));
        int64_t starts, ends, created;
        char why[256] = "";
        const char *texts[MESH_SILENCE_MATCHERS_MAX];
        size_t count = json_array_size (jm);
        bool good = id && json_is_array (jm) && count <= MESH_SILENCE_MATCHERS_MAX
                 && s_entry_time (entry, "starts_at", &starts) == 0
                 && s_entry_time (entry, "ends_at", &ends) == 0
                 && s_entry_time (entry, "created_at", &created) == 0;
        for (size_t j = 0; good && j < count; j++)
            good = (texts[j] = json_string_value (json_array_get (jm, j))) != NULL;
        if (!good)
            snprintf (why, sizeof why, "needs an id, a matchers array of strings and RFC 3339 "
                      "times");
        if (good
            && !mesh_silences_add (fresh, id, texts, count, starts, ends, comment, created, why,
                                   sizeof why))
            good = false;
        if (!good)
            mesh_warn ("silence: %s: entry %zu skipped: %s", path, i, why);
    }
    json_decref (root);
    //  Swap the contents in.
    s_clear (self);
    free (self->items);
    self->items = fresh->items;
    self->count = fresh->count;
    self->alloc = fresh->alloc;
    fresh->items = NULL;
    fresh->count = fresh->alloc = 0;
    mesh_silences_destroy (&fresh);
    return 0;
}

//  fsync the directory that holds PATH, so that a rename in it is durable.
static int
s_sync_dir (const char *path)
{
    char *copy = strdup (path);
    if (!copy)
        return -1;
    int fd = open (dirname (copy), O_RDONLY | O_DIRECTORY);
    free (copy);
    if (fd < 0)
        return -1;
    int rc = fsync (fd);
    close (fd);
    return rc;
}

int
mesh_silences_save (const mesh_silences_t *self, const char *path)
{
    assert (self);
    assert (path);
    json_t *list = json_array ();
    for (size_t i = 0; list && i < self->count; i++) {
        const s_silence_t *s = &self->items[i];
        json_t *matchers = json_array ();
        for (size_t j = 0; j < s->matcher_count; j++)
            json_array_append_new (matchers, json_string (s->matchers[j].text));
        json_array_append_new (list, json_pack ("{s:s, s:o, s:o, s:o, s:o, s:o}", "id", s->id,
                                                "matchers", matchers,
                                                "starts_at", s_time_json (s->starts_ms),
                                                "ends_at", s_time_json (s->ends_ms),
                                                "created_at", s_time_json (s->created_ms),
                                                "comment", s->comment ? json_string (s->comment)
                                                                      : json_null ()));
    }
    json_t *root = json_pack ("{s:i, s:o}", "version", 1, "silences", list);
    char *text = root ? json_dumps (root, JSON_INDENT (2)) : NULL;
    json_decref (root);
    if (!text) {
        mesh_err ("silence: out of memory writing %s", path);
        return -1;
    }
    char tmp[4200];
    snprintf (tmp, sizeof tmp, "%s.tmp", path);
    int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = fd < 0 ? -1 : 0;
    size_t len = strlen (text), done = 0;
    while (rc == 0 && done < len) {
        ssize_t n = write (fd, text + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            rc = -1;
        else
            done += (size_t) n;
    }
    if (rc == 0 && write (fd, "\n", 1) != 1)
        rc = -1;
    if (rc == 0)
        rc = fsync (fd);
    int saved = errno;
    if (fd >= 0 && close (fd) != 0 && rc == 0) {
        rc = -1;
        saved = errno;
    }
    if (rc == 0 && rename (tmp, path) != 0) {
        rc = -1;
        saved = errno;
    }
    free (text);
    if (rc != 0) {
        mesh_err ("silence: cannot write %s: %s", path, strerror (saved));
        unlink (tmp);
        return -1;
    }
    if (s_sync_dir (path) != 0)
        mesh_warn ("silence: cannot fsync the directory of %s: %s", path, strerror (errno));
    return 0;
}

int
mesh_silences_refresh (mesh_silences_t *self, const char *path)
{
    assert (self);
    assert (path);
    struct stat st;
    if (stat (path, &st) != 0) {
        if (errno != ENOENT) {
            if (self->file_seen)
                mesh_warn ("silence: cannot stat %s: %s", path, strerror (errno));
            return self->file_seen ? -1 : 0;
        }
        if (!self->file_seen)
            return 0;
        self->file_seen = false;        //  removed: no run-time silences any more
        s_clear (self);
        return 1;
    }
    if (self->file_seen && st.st_dev == self->dev && st.st_ino == self->ino
        && st.st_size == self->size && st.st_mtim.tv_sec == self->mtime.tv_sec
        && st.st_mtim.tv_nsec == self->mtime.tv_nsec)
        return 0;
    //  Remember the identity first: a file that does not parse is not re-read (and
    //  re-warned about) every second, only when it changes again.
    self->file_seen = true;
    self->dev = st.st_dev;
    self->ino = st.st_ino;
    self->size = st.st_size;
    self->mtime = st.st_mtim;
    return mesh_silences_load (self, path) == 0 ? 1 : -1;
}

int
mesh_silences_lock (const char *path)
{
    assert (path);
    char lock[4200];
    snprintf (lock, sizeof lock, "%s.lock", path);
    int fd = open (lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        mesh_err ("silence: cannot open %s: %s", lock, strerror (errno));
        return -1;
    }
    while (flock (fd, LOCK_EX) != 0) {
        if (errno == EINTR)
            continue;
        mesh_err ("silence: cannot lock %s: %s", lock, strerror (errno));
        close (fd);
        return -1;
    }
    return fd;
}

void
mesh_silences_unlock (int fd)
{
    if (fd >= 0)
        close (fd);                     //  closing releases the flock
}

//  --- meshctl silence ------------------------------------------------------------------

#define S_EXIT_NO 1
#define S_EXIT_IO 2
#define S_EXIT_USAGE 64
#define S_EXIT_CONFIG 78
#define S_KEEP_EXPIRED_MS (7 * 86400000LL)  //  expired silences stay listed this long

static int64_t
s_wall_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

//  True if a meshd listens on RUNTIME_DIR's control socket (a connect to the path is
//  accepted; a socket file left by a meshd that is gone refuses it).
static bool
s_meshd_listening (const char *runtime_dir)
{
    char *endpoint = runtime_dir ? mesh_proto_control_endpoint (runtime_dir) : NULL;
    const char *path = endpoint && !strncmp (endpoint, "ipc://", 6) ? endpoint + 6 : NULL;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    bool up = false;
    if (path && strlen (path) < sizeof addr.sun_path) {
        strcpy (addr.sun_path, path);
        int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        up = fd >= 0 && connect (fd, (struct sockaddr *) &addr, sizeof addr) == 0;
        if (fd >= 0)
            close (fd);
    }
    free (endpoint);
    return up;
}

static int
s_cli_usage (FILE *err)
{
    fprintf (err,
             "usage: meshctl [--json] [--config FILE | --state-dir DIR] silence COMMAND\n"
             "  add --match FIELD=VALUE [--match FIELD=~REGEX ...] (--for 2h | --until TIME)\n"
             "      [--starts TIME] [--comment TEXT]     mute anomalous points that match all\n"
             "  list [--all]                             silences (--all: also expired ones)\n"
             "  expire ID                                end a silence now (ID or a prefix)\n"
             "  matchers: F=V, F!=V, F=~RE, F!~RE (POSIX ERE, whole value); TIME: RFC 3339\n");
    return S_EXIT_USAGE;
}

//  The value of option NAME at argv[*i] ("--name value" or "--name=value"), or NULL.
static const char *
s_opt (int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen (name);
    if (strncmp (argv[*i], name, n))
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] || *i + 1 >= argc)
        return NULL;
    return argv[++*i];
}

static void
s_list_human (json_t *list, bool all, FILE *out)
{
    size_t i, shown = 0;
    json_t *s;
    fprintf (out, "%-16s  %-8s  %-20s  %s\n", "ID", "STATE", "ENDS", "MATCHERS (COMMENT)");
    json_array_foreach (list, i, s) {
        const char *state = json_string_value (json_object_get (s, "state"));
        if (!all && !strcmp (state, "expired"))
            continue;
        const char *ends = json_string_value (json_object_get (s, "ends_at"));
        fprintf (out, "%-16s  %-8s  %-20s ", json_string_value (json_object_get (s, "id")),
                 state, ends ? ends : "never");
        size_t j;
        json_t *m;
        json_array_foreach (json_object_get (s, "matchers"), j, m)
            fprintf (out, " %s", json_string_value (m));
        const char *comment = json_string_value (json_object_get (s, "comment"));
        if (comment)
            fprintf (out, "  (%s)", comment);
        fprintf (out, "\n");
        shown++;
    }
    if (!shown)
        fprintf (out, "(no silences%s)\n", all ? "" : " in force; --all shows expired ones");
}

bool
mesh_silences_is_command (int argc, char **argv)
{
    static const char *const valued[] = { "--config", "-c", "--log", "-l", "--labels", "-L",
                                          "--state-dir", NULL };
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] != '-')
            return strcmp (argv[i], "silence") == 0;
        for (int j = 0; valued[j]; j++)
            if (!strcmp (argv[i], valued[j]))
                i++;                    //  skip the option's value
    }
    return false;
}

int
mesh_silences_cli (int argc, char **argv, FILE *out, FILE *err)
{
    bool json = false, all = false;
    const char *config = getenv ("MESHD_CONFIG");
    const char *state_dir = NULL, *command = NULL, *id = NULL, *comment = NULL;
    const char *for_text = NULL, *until_text = NULL, *starts_text = NULL;
    const char *matchers[MESH_SILENCE_MATCHERS_MAX];
    size_t matcher_count = 0;
    bool seen_silence = false;
    if (!config)
        config = "/etc/meshd/meshd.yaml";
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp (argv[i], "--json") || !strcmp (argv[i], "-j"))
            json = true;
        else
        if (!strcmp (argv[i], "--help") || !strcmp (argv[i], "-h")) {
            s_cli_usage (out);          //  asked for: stdout, 0 (meshctl(1))
            return 0;
        }
        else
        if ((v = s_opt (argc, argv, &i, "--config")) || (v = s_opt (argc, argv, &i, "-c")))
            config = v;
        else
        if ((v = s_opt (argc, argv, &i, "--state-dir")))
            state_dir = v;
        else
        if (!seen_silence && !strcmp (argv[i], "silence"))
            seen_silence = true;
        else
        if (seen_silence && !command && argv[i][0] != '-')
            command = argv[i];
        else
        if (command && (v = s_opt (argc, argv, &i, "--match"))) {
            if (matcher_count == MESH_SILENCE_MATCHERS_MAX) {
                fprintf (err, "meshctl: at most %d matchers\n", MESH_SILENCE_MATCHERS_MAX);
                return S_EXIT_USAGE;
            }
            matchers[matcher_count++] = v;
        }
        else
        if (command && (v = s_opt (argc, argv, &i, "--for")))
            for_text = v;
        else
        if (command && (v = s_opt (argc, argv, &i, "--until")))
            until_text = v;
        else
        if (command && (v = s_opt (argc, argv, &i, "--starts")))
            starts_text = v;
        else
        if (command && (v = s_opt (argc, argv, &i, "--comment")))
            comment = v;
        else
        if (command && !strcmp (argv[i], "--all"))
            all = true;
        else
        if (command && !id && argv[i][0] != '-')
            id = argv[i];
        else {
            fprintf (err, "meshctl: unexpected '%s'\n", argv[i]);
            return s_cli_usage (err);
        }
    }
    if (!command)
        return s_cli_usage (err);
    bool add = !strcmp (command, "add"), list = !strcmp (command, "list"),
         expire = !strcmp (command, "expire");
    if ((!add && !list && !expire) || (expire != (id != NULL))
        || (!add && (matcher_count || for_text || until_text || starts_text || comment))
        || (!list && all))
        return s_cli_usage (err);

    mesh_config_t *cfg = NULL;
    if (!state_dir) {
        if (mesh_config_load (config, &cfg, err) != 0) {
            fprintf (err, "meshctl: cannot use config %s\n", config);
            return S_EXIT_CONFIG;
        }
        state_dir = cfg->state_dir;
    }
    char path[4096];
    snprintf (path, sizeof path, "%s/silences.json", state_dir);
    int64_t now = s_wall_ms () / 1000 * 1000;     //  whole seconds read better
    char why[512] = "";
    int rc = 0;
    mesh_silences_t *set = mesh_silences_new ();
    int lock = set && !list ? mesh_silences_lock (path) : -1;
    if (!set || (!list && lock < 0) || mesh_silences_load (set, path) != 0) {
        fprintf (err, "meshctl: cannot use %s (see above)\n", path);
        rc = S_EXIT_IO;
    }
    else
    if (add) {
        int64_t starts = now, ends = 0, length = 0;
        if (!matcher_count)
            snprintf (why, sizeof why, "add needs at least one --match FIELD=VALUE");
        else
        if (!for_text == !until_text)
            snprintf (why, sizeof why, "add needs an end: --for DURATION (e.g. 2h) or "
                      "--until TIME (RFC 3339), one of them");
        else
        if (starts_text && mesh_silence_parse_time (starts_text, &starts) != 0)
            snprintf (why, sizeof why, "--starts: '%.64s' is not an RFC 3339 time", starts_text);
        else
        if (for_text && mesh_silence_parse_duration (for_text, &length) != 0)
            snprintf (why, sizeof why, "--for: '%.64s' is not a duration such as 90m, 2h, 1d",
                      for_text);
        else
        if (until_text && mesh_silence_parse_time (until_text, &ends) != 0)
            snprintf (why, sizeof why, "--until: '%.64s' is not an RFC 3339 time", until_text);
        else
        if (until_text && ends <= now)
            snprintf (why, sizeof why, "--until: %s is in the past", until_text);
        if (for_text && !*why)
            ends = starts + length;
        const char *added = *why ? NULL
                          : mesh_silences_add (set, NULL, matchers, matcher_count, starts, ends,
                                               comment, now, why, sizeof why);
        mesh_silences_prune (set, now, S_KEEP_EXPIRED_MS);
        if (!added) {
            fprintf (err, "meshctl: %s\n", why);
            rc = S_EXIT_USAGE;
        }
        else
        if (mesh_silences_save (set, path) != 0)
            rc = S_EXIT_IO;
        else
        if (json)
            fprintf (out, "{\"id\": \"%s\"}\n", added);
        else {
            char until[40];
            mesh_silence_format_time (ends, until, sizeof until);
            if (cfg && !s_meshd_listening (cfg->runtime_dir))
                fprintf (out, "silence %s added, until %s; stored in %s: meshd is not "
                         "running, it applies when meshd starts\n", added, until, path);
            else
            if (cfg)
                fprintf (out, "silence %s added, until %s; agents follow it within a "
                         "second\n", added, until);
            else
                fprintf (out, "silence %s added, until %s; stored in %s: a running meshd's "
                         "agents follow it within a second, otherwise it applies when "
                         "meshd starts\n", added, until, path);
        }
    }
    else
    if (expire) {
        if (mesh_silences_expire (set, id, now, why, sizeof why) != 0) {
            fprintf (err, "meshctl: %s\n", why);
            rc = S_EXIT_NO;
        }
        else {
            mesh_silences_prune (set, now, S_KEEP_EXPIRED_MS);
            if (mesh_silences_save (set, path) != 0)
                rc = S_EXIT_IO;
            else
                fprintf (out, json ? "{\"expired\": \"%s\"}\n" : "silence %s expired\n", id);
        }
    }
    else {
        json_t *array = mesh_silences_json (set, now);
        if (json) {
            json_t *shown = json_array ();
            size_t i;
            json_t *s;
            json_array_foreach (array, i, s)
                if (all || strcmp (json_string_value (json_object_get (s, "state")), "expired"))
                    json_array_append (shown, s);
            char *text = json_dumps (shown, JSON_INDENT (2));
            fprintf (out, "%s\n", text ? text : "[]");
            free (text);
            json_decref (shown);
        }
        else
            s_list_human (array, all, out);
        json_decref (array);
    }
    mesh_silences_unlock (lock);
    mesh_silences_destroy (&set);
    mesh_config_destroy (&cfg);
    return rc;
}

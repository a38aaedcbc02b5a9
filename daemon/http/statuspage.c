/*  statuspage - the read-only status page and its JSON (see statuspage.h).
 *
 *  Shaped around one rule: it runs on meshd's own thread, between the agents' messages,
 *  so nothing it does may take long or grow without a bound.  The decision log is followed:
 *  each request for the latest decisions parses only what was appended since the last one
 *  (at most the last S_TAIL_BYTES), into a ring of rows; one decision is looked up in the
 *  last S_DETAIL_BYTES, parsing only the lines that hold its id.  Both use the audit
 *  module's reader, the parsing of `meshctl audit list/show`, never a second one; the incident
 *  state files are read only up to a size; the samples for the charts live in a fixed
 *  ring filled on the daemon's timer; and every reply is built whole, checked against a
 *  size, and handed to the listener, which frees it.
 *
 *  The assets (index.html, app.js, app.css) are compiled in from daemon/http/statuspage/ by
 *  tools/statuspage_embed.py ($(B)/gen/statuspage_assets.c), so the binary needs no files
 *  at run time and the page needs nothing from elsewhere (its CSP forbids it).
 */
#include "statuspage.h"
#include "audit.h"
#include "jsonout.h"
#include "log.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

//  tools/statuspage_embed.py
typedef struct {
    const char *name;
    const char *content_type;
    const unsigned char *data;
    size_t len;
} mesh_statuspage_asset_t;
extern const mesh_statuspage_asset_t mesh_statuspage_assets[];
extern const size_t mesh_statuspage_asset_count;

#define S_TAIL_BYTES      (1024 * 1024)        //  of the log, for the latest decisions
#define S_DETAIL_BYTES    (4 * 1024 * 1024)    //  of the log, for one decision
#define S_LIMIT_DEFAULT   20
#define S_LIMIT_MAX       100
#define S_REPLY_MAX       (2 * 1024 * 1024)    //  bytes of any JSON reply
#define S_INCIDENT_FILE_MAX (2 * 1024 * 1024)  //  bytes of an agent's incident state file
#define S_INCIDENTS_MAX   200                  //  open incident groups listed
#define S_SAMPLE_MS       10000
#define S_SAMPLES         360                  //  an hour of samples
#define S_QUERY_MAX       200                  //  bytes of a query string

typedef struct {
    int64_t at_ms;                      //  wall clock of the sample
    double events_per_s;
    double tokens_per_min;
} s_sample_t;

struct _mesh_statuspage_t {
    char *decision_log;
    char *state_dir;
    mesh_statuspage_status_fn *status;
    void *arg;
    s_sample_t ring[S_SAMPLES];
    size_t head, count;                 //  next slot; samples held
    int64_t next_ms, last_ms;           //  next sample due; the last one (0: none yet)
    double last_events, last_tokens;    //  the totals at the last sample
    //  The latest decisions, the log followed from where the last request left it, so a
    //  request parses only what was written since (at most S_TAIL_BYTES)
    json_t *recent;                     //  rows (audit list's, with series), oldest first
    uint64_t offset;                    //  where the next read goes on
    dev_t dev;                          //  the file it is in (a rotation starts a new one)
    ino_t ino;
    bool told;                          //  that the log cannot be read (logged once)
};

mesh_statuspage_t *
mesh_statuspage_new (const char *decision_log, const char *state_dir,
                     mesh_statuspage_status_fn *status, void *arg)
{
    assert (status);
    mesh_statuspage_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->decision_log = decision_log ? strdup (decision_log) : NULL;
    self->state_dir = state_dir ? strdup (state_dir) : NULL;
    self->status = status;
    self->arg = arg;
    self->recent = json_array ();
    if ((decision_log && !self->decision_log) || (state_dir && !self->state_dir)
        || !self->recent)
        mesh_statuspage_destroy (&self);
    return self;
}

void
mesh_statuspage_destroy (mesh_statuspage_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mesh_statuspage_t *self = *self_p;
    free (self->decision_log);
    free (self->state_dir);
    json_decref (self->recent);
    free (self);
    *self_p = NULL;
}

//  ---------------------------------------------------------------------------------------
//  The sampler

//  Events consumed (malformed included) by every agent instance, and tokens charged this
//  run, as the snapshot has them.
static void
s_totals (json_t *snapshot, double *events, double *tokens)
{
    *events = 0;
    size_t i;
    json_t *agent;
    json_array_foreach (json_object_get (snapshot, "agents"), i, agent) {
        json_t *c = json_object_get (agent, "counters");
        *events += (double) json_integer_value (json_object_get (c, "events"))
                   + (double) json_integer_value (json_object_get (c, "malformed"));
    }
    *tokens = (double) json_integer_value (
        json_object_get (json_object_get (json_object_get (snapshot, "budget"), "run"),
                         "charged"));
}

void
mesh_statuspage_tick (mesh_statuspage_t *self, int64_t now_ms)
{
    assert (self);
    if (self->last_ms && now_ms >= self->last_ms && now_ms < self->next_ms)
        return;
    json_t *snapshot = self->status (self->arg);
    double events, tokens;
    s_totals (snapshot, &events, &tokens);
    json_decref (snapshot);
    //  The first sample, or a clock that went back: only a new baseline.
    if (self->last_ms && now_ms > self->last_ms) {
        double secs = (double) (now_ms - self->last_ms) / 1000.0;
        double de = events - self->last_events, dt = tokens - self->last_tokens;
        s_sample_t *s = &self->ring[self->head];
        s->at_ms = now_ms;
        s->events_per_s = de > 0 ? de / secs : 0;      //  a total that fell: a reset
        s->tokens_per_min = dt > 0 ? dt * 60.0 / secs : 0;
        self->head = (self->head + 1) % S_SAMPLES;
        if (self->count < S_SAMPLES)
            self->count++;
    }
    self->last_ms = now_ms;
    self->next_ms = now_ms + S_SAMPLE_MS;
    self->last_events = events;
    self->last_tokens = tokens;
}

//  ---------------------------------------------------------------------------------------
//  Replies

static void
s_reply_bytes (mesh_http_reply_t *reply, int status, const char *type, char *body, size_t len)
{
    reply->status = status;
    reply->content_type = type;
    reply->body = body;
    reply->len = len;
    reply->csp = MESH_STATUSPAGE_CSP;
}

//  VALUE (taken) as the body; one that cannot be printed or is too large: a 500 error.
static int
s_reply_json (mesh_http_reply_t *reply, int status, json_t *value)
{
    char *text = value ? mesh_jsonout_dumps (value) : NULL;
    json_decref (value);
    size_t len = text ? strlen (text) : 0;
    if (!text || len > S_REPLY_MAX) {
        free (text);
        text = strdup (len > S_REPLY_MAX
                           ? "{\"error\":\"the reply would be too large for the status page; "
                             "meshctl reads it\"}"
                           : "{\"error\":\"the reply could not be built\"}");
        status = 500;
        len = text ? strlen (text) : 0;
    }
    s_reply_bytes (reply, status, "application/json", text, len);
    return 0;
}

static int
s_reply_error (mesh_http_reply_t *reply, int status, const char *error)
{
    return s_reply_json (reply, status, json_pack ("{ss}", "error", error));
}

//  The value of KEY in QUERY (a=b&c=d), copied to BUF; 1 found, 0 absent, -1 malformed (not
//  [A-Za-z0-9_.-] only, too long, a key given twice, or a key not in KNOWN).
static int
s_query_get (const char *query, const char *key, const char *const *known, char *buf,
             size_t size)
{
    if (!query || !*query)
        return 0;
    if (strlen (query) > S_QUERY_MAX)
        return -1;
    int found = 0;
    const char *p = query;
    while (*p) {
        const char *end = strchr (p, '&');
        size_t len = end ? (size_t) (end - p) : strlen (p);
        const char *eq = memchr (p, '=', len);
        size_t klen = eq ? (size_t) (eq - p) : len;
        const char *value = eq ? eq + 1 : p + len;
        size_t vlen = eq ? len - klen - 1 : 0;
        for (size_t i = 0; i < len; i++)
            if (p + i != eq && !isalnum ((unsigned char) p[i]) && !strchr ("_.-", p[i]))
                return -1;
        bool ok = false;
        for (int i = 0; known[i]; i++)
            if (strlen (known[i]) == klen && !strncmp (known[i], p, klen))
                ok = true;
        if (!ok || klen == 0)
            return -1;
        if (strlen (key) == klen && !strncmp (key, p, klen)) {
            if (found || vlen + 1 > size)
                return -1;
            memcpy (buf, value, vlen);
            buf[vlen] = '\0';
            found = 1;
        }
        p += len + (end ? 1 : 0);
    }
    return found;
}

//  ---------------------------------------------------------------------------------------
//  /api/status

//  Agents, their backends and the budgets, in the page's shape.
static json_t *
s_status (mesh_statuspage_t *self)
{
    json_t *snap = self->status (self->arg);
    json_t *agents = json_array (), *backends = json_array (), *budgets = json_array ();
    size_t i;
    json_t *agent;
    json_array_foreach (json_object_get (snap, "agents"), i, agent) {
        json_t *c = json_object_get (agent, "counters");
        const char *name = json_string_value (json_object_get (agent, "name"));
        json_t *row = json_pack (
            "{s:O? s:O? s:O? s:O? s:O? s:O? s:O? s:O?}", "name", json_object_get (agent, "name"),
            "agent", json_object_get (agent, "agent"), "state", json_object_get (agent, "state"),
            "pid", json_object_get (agent, "pid"), "restarts",
            json_object_get (agent, "restarts"), "uptime_s", json_object_get (agent, "uptime_s"),
            "rules_hash", json_object_get (agent, "rules_hash"), "quarantined",
            json_object_get (agent, "quarantined"));
        static const char *const counters[] = { "events", "malformed", "anomalies", "incidents",
                                                "loops", "accepted", "tokens", "lag",
                                                "incident_groups", NULL };
        for (int k = 0; row && counters[k]; k++) {
            json_t *v = json_object_get (c, counters[k]);
            json_object_set_new (row, counters[k], json_is_integer (v) ? json_incref (v)
                                                                       : json_integer (0));
        }
        if (row)
            json_array_append_new (agents, row);
        const char *bname;
        json_t *b;
        json_object_foreach (json_object_get (agent, "backends"), bname, b) {
            json_t *brow = json_pack (
                "{s:s s:s? s:O? s:O? s:O? s:O? s:O? s:O?}", "backend", bname, "agent", name,
                "state", json_object_get (b, "state"), "detail", json_object_get (b, "detail"),
                "calls", json_object_get (b, "calls"), "failures",
                json_object_get (b, "failures"), "latency_ms",
                json_object_get (b, "latency_ms"), "open_for_ms",
                json_object_get (b, "open_for_ms"));
            if (brow)
                json_array_append_new (backends, brow);
        }
    }
    json_t *scope;
    json_t *tokens = json_object_get (snap, "budget");
    json_array_foreach (json_object_get (tokens, "scopes"), i, scope) {
        json_t *brow = json_pack (
            "{s:O? s:O? s:O? s:O? s:O? s:O? s:O? s:O?}", "scope", json_object_get (scope, "scope"),
            "used", json_object_get (scope, "used"), "reserved",
            json_object_get (scope, "reserved"), "limit", json_object_get (scope, "limit"),
            "remaining", json_object_get (scope, "remaining"), "burn_per_min",
            json_object_get (scope, "burn_per_min"), "window_s",
            json_object_get (scope, "window_s"), "resets_at",
            json_object_get (scope, "resets_at"));
        if (brow)
            json_array_append_new (budgets, brow);
    }
    json_t *d = json_object_get (snap, "daemon");
    json_t *daemon = json_pack ("{s:O? s:O? s:O? s:O? s:O?}", "version",
                                json_object_get (d, "version"), "uptime_s",
                                json_object_get (d, "uptime_s"), "ready",
                                json_object_get (d, "ready"), "ledger_seq",
                                json_object_get (d, "ledger_seq"), "storage",
                                json_object_get (d, "storage"));
    json_t *out = json_pack ("{s:o* s:o s:o s:o s:O?}", "daemon", daemon, "agents", agents,
                             "backends", backends, "budgets", budgets, "tokens_charged",
                             json_object_get (json_object_get (tokens, "run"), "charged"));
    json_decref (snap);
    return out;
}

//  ---------------------------------------------------------------------------------------
//  /api/decisions

//  One record of the log, read in order: a decision becomes a row of the ring, an outcome
//  fills in its decision's row.
static void
s_follow_fn (json_t *record, void *arg)
{
    mesh_statuspage_t *self = arg;
    const char *type = json_string_value (json_object_get (record, "type"));
    const char *id = json_string_value (json_object_get (record, "id"));
    if (!type || !id)
        return;
    if (!strcmp (type, "decision")) {
        json_t *row = mesh_audit_list_row (record, NULL);
        json_t *series = json_object_get (json_object_get (record, "incident"), "series");
        json_object_set (row, "series", json_is_string (series) ? series : json_null ());
        json_array_append_new (self->recent, row);
        while (json_array_size (self->recent) > S_LIMIT_MAX)
            json_array_remove (self->recent, 0);
    }
    else
    if (!strcmp (type, "outcome")) {
        for (size_t i = json_array_size (self->recent); i-- > 0;) {
            json_t *row = json_array_get (self->recent, i);
            const char *rid = json_string_value (json_object_get (row, "id"));
            if (rid && !strcmp (rid, id)) {
                json_t *status = json_object_get (record, "status");
                if (json_is_null (json_object_get (row, "outcome")))
                    json_object_set_new (row, "outcome", json_is_string (status)
                                                             ? json_incref (status)
                                                             : json_string ("-"));
                break;
            }
        }
    }
}

//  Read what the log gained since the last request (a new file after a rotation: from its
//  start).  0, or 2 cannot read.
static int
s_follow (mesh_statuspage_t *self)
{
    struct stat st;
    if (!self->decision_log || stat (self->decision_log, &st) != 0) {
        if (!self->told)                //  once, not at every refresh of every page
            mesh_err ("statuspage: cannot read %s: %s", self->decision_log
                                                             ? self->decision_log : "(no log)",
                      strerror (errno));
        self->told = true;
        return 2;
    }
    self->told = false;
    if (st.st_dev != self->dev || st.st_ino != self->ino
        || (uint64_t) st.st_size < self->offset) {
        if ((uint64_t) st.st_size < self->offset && st.st_ino == self->ino)
            json_array_clear (self->recent);        //  the same file, shorter: start over
        self->offset = 0;
        self->dev = st.st_dev;
        self->ino = st.st_ino;
    }
    uint64_t end = self->offset;
    int rc = mesh_audit_each_record_from (self->decision_log, (int64_t) self->offset,
                                          S_TAIL_BYTES, s_follow_fn, self, &end);
    if (rc == 0)
        self->offset = end;
    return rc;
}

static int
s_decisions (mesh_statuspage_t *self, const char *query, mesh_http_reply_t *reply)
{
    static const char *const known[] = { "limit", NULL };
    char buf[16];
    int has = s_query_get (query, "limit", known, buf, sizeof buf);
    long limit = S_LIMIT_DEFAULT;
    if (has < 0)
        return s_reply_error (reply, 400, "bad query: expected limit=N (1 to 100)");
    if (has) {
        char *end = NULL;
        errno = 0;
        limit = strtol (buf, &end, 10);
        if (errno || !*buf || *end || limit < 1 || limit > S_LIMIT_MAX)
            return s_reply_error (reply, 400, "bad limit: expected an integer from 1 to 100");
    }
    if (s_follow (self) != 0)
        return s_reply_error (reply, 503, "the decision log cannot be read (meshd's log says "
                                          "why)");
    json_t *rows = json_array ();
    for (size_t i = json_array_size (self->recent);                     //  newest first
         i-- > 0 && json_array_size (rows) < (size_t) limit;)
        json_array_append (rows, json_array_get (self->recent, i));
    return s_reply_json (reply, 200,
                         json_pack ("{s:o s:i s:i}", "decisions", rows, "limit", (int) limit,
                                    "window_bytes", S_TAIL_BYTES));
}

//  ---------------------------------------------------------------------------------------
//  /api/decision

static int
s_decision (mesh_statuspage_t *self, const char *query, mesh_http_reply_t *reply)
{
    static const char *const known[] = { "id", NULL };
    char id[80];
    int has = s_query_get (query, "id", known, id, sizeof id);
    size_t len = has > 0 ? strlen (id) : 0;
    bool hex = len >= 8 && len <= 64;
    for (size_t i = 0; hex && i < len; i++)
        hex = isxdigit ((unsigned char) id[i]) != 0;
    if (!hex)
        return s_reply_error (reply, 400, "bad id: expected id=<a decision id, or a prefix of "
                                          "at least 8 hex digits>");
    json_t *found = NULL;
    char why[512] = "";
    int rc = mesh_audit_show_find (self->decision_log, id, S_DETAIL_BYTES, &found, why,
                                   sizeof why);
    if (rc == 2)
        return s_reply_error (reply, 503, "the decision log cannot be read (meshd's log says "
                                          "why)");
    if (rc != 0) {
        char text[700];
        snprintf (text, sizeof text, "%s (the page reads the last %d MiB of the log; "
                  "meshctl audit show reads all of it)", why, S_DETAIL_BYTES / (1024 * 1024));
        return s_reply_error (reply, 404, text);
    }
    return s_reply_json (reply, 200, found);
}

//  ---------------------------------------------------------------------------------------
//  /api/incidents

//  The open (alive) groups of one agent instance's incident state file, appended to LIST.
static void
s_incidents_of (mesh_statuspage_t *self, const char *instance, json_t *list)
{
    if (!self->state_dir || !instance || strchr (instance, '/') || instance[0] == '.')
        return;
    char path[4096];
    snprintf (path, sizeof path, "%s/incidents/%s.json", self->state_dir, instance);
    int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return;
    struct stat st;
    json_t *state = NULL;
    if (fstat (fd, &st) == 0 && S_ISREG (st.st_mode) && st.st_size <= S_INCIDENT_FILE_MAX) {
        FILE *file = fdopen (fd, "r");
        if (file) {
            fd = -1;
            state = json_loadf (file, JSON_REJECT_DUPLICATES, NULL);
            fclose (file);
        }
    }
    if (fd >= 0)
        close (fd);
    size_t i;
    json_t *g;
    json_array_foreach (json_object_get (state, "groups"), i, g) {
        if (!json_is_true (json_object_get (g, "alive")))
            continue;
        if (json_array_size (list) >= S_INCIDENTS_MAX)
            break;
        json_t *key = json_object_get (g, "key");
        json_t *row = json_pack ("{s:s s:O? s:O? s:O? s:O? s:O? s:O?}", "agent", instance,
                                 "key", json_is_string (key) ? key : NULL, "members",
                                 json_object_get (g, "members"), "points",
                                 json_object_get (g, "points"), "notified",
                                 json_object_get (g, "notified"), "first_ms",
                                 json_object_get (g, "first_ms"), "last_ms",
                                 json_object_get (g, "last_ms"));
        if (row)
            json_array_append_new (list, row);
    }
    json_decref (state);
}

static json_t *
s_incidents (mesh_statuspage_t *self)
{
    json_t *snap = self->status (self->arg);
    json_t *list = json_array ();
    size_t i;
    json_t *agent;
    json_array_foreach (json_object_get (snap, "agents"), i, agent)
        s_incidents_of (self, json_string_value (json_object_get (agent, "name")), list);
    json_decref (snap);
    return json_pack ("{s:o s:i}", "incidents", list, "max", S_INCIDENTS_MAX);
}

//  ---------------------------------------------------------------------------------------
//  /api/series

static json_t *
s_series (mesh_statuspage_t *self)
{
    json_t *samples = json_array ();
    for (size_t k = 0; k < self->count; k++) {
        const s_sample_t *s = &self->ring[(self->head + S_SAMPLES - self->count + k) % S_SAMPLES];
        json_array_append_new (samples, json_pack ("{s:I s:f s:f}", "t", (json_int_t) s->at_ms,
                                                   "events_per_s", s->events_per_s,
                                                   "tokens_per_min", s->tokens_per_min));
    }
    return json_pack ("{s:o s:i s:i}", "samples", samples, "interval_s", S_SAMPLE_MS / 1000,
                      "max", S_SAMPLES);
}

//  ---------------------------------------------------------------------------------------

int
mesh_statuspage_handle (void *arg, const char *path, const char *query,
                        mesh_http_reply_t *reply)
{
    mesh_statuspage_t *self = arg;
    assert (self && reply);
    if (!path)
        return -1;
    const char *asset = !strcmp (path, "/") || !strcmp (path, "/index.html") ? "index.html"
                        : path[0] == '/' && strncmp (path, "/api/", 5) ? path + 1 : NULL;
    if (asset) {
        for (size_t i = 0; i < mesh_statuspage_asset_count; i++) {
            const mesh_statuspage_asset_t *a = &mesh_statuspage_assets[i];
            if (strcmp (a->name, asset) != 0)
                continue;
            char *body = malloc (a->len ? a->len : 1);
            if (!body)
                return s_reply_error (reply, 500, "out of memory");
            memcpy (body, a->data, a->len);
            s_reply_bytes (reply, 200, a->content_type, body, a->len);
            return 0;
        }
        return -1;                      //  not mine: the listener's 404
    }
    if (strncmp (path, "/api/", 5) != 0)
        return -1;
    if (!strcmp (path, "/api/status") && !(query && *query))
        return s_reply_json (reply, 200, s_status (self));
    if (!strcmp (path, "/api/decisions"))
        return s_decisions (self, query, reply);
    if (!strcmp (path, "/api/decision"))
        return s_decision (self, query, reply);
    if (!strcmp (path, "/api/incidents") && !(query && *query))
        return s_reply_json (reply, 200, s_incidents (self));
    if (!strcmp (path, "/api/series") && !(query && *query))
        return s_reply_json (reply, 200, s_series (self));
    if (!strcmp (path, "/api/status") || !strcmp (path, "/api/incidents")
        || !strcmp (path, "/api/series"))
        return s_reply_error (reply, 400, "bad query: this endpoint takes no parameters");
    return s_reply_error (reply, 404, "no such endpoint (the status page's are /api/status, "
                                      "/api/decisions, /api/decision, /api/incidents, "
                                      "/api/series)");
}

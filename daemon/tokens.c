/*  tokens - the supervisor's token ledger (see tokens.h).
 *
 *  Scopes live in one hash table by key.  A scope counts what was charged in its
 *  window (rolling: 60 slots; day: one counter that starts again at local midnight)
 *  and what is reserved now.  Grants live in a second table by id, each with the keys
 *  of the scopes it reserved from, so a settle or a release charges exactly those.
 *
 *  Journal lines (JSON, one per line):
 *      {"g":ID,"at":MS,"n":TOKENS,"s":[KEYS],"i":INSTANCE}    a grant
 *      {"c":ID,"at":MS,"n":TOKENS,"s":[KEYS]}                 a charge (ID 0: compacted)
 *  Replay applies charges to the scopes and drops the grants they settle; a grant left
 *  without a charge is charged in full at its time.
 */
#include "tokens.h"
#include "log.h"
#include "silence.h"
#include "tzday.h"

#include <czmq.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_SLOTS          60
#define S_BURN_SLOTS     30             //  10 s each: the last 5 minutes
#define S_BURN_MS        10000
#define S_MAX_SCOPES     5              //  daemon, agent, backend, action, incident
#define S_INCIDENTS_MAX  65536          //  incident scopes kept
#define S_INCIDENT_IDLE_MS (6 * 3600 * 1000LL)
#define S_COMPACT_BYTES  (16 * 1024 * 1024)
#define S_LINE_MAX       4096

typedef struct {
    char *key;
    bool limited;
    long limit, reserve_kept;
    mesh_window_kind_t window;
    int window_s;
    mesh_tz_t *tz;                  //  day windows
    bool incident;                  //  no window: the incident's whole life
    int64_t slot_ms;
    int64_t slot_id[S_SLOTS];
    long slot[S_SLOTS];
    int64_t day_start, day_next;    //  epoch s, day windows
    long day_used, total;           //  total: incident scopes
    long reserved;
    int64_t burn_id[S_BURN_SLOTS];
    long burn[S_BURN_SLOTS];
    int level;                      //  the highest threshold recorded in this window
    int64_t touched;                //  ms, incident scopes
} s_scope_t;

typedef struct {
    long cap;                       //  incident_token_cap
    json_t *backends;               //  names it may call (its cascade)
    json_t *actions;                //  names it may take
    bool may_be_high;               //  its incidents can be high priority
} s_agent_t;

typedef struct {
    int64_t id;
    char *instance;
    long need;
    int64_t at;
    size_t count;
    char *keys[S_MAX_SCOPES];
} s_grant_t;

struct _mesh_tokens_t {
    zhashx_t *scopes;               //  key -> s_scope_t
    zhashx_t *grants;               //  "%lld" -> s_grant_t
    zhashx_t *agents;               //  name -> s_agent_t, as configured
    size_t incidents;
    int64_t next_grant;
    long reserved;
    char *journal;
    int fd;
    off_t journal_bytes;
    //  The journal's sync: lines written and lines known durable, counted; a syncer
    //  thread (mesh_tokens_start_syncer) runs fdatasync while the main loop goes on.
    pthread_mutex_t lock;           //  fd, written, synced, syncing, the syncer's flags
    pthread_cond_t cond;
    uint64_t written, synced;
    bool syncing, stop, has_syncer;
    bool wake_pending;              //  a word to the main loop is in flight
    uint64_t sync_errors;
    pthread_t syncer;
    zsock_t *wake_main, *wake_syncer;   //  PAIR: the syncer says "synced more"
    mesh_tokens_clock_fn *clock;
    void *clock_arg;
    mesh_tokens_record_fn *record;
    void *record_arg;
    //  this run
    long run_grants, run_refused, run_settles, run_released, run_charged;
    json_t *by_rule, *by_result, *refused_by;
};

static int64_t
s_wall_ms (void *arg)
{
    (void) arg;
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
s_now (mesh_tokens_t *self)
{
    return self->clock (self->clock_arg);
}

static void
s_scope_free (void **item)
{
    s_scope_t *scope = *item;
    if (!scope)
        return;
    free (scope->key);
    mesh_tz_destroy (&scope->tz);
    free (scope);
    *item = NULL;
}

static void
s_grant_free (void **item)
{
    s_grant_t *grant = *item;
    if (!grant)
        return;
    free (grant->instance);
    for (size_t i = 0; i < grant->count; i++)
        free (grant->keys[i]);
    free (grant);
    *item = NULL;
}

static void
s_agent_free (void **item)
{
    s_agent_t *agent = *item;
    if (!agent)
        return;
    json_decref (agent->backends);
    json_decref (agent->actions);
    free (agent);
    *item = NULL;
}

static void
s_add (json_t *counts, const char *name, long n)
{
    if (!name)
        name = "?";
    json_int_t had = json_integer_value (json_object_get (counts, name));
    json_object_set_new (counts, name, json_integer (had + n));
}

//  --- windows ------------------------------------------------------------------

static void
s_day_roll (s_scope_t *scope, int64_t now_ms)
{
    int64_t now = now_ms / 1000;
    if (scope->day_next && now < scope->day_next && now >= scope->day_start)
        return;
    int64_t next = 0;
    int64_t start = mesh_tz_day_start (scope->tz, now, &next);
    if (start != scope->day_start) {
        if (start > scope->day_start)
            scope->day_used = 0;
        scope->level = 0;
    }
    scope->day_start = start;
    scope->day_next = next;
}

//  What SCOPE holds as charged in its window at NOW_MS.
static long
s_used (s_scope_t *scope, int64_t now_ms)
{
    if (scope->incident)
        return scope->total;
    if (scope->window == MESH_WINDOW_DAY) {
        s_day_roll (scope, now_ms);
        return scope->day_used;
    }
    int64_t now_id = now_ms / scope->slot_ms;
    long used = 0;
    for (int i = 0; i < S_SLOTS; i++)
        if (scope->slot_id[i] > now_id - S_SLOTS && scope->slot_id[i] <= now_id)
            used += scope->slot[i];
    return used;
}

//  When tokens next leave SCOPE's window (epoch ms), or 0 when nothing will.
static int64_t
s_resets_at (s_scope_t *scope, int64_t now_ms)
{
    if (scope->incident)
        return 0;
    if (scope->window == MESH_WINDOW_DAY) {
        s_day_roll (scope, now_ms);
        return scope->day_next * 1000;
    }
    int64_t now_id = now_ms / scope->slot_ms, oldest = 0;
    for (int i = 0; i < S_SLOTS; i++)
        if (scope->slot[i] && scope->slot_id[i] > now_id - S_SLOTS
            && (!oldest || scope->slot_id[i] < oldest))
            oldest = scope->slot_id[i];
    return oldest ? (oldest + S_SLOTS) * scope->slot_ms : 0;
}

static long
s_saturating (long a, long b)
{
    return b > 0 && a > LONG_MAX / 4 - b ? LONG_MAX / 4 : a + b;
}

//  Charge N tokens to SCOPE at AT_MS (which may be in the past, on replay).
static void
s_charge_scope (s_scope_t *scope, long n, int64_t at_ms)
{
    if (n <= 0)
        return;
    int64_t burn_id = at_ms / S_BURN_MS;
    int b = (int) (burn_id % S_BURN_SLOTS);
    if (scope->burn_id[b] != burn_id) {
        if (scope->burn_id[b] > burn_id)
            goto window;
        scope->burn_id[b] = burn_id;
        scope->burn[b] = 0;
    }
    scope->burn[b] = s_saturating (scope->burn[b], n);
window:
    if (scope->incident) {
        scope->total = s_saturating (scope->total, n);
        if (at_ms > scope->touched)
            scope->touched = at_ms;
        return;
    }
    if (scope->window == MESH_WINDOW_DAY) {
        int64_t at = at_ms / 1000;
        if (scope->day_next == 0 || at >= scope->day_next)
            s_day_roll (scope, at_ms);
        if (at >= scope->day_start && at < scope->day_next)
            scope->day_used = s_saturating (scope->day_used, n);
        return;
    }
    int64_t id = at_ms / scope->slot_ms;
    int i = (int) (id % S_SLOTS);
    if (scope->slot_id[i] > id)
        return;                         //  older than the window already
    if (scope->slot_id[i] != id) {
        scope->slot_id[i] = id;
        scope->slot[i] = 0;
    }
    scope->slot[i] = s_saturating (scope->slot[i], n);
}

//  --- scopes -------------------------------------------------------------------

static void
s_set_window (s_scope_t *scope, const mesh_budget_config_t *budget)
{
    scope->limited = budget && budget->tokens > 0;
    scope->limit = scope->limited ? budget->tokens : 0;
    scope->reserve_kept = scope->limited ? budget->reserve : 0;
    scope->window = budget ? budget->window : MESH_WINDOW_ROLLING;
    scope->window_s = budget && budget->window_s > 0 ? budget->window_s : 3600;
    scope->slot_ms = (int64_t) scope->window_s * 1000 / S_SLOTS;
    if (scope->slot_ms < 1)
        scope->slot_ms = 1;
    mesh_tz_destroy (&scope->tz);
    if (scope->window == MESH_WINDOW_DAY) {
        char why[600];
        const char *zone = budget->time_zone ? budget->time_zone : "UTC";
        scope->tz = mesh_tz_load (zone, why, sizeof why);
        if (!scope->tz) {
            //  Checked when the config loaded; gone since: UTC, said loudly.
            mesh_err ("tokens: %s: %s; counting its days in UTC", scope->key, why);
            scope->tz = mesh_tz_load ("UTC", why, sizeof why);
        }
        if (!scope->tz) {
            mesh_err ("tokens: %s: no UTC zone either (%s): a rolling day instead", scope->key,
                      why);
            scope->window = MESH_WINDOW_ROLLING;
            scope->window_s = 86400;
            scope->slot_ms = 86400 * 1000 / S_SLOTS;
        }
        scope->day_start = scope->day_next = 0;
    }
}

static s_scope_t *
s_scope (mesh_tokens_t *self, const char *key, const mesh_budget_config_t *budget, bool create)
{
    s_scope_t *scope = zhashx_lookup (self->scopes, key);
    if (scope || !create)
        return scope;
    scope = calloc (1, sizeof *scope);
    if (!scope || !(scope->key = strdup (key))) {
        free (scope);
        return NULL;
    }
    scope->incident = strncmp (key, "incident:", 9) == 0;
    if (scope->incident)
        self->incidents++;
    s_set_window (scope, budget);
    zhashx_insert (self->scopes, key, scope);
    return scope;
}

static bool
s_same_window (const s_scope_t *scope, const mesh_budget_config_t *budget)
{
    mesh_window_kind_t kind = budget ? budget->window : MESH_WINDOW_ROLLING;
    int window_s = budget && budget->window_s > 0 ? budget->window_s : 3600;
    if (kind != scope->window)
        return false;
    if (kind == MESH_WINDOW_ROLLING)
        return window_s == scope->window_s;
    const char *zone = budget->time_zone ? budget->time_zone : "UTC";
    return scope->tz && strcmp (zone, mesh_tz_name (scope->tz)) == 0;
}

//  Give KEY the budget BUDGET (NULL: unlimited), keeping what it used.
static void
s_configure (mesh_tokens_t *self, const char *key, const mesh_budget_config_t *budget)
{
    s_scope_t *scope = s_scope (self, key, budget, false);
    if (!scope) {
        s_scope (self, key, budget, true);
        return;
    }
    if (s_same_window (scope, budget)) {
        scope->limited = budget && budget->tokens > 0;
        scope->limit = scope->limited ? budget->tokens : 0;
        scope->reserve_kept = scope->limited ? budget->reserve : 0;
        return;
    }
    int64_t now = s_now (self);
    long used = s_used (scope, now);
    memset (scope->slot_id, 0, sizeof scope->slot_id);
    memset (scope->slot, 0, sizeof scope->slot);
    scope->day_used = 0;
    s_set_window (scope, budget);
    s_charge_scope (scope, used, now);
    scope->level = 0;
}

void
mesh_tokens_reconfigure (mesh_tokens_t *self, const mesh_config_t *cfg)
{
    s_configure (self, "daemon", &cfg->budget);
    char key[MESH_TOKENS_SCOPE_MAX];
    for (size_t i = 0; i < cfg->agent_count; i++) {
        snprintf (key, sizeof key, "agent:%s", cfg->agents[i].name);
        s_configure (self, key, &cfg->agents[i].reason.budget);
    }
    for (size_t i = 0; i < cfg->backend_count; i++) {
        snprintf (key, sizeof key, "backend:%s", cfg->backends[i].name);
        s_configure (self, key, &cfg->backends[i].budget);
    }
    for (size_t i = 0; i < cfg->action_count; i++) {
        snprintf (key, sizeof key, "action:%s", cfg->actions[i].name);
        s_configure (self, key, &cfg->actions[i].budget);
    }
    //  What each agent may ask for: its backend, its actions, its incidents' cap.
    zhashx_purge (self->agents);
    for (size_t i = 0; i < cfg->agent_count; i++) {
        const mesh_agent_config_t *agent = &cfg->agents[i];
        s_agent_t *entry = calloc (1, sizeof *entry);
        if (!entry)
            continue;
        entry->cap = agent->reason.incident_token_cap;
        entry->backends = json_array ();
        for (size_t j = 0; j < agent->reason.backend_count; j++)
            json_array_append_new (entry->backends, json_string (agent->reason.backends[j]));
        if (!agent->reason.backend_count && agent->reason.backend)
            json_array_append_new (entry->backends, json_string (agent->reason.backend));
        entry->actions = json_array ();
        for (size_t j = 0; j < agent->action_count; j++)
            json_array_append_new (entry->actions, json_string (agent->actions[j]));
        entry->may_be_high = agent->reason.high_priority || agent->reason.high_priority_when;
        zhashx_update (self->agents, agent->name, entry);
    }
}

//  --- thresholds -----------------------------------------------------------------

static const char *
s_iso (int64_t ms, char *buf, size_t size)
{
    if (!ms)
        return NULL;
    mesh_silence_format_time (ms, buf, size);
    return buf;
}

//  Record a `budget` record when SCOPE crossed 50, 80 or 100 % of its window (used and
//  reserved together); re-armed when it falls back below 50 % (a rolling window moving
//  on) or a new day starts.
static void
s_threshold (mesh_tokens_t *self, s_scope_t *scope, int64_t now)
{
    if (!scope->limited || scope->incident)
        return;
    long used = s_used (scope, now);
    long held = s_saturating (used, scope->reserved);
    int pct = (int) (held >= scope->limit ? 100 : (held * 100) / scope->limit);
    int level = pct >= 100 ? 100 : pct >= 80 ? 80 : pct >= 50 ? 50 : 0;
    if (level < 50 && scope->level) {
        scope->level = 0;
        return;
    }
    if (level <= scope->level)
        return;
    scope->level = level;
    if (!self->record)
        return;
    char resets[40];
    json_t *record = json_pack ("{ss ss si sI sI sI ss}", "type", "budget", "scope", scope->key,
                                "threshold", level, "used", (json_int_t) used, "reserved",
                                (json_int_t) scope->reserved, "limit",
                                (json_int_t) scope->limit, "window",
                                scope->window == MESH_WINDOW_DAY ? "day" : "rolling");
    if (scope->window == MESH_WINDOW_DAY)
        json_object_set_new (record, "time_zone", json_string (mesh_tz_name (scope->tz)));
    else
        json_object_set_new (record, "window_s", json_integer (scope->window_s));
    const char *at = s_iso (s_resets_at (scope, now), resets, sizeof resets);
    json_object_set_new (record, "resets_at", at ? json_string (at) : json_null ());
    mesh_notice ("budget %s: %d%% of its window (%ld used + %ld reserved of %ld)", scope->key,
                 level, used, scope->reserved, scope->limit);
    self->record (self->record_arg, record);
    json_decref (record);
}

//  --- the journal ----------------------------------------------------------------

//  Write LINE to the journal; the caller holds the lock.
static int
s_write_locked (mesh_tokens_t *self, json_t *line)
{
    char *text = json_dumps (line, JSON_COMPACT);
    if (!text)
        return -1;
    size_t length = strlen (text);
    text[length] = '\n';
    size_t done = 0;
    while (done < length + 1) {
        ssize_t n = write (self->fd, text + done, length + 1 - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            mesh_err ("tokens: cannot append to %s: %s", self->journal,
                      n < 0 ? strerror (errno) : "short write");
            free (text);
            return -1;
        }
        done += (size_t) n;
    }
    free (text);
    self->written++;
    self->journal_bytes += (off_t) (length + 1);
    return 0;
}

static int
s_append_line (mesh_tokens_t *self, json_t *line)
{
    pthread_mutex_lock (&self->lock);
    int rc = s_write_locked (self, line);
    pthread_cond_broadcast (&self->cond);
    pthread_mutex_unlock (&self->lock);
    return rc;
}

static json_t *
s_keys_json (char *const *keys, size_t count)
{
    json_t *array = json_array ();
    for (size_t i = 0; i < count; i++)
        json_array_append_new (array, json_string (keys[i]));
    return array;
}

static int s_compact (mesh_tokens_t *self);

int
mesh_tokens_flush (mesh_tokens_t *self)
{
    int rc = 0;
    pthread_mutex_lock (&self->lock);
    uint64_t target = self->written, errors = self->sync_errors;
    if (self->has_syncer) {
        pthread_cond_broadcast (&self->cond);
        while (self->synced < target)
            pthread_cond_wait (&self->cond, &self->lock);
        rc = self->sync_errors != errors ? -1 : 0;
    }
    else
    if (self->synced < target) {
        if (fdatasync (self->fd) != 0) {
            mesh_err ("tokens: cannot sync %s: %s", self->journal, strerror (errno));
            self->sync_errors++;
            rc = -1;
        }
        self->synced = target;
    }
    pthread_mutex_unlock (&self->lock);
    mesh_tokens_maintain (self);
    return rc;
}

void
mesh_tokens_maintain (mesh_tokens_t *self)
{
    //  Bounded: past S_COMPACT_BYTES the journal is rewritten as the scopes' state.
    if (self->journal_bytes > S_COMPACT_BYTES && s_compact (self) == 0)
        mesh_info ("tokens: %s compacted", self->journal);
}

void
mesh_tokens_woken (mesh_tokens_t *self)
{
    zsock_wait (self->wake_main);
    pthread_mutex_lock (&self->lock);
    self->wake_pending = false;
    pthread_mutex_unlock (&self->lock);
}

uint64_t
mesh_tokens_written (mesh_tokens_t *self)
{
    pthread_mutex_lock (&self->lock);
    uint64_t written = self->written;
    pthread_mutex_unlock (&self->lock);
    return written;
}

uint64_t
mesh_tokens_synced (mesh_tokens_t *self, uint64_t *errors_p)
{
    pthread_mutex_lock (&self->lock);
    uint64_t synced = self->synced;
    if (errors_p)
        *errors_p = self->sync_errors;
    pthread_mutex_unlock (&self->lock);
    return synced;
}

//  The syncer: whenever lines were written since the last sync, one fdatasync for all
//  of them, then a word to the main loop.
static void *
s_syncer (void *arg)
{
    mesh_tokens_t *self = arg;
    pthread_mutex_lock (&self->lock);
    while (true) {
        while (!self->stop && self->synced == self->written)
            pthread_cond_wait (&self->cond, &self->lock);
        if (self->synced == self->written)
            break;                      //  stopping, and nothing left to sync
        uint64_t target = self->written;
        int fd = self->fd;
        self->syncing = true;
        pthread_mutex_unlock (&self->lock);
        int rc = fdatasync (fd);
        int error = errno;
        pthread_mutex_lock (&self->lock);
        self->syncing = false;
        if (rc != 0) {
            mesh_err ("tokens: cannot sync %s: %s", self->journal, strerror (error));
            self->sync_errors++;
        }
        if (target > self->synced)
            self->synced = target;
        pthread_cond_broadcast (&self->cond);
        //  At most one word in flight: the main loop may be busy for a while, and a
        //  syncer blocked on a full socket would sync nothing more.
        bool wake = !self->wake_pending;
        self->wake_pending = true;
        pthread_mutex_unlock (&self->lock);
        if (wake)
            zsock_signal (self->wake_syncer, 0);
        pthread_mutex_lock (&self->lock);
    }
    pthread_mutex_unlock (&self->lock);
    return NULL;
}

zsock_t *
mesh_tokens_start_syncer (mesh_tokens_t *self)
{
    if (self->has_syncer)
        return self->wake_main;
    char bind[80], connect[80];
    snprintf (bind, sizeof bind, "@inproc://meshd-tokens-%p", (void *) self);
    snprintf (connect, sizeof connect, ">inproc://meshd-tokens-%p", (void *) self);
    self->wake_main = zsock_new_pair (bind);
    self->wake_syncer = self->wake_main ? zsock_new_pair (connect) : NULL;
    if (!self->wake_syncer || pthread_create (&self->syncer, NULL, s_syncer, self) != 0) {
        zsock_destroy (&self->wake_syncer);
        zsock_destroy (&self->wake_main);
        return NULL;
    }
    self->has_syncer = true;
    return self->wake_main;
}

//  Write every scope's state as compacted charges to a new journal and put it in place.
static int s_compact_locked (mesh_tokens_t *self);

static int
s_compact (mesh_tokens_t *self)
{
    pthread_mutex_lock (&self->lock);
    while (self->syncing)
        pthread_cond_wait (&self->cond, &self->lock);
    int rc = s_compact_locked (self);
    pthread_cond_broadcast (&self->cond);
    pthread_mutex_unlock (&self->lock);
    return rc;
}

static int
s_compact_locked (mesh_tokens_t *self)
{
    char *tmp = zsys_sprintf ("%s.tmp", self->journal);
    int fd = tmp ? open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : -1;
    if (fd < 0) {
        mesh_err ("tokens: cannot write %s: %s", tmp ? tmp : "?", strerror (errno));
        zstr_free (&tmp);
        return -1;
    }
    int old = self->fd;
    self->fd = fd;
    self->journal_bytes = 0;
    int rc = 0;
    int64_t now = s_now (self);
    for (s_scope_t *scope = zhashx_first (self->scopes); scope && rc == 0;
         scope = zhashx_next (self->scopes)) {
        char *key = scope->key;
        json_t *keys = s_keys_json (&key, 1);
        if (scope->incident) {
            if (scope->total > 0) {
                json_t *line = json_pack ("{sI sI sI sO}", "c", (json_int_t) 0, "at",
                                          (json_int_t) scope->touched, "n",
                                          (json_int_t) scope->total, "s", keys);
                rc = s_write_locked (self, line);
                json_decref (line);
            }
        }
        else
        if (scope->window == MESH_WINDOW_DAY) {
            long used = s_used (scope, now);
            if (used > 0) {
                json_t *line = json_pack ("{sI sI sI sO}", "c", (json_int_t) 0, "at",
                                          (json_int_t) scope->day_start * 1000, "n",
                                          (json_int_t) used, "s", keys);
                rc = s_write_locked (self, line);
                json_decref (line);
            }
        }
        else {
            int64_t now_id = now / scope->slot_ms;
            for (int i = 0; i < S_SLOTS && rc == 0; i++) {
                if (!scope->slot[i] || scope->slot_id[i] <= now_id - S_SLOTS)
                    continue;
                json_t *line = json_pack ("{sI sI sI sO}", "c", (json_int_t) 0, "at",
                                          (json_int_t) (scope->slot_id[i] * scope->slot_ms),
                                          "n", (json_int_t) scope->slot[i], "s", keys);
                rc = s_write_locked (self, line);
                json_decref (line);
            }
        }
        json_decref (keys);
    }
    //  Grants still outstanding stay grants.
    for (s_grant_t *grant = zhashx_first (self->grants); grant && rc == 0;
         grant = zhashx_next (self->grants)) {
        json_t *line = json_pack ("{sI sI sI so ss}", "g", (json_int_t) grant->id, "at",
                                  (json_int_t) grant->at, "n", (json_int_t) grant->need, "s",
                                  s_keys_json (grant->keys, grant->count), "i", grant->instance);
        rc = s_write_locked (self, line);
        json_decref (line);
    }
    if (rc == 0 && fdatasync (fd) != 0)
        rc = -1;
    if (rc == 0 && rename (tmp, self->journal) != 0)
        rc = -1;
    if (rc == 0) {
        char *copy = strdup (self->journal);
        int dir = copy ? open (dirname (copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
        if (dir >= 0) {
            fsync (dir);
            close (dir);
        }
        free (copy);
        if (old >= 0)
            close (old);
        self->synced = self->written;   //  the new file is synced whole
    }
    else {
        mesh_err ("tokens: cannot compact %s: %s", self->journal, strerror (errno));
        close (fd);
        unlink (tmp);
        self->fd = old;
        struct stat st;
        self->journal_bytes = old >= 0 && fstat (old, &st) == 0 ? st.st_size : 0;
    }
    zstr_free (&tmp);
    return rc;
}

//  Charge N to every scope in KEYS at AT (creating unknown ones: unlimited, or an
//  incident's).
static void
s_charge_keys (mesh_tokens_t *self, json_t *keys, long n, int64_t at)
{
    size_t i;
    json_t *key;
    json_array_foreach (keys, i, key) {
        const char *text = json_string_value (key);
        s_scope_t *scope = text ? s_scope (self, text, NULL, true) : NULL;
        if (scope)
            s_charge_scope (scope, n, at);
    }
}

static s_grant_t *
s_grant_new (int64_t id, const char *instance, long need, int64_t at)
{
    s_grant_t *grant = calloc (1, sizeof *grant);
    if (!grant)
        return NULL;
    grant->id = id;
    grant->instance = strdup (instance ? instance : "?");
    grant->need = need;
    grant->at = at;
    return grant;
}

//  Replay the journal.  A line that is not one of ours is skipped (logged; a torn last
//  line after a crash is expected); the decision log, not this file, is the evidence.
static void
s_replay (mesh_tokens_t *self, FILE *file)
{
    char *line = NULL;
    size_t size = 0;
    ssize_t length;
    size_t number = 0, bad = 0;
    while ((length = getline (&line, &size, file)) >= 0) {
        number++;
        if (length > S_LINE_MAX) {
            bad++;
            continue;
        }
        json_t *entry = json_loads (line, 0, NULL);
        json_t *keys = json_object_get (entry, "s");
        json_int_t at = json_integer_value (json_object_get (entry, "at"));
        json_int_t n = json_integer_value (json_object_get (entry, "n"));
        json_t *g = json_object_get (entry, "g"), *c = json_object_get (entry, "c");
        if (!json_is_array (keys) || json_array_size (keys) > S_MAX_SCOPES || n < 0
            || (json_is_integer (g) == json_is_integer (c))) {
            bad++;
            json_decref (entry);
            continue;
        }
        char id[32];
        if (json_is_integer (g)) {
            snprintf (id, sizeof id, "%" JSON_INTEGER_FORMAT, json_integer_value (g));
            s_grant_t *grant = s_grant_new (json_integer_value (g),
                                            json_string_value (json_object_get (entry, "i")),
                                            (long) n, at);
            size_t i;
            json_t *key;
            json_array_foreach (keys, i, key)
                if (grant && json_is_string (key))
                    grant->keys[grant->count++] = strdup (json_string_value (key));
            if (grant)
                zhashx_update (self->grants, id, grant);
            if (json_integer_value (g) >= self->next_grant)
                self->next_grant = json_integer_value (g) + 1;
        }
        else {
            if (json_integer_value (c) > 0) {
                snprintf (id, sizeof id, "%" JSON_INTEGER_FORMAT, json_integer_value (c));
                zhashx_delete (self->grants, id);
            }
            s_charge_keys (self, keys, (long) n, at);
        }
        json_decref (entry);
    }
    free (line);
    if (bad)
        mesh_warn ("tokens: %s: skipped %zu of %zu lines that are not the ledger's (a line cut "
                   "by a crash is expected at the end)", self->journal, bad, number);
    //  Grants of a life that ended with meshd: the server may have generated; in full.
    size_t released = 0;
    for (s_grant_t *grant = zhashx_first (self->grants); grant;
         grant = zhashx_next (self->grants)) {
        json_t *keys = s_keys_json (grant->keys, grant->count);
        s_charge_keys (self, keys, grant->need, grant->at);
        json_decref (keys);
        released++;
    }
    zhashx_purge (self->grants);
    if (released)
        mesh_notice ("tokens: %zu reservation(s) held when meshd stopped were charged in full",
                     released);
}

mesh_tokens_t *
mesh_tokens_new (const mesh_config_t *cfg, const char *journal, char *why, size_t why_size)
{
    mesh_tokens_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (why, why_size, "out of memory");
        return NULL;
    }
    self->fd = -1;
    pthread_mutex_init (&self->lock, NULL);
    pthread_cond_init (&self->cond, NULL);
    self->clock = s_wall_ms;
    self->next_grant = 1;
    self->scopes = zhashx_new ();
    self->grants = zhashx_new ();
    self->agents = zhashx_new ();
    self->journal = strdup (journal);
    self->by_rule = json_object ();
    self->by_result = json_object ();
    self->refused_by = json_object ();
    if (!self->scopes || !self->grants || !self->agents || !self->journal) {
        snprintf (why, why_size, "out of memory");
        mesh_tokens_destroy (&self);
        return NULL;
    }
    zhashx_set_destructor (self->scopes, s_scope_free);
    zhashx_set_destructor (self->grants, s_grant_free);
    zhashx_set_destructor (self->agents, s_agent_free);
    mesh_tokens_reconfigure (self, cfg);
    FILE *file = fopen (journal, "re");
    if (!file && errno != ENOENT) {
        snprintf (why, why_size, "cannot read %s: %s", journal, strerror (errno));
        mesh_tokens_destroy (&self);
        return NULL;
    }
    if (file) {
        s_replay (self, file);
        fclose (file);
    }
    if (s_compact (self) != 0) {
        snprintf (why, why_size, "cannot write %s: %s", journal, strerror (errno));
        mesh_tokens_destroy (&self);
        return NULL;
    }
    //  Thresholds already crossed in this window are not recorded again.
    int64_t now = s_now (self);
    for (s_scope_t *scope = zhashx_first (self->scopes); scope;
         scope = zhashx_next (self->scopes)) {
        mesh_tokens_record_fn *keep = self->record;
        self->record = NULL;
        s_threshold (self, scope, now);
        self->record = keep;
    }
    return self;
}

void
mesh_tokens_destroy (mesh_tokens_t **self_p)
{
    mesh_tokens_t *self = *self_p;
    if (!self)
        return;
    if (self->has_syncer) {
        pthread_mutex_lock (&self->lock);
        self->stop = true;
        pthread_cond_broadcast (&self->cond);
        pthread_mutex_unlock (&self->lock);
        pthread_join (self->syncer, NULL);
        self->has_syncer = false;
    }
    zsock_destroy (&self->wake_syncer);
    zsock_destroy (&self->wake_main);
    if (self->fd >= 0) {
        mesh_tokens_flush (self);
        close (self->fd);
    }
    pthread_mutex_destroy (&self->lock);
    pthread_cond_destroy (&self->cond);
    zhashx_destroy (&self->scopes);
    zhashx_destroy (&self->grants);
    zhashx_destroy (&self->agents);
    free (self->journal);
    json_decref (self->by_rule);
    json_decref (self->by_result);
    json_decref (self->refused_by);
    free (self);
    *self_p = NULL;
}

void
mesh_tokens_set_clock (mesh_tokens_t *self, mesh_tokens_clock_fn *fn, void *arg)
{
    self->clock = fn ? fn : s_wall_ms;
    self->clock_arg = fn ? arg : NULL;
}

void
mesh_tokens_set_recorder (mesh_tokens_t *self, mesh_tokens_record_fn *fn, void *arg)
{
    self->record = fn;
    self->record_arg = arg;
}

long
mesh_tokens_reserved (const mesh_tokens_t *self)
{
    return self->reserved;
}

//  --- reserve, settle, release ------------------------------------------------------

static int
s_by_time (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y ? -1 : x > y;
}

//  At the bound, forget the incident scopes idle for long and at least the least
//  recently used quarter (so the scan runs once per S_INCIDENTS_MAX / 4 new incidents,
//  not once per reservation).  One that holds a reservation stays.
static void
s_prune_incidents (mesh_tokens_t *self, int64_t now)
{
    if (self->incidents < S_INCIDENTS_MAX)
        return;
    int64_t *times = malloc (self->incidents * sizeof *times);
    size_t count = 0;
    for (s_scope_t *scope = zhashx_first (self->scopes); scope && times;
         scope = zhashx_next (self->scopes))
        if (scope->incident && count < self->incidents)
            times[count++] = scope->touched;
    int64_t cut = now - S_INCIDENT_IDLE_MS;
    if (times && count) {
        qsort (times, count, sizeof *times, s_by_time);
        if (times[count / 4] > cut)
            cut = times[count / 4];
    }
    free (times);
    zlist_t *gone = zlist_new ();
    for (s_scope_t *scope = zhashx_first (self->scopes); scope;
         scope = zhashx_next (self->scopes))
        if (scope->incident && !scope->reserved && scope->touched <= cut)
            zlist_append (gone, scope->key);
    for (char *key = zlist_first (gone); key; key = zlist_next (gone)) {
        zhashx_delete (self->scopes, key);
        self->incidents--;
    }
    zlist_destroy (&gone);
}

static void
s_refuse (mesh_tokens_t *self, mesh_tokens_grant_t *out, const char *scope, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

static void
s_refuse (mesh_tokens_t *self, mesh_tokens_grant_t *out, const char *scope, const char *fmt, ...)
{
    out->granted = false;
    out->grant = 0;
    snprintf (out->scope, sizeof out->scope, "%s", scope);
    va_list args;
    va_start (args, fmt);
    vsnprintf (out->detail, sizeof out->detail, fmt, args);
    va_end (args);
    self->run_refused++;
    s_add (self->refused_by, scope, 1);
}

//  True when NAME is in NAMES (an agent's backends or actions, as configured).
static bool
s_has_name (json_t *names, const char *name)
{
    size_t i;
    json_t *entry;
    json_array_foreach (names, i, entry)
        if (name && !strcmp (json_string_value (entry), name))
            return true;
    return false;
}

static bool
s_has_action (const s_agent_t *agent, const char *name)
{
    return s_has_name (agent ? agent->actions : NULL, name);
}

static int s_reserve (mesh_tokens_t *self, const char *instance, const mesh_tokens_ask_t *ask,
                      mesh_tokens_grant_t *out);

int
mesh_tokens_reserve (mesh_tokens_t *self, const char *instance, const mesh_tokens_ask_t *ask,
                     mesh_tokens_grant_t *out)
{
    int rc = s_reserve (self, instance, ask, out);
    out->agent_used = 0;
    out->agent_limit = -1;
    char key[MESH_TOKENS_SCOPE_MAX];
    snprintf (key, sizeof key, "agent:%s", ask->agent ? ask->agent : "");
    s_scope_t *scope = zhashx_lookup (self->scopes, key);
    if (scope) {
        out->agent_used = s_used (scope, s_now (self)) + scope->reserved;
        out->agent_limit = scope->limited ? scope->limit : -1;
    }
    return rc;
}

static int
s_reserve (mesh_tokens_t *self, const char *instance, const mesh_tokens_ask_t *ask,
           mesh_tokens_grant_t *out)
{
    memset (out, 0, sizeof *out);
    int64_t now = s_now (self);
    s_agent_t *agent = ask->agent ? zhashx_lookup (self->agents, ask->agent) : NULL;
    if (!agent) {
        s_refuse (self, out, "agent", "agent '%.64s' is not in the config in force",
                  ask->agent ? ask->agent : "?");
        return 0;
    }
    if (ask->need < 0 || !ask->incident || strlen (ask->incident) > 64) {
        s_refuse (self, out, "request", "a reservation needs an incident id and tokens >= 0");
        return 0;
    }
    //  The agent names its backend and action; both must be its own.
    if (!s_has_name (agent->backends, ask->backend)) {
        s_refuse (self, out, "request", "backend '%.64s' is not agent %s's", 
                  ask->backend ? ask->backend : "?", ask->agent);
        return 0;
    }
    //  An action that is not the agent's own has no scope here.
    const char *action = s_has_action (agent, ask->action) ? ask->action : NULL;
    size_t i;
    bool high = ask->high && agent->may_be_high;
    char keys[S_MAX_SCOPES][MESH_TOKENS_SCOPE_MAX];
    size_t count = 0;
    snprintf (keys[count++], MESH_TOKENS_SCOPE_MAX, "daemon");
    snprintf (keys[count++], MESH_TOKENS_SCOPE_MAX, "agent:%s", ask->agent);
    snprintf (keys[count++], MESH_TOKENS_SCOPE_MAX, "backend:%s", ask->backend);
    if (action)
        snprintf (keys[count++], MESH_TOKENS_SCOPE_MAX, "action:%s", action);
    snprintf (keys[count++], MESH_TOKENS_SCOPE_MAX, "incident:%s", ask->incident);
    s_prune_incidents (self, now);
    s_scope_t *scopes[S_MAX_SCOPES];
    for (i = 0; i < count; i++) {
        scopes[i] = s_scope (self, keys[i], NULL, true);
        if (!scopes[i]) {
            s_refuse (self, out, keys[i], "out of memory");
            return 0;
        }
    }
    s_scope_t *incident = scopes[count - 1];
    incident->limited = true;
    incident->limit = agent->cap;
    if (!incident->touched)
        incident->touched = now;
    //  All or nothing: every scope must hold it.
    for (i = 0; i < count; i++) {
        s_scope_t *scope = scopes[i];
        if (!scope->limited)
            continue;
        long used = s_used (scope, now);
        long kept = high ? 0 : scope->reserve_kept;
        long left = scope->limit - kept - used - scope->reserved;
        if (ask->need <= left)
            continue;
        char resets[40];
        const char *at = s_iso (s_resets_at (scope, now), resets, sizeof resets);
        if (kept && ask->need <= left + kept)
            s_refuse (self, out, scope->key, "%s: step %d needs %ld tokens; %ld used + %ld "
                      "reserved of %ld leaves only the reserve of %ld kept for high-priority "
                      "incidents%s%s", scope->key, ask->step, ask->need, used, scope->reserved,
                      scope->limit, kept, at ? "; frees from " : "", at ? at : "");
        else
            s_refuse (self, out, scope->key, "%s: step %d needs %ld tokens, %ld used + %ld "
                      "reserved of %ld%s%s", scope->key, ask->step, ask->need, used,
                      scope->reserved, scope->limit, at ? "; frees from " : "", at ? at : "");
        return 0;
    }
    s_grant_t *grant = s_grant_new (self->next_grant, instance, ask->need, now);
    if (!grant) {
        s_refuse (self, out, "daemon", "out of memory");
        return 0;
    }
    for (i = 0; i < count; i++)
        grant->keys[grant->count++] = strdup (keys[i]);
    json_t *line = json_pack ("{sI sI sI so ss}", "g", (json_int_t) grant->id, "at",
                              (json_int_t) now, "n", (json_int_t) ask->need, "s",
                              s_keys_json (grant->keys, grant->count), "i", grant->instance);
    int rc = s_append_line (self, line);
    json_decref (line);
    if (rc != 0) {
        void *item = grant;
        s_grant_free (&item);
        s_refuse (self, out, "daemon", "the token journal %s cannot be written", self->journal);
        return -1;
    }
    char id[32];
    snprintf (id, sizeof id, "%" PRId64, grant->id);
    zhashx_insert (self->grants, id, grant);
    self->next_grant++;
    for (i = 0; i < count; i++)
        scopes[i]->reserved = s_saturating (scopes[i]->reserved, ask->need);
    self->reserved = s_saturating (self->reserved, ask->need);
    self->run_grants++;
    out->granted = true;
    out->grant = grant->id;
    for (i = 0; i < count; i++)
        s_threshold (self, scopes[i], now);
    return 0;
}

//  Charge GRANT N tokens (its scopes plus EXTRA, an action's), drop it.
static void
s_close_grant (mesh_tokens_t *self, s_grant_t *grant, long n, const char *extra, int64_t now)
{
    char *keys[S_MAX_SCOPES + 1];
    size_t count = 0;
    for (size_t i = 0; i < grant->count; i++)
        keys[count++] = grant->keys[i];
    bool extra_new = extra;
    for (size_t i = 0; extra && i < grant->count; i++)
        if (!strcmp (grant->keys[i], extra))
            extra_new = false;
    if (extra_new)
        keys[count++] = (char *) extra;
    json_t *line = json_pack ("{sI sI sI so}", "c", (json_int_t) grant->id, "at",
                              (json_int_t) now, "n", (json_int_t) n, "s",
                              s_keys_json (keys, count));
    s_append_line (self, line);         //  a failure is logged; the charge stands in memory
    json_decref (line);
    for (size_t i = 0; i < count; i++) {
        s_scope_t *scope = s_scope (self, keys[i], NULL, true);
        if (!scope)
            continue;
        if (i < grant->count) {
            scope->reserved -= grant->need;
            if (scope->reserved < 0)
                scope->reserved = 0;
        }
        s_charge_scope (scope, n, now);
        s_threshold (self, scope, now);
    }
    self->reserved -= grant->need;
    if (self->reserved < 0)
        self->reserved = 0;
    self->run_charged = s_saturating (self->run_charged, n);
    char id[32];
    snprintf (id, sizeof id, "%" PRId64, grant->id);
    zhashx_delete (self->grants, id);
}

int
mesh_tokens_settle (mesh_tokens_t *self, const char *instance, int64_t id,
                    const mesh_tokens_charge_t *charge, json_t **budget)
{
    if (budget)
        *budget = NULL;
    char key[32];
    snprintf (key, sizeof key, "%" PRId64, id);
    s_grant_t *grant = zhashx_lookup (self->grants, key);
    if (!grant || strcmp (grant->instance, instance) != 0)
        return -1;
    char agent_key[MESH_TOKENS_SCOPE_MAX] = "";
    if (grant->count > 1)
        snprintf (agent_key, sizeof agent_key, "%s", grant->keys[1]);
    //  An action's scope is charged when the attempt proposed one of the agent's actions
    //  (a model naming another agent's action spends nothing of that action's budget).
    char action[MESH_TOKENS_SCOPE_MAX] = "";
    const s_agent_t *agent = agent_key[0] ? zhashx_lookup (self->agents, agent_key + 6) : NULL;
    if (s_has_action (agent, charge->action) && strlen (charge->action) < 100)
        snprintf (action, sizeof action, "action:%s", charge->action);
    long n = charge->charged > 0 ? charge->charged : 0;
    s_close_grant (self, grant, n, action[0] ? action : NULL, s_now (self));
    self->run_settles++;
    s_add (self->by_rule, charge->rule, n);
    s_add (self->by_result, charge->result, n);
    if (budget && agent_key[0])
        *budget = mesh_tokens_scope (self, agent_key);
    return 0;
}

size_t
mesh_tokens_release (mesh_tokens_t *self, const char *instance)
{
    zlist_t *mine = zlist_new ();
    for (s_grant_t *grant = zhashx_first (self->grants); grant;
         grant = zhashx_next (self->grants))
        if (!strcmp (grant->instance, instance))
            zlist_append (mine, grant);
    size_t count = 0;
    int64_t now = s_now (self);
    for (s_grant_t *grant = zlist_first (mine); grant; grant = zlist_next (mine)) {
        long need = grant->need;
        s_close_grant (self, grant, need, NULL, now);
        self->run_released++;
        s_add (self->by_rule, "released", need);
        s_add (self->by_result, "agent_died", need);
        count++;
    }
    zlist_destroy (&mine);
    if (count)
        mesh_warn ("tokens: %s died holding %zu reservation(s): charged in full (the server "
                   "may have generated)", instance, count);
    return count;
}

//  --- reports ------------------------------------------------------------------------

static json_t *
s_scope_json (mesh_tokens_t *self, s_scope_t *scope, int64_t now)
{
    long used = s_used (scope, now);
    long burn = 0;
    int64_t burn_now = now / S_BURN_MS;
    for (int i = 0; i < S_BURN_SLOTS; i++)
        if (scope->burn_id[i] > burn_now - S_BURN_SLOTS && scope->burn_id[i] <= burn_now)
            burn += scope->burn[i];
    char resets[40];
    const char *at = s_iso (s_resets_at (scope, now), resets, sizeof resets);
    json_t *out = json_pack ("{ss so sI sI so sI ss sf so si}", "scope", scope->key, "limit",
                             scope->limited ? json_integer (scope->limit) : json_null (), "used",
                             (json_int_t) used, "reserved", (json_int_t) scope->reserved,
                             "remaining",
                             scope->limited ? json_integer (scope->limit - used - scope->reserved
                                                            > 0
                                                                ? scope->limit - used
                                                                      - scope->reserved
                                                                : 0)
                                            : json_null (),
                             "reserve", (json_int_t) scope->reserve_kept, "window",
                             scope->incident ? "incident"
                             : scope->window == MESH_WINDOW_DAY ? "day" : "rolling",
                             "burn_per_min", burn / 5.0, "resets_at",
                             at ? json_string (at) : json_null (), "level", scope->level);
    if (!scope->incident && scope->window == MESH_WINDOW_DAY)
        json_object_set_new (out, "time_zone", json_string (mesh_tz_name (scope->tz)));
    else
    if (!scope->incident)
        json_object_set_new (out, "window_s", json_integer (scope->window_s));
    return out;
}

json_t *
mesh_tokens_scope (mesh_tokens_t *self, const char *key)
{
    s_scope_t *scope = zhashx_lookup (self->scopes, key);
    return scope ? s_scope_json (self, scope, s_now (self)) : NULL;
}

static int
s_by_key (const void *a, const void *b)
{
    const char *x = json_string_value (json_object_get (*(json_t *const *) a, "scope"));
    const char *y = json_string_value (json_object_get (*(json_t *const *) b, "scope"));
    //  daemon first, then agents, backends, actions, in name order.
    int rx = !strcmp (x, "daemon") ? 0 : !strncmp (x, "agent:", 6) ? 1
             : !strncmp (x, "backend:", 8) ? 2 : 3;
    int ry = !strcmp (y, "daemon") ? 0 : !strncmp (y, "agent:", 6) ? 1
             : !strncmp (y, "backend:", 8) ? 2 : 3;
    return rx != ry ? rx - ry : strcmp (x, y);
}

json_t *
mesh_tokens_status (mesh_tokens_t *self)
{
    int64_t now = s_now (self);
    size_t count = 0, incidents = 0;
    json_t **items = calloc (zhashx_size (self->scopes) + 1, sizeof *items);
    for (s_scope_t *scope = zhashx_first (self->scopes); scope && items;
         scope = zhashx_next (self->scopes)) {
        if (scope->incident) {
            incidents++;
            continue;
        }
        items[count++] = s_scope_json (self, scope, now);
    }
    if (items)
        qsort (items, count, sizeof *items, s_by_key);
    json_t *scopes = json_array ();
    for (size_t i = 0; i < count; i++)
        json_array_append_new (scopes, items[i]);
    free (items);
    return json_pack ("{so sI sI sI s{sI sI sI sI sI sO sO sO}}", "scopes", scopes, "reserved",
                      (json_int_t) self->reserved, "outstanding",
                      (json_int_t) zhashx_size (self->grants), "incidents_tracked",
                      (json_int_t) incidents, "run", "grants", (json_int_t) self->run_grants,
                      "refused", (json_int_t) self->run_refused, "settles",
                      (json_int_t) self->run_settles, "released",
                      (json_int_t) self->run_released, "charged",
                      (json_int_t) self->run_charged, "by_rule", self->by_rule, "by_result",
                      self->by_result, "refused_by", self->refused_by);
}

//  --- the in-process port -----------------------------------------------------------

static int
s_local_reserve (void *arg, const mesh_tokens_ask_t *ask, mesh_tokens_grant_t *grant)
{
    mesh_tokens_local_t *local = arg;
    int rc = mesh_tokens_reserve (local->tokens, local->instance, ask, grant);
    return rc == 0 && mesh_tokens_flush (local->tokens) == 0 ? 0 : -1;
}

static int
s_local_settle (void *arg, int64_t grant, const mesh_tokens_charge_t *charge, json_t **budget)
{
    mesh_tokens_local_t *local = arg;
    int rc = mesh_tokens_settle (local->tokens, local->instance, grant, charge, budget);
    mesh_tokens_flush (local->tokens);
    return rc;
}

mesh_tokens_port_t
mesh_tokens_local_port (mesh_tokens_local_t *local)
{
    return (mesh_tokens_port_t) {.reserve = s_local_reserve, .settle = s_local_settle,
                                 .arg = local};
}

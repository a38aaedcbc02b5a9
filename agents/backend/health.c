/*  health - circuit breaker, probed server facts and latency figures (see health.h).  */
#include "health.h"
#include "hist.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_MAX_ENTRIES   64
#define S_RING          512             //  latencies kept for the percentiles
#define S_DETAIL_MAX    200

typedef enum { S_CLOSED, S_OPEN, S_HALF_OPEN } s_circuit_t;

struct _mesh_health_t {
    char name[128];
    char url[512];                      //  with the name, what the entry is about
    int refs;                           //  backend objects holding it
    int failures_to_open;
    long open_ms;
    s_circuit_t circuit;
    bool probe_taken;                   //  half-open: the probe call is out
    long open_until_ms;
    long consecutive;
    long calls, failures;
    bool loading, misconfigured, down, answered;
    char detail[S_DETAIL_MAX];
    mesh_health_server_t server;
    long latency[S_RING], ttft[S_RING];
    size_t ring_count, ring_next, ttft_count, ttft_next;
    mesh_hist_t latency_hist, ttft_hist;    //  every call of this process, for /metrics
};

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static mesh_health_t *s_entries[S_MAX_ENTRIES];
static size_t s_entry_count;

long
mesh_health_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

mesh_health_t *
mesh_health_get (const mesh_backend_config_t *cfg)
{
    const char *name = cfg && cfg->name ? cfg->name : "unnamed";
    const char *url = cfg && cfg->url ? cfg->url : "";
    pthread_mutex_lock (&s_lock);
    mesh_health_t *self = NULL;
    for (size_t i = 0; i < s_entry_count && !self; i++)
        if (!strcmp (s_entries[i]->name, name) && !strncmp (s_entries[i]->url, url,
                                                            sizeof self->url - 1))
            self = s_entries[i];
    if (!self) {
        //  A new server: a free slot, else the place of one no backend holds any more.
        size_t slot = s_entry_count;
        for (size_t i = 0; slot == S_MAX_ENTRIES && i < s_entry_count; i++)
            if (s_entries[i]->refs == 0)
                slot = i;
        if (slot < S_MAX_ENTRIES && (self = calloc (1, sizeof *self))) {
            snprintf (self->name, sizeof self->name, "%s", name);
            snprintf (self->url, sizeof self->url, "%s", url);
            self->server.flavor = cfg ? cfg->flavor : MESH_FLAVOR_AUTO;
            self->server.schema_form = mesh_wire_schema_default (self->server.flavor);
            if (slot < s_entry_count)
                free (s_entries[slot]);
            else
                s_entry_count++;
            s_entries[slot] = self;
        }
    }
    if (self)
        self->refs++;
    if (self && cfg) {
        //  A reload may change the settings: the latest config wins.
        self->failures_to_open = cfg->circuit_failures > 0 ? cfg->circuit_failures : 5;
        self->open_ms = cfg->circuit_open_ms > 0 ? cfg->circuit_open_ms : 30000;
    }
    pthread_mutex_unlock (&s_lock);
    return self;
}

//  Move an open circuit to half-open once its time is up (lock held).
static void
s_tick (mesh_health_t *self, long now_ms)
{
    if (self->circuit == S_OPEN && now_ms >= self->open_until_ms) {
        self->circuit = S_HALF_OPEN;
        self->probe_taken = false;
    }
}

bool
mesh_health_admit (mesh_health_t *self, long now_ms, bool *probe, char *why, size_t size)
{
    pthread_mutex_lock (&s_lock);
    s_tick (self, now_ms);
    bool ok = true;
    *probe = false;
    if (self->circuit == S_OPEN) {
        ok = false;
        snprintf (why, size, "circuit open after %ld consecutive failures (last: %s); next "
                  "probe in %ld ms", self->consecutive, self->detail[0] ? self->detail : "?",
                  self->open_until_ms - now_ms);
    }
    else if (self->circuit == S_HALF_OPEN) {
        if (self->probe_taken) {
            ok = false;
            snprintf (why, size, "circuit half-open: the probe call is in flight");
        }
        else
            self->probe_taken = *probe = true;
    }
    pthread_mutex_unlock (&s_lock);
    return ok;
}

bool
mesh_health_available (mesh_health_t *self, long now_ms)
{
    pthread_mutex_lock (&s_lock);
    s_tick (self, now_ms);
    bool ok = self->circuit == S_CLOSED || (self->circuit == S_HALF_OPEN && !self->probe_taken);
    pthread_mutex_unlock (&s_lock);
    return ok;
}

//  Whether a failure class says the server is unwell (counts toward opening).
static bool
s_server_failure (mesh_fail_t fail)
{
    switch (fail) {
        case MESH_FAIL_MODEL_UNREACHABLE:
        case MESH_FAIL_MODEL_TIMEOUT:
        case MESH_FAIL_MODEL_PARTIAL:
        case MESH_FAIL_MODEL_RATE_LIMITED:
        case MESH_FAIL_MODEL_OVERLOADED:
        case MESH_FAIL_MODEL_LOADING:
        case MESH_FAIL_MODEL_ERROR:
            return true;
        default:
            return false;
    }
}

void
mesh_health_result (mesh_health_t *self, long now_ms, mesh_fail_t fail, long latency_ms,
                    long ttft_ms, const char *detail)
{
    pthread_mutex_lock (&s_lock);
    self->calls++;
    mesh_hist_observe (&self->latency_hist, latency_ms / 1000.0);
    if (ttft_ms >= 0)
        mesh_hist_observe (&self->ttft_hist, ttft_ms / 1000.0);
    self->latency[self->ring_next] = latency_ms;
    self->ring_next = (self->ring_next + 1) % S_RING;
    if (self->ring_count < S_RING)
        self->ring_count++;
    if (ttft_ms >= 0) {
        self->ttft[self->ttft_next] = ttft_ms;
        self->ttft_next = (self->ttft_next + 1) % S_RING;
        if (self->ttft_count < S_RING)
            self->ttft_count++;
    }
    if (fail != MESH_FAIL_NONE) {
        self->failures++;
        snprintf (self->detail, sizeof self->detail, "%s: %s", mesh_fail_name (fail),
                  detail ? detail : "");
    }
    if (fail == MESH_FAIL_MODEL_NOT_FOUND)
        self->misconfigured = true;
    if (s_server_failure (fail)) {
        self->consecutive++;
        self->down = fail == MESH_FAIL_MODEL_UNREACHABLE || fail == MESH_FAIL_MODEL_TIMEOUT;
        self->loading = fail == MESH_FAIL_MODEL_LOADING;
        if (self->circuit == S_HALF_OPEN || self->consecutive >= self->failures_to_open) {
            self->circuit = S_OPEN;
            self->open_until_ms = now_ms + self->open_ms;
        }
    }
    else if (fail == MESH_FAIL_NONE || fail == MESH_FAIL_MODEL_TRUNCATED
             || fail == MESH_FAIL_MODEL_MALFORMED || fail == MESH_FAIL_MODEL_OVERSIZE
             || fail == MESH_FAIL_MODEL_CONTEXT_OVERFLOW) {
        //  The server answered: it is up.
        self->consecutive = 0;
        self->circuit = S_CLOSED;
        self->down = self->loading = false;
        self->answered = true;
        if (fail == MESH_FAIL_NONE) {
            self->misconfigured = false;
            self->detail[0] = 0;
        }
    }
    if (self->circuit == S_HALF_OPEN)
        self->probe_taken = false;      //  a call that said nothing: the next may probe
    pthread_mutex_unlock (&s_lock);
}

void
mesh_health_put (mesh_health_t *self)
{
    if (!self)
        return;
    pthread_mutex_lock (&s_lock);
    if (self->refs > 0)
        self->refs--;
    pthread_mutex_unlock (&s_lock);
}

void
mesh_health_release (mesh_health_t *self)
{
    pthread_mutex_lock (&s_lock);
    if (self->circuit == S_HALF_OPEN)
        self->probe_taken = false;
    pthread_mutex_unlock (&s_lock);
}

void
mesh_health_server (mesh_health_t *self, mesh_health_server_t *out)
{
    pthread_mutex_lock (&s_lock);
    *out = self->server;
    pthread_mutex_unlock (&s_lock);
}

void
mesh_health_set_server (mesh_health_t *self, const mesh_health_server_t *server)
{
    pthread_mutex_lock (&s_lock);
    self->server = *server;
    if (server->model_missing)
        self->misconfigured = true;
    pthread_mutex_unlock (&s_lock);
}

void
mesh_health_schema_refused (mesh_health_t *self, mesh_wire_schema_t form,
                            mesh_wire_schema_t next)
{
    pthread_mutex_lock (&s_lock);
    if (self->server.schema_form == form)
        self->server.schema_form = next;
    pthread_mutex_unlock (&s_lock);
}

void
mesh_health_loading (mesh_health_t *self, long now_ms)
{
    (void) now_ms;
    pthread_mutex_lock (&s_lock);
    self->loading = true;
    pthread_mutex_unlock (&s_lock);
}

static int
s_compare (const void *a, const void *b)
{
    long x = *(const long *) a, y = *(const long *) b;
    return x < y ? -1 : x > y;
}

//  {p50, p95, p99} of the COUNT values in RING (nearest rank), or null.
static json_t *
s_percentiles (const long *ring, size_t count)
{
    if (count == 0)
        return json_null ();
    long sorted[S_RING];
    memcpy (sorted, ring, count * sizeof *ring);
    qsort (sorted, count, sizeof *sorted, s_compare);
    const double ranks[] = { 0.50, 0.95, 0.99 };
    const char *names[] = { "p50", "p95", "p99" };
    json_t *out = json_object ();
    for (int i = 0; i < 3; i++) {
        size_t rank = (size_t) (ranks[i] * (double) count + 0.999999);
        if (rank < 1)
            rank = 1;
        json_object_set_new (out, names[i], json_integer (sorted[rank - 1]));
    }
    return out;
}

json_t *
mesh_health_json (long now_ms)
{
    json_t *all = json_object ();
    pthread_mutex_lock (&s_lock);
    for (size_t i = 0; i < s_entry_count; i++) {
        mesh_health_t *self = s_entries[i];
        if (self->refs == 0)
            continue;                   //  a server no backend talks to any more
        s_tick (self, now_ms);
        const char *state = self->circuit == S_OPEN ? "open"
                            : self->circuit == S_HALF_OPEN ? "half_open"
                            : self->misconfigured || self->server.model_missing ? "misconfigured"
                            : self->loading ? "loading"
                            : self->down ? "down"
                            : self->answered ? "ready" : "unknown";
        json_t *entry = json_pack ("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:o, s:o}",
                                   "state", state, "detail", self->detail,
                                   "flavor", mesh_wire_flavor_name (self->server.flavor),
                                   "context_tokens", (json_int_t) self->server.context_tokens,
                                   "calls", (json_int_t) self->calls,
                                   "failures", (json_int_t) self->failures,
                                   "consecutive_failures", (json_int_t) self->consecutive,
                                   "latency_ms", s_percentiles (self->latency, self->ring_count),
                                   "ttft_ms", s_percentiles (self->ttft, self->ttft_count));
        if (entry && self->circuit == S_OPEN)
            json_object_set_new (entry, "open_for_ms",
                                 json_integer (self->open_until_ms - now_ms));
        if (entry)
            json_object_set_new (all, self->name, entry);
    }
    pthread_mutex_unlock (&s_lock);
    return all;
}

json_t *
mesh_health_hist_json (void)
{
    json_t *latency = json_object (), *ttft = json_object ();
    pthread_mutex_lock (&s_lock);
    for (size_t i = 0; i < s_entry_count; i++) {
        mesh_health_t *self = s_entries[i];
        if (self->refs == 0 || mesh_hist_count (&self->latency_hist) == 0)
            continue;
        json_object_set_new (latency, self->name, mesh_hist_json (&self->latency_hist));
        json_object_set_new (ttft, self->name, mesh_hist_json (&self->ttft_hist));
    }
    pthread_mutex_unlock (&s_lock);
    return json_pack ("{so so}", "model_call_seconds", latency, "model_ttft_seconds", ttft);
}

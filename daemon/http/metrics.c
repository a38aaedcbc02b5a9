/*  metrics - the Prometheus exposition (see metrics.h).
 *
 *  s_table is the one list: each row says what the metric is (name, type, labels, help,
 *  as docs/metrics.md shows it) and which emitter draws its samples from the status tree,
 *  with the key it reads.  Emitters are few and generic (an agent counter, an agent
 *  counter split by a key prefix or a fixed map, a gauge from the daemon's status...), so
 *  a new metric is usually one row.
 */
#include "metrics.h"
#include "version.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_OUTCOME_SERIES 512         //  distinct (action, outcome) pairs kept

typedef struct {
    char action[65];
    char outcome[24];
    uint64_t count;
} s_outcome_t;

struct _mesh_metrics_t {
    mesh_hist_t ledger_fsync;
    s_outcome_t outcomes[S_MAX_OUTCOME_SERIES];
    size_t outcome_count;
};

//  The growing text; FULL once past MESH_METRICS_MAX_BYTES (then nothing more is added).
typedef struct {
    char *data;
    size_t len, cap, limit;             //  LIMIT: MESH_METRICS_MAX_BYTES less room for a last line
    bool full, oom;
} s_out_t;

static void
s_put (s_out_t *out, const char *fmt, ...)
{
    if (out->full || out->oom)
        return;
    va_list ap;
    va_start (ap, fmt);
    char line[1024];
    int n = vsnprintf (line, sizeof line, fmt, ap);
    va_end (ap);
    if (n < 0)
        return;
    size_t add = (size_t) n < sizeof line ? (size_t) n : sizeof line - 1;
    if (out->len + add > out->limit) {
        out->full = true;
        return;
    }
    if (out->len + add + 1 > out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 16384;
        while (cap < out->len + add + 1)
            cap *= 2;
        char *data = realloc (out->data, cap);
        if (!data) {
            out->oom = true;
            return;
        }
        out->data = data;
        out->cap = cap;
    }
    memcpy (out->data + out->len, line, add);
    out->len += add;
    out->data[out->len] = 0;
}

void
mesh_metrics_escape (const char *value, char *out, size_t size)
{
    size_t o = 0;
    for (const char *p = value ? value : ""; *p && o + 3 < size; p++) {
        if (*p == '\\' || *p == '"') {
            out[o++] = '\\';
            out[o++] = *p;
        }
        else
        if (*p == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        }
        else
            out[o++] = *p;
    }
    if (size)
        out[o < size ? o : size - 1] = 0;
}

//  A number as Prometheus reads it.
static void
s_value (char *buf, size_t size, double v)
{
    if (isnan (v))
        snprintf (buf, size, "NaN");
    else
    if (isinf (v))
        snprintf (buf, size, v > 0 ? "+Inf" : "-Inf");
    else
    if (v == floor (v) && fabs (v) < 1e15)
        snprintf (buf, size, "%.0f", v);
    else {
        //  The shortest of %.15g and %.17g that reads back as V.
        snprintf (buf, size, "%.15g", v);
        if (strtod (buf, NULL) != v)
            snprintf (buf, size, "%.17g", v);
    }
}

//  One sample: NAME{L1="v1",L2="v2"} VALUE, with up to three label pairs (NULL ends).
static void
s_sample (s_out_t *out, const char *name, double v, const char *l1, const char *v1,
          const char *l2, const char *v2, const char *l3, const char *v3)
{
    char labels[768] = "", e[200], num[64];
    const char *names[3] = {l1, l2, l3}, *values[3] = {v1, v2, v3};
    size_t used = 0;
    for (int i = 0; i < 3 && names[i]; i++) {
        mesh_metrics_escape (values[i], e, sizeof e);
        int n = snprintf (labels + used, sizeof labels - used, "%s%s=\"%s\"", i ? "," : "{",
                          names[i], e);
        used += n > 0 ? (size_t) n : 0;
        if (used >= sizeof labels)
            return;                     //  cannot happen with these label sizes
    }
    if (used)
        snprintf (labels + used, sizeof labels - used, "}");
    s_value (num, sizeof num, v);
    s_put (out, "%s%s %s\n", name, labels, num);
}

typedef struct s_metric_t s_metric_t;
typedef void (s_emit_fn) (s_out_t *out, const s_metric_t *m, const json_t *status,
                          mesh_metrics_t *self);

struct s_metric_t {
    mesh_metric_info_t info;
    s_emit_fn *emit;
    const char *key;                    //  what the emitter reads
    const char *const *map;             //  pairs: counter key, label value; NULL ends
};

//  --- helpers over the agents' list ---------------------------------------------------

static const char *
s_agent_name (const json_t *entry)
{
    const char *name = json_string_value (json_object_get (entry, "agent"));
    return name ? name : "?";
}

//  Is ENTRY the first instance of its agent in AGENTS (replicas share the agent's name)?
static bool
s_first_of_agent (const json_t *agents, size_t index)
{
    const char *name = s_agent_name (json_array_get (agents, index));
    for (size_t i = 0; i < index; i++)
        if (!strcmp (s_agent_name (json_array_get (agents, i)), name))
            return false;
    return true;
}

//  The sum of counters.KEY over the instances of AGENT.
static double
s_agent_sum (const json_t *agents, const char *agent, const char *key)
{
    double sum = 0;
    size_t i;
    json_t *entry;
    json_array_foreach (agents, i, entry)
        if (!strcmp (s_agent_name (entry), agent))
            sum += (double) json_integer_value (json_object_get (json_object_get (entry,
                                                                                  "counters"),
                                                                 key));
    return sum;
}

//  --- emitters -------------------------------------------------------------------------

static void
s_emit_build (s_out_t *out, const s_metric_t *m, const json_t *status, mesh_metrics_t *self)
{
    const char *version = json_string_value (json_object_get (status, "version"));
    char protocol[16];
    snprintf (protocol, sizeof protocol, "%d", MESH_PROTO_VERSION);
    s_sample (out, m->info.name, 1, "version", version ? version : "unknown", "protocol",
              protocol, "commit", mesh_version_commit ());
}

//  A number from the daemon's status (KEY), a bool as 0/1; "storage" up as 1.
static void
s_emit_daemon (s_out_t *out, const s_metric_t *m, const json_t *status, mesh_metrics_t *self)
{
    json_t *daemon = json_object_get (status, "daemon");
    json_t *value = json_object_get (daemon, m->key);
    if (!daemon)
        return;
    double v = json_is_boolean (value) ? (double) json_is_true (value)
               : json_is_string (value) ? (double) !strcmp (json_string_value (value), "up")
                                        : json_number_value (value);
    s_sample (out, m->info.name, v, NULL, NULL, NULL, NULL, NULL, NULL);
}

//  counters.KEY per agent.
static void
s_emit_agent_counter (s_out_t *out, const s_metric_t *m, const json_t *status,
                      mesh_metrics_t *self)
{
    json_t *agents = json_object_get (status, "agents");
    for (size_t i = 0; i < json_array_size (agents); i++)
        if (s_first_of_agent (agents, i)) {
            const char *agent = s_agent_name (json_array_get (agents, i));
            s_sample (out, m->info.name, s_agent_sum (agents, agent, m->key), "agent", agent,
                      NULL, NULL, NULL, NULL);
        }
}

//  An agent's field KEY (not a counter: restarts, quarantined) per agent.
static void
s_emit_agent_field (s_out_t *out, const s_metric_t *m, const json_t *status,
                    mesh_metrics_t *self)
{
    json_t *agents = json_object_get (status, "agents");
    for (size_t i = 0; i < json_array_size (agents); i++) {
        if (!s_first_of_agent (agents, i))
            continue;
        const char *agent = s_agent_name (json_array_get (agents, i));
        double sum = 0;
        size_t j;
        json_t *entry;
        json_array_foreach (agents, j, entry)
            if (!strcmp (s_agent_name (entry), agent))
                sum += json_number_value (json_object_get (entry, m->key));
        s_sample (out, m->info.name, sum, "agent", agent, NULL, NULL, NULL, NULL);
    }
}

//  counters.<KEY><reason> per agent and reason (label "reason"), every such key.
static void
s_emit_agent_prefix (s_out_t *out, const s_metric_t *m, const json_t *status,
                     mesh_metrics_t *self)
{
    json_t *agents = json_object_get (status, "agents");
    size_t plen = strlen (m->key);
    for (size_t i = 0; i < json_array_size (agents); i++) {
        if (!s_first_of_agent (agents, i))
            continue;
        const char *agent = s_agent_name (json_array_get (agents, i));
        const char *key;
        json_t *value;
        json_object_foreach (json_object_get (json_array_get (agents, i), "counters"), key,
                             value)
            if (!strncmp (key, m->key, plen) && key[plen] && strlen (key + plen) < 64)
                s_sample (out, m->info.name, s_agent_sum (agents, agent, key), "agent", agent,
                          "reason", key + plen, NULL, NULL);
    }
}

//  counters per agent by a fixed map (counter key -> value of the label named KEY).
static void
s_emit_agent_map (s_out_t *out, const s_metric_t *m, const json_t *status,
                  mesh_metrics_t *self)
{
    json_t *agents = json_object_get (status, "agents");
    for (size_t i = 0; i < json_array_size (agents); i++) {
        if (!s_first_of_agent (agents, i))
            continue;
        const char *agent = s_agent_name (json_array_get (agents, i));
        for (size_t k = 0; m->map[k]; k += 2)
            s_sample (out, m->info.name, s_agent_sum (agents, agent, m->map[k]), "agent", agent,
                      m->key, m->map[k + 1], NULL, NULL);
    }
}

//  Each instance's state, one series per agent and state with the number of instances in it.
static void
s_emit_agent_states (s_out_t *out, const s_metric_t *m, const json_t *status,
                     mesh_metrics_t *self)
{
    static const char *const states[] = {"starting", "running", "backoff", "failed", "stopped",
                                         NULL};
    json_t *agents = json_object_get (status, "agents");
    for (size_t i = 0; i < json_array_size (agents); i++) {
        if (!s_first_of_agent (agents, i))
            continue;
        const char *agent = s_agent_name (json_array_get (agents, i));
        for (int s = 0; states[s]; s++) {
            double n = 0;
            size_t j;
            json_t *entry;
            json_array_foreach (agents, j, entry) {
                const char *state = json_string_value (json_object_get (entry, "state"));
                n += !strcmp (s_agent_name (entry), agent) && state && !strcmp (state, states[s]);
            }
            s_sample (out, m->info.name, n, "agent", agent, "state", states[s], NULL, NULL);
        }
    }
}

//  Every instance's backends: a field KEY summed per agent and backend; "state": the
//  circuit as closed/half_open/open, 1 for the one it is in.
static void
s_emit_backend (s_out_t *out, const s_metric_t *m, const json_t *status,
                mesh_metrics_t *self)
{
    static const char *const circuits[] = {"closed", "half_open", "open", NULL};
    json_t *agents = json_object_get (status, "agents");
    for (size_t i = 0; i < json_array_size (agents); i++) {
        if (!s_first_of_agent (agents, i))
            continue;
        const char *agent = s_agent_name (json_array_get (agents, i));
        const char *backend;
        json_t *info;
        json_object_foreach (json_object_get (json_array_get (agents, i), "backends"), backend,
                             info) {
            if (strcmp (m->key, "state") != 0) {
                double sum = 0;
                size_t j;
                json_t *entry;
                json_array_foreach (agents, j, entry)
                    if (!strcmp (s_agent_name (entry), agent))
                        sum += json_number_value (json_object_get (
                            json_object_get (json_object_get (entry, "backends"), backend),
                            m->key));
                s_sample (out, m->info.name, sum, "agent", agent, "backend", backend, NULL,
                          NULL);
                continue;
            }
            //  The worst circuit among the instances: open, then half_open, else closed.
            int worst = 0;
            size_t j;
            json_t *entry;
            json_array_foreach (agents, j, entry) {
                if (strcmp (s_agent_name (entry), agent) != 0)
                    continue;
                const char *state = json_string_value (json_object_get (
                    json_object_get (json_object_get (entry, "backends"), backend), "state"));
                int level = state && !strcmp (state, "open") ? 2
                            : state && !strcmp (state, "half_open") ? 1 : 0;
                worst = level > worst ? level : worst;
            }
            for (int c = 0; circuits[c]; c++)
                s_sample (out, m->info.name, c == worst, "agent", agent, "backend", backend,
                          "state", circuits[c]);
        }
    }
}

//  The token ledger's scopes (incident scopes are not listed: they would be unbounded):
//  field KEY per scope; a scope without a limit has no "remaining".
static void
s_emit_budget (s_out_t *out, const s_metric_t *m, const json_t *status, mesh_metrics_t *self)
{
    size_t i;
    json_t *scope;
    json_array_foreach (json_object_get (json_object_get (status, "budget"), "scopes"), i,
                        scope) {
        json_t *value = json_object_get (scope, m->key);
        const char *name = json_string_value (json_object_get (scope, "scope"));
        if (json_is_number (value) && name)
            s_sample (out, m->info.name, json_number_value (value), "scope", name, NULL, NULL,
                      NULL, NULL);
    }
}

static void
s_emit_tokens_reserved (s_out_t *out, const s_metric_t *m, const json_t *status,
                        mesh_metrics_t *self)
{
    json_t *budget = json_object_get (status, "budget");
    if (budget)
        s_sample (out, m->info.name, json_number_value (json_object_get (budget, "reserved")),
                  NULL, NULL, NULL, NULL, NULL, NULL);
}

static void
s_emit_dropped (s_out_t *out, const s_metric_t *m, const json_t *status,
                mesh_metrics_t *self)
{
    const char *kind;
    json_t *count;
    json_object_foreach (json_object_get (json_object_get (status, "daemon"), "dropped"), kind,
                         count)
        s_sample (out, m->info.name, json_number_value (count), "reason", kind, NULL, NULL, NULL,
                  NULL);
}

static void
s_emit_http (s_out_t *out, const s_metric_t *m, const json_t *status, mesh_metrics_t *self)
{
    json_t *http = json_object_get (status, "http");
    if (http)
        s_sample (out, m->info.name, json_number_value (json_object_get (http, m->key)), NULL,
                  NULL, NULL, NULL, NULL, NULL);
}

//  Consumer lag per agent, topic and partition: the instances' "lag_partitions" lists
//  ([{"topic","partition","lag"}], each already cut to MESH_METRICS_MAX_PARTITIONS by the
//  agent); an agent that reports none has its total lag under topic "" partition "".
static void
s_emit_lag (s_out_t *out, const s_metric_t *m, const json_t *status, mesh_metrics_t *self)
{
    json_t *agents = json_object_get (status, "agents");
    for (size_t i = 0; i < json_array_size (agents); i++) {
        json_t *entry = json_array_get (agents, i);
        json_t *parts = json_object_get (entry, "lag_partitions");
        const char *agent = s_agent_name (entry);
        if (!json_is_array (parts)) {
            if (s_first_of_agent (agents, i))
                s_sample (out, m->info.name, s_agent_sum (agents, agent, "lag"), "agent", agent,
                          "topic", "", "partition", "");
            continue;
        }
        size_t k;
        json_t *part;
        json_array_foreach (parts, k, part) {
            if (k >= MESH_METRICS_MAX_PARTITIONS)
                break;
            const char *topic = json_string_value (json_object_get (part, "topic"));
            char partition[24];
            snprintf (partition, sizeof partition, "%lld",
                      (long long) json_integer_value (json_object_get (part, "partition")));
            if (topic)
                s_sample (out, m->info.name, json_number_value (json_object_get (part, "lag")),
                          "agent", agent, "topic", topic, "partition", partition);
        }
    }
}

//  One histogram series: NAME_bucket{LABELS,le=...}, NAME_sum, NAME_count.
static void
s_hist (s_out_t *out, const char *name, const mesh_hist_t *h, const char *l1, const char *v1,
        const char *l2, const char *v2)
{
    char bucket[160], sum[160], count[160], le[32];
    snprintf (bucket, sizeof bucket, "%s_bucket", name);
    snprintf (sum, sizeof sum, "%s_sum", name);
    snprintf (count, sizeof count, "%s_count", name);
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= MESH_HIST_BUCKETS; i++) {
        cumulative += h->slot[i];
        if (i < MESH_HIST_BUCKETS)
            snprintf (le, sizeof le, "%g", mesh_hist_bounds[i]);
        else
            snprintf (le, sizeof le, "+Inf");
        if (l1 && l2)
            s_sample (out, bucket, (double) cumulative, l1, v1, l2, v2, "le", le);
        else
        if (l1)
            s_sample (out, bucket, (double) cumulative, l1, v1, "le", le, NULL, NULL);
        else
            s_sample (out, bucket, (double) cumulative, "le", le, NULL, NULL, NULL, NULL);
    }
    s_sample (out, sum, h->sum, l1, v1, l2, v2, NULL, NULL);
    s_sample (out, count, (double) cumulative, l1, v1, l2, v2, NULL, NULL);
}

static void
s_emit_outcomes (s_out_t *out, const s_metric_t *m, const json_t *status, mesh_metrics_t *self)
{
    for (size_t i = 0; self && i < self->outcome_count; i++)
        s_sample (out, m->info.name, (double) self->outcomes[i].count, "action",
                  self->outcomes[i].action, "outcome", self->outcomes[i].outcome, NULL, NULL);
}

static void
s_emit_ledger_fsync (s_out_t *out, const s_metric_t *m, const json_t *status,
                     mesh_metrics_t *self)
{
    s_hist (out, m->info.name, &self->ledger_fsync, NULL, NULL, NULL, NULL);
}

//  The agents' histograms ("hist" in each instance's status, summed over lives by the
//  supervisor): hist.KEY, an array per agent, or an object of arrays by backend.
static void
s_emit_agent_hist (s_out_t *out, const s_metric_t *m, const json_t *status,
                   mesh_metrics_t *self)
{
    json_t *agents = json_object_get (status, "agents");
    bool by_backend = strstr (m->info.labels, "backend") != NULL;
    for (size_t i = 0; i < json_array_size (agents); i++) {
        if (!s_first_of_agent (agents, i))
            continue;
        const char *agent = s_agent_name (json_array_get (agents, i));
        if (!by_backend) {
            mesh_hist_t sum = {0}, one;
            size_t j;
            json_t *entry;
            json_array_foreach (agents, j, entry)
                if (!strcmp (s_agent_name (entry), agent)
                    && mesh_hist_from_json (&one, json_object_get (json_object_get (entry, "hist"),
                                                                   m->key)) == 0)
                    mesh_hist_add (&sum, &one);
            s_hist (out, m->info.name, &sum, "agent", agent, NULL, NULL);
            continue;
        }
        //  By backend: the backends any instance of the agent reported.
        json_t *seen = json_object ();
        size_t j;
        json_t *entry;
        json_array_foreach (agents, j, entry) {
            if (strcmp (s_agent_name (entry), agent) != 0)
                continue;
            const char *backend;
            json_t *array;
            json_object_foreach (json_object_get (json_object_get (entry, "hist"), m->key),
                                 backend, array) {
                mesh_hist_t one;
                if (mesh_hist_from_json (&one, array) != 0)
                    continue;
                mesh_hist_t sum = {0};
                json_t *prior = json_object_get (seen, backend);
                if (prior)
                    mesh_hist_from_json (&sum, prior);
                mesh_hist_add (&sum, &one);
                json_object_set_new (seen, backend, mesh_hist_json (&sum));
            }
        }
        const char *backend;
        json_t *array;
        json_object_foreach (seen, backend, array) {
            mesh_hist_t h;
            if (mesh_hist_from_json (&h, array) == 0)
                s_hist (out, m->info.name, &h, "agent", agent, "backend", backend);
        }
        json_decref (seen);
    }
}

//  --- the table ------------------------------------------------------------------------

static const char *const s_verdicts[] = {
    "accepted", "accepted", "rejected", "rejected", "fallback", "fallback",
    "budget_exhausted", "budget_exhausted", "model_failed", "model_failed", "shed", "shed", NULL};
static const char *const s_outcomes[] = {
    "actions_done", "done", "actions_failed", "failed", "actions_observed", "observed",
    "actions_paused", "paused", "actions_pending_approval", "pending_approval",
    "actions_rate_limited", "rate_limited", "duplicates", "duplicate", NULL};

#define S_ROW(n, t, l, h, e, k, m) {{(n), (t), (l), (h)}, (e), (k), (m)}
static const s_metric_t s_table[] = {
    S_ROW ("meshd_build_info", "gauge", "version,protocol,commit",
           "meshd's version, its agent protocol's and the commit it was built from; always 1", s_emit_build, NULL, NULL),
    S_ROW ("meshd_ready", "gauge", "",
           "1 when every agent is ready and the storage takes writes (as /readyz)",
           s_emit_daemon, "ready", NULL),
    S_ROW ("meshd_storage_up", "gauge", "",
           "1 while the state directory takes writes, 0 while storage is down",
           s_emit_daemon, "storage", NULL),
    S_ROW ("meshd_uptime_seconds", "gauge", "",
           "Seconds since meshd started", s_emit_daemon, "uptime_s", NULL),
    S_ROW ("meshd_decision_log_records", "gauge", "",
           "Records in the decision log (its last sequence number)", s_emit_daemon,
           "ledger_seq", NULL),
    S_ROW ("meshd_events_consumed_total", "counter", "agent",
           "Events the agents consumed from Kafka", s_emit_agent_counter, "events", NULL),
    S_ROW ("meshd_events_malformed_total", "counter", "agent,reason",
           "Events refused as malformed, by cause", s_emit_agent_prefix, "malformed_", NULL),
    S_ROW ("meshd_events_dead_lettered_total", "counter", "agent",
           "Malformed events produced to the dead-letter topic", s_emit_agent_counter,
           "dead_lettered", NULL),
    S_ROW ("meshd_anomalies_total", "counter", "agent",
           "Anomalies the detectors found", s_emit_agent_counter, "anomalies", NULL),
    S_ROW ("meshd_incidents_total", "counter", "agent",
           "Incidents opened from anomalies", s_emit_agent_counter, "incidents", NULL),
    S_ROW ("meshd_incidents_suppressed_total", "counter", "agent,reason",
           "Incidents suppressed, by reason", s_emit_agent_prefix, "suppressed_", NULL),
    S_ROW ("meshd_decisions_total", "counter", "agent,verdict",
           "Decisions made, by verdict", s_emit_agent_map, "verdict", s_verdicts),
    S_ROW ("meshd_actions_total", "counter", "agent,outcome",
           "Actions by outcome", s_emit_agent_map, "outcome", s_outcomes),
    S_ROW ("meshd_action_outcomes_total", "counter", "action,outcome",
           "Outcome records the agents wrote to the decision log since meshd started, by "
           "action and status", s_emit_outcomes, NULL, NULL),
    S_ROW ("meshd_tokens_used_total", "counter", "agent",
           "Model tokens charged to the agents' decisions", s_emit_agent_counter, "tokens",
           NULL),
    S_ROW ("meshd_tokens_reserved", "gauge", "",
           "Tokens reserved by grants not yet settled", s_emit_tokens_reserved, NULL, NULL),
    S_ROW ("meshd_budget_limit_tokens", "gauge", "scope",
           "A budget scope's limit in its window (scopes with a limit)", s_emit_budget,
           "limit", NULL),
    S_ROW ("meshd_budget_used_tokens", "gauge", "scope",
           "Tokens a budget scope used in its current window", s_emit_budget, "used", NULL),
    S_ROW ("meshd_budget_remaining_tokens", "gauge", "scope",
           "Tokens a budget scope may still grant in its window (scopes with a limit)",
           s_emit_budget, "remaining", NULL),
    S_ROW ("meshd_budget_burn_tokens_per_minute", "gauge", "scope",
           "A budget scope's burn over the last five minutes", s_emit_budget, "burn_per_min",
           NULL),
    S_ROW ("meshd_quarantined_messages", "gauge", "agent",
           "Messages quarantined as poison (their position killed the agent repeatedly)",
           s_emit_agent_field, "quarantined", NULL),
    S_ROW ("meshd_agent_restarts_total", "counter", "agent",
           "Restarts of the agent's processes by the supervisor", s_emit_agent_field,
           "restarts", NULL),
    S_ROW ("meshd_agent_instances", "gauge", "agent,state",
           "The agent's processes in each supervisor state", s_emit_agent_states, NULL, NULL),
    S_ROW ("meshd_consumer_lag_messages", "gauge", "agent,topic,partition",
           "Messages behind the end of each assigned partition (at most 64 partitions per "
           "agent, the largest lags)", s_emit_lag, NULL, NULL),
    S_ROW ("meshd_backend_circuit_state", "gauge", "agent,backend,state",
           "1 for the circuit state a backend is in (closed, half_open, open)", s_emit_backend,
           "state", NULL),
    S_ROW ("meshd_backend_calls_total", "counter", "agent,backend",
           "Model calls made to a backend", s_emit_backend, "calls", NULL),
    S_ROW ("meshd_backend_failures_total", "counter", "agent,backend",
           "Model calls to a backend that failed", s_emit_backend, "failures", NULL),
    S_ROW ("meshd_model_call_duration_seconds", "histogram", "agent,backend",
           "Duration of a model call, request to last byte", s_emit_agent_hist,
           "model_call_seconds", NULL),
    S_ROW ("meshd_model_time_to_first_token_seconds", "histogram", "agent,backend",
           "Time from a streamed model request to its first token", s_emit_agent_hist,
           "model_ttft_seconds", NULL),
    S_ROW ("meshd_gate_evaluation_seconds", "histogram", "agent",
           "Time to run a decision through the gate chain", s_emit_agent_hist,
           "gate_seconds", NULL),
    S_ROW ("meshd_token_reservation_seconds", "histogram", "agent",
           "Round trip of a token reservation, agent to meshd and back", s_emit_agent_hist,
           "reservation_seconds", NULL),
    S_ROW ("meshd_ledger_fsync_seconds", "histogram", "",
           "Duration of the decision log's fsync (one per group commit)", s_emit_ledger_fsync,
           NULL, NULL),
    S_ROW ("meshd_dropped_messages_total", "counter", "reason",
           "Messages meshd dropped on its sockets, by kind", s_emit_dropped, NULL, NULL),
    S_ROW ("meshd_http_requests_total", "counter", "",
           "HTTP requests answered by a route", s_emit_http, "requests", NULL),
    S_ROW ("meshd_http_refused_total", "counter", "",
           "HTTP requests refused (method, body, unknown path)", s_emit_http, "refused", NULL),
    S_ROW ("meshd_http_connections_total", "counter", "",
           "HTTP connections accepted", s_emit_http, "connections", NULL),
};
#define S_COUNT (sizeof s_table / sizeof s_table[0])

size_t
mesh_metrics_count (void)
{
    return S_COUNT;
}

const mesh_metric_info_t *
mesh_metrics_info (size_t index)
{
    return index < S_COUNT ? &s_table[index].info : NULL;
}

mesh_metrics_t *
mesh_metrics_new (void)
{
    return calloc (1, sizeof (mesh_metrics_t));
}

void
mesh_metrics_destroy (mesh_metrics_t **self_p)
{
    free (*self_p);
    *self_p = NULL;
}

void
mesh_metrics_ledger_fsync (mesh_metrics_t *self, double seconds)
{
    if (self)
        mesh_hist_observe (&self->ledger_fsync, seconds);
}

//  An action name as a label: a config name ([A-Za-z0-9_.-], at most 64), else "other".
static const char *
s_action_label (const char *action)
{
    size_t n = action ? strlen (action) : 0;
    if (n == 0 || n > 64)
        return "other";
    for (size_t i = 0; i < n; i++) {
        char c = action[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || c == '_' || c == '-' || c == '.'))
            return "other";
    }
    return action;
}

void
mesh_metrics_outcome (mesh_metrics_t *self, const char *action, const char *status)
{
    static const char *const known[] = {"done", "failed", "observed", "skipped", "refused",
                                        "outcome_unknown", "resolved", "denied", "expired",
                                        NULL};
    if (!self)
        return;
    const char *outcome = "other";
    for (int i = 0; status && known[i]; i++)
        if (!strcmp (status, known[i]))
            outcome = known[i];
    const char *label = s_action_label (action);
    for (size_t i = 0; i < self->outcome_count; i++)
        if (!strcmp (self->outcomes[i].action, label)
            && !strcmp (self->outcomes[i].outcome, outcome)) {
            self->outcomes[i].count++;
            return;
        }
    if (self->outcome_count >= S_MAX_OUTCOME_SERIES - 16)
        label = "other";                //  past the bound: one series per outcome (kept room)
    for (size_t i = 0; i < self->outcome_count; i++)
        if (!strcmp (self->outcomes[i].action, label)
            && !strcmp (self->outcomes[i].outcome, outcome)) {
            self->outcomes[i].count++;
            return;
        }
    if (self->outcome_count == S_MAX_OUTCOME_SERIES)
        return;
    s_outcome_t *o = &self->outcomes[self->outcome_count++];
    snprintf (o->action, sizeof o->action, "%s", label);
    snprintf (o->outcome, sizeof o->outcome, "%s", outcome);
    o->count = 1;
}

char *
mesh_metrics_render (mesh_metrics_t *self, const json_t *status, const char *version,
                     size_t *len_p)
{
    s_out_t out = {.limit = MESH_METRICS_MAX_BYTES - 128};
    json_t *with = json_deep_copy (status);
    if (!with)
        with = json_object ();
    json_object_set_new (with, "version", json_string (version ? version : "unknown"));
    for (size_t i = 0; i < S_COUNT; i++) {
        const s_metric_t *m = &s_table[i];
        s_put (&out, "# HELP %s %s\n", m->info.name, m->info.help);
        s_put (&out, "# TYPE %s %s\n", m->info.name, m->info.type);
        m->emit (&out, m, with, self);
    }
    json_decref (with);
    if (out.full) {
        out.full = false;
        out.limit = MESH_METRICS_MAX_BYTES;
        s_put (&out, "# cut: the exposition reached its size bound\n");
    }
    if (out.oom || !out.data) {
        free (out.data);
        return NULL;
    }
    *len_p = out.len;
    return out.data;
}

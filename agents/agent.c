/*  agent - the front door of mesh-agent: the stages, in order, on one screen.
 *  Data path: event -> detect -> incident -> reason -> gate -> act -> record.
 *
 *  Threads.  The consumer thread (mesh_agent_run) owns the Kafka consumer, the
 *  detector and the incident table, and the control socket to the supervisor
 *  (hello, heartbeats, shutdown).  `workers` reasoning threads each own a
 *  backend handle, a gate chain and a record socket.  They meet in two places
 *  guarded by one mutex: the bounded incident queue (consumer -> workers) and
 *  the completion list (workers -> consumer, offsets to store).
 *
 *  Exactly-once effect.  Before reasoning, a worker asks the ledger about the
 *  decision id: complete -> skip (a re-delivery after a crash); decided but no
 *  outcome -> recover it as at start; unknown -> reason, record the decision and wait
 *  for the ack, and only then act.  At start, every decision of this agent that the
 *  ledger holds without an outcome is recovered before consuming: it passes the gates
 *  again (recover.c: the archived rule set by hash, the recorded proposal and ctx)
 *  or is recorded "refused"; a kafka action is produced again only if the action
 *  topic does not hold a message keyed by its id ("done", "already produced at P/O"),
 *  and never when that cannot be checked ("outcome_unknown").  docs/recovery.md.
 */
#include "agent.h"
#include "act.h"
#include "detect.h"
#include "event_kafka.h"
#include "gate.h"
#include "health.h"
#include "hist.h"
#include "incident.h"
#include "inflight.h"
#include "log.h"
#include "proto.h"
#include "reason.h"
#include "record.h"
#include "recover.h"

#include <czmq.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#define S_HISTORY_MAX 64
#define S_BATCH       1024             //  events per round of the consumer loop

//  Counters sent with every heartbeat; the names are the JSON keys.
#define S_COUNTERS(X)                                                                        \
    X (events) X (malformed) X (anomalies) X (incidents) X (suppressed) X (loops)            \
    X (accepted) X (rejected) X (fallback) X (budget_exhausted) X (model_failed) X (tokens)  \
    X (actions_done) X (actions_failed) X (actions_observed) X (duplicates) X (recovered) \
    X (recovery_refused) X (outcome_unknown) X (ledger_errors) X (shed) X (dead_lettered)  \
    X (dead_letter_failed) X (actions_paused) X (actions_pending_approval)                   \
    X (actions_rate_limited)

typedef struct {
#define S_FIELD(name) atomic_ullong name;
    S_COUNTERS (S_FIELD)
#undef S_FIELD
} s_counters_t;

typedef struct {
    char *topic;
    int32_t partition;
    int64_t offset;
} s_done_t;

typedef struct {
    mesh_agent_t *agent;
    int index;
    pthread_t thread;
} s_worker_t;

struct _mesh_agent_t {
    const mesh_config_t *cfg;           //  as started: the consumer thread's view
    const mesh_agent_config_t *acfg;
    //  Rule reloads (guarded by lock): the config workers build their chains from, and
    //  a generation they compare with theirs between incidents.  Every config loaded
    //  stays alive until the agent exits (workers and the consumer borrow from them).
    const mesh_config_t *rules_cfg;
    const mesh_agent_config_t *rules_acfg;
    unsigned generation;
    mesh_config_t **loaded;
    size_t loaded_count;
    char rules_hash[65];
    char *instance, *endpoint, *brokers;
    pid_t parent;
    zsock_t *ctl;
    mesh_event_kafka_t *events;
    mesh_detect_t *detect;
    mesh_incidents_t *incidents;
    mesh_act_t *act;
    s_counters_t n;

    pthread_mutex_t lock;
    pthread_cond_t wake;
    mesh_incident_t **queue;            //  ring of queue_cap
    size_t queue_cap, queue_head, queue_len, busy;
    s_done_t *done;                     //  completions waiting for the consumer thread
    size_t done_len, done_cap;
    json_t *history;                    //  recent accepted actions, newest last
    bool stopping;                      //  workers: finish the queue, then exit
    atomic_bool fatal;                  //  the ledger stopped answering: exit, re-deliver
    s_worker_t *workers;
    char (*handling)[65];               //  ids the workers are handling ("" = free slot)
    mesh_record_t *shed_record;         //  the consumer thread's, made on the first shed
    mesh_inflight_t *inflight;          //  what each thread handles, for meshd (or NULL)
    const char *test_poison;            //  MESH_TEST_POISON (tests only), or NULL
};

//  --- worker side ----------------------------------------------------------------

static void
s_complete (mesh_agent_t *self, const mesh_incident_t *incident)
{
    pthread_mutex_lock (&self->lock);
    if (self->done_len == self->done_cap) {
        self->done_cap = self->done_cap ? self->done_cap * 2 : 16;
        self->done = realloc (self->done, self->done_cap * sizeof *self->done);
    }
    self->done[self->done_len++] = (s_done_t) {strdup (incident->topic), incident->partition,
                                               incident->offset};
    self->busy--;
    pthread_mutex_unlock (&self->lock);
}

static void
s_count_decision (mesh_agent_t *self, json_t *decision)
{
    const char *verdict = json_string_value (json_object_get (decision, "verdict"));
    self->n.loops++;
    self->n.tokens += (unsigned long long) json_integer_value (json_object_get (decision,
                                                                                "tokens"));
    if (verdict && strcmp (verdict, "accepted") == 0)
        self->n.accepted++;
    else
    if (verdict && strcmp (verdict, "budget_exhausted") == 0)
        self->n.budget_exhausted++;
    else
    if (verdict && strcmp (verdict, "model_failed") == 0)
        self->n.model_failed++;
    else
        self->n.rejected++;
    if (json_is_true (json_object_get (decision, "fallback")))
        self->n.fallback++;
}

static void
s_remember (mesh_agent_t *self, json_t *decision, const mesh_incident_t *incident)
{
    if (!json_is_true (json_object_get (decision, "fallback"))) {
        json_t *action = json_object_get (decision, "action");
        json_t *params = json_object_get (action, "params");
        json_t *entry = json_pack ("{sO sO* sf}", "action", json_object_get (action, "name"),
                                   "target", json_object_get (params, "service"), "at",
                                   incident->ts_ms / 1000.0);
        pthread_mutex_lock (&self->lock);
        json_array_append_new (self->history, entry);
        if (json_array_size (self->history) > S_HISTORY_MAX)
            json_array_remove (self->history, 0);
        pthread_mutex_unlock (&self->lock);
    }
}

static void
s_count_outcome (mesh_agent_t *self, json_t *outcome)
{
    if (json_object_get (outcome, "rate_limited"))
        self->n.actions_rate_limited++;
    const char *status = json_string_value (json_object_get (outcome, "status"));
    if (!status)
        status = "";
    if (strcmp (status, "done") == 0)
        self->n.actions_done++;
    else
    if (strcmp (status, "observed") == 0)
        self->n.actions_observed++;
    else
    if (strcmp (status, "paused") == 0)
        self->n.actions_paused++;
    else
    if (strcmp (status, "pending_approval") == 0)
        self->n.actions_pending_approval++;
    else
    if (strcmp (status, "resolved") == 0)
        ;                               //  meshd closed it (approved, denied, expired)
    else
    if (strcmp (status, "refused") == 0)
        self->n.recovery_refused++;
    else
    if (strcmp (status, "outcome_unknown") == 0)
        self->n.outcome_unknown++;
    else
    if (strcmp (status, "skipped") != 0)
        self->n.actions_failed++;
}

//  A decision recorded by a previous life without an outcome: it runs only if it passes
//  the gates again now (recover.c), and a kafka action only if the topic does not hold
//  it already (mesh_act_recover); the outcome is recorded, marked "recovered".  A shed
//  decision has nothing to run.  False if the ledger did not answer.
static bool
s_recover_one (mesh_agent_t *self, mesh_record_t *record, json_t *decision)
{
    const char *id = json_string_value (json_object_get (decision, "id"));
    json_t *action = json_object_get (decision, "action");
    const char *verdict = json_string_value (json_object_get (decision, "verdict"));
    json_t *outcome;
    char *why = NULL;
    if (json_is_null (action) && verdict && strcmp (verdict, "shed") == 0)
        outcome = json_pack ("{ss ss ss ss ss}", "type", "outcome", "id", id ? id : "",
                             "agent", self->acfg->name, "status", "skipped", "detail",
                             "shed: not reasoned about");
    else
    if (mesh_recover_check (self->cfg, self->acfg, self->cfg->state_dir, decision, &why) != 0) {
        mesh_err ("decision %.12s recorded without an outcome is NOT carried out: %s",
                  id ? id : "?", why);
        outcome = json_pack ("{ss ss ss ss? ss ss}", "type", "outcome", "id", id ? id : "",
                             "agent", self->acfg->name, "action",
                             json_string_value (json_object_get (action, "name")), "status",
                             "refused", "detail", why);
        free (why);
    }
    else {
        mesh_info ("recovering decision %.12s: recorded, not yet carried out; the gates "
                   "accept it again", id ? id : "?");
        outcome = mesh_act_recover (self->act, decision, record);
    }
    json_object_set_new (outcome, "recovered", json_true ());
    s_count_outcome (self, outcome);
    if (!mesh_act_owes_outcome (outcome)) {
        json_decref (outcome);          //  meshd holds it for approval, or closed it
        return true;
    }
    bool ok = mesh_record_outcome (record, outcome, NULL) == 0;
    json_decref (outcome);
    if (ok)
        self->n.recovered++;
    return ok;
}

//  Two incidents can carry one decision id (an event re-delivered after a restart
//  reopens its incident while the restored group fires it too), and the ledger answers
//  a second decision for an id with the first one's seq.  So one id is handled by one
//  worker at a time: the second waits, then finds the decision complete.  Returns the
//  slot to give back with s_release.
static int
s_claim (mesh_agent_t *self, const char *id)
{
    int workers = self->acfg->reason.workers, slot = -1;
    pthread_mutex_lock (&self->lock);
    while (true) {
        bool busy = false;
        slot = -1;
        for (int i = 0; i < workers; i++) {
            if (strcmp (self->handling[i], id) == 0)
                busy = true;
            else
            if (!self->handling[i][0] && slot < 0)
                slot = i;
        }
        if (!busy && slot >= 0)
            break;
        pthread_cond_wait (&self->wake, &self->lock);
    }
    snprintf (self->handling[slot], sizeof self->handling[slot], "%s", id);
    pthread_mutex_unlock (&self->lock);
    return slot;
}

static void
s_release (mesh_agent_t *self, int slot)
{
    pthread_mutex_lock (&self->lock);
    self->handling[slot][0] = 0;
    pthread_cond_broadcast (&self->wake);
    pthread_mutex_unlock (&self->lock);
}

static bool s_handle_claimed (mesh_agent_t *self, mesh_reason_t *reason, mesh_record_t *record,
                              mesh_incident_t *incident);

//  One incident, start to finish.  Returns false if the ledger did not answer.
static bool
s_handle (mesh_agent_t *self, mesh_reason_t *reason, mesh_record_t *record,
          mesh_incident_t *incident)
{
    int slot = s_claim (self, incident->id);
    mesh_inflight_set (self->inflight, 1 + slot, incident->topic, incident->partition,
                       incident->offset);
    bool ok = s_handle_claimed (self, reason, record, incident);
    mesh_inflight_clear (self->inflight, 1 + slot);
    s_release (self, slot);
    return ok;
}

static bool
s_handle_claimed (mesh_agent_t *self, mesh_reason_t *reason, mesh_record_t *record,
                  mesh_incident_t *incident)
{
    mesh_record_state_t state;
    json_t *decision = NULL;
    if (mesh_record_lookup (record, incident->id, &state, &decision) != 0)
        return false;
    if (state == MESH_RECORD_COMPLETE) {
        self->n.duplicates++;           //  re-delivered after a crash: already done
        json_decref (decision);
        return true;
    }
    if (state == MESH_RECORD_DECIDED) {
        //  Decided in an earlier life and not recovered at start: the same path.
        bool ok = decision && s_recover_one (self, record, decision);
        json_decref (decision);
        return ok;
    }
    pthread_mutex_lock (&self->lock);
    json_t *history = json_deep_copy (self->history);
    pthread_mutex_unlock (&self->lock);
    decision = mesh_reason_run (reason, incident, history);            //  reason + gate
    json_decref (history);
    if (!decision)
        return false;
    if (mesh_record_decision (record, decision, NULL) != 0) {         //  durable first
        json_decref (decision);
        return false;
    }
    s_count_decision (self, decision);
    json_t *outcome = mesh_act_run (self->act, decision, record);        //  act (meshd asked)
    s_count_outcome (self, outcome);
    //  Held for approval by meshd: it records the outcome when a human (or the timeout)
    //  decides; the event is handled.
    int rc = mesh_act_owes_outcome (outcome) ? mesh_record_outcome (record, outcome, NULL) : 0;
    if (rc == 0)
        s_remember (self, decision, incident);
    json_decref (outcome);
    json_decref (decision);
    return rc == 0;
}

//  Build (or rebuild, after a reload) a worker's gate chain and reasoning loop from the
//  config in force.  On failure the worker keeps what it had.
static bool
s_worker_build (mesh_agent_t *self, int index, mesh_record_t *record, unsigned *gen,
                mesh_gate_t **gate_p, mesh_reason_t **reason_p)
{
    pthread_mutex_lock (&self->lock);
    const mesh_config_t *cfg = self->rules_cfg;
    const mesh_agent_config_t *acfg = self->rules_acfg;
    *gen = self->generation;
    pthread_mutex_unlock (&self->lock);
    char *err = NULL;
    mesh_gate_t *gate = mesh_gate_new (cfg, acfg, &err);
    //  Tokens are reserved and charged by meshd's ledger, over this worker's socket.
    mesh_tokens_port_t tokens = mesh_record_tokens (record);
    mesh_reason_t *reason = gate ? mesh_reason_new (cfg, acfg, gate, &tokens) : NULL;
    if (!reason) {
        mesh_err ("worker %d: cannot build the rule chain: %s", index, err ? err : "see above");
        free (err);
        mesh_gate_destroy (&gate);
        return false;
    }
    mesh_reason_destroy (reason_p);
    mesh_gate_destroy (gate_p);
    *gate_p = gate;
    *reason_p = reason;
    return true;
}

static void *
s_worker (void *arg)
{
    s_worker_t *w = arg;
    mesh_agent_t *self = w->agent;
    char identity[128];
    snprintf (identity, sizeof identity, "%s/w%d", self->instance, w->index);
    mesh_gate_t *gate = NULL;
    mesh_reason_t *reason = NULL;
    unsigned gen = 0;
    mesh_record_t *record = mesh_record_new (self->endpoint, identity, 10000);
    if (!record || !s_worker_build (self, w->index, record, &gen, &gate, &reason)) {
        mesh_err ("worker %d cannot start", w->index);
        self->fatal = true;
    }
    while (!self->fatal) {
        //  A reload swaps the chain here, between two decisions, never during one.
        pthread_mutex_lock (&self->lock);
        bool stale = gen != self->generation;
        pthread_mutex_unlock (&self->lock);
        if (stale && !s_worker_build (self, w->index, record, &gen, &gate, &reason))
            mesh_warn ("worker %d keeps its previous rule chain", w->index);
        pthread_mutex_lock (&self->lock);
        while (self->queue_len == 0 && !self->stopping && gen == self->generation)
            pthread_cond_wait (&self->wake, &self->lock);
        if (self->queue_len == 0 || gen != self->generation) {
            bool stopping = self->stopping && self->queue_len == 0;
            pthread_mutex_unlock (&self->lock);
            if (stopping)
                break;
            continue;                   //  rebuild the chain first
        }
        mesh_incident_t *incident = self->queue[self->queue_head];
        self->queue_head = (self->queue_head + 1) % self->queue_cap;
        self->queue_len--;
        pthread_cond_broadcast (&self->wake);
        pthread_mutex_unlock (&self->lock);

        if (s_handle (self, reason, record, incident))
            s_complete (self, incident);
        else {
            self->n.ledger_errors++;
            self->fatal = true;         //  never act without a durable record: restart
        }
        mesh_incident_destroy (&incident);
    }
    mesh_reason_destroy (&reason);
    mesh_record_destroy (&record);
    mesh_gate_destroy (&gate);
    return NULL;
}

//  --- consumer side ---------------------------------------------------------------

//  The event at this position is handled: its offset may be stored.
static void
s_event_done (mesh_agent_t *self, const char *topic, int32_t partition, int64_t offset)
{
    mesh_event_kafka_done (self->events, topic, partition, offset);
    mesh_inflight_done (self->inflight, topic, partition, offset);
}

static void
s_store_completions (mesh_agent_t *self)
{
    pthread_mutex_lock (&self->lock);
    s_done_t *done = self->done;
    size_t len = self->done_len;
    self->done = NULL;
    self->done_len = self->done_cap = 0;
    pthread_mutex_unlock (&self->lock);
    for (size_t i = 0; i < len; i++) {
        s_event_done (self, done[i].topic, done[i].partition, done[i].offset);
        free (done[i].topic);
    }
    free (done);
}

//  Called with self->lock held.
static json_t *
s_counters_unlocked (mesh_agent_t *self)
{
    json_t *c = json_object ();
#define S_PUT(name) json_object_set_new (c, #name, json_integer ((json_int_t) self->n.name));
    S_COUNTERS (S_PUT)
#undef S_PUT
    json_object_set_new (c, "queue", json_integer ((json_int_t) self->queue_len));
    json_object_set_new (c, "inflight", json_integer ((json_int_t) (self->queue_len
                                                                     + self->busy)));
    json_object_set_new (c, "series", json_integer ((json_int_t) mesh_detect_series (self->detect)));
    json_object_set_new (c, "evictions",
                         json_integer ((json_int_t) mesh_detect_evictions (self->detect)));
    json_object_set_new (c, "lag", json_integer (mesh_event_kafka_lag (self->events)));
    json_object_set_new (c, "paused", json_integer (mesh_event_kafka_paused (self->events)));
    //  malformed_<reason>: the malformed count by cause (event_kafka.h).
    for (int r = 0; r < MESH_EVENT_REASON_COUNT_; r++) {
        char key[64];
        snprintf (key, sizeof key, "malformed_%s", mesh_event_reason_name (r));
        json_object_set_new (c, key, json_integer ((json_int_t) mesh_event_kafka_malformed_by (
                                         self->events, (mesh_event_reason_t) r)));
    }
    json_t *incidents = mesh_incidents_counters (self->incidents);
    json_object_update_missing (c, incidents);  //  the agent's own names win
    json_decref (incidents);
    return c;
}

static void
s_heartbeat (mesh_agent_t *self)
{
    self->n.malformed = mesh_event_kafka_malformed (self->events);
    self->n.dead_lettered = mesh_event_kafka_dead_lettered (self->events);
    self->n.dead_letter_failed = mesh_event_kafka_dead_letter_failed (self->events);
    pthread_mutex_lock (&self->lock);
    json_t *body = json_pack ("{ss so ss}", "instance", self->instance, "counters",
                              s_counters_unlocked (self), "rules_hash", self->rules_hash);
    pthread_mutex_unlock (&self->lock);
    //  Each backend's circuit and latency figures, for `meshctl status` (health's own lock).
    json_object_set_new (body, "backends", mesh_health_json (mesh_health_now_ms ()));
    //  For meshd's /metrics: latency histograms (fixed buckets, common/hist.h) and the lag
    //  of each assigned partition (the MESH_PROTO_MAX_LAG_PARTITIONS largest).
    json_t *hist = mesh_health_hist_json (), *own = mesh_hist_global_json ();
    json_object_update (hist, own);
    json_decref (own);
    json_object_set_new (body, "hist", hist);
    json_object_set_new (body, "lag_partitions",
                         mesh_event_kafka_lag_partitions (self->events,
                                                          MESH_PROTO_MAX_LAG_PARTITIONS));
    mesh_proto_send (self->ctl, NULL, MESH_MSG_HEARTBEAT, body);
    json_decref (body);
}

//  An incident no worker can take because the queue is full, with `overflow: shed`: it is
//  recorded (verdict "shed", outcome "skipped") instead of reasoned about, so no trigger is
//  dropped silently.  False if the ledger did not answer.
static bool
s_shed (mesh_agent_t *self, mesh_incident_t *incident)
{
    if (!self->shed_record) {
        char identity[128];
        snprintf (identity, sizeof identity, "%s/shed", self->instance);
        self->shed_record = mesh_record_new (self->endpoint, identity, 10000);
    }
    json_t *decision = json_pack (
        "{ss ss ss ss so so ss sb sn si}", "type", "decision", "id", incident->id,
        "agent", self->acfg->name, "mode", self->acfg->observe ? "observe" : "act", "trigger",
        mesh_incident_trigger_json (incident), "incident", mesh_incident_json (incident),
        "verdict", "shed", "fallback", 0, "action", "tokens", 0);
    json_object_set_new (decision, "reason",
                         json_sprintf ("reasoning queue full (%d incidents waiting)",
                                       self->acfg->reason.queue_size));
    json_t *outcome = json_pack ("{ss ss ss ss ss}", "type", "outcome", "id", incident->id,
                                 "agent", self->acfg->name, "status", "skipped", "detail",
                                 "shed: not reasoned about");
    bool ok = self->shed_record && mesh_record_decision (self->shed_record, decision, NULL) == 0
              && mesh_record_outcome (self->shed_record, outcome, NULL) == 0;
    json_decref (decision);
    json_decref (outcome);
    if (ok)
        self->n.shed++;
    return ok;
}

//  Hand an incident to the reasoning workers (ownership passes).  When the queue is full:
//  `overflow: shed` records it as shed; `pause` (the default) waits for room - the main
//  loop has paused the partitions already, so this only happens for a message fetched
//  before the pause took effect.
static void
s_enqueue (mesh_agent_t *self, mesh_incident_t *incident)
{
    pthread_mutex_lock (&self->lock);
    bool full = self->queue_len >= self->queue_cap;
    bool shed = full && strcmp (self->acfg->reason.overflow, "shed") == 0;
    if (shed) {
        pthread_mutex_unlock (&self->lock);
        if (s_shed (self, incident))
            s_event_done (self, incident->topic, incident->partition, incident->offset);
        else
            self->fatal = true;         //  not recorded: exit, the event is re-delivered
        mesh_incident_destroy (&incident);
        return;
    }
    while (self->queue_len >= self->queue_cap && !self->fatal)
        pthread_cond_wait (&self->wake, &self->lock);
    mesh_event_kafka_hold (self->events, incident->topic, incident->partition,
                           incident->offset);
    mesh_inflight_hold (self->inflight, incident->topic, incident->partition, incident->offset);
    size_t tail = (self->queue_head + self->queue_len) % self->queue_cap;
    self->queue[tail] = incident;
    self->queue_len++;
    self->busy++;
    pthread_cond_broadcast (&self->wake);
    pthread_mutex_unlock (&self->lock);
}

//  Test only: MESH_TEST_POISON="crash:TEXT" makes the consumer thread crash (SIGSEGV),
//  "hang:TEXT" makes it hang (no more heartbeats), on every event whose bytes contain
//  TEXT: a poison message, for tests/integration/poison.sh.
static void
s_test_poison (mesh_agent_t *self, const mesh_event_t *event)
{
    const char *text = strchr (self->test_poison, ':');
    if (!text || !text[1] || !event->raw || !memmem (event->raw, event->raw_len, text + 1,
                                                     strlen (text + 1)))
        return;
    mesh_warn ("test hook MESH_TEST_POISON: %.*s on %s[%d]@%lld",
               (int) (text - self->test_poison), self->test_poison, event->topic,
               event->partition, (long long) event->offset);
    if (strncmp (self->test_poison, "hang:", 5) == 0)
        while (true)
            sleep (1);
    signal (SIGSEGV, SIG_DFL);          //  not a sanitizer's handler: a plain crash
    raise (SIGSEGV);
}

//  Detect and de-duplicate one event; queue what it opened or mark it done.  With no
//  event, the incident table's tick: event time moves on while the stream is idle, the
//  silences file is followed, the group state written when due; what that opened goes
//  to the workers as the queue has room.
static void
s_consume (mesh_agent_t *self, mesh_event_t *event)
{
    size_t opened = 0;
    if (event && self->test_poison)
        s_test_poison (self, event);
    if (event) {
        self->n.events++;
        mesh_detect_info_t info;
        double score = mesh_detect_update (self->detect, event->series, event->value,
                                           event->ts_ms, &info);               //  detect
        bool anomalous = mesh_detect_is_anomaly (self->detect, score);
        self->n.anomalies += anomalous;
        if (anomalous)                  //  only an anomalous point needs the whole message
            mesh_event_parse (event);
        opened = mesh_incidents_update (self->incidents, event, anomalous,    //  incident
                                        mesh_detect_name (self->detect), &info);
        json_decref (event->json);      //  an incident keeps its own copy
        event->json = NULL;
        if (!opened)
            s_event_done (self, event->topic, event->partition, event->offset);
    }
    else
        mesh_incidents_tick (self->incidents, zclock_time ());
    self->n.suppressed = mesh_incidents_suppressed (self->incidents);
    //  An event's incidents ride on its offset: all are queued (held) before the next
    //  poll.  The tick's wait for room.
    while (mesh_incidents_ready (self->incidents)) {
        pthread_mutex_lock (&self->lock);
        bool room = self->queue_len < self->queue_cap;
        pthread_mutex_unlock (&self->lock);
        if (!event && !room)
            break;
        self->n.incidents++;
        s_enqueue (self, mesh_incidents_next (self->incidents));             //  -> reason
    }
}

static bool
s_queue_full (mesh_agent_t *self)
{
    pthread_mutex_lock (&self->lock);
    bool full = self->queue_len >= self->queue_cap;
    pthread_mutex_unlock (&self->lock);
    return full;
}

//  The supervisor validated a new config whose only change for us is the rules, wrote its
//  snapshot and archived our rule set (BODY names both by hash): load them, check that our
//  chain builds, and let the workers switch between decisions.
static void
s_reload_rules (mesh_agent_t *self, json_t *body)
{
    mesh_config_t *next = NULL;
    if (mesh_config_load_snapshot (self->cfg->path,
                                   json_string_value (json_object_get (body, "snapshot")),
                                   json_string_value (json_object_get (body, "sha256")), &next,
                                   stderr) != 0) {
        mesh_err ("reload: the config snapshot does not load; keeping the rules in force");
        return;
    }
    mesh_agent_config_t *acfg = (mesh_agent_config_t *) mesh_config_agent (next,
                                                                         self->acfg->name);
    if (acfg)
        acfg->rules_hash = strdup (json_string_value (json_object_get (body, "rules_sha256")));
    char *err = NULL;
    mesh_gate_t *gate = acfg ? mesh_gate_new (next, acfg, &err) : NULL;
    if (!gate) {
        mesh_err ("reload: the new rule chain does not build (%s); keeping the rules in force",
                  err ? err : "agent missing");
        free (err);
        mesh_config_destroy (&next);
        return;
    }
    pthread_mutex_lock (&self->lock);
    self->loaded = realloc (self->loaded, (self->loaded_count + 1) * sizeof *self->loaded);
    self->loaded[self->loaded_count++] = next;
    self->rules_cfg = next;
    self->rules_acfg = acfg;
    self->generation++;
    snprintf (self->rules_hash, sizeof self->rules_hash, "%s", mesh_gate_rules_hash (gate));
    pthread_cond_broadcast (&self->wake);
    pthread_mutex_unlock (&self->lock);
    mesh_notice ("rules reloaded: rule set %.12s in force from the next decision",
                 mesh_gate_rules_hash (gate));
    mesh_gate_destroy (&gate);
}

//  True when the supervisor asked us to stop.
static bool
s_control (mesh_agent_t *self)
{
    bool stop = false;
    while (zsock_events (self->ctl) & ZMQ_POLLIN) {
        const char *why = NULL;
        mesh_msg_t *msg = mesh_proto_recv (self->ctl, false, &why, NULL);
        if (!msg) {
            mesh_warn ("dropped a message from the supervisor: %s", why);
            continue;
        }
        if (msg->type == MESH_MSG_SHUTDOWN) {
            mesh_info ("shutdown requested: %s",
                       json_string_value (json_object_get (msg->body, "reason")));
            stop = true;
        }
        else
        if (msg->type == MESH_MSG_RELOAD)
            s_reload_rules (self, msg->body);
        mesh_msg_destroy (&msg);
    }
    return stop;
}

//  Finish what a previous life of this agent decided but did not carry out: each
//  decision passes the gates again and, for a kafka action, the topic is checked for
//  it before anything is produced (s_recover_one); the outcome is recorded.  Its
//  event, re-delivered later, is then found complete and skipped.  False if the ledger
//  did not answer.
static bool
s_recover (mesh_agent_t *self)
{
    char identity[128];
    snprintf (identity, sizeof identity, "%s/recover", self->instance);
    mesh_record_t *record = mesh_record_new (self->endpoint, identity, 10000);
    json_t *pending = NULL;
    if (!record || mesh_record_pending (record, self->acfg->name, &pending) != 0) {
        mesh_record_destroy (&record);
        return false;
    }
    bool ok = true;
    size_t i;
    json_t *decision;
    json_array_foreach (pending, i, decision)
        if (!(ok = s_recover_one (self, record, decision)))
            break;
    json_decref (pending);
    mesh_record_destroy (&record);
    return ok;
}

int
mesh_agent_run (mesh_agent_t *self)
{
    json_t *hello = json_pack ("{ss ss si}", "agent", self->acfg->name, "instance",
                               self->instance, "pid", (int) getpid ());
    mesh_proto_send (self->ctl, NULL, MESH_MSG_HELLO, hello);
    json_decref (hello);
    if (!s_recover (self)) {
        mesh_err ("the decision ledger did not answer; not consuming");
        self->fatal = true;
    }
    mesh_info ("consuming %s as group %s", self->acfg->topics[0], self->acfg->group);

    int64_t next_beat = 0;
    bool stop = false;
    while (!stop && !zsys_interrupted && !self->fatal) {
        if (zclock_mono () >= next_beat) {
            s_heartbeat (self);
            next_beat = zclock_mono () + self->cfg->heartbeat_ms;
        }
        stop = s_control (self);
        if (getppid () != self->parent) {
            mesh_err ("the supervisor is gone; stopping");
            break;
        }
        s_store_completions (self);
        s_consume (self, NULL);         //  incident tick: idle stream, silences, state
        //  Backpressure: with the queue full, pause the partitions (and keep polling, which
        //  serves the group session); resume once there is room.
        if (strcmp (self->acfg->reason.overflow, "pause") == 0)
            mesh_event_kafka_pause (self->events, s_queue_full (self));
        //  A batch of events per round of the housekeeping above: only the first poll
        //  waits; the batch ends when nothing is ready, the queue fills, or a heartbeat is
        //  due.  Per-event work is then just decode, detect and incident.
        for (int i = 0; i < S_BATCH; i++) {
            mesh_event_t event;
            int rc = mesh_event_kafka_poll (self->events, i == 0 ? 100 : 0, &event);
            if (rc == 1)
                s_consume (self, &event);                                      //  event
            mesh_inflight_clear (self->inflight, 0);    //  set by s_guard
            if (rc == 0)
                break;
            if ((i & 63) == 63 && (zclock_mono () >= next_beat || s_queue_full (self)))
                break;
        }
    }
    //  Drain: workers finish what is queued; offsets of finished work are stored.
    pthread_mutex_lock (&self->lock);
    self->stopping = true;
    pthread_cond_broadcast (&self->wake);
    pthread_mutex_unlock (&self->lock);
    int64_t deadline = zclock_mono () + self->cfg->drain_timeout_ms;
    while (!self->fatal && zclock_mono () < deadline) {
        pthread_mutex_lock (&self->lock);
        bool idle = self->busy == 0;
        pthread_mutex_unlock (&self->lock);
        s_store_completions (self);
        if (idle)
            break;
        usleep (20 * 1000);
    }
    for (int i = 0; i < self->acfg->reason.workers; i++)
        pthread_join (self->workers[i].thread, NULL);
    s_store_completions (self);
    s_heartbeat (self);
    int code = self->fatal ? 75 : 0;    //  EX_TEMPFAIL: restart me, re-deliver the rest
    mesh_info ("stopped (%s)", code ? "ledger unavailable" : "drained");
    return code;
}

//  The event consumer's guard, before a message is decoded: from here until the consumer
//  clears it, slot 0 says this position is being handled; a quarantined one is skipped.
static const char *
s_guard (void *arg, const char *topic, int32_t partition, int64_t offset)
{
    mesh_agent_t *self = arg;
    mesh_inflight_set (self->inflight, 0, topic, partition, offset);
    if (!mesh_inflight_quarantined (self->inflight, topic, partition, offset))
        return NULL;
    return "quarantined: handling this message ended the agent daemon.restart.quarantine_after "
           "times";
}

void
mesh_agent_set_inflight (mesh_agent_t *self, mesh_inflight_t **inflight_p)
{
    mesh_inflight_destroy (&self->inflight);
    self->inflight = *inflight_p;
    *inflight_p = NULL;
    if (self->inflight)
        mesh_event_kafka_set_guard (self->events, s_guard, self);
    if (mesh_inflight_marks (self->inflight))
        mesh_notice ("%zu message position(s) with strikes from earlier lives (quarantined "
                     "ones are skipped)", mesh_inflight_marks (self->inflight));
}

//  --- lifecycle ---------------------------------------------------------------------

mesh_agent_t *
mesh_agent_new (const mesh_config_t *cfg, const char *agent_name, const char *instance,
                const char *endpoint, const char *brokers)
{
    const mesh_agent_config_t *acfg = mesh_config_agent (cfg, agent_name);
    if (!acfg) {
        mesh_err ("no agent '%s' in %s", agent_name, cfg->path);
        return NULL;
    }
    mesh_agent_t *self = calloc (1, sizeof *self);
    self->cfg = cfg;
    self->acfg = acfg;
    self->instance = strdup (instance);
    self->endpoint = strdup (endpoint);
    self->brokers = strdup (brokers);
    self->parent = getppid ();
    pthread_mutex_init (&self->lock, NULL);
    pthread_cond_init (&self->wake, NULL);
    self->queue_cap = (size_t) acfg->reason.queue_size;
    self->queue = calloc (self->queue_cap, sizeof *self->queue);
    self->history = json_array ();
    self->rules_cfg = cfg;
    self->rules_acfg = acfg;
    char *err = NULL;
    mesh_gate_t *gate = mesh_gate_new (cfg, acfg, &err);
    snprintf (self->rules_hash, sizeof self->rules_hash, "%s",
              gate ? mesh_gate_rules_hash (gate) : "");
    if (!gate)
        mesh_err ("the rule chain does not build: %s", err ? err : "?");
    free (err);
    mesh_gate_destroy (&gate);
    //  The control socket lives as long as the process: its routing id is the bare
    //  instance name (the supervisor addresses shutdown and reload to it).  AUTH first.
    self->ctl = zsock_new (ZMQ_DEALER);
    zsock_set_identity (self->ctl, instance);
    zsock_set_linger (self->ctl, 1000);
    mesh_proto_limit (self->ctl);
    if (zsock_connect (self->ctl, "%s", endpoint) != 0 || mesh_record_auth_send (self->ctl) != 0) {
        mesh_err ("cannot connect to the supervisor at %s", endpoint);
        mesh_agent_destroy (&self);
        return NULL;
    }
    self->detect = mesh_detect_new (&acfg->detector);
    self->incidents = mesh_incidents_new (acfg, cfg->state_dir, instance);
    self->act = mesh_act_new (cfg, acfg, brokers);
    self->events = mesh_event_kafka_new (cfg, acfg, brokers, instance);
    if (!self->detect || !self->incidents || !self->act || !self->events
        || mesh_incidents_set_history (self->incidents,
                                       mesh_event_kafka_cluster_id (self->events),
                                       mesh_event_kafka_incarnation (self->events)) != 0) {
        mesh_agent_destroy (&self);
        return NULL;
    }
    self->test_poison = getenv ("MESH_TEST_POISON");
    self->handling = calloc ((size_t) acfg->reason.workers, sizeof *self->handling);
    self->workers = calloc ((size_t) acfg->reason.workers, sizeof *self->workers);
    for (int i = 0; i < acfg->reason.workers; i++) {
        self->workers[i] = (s_worker_t) {.agent = self, .index = i};
        pthread_create (&self->workers[i].thread, NULL, s_worker, &self->workers[i]);
    }
    return self;
}

void
mesh_agent_destroy (mesh_agent_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mesh_agent_t *self = *self_p;
    mesh_event_kafka_destroy (&self->events);   //  commits stored offsets, leaves the group
    mesh_act_destroy (&self->act);
    mesh_incidents_destroy (&self->incidents);
    mesh_detect_destroy (&self->detect);
    zsock_destroy (&self->ctl);
    mesh_record_destroy (&self->shed_record);
    mesh_inflight_destroy (&self->inflight);
    for (size_t i = 0; i < self->queue_len; i++)
        mesh_incident_destroy (&self->queue[(self->queue_head + i) % self->queue_cap]);
    free (self->queue);
    for (size_t i = 0; i < self->done_len; i++)
        free (self->done[i].topic);
    free (self->done);
    free (self->workers);
    free (self->handling);
    json_decref (self->history);
    for (size_t i = 0; i < self->loaded_count; i++)
        mesh_config_destroy (&self->loaded[i]);
    free (self->loaded);
    pthread_mutex_destroy (&self->lock);
    pthread_cond_destroy (&self->wake);
    free (self->instance);
    free (self->endpoint);
    free (self->brokers);
    free (self);
    *self_p = NULL;
}

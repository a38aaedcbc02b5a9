/*  actions - meshd's side of acting (see actions.h).  */
#include "actions.h"
#include "act.h"
#include "exec.h"
#include "log.h"
#include "webhook.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_WORKERS        4              //  executions at once
#define S_MAX_KEPT       65536          //  executions remembered (de-duplication by id)
#define S_MAX_LINE       (1024 * 1024)  //  one journal line
#define S_MAX_RATE       100000         //  timestamps kept per action (the config allows 1e6:
                                        //  a larger rate is then counted as this)

typedef struct {
    char *id;
    json_t *reply;                      //  NULL while it runs
    zlist_t *waiters;                   //  routing ids (owned strings) waiting for it
    bool interrupted;                   //  started by an earlier life, never finished
} s_execution_t;

typedef struct s_job {
    struct s_job *next;
    char *id, *agent;
    mesh_action_spec_t spec;            //  a private copy of what running needs
    char **argv;                        //  exec
    char *stdin_data;                   //  exec, stdin: decision
    json_t *body;                       //  webhook
} s_job_t;

struct _mesh_actions_t {
    const mesh_config_t *cfg;
    mesh_ledger_t *ledger;
    char *path;
    int fd;
    //  pause
    bool paused_all;
    json_t *paused_agents, *paused_actions;     //  arrays of names
    //  executions, by decision id, and their order (oldest first) for the bound
    zhashx_t *executions;
    zlist_t *order;
    long executed;
    //  rate limits: action name -> array of epoch ms; decision ids already counted
    json_t *rates;
    json_t *counted;
    //  the executors
    pthread_t threads[S_WORKERS];
    int thread_count;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    s_job_t *queue, *queue_tail;
    bool stopping;
    int running;
    char endpoint[64];
    zsock_t *done;                      //  PULL: the executors' results
    //  approvals: id -> {agent, action, params, requested_at, expires_at, reason, what}
    json_t *pending;
    json_t *resolved;                   //  id -> how (approved, denied, expired), bounded
    mesh_actions_record_fn *record;     //  writes meshd's own outcome records
    void *record_arg;
    json_t *owed;                       //  id -> {agent, action, approval}: meshd records
                                        //  the outcome when the execution ends
    bool rerun_checked;                 //  approved executions a crash cut short: re-run
};

static void s_record_outcome (mesh_actions_t *self, const char *id, const char *agent,
                              const char *action, json_t *outcome, json_t *approval);

static int64_t
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

//  --- journal ----------------------------------------------------------------------

static int
s_journal (mesh_actions_t *self, json_t *line)
{
    char *text = json_dumps (line, JSON_COMPACT);
    json_decref (line);
    if (!text)
        return -1;
    size_t len = strlen (text);
    text[len] = '\n';
    ssize_t n = write (self->fd, text, len + 1);
    free (text);
    if (n != (ssize_t) (len + 1) || fdatasync (self->fd) != 0) {
        mesh_err ("actions journal %s: %s", self->path, n < 0 ? strerror (errno)
                  : "short write or sync failed");
        return -1;
    }
    return 0;
}

static json_t *
s_pause_state (mesh_actions_t *self)
{
    return json_pack ("{s:b, s:O, s:O}", "all", self->paused_all, "agents", self->paused_agents,
                      "actions", self->paused_actions);
}

static void
s_execution_free (void **item)
{
    s_execution_t *execution = *item;
    if (!execution)
        return;
    free (execution->id);
    json_decref (execution->reply);
    if (execution->waiters) {
        char *to;
        while ((to = zlist_pop (execution->waiters)))
            free (to);
        zlist_destroy (&execution->waiters);
    }
    free (execution);
    *item = NULL;
}

static s_execution_t *
s_execution (mesh_actions_t *self, const char *id)
{
    s_execution_t *execution = zhashx_lookup (self->executions, id);
    if (execution)
        return execution;
    execution = calloc (1, sizeof *execution);
    if (!execution || !(execution->id = strdup (id)) || !(execution->waiters = zlist_new ())) {
        s_execution_free ((void **) &execution);
        return NULL;
    }
    zhashx_insert (self->executions, id, execution);
    zlist_append (self->order, execution->id);
    //  Bounded: forget the oldest finished ones.
    while (zlist_size (self->order) > S_MAX_KEPT) {
        char *oldest = zlist_first (self->order);
        s_execution_t *old = zhashx_lookup (self->executions, oldest);
        if (old && !old->reply)
            break;                      //  still running: keep (bounded by the workers)
        zlist_pop (self->order);
        zhashx_delete (self->executions, oldest);
    }
    return execution;
}

//  Replay the journal, then rewrite it with what is still worth knowing.
static int
s_replay (mesh_actions_t *self, char *why, size_t size)
{
    FILE *file = fopen (self->path, "r");
    if (file) {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        while ((n = getline (&line, &cap, file)) > 0) {
            if (n > S_MAX_LINE)
                continue;
            json_t *entry = json_loadb (line, (size_t) n, 0, NULL);
            if (!json_is_object (entry)) {
                json_decref (entry);    //  a torn last line: what it said did not happen
                continue;
            }
            json_t *paused = json_object_get (entry, "paused");
            const char *start = json_string_value (json_object_get (entry, "start"));
            const char *done = json_string_value (json_object_get (entry, "done"));
            if (json_is_object (paused)) {
                self->paused_all = json_is_true (json_object_get (paused, "all"));
                json_t *agents = json_object_get (paused, "agents");
                json_t *actions = json_object_get (paused, "actions");
                json_decref (self->paused_agents);
                json_decref (self->paused_actions);
                self->paused_agents = json_is_array (agents) ? json_incref (agents) : json_array ();
                self->paused_actions = json_is_array (actions) ? json_incref (actions)
                                                               : json_array ();
            }
            else if (start) {
                s_execution_t *execution = s_execution (self, start);
                if (execution && !execution->reply)
                    execution->interrupted = true;
            }
            else if (json_is_string (json_object_get (entry, "pending"))) {
                json_t *what = json_object_get (entry, "approval");
                if (json_is_object (what))
                    json_object_set (self->pending, json_string_value (json_object_get (entry,
                                                                                       "pending")),
                                     what);
            }
            else if (json_is_string (json_object_get (entry, "resolved"))) {
                const char *id = json_string_value (json_object_get (entry, "resolved"));
                json_object_del (self->pending, id);
                json_object_set (self->resolved, id, json_object_get (entry, "how"));
            }
            else if (done) {
                s_execution_t *execution = s_execution (self, done);
                json_t *reply = json_object_get (entry, "reply");
                if (execution && json_is_object (reply)) {
                    json_decref (execution->reply);
                    execution->reply = json_incref (reply);
                    execution->interrupted = false;
                }
            }
            json_decref (entry);
        }
        free (line);
        fclose (file);
    }
    else if (errno != ENOENT) {
        snprintf (why, size, "cannot read %s: %s", self->path, strerror (errno));
        return -1;
    }
    //  Compact: the pause state, every execution remembered, in order.
    char *tmp = NULL;
    if (asprintf (&tmp, "%s.tmp", self->path) < 0)
        return -1;
    int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf (why, size, "cannot write %s: %s", tmp, strerror (errno));
        free (tmp);
        return -1;
    }
    self->fd = fd;
    int rc = s_journal (self, json_pack ("{s:o}", "paused", s_pause_state (self)));
    const char *key;
    json_t *value;
    json_object_foreach (self->pending, key, value)
        if (rc == 0)
            rc = s_journal (self, json_pack ("{s:s, s:O}", "pending", key, "approval", value));
    //  Resolved ones too: a re-run of an approved execution, or an agent asking about a
    //  denied one whose outcome waits in a backlog, must find them after any restart.
    json_object_foreach (self->resolved, key, value)
        if (rc == 0)
            rc = s_journal (self, json_pack ("{s:s, s:O}", "resolved", key, "how", value));
    for (char *id = zlist_first (self->order); id && rc == 0; id = zlist_next (self->order)) {
        s_execution_t *execution = zhashx_lookup (self->executions, id);
        if (!execution)
            continue;
        rc = execution->reply
               ? s_journal (self, json_pack ("{s:s, s:O}", "done", id, "reply", execution->reply))
               : s_journal (self, json_pack ("{s:s, s:b}", "start", id, "interrupted", 1));
    }
    if (rc == 0 && rename (tmp, self->path) != 0)
        rc = -1;
    free (tmp);
    if (rc) {
        snprintf (why, size, "cannot compact %s: %s", self->path, strerror (errno));
        close (fd);
        self->fd = -1;
        return -1;
    }
    return 0;
}

//  --- executors --------------------------------------------------------------------

static void
s_strv_free (char **list, size_t count)
{
    for (size_t i = 0; list && i < count; i++)
        free (list[i]);
    free (list);
}

static char **
s_strv_copy (char **list, size_t count)
{
    char **copy = calloc (count + 1, sizeof *copy);
    for (size_t i = 0; copy && i < count; i++)
        copy[i] = list[i] ? strdup (list[i]) : NULL;
    return copy;
}

static char *
s_dup (const char *text)
{
    return text ? strdup (text) : NULL;
}

//  What running SPEC needs, copied: the config in force may be replaced meanwhile.
static void
s_spec_copy (mesh_action_spec_t *to, const mesh_action_spec_t *from)
{
    *to = (mesh_action_spec_t) {.name = s_dup (from->name), .kind = from->kind,
                                .exec = from->exec, .webhook = from->webhook};
    to->exec.program = s_dup (from->exec.program);
    to->exec.argv = NULL;
    to->exec.argc = 0;
    to->exec.env = s_strv_copy (from->exec.env, from->exec.env_count);
    to->exec.cwd = s_dup (from->exec.cwd);
    to->exec.user = s_dup (from->exec.user);
    to->exec.group = s_dup (from->exec.group);
    to->webhook.url = s_dup (from->webhook.url);
    to->webhook.headers = s_strv_copy (from->webhook.headers, from->webhook.header_count);
    to->webhook.secret_file = s_dup (from->webhook.secret_file);
    to->webhook.secret_credential = s_dup (from->webhook.secret_credential);
}

static void
s_spec_free (mesh_action_spec_t *spec)
{
    free (spec->name);
    free (spec->exec.program);
    s_strv_free (spec->exec.env, spec->exec.env_count);
    free (spec->exec.cwd);
    free (spec->exec.user);
    free (spec->exec.group);
    free (spec->webhook.url);
    s_strv_free (spec->webhook.headers, spec->webhook.header_count);
    free (spec->webhook.secret_file);
    free (spec->webhook.secret_credential);
}

static void
s_job_free (s_job_t *job)
{
    if (!job)
        return;
    free (job->id);
    free (job->agent);
    s_spec_free (&job->spec);
    mesh_exec_argv_free (job->argv);
    free (job->stdin_data);
    json_decref (job->body);
    free (job);
}

//  Run one job: the outcome {status: done|failed, detail, exec|webhook: {...}}.
static json_t *
s_run (s_job_t *job)
{
    json_t *outcome = NULL;
    if (job->spec.kind == MESH_ACTION_EXEC) {
        mesh_exec_result_t result;
        char why[512] = "";
        int rc = mesh_exec_run (&job->spec, job->argv, job->id, job->agent, job->stdin_data,
                                job->stdin_data ? strlen (job->stdin_data) : 0, &result, why,
                                sizeof why);
        if (rc != 0)
            return json_pack ("{s:s, s:s}", "status", "failed", "detail", why);
        bool ok = result.exit_code == 0 && result.signal == 0 && !result.timed_out;
        char detail[200];
        if (result.timed_out)
            snprintf (detail, sizeof detail, "timed out after %d ms%s", job->spec.exec.timeout_ms,
                      result.killed ? "; killed" : "; ended on SIGTERM");
        else if (result.signal)
            snprintf (detail, sizeof detail, "ended by signal %d", result.signal);
        else
            snprintf (detail, sizeof detail, "exit %d", result.exit_code);
        outcome = json_pack ("{s:s, s:s, s:o}", "status", ok ? "done" : "failed", "detail",
                             detail, "exec", mesh_exec_result_json (&result, job->argv));
        mesh_exec_result_clear (&result);
        return outcome;
    }
    json_t *delivery = NULL;
    int rc = mesh_webhook_deliver (&job->spec, job->id, job->body, &delivery);
    const char *detail = json_string_value (json_object_get (delivery, "detail"));
    outcome = json_pack ("{s:s, s:s, s:o}", "status", rc == 0 ? "done" : "failed", "detail",
                         detail ? detail : (rc == 0 ? "delivered" : "not delivered"),
                         "webhook", delivery ? delivery : json_object ());
    return outcome;
}

static void *
s_worker (void *arg)
{
    mesh_actions_t *self = arg;
    zsock_t *push = zsock_new_push (NULL);
    if (push && zsock_connect (push, "%s", self->endpoint) != 0)
        zsock_destroy (&push);
    while (true) {
        pthread_mutex_lock (&self->lock);
        while (!self->queue && !self->stopping)
            pthread_cond_wait (&self->wake, &self->lock);
        s_job_t *job = self->queue;
        if (job) {
            self->queue = job->next;
            if (!self->queue)
                self->queue_tail = NULL;
        }
        pthread_mutex_unlock (&self->lock);
        if (!job)
            break;                      //  stopping, queue empty
        json_t *outcome = s_run (job);
        char *text = outcome ? json_dumps (outcome, JSON_COMPACT) : NULL;
        json_decref (outcome);
        if (push)
            zstr_sendx (push, job->id, text ? text : "{\"status\":\"failed\","
                        "\"detail\":\"out of memory\"}", NULL);
        free (text);
        s_job_free (job);
        pthread_mutex_lock (&self->lock);
        self->running--;
        pthread_cond_broadcast (&self->wake);
        pthread_mutex_unlock (&self->lock);
    }
    zsock_destroy (&push);
    return NULL;
}

//  --- public -----------------------------------------------------------------------

mesh_actions_t *
mesh_actions_new (const mesh_config_t *cfg, mesh_ledger_t *ledger, char *why, size_t size)
{
    mesh_actions_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (why, size, "out of memory");
        return NULL;
    }
    self->cfg = cfg;
    self->ledger = ledger;
    self->fd = -1;
    self->paused_agents = json_array ();
    self->paused_actions = json_array ();
    self->executions = zhashx_new ();
    self->order = zlist_new ();
    self->rates = json_object ();
    self->counted = json_object ();
    self->pending = json_object ();
    self->resolved = json_object ();
    self->owed = json_object ();
    pthread_mutex_init (&self->lock, NULL);
    pthread_cond_init (&self->wake, NULL);
    snprintf (self->endpoint, sizeof self->endpoint, "inproc://mesh-actions-%p", (void *) self);
    if (!self->executions || !self->order
        || asprintf (&self->path, "%s/actions.jsonl", cfg->state_dir) < 0) {
        snprintf (why, size, "out of memory");
        self->path = NULL;
        mesh_actions_destroy (&self);
        return NULL;
    }
    zhashx_set_destructor (self->executions, s_execution_free);
    if (s_replay (self, why, size) != 0) {
        mesh_actions_destroy (&self);
        return NULL;
    }
    self->done = zsock_new_pull (NULL);
    if (!self->done || zsock_bind (self->done, "%s", self->endpoint) != 0) {
        snprintf (why, size, "cannot bind %s", self->endpoint);
        mesh_actions_destroy (&self);
        return NULL;
    }
    for (int i = 0; i < S_WORKERS; i++)
        if (pthread_create (&self->threads[i], NULL, s_worker, self) == 0)
            self->thread_count++;
    if (self->thread_count == 0) {
        snprintf (why, size, "cannot start an executor thread");
        mesh_actions_destroy (&self);
        return NULL;
    }
    return self;
}

void
mesh_actions_drain (mesh_actions_t *self, mesh_actions_send_fn *send, void *arg)
{
    pthread_mutex_lock (&self->lock);
    self->stopping = true;
    pthread_cond_broadcast (&self->wake);
    pthread_mutex_unlock (&self->lock);
    for (int i = 0; i < self->thread_count; i++)
        pthread_join (self->threads[i], NULL);
    self->thread_count = 0;
    mesh_actions_collect (self, send, arg);
}

void
mesh_actions_destroy (mesh_actions_t **self_p)
{
    mesh_actions_t *self = *self_p;
    if (!self)
        return;
    pthread_mutex_lock (&self->lock);
    self->stopping = true;
    pthread_cond_broadcast (&self->wake);
    pthread_mutex_unlock (&self->lock);
    for (int i = 0; i < self->thread_count; i++)
        pthread_join (self->threads[i], NULL);
    while (self->queue) {
        s_job_t *job = self->queue;
        self->queue = job->next;
        s_job_free (job);
    }
    zsock_destroy (&self->done);
    zhashx_destroy (&self->executions);
    zlist_destroy (&self->order);
    json_decref (self->paused_agents);
    json_decref (self->paused_actions);
    json_decref (self->rates);
    json_decref (self->counted);
    json_decref (self->pending);
    json_decref (self->resolved);
    json_decref (self->owed);
    if (self->fd >= 0)
        close (self->fd);
    free (self->path);
    pthread_mutex_destroy (&self->lock);
    pthread_cond_destroy (&self->wake);
    free (self);
    *self_p = NULL;
}

void
mesh_actions_reconfigure (mesh_actions_t *self, const mesh_config_t *cfg)
{
    self->cfg = cfg;
}

zsock_t *
mesh_actions_sock (mesh_actions_t *self)
{
    return self->done;
}

static bool
s_listed (json_t *names, const char *name)
{
    size_t i;
    json_t *entry;
    json_array_foreach (names, i, entry)
        if (name && !strcmp (json_string_value (entry), name))
            return true;
    return false;
}

static json_t *
s_reply (const char *id, const char *verdict, const char *detail)
{
    json_t *reply = json_pack ("{s:s, s:s}", "id", id, "verdict", verdict);
    if (detail)
        json_object_set_new (reply, "detail", json_string (detail));
    return reply;
}

//  Is there room in NAME's rate for one more (counting it if so)?  ID: a decision
//  counted once, however often it asks.
static bool
s_rate_take (mesh_actions_t *self, const mesh_action_spec_t *spec, const char *id)
{
    if (spec->rate_count <= 0)
        return true;
    int64_t now = s_now_ms (), from = now - (int64_t) spec->rate_window_s * 1000;
    json_t *stamps = json_object_get (self->rates, spec->name);
    if (!stamps) {
        stamps = json_array ();
        json_object_set_new (self->rates, spec->name, stamps);
    }
    while (json_array_size (stamps) > 0
           && json_integer_value (json_array_get (stamps, 0)) < from)
        json_array_remove (stamps, 0);
    if (json_object_get (self->counted, id))
        return true;
    size_t limit = spec->rate_count < S_MAX_RATE ? (size_t) spec->rate_count : S_MAX_RATE;
    if (json_array_size (stamps) >= limit)
        return false;
    json_array_append_new (stamps, json_integer (now));
    json_object_set_new (self->counted, id, json_integer (now));
    if (json_object_size (self->counted) > S_MAX_KEPT) {
        //  Forget ids older than the longest window there is (a day is plenty).
        const char *key;
        void *tmp;
        json_t *at;
        json_object_foreach_safe (self->counted, tmp, key, at)
            if (json_integer_value (at) < now - 31LL * 86400 * 1000)
                json_object_del (self->counted, key);
    }
    return true;
}

//  The webhook's body: what a receiver needs to act and to audit.
static json_t *
s_webhook_body (json_t *decision, const char *id, const char *agent, const char *action)
{
    json_t *incident = json_object_get (decision, "incident");
    json_t *summary = json_pack ("{s:O?, s:O?, s:O?, s:O?}", "series",
                                 json_object_get (incident, "series"), "value",
                                 json_object_get (incident, "value"), "score",
                                 json_object_get (incident, "score"), "ts_ms",
                                 json_object_get (incident, "ts_ms"));
    return json_pack ("{s:s, s:s, s:s, s:O, s:O, s:o, s:I}", "decision_id", id, "agent", agent,
                      "action", action, "params",
                      json_object_get (json_object_get (decision, "action"), "params"),
                      "verdict", json_object_get (decision, "verdict"), "incident",
                      summary ? summary : json_null (), "time", (json_int_t) (s_now_ms () / 1000));
}

//  Queue DECISION's exec or webhook action.  -1 with WHY if it cannot even be prepared.
static int
s_enqueue (mesh_actions_t *self, const mesh_action_spec_t *spec, const char *id,
           const char *agent, json_t *decision, char *why, size_t size)
{
    s_job_t *job = calloc (1, sizeof *job);
    if (!job) {
        snprintf (why, size, "out of memory");
        return -1;
    }
    job->id = strdup (id);
    job->agent = strdup (agent);
    s_spec_copy (&job->spec, spec);
    json_t *params = json_object_get (json_object_get (decision, "action"), "params");
    if (spec->kind == MESH_ACTION_EXEC) {
        if (mesh_exec_argv (spec, json_is_object (params) ? params : NULL, &job->argv, why,
                            size) != 0) {
            s_job_free (job);
            return -1;
        }
        if (spec->exec.stdin_decision)
            job->stdin_data = json_dumps (decision, JSON_COMPACT);
    }
    else
        job->body = s_webhook_body (decision, id, agent, spec->name);
    if (s_journal (self, json_pack ("{s:s, s:s, s:s, s:I}", "start", id, "agent", agent,
                                    "action", spec->name, "at", (json_int_t) s_now_ms ())) != 0) {
        snprintf (why, size, "the actions journal cannot be written: not run");
        s_job_free (job);
        return -1;
    }
    pthread_mutex_lock (&self->lock);
    if (self->queue_tail)
        self->queue_tail->next = job;
    else
        self->queue = job;
    self->queue_tail = job;
    self->running++;
    pthread_cond_signal (&self->wake);
    pthread_mutex_unlock (&self->lock);
    return 0;
}

//  What an approver is shown: the exec argv or the webhook url it would run.
static json_t *
s_would_run (const mesh_action_spec_t *spec, json_t *decision)
{
    if (spec->kind == MESH_ACTION_EXEC) {
        char **argv = NULL;
        char why[256];
        json_t *params = json_object_get (json_object_get (decision, "action"), "params");
        if (mesh_exec_argv (spec, json_is_object (params) ? params : NULL, &argv, why,
                            sizeof why) != 0)
            return json_pack ("{s:s}", "error", why);
        json_t *list = json_array ();
        for (char **a = argv; *a; a++)
            json_array_append_new (list, json_string (*a));
        mesh_exec_argv_free (argv);
        return json_pack ("{s:s, s:o}", "kind", "exec", "argv", list);
    }
    if (spec->kind == MESH_ACTION_WEBHOOK)
        return json_pack ("{s:s, s:s}", "kind", "webhook", "url", spec->webhook.url);
    return json_pack ("{s:s}", "kind", mesh_config_action_kind_name (spec->kind));
}

//  Hold DECISION for approval (journalled first).
static int
s_hold (mesh_actions_t *self, const mesh_action_spec_t *spec, const char *id, const char *agent,
        json_t *decision)
{
    int64_t now = s_now_ms ();
    json_t *asked = json_object_get (decision, "approval");
    const char *reason = json_string_value (json_object_get (asked, "reason"));
    int timeout_s = spec->approval_timeout_s > 0 ? spec->approval_timeout_s : 3600;
    json_t *what = json_pack ("{s:s, s:s, s:O, s:s, s:I, s:I, s:o}", "agent", agent, "action",
                              spec->name,
                              "params", json_object_get (json_object_get (decision, "action"),
                                                         "params") ?: json_null (),
                              "reason", reason ? reason
                              : spec->approval_required ? "the action requires approval"
                              : "a rule asked for approval",
                              "requested_at", (json_int_t) now, "expires_at",
                              (json_int_t) (now + (int64_t) timeout_s * 1000), "would_run",
                              s_would_run (spec, decision));
    if (!what || s_journal (self, json_pack ("{s:s, s:O}", "pending", id, "approval", what)) != 0) {
        json_decref (what);
        return -1;
    }
    json_object_set_new (self->pending, id, what);
    mesh_notice ("decision %.12s: %s by agent %s waits for approval (meshctl approve %.12s)",
                 id, spec->name, agent, id);
    //  The log says so too: an auditor sees the decision held, not just "no outcome".
    if (self->record) {
        json_t *record = json_pack ("{s:s, s:s, s:s, s:s, s:s, s:O, s:O}", "type", "approval",
                                    "id", id, "agent", agent, "action", spec->name, "state",
                                    "pending", "reason", json_object_get (what, "reason"),
                                    "would_run", json_object_get (what, "would_run"));
        self->record (self->record_arg, record);
        json_decref (record);
    }
    return 0;
}

json_t *
mesh_actions_request (mesh_actions_t *self, const char *from, const char *agent, json_t *body)
{
    const char *id = json_string_value (json_object_get (body, "id"));
    if (!id)
        return s_reply ("", "refused", "act without an id");
    //  The decision, from meshd's own ledger: never the agent's word for it.
    json_t *decision = NULL;
    mesh_ledger_state_t state = mesh_ledger_lookup (self->ledger, id, &decision);
    json_t *reply = NULL;
    const char *owner = json_string_value (json_object_get (decision, "agent"));
    const char *name = json_string_value (json_object_get (json_object_get (decision, "action"),
                                                           "name"));
    const mesh_agent_config_t *acfg = mesh_config_agent (self->cfg, agent);
    const mesh_action_spec_t *spec = name ? mesh_config_action (self->cfg, name) : NULL;
    bool own = false;
    for (size_t i = 0; acfg && name && i < acfg->action_count; i++)
        own = own || !strcmp (acfg->actions[i], name);
    own = own || (acfg && name && acfg->fallback && !strcmp (acfg->fallback, name));
    if (state == MESH_LEDGER_COMPLETE)
        reply = s_reply (id, "refused", "the decision is complete: its outcome is recorded");
    else if (state == MESH_LEDGER_NONE || !decision)
        reply = s_reply (id, "refused", "no such decision in the ledger");
    else if (!owner || strcmp (owner, agent) != 0)
        reply = s_reply (id, "refused", "the decision is another agent's");
    else if (!spec || !own)
        reply = s_reply (id, "refused", "the decision's action is not this agent's");
    if (reply) {
        mesh_warn ("act %.12s from agent %s refused: %s", id, agent,
                   json_string_value (json_object_get (reply, "detail")));
        json_decref (decision);
        return reply;
    }
    s_execution_t *execution = zhashx_lookup (self->executions, id);
    if (execution && execution->reply) {
        //  Carried out already (the agent asks again after a restart): the same outcome.
        reply = json_pack ("{s:s, s:s, s:O, s:b}", "id", id, "verdict",
                           json_string_value (json_object_get (execution->reply, "status")),
                           "outcome", execution->reply, "repeated", 1);
        json_decref (decision);
        return reply;
    }
    if (execution && !execution->interrupted) {
        zlist_append (execution->waiters, strdup (from));   //  running: answered when done
        json_decref (decision);
        return NULL;
    }
    json_t *asked = json_object_get (decision, "approval");
    if (spec->approval_required || json_is_true (json_object_get (asked, "required"))) {
        //  Held for a human: never run on the agent's word.
        if (json_object_get (self->resolved, id)) {
            reply = s_reply (id, "resolved",
                             json_string_value (json_object_get (json_object_get (self->resolved,
                                                                                  id), "how")));
            json_decref (decision);
            return reply;
        }
        if (!json_object_get (self->pending, id) && s_hold (self, spec, id, agent, decision) != 0) {
            json_decref (decision);
            json_t *outcome = json_pack ("{s:s, s:s}", "status", "failed", "detail",
                                         "the approval could not be journalled: not carried out");
            return json_pack ("{s:s, s:s, s:o}", "id", id, "verdict", "failed", "outcome",
                              outcome);
        }
        json_decref (decision);
        return s_reply (id, "pending_approval", "waiting for meshctl approve or deny");
    }
    if (self->paused_all || s_listed (self->paused_agents, agent)
        || s_listed (self->paused_actions, name)) {
        json_decref (decision);
        return s_reply (id, "paused", self->paused_all ? "every action is paused"
                        : s_listed (self->paused_agents, agent) ? "this agent's actions are paused"
                        : "this action is paused");
    }
    if (!s_rate_take (self, spec, id)) {
        char detail[96];
        snprintf (detail, sizeof detail, "rate %d per %d s spent", spec->rate_count,
                  spec->rate_window_s);
        json_decref (decision);
        return s_reply (id, "rate_limited", detail);
    }
    if (spec->kind != MESH_ACTION_EXEC && spec->kind != MESH_ACTION_WEBHOOK) {
        json_decref (decision);
        return s_reply (id, "run", NULL);
    }
    char why[512] = "";
    execution = s_execution (self, id);
    if (!execution || s_enqueue (self, spec, id, agent, decision, why, sizeof why) != 0) {
        json_decref (decision);
        json_t *outcome = json_pack ("{s:s, s:s}", "status", "failed", "detail",
                                     why[0] ? why : "out of memory");
        //  Not run, and never will be for this decision: a repeat gets the same answer
        //  (never a wait for an execution that does not exist).
        if (execution) {
            json_decref (execution->reply);
            execution->reply = json_incref (outcome);
            execution->interrupted = false;
        }
        reply = json_pack ("{s:s, s:s, s:o}", "id", id, "verdict", "failed", "outcome", outcome);
        return reply;
    }
    execution->interrupted = false;
    zlist_append (execution->waiters, strdup (from));
    json_decref (decision);
    return NULL;
}

void
mesh_actions_collect (mesh_actions_t *self, mesh_actions_send_fn *send, void *arg)
{
    char *id = NULL, *text = NULL;
    while (zsock_events (self->done) & ZMQ_POLLIN) {
        if (zstr_recvx (self->done, &id, &text, NULL) < 0)
            break;
        json_t *outcome = json_loads (text, 0, NULL);
        if (!json_is_object (outcome)) {
            json_decref (outcome);
            outcome = json_pack ("{s:s, s:s}", "status", "failed", "detail",
                                 "the executor's outcome was unreadable");
        }
        self->executed++;
        //  Journalled before anyone hears of it: a repeat gets this, never a second run.
        s_journal (self, json_pack ("{s:s, s:O}", "done", id, "reply", outcome));
        s_execution_t *execution = s_execution (self, id);
        if (execution) {
            json_decref (execution->reply);
            execution->reply = json_incref (outcome);
            char *to;
            while ((to = zlist_pop (execution->waiters))) {
                json_t *owed = json_object_get (self->owed, id);
                if (!*to && owed)      //  meshd's own (approved, or an expired one's fallback)
                    s_record_outcome (self, id, json_string_value (json_object_get (owed, "agent")),
                                      json_string_value (json_object_get (owed, "action")),
                                      outcome, json_object_get (owed, "approval"));
                else if (*to) {
                    json_t *reply = json_pack ("{s:s, s:s, s:O}", "id", id, "verdict",
                                               json_string_value (json_object_get (outcome,
                                                                                   "status")),
                                               "outcome", outcome);
                    send (arg, to, reply);
                    json_decref (reply);
                }
                free (to);
            }
            json_object_del (self->owed, id);
        }
        json_decref (outcome);
        zstr_free (&id);
        zstr_free (&text);
    }
}

json_t *
mesh_actions_pause (mesh_actions_t *self, const char *agent, const char *action, bool pause,
                    char **error)
{
    bool all = self->paused_all;
    json_t *agents = json_deep_copy (self->paused_agents);
    json_t *actions = json_deep_copy (self->paused_actions);
    if (!agent && !action) {
        all = pause;
        if (!pause) {
            json_array_clear (agents);
            json_array_clear (actions);
        }
    }
    json_t *names[2] = { agents, actions };
    const char *which[2] = { agent, action };
    for (int k = 0; k < 2; k++) {
        if (!which[k])
            continue;
        size_t i;
        json_t *entry;
        bool found = false;
        json_array_foreach (names[k], i, entry)
            if (!strcmp (json_string_value (entry), which[k])) {
                found = true;
                if (!pause) {
                    json_array_remove (names[k], i);
                    break;
                }
            }
        if (pause && !found)
            json_array_append_new (names[k], json_string (which[k]));
    }
    json_t *state = json_pack ("{s:b, s:O, s:O}", "all", all, "agents", agents, "actions", actions);
    if (s_journal (self, json_pack ("{s:O}", "paused", state)) != 0) {
        *error = strdup ("the actions journal cannot be written: nothing changed");
        json_decref (agents);
        json_decref (actions);
        json_decref (state);
        return NULL;
    }
    self->paused_all = all;
    json_decref (self->paused_agents);
    json_decref (self->paused_actions);
    self->paused_agents = agents;
    self->paused_actions = actions;
    return state;
}

json_t *
mesh_actions_status (mesh_actions_t *self)
{
    json_t *rates = json_object ();
    int64_t now = s_now_ms ();
    for (size_t i = 0; i < self->cfg->action_count; i++) {
        const mesh_action_spec_t *spec = &self->cfg->actions[i];
        if (spec->rate_count <= 0)
            continue;
        json_t *stamps = json_object_get (self->rates, spec->name);
        size_t used = 0, k;
        json_t *at;
        json_array_foreach (stamps, k, at)
            used += json_integer_value (at) >= now - (int64_t) spec->rate_window_s * 1000;
        json_object_set_new (rates, spec->name,
                             json_pack ("{s:I, s:i, s:i}", "used", (json_int_t) used, "limit",
                                        spec->rate_count, "window_s", spec->rate_window_s));
    }
    pthread_mutex_lock (&self->lock);
    int running = self->running;
    pthread_mutex_unlock (&self->lock);
    return json_pack ("{s:o, s:i, s:I, s:o, s:I}", "paused", s_pause_state (self), "running",
                      running, "executed", (json_int_t) self->executed, "rates", rates,
                      "pending_approvals", (json_int_t) json_object_size (self->pending));
}

//  --- approvals --------------------------------------------------------------------

void
mesh_actions_set_recorder (mesh_actions_t *self, mesh_actions_record_fn *fn, void *arg)
{
    self->record = fn;
    self->record_arg = arg;
}

//  When WHAT (a held approval) expires: its request time plus the approval_timeout_s of
//  its action in the config in force (a reload can shorten or lengthen the wait).
static int64_t
s_expires_at (mesh_actions_t *self, json_t *what)
{
    const char *action = json_string_value (json_object_get (what, "action"));
    const mesh_action_spec_t *spec = action ? mesh_config_action (self->cfg, action) : NULL;
    if (!spec || spec->approval_timeout_s <= 0)
        return json_integer_value (json_object_get (what, "expires_at"));
    return json_integer_value (json_object_get (what, "requested_at"))
           + (int64_t) spec->approval_timeout_s * 1000;
}

json_t *
mesh_actions_approvals (mesh_actions_t *self)
{
    json_t *list = json_array ();
    const char *id;
    json_t *what;
    json_object_foreach (self->pending, id, what) {
        json_t *entry = json_deep_copy (what);
        json_object_set_new (entry, "id", json_string (id));
        json_object_set_new (entry, "expires_at", json_integer (s_expires_at (self, what)));
        json_array_append_new (list, entry);
    }
    return list;
}

//  Record meshd's own outcome for ID (the agent recorded none: it was told to wait).
static void
s_record_outcome (mesh_actions_t *self, const char *id, const char *agent, const char *action,
                  json_t *outcome, json_t *approval)
{
    json_t *record = json_pack ("{s:s, s:s, s:s, s:s}", "type", "outcome", "id", id, "agent",
                                agent, "action", action);
    const char *key;
    json_t *value;
    json_object_foreach (outcome, key, value)
        json_object_set (record, key, value);
    json_object_set (record, "approval", approval);
    if (self->record)
        self->record (self->record_arg, record);
    json_decref (record);
}

//  Carry out ACTION for decision ID now, on meshd's own authority (approved, or the
//  fallback of an expired approval): log here, exec and webhook by the executors (their
//  outcome recorded when they end), kafka not (meshd has no producer).
static void
s_carry_out (mesh_actions_t *self, const char *id, const char *agent, const char *action,
             json_t *decision, json_t *approval)
{
    const mesh_action_spec_t *spec = mesh_config_action (self->cfg, action);
    json_t *copy = json_deep_copy (decision);
    if (strcmp (json_string_value (json_object_get (json_object_get (copy, "action"), "name"))
                ?: "", action) != 0)
        json_object_set_new (copy, "action", json_pack ("{s:s, s:{}}", "name", action, "params"));
    json_t *outcome = NULL;
    char why[512] = "";
    if (!spec)
        outcome = json_pack ("{s:s, s:s}", "status", "failed", "detail",
                             "the action is not in the config in force");
    else if (self->paused_all || s_listed (self->paused_agents, agent)
             || s_listed (self->paused_actions, action))
        outcome = json_pack ("{s:s, s:s}", "status", "paused", "detail",
                             "paused (meshctl pause) when it was to be carried out");
    else if (spec->kind == MESH_ACTION_LOG) {
        char *detail = NULL;
        int rc = mesh_act_log_run (agent, id, json_object_get (copy, "action"), &detail);
        outcome = json_pack ("{s:s, s:s}", "status", rc == 0 ? "done" : "failed", "detail",
                             detail ? detail : "logged");
        free (detail);
    }
    else if (spec->kind == MESH_ACTION_KAFKA)
        outcome = json_pack ("{s:s, s:s}", "status", "skipped", "detail",
                             "meshd does not produce to kafka itself: not carried out");
    else {
        s_execution_t *execution = s_execution (self, id);
        if (execution && !execution->reply
            && s_enqueue (self, spec, id, agent, copy, why, sizeof why) == 0) {
            //  The outcome is recorded when the execution ends (mesh_actions_collect).
            json_t *note = json_pack ("{s:s, s:s, s:O}", "agent", agent, "action", action,
                                      "approval", approval);
            zlist_append (execution->waiters, strdup (""));
            json_object_set_new (self->owed, id, note);
            json_decref (copy);
            return;
        }
        outcome = json_pack ("{s:s, s:s}", "status", "failed", "detail",
                             why[0] ? why : "already carried out");
    }
    s_record_outcome (self, id, agent, action, outcome, approval);
    json_decref (outcome);
    json_decref (copy);
}

//  Close ID's approval HOW, journalled first.
static int
s_close (mesh_actions_t *self, const char *id, json_t *approval)
{
    if (s_journal (self, json_pack ("{s:s, s:O}", "resolved", id, "how", approval)) != 0)
        return -1;
    json_object_set (self->resolved, id, approval);
    if (json_object_size (self->resolved) > S_MAX_KEPT)
        json_object_clear (self->resolved);     //  old ones: the ledger has them
    return 0;
}

json_t *
mesh_actions_resolve (mesh_actions_t *self, const char *id, bool approve, json_t *by,
                      const char *comment, char **error)
{
    //  A unique prefix of at least 8 characters names it.
    const char *found = NULL, *key;
    json_t *what = NULL, *value;
    size_t len = strlen (id), matches = 0;
    json_object_foreach (self->pending, key, value)
        if (len >= 8 && !strncmp (key, id, len)) {
            found = key;
            what = value;
            matches++;
        }
    if (matches != 1) {
        *error = strdup (matches ? "that prefix names more than one pending approval"
                         : "no pending approval has that id (meshctl approvals lists them)");
        return NULL;
    }
    char full[65];
    snprintf (full, sizeof full, "%s", found);
    json_incref (what);
    json_t *approval = json_pack ("{s:s, s:O, s:s?, s:I, s:O, s:O}", "how",
                                  approve ? "approved" : "denied", "by", by, "comment", comment,
                                  "at", (json_int_t) s_now_ms (), "agent",
                                  json_object_get (what, "agent"), "action",
                                  json_object_get (what, "action"));
    if (s_close (self, full, approval) != 0) {
        *error = strdup ("the actions journal cannot be written: nothing changed");
        json_decref (approval);
        json_decref (what);
        return NULL;
    }
    json_object_del (self->pending, full);
    const char *agent = json_string_value (json_object_get (what, "agent"));
    const char *action = json_string_value (json_object_get (what, "action"));
    mesh_notice ("decision %.12s: %s %s by uid %lld%s%s", full, action,
                 approve ? "approved" : "denied",
                 (long long) json_integer_value (json_object_get (by, "uid")),
                 comment ? ": " : "", comment ? comment : "");
    if (approve) {
        json_t *decision = NULL;
        mesh_ledger_lookup (self->ledger, full, &decision);
        s_carry_out (self, full, agent, action, decision ? decision : json_object (), approval);
        json_decref (decision);
    }
    else {
        json_t *outcome = json_pack ("{s:s, s:s}", "status", "denied", "detail",
                                     comment ? comment : "denied by an approver");
        s_record_outcome (self, full, agent, action, outcome, approval);
        json_decref (outcome);
    }
    json_t *result = json_deep_copy (what);
    json_object_set_new (result, "id", json_string (full));
    json_object_set (result, "approval", approval);
    json_decref (approval);
    json_decref (what);
    return result;
}

void
mesh_actions_tick (mesh_actions_t *self)
{
    int64_t now = s_now_ms ();
    if (!self->rerun_checked) {
        //  meshd died while carrying out an approved action (journalled as started, not
        //  as done): no agent will ask for it again, so meshd runs it again itself - at
        //  least once, MESH_DECISION_ID / Idempotency-Key telling the repeat.
        self->rerun_checked = true;
        const char *key;
        json_t *how;
        json_object_foreach (self->resolved, key, how) {
            s_execution_t *execution = zhashx_lookup (self->executions, key);
            const char *agent = json_string_value (json_object_get (how, "agent"));
            const char *kind = json_string_value (json_object_get (how, "how"));
            if (!execution || !execution->interrupted || !agent || !kind)
                continue;
            const mesh_agent_config_t *acfg = mesh_config_agent (self->cfg, agent);
            const char *action = !strcmp (kind, "approved")
                                   ? json_string_value (json_object_get (how, "action"))
                                   : !strcmp (kind, "expired") && acfg ? acfg->fallback : NULL;
            if (!action)
                continue;
            mesh_warn ("decision %.12s: meshd stopped while carrying out %s; carrying it out "
                       "again", key, action);
            json_t *decision = NULL;
            mesh_ledger_lookup (self->ledger, key, &decision);
            execution->interrupted = false;
            s_carry_out (self, key, agent, action, decision ? decision : json_object (), how);
            json_decref (decision);
        }
    }
    const char *key;
    json_t *what, *tmp;
    json_object_foreach_safe (self->pending, tmp, key, what) {
        if (s_expires_at (self, what) > now)
            continue;
        char id[65];
        snprintf (id, sizeof id, "%s", key);
        json_incref (what);
        json_t *approval = json_pack ("{s:s, s:I, s:O, s:O}", "how", "expired", "at",
                                      (json_int_t) now, "agent", json_object_get (what, "agent"),
                                      "action", json_object_get (what, "action"));
        if (s_close (self, id, approval) == 0) {
            json_object_del (self->pending, id);
            const char *agent = json_string_value (json_object_get (what, "agent"));
            const mesh_agent_config_t *acfg = agent ? mesh_config_agent (self->cfg, agent) : NULL;
            const char *fallback = acfg ? acfg->fallback : NULL;
            mesh_notice ("decision %.12s: approval of %s expired; the fallback %s instead", id,
                         json_string_value (json_object_get (what, "action")),
                         fallback ? fallback : "(none)");
            json_t *decision = NULL;
            mesh_ledger_lookup (self->ledger, id, &decision);
            if (fallback)
                s_carry_out (self, id, agent, fallback, decision ? decision : json_object (),
                             approval);
            json_decref (decision);
        }
        json_decref (approval);
        json_decref (what);
    }
}

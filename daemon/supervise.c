/*  supervise - the agent processes' lifecycle, one state machine per instance.
 *
 *      starting --hello--> running --death--> backoff --timer--> starting
 *          \______________ silent: SIGKILL ______/        \--too many--> failed
 *
 *  Children are started with fork + execv of mesh-agent (no shell) and reaped
 *  with waitpid(WNOHANG) from the main loop's tick, so no signal handler does
 *  any work.  The instance's counters survive its death: each heartbeat carries
 *  the counters of the current life, and a death folds them into `totals`.  Its
 *  "backends" object (each inference backend's circuit and latency, agents/backend/
 *  health.h) describes the present only: the latest one is kept as sent, once checked
 *  for shape, and a death forgets it.
 *
 *  Authentication is per life.  s_spawn draws 32 random bytes, writes them into a
 *  pipe before the fork and lets the child inherit only the read end (--auth-fd N):
 *  the token is in no argv, environment, log or status.  A routing id joins the
 *  instance's `peers` when its AUTH carries that token (sodium_memcmp: constant
 *  time); s_forget voids the token and empties `peers` at death, so nothing said by
 *  or in the name of an old life counts afterwards.  Agents give every DEALER that
 *  closes before the process ends a random suffix, so a routing id, once closed,
 *  cannot be taken over by whoever reconnects with the same name.
 *
 *      held: storage is down (mesh_supervise_hold); started again when it is back.
 *
 *  Poison messages.  Each life also gets an in-flight area (common/inflight.h) on
 *  descriptor 4 (--inflight-fd): the agent's threads write there what they are
 *  handling.  At the reap, s_reckon reads it back; a death by signal, by a heartbeat
 *  timeout or by a failing exit counts one strike for each position being handled
 *  (daemon/quarantine.c keeps them, in <state_dir>/quarantine.json), and a position at
 *  daemon.restart.quarantine_after strikes is quarantined: a "quarantine" record in the
 *  decision log, and the next lives are told (in their area) to skip it.
 */
#include "supervise.h"
#include "agent_user.h"
#include "hist.h"
#include "inflight.h"
#include "log.h"
#include "proto.h"
#include "quarantine.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_RING 64
#define S_MAX_PEERS 256                 //  authenticated routing ids per life (workers + a few)
#define S_MAX_BACKENDS 64               //  entries of a heartbeat's "backends" (health.h's cap)
#define S_MAX_BACKENDS_BYTES 65536      //  its compact size (an entry is under 1 KiB): what
                                        //  one agent may add to every status reply

typedef enum { S_STARTING, S_RUNNING, S_BACKOFF, S_FAILED, S_STOPPED, S_HELD } s_state_t;
static const char *s_state_names[] = {"starting", "running", "backoff", "failed", "stopped",
                                      "held"};

typedef struct {
    char *name;
    const mesh_agent_config_t *cfg;
    s_state_t state;
    pid_t pid;
    int restarts;
    int64_t started_at, last_beat, next_start, backoff_ms;
    int64_t restart_at[S_RING];         //  ring of restart times for the intensity check
    int last_exit;                      //  exit status (or -signal) of the last death
    bool hello;                         //  said hello in this life
    bool ever_hello;
    bool restart_requested;             //  drain and start again now (config changed)
    char *rules_hash;                   //  the rule set the agent reports in force
    json_t *life;                       //  counters of this life (latest heartbeat)
    json_t *totals;                     //  counters of earlier lives, summed
    json_t *backends;                   //  the latest heartbeat's "backends", or NULL
    json_t *hist_life;                  //  the latest heartbeat's "hist" (this life), or NULL
    json_t *hist_totals;                //  histograms of earlier lives, summed, or NULL
    json_t *lag_parts;                  //  the latest heartbeat's "lag_partitions", or NULL
    uint8_t token[MESH_PROTO_TOKEN_SIZE];   //  this life's secret
    bool token_live;                    //  false once the life is over (or never began)
    char **peers;                       //  routing ids authenticated in this life
    size_t peer_count;
    int64_t bug_recorded_at;            //  the last agent_error record (mono ms), 0: none
    int64_t bugs_unrecorded;            //  refused messages since then
    bool hung;                          //  killed for silence (the reap says "hung")
    int inflight_fd;                    //  this life's in-flight area (inflight.h), or -1
    mesh_inflight_pos_t *marks;         //  the positions with strikes this life was told
    size_t mark_count;
} s_instance_t;

struct _mesh_supervise_t {
    const mesh_config_t *cfg;
    char *binary, *config_path, *endpoint, *brokers;
    zsock_t *sock;
    s_instance_t *inst;
    size_t count;
    bool stopping;
    bool holding;                       //  storage down: start nothing
    char *hold_why;
    mesh_supervise_record_fn *recorder;
    void *recorder_arg;
    const mesh_agent_user_t *agent_user;    //  sandbox.user, or NULL
    mesh_quarantine_t *quarantine;      //  strikes of poison messages, all agents
    mesh_supervise_death_fn *on_death;
    void *on_death_arg;
};

//  Gauges describe the present and are not summed across lives.
static bool
s_is_gauge (const char *key)
{
    return !strcmp (key, "queue") || !strcmp (key, "inflight") || !strcmp (key, "series")
           || !strcmp (key, "budget_used") || !strcmp (key, "lag")
           || !strcmp (key, "paused") || !strcmp (key, "incident_groups")
           || !strcmp (key, "incident_pending") || !strcmp (key, "silences_active");
}

//  Histograms (common/hist.h) of FROM added into INTO: {name: [...]} or {name: {backend:
//  [...]}}, as a heartbeat's "hist" carries them (both already checked).
static void
s_hist_merge (json_t *into, json_t *from)
{
    const char *key;
    json_t *value;
    json_object_foreach (from, key, value) {
        mesh_hist_t sum = {0}, one;
        if (json_is_array (value)) {
            mesh_hist_from_json (&sum, json_object_get (into, key));
            if (mesh_hist_from_json (&one, value) == 0)
                mesh_hist_add (&sum, &one);
            json_object_set_new (into, key, mesh_hist_json (&sum));
            continue;
        }
        json_t *mine = json_object_get (into, key);
        if (!json_is_object (mine)) {
            mine = json_object ();
            json_object_set_new (into, key, mine);
        }
        const char *backend;
        json_t *array;
        json_object_foreach (value, backend, array) {
            mesh_hist_t total = {0};
            if (!json_object_get (mine, backend) && json_object_size (mine) >= S_MAX_BACKENDS)
                continue;
            mesh_hist_from_json (&total, json_object_get (mine, backend));
            if (mesh_hist_from_json (&one, array) == 0)
                mesh_hist_add (&total, &one);
            json_object_set_new (mine, backend, mesh_hist_json (&total));
        }
    }
}

static void
s_fold (s_instance_t *in)
{
    if (in->hist_life) {
        if (!in->hist_totals)
            in->hist_totals = json_object ();
        s_hist_merge (in->hist_totals, in->hist_life);
        json_decref (in->hist_life);
        in->hist_life = NULL;
    }
    const char *key;
    json_t *value;
    json_object_foreach (in->life, key, value) {
        if (s_is_gauge (key) || !json_is_integer (value))
            continue;
        json_int_t sum = json_integer_value (json_object_get (in->totals, key));
        json_object_set_new (in->totals, key, json_integer (sum + json_integer_value (value)));
    }
    json_object_clear (in->life);
}

//  The end of a life: its token is void and its routing ids speak for nobody.
static void
s_forget (s_instance_t *in)
{
    sodium_memzero (in->token, sizeof in->token);
    in->token_live = false;
    for (size_t i = 0; i < in->peer_count; i++)
        free (in->peers[i]);
    free (in->peers);
    in->peers = NULL;
    in->peer_count = 0;
    json_decref (in->backends);         //  a dead life's backends describe nothing now
    in->backends = NULL;
    json_decref (in->lag_parts);        //  nor its partitions
    in->lag_parts = NULL;
}

//  A start that could not happen: the instance waits its backoff, which doubles (up to
//  backoff_max_ms) so that a lasting problem is not retried and logged ten times a second.
static void
s_not_started (mesh_supervise_t *self, s_instance_t *in)
{
    in->state = S_BACKOFF;
    in->next_start = zclock_mono () + in->backoff_ms;
    in->backoff_ms = in->backoff_ms * 2 > self->cfg->backoff_max_ms ? self->cfg->backoff_max_ms
                                                                    : in->backoff_ms * 2;
}

static void
s_spawn (mesh_supervise_t *self, s_instance_t *in)
{
    //  The token goes into a pipe before the fork (32 bytes fit any pipe buffer); the
    //  child keeps only the read end, the parent closes both after the fork.
    s_forget (in);
    if (in->inflight_fd >= 0) {         //  never the case after a reap (s_reckon closes it)
        close (in->inflight_fd);
        in->inflight_fd = -1;
    }
    //  An agent under another uid writes only <state_dir>/incidents: it must be its own.
    if (self->agent_user
        && mesh_agent_user_prepare_state (self->agent_user, self->cfg->state_dir) != 0) {
        mesh_err ("cannot start agent %s: its state directory is not ready (above)", in->name);
        s_not_started (self, in);
        return;
    }
    int pipefd[2];
    if (pipe2 (pipefd, O_CLOEXEC) != 0) {
        mesh_err ("cannot make the token pipe for %s: %s", in->name, strerror (errno));
        in->state = S_BACKOFF;
        in->next_start = zclock_mono () + in->backoff_ms;
        return;
    }
    //  The in-flight area, with what this life must know: the positions with strikes.
    bool quarantined[MESH_INFLIGHT_MARKS];
    in->mark_count = mesh_quarantine_marks (self->quarantine, in->cfg->name, in->marks,
                                            quarantined, MESH_INFLIGHT_MARKS);
    const char *why = NULL;
    int inflight = mesh_inflight_create (in->marks, quarantined, in->mark_count, &why);
    if (inflight < 0) {
        mesh_err ("cannot make the in-flight area for %s: %s: %s", in->name, why,
                  strerror (errno));
        close (pipefd[0]);
        close (pipefd[1]);
        s_not_started (self, in);
        return;
    }
    randombytes_buf (in->token, sizeof in->token);
    ssize_t wrote = write (pipefd[1], in->token, sizeof in->token);
    close (pipefd[1]);
    if (wrote != (ssize_t) sizeof in->token) {
        mesh_err ("cannot hand a token to %s: %s", in->name, strerror (errno));
        close (pipefd[0]);
        close (inflight);
        sodium_memzero (in->token, sizeof in->token);
        in->state = S_BACKOFF;
        in->next_start = zclock_mono () + in->backoff_ms;
        return;
    }
    //  Signals stay blocked from the fork until the child has default dispositions: a
    //  SIGTERM sent at once (a stop before the agent is up) would otherwise run meshd's
    //  own handler in the child and be lost.
    sigset_t all, old;
    sigfillset (&all);
    pthread_sigmask (SIG_SETMASK, &all, &old);
    pid_t pid = fork ();
    if (pid > 0 || pid < 0) {
        pthread_sigmask (SIG_SETMASK, &old, NULL);
        close (pipefd[0]);
    }
    if (pid < 0) {
        close (inflight);
        sodium_memzero (in->token, sizeof in->token);
        mesh_err ("cannot fork for %s: %s", in->name, strerror (errno));
        in->state = S_BACKOFF;
        in->next_start = zclock_mono () + in->backoff_ms;
        return;
    }
    if (pid == 0) {
        //  The child: default signal dispositions, then nothing blocked, then exec.
        signal (SIGTERM, SIG_DFL);
        signal (SIGINT, SIG_DFL);
        signal (SIGHUP, SIG_DFL);
        signal (SIGCHLD, SIG_DFL);
        sigset_t none;
        sigemptyset (&none);
        sigprocmask (SIG_SETMASK, &none, NULL);
        //  The agent inherits stdin, stdout, stderr, the token on descriptor 3 and the
        //  in-flight area on 4, and nothing else (no socket, log or broker descriptor of
        //  meshd's, whatever its flags).  Both are moved above 4 first, so that neither
        //  dup2 can overwrite the other; dup2 clears close-on-exec.
        int token_fd = fcntl (pipefd[0], F_DUPFD_CLOEXEC, 5);
        int area_fd = fcntl (inflight, F_DUPFD_CLOEXEC, 5);
        if (token_fd < 0 || area_fd < 0 || dup2 (token_fd, 3) != 3 || dup2 (area_fd, 4) != 4)
            _exit (127);
        close_range (5, ~0U, 0);
        char fdtext[16] = "3", areatext[16] = "4";
        char *argv[24] = {self->binary,   "--config",   self->config_path, "--agent",
                          in->cfg->name,  "--instance", in->name,          "--endpoint",
                          self->endpoint, "--brokers",  self->brokers,     "--auth-fd",
                          fdtext,         "--inflight-fd", areatext};
        //  The config as checked and recorded (its snapshot and hash), and the rule set
        //  archived for this agent: a restart runs those, never a file edited since.
        size_t argc = 15;
        if (self->cfg->snapshot) {
            argv[argc++] = "--snapshot";
            argv[argc++] = self->cfg->snapshot;
            argv[argc++] = (char *) "--sha256";
            argv[argc++] = (char *) self->cfg->sha256;
        }
        if (in->cfg->rules_hash) {
            argv[argc++] = "--rules-sha256";
            argv[argc++] = in->cfg->rules_hash;
        }
        argv[argc] = NULL;
        execv (self->binary, argv);
        fprintf (stderr, "<3>meshd[%s]: cannot exec %s: %s\n", in->name, self->binary,
                 strerror (errno));
        _exit (127);
    }
    in->pid = pid;
    in->inflight_fd = inflight;
    in->token_live = true;
    in->state = S_STARTING;
    in->hello = false;
    in->started_at = in->last_beat = zclock_mono ();
    mesh_info ("started agent %s (pid %d)", in->name, (int) pid);
}

mesh_supervise_t *
mesh_supervise_new (const mesh_config_t *cfg, const char *agent_binary, const char *config_path,
                    const char *endpoint, const char *brokers, zsock_t *sock)
{
    mesh_supervise_t *self = calloc (1, sizeof *self);
    self->cfg = cfg;
    self->binary = strdup (agent_binary);
    self->config_path = strdup (config_path);
    self->endpoint = strdup (endpoint);
    self->brokers = strdup (brokers);
    self->sock = sock;
    //  One instance per replica: "name" alone, or "name#0".."name#N-1" ('#' cannot occur in
    //  an agent name, so instance names never collide).  Replicas share the consumer group.
    for (size_t i = 0; i < cfg->agent_count; i++)
        self->count += (size_t) (cfg->agents[i].replicas > 0 ? cfg->agents[i].replicas : 1);
    self->inst = calloc (self->count, sizeof *self->inst);
    size_t n = 0;
    for (size_t i = 0; i < cfg->agent_count; i++) {
        int replicas = cfg->agents[i].replicas > 0 ? cfg->agents[i].replicas : 1;
        for (int r = 0; r < replicas; r++) {
            s_instance_t *in = &self->inst[n++];
            in->cfg = &cfg->agents[i];
            in->name = replicas == 1 ? strdup (cfg->agents[i].name)
                                     : zsys_sprintf ("%s#%d", cfg->agents[i].name, r);
            in->backoff_ms = cfg->backoff_initial_ms;
            in->life = json_object ();
            in->totals = json_object ();
            in->inflight_fd = -1;
            in->marks = calloc (MESH_INFLIGHT_MARKS, sizeof *in->marks);
        }
    }
    char *table = cfg->state_dir ? zsys_sprintf ("%s/quarantine.json", cfg->state_dir) : NULL;
    self->quarantine = mesh_quarantine_new (table);
    free (table);
    if (sodium_init () < 0) {
        mesh_err ("libsodium cannot start: no tokens for agents");
        mesh_supervise_destroy (&self);
        return NULL;
    }
    for (size_t i = 0; i < self->count; i++)
        s_spawn (self, &self->inst[i]);
    return self;
}

void
mesh_supervise_set_recorder (mesh_supervise_t *self, mesh_supervise_record_fn *fn, void *arg)
{
    self->recorder = fn;
    self->recorder_arg = arg;
}

void
mesh_supervise_set_agent_user (mesh_supervise_t *self, const mesh_agent_user_t *agent_user)
{
    self->agent_user = agent_user;
}

void
mesh_supervise_destroy (mesh_supervise_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mesh_supervise_t *self = *self_p;
    for (size_t i = 0; i < self->count; i++) {
        s_forget (&self->inst[i]);
        free (self->inst[i].name);
        free (self->inst[i].rules_hash);
        json_decref (self->inst[i].life);
        json_decref (self->inst[i].totals);
        json_decref (self->inst[i].hist_life);
        json_decref (self->inst[i].hist_totals);
        json_decref (self->inst[i].lag_parts);
        json_decref (self->inst[i].backends);
        if (self->inst[i].inflight_fd >= 0)
            close (self->inst[i].inflight_fd);
        free (self->inst[i].marks);
    }
    mesh_quarantine_destroy (&self->quarantine);
    free (self->inst);
    free (self->binary);
    free (self->config_path);
    free (self->endpoint);
    free (self->brokers);
    free (self->hold_why);
    free (self);
    *self_p = NULL;
}

static s_instance_t *
s_by_pid (mesh_supervise_t *self, pid_t pid)
{
    for (size_t i = 0; i < self->count; i++)
        if (self->inst[i].pid == pid)
            return &self->inst[i];
    return NULL;
}

//  The instance a routing id "<instance>" or "<instance>/<suffix>" names (claims only).
static s_instance_t *
s_by_prefix (mesh_supervise_t *self, const char *routing_id)
{
    if (!routing_id)
        return NULL;
    size_t len = strcspn (routing_id, "/");
    if (routing_id[len] == '/' && routing_id[len + 1] == 0)
        return NULL;                    //  "<instance>/" with an empty suffix
    for (size_t i = 0; i < self->count; i++)
        if (strlen (self->inst[i].name) == len
            && strncmp (self->inst[i].name, routing_id, len) == 0)
            return &self->inst[i];
    return NULL;
}

//  The instance for which ROUTING_ID authenticated in its current life, or NULL.
static s_instance_t *
s_by_routing (mesh_supervise_t *self, const char *routing_id)
{
    s_instance_t *in = s_by_prefix (self, routing_id);
    if (!in || !in->token_live)
        return NULL;
    for (size_t i = 0; i < in->peer_count; i++)
        if (strcmp (in->peers[i], routing_id) == 0)
            return in;
    return NULL;
}

const char *
mesh_supervise_auth (mesh_supervise_t *self, const char *routing_id, json_t *body)
{
    const char *instance = json_string_value (json_object_get (body, "instance"));
    const char *token = json_string_value (json_object_get (body, "token"));
    if (!routing_id || !instance || !token)
        return "auth without routing id, instance or token";
    s_instance_t *in = s_by_prefix (self, routing_id);
    if (!in)
        return "routing id names no instance";
    if (strcmp (in->name, instance) != 0)
        return "auth names another instance than its routing id";
    if (!in->token_live || !in->pid)
        return "instance is not alive";
    uint8_t given[MESH_PROTO_TOKEN_SIZE];
    size_t len = 0;
    if (sodium_hex2bin (given, sizeof given, token, strlen (token), NULL, &len, NULL) != 0
        || len != sizeof given)
        return "token is not 64 hex digits";
    int differs = sodium_memcmp (given, in->token, sizeof given);
    sodium_memzero (given, sizeof given);
    if (differs)
        return "wrong token";
    for (size_t i = 0; i < in->peer_count; i++)
        if (strcmp (in->peers[i], routing_id) == 0)
            return NULL;                //  said twice: still itself
    if (in->peer_count >= S_MAX_PEERS)
        return "too many connections for one instance";
    in->peers = realloc (in->peers, (in->peer_count + 1) * sizeof *in->peers);
    in->peers[in->peer_count++] = strdup (routing_id);
    return NULL;
}

//  Why a process died of SIG, for the log and the decision log.
static const char *
s_signal_reason (int sig)
{
    switch (sig) {
        case SIGSYS: return "killed by its seccomp filter (a system call outside the allow-list)";
        case SIGKILL: return "killed";
        case SIGSEGV: return "crashed";
        case SIGBUS: return "crashed (bus error)";
        case SIGILL: return "crashed (illegal instruction)";
        case SIGFPE: return "crashed (arithmetic error)";
        case SIGABRT: return "aborted";
        case SIGTERM: return "terminated";
        case SIGINT: return "interrupted";
        default: return "killed by a signal";
    }
}

//  {"type":"agent","event":EVENT,...} to the recorder, if there is one.
static void
s_record (mesh_supervise_t *self, s_instance_t *in, const char *event, pid_t pid, int status)
{
    if (!self->recorder)
        return;
    json_t *record = json_pack ("{ss ss ss ss si}", "type", "agent", "event", event, "instance",
                                in->name, "agent", in->cfg->name, "pid", (int) pid);
    if (WIFSIGNALED (status)) {
        const char *abbrev = sigabbrev_np (WTERMSIG (status));
        char name[32];
        snprintf (name, sizeof name, "SIG%s", abbrev ? abbrev : "?");
        json_object_set_new (record, "signal", json_string (name));
        json_object_set_new (record, "reason", json_string (s_signal_reason (WTERMSIG (status))));
    }
    else
        json_object_set_new (record, "exit", json_integer (WEXITSTATUS (status)));
    if (strcmp (event, "failed") == 0) {
        json_object_set_new (record, "restarts", json_integer (in->restarts));
        json_object_set_new (record, "period_s", json_integer (self->cfg->restart_period_s));
    }
    self->recorder (self->recorder_arg, record);
    json_decref (record);
}

//  How a death reads in a log line ("exit code 3", "signal SIGSYS: killed by ...").
static char *
s_death_text (int status)
{
    if (!WIFSIGNALED (status))
        return zsys_sprintf ("exit code %d", WEXITSTATUS (status));
    const char *abbrev = sigabbrev_np (WTERMSIG (status));
    return zsys_sprintf ("signal SIG%s: %s", abbrev ? abbrev : "?",
                         s_signal_reason (WTERMSIG (status)));
}

//  {"type":"quarantine","event":"quarantined",...} to the recorder, if there is one.
static void
s_record_quarantine (mesh_supervise_t *self, s_instance_t *in, const mesh_inflight_pos_t *pos,
                     int strikes, int limit, const char *death)
{
    if (!self->recorder)
        return;
    json_t *record = json_pack ("{ss ss ss ss ss si sI si si ss}", "type", "quarantine",
                                "event", "quarantined", "agent", in->cfg->name, "instance",
                                in->name, "topic", pos->topic, "partition", (int) pos->partition,
                                "offset", (json_int_t) pos->offset, "strikes", strikes, "limit",
                                limit, "last_death", death);
    json_object_set_new (record, "dead_letter_topic",
                         in->cfg->dead_letter_topic ? json_string (in->cfg->dead_letter_topic)
                                                    : json_null ());
    self->recorder (self->recorder_arg, record);
    json_decref (record);
}

//  The end of a life: what was it handling?  Marks flagged survived lose their strikes.
//  Then, for a death a message can cause - anything but a clean exit, exit 75 (the
//  ledger did not answer) or the end of a drain while meshd stops - each position a
//  thread was handling gets a strike; one that reaches daemon.restart.quarantine_after
//  is quarantined: logged, recorded, and skipped by every later life.
static void
s_reckon (mesh_supervise_t *self, s_instance_t *in, int status)
{
    int fd = in->inflight_fd;
    in->inflight_fd = -1;
    bool hung = in->hung;
    in->hung = false;
    if (fd < 0)
        return;
    mesh_inflight_pos_t busy[MESH_INFLIGHT_SLOTS];
    bool survived[MESH_INFLIGHT_MARKS];
    size_t busy_count = 0, rejected = 0;
    const char *why = NULL;
    int rc = mesh_inflight_read (fd, in->mark_count, busy, &busy_count, survived, &rejected,
                                 &why);
    close (fd);
    if (rc != 0) {
        mesh_warn ("agent %s: %s; this death counts no strike", in->name, why);
        return;
    }
    if (rejected)
        mesh_warn ("agent %s: %zu in-flight slot(s) held no valid position; ignored", in->name,
                   rejected);
    for (size_t i = 0; i < in->mark_count; i++)
        if (survived[i])
            mesh_quarantine_clear (self->quarantine, in->cfg->name, &in->marks[i]);
    bool clean = WIFEXITED (status) && (WEXITSTATUS (status) == 0 || WEXITSTATUS (status) == 75);
    if (clean || self->stopping || busy_count == 0)
        return;
    int limit = self->cfg->quarantine_after > 0 ? self->cfg->quarantine_after
                                                : MESH_QUARANTINE_AFTER_DEFAULT;
    char *death = hung ? zsys_sprintf ("hung: no heartbeat for %d ms, killed",
                                       self->cfg->liveness_timeout_ms)
                       : s_death_text (status);
    for (size_t i = 0; i < busy_count; i++) {
        bool twice = false;             //  two threads on one position: one strike
        for (size_t k = 0; k < i && !twice; k++)
            twice = busy[k].offset == busy[i].offset && busy[k].partition == busy[i].partition
                    && strcmp (busy[k].topic, busy[i].topic) == 0;
        if (twice)
            continue;
        bool reached = false;
        int strikes = mesh_quarantine_strike (self->quarantine, in->cfg->name, &busy[i], limit,
                                              &reached);
        if (reached) {
            mesh_err ("agent %s: message %s[%d]@%lld quarantined: handling it ended the agent "
                      "%d times (last: %s); later lives skip it%s%s", in->name, busy[i].topic,
                      busy[i].partition, (long long) busy[i].offset, strikes, death,
                      in->cfg->dead_letter_topic ? " and copy it to " : "",
                      in->cfg->dead_letter_topic ? in->cfg->dead_letter_topic : "");
            s_record_quarantine (self, in, &busy[i], strikes, limit, death);
        }
        else
            mesh_warn ("agent %s ended (%s) while handling %s[%d]@%lld: strike %d of %d",
                       in->name, death, busy[i].topic, busy[i].partition,
                       (long long) busy[i].offset, strikes, limit);
    }
    free (death);
}

static void
s_died (mesh_supervise_t *self, s_instance_t *in, int status)
{
    int64_t now = zclock_mono ();
    pid_t pid = in->pid;
    in->last_exit = WIFEXITED (status) ? WEXITSTATUS (status) : -WTERMSIG (status);
    in->pid = 0;
    s_forget (in);
    if (self->on_death)
        self->on_death (self->on_death_arg, in->name);
    s_fold (in);
    if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
        s_record (self, in, "died", pid, status);
    s_reckon (self, in, status);
    if (self->holding && !self->stopping) {
        in->state = S_HELD;
        in->restart_requested = false;
        mesh_info ("agent %s is down (last exit %d); held until %s", in->name, in->last_exit,
                   self->hold_why ? self->hold_why : "released");
        return;
    }
    if (in->restart_requested && !self->stopping) {
        in->restart_requested = false;
        mesh_info ("agent %s exited (%d) to apply the new config; starting it again", in->name,
                   in->last_exit);
        s_spawn (self, in);
        return;
    }
    if (self->stopping) {
        in->state = S_STOPPED;
        mesh_info ("agent %s exited (%d)", in->name, in->last_exit);
        return;
    }
    if (now - in->started_at >= (int64_t) self->cfg->healthy_after_s * 1000)
        in->backoff_ms = self->cfg->backoff_initial_ms;
    //  Intensity: how many restarts inside the period, this one included?
    in->restart_at[in->restarts % S_RING] = now;
    in->restarts++;
    int recent = 0;
    for (int i = 0; i < in->restarts && i < S_RING; i++)
        if (now - in->restart_at[i] <= (int64_t) self->cfg->restart_period_s * 1000)
            recent++;
    char *death = s_death_text (status);
    if (recent > self->cfg->restart_intensity) {
        in->state = S_FAILED;
        s_record (self, in, "failed", pid, status);
        mesh_err ("agent %s failed: %d restarts within %d s (last death: %s); not restarting "
                  "until meshd restarts; meshd is not ready and stops feeding the watchdog",
                  in->name, recent, self->cfg->restart_period_s, death);
        free (death);
        return;
    }
    in->state = S_BACKOFF;
    in->next_start = now + in->backoff_ms;
    mesh_warn ("agent %s died (%s); restart in %lld ms", in->name, death,
               (long long) in->backoff_ms);
    free (death);
    in->backoff_ms = in->backoff_ms * 2 > self->cfg->backoff_max_ms ? self->cfg->backoff_max_ms
                                                                    : in->backoff_ms * 2;
}

void
mesh_supervise_tick (mesh_supervise_t *self)
{
    int status;
    pid_t pid;
    //  __WNOTHREAD: only this thread's children (the agents); the action executors' own
    //  children are theirs to reap (daemon/actions.c, agents/act/exec.c).
    while ((pid = waitpid (-1, &status, WNOHANG | __WNOTHREAD)) > 0) {
        s_instance_t *in = s_by_pid (self, pid);
        if (in)
            s_died (self, in, status);
    }
    int64_t now = zclock_mono ();
    for (size_t i = 0; i < self->count; i++) {
        s_instance_t *in = &self->inst[i];
        if (in->state == S_BACKOFF && !self->stopping && !self->holding
            && now >= in->next_start)
            s_spawn (self, in);
        else
        if ((in->state == S_RUNNING || in->state == S_STARTING) && in->pid
            && now - in->last_beat > self->cfg->liveness_timeout_ms && !self->stopping) {
            mesh_err ("agent %s sent no heartbeat for %d ms; killing it", in->name,
                      self->cfg->liveness_timeout_ms);
            kill (in->pid, SIGKILL);
            in->hung = true;
            in->last_beat = now;        //  once; the reap restarts it
        }
    }
}

void
mesh_supervise_hello (mesh_supervise_t *self, const char *routing_id, json_t *body)
{
    s_instance_t *in = s_by_routing (self, routing_id);
    const char *agent = json_string_value (json_object_get (body, "agent"));
    if (!in || strcmp (agent, in->cfg->name) != 0) {
        mesh_warn ("hello from unknown peer '%s' ignored", routing_id);
        return;
    }
    if (!in->pid)
        return;     //  sent just before a death that was reaped first: it is not up
    in->hello = in->ever_hello = true;
    in->state = S_RUNNING;
    in->last_beat = zclock_mono ();
    mesh_info ("agent %s is up (pid %lld)", in->name,
               (long long) json_integer_value (json_object_get (body, "pid")));
}

//  A heartbeat's "backends" (VALUE, may be NULL) replaces the instance's copy when it is an
//  object of at most S_MAX_BACKENDS objects and S_MAX_BACKENDS_BYTES; anything else is
//  dropped (and reported as the agent's bug), which leaves none: an old picture would pass
//  for the present.
static void
s_take_backends (mesh_supervise_t *self, s_instance_t *in, const char *routing_id,
                 json_t *value)
{
    json_decref (in->backends);
    in->backends = NULL;
    if (!value)
        return;
    bool fits = json_is_object (value) && json_object_size (value) <= S_MAX_BACKENDS;
    const char *name;
    json_t *entry;
    if (fits)
        json_object_foreach (value, name, entry)
            fits = fits && json_is_object (entry);
    fits = fits && json_dumpb (value, NULL, 0, JSON_COMPACT) <= S_MAX_BACKENDS_BYTES;
    if (fits)
        in->backends = json_deep_copy (value);
    else
        mesh_supervise_agent_bug (self, routing_id, "heartbeat: \"backends\" must be an "
                                  "object of at most 64 objects, 64 KiB; dropped");
}

//  A heartbeat's "hist" (VALUE, may be NULL: an agent from before it) replaces this life's
//  when it is an object of at most 8 histograms, each an array as mesh_hist_json makes it
//  or an object of at most S_MAX_BACKENDS of them; anything else is dropped as a bug.
static void
s_take_hist (mesh_supervise_t *self, s_instance_t *in, const char *routing_id, json_t *value)
{
    if (!value)
        return;
    mesh_hist_t h;
    bool fits = json_is_object (value) && json_object_size (value) <= 8;
    const char *key;
    json_t *entry;
    if (fits)
        json_object_foreach (value, key, entry) {
            if (json_is_array (entry)) {
                fits = fits && mesh_hist_from_json (&h, entry) == 0;
                continue;
            }
            fits = fits && json_is_object (entry) && json_object_size (entry) <= S_MAX_BACKENDS;
            const char *backend;
            json_t *array;
            if (fits)
                json_object_foreach (entry, backend, array)
                    fits = fits && strlen (backend) < 128 && mesh_hist_from_json (&h, array) == 0;
        }
    if (!fits) {
        mesh_supervise_agent_bug (self, routing_id, "heartbeat: \"hist\" must be an object of "
                                  "at most 8 histograms (arrays of 17 numbers, or objects of "
                                  "at most 64 of them); dropped");
        return;
    }
    json_decref (in->hist_life);
    in->hist_life = json_deep_copy (value);
}

//  A heartbeat's "lag_partitions": at most MESH_PROTO_MAX_LAG_PARTITIONS objects {topic,
//  partition, lag}; anything else is dropped as a bug.
static void
s_take_lag (mesh_supervise_t *self, s_instance_t *in, const char *routing_id, json_t *value)
{
    json_decref (in->lag_parts);
    in->lag_parts = NULL;
    if (!value)
        return;
    bool fits = json_is_array (value) && json_array_size (value) <= MESH_PROTO_MAX_LAG_PARTITIONS;
    size_t i;
    json_t *part;
    if (fits)
        json_array_foreach (value, i, part) {
            const char *topic = json_string_value (json_object_get (part, "topic"));
            fits = fits && topic && strlen (topic) < 256
                   && json_is_integer (json_object_get (part, "partition"))
                   && json_integer_value (json_object_get (part, "lag")) >= 0
                   && json_is_integer (json_object_get (part, "lag"));
        }
    if (fits)
        in->lag_parts = json_deep_copy (value);
    else
        mesh_supervise_agent_bug (self, routing_id, "heartbeat: \"lag_partitions\" must be an "
                                  "array of at most 64 {topic, partition, lag}; dropped");
}

void
mesh_supervise_heartbeat (mesh_supervise_t *self, const char *routing_id, json_t *body)
{
    s_instance_t *in = s_by_routing (self, routing_id);
    if (!in || !in->pid)
        return;     //  from a life already reaped: its counters are folded
    in->last_beat = zclock_mono ();
    json_object_update (in->life, json_object_get (body, "counters"));
    s_take_backends (self, in, routing_id, json_object_get (body, "backends"));
    s_take_hist (self, in, routing_id, json_object_get (body, "hist"));
    s_take_lag (self, in, routing_id, json_object_get (body, "lag_partitions"));
    const char *hash = json_string_value (json_object_get (body, "rules_hash"));
    if (hash && (!in->rules_hash || strcmp (hash, in->rules_hash) != 0)) {
        free (in->rules_hash);
        in->rules_hash = strdup (hash);
    }
}

void
mesh_supervise_reconfigure (mesh_supervise_t *self, const mesh_config_t *new_cfg)
{
    self->cfg = new_cfg;
    for (size_t i = 0; i < self->count; i++) {
        const mesh_agent_config_t *agent = mesh_config_agent (new_cfg, self->inst[i].cfg->name);
        if (agent)
            self->inst[i].cfg = agent;
    }
}

static void
s_send (mesh_supervise_t *self, s_instance_t *in, mesh_msg_type_t type, const char *reason)
{
    json_t *body = json_pack ("{ss}", "reason", reason);
    mesh_proto_send (self->sock, in->name, type, body);
    json_decref (body);
}

void
mesh_supervise_restart (mesh_supervise_t *self, const char *name)
{
    for (size_t i = 0; i < self->count; i++) {
        s_instance_t *in = &self->inst[i];
        //  Failed ones stay failed; one in backoff starts with the new config anyway.
        if (strcmp (in->cfg->name, name) != 0 || in->state == S_FAILED || !in->pid)
            continue;
        in->restart_requested = true;
        if (in->hello)
            s_send (self, in, MESH_MSG_SHUTDOWN, "config changed: restarting");
        else
            kill (in->pid, SIGTERM);
    }
}

void
mesh_supervise_reload (mesh_supervise_t *self, const char *name)
{
    for (size_t i = 0; i < self->count; i++) {
        s_instance_t *in = &self->inst[i];
        if (strcmp (in->cfg->name, name) != 0 || !in->pid || !in->hello)
            continue;
        if (!self->cfg->snapshot || !in->cfg->rules_hash) {
            mesh_err ("agent %s: no config snapshot or rule archive to reload from; "
                      "restarting it", in->name);
            mesh_supervise_restart (self, name);
            continue;
        }
        json_t *body = json_pack ("{ss ss ss ss}", "reason", "rules changed", "snapshot",
                                  self->cfg->snapshot, "sha256", self->cfg->sha256,
                                  "rules_sha256", in->cfg->rules_hash);
        mesh_proto_send (self->sock, in->name, MESH_MSG_RELOAD, body);
        json_decref (body);
    }
}

void
mesh_supervise_set_death_hook (mesh_supervise_t *self, mesh_supervise_death_fn *fn, void *arg)
{
    self->on_death = fn;
    self->on_death_arg = arg;
}

const char *
mesh_supervise_instance_of (mesh_supervise_t *self, const char *routing_id)
{
    s_instance_t *in = s_by_routing (self, routing_id);
    return in ? in->name : NULL;
}

const char *
mesh_supervise_agent_of (mesh_supervise_t *self, const char *routing_id)
{
    s_instance_t *in = s_by_routing (self, routing_id);
    return in ? in->cfg->name : NULL;
}

void
mesh_supervise_punish (mesh_supervise_t *self, const char *routing_id, const char *why)
{
    s_instance_t *in = s_by_routing (self, routing_id);
    if (!in || !in->pid)
        return;
    mesh_err ("agent %s sent an invalid message (%s); restarting it", in->name, why);
    kill (in->pid, SIGKILL);
}

void
mesh_supervise_agent_bug (mesh_supervise_t *self, const char *routing_id, const char *why)
{
    s_instance_t *in = s_by_routing (self, routing_id);
    if (!in || !in->pid)
        return;
    in->bugs_unrecorded++;
    int64_t now = zclock_mono ();
    if (in->bug_recorded_at && now - in->bug_recorded_at < MESH_SUPERVISE_BUG_EVERY_MS)
        return;
    mesh_err ("agent %s sent a message the protocol refuses (%s): an agent bug; recorded, "
              "not restarted", in->name, why);
    in->bug_recorded_at = now;
    if (self->recorder) {
        json_t *record = json_pack ("{ss ss ss ss si ss sI}", "type", "agent", "event",
                                    "agent_error", "instance", in->name, "agent", in->cfg->name,
                                    "pid", (int) in->pid, "reason", why ? why : "?", "count",
                                    (json_int_t) in->bugs_unrecorded);
        self->recorder (self->recorder_arg, record);
        json_decref (record);
    }
    in->bugs_unrecorded = 0;
}

bool
mesh_supervise_ready (mesh_supervise_t *self)
{
    if (self->holding)
        return false;
    for (size_t i = 0; i < self->count; i++)
        if (!self->inst[i].ever_hello || self->inst[i].state == S_FAILED)
            return false;
    return true;
}

void
mesh_supervise_hold (mesh_supervise_t *self, bool hold, const char *why)
{
    if (hold == self->holding)
        return;
    self->holding = hold;
    free (self->hold_why);
    self->hold_why = hold && why ? strdup (why) : NULL;
    for (size_t i = 0; i < self->count; i++) {
        s_instance_t *in = &self->inst[i];
        if (in->state == S_FAILED || in->state == S_STOPPED)
            continue;
        if (hold && in->pid) {
            in->restart_requested = true;   //  released before it is gone: start it at once
            if (in->hello)
                s_send (self, in, MESH_MSG_SHUTDOWN, why ? why : "held");
            else
                kill (in->pid, SIGTERM);
        }
        else
        if (hold)
            in->state = S_HELD;
        else
        if (in->state == S_HELD && !self->stopping) {
            in->backoff_ms = self->cfg->backoff_initial_ms;
            s_spawn (self, in);
        }
    }
    if (hold)
        mesh_warn ("holding every agent: %s", why ? why : "?");
    else
        mesh_notice ("agents released: starting them again");
}

bool
mesh_supervise_healthy (mesh_supervise_t *self)
{
    for (size_t i = 0; i < self->count; i++)
        if (self->inst[i].state == S_FAILED)
            return false;
    return true;
}

void
mesh_supervise_stop (mesh_supervise_t *self)
{
    self->stopping = true;
    for (size_t i = 0; i < self->count; i++) {
        s_instance_t *in = &self->inst[i];
        if (!in->pid) {
            if (in->state != S_FAILED)
                in->state = S_STOPPED;
            continue;
        }
        if (in->hello)
            s_send (self, in, MESH_MSG_SHUTDOWN, "meshd is stopping");
        else
            kill (in->pid, SIGTERM);    //  not connected yet: its signal handler drains
    }
}

int
mesh_supervise_alive (mesh_supervise_t *self)
{
    int alive = 0;
    for (size_t i = 0; i < self->count; i++)
        alive += self->inst[i].pid != 0;
    return alive;
}

void
mesh_supervise_kill_all (mesh_supervise_t *self)
{
    for (size_t i = 0; i < self->count; i++)
        if (self->inst[i].pid) {
            mesh_warn ("agent %s did not drain in time; killing it", self->inst[i].name);
            kill (self->inst[i].pid, SIGKILL);
        }
}

json_t *
mesh_supervise_status (mesh_supervise_t *self)
{
    json_t *list = json_array ();
    int64_t now = zclock_mono ();
    for (size_t i = 0; i < self->count; i++) {
        s_instance_t *in = &self->inst[i];
        json_t *counters = json_deep_copy (in->totals);
        const char *key;
        json_t *value;
        json_object_foreach (in->life, key, value) {
            json_int_t prior = s_is_gauge (key)
                                   ? 0 : json_integer_value (json_object_get (counters, key));
            json_object_set_new (counters, key, json_integer (prior + json_integer_value (value)));
        }
        json_array_append_new (
            list, json_pack ("{ss ss si ss si sI si so}", "name", in->name, "agent", in->cfg->name,
                             "pid", (int) in->pid, "state", s_state_names[in->state], "restarts",
                             in->restarts, "uptime_s",
                             (json_int_t) (in->pid ? (now - in->started_at) / 1000 : 0),
                             "last_exit", in->last_exit, "counters", counters));
        json_t *entry = json_array_get (list, json_array_size (list) - 1);
        json_object_set_new (entry, "rules_hash",
                             in->rules_hash ? json_string (in->rules_hash) : json_null ());
        json_object_set_new (entry, "quarantined", json_integer ((json_int_t) mesh_quarantine_count (
                                                       self->quarantine, in->cfg->name)));
        json_object_set_new (entry, "suspects", json_integer ((json_int_t) mesh_quarantine_suspects (
                                                    self->quarantine, in->cfg->name)));
        json_object_set_new (entry, "backends",
                             in->backends ? json_deep_copy (in->backends) : json_object ());
        //  For /metrics: the histograms of every life, and this life's partitions' lag.
        json_t *hist = json_object ();
        if (in->hist_totals)
            s_hist_merge (hist, in->hist_totals);
        if (in->hist_life)
            s_hist_merge (hist, in->hist_life);
        json_object_set_new (entry, "hist", hist);
        if (in->lag_parts)
            json_object_set_new (entry, "lag_partitions", json_deep_copy (in->lag_parts));
    }
    return list;
}

char *
mesh_supervise_summary (mesh_supervise_t *self)
{
    int running = 0, failed = 0;
    json_int_t decisions = 0;
    char names[256] = "";
    size_t used = 0;
    for (size_t i = 0; i < self->count; i++) {
        s_instance_t *in = &self->inst[i];
        running += in->state == S_RUNNING;
        decisions += json_integer_value (json_object_get (in->life, "loops"))
                     + json_integer_value (json_object_get (in->totals, "loops"));
        if (in->state != S_FAILED)
            continue;
        if (used < sizeof names) {
            int n = snprintf (names + used, sizeof names - used, "%s%s: last exit %d",
                              failed ? "; " : " (", in->name, in->last_exit);
            used += n > 0 ? (size_t) n : 0;
        }
        failed++;
    }
    if (failed && used < sizeof names - 1)
        strcat (names, ")");
    return zsys_sprintf ("%d/%zu agents running, %d failed%s, %lld decisions%s%s", running,
                         self->count, failed, names, (long long) decisions,
                         self->holding ? "; held: " : "", self->holding && self->hold_why
                                                              ? self->hold_why : "");
}

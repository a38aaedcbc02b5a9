/*  supervise - the agent processes' lifecycle, one state machine per instance.
 *
 *      starting --hello--> running --death--> backoff --timer--> starting
 *          \______________ silent: SIGKILL ______/        \--too many--> failed
 *
 *  Children are started with fork + execv of mesh-agent (no shell) and reaped
 *  with waitpid(WNOHANG) from the main loop's tick, so no signal handler does
 *  any work.  The instance's counters survive its death: each heartbeat carries
 *  the counters of the current life, and a death folds them into `totals`.
 */
#include "supervise.h"
#include "log.h"
#include "proto.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_RING 64

typedef enum { S_STARTING, S_RUNNING, S_BACKOFF, S_FAILED, S_STOPPED } s_state_t;
static const char *s_state_names[] = {"starting", "running", "backoff", "failed", "stopped"};

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
} s_instance_t;

struct _mesh_supervise_t {
    const mesh_config_t *cfg;
    char *binary, *config_path, *endpoint, *brokers;
    zsock_t *sock;
    s_instance_t *inst;
    size_t count;
    bool stopping;
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

static void
s_fold (s_instance_t *in)
{
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

static void
s_spawn (mesh_supervise_t *self, s_instance_t *in)
{
    //  Signals stay blocked from the fork until the child has default dispositions: a
    //  SIGTERM sent at once (a stop before the agent is up) would otherwise run meshd's
    //  own handler in the child and be lost.
    sigset_t all, old;
    sigfillset (&all);
    pthread_sigmask (SIG_SETMASK, &all, &old);
    pid_t pid = fork ();
    if (pid > 0 || pid < 0)
        pthread_sigmask (SIG_SETMASK, &old, NULL);
    if (pid < 0) {
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
        char *argv[] = {self->binary,  "--config",   self->config_path, "--agent",
                        in->cfg->name, "--instance", in->name,          "--endpoint",
                        self->endpoint, "--brokers", self->brokers,     NULL};
        execv (self->binary, argv);
        fprintf (stderr, "<3>meshd[%s]: cannot exec %s: %s\n", in->name, self->binary,
                 strerror (errno));
        _exit (127);
    }
    in->pid = pid;
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
            s_spawn (self, in);
        }
    }
    return self;
}

void
mesh_supervise_destroy (mesh_supervise_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mesh_supervise_t *self = *self_p;
    for (size_t i = 0; i < self->count; i++) {
        free (self->inst[i].name);
        free (self->inst[i].rules_hash);
        json_decref (self->inst[i].life);
        json_decref (self->inst[i].totals);
    }
    free (self->inst);
    free (self->binary);
    free (self->config_path);
    free (self->endpoint);
    free (self->brokers);
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

//  The instance owning a routing id "<instance>" or "<instance>/<thread>".
static s_instance_t *
s_by_routing (mesh_supervise_t *self, const char *routing_id)
{
    if (!routing_id)
        return NULL;
    size_t len = strcspn (routing_id, "/");
    for (size_t i = 0; i < self->count; i++)
        if (strlen (self->inst[i].name) == len
            && strncmp (self->inst[i].name, routing_id, len) == 0)
            return &self->inst[i];
    return NULL;
}

static void
s_died (mesh_supervise_t *self, s_instance_t *in, int status)
{
    int64_t now = zclock_mono ();
    in->last_exit = WIFEXITED (status) ? WEXITSTATUS (status) : -WTERMSIG (status);
    in->pid = 0;
    s_fold (in);
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
    if (recent > self->cfg->restart_intensity) {
        in->state = S_FAILED;
        mesh_err ("agent %s failed: %d restarts within %d s (last exit %d); not restarting "
                  "until meshd restarts",
                  in->name, recent, self->cfg->restart_period_s, in->last_exit);
        return;
    }
    in->state = S_BACKOFF;
    in->next_start = now + in->backoff_ms;
    mesh_warn ("agent %s died (%s %d); restart in %lld ms", in->name,
               in->last_exit < 0 ? "signal" : "exit code",
               in->last_exit < 0 ? -in->last_exit : in->last_exit, (long long) in->backoff_ms);
    in->backoff_ms = in->backoff_ms * 2 > self->cfg->backoff_max_ms ? self->cfg->backoff_max_ms
                                                                    : in->backoff_ms * 2;
}

void
mesh_supervise_tick (mesh_supervise_t *self)
{
    int status;
    pid_t pid;
    while ((pid = waitpid (-1, &status, WNOHANG)) > 0) {
        s_instance_t *in = s_by_pid (self, pid);
        if (in)
            s_died (self, in, status);
    }
    int64_t now = zclock_mono ();
    for (size_t i = 0; i < self->count; i++) {
        s_instance_t *in = &self->inst[i];
        if (in->state == S_BACKOFF && !self->stopping && now >= in->next_start)
            s_spawn (self, in);
        else
        if ((in->state == S_RUNNING || in->state == S_STARTING) && in->pid
            && now - in->last_beat > self->cfg->liveness_timeout_ms && !self->stopping) {
            mesh_err ("agent %s sent no heartbeat for %d ms; killing it", in->name,
                      self->cfg->liveness_timeout_ms);
            kill (in->pid, SIGKILL);
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

void
mesh_supervise_heartbeat (mesh_supervise_t *self, const char *routing_id, json_t *body)
{
    s_instance_t *in = s_by_routing (self, routing_id);
    if (!in || !in->pid)
        return;     //  from a life already reaped: its counters are folded
    in->last_beat = zclock_mono ();
    json_object_update (in->life, json_object_get (body, "counters"));
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
        if (strcmp (in->cfg->name, name) == 0 && in->pid && in->hello)
            s_send (self, in, MESH_MSG_RELOAD, "rules changed");
    }
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

bool
mesh_supervise_ready (mesh_supervise_t *self)
{
    for (size_t i = 0; i < self->count; i++)
        if (!self->inst[i].ever_hello && self->inst[i].state != S_FAILED)
            return false;
    return true;
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
        json_object_set_new (json_array_get (list, json_array_size (list) - 1), "rules_hash",
                             in->rules_hash ? json_string (in->rules_hash) : json_null ());
    }
    return list;
}

char *
mesh_supervise_summary (mesh_supervise_t *self)
{
    int running = 0, failed = 0;
    json_int_t decisions = 0;
    for (size_t i = 0; i < self->count; i++) {
        running += self->inst[i].state == S_RUNNING;
        failed += self->inst[i].state == S_FAILED;
        decisions += json_integer_value (json_object_get (self->inst[i].life, "loops"))
                     + json_integer_value (json_object_get (self->inst[i].totals, "loops"));
    }
    return zsys_sprintf ("%d/%zu agents running, %d failed, %lld decisions", running, self->count,
                         failed, (long long) decisions);
}

/*  meshd - the supervisor: front door of the daemon.
 *
 *      meshd [--config FILE]            run (systemd Type=notify service)
 *      meshd --check-config [FILE]      validate config, rules and backends; exit 0/1
 *
 *  Startup order: config (refuse to start on any problem) -> directories ->
 *  embedded broker (if configured) -> decision ledger (verifies the chain,
 *  repairs a torn tail) -> sockets -> agents -> READY=1 once every agent said
 *  hello.  The main loop serves the agents (hello, heartbeats, decisions,
 *  outcomes, lookups: the ledger is written only here), meshctl requests, and a
 *  100 ms tick that reaps and restarts agents and pings the systemd watchdog
 *  only while the loop itself and every agent are healthy.  SIGTERM/SIGINT: ask
 *  the agents to drain (still acknowledging their records), wait up to
 *  drain_timeout_ms, kill the rest, close the ledger, exit 0.
 */
#include "broker.h"
#include "config.h"
#include "control.h"
#include "gate.h"
#include "backend.h"
#include "ledger.h"
#include "log.h"
#include "proto.h"
#include "reload.h"
#include "supervise.h"

#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#define MESHD_VERSION "0.1.0"

typedef struct {
    mesh_config_t *cfg;                 //  in force
    json_t *tree;                       //  its file as a tree, to compare with a new one
    json_t *last;                       //  the last reload: {ok, at, error?, restart, reload}
} s_config_state_t;

static json_t *s_reload (s_config_state_t *st, mesh_supervise_t *sup, mesh_ledger_t *ledger);

static volatile sig_atomic_t s_stop;
static volatile sig_atomic_t s_hup;

static void
s_on_signal (int sig)
{
    if (sig == SIGHUP)
        s_hup = 1;
    else
        s_stop = 1;
}

static int
s_mkdirs (const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    snprintf (buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir (buf, mode) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    if (mkdir (buf, mode) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

static char *
s_agent_binary (const mesh_config_t *cfg)
{
    if (cfg->agent_binary)
        return strdup (cfg->agent_binary);
    char self[PATH_MAX];
    ssize_t n = readlink ("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return strdup ("mesh-agent");
    self[n] = 0;
    char *slash = strrchr (self, '/');
    *slash = 0;
    return zsys_sprintf ("%s/mesh-agent", self);
}

//  One message from an agent.
static void
s_serve_agent (mesh_supervise_t *sup, mesh_ledger_t *ledger, zsock_t *sock)
{
    const char *why = NULL;
    char *sender = NULL;
    mesh_msg_t *msg = mesh_proto_recv (sock, true, &why, &sender);
    if (!msg) {
        mesh_supervise_punish (sup, sender, why);
        free (sender);
        return;
    }
    const char *from = msg->routing_id;
    const char *agent = mesh_supervise_agent_of (sup, from);
    if (!agent) {
        mesh_warn ("message from unknown peer '%s' dropped", from);
        mesh_msg_destroy (&msg);
        return;
    }
    switch (msg->type) {
        case MESH_MSG_HELLO: mesh_supervise_hello (sup, from, msg->body); break;
        case MESH_MSG_HEARTBEAT: mesh_supervise_heartbeat (sup, from, msg->body); break;
        case MESH_MSG_DECISION:
        case MESH_MSG_OUTCOME: {
            json_t *record = json_object_get (msg->body, "record");
            const char *id = json_string_value (json_object_get (record, "id"));
            const char *claimed = json_string_value (json_object_get (record, "agent"));
            int64_t seq = -1;
            if (strcmp (claimed, agent) != 0)
                mesh_supervise_punish (sup, from, "record for another agent");
            else
                seq = mesh_ledger_append (ledger, record);
            json_t *reply = seq > 0 ? json_pack ("{ss sI}", "id", id, "seq", (json_int_t) seq)
                                    : json_pack ("{ss ss}", "id", id, "reason",
                                                 "the ledger refused the record");
            mesh_proto_send (sock, from, seq > 0 ? MESH_MSG_ACK : MESH_MSG_ERROR, reply);
            json_decref (reply);
            break;
        }
        case MESH_MSG_LOOKUP: {
            const char *id = json_string_value (json_object_get (msg->body, "id"));
            json_t *decision = NULL;
            mesh_ledger_state_t state = mesh_ledger_lookup (ledger, id, &decision);
            const char *names[] = {"none", "decided", "complete"};
            json_t *reply = json_pack ("{ss ss so}", "id", id, "state", names[state], "decision",
                                       decision ? decision : json_null ());
            mesh_proto_send (sock, from, MESH_MSG_LOOKUP_REPLY, reply);
            json_decref (reply);
            break;
        }
        case MESH_MSG_PENDING: {
            json_t *reply = json_pack ("{ss so}", "id", agent, "decisions",
                                       mesh_ledger_pending (ledger, agent));
            mesh_proto_send (sock, from, MESH_MSG_PENDING_REPLY, reply);
            json_decref (reply);
            break;
        }
        default: mesh_supervise_punish (sup, from, "message type not expected from an agent");
    }
    mesh_msg_destroy (&msg);
}

static void
s_serve_control (zsock_t *sock, json_t *daemon_status, mesh_supervise_t *sup,
                 s_config_state_t *st, mesh_ledger_t *ledger)
{
    const char *why = NULL;
    mesh_msg_t *msg = mesh_proto_recv (sock, true, &why, NULL);
    if (!msg) {
        mesh_warn ("control: dropped a request: %s", why);
        return;
    }
    json_t *reply = NULL;
    const char *cmd = json_string_value (json_object_get (msg->body, "cmd"));
    if (msg->type == MESH_MSG_CTL_REQUEST && strcmp (cmd, "reload") == 0)
        reply = s_reload (st, sup, ledger);
    else
    if (msg->type == MESH_MSG_CTL_REQUEST) {
        json_t *agents = mesh_supervise_status (sup);
        reply = mesh_control_reply (msg->body, daemon_status, agents);
        json_decref (agents);
    }
    else
        reply = json_pack ("{sb ss}", "ok", 0, "error", "expected a ctl_request");
    mesh_proto_send (sock, msg->routing_id, MESH_MSG_CTL_REPLY, reply);
    json_decref (reply);
    mesh_msg_destroy (&msg);
}

//  Record, for every agent, the rule set now in force (its content hash), so that an
//  auditor can tell which rules judged which decision and a replay can find them.
static void
s_record_rules (mesh_ledger_t *ledger, const mesh_config_t *cfg, const char *event)
{
    for (size_t i = 0; i < cfg->agent_count; i++) {
        char *err = NULL;
        mesh_gate_t *gate = mesh_gate_new (cfg, &cfg->agents[i], &err);
        if (!gate) {
            mesh_err ("rules of agent %s: %s", cfg->agents[i].name, err ? err : "?");
            free (err);
            continue;
        }
        json_t *files = json_array ();
        for (size_t r = 0; r < cfg->global_rule_count; r++)
            json_array_append_new (files, json_string (cfg->global_rules[r]));
        for (size_t r = 0; r < cfg->agents[i].rule_count; r++)
            json_array_append_new (files, json_string (cfg->agents[i].rules[r]));
        //  The archive is what a replay loads: the files as they were, under their hash.
        char *archive = NULL;
        if (mesh_gate_archive (gate, cfg->state_dir, &archive) != 0)
            mesh_err ("rules of agent %s could not be archived; decisions stay verifiable by "
                      "hash, but a replay will need the files", cfg->agents[i].name);
        json_t *record = json_pack ("{ss ss ss ss so so ss?}", "type", "rules", "event", event,
                                    "agent", cfg->agents[i].name, "rules_hash",
                                    mesh_gate_rules_hash (gate), "files", files, "manifest",
                                    mesh_gate_manifest (gate), "archive", archive);
        free (archive);
        mesh_ledger_append (ledger, record);
        json_decref (record);
        mesh_gate_destroy (&gate);
    }
}

//  SIGHUP or `meshctl reload`.  Returns the reply body for meshctl.
static json_t *
s_reload (s_config_state_t *st, mesh_supervise_t *sup, mesh_ledger_t *ledger)
{
    mesh_config_t *next = NULL;
    json_t *plan = NULL, *tree = NULL;
    char *error = NULL;
    json_decref (st->last);
    if (mesh_reload_plan (st->cfg->path, st->tree, &next, &plan, &tree, &error) != 0) {
        mesh_err ("reload refused; the running config and rules stay in force:");
        char *lines = strdup (error), *save = NULL;
        for (char *l = strtok_r (lines, "\n", &save); l; l = strtok_r (NULL, "\n", &save))
            mesh_err ("  %s", l);
        free (lines);
        st->last = json_pack ("{sb sI ss}", "ok", 0, "at", (json_int_t) time (NULL), "error",
                              error ? error : "?");
        free (error);
        return json_pack ("{sb ss}", "ok", 0, "error",
                          json_string_value (json_object_get (st->last, "error")));
    }
    mesh_supervise_reconfigure (sup, next);
    mesh_config_destroy (&st->cfg);
    json_decref (st->tree);
    st->cfg = next;
    st->tree = tree;
    size_t i;
    json_t *name;
    json_array_foreach (json_object_get (plan, "restart"), i, name)
        mesh_supervise_restart (sup, json_string_value (name));
    json_array_foreach (json_object_get (plan, "reload"), i, name)
        mesh_supervise_reload (sup, json_string_value (name));
    s_record_rules (ledger, st->cfg, "reload");
    mesh_notice ("reloaded %s: %zu agent(s) swap their rules, %zu restart",
                 st->cfg->path, json_array_size (json_object_get (plan, "reload")),
                 json_array_size (json_object_get (plan, "restart")));
    st->last = json_pack ("{sb sI sO sO}", "ok", 1, "at", (json_int_t) time (NULL), "reload",
                          json_object_get (plan, "reload"), "restart",
                          json_object_get (plan, "restart"));
    json_t *reply = json_pack ("{sb sO}", "ok", 1, "result", st->last);
    json_decref (plan);
    return reply;
}

static zsock_t *
s_bind (int type, const char *endpoint)
{
    const char *path = endpoint + strlen ("ipc://");
    unlink (path);                      //  a stale socket from a killed meshd
    zsock_t *sock = zsock_new (type);
    zsock_set_linger (sock, 0);
    zsock_set_router_mandatory (sock, 0);
    if (zsock_bind (sock, "%s", endpoint) != 0) {
        mesh_err ("cannot bind %s: %s", endpoint, zmq_strerror (zmq_errno ()));
        zsock_destroy (&sock);
    }
    return sock;
}

//  Runs the daemon until it is stopped; owns and frees CFG_AT_START (and its successors).
static int
s_run (mesh_config_t *cfg_at_start)
{
    s_config_state_t st = {.cfg = cfg_at_start, .tree = mesh_reload_tree (cfg_at_start->path)};
    mesh_config_t *cfg = st.cfg;
    if (s_mkdirs (cfg->runtime_dir, 0750) != 0 || s_mkdirs (cfg->state_dir, 0750) != 0) {
        mesh_err ("cannot create %s or %s: %s", cfg->runtime_dir, cfg->state_dir,
                  strerror (errno));
        json_decref (st.tree);
        mesh_config_destroy (&st.cfg);
        return 1;
    }
    char runtime[PATH_MAX], config_path[PATH_MAX];
    if (!realpath (cfg->runtime_dir, runtime) || !realpath (cfg->path, config_path)) {
        json_decref (st.tree);
        mesh_config_destroy (&st.cfg);
        return 1;
    }
    mesh_broker_t *broker = NULL;
    const char *brokers = cfg->brokers;
    if (cfg->embedded) {
        broker = mesh_broker_new (cfg);
        if (!broker) {
            json_decref (st.tree);
            mesh_config_destroy (&st.cfg);
            return 1;
        }
        brokers = mesh_broker_bootstraps (broker);
        mesh_warn ("kafka.brokers is \"embedded\": the embedded broker keeps everything in "
                   "memory and is for demos and tests; its topics, messages and committed "
                   "group offsets are lost when meshd stops (docs/configuration.md)");
    }
    else
        unsetenv (MESH_BROKER_INCARNATION_ENV);     //  agents must not inherit a stale one
    char *brokers_file = zsys_sprintf ("%s/brokers", runtime);
    FILE *bf = fopen (brokers_file, "w");
    if (bf) {
        fprintf (bf, "%s\n", brokers);
        fclose (bf);
    }
    mesh_ledger_t *ledger = mesh_ledger_open (cfg->decision_log);
    char *agents_ep = mesh_proto_agents_endpoint (runtime);
    char *control_ep = mesh_proto_control_endpoint (runtime);
    zsock_t *agents = ledger ? s_bind (ZMQ_ROUTER, agents_ep) : NULL;
    zsock_t *control = agents ? s_bind (ZMQ_ROUTER, control_ep) : NULL;
    char *binary = s_agent_binary (cfg);
    int rc = 1;
    if (!control)
        goto done;

    mesh_supervise_t *sup = mesh_supervise_new (cfg, binary, config_path, agents_ep, brokers,
                                                agents);
    s_record_rules (ledger, cfg, "start");
    if (broker) {                       //  the incarnation the next decision ids derive from
        json_t *record = mesh_broker_record (broker);
        mesh_ledger_append (ledger, record);
        json_decref (record);
    }
    zpoller_t *poller = zpoller_new (agents, control, NULL);
    uint64_t watchdog_usec = 0;
    bool watchdog = sd_watchdog_enabled (0, &watchdog_usec) > 0;
    bool ready = false;
    int64_t started = zclock_mono (), next_status = 0, next_watchdog = 0, deadline = 0;
    char *last_summary = NULL;
    mesh_notice ("meshd %s started: %zu agent(s), decision log %s", MESHD_VERSION,
                 cfg->agent_count, cfg->decision_log);
    while (true) {
        if (s_stop && !deadline) {
            sd_notify (0, "STOPPING=1");
            mesh_notice ("stopping: draining agents (up to %d ms)", cfg->drain_timeout_ms);
            mesh_supervise_stop (sup);
            deadline = zclock_mono () + cfg->drain_timeout_ms;
        }
        if (deadline && mesh_supervise_alive (sup) == 0)
            break;
        if (deadline && zclock_mono () > deadline) {
            mesh_supervise_kill_all (sup);
            deadline = zclock_mono () + 60 * 1000;      //  reap what we killed
        }
        if (s_hup && !deadline) {
            s_hup = 0;
            json_decref (s_reload (&st, sup, ledger));
            cfg = st.cfg;
        }
        void *which = zpoller_wait (poller, 100);
        if (which == agents)
            s_serve_agent (sup, ledger, agents);
        else
        if (which == control) {
            json_t *status = json_pack (
                "{si ss ss ss ss sI sI sb sf}", "pid", (int) getpid (), "version", MESHD_VERSION,
                "config", config_path, "decision_log", mesh_ledger_path (ledger), "brokers",
                brokers, "uptime_s", (json_int_t) ((zclock_mono () - started) / 1000),
                "ledger_seq", (json_int_t) mesh_ledger_seq (ledger), "ready", ready,
                "ledger_fsync_ms", mesh_ledger_last_fsync_ms (ledger));
            json_object_set (status, "last_reload", st.last ? st.last : json_null ());
            s_serve_control (control, status, sup, &st, ledger);
            cfg = st.cfg;
            json_decref (status);
        }
        mesh_supervise_tick (sup);
        int64_t now = zclock_mono ();
        if (!ready && mesh_supervise_ready (sup)) {
            ready = true;
            sd_notify (0, "READY=1");
            mesh_notice ("ready: every agent said hello");
        }
        if (now >= next_status) {
            char *summary = mesh_supervise_summary (sup);
            if (!last_summary || strcmp (summary, last_summary) != 0)
                sd_notifyf (0, "STATUS=%s", summary);
            free (last_summary);
            last_summary = summary;
            next_status = now + 1000;
        }
        //  Only a loop that gets here, with no failed agent, feeds the watchdog.
        if (watchdog && now >= next_watchdog && mesh_supervise_healthy (sup)) {
            sd_notify (0, "WATCHDOG=1");
            next_watchdog = now + (int64_t) (watchdog_usec / 2000);
        }
    }
    free (last_summary);
    zpoller_destroy (&poller);
    mesh_supervise_destroy (&sup);
    mesh_notice ("stopped; decision log at seq %lld",
                 (long long) mesh_ledger_seq (ledger));
    rc = 0;
done:
    zsock_destroy (&control);
    zsock_destroy (&agents);
    unlink (agents_ep + strlen ("ipc://"));
    unlink (control_ep + strlen ("ipc://"));
    unlink (brokers_file);
    free (brokers_file);
    free (agents_ep);
    free (control_ep);
    free (binary);
    mesh_ledger_destroy (&ledger);
    mesh_broker_destroy (&broker);
    json_decref (st.tree);
    json_decref (st.last);
    mesh_config_destroy (&st.cfg);
    return rc;
}

int
main (int argc, char **argv)
{
    const char *config = "/etc/meshd/meshd.yaml";
    bool check = false;
    static struct option opts[] = {{"config", 1, 0, 'c'},  {"check-config", 0, 0, 'k'},
                                   {"version", 0, 0, 'V'}, {"help", 0, 0, 'h'},
                                   {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long (argc, argv, "c:kVh", opts, NULL)) != -1) {
        switch (c) {
            case 'c': config = optarg; break;
            case 'k': check = true; break;
            case 'V': printf ("meshd %s\n", MESHD_VERSION); return 0;
            case 'h':
                printf ("usage: meshd [--config FILE] | --check-config [FILE] | --version\n");
                return 0;
            default: return 64;
        }
    }
    if (check && optind < argc)
        config = argv[optind];
    mesh_log_set_tag ("supervisor");
    mesh_config_t *cfg = NULL;
    int problems = mesh_config_load (config, &cfg, stderr);
    if (problems == 0)
        problems = mesh_reload_check_parts (cfg, stderr);
    if (check || problems) {
        if (problems)
            fprintf (stderr, "%s: %d problem%s found\n", config, problems,
                     problems == 1 ? "" : "s");
        else
            printf ("%s: ok (%zu agents, %zu actions, %zu backends)\n", config, cfg->agent_count,
                    cfg->action_count, cfg->backend_count);
        mesh_config_destroy (&cfg);
        return problems ? 1 : 0;
    }
    //  Our own handlers, installed before CZMQ's sockets exist: zsys must not swallow them.
    zsys_handler_set (NULL);
    struct sigaction sa = {.sa_handler = s_on_signal};
    sigemptyset (&sa.sa_mask);
    sigaction (SIGTERM, &sa, NULL);
    sigaction (SIGINT, &sa, NULL);
    sigaction (SIGHUP, &sa, NULL);
    signal (SIGPIPE, SIG_IGN);
    zsys_init ();
    zsys_set_logstream (NULL);
    return s_run (cfg);         //  takes the config (a reload replaces it)
}

/*  meshd - the supervisor: front door of the daemon.
 *
 *      meshd [--config FILE]            run (systemd Type=notify service)
 *      meshd --check-config[=FILE]      validate config, rules and backends; exit 0/1
 *                                       (--check-config FILE is the same)
 *      meshd --set-aside-log [--config FILE]   move a log that fails verification
 *                                       aside intact and start a new one; exit 0/1
 *      meshd --version | --help         print to stdout, exit 0 (usage errors: stderr, 64)
 *      --log auto|journal|stderr        where diagnostics go (common/log.h); the agents
 *                                       inherit the choice through $MESH_LOG_TARGET
 *
 *  Startup order: config (refuse to start on any problem) -> directories ->
 *  embedded broker (if configured) -> decision ledger (verifies chain, MACs and
 *  head, moves a torn tail aside; a log that fails verification: exit 65) ->
 *  sockets -> agents -> READY=1 once every agent said hello.  The main loop
 *  serves the agents (hello, heartbeats, decisions, outcomes, lookups: the
 *  ledger is written only here), meshctl requests, and a
 *  100 ms tick that reaps and restarts agents and pings the systemd watchdog
 *  only while the loop itself and every agent are healthy.  SIGTERM/SIGINT: ask
 *  the agents to drain (still acknowledging their records), wait up to
 *  drain_timeout_ms, kill the rest, close the ledger, exit 0.
 *
 *  Trust: the runtime and state directories are created 0750 (chmod, whatever the
 *  umask) or, when they exist, refused unless they are directories owned by meshd's
 *  user and not writable by group or others.  agents.ipc is bound under umask 0177
 *  and chmod'ed 0600, control.ipc 0660; both ROUTERs cap frames (ZMQ_MAXMSGSIZE).
 *  On agents.ipc only authenticated routing ids are served (see supervise.h); the
 *  rest is dropped and counted, with at most a line per kind and 10 s (ratelog).
 *  With sandbox.user (agent_user.h): meshd must be root; the agents' account must reach
 *  what it opens (checked, at --check-config and at start, never fixed by changing the
 *  operator's modes); the directories meshd creates get the agents' group, agents.ipc
 *  and <state_dir>/incidents become the account's.
 *
 *  Storage: a ledger append that fails and a probe (write + fsync + unlink of
 *  <state_dir>/.probe) that fails too put meshd in one `storage: down` state: logged
 *  once, agents held (asked to drain, not restarted), not ready, no watchdog pings.
 *  The probe runs at most every 5 s; when it succeeds the agents start again.
 */
#include "agent_user.h"
#include "broker.h"
#include "config.h"
#include "control.h"
#include "gate.h"
#include "actions.h"
#include "http.h"
#include "metrics.h"
#include "backend.h"
#include "ledger.h"
#include "log.h"
#include "proto.h"
#include "ratelog.h"
#include "reload.h"
#include "ship.h"
#include "statuspage.h"
#include "supervise.h"
#include "tokens.h"
#include "version.h"

#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <grp.h>
#include <pwd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>


typedef struct {
    mesh_config_t *cfg;                 //  in force
    json_t *tree;                       //  its file as a tree, to compare with a new one
    json_t *last;                       //  the last reload: {ok, at, error?, restart, reload}
    const mesh_agent_user_t *agent_user;    //  sandbox.user as at start, or NULL
    const char *runtime;                //  the runtime directory (resolved): snapshots go there
    mesh_reload_job_t *job;             //  the reload being checked, or NULL
    zlist_t *waiters;                   //  routing ids (strings) of meshctl asking for it
    mesh_tokens_t *tokens;              //  takes the budgets of a reloaded config
    mesh_actions_t *actions;            //  takes the actions of a reloaded config
} s_config_state_t;

static void s_reload_start (s_config_state_t *st, const char *routing_id);

#define S_PROBE_EVERY_MS 5000
#define S_DROP_LOG_MS    10000
#define S_BACKLOG_MAX    1000           //  agent records kept while the storage is down

//  What the main loop shares with the agent message handlers and the death recorder.
typedef struct {
    mesh_ledger_t *ledger;
    mesh_supervise_t *sup;
    mesh_ratelog_t *drops;              //  unauthenticated and invalid messages, by kind
    char *state_dir;                    //  owned: the config it came from may be reloaded
    bool storage_suspect;               //  an append failed: probe before the next turn
    bool storage_down;
    char storage_error[512];
    int64_t next_probe;
    json_t *backlog;                    //  agent records not yet written (storage down)
    mesh_tokens_t *tokens;              //  the token ledger
    zlist_t *deferred;                  //  token replies waiting for the journal's sync
    zlist_t *acks;                      //  s_ack_t: records written, acknowledged after the
                                        //  batch's one fsync (group commit, s_commit)
    uint64_t sync_errors;               //  the journal's failed syncs seen so far
    bool sync_each_grant;               //  daemon.token_sync (as at start)
    mesh_actions_t *actions;            //  pause, rate limits, exec and webhook actions
    zsock_t *agents_sock;               //  where act replies go
    mesh_metrics_t *metrics;            //  histograms the daemon measures (ledger fsync)
} s_daemon_t;

//  A reply held until the token journal is synced past SEQ (s_send_synced).
typedef struct {
    char *to;
    mesh_msg_type_t type;
    json_t *body;
    uint64_t seq;
} s_deferred_t;

//  What the HTTP routes and the status read: the main loop's state, borrowed (every route
//  runs on the main loop's thread, inside mesh_http_wait).
typedef struct {
    s_daemon_t *d;
    s_config_state_t *st;
    const char *config_path;
    const char *brokers;
    int64_t started;
    bool ready;                         //  as the loop last computed it
    mesh_ship_t *ship;
    const char *ship_why;
    mesh_metrics_t *metrics;            //  the daemon's own histograms
    mesh_http_t *http;                  //  NULL unless http.listen
} s_view_t;

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

//  DIR was just made by meshd: mode 0750 whatever the umask, and GROUP unless -1.
static int
s_made_dir (const char *key, const char *dir, gid_t group)
{
    if (chmod (dir, 0750) != 0
        || (group != (gid_t) -1 && lchown (dir, (uid_t) -1, group) != 0)) {
        mesh_err ("daemon.%s: cannot give %s mode 0750%s: %s", key, dir,
                  group != (gid_t) -1 ? " and the agents' group" : "", strerror (errno));
        return -1;
    }
    return 0;
}

//  Make PATH (the daemon.KEY directory) one meshd can trust: created 0750 with its
//  missing parents (chmod after mkdir: the umask does not matter), or, when it exists, a
//  directory owned by the effective uid and not writable by group or others.  What meshd
//  creates gets GROUP (the agents' group with sandbox.user, so they can search it; -1:
//  meshd's own); an existing directory is never changed.  0, or -1 logged with the
//  directory and the fix.
static int
s_prepare_dir (const char *key, const char *path, gid_t group)
{
    char buf[PATH_MAX];
    if (snprintf (buf, sizeof buf, "%s", path) >= (int) sizeof buf) {
        mesh_err ("daemon.%s: path too long (%zu bytes); choose a shorter one", key,
                  strlen (path));
        return -1;
    }
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir (buf, 0750) == 0) {
                if (s_made_dir (key, buf, group) != 0)
                    return -1;
            }
            else
            if (errno != EEXIST) {
                mesh_err ("daemon.%s: cannot create %s: %s", key, buf, strerror (errno));
                return -1;
            }
            *p = '/';
        }
    if (mkdir (buf, 0750) == 0)
        return s_made_dir (key, buf, group);
    if (errno != EEXIST) {
        mesh_err ("daemon.%s: cannot create %s: %s", key, buf, strerror (errno));
        return -1;
    }
    struct stat st;
    if (stat (buf, &st) != 0) {
        mesh_err ("daemon.%s: cannot inspect %s: %s", key, buf, strerror (errno));
        return -1;
    }
    if (!S_ISDIR (st.st_mode)) {
        mesh_err ("daemon.%s: %s exists and is not a directory; remove it, or set daemon.%s "
                  "to a directory", key, buf, key);
        return -1;
    }
    if (st.st_uid != geteuid ()) {
        mesh_err ("daemon.%s: %s is owned by uid %d, not by meshd's uid %d; chown %d %s "
                  "(or set daemon.%s to a directory meshd owns)", key, buf, (int) st.st_uid,
                  (int) geteuid (), (int) geteuid (), buf, key);
        return -1;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        mesh_err ("daemon.%s: %s is writable by group or others (mode %04o), so another user "
                  "could replace meshd's files; chmod go-w %s", key, buf,
                  (unsigned) (st.st_mode & 07777), buf);
        return -1;
    }
    return 0;
}

//  Can the state directory take a write?  0, or -1 with ERROR filled.
static int
s_probe (const char *state_dir, char *error, size_t size)
{
    char path[PATH_MAX];
    snprintf (path, sizeof path, "%s/.probe", state_dir);
    int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf (error, size, "cannot create %.300s: %s", path, strerror (errno));
        return -1;
    }
    int rc = 0;
    if (write (fd, "probe\n", 6) != 6) {
        snprintf (error, size, "cannot write %.300s: %s", path, strerror (errno));
        rc = -1;
    }
    else
    if (fsync (fd) != 0) {
        snprintf (error, size, "cannot fsync %.300s: %s", path, strerror (errno));
        rc = -1;
    }
    close (fd);
    if (unlink (path) != 0 && rc == 0) {
        snprintf (error, size, "cannot remove %.300s: %s", path, strerror (errno));
        rc = -1;
    }
    return rc;
}

//  Append RECORD; a failure makes the storage suspect (the loop probes it).
static int64_t
s_append (s_daemon_t *d, json_t *record)
{
    int64_t seq = mesh_ledger_append (d->ledger, record);
    if (seq <= 0)
        d->storage_suspect = true;
    return seq;
}

//  A decision or outcome written in the current batch, to acknowledge once it is synced.
typedef struct {
    char *to;                           //  the agent's routing id
    char *id;                           //  the record's id
    int64_t seq;
} s_ack_t;

//  Group commit: one fsync for every record written since mesh_ledger_begin, then the
//  acknowledgements (or, if the sync failed and the ledger took them back, refusals).
static void
s_commit (s_daemon_t *d, zsock_t *sock)
{
    bool wrote = zlist_size (d->acks) > 0;
    int rc = mesh_ledger_commit (d->ledger);
    if (rc != 0)
        d->storage_suspect = true;
    else
    if (wrote)
        mesh_metrics_ledger_fsync (d->metrics, mesh_ledger_last_fsync_ms (d->ledger) / 1000.0);
    s_ack_t *ack;
    while ((ack = (s_ack_t *) zlist_pop (d->acks))) {
        json_t *reply = rc == 0 ? json_pack ("{ss sI}", "id", ack->id, "seq", (json_int_t) ack->seq)
                                : json_pack ("{ss ss}", "id", ack->id, "reason",
                                             "the ledger could not sync the record");
        mesh_proto_send (sock, ack->to, rc == 0 ? MESH_MSG_ACK : MESH_MSG_ERROR, reply);
        json_decref (reply);
        free (ack->to);
        free (ack->id);
        free (ack);
    }
}

//  Before an answer that reads the ledger: what this batch wrote is synced first.
static void
s_commit_point (s_daemon_t *d, zsock_t *sock)
{
    s_commit (d, sock);
    mesh_ledger_begin (d->ledger);
}

//  The supervisor's recorder: an agent died or failed.  While the storage is down the
//  record waits in a bounded backlog (marked recorded_late) and is written when it is up.
static void
s_record_agent (void *arg, json_t *record)
{
    s_daemon_t *d = (s_daemon_t *) arg;
    if (!d->storage_down && s_append (d, record) > 0)
        return;
    if (json_array_size (d->backlog) >= S_BACKLOG_MAX) {
        mesh_ratelog_hit (d->drops, "unrecorded", "storage down: agent record not kept (%zu "
                          "waiting already)", json_array_size (d->backlog));
        return;
    }
    json_t *late = json_deep_copy (record);
    json_object_set_new (late, "recorded_late", json_true ());
    json_array_append_new (d->backlog, late);
}

//  After a failed append, and every S_PROBE_EVERY_MS while down: is the storage writable?
static void
s_check_storage (s_daemon_t *d)
{
    int64_t now = zclock_mono ();
    if (d->storage_suspect && !d->storage_down) {
        d->storage_suspect = false;
        char error[sizeof d->storage_error];
        if (s_probe (d->state_dir, error, sizeof error) == 0)
            return;                     //  the ledger refused a record, the disk is fine
        d->storage_down = true;
        snprintf (d->storage_error, sizeof d->storage_error, "%s", error);
        mesh_err ("storage: down: %s; agents are held (not restarted), meshd is not ready and "
                  "stops feeding the watchdog; probing every %d s", error,
                  S_PROBE_EVERY_MS / 1000);
        mesh_supervise_hold (d->sup, true, "storage down");
        d->next_probe = now + S_PROBE_EVERY_MS;
        return;
    }
    d->storage_suspect = false;
    if (!d->storage_down || now < d->next_probe)
        return;
    d->next_probe = now + S_PROBE_EVERY_MS;
    char error[sizeof d->storage_error];
    if (s_probe (d->state_dir, error, sizeof error) != 0) {
        mesh_ratelog_hit (d->drops, "storage", "still down: %s", error);
        snprintf (d->storage_error, sizeof d->storage_error, "%s", error);
        return;
    }
    d->storage_down = false;
    d->storage_error[0] = 0;
    mesh_notice ("storage: up again (%s/.probe written and synced); starting the agents",
                 d->state_dir);
    size_t i;
    json_t *record;
    json_array_foreach (d->backlog, i, record)
        s_append (d, record);
    json_array_clear (d->backlog);
    mesh_supervise_hold (d->sup, false, NULL);
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

//  A reservation or a settle from AGENT (authenticated as FROM): the reply body (caller owns).
static json_t *
s_tokens_request (s_daemon_t *d, const char *from, const char *agent, mesh_msg_type_t type,
                  json_t *body)
{
    const char *instance = mesh_supervise_instance_of (d->sup, from);
    const char *id = json_string_value (json_object_get (body, "id"));
    if (type == MESH_MSG_RESERVE) {
        mesh_tokens_ask_t ask = {
            .agent = agent, .incident = json_string_value (json_object_get (body, "incident")),
            .step = (int) json_integer_value (json_object_get (body, "step")),
            .need = (long) json_integer_value (json_object_get (body, "need")),
            .backend = json_string_value (json_object_get (body, "backend")),
            .action = json_string_value (json_object_get (body, "action")),
            .high = !strcmp (json_string_value (json_object_get (body, "priority")), "high")};
        mesh_tokens_grant_t grant;
        if (d->storage_down)
            return json_pack ("{ss sb sI ss ss}", "id", id, "granted", 0, "grant",
                              (json_int_t) 0, "scope", "daemon", "detail",
                              "the state directory is not writable: no tokens are granted");
        mesh_tokens_reserve (d->tokens, instance ? instance : "?", &ask, &grant);
        json_t *reply = json_pack ("{ss sb sI sI}", "id", id, "granted", grant.granted, "grant",
                                   (json_int_t) grant.grant, "agent_used",
                                   (json_int_t) grant.agent_used);
        json_object_set_new (reply, "agent_limit", grant.agent_limit >= 0
                                                       ? json_integer (grant.agent_limit)
                                                       : json_null ());
        if (!grant.granted) {
            json_object_set_new (reply, "scope", json_string (grant.scope));
            json_object_set_new (reply, "detail", json_string (grant.detail));
        }
        return reply;
    }
    mesh_tokens_charge_t charge = {
        .charged = (long) json_integer_value (json_object_get (body, "charged")),
        .rule = json_string_value (json_object_get (body, "rule")),
        .result = json_string_value (json_object_get (body, "result")),
        .action = json_string_value (json_object_get (body, "action"))};
    json_t *scope = NULL;
    int rc = mesh_tokens_settle (d->tokens, instance ? instance : "?",
                                 json_integer_value (json_object_get (body, "grant")), &charge,
                                 &scope);
    if (rc != 0)
        mesh_ratelog_hit (d->drops, "settle", "agent %s settled a grant it does not hold "
                          "(already charged, or another life's)", agent);
    json_t *reply = json_pack ("{ss sb}", "id", id, "ok", rc == 0);
    if (scope)
        json_object_set_new (reply, "budget", scope);
    return reply;
}

//  Send the held replies whose journal lines are synced (all of them with ALL, after a
//  flush).  Should a sync fail, the replies still go (the grants are in the page cache
//  and in memory) and the storage is suspect: probed, agents held if it is down.
static void
s_send_synced (s_daemon_t *d, zsock_t *sock, bool all)
{
    if (zlist_size (d->deferred) == 0)
        return;
    if (all && mesh_tokens_flush (d->tokens) != 0)
        d->storage_suspect = true;
    uint64_t errors = 0;
    uint64_t synced = mesh_tokens_synced (d->tokens, &errors);
    if (errors != d->sync_errors) {
        d->sync_errors = errors;
        d->storage_suspect = true;
    }
    s_deferred_t *later;
    while ((later = zlist_first (d->deferred)) && later->seq <= synced) {
        zlist_pop (d->deferred);
        mesh_proto_send (sock, later->to, later->type, later->body);
        free (later->to);
        json_decref (later->body);
        free (later);
    }
}

//  The supervisor's death hook: what a dead instance held is charged in full.
static void
s_instance_died (void *arg, const char *instance)
{
    s_daemon_t *d = arg;
    if (mesh_tokens_release (d->tokens, instance))
        mesh_tokens_flush (d->tokens);
}

//  One message from an agent.  Only an authenticated routing id is served; an invalid
//  message from one is recorded as its bug, not punished; everything else is counted.
static void
s_serve_agent (s_daemon_t *d, zsock_t *sock)
{
    mesh_supervise_t *sup = d->sup;
    mesh_ledger_t *ledger = d->ledger;
    const char *why = NULL;
    char *sender = NULL;
    mesh_msg_t *msg = mesh_proto_recv (sock, true, &why, &sender);
    if (!msg) {
        if (sender && mesh_supervise_agent_of (sup, sender)) {
            mesh_ratelog_hit (d->drops, "agent_error",
                              "agent %s sent a message the protocol refuses: %s",
                              mesh_supervise_agent_of (sup, sender), why);
            mesh_supervise_agent_bug (sup, sender, why);
        }
        else
            mesh_ratelog_hit (d->drops, "unauthenticated",
                              "dropped an invalid message from unauthenticated peer '%.64s': %s",
                              sender ? sender : "?", why);
        free (sender);
        return;
    }
    const char *from = msg->routing_id;
    if (msg->type == MESH_MSG_AUTH) {
        const char *bad = mesh_supervise_auth (sup, from, msg->body);
        if (bad)
            mesh_ratelog_hit (d->drops, "bad_auth", "refused AUTH from '%.64s': %s", from, bad);
        mesh_msg_destroy (&msg);
        return;
    }
    const char *agent = mesh_supervise_agent_of (sup, from);
    if (!agent) {
        mesh_ratelog_hit (d->drops, "unauthenticated",
                          "dropped %s from unauthenticated peer '%.64s'",
                          mesh_msg_type_name (msg->type), from);
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
            if (d->storage_down)
                seq = -1;               //  held: do not hammer a full or read-only disk
            else
                seq = s_append (d, record);
            if (seq > 0 && msg->type == MESH_MSG_OUTCOME)
                mesh_metrics_outcome (d->metrics,
                                      json_string_value (json_object_get (record, "action")),
                                      json_string_value (json_object_get (record, "status")));
            if (seq > 0) {
                //  Acknowledged after the batch's fsync (s_commit), not before.
                s_ack_t *ack = (s_ack_t *) calloc (1, sizeof *ack);
                assert (ack);
                ack->to = strdup (from);
                ack->id = strdup (id);
                ack->seq = seq;
                zlist_append (d->acks, ack);
                break;
            }
            json_t *reply = json_pack ("{ss ss}", "id", id, "reason",
                                       "the ledger refused the record");
            mesh_proto_send (sock, from, MESH_MSG_ERROR, reply);
            json_decref (reply);
            break;
        }
        case MESH_MSG_LOOKUP: {
            s_commit_point (d, sock);
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
        case MESH_MSG_SETTLE:
            //  One way, never answered: a charge lost with the page cache is recovered as
            //  its grant charged in full (more, never less), and a settle that never
            //  arrives is charged in full when its instance ends.
            json_decref (s_tokens_request (d, from, agent, msg->type, msg->body));
            break;
        case MESH_MSG_RESERVE: {
            json_t *reply = s_tokens_request (d, from, agent, msg->type, msg->body);
            s_deferred_t *later = calloc (1, sizeof *later);
            if (later && reply) {
                later->to = strdup (from);
                later->type = MESH_MSG_RESERVE_REPLY;
                //  token_sync each_grant: not before the journal is synced past it;
                //  background: now (in the page cache, it survives a crash of meshd).
                later->seq = d->sync_each_grant ? mesh_tokens_written (d->tokens) : 0;
                later->body = reply;
                zlist_append (d->deferred, later);
            }
            else {
                free (later);
                json_decref (reply);
            }
            break;
        }
        case MESH_MSG_ACT: {
            s_commit_point (d, sock);
            //  Answered now, or when its execution ends (s_send_act).
            json_t *reply = d->actions ? mesh_actions_request (d->actions, from, agent, msg->body)
                                       : json_pack ("{ss ss ss}", "id", json_string_value (
                                                      json_object_get (msg->body, "id")),
                                                    "verdict", "refused", "detail",
                                                    "meshd's action broker is not running "
                                                    "(its log says why)");
            if (reply)
                mesh_proto_send (sock, from, MESH_MSG_ACT_REPLY, reply);
            json_decref (reply);
            break;
        }
        case MESH_MSG_PENDING: {
            s_commit_point (d, sock);
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

//  An execution ended: its reply to an agent waiting for it.
static void
s_send_act (void *arg, const char *to, json_t *reply)
{
    s_daemon_t *d = arg;
    mesh_proto_send (d->agents_sock, to, MESH_MSG_ACT_REPLY, reply);
}

//  Every agent instance's entry gets its agent's budget scope, as the ledger has it.
static void
s_add_budgets (json_t *agents, mesh_tokens_t *tokens)
{
    size_t i;
    json_t *agent;
    json_array_foreach (agents, i, agent) {
        const char *name = json_string_value (json_object_get (agent, "agent"));
        char key[MESH_TOKENS_SCOPE_MAX];
        snprintf (key, sizeof key, "agent:%s", name ? name : "");
        json_t *scope = tokens ? mesh_tokens_scope (tokens, key) : NULL;
        json_object_set_new (agent, "budget", scope ? scope : json_null ());
    }
}

//  Commands that change meshd's state (the rest only read it).
static bool
s_mutates (const char *cmd)
{
    static const char *const mutating[] = { "reload", "pause", "resume", "approve", "deny",
                                            "checkpoint", NULL };
    for (int i = 0; mutating[i]; i++)
        if (!strcmp (cmd, mutating[i]))
            return true;
    return false;
}

//  May the sender of MSG change meshd's state?  Root, meshd's own user, or a member of
//  daemon.operator_group; reading needs only access to control.ipc (its mode and group).
static bool
s_operator (s_config_state_t *st, const mesh_msg_t *msg)
{
    if (msg->peer_uid < 0)
        return false;                   //  credentials unknown: never
    if (msg->peer_uid == 0 || (uid_t) msg->peer_uid == geteuid ())
        return true;
    const char *group = st->cfg->operator_group;
    struct group *gr = group ? getgrnam (group) : NULL;
    if (!gr)
        return false;
    if ((gid_t) msg->peer_gid == gr->gr_gid)
        return true;
    struct passwd *pw = getpwuid ((uid_t) msg->peer_uid);
    if (!pw)
        return false;
    gid_t groups[256];
    int count = 256;
    if (getgrouplist (pw->pw_name, pw->pw_gid, groups, &count) < 0)
        return false;
    for (int i = 0; i < count; i++)
        if (groups[i] == gr->gr_gid)
            return true;
    return false;
}

//  Who sent MSG, for the record: {uid, user}.
static json_t *
s_who (const mesh_msg_t *msg)
{
    struct passwd *pw = msg->peer_uid >= 0 ? getpwuid ((uid_t) msg->peer_uid) : NULL;
    return json_pack ("{s:I, s:s?}", "uid", (json_int_t) msg->peer_uid, "user",
                      pw ? pw->pw_name : NULL);
}

//  The daemon's part of `meshctl status` (caller owns).
static json_t *
s_daemon_status (s_view_t *v)
{
    s_daemon_t *d = v->d;
    json_t *status = json_pack (
        "{si ss ss ss ss sI sI sb sf}", "pid", (int) getpid (), "version", mesh_version (),
        "config", v->config_path, "decision_log", mesh_ledger_path (d->ledger), "brokers",
        v->brokers, "uptime_s", (json_int_t) ((zclock_mono () - v->started) / 1000),
        "ledger_seq", (json_int_t) mesh_ledger_seq (d->ledger), "ready", v->ready,
        "ledger_fsync_ms", mesh_ledger_last_fsync_ms (d->ledger));
    json_object_set (status, "last_reload", v->st->last ? v->st->last : json_null ());
    json_object_set_new (status, "storage", json_string (d->storage_down ? "down" : "up"));
    json_object_set_new (status, "storage_error", d->storage_down
                                                      ? json_string (d->storage_error)
                                                      : json_null ());
    json_object_set_new (status, "dropped", mesh_ratelog_counts (d->drops));
    json_object_set_new (status, "actions", d->actions ? mesh_actions_status (d->actions)
                                                       : json_null ());
    json_object_set_new (status, "ship",
                         v->ship ? mesh_ship_status (v->ship)
                         : v->ship_why[0] ? json_pack ("{ss}", "error", v->ship_why)
                                          : json_null ());
    return status;
}

//  --- HTTP routes (http.listen) ----------------------------------------------------------

//  Everything `meshctl --json status` shows, plus the token ledger's scopes and the
//  daemon's histograms: {"daemon", "agents", "budget", "histograms"} (caller owns).
static json_t *
s_full_status (s_view_t *v)
{
    json_t *agents = mesh_supervise_status (v->d->sup);
    s_add_budgets (agents, v->d->tokens);
    json_t *all = json_pack ("{so so}", "daemon", s_daemon_status (v), "agents", agents);
    json_object_set_new (all, "budget", v->d->tokens ? mesh_tokens_status (v->d->tokens)
                                                     : json_null ());
    return all;
}

static int
s_http_metrics (void *arg, const char *path, const char *query, mesh_http_reply_t *reply)
{
    s_view_t *v = arg;
    if (strcmp (path, "/metrics") != 0)
        return -1;
    json_t *all = s_full_status (v);
    mesh_http_stats_t stats = {0};
    if (v->http)
        mesh_http_stats (v->http, &stats);
    json_object_set_new (all, "http", json_pack ("{sI sI sI}", "requests",
                                                 (json_int_t) stats.requests, "refused",
                                                 (json_int_t) stats.refused, "connections",
                                                 (json_int_t) stats.connections));
    reply->body = mesh_metrics_render (v->metrics, all, mesh_version (), &reply->len);
    json_decref (all);
    if (!reply->body)
        return -1;
    reply->status = 200;
    reply->content_type = MESH_METRICS_CONTENT_TYPE;
    return 0;
}

static int
s_http_healthz (void *arg, const char *path, const char *query, mesh_http_reply_t *reply)
{
    if (strcmp (path, "/healthz") != 0)
        return -1;
    reply->status = 200;
    reply->content_type = "text/plain; charset=utf-8";
    reply->body = strdup ("ok\n");
    reply->len = reply->body ? 3 : 0;
    return 0;
}

//  200 "ready" when every agent is ready and the ledger is writable; else 503 and why.
static int
s_http_readyz (void *arg, const char *path, const char *query, mesh_http_reply_t *reply)
{
    s_view_t *v = arg;
    if (strcmp (path, "/readyz") != 0)
        return -1;
    s_daemon_t *d = v->d;
    char *why = NULL;
    if (d->storage_down)
        why = zsys_sprintf ("not ready: the ledger is not writable: %s\n", d->storage_error);
    else
    if (!mesh_supervise_ready (d->sup)) {
        char *agents = mesh_supervise_summary (d->sup);
        why = zsys_sprintf ("not ready: agents: %s\n", agents);
        free (agents);
    }
    else
    if (s_stop)
        why = strdup ("not ready: stopping\n");
    reply->status = why ? 503 : 200;
    reply->content_type = "text/plain; charset=utf-8";
    reply->body = why ? why : strdup ("ready\n");
    reply->len = reply->body ? strlen (reply->body) : 0;
    return 0;
}

//  The routes on the listener.  INTEGRATION: further modules register their routes here
//  (the status page takes "/", the fallback: mesh_http_route (http, "/", fn, arg)); they
//  may read the daemon through s_full_status (view), on the main loop's thread.
static void
s_http_routes (mesh_http_t *http, s_view_t *view)
{
    mesh_http_route (http, "/metrics", s_http_metrics, view);
    mesh_http_route (http, "/healthz", s_http_healthz, view);
    mesh_http_route (http, "/readyz", s_http_readyz, view);
}

//  The status page's view of the daemon (statuspage.h): what s_full_status has.
static json_t *
s_page_status (void *arg)
{
    return s_full_status ((s_view_t *) arg);
}

static void
s_serve_control (zsock_t *sock, json_t *daemon_status, mesh_supervise_t *sup,
                 s_config_state_t *st, mesh_ledger_t *ledger, mesh_ratelog_t *drops)
{
    const char *why = NULL;
    mesh_msg_t *msg = mesh_proto_recv (sock, true, &why, NULL);
    if (!msg) {
        mesh_ratelog_hit (drops, "control", "dropped a request: %s", why);
        return;
    }
    json_t *reply = NULL;
    const char *cmd = json_string_value (json_object_get (msg->body, "cmd"));
    if (msg->type == MESH_MSG_CTL_REQUEST && strcmp (cmd, "reload") == 0
        && s_operator (st, msg)) {
        //  Answered when the check job reports (s_reload_finish), not here.
        s_reload_start (st, msg->routing_id);
        mesh_msg_destroy (&msg);
        return;
    }
    if (msg->type == MESH_MSG_CTL_REQUEST && strcmp (cmd, "budget") == 0)
        reply = json_pack ("{sb so}", "ok", 1, "result", mesh_tokens_status (st->tokens));
    else
    if (msg->type == MESH_MSG_CTL_REQUEST && s_mutates (cmd) && !s_operator (st, msg)) {
        reply = json_pack ("{sb ss}", "ok", 0, "error",
                           "not allowed: this command changes meshd's state and needs root, "
                           "meshd's own user or daemon.operator_group (docs/actions.md, "
                           "\"Who may run what\")");
        mesh_warn ("control: refused %s from uid %ld", cmd, msg->peer_uid);
    }
    else
    if (msg->type == MESH_MSG_CTL_REQUEST && strcmp (cmd, "checkpoint") == 0) {
        char *note = NULL;
        int64_t size = mesh_ledger_checkpoint (ledger, true, &note);
        reply = size > 0 ? json_pack ("{sb s{sI ss}}", "ok", 1, "result", "size",
                                      (json_int_t) size, "note", note)
                         : json_pack ("{sb ss}", "ok", 0, "error",
                                      "no checkpoint: the ledger could not sign or write it "
                                      "(meshd's log says why)");
        free (note);
    }
    else
    if (msg->type == MESH_MSG_CTL_REQUEST && st->actions && strcmp (cmd, "approvals") == 0)
        reply = json_pack ("{sb so}", "ok", 1, "result", mesh_actions_approvals (st->actions));
    else
    if (msg->type == MESH_MSG_CTL_REQUEST && st->actions
        && (strcmp (cmd, "approve") == 0 || strcmp (cmd, "deny") == 0)) {
        json_t *args = json_object_get (msg->body, "args");
        const char *id = json_string_value (json_object_get (args, "id"));
        const char *comment = json_string_value (json_object_get (args, "comment"));
        char *error = NULL;
        json_t *by = s_who (msg);
        json_t *done = id && (!comment || strlen (comment) <= 1000)
                         ? mesh_actions_resolve (st->actions, id, !strcmp (cmd, "approve"), by,
                                                 comment, &error)
                         : NULL;
        json_decref (by);
        reply = done ? json_pack ("{sb so}", "ok", 1, "result", done)
                     : json_pack ("{sb ss}", "ok", 0, "error",
                                  error ? error : "approve/deny need an id (and a comment of at "
                                                  "most 1000 bytes)");
        free (error);
    }
    else
    if (msg->type == MESH_MSG_CTL_REQUEST && st->actions
        && (strcmp (cmd, "pause") == 0 || strcmp (cmd, "resume") == 0)) {
        json_t *args = json_object_get (msg->body, "args");
        const char *agent = json_string_value (json_object_get (args, "agent"));
        const char *action = json_string_value (json_object_get (args, "action"));
        char *error = NULL;
        json_t *state = NULL;
        if (agent && !mesh_config_agent (st->cfg, agent))
            error = strdup ("no such agent in the config in force");
        else if (action && !mesh_config_action (st->cfg, action))
            error = strdup ("no such action in the config in force");
        else
            state = mesh_actions_pause (st->actions, agent, action, !strcmp (cmd, "pause"),
                                        &error);
        if (state)
            mesh_notice ("%s%s%s%s%s: actions %s", cmd, agent ? " agent " : "", agent ? agent : "",
                         action ? " action " : "", action ? action : "",
                         !strcmp (cmd, "pause") ? "execute nothing in that scope" : "run again");
        reply = state ? json_pack ("{sb so}", "ok", 1, "result", state)
                      : json_pack ("{sb ss}", "ok", 0, "error", error ? error : "out of memory");
        free (error);
    }
    else
    if (msg->type == MESH_MSG_CTL_REQUEST) {
        json_t *agents = mesh_supervise_status (sup);
        s_add_budgets (agents, st->tokens);
        reply = mesh_control_reply (msg->body, daemon_status, agents);
        json_decref (agents);
    }
    else
        reply = json_pack ("{sb ss}", "ok", 0, "error", "expected a ctl_request");
    mesh_proto_send (sock, msg->routing_id, MESH_MSG_CTL_REPLY, reply);
    json_decref (reply);
    mesh_msg_destroy (&msg);
}

//  Give every agent of CFG the rule set a check job archived for it (RECORDS: its
//  "rules" records): the hash its processes build their chains from.  -1, with *ERROR_P
//  (caller frees), if one is missing.
static int
s_take_rules (mesh_config_t *cfg, json_t *records, char **error_p)
{
    for (size_t i = 0; i < cfg->agent_count; i++) {
        mesh_agent_config_t *agent = &cfg->agents[i];
        const char *hash = NULL;
        size_t r;
        json_t *record;
        json_array_foreach (records, r, record)
            if (!hash && json_is_string (json_object_get (record, "agent"))
                && strcmp (json_string_value (json_object_get (record, "agent")), agent->name)
                       == 0)
                hash = json_string_value (json_object_get (record, "rules_hash"));
        if (!hash) {
            free (*error_p);
            *error_p = zsys_sprintf ("%s: the check did not archive the rules of agent %s",
                                     cfg->path, agent->name);
            return -1;
        }
        free (agent->rules_hash);
        agent->rules_hash = strdup (hash);
    }
    return 0;
}

//  Record, for every agent, the rule set now in force (its content hash), so that an
//  auditor can tell which rules judged which decision and a replay can find them.
//  RECORDS come from a check job (mesh_reload_rules_records runs the rules).
static void
s_record_rules (mesh_ledger_t *ledger, json_t *records)
{
    size_t i;
    json_t *record;
    json_array_foreach (records, i, record)
        mesh_ledger_append (ledger, record);
}

static bool
s_same_name (const char *a, const char *b)
{
    return a == b || (a && b && strcmp (a, b) == 0);
}

//  A reloaded config NEXT and sandbox.user: the account cannot change without a restart
//  (meshd prepared the host for it), and it must reach every file NEXT names.  0, or -1
//  and *error_p (caller frees), one problem per line.
static int
s_reload_agent_user (const s_config_state_t *st, const mesh_config_t *next, char **error_p)
{
    const mesh_sandbox_config_t *was = &st->cfg->sandbox, *now = &next->sandbox;
    if (!s_same_name (was->user, now->user) || !s_same_name (was->group, now->group)) {
        *error_p = zsys_sprintf ("%s: sandbox.user or sandbox.group changed: restart meshd to "
                                 "apply it", next->path);
        return -1;
    }
    if (!st->agent_user)
        return 0;
    size_t size = 0;
    FILE *out = open_memstream (error_p, &size);
    int problems = out ? mesh_agent_user_check_access (st->agent_user, next, out) : 1;
    if (out)
        fclose (out);
    if (problems == 0) {
        free (*error_p);
        *error_p = NULL;
    }
    return problems ? -1 : 0;
}

//  SIGHUP or `meshctl reload` (ROUTING_ID: who to answer; NULL for SIGHUP): start a
//  check job, or join the one under way.  The rules are loaded in its child, so a
//  slow or hostile rule cannot hold up heartbeats, status or signals.
static void
s_reload_start (s_config_state_t *st, const char *routing_id)
{
    if (routing_id)
        zlist_append (st->waiters ? st->waiters : (st->waiters = zlist_new ()),
                      strdup (routing_id));
    if (!st->job)
        st->job = mesh_reload_job_start (
            st->cfg->path, st->tree, "reload", st->runtime,
            st->agent_user ? mesh_agent_user_gid (st->agent_user) : (gid_t) -1);
}

//  Refuse a reload for ERROR (one problem per line); the reply body.
static json_t *
s_reload_refuse (s_config_state_t *st, const char *error)
{
    mesh_err ("reload refused; the running config and rules stay in force:");
    char *lines = strdup (error), *save = NULL;
    for (char *l = strtok_r (lines, "\n", &save); l; l = strtok_r (NULL, "\n", &save))
        mesh_err ("  %s", l);
    free (lines);
    json_decref (st->last);
    st->last = json_pack ("{sb sI ss}", "ok", 0, "at", (json_int_t) time (NULL), "error", error);
    return json_pack ("{sb ss}", "ok", 0, "error", error);
}

//  Apply what the check job reported (RESULT: see reload.h); the reply body.
static json_t *
s_reload_finish (s_config_state_t *st, mesh_supervise_t *sup, mesh_ledger_t *ledger,
                 json_t *result)
{
    if (!json_is_true (json_object_get (result, "ok")))
        return s_reload_refuse (st, json_string_value (json_object_get (result, "error")));
    //  The child checked the file and wrote the bytes it checked as a snapshot: this
    //  process parses exactly those (by their hash; no rule runs here), so a file edited
    //  since the check changes nothing.
    mesh_config_t *next = NULL;
    char *error = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&error, &size);
    int problems = mesh_config_load_snapshot (
        st->cfg->path, json_string_value (json_object_get (result, "snapshot")),
        json_string_value (json_object_get (result, "sha256")), &next, out);
    fclose (out);
    if (problems == 0) {                //  the stream's empty text: the next steps set their own
        free (error);
        error = NULL;
    }
    if (problems == 0 && s_take_rules (next, json_object_get (result, "records"), &error) != 0)
        problems = 1;
    if (problems == 0 && s_reload_agent_user (st, next, &error) != 0)
        problems = 1;
    if (problems) {
        json_t *reply = s_reload_refuse (st, error && *error ? error : "?");
        free (error);
        mesh_config_destroy (&next);
        return reply;
    }
    free (error);
    json_t *plan = json_object_get (result, "plan");
    mesh_supervise_reconfigure (sup, next);
    if (st->tokens)
        mesh_tokens_reconfigure (st->tokens, next);
    if (st->actions)
        mesh_actions_reconfigure (st->actions, next);
    mesh_config_destroy (&st->cfg);
    json_decref (st->tree);
    st->cfg = next;
    st->tree = json_incref (next->tree);
    size_t i;
    json_t *name;
    json_array_foreach (json_object_get (plan, "restart"), i, name)
        mesh_supervise_restart (sup, json_string_value (name));
    json_array_foreach (json_object_get (plan, "reload"), i, name)
        mesh_supervise_reload (sup, json_string_value (name));
    s_record_rules (ledger, json_object_get (result, "records"));
    mesh_notice ("reloaded %s: %zu agent(s) swap their rules, %zu restart",
                 st->cfg->path, json_array_size (json_object_get (plan, "reload")),
                 json_array_size (json_object_get (plan, "restart")));
    json_decref (st->last);
    st->last = json_pack ("{sb sI sO sO}", "ok", 1, "at", (json_int_t) time (NULL), "reload",
                          json_object_get (plan, "reload"), "restart",
                          json_object_get (plan, "restart"));
    //  The rule set each agent runs from now on: meshctl reload waits until they report it.
    json_t *hashes = json_object ();
    for (size_t a = 0; a < st->cfg->agent_count; a++)
        if (st->cfg->agents[a].rules_hash)
            json_object_set_new (hashes, st->cfg->agents[a].name,
                                 json_string (st->cfg->agents[a].rules_hash));
    json_object_set_new (st->last, "rules_hash", hashes);
    return json_pack ("{sb sO}", "ok", 1, "result", st->last);
}

//  If the check job has reported: apply or refuse, and answer everyone who asked.
static void
s_reload_poll (s_config_state_t *st, mesh_supervise_t *sup, mesh_ledger_t *ledger,
               zsock_t *control)
{
    json_t *result = NULL;
    if (st->job && !(result = mesh_reload_job_poll (st->job)))
        return;
    if (!st->job && (!st->waiters || zlist_size (st->waiters) == 0))
        return;
    if (!st->job)                       //  the job could not be started
        result = json_pack ("{sb ss}", "ok", 0, "error", "cannot start checking the config "
                            "(fork failed; see the log)");
    mesh_reload_job_destroy (&st->job);
    json_t *reply = s_reload_finish (st, sup, ledger, result);
    json_decref (result);
    char *who;
    while (st->waiters && (who = zlist_pop (st->waiters))) {
        mesh_proto_send (control, who, MESH_MSG_CTL_REPLY, reply);
        free (who);
    }
    json_decref (reply);
}

//  Bind ENDPOINT (ipc) and give its file MODE.  The bind runs under umask 0177 (ZeroMQ
//  binds ipc in the calling thread), so the file is never more open than 0600, even
//  between bind and chmod.
static zsock_t *
s_bind (int type, const char *endpoint, mode_t mode)
{
    const char *path = endpoint + strlen ("ipc://");
    unlink (path);                      //  a stale socket from a killed meshd
    zsock_t *sock = zsock_new (type);
    zsock_set_linger (sock, 0);
    zsock_set_router_mandatory (sock, 0);
    mesh_proto_limit (sock);
    mode_t old = umask (0177);
    int rc = zsock_bind (sock, "%s", endpoint);
    umask (old);
    if (rc != 0) {
        mesh_err ("cannot bind %s: %s", endpoint, zmq_strerror (zmq_errno ()));
        zsock_destroy (&sock);
    }
    else
    if (chmod (path, mode) != 0) {
        mesh_err ("cannot chmod %04o %s: %s", (unsigned) mode, path, strerror (errno));
        zsock_destroy (&sock);
    }
    return sock;
}

//  The ledger's MAC key unless systemd hands over the credential ledger-mac (caller frees).
static char *
s_ledger_key (const mesh_config_t *cfg)
{
    return zsys_sprintf ("%s/ledger.key", cfg->state_dir);
}

//  The checkpoint signer: the credential audit-signing if systemd hands one over, else
//  audit.signing_key; the default key file is made at the first start.  0, or -1 (logged:
//  meshd does not start with a key it cannot use).
static int
s_checkpoint_signer (const mesh_config_t *cfg, mesh_ledger_t *ledger)
{
    mesh_note_signer_t signer;
    char why[300];
    const char *creds = getenv ("CREDENTIALS_DIRECTORY");
    char *path = NULL;
    int rc = 0;
    if (creds && *creds) {
        path = zsys_sprintf ("%s/audit-signing", creds);
        rc = mesh_note_signer_load (path, false, &signer, why, sizeof why);
        if (rc == 0)
            zstr_free (&path);
    }
    if (!path) {
        path = strdup (cfg->signing_key);
        rc = mesh_note_signer_load (path, true, &signer, why, sizeof why);
        char *fallback = zsys_sprintf ("%s/audit-signing.key", cfg->state_dir);
        if (rc == 0 && strcmp (path, fallback) == 0) {
            rc = mesh_note_signer_create (path, cfg->origin, &signer, why, sizeof why);
            if (rc > 0) {
                char *v = mesh_note_verifier_text (&signer.v);
                mesh_notice ("audit: made the checkpoint signing key %s (mode 0600); its "
                             "public key, for auditors (meshctl audit pubkey): %s", path, v);
                free (v);
            }
        }
        else
        if (rc == 0)
            snprintf (why, sizeof why, "does not exist (make one with meshctl audit keygen "
                      "--key %s)", path);
        free (fallback);
    }
    if (rc <= 0) {
        mesh_err ("audit: the checkpoint signing key %s %s", path, why);
        free (path);
        return -1;
    }
    free (path);
    rc = mesh_ledger_set_signer (ledger, &signer, cfg->origin);
    mesh_note_signer_wipe (&signer);
    return rc;
}

//  The log failed verification (the ledger said what and where): what the operator can do.
static void
s_refuse_log (const mesh_config_t *cfg, const char *config_path)
{
    mesh_err ("refusing to start: meshd acts on no decision log that fails verification "
              "(exit 65).  To go on:");
    mesh_err ("  1. inspect it: meshctl --config %s audit verify --key %s/ledger.key",
              config_path, cfg->state_dir);
    mesh_err ("  2. keep a copy, then run: meshd --set-aside-log --config %s", config_path);
    mesh_err ("     (moves %s and its head aside intact and starts a new log that names them)",
              cfg->decision_log);
}

//  With sandbox.user (AU): now that runtime_dir and state_dir exist, the agents' account
//  can reach everything it opens, and <state_dir>/incidents is its own.  0, or -1 logged.
static int
s_prepare_agent_user (const mesh_agent_user_t *au, const mesh_config_t *cfg)
{
    if (!au)
        return 0;
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    int problems = out ? mesh_agent_user_check_access (au, cfg, out) : 1;
    if (out)
        fclose (out);
    if (problems) {
        char *save = NULL;
        for (char *l = strtok_r (text, "\n", &save); l; l = strtok_r (NULL, "\n", &save))
            mesh_err ("%s", l);
        mesh_err ("refusing to start: the agents' user cannot reach what it needs (%d "
                  "problem%s above)", problems, problems == 1 ? "" : "s");
    }
    free (text);
    if (problems)
        return -1;
    return mesh_agent_user_prepare_state (au, cfg->state_dir);
}

//  Runs the daemon until it is stopped; owns and frees CFG_AT_START (and its successors)
//  and AU (the agents' account with sandbox.user, else NULL).
static int
s_run (mesh_config_t *cfg_at_start, mesh_agent_user_t *au)
{
    s_config_state_t st = {.cfg = cfg_at_start, .tree = json_incref (cfg_at_start->tree),
                           .agent_user = au};    //  waiters: made by the first reload
    mesh_config_t *cfg = st.cfg;
    gid_t group = au ? mesh_agent_user_gid (au) : (gid_t) -1;
    if (s_prepare_dir ("runtime_dir", cfg->runtime_dir, group) != 0
        || s_prepare_dir ("state_dir", cfg->state_dir, group) != 0
        || s_prepare_agent_user (au, cfg) != 0) {
        json_decref (st.tree);
        mesh_config_destroy (&st.cfg);
        mesh_agent_user_destroy (&au);
        return 1;
    }
    char runtime[PATH_MAX], config_path[PATH_MAX];
    if (!realpath (cfg->runtime_dir, runtime) || !realpath (cfg->path, config_path)) {
        json_decref (st.tree);
        mesh_config_destroy (&st.cfg);
        mesh_agent_user_destroy (&au);
        return 1;
    }
    st.runtime = runtime;
    //  Fix what the agents will run, as a reload does: a check job's child checks the
    //  file again, snapshots the bytes it checked and archives every agent's rules.  The
    //  config in force must be those very bytes (else it changed since the start: refuse).
    //  Before any thread exists (the embedded broker's, ZeroMQ's): the child forks from a
    //  process with one thread, so no lock can be held by a thread it does not have.
    json_t *records = NULL;
    {
        mesh_reload_job_t *job = mesh_reload_job_start (cfg->path, NULL, "start", runtime, group);
        json_t *checked = job ? mesh_reload_job_wait (job) : NULL;
        mesh_reload_job_destroy (&job);
        const char *sha = json_string_value (json_object_get (checked, "sha256"));
        char *error = NULL;
        if (!json_is_true (json_object_get (checked, "ok")))
            mesh_err ("cannot fix what the agents run: %s",
                      checked ? json_string_value (json_object_get (checked, "error"))
                              : "the check did not report");
        else
        if (!sha || strcmp (sha, cfg->sha256) != 0)
            mesh_err ("%s changed while meshd was starting; start it again", cfg->path);
        else
        if (s_take_rules (cfg, json_object_get (checked, "records"), &error) != 0)
            mesh_err ("%s", error);
        else {
            free (cfg->snapshot);
            cfg->snapshot = strdup (json_string_value (json_object_get (checked, "snapshot")));
            records = json_incref (json_object_get (checked, "records"));
        }
        free (error);
        json_decref (checked);
    }
    //  http.listen: bound now, so a port that is taken stops meshd before anything runs.
    mesh_http_t *http = NULL;
    if (records && cfg->http_listen) {
        char http_why[512] = "out of memory";
        if (!(http = mesh_http_new (cfg, http_why, sizeof http_why))) {
            mesh_err ("http: %s", http_why);
            json_decref (records);
            records = NULL;
        }
    }
    if (!records) {
        json_decref (st.tree);
        mesh_config_destroy (&st.cfg);
        mesh_agent_user_destroy (&au);
        return 1;
    }
    mesh_broker_t *broker = NULL;
    const char *brokers = cfg->brokers;
    if (cfg->embedded) {
        broker = mesh_broker_new (cfg);
        if (!broker) {
            mesh_http_destroy (&http);
            json_decref (st.tree);
            mesh_config_destroy (&st.cfg);
            mesh_agent_user_destroy (&au);
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
    char *key_path = s_ledger_key (cfg);
    mesh_ledger_t *ledger = mesh_ledger_open (cfg->decision_log, key_path);
    bool refused = !ledger && errno == EBADMSG;
    free (key_path);
    if (refused)
        s_refuse_log (cfg, config_path);
    if (ledger && s_checkpoint_signer (cfg, ledger) != 0)
        mesh_ledger_destroy (&ledger);
    if (ledger) {
        mesh_ledger_set_rotation (ledger, cfg->rotate_max_bytes, cfg->rotate_max_age_s);
        mesh_ledger_set_retention (ledger, (int64_t) cfg->retain_max_age_days * 86400,
                                   cfg->retain_max_bytes);
    }
    char *agents_ep = mesh_proto_agents_endpoint (runtime);
    char *control_ep = mesh_proto_control_endpoint (runtime);
    zsock_t *agents = ledger ? s_bind (ZMQ_ROUTER, agents_ep, 0600) : NULL;
    //  With sandbox.user the agents' uid owns agents.ipc (0600): they connect, nobody else.
    if (agents && au
        && mesh_agent_user_own_socket (au, agents_ep + strlen ("ipc://")) != 0)
        zsock_destroy (&agents);
    zsock_t *control = agents ? s_bind (ZMQ_ROUTER, control_ep, 0660) : NULL;
    char *binary = s_agent_binary (cfg);
    int rc = refused ? 65 : 1;          //  EX_DATAERR: systemd does not restart on it
    st.runtime = runtime;
    if (!records || !control) {
        json_decref (records);
        goto done;
    }

    //  The token ledger, recovered from its journal before any agent can ask.
    char *journal = zsys_sprintf ("%s/tokens.jsonl", cfg->state_dir);
    char why[700];
    snprintf (why, sizeof why, "out of memory");
    mesh_tokens_t *tokens = journal ? mesh_tokens_new (cfg, journal, why, sizeof why) : NULL;
    zstr_free (&journal);
    if (!tokens) {
        mesh_err ("cannot open the token ledger: %s", why);
        json_decref (records);
        goto done;
    }
    st.tokens = tokens;
    mesh_supervise_t *sup = mesh_supervise_new (cfg, binary, config_path, agents_ep, brokers,
                                                agents);
    if (!sup) {
        json_decref (records);
        mesh_tokens_destroy (&tokens);
        goto done;
    }
    s_daemon_t d = {.ledger = ledger, .sup = sup, .drops = mesh_ratelog_new (S_DROP_LOG_MS),
                    .state_dir = strdup (cfg->state_dir), .backlog = json_array (),
                    .tokens = tokens, .deferred = zlist_new (), .acks = zlist_new (),
                    .sync_each_grant = cfg->token_sync == MESH_TOKEN_SYNC_EACH_GRANT,
                    .metrics = mesh_metrics_new ()};
    mesh_supervise_set_recorder (sup, s_record_agent, &d);
    mesh_tokens_set_recorder (tokens, s_record_agent, &d);
    mesh_supervise_set_death_hook (sup, s_instance_died, &d);
    mesh_supervise_set_agent_user (sup, au);
    s_record_rules (ledger, records);
    json_decref (records);
    if (broker) {                       //  the incarnation the next decision ids derive from
        json_t *record = mesh_broker_record (broker);
        mesh_ledger_append (ledger, record);
        json_decref (record);
    }
    //  Grants are answered once the token journal is synced past them; a syncer thread
    //  does one fdatasync for all that were written meanwhile (group commit).
    zsock_t *synced = mesh_tokens_start_syncer (tokens);
    if (!synced)
        mesh_warn ("tokens: no syncer thread; every grant is synced in the main loop");
    //  Pause, rate limits, and the exec and webhook actions the agents may not run.
    char actions_why[512] = "";
    mesh_actions_t *actions = mesh_actions_new (cfg, ledger, actions_why, sizeof actions_why);
    if (!actions)
        mesh_err ("actions: %s; every act request is refused", actions_why);
    else
        mesh_actions_set_recorder (actions, s_record_agent, &d);
    d.actions = actions;
    d.agents_sock = agents;
    st.actions = actions;
    //  audit.ship: the log produced to Kafka by a thread of its own; off unless configured.
    char ship_why[512] = "";
    mesh_ship_t *ship = mesh_ship_new (cfg, brokers, cfg->decision_log, mesh_ledger_seq (ledger),
                                       ship_why, sizeof ship_why);
    if (!ship && ship_why[0])
        mesh_err ("ship: %s; the decision log is not shipped", ship_why);
    zpoller_t *poller = zpoller_new (agents, control, synced, NULL);
    if (actions)
        zpoller_add (poller, mesh_actions_sock (actions));
    s_view_t view = {.d = &d, .st = &st, .config_path = config_path, .brokers = brokers,
                     .ship = ship, .ship_why = ship_why, .metrics = d.metrics, .http = http};
    //  The read-only status page takes "/" (the fallback) and "/api/".
    mesh_statuspage_t *page = http ? mesh_statuspage_new (mesh_ledger_path (ledger),
                                                          d.state_dir, s_page_status, &view)
                                   : NULL;
    if (http) {                         //  served by this loop (mesh_http_wait below)
        s_http_routes (http, &view);
        if (page) {
            mesh_http_route (http, "/", mesh_statuspage_handle, page);
            mesh_http_route (http, "/api/", mesh_statuspage_handle, page);
        }
        mesh_notice ("http: serving /metrics, /healthz, /readyz%s on %s",
                     page ? " and the status page at /" : "", mesh_http_bound (http));
    }
    void *readers[] = {agents, control, synced, actions ? mesh_actions_sock (actions) : NULL};
    uint64_t watchdog_usec = 0;
    bool watchdog = sd_watchdog_enabled (0, &watchdog_usec) > 0;
    bool told_ready = false, last_down = false;
    int64_t started = zclock_mono (), next_status = 0, next_watchdog = 0, deadline = 0;
    view.started = started;
    int64_t next_checkpoint = started + (int64_t) cfg->checkpoint_interval_s * 1000;
    char *last_summary = NULL;
    mesh_notice ("meshd %s started: %zu agent(s), decision log %s", mesh_version (),
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
            s_reload_start (&st, NULL);
        }
        s_reload_poll (&st, sup, ledger, control);
        cfg = st.cfg;
        void *which = view.http ? mesh_http_wait (view.http, readers,
                                                  sizeof readers / sizeof readers[0], 100)
                                : zpoller_wait (poller, 100);
        if (which == agents) {
            //  What is waiting, up to a bound, then one ledger fsync for every record
            //  (group commit) and one journal sync for every token reply.
            mesh_ledger_begin (ledger);
            for (int n = 0; n < 256; n++) {
                s_serve_agent (&d, agents);
                if (!(zsock_events (agents) & ZMQ_POLLIN))
                    break;
            }
            s_commit (&d, agents);
            s_send_synced (&d, agents, !synced);
        }
        else
        if (actions && which == mesh_actions_sock (actions))
            mesh_actions_collect (actions, s_send_act, &d);
        else
        if (synced && which == synced) {
            mesh_tokens_woken (tokens);
            s_send_synced (&d, agents, false);
            mesh_tokens_maintain (tokens);
        }
        else
        if (which == control) {
            json_t *status = s_daemon_status (&view);
            s_serve_control (control, status, sup, &st, ledger, d.drops);
            cfg = st.cfg;
            json_decref (status);
        }
        mesh_supervise_tick (sup);
        if (actions)
            mesh_actions_tick (actions);
        s_check_storage (&d);
        mesh_ratelog_tick (d.drops);
        mesh_ship_notify (ship, mesh_ledger_seq (ledger));     //  whatever was appended
        int64_t now = zclock_mono ();
        //  A signed checkpoint every audit.checkpoint_interval_s, when the log grew.
        if (cfg->checkpoint_interval_s > 0 && now >= next_checkpoint) {
            if (!d.storage_down && mesh_ledger_checkpoint (ledger, false, NULL) < 0)
                d.storage_suspect = true;
            next_checkpoint = now + (int64_t) cfg->checkpoint_interval_s * 1000;
        }
        //  Ready: every agent said hello, none has failed, the storage takes writes.  It
        //  can become false again (status and STATUS= say so; READY=1 is sent once).
        bool ready_now = mesh_supervise_ready (sup) && !d.storage_down;
        if (ready_now && !told_ready) {
            told_ready = true;
            sd_notify (0, "READY=1");
            mesh_notice ("ready: every agent said hello");
        }
        view.ready = ready_now;
        if (page)                       //  the page's charts: a sample every 10 s
            mesh_statuspage_tick (page, zclock_time ());
        if (now >= next_status || d.storage_down != last_down) {
            char *agents_line = mesh_supervise_summary (sup);
            char *summary = d.storage_down
                                ? zsys_sprintf ("storage down: %s; %s", d.storage_error,
                                                agents_line)
                                : strdup (agents_line);
            free (agents_line);
            if (!last_summary || strcmp (summary, last_summary) != 0)
                sd_notifyf (0, "STATUS=%s", summary);
            free (last_summary);
            last_summary = summary;
            last_down = d.storage_down;
            next_status = now + 1000;
        }
        //  Only a loop that gets here, with no failed agent and the storage up, feeds the
        //  watchdog: systemd then restarts the whole service (see docs/configuration.md).
        if (watchdog && now >= next_watchdog && mesh_supervise_healthy (sup)
            && !d.storage_down) {
            sd_notify (0, "WATCHDOG=1");
            next_watchdog = now + (int64_t) (watchdog_usec / 2000);
        }
    }
    mesh_statuspage_destroy (&page);    //  no request is served after the loop
    free (last_summary);
    zpoller_destroy (&poller);
    if (actions)
        mesh_actions_drain (actions, s_send_act, &d);
    mesh_supervise_destroy (&sup);
    st.actions = d.actions = NULL;
    mesh_actions_destroy (&actions);
    s_send_synced (&d, agents, true);
    zlist_destroy (&d.deferred);
    zlist_destroy (&d.acks);
    st.tokens = NULL;
    mesh_tokens_destroy (&d.tokens);
    mesh_ratelog_destroy (&d.drops);
    mesh_metrics_destroy (&d.metrics);
    json_decref (d.backlog);
    free (d.state_dir);
    //  The last word of a clean stop: a checkpoint of everything written.
    int64_t signed_size = d.storage_down ? -1 : mesh_ledger_checkpoint (ledger, false, NULL);
    if (signed_size > 0)
        mesh_notice ("audit: signed a checkpoint of the decision log's %lld records",
                     (long long) signed_size);
    mesh_ship_notify (ship, mesh_ledger_seq (ledger));     //  the last record included
    mesh_ship_destroy (&ship, 5000);    //  what is in flight, then the state file
    mesh_notice ("stopped; decision log at seq %lld",
                 (long long) mesh_ledger_seq (ledger));
    rc = 0;
done:
    mesh_http_destroy (&http);
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
    mesh_reload_job_destroy (&st.job);
    char *who;
    while (st.waiters && (who = zlist_pop (st.waiters)))
        free (who);
    zlist_destroy (&st.waiters);
    mesh_config_destroy (&st.cfg);
    mesh_agent_user_destroy (&au);
    return rc;
}

static void
s_usage (FILE *out)
{
    fprintf (out, "usage: meshd [--config FILE] [--log auto|journal|stderr]\n"
                  "       meshd --check-config[=FILE]\n"
                  "       meshd --set-aside-log [--config FILE]\n"
                  "       meshd --list-config-keys\n"
                  "       meshd --version | --help\n");
}

static void
s_print_key (const char *key, void *arg)
{
    (void) arg;
    puts (key);
}

int
main (int argc, char **argv)
{
    const char *config = "/etc/meshd/meshd.yaml";
    bool check = false, set_aside = false;
    const char *log_target = NULL;
    static struct option opts[] = {{"config", 1, 0, 'c'},  {"check-config", 2, 0, 'k'},
                                   {"version", 0, 0, 'V'}, {"help", 0, 0, 'h'},
                                   {"set-aside-log", 0, 0, 'A'}, {"log", 1, 0, 'L'},
                                   {"list-config-keys", 0, 0, 'K'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long (argc, argv, "c:kVh", opts, NULL)) != -1) {
        switch (c) {
            case 'c': config = optarg; break;
            case 'k':                   //  --check-config=FILE, or FILE after it
                check = true;
                if (optarg)
                    config = optarg;
                break;
            case 'A': set_aside = true; break;
            case 'K':                   //  every key the loader accepts, one a line
                mesh_config_list_keys (s_print_key, NULL);
                return 0;
            case 'L': log_target = optarg; break;
            case 'V': mesh_version_print (stdout, "meshd"); return 0;
            case 'h': s_usage (stdout); return 0;
            default: s_usage (stderr); return 64;
        }
    }
    if (check && optind < argc)
        config = argv[optind++];
    if (optind < argc) {
        fprintf (stderr, "meshd: unexpected argument '%s'\n", argv[optind]);
        s_usage (stderr);
        return 64;
    }
    mesh_log_target_t target = MESH_LOG_AUTO;
    if (log_target && mesh_log_target_parse (log_target, &target) != 0) {
        fprintf (stderr, "meshd: --log '%s': expected auto, journal or stderr\n", log_target);
        return 64;
    }
    if (log_target) {
        mesh_log_set_target (target);
        //  The agents (execv keeps the environment) log where the supervisor does.
        setenv ("MESH_LOG_TARGET", mesh_log_target () == MESH_LOG_JOURNAL ? "journal" : "stderr", 1);
    }
    mesh_log_set_tag ("supervisor");
    mesh_config_t *cfg = NULL;
    int problems = mesh_config_load (config, &cfg, stderr);
    if (problems == 0) {
        //  Rules run their top level when loaded: never in this process (reload.h).
        mesh_reload_job_t *job = mesh_reload_job_start (config, NULL, "check", NULL, (gid_t) -1);
        json_t *checked = job ? mesh_reload_job_wait (job) : NULL;
        mesh_reload_job_destroy (&job);
        if (!json_is_true (json_object_get (checked, "ok"))) {
            const char *error = json_string_value (json_object_get (checked, "error"));
            fprintf (stderr, "%s%s", error ? error : "the rule check did not report\n",
                     error && *error && error[strlen (error) - 1] != '\n' ? "\n" : "");
            problems = 0;
            for (const char *c = error ? error : "x\n"; *c; c++)
                problems += *c == '\n';
            problems = problems ? problems : 1;
        }
        json_decref (checked);
    }
    //  sandbox.user: the account, meshd being root, and what the agents must reach.
    mesh_agent_user_t *au = NULL;
    if (problems == 0 && !set_aside)
        problems = mesh_agent_user_new (cfg, &au, stderr);
    if (problems == 0 && au)
        problems = mesh_agent_user_check_access (au, cfg, stderr);
    if (check || problems) {
        if (problems)
            fprintf (stderr, "%s: %d problem%s found\n", config, problems,
                     problems == 1 ? "" : "s");
        else
            printf ("%s: ok (%zu agents, %zu actions, %zu backends)\n", config, cfg->agent_count,
                    cfg->action_count, cfg->backend_count);
        mesh_config_destroy (&cfg);
        mesh_agent_user_destroy (&au);
        return problems ? 1 : 0;
    }
    if (set_aside) {
        char *key_path = s_ledger_key (cfg);
        int rc = mesh_ledger_set_aside (cfg->decision_log, key_path);
        free (key_path);
        mesh_config_destroy (&cfg);
        return rc == 0 ? 0 : 1;
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
    return s_run (cfg, au);     //  takes the config (a reload replaces it) and the account
}

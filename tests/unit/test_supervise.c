/*  test_supervise - the agent lifecycle, driven with fake agents.
 *
 *  The "agents" are shell scripts written to a temporary directory: one exits at
 *  once with code 3 (a crash loop), one execs sleep (an agent that never talks) after
 *  writing the token it read from --auth-fd, its argv and its environment to files
 *  named after its instance and pid, so the test can authenticate in its name (and
 *  check the token is in neither argv nor environment).
 *  The test plays the supervisor's main loop: it calls mesh_supervise_tick every few
 *  milliseconds and delivers hello and heartbeat bodies itself, as daemon/main.c
 *  does after mesh_proto_recv.  States are read back through mesh_supervise_status,
 *  the same JSON meshctl shows.
 *
 *  Times are only ever lower bounds the code guarantees (a restart never comes
 *  before its backoff is over), never upper bounds a slow machine could miss.
 */
#include "supervise.h"
#include "hist.h"
#include "inflight.h"
#include "log.h"
#include "proto.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BACKOFF_MS 50

typedef struct {
    char dir[64];
    char crash[128];                //  exits 3 at once
    char sleeper[128];              //  exec sleep 30
    char sigsys[128];               //  dies of SIGSYS
    json_t *records;                //  what the supervisor recorded
    char missing[128];              //  does not exist
    mesh_agent_config_t agents[2];
    mesh_config_t cfg;
    zsock_t *router;                //  what the supervisor sends SHUTDOWN on
    char endpoint[64];
    mesh_supervise_t *sup;
} fixture_t;

static int s_endpoints;

static int
s_write_script (const char *path, const char *body)
{
    FILE *file = fopen (path, "w");
    if (!file)
        return -1;
    fprintf (file, "#!/bin/sh\n%s\n", body);
    fclose (file);
    return chmod (path, 0755);
}

static int
s_setup (void **state)
{
    fixture_t *fx = (fixture_t *) calloc (1, sizeof *fx);
    snprintf (fx->dir, sizeof fx->dir, "/tmp/test_supervise.XXXXXX");
    if (!mkdtemp (fx->dir))
        return -1;
    snprintf (fx->crash, sizeof fx->crash, "%s/crash.sh", fx->dir);
    snprintf (fx->sleeper, sizeof fx->sleeper, "%s/sleeper.sh", fx->dir);
    snprintf (fx->missing, sizeof fx->missing, "%s/missing", fx->dir);
    snprintf (fx->sigsys, sizeof fx->sigsys, "%s/sigsys.sh", fx->dir);
    char sleeper[1024];
    snprintf (sleeper, sizeof sleeper,
              "args=\"$*\"\n"
              "while [ $# -gt 0 ]; do case \"$1\" in --auth-fd) fd=$2;; --instance) inst=$2;; "
              "esac; shift; done\n"
              "echo \"$args\" > %s/$inst.$$.args\n"
              "env > %s/$inst.$$.env\n"
              "ls -l /proc/$$/fd/ > %s/$inst.$$.fds\n"
              "od -An -v -tx1 /dev/fd/$fd | tr -d ' \\n' > %s/$inst.$$.tmp\n"
              "mv %s/$inst.$$.tmp %s/$inst.$$.token\n"
              "exec sleep 30",
              fx->dir, fx->dir, fx->dir, fx->dir, fx->dir, fx->dir);
    if (s_write_script (fx->crash, "exit 3") || s_write_script (fx->sleeper, sleeper)
        || s_write_script (fx->sigsys, "kill -SYS $$"))
        return -1;
    fx->records = json_array ();
    fx->agents[0].name = (char *) "cpu";
    fx->agents[1].name = (char *) "mem";
    fx->cfg.agents = fx->agents;
    fx->cfg.agent_count = 1;
    fx->cfg.heartbeat_ms = 1000;
    fx->cfg.liveness_timeout_ms = 60000;
    fx->cfg.backoff_initial_ms = BACKOFF_MS;
    fx->cfg.backoff_max_ms = 10000;
    fx->cfg.healthy_after_s = 60;
    fx->cfg.restart_intensity = 3;
    fx->cfg.restart_period_s = 60;
    fx->cfg.drain_timeout_ms = 1000;
    snprintf (fx->endpoint, sizeof fx->endpoint, "inproc://test_supervise.%d", s_endpoints++);
    fx->router = zsock_new (ZMQ_ROUTER);
    zsock_set_linger (fx->router, 0);
    if (zsock_bind (fx->router, "%s", fx->endpoint) != 0)
        return -1;
    *state = fx;
    return 0;
}

static int
s_rm (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove (path);
}

static void s_reap_all (mesh_supervise_t *sup);

static int
s_teardown (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    if (fx->sup) {
        mesh_supervise_stop (fx->sup);
        mesh_supervise_kill_all (fx->sup);
        s_reap_all (fx->sup);
        mesh_supervise_destroy (&fx->sup);
    }
    zsock_destroy (&fx->router);
    json_decref (fx->records);
    nftw (fx->dir, s_rm, 8, FTW_DEPTH | FTW_PHYS);
    free (fx);
    return 0;
}

static void
s_recorder (void *arg, json_t *record)
{
    json_array_append (((fixture_t *) arg)->records, record);
}

static mesh_supervise_t *
s_start (fixture_t *fx, const char *binary, size_t agents)
{
    fx->cfg.agent_count = agents;
    fx->sup = mesh_supervise_new (&fx->cfg, binary, "meshd.yaml", "ipc://unused/agents.ipc",
                                  "127.0.0.1:9", fx->router);
    assert_non_null (fx->sup);
    mesh_supervise_set_recorder (fx->sup, s_recorder, fx);
    return fx->sup;
}

//  The contents of <dir>/<instance>.<pid>.<ext> once the fake agent wrote it (5 s at most).
static char *
s_agent_file (fixture_t *fx, const char *instance, int pid, const char *ext)
{
    char path[256];
    snprintf (path, sizeof path, "%s/%s.%d.%s", fx->dir, instance, pid, ext);
    int64_t deadline = zclock_mono () + 5000;
    while (zclock_mono () < deadline) {
        FILE *file = fopen (path, "r");
        if (file) {
            char *text = calloc (1, 65536);
            size_t n = fread (text, 1, 65535, file);
            fclose (file);
            text[n] = 0;
            return text;
        }
        zclock_sleep (5);
    }
    fail_msg ("the fake agent wrote no %s", path);
    return NULL;
}

//  Authenticate ROUTING_ID as INSTANCE with TOKEN (hex); the supervisor's answer.
static const char *
s_auth_with (mesh_supervise_t *sup, const char *routing_id, const char *instance,
             const char *token)
{
    json_t *body = json_pack ("{ss ss}", "instance", instance, "token", token);
    const char *why = mesh_supervise_auth (sup, routing_id, body);
    json_decref (body);
    return why;
}

//  Authenticate ROUTING_ID for instance number I with its current life's token.
static const char *
s_auth (fixture_t *fx, size_t i, const char *routing_id)
{
    json_t *status = mesh_supervise_status (fx->sup);
    json_t *inst = json_array_get (status, i);
    int pid = (int) json_integer_value (json_object_get (inst, "pid"));
    char name[32];
    snprintf (name, sizeof name, "%s", json_string_value (json_object_get (inst, "name")));
    json_decref (status);
    assert_true (pid > 0);
    char *token = s_agent_file (fx, name, pid, "token");
    assert_int_equal (strlen (token), 64);
    const char *why = s_auth_with (fx->sup, routing_id, name, token);
    free (token);
    return why;
}

//  One instance's line of the status, as meshctl would see it.
typedef struct {
    char state[16];
    int pid, restarts, last_exit;
    json_t *counters;               //  owned
} snap_t;

static void
s_snap (mesh_supervise_t *sup, size_t i, snap_t *snap)
{
    json_t *status = mesh_supervise_status (sup);
    json_t *inst = json_array_get (status, i);
    assert_non_null (inst);
    snprintf (snap->state, sizeof snap->state, "%s",
              json_string_value (json_object_get (inst, "state")));
    snap->pid = (int) json_integer_value (json_object_get (inst, "pid"));
    snap->restarts = (int) json_integer_value (json_object_get (inst, "restarts"));
    snap->last_exit = (int) json_integer_value (json_object_get (inst, "last_exit"));
    snap->counters = json_incref (json_object_get (inst, "counters"));
    json_decref (status);
}

static const char *
s_state (mesh_supervise_t *sup, size_t i)
{
    static char state[16];
    snap_t snap;
    s_snap (sup, i, &snap);
    json_decref (snap.counters);
    memcpy (state, snap.state, sizeof state);
    return state;
}

static int
s_snap_pid (mesh_supervise_t *sup, size_t i)
{
    snap_t snap;
    s_snap (sup, i, &snap);
    json_decref (snap.counters);
    return snap.pid;
}

static int
s_snap_restarts (mesh_supervise_t *sup, size_t i)
{
    snap_t snap;
    s_snap (sup, i, &snap);
    json_decref (snap.counters);
    return snap.restarts;
}

//  Tick until instance I is in STATE; false if it is not within TIMEOUT_MS.
static bool
s_tick_until (mesh_supervise_t *sup, size_t i, const char *state, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    while (zclock_mono () < deadline) {
        mesh_supervise_tick (sup);
        if (strcmp (s_state (sup, i), state) == 0)
            return true;
        zclock_sleep (5);
    }
    return false;
}

static void
s_reap_all (mesh_supervise_t *sup)
{
    int64_t deadline = zclock_mono () + 5000;
    while (mesh_supervise_alive (sup) > 0 && zclock_mono () < deadline) {
        mesh_supervise_tick (sup);
        zclock_sleep (5);
    }
    assert_int_equal (mesh_supervise_alive (sup), 0);
}

static void
s_hello (mesh_supervise_t *sup, const char *routing_id, const char *agent, int pid)
{
    json_t *body = json_pack ("{ss ss si}", "agent", agent, "instance", agent, "pid", pid);
    mesh_supervise_hello (sup, routing_id, body);
    json_decref (body);
}

static json_int_t
s_counter (json_t *counters, const char *key)
{
    return json_integer_value (json_object_get (counters, key));
}

//  ---------------------------------------------------------------------------------------

static void
test_crash_loop_backs_off_then_fails (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_supervise_t *sup = s_start (fx, fx->crash, 1);
    snap_t snap;
    s_snap (sup, 0, &snap);
    json_decref (snap.counters);
    assert_string_equal (snap.state, "starting");
    assert_true (snap.pid > 0);
    assert_int_equal (mesh_supervise_alive (sup), 1);

    //  Watch every transition: each restart comes no sooner than its backoff, and the
    //  backoff doubles.  The 4th death is more than 3 restarts within the period.
    int64_t expect_ms = BACKOFF_MS;
    int64_t died_before = -1;       //  a time no later than the last death
    int prev_pid = snap.pid;
    char prev_state[16] = "starting";
    int spawns = 0;
    int64_t deadline = zclock_mono () + 10000;
    while (zclock_mono () < deadline && strcmp (prev_state, "failed") != 0) {
        int64_t before = zclock_mono ();
        mesh_supervise_tick (sup);
        s_snap (sup, 0, &snap);
        json_decref (snap.counters);
        if (strcmp (snap.state, "backoff") == 0 && strcmp (prev_state, "backoff") != 0) {
            assert_int_equal (snap.pid, 0);
            assert_int_equal (snap.last_exit, 3);
            assert_true (mesh_supervise_healthy (sup));
            died_before = before;
        }
        if (strcmp (snap.state, "starting") == 0 && snap.pid != prev_pid) {
            assert_true (snap.pid > 0);
            assert_true (died_before >= 0);
            int64_t gap = zclock_mono () - died_before;
            if (gap < expect_ms)
                fail_msg ("restart %d after %lld ms, backoff was %lld ms", spawns + 1,
                          (long long) gap, (long long) expect_ms);
            expect_ms *= 2;
            spawns++;
        }
        prev_pid = snap.pid;
        snprintf (prev_state, sizeof prev_state, "%s", snap.state);
        zclock_sleep (2);
    }
    assert_string_equal (prev_state, "failed");
    assert_int_equal (spawns, 3);
    s_snap (sup, 0, &snap);
    json_decref (snap.counters);
    assert_int_equal (snap.restarts, 4);
    assert_int_equal (snap.pid, 0);
    assert_int_equal (snap.last_exit, 3);
    assert_false (mesh_supervise_healthy (sup));
    assert_false (mesh_supervise_ready (sup));      //  a failed instance: meshd is not ready
    assert_int_equal (mesh_supervise_alive (sup), 0);
    char *summary = mesh_supervise_summary (sup);
    assert_string_equal (summary, "0/1 agents running, 1 failed (cpu: last exit 3), 0 decisions");
    free (summary);
    //  Every death is on the record, and the failure once.
    assert_int_equal (json_array_size (fx->records), 5);
    for (size_t i = 0; i < 4; i++) {
        json_t *r = json_array_get (fx->records, i);
        assert_string_equal (json_string_value (json_object_get (r, "type")), "agent");
        assert_string_equal (json_string_value (json_object_get (r, "event")), "died");
        assert_string_equal (json_string_value (json_object_get (r, "instance")), "cpu");
        assert_int_equal (json_integer_value (json_object_get (r, "exit")), 3);
        assert_true (json_integer_value (json_object_get (r, "pid")) > 0);
    }
    json_t *failed = json_array_get (fx->records, 4);
    assert_string_equal (json_string_value (json_object_get (failed, "event")), "failed");
    assert_int_equal (json_integer_value (json_object_get (failed, "restarts")), 4);

    //  Failed stays failed: no more starts.
    for (int i = 0; i < 40; i++) {
        mesh_supervise_tick (sup);
        zclock_sleep (5);
    }
    s_snap (sup, 0, &snap);
    json_decref (snap.counters);
    assert_string_equal (snap.state, "failed");
    assert_int_equal (snap.restarts, 4);
    assert_int_equal (mesh_supervise_alive (sup), 0);
    //  A late hello from the dead does not revive it.
    s_hello (sup, "cpu/0", "cpu", 1);
    assert_string_equal (s_state (sup, 0), "failed");
    assert_false (mesh_supervise_healthy (sup));
}

static void
test_exec_failure_is_a_death (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_supervise_t *sup = s_start (fx, fx->missing, 1);
    assert_true (s_tick_until (sup, 0, "backoff", 5000));
    snap_t snap;
    s_snap (sup, 0, &snap);
    json_decref (snap.counters);
    assert_int_equal (snap.last_exit, 127);
    assert_int_equal (snap.restarts, 1);
    //  A hello arriving after the death (sent just before it) does not make a dead
    //  instance "running": it would never be restarted.
    s_hello (sup, "cpu", "cpu", 1);
    assert_string_equal (s_state (sup, 0), "backoff");
    assert_false (mesh_supervise_ready (sup));
}

static void
test_hello_running_ready (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_supervise_t *sup = s_start (fx, fx->sleeper, 2);
    assert_int_equal (mesh_supervise_alive (sup), 2);
    assert_string_equal (s_state (sup, 0), "starting");
    assert_string_equal (s_state (sup, 1), "starting");
    assert_false (mesh_supervise_ready (sup));
    assert_true (mesh_supervise_healthy (sup));

    snap_t cpu, mem;
    s_snap (sup, 0, &cpu);
    s_snap (sup, 1, &mem);
    json_decref (cpu.counters);
    json_decref (mem.counters);

    //  Hellos that do not count: an unknown peer, a peer naming another agent, a peer that
    //  did not authenticate.
    s_hello (sup, "disk/0", "disk", 1);
    assert_null (s_auth (fx, 0, "cpu/0"));
    s_hello (sup, "cpu/0", "mem", mem.pid);
    s_hello (sup, "cpux", "cpu", cpu.pid);
    s_hello (sup, "cpu/9", "cpu", cpu.pid);
    assert_string_equal (s_state (sup, 0), "starting");
    assert_string_equal (s_state (sup, 1), "starting");

    s_hello (sup, "cpu/0", "cpu", cpu.pid);
    assert_string_equal (s_state (sup, 0), "running");
    assert_string_equal (s_state (sup, 1), "starting");
    assert_false (mesh_supervise_ready (sup));
    assert_null (s_auth (fx, 1, "mem"));
    s_hello (sup, "mem", "mem", mem.pid);
    assert_string_equal (s_state (sup, 1), "running");
    assert_true (mesh_supervise_ready (sup));
    assert_true (mesh_supervise_healthy (sup));
    char *summary = mesh_supervise_summary (sup);
    assert_string_equal (summary, "2/2 agents running, 0 failed, 0 decisions");
    free (summary);

    //  Ticks leave live, heard-from instances alone.
    for (int i = 0; i < 10; i++)
        mesh_supervise_tick (sup);
    assert_string_equal (s_state (sup, 0), "running");
    assert_int_equal (mesh_supervise_alive (sup), 2);

    assert_null (mesh_supervise_agent_of (sup, "cpu/3"));       //  not authenticated
    assert_null (s_auth (fx, 0, "cpu/3"));
    assert_string_equal (mesh_supervise_agent_of (sup, "cpu/3"), "cpu");
    assert_string_equal (mesh_supervise_agent_of (sup, "mem"), "mem");
    assert_null (mesh_supervise_agent_of (sup, "cpux/1"));
    assert_null (mesh_supervise_agent_of (sup, "cp"));
    assert_null (mesh_supervise_agent_of (sup, NULL));

    json_t *status = mesh_supervise_status (sup);
    assert_int_equal (json_array_size (status), 2);
    json_t *line = json_array_get (status, 1);
    assert_string_equal (json_string_value (json_object_get (line, "name")), "mem");
    assert_string_equal (json_string_value (json_object_get (line, "agent")), "mem");
    assert_true (json_is_integer (json_object_get (line, "uptime_s")));
    assert_true (json_is_object (json_object_get (line, "counters")));
    json_decref (status);
}

static void
test_counters_survive_death (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_supervise_t *sup = s_start (fx, fx->sleeper, 1);
    snap_t snap;
    s_snap (sup, 0, &snap);
    json_decref (snap.counters);
    assert_null (s_auth (fx, 0, "cpu/0"));
    assert_null (s_auth (fx, 0, "cpu/1"));
    s_hello (sup, "cpu/0", "cpu", snap.pid);

    json_t *beat = json_pack ("{ss s{si si si}}", "instance", "cpu", "counters", "events", 5,
                              "loops", 2, "queue", 3);
    mesh_supervise_heartbeat (sup, "cpu/1", beat);
    json_decref (beat);
    s_snap (sup, 0, &snap);
    assert_int_equal (s_counter (snap.counters, "events"), 5);
    assert_int_equal (s_counter (snap.counters, "loops"), 2);
    assert_int_equal (s_counter (snap.counters, "queue"), 3);
    json_decref (snap.counters);
    //  A heartbeat carries the life's running totals: it replaces, it does not add.
    beat = json_pack ("{ss s{si si si}}", "instance", "cpu", "counters", "events", 7, "loops", 2,
                      "queue", 1);
    mesh_supervise_heartbeat (sup, "cpu/1", beat);
    json_decref (beat);
    //  From nobody we know: ignored.
    beat = json_pack ("{ss s{si}}", "instance", "disk", "counters", "events", 1000);
    mesh_supervise_heartbeat (sup, "disk/0", beat);
    json_decref (beat);
    s_snap (sup, 0, &snap);
    assert_int_equal (s_counter (snap.counters, "events"), 7);
    assert_int_equal (s_counter (snap.counters, "queue"), 1);
    json_decref (snap.counters);
    char *summary = mesh_supervise_summary (sup);
    assert_string_equal (summary, "1/1 agents running, 0 failed, 2 decisions");
    free (summary);

    //  Killed: the counters are folded into the totals; the gauge is not a total.
    assert_int_equal (kill ((pid_t) snap.pid, SIGKILL), 0);
    assert_true (s_tick_until (sup, 0, "backoff", 5000));
    s_snap (sup, 0, &snap);
    assert_int_equal (snap.last_exit, -SIGKILL);
    assert_int_equal (snap.restarts, 1);
    assert_int_equal (snap.pid, 0);
    assert_int_equal (s_counter (snap.counters, "events"), 7);
    assert_int_equal (s_counter (snap.counters, "loops"), 2);
    assert_null (json_object_get (snap.counters, "queue"));
    json_decref (snap.counters);
    //  A heartbeat from the dead life, read after the reap, is not counted twice.
    beat = json_pack ("{ss s{si si}}", "instance", "cpu", "counters", "events", 7, "loops", 2);
    mesh_supervise_heartbeat (sup, "cpu/1", beat);
    json_decref (beat);
    s_snap (sup, 0, &snap);
    assert_int_equal (s_counter (snap.counters, "events"), 7);
    json_decref (snap.counters);

    //  The next life adds to them.
    assert_true (s_tick_until (sup, 0, "starting", 5000));
    s_snap (sup, 0, &snap);
    json_decref (snap.counters);
    assert_true (snap.pid > 0);
    //  The new life authenticates afresh: the old routing ids were forgotten.
    assert_null (mesh_supervise_agent_of (sup, "cpu/1"));
    assert_null (s_auth (fx, 0, "cpu/0"));
    assert_null (s_auth (fx, 0, "cpu/1"));
    s_hello (sup, "cpu/0", "cpu", snap.pid);
    beat = json_pack ("{ss s{si si}}", "instance", "cpu", "counters", "events", 1, "queue", 4);
    mesh_supervise_heartbeat (sup, "cpu/1", beat);
    json_decref (beat);
    s_snap (sup, 0, &snap);
    assert_string_equal (snap.state, "running");
    assert_int_equal (s_counter (snap.counters, "events"), 8);
    assert_int_equal (s_counter (snap.counters, "loops"), 2);
    assert_int_equal (s_counter (snap.counters, "queue"), 4);
    json_decref (snap.counters);
    summary = mesh_supervise_summary (sup);
    assert_string_equal (summary, "1/1 agents running, 0 failed, 2 decisions");
    free (summary);
}

//  Instance I's "backends" in the status (caller owns).
static json_t *
s_backends (mesh_supervise_t *sup, size_t i)
{
    json_t *status = mesh_supervise_status (sup);
    json_t *backends = json_incref (json_object_get (json_array_get (status, i), "backends"));
    json_decref (status);
    assert_true (json_is_object (backends));
    return backends;
}

//  A heartbeat of instance "cpu" from ROUTING_ID with BACKENDS (taken; NULL: none).
static void
s_beat_backends (mesh_supervise_t *sup, const char *routing_id, json_t *backends)
{
    json_t *beat = json_pack ("{ss s{si}}", "instance", "cpu", "counters", "events", 1);
    if (backends)
        json_object_set_new (beat, "backends", backends);
    mesh_supervise_heartbeat (sup, routing_id, beat);
    json_decref (beat);
}

//  {"b0": {}, ... } with COUNT entries.
static json_t *
s_many_backends (int count)
{
    json_t *many = json_object ();
    for (int i = 0; i < count; i++) {
        char name[16];
        snprintf (name, sizeof name, "b%d", i);
        json_object_set_new (many, name, json_object ());
    }
    return many;
}

//  The backends a heartbeat reports: kept as sent, replaced by the next heartbeat, dropped
//  (and reported as the agent's bug, not punished) when not an object of at most 64
//  objects and 64 KiB, and forgotten when the instance dies.
static void
test_heartbeat_backends (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_supervise_t *sup = s_start (fx, fx->sleeper, 1);
    json_t *got = s_backends (sup, 0);
    assert_int_equal (json_object_size (got), 0);          //  none before a heartbeat
    json_decref (got);
    int pid = s_snap_pid (sup, 0);
    assert_null (s_auth (fx, 0, "cpu/0"));
    s_hello (sup, "cpu/0", "cpu", pid);

    json_t *sent = json_pack ("{s{ss ss ss si si si si s{si si si} sn}}", "local", "state",
                              "ready", "detail", "", "flavor", "llama.cpp", "context_tokens",
                              8192, "calls", 12, "failures", 1, "consecutive_failures", 0,
                              "latency_ms", "p50", 120, "p95", 300, "p99", 410, "ttft_ms");
    s_beat_backends (sup, "cpu/0", json_deep_copy (sent));
    got = s_backends (sup, 0);
    assert_true (json_equal (got, sent));
    json_decref (got);
    //  Not from this life's authenticated peers: ignored.
    s_beat_backends (sup, "cpu/7", json_pack ("{s{ss}}", "rogue", "state", "ready"));
    got = s_backends (sup, 0);
    assert_true (json_equal (got, sent));
    json_decref (got);
    json_decref (sent);

    //  The next heartbeat replaces it (a backend gone from it is gone).
    sent = json_pack ("{s{ss ss}}", "big", "state", "open", "detail", "connection refused");
    s_beat_backends (sup, "cpu/0", json_deep_copy (sent));
    got = s_backends (sup, 0);
    assert_true (json_equal (got, sent));
    assert_null (json_object_get (got, "local"));
    json_decref (got);
    json_decref (sent);

    //  Junk: not an object, a value that is not an object, too many entries, too large (one
    //  entry of 70 KB: an agent must not swell every status reply).  Each leaves none (not
    //  the previous one); the agent is not killed; one agent_error is recorded.
    char *huge = calloc (1, 70000);
    memset (huge, 'x', 69999);
    json_t *junk[] = { json_string ("ready"), json_pack ("[{}]"),
                       json_pack ("{s{} si}", "ok", "bad", 3), s_many_backends (65),
                       json_pack ("{s{ss}}", "big", "detail", huge) };
    free (huge);
    for (size_t k = 0; k < sizeof junk / sizeof junk[0]; k++) {
        s_beat_backends (sup, "cpu/0", json_pack ("{s{ss}}", "x", "state", "ready"));
        got = s_backends (sup, 0);
        assert_int_equal (json_object_size (got), 1);
        json_decref (got);
        s_beat_backends (sup, "cpu/0", junk[k]);
        got = s_backends (sup, 0);
        assert_int_equal (json_object_size (got), 0);
        json_decref (got);
    }
    assert_int_equal (json_array_size (fx->records), 1);           //  rate-limited
    json_t *r = json_array_get (fx->records, 0);
    assert_string_equal (json_string_value (json_object_get (r, "event")), "agent_error");
    assert_non_null (strstr (json_string_value (json_object_get (r, "reason")), "backends"));
    assert_int_equal (mesh_supervise_alive (sup), 1);
    assert_string_equal (s_state (sup, 0), "running");
    //  Exactly 64 is accepted; a heartbeat without "backends" leaves none, and no record.
    s_beat_backends (sup, "cpu/0", s_many_backends (64));
    got = s_backends (sup, 0);
    assert_int_equal (json_object_size (got), 64);
    json_decref (got);
    s_beat_backends (sup, "cpu/0", NULL);
    got = s_backends (sup, 0);
    assert_int_equal (json_object_size (got), 0);
    json_decref (got);
    assert_int_equal (json_array_size (fx->records), 1);

    //  A death forgets them; a heartbeat of the dead life read after the reap is ignored.
    s_beat_backends (sup, "cpu/0", json_pack ("{s{ss}}", "local", "state", "ready"));
    got = s_backends (sup, 0);
    assert_int_equal (json_object_size (got), 1);
    json_decref (got);
    assert_int_equal (kill ((pid_t) pid, SIGKILL), 0);
    assert_true (s_tick_until (sup, 0, "backoff", 5000));
    got = s_backends (sup, 0);
    assert_int_equal (json_object_size (got), 0);
    json_decref (got);
    s_beat_backends (sup, "cpu/0", json_pack ("{s{ss}}", "local", "state", "ready"));
    got = s_backends (sup, 0);
    assert_int_equal (json_object_size (got), 0);
    json_decref (got);
}

//  Instance I's field KEY in the status (caller owns; NULL if absent).
static json_t *
s_status_field (mesh_supervise_t *sup, size_t i, const char *key)
{
    json_t *status = mesh_supervise_status (sup);
    json_t *value = json_incref (json_object_get (json_array_get (status, i), key));
    json_decref (status);
    return value;
}

//  The count of histogram KEY (an array, or BACKEND's in an object) in instance 0's "hist".
static uint64_t
s_hist_count (mesh_supervise_t *sup, const char *key, const char *backend)
{
    json_t *hist = s_status_field (sup, 0, "hist");
    assert_true (json_is_object (hist));
    json_t *array = json_object_get (hist, key);
    if (backend)
        array = json_object_get (array, backend);
    mesh_hist_t h = {0};
    if (array)
        assert_int_equal (mesh_hist_from_json (&h, array), 0);
    json_decref (hist);
    return mesh_hist_count (&h);
}

//  A heartbeat's "hist" and "lag_partitions" (for /metrics): kept, the histograms summed
//  over lives like counters (a heartbeat carries the life's running totals), the lag only
//  the present life's; junk is dropped as the agent's bug, not punished; a heartbeat
//  without them (an older agent) is fine.
static void
test_heartbeat_hist_and_lag (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_supervise_t *sup = s_start (fx, fx->sleeper, 1);
    int pid = s_snap_pid (sup, 0);
    assert_null (s_auth (fx, 0, "cpu/0"));
    s_hello (sup, "cpu/0", "cpu", pid);
    assert_int_equal (s_hist_count (sup, "gate_seconds", NULL), 0);

    mesh_hist_t two = {0}, three = {0};
    mesh_hist_observe (&two, 0.01);
    mesh_hist_observe (&two, 0.2);
    three = two;
    mesh_hist_observe (&three, 5);
    json_t *beat = json_pack ("{ss s{si} s{so s{so}} s[{ss si si}]}", "instance", "cpu",
                              "counters", "events", 1, "hist", "gate_seconds",
                              mesh_hist_json (&two), "model_call_seconds", "llm",
                              mesh_hist_json (&two), "lag_partitions", "topic", "metrics",
                              "partition", 2, "lag", 17);
    mesh_supervise_heartbeat (sup, "cpu/0", beat);
    json_decref (beat);
    assert_int_equal (s_hist_count (sup, "gate_seconds", NULL), 2);
    assert_int_equal (s_hist_count (sup, "model_call_seconds", "llm"), 2);
    json_t *lag = s_status_field (sup, 0, "lag_partitions");
    assert_int_equal (json_integer_value (json_object_get (json_array_get (lag, 0), "lag")), 17);
    json_decref (lag);
    //  The next heartbeat replaces this life's (running totals, not increments).
    beat = json_pack ("{ss s{si} s{so s{so}}}", "instance", "cpu", "counters", "events", 1,
                      "hist", "gate_seconds", mesh_hist_json (&three), "model_call_seconds",
                      "llm", mesh_hist_json (&two));
    mesh_supervise_heartbeat (sup, "cpu/0", beat);
    json_decref (beat);
    assert_int_equal (s_hist_count (sup, "gate_seconds", NULL), 3);
    assert_int_equal (s_hist_count (sup, "model_call_seconds", "llm"), 2);
    assert_null (s_status_field (sup, 0, "lag_partitions"));     //  not sent: none

    //  Junk: each dropped (this life's histograms stay as they were), one agent_error.
    json_t *bad_array = mesh_hist_json (&two);
    json_array_set_new (bad_array, 0, json_integer (-5));
    json_t *many = json_object ();
    for (int i = 0; i < 65; i++) {
        char name[16];
        snprintf (name, sizeof name, "b%d", i);
        json_object_set_new (many, name, mesh_hist_json (&two));
    }
    json_t *lags = json_array ();
    for (int i = 0; i < MESH_PROTO_MAX_LAG_PARTITIONS + 1; i++)
        json_array_append_new (lags, json_pack ("{ss si si}", "topic", "t", "partition", i,
                                                "lag", 1));
    json_t *junk[] = {json_string ("x"), json_pack ("{s[iii]}", "gate_seconds", 1, 2, 3),
                      json_pack ("{so}", "gate_seconds", bad_array),
                      json_pack ("{s{so}}", "model_call_seconds", "llm", json_string ("x")),
                      json_pack ("{so}", "model_call_seconds", many)};
    for (size_t k = 0; k < sizeof junk / sizeof junk[0]; k++) {
        beat = json_pack ("{ss s{si} so}", "instance", "cpu", "counters", "events", 1, "hist",
                          junk[k]);
        mesh_supervise_heartbeat (sup, "cpu/0", beat);
        json_decref (beat);
        assert_int_equal (s_hist_count (sup, "gate_seconds", NULL), 3);
    }
    json_t *lag_junk[] = {json_string ("x"), lags,
                          json_pack ("[{ss si si}]", "topic", "t", "partition", 0, "lag", -1),
                          json_pack ("[{si si}]", "partition", 0, "lag", 1)};
    for (size_t k = 0; k < sizeof lag_junk / sizeof lag_junk[0]; k++) {
        beat = json_pack ("{ss s{si} so}", "instance", "cpu", "counters", "events", 1,
                          "lag_partitions", lag_junk[k]);
        mesh_supervise_heartbeat (sup, "cpu/0", beat);
        json_decref (beat);
        assert_null (s_status_field (sup, 0, "lag_partitions"));
    }
    assert_int_equal (json_array_size (fx->records), 1);           //  rate-limited
    assert_int_equal (mesh_supervise_alive (sup), 1);

    //  A death folds this life's histograms into the totals; the next life adds to them.
    assert_int_equal (kill ((pid_t) pid, SIGKILL), 0);
    assert_true (s_tick_until (sup, 0, "backoff", 5000));
    assert_int_equal (s_hist_count (sup, "gate_seconds", NULL), 3);
    assert_int_equal (s_hist_count (sup, "model_call_seconds", "llm"), 2);
    assert_true (s_tick_until (sup, 0, "starting", 5000));
    pid = s_snap_pid (sup, 0);
    assert_null (s_auth (fx, 0, "cpu/0"));
    s_hello (sup, "cpu/0", "cpu", pid);
    beat = json_pack ("{ss s{si} s{so}}", "instance", "cpu", "counters", "events", 1, "hist",
                      "gate_seconds", mesh_hist_json (&two));
    mesh_supervise_heartbeat (sup, "cpu/0", beat);
    json_decref (beat);
    assert_int_equal (s_hist_count (sup, "gate_seconds", NULL), 5);
}

static void
test_liveness_kills_the_silent (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    fx->cfg.liveness_timeout_ms = 500;
    mesh_supervise_t *sup = s_start (fx, fx->sleeper, 2);
    snap_t snap;
    s_snap (sup, 1, &snap);
    json_decref (snap.counters);
    assert_null (s_auth (fx, 1, "mem"));
    assert_null (s_auth (fx, 1, "mem/0"));
    s_hello (sup, "mem", "mem", snap.pid);
    int mem_pid = snap.pid;
    //  "mem" keeps beating; "cpu" never says a word.
    json_t *beat = json_pack ("{ss s{}}", "instance", "mem", "counters");
    int64_t deadline = zclock_mono () + 10000;
    while (zclock_mono () < deadline && strcmp (s_state (sup, 0), "backoff") != 0) {
        mesh_supervise_heartbeat (sup, "mem/0", beat);
        mesh_supervise_tick (sup);
        zclock_sleep (5);
    }
    json_decref (beat);
    s_snap (sup, 0, &snap);
    json_decref (snap.counters);
    assert_string_equal (snap.state, "backoff");
    assert_int_equal (snap.last_exit, -SIGKILL);
    assert_int_equal (snap.restarts, 1);
    s_snap (sup, 1, &snap);
    json_decref (snap.counters);
    assert_string_equal (snap.state, "running");
    assert_int_equal (snap.pid, mem_pid);
    assert_int_equal (snap.restarts, 0);
    //  ... and the silent one is restarted like any death.
    assert_true (s_tick_until (sup, 0, "starting", 5000));
}

static void
test_punish_kills (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_supervise_t *sup = s_start (fx, fx->sleeper, 1);
    mesh_supervise_punish (sup, "disk/0", "garbage");       //  nobody: nothing happens
    mesh_supervise_punish (sup, NULL, "garbage");
    mesh_supervise_tick (sup);
    assert_string_equal (s_state (sup, 0), "starting");
    //  Not authenticated: it speaks for nobody, so nobody is punished.
    mesh_supervise_punish (sup, "cpu/2", "wrong version");
    mesh_supervise_punish (sup, "cpu", "wrong version");
    for (int i = 0; i < 20; i++) {
        mesh_supervise_tick (sup);
        zclock_sleep (5);
    }
    assert_string_equal (s_state (sup, 0), "starting");
    assert_int_equal (mesh_supervise_alive (sup), 1);
    assert_null (s_auth (fx, 0, "cpu/2"));
    mesh_supervise_punish (sup, "cpu/2", "wrong version");
    assert_true (s_tick_until (sup, 0, "backoff", 5000));
    snap_t snap;
    s_snap (sup, 0, &snap);
    json_decref (snap.counters);
    assert_int_equal (snap.last_exit, -SIGKILL);
    //  Punishing a dead instance is harmless.
    mesh_supervise_punish (sup, "cpu/2", "again");
    assert_string_equal (s_state (sup, 0), "backoff");
}

//  A refused message from an authenticated agent is its bug: recorded once per interval,
//  counted, and the agent is left running (killing it would re-deliver and loop).
static void
test_agent_bug_recorded_not_killed (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_supervise_t *sup = s_start (fx, fx->sleeper, 1);
    mesh_supervise_agent_bug (sup, "cpu/2", "body too large");     //  not authenticated
    assert_int_equal (json_array_size (fx->records), 0);
    assert_null (s_auth (fx, 0, "cpu/2"));
    for (int i = 0; i < 5; i++)
        mesh_supervise_agent_bug (sup, "cpu/2", "body is not valid JSON");
    for (int i = 0; i < 20; i++) {
        mesh_supervise_tick (sup);
        zclock_sleep (5);
    }
    assert_string_equal (s_state (sup, 0), "starting");
    assert_int_equal (mesh_supervise_alive (sup), 1);
    assert_int_equal (json_array_size (fx->records), 1);           //  rate-limited
    json_t *r = json_array_get (fx->records, 0);
    assert_string_equal (json_string_value (json_object_get (r, "type")), "agent");
    assert_string_equal (json_string_value (json_object_get (r, "event")), "agent_error");
    assert_string_equal (json_string_value (json_object_get (r, "reason")),
                         "body is not valid JSON");
    assert_int_equal (json_integer_value (json_object_get (r, "count")), 1);
}

static void
test_stop (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    //  A peer with the identity of instance "cpu", to see the SHUTDOWN request.
    zsock_t *peer = zsock_new (ZMQ_DEALER);
    zsock_set_identity (peer, "cpu");
    zsock_set_linger (peer, 0);
    zsock_set_rcvtimeo (peer, 5000);
    assert_int_equal (zsock_connect (peer, "%s", fx->endpoint), 0);
    //  The router learns the peer's identity only once the peer said something.
    json_t *ping = json_pack ("{ss}", "reason", "connect");
    assert_int_equal (mesh_proto_send (peer, NULL, MESH_MSG_ERROR, ping), 0);
    json_decref (ping);
    zsock_set_rcvtimeo (fx->router, 5000);
    mesh_msg_t *msg = mesh_proto_recv (fx->router, true, NULL, NULL);
    assert_non_null (msg);
    mesh_msg_destroy (&msg);

    mesh_supervise_t *sup = s_start (fx, fx->sleeper, 2);
    snap_t snap;
    s_snap (sup, 0, &snap);
    json_decref (snap.counters);
    assert_null (s_auth (fx, 0, "cpu/0"));
    s_hello (sup, "cpu/0", "cpu", snap.pid);
    assert_int_equal (mesh_supervise_alive (sup), 2);

    //  "cpu" said hello: it is asked to drain.  "mem" did not: SIGTERM.
    mesh_supervise_stop (sup);
    msg = mesh_proto_recv (peer, false, NULL, NULL);
    assert_non_null (msg);
    assert_int_equal (msg->type, MESH_MSG_SHUTDOWN);
    assert_non_null (json_string_value (json_object_get (msg->body, "reason")));
    mesh_msg_destroy (&msg);

    assert_true (s_tick_until (sup, 1, "stopped", 5000));
    s_snap (sup, 1, &snap);
    json_decref (snap.counters);
    assert_int_equal (snap.last_exit, -SIGTERM);
    assert_int_equal (snap.pid, 0);
    assert_int_equal (snap.restarts, 0);        //  a death while stopping is no restart
    //  The fake "cpu" ignores the request; it is still there until killed.
    assert_int_equal (mesh_supervise_alive (sup), 1);
    assert_string_equal (s_state (sup, 0), "running");

    mesh_supervise_kill_all (sup);
    s_reap_all (sup);
    s_snap (sup, 0, &snap);
    json_decref (snap.counters);
    assert_string_equal (snap.state, "stopped");
    assert_int_equal (snap.last_exit, -SIGKILL);
    assert_int_equal (snap.restarts, 0);
    //  Nothing is started again.
    for (int i = 0; i < 20; i++) {
        mesh_supervise_tick (sup);
        zclock_sleep (5);
    }
    assert_int_equal (mesh_supervise_alive (sup), 0);
    assert_string_equal (s_state (sup, 0), "stopped");
    assert_string_equal (s_state (sup, 1), "stopped");
    zsock_destroy (&peer);
}

static void
test_stop_during_backoff (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    fx->cfg.backoff_initial_ms = 60000;     //  the restart would be far away
    mesh_supervise_t *sup = s_start (fx, fx->crash, 1);
    assert_true (s_tick_until (sup, 0, "backoff", 5000));
    mesh_supervise_stop (sup);
    assert_string_equal (s_state (sup, 0), "stopped");
    assert_int_equal (mesh_supervise_alive (sup), 0);
    mesh_supervise_destroy (&fx->sup);
    assert_null (fx->sup);
    mesh_supervise_destroy (&fx->sup);
    mesh_supervise_destroy (NULL);
}

static void
test_only_authenticated_peers_count (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    int leak = open ("/dev/zero", O_RDONLY);        //  not close-on-exec: must not reach it
    assert_true (leak > 3);
    mesh_supervise_t *sup = s_start (fx, fx->sleeper, 2);
    close (leak);
    snap_t cpu, mem;
    s_snap (sup, 0, &cpu);
    s_snap (sup, 1, &mem);
    json_decref (cpu.counters);
    json_decref (mem.counters);
    char *token = s_agent_file (fx, "cpu", cpu.pid, "token");
    char *mem_token = s_agent_file (fx, "mem", mem.pid, "token");
    assert_int_equal (strlen (token), 64);
    assert_string_not_equal (token, mem_token);
    //  The token travelled over the pipe only: not in argv, not in the environment.
    char *args = s_agent_file (fx, "cpu", cpu.pid, "args");
    char *env = s_agent_file (fx, "cpu", cpu.pid, "env");
    assert_non_null (strstr (args, "--auth-fd"));
    assert_null (strstr (args, token));
    assert_null (strstr (env, token));
    //  It inherited stdin, stdout, stderr, the token's pipe (3) and its in-flight area (4,
    //  a memfd), nothing of meshd's: above 4 there is only the shell's own handle on its
    //  script (and the listing's).
    char *fds = s_agent_file (fx, "cpu", cpu.pid, "fds");
    //  (dash keeps its script open, and a copy of its stdin, on descriptors of its own.)
    char *targets[64] = {NULL};
    int numbers[64], seen = 0;
    for (char *line = strtok (fds, "\n"); line && seen < 64; line = strtok (NULL, "\n")) {
        char *arrow = strstr (line, " -> ");
        if (!arrow)
            continue;
        char *number = arrow;
        while (number > line && number[-1] != ' ')
            number--;
        numbers[seen] = atoi (number);
        targets[seen++] = arrow + 4;
    }
    assert_true (seen >= 4);
    for (int i = 0; i < seen; i++) {
        bool allowed = numbers[i] <= 3 || strcmp (targets[i], fx->sleeper) == 0
                       || (numbers[i] == 4 && strncmp (targets[i], "/memfd:mesh-inflight", 20) == 0);
        for (int j = 0; j < seen && !allowed; j++)
            allowed = numbers[j] <= 2 && strcmp (targets[i], targets[j]) == 0;
        if (!allowed)
            fail_msg ("the agent inherited descriptor %d: %s", numbers[i], targets[i]);
    }
    assert_non_null (strstr (args, "--auth-fd 3"));
    assert_non_null (strstr (args, "--inflight-fd 4"));
    free (fds);
    free (args);
    free (env);

    //  Refusals change nothing.
    char wrong[65];
    snprintf (wrong, sizeof wrong, "%s", token);
    wrong[0] = wrong[0] == '0' ? '1' : '0';
    assert_string_equal (s_auth_with (sup, "cpu", "cpu", wrong), "wrong token");
    assert_string_equal (s_auth_with (sup, "cpu/w0", "cpu", mem_token), "wrong token");
    assert_string_equal (s_auth_with (sup, "mem", "cpu", token),
                         "auth names another instance than its routing id");
    assert_string_equal (s_auth_with (sup, "cpux", "cpux", token), "routing id names no instance");
    assert_string_equal (s_auth_with (sup, "cpu/", "cpu", token), "routing id names no instance");
    assert_string_equal (s_auth_with (sup, "~00abcdef12", "cpu", token),
                         "routing id names no instance");
    assert_string_equal (s_auth_with (sup, "cpu", "cpu", "zz"), "token is not 64 hex digits");
    assert_non_null (mesh_supervise_auth (sup, NULL, NULL));
    s_hello (sup, "cpu", "cpu", cpu.pid);
    assert_string_equal (s_state (sup, 0), "starting");
    assert_null (mesh_supervise_agent_of (sup, "cpu"));
    assert_null (mesh_supervise_agent_of (sup, "cpu/w0"));
    //  Claims in cpu's name from unauthenticated ids punish nobody.
    mesh_supervise_punish (sup, "cpu", "garbage");
    mesh_supervise_punish (sup, "cpu/x", "garbage");
    mesh_supervise_punish (sup, "cpu/w0", "garbage");

    //  The right token binds exactly that routing id, for that instance.
    assert_null (s_auth_with (sup, "cpu/w0", "cpu", token));
    assert_null (s_auth_with (sup, "cpu/w0", "cpu", token));        //  twice is harmless
    assert_string_equal (mesh_supervise_agent_of (sup, "cpu/w0"), "cpu");
    assert_null (mesh_supervise_agent_of (sup, "cpu/w1"));
    assert_null (mesh_supervise_agent_of (sup, "cpu"));
    assert_null (mesh_supervise_agent_of (sup, "mem/w0"));
    for (int i = 0; i < 20; i++) {
        mesh_supervise_tick (sup);
        zclock_sleep (5);
    }
    assert_int_equal (mesh_supervise_alive (sup), 2);

    //  Death forgets the routing ids and voids the token.
    mesh_supervise_punish (sup, "cpu/w0", "wrong version");
    assert_true (s_tick_until (sup, 0, "backoff", 5000));
    assert_null (mesh_supervise_agent_of (sup, "cpu/w0"));
    assert_string_equal (s_auth_with (sup, "cpu/w0", "cpu", token), "instance is not alive");
    assert_true (s_tick_until (sup, 0, "starting", 5000));
    assert_string_equal (s_auth_with (sup, "cpu/w0", "cpu", token), "wrong token");
    assert_null (mesh_supervise_agent_of (sup, "cpu/w0"));
    assert_null (s_auth (fx, 0, "cpu/w0"));
    assert_string_equal (mesh_supervise_agent_of (sup, "cpu/w0"), "cpu");
    assert_int_equal (s_snap_restarts (sup, 1), 0);                 //  mem untouched
    free (token);
    free (mem_token);
}

static void
test_signal_deaths_are_recorded (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    fx->cfg.backoff_initial_ms = 60000;
    mesh_supervise_t *sup = s_start (fx, fx->sigsys, 1);
    assert_true (s_tick_until (sup, 0, "backoff", 5000));
    assert_int_equal (json_array_size (fx->records), 1);
    json_t *r = json_array_get (fx->records, 0);
    assert_string_equal (json_string_value (json_object_get (r, "event")), "died");
    assert_string_equal (json_string_value (json_object_get (r, "agent")), "cpu");
    assert_string_equal (json_string_value (json_object_get (r, "signal")), "SIGSYS");
    assert_string_equal (json_string_value (json_object_get (r, "reason")),
                         "killed by its seccomp filter (a system call outside the allow-list)");
    assert_null (json_object_get (r, "exit"));
    mesh_supervise_stop (sup);
    mesh_supervise_destroy (&fx->sup);

    json_array_clear (fx->records);
    fx->cfg.backoff_initial_ms = BACKOFF_MS;
    sup = s_start (fx, fx->sleeper, 1);
    int pid = s_snap_pid (sup, 0);
    assert_int_equal (kill (pid, SIGKILL), 0);
    assert_true (s_tick_until (sup, 0, "backoff", 5000));
    r = json_array_get (fx->records, 0);
    assert_non_null (r);
    assert_string_equal (json_string_value (json_object_get (r, "signal")), "SIGKILL");
    assert_string_equal (json_string_value (json_object_get (r, "reason")), "killed");
    assert_int_equal (json_integer_value (json_object_get (r, "pid")), pid);
}

//  A poison message: every life of the agent dies (exit 3) while its consumer slot says
//  it handles metrics[2]@5 (and a second slot holds garbage, which is ignored).  The
//  script writes the slot with dd into descriptor 4, as the agent's stores would, and
//  notes the quarantined flag of the first mark it was given.  After quarantine_after (3)
//  deaths: one quarantine record, the count in status, the table in state_dir, and the
//  next life is told.
static void
test_poison_is_quarantined (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    //  The offsets the script writes at, from the layout.
    assert_int_equal (offsetof (mesh_inflight_area_t, slot[0].busy), 16);
    assert_int_equal (offsetof (mesh_inflight_area_t, slot[0].topic), 36);
    assert_int_equal (offsetof (mesh_inflight_area_t, slot[1].busy), 296);
    assert_int_equal (offsetof (mesh_inflight_area_t, mark[0].quarantined), 4780);
    char poison[160], body[1024];
    snprintf (poison, sizeof poison, "%s/poison.sh", fx->dir);
    snprintf (body, sizeof body,
              "od -An -tu1 -j4780 -N1 /dev/fd/4 | tr -d ' ' >> %s/marks\n"
              "printf '\\001\\000\\000\\000\\002\\000\\000\\000\\005\\000\\000\\000"
              "\\000\\000\\000\\000\\007\\000\\000\\000metrics' "
              "| dd of=/dev/fd/4 bs=1 seek=16 conv=notrunc status=none\n"
              "printf '\\001\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000"
              "\\000\\000\\000\\000\\377\\377\\000\\000' "
              "| dd of=/dev/fd/4 bs=1 seek=296 conv=notrunc status=none\n"
              "exit 3", fx->dir);
    assert_int_equal (s_write_script (poison, body), 0);
    fx->cfg.state_dir = fx->dir;
    fx->cfg.quarantine_after = 3;
    fx->cfg.restart_intensity = 10;
    mesh_supervise_t *sup = s_start (fx, poison, 1);
    int64_t deadline = zclock_mono () + 10000;
    while (s_snap_restarts (sup, 0) < 4 && zclock_mono () < deadline) {
        mesh_supervise_tick (sup);
        zclock_sleep (5);
    }
    assert_true (s_snap_restarts (sup, 0) >= 4);
    size_t quarantines = 0;
    json_t *q = NULL;
    for (size_t i = 0; i < json_array_size (fx->records); i++) {
        json_t *r = json_array_get (fx->records, i);
        if (strcmp (json_string_value (json_object_get (r, "type")), "quarantine") == 0) {
            quarantines++;
            q = r;
        }
    }
    assert_int_equal (quarantines, 1);
    assert_string_equal (json_string_value (json_object_get (q, "topic")), "metrics");
    assert_int_equal (json_integer_value (json_object_get (q, "partition")), 2);
    assert_int_equal (json_integer_value (json_object_get (q, "offset")), 5);
    assert_int_equal (json_integer_value (json_object_get (q, "strikes")), 3);
    assert_string_equal (json_string_value (json_object_get (q, "last_death")), "exit code 3");
    json_t *status = mesh_supervise_status (sup);
    assert_int_equal (json_integer_value (json_object_get (json_array_get (status, 0),
                                                           "quarantined")), 1);
    json_decref (status);
    //  Lives 1-3 were given nothing quarantined, the 4th and later the poison.
    char path[160];
    snprintf (path, sizeof path, "%s/marks", fx->dir);
    FILE *file = fopen (path, "r");
    assert_non_null (file);
    char line[16];
    int lives = 0, told = 0;
    while (fgets (line, sizeof line, file)) {
        lives++;
        told += atoi (line) == 1;
        if (lives <= 3)
            assert_int_equal (atoi (line), 0);
    }
    fclose (file);
    assert_true (lives >= 4);
    assert_int_equal (told, lives - 3);
    snprintf (path, sizeof path, "%s/quarantine.json", fx->dir);
    assert_int_equal (access (path, F_OK), 0);
    fx->cfg.state_dir = NULL;
}

static void
test_hold_and_release (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_supervise_t *sup = s_start (fx, fx->sleeper, 2);
    assert_null (s_auth (fx, 0, "cpu"));
    assert_null (s_auth (fx, 1, "mem"));
    s_hello (sup, "cpu", "cpu", s_snap_pid (sup, 0));
    s_hello (sup, "mem", "mem", s_snap_pid (sup, 1));
    assert_true (mesh_supervise_ready (sup));
    //  Held: every live one is asked to stop (these fakes never read the socket: the
    //  test kills them as a drained agent would exit), none is restarted.
    mesh_supervise_hold (sup, true, "storage down");
    assert_false (mesh_supervise_ready (sup));
    kill (s_snap_pid (sup, 0), SIGTERM);
    kill (s_snap_pid (sup, 1), SIGTERM);
    assert_true (s_tick_until (sup, 0, "held", 5000));
    assert_true (s_tick_until (sup, 1, "held", 5000));
    for (int i = 0; i < 40; i++) {
        mesh_supervise_tick (sup);
        zclock_sleep (5);
    }
    assert_int_equal (mesh_supervise_alive (sup), 0);
    assert_string_equal (s_state (sup, 0), "held");
    assert_false (mesh_supervise_ready (sup));
    char *summary = mesh_supervise_summary (sup);
    assert_non_null (strstr (summary, "held: storage down"));
    free (summary);
    //  Released: started at once, not counted as restarts.
    mesh_supervise_hold (sup, false, NULL);
    assert_int_equal (mesh_supervise_alive (sup), 2);
    assert_string_equal (s_state (sup, 0), "starting");
    assert_int_equal (s_snap_restarts (sup, 0), 0);
    assert_int_equal (s_snap_restarts (sup, 1), 0);
}

int
main (void)
{
    if (!getenv ("MESH_LOG_LEVEL"))
        mesh_log_set_level (MESH_LOG_ERR - 1);      //  deaths and kills log on purpose
    zsys_init ();
    zsys_set_logstream (NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_crash_loop_backs_off_then_fails, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_exec_failure_is_a_death, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_hello_running_ready, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_counters_survive_death, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_heartbeat_backends, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_heartbeat_hist_and_lag, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_liveness_kills_the_silent, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_punish_kills, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_stop, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_stop_during_backoff, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_only_authenticated_peers_count, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_signal_deaths_are_recorded, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_agent_bug_recorded_not_killed, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_poison_is_quarantined, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_hold_and_release, s_setup, s_teardown),
    };
    int rc = cmocka_run_group_tests_name ("supervise", tests, NULL, NULL);
    zsys_shutdown ();
    return rc;
}

/*  test_supervise - the agent lifecycle, driven with fake agents.
 *
 *  The "agents" are shell scripts written to a temporary directory: one exits at
 *  once with code 3 (a crash loop), one execs sleep (an agent that never talks).
 *  The test plays the supervisor's main loop: it calls mesh_supervise_tick every few
 *  milliseconds and delivers hello and heartbeat bodies itself, as daemon/main.c
 *  does after mesh_proto_recv.  States are read back through mesh_supervise_status,
 *  the same JSON meshctl shows.
 *
 *  Times are only ever lower bounds the code guarantees (a restart never comes
 *  before its backoff is over), never upper bounds a slow machine could miss.
 */
#include "supervise.h"
#include "log.h"
#include "proto.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

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
    if (s_write_script (fx->crash, "exit 3") || s_write_script (fx->sleeper, "exec sleep 30"))
        return -1;
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
    nftw (fx->dir, s_rm, 8, FTW_DEPTH | FTW_PHYS);
    free (fx);
    return 0;
}

static mesh_supervise_t *
s_start (fixture_t *fx, const char *binary, size_t agents)
{
    fx->cfg.agent_count = agents;
    fx->sup = mesh_supervise_new (&fx->cfg, binary, "meshd.yaml", "ipc://unused/agents.ipc",
                                  "127.0.0.1:9", fx->router);
    assert_non_null (fx->sup);
    return fx->sup;
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
    assert_true (mesh_supervise_ready (sup));       //  failed instances do not block ready
    assert_int_equal (mesh_supervise_alive (sup), 0);
    char *summary = mesh_supervise_summary (sup);
    assert_string_equal (summary, "0/1 agents running, 1 failed, 0 decisions");
    free (summary);

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

    //  Hellos that do not count: an unknown peer, a peer naming another agent.
    s_hello (sup, "disk/0", "disk", 1);
    s_hello (sup, "cpu/0", "mem", mem.pid);
    s_hello (sup, "cpux", "cpu", cpu.pid);
    assert_string_equal (s_state (sup, 0), "starting");
    assert_string_equal (s_state (sup, 1), "starting");

    s_hello (sup, "cpu/0", "cpu", cpu.pid);
    assert_string_equal (s_state (sup, 0), "running");
    assert_string_equal (s_state (sup, 1), "starting");
    assert_false (mesh_supervise_ready (sup));
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

static void
test_liveness_kills_the_silent (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    fx->cfg.liveness_timeout_ms = 500;
    mesh_supervise_t *sup = s_start (fx, fx->sleeper, 2);
    snap_t snap;
    s_snap (sup, 1, &snap);
    json_decref (snap.counters);
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
        cmocka_unit_test_setup_teardown (test_liveness_kills_the_silent, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_punish_kills, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_stop, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_stop_during_backoff, s_setup, s_teardown),
    };
    int rc = cmocka_run_group_tests_name ("supervise", tests, NULL, NULL);
    zsys_shutdown ();
    return rc;
}

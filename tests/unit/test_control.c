/*  test_control - the replies meshctl gets: ping, status, and an unknown command.
 *
 *  mesh_control_reply builds the CTL_REPLY body from borrowed snapshots; every body
 *  it returns must pass the protocol's own schema check, so that the supervisor
 *  never has a reply refused on the way out.
 */
#include "control.h"
#include "log.h"
#include "proto.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

static json_t *
s_request (const char *cmd)
{
    return json_pack ("{ss}", "cmd", cmd);
}

static void
test_ping (void **state)
{
    json_t *request = s_request ("ping");
    json_t *reply = mesh_control_reply (request, NULL, NULL);
    assert_non_null (reply);
    assert_null (mesh_proto_check (MESH_MSG_CTL_REPLY, reply));
    assert_true (json_is_true (json_object_get (reply, "ok")));
    assert_string_equal (json_string_value (json_object_get (reply, "result")), "pong");
    assert_null (json_object_get (reply, "error"));
    json_decref (reply);
    json_decref (request);
}

static void
test_status_carries_both_snapshots (void **state)
{
    json_t *request = s_request ("status");
    json_t *daemon = json_pack ("{ss sI}", "config", "meshd.yaml", "uptime_s", (json_int_t) 12);
    json_t *agents = json_pack ("[{ss ss}]", "name", "cpu-1", "state", "running");
    json_t *reply = mesh_control_reply (request, daemon, agents);
    assert_non_null (reply);
    assert_null (mesh_proto_check (MESH_MSG_CTL_REPLY, reply));
    assert_true (json_is_true (json_object_get (reply, "ok")));
    json_t *result = json_object_get (reply, "result");
    assert_true (json_is_object (result));
    assert_true (json_equal (json_object_get (result, "daemon"), daemon));
    assert_true (json_equal (json_object_get (result, "agents"), agents));
    json_decref (reply);
    //  The snapshots were borrowed: still ours, exactly once.
    assert_int_equal (daemon->refcount, 1);
    assert_int_equal (agents->refcount, 1);
    assert_int_equal (request->refcount, 1);
    json_decref (daemon);
    json_decref (agents);
    json_decref (request);
}

static void
test_unknown_command (void **state)
{
    const char *cmds[] = {"reboot", "", "STATUS", "ping ", "status\n"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        json_t *request = s_request (cmds[i]);
        json_t *reply = mesh_control_reply (request, NULL, NULL);
        assert_non_null (reply);
        assert_null (mesh_proto_check (MESH_MSG_CTL_REPLY, reply));
        assert_true (json_is_false (json_object_get (reply, "ok")));
        assert_null (json_object_get (reply, "result"));
        const char *error = json_string_value (json_object_get (reply, "error"));
        assert_non_null (error);
        assert_non_null (strstr (error, "unknown command"));
        json_decref (reply);
        json_decref (request);
    }
}

int
main (void)
{
    if (!getenv ("MESH_LOG_LEVEL"))
        mesh_log_set_level (MESH_LOG_ERR - 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_ping),
        cmocka_unit_test (test_status_carries_both_snapshots),
        cmocka_unit_test (test_unknown_command),
    };
    return cmocka_run_group_tests_name ("control", tests, NULL, NULL);
}

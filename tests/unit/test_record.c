/*  test_record - the agent's side of the decision ledger, against a fake supervisor.
 *
 *  The supervisor here is a CZMQ actor with a ROUTER on an inproc endpoint that
 *  answers each request through a per-test reply function: acknowledge, refuse,
 *  stay silent, answer late, or answer a lookup/pending request.  The real ledger is
 *  not involved (test_ledger.c covers it); what is pinned here is the request/reply
 *  contract mesh_record_* promise: 0 only on an acknowledgement of the same id,
 *  -1 on refusal or silence within the timeout, and replies to earlier requests that
 *  arrive late are not mistaken for the answer to the current one.  Every socket
 *  authenticates first: the server counts AUTH messages apart and keeps the last one.
 */
#include "record.h"
#include "log.h"
#include "proto.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <czmq.h>
#include <stdlib.h>
#include <string.h>

#define ID_A "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
#define ID_B "deadbeef00000000000000000000000000000000000000000000000000000001"
#define ID_C "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

typedef struct _server_t server_t;
//  Answer MSG (the Nth request, from 0) on ROUTER.
typedef void (reply_fn_t) (server_t *server, zsock_t *router, mesh_msg_t *msg, int nth);

struct _server_t {
    char endpoint[64];
    reply_fn_t *reply;
    zactor_t *actor;
    //  Seen by the server thread only while it runs; read by the test after destroy.
    int requests;
    mesh_msg_type_t last_type;
    char last_routing[64];
    json_t *last_body;
    char *previous_id;              //  the id of the request before this one
    int auths;                      //  AUTH messages, each the first from its routing id
    char auth_routing[64];
    json_t *auth_body;
};

static int s_endpoints;

static const char *
s_request_id (mesh_msg_t *msg)
{
    json_t *record = json_object_get (msg->body, "record");
    return json_string_value (json_object_get (record ? record : msg->body, "id"));
}

static void
s_server_actor (zsock_t *pipe, void *args)
{
    server_t *server = (server_t *) args;
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    zsock_set_linger (router, 0);
    int rc = zsock_bind (router, "%s", server->endpoint);
    zsock_signal (pipe, rc == 0 ? 0 : 1);
    zpoller_t *poller = zpoller_new (pipe, router, NULL);
    while (rc == 0) {
        void *which = zpoller_wait (poller, -1);
        if (which == pipe || !which)
            break;                  //  $TERM
        mesh_msg_t *msg = mesh_proto_recv (router, true, NULL, NULL);
        if (!msg)
            continue;
        if (msg->type == MESH_MSG_AUTH) {
            server->auths++;
            snprintf (server->auth_routing, sizeof server->auth_routing, "%s", msg->routing_id);
            json_decref (server->auth_body);
            server->auth_body = json_incref (msg->body);
            mesh_msg_destroy (&msg);
            continue;
        }
        server->last_type = msg->type;
        snprintf (server->last_routing, sizeof server->last_routing, "%s", msg->routing_id);
        json_decref (server->last_body);
        server->last_body = json_incref (msg->body);
        server->reply (server, router, msg, server->requests++);
        free (server->previous_id);
        server->previous_id = s_request_id (msg) ? strdup (s_request_id (msg)) : NULL;
        mesh_msg_destroy (&msg);
    }
    zpoller_destroy (&poller);
    zsock_destroy (&router);
}

static server_t *
s_server_new (reply_fn_t *reply)
{
    server_t *server = (server_t *) calloc (1, sizeof *server);
    snprintf (server->endpoint, sizeof server->endpoint, "inproc://test_record.%d",
              s_endpoints++);
    server->reply = reply;
    server->actor = zactor_new (s_server_actor, server);
    assert_non_null (server->actor);
    return server;
}

static void
s_server_destroy (server_t **server_p)
{
    server_t *server = *server_p;
    zactor_destroy (&server->actor);
    json_decref (server->last_body);
    json_decref (server->auth_body);
    free (server->previous_id);
    free (server);
    *server_p = NULL;
}

static void
s_send (zsock_t *router, const char *to, mesh_msg_type_t type, json_t *body)
{
    assert_int_equal (mesh_proto_send (router, to, type, body), 0);
    json_decref (body);
}

//  ---------------------------------------------------------------------------------------
//  Reply functions

static void
s_reply_ack (server_t *server, zsock_t *router, mesh_msg_t *msg, int nth)
{
    s_send (router, msg->routing_id, MESH_MSG_ACK,
            json_pack ("{ss sI}", "id", s_request_id (msg), "seq", (json_int_t) (100 + nth)));
}

static void
s_reply_error (server_t *server, zsock_t *router, mesh_msg_t *msg, int nth)
{
    s_send (router, msg->routing_id, MESH_MSG_ERROR,
            json_pack ("{ss ss}", "reason", "ledger refused it", "id", s_request_id (msg)));
}

static void
s_reply_nothing (server_t *server, zsock_t *router, mesh_msg_t *msg, int nth)
{
}

//  The first request goes unanswered; from the second on, the answer to the previous
//  request arrives first (late), then noise (a garbage message, an ERROR about another
//  id, a reply of the wrong type about this id), then the real answer.
static void
s_reply_late (server_t *server, zsock_t *router, mesh_msg_t *msg, int nth)
{
    if (nth == 0)
        return;
    const char *id = s_request_id (msg);
    s_send (router, msg->routing_id, MESH_MSG_ACK,
            json_pack ("{ss sI}", "id", server->previous_id, "seq", (json_int_t) 1));
    zmsg_t *garbage = zmsg_new ();
    zmsg_addstr (garbage, msg->routing_id);
    zmsg_addstr (garbage, "not a header");
    zmsg_addstr (garbage, "{}");
    assert_int_equal (zmsg_send (&garbage, router), 0);
    s_send (router, msg->routing_id, MESH_MSG_ERROR,
            json_pack ("{ss ss}", "reason", "about something else", "id", ID_C));
    s_send (router, msg->routing_id, MESH_MSG_ERROR, json_pack ("{ss}", "reason", "no id"));
    s_send (router, msg->routing_id, MESH_MSG_LOOKUP_REPLY,
            json_pack ("{ss ss}", "id", id, "state", "complete"));
    s_send (router, msg->routing_id, MESH_MSG_ACK,
            json_pack ("{ss sI}", "id", id, "seq", (json_int_t) 2));
}

static void
s_reply_lookup (server_t *server, zsock_t *router, mesh_msg_t *msg, int nth)
{
    const char *id = s_request_id (msg);
    json_t *reply;
    if (strcmp (id, ID_A) == 0)
        reply = json_pack ("{ss ss}", "id", id, "state", "none");
    else
    if (strcmp (id, ID_B) == 0)
        reply = json_pack ("{ss ss s{ss ss ss}}", "id", id, "state", "decided", "decision",
                           "type", "decision", "id", id, "agent", "cpu");
    else
        reply = json_pack ("{ss ss s{ss}}", "id", id, "state", "complete", "decision", "type",
                           "decision");
    s_send (router, msg->routing_id, MESH_MSG_LOOKUP_REPLY, reply);
}

static void
s_reply_pending (server_t *server, zsock_t *router, mesh_msg_t *msg, int nth)
{
    const char *agent = s_request_id (msg);
    json_t *decisions = json_array ();
    if (strcmp (agent, "cpu") == 0) {
        json_array_append_new (decisions,
                               json_pack ("{ss ss ss}", "type", "decision", "id", ID_A, "agent",
                                          "cpu"));
        json_array_append_new (decisions,
                               json_pack ("{ss ss ss}", "type", "decision", "id", ID_B, "agent",
                                          "cpu"));
    }
    //  A pending reply about another agent first: skipped.
    s_send (router, msg->routing_id, MESH_MSG_PENDING_REPLY,
            json_pack ("{ss s[]}", "id", "other", "decisions"));
    s_send (router, msg->routing_id, MESH_MSG_PENDING_REPLY,
            json_pack ("{ss so}", "id", agent, "decisions", decisions));
}

static json_t *
s_decision (const char *id)
{
    return json_pack ("{ss ss ss s{ss}}", "type", "decision", "id", id, "agent", "cpu", "action",
                      "name", "escalate");
}

static json_t *
s_outcome (const char *id)
{
    return json_pack ("{ss ss ss ss}", "type", "outcome", "id", id, "agent", "cpu", "status",
                      "done");
}

//  ---------------------------------------------------------------------------------------

static void
test_new_refuses_bad_endpoint (void **state)
{
    assert_null (mesh_record_new ("nonsense://nowhere", "cpu-1/0", 100));
    mesh_record_t *record = NULL;
    mesh_record_destroy (&record);      //  safe on NULL
    mesh_record_destroy (NULL);
}

static void
test_decision_acknowledged (void **state)
{
    server_t *server = s_server_new (s_reply_ack);
    mesh_record_t *record = mesh_record_new (server->endpoint, "cpu-1/0", 2000);
    assert_non_null (record);
    json_t *decision = s_decision (ID_A);
    int64_t seq = -1;
    assert_int_equal (mesh_record_decision (record, decision, &seq), 0);
    assert_int_equal (seq, 100);
    assert_int_equal (decision->refcount, 1);           //  borrowed, not kept
    json_t *outcome = s_outcome (ID_A);
    assert_int_equal (mesh_record_outcome (record, outcome, &seq), 0);
    assert_int_equal (seq, 101);
    assert_int_equal (mesh_record_outcome (record, outcome, NULL), 0);    //  seq_p optional
    mesh_record_destroy (&record);
    assert_null (record);
    s_server_destroy (&server);
    json_decref (decision);
    json_decref (outcome);
}

static void
test_what_the_supervisor_sees (void **state)
{
    server_t *server = s_server_new (s_reply_ack);
    mesh_record_t *record = mesh_record_new (server->endpoint, "cpu-1/2", 2000);
    json_t *decision = s_decision (ID_A);
    assert_int_equal (mesh_record_decision (record, decision, NULL), 0);
    mesh_record_destroy (&record);
    zactor_destroy (&server->actor);    //  joins the server thread: its fields are ours now
    assert_int_equal (server->requests, 1);
    assert_int_equal (server->last_type, MESH_MSG_DECISION);
    //  "<identity>.<16 hex>": a closed socket's routing id is never reused.
    assert_int_equal (strlen (server->last_routing), strlen ("cpu-1/2.") + 16);
    assert_memory_equal (server->last_routing, "cpu-1/2.", 8);
    //  It authenticated first, from the same routing id, with the process's credentials.
    assert_int_equal (server->auths, 1);
    assert_string_equal (server->auth_routing, server->last_routing);
    assert_string_equal (json_string_value (json_object_get (server->auth_body, "instance")),
                         "cpu-1");
    assert_string_equal (json_string_value (json_object_get (server->auth_body, "token")),
                         "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    assert_true (json_equal (json_object_get (server->last_body, "record"), decision));
    json_decref (decision);
    s_server_destroy (&server);
}

static void
test_refusal_is_failure (void **state)
{
    server_t *server = s_server_new (s_reply_error);
    mesh_record_t *record = mesh_record_new (server->endpoint, "cpu-1/0", 2000);
    json_t *decision = s_decision (ID_A);
    int64_t seq = -1;
    assert_int_equal (mesh_record_decision (record, decision, &seq), -1);
    assert_int_equal (seq, -1);
    json_t *outcome = s_outcome (ID_A);
    assert_int_equal (mesh_record_outcome (record, outcome, &seq), -1);
    mesh_record_state_t st = MESH_RECORD_COMPLETE;
    json_t *got = json_true ();
    assert_int_equal (mesh_record_lookup (record, ID_A, &st, &got), -1);
    assert_null (got);
    json_decref (decision);
    json_decref (outcome);
    mesh_record_destroy (&record);
    s_server_destroy (&server);
}

static void
test_silence_times_out (void **state)
{
    server_t *server = s_server_new (s_reply_nothing);
    mesh_record_t *record = mesh_record_new (server->endpoint, "cpu-1/0", 50);
    json_t *decision = s_decision (ID_A);
    int64_t seq = -1;
    assert_int_equal (mesh_record_decision (record, decision, &seq), -1);
    assert_int_equal (seq, -1);
    mesh_record_state_t st;
    assert_int_equal (mesh_record_lookup (record, ID_A, &st, NULL), -1);
    json_t *pending = json_true ();
    assert_int_equal (mesh_record_pending (record, "cpu", &pending), -1);
    assert_null (pending);
    json_decref (decision);
    mesh_record_destroy (&record);
    s_server_destroy (&server);
}

static void
test_no_supervisor_times_out (void **state)
{
    //  Connected to an endpoint nobody bound: the request waits in the socket, the call
    //  gives up after its timeout.
    mesh_record_t *record = mesh_record_new ("inproc://test_record.nobody", "cpu-1/0", 30);
    assert_non_null (record);
    json_t *decision = s_decision (ID_A);
    assert_int_equal (mesh_record_decision (record, decision, NULL), -1);
    json_decref (decision);
    mesh_record_destroy (&record);
}

static void
test_late_reply_is_skipped (void **state)
{
    server_t *server = s_server_new (s_reply_late);
    mesh_record_t *record = mesh_record_new (server->endpoint, "cpu-1/0", 200);
    json_t *first = s_decision (ID_A);
    json_t *second = s_decision (ID_B);
    int64_t seq = -1;
    assert_int_equal (mesh_record_decision (record, first, &seq), -1);      //  unanswered
    assert_int_equal (mesh_record_decision (record, second, &seq), 0);
    assert_int_equal (seq, 2);          //  not 1: that was the late answer about ID_A
    json_decref (first);
    json_decref (second);
    mesh_record_destroy (&record);
    s_server_destroy (&server);
}

static void
test_invalid_records_are_not_sent (void **state)
{
    server_t *server = s_server_new (s_reply_ack);
    mesh_record_t *record = mesh_record_new (server->endpoint, "cpu-1/0", 2000);
    json_t *no_id = json_pack ("{ss ss}", "type", "decision", "agent", "cpu");
    assert_int_equal (mesh_record_decision (record, no_id, NULL), -1);
    json_t *bad_id = s_decision ("ABC");
    assert_int_equal (mesh_record_decision (record, bad_id, NULL), -1);
    json_t *no_status = json_pack ("{ss ss ss}", "type", "outcome", "id", ID_A, "agent", "cpu");
    assert_int_equal (mesh_record_outcome (record, no_status, NULL), -1);
    mesh_record_state_t st;
    assert_int_equal (mesh_record_lookup (record, "short", &st, NULL), -1);
    //  The connection is still good afterwards.
    json_t *good = s_decision (ID_C);
    int64_t seq = -1;
    assert_int_equal (mesh_record_decision (record, good, &seq), 0);
    assert_int_equal (seq, 100);        //  the first request the server saw
    json_decref (no_id);
    json_decref (bad_id);
    json_decref (no_status);
    json_decref (good);
    mesh_record_destroy (&record);
    zactor_destroy (&server->actor);
    assert_int_equal (server->requests, 1);
    s_server_destroy (&server);
}

//  A record the supervisor would refuse (too deep for its parser, too large for the
//  protocol) is never sent: a minimal record saying so goes instead, it is acknowledged,
//  and the caller's decision now says what was recorded - no action.
static void
s_expect_replaced (json_t *hostile, const char *why)
{
    server_t *server = s_server_new (s_reply_ack);
    mesh_record_t *record = mesh_record_new (server->endpoint, "cpu-1/0", 2000);
    json_t *decision = s_decision (ID_A);
    json_object_set_new (decision, "proposal", hostile);
    char text[128];
    assert_non_null (mesh_record_check (decision, text, sizeof text));
    assert_non_null (strstr (text, why));
    int64_t seq = -1;
    assert_int_equal (mesh_record_decision (record, decision, &seq), 0);
    assert_int_equal (seq, 100);
    mesh_record_destroy (&record);
    zactor_destroy (&server->actor);
    json_t *sent = json_object_get (server->last_body, "record");
    assert_true (json_equal (sent, decision));
    assert_string_equal (json_string_value (json_object_get (sent, "id")), ID_A);
    assert_string_equal (json_string_value (json_object_get (sent, "agent")), "cpu");
    assert_string_equal (json_string_value (json_object_get (sent, "verdict")), "record_refused");
    assert_true (json_is_null (json_object_get (sent, "action")));
    assert_null (json_object_get (sent, "proposal"));
    json_t *refused = json_object_get (sent, "record_refused");
    assert_non_null (strstr (json_string_value (json_object_get (refused, "why")), why));
    assert_null (mesh_record_check (sent, text, sizeof text));
    json_decref (decision);
    s_server_destroy (&server);
}

static void
test_oversize_record_replaced (void **state)
{
    //  2,100 levels: more than the supervisor's parser takes (2,048).
    json_t *deep = json_array ();
    for (int i = 0; i < 2100; i++) {
        json_t *outer = json_array ();
        json_array_append_new (outer, deep);
        deep = outer;
    }
    s_expect_replaced (deep, "nested deeper than 128 levels");
    //  5 MB: more than the protocol's 4 MiB body.
    size_t big = 5 * 1024 * 1024;
    char *text = malloc (big + 1);
    memset (text, 'x', big);
    text[big] = 0;
    s_expect_replaced (json_string (text), "over the limit of");
    free (text);
    //  What fits is sent as it is.
    char why[128];
    json_t *decision = s_decision (ID_B);
    assert_null (mesh_record_check (decision, why, sizeof why));
    json_decref (decision);
}

static void
test_lookup_states (void **state)
{
    server_t *server = s_server_new (s_reply_lookup);
    mesh_record_t *record = mesh_record_new (server->endpoint, "cpu-1/1", 2000);
    mesh_record_state_t st = MESH_RECORD_COMPLETE;
    json_t *decision = json_true ();

    assert_int_equal (mesh_record_lookup (record, ID_A, &st, &decision), 0);
    assert_int_equal (st, MESH_RECORD_NONE);
    assert_null (decision);

    assert_int_equal (mesh_record_lookup (record, ID_B, &st, &decision), 0);
    assert_int_equal (st, MESH_RECORD_DECIDED);
    assert_non_null (decision);
    assert_string_equal (json_string_value (json_object_get (decision, "id")), ID_B);
    assert_string_equal (json_string_value (json_object_get (decision, "agent")), "cpu");
    json_decref (decision);

    assert_int_equal (mesh_record_lookup (record, ID_C, &st, &decision), 0);
    assert_int_equal (st, MESH_RECORD_COMPLETE);
    assert_non_null (decision);
    json_decref (decision);

    //  decision_p is optional.
    st = MESH_RECORD_NONE;
    assert_int_equal (mesh_record_lookup (record, ID_B, &st, NULL), 0);
    assert_int_equal (st, MESH_RECORD_DECIDED);
    mesh_record_destroy (&record);
    zactor_destroy (&server->actor);
    assert_int_equal (server->last_type, MESH_MSG_LOOKUP);
    s_server_destroy (&server);
}

static void
test_pending (void **state)
{
    server_t *server = s_server_new (s_reply_pending);
    mesh_record_t *record = mesh_record_new (server->endpoint, "cpu-1/0", 2000);
    json_t *decisions = NULL;
    assert_int_equal (mesh_record_pending (record, "cpu", &decisions), 0);
    assert_true (json_is_array (decisions));
    assert_int_equal (json_array_size (decisions), 2);
    assert_string_equal (json_string_value (json_object_get (json_array_get (decisions, 1), "id")),
                         ID_B);
    json_decref (decisions);
    assert_int_equal (mesh_record_pending (record, "mem", &decisions), 0);
    assert_true (json_is_array (decisions));
    assert_int_equal (json_array_size (decisions), 0);
    json_decref (decisions);
    mesh_record_destroy (&record);
    s_server_destroy (&server);
}

int
main (void)
{
    if (!getenv ("MESH_LOG_LEVEL"))
        mesh_log_set_level (MESH_LOG_ERR - 1);      //  the failure paths log on purpose
    zsys_init ();
    zsys_set_logstream (NULL);
    uint8_t token[MESH_PROTO_TOKEN_SIZE];
    for (size_t i = 0; i < sizeof token; i++)
        token[i] = (uint8_t) i;
    mesh_record_auth_set ("cpu-1", token, sizeof token);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_new_refuses_bad_endpoint),
        cmocka_unit_test (test_decision_acknowledged),
        cmocka_unit_test (test_what_the_supervisor_sees),
        cmocka_unit_test (test_refusal_is_failure),
        cmocka_unit_test (test_silence_times_out),
        cmocka_unit_test (test_no_supervisor_times_out),
        cmocka_unit_test (test_late_reply_is_skipped),
        cmocka_unit_test (test_invalid_records_are_not_sent),
        cmocka_unit_test (test_oversize_record_replaced),
        cmocka_unit_test (test_lookup_states),
        cmocka_unit_test (test_pending),
    };
    int rc = cmocka_run_group_tests_name ("record", tests, NULL, NULL);
    zsys_shutdown ();
    return rc;
}

/*  test_proto - framing and arrival checks of every cross-process message.
 *
 *  Messages travel over a real inproc DEALER/ROUTER pair.  Valid ones are sent with
 *  mesh_proto_send; broken ones are built frame by frame here, so that every check
 *  mesh_proto_recv makes (frames, magic, version, type, size, JSON, schema) is seen
 *  to refuse what it should, and the sender of a refused message is still known.
 *  Routing ids are checked both ways: a peer-chosen text identity and a binary one
 *  made up by ZeroMQ (which travels as "~hex") must each get its reply.
 */
#include "proto.h"
#include "log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#define ID_A "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"

typedef struct {
    zsock_t *router;
    zsock_t *dealer;                //  identity "agent-1/0"
    char endpoint[64];
} fixture_t;

static int s_endpoints;

static int
s_setup (void **state)
{
    fixture_t *fx = (fixture_t *) calloc (1, sizeof *fx);
    snprintf (fx->endpoint, sizeof fx->endpoint, "inproc://test_proto.%d", s_endpoints++);
    fx->router = zsock_new (ZMQ_ROUTER);
    zsock_set_router_mandatory (fx->router, 1);
    zsock_set_rcvtimeo (fx->router, 2000);
    zsock_set_linger (fx->router, 0);
    if (zsock_bind (fx->router, "%s", fx->endpoint) != 0)
        return -1;
    fx->dealer = zsock_new (ZMQ_DEALER);
    zsock_set_identity (fx->dealer, "agent-1/0");
    zsock_set_rcvtimeo (fx->dealer, 2000);
    zsock_set_linger (fx->dealer, 0);
    if (zsock_connect (fx->dealer, "%s", fx->endpoint) != 0)
        return -1;
    *state = fx;
    return 0;
}

static int
s_teardown (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    zsock_destroy (&fx->dealer);
    zsock_destroy (&fx->router);
    free (fx);
    return 0;
}

//  Send raw frames from SOCK: a header of HEADER_LEN bytes (none when NULL) and BODY
//  (none when NULL), then EXTRA more frames of "x".
static void
s_send_raw (zsock_t *sock, const void *header, size_t header_len, const void *body,
            size_t body_len, int extra)
{
    zmsg_t *msg = zmsg_new ();
    if (header)
        zmsg_addmem (msg, header, header_len);
    if (body)
        zmsg_addmem (msg, body, body_len);
    for (int i = 0; i < extra; i++)
        zmsg_addstr (msg, "x");
    assert_int_equal (zmsg_send (&msg, sock), 0);
}

static void
s_send_typed (zsock_t *sock, byte type, const char *body)
{
    byte header[4] = {'M', 'S', MESH_PROTO_VERSION, type};
    s_send_raw (sock, header, sizeof header, body, strlen (body), 0);
}

//  Receive on the fixture's ROUTER, expecting a refusal; returns the reason and checks
//  that the sender is still known.
static const char *
s_refused (fixture_t *fx)
{
    const char *why = NULL;
    char *sender = NULL;
    mesh_msg_t *msg = mesh_proto_recv (fx->router, true, &why, &sender);
    assert_null (msg);
    assert_non_null (why);
    assert_non_null (sender);
    assert_string_equal (sender, "agent-1/0");
    free (sender);
    return why;
}

//  ---------------------------------------------------------------------------------------

static void
test_round_trip_dealer_to_router_and_back (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    json_t *hello = json_pack ("{ss ss si}", "agent", "cpu", "instance", "cpu-1", "pid", 42);
    assert_int_equal (mesh_proto_send (fx->dealer, NULL, MESH_MSG_HELLO, hello), 0);
    json_decref (hello);

    const char *why = NULL;
    char *sender = (char *) "untouched";
    mesh_msg_t *msg = mesh_proto_recv (fx->router, true, &why, &sender);
    assert_non_null (msg);
    assert_null (sender);               //  only set for refused messages
    assert_int_equal (msg->type, MESH_MSG_HELLO);
    assert_string_equal (msg->routing_id, "agent-1/0");
    assert_string_equal (json_string_value (json_object_get (msg->body, "agent")), "cpu");
    assert_int_equal (json_integer_value (json_object_get (msg->body, "pid")), 42);

    //  The reply finds the peer by its routing id.
    json_t *ack = json_pack ("{ss sI}", "id", ID_A, "seq", (json_int_t) 7);
    assert_int_equal (mesh_proto_send (fx->router, msg->routing_id, MESH_MSG_ACK, ack), 0);
    json_decref (ack);
    mesh_msg_destroy (&msg);
    assert_null (msg);

    msg = mesh_proto_recv (fx->dealer, false, &why, NULL);
    assert_non_null (msg);
    assert_int_equal (msg->type, MESH_MSG_ACK);
    assert_null (msg->routing_id);
    assert_int_equal (json_integer_value (json_object_get (msg->body, "seq")), 7);
    mesh_msg_destroy (&msg);
    mesh_msg_destroy (&msg);            //  safe twice
    mesh_msg_destroy (NULL);
}

static void
test_wire_format (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    //  Two frames (plus the routing id on the way out of the ROUTER): header, compact JSON.
    json_t *body = json_pack ("{ss}", "reason", "stop");
    assert_int_equal (mesh_proto_send (fx->router, "agent-1/0", MESH_MSG_SHUTDOWN, body), 0);
    json_decref (body);
    zmsg_t *msg = zmsg_recv (fx->dealer);
    assert_non_null (msg);
    assert_int_equal (zmsg_size (msg), 2);
    zframe_t *header = zmsg_first (msg);
    assert_int_equal (zframe_size (header), 4);
    const byte *h = zframe_data (header);
    assert_int_equal (h[0], 'M');
    assert_int_equal (h[1], 'S');
    assert_int_equal (h[2], MESH_PROTO_VERSION);
    assert_int_equal (h[3], MESH_MSG_SHUTDOWN);
    char *text = zframe_strdup (zmsg_next (msg));
    assert_string_equal (text, "{\"reason\":\"stop\"}");
    free (text);
    zmsg_destroy (&msg);
}

static void
test_send_refuses_invalid_body (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    //  NULL body means {}: HELLO requires fields, so it is refused.
    assert_int_equal (mesh_proto_send (fx->dealer, NULL, MESH_MSG_HELLO, NULL), -1);
    json_t *body = json_pack ("{ss}", "agent", "cpu");
    assert_int_equal (mesh_proto_send (fx->dealer, NULL, MESH_MSG_HELLO, body), -1);
    json_decref (body);
    body = json_pack ("{ss}", "id", "not-hex");
    assert_int_equal (mesh_proto_send (fx->dealer, NULL, MESH_MSG_LOOKUP, body), -1);
    assert_int_equal (mesh_proto_send (fx->dealer, NULL, (mesh_msg_type_t) 0, body), -1);
    assert_int_equal (mesh_proto_send (fx->dealer, NULL, MESH_MSG_COUNT_, body), -1);
    json_decref (body);
    body = json_array ();
    assert_int_equal (mesh_proto_send (fx->dealer, NULL, MESH_MSG_ERROR, body), -1);
    json_decref (body);
    //  Nothing of the above went out: the next message the router sees is this one.
    body = json_pack ("{ss}", "reason", "only this");
    assert_int_equal (mesh_proto_send (fx->dealer, NULL, MESH_MSG_ERROR, body), 0);
    json_decref (body);
    mesh_msg_t *msg = mesh_proto_recv (fx->router, true, NULL, NULL);
    assert_non_null (msg);
    assert_int_equal (msg->type, MESH_MSG_ERROR);
    assert_string_equal (json_string_value (json_object_get (msg->body, "reason")), "only this");
    mesh_msg_destroy (&msg);
}

static void
test_send_to_unknown_peer_fails (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    json_t *body = json_pack ("{ss}", "reason", "x");
    //  The fixture's router is mandatory: an unroutable id is an error, not a silent drop.
    assert_int_equal (mesh_proto_send (fx->router, "nobody/0", MESH_MSG_SHUTDOWN, body), -1);
    assert_int_equal (mesh_proto_send (fx->router, "~00deadbeef", MESH_MSG_SHUTDOWN, body), -1);
    json_decref (body);
}

static void
test_recv_framing_refusals (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    byte good[4] = {'M', 'S', MESH_PROTO_VERSION, MESH_MSG_ERROR};
    const char *body = "{\"reason\":\"r\"}";

    s_send_raw (fx->dealer, good, sizeof good, NULL, 0, 0);
    assert_string_equal (s_refused (fx), "wrong number of frames");
    s_send_raw (fx->dealer, good, sizeof good, body, strlen (body), 1);
    assert_string_equal (s_refused (fx), "wrong number of frames");

    byte magic[4] = {'M', 'X', MESH_PROTO_VERSION, MESH_MSG_ERROR};
    s_send_raw (fx->dealer, magic, sizeof magic, body, strlen (body), 0);
    assert_string_equal (s_refused (fx), "bad header");
    s_send_raw (fx->dealer, good, 3, body, strlen (body), 0);
    assert_string_equal (s_refused (fx), "bad header");
    byte longer[5] = {'M', 'S', MESH_PROTO_VERSION, MESH_MSG_ERROR, 0};
    s_send_raw (fx->dealer, longer, sizeof longer, body, strlen (body), 0);
    assert_string_equal (s_refused (fx), "bad header");

    byte version[4] = {'M', 'S', MESH_PROTO_VERSION + 1, MESH_MSG_ERROR};
    s_send_raw (fx->dealer, version, sizeof version, body, strlen (body), 0);
    assert_string_equal (s_refused (fx), "unsupported protocol version");

    s_send_typed (fx->dealer, 0, body);
    assert_string_equal (s_refused (fx), "unknown message type");
    s_send_typed (fx->dealer, MESH_MSG_COUNT_, body);
    assert_string_equal (s_refused (fx), "unknown message type");
    s_send_typed (fx->dealer, 0xff, body);
    assert_string_equal (s_refused (fx), "unknown message type");

    //  One byte over the limit, even if it were valid JSON.
    size_t size = MESH_PROTO_MAX_BODY + 1;
    char *big = (char *) malloc (size);
    memset (big, ' ', size);
    memcpy (big, body, strlen (body));
    s_send_raw (fx->dealer, good, sizeof good, big, size, 0);
    assert_string_equal (s_refused (fx), "body too large");
    //  At the limit it is read (and its trailing spaces are fine JSON).
    s_send_raw (fx->dealer, good, sizeof good, big, size - 1, 0);
    mesh_msg_t *msg = mesh_proto_recv (fx->router, true, NULL, NULL);
    assert_non_null (msg);
    mesh_msg_destroy (&msg);
    free (big);
}

static void
test_recv_body_refusals (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    s_send_typed (fx->dealer, MESH_MSG_ERROR, "{\"reason\":");
    assert_string_equal (s_refused (fx), "body is not valid JSON");
    s_send_typed (fx->dealer, MESH_MSG_ERROR, "");
    assert_string_equal (s_refused (fx), "body is not valid JSON");
    s_send_typed (fx->dealer, MESH_MSG_ERROR, "{\"reason\":\"a\",\"reason\":\"b\"}");
    assert_string_equal (s_refused (fx), "body is not valid JSON");
    s_send_typed (fx->dealer, MESH_MSG_ERROR, "[\"reason\"]");
    assert_string_equal (s_refused (fx), "body is not a JSON object");
    s_send_typed (fx->dealer, MESH_MSG_ERROR, "{}");
    assert_string_equal (s_refused (fx), "required field missing");
    s_send_typed (fx->dealer, MESH_MSG_ERROR, "{\"reason\":3}");
    assert_string_equal (s_refused (fx), "field has the wrong type");
    s_send_typed (fx->dealer, MESH_MSG_HELLO,
                  "{\"agent\":\"a\",\"instance\":\"a-1\",\"pid\":1.5}");
    assert_string_equal (s_refused (fx), "field has the wrong type");
    s_send_typed (fx->dealer, MESH_MSG_LOOKUP, "{\"id\":\"abc\"}");
    assert_string_equal (s_refused (fx), "lookup id must be 64 lower-case hex digits");
    s_send_typed (fx->dealer, MESH_MSG_LOOKUP_REPLY, "{\"id\":\"x\",\"state\":\"maybe\"}");
    assert_string_equal (s_refused (fx), "lookup state must be none, decided or complete");
    s_send_typed (fx->dealer, MESH_MSG_DECISION,
                  "{\"record\":{\"type\":\"outcome\",\"id\":\"" ID_A "\",\"agent\":\"a\","
                  "\"status\":\"done\"}}");
    assert_string_equal (s_refused (fx), "record.type does not match the message type");

    //  A valid message after all that still gets through: refusals leave no residue.
    s_send_typed (fx->dealer, MESH_MSG_ERROR, "{\"reason\":\"fine\",\"id\":\"x\"}");
    mesh_msg_t *msg = mesh_proto_recv (fx->router, true, NULL, NULL);
    assert_non_null (msg);
    assert_int_equal (msg->type, MESH_MSG_ERROR);
    mesh_msg_destroy (&msg);
}

static void
test_recv_on_dealer_refusal_has_no_sender (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    //  Reply side: a DEALER receiving garbage has no routing id to report.
    zmsg_t *raw = zmsg_new ();
    zmsg_addstr (raw, "agent-1/0");
    byte header[4] = {'M', 'S', 9, MESH_MSG_ACK};
    zmsg_addmem (raw, header, sizeof header);
    zmsg_addstr (raw, "{}");
    assert_int_equal (zmsg_send (&raw, fx->router), 0);
    const char *why = NULL;
    char *sender = (char *) "untouched";
    assert_null (mesh_proto_recv (fx->dealer, false, &why, &sender));
    assert_string_equal (why, "unsupported protocol version");
    assert_null (sender);
}

static void
test_recv_timeout_is_interrupted (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    zsock_set_rcvtimeo (fx->router, 10);
    const char *why = NULL;
    assert_null (mesh_proto_recv (fx->router, true, &why, NULL));
    assert_string_equal (why, "interrupted");
}

//  Every type's schema, through mesh_proto_check directly.
static void
test_check_schemas (void **state)
{
    static const struct {
        mesh_msg_type_t type;
        const char *body;
        const char *why;            //  NULL: valid
    } cases[] = {
        {MESH_MSG_HELLO, "{\"agent\":\"a\",\"instance\":\"a-1\",\"pid\":12}", NULL},
        {MESH_MSG_HELLO, "{\"agent\":\"a\",\"instance\":\"a-1\"}", "required field missing"},
        {MESH_MSG_HELLO, "{\"agent\":1,\"instance\":\"a-1\",\"pid\":1}",
         "field has the wrong type"},
        {MESH_MSG_HEARTBEAT, "{\"instance\":\"a-1\",\"counters\":{}}", NULL},
        {MESH_MSG_HEARTBEAT, "{\"instance\":\"a-1\",\"counters\":[]}", "field has the wrong type"},
        {MESH_MSG_SHUTDOWN, "{\"reason\":\"x\"}", NULL},
        {MESH_MSG_AUTH, "{\"instance\":\"ops\",\"token\":\"" ID_A "\"}", NULL},
        {MESH_MSG_AUTH, "{\"instance\":\"ops#1\",\"token\":\"" ID_A "\",\"x\":1}", NULL},
        {MESH_MSG_AUTH, "{\"instance\":\"ops\"}", "required field missing"},
        {MESH_MSG_AUTH, "{\"token\":\"" ID_A "\"}", "required field missing"},
        {MESH_MSG_AUTH, "{\"instance\":\"ops\",\"token\":7}", "field has the wrong type"},
        {MESH_MSG_AUTH, "{\"instance\":\"\",\"token\":\"" ID_A "\"}",
         "auth instance must be 1-200 characters without '/'"},
        {MESH_MSG_AUTH, "{\"instance\":\"ops/w0\",\"token\":\"" ID_A "\"}",
         "auth instance must be 1-200 characters without '/'"},
        {MESH_MSG_AUTH, "{\"instance\":\"ops\",\"token\":\"abc\"}",
         "auth token must be 64 lower-case hex digits"},
        {MESH_MSG_AUTH, "{\"instance\":\"ops\",\"token\":\""
                        "A1B2C3D4E5F60718293A4B5C6D7E8F90A1B2C3D4E5F60718293A4B5C6D7E8F90\"}",
         "auth token must be 64 lower-case hex digits"},
        {MESH_MSG_SHUTDOWN, "{\"reason\":null}", "field has the wrong type"},
        {MESH_MSG_DECISION, "{\"record\":{\"type\":\"decision\",\"id\":\"" ID_A
                            "\",\"agent\":\"a\"}}", NULL},
        {MESH_MSG_DECISION, "{\"record\":\"x\"}", "field has the wrong type"},
        {MESH_MSG_DECISION, "{\"record\":{\"id\":\"" ID_A "\",\"agent\":\"a\"}}",
         "record.type does not match the message type"},
        {MESH_MSG_DECISION, "{\"record\":{\"type\":\"decision\",\"id\":\"abc\",\"agent\":\"a\"}}",
         "record.id must be 64 lower-case hex digits"},
        {MESH_MSG_DECISION, "{\"record\":{\"type\":\"decision\",\"id\":\""
                            "A1B2C3D4E5F60718293A4B5C6D7E8F90A1B2C3D4E5F60718293A4B5C6D7E8F90"
                            "\",\"agent\":\"a\"}}", "record.id must be 64 lower-case hex digits"},
        {MESH_MSG_DECISION, "{\"record\":{\"type\":\"decision\",\"id\":\"" ID_A "0\","
                            "\"agent\":\"a\"}}", "record.id must be 64 lower-case hex digits"},
        {MESH_MSG_DECISION, "{\"record\":{\"type\":\"decision\",\"id\":\""
                            "g1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
                            "\",\"agent\":\"a\"}}", "record.id must be 64 lower-case hex digits"},
        {MESH_MSG_DECISION, "{\"record\":{\"type\":\"decision\",\"id\":7,\"agent\":\"a\"}}",
         "record.id must be 64 lower-case hex digits"},
        {MESH_MSG_DECISION, "{\"record\":{\"type\":\"decision\",\"id\":\"" ID_A "\"}}",
         "record.agent missing"},
        {MESH_MSG_DECISION, "{\"record\":{\"type\":\"decision\",\"id\":\"" ID_A
                            "\",\"agent\":\"\"}}", "record.agent missing"},
        {MESH_MSG_OUTCOME, "{\"record\":{\"type\":\"outcome\",\"id\":\"" ID_A
                           "\",\"agent\":\"a\",\"status\":\"done\"}}", NULL},
        {MESH_MSG_OUTCOME, "{\"record\":{\"type\":\"outcome\",\"id\":\"" ID_A
                           "\",\"agent\":\"a\"}}", "outcome record without status"},
        {MESH_MSG_OUTCOME, "{\"record\":{\"type\":\"outcome\",\"id\":\"" ID_A
                           "\",\"agent\":\"a\",\"status\":1}}", "outcome record without status"},
        {MESH_MSG_OUTCOME, "{\"record\":{\"type\":\"decision\",\"id\":\"" ID_A
                           "\",\"agent\":\"a\",\"status\":\"done\"}}",
         "record.type does not match the message type"},
        {MESH_MSG_ACK, "{\"id\":\"x\",\"seq\":1}", NULL},
        {MESH_MSG_ACK, "{\"id\":\"x\",\"seq\":\"1\"}", "field has the wrong type"},
        {MESH_MSG_LOOKUP, "{\"id\":\"" ID_A "\"}", NULL},
        {MESH_MSG_LOOKUP, "{\"id\":\"" ID_A "\",\"extra\":1}", NULL},
        {MESH_MSG_LOOKUP, "{\"id\":\"xyz\"}", "lookup id must be 64 lower-case hex digits"},
        {MESH_MSG_LOOKUP_REPLY, "{\"id\":\"x\",\"state\":\"none\"}", NULL},
        {MESH_MSG_LOOKUP_REPLY, "{\"id\":\"x\",\"state\":\"decided\",\"decision\":{}}", NULL},
        {MESH_MSG_LOOKUP_REPLY, "{\"id\":\"x\",\"state\":\"complete\"}", NULL},
        {MESH_MSG_LOOKUP_REPLY, "{\"id\":\"x\",\"state\":\"\"}",
         "lookup state must be none, decided or complete"},
        {MESH_MSG_LOOKUP_REPLY, "{\"id\":\"x\",\"state\":1}", "field has the wrong type"},
        {MESH_MSG_ERROR, "{\"reason\":\"r\"}", NULL},
        {MESH_MSG_CTL_REQUEST, "{\"cmd\":\"status\"}", NULL},
        {MESH_MSG_CTL_REQUEST, "{\"args\":[]}", "required field missing"},
        {MESH_MSG_CTL_REPLY, "{\"ok\":true}", NULL},
        {MESH_MSG_CTL_REPLY, "{\"ok\":false,\"error\":\"e\"}", NULL},
        {MESH_MSG_CTL_REPLY, "{\"ok\":1}", "field has the wrong type"},
        {MESH_MSG_PENDING, "{\"id\":\"cpu\"}", NULL},
        {MESH_MSG_PENDING_REPLY, "{\"id\":\"cpu\",\"decisions\":[]}", NULL},
        {MESH_MSG_PENDING_REPLY, "{\"id\":\"cpu\",\"decisions\":{}}", "field has the wrong type"},
        {(mesh_msg_type_t) 0, "{}", "unknown message type"},
        {MESH_MSG_COUNT_, "{}", "unknown message type"},
        {MESH_MSG_ERROR, "\"reason\"", "body is not a JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *body = json_loads (cases[i].body, JSON_DECODE_ANY, NULL);
        assert_non_null (body);
        const char *why = mesh_proto_check (cases[i].type, body);
        if (cases[i].why == NULL && why != NULL)
            fail_msg ("case %zu (%s): refused: %s", i, cases[i].body, why);
        if (cases[i].why != NULL) {
            if (why == NULL)
                fail_msg ("case %zu (%s): accepted, expected \"%s\"", i, cases[i].body,
                          cases[i].why);
            assert_string_equal (why, cases[i].why);
        }
        json_decref (body);
    }
    assert_string_equal (mesh_proto_check (MESH_MSG_ERROR, NULL), "body is not a JSON object");
    char long_name[202];
    memset (long_name, 'a', 201);
    long_name[201] = 0;
    json_t *auth = json_pack ("{ss ss}", "instance", long_name, "token", ID_A);
    assert_string_equal (mesh_proto_check (MESH_MSG_AUTH, auth),
                         "auth instance must be 1-200 characters without '/'");
    json_decref (auth);
}

//  A frame above MESH_PROTO_MAX_FRAME never reaches the receiver: ZMQ_MAXMSGSIZE closes
//  the connection (tcp here: the cap applies to network transports, ipc included; inproc
//  has no decoder).  A frame at the cap's size still passes.
static void
test_socket_caps_frames (void **state)
{
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    zsock_set_linger (router, 0);
    mesh_proto_limit (router);
    assert_int_equal (zsock_maxmsgsize (router), MESH_PROTO_MAX_FRAME);
    int port = zsock_bind (router, "tcp://127.0.0.1:*");
    assert_true (port > 0);
    zsock_t *big = zsock_new (ZMQ_DEALER);
    zsock_set_linger (big, 0);
    assert_int_equal (zsock_connect (big, "tcp://127.0.0.1:%d", port), 0);
    byte header[4] = {'M', 'S', MESH_PROTO_VERSION, MESH_MSG_ERROR};
    size_t size = MESH_PROTO_MAX_FRAME + 1;
    char *body = malloc (size);
    memset (body, ' ', size);
    s_send_raw (big, header, sizeof header, body, size, 0);
    zsock_set_rcvtimeo (router, 500);
    zmsg_t *got = zmsg_recv (router);
    assert_null (got);                      //  dropped with its connection
    //  A normal peer is served as before.
    zsock_t *small = zsock_new (ZMQ_DEALER);
    zsock_set_linger (small, 0);
    assert_int_equal (zsock_connect (small, "tcp://127.0.0.1:%d", port), 0);
    json_t *ok = json_pack ("{ss}", "reason", "small");
    assert_int_equal (mesh_proto_send (small, NULL, MESH_MSG_ERROR, ok), 0);
    json_decref (ok);
    zsock_set_rcvtimeo (router, 5000);
    mesh_msg_t *msg = mesh_proto_recv (router, true, NULL, NULL);
    assert_non_null (msg);
    mesh_msg_destroy (&msg);
    free (body);
    zsock_destroy (&small);
    zsock_destroy (&big);
    zsock_destroy (&router);
}

static void
test_type_names_and_endpoints (void **state)
{
    assert_string_equal (mesh_msg_type_name (MESH_MSG_HELLO), "hello");
    assert_string_equal (mesh_msg_type_name (MESH_MSG_LOOKUP_REPLY), "lookup_reply");
    assert_string_equal (mesh_msg_type_name (MESH_MSG_PENDING_REPLY), "pending_reply");
    assert_string_equal (mesh_msg_type_name (MESH_MSG_AUTH), "auth");
    assert_string_equal (mesh_msg_type_name ((mesh_msg_type_t) 0), "unknown");
    assert_string_equal (mesh_msg_type_name (MESH_MSG_COUNT_), "unknown");
    for (int t = 1; t < MESH_MSG_COUNT_; t++)
        assert_string_not_equal (mesh_msg_type_name ((mesh_msg_type_t) t), "unknown");
    char *ep = mesh_proto_agents_endpoint ("/run/meshd");
    assert_string_equal (ep, "ipc:///run/meshd/agents.ipc");
    free (ep);
    ep = mesh_proto_control_endpoint ("rt");
    assert_string_equal (ep, "ipc://rt/control.ipc");
    free (ep);
}

//  Send ERROR {reason: TEXT} from PEER; receive it on ROUTER; return its routing id.
static char *
s_hello_from (zsock_t *router, zsock_t *peer, const char *text)
{
    json_t *body = json_pack ("{ss}", "reason", text);
    assert_int_equal (mesh_proto_send (peer, NULL, MESH_MSG_ERROR, body), 0);
    json_decref (body);
    mesh_msg_t *msg = mesh_proto_recv (router, true, NULL, NULL);
    assert_non_null (msg);
    assert_string_equal (json_string_value (json_object_get (msg->body, "reason")), text);
    char *id = strdup (msg->routing_id);
    mesh_msg_destroy (&msg);
    return id;
}

//  Reply to ID on ROUTER and check that PEER (and only PEER) gets it.
static void
s_reply_reaches (zsock_t *router, const char *id, zsock_t *peer, zsock_t *other, const char *text)
{
    json_t *body = json_pack ("{ss}", "reason", text);
    assert_int_equal (mesh_proto_send (router, id, MESH_MSG_ERROR, body), 0);
    json_decref (body);
    mesh_msg_t *msg = mesh_proto_recv (peer, false, NULL, NULL);
    assert_non_null (msg);
    assert_string_equal (json_string_value (json_object_get (msg->body, "reason")), text);
    mesh_msg_destroy (&msg);
    zsock_set_rcvtimeo (other, 0);
    assert_null (mesh_proto_recv (other, false, NULL, NULL));
    zsock_set_rcvtimeo (other, 2000);
}

static void
test_routing_ids_text_and_binary (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    //  A second peer without an identity: ZeroMQ makes up a binary one (leading zero byte).
    zsock_t *anon = zsock_new (ZMQ_DEALER);
    zsock_set_rcvtimeo (anon, 2000);
    zsock_set_linger (anon, 0);
    assert_int_equal (zsock_connect (anon, "%s", fx->endpoint), 0);
    //  A third whose chosen identity starts with '~' or holds non-printable bytes: it must
    //  not be mistaken for a hex-encoded one, so it travels hex-encoded itself.
    zsock_t *tilde = zsock_new (ZMQ_DEALER);
    zsock_set_identity (tilde, "~ab");
    zsock_set_rcvtimeo (tilde, 2000);
    zsock_set_linger (tilde, 0);
    assert_int_equal (zsock_connect (tilde, "%s", fx->endpoint), 0);

    char *text_id = s_hello_from (fx->router, fx->dealer, "from text");
    char *bin_id = s_hello_from (fx->router, anon, "from binary");
    char *tilde_id = s_hello_from (fx->router, tilde, "from tilde");
    assert_string_equal (text_id, "agent-1/0");
    assert_int_equal (bin_id[0], '~');
    assert_int_equal (strlen (bin_id), 1 + 2 * 5);        //  ZeroMQ's ids are 5 bytes
    assert_memory_equal (bin_id, "~00", 3);
    assert_int_equal (strspn (bin_id + 1, "0123456789abcdef"), 10);
    assert_string_equal (tilde_id, "~7e6162");

    s_reply_reaches (fx->router, bin_id, anon, fx->dealer, "to binary");
    s_reply_reaches (fx->router, text_id, fx->dealer, anon, "to text");
    s_reply_reaches (fx->router, tilde_id, tilde, anon, "to tilde");

    free (text_id);
    free (bin_id);
    free (tilde_id);
    zsock_destroy (&tilde);
    zsock_destroy (&anon);
}

static void
test_refused_binary_sender_is_reported (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    zsock_t *anon = zsock_new (ZMQ_DEALER);
    zsock_set_linger (anon, 0);
    assert_int_equal (zsock_connect (anon, "%s", fx->endpoint), 0);
    s_send_typed (anon, MESH_MSG_ERROR, "not json");
    const char *why = NULL;
    char *sender = NULL;
    assert_null (mesh_proto_recv (fx->router, true, &why, &sender));
    assert_string_equal (why, "body is not valid JSON");
    assert_non_null (sender);
    assert_memory_equal (sender, "~00", 3);
    //  ... and the id reported is one a reply can be routed with.
    json_t *body = json_pack ("{ss}", "reason", "go away");
    assert_int_equal (mesh_proto_send (fx->router, sender, MESH_MSG_ERROR, body), 0);
    json_decref (body);
    zsock_set_rcvtimeo (anon, 2000);
    mesh_msg_t *msg = mesh_proto_recv (anon, false, NULL, NULL);
    assert_non_null (msg);
    mesh_msg_destroy (&msg);
    free (sender);
    zsock_destroy (&anon);
}

int
main (void)
{
    if (!getenv ("MESH_LOG_LEVEL"))
        mesh_log_set_level (MESH_LOG_ERR - 1);      //  the failure paths log on purpose
    zsys_init ();
    zsys_set_logstream (NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_round_trip_dealer_to_router_and_back, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_wire_format, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_send_refuses_invalid_body, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_send_to_unknown_peer_fails, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_recv_framing_refusals, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_recv_body_refusals, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_recv_on_dealer_refusal_has_no_sender, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_recv_timeout_is_interrupted, s_setup, s_teardown),
        cmocka_unit_test (test_check_schemas),
        cmocka_unit_test (test_type_names_and_endpoints),
        cmocka_unit_test (test_socket_caps_frames),
        cmocka_unit_test_setup_teardown (test_routing_ids_text_and_binary, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_refused_binary_sender_is_reported, s_setup,
                                         s_teardown),
    };
    int rc = cmocka_run_group_tests_name ("proto", tests, NULL, NULL);
    zsys_shutdown ();
    return rc;
}

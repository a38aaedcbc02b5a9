/*  spoof - a local process that pretends to be an agent, for the socket identity test.
 *
 *      spoof ENDPOINT IDENTITY MODE COUNT
 *
 *  Connects a DEALER with routing id IDENTITY (say "ops", "ops/x", "ops/w0": the
 *  names real agents use) to ENDPOINT and sends COUNT messages of one kind:
 *
 *      hello      HELLO in the name of the identity's instance
 *      decision   a forged DECISION record (id ffff..., action scale_out, forged:true)
 *      pending    PENDING: asks for the instance's unfinished decisions
 *      badauth    AUTH with a random (wrong) token, then HELLO
 *      badversion a message in protocol version 1 (invalid: would get an agent punished)
 *      big        one frame of COUNT bytes (above the socket's cap)
 *
 *  Then waits 500 ms for replies and prints "sent N replies M".  A correct supervisor
 *  never answers: nothing here knows the instance's token.
 */
#include "proto.h"

#include <czmq.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define FORGED_ID "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"

int
main (int argc, char **argv)
{
    if (argc != 5) {
        fprintf (stderr, "usage: spoof ENDPOINT IDENTITY MODE COUNT\n");
        return 64;
    }
    const char *endpoint = argv[1], *identity = argv[2], *mode = argv[3];
    long count = atol (argv[4]);
    if (count <= 0 || sodium_init () < 0)
        return 64;
    zsys_init ();
    zsys_set_logstream (NULL);
    char instance[256];
    snprintf (instance, sizeof instance, "%.*s", (int) strcspn (identity, "/"), identity);
    char agent[256];
    snprintf (agent, sizeof agent, "%.*s", (int) strcspn (instance, "#"), instance);
    zsock_t *sock = zsock_new (ZMQ_DEALER);
    zsock_set_identity (sock, identity);
    zsock_set_linger (sock, 5000);
    zsock_set_sndtimeo (sock, 10000);
    if (zsock_connect (sock, "%s", endpoint) != 0) {
        fprintf (stderr, "spoof: cannot connect to %s\n", endpoint);
        return 1;
    }
    long sent = 0;
    if (strcmp (mode, "big") == 0) {
        zmsg_t *msg = zmsg_new ();
        byte header[4] = {'M', 'S', MESH_PROTO_VERSION, MESH_MSG_HELLO};
        zmsg_addmem (msg, header, sizeof header);
        char *body = malloc ((size_t) count);
        memset (body, ' ', (size_t) count);
        zmsg_addmem (msg, body, (size_t) count);
        free (body);
        sent = zmsg_send (&msg, sock) == 0;
    }
    for (long i = 0; strcmp (mode, "big") != 0 && i < count; i++) {
        json_t *hello = json_pack ("{ss ss si}", "agent", agent, "instance", instance, "pid", 1);
        int rc = -1;
        if (strcmp (mode, "hello") == 0)
            rc = mesh_proto_send (sock, NULL, MESH_MSG_HELLO, hello);
        else
        if (strcmp (mode, "decision") == 0) {
            json_t *body = json_pack (
                "{s{ss ss ss ss s{ss si} sb}}", "record", "type", "decision", "id", FORGED_ID,
                "agent", agent, "action", "scale_out", "params", "service", "database",
                "replicas", 10, "forged", 1);
            rc = mesh_proto_send (sock, NULL, MESH_MSG_DECISION, body);
            json_decref (body);
        }
        else
        if (strcmp (mode, "pending") == 0) {
            json_t *body = json_pack ("{ss}", "id", agent);
            rc = mesh_proto_send (sock, NULL, MESH_MSG_PENDING, body);
            json_decref (body);
        }
        else
        if (strcmp (mode, "badauth") == 0) {
            byte token[MESH_PROTO_TOKEN_SIZE];
            char hex[2 * MESH_PROTO_TOKEN_SIZE + 1];
            randombytes_buf (token, sizeof token);
            sodium_bin2hex (hex, sizeof hex, token, sizeof token);
            json_t *body = json_pack ("{ss ss}", "instance", instance, "token", hex);
            rc = mesh_proto_send (sock, NULL, MESH_MSG_AUTH, body);
            json_decref (body);
            if (rc == 0)
                rc = mesh_proto_send (sock, NULL, MESH_MSG_HELLO, hello);
        }
        else
        if (strcmp (mode, "badversion") == 0) {
            zmsg_t *msg = zmsg_new ();
            byte header[4] = {'M', 'S', 1, MESH_MSG_HELLO};
            zmsg_addmem (msg, header, sizeof header);
            zmsg_addstr (msg, "{}");
            rc = zmsg_send (&msg, sock);
        }
        else {
            fprintf (stderr, "spoof: unknown mode %s\n", mode);
            json_decref (hello);
            return 64;
        }
        json_decref (hello);
        if (rc != 0)
            break;
        sent++;
    }
    long replies = 0;
    zpoller_t *poller = zpoller_new (sock, NULL);
    int64_t deadline = zclock_mono () + 500;
    while (zclock_mono () < deadline) {
        if (!zpoller_wait (poller, (int) (deadline - zclock_mono ())))
            continue;
        zmsg_t *msg = zmsg_recv (sock);
        replies += msg != NULL;
        zmsg_destroy (&msg);
    }
    zpoller_destroy (&poller);
    zsock_destroy (&sock);
    printf ("sent %ld replies %ld\n", sent, replies);
    return 0;
}

/*  fuzz_proto - the protocol decoder (common/proto.c) on any frames.
 *
 *  The input is cut into a ZeroMQ message and sent over an inproc PAIR to
 *  mesh_proto_recv, the only way bytes from another process reach the supervisor or
 *  an agent.  Layout: byte 0 is flags (bit 0: the receiver is a ROUTER, so the next
 *  byte is the length of a routing-id frame that follows; bits 1-2: that many extra
 *  empty frames at the end); then a 4-byte header frame and the rest as the body
 *  frame (no body frame if the input ends inside the header).  A message the decoder
 *  accepts must survive mesh_proto_send and a second receive unchanged, or the
 *  harness aborts: what one side accepts, the other must be able to send.
 */
#include "fuzz_common.h"
#include "proto.h"

#include <stdlib.h>
#include <string.h>

static zsock_t *s_in, *s_out;

static void
s_setup (void)
{
    fuzz_quiet ();
    zsys_init ();
    zsys_set_linger (0);
    s_in = zsock_new_pair ("@inproc://fuzz_proto");
    s_out = zsock_new_pair (">inproc://fuzz_proto");
    if (!s_in || !s_out)
        abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (!s_in)
        s_setup ();
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    bool router = flags & 1;
    size_t at = 1;
    zmsg_t *msg = zmsg_new ();
    if (router) {
        size_t n = at < size ? data[at++] : 0;
        if (n > size - at)
            n = size - at;
        zmsg_addmem (msg, data + at, n);
        at += n;
    }
    size_t header = size - at < 4 ? size - at : 4;
    zmsg_addmem (msg, data + at, header);
    at += header;
    if (header == 4)
        zmsg_addmem (msg, data + at, size - at);
    for (int extra = (flags >> 1) & 3; extra > 0; extra--)
        zmsg_addmem (msg, "", 0);
    if (zmsg_send (&msg, s_out))
        abort ();
    const char *why = NULL;
    char *routing = NULL;
    mesh_msg_t *got = mesh_proto_recv (s_in, router, &why, &routing);
    if (!got && !why)
        abort ();
    if (got) {
        if (mesh_proto_check (got->type, got->body))
            abort ();
        //  Accepted once, it must be sendable and accepted again, unchanged.
        if (mesh_proto_send (s_out, NULL, got->type, got->body))
            abort ();
        mesh_msg_t *again = mesh_proto_recv (s_in, false, &why, NULL);
        if (!again || again->type != got->type || !json_equal (again->body, got->body))
            abort ();
        mesh_msg_destroy (&again);
    }
    mesh_msg_destroy (&got);
    free (routing);
    return 0;
}

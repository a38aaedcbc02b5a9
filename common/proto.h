/*  proto - every message that crosses a process boundary, in one place.
 *
 *  Supervisor and agents talk over ZeroMQ ipc:// sockets in the runtime
 *  directory: the supervisor binds a ROUTER for agents (agents.ipc) and one for
 *  meshctl (control.ipc); each agent thread that talks to the supervisor has its
 *  own DEALER.  A message is two frames (plus the routing id on a ROUTER):
 *
 *      [ header: 'M' 'S' version type ]  [ body: one compact JSON object ]
 *
 *  Only bytes cross the boundary.  On arrival the header (magic, version, known
 *  type) and the body (size, JSON, the fields the type requires, with their
 *  types) are checked before anyone looks at the message; a message that fails
 *  is dropped with the reason, never guessed at.  Bumping MESH_PROTO_VERSION is
 *  how an incompatible change is made: old peers are refused, not misread.
 *
 *  Agents authenticate.  The supervisor hands each agent process a fresh random
 *  token at spawn (over an inherited pipe, never argv or environment); every DEALER
 *  an agent opens sends AUTH {instance, token} first, and the supervisor listens to a
 *  routing id only after its AUTH matched that instance's current life.  Frames are
 *  capped at the socket (MESH_PROTO_MAX_FRAME, ZMQ_MAXMSGSIZE): a larger one closes
 *  the connection before it is buffered.
 */
#ifndef MESH_PROTO_H
#define MESH_PROTO_H

#include <czmq.h>
#include <jansson.h>

#define MESH_PROTO_VERSION  4
#define MESH_PROTO_MAX_BODY (4 * 1024 * 1024)
//  The socket's cap on one frame (ZMQ_MAXMSGSIZE): a body plus room for the small frames.
#define MESH_PROTO_MAX_FRAME (MESH_PROTO_MAX_BODY + 4096)
//  An agent's token: random bytes, 64 lower-case hex digits in AUTH.
#define MESH_PROTO_TOKEN_SIZE 32
//  A heartbeat's "lag_partitions": at most this many (the largest lags).
#define MESH_PROTO_MAX_LAG_PARTITIONS 64

typedef enum {
    MESH_MSG_HELLO = 1,         //  agent -> sup   {agent, instance, pid}
    MESH_MSG_HEARTBEAT,         //  agent -> sup   {instance, counters{}}; optional (older
                                //  agents omit them, older daemons ignore them): backends{},
                                //  rules_hash, hist{} (common/hist.h), lag_partitions[]
    MESH_MSG_SHUTDOWN,          //  sup -> agent   {reason}: drain, store offsets, exit 0
    MESH_MSG_DECISION,          //  agent -> sup   {record{type:"decision", id, agent}}
    MESH_MSG_OUTCOME,           //  agent -> sup   {record{type:"outcome", id, agent, status}}
    MESH_MSG_ACK,               //  sup -> agent   {id, seq}: written and fsync'd
    MESH_MSG_LOOKUP,            //  agent -> sup   {id}
    MESH_MSG_LOOKUP_REPLY,      //  sup -> agent   {id, state: none|decided|complete, decision?}
    MESH_MSG_ERROR,             //  either way     {reason, id?}
    MESH_MSG_CTL_REQUEST,       //  meshctl -> sup {cmd, args?}
    MESH_MSG_CTL_REPLY,         //  sup -> meshctl {ok, result?, error?}
    MESH_MSG_PENDING,           //  agent -> sup   {id: agent name}: decisions without outcome?
    MESH_MSG_PENDING_REPLY,     //  sup -> agent   {id: agent name, decisions[]}
    MESH_MSG_RELOAD,            //  sup -> agent   {reason, snapshot, sha256, rules_sha256}: load
                                //  that config snapshot and archived rule set, swap the rules
    MESH_MSG_AUTH,              //  agent -> sup   {instance, token}: first on every DEALER
    MESH_MSG_RESERVE,           //  agent -> sup   {id, incident, step, need, backend, action?,
                                //                 priority}: tokens for one model call (v3)
    MESH_MSG_RESERVE_REPLY,     //  sup -> agent   {id, granted, grant, scope?, detail?}
    MESH_MSG_SETTLE,            //  agent -> sup   {id, grant, charged, rule, result, action?}:
                                //                 one way, never answered
    MESH_MSG_ACT,               //  agent -> sup   {id}: may this recorded decision act (and
                                //                 carry out an exec or webhook action)? (v4)
    MESH_MSG_ACT_REPLY,         //  sup -> agent   {id, verdict: run|done|failed|paused|
                                //                 rate_limited|refused, detail?, outcome?}
    MESH_MSG_COUNT_
} mesh_msg_type_t;

typedef struct {
    mesh_msg_type_t type;
    json_t *body;               //  owned
    char *routing_id;           //  owned; set only for messages received on a ROUTER
    long peer_uid, peer_gid;    //  the sender's credentials over ipc (SO_PEERCRED, as libzmq
                                //  reports them in "Peer-Address"); -1 when unknown
} mesh_msg_t;

//  Send TYPE with BODY (borrowed; NULL sends {}).  ROUTING_ID addresses a peer on a
//  ROUTER socket, NULL on a DEALER.  0, or -1 if the body is invalid for the type
//  (a programming error, logged) or the send failed.
int mesh_proto_send (zsock_t *sock, const char *routing_id, mesh_msg_type_t type, json_t *body);

//  Receive one message (blocks; use a poller first).  ROUTER says whether SOCK is a
//  ROUTER (first frame is the routing id).  Returns the validated message (caller
//  owns), or NULL with *why set to a static reason; when the message was invalid but
//  its sender is known, *routing_id_p (if not NULL) receives the sender's id (caller
//  frees) so the caller can act on the peer.
mesh_msg_t *mesh_proto_recv (zsock_t *sock, bool router, const char **why, char **routing_id_p);

//  Check a body against TYPE's schema.  NULL if valid, else a static reason.
const char *mesh_proto_check (mesh_msg_type_t type, json_t *body);

void mesh_msg_destroy (mesh_msg_t **self_p);
const char *mesh_msg_type_name (mesh_msg_type_t type);

//  Cap SOCK's frames at MESH_PROTO_MAX_FRAME (set before bind or connect).
void mesh_proto_limit (zsock_t *sock);

//  Socket endpoints inside RUNTIME_DIR ("ipc://<dir>/agents.ipc"); caller frees.
char *mesh_proto_agents_endpoint (const char *runtime_dir);
char *mesh_proto_control_endpoint (const char *runtime_dir);

#endif

/*  control - the meshctl side of the supervisor: requests on control.ipc.
 *
 *  Commands: "status" (daemon and every agent instance, with counters) and
 *  "ping".  Replies are CTL_REPLY {ok, result | error}.  The socket is in the
 *  runtime directory (mode 0750), so who may talk to meshd is decided by file
 *  permissions, like systemd's own private sockets.
 */
#ifndef MESH_CONTROL_H
#define MESH_CONTROL_H

#include <jansson.h>

//  Build the reply body for REQUEST (borrowed); DAEMON_STATUS and AGENTS are borrowed
//  snapshots.  Caller owns the result.
json_t *mesh_control_reply (json_t *request, json_t *daemon_status, json_t *agents);

#endif

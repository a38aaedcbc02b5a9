/*  supervise - spawn, watch and restart the agent processes (OTP-style).
 *
 *  One instance per configured agent.  An instance that dies is restarted after
 *  an exponential backoff (reset once it has been up for healthy_after_s); more
 *  than restart_intensity restarts within restart_period_s marks it failed (the
 *  daemon stays up and reports it).  An instance that stops sending heartbeats
 *  for liveness_timeout_ms is killed and restarted.  Counters from the agents'
 *  heartbeats are kept across restarts (totals of earlier lives + this life).
 */
#ifndef MESH_SUPERVISE_H
#define MESH_SUPERVISE_H

#include "config.h"
#include <czmq.h>
#include <jansson.h>

typedef struct _mesh_supervise_t mesh_supervise_t;

//  CFG and SOCK (the agents ROUTER, for shutdown requests) are borrowed.  AGENT_ARGV_TAIL:
//  config path, endpoint and brokers passed to every agent.
mesh_supervise_t *mesh_supervise_new (const mesh_config_t *cfg, const char *agent_binary,
                                      const char *config_path, const char *endpoint,
                                      const char *brokers, zsock_t *sock);
void mesh_supervise_destroy (mesh_supervise_t **self_p);
//  Reap children, start instances whose backoff is over, kill silent ones.
void mesh_supervise_tick (mesh_supervise_t *self);
//  Messages from agents.  ROUTING_ID is the sender's socket identity.
void mesh_supervise_hello (mesh_supervise_t *self, const char *routing_id, json_t *body);
void mesh_supervise_heartbeat (mesh_supervise_t *self, const char *routing_id, json_t *body);
//  The agent name owning ROUTING_ID ("<instance>" or "<instance>/<thread>"), or NULL.
const char *mesh_supervise_agent_of (mesh_supervise_t *self, const char *routing_id);
//  A peer sent something invalid: kill it (it is restarted like any death).
void mesh_supervise_punish (mesh_supervise_t *self, const char *routing_id, const char *why);
//  True once every instance said hello at least once (failed ones excepted).
bool mesh_supervise_ready (mesh_supervise_t *self);
//  True when no instance is in trouble (for the watchdog and STATUS=).
bool mesh_supervise_healthy (mesh_supervise_t *self);
//  Ask every instance to drain and exit; no more restarts.
void mesh_supervise_stop (mesh_supervise_t *self);
//  Number of instance processes still alive.
int mesh_supervise_alive (mesh_supervise_t *self);
//  SIGKILL every instance still alive (after the drain timeout).
void mesh_supervise_kill_all (mesh_supervise_t *self);
//  Use NEW_CFG (borrowed; same agent names) from now on; the caller frees the old one after.
void mesh_supervise_reconfigure (mesh_supervise_t *self, const mesh_config_t *new_cfg);
//  Drain instance NAME and start it again at once (no backoff, not counted as a restart
//  for intensity): how a changed agent config is applied.
void mesh_supervise_restart (mesh_supervise_t *self, const char *name);
//  Ask instance NAME to re-read the config and swap its rule chain between decisions.
void mesh_supervise_reload (mesh_supervise_t *self, const char *name);
//  Status of every instance (caller owns): [{name, agent, pid, state, restarts, uptime_s,
//  last_exit, counters{}}].
json_t *mesh_supervise_status (mesh_supervise_t *self);
//  A one-line summary for STATUS= ("2/2 agents running, 0 failed, 14 decisions").
char *mesh_supervise_summary (mesh_supervise_t *self);

#endif

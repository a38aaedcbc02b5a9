/*  supervise - spawn, watch and restart the agent processes (OTP-style).
 *
 *  One instance per configured agent.  An instance that dies is restarted after
 *  an exponential backoff (reset once it has been up for healthy_after_s); more
 *  than restart_intensity restarts within restart_period_s marks it failed (the
 *  daemon stays up and reports it).  An instance that stops sending heartbeats
 *  for liveness_timeout_ms is killed and restarted.  Counters from the agents'
 *  heartbeats are kept across restarts (totals of earlier lives + this life).
 *
 *  Each life of an instance gets a fresh random token, handed to the child over an
 *  inherited pipe (--auth-fd).  A routing id is listened to only after it sent AUTH
 *  with its instance's current token; the table of such ids is forgotten, and the
 *  token voided, when the instance dies.  Everything that names a peer below
 *  (agent_of, punish, hello, heartbeat) sees authenticated routing ids only.
 *
 *  Each life also gets an in-flight area (--inflight-fd, common/inflight.h): a death
 *  while a thread handled a message is a strike against that message's position, and
 *  daemon.restart.quarantine_after strikes quarantine it (daemon/quarantine.h).
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
//  Where deaths are recorded: FN (ARG, RECORD) appends RECORD (borrowed) to the decision
//  log.  Records: {"type":"agent","event":"died","instance","agent","pid","signal","reason"}
//  or {... "exit":code}, {"type":"agent","event":"failed",...} past the intensity, and
//  {"type":"quarantine","event":"quarantined","agent","instance","topic","partition",
//  "offset","strikes","limit","last_death","dead_letter_topic"} for a poison message.
typedef void (mesh_supervise_record_fn) (void *arg, json_t *record);
void mesh_supervise_set_recorder (mesh_supervise_t *self, mesh_supervise_record_fn *fn, void *arg);
//  With sandbox.user: AGENT_USER (borrowed, may be NULL) is the agents' account; before
//  every later start of an agent, <state_dir>/incidents is made its own again
//  (mesh_agent_user_prepare_state); if that fails, the agent is not started and waits a
//  growing backoff (logged each time), like one that could not be forked.
typedef struct _mesh_agent_user_t mesh_agent_user_t;
void mesh_supervise_set_agent_user (mesh_supervise_t *self, const mesh_agent_user_t *agent_user);
//  AUTH from ROUTING_ID: NULL when accepted (the routing id now speaks for its instance),
//  else a static reason (nothing is changed; the caller counts and logs it).  The routing
//  id must be "<instance>" or "<instance>/<suffix>" of a live instance, BODY's instance the
//  same, and its token that life's token (compared in constant time).
const char *mesh_supervise_auth (mesh_supervise_t *self, const char *routing_id, json_t *body);
//  Called with the instance's name whenever an instance's life ends (the token ledger
//  charges what it still held).  FN (ARG, INSTANCE), INSTANCE borrowed.
typedef void (mesh_supervise_death_fn) (void *arg, const char *instance);
void mesh_supervise_set_death_hook (mesh_supervise_t *self, mesh_supervise_death_fn *fn,
                                    void *arg);
//  The instance name ("ops", "ops.1") of authenticated ROUTING_ID, or NULL.
const char *mesh_supervise_instance_of (mesh_supervise_t *self, const char *routing_id);
//  Reap children, start instances whose backoff is over, kill silent ones.
void mesh_supervise_tick (mesh_supervise_t *self);
//  Messages from agents.  ROUTING_ID is the sender's socket identity (ignored unless
//  authenticated).  A heartbeat's optional "backends" is kept only when it is an object
//  of at most 64 objects and 64 KiB (compact); anything else is dropped and reported as
//  mesh_supervise_agent_bug.
void mesh_supervise_hello (mesh_supervise_t *self, const char *routing_id, json_t *body);
void mesh_supervise_heartbeat (mesh_supervise_t *self, const char *routing_id, json_t *body);
//  The agent name of authenticated ROUTING_ID ("<instance>" or "<instance>/<thread>"), or
//  NULL when it is not authenticated (for this life of its instance).
const char *mesh_supervise_agent_of (mesh_supervise_t *self, const char *routing_id);
//  An authenticated peer sent something invalid: kill its instance (it is restarted like
//  any death).  Unauthenticated routing ids are ignored: they speak for nobody.
void mesh_supervise_punish (mesh_supervise_t *self, const char *routing_id, const char *why);
//  The agent behind ROUTING_ID (authenticated) sent a message the protocol refuses (too
//  large, too deep, not JSON): a bug in the agent, not a reason to kill it, which would
//  re-deliver the same input and loop.  Logged and recorded ({"type":"agent","event":
//  "agent_error", instance, agent, pid, reason, count}) at most once per
//  MESH_SUPERVISE_BUG_EVERY_MS per instance; count is how many refusals it stands for.
#define MESH_SUPERVISE_BUG_EVERY_MS 60000
void mesh_supervise_agent_bug (mesh_supervise_t *self, const char *routing_id, const char *why);
//  True once every instance said hello at least once and none has failed.
bool mesh_supervise_ready (mesh_supervise_t *self);
//  True when no instance is in trouble (for the watchdog and STATUS=).
bool mesh_supervise_healthy (mesh_supervise_t *self);
//  HOLD true: ask every live instance to drain and exit, and start none (state "held")
//  until called with false, which starts them at once (no backoff; not counted as
//  restarts).  WHY (copied) is shown in the summary.  For a state directory that cannot be
//  written: agents would only crash-loop.
void mesh_supervise_hold (mesh_supervise_t *self, bool hold, const char *why);
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
//  last_exit, counters{}, rules_hash, quarantined, suspects, backends{}}].  state: starting,
//  running, backoff, failed, stopped, held.  quarantined: positions of its agent quarantined
//  as poison messages; suspects: positions with strikes below the limit.  backends: the
//  latest heartbeat's {name: {state, detail, flavor, ...}} (agents/backend/health.h), {}
//  before the first one, after a death, or when the agent sent one of the wrong shape.
json_t *mesh_supervise_status (mesh_supervise_t *self);
//  A one-line summary for STATUS= ("2/2 agents running, 0 failed, 14 decisions"; failed
//  ones are named: "1/2 agents running, 1 failed (ops: last exit 127), 0 decisions").
char *mesh_supervise_summary (mesh_supervise_t *self);

#endif

/*  agent_user - the host side of sandbox.user: what meshd (root) prepares and checks so
 *  that the agents can run under another uid, out of reach of the decision log and the
 *  ledger's MAC key.
 *
 *  The agent switches itself (agents/confine.c: setgroups (0), setresgid, setresuid): it
 *  then holds the account's uid and one gid (sandbox.group, or the user's primary group)
 *  and no supplementary groups.  Every check here uses exactly that identity.
 */
#ifndef MESH_AGENT_USER_H
#define MESH_AGENT_USER_H

#include "config.h"
#include <stdio.h>
#include <sys/types.h>

typedef struct _mesh_agent_user_t mesh_agent_user_t;

//  The agents' account from CFG's sandbox section.  Returns the number of problems, each
//  printed to OUT as one line naming the config file and the key (no such user or group,
//  the user is root, meshd does not run as root).  On 0, *self_p is NULL when sandbox.user
//  is not set, else the account (caller owns).
int mesh_agent_user_new (const mesh_config_t *cfg, mesh_agent_user_t **self_p, FILE *out);
//  Destroy; sets *self_p to NULL; safe on NULL.
void mesh_agent_user_destroy (mesh_agent_user_t **self_p);

uid_t mesh_agent_user_uid (const mesh_agent_user_t *self);
gid_t mesh_agent_user_gid (const mesh_agent_user_t *self);

//  Can the account, as the agent holds it, search runtime_dir and state_dir and read the
//  config file, every rule file, every backend's files, the Kafka security files and the
//  silences file (when there is one)?  Checked for real, by a child process that takes
//  the agent's identity (so ACLs and mount options count).  Each path that fails is printed
//  to OUT, naming the directory or file that stops it and a fix; returns their number.  A
//  directory that does not exist yet (meshd creates it) is not a problem.
int mesh_agent_user_check_access (const mesh_agent_user_t *self, const mesh_config_t *cfg,
                                  FILE *out);

//  <state_dir>/incidents, the one directory the agents write: created if missing, then,
//  opened without following a symlink, given to the account with mode 0700.  When it was
//  root's (a meshd without sandbox.user made it), root's state files in it (regular, one
//  link) go to the account too, so the agents keep their state.  Refused when it is not a
//  directory, belongs to another uid than root's or the account's, or is root's and
//  writable by group or others.  0, or -1 logged with the fix.
int mesh_agent_user_prepare_state (const mesh_agent_user_t *self, const char *state_dir);

//  Give the socket file PATH (agents.ipc, bound 0600 by meshd) to the account's uid, mode
//  0600: only the agents' uid and root can connect.  0, or -1 logged.
int mesh_agent_user_own_socket (const mesh_agent_user_t *self, const char *path);

#endif

/*  confine - what a mesh-agent gives up once it has started: its parent's survival
 *  (parent-death signal), root (optional user switch), capabilities, the right to gain
 *  privileges, and every system call outside an allow-list (seccomp).
 *
 *  Four calls, in this order, from agents/main.c:
 *      mesh_confine_parent      first thing in main: die with the supervisor
 *      mesh_confine_privileges  after the config is loaded, before any thread starts
 *                               (capabilities are per thread: a thread started
 *                               earlier would keep them)
 *      mesh_confine_filesystem  right after: writes only under the agent's own state
 *                               directory (Landlock, also per thread)
 *      mesh_confine_apply       after start-up (threads, sockets, consumer), before
 *                               the first event: everything again, verified on every
 *                               thread, then the seccomp filter on all threads
 *  Each returns 0, or -1 with *why set (caller frees): the agent must then exit.
 */
#ifndef MESH_CONFINE_H
#define MESH_CONFINE_H

#include "config.h"

#include <sys/types.h>

//  PR_SET_PDEATHSIG (SIGKILL), then getppid () == EXPECTED_PARENT, so that a parent
//  that died before the prctl is noticed.
int mesh_confine_parent (pid_t expected_parent, char **why);

//  Drop the capability bounding set (when allowed to), switch to cfg->user/group when
//  set (meshd must then run as root), clear effective, permitted, inheritable and
//  ambient capabilities, set no_new_privs.  Idempotent.
int mesh_confine_privileges (const mesh_sandbox_config_t *cfg, char **why);

//  Landlock: from now on this process (and the threads it starts) may create, write,
//  truncate, rename or remove files only beneath STATE_DIR/incidents (created here when
//  missing); it can still read everywhere it could.
//  So an agent cannot write the decision log or anything else of meshd's, even with
//  meshd's uid.  Needs no_new_privs (mesh_confine_privileges).  A kernel without
//  Landlock: 0, and *level_p says so (0 = none, else the Landlock ABI version).
int mesh_confine_filesystem (const char *state_dir, int *level_p, char **why);

//  mesh_confine_parent, mesh_confine_privileges, then a check that every thread of the
//  process holds no capability and has no_new_privs (and the configured uid), then the
//  seccomp allow-list on every thread (cfg->seccomp: kill, log or off).  Logs one info
//  line saying what was applied.
int mesh_confine_apply (const mesh_sandbox_config_t *cfg, pid_t expected_parent, char **why);

//  Test only: the system call that MESH_TEST_FORBIDDEN_SYSCALL=1 makes the agent call
//  after confinement - personality (0xffffffff), which only reads the execution domain
//  and is outside the allow-list.  Returns what the call returned (when it returns).
long mesh_confine_forbidden_call (void);

#endif

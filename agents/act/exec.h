/*  exec - run an exec action's program: argv from a fixed template, no shell, a clean
 *  child, bounded in time and output.
 *  Data path: event -> detect -> incident -> reason -> gate -> [act] -> record; meshd's
 *  executor (not the agent) calls it once a decision is recorded (docs/actions.md).
 *
 *  A pure library: no threads, no globals, nothing logged; every failure comes back in WHY.
 *
 *  Reaping: mesh_exec_run reaps its own child (waitid on that pid) as soon as the pidfd
 *  says it exited.  Whoever else reaps in the same process must not take it first: no
 *  SIGCHLD set to SIG_IGN, and a waitpid (-1) in another thread should pass __WNOTHREAD
 *  (children of other threads, such as a run's, are then out of its reach).  If the child
 *  was reaped elsewhere all the same, the result says status_unknown.
 */
#ifndef MESH_EXEC_H
#define MESH_EXEC_H

#include "config.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>

#define MESH_EXEC_ARG_MAX       131072          //  bytes of one argument, NUL included (the
                                                //  kernel's MAX_ARG_STRLEN)
#define MESH_EXEC_ARGV_MAX      (1024 * 1024)   //  bytes of all arguments, NULs included
#define MESH_EXEC_EXCERPT       1024            //  bytes of stdout/stderr in the outcome

//  Build argv (NULL-terminated; argv[0] = the program) from SPEC's template (exec.argv) and
//  PARAMS (a JSON object the gates validated; NULL is read as {}).  Each {name} in an
//  element is replaced by that param's value as text (strings as they are; integers in
//  decimal; numbers with %.17g; booleans true/false); "{{" and "}}" are literal braces.
//  An element stays ONE argument whatever the value holds (spaces, quotes, $(), ;,
//  newlines): there is no shell to split it.  Refused (-1, WHY names the param, never
//  its value): a param that is missing or null, or not a string, number or boolean; a
//  value with a NUL byte; an argument starting with '-' where that dash is a value's
//  first byte at the start of the element (an element that starts with {name}), unless
//  the param has allow_dash; an argument of MESH_EXEC_ARG_MAX bytes or more; all of them
//  over MESH_EXEC_ARGV_MAX; a template that is not well formed.  On 0 the caller owns
//  *ARGV_P (mesh_exec_argv_free).
int mesh_exec_argv (const mesh_action_spec_t *spec, json_t *params, char ***argv_p,
                    char *why, size_t size);
//  Free an argv from mesh_exec_argv; safe on NULL.
void mesh_exec_argv_free (char **argv);

//  What became of one run.  out and err are owned by the result (mesh_exec_result_clear).
typedef struct {
    pid_t pid;
    int exit_code;                  //  the exit status; -1 if ended by a signal (or unknown)
    int signal;                     //  the signal that ended it; 0 if it exited
    bool timed_out;                 //  still running at timeout_ms: SIGTERM to its group
    bool killed;                    //  still running kill_after_ms later: SIGKILL was needed
    bool lingered;                  //  it exited, but something it started kept stdout or
                                    //  stderr open until timeout_ms; its group was killed
    bool status_unknown;            //  reaped by someone else (see above): exit unknown
    char *out;                      //  stdout: the first capture_bytes, NUL-terminated
    size_t out_len;                 //  bytes in out
    size_t out_total;               //  bytes the program wrote to stdout in all
    bool out_truncated;             //  out_total > out_len
    char *err;                      //  stderr: the same
    size_t err_len;
    size_t err_total;
    bool err_truncated;
    int64_t duration_ms;            //  fork to the end of the run (exited, output closed)
} mesh_exec_result_t;

//  Run SPEC's program with ARGV (from mesh_exec_argv) for decision DECISION_ID of agent
//  AGENT (either may be NULL: that variable is then not set).
//
//  The child: its own session and process group (setsid); stdin /dev/null, or with
//  exec.stdin_decision a pipe holding the STDIN_LEN bytes of STDIN_DATA (NULL: none)
//  and then end of file; stdout and stderr pipes; no other descriptor (close_range); the
//  environment exactly exec.env ("NAME" entries take meshd's value, and are left out
//  when meshd has none) plus MESH_DECISION_ID, MESH_ACTION and MESH_AGENT; chdir to
//  exec.cwd (NULL: /); RLIMIT_CPU (hard one second above soft), RLIMIT_AS, RLIMIT_NOFILE,
//  RLIMIT_NPROC as configured (never above meshd's own hard limits), RLIMIT_CORE 0;
//  default signal dispositions, nothing blocked; the parent-death signal SIGKILL;
//  with exec.user, its groups (getgrouplist), exec.group or the user's primary group,
//  then the user (meshd must be root for that, else -1; naming meshd's own user is no
//  switch); PR_SET_NO_NEW_PRIVS; then execve of exec.program, never through a
//  shell and never looked up in PATH.  Everything the child needs is prepared before
//  the fork; between fork and execve only async-signal-safe calls are made.  If a step
//  fails, the child writes "meshd: ..." and the reason to its stderr and exits 126.
//
//  The parent reads stdout and stderr (each: the first exec.capture_bytes are kept,
//  the rest counted and dropped) and feeds stdin, with poll, until the child has exited
//  and both pipes are closed.  At exec.timeout_ms the child's process group (and the
//  child) get SIGTERM and the result says timed_out; exec.kill_after_ms later, if the
//  child is still there, SIGKILL (killed).  A child that exits in time but leaves
//  something holding its pipes is waited for until exec.timeout_ms, no longer
//  (lingered).  Whatever is left of its process group when the run ends is sent
//  SIGKILL, so nothing it started outlives the run unless it left the group.  SIGPIPE (stdin written to a child that has exited) is blocked in the
//  calling thread during the run and never delivered.
//
//  0 when the child ran, whatever its end (*RESULT filled; clear it); -1 with WHY when
//  it could not be started (*RESULT cleared, nothing to free).  Blocks for the run:
//  call it from a thread that may wait up to timeout_ms + kill_after_ms.
int mesh_exec_run (const mesh_action_spec_t *spec, char **argv, const char *decision_id,
                   const char *agent, const char *stdin_data, size_t stdin_len,
                   mesh_exec_result_t *result, char *why, size_t size);
//  Free what RESULT holds and zero it; safe on a zeroed result.
void mesh_exec_result_clear (mesh_exec_result_t *result);

//  The outcome fields for RESULT and the ARGV it ran with (caller owns):
//  {"exit": n | null, "signal": "SIGTERM" | null, "timed_out", "killed", "duration_ms",
//   "stdout": the first MESH_EXEC_EXCERPT bytes, "stdout_bytes": all written,
//   "stderr", "stderr_bytes", "argv": [...]}, plus "lingered": true and
//  "status_unknown": true when so.  Bytes that are not UTF-8 (and NUL) become '?'; an
//  argument over 4096 bytes is cut there and ends "...".
json_t *mesh_exec_result_json (const mesh_exec_result_t *result, char **argv);

#endif

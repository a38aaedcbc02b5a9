/*  log - diagnostics, one line each, to stderr with a syslog priority prefix or to the
 *  systemd journal with structured fields.
 *
 *  meshd has two output streams that never mix: diagnostics (this module) and decisions
 *  (the decision log, written only by daemon/ledger.c).  Every line is tagged "meshd[TAG]"
 *  where TAG is the process role ("supervisor", or the agent instance name).  Whatever
 *  the text, a line is one line of printable text: control characters, C1 controls and
 *  bytes that are not valid UTF-8 are escaped by the writer (\xHH, \u0080-\u009f, and \\
 *  for a backslash), so callers log untrusted text as it is.
 *
 *  Where lines go (mesh_log_set_target): "stderr" writes "<N>meshd[TAG]: message\n" to
 *  stderr, one write per line; "journal" sends each line to the journal with
 *  sd_journal_sendv: PRIORITY, MESSAGE (escaped as above), SYSLOG_IDENTIFIER=meshd,
 *  MESH_TAG, CODE_FILE, CODE_LINE, CODE_FUNC, and the calling thread's context
 *  (MESH_AGENT, MESH_DECISION_ID, MESH_SERIES, MESH_ACTION) where set.  "auto" (the
 *  default) is "journal" when stderr is the journal's stream (JOURNAL_STREAM names
 *  stderr's device and inode, as systemd sets it for a unit) and "stderr" otherwise.
 *  A line the journal does not take (no socket, full) is written to stderr instead.
 *
 *  The context is per thread: an agent sets it where it handles an incident and a
 *  decision and clears it after, so every line logged meanwhile, in any module, carries
 *  the fields.  Values are escaped like the message and cut at MESH_LOG_FIELD_MAX bytes
 *  (a series key comes from events: it may be long or hostile).
 */
#ifndef MESH_LOG_H
#define MESH_LOG_H

#include <stdarg.h>

enum { MESH_LOG_ERR = 3, MESH_LOG_WARNING = 4, MESH_LOG_NOTICE = 5, MESH_LOG_INFO = 6,
       MESH_LOG_DEBUG = 7 };

typedef enum { MESH_LOG_AUTO, MESH_LOG_STDERR, MESH_LOG_JOURNAL } mesh_log_target_t;

//  The context fields of the calling thread.
typedef enum { MESH_LOG_CTX_AGENT, MESH_LOG_CTX_DECISION, MESH_LOG_CTX_SERIES,
               MESH_LOG_CTX_ACTION, MESH_LOG_CTX_COUNT } mesh_log_ctx_t;

//  Bytes of a context value after escaping (longer values are cut, never mid-escape).
#define MESH_LOG_FIELD_MAX 256

//  Set the tag printed in every line (copied, escaped like the message).  Default "meshd".
void mesh_log_set_tag (const char *tag);
//  For a command-line tool (meshctl): stderr lines read "PROGRAM: message" (no priority,
//  no tag), like the tool's own errors, and never go to the journal.  NULL: back to daemon
//  lines.
void mesh_log_set_cli (const char *program);
//  Lines above this priority are not printed.  Default MESH_LOG_INFO; MESH_LOG_LEVEL=7 env
//  turns on debug.
void mesh_log_set_level (int level);
//  Parse "auto", "stderr" or "journal"; 0 and *target set, or -1.
int mesh_log_target_parse (const char *name, mesh_log_target_t *target);
//  Where lines go from now on (auto is resolved here, once).  Before any call the target
//  is $MESH_LOG_TARGET's if it names one, else auto.
void mesh_log_set_target (mesh_log_target_t target);
//  The target in force, resolved (MESH_LOG_STDERR or MESH_LOG_JOURNAL).
mesh_log_target_t mesh_log_target (void);
//  Set (VALUE copied, escaped, cut) or clear (VALUE NULL) one context field of the calling
//  thread.
void mesh_log_context_set (mesh_log_ctx_t field, const char *value);
//  Clear every context field of the calling thread, but the agent name.
void mesh_log_context_clear (void);
//  The calling thread's value of FIELD, or NULL.  Borrowed, valid until it changes.
const char *mesh_log_context_get (mesh_log_ctx_t field);
//  Set the agent name every thread of this process starts with (a process runs one agent).
void mesh_log_set_agent (const char *agent);

//  One line: the message (at most 2047 bytes after formatting, cut there), escaped.  Use
//  mesh_log () (the macro), which passes where it was called from.
void mesh_log_at (int priority, const char *file, int line, const char *func, const char *fmt,
                  ...) __attribute__ ((format (printf, 5, 6)));

#define mesh_log(priority, ...) mesh_log_at (priority, __FILE__, __LINE__, __func__, __VA_ARGS__)
#define mesh_err(...)     mesh_log (MESH_LOG_ERR, __VA_ARGS__)
#define mesh_warn(...)    mesh_log (MESH_LOG_WARNING, __VA_ARGS__)
#define mesh_notice(...)  mesh_log (MESH_LOG_NOTICE, __VA_ARGS__)
#define mesh_info(...)    mesh_log (MESH_LOG_INFO, __VA_ARGS__)
#define mesh_debug(...)   mesh_log (MESH_LOG_DEBUG, __VA_ARGS__)

#endif

/*  log - diagnostics to stderr, one line each, with a syslog priority prefix.
 *
 *  meshd has two output streams that never mix: diagnostics (this module; journald
 *  keeps the level from the "<N>" prefix) and decisions (the decision log, written
 *  only by daemon/ledger.c).  Every line is tagged "meshd[TAG]" where TAG is the
 *  process role ("supervisor", or the agent instance name).  Whatever the text, a line
 *  is one line of printable text: control characters, C1 controls and bytes that are
 *  not valid UTF-8 are escaped by the writer (\xHH, \u0080-\u009f, and \\ for a
 *  backslash), so callers log untrusted text as it is.
 */
#ifndef MESH_LOG_H
#define MESH_LOG_H

#include <stdarg.h>

enum { MESH_LOG_ERR = 3, MESH_LOG_WARNING = 4, MESH_LOG_NOTICE = 5, MESH_LOG_INFO = 6,
       MESH_LOG_DEBUG = 7 };

//  Set the tag printed in every line (copied, escaped like the message).  Default "meshd".
void mesh_log_set_tag (const char *tag);
//  Lines above this priority are not printed.  Default MESH_LOG_INFO; MESH_LOG_LEVEL=7 env
//  turns on debug.
void mesh_log_set_level (int level);
//  One line: the message (at most 2047 bytes after formatting, cut there), escaped.
void mesh_log (int priority, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

#define mesh_err(...)     mesh_log (MESH_LOG_ERR, __VA_ARGS__)
#define mesh_warn(...)    mesh_log (MESH_LOG_WARNING, __VA_ARGS__)
#define mesh_notice(...)  mesh_log (MESH_LOG_NOTICE, __VA_ARGS__)
#define mesh_info(...)    mesh_log (MESH_LOG_INFO, __VA_ARGS__)
#define mesh_debug(...)   mesh_log (MESH_LOG_DEBUG, __VA_ARGS__)

#endif

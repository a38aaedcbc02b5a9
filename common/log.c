/*  log - diagnostics to stderr with syslog priority prefixes.
 *
 *  One write(2) per line so that lines from concurrent threads and processes do
 *  not interleave on the shared stderr (journald or a terminal).
 */
#include "log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char s_tag[64] = "meshd";
static int s_level = -1;

void
mesh_log_set_tag (const char *tag)
{
    snprintf (s_tag, sizeof s_tag, "%s", tag ? tag : "meshd");
}

void
mesh_log_set_level (int level)
{
    s_level = level;
}

void
mesh_log (int priority, const char *fmt, ...)
{
    if (s_level < 0) {
        const char *env = getenv ("MESH_LOG_LEVEL");
        s_level = env ? atoi (env) : MESH_LOG_INFO;
    }
    if (priority > s_level)
        return;
    char line[2048];
    int n = snprintf (line, sizeof line, "<%d>meshd[%s]: ", priority, s_tag);
    va_list ap;
    va_start (ap, fmt);
    int m = vsnprintf (line + n, sizeof line - n - 1, fmt, ap);
    va_end (ap);
    size_t len = (m < 0) ? (size_t) n : (size_t) n + (size_t) m;
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    //  Never let a control character from data forge a second log line.
    for (size_t i = (size_t) n; i < len; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[len++] = '\n';
    ssize_t rc = write (STDERR_FILENO, line, len);
    (void) rc;
}

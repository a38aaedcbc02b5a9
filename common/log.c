/*  log - diagnostics to stderr with syslog priority prefixes.
 *
 *  One write(2) per line so that lines from concurrent threads and processes do
 *  not interleave on the shared stderr (journald or a terminal).
 *
 *  Log lines carry text from everywhere: event fields, a model's output, a backend's
 *  error page, rule errors, file names, a peer's routing id.  None of it may reach the
 *  journal or a terminal as a control character: a newline forges a second line, ESC
 *  starts a terminal escape sequence, BEL rings, NUL truncates.  So the writer escapes
 *  every line (the message and the tag) in one place, s_escape, and no call site has
 *  to remember to: C0 controls (0x00-0x1f), DEL and bytes that are not part of valid
 *  UTF-8 become \xHH (the byte), the C1 controls U+0080-U+009F (0xc2 0x80-0x9f in
 *  UTF-8) become \u0080-\u009f (the code point), and a backslash becomes \\ so that an
 *  escape in a line always means one of these.  Valid UTF-8 text passes through.
 */
#include "log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_LINE_MAX 2048             //  bytes of a message before escaping

static char s_tag[64] = "meshd";
static int s_level = -1;

//  Length of the valid UTF-8 sequence of two or more bytes at P (before END), or 0
//  (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
static size_t
s_utf8_length (const unsigned char *p, const unsigned char *end)
{
    size_t need;
    unsigned char lo = 0x80, hi = 0xbf;     //  bounds of the second byte
    if (*p >= 0xc2 && *p <= 0xdf)
        need = 2;
    else
    if (*p >= 0xe0 && *p <= 0xef) {
        need = 3;
        if (*p == 0xe0)
            lo = 0xa0;
        if (*p == 0xed)
            hi = 0x9f;
    }
    else
    if (*p >= 0xf0 && *p <= 0xf4) {
        need = 4;
        if (*p == 0xf0)
            lo = 0x90;
        if (*p == 0xf4)
            hi = 0x8f;
    }
    else
        return 0;
    if ((size_t) (end - p) < need || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return need;
}

//  Copy IN (LEN bytes) to OUT (SIZE bytes, SIZE > 0) escaped as the top of the file
//  says, always terminated; stops before an escape or a character that does not fit.
//  Returns the length written.
static size_t
s_escape (char *out, size_t size, const char *in, size_t len)
{
    const unsigned char *p = (const unsigned char *) in, *end = p + len;
    size_t used = 0;
    while (p < end) {
        char piece[8];
        size_t n;
        const unsigned char *from = p;
        size_t seq = *p >= 0x80 ? s_utf8_length (p, end) : 0;
        if (*p < 0x20 || *p == 0x7f || (*p >= 0x80 && !seq)) {
            n = (size_t) snprintf (piece, sizeof piece, "\\x%02x", *p);
            p++;
        }
        else
        if (*p == '\\') {
            n = 2;
            memcpy (piece, "\\\\", 2);
            p++;
        }
        else
        if (seq == 2 && p[0] == 0xc2 && p[1] <= 0x9f) {
            n = (size_t) snprintf (piece, sizeof piece, "\\u%04x", p[1]);
            p += 2;
        }
        else {
            n = seq ? seq : 1;
            memcpy (piece, p, n);
            p += n;
        }
        if (used + n >= size) {
            p = from;
            break;
        }
        memcpy (out + used, piece, n);
        used += n;
    }
    out[used] = 0;
    return used;
}

void
mesh_log_set_tag (const char *tag)
{
    if (!tag)
        tag = "meshd";
    s_escape (s_tag, sizeof s_tag, tag, strlen (tag));
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
    char message[S_LINE_MAX];
    va_list ap;
    va_start (ap, fmt);
    int m = vsnprintf (message, sizeof message, fmt, ap);
    va_end (ap);
    size_t message_len = m < 0 ? 0 : (size_t) m < sizeof message ? (size_t) m
                                                                 : sizeof message - 1;
    //  Every byte may become four (\xHH); the prefix and the newline fit besides.
    char line[4 * S_LINE_MAX + 128];
    int n = snprintf (line, sizeof line, "<%d>meshd[%s]: ", priority, s_tag);
    size_t len = (size_t) n;
    len += s_escape (line + len, sizeof line - len - 1, message, message_len);
    line[len++] = '\n';
    ssize_t rc = write (STDERR_FILENO, line, len);
    (void) rc;
}

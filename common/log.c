/*  log - diagnostics to stderr with syslog priority prefixes, or to the journal with
 *  structured fields (log.h says which and when).
 *
 *  One write(2) per line on stderr so that lines from concurrent threads and processes
 *  do not interleave on the shared stream (a terminal, or journald's stream socket); one
 *  datagram per line to the journal.
 *
 *  Log lines carry text from everywhere: event fields, a model's output, a backend's
 *  error page, rule errors, file names, a peer's routing id.  None of it may reach the
 *  journal or a terminal as a control character: a newline forges a second line, ESC
 *  starts a terminal escape sequence, BEL rings, NUL truncates.  So the writer escapes
 *  every line (the message, the tag and every context field) in one place, s_escape,
 *  and no call site has to remember to: C0 controls (0x00-0x1f), DEL and bytes that are
 *  not part of valid UTF-8 become \xHH (the byte), the C1 controls U+0080-U+009F (0xc2
 *  0x80-0x9f in UTF-8) become \u0080-\u009f (the code point), and a backslash becomes \\
 *  so that an escape in a line always means one of these.  Valid UTF-8 text passes
 *  through.  The journal would take binary fields, but a field that is one bounded line
 *  of text is what `journalctl` and its matches handle well.
 */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#define SD_JOURNAL_SUPPRESS_LOCATION     //  CODE_* are the caller's (mesh_log), not ours
#include <systemd/sd-journal.h>
#include <unistd.h>

#define S_LINE_MAX 2048             //  bytes of a message before escaping
#define S_JOURNAL_SOCKET "/run/systemd/journal/socket"      //  sd-journal's, fixed

static char s_tag[64] = "meshd";
static int s_level = -1;
static mesh_log_target_t s_target = MESH_LOG_AUTO;     //  resolved on first use
static pthread_once_t s_target_once = PTHREAD_ONCE_INIT;
static int s_journal_failed;                            //  said once that it fell back
static char s_agent[MESH_LOG_FIELD_MAX] = "";
static char s_cli[64] = "";                             //  a tool's name: plain lines           //  the process's agent, if any

typedef struct {
    bool agent_set;                 //  the thread set its own agent name
    char field[MESH_LOG_CTX_COUNT][MESH_LOG_FIELD_MAX];
} s_context_t;

static __thread s_context_t s_ctx;

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
mesh_log_set_cli (const char *program)
{
    if (program)
        s_escape (s_cli, sizeof s_cli, program, strlen (program));
    else
        s_cli[0] = 0;
}

void
mesh_log_set_level (int level)
{
    s_level = level;
}

int
mesh_log_target_parse (const char *name, mesh_log_target_t *target)
{
    if (!name)
        return -1;
    if (strcmp (name, "auto") == 0)
        *target = MESH_LOG_AUTO;
    else
    if (strcmp (name, "stderr") == 0)
        *target = MESH_LOG_STDERR;
    else
    if (strcmp (name, "journal") == 0)
        *target = MESH_LOG_JOURNAL;
    else
        return -1;
    return 0;
}

//  True when JOURNAL_STREAM ("DEVICE:INODE", as systemd sets it) names stderr.
static bool
s_stderr_is_journal (void)
{
    const char *env = getenv ("JOURNAL_STREAM");
    unsigned long long dev, ino;
    char extra;
    struct stat st;
    if (!env || sscanf (env, "%llu:%llu%c", &dev, &ino, &extra) != 2)
        return false;
    if (fstat (STDERR_FILENO, &st) != 0)
        return false;
    return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

static mesh_log_target_t
s_resolve (mesh_log_target_t target)
{
    if (target == MESH_LOG_AUTO)
        return s_stderr_is_journal () ? MESH_LOG_JOURNAL : MESH_LOG_STDERR;
    return target;
}

static void
s_target_init (void)
{
    mesh_log_target_t target = MESH_LOG_AUTO;
    if (s_target == MESH_LOG_AUTO
        && mesh_log_target_parse (getenv ("MESH_LOG_TARGET"), &target) != 0)
        target = MESH_LOG_AUTO;
    if (s_target == MESH_LOG_AUTO)
        s_target = s_resolve (target);
}

void
mesh_log_set_target (mesh_log_target_t target)
{
    s_target = s_resolve (target);
    s_journal_failed = 0;
    pthread_once (&s_target_once, s_target_init);   //  no later lazy resolution
}

mesh_log_target_t
mesh_log_target (void)
{
    pthread_once (&s_target_once, s_target_init);
    return s_target;
}

void
mesh_log_context_set (mesh_log_ctx_t field, const char *value)
{
    if (field < 0 || field >= MESH_LOG_CTX_COUNT)
        return;
    char *out = s_ctx.field[field];
    if (value)
        s_escape (out, MESH_LOG_FIELD_MAX, value, strlen (value));
    else
        out[0] = 0;
    if (field == MESH_LOG_CTX_AGENT)
        s_ctx.agent_set = value != NULL;
}

void
mesh_log_context_clear (void)
{
    for (int f = 0; f < MESH_LOG_CTX_COUNT; f++)
        if (f != MESH_LOG_CTX_AGENT)
            s_ctx.field[f][0] = 0;
}

const char *
mesh_log_context_get (mesh_log_ctx_t field)
{
    if (field < 0 || field >= MESH_LOG_CTX_COUNT)
        return NULL;
    const char *value = field == MESH_LOG_CTX_AGENT && !s_ctx.agent_set ? s_agent
                                                                        : s_ctx.field[field];
    return *value ? value : NULL;
}

void
mesh_log_set_agent (const char *agent)
{
    if (agent)
        s_escape (s_agent, sizeof s_agent, agent, strlen (agent));
    else
        s_agent[0] = 0;
}

//  Send one line to the journal; 0, or a negative errno when it did not take it.
static int
s_journal (int priority, const char *file, int line, const char *func, const char *message,
           size_t message_len)
{
    static const char *const names[MESH_LOG_CTX_COUNT] = {
        "MESH_AGENT=", "MESH_DECISION_ID=", "MESH_SERIES=", "MESH_ACTION="};
    char prio[16], code_line[32], code_file[MESH_LOG_FIELD_MAX + 16],
        code_func[MESH_LOG_FIELD_MAX + 16], tag[sizeof s_tag + 16];
    char ctx[MESH_LOG_CTX_COUNT][MESH_LOG_FIELD_MAX + 24];
    struct iovec iov[8 + MESH_LOG_CTX_COUNT];
    int n = 0;
#define S_IOV(text, len) (iov[n].iov_base = (void *) (text), iov[n].iov_len = (len), n++)
    S_IOV (message, message_len);
    int k = snprintf (prio, sizeof prio, "PRIORITY=%d", priority);
    S_IOV (prio, (size_t) k);
    S_IOV ("SYSLOG_IDENTIFIER=meshd", strlen ("SYSLOG_IDENTIFIER=meshd"));
    k = snprintf (tag, sizeof tag, "MESH_TAG=%s", s_tag);
    S_IOV (tag, (size_t) k);
    memcpy (code_file, "CODE_FILE=", 10);
    k = 10 + (int) s_escape (code_file + 10, MESH_LOG_FIELD_MAX, file ? file : "",
                              file ? strlen (file) : 0);
    S_IOV (code_file, (size_t) k);
    k = snprintf (code_line, sizeof code_line, "CODE_LINE=%d", line);
    S_IOV (code_line, (size_t) k);
    memcpy (code_func, "CODE_FUNC=", 10);
    k = 10 + (int) s_escape (code_func + 10, MESH_LOG_FIELD_MAX, func ? func : "",
                              func ? strlen (func) : 0);
    S_IOV (code_func, (size_t) k);
    for (int f = 0; f < MESH_LOG_CTX_COUNT; f++) {
        const char *value = mesh_log_context_get ((mesh_log_ctx_t) f);
        if (!value)
            continue;
        k = snprintf (ctx[f], sizeof ctx[f], "%s%s", names[f], value);
        S_IOV (ctx[f], (size_t) k);
    }
#undef S_IOV
    //  sd_journal_sendv drops a line silently (and returns 0) when no journald listens:
    //  look first, so that such a line goes to stderr instead.
    struct stat st;
    if (stat (S_JOURNAL_SOCKET, &st) != 0)
        return -errno;
    if (!S_ISSOCK (st.st_mode))
        return -ENOTSOCK;
    return sd_journal_sendv (iov, n);
}

void
mesh_log_at (int priority, const char *file, int line_no, const char *func, const char *fmt, ...)
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
    if (!*s_cli && mesh_log_target () == MESH_LOG_JOURNAL) {
        memcpy (line, "MESSAGE=", 8);
        size_t len = 8 + s_escape (line + 8, sizeof line - 8, message, message_len);
        int rc = s_journal (priority, file, line_no, func, line, len);
        if (rc >= 0)
            return;
        //  Not lost: to stderr like any other line, and say so once.
        if (__atomic_exchange_n (&s_journal_failed, 1, __ATOMIC_RELAXED) == 0) {
            char note[256];
            int k = snprintf (note, sizeof note, "<%d>meshd[%s]: the journal refused a line "
                              "(%s); this and later lines it refuses go to stderr\n",
                              MESH_LOG_WARNING, s_tag, strerror (-rc));
            ssize_t w = write (STDERR_FILENO, note, (size_t) k);
            (void) w;
        }
    }
    int n = *s_cli ? snprintf (line, sizeof line, "%s: ", s_cli)
                   : snprintf (line, sizeof line, "<%d>meshd[%s]: ", priority, s_tag);
    size_t len = (size_t) n;
    len += s_escape (line + len, sizeof line - len - 1, message, message_len);
    line[len++] = '\n';
    ssize_t rc = write (STDERR_FILENO, line, len);
    (void) rc;
}

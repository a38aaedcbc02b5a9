/*  test_log - every log line is one line of printable text, whatever it carries.
 *
 *  mesh_log escapes in the writer (common/log.c): C0 controls and DEL and bytes that
 *  are not valid UTF-8 as \xHH, the C1 controls as \u0080-\u009f, a backslash as \\;
 *  valid UTF-8 passes through.  Each test logs data through the public API with
 *  stderr pointed at a temporary file and compares the line written.
 *
 *  The journal target (log.h): the per-thread context is set, read back escaped and cut,
 *  cleared, and never changes a stderr line; auto chooses the journal only when
 *  JOURNAL_STREAM names stderr; a line the journal refuses reaches stderr.  What the
 *  journal receives is checked against a real journald in tests/integration/journald.sh.
 */
#include "log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

//  Log DATA (LEN bytes; "%.*s" stops at a NUL, so a NUL is logged as "%c" of 0) as the
//  whole message with tag TAG and return what was written (caller frees), prefix and
//  newline included.
static char *
s_capture (const char *tag, const char *data, int len)
{
    char path[] = "/tmp/test_log.XXXXXX";
    int fd = mkstemp (path);
    assert_true (fd >= 0);
    int saved = dup (STDERR_FILENO);
    dup2 (fd, STDERR_FILENO);
    mesh_log_set_tag (tag);
    const char *nul = memchr (data, 0, (size_t) len);
    if (nul)
        mesh_log (MESH_LOG_ERR, "%.*s%c%.*s", (int) (nul - data), data, 0,
                  (int) (len - (nul - data) - 1), nul + 1);
    else
        mesh_log (MESH_LOG_ERR, "%.*s", len, data);
    dup2 (saved, STDERR_FILENO);
    close (saved);
    off_t size = lseek (fd, 0, SEEK_END);
    char *text = calloc (1, (size_t) size + 1);
    assert_int_equal (pread (fd, text, (size_t) size, 0), size);
    close (fd);
    unlink (path);
    return text;
}

//  Log DATA with the tag "t" and check the line is "<3>meshd[t]: " WANT "\n".
static void
s_expect (const char *data, int len, const char *want)
{
    char *got = s_capture ("t", data, len);
    char line[9000];
    snprintf (line, sizeof line, "<3>meshd[t]: %s\n", want);
    assert_string_equal (got, line);
    free (got);
}

#define EXPECT(data, want) s_expect (data, (int) sizeof (data) - 1, want)

static void
test_terminal_escapes (void **state)
{
    EXPECT ("backend said \x1b[2J\x1b]0;pwned\x07 ok", "backend said \\x1b[2J\\x1b]0;pwned\\x07 ok");
}

static void
test_c0_controls (void **state)
{
    EXPECT ("a\nb\rc\td\x01" "e\x1f" "f\x0b\x0c", "a\\x0ab\\x0dc\\x09d\\x01e\\x1ff\\x0b\\x0c");
    //  A forged second line stays on the first.
    EXPECT ("x\n<3>meshd[supervisor]: fake", "x\\x0a<3>meshd[supervisor]: fake");
}

static void
test_nul_and_del (void **state)
{
    EXPECT ("a\0b\x7f" "c", "a\\x00b\\x7fc");
}

static void
test_c1_controls (void **state)
{
    //  U+0085 NEL, U+009B CSI, U+0080 and U+009F as UTF-8; U+00A0 is not a control.
    EXPECT ("a\xc2\x85" "b\xc2\x9b" "31mc\xc2\x80\xc2\x9f\xc2\xa0", "a\\u0085b\\u009b31mc\\u0080\\u009f\xc2\xa0");
}

static void
test_invalid_utf8 (void **state)
{
    //  Raw C1 bytes, a lone continuation, a truncated sequence, an overlong '/', a
    //  surrogate, beyond U+10FFFF, 0xff.
    EXPECT ("\x85\x9b", "\\x85\\x9b");
    EXPECT ("\x80x", "\\x80x");
    EXPECT ("\xc3", "\\xc3");
    EXPECT ("\xe6\x97", "\\xe6\\x97");
    EXPECT ("\xc0\xaf", "\\xc0\\xaf");
    EXPECT ("\xed\xa0\x80", "\\xed\\xa0\\x80");
    EXPECT ("\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80");
    EXPECT ("\xff\xfe", "\\xff\\xfe");
}

static void
test_utf8_passes (void **state)
{
    EXPECT ("caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 \xef\xbf\xbd",
            "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 \xef\xbf\xbd");
}

static void
test_backslash_is_doubled (void **state)
{
    //  So that "\x1b" in the data cannot pass for an escaped ESC.
    EXPECT ("C:\\x1b\\", "C:\\\\x1b\\\\");
}

static void
test_tag_is_escaped (void **state)
{
    char *got = s_capture ("ops\x1b[31m\n", "m", 1);
    assert_string_equal (got, "<3>meshd[ops\\x1b[31m\\x0a]: m\n");
    free (got);
}

static void
test_long_line_is_one_line (void **state)
{
    //  2,000 ESCs: every one escaped, nothing cut inside an escape, one newline.
    char data[2000];
    memset (data, 0x1b, sizeof data);
    char *got = s_capture ("t", data, (int) sizeof data);
    assert_non_null (strstr (got, "\\x1b\\x1b"));
    assert_null (strchr (got, 0x1b));
    assert_ptr_equal (strchr (got, '\n'), got + strlen (got) - 1);
    const char *body = strstr (got, ": ") + 2;
    assert_int_equal ((strlen (body) - 1) % 4, 0);
    free (got);
}

static void
test_context_leaves_stderr_alone (void **state)
{
    //  With every context field set, the stderr line is byte for byte what it was.
    mesh_log_set_agent ("edge");
    mesh_log_context_set (MESH_LOG_CTX_DECISION, "0123456789abcdef");
    mesh_log_context_set (MESH_LOG_CTX_SERIES, "host=a");
    mesh_log_context_set (MESH_LOG_CTX_ACTION, "restart");
    char *got = s_capture ("t", "decided", 7);
    assert_string_equal (got, "<3>meshd[t]: decided\n");
    free (got);
    mesh_log_context_clear ();
    mesh_log_set_agent (NULL);
}

static void
test_context_set_and_cleared (void **state)
{
    assert_null (mesh_log_context_get (MESH_LOG_CTX_AGENT));
    mesh_log_set_agent ("edge");
    assert_string_equal (mesh_log_context_get (MESH_LOG_CTX_AGENT), "edge");
    mesh_log_context_set (MESH_LOG_CTX_DECISION, "abc");
    mesh_log_context_set (MESH_LOG_CTX_SERIES, "host=a\nPRIORITY=0");
    mesh_log_context_set (MESH_LOG_CTX_ACTION, "restart");
    assert_string_equal (mesh_log_context_get (MESH_LOG_CTX_DECISION), "abc");
    //  A newline in a series key cannot start a forged field.
    assert_string_equal (mesh_log_context_get (MESH_LOG_CTX_SERIES), "host=a\\x0aPRIORITY=0");
    assert_string_equal (mesh_log_context_get (MESH_LOG_CTX_ACTION), "restart");
    mesh_log_context_set (MESH_LOG_CTX_ACTION, NULL);
    assert_null (mesh_log_context_get (MESH_LOG_CTX_ACTION));
    mesh_log_context_clear ();
    assert_null (mesh_log_context_get (MESH_LOG_CTX_DECISION));
    assert_null (mesh_log_context_get (MESH_LOG_CTX_SERIES));
    //  The agent is the process's: it stays.
    assert_string_equal (mesh_log_context_get (MESH_LOG_CTX_AGENT), "edge");
    mesh_log_set_agent (NULL);
    assert_null (mesh_log_context_get (MESH_LOG_CTX_AGENT));
    assert_null (mesh_log_context_get ((mesh_log_ctx_t) 99));
}

static void *
s_other_thread (void *arg)
{
    //  Another thread sees none of the first one's context.
    return (void *) mesh_log_context_get (MESH_LOG_CTX_DECISION);
}

static void
test_context_is_per_thread (void **state)
{
    mesh_log_context_set (MESH_LOG_CTX_DECISION, "mine");
    pthread_t thread;
    void *seen = (void *) 1;
    assert_int_equal (pthread_create (&thread, NULL, s_other_thread, NULL), 0);
    pthread_join (thread, &seen);
    assert_null (seen);
    assert_string_equal (mesh_log_context_get (MESH_LOG_CTX_DECISION), "mine");
    mesh_log_context_clear ();
}

static void
test_context_is_bounded (void **state)
{
    //  A hostile series key: 10,000 bytes, and one of ESCs (4 bytes each escaped).
    char *big = malloc (10001);
    memset (big, 'k', 10000);
    big[10000] = 0;
    mesh_log_context_set (MESH_LOG_CTX_SERIES, big);
    const char *got = mesh_log_context_get (MESH_LOG_CTX_SERIES);
    assert_int_equal (strlen (got), MESH_LOG_FIELD_MAX - 1);
    assert_int_equal (strspn (got, "k"), MESH_LOG_FIELD_MAX - 1);
    memset (big, 0x1b, 10000);
    mesh_log_context_set (MESH_LOG_CTX_SERIES, big);
    got = mesh_log_context_get (MESH_LOG_CTX_SERIES);
    assert_true (strlen (got) < MESH_LOG_FIELD_MAX);
    assert_int_equal (strlen (got) % 4, 0);          //  never cut inside an escape
    assert_null (strchr (got, 0x1b));
    free (big);
    mesh_log_context_clear ();
}

static void
test_target_parse (void **state)
{
    mesh_log_target_t t;
    assert_int_equal (mesh_log_target_parse ("auto", &t), 0);
    assert_int_equal (t, MESH_LOG_AUTO);
    assert_int_equal (mesh_log_target_parse ("journal", &t), 0);
    assert_int_equal (t, MESH_LOG_JOURNAL);
    assert_int_equal (mesh_log_target_parse ("stderr", &t), 0);
    assert_int_equal (t, MESH_LOG_STDERR);
    assert_int_equal (mesh_log_target_parse ("syslog", &t), -1);
    assert_int_equal (mesh_log_target_parse ("", &t), -1);
    assert_int_equal (mesh_log_target_parse (NULL, &t), -1);
}

static void
test_auto_follows_journal_stream (void **state)
{
    //  JOURNAL_STREAM naming another file: stderr.  Naming stderr's device and inode
    //  (as systemd sets it for a unit whose stderr is the journal): journal.
    char path[] = "/tmp/test_log.XXXXXX";
    int fd = mkstemp (path);
    int saved = dup (STDERR_FILENO);
    dup2 (fd, STDERR_FILENO);
    struct stat st;
    assert_int_equal (fstat (STDERR_FILENO, &st), 0);
    char env[64];
    snprintf (env, sizeof env, "%llu:%llu", (unsigned long long) st.st_dev,
              (unsigned long long) st.st_ino + 1);
    setenv ("JOURNAL_STREAM", env, 1);
    mesh_log_set_target (MESH_LOG_AUTO);
    mesh_log_target_t other = mesh_log_target ();
    snprintf (env, sizeof env, "%llu:%llu", (unsigned long long) st.st_dev,
              (unsigned long long) st.st_ino);
    setenv ("JOURNAL_STREAM", env, 1);
    mesh_log_set_target (MESH_LOG_AUTO);
    mesh_log_target_t same = mesh_log_target ();
    setenv ("JOURNAL_STREAM", "garbage", 1);
    mesh_log_set_target (MESH_LOG_AUTO);
    mesh_log_target_t garbage = mesh_log_target ();
    unsetenv ("JOURNAL_STREAM");
    mesh_log_set_target (MESH_LOG_STDERR);
    dup2 (saved, STDERR_FILENO);
    close (saved);
    close (fd);
    unlink (path);
    assert_int_equal (other, MESH_LOG_STDERR);
    assert_int_equal (same, MESH_LOG_JOURNAL);
    assert_int_equal (garbage, MESH_LOG_STDERR);
}

static void
test_journal_refused_goes_to_stderr (void **state)
{
    //  Where no journald listens, every line still reaches stderr, in its usual form,
    //  after one warning that says so.
    if (access ("/run/systemd/journal/socket", F_OK) == 0) {
        skip ();
        return;
    }
    mesh_log_set_target (MESH_LOG_JOURNAL);
    char *one = s_capture ("t", "first", 5);
    char *two = s_capture ("t", "second", 6);
    mesh_log_set_target (MESH_LOG_STDERR);
    assert_non_null (strstr (one, "<4>meshd[t]: the journal refused a line ("));
    assert_non_null (strstr (one, "\n<3>meshd[t]: first\n"));
    assert_string_equal (two, "<3>meshd[t]: second\n");
    free (one);
    free (two);
}

static void
test_cli_lines (void **state)
{
    //  A tool's lines read like its own errors; the message is escaped all the same.
    mesh_log_set_cli ("meshctl");
    char *got = s_capture ("t", "no such \x1b id", 12);
    mesh_log_set_cli (NULL);
    assert_string_equal (got, "meshctl: no such \\x1b id\n");
    free (got);
    got = s_capture ("t", "back", 4);
    assert_string_equal (got, "<3>meshd[t]: back\n");
    free (got);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_terminal_escapes),
        cmocka_unit_test (test_c0_controls),
        cmocka_unit_test (test_nul_and_del),
        cmocka_unit_test (test_c1_controls),
        cmocka_unit_test (test_invalid_utf8),
        cmocka_unit_test (test_utf8_passes),
        cmocka_unit_test (test_backslash_is_doubled),
        cmocka_unit_test (test_tag_is_escaped),
        cmocka_unit_test (test_long_line_is_one_line),
        cmocka_unit_test (test_context_leaves_stderr_alone),
        cmocka_unit_test (test_context_set_and_cleared),
        cmocka_unit_test (test_context_is_per_thread),
        cmocka_unit_test (test_context_is_bounded),
        cmocka_unit_test (test_target_parse),
        cmocka_unit_test (test_auto_follows_journal_stream),
        cmocka_unit_test (test_journal_refused_goes_to_stderr),
        cmocka_unit_test (test_cli_lines),
    };
    return cmocka_run_group_tests_name ("log", tests, NULL, NULL);
}

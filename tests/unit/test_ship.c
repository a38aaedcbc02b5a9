/*  test_ship - the shipper's two pieces that need no broker: the state file (the last
 *  acknowledged seq and where that record starts) and the reader of the log (complete
 *  lines only, records only, seeking by seq with an offset hint that may be wrong).
 *  Delivery itself, against a broker that goes down, is tests/integration/audit_ship.sh.
 */
#include "ship.h"
#include "log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char dir [64];
    char log [128];
    char state [128];
} fixture_t;

static int
s_setup (void **state)
{
    fixture_t *fx = calloc (1, sizeof *fx);
    snprintf (fx->dir, sizeof fx->dir, "/tmp/test_ship.XXXXXX");
    if (!mkdtemp (fx->dir))
        return -1;
    snprintf (fx->log, sizeof fx->log, "%s/decisions.jsonl", fx->dir);
    snprintf (fx->state, sizeof fx->state, "%s/audit-ship.json", fx->dir);
    *state = fx;
    return 0;
}

static int
s_teardown (void **state)
{
    fixture_t *fx = *state;
    char tmp [160];
    snprintf (tmp, sizeof tmp, "%s.tmp", fx->state);
    unlink (tmp);
    unlink (fx->state);
    unlink (fx->log);
    rmdir (fx->dir);
    free (fx);
    return 0;
}

//  A record as the ledger writes it: seq, prev, ts first; hash last.
static void
s_line (char *buf, size_t size, int seq, const char *extra)
{
    snprintf (buf, size, "{\"seq\":%d,\"prev\":\"%064d\",\"ts\":17000000000%02d,\"type\":\"t\"%s,"
              "\"hash\":\"%064x\"}", seq, seq - 1, seq, extra, seq);
}

static void
s_append (const char *path, const char *text)
{
    FILE *file = fopen (path, "a");
    assert_non_null (file);
    fputs (text, file);
    fclose (file);
}

static void
s_append_record (const char *path, int seq)
{
    char line [512];
    s_line (line, sizeof line, seq, "");
    s_append (path, line);
    s_append (path, "\n");
}

static void
test_state_roundtrip (void **state)
{
    fixture_t *fx = *state;
    char why [512];
    mesh_ship_state_t st;
    //  No file: nothing acknowledged yet.
    assert_int_equal (mesh_ship_state_read (fx->state, &st, why, sizeof why), 0);
    assert_int_equal (st.seq, 0);
    mesh_ship_state_t written = { .seq = 42, .offset = 9000, .topic = "meshd.decisions" };
    memset (written.first, 'a', 64);
    assert_int_equal (mesh_ship_state_write (fx->state, &written, why, sizeof why), 0);
    assert_int_equal (mesh_ship_state_read (fx->state, &st, why, sizeof why), 1);
    assert_int_equal (st.seq, 42);
    assert_int_equal (st.offset, 9000);
    assert_string_equal (st.topic, "meshd.decisions");
    assert_memory_equal (st.first, written.first, 65);
    char tmp [160];
    snprintf (tmp, sizeof tmp, "%s.tmp", fx->state);
    assert_int_not_equal (access (tmp, F_OK), 0);      //  renamed, not left behind
    //  Replaced whole.
    written.seq = 43;
    assert_int_equal (mesh_ship_state_write (fx->state, &written, why, sizeof why), 0);
    assert_int_equal (mesh_ship_state_read (fx->state, &st, why, sizeof why), 1);
    assert_int_equal (st.seq, 43);
}

static void
test_state_malformed (void **state)
{
    fixture_t *fx = *state;
    char why [512];
    mesh_ship_state_t st;
    const char *bad [] = {
        "not json",
        "{\"seq\":-1,\"offset\":0,\"topic\":\"t\",\"first\":\"\"}",
        "{\"seq\":\"1\",\"offset\":0,\"topic\":\"t\",\"first\":\"\"}",
        "{\"seq\":1,\"offset\":0,\"topic\":\"t\",\"first\":\"abc\"}",
        "{\"seq\":1,\"offset\":0,\"first\":\"\"}",
        "{\"seq\":1,\"seq\":2,\"offset\":0,\"topic\":\"t\",\"first\":\"\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        unlink (fx->state);
        s_append (fx->state, bad [i]);
        why [0] = 0;
        assert_int_equal (mesh_ship_state_read (fx->state, &st, why, sizeof why), -1);
        assert_non_null (strstr (why, fx->state));
    }
    //  Too large to be ours.
    unlink (fx->state);
    FILE *file = fopen (fx->state, "w");
    for (int i = 0; i < 5000; i++)
        fputc (' ', file);
    fclose (file);
    assert_int_equal (mesh_ship_state_read (fx->state, &st, why, sizeof why), -1);
}

static void
test_reader_lines (void **state)
{
    fixture_t *fx = *state;
    char why [512], line1 [512];
    s_append_record (fx->log, 1);
    s_append_record (fx->log, 2);
    mesh_ship_reader_t *reader = mesh_ship_reader_new (fx->log, why, sizeof why);
    assert_non_null (reader);
    const char *line;
    size_t length;
    int64_t seq, ts, offset;
    assert_int_equal (mesh_ship_reader_next (reader, &line, &length, &seq, &ts, &offset, why,
                                             sizeof why), 1);
    s_line (line1, sizeof line1, 1, "");
    assert_int_equal (length, strlen (line1));
    assert_memory_equal (line, line1, length);         //  the exact bytes, no newline
    assert_int_equal (seq, 1);
    assert_int_equal (ts, 1700000000001);
    assert_int_equal (offset, 0);
    assert_int_equal (mesh_ship_reader_next (reader, &line, &length, &seq, &ts, &offset, why,
                                             sizeof why), 1);
    assert_int_equal (seq, 2);
    assert_int_equal (offset, (int64_t) strlen (line1) + 1);
    //  What was read ahead is read again after forget (the ledger may have rewritten it).
    mesh_ship_reader_forget (reader);
    //  A line being written is not a record yet.
    assert_int_equal (mesh_ship_reader_next (reader, &line, &length, &seq, &ts, &offset, why,
                                             sizeof why), 0);
    char line3 [512];
    s_line (line3, sizeof line3, 3, "");
    s_append (fx->log, "{\"seq\":3,\"pr");
    assert_int_equal (mesh_ship_reader_next (reader, &line, &length, &seq, &ts, &offset, why,
                                             sizeof why), 0);
    s_append (fx->log, line3 + strlen ("{\"seq\":3,\"pr"));
    s_append (fx->log, "\n");
    assert_int_equal (mesh_ship_reader_next (reader, &line, &length, &seq, &ts, &offset, why,
                                             sizeof why), 1);
    assert_int_equal (seq, 3);
    assert_memory_equal (line, line3, length);
    //  The first record's hash identifies the log.
    char hex [65];
    assert_int_equal (mesh_ship_reader_first_hash (reader, hex, why, sizeof why), 0);
    assert_string_equal (hex, "0000000000000000000000000000000000000000000000000000000000000001");
    //  Something that is not a record is an error, not skipped.
    s_append (fx->log, "garbage\n");
    assert_int_equal (mesh_ship_reader_next (reader, &line, &length, &seq, &ts, &offset, why,
                                             sizeof why), -1);
    assert_non_null (strstr (why, "not a record"));
    mesh_ship_reader_destroy (&reader);
    assert_null (reader);
}

static void
test_reader_seek (void **state)
{
    fixture_t *fx = *state;
    char why [512];
    int64_t offsets [6] = { 0 };
    for (int seq = 1; seq <= 5; seq++)
        s_append_record (fx->log, seq);
    mesh_ship_reader_t *reader = mesh_ship_reader_new (fx->log, why, sizeof why);
    const char *line;
    size_t length;
    int64_t seq, ts, offset;
    for (int i = 1; i <= 5; i++) {
        assert_int_equal (mesh_ship_reader_next (reader, &line, &length, &seq, &ts, &offset,
                                                 why, sizeof why), 1);
        offsets [i] = offset;
    }
    //  The right hint, a wrong one (scanned from the start), no hint, and the start.
    int64_t hints [] = { offsets [3], offsets [2], 7, 0 };
    for (size_t i = 0; i < sizeof hints / sizeof hints [0]; i++) {
        assert_int_equal (mesh_ship_reader_seek (reader, 3, hints [i], why, sizeof why), 0);
        assert_int_equal (mesh_ship_reader_next (reader, &line, &length, &seq, &ts, &offset,
                                                 why, sizeof why), 1);
        assert_int_equal (seq, 4);
        assert_int_equal (offset, offsets [4]);
    }
    assert_int_equal (mesh_ship_reader_seek (reader, 0, 0, why, sizeof why), 0);
    assert_int_equal (mesh_ship_reader_next (reader, &line, &length, &seq, &ts, &offset, why,
                                             sizeof why), 1);
    assert_int_equal (seq, 1);
    //  A seq the log does not hold.
    assert_int_equal (mesh_ship_reader_seek (reader, 9, 0, why, sizeof why), -1);
    assert_non_null (strstr (why, "no record seq 9"));
    mesh_ship_reader_destroy (&reader);
}

//  A record much longer than the reader's first buffer, and an empty log.
static void
test_reader_long_and_empty (void **state)
{
    fixture_t *fx = *state;
    char why [512], hex [65];
    FILE *file = fopen (fx->log, "w");
    fclose (file);
    mesh_ship_reader_t *reader = mesh_ship_reader_new (fx->log, why, sizeof why);
    assert_int_equal (mesh_ship_reader_first_hash (reader, hex, why, sizeof why), 0);
    assert_string_equal (hex, "");
    size_t big = 300000;
    char *extra = malloc (big + 32);
    strcpy (extra, ",\"detail\":\"");
    memset (extra + strlen (extra), 'x', big);
    strcpy (extra + 11 + big, "\"");
    char *line = malloc (big + 512);
    s_line (line, big + 512, 1, extra);
    s_append (fx->log, line);
    s_append (fx->log, "\n");
    const char *got;
    size_t length;
    int64_t seq, ts, offset;
    assert_int_equal (mesh_ship_reader_next (reader, &got, &length, &seq, &ts, &offset, why,
                                             sizeof why), 1);
    assert_int_equal (length, strlen (line));
    assert_memory_equal (got, line, length);
    mesh_ship_reader_destroy (&reader);
    free (extra);
    free (line);
    //  A missing log is an error at open.
    assert_null (mesh_ship_reader_new ("/nonexistent/decisions.jsonl", why, sizeof why));
    assert_non_null (strstr (why, "/nonexistent"));
}

//  The log rotated into segments while the reader reads it, then resumed by seq across
//  segments, then the oldest segment removed by retention.
static void
test_reader_segments (void **state)
{
    fixture_t *fx = *state;
    char why [512], seg1 [400];
    snprintf (seg1, sizeof seg1, "%s.seg-000000000001", fx->log);
    for (int seq = 1; seq <= 3; seq++)
        s_append_record (fx->log, seq);
    mesh_ship_reader_t *reader = mesh_ship_reader_new (fx->log, why, sizeof why);
    assert_non_null (reader);
    const char *got;
    size_t length;
    int64_t seq, ts, offset;
    assert_int_equal (mesh_ship_reader_next (reader, &got, &length, &seq, &ts, &offset, why,
                                             sizeof why), 1);
    assert_int_equal (seq, 1);
    //  Rotated: seq 3 still to read from the sealed file, and one more written into it
    //  before the rename; then the new log.
    s_append_record (fx->log, 4);
    assert_int_equal (rename (fx->log, seg1), 0);
    for (int n = 5; n <= 7; n++)
        s_append_record (fx->log, n);
    for (int want = 2; want <= 7; want++) {
        assert_int_equal (mesh_ship_reader_next (reader, &got, &length, &seq, &ts, &offset, why,
                                                 sizeof why), 1);
        assert_int_equal (seq, want);
    }
    assert_int_equal (mesh_ship_reader_next (reader, &got, &length, &seq, &ts, &offset, why,
                                             sizeof why), 0);
    //  Resume after seq 2 (in the segment) and after seq 5 (in the active log).
    assert_int_equal (mesh_ship_reader_seek (reader, 2, 0, why, sizeof why), 0);
    assert_int_equal (mesh_ship_reader_next (reader, &got, &length, &seq, &ts, &offset, why,
                                             sizeof why), 1);
    assert_int_equal (seq, 3);
    assert_int_equal (mesh_ship_reader_seek (reader, 5, 0, why, sizeof why), 0);
    assert_int_equal (mesh_ship_reader_next (reader, &got, &length, &seq, &ts, &offset, why,
                                             sizeof why), 1);
    assert_int_equal (seq, 6);
    //  A second rotation: 5..7 sealed, 8 in a new log; then segment 1..4 removed.
    char seg5 [400];
    snprintf (seg5, sizeof seg5, "%s.seg-000000000005", fx->log);
    assert_int_equal (rename (fx->log, seg5), 0);
    s_append_record (fx->log, 8);
    assert_int_equal (mesh_ship_reader_next (reader, &got, &length, &seq, &ts, &offset, why,
                                             sizeof why), 1);
    assert_int_equal (seq, 7);
    assert_int_equal (mesh_ship_reader_next (reader, &got, &length, &seq, &ts, &offset, why,
                                             sizeof why), 1);
    assert_int_equal (seq, 8);
    assert_int_equal (unlink (seg1), 0);
    assert_int_equal (mesh_ship_reader_seek (reader, 2, 0, why, sizeof why), 0);
    assert_int_equal (mesh_ship_reader_next (reader, &got, &length, &seq, &ts, &offset, why,
                                             sizeof why), 1);
    assert_int_equal (seq, 5);          //  1..4 are gone: from the first record kept
    mesh_ship_reader_destroy (&reader);
    unlink (seg5);
}

//  Shipping is off unless audit.ship.topic is set: no shipper, and no error.
static void
test_off_by_default (void **state)
{
    fixture_t *fx = *state;
    mesh_config_t cfg = { .state_dir = fx->dir };
    char why [64] = "x";
    assert_null (mesh_ship_new (&cfg, "127.0.0.1:9092", fx->log, 0, why, sizeof why));
    assert_string_equal (why, "");
    mesh_ship_t *none = NULL;
    mesh_ship_notify (none, 5);                         //  safe on NULL
    mesh_ship_destroy (&none, 0);
    assert_int_not_equal (access (fx->state, F_OK), 0);
}

int
main (void)
{
    mesh_log_set_level (MESH_LOG_ERR);
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_state_roundtrip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_state_malformed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_reader_lines, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_reader_seek, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_reader_long_and_empty, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_reader_segments, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_off_by_default, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

/*  test_audit - the decision log reader: verify, list, show, stats, the scanner.
 *
 *  The logs here are written by a small writer in this file that follows the format
 *  as documented (docs/audit.md), not by daemon/ledger.c: that way these tests pin the
 *  format itself, and test_ledger.c checks that the ledger writes what verify accepts.
 */
#include "audit.h"
#include "log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <ftw.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ID_A "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
#define ID_B "deadbeef00000000000000000000000000000000000000000000000000000001"
#define ID_C "deadbeef11111111111111111111111111111111111111111111111111111111"
#define ID_D "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

typedef struct {
    char dir[64];
    char path[128];
    char *text;                     //  the log as written by s_build
    size_t len;
} fixture_t;

//  ---------------------------------------------------------------------------------------
//  A writer that follows the documented format.

typedef struct {
    char *buf;
    size_t len;
    FILE *out;
    int64_t seq;
    char hash[65];
    const unsigned char *key;       //  set: records carry a "mac" (HMAC-SHA256 with it)
} writer_t;

static void
s_writer_init (writer_t *w)
{
    memset (w, 0, sizeof *w);
    w->out = open_memstream (&w->buf, &w->len);
    memset (w->hash, '0', 64);
}

//  Append FIELDS (stolen) with the given ts.
static void
s_writer_add (writer_t *w, int64_t ts, json_t *fields)
{
    json_t *obj = json_pack ("{s:I, s:s, s:I}", "seq", (json_int_t) (w->seq + 1), "prev",
                             w->hash, "ts", (json_int_t) ts);
    json_object_update (obj, fields);
    json_decref (fields);
    char *text = json_dumps (obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    size_t prefix = strlen (text) - 1;
    char *body = (char *) malloc (prefix + 80);
    memcpy (body, text, prefix);
    if (w->key) {
        //  The documented MAC, computed here with sodium directly, not with the module.
        unsigned char mac[32];
        char hex[65];
        crypto_auth_hmacsha256_state st;
        crypto_auth_hmacsha256_init (&st, w->key, 32);
        crypto_auth_hmacsha256_update (&st, (unsigned char *) text, prefix);
        crypto_auth_hmacsha256_final (&st, mac);
        sodium_bin2hex (hex, sizeof hex, mac, sizeof mac);
        prefix += (size_t) sprintf (body + prefix, ",\"mac\":\"%s\"", hex);
    }
    unsigned char digest[32];
    crypto_hash_sha256 (digest, (unsigned char *) body, prefix);
    sodium_bin2hex (w->hash, sizeof w->hash, digest, sizeof digest);
    fwrite (body, 1, prefix, w->out);
    fprintf (w->out, ",\"hash\":\"%s\"}\n", w->hash);
    w->seq++;
    free (body);
    free (text);
    json_decref (obj);
}

static char *
s_writer_done (writer_t *w, size_t *len_p)
{
    fclose (w->out);
    *len_p = w->len;
    return w->buf;
}

static void
s_write_file (const char *path, const char *data, size_t len)
{
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    assert_int_equal (fwrite (data, 1, len, file), len);
    fclose (file);
}

static void
s_write_head (const char *path, int64_t seq, const char *hash)
{
    char head_path[256], text[128];
    snprintf (head_path, sizeof head_path, "%s.head", path);
    int n = snprintf (text, sizeof text, "{\"seq\":%lld,\"hash\":\"%s\"}\n", (long long) seq,
                      hash);
    s_write_file (head_path, text, (size_t) n);
}

static void
s_remove_head (const char *path)
{
    char head_path[256];
    snprintf (head_path, sizeof head_path, "%s.head", path);
    unlink (head_path);
}

//  The hash of line SEQ (1-based) of TEXT.
static void
s_line_hash (const char *text, int seq, char *hash)
{
    const char *line = text;
    for (int i = 1; i < seq; i++)
        line = strchr (line, '\n') + 1;
    const char *end = strchr (line, '\n');
    memcpy (hash, end - 66, 64);
    hash[64] = 0;
}

//  [start, end) of line N (1-based) of TEXT, end including the newline.
static void
s_line_span (const char *text, int n, size_t *start, size_t *end)
{
    const char *line = text;
    for (int i = 1; i < n; i++)
        line = strchr (line, '\n') + 1;
    *start = (size_t) (line - text);
    *end = (size_t) (strchr (line, '\n') + 1 - text);
}

//  Six records: ledger open, three decisions (two with outcomes), a note, one more
//  decision.  Timestamps 1000, 2000, ... 6000.
static void
s_build (fixture_t *fx)
{
    writer_t w;
    s_writer_init (&w);
    s_writer_add (&w, 1000, json_pack ("{s:s, s:s}", "type", "ledger", "event", "open"));
    s_writer_add (&w, 2000, json_pack (
        "{s:s, s:s, s:s, s:s, s:b, s:{s:s, s:s, s:{}}, s:i, s:[{}, {}], s:{s:s}}",
        "type", "decision", "id", ID_A, "agent", "cpu", "verdict", "accepted",
        "fallback", 0, "action", "name", "restart", "kind", "exec", "params",
        "tokens", 120, "attempts", "incident", "series", "web1/cpu"));
    s_writer_add (&w, 3000, json_pack (
        "{s:s, s:s, s:s, s:s, s:b, s:{s:s}, s:i, s:[{}]}",
        "type", "decision", "id", ID_B, "agent", "disk", "verdict", "rejected",
        "fallback", 1, "action", "name", "notify", "tokens", 300, "attempts"));
    s_writer_add (&w, 4000, json_pack ("{s:s, s:s, s:s, s:s}", "type", "outcome", "id", ID_A,
                                       "status", "done", "detail", "restarted"));
    s_writer_add (&w, 5000, json_pack ("{s:s, s:s, s:s, s:s}", "type", "outcome", "id", ID_B,
                                       "status", "failed", "detail", "timeout"));
    s_writer_add (&w, 6000, json_pack (
        "{s:s, s:s, s:s, s:s, s:b, s:{s:s}, s:i, s:[]}",
        "type", "decision", "id", ID_C, "agent", "cpu", "verdict", "budget_exhausted",
        "fallback", 1, "action", "name", "notify", "tokens", 0, "attempts"));
    fx->text = s_writer_done (&w, &fx->len);
    s_write_file (fx->path, fx->text, fx->len);
    char hash[65];
    s_line_hash (fx->text, 6, hash);
    s_write_head (fx->path, 6, hash);
}

static int
s_setup (void **state)
{
    fixture_t *fx = (fixture_t *) calloc (1, sizeof *fx);
    snprintf (fx->dir, sizeof fx->dir, "/tmp/test_audit.XXXXXX");
    if (!mkdtemp (fx->dir))
        return -1;
    snprintf (fx->path, sizeof fx->path, "%s/decisions.log", fx->dir);
    s_build (fx);
    *state = fx;
    return 0;
}

static int
s_rm (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove (path);
}

static int
s_teardown (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    nftw (fx->dir, s_rm, 8, FTW_DEPTH | FTW_PHYS);
    free (fx->text);
    free (fx);
    return 0;
}

//  Run FN-like calls into a memory stream; the caller frees *out_p.
#define CAPTURE(rc, out_p, call) \
    do { \
        size_t cap_len_; \
        FILE *out = open_memstream (out_p, &cap_len_); \
        rc = (call); \
        fclose (out); \
    } while (0)

//  ---------------------------------------------------------------------------------------
//  verify

static void
test_verify_ok (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    char *text;
    int rc;
    CAPTURE (rc, &text, mesh_audit_verify (fx->path, false, out));
    assert_int_equal (rc, 0);
    assert_string_equal (text, "ok: 6 records, last seq 6, head matches\n"
                               "mac: not checked (key not given)\n");
    free (text);

    CAPTURE (rc, &text, mesh_audit_verify (fx->path, true, out));
    assert_int_equal (rc, 0);
    json_t *res = json_loads (text, 0, NULL);
    assert_non_null (res);
    assert_true (json_is_true (json_object_get (res, "ok")));
    assert_int_equal (json_integer_value (json_object_get (res, "records")), 6);
    assert_int_equal (json_integer_value (json_object_get (res, "last_seq")), 6);
    assert_string_equal (json_string_value (json_object_get (res, "head")), "matches");
    assert_string_equal (json_string_value (json_object_get (res, "mac")), "not_checked");
    json_decref (res);
    free (text);

    //  Without a head file, removing records from the end would go unnoticed: a failure,
    //  unless the head is declared advisory; the output says which.
    mesh_audit_verify_opts_t advisory = { .head_advisory = true };
    s_remove_head (fx->path);
    CAPTURE (rc, &text, mesh_audit_verify (fx->path, false, out));
    assert_int_equal (rc, 1);
    assert_non_null (strstr (text, "FAIL: no head file"));
    assert_non_null (strstr (text, "--head-advisory"));
    free (text);
    CAPTURE (rc, &text, mesh_audit_verify_with (fx->path, &advisory, out));
    assert_int_equal (rc, 0);
    assert_string_equal (text, "ok: 6 records, last seq 6, no head file (advisory)\n"
                               "mac: not checked (key not given)\n");
    free (text);

    //  A head behind (one record: a crash between the log's fsync and the head's rename;
    //  three: the head was put back) fails, saying what a crash leaves; advisory: ok.
    for (int behind = 1; behind <= 3; behind += 2) {
        char hash[65];
        s_line_hash (fx->text, 6 - behind, hash);
        s_write_head (fx->path, 6 - behind, hash);
        CAPTURE (rc, &text, mesh_audit_verify (fx->path, false, out));
        assert_int_equal (rc, 1);
        char want[64];
        snprintf (want, sizeof want, "behind by %d record(s)", behind);
        assert_non_null (strstr (text, want));
        assert_non_null (strstr (text, "(256 records) behind is what a crash"));
        assert_non_null (strstr (text, "next start of meshd brings it up to date"));
        free (text);
        CAPTURE (rc, &text, mesh_audit_verify_with (fx->path, &advisory, out));
        assert_int_equal (rc, 0);
        snprintf (want, sizeof want, "head behind at seq %d (advisory)\n", 6 - behind);
        assert_non_null (strstr (text, want));
        free (text);
    }
    advisory.json = true;
    CAPTURE (rc, &text, mesh_audit_verify_with (fx->path, &advisory, out));
    res = json_loads (text, 0, NULL);
    assert_true (json_is_true (json_object_get (res, "ok")));
    assert_string_equal (json_string_value (json_object_get (res, "head")), "behind");
    assert_int_equal (json_integer_value (json_object_get (res, "head_seq")), 3);
    json_decref (res);
    free (text);
}

static void
test_verify_empty_and_unreadable (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    char *text;
    int rc;
    s_write_file (fx->path, "", 0);
    s_remove_head (fx->path);
    CAPTURE (rc, &text, mesh_audit_verify (fx->path, false, out));
    assert_int_equal (rc, 0);
    assert_string_equal (text, "ok: 0 records, last seq 0, no head file\n"
                               "mac: not checked (key not given)\n");
    free (text);

    //  An empty log with a head that names records: they were removed.
    char hash[65];
    s_line_hash (fx->text, 6, hash);
    s_write_head (fx->path, 6, hash);
    CAPTURE (rc, &text, mesh_audit_verify (fx->path, false, out));
    assert_int_equal (rc, 1);
    assert_non_null (strstr (text, "FAIL: record seq 1 (line 1): missing"));
    free (text);

    char missing[256];
    snprintf (missing, sizeof missing, "%s/nope.log", fx->dir);
    CAPTURE (rc, &text, mesh_audit_verify (missing, false, out));
    assert_int_equal (rc, 2);
    free (text);
}

//  Every single-bit change of any byte of record 3, its newline included, is found and
//  blamed on record 3.
static void
test_verify_flip_every_byte (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    size_t start, end;
    s_line_span (fx->text, 3, &start, &end);
    assert_true (end - start > 100);
    char *copy = (char *) malloc (fx->len);
    for (size_t i = start; i < end; i++) {
        memcpy (copy, fx->text, fx->len);
        copy[i] ^= 0x01;
        s_write_file (fx->path, copy, fx->len);
        char *text;
        int rc;
        CAPTURE (rc, &text, mesh_audit_verify (fx->path, false, out));
        if (rc != 1 || strncmp (text, "FAIL: record seq 3 (line 3): ", 29) != 0)
            fail_msg ("byte %zu flipped: rc %d, output %s", i - start, rc, text);
        free (text);
    }
    //  The JSON form names the same record.
    memcpy (copy, fx->text, fx->len);
    copy[start + 10] ^= 0x01;
    s_write_file (fx->path, copy, fx->len);
    char *text;
    int rc;
    CAPTURE (rc, &text, mesh_audit_verify (fx->path, true, out));
    assert_int_equal (rc, 1);
    json_t *res = json_loads (text, 0, NULL);
    assert_false (json_is_true (json_object_get (res, "ok")));
    assert_int_equal (json_integer_value (json_object_get (res, "seq")), 3);
    assert_int_equal (json_integer_value (json_object_get (res, "line")), 3);
    assert_non_null (strstr (json_string_value (json_object_get (res, "error")), "hash"));
    json_decref (res);
    free (text);
    free (copy);
}

//  Write the fixture's log with line REMOVE (1-based) left out.
static void
s_write_without (fixture_t *fx, int remove)
{
    size_t start, end;
    s_line_span (fx->text, remove, &start, &end);
    char *copy = (char *) malloc (fx->len);
    memcpy (copy, fx->text, start);
    memcpy (copy + start, fx->text + end, fx->len - end);
    s_write_file (fx->path, copy, fx->len - (end - start));
    free (copy);
}

static void
test_verify_removed_and_reordered (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    char *text;
    int rc;
    //  A record removed in the middle: the next one's seq and prev break.
    s_write_without (fx, 3);
    CAPTURE (rc, &text, mesh_audit_verify (fx->path, false, out));
    assert_int_equal (rc, 1);
    assert_non_null (strstr (text, "FAIL: record seq 3 (line 3): seq is 4, expected 3"));
    free (text);

    //  The first record removed.
    s_write_without (fx, 1);
    CAPTURE (rc, &text, mesh_audit_verify (fx->path, false, out));
    assert_int_equal (rc, 1);
    assert_non_null (strstr (text, "FAIL: record seq 1 (line 1)"));
    free (text);

    //  The last record removed: the chain holds, the head does not.
    s_write_without (fx, 6);
    CAPTURE (rc, &text, mesh_audit_verify (fx->path, false, out));
    assert_int_equal (rc, 1);
    assert_non_null (strstr (text, "FAIL: record seq 6 (line 6): missing"));
    free (text);

    //  Two records swapped.
    size_t s3, e3, s4, e4;
    s_line_span (fx->text, 3, &s3, &e3);
    s_line_span (fx->text, 4, &s4, &e4);
    char *copy = (char *) malloc (fx->len);
    memcpy (copy, fx->text, s3);
    memcpy (copy + s3, fx->text + s4, e4 - s4);
    memcpy (copy + s3 + (e4 - s4), fx->text + s3, e3 - s3);
    memcpy (copy + e4, fx->text + e4, fx->len - e4);
    s_write_file (fx->path, copy, fx->len);
    free (copy);
    CAPTURE (rc, &text, mesh_audit_verify (fx->path, false, out));
    assert_int_equal (rc, 1);
    assert_non_null (strstr (text, "FAIL: record seq 3 (line 3): seq is 4"));
    free (text);
}

static void
test_verify_bad_lines_and_head (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    char *text;
    int rc;
    //  A line that is not JSON, inserted after record 2.
    size_t start, end;
    s_line_span (fx->text, 3, &start, &end);
    char *copy = (char *) malloc (fx->len + 32);
    memcpy (copy, fx->text, start);
    memcpy (copy + start, "not json at all\n", 16);
    memcpy (copy + start + 16, fx->text + start, fx->len - start);
    s_write_file (fx->path, copy, fx->len + 16);
    CAPTURE (rc, &text, mesh_audit_verify (fx->path, false, out));
    assert_int_equal (rc, 1);
    assert_non_null (strstr (text, "FAIL: record seq 3 (line 3): not JSON"));
    free (text);

    //  A truncated last line (a torn write) whose record the head names: it was durable,
    //  so its loss is not a crash's doing.
    s_line_span (fx->text, 6, &start, &end);
    s_write_file (fx->path, fx->text, start + 40);
    CAPTURE (rc, &text, mesh_audit_verify (fx->path, false, out));
    assert_int_equal (rc, 1);
    assert_non_null (strstr (text, "FAIL: record seq 6"));
    free (text);
    //  The same torn line after a head at seq 5 (what a crash mid-write leaves): reported
    //  as torn, not as tampering.
    char hash5[65];
    s_line_hash (fx->text, 5, hash5);
    s_write_head (fx->path, 5, hash5);
    CAPTURE (rc, &text, mesh_audit_verify (fx->path, false, out));
    assert_int_equal (rc, 0);
    assert_non_null (strstr (text, "ok: 5 records"));
    assert_non_null (strstr (text, "torn: line 6, after seq 5, is a write cut short by a crash"));
    free (text);
    CAPTURE (rc, &text, mesh_audit_verify (fx->path, true, out));
    assert_int_equal (rc, 0);
    assert_non_null (strstr (text, "\"torn_tail\":{\"line\":6"));
    free (text);
    s_line_hash (fx->text, 6, hash5);
    s_write_head (fx->path, 6, hash5);

    //  A valid record without the ledger's fields in front is refused on order, not bytes.
    writer_t w;
    s_writer_init (&w);
    s_writer_add (&w, 1, json_pack ("{s:s}", "event", "no type"));
    size_t len;
    char *one = s_writer_done (&w, &len);
    s_write_file (fx->path, one, len);
    s_remove_head (fx->path);
    CAPTURE (rc, &text, mesh_audit_verify (fx->path, false, out));
    assert_int_equal (rc, 1);
    assert_non_null (strstr (text, "FAIL: record seq 1 (line 1): no string \"type\""));
    free (text);
    free (one);

    //  The log intact, but the head names another hash for the last record.
    s_write_file (fx->path, fx->text, fx->len);
    char hash[65];
    s_line_hash (fx->text, 5, hash);
    s_write_head (fx->path, 6, hash);
    CAPTURE (rc, &text, mesh_audit_verify (fx->path, false, out));
    assert_int_equal (rc, 1);
    assert_non_null (strstr (text, "FAIL: record seq 6 (line 6): its hash differs"));
    free (text);

    //  A malformed head file.
    char head_path[256];
    snprintf (head_path, sizeof head_path, "%s.head", fx->path);
    s_write_file (head_path, "{\"seq\":\"six\"}", 13);
    CAPTURE (rc, &text, mesh_audit_verify (fx->path, false, out));
    assert_int_equal (rc, 1);
    assert_int_equal (strncmp (text, "FAIL: head file ", 16), 0);
    assert_non_null (strstr (text, ".head is not"));
    free (text);
    free (copy);
}

static void
test_scan_reports_position (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_audit_scan_t scan;
    //  A torn last line: damaged content, last line, good bytes end before it.
    size_t start, end;
    s_line_span (fx->text, 6, &start, &end);
    s_write_file (fx->path, fx->text, start + 40);
    FILE *file = fopen (fx->path, "r");
    assert_int_equal (mesh_audit_scan (file, NULL, &scan, NULL, NULL), 0);
    fclose (file);
    assert_int_equal (scan.records, 5);
    assert_int_equal (scan.last_seq, 5);
    assert_int_equal (scan.bad_line, 6);
    assert_int_equal (scan.bad_seq, 6);
    assert_true (scan.bad_is_last);
    assert_true (scan.bad_content);
    assert_int_equal (scan.good_bytes, start);
    char hash[65];
    s_line_hash (fx->text, 5, hash);
    assert_string_equal (scan.last_hash, hash);

    //  A removed middle record: an order break, not the last line.
    s_write_without (fx, 2);
    file = fopen (fx->path, "r");
    assert_int_equal (mesh_audit_scan (file, NULL, &scan, NULL, NULL), 0);
    fclose (file);
    assert_int_equal (scan.bad_line, 2);
    assert_false (scan.bad_is_last);
    assert_false (scan.bad_content);

    //  Intact.
    s_write_file (fx->path, fx->text, fx->len);
    file = fopen (fx->path, "r");
    assert_int_equal (mesh_audit_scan (file, NULL, &scan, NULL, NULL), 0);
    fclose (file);
    assert_int_equal (scan.bad_line, 0);
    assert_int_equal (scan.records, 6);
    assert_int_equal (scan.good_bytes, fx->len);
}

//  ---------------------------------------------------------------------------------------
//  MACs

static const unsigned char s_key[32] = "0123456789abcdef0123456789abcdef";
static const unsigned char s_other_key[32] = "fedcba9876543210fedcba9876543210";

//  Write W's log to FX's path with a matching head.
static void
s_write_log (fixture_t *fx, writer_t *w)
{
    int64_t seq = w->seq;
    char hash[65];
    memcpy (hash, w->hash, sizeof hash);
    size_t len;
    char *text = s_writer_done (w, &len);
    s_write_file (fx->path, text, len);
    s_write_head (fx->path, seq, hash);
    free (text);
}

static json_t *
s_note (int n)
{
    return json_pack ("{s:s, s:i}", "type", "note", "n", n);
}

static void
test_verify_macs (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_audit_verify_opts_t with_key = { .key = s_key };
    mesh_audit_verify_opts_t other_key = { .key = s_other_key };
    char *text;
    int rc;
    //  Every record MAC'd with the key.
    writer_t w;
    s_writer_init (&w);
    w.key = s_key;
    for (int i = 0; i < 4; i++)
        s_writer_add (&w, 1000 + i, s_note (i));
    s_write_log (fx, &w);
    CAPTURE (rc, &text, mesh_audit_verify_with (fx->path, &with_key, out));
    assert_int_equal (rc, 0);
    assert_string_equal (text, "ok: 4 records, last seq 4, head matches\n"
                               "mac: verified for every record\n");
    free (text);
    //  Without the key only the chain is checked, and the output says so.
    CAPTURE (rc, &text, mesh_audit_verify (fx->path, false, out));
    assert_int_equal (rc, 0);
    assert_non_null (strstr (text, "mac: not checked (key not given)"));
    free (text);
    //  Another key: the first record is blamed.
    CAPTURE (rc, &text, mesh_audit_verify_with (fx->path, &other_key, out));
    assert_int_equal (rc, 1);
    assert_non_null (strstr (text, "FAIL: record seq 1 (line 1): MAC does not verify"));
    free (text);

    //  A record appended by someone without the key: valid chain and head, a made-up MAC.
    s_writer_init (&w);
    w.key = s_key;
    for (int i = 0; i < 3; i++)
        s_writer_add (&w, 1000 + i, s_note (i));
    w.key = s_other_key;
    s_writer_add (&w, 2000, s_note (9));
    s_write_log (fx, &w);
    CAPTURE (rc, &text, mesh_audit_verify (fx->path, false, out));
    assert_int_equal (rc, 0);                       //  the chain alone cannot tell
    free (text);
    CAPTURE (rc, &text, mesh_audit_verify_with (fx->path, &with_key, out));
    assert_int_equal (rc, 1);
    assert_non_null (strstr (text, "FAIL: record seq 4 (line 4): MAC does not verify"));
    free (text);

    //  ... or with no MAC at all after records that carry one.
    s_writer_init (&w);
    w.key = s_key;
    for (int i = 0; i < 3; i++)
        s_writer_add (&w, 1000 + i, s_note (i));
    w.key = NULL;
    s_writer_add (&w, 2000, s_note (9));
    s_write_log (fx, &w);
    CAPTURE (rc, &text, mesh_audit_verify_with (fx->path, &with_key, out));
    assert_int_equal (rc, 1);
    assert_non_null (strstr (text, "FAIL: record seq 4 (line 4): no \"mac\" although every "
                                   "record since seq 1 carries one"));
    free (text);

    //  A "mac" field that is not where the ledger puts it, or not hex.
    s_writer_init (&w);
    s_writer_add (&w, 1000, json_pack ("{s:s, s:s}", "type", "note", "mac",
                                       "zz000000000000000000000000000000"
                                       "00000000000000000000000000000000"));
    s_write_log (fx, &w);
    CAPTURE (rc, &text, mesh_audit_verify_with (fx->path, &with_key, out));
    assert_int_equal (rc, 1);
    assert_non_null (strstr (text, "FAIL: record seq 1 (line 1): \"mac\" is not 64"));
    free (text);
}

//  A log written before MACs: records without one are accepted up to the ledger's "mac"
//  record, and only there.
static void
test_verify_macs_after_old_records (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_audit_verify_opts_t with_key = { .key = s_key, .json = false };
    char *text;
    int rc;
    writer_t w;
    s_writer_init (&w);
    for (int i = 0; i < 3; i++)
        s_writer_add (&w, 1000 + i, s_note (i));
    //  Old records alone: fine, and said so.
    writer_t copy;
    s_writer_init (&copy);
    for (int i = 0; i < 3; i++)
        s_writer_add (&copy, 1000 + i, s_note (i));
    s_write_log (fx, &copy);
    CAPTURE (rc, &text, mesh_audit_verify_with (fx->path, &with_key, out));
    assert_int_equal (rc, 0);
    assert_non_null (strstr (text, "mac: no record carries one"));
    free (text);
    with_key.json = true;
    CAPTURE (rc, &text, mesh_audit_verify_with (fx->path, &with_key, out));
    json_t *old = json_loads (text, 0, NULL);
    assert_string_equal (json_string_value (json_object_get (old, "mac")), "absent");
    json_decref (old);
    free (text);
    with_key.json = false;

    w.key = s_key;
    s_writer_add (&w, 2000, json_pack ("{s:s, s:s, s:i}", "type", "ledger", "event", "mac",
                                       "since", 4));
    s_writer_add (&w, 2001, s_note (4));
    s_write_log (fx, &w);
    CAPTURE (rc, &text, mesh_audit_verify_with (fx->path, &with_key, out));
    assert_int_equal (rc, 0);
    assert_non_null (strstr (text, "mac: verified from seq 4 (the 3 record(s) before it were "
                                   "written before records carried a MAC)"));
    free (text);
    with_key.json = true;
    CAPTURE (rc, &text, mesh_audit_verify_with (fx->path, &with_key, out));
    json_t *res = json_loads (text, 0, NULL);
    assert_string_equal (json_string_value (json_object_get (res, "mac")), "verified");
    assert_int_equal (json_integer_value (json_object_get (res, "mac_since")), 4);
    json_decref (res);
    free (text);
    with_key.json = false;

    //  Old records followed by a MAC'd record that is not the "mac" record, or names
    //  another seq.
    for (int variant = 0; variant < 2; variant++) {
        s_writer_init (&w);
        for (int i = 0; i < 3; i++)
            s_writer_add (&w, 1000 + i, s_note (i));
        w.key = s_key;
        if (variant == 0)
            s_writer_add (&w, 2000, s_note (4));
        else
            s_writer_add (&w, 2000, json_pack ("{s:s, s:s, s:i}", "type", "ledger", "event",
                                               "mac", "since", 2));
        s_write_log (fx, &w);
        CAPTURE (rc, &text, mesh_audit_verify_with (fx->path, &with_key, out));
        assert_int_equal (rc, 1);
        assert_non_null (strstr (text, "FAIL: record seq 4 (line 4): the first record with a "
                                       "MAC, after 3 without one"));
        free (text);
    }
}

static void
test_load_key (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    char path[256], link[256], why[256];
    unsigned char key[32];
    snprintf (path, sizeof path, "%s/key", fx->dir);
    snprintf (link, sizeof link, "%s/key.link", fx->dir);
    assert_int_equal (mesh_audit_load_key (path, true, key, why, sizeof why), 0);

    s_write_file (path, (const char *) s_key, 32);
    chmod (path, 0600);
    memset (key, 0, sizeof key);
    assert_int_equal (mesh_audit_load_key (path, true, key, why, sizeof why), 1);
    assert_memory_equal (key, s_key, 32);
    chmod (path, 0400);
    assert_int_equal (mesh_audit_load_key (path, true, key, why, sizeof why), 1);

    //  Readable by the group: refused by the supervisor, read by an auditor.
    chmod (path, 0640);
    assert_int_equal (mesh_audit_load_key (path, true, key, why, sizeof why), -1);
    assert_non_null (strstr (why, "mode 0640"));
    assert_int_equal (mesh_audit_load_key (path, false, key, why, sizeof why), 1);
    chmod (path, 0600);

    //  Owned by someone else (only root can arrange that here).
    if (geteuid () == 0) {
        assert_int_equal (chown (path, 4242, 4242), 0);
        assert_int_equal (mesh_audit_load_key (path, true, key, why, sizeof why), -1);
        assert_non_null (strstr (why, "owned by uid 4242"));
        assert_int_equal (chown (path, 0, 0), 0);
    }
    //  The wrong size.
    s_write_file (path, (const char *) s_key, 31);
    assert_int_equal (mesh_audit_load_key (path, true, key, why, sizeof why), -1);
    assert_non_null (strstr (why, "holds 31 bytes, not 32"));
    s_write_file (path, "", 0);
    assert_int_equal (mesh_audit_load_key (path, false, key, why, sizeof why), -1);

    //  A symbolic link, a directory.
    s_write_file (path, (const char *) s_key, 32);
    assert_int_equal (symlink (path, link), 0);
    assert_int_equal (mesh_audit_load_key (link, false, key, why, sizeof why), -1);
    assert_non_null (strstr (why, "symbolic link"));
    assert_int_equal (mesh_audit_load_key (fx->dir, false, key, why, sizeof why), -1);
    assert_non_null (strstr (why, "not a regular file"));
}

//  ---------------------------------------------------------------------------------------
//  list, show, stats, each_decision

static int
s_count_lines (const char *text)
{
    int n = 0;
    for (; *text; text++)
        n += *text == '\n';
    return n;
}

static void
test_list_filters (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    char *text;
    int rc;
    CAPTURE (rc, &text, mesh_audit_list (fx->path, NULL, false, out));
    assert_int_equal (rc, 0);
    assert_int_equal (s_count_lines (text), 1 + 3);     //  header + three decisions
    assert_non_null (strstr (text, "SEQ"));
    //  seq, ISO time, short id, agent, verdict, action, tokens, outcome.
    assert_non_null (strstr (text, "2      1970-01-01T00:00:02.000Z a1b2c3d4e5f6 cpu"));
    assert_non_null (strstr (text, "accepted"));
    assert_non_null (strstr (text, "restart"));
    assert_non_null (strstr (text, "120 done"));
    assert_non_null (strstr (text, "300 failed"));
    assert_null (strstr (text, ID_A));                  //  short ids only
    free (text);

    mesh_audit_filter_t f = { .agent = "cpu" };
    CAPTURE (rc, &text, mesh_audit_list (fx->path, &f, false, out));
    assert_int_equal (s_count_lines (text), 1 + 2);
    assert_null (strstr (text, "disk"));
    free (text);

    f = (mesh_audit_filter_t) { .verdict = "rejected" };
    CAPTURE (rc, &text, mesh_audit_list (fx->path, &f, false, out));
    assert_int_equal (s_count_lines (text), 1 + 1);
    assert_non_null (strstr (text, "deadbeef0000"));
    free (text);

    f = (mesh_audit_filter_t) { .action = "notify", .agent = "cpu" };
    CAPTURE (rc, &text, mesh_audit_list (fx->path, &f, false, out));
    assert_int_equal (s_count_lines (text), 1 + 1);
    assert_non_null (strstr (text, "deadbeef1111"));
    assert_non_null (strstr (text, "budget_exhausted"));
    free (text);

    //  since inclusive, until exclusive.
    f = (mesh_audit_filter_t) { .since_ms = 3000, .until_ms = 6000 };
    CAPTURE (rc, &text, mesh_audit_list (fx->path, &f, true, out));
    assert_int_equal (rc, 0);
    json_t *rows = json_loads (text, 0, NULL);
    assert_true (json_is_array (rows));
    assert_int_equal (json_array_size (rows), 1);
    json_t *row = json_array_get (rows, 0);
    assert_string_equal (json_string_value (json_object_get (row, "id")), ID_B);
    assert_int_equal (json_integer_value (json_object_get (row, "seq")), 3);
    assert_int_equal (json_integer_value (json_object_get (row, "tokens")), 300);
    assert_string_equal (json_string_value (json_object_get (row, "outcome")), "failed");
    assert_string_equal (json_string_value (json_object_get (row, "time")),
                         "1970-01-01T00:00:03.000Z");
    assert_true (json_is_true (json_object_get (row, "fallback")));
    json_decref (rows);
    free (text);

    f = (mesh_audit_filter_t) { .agent = "nobody" };
    CAPTURE (rc, &text, mesh_audit_list (fx->path, &f, true, out));
    assert_string_equal (text, "[]\n");
    free (text);

    char missing[256];
    snprintf (missing, sizeof missing, "%s/nope.log", fx->dir);
    CAPTURE (rc, &text, mesh_audit_list (missing, NULL, false, out));
    assert_int_equal (rc, 2);
    free (text);
}

//  Decisions with missing and wrong-typed fields, and a line that is not JSON, are shown
//  as far as they go and never crash the views.
static void
test_views_tolerate_odd_records (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    const char *odd =
        "{\"type\":\"decision\"}\n"
        "garbage\n"
        "{\"type\":\"decision\",\"id\":7,\"agent\":[1],\"verdict\":null,\"action\":\"x\","
        "\"tokens\":\"many\",\"attempts\":{},\"fallback\":\"yes\",\"ts\":-5}\n"
        "{\"type\":\"outcome\",\"status\":3}\n";
    s_write_file (fx->path, odd, strlen (odd));
    char *text;
    int rc;
    CAPTURE (rc, &text, mesh_audit_list (fx->path, NULL, false, out));
    assert_int_equal (rc, 0);
    assert_int_equal (s_count_lines (text), 1 + 2);
    free (text);
    CAPTURE (rc, &text, mesh_audit_list (fx->path, NULL, true, out));
    json_t *rows = json_loads (text, 0, NULL);
    assert_int_equal (json_array_size (rows), 2);
    assert_true (json_is_null (json_object_get (json_array_get (rows, 1), "tokens")));
    json_decref (rows);
    free (text);

    mesh_audit_stats_t stats;
    assert_int_equal (mesh_audit_stats (fx->path, &stats), 0);
    assert_int_equal (stats.records, 3);
    assert_int_equal (stats.decisions, 2);
    assert_int_equal (stats.tokens, 0);
    assert_int_equal (stats.attempts, 0);
    assert_int_equal (stats.fallback, 0);
    assert_int_equal (stats.outcomes, 1);
    assert_int_equal (stats.outcomes_failed, 0);
    assert_true (stats.tokens_per_accepted == 0.0);
}

static void
test_show_by_prefix (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    char *text;
    int rc;
    //  A unique 8-character prefix: decision and outcome, as a timeline.
    CAPTURE (rc, &text, mesh_audit_show (fx->path, "a1b2c3d4", false, out));
    assert_int_equal (rc, 0);
    assert_non_null (strstr (text, "decision " ID_A " (seq 2)\n"));
    assert_non_null (strstr (text, "1970-01-01T00:00:02.000Z verdict: accepted\n"));
    assert_non_null (strstr (text, "1970-01-01T00:00:02.000Z action: restart kind exec params {}\n"));
    assert_non_null (strstr (text, "detector: series web1/cpu\n"));
    assert_non_null (strstr (text, "1970-01-01T00:00:04.000Z outcome: done (seq 4) detail restarted\n"));
    free (text);

    //  The full id, JSON.
    CAPTURE (rc, &text, mesh_audit_show (fx->path, ID_B, true, out));
    assert_int_equal (rc, 0);
    json_t *res = json_loads (text, 0, NULL);
    assert_non_null (res);
    json_t *decision = json_object_get (res, "decision");
    assert_string_equal (json_string_value (json_object_get (decision, "id")), ID_B);
    assert_int_equal (json_integer_value (json_object_get (decision, "seq")), 3);
    assert_string_equal (json_string_value (json_object_get (json_object_get (res, "outcome"),
                                                             "status")), "failed");
    json_decref (res);
    free (text);

    //  No outcome recorded.
    CAPTURE (rc, &text, mesh_audit_show (fx->path, ID_C, true, out));
    assert_int_equal (rc, 0);
    res = json_loads (text, 0, NULL);
    assert_true (json_is_null (json_object_get (res, "outcome")));
    json_decref (res);
    free (text);
    CAPTURE (rc, &text, mesh_audit_show (fx->path, ID_C, false, out));
    assert_non_null (strstr (text, "outcome: none recorded\n"));
    free (text);

    //  Ambiguous prefix, too short a prefix, unknown id: 1 and nothing printed.
    const char *bad[] = { "deadbeef", "a1b2c3d", "ffffffffff", "" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CAPTURE (rc, &text, mesh_audit_show (fx->path, bad[i], false, out));
        assert_int_equal (rc, 1);
        assert_string_equal (text, "");
        free (text);
    }
    //  A longer prefix settles the ambiguity.
    CAPTURE (rc, &text, mesh_audit_show (fx->path, "deadbeef1", true, out));
    assert_int_equal (rc, 0);
    assert_non_null (strstr (text, ID_C));
    free (text);

    char missing[256];
    snprintf (missing, sizeof missing, "%s/nope.log", fx->dir);
    CAPTURE (rc, &text, mesh_audit_show (missing, ID_A, false, out));
    assert_int_equal (rc, 2);
    free (text);
}

//  The timeline of a full decision: the event, the detector, the group, every attempt with
//  its rules' verdicts (bounded output, escaped control characters), the approval asked
//  and given, the outcome; --json carries the approval records.  And a decision with
//  nothing but its id is shown too.
static void
test_show_timeline (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    char long_output[2000];
    memset (long_output, 'x', sizeof long_output - 1);
    long_output[sizeof long_output - 1] = 0;
    memcpy (long_output, "line1\n\x1b[2Jline2", 15);
    writer_t w;
    s_writer_init (&w);
    s_writer_add (&w, 1000, json_pack (
        "{s:s, s:s, s:s, s:s, s:{s:s, s:i, s:i}, s:{s:s, s:s, s:f, s:f, s:{s:s, s:i, s:i}},"
        " s:{s:{s:s, s:f}}, s:[{s:i, s:s, s:s, s:i, s:i, s:s, s:b, s:o,"
        " s:[{s:s, s:s, s:n}, {s:s, s:s, s:s}]},"
        " {s:i, s:s, s:s, s:i, s:i, s:s, s:b, s:[{s:s, s:s, s:n}, {s:s, s:s, s:n, s:s}]}],"
        " s:s, s:b, s:{s:s, s:s, s:{s:s}}, s:{s:b, s:s, s:[s]}, s:i}",
        "type", "decision", "id", ID_D, "agent", "ops", "mode", "act",
        "trigger", "topic", "metrics", "partition", 3, "offset", 418,
        "incident", "series", "web-3/cpu", "detector", "ewma", "value", 35.88, "score", 0.5,
        "group", "key", "web-3/cpu", "members", 2, "points", 5,
        "ctx", "event", "host", "web-3", "value", 35.88,
        "attempts",
        "step", 1, "backend", "small", "model", "tiny", "charged", 400, "latency_ms", 12,
        "output", long_output, "accepted", 0, "escalated", json_string ("rejected"),
        "verdicts", "rule", "builtin", "verdict", "accept", "reason",
        "rule", "floor", "verdict", "reject", "reason", "confidence 0.2 is below 0.5",
        "step", 2, "backend", "big", "model", "large", "charged", 900, "latency_ms", 340,
        "output", "{\"action\":\"restart\"}", "accepted", 1,
        "verdicts", "rule", "builtin", "verdict", "accept", "reason",
        "rule", "approve_restarts", "verdict", "accept", "reason", "approval", "a restart",
        "verdict", "accepted", "fallback", 0,
        "action", "name", "restart", "kind", "exec", "params", "service", "search",
        "approval", "required", 1, "reason", "a restart", "rules", "approve_restarts",
        "tokens", 1300));
    s_writer_add (&w, 1100, json_pack ("{s:s, s:s, s:s, s:s, s:s}", "type", "approval", "id",
                                       ID_D, "agent", "ops", "action", "restart", "state",
                                       "pending"));
    s_writer_add (&w, 9000, json_pack ("{s:s, s:s, s:s, s:s, s:{s:s, s:s, s:I}}", "type",
                                       "outcome", "id", ID_D, "status", "done", "detail",
                                       "exit 0", "approval", "how", "approved", "comment",
                                       "ok", "at", (json_int_t) 8000));
    s_writer_add (&w, 9500, json_pack ("{s:s, s:s}", "type", "decision", "id", ID_A));
    size_t len;
    char *log = s_writer_done (&w, &len);
    s_write_file (fx->path, log, len);
    free (log);

    char *text;
    int rc;
    CAPTURE (rc, &text, mesh_audit_show (fx->path, ID_D, false, out));
    assert_int_equal (rc, 0);
    const char *want[] = {
        "decision " ID_D " (seq 1)\n",
        "  agent ops mode act\n",
        "event: topic metrics partition 3 offset 418 {\"host\":\"web-3\",\"value\":35.88}\n",
        "detector: detector ewma series web-3/cpu value 35.88 score 0.5\n",
        "incident group: key web-3/cpu members 2 points 5\n",
        "reasoning: 2 attempt(s), 1300 tokens\n",
        "  attempt 1: step 1 backend small model tiny, 400 tokens, 12 ms escalated rejected\n",
        "    output: line1\\n\\x1b[2Jline2xxx",
        "... (1999 bytes)\n",
        "    rule builtin: accept\n",
        "    rule floor: reject: confidence 0.2 is below 0.5\n",
        "    not accepted\n",
        "  attempt 2: step 2 backend big model large, 900 tokens, 340 ms\n",
        "    rule approve_restarts: accept (asks approval: a restart)\n",
        "1970-01-01T00:00:01.000Z verdict: accepted\n",
        "action: restart kind exec params {\"service\":\"search\"}\n",
        "approval asked: reason a restart rules [\"approve_restarts\"]\n",
        "1970-01-01T00:00:01.100Z approval: state pending action restart\n",
        "1970-01-01T00:00:08.000Z approval resolved: how approved comment ok\n",
        "1970-01-01T00:00:09.000Z outcome: done (seq 3) detail exit 0\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr (text, want[i]))
            fail_msg ("the timeline lacks '%s':\n%s", want[i], text);
    assert_null (strchr (text, 0x1b));          //  no raw escape reaches the terminal
    assert_true (strlen (text) < 4000);         //  the long output is cut
    free (text);

    //  JSON: the raw records, with the approval record beside them.
    CAPTURE (rc, &text, mesh_audit_show (fx->path, ID_D, true, out));
    assert_int_equal (rc, 0);
    assert_non_null (strstr (text, "\"value\":35.88,"));    //  shortest form
    json_t *res = json_loads (text, 0, NULL);
    assert_int_equal (json_array_size (json_object_get (res, "approvals")), 1);
    assert_string_equal (json_string_value (json_object_get (
                             json_array_get (json_object_get (res, "approvals"), 0), "state")),
                         "pending");
    assert_string_equal (json_string_value (json_object_get (json_object_get (res, "outcome"),
                                                             "status")), "done");
    json_decref (res);
    free (text);

    //  A decision with nothing but its id: shown, fields absent.
    CAPTURE (rc, &text, mesh_audit_show (fx->path, ID_A, false, out));
    assert_int_equal (rc, 0);
    assert_non_null (strstr (text, "reasoning: 0 attempt(s)\n"));
    assert_non_null (strstr (text, "verdict: -\n"));
    assert_non_null (strstr (text, "action: none\n"));
    assert_non_null (strstr (text, "outcome: none recorded\n"));
    free (text);
    CAPTURE (rc, &text, mesh_audit_show (fx->path, ID_A, true, out));
    assert_non_null (strstr (text, "\"outcome\":null,\"approvals\":[]}"));
    free (text);
}

static void
test_stats_numbers (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_audit_stats_t stats;
    assert_int_equal (mesh_audit_stats (fx->path, &stats), 0);
    assert_int_equal (stats.records, 6);
    assert_int_equal (stats.decisions, 3);
    assert_int_equal (stats.accepted, 1);
    assert_int_equal (stats.rejected, 1);
    assert_int_equal (stats.budget_exhausted, 1);
    assert_int_equal (stats.fallback, 2);
    assert_int_equal (stats.outcomes, 2);
    assert_int_equal (stats.outcomes_failed, 1);
    assert_int_equal (stats.tokens, 420);
    assert_int_equal (stats.attempts, 3);
    assert_true (stats.tokens_per_accepted == 420.0);

    char missing[256];
    snprintf (missing, sizeof missing, "%s/nope.log", fx->dir);
    assert_int_equal (mesh_audit_stats (missing, &stats), 2);
}

static void
s_collect (json_t *decision, void *arg)
{
    json_array_append (arg, json_object_get (decision, "id"));
}

static void
test_each_decision (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    json_t *ids = json_array ();
    assert_int_equal (mesh_audit_each_decision (fx->path, s_collect, ids), 0);
    assert_int_equal (json_array_size (ids), 3);
    assert_string_equal (json_string_value (json_array_get (ids, 0)), ID_A);
    assert_string_equal (json_string_value (json_array_get (ids, 1)), ID_B);
    assert_string_equal (json_string_value (json_array_get (ids, 2)), ID_C);
    json_decref (ids);
    char missing[256];
    snprintf (missing, sizeof missing, "%s/nope.log", fx->dir);
    assert_int_equal (mesh_audit_each_decision (missing, s_collect, NULL), 2);
}

int
main (void)
{
    if (!getenv ("MESH_LOG_LEVEL"))
        mesh_log_set_level (MESH_LOG_ERR - 1);      //  the failure paths log on purpose
    if (sodium_init () < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_verify_ok, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_verify_empty_and_unreadable, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_verify_flip_every_byte, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_verify_removed_and_reordered, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_verify_bad_lines_and_head, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_scan_reports_position, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_verify_macs, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_verify_macs_after_old_records, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_load_key, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_list_filters, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_views_tolerate_odd_records, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_show_by_prefix, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_show_timeline, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_stats_numbers, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_each_decision, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name ("audit", tests, NULL, NULL);
}

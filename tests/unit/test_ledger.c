/*  test_ledger - the decision ledger: the chain it writes, idempotency per id, the
 *  repair of a torn last line, and refusal to open a log with a broken history.
 *
 *  Every log the ledger leaves behind is also checked with mesh_audit_verify, the
 *  auditor's view, so the writer and the reader cannot drift apart.
 */
#include "ledger.h"
#include "audit.h"
#include "log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ID_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define ID_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define ID_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

typedef struct {
    char dir[64];
    char path[160];                 //  under two directories the ledger must create
    char key[160];                  //  the MAC key file (created by the first open)
} fixture_t;

static int
s_setup (void **state)
{
    fixture_t *fx = (fixture_t *) calloc (1, sizeof *fx);
    snprintf (fx->dir, sizeof fx->dir, "/tmp/test_ledger.XXXXXX");
    if (!mkdtemp (fx->dir))
        return -1;
    snprintf (fx->path, sizeof fx->path, "%s/state/log/decisions.log", fx->dir);
    snprintf (fx->key, sizeof fx->key, "%s/state/ledger.key", fx->dir);
    unsetenv ("CREDENTIALS_DIRECTORY");
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
    free (fx);
    return 0;
}

static char *
s_read_file (const char *path, size_t *len_p)
{
    FILE *file = fopen (path, "r");
    assert_non_null (file);
    fseek (file, 0, SEEK_END);
    long len = ftell (file);
    fseek (file, 0, SEEK_SET);
    char *buf = (char *) malloc ((size_t) len + 1);
    assert_int_equal (fread (buf, 1, (size_t) len, file), (size_t) len);
    buf[len] = 0;
    fclose (file);
    *len_p = (size_t) len;
    return buf;
}

static void
s_write_file (const char *path, const char *data, size_t len, const char *mode)
{
    FILE *file = fopen (path, mode);
    assert_non_null (file);
    assert_int_equal (fwrite (data, 1, len, file), len);
    fclose (file);
}

//  The records of the log, parsed, in order.
static json_t *
s_records (const char *path)
{
    size_t len;
    char *text = s_read_file (path, &len);
    json_t *records = json_array ();
    char *save = NULL;
    for (char *line = strtok_r (text, "\n", &save); line; line = strtok_r (NULL, "\n", &save)) {
        json_t *record = json_loads (line, 0, NULL);
        assert_non_null (record);
        json_array_append_new (records, record);
    }
    free (text);
    return records;
}

//  The auditor's view, with the ledger's key (read from KEY_PATH).
static int
s_verify_key (const char *path, const char *key_path, char **text_p)
{
    unsigned char key[32];
    char why[256];
    assert_int_equal (mesh_audit_load_key (key_path, true, key, why, sizeof why), 1);
    mesh_audit_verify_opts_t opts = { .key = key };
    size_t len;
    FILE *out = open_memstream (text_p, &len);
    int rc = mesh_audit_verify_with (path, &opts, out);
    fclose (out);
    return rc;
}

#define s_verify(path, text_p) s_verify_key (path, fx->key, text_p)

static json_t *
s_decision (const char *id, const char *verdict)
{
    return json_pack ("{s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:i}", "type", "decision", "id", id,
                      "agent", "cpu", "verdict", verdict, "action", "name", "notify", "kind",
                      "log", "tokens", 42);
}

static json_t *
s_outcome (const char *id, const char *status)
{
    return json_pack ("{s:s, s:s, s:s, s:s}", "type", "outcome", "id", id, "agent", "cpu",
                      "status", status);
}

static int64_t
s_append (mesh_ledger_t *ledger, json_t *record)
{
    int64_t seq = mesh_ledger_append (ledger, record);
    json_decref (record);
    return seq;
}

//  ---------------------------------------------------------------------------------------

static void
test_create_append_reopen (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mode_t old_umask = umask (022);
    mesh_ledger_t *ledger = mesh_ledger_open (fx->path, fx->key);
    umask (old_umask);
    assert_non_null (ledger);
    assert_string_equal (mesh_ledger_path (ledger), fx->path);
    assert_int_equal (mesh_ledger_seq (ledger), 1);          //  the "open" record

    struct stat st;
    assert_int_equal (stat (fx->path, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0640);
    char dir[200];
    snprintf (dir, sizeof dir, "%s/state/log", fx->dir);
    assert_int_equal (stat (dir, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0750);

    assert_int_equal (s_append (ledger, s_decision (ID_A, "accepted")), 2);
    assert_int_equal (s_append (ledger, json_pack ("{s:s, s:s}", "type", "note", "text",
                                                   "line\nbreak \"quoted\"")), 3);
    assert_int_equal (mesh_ledger_seq (ledger), 3);
    assert_true (mesh_ledger_last_fsync_ms (ledger) >= 0.0);
    mesh_ledger_destroy (&ledger);
    assert_null (ledger);
    mesh_ledger_destroy (&ledger);                         //  safe on NULL

    //  Reopen: the chain continues after a new "open" record.
    ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    assert_int_equal (mesh_ledger_seq (ledger), 4);
    assert_int_equal (s_append (ledger, s_outcome (ID_A, "done")), 5);
    mesh_ledger_destroy (&ledger);

    char *text;
    assert_int_equal (s_verify (fx->path, &text), 0);
    assert_string_equal (text, "ok: 5 records, last seq 5, head matches\n"
                               "mac: verified for every record\n");
    free (text);

    json_t *records = s_records (fx->path);
    assert_int_equal (json_array_size (records), 5);
    const char *events[] = { "open", NULL, NULL, "open", NULL };
    for (size_t i = 0; i < 5; i++)
        if (events[i]) {
            json_t *r = json_array_get (records, i);
            assert_string_equal (json_string_value (json_object_get (r, "type")), "ledger");
            assert_string_equal (json_string_value (json_object_get (r, "event")), events[i]);
        }
    assert_string_equal (json_string_value (json_object_get (json_array_get (records, 2),
                                                             "text")),
                         "line\nbreak \"quoted\"");
    json_decref (records);
}

//  What is on disk is the documented format: seq, prev, ts first, the caller's fields in
//  its order, hash last over the bytes before it; the head names the last record.
static void
test_format_on_disk (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_ledger_t *ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    json_t *decision = s_decision (ID_A, "accepted");
    assert_int_equal (mesh_ledger_append (ledger, decision), 2);
    //  The caller's record is borrowed and left as it was.
    assert_null (json_object_get (decision, "seq"));
    assert_null (json_object_get (decision, "hash"));
    json_decref (decision);

    //  Read while the ledger is still open: fsync'd content is there.
    size_t len;
    char *text = s_read_file (fx->path, &len);
    assert_true (len > 0 && text[len - 1] == '\n');
    char *second = strchr (text, '\n') + 1;
    assert_int_equal (strncmp (text, "{\"seq\":1,\"prev\":\""
                               "0000000000000000000000000000000000000000000000000000000000000000"
                               "\",\"ts\":", 88), 0);
    assert_int_equal (strncmp (second, "{\"seq\":2,\"prev\":\"", 17), 0);
    //  The second record's prev is the first one's hash.
    char *first_hash = second - 67;
    assert_int_equal (strncmp (second + 17, first_hash, 64), 0);
    //  The caller's fields follow ts in the caller's order.
    assert_non_null (strstr (second, ",\"type\":\"decision\",\"id\":\"" ID_A "\",\"agent\":"
                             "\"cpu\",\"verdict\":\"accepted\",\"action\":{\"name\":\"notify\","
                             "\"kind\":\"log\"},\"tokens\":42,\"mac\":\""));
    //  mac = HMAC-SHA256 (key file) of the bytes before `,"mac":"`; hash = SHA-256 of the
    //  bytes before `,"hash":"`, the MAC included.
    size_t second_len = (size_t) (text + len - second) - 1;
    size_t prefix = second_len - 75;
    size_t mac_at = prefix - 73;
    unsigned char key[32], digest[32];
    char hex[65], mac[65];
    char why[256];
    assert_int_equal (mesh_audit_load_key (fx->key, true, key, why, sizeof why), 1);
    crypto_auth_hmacsha256 (digest, (unsigned char *) second, mac_at, key);
    sodium_bin2hex (mac, sizeof mac, digest, sizeof digest);
    assert_int_equal (strncmp (second + mac_at, ",\"mac\":\"", 8), 0);
    assert_int_equal (strncmp (second + mac_at + 8, mac, 64), 0);
    crypto_hash_sha256 (digest, (unsigned char *) second, prefix);
    sodium_bin2hex (hex, sizeof hex, digest, sizeof digest);
    assert_int_equal (strncmp (second + prefix, ",\"hash\":\"", 9), 0);
    assert_int_equal (strncmp (second + prefix + 9, hex, 64), 0);

    char head_path[200];
    snprintf (head_path, sizeof head_path, "%s.head", fx->path);
    size_t head_len;
    char *head = s_read_file (head_path, &head_len);
    char want[128];
    snprintf (want, sizeof want, "{\"seq\":2,\"hash\":\"%s\"}\n", hex);
    assert_string_equal (head, want);
    free (head);
    free (text);
    mesh_ledger_destroy (&ledger);
}

static void
test_idempotent_per_id (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_ledger_t *ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    assert_int_equal (s_append (ledger, s_decision (ID_A, "accepted")), 2);
    //  The same decision again (even with other content) writes nothing.
    assert_int_equal (s_append (ledger, s_decision (ID_A, "rejected")), 2);
    assert_int_equal (mesh_ledger_seq (ledger), 2);
    assert_int_equal (s_append (ledger, s_outcome (ID_A, "done")), 3);
    assert_int_equal (s_append (ledger, s_outcome (ID_A, "failed")), 3);
    assert_int_equal (s_append (ledger, s_decision (ID_A, "accepted")), 2);
    assert_int_equal (mesh_ledger_seq (ledger), 3);
    assert_int_equal (mesh_ledger_record_seq (ledger, ID_A, false), 2);
    assert_int_equal (mesh_ledger_record_seq (ledger, ID_A, true), 3);
    assert_int_equal (mesh_ledger_record_seq (ledger, ID_B, false), 0);
    assert_int_equal (s_append (ledger, s_decision (ID_B, "rejected")), 4);
    mesh_ledger_destroy (&ledger);

    //  After a restart the index is rebuilt from the log: still idempotent.
    ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    assert_int_equal (mesh_ledger_seq (ledger), 5);
    assert_int_equal (s_append (ledger, s_decision (ID_A, "accepted")), 2);
    assert_int_equal (s_append (ledger, s_outcome (ID_A, "done")), 3);
    assert_int_equal (s_append (ledger, s_decision (ID_B, "rejected")), 4);
    assert_int_equal (s_append (ledger, s_outcome (ID_B, "skipped")), 6);
    assert_int_equal (s_append (ledger, s_outcome (ID_B, "skipped")), 6);
    assert_int_equal (mesh_ledger_seq (ledger), 6);
    mesh_ledger_destroy (&ledger);

    json_t *records = s_records (fx->path);
    assert_int_equal (json_array_size (records), 6);
    json_decref (records);
}

static void
test_refused_records (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_ledger_t *ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    size_t before, after;
    free (s_read_file (fx->path, &before));

    json_t *bad[] = {
        s_outcome (ID_C, "done"),                                   //  unknown id
        json_pack ("{s:s}", "id", ID_A),                            //  no type
        json_pack ("{s:i}", "type", 3),                             //  type not a string
        json_pack ("{s:s, s:i}", "type", "note", "seq", 9),         //  the ledger's fields
        json_pack ("{s:s, s:s}", "type", "note", "prev", "x"),
        json_pack ("{s:s, s:i}", "type", "note", "ts", 1),
        json_pack ("{s:s, s:s}", "type", "note", "hash", "x"),
        json_pack ("{s:s, s:s}", "type", "ledger", "event", "open"),   //  reserved type
        json_pack ("{s:s, s:s}", "type", "decision", "agent", "cpu"),  //  no id
        json_pack ("{s:s, s:s}", "type", "decision", "id", ""),
        json_pack ("{s:s, s:i}", "type", "outcome", "id", 5),
        json_pack ("[s]", "type"),                                  //  not an object
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_non_null (bad[i]);
        if (mesh_ledger_append (ledger, bad[i]) != -1)
            fail_msg ("bad record %zu was accepted", i);
        json_decref (bad[i]);
    }
    assert_int_equal (mesh_ledger_append (ledger, NULL), -1);
    assert_int_equal (mesh_ledger_seq (ledger), 1);
    free (s_read_file (fx->path, &after));
    assert_int_equal (before, after);
    assert_int_equal (mesh_ledger_lookup (ledger, ID_C, NULL), MESH_LEDGER_NONE);
    mesh_ledger_destroy (&ledger);
}

static void
test_lookup_states (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_ledger_t *ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    json_t *decision = (json_t *) 1;
    assert_int_equal (mesh_ledger_lookup (ledger, ID_A, &decision), MESH_LEDGER_NONE);
    assert_null (decision);
    assert_int_equal (mesh_ledger_lookup (ledger, NULL, NULL), MESH_LEDGER_NONE);

    assert_int_equal (s_append (ledger, s_decision (ID_A, "accepted")), 2);
    assert_int_equal (mesh_ledger_lookup (ledger, ID_A, &decision), MESH_LEDGER_DECIDED);
    assert_non_null (decision);
    assert_string_equal (json_string_value (json_object_get (decision, "verdict")), "accepted");
    assert_int_equal (json_integer_value (json_object_get (decision, "seq")), 2);
    assert_int_equal (strlen (json_string_value (json_object_get (decision, "hash"))), 64);
    json_decref (decision);
    assert_int_equal (mesh_ledger_lookup (ledger, ID_A, NULL), MESH_LEDGER_DECIDED);

    assert_int_equal (s_append (ledger, s_outcome (ID_A, "done")), 3);
    assert_int_equal (mesh_ledger_lookup (ledger, ID_A, &decision), MESH_LEDGER_COMPLETE);
    assert_null (decision);
    assert_int_equal (s_append (ledger, s_decision (ID_B, "rejected")), 4);
    mesh_ledger_destroy (&ledger);

    //  The same states after a restart, the stored decision included.
    ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    assert_int_equal (mesh_ledger_lookup (ledger, ID_A, NULL), MESH_LEDGER_COMPLETE);
    assert_int_equal (mesh_ledger_lookup (ledger, ID_B, &decision), MESH_LEDGER_DECIDED);
    assert_non_null (decision);
    assert_int_equal (json_integer_value (json_object_get (decision, "seq")), 4);
    assert_string_equal (json_string_value (json_object_get (decision, "id")), ID_B);
    json_decref (decision);
    assert_int_equal (mesh_ledger_lookup (ledger, ID_C, NULL), MESH_LEDGER_NONE);
    mesh_ledger_destroy (&ledger);
}

//  Write three records, close; the log then holds seq 1..4 ("open", A, B, outcome A).
static void
s_three (fixture_t *fx)
{
    mesh_ledger_t *ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    assert_int_equal (s_append (ledger, s_decision (ID_A, "accepted")), 2);
    assert_int_equal (s_append (ledger, s_decision (ID_B, "accepted")), 3);
    assert_int_equal (s_append (ledger, s_outcome (ID_A, "done")), 4);
    mesh_ledger_destroy (&ledger);
}

//  (d) A crash in the middle of writing seq 5: part of a line, no newline, head not
//  updated.  The torn bytes are kept byte for byte in a file beside the log, and the
//  repair record names it, with size and SHA-256.
static void
test_torn_last_line_moved_aside (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    s_three (fx);
    const char torn[] = "{\"seq\":5,\"prev\":\"0123\x01\xff binary too";
    size_t torn_len = sizeof torn - 1;
    s_write_file (fx->path, torn, torn_len, "a");
    char *text;
    assert_int_equal (s_verify (fx->path, &text), 1);
    assert_non_null (strstr (text, "FAIL: record seq 5 (line 5): truncated"));
    free (text);

    mesh_ledger_t *ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    assert_int_equal (mesh_ledger_seq (ledger), 6);         //  repair, then open
    assert_int_equal (mesh_ledger_lookup (ledger, ID_B, NULL), MESH_LEDGER_DECIDED);
    assert_int_equal (s_append (ledger, s_outcome (ID_B, "done")), 7);
    mesh_ledger_destroy (&ledger);

    json_t *records = s_records (fx->path);
    assert_int_equal (json_array_size (records), 7);
    json_t *repair = json_array_get (records, 4);
    assert_int_equal (json_integer_value (json_object_get (repair, "seq")), 5);
    assert_string_equal (json_string_value (json_object_get (repair, "type")), "ledger");
    assert_string_equal (json_string_value (json_object_get (repair, "event")), "repair");
    assert_int_equal (json_integer_value (json_object_get (repair, "bytes")), torn_len);
    assert_non_null (strstr (json_string_value (json_object_get (repair, "reason")),
                             "truncated"));
    const char *moved = json_string_value (json_object_get (repair, "moved_to"));
    assert_non_null (moved);
    char prefix[220];
    snprintf (prefix, sizeof prefix, "%s.torn-5-", fx->path);
    assert_int_equal (strncmp (moved, prefix, strlen (prefix)), 0);
    size_t kept_len;
    char *kept = s_read_file (moved, &kept_len);
    assert_int_equal (kept_len, torn_len);
    assert_memory_equal (kept, torn, torn_len);
    free (kept);
    struct stat st;
    assert_int_equal (stat (moved, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0640);
    unsigned char digest[32];
    char hex[65];
    crypto_hash_sha256 (digest, (const unsigned char *) torn, torn_len);
    sodium_bin2hex (hex, sizeof hex, digest, sizeof digest);
    assert_string_equal (json_string_value (json_object_get (repair, "sha256")), hex);
    assert_string_equal (json_string_value (json_object_get (json_array_get (records, 5),
                                                             "head")), "matches");
    json_decref (records);
    assert_int_equal (s_verify (fx->path, &text), 0);
    assert_string_equal (text, "ok: 7 records, last seq 7, head matches\n"
                               "mac: verified for every record\n");
    free (text);

    //  A second torn tail for the same seq in the same second gets a name of its own.
    s_write_file (fx->path, torn, torn_len, "a");
    ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    mesh_ledger_destroy (&ledger);
    records = s_records (fx->path);
    const char *again = json_string_value (json_object_get (json_array_get (records, 7),
                                                            "moved_to"));
    assert_non_null (again);
    assert_string_not_equal (again, moved);
    json_decref (records);
}

//  The log and its head exactly as they were.
typedef struct {
    char *log, *head;
    size_t log_len, head_len;
} s_snapshot_t;

static void
s_snapshot (fixture_t *fx, s_snapshot_t *snap)
{
    char head_path[200];
    snprintf (head_path, sizeof head_path, "%s.head", fx->path);
    snap->log = s_read_file (fx->path, &snap->log_len);
    snap->head = access (head_path, F_OK) == 0 ? s_read_file (head_path, &snap->head_len)
                                               : NULL;
}

static void
s_assert_unchanged (fixture_t *fx, s_snapshot_t *snap)
{
    s_snapshot_t now;
    s_snapshot (fx, &now);
    assert_int_equal (now.log_len, snap->log_len);
    assert_memory_equal (now.log, snap->log, snap->log_len);
    if (snap->head) {
        assert_non_null (now.head);
        assert_int_equal (now.head_len, snap->head_len);
        assert_memory_equal (now.head, snap->head, snap->head_len);
    }
    else
        assert_null (now.head);
    free (now.log);
    free (now.head);
    free (snap->log);
    free (snap->head);
}

//  (c) A whole last line that does not verify (here: a copy of the last record with a
//  changed byte, hash left as it was) is evidence, not a torn write: open refuses with
//  EBADMSG and leaves the log and the head byte for byte as they were.
static void
test_bad_last_line_refused (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    s_three (fx);
    size_t len;
    char *text = s_read_file (fx->path, &len);
    //  The last record itself, altered in place (its outcome status "done" -> "dune").
    char *status = strstr (text + len - 200, "\"done\"");
    assert_non_null (status);
    status[2] = 'u';
    s_write_file (fx->path, text, len, "w");
    free (text);
    s_snapshot_t snap;
    s_snapshot (fx, &snap);
    errno = 0;
    assert_null (mesh_ledger_open (fx->path, fx->key));
    assert_int_equal (errno, EBADMSG);
    s_assert_unchanged (fx, &snap);
    //  And again: a refusal changes nothing, however often meshd is started.
    s_snapshot (fx, &snap);
    assert_null (mesh_ledger_open (fx->path, fx->key));
    s_assert_unchanged (fx, &snap);
}

//  Open refuses with EBADMSG (the log fails verification), and leaves the log and its
//  head exactly as they were.
static void
s_assert_refused (fixture_t *fx)
{
    s_snapshot_t snap;
    s_snapshot (fx, &snap);
    errno = 0;
    assert_null (mesh_ledger_open (fx->path, fx->key));
    assert_int_equal (errno, EBADMSG);
    s_assert_unchanged (fx, &snap);
}

static void
test_corruption_refuses_to_open (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    s_three (fx);
    size_t len;
    char *text = s_read_file (fx->path, &len);
    char *line2 = strchr (text, '\n') + 1;
    char *line3 = strchr (line2, '\n') + 1;
    char *line4 = strchr (line3, '\n') + 1;

    //  A changed byte in a middle record.
    char *copy = (char *) malloc (len);
    memcpy (copy, text, len);
    copy[line2 - text + 30] ^= 0x01;
    s_write_file (fx->path, copy, len, "w");
    s_assert_refused (fx);

    //  A record removed in the middle.
    memcpy (copy, text, (size_t) (line2 - text));
    memcpy (copy + (line2 - text), line3, (size_t) (text + len - line3));
    s_write_file (fx->path, copy, len - (size_t) (line3 - line2), "w");
    s_assert_refused (fx);

    //  The second-to-last record removed: the last line's bytes are intact but its seq and
    //  prev break the chain.  That is not a torn write, so no repair.
    memcpy (copy, text, (size_t) (line3 - text));
    memcpy (copy + (line3 - text), line4, (size_t) (text + len - line4));
    s_write_file (fx->path, copy, len - (size_t) (line4 - line3), "w");
    s_assert_refused (fx);

    //  The last record removed: the chain holds, but the head says seq 4.
    s_write_file (fx->path, text, (size_t) (line4 - text), "w");
    s_assert_refused (fx);

    //  A malformed head file.
    s_write_file (fx->path, text, len, "w");
    char head_path[200];
    snprintf (head_path, sizeof head_path, "%s.head", fx->path);
    size_t head_len;
    char *head = s_read_file (head_path, &head_len);
    s_write_file (head_path, "{}", 2, "w");
    s_assert_refused (fx);

    //  No head file for a log of four records.
    unlink (head_path);
    s_assert_refused (fx);

    //  Restored, it opens again.
    s_write_file (head_path, head, head_len, "w");
    free (head);
    mesh_ledger_t *ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    assert_int_equal (mesh_ledger_seq (ledger), 5);
    mesh_ledger_destroy (&ledger);
    free (copy);
    free (text);
}

static void
test_one_writer (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_ledger_t *ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    assert_null (mesh_ledger_open (fx->path, fx->key));
    assert_int_equal (mesh_ledger_seq (ledger), 1);
    mesh_ledger_destroy (&ledger);
    ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    mesh_ledger_destroy (&ledger);
    assert_null (mesh_ledger_open ("", fx->key));
    assert_null (mesh_ledger_open (NULL, fx->key));
    //  A parent that is a file, not a directory.
    char bad[220];
    snprintf (bad, sizeof bad, "%s/decisions.log/x.log", fx->path);
    assert_null (mesh_ledger_open (bad, fx->key));
}

int
main (void)
{
    if (!getenv ("MESH_LOG_LEVEL"))
        mesh_log_set_level (MESH_LOG_ERR - 1);      //  the failure paths log on purpose
    if (sodium_init () < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_create_append_reopen, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_format_on_disk, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_idempotent_per_id, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_refused_records, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lookup_states, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_torn_last_line_moved_aside, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_bad_last_line_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_corruption_refuses_to_open, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_one_writer, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name ("ledger", tests, NULL, NULL);
}

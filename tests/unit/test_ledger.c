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

//  A quarantine record (a poison message, daemon/supervise.c) names its message.
static void
test_quarantine_record (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_ledger_t *ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    const char *good = "{\"type\":\"quarantine\",\"event\":\"quarantined\",\"agent\":\"ops\","
                       "\"topic\":\"metrics\",\"partition\":0,\"offset\":5,\"strikes\":3}";
    assert_int_equal (s_append (ledger, json_loads (good, 0, NULL)), 2);
    const char *bad[] = {
        "{\"type\":\"quarantine\",\"topic\":\"metrics\",\"partition\":0,\"offset\":5,\"strikes\":3}",
        "{\"type\":\"quarantine\",\"agent\":\"ops\",\"topic\":\"metrics\",\"partition\":-1,"
        "\"offset\":5,\"strikes\":3}",
        "{\"type\":\"quarantine\",\"agent\":\"ops\",\"topic\":\"metrics\",\"partition\":0,"
        "\"offset\":\"5\",\"strikes\":3}",
        "{\"type\":\"quarantine\",\"agent\":\"ops\",\"topic\":\"metrics\",\"partition\":0,"
        "\"offset\":5,\"strikes\":0}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal (s_append (ledger, json_loads (bad[i], 0, NULL)), -1);
    assert_int_equal (mesh_ledger_seq (ledger), 2);
    mesh_ledger_destroy (&ledger);
}

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

//  Once meshd recorded a rule set for an agent, an accepted decision of that agent must
//  name one it recorded (recovery loads the rules by that name); other verdicts need not.
static void
test_accepted_needs_recorded_rules (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_ledger_t *ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    json_t *rules = json_pack ("{s:s, s:s, s:s, s:s}", "type", "rules", "event", "start",
                               "agent", "cpu", "rules_hash", "aaaa");
    assert_int_equal (mesh_ledger_append (ledger, rules), 2);
    json_decref (rules);
    json_t *d = s_decision (ID_A, "accepted");
    json_object_set_new (d, "rules_hash", json_string ("bbbb"));
    assert_int_equal (s_append (ledger, d), -1);
    d = s_decision (ID_A, "accepted");
    json_object_del (d, "rules_hash");
    assert_int_equal (s_append (ledger, d), -1);
    d = s_decision (ID_A, "rejected");
    json_object_set_new (d, "rules_hash", json_string ("bbbb"));
    assert_int_equal (s_append (ledger, d), 3);
    d = s_decision (ID_B, "accepted");
    json_object_set_new (d, "rules_hash", json_string ("aaaa"));
    assert_int_equal (s_append (ledger, d), 4);
    mesh_ledger_destroy (&ledger);
    //  The set is rebuilt from the log.
    ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    d = s_decision (ID_C, "accepted");
    json_object_set_new (d, "rules_hash", json_string ("bbbb"));
    assert_int_equal (s_append (ledger, d), -1);
    mesh_ledger_destroy (&ledger);
}

static void
test_idempotent_per_id (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_ledger_t *ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    assert_int_equal (s_append (ledger, s_decision (ID_A, "accepted")), 2);
    //  The same decision again (a retry after a lost ack) writes nothing: the same seq.
    assert_int_equal (s_append (ledger, s_decision (ID_A, "accepted")), 2);
    //  Another decision for the id is another process's: refused, nothing written.
    assert_int_equal (s_append (ledger, s_decision (ID_A, "rejected")), -1);
    assert_int_equal (mesh_ledger_seq (ledger), 2);
    assert_int_equal (s_append (ledger, s_outcome (ID_A, "done")), 3);
    assert_int_equal (s_append (ledger, s_outcome (ID_A, "failed")), 3);
    //  Once complete, no decision for the id is a retry.
    assert_int_equal (s_append (ledger, s_decision (ID_A, "accepted")), -1);
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
    assert_int_equal (s_append (ledger, s_decision (ID_A, "accepted")), -1);
    assert_int_equal (s_append (ledger, s_outcome (ID_A, "done")), 3);
    assert_int_equal (s_append (ledger, s_decision (ID_B, "rejected")), 4);
    assert_int_equal (s_append (ledger, s_decision (ID_B, "accepted")), -1);
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
        json_pack ("{s:s, s:s}", "type", "note", "mac", "x"),
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
    //  verify reports it as what a crash leaves, not as tampering.
    assert_int_equal (s_verify (fx->path, &text), 0);
    assert_non_null (strstr (text, "torn: line 5, after seq 4, is a write cut short"));
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
    assert_non_null (json_string_value (json_object_get (repair, "moved_to")));
    char moved[300];
    snprintf (moved, sizeof moved, "%s", json_string_value (json_object_get (repair,
                                                                             "moved_to")));
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
                               "mac: verified for every record\n"
                               "repairs: 1 torn line(s) moved aside by meshd earlier "
                               "(\"repair\" records name the files)\n");
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

    //  (No head file for a log of four records is what a crash in the first group commit
    //  leaves: test_group_commit_crash.)

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

//  ---------------------------------------------------------------------------------------
//  Forged records, the key, the head, old logs, set-aside.

//  Rewrite the log from RECORDS (parsed lines): each record's "hash" is dropped and
//  recomputed over the compact serialisation, and prev re-chained; "mac" is kept as it
//  is (whoever forges has no key).  FROM: the first record to re-serialise (earlier lines
//  are kept byte for byte).  The head is written to match: a consistent rewrite.
static void
s_rewrite (fixture_t *fx, json_t *records, size_t from)
{
    size_t len;
    char *old = s_read_file (fx->path, &len);
    FILE *out = fopen (fx->path, "w");
    assert_non_null (out);
    char *line = old;
    char hash[65] = "0000000000000000000000000000000000000000000000000000000000000000";
    for (size_t i = 0; i < json_array_size (records); i++) {
        char *end = line && *line ? strchr (line, '\n') : NULL;
        json_t *r = json_array_get (records, i);
        if (i < from && end) {
            fwrite (line, 1, (size_t) (end + 1 - line), out);
            memcpy (hash, end - 66, 64);
        }
        else {
            json_object_del (r, "hash");
            json_object_set_new (r, "prev", json_string (hash));
            char *text = json_dumps (r, JSON_COMPACT | JSON_PRESERVE_ORDER);
            size_t prefix = strlen (text) - 1;
            unsigned char digest[32];
            crypto_hash_sha256 (digest, (unsigned char *) text, prefix);
            sodium_bin2hex (hash, sizeof hash, digest, sizeof digest);
            fwrite (text, 1, prefix, out);
            fprintf (out, ",\"hash\":\"%s\"}\n", hash);
            free (text);
        }
        line = end ? end + 1 : NULL;
    }
    fclose (out);
    free (old);
    char head_path[200], head[128];
    snprintf (head_path, sizeof head_path, "%s.head", fx->path);
    int n = snprintf (head, sizeof head, "{\"seq\":%zu,\"hash\":\"%s\"}\n",
                      json_array_size (records), hash);
    s_write_file (head_path, head, (size_t) n, "w");
}

//  A decision of agent "cpu" to scale "database" to REPLICAS.
static json_t *
s_scale (const char *id, int replicas)
{
    return json_pack ("{s:s, s:s, s:s, s:s, s:{s:s, s:s, s:{s:s, s:i}}}", "type", "decision",
                      "id", id, "agent", "cpu", "verdict", "accepted", "action", "name",
                      "scale_out", "kind", "kafka", "params", "service", "database",
                      "replicas", replicas);
}

//  (a) A decision appended with a valid chain and a matching head, but without a MAC or
//  with one made up: open refuses and changes nothing; once the log is set aside, nothing
//  of it is pending.
static void
test_forged_appended_record (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    for (int variant = 0; variant < 2; variant++) {
        s_three (fx);               //  seq 1-4, then (variant 1) more on the set-aside log
        mesh_ledger_t *ledger = mesh_ledger_open (fx->path, fx->key);
        assert_non_null (ledger);
        int64_t last = mesh_ledger_seq (ledger);
        mesh_ledger_destroy (&ledger);
        json_t *records = s_records (fx->path);
        json_t *forged = json_pack ("{s:I, s:s, s:i}", "seq", (json_int_t) (last + 1), "prev",
                                    "", "ts", 1);
        json_t *body = s_scale (ID_C, 10);
        json_object_update (forged, body);
        json_decref (body);
        if (variant == 1)
            json_object_set_new (forged, "mac", json_string (
                "5c5e3b7e1f0e4f1c9b1d2a3c4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6071"));
        json_array_append_new (records, forged);
        s_rewrite (fx, records, json_array_size (records) - 1);
        json_decref (records);

        char *text;
        assert_int_equal (s_verify (fx->path, &text), 1);
        assert_non_null (strstr (text, variant ? "MAC does not verify" : "no \"mac\""));
        free (text);
        s_assert_refused (fx);

        assert_int_equal (mesh_ledger_set_aside (fx->path, fx->key), 0);
        ledger = mesh_ledger_open (fx->path, fx->key);
        assert_non_null (ledger);
        json_t *pending = mesh_ledger_pending (ledger, "cpu");
        assert_int_equal (json_array_size (pending), 0);
        json_decref (pending);
        assert_int_equal (mesh_ledger_lookup (ledger, ID_C, NULL), MESH_LEDGER_NONE);
        mesh_ledger_destroy (&ledger);
        //  Start the next variant from an empty directory of logs.
        char cmd[300];
        snprintf (cmd, sizeof cmd, "rm -f '%s'*", fx->path);
        assert_int_equal (system (cmd), 0);
    }
}

//  (b) The params of a recorded, not yet carried out decision edited (database scaled to
//  10 instead of 2), the chain after it recomputed and the head rewritten to match: the
//  chain and head alone cannot tell, the MAC can.
static void
test_forged_edited_params (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_ledger_t *ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    assert_int_equal (s_append (ledger, s_scale (ID_A, 2)), 2);
    assert_int_equal (s_append (ledger, s_decision (ID_B, "rejected")), 3);
    json_t *pending = mesh_ledger_pending (ledger, "cpu");
    assert_int_equal (json_array_size (pending), 2);
    json_decref (pending);
    mesh_ledger_destroy (&ledger);

    json_t *records = s_records (fx->path);
    json_t *params = json_object_get (json_object_get (json_array_get (records, 1), "action"),
                                      "params");
    json_object_set_new (params, "replicas", json_integer (10));
    s_rewrite (fx, records, 1);
    json_decref (records);
    char *text;
    size_t len;
    FILE *out = open_memstream (&text, &len);
    assert_int_equal (mesh_audit_verify (fx->path, false, out), 0);   //  chain and head hold
    fclose (out);
    free (text);
    assert_int_equal (s_verify (fx->path, &text), 1);
    assert_non_null (strstr (text, "FAIL: record seq 2 (line 2): MAC does not verify"));
    free (text);
    s_assert_refused (fx);

    //  Set aside, the record that verified last is seq 1, and nothing is pending.
    assert_int_equal (mesh_ledger_set_aside (fx->path, fx->key), 0);
    json_t *fresh = s_records (fx->path);
    assert_int_equal (json_integer_value (json_object_get (json_array_get (fresh, 0),
                                                           "last_verified_seq")), 1);
    json_decref (fresh);
    ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    pending = mesh_ledger_pending (ledger, "cpu");
    assert_int_equal (json_array_size (pending), 0);
    json_decref (pending);
    mesh_ledger_destroy (&ledger);
}

static void
test_key_file (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mode_t old_umask = umask (0);
    mesh_ledger_t *ledger = mesh_ledger_open (fx->path, fx->key);
    umask (old_umask);
    assert_non_null (ledger);
    mesh_ledger_destroy (&ledger);
    struct stat st;
    assert_int_equal (stat (fx->key, &st), 0);
    assert_true (S_ISREG (st.st_mode));
    assert_int_equal (st.st_mode & 0777, 0600);
    assert_int_equal (st.st_size, 32);
    assert_int_equal (st.st_uid, geteuid ());
    size_t len;
    char *key = s_read_file (fx->key, &len);

    //  Reopened with the same key: the log verifies, the key is unchanged.
    ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    mesh_ledger_destroy (&ledger);
    char *again = s_read_file (fx->key, &len);
    assert_memory_equal (key, again, 32);
    free (again);

    //  Key files that are refused, before the log is touched.
    s_snapshot_t snap;
    chmod (fx->key, 0644);
    s_snapshot (fx, &snap);
    assert_null (mesh_ledger_open (fx->path, fx->key));
    s_assert_unchanged (fx, &snap);
    chmod (fx->key, 0600);
    if (geteuid () == 0) {
        assert_int_equal (chown (fx->key, 4242, 0), 0);
        assert_null (mesh_ledger_open (fx->path, fx->key));
        assert_int_equal (chown (fx->key, 0, 0), 0);
    }
    s_write_file (fx->key, key, 16, "w");
    assert_null (mesh_ledger_open (fx->path, fx->key));
    char link[220];
    snprintf (link, sizeof link, "%s.link", fx->key);
    s_write_file (fx->key, key, 32, "w");
    assert_int_equal (symlink (fx->key, link), 0);
    assert_null (mesh_ledger_open (fx->path, link));
    assert_null (mesh_ledger_open (fx->path, fx->dir));           //  a directory
    assert_null (mesh_ledger_open (fx->path, NULL));

    //  Another key (the file lost and made again): every record fails its MAC.
    char other[220];
    snprintf (other, sizeof other, "%s/other.key", fx->dir);
    unsigned char fresh_key[32];
    randombytes_buf (fresh_key, sizeof fresh_key);
    s_write_file (other, (const char *) fresh_key, 32, "w");
    chmod (other, 0600);
    s_snapshot (fx, &snap);
    errno = 0;
    assert_null (mesh_ledger_open (fx->path, other));
    assert_int_equal (errno, EBADMSG);
    s_assert_unchanged (fx, &snap);

    //  The systemd credential wins over the key file; a bad one is refused.
    char creds[200], cred[220];
    snprintf (creds, sizeof creds, "%s/creds", fx->dir);
    assert_int_equal (mkdir (creds, 0700), 0);
    snprintf (cred, sizeof cred, "%s/ledger-mac", creds);
    s_write_file (cred, key, 32, "w");
    chmod (cred, 0400);
    setenv ("CREDENTIALS_DIRECTORY", creds, 1);
    ledger = mesh_ledger_open (fx->path, other);    //  the other key is not used
    assert_non_null (ledger);
    mesh_ledger_destroy (&ledger);
    chmod (cred, 0600);
    s_write_file (cred, key, 33, "w");
    assert_null (mesh_ledger_open (fx->path, fx->key));
    unlink (cred);
    ledger = mesh_ledger_open (fx->path, fx->key);  //  no credential: the key file
    assert_non_null (ledger);
    mesh_ledger_destroy (&ledger);
    unsetenv ("CREDENTIALS_DIRECTORY");
    free (key);
}

//  What a crash between the log's fsync and the head's rename leaves is accepted (and the
//  open record says so); a head further behind, or missing from a longer log, is not.
static void
test_head_behind (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    //  A log of one record and no head: the crash right after the first record.
    mesh_ledger_t *ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    mesh_ledger_destroy (&ledger);
    char head_path[200];
    snprintf (head_path, sizeof head_path, "%s.head", fx->path);
    unlink (head_path);
    ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    assert_int_equal (s_append (ledger, s_decision (ID_A, "accepted")), 3);
    assert_int_equal (s_append (ledger, s_decision (ID_B, "accepted")), 4);
    mesh_ledger_destroy (&ledger);
    json_t *records = s_records (fx->path);
    assert_string_equal (json_string_value (json_object_get (json_array_get (records, 1),
                                                             "head")), "absent");
    //  The head one record behind (seq 3 of 4).
    char head[128];
    int n = snprintf (head, sizeof head, "{\"seq\":3,\"hash\":\"%s\"}\n",
                      json_string_value (json_object_get (json_array_get (records, 2),
                                                          "hash")));
    json_decref (records);
    s_write_file (head_path, head, (size_t) n, "w");
    ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    mesh_ledger_destroy (&ledger);
    records = s_records (fx->path);
    assert_string_equal (json_string_value (json_object_get (json_array_get (records, 4),
                                                             "head")), "behind");
    json_decref (records);
    char *text;
    assert_int_equal (s_verify (fx->path, &text), 0);       //  brought up to date
    free (text);
    //  Two records behind (seq 3 of 5): what a crash in a group commit of two leaves.
    s_write_file (head_path, head, (size_t) n, "w");
    ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    //  More than one group commit behind (seq 3 of 5 + 256): refused.
    mesh_ledger_begin (ledger);
    for (int i = 0; i < MESH_LEDGER_BATCH_MAX; i++) {
        char id[65];
        snprintf (id, sizeof id, "%064x", 0x1000 + i);
        assert_true (s_append (ledger, s_decision (id, "accepted")) > 0);
    }
    assert_int_equal (mesh_ledger_commit (ledger), 0);
    mesh_ledger_destroy (&ledger);
    s_write_file (head_path, head, (size_t) n, "w");
    s_assert_refused (fx);
}

//  Group commit: a batch is synced once and acknowledged after; a sync that fails takes
//  every record of the batch back (file, seq, index), and the next batch goes on from the
//  last durable record; a crash before the head is updated leaves it a batch behind,
//  which open accepts; a batch holds at most MESH_LEDGER_BATCH_MAX records.
static void
test_group_commit (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_ledger_t *ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    mesh_ledger_begin (ledger);
    assert_int_equal (s_append (ledger, s_decision (ID_A, "accepted")), 2);
    assert_int_equal (s_append (ledger, s_decision (ID_B, "accepted")), 3);
    assert_int_equal (mesh_ledger_commit (ledger), 0);
    char *text;
    assert_int_equal (s_verify (fx->path, &text), 0);       //  head matches: seq 3
    assert_non_null (strstr (text, "ok: 3 records, last seq 3, head matches"));
    free (text);
    //  A failed sync: both records of the batch are taken back, the ids are free again.
    mesh_ledger_begin (ledger);
    assert_int_equal (s_append (ledger, s_outcome (ID_A, "done")), 4);
    assert_int_equal (s_append (ledger, s_decision (ID_C, "accepted")), 5);
    mesh_ledger_fail_syncs (1);
    assert_int_equal (mesh_ledger_commit (ledger), -1);
    assert_int_equal (mesh_ledger_seq (ledger), 3);
    assert_int_equal (mesh_ledger_lookup (ledger, ID_C, NULL), MESH_LEDGER_NONE);
    assert_int_equal (mesh_ledger_lookup (ledger, ID_A, NULL), MESH_LEDGER_DECIDED);
    assert_int_equal (s_verify (fx->path, &text), 0);
    assert_non_null (strstr (text, "ok: 3 records"));
    free (text);
    //  Sent again, they are written again, with the same seqs.
    mesh_ledger_begin (ledger);
    assert_int_equal (s_append (ledger, s_outcome (ID_A, "done")), 4);
    assert_int_equal (s_append (ledger, s_decision (ID_C, "accepted")), 5);
    assert_int_equal (mesh_ledger_commit (ledger), 0);
    assert_int_equal (mesh_ledger_lookup (ledger, ID_A, NULL), MESH_LEDGER_COMPLETE);
    //  A batch of at most MESH_LEDGER_BATCH_MAX records.
    mesh_ledger_begin (ledger);
    for (int i = 0; i < MESH_LEDGER_BATCH_MAX; i++) {
        char id[65];
        snprintf (id, sizeof id, "%064x", 0x2000 + i);
        assert_true (s_append (ledger, s_decision (id, "accepted")) > 0);
    }
    assert_int_equal (s_append (ledger, s_decision (ID_B "x", "accepted")), -1);
    assert_int_equal (mesh_ledger_commit (ledger), 0);
    //  A crash after a batch was written, before its sync and the head's update: the
    //  writes are in the page cache, the head is a batch behind.
    mesh_ledger_begin (ledger);
    for (int i = 0; i < 10; i++) {
        char id[65];
        snprintf (id, sizeof id, "%064x", 0x3000 + i);
        assert_true (s_append (ledger, s_decision (id, "accepted")) > 0);
    }
    int64_t written = mesh_ledger_seq (ledger);
    mesh_ledger_destroy (&ledger);                  //  no commit: as a crash would
    ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    assert_int_equal (mesh_ledger_seq (ledger), written + 1);   //  + its "open" record
    mesh_ledger_destroy (&ledger);
    json_t *records = s_records (fx->path);
    json_t *open = json_array_get (records, json_array_size (records) - 1);
    assert_string_equal (json_string_value (json_object_get (open, "head")), "behind");
    json_decref (records);
}

//  While the head file cannot be written, no record is appended after the first one
//  beyond it, so the head is never more than one record behind.
static void
test_head_unwritable (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_ledger_t *ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    char tmp[220];
    snprintf (tmp, sizeof tmp, "%s.head.tmp", fx->path);
    assert_int_equal (mkdir (tmp, 0700), 0);           //  the temp file cannot be created
    assert_int_equal (s_append (ledger, s_decision (ID_A, "accepted")), 2);
    assert_int_equal (s_append (ledger, s_decision (ID_B, "accepted")), -1);
    assert_int_equal (mesh_ledger_seq (ledger), 2);
    assert_int_equal (rmdir (tmp), 0);
    assert_int_equal (s_append (ledger, s_decision (ID_B, "accepted")), 3);
    mesh_ledger_destroy (&ledger);
    char *text;
    assert_int_equal (s_verify (fx->path, &text), 0);
    free (text);
}

//  A log from before MACs: kept, marked by a "mac" record, and none of its undone
//  decisions is handed out; a record without MAC after the mark is refused.
//  Write a two-record log in the format from before MACs.
static void
s_write_old_log (fixture_t *fx)
{
    char dir[200];
    snprintf (dir, sizeof dir, "%s/state/log", fx->dir);
    char cmd[300];
    snprintf (cmd, sizeof cmd, "mkdir -p '%s'", dir);
    assert_int_equal (system (cmd), 0);
    //  The old format: seq, prev, ts, fields, hash.
    json_t *records = json_array ();
    json_array_append_new (records, json_pack ("{s:i, s:s, s:i, s:s, s:s}", "seq", 1, "prev",
                                               "", "ts", 1, "type", "ledger", "event", "open"));
    json_t *d = s_scale (ID_A, 10);
    json_object_set_new (d, "seq", json_integer (2));
    json_object_set_new (d, "prev", json_string (""));
    json_object_set_new (d, "ts", json_integer (2));
    json_array_append_new (records, d);
    //  Put seq, prev, ts first as the ledger did.
    json_t *r = json_pack ("{s:i, s:s, s:i}", "seq", 2, "prev", "", "ts", 2);
    json_object_update (r, d);
    json_array_set_new (records, 1, r);
    s_write_file (fx->path, "", 0, "w");
    s_rewrite (fx, records, 0);
    json_decref (records);

}

static void
test_old_log_without_macs (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    s_write_old_log (fx);
    mesh_ledger_t *ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    json_t *pending = mesh_ledger_pending (ledger, "cpu");
    assert_int_equal (json_array_size (pending), 0);
    json_decref (pending);
    json_t *decision = (json_t *) 1;
    assert_int_equal (mesh_ledger_lookup (ledger, ID_A, &decision), MESH_LEDGER_COMPLETE);
    assert_null (decision);
    assert_int_equal (s_append (ledger, s_decision (ID_B, "accepted")), 5);
    mesh_ledger_destroy (&ledger);
    json_t *records = s_records (fx->path);
    json_t *mark = json_array_get (records, 2);
    assert_string_equal (json_string_value (json_object_get (mark, "event")), "mac");
    assert_int_equal (json_integer_value (json_object_get (mark, "since")), 3);
    assert_non_null (json_object_get (mark, "mac"));
    json_decref (records);
    char *text;
    assert_int_equal (s_verify (fx->path, &text), 0);
    assert_non_null (strstr (text, "mac: verified from seq 3 (the 2 record(s) before it"));
    free (text);
    //  Opened again: still not pending, and no second mark.
    ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    pending = mesh_ledger_pending (ledger, "cpu");
    assert_int_equal (json_array_size (pending), 1);        //  ID_B only
    assert_string_equal (json_string_value (json_object_get (json_array_get (pending, 0),
                                                             "id")), ID_B);
    json_decref (pending);
    assert_int_equal (mesh_ledger_seq (ledger), 6);
    mesh_ledger_destroy (&ledger);

    //  An old-style record (no MAC) appended after the mark.
    records = s_records (fx->path);
    json_t *forged = json_pack ("{s:i, s:s, s:i}", "seq", 7, "prev", "", "ts", 7);
    json_t *body = s_scale (ID_C, 10);
    json_object_update (forged, body);
    json_decref (body);
    json_array_append_new (records, forged);
    s_rewrite (fx, records, json_array_size (records) - 1);
    json_decref (records);
    s_assert_refused (fx);
}

//  A log without any MAC while the key already existed: written by someone without the
//  key (replaced or rewritten), so it fails verification instead of passing as old.
static void
test_unmacd_log_with_old_key (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_ledger_t *ledger = mesh_ledger_open (fx->path, fx->key);      //  makes the key
    assert_non_null (ledger);
    mesh_ledger_destroy (&ledger);
    char head[300];
    snprintf (head, sizeof head, "%s.head", fx->path);
    unlink (head);
    s_write_old_log (fx);
    s_assert_refused (fx);
}

//  An old log with a torn last line: the tail is moved aside, the "mac" record is the
//  first with a MAC and the repair record follows it.
static void
test_old_log_torn (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    char cmd[300];
    snprintf (cmd, sizeof cmd, "mkdir -p '%s/state/log'", fx->dir);
    assert_int_equal (system (cmd), 0);
    json_t *records = json_array ();
    json_array_append_new (records, json_pack ("{s:i, s:s, s:i, s:s, s:s}", "seq", 1, "prev",
                                               "", "ts", 1, "type", "ledger", "event", "open"));
    s_write_file (fx->path, "", 0, "w");
    s_rewrite (fx, records, 0);
    json_decref (records);
    s_write_file (fx->path, "{\"seq\":2,", 9, "a");
    mesh_ledger_t *ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    assert_int_equal (mesh_ledger_seq (ledger), 4);
    mesh_ledger_destroy (&ledger);
    records = s_records (fx->path);
    const char *events[] = { "open", "mac", "repair", "open" };
    for (size_t i = 0; i < 4; i++)
        assert_string_equal (json_string_value (json_object_get (json_array_get (records, i),
                                                                 "event")), events[i]);
    assert_int_equal (json_integer_value (json_object_get (json_array_get (records, 2),
                                                           "bytes")), 9);
    json_decref (records);
    char *text;
    assert_int_equal (s_verify (fx->path, &text), 0);
    assert_non_null (strstr (text, "mac: verified from seq 2"));
    free (text);
}

static void
test_set_aside (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    //  Nothing to set aside.
    assert_int_equal (mesh_ledger_set_aside (fx->path, fx->key), 1);
    s_three (fx);
    //  A log that verifies is not set aside (a torn tail alone does not count).
    s_snapshot_t snap;
    s_write_file (fx->path, "{\"seq\":", 7, "a");
    s_snapshot (fx, &snap);
    assert_int_equal (mesh_ledger_set_aside (fx->path, fx->key), 1);
    s_assert_unchanged (fx, &snap);
    mesh_ledger_t *ledger = mesh_ledger_open (fx->path, fx->key);  //  moves the tail aside
    assert_non_null (ledger);
    //  Not while meshd holds the log.
    assert_int_equal (mesh_ledger_set_aside (fx->path, fx->key), -1);
    mesh_ledger_destroy (&ledger);

    //  A changed byte in record 2.
    size_t len;
    char *text = s_read_file (fx->path, &len);
    char *line2 = strchr (text, '\n') + 1;
    line2[40] ^= 0x01;
    s_write_file (fx->path, text, len, "w");
    s_snapshot (fx, &snap);
    json_t *records = s_records (fx->path);
    const char *hash1 = json_string_value (json_object_get (json_array_get (records, 0),
                                                            "hash"));
    assert_int_equal (mesh_ledger_set_aside (fx->path, fx->key), 0);

    json_t *fresh = s_records (fx->path);
    assert_int_equal (json_array_size (fresh), 1);
    json_t *first = json_array_get (fresh, 0);
    assert_int_equal (json_integer_value (json_object_get (first, "seq")), 1);
    assert_string_equal (json_string_value (json_object_get (first, "event")), "set_aside");
    assert_int_equal (json_integer_value (json_object_get (first, "last_verified_seq")), 1);
    assert_string_equal (json_string_value (json_object_get (first, "last_verified_hash")),
                         hash1);
    assert_non_null (strstr (json_string_value (json_object_get (first, "reason")),
                             "record seq 2 (line 2)"));
    const char *moved = json_string_value (json_object_get (first, "moved_to"));
    char prefix[220];
    snprintf (prefix, sizeof prefix, "%s.set-aside-", fx->path);
    assert_int_equal (strncmp (moved, prefix, strlen (prefix)), 0);
    //  The old log and head, intact under their new names.
    size_t moved_len, head_len;
    char *kept = s_read_file (moved, &moved_len);
    assert_int_equal (moved_len, snap.log_len);
    assert_memory_equal (kept, snap.log, moved_len);
    free (kept);
    char moved_head[260];
    snprintf (moved_head, sizeof moved_head, "%s.head", moved);
    kept = s_read_file (moved_head, &head_len);
    assert_int_equal (head_len, snap.head_len);
    assert_memory_equal (kept, snap.head, head_len);
    free (kept);
    free (snap.log);
    free (snap.head);
    json_decref (fresh);
    json_decref (records);
    free (text);

    //  The new log verifies, and meshd opens it.
    char *out;
    assert_int_equal (s_verify (fx->path, &out), 0);
    free (out);
    ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    assert_int_equal (mesh_ledger_seq (ledger), 2);
    mesh_ledger_destroy (&ledger);
    assert_int_equal (mesh_ledger_set_aside (fx->path, fx->key), 1);
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
        cmocka_unit_test_setup_teardown (test_accepted_needs_recorded_rules, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_refused_records, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lookup_states, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_torn_last_line_moved_aside, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_bad_last_line_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_corruption_refuses_to_open, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_one_writer, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_forged_appended_record, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_forged_edited_params, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_key_file, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_head_behind, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_group_commit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_head_unwritable, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_old_log_without_macs, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_old_log_torn, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_unmacd_log_with_old_key, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_set_aside, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_quarantine_record, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name ("ledger", tests, NULL, NULL);
}

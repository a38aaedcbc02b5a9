/*  test_segments - the decision log in segments: rotation by the ledger (by size, by
 *  age, never inside a batch), the reader that joins the segments (contiguity checked, a
 *  missing segment refused, a torn active log repaired as before), and the auditor's
 *  verify and tree check across segments.
 */
#include "ledger.h"
#include "audit.h"
#include "audit_cli.h"
#include "log.h"
#include "merkle.h"
#include "note.h"
#include "segments.h"

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

typedef struct {
    char dir[64];
    char path[160];
    char key[160];
} fixture_t;

static int
s_setup (void **state)
{
    fixture_t *fx = (fixture_t *) calloc (1, sizeof *fx);
    snprintf (fx->dir, sizeof fx->dir, "/tmp/test_segments.XXXXXX");
    if (!mkdtemp (fx->dir))
        return -1;
    snprintf (fx->path, sizeof fx->path, "%s/log/decisions.log", fx->dir);
    snprintf (fx->key, sizeof fx->key, "%s/ledger.key", fx->dir);
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

static void
s_note (mesh_ledger_t *ledger, int i)
{
    json_t *record = json_pack ("{s:s, s:i, s:s}", "type", "note", "n", i, "text",
                                "some words to make the record a little longer");
    assert_true (mesh_ledger_append (ledger, record) > 0);
    json_decref (record);
}

static int
s_verify (const char *path)
{
    FILE *out = fopen ("/dev/null", "w");
    int rc = mesh_audit_verify (path, false, out);
    fclose (out);
    return rc;
}

//  Every line through the reader: its records' seqs must run 1..N without a gap.
static int64_t
s_read_all (const char *path)
{
    FILE *file = mesh_segments_open (path);
    assert_non_null (file);
    char *line = NULL;
    size_t cap = 0;
    int64_t n = 0;
    while (getline (&line, &cap, file) > 0) {
        json_t *record = json_loads (line, 0, NULL);
        assert_non_null (record);
        assert_int_equal (json_integer_value (json_object_get (record, "seq")), ++n);
        json_decref (record);
    }
    assert_false (ferror (file));
    free (line);
    fclose (file);
    return n;
}

static void
test_rotate_by_size (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_ledger_t *ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    mesh_ledger_set_rotation (ledger, 2000, 0);
    for (int i = 0; i < 60; i++)
        s_note (ledger, i);
    int64_t last = mesh_ledger_seq (ledger);
    mesh_ledger_destroy (&ledger);

    mesh_segment_t *segs = NULL;
    char why[256];
    int n = mesh_segments_list (fx->path, &segs, why, sizeof why);
    assert_true (n >= 3);
    assert_int_equal (segs[0].first_seq, 1);
    for (int i = 0; i < n; i++) {
        struct stat st;
        assert_int_equal (stat (segs[i].path, &st), 0);
        assert_int_equal (st.st_mode & 0777, 0440);
        assert_true (st.st_size >= 2000);
        assert_true (st.st_size < 2000 + 1000);
        if (i)
            assert_true (segs[i].first_seq > segs[i - 1].first_seq);
    }
    //  The active log starts with the rotate record naming the last segment and its hash.
    int64_t first_seq = 0;
    assert_int_equal (mesh_segments_first (fx->path, &first_seq, NULL), 1);
    FILE *file = fopen (fx->path, "r");
    char *line = NULL;
    size_t cap = 0;
    assert_true (getline (&line, &cap, file) > 0);
    fclose (file);
    json_t *rotate = json_loads (line, 0, NULL);
    free (line);
    assert_string_equal (json_string_value (json_object_get (rotate, "event")), "rotate");
    assert_string_equal (json_string_value (json_object_get (rotate, "previous")),
                         segs[n - 1].name);
    assert_int_equal (json_integer_value (json_object_get (rotate, "previous_first_seq")),
                      segs[n - 1].first_seq);
    assert_int_equal (json_integer_value (json_object_get (rotate, "previous_last_seq")),
                      first_seq - 1);
    char sha[MESH_SEGMENTS_HEX_SIZE];
    assert_int_equal (mesh_segments_sha256 (segs[n - 1].path, sha, NULL), 0);
    assert_string_equal (json_string_value (json_object_get (rotate, "previous_sha256")), sha);
    json_decref (rotate);
    mesh_segments_free (&segs, n);

    assert_int_equal (s_read_all (fx->path), last);
    assert_int_equal (s_verify (fx->path), 0);
    //  The ledger opens it again, across the segments, and goes on.
    ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    assert_int_equal (mesh_ledger_seq (ledger), last + 1);
    mesh_ledger_destroy (&ledger);
    assert_int_equal (s_verify (fx->path), 0);
}

static void
test_rotate_tree_and_checkpoints (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    char *signer_text, *verifier_text, why[256];
    assert_int_equal (mesh_note_keygen ("test.example/meshd", &signer_text, &verifier_text), 0);
    mesh_note_signer_t signer;
    assert_int_equal (mesh_note_signer_parse (signer_text, &signer, why, sizeof why), 0);
    mesh_ledger_t *ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    assert_int_equal (mesh_ledger_set_signer (ledger, &signer, "test.example/meshd"), 0);
    mesh_ledger_set_rotation (ledger, 3000, 0);
    for (int i = 0; i < 40; i++)
        s_note (ledger, i);
    assert_true (mesh_ledger_checkpoint (ledger, false, NULL) > 0);
    mesh_ledger_destroy (&ledger);
    mesh_segment_t *segs = NULL;
    int n = mesh_segments_list (fx->path, &segs, why, sizeof why);
    assert_true (n >= 2);
    //  Each segment ends with a checkpoint of everything before it.
    for (int i = 0; i < n; i++) {
        FILE *file = fopen (segs[i].path, "r");
        char *line = NULL, *last = NULL;
        size_t cap = 0;
        while (getline (&line, &cap, file) > 0) {
            free (last);
            last = strdup (line);
        }
        fclose (file);
        free (line);
        json_t *record = json_loads (last, 0, NULL);
        free (last);
        assert_string_equal (json_string_value (json_object_get (record, "type")),
                             "checkpoint");
        json_decref (record);
    }
    mesh_segments_free (&segs, n);
    //  The tree and every checkpoint verify across the segments, with the trusted key.
    FILE *out = fopen ("/dev/null", "w");
    assert_int_equal (mesh_audit_verify_tree (fx->path, verifier_text, false, out), 0);
    fclose (out);
    ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    mesh_ledger_destroy (&ledger);
    mesh_note_signer_wipe (&signer);
    free (signer_text);
    free (verifier_text);
}

static void
test_rotate_by_age_and_not_in_batch (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_ledger_t *ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    mesh_ledger_set_rotation (ledger, 500, 0);
    mesh_ledger_begin (ledger);
    for (int i = 0; i < 10; i++)
        s_note (ledger, i);
    mesh_segment_t *segs = NULL;
    char why[256];
    assert_int_equal (mesh_segments_list (fx->path, &segs, why, sizeof why), 0);
    assert_int_equal (mesh_ledger_commit (ledger), 0);
    int n = mesh_segments_list (fx->path, &segs, why, sizeof why);
    assert_int_equal (n, 1);        //  the whole batch in one segment, sealed at commit
    mesh_segments_free (&segs, n);
    assert_int_equal (mesh_ledger_active_first_seq (ledger), mesh_ledger_seq (ledger));

    //  By age: a second old is old enough for max_age_s 1.
    mesh_ledger_set_rotation (ledger, 0, 1);
    s_note (ledger, 100);
    assert_int_equal (mesh_segments_list (fx->path, &segs, why, sizeof why), 1);
    mesh_segments_free (&segs, 1);
    sleep (1);
    usleep (100 * 1000);
    s_note (ledger, 101);
    n = mesh_segments_list (fx->path, &segs, why, sizeof why);
    assert_int_equal (n, 2);
    mesh_segments_free (&segs, n);
    int64_t last = mesh_ledger_seq (ledger);
    mesh_ledger_destroy (&ledger);
    assert_int_equal (s_read_all (fx->path), last);
    assert_int_equal (s_verify (fx->path), 0);
}

static void
test_missing_segment_refused (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_ledger_t *ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    mesh_ledger_set_rotation (ledger, 1500, 0);
    for (int i = 0; i < 40; i++)
        s_note (ledger, i);
    mesh_ledger_destroy (&ledger);
    mesh_segment_t *segs = NULL;
    char why[256];
    int n = mesh_segments_list (fx->path, &segs, why, sizeof why);
    assert_true (n >= 3);
    //  A middle segment gone: the reader stops with a read error where they do not join.
    char *kept = strdup (segs[1].path);
    char aside[256];
    snprintf (aside, sizeof aside, "%s/aside", fx->dir);
    assert_int_equal (rename (kept, aside), 0);
    FILE *file = mesh_segments_open (fx->path);
    assert_non_null (file);
    char *line = NULL;
    size_t cap = 0;
    int64_t lines = 0;
    while (getline (&line, &cap, file) > 0)
        lines++;
    assert_true (ferror (file));
    assert_int_equal (lines, segs[1].first_seq - 1);
    free (line);
    fclose (file);
    assert_int_not_equal (s_verify (fx->path), 0);
    errno = 0;
    assert_null (mesh_ledger_open (fx->path, fx->key));
    assert_int_equal (errno, EBADMSG);
    //  A segment renamed to another seq is refused too.
    char wrong[256];
    snprintf (wrong, sizeof wrong, "%s.seg-%012lld", fx->path,
              (long long) segs[1].first_seq + 1);
    assert_int_equal (rename (aside, wrong), 0);
    assert_int_not_equal (s_verify (fx->path), 0);
    assert_null (mesh_ledger_open (fx->path, fx->key));
    //  Put back, all is well again.
    assert_int_equal (rename (wrong, kept), 0);
    assert_int_equal (s_verify (fx->path), 0);
    free (kept);
    mesh_segments_free (&segs, n);
}

static void
test_torn_active_log (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_ledger_t *ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    mesh_ledger_set_rotation (ledger, 1500, 0);
    for (int i = 0; i < 30; i++)
        s_note (ledger, i);
    int64_t last = mesh_ledger_seq (ledger);
    mesh_ledger_destroy (&ledger);
    FILE *file = fopen (fx->path, "a");
    fputs ("{\"seq\":999,\"prev\":\"00", file);
    fclose (file);
    //  The torn line is moved aside as in a single file, and the chain goes on.
    ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    assert_int_equal (mesh_ledger_seq (ledger), last + 2);   //  repair + open
    mesh_ledger_destroy (&ledger);
    assert_int_equal (s_verify (fx->path), 0);
    assert_int_equal (s_read_all (fx->path), last + 2);
}

//  A log in segments that fails verification is set aside whole: its segments go with it
//  (renamed after it), and the new log starts at seq 1 with no segment in its way.
static void
test_set_aside_with_segments (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_ledger_t *ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    mesh_ledger_set_rotation (ledger, 1500, 0);
    for (int i = 0; i < 30; i++)
        s_note (ledger, i);
    mesh_ledger_destroy (&ledger);
    //  Break the active log's last record.
    FILE *file = fopen (fx->path, "a");
    fputs ("{\"seq\":12345,\"prev\":\"x\"}\n", file);
    fclose (file);
    assert_null (mesh_ledger_open (fx->path, fx->key));
    assert_int_equal (mesh_ledger_set_aside (fx->path, fx->key), 0);
    mesh_segment_t *segs = NULL;
    char why[256];
    assert_int_equal (mesh_segments_list (fx->path, &segs, why, sizeof why), 0);
    ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    assert_int_equal (mesh_ledger_seq (ledger), 2);
    mesh_ledger_destroy (&ledger);
    assert_int_equal (s_verify (fx->path), 0);
}

static int
s_verify_tree (const char *path, const char *pubkey)
{
    FILE *out = fopen ("/dev/null", "w");
    int rc = mesh_audit_verify_tree (path, pubkey, false, out);
    fclose (out);
    return rc;
}

static void
test_retention (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    char *signer_text, *verifier_text, why[256];
    assert_int_equal (mesh_note_keygen ("test.example/meshd", &signer_text, &verifier_text), 0);
    mesh_note_signer_t signer;
    assert_int_equal (mesh_note_signer_parse (signer_text, &signer, why, sizeof why), 0);
    mesh_ledger_t *ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    assert_int_equal (mesh_ledger_set_signer (ledger, &signer, "test.example/meshd"), 0);
    mesh_ledger_set_rotation (ledger, 2000, 0);
    for (int i = 0; i < 80; i++)
        s_note (ledger, i);
    mesh_segment_t *segs = NULL;
    int before = mesh_segments_list (fx->path, &segs, why, sizeof why);
    assert_true (before >= 5);
    mesh_segments_free (&segs, before);
    //  Keep about 6000 bytes: the oldest segments go, whole.
    mesh_ledger_set_retention (ledger, 0, 6000);
    int after = mesh_segments_list (fx->path, &segs, why, sizeof why);
    assert_true (after >= 1 && after < before);
    mesh_segments_start_t start;
    assert_int_equal (mesh_segments_start (fx->path, &start, why, sizeof why), 1);
    assert_int_equal (start.first_seq, segs[0].first_seq);
    assert_int_equal (start.range.size, (uint64_t) start.first_seq - 1);
    assert_int_equal (json_array_size (start.removed), (size_t) (before - after));
    assert_int_equal (json_integer_value (json_object_get (json_array_get (start.removed, 0),
                                                           "first_seq")), 1);
    int64_t kept = start.first_seq;
    mesh_segments_start_free (&start);
    mesh_segments_free (&segs, after);
    //  The retention record is the last record, and says the same.
    FILE *file = fopen (fx->path, "r");
    char *line = NULL, *last = NULL;
    size_t cap = 0;
    while (getline (&line, &cap, file) > 0) {
        free (last);
        last = strdup (line);
    }
    fclose (file);
    free (line);
    json_t *record = json_loads (last, 0, NULL);
    free (last);
    assert_string_equal (json_string_value (json_object_get (record, "event")), "retention");
    assert_int_equal (json_integer_value (json_object_get (record, "first_kept_seq")), kept);
    assert_int_equal (json_integer_value (json_object_get (record, "range_size")), kept - 1);
    json_decref (record);
    //  More records and a checkpoint: it covers the removed records through the range.
    for (int i = 0; i < 5; i++)
        s_note (ledger, 100 + i);
    assert_true (mesh_ledger_checkpoint (ledger, true, NULL) > 0);
    int64_t last_seq = mesh_ledger_seq (ledger);
    mesh_ledger_destroy (&ledger);
    assert_int_equal (s_verify (fx->path), 0);
    assert_int_equal (s_verify_tree (fx->path, verifier_text), 0);
    //  The reader starts at the first kept record (retention ran again after the later
    //  rotations).
    assert_int_equal (mesh_segments_start (fx->path, &start, why, sizeof why), 1);
    assert_true (start.first_seq >= kept);
    kept = start.first_seq;
    mesh_segments_start_free (&start);
    file = mesh_segments_open (fx->path);
    assert_non_null (file);
    line = NULL;
    int64_t seq = kept - 1;
    while (getline (&line, &cap, file) > 0) {
        json_t *r = json_loads (line, 0, NULL);
        assert_int_equal (json_integer_value (json_object_get (r, "seq")), ++seq);
        json_decref (r);
    }
    free (line);
    fclose (file);
    assert_int_equal (seq, last_seq);
    //  The ledger opens it and goes on.
    ledger = mesh_ledger_open (fx->path, fx->key);
    assert_non_null (ledger);
    assert_int_equal (mesh_ledger_seq (ledger), last_seq + 1);
    mesh_ledger_destroy (&ledger);

    //  A changed range node: the chain still holds, the tree does not (the next
    //  checkpoint's root), and the ledger refuses the log.
    char retained[256], saved[256];
    snprintf (retained, sizeof retained, "%s.retained", fx->path);
    snprintf (saved, sizeof saved, "%s/retained.saved", fx->dir);
    size_t len;
    FILE *in = fopen (retained, "r");
    char buf[8192];
    len = fread (buf, 1, sizeof buf - 1, in);
    buf[len] = 0;
    fclose (in);
    FILE *keep = fopen (saved, "w");
    fwrite (buf, 1, len, keep);
    fclose (keep);
    char *node = strstr (buf, "\"nodes\":[\"");
    assert_non_null (node);
    node += strlen ("\"nodes\":[\"");
    node[0] = node[0] == 'A' ? 'B' : 'A';
    FILE *w = fopen (retained, "w");
    fwrite (buf, 1, len, w);
    fclose (w);
    assert_int_equal (s_verify (fx->path), 0);
    assert_int_not_equal (s_verify_tree (fx->path, verifier_text), 0);
    errno = 0;
    assert_null (mesh_ledger_open (fx->path, fx->key));
    assert_int_equal (errno, EBADMSG);
    //  No .retained at all: the log does not start at seq 1, and is refused.
    assert_int_equal (unlink (retained), 0);
    assert_int_not_equal (s_verify (fx->path), 0);
    assert_null (mesh_ledger_open (fx->path, fx->key));
    assert_int_equal (rename (saved, retained), 0);
    assert_int_equal (s_verify_tree (fx->path, verifier_text), 0);
    mesh_note_signer_wipe (&signer);
    free (signer_text);
    free (verifier_text);
}

//  Proofs from a compact range standing for a removed prefix: for every prefix size K,
//  every later leaf and every later old size, the same bytes as from the full tree; and
//  nothing about a removed leaf.  This checks the claim that an RFC 9162 path's hashes
//  inside [0, K) are always whole nodes of the compact range at K.
static void
test_merkle_prefix_proofs (void **state)
{
    enum { N = 40, BIG = 1000 };
    static mesh_merkle_hash_t leaves[BIG];
    for (int i = 0; i < BIG; i++) {
        char data[16];
        int len = snprintf (data, sizeof data, "leaf %d", i);
        mesh_merkle_leaf_hash (data, (size_t) len, leaves[i]);
    }
    int64_t checked = 0;
    for (uint64_t n = 1; n <= N; n++) {
        mesh_merkle_hash_t root;
        mesh_merkle_root (leaves, n, root);
        mesh_merkle_range_t prefix;
        mesh_merkle_range_init (&prefix);
        for (uint64_t k = 0; k <= n; k++) {
            if (k > 0)
                mesh_merkle_range_append (&prefix, leaves[k - 1]);
            mesh_merkle_hash_t got;
            if (mesh_merkle_root_from (&prefix, leaves + k, n, got) != 0)
                fail_msg ("root_from n %d k %d", (int) n, (int) k);
            assert_memory_equal (got, root, MESH_MERKLE_HASH);
            for (uint64_t m = 0; m < n; m++) {
                mesh_merkle_hash_t full[MESH_MERKLE_MAX_PATH], from[MESH_MERKLE_MAX_PATH];
                int len = mesh_merkle_inclusion_path_from (&prefix, leaves + k, n, m, from);
                if (m < k) {
                    assert_int_equal (len, -1);
                    continue;
                }
                assert_int_equal (len, mesh_merkle_inclusion_path (leaves, n, m, full));
                assert_memory_equal (from, full, (size_t) len * MESH_MERKLE_HASH);
                assert_true (mesh_merkle_verify_inclusion (m, n, leaves[m], from, (size_t) len,
                                                           root));
                checked++;
            }
            for (uint64_t old = 1; old <= n; old++) {
                mesh_merkle_hash_t full[MESH_MERKLE_MAX_PATH], from[MESH_MERKLE_MAX_PATH];
                int len = mesh_merkle_consistency_proof_from (&prefix, leaves + k, n, old, from);
                if (old < k) {
                    assert_int_equal (len, -1);
                    continue;
                }
                assert_int_equal (len, mesh_merkle_consistency_proof (leaves, n, old, full));
                assert_memory_equal (from, full, (size_t) len * MESH_MERKLE_HASH);
                checked++;
            }
        }
    }
    assert_true (checked > 20000);
    //  A larger tree, prefixes at and around powers of two.
    uint64_t ks[] = { 1, 255, 256, 257, 500, 511, 512, 513, 999, 1000 };
    mesh_merkle_hash_t root;
    mesh_merkle_root (leaves, BIG, root);
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) {
        mesh_merkle_range_t prefix;
        mesh_merkle_range_init (&prefix);
        for (uint64_t j = 0; j < ks[i]; j++)
            mesh_merkle_range_append (&prefix, leaves[j]);
        for (uint64_t m = ks[i]; m < BIG; m += 41) {
            mesh_merkle_hash_t full[MESH_MERKLE_MAX_PATH], from[MESH_MERKLE_MAX_PATH];
            int len = mesh_merkle_inclusion_path_from (&prefix, leaves + ks[i], BIG, m, from);
            assert_int_equal (len, mesh_merkle_inclusion_path (leaves, BIG, m, full));
            assert_memory_equal (from, full, (size_t) len * MESH_MERKLE_HASH);
            len = mesh_merkle_consistency_proof_from (&prefix, leaves + ks[i], BIG, m + 1, from);
            assert_int_equal (len, mesh_merkle_consistency_proof (leaves, BIG, m + 1, full));
            assert_memory_equal (from, full, (size_t) len * MESH_MERKLE_HASH);
        }
        mesh_merkle_hash_t got;
        assert_int_equal (mesh_merkle_root_from (&prefix, leaves + ks[i], BIG, got), 0);
        assert_memory_equal (got, root, MESH_MERKLE_HASH);
    }
}

int
main (void)
{
    if (!getenv ("MESH_LOG_LEVEL"))
        mesh_log_set_level (MESH_LOG_ERR - 1);      //  the failure paths log on purpose
    if (sodium_init () < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_rotate_by_size, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_rotate_tree_and_checkpoints, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_rotate_by_age_and_not_in_batch, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_missing_segment_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_torn_active_log, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_retention, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_set_aside_with_segments, s_setup, s_teardown),
        cmocka_unit_test (test_merkle_prefix_proofs),
    };
    return cmocka_run_group_tests_name ("segments", tests, NULL, NULL);
}

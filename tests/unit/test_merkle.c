/*  test_merkle - the RFC 9162 tree, its proofs and their verifiers; C2SP signed notes and
 *  checkpoints.
 *
 *  Vectors: the roots of the first 1..8 leaves of Certificate Transparency's test data
 *  (leaves "", 00, 10, 2021, 3031, 40414243, 50..57, 60..6f), the inclusion path of leaf 0
 *  in the tree of 8 and three consistency proofs from the same test data.  Then every
 *  index and every older size of trees of 1, 2, 3, 7, 8, 9 and 1000 leaves: each proof
 *  verifies, and each one changed in any way does not.
 */
#include "merkle.h"
#include "note.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
s_unhex (const char *hex, uint8_t *out)
{
    assert_int_equal (sodium_hex2bin (out, 32, hex, 64, NULL, NULL, NULL), 0);
}

static const uint8_t *s_ct_leaf[8];
static size_t s_ct_len[8];
static uint8_t s_ct_data[8][16];

static void
s_ct_leaves (mesh_merkle_hash_t *leaves)
{
    static const size_t lens[8] = {0, 1, 1, 2, 2, 4, 8, 16};
    static const uint8_t starts[8] = {0, 0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60};
    for (int i = 0; i < 8; i++) {
        for (size_t j = 0; j < lens[i]; j++)
            s_ct_data[i][j] = (uint8_t) (starts[i] + j);
        s_ct_leaf[i] = s_ct_data[i];
        s_ct_len[i] = lens[i];
        mesh_merkle_leaf_hash (s_ct_leaf[i], s_ct_len[i], leaves[i]);
    }
}

static void
test_vectors (void **state)
{
    static const char *roots[8] = {
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"};
    mesh_merkle_hash_t leaves[8], root, want;
    s_ct_leaves (leaves);
    mesh_merkle_range_t range;
    mesh_merkle_range_init (&range);
    mesh_merkle_range_root (&range, root);
    s_unhex ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", want);
    assert_memory_equal (root, want, 32);          //  MTH({}) = SHA-256 ("")
    for (int n = 1; n <= 8; n++) {
        mesh_merkle_range_append (&range, leaves[n - 1]);
        s_unhex (roots[n - 1], want);
        mesh_merkle_range_root (&range, root);
        assert_memory_equal (root, want, 32);
        mesh_merkle_root (leaves, (uint64_t) n, root);
        assert_memory_equal (root, want, 32);
    }
    //  Inclusion of leaf 0 in the tree of 8.
    mesh_merkle_hash_t path[MESH_MERKLE_MAX_PATH], exp[3];
    assert_int_equal (mesh_merkle_inclusion_path (leaves, 8, 0, path), 3);
    s_unhex ("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7", exp[0]);
    s_unhex ("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", exp[1]);
    s_unhex ("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4", exp[2]);
    assert_memory_equal (path, exp, sizeof exp);
    //  Consistency 1 -> 8 (the same three), 6 -> 8, 2 -> 5.
    assert_int_equal (mesh_merkle_consistency_proof (leaves, 8, 1, path), 3);
    assert_memory_equal (path, exp, sizeof exp);
    assert_int_equal (mesh_merkle_consistency_proof (leaves, 8, 6, path), 3);
    s_unhex ("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a", exp[0]);
    s_unhex ("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0", exp[1]);
    s_unhex ("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7", exp[2]);
    assert_memory_equal (path, exp, sizeof exp);
    assert_int_equal (mesh_merkle_consistency_proof (leaves, 5, 2, path), 2);
    s_unhex ("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", exp[0]);
    s_unhex ("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b", exp[1]);
    assert_memory_equal (path, exp, 2 * sizeof exp[0]);
    //  Bad arguments.
    assert_int_equal (mesh_merkle_inclusion_path (leaves, 8, 8, path), -1);
    assert_int_equal (mesh_merkle_consistency_proof (leaves, 8, 0, path), -1);
    assert_int_equal (mesh_merkle_consistency_proof (leaves, 8, 9, path), -1);
    assert_int_equal (mesh_merkle_consistency_proof (leaves, 8, 8, path), 0);
}

//  Every proof of a tree of N leaves verifies; any change to it does not.
static void
s_check_size (uint64_t n, uint64_t step)
{
    mesh_merkle_hash_t *leaves = calloc (n, sizeof *leaves);
    assert_non_null (leaves);
    mesh_merkle_range_t range;
    mesh_merkle_range_init (&range);
    mesh_merkle_hash_t *roots = calloc (n + 1, sizeof *roots);
    for (uint64_t i = 0; i < n; i++) {
        char line[64];
        int len = snprintf (line, sizeof line, "{\"seq\":%llu}", (unsigned long long) i + 1);
        mesh_merkle_leaf_hash (line, (size_t) len, leaves[i]);
        mesh_merkle_range_append (&range, leaves[i]);
        mesh_merkle_range_root (&range, roots[i + 1]);
    }
    mesh_merkle_hash_t root, path[MESH_MERKLE_MAX_PATH];
    mesh_merkle_root (leaves, n, root);
    assert_memory_equal (root, roots[n], 32);
    for (uint64_t i = 0; i < n; i += (i + step < n ? step : 1)) {
        int len = mesh_merkle_inclusion_path (leaves, n, i, path);
        assert_true (len >= 0);
        assert_true (mesh_merkle_verify_inclusion (i, n, leaves[i], path, (size_t) len, root));
        //  Another index, a path one shorter or with a flipped bit, another leaf, another
        //  root: all refused.  (Another size can verify: the checkpoint binds the size to
        //  the root, not the path.)
        if (n > 1) {
            assert_false (mesh_merkle_verify_inclusion ((i + 1) % n, n, leaves[i], path,
                                                        (size_t) len, root));
            assert_false (mesh_merkle_verify_inclusion (i, n, leaves[(i + 1) % n], path,
                                                        (size_t) len, root));
        }
        assert_false (mesh_merkle_verify_inclusion (i, n, leaves[i], path, (size_t) len,
                                                    roots[n - 1]));
        if (len > 0) {
            assert_false (mesh_merkle_verify_inclusion (i, n, leaves[i], path,
                                                        (size_t) len - 1, root));
            path[len - 1][7] ^= 0x20;
            assert_false (mesh_merkle_verify_inclusion (i, n, leaves[i], path, (size_t) len,
                                                        root));
        }
    }
    for (uint64_t m = 1; m <= n; m += (m + step <= n ? step : 1)) {
        int len = mesh_merkle_consistency_proof (leaves, n, m, path);
        assert_true (len >= 0);
        assert_true (mesh_merkle_verify_consistency (m, n, roots[m], roots[n], path,
                                                     (size_t) len));
        if (m < n) {
            //  A rewritten old tree (another root of the same size) is caught.
            mesh_merkle_hash_t forged;
            memcpy (forged, roots[m], 32);
            forged[0] ^= 1;
            assert_false (mesh_merkle_verify_consistency (m, n, forged, roots[n], path,
                                                          (size_t) len));
            assert_false (mesh_merkle_verify_consistency (m, n, roots[m], roots[n - 1], path,
                                                          (size_t) len));
            assert_false (mesh_merkle_verify_consistency (m, n, roots[m], roots[n], path,
                                                          (size_t) len - 1));
            path[0][3] ^= 0x80;
            assert_false (mesh_merkle_verify_consistency (m, n, roots[m], roots[n], path,
                                                          (size_t) len));
        }
        else
            assert_int_equal (len, 0);
    }
    assert_false (mesh_merkle_verify_consistency (0, n, roots[0], roots[n], path, 0));
    free (leaves);
    free (roots);
}

static void
test_sizes (void **state)
{
    const uint64_t sizes[] = {1, 2, 3, 7, 8, 9, 16, 17, 100};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        s_check_size (sizes[i], 1);
    s_check_size (1000, 7);             //  every 7th index and old size, and the ends
}

static void
test_note (void **state)
{
    char *signer_text, *verifier_text, why[256];
    assert_int_equal (mesh_note_keygen ("host.example/meshd", &signer_text, &verifier_text), 0);
    assert_int_equal (strncmp (signer_text, "PRIVATE+KEY+host.example/meshd+", 31), 0);
    mesh_note_signer_t signer;
    mesh_note_verifier_t verifier;
    assert_int_equal (mesh_note_signer_parse (signer_text, &signer, why, sizeof why), 0);
    assert_int_equal (mesh_note_verifier_parse (verifier_text, &verifier, why, sizeof why), 0);
    assert_memory_equal (signer.v.pk, verifier.pk, 32);
    //  The key id, computed here from its definition.
    uint8_t buf[256], digest[32];
    size_t name_len = strlen ("host.example/meshd");
    memcpy (buf, "host.example/meshd", name_len);
    buf[name_len] = '\n';
    buf[name_len + 1] = 0x01;
    memcpy (buf + name_len + 2, verifier.pk, 32);
    crypto_hash_sha256 (digest, buf, name_len + 34);
    assert_int_equal (verifier.id, (uint32_t) digest[0] << 24 | (uint32_t) digest[1] << 16
                                       | (uint32_t) digest[2] << 8 | digest[3]);
    char *again = mesh_note_verifier_text (&verifier);
    assert_string_equal (again, verifier_text);
    free (again);
    //  A private key is not a verifier; a changed key id is refused.
    assert_int_equal (mesh_note_verifier_parse (signer_text, &verifier, why, sizeof why), -1);
    char *bad = strdup (verifier_text);
    char *id = strchr (bad, '+') + 1;
    id[0] = id[0] == '0' ? '1' : '0';
    assert_int_equal (mesh_note_verifier_parse (bad, &verifier, why, sizeof why), -1);
    free (bad);
    assert_int_equal (mesh_note_verifier_parse (verifier_text, &verifier, why, sizeof why), 0);
    assert_int_equal (mesh_note_keygen ("bad name", &bad, &again), -1);
    assert_int_equal (mesh_note_keygen ("", &bad, &again), -1);

    mesh_merkle_hash_t root, got;
    for (int i = 0; i < 32; i++)
        root[i] = (uint8_t) i;
    char *body = mesh_checkpoint_body ("host.example/meshd", 1234, root);
    assert_string_equal (body,
                         "host.example/meshd\n1234\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n");
    char *note = mesh_note_sign (&signer, body);
    assert_non_null (note);
    assert_int_equal (strncmp (note + strlen (body), "\n\xe2\x80\x94 host.example/meshd ", 24),
                      0);
    char *out = NULL;
    assert_int_equal (mesh_note_verify (note, &verifier, &out, why, sizeof why), 0);
    assert_string_equal (out, body);
    free (out);
    char origin[64];
    uint64_t size;
    assert_int_equal (mesh_checkpoint_parse (body, origin, sizeof origin, &size, got, why,
                                             sizeof why), 0);
    assert_string_equal (origin, "host.example/meshd");
    assert_int_equal (size, 1234);
    assert_memory_equal (got, root, 32);
    //  Any changed byte of the body fails; so does another key.
    char *forged = strdup (note);
    forged[strlen ("host.example/meshd\n12")] = '9';
    assert_int_equal (mesh_note_verify (forged, &verifier, NULL, why, sizeof why), -1);
    assert_non_null (strstr (why, "does not verify"));
    free (forged);
    char *other_s, *other_v;
    assert_int_equal (mesh_note_keygen ("host.example/meshd", &other_s, &other_v), 0);
    mesh_note_verifier_t other;
    assert_int_equal (mesh_note_verifier_parse (other_v, &other, why, sizeof why), 0);
    assert_int_equal (mesh_note_verify (note, &other, NULL, why, sizeof why), -1);
    //  Malformed notes.
    assert_int_equal (mesh_note_verify (body, &verifier, NULL, why, sizeof why), -1);
    assert_int_equal (mesh_note_verify ("", &verifier, NULL, why, sizeof why), -1);
    assert_int_equal (mesh_note_verify ("a\n\n\xe2\x80\x94 x\n", &verifier, NULL, why,
                                        sizeof why), -1);
    assert_null (mesh_note_sign (&signer, "no newline"));
    assert_null (mesh_note_sign (&signer, "a\n\nb\n"));
    //  Malformed checkpoint bodies.
    const char *bodies[] = {"o\n12\n", "o\n012\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
                            "o\n-1\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
                            "o\n1\nAAEC\n", "\n1\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        assert_int_equal (mesh_checkpoint_parse (bodies[i], origin, sizeof origin, &size, got,
                                                 why, sizeof why), -1);
    free (other_s);
    free (other_v);
    free (note);
    free (body);
    free (signer_text);
    free (verifier_text);
    mesh_note_signer_wipe (&signer);
}

int
main (void)
{
    assert_int_equal (sodium_init () >= 0, 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_vectors),
        cmocka_unit_test (test_sizes),
        cmocka_unit_test (test_note),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

/*  fuzz_proof - what an auditor's machine parses from elsewhere: signed notes, verifier
 *  and signer keys, checkpoint bodies, and proof files (audit/note.c, audit/proofs.c).
 *
 *  Byte 0 of the input picks the parser; the rest is its input:
 *    0  a signed note, verified with the harness's key, and its body as a checkpoint
 *    1  a verifier key text, then a signer key text
 *    2  a proof file, as `meshctl audit verify-proof FILE --pubkey KEY` reads it
 *    3  the same, "sealed": when it is a JSON object with a string "checkpoint" (or
 *       "old_checkpoint" / "new_checkpoint"), each note's body (up to its empty line) is
 *       signed again with the harness's key, so that mutations reach the Merkle
 *       verification behind the signature check.
 */
#include "audit_cli.h"
#include "fuzz_common.h"
#include "note.h"

#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static mesh_note_signer_t s_signer;
static char *s_pubkey;

static void
s_init (void)
{
    if (s_pubkey)
        return;
    fuzz_quiet ();
    //  A fixed key (seed 32 x 0x01), so that the seed corpus can be signed with it.
    uint8_t seed[32], buf[256], digest[32];
    memset (seed, 1, sizeof seed);
    crypto_sign_seed_keypair (s_signer.v.pk, s_signer.sk, seed);
    snprintf (s_signer.v.name, sizeof s_signer.v.name, "fuzz.example/meshd");
    size_t n = strlen (s_signer.v.name);
    memcpy (buf, s_signer.v.name, n);
    buf[n] = '\n';
    buf[n + 1] = 1;
    memcpy (buf + n + 2, s_signer.v.pk, 32);
    crypto_hash_sha256 (digest, buf, n + 34);
    s_signer.v.id = (uint32_t) digest[0] << 24 | (uint32_t) digest[1] << 16
                    | (uint32_t) digest[2] << 8 | digest[3];
    s_pubkey = mesh_note_verifier_text (&s_signer.v);
}

//  Re-sign the note in KEY of PROOF with the harness's key.
static void
s_reseal (json_t *proof, const char *key)
{
    const char *note = json_string_value (json_object_get (proof, key));
    const char *split = note ? strstr (note, "\n\n") : NULL;
    if (!split)
        return;
    char *body = strndup (note, (size_t) (split - note) + 1);
    char *signed_note = body ? mesh_note_sign (&s_signer, body) : NULL;
    if (signed_note)
        json_object_set_new (proof, key, json_string (signed_note));
    free (signed_note);
    free (body);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    s_init ();
    if (size < 1)
        return 0;
    int mode = data[0] & 3;
    char *text = strndup ((const char *) data + 1, size - 1);
    char why[512];
    if (mode == 0) {
        char *body = NULL;
        if (mesh_note_verify (text, &s_signer.v, &body, why, sizeof why) == 0) {
            char origin[256];
            uint64_t tree_size;
            mesh_merkle_hash_t root;
            mesh_checkpoint_parse (body, origin, sizeof origin, &tree_size, root, why,
                                   sizeof why);
        }
        free (body);
        char name[MESH_NOTE_NAME_MAX + 1];
        uint32_t id;
        mesh_note_first_signer (text, name, sizeof name, &id);
    }
    else
    if (mode == 1) {
        mesh_note_verifier_t v;
        mesh_note_signer_t sg;
        mesh_note_verifier_parse (text, &v, why, sizeof why);
        mesh_note_signer_parse (text, &sg, why, sizeof why);
    }
    else {
        const char *path = fuzz_file ("proof.json", data + 1, size - 1);
        if (mode == 3) {
            json_t *proof = json_loadb ((const char *) data + 1, size - 1, 0, NULL);
            if (json_is_object (proof)) {
                s_reseal (proof, "checkpoint");
                s_reseal (proof, "old_checkpoint");
                s_reseal (proof, "new_checkpoint");
                char *sealed = json_dumps (proof, JSON_COMPACT);
                if (sealed)
                    path = fuzz_file ("proof.json", (const uint8_t *) sealed, strlen (sealed));
                free (sealed);
            }
            json_decref (proof);
        }
        char *argv[] = {(char *) path, NULL};
        mesh_audit_cli_t o = {.pubkey = s_pubkey, .argc = 1, .argv = argv};
        FILE *out = fopen ("/dev/null", "w");
        mesh_audit_verify_proof_cli (&o, out);
        fclose (out);
    }
    free (text);
    return 0;
}

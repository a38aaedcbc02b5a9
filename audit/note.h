/*  note - Ed25519 signed notes and tree checkpoints in the C2SP formats
 *  (c2sp.org/signed-note, c2sp.org/tlog-checkpoint), as Go's checksum database and
 *  Sigstore use them.
 *
 *  Checkpoint body: three lines, each ending in "\n":
 *      <origin>                    the log's name, e.g. "host.example/meshd"
 *      <tree size>                 decimal, no leading zeros
 *      <root hash>                 standard base64 of the 32-byte RFC 9162 root
 *  Signed note: the body, an empty line, then one line per signature:
 *      "\u2014 " <key name> " " base64 (4-byte key id || 64-byte Ed25519 signature) "\n"
 *  The signature covers the body's bytes including its final newline.  The key id is the
 *  first 4 bytes (big-endian) of SHA-256 (key name || 0x0A || 0x01 || public key).
 *
 *  Key texts (the formats of Go's golang.org/x/mod/sumdb/note):
 *      signer   PRIVATE+KEY+<name>+<key id, 8 hex>+<base64 (0x01 || 32-byte seed)>
 *      verifier <name>+<key id, 8 hex>+<base64 (0x01 || 32-byte public key)>
 *  A key name is non-empty, at most 128 bytes, printable ASCII without spaces or '+'.
 */
#ifndef MESH_NOTE_H
#define MESH_NOTE_H

#include "merkle.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MESH_NOTE_NAME_MAX 128
#define MESH_NOTE_MAX_BYTES 8192        //  a note (body and signatures) longer is refused
#define MESH_NOTE_MAX_SIGS 100

typedef struct {
    char name[MESH_NOTE_NAME_MAX + 1];
    uint32_t id;
    uint8_t pk[32];
} mesh_note_verifier_t;

typedef struct {
    mesh_note_verifier_t v;
    uint8_t sk[64];                     //  libsodium's secret key (seed || public key)
} mesh_note_signer_t;

//  Make a new key pair named NAME: *SIGNER_TEXT and *VERIFIER_TEXT (caller frees; no
//  newline).  -1 if NAME is not a valid key name.
int mesh_note_keygen (const char *name, char **signer_text, char **verifier_text);
//  Parse a signer / verifier key text (surrounding white space ignored).  0, or -1 with
//  WHY (WHY_SIZE bytes) saying what is wrong.
int mesh_note_signer_parse (const char *text, mesh_note_signer_t *signer, char *why,
                            size_t why_size);
int mesh_note_verifier_parse (const char *text, mesh_note_verifier_t *verifier, char *why,
                              size_t why_size);
//  The verifier key text of V (caller frees).
char *mesh_note_verifier_text (const mesh_note_verifier_t *v);
//  Wipe a signer.
void mesh_note_signer_wipe (mesh_note_signer_t *signer);
//  Read a signer key from a file: at most 1 KiB, a regular file; STRICT also demands it be
//  owned by the euid without permissions for group or others.  1 loaded, 0 no such file,
//  -1 refused (WHY).
int mesh_note_signer_load (const char *path, bool strict, mesh_note_signer_t *signer,
                           char *why, size_t why_size);
//  Make a new signer named NAME and write it to PATH (created: mode 0600, O_EXCL, synced,
//  parent directory made 0750).  1 and *SIGNER, or -1 (WHY; an existing file is never
//  replaced).
int mesh_note_signer_create (const char *path, const char *name, mesh_note_signer_t *signer,
                             char *why, size_t why_size);
//  A verifier key given as its text or as a file holding it (first line).  0 or -1 (WHY).
int mesh_note_verifier_load (const char *text_or_path, mesh_note_verifier_t *verifier,
                             char *why, size_t why_size);

//  Sign BODY (which must end in "\n" and hold no empty line): the signed note (caller
//  frees), or NULL.
char *mesh_note_sign (const mesh_note_signer_t *signer, const char *body);
//  Check NOTE (the whole signed note text): its form, and that a signature line by V's
//  name and key id verifies.  0 and *BODY_P (caller frees, may be NULL) = the body, or -1
//  with WHY.  Signatures by other keys are ignored, as the format says.
int mesh_note_verify (const char *note, const mesh_note_verifier_t *v, char **body_p,
                      char *why, size_t why_size);
//  The name and key id of the first signature line of NOTE, without verifying: 0 or -1.
int mesh_note_first_signer (const char *note, char *name, size_t name_size, uint32_t *id);

//  Checkpoint bodies.
char *mesh_checkpoint_body (const char *origin, uint64_t size, const mesh_merkle_hash_t root);
//  Parse a checkpoint body (extension lines after the third are allowed and ignored).  0,
//  or -1 (WHY).  ORIGIN gets at most ORIGIN_SIZE - 1 bytes.
int mesh_checkpoint_parse (const char *body, char *origin, size_t origin_size, uint64_t *size,
                           mesh_merkle_hash_t root, char *why, size_t why_size);

//  Base64 (standard, padded) of LEN bytes into OUT (sodium_base64_ENCODED_LEN bytes).
void mesh_b64 (const uint8_t *data, size_t len, char *out, size_t out_size);
//  Decode exactly LEN bytes of standard padded base64; 0 or -1.
int mesh_unb64 (const char *text, uint8_t *data, size_t len);

#endif

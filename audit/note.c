/*  note - Ed25519 signed notes and checkpoints (C2SP).  See note.h.
 */
#include "note.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_DASH "\xe2\x80\x94"           //  U+2014 EM DASH, UTF-8
#define S_ALG_ED25519 0x01

void
mesh_b64 (const uint8_t *data, size_t len, char *out, size_t out_size)
{
    sodium_bin2base64 (out, out_size, data, len, sodium_base64_VARIANT_ORIGINAL);
}

int
mesh_unb64 (const char *text, uint8_t *data, size_t len)
{
    size_t got = 0;
    const char *end = NULL;
    size_t text_len = strlen (text);
    if (text_len != sodium_base64_ENCODED_LEN (len, sodium_base64_VARIANT_ORIGINAL) - 1)
        return -1;
    if (sodium_base642bin (data, len, text, text_len, NULL, &got, &end,
                           sodium_base64_VARIANT_ORIGINAL) != 0
        || got != len || *end)
        return -1;
    return 0;
}

static bool
s_valid_name (const char *name)
{
    size_t len = strlen (name);
    if (len == 0 || len > MESH_NOTE_NAME_MAX)
        return false;
    for (const char *p = name; *p; p++)
        if (*p <= ' ' || *p >= 0x7f || *p == '+')
            return false;
    return true;
}

static uint32_t
s_key_id (const char *name, const uint8_t pk[32])
{
    crypto_hash_sha256_state st;
    const uint8_t sep[2] = {'\n', S_ALG_ED25519};
    uint8_t digest[32];
    crypto_hash_sha256_init (&st);
    crypto_hash_sha256_update (&st, (const unsigned char *) name, strlen (name));
    crypto_hash_sha256_update (&st, sep, 2);
    crypto_hash_sha256_update (&st, pk, 32);
    crypto_hash_sha256_final (&st, digest);
    return (uint32_t) digest[0] << 24 | (uint32_t) digest[1] << 16 | (uint32_t) digest[2] << 8
           | digest[3];
}

static char *
s_key_text (const char *prefix, const char *name, uint32_t id, const uint8_t key[32])
{
    uint8_t raw[33];
    raw[0] = S_ALG_ED25519;
    memcpy (raw + 1, key, 32);
    char b64[sodium_base64_ENCODED_LEN (33, sodium_base64_VARIANT_ORIGINAL)];
    mesh_b64 (raw, sizeof raw, b64, sizeof b64);
    sodium_memzero (raw, sizeof raw);
    char *text = NULL;
    if (asprintf (&text, "%s%s+%08" PRIx32 "+%s", prefix, name, id, b64) < 0)
        text = NULL;
    sodium_memzero (b64, sizeof b64);
    return text;
}

int
mesh_note_keygen (const char *name, char **signer_text, char **verifier_text)
{
    if (!s_valid_name (name))
        return -1;
    uint8_t seed[32], pk[32], sk[64];
    randombytes_buf (seed, sizeof seed);
    crypto_sign_seed_keypair (pk, sk, seed);
    uint32_t id = s_key_id (name, pk);
    *signer_text = s_key_text ("PRIVATE+KEY+", name, id, seed);
    *verifier_text = s_key_text ("", name, id, pk);
    sodium_memzero (seed, sizeof seed);
    sodium_memzero (sk, sizeof sk);
    return *signer_text && *verifier_text ? 0 : -1;
}

//  Split "<name>+<hex id>+<base64>" (TEXT without the PRIVATE+KEY+ prefix) into its
//  parts: the name (checked), the id and the 32-byte key after the algorithm byte.
static int
s_parse_key (const char *text, char *name, uint32_t *id, uint8_t key[32], char *why,
             size_t why_size)
{
    const char *plus1 = strchr (text, '+');
    const char *plus2 = plus1 ? strchr (plus1 + 1, '+') : NULL;
    if (!plus1 || !plus2) {
        snprintf (why, why_size, "is not <name>+<key id>+<key>");
        return -1;
    }
    size_t name_len = (size_t) (plus1 - text);
    if (name_len == 0 || name_len > MESH_NOTE_NAME_MAX) {
        snprintf (why, why_size, "has a key name of %zu bytes (1 to %d)", name_len,
                  MESH_NOTE_NAME_MAX);
        return -1;
    }
    memcpy (name, text, name_len);
    name[name_len] = 0;
    if (!s_valid_name (name)) {
        snprintf (why, why_size, "has a key name with spaces or control characters");
        return -1;
    }
    char hex[9];
    if (plus2 - plus1 - 1 != 8) {
        snprintf (why, why_size, "has a key id that is not 8 hex digits");
        return -1;
    }
    memcpy (hex, plus1 + 1, 8);
    hex[8] = 0;
    char *end;
    errno = 0;
    unsigned long parsed = strtoul (hex, &end, 16);
    if (*end || errno || strspn (hex, "0123456789abcdefABCDEF") != 8) {
        snprintf (why, why_size, "has a key id that is not 8 hex digits");
        return -1;
    }
    *id = (uint32_t) parsed;
    uint8_t raw[33];
    if (mesh_unb64 (plus2 + 1, raw, sizeof raw) != 0 || raw[0] != S_ALG_ED25519) {
        sodium_memzero (raw, sizeof raw);
        snprintf (why, why_size, "does not hold an Ed25519 key (base64 of 0x01 and 32 bytes)");
        return -1;
    }
    memcpy (key, raw + 1, 32);
    sodium_memzero (raw, sizeof raw);
    return 0;
}

//  TEXT with surrounding white space removed (caller frees), at most 1 KiB.
static char *
s_trimmed (const char *text)
{
    while (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r')
        text++;
    size_t len = strnlen (text, 1025);
    if (len > 1024)
        return NULL;
    while (len && (text[len - 1] == ' ' || text[len - 1] == '\t' || text[len - 1] == '\n'
                   || text[len - 1] == '\r'))
        len--;
    return strndup (text, len);
}

int
mesh_note_signer_parse (const char *text, mesh_note_signer_t *signer, char *why,
                        size_t why_size)
{
    memset (signer, 0, sizeof *signer);
    char *copy = s_trimmed (text);
    if (!copy || strncmp (copy, "PRIVATE+KEY+", 12) != 0) {
        snprintf (why, why_size, "is not a signer key (PRIVATE+KEY+<name>+<id>+<key>)");
        free (copy);
        return -1;
    }
    uint8_t seed[32];
    int rc = s_parse_key (copy + 12, signer->v.name, &signer->v.id, seed, why, why_size);
    sodium_memzero (copy, strlen (copy));
    free (copy);
    if (rc != 0)
        return -1;
    crypto_sign_seed_keypair (signer->v.pk, signer->sk, seed);
    sodium_memzero (seed, sizeof seed);
    if (s_key_id (signer->v.name, signer->v.pk) != signer->v.id) {
        snprintf (why, why_size, "has a key id that does not match its key");
        mesh_note_signer_wipe (signer);
        return -1;
    }
    return 0;
}

int
mesh_note_verifier_parse (const char *text, mesh_note_verifier_t *verifier, char *why,
                          size_t why_size)
{
    memset (verifier, 0, sizeof *verifier);
    char *copy = s_trimmed (text);
    if (!copy) {
        snprintf (why, why_size, "is longer than 1 KiB");
        return -1;
    }
    if (strncmp (copy, "PRIVATE+KEY+", 12) == 0) {
        snprintf (why, why_size, "is a private signer key, not a public verifier key");
        sodium_memzero (copy, strlen (copy));
        free (copy);
        return -1;
    }
    int rc = s_parse_key (copy, verifier->name, &verifier->id, verifier->pk, why, why_size);
    free (copy);
    if (rc == 0 && s_key_id (verifier->name, verifier->pk) != verifier->id) {
        snprintf (why, why_size, "has a key id that does not match its key");
        rc = -1;
    }
    return rc;
}

char *
mesh_note_verifier_text (const mesh_note_verifier_t *v)
{
    return s_key_text ("", v->name, v->id, v->pk);
}

void
mesh_note_signer_wipe (mesh_note_signer_t *signer)
{
    sodium_memzero (signer, sizeof *signer);
}

//  Read at most MAX bytes of PATH (a regular file) into a string (caller frees).
static char *
s_read_small (const char *path, size_t max, bool strict, int *missing, char *why,
              size_t why_size)
{
    *missing = 0;
    int fd = open (path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            *missing = 1;
        snprintf (why, why_size, "cannot be opened: %s", strerror (errno));
        return NULL;
    }
    struct stat st;
    if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode)) {
        snprintf (why, why_size, "is not a regular file");
        close (fd);
        return NULL;
    }
    if (strict && (st.st_uid != geteuid () || (st.st_mode & 077))) {
        snprintf (why, why_size, "must be owned by uid %u with mode 0600 or 0400 (it is "
                  "uid %u, mode %04o)", (unsigned) geteuid (), (unsigned) st.st_uid,
                  (unsigned) (st.st_mode & 07777));
        close (fd);
        return NULL;
    }
    if ((size_t) st.st_size > max) {
        snprintf (why, why_size, "is larger than %zu bytes", max);
        close (fd);
        return NULL;
    }
    char *text = calloc (1, max + 1);
    ssize_t n = text ? read (fd, text, max) : -1;
    close (fd);
    if (n < 0) {
        snprintf (why, why_size, "cannot be read: %s", strerror (errno));
        free (text);
        return NULL;
    }
    return text;
}

int
mesh_note_signer_load (const char *path, bool strict, mesh_note_signer_t *signer, char *why,
                       size_t why_size)
{
    int missing;
    char *text = s_read_small (path, 1024, strict, &missing, why, why_size);
    if (!text)
        return missing ? 0 : -1;
    int rc = mesh_note_signer_parse (text, signer, why, why_size);
    sodium_memzero (text, 1024);
    free (text);
    return rc == 0 ? 1 : -1;
}

int
mesh_note_signer_create (const char *path, const char *name, mesh_note_signer_t *signer,
                         char *why, size_t why_size)
{
    char *signer_text = NULL, *verifier_text = NULL;
    if (mesh_note_keygen (name, &signer_text, &verifier_text) != 0) {
        snprintf (why, why_size, "the key name \"%.64s\" is not valid (printable, no spaces "
                  "or '+')", name);
        free (signer_text);
        free (verifier_text);
        return -1;
    }
    free (verifier_text);
    char *dir = strdup (path);
    char *slash = dir ? strrchr (dir, '/') : NULL;
    if (slash && slash != dir) {
        *slash = 0;
        mkdir (dir, 0750);              //  an existing one is fine; open says the rest
    }
    free (dir);
    int rc = -1;
    int fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        snprintf (why, why_size, "cannot be created: %s", strerror (errno));
    else {
        size_t len = strlen (signer_text);
        bool ok = fchmod (fd, 0600) == 0 && write (fd, signer_text, len) == (ssize_t) len
                  && write (fd, "\n", 1) == 1 && fsync (fd) == 0;
        if (close (fd) != 0)
            ok = false;
        if (!ok) {
            snprintf (why, why_size, "cannot be written: %s", strerror (errno));
            unlink (path);
        }
        else
            rc = mesh_note_signer_parse (signer_text, signer, why, why_size) == 0 ? 1 : -1;
    }
    sodium_memzero (signer_text, strlen (signer_text));
    free (signer_text);
    return rc;
}

int
mesh_note_verifier_load (const char *text_or_path, mesh_note_verifier_t *verifier, char *why,
                         size_t why_size)
{
    struct stat st;
    if (stat (text_or_path, &st) != 0)         //  not a file: the key's text itself
        return mesh_note_verifier_parse (text_or_path, verifier, why, why_size);
    int missing;
    char *text = s_read_small (text_or_path, 1024, false, &missing, why, why_size);
    if (!text)
        return -1;
    int rc = mesh_note_verifier_parse (text, verifier, why, why_size);
    free (text);
    return rc;
}

char *
mesh_note_sign (const mesh_note_signer_t *signer, const char *body)
{
    size_t len = strlen (body);
    if (len == 0 || body[len - 1] != '\n' || strstr (body, "\n\n") || len > MESH_NOTE_MAX_BYTES
        || body[0] == '\n')
        return NULL;
    uint8_t sig[4 + crypto_sign_BYTES];
    sig[0] = (uint8_t) (signer->v.id >> 24);
    sig[1] = (uint8_t) (signer->v.id >> 16);
    sig[2] = (uint8_t) (signer->v.id >> 8);
    sig[3] = (uint8_t) signer->v.id;
    crypto_sign_detached (sig + 4, NULL, (const unsigned char *) body, len, signer->sk);
    char b64[sodium_base64_ENCODED_LEN (sizeof sig, sodium_base64_VARIANT_ORIGINAL)];
    mesh_b64 (sig, sizeof sig, b64, sizeof b64);
    char *note = NULL;
    if (asprintf (&note, "%s\n" S_DASH " %s %s\n", body, signer->v.name, b64) < 0)
        return NULL;
    return note;
}

//  Split NOTE into body length and the start of the signature block.  -1 (WHY) if its
//  form is wrong.
static int
s_split_note (const char *note, size_t *body_len, const char **sigs, char *why, size_t why_size)
{
    size_t len = strnlen (note, MESH_NOTE_MAX_BYTES + 1);
    if (len > MESH_NOTE_MAX_BYTES) {
        snprintf (why, why_size, "the note is longer than %d bytes", MESH_NOTE_MAX_BYTES);
        return -1;
    }
    for (size_t i = 0; i < len; i++)
        if ((unsigned char) note[i] < 0x20 && note[i] != '\n') {
            snprintf (why, why_size, "the note holds a control character at byte %zu", i);
            return -1;
        }
    if (len == 0 || note[len - 1] != '\n') {
        snprintf (why, why_size, "the note does not end with a newline");
        return -1;
    }
    //  The body ends at the last "\n\n": signature lines never hold an empty line.
    const char *split = NULL;
    for (const char *p = strstr (note, "\n\n"); p; p = strstr (p + 1, "\n\n"))
        split = p;
    if (!split) {
        snprintf (why, why_size, "the note has no empty line before its signatures");
        return -1;
    }
    *body_len = (size_t) (split - note) + 1;
    *sigs = split + 2;
    if (!**sigs) {
        snprintf (why, why_size, "the note has no signature line");
        return -1;
    }
    return 0;
}

//  Parse one signature line at *P ("— name base64\n"): name, id, signature; advance *P.
static int
s_sig_line (const char **p, char *name, size_t name_size, uint32_t *id,
            uint8_t sig[crypto_sign_BYTES], char *why, size_t why_size)
{
    const char *line = *p;
    const char *nl = strchr (line, '\n');
    if (!nl || strncmp (line, S_DASH " ", 4) != 0) {
        snprintf (why, why_size, "a signature line does not start with \"\u2014 \"");
        return -1;
    }
    const char *name_start = line + 4;
    const char *space = memchr (name_start, ' ', (size_t) (nl - name_start));
    if (!space || space == name_start || (size_t) (space - name_start) >= name_size) {
        snprintf (why, why_size, "a signature line has no key name");
        return -1;
    }
    memcpy (name, name_start, (size_t) (space - name_start));
    name[space - name_start] = 0;
    char b64[200];
    size_t b64_len = (size_t) (nl - space - 1);
    if (b64_len >= sizeof b64) {
        snprintf (why, why_size, "a signature line's signature is too long");
        return -1;
    }
    memcpy (b64, space + 1, b64_len);
    b64[b64_len] = 0;
    uint8_t raw[4 + crypto_sign_BYTES];
    *p = nl + 1;
    if (mesh_unb64 (b64, raw, sizeof raw) != 0) {
        //  Another algorithm's signature has another length: not ours, not an error.
        *id = 0;
        memset (sig, 0, crypto_sign_BYTES);
        return 1;
    }
    *id = (uint32_t) raw[0] << 24 | (uint32_t) raw[1] << 16 | (uint32_t) raw[2] << 8 | raw[3];
    memcpy (sig, raw + 4, crypto_sign_BYTES);
    return 0;
}

int
mesh_note_verify (const char *note, const mesh_note_verifier_t *v, char **body_p, char *why,
                  size_t why_size)
{
    if (body_p)
        *body_p = NULL;
    size_t body_len;
    const char *p;
    if (s_split_note (note, &body_len, &p, why, why_size) != 0)
        return -1;
    int lines = 0;
    bool named = false;
    while (*p) {
        if (++lines > MESH_NOTE_MAX_SIGS) {
            snprintf (why, why_size, "the note has more than %d signatures", MESH_NOTE_MAX_SIGS);
            return -1;
        }
        char name[MESH_NOTE_NAME_MAX + 1];
        uint32_t id;
        uint8_t sig[crypto_sign_BYTES];
        int rc = s_sig_line (&p, name, sizeof name, &id, sig, why, why_size);
        if (rc < 0)
            return -1;
        if (rc > 0 || strcmp (name, v->name) != 0 || id != v->id)
            continue;
        named = true;
        if (crypto_sign_verify_detached (sig, (const unsigned char *) note, body_len, v->pk)
            == 0) {
            if (body_p)
                *body_p = strndup (note, body_len);
            return 0;
        }
    }
    if (named)
        snprintf (why, why_size, "the signature by %s+%08" PRIx32 " does not verify: the note "
                  "was changed or forged", v->name, v->id);
    else
        snprintf (why, why_size, "the note carries no signature by the key %s+%08" PRIx32,
                  v->name, v->id);
    return -1;
}

int
mesh_note_first_signer (const char *note, char *name, size_t name_size, uint32_t *id)
{
    size_t body_len;
    const char *p;
    char why[128];
    uint8_t sig[crypto_sign_BYTES];
    if (s_split_note (note, &body_len, &p, why, sizeof why) != 0)
        return -1;
    return s_sig_line (&p, name, name_size, id, sig, why, sizeof why) == 0 ? 0 : -1;
}

char *
mesh_checkpoint_body (const char *origin, uint64_t size, const mesh_merkle_hash_t root)
{
    char b64[sodium_base64_ENCODED_LEN (MESH_MERKLE_HASH, sodium_base64_VARIANT_ORIGINAL)];
    mesh_b64 (root, MESH_MERKLE_HASH, b64, sizeof b64);
    char *body = NULL;
    if (asprintf (&body, "%s\n%" PRIu64 "\n%s\n", origin, size, b64) < 0)
        return NULL;
    return body;
}

int
mesh_checkpoint_parse (const char *body, char *origin, size_t origin_size, uint64_t *size,
                       mesh_merkle_hash_t root, char *why, size_t why_size)
{
    const char *l1 = strchr (body, '\n');
    const char *l2 = l1 ? strchr (l1 + 1, '\n') : NULL;
    const char *l3 = l2 ? strchr (l2 + 1, '\n') : NULL;
    if (!l3) {
        snprintf (why, why_size, "a checkpoint has three lines: origin, size, root");
        return -1;
    }
    size_t origin_len = (size_t) (l1 - body);
    if (origin_len == 0 || origin_len >= origin_size) {
        snprintf (why, why_size, "the checkpoint's origin line is empty or too long");
        return -1;
    }
    memcpy (origin, body, origin_len);
    origin[origin_len] = 0;
    char num[24];
    size_t num_len = (size_t) (l2 - l1 - 1);
    if (num_len == 0 || num_len >= sizeof num) {
        snprintf (why, why_size, "the checkpoint's size line is not a decimal number");
        return -1;
    }
    memcpy (num, l1 + 1, num_len);
    num[num_len] = 0;
    char *end;
    errno = 0;
    unsigned long long parsed = strtoull (num, &end, 10);
    if (*end || errno || strspn (num, "0123456789") != num_len
        || (num_len > 1 && num[0] == '0')) {
        snprintf (why, why_size, "the checkpoint's size line is not a decimal number");
        return -1;
    }
    *size = parsed;
    char b64[64];
    size_t b64_len = (size_t) (l3 - l2 - 1);
    if (b64_len >= sizeof b64) {
        snprintf (why, why_size, "the checkpoint's root line is not base64 of 32 bytes");
        return -1;
    }
    memcpy (b64, l2 + 1, b64_len);
    b64[b64_len] = 0;
    if (mesh_unb64 (b64, root, MESH_MERKLE_HASH) != 0) {
        snprintf (why, why_size, "the checkpoint's root line is not base64 of 32 bytes");
        return -1;
    }
    return 0;
}

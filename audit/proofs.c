/*  proofs - `meshctl audit keygen | pubkey | prove | verify-proof | consistency`, and the
 *  tree part of `audit verify`.
 *
 *  Proof files are JSON (docs/audit.md has them field by field):
 *    inclusion    {"type":"meshd-inclusion-proof","version":1,"origin","id","seq",
 *                  "leaf_index","tree_size","leaf","audit_path":[b64...],"checkpoint"}
 *    consistency  {"type":"meshd-consistency-proof","version":1,"origin","old_size",
 *                  "new_size","proof":[b64...],"old_checkpoint","new_checkpoint"}
 *  A verifier needs the file and the log's public key, nothing else.
 */
#include "audit.h"
#include "audit_cli.h"
#include "log.h"
#include "merkle.h"
#include "note.h"
#include "segments.h"
#include "tlog.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_PROOF_MAX_BYTES (16 * 1024 * 1024)
#define S_B64_HASH sodium_base64_ENCODED_LEN (MESH_MERKLE_HASH, sodium_base64_VARIANT_ORIGINAL)

enum { S_OK = 0, S_NO = 1, S_READ = 2, S_USAGE = 64, S_CONFIG = 78 };

//  ---------------------------------------------------------------------------------------
//  Keys

static const char *
s_key_path (const mesh_audit_cli_t *o)
{
    if (o->key)
        return o->key;
    return o->cfg ? o->cfg->signing_key : NULL;
}

int
mesh_audit_keygen_cli (const mesh_audit_cli_t *o, FILE *out)
{
    const char *path = s_key_path (o);
    char host[300] = "";
    if (!o->cfg && o->argc == 0 && gethostname (host, 255) == 0)
        strcat (host, "/meshd");
    const char *name = o->argc > 0 ? o->argv[0] : o->cfg ? o->cfg->origin : host;
    if (!path || !*name) {
        mesh_err ("audit keygen: say where (--key FILE) and the key's name (audit keygen "
                  "NAME), or give a config");
        return S_USAGE;
    }
    mesh_note_signer_t signer;
    char why[300];
    if (mesh_note_signer_create (path, name, &signer, why, sizeof why) < 0) {
        mesh_err ("audit keygen: %s %s", path, why);
        return S_READ;
    }
    char *v = mesh_note_verifier_text (&signer.v);
    mesh_note_signer_wipe (&signer);
    if (o->json) {
        json_t *res = json_pack ("{ss ss}", "key_file", path, "pubkey", v);
        json_dumpf (res, out, JSON_COMPACT);
        fputc ('\n', out);
        json_decref (res);
    }
    else
        fprintf (out, "%s\n", v);
    fprintf (stderr, "meshctl: wrote the signing key %s (mode 0600; keep it secret); the line "
             "above is its public key, for auditors\n", path);
    free (v);
    return S_OK;
}

//  Feed every record of LOG to TLOG.  0, 1 (the chain or a checkpoint does not hold:
//  logged), or 2 (cannot read).
typedef struct {
    mesh_tlog_t *tlog;
    int64_t bad_seq;
    const char *want_id;            //  prove: the id (or prefix) to find
    size_t want_len;
    int64_t found_seq;              //  its record's seq (-1: ambiguous)
    char found_id[72];
    int64_t first_seq;              //  the first record kept (1 unless retention removed some)
} s_load_t;

static int
s_load_fn (json_t *record, const char *hash, const char *line, size_t len, void *arg)
{
    s_load_t *load = (s_load_t *) arg;
    int64_t seq = json_integer_value (json_object_get (record, "seq"));
    if (mesh_tlog_feed (load->tlog, record, line, len) != 0) {
        load->bad_seq = seq;
        return -1;
    }
    const char *type = json_string_value (json_object_get (record, "type"));
    const char *id = json_string_value (json_object_get (record, "id"));
    if (load->want_id && type && !strcmp (type, "decision") && id
        && !strncmp (id, load->want_id, load->want_len)) {
        if (load->found_seq && strcmp (load->found_id, id) != 0)
            load->found_seq = -1;
        else
        if (load->found_seq == 0) {
            load->found_seq = seq;
            snprintf (load->found_id, sizeof load->found_id, "%s", id);
        }
    }
    return 0;
}

static int
s_load (const char *log, s_load_t *load)
{
    FILE *file = mesh_segments_open (log);
    if (!file) {
        mesh_err ("audit: cannot open %s: %s", log, strerror (errno));
        return S_READ;
    }
    //  After retention the log starts at a later record, the tree from its compact range.
    mesh_segments_start_t start;
    char why[512];
    if (mesh_segments_start (log, &start, why, sizeof why) < 0) {
        mesh_err ("audit: %s", why);
        fclose (file);
        return S_READ;
    }
    if (load->tlog->range.size == 0 && start.first_seq > 1) {
        load->tlog->range = start.range;
        load->tlog->base = start.range;
    }
    load->first_seq = start.first_seq;
    mesh_audit_scan_t scan;
    int rc = mesh_audit_scan_from (file, NULL, start.first_seq, start.prev_hash, &scan,
                                   s_load_fn, load);
    mesh_segments_start_free (&start);
    fclose (file);
    if (load->bad_seq) {
        mesh_err ("audit: %s: record seq %" PRId64 ": %s", log, load->bad_seq, load->tlog->why);
        return S_NO;
    }
    if (rc != 0)
        return S_READ;
    if (scan.bad_line && !(scan.bad_torn && scan.bad_is_last)) {
        mesh_err ("audit: %s: record seq %" PRId64 " (line %" PRId64 "): %s (meshctl audit "
                  "verify says more)", log, scan.bad_seq, scan.bad_line, scan.why);
        return S_NO;
    }
    return S_OK;
}

//  The latest checkpoint of LOG: the last checkpoint record, or <log>.checkpoint when it
//  is newer (meshd writes the file, then the record) and matches the tree.  *NOTE_P (caller
//  frees) and *SIZE_P, or NULL.
static char *
s_latest_checkpoint (const char *log, mesh_tlog_t *tlog, uint64_t *size_p)
{
    char *path = NULL;
    char *note = NULL;
    if (asprintf (&path, "%s.checkpoint", log) < 0)
        return NULL;
    FILE *file = fopen (path, "r");
    if (file) {
        char buf[MESH_NOTE_MAX_BYTES + 1];
        size_t n = fread (buf, 1, MESH_NOTE_MAX_BYTES, file);
        buf[n] = 0;
        fclose (file);
        char origin[256], why[300];
        mesh_merkle_hash_t root;
        uint64_t size;
        char *body = NULL;
        //  Its size first, from the body, then the signature and root against the tree.
        const char *split = strstr (buf, "\n\n");
        if (split)
            body = strndup (buf, (size_t) (split - buf) + 1);
        if (body && mesh_checkpoint_parse (body, origin, sizeof origin, &size, root, why,
                                           sizeof why) == 0
            && size > tlog->last_cp_size && size == tlog->range.size && tlog->last_cp_key) {
            mesh_merkle_hash_t tree;
            mesh_merkle_range_root (&tlog->range, tree);
            if (mesh_tlog_check_note (buf, tlog->last_cp_key, tlog->trusted, size, tree,
                                      origin, sizeof origin, why, sizeof why) == 0) {
                note = strdup (buf);
                *size_p = size;
            }
        }
        free (body);
    }
    free (path);
    if (!note && tlog->last_cp_note) {
        note = strdup (tlog->last_cp_note);
        *size_p = tlog->last_cp_size;
    }
    return note;
}

int
mesh_audit_pubkey_cli (const mesh_audit_cli_t *o, FILE *out)
{
    const char *path = s_key_path (o);
    mesh_note_signer_t signer;
    char why[300] = "is not given (--key FILE or a config)";
    int rc = path ? mesh_note_signer_load (path, false, &signer, why, sizeof why) : -1;
    if (rc > 0) {
        char *v = mesh_note_verifier_text (&signer.v);
        mesh_note_signer_wipe (&signer);
        fprintf (out, "%s\n", v);
        free (v);
        return S_OK;
    }
    if (rc == 0)
        snprintf (why, sizeof why, "does not exist");
    //  Without the key file (another user's, 0600): the key the log's checkpoints name.
    mesh_tlog_t tlog;
    mesh_tlog_init (&tlog, NULL, false);
    s_load_t load = {.tlog = &tlog};
    if (o->log && access (o->log, R_OK) == 0 && s_load (o->log, &load) == S_OK
        && tlog.last_cp_key) {
        fprintf (out, "%s\n", tlog.last_cp_key);
        fprintf (stderr, "meshctl: the signing key %s %s; this is the key the log's last "
                 "checkpoint names: compare it with one you hold from elsewhere\n",
                 path ? path : "", why);
        mesh_tlog_free (&tlog);
        return S_OK;
    }
    mesh_tlog_free (&tlog);
    mesh_err ("audit pubkey: the signing key %s %s, and the log has no checkpoint",
              path ? path : "", why);
    return S_READ;
}

//  --pubkey when given (parsed into *V), else NULL.  -1: given but unusable (logged).
static int
s_trusted (const mesh_audit_cli_t *o, mesh_note_verifier_t *v, const mesh_note_verifier_t **p)
{
    *p = NULL;
    if (!o->pubkey)
        return 0;
    char why[300];
    if (mesh_note_verifier_load (o->pubkey, v, why, sizeof why) != 0) {
        mesh_err ("audit: --pubkey %s", why);
        return -1;
    }
    *p = v;
    return 0;
}

static json_t *
s_hashes_json (const mesh_merkle_hash_t *hashes, int n)
{
    json_t *array = json_array ();
    for (int i = 0; i < n; i++) {
        char b64[S_B64_HASH];
        mesh_b64 (hashes[i], MESH_MERKLE_HASH, b64, sizeof b64);
        json_array_append_new (array, json_string (b64));
    }
    return array;
}

static void
s_print_json (json_t *value, FILE *out)
{
    json_dumpf (value, out, JSON_INDENT (2) | JSON_PRESERVE_ORDER);
    fputc ('\n', out);
}

int
mesh_audit_prove_cli (const mesh_audit_cli_t *o, FILE *out)
{
    if (o->argc != 1 || strlen (o->argv[0]) < 8) {
        mesh_err ("audit prove: give one decision id (or a unique prefix of 8 or more)");
        return S_USAGE;
    }
    mesh_note_verifier_t v;
    const mesh_note_verifier_t *trusted;
    if (s_trusted (o, &v, &trusted) != 0)
        return S_USAGE;
    mesh_tlog_t tlog;
    mesh_tlog_init (&tlog, trusted, true);
    s_load_t load = {.tlog = &tlog, .want_id = o->argv[0], .want_len = strlen (o->argv[0])};
    int rc = s_load (o->log, &load);
    if (rc == S_OK && load.found_seq == 0 && load.first_seq > 1) {
        mesh_err ("audit prove: %s is no decision in %s from seq %" PRId64 " on; records 1-%"
                  PRId64 " were removed by retention (%s.retained lists the segments) and "
                  "cannot be proven from this log any more", o->argv[0], o->log,
                  load.first_seq, load.first_seq - 1, o->log);
        rc = S_NO;
    }
    else
    if (rc == S_OK && load.found_seq <= 0) {
        mesh_err ("audit prove: %s %s in %s", o->argv[0],
                  load.found_seq < 0 ? "names more than one decision" : "is no decision",
                  o->log);
        rc = S_NO;
    }
    uint64_t size = 0;
    char *note = rc == S_OK ? s_latest_checkpoint (o->log, &tlog, &size) : NULL;
    if (rc == S_OK && !note) {
        mesh_err ("audit prove: %s has no signed checkpoint yet: `meshctl audit checkpoint` "
                  "asks meshd for one", o->log);
        rc = S_NO;
    }
    uint64_t index = (uint64_t) load.found_seq - 1;
    if (rc == S_OK && index >= size) {
        mesh_err ("audit prove: the decision is record seq %" PRId64 ", after the latest "
                  "checkpoint (records 1-%" PRIu64 "): `meshctl audit checkpoint` asks meshd "
                  "for a new one (it signs one every audit.checkpoint_interval_s)",
                  load.found_seq, size);
        rc = S_NO;
    }
    if (rc != S_OK) {
        free (note);
        mesh_tlog_free (&tlog);
        return rc;
    }
    mesh_merkle_hash_t path[MESH_MERKLE_MAX_PATH];
    int len = mesh_merkle_inclusion_path_from (&tlog.base, tlog.leaves, size, index, path);
    //  The leaf: the record's line, read again from the file (by its seq).
    FILE *file = mesh_segments_open (o->log);
    char *line = NULL;
    size_t cap = 0;
    ssize_t got = -1;
    for (int64_t seq = load.first_seq; file && seq <= load.found_seq; seq++)
        got = getline (&line, &cap, file);
    if (file)
        fclose (file);
    if (got <= 0 || len < 0) {
        mesh_err ("audit prove: cannot read record seq %" PRId64 " again", load.found_seq);
        free (line);
        free (note);
        mesh_tlog_free (&tlog);
        return S_READ;
    }
    if (line[got - 1] == '\n')
        line[--got] = 0;
    mesh_merkle_hash_t leaf;
    mesh_merkle_leaf_hash (line, (size_t) got, leaf);
    if (sodium_memcmp (leaf, tlog.leaves[index - tlog.base.size], MESH_MERKLE_HASH) != 0) {
        mesh_err ("audit prove: %s changed while it was read; try again", o->log);
        free (line);
        free (note);
        mesh_tlog_free (&tlog);
        return S_READ;
    }
    char origin[256] = "";
    const char *nl = strchr (note, '\n');
    snprintf (origin, sizeof origin, "%.*s", nl ? (int) (nl - note) : 0, note);
    json_t *proof = json_pack ("{ss si ss ss sI sI sI ss+ so ss}", "type",
                               "meshd-inclusion-proof", "version", 1, "origin", origin, "id",
                               load.found_id, "seq", (json_int_t) load.found_seq, "leaf_index",
                               (json_int_t) index, "tree_size", (json_int_t) size, "leaf", "",
                               line, "audit_path", s_hashes_json (path, len), "checkpoint",
                               note);
    if (!proof)                         //  a line that is not UTF-8 cannot be in JSON
        mesh_err ("audit prove: record seq %" PRId64 " cannot be put in a JSON proof",
                  load.found_seq);
    else
        s_print_json (proof, out);
    json_decref (proof);
    free (line);
    free (note);
    mesh_tlog_free (&tlog);
    return proof ? S_OK : S_READ;
}

//  Read the hashes of a JSON array of base64 strings into OUT.  Count, or -1.
static int
s_hashes (json_t *array, mesh_merkle_hash_t *out)
{
    if (!json_is_array (array) || json_array_size (array) > MESH_MERKLE_MAX_PATH)
        return -1;
    size_t i;
    json_t *item;
    json_array_foreach (array, i, item)
        if (!json_is_string (item) || mesh_unb64 (json_string_value (item), out[i],
                                                  MESH_MERKLE_HASH) != 0)
            return -1;
    return (int) json_array_size (array);
}

//  Check a signed checkpoint NOTE with V: its origin, size, root.  0 or -1 (WHY).
static int
s_open_checkpoint (const char *note, const mesh_note_verifier_t *v, char *origin,
                   size_t origin_size, uint64_t *size, mesh_merkle_hash_t root, char *why,
                   size_t why_size)
{
    char *body = NULL;
    char what[300];
    if (!note || mesh_note_verify (note, v, &body, what, sizeof what) != 0) {
        snprintf (why, why_size, "the checkpoint: %s", note ? what : "missing");
        return -1;
    }
    int rc = mesh_checkpoint_parse (body, origin, origin_size, size, root, what, sizeof what);
    free (body);
    if (rc != 0)
        snprintf (why, why_size, "%s", what);
    return rc;
}

static int
s_verdict (const mesh_audit_cli_t *o, FILE *out, bool ok, const char *what)
{
    if (o->json) {
        json_t *res = ok ? json_pack ("{sb ss}", "ok", 1, "detail", what)
                         : json_pack ("{sb ss}", "ok", 0, "error", what);
        json_dumpf (res, out, JSON_COMPACT);
        fputc ('\n', out);
        json_decref (res);
    }
    else
        fprintf (out, "%s: %s\n", ok ? "ok" : "FAIL", what);
    return ok ? S_OK : S_NO;
}

static int
s_verify_inclusion (const mesh_audit_cli_t *o, FILE *out, json_t *proof,
                    const mesh_note_verifier_t *v)
{
    char origin[256], why[600], what[900];
    uint64_t size;
    mesh_merkle_hash_t root, path[MESH_MERKLE_MAX_PATH], leaf;
    const char *note = json_string_value (json_object_get (proof, "checkpoint"));
    const char *line = json_string_value (json_object_get (proof, "leaf"));
    json_t *index_j = json_object_get (proof, "leaf_index");
    json_t *size_j = json_object_get (proof, "tree_size");
    int len = s_hashes (json_object_get (proof, "audit_path"), path);
    if (s_open_checkpoint (note, v, origin, sizeof origin, &size, root, why, sizeof why) != 0)
        return s_verdict (o, out, false, why);
    if (!line || !json_is_integer (index_j) || !json_is_integer (size_j) || len < 0)
        return s_verdict (o, out, false, "the proof lacks leaf, leaf_index, tree_size or a "
                                         "valid audit_path");
    int64_t index = json_integer_value (index_j);
    if (json_integer_value (size_j) < 0 || (uint64_t) json_integer_value (size_j) != size) {
        snprintf (what, sizeof what, "the proof says tree_size %" PRId64 ", its checkpoint "
                  "signs size %" PRIu64, (int64_t) json_integer_value (size_j), size);
        return s_verdict (o, out, false, what);
    }
    mesh_merkle_leaf_hash (line, strlen (line), leaf);
    if (index < 0 || !mesh_merkle_verify_inclusion ((uint64_t) index, size, leaf, path,
                                                    (size_t) len, root))
        return s_verdict (o, out, false, "the audit path does not lead from the leaf to the "
                                         "signed root: the record or the proof was changed");
    //  The leaf is the record: its seq is its position, its id the one claimed.
    json_t *record = json_loads (line, 0, NULL);
    int64_t seq = json_integer_value (json_object_get (record, "seq"));
    const char *id = json_string_value (json_object_get (record, "id"));
    const char *claimed = json_string_value (json_object_get (proof, "id"));
    bool same = record && seq == index + 1 && (!claimed || (id && !strcmp (id, claimed)));
    snprintf (what, sizeof what, same ? "record seq %" PRId64 " (%s %.64s) is leaf %" PRId64
                                        " of the %" PRIu64 " records of %s, signed by %s+%08"
                                        PRIx32
                                      : "the leaf verifies but is not the record the proof "
                                        "names (seq %" PRId64 ", %s %.64s, leaf %" PRId64 ", of %"
                                        PRIu64 " in %s, key %s+%08" PRIx32 ")",
              seq, json_string_value (json_object_get (record, "type")) ?: "record",
              id ? id : "", index, size, origin, v->name, v->id);
    json_decref (record);
    return s_verdict (o, out, same, what);
}

static int
s_verify_consistency (const mesh_audit_cli_t *o, FILE *out, json_t *proof,
                      const mesh_note_verifier_t *v)
{
    char origin1[256], origin2[256], why[600], what[700];
    uint64_t size1, size2;
    mesh_merkle_hash_t root1, root2, path[MESH_MERKLE_MAX_PATH];
    const char *old_note = json_string_value (json_object_get (proof, "old_checkpoint"));
    const char *new_note = json_string_value (json_object_get (proof, "new_checkpoint"));
    if (s_open_checkpoint (old_note, v, origin1, sizeof origin1, &size1, root1, why,
                           sizeof why) != 0
        || s_open_checkpoint (new_note, v, origin2, sizeof origin2, &size2, root2, why,
                              sizeof why) != 0)
        return s_verdict (o, out, false, why);
    int len = s_hashes (json_object_get (proof, "proof"), path);
    if (len < 0)
        return s_verdict (o, out, false, "the proof has no valid \"proof\" array");
    if (strcmp (origin1, origin2) != 0)
        return s_verdict (o, out, false, "the two checkpoints are of different logs");
    if (!mesh_merkle_verify_consistency (size1, size2, root1, root2, path, (size_t) len)) {
        snprintf (what, sizeof what, "the checkpoint of %" PRIu64 " records is not a prefix "
                  "of the one of %" PRIu64 ": the log was rewritten between them", size1, size2);
        return s_verdict (o, out, false, what);
    }
    snprintf (what, sizeof what, "the log %s of %" PRIu64 " records extends its first %" PRIu64
              " unchanged (both checkpoints signed by %s+%08" PRIx32 ")", origin1, size2, size1,
              v->name, v->id);
    return s_verdict (o, out, true, what);
}

int
mesh_audit_verify_proof_cli (const mesh_audit_cli_t *o, FILE *out)
{
    if (o->argc != 1 || !o->pubkey) {
        mesh_err ("audit verify-proof: give the proof file and --pubkey KEY (the log's public "
                  "key, its text or a file holding it)");
        return S_USAGE;
    }
    mesh_note_verifier_t v;
    const mesh_note_verifier_t *trusted;
    if (s_trusted (o, &v, &trusted) != 0)
        return S_USAGE;
    struct stat st;
    if (stat (o->argv[0], &st) != 0 || st.st_size > S_PROOF_MAX_BYTES) {
        mesh_err ("audit verify-proof: %s %s", o->argv[0],
                  errno ? strerror (errno) : "is larger than 16 MiB");
        return S_READ;
    }
    json_error_t err;
    json_t *proof = json_load_file (o->argv[0], 0, &err);
    if (!proof) {
        mesh_err ("audit verify-proof: %s: not JSON: %s (line %d)", o->argv[0], err.text,
                  err.line);
        return S_READ;
    }
    const char *type = json_string_value (json_object_get (proof, "type"));
    int rc;
    if (type && !strcmp (type, "meshd-inclusion-proof"))
        rc = s_verify_inclusion (o, out, proof, trusted);
    else
    if (type && !strcmp (type, "meshd-consistency-proof"))
        rc = s_verify_consistency (o, out, proof, trusted);
    else
        rc = s_verdict (o, out, false, "not a meshd proof (type meshd-inclusion-proof or "
                                       "meshd-consistency-proof)");
    json_decref (proof);
    return rc;
}

//  A checkpoint named on the command line: a file holding a signed note.
static char *
s_read_note (const char *path)
{
    FILE *file = fopen (path, "r");
    if (!file) {
        mesh_err ("audit consistency: cannot open %s: %s", path, strerror (errno));
        return NULL;
    }
    char *buf = calloc (1, MESH_NOTE_MAX_BYTES + 2);
    size_t n = buf ? fread (buf, 1, MESH_NOTE_MAX_BYTES + 1, file) : 0;
    fclose (file);
    if (n == 0 || n > MESH_NOTE_MAX_BYTES) {
        mesh_err ("audit consistency: %s is empty or longer than %d bytes", path,
                  MESH_NOTE_MAX_BYTES);
        free (buf);
        return NULL;
    }
    return buf;
}

int
mesh_audit_consistency_cli (const mesh_audit_cli_t *o, FILE *out)
{
    if (o->argc < 1 || o->argc > 2) {
        mesh_err ("audit consistency: give OLD [NEW], checkpoint files (NEW: the latest)");
        return S_USAGE;
    }
    mesh_note_verifier_t v;
    const mesh_note_verifier_t *trusted;
    if (s_trusted (o, &v, &trusted) != 0)
        return S_USAGE;
    //  The log's leaves; its checkpoint records are checked for form only here (each by
    //  the key it names): OLD and NEW are what is checked against the key given.
    mesh_tlog_t tlog;
    mesh_tlog_init (&tlog, NULL, true);
    s_load_t load = {.tlog = &tlog};
    char *notes[2] = {s_read_note (o->argv[0]), NULL};
    int rc = notes[0] ? s_load (o->log, &load) : S_READ;
    uint64_t latest = 0;
    if (rc == S_OK)
        notes[1] = o->argc == 2 ? s_read_note (o->argv[1])
                                : s_latest_checkpoint (o->log, &tlog, &latest);
    if (rc == S_OK && !notes[1] && o->argc == 1) {
        //  No checkpoint in the log (removed?): OLD is checked against the log itself.
        fprintf (stderr, "meshctl: the log has no checkpoint of its own; checking %s against "
                 "its records\n", o->argv[0]);
        notes[1] = strdup (notes[0]);
    }
    if (rc == S_OK && !notes[1])
        rc = S_READ;
    //  Without --pubkey: the key the log's checkpoints name (said so).
    mesh_note_verifier_t own;
    const mesh_note_verifier_t *key = trusted;
    char why[600];
    if (rc == S_OK && !key) {
        if (!tlog.last_cp_key
            || mesh_note_verifier_parse (tlog.last_cp_key, &own, why, sizeof why) != 0) {
            mesh_err ("audit consistency: give --pubkey (the log names no key)");
            rc = S_USAGE;
        }
        else {
            key = &own;
            fprintf (stderr, "meshctl: checking signatures with the key the log names (%s); "
                     "--pubkey checks them against one you trust\n", tlog.last_cp_key);
        }
    }
    uint64_t sizes[2];
    mesh_merkle_hash_t roots[2];
    char origin[256];
    for (int i = 0; i < 2 && rc == S_OK; i++) {
        if (s_open_checkpoint (notes[i], key, origin, sizeof origin, &sizes[i], roots[i], why,
                               sizeof why) != 0) {
            fprintf (out, "FAIL: %s: %s\n", i == 0 ? o->argv[0] : "the new checkpoint", why);
            rc = S_NO;
        }
        else
        if (sizes[i] > tlog.range.size) {
            fprintf (out, "FAIL: the checkpoint of %" PRIu64 " records is ahead of the log "
                     "(%" PRIu64 " records): records were removed\n", sizes[i], tlog.range.size);
            rc = S_NO;
        }
        else
        if (sizes[i] < tlog.base.size) {
            fprintf (out, "FAIL: the checkpoint of %" PRIu64 " records is older than the first "
                     "record kept (seq %" PRIu64 "; the ones before it were removed by "
                     "retention): it cannot be checked against this log\n", sizes[i],
                     tlog.base.size + 1);
            rc = S_NO;
        }
        else {
            mesh_merkle_hash_t have;
            mesh_merkle_root_from (&tlog.base, tlog.leaves, sizes[i], have);
            if (sodium_memcmp (have, roots[i], MESH_MERKLE_HASH) != 0) {
                fprintf (out, "FAIL: the log's first %" PRIu64 " records are not the ones "
                         "checkpoint %s signed: the log was rewritten after it was signed\n",
                         sizes[i], i == 0 ? o->argv[0] : "NEW");
                rc = S_NO;
            }
        }
    }
    if (rc == S_OK && sizes[0] > sizes[1]) {
        mesh_err ("audit consistency: OLD (%" PRIu64 " records) is newer than NEW (%" PRIu64
                  ")", sizes[0], sizes[1]);
        rc = S_USAGE;
    }
    if (rc == S_OK) {
        mesh_merkle_hash_t path[MESH_MERKLE_MAX_PATH];
        int len = mesh_merkle_consistency_proof_from (&tlog.base, tlog.leaves, sizes[1],
                                                      sizes[0], path);
        assert (len >= 0);
        assert (mesh_merkle_verify_consistency (sizes[0], sizes[1], roots[0], roots[1], path,
                                                (size_t) len));
        json_t *proof = json_pack ("{ss si ss sI sI so ss ss}", "type",
                                   "meshd-consistency-proof", "version", 1, "origin", origin,
                                   "old_size", (json_int_t) sizes[0], "new_size",
                                   (json_int_t) sizes[1], "proof", s_hashes_json (path, len),
                                   "old_checkpoint", notes[0], "new_checkpoint", notes[1]);
        s_print_json (proof, out);
        json_decref (proof);
    }
    free (notes[0]);
    free (notes[1]);
    mesh_tlog_free (&tlog);
    return rc;
}

int
mesh_audit_verify_tree (const char *log, const char *pubkey, bool json, FILE *out)
{
    mesh_audit_cli_t o = {.log = log, .pubkey = pubkey, .json = json};
    mesh_note_verifier_t v;
    const mesh_note_verifier_t *trusted;
    if (s_trusted (&o, &v, &trusted) != 0)
        return S_USAGE;
    mesh_tlog_t tlog;
    mesh_tlog_init (&tlog, trusted, false);
    s_load_t load = {.tlog = &tlog};
    int rc = s_load (log, &load);
    char what[900];
    if (rc == S_NO && load.bad_seq)
        snprintf (what, sizeof what, "record seq %" PRId64 ": %s", load.bad_seq, tlog.why);
    else
    if (rc == S_NO)
        snprintf (what, sizeof what, "the chain does not hold (above)");
    if (rc == S_OK) {
        uint64_t size = 0;
        char *note = s_latest_checkpoint (log, &tlog, &size);
        mesh_merkle_hash_t root;
        mesh_merkle_range_root (&tlog.range, root);
        char b64[S_B64_HASH];
        mesh_b64 (root, MESH_MERKLE_HASH, b64, sizeof b64);
        //  The checkpoint file must be one of the log's checkpoints (or the one just after).
        char *cp_path = NULL;
        struct stat st;
        if (asprintf (&cp_path, "%s.checkpoint", log) > 0 && stat (cp_path, &st) == 0
            && tlog.last_cp_note) {
            FILE *file = fopen (cp_path, "r");
            char buf[MESH_NOTE_MAX_BYTES + 1] = "";
            size_t n = file ? fread (buf, 1, MESH_NOTE_MAX_BYTES, file) : 0;
            buf[n] = 0;
            if (file)
                fclose (file);
            if (strcmp (buf, tlog.last_cp_note) != 0 && (!note || strcmp (buf, note) != 0)) {
                snprintf (what, sizeof what, "%s is not the log's last checkpoint and does not "
                          "verify against the tree", cp_path);
                rc = S_NO;
            }
        }
        free (cp_path);
        if (rc == S_OK && json) {
            json_t *res = json_pack ("{sb sI ss sI sI so}", "ok", 1, "leaves",
                                     (json_int_t) tlog.range.size, "root", b64, "checkpoints",
                                     (json_int_t) tlog.checkpoints, "checkpoint_size",
                                     (json_int_t) size, "signed_by",
                                     trusted ? json_string ("the key given")
                                     : tlog.last_cp_key ? json_string (tlog.last_cp_key)
                                                        : json_null ());
            json_dumpf (res, out, JSON_COMPACT);
            fputc ('\n', out);
            json_decref (res);
        }
        else
        if (rc == S_OK) {
            fprintf (out, "tree: %" PRIu64 " leaves, root %s\n", tlog.range.size, b64);
            if (tlog.checkpoints == 0)
                fprintf (out, "checkpoints: none yet\n");
            else
                fprintf (out, "checkpoints: %" PRId64 " verified, the latest covers records 1-%"
                         PRIu64 "; signed by %s%s\n", tlog.checkpoints, size,
                         trusted ? o.pubkey : tlog.last_cp_key,
                         trusted ? " (the key given)"
                                 : tlog.keys > 1 ? " (and earlier keys named in the log; "
                                                   "--pubkey checks against one you trust)"
                                                 : " (the key the log names; --pubkey checks "
                                                   "against one you trust)");
        }
        free (note);
    }
    if (rc == S_NO)
        s_verdict (&o, out, false, what);
    mesh_tlog_free (&tlog);
    return rc;
}

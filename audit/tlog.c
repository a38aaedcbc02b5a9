/*  tlog - the decision log as a transparency log.  See tlog.h.
 */
#include "tlog.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
mesh_tlog_init (mesh_tlog_t *self, const mesh_note_verifier_t *trusted, bool keep_leaves)
{
    memset (self, 0, sizeof *self);
    mesh_merkle_range_init (&self->range);
    self->trusted = trusted;
    self->keep_leaves = keep_leaves;
}

void
mesh_tlog_init_from (mesh_tlog_t *self, const mesh_note_verifier_t *trusted, bool keep_leaves,
                     const mesh_merkle_range_t *prefix)
{
    mesh_tlog_init (self, trusted, keep_leaves);
    if (prefix) {
        self->range = *prefix;
        self->base = *prefix;
    }
}

void
mesh_tlog_free (mesh_tlog_t *self)
{
    free (self->last_cp_note);
    free (self->last_cp_key);
    free (self->leaves);
    memset (self, 0, sizeof *self);
}

int
mesh_tlog_check_note (const char *note, const char *key_text,
                      const mesh_note_verifier_t *trusted, uint64_t size,
                      const mesh_merkle_hash_t root, char *origin, size_t origin_size,
                      char *why, size_t why_size)
{
    mesh_note_verifier_t own;
    const mesh_note_verifier_t *v = trusted;
    char what[256];
    if (!v) {
        if (!key_text || mesh_note_verifier_parse (key_text, &own, what, sizeof what) != 0) {
            snprintf (why, why_size, "the checkpoint names no usable verifier key");
            return -1;
        }
        v = &own;
    }
    char *body = NULL;
    if (mesh_note_verify (note, v, &body, what, sizeof what) != 0) {
        snprintf (why, why_size, "checkpoint signature: %s", what);
        return -1;
    }
    uint64_t body_size;
    mesh_merkle_hash_t body_root;
    int rc = mesh_checkpoint_parse (body, origin, origin_size, &body_size, body_root, what,
                                    sizeof what);
    free (body);
    if (rc != 0) {
        snprintf (why, why_size, "checkpoint body: %s", what);
        return -1;
    }
    if (body_size != size) {
        snprintf (why, why_size, "the checkpoint is for size %" PRIu64 ", expected %" PRIu64,
                  body_size, size);
        return -1;
    }
    if (sodium_memcmp (body_root, root, MESH_MERKLE_HASH) != 0) {
        snprintf (why, why_size, "the checkpoint's signed root for size %" PRIu64 " is not the "
                  "root of the log's first %" PRIu64 " records: the log was rewritten after it "
                  "was signed", size, size);
        return -1;
    }
    return 0;
}

static int
s_checkpoint (mesh_tlog_t *self, json_t *record)
{
    int64_t seq = json_integer_value (json_object_get (record, "seq"));
    json_t *size_j = json_object_get (record, "size");
    const char *root_b64 = json_string_value (json_object_get (record, "root"));
    const char *note = json_string_value (json_object_get (record, "note"));
    const char *key = json_string_value (json_object_get (record, "key"));
    const char *origin = json_string_value (json_object_get (record, "origin"));
    if (!json_is_integer (size_j) || !root_b64 || !note || !key || !origin) {
        snprintf (self->why, sizeof self->why,
                  "checkpoint record without integer size and string origin, root, key, note");
        return -1;
    }
    uint64_t size = self->range.size;
    if (json_integer_value (size_j) != seq - 1 || (uint64_t) (seq - 1) != size) {
        snprintf (self->why, sizeof self->why,
                  "checkpoint record at seq %" PRId64 " names size %" PRId64 " (must be %" PRId64
                  ", every record before it)", seq, (int64_t) json_integer_value (size_j),
                  seq - 1);
        return -1;
    }
    mesh_merkle_hash_t root, named;
    mesh_merkle_range_root (&self->range, root);
    if (mesh_unb64 (root_b64, named, sizeof named) != 0
        || sodium_memcmp (root, named, MESH_MERKLE_HASH) != 0) {
        snprintf (self->why, sizeof self->why,
                  "checkpoint record at seq %" PRId64 " names a root that is not the tree's "
                  "(records before it were changed)", seq);
        return -1;
    }
    char body_origin[256], what[400];
    if (mesh_tlog_check_note (note, key, self->trusted, size, root, body_origin,
                              sizeof body_origin, what, sizeof what) != 0) {
        snprintf (self->why, sizeof self->why, "checkpoint record at seq %" PRId64 ": %s", seq,
                  what);
        return -1;
    }
    if (strcmp (body_origin, origin) != 0) {
        snprintf (self->why, sizeof self->why,
                  "checkpoint record at seq %" PRId64 ": origin \"%.64s\" differs from the "
                  "signed one", seq, origin);
        return -1;
    }
    if (!self->last_cp_key || strcmp (self->last_cp_key, key) != 0)
        self->keys++;
    free (self->last_cp_note);
    free (self->last_cp_key);
    self->last_cp_note = strdup (note);
    self->last_cp_key = strdup (key);
    self->last_cp_seq = seq;
    self->last_cp_size = size;
    self->checkpoints++;
    return 0;
}

int
mesh_tlog_feed (mesh_tlog_t *self, json_t *record, const char *line, size_t len)
{
    const char *type = json_string_value (json_object_get (record, "type"));
    if (type && strcmp (type, "checkpoint") == 0 && s_checkpoint (self, record) != 0)
        return -1;
    mesh_merkle_hash_t leaf;
    mesh_merkle_leaf_hash (line, len, leaf);
    if (self->keep_leaves) {
        uint64_t at = self->range.size - self->base.size;
        if (at == self->leaves_cap) {
            if (self->leaves_cap >= MESH_TLOG_MAX_LEAVES) {
                snprintf (self->why, sizeof self->why,
                          "more than %llu records: too many to hold for a proof",
                          (unsigned long long) MESH_TLOG_MAX_LEAVES);
                return -1;
            }
            uint64_t cap = self->leaves_cap ? self->leaves_cap * 2 : 1024;
            mesh_merkle_hash_t *grown = realloc (self->leaves, cap * sizeof *grown);
            if (!grown) {
                snprintf (self->why, sizeof self->why, "out of memory for %" PRIu64 " leaves",
                          cap);
                return -1;
            }
            self->leaves = grown;
            self->leaves_cap = cap;
        }
        memcpy (self->leaves[at], leaf, MESH_MERKLE_HASH);
    }
    mesh_merkle_range_append (&self->range, leaf);
    return 0;
}

/*  tlog - follow the decision log as a transparency log: every record a leaf of the RFC 9162
 *  tree, every "checkpoint" record checked against the tree it names.
 *
 *  A checkpoint record (written only by the ledger, docs/audit.md) is
 *      {"seq":S,...,"type":"checkpoint","origin":O,"size":N,"root":B64,"key":VKEY,
 *       "note":SIGNED_NOTE,...}
 *  with N = S - 1 (it covers every record before it), ROOT the base64 root of those N
 *  leaves, VKEY the verifier key text that signed it, and NOTE the signed checkpoint whose
 *  body is exactly (O, N, ROOT).  The follower checks all of that, and the signature:
 *  with a trusted key when it is given (then every checkpoint must be signed by it), else
 *  with the key the record names (which proves only that the log is self-consistent).
 *
 *  Used by the ledger when it opens a log, by `meshctl audit verify` and by the proof
 *  commands (which also keep every leaf hash: 32 bytes per record).
 */
#ifndef MESH_TLOG_H
#define MESH_TLOG_H

#include "merkle.h"
#include "note.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define MESH_TLOG_MAX_LEAVES (64ULL << 20)     //  kept leaf hashes: 2 GiB at most

typedef struct {
    mesh_merkle_range_t range;          //  the tree so far
    int64_t checkpoints;                //  checkpoint records seen and verified
    int64_t last_cp_seq;                //  the last one's seq (0: none)
    uint64_t last_cp_size;              //  and the size it covers
    char *last_cp_note;                 //  its signed note (owned)
    char *last_cp_key;                  //  the verifier key text it names (owned)
    int keys;                           //  distinct signing keys seen (1 normally)
    const mesh_note_verifier_t *trusted;   //  borrowed; NULL: each record's own key
    bool keep_leaves;
    mesh_merkle_hash_t *leaves;         //  with keep_leaves: every leaf hash from base.size on
    mesh_merkle_range_t base;           //  the leaves before the log's first kept record (their
                                        //  compact range: retention); size 0 normally
    uint64_t leaves_cap;
    char why[512];                      //  what failed (mesh_tlog_feed returned -1)
} mesh_tlog_t;

void mesh_tlog_init (mesh_tlog_t *self, const mesh_note_verifier_t *trusted, bool keep_leaves);
//  The same for a log whose first PREFIX->size records were removed by retention: the tree
//  starts from their compact range PREFIX (copied; NULL: the empty tree), and leaves[i] is
//  the hash of leaf PREFIX->size + i.
void mesh_tlog_init_from (mesh_tlog_t *self, const mesh_note_verifier_t *trusted,
                          bool keep_leaves, const mesh_merkle_range_t *prefix);
void mesh_tlog_free (mesh_tlog_t *self);
//  The record RECORD (parsed) whose line is LINE[0..LEN) (no newline).  0, or -1 with
//  self->why when it is a checkpoint record that does not hold, or the leaves do not fit.
int mesh_tlog_feed (mesh_tlog_t *self, json_t *record, const char *line, size_t len);
//  Check one checkpoint record against the tree of its SIZE leaves whose root is ROOT.
//  0 or -1 (WHY).  Also used for a checkpoint file (RECORD NULL, NOTE given).
int mesh_tlog_check_note (const char *note, const char *key_text,
                          const mesh_note_verifier_t *trusted, uint64_t size,
                          const mesh_merkle_hash_t root, char *origin, size_t origin_size,
                          char *why, size_t why_size);

#endif

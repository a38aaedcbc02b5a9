/*  merkle - the RFC 9162 (Certificate Transparency 2.0, section 2.1) Merkle tree over the
 *  decision log's records.
 *
 *  A leaf is one record: the exact bytes of its line without the newline.
 *      leaf hash  = SHA-256 (0x00 || line)
 *      node hash  = SHA-256 (0x01 || left || right)
 *      MTH({})    = SHA-256 ("")
 *  and a tree of n > 1 leaves splits at k, the largest power of two smaller than n.
 *
 *  Two ways to hold a tree:
 *  - mesh_merkle_range_t, the compact range of the writer: the roots of the perfect
 *    subtrees that make up the first n leaves (one per set bit of n, at most 64), enough
 *    to append and to compute the root, in 2 KiB whatever the size.
 *  - an array of leaf hashes (32 bytes per record), for proofs: inclusion paths and
 *    consistency proofs are built from it (O(n) hashing per proof).
 *  The verifiers are RFC 9162's algorithms 2.1.3.2 and 2.1.4.2, and need nothing but
 *  the hashes they are given.
 */
#ifndef MESH_MERKLE_H
#define MESH_MERKLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MESH_MERKLE_HASH 32
#define MESH_MERKLE_MAX_PATH 64         //  a path or proof for any 64-bit size fits

typedef uint8_t mesh_merkle_hash_t[MESH_MERKLE_HASH];

void mesh_merkle_leaf_hash (const void *data, size_t len, mesh_merkle_hash_t out);
void mesh_merkle_node_hash (const mesh_merkle_hash_t left, const mesh_merkle_hash_t right,
                            mesh_merkle_hash_t out);

typedef struct {
    uint64_t size;                      //  leaves appended
    int count;                          //  subtree roots held (popcount of size)
    mesh_merkle_hash_t nodes[64];       //  largest (leftmost) subtree first
} mesh_merkle_range_t;

void mesh_merkle_range_init (mesh_merkle_range_t *range);
//  Append the leaf whose hash is LEAF.
void mesh_merkle_range_append (mesh_merkle_range_t *range, const mesh_merkle_hash_t leaf);
//  The root of the tree of range->size leaves.
void mesh_merkle_range_root (const mesh_merkle_range_t *range, mesh_merkle_hash_t out);

//  MTH of LEAVES[0..n) (leaf hashes).
void mesh_merkle_root (const mesh_merkle_hash_t *leaves, uint64_t n, mesh_merkle_hash_t out);
//  The inclusion path of leaf INDEX in the tree of the first N leaves (RFC 9162 2.1.3.1),
//  into PATH (MESH_MERKLE_MAX_PATH entries).  Returns its length, or -1 if INDEX >= N.
int mesh_merkle_inclusion_path (const mesh_merkle_hash_t *leaves, uint64_t n, uint64_t index,
                                mesh_merkle_hash_t *path);
//  The consistency proof of the tree of the first OLD leaves with that of the first N
//  (RFC 9162 2.1.4.1), into PROOF.  Returns its length (0 when OLD == N), or -1 unless
//  0 < OLD <= N.
int mesh_merkle_consistency_proof (const mesh_merkle_hash_t *leaves, uint64_t n, uint64_t old,
                                   mesh_merkle_hash_t *proof);

//  The same for a tree whose first PREFIX->size leaves are gone (retention): PREFIX, their
//  compact range, stands for them; LEAVES holds leaves [prefix->size, N).  The root of the
//  first N leaves (N >= prefix->size): 0, or -1.  An inclusion path of a leaf INDEX >=
//  prefix->size, a consistency proof from OLD >= prefix->size: as above, identical to what
//  the full tree gives, or -1 (also when a hash they need lies in the removed prefix
//  without being one of the range's nodes, which RFC 9162's paths never ask for).
int mesh_merkle_root_from (const mesh_merkle_range_t *prefix, const mesh_merkle_hash_t *leaves,
                           uint64_t n, mesh_merkle_hash_t out);
int mesh_merkle_inclusion_path_from (const mesh_merkle_range_t *prefix,
                                     const mesh_merkle_hash_t *leaves, uint64_t n,
                                     uint64_t index, mesh_merkle_hash_t *path);
int mesh_merkle_consistency_proof_from (const mesh_merkle_range_t *prefix,
                                        const mesh_merkle_hash_t *leaves, uint64_t n,
                                        uint64_t old, mesh_merkle_hash_t *proof);

//  RFC 9162 2.1.3.2: does PATH prove that LEAF is leaf INDEX of the tree of SIZE leaves
//  whose root is ROOT?
bool mesh_merkle_verify_inclusion (uint64_t index, uint64_t size, const mesh_merkle_hash_t leaf,
                                   const mesh_merkle_hash_t *path, size_t path_len,
                                   const mesh_merkle_hash_t root);
//  RFC 9162 2.1.4.2: does PROOF show that the tree of SIZE2 leaves with root ROOT2 extends
//  the tree of SIZE1 leaves with root ROOT1?  Equal sizes: PROOF empty and the roots equal.
bool mesh_merkle_verify_consistency (uint64_t size1, uint64_t size2,
                                     const mesh_merkle_hash_t root1,
                                     const mesh_merkle_hash_t root2,
                                     const mesh_merkle_hash_t *proof, size_t proof_len);

#endif

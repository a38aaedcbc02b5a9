/*  merkle - RFC 9162 Merkle tree hashes, proofs and their verification.  See merkle.h.
 */
#include "merkle.h"

#include <assert.h>
#include <sodium.h>
#include <string.h>

void
mesh_merkle_leaf_hash (const void *data, size_t len, mesh_merkle_hash_t out)
{
    crypto_hash_sha256_state st;
    const uint8_t prefix = 0x00;
    crypto_hash_sha256_init (&st);
    crypto_hash_sha256_update (&st, &prefix, 1);
    crypto_hash_sha256_update (&st, (const unsigned char *) data, len);
    crypto_hash_sha256_final (&st, out);
}

void
mesh_merkle_node_hash (const mesh_merkle_hash_t left, const mesh_merkle_hash_t right,
                       mesh_merkle_hash_t out)
{
    uint8_t buf[1 + 2 * MESH_MERKLE_HASH];
    buf[0] = 0x01;
    memcpy (buf + 1, left, MESH_MERKLE_HASH);
    memcpy (buf + 1 + MESH_MERKLE_HASH, right, MESH_MERKLE_HASH);
    crypto_hash_sha256 (out, buf, sizeof buf);
}

void
mesh_merkle_range_init (mesh_merkle_range_t *range)
{
    memset (range, 0, sizeof *range);
}

void
mesh_merkle_range_append (mesh_merkle_range_t *range, const mesh_merkle_hash_t leaf)
{
    mesh_merkle_hash_t node;
    memcpy (node, leaf, MESH_MERKLE_HASH);
    //  Each trailing 1 bit of the old size is a perfect subtree the new leaf completes.
    for (uint64_t n = range->size; n & 1; n >>= 1) {
        assert (range->count > 0);
        mesh_merkle_node_hash (range->nodes[--range->count], node, node);
    }
    memcpy (range->nodes[range->count++], node, MESH_MERKLE_HASH);
    range->size++;
}

void
mesh_merkle_range_root (const mesh_merkle_range_t *range, mesh_merkle_hash_t out)
{
    if (range->count == 0) {
        crypto_hash_sha256 (out, (const unsigned char *) "", 0);
        return;
    }
    mesh_merkle_hash_t root;
    memcpy (root, range->nodes[range->count - 1], MESH_MERKLE_HASH);
    for (int i = range->count - 2; i >= 0; i--)
        mesh_merkle_node_hash (range->nodes[i], root, root);
    memcpy (out, root, MESH_MERKLE_HASH);
}

//  The largest power of two smaller than N (N > 1).
static uint64_t
s_split (uint64_t n)
{
    uint64_t k = 1;
    while (k << 1 < n)
        k <<= 1;
    return k;
}

void
mesh_merkle_root (const mesh_merkle_hash_t *leaves, uint64_t n, mesh_merkle_hash_t out)
{
    if (n == 0) {
        crypto_hash_sha256 (out, (const unsigned char *) "", 0);
        return;
    }
    if (n == 1) {
        memcpy (out, leaves[0], MESH_MERKLE_HASH);
        return;
    }
    uint64_t k = s_split (n);
    mesh_merkle_hash_t left, right;
    mesh_merkle_root (leaves, k, left);
    mesh_merkle_root (leaves + k, n - k, right);
    mesh_merkle_node_hash (left, right, out);
}

//  PATH(m, D[n]) of RFC 9162 2.1.3.1; the path is built leaf side first, as the
//  verifier consumes it, so the recursion appends after its inner call.
static int
s_path (const mesh_merkle_hash_t *leaves, uint64_t n, uint64_t m, mesh_merkle_hash_t *path)
{
    if (n <= 1)
        return 0;
    uint64_t k = s_split (n);
    int len;
    if (m < k) {
        len = s_path (leaves, k, m, path);
        mesh_merkle_root (leaves + k, n - k, path[len]);
    }
    else {
        len = s_path (leaves + k, n - k, m - k, path);
        mesh_merkle_root (leaves, k, path[len]);
    }
    return len + 1;
}

int
mesh_merkle_inclusion_path (const mesh_merkle_hash_t *leaves, uint64_t n, uint64_t index,
                            mesh_merkle_hash_t *path)
{
    if (index >= n)
        return -1;
    return s_path (leaves, n, index, path);
}

//  SUBPROOF(m, D[n], b) of RFC 9162 2.1.4.1.
static int
s_subproof (const mesh_merkle_hash_t *leaves, uint64_t n, uint64_t m, bool complete,
            mesh_merkle_hash_t *proof)
{
    if (m == n) {
        if (complete)
            return 0;
        mesh_merkle_root (leaves, n, proof[0]);
        return 1;
    }
    uint64_t k = s_split (n);
    int len;
    if (m <= k) {
        len = s_subproof (leaves, k, m, complete, proof);
        mesh_merkle_root (leaves + k, n - k, proof[len]);
    }
    else {
        len = s_subproof (leaves + k, n - k, m - k, false, proof);
        mesh_merkle_root (leaves, k, proof[len]);
    }
    return len + 1;
}

int
mesh_merkle_consistency_proof (const mesh_merkle_hash_t *leaves, uint64_t n, uint64_t old,
                               mesh_merkle_hash_t *proof)
{
    if (old == 0 || old > n)
        return -1;
    return s_subproof (leaves, n, old, true, proof);
}

bool
mesh_merkle_verify_inclusion (uint64_t index, uint64_t size, const mesh_merkle_hash_t leaf,
                              const mesh_merkle_hash_t *path, size_t path_len,
                              const mesh_merkle_hash_t root)
{
    if (index >= size || path_len > MESH_MERKLE_MAX_PATH)
        return false;
    uint64_t fn = index, sn = size - 1;
    mesh_merkle_hash_t r;
    memcpy (r, leaf, MESH_MERKLE_HASH);
    for (size_t i = 0; i < path_len; i++) {
        if (sn == 0)
            return false;
        if ((fn & 1) || fn == sn) {
            mesh_merkle_node_hash (path[i], r, r);
            while (!(fn & 1) && fn != 0) {
                fn >>= 1;
                sn >>= 1;
            }
        }
        else
            mesh_merkle_node_hash (r, path[i], r);
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && sodium_memcmp (r, root, MESH_MERKLE_HASH) == 0;
}

bool
mesh_merkle_verify_consistency (uint64_t size1, uint64_t size2,
                                const mesh_merkle_hash_t root1, const mesh_merkle_hash_t root2,
                                const mesh_merkle_hash_t *proof, size_t proof_len)
{
    if (size1 == 0 || size1 > size2 || proof_len > MESH_MERKLE_MAX_PATH)
        return false;
    if (size1 == size2)
        return proof_len == 0 && sodium_memcmp (root1, root2, MESH_MERKLE_HASH) == 0;
    if (proof_len == 0)
        return false;
    //  When size1 is a power of two the old root is itself a node of the new tree and
    //  the proof leaves it out: start from it.
    const uint8_t *first;
    size_t next;
    if ((size1 & (size1 - 1)) == 0) {
        first = root1;
        next = 0;
    }
    else {
        first = proof[0];
        next = 1;
    }
    uint64_t fn = size1 - 1, sn = size2 - 1;
    while (fn & 1) {
        fn >>= 1;
        sn >>= 1;
    }
    mesh_merkle_hash_t fr, sr;
    memcpy (fr, first, MESH_MERKLE_HASH);
    memcpy (sr, first, MESH_MERKLE_HASH);
    for (size_t i = next; i < proof_len; i++) {
        if (sn == 0)
            return false;
        if ((fn & 1) || fn == sn) {
            mesh_merkle_node_hash (proof[i], fr, fr);
            mesh_merkle_node_hash (proof[i], sr, sr);
            while (!(fn & 1) && fn != 0) {
                fn >>= 1;
                sn >>= 1;
            }
        }
        else
            mesh_merkle_node_hash (sr, proof[i], sr);
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && sodium_memcmp (fr, root1, MESH_MERKLE_HASH) == 0
           && sodium_memcmp (sr, root2, MESH_MERKLE_HASH) == 0;
}

//  ---------------------------------------------------------------------------------------
//  A tree whose first leaves are gone (retention): the compact range PREFIX stands for
//  leaves [0, prefix->size), LEAVES holds [prefix->size, n).  A subtree hash is computed
//  from the leaves when it lies wholly after the prefix, is taken from the range when it
//  is one of its nodes, and is split as MTH splits it when it straddles the boundary;
//  anything else lies inside the removed prefix without being a node, and cannot be
//  computed (-1).

typedef struct {
    const mesh_merkle_range_t *prefix;
    const mesh_merkle_hash_t *leaves;
} s_view_t;

//  MTH (D[lo:hi]) in the view, 0 or -1.
static int
s_view_hash (const s_view_t *view, uint64_t lo, uint64_t hi, mesh_merkle_hash_t out)
{
    uint64_t base = view->prefix->size;
    if (lo >= base) {
        mesh_merkle_root (view->leaves + (lo - base), hi - lo, out);
        return 0;
    }
    //  One of the range's nodes?  They cover [0, base) leftmost and largest first.
    uint64_t start = 0;
    int node = 0;
    for (int bit = 63; bit >= 0 && node < view->prefix->count; bit--) {
        uint64_t width = 1ULL << bit;
        if (!(base & width))
            continue;
        if (start == lo && start + width == hi) {
            memcpy (out, view->prefix->nodes[node], MESH_MERKLE_HASH);
            return 0;
        }
        start += width;
        node++;
    }
    if (hi - lo < 2)
        return -1;                  //  a removed leaf that is not a node by itself
    uint64_t k = s_split (hi - lo);
    mesh_merkle_hash_t left, right;
    if (s_view_hash (view, lo, lo + k, left) != 0 || s_view_hash (view, lo + k, hi, right) != 0)
        return -1;
    mesh_merkle_node_hash (left, right, out);
    return 0;
}

//  PATH (m, D[lo:hi]) in the view, leaf side first.  Its length, or -1.
static int
s_view_path (const s_view_t *view, uint64_t lo, uint64_t hi, uint64_t m,
             mesh_merkle_hash_t *path)
{
    if (hi - lo <= 1)
        return 0;
    uint64_t k = s_split (hi - lo);
    int len;
    if (m < lo + k) {
        len = s_view_path (view, lo, lo + k, m, path);
        if (len < 0 || s_view_hash (view, lo + k, hi, path[len]) != 0)
            return -1;
    }
    else {
        len = s_view_path (view, lo + k, hi, m, path);
        if (len < 0 || s_view_hash (view, lo, lo + k, path[len]) != 0)
            return -1;
    }
    return len + 1;
}

//  SUBPROOF (m, D[lo:hi], b) in the view, with m counted from lo.
static int
s_view_subproof (const s_view_t *view, uint64_t lo, uint64_t hi, uint64_t m, bool complete,
                 mesh_merkle_hash_t *proof)
{
    uint64_t n = hi - lo;
    if (m == n) {
        if (complete)
            return 0;
        return s_view_hash (view, lo, hi, proof[0]) == 0 ? 1 : -1;
    }
    uint64_t k = s_split (n);
    int len;
    if (m <= k) {
        len = s_view_subproof (view, lo, lo + k, m, complete, proof);
        if (len < 0 || s_view_hash (view, lo + k, hi, proof[len]) != 0)
            return -1;
    }
    else {
        len = s_view_subproof (view, lo + k, hi, m - k, false, proof);
        if (len < 0 || s_view_hash (view, lo, lo + k, proof[len]) != 0)
            return -1;
    }
    return len + 1;
}

int
mesh_merkle_root_from (const mesh_merkle_range_t *prefix, const mesh_merkle_hash_t *leaves,
                       uint64_t n, mesh_merkle_hash_t out)
{
    if (n < prefix->size)
        return -1;
    if (n == 0) {
        crypto_hash_sha256 (out, (const unsigned char *) "", 0);
        return 0;
    }
    s_view_t view = { prefix, leaves };
    return s_view_hash (&view, 0, n, out);
}

int
mesh_merkle_inclusion_path_from (const mesh_merkle_range_t *prefix,
                                 const mesh_merkle_hash_t *leaves, uint64_t n, uint64_t index,
                                 mesh_merkle_hash_t *path)
{
    if (index >= n || index < prefix->size)
        return -1;
    s_view_t view = { prefix, leaves };
    return s_view_path (&view, 0, n, index, path);
}

int
mesh_merkle_consistency_proof_from (const mesh_merkle_range_t *prefix,
                                    const mesh_merkle_hash_t *leaves, uint64_t n, uint64_t old,
                                    mesh_merkle_hash_t *proof)
{
    if (old == 0 || old > n || old < prefix->size || n < prefix->size)
        return -1;
    s_view_t view = { prefix, leaves };
    return s_view_subproof (&view, 0, n, old, true, proof);
}

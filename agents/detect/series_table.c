/*  series_table - bounded string-keyed table with least-recently-used eviction.
 *
 *  Two structures thread through the same nodes: a chained hash table (open
 *  hashing) finds a key in O(1), and a doubly linked list ordered by recency
 *  (head = most recent, tail = least recent) makes "touch" and "evict the oldest"
 *  O(1).  A node is one allocation: header, value block, then the key's bytes, so
 *  the memory per series is constant (the key is bounded by the event decoder).
 *
 *  Series keys come from input data, which a hostile or buggy producer controls.
 *  A fixed hash function would let it send keys that all collide into one chain
 *  and turn every lookup linear, so the hash is SipHash (libsodium's
 *  crypto_shorthash) with a random key per table.
 *
 *  The bucket array starts small and doubles when the load factor passes 1, so a
 *  table configured for a million series costs little until it has them.
 */
#include "series_table.h"
#include "log.h"

#include <assert.h>
#include <sodium.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

typedef struct _node_t node_t;
struct _node_t {
    node_t *hnext;                      //  next in the hash chain
    node_t *prev, *next;                //  recency list: prev is more recent
    uint64_t hash;
    size_t key_len;
    alignas (max_align_t) unsigned char value[];  //  value_size bytes, then the key + NUL
};

struct _mesh_series_table_t {
    size_t max_entries;
    size_t value_size;                  //  rounded up so the key follows aligned
    size_t size;
    uint64_t evictions;
    node_t **buckets;
    size_t nbuckets;                    //  a power of two
    node_t *head, *tail;
    unsigned char hash_key[crypto_shorthash_KEYBYTES];
};

#define S_MIN_BUCKETS 64

static uint64_t
s_hash (const mesh_series_table_t *self, const char *key, size_t len)
{
    unsigned char out[crypto_shorthash_BYTES];
    crypto_shorthash (out, (const unsigned char *) key, len, self->hash_key);
    uint64_t h;
    memcpy (&h, out, sizeof h);
    return h;
}

static const char *
s_node_key (const mesh_series_table_t *self, const node_t *node)
{
    return (const char *) node->value + self->value_size;
}

mesh_series_table_t *
mesh_series_table_new (size_t max_entries, size_t value_size)
{
    if (max_entries == 0 || value_size == 0) {
        mesh_err ("series table: max_entries and value_size must be positive");
        return NULL;
    }
    if (sodium_init () < 0) {
        mesh_err ("series table: libsodium failed to initialise");
        return NULL;
    }
    mesh_series_table_t *self = calloc (1, sizeof *self);
    if (!self) {
        mesh_err ("series table: out of memory");
        return NULL;
    }
    self->max_entries = max_entries;
    self->value_size = (value_size + alignof (max_align_t) - 1) / alignof (max_align_t)
                       * alignof (max_align_t);
    self->nbuckets = S_MIN_BUCKETS;
    self->buckets = calloc (self->nbuckets, sizeof *self->buckets);
    if (!self->buckets) {
        mesh_err ("series table: out of memory");
        free (self);
        return NULL;
    }
    randombytes_buf (self->hash_key, sizeof self->hash_key);
    return self;
}

void
mesh_series_table_destroy (mesh_series_table_t **self_p)
{
    assert (self_p);
    mesh_series_table_t *self = *self_p;
    if (!self)
        return;
    node_t *node = self->head;
    while (node) {
        node_t *next = node->next;
        free (node);
        node = next;
    }
    free (self->buckets);
    free (self);
    *self_p = NULL;
}

//  The chain link that points at the node with KEY, or at the chain's NULL end.
static node_t **
s_find (const mesh_series_table_t *self, const char *key, size_t len, uint64_t hash)
{
    node_t **link = &self->buckets[hash & (self->nbuckets - 1)];
    while (*link) {
        node_t *node = *link;
        if (node->hash == hash && node->key_len == len
            && memcmp (s_node_key (self, node), key, len) == 0)
            break;
        link = &node->hnext;
    }
    return link;
}

static void
s_list_unlink (mesh_series_table_t *self, node_t *node)
{
    if (node->prev)
        node->prev->next = node->next;
    else
        self->head = node->next;
    if (node->next)
        node->next->prev = node->prev;
    else
        self->tail = node->prev;
    node->prev = node->next = NULL;
}

static void
s_list_push_head (mesh_series_table_t *self, node_t *node)
{
    node->prev = NULL;
    node->next = self->head;
    if (self->head)
        self->head->prev = node;
    self->head = node;
    if (!self->tail)
        self->tail = node;
}

static void
s_evict_oldest (mesh_series_table_t *self)
{
    node_t *victim = self->tail;
    assert (victim);
    node_t **link = s_find (self, s_node_key (self, victim), victim->key_len, victim->hash);
    assert (*link == victim);
    *link = victim->hnext;
    s_list_unlink (self, victim);
    free (victim);
    self->size--;
    self->evictions++;
}

//  Double the bucket array; on allocation failure keep the old one (chains get
//  longer, nothing breaks).
static void
s_grow (mesh_series_table_t *self)
{
    size_t nbuckets = self->nbuckets * 2;
    node_t **buckets = calloc (nbuckets, sizeof *buckets);
    if (!buckets)
        return;
    for (size_t i = 0; i < self->nbuckets; i++) {
        node_t *node = self->buckets[i];
        while (node) {
            node_t *hnext = node->hnext;
            node_t **slot = &buckets[node->hash & (nbuckets - 1)];
            node->hnext = *slot;
            *slot = node;
            node = hnext;
        }
    }
    free (self->buckets);
    self->buckets = buckets;
    self->nbuckets = nbuckets;
}

void *
mesh_series_table_touch (mesh_series_table_t *self, const char *key, bool *created)
{
    assert (self);
    assert (key);
    if (created)
        *created = false;
    size_t len = strlen (key);
    uint64_t hash = s_hash (self, key, len);
    node_t **link = s_find (self, key, len, hash);
    if (*link) {
        node_t *node = *link;
        if (self->head != node) {
            s_list_unlink (self, node);
            s_list_push_head (self, node);
        }
        return node->value;
    }
    node_t *node = calloc (1, sizeof *node + self->value_size + len + 1);
    if (!node) {
        mesh_err ("series table: out of memory for a new series");
        return NULL;
    }
    node->hash = hash;
    node->key_len = len;
    memcpy (node->value + self->value_size, key, len + 1);
    if (self->size >= self->max_entries)
        s_evict_oldest (self);
    if (self->size >= self->nbuckets && self->nbuckets <= SIZE_MAX / 2 / sizeof (node_t *))
        s_grow (self);
    //  Evicting or growing moved the chains; find the insertion slot again.
    link = &self->buckets[hash & (self->nbuckets - 1)];
    node->hnext = *link;
    *link = node;
    s_list_push_head (self, node);
    self->size++;
    if (created)
        *created = true;
    return node->value;
}

void *
mesh_series_table_lookup (const mesh_series_table_t *self, const char *key)
{
    assert (self);
    assert (key);
    size_t len = strlen (key);
    node_t **link = s_find (self, key, len, s_hash (self, key, len));
    return *link ? (*link)->value : NULL;
}

size_t
mesh_series_table_size (const mesh_series_table_t *self)
{
    assert (self);
    return self->size;
}

uint64_t
mesh_series_table_evictions (const mesh_series_table_t *self)
{
    assert (self);
    return self->evictions;
}

/*  series_table - a bounded table from series key to a fixed-size state block.
 *
 *  Shared by detect (baseline per series) and incident (cooldown per series): both
 *  need constant memory per series, O(1) lookup, and a hard bound on the number of
 *  series so that a stream with ever-new keys cannot exhaust memory.  When the
 *  table is full, the least recently used entry is evicted (and counted) to make
 *  room.  Keys are copied; values are zeroed on insert and owned by the table.
 *
 *  Not thread-safe: one consumer thread owns it.
 */
#ifndef MESH_SERIES_TABLE_H
#define MESH_SERIES_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _mesh_series_table_t mesh_series_table_t;

//  Create a table of at most MAX_ENTRIES entries, each holding VALUE_SIZE bytes.
//  Returns NULL (and logs why) if MAX_ENTRIES or VALUE_SIZE is 0 or out of memory.
mesh_series_table_t *mesh_series_table_new (size_t max_entries, size_t value_size);
//  Destroy; sets *self_p to NULL; safe on NULL.
void mesh_series_table_destroy (mesh_series_table_t **self_p);
//  The value of KEY, now the most recently used.  If KEY is absent it is inserted
//  with a zeroed value (evicting the least recently used entry when full) and
//  *created (may be NULL) is set true.  Returns NULL (and logs) only when out of
//  memory.  The pointer is valid until the entry is evicted or the table destroyed;
//  it is aligned for any type.
void *mesh_series_table_touch (mesh_series_table_t *self, const char *key, bool *created);
//  The value of KEY, or NULL if absent; does not change recency.
void *mesh_series_table_lookup (const mesh_series_table_t *self, const char *key);
//  Entries now held.
size_t mesh_series_table_size (const mesh_series_table_t *self);
//  Entries evicted since creation.
uint64_t mesh_series_table_evictions (const mesh_series_table_t *self);

#endif

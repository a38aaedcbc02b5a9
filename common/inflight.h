/*  inflight - what each thread of an agent is handling, in memory the supervisor reads
 *  after the agent died.
 *
 *  A poison message is one whose handling kills or hangs the agent every time: it is
 *  re-delivered after each restart and the partition never moves on.  To see it, the
 *  supervisor must know what the agent was handling when it died, also when it died
 *  between two heartbeats.  So each life of an agent gets a small memfd from the
 *  supervisor (inherited, --inflight-fd), which the agent maps: its consumer thread and
 *  each reason worker own one slot and write the (topic, partition, offset) they handle
 *  into it before handling it, and clear it after - a few stores, no system call per
 *  message.  After the death (reaped: nothing writes any more) the supervisor reads the
 *  slots back with pread and counts a strike for each busy one (daemon/quarantine.c).
 *
 *  The same area carries the supervisor's word the other way, written before the
 *  spawn: the positions of this agent that have strikes ("marks"), those quarantined
 *  flagged.  The consumer skips a quarantined one (dead-letter, offset stored) without
 *  handling it, and flags a mark "survived" when it handled it to the end, which clears
 *  its strikes at the next death or exit.
 *
 *  The agent is not trusted: the supervisor seals the memfd's size (it cannot shrink
 *  it under a reader), never maps it, and takes nothing from it it did not bound: slot
 *  counts are its own, a topic must be a valid Kafka name of at most 249 bytes,
 *  partition and offset non-negative, a busy flag exactly 1, and of the marks only the
 *  survived flag by index is read (the positions are the supervisor's own copy).
 */
#ifndef MESH_INFLIGHT_H
#define MESH_INFLIGHT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MESH_INFLIGHT_MAGIC   0x3146494dU  //  "MIF1"
#define MESH_INFLIGHT_VERSION 1
#define MESH_INFLIGHT_SLOTS   17           //  the consumer thread + up to 16 reason workers
#define MESH_INFLIGHT_MARKS   64           //  positions with strikes told to one life
#define MESH_INFLIGHT_TOPIC   256          //  a Kafka topic name has at most 249 bytes

//  A message's position.
typedef struct {
    char topic[MESH_INFLIGHT_TOPIC];
    int32_t partition;
    int64_t offset;
} mesh_inflight_pos_t;

//  The shared layout (one page-sized area; fixed-width fields, same binary both sides).
typedef struct {
    atomic_uint busy;                   //  1 while the position below is being handled
    int32_t partition;
    int64_t offset;
    uint32_t topic_len;
    char topic[MESH_INFLIGHT_TOPIC];
} mesh_inflight_slot_t;

typedef struct {
    int32_t partition;
    uint8_t quarantined;                //  supervisor: skip it, do not handle it
    uint8_t survived;                   //  agent: handled to the end in this life
    uint16_t topic_len;
    int64_t offset;
    char topic[MESH_INFLIGHT_TOPIC];
} mesh_inflight_mark_t;

typedef struct {
    uint32_t magic, version, slot_count, mark_count;
    mesh_inflight_slot_t slot[MESH_INFLIGHT_SLOTS];
    mesh_inflight_mark_t mark[MESH_INFLIGHT_MARKS];
} mesh_inflight_area_t;

//  --- supervisor side ---------------------------------------------------------------

//  A sealed memfd (size fixed) holding a fresh area with COUNT marks (at most
//  MESH_INFLIGHT_MARKS; QUARANTINED[i] flags MARKS[i]).  The descriptor, or -1 with
//  *why set (static).
int mesh_inflight_create (const mesh_inflight_pos_t *marks, const bool *quarantined,
                          size_t count, const char **why);
//  Read FD's area back after the agent is gone.  BUSY receives the valid busy slots (up
//  to MESH_INFLIGHT_SLOTS) and *busy_count their number; SURVIVED[i] (MARK_COUNT
//  entries) whether mark i was flagged survived.  *rejected counts slots that were
//  busy but invalid (ignored).  0, or -1 with *why set (static) when the area cannot be
//  read or its header is not the one written (nothing is taken from it).
int mesh_inflight_read (int fd, size_t mark_count, mesh_inflight_pos_t *busy,
                        size_t *busy_count, bool *survived, size_t *rejected,
                        const char **why);
//  True if TOPIC (LEN bytes, not necessarily terminated) is a Kafka topic name.
bool mesh_inflight_topic_valid (const char *topic, size_t len);

//  --- agent side ----------------------------------------------------------------------

typedef struct _mesh_inflight_t mesh_inflight_t;

//  Map FD's area (then close FD) before the agent is confined.  NULL, with *why set
//  (static), when it is not an area made by mesh_inflight_create.
mesh_inflight_t *mesh_inflight_attach (int fd, const char **why);
//  Unmap; sets *self_p to NULL; safe on NULL.
void mesh_inflight_destroy (mesh_inflight_t **self_p);
//  Slot SLOT's thread handles (TOPIC, PARTITION, OFFSET) from now on / no longer.  Each
//  slot has one writer thread.  A NULL SELF or a slot out of range does nothing.
void mesh_inflight_set (mesh_inflight_t *self, int slot, const char *topic,
                        int32_t partition, int64_t offset);
void mesh_inflight_clear (mesh_inflight_t *self, int slot);
//  The consumer thread's part.  True if the position is quarantined: skip it.
bool mesh_inflight_quarantined (mesh_inflight_t *self, const char *topic, int32_t partition,
                                int64_t offset);
//  The position is held (handed to a worker) / done (its offset may be stored): a mark
//  whose holds are all done is flagged survived.
void mesh_inflight_hold (mesh_inflight_t *self, const char *topic, int32_t partition,
                         int64_t offset);
void mesh_inflight_done (mesh_inflight_t *self, const char *topic, int32_t partition,
                         int64_t offset);
//  How many marks this life was given (0 for a NULL SELF).
size_t mesh_inflight_marks (const mesh_inflight_t *self);

#endif

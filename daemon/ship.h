/*  ship - the decision log, produced to a Kafka topic after its fsync (audit.ship).
 *
 *  A thread of its own with a producer of its own (idempotent, acks=all).  It reads the
 *  records back from the log file (read-only; the ledger stays its only writer), never
 *  past the seq the main loop says is durable, and produces each one keyed by its seq,
 *  its value the line's exact bytes without the newline.  The seq of the last record
 *  the broker acknowledged, with every one before it, is kept in a small state file
 *  under state_dir, so a restarted meshd goes on from there: what was produced but not
 *  yet acknowledged is produced again (at least once; the key lets a collector drop the
 *  copies).  docs/audit.md, "Shipping", is the contract for collectors.
 *
 *  Memory is bounded: at most audit.ship.max_in_flight records are between the log and
 *  an acknowledgement.  While the broker is away the log on disk is the buffer.
 */
#ifndef MESH_SHIP_H
#define MESH_SHIP_H

#include "config.h"
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _mesh_ship_t mesh_ship_t;

//  Start shipping LOG_PATH per CFG->ship (borrowed for the call only; what is needed is
//  copied).  BROKERS is the bootstrap list to use when audit.ship.brokers is not given
//  (kafka.brokers, or the embedded broker's address).  DURABLE_SEQ is the last seq on
//  disk now.  NULL with WHY set if shipping is off (WHY empty) or cannot start (WHY says
//  why: a state file that cannot be read, a producer librdkafka refuses).
mesh_ship_t *mesh_ship_new (const mesh_config_t *cfg, const char *brokers, const char *log_path,
                            int64_t durable_seq, char *why, size_t size);
//  Stop: wait up to TIMEOUT_MS for what is in flight to be acknowledged, record the
//  acknowledged seq, stop the thread.  Sets *self_p to NULL; safe on NULL.
void mesh_ship_destroy (mesh_ship_t **self_p, int timeout_ms);
//  The log is durable up to SEQ (called by the main loop after appends; cheap, never
//  blocks on Kafka).  A smaller SEQ than before is ignored.
void mesh_ship_notify (mesh_ship_t *self, int64_t seq);
//  {topic, brokers, shipped_seq, ledger_seq, lag_records, lag_seconds, in_flight, broker,
//  last_error, produced, acknowledged, failed, sessions}.  Caller owns.
json_t *mesh_ship_status (mesh_ship_t *self);

//  The state file: {"seq":N,"offset":O,"topic":T,"first":H}, the last acknowledged seq,
//  the byte offset where that record starts in the log, the topic, and the hash of the
//  log's first record (a new log under the same name is not mistaken for the old one).
typedef struct {
    int64_t seq;                    //  0: nothing acknowledged yet
    int64_t offset;                 //  of record seq's first byte; 0 when seq is 0
    char topic [256];
    char first [65];                //  hex, "" if unknown
} mesh_ship_state_t;

//  Read PATH into *STATE.  1 read; 0 no such file (*STATE zeroed); -1 unreadable or
//  malformed (WHY says which).
int mesh_ship_state_read (const char *path, mesh_ship_state_t *state, char *why, size_t size);
//  Replace PATH with STATE: temporary file, fsync, rename, fsync of the directory.  0 or
//  -1 with WHY.
int mesh_ship_state_write (const char *path, const mesh_ship_state_t *state, char *why,
                           size_t size);

//  The reader of the log: the one place that knows where records live on disk: the sealed
//  segments in order, then the active log, following a rotation that happens while it
//  reads.  Only complete lines (ending in '\n') are returned.
typedef struct _mesh_ship_reader_t mesh_ship_reader_t;

//  Largest record the reader takes (a longer line is an error, not a wait).
#define MESH_SHIP_LINE_MAX (16u * 1024 * 1024)

//  Open LOG_PATH read-only, positioned before the first record.  NULL with WHY.
mesh_ship_reader_t *mesh_ship_reader_new (const char *log_path, char *why, size_t size);
void mesh_ship_reader_destroy (mesh_ship_reader_t **self_p);
//  Position after record SEQ (0: at the start), in whichever file holds it.  OFFSET is
//  where record SEQ was found before in the active log (a hint: checked, and the file is
//  scanned from its start if it is wrong).  A SEQ older than the oldest record kept
//  (retention removed it) positions at the oldest record kept, with a notice.  0, or -1
//  with WHY (SEQ is not in the log).
int mesh_ship_reader_seek (mesh_ship_reader_t *self, int64_t seq, int64_t offset, char *why,
                           size_t size);
//  The next record: 1 and *LINE_P (borrowed, valid until the next call; no newline),
//  *LENGTH_P, *SEQ_P, *TS_P (ms, 0 if absent) and *OFFSET_P (its first byte in the log);
//  0 if no complete line follows yet; -1 with WHY on a line that is not a record (no
//  leading {"seq":N) or is longer than MESH_SHIP_LINE_MAX, or an I/O error.
int mesh_ship_reader_next (mesh_ship_reader_t *self, const char **line_p, size_t *length_p,
                           int64_t *seq_p, int64_t *ts_p, int64_t *offset_p, char *why,
                           size_t size);
//  Drop what was read ahead beyond the last record returned: bytes past the durable seq
//  may be taken back by the ledger (a group commit whose fsync failed) and written anew.
void mesh_ship_reader_forget (mesh_ship_reader_t *self);
//  The hash ("hash" at the end of the line) of the log's first record, into HEX (65
//  bytes); "" if the log is empty.  0 or -1 with WHY.  Does not move the reader.
int mesh_ship_reader_first_hash (mesh_ship_reader_t *self, char *hex, char *why, size_t size);

#endif

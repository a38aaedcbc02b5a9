/*  ledger - the decision ledger: the one writer of the decision log.
 *
 *  Runs in the supervisor's main loop (single-threaded; no locking).  Every record is
 *  one JSON line {"seq","prev","ts", <the caller's fields>, "mac", "hash"}, MAC'd with a
 *  key only the supervisor reads, hash-chained and fsync'd before mesh_ledger_append
 *  returns, so an agent that got a seq back knows its decision is durable before it acts.
 *  After each append <log>.head is replaced atomically with {"seq":N,"hash":"..."} so
 *  that removing records from the tail is detectable.  The format and what verification can and cannot detect are described
 *  for auditors in docs/audit.md; the reader side is audit/audit.h.
 *
 *  The ledger keeps an index id -> state so that decisions and outcomes are written at
 *  most once per id, however often an agent retries after a crash or a lost reply.
 */
#ifndef MESH_LEDGER_H
#define MESH_LEDGER_H

#include "note.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct _mesh_ledger_t mesh_ledger_t;

typedef enum {
    MESH_LEDGER_NONE,               //  no decision recorded for this id
    MESH_LEDGER_DECIDED,            //  decision recorded, no outcome yet
    MESH_LEDGER_COMPLETE,           //  decision and outcome recorded
} mesh_ledger_state_t;

//  Open (create with mode 0640, creating parent directories 0750) PATH, and take an
//  exclusive lock on it (a second writer is refused).  The MAC key (32 bytes) is read from
//  $CREDENTIALS_DIRECTORY/ledger-mac if that exists (systemd LoadCredential=), else from
//  KEY_PATH, which is created (mode 0600, O_EXCL, random) when missing; a key file that
//  is not a regular file owned by the euid with mode 0600/0400 of exactly 32 bytes is
//  refused.  Reads and verifies the whole existing log: chain, every record's MAC, head.
//  - A torn last line (bytes after the last newline: a crash mid-write) is copied intact
//    to <PATH>.torn-<seq>-<unix time> (0640, fsync'd) and cut off, and a {"type":"ledger",
//    "event":"repair","moved_to","bytes","sha256","reason"} record appended.
//  - Anything else that does not verify - a complete line that is not JSON, has a wrong
//    hash, breaks seq/prev, lacks a MAC or carries one that does not verify; a head file
//    that is malformed, ahead of the log, names another hash, is more than
//    MESH_LEDGER_BATCH_MAX records behind, or is missing from a log of more than that many
//    records - and open fails (NULL,
//    errno EBADMSG, logged with the seq/line of the first bad record) and changes nothing.
//  - In a log written before MACs (no record has one) the ledger appends {"type":"ledger",
//    "event":"mac","since":SEQ} (SEQ = that record's own seq); records before it are kept
//    but unproven: their undone decisions are never returned by pending or lookup.
//  Builds the in-memory index id -> state and appends {"type":"ledger","event":"open",
//  "head":"matches"|"behind"|"absent"}.  NULL on failure (errno EBADMSG: the log fails
//  verification; anything else: it could not be opened, read or written).
mesh_ledger_t *mesh_ledger_open (const char *path, const char *key_path);
//  For `meshd --set-aside-log`: if PATH fails verification as mesh_ledger_open would find
//  it, rename it and its head to <PATH>.set-aside-<unix time> and .head (never replacing a
//  file), fsync the directory, and start a new log at PATH whose first record is
//  {"type":"ledger","event":"set_aside","moved_to","reason","last_verified_seq",
//  "last_verified_hash"}.  Returns 0 done; 1 refused (PATH verifies, or does not exist);
//  -1 on an error (locked by a running meshd, I/O).  Logged.
int mesh_ledger_set_aside (const char *path, const char *key_path);
//  Close; sets *self_p to NULL; safe on NULL.
void mesh_ledger_destroy (mesh_ledger_t **self_p);
//  Append RECORD (borrowed; a JSON object with a string "type" and none of the keys seq,
//  prev, ts, mac, hash; type "ledger" is reserved for the ledger itself), write + fsync
//  before returning.  Returns the seq (> 0), or -1 (also while the head file cannot be
//  written: the head is never left further behind than one group commit).
//  "decision" and "outcome" records need a non-empty string "id".  Idempotent per id: a
//  second "decision" with an id already decided, or a second "outcome" for an id already
//  complete, writes nothing and returns the seq of the existing record.  An "outcome" for
//  an unknown id is refused (-1).  If the head file cannot be updated the record stands
//  (it is durable) and the failure is logged.
int64_t mesh_ledger_append (mesh_ledger_t *self, json_t *record);
//  State of decision ID; if DECISION_P is not NULL, *decision_p = a new reference to the
//  decision record as stored (with seq, prev, ts, mac and hash; caller decrefs) when the
//  state is DECIDED, and NULL otherwise (complete decisions are not kept in memory).  A
//  decision recorded before records carried a MAC is reported COMPLETE (closed): it is
//  never handed out to be carried out.
mesh_ledger_state_t mesh_ledger_lookup (mesh_ledger_t *self, const char *id,
                                        json_t **decision_p);
//  Last seq written (0 for an empty log).
//  Decisions of AGENT recorded (and MAC'd) by this supervisor without an outcome (an
//  agent died between the two), oldest first, as stored.  Caller owns the array.
json_t *mesh_ledger_pending (mesh_ledger_t *self, const char *agent);
int64_t mesh_ledger_seq (const mesh_ledger_t *self);
//  The log's path (borrowed).
const char *mesh_ledger_path (const mesh_ledger_t *self);
//  Latency of the last fsync of the log, in milliseconds.
double mesh_ledger_last_fsync_ms (const mesh_ledger_t *self);
//  Seq of the existing decision (or outcome, if OUTCOME) record for ID, or 0 if none.
int64_t mesh_ledger_record_seq (mesh_ledger_t *self, const char *id, bool outcome);

//  Group commit.  Between begin and commit, appends are written but not synced, and
//  the head file waits; commit fsyncs once for all of them and writes the head.  A
//  caller acknowledges the records of a batch only after commit returned 0.  If the
//  sync fails every record of the batch is cut off the file and taken out of the
//  index (as if never appended) and commit returns -1: refuse them all.  Without begin,
//  every append syncs by itself.  Nested begin is a no-op.
//  A batch holds at most MESH_LEDGER_BATCH_MAX records (the next append is refused), so a
//  crash between the batch's fsync and the head's update leaves the head at most that
//  many records behind, which open accepts (and no more).
#define MESH_LEDGER_BATCH_MAX 256
void mesh_ledger_begin (mesh_ledger_t *self);
int mesh_ledger_commit (mesh_ledger_t *self);
//  Tests only: the next N fsyncs of a log fail with EIO (fault injection).
void mesh_ledger_fail_syncs (int n);

//  Sign checkpoints with SIGNER (copied) under ORIGIN (the checkpoint's first line).
//  0, or -1.
int mesh_ledger_set_signer (mesh_ledger_t *self, const mesh_note_signer_t *signer,
                            const char *origin);
//  Sign a checkpoint of every record so far (C2SP tlog-checkpoint in a signed note,
//  audit/note.h), write it to <log>.checkpoint (atomically) and append a "checkpoint"
//  record {"origin","size","root","key","note"} (size = the records before it).  Unless
//  FORCE, nothing is done when no record was written since the last checkpoint record
//  (returns 0).  Commits an open batch first.  Returns the size signed, or -1 (no signer:
//  errno ENOKEY; logged).  *NOTE_P (may be NULL) = the signed note (caller frees).
int64_t mesh_ledger_checkpoint (mesh_ledger_t *self, bool force, char **note_p);
//  Seq of the last checkpoint record (0: none).
int64_t mesh_ledger_last_checkpoint_seq (const mesh_ledger_t *self);

//  Rotation (docs/audit.md "Segments and retention").  After an append that is not in a
//  batch, and after a commit, when the active log holds at least MAX_BYTES bytes (0:
//  never) or its first record is at least MAX_AGE_S seconds old (0: never) and it holds
//  more than the record that opened it: a checkpoint is signed first if a signer is set;
//  the log is renamed <log>.seg-<its first seq, 12 digits> (mode 0440); a new <log>
//  goes on with the next seq, chained to the segment's last record, its first record
//  {"type":"ledger","event":"rotate","previous":NAME,"previous_first_seq":A,
//  "previous_last_seq":B,"previous_sha256":HEX}.  The tree goes on as before.  A failed
//  rotation leaves the log as it was (logged) and is tried again at the next append.
//  Also checked after a checkpoint and here, at once (a log found due at start is sealed).
//  Default: never.
void mesh_ledger_set_rotation (mesh_ledger_t *self, uint64_t max_bytes, int64_t max_age_s);
//  Rotate now (if the active log holds more than its opening record, or FORCE).  0, or -1.
int mesh_ledger_rotate (mesh_ledger_t *self, bool force);
//  Retention (docs/audit.md "Segments and retention"): whole sealed segments, oldest first,
//  are removed while the oldest was last written MAX_AGE_S seconds ago or more (0: never)
//  or while the segments and the active log together hold more than MAX_BYTES (0: never).
//  Before any file goes, <log>.retained is replaced with {"first_seq":K,"prev_hash",
//  "range":{"size":K-1,"nodes":[b64...]},"removed":[{"file","first_seq","last_seq",
//  "sha256"}...]} and a {"type":"ledger","event":"retention","removed":[...],
//  "first_kept_seq":K,"range_size":K-1,"range":[b64...]} record appended.  Checked after
//  every rotation and here at once.  Default: keep everything.
void mesh_ledger_set_retention (mesh_ledger_t *self, int64_t max_age_s, uint64_t max_bytes);
//  Apply retention now.  The number of segments removed (0: none due), or -1 (logged;
//  nothing removed).
int mesh_ledger_retain (mesh_ledger_t *self);
//  The seq of the first record of the active log.
int64_t mesh_ledger_active_first_seq (const mesh_ledger_t *self);

#endif

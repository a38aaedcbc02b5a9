/*  ledger - the decision ledger: the one writer of the decision log.
 *
 *  Runs in the supervisor's main loop (single-threaded; no locking).  Every record is
 *  one JSON line {"seq","prev","ts", <the caller's fields>, "hash"}, hash-chained and
 *  fsync'd before mesh_ledger_append returns, so an agent that got a seq back knows its
 *  decision is durable before it acts.  After each append <log>.head is replaced
 *  atomically with {"seq":N,"hash":"..."} so that removing records from the tail is
 *  detectable.  The format and what verification can and cannot detect are described
 *  for auditors in docs/audit.md; the reader side is common/audit.h.
 *
 *  The ledger keeps an index id -> state so that decisions and outcomes are written at
 *  most once per id, however often an agent retries after a crash or a lost reply.
 */
#ifndef MESH_LEDGER_H
#define MESH_LEDGER_H

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
//  exclusive lock on it (a second writer is refused).  Reads and verifies the whole
//  existing chain; a torn or damaged LAST line (no trailing newline, not JSON, missing or
//  wrong hash) is truncated away and a {"type":"ledger","event":"repair","dropped_bytes":N,
//  "reason":"..."} record appended.  Corruption earlier in the file, a last line whose seq
//  or prev breaks the chain, or a head file that says the log is longer than it is (or
//  names another hash): refuse to open (NULL, logged with the seq/line of the first bad
//  record) - history is never silently rewritten.  Builds the in-memory index id -> state.
//  Appends {"type":"ledger","event":"open"} on success.
mesh_ledger_t *mesh_ledger_open (const char *path);
//  Close; sets *self_p to NULL; safe on NULL.
void mesh_ledger_destroy (mesh_ledger_t **self_p);
//  Append RECORD (borrowed; a JSON object with a string "type" and none of the keys seq,
//  prev, ts, hash; type "ledger" is reserved for the ledger itself), write + fsync before
//  returning.  Returns the seq (> 0), or -1.
//  "decision" and "outcome" records need a non-empty string "id".  Idempotent per id: a
//  second "decision" with an id already decided, or a second "outcome" for an id already
//  complete, writes nothing and returns the seq of the existing record.  An "outcome" for
//  an unknown id is refused (-1).  If the head file cannot be updated the record stands
//  (it is durable) and the failure is logged.
int64_t mesh_ledger_append (mesh_ledger_t *self, json_t *record);
//  State of decision ID; if DECISION_P is not NULL, *decision_p = a new reference to the
//  decision record as stored (with seq, prev, ts and hash; caller decrefs) when the state is
//  DECIDED, and NULL otherwise (complete decisions are not kept in memory).
mesh_ledger_state_t mesh_ledger_lookup (mesh_ledger_t *self, const char *id,
                                        json_t **decision_p);
//  Last seq written (0 for an empty log).
//  Decisions of AGENT recorded without an outcome (an agent died between the two), oldest
//  first, as stored.  Caller owns the array.
json_t *mesh_ledger_pending (mesh_ledger_t *self, const char *agent);
int64_t mesh_ledger_seq (const mesh_ledger_t *self);
//  The log's path (borrowed).
const char *mesh_ledger_path (const mesh_ledger_t *self);
//  Latency of the last fsync of the log, in milliseconds.
double mesh_ledger_last_fsync_ms (const mesh_ledger_t *self);
//  Seq of the existing decision (or outcome, if OUTCOME) record for ID, or 0 if none.
int64_t mesh_ledger_record_seq (mesh_ledger_t *self, const char *id, bool outcome);

#endif

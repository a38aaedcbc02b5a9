/*  audit - a read-only view of a decision log: verify the chain, list, show, stats.
 *
 *  The decision log is written only by daemon/ledger.c, one JSON object per line:
 *  {"seq":N,"prev":"<hex>","ts":MS, <the caller's fields>, "mac":"<hex>", "hash":"<hex>"}
 *  where mac = HMAC-SHA256, with a key only the supervisor reads, of the line's bytes up
 *  to `,"mac":"`, and hash = SHA-256 of the line's bytes up to `,"hash":"` (so the chain
 *  covers the MAC).  Logs written before MACs have records without one.  docs/audit.md
 *  describes the format for auditors.  This module is used by `meshctl audit ...`,
 *  and its chain scanner is also what the ledger runs when it opens the log, so the
 *  writer and the auditor can never disagree about what a valid record is.
 *
 *  Return codes are exit-code shaped, for the CLI: 0 ok, 1 (verify: broken chain; show:
 *  not found or ambiguous), 2 the log cannot be read.  Diagnostics go to the log module;
 *  only results are printed to OUT.
 */
#ifndef MESH_AUDIT_H
#define MESH_AUDIT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

//  Filter for mesh_audit_list; 0/NULL fields match anything.  since_ms <= ts < until_ms
//  (ts is the ledger's timestamp of the record, epoch milliseconds).  agent and verdict
//  match the decision's fields exactly; action matches action.name exactly.
typedef struct {
    int64_t since_ms, until_ms;
    const char *agent, *verdict, *action;
} mesh_audit_filter_t;

#define MESH_AUDIT_HASH_HEX 64
#define MESH_AUDIT_KEY_BYTES 32     //  the ledger's MAC key: exactly 32 raw bytes

//  How to verify.  key NULL: MACs are not checked (the output says so).  head_advisory:
//  a head file behind the log (or absent from a log with records) is reported but is not
//  a failure; without it, it is one (a crash leaves the head at most one record behind,
//  and the next start of meshd brings it up to date).
typedef struct {
    bool json;
    bool head_advisory;
    const unsigned char *key;       //  MESH_AUDIT_KEY_BYTES, borrowed
} mesh_audit_verify_opts_t;

//  Verify the chain of PATH (and <PATH>.head), and with a key every record's MAC.  Prints
//  to OUT "ok: N records, last seq S, head matches" (or "..., no head file" for an empty
//  log, or with head_advisory "..., head behind at seq H (advisory)" / "..., no head file
//  (advisory)") and a second line "mac: not checked (key not given)" / "mac: verified
//  for every record" / "mac: verified from seq M (the N records before it were written
//  before MACs)"; or "FAIL: record seq S (line L): <what is wrong>" naming the FIRST bad
//  record, or "FAIL: <what is wrong>" for the head file.  Returns 0 ok, 1 broken, 2 cannot
//  read.  json: one object instead: {"ok":true,"records":N,"last_seq":S,"head":"matches"|
//  "behind"|"absent","mac":"not_checked"|"verified"|"absent" (no record has one),
//  "mac_since":M} or {"ok":false,"seq":S,"line":L,"error":"..."} (no seq/line when the
//  head file is at fault).
int mesh_audit_verify_with (const char *path, const mesh_audit_verify_opts_t *opts, FILE *out);
//  The same with no key and a strict head.
int mesh_audit_verify (const char *path, bool json, FILE *out);

//  Read a MAC key from PATH: a regular file (not a symlink) of exactly
//  MESH_AUDIT_KEY_BYTES bytes.  STRICT (the supervisor): it must also be owned by the
//  effective uid and give no permission to group or others (0600 or 0400).  Returns 1 and
//  KEY filled, 0 if PATH does not exist, -1 if it is refused or unreadable (WHY, WHY_SIZE
//  bytes, says why, without the path).  Never logs; the caller has the context.
int mesh_audit_load_key (const char *path, bool strict, unsigned char *key, char *why,
                         size_t why_size);

//  HMAC-SHA256 of DATA with KEY as 64 lower-case hex digits (HEX, 65 bytes).  The ledger
//  uses it to write the "mac" field, the scanner to check it.
void mesh_audit_mac_hex (const unsigned char *key, const char *data, size_t len, char *hex);

//  One line per decision record matching F (F may be NULL), after a header line: seq, time
//  (ISO 8601 UTC), short id (12 hex), agent, verdict, action, tokens, outcome status ("-" if
//  none recorded).  json=true: a JSON array of {"seq","ts","time","id","agent","verdict",
//  "action","tokens","fallback","outcome"} (null for missing values).  Reads every line that
//  is a JSON object without checking the chain (that is verify's job); lines that are not
//  are skipped with one warning.  Returns 0, or 2 cannot read.
int mesh_audit_list (const char *path, const mesh_audit_filter_t *f, bool json, FILE *out);

//  The decision with ID (or a unique id prefix of at least 8 characters), its approval
//  records and its outcome: human (a timeline: event, detector, incident group, each
//  attempt with its rules' verdicts, verdict, action, approvals, outcome; values bounded and
//  control characters escaped; docs/audit.md "Reading a decision") or JSON
//  {"decision":..,"outcome":..|null,"approvals":[..]}.  Returns 0, 1 not found or ambiguous
//  (logged), 2 cannot read.
int mesh_audit_show (const char *path, const char *id, bool json, FILE *out);

//  The same answer as JSON, for a caller that shows it itself (the status page): 0 and
//  *RESULT_P (caller owns) {"decision","outcome","approvals"}; 1 not found or ambiguous, 2
//  cannot read, with WHY (WHY_SIZE bytes) saying so (not logged here, except a read error).
//  MAX_BYTES > 0 reads only the last MAX_BYTES of the active file PATH (a decision older
//  than that is not found); 0 reads the whole log, as mesh_audit_show does.
int mesh_audit_show_find (const char *path, const char *id, size_t max_bytes, json_t **result_p,
                          char *why, size_t why_size);

//  One row of `audit list --json` for decision record D (borrowed) and its outcome status
//  (NULL: none): {"seq","ts","time","id","agent","verdict","action","tokens","fallback",
//  "outcome"}.  Caller owns the result.
json_t *mesh_audit_list_row (json_t *d, const char *outcome);

//  Calls FN for every line that is a JSON object in the active file PATH from byte FROM,
//  in log order, but at most its last MAX_BYTES (0: no bound; a window that cuts a line
//  starts after it).  A last line without its newline (being written) is not read; *END_P
//  (may be NULL) is set to the offset after the last line read, where the next call goes
//  on.  A reader that follows the log: call again with FROM = *END_P; FROM past the end
//  reads nothing.  Returns 0, or 2 cannot read.
int mesh_audit_each_record_from (const char *path, int64_t from, size_t max_bytes,
                                 void (*fn) (json_t *record, void *arg), void *arg,
                                 uint64_t *end_p);

//  Aggregates over the log for summaries.  records counts every JSON record (ledger events
//  included); accepted/rejected/budget_exhausted count decision verdicts; fallback counts
//  decisions with "fallback": true; outcomes_failed counts outcomes with status "failed";
//  tokens sums the decisions' integer "tokens"; attempts sums the sizes of their "attempts"
//  arrays.
typedef struct {
    uint64_t records, decisions, accepted, rejected, fallback, budget_exhausted, outcomes,
             outcomes_failed;
    uint64_t tokens, attempts;
    double tokens_per_accepted;      //  tokens / accepted (0 if none accepted)
} mesh_audit_stats_t;

//  Fill *STATS (zeroed first).  Returns 0, or 2 cannot read.
int mesh_audit_stats (const char *path, mesh_audit_stats_t *stats);

//  Calls FN for every decision record in log order (DECISION is borrowed for the call).
//  Returns 0, or 2 cannot read.
int mesh_audit_each_decision (const char *path, void (*fn) (json_t *decision, void *arg),
                              void *arg);

//  Calls FN for every line of the log that is a JSON object (any type), in log order,
//  without checking the chain (RECORD is borrowed for the call).  Returns 0, or 2 cannot
//  read.
int mesh_audit_each_record (const char *path, void (*fn) (json_t *record, void *arg),
                            void *arg);

//  ---------------------------------------------------------------------------------------
//  The chain scanner shared with daemon/ledger.c.

//  What a scan found.  The chain is intact iff bad_line == 0.
typedef struct {
    int64_t records;                //  valid records before the first bad one
    int64_t last_seq;               //  seq of the last valid record (0 if none)
    char last_hash[MESH_AUDIT_HASH_HEX + 1];   //  its hash (64 zeros if none)
    uint64_t good_bytes;            //  offset just past the last valid record's newline
    int64_t bad_line;               //  1-based line of the first bad record; 0 if none
    int64_t bad_seq;                //  the seq that record should have had (last_seq + 1)
    bool bad_is_last;               //  the bad line is the last line of the file
    bool bad_content;               //  its bytes are damaged (torn, not JSON, no or wrong
                                    //  hash, a MAC that does not verify), as opposed to a
                                    //  break of seq/prev order
    bool bad_torn;                  //  the bad line has no newline: a write cut short (it
                                    //  is then also the last line)
    int64_t mac_since;              //  with a key: seq of the first record with a MAC (0 if
                                    //  none yet); every record from it on has a valid MAC
    int64_t mac_missing;            //  with a key: records before mac_since without a MAC
    char why[256];                  //  what is wrong with it
} mesh_audit_scan_t;

//  Called for every valid record in order with the record (borrowed), its hex hash and
//  the raw bytes of its line (LEN bytes, without the newline; borrowed).  SCAN->records,
//  last_seq, mac_since already count this record.  Return 0 to go on, -1 to stop the scan
//  (mesh_audit_scan then returns -1).
typedef int (mesh_audit_record_fn) (json_t *record, const char *hash, const char *line,
                                    size_t len, void *arg);

//  Read the chain from FILE (from its current position) and check every line: a trailing
//  newline, a JSON object, the hash suffix, SHA-256 of the prefix, seq = previous + 1,
//  prev = previous hash, integer ts, string type.  With KEY (MESH_AUDIT_KEY_BYTES, may be
//  NULL) also the MAC: a record with `,"mac":"<64 hex>"` just before the hash must carry
//  the HMAC of the bytes before it; records without one are accepted only before the first
//  record with one, and then that first one must be the ledger's {"type":"ledger",
//  "event":"mac","since":<its seq>} record.  Stops at the first bad line.  FN may be NULL.
//  Returns 0 (see SCAN->bad_line), or -1 on a read error or if FN stopped it.
int mesh_audit_scan (FILE *file, const unsigned char *key, mesh_audit_scan_t *scan,
                     mesh_audit_record_fn *fn, void *arg);

//  The same for a log whose first records were removed by retention (docs/audit.md
//  "Segments and retention"): the first record must have seq FIRST_SEQ and prev PREV_HASH
//  (64 hex; NULL: 64 zeros).  SCAN->last_seq starts at FIRST_SEQ - 1.
int mesh_audit_scan_from (FILE *file, const unsigned char *key, int64_t first_seq,
                          const char *prev_hash, mesh_audit_scan_t *scan,
                          mesh_audit_record_fn *fn, void *arg);

//  Read <LOG_PATH>.head.  Returns 1 and sets *seq_p and HASH (65 bytes) if it exists and is
//  well formed, 0 if it does not exist, -1 if it is unreadable or malformed (WHY, 128 bytes,
//  says what is wrong, without the path: "is not ...", "cannot be read: ...").
int mesh_audit_read_head (const char *log_path, int64_t *seq_p, char *hash, char *why);

#endif

/*  ledger - the decision ledger, sole writer of the decision log.
 *
 *  Data path: an agent's record stage sends its decision here and waits for the seq
 *  before it acts; the outcome follows after the action.  This file is therefore the
 *  one place where "durable" is decided, and it is written to be boring about it:
 *
 *  - One record = one write(2) of one whole line at the end of the file, then fsync.
 *    A failed or short write is cut off again with ftruncate, so a failure leaves the
 *    file as it was and the caller gets -1.
 *  - The line is the compact jansson serialisation of {"seq","prev","ts", caller's
 *    fields...} with `,"mac":"<hex>","hash":"<hex>"}` put where the closing brace was:
 *    mac is the HMAC-SHA256 of the bytes before it with a key only the supervisor reads,
 *    hash the SHA-256 of the bytes before it (so the chain covers the MAC).  Both are over
 *    bytes, not over a re-serialised object, so verifying never depends on how a JSON
 *    library formats numbers.  The hash makes changes evident; the MAC makes records the
 *    supervisor did not write evident, since no one else can compute it.
 *  - After the log's fsync, <log>.head is replaced by write-temp + fsync + rename +
 *    fsync of the directory.  A crash between the two leaves the head behind by the
 *    records of that fsync: one, or a group commit of at most MESH_LEDGER_BATCH_MAX.  If
 *    the head cannot be written, no further record is appended until it can, so the
 *    head is never further behind than that.
 *  - On open the whole chain, every MAC and the head are checked with the same scanner
 *    `meshctl audit verify` uses (audit/audit.c).  The ledger never deletes evidence: a
 *    torn last line (bytes after the last newline: a crash mid-write) is copied aside
 *    intact before it is cut off, and the move is itself a record; anything else that
 *    does not verify makes open fail with errno EBADMSG, and meshd refuses to start on
 *    that log until an operator sets it aside (mesh_ledger_set_aside), which moves it
 *    away whole and starts a new log that names it.
 *
 *  The index id -> state makes decisions and outcomes idempotent per id: agents retry
 *  after crashes and lost replies, and a retried decision must not become a second
 *  record.  Decision records stay in memory only until their outcome arrives.  Records
 *  from before MACs (an old log) are kept as evidence but marked unproven: their undone
 *  decisions are never handed out to be carried out.
 */
#include "ledger.h"
#include "audit.h"
#include "merkle.h"
#include "note.h"
#include "segments.h"
#include "tlog.h"
#include "log.h"
#include "jsonout.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    mesh_ledger_state_t state;
    int64_t decision_seq;
    int64_t outcome_seq;
    bool unproven;                  //  written before records carried a MAC
    json_t *decision;               //  the stored record while DECIDED; NULL once complete
} s_entry_t;

struct _mesh_ledger_t {
    char *path;
    char *head_path;
    char *head_tmp;
    char *dir;                      //  the log's directory
    int fd;                         //  the log, locked with flock
    int dir_fd;                     //  its directory, for fsync after create and rename
    uint64_t size;                  //  bytes of valid records = where the next one goes
    int64_t seq;                    //  last seq written
    char hash[MESH_AUDIT_HASH_HEX + 1];   //  its hash
    unsigned char key[MESH_AUDIT_KEY_BYTES];   //  the MAC key
    bool key_made;                  //  the key file was created by this open
    double last_fsync_ms;
    bool head_failing;              //  the head file could not be written (logged once)
    zhashx_t *index;
    zhashx_t *rules;                //  "agent\nrules_hash" and "agent" of every rules record
    mesh_merkle_range_t range;      //  the RFC 9162 tree of every record (audit/merkle.h)
    bool signing;                   //  a checkpoint signer is set
    mesh_note_signer_t signer;
    char *origin;                   //  the checkpoints' origin line
    char *verifier;                 //  the signer's verifier key text
    char *cp_path, *cp_tmp;         //  <log>.checkpoint: the latest signed checkpoint
    int64_t last_cp_seq;            //  seq of the last checkpoint record (0: none)
    //  Group commit (mesh_ledger_begin / mesh_ledger_commit): records written, not synced.
    bool batching;
    int64_t batch_records;          //  written since begin
    uint64_t batch_size;            //  the file's size at begin
    int64_t batch_seq;              //  seq, hash and tree at begin
    char batch_hash[MESH_AUDIT_HASH_HEX + 1];
    mesh_merkle_range_t batch_range;
    zlist_t *undo;                  //  s_undo_t: index changes to take back if the sync fails
    //  Rotation: the active log's first record, and when to seal it into a segment.
    int64_t active_first_seq;       //  seq of its first record (seq + 1 while empty)
    int64_t active_first_ms;        //  its ts (0 while empty)
    uint64_t rotate_max_bytes;      //  0: never
    int64_t rotate_max_age_s;       //  0: never
    bool rotate_failing;            //  the last rotation failed (logged once)
    bool rotating;                  //  in mesh_ledger_rotate (its checkpoint must not nest)
    int64_t retain_max_age_s;       //  remove sealed segments older than this (0: never)
    uint64_t retain_max_bytes;      //  or while all the files hold more (0: never)
    bool retain_failing;            //  the last retention failed (logged once)
};

//  One index change made inside a batch: how to take it back.
typedef struct {
    char *id;                       //  the decision id; NULL for a rules key
    char *rules_key;                //  a rules key that was added
    bool inserted;                  //  the entry was new (take back = delete)
    json_t *decision;               //  outcome: the decision the entry held (a reference)
    int64_t outcome_seq;
} s_undo_t;

//  What the check of an existing log found (s_check).
typedef struct {
    bool failed;                    //  the log fails verification
    char why[768];                  //  what failed, with seq and line
    int64_t last_seq;               //  the last record that verified
    char last_hash[MESH_AUDIT_HASH_HEX + 1];
    uint64_t good_bytes;            //  where the verified records end, in the active log
    bool torn;                      //  bytes after the last newline (a torn write)
    int64_t torn_seq;               //  the seq that line would have had
    char torn_why[320];
    const char *head;               //  "matches", "behind" (by one) or "absent"
    int64_t unmacd;                 //  records before MACs began
    int64_t mac_since;              //  first record with a MAC (0: none)
    mesh_merkle_range_t range;      //  the tree of the verified records
    int64_t last_cp_seq;            //  the last checkpoint record among them (0: none)
    char last_cp_key[256];          //  the key that signed it
} s_check_t;

static void
s_entry_destroy (void **item_p)
{
    s_entry_t *entry = (s_entry_t *) *item_p;
    if (entry) {
        json_decref (entry->decision);
        free (entry);
        *item_p = NULL;
    }
}

static double
s_now_ms (clockid_t clock)
{
    struct timespec ts;
    clock_gettime (clock, &ts);
    return (double) ts.tv_sec * 1000.0 + (double) ts.tv_nsec / 1e6;
}

//  mkdir -p DIR with mode 0750 for the directories it creates.
static int
s_make_dirs (const char *dir)
{
    char buf[4096];
    if (snprintf (buf, sizeof buf, "%s", dir) >= (int) sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir (buf, 0750) != 0 && errno != EEXIST)
                return -1;
            *p = c;
            if (c == 0)
                break;
        }
    }
    return 0;
}

//  Write all of BUF at OFFSET.
static int
s_pwrite_all (int fd, const char *buf, size_t len, uint64_t offset)
{
    while (len > 0) {
        ssize_t n = pwrite (fd, buf, len, (off_t) offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return -1;
        }
        buf += n;
        len -= (size_t) n;
        offset += (uint64_t) n;
    }
    return 0;
}

//  Tests only (mesh_ledger_fail_syncs): the next N syncs of a log fail with EIO.
static int s_sync_faults;

void
mesh_ledger_fail_syncs (int n)
{
    s_sync_faults = n;
}

static int
s_fsync (int fd)
{
    int rc;
    do
        rc = fsync (fd);
    while (rc != 0 && errno == EINTR);
    return rc;
}

//  The log's own sync (a fault can be injected for tests).
static int
s_log_fsync (mesh_ledger_t *self)
{
    if (s_sync_faults > 0) {
        s_sync_faults--;
        errno = EIO;
        return -1;
    }
    return s_fsync (self->fd);
}

//  fsync the directory that holds PATH.
static int
s_fsync_dir_of (const char *path)
{
    char *copy = strdup (path);
    assert (copy);
    int fd = open (dirname (copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd >= 0 ? s_fsync (fd) : -1;
    int saved = errno;
    if (fd >= 0)
        close (fd);
    free (copy);
    errno = saved;
    return rc;
}

//  Create BASE, or BASE.1 ... BASE.99 if it exists, exclusively with MODE.  Returns the
//  fd and *name_p (caller frees), or -1.
static int
s_create_unique (const char *base, mode_t mode, char **name_p)
{
    for (int i = 0; i < 100; i++) {
        char *name = i ? zsys_sprintf ("%s.%d", base, i) : strdup (base);
        assert (name);
        int fd = open (name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd >= 0) {
            if (fchmod (fd, mode) != 0) {
                int saved = errno;
                close (fd);
                unlink (name);
                free (name);
                errno = saved;
                return -1;
            }
            *name_p = name;
            return fd;
        }
        free (name);
        if (errno != EEXIST)
            return -1;
    }
    errno = EEXIST;
    return -1;
}

//  Replace the head file with the current seq and hash.
static int
s_write_head (mesh_ledger_t *self)
{
    char buf[128];
    int len = snprintf (buf, sizeof buf, "{\"seq\":%" PRId64 ",\"hash\":\"%s\"}\n", self->seq,
                        self->hash);
    int fd = open (self->head_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        goto fail;
    if (s_pwrite_all (fd, buf, (size_t) len, 0) != 0 || s_fsync (fd) != 0) {
        int saved = errno;
        close (fd);
        errno = saved;
        goto fail;
    }
    if (close (fd) != 0 || rename (self->head_tmp, self->head_path) != 0
        || s_fsync (self->dir_fd) != 0)
        goto fail;
    if (self->head_failing) {
        mesh_notice ("ledger: %s is written again (seq %" PRId64 ")", self->head_path,
                     self->seq);
        self->head_failing = false;
    }
    return 0;
fail:
    if (!self->head_failing)
        mesh_err ("ledger: cannot update %s: %s (the last record stays durable; no further "
                  "record is written until the head can be)", self->head_path,
                  strerror (errno));
    self->head_failing = true;
    return -1;
}

//  Build, write and fsync the next record from RECORD's fields.  Returns the seq, or -1.
//  If STORED_P, *stored_p is the record as written (caller owns).
static int64_t
s_write_record (mesh_ledger_t *self, json_t *record, json_t **stored_p)
{
    //  A head more than one record behind would make the next start refuse the log.
    if (self->head_failing && s_write_head (self) != 0)
        return -1;
    int64_t seq = self->seq + 1;
    json_t *obj = json_object ();
    json_object_set_new (obj, "seq", json_integer (seq));
    json_object_set_new (obj, "prev", json_string (self->hash));
    json_object_set_new (obj, "ts", json_integer ((json_int_t) s_now_ms (CLOCK_REALTIME)));
    const char *key;
    json_t *value;
    json_object_foreach (record, key, value)
        json_object_set_new (obj, key, json_deep_copy (value));

    char *text = mesh_jsonout_dumps (obj);
    size_t text_len = text ? strlen (text) : 0;
    if (!text || text_len < 2 || text[text_len - 1] != '}') {
        mesh_err ("ledger: cannot serialise record seq %" PRId64, seq);
        free (text);
        json_decref (obj);
        return -1;
    }
    //  PREFIX = the object without its closing brace; the line is PREFIX + mac + hash.
    size_t prefix_len = text_len - 1;
    char mac[MESH_AUDIT_HASH_HEX + 1];
    mesh_audit_mac_hex (self->key, text, prefix_len, mac);
    size_t body_len = prefix_len + 8 + MESH_AUDIT_HASH_HEX + 1;
    size_t line_len = body_len + 9 + MESH_AUDIT_HASH_HEX + 3;
    char *line = malloc (line_len + 1);
    assert (line);
    memcpy (line, text, prefix_len);
    snprintf (line + prefix_len, line_len + 1 - prefix_len, ",\"mac\":\"%s\"", mac);
    free (text);
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256 (digest, (const unsigned char *) line, body_len);
    char hex[MESH_AUDIT_HASH_HEX + 1];
    sodium_bin2hex (hex, sizeof hex, digest, sizeof digest);
    snprintf (line + body_len, line_len + 1 - body_len, ",\"hash\":\"%s\"}\n", hex);

    int rc = s_pwrite_all (self->fd, line, line_len, self->size);
    const char *what = "write";
    if (rc == 0 && !self->batching) {
        double start = s_now_ms (CLOCK_MONOTONIC);
        rc = s_log_fsync (self);
        self->last_fsync_ms = s_now_ms (CLOCK_MONOTONIC) - start;
        what = "fsync";
    }
    if (rc != 0) {
        free (line);
        int saved = errno;
        //  Leave the file as it was: no half record for the next append to follow.
        if (ftruncate (self->fd, (off_t) self->size) != 0)
            mesh_err ("ledger: %s: cannot cut back a failed write: %s", self->path,
                      strerror (errno));
        mesh_err ("ledger: %s: %s of record seq %" PRId64 " failed: %s", self->path, what, seq,
                  strerror (saved));
        json_decref (obj);
        return -1;
    }
    if (self->size == 0) {
        self->active_first_seq = seq;
        self->active_first_ms = json_integer_value (json_object_get (obj, "ts"));
    }
    self->size += line_len;
    self->seq = seq;
    memcpy (self->hash, hex, sizeof hex);
    mesh_merkle_hash_t leaf;
    mesh_merkle_leaf_hash (line, line_len - 1, leaf);
    mesh_merkle_range_append (&self->range, leaf);
    free (line);
    if (self->batching)
        self->batch_records++;      //  synced, and the head written, by mesh_ledger_commit
    else
        s_write_head (self);
    if (stored_p) {
        json_object_set_new (obj, "mac", json_string (mac));
        json_object_set_new (obj, "hash", json_string (hex));
        *stored_p = obj;
    }
    else
        json_decref (obj);
    return seq;
}

//  Inside a batch: remember that KEY is about to be added to the rules set, if it is new.
static void
s_undo_rules_key (mesh_ledger_t *self, const char *key)
{
    if (!self->batching || zhashx_lookup (self->rules, key))
        return;
    s_undo_t *undo = (s_undo_t *) calloc (1, sizeof *undo);
    assert (undo);
    undo->rules_key = strdup (key);
    zlist_push (self->undo, undo);
}

//  Forget the undo list (APPLY false: the batch is durable) or take every change back,
//  newest first (APPLY true: the batch is gone).
static void
s_undo_finish (mesh_ledger_t *self, bool apply)
{
    s_undo_t *undo;
    while ((undo = (s_undo_t *) zlist_pop (self->undo))) {
        if (apply && undo->rules_key)
            zhashx_delete (self->rules, undo->rules_key);
        else
        if (apply && undo->inserted)
            zhashx_delete (self->index, undo->id);
        else
        if (apply) {
            s_entry_t *entry = (s_entry_t *) zhashx_lookup (self->index, undo->id);
            if (entry) {
                entry->state = MESH_LEDGER_DECIDED;
                entry->outcome_seq = 0;
                entry->decision = undo->decision;
                undo->decision = NULL;
            }
        }
        json_decref (undo->decision);
        free (undo->id);
        free (undo->rules_key);
        free (undo);
    }
}

//  Index one record (on open and after each append).  DECISION_SEQ etc from RECORD.
static void
s_index (mesh_ledger_t *self, json_t *record, bool unproven)
{
    const char *type = json_string_value (json_object_get (record, "type"));
    const char *id = json_string_value (json_object_get (record, "id"));
    int64_t seq = json_integer_value (json_object_get (record, "seq"));
    if (type && streq (type, "rules") && !unproven) {
        const char *agent = json_string_value (json_object_get (record, "agent"));
        const char *hash = json_string_value (json_object_get (record, "rules_hash"));
        if (agent && hash) {
            char *key = zsys_sprintf ("%s\n%s", agent, hash);
            s_undo_rules_key (self, agent);
            s_undo_rules_key (self, key);
            zhashx_update (self->rules, agent, (void *) "");
            zhashx_update (self->rules, key, (void *) "");
            free (key);
        }
        return;
    }
    if (!type || !id || !*id)
        return;
    s_entry_t *entry = (s_entry_t *) zhashx_lookup (self->index, id);
    if (streq (type, "decision")) {
        if (entry)
            return;                 //  the first decision for an id is the one
        entry = (s_entry_t *) calloc (1, sizeof *entry);
        assert (entry);
        entry->state = MESH_LEDGER_DECIDED;
        entry->decision_seq = seq;
        entry->unproven = unproven;
        entry->decision = unproven ? NULL : json_incref (record);
        zhashx_insert (self->index, id, entry);
        if (self->batching) {
            s_undo_t *undo = (s_undo_t *) calloc (1, sizeof *undo);
            assert (undo);
            undo->id = strdup (id);
            undo->inserted = true;
            zlist_push (self->undo, undo);
        }
    }
    else
    if (streq (type, "outcome")) {
        if (!entry) {
            mesh_warn ("ledger: %s: outcome seq %" PRId64 " for id %.16s... has no decision",
                       self->path, seq, id);
            return;
        }
        if (entry->state == MESH_LEDGER_DECIDED) {
            entry->state = MESH_LEDGER_COMPLETE;
            entry->outcome_seq = seq;
            if (self->batching) {
                s_undo_t *undo = (s_undo_t *) calloc (1, sizeof *undo);
                assert (undo);
                undo->id = strdup (id);
                undo->decision = entry->decision;      //  the reference moves here
                zlist_push (self->undo, undo);
            }
            else
                json_decref (entry->decision);
            entry->decision = NULL;
        }
    }
}

typedef struct {
    mesh_ledger_t *self;            //  NULL: check only, no index
    mesh_audit_scan_t *scan;
    int64_t mark_seq;               //  the head file's seq
    char mark_hash[MESH_AUDIT_HASH_HEX + 1];
    mesh_tlog_t tlog;               //  the tree and its checkpoints
    int64_t tlog_bad_seq;           //  the first record the tree refused (0: none)
} s_open_t;

static int
s_open_fn (json_t *record, const char *hash, const char *line, size_t len, void *arg)
{
    s_open_t *open_ = (s_open_t *) arg;
    //  Once a record carries a MAC, every later one does (the scanner checks it).
    if (open_->self)
        s_index (open_->self, record, open_->scan->mac_since == 0);
    int64_t seq = json_integer_value (json_object_get (record, "seq"));
    if (seq == open_->mark_seq)
        memcpy (open_->mark_hash, hash, sizeof open_->mark_hash);
    if (!open_->tlog_bad_seq && mesh_tlog_feed (&open_->tlog, record, line, len) != 0)
        open_->tlog_bad_seq = seq;
    return 0;
}

//  Check the existing log (self->fd) against the key and the head file; index it when
//  INDEX.  0 and *check filled (check->failed says whether it verifies), or -1 when it
//  cannot be read (logged).
static int
s_check (mesh_ledger_t *self, bool index, s_check_t *check)
{
    memset (check, 0, sizeof *check);
    int64_t head_seq = -1;
    char head_hash[MESH_AUDIT_HASH_HEX + 1] = "";
    char why[128];
    int head = mesh_audit_read_head (self->path, &head_seq, head_hash, why);
    //  The sealed segments come first in the stream: their bytes are not the active log's.
    //  After retention the chain and the tree start at the first record kept.
    uint64_t sealed_bytes = 0;
    mesh_segment_t *segs = NULL;
    char seg_why[512];
    mesh_segments_start_t start;
    if (mesh_segments_start (self->path, &start, seg_why, sizeof seg_why) < 0) {
        snprintf (check->why, sizeof check->why, "%s", seg_why);
        check->failed = true;
        return 0;
    }
    int segs_n = mesh_segments_list (self->path, &segs, seg_why, sizeof seg_why);
    for (int i = 0; i < segs_n; i++) {
        struct stat st;
        if (segs[i].first_seq >= start.first_seq && stat (segs[i].path, &st) == 0)
            sealed_bytes += (uint64_t) st.st_size;
    }
    mesh_segments_free (&segs, segs_n);
    FILE *file = segs_n >= 0 ? mesh_segments_open (self->path) : NULL;
    if (!file) {
        if (segs_n < 0 || errno == EBADMSG) {
            snprintf (check->why, sizeof check->why, "its segments do not join: %s",
                      segs_n < 0 ? seg_why : "see the message above");
            check->failed = true;
            mesh_segments_start_free (&start);
            return 0;
        }
        mesh_segments_start_free (&start);
        mesh_err ("ledger: cannot read %s: %s", self->path, strerror (errno));
        return -1;
    }
    mesh_audit_scan_t scan;
    s_open_t open_ = { .self = index ? self : NULL, .scan = &scan,
                       .mark_seq = head == 1 ? head_seq : -1 };
    memset (open_.mark_hash, '0', MESH_AUDIT_HASH_HEX);
    memcpy (open_.mark_hash, start.prev_hash, MESH_AUDIT_HASH_HEX);
    mesh_tlog_init_from (&open_.tlog, NULL, false, &start.range);
    int rc = mesh_audit_scan_from (file, self->key, start.first_seq, start.prev_hash, &scan,
                                   s_open_fn, &open_);
    mesh_segments_start_free (&start);
    bool joins = !(rc != 0 && ferror (file) && errno == EBADMSG);
    fclose (file);
    check->range = open_.tlog.range;
    check->last_cp_seq = open_.tlog.last_cp_seq;
    snprintf (check->last_cp_key, sizeof check->last_cp_key, "%s",
              open_.tlog.last_cp_key ? open_.tlog.last_cp_key : "");
    char tlog_why[sizeof open_.tlog.why];
    memcpy (tlog_why, open_.tlog.why, sizeof tlog_why);
    mesh_tlog_free (&open_.tlog);
    if (rc != 0 && !joins) {
        snprintf (check->why, sizeof check->why, "its segments do not join after seq %" PRId64
                  " (see the message above)", scan.last_seq);
        check->last_seq = scan.last_seq;
        check->failed = true;
        return 0;
    }
    if (rc != 0)
        return -1;                  //  logged by the scanner
    check->last_seq = scan.last_seq;
    memcpy (check->last_hash, scan.last_hash, sizeof check->last_hash);
    if (scan.good_bytes < sealed_bytes) {
        snprintf (check->why, sizeof check->why, "record seq %" PRId64 " (line %" PRId64
                  "), in a sealed segment: %s", scan.bad_seq, scan.bad_line, scan.why);
        check->failed = true;
        return 0;
    }
    check->good_bytes = scan.good_bytes - sealed_bytes;
    check->unmacd = scan.mac_missing;
    check->mac_since = scan.mac_since;
    check->head = "matches";
    if (scan.bad_line && scan.bad_torn) {
        check->torn = true;
        check->torn_seq = scan.bad_seq;
        snprintf (check->torn_why, sizeof check->torn_why, "line %" PRId64 ": %s",
                  scan.bad_line, scan.why);
    }
    if (scan.bad_line && !scan.bad_torn)
        snprintf (check->why, sizeof check->why, "record seq %" PRId64 " (line %" PRId64
                  "): %s", scan.bad_seq, scan.bad_line, scan.why);
    else
    if (open_.tlog_bad_seq)
        snprintf (check->why, sizeof check->why, "record seq %" PRId64 " (line %" PRId64
                  "): %s", open_.tlog_bad_seq, open_.tlog_bad_seq, tlog_why);
    else
    if (head < 0)
        snprintf (check->why, sizeof check->why, "its head file %s %s", self->head_path,
                  why);
    else
    if (head == 1 && head_seq > scan.last_seq)
        snprintf (check->why, sizeof check->why, "the log ends at seq %" PRId64 " but its "
                  "head file says seq %" PRId64 ": acknowledged records are missing",
                  scan.last_seq, head_seq);
    else
    if (head == 1 && strcmp (open_.mark_hash, head_hash) != 0)
        snprintf (check->why, sizeof check->why, "record seq %" PRId64 " (line %" PRId64
                  ") has another hash than its head file names: a record was replaced",
                  head_seq, head_seq);
    else
    if (head == 1 && head_seq < scan.last_seq - MESH_LEDGER_BATCH_MAX)
        snprintf (check->why, sizeof check->why, "its head file says seq %" PRId64 ", the "
                  "log goes on to seq %" PRId64 ": more than the one group commit (%d records) "
                  "a crash can leave beyond the head", head_seq, scan.last_seq,
                  MESH_LEDGER_BATCH_MAX);
    else
    if (head == 0 && scan.last_seq > MESH_LEDGER_BATCH_MAX)
        snprintf (check->why, sizeof check->why, "it holds %" PRId64 " records but its head "
                  "file %s is missing (a crash can leave that only within the first group "
                  "commit, %d records)", scan.last_seq, self->head_path, MESH_LEDGER_BATCH_MAX);
    else {
        if (head == 0)
            check->head = "absent";
        else
        if (head_seq < scan.last_seq)
            check->head = "behind";
        return 0;
    }
    check->failed = true;
    return 0;
}

//  Copy the torn tail [good_bytes, end) aside intact, then cut it off.  Returns the
//  repair record to write (caller owns), or NULL (logged).
static json_t *
s_move_torn (mesh_ledger_t *self, const s_check_t *check)
{
    struct stat st;
    if (fstat (self->fd, &st) != 0) {
        mesh_err ("ledger: cannot stat %s: %s", self->path, strerror (errno));
        return NULL;
    }
    uint64_t end = (uint64_t) st.st_size;
    assert (end > check->good_bytes);
    char *base = zsys_sprintf ("%s.torn-%" PRId64 "-%lld", self->path, check->torn_seq,
                               (long long) time (NULL));
    char *name = NULL;
    int out = s_create_unique (base, 0640, &name);
    free (base);
    if (out < 0) {
        mesh_err ("ledger: cannot create a file beside %s to keep its torn last line: %s",
                  self->path, strerror (errno));
        return NULL;
    }
    crypto_hash_sha256_state sha;
    crypto_hash_sha256_init (&sha);
    char buf[65536];
    uint64_t at = check->good_bytes;
    int rc = 0;
    while (rc == 0 && at < end) {
        size_t want = end - at < sizeof buf ? (size_t) (end - at) : sizeof buf;
        ssize_t n = pread (self->fd, buf, want, (off_t) at);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            rc = -1;
            break;
        }
        crypto_hash_sha256_update (&sha, (const unsigned char *) buf, (size_t) n);
        rc = s_pwrite_all (out, buf, (size_t) n, at - check->good_bytes);
        at += (uint64_t) n;
    }
    if (rc == 0)
        rc = s_fsync (out);
    if (close (out) != 0 && rc == 0)
        rc = -1;
    if (rc == 0)
        rc = s_fsync (self->dir_fd);
    if (rc != 0) {
        mesh_err ("ledger: cannot keep the torn last line of %s in %s: %s; the log is left as "
                  "it is", self->path, name, strerror (errno));
        unlink (name);
        free (name);
        return NULL;
    }
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final (&sha, digest);
    char hex[MESH_AUDIT_HASH_HEX + 1];
    sodium_bin2hex (hex, sizeof hex, digest, sizeof digest);
    uint64_t bytes = end - check->good_bytes;
    mesh_warn ("ledger: %s: a torn last record (%" PRIu64 " bytes, %s) was moved to %s",
               self->path, bytes, check->torn_why, name);
    if (ftruncate (self->fd, (off_t) check->good_bytes) != 0 || s_fsync (self->fd) != 0) {
        mesh_err ("ledger: cannot cut the torn last line off %s: %s (a copy is in %s)",
                  self->path, strerror (errno), name);
        free (name);
        return NULL;
    }
    self->size = check->good_bytes;
    json_t *repair = json_pack ("{s:s, s:s, s:s, s:I, s:s, s:s}", "type", "ledger", "event",
                                "repair", "moved_to", name, "bytes", (json_int_t) bytes,
                                "sha256", hex, "reason", check->torn_why);
    free (name);
    return repair;
}

//  Decisions from before MACs that have no outcome (never carried out, never handed out).
static size_t
s_unproven_undone (mesh_ledger_t *self)
{
    size_t n = 0;
    for (s_entry_t *entry = (s_entry_t *) zhashx_first (self->index); entry;
         entry = (s_entry_t *) zhashx_next (self->index))
        n += entry->unproven && entry->state == MESH_LEDGER_DECIDED;
    return n;
}

//  Read and check the existing log; move a torn last line aside; mark the start of MACs
//  in an old log.  0, or -1 (logged; errno EBADMSG when the log fails verification).
static int
s_load (mesh_ledger_t *self, const char **head_p)
{
    s_check_t check;
    if (s_check (self, true, &check) != 0) {
        errno = EIO;
        return -1;
    }
    if (check.failed) {
        mesh_err ("ledger: the decision log %s fails verification; nothing will act on it:",
                  self->path);
        mesh_err ("ledger:   %s", check.why);
        mesh_err ("ledger:   the last record that verified is seq %" PRId64 "; nothing in "
                  "the log or its head was changed or deleted", check.last_seq);
        errno = EBADMSG;
        return -1;
    }
    self->seq = check.last_seq;
    memcpy (self->hash, check.last_hash, sizeof self->hash);
    self->size = check.good_bytes;
    self->range = check.range;
    self->active_first_seq = self->seq + 1;
    self->active_first_ms = 0;
    if (self->size > 0
        && mesh_segments_first (self->path, &self->active_first_seq,
                                &self->active_first_ms) != 1) {
        mesh_err ("ledger: cannot read the first record of %s", self->path);
        errno = EIO;
        return -1;
    }
    self->last_cp_seq = check.last_cp_seq;
    free (self->verifier);
    self->verifier = check.last_cp_key[0] ? strdup (check.last_cp_key) : NULL;
    *head_p = check.head;
    //  The torn line is cut off first, so that what follows chains on the good part; in
    //  an old log the "mac" record must be the first one with a MAC, the repair after it.
    json_t *repair = NULL;
    if (check.torn && !(repair = s_move_torn (self, &check)))
        return -1;
    //  A log without any MAC is an old log only if the key is new too: with a key that
    //  existed before, records without MACs were written by someone who lacked it.
    if (check.unmacd > 0 && check.mac_since == 0 && !self->key_made) {
        mesh_err ("ledger: the decision log %s fails verification; nothing will act on it:",
                  self->path);
        mesh_err ("ledger:   none of its %" PRId64 " records carries a MAC, yet the MAC key "
                  "existed before this start: the log was written without the key "
                  "(replaced or rewritten)", check.unmacd);
        mesh_err ("ledger:   nothing in the log or its head was changed or deleted");
        errno = EBADMSG;
        return -1;
    }
    if (check.unmacd > 0 && check.mac_since == 0) {
        json_t *mark = json_pack ("{s:s, s:s, s:I}", "type", "ledger", "event", "mac", "since",
                                  (json_int_t) (self->seq + 1));
        int64_t seq = s_write_record (self, mark, NULL);
        json_decref (mark);
        if (seq < 0) {
            json_decref (repair);
            return -1;
        }
        mesh_notice ("ledger: %s: records 1-%" PRId64 " were written before records carried "
                     "a MAC; every record from seq %" PRId64 " on carries one", self->path,
                     check.unmacd, seq);
    }
    if (repair) {
        int64_t seq = s_write_record (self, repair, NULL);
        json_decref (repair);
        if (seq < 0)
            return -1;
    }
    size_t undone = s_unproven_undone (self);
    if (undone)
        mesh_warn ("ledger: %s: %zu decision(s) recorded before records carried a MAC have no "
                   "outcome; they cannot be proven to be this supervisor's and will never be "
                   "carried out (meshctl audit list shows them)", self->path, undone);
    return 0;
}

//  The MAC key: the systemd credential if there is one, else KEY_PATH, created when
//  missing.  0, or -1 (logged).
static int
s_load_key (mesh_ledger_t *self, const char *key_path)
{
    char why[256];
    const char *creds = getenv ("CREDENTIALS_DIRECTORY");
    if (creds && *creds) {
        //  systemd owns the credential's access (ownership or ACL): no owner check.
        char *cred = zsys_sprintf ("%s/ledger-mac", creds);
        int rc = mesh_audit_load_key (cred, false, self->key, why, sizeof why);
        if (rc < 0)
            mesh_err ("ledger: the credential %s %s; refusing to open the decision log", cred,
                      why);
        free (cred);
        if (rc != 0)
            return rc > 0 ? 0 : -1;
    }
    if (!key_path || !*key_path) {
        mesh_err ("ledger: no MAC key: neither a credential ledger-mac nor a key file");
        return -1;
    }
    int rc = mesh_audit_load_key (key_path, true, self->key, why, sizeof why);
    if (rc < 0) {
        mesh_err ("ledger: the key file %s %s; refusing to open the decision log", key_path,
                  why);
        return -1;
    }
    if (rc > 0)
        return 0;
    char *copy = strdup (key_path);
    assert (copy);
    int made = s_make_dirs (dirname (copy));
    free (copy);
    int fd = made == 0 ? open (key_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                               0600)
                       : -1;
    if (fd < 0) {
        mesh_err ("ledger: cannot create the key file %s: %s", key_path, strerror (errno));
        return -1;
    }
    randombytes_buf (self->key, sizeof self->key);
    if (fchmod (fd, 0600) != 0
        || s_pwrite_all (fd, (const char *) self->key, sizeof self->key, 0) != 0
        || s_fsync (fd) != 0 || close (fd) != 0 || s_fsync_dir_of (key_path) != 0) {
        mesh_err ("ledger: cannot write the key file %s: %s", key_path, strerror (errno));
        unlink (key_path);
        return -1;
    }
    self->key_made = true;
    mesh_notice ("ledger: created the MAC key %s (mode 0600); records are provable to this "
                 "supervisor only while it is kept", key_path);
    return 0;
}

//  A ledger with its key, not yet holding a log.
static mesh_ledger_t *
s_new (const char *path, const char *key_path)
{
    if (!path || !*path) {
        mesh_err ("ledger: no path for the decision log");
        return NULL;
    }
    if (sodium_init () < 0) {
        mesh_err ("ledger: libsodium cannot be initialised");
        return NULL;
    }
    mesh_ledger_t *self = (mesh_ledger_t *) calloc (1, sizeof *self);
    assert (self);
    self->fd = -1;
    self->dir_fd = -1;
    self->path = strdup (path);
    self->head_path = zsys_sprintf ("%s.head", path);
    self->head_tmp = zsys_sprintf ("%s.head.tmp", path);
    char *copy = strdup (path);
    assert (copy);
    self->dir = strdup (dirname (copy));
    free (copy);
    self->index = zhashx_new ();
    self->rules = zhashx_new ();
    self->undo = zlist_new ();
    mesh_merkle_range_init (&self->range);
    assert (self->rules);
    assert (self->path && self->head_path && self->head_tmp && self->dir && self->index);
    zhashx_set_destructor (self->index, s_entry_destroy);
    memset (self->hash, '0', MESH_AUDIT_HASH_HEX);
    if (s_load_key (self, key_path) != 0)
        mesh_ledger_destroy (&self);
    return self;
}

//  Open (FLAGS: O_CREAT, O_EXCL) and lock the log.  0, or -1 (logged; errno kept).
static int
s_open_log (mesh_ledger_t *self, int flags)
{
    if (s_make_dirs (self->dir) != 0) {
        mesh_err ("ledger: cannot create directory %s: %s", self->dir, strerror (errno));
        return -1;
    }
    self->dir_fd = open (self->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (self->dir_fd < 0) {
        mesh_err ("ledger: cannot open directory %s: %s", self->dir, strerror (errno));
        return -1;
    }
    self->fd = open (self->path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | flags, 0640);
    if (self->fd < 0) {
        int saved = errno;
        if (errno != ENOENT || (flags & O_CREAT))
            mesh_err ("ledger: cannot open %s: %s", self->path, strerror (errno));
        errno = saved;
        return -1;
    }
    if (flock (self->fd, LOCK_EX | LOCK_NB) != 0) {
        mesh_err ("ledger: %s is locked by another writer (is meshd running?): %s", self->path,
                  strerror (errno));
        errno = EWOULDBLOCK;
        return -1;
    }
    if (s_fsync (self->dir_fd) != 0) {
        mesh_err ("ledger: cannot fsync directory %s: %s", self->dir, strerror (errno));
        return -1;
    }
    return 0;
}

mesh_ledger_t *
mesh_ledger_open (const char *path, const char *key_path)
{
    mesh_ledger_t *self = s_new (path, key_path);
    if (!self)
        return NULL;
    const char *head = "absent";
    if (s_open_log (self, O_CREAT) != 0 || s_load (self, &head) != 0) {
        int saved = errno;
        mesh_ledger_destroy (&self);
        errno = saved;
        return NULL;
    }
    json_t *event = json_pack ("{s:s, s:s, s:s}", "type", "ledger", "event", "open", "head",
                               head);
    int64_t seq = s_write_record (self, event, NULL);
    json_decref (event);
    if (seq < 0) {
        mesh_ledger_destroy (&self);
        errno = EIO;
        return NULL;
    }
    if (streq (head, "behind"))
        mesh_notice ("ledger: %s: the head file was one record behind (a crash between the "
                     "log's fsync and the head's update); it is up to date again", path);
    mesh_info ("ledger: %s open at seq %" PRId64, path, seq);
    return self;
}

//  Rename FROM to BASE (or BASE.N) without replacing anything.  0 and *name_p, or -1.
static int
s_rename_aside (const char *from, const char *base, char **name_p)
{
    for (int i = 0; i < 100; i++) {
        char *name = i ? zsys_sprintf ("%s.%d", base, i) : strdup (base);
        assert (name);
        if (renameat2 (AT_FDCWD, from, AT_FDCWD, name, RENAME_NOREPLACE) == 0) {
            *name_p = name;
            return 0;
        }
        free (name);
        if (errno != EEXIST)
            return -1;
    }
    errno = EEXIST;
    return -1;
}

int
mesh_ledger_set_aside (const char *path, const char *key_path)
{
    mesh_ledger_t *self = s_new (path, key_path);
    if (!self)
        return -1;
    int rc = -1;
    char *moved = NULL, *moved_head = NULL;
    mesh_ledger_t *fresh = NULL;
    if (s_open_log (self, 0) != 0) {
        if (errno == ENOENT) {
            mesh_err ("ledger: %s does not exist: there is nothing to set aside", path);
            rc = 1;
        }
        goto done;
    }
    s_check_t check;
    if (s_check (self, false, &check) != 0)
        goto done;
    if (!check.failed) {
        mesh_err ("ledger: %s verifies (last seq %" PRId64 "); it is not set aside%s", path,
                  check.last_seq, check.torn ? " (its torn last line is moved aside at the "
                  "next start)" : "");
        rc = 1;
        goto done;
    }
    char *base = zsys_sprintf ("%s.set-aside-%lld", path, (long long) time (NULL));
    int renamed = s_rename_aside (path, base, &moved);
    free (base);
    if (renamed != 0) {
        mesh_err ("ledger: cannot move %s aside: %s", path, strerror (errno));
        goto done;
    }
    moved_head = zsys_sprintf ("%s.head", moved);
    if (renameat2 (AT_FDCWD, self->head_path, AT_FDCWD, moved_head, RENAME_NOREPLACE) != 0
        && errno != ENOENT) {
        mesh_err ("ledger: moved %s to %s, but cannot move %s to %s: %s; move it by hand "
                  "before meshd starts", path, moved, self->head_path, moved_head,
                  strerror (errno));
        goto done;
    }
    //  Its segments and <log>.retained go with it: the log set aside stays one log.
    mesh_segment_t *segs = NULL;
    char why[512];
    int segs_n = mesh_segments_list (path, &segs, why, sizeof why);
    const char *base_name = strrchr (path, '/') ? strrchr (path, '/') + 1 : path;
    for (int i = 0; i < segs_n; i++) {
        //  <log>.seg-N -> <moved>.seg-N
        char *to = zsys_sprintf ("%s%s", moved, segs[i].name + strlen (base_name));
        if (renameat2 (AT_FDCWD, segs[i].path, AT_FDCWD, to, RENAME_NOREPLACE) != 0)
            mesh_err ("ledger: cannot move %s to %s: %s; move it by hand before meshd starts",
                      segs[i].path, to, strerror (errno));
        free (to);
    }
    mesh_segments_free (&segs, segs_n);
    char *retained = zsys_sprintf ("%s.retained", path);
    char *retained_to = zsys_sprintf ("%s.retained", moved);
    if (renameat2 (AT_FDCWD, retained, AT_FDCWD, retained_to, RENAME_NOREPLACE) != 0
        && errno != ENOENT)
        mesh_err ("ledger: cannot move %s to %s: %s; move it by hand before meshd starts",
                  retained, retained_to, strerror (errno));
    free (retained);
    free (retained_to);
    if (s_fsync (self->dir_fd) != 0) {
        mesh_err ("ledger: cannot fsync directory %s: %s", self->dir, strerror (errno));
        goto done;
    }
    mesh_notice ("ledger: moved %s (and its head) to %s intact: %s", path, moved, check.why);
    //  The new log: its first record says what was set aside and why.
    fresh = s_new (path, key_path);
    if (!fresh || s_open_log (fresh, O_CREAT | O_EXCL) != 0)
        goto done;
    json_t *record = json_pack ("{s:s, s:s, s:s, s:s, s:I, s:s}", "type", "ledger", "event",
                                "set_aside", "moved_to", moved, "reason", check.why,
                                "last_verified_seq", (json_int_t) check.last_seq,
                                "last_verified_hash", check.last_hash);
    int64_t seq = s_write_record (fresh, record, NULL);
    json_decref (record);
    if (seq != 1)
        goto done;
    mesh_notice ("ledger: started a new decision log %s; its first record names %s", path,
                 moved);
    rc = 0;
done:
    free (moved);
    free (moved_head);
    mesh_ledger_destroy (&fresh);
    mesh_ledger_destroy (&self);
    return rc;
}

void
mesh_ledger_destroy (mesh_ledger_t **self_p)
{
    assert (self_p);
    mesh_ledger_t *self = *self_p;
    if (!self)
        return;
    if (self->fd >= 0)
        close (self->fd);           //  also releases the lock
    if (self->dir_fd >= 0)
        close (self->dir_fd);
    s_undo_finish (self, false);
    zlist_destroy (&self->undo);
    zhashx_destroy (&self->index);
    zhashx_destroy (&self->rules);
    sodium_memzero (self->key, sizeof self->key);
    mesh_note_signer_wipe (&self->signer);
    free (self->origin);
    free (self->verifier);
    free (self->cp_path);
    free (self->cp_tmp);
    free (self->path);
    free (self->head_path);
    free (self->head_tmp);
    free (self->dir);
    free (self);
    *self_p = NULL;
}

//  Is RECORD the decision STORED holds, apart from what the ledger added to it?
static bool
s_same_decision (json_t *stored, json_t *record)
{
    if (!stored)
        return false;
    json_t *copy = json_copy (stored);
    static const char *added[] = {"seq", "prev", "ts", "mac", "hash", "recorded_late"};
    for (size_t i = 0; i < sizeof added / sizeof added[0]; i++)
        json_object_del (copy, added[i]);
    json_t *other = json_copy (record);
    json_object_del (other, "recorded_late");
    bool same = json_equal (copy, other);
    json_decref (copy);
    json_decref (other);
    return same;
}

//  An accepted decision must name a rule set meshd itself recorded for its agent (once
//  meshd recorded any for that agent): recovery later loads the rules by that name.
static bool
s_unknown_rules (mesh_ledger_t *self, json_t *record)
{
    const char *verdict = json_string_value (json_object_get (record, "verdict"));
    const char *agent = json_string_value (json_object_get (record, "agent"));
    if (!verdict || !streq (verdict, "accepted") || !agent || !zhashx_lookup (self->rules, agent))
        return false;
    const char *hash = json_string_value (json_object_get (record, "rules_hash"));
    if (!hash)
        return true;
    char *key = zsys_sprintf ("%s\n%s", agent, hash);
    bool known = zhashx_lookup (self->rules, key) != NULL;
    free (key);
    return !known;
}

//  A "quarantine" record names the message it is about: agent, topic, a partition and
//  an offset that are not negative, and the strikes that reached the limit.  NULL if it
//  does (or the record is of another type), else what is wrong.
static const char *
s_check_quarantine (const char *type, json_t *record)
{
    if (!streq (type, "quarantine"))
        return NULL;
    json_t *partition = json_object_get (record, "partition");
    json_t *offset = json_object_get (record, "offset");
    json_t *strikes = json_object_get (record, "strikes");
    if (!json_is_string (json_object_get (record, "agent"))
        || !json_is_string (json_object_get (record, "topic")))
        return "\"agent\" and \"topic\" must be strings";
    if (!json_is_integer (partition) || json_integer_value (partition) < 0
        || !json_is_integer (offset) || json_integer_value (offset) < 0)
        return "\"partition\" and \"offset\" must be integers, not negative";
    if (!json_is_integer (strikes) || json_integer_value (strikes) < 1)
        return "\"strikes\" must be a positive integer";
    return NULL;
}

static void s_maybe_rotate (mesh_ledger_t *self);

//  ---------------------------------------------------------------------------------------
//  Rotation.  The new log is made and locked under <log>.new before anything is renamed,
//  so the lock is never let go: <log> -> <log>.seg-N, then <log>.new -> <log>, then the
//  directory is synced.  A crash between the renames leaves no <log>; the next open
//  creates it and the chain goes on from the segment (the rotate record is then missing,
//  which verification does not need: the seqs and hashes join).

void
mesh_ledger_set_rotation (mesh_ledger_t *self, uint64_t max_bytes, int64_t max_age_s)
{
    assert (self);
    self->rotate_max_bytes = max_bytes;
    self->rotate_max_age_s = max_age_s > 0 ? max_age_s : 0;
    s_maybe_rotate (self);          //  a log already due (at start) is sealed at once
}

int64_t
mesh_ledger_active_first_seq (const mesh_ledger_t *self)
{
    assert (self);
    return self->active_first_seq;
}

int
mesh_ledger_rotate (mesh_ledger_t *self, bool force)
{
    assert (self);
    if (self->batching && mesh_ledger_commit (self) != 0)
        return -1;
    if (self->size == 0 || (!force && self->seq <= self->active_first_seq))
        return 0;                   //  nothing but the record that opened it
    //  A signed checkpoint at the end of every segment, when checkpoints are signed.
    self->rotating = true;
    int64_t signed_size = self->signing ? mesh_ledger_checkpoint (self, false, NULL) : 0;
    self->rotating = false;
    if (signed_size < 0)
        return -1;
    int64_t first = self->active_first_seq, last = self->seq;
    char *seg = zsys_sprintf ("%s.seg-%012" PRId64, self->path, first);
    char *fresh = zsys_sprintf ("%s.new", self->path);
    const char *seg_name = strrchr (seg, '/') ? strrchr (seg, '/') + 1 : seg;
    char sha[MESH_SEGMENTS_HEX_SIZE];
    int fd = -1;
    const char *what = "hash";
    if (mesh_segments_sha256 (self->path, sha, NULL) != 0)
        goto fail;
    what = "create";
    unlink (fresh);                 //  left by a crash in an earlier rotation
    fd = open (fresh, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0640);
    if (fd < 0)
        goto fail;
    what = "lock";
    if (flock (fd, LOCK_EX | LOCK_NB) != 0)
        goto fail;
    what = "seal";
    if (fchmod (self->fd, 0440) != 0)
        goto fail;
    what = "rename";
    if (renameat2 (AT_FDCWD, self->path, AT_FDCWD, seg, RENAME_NOREPLACE) != 0) {
        fchmod (self->fd, 0640);
        goto fail;
    }
    if (rename (fresh, self->path) != 0) {
        int saved = errno;
        if (rename (seg, self->path) == 0)
            fchmod (self->fd, 0640);
        errno = saved;
        goto fail;
    }
    if (s_fsync (self->dir_fd) != 0)
        mesh_err ("ledger: cannot fsync directory %s after a rotation: %s", self->dir,
                  strerror (errno));
    close (self->fd);
    self->fd = fd;
    self->size = 0;
    self->active_first_seq = self->seq + 1;
    self->active_first_ms = 0;
    json_t *record = json_pack ("{s:s, s:s, s:s, s:I, s:I, s:s}", "type", "ledger", "event",
                                "rotate", "previous", seg_name, "previous_first_seq",
                                (json_int_t) first, "previous_last_seq", (json_int_t) last,
                                "previous_sha256", sha);
    int64_t seq = s_write_record (self, record, NULL);
    json_decref (record);
    mesh_info ("ledger: %s: records %" PRId64 "-%" PRId64 " sealed in %s", self->path, first,
               last, seg_name);
    free (seg);
    free (fresh);
    self->rotate_failing = false;
    if (seq > 0 && (self->retain_max_age_s || self->retain_max_bytes))
        mesh_ledger_retain (self);
    return seq > 0 ? 0 : -1;
fail:
    if (!self->rotate_failing)
        mesh_err ("ledger: %s: cannot rotate (%s of %s failed: %s); the log goes on as it is "
                  "and rotation is tried again after the next record", self->path, what,
                  streq (what, "hash") || streq (what, "seal") ? self->path
                  : streq (what, "rename") ? seg : fresh, strerror (errno));
    self->rotate_failing = true;
    if (fd >= 0) {
        close (fd);
        unlink (fresh);
    }
    free (seg);
    free (fresh);
    return -1;
}

//  Rotate when the active log is due (mesh_ledger_set_rotation).  Called at safe points
//  only: after a synced append or commit, never inside a batch.
//  ---------------------------------------------------------------------------------------
//  Retention.  Whole sealed segments go, oldest first.  Before any file is removed,
//  <log>.retained is replaced (tmp, fsync, rename, fsync of the directory) with where the
//  kept log starts: the first kept seq K, the hash of record K-1 and the compact range of
//  leaves 0..K-2, computed by reading the segments to be removed once; then a retention
//  record says the same in the log; then the files are unlinked.  A crash after the
//  .retained file leaves segments the readers skip (segments.h) and the next retention
//  removes.

void
mesh_ledger_set_retention (mesh_ledger_t *self, int64_t max_age_s, uint64_t max_bytes)
{
    assert (self);
    self->retain_max_age_s = max_age_s > 0 ? max_age_s : 0;
    self->retain_max_bytes = max_bytes;
    if (!self->batching && (self->retain_max_age_s || self->retain_max_bytes))
        mesh_ledger_retain (self);
}

//  Feed the lines of the sealed segment SEG to RANGE, checking that they run on from
//  *SEQ_P with prev *HASH (updated to the last record's).  0, or -1 (WHY).
static int
s_retain_read (const mesh_segment_t *seg, mesh_merkle_range_t *range, int64_t *seq_p,
               char *hash, char *why, size_t why_size)
{
    FILE *file = fopen (seg->path, "re");
    if (!file) {
        snprintf (why, why_size, "cannot read %s: %s", seg->name, strerror (errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while (rc == 0 && (n = getline (&line, &cap, file)) > 0) {
        size_t len = (size_t) n;
        long long seq = 0;
        char prev[MESH_AUDIT_HASH_HEX + 1] = "";
        //  The line ends with "hash":"<64 hex>"}\n.
        const char *hex = len > 80 ? line + len - 67 : NULL;
        if (line[len - 1] != '\n'
            || sscanf (line, "{\"seq\":%lld,\"prev\":\"%64[0-9a-f]\"", &seq, prev) != 2
            || !hex || memcmp (hex - 8, "\"hash\":\"", 8) != 0 || hex[64] != '"'
            || hex[65] != '}') {
            snprintf (why, why_size, "%s: a line that is not a whole record", seg->name);
            rc = -1;
        }
        else
        if (seq != *seq_p + 1 || strcmp (prev, hash) != 0) {
            snprintf (why, why_size, "%s: record seq %lld does not follow seq %" PRId64,
                      seg->name, seq, *seq_p);
            rc = -1;
        }
        else {
            mesh_merkle_hash_t leaf;
            mesh_merkle_leaf_hash (line, len - 1, leaf);
            mesh_merkle_range_append (range, leaf);
            memcpy (hash, hex, MESH_AUDIT_HASH_HEX);
            hash[MESH_AUDIT_HASH_HEX] = 0;
            *seq_p = seq;
        }
    }
    if (rc == 0 && ferror (file)) {
        snprintf (why, why_size, "cannot read %s: %s", seg->name, strerror (errno));
        rc = -1;
    }
    free (line);
    fclose (file);
    return rc;
}

//  Replace <log>.retained with START.  0, or -1 (errno).
static int
s_write_retained (mesh_ledger_t *self, const mesh_segments_start_t *start)
{
    char *path = zsys_sprintf ("%s.retained", self->path);
    char *tmp = zsys_sprintf ("%s.retained.tmp", self->path);
    json_t *doc = mesh_segments_start_json (start);
    char *text = doc ? json_dumps (doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref (doc);
    int rc = -1;
    int fd = text ? open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640)
                  : -1;
    if (fd >= 0) {
        size_t len = strlen (text);
        text[len] = 0;
        rc = s_pwrite_all (fd, text, len, 0) == 0 && s_pwrite_all (fd, "\n", 1, len) == 0
             && s_fsync (fd) == 0 ? 0 : -1;
        if (close (fd) != 0)
            rc = -1;
        if (rc == 0)
            rc = rename (tmp, path) == 0 && s_fsync (self->dir_fd) == 0 ? 0 : -1;
        if (rc != 0)
            unlink (tmp);
    }
    free (text);
    free (path);
    free (tmp);
    return rc;
}

int
mesh_ledger_retain (mesh_ledger_t *self)
{
    assert (self);
    if (self->batching || (!self->retain_max_age_s && !self->retain_max_bytes))
        return 0;
    char why[768] = "";
    mesh_segment_t *segs = NULL;
    mesh_segments_start_t start = { 0 };
    json_t *removed = json_array ();
    int n = mesh_segments_list (self->path, &segs, why, sizeof why);
    int rc = -1, first = 0, upto = 0;
    if (n < 0 || mesh_segments_start (self->path, &start, why, sizeof why) < 0)
        goto done;
    //  Segments left by a retention cut short (wholly before the first kept record).
    while (first < n && (first + 1 < n ? segs[first + 1].first_seq
                                       : self->active_first_seq) <= start.first_seq) {
        if (unlink (segs[first].path) == 0)
            mesh_notice ("ledger: %s: removed %s, which an earlier retention had recorded "
                         "as removed", self->path, segs[first].name);
        first++;
    }
    uint64_t total = self->size;
    for (int i = first; i < n; i++) {
        struct stat st;
        if (stat (segs[i].path, &st) == 0)
            total += (uint64_t) st.st_size;
    }
    time_t now = time (NULL);
    for (upto = first; upto < n; upto++) {
        struct stat st;
        if (stat (segs[upto].path, &st) != 0) {
            snprintf (why, sizeof why, "cannot stat %s: %s", segs[upto].name, strerror (errno));
            goto done;
        }
        bool old = self->retain_max_age_s
                   && (int64_t) (now - st.st_mtime) >= self->retain_max_age_s;
        bool big = self->retain_max_bytes && total > self->retain_max_bytes;
        if (!old && !big)
            break;
        total -= (uint64_t) st.st_size;
    }
    if (upto == first) {
        rc = 0;
        goto done;
    }
    //  The tree and chain up to the first record kept, from the segments going.
    int64_t seq = start.first_seq - 1;
    char hash[MESH_AUDIT_HASH_HEX + 1];
    memcpy (hash, start.prev_hash, sizeof hash);
    for (int i = first; i < upto; i++) {
        int64_t from = seq + 1;
        char sha[MESH_SEGMENTS_HEX_SIZE];
        if (s_retain_read (&segs[i], &start.range, &seq, hash, why, sizeof why) != 0)
            goto done;
        if (mesh_segments_sha256 (segs[i].path, sha, NULL) != 0) {
            snprintf (why, sizeof why, "cannot read %s: %s", segs[i].name, strerror (errno));
            goto done;
        }
        json_array_append_new (removed, json_pack ("{s:s, s:I, s:I, s:s}", "file",
                                                   segs[i].name, "first_seq",
                                                   (json_int_t) from, "last_seq",
                                                   (json_int_t) seq, "sha256", sha));
    }
    int64_t kept = upto < n ? segs[upto].first_seq : self->active_first_seq;
    if (seq + 1 != kept || start.range.size != (uint64_t) seq) {
        snprintf (why, sizeof why, "the segments to remove end at seq %" PRId64 " but the "
                  "next file starts at seq %" PRId64, seq, kept);
        goto done;
    }
    start.first_seq = kept;
    memcpy (start.prev_hash, hash, sizeof hash);
    json_array_extend (start.removed, removed);
    if (s_write_retained (self, &start) != 0) {
        snprintf (why, sizeof why, "cannot write %s.retained: %s", self->path,
                  strerror (errno));
        goto done;
    }
    json_t *nodes = json_array ();
    for (int i = 0; i < start.range.count; i++) {
        char b64[64];
        mesh_b64 (start.range.nodes[i], MESH_MERKLE_HASH, b64, sizeof b64);
        json_array_append_new (nodes, json_string (b64));
    }
    json_t *record = json_pack ("{s:s, s:s, s:O, s:I, s:I, s:o}", "type", "ledger", "event",
                                "retention", "removed", removed, "first_kept_seq",
                                (json_int_t) kept, "range_size", (json_int_t) (kept - 1),
                                "range", nodes);
    int64_t written = s_write_record (self, record, NULL);
    json_decref (record);
    //  The files go even if the record could not be written: .retained already says so.
    for (int i = first; i < upto; i++)
        if (unlink (segs[i].path) != 0)
            mesh_err ("ledger: cannot remove %s: %s", segs[i].path, strerror (errno));
    s_fsync (self->dir_fd);
    mesh_info ("ledger: %s: retention removed %d segment(s), records %" PRId64 "-%" PRId64
               "; the log now starts at seq %" PRId64, self->path, upto - first,
               (int64_t) json_integer_value (json_object_get (json_array_get (removed, 0),
                                                              "first_seq")),
               kept - 1, kept);
    rc = written > 0 ? upto - first : -1;
    self->retain_failing = false;
done:
    if (rc < 0 && why[0] && !self->retain_failing) {
        mesh_err ("ledger: %s: retention: %s; nothing was removed", self->path, why);
        self->retain_failing = true;
    }
    json_decref (removed);
    mesh_segments_start_free (&start);
    mesh_segments_free (&segs, n > 0 ? n : 0);
    return rc;
}

static void
s_maybe_rotate (mesh_ledger_t *self)
{
    if (self->batching || self->rotating || self->size == 0
        || self->seq <= self->active_first_seq)
        return;
    bool due = self->rotate_max_bytes && self->size >= self->rotate_max_bytes;
    if (!due && self->rotate_max_age_s && self->active_first_ms > 0)
        due = s_now_ms (CLOCK_REALTIME) - (double) self->active_first_ms
              >= (double) self->rotate_max_age_s * 1000.0;
    if (due)
        mesh_ledger_rotate (self, false);
}

int64_t
mesh_ledger_append (mesh_ledger_t *self, json_t *record)
{
    assert (self);
    if (!json_is_object (record)) {
        mesh_err ("ledger: refused a record that is not a JSON object");
        return -1;
    }
    const char *type = json_string_value (json_object_get (record, "type"));
    if (!type) {
        mesh_err ("ledger: refused a record without a string \"type\"");
        return -1;
    }
    static const char *reserved[] = { "seq", "prev", "ts", "mac", "hash" };
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (json_object_get (record, reserved[i])) {
            mesh_err ("ledger: refused a record of type \"%s\" that sets \"%s\" (the "
                      "ledger's field)", type, reserved[i]);
            return -1;
        }
    if (streq (type, "ledger") || streq (type, "checkpoint")) {
        mesh_err ("ledger: refused a record of the reserved type \"%s\"", type);
        return -1;
    }
    if (self->batching && self->batch_records >= MESH_LEDGER_BATCH_MAX) {
        mesh_err ("ledger: refused a record: a group commit holds at most %d records",
                  MESH_LEDGER_BATCH_MAX);
        return -1;
    }
    const char *refused = s_check_quarantine (type, record);
    if (refused) {
        mesh_err ("ledger: refused a quarantine record: %s", refused);
        return -1;
    }
    bool decision = streq (type, "decision");
    bool outcome = streq (type, "outcome");
    s_entry_t *entry = NULL;
    if (decision || outcome) {
        const char *id = json_string_value (json_object_get (record, "id"));
        if (!id || !*id) {
            mesh_err ("ledger: refused a record of type \"%s\" without a string \"id\"", type);
            return -1;
        }
        entry = (s_entry_t *) zhashx_lookup (self->index, id);
        if (decision && entry) {
            //  A retry (the ack was lost) sends the same decision again: the same seq.  A
            //  different decision for an id already decided, or any for one complete, is
            //  another process's: acknowledging it would let that one act on a decision
            //  that is not the one recorded.
            if (entry->state == MESH_LEDGER_DECIDED && s_same_decision (entry->decision, record))
                return entry->decision_seq;
            mesh_err ("ledger: refused a second, different decision for id %.16s... (seq %"
                      PRId64 " holds the first)", id, entry->decision_seq);
            return -1;
        }
        if (decision && s_unknown_rules (self, record)) {
            mesh_err ("ledger: refused an accepted decision for id %.16s... whose rule set %.12s "
                      "is not one meshd recorded for agent %s", id,
                      json_string_value (json_object_get (record, "rules_hash")) ?: "(none)",
                      json_string_value (json_object_get (record, "agent")) ?: "?");
            return -1;
        }
        if (outcome && !entry) {
            mesh_err ("ledger: refused an outcome for id %.16s... which has no decision", id);
            return -1;
        }
        if (outcome && entry->state == MESH_LEDGER_COMPLETE)
            return entry->outcome_seq;
    }
    json_t *stored = NULL;
    int64_t seq = s_write_record (self, record, &stored);
    if (seq > 0) {
        s_index (self, stored, false);
        json_decref (stored);
        if (!self->batching)
            s_maybe_rotate (self);
    }
    return seq;
}

mesh_ledger_state_t
mesh_ledger_lookup (mesh_ledger_t *self, const char *id, json_t **decision_p)
{
    assert (self);
    s_entry_t *entry = id ? (s_entry_t *) zhashx_lookup (self->index, id) : NULL;
    if (decision_p)
        *decision_p = entry && entry->decision ? json_incref (entry->decision) : NULL;
    if (entry && entry->unproven)
        return MESH_LEDGER_COMPLETE;        //  closed: never carried out from here
    return entry ? entry->state : MESH_LEDGER_NONE;
}

static int
s_by_decision_seq (const void *a, const void *b)
{
    int64_t x = json_integer_value (json_object_get (*(json_t *const *) a, "seq"));
    int64_t y = json_integer_value (json_object_get (*(json_t *const *) b, "seq"));
    return (x > y) - (x < y);
}

json_t *
mesh_ledger_pending (mesh_ledger_t *self, const char *agent)
{
    assert (self);
    json_t *list = json_array ();
    for (s_entry_t *entry = (s_entry_t *) zhashx_first (self->index); entry;
         entry = (s_entry_t *) zhashx_next (self->index)) {
        const char *owner = json_string_value (json_object_get (entry->decision, "agent"));
        if (entry->state == MESH_LEDGER_DECIDED && !entry->unproven && owner
            && strcmp (owner, agent) == 0)
            json_array_append (list, entry->decision);
    }
    size_t n = json_array_size (list);
    json_t **items = malloc ((n ? n : 1) * sizeof *items);
    for (size_t i = 0; i < n; i++)
        items[i] = json_incref (json_array_get (list, i));
    qsort (items, n, sizeof *items, s_by_decision_seq);
    json_array_clear (list);
    for (size_t i = 0; i < n; i++)
        json_array_append_new (list, items[i]);
    free (items);
    return list;
}

int64_t
mesh_ledger_record_seq (mesh_ledger_t *self, const char *id, bool outcome)
{
    assert (self);
    s_entry_t *entry = id ? (s_entry_t *) zhashx_lookup (self->index, id) : NULL;
    if (!entry)
        return 0;
    return outcome ? entry->outcome_seq : entry->decision_seq;
}

int64_t
mesh_ledger_seq (const mesh_ledger_t *self)
{
    assert (self);
    return self->seq;
}

const char *
mesh_ledger_path (const mesh_ledger_t *self)
{
    assert (self);
    return self->path;
}

double
mesh_ledger_last_fsync_ms (const mesh_ledger_t *self)
{
    assert (self);
    return self->last_fsync_ms;
}

void
mesh_ledger_begin (mesh_ledger_t *self)
{
    assert (self);
    if (self->batching)
        return;
    self->batching = true;
    self->batch_records = 0;
    self->batch_size = self->size;
    self->batch_seq = self->seq;
    memcpy (self->batch_hash, self->hash, sizeof self->batch_hash);
    self->batch_range = self->range;
}

int
mesh_ledger_commit (mesh_ledger_t *self)
{
    assert (self);
    if (!self->batching)
        return 0;
    self->batching = false;
    if (self->batch_records == 0) {
        s_undo_finish (self, false);
        return 0;
    }
    double start = s_now_ms (CLOCK_MONOTONIC);
    int rc = s_log_fsync (self);
    self->last_fsync_ms = s_now_ms (CLOCK_MONOTONIC) - start;
    int64_t records = self->batch_records;
    self->batch_records = 0;
    if (rc == 0) {
        s_undo_finish (self, false);
        s_write_head (self);
        s_maybe_rotate (self);
        return 0;
    }
    //  Not one of them is known to be on disk: none was acknowledged, all are taken back.
    mesh_err ("ledger: %s: fsync of records seq %" PRId64 "-%" PRId64 " failed: %s; they are "
              "taken back and refused", self->path, self->batch_seq + 1, self->seq,
              strerror (errno));
    if (ftruncate (self->fd, (off_t) self->batch_size) != 0)
        mesh_err ("ledger: %s: cannot cut back %" PRId64 " unsynced records: %s", self->path,
                  records, strerror (errno));
    self->size = self->batch_size;
    self->seq = self->batch_seq;
    memcpy (self->hash, self->batch_hash, sizeof self->hash);
    self->range = self->batch_range;
    s_undo_finish (self, true);
    return -1;
}

int
mesh_ledger_set_signer (mesh_ledger_t *self, const mesh_note_signer_t *signer,
                        const char *origin)
{
    assert (self && signer && origin);
    char *verifier = mesh_note_verifier_text (&signer->v);
    if (!verifier)
        return -1;
    if (self->verifier && strcmp (self->verifier, verifier) != 0)
        mesh_notice ("ledger: %s: checkpoints were signed by %.80s until now; from here on by "
                     "%.80s (both are in the log's checkpoint records)", self->path,
                     self->verifier, verifier);
    free (self->verifier);
    self->verifier = verifier;
    free (self->origin);
    self->origin = strdup (origin);
    self->signer = *signer;
    self->signing = true;
    if (!self->cp_path) {
        self->cp_path = zsys_sprintf ("%s.checkpoint", self->path);
        self->cp_tmp = zsys_sprintf ("%s.checkpoint.tmp", self->path);
    }
    return 0;
}

//  Replace <log>.checkpoint with NOTE: tmp, fsync, rename, fsync the directory.
static int
s_write_checkpoint_file (mesh_ledger_t *self, const char *note)
{
    int fd = open (self->cp_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return -1;
    int rc = s_pwrite_all (fd, note, strlen (note), 0) == 0 && s_fsync (fd) == 0 ? 0 : -1;
    if (close (fd) != 0)
        rc = -1;
    if (rc == 0 && rename (self->cp_tmp, self->cp_path) == 0 && s_fsync (self->dir_fd) == 0)
        return 0;
    int saved = errno;
    unlink (self->cp_tmp);
    errno = saved;
    return -1;
}

int64_t
mesh_ledger_checkpoint (mesh_ledger_t *self, bool force, char **note_p)
{
    assert (self);
    if (note_p)
        *note_p = NULL;
    if (!self->signing) {
        errno = ENOKEY;
        return -1;
    }
    if (self->batching && mesh_ledger_commit (self) != 0)
        return -1;
    if (!force && self->last_cp_seq == self->seq)
        return 0;                   //  nothing written since the last checkpoint
    assert (self->range.size == (uint64_t) self->seq);
    mesh_merkle_hash_t root;
    mesh_merkle_range_root (&self->range, root);
    char *body = mesh_checkpoint_body (self->origin, self->range.size, root);
    char *note = body ? mesh_note_sign (&self->signer, body) : NULL;
    free (body);
    if (!note) {
        mesh_err ("ledger: cannot sign a checkpoint (origin %.80s)", self->origin);
        return -1;
    }
    if (s_write_checkpoint_file (self, note) != 0) {
        mesh_err ("ledger: cannot write %s: %s", self->cp_path, strerror (errno));
        free (note);
        return -1;
    }
    char root_b64[sodium_base64_ENCODED_LEN (MESH_MERKLE_HASH, sodium_base64_VARIANT_ORIGINAL)];
    mesh_b64 (root, MESH_MERKLE_HASH, root_b64, sizeof root_b64);
    json_t *record = json_pack ("{s:s, s:s, s:I, s:s, s:s, s:s}", "type", "checkpoint",
                                "origin", self->origin, "size", (json_int_t) self->range.size,
                                "root", root_b64, "key", self->verifier, "note", note);
    int64_t size = (int64_t) self->range.size;
    int64_t seq = s_write_record (self, record, NULL);
    json_decref (record);
    if (seq < 0) {
        free (note);
        return -1;
    }
    self->last_cp_seq = seq;
    if (note_p)
        *note_p = note;
    else
        free (note);
    s_maybe_rotate (self);
    return size;
}

int64_t
mesh_ledger_last_checkpoint_seq (const mesh_ledger_t *self)
{
    return self->last_cp_seq;
}

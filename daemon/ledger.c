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
 *    fields...} with `,"hash":"<hex>"}` put where the closing brace was; hex is the
 *    SHA-256 of the bytes before it.  The hash is over bytes, not over a re-serialised
 *    object, so verifying never depends on how a JSON library formats numbers.
 *  - After the log's fsync, <log>.head is replaced by write-temp + fsync + rename +
 *    fsync of the directory.  A crash between the two leaves the head one record
 *    behind, which verify accepts; a head ahead of the log means acknowledged records
 *    are gone, which both verify and open refuse.
 *  - On open the whole chain is checked with the same scanner `meshctl audit verify`
 *    uses (common/audit.c).  Only a damaged LAST line - what a crash mid-write leaves -
 *    is repaired, and the repair is itself a record.  Anything else stops the daemon
 *    rather than write new history on top of a broken one.
 *
 *  The index id -> state makes decisions and outcomes idempotent per id: agents retry
 *  after crashes and lost replies, and a retried decision must not become a second
 *  record.  Decision records stay in memory only until their outcome arrives.
 */
#include "ledger.h"
#include "audit.h"
#include "log.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <sodium.h>
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
    json_t *decision;               //  the stored record while DECIDED; NULL once complete
} s_entry_t;

struct _mesh_ledger_t {
    char *path;
    char *head_path;
    char *head_tmp;
    int fd;                         //  the log, locked with flock
    int dir_fd;                     //  its directory, for fsync after create and rename
    uint64_t size;                  //  bytes of valid records = where the next one goes
    int64_t seq;                    //  last seq written
    char hash[MESH_AUDIT_HASH_HEX + 1];   //  its hash
    double last_fsync_ms;
    bool head_failing;              //  the head file could not be written (logged once)
    zhashx_t *index;                //  id -> s_entry_t
};

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

static int
s_fsync (int fd)
{
    int rc;
    do
        rc = fsync (fd);
    while (rc != 0 && errno == EINTR);
    return rc;
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
        mesh_err ("ledger: cannot update %s: %s (records stay durable; a removed tail would "
                  "go undetected until it is written again)", self->head_path,
                  strerror (errno));
    self->head_failing = true;
    return -1;
}

//  Build, write and fsync the next record from RECORD's fields.  Returns the seq, or -1.
//  If STORED_P, *stored_p is the record as written (caller owns).
static int64_t
s_write_record (mesh_ledger_t *self, json_t *record, json_t **stored_p)
{
    int64_t seq = self->seq + 1;
    json_t *obj = json_object ();
    json_object_set_new (obj, "seq", json_integer (seq));
    json_object_set_new (obj, "prev", json_string (self->hash));
    json_object_set_new (obj, "ts", json_integer ((json_int_t) s_now_ms (CLOCK_REALTIME)));
    const char *key;
    json_t *value;
    json_object_foreach (record, key, value)
        json_object_set_new (obj, key, json_deep_copy (value));

    char *text = json_dumps (obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    size_t text_len = text ? strlen (text) : 0;
    if (!text || text_len < 2 || text[text_len - 1] != '}') {
        mesh_err ("ledger: cannot serialise record seq %" PRId64, seq);
        free (text);
        json_decref (obj);
        return -1;
    }
    //  PREFIX = the object without its closing brace; the line is PREFIX + hash field.
    size_t prefix_len = text_len - 1;
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256 (digest, (const unsigned char *) text, prefix_len);
    char hex[MESH_AUDIT_HASH_HEX + 1];
    sodium_bin2hex (hex, sizeof hex, digest, sizeof digest);

    size_t line_len = prefix_len + 9 + MESH_AUDIT_HASH_HEX + 3;
    char *line = malloc (line_len + 1);
    assert (line);
    memcpy (line, text, prefix_len);
    snprintf (line + prefix_len, line_len + 1 - prefix_len, ",\"hash\":\"%s\"}\n", hex);
    free (text);

    int rc = s_pwrite_all (self->fd, line, line_len, self->size);
    const char *what = "write";
    if (rc == 0) {
        double start = s_now_ms (CLOCK_MONOTONIC);
        rc = s_fsync (self->fd);
        self->last_fsync_ms = s_now_ms (CLOCK_MONOTONIC) - start;
        what = "fsync";
    }
    free (line);
    if (rc != 0) {
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
    self->size += line_len;
    self->seq = seq;
    memcpy (self->hash, hex, sizeof hex);
    s_write_head (self);
    if (stored_p) {
        json_object_set_new (obj, "hash", json_string (hex));
        *stored_p = obj;
    }
    else
        json_decref (obj);
    return seq;
}

//  Index one record (on open and after each append).  DECISION_SEQ etc from RECORD.
static void
s_index (mesh_ledger_t *self, json_t *record)
{
    const char *type = json_string_value (json_object_get (record, "type"));
    const char *id = json_string_value (json_object_get (record, "id"));
    int64_t seq = json_integer_value (json_object_get (record, "seq"));
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
        entry->decision = json_incref (record);
        zhashx_insert (self->index, id, entry);
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
            json_decref (entry->decision);
            entry->decision = NULL;
        }
    }
}

typedef struct {
    mesh_ledger_t *self;
    int64_t mark_seq;               //  the head file's seq
    char mark_hash[MESH_AUDIT_HASH_HEX + 1];
} s_open_t;

static int
s_open_fn (json_t *record, const char *hash, void *arg)
{
    s_open_t *open_ = (s_open_t *) arg;
    s_index (open_->self, record);
    if (json_integer_value (json_object_get (record, "seq")) == open_->mark_seq)
        memcpy (open_->mark_hash, hash, sizeof open_->mark_hash);
    return 0;
}

//  Read and check the existing chain; repair a damaged last line.  0, or -1 (logged).
static int
s_load (mesh_ledger_t *self)
{
    int64_t head_seq = -1;
    char head_hash[MESH_AUDIT_HASH_HEX + 1] = "";
    char why[128];
    int head = mesh_audit_read_head (self->path, &head_seq, head_hash, why);
    if (head < 0) {
        mesh_err ("ledger: %s %s; refusing to open %s (inspect with meshctl audit verify)",
                  self->head_path, why, self->path);
        return -1;
    }
    int fd = dup (self->fd);
    FILE *file = fd >= 0 ? fdopen (fd, "r") : NULL;
    if (!file) {
        mesh_err ("ledger: cannot read %s: %s", self->path, strerror (errno));
        if (fd >= 0)
            close (fd);
        return -1;
    }
    s_open_t open_ = { .self = self, .mark_seq = head == 1 ? head_seq : -1 };
    memset (open_.mark_hash, '0', MESH_AUDIT_HASH_HEX);
    mesh_audit_scan_t scan;
    int rc = mesh_audit_scan (file, &scan, s_open_fn, &open_);
    fclose (file);
    if (rc != 0)
        return -1;                  //  logged by the scanner
    if (scan.bad_line && !(scan.bad_content && scan.bad_is_last)) {
        mesh_err ("ledger: %s: record seq %" PRId64 " (line %" PRId64 "): %s; refusing to "
                  "open: history is never rewritten (inspect with meshctl audit verify)",
                  self->path, scan.bad_seq, scan.bad_line, scan.why);
        return -1;
    }
    if (head == 1 && head_seq > scan.last_seq) {
        mesh_err ("ledger: %s ends at seq %" PRId64 " but %s says seq %" PRId64 ": "
                  "acknowledged records are missing; refusing to open", self->path,
                  scan.last_seq, self->head_path, head_seq);
        return -1;
    }
    if (head == 1 && strcmp (open_.mark_hash, head_hash) != 0) {
        mesh_err ("ledger: %s: record seq %" PRId64 " (line %" PRId64 ") has another hash "
                  "than %s names; refusing to open", self->path, head_seq, head_seq,
                  self->head_path);
        return -1;
    }
    self->seq = scan.last_seq;
    memcpy (self->hash, scan.last_hash, sizeof self->hash);
    self->size = scan.good_bytes;

    struct stat st;
    if (fstat (self->fd, &st) != 0) {
        mesh_err ("ledger: cannot stat %s: %s", self->path, strerror (errno));
        return -1;
    }
    if ((uint64_t) st.st_size != scan.good_bytes) {
        //  A damaged last line: what a crash in the middle of a write leaves behind.
        uint64_t dropped = (uint64_t) st.st_size - scan.good_bytes;
        char reason[320];
        snprintf (reason, sizeof reason, "line %" PRId64 ": %s", scan.bad_line, scan.why);
        mesh_warn ("ledger: %s: dropping %" PRIu64 " bytes of a damaged last record (%s)",
                   self->path, dropped, reason);
        if (ftruncate (self->fd, (off_t) scan.good_bytes) != 0 || s_fsync (self->fd) != 0) {
            mesh_err ("ledger: cannot truncate %s: %s", self->path, strerror (errno));
            return -1;
        }
        json_t *repair = json_pack ("{s:s, s:s, s:I, s:s}", "type", "ledger", "event",
                                    "repair", "dropped_bytes", (json_int_t) dropped,
                                    "reason", reason);
        int64_t seq = s_write_record (self, repair, NULL);
        json_decref (repair);
        if (seq < 0)
            return -1;
    }
    return 0;
}

mesh_ledger_t *
mesh_ledger_open (const char *path)
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
    self->index = zhashx_new ();
    assert (self->path && self->head_path && self->head_tmp && self->index);
    zhashx_set_destructor (self->index, s_entry_destroy);
    memset (self->hash, '0', MESH_AUDIT_HASH_HEX);

    char *copy = strdup (path);
    assert (copy);
    const char *dir = dirname (copy);
    if (s_make_dirs (dir) != 0) {
        mesh_err ("ledger: cannot create directory %s: %s", dir, strerror (errno));
        goto fail;
    }
    self->dir_fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (self->dir_fd < 0) {
        mesh_err ("ledger: cannot open directory %s: %s", dir, strerror (errno));
        goto fail;
    }
    self->fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (self->fd < 0) {
        mesh_err ("ledger: cannot open %s: %s", path, strerror (errno));
        goto fail;
    }
    if (flock (self->fd, LOCK_EX | LOCK_NB) != 0) {
        mesh_err ("ledger: %s is locked by another writer: %s", path, strerror (errno));
        goto fail;
    }
    if (s_fsync (self->dir_fd) != 0) {
        mesh_err ("ledger: cannot fsync directory %s: %s", dir, strerror (errno));
        goto fail;
    }
    if (s_load (self) != 0)
        goto fail;
    json_t *event = json_pack ("{s:s, s:s}", "type", "ledger", "event", "open");
    int64_t seq = s_write_record (self, event, NULL);
    json_decref (event);
    if (seq < 0)
        goto fail;
    mesh_info ("ledger: %s open at seq %" PRId64, path, seq);
    free (copy);
    return self;
fail:
    free (copy);
    mesh_ledger_destroy (&self);
    return NULL;
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
    zhashx_destroy (&self->index);
    free (self->path);
    free (self->head_path);
    free (self->head_tmp);
    free (self);
    *self_p = NULL;
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
    static const char *reserved[] = { "seq", "prev", "ts", "hash" };
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (json_object_get (record, reserved[i])) {
            mesh_err ("ledger: refused a record of type \"%s\" that sets \"%s\" (the "
                      "ledger's field)", type, reserved[i]);
            return -1;
        }
    if (streq (type, "ledger")) {
        mesh_err ("ledger: refused a record of the reserved type \"ledger\"");
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
        if (decision && entry)
            return entry->decision_seq;
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
        s_index (self, stored);
        json_decref (stored);
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
        if (entry->state == MESH_LEDGER_DECIDED && owner && strcmp (owner, agent) == 0)
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

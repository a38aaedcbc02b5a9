/*  ship - the decision log, produced to Kafka after its fsync.
 *
 *  Why a thread that reads the file back, and not a producer call beside each append:
 *  the main loop must never wait on a broker, and what is shipped must be exactly what
 *  is on disk.  Reading the log itself gives both: the bytes produced are the bytes a
 *  verifier reads, the durable seq the main loop hands over (mesh_ship_notify) is the
 *  only coupling, and while the broker is away nothing accumulates in memory - the log
 *  is the buffer, and the reader simply stays where it is.
 *
 *  Delivery.  The producer is idempotent (acks=all; librdkafka numbers each message so
 *  that a retry within one producer session is written once and in order).  A ring of
 *  at most max_in_flight records tracks what was produced and not yet reported; the
 *  acknowledged seq advances only over an unbroken run of successful reports from its
 *  front.  A failed report (a message timeout while the broker is down) stops the
 *  advance; once every report of the ring is in, the reader goes back to the record
 *  after the acknowledged seq and produces again, after a backoff.  A fatal producer
 *  error ends the session: a new producer, the same rewind.  So across sessions and
 *  restarts a record may be produced twice (its key, the seq, says which), never skipped.
 *
 *  The state file holds the acknowledged seq and the byte offset of that record, so a
 *  restart seeks straight there (checked: the line at the offset must carry that seq;
 *  otherwise the log is scanned from its start).  It is written at most once a second
 *  and at stop, by tmp + fsync + rename: after a SIGKILL at most that second's
 *  acknowledged records are produced again.
 *
 *  All records of one source go to one partition (murmur2 of the source name, the
 *  partition Java's default partitioner gives a record keyed by it), so a collector
 *  reads each host's log in seq order.
 */
#include "ship.h"
#include "segments.h"
#include "kafka_conf.h"
#include "log.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_STATE_FILE        "audit-ship.json"
#define S_STATE_MAX         4096        //  a larger state file is not ours
#define S_CHUNK             65536       //  the reader's first buffer and read size
#define S_SAVE_MS           1000        //  state file written at most this often
#define S_BACKOFF_MIN_MS    500
#define S_BACKOFF_MAX_MS    30000
#define S_MESSAGE_TIMEOUT   "30000"     //  a report per message within this, failed or not
#define S_IDLE_WAIT_MS      200

//  --------------------------------------------------------------------------
//  Helpers

static int64_t
s_mono_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
s_wall_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

//  Digits at TEXT (at most 18, no sign) into *VALUE; the count of digits, 0 if none.
static size_t
s_digits (const char *text, size_t length, int64_t *value)
{
    size_t i = 0;
    int64_t v = 0;
    while (i < length && i < 18 && text [i] >= '0' && text [i] <= '9')
        v = v * 10 + (text [i++] - '0');
    *value = v;
    return i;
}

//  --------------------------------------------------------------------------
//  The reader: the log's sealed segments (<log>.seg-<first seq>, audit/segments.h) in
//  order, then the active log.  It reads one file at a time; at the end of a sealed
//  segment it goes on with the next file; at the end of the active log it checks
//  whether the ledger rotated it meanwhile (the path names another file): the file it
//  holds is then sealed, so it reads it to its end and goes on with the new active log.

struct _mesh_ship_reader_t {
    char *path;                         //  the active log's path
    char *cur;                          //  the file being read (owned)
    int fd;
    bool active;                        //  cur is the active log (as far as we know)
    int64_t cur_first;                  //  seq of the first record read from cur (0: none yet)
    int64_t cur_name_seq;               //  a segment: the first seq its name says
    char *buf;                          //  bytes of the file from buf_offset
    size_t size;                        //  allocated
    size_t start, end;                  //  unread: buf[start..end)
    int64_t buf_offset;                 //  file offset of buf[0]
};

static void
s_reader_at (mesh_ship_reader_t *self, int64_t offset)
{
    self->start = self->end = 0;
    self->buf_offset = offset;
}

//  Read PATH from its start (ACTIVE: it is the active log; NAME_SEQ: a segment's first
//  seq).  0, or -1 with WHY.
static int
s_reader_open (mesh_ship_reader_t *self, const char *path, bool active, int64_t name_seq,
               char *why, size_t size)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf (why, size, "cannot open %s: %s", path, strerror (errno));
        return -1;
    }
    char *copy = strdup (path);
    if (!copy) {
        close (fd);
        snprintf (why, size, "out of memory");
        return -1;
    }
    if (self->fd >= 0)
        close (self->fd);
    free (self->cur);
    self->fd = fd;
    self->cur = copy;
    self->active = active;
    self->cur_first = 0;
    self->cur_name_seq = name_seq;
    s_reader_at (self, 0);
    return 0;
}

//  The file holding SEQ (0: the first file): the last segment whose first seq is at most
//  SEQ, else the active log.  AFTER_SEQ > 0: instead, the first segment whose first seq
//  is larger than AFTER_SEQ, else the active log.  0 or -1 (WHY).
static int
s_reader_pick (mesh_ship_reader_t *self, int64_t seq, int64_t after_seq, char *why,
               size_t size)
{
    mesh_segment_t *segs = NULL;
    int count = mesh_segments_list (self->path, &segs, why, size);
    if (count < 0)
        return -1;
    int pick = -1;
    for (int i = 0; i < count; i++) {
        if (after_seq > 0) {
            if (segs [i].first_seq > after_seq) {
                pick = i;
                break;
            }
        }
        else
        if (seq == 0 ? i == 0 : segs [i].first_seq <= seq)
            pick = i;
    }
    //  SEQ before every segment (retention removed the older ones): the earliest kept.
    if (pick < 0 && after_seq == 0 && count > 0)
        pick = 0;
    //  SEQ in the active log rather than the last segment: its first record says so.
    int64_t active_first = 0, ts;
    if (pick >= 0 && after_seq == 0 && seq > 0
        && mesh_segments_first (self->path, &active_first, &ts) == 1 && active_first <= seq)
        pick = -1;
    int rc = pick >= 0 ? s_reader_open (self, segs [pick].path, false, segs [pick].first_seq,
                                        why, size)
                       : s_reader_open (self, self->path, true, 0, why, size);
    mesh_segments_free (&segs, count);
    return rc;
}

mesh_ship_reader_t *
mesh_ship_reader_new (const char *log_path, char *why, size_t size)
{
    mesh_ship_reader_t *self = calloc (1, sizeof *self);
    if (self) {
        self->path = strdup (log_path);
        self->buf = malloc (S_CHUNK);
        self->size = S_CHUNK;
        self->fd = -1;
    }
    if (!self || !self->path || !self->buf) {
        snprintf (why, size, "out of memory");
        mesh_ship_reader_destroy (&self);
        return NULL;
    }
    if (s_reader_pick (self, 0, 0, why, size) != 0)
        mesh_ship_reader_destroy (&self);
    return self;
}

void
mesh_ship_reader_destroy (mesh_ship_reader_t **self_p)
{
    assert (self_p);
    mesh_ship_reader_t *self = *self_p;
    if (!self)
        return;
    if (self->fd >= 0)
        close (self->fd);
    free (self->path);
    free (self->cur);
    free (self->buf);
    free (self);
    *self_p = NULL;
}

//  {"seq":N,... and "ts":T among the first bytes (the ledger writes seq, prev, ts first).
static int
s_record_head (const char *line, size_t length, int64_t *seq_p, int64_t *ts_p)
{
    static const char seq_key [] = "{\"seq\":";
    size_t klen = sizeof seq_key - 1;
    if (length < klen + 2 || memcmp (line, seq_key, klen))
        return -1;
    size_t n = s_digits (line + klen, length - klen, seq_p);
    if (n == 0 || *seq_p <= 0 || klen + n >= length || line [klen + n] != ',')
        return -1;
    *ts_p = 0;
    static const char ts_key [] = ",\"ts\":";
    size_t window = length < 256 ? length : 256;
    const char *ts = memmem (line, window, ts_key, sizeof ts_key - 1);
    if (ts) {
        ts += sizeof ts_key - 1;
        s_digits (ts, (size_t) (line + length - ts), ts_p);
    }
    return 0;
}

//  At the end of the file being read: go on with the next one if there is one.  1 moved
//  on, 0 nothing follows yet, -1 (WHY).
static int
s_reader_advance (mesh_ship_reader_t *self, char *why, size_t size)
{
    if (self->active) {
        //  Rotated meanwhile?  Then the file we hold is sealed: read it to its end first.
        struct stat held, now;
        if (fstat (self->fd, &held) != 0 || stat (self->path, &now) != 0
            || (held.st_dev == now.st_dev && held.st_ino == now.st_ino))
            return 0;
        self->active = false;
        return 1;                       //  read again: bytes written before the rename
    }
    if (self->end > self->start) {
        snprintf (why, size, "%s ends in the middle of a record", self->cur);
        return -1;
    }
    int64_t after = self->cur_name_seq > 0 ? self->cur_name_seq : self->cur_first;
    if (after <= 0) {
        snprintf (why, size, "%s holds no record", self->cur);
        return -1;
    }
    return s_reader_pick (self, 0, after, why, size) == 0 ? 1 : -1;
}

int
mesh_ship_reader_next (mesh_ship_reader_t *self, const char **line_p, size_t *length_p,
                       int64_t *seq_p, int64_t *ts_p, int64_t *offset_p, char *why, size_t size)
{
    assert (self);
    bool rotated_read = false;          //  one more read of a file found rotated
    while (true) {
        char *from = self->buf + self->start;
        char *nl = memchr (from, '\n', self->end - self->start);
        if (nl) {
            size_t length = (size_t) (nl - from);
            int64_t offset = self->buf_offset + (int64_t) self->start;
            if (s_record_head (from, length, seq_p, ts_p) != 0) {
                snprintf (why, size, "%s: the line at byte %" PRId64 " is not a record (it does "
                          "not begin with {\"seq\":N,)", self->cur, offset);
                return -1;
            }
            if (self->cur_first == 0)
                self->cur_first = *seq_p;
            self->start += length + 1;
            *line_p = from;
            *length_p = length;
            *offset_p = offset;
            return 1;
        }
        //  No whole line: keep the partial one, read more.
        if (self->start > 0) {
            memmove (self->buf, self->buf + self->start, self->end - self->start);
            self->buf_offset += (int64_t) self->start;
            self->end -= self->start;
            self->start = 0;
        }
        if (self->end == self->size) {
            if (self->size > MESH_SHIP_LINE_MAX) {
                snprintf (why, size, "%s: the record at byte %" PRId64 " is longer than %u "
                          "bytes", self->cur, self->buf_offset, MESH_SHIP_LINE_MAX);
                return -1;
            }
            char *bigger = realloc (self->buf, self->size * 2);
            if (!bigger) {
                snprintf (why, size, "out of memory reading %s", self->cur);
                return -1;
            }
            self->buf = bigger;
            self->size *= 2;
        }
        ssize_t got = pread (self->fd, self->buf + self->end, self->size - self->end,
                             self->buf_offset + (off_t) self->end);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            snprintf (why, size, "cannot read %s: %s", self->cur, strerror (errno));
            return -1;
        }
        if (got > 0) {
            self->end += (size_t) got;
            continue;
        }
        bool was_active = self->active;
        int moved = s_reader_advance (self, why, size);
        if (moved <= 0)
            return moved;
        if (was_active && !rotated_read) {
            rotated_read = true;        //  the held file, now sealed: to its end
            continue;
        }
        rotated_read = false;
    }
}

void
mesh_ship_reader_forget (mesh_ship_reader_t *self)
{
    assert (self);
    s_reader_at (self, self->buf_offset + (int64_t) self->start);
}

int
mesh_ship_reader_seek (mesh_ship_reader_t *self, int64_t seq, int64_t offset, char *why,
                       size_t size)
{
    assert (self);
    if (s_reader_pick (self, seq, 0, why, size) != 0)
        return -1;
    if (seq == 0)
        return 0;
    const char *line;
    size_t length;
    int64_t found, ts, at;
    //  OFFSET is a hint within the active log: checked.
    if (offset > 0 && self->active) {
        s_reader_at (self, offset);
        if (mesh_ship_reader_next (self, &line, &length, &found, &ts, &at, why, size) == 1
            && found == seq && self->active)
            return 0;
        if (s_reader_pick (self, seq, 0, why, size) != 0)
            return -1;
    }
    bool first = true;
    while (true) {
        int64_t before = self->buf_offset + (int64_t) self->start;
        char *before_file = strdup (self->cur);
        bool before_active = self->active;
        int rc = mesh_ship_reader_next (self, &line, &length, &found, &ts, &at, why, size);
        if (rc < 0) {
            free (before_file);
            return -1;
        }
        if (rc == 1 && found > seq && first) {
            //  The log starts after SEQ: what came before was removed by retention.
            mesh_notice ("ship: records up to seq %" PRId64 " are no longer in the log "
                         "(retention); shipping goes on from seq %" PRId64, found - 1, found);
            int reopened = strcmp (before_file, self->cur) == 0
                           ? 0 : s_reader_open (self, before_file, before_active, 0, why, size);
            free (before_file);
            if (reopened != 0)
                return -1;
            s_reader_at (self, before);
            return 0;
        }
        free (before_file);
        if (rc == 0 || found > seq) {
            snprintf (why, size, "%s holds no record seq %" PRId64, self->path, seq);
            s_reader_pick (self, 0, 0, why + strlen (why), 0);
            return -1;
        }
        first = false;
        if (found == seq)
            return 0;
    }
}

int
mesh_ship_reader_first_hash (mesh_ship_reader_t *self, char *hex, char *why, size_t size)
{
    assert (self);
    hex [0] = 0;
    mesh_ship_reader_t *first = mesh_ship_reader_new (self->path, why, size);
    if (!first)
        return -1;
    const char *line;
    size_t length;
    int64_t seq, ts, at;
    int rc = mesh_ship_reader_next (first, &line, &length, &seq, &ts, &at, why, size);
    static const char key [] = ",\"hash\":\"";
    size_t klen = sizeof key - 1;
    if (rc == 1 && seq > 1)
        rc = 0;                         //  record 1 is gone (retention): "" (not known)
    else
    if (rc == 1) {
        if (length < klen + 66 || memcmp (line + length - 66 - klen, key, klen)
            || line [length - 2] != '"' || line [length - 1] != '}') {
            snprintf (why, size, "%s: its first record does not end with \"hash\"", first->cur);
            rc = -1;
        }
        else {
            memcpy (hex, line + length - 66, 64);
            hex [64] = 0;
            rc = 0;
        }
    }
    mesh_ship_reader_destroy (&first);
    return rc < 0 ? -1 : 0;
}

//  --------------------------------------------------------------------------
//  The state file

int
mesh_ship_state_read (const char *path, mesh_ship_state_t *state, char *why, size_t size)
{
    memset (state, 0, sizeof *state);
    struct stat st;
    if (stat (path, &st) != 0) {
        if (errno == ENOENT)
            return 0;
        snprintf (why, size, "cannot read %s: %s", path, strerror (errno));
        return -1;
    }
    if (!S_ISREG (st.st_mode) || st.st_size > S_STATE_MAX) {
        snprintf (why, size, "%s: not a regular file of at most %d bytes", path, S_STATE_MAX);
        return -1;
    }
    json_error_t error;
    json_t *root = json_load_file (path, JSON_REJECT_DUPLICATES, &error);
    if (!root) {
        snprintf (why, size, "%s: not JSON: %s", path, error.text);
        return -1;
    }
    json_t *seq = json_object_get (root, "seq"), *offset = json_object_get (root, "offset");
    json_t *topic = json_object_get (root, "topic"), *first = json_object_get (root, "first");
    int rc = -1;
    if (!json_is_integer (seq) || json_integer_value (seq) < 0 || !json_is_integer (offset)
        || json_integer_value (offset) < 0 || !json_is_string (topic)
        || json_string_length (topic) >= sizeof state->topic || !json_is_string (first)
        || (json_string_length (first) != 64 && json_string_length (first) != 0))
        snprintf (why, size, "%s: expected {\"seq\":N,\"offset\":N,\"topic\":T,\"first\":H}",
                  path);
    else {
        state->seq = json_integer_value (seq);
        state->offset = json_integer_value (offset);
        snprintf (state->topic, sizeof state->topic, "%s", json_string_value (topic));
        snprintf (state->first, sizeof state->first, "%s", json_string_value (first));
        rc = 1;
    }
    json_decref (root);
    return rc;
}

int
mesh_ship_state_write (const char *path, const mesh_ship_state_t *state, char *why,
                       size_t size)
{
    char tmp [PATH_MAX], text [512];
    int length = snprintf (text, sizeof text,
                           "{\"seq\":%" PRId64 ",\"offset\":%" PRId64 ",\"topic\":\"%s\","
                           "\"first\":\"%s\"}\n", state->seq, state->offset, state->topic,
                           state->first);
    if (length < 0 || (size_t) length >= sizeof text
        || snprintf (tmp, sizeof tmp, "%s.tmp", path) >= (int) sizeof tmp) {
        snprintf (why, size, "%s: name or state too long", path);
        return -1;
    }
    int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf (why, size, "cannot write %s: %s", tmp, strerror (errno));
        return -1;
    }
    bool good = write (fd, text, (size_t) length) == length && fsync (fd) == 0;
    int saved = errno;
    good = close (fd) == 0 && good;
    if (!good || rename (tmp, path) != 0) {
        snprintf (why, size, "cannot write %s: %s", path, strerror (good ? errno : saved));
        unlink (tmp);
        return -1;
    }
    char copy [PATH_MAX];
    snprintf (copy, sizeof copy, "%s", path);
    int dfd = open (dirname (copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync (dfd);
        close (dfd);
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  The shipper

typedef enum { S_PENDING, S_DELIVERED, S_FAILED } s_report_t;

typedef struct {
    int64_t seq, ts, offset;
    s_report_t report;
} s_flight_t;

struct _mesh_ship_t {
    //  Set at new, read-only afterwards.
    char *topic, *brokers, *source, *log_path, *state_path;
    int max_in_flight;
    rd_kafka_conf_t *conf;              //  the template every producer session copies
    pthread_t thread;
    bool started;
    //  Shared with the main thread, under mutex.
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    bool stop;
    int flush_ms;
    int64_t durable;
    struct {
        int64_t shipped, in_flight, oldest_ts, produced, acknowledged, failed, sessions;
        char broker [16];
        char last_error [512];
    } shown;
    //  The thread's own.
    rd_kafka_t *rk;
    mesh_ship_reader_t *reader;
    s_flight_t *ring;                   //  consecutive seqs from ring[head]
    size_t head, count;
    int64_t next_seq;                   //  the next to produce
    mesh_ship_state_t state;            //  what is acknowledged
    int64_t saved_seq, saved_at;
    int64_t oldest_ts, oldest_seq;      //  ts of a record read: the oldest unshipped one
                                        //  when oldest_seq is state.seq + 1
    bool rewind, fatal;
    int64_t backoff, retry_at;
    int64_t produced, acknowledged, failed, sessions;
    char broker [16];
    char last_error [512], logged_error [512];
};

static void
s_error (mesh_ship_t *self, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

//  Remember the last error for status; log it when it differs from the last one logged.
static void
s_error (mesh_ship_t *self, const char *fmt, ...)
{
    va_list args;
    va_start (args, fmt);
    vsnprintf (self->last_error, sizeof self->last_error, fmt, args);
    va_end (args);
    if (strcmp (self->last_error, self->logged_error)) {
        mesh_warn ("ship: %s", self->last_error);
        snprintf (self->logged_error, sizeof self->logged_error, "%s", self->last_error);
    }
}

static int32_t
s_partitioner (const rd_kafka_topic_t *rkt, const void *key, size_t keylen, int32_t count,
               void *rkt_opaque, void *msg_opaque)
{
    const mesh_ship_t *self = rkt_opaque;
    return rd_kafka_msg_partitioner_murmur2 (rkt, self->source, strlen (self->source), count,
                                             rkt_opaque, msg_opaque);
}

static s_flight_t *
s_flight (mesh_ship_t *self, int64_t seq)
{
    if (!self->count)
        return NULL;
    int64_t first = self->ring [self->head].seq;
    if (seq < first || seq >= first + (int64_t) self->count)
        return NULL;
    return &self->ring [(self->head + (size_t) (seq - first)) % (size_t) self->max_in_flight];
}

static void
s_delivered (rd_kafka_t *rk, const rd_kafka_message_t *message, void *opaque)
{
    mesh_ship_t *self = opaque;
    int64_t seq = (int64_t) (intptr_t) message->_private;
    s_flight_t *flight = s_flight (self, seq);
    if (message->err) {
        self->failed++;
        if (message->err != RD_KAFKA_RESP_ERR__PURGE_QUEUE
            && message->err != RD_KAFKA_RESP_ERR__PURGE_INFLIGHT) {
            snprintf (self->broker, sizeof self->broker, "down");
            s_error (self, "record seq %" PRId64 " not delivered to %s: %s", seq, self->topic,
                     rd_kafka_err2str (message->err));
        }
    }
    else {
        self->acknowledged++;
        snprintf (self->broker, sizeof self->broker, "up");
    }
    if (flight)
        flight->report = message->err ? S_FAILED : S_DELIVERED;
}

static void
s_client_error (rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    mesh_ship_t *self = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char text [256];
        rd_kafka_fatal_error (rk, text, sizeof text);
        self->fatal = true;
        s_error (self, "producer: fatal: %s (a new producer session starts)", text);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__TRANSPORT)
        snprintf (self->broker, sizeof self->broker, "down");
    s_error (self, "producer: %s", reason);
}

static int
s_session_open (mesh_ship_t *self)
{
    char err [512];
    rd_kafka_conf_t *conf = rd_kafka_conf_dup (self->conf);
    rd_kafka_conf_set_opaque (conf, self);
    rd_kafka_conf_set_dr_msg_cb (conf, s_delivered);
    rd_kafka_conf_set_error_cb (conf, s_client_error);
    //  Topic-level settings go here: a default topic conf replaces any set globally.
    rd_kafka_topic_conf_t *tconf = rd_kafka_topic_conf_new ();
    if (rd_kafka_topic_conf_set (tconf, "acks", "all", err, sizeof err) != RD_KAFKA_CONF_OK
        || rd_kafka_topic_conf_set (tconf, "message.timeout.ms", S_MESSAGE_TIMEOUT, err,
                                    sizeof err) != RD_KAFKA_CONF_OK) {
        rd_kafka_topic_conf_destroy (tconf);
        rd_kafka_conf_destroy (conf);
        s_error (self, "cannot set up the producer: %s", err);
        return -1;
    }
    rd_kafka_topic_conf_set_opaque (tconf, self);
    rd_kafka_topic_conf_set_partitioner_cb (tconf, s_partitioner);
    rd_kafka_conf_set_default_topic_conf (conf, tconf);
    self->rk = rd_kafka_new (RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!self->rk) {
        rd_kafka_conf_destroy (conf);
        s_error (self, "cannot create the producer: %s", err);
        return -1;
    }
    self->sessions++;
    self->fatal = false;
    snprintf (self->broker, sizeof self->broker, "connecting");
    return 0;
}

//  End the producer session: what is queued or in flight is purged (its reports come in
//  as failures), then the ring is given up and the reader goes back.
static void
s_session_close (mesh_ship_t *self)
{
    if (!self->rk)
        return;
    rd_kafka_purge (self->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_flush (self->rk, 1000);
    rd_kafka_destroy (self->rk);
    self->rk = NULL;
    for (size_t i = 0; i < self->count; i++) {     //  reports the session will never give
        s_flight_t *flight = &self->ring [(self->head + i) % (size_t) self->max_in_flight];
        if (flight->report == S_PENDING)
            flight->report = S_FAILED;
    }
    snprintf (self->broker, sizeof self->broker, "closed");
}

//  Back to the record after the acknowledged one: the ring is emptied (every report is in,
//  or the session that owed them is gone) and the reader repositioned.
static void
s_rewind (mesh_ship_t *self)
{
    char why [512];
    self->head = self->count = 0;
    self->next_seq = self->state.seq + 1;
    self->rewind = false;
    if (mesh_ship_reader_seek (self->reader, self->state.seq, self->state.offset, why,
                               sizeof why) != 0) {
        s_error (self, "%s", why);
        self->rewind = true;            //  tried again after the backoff
    }
    self->backoff = self->backoff ? self->backoff * 2 : S_BACKOFF_MIN_MS;
    if (self->backoff > S_BACKOFF_MAX_MS)
        self->backoff = S_BACKOFF_MAX_MS;
    self->retry_at = s_mono_ms () + self->backoff;
}

//  Produce what is durable and not yet produced, while the ring has room.  False if the
//  log showed nothing new (the next round waits).
static bool
s_fill (mesh_ship_t *self, int64_t durable)
{
    char why [512], key [24];
    while (self->count < (size_t) self->max_in_flight && self->next_seq <= durable) {
        const char *line;
        size_t length;
        int64_t seq, ts, offset;
        int rc = mesh_ship_reader_next (self->reader, &line, &length, &seq, &ts, &offset, why,
                                        sizeof why);
        if (rc == 0)
            return false;               //  not visible yet; the next round reads it
        if (rc < 0 || seq != self->next_seq) {
            if (rc > 0)
                s_error (self, "%s holds seq %" PRId64 " where seq %" PRId64 " was expected",
                         self->log_path, seq, self->next_seq);
            else
                s_error (self, "%s", why);
            self->rewind = true;
            return false;
        }
        int klen = snprintf (key, sizeof key, "%" PRId64, seq);
        rd_kafka_resp_err_t err = rd_kafka_producev (
            self->rk, RD_KAFKA_V_TOPIC (self->topic), RD_KAFKA_V_KEY (key, (size_t) klen),
            RD_KAFKA_V_VALUE ((void *) line, length), RD_KAFKA_V_MSGFLAGS (RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADER ("source", self->source, -1),
            RD_KAFKA_V_OPAQUE ((void *) (intptr_t) seq), RD_KAFKA_V_END);
        if (err) {
            s_error (self, "cannot produce record seq %" PRId64 " (%zu bytes): %s", seq, length,
                     rd_kafka_err2str (err));
            self->rewind = true;
            return false;
        }
        s_flight_t *flight = &self->ring [(self->head + self->count) % (size_t) self->max_in_flight];
        *flight = (s_flight_t) { .seq = seq, .ts = ts, .offset = offset, .report = S_PENDING };
        if (seq == self->state.seq + 1) {
            self->oldest_ts = ts;
            self->oldest_seq = seq;
        }
        self->count++;
        self->next_seq++;
        self->produced++;
    }
    //  Caught up: what lies beyond the durable seq is read again once it is durable.
    if (self->next_seq > durable)
        mesh_ship_reader_forget (self->reader);
    return true;
}

//  Take the unbroken run of delivered records off the front of the ring.
static void
s_advance (mesh_ship_t *self)
{
    bool pending = false;
    while (self->count) {
        s_flight_t *front = &self->ring [self->head];
        if (front->report != S_DELIVERED)
            break;
        self->state.seq = front->seq;
        self->state.offset = front->offset;
        self->head = (self->head + 1) % (size_t) self->max_in_flight;
        self->count--;
        self->backoff = 0;
        self->last_error [0] = 0;
        if (self->logged_error [0]) {
            mesh_notice ("ship: delivering again (seq %" PRId64 " acknowledged)", front->seq);
            self->logged_error [0] = 0;
        }
    }
    if (self->count) {
        self->oldest_ts = self->ring [self->head].ts;
        self->oldest_seq = self->ring [self->head].seq;
    }
    for (size_t i = 0; i < self->count; i++) {
        s_report_t report = self->ring [(self->head + i) % (size_t) self->max_in_flight].report;
        if (report == S_FAILED)
            self->rewind = true;
        if (report == S_PENDING)
            pending = true;
    }
    //  Go back only when no report is owed: a late success must not land in a new ring.
    if (self->rewind && !pending)
        s_rewind (self);
}

static void
s_save (mesh_ship_t *self, bool now)
{
    char why [512];
    int64_t mono = s_mono_ms ();
    if (self->state.seq == self->saved_seq || (!now && mono - self->saved_at < S_SAVE_MS))
        return;
    if (mesh_ship_state_write (self->state_path, &self->state, why, sizeof why) != 0) {
        s_error (self, "%s", why);
        return;
    }
    self->saved_seq = self->state.seq;
    self->saved_at = mono;
}

static void
s_publish (mesh_ship_t *self)
{
    pthread_mutex_lock (&self->mutex);
    self->shown.shipped = self->state.seq;
    self->shown.in_flight = (int64_t) self->count;
    self->shown.oldest_ts = self->oldest_seq == self->state.seq + 1 ? self->oldest_ts : 0;
    self->shown.produced = self->produced;
    self->shown.acknowledged = self->acknowledged;
    self->shown.failed = self->failed;
    self->shown.sessions = self->sessions;
    memcpy (self->shown.broker, self->broker, sizeof self->broker);
    memcpy (self->shown.last_error, self->last_error, sizeof self->last_error);
    pthread_mutex_unlock (&self->mutex);
}

static void *
s_run (void *arg)
{
    mesh_ship_t *self = arg;
    int64_t deadline = 0;
    while (true) {
        pthread_mutex_lock (&self->mutex);
        bool stop = self->stop;
        int64_t durable = self->durable;
        int flush_ms = self->flush_ms;
        pthread_mutex_unlock (&self->mutex);
        int64_t now = s_mono_ms ();
        if (stop && !deadline)
            deadline = now + flush_ms;
        //  At stop: what is durable is still produced, until the deadline.
        if (stop && (!self->rk || self->rewind || now >= deadline
                     || (self->count == 0 && self->next_seq > durable)))
            break;
        if (!self->rk && now >= self->retry_at && s_session_open (self) != 0) {
            self->backoff = self->backoff ? self->backoff * 2 : S_BACKOFF_MIN_MS;
            if (self->backoff > S_BACKOFF_MAX_MS)
                self->backoff = S_BACKOFF_MAX_MS;
            self->retry_at = now + self->backoff;
        }
        bool starved = false;
        if (self->rk && !self->rewind && now >= self->retry_at)
            starved = !s_fill (self, durable);
        if (self->rk)
            rd_kafka_poll (self->rk, self->count ? 50 : 0);
        if (self->fatal) {
            s_session_close (self);
            self->rewind = true;
        }
        s_advance (self);
        s_save (self, false);
        s_publish (self);
        //  Nothing in flight: sleep until told of a new record (or a retry is due).
        pthread_mutex_lock (&self->mutex);
        if (!self->stop && self->count == 0
            && (self->durable < self->next_seq || self->rewind || !self->rk || starved
                || s_mono_ms () < self->retry_at)) {
            struct timespec until;
            clock_gettime (CLOCK_REALTIME, &until);
            until.tv_nsec += S_IDLE_WAIT_MS * 1000000L;
            until.tv_sec += until.tv_nsec / 1000000000L;
            until.tv_nsec %= 1000000000L;
            pthread_cond_timedwait (&self->cond, &self->mutex, &until);
        }
        pthread_mutex_unlock (&self->mutex);
    }
    s_session_close (self);
    s_advance (self);
    s_save (self, true);
    s_publish (self);
    return NULL;
}

//  Where to start: the state file, checked against this log and this topic.
static int
s_resume (mesh_ship_t *self, int64_t durable, char *why, size_t size)
{
    char first [65];
    if (mesh_ship_reader_first_hash (self->reader, first, why, size) != 0)
        return -1;
    mesh_ship_state_t state;
    if (mesh_ship_state_read (self->state_path, &state, why, size) < 0)
        return -1;
    const char *over = NULL;
    if (state.seq > 0 && strcmp (state.topic, self->topic))
        over = "it was written for another topic";
    else
    if (state.seq > 0 && state.first [0] && strcmp (state.first, first))
        over = "the log's first record is not the one it was written for (a new log)";
    else
    if (state.seq > durable)
        over = "it is ahead of the log (a new log)";
    if (over) {
        mesh_notice ("ship: %s says seq %" PRId64 " was shipped, but %s: shipping from seq 1",
                     self->state_path, state.seq, over);
        memset (&state, 0, sizeof state);
    }
    snprintf (state.topic, sizeof state.topic, "%s", self->topic);
    snprintf (state.first, sizeof state.first, "%s", first);
    self->state = state;
    self->saved_seq = state.seq;
    if (mesh_ship_reader_seek (self->reader, state.seq, state.offset, why, size) != 0)
        return -1;
    self->next_seq = state.seq + 1;
    return 0;
}

mesh_ship_t *
mesh_ship_new (const mesh_config_t *cfg, const char *brokers, const char *log_path,
               int64_t durable_seq, char *why, size_t size)
{
    assert (cfg);
    why [0] = 0;
    const mesh_ship_config_t *ship = &cfg->ship;
    if (!ship->topic)
        return NULL;
    mesh_ship_t *self = calloc (1, sizeof *self);
    char host [256] = "";
    if (!ship->source && gethostname (host, sizeof host - 1) != 0)
        snprintf (host, sizeof host, "localhost");
    if (self) {
        self->topic = strdup (ship->topic);
        self->brokers = strdup (ship->brokers ? ship->brokers : brokers);
        self->source = strdup (ship->source ? ship->source : host);
        self->log_path = strdup (log_path);
        self->max_in_flight = ship->max_in_flight > 0 ? ship->max_in_flight : 1000;
        self->ring = calloc ((size_t) self->max_in_flight, sizeof *self->ring);
        if (asprintf (&self->state_path, "%s/%s", cfg->state_dir, S_STATE_FILE) < 0)
            self->state_path = NULL;
        pthread_mutex_init (&self->mutex, NULL);
        pthread_cond_init (&self->cond, NULL);
        self->durable = durable_seq;
        snprintf (self->broker, sizeof self->broker, "connecting");
    }
    if (!self || !self->topic || !self->brokers || !self->source || !self->log_path
        || !self->ring || !self->state_path) {
        snprintf (why, size, "out of memory");
        mesh_ship_destroy (&self, 0);
        return NULL;
    }
    //  The producer's settings: the cluster's security, then what shipping rests on.
    char *error = NULL, err [512];
    const mesh_kafka_security_t *security = ship->security.given ? &ship->security
                                                                 : &cfg->kafka_security;
    self->conf = mesh_kafka_conf_new_with (cfg, security, self->brokers, &error);
    if (!self->conf) {
        snprintf (why, size, "%s", error ? error : "cannot build the producer's settings");
        free (error);
        mesh_ship_destroy (&self, 0);
        return NULL;
    }
    char queue [16];
    snprintf (queue, sizeof queue, "%d", self->max_in_flight + 16);
    const char *settings [][2] = {
        {"enable.idempotence", "true"},
        {"queue.buffering.max.messages", queue},
        {"linger.ms", "5"},
        {"client.id", "meshd-ship"},
    };
    for (size_t i = 0; i < sizeof settings / sizeof settings [0]; i++)
        if (rd_kafka_conf_set (self->conf, settings [i][0], settings [i][1], err, sizeof err)
            != RD_KAFKA_CONF_OK) {
            snprintf (why, size, "%s: %s", settings [i][0], err);
            mesh_ship_destroy (&self, 0);
            return NULL;
        }
    self->reader = mesh_ship_reader_new (log_path, why, size);
    if (!self->reader || s_resume (self, durable_seq, why, size) != 0) {
        mesh_ship_destroy (&self, 0);
        return NULL;
    }
    if (pthread_create (&self->thread, NULL, s_run, self) != 0) {
        snprintf (why, size, "cannot start the shipping thread: %s", strerror (errno));
        mesh_ship_destroy (&self, 0);
        return NULL;
    }
    self->started = true;
    s_publish (self);
    mesh_notice ("ship: decision log to topic %s at %s from seq %" PRId64 " (source %s)",
                 self->topic, self->brokers, self->state.seq + 1, self->source);
    return self;
}

void
mesh_ship_destroy (mesh_ship_t **self_p, int timeout_ms)
{
    assert (self_p);
    mesh_ship_t *self = *self_p;
    if (!self)
        return;
    if (self->started) {
        pthread_mutex_lock (&self->mutex);
        self->stop = true;
        self->flush_ms = timeout_ms > 0 ? timeout_ms : 0;
        pthread_cond_signal (&self->cond);
        pthread_mutex_unlock (&self->mutex);
        pthread_join (self->thread, NULL);
        mesh_notice ("ship: stopped at seq %" PRId64 " of %" PRId64, self->state.seq,
                     self->durable);
    }
    mesh_ship_reader_destroy (&self->reader);
    if (self->conf)
        rd_kafka_conf_destroy (self->conf);
    pthread_mutex_destroy (&self->mutex);
    pthread_cond_destroy (&self->cond);
    free (self->ring);
    free (self->topic);
    free (self->brokers);
    free (self->source);
    free (self->log_path);
    free (self->state_path);
    free (self);
    *self_p = NULL;
}

void
mesh_ship_notify (mesh_ship_t *self, int64_t seq)
{
    if (!self)
        return;
    pthread_mutex_lock (&self->mutex);
    if (seq > self->durable) {
        self->durable = seq;
        pthread_cond_signal (&self->cond);
    }
    pthread_mutex_unlock (&self->mutex);
}

json_t *
mesh_ship_status (mesh_ship_t *self)
{
    assert (self);
    pthread_mutex_lock (&self->mutex);
    int64_t lag = self->durable - self->shown.shipped;
    json_t *age = lag <= 0 ? json_real (0)
                : self->shown.oldest_ts > 0
                    ? json_real ((double) (s_wall_ms () - self->shown.oldest_ts) / 1000.0)
                    : json_null ();
    json_t *status = json_pack (
        "{ss ss ss sI sI sI so sI ss so? sI sI sI sI}", "topic", self->topic, "brokers",
        self->brokers, "source", self->source, "shipped_seq", (json_int_t) self->shown.shipped,
        "ledger_seq", (json_int_t) self->durable, "lag_records", (json_int_t) (lag > 0 ? lag : 0),
        "lag_seconds", age, "in_flight", (json_int_t) self->shown.in_flight, "broker",
        self->shown.broker, "last_error",
        self->shown.last_error [0] ? json_string (self->shown.last_error) : NULL, "produced",
        (json_int_t) self->shown.produced, "acknowledged", (json_int_t) self->shown.acknowledged,
        "failed", (json_int_t) self->shown.failed, "sessions", (json_int_t) self->shown.sessions);
    pthread_mutex_unlock (&self->mutex);
    return status;
}

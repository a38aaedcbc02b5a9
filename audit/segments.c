/*  segments - read the decision log across its sealed segments (segments.h).
 *
 *  Why a FILE *: the chain scanner, the proof builder and replay all read the log with
 *  getline from a FILE *, and each must work across segments in the same way.  A cookie
 *  stream that reads the files one after the other changes only the line that opens the
 *  log in each of them.  The joins are checked here, where the files are known, so that a
 *  missing or renamed segment is reported by name and not as a seq break somewhere in a
 *  stream whose file boundaries the scanner cannot see.
 */
#include "segments.h"
#include "log.h"
#include "note.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_SEQ_DIGITS 12
#define S_PREFIX "{\"seq\":"

//  The seq at the start of a line: `{"seq":N,`.  true and *seq_p, or false.
static bool
s_parse_seq (const char *buf, size_t len, int64_t *seq_p)
{
    size_t plen = strlen (S_PREFIX);
    if (len < plen + 2 || memcmp (buf, S_PREFIX, plen) != 0)
        return false;
    int64_t seq = 0;
    size_t i = plen;
    for (; i < len && buf[i] >= '0' && buf[i] <= '9' && i < plen + 19; i++)
        seq = seq * 10 + (buf[i] - '0');
    if (i == plen || i >= len || buf[i] != ',')
        return false;
    *seq_p = seq;
    return true;
}

static int
s_by_seq (const void *a, const void *b)
{
    const mesh_segment_t *x = a, *y = b;
    return x->first_seq < y->first_seq ? -1 : x->first_seq > y->first_seq;
}

void
mesh_segments_free (mesh_segment_t **segs_p, int count)
{
    assert (segs_p);
    if (!*segs_p)
        return;
    for (int i = 0; i < count; i++)
        free ((*segs_p)[i].path);
    free (*segs_p);
    *segs_p = NULL;
}

int
mesh_segments_list (const char *log, mesh_segment_t **segs_p, char *why, size_t why_size)
{
    assert (log && segs_p);
    *segs_p = NULL;
    const char *slash = strrchr (log, '/');
    char *dir = slash ? strndup (log, (size_t) (slash - log + (slash == log))) : strdup (".");
    const char *base = slash ? slash + 1 : log;
    assert (dir);
    DIR *d = opendir (dir);
    if (!d) {
        snprintf (why, why_size, "cannot read the directory %s: %s", dir, strerror (errno));
        free (dir);
        return -1;
    }
    size_t base_len = strlen (base);
    mesh_segment_t *segs = NULL;
    int count = 0, cap = 0, rc = 0;
    struct dirent *entry;
    while ((entry = readdir (d))) {
        const char *name = entry->d_name;
        if (strncmp (name, base, base_len) != 0 || strncmp (name + base_len, ".seg-", 5) != 0)
            continue;
        const char *digits = name + base_len + 5;
        if (strlen (digits) != S_SEQ_DIGITS || strspn (digits, "0123456789") != S_SEQ_DIGITS)
            continue;
        if (count == MESH_SEGMENTS_MAX) {
            snprintf (why, why_size, "more than %d segments of %s", MESH_SEGMENTS_MAX, log);
            rc = -1;
            break;
        }
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            segs = realloc (segs, (size_t) cap * sizeof *segs);
            assert (segs);
        }
        mesh_segment_t *seg = &segs[count++];
        if (asprintf (&seg->path, "%s/%s", dir, name) < 0)
            abort ();
        seg->name = seg->path + strlen (seg->path) - strlen (name);
        seg->first_seq = strtoll (digits, NULL, 10);
    }
    closedir (d);
    free (dir);
    if (rc == 0 && count > 1) {
        qsort (segs, (size_t) count, sizeof *segs, s_by_seq);
        for (int i = 1; i < count; i++)
            if (segs[i].first_seq == segs[i - 1].first_seq) {
                snprintf (why, why_size, "two segments start at seq %" PRId64 ": %s and %s",
                          segs[i].first_seq, segs[i - 1].name, segs[i].name);
                rc = -1;
                break;
            }
    }
    if (rc != 0) {
        mesh_segments_free (&segs, count);
        return -1;
    }
    *segs_p = segs;
    return count;
}

int
mesh_segments_first (const char *path, int64_t *seq_p, int64_t *ts_p)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    char buf[160];
    ssize_t n = pread (fd, buf, sizeof buf - 1, 0);
    close (fd);
    if (n <= 0)
        return n == 0 ? 0 : -1;
    buf[n] = 0;
    long long seq, ts;
    char prev[65];
    if (sscanf (buf, "{\"seq\":%lld,\"prev\":\"%64[0-9a-f]\",\"ts\":%lld", &seq, prev, &ts) != 3)
        return -1;
    if (seq_p)
        *seq_p = seq;
    if (ts_p)
        *ts_p = ts;
    return 1;
}

int
mesh_segments_sha256 (const char *path, char *hex, uint64_t *size_p)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    crypto_hash_sha256_state sha;
    crypto_hash_sha256_init (&sha);
    char buf[65536];
    uint64_t size = 0;
    ssize_t n;
    while ((n = read (fd, buf, sizeof buf)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int saved = errno;
            close (fd);
            errno = saved;
            return -1;
        }
        crypto_hash_sha256_update (&sha, (const unsigned char *) buf, (size_t) n);
        size += (uint64_t) n;
    }
    close (fd);
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final (&sha, digest);
    sodium_bin2hex (hex, MESH_SEGMENTS_HEX_SIZE, digest, sizeof digest);
    if (size_p)
        *size_p = size;
    return 0;
}

//  ---------------------------------------------------------------------------------------
//  <log>.retained

static void
s_start_default (mesh_segments_start_t *start)
{
    memset (start, 0, sizeof *start);
    start->first_seq = 1;
    memset (start->prev_hash, '0', MESH_SEGMENTS_HEX_SIZE - 1);
    mesh_merkle_range_init (&start->range);
    start->removed = json_array ();
}

void
mesh_segments_start_free (mesh_segments_start_t *start)
{
    if (start) {
        json_decref (start->removed);
        start->removed = NULL;
    }
}

json_t *
mesh_segments_start_json (const mesh_segments_start_t *start)
{
    json_t *nodes = json_array ();
    for (int i = 0; i < start->range.count; i++) {
        char b64[64];
        mesh_b64 (start->range.nodes[i], MESH_MERKLE_HASH, b64, sizeof b64);
        json_array_append_new (nodes, json_string (b64));
    }
    return json_pack ("{s:I, s:s, s:{s:I, s:o}, s:O}", "first_seq",
                      (json_int_t) start->first_seq, "prev_hash", start->prev_hash, "range",
                      "size", (json_int_t) start->range.size, "nodes", nodes, "removed",
                      start->removed);
}

int
mesh_segments_start (const char *log, mesh_segments_start_t *start, char *why,
                     size_t why_size)
{
    s_start_default (start);
    char *path = NULL;
    if (asprintf (&path, "%s.retained", log) < 0)
        abort ();
    if (access (path, F_OK) != 0 && errno == ENOENT) {
        free (path);
        return 0;                   //  nothing was ever removed
    }
    json_error_t jerr;
    json_t *root = json_load_file (path, JSON_REJECT_DUPLICATES, &jerr);
    free (path);
    if (!root) {
        snprintf (why, why_size, "%s.retained: %s", log, jerr.text);
        return -1;
    }
    json_t *first = json_object_get (root, "first_seq");
    const char *prev = json_string_value (json_object_get (root, "prev_hash"));
    json_t *range = json_object_get (root, "range");
    json_t *size = json_object_get (range, "size");
    json_t *nodes = json_object_get (range, "nodes");
    json_t *removed = json_object_get (root, "removed");
    const char *bad = NULL;
    if (!json_is_integer (first) || json_integer_value (first) < 1)
        bad = "first_seq is not an integer >= 1";
    else
    if (!prev || strlen (prev) != MESH_SEGMENTS_HEX_SIZE - 1
        || strspn (prev, "0123456789abcdef") != MESH_SEGMENTS_HEX_SIZE - 1)
        bad = "prev_hash is not 64 hex digits";
    else
    if (!json_is_integer (size) || json_integer_value (size) != json_integer_value (first) - 1)
        bad = "range.size is not first_seq - 1";
    else
    if (!json_is_array (nodes)
        || (int) json_array_size (nodes)
           != __builtin_popcountll ((unsigned long long) json_integer_value (size)))
        bad = "range.nodes does not hold one hash per set bit of range.size";
    else
    if (!json_is_array (removed))
        bad = "removed is not an array";
    for (size_t i = 0; !bad && i < json_array_size (nodes); i++) {
        const char *b64 = json_string_value (json_array_get (nodes, i));
        if (!b64 || mesh_unb64 (b64, start->range.nodes[i], MESH_MERKLE_HASH) != 0)
            bad = "a range node is not the base64 of 32 bytes";
    }
    if (bad) {
        snprintf (why, why_size, "%s.retained: %s", log, bad);
        json_decref (root);
        s_start_default (start);
        return -1;
    }
    start->first_seq = json_integer_value (first);
    memcpy (start->prev_hash, prev, MESH_SEGMENTS_HEX_SIZE);
    start->range.size = (uint64_t) json_integer_value (size);
    start->range.count = (int) json_array_size (nodes);
    json_decref (start->removed);
    start->removed = json_incref (removed);
    json_decref (root);
    return 1;
}

//  ---------------------------------------------------------------------------------------
//  The stream.

typedef struct {
    char *log;                      //  the active log
    mesh_segment_t *segs;
    int count;
    int at;                         //  the file being read: 0..count-1 a segment, count the log
    int skip;                       //  segments wholly before the first record kept
    int64_t kept_from;              //  that record's seq
    int fd;                         //  -1: between files or done
    bool done;
    //  What has gone by in the current file, to check the join with the next.
    bool any;                       //  bytes read from it
    bool ended_nl;                  //  the last byte read was a newline
    int64_t last_seq;               //  the seq of its last line that began with one (0: none)
    char pre[32];                   //  the start of the current line, until its seq is known
    size_t pre_len;
    bool in_pre;
} s_stream_t;

static const char *
s_name (s_stream_t *self, int at)
{
    if (at < self->count)
        return self->segs[at].name;
    const char *slash = strrchr (self->log, '/');
    return slash ? slash + 1 : self->log;
}

static const char *
s_path (s_stream_t *self, int at)
{
    return at < self->count ? self->segs[at].path : self->log;
}

//  Note the seqs of the lines that go by in BUF[0..N).
static void
s_track (s_stream_t *self, const char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = buf[i];
        if (self->in_pre) {
            if (c != '\n' && self->pre_len < sizeof self->pre)
                self->pre[self->pre_len++] = c;
            if (c == '\n' || self->pre_len == sizeof self->pre) {
                int64_t seq;
                if (s_parse_seq (self->pre, self->pre_len, &seq))
                    self->last_seq = seq;
                self->in_pre = false;
            }
        }
        if (c == '\n') {
            self->in_pre = true;
            self->pre_len = 0;
        }
        else
        if (!self->in_pre) {
            //  Skip to the next newline quickly.
            const char *nl = memchr (buf + i, '\n', n - i);
            if (!nl)
                break;
            i = (size_t) (nl - buf) - 1;
        }
    }
    self->ended_nl = n > 0 && buf[n - 1] == '\n';
    self->any = self->any || n > 0;
}

//  Open file AT, checking it joins on to what went before.  0 (self->fd open, or the
//  active log is missing), or -1 (errno EBADMSG, logged).
static int
s_next (s_stream_t *self, int at)
{
    if (at > self->skip && self->any && !self->ended_nl) {
        mesh_err ("audit: %s: the segment %s does not end with a newline (a sealed segment "
                  "holds whole records only)", self->log, s_name (self, at - 1));
        errno = EBADMSG;
        return -1;
    }
    int64_t first = 0;
    int found = mesh_segments_first (s_path (self, at), &first, NULL);
    if (at == self->skip && found == 1 && first != self->kept_from) {
        mesh_err ("audit: %s: %s starts at seq %" PRId64 " but %s.retained says the log "
                  "keeps the records from seq %" PRId64, self->log, s_name (self, at), first,
                  self->log, self->kept_from);
        errno = EBADMSG;
        return -1;
    }
    if (at < self->count && found != 1) {
        mesh_err ("audit: %s: the segment %s %s", self->log, s_name (self, at),
                  found == 0 ? "is empty or gone" : "does not start with a record");
        errno = EBADMSG;
        return -1;
    }
    if (at < self->count && first != self->segs[at].first_seq) {
        mesh_err ("audit: %s: the segment %s starts at seq %" PRId64 ", not at the seq its "
                  "name says", self->log, s_name (self, at), first);
        errno = EBADMSG;
        return -1;
    }
    if (at > self->skip && found == 1 && self->last_seq && first != self->last_seq + 1) {
        mesh_err ("audit: %s: %s ends at seq %" PRId64 " but the next file, %s, starts at seq "
                  "%" PRId64 ": the segments are not contiguous (one is missing or out of "
                  "place)", self->log, s_name (self, at - 1), self->last_seq,
                  s_name (self, at), first);
        errno = EBADMSG;
        return -1;
    }
    self->at = at;
    self->any = false;
    self->ended_nl = false;
    self->last_seq = 0;
    self->in_pre = true;
    self->pre_len = 0;
    self->fd = open (s_path (self, at), O_RDONLY | O_CLOEXEC);
    if (self->fd < 0) {
        if (at == self->count && errno == ENOENT)
            return 0;               //  a crash just after a rotation: no active log yet
        mesh_err ("audit: cannot read %s: %s", s_path (self, at), strerror (errno));
        return -1;
    }
    return 0;
}

static ssize_t
s_read (void *cookie, char *buf, size_t size)
{
    s_stream_t *self = (s_stream_t *) cookie;
    while (!self->done) {
        if (self->fd < 0) {
            self->done = true;
            return 0;
        }
        ssize_t n = read (self->fd, buf, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n > 0) {
            s_track (self, buf, (size_t) n);
            return n;
        }
        close (self->fd);
        self->fd = -1;
        if (self->at == self->count) {
            self->done = true;
            return 0;
        }
        if (s_next (self, self->at + 1) != 0) {
            self->done = true;
            return -1;
        }
    }
    return 0;
}

static int
s_close (void *cookie)
{
    s_stream_t *self = (s_stream_t *) cookie;
    if (self->fd >= 0)
        close (self->fd);
    mesh_segments_free (&self->segs, self->count);
    free (self->log);
    free (self);
    return 0;
}

FILE *
mesh_segments_open (const char *log)
{
    assert (log);
    s_stream_t *self = (s_stream_t *) calloc (1, sizeof *self);
    assert (self);
    self->fd = -1;
    self->log = strdup (log);
    char why[512];
    self->count = mesh_segments_list (log, &self->segs, why, sizeof why);
    if (self->count < 0) {
        mesh_err ("audit: %s: %s", log, why);
        self->count = 0;
        s_close (self);
        errno = EBADMSG;
        return NULL;
    }
    mesh_segments_start_t start;
    if (mesh_segments_start (log, &start, why, sizeof why) < 0) {
        mesh_err ("audit: %s", why);
        s_close (self);
        errno = EBADMSG;
        return NULL;
    }
    self->kept_from = start.first_seq;
    mesh_segments_start_free (&start);
    //  A retention cut short by a crash may leave segments it meant to remove.
    while (self->skip < self->count) {
        int64_t next = 0;
        if (self->skip + 1 < self->count)
            next = self->segs[self->skip + 1].first_seq;
        else
        if (mesh_segments_first (log, &next, NULL) != 1)
            break;
        if (next > self->kept_from)
            break;
        self->skip++;
    }
    if (self->count == 0 && self->kept_from == 1) {
        self->fd = open (log, O_RDONLY | O_CLOEXEC);
        if (self->fd < 0) {
            int saved = errno;
            s_close (self);
            errno = saved;
            return NULL;
        }
        self->in_pre = true;
    }
    else
    if (s_next (self, self->skip) != 0) {
        int saved = errno;
        s_close (self);
        errno = saved;
        return NULL;
    }
    cookie_io_functions_t io = { .read = s_read, .close = s_close };
    FILE *file = fopencookie (self, "r", io);
    if (!file) {
        s_close (self);
        return NULL;
    }
    setvbuf (file, NULL, _IOFBF, 65536);
    return file;
}

/*  audit - a read-only view of a decision log.
 *
 *  Two kinds of reading live here.  The chain scanner (mesh_audit_scan) is strict:
 *  it checks every line of the log in order and stops at the first one that is not
 *  exactly what the ledger writes, reporting the line, the seq it should have had and
 *  whether its bytes are damaged (a torn write, an edit) or the order is broken (a
 *  record removed or moved).  Given the ledger's key it also checks each record's MAC,
 *  which no one without the key can produce: the chain shows that nothing was changed by
 *  accident, the MAC that the supervisor wrote the record.  The ledger runs the same
 *  scanner when it opens the log, so "valid" means one thing for the writer and for the
 *  auditor.
 *
 *  The views (list, show, stats, each_decision) are tolerant: they read every line
 *  that is a JSON object, whether or not the chain holds, because an auditor looking
 *  at a damaged log after an incident still wants to see what is in it.  Verify is the
 *  one place that judges the chain; docs/audit.md says so to its readers.
 *
 *  Everything here streams the file line by line with getline(3), so a log of any
 *  length is read in the memory of its longest line (list and show keep only the
 *  records they print).
 */
#include "audit.h"
#include "segments.h"
#include "jsonout.h"
#include "log.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

//  `,"hash":"` + 64 hex + `"}`
#define S_HASH_KEY     ",\"hash\":\""
#define S_HASH_KEY_LEN 9
#define S_SUFFIX_LEN   (S_HASH_KEY_LEN + MESH_AUDIT_HASH_HEX + 2)
//  `,"mac":"` + 64 hex + `"`, just before the hash suffix
#define S_MAC_KEY      ",\"mac\":\""
#define S_MAC_KEY_LEN  8
#define S_MAC_LEN      (S_MAC_KEY_LEN + MESH_AUDIT_HASH_HEX + 1)

static const char s_zero_hash[MESH_AUDIT_HASH_HEX + 1] =
    "0000000000000000000000000000000000000000000000000000000000000000";

static bool
s_is_hex (const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

void
mesh_audit_mac_hex (const unsigned char *key, const char *data, size_t len, char *hex)
{
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init (&st, key, MESH_AUDIT_KEY_BYTES);
    crypto_auth_hmacsha256_update (&st, (const unsigned char *) data, len);
    crypto_auth_hmacsha256_final (&st, mac);
    sodium_bin2hex (hex, MESH_AUDIT_HASH_HEX + 1, mac, sizeof mac);
    sodium_memzero (&st, sizeof st);
}

//  The MAC of a record whose bytes and order are good; BODY = its bytes before the hash
//  suffix.  0 (and *macd_p: it carries a MAC), or -1 with SCAN->why (bad_content set).
static int
s_check_mac (const char *line, size_t body, json_t *record, int64_t seq,
             const unsigned char *key, mesh_audit_scan_t *scan, bool *macd_p)
{
    scan->bad_content = true;
    const char *field = body > S_MAC_LEN ? line + body - S_MAC_LEN : NULL;
    bool has_mac = field && memcmp (field, S_MAC_KEY, S_MAC_KEY_LEN) == 0;
    if (!has_mac) {
        if (scan->mac_since > 0) {
            snprintf (scan->why, sizeof scan->why,
                      "no \"mac\" although every record since seq %" PRId64 " carries one "
                      "(not written by the supervisor)", scan->mac_since);
            return -1;
        }
        scan->bad_content = false;
        return 0;
    }
    const char *hex = field + S_MAC_KEY_LEN;
    const char *value = json_string_value (json_object_get (record, "mac"));
    if (!s_is_hex (hex, MESH_AUDIT_HASH_HEX) || field[S_MAC_LEN - 1] != '"' || !value
        || strlen (value) != MESH_AUDIT_HASH_HEX || memcmp (value, hex, MESH_AUDIT_HASH_HEX)) {
        snprintf (scan->why, sizeof scan->why,
                  "\"mac\" is not 64 lower-case hex digits just before \"hash\"");
        return -1;
    }
    char want[MESH_AUDIT_HASH_HEX + 1];
    mesh_audit_mac_hex (key, line, body - S_MAC_LEN, want);
    if (sodium_memcmp (want, hex, MESH_AUDIT_HASH_HEX) != 0) {
        snprintf (scan->why, sizeof scan->why,
                  "MAC does not verify: the record was not written by the supervisor that "
                  "holds this key");
        return -1;
    }
    if (scan->mac_since == 0 && scan->mac_missing > 0) {
        const char *type = json_string_value (json_object_get (record, "type"));
        const char *event = json_string_value (json_object_get (record, "event"));
        json_t *since = json_object_get (record, "since");
        if (!type || strcmp (type, "ledger") != 0 || !event || strcmp (event, "mac") != 0
            || !json_is_integer (since) || json_integer_value (since) != seq) {
            snprintf (scan->why, sizeof scan->why,
                      "the first record with a MAC, after %" PRId64 " without one, is not "
                      "the ledger's {\"type\":\"ledger\",\"event\":\"mac\",\"since\":%"
                      PRId64 "}", scan->mac_missing, seq);
            return -1;
        }
    }
    scan->bad_content = false;
    *macd_p = true;
    return 0;
}

//  Check one line (LEN bytes without its newline).  0 and *record_p set (caller owns) and
//  HASH filled, or -1 with SCAN->why and SCAN->bad_content set.
static int
s_check_line (const char *line, size_t len, bool has_newline, int64_t expect_seq,
              const char *prev_hash, const unsigned char *key, mesh_audit_scan_t *scan,
              json_t **record_p, char *hash, bool *macd_p)
{
    *record_p = NULL;
    *macd_p = false;
    scan->bad_content = true;
    scan->bad_torn = !has_newline;
    if (!has_newline) {
        snprintf (scan->why, sizeof scan->why,
                  "truncated last line (%zu bytes, no newline: a torn write?)", len);
        return -1;
    }
    json_error_t jerr;
    json_t *record = json_loadb (line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!record) {
        snprintf (scan->why, sizeof scan->why, "not JSON: %s (column %d)", jerr.text,
                  jerr.column);
        return -1;
    }
    if (!json_is_object (record)) {
        snprintf (scan->why, sizeof scan->why, "not a JSON object");
        goto bad;
    }
    const char *suffix = line + len - S_SUFFIX_LEN;
    if (len < S_SUFFIX_LEN + 1
        || memcmp (suffix, S_HASH_KEY, S_HASH_KEY_LEN) != 0
        || !s_is_hex (suffix + S_HASH_KEY_LEN, MESH_AUDIT_HASH_HEX)
        || memcmp (line + len - 2, "\"}", 2) != 0) {
        snprintf (scan->why, sizeof scan->why,
                  "no \"hash\" of 64 lower-case hex digits as the last field");
        goto bad;
    }
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256 (digest, (const unsigned char *) line, len - S_SUFFIX_LEN);
    sodium_bin2hex (hash, MESH_AUDIT_HASH_HEX + 1, digest, sizeof digest);
    if (memcmp (hash, suffix + S_HASH_KEY_LEN, MESH_AUDIT_HASH_HEX) != 0) {
        snprintf (scan->why, sizeof scan->why,
                  "hash mismatch: the record's bytes are not the ones that were hashed");
        goto bad;
    }
    //  From here on the bytes are as written; what can be wrong is the order.
    scan->bad_content = false;
    json_t *seq = json_object_get (record, "seq");
    if (!json_is_integer (seq)) {
        snprintf (scan->why, sizeof scan->why, "no integer \"seq\"");
        goto bad;
    }
    if (json_integer_value (seq) != expect_seq) {
        snprintf (scan->why, sizeof scan->why,
                  "seq is %" PRId64 ", expected %" PRId64
                  " (a record is missing or out of order)",
                  (int64_t) json_integer_value (seq), expect_seq);
        goto bad;
    }
    const char *prev = json_string_value (json_object_get (record, "prev"));
    if (!prev || strcmp (prev, prev_hash) != 0) {
        if (expect_seq == 1)
            snprintf (scan->why, sizeof scan->why,
                      "prev is not 64 zeros although this is the first record");
        else
            snprintf (scan->why, sizeof scan->why,
                      "prev does not match the hash of seq %" PRId64
                      " (a record is missing or out of order)", expect_seq - 1);
        goto bad;
    }
    if (!json_is_integer (json_object_get (record, "ts"))) {
        snprintf (scan->why, sizeof scan->why, "no integer \"ts\"");
        goto bad;
    }
    if (!json_is_string (json_object_get (record, "type"))) {
        snprintf (scan->why, sizeof scan->why, "no string \"type\"");
        goto bad;
    }
    if (key && s_check_mac (line, len - S_SUFFIX_LEN, record, expect_seq, key, scan,
                            macd_p) != 0)
        goto bad;
    *record_p = record;
    return 0;
bad:
    json_decref (record);
    return -1;
}

int
mesh_audit_scan (FILE *file, const unsigned char *key, mesh_audit_scan_t *scan,
                 mesh_audit_record_fn *fn, void *arg)
{
    return mesh_audit_scan_from (file, key, 1, NULL, scan, fn, arg);
}

int
mesh_audit_scan_from (FILE *file, const unsigned char *key, int64_t first_seq,
                      const char *prev_hash, mesh_audit_scan_t *scan,
                      mesh_audit_record_fn *fn, void *arg)
{
    assert (file && scan && first_seq >= 1);
    memset (scan, 0, sizeof *scan);
    memcpy (scan->last_hash, s_zero_hash, sizeof scan->last_hash);
    if (prev_hash && strlen (prev_hash) == MESH_AUDIT_HASH_HEX)
        memcpy (scan->last_hash, prev_hash, MESH_AUDIT_HASH_HEX);
    scan->last_seq = first_seq - 1;
    if (sodium_init () < 0) {
        mesh_err ("audit: libsodium cannot be initialised");
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    int64_t lineno = 0;
    while ((n = getline (&line, &cap, file)) >= 0) {
        lineno++;
        size_t len = (size_t) n;
        bool has_newline = len > 0 && line[len - 1] == '\n';
        if (has_newline)
            len--;
        json_t *record;
        char hash[MESH_AUDIT_HASH_HEX + 1];
        bool macd;
        if (s_check_line (line, len, has_newline, scan->last_seq + 1, scan->last_hash, key,
                          scan, &record, hash, &macd) != 0) {
            scan->bad_line = lineno;
            scan->bad_seq = scan->last_seq + 1;
            scan->bad_is_last = !has_newline || getc (file) == EOF;
            break;
        }
        scan->records++;
        scan->last_seq++;
        memcpy (scan->last_hash, hash, sizeof hash);
        scan->good_bytes += (uint64_t) n;
        if (macd && scan->mac_since == 0)
            scan->mac_since = scan->last_seq;
        else
        if (key && !macd)
            scan->mac_missing++;
        int stop = fn ? fn (record, hash, line, len, arg) : 0;
        json_decref (record);
        if (stop != 0) {
            rc = -1;
            break;
        }
    }
    if (ferror (file)) {
        mesh_err ("audit: read error at line %" PRId64 ": %s", lineno + 1, strerror (errno));
        rc = -1;
    }
    free (line);
    return rc;
}

int
mesh_audit_read_head (const char *log_path, int64_t *seq_p, char *hash, char *why)
{
    char path[4096];
    snprintf (path, sizeof path, "%s.head", log_path);
    FILE *file = fopen (path, "re");
    if (!file) {
        if (errno == ENOENT)
            return 0;
        snprintf (why, 128, "cannot be read: %s", strerror (errno));
        return -1;
    }
    char buf[512];
    size_t n = fread (buf, 1, sizeof buf, file);
    bool too_long = n == sizeof buf;
    fclose (file);
    json_error_t jerr;
    json_t *head = too_long ? NULL : json_loadb (buf, n, JSON_REJECT_DUPLICATES, &jerr);
    json_t *seq = json_object_get (head, "seq");
    const char *hex = json_string_value (json_object_get (head, "hash"));
    if (!json_is_integer (seq) || json_integer_value (seq) < 0
        || !hex || strlen (hex) != MESH_AUDIT_HASH_HEX || !s_is_hex (hex, MESH_AUDIT_HASH_HEX)) {
        snprintf (why, 128, "is not {\"seq\":N,\"hash\":\"<64 hex>\"}");
        json_decref (head);
        return -1;
    }
    *seq_p = json_integer_value (seq);
    memcpy (hash, hex, MESH_AUDIT_HASH_HEX + 1);
    json_decref (head);
    return 1;
}

static FILE *
s_open (const char *path)
{
    FILE *file = path ? mesh_segments_open (path) : NULL;
    if (!file)
        mesh_err ("audit: cannot read %s: %s", path ? path : "(null)",
                  path ? strerror (errno) : "no path");
    return file;
}

//  ---------------------------------------------------------------------------------------
//  verify

typedef struct {
    int64_t want_seq;               //  the head's seq, when it is behind the log
    char hash[MESH_AUDIT_HASH_HEX + 1];
    int64_t repairs;                //  torn lines meshd moved aside (its "repair" records)
} s_mark_t;

static int
s_mark_fn (json_t *record, const char *hash, const char *line, size_t len, void *arg)
{
    s_mark_t *mark = (s_mark_t *) arg;
    if (json_integer_value (json_object_get (record, "seq")) == mark->want_seq)
        memcpy (mark->hash, hash, sizeof mark->hash);
    const char *type = json_string_value (json_object_get (record, "type"));
    const char *event = json_string_value (json_object_get (record, "event"));
    if (type && event && !strcmp (type, "ledger") && !strcmp (event, "repair"))
        mark->repairs++;
    return 0;
}

//  SEQ 0: the problem is not in a record (a malformed head file).
static void
s_verify_fail (FILE *out, bool json, int64_t seq, int64_t line, const char *what)
{
    if (json) {
        json_t *res = json_pack ("{s:b, s:s}", "ok", 0, "error", what);
        if (seq > 0) {
            json_object_set_new (res, "seq", json_integer (seq));
            json_object_set_new (res, "line", json_integer (line));
        }
        json_dumpf (res, out, JSON_COMPACT);
        fputc ('\n', out);
        json_decref (res);
    }
    else
    if (seq > 0)
        fprintf (out, "FAIL: record seq %" PRId64 " (line %" PRId64 "): %s\n", seq, line, what);
    else
        fprintf (out, "FAIL: %s\n", what);
}

int
mesh_audit_verify_with (const char *path, const mesh_audit_verify_opts_t *opts, FILE *out)
{
    static const mesh_audit_verify_opts_t defaults = { 0 };
    if (!opts)
        opts = &defaults;
    bool json = opts->json;
    FILE *file = s_open (path);
    if (!file)
        return 2;
    int64_t head_seq = 0;
    char head_hash[MESH_AUDIT_HASH_HEX + 1] = "";
    char why[1024];
    int head = mesh_audit_read_head (path, &head_seq, head_hash, why);

    s_mark_t mark = { .want_seq = head == 1 ? head_seq : -1 };
    //  After retention the chain starts at the first record kept (<log>.retained).
    mesh_segments_start_t start;
    char start_why[512];
    if (mesh_segments_start (path, &start, start_why, sizeof start_why) < 0) {
        mesh_err ("audit: %s", start_why);
        fclose (file);
        return 2;
    }
    mesh_audit_scan_t scan;
    int rc = mesh_audit_scan_from (file, opts->key, start.first_seq, start.prev_hash, &scan,
                                   s_mark_fn, &mark);
    mesh_segments_start_free (&start);
    fclose (file);
    if (rc != 0)
        return 2;
    //  A last line without its newline is a write a crash cut short, never acknowledged:
    //  not tampering.  meshd moves it aside (intact) at its next start.
    bool torn = scan.bad_line && scan.bad_torn && scan.bad_is_last;
    if (scan.bad_line && !torn) {
        s_verify_fail (out, json, scan.bad_seq, scan.bad_line, scan.why);
        return 1;
    }
    //  The chain holds; now the tail, against the head file.  In an intact chain the
    //  record with seq S is on line S.
    if (head < 0) {
        char what[4200];
        snprintf (what, sizeof what, "head file %s.head %s", path, why);
        s_verify_fail (out, json, 0, 0, what);
        return 1;
    }
    const char *head_state = "absent";
    if (head == 1) {
        if (head_seq > scan.last_seq) {
            snprintf (why, sizeof why,
                      "missing: the head file says the log ends at seq %" PRId64
                      ", it ends at seq %" PRId64 " (records removed from the tail?)",
                      head_seq, scan.last_seq);
            s_verify_fail (out, json, scan.last_seq + 1, scan.records + 1, why);
            return 1;
        }
        const char *have = head_seq == 0 ? s_zero_hash : mark.hash;
        if (strcmp (have, head_hash) != 0) {
            snprintf (why, sizeof why,
                      "its hash differs from the one in the head file (record replaced?)");
            s_verify_fail (out, json, head_seq, head_seq, why);
            return 1;
        }
        head_state = head_seq == scan.last_seq ? "matches" : "behind";
    }
    if (!opts->head_advisory && head == 1 && head_seq < scan.last_seq) {
        snprintf (why, sizeof why,
                  "the head file %s.head says seq %" PRId64 ", the log goes on to seq %" PRId64
                  ": the head is behind by %" PRId64 " record(s).  Up to one group commit "
                  "(256 records) behind is what a crash between the log's fsync and the "
                  "head's update leaves, and the next start of meshd brings it up to date; "
                  "more means the head was not written or was put back.  --head-advisory "
                  "accepts a head that is behind", path,
                  head_seq, scan.last_seq, scan.last_seq - head_seq);
        s_verify_fail (out, json, 0, 0, why);
        return 1;
    }
    if (!opts->head_advisory && head == 0 && scan.records > 0) {
        snprintf (why, sizeof why,
                  "no head file %s.head for a log of %" PRId64 " record(s): records removed "
                  "from its end would go unnoticed.  A crash in a new log's first group "
                  "commit leaves this, and the next start of meshd writes the head; "
                  "--head-advisory accepts it", path, scan.records);
        s_verify_fail (out, json, 0, 0, why);
        return 1;
    }
    const char *mac_state = !opts->key ? "not_checked"
                          : scan.records > 0 && scan.mac_since == 0 ? "absent" : "verified";
    if (json) {
        json_t *res = json_pack ("{s:b, s:I, s:I, s:s, s:s}", "ok", 1, "records",
                                 (json_int_t) scan.records, "last_seq",
                                 (json_int_t) scan.last_seq, "head", head_state, "mac",
                                 mac_state);
        if (head == 1)
            json_object_set_new (res, "head_seq", json_integer (head_seq));
        if (opts->key)
            json_object_set_new (res, "mac_since", json_integer (scan.mac_since));
        json_object_set_new (res, "repairs", json_integer (mark.repairs));
        if (torn)
            json_object_set_new (res, "torn_tail", json_pack ("{s:I, s:s}", "line",
                                                              (json_int_t) scan.bad_line,
                                                              "detail", scan.why));
        json_dumpf (res, out, JSON_COMPACT);
        fputc ('\n', out);
        json_decref (res);
    }
    else {
        fprintf (out, "ok: %" PRId64 " records, last seq %" PRId64 ", ", scan.records,
                 scan.last_seq);
        if (head == 0)
            fprintf (out, "no head file%s\n", scan.records > 0 ? " (advisory)" : "");
        else if (head_seq == scan.last_seq)
            fprintf (out, "head matches\n");
        else
            fprintf (out, "head behind at seq %" PRId64 " (advisory)\n", head_seq);
        if (!opts->key)
            fprintf (out, "mac: not checked (key not given)\n");
        else if (scan.mac_missing == 0)
            fprintf (out, "mac: verified for every record\n");
        else if (scan.mac_since > 0)
            fprintf (out, "mac: verified from seq %" PRId64 " (the %" PRId64 " record(s) "
                     "before it were written before records carried a MAC)\n",
                     scan.mac_since, scan.mac_missing);
        else
            fprintf (out, "mac: no record carries one (the log was written before records "
                     "carried a MAC)\n");
        if (torn)
            fprintf (out, "torn: line %" PRId64 ", after seq %" PRId64 ", is a write cut short "
                     "by a crash (%s), never acknowledged, not tampering; meshd moves it "
                     "aside, intact, at its next start and records that\n", scan.bad_line,
                     scan.last_seq, scan.why);
        if (mark.repairs)
            fprintf (out, "repairs: %" PRId64 " torn line(s) moved aside by meshd earlier "
                     "(\"repair\" records name the files)\n", mark.repairs);
    }
    return 0;
}

int
mesh_audit_verify (const char *path, bool json, FILE *out)
{
    mesh_audit_verify_opts_t opts = { .json = json };
    return mesh_audit_verify_with (path, &opts, out);
}

int
mesh_audit_load_key (const char *path, bool strict, unsigned char *key, char *why,
                     size_t why_size)
{
    int fd = open (path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        if (errno == ELOOP)
            snprintf (why, why_size, "is a symbolic link (a key must be a regular file)");
        else
            snprintf (why, why_size, "cannot be read: %s", strerror (errno));
        return -1;
    }
    struct stat st;
    int rc = -1;
    if (fstat (fd, &st) != 0)
        snprintf (why, why_size, "cannot be read: %s", strerror (errno));
    else
    if (!S_ISREG (st.st_mode))
        snprintf (why, why_size, "is not a regular file");
    else
    if (strict && st.st_uid != geteuid ())
        snprintf (why, why_size, "is owned by uid %u, not by uid %u that meshd runs as",
                  (unsigned) st.st_uid, (unsigned) geteuid ());
    else
    if (strict && (st.st_mode & 077) != 0)
        snprintf (why, why_size, "has mode %04o: it must be readable by its owner only "
                  "(chmod 600)", (unsigned) (st.st_mode & 07777));
    else
    if (st.st_size != MESH_AUDIT_KEY_BYTES)
        snprintf (why, why_size, "holds %lld bytes, not %d (a key is %d random bytes, e.g. "
                  "head -c %d /dev/urandom)", (long long) st.st_size, MESH_AUDIT_KEY_BYTES,
                  MESH_AUDIT_KEY_BYTES, MESH_AUDIT_KEY_BYTES);
    else {
        size_t have = 0;
        while (have < MESH_AUDIT_KEY_BYTES) {
            ssize_t n = read (fd, key + have, MESH_AUDIT_KEY_BYTES - have);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            have += (size_t) n;
        }
        if (have == MESH_AUDIT_KEY_BYTES)
            rc = 1;
        else {
            snprintf (why, why_size, "cannot be read whole");
            sodium_memzero (key, MESH_AUDIT_KEY_BYTES);
        }
    }
    close (fd);
    return rc;
}

//  ---------------------------------------------------------------------------------------
//  The tolerant reader behind the views.

typedef void (s_record_fn) (json_t *record, void *arg);

//  The reader behind every view.  MAX_BYTES 0 and FROM < 0: the whole log, its segments
//  included.  Otherwise the active file PATH only: from byte FROM (< 0: its end), but never
//  more than its last MAX_BYTES (then from the first whole line in them); a last line
//  without its newline (being written) is left for the next read, and *END_P (may be NULL)
//  is where the next read goes on.  NEEDLE (may be NULL): lines that do not hold it (any
//  case) are skipped before they are parsed, for a reader that wants one id.  A reader
//  that must stay cheap (the status page, on meshd's own thread) reads only this much.
static int
s_each_record_range (const char *path, int64_t from, size_t max_bytes, const char *needle,
                     s_record_fn *fn, void *arg, uint64_t *end_p)
{
    bool whole = max_bytes == 0 && from < 0;
    FILE *file = whole ? s_open (path) : path ? fopen (path, "re") : NULL;
    if (!file) {
        if (!whole)
            mesh_err ("audit: cannot read %s: %s", path ? path : "(null)",
                      path ? strerror (errno) : "no path");
        return 2;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int64_t lineno = 0, skipped = 0, first_skipped = 0;
    uint64_t budget = UINT64_MAX, at = 0;
    if (!whole) {
        struct stat st;
        uint64_t size = fstat (fileno (file), &st) == 0 ? (uint64_t) st.st_size : 0;
        uint64_t start = from < 0 || (uint64_t) from > size ? size : (uint64_t) from;
        bool cut = max_bytes && size - start > max_bytes;
        if (cut)
            start = size - max_bytes;
        budget = size - start;
        at = start;
        int c = '\n';
        if (start > 0 && fseeko (file, (off_t) start - (cut ? 1 : 0), SEEK_SET) == 0 && cut)
            c = fgetc (file);
        if (c != '\n') {               //  the window cuts a line: start after it
            n = getline (&line, &cap, file);
            uint64_t used = n > 0 ? (uint64_t) n : budget;
            at += used;
            budget = used < budget ? budget - used : 0;
        }
    }
    while (budget > 0 && (n = getline (&line, &cap, file)) >= 0) {
        if (!whole && (line[n - 1] != '\n' || (uint64_t) n > budget))
            break;                      //  not written whole yet: the next read has it
        budget = whole ? budget : budget - (uint64_t) n;
        at += (uint64_t) n;
        lineno++;
        if (needle && !strcasestr (line, needle))
            continue;
        json_t *record = json_loadb (line, (size_t) n, 0, NULL);
        if (json_is_object (record))
            fn (record, arg);
        else if (skipped++ == 0)
            first_skipped = lineno;
        json_decref (record);
    }
    if (end_p)
        *end_p = at;
    int rc = 0;
    if (ferror (file)) {
        mesh_err ("audit: read error in %s at line %" PRId64 ": %s", path, lineno + 1,
                  strerror (errno));
        rc = 2;
    }
    if (skipped)
        mesh_warn ("audit: %s: skipped %" PRId64 " line(s) that are not JSON objects, the "
                   "first at line %" PRId64 "; run verify", path, skipped, first_skipped);
    free (line);
    fclose (file);
    return rc;
}

static int
s_each_record (const char *path, s_record_fn *fn, void *arg)
{
    return s_each_record_range (path, -1, 0, NULL, fn, arg, NULL);
}

int
mesh_audit_each_record_from (const char *path, int64_t from, size_t max_bytes,
                             void (*fn) (json_t *record, void *arg), void *arg,
                             uint64_t *end_p)
{
    return s_each_record_range (path, from < 0 ? 0 : from, max_bytes, NULL, fn, arg, end_p);
}

static bool
s_type_is (json_t *record, const char *type)
{
    const char *value = json_string_value (json_object_get (record, "type"));
    return value && strcmp (value, type) == 0;
}

static const char *
s_str (json_t *record, const char *key)
{
    return json_string_value (json_object_get (record, key));
}

static bool
s_eq (const char *a, const char *b)
{
    return a && b && strcmp (a, b) == 0;
}

//  ISO 8601 UTC with milliseconds, or "-" without a usable time.
static void
s_iso (json_t *ts, char *buf, size_t size)
{
    if (!json_is_integer (ts) || json_integer_value (ts) < 0) {
        snprintf (buf, size, "-");
        return;
    }
    int64_t ms = json_integer_value (ts);
    time_t secs = (time_t) (ms / 1000);
    struct tm tm;
    if (!gmtime_r (&secs, &tm)) {
        snprintf (buf, size, "-");
        return;
    }
    char date[32];
    strftime (date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf (buf, size, "%s.%03dZ", date, (int) (ms % 1000));
}

//  A copy of S fit for one column of a terminal table: control characters become '?',
//  at most SIZE-1 bytes, "-" for NULL or empty.
static const char *
s_cell (const char *s, char *buf, size_t size)
{
    if (!s || !*s)
        return "-";
    size_t i = 0;
    for (; s[i] && i < size - 1; i++)
        buf[i] = (iscntrl ((unsigned char) s[i]) || s[i] == ' ') ? '?' : s[i];
    buf[i] = 0;
    return buf;
}

//  ---------------------------------------------------------------------------------------
//  list

typedef struct {
    const mesh_audit_filter_t *f;
    json_t *decisions;              //  array of the matching decision records, in order
    json_t *outcomes;               //  object: id -> first outcome status
} s_list_t;

static bool
s_matches (const mesh_audit_filter_t *f, json_t *decision)
{
    if (!f)
        return true;
    json_t *ts = json_object_get (decision, "ts");
    if (f->since_ms && (!json_is_integer (ts) || json_integer_value (ts) < f->since_ms))
        return false;
    if (f->until_ms && (!json_is_integer (ts) || json_integer_value (ts) >= f->until_ms))
        return false;
    if (f->agent && !s_eq (s_str (decision, "agent"), f->agent))
        return false;
    if (f->verdict && !s_eq (s_str (decision, "verdict"), f->verdict))
        return false;
    if (f->action
        && !s_eq (json_string_value (json_object_get (json_object_get (decision, "action"),
                                                      "name")), f->action))
        return false;
    return true;
}

static void
s_list_fn (json_t *record, void *arg)
{
    s_list_t *self = (s_list_t *) arg;
    const char *id = s_str (record, "id");
    if (s_type_is (record, "decision")) {
        if (s_matches (self->f, record))
            json_array_append (self->decisions, record);
    }
    else
    if (s_type_is (record, "outcome") && id && !json_object_get (self->outcomes, id)) {
        json_t *status = json_object_get (record, "status");
        json_object_set_new (self->outcomes, id,
                             json_is_string (status) ? json_copy (status) : json_string ("?"));
    }
}

static json_t *
s_string_or_null (const char *s)
{
    return s ? json_string (s) : json_null ();
}

static json_t *
s_integer_or_null (json_t *value)
{
    return json_is_integer (value) ? json_incref (value) : json_null ();
}

json_t *
mesh_audit_list_row (json_t *d, const char *outcome)
{
    char time[40];
    s_iso (json_object_get (d, "ts"), time, sizeof time);
    json_t *action = json_object_get (json_object_get (d, "action"), "name");
    json_t *row = json_object ();
    json_object_set_new (row, "seq", s_integer_or_null (json_object_get (d, "seq")));
    json_object_set_new (row, "ts", s_integer_or_null (json_object_get (d, "ts")));
    json_object_set_new (row, "time", json_string (time));
    json_object_set_new (row, "id", s_string_or_null (s_str (d, "id")));
    json_object_set_new (row, "agent", s_string_or_null (s_str (d, "agent")));
    json_object_set_new (row, "verdict", s_string_or_null (s_str (d, "verdict")));
    json_object_set_new (row, "action", s_string_or_null (json_string_value (action)));
    json_object_set_new (row, "tokens", s_integer_or_null (json_object_get (d, "tokens")));
    json_object_set_new (row, "fallback",
                         json_boolean (json_is_true (json_object_get (d, "fallback"))));
    json_object_set_new (row, "outcome", s_string_or_null (outcome));
    return row;
}

int
mesh_audit_list (const char *path, const mesh_audit_filter_t *f, bool json, FILE *out)
{
    s_list_t self = { f, json_array (), json_object () };
    int rc = s_each_record (path, s_list_fn, &self);
    if (rc == 0) {
        json_t *rows = json ? json_array () : NULL;
        if (!json)
            fprintf (out, "%-6s %-24s %-12s %-16s %-16s %-20s %7s %s\n", "SEQ", "TIME", "ID",
                     "AGENT", "VERDICT", "ACTION", "TOKENS", "OUTCOME");
        size_t index;
        json_t *d;
        json_array_foreach (self.decisions, index, d) {
            char time[40];
            s_iso (json_object_get (d, "ts"), time, sizeof time);
            const char *id = s_str (d, "id");
            json_t *action = json_object_get (json_object_get (d, "action"), "name");
            json_t *tokens = json_object_get (d, "tokens");
            const char *outcome = id ? json_string_value (json_object_get (self.outcomes, id))
                                     : NULL;
            if (json)
                json_array_append_new (rows, mesh_audit_list_row (d, outcome));
            else {
                char c_id[13], c_agent[64], c_verdict[64], c_action[64], c_outcome[32];
                char c_seq[24], c_tokens[24];
                json_t *seq = json_object_get (d, "seq");
                snprintf (c_seq, sizeof c_seq, "%" JSON_INTEGER_FORMAT,
                          json_is_integer (seq) ? json_integer_value (seq) : 0);
                if (json_is_integer (tokens))
                    snprintf (c_tokens, sizeof c_tokens, "%" JSON_INTEGER_FORMAT,
                              json_integer_value (tokens));
                else
                    snprintf (c_tokens, sizeof c_tokens, "-");
                fprintf (out, "%-6s %-24s %-12s %-16s %-16s %-20s %7s %s\n",
                         json_is_integer (seq) ? c_seq : "-", time,
                         s_cell (id, c_id, sizeof c_id),
                         s_cell (s_str (d, "agent"), c_agent, sizeof c_agent),
                         s_cell (s_str (d, "verdict"), c_verdict, sizeof c_verdict),
                         s_cell (json_string_value (action), c_action, sizeof c_action),
                         c_tokens, s_cell (outcome, c_outcome, sizeof c_outcome));
            }
        }
        if (json) {
            json_dumpf (rows, out, JSON_COMPACT);
            fputc ('\n', out);
            json_decref (rows);
        }
    }
    json_decref (self.decisions);
    json_decref (self.outcomes);
    return rc;
}

//  ---------------------------------------------------------------------------------------
//  show

typedef struct {
    const char *id;
    size_t id_len;
    bool prefix;                    //  ID is a prefix (no exact match required)
    json_t *decision;               //  the first decision that matched
    json_t *outcomes;               //  object: matching id -> its first outcome
    json_t *approvals;              //  object: matching id -> array of its approval records
    char *other_id;                 //  a second, different id that matched the prefix
} s_show_t;

//  At most this many approval records are kept per id (meshd writes one).
#define S_SHOW_APPROVALS_MAX 16

static void
s_show_fn (json_t *record, void *arg)
{
    s_show_t *self = (s_show_t *) arg;
    const char *id = s_str (record, "id");
    if (!id)
        return;
    bool exact = strcmp (id, self->id) == 0;
    bool match = exact || (self->prefix && strncasecmp (id, self->id, self->id_len) == 0);
    if (!match)
        return;
    if (s_type_is (record, "decision")) {
        const char *have = self->decision ? s_str (self->decision, "id") : NULL;
        if (!self->decision
            || (exact && !s_eq (have, self->id))) {
            //  An exact match wins over a prefix match seen before it.
            if (self->decision && !self->other_id)
                self->other_id = strdup (have);
            json_decref (self->decision);
            self->decision = json_incref (record);
        }
        else
        if (!s_eq (have, id) && !self->other_id)
            self->other_id = strdup (id);
    }
    else
    if (s_type_is (record, "outcome") && !json_object_get (self->outcomes, id))
        json_object_set (self->outcomes, id, record);
    else
    if (s_type_is (record, "approval")) {
        json_t *list = json_object_get (self->approvals, id);
        if (!list)
            json_object_set_new (self->approvals, id, list = json_array ());
        if (json_array_size (list) < S_SHOW_APPROVALS_MAX)
            json_array_append (list, record);
    }
}

//  The timeline.  Every value is read as optional: a field that is absent or of another
//  type is left out (or shown as "-"), never guessed.  Text that came from outside (model
//  output, event fields, rule reasons) is printed bounded and with control characters
//  escaped, so a record cannot move the terminal's cursor or run past a screen.

#define S_EXCERPT 240               //  bytes of a model's output shown per attempt
#define S_LINE    400               //  bytes of any other value shown

//  S (LEN bytes) on one line: at most MAX bytes (cut at a UTF-8 boundary, then "..." and
//  the full size), control characters and C1 controls escaped.
static void
s_put_text (FILE *out, const char *s, size_t len, size_t max)
{
    size_t i = 0;
    for (; i < len && i < max; i++) {
        unsigned char c = (unsigned char) s[i];
        if (c == '\n')
            fputs ("\\n", out);
        else if (c == '\t')
            fputs ("\\t", out);
        else if (c == '\r')
            fputs ("\\r", out);
        else if (c < 0x20 || c == 0x7f)
            fprintf (out, "\\x%02x", c);
        else if (c == 0xc2 && i + 1 < len && (unsigned char) s[i + 1] >= 0x80
                 && (unsigned char) s[i + 1] <= 0x9f) {
            fprintf (out, "\\u%04x", (unsigned char) s[i + 1]);
            i++;
        }
        else
            fputc (c, out);
    }
    if (i < len) {
        //  Finish the UTF-8 sequence the cut fell into, then say how much there was.
        while (i < len && ((unsigned char) s[i] & 0xc0) == 0x80)
            fputc (s[i++], out);
        if (i < len)
            fprintf (out, "... (%zu bytes)", len);
    }
}

static void s_put_value (FILE *out, json_t *value, size_t max);

static void
s_put_str (FILE *out, json_t *value, size_t max)
{
    if (json_is_string (value))
        s_put_text (out, json_string_value (value), json_string_length (value), max);
    else
        s_put_value (out, value, max);
}

//  Any JSON value, compact, shortest reals, bounded; "-" for NULL.
static void
s_put_value (FILE *out, json_t *value, size_t max)
{
    if (!value) {
        fputc ('-', out);
        return;
    }
    json_t *wrap = json_pack ("[O]", value);
    char *text = wrap ? mesh_jsonout_dumps (wrap) : NULL;
    if (text && strlen (text) >= 2)
        s_put_text (out, text + 1, strlen (text) - 2, max);
    else
        fputc ('?', out);
    free (text);
    json_decref (wrap);
}

//  " NAME VALUE" for each of KEYS present in OBJ.
static void
s_put_fields (FILE *out, json_t *obj, const char *const *keys)
{
    for (; *keys; keys++) {
        json_t *v = json_object_get (obj, *keys);
        if (!v || json_is_null (v) || (json_is_string (v) && !json_string_length (v)))
            continue;
        fprintf (out, " %s ", *keys);
        s_put_str (out, v, S_LINE);
    }
}

static void
s_put_time (FILE *out, json_t *ts)
{
    char time[40];
    s_iso (ts, time, sizeof time);
    fprintf (out, "%-24s ", time);
}

static void
s_show_attempt (FILE *out, json_t *a, size_t n)
{
    fprintf (out, "  attempt %zu:", n);
    json_t *step = json_object_get (a, "step");
    if (json_is_integer (step))
        fprintf (out, " step %" JSON_INTEGER_FORMAT, json_integer_value (step));
    static const char *const head[] = {"backend", "model", "tier", NULL};
    s_put_fields (out, a, head);
    json_t *charged = json_object_get (a, "charged");
    if (json_is_integer (charged))
        fprintf (out, ", %" JSON_INTEGER_FORMAT " tokens", json_integer_value (charged));
    json_t *pt = json_object_get (a, "prompt_tokens"), *ct = json_object_get (a, "completion_tokens");
    if (json_is_integer (pt) || json_is_integer (ct)) {
        fprintf (out, " (prompt ");
        s_put_value (out, pt, 24);
        fprintf (out, ", completion ");
        s_put_value (out, ct, 24);
        fprintf (out, "%s)", json_is_true (json_object_get (a, "estimated")) ? ", estimated" : "");
    }
    json_t *latency = json_object_get (a, "latency_ms");
    if (json_is_integer (latency))
        fprintf (out, ", %" JSON_INTEGER_FORMAT " ms", json_integer_value (latency));
    static const char *const tail[] = {"finish_reason", "error", "detail", "escalated", NULL};
    s_put_fields (out, a, tail);
    fputc ('\n', out);
    json_t *output = json_object_get (a, "output");
    if (json_is_string (output)) {
        fprintf (out, "    output: ");
        s_put_text (out, json_string_value (output), json_string_length (output), S_EXCERPT);
        json_t *bytes = json_object_get (a, "output_bytes");
        if (json_is_true (json_object_get (a, "output_truncated")) && json_is_integer (bytes))
            fprintf (out, " (the record keeps an excerpt of %" JSON_INTEGER_FORMAT " bytes)",
                     json_integer_value (bytes));
        fputc ('\n', out);
    }
    json_t *proposal = json_object_get (a, "proposal");
    if (json_is_object (proposal)) {
        fprintf (out, "    proposal: ");
        s_put_str (out, json_object_get (proposal, "action"), 64);
        json_t *params = json_object_get (proposal, "params");
        if (params) {
            fputc (' ', out);
            s_put_value (out, params, S_LINE);
        }
        json_t *confidence = json_object_get (proposal, "confidence");
        if (json_is_number (confidence)) {
            fprintf (out, " confidence ");
            s_put_value (out, confidence, 32);
        }
        fputc ('\n', out);
    }
    size_t i;
    json_t *v;
    json_array_foreach (json_object_get (a, "verdicts"), i, v) {
        fprintf (out, "    rule ");
        s_put_str (out, json_object_get (v, "rule"), 64);
        fprintf (out, ": ");
        s_put_str (out, json_object_get (v, "verdict"), 32);
        json_t *reason = json_object_get (v, "reason");
        if (json_is_string (reason)) {
            fprintf (out, ": ");
            s_put_text (out, json_string_value (reason), json_string_length (reason), S_LINE);
        }
        json_t *approval = json_object_get (v, "approval");
        if (json_is_string (approval)) {
            fprintf (out, " (asks approval: ");
            s_put_str (out, approval, S_LINE);
            fputc (')', out);
        }
        fputc ('\n', out);
    }
    if (json_is_boolean (json_object_get (a, "accepted")))
        fprintf (out, "    %s\n", json_is_true (json_object_get (a, "accepted"))
                                      ? "accepted" : "not accepted");
}

static void
s_show_timeline (FILE *out, json_t *d, json_t *outcome, json_t *approvals)
{
    json_t *seq = json_object_get (d, "seq");
    fprintf (out, "decision ");
    s_put_str (out, json_object_get (d, "id"), 80);
    fprintf (out, " (seq ");
    s_put_value (out, seq, 24);
    fprintf (out, ")\n");
    static const char *const who[] = {"agent", "mode", "rules_hash", NULL};
    fprintf (out, " ");
    s_put_fields (out, d, who);
    fputc ('\n', out);

    json_t *incident = json_object_get (d, "incident");
    json_t *ctx = json_object_get (d, "ctx");
    //  The triggering event: where it came from and what it said.
    json_t *ts_ms = json_object_get (incident, "ts_ms");
    s_put_time (out, ts_ms);
    fprintf (out, "event:");
    static const char *const where[] = {"topic", "partition", "offset", NULL};
    s_put_fields (out, json_object_get (d, "trigger"), where);
    json_t *event = json_object_get (ctx, "event");
    if (event) {
        fprintf (out, " ");
        s_put_value (out, event, S_LINE);
    }
    fputc ('\n', out);
    //  The detector's view.
    if (json_is_object (incident)) {
        s_put_time (out, ts_ms);
        fprintf (out, "detector:");
        static const char *const view[] = {"detector", "series", "value", "score", "mean",
                                           "stddev", "z", "n", NULL};
        s_put_fields (out, incident, view);
        fputc ('\n', out);
        json_t *group = json_object_get (incident, "group");
        if (json_is_object (group)) {
            s_put_time (out, json_object_get (group, "last_ms"));
            fprintf (out, "incident group:");
            static const char *const g[] = {"key", "by", "members", "points", "first_at",
                                            "last_at", "notification", "why", NULL};
            s_put_fields (out, group, g);
            fputc ('\n', out);
        }
    }
    //  Each model call, with the rules' verdicts on what it proposed.
    json_t *attempts = json_object_get (d, "attempts");
    s_put_time (out, json_object_get (d, "ts"));
    fprintf (out, "reasoning: %zu attempt(s)", json_array_size (attempts));
    json_t *tokens = json_object_get (d, "tokens");
    if (json_is_integer (tokens))
        fprintf (out, ", %" JSON_INTEGER_FORMAT " tokens", json_integer_value (tokens));
    json_t *budget = json_object_get (d, "budget");
    static const char *const b[] = {"incident_cap", "refused_by", NULL};
    s_put_fields (out, budget, b);
    fputc ('\n', out);
    size_t i;
    json_t *a;
    json_array_foreach (attempts, i, a)
        if (json_is_object (a))
            s_show_attempt (out, a, i + 1);
    //  The verdict and what it does.
    s_put_time (out, json_object_get (d, "ts"));
    fprintf (out, "verdict: ");
    s_put_str (out, json_object_get (d, "verdict"), 64);
    if (json_is_true (json_object_get (d, "fallback")))
        fprintf (out, " (fallback)");
    json_t *reason = json_object_get (d, "reason");
    if (json_is_string (reason)) {
        fprintf (out, ": ");
        s_put_str (out, reason, S_LINE);
    }
    fputc ('\n', out);
    json_t *action = json_object_get (d, "action");
    s_put_time (out, json_object_get (d, "ts"));
    fprintf (out, "action: ");
    if (json_is_object (action)) {
        s_put_str (out, json_object_get (action, "name"), 64);
        static const char *const k[] = {"kind", "topic", "params", NULL};
        s_put_fields (out, action, k);
    }
    else
        fprintf (out, "none");
    fputc ('\n', out);
    json_t *asked = json_object_get (d, "approval");
    if (json_is_object (asked)) {
        s_put_time (out, json_object_get (d, "ts"));
        fprintf (out, "approval asked:");
        static const char *const k[] = {"reason", "rules", NULL};
        s_put_fields (out, asked, k);
        fputc ('\n', out);
    }
    json_array_foreach (approvals, i, a) {
        s_put_time (out, json_object_get (a, "ts"));
        fprintf (out, "approval:");
        static const char *const k[] = {"state", "action", "reason", "would_run", NULL};
        s_put_fields (out, a, k);
        fputc ('\n', out);
    }
    if (!outcome) {
        fprintf (out, "%-24s outcome: none recorded\n", "-");
        return;
    }
    json_t *resolved = json_object_get (outcome, "approval");
    if (json_is_object (resolved)) {
        s_put_time (out, json_object_get (resolved, "at"));
        fprintf (out, "approval resolved:");
        static const char *const k[] = {"how", "by", "comment", NULL};
        s_put_fields (out, resolved, k);
        fputc ('\n', out);
    }
    s_put_time (out, json_object_get (outcome, "ts"));
    fprintf (out, "outcome: ");
    s_put_str (out, json_object_get (outcome, "status"), 64);
    fprintf (out, " (seq ");
    s_put_value (out, json_object_get (outcome, "seq"), 24);
    fputc (')', out);
    static const char *const k[] = {"detail", "recovered", NULL};
    s_put_fields (out, outcome, k);
    fputc ('\n', out);
    json_t *exec = json_object_get (outcome, "exec");
    if (json_is_object (exec)) {
        fprintf (out, "  exec:");
        static const char *const e[] = {"argv", "exit", "signal", "timed_out", "duration_ms",
                                        "stdout", "stderr", NULL};
        s_put_fields (out, exec, e);
        fputc ('\n', out);
    }
}

int
mesh_audit_show_find (const char *path, const char *id, size_t max_bytes, json_t **result_p,
                      char *why, size_t why_size)
{
    *result_p = NULL;
    if (!id || !*id) {
        snprintf (why, why_size, "audit show: no decision id given");
        return 1;
    }
    s_show_t self = { .id = id, .id_len = strlen (id), .prefix = strlen (id) >= 8,
                      .outcomes = json_object (), .approvals = json_object () };
    //  With a window: only lines that hold the id are parsed (ids are hex, written as is).
    int rc = s_each_record_range (path, max_bytes ? 0 : -1, max_bytes, max_bytes ? id : NULL,
                                  s_show_fn, &self, NULL);
    if (rc != 0)
        snprintf (why, why_size, "audit: cannot read %s", path ? path : "(null)");
    else {
        const char *found = self.decision ? s_str (self.decision, "id") : NULL;
        bool exact = s_eq (found, id);
        if (!found) {
            if (strlen (id) < 8)
                snprintf (why, why_size, "audit show: no decision with id '%s' (an id prefix "
                          "needs at least 8 characters)", id);
            else
                snprintf (why, why_size, "audit show: no decision with id or id prefix '%s'",
                          id);
            rc = 1;
        }
        else
        if (!exact && self.other_id) {
            snprintf (why, why_size, "audit show: id prefix '%s' is ambiguous: it matches %s "
                      "and %s; give more characters", id, found, self.other_id);
            rc = 1;
        }
        else {
            json_t *outcome = json_object_get (self.outcomes, found);
            json_t *approvals = json_object_get (self.approvals, found);
            *result_p = json_pack ("{s:O, s:O, s:o}", "decision", self.decision,
                                   "outcome", outcome ? outcome : json_null (),
                                   "approvals", approvals ? json_incref (approvals)
                                                          : json_array ());
        }
    }
    json_decref (self.decision);
    json_decref (self.outcomes);
    json_decref (self.approvals);
    free (self.other_id);
    return rc;
}

int
mesh_audit_show (const char *path, const char *id, bool json, FILE *out)
{
    json_t *res = NULL;
    char why[1024];
    int rc = mesh_audit_show_find (path, id, 0, &res, why, sizeof why);
    if (rc == 1)
        mesh_err ("%s", why);           //  (2: s_open logged why)
    if (rc != 0)
        return rc;
    if (json) {
        char *text = mesh_jsonout_dumps (res);
        if (text)
            fprintf (out, "%s\n", text);
        free (text);
    }
    else {
        json_t *outcome = json_object_get (res, "outcome");
        json_t *approvals = json_object_get (res, "approvals");
        s_show_timeline (out, json_object_get (res, "decision"),
                         json_is_null (outcome) ? NULL : outcome,
                         json_array_size (approvals) ? approvals : NULL);
    }
    json_decref (res);
    return 0;
}

//  ---------------------------------------------------------------------------------------
//  stats and each_decision

static void
s_stats_fn (json_t *record, void *arg)
{
    mesh_audit_stats_t *stats = (mesh_audit_stats_t *) arg;
    stats->records++;
    if (s_type_is (record, "decision")) {
        stats->decisions++;
        const char *verdict = s_str (record, "verdict");
        if (s_eq (verdict, "accepted"))
            stats->accepted++;
        else
        if (s_eq (verdict, "rejected"))
            stats->rejected++;
        else
        if (s_eq (verdict, "budget_exhausted"))
            stats->budget_exhausted++;
        if (json_is_true (json_object_get (record, "fallback")))
            stats->fallback++;
        json_t *tokens = json_object_get (record, "tokens");
        if (json_is_integer (tokens) && json_integer_value (tokens) > 0)
            stats->tokens += (uint64_t) json_integer_value (tokens);
        json_t *attempts = json_object_get (record, "attempts");
        if (json_is_array (attempts))
            stats->attempts += json_array_size (attempts);
    }
    else
    if (s_type_is (record, "outcome")) {
        stats->outcomes++;
        if (s_eq (s_str (record, "status"), "failed"))
            stats->outcomes_failed++;
    }
}

int
mesh_audit_stats (const char *path, mesh_audit_stats_t *stats)
{
    memset (stats, 0, sizeof *stats);
    int rc = s_each_record (path, s_stats_fn, stats);
    if (stats->accepted)
        stats->tokens_per_accepted = (double) stats->tokens / (double) stats->accepted;
    return rc;
}

typedef struct {
    void (*fn) (json_t *decision, void *arg);
    void *arg;
} s_each_t;

static void
s_each_fn (json_t *record, void *arg)
{
    s_each_t *self = (s_each_t *) arg;
    if (s_type_is (record, "decision"))
        self->fn (record, self->arg);
}

int
mesh_audit_each_decision (const char *path, void (*fn) (json_t *decision, void *arg),
                          void *arg)
{
    s_each_t self = { fn, arg };
    return s_each_record (path, s_each_fn, &self);
}

int
mesh_audit_each_record (const char *path, void (*fn) (json_t *record, void *arg), void *arg)
{
    return s_each_record (path, fn, arg);
}

/*  fuzz_audit - the decision-log reader (audit/audit.c) on any log file.
 *
 *  `meshctl verify/list/show/stats` and the ledger's start-up scan read a log that may
 *  have been damaged or edited.  Byte 0 of the input is flags: bit 0 "seal", bit 1
 *  "with a MAC key", bit 2 "JSON output".  Without seal the rest of the input is the
 *  file as it is.  A random line never carries a valid SHA-256, so with seal each
 *  line of the rest is instead the inside of a record after its seq and prev fields
 *  (for example `"ts":1,"type":"decision",...`), and the harness completes it as the
 *  ledger would: {"seq":N,"prev":"<previous hash>", the line, with a key
 *  ,"mac":"<HMAC>", then ,"hash":"<SHA-256>"}.  That lets mutations reach what the
 *  reader does after a record's hash has verified.  The file then goes through the
 *  scanner, verify, list, show and stats.
 */
#include "audit.h"
#include "fuzz_common.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char s_key[MESH_AUDIT_KEY_BYTES] = "fuzz-key-fuzz-key-fuzz-key-fuzz";
static FILE *s_null;

//  Complete each line of LINES as a chained record; returns the log (caller frees).
static char *
s_seal (const uint8_t *lines, size_t size, bool with_key, size_t *len_p)
{
    char *log = NULL;
    FILE *out = open_memstream (&log, len_p);
    char prev[65];
    memset (prev, '0', 64);
    prev[64] = 0;
    long long seq = 0;
    for (size_t at = 0; at < size;) {
        const uint8_t *nl = memchr (lines + at, '\n', size - at);
        size_t len = nl ? (size_t) (nl - (lines + at)) : size - at;
        char *body = NULL;
        size_t body_len = 0;
        FILE *b = open_memstream (&body, &body_len);
        fprintf (b, "{\"seq\":%lld,\"prev\":\"%s\",", ++seq, prev);
        fwrite (lines + at, 1, len, b);
        fflush (b);
        if (with_key) {
            char mac[65];
            mesh_audit_mac_hex (s_key, body, body_len, mac);
            fprintf (b, ",\"mac\":\"%s\"", mac);
        }
        fclose (b);
        unsigned char digest[32];
        crypto_hash_sha256 (digest, (unsigned char *) body, body_len);
        sodium_bin2hex (prev, sizeof prev, digest, sizeof digest);
        fwrite (body, 1, body_len, out);
        fprintf (out, ",\"hash\":\"%s\"}\n", prev);
        free (body);
        at += len + 1;
    }
    fclose (out);
    return log;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (!s_null) {
        fuzz_quiet ();
        if (sodium_init () < 0 || !(s_null = fopen ("/dev/null", "w")))
            abort ();
    }
    if (size < 1)
        return 0;
    bool seal = data[0] & 1, with_key = data[0] & 2, json = data[0] & 4;
    const unsigned char *key = with_key ? s_key : NULL;
    const char *path;
    if (seal) {
        size_t len = 0;
        char *log = s_seal (data + 1, size - 1, with_key, &len);
        path = fuzz_file ("decisions.jsonl", (const uint8_t *) log, len);
        free (log);
    }
    else
        path = fuzz_file ("decisions.jsonl", data + 1, size - 1);

    FILE *file = fopen (path, "r");
    if (!file)
        abort ();
    mesh_audit_scan_t scan;
    mesh_audit_scan (file, key, &scan, NULL, NULL);
    fclose (file);
    if (scan.bad_line < 0 || scan.records < 0 || strnlen (scan.why, sizeof scan.why) == sizeof scan.why)
        abort ();
    mesh_audit_verify_opts_t opts = { .json = json, .head_advisory = true, .key = key };
    mesh_audit_verify_with (path, &opts, s_null);
    mesh_audit_list (path, NULL, json, s_null);
    mesh_audit_filter_t filter = { .since_ms = 1, .until_ms = 4102444800000LL, .agent = "ops",
                                   .verdict = "accepted", .action = "scale_out" };
    mesh_audit_list (path, &filter, !json, s_null);
    mesh_audit_show (path, "deadbeef", json, s_null);
    mesh_audit_stats_t stats;
    mesh_audit_stats (path, &stats);
    return 0;
}

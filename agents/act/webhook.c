/*  webhook - stage 6, kind "webhook": POST one signed JSON body to a configured URL.
 *  Data path: event -> detect -> incident -> reason -> gate -> [act] -> record.
 *
 *  The receiver must be able to tell that a request is ours and fresh, and the sender
 *  must not become a way into the network it runs in.  So the file is shaped around
 *  two checks made for every delivery, before any byte leaves:
 *
 *  Who may be reached.  The model chooses params, never the URL, but the URL's host is
 *  a name, and a name can point anywhere, including the cloud metadata service or a
 *  loopback admin port, and can point somewhere else a second later (DNS rebinding).
 *  We resolve the name ourselves, check every address it has, and hand exactly those
 *  addresses to libcurl (CURLOPT_RESOLVE) so that it never asks DNS again; no proxy
 *  (a proxy would resolve the name itself), no redirects (a 302 to 169.254.169.254 is
 *  the classic way around a check made only on the first URL), and only the https
 *  scheme unless the spec allows http.
 *
 *  Who sent it.  Each attempt carries its time and an HMAC-SHA256 over
 *  "<timestamp>.<body>" with a secret only meshd and the receiver hold (Stripe's
 *  scheme; docs/actions.md has a receiver in a few lines).  The secret is read from its
 *  file for every delivery, so rotating it needs no reload, and wiped when the delivery
 *  ends; it is never in a log line or an outcome.
 *
 *  Retries are the backend's (agents/backend/backend_http.c): a fresh connection per
 *  attempt (libcurl would otherwise re-send silently on a dead keep-alive connection),
 *  full-jitter backoff (wire.h), the same Idempotency-Key every time so the receiver can
 *  drop a repeat: a timed-out attempt may well have been processed.
 *
 *  The URL's path and query are never logged or recorded: some services put their token
 *  there.  Details name the host and port only.
 */
#include "webhook.h"
#include "log.h"
#include "wire.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_ATTEMPTS_MAX      10
#define S_EXCERPT_MAX       (1024 * 1024)   //  excerpt_bytes is clamped to this
#define S_DRAIN_MAX         (1024 * 1024)   //  response bytes read before we hang up
#define S_ADDRESSES_MAX     32              //  addresses of one name we check and pin
#define S_DETAIL_MAX        600
#define S_LOCATION_MAX      300

//  Names of cloud metadata services: refused whatever they resolve to (inside the cloud
//  they resolve to the link-local address, which is refused anyway; outside, a name
//  like these should never be a webhook).
static const char *const s_metadata_names[] = {
    "metadata", "metadata.google.internal", "metadata.goog", "instance-data",
    "instance-data.ec2.internal", "metadata.tencentyun.com", NULL
};

//  Headers we set, or that change how the request is framed: the spec's extra headers
//  may not be these (the config refuses them too; a spec built by hand is checked here).
static const char *const s_reserved_headers[] = {
    "host", "content-length", "content-type", "idempotency-key", "transfer-encoding",
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "expect",
    "user-agent", NULL
};
//  Credentials are never written in the config: the receiver checks the signature.
static const char *const s_secret_headers[] = {
    "authorization", "proxy-authorization", "cookie", NULL
};

static pthread_once_t s_init_once = PTHREAD_ONCE_INIT;
static bool s_init_ok;

static void
s_init (void)
{
    s_init_ok = curl_global_init (CURL_GLOBAL_DEFAULT) == CURLE_OK && sodium_init () >= 0;
}

//  --- the address check ----------------------------------------------------------------

static const char *
s_v4_denied (uint32_t a, bool allow_private)
{
    if ((a >> 24) == 0)
        return "unspecified (0.0.0.0/8)";
    if ((a >> 16) == 0xa9fe)
        return "link-local (169.254.0.0/16, cloud metadata)";
    if (a == 0x646464c8)
        return "cloud metadata (100.100.100.200)";
    if ((a >> 28) == 0xe)
        return "multicast (224.0.0.0/4)";
    if ((a >> 28) == 0xf)
        return "reserved (240.0.0.0/4)";
    if (allow_private)
        return NULL;
    if ((a >> 24) == 127)
        return "loopback (127.0.0.0/8)";
    if ((a >> 24) == 10)
        return "private (10.0.0.0/8)";
    if ((a >> 20) == 0xac1)
        return "private (172.16.0.0/12)";
    if ((a >> 16) == 0xc0a8)
        return "private (192.168.0.0/16)";
    if ((a >> 22) == (0x64400000u >> 22))
        return "shared address space (100.64.0.0/10)";
    return NULL;
}

static uint32_t
s_v4_at (const uint8_t *b)
{
    return (uint32_t) b[0] << 24 | (uint32_t) b[1] << 16 | (uint32_t) b[2] << 8 | b[3];
}

static const char *
s_v6_denied (const uint8_t *b, bool allow_private)
{
    static const uint8_t zero[12] = { 0 };
    static const uint8_t nat64[12] = { 0x00, 0x64, 0xff, 0x9b };
    static const uint8_t ec2[16] = { 0xfd, 0x00, 0x0e, 0xc2, [14] = 0x02, [15] = 0x54 };
    //  An IPv4 address inside: mapped, compatible, NAT64.
    if (!memcmp (b, zero, 10) && b[10] == 0xff && b[11] == 0xff)
        return s_v4_denied (s_v4_at (b + 12), allow_private);
    if (!memcmp (b, zero, 12)) {
        uint32_t v4 = s_v4_at (b + 12);
        if (v4 == 0)
            return "unspecified (::)";
        if (v4 == 1)
            return allow_private ? NULL : "loopback (::1)";
        return s_v4_denied (v4, allow_private);
    }
    if (!memcmp (b, nat64, 12))
        return s_v4_denied (s_v4_at (b + 12), allow_private);
    if (b[0] == 0xff)
        return "multicast (ff00::/8)";
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
        return "link-local (fe80::/10)";
    if (!memcmp (b, ec2, 16))
        return "cloud metadata (fd00:ec2::254)";
    if (allow_private)
        return NULL;
    if ((b[0] & 0xfe) == 0xfc)
        return "unique local (fc00::/7)";
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)
        return "site-local (fec0::/10)";
    return NULL;
}

const char *
mesh_webhook_address_denied (const struct sockaddr *address, bool allow_private)
{
    if (!address)
        return "no address";
    if (address->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *) address;
        return s_v4_denied (ntohl (in->sin_addr.s_addr), allow_private);
    }
    if (address->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) address;
        return s_v6_denied (in6->sin6_addr.s6_addr, allow_private);
    }
    return "not an IP address";
}

bool
mesh_webhook_address_allowed (const struct sockaddr *address, bool allow_private)
{
    return mesh_webhook_address_denied (address, allow_private) == NULL;
}

//  --- the signature --------------------------------------------------------------------

void
mesh_webhook_sign (const unsigned char *secret, size_t secret_len, long timestamp,
                   const char *body, size_t body_len, char out[65])
{
    char prefix[32];
    int prefix_len = snprintf (prefix, sizeof prefix, "%ld.", timestamp);
    crypto_auth_hmacsha256_state state;
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_init (&state, secret, secret_len);
    crypto_auth_hmacsha256_update (&state, (const unsigned char *) prefix, (size_t) prefix_len);
    crypto_auth_hmacsha256_update (&state, (const unsigned char *) body, body_len);
    crypto_auth_hmacsha256_final (&state, mac);
    sodium_bin2hex (out, 65, mac, sizeof mac);
    sodium_memzero (&state, sizeof state);
    sodium_memzero (mac, sizeof mac);
}

//  --- the secret -----------------------------------------------------------------------

//  Read the secret into SECRET (MESH_WEBHOOK_SECRET_MAX + 1 bytes).  0 and *LEN, or -1
//  with a reason in ERR naming the file (never its content).
static int
s_read_secret (const mesh_action_webhook_t *hook, unsigned char *secret, size_t *len,
               char *err, size_t err_size)
{
    char path[4096];
    const char *what;
    if (hook->secret_file && *hook->secret_file) {
        what = "secret_file";
        if (snprintf (path, sizeof path, "%s", hook->secret_file) >= (int) sizeof path) {
            snprintf (err, err_size, "secret_file: path too long");
            return -1;
        }
    }
    else if (hook->secret_credential && *hook->secret_credential) {
        what = "secret_credential";
        const char *name = hook->secret_credential;
        if (strchr (name, '/') || !strcmp (name, ".") || !strcmp (name, "..")) {
            snprintf (err, err_size, "secret_credential %.100s: a credential name has no '/'",
                      name);
            return -1;
        }
        const char *dir = getenv ("CREDENTIALS_DIRECTORY");
        if (!dir || !*dir) {
            snprintf (err, err_size, "secret_credential %.100s: $CREDENTIALS_DIRECTORY is not "
                      "set (LoadCredential= in the service unit)", name);
            return -1;
        }
        if (snprintf (path, sizeof path, "%s/%s", dir, name) >= (int) sizeof path) {
            snprintf (err, err_size, "secret_credential %.100s: path too long", name);
            return -1;
        }
    }
    else {
        snprintf (err, err_size, "no secret_file or secret_credential: a webhook is never "
                  "sent unsigned");
        return -1;
    }
    int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        snprintf (err, err_size, "cannot open %s %.300s: %s", what, path, strerror (errno));
        return -1;
    }
    struct stat st;
    if (fstat (fd, &st) || !S_ISREG (st.st_mode)) {
        close (fd);
        snprintf (err, err_size, "%s %.300s: not a regular file", what, path);
        return -1;
    }
    size_t n = 0;
    bool failed = false;
    while (n < MESH_WEBHOOK_SECRET_MAX + 1) {
        ssize_t got = read (fd, secret + n, MESH_WEBHOOK_SECRET_MAX + 1 - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            failed = true;
        if (got <= 0)
            break;
        n += (size_t) got;
    }
    close (fd);
    bool too_long = n > MESH_WEBHOOK_SECRET_MAX;
    while (!too_long && n > 0 && (secret[n - 1] == '\n' || secret[n - 1] == '\r'))
        n--;
    if (failed || too_long || n == 0) {
        sodium_memzero (secret, MESH_WEBHOOK_SECRET_MAX + 1);
        snprintf (err, err_size, "%s %.300s: %s", what, path,
                  failed ? "read error" : too_long ? "larger than 4 KiB" : "empty");
        return -1;
    }
    *len = n;
    return 0;
}

//  --- text helpers ---------------------------------------------------------------------

//  Length of the valid UTF-8 sequence at P (at most LEFT bytes), 0 if invalid; *PREFIX
//  set when the bytes are a valid start cut short by LEFT.
static size_t
s_utf8_len (const unsigned char *p, size_t left, bool *prefix)
{
    *prefix = false;
    unsigned char c = p[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c < 0x80)
        return 1;
    else if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0;          //  no overlong forms
        if (c == 0xed)
            hi = 0x9f;          //  no surrogates
    }
    else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90;
        if (c == 0xf4)
            hi = 0x8f;          //  at most U+10FFFF
    }
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if (i >= left) {
            *prefix = true;
            return 0;
        }
        unsigned char min = i == 1 ? lo : 0x80, max = i == 1 ? hi : 0xbf;
        if (p[i] < min || p[i] > max)
            return 0;
    }
    return n;
}

//  DATA (SIZE bytes) as a JSON string, invalid UTF-8 replaced by '?'; when CUT (the
//  response went on), a sequence cut short at the end is dropped, not replaced.
static json_t *
s_excerpt (const char *data, size_t size, bool cut)
{
    char *text = malloc (size + 1);
    if (!text)
        return NULL;
    size_t out = 0;
    const unsigned char *p = (const unsigned char *) data;
    for (size_t i = 0; i < size;) {
        bool prefix;
        size_t n = s_utf8_len (p + i, size - i, &prefix);
        if (n) {
            memcpy (text + out, p + i, n);
            out += n;
            i += n;
        }
        else if (prefix && cut)
            break;
        else {
            text[out++] = '?';
            i++;
        }
    }
    json_t *string = json_stringn (text, out);
    free (text);
    return string;
}

//  Copy TEXT (LEN bytes) into OUT as one line of printable ASCII, at most OUT_SIZE - 1.
static void
s_one_line (char *out, size_t out_size, const char *text, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < out_size; i++) {
        unsigned char c = (unsigned char) text[i];
        out[n++] = c >= 0x20 && c < 0x7f ? (char) c : '?';
    }
    out[n] = 0;
}

//  --- one delivery ---------------------------------------------------------------------

typedef struct {
    //  what to send
    const mesh_action_webhook_t *hook;
    const char *name;               //  the action's, for messages
    const char *id;
    char *payload;
    size_t payload_len;
    unsigned char secret[MESH_WEBHOOK_SECRET_MAX + 1];
    size_t secret_len;
    CURLU *url;
    char *host;                     //  as libcurl parsed it (IPv6 in brackets)
    char *port;                     //  decimal
    bool literal;                   //  the host is an IP address
    long timeout_ms, connect_ms, base_ms, max_ms;
    int attempts_max;
    size_t excerpt_bytes;
    //  what came back (the last attempt)
    int attempts;
    long status;                    //  0: none
    char address[INET6_ADDRSTRLEN];
    char *body;                     //  the excerpt's bytes
    size_t body_size;
    size_t received;
    bool drained;                   //  we hung up after S_DRAIN_MAX bytes
    bool response;                  //  an HTTP response was received
    char location[S_LOCATION_MAX];
    char detail[S_DETAIL_MAX];
} s_delivery_t;

typedef enum { S_DONE, S_RETRY, S_FINAL } s_verdict_t;

static size_t
s_write (char *data, size_t size, size_t nmemb, void *arg)
{
    s_delivery_t *d = arg;
    size_t n = size * nmemb;
    if (d->body_size < d->excerpt_bytes) {
        size_t keep = d->excerpt_bytes - d->body_size;
        if (keep > n)
            keep = n;
        memcpy (d->body + d->body_size, data, keep);
        d->body_size += keep;
    }
    d->received += n;
    if (d->received > S_DRAIN_MAX) {
        d->drained = true;
        return 0;
    }
    return n;
}

static size_t
s_header (char *buffer, size_t size, size_t nitems, void *arg)
{
    s_delivery_t *d = arg;
    size_t n = size * nitems;
    if (n >= 5 && !strncmp (buffer, "HTTP/", 5)) {
        //  A new response (after a 100 Continue, say): forget the last one's.
        d->location[0] = 0;
        d->body_size = d->received = 0;
    }
    else if (n > 9 && !strncasecmp (buffer, "location:", 9)) {
        const char *value = buffer + 9;
        size_t left = n - 9;
        while (left && (*value == ' ' || *value == '\t'))
            value++, left--;
        while (left && (value[left - 1] == '\r' || value[left - 1] == '\n'
                        || value[left - 1] == ' '))
            left--;
        s_one_line (d->location, sizeof d->location, value, left);
    }
    return n;
}

//  One "Name: value" extra header: a token name, a value without control characters
//  (tab allowed), a name that is not one of ours.  NULL if good, else why.
static const char *
s_header_problem (const char *line)
{
    const char *colon = strchr (line, ':');
    if (!colon || colon == line)
        return "not \"Name: value\"";
    for (const char *p = line; p < colon; p++)
        if (!isalnum ((unsigned char) *p) && !strchr ("!#$%&'*+-.^_`|~", *p))
            return "the name is not a token";
    for (const char *p = colon + 1; *p; p++)
        if (((unsigned char) *p < 0x20 && *p != '\t') || *p == 0x7f)
            return "the value has a control character";
    size_t len = (size_t) (colon - line);
    if (len >= 6 && !strncasecmp (line, "x-mesh", 6))
        return "X-Mesh-* headers are meshd's";
    for (int i = 0; s_reserved_headers[i]; i++)
        if (strlen (s_reserved_headers[i]) == len && !strncasecmp (line, s_reserved_headers[i], len))
            return "meshd sets it, or it changes how the request is framed";
    for (int i = 0; s_secret_headers[i]; i++)
        if (strlen (s_secret_headers[i]) == len && !strncasecmp (line, s_secret_headers[i], len))
            return "credentials are not sent in headers; the receiver checks the signature";
    return NULL;
}

//  Resolve the host and check every address.  0 and the CURLOPT_RESOLVE entry in
//  *PIN (NULL for an IP literal, which libcurl never resolves), or -1 with d->detail
//  set and *RETRY whether a later attempt could do better (a temporary resolver error).
static int
s_resolve (s_delivery_t *d, struct curl_slist **pin, bool *retry)
{
    *pin = NULL;
    *retry = false;
    char host[256];
    size_t len = strlen (d->host);
    const char *start = d->host;
    if (len >= 2 && d->host[0] == '[' && d->host[len - 1] == ']')
        start++, len -= 2;
    if (len >= sizeof host) {
        snprintf (d->detail, sizeof d->detail, "refused: host name too long");
        return -1;
    }
    memcpy (host, start, len);
    host[len] = 0;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *list = NULL;
    int rc = getaddrinfo (host, d->port, &hints, &list);
    if (rc) {
        *retry = rc == EAI_AGAIN;
        snprintf (d->detail, sizeof d->detail, "cannot resolve %.200s: %s", host,
                  rc == EAI_SYSTEM ? strerror (errno) : gai_strerror (rc));
        return -1;
    }
    char entry[256 + 16 + S_ADDRESSES_MAX * (INET6_ADDRSTRLEN + 3)];
    int used = snprintf (entry, sizeof entry, "%s:%s:", d->host, d->port);
    int count = 0;
    for (struct addrinfo *ai = list; ai; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        char text[INET6_ADDRSTRLEN];
        const void *raw = ai->ai_family == AF_INET
                          ? (const void *) &((struct sockaddr_in *) ai->ai_addr)->sin_addr
                          : (const void *) &((struct sockaddr_in6 *) ai->ai_addr)->sin6_addr;
        inet_ntop (ai->ai_family, raw, text, sizeof text);
        const char *why = mesh_webhook_address_denied (ai->ai_addr, d->hook->allow_private);
        if (why) {
            const char *hint = mesh_webhook_address_denied (ai->ai_addr, true) ? ""
                               : "; allow_private permits it";
            if (d->literal)
                snprintf (d->detail, sizeof d->detail, "refused: %s is %s%s", text, why, hint);
            else
                snprintf (d->detail, sizeof d->detail, "refused: %.200s resolves to %s, %s%s",
                          host, text, why, hint);
            freeaddrinfo (list);
            return -1;
        }
        if (count == S_ADDRESSES_MAX)
            continue;           //  checked, not pinned
        used += snprintf (entry + used, sizeof entry - (size_t) used,
                          ai->ai_family == AF_INET6 ? "%s[%s]" : "%s%s", count ? "," : "", text);
        count++;
    }
    freeaddrinfo (list);
    if (!count) {
        snprintf (d->detail, sizeof d->detail, "cannot resolve %.200s: no IP address", host);
        return -1;
    }
    if (!d->literal) {
        *pin = curl_slist_append (NULL, entry);
        if (!*pin) {
            snprintf (d->detail, sizeof d->detail, "out of memory");
            return -1;
        }
    }
    return 0;
}

//  Whether a transfer error is the connection's (worth another attempt).
static bool
s_connection_error (CURLcode code)
{
    switch (code) {
        case CURLE_COULDNT_CONNECT:
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
        case CURLE_HTTP3:
            return true;
        default:
            return false;
    }
}

static s_verdict_t
s_attempt (s_delivery_t *d)
{
    d->status = 0;
    d->response = false;
    d->body_size = d->received = 0;
    d->drained = false;
    d->location[0] = 0;
    struct curl_slist *pin = NULL;
    bool retry = false;
    if (s_resolve (d, &pin, &retry))
        return retry ? S_RETRY : S_FINAL;
    d->attempts++;

    long timestamp = (long) time (NULL);
    char signature[65], line[128 + MESH_WEBHOOK_ID_MAX];
    mesh_webhook_sign (d->secret, d->secret_len, timestamp, d->payload, d->payload_len,
                       signature);
    struct curl_slist *headers = NULL, *grown;
    bool oom = false;
#define S_ADD(...)                                                      \
    do {                                                                \
        snprintf (line, sizeof line, __VA_ARGS__);                      \
        if ((grown = curl_slist_append (headers, line)))                \
            headers = grown;                                            \
        else                                                            \
            oom = true;                                                 \
    } while (0)
    S_ADD ("Content-Type: application/json");
    S_ADD ("Idempotency-Key: %s", d->id);
    S_ADD ("X-Mesh-Timestamp: %ld", timestamp);
    S_ADD ("X-Mesh-Signature: v1=%s", signature);
    S_ADD ("X-Mesh-Decision: %s", d->id);
    S_ADD ("Expect:");
#undef S_ADD
    for (size_t i = 0; i < d->hook->header_count; i++) {
        if ((grown = curl_slist_append (headers, d->hook->headers[i])))
            headers = grown;
        else
            oom = true;
    }
    sodium_memzero (signature, sizeof signature);
    CURL *curl = curl_easy_init ();
    if (oom || !curl) {
        snprintf (d->detail, sizeof d->detail, "out of memory");
        curl_easy_cleanup (curl);
        curl_slist_free_all (headers);
        curl_slist_free_all (pin);
        return S_FINAL;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt (curl, CURLOPT_CURLU, d->url);
    curl_easy_setopt (curl, CURLOPT_PROTOCOLS_STR, d->hook->allow_http ? "https,http" : "https");
    curl_easy_setopt (curl, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    curl_easy_setopt (curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt (curl, CURLOPT_PROXY, "");
    curl_easy_setopt (curl, CURLOPT_RESOLVE, pin);
    curl_easy_setopt (curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (curl, CURLOPT_POST, 1L);
    curl_easy_setopt (curl, CURLOPT_POSTFIELDS, d->payload);
    curl_easy_setopt (curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) d->payload_len);
    curl_easy_setopt (curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt (curl, CURLOPT_USERAGENT, "meshd");
    curl_easy_setopt (curl, CURLOPT_TIMEOUT_MS, d->timeout_ms);
    curl_easy_setopt (curl, CURLOPT_CONNECTTIMEOUT_MS,
                      d->connect_ms < d->timeout_ms ? d->connect_ms : d->timeout_ms);
    curl_easy_setopt (curl, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt (curl, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_write);
    curl_easy_setopt (curl, CURLOPT_WRITEDATA, d);
    curl_easy_setopt (curl, CURLOPT_HEADERFUNCTION, s_header);
    curl_easy_setopt (curl, CURLOPT_HEADERDATA, d);
    curl_easy_setopt (curl, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode code = curl_easy_perform (curl);

    curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &d->status);
    d->response = d->status > 0;
    char *ip = NULL;
    if (curl_easy_getinfo (curl, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip && *ip)
        snprintf (d->address, sizeof d->address, "%s", ip);
    curl_easy_cleanup (curl);
    for (struct curl_slist *h = headers; h; h = h->next)
        sodium_memzero (h->data, strlen (h->data));     //  extra headers may hold tokens
    curl_slist_free_all (headers);
    curl_slist_free_all (pin);

    char err[CURL_ERROR_SIZE + 64];
    s_one_line (err, sizeof err, *errbuf ? errbuf : curl_easy_strerror (code),
                strlen (*errbuf ? errbuf : curl_easy_strerror (code)));
    long s = d->status;
    //  A status line decides, even if the body was cut short afterwards.
    if (s >= 200 && s <= 299) {
        snprintf (d->detail, sizeof d->detail, "delivered: %ld%s", s,
                  d->drained ? "; the response is over 1 MiB and was not read to its end" : "");
        return S_DONE;
    }
    if (s >= 300 && s <= 399) {
        snprintf (d->detail, sizeof d->detail, "%ld redirect%s%s not followed", s,
                  d->location[0] ? " to " : " without a Location", d->location);
        return S_FINAL;
    }
    if (s >= 400 && s <= 499) {
        snprintf (d->detail, sizeof d->detail, "%ld from the receiver (a 4xx is final)", s);
        return S_FINAL;
    }
    if (s >= 500 && s <= 599) {
        snprintf (d->detail, sizeof d->detail, "%ld from the receiver", s);
        return S_RETRY;
    }
    if (s) {
        snprintf (d->detail, sizeof d->detail, "unexpected status %ld", s);
        return S_FINAL;
    }
    snprintf (d->detail, sizeof d->detail, "%s", err);
    return s_connection_error (code) ? S_RETRY : S_FINAL;
}

static void
s_sleep_ms (long ms)
{
    struct timespec left = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep (&left, &left) && errno == EINTR)
        ;
}

//  The parts of the URL, and whether it may be used at all.  0, or -1 with d->detail.
static int
s_parse_url (s_delivery_t *d)
{
    const char *url = d->hook->url;
    if (!url || !*url) {
        snprintf (d->detail, sizeof d->detail, "refused: no url");
        return -1;
    }
    d->url = curl_url ();
    if (!d->url) {
        snprintf (d->detail, sizeof d->detail, "out of memory");
        return -1;
    }
    CURLUcode uc = curl_url_set (d->url, CURLUPART_URL, url, 0);
    if (uc) {
        snprintf (d->detail, sizeof d->detail, "refused: the url does not parse (%s)",
                  curl_url_strerror (uc));
        return -1;
    }
    char *scheme = NULL, *user = NULL, *password = NULL, *zone = NULL;
    curl_url_get (d->url, CURLUPART_SCHEME, &scheme, 0);
    curl_url_get (d->url, CURLUPART_USER, &user, 0);
    curl_url_get (d->url, CURLUPART_PASSWORD, &password, 0);
    curl_url_get (d->url, CURLUPART_ZONEID, &zone, 0);
    curl_url_get (d->url, CURLUPART_HOST, &d->host, 0);
    curl_url_get (d->url, CURLUPART_PORT, &d->port, CURLU_DEFAULT_PORT);
    int rc = -1;
    if (!scheme || (strcasecmp (scheme, "https") && strcasecmp (scheme, "http")))
        snprintf (d->detail, sizeof d->detail, "refused: the url's scheme must be https");
    else if (!strcasecmp (scheme, "http") && !d->hook->allow_http)
        snprintf (d->detail, sizeof d->detail,
                  "refused: the url is http and allow_http is not set (https is required)");
    else if (user || password)
        snprintf (d->detail, sizeof d->detail,
                  "refused: the url carries credentials (put them in headers)");
    else if (zone)
        snprintf (d->detail, sizeof d->detail, "refused: the url has an IPv6 zone id");
    else if (!d->host || !*d->host || !d->port)
        snprintf (d->detail, sizeof d->detail, "refused: the url has no host");
    else
        rc = 0;
    curl_free (scheme);
    curl_free (user);
    curl_free (password);
    curl_free (zone);
    if (rc)
        return rc;
    for (const char *p = d->host; *p; p++)
        if ((unsigned char) *p >= 0x80 || (unsigned char) *p <= 0x20) {
            snprintf (d->detail, sizeof d->detail,
                      "refused: the host is not ASCII (write it in punycode)");
            return -1;
        }
    //  Metadata service names, compared without case and a final dot.
    char name[256];
    snprintf (name, sizeof name, "%s", d->host);
    size_t len = strlen (name);
    if (len && name[len - 1] == '.')
        name[--len] = 0;
    for (int i = 0; s_metadata_names[i]; i++)
        if (!strcasecmp (name, s_metadata_names[i])) {
            snprintf (d->detail, sizeof d->detail, "refused: %s is a cloud metadata service",
                      d->host);
            return -1;
        }
    unsigned char raw[16];
    char bare[256];
    snprintf (bare, sizeof bare, "%s", d->host);
    if (bare[0] == '[') {
        memmove (bare, bare + 1, strlen (bare));
        bare[strcspn (bare, "]")] = 0;
    }
    d->literal = inet_pton (AF_INET, bare, raw) == 1 || inet_pton (AF_INET6, bare, raw) == 1;
    return 0;
}

static json_t *
s_outcome (const s_delivery_t *d)
{
    json_t *outcome = json_object ();
    json_object_set_new (outcome, "status_code",
                         d->status ? json_integer (d->status) : json_null ());
    json_object_set_new (outcome, "attempts", json_integer (d->attempts));
    json_t *excerpt = d->response && d->body
                      ? s_excerpt (d->body, d->body_size, d->received > d->body_size) : NULL;
    json_object_set_new (outcome, "response", excerpt ? excerpt : json_null ());
    json_object_set_new (outcome, "address", d->address[0] ? json_string (d->address)
                                                            : json_null ());
    json_object_set_new (outcome, "detail", json_string (d->detail));
    return outcome;
}

int
mesh_webhook_deliver (const mesh_action_spec_t *spec, const char *decision_id, json_t *body,
                      json_t **outcome)
{
    assert (spec && decision_id && body && outcome);
    *outcome = NULL;
    s_delivery_t *d = calloc (1, sizeof *d);
    if (!d) {
        mesh_err ("webhook: out of memory");
        return -1;
    }
    const mesh_action_webhook_t *hook = &spec->webhook;
    d->hook = hook;
    d->name = spec->name ? spec->name : "unnamed";
    d->id = decision_id;
    d->timeout_ms = hook->timeout_ms > 0 ? hook->timeout_ms : 10000;
    d->connect_ms = hook->connect_timeout_ms > 0 ? hook->connect_timeout_ms : 3000;
    d->attempts_max = hook->attempts > 0 ? hook->attempts : 3;
    if (d->attempts_max > S_ATTEMPTS_MAX)
        d->attempts_max = S_ATTEMPTS_MAX;
    d->base_ms = hook->retry_base_ms > 0 ? hook->retry_base_ms : 500;
    d->max_ms = hook->retry_max_ms > 0 ? hook->retry_max_ms : 10000;
    d->excerpt_bytes = hook->excerpt_bytes;         //  0: none kept
    if (d->excerpt_bytes > S_EXCERPT_MAX)
        d->excerpt_bytes = S_EXCERPT_MAX;

    int rc = -1;
    pthread_once (&s_init_once, s_init);
    size_t id_len = strlen (decision_id);
    bool id_ok = id_len > 0 && id_len <= MESH_WEBHOOK_ID_MAX;
    for (size_t i = 0; id_ok && i < id_len; i++)
        if ((unsigned char) decision_id[i] <= 0x20 || (unsigned char) decision_id[i] >= 0x7f)
            id_ok = false;
    if (!s_init_ok)
        snprintf (d->detail, sizeof d->detail, "libcurl or libsodium failed to initialise");
    else if (!id_ok)
        snprintf (d->detail, sizeof d->detail,
                  "refused: the decision id is not 1 to %d printable ASCII characters",
                  MESH_WEBHOOK_ID_MAX);
    else if (s_parse_url (d))
        ;
    else {
        const char *problem = NULL;
        size_t bad = 0;
        for (size_t i = 0; !problem && i < hook->header_count; i++)
            if ((problem = s_header_problem (hook->headers[i] ? hook->headers[i] : "")))
                bad = i;
        if (problem)
            snprintf (d->detail, sizeof d->detail, "refused: headers[%zu]: %s", bad, problem);
        else if (!(d->payload = json_dumps (body, JSON_COMPACT | JSON_ENCODE_ANY)))
            snprintf (d->detail, sizeof d->detail, "the body cannot be written as JSON");
        else if (!(d->body = malloc (d->excerpt_bytes + 1)))
            snprintf (d->detail, sizeof d->detail, "out of memory");
        else if (s_read_secret (hook, d->secret, &d->secret_len, d->detail, sizeof d->detail))
            ;
        else
            rc = 0;
    }
    if (rc == 0) {
        d->payload_len = strlen (d->payload);
        rc = -1;
        for (int retry = 0;; retry++) {
            s_verdict_t verdict = s_attempt (d);
            if (verdict == S_DONE) {
                rc = 0;
                break;
            }
            if (verdict == S_FINAL || d->attempts >= d->attempts_max || retry + 1 >= d->attempts_max)
                break;
            s_sleep_ms (mesh_wire_backoff_ms (retry, d->base_ms, d->max_ms, randombytes_random ()));
        }
        char with[S_DETAIL_MAX + 600];
        snprintf (with, sizeof with, "%s (%.255s:%.10s, %d attempt%s)", d->detail, d->host,
                  d->port, d->attempts, d->attempts == 1 ? "" : "s");
        snprintf (d->detail, sizeof d->detail, "%.*s", (int) sizeof d->detail - 1, with);
    }
    sodium_memzero (d->secret, sizeof d->secret);
    *outcome = s_outcome (d);
    if (rc)
        mesh_warn ("webhook %s: decision %.64s not delivered: %s", d->name, decision_id, d->detail);
    curl_url_cleanup (d->url);
    curl_free (d->host);
    curl_free (d->port);
    free (d->payload);
    free (d->body);
    free (d);
    return rc;
}

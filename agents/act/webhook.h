/*  webhook - stage 6, kind "webhook": the signed delivery of one decision's action.
 *  Data path: event -> detect -> incident -> reason -> gate -> [act] -> record.
 *
 *  A library for meshd's executor (the daemon sends webhooks, never an agent): one
 *  call delivers one body to one spec's url, with its retries, and says what happened.
 *  No state between calls: the secret is read for every delivery, the host resolved
 *  for every attempt, every attempt a fresh connection.  ../../docs/actions.md,
 *  "webhook", is the receiver's side of the contract.
 */
#ifndef MESH_WEBHOOK_H
#define MESH_WEBHOOK_H

#include "config.h"
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define MESH_WEBHOOK_SECRET_MAX     4096    //  bytes of a secret file
#define MESH_WEBHOOK_ID_MAX         256     //  bytes of a decision id (a header value)

//  The signed delivery of one decision's action to SPEC's url (spec->webhook; a zero
//  timeout, attempts or retry field takes its documented default, a zero excerpt_bytes
//  keeps no excerpt).  BODY is the JSON to send (the caller builds
//  it: decision id, agent, action, params, incident summary, time); it is sent compact,
//  and the bytes sent are the bytes signed.
//
//  Every attempt: POST, Content-Type: application/json, Idempotency-Key: <decision id>,
//  X-Mesh-Timestamp: <unix seconds>, X-Mesh-Signature: v1=<hex HMAC-SHA256(secret,
//  "<timestamp>.<body>")>, X-Mesh-Decision: <id>, the spec's extra headers (which may
//  not be any of these, nor X-Mesh-*, nor one that changes the framing: Host,
//  Content-Length, Transfer-Encoding, Connection, Keep-Alive, Proxy-Connection, TE,
//  Trailer, Upgrade, Expect; nor a credential: Authorization, Proxy-Authorization,
//  Cookie), User-Agent: meshd.  Each attempt is signed at its own time.
//
//  The secret is read from secret_file, else $CREDENTIALS_DIRECTORY/<secret_credential>,
//  once per delivery (a rotated secret is picked up): at most 4 KiB, trailing CR/LF
//  removed, wiped after use, never logged.  None configured, unreadable, empty or too
//  large: a failure naming the file, nothing sent.
//
//  The host is resolved here (getaddrinfo) and EVERY address checked
//  (mesh_webhook_address_allowed); one denied address refuses the delivery before any
//  connection.  The connection is pinned to the checked addresses (CURLOPT_RESOLVE), no
//  proxy is used, redirects are not followed (a 3xx is a final failure naming its
//  Location), and the protocols are https (and http with allow_http).
//
//  Retries, up to attempts in all, after a full-jitter backoff (retry_base_ms,
//  retry_max_ms): connection errors (refused, reset, nothing received, timeout, a
//  temporary resolver failure) and 5xx.  2xx is done; 3xx, 4xx and everything else are
//  final.  The same Idempotency-Key on every attempt.
//
//  Returns 0 done, -1 failed (logged once, as a warning, without the secret or the
//  extra headers).  *OUTCOME (caller owns) in both cases:
//      {"status_code": last HTTP status or null, "attempts": requests tried (0: refused
//       before any), "response": excerpt of the last response body (excerpt_bytes, invalid
//       UTF-8 replaced by '?') or null, "address": the address last connected to or null,
//       "detail": one line}
int mesh_webhook_deliver (const mesh_action_spec_t *spec, const char *decision_id,
                          json_t *body, json_t **outcome);

//  Whether ADDRESS (AF_INET or AF_INET6; anything else is refused) may be connected to.
//  Always denied: 0.0.0.0/8, 169.254.0.0/16, 100.100.100.200, 224.0.0.0/4 (multicast),
//  240.0.0.0/4 (reserved, broadcast), ::, fe80::/10, fd00:ec2::254, ff00::/8.  Denied
//  unless ALLOW_PRIVATE: 127.0.0.0/8, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16,
//  100.64.0.0/10, ::1, fc00::/7, fec0::/10.  An IPv6 address carrying an IPv4 one
//  (::ffff:0:0/96 mapped, ::/96 compatible, 64:ff9b::/96 NAT64) is judged by it.
bool mesh_webhook_address_allowed (const struct sockaddr *address, bool allow_private);

//  Why ADDRESS is denied ("loopback", "link-local", "cloud metadata", ...), or NULL if
//  allowed.  Static strings.
const char *mesh_webhook_address_denied (const struct sockaddr *address, bool allow_private);

//  The signature of BODY (BODY_LEN bytes) at TIMESTAMP with SECRET: lowercase hex of
//  HMAC-SHA256(SECRET, "<timestamp>.<body>") into OUT (64 digits and a NUL).  The header
//  value is "v1=" followed by it.
void mesh_webhook_sign (const unsigned char *secret, size_t secret_len, long timestamp,
                        const char *body, size_t body_len, char out[65]);

#endif

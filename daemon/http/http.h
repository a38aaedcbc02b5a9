/*  http - meshd's HTTP listener (libmicrohttpd), served on the daemon's own thread.
 *
 *  Off unless http.listen is true; loopback (http.address 127.0.0.1) by default.  MHD runs
 *  without a thread of its own (MHD_USE_EPOLL, external): the main loop waits on the
 *  daemon's sockets and MHD's epoll descriptor together (mesh_http_wait), and every handler
 *  runs on the main loop's thread, so it reads the daemon's state without a lock.
 *
 *  Hardening: at most http.max_connections connections, http.max_connections_per_ip per
 *  client address, an idle connection closed after http.timeout_s, the request line and
 *  headers bounded by http.max_request_bytes (MHD answers 414 or 431 past it, 400 for a
 *  malformed request), only GET and HEAD (405 with Allow otherwise), no request body (413),
 *  404 for a path no route takes.  Every reply carries X-Content-Type-Options: nosniff,
 *  Cache-Control: no-store, Referrer-Policy: no-referrer and a Content-Security-Policy
 *  (default-src 'none' unless the route gives its own).  Nothing served changes state.
 */
#ifndef MESH_HTTP_H
#define MESH_HTTP_H

#include "config.h"
#include <stddef.h>

typedef struct _mesh_http_t mesh_http_t;

//  What a handler answers.  BODY is malloc'd (or NULL with LEN 0) and freed by the
//  listener; CONTENT_TYPE is static; CSP NULL: the default strict policy.
typedef struct {
    int status;
    const char *content_type;
    char *body;
    size_t len;
    const char *csp;
} mesh_http_reply_t;

//  A route's handler: PATH is the request's path (no query), QUERY the raw query string
//  after '?' (never NULL: "" when there is none).  Returns 0 when it filled REPLY, -1 when
//  the path is not its own (the listener answers 404).  Runs on the main loop's thread.
typedef int (*mesh_http_handler_fn) (void *arg, const char *path, const char *query,
                                     mesh_http_reply_t *reply);

//  Listens on http.address:http.port of CFG (borrowed for the call only).  NULL when it
//  cannot, with the reason naming address:port in WHY.
mesh_http_t *mesh_http_new (const mesh_config_t *cfg, char *why, size_t why_size);
void mesh_http_destroy (mesh_http_t **self_p);

//  PREFIX ("/metrics", "/") takes the paths equal to it or below it ("/metrics/x"; a
//  prefix ending in '/' takes every path that starts with it); the longest prefix wins and
//  "/" is the fallback.  A second route with the same prefix replaces the first.  0, or -1
//  (out of memory, or no room: at most 32 routes).
int mesh_http_route (mesh_http_t *self, const char *prefix, mesh_http_handler_fn fn,
                     void *arg);

//  "address:port" as bound ("[::1]:9464" for IPv6).
const char *mesh_http_bound (const mesh_http_t *self);

//  The main loop's wait: up to TIMEOUT_MS for one of the COUNT READERS (zsock_t or zactor_t;
//  NULL entries are skipped) to be readable, serving the listener meanwhile.  Returns the
//  first readable reader, or NULL (timeout, interrupted), like zpoller_wait.
void *mesh_http_wait (mesh_http_t *self, void *const *readers, size_t count, int timeout_ms);

//  Served since the start: requests answered by a route, and the refusals (405, 413, 404).
typedef struct {
    unsigned long long requests;
    unsigned long long refused;
    unsigned long long connections;
} mesh_http_stats_t;
void mesh_http_stats (const mesh_http_t *self, mesh_http_stats_t *stats);

#endif

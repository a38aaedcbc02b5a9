/*  http - meshd's HTTP listener (see http.h).
 *
 *  Why MHD runs in the main loop rather than in a thread of its own: every route reads
 *  the daemon's live state (the supervisor's instances, the ledger, the token ledger),
 *  which only the main loop touches.  A thread would need locks in all of them, or a copy
 *  handed over on every change.  MHD's epoll descriptor is one more item in the loop's
 *  zmq_poll, and MHD_run does the work that is due without blocking, so a slow or hostile
 *  client costs the loop a non-blocking read, never a wait.
 *
 *  The listening socket is made here rather than by MHD, so a bind that fails names its
 *  address, port and errno; it is close-on-exec, as are MHD's own descriptors, so no agent
 *  inherits it.
 */
#include "http.h"
#include "log.h"

#include <arpa/inet.h>
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define S_MAX_ROUTES  32
#define S_MAX_READERS 16
#define S_DEFAULT_CSP "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; " \
                      "form-action 'none'"

typedef struct {
    char *prefix;
    size_t len;
    mesh_http_handler_fn fn;
    void *arg;
} s_route_t;

struct _mesh_http_t {
    struct MHD_Daemon *mhd;
    int listen_fd;
    int epoll_fd;
    char bound[INET6_ADDRSTRLEN + 16];
    s_route_t routes[S_MAX_ROUTES];
    size_t route_count;
    mesh_http_stats_t stats;
};

//  What MHD keeps per request: the raw query string (from the URI log callback, which sees
//  the request target before MHD splits it).
typedef struct {
    char *query;
} s_request_t;

static void
s_mhd_log (void *cls, const char *fmt, va_list ap)
{
    (void) cls;
    char line[512];
    vsnprintf (line, sizeof line, fmt, ap);
    size_t len = strlen (line);
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = 0;
    mesh_debug ("http: %s", line);
}

static void *
s_uri_seen (void *cls, const char *uri, struct MHD_Connection *connection)
{
    (void) cls;
    (void) connection;
    s_request_t *request = calloc (1, sizeof *request);
    if (!request)
        return NULL;
    const char *mark = uri ? strchr (uri, '?') : NULL;
    request->query = strdup (mark ? mark + 1 : "");
    if (!request->query) {
        free (request);
        return NULL;
    }
    return request;
}

static void
s_completed (void *cls, struct MHD_Connection *connection, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    (void) cls;
    (void) connection;
    (void) toe;
    s_request_t *request = *con_cls;
    if (request) {
        free (request->query);
        free (request);
    }
    *con_cls = NULL;
}

static void
s_connection (void *cls, struct MHD_Connection *connection, void **socket_context,
              enum MHD_ConnectionNotificationCode toe)
{
    (void) connection;
    (void) socket_context;
    mesh_http_t *self = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED)
        self->stats.connections++;
}

//  The route for PATH: the longest prefix that takes it, or NULL.
static s_route_t *
s_route_for (mesh_http_t *self, const char *path)
{
    s_route_t *best = NULL;
    for (size_t i = 0; i < self->route_count; i++) {
        s_route_t *route = &self->routes[i];
        if (strncmp (path, route->prefix, route->len) != 0)
            continue;
        char next = path[route->len];
        bool takes = next == 0 || next == '/' || route->prefix[route->len - 1] == '/';
        if (takes && (!best || route->len > best->len))
            best = route;
    }
    return best;
}

static enum MHD_Result
s_queue (struct MHD_Connection *connection, int status, const char *content_type, char *body,
         size_t len, const char *csp, const char *allow)
{
    struct MHD_Response *response =
        body ? MHD_create_response_from_buffer (len, body, MHD_RESPMEM_MUST_FREE)
             : MHD_create_response_from_buffer (0, (void *) "", MHD_RESPMEM_PERSISTENT);
    if (!response) {
        free (body);
        return MHD_NO;                  //  MHD closes the connection
    }
    MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE,
                             content_type ? content_type : "text/plain; charset=utf-8");
    MHD_add_response_header (response, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header (response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header (response, "Referrer-Policy", "no-referrer");
    MHD_add_response_header (response, "X-Frame-Options", "DENY");
    MHD_add_response_header (response, "Content-Security-Policy", csp ? csp : S_DEFAULT_CSP);
    if (allow)
        MHD_add_response_header (response, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result rc = MHD_queue_response (connection, (unsigned) status, response);
    MHD_destroy_response (response);
    return rc;
}

static enum MHD_Result
s_text (struct MHD_Connection *connection, int status, const char *text, const char *allow)
{
    char *body = strdup (text);
    return s_queue (connection, status, NULL, body, body ? strlen (body) : 0, NULL, allow);
}

static enum MHD_Result
s_access (void *cls, struct MHD_Connection *connection, const char *url, const char *method,
          const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    (void) version;
    (void) upload_data;
    (void) upload_data_size;
    mesh_http_t *self = cls;
    s_request_t *request = *con_cls;
    //  Everything is answered on the first call, from the request line and headers alone:
    //  a body is never read (MHD closes the connection after the reply when one is pending).
    if (strcmp (method, MHD_HTTP_METHOD_GET) != 0 && strcmp (method, MHD_HTTP_METHOD_HEAD) != 0) {
        self->stats.refused++;
        return s_text (connection, MHD_HTTP_METHOD_NOT_ALLOWED,
                       "method not allowed: only GET and HEAD\n", "GET, HEAD");
    }
    const char *length = MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                                      MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *chunked = MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                                       MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if ((length && strcmp (length, "0") != 0) || chunked) {
        self->stats.refused++;
        return s_text (connection, 413 /* Content Too Large */,
                       "a request body is not accepted\n", NULL);
    }
    if (!request || !url || url[0] != '/') {
        self->stats.refused++;
        return s_text (connection, MHD_HTTP_BAD_REQUEST, "bad request\n", NULL);
    }
    s_route_t *route = s_route_for (self, url);
    mesh_http_reply_t reply = {0};
    if (!route || route->fn (route->arg, url, request->query, &reply) != 0) {
        free (reply.body);
        self->stats.refused++;
        return s_text (connection, MHD_HTTP_NOT_FOUND, "not found\n", NULL);
    }
    self->stats.requests++;
    return s_queue (connection, reply.status ? reply.status : MHD_HTTP_OK, reply.content_type,
                    reply.body, reply.body ? reply.len : 0, reply.csp, NULL);
}

//  A listening socket on ADDRESS:PORT (close-on-exec, non-blocking), or -1 with WHY.
static int
s_listen (const char *address, int port, char *shown, size_t shown_size, char *why,
          size_t why_size)
{
    struct sockaddr_storage sa = {0};
    socklen_t sa_len;
    int family;
    struct sockaddr_in *v4 = (struct sockaddr_in *) &sa;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *) &sa;
    if (inet_pton (AF_INET, address, &v4->sin_addr) == 1) {
        family = v4->sin_family = AF_INET;
        v4->sin_port = htons ((uint16_t) port);
        sa_len = sizeof *v4;
        snprintf (shown, shown_size, "%s:%d", address, port);
    }
    else
    if (inet_pton (AF_INET6, address, &v6->sin6_addr) == 1) {
        family = v6->sin6_family = AF_INET6;
        v6->sin6_port = htons ((uint16_t) port);
        sa_len = sizeof *v6;
        snprintf (shown, shown_size, "[%s]:%d", address, port);
    }
    else {
        snprintf (why, why_size, "http.address '%s' is not an IP address", address);
        return -1;
    }
    int fd = socket (family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf (why, why_size, "cannot listen on %s: socket: %s", shown, strerror (errno));
        return -1;
    }
    int on = 1;
    setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (bind (fd, (struct sockaddr *) &sa, sa_len) != 0 || listen (fd, 64) != 0) {
        snprintf (why, why_size, "cannot listen on %s (http.address, http.port): %s", shown,
                  strerror (errno));
        close (fd);
        return -1;
    }
    return fd;
}

mesh_http_t *
mesh_http_new (const mesh_config_t *cfg, char *why, size_t why_size)
{
    if (!MHD_is_feature_supported (MHD_FEATURE_EPOLL)) {
        snprintf (why, why_size, "this libmicrohttpd has no epoll support");
        return NULL;
    }
    mesh_http_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (why, why_size, "out of memory");
        return NULL;
    }
    self->epoll_fd = -1;
    self->listen_fd = s_listen (cfg->http_address, cfg->http_port, self->bound,
                                sizeof self->bound, why, why_size);
    if (self->listen_fd < 0) {
        free (self);
        return NULL;
    }
    //  The pool of one connection holds the request line and headers as read, then the
    //  reply's headers: max_request_bytes for the first, 2 KiB for the second.
    size_t pool = cfg->http_max_request_bytes + 2048;
    self->mhd = MHD_start_daemon (
        MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL,
        s_access, self, MHD_OPTION_LISTEN_SOCKET, (MHD_socket) self->listen_fd,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int) cfg->http_max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int) cfg->http_max_connections_per_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) cfg->http_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool,
        MHD_OPTION_CONNECTION_MEMORY_INCREMENT, (size_t) 1024,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int) 64,
        MHD_OPTION_URI_LOG_CALLBACK, s_uri_seen, (void *) self,
        MHD_OPTION_NOTIFY_COMPLETED, s_completed, (void *) self,
        MHD_OPTION_NOTIFY_CONNECTION, s_connection, (void *) self,
        MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, (void *) self,
        MHD_OPTION_END);
    const union MHD_DaemonInfo *info =
        self->mhd ? MHD_get_daemon_info (self->mhd, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
    if (!info) {
        snprintf (why, why_size, "cannot serve http on %s: libmicrohttpd refused to start",
                  self->bound);
        mesh_http_destroy (&self);
        return NULL;
    }
    self->epoll_fd = info->epoll_fd;
    return self;
}

void
mesh_http_destroy (mesh_http_t **self_p)
{
    mesh_http_t *self = *self_p;
    if (!self)
        return;
    if (self->mhd)
        MHD_stop_daemon (self->mhd);
    if (self->listen_fd >= 0)
        close (self->listen_fd);
    for (size_t i = 0; i < self->route_count; i++)
        free (self->routes[i].prefix);
    free (self);
    *self_p = NULL;
}

int
mesh_http_route (mesh_http_t *self, const char *prefix, mesh_http_handler_fn fn, void *arg)
{
    if (!prefix || prefix[0] != '/' || !fn)
        return -1;
    for (size_t i = 0; i < self->route_count; i++)
        if (strcmp (self->routes[i].prefix, prefix) == 0) {
            self->routes[i].fn = fn;
            self->routes[i].arg = arg;
            return 0;
        }
    if (self->route_count == S_MAX_ROUTES)
        return -1;
    char *copy = strdup (prefix);
    if (!copy)
        return -1;
    self->routes[self->route_count++] = (s_route_t) {copy, strlen (copy), fn, arg};
    return 0;
}

const char *
mesh_http_bound (const mesh_http_t *self)
{
    return self->bound;
}

void *
mesh_http_wait (mesh_http_t *self, void *const *readers, size_t count, int timeout_ms)
{
    zmq_pollitem_t items[S_MAX_READERS + 1];
    void *who[S_MAX_READERS];
    size_t n = 0;
    for (size_t i = 0; i < count && n < S_MAX_READERS; i++)
        if (readers[i]) {
            items[n] = (zmq_pollitem_t) {zsock_resolve (readers[i]), 0, ZMQ_POLLIN, 0};
            who[n++] = readers[i];
        }
    items[n] = (zmq_pollitem_t) {NULL, self->epoll_fd, ZMQ_POLLIN, 0};
    long wait = timeout_ms;
    MHD_UNSIGNED_LONG_LONG due;
    if (MHD_get_timeout (self->mhd, &due) == MHD_YES && (long long) due < wait)
        wait = (long) due;
    int rc = zmq_poll (items, (int) n + 1, wait);
    //  Whatever woke us: MHD's ready connections, and its timeouts, are served now.
    MHD_run (self->mhd);
    for (size_t i = 0; rc > 0 && i < n; i++)
        if (items[i].revents & ZMQ_POLLIN)
            return who[i];
    return NULL;
}

void
mesh_http_stats (const mesh_http_t *self, mesh_http_stats_t *stats)
{
    *stats = self->stats;
}

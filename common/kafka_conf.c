/*  kafka_conf - kafka.security and kafka.properties as librdkafka settings.
 *
 *  Every Kafka client meshd makes (the agent's consumer, its dead-letter producer, the
 *  action producer) starts from mesh_kafka_conf_new, so there is one place where TLS and
 *  SASL are set and one place to audit how secrets are handled:
 *
 *  - A secret (SASL password, TLS key passphrase, OIDC client secret) lives only in a
 *    file named by the config (or a systemd credential, resolved to a file by the
 *    loader).  It is read when a conf is built, into a buffer of its own, set with
 *    rd_kafka_conf_set and wiped with sodium_memzero.  librdkafka keeps its own copy
 *    inside the client; meshd keeps none.
 *  - No text that could hold a secret is logged or returned: librdkafka's message for a
 *    refused setting may quote the value, so for secret keys only the key is named.
 *    librdkafka's `debug` contexts are refused in kafka.properties (they trace the
 *    security exchange), and librdkafka logs nothing else that holds a property value.
 *
 *  kafka.properties is an allow-list, not a deny-list: a property is passed through only
 *  if it is listed below, because librdkafka's settings include ones that name code to
 *  load (plugin.library.paths, ssl.engine.location, ssl.providers), run a command
 *  (sasl.kerberos.kinit.cmd), carry a secret inline (sasl.password, ssl.key.pem,
 *  sasl.oauthbearer.config), install callbacks, or undo what meshd's correctness rests on
 *  (group.id, enable.auto.commit, enable.auto.offset.store, isolation.level, idempotence,
 *  the security keys above).  What is listed applies to producers and consumers alike
 *  (librdkafka's "*" scope: a consumer-only property would make every producer warn);
 *  none of it names a file, holds a secret or changes delivery semantics.  Well-known
 *  refused keys get a message that says what to use instead.
 */
#include "kafka_conf.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

//  Passed through from kafka.properties: connection, socket, metadata and TLS tuning.
static const char *const s_allowed[] = {
    "client.rack",
    "message.max.bytes",
    "message.copy.max.bytes",
    "receive.message.max.bytes",
    "topic.metadata.refresh.interval.ms",
    "metadata.max.age.ms",
    "topic.metadata.refresh.fast.interval.ms",
    "topic.metadata.refresh.sparse",
    "topic.metadata.propagation.max.ms",
    "socket.timeout.ms",
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    "socket.keepalive.enable",
    "socket.nagle.disable",
    "socket.max.fails",
    "socket.connection.setup.timeout.ms",
    "connections.max.idle.ms",
    "broker.address.ttl",
    "broker.address.family",
    "reconnect.backoff.ms",
    "reconnect.backoff.max.ms",
    "api.version.request.timeout.ms",
    "log.connection.close",
    "ssl.cipher.suites",
    "ssl.curves.list",
    "ssl.sigalgs.list",
    NULL
};

typedef struct {
    const char *key;                    //  exact key, or a prefix ending in '.' or '*'
    const char *why;
} s_refusal_t;

//  Refused with a reason; the first match wins.  Anything else not allowed gets a generic
//  message.
static const s_refusal_t s_refused[] = {
    {"bootstrap.servers", "meshd sets it from kafka.brokers"},
    {"metadata.broker.list", "meshd sets it from kafka.brokers"},
    {"group.id", "meshd sets it from the agent's group"},
    {"group.instance.id", "meshd manages group membership"},
    {"client.id", "meshd names each client after its agent instance"},
    {"enable.auto.commit", "meshd commits offsets only for handled events"},
    {"auto.commit.enable", "meshd commits offsets only for handled events"},
    {"enable.auto.offset.store", "meshd stores offsets only for handled events"},
    {"auto.commit.interval.ms", "use kafka.commit_interval_ms"},
    {"auto.offset.reset", "meshd reads a new group from the earliest offset"},
    {"session.timeout.ms", "use kafka.session_timeout_ms"},
    {"heartbeat.interval.ms", "meshd sets it with the session timeout"},
    {"queued.min.messages", "use kafka.prefetch_messages"},
    {"partition.assignment.strategy", "meshd sets it for its replicas"},
    {"isolation.level", "meshd sets the isolation level its delivery guarantees rest on"},
    {"enable.idempotence", "meshd's producers are idempotent, always"},
    {"transactional.id", "meshd manages transactions itself"},
    {"acks", "meshd's producers wait for all replicas"},
    {"request.required.acks", "meshd's producers wait for all replicas"},
    {"message.timeout.ms", "meshd bounds every delivery itself"},
    {"delivery.timeout.ms", "meshd bounds every delivery itself"},
    {"enable.partition.eof", "meshd's consumer depends on it being off"},
    {"security.protocol", "use kafka.security.protocol"},
    {"ssl.ca.location", "use kafka.security.ssl.ca_file"},
    {"ssl.certificate.location", "use kafka.security.ssl.cert_file"},
    {"ssl.key.location", "use kafka.security.ssl.key_file"},
    {"ssl.key.password", "a secret: use kafka.security.ssl.key_password_file"},
    {"ssl.endpoint.identification.algorithm", "use kafka.security.ssl.verify_hostname"},
    {"enable.ssl.certificate.verification", "meshd always verifies the broker's certificate"},
    {"ssl.key.pem", "a secret inline: use kafka.security.ssl.key_file"},
    {"ssl_key", "a secret inline: use kafka.security.ssl.key_file"},
    {"ssl.certificate.pem", "use kafka.security.ssl.cert_file"},
    {"ssl_certificate", "use kafka.security.ssl.cert_file"},
    {"ssl.ca.pem", "use kafka.security.ssl.ca_file"},
    {"ssl_ca", "use kafka.security.ssl.ca_file"},
    {"ssl.keystore.", "a keystore holds a secret and its password: use kafka.security.ssl"},
    {"ssl.engine.", "it loads code into meshd"},
    {"ssl.providers", "it loads code into meshd"},
    {"plugin.library.paths", "it loads code into meshd"},
    {"interceptors", "it loads code into meshd"},
    {"sasl.kerberos.", "Kerberos (GSSAPI) is not supported; its kinit command runs a shell"},
    {"sasl.mechanism", "use kafka.security.sasl.mechanism"},
    {"sasl.username", "use kafka.security.sasl.username"},
    {"sasl.password", "a secret: use kafka.security.sasl.password_file"},
    {"sasl.oauthbearer.client.secret",
     "a secret: use kafka.security.sasl.oauthbearer.client_secret_file"},
    {"sasl.oauthbearer.config", "it may hold a secret inline: use kafka.security.sasl.oauthbearer"},
    {"enable.sasl.oauthbearer.unsecure.jwt", "unsigned tokens are not supported"},
    {"sasl.oauthbearer.", "use kafka.security.sasl.oauthbearer"},
    {"debug", "librdkafka's debug contexts trace the security exchange; meshd's own log "
              "levels are the way to see more"},
    {"*_cb", "callbacks are meshd's"},
    {NULL, NULL}
};

static bool
s_match (const char *pattern, const char *key)
{
    size_t length = strlen (pattern);
    if (pattern[0] == '*') {                //  a suffix
        size_t klen = strlen (key);
        return klen >= length - 1 && !strcmp (key + klen - (length - 1), pattern + 1);
    }
    if (pattern[length - 1] == '.')         //  a prefix
        return !strncmp (key, pattern, length);
    return !strcmp (key, pattern);
}

const char *
mesh_kafka_conf_refusal (const char *key)
{
    for (int i = 0; s_allowed[i]; i++)
        if (!strcmp (s_allowed[i], key))
            return NULL;
    for (int i = 0; s_refused[i].key; i++)
        if (s_match (s_refused[i].key, key))
            return s_refused[i].why;
    return "not on meshd's allow-list of librdkafka properties (connection, socket, "
           "metadata and TLS cipher tuning; see meshd.yaml(5))";
}

const char *const *
mesh_kafka_conf_allowed (void)
{
    return s_allowed;
}

int
mesh_kafka_conf_try (const char *key, const char *value, char *why, size_t size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new ();
    int rc = rd_kafka_conf_set (conf, key, value, why, size) == RD_KAFKA_CONF_OK ? 0 : -1;
    rd_kafka_conf_destroy (conf);
    return rc;
}

const char *
mesh_kafka_conf_protocol_name (mesh_kafka_protocol_t protocol)
{
    switch (protocol) {
        case MESH_KAFKA_PLAINTEXT: return "plaintext";
        case MESH_KAFKA_SSL: return "ssl";
        case MESH_KAFKA_SASL_PLAINTEXT: return "sasl_plaintext";
        case MESH_KAFKA_SASL_SSL: return "sasl_ssl";
    }
    return "plaintext";
}

const char *
mesh_kafka_conf_mechanism_name (mesh_sasl_mechanism_t mechanism)
{
    switch (mechanism) {
        case MESH_SASL_NONE: return NULL;
        case MESH_SASL_PLAIN: return "PLAIN";
        case MESH_SASL_SCRAM_SHA_256: return "SCRAM-SHA-256";
        case MESH_SASL_SCRAM_SHA_512: return "SCRAM-SHA-512";
        case MESH_SASL_OAUTHBEARER: return "OAUTHBEARER";
    }
    return NULL;
}

static void s_fail (char **err, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static void
s_fail (char **err, const char *fmt, ...)
{
    if (*err)
        return;                         //  the first problem is the one reported
    va_list ap;
    va_start (ap, fmt);
    if (vasprintf (err, fmt, ap) < 0)
        *err = NULL;
    va_end (ap);
    if (!*err)
        *err = strdup ("out of memory building the Kafka client settings");
}

//  A setting that is not secret: librdkafka's refusal is passed on in full.
static int
s_set (rd_kafka_conf_t *conf, const char *key, const char *value, char **err)
{
    char why[512];
    if (rd_kafka_conf_set (conf, key, value, why, sizeof why) == RD_KAFKA_CONF_OK)
        return 0;
    s_fail (err, "kafka setting %s: %s", key, why);
    return -1;
}

//  Read the secret in PATH into a buffer of its own (caller wipes and frees): at most
//  MESH_KAFKA_SECRET_MAX bytes, one trailing newline dropped, no NUL, not empty.
static char *
s_read_secret (const char *path, const char *what, char **err)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        s_fail (err, "cannot open the %s file %s: %s", what, path, strerror (errno));
        return NULL;
    }
    struct stat st;
    if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode) || st.st_size > MESH_KAFKA_SECRET_MAX) {
        close (fd);
        s_fail (err, "the %s file %s must be a regular file of at most %d bytes", what, path,
                MESH_KAFKA_SECRET_MAX);
        return NULL;
    }
    char *secret = malloc (MESH_KAFKA_SECRET_MAX + 2);
    if (!secret) {
        close (fd);
        s_fail (err, "out of memory reading the %s file", what);
        return NULL;
    }
    size_t length = 0;
    while (length <= MESH_KAFKA_SECRET_MAX) {
        ssize_t n = read (fd, secret + length, MESH_KAFKA_SECRET_MAX + 1 - length);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n < 0)
                length = SIZE_MAX;
            break;
        }
        length += (size_t) n;
    }
    close (fd);
    const char *problem = NULL;
    if (length == SIZE_MAX)
        problem = "cannot be read";
    else
    if (length > MESH_KAFKA_SECRET_MAX)
        problem = "is larger than 4096 bytes";
    else {
        if (length && secret[length - 1] == '\n')
            length--;
        if (length && secret[length - 1] == '\r')
            length--;
        if (length == 0)
            problem = "is empty";
        else
        if (memchr (secret, 0, length))
            problem = "holds a NUL byte";
    }
    if (problem) {
        sodium_memzero (secret, MESH_KAFKA_SECRET_MAX + 2);
        free (secret);
        s_fail (err, "the %s file %s %s", what, path, problem);
        return NULL;
    }
    secret[length] = 0;
    return secret;
}

//  A secret setting: read from PATH, set, wiped.  librdkafka's refusal may quote the value,
//  so only the key is named.
static int
s_set_secret (rd_kafka_conf_t *conf, const char *key, const char *path, const char *what,
              char **err)
{
    char *secret = s_read_secret (path, what, err);
    if (!secret)
        return -1;
    char why[512];
    rd_kafka_conf_res_t res = rd_kafka_conf_set (conf, key, secret, why, sizeof why);
    sodium_memzero (secret, MESH_KAFKA_SECRET_MAX + 2);
    sodium_memzero (why, sizeof why);
    free (secret);
    if (res == RD_KAFKA_CONF_OK)
        return 0;
    s_fail (err, "kafka setting %s: refused by librdkafka (its message is withheld because it "
            "may quote the secret)", key);
    return -1;
}

static int
s_security (rd_kafka_conf_t *conf, const mesh_kafka_security_t *sec, char **err)
{
    if (s_set (conf, "security.protocol", mesh_kafka_conf_protocol_name (sec->protocol), err))
        return -1;
    bool ssl = sec->protocol == MESH_KAFKA_SSL || sec->protocol == MESH_KAFKA_SASL_SSL;
    if (ssl) {
        if ((sec->ca_file && s_set (conf, "ssl.ca.location", sec->ca_file, err))
            || (sec->cert_file && s_set (conf, "ssl.certificate.location", sec->cert_file, err))
            || (sec->key_file && s_set (conf, "ssl.key.location", sec->key_file, err))
            || (sec->key_password_file
                && s_set_secret (conf, "ssl.key.password", sec->key_password_file,
                                 "TLS key password", err))
            || s_set (conf, "ssl.endpoint.identification.algorithm",
                      sec->verify_hostname ? "https" : "none", err))
            return -1;
    }
    const char *mechanism = mesh_kafka_conf_mechanism_name (sec->mechanism);
    if (!mechanism)
        return 0;
    if (s_set (conf, "sasl.mechanisms", mechanism, err))
        return -1;
    if (sec->mechanism == MESH_SASL_OAUTHBEARER)
        return s_set (conf, "sasl.oauthbearer.method", "oidc", err)
                || s_set (conf, "sasl.oauthbearer.token.endpoint.url", sec->token_endpoint_url,
                          err)
                || s_set (conf, "sasl.oauthbearer.client.id", sec->client_id, err)
                || (sec->scope && s_set (conf, "sasl.oauthbearer.scope", sec->scope, err))
                || s_set_secret (conf, "sasl.oauthbearer.client.secret",
                                 sec->client_secret_file, "OAuth client secret", err)
            ? -1 : 0;
    return s_set (conf, "sasl.username", sec->username, err)
            || s_set_secret (conf, "sasl.password", sec->password_file, "SASL password", err)
        ? -1 : 0;
}

rd_kafka_conf_t *
mesh_kafka_conf_new (const mesh_config_t *cfg, const char *brokers, char **err)
{
    return mesh_kafka_conf_new_with (cfg, &cfg->kafka_security, brokers, err);
}

rd_kafka_conf_t *
mesh_kafka_conf_new_with (const mesh_config_t *cfg, const mesh_kafka_security_t *security,
                          const char *brokers, char **err)
{
    *err = NULL;
    if (sodium_init () < 0) {
        s_fail (err, "libsodium cannot start");
        return NULL;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new ();
    if (!conf) {
        s_fail (err, "out of memory building the Kafka client settings");
        return NULL;
    }
    int rc = s_set (conf, "bootstrap.servers", brokers, err);
    if (rc == 0)
        rc = s_security (conf, security, err);
    for (size_t i = 0; rc == 0 && i < cfg->kafka_property_count; i++) {
        const mesh_kafka_property_t *p = &cfg->kafka_properties[i];
        //  The loader refused these already; a config built by hand is held to the same.
        const char *refusal = mesh_kafka_conf_refusal (p->key);
        if (refusal) {
            s_fail (err, "kafka.properties.%s: refused: %s", p->key, refusal);
            rc = -1;
        }
        else
            rc = s_set (conf, p->key, p->value, err);
    }
    if (rc != 0) {
        rd_kafka_conf_destroy (conf);
        return NULL;
    }
    return conf;
}

/*  test_kafka_conf - kafka.security and kafka.properties as librdkafka sees them.
 *
 *  The built conf is dumped (rd_kafka_conf_dump) and every setting looked up, so what
 *  is tested is what reached librdkafka, secrets included.  Everything the module and
 *  the clients print meanwhile goes to a file (stderr redirected) that must never
 *  contain a secret.  Against the embedded broker (plaintext, loopback): a consumer
 *  configured for TLS fails with a clear error within its bound instead of hanging, and
 *  a SASL client's password stays out of every log line.  What needs a real TLS or SASL
 *  cluster (handshakes, SCRAM, OIDC token fetch) is not tested here; see
 *  docs/configuration.md.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <czmq.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker.h"
#include "event_kafka.h"
#include "kafka_conf.h"

#define S_PASSWORD "pw-7c1d-SASL-secret"
#define S_KEY_PASSWORD "kp-93ab-TLS-secret"

static char s_dir[64];
static char *s_topics[] = {(char *) "metrics"};
static char *s_keys[] = {(char *) "host"};

static int
s_rm (const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove (path);
}

static int
s_setup (void **state)
{
    snprintf (s_dir, sizeof s_dir, "/tmp/test_kafka_conf.XXXXXX");
    return mkdtemp (s_dir) ? 0 : -1;
}

static int
s_teardown (void **state)
{
    return nftw (s_dir, s_rm, 8, FTW_DEPTH | FTW_PHYS);
}

//  A file NAME in the temporary directory holding TEXT; returns its path (caller frees).
static char *
s_file (const char *name, const char *text)
{
    char *path;
    assert_true (asprintf (&path, "%s/%s", s_dir, name) > 0);
    int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true (fd >= 0);
    assert_int_equal (write (fd, text, strlen (text)), (ssize_t) strlen (text));
    close (fd);
    return path;
}

//  --- stderr into a file, to search what was logged ------------------------------------

static int s_saved_stderr = -1;
static char s_log_path[128];

static void
s_capture (void)
{
    snprintf (s_log_path, sizeof s_log_path, "%s/stderr.log", s_dir);
    fflush (stderr);
    s_saved_stderr = dup (2);
    int fd = open (s_log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true (fd >= 0);
    dup2 (fd, 2);
    close (fd);
}

//  Restore stderr; returns what was written meanwhile (caller frees).
static char *
s_captured (void)
{
    fflush (stderr);
    dup2 (s_saved_stderr, 2);
    close (s_saved_stderr);
    s_saved_stderr = -1;
    FILE *file = fopen (s_log_path, "rb");
    assert_non_null (file);
    char *text = calloc (1, 1 << 20);
    size_t n = fread (text, 1, (1 << 20) - 1, file);
    text[n] = 0;
    fclose (file);
    fputs (text, stderr);               //  still visible in the test's own log
    return text;
}

static void
s_no_secret (const char *text)
{
    if (strstr (text, S_PASSWORD) || strstr (text, S_KEY_PASSWORD))
        fail_msg ("a secret was printed:\n%s", text);
}

//  --- the dumped conf -------------------------------------------------------------------

//  The value of KEY in CONF as librdkafka holds it ("" when unset; static buffer).
static const char *
s_get (rd_kafka_conf_t *conf, const char *key)
{
    static char value[1024];
    size_t count;
    const char **dump = rd_kafka_conf_dump (conf, &count);
    value[0] = 0;
    for (size_t i = 0; i + 1 < count; i += 2)
        if (!strcmp (dump[i], key))
            snprintf (value, sizeof value, "%s", dump[i + 1] ? dump[i + 1] : "");
    rd_kafka_conf_dump_free (dump, count);
    return value;
}

static void
test_every_setting_reaches_librdkafka (void **state)
{
    char *ca = s_file ("ca.pem", "ca\n");
    char *cert = s_file ("cert.pem", "cert\n");
    char *key = s_file ("key.pem", "key\n");
    char *key_pw = s_file ("key.pass", S_KEY_PASSWORD "\n");
    char *pw = s_file ("sasl.pass", S_PASSWORD "\r\n");
    mesh_kafka_property_t props[] = {
        {(char *) "socket.keepalive.enable", (char *) "true", {1, 1}},
        {(char *) "client.rack", (char *) "eu-west-1a", {2, 1}},
    };
    mesh_config_t cfg = {0};
    cfg.kafka_security = (mesh_kafka_security_t) {
        .given = true, .protocol = MESH_KAFKA_SASL_SSL, .ca_file = ca, .cert_file = cert,
        .key_file = key, .key_password_file = key_pw, .verify_hostname = true,
        .mechanism = MESH_SASL_SCRAM_SHA_512, .username = (char *) "meshd",
        .password_file = pw};
    cfg.kafka_properties = props;
    cfg.kafka_property_count = 2;

    s_capture ();
    char *err = NULL;
    rd_kafka_conf_t *conf = mesh_kafka_conf_new (&cfg, "k1:9093,k2:9093", &err);
    char *log = s_captured ();
    assert_non_null (conf);
    assert_null (err);
    assert_string_equal (s_get (conf, "metadata.broker.list"), "k1:9093,k2:9093");
    assert_string_equal (s_get (conf, "security.protocol"), "sasl_ssl");
    assert_string_equal (s_get (conf, "ssl.ca.location"), ca);
    assert_string_equal (s_get (conf, "ssl.certificate.location"), cert);
    assert_string_equal (s_get (conf, "ssl.key.location"), key);
    assert_string_equal (s_get (conf, "ssl.endpoint.identification.algorithm"), "https");
    assert_string_equal (s_get (conf, "sasl.mechanisms"), "SCRAM-SHA-512");
    assert_string_equal (s_get (conf, "sasl.username"), "meshd");
    //  The secrets themselves, read from their files (line ends dropped).
    assert_string_equal (s_get (conf, "ssl.key.password"), S_KEY_PASSWORD);
    assert_string_equal (s_get (conf, "sasl.password"), S_PASSWORD);
    assert_string_equal (s_get (conf, "socket.keepalive.enable"), "true");
    assert_string_equal (s_get (conf, "client.rack"), "eu-west-1a");
    s_no_secret (log);
    free (log);
    rd_kafka_conf_destroy (conf);

    //  Hostname verification off; no SASL: nothing of it is set.
    cfg.kafka_security.verify_hostname = false;
    cfg.kafka_security.protocol = MESH_KAFKA_SSL;
    cfg.kafka_security.mechanism = MESH_SASL_NONE;
    conf = mesh_kafka_conf_new (&cfg, "k1:9093", &err);
    assert_non_null (conf);
    assert_string_equal (s_get (conf, "ssl.endpoint.identification.algorithm"), "none");
    assert_string_equal (s_get (conf, "security.protocol"), "ssl");
    assert_string_equal (s_get (conf, "sasl.password"), "");
    rd_kafka_conf_destroy (conf);

    //  No security block at all: plaintext, and the properties still apply.
    mesh_config_t plain = {0};
    plain.kafka_properties = props;
    plain.kafka_property_count = 1;
    conf = mesh_kafka_conf_new (&plain, "k1:9092", &err);
    assert_non_null (conf);
    assert_string_equal (s_get (conf, "security.protocol"), "plaintext");
    assert_string_equal (s_get (conf, "socket.keepalive.enable"), "true");
    rd_kafka_conf_destroy (conf);
    free (ca);
    free (cert);
    free (key);
    free (key_pw);
    free (pw);
}

static void
test_bad_secrets_and_properties (void **state)
{
    char *pw = s_file ("sasl.pass", S_PASSWORD "\n");
    char *empty = s_file ("empty.pass", "\n");
    char big_text[MESH_KAFKA_SECRET_MAX + 2];
    memset (big_text, 'x', sizeof big_text - 1);
    big_text[sizeof big_text - 1] = 0;
    char *big = s_file ("big.pass", big_text);
    char *missing;
    assert_true (asprintf (&missing, "%s/missing.pass", s_dir) > 0);
    mesh_config_t cfg = {0};
    cfg.kafka_security = (mesh_kafka_security_t) {
        .given = true, .protocol = MESH_KAFKA_SASL_SSL, .verify_hostname = true,
        .mechanism = MESH_SASL_PLAIN, .username = (char *) "meshd", .password_file = missing};
    s_capture ();
    char *err = NULL;
    assert_null (mesh_kafka_conf_new (&cfg, "k:9093", &err));
    assert_non_null (strstr (err, "cannot open the SASL password file"));
    assert_non_null (strstr (err, "missing.pass"));
    free (err);
    cfg.kafka_security.password_file = empty;
    assert_null (mesh_kafka_conf_new (&cfg, "k:9093", &err));
    assert_non_null (strstr (err, "empty.pass is empty"));
    free (err);
    cfg.kafka_security.password_file = big;
    assert_null (mesh_kafka_conf_new (&cfg, "k:9093", &err));
    assert_non_null (strstr (err, "at most 4096 bytes"));
    assert_null (strstr (err, "xxxx"));
    free (err);
    //  A property the loader would have refused is refused here too.
    cfg.kafka_security.password_file = pw;
    mesh_kafka_property_t bad[] = {{(char *) "sasl.password", (char *) S_PASSWORD, {1, 1}}};
    cfg.kafka_properties = bad;
    cfg.kafka_property_count = 1;
    assert_null (mesh_kafka_conf_new (&cfg, "k:9093", &err));
    assert_string_equal (err, "kafka.properties.sasl.password: refused: a secret: use "
                              "kafka.security.sasl.password_file");
    free (err);
    char *log = s_captured ();
    s_no_secret (log);
    free (log);
    free (pw);
    free (empty);
    free (big);
    free (missing);
}

static void
test_allow_list (void **state)
{
    //  Every allowed property exists in this librdkafka, and none is secret or a path.
    const char *const *allowed = mesh_kafka_conf_allowed ();
    rd_kafka_conf_t *conf = rd_kafka_conf_new ();
    size_t n = 0;
    for (; allowed[n]; n++) {
        char why[512];
        if (rd_kafka_conf_set (conf, allowed[n], "1", why, sizeof why) == RD_KAFKA_CONF_UNKNOWN)
            fail_msg ("allow-listed '%s' is unknown to this librdkafka", allowed[n]);
        assert_null (mesh_kafka_conf_refusal (allowed[n]));
        assert_null (strstr (allowed[n], "password"));
        assert_null (strstr (allowed[n], "location"));
        assert_null (strstr (allowed[n], "path"));
    }
    rd_kafka_conf_destroy (conf);
    assert_true (n >= 20);
    static const char *const refused[] = {
        "bootstrap.servers", "group.id", "enable.auto.commit", "enable.auto.offset.store",
        "isolation.level", "security.protocol", "sasl.password", "ssl.key.password",
        "ssl.key.pem", "ssl.keystore.password", "sasl.oauthbearer.client.secret",
        "sasl.oauthbearer.config", "plugin.library.paths", "ssl.engine.location",
        "ssl.providers", "sasl.kerberos.kinit.cmd", "interceptors", "debug", "dr_msg_cb",
        "rebalance_cb", "enable.idempotence", "transactional.id", "acks",
        "message.timeout.ms", "fetch.wait.max.ms", "no.such.property", NULL};
    for (int i = 0; refused[i]; i++)
        if (!mesh_kafka_conf_refusal (refused[i]))
            fail_msg ("'%s' should be refused", refused[i]);
    assert_string_equal (mesh_kafka_conf_refusal ("session.timeout.ms"),
                         "use kafka.session_timeout_ms");
    //  A value librdkafka refuses, in its words; one it takes.
    char why[512];
    assert_int_equal (mesh_kafka_conf_try ("broker.address.family", "v5", why, sizeof why), -1);
    assert_non_null (strstr (why, "broker.address.family"));
    assert_int_equal (mesh_kafka_conf_try ("broker.address.family", "v4", why, sizeof why), 0);
}

static mesh_agent_config_t s_agent = {
    .name = (char *) "sec",
    .topics = s_topics,
    .topic_count = 1,
    .group = (char *) "meshd.test_kafka_conf",
    .key_fields = s_keys,
    .key_field_count = 1,
    .value_field = (char *) "value",
    .time_field = (char *) "ts",
};

//  A consumer set up for TLS against the plaintext embedded broker: fails within its bound,
//  and says why in one line (librdkafka's handshake error), instead of hanging.
static void
test_tls_against_plaintext_broker_fails_clearly (void **state)
{
    mesh_config_t bcfg = {0};
    bcfg.embedded = true;
    bcfg.embedded_topics = s_topics;
    bcfg.embedded_topic_count = 1;
    bcfg.embedded_partitions = 1;
    mesh_broker_t *broker = mesh_broker_new (&bcfg);
    assert_non_null (broker);

    mesh_config_t cfg = {0};
    cfg.session_timeout_ms = 6000;
    cfg.commit_interval_ms = 1000;
    cfg.liveness_timeout_ms = 12000;    //  the wait is a quarter of it: 3 s
    cfg.kafka_security = (mesh_kafka_security_t) {
        .given = true, .protocol = MESH_KAFKA_SSL, .verify_hostname = true};
    s_capture ();
    int64_t started = zclock_mono ();
    mesh_event_kafka_t *consumer =
        mesh_event_kafka_new (&cfg, &s_agent, mesh_broker_bootstraps (broker), "sec-1");
    int64_t took = zclock_mono () - started;
    char *log = s_captured ();
    assert_null (consumer);
    assert_true (took < 6000);
    const char *line = strstr (log, "event: no usable connection to the brokers at");
    const char *end = line ? strchr (line, '\n') : NULL;
    const char *why = line ? strstr (line, "the TLS handshake failed: do these brokers' "
                                           "listeners speak TLS") : NULL;
    if (!line || !why || (end && why > end))
        fail_msg ("expected one clear error about the TLS handshake in:\n%s", log);
    free (log);

    //  The same consumer in plaintext gets the cluster id and, with the embedded broker's
    //  incarnation in the environment, both identify the partitions' history.
    cfg.kafka_security = (mesh_kafka_security_t) {0};
    cfg.embedded = true;
    consumer = mesh_event_kafka_new (&cfg, &s_agent, mesh_broker_bootstraps (broker), "sec-2");
    assert_non_null (consumer);
    assert_non_null (mesh_event_kafka_cluster_id (consumer));
    assert_string_equal (mesh_event_kafka_incarnation (consumer),
                         mesh_broker_incarnation (broker));
    mesh_event_kafka_destroy (&consumer);
    //  Without the incarnation an agent of the embedded broker refuses to start: its
    //  decision ids could repeat those of an earlier broker.
    char *saved = strdup (getenv (MESH_BROKER_INCARNATION_ENV));
    unsetenv (MESH_BROKER_INCARNATION_ENV);
    s_capture ();
    consumer = mesh_event_kafka_new (&cfg, &s_agent, mesh_broker_bootstraps (broker), "sec-3");
    log = s_captured ();
    assert_null (consumer);
    assert_non_null (strstr (log, "no broker incarnation was passed"));
    free (log);
    setenv (MESH_BROKER_INCARNATION_ENV, saved, 1);
    free (saved);
    mesh_broker_destroy (&broker);
}

//  A SASL client against the embedded broker: whatever the broker makes of it, the password
//  read from its file is in no log line.
static void
test_sasl_password_never_logged (void **state)
{
    mesh_config_t bcfg = {0};
    bcfg.embedded = true;
    bcfg.embedded_topics = s_topics;
    bcfg.embedded_topic_count = 1;
    bcfg.embedded_partitions = 1;
    mesh_broker_t *broker = mesh_broker_new (&bcfg);
    assert_non_null (broker);
    char *pw = s_file ("sasl.pass", S_PASSWORD "\n");
    mesh_config_t cfg = {0};
    cfg.session_timeout_ms = 6000;
    cfg.commit_interval_ms = 1000;
    cfg.liveness_timeout_ms = 8000;
    cfg.kafka_security = (mesh_kafka_security_t) {
        .given = true, .protocol = MESH_KAFKA_SASL_PLAINTEXT, .mechanism = MESH_SASL_PLAIN,
        .username = (char *) "meshd", .password_file = pw, .allow_plaintext_password = true};
    s_capture ();
    mesh_event_kafka_t *consumer =
        mesh_event_kafka_new (&cfg, &s_agent, mesh_broker_bootstraps (broker), "sec-4");
    if (consumer) {                     //  the mock broker may accept PLAIN: then poll a while
        mesh_event_t ev;
        for (int i = 0; i < 10; i++)
            mesh_event_kafka_poll (consumer, 100, &ev);
        mesh_event_kafka_destroy (&consumer);
    }
    char *log = s_captured ();
    s_no_secret (log);
    free (log);
    free (pw);
    mesh_broker_destroy (&broker);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_every_setting_reaches_librdkafka),
        cmocka_unit_test (test_bad_secrets_and_properties),
        cmocka_unit_test (test_allow_list),
        cmocka_unit_test (test_tls_against_plaintext_broker_fails_clearly),
        cmocka_unit_test (test_sasl_password_never_logged),
    };
    return cmocka_run_group_tests_name ("kafka_conf", tests, s_setup, s_teardown);
}

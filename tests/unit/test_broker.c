/*  test_broker - the embedded broker: it listens, and it holds the configured topics.
 *
 *  A real librdkafka client asks the broker for its metadata over the loopback port
 *  the broker reports, the way agents and mesh-gen find it.  The partition count is
 *  set to 3, unlike the mock cluster's own default for auto-created topics, so a
 *  topic that was auto-created rather than created by mesh_broker_new would show.
 */
#include "broker.h"
#include "log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <librdkafka/rdkafka.h>
#include <stdlib.h>
#include <string.h>

static mesh_config_t *
s_config (char **topics, size_t count, int partitions)
{
    mesh_config_t *cfg = (mesh_config_t *) calloc (1, sizeof *cfg);
    cfg->brokers = (char *) "embedded";
    cfg->embedded = true;
    cfg->embedded_partitions = partitions;
    cfg->embedded_topics = topics;
    cfg->embedded_topic_count = count;
    return cfg;
}

//  All topics the broker at BOOTSTRAPS knows (caller destroys).
static const struct rd_kafka_metadata *
s_metadata (const char *bootstraps, rd_kafka_t **rk_p)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new ();
    assert_int_equal (rd_kafka_conf_set (conf, "bootstrap.servers", bootstraps, err, sizeof err),
                      RD_KAFKA_CONF_OK);
    rd_kafka_conf_set (conf, "allow.auto.create.topics", "false", err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new (RD_KAFKA_PRODUCER, conf, err, sizeof err);
    assert_non_null (rk);
    const struct rd_kafka_metadata *md = NULL;
    assert_int_equal (rd_kafka_metadata (rk, 1, NULL, &md, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_non_null (md);
    *rk_p = rk;
    return md;
}

static const struct rd_kafka_metadata_topic *
s_topic (const struct rd_kafka_metadata *md, const char *name)
{
    for (int i = 0; i < md->topic_cnt; i++)
        if (strcmp (md->topics[i].topic, name) == 0)
            return &md->topics[i];
    return NULL;
}

static void
test_starts_with_topics (void **state)
{
    char *topics[] = {(char *) "metrics", (char *) "actions"};
    mesh_config_t *cfg = s_config (topics, 2, 3);
    mesh_broker_t *broker = mesh_broker_new (cfg);
    assert_non_null (broker);
    const char *bootstraps = mesh_broker_bootstraps (broker);
    assert_non_null (bootstraps);
    assert_true (strlen (bootstraps) > 0);
    assert_non_null (strchr (bootstraps, ':'));

    rd_kafka_t *rk = NULL;
    const struct rd_kafka_metadata *md = s_metadata (bootstraps, &rk);
    assert_int_equal (md->broker_cnt, 1);
    for (size_t i = 0; i < 2; i++) {
        const struct rd_kafka_metadata_topic *t = s_topic (md, topics[i]);
        if (!t)
            fail_msg ("topic %s missing", topics[i]);
        assert_int_equal (t->err, RD_KAFKA_RESP_ERR_NO_ERROR);
        assert_int_equal (t->partition_cnt, 3);
        for (int p = 0; p < t->partition_cnt; p++)
            assert_int_equal (t->partitions[p].leader, md->brokers[0].id);
    }
    assert_null (s_topic (md, "not-configured"));
    rd_kafka_metadata_destroy (md);
    rd_kafka_destroy (rk);

    mesh_broker_destroy (&broker);
    assert_null (broker);
    mesh_broker_destroy (&broker);      //  safe on NULL
    mesh_broker_destroy (NULL);
    free (cfg);
}

static void
test_two_brokers_are_independent (void **state)
{
    char *one[] = {(char *) "first"};
    char *two[] = {(char *) "second"};
    mesh_config_t *cfg1 = s_config (one, 1, 1);
    mesh_config_t *cfg2 = s_config (two, 1, 5);
    mesh_broker_t *b1 = mesh_broker_new (cfg1);
    mesh_broker_t *b2 = mesh_broker_new (cfg2);
    assert_non_null (b1);
    assert_non_null (b2);
    assert_string_not_equal (mesh_broker_bootstraps (b1), mesh_broker_bootstraps (b2));

    rd_kafka_t *rk = NULL;
    const struct rd_kafka_metadata *md = s_metadata (mesh_broker_bootstraps (b2), &rk);
    assert_null (s_topic (md, "first"));
    assert_non_null (s_topic (md, "second"));
    assert_int_equal (s_topic (md, "second")->partition_cnt, 5);
    rd_kafka_metadata_destroy (md);
    rd_kafka_destroy (rk);

    mesh_broker_destroy (&b1);
    mesh_broker_destroy (&b2);
    free (cfg1);
    free (cfg2);
}

static void
test_no_topics (void **state)
{
    mesh_config_t *cfg = s_config (NULL, 0, 4);
    mesh_broker_t *broker = mesh_broker_new (cfg);
    assert_non_null (broker);
    rd_kafka_t *rk = NULL;
    const struct rd_kafka_metadata *md = s_metadata (mesh_broker_bootstraps (broker), &rk);
    assert_int_equal (md->topic_cnt, 0);
    rd_kafka_metadata_destroy (md);
    rd_kafka_destroy (rk);
    mesh_broker_destroy (&broker);
    free (cfg);
}

int
main (void)
{
    if (!getenv ("MESH_LOG_LEVEL"))
        mesh_log_set_level (MESH_LOG_ERR - 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_starts_with_topics),
        cmocka_unit_test (test_two_brokers_are_independent),
        cmocka_unit_test (test_no_topics),
    };
    return cmocka_run_group_tests_name ("broker", tests, NULL, NULL);
}

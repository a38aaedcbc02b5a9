/*  test_act - carrying out decisions: log, kafka, observe mode, undeclared actions.
 *
 *  The kafka action runs against the embedded broker (librdkafka's mock cluster via
 *  daemon/broker.c), and what it produced is read back with a plain librdkafka
 *  consumer, so "done" is seen to mean "on the topic, keyed by the decision id".
 *  An unreachable broker is a local TCP socket that is bound but not listening: every
 *  connection is refused, and the action must report failure once the producer's
 *  message timeout (10 s, not configurable) is up.
 *
 *  Recovery (mesh_act_recover): a kafka action is produced again only when the topic
 *  does not hold a message keyed by the decision id; a check that cannot finish (an
 *  unreachable broker, too many messages) produces nothing and says outcome_unknown.
 */
#include "act.h"
#include "broker.h"
#include "log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <czmq.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ID_A "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
#define ID_B "deadbeef00000000000000000000000000000000000000000000000000000001"
#define ID_C "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

#define PARTITIONS 2

static mesh_action_spec_t s_actions[] = {
    {.name = (char *) "escalate", .kind = MESH_ACTION_LOG},
    {.name = (char *) "publish", .kind = MESH_ACTION_KAFKA, .topic = (char *) "actions"},
    {.name = (char *) "restart", .kind = MESH_ACTION_LOG},     //  declared, not for "cpu"
};
static char *s_allowed[] = {(char *) "escalate", (char *) "publish"};
static char *s_topics[] = {(char *) "actions"};

typedef struct {
    mesh_config_t cfg;
    mesh_agent_config_t agent;
    mesh_broker_t *broker;
} fixture_t;

static int
s_setup (void **state)
{
    fixture_t *fx = (fixture_t *) calloc (1, sizeof *fx);
    fx->agent.name = (char *) "cpu";
    fx->agent.actions = s_allowed;
    fx->agent.action_count = 2;
    fx->cfg.actions = s_actions;
    fx->cfg.action_count = 3;
    fx->cfg.agents = &fx->agent;
    fx->cfg.agent_count = 1;
    fx->cfg.embedded = true;
    fx->cfg.embedded_topics = s_topics;
    fx->cfg.embedded_topic_count = 1;
    fx->cfg.embedded_partitions = PARTITIONS;
    fx->broker = mesh_broker_new (&fx->cfg);
    if (!fx->broker)
        return -1;
    *state = fx;
    return 0;
}

static int
s_teardown (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_broker_destroy (&fx->broker);
    free (fx);
    return 0;
}

static json_t *
s_decision (const char *id, const char *action)
{
    return json_pack ("{ss ss ss s{ss s{ss si}} s{ss}}", "type", "decision", "id", id, "agent",
                      "cpu", "action", "name", action, "params", "service", "web", "replicas", 3,
                      "incident", "series", "web-1/cpu");
}

static const char *
s_str (json_t *obj, const char *key)
{
    return json_string_value (json_object_get (obj, key));
}

//  Check the fields every outcome has.
static void
s_check_outcome (json_t *outcome, const char *id, const char *action, const char *status)
{
    assert_non_null (outcome);
    assert_string_equal (s_str (outcome, "type"), "outcome");
    assert_string_equal (s_str (outcome, "id"), id);
    assert_string_equal (s_str (outcome, "agent"), "cpu");
    if (action)
        assert_string_equal (s_str (outcome, "action"), action);
    else
        assert_true (json_is_null (json_object_get (outcome, "action")));
    assert_string_equal (s_str (outcome, "status"), status);
    assert_non_null (s_str (outcome, "detail"));
}

//  Messages on every partition of TOPIC, read from the start until the high watermark;
//  returns a JSON array of {key, value, partition}.
static json_t *
s_consume_all (const char *bootstraps, const char *topic)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new ();
    assert_int_equal (rd_kafka_conf_set (conf, "bootstrap.servers", bootstraps, err, sizeof err),
                      RD_KAFKA_CONF_OK);
    assert_int_equal (rd_kafka_conf_set (conf, "group.id", "test_act", err, sizeof err),
                      RD_KAFKA_CONF_OK);
    assert_int_equal (rd_kafka_conf_set (conf, "enable.partition.eof", "true", err, sizeof err),
                      RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = rd_kafka_new (RD_KAFKA_CONSUMER, conf, err, sizeof err);
    assert_non_null (rk);
    rd_kafka_poll_set_consumer (rk);
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new (PARTITIONS);
    for (int p = 0; p < PARTITIONS; p++)
        rd_kafka_topic_partition_list_add (list, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal (rd_kafka_assign (rk, list), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy (list);

    json_t *got = json_array ();
    int eof = 0;
    int64_t deadline = zclock_mono () + 15000;
    while (eof < PARTITIONS && zclock_mono () < deadline) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll (rk, 100);
        if (!msg)
            continue;
        if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
            eof++;
        else
        if (!msg->err)
            json_array_append_new (got, json_pack ("{ss# ss# si}", "key", (char *) msg->key,
                                                   (int) msg->key_len, "value",
                                                   (char *) msg->payload, (int) msg->len,
                                                   "partition", (int) msg->partition));
        rd_kafka_message_destroy (msg);
    }
    assert_int_equal (eof, PARTITIONS);
    rd_kafka_consumer_close (rk);
    rd_kafka_destroy (rk);
    return got;
}

//  ---------------------------------------------------------------------------------------

static void
test_log_action_done (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_act_t *act = mesh_act_new (&fx->cfg, &fx->agent, mesh_broker_bootstraps (fx->broker));
    assert_non_null (act);
    json_t *decision = s_decision (ID_A, "escalate");
    json_t *outcome = mesh_act_run (act, decision, NULL);
    s_check_outcome (outcome, ID_A, "escalate", "done");
    assert_string_equal (s_str (outcome, "detail"), "logged");
    json_decref (outcome);
    json_decref (decision);
    mesh_act_destroy (&act);
    assert_null (act);
    mesh_act_destroy (&act);
    mesh_act_destroy (NULL);
}

static void
test_undeclared_actions_fail (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_act_t *act = mesh_act_new (&fx->cfg, &fx->agent, mesh_broker_bootstraps (fx->broker));
    assert_non_null (act);
    //  Declared at top level but not one this agent may take.
    json_t *decision = s_decision (ID_A, "restart");
    json_t *outcome = mesh_act_run (act, decision, NULL);
    s_check_outcome (outcome, ID_A, "restart", "failed");
    assert_string_equal (s_str (outcome, "detail"), "action is not declared for this agent");
    json_decref (outcome);
    json_decref (decision);
    //  Not declared anywhere.
    decision = s_decision (ID_B, "rm-rf");
    outcome = mesh_act_run (act, decision, NULL);
    s_check_outcome (outcome, ID_B, "rm-rf", "failed");
    json_decref (outcome);
    json_decref (decision);
    //  No action at all, and no id.
    decision = json_pack ("{ss}", "type", "decision");
    outcome = mesh_act_run (act, decision, NULL);
    s_check_outcome (outcome, "", NULL, "failed");
    json_decref (outcome);
    json_decref (decision);
    mesh_act_destroy (&act);

    //  Nothing reached the topic.
    json_t *got = s_consume_all (mesh_broker_bootstraps (fx->broker), "actions");
    assert_int_equal (json_array_size (got), 0);
    json_decref (got);
}

static void
test_observe_mode_produces_nothing (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    fx->agent.observe = true;
    mesh_act_t *act = mesh_act_new (&fx->cfg, &fx->agent, mesh_broker_bootstraps (fx->broker));
    assert_non_null (act);
    const char *names[] = {"publish", "escalate"};
    for (size_t i = 0; i < 2; i++) {
        json_t *decision = s_decision (ID_C, names[i]);
        json_t *outcome = mesh_act_run (act, decision, NULL);
        s_check_outcome (outcome, ID_C, names[i], "observed");
        json_decref (outcome);
        json_decref (decision);
    }
    //  Observe mode does not make undeclared actions any less undeclared.
    json_t *decision = s_decision (ID_C, "restart");
    json_t *outcome = mesh_act_run (act, decision, NULL);
    s_check_outcome (outcome, ID_C, "restart", "failed");
    json_decref (outcome);
    json_decref (decision);
    mesh_act_destroy (&act);

    json_t *got = s_consume_all (mesh_broker_bootstraps (fx->broker), "actions");
    assert_int_equal (json_array_size (got), 0);
    json_decref (got);
}

static void
test_kafka_action_lands_on_topic (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_act_t *act = mesh_act_new (&fx->cfg, &fx->agent, mesh_broker_bootstraps (fx->broker));
    assert_non_null (act);
    const char *ids[] = {ID_A, ID_B};
    for (size_t i = 0; i < 2; i++) {
        json_t *decision = s_decision (ids[i], "publish");
        json_t *outcome = mesh_act_run (act, decision, NULL);
        s_check_outcome (outcome, ids[i], "publish", "done");
        assert_string_equal (s_str (outcome, "detail"), "produced to actions");
        json_decref (outcome);
        json_decref (decision);
    }
    mesh_act_destroy (&act);

    json_t *got = s_consume_all (mesh_broker_bootstraps (fx->broker), "actions");
    assert_int_equal (json_array_size (got), 2);        //  once each, no duplicates
    for (size_t i = 0; i < 2; i++) {
        json_t *msg = NULL;
        size_t k;
        json_t *m;
        json_array_foreach (got, k, m)
            if (strcmp (s_str (m, "key"), ids[i]) == 0)
                msg = m;
        if (!msg)
            fail_msg ("no message keyed %s", ids[i]);
        json_t *value = json_loads (s_str (msg, "value"), 0, NULL);
        assert_non_null (value);
        assert_string_equal (s_str (value, "decision_id"), ids[i]);
        assert_string_equal (s_str (value, "agent"), "cpu");
        assert_string_equal (s_str (value, "action"), "publish");
        json_t *params = json_object_get (value, "params");
        assert_string_equal (s_str (params, "service"), "web");
        assert_int_equal (json_integer_value (json_object_get (params, "replicas")), 3);
        assert_string_equal (s_str (json_object_get (value, "incident"), "series"), "web-1/cpu");
        json_decref (value);
    }
    json_decref (got);
}

static void
test_kafka_executor_without_producer (void **state)
{
    char *detail = NULL;
    json_t *message = json_pack ("{ss}", "x", "y");
    assert_int_equal (mesh_act_kafka_run (NULL, "actions", ID_A, message, &detail), -1);
    assert_string_equal (detail, "no producer");
    free (detail);
    json_decref (message);
    mesh_act_kafka_t *kafka = NULL;
    mesh_act_kafka_destroy (&kafka);        //  safe on NULL
    mesh_act_kafka_destroy (NULL);

    json_t *action = json_pack ("{ss s{ss}}", "name", "escalate", "params", "summary", "hi");
    detail = NULL;
    assert_int_equal (mesh_act_log_run ("cpu", ID_A, action, &detail), 0);
    assert_string_equal (detail, "logged");
    free (detail);
    json_decref (action);
}

static void
test_kafka_action_unreachable_broker_fails (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    //  A port that is ours and refuses every connection.
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    assert_true (fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    assert_int_equal (bind (fd, (struct sockaddr *) &addr, sizeof addr), 0);
    socklen_t len = sizeof addr;
    assert_int_equal (getsockname (fd, (struct sockaddr *) &addr, &len), 0);
    char brokers[64];
    snprintf (brokers, sizeof brokers, "127.0.0.1:%d", ntohs (addr.sin_port));

    mesh_act_t *act = mesh_act_new (&fx->cfg, &fx->agent, brokers);
    assert_non_null (act);
    json_t *decision = s_decision (ID_A, "publish");
    json_t *outcome = mesh_act_run (act, decision, NULL);
    s_check_outcome (outcome, ID_A, "publish", "failed");
    assert_string_not_equal (s_str (outcome, "detail"), "produced to actions");
    json_decref (outcome);
    json_decref (decision);
    mesh_act_destroy (&act);
    close (fd);
}

//  --- recovery: produce again only if the topic does not hold the decision -----------

static json_t *
s_recovered (const char *id, const char *action, int64_t ts)
{
    json_t *decision = s_decision (id, action);
    json_object_set_new (decision, "ts", json_integer (ts));
    return decision;
}

static size_t
s_count_key (json_t *got, const char *key)
{
    size_t n = 0, i;
    json_t *m;
    json_array_foreach (got, i, m)
        n += strcmp (s_str (m, "key"), key) == 0;
    return n;
}

static void
test_recover_produces_once (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_act_t *act = mesh_act_new (&fx->cfg, &fx->agent, mesh_broker_bootstraps (fx->broker));
    assert_non_null (act);
    //  A live act of A, then A recovered (the outcome was lost): found, not produced again.
    json_t *decision = s_recovered (ID_A, "publish", zclock_time ());
    json_t *outcome = mesh_act_run (act, decision, NULL);
    s_check_outcome (outcome, ID_A, "publish", "done");
    json_decref (outcome);
    outcome = mesh_act_recover (act, decision, NULL);
    s_check_outcome (outcome, ID_A, "publish", "done");
    assert_non_null (strstr (s_str (outcome, "detail"), "already produced at "));
    json_decref (outcome);
    json_decref (decision);
    //  B was recorded but never produced: recovery produces it, and a second recovery
    //  finds it.  Other keys on the topic are read past.
    decision = s_recovered (ID_B, "publish", zclock_time ());
    outcome = mesh_act_recover (act, decision, NULL);
    s_check_outcome (outcome, ID_B, "publish", "done");
    assert_string_equal (s_str (outcome, "detail"), "produced to actions");
    json_decref (outcome);
    outcome = mesh_act_recover (act, decision, NULL);
    s_check_outcome (outcome, ID_B, "publish", "done");
    assert_non_null (strstr (s_str (outcome, "detail"), "already produced at "));
    json_decref (outcome);
    json_decref (decision);
    //  A decision without a ledger time: the whole topic is checked.
    decision = s_decision (ID_A, "publish");
    outcome = mesh_act_recover (act, decision, NULL);
    assert_non_null (strstr (s_str (outcome, "detail"), "already produced at "));
    json_decref (outcome);
    json_decref (decision);
    //  A log action recovers as it runs.
    decision = s_recovered (ID_C, "escalate", zclock_time ());
    outcome = mesh_act_recover (act, decision, NULL);
    s_check_outcome (outcome, ID_C, "escalate", "done");
    json_decref (outcome);
    json_decref (decision);
    mesh_act_destroy (&act);

    json_t *got = s_consume_all (mesh_broker_bootstraps (fx->broker), "actions");
    assert_int_equal (json_array_size (got), 2);
    assert_int_equal (s_count_key (got, ID_A), 1);
    assert_int_equal (s_count_key (got, ID_B), 1);
    json_decref (got);
}

static void
test_find_bounds (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    mesh_act_kafka_t *kafka = mesh_act_kafka_new (&fx->cfg, mesh_broker_bootstraps (fx->broker));
    assert_non_null (kafka);
    char *detail = NULL;
    //  An empty topic: nothing there.
    assert_int_equal (mesh_act_kafka_find (kafka, "actions", ID_A, 0, 10000, 1000, &detail), 0);
    assert_null (detail);
    json_t *message = json_pack ("{ss}", "x", "y");
    assert_int_equal (mesh_act_kafka_run (kafka, "actions", ID_A, message, &detail), 0);
    free (detail);
    json_decref (message);
    for (int i = 0; i < 6; i++) {
        char key[32];
        snprintf (key, sizeof key, "other-%d", i);
        message = json_pack ("{si}", "n", i);
        assert_int_equal (mesh_act_kafka_run (kafka, "actions", key, message, &detail), 0);
        free (detail);
        json_decref (message);
    }
    int64_t now = zclock_time ();
    assert_int_equal (mesh_act_kafka_find (kafka, "actions", ID_A, now - 60000, 10000, 1000,
                                           &detail), 1);
    assert_non_null (strstr (detail, "already produced at "));
    free (detail);
    assert_int_equal (mesh_act_kafka_find (kafka, "actions", ID_B, now - 60000, 10000, 1000,
                                           &detail), 0);
    //  Too many messages to read within the bound: not "absent", unknown.
    assert_int_equal (mesh_act_kafka_find (kafka, "actions", ID_B, now - 60000, 10000, 3,
                                           &detail), -1);
    assert_non_null (strstr (detail, "more than"));
    free (detail);
    //  Only what was written since the time asked about is read: every message is older
    //  than an hour from now, so A (followed by others on its partition) is not seen.
    //  The mock cluster cannot look up by time; the last message's timestamp shows that
    //  nothing is newer, so no partition is read from its start.
    assert_int_equal (mesh_act_kafka_find (kafka, "actions", ID_A, now + 3600000, 10000, 1000,
                                           &detail), 0);
    //  Not a millisecond to do it in.
    assert_int_equal (mesh_act_kafka_find (kafka, "actions", ID_B, 0, 0, 1000, &detail), -1);
    assert_non_null (detail);
    free (detail);
    //  No producer.
    assert_int_equal (mesh_act_kafka_find (NULL, "actions", ID_A, 0, 3000, 1000, &detail), -1);
    assert_string_equal (detail, "no producer");
    free (detail);
    mesh_act_kafka_destroy (&kafka);
}

static void
test_recover_unreachable_is_unknown (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    assert_true (fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    assert_int_equal (bind (fd, (struct sockaddr *) &addr, sizeof addr), 0);
    socklen_t len = sizeof addr;
    assert_int_equal (getsockname (fd, (struct sockaddr *) &addr, &len), 0);
    char brokers[64];
    snprintf (brokers, sizeof brokers, "127.0.0.1:%d", ntohs (addr.sin_port));

    //  The check cannot finish: no produce, the outcome says it is unknown.
    mesh_act_t *act = mesh_act_new (&fx->cfg, &fx->agent, brokers);
    assert_non_null (act);
    json_t *decision = s_recovered (ID_A, "publish", zclock_time ());
    json_t *outcome = mesh_act_recover (act, decision, NULL);
    s_check_outcome (outcome, ID_A, "publish", "outcome_unknown");
    json_decref (outcome);
    json_decref (decision);
    mesh_act_destroy (&act);
    close (fd);
    json_t *got = s_consume_all (mesh_broker_bootstraps (fx->broker), "actions");
    assert_int_equal (json_array_size (got), 0);
    json_decref (got);
}

int
main (void)
{
    if (!getenv ("MESH_LOG_LEVEL"))
        mesh_log_set_level (MESH_LOG_ERR - 1);      //  the failure paths log on purpose
    zsys_init ();
    zsys_set_logstream (NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_log_action_done, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_undeclared_actions_fail, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_observe_mode_produces_nothing, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_kafka_action_lands_on_topic, s_setup, s_teardown),
        cmocka_unit_test (test_kafka_executor_without_producer),
        cmocka_unit_test_setup_teardown (test_kafka_action_unreachable_broker_fails, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_recover_produces_once, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_find_bounds, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_recover_unreachable_is_unknown, s_setup,
                                         s_teardown),
    };
    int rc = cmocka_run_group_tests_name ("act", tests, NULL, NULL);
    zsys_shutdown ();
    return rc;
}

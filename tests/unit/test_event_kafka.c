/*  test_event_kafka - decoding input messages, and the offset watermark end to end.
 *
 *  mesh_event_decode is checked case by case: the series key, the value, every time
 *  format the config reference promises, and every way a message can be malformed.
 *  Then the consumer runs against the embedded broker (librdkafka's mock cluster via
 *  daemon/broker.c): 100 messages on 2 partitions, some malformed, one event held.
 *  The group's committed offsets are read with a separate client (like the
 *  integration tests' kgroup helper): the held partition's commit must stop at the
 *  held offset, never beyond, and move to the end once the event is done.
 */
#include "event_kafka.h"
#include "broker.h"
#include "log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <czmq.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdlib.h>
#include <string.h>

static char *s_keys[] = {(char *) "host", (char *) "metric"};
static char *s_topics[] = {(char *) "metrics"};

static mesh_agent_config_t s_agent = {
    .name = (char *) "cpu",
    .topics = s_topics,
    .topic_count = 1,
    .group = (char *) "meshd.test_event_kafka",
    .key_fields = s_keys,
    .key_field_count = 2,
    .value_field = (char *) "value",
    .time_field = (char *) "ts",
};

//  Decode TEXT with AGENT: 0 and *EVENT filled, or -1 and *WHY; checks the ownership
//  contract either way.
static int
s_decode (const mesh_agent_config_t *agent, const char *text, mesh_event_t *event,
          const char **why)
{
    memset (event, 0, sizeof *event);
    json_t *json = json_true ();            //  must be overwritten
    *why = NULL;
    int rc = mesh_event_decode (agent, text, text ? strlen (text) : 0, event, &json, why);
    if (rc == 0) {
        //  No tree is built by decoding; the whole message parses on demand, as an object.
        assert_null (json);
        assert_null (event->json);
        assert_ptr_equal (event->raw, text);
        json_t *tree = mesh_event_parse (event);
        assert_non_null (tree);
        assert_true (json_is_object (tree));
        assert_ptr_equal (mesh_event_parse (event), tree);
        json_decref (tree);
        event->json = NULL;
    }
    else {
        assert_int_equal (rc, -1);
        assert_null (json);
        assert_non_null (*why);
    }
    return rc;
}

static void
test_decode_valid (void **state)
{
    mesh_event_t ev;
    const char *why;
    assert_int_equal (
        s_decode (&s_agent, "{\"host\":\"web-1\",\"metric\":\"cpu\",\"value\":3,\"ts\":1700000000}",
                  &ev, &why), 0);
    assert_string_equal (ev.series, "web-1/cpu");
    assert_true (ev.value == 3.0);
    assert_int_equal (ev.ts_ms, 1700000000000LL);

    //  Integer key fields, a real value, extra fields ignored.
    assert_int_equal (
        s_decode (&s_agent, "{\"host\":7,\"metric\":-12,\"value\":0.25,\"ts\":1700000000,\"x\":[]}",
                  &ev, &why), 0);
    assert_string_equal (ev.series, "7/-12");
    assert_true (ev.value == 0.25);

    //  No time field: -1, the consumer falls back to the broker's timestamp.
    assert_int_equal (s_decode (&s_agent, "{\"host\":\"a\",\"metric\":\"b\",\"value\":-1e3}", &ev,
                                &why), 0);
    assert_int_equal (ev.ts_ms, -1);
    assert_true (ev.value == -1000.0);

    //  A single key field, and other field names.
    char *one[] = {(char *) "series"};
    mesh_agent_config_t agent = s_agent;
    agent.key_fields = one;
    agent.key_field_count = 1;
    agent.value_field = (char *) "v";
    agent.time_field = (char *) "time";
    assert_int_equal (s_decode (&agent, "{\"series\":\"s\",\"v\":1,\"time\":2}", &ev, &why), 0);
    assert_string_equal (ev.series, "s");
    assert_int_equal (ev.ts_ms, 2000);
    //  ... and the default names no longer count.
    assert_int_equal (s_decode (&agent, "{\"series\":\"s\",\"value\":1}", &ev, &why), -1);
}

static void
test_decode_times (void **state)
{
    static const struct {
        const char *ts;
        int64_t ms;
    } cases[] = {
        {"1700000000", 1700000000000LL},                //  epoch seconds
        {"1700000000.5", 1700000000500LL},              //  with a fraction
        {"1700000000123", 1700000000123LL},             //  epoch milliseconds (> 1e11)
        {"0", 0},
        {"\"2023-11-14T22:13:20Z\"", 1700000000000LL},
        {"\"2023-11-14T23:13:20+01:00\"", 1700000000000LL},
        {"\"2023-11-14T16:43:20-05:30\"", 1700000000000LL},
        {"\"2023-11-14T22:13:20.250Z\"", 1700000000250LL},
        {"\"2023-11-14T22:13:20.5+00:00\"", 1700000000500LL},
        {"\"2023-11-15T00:13:20.125+02:00\"", 1700000000125LL},
        {"\"1970-01-01T00:00:00Z\"", 0},
        {"\"2024-02-29T12:00:00Z\"", 1709208000000LL},  //  a leap day
        {"\"2023-11-14T22:13:20.1239Z\"", 1700000000123LL},     //  below 1 ms: dropped
        {"\"2023-11-14T22:13:20.07Z\"", 1700000000070LL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[160];
        snprintf (text, sizeof text, "{\"host\":\"h\",\"metric\":\"m\",\"value\":1,\"ts\":%s}",
                  cases[i].ts);
        mesh_event_t ev;
        const char *why;
        if (s_decode (&s_agent, text, &ev, &why) != 0)
            fail_msg ("ts %s refused: %s", cases[i].ts, why);
        if (ev.ts_ms != cases[i].ms)
            fail_msg ("ts %s: %lld, expected %lld", cases[i].ts, (long long) ev.ts_ms,
                      (long long) cases[i].ms);
    }
}

static void
test_decode_malformed (void **state)
{
    static const char *const TRUNCATED = "truncated: the message ends inside a JSON value";
    static const char *const NOT_OBJECT = "not_object: not a JSON object";
    static const char *const SYNTAX = "syntax: not JSON";
    static const char *const DUPLICATE = "duplicate_key: a key appears twice in one object";
    static const char *const NO_KEY = "missing_field: a key field is missing";
    static const char *const KEY = "bad_field: a key field is not a string or an integer";
    static const char *const CONTROL = "bad_field: a key field holds control characters";
    static const char *const NO_VALUE = "missing_field: the value field is missing";
    static const char *const VALUE = "bad_field: the value field is not a finite number";
    static const char *const TIME = "bad_field: time field is neither epoch seconds nor RFC 3339";
    static const struct {
        const char *text;
        const char *why;
    } cases[] = {
        {"", TRUNCATED},
        {"not json", NOT_OBJECT},
        {"{\"host\":\"a\"", TRUNCATED},
        {"[{\"host\":\"a\",\"metric\":\"b\",\"value\":1}]", NOT_OBJECT},
        {"\"host\"", NOT_OBJECT},
        {"17", NOT_OBJECT},
        {"{\"host\":\"a\",\"metric\":\"b\",\"value\":1}{}", SYNTAX},
        {"{\"host\":\"a\",\"host\":\"b\",\"metric\":\"c\",\"value\":1}", DUPLICATE},
        {"{\"host\":\"a\",\"metric\":\"b\",\"value\":1,\"value\":2}", DUPLICATE},
        {"{\"metric\":\"b\",\"value\":1}", NO_KEY},
        {"{\"host\":\"a\",\"value\":1}", NO_KEY},
        {"{\"host\":{\"name\":\"a\"},\"metric\":\"b\",\"value\":1}", KEY},
        {"{\"host\":[\"a\"],\"metric\":\"b\",\"value\":1}", KEY},
        {"{\"host\":1.5,\"metric\":\"b\",\"value\":1}", KEY},
        {"{\"host\":null,\"metric\":\"b\",\"value\":1}", KEY},
        {"{\"host\":true,\"metric\":\"b\",\"value\":1}", KEY},
        {"{\"host\":\"we\\nb\",\"metric\":\"b\",\"value\":1}", CONTROL},
        {"{\"host\":\"a\",\"metric\":\"\\u0001\",\"value\":1}", CONTROL},
        {"{\"host\":\"a\",\"metric\":\"b\\u007f\",\"value\":1}", CONTROL},
        {"{\"host\":\"a\",\"metric\":\"b\\t\",\"value\":1}", CONTROL},
        {"{\"host\":\"a\",\"metric\":\"b\"}", NO_VALUE},
        {"{\"host\":\"a\",\"metric\":\"b\",\"value\":\"3\"}", VALUE},
        {"{\"host\":\"a\",\"metric\":\"b\",\"value\":null}", VALUE},
        {"{\"host\":\"a\",\"metric\":\"b\",\"value\":true}", VALUE},
        {"{\"host\":\"a\",\"metric\":\"b\",\"value\":[1]}", VALUE},
        {"{\"host\":\"a\",\"metric\":\"b\",\"value\":1,\"ts\":\"yesterday\"}", TIME},
        {"{\"host\":\"a\",\"metric\":\"b\",\"value\":1,\"ts\":\"\"}", TIME},
        {"{\"host\":\"a\",\"metric\":\"b\",\"value\":1,\"ts\":\"2023-11-14T22:13:20\"}", TIME},
        {"{\"host\":\"a\",\"metric\":\"b\",\"value\":1,\"ts\":\"2023-11-14 22:13:20Z\"}", TIME},
        {"{\"host\":\"a\",\"metric\":\"b\",\"value\":1,\"ts\":\"2023-11-14T22:13:20Zjunk\"}", TIME},
        {"{\"host\":\"a\",\"metric\":\"b\",\"value\":1,\"ts\":\"2023-11-14T22:13:20+01\"}", TIME},
        {"{\"host\":\"a\",\"metric\":\"b\",\"value\":1,\"ts\":\"2023-11-14T22:13:20+0100\"}", TIME},
        {"{\"host\":\"a\",\"metric\":\"b\",\"value\":1,\"ts\":\"2023-11-14T22:13:20+01:00x\"}",
         TIME},
        {"{\"host\":\"a\",\"metric\":\"b\",\"value\":1,\"ts\":\"2023-11-14T22:13:20+1:00\"}", TIME},
        {"{\"host\":\"a\",\"metric\":\"b\",\"value\":1,\"ts\":\"2023-11-14T22:13:20+01:0\"}", TIME},
        {"{\"host\":\"a\",\"metric\":\"b\",\"value\":1,\"ts\":\"2023-11-14T22:13:20+-1:00\"}",
         TIME},
        {"{\"host\":\"a\",\"metric\":\"b\",\"value\":1,\"ts\":\"2023-11-14T22:13:20.Z\"}", TIME},
        {"{\"host\":\"a\",\"metric\":\"b\",\"value\":1,\"ts\":\"2023-11-14T22:13:20.5e3Z\"}", TIME},
        {"{\"host\":\"a\",\"metric\":\"b\",\"value\":1,\"ts\":\"2023-13-14T22:13:20Z\"}", TIME},
        {"{\"host\":\"a\",\"metric\":\"b\",\"value\":1,\"ts\":1e300}", TIME},
        {"{\"host\":\"a\",\"metric\":\"b\",\"value\":1,\"ts\":-5}", TIME},
        {"{\"host\":\"a\",\"metric\":\"b\",\"value\":1,\"ts\":true}", TIME},
        {"{\"host\":\"a\",\"metric\":\"b\",\"value\":1,\"ts\":null}", TIME},
        {"{\"host\":\"a\",\"metric\":\"b\",\"value\":1,\"ts\":{}}", TIME},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mesh_event_t ev;
        const char *why;
        if (s_decode (&s_agent, cases[i].text, &ev, &why) == 0)
            fail_msg ("case %zu accepted: %s", i, cases[i].text);
        if (strcmp (why, cases[i].why) != 0)
            fail_msg ("case %zu (%s): \"%s\", expected \"%s\"", i, cases[i].text, why,
                      cases[i].why);
    }
    //  No payload at all (a tombstone).
    mesh_event_t ev;
    const char *why;
    assert_int_equal (s_decode (&s_agent, NULL, &ev, &why), -1);
    assert_string_equal (why, "tombstone: no value (a tombstone)");
    assert_int_equal (mesh_event_reason_of (why), MESH_EVENT_TOMBSTONE);
}

static void
test_decode_key_length (void **state)
{
    //  The longest series that fits: 255 characters ("host/metric").
    char host[400], text[600];
    mesh_event_t ev;
    const char *why;
    memset (host, 'h', 253);
    host[253] = 0;
    snprintf (text, sizeof text, "{\"host\":\"%s\",\"metric\":\"m\",\"value\":1}", host);
    assert_int_equal (s_decode (&s_agent, text, &ev, &why), 0);
    assert_int_equal (strlen (ev.series), MESH_SERIES_KEY_MAX - 1);
    //  One more is too long.
    host[253] = 'h';
    host[254] = 0;
    snprintf (text, sizeof text, "{\"host\":\"%s\",\"metric\":\"m\",\"value\":1}", host);
    assert_int_equal (s_decode (&s_agent, text, &ev, &why), -1);
    assert_string_equal (why, "bad_field: series key too long");
    //  Long in the second field.
    snprintf (text, sizeof text, "{\"host\":\"h\",\"metric\":\"%s\",\"value\":1}", host);
    assert_int_equal (s_decode (&s_agent, text, &ev, &why), -1);
    assert_string_equal (why, "bad_field: series key too long");

    //  A single key field: 255 characters fit, more must be refused, not cut short
    //  (two long hosts that share a prefix would otherwise be one series).
    char *one[] = {(char *) "host"};
    mesh_agent_config_t agent = s_agent;
    agent.key_fields = one;
    agent.key_field_count = 1;
    memset (host, 'h', 255);
    host[255] = 0;
    snprintf (text, sizeof text, "{\"host\":\"%s\",\"value\":1}", host);
    assert_int_equal (s_decode (&agent, text, &ev, &why), 0);
    assert_string_equal (ev.series, host);
    memset (host, 'h', 300);
    host[300] = 0;
    snprintf (text, sizeof text, "{\"host\":\"%s\",\"value\":1}", host);
    assert_int_equal (s_decode (&agent, text, &ev, &why), -1);
    assert_string_equal (why, "bad_field: series key too long");
}

//  ---------------------------------------------------------------------------------------
//  End to end against the embedded broker

#define MESSAGES   100
#define PARTITIONS 2
#define HELD_PARTITION 0
#define HELD_OFFSET 20              //  message 40: a valid one

static bool
s_is_malformed (int i)
{
    return i % 7 == 3;
}

//  Message I goes to partition I % 2 at offset I / 2.
static void
s_produce (const char *bootstraps)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new ();
    assert_int_equal (rd_kafka_conf_set (conf, "bootstrap.servers", bootstraps, err, sizeof err),
                      RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = rd_kafka_new (RD_KAFKA_PRODUCER, conf, err, sizeof err);
    assert_non_null (rk);
    for (int i = 0; i < MESSAGES; i++) {
        char text[160];
        if (s_is_malformed (i))
            snprintf (text, sizeof text, "%s",
                      i % 3 == 0 ? "garbage" : i % 3 == 1 ? "[]" : "{\"host\":\"h\"}");
        else
        if (i % 4 == 0)                 //  no event time: the broker's timestamp is used
            snprintf (text, sizeof text, "{\"host\":\"h%d\",\"metric\":\"cpu\",\"value\":%d}",
                      i % 5, i);
        else
            snprintf (text, sizeof text,
                      "{\"host\":\"h%d\",\"metric\":\"cpu\",\"value\":%d,\"ts\":%d}", i % 5, i,
                      1700000000 + i);
        assert_int_equal (rd_kafka_producev (rk, RD_KAFKA_V_TOPIC ("metrics"),
                                             RD_KAFKA_V_PARTITION (i % PARTITIONS),
                                             RD_KAFKA_V_VALUE (text, strlen (text)),
                                             RD_KAFKA_V_MSGFLAGS (RD_KAFKA_MSG_F_COPY),
                                             RD_KAFKA_V_END),
                          RD_KAFKA_RESP_ERR_NO_ERROR);
    }
    assert_int_equal (rd_kafka_flush (rk, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal (rd_kafka_outq_len (rk), 0);
    rd_kafka_destroy (rk);
}

//  A client of GROUP that never joins it, to read its committed offsets.
static rd_kafka_t *
s_group_reader (const char *bootstraps, const char *group)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new ();
    assert_int_equal (rd_kafka_conf_set (conf, "bootstrap.servers", bootstraps, err, sizeof err),
                      RD_KAFKA_CONF_OK);
    assert_int_equal (rd_kafka_conf_set (conf, "group.id", group, err, sizeof err),
                      RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = rd_kafka_new (RD_KAFKA_CONSUMER, conf, err, sizeof err);
    assert_non_null (rk);
    return rk;
}

static void
s_committed (rd_kafka_t *reader, int64_t committed[PARTITIONS])
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new (PARTITIONS);
    for (int p = 0; p < PARTITIONS; p++)
        rd_kafka_topic_partition_list_add (list, "metrics", p);
    assert_int_equal (rd_kafka_committed (reader, list, 5000), RD_KAFKA_RESP_ERR_NO_ERROR);
    for (int p = 0; p < PARTITIONS; p++)
        committed[p] = list->elems[p].offset;
    rd_kafka_topic_partition_list_destroy (list);
}

static void
test_consume_hold_done (void **state)
{
    mesh_config_t cfg = {0};
    cfg.embedded = true;
    cfg.embedded_topics = s_topics;
    cfg.embedded_topic_count = 1;
    cfg.embedded_partitions = PARTITIONS;
    cfg.session_timeout_ms = 6000;
    cfg.commit_interval_ms = 100;
    mesh_broker_t *broker = mesh_broker_new (&cfg);
    assert_non_null (broker);
    const char *bootstraps = mesh_broker_bootstraps (broker);
    s_produce (bootstraps);

    mesh_event_kafka_t *consumer = mesh_event_kafka_new (&cfg, &s_agent, bootstraps, "cpu-1");
    assert_non_null (consumer);
    assert_int_equal (mesh_event_kafka_lag (consumer), -1);     //  nothing assigned yet

    int valid = 0, malformed = 0;
    bool seen[MESSAGES] = {false};
    int64_t deadline = zclock_mono () + 30000;
    while (valid + malformed < MESSAGES && zclock_mono () < deadline) {
        mesh_event_t ev;
        int rc = mesh_event_kafka_poll (consumer, 100, &ev);
        if (rc == 0)
            continue;
        if (rc < 0) {
            malformed++;
            continue;
        }
        assert_int_equal (rc, 1);
        assert_string_equal (ev.topic, "metrics");
        int i = (int) ev.offset * PARTITIONS + ev.partition;
        assert_true (i >= 0 && i < MESSAGES);
        assert_false (s_is_malformed (i));
        assert_false (seen[i]);
        seen[i] = true;
        char series[32];
        snprintf (series, sizeof series, "h%d/cpu", i % 5);
        assert_string_equal (ev.series, series);
        assert_true (ev.value == (double) i);
        if (i % 4 == 0)
            assert_true (ev.ts_ms > 0);             //  from the broker
        else
            assert_int_equal (ev.ts_ms, (1700000000LL + i) * 1000);
        assert_null (ev.json);                      //  parsed only on demand
        assert_non_null (ev.raw);
        if (ev.partition == HELD_PARTITION && ev.offset == HELD_OFFSET)
            mesh_event_kafka_hold (consumer, ev.topic, ev.partition, ev.offset);
        else
            mesh_event_kafka_done (consumer, ev.topic, ev.partition, ev.offset);
        valid++;
    }
    int expect_malformed = 0, expect_missing = 0;
    for (int i = 0; i < MESSAGES; i++) {
        expect_malformed += s_is_malformed (i);
        expect_missing += s_is_malformed (i) && i % 3 == 2;
    }
    assert_int_equal (malformed, expect_malformed);
    //  Counted by cause: "garbage" and "[]" are no object, {"host":"h"} lacks fields.
    assert_int_equal (mesh_event_kafka_malformed_by (consumer, MESH_EVENT_MISSING_FIELD),
                      (uint64_t) expect_missing);
    assert_int_equal (mesh_event_kafka_malformed_by (consumer, MESH_EVENT_NOT_OBJECT),
                      (uint64_t) (expect_malformed - expect_missing));
    assert_int_equal (valid, MESSAGES - expect_malformed);
    assert_int_equal (mesh_event_kafka_malformed (consumer), (uint64_t) expect_malformed);
    assert_int_equal (mesh_event_kafka_held (consumer), 1);
    assert_int_equal (mesh_event_kafka_lag (consumer), 0);

    //  Auto-commit (every 100 ms) carries the other partition to its end; the held one
    //  stops at the held offset and never passes it.
    rd_kafka_t *reader = s_group_reader (bootstraps, s_agent.group);
    int64_t end = MESSAGES / PARTITIONS;
    int64_t committed[PARTITIONS] = {-1, -1};
    deadline = zclock_mono () + 20000;
    while (zclock_mono () < deadline) {
        mesh_event_t ev;
        assert_int_equal (mesh_event_kafka_poll (consumer, 100, &ev), 0);
        s_committed (reader, committed);
        assert_true (committed[HELD_PARTITION] <= HELD_OFFSET);
        if (committed[HELD_PARTITION] == HELD_OFFSET && committed[1 - HELD_PARTITION] == end)
            break;
    }
    assert_int_equal (committed[HELD_PARTITION], HELD_OFFSET);
    assert_int_equal (committed[1 - HELD_PARTITION], end);

    //  Done: the watermark moves to the end of the partition.
    mesh_event_kafka_done (consumer, "metrics", HELD_PARTITION, HELD_OFFSET);
    assert_int_equal (mesh_event_kafka_held (consumer), 0);
    deadline = zclock_mono () + 20000;
    while (zclock_mono () < deadline) {
        mesh_event_t ev;
        assert_int_equal (mesh_event_kafka_poll (consumer, 100, &ev), 0);
        s_committed (reader, committed);
        if (committed[HELD_PARTITION] == end)
            break;
    }
    assert_int_equal (committed[HELD_PARTITION], end);

    //  Done about a partition never seen, or an offset never held: no effect, no crash.
    mesh_event_kafka_done (consumer, "other", 3, 1);
    mesh_event_kafka_done (consumer, "metrics", HELD_PARTITION, 7);
    assert_int_equal (mesh_event_kafka_held (consumer), 0);

    rd_kafka_destroy (reader);
    mesh_event_kafka_destroy (&consumer);
    assert_null (consumer);
    mesh_event_kafka_destroy (&consumer);
    mesh_event_kafka_destroy (NULL);
    mesh_broker_destroy (&broker);
}

static void
test_commit_on_close_keeps_the_hold (void **state)
{
    //  Closing the consumer commits what is stored: with an event still held, a new
    //  consumer of the group starts again at the held event.
    mesh_config_t cfg = {0};
    cfg.embedded = true;
    cfg.embedded_topics = s_topics;
    cfg.embedded_topic_count = 1;
    cfg.embedded_partitions = PARTITIONS;
    cfg.session_timeout_ms = 6000;
    cfg.commit_interval_ms = 60000;         //  only the close commits
    mesh_broker_t *broker = mesh_broker_new (&cfg);
    assert_non_null (broker);
    const char *bootstraps = mesh_broker_bootstraps (broker);
    s_produce (bootstraps);
    mesh_agent_config_t agent = s_agent;
    agent.group = (char *) "meshd.test_event_kafka.close";

    mesh_event_kafka_t *consumer = mesh_event_kafka_new (&cfg, &agent, bootstraps, "cpu-1");
    assert_non_null (consumer);
    int seen = 0;
    int64_t deadline = zclock_mono () + 30000;
    while (seen < MESSAGES && zclock_mono () < deadline) {
        mesh_event_t ev;
        int rc = mesh_event_kafka_poll (consumer, 100, &ev);
        if (rc == 0)
            continue;
        seen++;
        if (rc == 1 && ev.partition == HELD_PARTITION && ev.offset == HELD_OFFSET)
            mesh_event_kafka_hold (consumer, ev.topic, ev.partition, ev.offset);
        else
        if (rc == 1)
            mesh_event_kafka_done (consumer, ev.topic, ev.partition, ev.offset);
    }
    assert_int_equal (seen, MESSAGES);
    mesh_event_kafka_destroy (&consumer);

    rd_kafka_t *reader = s_group_reader (bootstraps, agent.group);
    int64_t committed[PARTITIONS];
    s_committed (reader, committed);
    assert_int_equal (committed[HELD_PARTITION], HELD_OFFSET);
    assert_int_equal (committed[1 - HELD_PARTITION], MESSAGES / PARTITIONS);
    rd_kafka_destroy (reader);

    //  The next consumer of the group is handed the held event first on that partition.
    consumer = mesh_event_kafka_new (&cfg, &agent, bootstraps, "cpu-2");
    assert_non_null (consumer);
    int64_t first = -1;
    int polled = 0;
    deadline = zclock_mono () + 30000;
    while (polled < MESSAGES / PARTITIONS - HELD_OFFSET && zclock_mono () < deadline) {
        mesh_event_t ev;
        int rc = mesh_event_kafka_poll (consumer, 100, &ev);
        if (rc == 0)
            continue;
        assert_int_equal (ev.partition, HELD_PARTITION);    //  the other one is finished
        if (first < 0)
            first = ev.offset;
        polled++;
    }
    assert_int_equal (first, HELD_OFFSET);
    assert_int_equal (polled, MESSAGES / PARTITIONS - HELD_OFFSET);
    mesh_event_kafka_destroy (&consumer);
    mesh_broker_destroy (&broker);
}

//  Produce TEXT to metrics[0] through RK.
static void
s_send (rd_kafka_t *rk, const char *text)
{
    assert_int_equal (rd_kafka_producev (rk, RD_KAFKA_V_TOPIC ("metrics"), RD_KAFKA_V_PARTITION (0),
                                         RD_KAFKA_V_VALUE ((void *) text, strlen (text)),
                                         RD_KAFKA_V_MSGFLAGS (RD_KAFKA_MSG_F_COPY),
                                         RD_KAFKA_V_END),
                      RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal (rd_kafka_flush (rk, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
}

//  Poll CONSUMER until UNTIL holds or TIMEOUT_MS passes; no single poll may take longer
//  than a second (the consumer thread never waits for the dead-letter broker).  Counts
//  valid events into *VALID.
#define S_POLL_UNTIL(consumer, until, timeout_ms, valid)                                     \
    do {                                                                                     \
        int64_t deadline_ = zclock_mono () + (timeout_ms);                                   \
        while (!(until) && zclock_mono () < deadline_) {                                     \
            mesh_event_t ev_;                                                                \
            int64_t t0_ = zclock_mono ();                                                    \
            int rc_ = mesh_event_kafka_poll ((consumer), 100, &ev_);                         \
            assert_true (zclock_mono () - t0_ < 1000);                                       \
            if (rc_ == 1) {                                                                  \
                (valid)++;                                                                   \
                mesh_event_kafka_done ((consumer), ev_.topic, ev_.partition, ev_.offset);    \
            }                                                                                \
        }                                                                                    \
    } while (0)

//  Event time out of the window (year 3000, microseconds read as milliseconds, too old):
//  counted out_of_window and dead-lettered with the reason in a header.  Then a dead-letter
//  broker that never acknowledges: each poll stays short, the copies fail after
//  events.dead_letter_timeout_ms, are counted dead_letter_failed, and the offsets move on.
static void
test_window_and_dead_letter (void **state)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new ();
    rd_kafka_t *host = rd_kafka_new (RD_KAFKA_PRODUCER, conf, err, sizeof err);
    assert_non_null (host);
    rd_kafka_mock_cluster_t *mcluster = rd_kafka_mock_cluster_new (host, 1);
    assert_non_null (mcluster);
    assert_int_equal (rd_kafka_mock_topic_create (mcluster, "metrics", PARTITIONS, 1), 0);
    assert_int_equal (rd_kafka_mock_topic_create (mcluster, "metrics.dlq", 1, 1), 0);
    const char *bootstraps = rd_kafka_mock_cluster_bootstraps (mcluster);

    conf = rd_kafka_conf_new ();
    assert_int_equal (rd_kafka_conf_set (conf, "bootstrap.servers", bootstraps, err, sizeof err),
                      RD_KAFKA_CONF_OK);
    rd_kafka_t *producer = rd_kafka_new (RD_KAFKA_PRODUCER, conf, err, sizeof err);
    assert_non_null (producer);
    int64_t now_s = zclock_time () / 1000;
    char text[200];
    snprintf (text, sizeof text, "{\"host\":\"a\",\"metric\":\"b\",\"value\":1,\"ts\":%lld}",
              (long long) now_s);
    s_send (producer, text);
    s_send (producer, "{\"host\":\"a\",\"metric\":\"b\",\"value\":2,\"ts\":32503680000}");
    snprintf (text, sizeof text, "{\"host\":\"a\",\"metric\":\"b\",\"value\":3,\"ts\":%lld}",
              (long long) now_s * 1000000);     //  microseconds: read as ms, year 50000+
    s_send (producer, text);
    s_send (producer, "{\"host\":\"a\",\"metric\":\"b\",\"value\":4,"
                      "\"ts\":\"3000-01-01T00:00:00Z\"}");
    snprintf (text, sizeof text, "{\"host\":\"a\",\"metric\":\"b\",\"value\":5,\"ts\":%lld}",
              (long long) now_s - 7200);        //  two hours old: max_event_age_s is one
    s_send (producer, text);
    snprintf (text, sizeof text, "{\"host\":\"a\",\"metric\":\"b\",\"value\":6,\"ts\":%lld}",
              (long long) now_s + 60);          //  a minute ahead: within the skew
    s_send (producer, text);

    mesh_config_t cfg = {0};
    cfg.session_timeout_ms = 6000;
    cfg.commit_interval_ms = 100;
    mesh_agent_config_t agent = s_agent;
    agent.group = (char *) "meshd.test_window";
    agent.dead_letter_topic = (char *) "metrics.dlq";
    agent.events.max_future_skew_s = 300;
    agent.events.max_event_age_s = 3600;
    agent.events.dead_letter_timeout_ms = 1000;
    mesh_event_kafka_t *consumer = mesh_event_kafka_new (&cfg, &agent, bootstraps, "w-1");
    assert_non_null (consumer);
    int valid = 0;
    S_POLL_UNTIL (consumer, valid == 2 && mesh_event_kafka_dead_lettered (consumer) == 4, 30000,
                  valid);
    assert_int_equal (valid, 2);
    assert_int_equal (mesh_event_kafka_malformed_by (consumer, MESH_EVENT_OUT_OF_WINDOW), 4);
    assert_int_equal (mesh_event_kafka_malformed (consumer), 4);
    assert_int_equal (mesh_event_kafka_dead_lettered (consumer), 4);
    assert_int_equal (mesh_event_kafka_dead_letter_failed (consumer), 0);
    assert_int_equal (mesh_event_kafka_held (consumer), 0);

    //  The copies carry the reason, the why and the origin.
    conf = rd_kafka_conf_new ();
    assert_int_equal (rd_kafka_conf_set (conf, "bootstrap.servers", bootstraps, err, sizeof err),
                      RD_KAFKA_CONF_OK);
    assert_int_equal (rd_kafka_conf_set (conf, "group.id", "dlq-reader", err, sizeof err),
                      RD_KAFKA_CONF_OK);
    rd_kafka_t *reader = rd_kafka_new (RD_KAFKA_CONSUMER, conf, err, sizeof err);
    assert_non_null (reader);
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new (1);
    rd_kafka_topic_partition_list_add (list, "metrics.dlq", 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal (rd_kafka_assign (reader, list), 0);
    rd_kafka_topic_partition_list_destroy (list);
    int copies = 0;
    int64_t deadline = zclock_mono () + 20000;
    while (copies < 4 && zclock_mono () < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll (reader, 100);
        if (!m)
            continue;
        if (!m->err) {
            rd_kafka_headers_t *h = NULL;
            const void *v;
            size_t n;
            assert_int_equal (rd_kafka_message_headers (m, &h), 0);
            assert_int_equal (rd_kafka_header_get_last (h, "meshd-reason", &v, &n), 0);
            assert_int_equal (n, strlen ("out_of_window"));
            assert_memory_equal (v, "out_of_window", n);
            assert_int_equal (rd_kafka_header_get_last (h, "meshd-origin", &v, &n), 0);
            assert_true (n > strlen ("metrics/0/") && !memcmp (v, "metrics/0/", 10));
            copies++;
        }
        rd_kafka_message_destroy (m);
    }
    assert_int_equal (copies, 4);
    rd_kafka_consumer_close (reader);
    rd_kafka_destroy (reader);

    //  The dead-letter broker stops acknowledging: every produce request times out.
    s_send (producer, "garbage");
    s_send (producer, "{\"host\":\"a\",\"host\":\"b\",\"metric\":\"c\",\"value\":1}");
    snprintf (text, sizeof text, "{\"host\":\"a\",\"metric\":\"b\",\"value\":7,\"ts\":%lld}",
              (long long) now_s);
    s_send (producer, text);
    rd_kafka_resp_err_t errors[2000];
    for (size_t i = 0; i < sizeof errors / sizeof *errors; i++)
        errors[i] = RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT;
    rd_kafka_mock_push_request_errors_array (mcluster, 0 /* Produce */,
                                             sizeof errors / sizeof *errors, errors);
    int64_t start = zclock_mono ();
    S_POLL_UNTIL (consumer, valid == 3 && mesh_event_kafka_dead_letter_failed (consumer) == 2,
                  20000, valid);
    //  Within the bound (plus the retry backoff and the test's 100 ms polls).
    assert_true (zclock_mono () - start < 1000 + 2000);
    assert_int_equal (valid, 3);
    assert_int_equal (mesh_event_kafka_dead_letter_failed (consumer), 2);
    assert_int_equal (mesh_event_kafka_dead_lettered (consumer), 4);
    assert_int_equal (mesh_event_kafka_malformed_by (consumer, MESH_EVENT_NOT_OBJECT), 1);
    assert_int_equal (mesh_event_kafka_malformed_by (consumer, MESH_EVENT_DUPLICATE_KEY), 1);
    assert_int_equal (mesh_event_kafka_held (consumer), 0);
    //  ... and the offsets moved on: the group's commit reaches the end of the partition.
    mesh_event_kafka_flush (consumer);
    rd_kafka_t *group = s_group_reader (bootstraps, "meshd.test_window");
    int64_t committed[PARTITIONS] = {-1, -1};
    deadline = zclock_mono () + 20000;
    while (committed[0] != 9 && zclock_mono () < deadline) {
        mesh_event_t ev;
        assert_int_equal (mesh_event_kafka_poll (consumer, 100, &ev), 0);
        s_committed (group, committed);
    }
    assert_int_equal (committed[0], 9);
    rd_kafka_destroy (group);
    mesh_event_kafka_destroy (&consumer);
    rd_kafka_destroy (producer);
    rd_kafka_mock_cluster_destroy (mcluster);
    rd_kafka_destroy (host);
}

int
main (void)
{
    if (!getenv ("MESH_LOG_LEVEL"))
        mesh_log_set_level (MESH_LOG_ERR - 1);      //  the failure paths log on purpose
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_decode_valid),
        cmocka_unit_test (test_decode_times),
        cmocka_unit_test (test_decode_malformed),
        cmocka_unit_test (test_decode_key_length),
        cmocka_unit_test (test_consume_hold_done),
        cmocka_unit_test (test_commit_on_close_keeps_the_hold),
        cmocka_unit_test (test_window_and_dead_letter),
    };
    return cmocka_run_group_tests_name ("event_kafka", tests, NULL, NULL);
}

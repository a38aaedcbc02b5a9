/*  kgroup - print a consumer group's committed offsets and the topic's end offsets.
 *
 *      kgroup BROKERS GROUP TOPIC
 *
 *  One line per partition: "PARTITION COMMITTED END", then "total COMMITTED END".
 *  Used by the integration tests to prove that every produced event was handled:
 *  an agent commits an offset only once everything below it is recorded.  Joins
 *  no group (it never subscribes), so it does not disturb the agents.
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <string.h>

int
main (int argc, char **argv)
{
    if (argc != 4) {
        fprintf (stderr, "usage: kgroup BROKERS GROUP TOPIC\n");
        return 64;
    }
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new ();
    if (rd_kafka_conf_set (conf, "bootstrap.servers", argv[1], err, sizeof err)
        || rd_kafka_conf_set (conf, "group.id", argv[2], err, sizeof err)) {
        fprintf (stderr, "kgroup: %s\n", err);
        return 1;
    }
    rd_kafka_t *rk = rd_kafka_new (RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) {
        fprintf (stderr, "kgroup: %s\n", err);
        return 1;
    }
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new (rk, argv[3], NULL);
    if (rd_kafka_metadata (rk, 0, rkt, &md, 5000) || md->topic_cnt != 1
        || md->topics[0].err) {
        fprintf (stderr, "kgroup: no metadata for %s\n", argv[3]);
        return 1;
    }
    int parts = md->topics[0].partition_cnt;
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new (parts);
    for (int p = 0; p < parts; p++)
        rd_kafka_topic_partition_list_add (list, argv[3], p);
    rd_kafka_resp_err_t rc = rd_kafka_committed (rk, list, 5000);
    if (rc) {
        fprintf (stderr, "kgroup: committed: %s\n", rd_kafka_err2str (rc));
        return 1;
    }
    long long total_committed = 0, total_end = 0;
    for (int p = 0; p < parts; p++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_query_watermark_offsets (rk, argv[3], p, &lo, &hi, 5000);
        int64_t committed = list->elems[p].offset < 0 ? 0 : list->elems[p].offset;
        printf ("%d %lld %lld\n", p, (long long) committed, (long long) hi);
        total_committed += committed;
        total_end += hi;
    }
    printf ("total %lld %lld\n", total_committed, total_end);
    rd_kafka_topic_partition_list_destroy (list);
    rd_kafka_metadata_destroy (md);
    rd_kafka_topic_destroy (rkt);
    rd_kafka_destroy (rk);
    return 0;
}

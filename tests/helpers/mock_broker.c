/*  mock_broker - a Kafka broker for tests that can be taken down and brought back.
 *
 *      mock_broker TOPIC PARTITIONS
 *
 *  Runs librdkafka's mock cluster (one broker) with TOPIC created, prints its bootstrap
 *  address ("127.0.0.1:PORT") on one line of stdout, and runs until SIGTERM or SIGINT.
 *  SIGUSR1 takes the broker down (connections are cut and new ones refused), SIGUSR2
 *  brings it back; each change is confirmed on stderr ("down", "up").
 *
 *  Down and up, not kill and restart: the mock keeps its topics only in memory, so a
 *  restarted one would have lost what was already produced (and with librdkafka 2.0.2 it
 *  cannot listen on a port chosen in advance, so clients could not find it again).  A
 *  broker that refuses connections while keeping its log is what a real outage looks like
 *  to a producer, and it lets a test read back everything at the end.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t s_stop, s_down, s_up;

static void
s_on_signal (int sig)
{
    if (sig == SIGUSR1)
        s_down = 1;
    else
    if (sig == SIGUSR2)
        s_up = 1;
    else
        s_stop = 1;
}

int
main (int argc, char **argv)
{
    if (argc != 3 || atoi (argv [2]) < 1) {
        fprintf (stderr, "usage: mock_broker TOPIC PARTITIONS\n");
        return 64;
    }
    char err [512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new ();
    rd_kafka_conf_set (conf, "log_level", "3", err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new (RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        fprintf (stderr, "mock_broker: %s\n", err);
        return 1;
    }
    rd_kafka_mock_cluster_t *mcluster = rd_kafka_mock_cluster_new (rk, 1);
    if (!mcluster) {
        fprintf (stderr, "mock_broker: cannot start the mock cluster\n");
        rd_kafka_destroy (rk);
        return 1;
    }
    rd_kafka_resp_err_t rc = rd_kafka_mock_topic_create (mcluster, argv [1], atoi (argv [2]), 1);
    if (rc) {
        fprintf (stderr, "mock_broker: topic %s: %s\n", argv [1], rd_kafka_err2str (rc));
        rd_kafka_mock_cluster_destroy (mcluster);
        rd_kafka_destroy (rk);
        return 1;
    }
    struct sigaction sa = { .sa_handler = s_on_signal };
    sigemptyset (&sa.sa_mask);
    sigaction (SIGTERM, &sa, NULL);
    sigaction (SIGINT, &sa, NULL);
    sigaction (SIGUSR1, &sa, NULL);
    sigaction (SIGUSR2, &sa, NULL);
    printf ("%s\n", rd_kafka_mock_cluster_bootstraps (mcluster));
    fflush (stdout);
    while (!s_stop) {
        if (s_down) {
            s_down = 0;
            rc = rd_kafka_mock_broker_set_down (mcluster, -1);
            fprintf (stderr, "%s\n", rc ? rd_kafka_err2str (rc) : "down");
        }
        if (s_up) {
            s_up = 0;
            rc = rd_kafka_mock_broker_set_up (mcluster, -1);
            fprintf (stderr, "%s\n", rc ? rd_kafka_err2str (rc) : "up");
        }
        usleep (20 * 1000);
    }
    rd_kafka_mock_cluster_destroy (mcluster);
    rd_kafka_destroy (rk);
    return 0;
}

/*  ledger_bench - group commit: records per second and acknowledgement latency of the
 *  decision ledger with 16 concurrent writers, one fsync per batch against one per record.
 *
 *      build/bench/ledger_bench [--writers K] [--records N] [--dir DIR]
 *
 *  The ledger (daemon/ledger.c, the real one: serialisation, MAC, hash chain, Merkle
 *  tree, head file, fsync) runs in one thread behind a ROUTER socket, as in meshd's main
 *  loop; K writer threads each send N decision records (about 1 KiB, like the demo's)
 *  over inproc DEALER sockets and wait for each acknowledgement before sending the next,
 *  as an agent does.  Two modes, in the same run, on the same file system:
 *
 *      per-record   every append fsyncs by itself, acknowledged right after it
 *      group        what is waiting (up to 256) is appended between mesh_ledger_begin
 *                   and mesh_ledger_commit (one fsync), then all are acknowledged: the
 *                   loop meshd runs (daemon/main.c, s_commit)
 *
 *  It prints records/s and the p50/p99 of the acknowledgement latency seen by the
 *  writers, and the ratios group / per-record.  The log is written under DIR (default: a
 *  new directory under $TMPDIR or /var/tmp, removed at the end): fsync costs what that
 *  file system's device costs, so run it where the state directory would be.
 */
#include "ledger.h"
#include "log.h"

#include <czmq.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int s_writers = 16;
static int s_records = 300;

static int64_t
s_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct {
    int index;
    const char *endpoint;
    int64_t *latency_ns;                //  s_records entries
} s_writer_t;

static void *
s_writer (void *arg)
{
    s_writer_t *w = (s_writer_t *) arg;
    zsock_t *sock = zsock_new_dealer (w->endpoint);
    assert (sock);
    char padding[700];
    memset (padding, 'x', sizeof padding - 1);
    padding[sizeof padding - 1] = 0;
    //  The record's text is made once; only its id (64 hex digits) changes.
    char id[65];
    snprintf (id, sizeof id, "%064d", 0);
    json_t *record = json_pack (
        "{ss ss ss ss s{ss si si} s[{ss si sf ss}] sf}", "type", "decision", "id", id,
        "agent", "bench", "verdict", "rejected", "trigger", "topic", "metrics",
        "partition", w->index % 4, "offset", 0, "attempts", "output", padding, "tokens",
        512, "latency_ms", 35.88, "verdict", "rejected", "confidence", 0.42);
    char *text = json_dumps (record, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref (record);
    char *at = strstr (text, id);
    assert (at);
    for (int i = 0; i < s_records; i++) {
        snprintf (id, sizeof id, "%016x%016x%032d", (unsigned) w->index, (unsigned) i, 0);
        memcpy (at, id, 64);
        int64_t t0 = s_now_ns ();
        zstr_send (sock, text);
        char *reply = zstr_recv (sock);
        w->latency_ns[i] = s_now_ns () - t0;
        assert (reply && atoll (reply) > 0);
        zstr_free (&reply);
    }
    free (text);
    zsock_destroy (&sock);
    return NULL;
}

typedef struct {
    mesh_ledger_t *ledger;
    zsock_t *router;
    bool group;
    int64_t expected;
    int64_t batches;
} s_server_t;

//  One message: append it; the reply (seq) goes into REPLIES (routing id, seq).
static void
s_append_one (s_server_t *s, zlist_t *replies)
{
    zmsg_t *msg = zmsg_recv (s->router);
    zframe_t *who = zmsg_pop (msg);
    char *text = zmsg_popstr (msg);
    json_t *record = json_loads (text, 0, NULL);
    int64_t seq = mesh_ledger_append (s->ledger, record);
    json_decref (record);
    free (text);
    zmsg_destroy (&msg);
    zmsg_t *reply = zmsg_new ();
    zmsg_append (reply, &who);
    zmsg_addstrf (reply, "%lld", (long long) seq);
    zlist_append (replies, reply);
}

static void
s_serve (s_server_t *s)
{
    zpoller_t *poller = zpoller_new (s->router, NULL);
    zlist_t *replies = zlist_new ();
    int64_t done = 0;
    while (done < s->expected) {
        if (!zpoller_wait (poller, 1000))
            continue;
        if (s->group) {
            mesh_ledger_begin (s->ledger);
            for (int n = 0; n < 256; n++) {
                s_append_one (s, replies);
                if (!(zsock_events (s->router) & ZMQ_POLLIN))
                    break;
            }
            int rc = mesh_ledger_commit (s->ledger);
            assert (rc == 0);
        }
        else
            s_append_one (s, replies);
        s->batches++;
        zmsg_t *reply;
        while ((reply = (zmsg_t *) zlist_pop (replies))) {
            zmsg_send (&reply, s->router);
            done++;
        }
    }
    zlist_destroy (&replies);
    zpoller_destroy (&poller);
}

static int
s_cmp (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y ? -1 : x > y;
}

typedef struct {
    double per_s, p50_ms, p99_ms, per_batch;
} s_result_t;

static s_result_t
s_run (const char *dir, bool group, int round)
{
    char log[600], key[600], endpoint[64];
    snprintf (log, sizeof log, "%s/%s-%d.jsonl", dir, group ? "group" : "single", round);
    snprintf (key, sizeof key, "%s/ledger.key", dir);
    snprintf (endpoint, sizeof endpoint, "inproc://ledger-bench-%d-%d", group, round);
    mesh_ledger_t *ledger = mesh_ledger_open (log, key);
    assert (ledger);
    s_server_t server = {.ledger = ledger, .group = group,
                         .expected = (int64_t) s_writers * s_records};
    server.router = zsock_new_router (endpoint);
    assert (server.router);
    pthread_t threads[256];
    s_writer_t writers[256];
    int64_t *latency = calloc ((size_t) s_writers * (size_t) s_records, sizeof *latency);
    int64_t t0 = s_now_ns ();
    for (int i = 0; i < s_writers; i++) {
        writers[i] = (s_writer_t) {.index = i, .endpoint = endpoint,
                                   .latency_ns = latency + (size_t) i * (size_t) s_records};
        pthread_create (&threads[i], NULL, s_writer, &writers[i]);
    }
    s_serve (&server);
    for (int i = 0; i < s_writers; i++)
        pthread_join (threads[i], NULL);
    double seconds = (double) (s_now_ns () - t0) / 1e9;
    size_t n = (size_t) s_writers * (size_t) s_records;
    qsort (latency, n, sizeof *latency, s_cmp);
    s_result_t r = {.per_s = (double) n / seconds,
                    .p50_ms = (double) latency[n / 2] / 1e6,
                    .p99_ms = (double) latency[n * 99 / 100] / 1e6,
                    .per_batch = (double) n / (double) server.batches};
    free (latency);
    zsock_destroy (&server.router);
    mesh_ledger_destroy (&ledger);
    unlink (log);
    char head[620];
    snprintf (head, sizeof head, "%s.head", log);
    unlink (head);
    return r;
}

int
main (int argc, char **argv)
{
    const char *dir_opt = NULL;
    static struct option opts[] = {{"writers", 1, 0, 'w'}, {"records", 1, 0, 'n'},
                                   {"dir", 1, 0, 'd'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long (argc, argv, "w:n:d:", opts, NULL)) != -1) {
        switch (c) {
            case 'w': s_writers = atoi (optarg); break;
            case 'n': s_records = atoi (optarg); break;
            case 'd': dir_opt = optarg; break;
            default:
                fprintf (stderr, "usage: ledger_bench [--writers K] [--records N] [--dir DIR]\n");
                return 64;
        }
    }
    if (s_writers < 1 || s_writers > 256 || s_records < 1) {
        fprintf (stderr, "ledger_bench: 1-256 writers, at least 1 record each\n");
        return 64;
    }
    zsys_init ();
    zsys_set_logstream (NULL);
    mesh_log_set_level (MESH_LOG_WARNING);
    char dir[512];
    if (dir_opt)
        snprintf (dir, sizeof dir, "%s", dir_opt);
    else {
        snprintf (dir, sizeof dir, "%s/ledger-bench.XXXXXX", getenv ("TMPDIR") ?: "/var/tmp");
        if (!mkdtemp (dir)) {
            perror ("ledger_bench: mkdtemp");
            return 1;
        }
    }
    printf ("ledger group commit: %d writers x %d decision records (~1 KiB), log in %s\n",
            s_writers, s_records, dir_opt ? dir : "a new directory under $TMPDIR or /var/tmp");
    printf ("%-12s %5s %12s %10s %10s %12s\n", "mode", "round", "records/s", "p50 ms",
            "p99 ms", "per fsync");
    s_result_t best[2];
    memset (best, 0, sizeof best);
    //  Alternating rounds, so that a change of the device's speed hits both modes.
    for (int round = 0; round < 2; round++)
        for (int group = 0; group < 2; group++) {
            s_result_t r = s_run (dir, group, round);
            printf ("%-12s %5d %12.0f %10.2f %10.2f %12.1f\n", group ? "group" : "per-record",
                    round + 1, r.per_s, r.p50_ms, r.p99_ms, r.per_batch);
            if (r.per_s > best[group].per_s)
                best[group] = r;
        }
    printf ("best rounds: group / per-record: throughput %.1fx, p99 latency %.2fx "
            "(goal: >= 10x at <= 2x)\n", best[1].per_s / best[0].per_s,
            best[1].p99_ms / best[0].p99_ms);
    char key[600];
    snprintf (key, sizeof key, "%s/ledger.key", dir);
    unlink (key);
    if (!dir_opt)
        rmdir (dir);
    return 0;
}

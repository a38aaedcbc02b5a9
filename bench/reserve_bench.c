/*  reserve_bench - what a token reservation costs, against the real meshd.
 *
 *      build/bench/reserve_bench [--ops N] [--clients K]
 *
 *  Runs meshd (beside this program's directory: ../meshd) with a config whose one agent
 *  is this program itself (daemon.agent_binary), so every message goes through meshd's
 *  real main loop, its real token ledger and journal (fdatasync'd once per batch) over
 *  the real agents.ipc socket, authenticated like any agent.  The agent side measures:
 *
 *      no-op      a LOOKUP of an id the ledger does not hold: one round trip on the same
 *                 socket that does a hash lookup and nothing else (the baseline)
 *      reserve    a RESERVE round trip (the grant and its journal line), then its SETTLE
 *                 (one way)
 *
 *  first with one client (latency: p50, p99 of the round trip), then with K clients at
 *  once (throughput: reservations per second, each a reserve and its settle).  It writes
 *  the figures as JSON beside the config and idles until meshd stops it; the driver
 *  prints the table and the ratios to the no-op measured in the same run, once for each
 *  daemon.token_sync: background (the default: a grant is answered once its journal line
 *  is written, a syncer thread syncs it right after) and each_grant (answered once the
 *  journal is synced past it; one fdatasync per batch of grants).
 */
#include "config.h"
#include "log.h"
#include "proto.h"
#include "record.h"

#include <czmq.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *s_endpoint;
static int s_ops = 20000;
static int s_clients = 8;
static atomic_bool s_done;

static int64_t
s_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int
s_cmp (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y ? -1 : x > y;
}

typedef struct {
    int index, ops;
    bool reserve;                   //  else the no-op
    int64_t *lat;                   //  ns per op (the reserve's round trip alone)
    int failures;
} s_job_t;

static void *
s_client (void *arg)
{
    s_job_t *job = arg;
    char identity[64];
    snprintf (identity, sizeof identity, "bench/c%d", job->index);
    mesh_record_t *record = mesh_record_new (s_endpoint, identity, 5000);
    if (!record) {
        job->failures = job->ops;
        return NULL;
    }
    mesh_tokens_port_t port = mesh_record_tokens (record);
    char incident[65];
    snprintf (incident, sizeof incident, "%064x", job->index + 1);
    for (int i = 0; i < job->ops; i++) {
        int64_t t0 = s_now_ns ();
        if (job->reserve) {
            mesh_tokens_ask_t ask = {.agent = "bench", .incident = incident, .step = 1,
                                     .need = 300, .backend = "none"};
            mesh_tokens_grant_t grant;
            int rc = port.reserve (port.arg, &ask, &grant);
            job->lat[i] = s_now_ns () - t0;
            mesh_tokens_charge_t charge = {.charged = 0, .rule = "refused", .result = "bench"};
            if (rc != 0 || !grant.granted
                || port.settle (port.arg, grant.grant, &charge, NULL) != 0)
                job->failures++;
        }
        else {
            char id[65];
            snprintf (id, sizeof id, "%032x%032x", job->index + 1, i + 1);
            mesh_record_state_t state;
            if (mesh_record_lookup (record, id, &state, NULL) != 0)
                job->failures++;
            job->lat[i] = s_now_ns () - t0;
        }
    }
    mesh_record_destroy (&record);
    return NULL;
}

//  Run K clients of OPS operations each; fills p50/p99 (ms) and ops per second.
static json_t *
s_phase (const char *name, bool reserve, int clients, int ops)
{
    s_job_t *jobs = calloc ((size_t) clients, sizeof *jobs);
    pthread_t *threads = calloc ((size_t) clients, sizeof *threads);
    int64_t t0 = s_now_ns ();
    for (int c = 0; c < clients; c++) {
        jobs[c] = (s_job_t) {.index = c, .ops = ops, .reserve = reserve,
                             .lat = calloc ((size_t) ops, sizeof (int64_t))};
        pthread_create (&threads[c], NULL, s_client, &jobs[c]);
    }
    for (int c = 0; c < clients; c++)
        pthread_join (threads[c], NULL);
    double seconds = (double) (s_now_ns () - t0) / 1e9;
    size_t total = (size_t) clients * (size_t) ops;
    int64_t *all = calloc (total, sizeof *all);
    int failures = 0;
    for (int c = 0; c < clients; c++) {
        memcpy (all + (size_t) c * (size_t) ops, jobs[c].lat, (size_t) ops * sizeof (int64_t));
        failures += jobs[c].failures;
        free (jobs[c].lat);
    }
    qsort (all, total, sizeof *all, s_cmp);
    json_t *out = json_pack ("{ss sb si si sf sf sf si}", "name", name, "reserve", reserve,
                             "clients", clients, "ops", (int) total, "p50_ms",
                             all[total / 2] / 1e6, "p99_ms", all[total * 99 / 100] / 1e6,
                             "per_s", (double) total / seconds, "failures", failures);
    free (all);
    free (jobs);
    free (threads);
    return out;
}

static void *
s_heartbeat (void *arg)
{
    zsock_t *ctl = arg;
    const char *instance = getenv ("MESH_BENCH_INSTANCE");
    while (!s_done) {
        json_t *body = json_pack ("{ss s{}}", "instance", instance ? instance : "bench",
                                  "counters");
        mesh_proto_send (ctl, NULL, MESH_MSG_HEARTBEAT, body);
        json_decref (body);
        zclock_sleep (200);
    }
    return NULL;
}

//  The agent side: started by meshd as the agent "bench".
static int
s_agent (const char *config, const char *instance, const char *auth_fd)
{
    uint8_t token[MESH_PROTO_TOKEN_SIZE];
    int fd = atoi (auth_fd);
    size_t got = 0;
    while (got < sizeof token) {
        ssize_t n = read (fd, token + got, sizeof token - got);
        if (n <= 0)
            return 64;
        got += (size_t) n;
    }
    close (fd);
    mesh_record_auth_set (instance, token, sizeof token);
    sodium_memzero (token, sizeof token);
    zsys_init ();
    zsys_set_logstream (NULL);
    setenv ("MESH_BENCH_INSTANCE", instance, 1);
    zsock_t *ctl = zsock_new (ZMQ_DEALER);
    zsock_set_identity (ctl, instance);
    mesh_proto_limit (ctl);
    if (zsock_connect (ctl, "%s", s_endpoint) != 0 || mesh_record_auth_send (ctl) != 0)
        return 1;
    json_t *hello = json_pack ("{ss ss si}", "agent", "bench", "instance", instance, "pid",
                               (int) getpid ());
    mesh_proto_send (ctl, NULL, MESH_MSG_HELLO, hello);
    json_decref (hello);
    pthread_t beat;
    pthread_create (&beat, NULL, s_heartbeat, ctl);
    //  Warm up, then measure.
    json_decref (s_phase ("warm-up", true, 1, 500));
    json_t *results = json_array ();
    json_array_append_new (results, s_phase ("no-op", false, 1, s_ops / 4));
    json_array_append_new (results, s_phase ("reserve", true, 1, s_ops / 4));
    json_array_append_new (results, s_phase ("no-op", false, s_clients, s_ops / s_clients));
    json_array_append_new (results, s_phase ("reserve", true, s_clients, s_ops / s_clients));
    char *copy = strdup (config);
    char *out = zsys_sprintf ("%s/bench-results.json", dirname (copy));
    char *tmp = zsys_sprintf ("%s.tmp", out);
    json_dump_file (results, tmp, JSON_INDENT (2));
    rename (tmp, out);
    json_decref (results);
    //  Idle until meshd asks us to stop.
    zpoller_t *poller = zpoller_new (ctl, NULL);
    while (true) {
        if (!zpoller_wait (poller, 1000)) {
            if (zpoller_terminated (poller))
                break;
            continue;
        }
        mesh_msg_t *msg = mesh_proto_recv (ctl, false, NULL, NULL);
        bool stop = msg && msg->type == MESH_MSG_SHUTDOWN;
        mesh_msg_destroy (&msg);
        if (stop)
            break;
    }
    s_done = true;
    pthread_join (beat, NULL);
    zpoller_destroy (&poller);
    zsock_destroy (&ctl);
    zstr_free (&out);
    zstr_free (&tmp);
    free (copy);
    return 0;
}

//  The driver: a config, meshd, the results.
static int
s_drive (const char *self_path, const char *sync)
{
    char dir[] = "/tmp/reserve_bench.XXXXXX";
    if (!mkdtemp (dir))
        return 1;
    char *copy = strdup (self_path);
    char *meshd = zsys_sprintf ("%s/../meshd", dirname (copy));
    char *config = zsys_sprintf ("%s/meshd.yaml", dir);
    FILE *file = fopen (config, "w");
    fprintf (file,
             "daemon:\n"
             "  runtime_dir: %s/run\n"
             "  state_dir: %s/state\n"
             "  agent_binary: %s\n"
             "  heartbeat_ms: 200\n"
             "  token_sync: %s\n"
             "kafka: { brokers: embedded }\n"
             "backends:\n"
             "  none: { kind: scripted, file: %s/responses.jsonl }\n"
             "actions:\n"
             "  note: { kind: log }\n"
             "agents:\n"
             "  - name: bench\n"
             "    topics: [bench]\n"
             "    fields: { key: [k] }\n"
             "    reason: { backend: none, incident_token_cap: 10000000, "
             "budget_tokens: 1000000000 }\n"
             "    actions: [note]\n"
             "    fallback: note\n"
             "budget: { tokens: 1000000000000, window_s: 3600 }\n",
             dir, dir, self_path, sync, dir);
    fclose (file);
    char *responses = zsys_sprintf ("%s/responses.jsonl", dir);
    file = fopen (responses, "w");
    fprintf (file, "{\"content\": \"{}\"}\n");
    fclose (file);
    pid_t pid = fork ();
    if (pid == 0) {
        char *log = zsys_sprintf ("%s/meshd.log", dir);
        if (!freopen (log, "w", stderr))
            _exit (1);
        execl (meshd, meshd, "--config", config, (char *) NULL);
        _exit (127);
    }
    char *results_path = zsys_sprintf ("%s/bench-results.json", dir);
    json_t *results = NULL;
    for (int i = 0; i < 1200 && !results; i++) {
        zclock_sleep (100);
        results = json_load_file (results_path, 0, NULL);
        int status;
        if (waitpid (pid, &status, WNOHANG) == pid) {
            fprintf (stderr, "reserve_bench: meshd exited; see %s/meshd.log\n", dir);
            return 1;
        }
    }
    kill (pid, SIGTERM);
    waitpid (pid, NULL, 0);
    if (!results) {
        fprintf (stderr, "reserve_bench: no results in 120 s; see %s/meshd.log\n", dir);
        return 1;
    }
    printf ("token reservations against meshd (agents.ipc), daemon.token_sync: %s\n", sync);
    printf ("%-9s %8s %8s %10s %10s %12s %9s\n", "round", "clients", "ops", "p50 ms", "p99 ms",
            "per second", "failures");
    size_t i;
    json_t *r;
    double base_p99 = 0, base_rate = 0;
    int failures = 0;
    json_array_foreach (results, i, r) {
        printf ("%-9s %8lld %8lld %10.3f %10.3f %12.0f %9lld\n",
                json_string_value (json_object_get (r, "name")),
                (long long) json_integer_value (json_object_get (r, "clients")),
                (long long) json_integer_value (json_object_get (r, "ops")),
                json_real_value (json_object_get (r, "p50_ms")),
                json_real_value (json_object_get (r, "p99_ms")),
                json_real_value (json_object_get (r, "per_s")),
                (long long) json_integer_value (json_object_get (r, "failures")));
        failures += (int) json_integer_value (json_object_get (r, "failures"));
        bool reserve = json_is_true (json_object_get (r, "reserve"));
        if (!reserve) {
            base_p99 = json_real_value (json_object_get (r, "p99_ms"));
            base_rate = json_real_value (json_object_get (r, "per_s"));
        }
        else
            printf ("          vs the no-op with as many clients: p99 x%.2f, rate x%.2f\n",
                    json_real_value (json_object_get (r, "p99_ms")) / base_p99,
                    json_real_value (json_object_get (r, "per_s")) / base_rate);
    }
    printf ("(a reservation is a reserve round trip and its settle; the no-op one round trip)\n");
    json_decref (results);
    char *command = zsys_sprintf ("rm -rf '%s'", dir);
    if (system (command) != 0)
        fprintf (stderr, "reserve_bench: could not remove %s\n", dir);
    zstr_free (&command);
    zstr_free (&results_path);
    zstr_free (&responses);
    zstr_free (&config);
    zstr_free (&meshd);
    free (copy);
    return failures ? 1 : 0;
}

int
main (int argc, char **argv)
{
    const char *config = NULL, *instance = NULL, *auth_fd = NULL;
    static struct option opts[] = {{"config", 1, 0, 'c'},   {"agent", 1, 0, 'a'},
                                   {"instance", 1, 0, 'i'}, {"endpoint", 1, 0, 'e'},
                                   {"brokers", 1, 0, 'b'},  {"auth-fd", 1, 0, 'A'},
                                   {"inflight-fd", 1, 0, 'F'}, {"snapshot", 1, 0, 'S'},
                                   {"sha256", 1, 0, 'H'},   {"rules-sha256", 1, 0, 'R'},
                                   {"ops", 1, 0, 'o'},      {"clients", 1, 0, 'k'},
                                   {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long (argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case 'c': config = optarg; break;
            case 'i': instance = optarg; break;
            case 'e': s_endpoint = optarg; break;
            case 'A': auth_fd = optarg; break;
            case 'o': s_ops = atoi (optarg) > 100 ? atoi (optarg) : 100; break;
            case 'k': s_clients = atoi (optarg) > 0 ? atoi (optarg) : 1; break;
            case 'a': case 'b': case 'F': case 'S': case 'H': case 'R': break;
            default: return 64;
        }
    }
    if (auth_fd && config && s_endpoint) {
        //  The driver's --ops and --clients reach the agent (started by meshd) this way.
        const char *ops = getenv ("MESH_BENCH_OPS"), *clients = getenv ("MESH_BENCH_CLIENTS");
        if (ops && atoi (ops) >= 100)
            s_ops = atoi (ops);
        if (clients && atoi (clients) >= 1)
            s_clients = atoi (clients);
        return s_agent (config, instance ? instance : "bench", auth_fd);
    }
    char number[32];
    snprintf (number, sizeof number, "%d", s_ops);
    setenv ("MESH_BENCH_OPS", number, 1);
    snprintf (number, sizeof number, "%d", s_clients);
    setenv ("MESH_BENCH_CLIENTS", number, 1);
    char self[PATH_MAX];
    ssize_t n = readlink ("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return 1;
    self[n] = 0;
    //  The default (a grant answered once written, synced right after) and the strict
    //  mode (answered once synced, one fdatasync per batch), in the same run.
    int rc = s_drive (self, "background");
    printf ("\n");
    return s_drive (self, "each_grant") || rc;
}

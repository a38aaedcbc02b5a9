/*  backend_bench - meshd's own overhead per model call, against a bare libcurl request
 *  to the same server in the same run.
 *
 *      build/bench/backend_bench [--calls N] [--fake PATH]
 *
 *  Starts tests/helpers/fake_llm (beside this program: ../tests/fake_llm, or --fake) on
 *  loopback, as each flavour in turn, streaming and not, and times N calls of each of:
 *
 *      bare    one POST of the same request body with libcurl (a fresh connection, as
 *              meshd makes), the answer read into memory and nothing else: the baseline
 *      meshd   mesh_backend_call_ex on an openai backend of that flavour: the request
 *              built, deadlines kept, the answer streamed through the wire reader,
 *              classified, its <think> split, usage read, the health figures updated
 *
 *  interleaved call by call, so drift hits both alike.  The server's time is in both;
 *  the difference is meshd's overhead.  Prints p50 and p99 of each and of the
 *  difference, per flavour and mode.  Goal: p99 overhead under 1 ms.
 */
#include "backend.h"
#include "health.h"
#include "wire.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int s_calls = 2000;

static double
s_now_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec * 1e6 + (double) ts.tv_nsec / 1e3;
}

static int
s_compare (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

static double
s_percentile (double *values, int count, double p)
{
    qsort (values, (size_t) count, sizeof *values, s_compare);
    int rank = (int) (p * count + 0.999999);
    return values[rank < 1 ? 0 : rank - 1];
}

static size_t
s_sink (char *data, size_t size, size_t nmemb, void *arg)
{
    (void) data;
    *(size_t *) arg += size * nmemb;
    return size * nmemb;
}

static pid_t
s_start_fake (const char *fake, const char *flavor, const char *responses, int *port)
{
    char port_file[] = "/tmp/backend_bench.port.XXXXXX";
    int fd = mkstemp (port_file);
    if (fd < 0)
        return -1;
    close (fd);
    unlink (port_file);
    pid_t pid = fork ();
    if (pid == 0) {
        execl (fake, fake, "--port-file", port_file, "--flavor", flavor, "--responses",
               responses, (char *) NULL);
        _exit (127);
    }
    for (int i = 0; i < 500; i++) {
        FILE *file = fopen (port_file, "r");
        if (file) {
            int ok = fscanf (file, "%d", port);
            fclose (file);
            if (ok == 1) {
                unlink (port_file);
                return pid;
            }
        }
        usleep (10000);
    }
    kill (pid, SIGTERM);
    return -1;
}

static void
s_run (const char *fake, const char *responses, mesh_backend_flavor_t flavor, bool stream)
{
    int port = 0;
    const char *name = mesh_wire_flavor_name (flavor);
    pid_t pid = s_start_fake (fake, name, responses, &port);
    if (pid < 0) {
        fprintf (stderr, "backend_bench: cannot start %s\n", fake);
        exit (1);
    }
    char url[64];
    snprintf (url, sizeof url, "http://127.0.0.1:%d", port);
    mesh_backend_config_t cfg = {
        .name = (char *) "bench", .kind = MESH_BACKEND_OPENAI, .url = url,
        .model = (char *) "fake-model", .timeout_ms = 10000, .connect_timeout_ms = 2000,
        .json_schema = true, .flavor = flavor, .stream = stream,
        .first_token_timeout_ms = 10000, .idle_timeout_ms = 10000, .retry_attempts = 1,
        .circuit_failures = 5, .circuit_open_ms = 30000, .probe_interval_s = 3600,
        .seed = true,
    };
    mesh_config_output_limits_default (&cfg.limits);
    mesh_backend_t *backend = mesh_backend_new (&cfg);
    json_t *messages = json_pack ("[{s:s, s:s}, {s:s, s:s}]", "role", "system", "content",
                                  "You are an operations agent. Answer with one JSON object.",
                                  "role", "user", "content",
                                  "Incident: series cpu.host-1, value 97.2, score 0.9991.");
    json_t *schema = json_pack ("{s:s, s:[s]}", "type", "object", "required", "action");
    //  The bare request: the same body meshd sends.
    mesh_wire_request_t request = {.messages = messages, .model = "fake-model", .max_tokens = 128,
                                   .schema = schema,
                                   .schema_form = mesh_wire_schema_default (flavor),
                                   .stream = stream, .has_seed = true, .seed = 7};
    json_t *body = mesh_wire_request (flavor, &request);
    char *payload = json_dumps (body, JSON_COMPACT);
    json_decref (body);
    char endpoint[128];
    snprintf (endpoint, sizeof endpoint, "%s%s", url, mesh_wire_path (flavor));
    CURL *curl = curl_easy_init ();
    struct curl_slist *headers = curl_slist_append (NULL, "Content-Type: application/json");
    double *bare = calloc ((size_t) s_calls, sizeof *bare);
    double *ours = calloc ((size_t) s_calls, sizeof *ours);
    double *diff = calloc ((size_t) s_calls, sizeof *diff);
    int failures = 0;
    for (int i = -50; i < s_calls; i++) {          //  50 warm-up calls (and the probe)
        size_t received = 0;
        curl_easy_reset (curl);
        curl_easy_setopt (curl, CURLOPT_URL, endpoint);
        curl_easy_setopt (curl, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt (curl, CURLOPT_POSTFIELDS, payload);
        curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_sink);
        curl_easy_setopt (curl, CURLOPT_WRITEDATA, &received);
        curl_easy_setopt (curl, CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt (curl, CURLOPT_FORBID_REUSE, 1L);
        double t0 = s_now_us ();
        CURLcode code = curl_easy_perform (curl);
        double t1 = s_now_us ();
        mesh_backend_reply_t reply;
        mesh_fail_t why;
        char *detail = NULL;
        char seed_key[32];
        snprintf (seed_key, sizeof seed_key, "bench/%d", i);
        int rc = mesh_backend_call_ex (backend, messages, 128, schema, seed_key, NULL, &reply,
                                       &why, &detail);
        double t2 = s_now_us ();
        if (code != CURLE_OK || rc != 0) {
            failures++;
            if (failures == 1)
                fprintf (stderr, "backend_bench: %s%s: curl %d, meshd %s: %s\n", name,
                         stream ? " stream" : "", code, rc ? mesh_fail_name (why) : "ok",
                         detail ? detail : "");
        }
        free (detail);
        mesh_backend_reply_clear (&reply);
        if (i >= 0) {
            bare[i] = t1 - t0;
            ours[i] = t2 - t1;
            diff[i] = ours[i] - bare[i];
        }
    }
    double bare50 = s_percentile (bare, s_calls, 0.5), bare99 = s_percentile (bare, s_calls, 0.99);
    double ours50 = s_percentile (ours, s_calls, 0.5), ours99 = s_percentile (ours, s_calls, 0.99);
    double diff50 = s_percentile (diff, s_calls, 0.5), diff99 = s_percentile (diff, s_calls, 0.99);
    printf ("%-14s %-6s %6d  %8.0f %8.0f   %8.0f %8.0f   %8.0f %8.0f   %8.0f %s\n", name,
            stream ? "stream" : "whole", s_calls, bare50, bare99, ours50, ours99, diff50, diff99,
            ours99 - bare99, failures ? "FAILURES" : "");
    fflush (stdout);
    free (bare);
    free (ours);
    free (diff);
    free (payload);
    curl_slist_free_all (headers);
    curl_easy_cleanup (curl);
    json_decref (messages);
    json_decref (schema);
    mesh_backend_destroy (&backend);
    kill (pid, SIGTERM);
    waitpid (pid, NULL, 0);
}

int
main (int argc, char **argv)
{
    char fake[4096] = "";
    for (int i = 1; i < argc; i++) {
        if (!strcmp (argv[i], "--calls") && i + 1 < argc)
            s_calls = atoi (argv[++i]);
        else if (!strcmp (argv[i], "--fake") && i + 1 < argc)
            snprintf (fake, sizeof fake, "%s", argv[++i]);
        else {
            fprintf (stderr, "usage: backend_bench [--calls N] [--fake PATH]\n");
            return 2;
        }
    }
    if (s_calls < 10)
        s_calls = 10;
    if (!fake[0]) {
        char self[2048];
        ssize_t n = readlink ("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0)
            return 1;
        self[n] = 0;
        char *slash = strrchr (self, '/');
        *slash = 0;
        snprintf (fake, sizeof fake, "%s/../tests/fake_llm", self);
    }
    const char *responses = "config/demo-responses.jsonl";
    if (access (responses, R_OK)) {
        fprintf (stderr, "backend_bench: run from the repository root (%s)\n", responses);
        return 1;
    }
    curl_global_init (CURL_GLOBAL_DEFAULT);
    printf ("# meshd's overhead per model call against bare libcurl to the same fake server\n"
            "# (microseconds; fresh connection per request for both; %d calls each,\n"
            "#  interleaved).  overhead p99 = meshd p99 - bare p99.\n", s_calls);
    printf ("%-14s %-6s %6s  %8s %8s   %8s %8s   %8s %8s   %8s\n", "flavor", "mode", "calls",
            "bare p50", "p99", "meshd p50", "p99", "diff p50", "p99", "overhead");
    mesh_backend_flavor_t flavors[] = { MESH_FLAVOR_LLAMACPP, MESH_FLAVOR_VLLM,
                                        MESH_FLAVOR_OLLAMA, MESH_FLAVOR_OLLAMA_NATIVE,
                                        MESH_FLAVOR_TGI };
    for (size_t f = 0; f < sizeof flavors / sizeof *flavors; f++)
        for (int stream = 0; stream < 2; stream++)
            s_run (fake, responses, flavors[f], stream);
    return 0;
}

/*  detect_bench - decode + detect in process, one core, per detector family.
 *
 *  What the agent's consumer thread does per message, minus Kafka: decode a
 *  ~100-byte JSON event through the agent's field map (mesh_event_decode), then
 *  mesh_detect_update on its series.  Prints events per second for a baseline
 *  (decode only) and every family, with the ratio to the baseline; bytes per
 *  series for every family (heap growth over 100,000 series, so the table's node,
 *  bucket and key are included); and the RSS of this process holding 1,000,000
 *  series with the default detector.  Figures are recorded in
 *  docs/perf/detection.md.
 *
 *  With "rss FAMILY" it measures only that: a fresh process fills 1,000,000
 *  distinct series of FAMILY and reports VmRSS and VmHWM from /proc/self/status,
 *  in MiB and in bytes per series (table overhead, keys and allocator included).
 *  One family per process, so that no earlier run's heap is counted.
 *
 *      build/bench/detect_bench [events]       default 1,000,000 per run
 *      build/bench/detect_bench rss FAMILY     1,000,000 series of FAMILY
 */
#include "config.h"
#include "detect.h"
#include "event_kafka.h"
#include "log.h"

#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_PAYLOADS 65536                //  distinct messages, cycled
#define S_SERIES   1000                 //  series among them (host x metric)

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

//  FIELD ("VmRSS:", "VmHWM:") of /proc/self/status, in KiB; -1 if absent.
static long
s_status_kb (const char *field)
{
    FILE *f = fopen ("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    size_t len = strlen (field);
    while (f && fgets (line, sizeof line, f))
        if (!strncmp (line, field, len))
            kb = atol (line + len);
    if (f)
        fclose (f);
    return kb;
}

static long
s_rss_kb (void)
{
    return s_status_kb ("VmRSS:");
}

static mesh_detector_config_t
s_config (const char *kind, size_t max_series)
{
    //  The shipped defaults (config/meshd.yaml).
    mesh_detector_config_t cfg = {
        .kind = (char *) kind, .alpha = 0.05, .warmup = 30, .threshold = 0.9995,
        .max_series = max_series, .holdoff = 0,
    };
    cfg.mad.window = 64;
    cfg.cusum.k = 0.5;
    cfg.cusum.h = 8;
    cfg.seasonal.period_s = 86400;
    cfg.seasonal.bins = 48;
    cfg.seasonal.alpha = 0.1;
    cfg.knn.window = 8;
    cfg.knn.memory = 128;
    cfg.knn.k = 3;
    cfg.context.levels = 8;
    cfg.context.length = 3;
    cfg.context.slots = 176;
    cfg.bocpd.hazard = 0.001;
    cfg.bocpd.hypotheses = 12;
    return cfg;
}

//  1,000,000 distinct series of KIND, one point each, in this fresh process.
static int
s_rss_mode (const char *kind)
{
    long rss0 = s_rss_kb (), hwm0 = s_status_kb ("VmHWM:");
    mesh_detector_config_t cfg = s_config (kind, 1000000);
    mesh_detect_t *detect = mesh_detect_new (&cfg);
    if (!detect)
        return 1;
    double start = s_now ();
    char key[64];
    for (int i = 0; i < 1000000; i++) {
        snprintf (key, sizeof key, "web-%07d/cpu", i);
        mesh_detect_update (detect, key, 1.0 + i % 7, 0, NULL);
    }
    double secs = s_now () - start;
    long rss1 = s_rss_kb (), hwm1 = s_status_kb ("VmHWM:");
    printf ("%-10s 1,000,000 series: VmRSS %.1f MiB (%.1f before, +%.0f bytes/series), "
            "VmHWM %.1f MiB (%.1f before), state %zu bytes, %zu held, %.2f s\n",
            kind, rss1 / 1024.0, rss0 / 1024.0, (double) (rss1 - rss0) * 1024 / 1e6,
            hwm1 / 1024.0, hwm0 / 1024.0, mesh_detect_state_size (detect),
            mesh_detect_series (detect), secs);
    mesh_detect_destroy (&detect);
    return 0;
}

//  Decode EVENTS messages, cycling through PAYLOADS; feed DETECT when not NULL.
//  Returns events per second.
static double
s_run (const mesh_agent_config_t *agent, char **payloads, size_t *lens, size_t events,
       mesh_detect_t *detect, double *checksum)
{
    double start = s_now (), sum = 0;
    for (size_t i = 0; i < events; i++) {
        size_t k = i % S_PAYLOADS;
        mesh_event_t event;
        json_t *json = NULL;
        const char *why;
        if (mesh_event_decode (agent, payloads[k], lens[k], &event, &json, &why) == 0) {
            mesh_detect_info_t info;    //  as the agent asks for it
            if (detect)
                sum += mesh_detect_update (detect, event.series, event.value, event.ts_ms,
                                           &info);
            else
                sum += event.value;
        }
        json_decref (json);
    }
    double secs = s_now () - start;
    *checksum += sum;
    return (double) events / secs;
}

int
main (int argc, char **argv)
{
    if (argc > 2 && !strcmp (argv[1], "rss"))
        return s_rss_mode (argv[2]);
    size_t events = 1000000;
    if (argc > 1) {
        char *end = NULL;
        unsigned long long n = strtoull (argv[1], &end, 10);
        if (argc > 2 || !*argv[1] || *end || n < 1000 || n > 1000000000ull) {
            fprintf (stderr, "usage: detect_bench [EVENTS]   (1000..1000000000, default 1000000)\n"
                             "       detect_bench rss FAMILY\n");
            return 2;
        }
        events = (size_t) n;
    }
    char *key_fields[] = { "host", "metric" };
    mesh_agent_config_t agent = {
        .name = "bench", .key_fields = key_fields, .key_field_count = 2,
        .value_field = "value", .time_field = "ts",
    };
    //  ~100-byte events: 250 hosts x 4 metrics, a cycle plus noise, a tag to pad.
    static const char *const metrics[] = { "cpu", "latency_ms", "rps", "mem_pct" };
    char **payloads = calloc (S_PAYLOADS, sizeof *payloads);
    size_t *lens = calloc (S_PAYLOADS, sizeof *lens);
    size_t total_len = 0;
    uint64_t rng = 42;
    for (size_t i = 0; i < S_PAYLOADS; i++) {
        size_t series = i % S_SERIES, step = i / S_SERIES;
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        double noise = ((double) (rng >> 11) * 0x1.0p-53 - 0.5) * 4;
        double value = 50 + 10 * sin (2 * M_PI * (double) step / 288) + noise;
        char buf[256];
        int n = snprintf (buf, sizeof buf,
                          "{\"host\":\"web-%04zu\",\"metric\":\"%s\",\"value\":%.3f,"
                          "\"ts\":%lld,\"dc\":\"eu-west-1\",\"env\":\"prod\"}",
                          series / 4, metrics[series % 4], value,
                          1767225600LL + (long long) step * 60);
        payloads[i] = strdup (buf);
        lens[i] = (size_t) n;
        total_len += (size_t) n;
    }
    double checksum = 0;
    printf ("decode + detect, one core: %zu events per run, %zu series, mean event %zu bytes\n",
            events, (size_t) S_SERIES, total_len / S_PAYLOADS);
    //  Warm the caches and the allocator once.
    s_run (&agent, payloads, lens, events / 10, NULL, &checksum);
    double base = s_run (&agent, payloads, lens, events, NULL, &checksum);
    printf ("%-26s %12s %8s\n", "", "events/s", "ratio");
    printf ("%-26s %12.0f %8.2f\n", "decode only (baseline)", base, 1.0);

    static const char *const kinds[] = { "ewma", "mad", "cusum", "seasonal", "knn", "ensemble",
                                         "context", "bocpd" };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        mesh_detector_config_t cfg = s_config (kinds[k], 10000);
        mesh_detect_t *detect = mesh_detect_new (&cfg);
        if (!detect)
            return 1;
        //  The heavy families get fewer events: the rate is what matters.
        size_t n = !strcmp (kinds[k], "knn") || !strcmp (kinds[k], "ensemble") ? events / 4
                 : !strcmp (kinds[k], "mad") ? events / 2 : events;
        double rate = s_run (&agent, payloads, lens, n, detect, &checksum);
        char label[64];
        snprintf (label, sizeof label, "decode + %s%s", kinds[k], k == 0 ? " (default)" : "");
        printf ("%-26s %12.0f %8.2f\n", label, rate, rate / base);
        mesh_detect_destroy (&detect);
    }

    //  Memory per series: heap growth over 100,000 series, one point each.
    printf ("\nmemory per series (heap growth over 100,000 series; node, bucket, key "
            "\"web-12345/cpu\" and state)\n");
    printf ("%-12s %14s %14s\n", "detector", "bytes/series", "state bytes");
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        mesh_detector_config_t cfg = s_config (kinds[k], 100000);
        malloc_trim (0);
        struct mallinfo2 before = mallinfo2 ();
        mesh_detect_t *detect = mesh_detect_new (&cfg);
        char key[64];
        for (int i = 0; i < 100000; i++) {
            snprintf (key, sizeof key, "web-%05d/cpu", i);
            mesh_detect_update (detect, key, 1.0, 0, NULL);
        }
        struct mallinfo2 after = mallinfo2 ();
        printf ("%-12s %14.0f %14zu\n", kinds[k],
                (double) (after.uordblks - before.uordblks) / 100000,
                mesh_detect_state_size (detect));
        mesh_detect_destroy (&detect);
    }

    //  RSS holding 1,000,000 series with the default detector.
    malloc_trim (0);
    long rss0 = s_rss_kb ();
    mesh_detector_config_t cfg = s_config ("ewma", 1000000);
    mesh_detect_t *detect = mesh_detect_new (&cfg);
    double start = s_now ();
    char key[64];
    for (int i = 0; i < 1000000; i++) {
        snprintf (key, sizeof key, "web-%07d/cpu", i);
        mesh_detect_update (detect, key, 1.0, 0, NULL);
    }
    double secs = s_now () - start;
    long rss1 = s_rss_kb ();
    printf ("\n1,000,000 series, default detector (ewma): RSS %.1f MiB (%.1f MiB before, "
            "+%.0f bytes/series), %zu series held, %.2f s to create\n",
            rss1 / 1024.0, rss0 / 1024.0, (double) (rss1 - rss0) * 1024 / 1e6,
            mesh_detect_series (detect), secs);
    mesh_detect_destroy (&detect);
    for (size_t i = 0; i < S_PAYLOADS; i++)
        free (payloads[i]);
    free (payloads);
    free (lens);
    return checksum == -1 ? 1 : 0;      //  keeps the work observable
}

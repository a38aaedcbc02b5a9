/*  mesh-gen - the demo's synthetic metric stream, with labelled anomalies.
 *
 *  mesh-gen --brokers B --topic T [--hosts 4] [--metrics 3] [--points 720]
 *           [--step-s 60] [--start EPOCH_S] [--seed 42] [--labels FILE]
 *           [--malformed N] [--stdout] [--rate MSGS_PER_S]
 *           [--storm N [--storm-repeats 1] [--storm-length 40] [--storm-hosts 60]
 *            [--storm-metrics 3] [--storm-flap 10] [--storm-spread 5] [--storm-sigmas 8]]
 *
 *  Produces one JSON message per host x metric x point,
 *      {"host":"web-1","metric":"cpu","value":42.17,"ts":1767225660}
 *  keyed "host/metric", so Kafka spreads series over partitions by key and keeps
 *  each series ordered within its partition.  Series are interleaved in time
 *  order: point 0 of every series, then point 1, ...
 *
 *  Each series is  level + amplitude * sin (2 pi t / 288 + phase) + sigma * N(0,1),
 *  a daily-like cycle under Gaussian noise, with the level, amplitude and sigma of
 *  its metric.  About one series in two carries one injected anomaly, never in the
 *  first 60 points, measured in the series' own noise sigma:
 *    spike        one point, 6-10 sigma;
 *    level_shift  a step of 5-8 sigma that persists;
 *    drift        a ramp over 30 points up to 8 sigma, which then persists.
 *  Everything is deterministic from --seed (our own splitmix64 + Box-Muller, so
 *  the stream is the same on every libc).  Each series draws its noise from its
 *  own generator, started at a hashed state (not a fixed step from the others',
 *  which made every series a delayed copy of one noise sequence), so series are
 *  independent and a series does not change when --hosts or --metrics do.
 *
 *  --labels FILE writes (atomically: temporary file, fsync, rename) the ground
 *  truth that common/labels.c scores incidents against; each anomaly's window
 *  ends at its start for a spike, 10 steps after it for a level shift (the EWMA
 *  baseline has adapted by then, so later alarms are not credited), and at the
 *  end of the ramp for a drift.  The labels are written before anything is
 *  produced, so a failure to write them leaves the topic untouched.
 *
 *  Storm mode (--storm N, N >= 1) replaces the per-series anomalies by incident
 *  storms shaped like real outages: one cause (a shared dependency failing) hits many
 *  hosts and several metrics at once, for tens of minutes of event time, the series
 *  flap while it lasts, and the same outage comes back later.  Without --storm the
 *  stream, the labels and the summary line are exactly those of earlier releases.
 *    --storm N          N distinct outages (causes).  Each picks its hosts and its
 *                       metrics once; every occurrence of it hits the same ones.
 *    --storm-repeats R  each outage happens R more times, later in the stream
 *                       (default 1: twice in all), so there are N x (R + 1) storms.
 *    --storm-length L   points from a storm's start to its end (default 40: 40
 *                       minutes at the default step of 60 s).
 *    --storm-hosts PCT  percent of the hosts an outage hits (default 60; at least one
 *                       host, rounded to the nearest host).
 *    --storm-metrics K  metrics an outage hits on each of its hosts (default 3; at
 *                       most --metrics, clamped).  Direction per metric, as when a
 *                       shared dependency fails: cpu, latency_ms, mem_pct and
 *                       queue_depth go up, rps and net_mbps go down.
 *    --storm-flap P     the flapping period in points (default 10).  While a storm
 *                       lasts each hit host alternates bad phases and recoveries,
 *                       each phase from P/4 to 3P/4 points long (integer division,
 *                       at least one; uniform), all metrics of the host together.
 *                       0: no flapping, bad from the onset to the storm's end.
 *    --storm-spread S   hosts are hit one after another within the storm's first S
 *                       points (default 5; each host's onset uniform in 0..S, and
 *                       below L): a cascade rather than one instant.
 *    --storm-sigmas X   size of the bad state, in each metric's noise sigma (default
 *                       8); each host in each storm draws a factor from 0.8 to 1.2.
 *  Placement: the points after the first 60 (the detectors' warm-up) and before the
 *  last 30 are cut into N x (R + 1) equal slots in time order; occurrence r of
 *  outage k takes slot r x N + k (so every outage happens once before any repeats)
 *  and starts at a uniform point of its slot that leaves at least 30 quiet points
 *  before the slot ends.  Too few --points for that is an error.  Labels: one window
 *  per hit series per storm, kind "storm", from the host's first bad point to its last
 *  (recoveries inside a storm are part of the window), with "outage", "occurrence"
 *  (both from 1) and "sigmas" (signed); the file also gets a "storm" object with the
 *  parameters and, per storm, its outage, occurrence, start_ms, end_ms (the storm's
 *  last point), hosts and metrics.  Noise and the daily cycle are those of the
 *  default stream; the hosts, metrics, times, flaps and sizes all follow from --seed.
 *
 *  --malformed N adds N bad messages spread evenly through the stream (not JSON;
 *  JSON without a value; a value that is a string), so the agent's malformed
 *  counter can be checked.  They are not counted in "events".
 *
 *  --rate R sends at most R messages a second (default: as fast as it can), for a
 *  consumer that should read the stream as it comes rather than as a backlog (the
 *  embedded broker keeps a bounded log per partition and drops what is older).  It
 *  changes when messages are sent, never what is sent.
 *
 *  Delivery is acks=all with the idempotent producer (no reordering or
 *  duplication on retry); the tool flushes at the end and exits non-zero if any
 *  message was not delivered.  --stdout prints the messages, one per line,
 *  instead of producing them (no broker needed).  A one-line summary goes to stderr.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_PERIOD        288             //  points per "day"
#define S_QUIET         60              //  no anomaly in the first points
#define S_RAMP          30              //  points of a drift's ramp
#define S_SHIFT_WINDOW  10              //  steps a level shift stays labelled
#define S_MAX_HOSTS     1000
#define S_STORM_TAIL    30              //  storm mode: quiet points at the stream's end
#define S_STORM_GAP     30              //  storm mode: quiet points after each storm

typedef struct {
    const char *name;
    double level, amplitude, sigma;
} s_metric_t;

//  The cycle's amplitude is 2-3 sigma: an EWMA baseline lags a cycle of amplitude
//  A and period 288 by up to about 0.4 A at alpha 0.05, and that lag counts as
//  noise.  Larger cycles need a seasonal detector (docs/detection.md).
static const s_metric_t s_metrics[] = {
    { "cpu",         45,  8,   3   },
    { "latency_ms",  180, 25,  10  },
    { "rps",         900, 100, 40  },
    { "mem_pct",     60,  3,   1.5 },
    { "queue_depth", 80,  15,  5   },
    { "net_mbps",    500, 60,  25  },
};
#define S_METRIC_COUNT (int) (sizeof s_metrics / sizeof s_metrics[0])

//  Storm mode: the direction each metric moves when a shared dependency fails (requests
//  pile up and wait: latency, queues, memory and CPU up; throughput down).
static const int s_storm_signs[S_METRIC_COUNT] = { 1, 1, -1, 1, 1, -1 };

typedef enum { S_NONE, S_SPIKE, S_LEVEL_SHIFT, S_DRIFT } s_kind_t;
static const char *s_kind_names[] = { "none", "spike", "level_shift", "drift" };

//  splitmix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough for noise.
typedef struct {
    uint64_t state;
    bool have_spare;
    double spare;
} s_rng_t;

static uint64_t
s_rng_next (s_rng_t *rng)
{
    uint64_t z = (rng->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

//  The starting state of stream INDEX of a family BASE.  A splitmix64 state steps by
//  the golden gamma, so states BASE + INDEX * gamma would be one stream shifted by INDEX
//  draws (series i's noise series 0's, i points late, correlated across series); each
//  stream starts instead at a hashed state, a random distance along the cycle.
static uint64_t
s_rng_stream (uint64_t base, uint64_t index)
{
    s_rng_t mix = { .state = base ^ (index * 0xD6E8FEB86659FD93ull) };
    s_rng_next (&mix);
    return s_rng_next (&mix);
}

//  Uniform in [0,1).
static double
s_rng_uniform (s_rng_t *rng)
{
    return (double) (s_rng_next (rng) >> 11) * 0x1.0p-53;
}

//  Standard normal (Box-Muller, both values used).
static double
s_rng_gauss (s_rng_t *rng)
{
    if (rng->have_spare) {
        rng->have_spare = false;
        return rng->spare;
    }
    double u1 = 1.0 - s_rng_uniform (rng);         //  (0,1]: log is finite
    double u2 = s_rng_uniform (rng);
    double r = sqrt (-2.0 * log (u1));
    rng->spare = r * sin (2 * M_PI * u2);
    rng->have_spare = true;
    return r * cos (2 * M_PI * u2);
}

typedef struct {
    char host[32];
    const s_metric_t *metric;
    char key[64];                       //  "host/metric"
    double level, phase;
    s_rng_t rng;
    s_kind_t kind;
    int start;                          //  anomaly's first point
    double magnitude;                   //  signed, in sigmas
} s_series_t;

typedef struct {
    const char *brokers, *topic, *labels;
    int hosts, metrics, points, step_s, malformed;
    int64_t start_s;
    uint64_t seed;
    bool to_stdout;
    int rate;                           //  messages per second at most; 0: no limit
    //  Storm mode (storms = 0: off); see the top of the file.
    int storms, storm_repeats, storm_length, storm_hosts, storm_metrics, storm_flap,
        storm_spread, storm_sigmas;
} s_options_t;

static double
s_value (const s_series_t *s, int t)
{
    const s_metric_t *m = s->metric;
    double v = s->level + m->amplitude * sin (2 * M_PI * t / S_PERIOD + s->phase);
    if (s->kind != S_NONE && t >= s->start) {
        double shift = s->magnitude * m->sigma;
        if (s->kind == S_SPIKE)
            v += t == s->start ? shift : 0;
        else if (s->kind == S_LEVEL_SHIFT)
            v += shift;
        else {
            double ramp = (double) (t - s->start + 1) / S_RAMP;
            v += shift * (ramp < 1 ? ramp : 1);
        }
    }
    return v;
}

//  The last point inside the anomaly's labelled window.
static int
s_anomaly_end (const s_series_t *s)
{
    switch (s->kind) {
    case S_SPIKE: return s->start;
    case S_LEVEL_SHIFT: return s->start + S_SHIFT_WINDOW;
    case S_DRIFT: return s->start + S_RAMP - 1;
    default: return s->start;
    }
}

//  Build the series and place the anomalies; returns the number of anomalies.
static int
s_series_plan (s_series_t *series, int count, const s_options_t *opt)
{
    s_rng_t plan = { .state = opt->seed };
    for (int i = 0; i < count; i++) {
        s_series_t *s = &series[i];
        int h = i / opt->metrics, m = i % opt->metrics;
        snprintf (s->host, sizeof s->host, "web-%d", h + 1);
        s->metric = &s_metrics[m];
        snprintf (s->key, sizeof s->key, "%s/%s", s->host, s->metric->name);
        //  Hosts differ a little in level and in the phase of their cycle.
        s_rng_t host = { .state = opt->seed ^ (0xA5A5A5A5ull * (uint64_t) (h + 1)) };
        s->phase = 0.3 * (s_rng_uniform (&host) - 0.5);
        s->level = s->metric->level * (0.9 + 0.2 * s_rng_uniform (&host));
        s->rng.state = s_rng_stream (opt->seed * 0x100000001B3ull + 1, (uint64_t) i);
    }
    //  Storm mode: storms instead (s_storm_plan).
    if (opt->storms > 0)
        return 0;
    //  Anomalies need room: the quiet start, then a drift's ramp or a shift's window.
    int last_start = opt->points - S_RAMP - S_SHIFT_WINDOW;
    if (last_start < S_QUIET)
        return 0;
    //  A shuffled order of series; the first half get an anomaly each.
    int *order = malloc (sizeof (int) * (size_t) count);
    if (!order)
        return -1;
    for (int i = 0; i < count; i++)
        order[i] = i;
    for (int i = count - 1; i > 0; i--) {
        int j = (int) (s_rng_next (&plan) % (uint64_t) (i + 1));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    int anomalies = (count + 1) / 2;
    for (int k = 0; k < anomalies; k++) {
        s_series_t *s = &series[order[k]];
        s->kind = (s_kind_t) (S_SPIKE + k % 3);
        s->start = S_QUIET + (int) (s_rng_next (&plan) % (uint64_t) (last_start - S_QUIET + 1));
        double sign = s_rng_uniform (&plan) < 0.5 ? -1 : 1;
        double u = s_rng_uniform (&plan);
        if (s->kind == S_SPIKE)
            s->magnitude = sign * (6 + 4 * u);
        else if (s->kind == S_LEVEL_SHIFT)
            s->magnitude = sign * (5 + 3 * u);
        else
            s->magnitude = sign * 8;
    }
    free (order);
    return anomalies;
}

//  --- storm mode ---------------------------------------------------------------------

//  The plan of the storms: which hosts and metrics each outage hits, when each storm
//  starts.  Storm e is occurrence e / outages of outage e % outages; starts ascend.
typedef struct {
    int outages, episodes, length, hosts, metrics;
    int metrics_hit;                    //  metrics each outage hits
    bool *hit_host;                     //  [outage * hosts + host]
    bool *hit_metric;                   //  [outage * metrics + metric]
    int *start;                         //  [storm]: its first point
} s_storm_t;

//  One host in one storm: its flapping between bad phases and recoveries.
typedef struct {
    s_rng_t rng;
    int flap, left;                     //  points left in the current phase
    bool bad;
    double magnitude;                   //  in sigmas, unsigned
} s_flap_t;

static void
s_storm_destroy (s_storm_t *storm)
{
    free (storm->hit_host);
    free (storm->hit_metric);
    free (storm->start);
    memset (storm, 0, sizeof *storm);
}

//  Shuffle ORDER[0..COUNT) with RNG (Fisher-Yates).
static void
s_shuffle (int *order, int count, s_rng_t *rng)
{
    for (int i = 0; i < count; i++)
        order[i] = i;
    for (int i = count - 1; i > 0; i--) {
        int j = (int) (s_rng_next (rng) % (uint64_t) (i + 1));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

//  Plan the storms of OPT into *STORM.  0, or -1 (reported: too few points, or out of
//  memory).
static int
s_storm_plan (s_storm_t *storm, const s_options_t *opt)
{
    memset (storm, 0, sizeof *storm);
    storm->outages = opt->storms;
    storm->episodes = opt->storms * (opt->storm_repeats + 1);
    storm->length = opt->storm_length;
    storm->hosts = opt->hosts;
    storm->metrics = opt->metrics;
    int span = opt->points - S_QUIET - S_STORM_TAIL;
    int slot = span > 0 ? span / storm->episodes : 0;
    if (slot < opt->storm_length + S_STORM_GAP) {
        fprintf (stderr, "mesh-gen: %d storms of %d points need --points of at least %d "
                 "(%d warm-up + %d x (length + %d quiet) + %d tail)\n", storm->episodes,
                 opt->storm_length,
                 S_QUIET + storm->episodes * (opt->storm_length + S_STORM_GAP) + S_STORM_TAIL,
                 S_QUIET, storm->episodes, S_STORM_GAP, S_STORM_TAIL);
        return -1;
    }
    storm->hit_host = calloc ((size_t) storm->outages * (size_t) opt->hosts, sizeof (bool));
    storm->hit_metric = calloc ((size_t) storm->outages * (size_t) opt->metrics, sizeof (bool));
    storm->start = calloc ((size_t) storm->episodes, sizeof (int));
    int *order = malloc (sizeof (int) * (size_t) (opt->hosts > opt->metrics ? opt->hosts
                                                                            : opt->metrics));
    if (!storm->hit_host || !storm->hit_metric || !storm->start || !order) {
        free (order);
        s_storm_destroy (storm);
        mesh_err ("out of memory");
        return -1;
    }
    s_rng_t plan = { .state = opt->seed ^ 0x53544F524D5F504Cull };    //  "STORM_PL"
    int hosts_hit = (opt->hosts * opt->storm_hosts + 50) / 100;
    if (hosts_hit < 1)
        hosts_hit = 1;
    int metrics_hit = opt->storm_metrics < opt->metrics ? opt->storm_metrics : opt->metrics;
    storm->metrics_hit = metrics_hit;
    for (int k = 0; k < storm->outages; k++) {
        s_shuffle (order, opt->hosts, &plan);
        for (int i = 0; i < hosts_hit; i++)
            storm->hit_host[k * opt->hosts + order[i]] = true;
        s_shuffle (order, opt->metrics, &plan);
        for (int i = 0; i < metrics_hit; i++)
            storm->hit_metric[k * opt->metrics + order[i]] = true;
    }
    free (order);
    int room = slot - opt->storm_length - S_STORM_GAP;
    for (int e = 0; e < storm->episodes; e++)
        storm->start[e] = S_QUIET + e * slot + (int) (s_rng_next (&plan) % (uint64_t) (room + 1));
    return 0;
}

//  A phase of FLAP's next state: from flap/4 to 3 flap/4 points, at least one; a bad
//  phase without flapping lasts to the storm's end.
static int
s_flap_phase (s_flap_t *flap, bool bad)
{
    if (flap->flap == 0)
        return bad ? INT_MAX : 1;
    int len = flap->flap / 4 + (int) (s_rng_next (&flap->rng) % (uint64_t) (flap->flap / 2 + 1));
    return len < 1 ? 1 : len;
}

//  Start host H's flapping in storm E.
static void
s_flap_init (s_flap_t *flap, const s_options_t *opt, int e, int h)
{
    memset (flap, 0, sizeof *flap);
    flap->rng.state = s_rng_stream (opt->seed * 0x2545F4914F6CDD1Dull
                                    + (uint64_t) (h + 1) * 0xD1B54A32D192ED03ull,
                                    (uint64_t) (e + 1));
    flap->flap = opt->storm_flap;
    flap->magnitude = opt->storm_sigmas * (0.8 + 0.4 * s_rng_uniform (&flap->rng));
    int max_onset = opt->storm_spread < opt->storm_length - 1 ? opt->storm_spread
                                                               : opt->storm_length - 1;
    flap->left = (int) (s_rng_next (&flap->rng) % (uint64_t) (max_onset + 1));
    flap->bad = false;                  //  healthy until its onset
}

//  Whether the host is bad at the storm's next point.
static bool
s_flap_next (s_flap_t *flap)
{
    while (flap->left == 0) {
        flap->bad = !flap->bad;
        flap->left = s_flap_phase (flap, flap->bad);
    }
    flap->left--;
    return flap->bad;
}

//  Host H's first and last bad point in storm E, as offsets from the storm's start;
//  false if it is never bad.
static bool
s_flap_extent (const s_options_t *opt, int e, int h, int *first, int *last, double *magnitude)
{
    s_flap_t flap;
    s_flap_init (&flap, opt, e, h);
    *magnitude = flap.magnitude;
    *first = *last = -1;
    for (int o = 0; o < opt->storm_length; o++)
        if (s_flap_next (&flap)) {
            if (*first < 0)
                *first = o;
            *last = o;
        }
    return *first >= 0;
}

//  The storm-mode part of the labels: one window per hit series per storm into LIST,
//  and the "storm" object (parameters, storms) into ROOT.  0, or -1 (out of memory).
static int
s_storm_labels (json_t *root, json_t *list, const s_storm_t *storm, const s_series_t *series,
                const s_options_t *opt)
{
    json_t *episodes = json_array ();
    json_t *info = json_pack ("{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:o}",
                              "outages", opt->storms, "repeats", opt->storm_repeats,
                              "length", opt->storm_length, "hosts_pct", opt->storm_hosts,
                              "metrics", storm->metrics_hit, "flap", opt->storm_flap,
                              "spread", opt->storm_spread, "sigmas", opt->storm_sigmas,
                              "warmup", S_QUIET, "gap", S_STORM_GAP, "storms", episodes);
    if (!info || json_object_set_new (root, "storm", info) != 0)
        return -1;
    for (int e = 0; e < storm->episodes; e++) {
        int k = e % storm->outages;
        int64_t start_s = opt->start_s + (int64_t) storm->start[e] * opt->step_s;
        json_t *hosts = json_array (), *metrics = json_array ();
        json_t *one = json_pack ("{s:i, s:i, s:I, s:I, s:o, s:o}", "outage", k + 1,
                                 "occurrence", e / storm->outages + 1,
                                 "start_ms", (json_int_t) (start_s * 1000), "end_ms",
                                 (json_int_t) ((start_s + (int64_t) (opt->storm_length - 1)
                                                              * opt->step_s) * 1000),
                                 "hosts", hosts, "metrics", metrics);
        if (!one || json_array_append_new (episodes, one) != 0)
            return -1;
        for (int m = 0; m < opt->metrics; m++)
            if (storm->hit_metric[k * opt->metrics + m])
                json_array_append_new (metrics, json_string (s_metrics[m].name));
        for (int h = 0; h < opt->hosts; h++) {
            if (!storm->hit_host[k * opt->hosts + h])
                continue;
            json_array_append_new (hosts, json_string (series[h * opt->metrics].host));
            int first, last;
            double magnitude;
            if (!s_flap_extent (opt, e, h, &first, &last, &magnitude))
                continue;
            for (int m = 0; m < opt->metrics; m++) {
                if (!storm->hit_metric[k * opt->metrics + m])
                    continue;
                const s_series_t *s = &series[h * opt->metrics + m];
                json_t *w = json_pack (
                    "{s:s, s:s, s:I, s:I, s:f, s:i, s:i}", "series", s->key, "kind", "storm",
                    "start_ms", (json_int_t) (start_s + (int64_t) first * opt->step_s) * 1000,
                    "end_ms", (json_int_t) (start_s + (int64_t) last * opt->step_s) * 1000,
                    "sigmas", s_storm_signs[m] * magnitude, "outage", k + 1, "occurrence",
                    e / storm->outages + 1);
                if (!w || json_array_append_new (list, w) != 0)
                    return -1;
            }
        }
    }
    return 0;
}

//  Write the labels to PATH atomically.  0 or -1 (logged).
static int
s_labels_write (const char *path, const s_series_t *series, int count, const s_options_t *opt,
                uint64_t events, const s_storm_t *storm)
{
    json_t *list = json_array ();
    for (int i = 0; i < count; i++) {
        const s_series_t *s = &series[i];
        if (s->kind == S_NONE)
            continue;
        int64_t start_ms = (opt->start_s + (int64_t) s->start * opt->step_s) * 1000;
        int64_t end_ms = (opt->start_s + (int64_t) s_anomaly_end (s) * opt->step_s) * 1000;
        json_array_append_new (list, json_pack ("{s:s, s:s, s:I, s:I, s:f}",
                                                "series", s->key,
                                                "kind", s_kind_names[s->kind],
                                                "start_ms", (json_int_t) start_ms,
                                                "end_ms", (json_int_t) end_ms,
                                                "sigmas", s->magnitude));
    }
    json_t *root = json_pack ("{s:i, s:I, s:i, s:o}", "step_s", opt->step_s,
                              "events", (json_int_t) events, "malformed", opt->malformed,
                              "anomalies", list);
    if (!root || (storm && s_storm_labels (root, list, storm, series, opt) != 0)) {
        json_decref (root);
        mesh_err ("cannot build the labels");
        return -1;
    }
    size_t len = strlen (path);
    char *tmp = malloc (len + 8);
    char *dir_copy = strdup (path);
    if (!tmp || !dir_copy) {
        free (tmp);
        free (dir_copy);
        json_decref (root);
        mesh_err ("out of memory");
        return -1;
    }
    snprintf (tmp, len + 8, "%s.XXXXXX", path);
    int rc = -1;
    int fd = mkstemp (tmp);
    if (fd < 0)
        mesh_err ("cannot create %s: %s", tmp, strerror (errno));
    else {
        if (json_dumpfd (root, fd, JSON_INDENT (2)) != 0 || write (fd, "\n", 1) != 1)
            mesh_err ("cannot write %s: %s", tmp, strerror (errno));
        else
        if (fsync (fd) != 0)
            mesh_err ("cannot fsync %s: %s", tmp, strerror (errno));
        else
        if (fchmod (fd, 0644) != 0)
            mesh_err ("cannot chmod %s: %s", tmp, strerror (errno));
        else
        if (rename (tmp, path) != 0)
            mesh_err ("cannot rename %s to %s: %s", tmp, path, strerror (errno));
        else
            rc = 0;
        close (fd);
        if (rc != 0)
            unlink (tmp);
        else {
            //  Make the rename itself durable.
            int dfd = open (dirname (dir_copy), O_RDONLY | O_DIRECTORY);
            if (dfd >= 0) {
                (void) fsync (dfd);
                close (dfd);
            }
        }
    }
    free (tmp);
    free (dir_copy);
    json_decref (root);
    return rc;
}

//  --- output: Kafka or stdout -----------------------------------------------------

typedef struct {
    rd_kafka_t *rk;
    const char *topic;
    uint64_t failed;
    bool logged;
} s_sink_t;

static void
s_delivered (rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    s_sink_t *sink = opaque;
    if (msg->err) {
        if (!sink->logged)
            mesh_err ("delivery failed: %s (further failures are only counted)",
                      rd_kafka_err2str (msg->err));
        sink->logged = true;
        sink->failed++;
    }
}

//  librdkafka's own diagnostics, through our log (syslog levels on both sides).
static void
s_kafka_log (const rd_kafka_t *rk, int level, const char *facility, const char *text)
{
    mesh_log (level < MESH_LOG_ERR ? MESH_LOG_ERR : level, "kafka %s: %s", facility, text);
}

static int
s_sink_open (s_sink_t *sink, const s_options_t *opt)
{
    memset (sink, 0, sizeof *sink);
    sink->topic = opt->topic;
    if (opt->to_stdout)
        return 0;
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new ();
    const char *settings[][2] = {
        { "bootstrap.servers", opt->brokers },
        { "enable.idempotence", "true" },
        { "acks", "all" },
        { "linger.ms", "5" },
        { "message.timeout.ms", "30000" },
    };
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
        if (rd_kafka_conf_set (conf, settings[i][0], settings[i][1], errstr, sizeof errstr)
            != RD_KAFKA_CONF_OK) {
            mesh_err ("%s=%s: %s", settings[i][0], settings[i][1], errstr);
            rd_kafka_conf_destroy (conf);
            return -1;
        }
    rd_kafka_conf_set_dr_msg_cb (conf, s_delivered);
    rd_kafka_conf_set_log_cb (conf, s_kafka_log);
    rd_kafka_conf_set_opaque (conf, sink);
    sink->rk = rd_kafka_new (RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!sink->rk) {
        mesh_err ("cannot create the producer: %s", errstr);
        rd_kafka_conf_destroy (conf);
        return -1;
    }
    return 0;
}

static int
s_sink_send (s_sink_t *sink, const char *key, const char *value, int64_t ts_ms)
{
    if (!sink->rk) {
        if (puts (value) == EOF) {
            mesh_err ("cannot write to stdout: %s", strerror (errno));
            return -1;
        }
        return 0;
    }
    while (true) {
        rd_kafka_resp_err_t err = rd_kafka_producev (
            sink->rk, RD_KAFKA_V_TOPIC (sink->topic), RD_KAFKA_V_KEY (key, strlen (key)),
            RD_KAFKA_V_VALUE ((void *) value, strlen (value)),
            RD_KAFKA_V_MSGFLAGS (RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP (ts_ms),
            RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
            break;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            mesh_err ("cannot produce to %s: %s", sink->topic, rd_kafka_err2str (err));
            return -1;
        }
        rd_kafka_poll (sink->rk, 100);  //  let deliveries drain the queue
    }
    rd_kafka_poll (sink->rk, 0);
    return 0;
}

//  Flush and close; 0 if everything was delivered.
static int
s_sink_close (s_sink_t *sink)
{
    if (!sink->rk)
        return fflush (stdout) == 0 ? 0 : -1;
    rd_kafka_resp_err_t err = rd_kafka_flush (sink->rk, 60000);
    int left = rd_kafka_outq_len (sink->rk);
    if (err || left > 0)
        mesh_err ("%d messages still undelivered after the flush", left);
    rd_kafka_destroy (sink->rk);
    sink->rk = NULL;
    if (sink->failed > 0)
        mesh_err ("%" PRIu64 " messages failed delivery", sink->failed);
    return (err || left > 0 || sink->failed > 0) ? -1 : 0;
}

//  --rate: sleep until SENT messages are due at RATE a second since BEGAN, serving the
//  producer's delivery reports meanwhile.
static void
s_pace (s_sink_t *sink, const struct timespec *began, uint64_t sent, int rate)
{
    while (true) {
        struct timespec now;
        clock_gettime (CLOCK_MONOTONIC, &now);
        double elapsed = (double) (now.tv_sec - began->tv_sec)
                         + (double) (now.tv_nsec - began->tv_nsec) / 1e9;
        double ahead = (double) sent / rate - elapsed;
        if (ahead <= 0)
            return;
        int ms = (int) (ahead * 1000) + 1;
        if (sink->rk)
            rd_kafka_poll (sink->rk, ms);
        else {
            struct timespec pause = { ms / 1000, (long) (ms % 1000) * 1000000 };
            nanosleep (&pause, NULL);
        }
    }
}

//  Malformed message number K, shaped after series S at time TS.
static void
s_malformed (char *buf, size_t size, int k, const s_series_t *s, int64_t ts)
{
    switch (k % 3) {
    case 0:
        snprintf (buf, size, "not json {host=%s metric=%s", s->host, s->metric->name);
        break;
    case 1:
        snprintf (buf, size, "{\"host\":\"%s\",\"metric\":\"%s\",\"ts\":%" PRId64 "}", s->host,
                  s->metric->name, ts);
        break;
    default:
        snprintf (buf, size,
                  "{\"host\":\"%s\",\"metric\":\"%s\",\"value\":\"high\",\"ts\":%" PRId64 "}",
                  s->host, s->metric->name, ts);
        break;
    }
}

static void
s_usage (FILE *out)
{
    fprintf (out,
             "usage: mesh-gen --brokers B --topic T [--hosts 4] [--metrics 3] [--points 720]\n"
             "                [--step-s 60] [--start EPOCH_S] [--seed 42] [--labels FILE]\n"
             "                [--malformed N] [--stdout] [--rate MSGS_PER_S]\n"
             "                [--storm N [--storm-repeats 1] [--storm-length 40]\n"
             "                 [--storm-hosts 60] [--storm-metrics 3] [--storm-flap 10]\n"
             "                 [--storm-spread 5] [--storm-sigmas 8]]\n"
             "  --stdout prints the messages instead of producing them (no --brokers needed).\n"
             "  --rate R sends at most R messages a second (default: no limit).\n"
             "  --storm N replaces the per-series anomalies by incident storms: N outages,\n"
             "  each hitting the same hosts and metrics at once every time it happens:\n"
             "    --storm-repeats R  each outage happens R more times later (N x (R+1) storms)\n"
             "    --storm-length L   points per storm\n"
             "    --storm-hosts PCT  percent of the hosts an outage hits (at least one)\n"
             "    --storm-metrics K  metrics it hits on each of them (at most --metrics)\n"
             "    --storm-flap P     flapping period in points: bad phases and recoveries of\n"
             "                       P/4..3P/4 points each, per host; 0 = bad throughout\n"
             "    --storm-spread S   hosts are hit one by one within the first S points\n"
             "    --storm-sigmas X   size of the bad state in noise sigmas (x 0.8-1.2 per host)\n"
             "  Storms sit in equal slots after the first 60 points and before the last 30,\n"
             "  each followed by at least 30 quiet points; --labels gets one window per hit\n"
             "  series per storm (kind \"storm\") and a \"storm\" object with the plan.\n"
             "  Metrics, in order: ");
    for (int i = 0; i < S_METRIC_COUNT; i++)
        fprintf (out, "%s%s", s_metrics[i].name, i + 1 < S_METRIC_COUNT ? ", " : ".\n");
}

//  Parse a decimal integer in [MIN, MAX]; 0 or -1 (reported).
static int
s_parse_int (const char *name, const char *text, long long min, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll (text, &end, 10);
    if (errno || end == text || *end || v < min || v > max) {
        fprintf (stderr, "mesh-gen: --%s '%s': expected an integer from %lld to %lld\n", name,
                 text, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

int
main (int argc, char *argv[])
{
    mesh_log_set_tag ("mesh-gen");
    s_options_t opt = { .hosts = 4, .metrics = 3, .points = 720, .step_s = 60,
                        .start_s = 1767225600, .seed = 42, .storm_repeats = 1,
                        .storm_length = 40, .storm_hosts = 60, .storm_metrics = 3,
                        .storm_flap = 10, .storm_spread = 5, .storm_sigmas = 8 };
    bool storm_options = false;         //  a --storm-* option was given
    static const struct option longopts[] = {
        { "brokers", required_argument, NULL, 'b' },
        { "topic", required_argument, NULL, 't' },
        { "hosts", required_argument, NULL, 'H' },
        { "metrics", required_argument, NULL, 'm' },
        { "points", required_argument, NULL, 'p' },
        { "step-s", required_argument, NULL, 's' },
        { "start", required_argument, NULL, 'S' },
        { "seed", required_argument, NULL, 'r' },
        { "labels", required_argument, NULL, 'l' },
        { "malformed", required_argument, NULL, 'M' },
        { "stdout", no_argument, NULL, 'o' },
        { "rate", required_argument, NULL, 999 },
        { "storm", required_argument, NULL, 1000 },
        { "storm-repeats", required_argument, NULL, 1001 },
        { "storm-length", required_argument, NULL, 1002 },
        { "storm-hosts", required_argument, NULL, 1003 },
        { "storm-metrics", required_argument, NULL, 1004 },
        { "storm-flap", required_argument, NULL, 1005 },
        { "storm-spread", required_argument, NULL, 1006 },
        { "storm-sigmas", required_argument, NULL, 1007 },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    long long v;
    while ((c = getopt_long (argc, argv, "", longopts, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case 'b': opt.brokers = optarg; break;
        case 't': opt.topic = optarg; break;
        case 'l': opt.labels = optarg; break;
        case 'o': opt.to_stdout = true; break;
        case 'H':
            rc = s_parse_int ("hosts", optarg, 1, S_MAX_HOSTS, &v);
            opt.hosts = (int) v;
            break;
        case 'm':
            rc = s_parse_int ("metrics", optarg, 1, S_METRIC_COUNT, &v);
            opt.metrics = (int) v;
            break;
        case 'p':
            rc = s_parse_int ("points", optarg, 1, 10000000, &v);
            opt.points = (int) v;
            break;
        case 's':
            rc = s_parse_int ("step-s", optarg, 1, 86400, &v);
            opt.step_s = (int) v;
            break;
        case 'S':
            rc = s_parse_int ("start", optarg, 0, 100000000000LL, &v);
            opt.start_s = v;
            break;
        case 'r':
            rc = s_parse_int ("seed", optarg, 0, INT64_MAX, &v);
            opt.seed = (uint64_t) v;
            break;
        case 'M':
            rc = s_parse_int ("malformed", optarg, 0, 10000000, &v);
            opt.malformed = (int) v;
            break;
        case 999:
            rc = s_parse_int ("rate", optarg, 0, 100000000, &v);
            opt.rate = (int) v;
            break;
        case 1000:
            rc = s_parse_int ("storm", optarg, 0, 1000, &v);
            opt.storms = (int) v;
            break;
        case 1001:
            rc = s_parse_int ("storm-repeats", optarg, 0, 1000, &v);
            opt.storm_repeats = (int) v;
            storm_options = true;
            break;
        case 1002:
            rc = s_parse_int ("storm-length", optarg, 1, 1000000, &v);
            opt.storm_length = (int) v;
            storm_options = true;
            break;
        case 1003:
            rc = s_parse_int ("storm-hosts", optarg, 1, 100, &v);
            opt.storm_hosts = (int) v;
            storm_options = true;
            break;
        case 1004:
            rc = s_parse_int ("storm-metrics", optarg, 1, S_METRIC_COUNT, &v);
            opt.storm_metrics = (int) v;
            storm_options = true;
            break;
        case 1005:
            rc = s_parse_int ("storm-flap", optarg, 0, 1000000, &v);
            opt.storm_flap = (int) v;
            storm_options = true;
            break;
        case 1006:
            rc = s_parse_int ("storm-spread", optarg, 0, 1000000, &v);
            opt.storm_spread = (int) v;
            storm_options = true;
            break;
        case 1007:
            rc = s_parse_int ("storm-sigmas", optarg, 1, 1000, &v);
            opt.storm_sigmas = (int) v;
            storm_options = true;
            break;
        case 'h': s_usage (stdout); return 0;
        default: s_usage (stderr); return 2;
        }
        if (rc)
            return 2;
    }
    if (storm_options && opt.storms == 0) {
        fprintf (stderr, "mesh-gen: the --storm-* options need --storm N (N >= 1)\n");
        return 2;
    }
    if (optind < argc || (!opt.to_stdout && (!opt.topic || !opt.brokers))) {
        fprintf (stderr, "mesh-gen: --brokers and --topic (or --stdout) are required\n");
        s_usage (stderr);
        return 2;
    }
    int count = opt.hosts * opt.metrics;
    s_series_t *series = calloc ((size_t) count, sizeof *series);
    if (!series) {
        mesh_err ("out of memory");
        return 1;
    }
    //  Storm mode plans storms instead of the per-series anomalies.
    s_storm_t storm = { 0 };
    if (opt.storms > 0 && s_storm_plan (&storm, &opt) != 0) {
        free (series);
        return 2;
    }
    int anomalies = s_series_plan (series, count, &opt);
    if (anomalies < 0) {
        mesh_err ("out of memory");
        s_storm_destroy (&storm);
        free (series);
        return 1;
    }
    if (anomalies == 0 && opt.storms == 0)
        mesh_warn ("%d points leave no room for anomalies (they need at least %d)", opt.points,
                   S_QUIET + S_RAMP + S_SHIFT_WINDOW);
    uint64_t events = (uint64_t) count * (uint64_t) opt.points;
    if (opt.labels && s_labels_write (opt.labels, series, count, &opt, events,
                                      opt.storms > 0 ? &storm : NULL) != 0) {
        s_storm_destroy (&storm);
        free (series);
        return 1;
    }
    //  Storm mode: the storm under way, and each host's state in it.
    s_flap_t *flaps = opt.storms > 0 ? calloc ((size_t) opt.hosts, sizeof *flaps) : NULL;
    bool *bad = opt.storms > 0 ? calloc ((size_t) opt.hosts, sizeof *bad) : NULL;
    if (opt.storms > 0 && (!flaps || !bad)) {
        mesh_err ("out of memory");
        free (flaps);
        free (bad);
        s_storm_destroy (&storm);
        free (series);
        return 1;
    }
    int active = -1, next_storm = 0, windows = 0;
    s_sink_t sink;
    if (s_sink_open (&sink, &opt) != 0) {
        free (flaps);
        free (bad);
        s_storm_destroy (&storm);
        free (series);
        return 1;
    }
    //  Malformed message k goes just before valid message (k + 1) * events / (N + 1).
    int rc = 0;
    uint64_t index = 0;
    struct timespec began;
    clock_gettime (CLOCK_MONOTONIC, &began);
    int malformed_sent = 0;
    char buf[256];
    for (int t = 0; t < opt.points && rc == 0; t++) {
        int64_t ts = opt.start_s + (int64_t) t * opt.step_s;
        if (opt.storms > 0) {
            if (active >= 0 && t >= storm.start[active] + storm.length)
                active = -1;
            if (next_storm < storm.episodes && t == storm.start[next_storm]) {
                active = next_storm++;
                for (int h = 0; h < opt.hosts; h++)
                    if (storm.hit_host[(active % storm.outages) * opt.hosts + h]) {
                        s_flap_init (&flaps[h], &opt, active, h);
                        int first, last;
                        double magnitude;
                        if (s_flap_extent (&opt, active, h, &first, &last, &magnitude))
                            windows += storm.metrics_hit;
                    }
            }
            for (int h = 0; h < opt.hosts; h++)
                bad[h] = active >= 0 && storm.hit_host[(active % storm.outages) * opt.hosts + h]
                         && s_flap_next (&flaps[h]);
        }
        for (int i = 0; i < count && rc == 0; i++, index++) {
            s_series_t *s = &series[i];
            while (malformed_sent < opt.malformed
                   && index >= (uint64_t) (malformed_sent + 1) * events
                                   / (uint64_t) (opt.malformed + 1)) {
                s_malformed (buf, sizeof buf, malformed_sent, s, ts);
                rc = s_sink_send (&sink, s->key, buf, ts * 1000);
                malformed_sent++;
            }
            double value = s_value (s, t);
            if (opt.storms > 0) {
                int h = i / opt.metrics, m = i % opt.metrics;
                if (bad[h] && storm.hit_metric[(active % storm.outages) * opt.metrics + m])
                    value += s_storm_signs[m] * flaps[h].magnitude * s->metric->sigma;
            }
            value += s->metric->sigma * s_rng_gauss (&s->rng);
            snprintf (buf, sizeof buf,
                      "{\"host\":\"%s\",\"metric\":\"%s\",\"value\":%.2f,\"ts\":%" PRId64 "}",
                      s->host, s->metric->name, value, ts);
            if (rc == 0)
                rc = s_sink_send (&sink, s->key, buf, ts * 1000);
            if (opt.rate > 0 && index % 100 == 99)
                s_pace (&sink, &began, index + 1, opt.rate);
        }
    }
    if (s_sink_close (&sink) != 0)
        rc = -1;
    const char *to = opt.to_stdout ? " to stdout" : " to topic ";
    const char *topic = opt.to_stdout ? "" : opt.topic;
    if (opt.storms > 0)
        fprintf (stderr, "mesh-gen: %" PRIu64 " events (%d series x %d points), %d storms "
                 "(%d outages x %d), %d labelled windows, %d malformed%s%s%s\n", events, count,
                 opt.points, storm.episodes, storm.outages, opt.storm_repeats + 1, windows,
                 malformed_sent, to, topic, rc == 0 ? "" : "; FAILED");
    else
        fprintf (stderr, "mesh-gen: %" PRIu64 " events (%d series x %d points), %d anomalies, "
                 "%d malformed%s%s%s\n", events, count, opt.points, anomalies, malformed_sent,
                 to, topic, rc == 0 ? "" : "; FAILED");
    free (flaps);
    free (bad);
    s_storm_destroy (&storm);
    free (series);
    return rc == 0 ? 0 : 1;
}

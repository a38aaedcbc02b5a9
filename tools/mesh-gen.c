/*  mesh-gen - the demo's synthetic metric stream, with labelled anomalies.
 *
 *  mesh-gen --brokers B --topic T [--hosts 4] [--metrics 3] [--points 720]
 *           [--step-s 60] [--start EPOCH_S] [--seed 42] [--labels FILE]
 *           [--malformed N] [--stdout]
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
 *  own generator, so a series does not change when --hosts or --metrics do.
 *
 *  --labels FILE writes (atomically: temporary file, fsync, rename) the ground
 *  truth that common/labels.c scores incidents against; each anomaly's window
 *  ends at its start for a spike, 10 steps after it for a level shift (the EWMA
 *  baseline has adapted by then, so later alarms are not credited), and at the
 *  end of the ramp for a drift.  The labels are written before anything is
 *  produced, so a failure to write them leaves the topic untouched.
 *
 *  --malformed N adds N bad messages spread evenly through the stream (not JSON;
 *  JSON without a value; a value that is a string), so the agent's malformed
 *  counter can be checked.  They are not counted in "events".
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
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_PERIOD        288             //  points per "day"
#define S_QUIET         60              //  no anomaly in the first points
#define S_RAMP          30              //  points of a drift's ramp
#define S_SHIFT_WINDOW  10              //  steps a level shift stays labelled
#define S_MAX_HOSTS     1000

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
        s->rng.state = opt->seed * 0x100000001B3ull + (uint64_t) i * 0x9E3779B97F4A7C15ull + 1;
    }
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

//  Write the labels to PATH atomically.  0 or -1 (logged).
static int
s_labels_write (const char *path, const s_series_t *series, int count, const s_options_t *opt,
                uint64_t events)
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
    if (!root) {
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
             "                [--malformed N] [--stdout]\n"
             "  --stdout prints the messages instead of producing them (no --brokers needed).\n"
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
                        .start_s = 1767225600, .seed = 42 };
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
        case 'h': s_usage (stdout); return 0;
        default: s_usage (stderr); return 2;
        }
        if (rc)
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
    int anomalies = s_series_plan (series, count, &opt);
    if (anomalies < 0) {
        mesh_err ("out of memory");
        free (series);
        return 1;
    }
    if (anomalies == 0)
        mesh_warn ("%d points leave no room for anomalies (they need at least %d)", opt.points,
                   S_QUIET + S_RAMP + S_SHIFT_WINDOW);
    uint64_t events = (uint64_t) count * (uint64_t) opt.points;
    if (opt.labels && s_labels_write (opt.labels, series, count, &opt, events) != 0) {
        free (series);
        return 1;
    }
    s_sink_t sink;
    if (s_sink_open (&sink, &opt) != 0) {
        free (series);
        return 1;
    }
    //  Malformed message k goes just before valid message (k + 1) * events / (N + 1).
    int rc = 0;
    uint64_t index = 0;
    int malformed_sent = 0;
    char buf[256];
    for (int t = 0; t < opt.points && rc == 0; t++) {
        int64_t ts = opt.start_s + (int64_t) t * opt.step_s;
        for (int i = 0; i < count && rc == 0; i++, index++) {
            s_series_t *s = &series[i];
            while (malformed_sent < opt.malformed
                   && index >= (uint64_t) (malformed_sent + 1) * events
                                   / (uint64_t) (opt.malformed + 1)) {
                s_malformed (buf, sizeof buf, malformed_sent, s, ts);
                rc = s_sink_send (&sink, s->key, buf, ts * 1000);
                malformed_sent++;
            }
            double value = s_value (s, t) + s->metric->sigma * s_rng_gauss (&s->rng);
            snprintf (buf, sizeof buf,
                      "{\"host\":\"%s\",\"metric\":\"%s\",\"value\":%.2f,\"ts\":%" PRId64 "}",
                      s->host, s->metric->name, value, ts);
            if (rc == 0)
                rc = s_sink_send (&sink, s->key, buf, ts * 1000);
        }
    }
    if (s_sink_close (&sink) != 0)
        rc = -1;
    fprintf (stderr, "mesh-gen: %" PRIu64 " events (%d series x %d points), %d anomalies, "
             "%d malformed%s%s%s\n", events, count, opt.points, anomalies, malformed_sent,
             opt.to_stdout ? " to stdout" : " to topic ", opt.to_stdout ? "" : opt.topic,
             rc == 0 ? "" : "; FAILED");
    free (series);
    return rc == 0 ? 0 : 1;
}

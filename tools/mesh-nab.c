/*  mesh-nab - meshd's detectors on the Numenta Anomaly Benchmark, and a NAB scorer.
 *
 *      mesh-nab run CONFIG AGENT NAB_ROOT OUT_DIR
 *      mesh-nab score NAB_ROOT RESULTS_DIR DETECTOR...
 *
 *  `run` feeds every file named in NAB_ROOT/labels/combined_windows.json through the
 *  detector of agent AGENT in the meshd config CONFIG, exactly as the agent does:
 *  each row becomes a JSON event ({"series": "<category>/<file>", "value": v,
 *  "ts": "<row time>Z"}) decoded by mesh_event_decode with that agent's field map,
 *  then mesh_detect_update with the decoded series, value and event time, one
 *  detector for all files (each file is one series).  The scores are written in
 *  NAB's layout, OUT_DIR/AGENT/<category>/AGENT_<file>.csv, columns
 *  timestamp,value,anomaly_score, rows in file order.
 *
 *  `score` scores result directories with the rules of NAB v1.1 as the corpus
 *  README states them: probationary period min (floor (0.15 rows), 750); each row at
 *  or above the threshold is a detection; the earliest detection in a window earns
 *  w_tp scaled by the sigmoid of its position, a window without one costs w_fn;
 *  each detection outside windows costs w_fp scaled by its distance from the
 *  preceding window; one threshold per profile over the whole corpus, the exact
 *  maximum over every distinct score (ties to the higher threshold); normalised so
 *  that the null detector scores 0 and the perfect one 100.  The sweep sorts all
 *  scored rows once and adds them from the highest score down, updating the raw
 *  score incrementally, so the exact optimum costs O(rows log rows).
 *  It prints one line per detector:  NAME standard low_fp low_fn threshold.
 *
 *  Exit status: 0, 1 on a data or I/O error (reported on stderr), 2 on bad usage.
 */
#include "config.h"
#include "detect.h"
#include "event_kafka.h"
#include "log.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    size_t start, end;                  //  rows, inclusive
} s_window_t;

typedef struct {
    char *name;                         //  "<category>/<file>.csv"
    size_t rows;
    char **ts;                          //  row timestamps as written
    char **raw;                         //  row values as written
    size_t probation;
    s_window_t *windows;
    size_t window_count;
    double *score;                      //  scoring: one detector's scores, NaN = none
} s_file_t;

typedef struct {
    s_file_t *files;
    size_t count;
    size_t windows;                     //  over all files
} s_corpus_t;

//  --------------------------------------------------------------------------
//  Reading

static char *
s_slurp (const char *path, size_t *len_p)
{
    FILE *file = fopen (path, "rb");
    if (!file) {
        fprintf (stderr, "mesh-nab: cannot open %s: %s\n", path, strerror (errno));
        return NULL;
    }
    size_t alloc = 1 << 16, len = 0;
    char *buf = malloc (alloc);
    while (buf) {
        if (len + 1 >= alloc) {
            char *bigger = realloc (buf, alloc * 2);
            if (!bigger) {
                free (buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            alloc *= 2;
        }
        size_t got = fread (buf + len, 1, alloc - len - 1, file);
        if (got == 0)
            break;
        len += got;
    }
    bool bad = ferror (file);
    fclose (file);
    if (!buf || bad) {
        fprintf (stderr, "mesh-nab: cannot read %s\n", path);
        free (buf);
        return NULL;
    }
    buf[len] = 0;
    if (len_p)
        *len_p = len;
    return buf;
}

//  Split BUF (modified in place) into lines; returns the count, *lines_p malloc'd.
static size_t
s_lines (char *buf, char ***lines_p)
{
    size_t alloc = 1024, count = 0;
    char **lines = malloc (alloc * sizeof *lines);
    char *p = buf;
    while (lines && *p) {
        char *nl = strchr (p, '\n');
        if (nl)
            *nl = 0;
        size_t len = strlen (p);
        if (len && p[len - 1] == '\r')
            p[len - 1] = 0;
        if (*p) {
            if (count == alloc) {
                char **more = realloc (lines, alloc * 2 * sizeof *lines);
                if (!more) {
                    free (lines);
                    lines = NULL;
                    break;
                }
                lines = more;
                alloc *= 2;
            }
            lines[count++] = p;
        }
        if (!nl)
            break;
        p = nl + 1;
    }
    *lines_p = lines;
    return lines ? count : 0;
}

//  Column COLUMN (0-based) of a CSV LINE without quoting, copied into OUT.
static bool
s_field (const char *line, int column, char *out, size_t size)
{
    const char *p = line;
    for (int i = 0; i < column; i++) {
        p = strchr (p, ',');
        if (!p)
            return false;
        p++;
    }
    size_t len = strcspn (p, ",");
    if (len >= size)
        return false;
    memcpy (out, p, len);
    out[len] = 0;
    return true;
}

static int
s_column (const char *header, const char *name)
{
    char field[64];
    for (int i = 0; s_field (header, i, field, sizeof field); i++)
        if (!strcmp (field, name))
            return i;
    return -1;
}

static size_t
s_probation (size_t rows)
{
    size_t p = (size_t) floor (0.15 * (double) rows);
    return p < 750 ? p : 750;
}

//  Row of the first occurrence of timestamp EDGE (fractional seconds ignored).
static bool
s_row_of (const s_file_t *file, const char *edge, size_t *row)
{
    size_t len = strcspn (edge, ".");
    for (size_t i = 0; i < file->rows; i++)
        if (strlen (file->ts[i]) == len && !strncmp (file->ts[i], edge, len)) {
            *row = i;
            return true;
        }
    return false;
}

static void
s_corpus_free (s_corpus_t *corpus)
{
    for (size_t i = 0; i < corpus->count; i++) {
        s_file_t *file = &corpus->files[i];
        for (size_t r = 0; r < file->rows; r++) {
            free (file->ts[r]);
            free (file->raw[r]);
        }
        free (file->ts);
        free (file->raw);
        free (file->windows);
        free (file->score);
        free (file->name);
    }
    free (corpus->files);
}

static int
s_load_data (s_file_t *file, const char *root)
{
    char path[4096];
    snprintf (path, sizeof path, "%s/data/%s", root, file->name);
    char *buf = s_slurp (path, NULL);
    if (!buf)
        return -1;
    char **lines;
    size_t count = s_lines (buf, &lines);
    int ts_col = count ? s_column (lines[0], "timestamp") : -1;
    int value_col = count ? s_column (lines[0], "value") : -1;
    if (ts_col < 0 || value_col < 0) {
        fprintf (stderr, "mesh-nab: %s: expected a header with timestamp and value\n", path);
        free (lines);
        free (buf);
        return -1;
    }
    file->rows = count - 1;
    file->ts = calloc (file->rows ? file->rows : 1, sizeof *file->ts);
    file->raw = calloc (file->rows ? file->rows : 1, sizeof *file->raw);
    file->score = calloc (file->rows ? file->rows : 1, sizeof *file->score);
    int rc = file->ts && file->raw && file->score ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < file->rows; i++) {
        char ts[64], value[64];
        if (!s_field (lines[i + 1], ts_col, ts, sizeof ts)
        ||  !s_field (lines[i + 1], value_col, value, sizeof value)) {
            fprintf (stderr, "mesh-nab: %s:%zu: malformed row\n", path, i + 2);
            rc = -1;
            break;
        }
        file->ts[i] = strdup (ts);
        file->raw[i] = strdup (value);
        if (!file->ts[i] || !file->raw[i])
            rc = -1;
    }
    file->probation = s_probation (file->rows);
    free (lines);
    free (buf);
    return rc;
}

//  Load the file list and windows from ROOT/labels, and every data file.
static int
s_corpus_load (s_corpus_t *corpus, const char *root)
{
    memset (corpus, 0, sizeof *corpus);
    char path[4096];
    snprintf (path, sizeof path, "%s/labels/combined_windows.json", root);
    json_error_t jerr;
    json_t *labels = json_load_file (path, 0, &jerr);
    if (!json_is_object (labels)) {
        fprintf (stderr, "mesh-nab: %s: %s\n", path, labels ? "not a JSON object" : jerr.text);
        json_decref (labels);
        return -1;
    }
    corpus->files = calloc (json_object_size (labels) + 1, sizeof *corpus->files);
    if (!corpus->files) {
        json_decref (labels);
        return -1;
    }
    //  Files in name order, so every run and table is in the same order.
    const char **names = calloc (json_object_size (labels) + 1, sizeof *names);
    const char *key;
    json_t *value;
    size_t n = 0;
    json_object_foreach (labels, key, value)
        names[n++] = key;
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp (names[j - 1], names[j]) > 0; j--) {
            const char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        s_file_t *file = &corpus->files[corpus->count++];
        file->name = strdup (names[i]);
        if (!file->name || s_load_data (file, root)) {
            rc = -1;
            break;
        }
        json_t *windows = json_object_get (labels, names[i]);
        size_t count = json_array_size (windows);
        file->windows = calloc (count + 1, sizeof *file->windows);
        for (size_t w = 0; file->windows && w < count; w++) {
            json_t *pair = json_array_get (windows, w);
            const char *a = json_string_value (json_array_get (pair, 0));
            const char *b = json_string_value (json_array_get (pair, 1));
            s_window_t *win = &file->windows[file->window_count];
            if (!a || !b || !s_row_of (file, a, &win->start) || !s_row_of (file, b, &win->end)
            ||  win->end < win->start) {
                fprintf (stderr, "mesh-nab: %s: window %zu of %s does not match its rows\n",
                         path, w, names[i]);
                rc = -1;
                break;
            }
            file->window_count++;
        }
        corpus->windows += file->window_count;
    }
    free (names);
    json_decref (labels);
    if (rc)
        s_corpus_free (corpus);
    return rc;
}

//  --------------------------------------------------------------------------
//  run

static int
s_mkdirs (const char *path)
{
    char buf[4096];
    snprintf (buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir (buf, 0755) && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir (buf, 0755) && errno != EEXIST ? -1 : 0;
}

static int
s_run (const char *config_path, const char *agent_name, const char *root, const char *out)
{
    mesh_config_t *config = NULL;
    if (mesh_config_load (config_path, &config, stderr))
        return 1;
    const mesh_agent_config_t *agent = mesh_config_agent (config, agent_name);
    if (!agent) {
        fprintf (stderr, "mesh-nab: %s has no agent named '%s'\n", config_path, agent_name);
        mesh_config_destroy (&config);
        return 1;
    }
    s_corpus_t corpus;
    if (s_corpus_load (&corpus, root)) {
        mesh_config_destroy (&config);
        return 1;
    }
    mesh_detect_t *detect = mesh_detect_new (&agent->detector);
    int rc = detect ? 0 : 1;
    for (size_t f = 0; rc == 0 && f < corpus.count; f++) {
        s_file_t *file = &corpus.files[f];
        const char *slash = strchr (file->name, '/');
        char dir[4096], path[4096 + 512];
        snprintf (dir, sizeof dir, "%s/%s/%.*s", out, agent_name,
                  slash ? (int) (slash - file->name) : 0, file->name);
        snprintf (path, sizeof path, "%s/%s_%s", dir, agent_name, slash ? slash + 1 : file->name);
        FILE *csv = s_mkdirs (dir) ? NULL : fopen (path, "w");
        if (!csv) {
            fprintf (stderr, "mesh-nab: cannot write %s: %s\n", path, strerror (errno));
            rc = 1;
            break;
        }
        fprintf (csv, "timestamp,value,anomaly_score\n");
        for (size_t r = 0; r < file->rows; r++) {
            //  "YYYY-MM-DD HH:MM:SS" -> RFC 3339 "YYYY-MM-DDTHH:MM:SSZ".
            char ts[80], payload[512];
            snprintf (ts, sizeof ts, "%sZ", file->ts[r]);
            char *space = strchr (ts, ' ');
            if (space)
                *space = 'T';
            json_t *row = json_pack ("{s:s, s:f, s:s}", "series", file->name,
                                     "value", strtod (file->raw[r], NULL), "ts", ts);
            char *text = row ? json_dumps (row, JSON_COMPACT) : NULL;
            json_decref (row);
            snprintf (payload, sizeof payload, "%s", text ? text : "");
            free (text);
            mesh_event_t event;
            json_t *json = NULL;
            const char *why = NULL;
            double score = NAN;
            if (mesh_event_decode (agent, payload, strlen (payload), &event, &json, &why) == 0)
                score = mesh_detect_update (detect, event.series, event.value, event.ts_ms, NULL);
            else
                fprintf (stderr, "mesh-nab: %s row %zu: %s\n", file->name, r + 2, why);
            json_decref (json);
            fprintf (csv, "%s,%s,%.17g\n", file->ts[r], file->raw[r], score);
        }
        if (fclose (csv)) {
            fprintf (stderr, "mesh-nab: cannot write %s: %s\n", path, strerror (errno));
            rc = 1;
        }
    }
    mesh_detect_destroy (&detect);
    s_corpus_free (&corpus);
    mesh_config_destroy (&config);
    return rc;
}

//  --------------------------------------------------------------------------
//  score

typedef struct {
    const char *name;
    double tp, fp, fn;
} s_profile_t;

static const s_profile_t s_profiles[] = {
    { "standard", 1.0, 0.11, 1.0 },
    { "reward_low_FP_rate", 1.0, 0.22, 1.0 },
    { "reward_low_FN_rate", 1.0, 0.11, 2.0 },
};
#define S_PROFILES 3

//  NAB's scaled sigmoid.
static double
s_sigma (double x)
{
    return x > 3 ? -1.0 : 2.0 / (1.0 + exp (5.0 * x)) - 1.0;
}

typedef struct {
    double score;
    uint32_t file, row;
} s_hit_t;

static int
s_hit_cmp (const void *a, const void *b)
{
    const s_hit_t *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    if (x->file != y->file)
        return x->file < y->file ? -1 : 1;
    return x->row < y->row ? -1 : (x->row > y->row);
}

//  Per row: the window it lies in (or -1) and, outside windows, its FP factor.
typedef struct {
    int *window_of;                     //  index into the corpus' window list
    double *fp;                         //  sigma (d / (W - 1)), or -1
} s_rowinfo_t;

//  Score the scores loaded into CORPUS under every profile; fills result[] and
//  threshold[] (INFINITY when no detection at all is best).
static int
s_score (const s_corpus_t *corpus, double result[S_PROFILES], double threshold[S_PROFILES])
{
    size_t total = 0;
    for (size_t f = 0; f < corpus->count; f++)
        total += corpus->files[f].rows;
    s_hit_t *hits = malloc ((total + 1) * sizeof *hits);
    s_rowinfo_t *info = calloc (corpus->count + 1, sizeof *info);
    double *window_tp_width = calloc (corpus->windows + 1, sizeof (double));
    size_t *window_end = calloc (corpus->windows + 1, sizeof (size_t));
    long *earliest = malloc ((corpus->windows + 1) * sizeof (long));
    if (!hits || !info || !window_tp_width || !window_end || !earliest) {
        free (hits);
        free (info);
        free (window_tp_width);
        free (window_end);
        free (earliest);
        return -1;
    }
    size_t nhits = 0, wbase = 0;
    for (size_t f = 0; f < corpus->count; f++) {
        const s_file_t *file = &corpus->files[f];
        info[f].window_of = malloc ((file->rows + 1) * sizeof (int));
        info[f].fp = malloc ((file->rows + 1) * sizeof (double));
        if (!info[f].window_of || !info[f].fp)
            return -1;
        long prev = -1;                 //  the preceding window, local index
        for (size_t r = 0; r < file->rows; r++) {
            info[f].window_of[r] = -1;
            for (size_t w = 0; w < file->window_count; w++) {
                if (r >= file->windows[w].start && r <= file->windows[w].end)
                    info[f].window_of[r] = (int) (wbase + w);
                if (file->windows[w].end < r && (prev < 0
                    || file->windows[w].end > file->windows[prev].end))
                    prev = (long) w;
            }
            if (prev < 0)
                info[f].fp[r] = -1.0;
            else {
                double width = (double) (file->windows[prev].end - file->windows[prev].start + 1);
                double d = (double) (r - file->windows[prev].end);
                info[f].fp[r] = width > 1 ? s_sigma (d / (width - 1)) : -1.0;
            }
            if (r >= file->probation && isfinite (file->score[r]))
                hits[nhits++] = (s_hit_t) { file->score[r], (uint32_t) f, (uint32_t) r };
        }
        for (size_t w = 0; w < file->window_count; w++) {
            window_tp_width[wbase + w] = (double) (file->windows[w].end
                                                   - file->windows[w].start + 1);
            window_end[wbase + w] = file->windows[w].end;
        }
        wbase += file->window_count;
    }
    qsort (hits, nhits, sizeof *hits, s_hit_cmp);

    for (int p = 0; p < S_PROFILES; p++) {
        const s_profile_t *prof = &s_profiles[p];
        double raw = -prof->fn * (double) corpus->windows;
        double best = raw, best_threshold = INFINITY;
        for (size_t w = 0; w < corpus->windows; w++)
            earliest[w] = -1;
        size_t i = 0;
        while (i < nhits) {
            double score = hits[i].score;
            for (; i < nhits && hits[i].score == score; i++) {
                const s_hit_t *hit = &hits[i];
                int w = info[hit->file].window_of[hit->row];
                if (w < 0) {
                    raw += prof->fp * info[hit->file].fp[hit->row];
                    continue;
                }
                double width = window_tp_width[w];
                double tp = prof->tp
                            * s_sigma (-((double) window_end[w] - hit->row + 1) / width)
                            / s_sigma (-1.0);
                if (earliest[w] < 0) {
                    raw += prof->fn + tp;
                    earliest[w] = hit->row;
                }
                else
                if ((long) hit->row < earliest[w]) {
                    double old = prof->tp
                                 * s_sigma (-((double) window_end[w] - earliest[w] + 1) / width)
                                 / s_sigma (-1.0);
                    raw += tp - old;
                    earliest[w] = hit->row;
                }
            }
            if (raw > best + 1e-12) {
                best = raw;
                best_threshold = score;
            }
        }
        double perfect = prof->tp * (double) corpus->windows;
        double null = -prof->fn * (double) corpus->windows;
        result[p] = perfect > null ? 100.0 * (best - null) / (perfect - null) : 0;
        threshold[p] = best_threshold;
    }
    for (size_t f = 0; f < corpus->count; f++) {
        free (info[f].window_of);
        free (info[f].fp);
    }
    free (info);
    free (hits);
    free (window_tp_width);
    free (window_end);
    free (earliest);
    return 0;
}

//  Read DETECTOR's scores for every file of CORPUS from RESULTS.
static int
s_load_scores (s_corpus_t *corpus, const char *results, const char *detector)
{
    for (size_t f = 0; f < corpus->count; f++) {
        s_file_t *file = &corpus->files[f];
        const char *slash = strchr (file->name, '/');
        char path[8192];
        snprintf (path, sizeof path, "%s/%s/%.*s/%s_%s", results, detector,
                  slash ? (int) (slash - file->name) : 0, file->name, detector,
                  slash ? slash + 1 : file->name);
        char *buf = s_slurp (path, NULL);
        if (!buf)
            return -1;
        char **lines;
        size_t count = s_lines (buf, &lines);
        int col = count ? s_column (lines[0], "anomaly_score") : -1;
        if (col < 0 || count - 1 != file->rows) {
            fprintf (stderr, "mesh-nab: %s: expected an anomaly_score column and %zu rows\n",
                     path, file->rows);
            free (lines);
            free (buf);
            return -1;
        }
        for (size_t r = 0; r < file->rows; r++) {
            char field[64], *end;
            file->score[r] = NAN;
            if (s_field (lines[r + 1], col, field, sizeof field) && *field) {
                double v = strtod (field, &end);
                if (end != field && !*end)
                    file->score[r] = v;
            }
        }
        free (lines);
        free (buf);
    }
    return 0;
}

//  Per file, at THRESHOLD: detections outside windows, and for each window the
//  row of its first detection relative to the window's start (or "miss").
static void
s_detail (const s_corpus_t *corpus, double threshold, FILE *out)
{
    for (size_t f = 0; f < corpus->count; f++) {
        const s_file_t *file = &corpus->files[f];
        size_t fp = 0;
        for (size_t r = file->probation; r < file->rows; r++) {
            if (!(file->score[r] >= threshold))
                continue;
            bool inside = false;
            for (size_t w = 0; w < file->window_count && !inside; w++)
                inside = r >= file->windows[w].start && r <= file->windows[w].end;
            fp += !inside;
        }
        fprintf (out, "  %-60s fp %3zu  windows", file->name, fp);
        for (size_t w = 0; w < file->window_count; w++) {
            const s_window_t *win = &file->windows[w];
            size_t r = win->start;
            while (r <= win->end && !(r >= file->probation && file->score[r] >= threshold))
                r++;
            if (r > win->end)
                fprintf (out, " miss/%zu", win->end - win->start + 1);
            else
                fprintf (out, " %zu/%zu", r - win->start, win->end - win->start + 1);
        }
        fprintf (out, "\n");
    }
}

static int
s_score_main (const char *root, const char *results, char **detectors, int count)
{
    s_corpus_t corpus;
    if (s_corpus_load (&corpus, root))
        return 1;
    int rc = 0;
    for (int d = 0; d < count; d++) {
        double result[S_PROFILES], threshold[S_PROFILES];
        if (s_load_scores (&corpus, results, detectors[d])
        ||  s_score (&corpus, result, threshold)) {
            rc = 1;
            continue;
        }
        printf ("%s %.2f %.2f %.2f %.9g\n", detectors[d], result[0], result[1], result[2],
                threshold[0]);
        if (getenv ("MESH_NAB_DETAIL"))
            s_detail (&corpus, threshold[0], stdout);
    }
    s_corpus_free (&corpus);
    return rc;
}

int
main (int argc, char **argv)
{
    if (argc == 6 && !strcmp (argv[1], "run"))
        return s_run (argv[2], argv[3], argv[4], argv[5]);
    if (argc >= 5 && !strcmp (argv[1], "score"))
        return s_score_main (argv[2], argv[3], argv + 4, argc - 4);
    fprintf (stderr, "usage: mesh-nab run CONFIG AGENT NAB_ROOT OUT_DIR\n"
                     "       mesh-nab score NAB_ROOT RESULTS_DIR DETECTOR...\n");
    return 2;
}

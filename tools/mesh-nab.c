/*  mesh-nab - meshd's detectors on the Numenta Anomaly Benchmark, and a NAB scorer.
 *
 *      mesh-nab run CONFIG AGENT NAB_ROOT OUT_DIR
 *      mesh-nab score NAB_ROOT RESULTS_DIR DETECTOR...
 *      mesh-nab cv [--seed N] [--folds K] [--repeats R] GRID NAB_ROOT OUT_DIR
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
 *  `cv` is the honest version (docs/detection.md, "Honest scores").  GRID maps each
 *  detector family to a few settings (detector config mappings, the first the
 *  default); each setting runs once over the corpus (OUT_DIR/cv/<family>-<i>/) and its
 *  scored rows are sorted once.  Then, for k-fold cross-validation by file (stratified
 *  by category, --repeats splits seeded --seed, --seed + 1, ..., files of one `groups:`
 *  entry in one fold) and for leave-one-category-out, each fold chooses the
 *  setting and the threshold on its training files only and scores its held-out files
 *  at that threshold: the scorer's sweep takes a mask of files and either optimises the
 *  threshold or stops at a fixed one, so a fold costs O(rows), no detector run.  The
 *  learned combination (GRID's `combine:` families, alone or two at a time, weighted
 *  mean or maximum of their surprises) is chosen the same way.  It prints one line per
 *  family and one for the combination:
 *      NAME whole cv loco gap fixed fixed_threshold configured
 *  and writes every fold's choice to OUT_DIR/cv.txt.
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
#include <yaml.h>

#define S_CV_SEED 14                    //  mesh-nab cv: the documented default seed

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

//  Run AGENT's detector over every file of CORPUS, writing the scores under
//  OUT/LABEL/<category>/LABEL_<file>.csv.
static int
s_run_agent (const mesh_agent_config_t *agent, const s_corpus_t *corpus, const char *out,
             const char *label)
{
    mesh_detect_t *detect = mesh_detect_new (&agent->detector);
    int rc = detect ? 0 : 1;
    for (size_t f = 0; rc == 0 && f < corpus->count; f++) {
        s_file_t *file = &corpus->files[f];
        const char *slash = strchr (file->name, '/');
        char dir[4096], path[4096 + 512];
        snprintf (dir, sizeof dir, "%s/%s/%.*s", out, label,
                  slash ? (int) (slash - file->name) : 0, file->name);
        snprintf (path, sizeof path, "%s/%s_%s", dir, label, slash ? slash + 1 : file->name);
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
    return rc;
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
    int rc = s_run_agent (agent, &corpus, out, agent_name);
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

//  One detector's scored rows (past probation, finite), highest score first.
typedef struct {
    s_hit_t *hit;
    size_t count;
} s_hits_t;

//  Per row: the window it lies in (or -1) and, outside windows, its FP factor.
typedef struct {
    int *window_of;                     //  index into the corpus' window list
    double *fp;                         //  sigma (d / (W - 1)), or -1
} s_rowinfo_t;

//  What scoring needs of a corpus' labels, built once and shared by every detector,
//  threshold and subset of files scored against it.
typedef struct {
    const s_corpus_t *corpus;
    s_rowinfo_t *info;                  //  per file
    double *width;                      //  per window: rows
    size_t *end;                        //  per window: last row
    long *earliest;                     //  per window: scratch for one sweep
} s_scorer_t;

static void
s_scorer_destroy (s_scorer_t **self_p)
{
    s_scorer_t *self = *self_p;
    if (!self)
        return;
    for (size_t f = 0; self->info && f < self->corpus->count; f++) {
        free (self->info[f].window_of);
        free (self->info[f].fp);
    }
    free (self->info);
    free (self->width);
    free (self->end);
    free (self->earliest);
    free (self);
    *self_p = NULL;
}

static s_scorer_t *
s_scorer_new (const s_corpus_t *corpus)
{
    s_scorer_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->corpus = corpus;
    self->info = calloc (corpus->count + 1, sizeof *self->info);
    self->width = calloc (corpus->windows + 1, sizeof (double));
    self->end = calloc (corpus->windows + 1, sizeof (size_t));
    self->earliest = calloc (corpus->windows + 1, sizeof (long));
    if (!self->info || !self->width || !self->end || !self->earliest) {
        s_scorer_destroy (&self);
        return NULL;
    }
    size_t wbase = 0;
    for (size_t f = 0; f < corpus->count; f++) {
        const s_file_t *file = &corpus->files[f];
        s_rowinfo_t *info = &self->info[f];
        info->window_of = malloc ((file->rows + 1) * sizeof (int));
        info->fp = malloc ((file->rows + 1) * sizeof (double));
        if (!info->window_of || !info->fp) {
            s_scorer_destroy (&self);
            return NULL;
        }
        long prev = -1;                 //  the preceding window, local index
        for (size_t r = 0; r < file->rows; r++) {
            info->window_of[r] = -1;
            for (size_t w = 0; w < file->window_count; w++) {
                if (r >= file->windows[w].start && r <= file->windows[w].end)
                    info->window_of[r] = (int) (wbase + w);
                if (file->windows[w].end < r && (prev < 0
                    || file->windows[w].end > file->windows[prev].end))
                    prev = (long) w;
            }
            if (prev < 0)
                info->fp[r] = -1.0;
            else {
                double width = (double) (file->windows[prev].end - file->windows[prev].start + 1);
                double d = (double) (r - file->windows[prev].end);
                info->fp[r] = width > 1 ? s_sigma (d / (width - 1)) : -1.0;
            }
        }
        for (size_t w = 0; w < file->window_count; w++) {
            self->width[wbase + w] = (double) (file->windows[w].end
                                               - file->windows[w].start + 1);
            self->end[wbase + w] = file->windows[w].end;
        }
        wbase += file->window_count;
    }
    return self;
}

static void
s_hits_destroy (s_hits_t **self_p)
{
    if (*self_p) {
        free ((*self_p)->hit);
        free (*self_p);
        *self_p = NULL;
    }
}

//  The scored rows of SCORES (SCORES[f][r], one array per file of CORPUS), sorted.
static s_hits_t *
s_hits_new (const s_corpus_t *corpus, double *const *scores)
{
    size_t total = 0;
    for (size_t f = 0; f < corpus->count; f++)
        total += corpus->files[f].rows;
    s_hits_t *self = calloc (1, sizeof *self);
    if (self)
        self->hit = malloc ((total + 1) * sizeof *self->hit);
    if (!self || !self->hit) {
        s_hits_destroy (&self);
        return NULL;
    }
    for (size_t f = 0; f < corpus->count; f++) {
        const s_file_t *file = &corpus->files[f];
        for (size_t r = file->probation; r < file->rows; r++)
            if (isfinite (scores[f][r]))
                self->hit[self->count++] = (s_hit_t) { scores[f][r], (uint32_t) f,
                                                       (uint32_t) r };
    }
    qsort (self->hit, self->count, sizeof *self->hit, s_hit_cmp);
    return self;
}

//  Windows in the files of CORPUS with USE[f] set (USE NULL: every file).
static size_t
s_windows (const s_corpus_t *corpus, const bool *use)
{
    size_t windows = 0;
    for (size_t f = 0; f < corpus->count; f++)
        if (!use || use[f])
            windows += corpus->files[f].window_count;
    return windows;
}

//  NAB's normalisation of RAW over WINDOWS windows: null 0, perfect 100.
static double
s_normalise (double raw, size_t windows, const s_profile_t *prof)
{
    double perfect = prof->tp * (double) windows;
    double null = -prof->fn * (double) windows;
    return perfect > null ? 100.0 * (raw - null) / (perfect - null) : 0;
}

//  The raw score of HITS over the files with USE[f] set (USE NULL: every file) under
//  profile PROF.  FIXED: at the threshold *threshold_p (rows at or above it detect;
//  INFINITY detects nothing).  Otherwise at the best threshold over every distinct
//  score of those files, which is stored in *threshold_p (INFINITY when no detection
//  at all is best; ties to the higher threshold).  One pass down the sorted rows,
//  the raw score updated incrementally, so the exact optimum costs O(rows).
static double
s_sweep (s_scorer_t *self, const s_hits_t *hits, const bool *use, const s_profile_t *prof,
         bool fixed, double *threshold_p)
{
    long *earliest = self->earliest;
    double raw = -prof->fn * (double) s_windows (self->corpus, use);
    double best = raw, best_threshold = INFINITY;
    for (size_t w = 0; w < self->corpus->windows; w++)
        earliest[w] = -1;
    size_t i = 0;
    while (i < hits->count) {
        double score = hits->hit[i].score;
        if (fixed && !(score >= *threshold_p))
            break;
        for (; i < hits->count && hits->hit[i].score == score; i++) {
            const s_hit_t *hit = &hits->hit[i];
            if (use && !use[hit->file])
                continue;
            int w = self->info[hit->file].window_of[hit->row];
            if (w < 0) {
                raw += prof->fp * self->info[hit->file].fp[hit->row];
                continue;
            }
            double width = self->width[w];
            double tp = prof->tp * s_sigma (-((double) self->end[w] - hit->row + 1) / width)
                        / s_sigma (-1.0);
            if (earliest[w] < 0) {
                raw += prof->fn + tp;
                earliest[w] = hit->row;
            }
            else
            if ((long) hit->row < earliest[w]) {
                double old = prof->tp
                             * s_sigma (-((double) self->end[w] - earliest[w] + 1) / width)
                             / s_sigma (-1.0);
                raw += tp - old;
                earliest[w] = hit->row;
            }
        }
        if (!fixed && raw > best + 1e-12) {
            best = raw;
            best_threshold = score;
        }
    }
    if (fixed)
        return raw;
    *threshold_p = best_threshold;
    return best;
}

//  Score the scores loaded into CORPUS under every profile; fills result[] and
//  threshold[] (INFINITY when no detection at all is best).
static int
s_score (const s_corpus_t *corpus, double result[S_PROFILES], double threshold[S_PROFILES])
{
    double **scores = calloc (corpus->count + 1, sizeof *scores);
    for (size_t f = 0; scores && f < corpus->count; f++)
        scores[f] = corpus->files[f].score;
    s_scorer_t *scorer = s_scorer_new (corpus);
    s_hits_t *hits = scores ? s_hits_new (corpus, scores) : NULL;
    int rc = scorer && hits ? 0 : -1;
    for (int p = 0; rc == 0 && p < S_PROFILES; p++) {
        double raw = s_sweep (scorer, hits, NULL, &s_profiles[p], false, &threshold[p]);
        result[p] = s_normalise (raw, corpus->windows, &s_profiles[p]);
    }
    if (rc)
        fprintf (stderr, "mesh-nab: out of memory\n");
    s_hits_destroy (&hits);
    s_scorer_destroy (&scorer);
    free (scores);
    return rc;
}

//  Read DETECTOR's scores for every file of CORPUS from RESULTS into SCORES[f][row].
static int
s_load_scores (const s_corpus_t *corpus, const char *results, const char *detector,
               double *const *scores)
{
    for (size_t f = 0; f < corpus->count; f++) {
        const s_file_t *file = &corpus->files[f];
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
            scores[f][r] = NAN;
            if (s_field (lines[r + 1], col, field, sizeof field) && *field) {
                double v = strtod (field, &end);
                if (end != field && !*end)
                    scores[f][r] = v;
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
    double **scores = calloc (corpus.count + 1, sizeof *scores);
    for (size_t f = 0; scores && f < corpus.count; f++)
        scores[f] = corpus.files[f].score;
    int rc = scores ? 0 : 1;
    for (int d = 0; scores && d < count; d++) {
        double result[S_PROFILES], threshold[S_PROFILES];
        if (s_load_scores (&corpus, results, detectors[d], scores)
        ||  s_score (&corpus, result, threshold)) {
            rc = 1;
            continue;
        }
        printf ("%s %.2f %.2f %.2f %.9g\n", detectors[d], result[0], result[1], result[2],
                threshold[0]);
        if (getenv ("MESH_NAB_DETAIL"))
            s_detail (&corpus, threshold[0], stdout);
    }
    free (scores);
    s_corpus_free (&corpus);
    return rc;
}

//  --------------------------------------------------------------------------
//  cv: cross-validated choice of setting and threshold

#define S_MAX_FAMILIES  32              //  grid bounds: families, settings of one,
#define S_MAX_SETTINGS  16              //  members of the combination, folds of
#define S_MAX_COMBINE   8               //  either protocol
#define S_MAX_GROUPS    32              //  groups of files kept in one fold,
#define S_GROUP_FILES   8               //  files in one group
#define S_MAX_FOLDS     64
#define S_FRAGMENT      1024            //  bytes of one setting, as YAML flow text
#define S_MAX_REPEATS   16              //  k-fold repeats, each with its own seed
#define S_PROTOCOLS     (1 + S_MAX_REPEATS) //  0: leave one category out, r: k-fold repeat r

typedef struct {
    char name[64];
    char setting[S_MAX_SETTINGS][S_FRAGMENT];
    size_t count;
} s_family_t;

typedef struct {
    s_family_t family[S_MAX_FAMILIES];
    size_t count;
    size_t combine[S_MAX_COMBINE];      //  indices into family[]
    size_t combine_count;
    char group[S_MAX_GROUPS][S_GROUP_FILES][256];   //  file names ("<category>/<file>")
    size_t group_size[S_MAX_GROUPS];
    size_t group_count;
} s_grid_t;

//  One candidate a protocol may choose: a family's setting, or a combination of two
//  families' default settings.  Per protocol and fold: the best raw score on the
//  training files, the threshold that reached it, and the raw score of the held-out
//  files at that threshold.
typedef struct {
    char label[S_FRAGMENT + 64];
    double train[S_PROTOCOLS][S_MAX_FOLDS];
    double threshold[S_PROTOCOLS][S_MAX_FOLDS];
    double held[S_PROTOCOLS][S_MAX_FOLDS];
    double whole_raw, whole_threshold;  //  every file: best raw and its threshold
    double fixed_raw, fixed_threshold;  //  every file at the median k-fold threshold
    double configured_raw;              //  every file at the detector's own threshold
    double configured_threshold;        //  (detector.threshold); NAN: none (combinations)
    bool surprise;                      //  scores are surprises, -log10 (1 - score)
} s_cand_t;

//  A threshold of CAND as a score in [0,1], whatever its scale.
static double
s_shown (const s_cand_t *cand, double threshold)
{
    return cand->surprise && isfinite (threshold) ? 1.0 - pow (10.0, -threshold) : threshold;
}

typedef struct {
    size_t protocols;                   //  1 + k-fold repeats
    size_t count[S_PROTOCOLS];          //  folds of each protocol
    size_t *fold[S_PROTOCOLS];          //  per file
    char category[S_MAX_FOLDS][256];    //  loco: fold k holds category[k]
} s_folds_t;

//  A scalar as flow YAML: plain when it is a plain word, else double-quoted.
static bool
s_flow_scalar (const yaml_node_t *node, char *buf, size_t size, size_t *len)
{
    const char *text = (const char *) node->data.scalar.value;
    size_t n = node->data.scalar.length;
    bool plain = node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && n > 0;
    for (size_t i = 0; plain && i < n; i++)
        plain = strchr ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-/",
                        text[i]) && text[i];
    int wrote;
    if (plain)
        wrote = snprintf (buf + *len, size - *len, "%.*s", (int) n, text);
    else {
        json_t *string = json_stringn (text, n);
        char *quoted = string ? json_dumps (string, JSON_ENCODE_ANY) : NULL;
        json_decref (string);
        wrote = quoted ? snprintf (buf + *len, size - *len, "%s", quoted) : -1;
        free (quoted);
    }
    if (wrote < 0 || (size_t) wrote >= size - *len)
        return false;
    *len += (size_t) wrote;
    return true;
}

//  NODE of DOC as one line of flow YAML, appended to BUF; false if it does not fit.
static bool
s_flow (yaml_document_t *doc, yaml_node_t *node, char *buf, size_t size, size_t *len,
        int depth)
{
    if (!node || depth > 8)
        return false;
    if (node->type == YAML_SCALAR_NODE)
        return s_flow_scalar (node, buf, size, len);
    bool map = node->type == YAML_MAPPING_NODE;
    if (*len + 2 >= size)
        return false;
    buf[(*len)++] = map ? '{' : '[';
    if (map)
        for (yaml_node_pair_t *pair = node->data.mapping.pairs.start;
             pair < node->data.mapping.pairs.top; pair++) {
            yaml_node_t *key = yaml_document_get_node (doc, pair->key);
            if (pair > node->data.mapping.pairs.start && *len + 2 < size) {
                buf[(*len)++] = ',';
                buf[(*len)++] = ' ';
            }
            if (!key || key->type != YAML_SCALAR_NODE || !s_flow_scalar (key, buf, size, len)
            ||  *len + 2 >= size)
                return false;
            buf[(*len)++] = ':';
            buf[(*len)++] = ' ';
            if (!s_flow (doc, yaml_document_get_node (doc, pair->value), buf, size, len,
                         depth + 1))
                return false;
        }
    else
        for (yaml_node_item_t *item = node->data.sequence.items.start;
             item < node->data.sequence.items.top; item++) {
            if (item > node->data.sequence.items.start && *len + 2 < size) {
                buf[(*len)++] = ',';
                buf[(*len)++] = ' ';
            }
            if (!s_flow (doc, yaml_document_get_node (doc, *item), buf, size, len, depth + 1))
                return false;
        }
    if (*len + 2 >= size)
        return false;
    buf[(*len)++] = map ? '}' : ']';
    buf[*len] = 0;
    return true;
}

//  Load the grid: a mapping of family name -> list of detector settings (mappings,
//  the first one the family's default); optionally `combine: [family, ...]` and
//  `groups: [[file, file, ...], ...]` (files from one source, kept in one fold).
static int
s_grid_load (s_grid_t *grid, const char *path)
{
    memset (grid, 0, sizeof *grid);
    FILE *file = fopen (path, "rb");
    if (!file) {
        fprintf (stderr, "mesh-nab: cannot open %s: %s\n", path, strerror (errno));
        return -1;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize (&parser);
    yaml_parser_set_input_file (&parser, file);
    if (!yaml_parser_load (&parser, &doc)) {
        fprintf (stderr, "mesh-nab: %s:%zu:%zu: %s\n", path, parser.problem_mark.line + 1,
                 parser.problem_mark.column + 1, parser.problem ? parser.problem : "bad YAML");
        yaml_parser_delete (&parser);
        fclose (file);
        return -1;
    }
    yaml_parser_delete (&parser);
    fclose (file);
    int rc = 0;
    const char *combine[S_MAX_COMBINE];
    size_t combine_count = 0;
    yaml_node_t *root = yaml_document_get_root_node (&doc);
    if (!root || root->type != YAML_MAPPING_NODE) {
        fprintf (stderr, "mesh-nab: %s: expected a mapping of family -> list of settings\n",
                 path);
        rc = -1;
    }
    for (yaml_node_pair_t *pair = root && rc == 0 ? root->data.mapping.pairs.start : NULL;
         pair && rc == 0 && pair < root->data.mapping.pairs.top; pair++) {
        yaml_node_t *key = yaml_document_get_node (&doc, pair->key);
        yaml_node_t *value = yaml_document_get_node (&doc, pair->value);
        const char *name = key && key->type == YAML_SCALAR_NODE
                           ? (const char *) key->data.scalar.value : NULL;
        int line = key ? (int) key->start_mark.line + 1 : 0;
        if (!name || !*name || strlen (name) >= sizeof grid->family[0].name
        ||  strspn (name, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen (name)) {
            fprintf (stderr, "mesh-nab: %s:%d: a family name is 1-63 of [a-z0-9_]\n", path, line);
            rc = -1;
            break;
        }
        if (!value || value->type != YAML_SEQUENCE_NODE
        ||  value->data.sequence.items.top == value->data.sequence.items.start) {
            fprintf (stderr, "mesh-nab: %s:%d: %s: expected a non-empty list\n", path, line, name);
            rc = -1;
            break;
        }
        if (!strcmp (name, "groups")) {
            for (yaml_node_item_t *item = value->data.sequence.items.start;
                 rc == 0 && item < value->data.sequence.items.top; item++) {
                yaml_node_t *list = yaml_document_get_node (&doc, *item);
                size_t g = grid->group_count;
                if (g == S_MAX_GROUPS || !list || list->type != YAML_SEQUENCE_NODE) {
                    rc = -1;
                    break;
                }
                for (yaml_node_item_t *member = list->data.sequence.items.start;
                     rc == 0 && member < list->data.sequence.items.top; member++) {
                    yaml_node_t *file = yaml_document_get_node (&doc, *member);
                    if (grid->group_size[g] == S_GROUP_FILES || !file
                    ||  file->type != YAML_SCALAR_NODE
                    ||  file->data.scalar.length >= sizeof grid->group[0][0])
                        rc = -1;
                    else
                        snprintf (grid->group[g][grid->group_size[g]++],
                                  sizeof grid->group[0][0], "%s", file->data.scalar.value);
                }
                grid->group_count++;
            }
            if (rc)
                fprintf (stderr, "mesh-nab: %s:%d: groups: at most %d lists of at most %d "
                         "file names\n", path, line, S_MAX_GROUPS, S_GROUP_FILES);
            continue;
        }
        if (!strcmp (name, "combine")) {
            for (yaml_node_item_t *item = value->data.sequence.items.start;
                 rc == 0 && item < value->data.sequence.items.top; item++) {
                yaml_node_t *member = yaml_document_get_node (&doc, *item);
                if (!member || member->type != YAML_SCALAR_NODE
                ||  combine_count == S_MAX_COMBINE) {
                    fprintf (stderr, "mesh-nab: %s:%d: combine: at most %d family names\n",
                             path, line, S_MAX_COMBINE);
                    rc = -1;
                }
                else
                    combine[combine_count++] = (const char *) member->data.scalar.value;
            }
            continue;
        }
        if (grid->count == S_MAX_FAMILIES) {
            fprintf (stderr, "mesh-nab: %s:%d: at most %d families\n", path, line,
                     S_MAX_FAMILIES);
            rc = -1;
            break;
        }
        s_family_t *family = &grid->family[grid->count];
        for (size_t i = 0; i < grid->count; i++)
            if (!strcmp (grid->family[i].name, name)) {
                fprintf (stderr, "mesh-nab: %s:%d: family %s given twice\n", path, line, name);
                rc = -1;
            }
        snprintf (family->name, sizeof family->name, "%s", name);
        for (yaml_node_item_t *item = value->data.sequence.items.start;
             rc == 0 && item < value->data.sequence.items.top; item++) {
            yaml_node_t *setting = yaml_document_get_node (&doc, *item);
            size_t len = 0;
            if (family->count == S_MAX_SETTINGS || !setting
            ||  setting->type != YAML_MAPPING_NODE
            ||  !s_flow (&doc, setting, family->setting[family->count], S_FRAGMENT, &len, 0)) {
                fprintf (stderr, "mesh-nab: %s:%d: %s: each setting is a detector mapping "
                         "(at most %d settings, %d bytes each)\n", path,
                         setting ? (int) setting->start_mark.line + 1 : line, name,
                         S_MAX_SETTINGS, S_FRAGMENT - 1);
                rc = -1;
            }
            else
                family->count++;
        }
        grid->count++;
    }
    for (size_t m = 0; rc == 0 && m < combine_count; m++) {
        size_t i = 0;
        while (i < grid->count && strcmp (grid->family[i].name, combine[m]))
            i++;
        if (i == grid->count) {
            fprintf (stderr, "mesh-nab: %s: combine: no family named '%s'\n", path, combine[m]);
            rc = -1;
        }
        grid->combine[grid->combine_count++] = i;
    }
    if (rc == 0 && grid->count == 0) {
        fprintf (stderr, "mesh-nab: %s: no families\n", path);
        rc = -1;
    }
    yaml_document_delete (&doc);
    return rc;
}

//  splitmix64: the fold assignment is the same on every libc.
static uint64_t
s_splitmix (uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static size_t
s_category_len (const char *name)
{
    const char *slash = strchr (name, '/');
    return slash ? (size_t) (slash - name) : 0;
}

//  UNIT[f]: the first file of F's group in GRID (files from one source, kept in one
//  fold), or F itself.  A group's files must share a category; names that are not in
//  this corpus are skipped (one grid serves NAB's halves and the whole), and each
//  group as applied is listed in LOG.
static int
s_units (const s_grid_t *grid, const s_corpus_t *corpus, size_t *unit, FILE *log)
{
    bool *seen = calloc (corpus->count + 1, sizeof (bool));
    if (!seen)
        return -1;
    int rc = 0;
    for (size_t f = 0; f < corpus->count; f++)
        unit[f] = f;
    for (size_t g = 0; rc == 0 && g < grid->group_count; g++) {
        size_t first = SIZE_MAX;
        for (size_t m = 0; rc == 0 && m < grid->group_size[g]; m++) {
            const char *name = grid->group[g][m];
            size_t f = 0;
            while (f < corpus->count && strcmp (corpus->files[f].name, name))
                f++;
            if (f == corpus->count)
                continue;
            if (seen[f]) {
                fprintf (stderr, "mesh-nab: groups: %s is named twice\n", name);
                rc = -1;
                break;
            }
            seen[f] = true;
            if (first != SIZE_MAX && (s_category_len (name)
                                      != s_category_len (corpus->files[first].name)
                || strncmp (name, corpus->files[first].name, s_category_len (name)))) {
                fprintf (stderr, "mesh-nab: groups: %s and %s are in different categories\n",
                         corpus->files[first].name, name);
                rc = -1;
                break;
            }
            if (first == SIZE_MAX || f < first)
                first = f;
        }
        if (rc || first == SIZE_MAX)
            continue;
        fprintf (log, "group");
        for (size_t m = 0; m < grid->group_size[g]; m++)
            for (size_t f = 0; f < corpus->count; f++)
                if (!strcmp (corpus->files[f].name, grid->group[g][m])) {
                    unit[f] = first;
                    fprintf (log, " %s", corpus->files[f].name);
                }
        fprintf (log, "\n");
    }
    free (seen);
    return rc;
}

//  Protocol 0, leave one category out: fold k is the k-th category (categories in
//  name order).  Protocols 1..REPEATS, k-fold by file stratified by category: for
//  repeat r the units of each category (a file, or a group of files from one source,
//  UNIT; in name order) are shuffled with splitmix64 seeded SEED + r - 1 and dealt to
//  the folds in turn, the turn carried on from one category to the next, so every
//  category is spread over the folds and, without groups, fold sizes differ by at most
//  one.  None looks at labels or scores.
static int
s_folds_make (s_folds_t *folds, const s_corpus_t *corpus, const size_t *unit, size_t k,
              size_t repeats, uint64_t seed)
{
    memset (folds, 0, sizeof *folds);
    folds->protocols = 1 + repeats;
    size_t *order = calloc (corpus->count + 1, sizeof (size_t));
    int rc = order ? 0 : -1;
    for (size_t p = 0; rc == 0 && p < folds->protocols; p++)
        if (!(folds->fold[p] = calloc (corpus->count + 1, sizeof (size_t))))
            rc = -1;
    for (size_t f = 0; rc == 0 && f < corpus->count; ) {
        //  Files are in name order, so a category's files are adjacent.
        const char *name = corpus->files[f].name;
        size_t len = s_category_len (name), n = 0;
        while (f + n < corpus->count && s_category_len (corpus->files[f + n].name) == len
               && !strncmp (corpus->files[f + n].name, name, len))
            n++;
        if (folds->count[0] == S_MAX_FOLDS) {
            fprintf (stderr, "mesh-nab: more than %d categories\n", S_MAX_FOLDS);
            rc = -1;
            break;
        }
        snprintf (folds->category[folds->count[0]], sizeof folds->category[0], "%.*s",
                  (int) len, name);
        for (size_t i = 0; i < n; i++)
            folds->fold[0][f + i] = folds->count[0];
        folds->count[0]++;
        f += n;
    }
    for (size_t p = 1; rc == 0 && p < folds->protocols; p++) {
        folds->count[p] = k;
        uint64_t state = seed + p - 1;
        size_t turn = 0;
        for (size_t f = 0; f < corpus->count; ) {
            size_t n = 0, units = 0;
            while (f + n < corpus->count && folds->fold[0][f + n] == folds->fold[0][f])
                n++;
            for (size_t i = 0; i < n; i++)
                if (unit[f + i] == f + i)
                    order[units++] = f + i;
            for (size_t i = units; i > 1; i--) {
                size_t j = (size_t) (s_splitmix (&state) % i);
                size_t t = order[i - 1];
                order[i - 1] = order[j];
                order[j] = t;
            }
            for (size_t i = 0; i < units; i++)
                folds->fold[p][order[i]] = turn++ % k;
            for (size_t i = 0; i < n; i++)
                folds->fold[p][f + i] = folds->fold[p][unit[f + i]];
            f += n;
        }
    }
    free (order);
    return rc;
}

static int
s_double_cmp (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

//  Fill CAND's per-fold results for the scored rows HITS.  Training and held-out
//  files are masks over the corpus: the threshold is chosen by s_sweep over the
//  training files only, then the held-out files are scored at it.
static void
s_evaluate (s_scorer_t *scorer, const s_hits_t *hits, const s_folds_t *folds, bool *use,
            s_cand_t *cand)
{
    const s_profile_t *prof = &s_profiles[0];
    const s_corpus_t *corpus = scorer->corpus;
    for (size_t p = 0; p < folds->protocols; p++)
        for (size_t k = 0; k < folds->count[p]; k++) {
            for (size_t f = 0; f < corpus->count; f++)
                use[f] = folds->fold[p][f] != k;
            cand->train[p][k] = s_sweep (scorer, hits, use, prof, false,
                                         &cand->threshold[p][k]);
            for (size_t f = 0; f < corpus->count; f++)
                use[f] = !use[f];
            cand->held[p][k] = s_sweep (scorer, hits, use, prof, true, &cand->threshold[p][k]);
        }
    cand->whole_raw = s_sweep (scorer, hits, NULL, prof, false, &cand->whole_threshold);
    //  The one threshold to deploy: the median of the k-fold training choices (every
    //  fold of every repeat).
    double sorted[S_MAX_REPEATS * S_MAX_FOLDS];
    size_t n = 0;
    for (size_t p = 1; p < folds->protocols; p++)
        for (size_t k = 0; k < folds->count[p]; k++)
            sorted[n++] = cand->threshold[p][k];
    qsort (sorted, n, sizeof (double), s_double_cmp);
    cand->fixed_threshold = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    if (isnan (cand->fixed_threshold))  //  inf - inf: no detection is best in both
        cand->fixed_threshold = INFINITY;
    cand->fixed_raw = s_sweep (scorer, hits, NULL, prof, true, &cand->fixed_threshold);
}

//  A score in [0,1] as surprise, -log10 (1 - score), capped at 16.
static double
s_surprise (double score)
{
    if (!isfinite (score))
        return NAN;
    double tail = 1.0 - score;
    return tail < 1e-16 ? 16.0 : -log10 (tail);
}

//  Write the detector config of one setting (the skeleton of bench/nab_config.yaml,
//  one agent named "cv" with detector SETTING) to PATH.
static int
s_write_config (const char *path, const char *setting)
{
    FILE *file = fopen (path, "w");
    if (!file) {
        fprintf (stderr, "mesh-nab: cannot write %s: %s\n", path, strerror (errno));
        return -1;
    }
    fprintf (file, "kafka:\n  brokers: embedded\n"
                   "backends:\n  none:\n    kind: scripted\n    file: /dev/null\n"
                   "actions:\n  note:\n    kind: log\n"
                   "agents:\n  - {name: cv, detector: %s, topics: [nab],\n"
                   "     fields: {key: [series]}, reason: {backend: none}, actions: [note],\n"
                   "     fallback: note}\n", setting);
    if (fclose (file)) {
        fprintf (stderr, "mesh-nab: cannot write %s: %s\n", path, strerror (errno));
        return -1;
    }
    return 0;
}

static void
s_free_rows (double **rows, size_t count)
{
    for (size_t f = 0; rows && f < count; f++)
        free (rows[f]);
    free (rows);
}

static double **
s_alloc_rows (const s_corpus_t *corpus)
{
    double **rows = calloc (corpus->count + 1, sizeof *rows);
    for (size_t f = 0; rows && f < corpus->count; f++)
        if (!(rows[f] = malloc ((corpus->files[f].rows + 1) * sizeof (double)))) {
            s_free_rows (rows, corpus->count);
            return NULL;
        }
    return rows;
}

//  Run setting S of FAMILY once, into OUT/cv/<family>-<s>/, and read its scores back.
static double **
s_run_setting (const s_corpus_t *corpus, const s_family_t *family, size_t s, const char *out,
               double *threshold_p)
{
    char dir[4096], path[4096 + 256], label[128];
    snprintf (dir, sizeof dir, "%s/cv", out);
    snprintf (label, sizeof label, "%s-%zu", family->name, s);
    snprintf (path, sizeof path, "%s/%s.yaml", dir, label);
    mesh_config_t *config = NULL;
    if (s_mkdirs (dir) || s_write_config (path, family->setting[s])
    ||  mesh_config_load (path, &config, stderr)) {
        fprintf (stderr, "mesh-nab: %s: setting %zu, %s, is not a usable detector\n",
                 family->name, s, family->setting[s]);
        return NULL;
    }
    double **rows = s_alloc_rows (corpus);
    const mesh_agent_config_t *agent = mesh_config_agent (config, "cv");
    if (agent)
        *threshold_p = agent->detector.threshold;
    if (!rows || !agent || s_run_agent (agent, corpus, dir, label)
    ||  s_load_scores (corpus, dir, label, rows)) {
        s_free_rows (rows, corpus->count);
        rows = NULL;
    }
    mesh_config_destroy (&config);
    return rows;
}

//  Choose, per fold of protocol P, the candidate of CANDS[0..COUNT) with the best
//  training score (the first on ties), and return the held-out files' raw scores at
//  the chosen candidates' thresholds, summed over the folds: every file is held out
//  exactly once.  One line per fold to LOG.
static double
s_select (const s_cand_t *cands, size_t count, const s_folds_t *folds, size_t p,
          const char *family, FILE *log)
{
    char protocol[32];
    if (p == 0)
        snprintf (protocol, sizeof protocol, "loco");
    else
        snprintf (protocol, sizeof protocol, "kfold%zu", p - 1);
    double held = 0;
    for (size_t k = 0; k < folds->count[p]; k++) {
        size_t best = 0;
        for (size_t c = 1; c < count; c++)
            if (cands[c].train[p][k] > cands[best].train[p][k] + 1e-12)
                best = c;
        held += cands[best].held[p][k];
        fprintf (log, "choice %s %zu %s threshold %.17g train %.6f held %.6f setting %s\n",
                 protocol, k, family,
                 s_shown (&cands[best], cands[best].threshold[p][k]),
                 cands[best].train[p][k], cands[best].held[p][k], cands[best].label);
    }
    return held;
}

//  One table row: NAME whole cv loco gap fixed fixed_threshold configured cv_min cv_max
//  (configured NAN for none; cv the mean over the k-fold repeats, cv_min and cv_max
//  their range).  REF is the candidate scored on every file for `whole` and `fixed`.
static void
s_report (const char *name, const s_cand_t *cands, size_t count, size_t ref,
          const s_folds_t *folds, const s_corpus_t *corpus, FILE *log)
{
    const s_profile_t *prof = &s_profiles[0];
    double whole = s_normalise (cands[ref].whole_raw, corpus->windows, prof);
    double cv = 0, cv_min = INFINITY, cv_max = -INFINITY;
    for (size_t p = 1; p < folds->protocols; p++) {
        double one = s_normalise (s_select (cands, count, folds, p, name, log),
                                  corpus->windows, prof);
        cv += one / (double) (folds->protocols - 1);
        cv_min = fmin (cv_min, one);
        cv_max = fmax (cv_max, one);
    }
    double loco = s_normalise (s_select (cands, count, folds, 0, name, log), corpus->windows,
                               prof);
    double fixed = s_normalise (cands[ref].fixed_raw, corpus->windows, prof);
    fprintf (log, "whole %s threshold %.17g setting %s\n", name,
             s_shown (&cands[ref], cands[ref].whole_threshold), cands[ref].label);
    double configured = isnan (cands[ref].configured_threshold) ? NAN
                        : s_normalise (cands[ref].configured_raw, corpus->windows, prof);
    printf ("%s %.2f %.2f %.2f %.2f %.2f %.9g %.2f %.2f %.2f\n", name, whole, cv, loco,
            whole - cv, fixed, s_shown (&cands[ref], cands[ref].fixed_threshold), configured,
            cv_min, cv_max);
    fflush (stdout);
}

static int
s_cv (const char *grid_path, const char *root, const char *out, size_t k, size_t repeats,
      uint64_t seed)
{
    static s_grid_t grid;
    if (s_grid_load (&grid, grid_path))
        return 1;
    s_corpus_t corpus;
    if (s_corpus_load (&corpus, root))
        return 1;
    int rc = 0;
    if (k < 2 || k > S_MAX_FOLDS || k > corpus.count || repeats < 1
    ||  repeats > S_MAX_REPEATS) {
        fprintf (stderr, "mesh-nab: %zu folds for %zu files, %zu repeats: need 2 .. min "
                 "(files, %d) folds and 1 .. %d repeats\n", k, corpus.count, repeats,
                 S_MAX_FOLDS, S_MAX_REPEATS);
        s_corpus_free (&corpus);
        return 2;
    }
    s_folds_t folds = { 0 };
    s_scorer_t *scorer = s_scorer_new (&corpus);
    bool *use = calloc (corpus.count + 1, sizeof (bool));
    size_t *unit = calloc (corpus.count + 1, sizeof (size_t));
    double **defaults[S_MAX_FAMILIES] = { 0 };     //  each family's default setting, per row
    s_cand_t *cands = calloc (S_MAX_SETTINGS + 5 * S_MAX_COMBINE * S_MAX_COMBINE,
                              sizeof *cands);
    char path[4096 + 16];
    snprintf (path, sizeof path, "%s/cv.txt", out);
    FILE *log = s_mkdirs (out) ? NULL : fopen (path, "w");
    if (!scorer || !use || !unit || !cands || !log) {
        fprintf (stderr, "mesh-nab: cannot start: %s\n", log ? "out of memory" : path);
        rc = 1;
        goto done;
    }
    fprintf (log, "seed %llu folds %zu repeats %zu files %zu windows %zu\n",
             (unsigned long long) seed, k, repeats, corpus.count, corpus.windows);
    if (s_units (&grid, &corpus, unit, log)
    ||  s_folds_make (&folds, &corpus, unit, k, repeats, seed)) {
        rc = 1;
        goto done;
    }
    //  file NAME loco L kfold K0 K1 ... (one fold per repeat)
    for (size_t f = 0; f < corpus.count; f++) {
        fprintf (log, "file %s loco %zu kfold", corpus.files[f].name, folds.fold[0][f]);
        for (size_t p = 1; p < folds.protocols; p++)
            fprintf (log, " %zu", folds.fold[p][f]);
        fprintf (log, "\n");
    }
    for (size_t i = 0; rc == 0 && i < grid.count; i++) {
        const s_family_t *family = &grid.family[i];
        for (size_t s = 0; rc == 0 && s < family->count; s++) {
            double configured = NAN;
            double **rows = s_run_setting (&corpus, family, s, out, &configured);
            s_hits_t *hits = rows ? s_hits_new (&corpus, rows) : NULL;
            if (!hits) {
                s_free_rows (rows, corpus.count);
                rc = 1;
                break;
            }
            memset (&cands[s], 0, sizeof cands[s]);
            snprintf (cands[s].label, sizeof cands[s].label, "%s", family->setting[s]);
            s_evaluate (scorer, hits, &folds, use, &cands[s]);
            cands[s].configured_threshold = configured;
            cands[s].configured_raw = s_sweep (scorer, hits, NULL, &s_profiles[0], true,
                                               &cands[s].configured_threshold);
            s_hits_destroy (&hits);
            if (s == 0)
                defaults[i] = rows;
            else
                s_free_rows (rows, corpus.count);
        }
        if (rc == 0)
            s_report (family->name, cands, family->count, 0, &folds, &corpus, log);
    }
    //  The combination: each member alone, and every pair (a, b) as the weighted mean
    //  of their surprises, w a + (1 - w) b for w in 1/4, 1/2, 3/4, or their maximum.
    size_t count = 0;
    double **rows = grid.combine_count && rc == 0 ? s_alloc_rows (&corpus) : NULL;
    if (grid.combine_count && rc == 0 && !rows) {
        fprintf (stderr, "mesh-nab: out of memory\n");
        rc = 1;
    }
    for (size_t a = 0; rows && rc == 0 && a < grid.combine_count; a++)
        for (size_t b = a; rc == 0 && b < grid.combine_count; b++)
            for (int mode = 0; rc == 0 && mode < (a == b ? 1 : 4); mode++) {
                double w = mode == 3 ? 0 : 0.25 * (mode + 1);
                const char *an = grid.family[grid.combine[a]].name;
                const char *bn = grid.family[grid.combine[b]].name;
                double **ra = defaults[grid.combine[a]], **rb = defaults[grid.combine[b]];
                memset (&cands[count], 0, sizeof cands[count]);
                if (a == b)
                    snprintf (cands[count].label, sizeof cands[0].label, "%s", an);
                else
                if (mode == 3)
                    snprintf (cands[count].label, sizeof cands[0].label, "max(%s,%s)", an, bn);
                else
                    snprintf (cands[count].label, sizeof cands[0].label, "%.2f*%s+%.2f*%s",
                              w, an, 1 - w, bn);
                for (size_t f = 0; f < corpus.count; f++)
                    for (size_t r = 0; r < corpus.files[f].rows; r++) {
                        double x = s_surprise (ra[f][r]), y = s_surprise (rb[f][r]);
                        rows[f][r] = a == b ? x : mode == 3 ? fmax (x, y) : w * x + (1 - w) * y;
                    }
                s_hits_t *hits = s_hits_new (&corpus, rows);
                if (!hits) {
                    fprintf (stderr, "mesh-nab: out of memory\n");
                    rc = 1;
                    break;
                }
                s_evaluate (scorer, hits, &folds, use, &cands[count]);
                cands[count].surprise = true;
                cands[count].configured_threshold = NAN;
                s_hits_destroy (&hits);
                count++;
            }
    if (rows && rc == 0) {
        size_t ref = 0;
        for (size_t c = 1; c < count; c++)
            if (cands[c].whole_raw > cands[ref].whole_raw + 1e-12)
                ref = c;
        s_report ("combination", cands, count, ref, &folds, &corpus, log);
    }
    s_free_rows (rows, corpus.count);
done:
    if (log && fclose (log)) {
        fprintf (stderr, "mesh-nab: cannot write %s\n", path);
        rc = 1;
    }
    for (size_t i = 0; i < S_MAX_FAMILIES; i++)
        s_free_rows (defaults[i], corpus.count);
    for (int p = 0; p < S_PROTOCOLS; p++)
        free (folds.fold[p]);
    free (cands);
    free (unit);
    free (use);
    s_scorer_destroy (&scorer);
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
    if (argc >= 5 && !strcmp (argv[1], "cv")) {
        unsigned long long seed = S_CV_SEED, folds = 5, repeats = 1;
        int i = 2;
        bool ok = true;
        while (ok && i + 1 < argc && !strncmp (argv[i], "--", 2)) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull (argv[i + 1], &end, 10);
            ok = !errno && end != argv[i + 1] && !*end && argv[i + 1][0] != '-';
            if (ok && !strcmp (argv[i], "--seed"))
                seed = v;
            else
            if (ok && !strcmp (argv[i], "--folds"))
                folds = v;
            else
            if (ok && !strcmp (argv[i], "--repeats"))
                repeats = v;
            else
                ok = false;
            i += 2;
        }
        if (ok && argc - i == 3)
            return s_cv (argv[i], argv[i + 1], argv[i + 2], (size_t) folds, (size_t) repeats,
                         seed);
    }
    fprintf (stderr, "usage: mesh-nab run CONFIG AGENT NAB_ROOT OUT_DIR\n"
                     "       mesh-nab score NAB_ROOT RESULTS_DIR DETECTOR...\n"
                     "       mesh-nab cv [--seed N] [--folds K] [--repeats R] GRID NAB_ROOT OUT_DIR\n");
    return 2;
}

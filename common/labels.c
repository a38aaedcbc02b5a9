/*  labels - load a generator's labels file and score incidents against it.
 *
 *  The file is small (one entry per injected anomaly) but the incidents fed to
 *  the scorer may be many, so the windows are sorted by series once at load and
 *  each incident finds its series by binary search.  Every window of the series
 *  that contains the incident (with the tolerance) is marked hit: two overlapping
 *  windows are both found by one incident.
 *
 *  The loader is strict, because a silently half-read labels file would make the
 *  demo report a wrong precision: every anomaly needs a string series, a string
 *  kind, and integer start_ms <= end_ms; step_s is a positive integer; events a
 *  non-negative integer.  Unknown keys are ignored (the generator may add detail,
 *  such as each anomaly's size in sigmas).
 */
#include "labels.h"
#include "log.h"

#include <assert.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define S_TOLERANCE_STEPS 3
#define S_STEP_MAX        (366 * 86400)   //  a year: keeps the tolerance from overflowing

typedef struct {
    char *series;
    int64_t start_ms, end_ms;
    bool hit;
} s_window_t;

struct _mesh_labels_t {
    int64_t step_s;
    uint64_t events, malformed;
    s_window_t *windows;                //  sorted by series, then start_ms
    size_t count;
};

static int
s_window_cmp (const void *a, const void *b)
{
    const s_window_t *x = a, *y = b;
    int c = strcmp (x->series, y->series);
    if (c)
        return c;
    return (x->start_ms > y->start_ms) - (x->start_ms < y->start_ms);
}

//  Integer member KEY of OBJ into *out; 0, or -1 (logged) if missing or not an integer.
static int
s_integer (const char *path, json_t *obj, const char *key, const char *where, json_int_t *out)
{
    json_t *v = json_object_get (obj, key);
    if (!json_is_integer (v)) {
        mesh_err ("labels: %s: %s%s\"%s\" must be an integer", path, where ? where : "",
                  where ? ": " : "", key);
        return -1;
    }
    *out = json_integer_value (v);
    return 0;
}

mesh_labels_t *
mesh_labels_load (const char *path)
{
    assert (path);
    json_error_t error;
    json_t *root = json_load_file (path, JSON_REJECT_DUPLICATES, &error);
    if (!root) {
        if (error.line > 0)
            mesh_err ("labels: %s:%d:%d: %s", path, error.line, error.column, error.text);
        else
            mesh_err ("labels: %s", error.text);        //  jansson names the file here
        return NULL;
    }
    mesh_labels_t *self = calloc (1, sizeof *self);
    if (!self) {
        mesh_err ("labels: out of memory");
        json_decref (root);
        return NULL;
    }
    json_int_t step_s, events, malformed = 0;
    json_t *anomalies = json_object_get (root, "anomalies");
    if (!json_is_object (root)) {
        mesh_err ("labels: %s: expected a JSON object at the top", path);
        goto fail;
    }
    if (s_integer (path, root, "step_s", NULL, &step_s) || s_integer (path, root, "events",
                                                                      NULL, &events))
        goto fail;
    if (json_object_get (root, "malformed")
        && s_integer (path, root, "malformed", NULL, &malformed))
        goto fail;
    if (step_s <= 0 || step_s > S_STEP_MAX || events < 0 || malformed < 0) {
        mesh_err ("labels: %s: step_s must be from 1 to %d, events and malformed not negative",
                  path, S_STEP_MAX);
        goto fail;
    }
    if (!json_is_array (anomalies)) {
        mesh_err ("labels: %s: \"anomalies\" must be an array", path);
        goto fail;
    }
    self->step_s = step_s;
    self->events = (uint64_t) events;
    self->malformed = (uint64_t) malformed;
    size_t count = json_array_size (anomalies);
    if (count > 0) {
        self->windows = calloc (count, sizeof *self->windows);
        if (!self->windows) {
            mesh_err ("labels: out of memory");
            goto fail;
        }
    }
    for (size_t i = 0; i < count; i++) {
        json_t *a = json_array_get (anomalies, i);
        char where[48];
        snprintf (where, sizeof where, "anomalies[%zu]", i);
        json_int_t start, end;
        if (!json_is_object (a)) {
            mesh_err ("labels: %s: %s must be an object", path, where);
            goto fail;
        }
        json_t *series = json_object_get (a, "series");
        if (!json_is_string (series) || !json_is_string (json_object_get (a, "kind"))) {
            mesh_err ("labels: %s: %s: \"series\" and \"kind\" must be strings", path, where);
            goto fail;
        }
        if (s_integer (path, a, "start_ms", where, &start)
            || s_integer (path, a, "end_ms", where, &end))
            goto fail;
        if (end < start) {
            mesh_err ("labels: %s: %s: end_ms is before start_ms", path, where);
            goto fail;
        }
        self->windows[i].series = strdup (json_string_value (series));
        if (!self->windows[i].series) {
            mesh_err ("labels: out of memory");
            goto fail;
        }
        self->windows[i].start_ms = start;
        self->windows[i].end_ms = end;
        self->count = i + 1;
    }
    if (self->count > 1)
        qsort (self->windows, self->count, sizeof *self->windows, s_window_cmp);
    json_decref (root);
    return self;
fail:
    json_decref (root);
    mesh_labels_destroy (&self);
    return NULL;
}

void
mesh_labels_destroy (mesh_labels_t **self_p)
{
    assert (self_p);
    mesh_labels_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->count; i++)
        free (self->windows[i].series);
    free (self->windows);
    free (self);
    *self_p = NULL;
}

void
mesh_labels_score_begin (mesh_labels_t *self, mesh_labels_score_t *s)
{
    assert (self);
    assert (s);
    memset (s, 0, sizeof *s);
    s->windows = self->count;
    for (size_t i = 0; i < self->count; i++)
        self->windows[i].hit = false;
}

void
mesh_labels_score_add (mesh_labels_t *self, mesh_labels_score_t *s, const char *series,
                       int64_t ts_ms)
{
    assert (self);
    assert (s);
    assert (series);
    s->incidents++;
    //  First window of SERIES (lower bound).
    size_t lo = 0, hi = self->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp (self->windows[mid].series, series) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    int64_t tolerance = mesh_labels_tolerance_ms (self);
    bool matched = false;
    for (size_t i = lo; i < self->count && strcmp (self->windows[i].series, series) == 0; i++) {
        s_window_t *w = &self->windows[i];
        //  An unsigned difference rather than end_ms + tolerance, which could overflow.
        if (ts_ms >= w->start_ms
            && (ts_ms <= w->end_ms
                || (uint64_t) ts_ms - (uint64_t) w->end_ms <= (uint64_t) tolerance)) {
            w->hit = true;
            matched = true;
        }
    }
    if (matched)
        s->true_incidents++;
}

void
mesh_labels_score_end (mesh_labels_t *self, mesh_labels_score_t *s)
{
    assert (self);
    assert (s);
    s->windows = self->count;
    s->windows_hit = 0;
    for (size_t i = 0; i < self->count; i++)
        if (self->windows[i].hit)
            s->windows_hit++;
    s->precision = s->incidents ? (double) s->true_incidents / (double) s->incidents : 0;
    s->recall = s->windows ? (double) s->windows_hit / (double) s->windows : 0;
}

uint64_t
mesh_labels_events (const mesh_labels_t *self)
{
    assert (self);
    return self->events;
}

uint64_t
mesh_labels_malformed (const mesh_labels_t *self)
{
    assert (self);
    return self->malformed;
}

uint64_t
mesh_labels_windows (const mesh_labels_t *self)
{
    assert (self);
    return self->count;
}

int64_t
mesh_labels_tolerance_ms (const mesh_labels_t *self)
{
    assert (self);
    return self->step_s * 1000 * S_TOLERANCE_STEPS;
}

/*  ratelog - repeated problems, counted per kind, logged at most once per interval.
 *
 *  The first hit of a kind that has been quiet for an interval is logged at once
 *  with its detail (an operator sees the first sign of trouble without delay);
 *  later hits only count, and mesh_ratelog_tick writes one summary line per kind
 *  and interval ("1234 more ... in the last 10 s (total 1235); last: ...").  A
 *  flood of any size therefore costs two lines per interval per kind.  The table
 *  is a small fixed array: kinds are a handful of static strings chosen by the
 *  code, never by a peer.
 */
#include "ratelog.h"
#include "log.h"

#include <czmq.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define S_KINDS 16

typedef struct {
    const char *kind;
    int64_t total, pending, last_line;
    char last[256];
} s_kind_t;

struct _mesh_ratelog_t {
    int interval_ms;
    s_kind_t kinds[S_KINDS];
};

mesh_ratelog_t *
mesh_ratelog_new (int interval_ms)
{
    mesh_ratelog_t *self = calloc (1, sizeof *self);
    self->interval_ms = interval_ms > 0 ? interval_ms : 10000;
    return self;
}

void
mesh_ratelog_destroy (mesh_ratelog_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free (*self_p);
    *self_p = NULL;
}

static s_kind_t *
s_kind (mesh_ratelog_t *self, const char *kind, bool create)
{
    for (int i = 0; i < S_KINDS; i++) {
        s_kind_t *k = &self->kinds[i];
        if (k->kind && strcmp (k->kind, kind) == 0)
            return k;
        if (!k->kind && create) {
            k->kind = kind;
            k->last_line = INT64_MIN / 2;
            return k;
        }
    }
    return create ? &self->kinds[S_KINDS - 1] : NULL;   //  full: the last slot pools them
}

void
mesh_ratelog_hit (mesh_ratelog_t *self, const char *kind, const char *fmt, ...)
{
    s_kind_t *k = s_kind (self, kind, true);
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (k->last, sizeof k->last, fmt, ap);
    va_end (ap);
    k->total++;
    int64_t now = zclock_mono ();
    if (k->pending == 0 && now - k->last_line >= self->interval_ms) {
        mesh_warn ("%s: %s (further ones are counted, and summed up at most every %d s)",
                   k->kind, k->last, self->interval_ms / 1000);
        k->last_line = now;
    }
    else
        k->pending++;
}

void
mesh_ratelog_tick (mesh_ratelog_t *self)
{
    int64_t now = zclock_mono ();
    for (int i = 0; i < S_KINDS && self->kinds[i].kind; i++) {
        s_kind_t *k = &self->kinds[i];
        if (k->pending == 0 || now - k->last_line < self->interval_ms)
            continue;
        mesh_warn ("%s: %lld more in the last %lld s (total %lld); last: %s", k->kind,
                   (long long) k->pending, (long long) ((now - k->last_line) / 1000),
                   (long long) k->total, k->last);
        k->pending = 0;
        k->last_line = now;
    }
}

json_t *
mesh_ratelog_counts (mesh_ratelog_t *self)
{
    json_t *counts = json_object ();
    for (int i = 0; i < S_KINDS && self->kinds[i].kind; i++)
        json_object_set_new (counts, self->kinds[i].kind, json_integer (self->kinds[i].total));
    return counts;
}

int64_t
mesh_ratelog_total (mesh_ratelog_t *self, const char *kind)
{
    s_kind_t *k = s_kind (self, kind, false);
    return k ? k->total : 0;
}

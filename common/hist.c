/*  hist - fixed-bucket histograms (see hist.h). */
#include "hist.h"

#include <math.h>
#include <string.h>

const double mesh_hist_bounds[MESH_HIST_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

void
mesh_hist_observe (mesh_hist_t *self, double seconds)
{
    if (!(seconds > 0))
        seconds = 0;
    size_t i = 0;
    while (i < MESH_HIST_BUCKETS && seconds > mesh_hist_bounds[i])
        i++;
    self->slot[i]++;
    self->sum += seconds;
}

void
mesh_hist_add (mesh_hist_t *self, const mesh_hist_t *other)
{
    for (size_t i = 0; i <= MESH_HIST_BUCKETS; i++)
        self->slot[i] += other->slot[i];
    self->sum += other->sum;
}

uint64_t
mesh_hist_count (const mesh_hist_t *self)
{
    uint64_t n = 0;
    for (size_t i = 0; i <= MESH_HIST_BUCKETS; i++)
        n += self->slot[i];
    return n;
}

json_t *
mesh_hist_json (const mesh_hist_t *self)
{
    json_t *array = json_array ();
    for (size_t i = 0; i <= MESH_HIST_BUCKETS; i++)
        json_array_append_new (array, json_integer ((json_int_t) self->slot[i]));
    json_array_append_new (array, json_real (self->sum));
    return array;
}

int
mesh_hist_from_json (mesh_hist_t *self, const json_t *array)
{
    if (!json_is_array (array) || json_array_size (array) != MESH_HIST_BUCKETS + 2)
        return -1;
    mesh_hist_t h;
    memset (&h, 0, sizeof h);
    for (size_t i = 0; i <= MESH_HIST_BUCKETS; i++) {
        json_t *n = json_array_get (array, i);
        if (!json_is_integer (n) || json_integer_value (n) < 0)
            return -1;
        h.slot[i] = (uint64_t) json_integer_value (n);
    }
    json_t *sum = json_array_get (array, MESH_HIST_BUCKETS + 1);
    if (!json_is_number (sum) || !(json_number_value (sum) >= 0) || isinf (json_number_value (sum)))
        return -1;
    h.sum = json_number_value (sum);
    *self = h;
    return 0;
}

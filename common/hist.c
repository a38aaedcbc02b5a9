/*  hist - fixed-bucket histograms (see hist.h). */
#include "hist.h"

#include <math.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

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

static pthread_mutex_t s_global_lock = PTHREAD_MUTEX_INITIALIZER;
static mesh_hist_t s_global[MESH_HIST_GLOBAL_COUNT_];
static const char *const s_global_names[MESH_HIST_GLOBAL_COUNT_] = {"gate_seconds",
                                                                    "reservation_seconds"};

const char *
mesh_hist_global_name (mesh_hist_global_t which)
{
    return which < MESH_HIST_GLOBAL_COUNT_ ? s_global_names[which] : "?";
}

void
mesh_hist_global_observe (mesh_hist_global_t which, double seconds)
{
    if (which >= MESH_HIST_GLOBAL_COUNT_)
        return;
    pthread_mutex_lock (&s_global_lock);
    mesh_hist_observe (&s_global[which], seconds);
    pthread_mutex_unlock (&s_global_lock);
}

json_t *
mesh_hist_global_json (void)
{
    mesh_hist_t copy[MESH_HIST_GLOBAL_COUNT_];
    pthread_mutex_lock (&s_global_lock);
    memcpy (copy, s_global, sizeof copy);
    pthread_mutex_unlock (&s_global_lock);
    json_t *all = json_object ();
    for (int i = 0; i < MESH_HIST_GLOBAL_COUNT_; i++)
        json_object_set_new (all, s_global_names[i], mesh_hist_json (&copy[i]));
    return all;
}

double
mesh_hist_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

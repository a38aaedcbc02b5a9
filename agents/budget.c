/*  budget - the agent's token budget (see budget.h).
 *
 *  Two counters per window: `settled` (tokens the server said it spent) and
 *  `outstanding` (reservations not yet settled).  A grant needs settled +
 *  outstanding + n <= limit, all under one mutex, which is what keeps concurrent
 *  workers from overshooting: the only way past the limit is a server reporting more
 *  than was reserved, and then the real figure is what we count.
 *
 *  The window starts at the first reservation and advances in whole multiples of its
 *  length, so windows stay aligned however long the agent was idle.
 */
#include "budget.h"
#include "log.h"

#include <assert.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct _mesh_budget_t {
    pthread_mutex_t mutex;
    long limit;
    int64_t window_ms;
    bool started;                   //  a window exists (after the first reservation)
    int64_t window_start;           //  ms, on the budget's clock
    long settled;                   //  settled in the current window
    long outstanding;               //  reserved, not yet settled
    mesh_budget_clock_fn *clock;
    void *clock_arg;
};

static int64_t
s_monotonic_ms (void *arg)
{
    (void) arg;
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

mesh_budget_t *
mesh_budget_new (long tokens, int window_s)
{
    if (tokens < 1 || window_s < 1) {
        mesh_err ("budget: need tokens >= 1 and window >= 1 s, got %ld tokens per %d s",
                  tokens, window_s);
        return NULL;
    }
    mesh_budget_t *self = calloc (1, sizeof *self);
    if (!self) {
        mesh_err ("budget: out of memory");
        return NULL;
    }
    pthread_mutex_init (&self->mutex, NULL);
    self->limit = tokens;
    self->window_ms = (int64_t) window_s * 1000;
    self->clock = s_monotonic_ms;
    return self;
}

void
mesh_budget_destroy (mesh_budget_t **self_p)
{
    assert (self_p);
    mesh_budget_t *self = *self_p;
    if (!self)
        return;
    pthread_mutex_destroy (&self->mutex);
    free (self);
    *self_p = NULL;
}

void
mesh_budget_set_clock (mesh_budget_t *self, mesh_budget_clock_fn *fn, void *arg)
{
    assert (self);
    pthread_mutex_lock (&self->mutex);
    self->clock = fn ? fn : s_monotonic_ms;
    self->clock_arg = fn ? arg : NULL;
    pthread_mutex_unlock (&self->mutex);
}

//  Advance to the window that holds now.  Caller holds the mutex.
static void
s_roll (mesh_budget_t *self)
{
    if (!self->started)
        return;
    int64_t now = self->clock (self->clock_arg);
    int64_t elapsed = now - self->window_start;
    if (elapsed < self->window_ms)
        return;
    self->window_start += (elapsed / self->window_ms) * self->window_ms;
    self->settled = 0;
    //  Outstanding reservations are carried over: those calls spend their tokens now.
}

bool
mesh_budget_reserve (mesh_budget_t *self, long n)
{
    assert (self);
    if (n < 0)
        return false;
    pthread_mutex_lock (&self->mutex);
    if (!self->started) {
        self->started = true;
        self->window_start = self->clock (self->clock_arg);
    }
    s_roll (self);
    bool grant = self->settled + self->outstanding <= self->limit - n;
    if (grant)
        self->outstanding += n;
    pthread_mutex_unlock (&self->mutex);
    return grant;
}

void
mesh_budget_settle (mesh_budget_t *self, long reserved, long used)
{
    assert (self);
    if (reserved < 0)
        reserved = 0;
    if (used < 0)
        used = 0;
    pthread_mutex_lock (&self->mutex);
    s_roll (self);
    self->outstanding -= reserved;
    if (self->outstanding < 0)
        self->outstanding = 0;      //  a settle without its reservation: never go negative
    //  Saturate: a server reporting absurd usage must not wrap the counter around.
    self->settled = (used > LONG_MAX / 2 - self->settled) ? LONG_MAX / 2 : self->settled + used;
    pthread_mutex_unlock (&self->mutex);
}

long
mesh_budget_used (mesh_budget_t *self)
{
    assert (self);
    pthread_mutex_lock (&self->mutex);
    s_roll (self);
    long used = self->settled + self->outstanding;
    pthread_mutex_unlock (&self->mutex);
    return used;
}

long
mesh_budget_limit (const mesh_budget_t *self)
{
    assert (self);
    return self->limit;         //  immutable after new: no lock needed
}

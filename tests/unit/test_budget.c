/*  test_budget - the agent's token budget: reserve, settle, refund, windows, threads.
 *
 *  The clock is the test's own (mesh_budget_set_clock), so window roll-over is
 *  tested without sleeping.  The thread test checks the invariant the budget exists
 *  for: whatever the interleaving, the tokens granted never exceed the limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "budget.h"

#include <pthread.h>
#include <stdatomic.h>

static int64_t s_now_ms;

static int64_t
s_clock (void *arg)
{
    (void) arg;
    return s_now_ms;
}

static void
test_new_rejects_bad_limits (void **state)
{
    (void) state;
    assert_null (mesh_budget_new (0, 60));
    assert_null (mesh_budget_new (-5, 60));
    assert_null (mesh_budget_new (100, 0));
    mesh_budget_t *budget = mesh_budget_new (100, 60);
    assert_non_null (budget);
    assert_int_equal (mesh_budget_limit (budget), 100);
    assert_int_equal (mesh_budget_used (budget), 0);
    mesh_budget_destroy (&budget);
    assert_null (budget);
    mesh_budget_destroy (&budget);      //  safe on NULL
}

static void
test_reserve_settle_refund (void **state)
{
    (void) state;
    mesh_budget_t *budget = mesh_budget_new (1000, 60);
    assert_true (mesh_budget_reserve (budget, 400));
    assert_int_equal (mesh_budget_used (budget), 400);     //  outstanding counts
    mesh_budget_settle (budget, 400, 150);                   //  250 refunded
    assert_int_equal (mesh_budget_used (budget), 150);
    assert_true (mesh_budget_reserve (budget, 850));         //  exactly up to the limit
    assert_int_equal (mesh_budget_used (budget), 1000);
    assert_false (mesh_budget_reserve (budget, 1));
    mesh_budget_settle (budget, 850, 0);                     //  nothing spent: all back
    assert_int_equal (mesh_budget_used (budget), 150);
    assert_false (mesh_budget_reserve (budget, -1));         //  nonsense is refused
    assert_true (mesh_budget_reserve (budget, 0));
    mesh_budget_destroy (&budget);
}

static void
test_exceed_and_over_report (void **state)
{
    (void) state;
    mesh_budget_t *budget = mesh_budget_new (500, 60);
    assert_false (mesh_budget_reserve (budget, 501));        //  larger than the whole budget
    assert_int_equal (mesh_budget_used (budget), 0);         //  a refusal reserves nothing
    assert_true (mesh_budget_reserve (budget, 300));
    mesh_budget_settle (budget, 300, 450);                   //  server reported more: counted
    assert_int_equal (mesh_budget_used (budget), 450);
    assert_false (mesh_budget_reserve (budget, 51));
    assert_true (mesh_budget_reserve (budget, 50));
    mesh_budget_settle (budget, 50, 200);
    assert_int_equal (mesh_budget_used (budget), 650);       //  past the limit, honestly
    assert_false (mesh_budget_reserve (budget, 0));            //  over the limit: nothing at all
    //  Settling more than was ever reserved never drives the outstanding count negative.
    mesh_budget_settle (budget, 10000, 0);
    assert_int_equal (mesh_budget_used (budget), 650);
    mesh_budget_destroy (&budget);
}

static void
test_window_roll (void **state)
{
    (void) state;
    s_now_ms = 1000000;
    mesh_budget_t *budget = mesh_budget_new (100, 10);
    mesh_budget_set_clock (budget, s_clock, NULL);
    //  The window starts at the first reservation: t = 1000 s .. 1010 s.
    assert_true (mesh_budget_reserve (budget, 100));
    mesh_budget_settle (budget, 100, 100);
    assert_false (mesh_budget_reserve (budget, 1));
    s_now_ms += 9999;                                        //  still the same window
    assert_false (mesh_budget_reserve (budget, 1));
    assert_int_equal (mesh_budget_used (budget), 100);
    s_now_ms += 1;                                           //  next window
    assert_int_equal (mesh_budget_used (budget), 0);
    assert_true (mesh_budget_reserve (budget, 60));
    //  Idle for several windows: windows stay aligned to the first one (1030 s .. 1040 s).
    s_now_ms = 1000000 + 35000;
    //  The 60 reserved in an earlier window are still outstanding: carried over.
    assert_int_equal (mesh_budget_used (budget), 60);
    mesh_budget_settle (budget, 60, 20);
    assert_int_equal (mesh_budget_used (budget), 20);
    assert_true (mesh_budget_reserve (budget, 80));
    mesh_budget_settle (budget, 80, 80);
    s_now_ms = 1000000 + 39999;                              //  same window as 1035 s
    assert_false (mesh_budget_reserve (budget, 1));
    s_now_ms = 1000000 + 40000;
    assert_true (mesh_budget_reserve (budget, 100));
    mesh_budget_destroy (&budget);
}

//  Threads hammer one budget; each grant is settled with its full reservation, so the
//  total granted must never exceed the limit, and exactly the limit is reachable.
#define THREADS 8
#define ROUNDS  2000

typedef struct {
    mesh_budget_t *budget;
    atomic_long granted;
    atomic_long refused;
} s_shared_t;

static void *
s_worker (void *arg)
{
    s_shared_t *shared = arg;
    for (int i = 0; i < ROUNDS; i++) {
        long n = 1 + (i % 7);
        if (mesh_budget_reserve (shared->budget, n)) {
            atomic_fetch_add (&shared->granted, n);
            //  Half of the calls spend everything, half spend nothing (refund).
            mesh_budget_settle (shared->budget, n, (i % 2) ? n : 0);
            if (i % 2 == 0)
                atomic_fetch_sub (&shared->granted, n);
        }
        else
            atomic_fetch_add (&shared->refused, 1);
    }
    return NULL;
}

static void
test_concurrent_never_exceeds (void **state)
{
    (void) state;
    const long limit = 5000;
    s_shared_t shared = { .budget = mesh_budget_new (limit, 3600) };
    atomic_init (&shared.granted, 0);
    atomic_init (&shared.refused, 0);
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal (pthread_create (&threads[i], NULL, s_worker, &shared), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join (threads[i], NULL);
    long granted = atomic_load (&shared.granted);
    long used = mesh_budget_used (shared.budget);
    assert_int_equal (used, granted);                        //  bookkeeping agrees
    assert_true (used <= limit);
    //  The demand (8 threads x ~4000 spent tokens) is far above the limit: some refused,
    //  and nearly all the budget was handed out.
    assert_true (atomic_load (&shared.refused) > 0);
    assert_true (used > limit - 7);
    mesh_budget_destroy (&shared.budget);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_new_rejects_bad_limits),
        cmocka_unit_test (test_reserve_settle_refund),
        cmocka_unit_test (test_exceed_and_over_report),
        cmocka_unit_test (test_window_roll),
        cmocka_unit_test (test_concurrent_never_exceeds),
    };
    return cmocka_run_group_tests_name ("budget", tests, NULL, NULL);
}

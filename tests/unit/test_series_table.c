/*  test_series_table - the bounded LRU table shared by detect and incident.
 *
 *  Usage example: touch a key to get (or create) its state block; the table keeps
 *  at most max_entries keys and evicts the least recently touched one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "series_table.h"

#include <stdalign.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    uint64_t counter;
    double x;
} value_t;

static void
test_new_rejects_zero_sizes (void **state)
{
    assert_null (mesh_series_table_new (0, sizeof (value_t)));
    assert_null (mesh_series_table_new (10, 0));
    mesh_series_table_t *t = mesh_series_table_new (1, 1);
    assert_non_null (t);
    mesh_series_table_destroy (&t);
    assert_null (t);
    mesh_series_table_destroy (&t);     //  safe on NULL
}

static void
test_touch_creates_zeroed_then_finds (void **state)
{
    mesh_series_table_t *t = mesh_series_table_new (8, sizeof (value_t));
    bool created = false;
    value_t *v = mesh_series_table_touch (t, "web-1/cpu", &created);
    assert_non_null (v);
    assert_true (created);
    assert_int_equal (v->counter, 0);
    assert_true (v->x == 0.0);
    assert_int_equal ((uintptr_t) v % alignof (max_align_t), 0);
    v->counter = 7;
    value_t *again = mesh_series_table_touch (t, "web-1/cpu", &created);
    assert_ptr_equal (again, v);
    assert_false (created);
    assert_int_equal (again->counter, 7);
    //  Keys that share a prefix or differ only in length are different keys.
    assert_null (mesh_series_table_lookup (t, "web-1/cp"));
    assert_null (mesh_series_table_lookup (t, "web-1/cpu "));
    assert_null (mesh_series_table_lookup (t, ""));
    assert_non_null (mesh_series_table_touch (t, "", &created));
    assert_true (created);
    assert_int_equal (mesh_series_table_size (t), 2);
    assert_int_equal (mesh_series_table_evictions (t), 0);
    mesh_series_table_destroy (&t);
}

static void
test_evicts_least_recently_used (void **state)
{
    mesh_series_table_t *t = mesh_series_table_new (3, sizeof (value_t));
    ((value_t *) mesh_series_table_touch (t, "a", NULL))->counter = 1;
    ((value_t *) mesh_series_table_touch (t, "b", NULL))->counter = 2;
    ((value_t *) mesh_series_table_touch (t, "c", NULL))->counter = 3;
    //  Touch a: b is now the oldest.  lookup must not change recency.
    mesh_series_table_touch (t, "a", NULL);
    assert_non_null (mesh_series_table_lookup (t, "b"));
    mesh_series_table_touch (t, "d", NULL);
    assert_int_equal (mesh_series_table_size (t), 3);
    assert_int_equal (mesh_series_table_evictions (t), 1);
    assert_null (mesh_series_table_lookup (t, "b"));
    assert_int_equal (((value_t *) mesh_series_table_lookup (t, "a"))->counter, 1);
    assert_int_equal (((value_t *) mesh_series_table_lookup (t, "c"))->counter, 3);
    //  b comes back as a new, zeroed entry and pushes out c (now the oldest).
    bool created = false;
    value_t *b = mesh_series_table_touch (t, "b", &created);
    assert_true (created);
    assert_int_equal (b->counter, 0);
    assert_null (mesh_series_table_lookup (t, "c"));
    assert_int_equal (mesh_series_table_evictions (t), 2);
    mesh_series_table_destroy (&t);
}

static void
test_many_keys_keep_the_newest (void **state)
{
    //  Crosses several bucket-array doublings and then evicts steadily.
    mesh_series_table_t *t = mesh_series_table_new (1000, sizeof (value_t));
    char key[32];
    for (uint64_t i = 0; i < 10000; i++) {
        snprintf (key, sizeof key, "host-%llu/m", (unsigned long long) i);
        value_t *v = mesh_series_table_touch (t, key, NULL);
        assert_non_null (v);
        v->counter = i;
    }
    assert_int_equal (mesh_series_table_size (t), 1000);
    assert_int_equal (mesh_series_table_evictions (t), 9000);
    for (uint64_t i = 0; i < 10000; i++) {
        snprintf (key, sizeof key, "host-%llu/m", (unsigned long long) i);
        value_t *v = mesh_series_table_lookup (t, key);
        if (i < 9000)
            assert_null (v);
        else {
            assert_non_null (v);
            assert_int_equal (v->counter, i);
        }
    }
    mesh_series_table_destroy (&t);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_new_rejects_zero_sizes),
        cmocka_unit_test (test_touch_creates_zeroed_then_finds),
        cmocka_unit_test (test_evicts_least_recently_used),
        cmocka_unit_test (test_many_keys_keep_the_newest),
    };
    return cmocka_run_group_tests_name ("series_table", tests, NULL, NULL);
}

/*  test_jsonout - the compact serialiser with shortest reals.
 *
 *  Without reals its text must be byte for byte jansson's (JSON_COMPACT |
 *  JSON_PRESERVE_ORDER): a corpus of escapes, control characters, non-ASCII UTF-8,
 *  nesting, empty containers and extreme integers is compared.  With reals, every
 *  number must read back (through jansson's own parser) to the same double, as a real,
 *  in at most as many characters as jansson's, and 35.88 must be "35.88".
 */
#include "jsonout.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void
s_same_as_jansson (json_t *value)
{
    char *ours = mesh_jsonout_dumps (value);
    char *theirs = json_dumps (value, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_non_null (ours);
    assert_non_null (theirs);
    assert_string_equal (ours, theirs);
    free (ours);
    free (theirs);
}

static void
test_corpus_without_reals (void **state)
{
    static const char *texts[] = {
        "{}",
        "[]",
        "[[],{},[[]],{\"a\":{}}]",
        "{\"seq\":1,\"prev\":\"00\",\"ts\":1718000000123,\"type\":\"decision\"}",
        "{\"big\":9223372036854775807,\"small\":-9223372036854775808,\"zero\":0,\"neg\":-1}",
        "{\"t\":true,\"f\":false,\"n\":null,\"arr\":[1,\"two\",null,true,[false]]}",
        "{\"quote\":\"say \\\"hi\\\"\",\"back\":\"a\\\\b\",\"slash\":\"a/b\",\"del\":\"\x7f\"}",
        "{\"ctl\":\"\\b\\f\\n\\r\\t\\u0001\\u001f\\u000b\\u0000x\"}",
        "{\"utf8\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe4\xb8\xad\",\"\xc3\xa9\":1}",
        "{\"esc\":\"\\u00e9\\u20ac\\ud83d\\ude00\"}",
        "{\"key with \\\"quotes\\\" and \\n\":\"v\"}",
        "{\"z\":1,\"a\":2,\"m\":3,\"b\":{\"y\":1,\"c\":2}}",
        "[\"\",\" \",\"\\u007f\",\"\\u0080\",\"\\uffff\"]",
        "{\"deep\":[[[[[[[[[[[[[[[[[[[[{\"x\":[]}]]]]]]]]]]]]]]]]]]]]}",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        json_error_t err;
        json_t *value = json_loads (texts[i], JSON_ALLOW_NUL, &err);
        if (!value)
            fail_msg ("corpus %zu does not parse: %s", i, err.text);
        s_same_as_jansson (value);
        json_decref (value);
    }
    //  Every single byte below 0x80 as a string, and a key holding a NUL.
    json_t *all = json_object ();
    for (int c = 0; c < 0x80; c++) {
        char key[16], s[1] = {(char) c};
        snprintf (key, sizeof key, "k%d", c);
        json_object_set_new (all, key, json_stringn (s, 1));
    }
    json_object_setn_new (all, "a\0b", 3, json_string ("nul in key"));
    s_same_as_jansson (all);
    json_decref (all);
}

//  Read TEXT back with jansson: one real, the same bits.
static void
s_reads_back (const char *text, double d)
{
    char doc[96];
    snprintf (doc, sizeof doc, "[%s]", text);
    json_error_t err;
    json_t *back = json_loads (doc, 0, &err);
    if (!back)
        fail_msg ("%s does not parse: %s", text, err.text);
    json_t *x = json_array_get (back, 0);
    if (!json_is_real (x))
        fail_msg ("%s does not read back as a real", text);
    double got = json_real_value (x);
    if (memcmp (&got, &d, sizeof d) != 0)
        fail_msg ("%s reads back as %.17g, not %.17g", text, got, d);
    json_decref (back);
}

static void
s_check_real (double d)
{
    json_t *arr = json_pack ("[f]", d);
    char *ours = mesh_jsonout_dumps (arr);
    char *theirs = json_dumps (arr, JSON_COMPACT);
    assert_non_null (ours);
    assert_non_null (theirs);
    size_t len = strlen (ours);
    assert_true (len >= 3 && ours[0] == '[' && ours[len - 1] == ']');
    ours[len - 1] = 0;
    s_reads_back (ours + 1, d);
    if (strlen (ours) > strlen (theirs))
        fail_msg ("%s is longer than jansson's %s", ours + 1, theirs);
    free (ours);
    free (theirs);
    json_decref (arr);
}

static void
test_shortest_reals (void **state)
{
    static const struct {
        double d;
        const char *text;
    } known[] = {
        {35.88, "35.88"},     {0.1, "0.1"},         {0.1 + 0.2, "0.30000000000000004"},
        {1.0, "1.0"},         {100.0, "100.0"},     {-0.0, "-0.0"},
        {0.0, "0.0"},         {1e300, "1e300"},     {5e-324, "5e-324"},
        {1e-5, "1e-5"},       {0.0001, "0.0001"},   {123456.789, "123456.789"},
        {-2.5, "-2.5"},       {1767265200.0, "1767265200.0"},
        {1e16, "10000000000000000.0"},              {1e17, "1e17"},
        {2.2250738585072014e-308, "2.2250738585072014e-308"},
        {1.7976931348623157e308, "1.7976931348623157e308"},
        {0.9999999999998324, "0.9999999999998324"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        char buf[64];
        int n = mesh_jsonout_real (known[i].d, buf, sizeof buf);
        assert_int_equal (n, (int) strlen (known[i].text));
        assert_string_equal (buf, known[i].text);
        s_check_real (known[i].d);
    }
    //  Random bit patterns (every exponent, denormals included) and random decimals.
    uint64_t x = 0x9E3779B97F4A7C15ull;
    int checked = 0;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double d;
        memcpy (&d, &x, sizeof d);
        if (isfinite (d)) {
            s_check_real (d);
            checked++;
        }
        double decimal = (double) (x % 1000000) / 100.0;
        s_check_real (decimal);
        s_check_real (ldexp ((double) (x & 0xFFFFF), -1074 + (int) (x % 40)));
    }
    assert_true (checked > 19000);
}

static void
test_in_a_record (void **state)
{
    json_t *rec = json_pack ("{s:I, s:s, s:{s:f, s:f, s:[f, f]}, s:f}", "seq", (json_int_t) 7,
                             "type", "decision", "incident", "value", 35.88, "score",
                             0.9999999999998324, "window", 209.62, 133.54, "now", 1767265200.0);
    char *text = mesh_jsonout_dumps (rec);
    assert_string_equal (text, "{\"seq\":7,\"type\":\"decision\",\"incident\":{\"value\":35.88,"
                               "\"score\":0.9999999999998324,\"window\":[209.62,133.54]},"
                               "\"now\":1767265200.0}");
    //  And it parses back to an equal value.
    json_t *back = json_loads (text, 0, NULL);
    assert_true (json_equal (back, rec));
    json_decref (back);
    free (text);
    json_decref (rec);
}

static void
test_refusals (void **state)
{
    //  Not an object or array: refused, as json_dumps refuses without JSON_ENCODE_ANY.
    json_t *s = json_string ("x");
    assert_null (mesh_jsonout_dumps (s));
    assert_null (json_dumps (s, JSON_COMPACT));
    json_decref (s);
    assert_null (mesh_jsonout_dumps (NULL));
    //  NaN and infinities are not JSON.
    char buf[64];
    assert_int_equal (mesh_jsonout_real (NAN, buf, sizeof buf), -1);
    assert_int_equal (mesh_jsonout_real (INFINITY, buf, sizeof buf), -1);
    assert_int_equal (mesh_jsonout_real (-INFINITY, buf, sizeof buf), -1);
    assert_int_equal (mesh_jsonout_real (1.5, buf, 8), -1);     //  buffer too small
    //  A string that is not UTF-8 (made without the check): refused, like jansson.
    json_t *bad = json_pack ("{s:o}", "s", json_stringn_nocheck ("a\xff", 2));
    assert_null (mesh_jsonout_dumps (bad));
    assert_null (json_dumps (bad, JSON_COMPACT));
    json_decref (bad);
    json_t *surrogate = json_pack ("[o]", json_stringn_nocheck ("\xed\xa0\x80", 3));
    assert_null (mesh_jsonout_dumps (surrogate));
    json_decref (surrogate);
    //  Too deep.
    json_t *deep = json_array ();
    json_t *cur = deep;
    for (int i = 0; i < MESH_JSONOUT_MAX_DEPTH + 5; i++) {
        json_t *next = json_array ();
        json_array_append_new (cur, next);
        cur = next;
    }
    assert_null (mesh_jsonout_dumps (deep));
    json_decref (deep);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_corpus_without_reals),
        cmocka_unit_test (test_shortest_reals),
        cmocka_unit_test (test_in_a_record),
        cmocka_unit_test (test_refusals),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

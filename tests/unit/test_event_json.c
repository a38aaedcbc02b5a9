/*  test_event_json - the event scanner accepts exactly what jansson accepts.
 *
 *  mesh_event_decode validates messages with its own one-pass scanner
 *  (agents/event/event_json.c) instead of building a jansson tree; an anomalous event is
 *  parsed by jansson later.  If the two disagreed, a message could be valid when
 *  normal and malformed when anomalous.  These tests hold the scanner to jansson's
 *  verdict (JSON_REJECT_DUPLICATES, an object at the top) on hand-written edge cases
 *  and on 200,000 random mutations of real events, and check the extracted fields.
 */
#include "event_kafka.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

static char *s_key_fields[] = {(char *) "host", (char *) "metric"};
static mesh_agent_config_t s_agent = {
    .name = (char *) "t",
    .key_fields = s_key_fields,
    .key_field_count = 2,
    .value_field = (char *) "value",
    .time_field = (char *) "ts",
};

//  Does jansson take TEXT as an object?
static bool
s_jansson_ok (const char *text, size_t len)
{
    json_error_t err;
    json_t *j = json_loadb (text, len, JSON_REJECT_DUPLICATES, &err);
    bool ok = json_is_object (j);
    json_decref (j);
    return ok;
}

//  Does the scanner take TEXT as JSON (whatever it then thinks of the fields)?
static bool
s_scanner_ok (const char *text, size_t len)
{
    mesh_event_t ev;
    mesh_event_field_t t;
    const char *why = NULL;
    int rc = mesh_event_scan (&s_agent, text, len, &ev, &t, &why);
    return rc == 0 || strcmp (why, "not a JSON object") != 0;
}

static void
s_agree (const char *text, size_t len)
{
    bool j = s_jansson_ok (text, len), m = s_scanner_ok (text, len);
    if (j != m)
        fail_msg ("jansson %s, scanner %s: %.*s", j ? "accepts" : "refuses",
                  m ? "accepts" : "refuses", (int) len, text);
}

static void
test_edge_cases (void **state)
{
    const char *cases[] = {
        "{}", " {} ", "{\"a\":1}", "{\"a\":1,}", "{,}", "[]", "1", "\"s\"", "", " ", "{",
        "{\"a\":1}x", "{\"a\":1} {}", "{\"a\":01}", "{\"a\":-0}", "{\"a\":-}", "{\"a\":1.}",
        "{\"a\":.5}", "{\"a\":1e}", "{\"a\":1e+}", "{\"a\":1E-5}", "{\"a\":1.5e308}",
        "{\"a\":1e309}", "{\"a\":-1e309}", "{\"a\":1e-400}", "{\"a\":9223372036854775807}",
        "{\"a\":9223372036854775808}", "{\"a\":-9223372036854775808}",
        "{\"a\":-9223372036854775809}", "{\"a\":tru}", "{\"a\":true}", "{\"a\":nul}",
        "{\"a\":NaN}", "{\"a\":Infinity}", "{\"a\":\"\\u0000\"}", "{\"a\":\"\\u0041\"}",
        "{\"a\":\"\\ud800\"}", "{\"a\":\"\\udc00\"}", "{\"a\":\"\\ud83d\\ude00\"}",
        "{\"a\":\"\\ud83d\\u0041\"}", "{\"a\":\"\\x\"}", "{\"a\":\"\\u12\"}", "{\"a\":\"tab\there\"}",
        "{\"a\":\"\xc3\xa9\"}", "{\"a\":\"\xc3\"}", "{\"a\":\"\xe2\x82\xac\"}",
        "{\"a\":\"\xe0\x80\x80\"}", "{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\xf4\x90\x80\x80\"}",
        "{\"a\":\"\xc0\xaf\"}", "{\"a\":\"\xff\"}", "{\"a\":1,\"a\":2}", "{\"a\":1,\"\\u0061\":2}",
        "{\"a\":{\"b\":1,\"b\":2}}", "{\"a\":[{\"b\":1,\"b\":2}]}", "{\"a\":{\"b\":1},\"c\":{\"b\":2}}",
        "{\"a\":[1,2,]}", "{\"a\":[,1]}", "{\"a\":[1 2]}", "{\"a\" 1}", "{a:1}", "{'a':1}",
        "{\"a\":\"unterminated}", "\xef\xbb\xbf{}", "{\"a\":1}\n", "\t{\n\"a\" : [ ] }\r\n",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        s_agree (cases[i], strlen (cases[i]));
    //  Nesting: 64 deep is fine for both, far deeper is refused by both.
    char deep[400];
    for (int depth = 60; depth <= 130; depth += 10) {
        size_t n = 0;
        deep[n++] = '{';
        deep[n++] = '"', deep[n++] = 'a', deep[n++] = '"', deep[n++] = ':';
        for (int i = 1; i < depth; i++)
            deep[n++] = '[';
        for (int i = 1; i < depth; i++)
            deep[n++] = ']';
        deep[n++] = '}';
        s_agree (deep, n);
    }
    //  An embedded NUL byte in the text.
    s_agree ("{\"a\":\"x\0y\"}", 11);
}

static uint64_t s_rng = 0x9E3779B97F4A7C15ull;
static uint64_t
s_next (void)
{
    uint64_t z = (s_rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void
test_random_mutations (void **state)
{
    const char *seeds[] = {
        "{\"host\":\"web-1\",\"metric\":\"cpu\",\"value\":42.17,\"ts\":1767225660}",
        "{\"host\":\"db\\u00e9\",\"metric\":\"lat\",\"value\":-1e3,\"ts\":\"2026-01-01T00:00:00Z\","
        "\"tags\":{\"a\":[1,2,{\"b\":null}],\"c\":true}}",
        "{\"host\":7,\"metric\":\"m\",\"value\":0,\"extra\":[\"\\ud83d\\ude00\",\"\\n\",false]}",
    };
    const char alphabet[] = "{}[]:,\"\\ue0123456789.-+Eaftnrl \x7f\x80\xc3\xa9\xed\xff";
    char buf[512];
    size_t disagreements = 0;
    for (int round = 0; round < 200000; round++) {
        const char *seed = seeds[s_next () % 3];
        size_t len = strlen (seed);
        memcpy (buf, seed, len);
        int edits = 1 + (int) (s_next () % 3);
        for (int e = 0; e < edits; e++) {
            size_t at = (size_t) (s_next () % len);
            char c = alphabet[s_next () % (sizeof alphabet - 1)];
            switch (s_next () % 3) {
                case 0: buf[at] = c; break;                                 //  replace
                case 1:                                                     //  insert
                    if (len < sizeof buf - 1) {
                        memmove (buf + at + 1, buf + at, len - at);
                        buf[at] = c;
                        len++;
                    }
                    break;
                default:                                                    //  delete
                    memmove (buf + at, buf + at + 1, len - at - 1);
                    len--;
            }
            if (len == 0)
                break;
        }
        bool j = s_jansson_ok (buf, len), m = s_scanner_ok (buf, len);
        if (j != m && disagreements++ < 5)
            print_error ("disagree (jansson %d, scanner %d): %.*s\n", j, m, (int) len, buf);
    }
    assert_int_equal (disagreements, 0);
}

static void
test_fields (void **state)
{
    mesh_event_t ev;
    mesh_event_field_t t;
    const char *why = NULL;
    const char *text = "{\"ts\":\"2026-01-01T00:00:01Z\",\"value\":1.5e2,\"metric\":\"c\\u00e9\","
                       "\"x\":{\"host\":\"no\"},\"host\":12}";
    assert_int_equal (mesh_event_scan (&s_agent, text, strlen (text), &ev, &t, &why), 0);
    assert_string_equal (ev.series, "12/c\xc3\xa9");       //  top-level fields only
    assert_true (ev.value == 150.0);
    assert_int_equal (t.kind, MESH_EVENT_FIELD_STRING);
    assert_string_equal (t.text, "2026-01-01T00:00:01Z");

    text = "{\"host\":\"a\",\"metric\":\"b\",\"value\":\"7\"}";
    assert_int_equal (mesh_event_scan (&s_agent, text, strlen (text), &ev, &t, &why), -1);
    assert_string_equal (why, "value field missing or not a finite number");
    text = "{\"host\":1.5,\"metric\":\"b\",\"value\":7}";
    assert_int_equal (mesh_event_scan (&s_agent, text, strlen (text), &ev, &t, &why), -1);
    assert_string_equal (why, "a key field is missing or not a string/integer");
    text = "{\"host\":\"a\\u0001\",\"metric\":\"b\",\"value\":7}";
    assert_int_equal (mesh_event_scan (&s_agent, text, strlen (text), &ev, &t, &why), -1);
    assert_string_equal (why, "a key field holds control characters");
    text = "{\"host\":\"a\",\"metric\":\"b\",\"value\":7,\"ts\":null}";
    assert_int_equal (mesh_event_scan (&s_agent, text, strlen (text), &ev, &t, &why), 0);
    assert_int_equal (t.kind, MESH_EVENT_FIELD_OTHER);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_edge_cases),
        cmocka_unit_test (test_random_mutations),
        cmocka_unit_test (test_fields),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

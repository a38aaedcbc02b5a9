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
    if (rc == 0)
        return true;
    switch (mesh_event_reason_of (why)) {
        case MESH_EVENT_TRUNCATED: case MESH_EVENT_SYNTAX: case MESH_EVENT_INVALID_UTF8:
        case MESH_EVENT_DUPLICATE_KEY: case MESH_EVENT_NON_FINITE: case MESH_EVENT_TOO_DEEP:
        case MESH_EVENT_NOT_OBJECT:
            return false;               //  not JSON, or not an object
        default:
            return true;                //  JSON, but its fields do not serve
    }
}

//  When jansson refuses TEXT for a cause it names precisely, the scanner gives that cause.
static void
s_same_cause (const char *text, size_t len)
{
    json_error_t err;
    json_t *j = json_loadb (text, len, JSON_REJECT_DUPLICATES, &err);
    json_decref (j);
    if (j)
        return;
    const char *expected = NULL;
    switch (json_error_code (&err)) {
        case json_error_duplicate_key: expected = "duplicate_key"; break;
        case json_error_numeric_overflow: expected = "non_finite"; break;
        case json_error_null_character: expected = "invalid_utf8"; break;
        default: return;
    }
    mesh_event_t ev;
    mesh_event_field_t t;
    const char *why = NULL;
    if (mesh_event_scan (&s_agent, text, len, &ev, &t, &why) == 0)
        fail_msg ("scanner accepts what jansson refuses: %.*s", (int) len, text);
    const char *got = mesh_event_reason_name (mesh_event_reason_of (why));
    //  A failure at the very end of the text is "truncated" whatever was expected there.
    if (strcmp (got, expected) && strcmp (got, "truncated"))
        fail_msg ("jansson: %s (%s), scanner: %s: %.*s", expected, err.text, why, (int) len,
                  text);
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
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        s_agree (cases[i], strlen (cases[i]));
        s_same_cause (cases[i], strlen (cases[i]));
    }
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
    assert_string_equal (why, "bad_field: the value field is not a finite number");
    text = "{\"host\":1.5,\"metric\":\"b\",\"value\":7}";
    assert_int_equal (mesh_event_scan (&s_agent, text, strlen (text), &ev, &t, &why), -1);
    assert_string_equal (why, "bad_field: a key field is not a string or an integer");
    text = "{\"host\":\"a\\u0001\",\"metric\":\"b\",\"value\":7}";
    assert_int_equal (mesh_event_scan (&s_agent, text, strlen (text), &ev, &t, &why), -1);
    assert_string_equal (why, "bad_field: a key field holds control characters");
    text = "{\"host\":\"a\",\"metric\":\"b\",\"value\":7,\"ts\":null}";
    assert_int_equal (mesh_event_scan (&s_agent, text, strlen (text), &ev, &t, &why), 0);
    assert_int_equal (t.kind, MESH_EVENT_FIELD_OTHER);
}

//  TEXT is refused for REASON.
static void
s_refused (const mesh_agent_config_t *agent, const char *text, size_t len, const char *reason)
{
    mesh_event_t ev;
    mesh_event_field_t t;
    const char *why = NULL;
    if (mesh_event_scan (agent, text, len, &ev, &t, &why) == 0)
        fail_msg ("accepted, expected %s: %.60s", reason, text ? text : "(null)");
    if (strcmp (mesh_event_reason_name (mesh_event_reason_of (why)), reason) != 0)
        fail_msg ("\"%s\", expected %s: %.60s", why, reason, text ? text : "(null)");
}

//  Every cause has its own reason, where the old scanner said "not a JSON object" to all.
static void
test_reasons (void **state)
{
    static const struct {
        const char *text, *reason;
    } cases[] = {
        {"", "truncated"},
        {"  ", "truncated"},
        {"{\"host\":\"a\"", "truncated"},
        {"{\"host\":\"a", "truncated"},
        {"{\"host\":\"a\",\"value\":[1,2", "truncated"},
        {"{\"host\":\"a\",\"value\":tr", "truncated"},
        {"{\"host\" 1}", "syntax"},
        {"{\"host\":\"a\",\"value\":1}x", "syntax"},
        {"{\"a\":\"\\x\"}", "syntax"},
        {"{\"a\":\"\xff\"}", "invalid_utf8"},
        {"{\"a\":\"\xc0\xaf\"}", "invalid_utf8"},
        {"{\"a\":\"\\u0000\"}", "invalid_utf8"},
        {"{\"a\":\"\\udc00\"}", "invalid_utf8"},
        {"{\"a\":\"\\ud800x\"}", "invalid_utf8"},
        {"{\"a\":1,\"a\":2}", "duplicate_key"},
        {"{\"a\":{\"b\":1,\"\\u0062\":2}}", "duplicate_key"},
        {"{\"a\":1e999,\"b\":1}", "non_finite"},
        {"{\"a\":-1e999,\"b\":1}", "non_finite"},
        {"{\"a\":99999999999999999999,\"b\":1}", "non_finite"},
        {"[1]", "not_object"},
        {"\"s\"", "not_object"},
        {"17", "not_object"},
        {"not json", "not_object"},
        {"{\"metric\":\"b\",\"value\":1}", "missing_field"},
        {"{\"host\":\"a\",\"metric\":\"b\"}", "missing_field"},
        {"{\"host\":1.5,\"metric\":\"b\",\"value\":1}", "bad_field"},
        {"{\"host\":\"a\",\"metric\":\"b\",\"value\":\"1\"}", "bad_field"},
        {"{\"host\":\"a\\n\",\"metric\":\"b\",\"value\":1}", "bad_field"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        s_refused (&s_agent, cases[i].text, strlen (cases[i].text), cases[i].reason);
    s_refused (&s_agent, NULL, 0, "tombstone");
}

//  events.max_bytes, max_depth and max_keys: each refused with its own reason, at the
//  limit accepted, and the same through the slow path (keys beyond the scanner's arena).
static void
test_limits (void **state)
{
    mesh_agent_config_t agent = s_agent;
    agent.events.max_depth = 8;
    agent.events.max_keys = 10;
    agent.events.max_bytes = 200;
    mesh_event_t ev;
    mesh_event_field_t t;
    const char *why = NULL;
    //  Depth: the top object is level 1; 8 levels pass, 9 do not.
    const char *ok_deep = "{\"host\":\"a\",\"metric\":\"b\",\"value\":1,\"x\":[[[[[[[1]]]]]]]}";
    const char *too_deep = "{\"host\":\"a\",\"metric\":\"b\",\"value\":1,\"x\":[[[[[[[[1]]]]]]]]}";
    assert_int_equal (mesh_event_scan (&agent, ok_deep, strlen (ok_deep), &ev, &t, &why), 0);
    s_refused (&agent, too_deep, strlen (too_deep), "too_deep");
    //  Keys, in all objects together: 10 pass, 11 do not.
    const char *ok_keys = "{\"host\":\"a\",\"metric\":\"b\",\"value\":1,"
                          "\"x\":{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6}}";
    const char *many_keys = "{\"host\":\"a\",\"metric\":\"b\",\"value\":1,"
                            "\"x\":{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7}}";
    assert_int_equal (mesh_event_scan (&agent, ok_keys, strlen (ok_keys), &ev, &t, &why), 0);
    s_refused (&agent, many_keys, strlen (many_keys), "too_many_keys");
    //  Bytes: checked before anything is read (this one is not even JSON).
    char big[201];
    memset (big, '{', sizeof big);
    s_refused (&agent, big, sizeof big, "too_large");
    assert_int_equal (mesh_event_scan (&agent, ok_keys, strlen (ok_keys), &ev, &t, &why), 0);
    //  A message deeper than the old fixed 2048 is too_deep at the default limit too, and
    //  is given up on where it passes the limit (a million levels cost no more than 65).
    mesh_agent_config_t dflt = s_agent;
    dflt.events.max_depth = 64;
    size_t n = 1000000;
    char *deep = malloc (n);
    memcpy (deep, "{\"a\":", 5);
    memset (deep + 5, '[', n - 5);
    s_refused (&dflt, deep, n, "too_deep");
    //  The slow path (keys beyond the scanner's 16 KiB arena) applies the same limits.
    size_t len = 0;
    len += (size_t) sprintf (deep + len, "{\"host\":\"a\",\"metric\":\"b\",\"value\":1");
    for (int k = 0; k < 40; k++) {
        len += (size_t) sprintf (deep + len, ",\"k%d", k);
        memset (deep + len, 'x', 600);
        len += 600;
        len += (size_t) sprintf (deep + len, "\":[[[1]]]");
    }
    deep[len++] = '}';
    mesh_agent_config_t slow = s_agent;
    assert_int_equal (mesh_event_scan (&slow, deep, len, &ev, &t, &why), 0);
    slow.events.max_keys = 42;
    s_refused (&slow, deep, len, "too_many_keys");
    slow.events.max_keys = 0;
    slow.events.max_depth = 3;
    s_refused (&slow, deep, len, "too_deep");
    free (deep);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_edge_cases),
        cmocka_unit_test (test_random_mutations),
        cmocka_unit_test (test_fields),
        cmocka_unit_test (test_reasons),
        cmocka_unit_test (test_limits),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

/*  jsonout - compact JSON text of a json_t, with every real in its shortest form.
 *
 *  Why a serialiser of our own: the decision log is read by people (and by their
 *  tools) long after it was written, and jansson 2.14 prints each real with %.17g,
 *  which turns a measured 35.88 into 35.880000000000003.  Both read back to the same
 *  double, so nothing is lost, but the record says something nobody measured.  Here
 *  every real gets the fewest significant digits that read back to the same double
 *  (tried from 1 to 17; 17 always does), laid out the way %.17g lays it out (plain
 *  for a decimal exponent from -4 to 16, else with an exponent), with jansson's own
 *  finishing rule: a ".0" when the text has neither '.' nor 'e' (so it stays a real
 *  when read back), no '+' and no leading zeros in the exponent.
 *
 *  Everything else is byte for byte what json_dumps (JSON_COMPACT |
 *  JSON_PRESERVE_ORDER) writes, so a record's bytes only change where a real is:
 *  strings escape '"', '\\' and every code point below 0x20 (\b \f \n \r \t by name,
 *  the rest as \u00XX with upper-case hex), leave '/', DEL and non-ASCII UTF-8 as they
 *  are, and a string that is not valid UTF-8 fails the whole text, as it does in
 *  jansson.  Keys come out in insertion order.  Numbers are printed with the C locale
 *  assumed ("." as the decimal point), which is what meshd runs with.
 *
 *  Costs: one growing buffer, doubled as needed; recursion bounded by
 *  MESH_JSONOUT_MAX_DEPTH (which also ends a reference loop).
 */
#include "jsonout.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *data;
    size_t len, cap;
    bool failed;
} s_buf_t;

static void
s_put (s_buf_t *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->len + n + 1 > cap) {
            if (cap > SIZE_MAX / 2) {
                b->failed = true;
                return;
            }
            cap *= 2;
        }
        char *grown = realloc (b->data, cap);
        if (!grown) {
            b->failed = true;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy (b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

//  Length of the UTF-8 sequence at S (at most LEFT bytes), as jansson accepts it: no
//  overlong forms, no surrogates, nothing above U+10FFFF.  0 if invalid.
static size_t
s_utf8_len (const unsigned char *s, size_t left)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    else if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1F;
    }
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0F;
    }
    else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
    }
    else
        return 0;
    if (n > left)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF
        || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

static void
s_string (s_buf_t *b, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *) str;
    s_put (b, "\"", 1);
    size_t run = 0;                 //  start of the bytes not yet copied
    size_t i = 0;
    while (i < len) {
        size_t n = s_utf8_len (s + i, len - i);
        if (n == 0) {
            b->failed = true;
            return;
        }
        unsigned char c = s[i];
        if (n == 1 && (c == '"' || c == '\\' || c < 0x20)) {
            s_put (b, str + run, i - run);
            char esc[8];
            switch (c) {
                case '"': s_put (b, "\\\"", 2); break;
                case '\\': s_put (b, "\\\\", 2); break;
                case '\b': s_put (b, "\\b", 2); break;
                case '\f': s_put (b, "\\f", 2); break;
                case '\n': s_put (b, "\\n", 2); break;
                case '\r': s_put (b, "\\r", 2); break;
                case '\t': s_put (b, "\\t", 2); break;
                default:
                    snprintf (esc, sizeof esc, "\\u%04X", (unsigned) c);
                    s_put (b, esc, 6);
            }
            run = i + 1;
        }
        i += n;
    }
    s_put (b, str + run, len - run);
    s_put (b, "\"", 1);
}

//  The exponent of the %e text TEXT with its '+' and leading zeros removed, appended
//  to the mantissa; TEXT is rewritten in place.
static void
s_trim_exponent (char *text)
{
    char *e = strchr (text, 'e');
    if (!e)
        return;
    char *from = e + 1, *to = e + 1;
    if (*from == '+')
        from++;
    else if (*from == '-')
        to = ++from;
    while (*from == '0' && from[1])
        from++;
    memmove (to, from, strlen (from) + 1);
}

static bool
s_reads_back (const char *text, double d)
{
    double back = strtod (text, NULL);
    return memcmp (&back, &d, sizeof d) == 0;
}

int
mesh_jsonout_real (double d, char *buf, size_t size)
{
    if (!isfinite (d) || size < 32)
        return -1;
    char sci[40];
    int digits = 17;
    for (int p = 1; p <= 17; p++) {
        snprintf (sci, sizeof sci, "%.*e", p - 1, d);
        if (s_reads_back (sci, d)) {
            digits = p;
            break;
        }
    }
    //  SCI holds DIGITS significant digits (17 reads back always: IEEE 754 binary64).
    int exponent = atoi (strchr (sci, 'e') + 1);
    bool plain = false;
    if (exponent >= -4 && exponent < 17) {
        int decimals = digits - 1 - exponent;
        snprintf (buf, size, "%.*f", decimals > 0 ? decimals : 0, d);
        plain = s_reads_back (buf, d);
    }
    if (!plain) {
        snprintf (buf, size, "%s", sci);
        s_trim_exponent (buf);
    }
    size_t len = strlen (buf);
    if (!strchr (buf, '.') && !strchr (buf, 'e')) {
        if (len + 3 > size)
            return -1;
        memcpy (buf + len, ".0", 3);
        len += 2;
    }
    return (int) len;
}

static void
s_value (s_buf_t *b, const json_t *v, int depth)
{
    if (b->failed)
        return;
    if (depth > MESH_JSONOUT_MAX_DEPTH) {
        b->failed = true;
        return;
    }
    char num[64];
    switch (json_typeof (v)) {
        case JSON_NULL: s_put (b, "null", 4); break;
        case JSON_TRUE: s_put (b, "true", 4); break;
        case JSON_FALSE: s_put (b, "false", 5); break;
        case JSON_INTEGER: {
            int n = snprintf (num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value (v));
            s_put (b, num, (size_t) n);
            break;
        }
        case JSON_REAL: {
            int n = mesh_jsonout_real (json_real_value (v), num, sizeof num);
            if (n < 0)
                b->failed = true;
            else
                s_put (b, num, (size_t) n);
            break;
        }
        case JSON_STRING:
            s_string (b, json_string_value (v), json_string_length (v));
            break;
        case JSON_ARRAY: {
            s_put (b, "[", 1);
            size_t size = json_array_size (v);
            for (size_t i = 0; i < size && !b->failed; i++) {
                if (i)
                    s_put (b, ",", 1);
                s_value (b, json_array_get (v, i), depth + 1);
            }
            s_put (b, "]", 1);
            break;
        }
        case JSON_OBJECT: {
            s_put (b, "{", 1);
            bool first = true;
            for (void *it = json_object_iter ((json_t *) v); it && !b->failed;
                 it = json_object_iter_next ((json_t *) v, it)) {
                if (!first)
                    s_put (b, ",", 1);
                first = false;
                s_string (b, json_object_iter_key (it), json_object_iter_key_len (it));
                s_put (b, ":", 1);
                s_value (b, json_object_iter_value (it), depth + 1);
            }
            s_put (b, "}", 1);
            break;
        }
        default:
            b->failed = true;
    }
}

char *
mesh_jsonout_dumps (const json_t *value)
{
    if (!json_is_object (value) && !json_is_array (value))
        return NULL;
    s_buf_t b = {0};
    s_value (&b, value, 1);
    if (b.failed) {
        free (b.data);
        return NULL;
    }
    return b.data;
}

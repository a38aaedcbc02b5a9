/*  event_json - stage 1: a strict one-pass JSON scanner for event messages.
 *  Data path: [event] -> detect -> incident -> reason -> gate -> act -> record.
 *
 *  Every message is decoded, but almost none is ever looked at again: only an
 *  anomalous point needs the whole message (for its incident).  Building a
 *  jansson tree per message costs more than detection itself, so this scanner
 *  validates the whole text and extracts only the fields the agent's field map
 *  names, in one pass, with no allocation.  It accepts exactly what jansson
 *  accepts with JSON_REJECT_DUPLICATES (RFC 8259, UTF-8 checked, no "\u0000", no
 *  lone surrogates, integers within int64, finite reals, no duplicate key in any
 *  object, nesting within 2048) - a differential test against jansson on mutated
 *  messages holds it to that - so a message is malformed or not whichever way it
 *  is read.  A message whose keys outgrow the scanner's fixed arena is handed to
 *  jansson instead (slow, correct).  The tree, when needed, comes from
 *  mesh_event_parse.
 *
 *  What a message may cost is bounded before and while it is read, by the agent's
 *  `events:` keys: its bytes (checked first), its nesting depth and the number of
 *  keys in all its objects (checked as they are met, so a hostile message is given
 *  up on where it passes the limit).  Every refusal says why with one reason of
 *  mesh_event_reason_t, the first word of the static "why" string ("duplicate_key:
 *  ..."): a scanner failure records the reason where it happens, and a failure at
 *  the end of the text is "truncated" whatever was expected there.
 */
#include "event_kafka.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_DEPTH 2048                //  jansson's JSON_PARSER_MAX_DEPTH
#define S_ARENA     16384               //  decoded keys of the objects being scanned
#define S_CAPACITY  (-2)                //  beyond the arena: let jansson decide

typedef struct {
    const unsigned char *p, *end;
    char arena[S_ARENA];                //  decoded keys, per object a stack frame
    size_t arena_used;
    const char *why;                    //  the first failure's reason
    int max_depth;
    long keys, max_keys;
} s_scan_t;

//  The why strings: "<reason name>: detail" (mesh_event_reason_of reads the name).
static const char S_TRUNCATED[] = "truncated: the message ends inside a JSON value";
static const char S_SYNTAX[] = "syntax: not JSON";
static const char S_UTF8[] = "invalid_utf8: invalid UTF-8, \\u0000 or a lone surrogate in a string";
static const char S_DUPLICATE[] = "duplicate_key: a key appears twice in one object";
static const char S_NON_FINITE[] = "non_finite: a real beyond a double or an integer beyond int64";
static const char S_TOO_DEEP[] = "too_deep: nested deeper than events.max_depth";
static const char S_TOO_LARGE[] = "too_large: longer than events.max_bytes";
static const char S_TOO_MANY_KEYS[] = "too_many_keys: more keys than events.max_keys";
static const char S_NOT_OBJECT[] = "not_object: not a JSON object";
static const char S_TOMBSTONE[] = "tombstone: no value (a tombstone)";
static const char S_KEY_MISSING[] = "missing_field: a key field is missing";
static const char S_VALUE_MISSING[] = "missing_field: the value field is missing";
static const char S_KEY_TYPE[] = "bad_field: a key field is not a string or an integer";
static const char S_KEY_CONTROL[] = "bad_field: a key field holds control characters";
static const char S_KEY_LONG[] = "bad_field: series key too long";
static const char S_VALUE_TYPE[] = "bad_field: the value field is not a finite number";
static const char S_KEY_COUNT[] = "bad_field: too many key fields";
const char mesh_event_why_time[] = "bad_field: time field is neither epoch seconds nor RFC 3339";

const char *
mesh_event_reason_name (mesh_event_reason_t reason)
{
    static const char *const names[] = {
#define S_REASON_NAME(tag, name) name,
        MESH_EVENT_REASONS (S_REASON_NAME)
#undef S_REASON_NAME
    };
    return (unsigned) reason < MESH_EVENT_REASON_COUNT_ ? names[reason] : "?";
}

mesh_event_reason_t
mesh_event_reason_of (const char *why)
{
    size_t n = why ? strcspn (why, ":") : 0;
    for (int r = 0; r < MESH_EVENT_REASON_COUNT_; r++) {
        const char *name = mesh_event_reason_name ((mesh_event_reason_t) r);
        if (strlen (name) == n && memcmp (name, why, n) == 0)
            return (mesh_event_reason_t) r;
    }
    return MESH_EVENT_SYNTAX;
}

//  Fail with WHY, or "truncated" when the text ended where more was needed.  -1.
static int
s_fail (s_scan_t *s, const char *why)
{
    s->why = s->p >= s->end ? S_TRUNCATED : why;
    return -1;
}

typedef struct {                        //  a decoded string: where and how long
    const char *text;
    size_t len;
} s_str_t;

static void
s_ws (s_scan_t *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int
s_hex4 (const unsigned char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else
        if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else
        if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    *out = v;
    return 0;
}

static size_t
s_put_utf8 (char *out, unsigned cp)
{
    if (cp < 0x80) {
        out[0] = (char) cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char) (0xC0 | (cp >> 6));
        out[1] = (char) (0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char) (0xE0 | (cp >> 12));
        out[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char) (0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char) (0xF0 | (cp >> 18));
    out[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char) (0x80 | (cp & 0x3F));
    return 4;
}

//  Length of the valid UTF-8 sequence at P (not ASCII), or 0.
static size_t
s_utf8 (const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, cp = c & 0x1F;
    else
    if (c >= 0xE0 && c <= 0xEF)
        n = 3, cp = c & 0x0F;
    else
    if (c >= 0xF0 && c <= 0xF4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    if ((size_t) (end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))
        || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

//  A string at s->p (the opening quote).  If OUT is given, the decoded bytes go there
//  (up to OUT_SIZE; *out_len is the full decoded length).  0, or -1.
static int
s_string (s_scan_t *s, char *out, size_t out_size, size_t *out_len)
{
    s->p++;                             //  the quote
    size_t len = 0;
    char buf[4];
    while (s->p < s->end) {
        unsigned c = *s->p;
        size_t n = 1;
        const char *bytes = (const char *) s->p;
        if (c == '"') {
            s->p++;
            if (out_len)
                *out_len = len;
            return 0;
        }
        if (c < 0x20)
            return s_fail (s, S_SYNTAX);
        if (c == '\\') {
            if (s->end - s->p < 2) {
                s->p = s->end;
                return s_fail (s, S_TRUNCATED);
            }
            unsigned e = s->p[1];
            const char *simple = strchr ("\"\\/bfnrt", (int) e);
            if (e && simple) {
                buf[0] = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
                bytes = buf;
                s->p += 2;
            }
            else
            if (e == 'u') {
                unsigned cp, lo;
                if (s->end - s->p < 6 || s_hex4 (s->p + 2, &cp) != 0)
                    return s_fail (s, S_SYNTAX);
                if (cp == 0)
                    return s_fail (s, S_UTF8);
                s->p += 6;
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                    return s_fail (s, S_UTF8);
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (s->end - s->p >= 6 && s->p[0] == '\\' && s->p[1] == 'u'
                        && s_hex4 (s->p + 2, &lo) != 0)
                        return s_fail (s, S_SYNTAX);
                    if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u'
                        || lo < 0xDC00 || lo > 0xDFFF)
                        return s_fail (s, S_UTF8);
                    s->p += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                n = s_put_utf8 (buf, cp);
                bytes = buf;
            }
            else
                return s_fail (s, S_SYNTAX);
        }
        else
        if (c >= 0x80) {
            n = s_utf8 (s->p, s->end);
            if (n == 0)
                return s_fail (s, S_UTF8);
            s->p += n;
        }
        else
            s->p++;
        if (out) {
            for (size_t i = 0; i < n && len + i < out_size; i++)
                out[len + i] = bytes[i];
        }
        len += n;
    }
    return s_fail (s, S_TRUNCATED);
}

//  A number at s->p: RFC 8259 grammar; integers must fit int64, reals must be finite.
static int
s_number (s_scan_t *s, double *value, bool *is_int, long long *ivalue)
{
    const unsigned char *start = s->p;
    if (s->p < s->end && *s->p == '-')
        s->p++;
    if (s->p >= s->end)
        return s_fail (s, S_SYNTAX);
    if (*s->p == '0')
        s->p++;
    else
    if (*s->p >= '1' && *s->p <= '9')
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
            s->p++;
    else
        return s_fail (s, S_SYNTAX);
    bool integer = true;
    if (s->p < s->end && *s->p == '.') {
        integer = false;
        s->p++;
        if (s->p >= s->end || *s->p < '0' || *s->p > '9')
            return s_fail (s, S_SYNTAX);
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
            s->p++;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        integer = false;
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (s->p >= s->end || *s->p < '0' || *s->p > '9')
            return s_fail (s, S_SYNTAX);
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
            s->p++;
    }
    char buf[64];
    size_t len = (size_t) (s->p - start);
    char *copy = len < sizeof buf ? buf : malloc (len + 1);
    memcpy (copy, start, len);
    copy[len] = 0;
    int rc = 0;
    errno = 0;
    if (integer) {
        long long v = strtoll (copy, NULL, 10);
        if (errno == ERANGE)
            rc = s_fail (s, S_NON_FINITE);  //  jansson: "too big integer"
        *ivalue = v;
        *value = (double) v;
    }
    else {
        double v = strtod (copy, NULL);
        if (errno == ERANGE && fabs (v) > 1.0)
            rc = s_fail (s, S_NON_FINITE);  //  jansson: "real number overflow"
        *value = v;
    }
    *is_int = integer;
    if (copy != buf)
        free (copy);
    return rc;
}

static int s_value (s_scan_t *s, int depth);

static int
s_literal (s_scan_t *s, const char *word)
{
    size_t n = strlen (word);
    size_t have = (size_t) (s->end - s->p);
    if (have < n && memcmp (s->p, word, have) == 0) {
        s->p = s->end;
        return s_fail (s, S_TRUNCATED);
    }
    if (have < n || memcmp (s->p, word, n) != 0)
        return s_fail (s, S_SYNTAX);
    s->p += n;
    return 0;
}

//  What the top-level object yields for the field map.
typedef struct {
    const mesh_agent_config_t *agent;
    const unsigned char *key_at[16];    //  start of each key field's value, or NULL
    const unsigned char *value_at, *time_at;
} s_fields_t;

//  An object at s->p.  FIELDS (top level only) records where the mapped fields' values are.
//  Its keys are kept, decoded, in the arena as [size_t length][bytes] for the duplicate
//  check, and dropped when the object ends.
static int
s_object (s_scan_t *s, int depth, s_fields_t *fields)
{
    s->p++;                             //  {
    size_t frame = s->arena_used;
    s_ws (s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return 0;
    }
    while (true) {
        s_ws (s);
        if (s->p >= s->end || *s->p != '"')
            return s_fail (s, S_SYNTAX);
        if (++s->keys > s->max_keys)
            return s_fail (s, S_TOO_MANY_KEYS);
        size_t at = s->arena_used;
        if (S_ARENA - at < sizeof (size_t) + 1)
            return S_CAPACITY;
        char *key = s->arena + at + sizeof (size_t);
        size_t room = S_ARENA - at - sizeof (size_t), len = 0;
        if (s_string (s, key, room, &len) != 0)
            return -1;
        if (len > room)
            return S_CAPACITY;
        for (size_t k = frame; k < at;) {
            size_t klen;
            memcpy (&klen, s->arena + k, sizeof klen);
            if (klen == len && memcmp (s->arena + k + sizeof klen, key, len) == 0)
                return s_fail (s, S_DUPLICATE);
            k += sizeof klen + klen;
        }
        memcpy (s->arena + at, &len, sizeof len);
        s->arena_used = at + sizeof len + len;
        s_ws (s);
        if (s->p >= s->end || *s->p != ':')
            return s_fail (s, S_SYNTAX);
        s->p++;
        s_ws (s);
        if (fields) {
            const mesh_agent_config_t *a = fields->agent;
            for (size_t i = 0; i < a->key_field_count && i < 16; i++)
                if (strlen (a->key_fields[i]) == len && memcmp (a->key_fields[i], key, len) == 0)
                    fields->key_at[i] = s->p;
            if (strlen (a->value_field) == len && memcmp (a->value_field, key, len) == 0)
                fields->value_at = s->p;
            if (strlen (a->time_field) == len && memcmp (a->time_field, key, len) == 0)
                fields->time_at = s->p;
        }
        int rc = s_value (s, depth + 1);
        if (rc != 0)
            return rc;
        s_ws (s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        if (s->p < s->end && *s->p == '}') {
            s->p++;
            s->arena_used = frame;
            return 0;
        }
        return s_fail (s, S_SYNTAX);
    }
}

static int
s_value (s_scan_t *s, int depth)
{
    if (s->p >= s->end)
        return s_fail (s, S_TRUNCATED);
    //  Depth counts containers, as jansson does: the top object is level 1.
    if ((*s->p == '{' || *s->p == '[') && depth > s->max_depth)
        return s_fail (s, S_TOO_DEEP);
    double d;
    bool is_int;
    long long i;
    switch (*s->p) {
        case '{': return s_object (s, depth, NULL);
        case '"': return s_string (s, NULL, 0, NULL);
        case 't': return s_literal (s, "true");
        case 'f': return s_literal (s, "false");
        case 'n': return s_literal (s, "null");
        case '[':
            s->p++;
            s_ws (s);
            if (s->p < s->end && *s->p == ']') {
                s->p++;
                return 0;
            }
            while (true) {
                s_ws (s);
                int rc = s_value (s, depth + 1);
                if (rc != 0)
                    return rc;
                s_ws (s);
                if (s->p < s->end && *s->p == ',') {
                    s->p++;
                    continue;
                }
                if (s->p < s->end && *s->p == ']') {
                    s->p++;
                    return 0;
                }
                return s_fail (s, S_SYNTAX);
            }
        default: return s_number (s, &d, &is_int, &i);
    }
}

//  Nesting depth and keys of a tree (jansson parsed it, within its own 2048 levels).
static void
s_measure (json_t *json, int depth, int *deepest, long *keys)
{
    if (depth > *deepest)
        *deepest = depth;
    size_t i;
    const char *k;
    json_t *v;
    if (json_is_object (json))
        json_object_foreach (json, k, v) {
            ++*keys;
            s_measure (v, depth + 1, deepest, keys);
        }
    else
    if (json_is_array (json))
        json_array_foreach (json, i, v)
            s_measure (v, depth + 1, deepest, keys);
}

//  The reason behind a jansson error, as the scanner would have given it.
static const char *
s_jansson_why (const json_error_t *jerr, size_t len)
{
    switch (json_error_code (jerr)) {
        case json_error_premature_end_of_input: return S_TRUNCATED;
        case json_error_invalid_utf8:
        case json_error_null_character: return S_UTF8;
        case json_error_duplicate_key: return S_DUPLICATE;
        case json_error_numeric_overflow: return S_NON_FINITE;
        case json_error_stack_overflow: return S_TOO_DEEP;
        default: return (size_t) jerr->position >= len ? S_TRUNCATED : S_SYNTAX;
    }
}

//  The slow way, for messages beyond the scanner's arena: the same verdicts from a tree.
static int
s_with_jansson (const mesh_agent_config_t *agent, const s_scan_t *s, const char *payload,
                size_t len, mesh_event_t *event, mesh_event_field_t *time_field,
                const char **why)
{
    json_error_t jerr;
    json_t *json = json_loadb (payload, len, JSON_REJECT_DUPLICATES, &jerr);
    int rc = -1;
    if (!json) {
        *why = s_jansson_why (&jerr, len);
        goto done;
    }
    *why = S_NOT_OBJECT;
    if (!json_is_object (json))
        goto done;
    int deepest = 0;
    long keys = 0;
    s_measure (json, 1, &deepest, &keys);
    if (deepest > s->max_depth) {
        *why = S_TOO_DEEP;
        goto done;
    }
    if (keys > s->max_keys) {
        *why = S_TOO_MANY_KEYS;
        goto done;
    }
    size_t used = 0;
    event->series[0] = 0;
    for (size_t k = 0; k < agent->key_field_count; k++) {
        json_t *v = json_object_get (json, agent->key_fields[k]);
        char part[MESH_SERIES_KEY_MAX];
        int plen;
        if (json_is_string (v) && json_string_length (v) < sizeof part)
            plen = snprintf (part, sizeof part, "%s", json_string_value (v));
        else
        if (json_is_string (v)) {
            *why = S_KEY_LONG;
            goto done;
        }
        else
        if (json_is_integer (v))
            plen = snprintf (part, sizeof part, "%lld", (long long) json_integer_value (v));
        else {
            *why = v ? S_KEY_TYPE : S_KEY_MISSING;
            goto done;
        }
        for (int c = 0; c < plen; c++)
            if ((unsigned char) part[c] < 0x20 || part[c] == 0x7f) {
                *why = S_KEY_CONTROL;
                goto done;
            }
        if (used + (k ? 1 : 0) + (size_t) plen >= sizeof event->series) {
            *why = S_KEY_LONG;
            goto done;
        }
        used += (size_t) snprintf (event->series + used, sizeof event->series - used, "%s%s",
                                   k ? "/" : "", part);
    }
    json_t *value = json_object_get (json, agent->value_field);
    if (!json_is_number (value) || !isfinite (json_number_value (value))) {
        *why = value ? S_VALUE_TYPE : S_VALUE_MISSING;
        goto done;
    }
    event->value = json_number_value (value);
    json_t *t = json_object_get (json, agent->time_field);
    time_field->kind = !t                 ? MESH_EVENT_FIELD_ABSENT
                       : json_is_number (t) ? MESH_EVENT_FIELD_NUMBER
                       : json_is_string (t) ? MESH_EVENT_FIELD_STRING
                                            : MESH_EVENT_FIELD_OTHER;
    if (json_is_number (t))
        time_field->number = json_number_value (t);
    if (json_is_string (t)) {
        if (json_string_length (t) >= sizeof time_field->text - 1) {
            *why = mesh_event_why_time;
            goto done;
        }
        snprintf (time_field->text, sizeof time_field->text, "%s", json_string_value (t));
    }
    rc = 0;
done:
    json_decref (json);
    return rc;
}

int
mesh_event_scan (const mesh_agent_config_t *agent, const char *payload, size_t len,
                 mesh_event_t *event, mesh_event_field_t *time_field, const char **why)
{
    //  The arena lives here and not on a caller's stack frame per message.
    static __thread s_scan_t scan;
    s_scan_t *s = &scan;
    const mesh_event_config_t *limits = &agent->events;
    if (!payload) {
        *why = S_TOMBSTONE;
        return -1;
    }
    if (limits->max_bytes && len > limits->max_bytes) {
        *why = S_TOO_LARGE;
        return -1;
    }
    s->p = (const unsigned char *) payload;
    s->end = s->p + len;
    s->arena_used = 0;
    s->why = S_SYNTAX;
    //  0 (a config built by hand, as in tests): the scanner's own bound, or none.
    s->max_depth = limits->max_depth > 0 && limits->max_depth < S_MAX_DEPTH ? limits->max_depth
                                                                           : S_MAX_DEPTH;
    s->keys = 0;
    s->max_keys = limits->max_keys > 0 ? limits->max_keys : LONG_MAX;
    s_fields_t fields = {.agent = agent};
    s_ws (s);
    int rc;
    if (s->p >= s->end)
        rc = s_fail (s, S_TRUNCATED);
    else
    if (*s->p != '{')
        rc = s_fail (s, S_NOT_OBJECT);
    else
        rc = s_object (s, 1, &fields);
    if (rc == S_CAPACITY)
        return s_with_jansson (agent, s, payload, len, event, time_field, why);
    if (rc != 0) {
        *why = s->why;
        return -1;
    }
    s_ws (s);
    if (s->p != s->end) {
        *why = S_SYNTAX;
        return -1;
    }
    if (agent->key_field_count > 16) {
        *why = S_KEY_COUNT;
        return -1;
    }
    //  The values are known to be valid JSON: re-read the few that matter.
    size_t used = 0;
    event->series[0] = 0;
    for (size_t k = 0; k < agent->key_field_count; k++) {
        const unsigned char *at = fields.key_at[k];
        char part[MESH_SERIES_KEY_MAX];
        size_t plen = 0;
        if (at && *at == '"') {
            s->p = at;
            s->end = (const unsigned char *) payload + len;
            s_string (s, part, sizeof part, &plen);
            if (plen >= sizeof part) {
                *why = S_KEY_LONG;
                return -1;
            }
            part[plen] = 0;
        }
        else
        if (at && (*at == '-' || (*at >= '0' && *at <= '9'))) {
            double d;
            bool is_int;
            long long i;
            s->p = at;
            s->end = (const unsigned char *) payload + len;
            s_number (s, &d, &is_int, &i);
            if (!is_int) {
                *why = S_KEY_TYPE;
                return -1;
            }
            plen = (size_t) snprintf (part, sizeof part, "%lld", i);
        }
        else {
            *why = at ? S_KEY_TYPE : S_KEY_MISSING;
            return -1;
        }
        for (size_t c = 0; c < plen; c++)
            if ((unsigned char) part[c] < 0x20 || part[c] == 0x7f) {
                *why = S_KEY_CONTROL;
                return -1;
            }
        if (used + (k ? 1 : 0) + plen >= sizeof event->series) {
            *why = S_KEY_LONG;
            return -1;
        }
        if (k)
            event->series[used++] = '/';
        memcpy (event->series + used, part, plen);
        used += plen;
        event->series[used] = 0;
    }
    const unsigned char *v = fields.value_at;
    if (!v || !(*v == '-' || (*v >= '0' && *v <= '9'))) {
        *why = v ? S_VALUE_TYPE : S_VALUE_MISSING;
        return -1;
    }
    bool is_int;
    long long ivalue;
    s->p = v;
    s->end = (const unsigned char *) payload + len;
    s_number (s, &event->value, &is_int, &ivalue);
    if (!isfinite (event->value)) {
        *why = S_VALUE_TYPE;
        return -1;
    }
    //  The time field is handed back for the caller's parser (numbers and RFC 3339).
    time_field->kind = MESH_EVENT_FIELD_ABSENT;
    const unsigned char *t = fields.time_at;
    if (t) {
        if (*t == '"') {
            s->p = t;
            size_t tlen = 0;
            s_string (s, time_field->text, sizeof time_field->text - 1, &tlen);
            if (tlen >= sizeof time_field->text - 1) {
                *why = mesh_event_why_time;
                return -1;
            }
            time_field->text[tlen] = 0;
            time_field->kind = MESH_EVENT_FIELD_STRING;
        }
        else
        if (*t == '-' || (*t >= '0' && *t <= '9')) {
            s->p = t;
            long long ti;
            bool tint;
            s_number (s, &time_field->number, &tint, &ti);
            time_field->kind = MESH_EVENT_FIELD_NUMBER;
        }
        else
            time_field->kind = MESH_EVENT_FIELD_OTHER;
    }
    return 0;
}

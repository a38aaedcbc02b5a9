/*  backend - picks a backend kind's callback table and keeps the call contract.
 *
 *  Every kind lives in its own file (backend_<kind>.c) and exports one
 *  mesh_backend_ops_t.  This file is the only place that knows the list, and it
 *  enforces what callers rely on whatever the kind does: a reply is either complete
 *  (content set) or, on failure, empty but for latency, with a failure class and a
 *  one-line detail.
 */
#include "backend.h"
#include "log.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _mesh_backend_t {
    const mesh_backend_ops_t *ops;
    void *state;
    char *name;
};

mesh_backend_t *
mesh_backend_new (const mesh_backend_config_t *cfg)
{
    assert (cfg);
    const mesh_backend_ops_t *ops = NULL;
    switch (cfg->kind) {
        case MESH_BACKEND_SCRIPTED: ops = &mesh_backend_scripted_ops; break;
        case MESH_BACKEND_OPENAI: ops = &mesh_backend_http_ops; break;
    }
    const char *name = cfg->name ? cfg->name : "unnamed";
    if (!ops) {
        mesh_err ("backend %s: unknown kind %d", name, (int) cfg->kind);
        return NULL;
    }
    mesh_backend_t *self = calloc (1, sizeof *self);
    if (!self || !(self->name = strdup (name))) {
        mesh_err ("backend %s: out of memory", name);
        free (self);
        return NULL;
    }
    self->ops = ops;
    self->state = ops->create (cfg);
    if (!self->state) {
        free (self->name);
        free (self);
        return NULL;
    }
    return self;
}

void
mesh_backend_destroy (mesh_backend_t **self_p)
{
    assert (self_p);
    mesh_backend_t *self = *self_p;
    if (!self)
        return;
    self->ops->destroy (self->state);
    free (self->name);
    free (self);
    *self_p = NULL;
}

int
mesh_backend_call (mesh_backend_t *self, json_t *messages, int max_tokens, json_t *schema,
                   const char *seed_key, mesh_backend_reply_t *reply, mesh_fail_t *why,
                   char **detail)
{
    return mesh_backend_call_ex (self, messages, max_tokens, schema, seed_key, NULL, reply, why,
                                 detail);
}

bool
mesh_backend_available (mesh_backend_t *self)
{
    assert (self);
    return !self->ops->available || self->ops->available (self->state);
}

int
mesh_backend_call_ex (mesh_backend_t *self, json_t *messages, int max_tokens, json_t *schema,
                      const char *seed_key, const mesh_backend_opts_t *opts,
                      mesh_backend_reply_t *reply, mesh_fail_t *why, char **detail)
{
    assert (self);
    assert (reply && why && detail);
    memset (reply, 0, sizeof *reply);
    *why = MESH_FAIL_NONE;
    *detail = NULL;
    if (!json_is_array (messages) || max_tokens < 1) {
        *why = MESH_FAIL_MODEL_ERROR;
        *detail = strdup ("bad request: messages must be an array and max_tokens >= 1");
        return -1;
    }
    reply->ttft_ms = -1;
    int rc = self->ops->call (self->state, messages, max_tokens, schema, seed_key, opts, reply,
                              why, detail);
    if (rc == 0 && reply->content)
        return 0;
    //  Failure (or a kind that broke its contract): keep what the record and the charge
    //  need (latency, sizes, the requests), never a partial content.
    mesh_backend_reply_t kept = {.latency_ms = reply->latency_ms,
                                 .received_bytes = reply->received_bytes, .sent = reply->sent,
                                 .http_status = reply->http_status, .requests = reply->requests,
                                 .complete = reply->complete,
                                 .answered_error = reply->answered_error,
                                 .flavor = reply->flavor, .streamed = reply->streamed,
                                 .ttft_ms = reply->ttft_ms, .structured = reply->structured,
                                 .schema_fallback = reply->schema_fallback,
                                 .context_tokens = reply->context_tokens,
                                 .requests_log = reply->requests_log};
    reply->requests_log = NULL;
    mesh_backend_reply_clear (reply);
    *reply = kept;
    if (*why == MESH_FAIL_NONE)
        *why = MESH_FAIL_MODEL_ERROR;
    if (!*detail)
        *detail = strdup ("backend failed without a reason");
    return -1;
}

void
mesh_backend_reply_clear (mesh_backend_reply_t *reply)
{
    if (!reply)
        return;
    free (reply->content);
    free (reply->model);
    free (reply->finish_reason);
    free (reply->reasoning);
    json_decref (reply->requests_log);
    memset (reply, 0, sizeof *reply);
}

const char *
mesh_backend_name (const mesh_backend_t *self)
{
    assert (self);
    return self->name;
}

//  Length of the UTF-8 sequence at P (at most LEFT bytes), or 0 if it is not valid
//  (overlong forms, surrogates and code points past U+10FFFF included).
static size_t
s_utf8_length (const unsigned char *p, size_t left)
{
    if (p[0] < 0x80)
        return 1;
    size_t n = p[0] >= 0xC2 && p[0] <= 0xDF ? 2 : p[0] >= 0xE0 && p[0] <= 0xEF ? 3
             : p[0] >= 0xF0 && p[0] <= 0xF4 ? 4 : 0;
    if (n == 0 || n > left)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    if ((p[0] == 0xE0 && p[1] < 0xA0) || (p[0] == 0xED && p[1] > 0x9F)
        || (p[0] == 0xF0 && p[1] < 0x90) || (p[0] == 0xF4 && p[1] > 0x8F))
        return 0;
    return n;
}

static mesh_fail_t
s_scan_fail (mesh_fail_t fail, char **detail, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    if (vasprintf (detail, format, args) < 0)
        *detail = NULL;
    va_end (args);
    return fail;
}

mesh_fail_t
mesh_backend_scan (const char *text, size_t len, const mesh_output_limits_t *limits,
                   char **detail)
{
    assert (text && limits && detail);
    *detail = NULL;
    mesh_output_limits_t max;
    mesh_config_output_limits_default (&max);
    if (limits->max_bytes) max.max_bytes = limits->max_bytes;
    if (limits->max_depth) max.max_depth = limits->max_depth;
    if (limits->max_keys) max.max_keys = limits->max_keys;
    if (limits->max_string) max.max_string = limits->max_string;
    if (len > max.max_bytes)
        return s_scan_fail (MESH_FAIL_MODEL_OVERSIZE, detail,
                            "output is %zu bytes, over the limit of %zu (limits.max_bytes)",
                            len, max.max_bytes);
    const unsigned char *p = (const unsigned char *) text;
    int depth = 0;
    size_t keys = 0;
    for (size_t i = 0; i < len;) {
        size_t n = s_utf8_length (p + i, len - i);
        if (p[i] == 0)
            return s_scan_fail (MESH_FAIL_MODEL_MALFORMED, detail,
                                "output contains a NUL byte at offset %zu", i);
        if (n == 0)
            return s_scan_fail (MESH_FAIL_MODEL_MALFORMED, detail,
                                "output is not valid UTF-8 at byte offset %zu", i);
        if (p[i] == '"') {
            size_t start = i++;
            while (i < len && p[i] != '"') {
                if (p[i] == '\\' && i + 1 < len) {
                    if (p[i + 1] == 'u' && i + 5 < len && !memcmp (p + i + 2, "0000", 4))
                        return s_scan_fail (MESH_FAIL_MODEL_MALFORMED, detail,
                                            "output contains an escaped NUL (\\u0000) at "
                                            "offset %zu", i);
                    i += 2;
                    continue;
                }
                size_t m = s_utf8_length (p + i, len - i);
                if (p[i] == 0 || m == 0)
                    break;              //  reported by the outer loop
                i += m;
            }
            if (i - start - 1 > max.max_string)
                return s_scan_fail (MESH_FAIL_MODEL_OVERSIZE, detail,
                                    "output has a string of %zu bytes at offset %zu, over the "
                                    "limit of %zu (limits.max_string)", i - start - 1, start,
                                    max.max_string);
            if (i < len && p[i] == '"')
                i++;
            continue;
        }
        if (p[i] == '{' || p[i] == '[') {
            if (++depth > max.max_depth)
                return s_scan_fail (MESH_FAIL_MODEL_OVERSIZE, detail,
                                    "output is nested deeper than %d levels at offset %zu "
                                    "(limits.max_depth)", max.max_depth, i);
        }
        else if (p[i] == '}' || p[i] == ']')
            depth--;
        else if (p[i] == ':' && ++keys > max.max_keys)
            return s_scan_fail (MESH_FAIL_MODEL_OVERSIZE, detail,
                                "output has more than %zu object keys (limits.max_keys)",
                                max.max_keys);
        i += n;
    }
    return MESH_FAIL_NONE;
}

bool
mesh_backend_finished (const char *finish_reason)
{
    static const char *stops[] = { "stop", "stop_sequence", "eos_token", "eos", NULL };
    if (!finish_reason)
        return true;
    for (int i = 0; stops[i]; i++)
        if (!strcmp (finish_reason, stops[i]))
            return true;
    return false;
}

long
mesh_backend_estimate_tokens (size_t bytes)
{
    return (long) ((bytes + 3) / 4);
}

long
mesh_backend_estimate_json (json_t *value)
{
    if (!value)
        return 0;
    size_t size = json_dumpb (value, NULL, 0, JSON_COMPACT);
    return mesh_backend_estimate_tokens (size);
}

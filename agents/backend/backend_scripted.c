/*  backend_scripted - canned model outputs from a JSON-lines file.
 *  Data path: event -> detect -> incident -> [reason] -> gate -> act -> record.
 *
 *  The demo and the tests need a "model" that is stochastic-looking but reproducible:
 *  each line of the file is one possible output,
 *
 *      {"content": "<exact model text>", "completion_tokens": 42}
 *
 *  (completion_tokens optional; blank lines and lines starting with '#' are skipped;
 *  any other key, a wrong type or a line that is not a JSON object fails the load
 *  with FILE:LINE).  The reply for a call is chosen by a hash of the seed key
 *  ("<decision id>/<step>") modulo the number of outputs, so re-running the same
 *  incident gives the same outputs step for step, on any machine (SHA-256, no
 *  process-local seed), while the steps of one incident draw independently.  Usage
 *  is estimated from bytes like any server that does not report it; the prompt side
 *  always is, so `estimated` is always set.
 */
#include "backend.h"
#include "log.h"

#include <errno.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_LINE   (256 * 1024)   //  one output
#define S_MAX_LINES  100000

typedef struct {
    char *content;
    long completion_tokens;         //  -1: estimate from the content
} s_output_t;

typedef struct {
    s_output_t *outputs;
    size_t count;
} s_scripted_t;

static void
s_scripted_free (s_scripted_t *self)
{
    if (!self)
        return;
    for (size_t i = 0; i < self->count; i++)
        free (self->outputs[i].content);
    free (self->outputs);
    free (self);
}

//  Parse one non-blank, non-comment line into *out.  0, or -1 with a message in ERR.
static int
s_parse_line (const char *line, size_t len, s_output_t *out, char *err, size_t err_size)
{
    json_error_t jerr;
    json_t *obj = json_loadb (line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj) {
        snprintf (err, err_size, "not JSON: %s (column %d)", jerr.text, jerr.column);
        return -1;
    }
    int rc = -1;
    if (!json_is_object (obj)) {
        snprintf (err, err_size, "expected an object {\"content\": \"...\"}");
        goto done;
    }
    const char *key;
    json_t *value;
    json_object_foreach (obj, key, value) {
        if (strcmp (key, "content") && strcmp (key, "completion_tokens")) {
            snprintf (err, err_size, "unknown key '%s' (expected content, completion_tokens)",
                      key);
            goto done;
        }
    }
    json_t *content = json_object_get (obj, "content");
    if (!json_is_string (content)) {
        snprintf (err, err_size, "\"content\" must be a string");
        goto done;
    }
    json_t *tokens = json_object_get (obj, "completion_tokens");
    if (tokens && (!json_is_integer (tokens) || json_integer_value (tokens) < 0
                   || json_integer_value (tokens) > 1000000000)) {
        snprintf (err, err_size, "\"completion_tokens\" must be an integer >= 0");
        goto done;
    }
    out->content = strndup (json_string_value (content), json_string_length (content));
    out->completion_tokens = tokens ? (long) json_integer_value (tokens) : -1;
    rc = out->content ? 0 : -1;
    if (rc)
        snprintf (err, err_size, "out of memory");
done:
    json_decref (obj);
    return rc;
}

static s_scripted_t *
s_load (const char *path)
{
    FILE *file = fopen (path, "r");
    if (!file) {
        mesh_err ("%s: cannot open scripted responses: %s", path, strerror (errno));
        return NULL;
    }
    s_scripted_t *self = calloc (1, sizeof *self);
    char *line = NULL;
    size_t line_size = 0, alloc = 0;
    ssize_t len;
    int lineno = 0;
    bool ok = self != NULL;
    while (ok && (len = getline (&line, &line_size, file)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        size_t lead = strspn (line, " \t");
        if (line[lead] == 0 || line[lead] == '#')
            continue;
        if ((size_t) len > S_MAX_LINE || self->count >= S_MAX_LINES) {
            mesh_err ("%s:%d: line too long or too many lines (max %d bytes, %d lines)", path,
                      lineno, S_MAX_LINE, S_MAX_LINES);
            ok = false;
            break;
        }
        if (strlen (line) != (size_t) len) {
            mesh_err ("%s:%d: NUL byte in line", path, lineno);
            ok = false;
            break;
        }
        if (self->count == alloc) {
            size_t grown = alloc ? alloc * 2 : 16;
            s_output_t *outputs = realloc (self->outputs, grown * sizeof *outputs);
            if (!outputs) {
                mesh_err ("%s:%d: out of memory", path, lineno);
                ok = false;
                break;
            }
            self->outputs = outputs;
            alloc = grown;
        }
        char err[256];
        if (s_parse_line (line, (size_t) len, &self->outputs[self->count], err, sizeof err)) {
            mesh_err ("%s:%d: %s", path, lineno, err);
            ok = false;
            break;
        }
        self->count++;
    }
    if (ok && ferror (file)) {
        mesh_err ("%s: read error: %s", path, strerror (errno));
        ok = false;
    }
    if (ok && self->count == 0) {
        mesh_err ("%s: no responses in file (need at least one {\"content\": ...} line)", path);
        ok = false;
    }
    free (line);
    fclose (file);
    if (!ok) {
        s_scripted_free (self);
        return NULL;
    }
    return self;
}

static void *
s_create (const mesh_backend_config_t *cfg)
{
    if (sodium_init () < 0) {
        mesh_err ("backend %s: libsodium failed to initialise", cfg->name ? cfg->name : "unnamed");
        return NULL;
    }
    if (!cfg->file) {
        mesh_err ("backend %s: scripted backend needs a responses file",
                  cfg->name ? cfg->name : "unnamed");
        return NULL;
    }
    return s_load (cfg->file);
}

static void
s_destroy (void *state)
{
    s_scripted_free (state);
}

//  The first 8 bytes of SHA-256 (KEY), big-endian.  A cheap hash like FNV-1a is not
//  enough here: keys differ only in their last byte ("<id>/1", "<id>/2"), and FNV-1a
//  mixes the last byte so poorly that the steps of one incident would pick correlated
//  lines, and a reask would rarely draw a different answer.
static uint64_t
s_seed_hash (const char *key)
{
    unsigned char hash[crypto_hash_sha256_BYTES];
    crypto_hash_sha256 (hash, (const unsigned char *) key, strlen (key));
    uint64_t value = 0;
    for (int i = 0; i < 8; i++)
        value = (value << 8) | hash[i];
    return value;
}

static int
s_call (void *state, json_t *messages, int max_tokens, json_t *schema, const char *seed_key,
        const mesh_backend_opts_t *opts, mesh_backend_reply_t *reply, mesh_fail_t *why,
        char **detail)
{
    (void) opts;
    (void) max_tokens;
    (void) schema;
    s_scripted_t *self = state;
    const s_output_t *output = &self->outputs[s_seed_hash (seed_key ? seed_key : "") % self->count];
    reply->content = strdup (output->content);
    reply->model = strdup ("scripted");
    reply->finish_reason = strdup ("stop");
    if (!reply->content || !reply->model || !reply->finish_reason) {
        *why = MESH_FAIL_MODEL_ERROR;
        *detail = strdup ("out of memory");
        return -1;
    }
    reply->prompt_tokens = mesh_backend_estimate_json (messages);
    reply->completion_tokens = output->completion_tokens >= 0
                                 ? output->completion_tokens
                                 : mesh_backend_estimate_tokens (strlen (output->content));
    reply->estimated = true;
    reply->latency_ms = 0;
    reply->sent = true;
    reply->requests = 1;
    reply->http_status = 200;
    reply->complete = true;
    reply->flavor = "scripted";
    reply->structured = "none";
    return 0;
}

const mesh_backend_ops_t mesh_backend_scripted_ops = {
    .kind = "scripted",
    .create = s_create,
    .destroy = s_destroy,
    .call = s_call,
};

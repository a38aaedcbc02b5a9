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
        case MESH_BACKEND_OPENAI: ops = &mesh_backend_openai_ops; break;
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
    int rc = self->ops->call (self->state, messages, max_tokens, schema, seed_key, reply, why,
                              detail);
    if (rc == 0 && reply->content)
        return 0;
    //  Failure (or a kind that broke its contract): keep only the latency.
    long latency_ms = reply->latency_ms;
    mesh_backend_reply_clear (reply);
    reply->latency_ms = latency_ms;
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
    memset (reply, 0, sizeof *reply);
}

const char *
mesh_backend_name (const mesh_backend_t *self)
{
    assert (self);
    return self->name;
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

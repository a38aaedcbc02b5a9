/*  fuzz_backend - the model-response parser (agents/backend/backend_http.c) on any
 *  HTTP answer.
 *
 *  Byte 0 of the input picks the HTTP status (mostly 200; else 400, 422, 429, 500,
 *  503, 204, 302 or 600), the rest is the response body.  The loopback server in
 *  fuzz_common.c sends it, and a fresh openai backend (fresh, so that a server that
 *  refused response_format once does not change how the next input is handled) reads
 *  it through libcurl with mesh_backend_call, as a reasoning worker does.  Besides
 *  what ASan and UBSan catch, the harness aborts if a success carries no content or a
 *  content with a NUL, or a failure has no class or a detail that is not one line.
 */
#include "backend.h"
#include "fuzz_common.h"

#include <stdlib.h>
#include <string.h>

static const unsigned s_statuses[] = { 400, 422, 429, 500, 503, 204, 302, 600 };

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    static json_t *messages, *schema;
    if (!messages) {
        fuzz_quiet ();
        fuzz_world ();
        messages = json_pack ("[{s:s, s:s}, {s:s, s:s}]", "role", "system", "content",
                              "You are a test.", "role", "user", "content", "Propose.");
        schema = json_pack ("{s:s, s:[s]}", "type", "object", "required", "action");
    }
    if (size < 1)
        return 0;
    unsigned status = data[0] < 0xf8 ? 200 : s_statuses[data[0] - 0xf8];
    fuzz_http_answer (status, data + 1, size - 1);
    mesh_backend_t *backend = mesh_backend_new (&fuzz_world ()->cfg.backends[0]);
    if (!backend)
        abort ();
    mesh_backend_reply_t reply;
    mesh_fail_t why = MESH_FAIL_NONE;
    char *detail = NULL;
    int rc = mesh_backend_call (backend, messages, 256, schema, "fuzz/1", &reply, &why, &detail);
    if (rc == 0) {
        if (!reply.content || why != MESH_FAIL_NONE || reply.prompt_tokens < 0
            || reply.completion_tokens < 0)
            abort ();
        mesh_backend_reply_clear (&reply);
    }
    else {
        if (why == MESH_FAIL_NONE || reply.content)
            abort ();
        if (detail && strpbrk (detail, "\r\n"))
            abort ();
        mesh_backend_reply_clear (&reply);     //  a failure keeps its requests' log
    }
    free (detail);
    mesh_backend_destroy (&backend);
    return 0;
}

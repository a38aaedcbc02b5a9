/*  fuzz_reason - the proposal parse of the reasoning loop (agents/reason.c) on any
 *  model output.
 *
 *  The input is the model's message content.  When it is valid UTF-8 the loopback
 *  server answers with a well-formed chat completion carrying it (so the fuzzer works
 *  on what the model says, not on the envelope: fuzz_backend does that); otherwise
 *  with the raw bytes as the body.  mesh_reason_run then does everything it does with
 *  a real answer, for one step: strip a fence, parse exactly one object, run the gate
 *  chain (fuzz_common.c's agent and the shipped rules), fall back, and build the
 *  decision record.  Besides what ASan and UBSan catch, the harness aborts unless the
 *  record comes back, serialises, and passes the protocol's DECISION check as the
 *  supervisor would receive it.  Tokens come from meshd's real ledger, in process,
 *  with its journal in the harness's directory; each run is another incident, so no
 *  incident cap runs out over a long run.
 */
#include "fuzz_common.h"
#include "gate.h"
#include "proto.h"
#include "reason.h"
#include "tokens.h"

#include <stdlib.h>
#include <string.h>

static mesh_reason_t *s_reason;
static mesh_tokens_t *s_tokens;
static unsigned long long s_runs;

//  The ledger without a sync per call (the fuzzer would measure the disk).
static int
s_reserve (void *arg, const mesh_tokens_ask_t *ask, mesh_tokens_grant_t *grant)
{
    return mesh_tokens_reserve (s_tokens, "ops", ask, grant);
}

static int
s_settle (void *arg, int64_t grant, const mesh_tokens_charge_t *charge, json_t **budget)
{
    return mesh_tokens_settle (s_tokens, "ops", grant, charge, budget);
}

static void
s_setup (void)
{
    fuzz_quiet ();
    fuzz_world_t *world = fuzz_world ();
    world->agent.reason.budget = (mesh_budget_config_t) {
        .tokens = world->agent.reason.budget_tokens, .window = MESH_WINDOW_ROLLING,
        .window_s = 60};
    char *err = NULL, journal[4096], why[512];
    snprintf (journal, sizeof journal, "%s/tokens.jsonl", fuzz_dir ());
    s_tokens = mesh_tokens_new (&world->cfg, journal, why, sizeof why);
    mesh_gate_t *gate = mesh_gate_new (&world->cfg, &world->agent, &err);
    mesh_tokens_port_t port = {.reserve = s_reserve, .settle = s_settle, .arg = NULL};
    s_reason = gate && s_tokens ? mesh_reason_new (&world->cfg, &world->agent, gate, &port)
                                : NULL;
    if (!s_reason)
        abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (!s_reason)
        s_setup ();
    json_t *content = json_stringn ((const char *) data, size);
    if (content) {
        json_t *answer = json_pack ("{s:s, s:[{s:i, s:{s:s, s:o}, s:s}], s:{s:i, s:i}}",
                                    "model", "tiny", "choices", "index", 0, "message", "role",
                                    "assistant", "content", content, "finish_reason", "stop",
                                    "usage", "prompt_tokens", 100, "completion_tokens", 20);
        char *text = json_dumps (answer, JSON_COMPACT);
        fuzz_http_answer (200, (const uint8_t *) text, strlen (text));
        free (text);
        json_decref (answer);
    }
    else
        fuzz_http_answer (200, data, size);

    json_t *event = json_pack ("{s:s, s:s, s:f, s:i}", "host", "web-1", "metric", "cpu",
                               "value", 97.5, "ts", 1700000000);
    mesh_incident_t incident = {
        .id = "f00dfeed00000000000000000000000000000000000000000000000000000001",
        .agent = "ops", .topic = "metrics", .partition = 0, .offset = 1, .series = "web-1/cpu",
        .value = 97.5, .ts_ms = 1700000000000LL, .detector = "ewma",
        .info = { .score = 0.999, .mean = 40, .stddev = 3, .z = 19, .n = 200, .warm = true,
                  .window_len = 2, .window = { 40, 97.5 } },
        .event = event };
    snprintf (incident.id, sizeof incident.id, "f00dfeed%056llx", ++s_runs);
    json_t *record = mesh_reason_run (s_reason, &incident, NULL);
    if (!record || mesh_tokens_reserved (s_tokens) != 0)
        abort ();                       //  a grant left open is a leak in the loop
    //  What the supervisor gets: the record in a DECISION body, through its parser.
    json_t *body = json_pack ("{s:o}", "record", record);
    char *text = json_dumps (body, JSON_COMPACT);
    if (!text || strlen (text) > MESH_PROTO_MAX_BODY)
        abort ();
    json_error_t jerr;
    json_t *back = json_loads (text, JSON_REJECT_DUPLICATES, &jerr);
    if (!back || mesh_proto_check (MESH_MSG_DECISION, back))
        abort ();
    json_decref (back);
    free (text);
    json_decref (body);
    json_decref (event);
    return 0;
}

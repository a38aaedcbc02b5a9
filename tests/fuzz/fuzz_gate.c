/*  fuzz_gate - the proposal check (agents/gate.c) on any model proposal.
 *
 *  The input is the model's proposal as JSON text, optionally followed by a NUL byte
 *  and the triggering event as JSON (rules see it as ctx.event; it comes from Kafka,
 *  so it is untrusted too).  The proposal goes through mesh_gate_builtin and the whole
 *  chain, mesh_gate_check: the built-in check and the shipped rules
 *  rules/action_allowlist.lua and rules/confidence_floor.lua, as the reasoning loop
 *  runs them (fuzz_common.c has the agent).  Besides what ASan and UBSan catch, the
 *  harness aborts if the chain accepts what the built-in check refuses, if a refusal
 *  names no failure class, or if a verdict lacks its rule or verdict.
 */
#include "fuzz_common.h"
#include "gate.h"

#include <stdlib.h>
#include <string.h>

static mesh_gate_t *s_gate;

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (!s_gate) {
        fuzz_quiet ();
        fuzz_world_t *world = fuzz_world ();
        char *err = NULL;
        s_gate = mesh_gate_new (&world->cfg, &world->agent, &err);
        if (!s_gate)
            abort ();
    }
    const uint8_t *nul = memchr (data, 0, size);
    size_t proposal_len = nul ? (size_t) (nul - data) : size;
    json_error_t jerr;
    json_t *proposal = json_loadb ((const char *) data, proposal_len, JSON_REJECT_DUPLICATES,
                                   &jerr);
    if (!proposal)
        return 0;
    json_t *event = nul ? json_loadb ((const char *) nul + 1, size - proposal_len - 1,
                                      JSON_REJECT_DUPLICATES, &jerr)
                        : NULL;
    const char *name = json_string_value (json_object_get (proposal, "action"));
    json_t *spec = name ? mesh_gate_action_spec (s_gate, name) : NULL;
    json_t *ctx = json_pack ("{s:s, s:f, s:o, s:o, s:[]}", "agent", "ops", "now", 1.7e9,
                             "event", event ? event : json_null (), "action",
                             spec ? json_deep_copy (spec) : json_null (), "history");
    char *problems = mesh_gate_builtin (s_gate, proposal);
    json_t *verdicts = json_array ();
    mesh_fail_t fail = MESH_FAIL_NONE;
    bool accepted = mesh_gate_check (s_gate, proposal, ctx, verdicts, &fail);
    if (accepted && problems)
        abort ();
    if (!accepted && fail == MESH_FAIL_NONE)
        abort ();
    if (json_array_size (verdicts) == 0)
        abort ();
    size_t i;
    json_t *verdict;
    json_array_foreach (verdicts, i, verdict)
        if (!json_is_string (json_object_get (verdict, "rule"))
            || !json_is_string (json_object_get (verdict, "verdict")))
            abort ();
    free (problems);
    json_decref (verdicts);
    json_decref (ctx);
    json_decref (proposal);
    return 0;
}

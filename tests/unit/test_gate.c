/*  test_gate - the validator chain: the built-in schema check, the shipped rules in a
 *  chain, every verdict recorded, the worst failure reported, the rules hash, the
 *  manifest and archive of a rule set, checks from several threads, and a chain that
 *  keeps working after a rule hit a limit.
 *
 *  The config is built by hand (config.c is its own module); run from the repository
 *  root so that rules/ and tests/unit/rules/ resolve.
 */
#include "gate.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RULES "tests/unit/rules/"

//  --- a hand-built config ------------------------------------------------------------

static mesh_param_spec_t s_scale_params[] = {
    { .name = (char *) "service", .type = MESH_PARAM_STRING, .required = true,
      .pattern = (char *) "[a-z][a-z0-9-]*", .max_length = 32 },
    { .name = (char *) "replicas", .type = MESH_PARAM_INTEGER, .required = true,
      .has_min = true, .min = 1, .has_max = true, .max = 20 },
};
static char *s_services[] = { (char *) "web", (char *) "api", (char *) "database",
                              (char *) "meshd" };
static mesh_param_spec_t s_restart_params[] = {
    { .name = (char *) "service", .type = MESH_PARAM_STRING, .required = true,
      .enum_values = s_services, .enum_count = 4 },     //  max_length 0: the default 256
};
static mesh_param_spec_t s_escalate_params[] = {
    { .name = (char *) "summary", .type = MESH_PARAM_STRING, .required = false,
      .max_length = 64 },
};
static mesh_param_spec_t s_note_params[] = {
    { .name = (char *) "text", .type = MESH_PARAM_STRING, .required = true, .max_length = 64 },
};
static mesh_param_spec_t s_tune_params[] = {
    { .name = (char *) "ratio", .type = MESH_PARAM_NUMBER, .required = true,
      .has_min = true, .min = 0, .has_max = true, .max = 1 },
    { .name = (char *) "dry_run", .type = MESH_PARAM_BOOLEAN, .required = false },
};
static mesh_param_spec_t s_bad_params[] = {
    { .name = (char *) "x", .type = MESH_PARAM_STRING, .required = true,
      .pattern = (char *) "([a-z" },
};
static mesh_action_spec_t s_actions[] = {
    { .name = (char *) "scale_out", .kind = MESH_ACTION_KAFKA, .topic = (char *) "ops",
      .params = s_scale_params, .param_count = 2 },
    { .name = (char *) "restart_service", .kind = MESH_ACTION_LOG,
      .params = s_restart_params, .param_count = 1 },
    { .name = (char *) "escalate", .kind = MESH_ACTION_LOG,
      .params = s_escalate_params, .param_count = 1 },
    { .name = (char *) "note", .kind = MESH_ACTION_LOG, .params = s_note_params,
      .param_count = 1 },
    { .name = (char *) "tune", .kind = MESH_ACTION_LOG, .params = s_tune_params,
      .param_count = 2 },
    { .name = (char *) "forbidden", .kind = MESH_ACTION_LOG },
    { .name = (char *) "bad_pattern", .kind = MESH_ACTION_LOG, .params = s_bad_params,
      .param_count = 1 },
};
static char *s_agent_actions[] = {
    (char *) "scale_out", (char *) "restart_service", (char *) "escalate", (char *) "note",
    (char *) "tune"
};

static mesh_config_t s_cfg;
static mesh_agent_config_t s_agent;
static char *s_global_rules[8];
static char *s_agent_rules[8];

//  Reset the config: all actions, no rules.
static void
s_config (void)
{
    memset (&s_cfg, 0, sizeof s_cfg);
    memset (&s_agent, 0, sizeof s_agent);
    s_cfg.path = (char *) "test.yaml";
    s_cfg.lua_instructions = 1000000;
    s_cfg.lua_memory = 8 << 20;
    s_cfg.lua_time_ms = 5000;                   //  generous: sanitised builds are slow
    s_cfg.actions = s_actions;
    s_cfg.action_count = 5;                     //  bad_pattern only when asked for
    s_cfg.global_rules = s_global_rules;
    s_cfg.agents = &s_agent;
    s_cfg.agent_count = 1;
    s_agent.name = (char *) "cpu-watch";
    s_agent.actions = s_agent_actions;
    s_agent.action_count = 5;
    s_agent.rules = s_agent_rules;
}

static void
s_global (const char *path)
{
    s_global_rules [s_cfg.global_rule_count++] = (char *) path;
}

static void
s_rule (const char *path)
{
    s_agent_rules [s_agent.rule_count++] = (char *) path;
}

static mesh_gate_t *
s_gate (void)
{
    char *err = NULL;
    mesh_gate_t *gate = mesh_gate_new (&s_cfg, &s_agent, &err);
    if (!gate)
        fail_msg ("mesh_gate_new: %s", err);
    assert_null (err);
    return gate;
}

static const char *s_ctx =
    "{\"agent\":\"cpu-watch\",\"now\":1700000000,\"incident\":{\"series\":\"web-1/cpu\","
    "\"value\":97.5,\"score\":0.97,\"detector\":\"ewma\"},\"event\":{\"host\":\"web-1\"},"
    "\"history\":[]}";

//  Check PROPOSAL (JSON text) with CTX_TEXT (NULL: the default ctx).  Returns the
//  verdicts array (caller frees) and sets *ok and *fail.
static json_t *
s_check_ctx (mesh_gate_t *gate, const char *proposal, const char *ctx_text, bool *ok,
             mesh_fail_t *fail)
{
    json_error_t error;
    json_t *p = json_loads (proposal, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
    json_t *ctx = json_loads (ctx_text ? ctx_text : s_ctx, 0, &error);
    if (!p || !ctx)
        fail_msg ("bad test JSON %s: %s", proposal, error.text);
    json_t *verdicts = json_array ();
    *fail = MESH_FAIL_COUNT_;
    *ok = mesh_gate_check (gate, p, ctx, verdicts, fail);
    json_decref (p);
    json_decref (ctx);
    return verdicts;
}

static json_t *
s_check (mesh_gate_t *gate, const char *proposal, bool *ok, mesh_fail_t *fail)
{
    return s_check_ctx (gate, proposal, NULL, ok, fail);
}

static const char *
s_field (json_t *verdicts, size_t index, const char *key)
{
    return json_string_value (json_object_get (json_array_get (verdicts, index), key));
}

//  The built-in check alone rejects PROPOSAL with a reason containing WANT, and no
//  Lua rule is run.
static void
s_builtin_rejects (mesh_gate_t *gate, const char *proposal, const char *want)
{
    bool ok;
    mesh_fail_t fail;
    json_t *verdicts = s_check (gate, proposal, &ok, &fail);
    const char *reason = s_field (verdicts, 0, "reason");
    if (ok || fail != MESH_FAIL_RULE_REJECT || json_array_size (verdicts) != 1
    ||  strcmp (s_field (verdicts, 0, "rule"), "builtin") != 0
    ||  strcmp (s_field (verdicts, 0, "verdict"), "reject") != 0
    ||  !reason || !strstr (reason, want))
        fail_msg ("%s: got %s, want builtin reject containing \"%s\"", proposal,
                  json_dumps (verdicts, JSON_COMPACT), want);
    json_decref (verdicts);
}

//  Every check accepts PROPOSAL; N verdicts recorded.
static void
s_accepts (mesh_gate_t *gate, const char *proposal, const char *ctx, size_t n)
{
    bool ok;
    mesh_fail_t fail;
    json_t *verdicts = s_check_ctx (gate, proposal, ctx, &ok, &fail);
    if (!ok || fail != MESH_FAIL_NONE || json_array_size (verdicts) != n)
        fail_msg ("%s: got %s, want %zu accepts", proposal, json_dumps (verdicts, JSON_COMPACT),
                  n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal (s_field (verdicts, i, "verdict"), "accept");
        assert_true (json_is_null (json_object_get (json_array_get (verdicts, i), "reason")));
    }
    assert_string_equal (s_field (verdicts, 0, "rule"), "builtin");
    json_decref (verdicts);
}

//  --- tests --------------------------------------------------------------------------

static void
test_builtin_shape (void **state)
{
    s_config ();
    mesh_gate_t *gate = s_gate ();
    s_accepts (gate, "{\"action\":\"scale_out\",\"params\":{\"service\":\"web-1\","
                     "\"replicas\":3},\"confidence\":0.9,\"rationale\":\"hot\"}", NULL, 1);
    s_accepts (gate, "{\"action\":\"escalate\"}", NULL, 1);      //  params absent = {}
    s_accepts (gate, "{\"action\":\"escalate\",\"confidence\":0}", NULL, 1);
    s_accepts (gate, "{\"action\":\"escalate\",\"confidence\":1}", NULL, 1);

    //  The schema is closed: an extra top-level key is refused by name, whatever it says.
    s_builtin_rejects (gate, "{\"action\":\"escalate\",\"confidence\":0,\"extra\":1}",
                       "unknown top-level key \"extra\"; allowed: action, params, confidence, "
                       "rationale");
    s_builtin_rejects (gate, "{\"action\":\"escalate\",\"approved\":true,\"argv\":[\"rm\"]}",
                       "unknown top-level key \"approved\"");
    s_builtin_rejects (gate, "{\"action\":\"escalate\",\"verdict\":\"approve\"}",
                       "unknown top-level key \"verdict\"");
    s_builtin_rejects (gate, "[]", "the proposal must be a JSON object, not an array");
    s_builtin_rejects (gate, "\"scale_out\"", "must be a JSON object");
    s_builtin_rejects (gate, "{}", "\"action\" must be a string naming one of: scale_out, "
                                   "restart_service, escalate, note, tune");
    s_builtin_rejects (gate, "{\"action\":7}", "\"action\" must be a string");
    s_builtin_rejects (gate, "{\"action\":\"reboot\"}", "action \"reboot\" is not allowed");
    //  Declared in the config but not one of this agent's actions.
    s_builtin_rejects (gate, "{\"action\":\"forbidden\"}", "action \"forbidden\" is not allowed");
    //  Byte-exact: no case folding, no trailing garbage.
    s_builtin_rejects (gate, "{\"action\":\"Escalate\"}", "is not allowed");
    s_builtin_rejects (gate, "{\"action\":\"escalate\\u0000x\"}", "\"escalate\\x00x\" is not");
    s_builtin_rejects (gate, "{\"action\":\"escalate\",\"params\":[]}",
                       "\"params\" must be an object, not an array");
    s_builtin_rejects (gate, "{\"action\":\"escalate\",\"params\":null}",
                       "\"params\" must be an object, not null");
    s_builtin_rejects (gate, "{\"action\":\"escalate\",\"confidence\":1.5}", "\"confidence\"");
    s_builtin_rejects (gate, "{\"action\":\"escalate\",\"confidence\":-0.1}", "from 0 to 1");
    s_builtin_rejects (gate, "{\"action\":\"escalate\",\"confidence\":\"high\"}",
                       "\"confidence\" must be a number from 0 to 1, not a string");
    s_builtin_rejects (gate, "{\"action\":\"escalate\",\"rationale\":5}",
                       "\"rationale\" must be a string, not an integer");
    mesh_gate_destroy (&gate);
    assert_null (gate);
    mesh_gate_destroy (&gate);
}

static void
test_builtin_params (void **state)
{
    s_config ();
    mesh_gate_t *gate = s_gate ();
    //  Required and undeclared.
    s_builtin_rejects (gate, "{\"action\":\"scale_out\",\"params\":{\"service\":\"web\"}}",
                       "params.replicas is required by scale_out");
    s_builtin_rejects (gate, "{\"action\":\"scale_out\",\"params\":{\"service\":\"web\","
                             "\"replicas\":2,\"force\":true}}",
                       "params \"force\" is not a parameter of scale_out");
    //  Types.
    s_builtin_rejects (gate, "{\"action\":\"scale_out\",\"params\":{\"service\":\"web\","
                             "\"replicas\":3.5}}",
                       "params.replicas must be an integer, not a real number");
    s_builtin_rejects (gate, "{\"action\":\"scale_out\",\"params\":{\"service\":\"web\","
                             "\"replicas\":3.0}}", "must be an integer");
    s_builtin_rejects (gate, "{\"action\":\"scale_out\",\"params\":{\"service\":\"web\","
                             "\"replicas\":\"3\"}}", "must be an integer, not a string");
    s_builtin_rejects (gate, "{\"action\":\"scale_out\",\"params\":{\"service\":5,"
                             "\"replicas\":3}}", "params.service must be a string, not an integer");
    s_builtin_rejects (gate, "{\"action\":\"scale_out\",\"params\":{\"service\":null,"
                             "\"replicas\":3}}", "must be a string, not null");
    s_builtin_rejects (gate, "{\"action\":\"tune\",\"params\":{\"ratio\":\"0.5\"}}",
                       "params.ratio must be a number, not a string");
    s_builtin_rejects (gate, "{\"action\":\"tune\",\"params\":{\"ratio\":0.5,\"dry_run\":1}}",
                       "params.dry_run must be a boolean, not an integer");
    //  A number accepts an integer; a boolean accepts both values.
    s_accepts (gate, "{\"action\":\"tune\",\"params\":{\"ratio\":1,\"dry_run\":false}}", NULL, 1);
    s_accepts (gate, "{\"action\":\"tune\",\"params\":{\"ratio\":0.25,\"dry_run\":true}}",
               NULL, 1);
    //  Ranges, inclusive.
    s_accepts (gate, "{\"action\":\"scale_out\",\"params\":{\"service\":\"web\","
                     "\"replicas\":20}}", NULL, 1);
    s_builtin_rejects (gate, "{\"action\":\"scale_out\",\"params\":{\"service\":\"web\","
                             "\"replicas\":0}}", "params.replicas is 0, below the minimum 1");
    s_builtin_rejects (gate, "{\"action\":\"scale_out\",\"params\":{\"service\":\"web\","
                             "\"replicas\":21}}", "params.replicas is 21, above the maximum 20");
    s_builtin_rejects (gate, "{\"action\":\"tune\",\"params\":{\"ratio\":1.5}}",
                       "above the maximum 1");
    //  Pattern: the whole string must match (an unanchored search would find "web").
    s_builtin_rejects (gate, "{\"action\":\"scale_out\",\"params\":{\"service\":\"1web\","
                             "\"replicas\":3}}", "params.service \"1web\" does not match the "
                                                 "pattern [a-z][a-z0-9-]*");
    s_builtin_rejects (gate, "{\"action\":\"scale_out\",\"params\":{\"service\":\"web!\","
                             "\"replicas\":3}}", "does not match");
    s_builtin_rejects (gate, "{\"action\":\"scale_out\",\"params\":{\"service\":\"Web\","
                             "\"replicas\":3}}", "does not match");
    //  Enum, byte-exact.
    s_accepts (gate, "{\"action\":\"restart_service\",\"params\":{\"service\":\"api\"}}", NULL, 1);
    s_builtin_rejects (gate, "{\"action\":\"restart_service\",\"params\":{\"service\":\"API\"}}",
                       "params.service \"API\" is not one of: web, api, database, meshd");
    //  Control characters, DEL and NUL.
    s_builtin_rejects (gate, "{\"action\":\"note\",\"params\":{\"text\":\"a\\nb\"}}",
                       "params.text contains a control character");
    s_builtin_rejects (gate, "{\"action\":\"note\",\"params\":{\"text\":\"a\\u007fb\"}}",
                       "control character");
    s_builtin_rejects (gate, "{\"action\":\"note\",\"params\":{\"text\":\"a\\u0000b\"}}",
                       "control character");
    s_builtin_rejects (gate, "{\"action\":\"note\",\"params\":{\"text\":\"\\t\"}}",
                       "control character");
    s_accepts (gate, "{\"action\":\"note\",\"params\":{\"text\":\"caf\\u00e9 ok\"}}", NULL, 1);
    //  Length in bytes: declared 32 for service, default 256 when the spec says 0.
    s_builtin_rejects (gate, "{\"action\":\"scale_out\",\"params\":{\"service\":"
                             "\"abcdefghijklmnopqrstuvwxyzabcdefg\",\"replicas\":3}}",
                       "params.service is longer than 32 bytes");
    char long_enum[400];
    snprintf (long_enum, sizeof long_enum, "{\"action\":\"restart_service\",\"params\":"
              "{\"service\":\"%0257d\"}}", 0);
    s_builtin_rejects (gate, long_enum, "longer than 256 bytes");
    //  Every problem is listed, so one reask can fix them all.
    s_builtin_rejects (gate, "{\"action\":\"scale_out\",\"params\":{\"service\":\"Web\","
                             "\"replicas\":99},\"confidence\":2}",
                       "does not match the pattern [a-z][a-z0-9-]*; params.replicas is 99, "
                       "above the maximum 20; \"confidence\"");
    s_builtin_rejects (gate, "{\"action\":\"note\",\"params\":{\"a\":1,\"b\":1,\"c\":1,\"d\":1,"
                             "\"e\":1,\"f\":1,\"g\":1,\"h\":1,\"i\":1,\"j\":1}}",
                       "... (11 problems in all)");
    mesh_gate_destroy (&gate);
}

static void
test_chain_with_shipped_rules (void **state)
{
    s_config ();
    s_global ("rules/confidence_floor.lua");
    s_rule ("rules/action_allowlist.lua");
    mesh_gate_t *gate = s_gate ();
    bool ok;
    mesh_fail_t fail;

    s_accepts (gate, "{\"action\":\"scale_out\",\"params\":{\"service\":\"web\",\"replicas\":3},"
                     "\"confidence\":0.9}", NULL, 3);
    //  Order: builtin, the global chain, the agent's own.
    json_t *v = s_check (gate, "{\"action\":\"escalate\"}", &ok, &fail);
    assert_true (ok);
    assert_int_equal (fail, MESH_FAIL_NONE);
    assert_int_equal (json_array_size (v), 3);
    assert_string_equal (s_field (v, 1, "rule"), "confidence_floor");
    assert_string_equal (s_field (v, 2, "rule"), "action_allowlist");
    json_decref (v);

    //  Too many replicas for the incident's score; allowed when it is near certain.
    v = s_check (gate, "{\"action\":\"scale_out\",\"params\":{\"service\":\"web\","
                       "\"replicas\":8},\"confidence\":0.9}", &ok, &fail);
    assert_false (ok);
    assert_int_equal (fail, MESH_FAIL_RULE_REJECT);
    assert_int_equal (json_array_size (v), 3);
    assert_string_equal (s_field (v, 1, "verdict"), "accept");
    assert_string_equal (s_field (v, 2, "verdict"), "reject");
    assert_non_null (strstr (s_field (v, 2, "reason"), "scale_out to 8 replicas exceeds 5"));
    json_decref (v);
    s_accepts (gate, "{\"action\":\"scale_out\",\"params\":{\"service\":\"web\",\"replicas\":8},"
                     "\"confidence\":0.9}", "{\"incident\":{\"score\":0.9995}}", 3);

    //  Confidence floor: below, absent, and escalate exempt.
    v = s_check (gate, "{\"action\":\"note\",\"params\":{\"text\":\"x\"},\"confidence\":0.3}",
                 &ok, &fail);
    assert_false (ok);
    assert_string_equal (s_field (v, 1, "verdict"), "reject");
    assert_string_equal (s_field (v, 1, "reason"), "confidence 0.3 is below the floor 0.6");
    assert_string_equal (s_field (v, 2, "verdict"), "accept");
    json_decref (v);
    v = s_check (gate, "{\"action\":\"note\",\"params\":{\"text\":\"x\"}}", &ok, &fail);
    assert_false (ok);
    assert_string_equal (s_field (v, 1, "reason"), "confidence is absent; the floor is 0.6");
    json_decref (v);

    //  Protected services.
    v = s_check (gate, "{\"action\":\"restart_service\",\"params\":{\"service\":\"database\"},"
                       "\"confidence\":0.9}", &ok, &fail);
    assert_false (ok);
    assert_string_equal (s_field (v, 2, "reason"),
                         "service \"database\" is protected from restart_service");
    json_decref (v);
    s_accepts (gate, "{\"action\":\"restart_service\",\"params\":{\"service\":\"web\"},"
                     "\"confidence\":0.9}", NULL, 3);

    //  Declared for the agent but not on the site's allow-list, and under the floor:
    //  both rules reject, both verdicts recorded.
    v = s_check (gate, "{\"action\":\"tune\",\"params\":{\"ratio\":0.5},\"confidence\":0.1}",
                 &ok, &fail);
    assert_false (ok);
    assert_int_equal (fail, MESH_FAIL_RULE_REJECT);
    assert_int_equal (json_array_size (v), 3);
    assert_string_equal (s_field (v, 0, "verdict"), "accept");
    assert_string_equal (s_field (v, 1, "verdict"), "reject");
    assert_string_equal (s_field (v, 2, "verdict"), "reject");
    assert_non_null (strstr (s_field (v, 2, "reason"), "not in this site's allow-list"));
    json_decref (v);

    //  A builtin rejection skips the rules: one verdict only.
    s_builtin_rejects (gate, "{\"action\":\"scale_out\",\"confidence\":0.9}", "required");
    mesh_gate_destroy (&gate);
}

static void
test_worst_failure (void **state)
{
    const char *proposal = "{\"action\":\"escalate\"}";
    bool ok;
    mesh_fail_t fail;

    s_config ();
    s_rule (RULES "reject.lua");
    s_rule (RULES "error.lua");
    s_rule (RULES "hostile_loop.lua");
    s_rule (RULES "accept.lua");
    mesh_gate_t *gate = s_gate ();
    json_t *v = s_check (gate, proposal, &ok, &fail);
    assert_false (ok);
    assert_int_equal (fail, MESH_FAIL_RULE_LIMIT);
    assert_int_equal (json_array_size (v), 5);          //  every rule ran
    const char *want[][3] = {
        { "builtin", "accept", NULL },
        { "reject", "reject", "not today: escalate" },
        { "error", "error", "error.lua:6: rule bug" },
        { "hostile_loop", "limit", "instruction limit" },
        { "accept", "accept", NULL },
    };
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal (s_field (v, i, "rule"), want [i][0]);
        assert_string_equal (s_field (v, i, "verdict"), want [i][1]);
        if (want [i][2])
            assert_string_equal (s_field (v, i, "reason"), want [i][2]);
    }
    json_decref (v);
    mesh_gate_destroy (&gate);

    s_config ();
    s_rule (RULES "error.lua");
    s_rule (RULES "reject.lua");
    gate = s_gate ();
    json_decref (s_check (gate, proposal, &ok, &fail));
    assert_false (ok);
    assert_int_equal (fail, MESH_FAIL_RULE_ERROR);
    mesh_gate_destroy (&gate);

    s_config ();
    s_rule (RULES "reject.lua");
    gate = s_gate ();
    json_decref (s_check (gate, proposal, &ok, &fail));
    assert_false (ok);
    assert_int_equal (fail, MESH_FAIL_RULE_REJECT);
    //  Verdicts and fail are optional.
    json_t *p = json_loads (proposal, 0, NULL);
    assert_false (mesh_gate_check (gate, p, NULL, NULL, NULL));
    json_decref (p);
    mesh_gate_destroy (&gate);
}

static void
test_what_rules_see (void **state)
{
    s_config ();
    s_rule (RULES "ctx_action.lua");
    mesh_gate_t *gate = s_gate ();
    s_accepts (gate, "{\"action\":\"scale_out\",\"params\":{\"service\":\"web\",\"replicas\":3}}",
               NULL, 2);
    //  params absent: rules see {}.
    s_accepts (gate, "{\"action\":\"escalate\"}", NULL, 2);
    //  The caller's JSON is not changed.
    json_t *p = json_loads ("{\"action\":\"escalate\"}", 0, NULL);
    json_t *ctx = json_loads (s_ctx, 0, NULL);
    json_t *p_before = json_deep_copy (p), *ctx_before = json_deep_copy (ctx);
    assert_true (mesh_gate_check (gate, p, ctx, NULL, NULL));
    assert_true (json_equal (p, p_before));
    assert_true (json_equal (ctx, ctx_before));
    //  No ctx at all: rules still get one with the action in it.
    assert_true (mesh_gate_check (gate, p, NULL, NULL, NULL));
    json_decref (p);
    json_decref (ctx);
    json_decref (p_before);
    json_decref (ctx_before);
    //  A null ctx.action is filled in like an absent one.
    s_accepts (gate, "{\"action\":\"escalate\"}", "{\"action\":null}", 2);
    //  A ctx.action the caller set is left as it is (and this rule then rejects).
    bool ok;
    mesh_fail_t fail;
    json_t *v = s_check_ctx (gate, "{\"action\":\"escalate\"}",
                             "{\"action\":{\"name\":\"other\"}}", &ok, &fail);
    assert_false (ok);
    assert_string_equal (s_field (v, 1, "reason"), "ctx.action does not name the proposed action");
    json_decref (v);
    mesh_gate_destroy (&gate);
}

//  --- approval -----------------------------------------------------------------------

//  A note proposal with RATIONALE, which tells the approval fixtures what to do.
static char *
s_note (const char *rationale)
{
    char *text = NULL;
    assert_true (asprintf (&text, "{\"action\":\"note\",\"params\":{\"text\":\"x\"},"
                           "\"rationale\":\"%s\"}", rationale) > 0);
    return text;
}

//  Check a note with RATIONALE; returns the verdicts (caller frees), sets *ok and *fail.
static json_t *
s_check_note (mesh_gate_t *gate, const char *rationale, bool *ok, mesh_fail_t *fail)
{
    char *proposal = s_note (rationale);
    json_t *verdicts = s_check (gate, proposal, ok, fail);
    free (proposal);
    return verdicts;
}

static void
test_approval (void **state)
{
    s_config ();
    s_rule (RULES "accept.lua");
    s_rule (RULES "approval.lua");
    mesh_gate_t *gate = s_gate ();
    bool ok;
    mesh_fail_t fail;

    //  Asked and accepted: an accept verdict that carries the reason, and the approval
    //  read back from the verdicts.
    json_t *v = s_check_note (gate, "ask", &ok, &fail);
    assert_true (ok);
    assert_int_equal (fail, MESH_FAIL_NONE);
    assert_int_equal (json_array_size (v), 3);
    assert_null (json_object_get (json_array_get (v, 0), "approval"));
    assert_null (json_object_get (json_array_get (v, 1), "approval"));
    assert_string_equal (s_field (v, 2, "rule"), "approval");
    assert_string_equal (s_field (v, 2, "verdict"), "accept");
    assert_true (json_is_null (json_object_get (json_array_get (v, 2), "reason")));
    assert_string_equal (s_field (v, 2, "approval"), "a human looks at note");
    json_t *approval = mesh_gate_approval (v);
    json_t *want = json_pack ("{s:b, s:s, s:[s]}", "required", 1, "reason",
                              "a human looks at note", "rules", "approval");
    assert_true (json_equal (approval, want));
    json_decref (want);
    json_decref (approval);
    //  The same inputs give the same verdicts: a replay finds the same approval.
    json_t *again = s_check_note (gate, "ask", &ok, &fail);
    assert_true (json_equal (again, v));
    json_decref (again);
    json_decref (v);

    //  Nothing asked: no approval anywhere, and nothing left over from the last check
    //  (the shared accept records were not touched either).
    v = s_check_note (gate, "just do it", &ok, &fail);
    assert_true (ok);
    for (size_t i = 0; i < 3; i++)
        assert_null (json_object_get (json_array_get (v, i), "approval"));
    assert_null (mesh_gate_approval (v));
    json_decref (v);

    //  Asked twice in one check: the first reason stands.
    v = s_check_note (gate, "ask twice", &ok, &fail);
    assert_true (ok);
    assert_string_equal (s_field (v, 2, "approval"), "first reason");
    json_decref (v);

    //  A long reason with control characters: one line, cut to 300 bytes.
    v = s_check_note (gate, "ask long", &ok, &fail);
    assert_true (ok);
    const char *reason = s_field (v, 2, "approval");
    assert_int_equal (strlen (reason), 300);
    assert_true (strncmp (reason, "line one line two xxx", 21) == 0);
    assert_string_equal (reason + 297, "...");
    json_decref (v);

    //  A rule that asked and then rejected: refused, and nothing to approve.
    v = s_check_note (gate, "ask reject", &ok, &fail);
    assert_false (ok);
    assert_int_equal (fail, MESH_FAIL_RULE_REJECT);
    assert_string_equal (s_field (v, 2, "verdict"), "reject");
    assert_string_equal (s_field (v, 2, "reason"), "refused anyway");
    assert_null (json_object_get (json_array_get (v, 2), "approval"));
    assert_null (mesh_gate_approval (v));
    json_decref (v);
    //  ... or raised after asking.
    v = s_check_note (gate, "ask error", &ok, &fail);
    assert_false (ok);
    assert_int_equal (fail, MESH_FAIL_RULE_ERROR);
    assert_null (json_object_get (json_array_get (v, 2), "approval"));
    assert_null (mesh_gate_approval (v));
    json_decref (v);
    //  And the next check is clean.
    v = s_check_note (gate, "fine", &ok, &fail);
    assert_true (ok);
    assert_null (mesh_gate_approval (v));
    json_decref (v);

    //  Misuse is an error verdict that names the file and line, like any other.
    const struct {
        const char *how, *want;
    } misuse[] = {
        { "ask number", "approval.lua:30: mesh.require_approval: the reason must be a string, "
                        "not an integer" },
        { "ask table", "approval.lua:32: mesh.require_approval: the reason must be a string, "
                       "not a table" },
        { "ask nothing", "mesh.require_approval: the reason must be a string, not nothing" },
        { "ask empty", "approval.lua:36: mesh.require_approval: the reason is empty" },
    };
    for (size_t i = 0; i < sizeof misuse / sizeof misuse [0]; i++) {
        v = s_check_note (gate, misuse [i].how, &ok, &fail);
        assert_false (ok);
        assert_int_equal (fail, MESH_FAIL_RULE_ERROR);
        assert_string_equal (s_field (v, 2, "verdict"), "error");
        if (!strstr (s_field (v, 2, "reason"), misuse [i].want))
            fail_msg ("%s: %s", misuse [i].how, s_field (v, 2, "reason"));
        assert_null (mesh_gate_approval (v));
        json_decref (v);
    }
    //  pcall catches the misuse like any error; nothing was asked.
    v = s_check_note (gate, "ask pcall", &ok, &fail);
    assert_true (ok);
    assert_null (mesh_gate_approval (v));
    json_decref (v);
    mesh_gate_destroy (&gate);
}

static void
test_approval_two_rules (void **state)
{
    //  Two rules ask: the first reason in chain order, both names.
    s_config ();
    s_global (RULES "approval_too.lua");
    s_rule (RULES "approval.lua");
    mesh_gate_t *gate = s_gate ();
    bool ok;
    mesh_fail_t fail;
    json_t *v = s_check_note (gate, "ask", &ok, &fail);
    assert_true (ok);
    assert_string_equal (s_field (v, 1, "approval"), "approval_too wants a look");
    assert_string_equal (s_field (v, 2, "approval"), "a human looks at note");
    json_t *approval = mesh_gate_approval (v);
    json_t *want = json_pack ("{s:b, s:s, s:[s, s]}", "required", 1, "reason",
                              "approval_too wants a look", "rules", "approval_too", "approval");
    assert_true (json_equal (approval, want));
    json_decref (want);
    json_decref (approval);
    json_decref (v);

    //  One asks and the other rejects: the whole proposal is refused; the verdict of
    //  the rule that accepted still says what it asked, and a refused decision holds
    //  nothing (reason.c asks for the approval of accepted proposals only).
    v = s_check_note (gate, "ask reject", &ok, &fail);
    assert_false (ok);
    assert_int_equal (fail, MESH_FAIL_RULE_REJECT);
    assert_string_equal (s_field (v, 1, "approval"), "approval_too wants a look");
    assert_null (json_object_get (json_array_get (v, 2), "approval"));
    json_decref (v);

    //  Without verdicts the check still works (and asks nobody anything).
    char *proposal = s_note ("ask");
    json_t *p = json_loads (proposal, 0, NULL);
    assert_true (mesh_gate_check (gate, p, NULL, NULL, NULL));
    json_decref (p);
    free (proposal);
    mesh_gate_destroy (&gate);

    //  mesh_gate_approval reads only accept verdicts with a string approval.
    json_t *forged = json_pack ("[{s:s, s:s, s:n, s:s}, {s:s, s:s, s:s, s:i}, {s:s, s:s}]",
                                "rule", "a", "verdict", "reject", "reason", "approval", "x",
                                "rule", "b", "verdict", "accept", "reason", "n", "approval", 5,
                                "rule", "c", "verdict", "accept");
    assert_null (mesh_gate_approval (forged));
    assert_null (mesh_gate_approval (NULL));
    json_decref (forged);
}

static char *
s_read (const char *path, size_t *size)
{
    FILE *f = fopen (path, "rb");
    assert_non_null (f);
    char *data = malloc (300000);
    *size = fread (data, 1, 300000, f);
    fclose (f);
    return data;
}

static void
s_expected_hash (const char **paths, size_t count, char out[65])
{
    crypto_hash_sha256_state st;
    unsigned char digest[32];
    crypto_hash_sha256_init (&st);
    for (size_t i = 0; i < count; i++) {
        size_t size;
        char *data = s_read (paths [i], &size);
        const char *base = strrchr (paths [i], '/') + 1;
        crypto_hash_sha256_update (&st, (const unsigned char *) base, strlen (base) + 1);
        crypto_hash_sha256_update (&st, (const unsigned char *) data, size);
        free (data);
    }
    crypto_hash_sha256_final (&st, digest);
    sodium_bin2hex (out, 65, digest, 32);
}

static void
test_rules_hash (void **state)
{
    char expected[65];
    //  No rules: the hash of nothing.
    s_config ();
    mesh_gate_t *gate = s_gate ();
    assert_string_equal (mesh_gate_rules_hash (gate),
                         "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    mesh_gate_destroy (&gate);

    const char *shipped[] = { "rules/confidence_floor.lua", "rules/action_allowlist.lua" };
    s_config ();
    s_global (shipped [0]);
    s_rule (shipped [1]);
    gate = s_gate ();
    s_expected_hash (shipped, 2, expected);
    assert_string_equal (mesh_gate_rules_hash (gate), expected);
    mesh_gate_t *again = s_gate ();
    assert_string_equal (mesh_gate_rules_hash (again), mesh_gate_rules_hash (gate));
    mesh_gate_destroy (&again);

    //  Another order is another chain.
    s_config ();
    s_global (shipped [1]);
    s_rule (shipped [0]);
    again = s_gate ();
    assert_string_not_equal (mesh_gate_rules_hash (again), mesh_gate_rules_hash (gate));
    mesh_gate_destroy (&again);

    //  The same rule with one more byte (a comment) is another rule set.
    char dir[] = "/tmp/test_gate.XXXXXX";
    assert_non_null (mkdtemp (dir));
    char path[128];
    snprintf (path, sizeof path, "%s/action_allowlist.lua", dir);
    size_t size;
    char *data = s_read (shipped [1], &size);
    FILE *f = fopen (path, "wb");
    assert_non_null (f);
    assert_int_equal (fwrite (data, 1, size, f), size);
    fclose (f);
    free (data);
    s_config ();
    s_global (shipped [0]);
    s_rule (path);
    again = s_gate ();
    assert_string_equal (mesh_gate_rules_hash (again), mesh_gate_rules_hash (gate));
    mesh_gate_destroy (&again);                         //  same name, same content: same
    f = fopen (path, "ab");
    fputs ("-- edited\n", f);
    fclose (f);
    again = s_gate ();
    assert_string_not_equal (mesh_gate_rules_hash (again), mesh_gate_rules_hash (gate));
    const char *edited[] = { shipped [0], path };
    s_expected_hash (edited, 2, expected);
    assert_string_equal (mesh_gate_rules_hash (again), expected);
    mesh_gate_destroy (&again);
    assert_int_equal (unlink (path), 0);
    assert_int_equal (rmdir (dir), 0);
    mesh_gate_destroy (&gate);
}

static void
test_new_errors (void **state)
{
    char *err = NULL;
    //  Every problem is reported, one line each.
    s_config ();
    s_global (RULES "syntax_error.lua");
    s_rule (RULES "no_such_rule.lua");
    s_rule (RULES "accept.lua");
    assert_null (mesh_gate_new (&s_cfg, &s_agent, &err));
    assert_non_null (err);
    assert_non_null (strstr (err, RULES "syntax_error.lua:3: "));
    assert_non_null (strstr (err, "\n" RULES "no_such_rule.lua: cannot open"));
    assert_null (strchr (strchr (err, '\n') + 1, '\n'));
    free (err);

    //  Two rules with one name.
    s_config ();
    s_global ("rules/confidence_floor.lua");
    s_rule ("rules/confidence_floor.lua");
    assert_null (mesh_gate_new (&s_cfg, &s_agent, &err));
    assert_string_equal (err, "rules/confidence_floor.lua: rule name \"confidence_floor\" is "
                              "already used by rules/confidence_floor.lua");
    free (err);

    //  An agent action nobody declared; a pattern that does not compile.
    s_config ();
    char *actions[] = { (char *) "escalate", (char *) "launch", (char *) "bad_pattern" };
    s_agent.actions = actions;
    s_agent.action_count = 3;
    s_cfg.action_count = 7;
    assert_null (mesh_gate_new (&s_cfg, &s_agent, &err));
    assert_non_null (strstr (err, "agent cpu-watch: action \"launch\" is not declared"));
    assert_non_null (strstr (err, "action bad_pattern: param x: pattern \"([a-z\" is not a "
                                  "valid POSIX extended regular expression"));
    free (err);

    //  Without err, the problem is logged and NULL returned.
    s_config ();
    s_rule (RULES "no_such_rule.lua");
    assert_null (mesh_gate_new (&s_cfg, &s_agent, NULL));
}

static void
test_check_file (void **state)
{
    s_config ();
    char *err = NULL;
    assert_int_equal (mesh_gate_check_file ("rules/action_allowlist.lua", &s_cfg, &err), 0);
    assert_null (err);
    assert_int_equal (mesh_gate_check_file ("rules/confidence_floor.lua", NULL, &err), 0);
    assert_int_equal (mesh_gate_check_file (RULES "syntax_error.lua", &s_cfg, &err), -1);
    assert_non_null (strstr (err, RULES "syntax_error.lua:3: "));
    free (err);
    assert_int_equal (mesh_gate_check_file (RULES "no_check.lua", &s_cfg, &err), -1);
    assert_non_null (strstr (err, "check = function"));
    free (err);
}


//  --- the whole shipped set --------------------------------------------------------

static const char *s_shipped[] = {
    "rules/action_allowlist.lua", "rules/exec_args.lua", "rules/rate_limit.lua",
    "rules/blast_radius.lua", "rules/confidence_floor.lua", "rules/change_freeze.lua",
    "rules/rationale_required.lua",
};
#define S_SHIPPED (sizeof s_shipped / sizeof s_shipped [0])

static mesh_gate_t *
s_shipped_gate (void)
{
    s_config ();
    for (size_t i = 0; i < S_SHIPPED; i++)
        s_global (s_shipped [i]);
    return s_gate ();
}

//  A ctx as the agent builds it, at NOW, with HISTORY (JSON text of an array).
static char *
s_agent_ctx (const char *now, const char *history)
{
    char *text = NULL;
    assert_true (asprintf (&text, "{\"agent\":\"cpu-watch\",\"now\":%s,\"incident\":{\"series\":"
                           "\"web-1/cpu\",\"score\":0.97},\"history\":%s}", now, history) > 0);
    return text;
}

static const char *s_good =
    "{\"action\":\"scale_out\",\"params\":{\"service\":\"web\",\"replicas\":3},"
    "\"confidence\":0.86,\"rationale\":\"CPU on web is far above its baseline; scale out.\"}";

static void
test_shipped_chain (void **state)
{
    mesh_gate_t *gate = s_shipped_gate ();
    char *wednesday = s_agent_ctx ("1764151200.25", "[]");
    s_accepts (gate, s_good, wednesday, S_SHIPPED + 1);
    //  The same proposal, twice done in the last half hour, on a Sunday at 03:00
    //  (the weekly window), with too little rationale: three rules say why.
    char *busy = s_agent_ctx ("1764471600", "[{\"action\":\"scale_out\",\"target\":\"web\","
                              "\"at\":1764470000},{\"action\":\"scale_out\",\"target\":\"web\","
                              "\"at\":1764471000}]");
    bool ok;
    mesh_fail_t fail;
    json_t *v = s_check_ctx (gate, "{\"action\":\"scale_out\",\"params\":{\"service\":\"web\","
                             "\"replicas\":3},\"confidence\":0.86,\"rationale\":\"more\"}", busy,
                             &ok, &fail);
    assert_false (ok);
    assert_int_equal (fail, MESH_FAIL_RULE_REJECT);
    assert_int_equal (json_array_size (v), S_SHIPPED + 1);
    const char *want[] = {
        "accept", "accept", "accept", "reject", "accept", "accept", "reject", "reject"
    };
    for (size_t i = 0; i <= S_SHIPPED; i++)
        if (strcmp (s_field (v, i, "verdict"), want [i]) != 0)
            fail_msg ("check %zu (%s): %s", i, s_field (v, i, "rule"), s_field (v, i, "verdict"));
    assert_non_null (strstr (s_field (v, 3, "reason"), "scale_out on web already ran 2 times"));
    assert_non_null (strstr (s_field (v, 6, "reason"), "weekly patch window"));
    assert_non_null (strstr (s_field (v, 7, "reason"), "rationale is too short"));
    json_decref (v);
    //  And the gate still accepts after all that.
    s_accepts (gate, s_good, wednesday, S_SHIPPED + 1);
    free (busy);
    free (wednesday);
    mesh_gate_destroy (&gate);
}

static void
test_chain_recovers (void **state)
{
    //  A rule that hits a limit between two that accept: its verdict is the limit, the
    //  others are unaffected, and every later check works (the state was rebuilt).
    s_config ();
    s_rule ("rules/confidence_floor.lua");
    s_rule (RULES "hostile_loop.lua");
    s_rule (RULES "hostile_memory.lua");
    s_rule (RULES "accept.lua");
    mesh_gate_t *gate = s_gate ();
    for (int i = 0; i < 3; i++) {
        bool ok;
        mesh_fail_t fail;
        json_t *v = s_check (gate, "{\"action\":\"escalate\",\"rationale\":\"rep\"}", &ok,
                             &fail);
        assert_false (ok);
        assert_int_equal (fail, MESH_FAIL_RULE_LIMIT);
        assert_string_equal (s_field (v, 1, "verdict"), "accept");
        assert_string_equal (s_field (v, 2, "reason"), "instruction limit");
        assert_string_equal (s_field (v, 3, "reason"), "memory limit");
        assert_string_equal (s_field (v, 4, "verdict"), "accept");
        json_decref (v);
    }
    assert_true (mesh_gate_state_memory (gate) > 0);
    mesh_gate_destroy (&gate);
}

typedef struct {
    mesh_gate_t *gate;
    int accepted;
} s_worker_t;

static void *
s_worker (void *arg)
{
    s_worker_t *w = arg;
    json_t *p = json_loads (s_good, 0, NULL);
    char *text = s_agent_ctx ("1764151200", "[]");
    json_t *ctx = json_loads (text, 0, NULL);
    free (text);
    for (int i = 0; i < 200; i++) {
        json_t *verdicts = json_array ();
        w->accepted += mesh_gate_check (w->gate, p, ctx, verdicts, NULL)
                    && json_array_size (verdicts) == S_SHIPPED + 1;
        json_decref (verdicts);
    }
    json_decref (p);
    json_decref (ctx);
    return NULL;
}

static void
test_threads (void **state)
{
    mesh_gate_t *gate = s_shipped_gate ();
    pthread_t threads[4];
    s_worker_t workers[4];
    for (int i = 0; i < 4; i++) {
        workers [i] = (s_worker_t) { gate, 0 };
        assert_int_equal (pthread_create (&threads [i], NULL, s_worker, &workers [i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join (threads [i], NULL);
        assert_int_equal (workers [i].accepted, 200);
    }
    mesh_gate_destroy (&gate);
}

//  --- manifest and archive -----------------------------------------------------------

static void
test_manifest (void **state)
{
    s_config ();
    s_global ("rules/confidence_floor.lua");
    s_rule ("rules/action_allowlist.lua");
    mesh_gate_t *gate = s_gate ();
    json_t *m = mesh_gate_manifest (gate);
    assert_string_equal (json_string_value (json_object_get (m, "hash")),
                         mesh_gate_rules_hash (gate));
    json_t *rules = json_object_get (m, "rules");
    assert_int_equal (json_array_size (rules), 2);
    json_t *first = json_array_get (rules, 0);
    assert_string_equal (json_string_value (json_object_get (first, "name")), "confidence_floor");
    assert_string_equal (json_string_value (json_object_get (first, "file")),
                         "01-confidence_floor.lua");
    assert_string_equal (json_string_value (json_object_get (first, "basename")),
                         "confidence_floor.lua");
    size_t size;
    char *data = s_read ("rules/confidence_floor.lua", &size);
    unsigned char digest[32];
    char hex[65];
    crypto_hash_sha256 (digest, (unsigned char *) data, size);
    sodium_bin2hex (hex, sizeof hex, digest, sizeof digest);
    free (data);
    assert_string_equal (json_string_value (json_object_get (first, "sha256")), hex);
    assert_string_equal (json_string_value (json_object_get (json_array_get (rules, 1), "file")),
                         "02-action_allowlist.lua");
    json_decref (m);
    mesh_gate_destroy (&gate);
}

static int
s_count_entries (const char *dir)
{
    DIR *d = opendir (dir);
    assert_non_null (d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir (d)))
        n += e->d_name [0] != '.' || strncmp (e->d_name, ".tmp", 4) == 0;
    closedir (d);
    return n;
}

static void
test_archive (void **state)
{
    char dir[] = "/tmp/test_gate_archive.XXXXXX";
    assert_non_null (mkdtemp (dir));
    s_config ();
    s_global ("rules/confidence_floor.lua");
    s_rule ("rules/action_allowlist.lua");
    mesh_gate_t *gate = s_gate ();
    char *archived = NULL;
    assert_int_equal (mesh_gate_archive (gate, dir, &archived), 0);
    char want[256];
    snprintf (want, sizeof want, "%s/rules/%s", dir, mesh_gate_rules_hash (gate));
    assert_string_equal (archived, want);
    assert_int_equal (s_count_entries (archived), 3);   //  two rules and the manifest
    //  The files are the rules, byte for byte, and the manifest is the gate's.
    const char *files[][2] = {
        { "01-confidence_floor.lua", "rules/confidence_floor.lua" },
        { "02-action_allowlist.lua", "rules/action_allowlist.lua" },
    };
    const char *hashed[2];
    char paths[2][300];
    for (int i = 0; i < 2; i++) {
        snprintf (paths [i], sizeof paths [i], "%s/%s", archived, files [i][0]);
        size_t a, b;
        char *copy = s_read (paths [i], &a), *orig = s_read (files [i][1], &b);
        assert_int_equal (a, b);
        assert_memory_equal (copy, orig, a);
        free (copy);
        free (orig);
        hashed [i] = paths [i];
    }
    char mpath[300];
    snprintf (mpath, sizeof mpath, "%s/manifest.json", archived);
    json_t *on_disk = json_load_file (mpath, 0, NULL);
    json_t *m = mesh_gate_manifest (gate);
    assert_true (json_equal (on_disk, m));
    json_decref (on_disk);
    json_decref (m);
    //  A replay can load the archive under the original basenames and get the hash.
    char expected[65];
    crypto_hash_sha256_state st;
    unsigned char digest[32];
    crypto_hash_sha256_init (&st);
    const char *bases[] = { "confidence_floor.lua", "action_allowlist.lua" };
    for (int i = 0; i < 2; i++) {
        size_t size;
        char *data = s_read (hashed [i], &size);
        crypto_hash_sha256_update (&st, (const unsigned char *) bases [i], strlen (bases [i]) + 1);
        crypto_hash_sha256_update (&st, (const unsigned char *) data, size);
        free (data);
    }
    crypto_hash_sha256_final (&st, digest);
    sodium_bin2hex (expected, sizeof expected, digest, sizeof digest);
    assert_string_equal (expected, mesh_gate_rules_hash (gate));
    //  Idempotent: again, and from a second gate with the same rules.
    char *again = NULL;
    assert_int_equal (mesh_gate_archive (gate, dir, &again), 0);
    assert_string_equal (again, archived);
    free (again);
    mesh_gate_t *twin = s_gate ();
    assert_int_equal (mesh_gate_archive (twin, dir, NULL), 0);
    mesh_gate_destroy (&twin);
    char rules_dir[300];
    snprintf (rules_dir, sizeof rules_dir, "%s/rules", dir);
    assert_int_equal (s_count_entries (rules_dir), 1);  //  no temporary left behind
    //  Another rule set is another directory.
    s_config ();
    s_global ("rules/confidence_floor.lua");
    mesh_gate_t *other = s_gate ();
    assert_int_equal (mesh_gate_archive (other, dir, NULL), 0);
    assert_int_equal (s_count_entries (rules_dir), 2);
    //  A state directory that cannot hold it: -1, logged.
    char blocked[300];
    snprintf (blocked, sizeof blocked, "%s/file", dir);
    FILE *f = fopen (blocked, "w");
    fclose (f);
    assert_int_equal (mesh_gate_archive (other, blocked, &again), -1);
    assert_null (again);
    mesh_gate_destroy (&other);
    //  Clean up.
    for (int i = 0; i < 2; i++)
        assert_int_equal (unlink (paths [i]), 0);
    assert_int_equal (unlink (mpath), 0);
    assert_int_equal (rmdir (archived), 0);
    char other_dir[600];
    DIR *d = opendir (rules_dir);
    struct dirent *e;
    while ((e = readdir (d)))
        if (e->d_name [0] != '.') {
            snprintf (other_dir, sizeof other_dir, "%s/%s", rules_dir, e->d_name);
            char p1[700], p2[700];
            snprintf (p1, sizeof p1, "%s/01-confidence_floor.lua", other_dir);
            snprintf (p2, sizeof p2, "%s/manifest.json", other_dir);
            unlink (p1);
            unlink (p2);
            rmdir (other_dir);
        }
    closedir (d);
    assert_int_equal (rmdir (rules_dir), 0);
    assert_int_equal (unlink (blocked), 0);
    assert_int_equal (rmdir (dir), 0);
    free (archived);
    mesh_gate_destroy (&gate);
}


//  An agent config with rules_hash set (what meshd starts an agent with) builds its chain
//  from the archive, not the files: a rule edited on disk afterwards changes nothing, and
//  a hash with no archive is refused.
static void
test_rules_from_archive (void **state)
{
    char dir[] = "/tmp/test_gate_byhash.XXXXXX";
    assert_non_null (mkdtemp (dir));
    char rule[300];
    snprintf (rule, sizeof rule, "%s/floor.lua", dir);
    size_t size;
    char *source = s_read ("rules/confidence_floor.lua", &size);
    FILE *file = fopen (rule, "wb");
    assert_non_null (file);
    assert_int_equal (fwrite (source, 1, size, file), size);
    fclose (file);
    s_config ();
    s_cfg.state_dir = dir;
    s_rule (rule);
    mesh_gate_t *gate = s_gate ();
    assert_int_equal (mesh_gate_archive (gate, dir, NULL), 0);
    char hash[65];
    snprintf (hash, sizeof hash, "%s", mesh_gate_rules_hash (gate));
    mesh_gate_destroy (&gate);
    file = fopen (rule, "ab");
    assert_non_null (file);
    fputs ("\n-- edited on disk, never reloaded\n", file);
    fclose (file);
    mesh_gate_t *edited = s_gate ();
    assert_string_not_equal (mesh_gate_rules_hash (edited), hash);
    mesh_gate_destroy (&edited);
    s_agent.rules_hash = hash;
    mesh_gate_t *recorded = s_gate ();
    assert_string_equal (mesh_gate_rules_hash (recorded), hash);
    mesh_gate_destroy (&recorded);
    char *err = NULL;
    s_agent.rules_hash = (char *) "0000000000000000000000000000000000000000000000000000000000000000";
    assert_null (mesh_gate_new (&s_cfg, &s_agent, &err));
    assert_non_null (err);
    free (err);
    s_agent.rules_hash = NULL;
    free (source);
    char cmd[400];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal (system (cmd), 0);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_builtin_shape),
        cmocka_unit_test (test_builtin_params),
        cmocka_unit_test (test_chain_with_shipped_rules),
        cmocka_unit_test (test_worst_failure),
        cmocka_unit_test (test_what_rules_see),
        cmocka_unit_test (test_approval),
        cmocka_unit_test (test_approval_two_rules),
        cmocka_unit_test (test_rules_hash),
        cmocka_unit_test (test_new_errors),
        cmocka_unit_test (test_check_file),
        cmocka_unit_test (test_shipped_chain),
        cmocka_unit_test (test_chain_recovers),
        cmocka_unit_test (test_threads),
        cmocka_unit_test (test_manifest),
        cmocka_unit_test (test_archive),
        cmocka_unit_test (test_rules_from_archive),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

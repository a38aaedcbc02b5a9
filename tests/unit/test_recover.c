/*  test_recover - may a decision recorded without an outcome run after a restart?
 *
 *  The world is the shipped demo: config/demo.yaml (agent "ops": scale_out, escalate,
 *  note_host and restart_service, the global rule action_allowlist and its own
 *  confidence_floor), with the scripted backend pointed at a responses file of our own
 *  so the model says exactly what a test needs.  Decisions are made by the real
 *  reasoning loop (reason.c) and the rule set is archived as meshd archives it
 *  (mesh_gate_archive), so a genuine decision is exactly what the agent would have
 *  recorded; then it is altered the ways a forged or edited record would be, and every
 *  alteration must be refused with a reason that says what did not hold.  Run from the
 *  repository root.
 */
#include "tokens.h"
#include "config.h"
#include "gate.h"
#include "incident.h"
#include "log.h"
#include "reason.h"
#include "recover.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <czmq.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char s_dir[] = "/tmp/test_recover.XXXXXX";
static char s_state[600];

static const char *s_good =
    "{\"action\": \"scale_out\", \"params\": {\"service\": \"web\", \"replicas\": 3}, "
    "\"confidence\": 0.86, \"rationale\": \"CPU far above baseline.\"}";
//  Within the config's bounds (replicas 1..10) but over action_allowlist's 5.
static const char *s_too_many =
    "{\"action\": \"scale_out\", \"params\": {\"service\": \"database\", \"replicas\": 10}, "
    "\"confidence\": 0.9, \"rationale\": \"More is better.\"}";

typedef struct {
    mesh_config_t *cfg;
    const mesh_agent_config_t *agent;
    char *hash;                         //  of the agent's rule set, archived
} s_world_t;

//  The demo config with the scripted backend answering CONTENT, every time.
static void
s_world (s_world_t *w, const char *content)
{
    memset (w, 0, sizeof *w);
    assert_int_equal (mesh_config_load ("config/demo.yaml", &w->cfg, stderr), 0);
    w->agent = mesh_config_agent (w->cfg, "ops");
    assert_non_null (w->agent);
    char file[700];
    snprintf (file, sizeof file, "%s/responses.jsonl", s_dir);
    FILE *out = fopen (file, "w");
    assert_non_null (out);
    json_t *line = json_pack ("{s:s}", "content", content);
    char *text = json_dumps (line, JSON_COMPACT);
    fprintf (out, "%s\n", text);
    free (text);
    json_decref (line);
    fclose (out);
    for (size_t i = 0; i < w->cfg->backend_count; i++)
        if (strcmp (w->cfg->backends[i].name, "scripted") == 0) {
            free (w->cfg->backends[i].file);
            w->cfg->backends[i].file = strdup (file);
        }
    char *err = NULL;
    mesh_gate_t *gate = mesh_gate_new (w->cfg, w->agent, &err);
    if (!gate)
        fail_msg ("gate: %s", err ? err : "?");
    assert_int_equal (mesh_gate_archive (gate, s_state, NULL), 0);
    w->hash = strdup (mesh_gate_rules_hash (gate));
    mesh_gate_destroy (&gate);
}

static void
s_world_end (s_world_t *w)
{
    free (w->hash);
    mesh_config_destroy (&w->cfg);
}

//  A decision by the real reasoning loop for one incident (score 0.995: below
//  action_allowlist's override), with the ledger's "ts" added.
static json_t *
s_decide (s_world_t *w, const char *id)
{
    char *err = NULL;
    mesh_gate_t *gate = mesh_gate_new (w->cfg, w->agent, &err);
    assert_non_null (gate);
    char journal[PATH_MAX], why[256];
    snprintf (journal, sizeof journal, "%s/tokens.jsonl", s_dir);
    mesh_tokens_t *budget = mesh_tokens_new (w->cfg, journal, why, sizeof why);
    assert_non_null (budget);
    mesh_tokens_local_t local = {.tokens = budget, .instance = "ops.0"};
    mesh_tokens_port_t port = mesh_tokens_local_port (&local);
    mesh_reason_t *reason = mesh_reason_new (w->cfg, w->agent, gate, &port);
    assert_non_null (reason);
    json_t *event = json_pack ("{s:s, s:s, s:f, s:I}", "host", "web-1", "metric", "cpu",
                               "value", 97.5, "ts", (json_int_t) 1700000000500LL);
    mesh_incident_t incident = {
        .agent = "ops", .topic = "metrics", .partition = 1, .offset = 77,
        .series = "web-1/cpu", .value = 97.5, .ts_ms = 1700000000500LL, .detector = "ewma",
        .info = { .score = 0.995, .mean = 41.0, .stddev = 3.0, .z = 18.8, .n = 200,
                  .warm = true, .window_len = 3, .window = { 40.0, 42.0, 97.5 } },
        .event = event };
    snprintf (incident.id, sizeof incident.id, "%s", id);
    json_t *history = json_pack ("[{s:s, s:s, s:f}]", "action", "scale_out", "target", "api",
                                 "at", 1699999990.0);
    json_t *decision = mesh_reason_run (reason, &incident, history);
    assert_non_null (decision);
    json_object_set_new (decision, "ts", json_integer (1700000001000LL));
    json_object_set_new (decision, "seq", json_integer (42));
    json_decref (history);
    json_decref (event);
    mesh_reason_destroy (&reason);
    mesh_tokens_destroy (&budget);
    mesh_gate_destroy (&gate);
    assert_string_equal (json_string_value (json_object_get (decision, "rules_hash")), w->hash);
    return decision;
}

//  Refused, and the reason contains WANT.
static void
s_refused (s_world_t *w, json_t *decision, const char *want)
{
    char *why = NULL;
    int rc = mesh_recover_check (w->cfg, w->agent, s_state, decision, &why);
    if (rc == 0)
        fail_msg ("accepted, expected a refusal mentioning \"%s\"", want);
    assert_int_equal (rc, -1);
    assert_non_null (why);
    if (!strstr (why, want))
        fail_msg ("refused for \"%s\", expected a reason mentioning \"%s\"", why, want);
    json_t *text = json_string (why);             //  valid UTF-8, one line
    assert_non_null (text);
    json_decref (text);
    assert_null (strchr (why, '\n'));
    free (why);
}

static void
s_passes (s_world_t *w, json_t *decision)
{
    char *why = NULL;
    int rc = mesh_recover_check (w->cfg, w->agent, s_state, decision, &why);
    if (rc != 0)
        fail_msg ("refused: %s", why ? why : "?");
    assert_null (why);
}

static json_t *
s_last_attempt (json_t *decision)
{
    json_t *attempts = json_object_get (decision, "attempts");
    return json_array_get (attempts, json_array_size (attempts) - 1);
}

//  --- accepted decisions -------------------------------------------------------------

static void
test_genuine_accepted_passes (void **state)
{
    s_world_t w;
    s_world (&w, s_good);
    json_t *decision = s_decide (&w, "a001");
    assert_string_equal (json_string_value (json_object_get (decision, "verdict")), "accepted");
    s_passes (&w, decision);
    s_passes (&w, decision);                    //  and again: nothing was consumed
    json_decref (decision);
    s_world_end (&w);
}

static void
test_forged_approval_refused (void **state)
{
    //  The demo's rules ask nobody: an approval the record carries is not theirs (and
    //  would change what meshd does with it), so recovery refuses it.
    s_world_t w;
    s_world (&w, s_good);
    json_t *decision = s_decide (&w, "a009");
    assert_null (json_object_get (decision, "approval"));
    json_object_set_new (decision, "approval",
                         json_pack ("{s:b, s:s, s:[s]}", "required", 1, "reason", "forged",
                                    "rules", "action_allowlist"));
    s_refused (&w, decision, "carries an approval the rules in force");
    json_object_del (decision, "approval");
    s_passes (&w, decision);
    json_decref (decision);
    s_world_end (&w);
}

static void
test_changed_params_refused (void **state)
{
    s_world_t w;
    s_world (&w, s_good);
    json_t *decision = s_decide (&w, "a002");
    //  Only the action's params edited: they no longer match the accepted proposal.
    json_t *params = json_object_get (json_object_get (decision, "action"), "params");
    json_object_set_new (params, "service", json_string ("database"));
    json_object_set_new (params, "replicas", json_integer (10));
    s_refused (&w, decision, "is not what the accepted proposal says");
    //  The proposal edited to match: the rules in force judge it, and forbid it.
    json_t *proposal = json_object_get (s_last_attempt (decision), "proposal");
    json_object_set_new (json_object_get (proposal, "params"), "service",
                         json_string ("database"));
    json_object_set_new (json_object_get (proposal, "params"), "replicas", json_integer (10));
    s_refused (&w, decision, "action_allowlist: reject: scale_out to 10 replicas exceeds 5");
    //  An extra param in both: the built-in check of today's specs refuses it.
    json_object_set_new (params, "replicas", json_integer (2));
    json_object_set_new (json_object_get (proposal, "params"), "replicas", json_integer (2));
    json_object_set_new (params, "force", json_true ());
    json_object_set_new (json_object_get (proposal, "params"), "force", json_true ());
    s_refused (&w, decision, "builtin: reject: params \"force\" is not a parameter");
    json_decref (decision);
    s_world_end (&w);
}

static void
test_flipped_verdict_refused (void **state)
{
    s_world_t w;
    s_world (&w, s_too_many);
    json_t *decision = s_decide (&w, "a003");
    //  The model asked for 10 replicas of database three times; the rules refused.
    assert_string_equal (json_string_value (json_object_get (decision, "verdict")), "rejected");
    assert_true (json_is_true (json_object_get (decision, "fallback")));
    s_passes (&w, decision);                    //  its fallback (escalate) may run
    //  Flipped to accepted, with the refused proposal as the action.
    json_object_set_new (decision, "verdict", json_string ("accepted"));
    json_object_set_new (decision, "fallback", json_false ());
    json_object_set_new (decision, "action",
                         json_pack ("{s:s, s:s, s:s, s:{s:s, s:i}}", "name", "scale_out",
                                    "kind", "kafka", "topic", "mesh.actions", "params",
                                    "service", "database", "replicas", 10));
    s_refused (&w, decision, "is not accepted");
    //  And the last attempt marked accepted too: the rules are asked, and refuse.
    json_t *attempts = json_object_get (decision, "attempts");
    size_t n = json_array_size (attempts);
    json_object_set_new (json_array_get (attempts, n - 1), "accepted", json_true ());
    s_refused (&w, decision, "exceeds 5");
    //  An earlier attempt marked accepted as well: the loop stops at the first accept.
    assert_true (n > 1);
    json_object_set_new (json_array_get (attempts, 0), "accepted", json_true ());
    s_refused (&w, decision, "attempt 1 is accepted");
    //  Verdict accepted with the fallback flag still set: neither kind.
    json_object_set_new (decision, "fallback", json_true ());
    s_refused (&w, decision, "neither an accepted decision nor a fallback");
    json_decref (decision);
    s_world_end (&w);
}

static void
test_rules_archive_missing_or_altered (void **state)
{
    s_world_t w;
    s_world (&w, s_good);
    json_t *decision = s_decide (&w, "a004");
    char dir[800], path[900], saved[900];
    snprintf (dir, sizeof dir, "%s/rules/%s", s_state, w.hash);

    //  A hash whose archive does not exist, and one that is not a hash at all.
    json_object_set_new (decision, "rules_hash", json_string (
        "0000000000000000000000000000000000000000000000000000000000000000"));
    s_refused (&w, decision, "the rule set is not archived");
    json_object_set_new (decision, "rules_hash", json_string ("../../etc"));
    s_refused (&w, decision, "not 64 lower-case hex digits");
    json_object_del (decision, "rules_hash");
    s_refused (&w, decision, "not 64 lower-case hex digits");
    json_object_set_new (decision, "rules_hash", json_string (w.hash));
    s_passes (&w, decision);

    //  A rule file edited in the archive (it would now accept anything).
    snprintf (path, sizeof path, "%s/02-confidence_floor.lua", dir);
    snprintf (saved, sizeof saved, "%s/saved.lua", s_dir);
    assert_int_equal (rename (path, saved), 0);
    FILE *out = fopen (path, "w");
    assert_non_null (out);
    fputs ("return { name = \"confidence_floor\", description = \"anything goes\",\n"
           "         check = function () return true end }\n", out);
    fclose (out);
    s_refused (&w, decision, "content does not match the manifest");

    //  ... and the manifest's sha256 edited to match the new file: the set no longer
    //  hashes to the name the decision gives.
    char manifest[900];
    snprintf (manifest, sizeof manifest, "%s/manifest.json", dir);
    json_t *m = json_load_file (manifest, 0, NULL);
    assert_non_null (m);
    json_t *copy = json_deep_copy (m);
    mesh_gate_t *edited = NULL;
    char *err = NULL;
    {
        //  sha256 of the edited file, computed the way the gate does (libsodium).
        FILE *in = fopen (path, "r");
        char buf[512];
        size_t len = fread (buf, 1, sizeof buf, in);
        fclose (in);
        unsigned char digest[32];
        char hex[65];
        crypto_hash_sha256 (digest, (unsigned char *) buf, len);
        sodium_bin2hex (hex, sizeof hex, digest, sizeof digest);
        json_object_set_new (json_array_get (json_object_get (copy, "rules"), 1), "sha256",
                             json_string (hex));
    }
    assert_int_equal (json_dump_file (copy, manifest, 0), 0);
    s_refused (&w, decision, "not to the directory's name");
    edited = mesh_gate_from_archive (w.cfg, w.agent, s_state, w.hash, &err);
    assert_null (edited);
    assert_non_null (strstr (err, "not to the directory's name"));
    free (err);

    //  Put back: accepted again.
    assert_int_equal (json_dump_file (m, manifest, JSON_INDENT (2)), 0);
    assert_int_equal (rename (saved, path), 0);
    s_passes (&w, decision);

    //  A manifest naming another set, and one that is not JSON.
    json_object_set_new (copy, "hash", json_string (
        "1111111111111111111111111111111111111111111111111111111111111111"));
    assert_int_equal (json_dump_file (copy, manifest, 0), 0);
    s_refused (&w, decision, "names rule set 1111111111111111");
    out = fopen (manifest, "w");
    fputs ("{\"hash\": ", out);
    fclose (out);
    s_refused (&w, decision, "not a manifest");
    //  A manifest entry pointing outside the archive.
    json_t *outside = json_deep_copy (m);
    json_object_set_new (json_array_get (json_object_get (outside, "rules"), 0), "basename",
                         json_string ("../../x.lua"));
    assert_int_equal (json_dump_file (outside, manifest, 0), 0);
    s_refused (&w, decision, "needs \"basename\"");
    json_decref (outside);
    assert_int_equal (json_dump_file (m, manifest, JSON_INDENT (2)), 0);
    s_passes (&w, decision);

    //  The archive gone altogether.
    snprintf (saved, sizeof saved, "%s/saved-archive", s_dir);
    assert_int_equal (rename (dir, saved), 0);
    s_refused (&w, decision, "no such file: the rule set is not archived");
    assert_int_equal (rename (saved, dir), 0);
    s_passes (&w, decision);

    json_decref (m);
    json_decref (copy);
    json_decref (decision);
    s_world_end (&w);
}

static void
test_undeclared_action_refused (void **state)
{
    s_world_t w;
    s_world (&w, s_good);
    json_t *decision = s_decide (&w, "a005");
    //  note: in action_allowlist's table, but not declared for this agent.
    json_t *action = json_object_get (decision, "action");
    json_t *proposal = json_object_get (s_last_attempt (decision), "proposal");
    json_object_set_new (action, "name", json_string ("note"));
    json_object_set_new (proposal, "action", json_string ("note"));
    json_t *params = json_pack ("{s:s}", "text", "web is slow");
    json_object_set (action, "params", params);
    json_object_set_new (proposal, "params", params);
    s_refused (&w, decision, "not declared for this agent");
    json_decref (decision);

    //  The recorded spec of the action differs from today's: refused, not guessed at.
    decision = s_decide (&w, "a006");
    json_t *spec = json_object_get (s_last_attempt (decision), "ctx_action");
    json_object_set_new (json_object_get (json_object_get (spec, "params"), "replicas"), "max",
                         json_integer (100));
    s_refused (&w, decision, "declared differently today");
    json_decref (decision);

    //  Another agent's decision.
    decision = s_decide (&w, "a007");
    json_object_set_new (decision, "agent", json_string ("shadow"));
    s_refused (&w, decision, "recorded for agent \"shadow\", not \"ops\"");
    json_object_set_new (decision, "agent", json_string ("ops"));
    s_passes (&w, decision);
    //  Shapes that are not a decision at all.
    json_object_del (decision, "action");
    s_refused (&w, decision, "no action with a name and a params object");
    json_decref (decision);
    decision = json_pack ("[]");
    s_refused (&w, decision, "not a decision record");
    json_decref (decision);
    s_world_end (&w);
}

static void
test_fallback_checked (void **state)
{
    s_world_t w;
    s_world (&w, s_too_many);
    json_t *decision = s_decide (&w, "b001");
    s_passes (&w, decision);
    json_t *action = json_object_get (decision, "action");
    assert_string_equal (json_string_value (json_object_get (action, "name")), "escalate");
    //  Not the configured fallback.
    json_object_set_new (action, "name", json_string ("scale_out"));
    json_object_set_new (action, "params", json_pack ("{s:s, s:i}", "service", "database",
                                                      "replicas", 10));
    s_refused (&w, decision, "the agent's fallback is \"escalate\"");
    //  The fallback, with params the built-in check refuses.
    json_object_set_new (action, "name", json_string ("escalate"));
    char long_summary[600];
    memset (long_summary, 'x', sizeof long_summary - 1);
    long_summary[sizeof long_summary - 1] = 0;
    json_object_set_new (action, "params", json_pack ("{s:s}", "summary", long_summary));
    s_refused (&w, decision, "fallback params fail the built-in check");
    json_object_set_new (action, "params", json_pack ("{s:s}", "cmd", "rm -rf /"));
    s_refused (&w, decision, "params \"cmd\" is not a parameter of escalate");
    json_object_set_new (action, "params", json_pack ("{s:s}", "summary", "look at web-1"));
    s_passes (&w, decision);
    json_decref (decision);
    s_world_end (&w);
}

static int
s_setup (void **state)
{
    if (!mkdtemp (s_dir))
        return -1;
    snprintf (s_state, sizeof s_state, "%s/state", s_dir);
    return mkdir (s_state, 0700);
}

static int
s_teardown (void **state)
{
    char command[256];
    snprintf (command, sizeof command, "rm -rf '%s'", s_dir);
    return system (command) == 0 ? 0 : -1;
}

int
main (void)
{
    if (!getenv ("MESH_LOG_LEVEL"))
        mesh_log_set_level (MESH_LOG_ERR - 1);      //  the failure paths log on purpose
    if (sodium_init () < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_genuine_accepted_passes),
        cmocka_unit_test (test_forged_approval_refused),
        cmocka_unit_test (test_changed_params_refused),
        cmocka_unit_test (test_flipped_verdict_refused),
        cmocka_unit_test (test_rules_archive_missing_or_altered),
        cmocka_unit_test (test_undeclared_action_refused),
        cmocka_unit_test (test_fallback_checked),
    };
    return cmocka_run_group_tests_name ("recover", tests, s_setup, s_teardown);
}

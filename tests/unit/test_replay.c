/*  test_replay - `audit replay` on small logs written here: the verdicts the real gate
 *  gave replay with no difference; a recorded time limit is not deterministic, not a
 *  difference; a candidate set turns a refusal into an accept; records from before the
 *  gate inputs are counted as not replayable; --from/--to; a malformed archive is exit 2.
 */
#include "audit_cli.h"
#include "gate.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *s_floor =
    "return { name = \"floor\", description = \"confidence at least 0.5\",\n"
    "  check = function (p, ctx)\n"
    "    if p.confidence < 0.5 then return false, \"confidence below 0.5\" end\n"
    "    return true end }\n";
static const char *s_any =
    "return { name = \"floor\", description = \"anything\",\n"
    "  check = function (p, ctx) return true end }\n";

typedef struct {
    char dir[64], src[128], cand[128], log[128], hash[65];
} s_fixture_t;

static void
s_write (const char *path, const char *text)
{
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    fputs (text, f);
    fclose (f);
}

static json_t *
s_spec (void)
{
    return json_loads ("{\"name\":\"scale_out\",\"kind\":\"log\",\"params\":{\"replicas\":"
                       "{\"type\":\"integer\",\"required\":true,\"min\":1,\"max\":10}}}", 0, NULL);
}

//  A decision at SEQ proposing CONFIDENCE; VERDICTS NULL: as the gate gives them.
//  WITH_GATE false: a record from before decisions carried "gate".
static void
s_decision (FILE *out, mesh_gate_t *gate, const char *hash, int seq, double confidence,
            json_t *verdicts, bool with_gate)
{
    json_t *allowed = json_pack ("[s]", "scale_out");
    json_t *spec = s_spec ();
    json_t *proposal = json_pack ("{s:s, s:{s:i}, s:f}", "action", "scale_out", "params",
                                  "replicas", 2, "confidence", confidence);
    json_t *ctx = json_pack ("{s:s, s:f, s:n, s:[]}", "agent", "ops", "now", 1.7e9, "event",
                             "history");
    if (!verdicts) {
        json_t *seen = json_copy (ctx);
        json_object_set_new (seen, "incident", json_object ());
        json_object_set (seen, "action", spec);
        verdicts = json_array ();
        bool accepted;
        char *why = NULL;
        assert_int_equal (mesh_gate_replay_check (gate, allowed, spec, proposal, seen, verdicts,
                                                  NULL, &accepted, &why), 0);
        json_decref (seen);
    }
    json_t *record = json_pack ("{s:i, s:s, s:i, s:s, s:s, s:s, s:o, s:{}, s:s}", "seq", seq,
                                "prev", "0", "ts", seq, "type", "decision", "id", "x", "agent",
                                "ops", "ctx", ctx, "incident", "rules_hash", hash);
    if (with_gate)
        json_object_set_new (record, "gate", json_pack ("{s:[i,i,i], s:O}", "limits", 1000000,
                                                        8 << 20, 50, "actions", allowed));
    json_object_set_new (record, "attempts",
                         json_pack ("[{s:i, s:o, s:o, s:O}]", "step", 1, "proposal", proposal,
                                    "verdicts", verdicts, "ctx_action", spec));
    json_dumpf (record, out, JSON_COMPACT);
    fputc ('\n', out);
    json_decref (record);
    json_decref (spec);
    json_decref (allowed);
}

static int
s_setup (void **state)
{
    s_fixture_t *f = calloc (1, sizeof *f);
    strcpy (f->dir, "/tmp/test-replay-XXXXXX");
    assert_non_null (mkdtemp (f->dir));
    snprintf (f->src, sizeof f->src, "%s/src", f->dir);
    snprintf (f->cand, sizeof f->cand, "%s/cand", f->dir);
    snprintf (f->log, sizeof f->log, "%s/decisions.jsonl", f->dir);
    mkdir (f->src, 0750);
    mkdir (f->cand, 0750);
    char path[256];
    snprintf (path, sizeof path, "%s/floor.lua", f->src);
    s_write (path, s_floor);
    snprintf (path, sizeof path, "%s/01-floor.lua", f->cand);
    s_write (path, s_any);
    snprintf (path, sizeof path, "%s/01-floor_test.lua", f->cand);
    s_write (path, "this is not loaded");
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *f = *state;
    char cmd[128];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal (system (cmd), 0);
    free (f);
    return 0;
}

//  Write the log: seq 1..4 as the gate judges them (2 and 4 refused: confidence 0.3),
//  then seq 5 with a recorded time limit, seq 6 from before "gate".
static void
s_log (s_fixture_t *f)
{
    mesh_sandbox_limits_t limits = { 1000000, (size_t) 8 << 20, 50 };
    char *err = NULL;
    mesh_gate_t *gate = mesh_gate_replay_new (f->src, NULL, &limits, NULL, &err);
    assert_non_null (gate);
    assert_int_equal (mesh_gate_archive (gate, f->dir, NULL), 0);
    snprintf (f->hash, sizeof f->hash, "%s", mesh_gate_rules_hash (gate));
    FILE *out = fopen (f->log, "w");
    assert_non_null (out);
    fputs ("{\"seq\":0,\"type\":\"ledger\"}\nnot json at all\n", out);
    for (int seq = 1; seq <= 4; seq++)
        s_decision (out, gate, f->hash, seq, seq % 2 ? 0.9 : 0.3, NULL, true);
    json_t *limit = json_loads ("[{\"rule\":\"builtin\",\"verdict\":\"accept\",\"reason\":null},"
                                "{\"rule\":\"floor\",\"verdict\":\"limit\",\"reason\":"
                                "\"time limit\"}]", 0, NULL);
    s_decision (out, gate, f->hash, 5, 0.9, limit, true);
    s_decision (out, gate, f->hash, 6, 0.9, NULL, false);
    fclose (out);
    mesh_gate_destroy (&gate);
}

static json_t *
s_run (s_fixture_t *f, const char *rules, int64_t from, int64_t to, int *rc)
{
    mesh_audit_cli_t o = { .json = true, .log = f->log, .rules = rules, .from_seq = from,
                           .to_seq = to };
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    *rc = mesh_audit_replay_cli (&o, out);
    fclose (out);
    json_t *doc = json_loads (text, 0, NULL);
    free (text);
    assert_non_null (doc);
    return doc;
}

static int64_t
s_int (json_t *doc, const char *key)
{
    return (int64_t) json_integer_value (json_object_get (doc, key));
}

static void
test_archive (void **state)
{
    s_fixture_t *f = *state;
    s_log (f);
    int rc;
    json_t *doc = s_run (f, NULL, 0, 0, &rc);
    assert_int_equal (rc, 0);
    assert_int_equal (s_int (doc, "decisions"), 6);
    assert_int_equal (s_int (doc, "replayed"), 5);
    assert_int_equal (s_int (doc, "differ"), 0);
    //  The recorded time limit: not deterministic, listed as such.
    assert_int_equal (s_int (doc, "nondeterministic_count"), 1);
    json_t *nd = json_array_get (json_object_get (doc, "nondeterministic"), 0);
    assert_int_equal (s_int (nd, "seq"), 5);
    //  The record from before "gate".
    assert_int_equal (s_int (json_object_get (doc, "not_replayable"), "missing gate"), 1);
    json_decref (doc);
}

static void
test_altered_archive (void **state)
{
    s_fixture_t *f = *state;
    s_log (f);
    char path[256];
    snprintf (path, sizeof path, "%s/rules/%s/01-floor.lua", f->dir, f->hash);
    s_write (path, s_any);
    int rc;
    json_t *doc = s_run (f, NULL, 0, 0, &rc);
    assert_int_equal (rc, 1);
    assert_int_equal (s_int (doc, "differ"), 2);        //  seq 2 and 4 now accepted
    json_t *d = json_array_get (json_object_get (doc, "differences"), 0);
    assert_int_equal (s_int (d, "seq"), 2);
    json_t *c = json_array_get (json_object_get (d, "changes"), 0);
    assert_string_equal (json_string_value (json_object_get (c, "rule")), "floor");
    assert_string_equal (json_string_value (json_object_get (json_object_get (c, "recorded"),
                                                             "reason")), "confidence below 0.5");
    assert_non_null (json_string_value (json_object_get (
        json_array_get (json_object_get (doc, "sets"), 0), "altered")));
    json_decref (doc);
}

static void
test_candidate_and_range (void **state)
{
    s_fixture_t *f = *state;
    s_log (f);
    int rc;
    json_t *doc = s_run (f, f->cand, 0, 0, &rc);
    assert_int_equal (rc, 1);
    assert_int_equal (s_int (doc, "refused_to_accepted"), 2);
    assert_int_equal (s_int (doc, "accepted_to_refused"), 0);
    json_t *c = json_array_get (json_object_get (doc, "changed"), 0);
    assert_string_equal (json_string_value (json_object_get (c, "from")), "refused");
    assert_string_equal (json_string_value (json_object_get (
        json_array_get (json_object_get (c, "rules"), 0), "reason")), "confidence below 0.5");
    json_decref (doc);
    //  Only seq 3..3: nothing would change.
    doc = s_run (f, f->cand, 3, 3, &rc);
    assert_int_equal (rc, 0);
    assert_int_equal (s_int (doc, "decisions"), 1);
    json_decref (doc);
    //  4..5: one flip, seq 4.
    doc = s_run (f, f->cand, 4, 5, &rc);
    assert_int_equal (rc, 1);
    assert_int_equal (s_int (doc, "decisions"), 2);
    assert_int_equal (s_int (json_array_get (json_object_get (doc, "changed"), 0), "seq"), 4);
    json_decref (doc);
}

static void
test_bad_archive (void **state)
{
    s_fixture_t *f = *state;
    s_log (f);
    char path[256];
    snprintf (path, sizeof path, "%s/rules/%s/manifest.json", f->dir, f->hash);
    s_write (path, "[1,");
    int rc;
    json_t *doc = s_run (f, NULL, 0, 0, &rc);
    assert_int_equal (rc, 2);
    assert_non_null (strstr (json_string_value (json_object_get (doc, "error")),
                             "not a manifest"));
    json_decref (doc);
    //  A log that does not exist, and an empty range.
    mesh_audit_cli_t o = { .log = "/nonexistent/decisions.jsonl" };
    FILE *out = fopen ("/dev/null", "w");
    assert_int_equal (mesh_audit_replay_cli (&o, out), 2);
    mesh_audit_cli_t r = { .log = f->log, .from_seq = 5, .to_seq = 2 };
    assert_int_equal (mesh_audit_replay_cli (&r, out), 64);
    fclose (out);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_archive, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_altered_archive, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_candidate_and_range, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_bad_archive, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

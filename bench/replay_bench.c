/*  replay_bench - decisions per second of `meshctl audit replay`.
 *
 *  Writes a synthetic decision log of N decisions in the ledger's format (seq, prev,
 *  ts, type first; the fields reason.c writes that replay reads: ctx with a history of
 *  20 entries, incident, rules_hash, gate, attempts with proposal, ctx_action and the
 *  verdicts the real gate gave), with the shipped action_allowlist and
 *  confidence_floor archived as the rule set in force, a third of the decisions with a
 *  refused first attempt.  Then, in the same run: the baseline, reading the log and
 *  parsing every line with jansson (what any replay must pay at least), and the
 *  replay itself through mesh_audit_replay_cli, which must find no difference.
 *
 *  Run from the repository root (make bench does): REPLAY_N sets N (default 20000).
 */
#include "audit_cli.h"
#include "gate.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void
s_copy (const char *from, const char *to)
{
    FILE *in = fopen (from, "rb"), *out = fopen (to, "wb");
    if (!in || !out) {
        fprintf (stderr, "replay_bench: cannot copy %s (run from the repository root)\n", from);
        exit (1);
    }
    char buf[8192];
    size_t n;
    while ((n = fread (buf, 1, sizeof buf, in)) > 0)
        fwrite (buf, 1, n, out);
    fclose (in);
    fclose (out);
}

static json_t *
s_spec (void)
{
    return json_loads ("{\"name\":\"scale_out\",\"kind\":\"kafka\",\"params\":{\"service\":"
                       "{\"type\":\"string\",\"required\":true,\"max_length\":256,\"pattern\":"
                       "\"[a-z][a-z0-9-]{0,62}\"},\"replicas\":{\"type\":\"integer\","
                       "\"required\":true,\"min\":1,\"max\":10}}}", 0, NULL);
}

int
main (void)
{
    long n = getenv ("REPLAY_N") ? atol (getenv ("REPLAY_N")) : 20000;
    if (n <= 0)
        n = 20000;
    char dir[] = "/tmp/replay-bench-XXXXXX";
    if (!mkdtemp (dir)) {
        perror ("mkdtemp");
        return 1;
    }
    char rules[256], state[256], log[300], path[400];
    snprintf (rules, sizeof rules, "%s/rules-src", dir);
    snprintf (state, sizeof state, "%s/state", dir);
    snprintf (log, sizeof log, "%s/decisions.jsonl", state);
    mkdir (rules, 0750);
    mkdir (state, 0750);
    snprintf (path, sizeof path, "%s/01-action_allowlist.lua", rules);
    s_copy ("rules/action_allowlist.lua", path);
    snprintf (path, sizeof path, "%s/02-confidence_floor.lua", rules);
    s_copy ("rules/confidence_floor.lua", path);

    mesh_sandbox_limits_t limits = { 1000000, (size_t) 8 << 20, 50 };
    char *err = NULL;
    mesh_gate_t *gate = mesh_gate_replay_new (rules, NULL, &limits, NULL, &err);
    if (!gate || mesh_gate_archive (gate, state, NULL) != 0) {
        fprintf (stderr, "replay_bench: %s\n", err ? err : "cannot archive the rules");
        return 1;
    }
    const char *hash = mesh_gate_rules_hash (gate);
    json_t *allowed = json_pack ("[s,s]", "scale_out", "escalate");
    json_t *spec = s_spec ();
    json_t *history = json_array ();
    for (int i = 0; i < 20; i++)
        json_array_append_new (history, json_pack ("{s:s, s:s, s:f}", "action", "scale_out",
                                                   "target", i % 2 ? "web" : "api", "at",
                                                   1.7e9 - 60.0 * i));
    FILE *out = fopen (log, "w");
    double t0 = s_now ();
    for (long i = 0; i < n; i++) {
        json_t *ctx = json_pack ("{s:s, s:f, s:{s:s, s:f}, s:O}", "agent", "ops", "now",
                                 1.7e9 + (double) i, "event", "series", "web-1/cpu", "value",
                                 93.5 + (double) (i % 7), "history", history);
        json_t *incident = json_pack ("{s:s, s:s, s:f, s:f, s:f}", "id", "inc", "series",
                                      "web-1/cpu", "value", 93.5, "score", 0.97, "mean", 41.2);
        json_t *attempts = json_array ();
        for (int step = 1; step <= (i % 3 == 0 ? 2 : 1); step++) {
            bool low = i % 3 == 0 && step == 1;
            json_t *proposal = json_pack ("{s:s, s:{s:s, s:i}, s:f, s:s}", "action", "scale_out",
                                          "params", "service", "web", "replicas",
                                          (int) (2 + i % 3), "confidence", low ? 0.4 : 0.85,
                                          "rationale", "cpu above its baseline for ten minutes");
            json_t *seen = json_copy (ctx);
            json_object_set (seen, "incident", incident);
            json_object_set (seen, "action", spec);
            json_t *verdicts = json_array ();
            bool accepted;
            char *why = NULL;
            mesh_gate_replay_check (gate, allowed, spec, proposal, seen, verdicts, NULL,
                                    &accepted, &why);
            free (why);
            json_decref (seen);
            json_array_append_new (attempts, json_pack (
                "{s:i, s:s, s:s, s:o, s:o, s:b, s:O, s:s, s:i}", "step", step, "backend",
                "scripted", "model", "demo", "proposal", proposal, "verdicts", verdicts,
                "accepted", accepted, "ctx_action", spec, "output", "{\"action\":...}",
                "latency_ms", 12));
        }
        //  The ledger's order: seq, prev, ts, type first.
        json_t *ordered = json_pack ("{s:I, s:s, s:I, s:s}", "seq", (json_int_t) i + 1, "prev",
                                     "0000000000000000000000000000000000000000000000000000000000000000",
                                     "ts", (json_int_t) 1700000000000 + i, "type", "decision");
        json_object_set_new (ordered, "agent", json_string ("ops"));
        json_object_set_new (ordered, "incident", incident);
        json_object_set_new (ordered, "ctx", ctx);
        json_object_set_new (ordered, "rules_hash", json_string (hash));
        json_object_set_new (ordered, "gate", json_pack ("{s:[i,i,i], s:O}", "limits", 1000000,
                                                         8 << 20, 50, "actions", allowed));
        json_object_set_new (ordered, "attempts", attempts);
        json_object_set_new (ordered, "verdict", json_string ("accepted"));
        char id[32];
        snprintf (id, sizeof id, "%016lx", (unsigned long) i);
        json_object_set_new (ordered, "id", json_string (id));
        json_object_set_new (ordered, "hash", json_string ("0"));
        json_dumpf (ordered, out, JSON_COMPACT);
        fputc ('\n', out);
        json_decref (ordered);
    }
    fclose (out);
    double made = s_now () - t0;
    json_decref (history);
    json_decref (spec);
    json_decref (allowed);
    mesh_gate_destroy (&gate);
    struct stat st;
    stat (log, &st);

    //  Baseline: read and parse every line.
    t0 = s_now ();
    FILE *in = fopen (log, "r");
    char *line = NULL;
    size_t size = 0;
    ssize_t len;
    long parsed = 0;
    while ((len = getline (&line, &size, in)) > 0) {
        json_t *r = json_loadb (line, (size_t) len, 0, NULL);
        parsed += r != NULL;
        json_decref (r);
    }
    free (line);
    fclose (in);
    double parse = s_now () - t0;

    //  The replay.
    mesh_audit_cli_t o = { .log = log };
    FILE *sink = fopen ("/dev/null", "w");
    t0 = s_now ();
    int rc = mesh_audit_replay_cli (&o, sink);
    double replay = s_now () - t0;
    fclose (sink);

    printf ("synthetic log: %ld decisions, %.1f MB, %.1f KB a record (written in %.2f s)\n", n,
            (double) st.st_size / 1e6, (double) st.st_size / 1024.0 / (double) n, made);
    printf ("%-34s %12s %10s %8s\n", "", "decisions/s", "seconds", "ratio");
    printf ("%-34s %12.0f %10.3f %8.2f\n", "baseline: read + JSON parse", (double) parsed / parse,
            parse, 1.0);
    printf ("%-34s %12.0f %10.3f %8.2f\n", "audit replay (archived rules)", (double) n / replay,
            replay, replay / parse);
    printf ("replay exit %d (%s)\n", rc, rc == 0 ? "no difference, as written" : "UNEXPECTED");
    char cmd[400];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system (cmd) != 0)
        fprintf (stderr, "replay_bench: could not remove %s\n", dir);
    return rc == 0 ? 0 : 1;
}

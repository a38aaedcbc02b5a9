/*  meshctl - the operator's command line.
 *
 *      meshctl [--json] [--config FILE] status
 *      meshctl [--json] [--config FILE] audit list [--agent A] [--verdict V] [--action X]
 *                                       [--since EPOCH_S] [--until EPOCH_S] [--log FILE]
 *      meshctl [--json] [--config FILE] audit show ID [--log FILE]
 *      meshctl [--json] [--config FILE] audit verify [--log FILE] [--key FILE]
 *                                       [--head-advisory]
 *      meshctl [--json] [--config FILE] summary [--labels FILE] [--log FILE]
 *      meshctl [--json] [--config FILE] reload
 *      meshctl [--json] [--config FILE] budget
 *
 *  Human tables by default, --json for scripts.  The config (default
 *  /etc/meshd/meshd.yaml, or $MESHD_CONFIG) says where the runtime directory and
 *  the decision log are; --log overrides the log.  Exit codes scripts can rely
 *  on: 0 ok; 1 the answer is "no" (verify failed, id not found); 2 cannot read
 *  the log; 3 meshd not reachable; 64 usage; 78 config unusable.
 */
#include "audit.h"
#include "config.h"
#include "labels.h"
#include "log.h"
#include "proto.h"
#include "ruletest.h"
#include "silence.h"

#include <czmq.h>
#include <getopt.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

enum { EXIT_NO = 1, EXIT_READ = 2, EXIT_DOWN = 3, EXIT_USAGE = 64, EXIT_CONFIG = 78 };

typedef struct {
    bool json;
    const char *config_path;
    const char *log;
    const char *labels;
    const char *key;                //  audit verify: the ledger's MAC key file
    bool head_advisory;             //  audit verify: a head behind the log is not a failure
    mesh_audit_filter_t filter;
    mesh_config_t *cfg;
} s_opts_t;

static void
s_usage (void)
{
    fprintf (stderr,
             "usage: meshctl [--json] [--config FILE] COMMAND\n"
             "  status                         agents with pid, state, restarts, counters\n"
             "  audit list [filters]           decisions (--agent --verdict --action --since "
             "--until)\n"
             "  audit show ID                  one decision and its outcome (ID or prefix >= 8)\n"
             "  audit verify [--key FILE] [--head-advisory]\n"
             "                                 check the hash chain, the head file and, with\n"
             "                                 the ledger's key, every record's MAC\n"
             "  summary [--labels FILE]        counters, decisions, tokens, detection quality\n"
             "  reload                         validate and apply config and rules (else keep old)\n"
             "  budget                         every token budget scope: limit, used, reserved,\n"
             "                                 remaining, burn rate, when it frees\n"
             "  rules test [DIR|FILE]... | rules check FILE|DIR...  rule tests; load rules\n"
             "  silence add --match F=V [--match F=~RE] --for 2h [--comment C] | list | expire ID\n"
             "  options: --log FILE (decision log), --json (machine-readable)\n");
}

static int
s_load_config (s_opts_t *o)
{
    if (o->cfg)
        return 0;
    if (mesh_config_load (o->config_path, &o->cfg, stderr) != 0) {
        fprintf (stderr, "meshctl: cannot use config %s\n", o->config_path);
        return EXIT_CONFIG;
    }
    return 0;
}

static const char *
s_log_path (s_opts_t *o)
{
    if (o->log)
        return o->log;
    return s_load_config (o) == 0 ? o->cfg->decision_log : NULL;
}

//  Ask meshd; the whole reply body (caller owns) or NULL when meshd did not answer.
static json_t *
s_ask (s_opts_t *o, const char *cmd, int timeout_ms)
{
    if (s_load_config (o) != 0)
        return NULL;
    char *endpoint = mesh_proto_control_endpoint (o->cfg->runtime_dir);
    zsock_t *sock = zsock_new (ZMQ_DEALER);
    zsock_set_linger (sock, 0);
    json_t *result = NULL;
    if (zsock_connect (sock, "%s", endpoint) == 0) {
        json_t *req = json_pack ("{ss}", "cmd", cmd);
        mesh_proto_send (sock, NULL, MESH_MSG_CTL_REQUEST, req);
        json_decref (req);
        zpoller_t *poller = zpoller_new (sock, NULL);
        if (zpoller_wait (poller, timeout_ms)) {
            const char *why = NULL;
            mesh_msg_t *reply = mesh_proto_recv (sock, false, &why, NULL);
            if (reply)
                result = json_incref (reply->body);
            else
                fprintf (stderr, "meshctl: bad reply from meshd: %s\n", why);
            mesh_msg_destroy (&reply);
        }
        zpoller_destroy (&poller);
    }
    if (!result)
        fprintf (stderr, "meshctl: meshd is not answering at %s\n", endpoint);
    zsock_destroy (&sock);
    free (endpoint);
    return result;
}

//  Ask meshd; the result (caller owns), or NULL (said why) when it failed.
static json_t *
s_request (s_opts_t *o, const char *cmd)
{
    json_t *reply = s_ask (o, cmd, 3000);
    json_t *result = NULL;
    if (reply && json_is_true (json_object_get (reply, "ok")))
        result = json_incref (json_object_get (reply, "result"));
    else
    if (reply)
        fprintf (stderr, "meshctl: %s\n", json_string_value (json_object_get (reply, "error")));
    json_decref (reply);
    return result;
}

//  Validate and apply the config and rules on disk; the old ones stay if anything is wrong.
static int
s_reload (s_opts_t *o)
{
    json_t *reply = s_ask (o, "reload", 30000);
    if (!reply)
        return EXIT_DOWN;
    bool ok = json_is_true (json_object_get (reply, "ok"));
    if (o->json) {
        json_dumpf (reply, stdout, JSON_INDENT (2) | JSON_PRESERVE_ORDER);
        printf ("\n");
    }
    else
    if (ok) {
        json_t *r = json_object_get (reply, "result");
        printf ("reloaded: rules swapped in %zu agent(s), %zu agent(s) restarting\n",
                json_array_size (json_object_get (r, "reload")),
                json_array_size (json_object_get (r, "restart")));
    }
    else
        fprintf (stderr, "reload refused; the running config and rules stay in force:\n%s",
                 json_string_value (json_object_get (reply, "error")));
    json_decref (reply);
    return ok ? 0 : EXIT_NO;
}

static json_int_t
s_counter (json_t *agent, const char *name)
{
    return json_integer_value (json_object_get (json_object_get (agent, "counters"), name));
}

//  A string member, "" when absent.
static const char *
s_str (json_t *object, const char *key)
{
    const char *value = json_string_value (json_object_get (object, key));
    return value ? value : "";
}

//  Under an agent's row, when it skipped messages: how many of each cause (the heartbeat's
//  malformed_<reason> counters) and what became of their dead-letter copies.
static void
s_malformed_line (json_t *agent)
{
    json_t *counters = json_object_get (agent, "counters");
    json_int_t failed = s_counter (agent, "dead_letter_failed");
    if (!s_counter (agent, "malformed") && !failed)
        return;
    printf ("  malformed %lld:", (long long) s_counter (agent, "malformed"));
    const char *key;
    json_t *n;
    json_object_foreach (counters, key, n)
        if (!strncmp (key, "malformed_", 10) && json_integer_value (n))
            printf (" %s %lld", key + 10, (long long) json_integer_value (n));
    printf ("; dead-lettered %lld, dead_letter_failed %lld\n",
            (long long) s_counter (agent, "dead_lettered"), (long long) failed);
}

//  One scope of the token ledger on one line.
static void
s_budget_line (json_t *scope, const char *prefix)
{
    if (!json_is_object (scope))
        return;
    json_t *limit = json_object_get (scope, "limit");
    char window[96];
    if (json_is_string (json_object_get (scope, "time_zone")))
        snprintf (window, sizeof window, "day in %s", s_str (scope, "time_zone"));
    else
        snprintf (window, sizeof window, "last %llds",
                  (long long) json_integer_value (json_object_get (scope, "window_s")));
    printf ("%s%-28s used %lld + reserved %lld", prefix, s_str (scope, "scope"),
            (long long) json_integer_value (json_object_get (scope, "used")),
            (long long) json_integer_value (json_object_get (scope, "reserved")));
    if (json_is_integer (limit))
        printf (" of %lld (%lld left, reserve %lld) per %s", (long long) json_integer_value (limit),
                (long long) json_integer_value (json_object_get (scope, "remaining")),
                (long long) json_integer_value (json_object_get (scope, "reserve")), window);
    else
        printf (", no limit");
    printf (", burn %.0f/min", json_real_value (json_object_get (scope, "burn_per_min")));
    if (json_is_string (json_object_get (scope, "resets_at")))
        printf (", frees from %s", s_str (scope, "resets_at"));
    printf ("\n");
}

//  meshctl budget: every scope of meshd's token ledger.
static int
s_budget (s_opts_t *o)
{
    json_t *budget = s_request (o, "budget");
    if (!budget)
        return EXIT_DOWN;
    if (o->json) {
        json_dumpf (budget, stdout, JSON_INDENT (2) | JSON_PRESERVE_ORDER);
        printf ("\n");
        json_decref (budget);
        return 0;
    }
    printf ("%-28s %10s %10s %10s %10s %9s %10s  %s\n", "SCOPE", "LIMIT", "USED", "RESERVED",
            "REMAINING", "BURN/MIN", "WINDOW", "RESETS");
    size_t i;
    json_t *scope;
    json_array_foreach (json_object_get (budget, "scopes"), i, scope) {
        json_t *limit = json_object_get (scope, "limit");
        char limit_text[32], left_text[32], window[64];
        snprintf (limit_text, sizeof limit_text, json_is_integer (limit) ? "%lld" : "-",
                  (long long) json_integer_value (limit));
        snprintf (left_text, sizeof left_text, json_is_integer (limit) ? "%lld" : "-",
                  (long long) json_integer_value (json_object_get (scope, "remaining")));
        if (json_is_string (json_object_get (scope, "time_zone")))
            snprintf (window, sizeof window, "day %s", s_str (scope, "time_zone"));
        else
            snprintf (window, sizeof window, "%llds",
                      (long long) json_integer_value (json_object_get (scope, "window_s")));
        printf ("%-28s %10s %10lld %10lld %10s %9.0f %10s  %s\n", s_str (scope, "scope"),
                limit_text, (long long) json_integer_value (json_object_get (scope, "used")),
                (long long) json_integer_value (json_object_get (scope, "reserved")), left_text,
                json_real_value (json_object_get (scope, "burn_per_min")), window,
                json_is_string (json_object_get (scope, "resets_at"))
                    ? s_str (scope, "resets_at") : "-");
    }
    json_t *run = json_object_get (budget, "run");
    printf ("reserved now %lld in %lld grant(s); this run: %lld granted, %lld refused, %lld "
            "charged (%lld released by dead agents)\n",
            (long long) json_integer_value (json_object_get (budget, "reserved")),
            (long long) json_integer_value (json_object_get (budget, "outstanding")),
            (long long) json_integer_value (json_object_get (run, "grants")),
            (long long) json_integer_value (json_object_get (run, "refused")),
            (long long) json_integer_value (json_object_get (run, "charged")),
            (long long) json_integer_value (json_object_get (run, "released")));
    json_decref (budget);
    return 0;
}

static int
s_status (s_opts_t *o)
{
    json_t *status = s_request (o, "status");
    if (!status)
        return EXIT_DOWN;
    if (o->json)
        json_dumpf (status, stdout, JSON_INDENT (2) | JSON_PRESERVE_ORDER);
    else {
        json_t *d = json_object_get (status, "daemon");
        //  Not ready is "starting" only while nothing is wrong: a failed agent or storage
        //  that is down say so (meshd then stops feeding the watchdog).
        bool storage_down = !strcmp (s_str (d, "storage"), "down");
        bool failed = false;
        size_t k;
        json_t *agent;
        json_array_foreach (json_object_get (status, "agents"), k, agent)
            failed |= !strcmp (s_str (agent, "state"), "failed");
        const char *readiness = json_is_true (json_object_get (d, "ready")) ? "ready"
                                : storage_down                             ? "NOT READY (storage down)"
                                : failed                                   ? "NOT READY (agent failed)"
                                                                           : "starting";
        printf ("meshd pid %lld, up %llds, %s, log %s (seq %lld), brokers %s\n",
                (long long) json_integer_value (json_object_get (d, "pid")),
                (long long) json_integer_value (json_object_get (d, "uptime_s")),
                readiness,
                json_string_value (json_object_get (d, "decision_log")),
                (long long) json_integer_value (json_object_get (d, "ledger_seq")),
                json_string_value (json_object_get (d, "brokers")));
        if (storage_down)
            printf ("STORAGE DOWN (agents held until a write succeeds): %s\n",
                    s_str (d, "storage_error"));
        json_t *dropped = json_object_get (d, "dropped");
        if (json_object_size (dropped)) {
            printf ("dropped messages:");
            const char *kind;
            json_t *n;
            json_object_foreach (dropped, kind, n)
                printf (" %s %lld", kind, (long long) json_integer_value (n));
            printf ("\n");
        }
        json_t *last = json_object_get (d, "last_reload");
        if (json_is_object (last) && !json_is_true (json_object_get (last, "ok")))
            printf ("LAST RELOAD FAILED (old config and rules in force):\n%s",
                    json_string_value (json_object_get (last, "error")));
        printf ("%-16s %7s %-9s %8s %9s %9s %9s %9s %8s %-12s %11s\n", "AGENT", "PID",
                "STATE", "RESTARTS", "EVENTS", "INCIDENTS", "DECISIONS", "ACCEPTED", "TOKENS",
                "RULES", "QUARANTINED");
        size_t i;
        json_t *a;
        json_array_foreach (json_object_get (status, "agents"), i, a) {
            const char *rules = json_string_value (json_object_get (a, "rules_hash"));
            printf ("%-16s %7lld %-9s %8lld %9lld %9lld %9lld %9lld %8lld %-12.12s %11lld\n",
                    json_string_value (json_object_get (a, "name")),
                    (long long) json_integer_value (json_object_get (a, "pid")),
                    json_string_value (json_object_get (a, "state")),
                    (long long) json_integer_value (json_object_get (a, "restarts")),
                    (long long) s_counter (a, "events"), (long long) s_counter (a, "incidents"),
                    (long long) s_counter (a, "loops"), (long long) s_counter (a, "accepted"),
                    (long long) s_counter (a, "tokens"), rules ? rules : "-",
                    (long long) json_integer_value (json_object_get (a, "quarantined")));
            s_malformed_line (a);
            s_budget_line (json_object_get (a, "budget"), "  budget ");
        }
    }
    printf ("\n");
    json_decref (status);
    return 0;
}

typedef struct {
    mesh_labels_t *labels;
    mesh_labels_score_t score;
} s_score_ctx_t;

static void
s_score_one (json_t *decision, void *arg)
{
    s_score_ctx_t *ctx = arg;
    json_t *incident = json_object_get (decision, "incident");
    const char *series = json_string_value (json_object_get (incident, "series"));
    json_t *ts = json_object_get (incident, "ts_ms");
    if (series && json_is_integer (ts))
        mesh_labels_score_add (ctx->labels, &ctx->score, series, json_integer_value (ts));
}

//  The economics of a run, from the decision records: what every attempt was charged,
//  and what was spent on attempts that were refused or failed (waste), by cause.
typedef struct {
    json_int_t calls, charged, accepted_decisions, decision_tokens;
    json_t *waste;                      //  {cause: tokens}
} s_economics_t;

static void
s_economics_one (json_t *decision, void *arg)
{
    s_economics_t *e = arg;
    const char *verdict = json_string_value (json_object_get (decision, "verdict"));
    if (verdict && !strcmp (verdict, "accepted"))
        e->accepted_decisions++;
    e->decision_tokens += json_integer_value (json_object_get (decision, "tokens"));
    size_t i;
    json_t *attempt;
    json_array_foreach (json_object_get (decision, "attempts"), i, attempt) {
        json_t *charged = json_object_get (attempt, "charged");
        json_int_t n = json_is_integer (charged)
                           ? json_integer_value (charged)
                           : json_integer_value (json_object_get (attempt, "prompt_tokens"))
                                 + json_integer_value (json_object_get (attempt,
                                                                        "completion_tokens"));
        e->calls++;
        e->charged += n;
        if (json_is_true (json_object_get (attempt, "accepted")))
            continue;
        const char *cause = json_string_value (json_object_get (attempt, "error"));
        cause = cause ? cause : "rejected";
        json_int_t had = json_integer_value (json_object_get (e->waste, cause));
        json_object_set_new (e->waste, cause, json_integer (had + n));
    }
}

static int
s_summary (s_opts_t *o)
{
    const char *log = s_log_path (o);
    if (!log)
        return EXIT_CONFIG;
    json_t *status = s_request (o, "status");       //  optional: counters need meshd up
    json_int_t events = 0, malformed = 0, anomalies = 0, incidents = 0, suppressed = 0,
               loops = 0, restarts = 0;
    size_t i;
    json_t *a;
    json_array_foreach (json_object_get (status, "agents"), i, a) {
        events += s_counter (a, "events");
        malformed += s_counter (a, "malformed");
        anomalies += s_counter (a, "anomalies");
        incidents += s_counter (a, "incidents");
        suppressed += s_counter (a, "suppressed");
        loops += s_counter (a, "loops");
        restarts += json_integer_value (json_object_get (a, "restarts"));
    }
    mesh_audit_stats_t st;
    if (mesh_audit_stats (log, &st) != 0) {
        fprintf (stderr, "meshctl: cannot read %s\n", log);
        json_decref (status);
        return EXIT_READ;
    }
    s_score_ctx_t sc = {0};
    if (o->labels) {
        sc.labels = mesh_labels_load (o->labels);
        if (!sc.labels) {
            json_decref (status);
            return EXIT_READ;
        }
        mesh_labels_score_begin (sc.labels, &sc.score);
        mesh_audit_each_decision (log, s_score_one, &sc);
        mesh_labels_score_end (sc.labels, &sc.score);
    }
    json_t *out = json_pack (
        "{sI sI sI sI sI sI sI s{sI sI sI sI sI sI} sI sf ss}", "events", events, "malformed",
        malformed, "anomalies", anomalies, "incidents", incidents, "suppressed", suppressed,
        "reasoning_loops", loops, "restarts", restarts, "decisions", "total",
        (json_int_t) st.decisions, "accepted", (json_int_t) st.accepted, "rejected",
        (json_int_t) st.rejected, "fallback", (json_int_t) st.fallback, "budget_exhausted",
        (json_int_t) st.budget_exhausted, "outcomes", (json_int_t) st.outcomes, "tokens",
        (json_int_t) st.tokens, "tokens_per_accepted", st.tokens_per_accepted, "decision_log",
        log);
    //  Economics: tokens per accepted decision, waste by cause, and what a naive loop
    //  (one call per anomalous point, at the mean tokens per call measured here) would
    //  have spent on the same stream.
    s_economics_t eco = {.waste = json_object ()};
    mesh_audit_each_decision (log, s_economics_one, &eco);
    double per_call = eco.calls ? (double) eco.charged / (double) eco.calls : 0;
    double naive = status ? per_call * (double) anomalies : 0;
    json_int_t waste_total = 0;
    const char *cause;
    json_t *n;
    json_object_foreach (eco.waste, cause, n)
        waste_total += json_integer_value (n);
    json_object_set_new (
        out, "economics",
        json_pack ("{sI sI sf so sI sO so so}", "calls", eco.calls, "tokens", eco.charged,
                   "tokens_per_call", per_call, "tokens_per_accepted_decision",
                   eco.accepted_decisions ? json_real ((double) eco.decision_tokens
                                                       / (double) eco.accepted_decisions)
                                          : json_null (),
                   "waste", waste_total, "waste_by_cause", eco.waste, "naive_tokens",
                   status ? json_integer ((json_int_t) naive) : json_null (), "naive_ratio",
                   status && eco.charged ? json_real (naive / (double) eco.charged)
                                         : json_null ()));
    if (sc.labels)
        json_object_set_new (out, "detection",
                             json_pack ("{sI sI sI sI sf sf}", "incidents",
                                        (json_int_t) sc.score.incidents, "true_incidents",
                                        (json_int_t) sc.score.true_incidents, "windows",
                                        (json_int_t) sc.score.windows, "windows_hit",
                                        (json_int_t) sc.score.windows_hit, "precision",
                                        sc.score.precision, "recall", sc.score.recall));
    if (o->json) {
        json_dumpf (out, stdout, JSON_INDENT (2) | JSON_PRESERVE_ORDER);
        printf ("\n");
    }
    else {
        printf ("meshd summary\n");
        printf ("  events consumed          %lld (+%lld malformed, counted and skipped)\n",
                (long long) events, (long long) malformed);
        printf ("  anomalies                %lld\n", (long long) anomalies);
        printf ("  incidents                %lld (%lld anomalous points suppressed by cooldown)\n",
                (long long) incidents, (long long) suppressed);
        printf ("  reasoning loops          %lld\n", (long long) loops);
        printf ("  decisions                %llu: %llu accepted, %llu rejected, %llu fallback, "
                "%llu budget exhausted\n",
                (unsigned long long) st.decisions, (unsigned long long) st.accepted,
                (unsigned long long) st.rejected, (unsigned long long) st.fallback,
                (unsigned long long) st.budget_exhausted);
        printf ("  tokens used              %llu\n", (unsigned long long) st.tokens);
        printf ("  tokens per accepted      %.1f\n", st.tokens_per_accepted);
        printf ("  model calls              %lld, %.1f tokens each on average\n",
                (long long) eco.calls, per_call);
        printf ("  waste                    %lld tokens on attempts refused or failed",
                (long long) waste_total);
        const char *sep = ": ";
        json_object_foreach (eco.waste, cause, n) {
            printf ("%s%s %lld", sep, cause, (long long) json_integer_value (n));
            sep = ", ";
        }
        printf ("\n");
        if (status && eco.charged)
            printf ("  naive loop               %lld tokens (one call per anomalous point, %lld "
                    "points): %.1fx what was spent\n", (long long) naive,
                    (long long) anomalies, naive / (double) eco.charged);
        else
            printf ("  naive loop               n/a (needs meshd running for the anomaly count, "
                    "and at least one call)\n");
        if (sc.labels)
            printf ("  detection                precision %.2f (%llu/%llu incidents in a labelled "
                    "window), recall %.2f (%llu/%llu windows)\n",
                    sc.score.precision, (unsigned long long) sc.score.true_incidents,
                    (unsigned long long) sc.score.incidents, sc.score.recall,
                    (unsigned long long) sc.score.windows_hit,
                    (unsigned long long) sc.score.windows);
        printf ("  agent restarts           %lld\n", (long long) restarts);
        printf ("  decision log             %s\n", log);
    }
    json_decref (out);
    json_decref (eco.waste);
    json_decref (status);
    mesh_labels_destroy (&sc.labels);
    return 0;
}

//  audit verify, with the MAC key if given (read, used, wiped).
static int
s_verify (s_opts_t *o, const char *log)
{
    unsigned char key[MESH_AUDIT_KEY_BYTES];
    mesh_audit_verify_opts_t opts = { .json = o->json, .head_advisory = o->head_advisory };
    if (o->key) {
        char why[256];
        int rc = mesh_audit_load_key (o->key, false, key, why, sizeof why);
        if (rc <= 0) {
            fprintf (stderr, "meshctl: the key file %s %s\n", o->key,
                     rc == 0 ? "does not exist" : why);
            return EXIT_READ;
        }
        opts.key = key;
    }
    int rc = mesh_audit_verify_with (log, &opts, stdout);
    sodium_memzero (key, sizeof key);
    return rc;
}

static int
s_audit (s_opts_t *o, int argc, char **argv)
{
    if (argc < 1) {
        s_usage ();
        return EXIT_USAGE;
    }
    const char *log = s_log_path (o);
    if (!log)
        return EXIT_CONFIG;
    if (strcmp (argv[0], "verify") == 0)
        return s_verify (o, log);
    if (strcmp (argv[0], "list") == 0)
        return mesh_audit_list (log, &o->filter, o->json, stdout);
    if (strcmp (argv[0], "show") == 0 && argc == 2)
        return mesh_audit_show (log, argv[1], o->json, stdout);
    s_usage ();
    return EXIT_USAGE;
}

int
main (int argc, char **argv)
{
    mesh_log_set_tag ("meshctl");
    if (mesh_silences_is_command (argc, argv))      //  its own options: common/silence.c
        return mesh_silences_cli (argc, argv, stdout, stderr);
    s_opts_t o = {.config_path = getenv ("MESHD_CONFIG") ?: "/etc/meshd/meshd.yaml"};
    static struct option opts[] = {
        {"json", 0, 0, 'j'},  {"config", 1, 0, 'c'},  {"log", 1, 0, 'l'},
        {"labels", 1, 0, 'L'}, {"agent", 1, 0, 'a'},  {"verdict", 1, 0, 'v'},
        {"action", 1, 0, 'x'}, {"since", 1, 0, 's'},  {"until", 1, 0, 'u'},
        {"help", 0, 0, 'h'},  {"key", 1, 0, 'K'},     {"head-advisory", 0, 0, 'H'},
        {0, 0, 0, 0}};
    int c;
    //  "+" would stop at the first non-option; we allow options anywhere.
    while ((c = getopt_long (argc, argv, "jc:l:L:a:v:x:s:u:h", opts, NULL)) != -1) {
        switch (c) {
            case 'j': o.json = true; break;
            case 'c': o.config_path = optarg; break;
            case 'l': o.log = optarg; break;
            case 'L': o.labels = optarg; break;
            case 'a': o.filter.agent = optarg; break;
            case 'v': o.filter.verdict = optarg; break;
            case 'x': o.filter.action = optarg; break;
            case 's': o.filter.since_ms = (int64_t) (atof (optarg) * 1000); break;
            case 'u': o.filter.until_ms = (int64_t) (atof (optarg) * 1000); break;
            case 'K': o.key = optarg; break;
            case 'H': o.head_advisory = true; break;
            case 'h': s_usage (); return 0;
            default: s_usage (); return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        s_usage ();
        return EXIT_USAGE;
    }
    zsys_init ();
    zsys_set_logstream (NULL);
    const char *cmd = argv[optind];
    int rc;
    if (strcmp (cmd, "status") == 0)
        rc = s_status (&o);
    else
    if (strcmp (cmd, "audit") == 0)
        rc = s_audit (&o, argc - optind - 1, argv + optind + 1);
    else
    if (strcmp (cmd, "summary") == 0)
        rc = s_summary (&o);
    else
    if (strcmp (cmd, "budget") == 0)
        rc = s_budget (&o);
    else
    if (strcmp (cmd, "reload") == 0)
        rc = s_reload (&o);
    else
    if (strcmp (cmd, "rules") == 0)
        rc = mesh_ruletest_main (argc - optind - 1, argv + optind + 1, stdout, stderr);
    else {
        s_usage ();
        rc = EXIT_USAGE;
    }
    mesh_config_destroy (&o.cfg);
    return rc;
}

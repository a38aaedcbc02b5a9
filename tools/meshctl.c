/*  meshctl - the operator's command line.
 *
 *      meshctl [--json] [--config FILE] status
 *      meshctl [--json] [--config FILE] audit list [--agent A] [--verdict V] [--action X]
 *                                       [--since TIME] [--until TIME] [--log FILE]
 *      meshctl [--json] [--config FILE] audit show ID [--log FILE]
 *      meshctl [--json] [--config FILE] audit verify [--log FILE] [--key FILE]
 *                                       [--head-advisory]
 *      meshctl [--json] [--config FILE] summary [--labels FILE] [--log FILE]
 *      meshctl [--json] [--config FILE] reload
 *      meshctl [--json] [--config FILE] budget
 *
 *      meshctl --version | --help
 *
 *  Human tables by default, --json for scripts.  The config (default
 *  /etc/meshd/meshd.yaml, or $MESHD_CONFIG) says where the runtime directory and
 *  the decision log are; --log overrides the log.  Exit codes scripts can rely
 *  on: 0 ok; 1 the answer is "no" (verify failed, id not found, a reload refused or not
 *  taken up by every agent in time); 2 cannot read the log; 3 meshd not reachable
 *  (summary: after printing what the decision log alone gives); 64 usage; 78 config
 *  unusable.  --help and --version print to stdout and exit 0; usage errors go to
 *  stderr.  Every error line starts "meshctl: ".
 *
 *  TIME (--since, --until): RFC 3339 (2026-12-05T07:44:26Z, 2026-12-05T08:44:26+01:00,
 *  fractional seconds allowed), "now", a duration back from now (2h, 90m, 1d12h, or
 *  -2h), @SECONDS (epoch seconds, as date(1) takes them), or a bare number of epoch
 *  seconds from 10^9 up (2001 onwards; "2026" is refused, not read as 1970 plus 2026
 *  seconds).  Anything else is a usage error.
 */
#include "audit.h"
#include "audit_cli.h"
#include "config.h"
#include "labels.h"
#include "log.h"
#include "proto.h"
#include "ruletest.h"
#include "silence.h"
#include "version.h"

#include <czmq.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <getopt.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    const char *comment;            //  approve / deny --comment
    mesh_audit_cli_t audit;         //  the audit commands' own options (audit_cli.h)
} s_opts_t;

//  The verdicts a decision record can carry (agents/reason.c, agents/agent.c).
static const char *const s_verdicts[] = {"accepted", "rejected", "model_failed",
                                         "budget_exhausted", "shed"};

static void
s_usage_to (FILE *out)
{
    fprintf (out,
             "usage: meshctl [--json] [--config FILE] COMMAND\n"
             "       meshctl --version | --help\n"
             "  status                         agents with pid, state, restarts, counters,\n"
             "                                 and each agent's backends: circuit, latency\n"
             "  audit list [filters]           decisions (--agent --verdict --action --since "
             "--until)\n"
             "  audit show ID                  one decision and its outcome (ID or prefix >= 8)\n"
             "  audit verify [--key FILE] [--pubkey KEY] [--head-advisory]\n"
             "                                 check the hash chain, the head file, with the\n"
             "                                 ledger's key every record's MAC, the Merkle tree\n"
             "                                 and every signed checkpoint\n"
             "  audit checkpoint               meshd signs a checkpoint now (prints it)\n"
             "  audit keygen [NAME] [--key FILE]  a new checkpoint signing key; prints its\n"
             "                                 public key\n"
             "  audit pubkey [--key FILE]      the checkpoints' public key\n"
             "  audit prove ID                 inclusion proof of a decision (JSON)\n"
             "  audit verify-proof FILE --pubkey KEY   check a proof offline\n"
             "  audit consistency OLD [NEW]    prove a later checkpoint extends an older one\n"
             "  audit replay [--from SEQ] [--to SEQ] [--rules DIR]  re-run the gates\n"
             "  audit stats [--since T] [--until T] [--by KEY] [--csv]\n"
             "  summary [--labels FILE]        counters, decisions, tokens, detection quality,\n"
             "                                 per backend, cascade escalations and saving\n"
             "  reload                         validate and apply config and rules (else keep old)\n"
             "  pause [--agent A] [--action X] the kill switch: decisions are still made and\n"
             "                                 recorded, nothing in scope executes (paused)\n"
             "  resume [--agent A] [--action X]  end it (no option: everything)\n"
             "  approvals                      decisions waiting for a human, with what would run\n"
             "  approve ID [--comment TEXT]    carry it out (meshd records who and why)\n"
             "  deny ID [--comment TEXT]       do not; recorded likewise\n"
             "  budget                         every token budget scope: limit, used, reserved,\n"
             "                                 remaining, burn rate, when it frees\n"
             "  rules test [DIR|FILE]... | rules check FILE|DIR...  rule tests; load rules\n"
             "  silence add --match F=V [--match F=~RE] --for 2h [--comment C] | list | expire ID\n"
             "  options: --log FILE (decision log), --json (machine-readable)\n"
             "  --verdict: accepted, rejected, model_failed, budget_exhausted, shed\n"
             "  TIME: RFC 3339 (2026-12-05T07:44:26Z), now, a duration ago (2h, 90m, 1d),\n"
             "        @EPOCH_SECONDS, or epoch seconds >= 1000000000\n"
             "  exit: 0 ok, 1 no, 2 cannot read the log, 3 meshd not reachable, 64 usage,\n"
             "        78 config unusable (meshctl(1))\n");
}

//  A usage error: the usage on stderr; EXIT_USAGE.
static int
s_usage_error (void)
{
    s_usage_to (stderr);
    return EXIT_USAGE;
}

//  TIME (see the top of the file) into epoch milliseconds *MS.  0, or -1.
static int
s_parse_when (const char *text, int64_t *ms)
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    int64_t now_ms = (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
    int64_t length;
    if (!text || !*text)
        return -1;
    if (strcmp (text, "now") == 0) {
        *ms = now_ms;
        return 0;
    }
    if (mesh_silence_parse_time (text, ms) == 0)
        return 0;
    const char *d = *text == '-' ? text + 1 : text;
    if (isdigit ((unsigned char) *d) && !isdigit ((unsigned char) d[strlen (d) - 1])
        && mesh_silence_parse_duration (d, &length) == 0) {
        *ms = now_ms - length;
        return 0;
    }
    bool at = *text == '@';
    const char *n = at ? text + 1 : text;
    if (!isdigit ((unsigned char) *n) || strspn (n, "0123456789.") != strlen (n))
        return -1;                      //  decimal only: no 0x10, 1e9, inf
    char *end = NULL;
    errno = 0;
    double seconds = strtod (n, &end);
    if (errno || !end || *end || !isfinite (seconds) || seconds > 1e11
        || (!at && seconds < 1e9))
        return -1;
    *ms = (int64_t) llround (seconds * 1000);
    return 0;
}

//  --since / --until: 0, or a usage error said.
static int
s_time_option (const char *name, const char *text, int64_t *ms)
{
    if (s_parse_when (text, ms) == 0)
        return 0;
    fprintf (stderr, "meshctl: %s '%.64s' is not a time: use RFC 3339 "
                     "(2026-12-05T07:44:26Z, with an offset or fractional seconds), now, a "
                     "duration ago (2h, 90m, 1d), @EPOCH_SECONDS, or epoch seconds >= "
                     "1000000000\n", name, text);
    return -1;
}

//  --verdict: 0 if TEXT is a verdict, else a usage error said.
static int
s_verdict_option (const char *text)
{
    for (size_t i = 0; i < sizeof s_verdicts / sizeof s_verdicts[0]; i++)
        if (strcmp (text, s_verdicts[i]) == 0)
            return 0;
    fprintf (stderr, "meshctl: --verdict '%.64s' is not a verdict; one of:", text);
    for (size_t i = 0; i < sizeof s_verdicts / sizeof s_verdicts[0]; i++)
        fprintf (stderr, " %s", s_verdicts[i]);
    fprintf (stderr, "\n");
    return -1;
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
s_ask_args (s_opts_t *o, const char *cmd, json_t *args, int timeout_ms)
{
    if (s_load_config (o) != 0)
        return NULL;
    char *endpoint = mesh_proto_control_endpoint (o->cfg->runtime_dir);
    zsock_t *sock = zsock_new (ZMQ_DEALER);
    zsock_set_linger (sock, 0);
    json_t *result = NULL;
    if (zsock_connect (sock, "%s", endpoint) == 0) {
        json_t *req = json_pack ("{ss}", "cmd", cmd);
        if (args)
            json_object_set (req, "args", args);
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

static json_t *
s_ask (s_opts_t *o, const char *cmd, int timeout_ms)
{
    return s_ask_args (o, cmd, NULL, timeout_ms);
}

//  Ask meshd; the result (caller owns), or NULL (said why) when it failed.
static json_t *
s_request_args (s_opts_t *o, const char *cmd, json_t *args)
{
    json_t *reply = s_ask_args (o, cmd, args, 3000);
    json_t *result = NULL;
    if (reply && json_is_true (json_object_get (reply, "ok")))
        result = json_incref (json_object_get (reply, "result"));
    else
    if (reply)
        fprintf (stderr, "meshctl: %s\n", json_string_value (json_object_get (reply, "error")));
    json_decref (reply);
    return result;
}

static json_t *
s_request (s_opts_t *o, const char *cmd)
{
    return s_request_args (o, cmd, NULL);
}

//  The pause state as one line: "nothing", "everything", or the agents and actions.
static void
s_print_paused (json_t *paused)
{
    json_t *agents = json_object_get (paused, "agents"), *actions = json_object_get (paused, "actions");
    if (json_is_true (json_object_get (paused, "all"))) {
        printf ("every action");
        return;
    }
    if (!json_array_size (agents) && !json_array_size (actions)) {
        printf ("nothing");
        return;
    }
    size_t i;
    json_t *name;
    int n = 0;
    json_array_foreach (agents, i, name)
        printf ("%sagent %s", n++ ? ", " : "", json_string_value (name));
    json_array_foreach (actions, i, name)
        printf ("%saction %s", n++ ? ", " : "", json_string_value (name));
}

//  meshctl pause / resume [--agent A] [--action X]: the kill switch (daemon/actions.h).
static int
s_pause (s_opts_t *o, bool pause)
{
    json_t *args = json_object ();
    if (o->filter.agent)
        json_object_set_new (args, "agent", json_string (o->filter.agent));
    if (o->filter.action)
        json_object_set_new (args, "action", json_string (o->filter.action));
    json_t *state = s_request_args (o, pause ? "pause" : "resume", args);
    json_decref (args);
    if (!state)
        return 1;
    if (o->json)
        json_dumpf (state, stdout, JSON_INDENT (2) | JSON_PRESERVE_ORDER);
    else {
        printf ("paused: ");
        s_print_paused (state);
    }
    printf ("\n");
    json_decref (state);
    return 0;
}

//  meshctl approvals: what waits for a human (daemon/actions.h).
static int
s_approvals (s_opts_t *o)
{
    json_t *list = s_request (o, "approvals");
    if (!list)
        return 1;
    if (o->json)
        json_dumpf (list, stdout, JSON_INDENT (2) | JSON_PRESERVE_ORDER);
    else {
        if (!json_array_size (list))
            printf ("no decision waits for approval");
        size_t i;
        json_t *entry;
        json_array_foreach (list, i, entry) {
            time_t expires = (time_t) (json_integer_value (json_object_get (entry, "expires_at"))
                                       / 1000);
            struct tm tm;
            char when[32] = "?";
            if (gmtime_r (&expires, &tm))
                strftime (when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
            char *params = json_dumps (json_object_get (entry, "params"), JSON_COMPACT);
            printf ("%.16s  agent %s  action %s %s  (%s; expires %s)\n",
                    json_string_value (json_object_get (entry, "id")),
                    json_string_value (json_object_get (entry, "agent")),
                    json_string_value (json_object_get (entry, "action")), params ? params : "{}",
                    json_string_value (json_object_get (entry, "reason")), when);
            free (params);
            json_t *run = json_object_get (entry, "would_run");
            json_t *argv = json_object_get (run, "argv");
            if (json_is_array (argv)) {
                printf ("    would run:");
                size_t k;
                json_t *arg;
                json_array_foreach (argv, k, arg) {
                    char *quoted = json_dumps (arg, JSON_ENCODE_ANY);
                    printf (" %s", quoted ? quoted : "?");
                    free (quoted);
                }
                printf ("\n");
            }
            else if (json_object_get (run, "url"))
                printf ("    would POST to %s\n", json_string_value (json_object_get (run, "url")));
        }
        if (!json_array_size (list))
            printf ("\n");
    }
    if (o->json)
        printf ("\n");
    json_decref (list);
    return 0;
}

//  meshctl approve / deny ID [--comment TEXT]: meshd knows who asks (the socket's peer
//  credentials), not from us.
static int
s_resolve (s_opts_t *o, bool approve, const char *id)
{
    json_t *args = json_pack ("{s:s}", "id", id);
    if (o->comment)
        json_object_set_new (args, "comment", json_string (o->comment));
    json_t *done = s_request_args (o, approve ? "approve" : "deny", args);
    json_decref (args);
    if (!done)
        return 1;
    if (o->json)
        json_dumpf (done, stdout, JSON_INDENT (2) | JSON_PRESERVE_ORDER);
    else
        printf ("%s %s: %s", approve ? "approved" : "denied",
                json_string_value (json_object_get (done, "id")),
                json_string_value (json_object_get (done, "action")));
    printf ("\n");
    json_decref (done);
    return 0;
}

//  After a reload: wait (at most S_RELOAD_WAIT_MS) until every running agent process reports
//  the rule set meshd gave its agent (HASHES: {agent: hash}, from the reply), so that a
//  status right after shows it.  0, or -1 having said which did not.
#define S_RELOAD_WAIT_MS 15000
static const char *s_str (json_t *object, const char *key);
static int
s_reload_wait (s_opts_t *o, json_t *hashes)
{
    if (!json_is_object (hashes))
        return 0;                       //  an older meshd: nothing to wait for
    int64_t deadline = zclock_mono () + S_RELOAD_WAIT_MS;
    char *late = NULL;
    while (true) {
        free (late);
        late = NULL;
        size_t size = 0;
        FILE *list = open_memstream (&late, &size);
        json_t *status = s_request (o, "status");
        int waiting = status ? 0 : -1;
        size_t i;
        json_t *a;
        json_array_foreach (json_object_get (status, "agents"), i, a) {
            const char *want = json_string_value (json_object_get (
                hashes, json_string_value (json_object_get (a, "agent")) ?: ""));
            const char *has = json_string_value (json_object_get (a, "rules_hash"));
            if (want && (!has || strcmp (want, has) != 0)) {
                fprintf (list, "%s%s (%s)", waiting++ ? ", " : "", s_str (a, "name"),
                         has ? "old rules" : "not reporting");
            }
        }
        json_decref (status);
        fclose (list);
        if (waiting == 0) {
            free (late);
            return 0;
        }
        if (waiting < 0 || zclock_mono () >= deadline)
            break;
        zclock_sleep (100);
    }
    fprintf (stderr, "meshctl: the reload is in force in meshd, but after %d s %s: %s\n",
             S_RELOAD_WAIT_MS / 1000, late && *late ? "these agents do not run the new rules yet"
                                                  : "meshd stopped answering",
             late && *late ? late : "status failed");
    free (late);
    return -1;
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
    if (ok && s_reload_wait (o, json_object_get (json_object_get (reply, "result"),
                                                 "rules_hash")) != 0)
        ok = false;
    else
        fprintf (stderr, "meshctl: reload refused; the running config and rules stay in "
                         "force:\n%s",
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

//  TEXT on the current line, at most MAX bytes, control characters as '?': what an agent
//  reports about a backend is its own text (a server's error message, a name).
static void
s_print_clean (const char *text, size_t max)
{
    size_t i;
    for (i = 0; text && text[i] && i < max; i++)
        putchar ((unsigned char) text[i] < 0x20 || text[i] == 0x7f ? '?' : text[i]);
    if (text && text[i])
        printf ("...");
}

//  "p50/p95/p99" (the keys in KEYS, "/"-separated) of a {p50, p95, p99} object, "-" for each
//  when null or absent.
static void
s_print_percentiles (json_t *figures, const char *const *keys, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        json_t *value = json_object_get (figures, keys[i]);
        if (json_is_integer (value))
            printf ("%s%lld", i ? "/" : "", (long long) json_integer_value (value));
        else
            printf ("%s-", i ? "/" : "");
    }
}

//  Under an agent's row: one line per inference backend from its last heartbeat (the
//  circuit state, what the server is, calls and latency over its last 512 calls), and when
//  it is not serving, why.
static void
s_backend_lines (json_t *agent)
{
    static const char *const three[] = { "p50", "p95", "p99" };
    static const char *const two[] = { "p50", "p99" };
    const char *name;
    json_t *b;
    json_object_foreach (json_object_get (agent, "backends"), name, b) {
        const char *state = s_str (b, "state");
        json_int_t context = json_integer_value (json_object_get (b, "context_tokens"));
        printf ("  backend ");
        s_print_clean (name, 64);
        printf (": ");
        s_print_clean (*state ? state : "unknown", 16);
        printf (" (");
        s_print_clean (*s_str (b, "flavor") ? s_str (b, "flavor") : "-", 32);
        if (context > 0)
            printf (", context %lld", (long long) context);
        else
            printf (", context -");
        printf (") calls %lld, failures %lld, latency p50/p95/p99 ",
                (long long) json_integer_value (json_object_get (b, "calls")),
                (long long) json_integer_value (json_object_get (b, "failures")));
        s_print_percentiles (json_object_get (b, "latency_ms"), three, 3);
        printf (" ms, ttft p50/p99 ");
        s_print_percentiles (json_object_get (b, "ttft_ms"), two, 2);
        printf (" ms\n");
        bool trouble = !strcmp (state, "open") || !strcmp (state, "half_open")
                       || !strcmp (state, "misconfigured") || !strcmp (state, "down")
                       || !strcmp (state, "loading");
        if (trouble && *s_str (b, "detail")) {
            printf ("    ");
            s_print_clean (s_str (b, "detail"), 240);
            json_t *open_for = json_object_get (b, "open_for_ms");
            if (json_is_integer (open_for))
                printf (" (circuit open for another %lld ms)",
                        (long long) json_integer_value (open_for));
            printf ("\n");
        }
    }
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
        json_t *acts = json_object_get (d, "actions");
        if (json_is_object (acts)) {
            json_t *paused = json_object_get (acts, "paused");
            bool any = json_is_true (json_object_get (paused, "all"))
                       || json_array_size (json_object_get (paused, "agents"))
                       || json_array_size (json_object_get (paused, "actions"));
            printf ("actions: %spaused: ", any ? "PAUSED, " : "");
            s_print_paused (paused);
            printf ("; running %lld, carried out by meshd %lld",
                    (long long) json_integer_value (json_object_get (acts, "running")),
                    (long long) json_integer_value (json_object_get (acts, "executed")));
            const char *name;
            json_t *rate;
            json_object_foreach (json_object_get (acts, "rates"), name, rate)
                printf ("; %s %lld/%lld per %llds", name,
                        (long long) json_integer_value (json_object_get (rate, "used")),
                        (long long) json_integer_value (json_object_get (rate, "limit")),
                        (long long) json_integer_value (json_object_get (rate, "window_s")));
            printf ("\n");
        }
        json_t *ship = json_object_get (d, "ship");
        if (json_is_object (ship) && json_object_get (ship, "error"))
            printf ("shipping: NOT RUNNING: %s\n", s_str (ship, "error"));
        else
        if (json_is_object (ship)) {
            json_t *age = json_object_get (ship, "lag_seconds");
            printf ("shipping: topic %s, shipped seq %lld of %lld, lag %lld record(s)",
                    s_str (ship, "topic"),
                    (long long) json_integer_value (json_object_get (ship, "shipped_seq")),
                    (long long) json_integer_value (json_object_get (ship, "ledger_seq")),
                    (long long) json_integer_value (json_object_get (ship, "lag_records")));
            if (json_is_number (age))
                printf (" (%.1f s)", json_number_value (age));
            printf (", broker %s", s_str (ship, "broker"));
            if (json_is_string (json_object_get (ship, "last_error")))
                printf (", last error: %s", s_str (ship, "last_error"));
            printf ("\n");
        }
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
            s_backend_lines (a);
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
    json_int_t model_failed;            //  decisions whose every model call failed
    json_int_t failed_calls;            //  attempts that ended in a model_* error
    json_t *waste;                      //  {cause: tokens}
} s_economics_t;

//  What ATTEMPT was charged (records from before the token ledger: its usage).
static json_int_t
s_attempt_tokens (json_t *attempt)
{
    json_t *charged = json_object_get (attempt, "charged");
    if (json_is_integer (charged))
        return json_integer_value (charged);
    return json_integer_value (json_object_get (attempt, "prompt_tokens"))
           + json_integer_value (json_object_get (attempt, "completion_tokens"));
}

static void
s_economics_one (json_t *decision, void *arg)
{
    s_economics_t *e = arg;
    const char *verdict = json_string_value (json_object_get (decision, "verdict"));
    if (verdict && !strcmp (verdict, "accepted"))
        e->accepted_decisions++;
    if (verdict && !strcmp (verdict, "model_failed"))
        e->model_failed++;
    e->decision_tokens += json_integer_value (json_object_get (decision, "tokens"));
    size_t i;
    json_t *attempt;
    json_array_foreach (json_object_get (decision, "attempts"), i, attempt) {
        json_int_t n = s_attempt_tokens (attempt);
        e->calls++;
        e->charged += n;
        if (json_is_true (json_object_get (attempt, "accepted")))
            continue;
        const char *cause = json_string_value (json_object_get (attempt, "error"));
        if (cause && !strncmp (cause, "model_", 6))
            e->failed_calls++;
        cause = cause ? cause : "rejected";
        json_int_t had = json_integer_value (json_object_get (e->waste, cause));
        json_object_set_new (e->waste, cause, json_integer (had + n));
    }
}

//  Per backend, from the attempts that name theirs: calls, accepted, tokens, latencies.
typedef struct {
    char *name;
    json_int_t calls, accepted, tokens;
    long *latency;                      //  latency_ms of each attempt that has one
    size_t latency_count, latency_cap;
} s_backend_use_t;

//  Cascade decisions grouped by their last backend: the saving is estimated per group
//  (what a decision that reached that backend spent there), then summed.
typedef struct {
    char *last;
    json_int_t decisions, tokens;       //  cascade decisions, all their attempts' tokens
    json_int_t reached, last_tokens;    //  those with an attempt at LAST, tokens spent there
} s_cascade_group_t;

typedef struct {
    s_backend_use_t *use;
    size_t use_count;
    s_cascade_group_t *group;
    size_t group_count;
    json_int_t cascade_decisions;
    json_t *escalations;                //  {cause: count}
    bool oom;
} s_backends_t;

static s_backend_use_t *
s_backend_use (s_backends_t *b, const char *name)
{
    for (size_t i = 0; i < b->use_count; i++)
        if (!strcmp (b->use[i].name, name))
            return &b->use[i];
    s_backend_use_t *grown = realloc (b->use, (b->use_count + 1) * sizeof *grown);
    if (!grown)
        return NULL;
    b->use = grown;
    s_backend_use_t *use = &b->use[b->use_count];
    memset (use, 0, sizeof *use);
    use->name = strdup (name);
    if (!use->name)
        return NULL;
    b->use_count++;
    return use;
}

static s_cascade_group_t *
s_cascade_group (s_backends_t *b, const char *last)
{
    for (size_t i = 0; i < b->group_count; i++)
        if (!strcmp (b->group[i].last, last))
            return &b->group[i];
    s_cascade_group_t *grown = realloc (b->group, (b->group_count + 1) * sizeof *grown);
    if (!grown)
        return NULL;
    b->group = grown;
    s_cascade_group_t *group = &b->group[b->group_count];
    memset (group, 0, sizeof *group);
    group->last = strdup (last);
    if (!group->last)
        return NULL;
    b->group_count++;
    return group;
}

static void
s_backends_one (json_t *decision, void *arg)
{
    s_backends_t *b = arg;
    size_t i;
    json_t *attempt;
    json_array_foreach (json_object_get (decision, "attempts"), i, attempt) {
        const char *name = json_string_value (json_object_get (attempt, "backend"));
        if (!name)
            continue;                   //  a record from before attempts named their backend
        s_backend_use_t *use = s_backend_use (b, name);
        if (!use) {
            b->oom = true;
            return;
        }
        use->calls++;
        use->accepted += json_is_true (json_object_get (attempt, "accepted"));
        use->tokens += s_attempt_tokens (attempt);
        json_t *latency = json_object_get (attempt, "latency_ms");
        if (!json_is_integer (latency))
            continue;
        if (use->latency_count == use->latency_cap) {
            size_t cap = use->latency_cap ? use->latency_cap * 2 : 64;
            long *grown = realloc (use->latency, cap * sizeof *grown);
            if (!grown) {
                b->oom = true;
                return;
            }
            use->latency = grown;
            use->latency_cap = cap;
        }
        use->latency[use->latency_count++] = (long) json_integer_value (latency);
    }
    json_t *cascade = json_object_get (decision, "cascade");
    json_t *names = json_object_get (cascade, "backends");
    const char *last = json_string_value (json_array_get (names, json_array_size (names) - 1));
    if (!json_is_object (cascade) || !last)
        return;
    b->cascade_decisions++;
    json_t *step;
    json_array_foreach (json_object_get (cascade, "escalations"), i, step) {
        const char *cause = json_string_value (json_object_get (step, "cause"));
        cause = cause ? cause : "?";
        json_int_t had = json_integer_value (json_object_get (b->escalations, cause));
        json_object_set_new (b->escalations, cause, json_integer (had + 1));
    }
    s_cascade_group_t *group = s_cascade_group (b, last);
    if (!group) {
        b->oom = true;
        return;
    }
    group->decisions++;
    bool reached = false;
    json_array_foreach (json_object_get (decision, "attempts"), i, attempt) {
        json_int_t n = s_attempt_tokens (attempt);
        group->tokens += n;
        const char *name = json_string_value (json_object_get (attempt, "backend"));
        if (name && !strcmp (name, last)) {
            reached = true;
            group->last_tokens += n;
        }
    }
    group->reached += reached;
}

static int
s_long_compare (const void *a, const void *b)
{
    long x = *(const long *) a, y = *(const long *) b;
    return x < y ? -1 : x > y;
}

//  The nearest-rank percentile P (0..1) of the COUNT sorted VALUES (COUNT > 0).
static long
s_rank (const long *values, size_t count, double p)
{
    size_t rank = (size_t) (p * (double) count + 0.999999);
    return values[(rank < 1 ? 1 : rank > count ? count : rank) - 1];
}

//  The summary's "backends" object: {name: {calls, accepted, acceptance_rate, tokens,
//  latency_ms: {p50, p99} | null}}.  Sorts each backend's latencies.
static json_t *
s_backends_json (s_backends_t *b)
{
    json_t *out = json_object ();
    for (size_t i = 0; i < b->use_count; i++) {
        s_backend_use_t *use = &b->use[i];
        json_t *latency = json_null ();
        if (use->latency_count) {
            qsort (use->latency, use->latency_count, sizeof *use->latency, s_long_compare);
            latency = json_pack ("{sI sI}", "p50",
                                 (json_int_t) s_rank (use->latency, use->latency_count, 0.50),
                                 "p99",
                                 (json_int_t) s_rank (use->latency, use->latency_count, 0.99));
        }
        json_object_set_new (
            out, use->name,
            json_pack ("{sI sI so sI so}", "calls", use->calls, "accepted", use->accepted,
                       "acceptance_rate",
                       use->calls ? json_real ((double) use->accepted / (double) use->calls)
                                  : json_null (),
                       "tokens", use->tokens, "latency_ms", latency));
    }
    return out;
}

//  The summary's "cascade" object, null when no decision used one: {decisions,
//  escalations: {cause: n}, tokens, reached_last, counted_tokens, estimate_all_last_tokens,
//  estimated_saving, by_last: {backend: {decisions, reached_last, tokens, last_tokens,
//  estimate_all_last_tokens, estimated_saving}}}.  The estimate for a group of decisions
//  with the same last backend: their number times the mean tokens spent at that backend by
//  those that reached it; the totals add up the groups in which one did (counted_tokens:
//  what their decisions spent), and the saving is 1 - counted_tokens / the estimate (null
//  when no decision reached its last backend).  An estimate: what the
//  decisions that stopped early would have cost at the last backend is not known.
static json_t *
s_cascade_json (s_backends_t *b)
{
    if (!b->cascade_decisions)
        return json_null ();
    json_t *groups = json_object ();
    json_int_t tokens = 0, reached = 0, counted_tokens = 0;
    double estimate = 0;
    for (size_t i = 0; i < b->group_count; i++) {
        s_cascade_group_t *g = &b->group[i];
        tokens += g->tokens;
        reached += g->reached;
        double mine = g->reached ? (double) g->decisions * (double) g->last_tokens
                                       / (double) g->reached
                                 : 0;
        if (g->reached) {
            estimate += mine;
            counted_tokens += g->tokens;
        }
        json_object_set_new (
            groups, g->last,
            json_pack ("{sI sI sI sI so so}", "decisions", g->decisions, "reached_last",
                       g->reached, "tokens", g->tokens, "last_tokens", g->last_tokens,
                       "estimate_all_last_tokens",
                       g->reached ? json_integer ((json_int_t) (mine + 0.5)) : json_null (),
                       "estimated_saving",
                       g->reached && mine > 0 ? json_real (1 - (double) g->tokens / mine)
                                              : json_null ()));
    }
    return json_pack ("{sI sO sI sI sI so so so}", "decisions", b->cascade_decisions,
                      "escalations", b->escalations, "tokens", tokens, "reached_last", reached,
                      "counted_tokens", counted_tokens, "estimate_all_last_tokens",
                      reached ? json_integer ((json_int_t) (estimate + 0.5)) : json_null (),
                      "estimated_saving",
                      reached && estimate > 0
                          ? json_real (1 - (double) counted_tokens / estimate) : json_null (),
                      "by_last", groups);
}

static void
s_backends_free (s_backends_t *b)
{
    for (size_t i = 0; i < b->use_count; i++) {
        free (b->use[i].name);
        free (b->use[i].latency);
    }
    for (size_t i = 0; i < b->group_count; i++)
        free (b->group[i].last);
    free (b->use);
    free (b->group);
    json_decref (b->escalations);
}

//  The human lines of the per-backend table and the cascade (from BACKENDS and CASCADE,
//  the JSON above).
static void
s_backends_print (json_t *backends, json_t *cascade)
{
    const char *name;
    json_t *u;
    if (json_object_size (backends)) {
        printf ("  per backend              %8s %8s %7s %10s  %s\n", "calls", "accepted", "rate",
                "tokens", "latency p50/p99 ms");
        json_object_foreach (backends, name, u) {
            json_t *rate = json_object_get (u, "acceptance_rate");
            json_t *latency = json_object_get (u, "latency_ms");
            printf ("    %-22s %8lld %8lld ", name,
                    (long long) json_integer_value (json_object_get (u, "calls")),
                    (long long) json_integer_value (json_object_get (u, "accepted")));
            if (json_is_number (rate))
                printf ("%6.1f%%", 100 * json_number_value (rate));
            else
                printf ("%7s", "-");
            printf (" %10lld  ", (long long) json_integer_value (json_object_get (u, "tokens")));
            if (json_is_object (latency))
                printf ("%lld/%lld\n",
                        (long long) json_integer_value (json_object_get (latency, "p50")),
                        (long long) json_integer_value (json_object_get (latency, "p99")));
            else
                printf ("-\n");
        }
    }
    if (!json_is_object (cascade))
        return;
    json_t *escalations = json_object_get (cascade, "escalations");
    json_int_t total = 0;
    json_t *n;
    json_object_foreach (escalations, name, n)
        total += json_integer_value (n);
    json_int_t decisions = json_integer_value (json_object_get (cascade, "decisions"));
    printf ("  cascade                  %lld decision%s, %lld escalation%s", (long long) decisions,
            decisions == 1 ? "" : "s", (long long) total, total == 1 ? "" : "s");
    const char *sep = ": ";
    json_object_foreach (escalations, name, n) {
        printf ("%s%s %lld", sep, name, (long long) json_integer_value (n));
        sep = ", ";
    }
    printf ("\n");
    json_t *by_last = json_object_get (cascade, "by_last");
    json_t *saving = json_object_get (cascade, "estimated_saving");
    if (!json_is_number (saving)) {
        printf ("  cascade saving           n/a (no decision reached the last backend)\n");
        return;
    }
    printf ("  cascade saving           %.1f%% (an estimate: %lld tokens spent against ~%lld had "
            "every decision gone to the last backend; the measured figure is the bench's)\n",
            100 * json_number_value (saving),
            (long long) json_integer_value (json_object_get (cascade, "counted_tokens")),
            (long long) json_integer_value (json_object_get (cascade,
                                                             "estimate_all_last_tokens")));
    if (json_object_size (by_last) < 2)
        return;
    json_t *g;
    json_object_foreach (by_last, name, g) {
        json_t *mine = json_object_get (g, "estimated_saving");
        printf ("    last backend %-11s %lld decision(s), %lld reached it, ", name,
                (long long) json_integer_value (json_object_get (g, "decisions")),
                (long long) json_integer_value (json_object_get (g, "reached_last")));
        if (json_is_number (mine))
            printf ("saving %.1f%% estimated\n", 100 * json_number_value (mine));
        else
            printf ("saving n/a (not counted)\n");
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
    //  meshd down: the live counters are unknown (null, "n/a"), never zeros; the rest
    //  comes from the decision log, and the exit status is EXIT_DOWN.
#define S_LIVE(v) (status ? json_integer (v) : json_null ())
    json_t *out = json_pack (
        "{so so so so so so so s{sI sI sI sI sI sI} sI sf ss}", "events", S_LIVE (events),
        "malformed", S_LIVE (malformed), "anomalies", S_LIVE (anomalies), "incidents",
        S_LIVE (incidents), "suppressed", S_LIVE (suppressed), "reasoning_loops", S_LIVE (loops),
        "restarts", S_LIVE (restarts), "decisions", "total",
        (json_int_t) st.decisions, "accepted", (json_int_t) st.accepted, "rejected",
        (json_int_t) st.rejected, "fallback", (json_int_t) st.fallback, "budget_exhausted",
        (json_int_t) st.budget_exhausted, "outcomes", (json_int_t) st.outcomes, "tokens",
        (json_int_t) st.tokens, "tokens_per_accepted", st.tokens_per_accepted, "decision_log",
        log);
#undef S_LIVE
    json_object_set_new (out, "meshd", json_string (status ? "running" : "not running"));
    //  Economics: tokens per accepted decision, waste by cause, and what a naive loop
    //  (one call per anomalous point, at the mean tokens per call measured here) would
    //  have spent on the same stream.
    s_economics_t eco = {.waste = json_object ()};
    mesh_audit_each_decision (log, s_economics_one, &eco);
    double per_call = eco.calls ? (double) eco.charged / (double) eco.calls : 0;
    double naive = status ? per_call * (double) anomalies : 0;
    json_object_set_new (json_object_get (out, "decisions"), "model_failed",
                         json_integer (eco.model_failed));
    json_object_set_new (out, "model_failed", json_pack ("{sI sI}", "decisions",
                         eco.model_failed, "calls", eco.failed_calls));
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
    //  Per backend and the cascade, from the attempts and the "cascade" of each decision.
    s_backends_t bk = {.escalations = json_object ()};
    mesh_audit_each_decision (log, s_backends_one, &bk);
    if (bk.oom) {
        fprintf (stderr, "meshctl: out of memory reading %s\n", log);
        s_backends_free (&bk);
        json_decref (out);
        json_decref (eco.waste);
        json_decref (status);
        mesh_labels_destroy (&sc.labels);
        return EXIT_READ;
    }
    json_object_set_new (out, "backends", s_backends_json (&bk));
    json_object_set_new (out, "cascade", s_cascade_json (&bk));
    s_backends_free (&bk);
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
        printf ("meshd summary%s\n", status ? "" : " (meshd not running: live counters n/a, "
                                                    "the rest from the decision log)");
        if (status) {
            printf ("  events consumed          %lld (+%lld malformed, counted and skipped)\n",
                    (long long) events, (long long) malformed);
            printf ("  anomalies                %lld\n", (long long) anomalies);
            printf ("  incidents                %lld (%lld anomalous points suppressed by "
                    "cooldown)\n", (long long) incidents, (long long) suppressed);
            printf ("  reasoning loops          %lld\n", (long long) loops);
        }
        else
            printf ("  events consumed          n/a\n  anomalies                n/a\n"
                    "  incidents                n/a\n  reasoning loops          n/a\n");
        printf ("  decisions                %llu: %llu accepted, %llu rejected, %llu fallback, "
                "%llu budget exhausted\n",
                (unsigned long long) st.decisions, (unsigned long long) st.accepted,
                (unsigned long long) st.rejected, (unsigned long long) st.fallback,
                (unsigned long long) st.budget_exhausted);
        printf ("  model_failed             %lld decisions (every model call failed: the "
                "fallback acted); %lld of %lld calls failed\n", (long long) eco.model_failed,
                (long long) eco.failed_calls, (long long) eco.calls);
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
        s_backends_print (json_object_get (out, "backends"), json_object_get (out, "cascade"));
        if (status)
            printf ("  agent restarts           %lld\n", (long long) restarts);
        else
            printf ("  agent restarts           n/a\n");
        printf ("  decision log             %s\n", log);
    }
    bool live = status != NULL;
    json_decref (out);
    json_decref (eco.waste);
    json_decref (status);
    mesh_labels_destroy (&sc.labels);
    return live ? 0 : EXIT_DOWN;
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
    //  The chain holds: now the tree and every signed checkpoint.
    if (rc == 0)
        rc = mesh_audit_verify_tree (log, o->audit.pubkey, o->json, stdout);
    return rc;
}

//  audit checkpoint: meshd signs one now (its own key; it appends the record).
static int
s_checkpoint (s_opts_t *o)
{
    json_t *reply = s_ask_args (o, "checkpoint", NULL, 10000);
    if (!reply) {
        fprintf (stderr, "meshctl: meshd did not answer (is it running?)\n");
        return EXIT_DOWN;
    }
    int rc = 0;
    json_t *result = json_object_get (reply, "result");
    if (!json_is_true (json_object_get (reply, "ok")) || !result) {
        fprintf (stderr, "meshctl: %s\n",
                 json_string_value (json_object_get (reply, "error")) ?: "refused");
        rc = EXIT_NO;
    }
    else
    if (o->json) {
        json_dumpf (result, stdout, JSON_COMPACT);
        putchar ('\n');
    }
    else
        fputs (json_string_value (json_object_get (result, "note")), stdout);
    json_decref (reply);
    return rc;
}

static int
s_audit (s_opts_t *o, int argc, char **argv)
{
    if (argc < 1) {
        return s_usage_error ();
    }
    //  A proof is checked with nothing but the file and the key; a key made with nothing
    //  but a path: no config needed for those.
    bool offline = strcmp (argv[0], "verify-proof") == 0
                   || (strcmp (argv[0], "keygen") == 0 && o->key);
    const char *log = offline && !o->log && access (o->config_path, R_OK) != 0
                          ? NULL : s_log_path (o);
    if (!log && !offline)
        return EXIT_CONFIG;
    if (strcmp (argv[0], "verify") == 0)
        return s_verify (o, log);
    if (strcmp (argv[0], "list") == 0)
        return mesh_audit_list (log, &o->filter, o->json, stdout);
    if (strcmp (argv[0], "show") == 0 && argc == 2)
        return mesh_audit_show (log, argv[1], o->json, stdout);
    if (strcmp (argv[0], "checkpoint") == 0 && argc == 1)
        return s_checkpoint (o);
    mesh_audit_cli_t *a = &o->audit;
    a->json = o->json;
    a->log = log;
    if (!o->cfg && o->config_path && access (o->config_path, R_OK) == 0)
        s_load_config (o);              //  optional with --log: state_dir, origin, limits
    a->cfg = o->cfg;
    a->key = o->key;
    a->since_ms = o->filter.since_ms;
    a->until_ms = o->filter.until_ms;
    a->argc = argc - 1;
    a->argv = argv + 1;
    static const struct {
        const char *name;
        int (*fn) (const mesh_audit_cli_t *, FILE *);
    } cmds[] = {
        {"replay", mesh_audit_replay_cli},   {"stats", mesh_audit_stats_cli},
        {"keygen", mesh_audit_keygen_cli},   {"pubkey", mesh_audit_pubkey_cli},
        {"prove", mesh_audit_prove_cli},     {"verify-proof", mesh_audit_verify_proof_cli},
        {"consistency", mesh_audit_consistency_cli}};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp (argv[0], cmds[i].name) == 0)
            return cmds[i].fn (a, stdout);
    return s_usage_error ();
}

int
main (int argc, char **argv)
{
    mesh_log_set_tag ("meshctl");
    mesh_log_set_cli ("meshctl");           //  library lines read "meshctl: ..." too
    if (mesh_silences_is_command (argc, argv))      //  its own options: common/silence.c
        return mesh_silences_cli (argc, argv, stdout, stderr);
    s_opts_t o = {.config_path = getenv ("MESHD_CONFIG") ?: "/etc/meshd/meshd.yaml"};
    static struct option opts[] = {
        {"json", 0, 0, 'j'},  {"config", 1, 0, 'c'},  {"log", 1, 0, 'l'},
        {"labels", 1, 0, 'L'}, {"agent", 1, 0, 'a'},  {"verdict", 1, 0, 'v'},
        {"action", 1, 0, 'x'}, {"since", 1, 0, 's'},  {"until", 1, 0, 'u'},
        {"help", 0, 0, 'h'},  {"key", 1, 0, 'K'},     {"head-advisory", 0, 0, 'H'},
        {"comment", 1, 0, 'C'}, {"version", 0, 0, 'W'},
        {"pubkey", 1, 0, 'P'},  {"from", 1, 0, 'F'},  {"to", 1, 0, 'T'},
        {"rules", 1, 0, 'R'},   {"by", 1, 0, 'B'},    {"csv", 0, 0, 'V'},
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
            case 'v':
                if (s_verdict_option (optarg) != 0)
                    return EXIT_USAGE;
                o.filter.verdict = optarg;
                break;
            case 'x': o.filter.action = optarg; break;
            case 's':
                if (s_time_option ("--since", optarg, &o.filter.since_ms) != 0)
                    return EXIT_USAGE;
                break;
            case 'u':
                if (s_time_option ("--until", optarg, &o.filter.until_ms) != 0)
                    return EXIT_USAGE;
                break;
            case 'K': o.key = optarg; break;
            case 'H': o.head_advisory = true; break;
            case 'C': o.comment = optarg; break;
            case 'P': o.audit.pubkey = optarg; break;
            case 'F': o.audit.from_seq = strtoll (optarg, NULL, 10); break;
            case 'T': o.audit.to_seq = strtoll (optarg, NULL, 10); break;
            case 'R': o.audit.rules = optarg; break;
            case 'B': o.audit.by = optarg; break;
            case 'V': o.audit.csv = true; break;
            case 'h': s_usage_to (stdout); return 0;
            case 'W': mesh_version_print (stdout, "meshctl"); return 0;
            default: return s_usage_error ();
        }
    }
    if (optind >= argc) {
        return s_usage_error ();
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
    if (strcmp (cmd, "pause") == 0 || strcmp (cmd, "resume") == 0)
        rc = s_pause (&o, strcmp (cmd, "pause") == 0);
    else
    if (strcmp (cmd, "approvals") == 0)
        rc = s_approvals (&o);
    else
    if ((strcmp (cmd, "approve") == 0 || strcmp (cmd, "deny") == 0) && optind + 1 < argc)
        rc = s_resolve (&o, strcmp (cmd, "approve") == 0, argv[optind + 1]);
    else
    if (strcmp (cmd, "rules") == 0)
        rc = mesh_ruletest_main (argc - optind - 1, argv + optind + 1, stdout, stderr);
    else
        rc = s_usage_error ();
    mesh_config_destroy (&o.cfg);
    return rc;
}

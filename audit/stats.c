/*  stats - `meshctl audit stats`: what the decisions in a log cost and what came of them.
 *
 *  One pass over the log (the tolerant reader: no chain check, that is verify's job).
 *  Each decision record in the window (since <= ts < until, the ledger's ts) adds to the
 *  total and, with --by, to its group: counts by verdict, tokens, waste by cause, model
 *  call latencies and rule refusals, all read from the record itself (docs/audit.md,
 *  "Statistics", defines each figure).  Outcome records in the window are counted by
 *  status in the total.
 *
 *  Grouping by agent, action or verdict puts a decision in one group.  Grouping by
 *  backend or rule puts it in every group its attempts touched, and a group then counts
 *  only the attempts of its backend (or those its rule judged): rows need not add up to
 *  the total there.
 *
 *  Memory is bounded whatever the log's length: at most S_GROUPS_MAX groups (later keys
 *  go to "other") and S_RULES_MAX rule names, and latencies go into a fixed histogram per
 *  group: exact below 16 ms, then 16 buckets per power of two, so a percentile is
 *  reported as its bucket's midpoint, within 1/32 (3.2%) of the true value.
 */
#include "audit.h"
#include "audit_cli.h"
#include "jsonout.h"
#include "log.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define S_GROUPS_MAX 1024
#define S_RULES_MAX  1024
#define S_SUB        16                     //  buckets per power of two
#define S_EXP_MAX    48                     //  latencies up to 2^48 ms
#define S_BUCKETS    (S_SUB + (S_EXP_MAX - 4) * S_SUB)

typedef enum { S_BY_NONE, S_BY_AGENT, S_BY_ACTION, S_BY_VERDICT, S_BY_BACKEND, S_BY_RULE } s_by_t;

//  Verdicts and waste causes with a column of their own.
enum { V_ACCEPTED, V_REJECTED, V_MODEL_FAILED, V_BUDGET, V_OTHER, V_COUNT };
static const char *s_verdict_names[V_COUNT] = {"accepted", "rejected", "model_failed",
                                               "budget_exhausted", "other"};
enum { W_REJECTED, W_MODEL_FAILED, W_BUDGET, W_ESCALATED, W_RETRIED, W_OTHER, W_COUNT };
static const char *s_waste_names[W_COUNT] = {"rejected", "model_failed", "budget_exhausted",
                                             "escalated", "retried", "other"};
enum { O_DONE, O_FAILED, O_OBSERVED, O_SKIPPED, O_REFUSED, O_UNKNOWN, O_OTHER, O_COUNT };
static const char *s_outcome_names[O_COUNT] = {"done", "failed", "observed", "skipped",
                                               "refused", "outcome_unknown", "other"};

typedef struct {
    char *key;
    uint64_t decisions, verdicts[V_COUNT], fallback, attempts, tokens, refusals;
    uint64_t waste[W_COUNT];
    uint64_t *latency;                      //  S_BUCKETS counts, allocated on first use
    uint64_t latency_count;
} s_group_t;

typedef struct {
    int64_t since_ms, until_ms;
    s_by_t by;
    s_group_t total;
    s_group_t *groups;                      //  up to S_GROUPS_MAX + 1 ("other")
    size_t group_count;
    json_t *index;                          //  key -> group index
    json_t *rule_refusals;                  //  rule -> count, at most S_RULES_MAX + "other"
    uint64_t outcomes[O_COUNT];
    bool oom;
} s_stats_t;

//  ---------------------------------------------------------------------------------------
//  The latency histogram

static size_t
s_bucket (uint64_t v)
{
    if (v < S_SUB)
        return (size_t) v;
    int e = 63 - __builtin_clzll (v);
    if (e >= S_EXP_MAX)
        return S_BUCKETS - 1;
    size_t sub = (size_t) (v >> (e - 4)) & (S_SUB - 1);
    return S_SUB + (size_t) (e - 4) * S_SUB + sub;
}

//  The midpoint of bucket I (exact below S_SUB).
static uint64_t
s_bucket_value (size_t i)
{
    if (i < S_SUB)
        return i;
    size_t e = (i - S_SUB) / S_SUB + 4, sub = (i - S_SUB) % S_SUB;
    uint64_t low = (uint64_t) (S_SUB + sub) << (e - 4);
    uint64_t width = (uint64_t) 1 << (e - 4);
    return low + (width - 1) / 2;
}

//  Nearest rank: the smallest value with at least ceil (P/100 * count) values at or
//  below it.
static uint64_t
s_percentile (const s_group_t *g, int p)
{
    uint64_t rank = (g->latency_count * (uint64_t) p + 99) / 100;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < S_BUCKETS; i++) {
        seen += g->latency[i];
        if (seen >= rank)
            return s_bucket_value (i);
    }
    return s_bucket_value (S_BUCKETS - 1);
}

static void
s_latency_add (s_stats_t *self, s_group_t *g, json_t *latency)
{
    if (!json_is_integer (latency) || json_integer_value (latency) < 0)
        return;
    if (!g->latency && !(g->latency = calloc (S_BUCKETS, sizeof *g->latency))) {
        self->oom = true;
        return;
    }
    g->latency[s_bucket ((uint64_t) json_integer_value (latency))]++;
    g->latency_count++;
}

//  ---------------------------------------------------------------------------------------
//  Adding up

static const char *
s_str (json_t *o, const char *key)
{
    return json_string_value (json_object_get (o, key));
}

static int
s_index_of (const char *s, const char **names, int count)
{
    for (int i = 0; i < count - 1; i++)
        if (s && strcmp (s, names[i]) == 0)
            return i;
    return count - 1;
}

static s_group_t *
s_group (s_stats_t *self, const char *key)
{
    if (!key || !*key)
        key = "-";
    json_t *at = json_object_get (self->index, key);
    if (at)
        return &self->groups[json_integer_value (at)];
    if (self->group_count >= S_GROUPS_MAX) {
        key = "other";
        if ((at = json_object_get (self->index, key)))
            return &self->groups[json_integer_value (at)];
    }
    s_group_t *g = &self->groups[self->group_count];
    memset (g, 0, sizeof *g);
    if (!(g->key = strdup (key))) {
        self->oom = true;
        return NULL;
    }
    json_object_set_new (self->index, key, json_integer ((json_int_t) self->group_count));
    self->group_count++;
    return g;
}

static uint64_t
s_attempt_tokens (json_t *attempt)
{
    json_t *charged = json_object_get (attempt, "charged");
    json_int_t n = json_is_integer (charged)
                       ? json_integer_value (charged)
                       : json_integer_value (json_object_get (attempt, "prompt_tokens"))
                             + json_integer_value (json_object_get (attempt, "completion_tokens"));
    return n > 0 ? (uint64_t) n : 0;
}

//  Does RULE appear in ATTEMPT's verdicts?
static bool
s_rule_in (json_t *attempt, const char *rule)
{
    size_t i;
    json_t *v;
    json_array_foreach (json_object_get (attempt, "verdicts"), i, v)
        if (rule && s_str (v, "rule") && strcmp (s_str (v, "rule"), rule) == 0)
            return true;
    return false;
}

static bool
s_relevant (const s_stats_t *self, json_t *attempt, const char *key)
{
    if (self->by == S_BY_BACKEND) {
        const char *b = s_str (attempt, "backend");
        return strcmp (b && *b ? b : "-", key) == 0;
    }
    if (self->by == S_BY_RULE)
        return s_rule_in (attempt, key);
    return true;
}

static void
s_rule_refused (s_stats_t *self, const char *rule)
{
    if (!rule)
        rule = "-";
    json_t *n = json_object_get (self->rule_refusals, rule);
    if (!n && json_object_size (self->rule_refusals) >= S_RULES_MAX) {
        rule = "other";
        n = json_object_get (self->rule_refusals, rule);
    }
    json_object_set_new (self->rule_refusals, rule,
                         json_integer (json_integer_value (n) + 1));
}

//  Add DECISION to G, counting only the attempts relevant to KEY (NULL: all of them).
static void
s_add (s_stats_t *self, s_group_t *g, json_t *decision, const char *key, bool total)
{
    const char *verdict = s_str (decision, "verdict");
    int v = s_index_of (verdict, s_verdict_names, V_COUNT);
    bool accepted = v == V_ACCEPTED;
    g->decisions++;
    g->verdicts[v]++;
    if (json_is_true (json_object_get (decision, "fallback")))
        g->fallback++;
    uint64_t tokens = 0;
    size_t i;
    json_t *attempt;
    json_array_foreach (json_object_get (decision, "attempts"), i, attempt) {
        if (key && !s_relevant (self, attempt, key))
            continue;
        uint64_t n = s_attempt_tokens (attempt);
        g->attempts++;
        tokens += n;
        s_latency_add (self, g, json_object_get (attempt, "latency_ms"));
        if (accepted && !json_is_true (json_object_get (attempt, "accepted")))
            g->waste[json_object_get (attempt, "escalated") ? W_ESCALATED : W_RETRIED] += n;
        size_t j;
        json_t *rv;
        json_array_foreach (json_object_get (attempt, "verdicts"), j, rv) {
            const char *rule = s_str (rv, "rule");
            const char *said = s_str (rv, "verdict");
            if (said && strcmp (said, "accept") == 0)
                continue;
            if (self->by == S_BY_RULE && key && !(rule && strcmp (rule, key) == 0))
                continue;
            g->refusals++;
            if (total)
                s_rule_refused (self, rule);
        }
    }
    //  The decision's own total is the figure of record where every attempt counts.
    json_t *recorded = json_object_get (decision, "tokens");
    if (!key && json_is_integer (recorded) && json_integer_value (recorded) >= 0)
        tokens = (uint64_t) json_integer_value (recorded);
    g->tokens += tokens;
    if (!accepted) {
        int w = v == V_REJECTED ? W_REJECTED
                : v == V_MODEL_FAILED ? W_MODEL_FAILED
                : v == V_BUDGET ? W_BUDGET
                : W_OTHER;
        g->waste[w] += tokens;
    }
}

static void
s_each (json_t *record, void *arg)
{
    s_stats_t *self = arg;
    const char *type = s_str (record, "type");
    if (!type || self->oom)
        return;
    json_t *ts = json_object_get (record, "ts");
    if (self->since_ms && (!json_is_integer (ts) || json_integer_value (ts) < self->since_ms))
        return;
    if (self->until_ms && (!json_is_integer (ts) || json_integer_value (ts) >= self->until_ms))
        return;
    if (strcmp (type, "outcome") == 0) {
        self->outcomes[s_index_of (s_str (record, "status"), s_outcome_names, O_COUNT)]++;
        return;
    }
    if (strcmp (type, "decision") != 0)
        return;
    s_add (self, &self->total, record, NULL, true);
    if (self->by == S_BY_AGENT || self->by == S_BY_VERDICT || self->by == S_BY_ACTION) {
        const char *key = self->by == S_BY_AGENT     ? s_str (record, "agent")
                          : self->by == S_BY_VERDICT ? s_str (record, "verdict")
                          : s_str (json_object_get (record, "action"), "name");
        s_group_t *g = s_group (self, key);
        if (g)
            s_add (self, g, record, NULL, false);
    }
    else if (self->by == S_BY_BACKEND || self->by == S_BY_RULE) {
        //  Every distinct key the attempts touched, once each.
        json_t *seen = json_object ();
        size_t i;
        json_t *attempt;
        json_array_foreach (json_object_get (record, "attempts"), i, attempt) {
            if (self->by == S_BY_BACKEND) {
                const char *b = s_str (attempt, "backend");
                json_object_set_new (seen, b && *b ? b : "-", json_true ());
            }
            else {
                size_t j;
                json_t *rv;
                json_array_foreach (json_object_get (attempt, "verdicts"), j, rv)
                    if (s_str (rv, "rule") && json_object_size (seen) < S_RULES_MAX)
                        json_object_set_new (seen, s_str (rv, "rule"), json_true ());
            }
        }
        const char *key;
        json_t *yes;
        json_object_foreach (seen, key, yes) {
            s_group_t *g = s_group (self, key);
            //  A group folded into "other" counts the attempts of every key it took in.
            if (g)
                s_add (self, g, record, strcmp (g->key, key) == 0 ? key : NULL, false);
        }
        json_decref (seen);
    }
}

//  ---------------------------------------------------------------------------------------
//  Output

static uint64_t
s_waste_total (const s_group_t *g)
{
    uint64_t sum = 0;
    for (int w = 0; w < W_COUNT; w++)
        sum += g->waste[w];
    return sum;
}

static json_t *
s_group_json (const s_group_t *g)
{
    json_t *o = json_object ();
    if (g->key)
        json_object_set_new (o, "group", json_string (g->key));
    json_object_set_new (o, "decisions", json_integer ((json_int_t) g->decisions));
    json_t *verdicts = json_object ();
    for (int v = 0; v < V_COUNT; v++)
        json_object_set_new (verdicts, s_verdict_names[v],
                             json_integer ((json_int_t) g->verdicts[v]));
    json_object_set_new (o, "verdicts", verdicts);
    json_object_set_new (o, "fallback", json_integer ((json_int_t) g->fallback));
    json_object_set_new (o, "attempts", json_integer ((json_int_t) g->attempts));
    json_object_set_new (o, "tokens", json_integer ((json_int_t) g->tokens));
    json_object_set_new (o, "tokens_per_accepted",
                         g->verdicts[V_ACCEPTED]
                             ? json_real ((double) g->tokens / (double) g->verdicts[V_ACCEPTED])
                             : json_null ());
    json_object_set_new (o, "waste", json_integer ((json_int_t) s_waste_total (g)));
    json_t *causes = json_object ();
    for (int w = 0; w < W_COUNT; w++)
        json_object_set_new (causes, s_waste_names[w], json_integer ((json_int_t) g->waste[w]));
    json_object_set_new (o, "waste_by_cause", causes);
    json_t *latency = json_object ();
    json_object_set_new (latency, "calls", json_integer ((json_int_t) g->latency_count));
    static const int ps[] = {50, 90, 99};
    for (size_t i = 0; i < 3; i++) {
        char name[8];
        snprintf (name, sizeof name, "p%d", ps[i]);
        json_object_set_new (latency, name,
                             g->latency_count ? json_integer ((json_int_t) s_percentile (g, ps[i]))
                                              : json_null ());
    }
    json_object_set_new (o, "latency_ms", latency);
    json_object_set_new (o, "refusals", json_integer ((json_int_t) g->refusals));
    return o;
}

//  One CSV field per RFC 4180: quoted when it holds a comma, a quote, CR or LF (or
//  begins or ends with a space), quotes doubled.
static void
s_csv_field (FILE *out, const char *s)
{
    bool quote = strpbrk (s, ",\"\r\n") != NULL || (*s && (s[0] == ' ' || s[strlen (s) - 1] == ' '));
    if (!quote) {
        fputs (s, out);
        return;
    }
    fputc ('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc ('"', out);
        fputc (*s, out);
    }
    fputc ('"', out);
}

static const char *s_csv_header =
    "group,decisions,accepted,rejected,model_failed,budget_exhausted,other_verdict,fallback,"
    "attempts,tokens,tokens_per_accepted,waste,waste_rejected,waste_model_failed,"
    "waste_budget_exhausted,waste_escalated,waste_retried,waste_other,latency_calls,"
    "latency_p50_ms,latency_p90_ms,latency_p99_ms,refusals\r\n";

static void
s_csv_row (FILE *out, const s_group_t *g, const char *key)
{
    s_csv_field (out, key);
    fprintf (out, ",%" PRIu64, g->decisions);
    for (int v = 0; v < V_COUNT; v++)
        fprintf (out, ",%" PRIu64, g->verdicts[v]);
    fprintf (out, ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",", g->fallback, g->attempts, g->tokens);
    if (g->verdicts[V_ACCEPTED])
        fprintf (out, "%.1f", (double) g->tokens / (double) g->verdicts[V_ACCEPTED]);
    fprintf (out, ",%" PRIu64, s_waste_total (g));
    for (int w = 0; w < W_COUNT; w++)
        fprintf (out, ",%" PRIu64, g->waste[w]);
    fprintf (out, ",%" PRIu64, g->latency_count);
    static const int ps[] = {50, 90, 99};
    for (size_t i = 0; i < 3; i++) {
        fputc (',', out);
        if (g->latency_count)
            fprintf (out, "%" PRIu64, s_percentile (g, ps[i]));
    }
    fprintf (out, ",%" PRIu64 "\r\n", g->refusals);
}

static void
s_human_total (FILE *out, const s_stats_t *self)
{
    const s_group_t *g = &self->total;
    fprintf (out, "decisions      %" PRIu64 ": ", g->decisions);
    for (int v = 0; v < V_COUNT; v++)
        fprintf (out, "%s%s %" PRIu64, v ? ", " : "", s_verdict_names[v], g->verdicts[v]);
    fprintf (out, "; fallback %" PRIu64 "\n", g->fallback);
    fprintf (out, "tokens         %" PRIu64 " in %" PRIu64 " model calls; per accepted decision ",
             g->tokens, g->attempts);
    if (g->verdicts[V_ACCEPTED])
        fprintf (out, "%.1f\n", (double) g->tokens / (double) g->verdicts[V_ACCEPTED]);
    else
        fprintf (out, "-\n");
    fprintf (out, "waste          %" PRIu64 " tokens: ", s_waste_total (g));
    for (int w = 0; w < W_COUNT; w++)
        fprintf (out, "%s%s %" PRIu64, w ? ", " : "", s_waste_names[w], g->waste[w]);
    fputc ('\n', out);
    if (g->latency_count)
        fprintf (out, "latency        %" PRIu64 " model calls: p50 %" PRIu64 " ms, p90 %" PRIu64
                 " ms, p99 %" PRIu64 " ms (within 3.2%%)\n", g->latency_count,
                 s_percentile (g, 50), s_percentile (g, 90), s_percentile (g, 99));
    else
        fprintf (out, "latency        no model call with a latency\n");
    fprintf (out, "rule refusals  ");
    if (!json_object_size (self->rule_refusals))
        fprintf (out, "none");
    const char *rule;
    json_t *n;
    bool first = true;
    json_object_foreach (self->rule_refusals, rule, n) {
        fprintf (out, "%s%s %" JSON_INTEGER_FORMAT, first ? "" : ", ", rule,
                 json_integer_value (n));
        first = false;
    }
    fprintf (out, "\noutcomes       ");
    for (int o = 0; o < O_COUNT; o++)
        fprintf (out, "%s%s %" PRIu64, o ? ", " : "", s_outcome_names[o], self->outcomes[o]);
    fputc ('\n', out);
}

static void
s_human_groups (FILE *out, const s_stats_t *self, const char *by)
{
    char head[16];
    size_t n = 0;
    for (; by[n] && n < sizeof head - 1; n++)
        head[n] = (char) (by[n] >= 'a' && by[n] <= 'z' ? by[n] - 32 : by[n]);
    head[n] = 0;
    fprintf (out, "\n%-24s %9s %8s %8s %8s %10s %9s %8s %6s %6s %6s %8s\n", head, "DECISIONS",
             "ACCEPTED", "REJECTED", "FAILED", "TOKENS", "TOK/ACC", "WASTE", "P50", "P90",
             "P99", "REFUSALS");
    for (size_t i = 0; i < self->group_count; i++) {
        const s_group_t *g = &self->groups[i];
        char key[25], per[24], p[3][24];
        size_t k = 0;
        for (; g->key[k] && k < sizeof key - 1; k++)
            key[k] = (g->key[k] > 0 && g->key[k] < 0x20) || g->key[k] == 0x7f ? '?' : g->key[k];
        key[k] = 0;
        if (g->verdicts[V_ACCEPTED])
            snprintf (per, sizeof per, "%.1f", (double) g->tokens / (double) g->verdicts[V_ACCEPTED]);
        else
            snprintf (per, sizeof per, "-");
        static const int ps[] = {50, 90, 99};
        for (int j = 0; j < 3; j++)
            if (g->latency_count)
                snprintf (p[j], sizeof p[j], "%" PRIu64, s_percentile (g, ps[j]));
            else
                snprintf (p[j], sizeof p[j], "-");
        fprintf (out, "%-24s %9" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %10" PRIu64
                 " %9s %8" PRIu64 " %6s %6s %6s %8" PRIu64 "\n", key, g->decisions,
                 g->verdicts[V_ACCEPTED], g->verdicts[V_REJECTED], g->verdicts[V_MODEL_FAILED],
                 g->tokens, per, s_waste_total (g), p[0], p[1], p[2], g->refusals);
    }
}

int
mesh_audit_stats_cli (const mesh_audit_cli_t *o, FILE *out)
{
    static const struct {
        const char *name;
        s_by_t by;
    } bys[] = {{"agent", S_BY_AGENT}, {"action", S_BY_ACTION}, {"verdict", S_BY_VERDICT},
               {"backend", S_BY_BACKEND}, {"rule", S_BY_RULE}};
    s_stats_t self = {.since_ms = o->since_ms, .until_ms = o->until_ms, .by = S_BY_NONE};
    if (o->by) {
        for (size_t i = 0; i < sizeof bys / sizeof bys[0]; i++)
            if (strcmp (o->by, bys[i].name) == 0)
                self.by = bys[i].by;
        if (self.by == S_BY_NONE) {
            mesh_err ("audit stats: --by %s: unknown; one of agent, action, verdict, backend, "
                      "rule", o->by);
            return 64;
        }
    }
    if (o->json && o->csv) {
        mesh_err ("audit stats: --json and --csv: choose one");
        return 64;
    }
    if (o->argc > 0) {
        mesh_err ("audit stats: unexpected argument '%s'", o->argv[0]);
        return 64;
    }
    if (o->since_ms && o->until_ms && o->until_ms <= o->since_ms) {
        mesh_err ("audit stats: --until must be later than --since");
        return 64;
    }
    self.groups = calloc (S_GROUPS_MAX + 1, sizeof *self.groups);
    self.index = json_object ();
    self.rule_refusals = json_object ();
    int rc = 2;
    if (!self.groups || !self.index || !self.rule_refusals)
        mesh_err ("audit stats: out of memory");
    else if ((rc = mesh_audit_each_record (o->log, s_each, &self)) == 0 && self.oom) {
        mesh_err ("audit stats: out of memory reading %s", o->log);
        rc = 2;
    }
    if (rc == 0) {
        const char *by = o->by;
        if (o->json) {
            json_t *res = json_object ();
            json_object_set_new (res, "since_ms", self.since_ms ? json_integer (self.since_ms)
                                                                : json_null ());
            json_object_set_new (res, "until_ms", self.until_ms ? json_integer (self.until_ms)
                                                                : json_null ());
            json_object_set_new (res, "by", by ? json_string (by) : json_null ());
            json_object_set_new (res, "total", s_group_json (&self.total));
            json_object_set (res, "rule_refusals", self.rule_refusals);
            json_t *outcomes = json_object ();
            for (int i = 0; i < O_COUNT; i++)
                json_object_set_new (outcomes, s_outcome_names[i],
                                     json_integer ((json_int_t) self.outcomes[i]));
            json_object_set_new (res, "outcomes", outcomes);
            if (by) {
                json_t *groups = json_array ();
                for (size_t i = 0; i < self.group_count; i++)
                    json_array_append_new (groups, s_group_json (&self.groups[i]));
                json_object_set_new (res, "groups", groups);
            }
            char *text = mesh_jsonout_dumps (res);
            if (text)
                fprintf (out, "%s\n", text);
            free (text);
            json_decref (res);
        }
        else if (o->csv) {
            fputs (s_csv_header, out);
            if (!by)
                s_csv_row (out, &self.total, "all");
            for (size_t i = 0; i < self.group_count; i++)
                s_csv_row (out, &self.groups[i], self.groups[i].key);
        }
        else {
            s_human_total (out, &self);
            if (by)
                s_human_groups (out, &self, by);
        }
    }
    if (self.groups)
        for (size_t i = 0; i < self.group_count; i++) {
            free (self.groups[i].key);
            free (self.groups[i].latency);
        }
    free (self.total.latency);
    free (self.groups);
    json_decref (self.index);
    json_decref (self.rule_refusals);
    return rc;
}

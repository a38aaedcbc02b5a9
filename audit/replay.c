/*  replay - `meshctl audit replay`: the determinism audit of the decision log.
 *
 *  Every attempt of a decision whose proposal went through the gates is run through
 *  them again, with what the record says they saw: the proposal (attempts[].proposal),
 *  the ctx (the decision's "ctx" plus its "incident", and the attempt's "ctx_action" as
 *  ctx.action), the sandbox limits and the allowed actions (the decision's "gate"), and
 *  the rule set in force (the decision's "rules_hash", archived under
 *  <state_dir>/rules/<hash>).  The verdicts that come out are compared, rule by rule,
 *  with the attempt's recorded "verdicts"; any difference is printed.  With --rules DIR
 *  the rules of DIR (a candidate set) stand in for the archived ones, and what is
 *  printed is every attempt whose outcome would flip: accepted -> refused, or the reverse.
 *
 *  The one input a replay cannot reproduce is the clock: a rule that hit its time limit
 *  (or its memory limit, which depends slightly on what the state held before) when it
 *  was recorded, or now, is reported as not deterministic, never as a difference in the
 *  rules.  Records written before the decision carried everything are skipped and
 *  counted ("not replayable: missing gate").
 *
 *  Shaped for speed (the target is 10,000 decisions a second): a line is parsed only if
 *  its first bytes say it is a decision or a rules record within --from/--to; each rule
 *  set is loaded once (a cache keyed by hash and limits); its Lua states are reused
 *  from the gate's pool; the built-in check's action specs are parsed once each.
 */
#include "audit_cli.h"
#include "gate.h"
#include "log.h"
#include "segments.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define S_LINE_MAX      (64 * 1024 * 1024)  //  bytes of one record we read
#define S_LIST_MAX      1000                //  entries listed per kind; the rest counted
#define S_CACHE_MAX     64                  //  rule sets loaded at once

typedef struct {
    char *key;
    mesh_gate_t *gate;
} s_cached_t;

typedef struct {
    const mesh_audit_cli_t *o;
    bool candidate;
    char *log_dir;
    json_t *archives;               //  rules_hash -> archive directory (rules records)
    s_cached_t cache[S_CACHE_MAX];
    size_t cache_count;
    json_t *sets;                   //  [{rules_hash, dir, altered}] as loaded
    bool altered;
    //  Results
    json_t *differences, *nondeterministic, *changed;
    uint64_t decisions, replayed, attempts, attempts_replayed;
    uint64_t differ, nondet, to_refused, to_accepted, reasons_changed, unlisted;
    json_t *not_replayable;         //  {"missing X": decisions}
    json_t *attempts_skipped;       //  {"missing X": attempts}
    uint64_t bad_lines;
    char *error;                    //  the log or an archive cannot be read: exit 2
} s_replay_t;

static void
s_count (json_t *counts, const char *what)
{
    json_t *n = json_object_get (counts, what);
    json_object_set_new (counts, what, json_integer (n ? json_integer_value (n) + 1 : 1));
}

static bool
s_is_dir (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0 && S_ISDIR (st.st_mode);
}

//  The gate for HASH (NULL: the candidate) under LIMITS, loaded once.  NULL with
//  self->error set when the rule set cannot be found or read.
static mesh_gate_t *
s_gate (s_replay_t *self, const char *hash, const mesh_sandbox_limits_t *limits)
{
    char key[128];
    snprintf (key, sizeof key, "%s/%ld/%zu/%d", hash ? hash : "candidate",
              limits->instructions, limits->memory, limits->time_ms);
    for (size_t i = 0; i < self->cache_count; i++)
        if (strcmp (self->cache [i].key, key) == 0)
            return self->cache [i].gate;
    char *dir = NULL;
    if (!hash)
        dir = strdup (self->o->rules);
    else {
        //  Beside the log first (a copy of a state directory works wherever it is), then
        //  the config's state directory, then where the rules record said.
        char *tries[3] = { NULL, NULL, NULL };
        if (asprintf (&tries [0], "%s/rules/%s", self->log_dir, hash) < 0)
            tries [0] = NULL;
        if (self->o->cfg && self->o->cfg->state_dir
            && asprintf (&tries [1], "%s/rules/%s", self->o->cfg->state_dir, hash) < 0)
            tries [1] = NULL;
        const char *recorded = json_string_value (json_object_get (self->archives, hash));
        tries [2] = recorded ? strdup (recorded) : NULL;
        for (int i = 0; i < 3 && !dir; i++)
            if (tries [i] && s_is_dir (tries [i])) {
                dir = tries [i];
                tries [i] = NULL;
            }
        if (!dir && asprintf (&self->error, "rule set %.16s... is not archived: no directory "
                              "%s%s%s%s%s", hash, tries [0] ? tries [0] : "",
                              tries [1] ? ", " : "", tries [1] ? tries [1] : "",
                              tries [2] ? ", " : "", tries [2] ? tries [2] : "") < 0)
            self->error = NULL;
        for (int i = 0; i < 3; i++)
            free (tries [i]);
        if (!dir) {
            if (!self->error)
                self->error = strdup ("out of memory");
            return NULL;
        }
    }
    char *altered = NULL, *err = NULL;
    mesh_gate_t *gate = dir ? mesh_gate_replay_new (dir, hash, limits, &altered, &err) : NULL;
    if (!gate) {
        if (asprintf (&self->error, "%s: %s", hash ? "archived rule set" : "candidate rules",
                      err ? err : "out of memory") < 0)
            self->error = NULL;
        free (err);
        free (dir);
        return NULL;
    }
    if (self->cache_count == S_CACHE_MAX) {
        //  More distinct sets than the cache holds: start again (rare: a set per reload).
        for (size_t i = 0; i < self->cache_count; i++) {
            free (self->cache [i].key);
            mesh_gate_destroy (&self->cache [i].gate);
        }
        self->cache_count = 0;
    }
    self->cache [self->cache_count++] = (s_cached_t) { strdup (key), gate };
    bool listed = false;
    size_t i;
    json_t *set;
    json_array_foreach (self->sets, i, set)
        listed |= strcmp (json_string_value (json_object_get (set, "dir")), dir) == 0;
    if (!listed) {
        json_array_append_new (self->sets, json_pack ("{s:s?, s:s, s:s?}", "rules_hash", hash,
                                                      "dir", dir, "altered", altered));
        if (altered) {
            self->altered = true;
            mesh_warn ("audit replay: rule set %.16s... in %s was altered after it was "
                       "archived: %s", hash, dir, altered);
        }
    }
    free (altered);
    free (dir);
    return gate;
}

static bool
s_limit_verdict (json_t *v)
{
    const char *verdict = json_string_value (json_object_get (v, "verdict"));
    const char *reason = json_string_value (json_object_get (v, "reason"));
    return verdict && strcmp (verdict, "limit") == 0 && reason
        && (strcmp (reason, "time limit") == 0 || strcmp (reason, "memory limit") == 0);
}

static json_t *
s_side (json_t *v)
{
    if (!v)
        return json_null ();
    json_t *side = json_pack ("{s:O?, s:O?}", "verdict", json_object_get (v, "verdict"),
                              "reason", json_object_get (v, "reason"));
    if (json_object_get (v, "approval"))
        json_object_set (side, "approval", json_object_get (v, "approval"));
    return side;
}

//  The verdicts not accepting, as [{rule, verdict, reason}].
static json_t *
s_refusals (json_t *verdicts)
{
    json_t *list = json_array ();
    size_t i;
    json_t *v;
    json_array_foreach (verdicts, i, v) {
        const char *verdict = json_string_value (json_object_get (v, "verdict"));
        if (!verdict || strcmp (verdict, "accept") != 0)
            json_array_append_new (list, json_pack ("{s:O?, s:O?, s:O?}", "rule",
                                                    json_object_get (v, "rule"), "verdict",
                                                    json_object_get (v, "verdict"), "reason",
                                                    json_object_get (v, "reason")));
    }
    return list;
}

static bool
s_all_accept (json_t *verdicts)
{
    size_t i;
    json_t *v;
    json_array_foreach (verdicts, i, v) {
        const char *verdict = json_string_value (json_object_get (v, "verdict"));
        if (!verdict || strcmp (verdict, "accept") != 0)
            return false;
    }
    return json_array_size (verdicts) > 0;
}

static void
s_list (s_replay_t *self, json_t *list, json_t *entry)
{
    if (json_array_size (list) < S_LIST_MAX)
        json_array_append_new (list, entry);
    else {
        self->unlisted++;
        json_decref (entry);
    }
}

//  One attempt: replay and compare.  ENTRY is the decision's part of a report entry.
static void
s_attempt (s_replay_t *self, mesh_gate_t *gate, json_t *decision, json_t *attempt,
           json_t *allowed, json_t *entry)
{
    json_t *recorded = json_object_get (attempt, "verdicts");
    if (!json_is_array (recorded) || json_array_size (recorded) == 0)
        return;                         //  the model gave no proposal: no gate ran
    self->attempts++;
    json_t *proposal = json_object_get (attempt, "proposal");
    if (!json_is_object (proposal)) {
        //  A refused proposal over 16 KiB is kept as an excerpt and hash only.
        s_count (self->attempts_skipped, "missing proposal");
        return;
    }
    json_t *spec = json_object_get (attempt, "ctx_action");
    if (!spec) {
        s_count (self->attempts_skipped, "missing ctx_action");
        return;
    }
    json_t *ctx = json_copy (json_object_get (decision, "ctx"));
    json_object_set (ctx, "incident", json_object_get (decision, "incident")
                                      ? json_object_get (decision, "incident") : json_null ());
    json_object_set (ctx, "action", spec);
    json_t *replayed = json_array ();
    mesh_fail_t fail = MESH_FAIL_NONE;
    bool accepted = false;
    char *why = NULL;
    int rc = mesh_gate_replay_check (gate, allowed, spec, proposal, ctx, replayed, &fail,
                                     &accepted, &why);
    json_decref (ctx);
    if (rc != 0) {
        char what[160];
        snprintf (what, sizeof what, "%s", why ? why : "out of memory");
        s_count (self->attempts_skipped, what);
        free (why);
        json_decref (replayed);
        return;
    }
    self->attempts_replayed++;
    //  Rule by rule: what differs, and whether a limit the clock decides is involved.
    json_t *changes = json_array ();
    bool clocked = false;
    size_t count = json_array_size (recorded) > json_array_size (replayed)
                 ? json_array_size (recorded) : json_array_size (replayed);
    for (size_t i = 0; i < count; i++) {
        json_t *was = json_array_get (recorded, i), *now = json_array_get (replayed, i);
        if (was && now && json_equal (was, now))
            continue;
        clocked |= s_limit_verdict (was) || s_limit_verdict (now);
        json_t *rule = json_object_get (now ? now : was, "rule");
        json_array_append_new (changes, json_pack ("{s:O?, s:o, s:o}", "rule", rule,
                                                   "recorded", s_side (was),
                                                   "replayed", s_side (now)));
    }
    json_t *item = json_deep_copy (entry);
    json_object_set (item, "step", json_object_get (attempt, "step"));
    json_object_set (item, "action", json_object_get (proposal, "action"));
    if (!self->candidate) {
        if (json_array_size (changes) == 0)
            json_decref (item);
        else {
            json_object_set (item, "changes", changes);
            if (clocked)
                self->nondet++;
            else
                self->differ++;
            s_list (self, clocked ? self->nondeterministic : self->differences, item);
        }
    }
    else {
        bool was = s_all_accept (recorded);
        if (was == accepted) {
            self->reasons_changed += json_array_size (changes) > 0;
            json_decref (item);
        }
        else {
            json_object_set_new (item, "from", json_string (was ? "accepted" : "refused"));
            json_object_set_new (item, "to", json_string (accepted ? "accepted" : "refused"));
            //  The rules that refuse now, or the ones that refused then.
            json_object_set_new (item, "rules", s_refusals (was ? replayed : recorded));
            json_object_set (item, "changes", changes);
            if (clocked)
                self->nondet++;
            else
            if (was)
                self->to_refused++;
            else
                self->to_accepted++;
            s_list (self, clocked ? self->nondeterministic : self->changed, item);
        }
    }
    json_decref (changes);
    json_decref (replayed);
}

static void
s_decision (s_replay_t *self, json_t *decision, int64_t seq)
{
    self->decisions++;
    json_t *attempts = json_object_get (decision, "attempts");
    if (!json_is_array (attempts) || json_array_size (attempts) == 0)
        return;                         //  budget exhausted before any call: nothing ran
    bool gated = false;
    size_t i;
    json_t *attempt;
    json_array_foreach (attempts, i, attempt)
        gated |= json_array_size (json_object_get (attempt, "verdicts")) > 0;
    if (!gated)
        return;
    const char *hash = json_string_value (json_object_get (decision, "rules_hash"));
    json_t *inputs = json_object_get (decision, "gate");
    json_t *allowed = json_object_get (inputs, "actions");
    mesh_sandbox_limits_t limits;
    const char *missing = !hash ? "missing rules_hash"
                        : !json_is_object (json_object_get (decision, "ctx")) ? "missing ctx"
                        : !json_is_object (inputs) ? "missing gate"
                        : mesh_gate_limits_json (json_object_get (inputs, "limits"), &limits)
                          ? "missing gate.limits"
                        : !json_is_array (allowed) ? "missing gate.actions" : NULL;
    if (missing) {
        s_count (self->not_replayable, missing);
        return;
    }
    mesh_gate_t *gate = s_gate (self, self->candidate ? NULL : hash, &limits);
    if (!gate)
        return;
    self->replayed++;
    json_t *entry = json_pack ("{s:I, s:O?, s:O?, s:s, s:O?}", "seq", (json_int_t) seq, "id",
                               json_object_get (decision, "id"), "agent",
                               json_object_get (decision, "agent"), "rules_hash", hash,
                               "verdict", json_object_get (decision, "verdict"));
    json_array_foreach (attempts, i, attempt) {
        s_attempt (self, gate, decision, attempt, allowed, entry);
        if (self->error)
            break;
    }
    json_decref (entry);
}

//  The seq of a line from its first bytes ({"seq":N,...), -1 if it does not start so.
static int64_t
s_seq (const char *line, size_t len)
{
    if (len < 9 || strncmp (line, "{\"seq\":", 7) != 0)
        return -1;
    int64_t seq = 0;
    size_t i = 7;
    for (; i < len && i < 27 && line [i] >= '0' && line [i] <= '9'; i++)
        seq = seq * 10 + (line [i] - '0');
    return i > 7 ? seq : -1;
}

//  The record's type from its first bytes, where the ledger puts it (after seq, prev, ts).
static bool
s_typed (const char *line, size_t len, const char *needle)
{
    size_t span = len < 220 ? len : 220;
    return memmem (line, span, needle, strlen (needle)) != NULL;
}

//  One line of FILE into *BUF (NUL-terminated, without the newline).  1 a line, 0 end of
//  file, -1 a read error; a line over S_LINE_MAX is read to its end and *LEN_P set to 0.
static int
s_read_line (FILE *file, char **buf, size_t *size, size_t *len_p)
{
    size_t len = 0;
    bool over = false;
    char scratch[4096];
    for (;;) {
        if (!over && *size - len < 4096) {
            size_t grown = *size ? *size * 2 : 65536;
            char *p = realloc (*buf, grown);
            if (!p)
                return -1;
            *buf = p;
            *size = grown;
        }
        char *dst = over ? scratch : *buf + len;
        size_t room = over ? sizeof scratch : *size - len;
        if (!fgets (dst, (int) (room < 1048576 ? room : 1048576), file)) {
            if (ferror (file))
                return -1;
            *len_p = over ? 0 : len;
            return len > 0 || over ? 1 : 0;
        }
        size_t n = strlen (dst);
        bool newline = n && dst [n - 1] == '\n';
        if (!over)
            len += n;
        if (newline) {
            if (!over)
                (*buf) [--len] = 0;
            *len_p = over ? 0 : len;
            return 1;
        }
        if (!over && len > S_LINE_MAX)
            over = true;
    }
}

static void
s_print_side (FILE *out, json_t *side)
{
    if (json_is_null (side)) {
        fputs ("(no verdict)", out);
        return;
    }
    const char *verdict = json_string_value (json_object_get (side, "verdict"));
    const char *reason = json_string_value (json_object_get (side, "reason"));
    const char *approval = json_string_value (json_object_get (side, "approval"));
    fprintf (out, "%s%s%s%s%s", verdict ? verdict : "?", reason ? ": " : "", reason ? reason : "",
             approval ? " (asks approval: " : "", approval ? approval : "");
    if (approval)
        fputc (')', out);
}

static void
s_print_head (FILE *out, json_t *item)
{
    const char *id = json_string_value (json_object_get (item, "id"));
    const char *agent = json_string_value (json_object_get (item, "agent"));
    const char *action = json_string_value (json_object_get (item, "action"));
    fprintf (out, "seq %" PRId64 " decision %.12s agent %s step %" PRId64 " (%s)",
             (int64_t) json_integer_value (json_object_get (item, "seq")), id ? id : "?",
             agent ? agent : "?", (int64_t) json_integer_value (json_object_get (item, "step")),
             action ? action : "?");
}

static void
s_print_changes (FILE *out, json_t *item)
{
    size_t i;
    json_t *c;
    json_array_foreach (json_object_get (item, "changes"), i, c) {
        const char *rule = json_string_value (json_object_get (c, "rule"));
        fprintf (out, "    %s: recorded ", rule ? rule : "?");
        s_print_side (out, json_object_get (c, "recorded"));
        fputs ("; replayed ", out);
        s_print_side (out, json_object_get (c, "replayed"));
        fputc ('\n', out);
    }
}

static void
s_print_counts (FILE *out, const char *title, json_t *counts)
{
    if (json_object_size (counts) == 0)
        return;
    fprintf (out, "%s:", title);
    const char *key;
    json_t *n;
    int k = 0;
    json_object_foreach (counts, key, n)
        fprintf (out, "%s %s %" PRId64, k++ ? "," : "", key, (int64_t) json_integer_value (n));
    fputc ('\n', out);
}

static void
s_print_human (s_replay_t *self, FILE *out, double seconds)
{
    size_t i;
    json_t *item, *set;
    json_array_foreach (self->sets, i, set) {
        const char *altered = json_string_value (json_object_get (set, "altered"));
        if (altered)
            fprintf (out, "ALTERED: rule set %.16s... in %s: %s\n",
                     json_string_value (json_object_get (set, "rules_hash")),
                     json_string_value (json_object_get (set, "dir")), altered);
    }
    json_array_foreach (self->differences, i, item) {
        s_print_head (out, item);
        fputs (": verdicts differ\n", out);
        s_print_changes (out, item);
    }
    json_array_foreach (self->changed, i, item) {
        s_print_head (out, item);
        fprintf (out, ": %s -> %s\n", json_string_value (json_object_get (item, "from")),
                 json_string_value (json_object_get (item, "to")));
        const char *how = strcmp (json_string_value (json_object_get (item, "to")), "refused")
                        ? "    was refused by " : "    refused by ";
        size_t j;
        json_t *r;
        json_array_foreach (json_object_get (item, "rules"), j, r) {
            const char *rule = json_string_value (json_object_get (r, "rule"));
            const char *verdict = json_string_value (json_object_get (r, "verdict"));
            const char *reason = json_string_value (json_object_get (r, "reason"));
            fprintf (out, "%s%s: %s: %s\n", how, rule ? rule : "?", verdict ? verdict : "?",
                     reason ? reason : "no reason given");
        }
    }
    json_array_foreach (self->nondeterministic, i, item) {
        s_print_head (out, item);
        fputs (": not deterministic (a rule hit its time or memory limit)\n", out);
        s_print_changes (out, item);
    }
    if (self->unlisted)
        fprintf (out, "(%" PRIu64 " more not listed)\n", self->unlisted);
    fprintf (out, "replayed %" PRIu64 " of %" PRIu64 " decisions (%" PRIu64 " of %" PRIu64
             " gated attempts) against %s in %.3f s: ", self->replayed, self->decisions,
             self->attempts_replayed, self->attempts,
             self->candidate ? self->o->rules : "the archived rule sets", seconds);
    if (self->candidate)
        fprintf (out, "%" PRIu64 " would change (%" PRIu64 " accepted -> refused, %" PRIu64
                 " refused -> accepted), %" PRIu64 " with other reasons only",
                 self->to_refused + self->to_accepted, self->to_refused, self->to_accepted,
                 self->reasons_changed);
    else
        fprintf (out, "%" PRIu64 " differ", self->differ);
    fprintf (out, ", %" PRIu64 " not deterministic\n", self->nondet);
    s_print_counts (out, "not replayable (decisions)", self->not_replayable);
    s_print_counts (out, "not replayable (attempts)", self->attempts_skipped);
    if (self->bad_lines)
        fprintf (out, "lines skipped (not JSON or too long): %" PRIu64 "\n", self->bad_lines);
}

int
mesh_audit_replay_cli (const mesh_audit_cli_t *o, FILE *out)
{
    assert (o);
    assert (out);
    if (!o->log) {
        mesh_err ("audit replay: no decision log (give --log or --config)");
        return 64;
    }
    if (o->from_seq < 0 || o->to_seq < 0 || (o->to_seq && o->from_seq > o->to_seq)) {
        mesh_err ("audit replay: --from %" PRId64 " --to %" PRId64 ": the range is empty or "
                  "negative; give 1 <= FROM <= TO", o->from_seq, o->to_seq);
        return 64;
    }
    FILE *file = mesh_segments_open (o->log);
    if (!file) {
        mesh_err ("audit replay: %s: %s", o->log, strerror (errno));
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime (CLOCK_MONOTONIC, &t0);
    s_replay_t self = { .o = o, .candidate = o->rules != NULL };
    const char *slash = strrchr (o->log, '/');
    self.log_dir = slash ? strndup (o->log, (size_t) (slash - o->log + (slash == o->log)))
                         : strdup (".");
    self.archives = json_object ();
    self.sets = json_array ();
    self.differences = json_array ();
    self.nondeterministic = json_array ();
    self.changed = json_array ();
    self.not_replayable = json_object ();
    self.attempts_skipped = json_object ();
    char *line = NULL;
    size_t size = 0, len = 0;
    int rc;
    while (!self.error && (rc = s_read_line (file, &line, &size, &len)) == 1) {
        if (len == 0) {
            self.bad_lines++;
            continue;
        }
        int64_t seq = s_seq (line, len);
        bool is_decision = s_typed (line, len, "\"type\":\"decision\"");
        bool is_rules = !is_decision && s_typed (line, len, "\"type\":\"rules\"");
        if (!is_decision && !is_rules)
            continue;
        if (is_decision && ((o->from_seq && seq < o->from_seq) || (o->to_seq && seq > o->to_seq)))
            continue;
        if (o->to_seq && seq > o->to_seq)
            break;
        json_t *record = json_loadb (line, len, 0, NULL);
        if (!json_is_object (record)) {
            self.bad_lines++;
            json_decref (record);
            continue;
        }
        const char *type = json_string_value (json_object_get (record, "type"));
        if (type && strcmp (type, "rules") == 0) {
            const char *hash = json_string_value (json_object_get (record, "rules_hash"));
            json_t *archive = json_object_get (record, "archive");
            if (hash && json_is_string (archive) && json_object_size (self.archives) < 4096)
                json_object_set (self.archives, hash, archive);
        }
        else
        if (type && strcmp (type, "decision") == 0)
            s_decision (&self, record, seq);
        json_decref (record);
    }
    bool read_error = ferror (file);
    fclose (file);
    free (line);
    clock_gettime (CLOCK_MONOTONIC, &t1);
    double seconds = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
    int result;
    if (self.error || read_error) {
        mesh_err ("audit replay: %s", self.error ? self.error : "cannot read the log");
        if (o->json) {
            json_t *doc = json_pack ("{s:b, s:s}", "ok", 0, "error",
                                     self.error ? self.error : "cannot read the log");
            json_dumpf (doc, out, JSON_COMPACT);
            fputc ('\n', out);
            json_decref (doc);
        }
        else
            fprintf (out, "ERROR: %s\n", self.error ? self.error : "cannot read the log");
        result = 2;
    }
    else {
        bool differs = self.candidate ? self.to_refused + self.to_accepted > 0
                                      : self.differ > 0 || self.altered;
        result = differs ? 1 : 0;
        if (o->json) {
            json_t *doc = json_pack (
                "{s:b, s:s, s:s?, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:O, s:O, s:O, s:O, s:I,"
                " s:f}",
                "ok", !differs, "mode", self.candidate ? "candidate" : "archive",
                "rules", o->rules, "from", (json_int_t) o->from_seq, "to",
                (json_int_t) o->to_seq, "decisions", (json_int_t) self.decisions,
                "replayed", (json_int_t) self.replayed, "attempts", (json_int_t) self.attempts,
                "attempts_replayed", (json_int_t) self.attempts_replayed, "nondeterministic_count",
                (json_int_t) self.nondet, "sets", self.sets, "nondeterministic",
                self.nondeterministic, "not_replayable", self.not_replayable,
                "attempts_not_replayable", self.attempts_skipped, "unlisted",
                (json_int_t) self.unlisted, "seconds", seconds);
            if (self.candidate) {
                json_object_set (doc, "changed", self.changed);
                json_object_set_new (doc, "accepted_to_refused", json_integer ((json_int_t) self.to_refused));
                json_object_set_new (doc, "refused_to_accepted", json_integer ((json_int_t) self.to_accepted));
                json_object_set_new (doc, "reasons_changed", json_integer ((json_int_t) self.reasons_changed));
            }
            else {
                json_object_set (doc, "differences", self.differences);
                json_object_set_new (doc, "differ", json_integer ((json_int_t) self.differ));
            }
            json_dumpf (doc, out, JSON_COMPACT);
            fputc ('\n', out);
            json_decref (doc);
        }
        else
            s_print_human (&self, out, seconds);
    }
    for (size_t i = 0; i < self.cache_count; i++) {
        free (self.cache [i].key);
        mesh_gate_destroy (&self.cache [i].gate);
    }
    free (self.error);
    free (self.log_dir);
    json_decref (self.archives);
    json_decref (self.sets);
    json_decref (self.differences);
    json_decref (self.nondeterministic);
    json_decref (self.changed);
    json_decref (self.not_replayable);
    json_decref (self.attempts_skipped);
    return result;
}

/*  recover - may a decision recorded by a previous life of the agent run now?
 *  Data path: event -> detect -> incident -> reason -> [gate] -> act -> record, for a
 *  decision the ledger holds without an outcome (agents/agent.c, s_recover).
 *
 *  The rule "every execution passes the gates at the moment it happens" holds for
 *  recovery too: a record is what a process wrote, and anything that can write or
 *  replay a record could otherwise make the agent act on it.  So the record is
 *  re-judged, not trusted:
 *
 *  - accepted (verdict "accepted", fallback false): the attempts must end with the
 *    one accepted attempt (reason.c stops at the first accept); its proposal must name
 *    the decision's action, with params equal to the decision's (json_equal, absent =
 *    {}).  The rule set that judged it is loaded from the archive by the decision's
 *    rules_hash (mesh_gate_from_archive verifies manifest, file hashes and the chain's
 *    hash) with today's action specs, and the proposal is checked again with the ctx
 *    the rules saw: the record's ctx, plus "incident" (recorded beside it) and "action"
 *    (the attempt's ctx_action).  That ctx_action must equal today's spec of the
 *    action: the rules judged the proposal under that spec, and the built-in check now
 *    uses today's; a spec changed since then is a refusal, never a guess.  Only an
 *    accept from every check passes, and only if the decision's "approval" is what
 *    those checks ask for (mesh_gate_approval), present or absent alike: meshd holds
 *    the action, or runs it, by what the record says.
 *  - fallback (fallback true, verdict not "accepted"): the action must be the agent's
 *    configured fallback, and its params must pass the built-in check of today's
 *    specs.  The rules are not run: a fallback is what happens when they did not
 *    accept, so a fallback never depended on them.
 *
 *  Everything else - an unknown shape, another agent's decision, a missing or altered
 *  archive, a reject, an error or limit in a rule, a mismatch - is refused with a
 *  one-line reason; the caller records the outcome "refused" and executes nothing.
 *  Rules are deterministic (docs/rules.md), so a genuine decision passes again: the
 *  same inputs to the same rules.  A rule that hit its time limit may not; that
 *  decision is refused, which fails closed.
 */
#include "recover.h"
#include "gate.h"
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_WHY_MAX   480                 //  bytes of a refusal reason
#define S_ATTEMPTS_MAX 64               //  attempts we look at in one record

static int
s_refuse (char **why, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static int
s_refuse (char **why, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    char *text = NULL;
    if (vasprintf (&text, fmt, ap) < 0)
        text = NULL;
    va_end (ap);
    if (text && strlen (text) > S_WHY_MAX) {
        size_t cut = S_WHY_MAX - 3;
        while (cut > 0 && ((unsigned char) text [cut] & 0xC0) == 0x80)
            cut--;                      //  on a UTF-8 boundary
        strcpy (text + cut, "...");
    }
    for (char *p = text; p && *p; p++)
        if ((unsigned char) *p < 0x20)
            *p = ' ';
    *why = text ? text : strdup ("refused (out of memory)");
    return -1;
}

static const char *
s_str (json_t *object, const char *key)
{
    return json_string_value (json_object_get (object, key));
}

//  "rule: verdict: reason; ..." for every check in VERDICTS that did not accept.
static char *
s_refusals (json_t *verdicts)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    if (!out)
        return NULL;
    size_t i;
    json_t *v;
    int n = 0;
    json_array_foreach (verdicts, i, v) {
        const char *verdict = s_str (v, "verdict");
        if (verdict && strcmp (verdict, "accept") == 0)
            continue;
        fprintf (out, "%s%s: %s: %s", n++ ? "; " : "", s_str (v, "rule") ?: "?",
                 verdict ?: "?", s_str (v, "reason") ?: "no reason given");
    }
    if (fclose (out) != 0) {
        free (text);
        return NULL;
    }
    return text;
}

static int
s_check_fallback (const mesh_config_t *cfg, const mesh_agent_config_t *agent,
                  const char *name, json_t *params, char **why)
{
    if (!agent->fallback || strcmp (name, agent->fallback) != 0)
        return s_refuse (why, "fallback decision names action \"%s\", but the agent's "
                         "fallback is \"%s\"", name, agent->fallback ? agent->fallback : "");
    char *err = NULL;
    mesh_gate_t *gate = mesh_gate_new (cfg, agent, &err);
    if (!gate) {
        int rc = s_refuse (why, "the agent's rule chain does not build: %s", err ? err : "?");
        free (err);
        return rc;
    }
    json_t *proposal = json_pack ("{s:s, s:O}", "action", name, "params", params);
    char *problems = proposal ? mesh_gate_builtin (gate, proposal) : strdup ("out of memory");
    json_decref (proposal);
    mesh_gate_destroy (&gate);
    if (problems) {
        int rc = s_refuse (why, "fallback params fail the built-in check: %s", problems);
        free (problems);
        return rc;
    }
    return 0;
}

static int
s_check_accepted (const mesh_config_t *cfg, const mesh_agent_config_t *agent,
                  const char *state_dir, json_t *decision, const char *name, json_t *params,
                  char **why)
{
    json_t *attempts = json_object_get (decision, "attempts");
    size_t count = json_array_size (attempts);
    if (count == 0 || count > S_ATTEMPTS_MAX)
        return s_refuse (why, "an accepted decision needs 1 to %d attempts, it has %zu",
                         S_ATTEMPTS_MAX, count);
    size_t i;
    json_t *attempt;
    json_array_foreach (attempts, i, attempt)
        if (json_is_true (json_object_get (attempt, "accepted")) != (i == count - 1))
            return s_refuse (why, "attempt %zu is %saccepted: only the last attempt of an "
                             "accepted decision is", i + 1, i == count - 1 ? "not " : "");
    attempt = json_array_get (attempts, count - 1);
    json_t *proposal = json_object_get (attempt, "proposal");
    if (!json_is_object (proposal))
        return s_refuse (why, "the accepted attempt has no proposal object");
    const char *proposed = s_str (proposal, "action");
    json_t *proposed_params = json_object_get (proposal, "params");
    json_t *empty = json_object ();
    bool same = proposed && strcmp (proposed, name) == 0
             && json_equal (proposed_params ? proposed_params : empty, params);
    json_decref (empty);
    if (!same)
        return s_refuse (why, "the decision's action (%s) is not what the accepted proposal "
                         "says (%s with its params)", name, proposed ? proposed : "no action");

    json_t *ctx = json_object_get (decision, "ctx");
    if (!json_is_object (ctx))
        return s_refuse (why, "the decision has no ctx object to rebuild what the rules saw");
    const char *rules_hash = s_str (decision, "rules_hash");
    char *err = NULL;
    mesh_gate_t *gate = mesh_gate_from_archive (cfg, agent, state_dir,
                                                rules_hash ? rules_hash : "", &err);
    if (!gate) {
        int rc = s_refuse (why, "rule set %.16s...: %s", rules_hash ? rules_hash : "(none)",
                           err ? err : "?");
        free (err);
        return rc;
    }
    json_t *spec = mesh_gate_action_spec (gate, name);
    json_t *ctx_action = json_object_get (attempt, "ctx_action");
    if (!spec || !json_equal (ctx_action, spec)) {
        mesh_gate_destroy (&gate);
        return s_refuse (why, "action %s is %s: the rules judged it under the recorded spec, "
                         "the built-in check would use another", name,
                         spec ? "declared differently today" : "not declared for this agent");
    }
    json_t *seen = json_deep_copy (ctx);
    json_object_set (seen, "incident", json_object_get (decision, "incident") ?: json_null ());
    json_object_set (seen, "action", ctx_action);
    json_t *verdicts = json_array ();
    mesh_fail_t fail = MESH_FAIL_NONE;
    bool accepted = mesh_gate_check (gate, proposal, seen, verdicts, &fail);
    int rc = 0;
    if (!accepted) {
        char *refusals = s_refusals (verdicts);
        rc = s_refuse (why, "the rules in force (%.16s...) do not accept it now: %s",
                       rules_hash, refusals ? refusals : "?");
        free (refusals);
    }
    //  What the rules ask of a human is part of their verdicts: the record must say the same.
    json_t *asked = accepted ? mesh_gate_approval (verdicts) : NULL;
    json_t *recorded = json_object_get (decision, "approval");
    if (accepted && asked && !json_equal (asked, recorded))
        rc = s_refuse (why, "the rules in force (%.16s...) ask a human to approve it (%s), "
                       "and the decision %s", rules_hash,
                       s_str (asked, "reason") ?: "?", recorded ? "asks otherwise"
                                                               : "does not say so");
    else
    if (accepted && !asked && recorded)
        rc = s_refuse (why, "the decision carries an approval the rules in force (%.16s...) "
                       "do not ask for", rules_hash);
    json_decref (asked);
    json_decref (verdicts);
    json_decref (seen);
    mesh_gate_destroy (&gate);
    return rc;
}

int
mesh_recover_check (const mesh_config_t *cfg, const mesh_agent_config_t *agent,
                    const char *state_dir, json_t *decision, char **why)
{
    *why = NULL;
    if (!json_is_object (decision) || !s_str (decision, "id"))
        return s_refuse (why, "not a decision record");
    const char *owner = s_str (decision, "agent");
    if (!owner || strcmp (owner, agent->name) != 0)
        return s_refuse (why, "recorded for agent \"%s\", not \"%s\"", owner ? owner : "",
                         agent->name);
    json_t *action = json_object_get (decision, "action");
    const char *name = s_str (action, "name");
    json_t *params = json_object_get (action, "params");
    if (!name || !json_is_object (params))
        return s_refuse (why, "the decision has no action with a name and a params object");
    json_t *fallback = json_object_get (decision, "fallback");
    const char *verdict = s_str (decision, "verdict");
    if (!json_is_boolean (fallback) || !verdict)
        return s_refuse (why, "the decision has no verdict or no fallback flag");
    bool is_accepted = strcmp (verdict, "accepted") == 0;
    if (json_is_true (fallback) && !is_accepted)
        return s_check_fallback (cfg, agent, name, params, why);
    if (json_is_false (fallback) && is_accepted)
        return s_check_accepted (cfg, agent, state_dir, decision, name, params, why);
    return s_refuse (why, "verdict \"%s\" with fallback %s is neither an accepted decision nor "
                     "a fallback", verdict, json_is_true (fallback) ? "true" : "false");
}

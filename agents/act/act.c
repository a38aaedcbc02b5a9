/*  act - stage 6: dispatch a decision to the executor of its action's kind.
 *  Data path: event -> detect -> incident -> reason -> gate -> [act] -> record.
 *
 *  The action spec is looked up again in the config by name, never taken from
 *  the decision, so a record cannot smuggle in a topic or a kind.  Before anything runs
 *  meshd is asked (ACT, daemon/actions.h): it may say the action is paused or over its
 *  rate, and it carries out exec and webhook actions itself (this process is
 *  sandboxed: no execve, no secrets); log and kafka actions run here.
 */
#include "act.h"
#include "log.h"
#include "record.h"

#include <string.h>

struct _mesh_act_t {
    const mesh_config_t *cfg;
    const mesh_agent_config_t *agent;
    mesh_act_kafka_t *kafka;            //  NULL when no allowed action is a kafka one
};

mesh_act_t *
mesh_act_new (const mesh_config_t *cfg, const mesh_agent_config_t *agent, const char *brokers)
{
    mesh_act_t *self = calloc (1, sizeof *self);
    self->cfg = cfg;
    self->agent = agent;
    for (size_t i = 0; i < agent->action_count; i++) {
        const mesh_action_spec_t *spec = mesh_config_action (cfg, agent->actions[i]);
        if (spec && spec->kind == MESH_ACTION_KAFKA && !self->kafka && !agent->observe) {
            self->kafka = mesh_act_kafka_new (cfg, brokers);
            if (!self->kafka) {
                free (self);
                return NULL;
            }
        }
    }
    return self;
}

void
mesh_act_destroy (mesh_act_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mesh_act_t *self = *self_p;
    mesh_act_kafka_destroy (&self->kafka);
    free (self);
    *self_p = NULL;
}

static bool
s_allowed (const mesh_agent_config_t *agent, const char *name)
{
    for (size_t i = 0; i < agent->action_count; i++)
        if (strcmp (agent->actions[i], name) == 0)
            return true;
    return false;
}

//  How long meshd may take to answer an ACT for SPEC: the whole execution of an exec or
//  webhook action, with room to spare.
static int
s_act_timeout_ms (const mesh_action_spec_t *spec)
{
    long ms = 0;
    if (spec->kind == MESH_ACTION_EXEC)
        ms = (long) spec->exec.timeout_ms + spec->exec.kill_after_ms;
    else if (spec->kind == MESH_ACTION_WEBHOOK)
        ms = (long) spec->webhook.attempts * (spec->webhook.timeout_ms + spec->webhook.retry_max_ms);
    ms += 10000;
    return ms > 24L * 3600 * 1000 ? 24 * 3600 * 1000 : (int) ms;
}

static json_t *s_run (mesh_act_t *self, json_t *decision, bool recovering,
                      mesh_record_t *record);

//  Rate-limited: the agent's fallback instead, if this process can carry it out alone
//  (log or kafka); its params as the reasoning loop's fallback has them ({}).
static json_t *
s_fallback (mesh_act_t *self, json_t *decision, json_t *limited)
{
    json_t *copy = json_deep_copy (decision);
    const mesh_action_spec_t *spec = self->agent->fallback
                                     ? mesh_config_action (self->cfg, self->agent->fallback)
                                     : NULL;
    json_object_set_new (copy, "action", json_pack ("{s:s, s:{}}", "name",
                                                    self->agent->fallback
                                                    ? self->agent->fallback : "", "params"));
    json_t *outcome;
    if (!spec || (spec->kind != MESH_ACTION_LOG && spec->kind != MESH_ACTION_KAFKA))
        outcome = json_pack ("{ss ss ss ss? ss ss}", "type", "outcome", "id",
                             json_string_value (json_object_get (decision, "id")), "agent",
                             self->agent->name, "action", self->agent->fallback, "status",
                             "skipped", "detail",
                             "rate limited, and the fallback is not a log or kafka action");
    else
        outcome = s_run (self, copy, false, NULL);
    json_decref (copy);
    json_object_set_new (outcome, "rate_limited", limited);
    return outcome;
}

static json_t *
s_run (mesh_act_t *self, json_t *decision, bool recovering, mesh_record_t *record)
{
    const char *id = json_string_value (json_object_get (decision, "id"));
    json_t *action = json_object_get (decision, "action");
    const char *name = json_string_value (json_object_get (action, "name"));
    json_t *outcome = json_pack ("{ss ss ss ss?}", "type", "outcome", "id", id ? id : "",
                                 "agent", self->agent->name, "action", name);
    const char *status = "failed";
    char *detail = NULL;
    const mesh_action_spec_t *spec = name ? mesh_config_action (self->cfg, name) : NULL;
    json_t *reply = NULL;
    const char *verdict = "run";
    if (spec && s_allowed (self->agent, name) && !self->agent->observe && record) {
        if (mesh_record_act (record, id ? id : "", s_act_timeout_ms (spec), &reply) != 0)
            verdict = spec->kind == MESH_ACTION_EXEC || spec->kind == MESH_ACTION_WEBHOOK
                        ? "unknown" : "no_answer";
        else
            verdict = json_string_value (json_object_get (reply, "verdict"));
    }
    if (!spec || !s_allowed (self->agent, name))
        detail = strdup ("action is not declared for this agent");
    else
    if (self->agent->observe) {
        status = "observed";
        detail = strdup ("mode observe: not executed");
    }
    else
    if (!strcmp (verdict, "rate_limited")) {
        json_t *limited = json_pack ("{s:s?, s:O?}", "action", name, "detail",
                                     json_object_get (reply, "detail"));
        json_decref (reply);
        json_decref (outcome);
        return s_fallback (self, decision, limited);
    }
    else
    if (strcmp (verdict, "run") != 0) {
        //  meshd said no, or carried it out itself (exec, webhook): its word is the outcome.
        json_t *done = json_object_get (reply, "outcome");
        status = !strcmp (verdict, "done") ? "done" : !strcmp (verdict, "paused") ? "paused"
                 : !strcmp (verdict, "unknown") ? "outcome_unknown"
                 : !strcmp (verdict, "pending_approval") ? "pending_approval"
                 : !strcmp (verdict, "resolved") ? "resolved" : "failed";
        const char *text = json_string_value (json_object_get (done, "detail"));
        if (!text)
            text = json_string_value (json_object_get (reply, "detail"));
        detail = strdup (text ? text : !strcmp (verdict, "unknown")
                         ? "meshd did not answer in time; it may have carried it out (the "
                           "recovery asks again, by the same decision id)"
                         : !strcmp (verdict, "no_answer")
                         ? "meshd did not answer the act request: not carried out"
                         : verdict);
        json_t *part;
        const char *key;
        json_object_foreach (done, key, part)
            if (strcmp (key, "status") && strcmp (key, "detail"))
                json_object_set (outcome, key, part);
        if (json_is_true (json_object_get (reply, "repeated")))
            json_object_set_new (outcome, "repeated", json_true ());
    }
    else
    if (spec->kind == MESH_ACTION_LOG) {
        if (mesh_act_log_run (self->agent->name, id, action, &detail) == 0)
            status = "done";
    }
    else
    if (spec->kind != MESH_ACTION_KAFKA || !self->kafka)
        //  exec and webhook run in meshd only; without its answer nothing runs here.
        detail = strdup ("meshd did not take this action: not carried out");
    else {
        json_t *message = json_pack ("{ss ss ss sO sO}", "decision_id", id, "agent",
                                     self->agent->name, "action", name, "params",
                                     json_object_get (action, "params") ?: json_null (),
                                     "incident", json_object_get (decision, "incident")
                                                     ?: json_null ());
        int found = 0;
        if (recovering) {
            //  Without a ledger time the whole retained topic is the range to check.
            json_t *ts = json_object_get (decision, "ts");
            int64_t since = json_is_integer (ts) ? json_integer_value (ts)
                                                   - MESH_ACT_SCAN_MARGIN_MS : 0;
            found = mesh_act_kafka_find (self->kafka, spec->topic, id ? id : "",
                                         since > 0 ? since : 0, MESH_ACT_SCAN_TIMEOUT_MS,
                                         MESH_ACT_SCAN_MAX_MESSAGES, &detail);
            if (found == 1)
                status = "done";
            else
            if (found < 0) {
                status = "outcome_unknown";
                mesh_err ("act: decision %.12s: cannot tell whether %s was already produced "
                          "to %s (%s); NOT produced again - a human must check the topic for "
                          "key %s", id ? id : "?", name, spec->topic, detail ? detail : "?",
                          id ? id : "?");
            }
        }
        if (found == 0 && mesh_act_kafka_run (self->kafka, spec->topic, id ? id : "", message,
                                              &detail) == 0)
            status = "done";
        json_decref (message);
    }
    json_object_set_new (outcome, "status", json_string (status));
    json_object_set_new (outcome, "detail", detail ? json_string (detail) : json_null ());
    free (detail);
    json_decref (reply);
    return outcome;
}

json_t *
mesh_act_run (mesh_act_t *self, json_t *decision, mesh_record_t *record)
{
    return s_run (self, decision, false, record);
}

json_t *
mesh_act_recover (mesh_act_t *self, json_t *decision, mesh_record_t *record)
{
    return s_run (self, decision, true, record);
}

bool
mesh_act_owes_outcome (json_t *outcome)
{
    const char *status = json_string_value (json_object_get (outcome, "status"));
    return !status || (strcmp (status, "pending_approval") && strcmp (status, "resolved"));
}

/*  act - stage 6: dispatch a decision to the executor of its action's kind.
 *  Data path: event -> detect -> incident -> reason -> gate -> [act] -> record.
 *
 *  The action spec is looked up again in the config by name, never taken from
 *  the decision, so a record cannot smuggle in a topic or a kind.
 */
#include "act.h"
#include "log.h"

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

static json_t *
s_run (mesh_act_t *self, json_t *decision, bool recovering)
{
    const char *id = json_string_value (json_object_get (decision, "id"));
    json_t *action = json_object_get (decision, "action");
    const char *name = json_string_value (json_object_get (action, "name"));
    json_t *outcome = json_pack ("{ss ss ss ss?}", "type", "outcome", "id", id ? id : "",
                                 "agent", self->agent->name, "action", name);
    const char *status = "failed";
    char *detail = NULL;
    const mesh_action_spec_t *spec = name ? mesh_config_action (self->cfg, name) : NULL;
    if (!spec || !s_allowed (self->agent, name))
        detail = strdup ("action is not declared for this agent");
    else
    if (self->agent->observe) {
        status = "observed";
        detail = strdup ("mode observe: not executed");
    }
    else
    if (spec->kind == MESH_ACTION_LOG) {
        if (mesh_act_log_run (self->agent->name, id, action, &detail) == 0)
            status = "done";
    }
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
    return outcome;
}

json_t *
mesh_act_run (mesh_act_t *self, json_t *decision)
{
    return s_run (self, decision, false);
}

json_t *
mesh_act_recover (mesh_act_t *self, json_t *decision)
{
    return s_run (self, decision, true);
}

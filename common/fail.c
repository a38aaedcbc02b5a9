/*  fail - names of the failure classes (see fail.h).  */
#include "fail.h"

static const char *s_names[MESH_FAIL_COUNT_] = {
    [MESH_FAIL_NONE] = "none",
    [MESH_FAIL_BUDGET_EXHAUSTED] = "budget_exhausted",
    [MESH_FAIL_MODEL_TIMEOUT] = "model_timeout",
    [MESH_FAIL_MODEL_ERROR] = "model_error",
    [MESH_FAIL_MODEL_MALFORMED] = "model_malformed",
    [MESH_FAIL_RULE_REJECT] = "rule_reject",
    [MESH_FAIL_RULE_ERROR] = "rule_error",
    [MESH_FAIL_RULE_LIMIT] = "rule_limit",
    [MESH_FAIL_ACTION_FAILED] = "action_failed",
    [MESH_FAIL_LEDGER_UNAVAILABLE] = "ledger_unavailable",
    [MESH_FAIL_EVENT_MALFORMED] = "event_malformed",
    [MESH_FAIL_MODEL_OVERSIZE] = "model_oversize",
    [MESH_FAIL_MODEL_TRUNCATED] = "model_truncated",
    [MESH_FAIL_MODEL_CONTEXT_OVERFLOW] = "model_context_overflow",
    [MESH_FAIL_MODEL_RATE_LIMITED] = "model_rate_limited",
    [MESH_FAIL_MODEL_OVERLOADED] = "model_overloaded",
    [MESH_FAIL_MODEL_LOADING] = "model_loading",
    [MESH_FAIL_MODEL_NOT_FOUND] = "model_not_found",
    [MESH_FAIL_MODEL_PARTIAL] = "model_partial",
    [MESH_FAIL_MODEL_UNREACHABLE] = "model_unreachable",
};

const char *
mesh_fail_name (mesh_fail_t fail)
{
    if ((unsigned) fail >= MESH_FAIL_COUNT_)
        return "unknown";
    return s_names[fail];
}

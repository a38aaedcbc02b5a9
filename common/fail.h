/*  fail - the one enum of per-event failure classes.
 *
 *  Every failure on the data path has a class here, a counter in the agent, and a
 *  recorded decision.  The default is fail closed: no action, and the record says why.
 */
#ifndef MESH_FAIL_H
#define MESH_FAIL_H

typedef enum {
    MESH_FAIL_NONE = 0,
    MESH_FAIL_BUDGET_EXHAUSTED,     //  no token grant: the call was not made
    MESH_FAIL_MODEL_TIMEOUT,        //  the backend did not answer within its deadline
    MESH_FAIL_MODEL_ERROR,          //  transport error or non-2xx answer from the backend
    MESH_FAIL_MODEL_MALFORMED,      //  the answer, or the proposal in it, is not what we asked for
    MESH_FAIL_RULE_REJECT,          //  a gate rule (or the built-in schema check) said no
    MESH_FAIL_RULE_ERROR,           //  a rule raised an error or returned a wrong type
    MESH_FAIL_RULE_LIMIT,           //  a rule hit its instruction, memory or time limit
    MESH_FAIL_ACTION_FAILED,        //  the action ran and failed
    MESH_FAIL_LEDGER_UNAVAILABLE,   //  the decision ledger did not acknowledge: nothing acted
    MESH_FAIL_EVENT_MALFORMED,      //  an input message that cannot be decoded
    MESH_FAIL_MODEL_OVERSIZE,       //  the answer is over a backend limit (bytes, depth, keys, string)
    MESH_FAIL_MODEL_TRUNCATED,      //  the server stopped for another reason than a stop (length, ...)
    //  What a backend says went wrong (agents/backend/wire.h classifies; docs/reasoning.md
    //  has what the loop does next for each):
    MESH_FAIL_MODEL_CONTEXT_OVERFLOW,   //  the prompt and max_tokens do not fit the context
    MESH_FAIL_MODEL_RATE_LIMITED,   //  429 (after the retries the deadline allowed)
    MESH_FAIL_MODEL_OVERLOADED,     //  the server refused for load (503 busy, TGI's 429 overloaded)
    MESH_FAIL_MODEL_LOADING,        //  the model is still loading (503 "Loading model")
    MESH_FAIL_MODEL_NOT_FOUND,      //  the server does not serve that model: a config error
    MESH_FAIL_MODEL_PARTIAL,        //  the answer stopped part way (connection cut, stream ended
                                    //  without a finish, or an error inside the stream)
    MESH_FAIL_MODEL_UNREACHABLE,    //  no connection (refused, unresolvable) or the circuit is open
    MESH_FAIL_COUNT_
} mesh_fail_t;

//  Stable lower-case name used in logs, records and metrics ("budget_exhausted", ...).
const char *mesh_fail_name (mesh_fail_t fail);

#endif

/*  token_port - what a reasoning worker asks of the token ledger, and how it asks.
 *
 *  The supervisor holds the one ledger of tokens (daemon/tokens.h).  Before each
 *  model call a worker reserves the worst case (prompt estimate + max_tokens) for the
 *  incident; the ledger grants it against every scope that applies (the daemon, the
 *  agent, the backend, the action a reask is about, the incident) or refuses it naming
 *  the scope that refused.  After the call the worker settles the grant with what the
 *  call cost (agents/backend/charge.h: the charging rules).
 *
 *  The reasoning loop reaches the ledger through a port: in the agent process it is
 *  a request/reply on the worker's socket to meshd (agents/record.h); in tests and
 *  benches it can be the ledger object itself, in the same process.
 */
#ifndef MESH_TOKEN_PORT_H
#define MESH_TOKEN_PORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define MESH_TOKENS_SCOPE_MAX 160

typedef struct {
    const char *agent;              //  the agent asking (the supervisor takes it from the
                                    //  authenticated peer, never from the message)
    const char *incident;           //  the decision id (64 hex)
    int step;                       //  the loop's step, from 1
    long need;                      //  prompt estimate + max_tokens
    const char *backend;            //  the backend the call goes to
    const char *action;             //  the action a reask is about (the last proposal's), or NULL
    bool high;                      //  the incident's priority is high (may spend reserves)
} mesh_tokens_ask_t;

typedef struct {
    bool granted;
    int64_t grant;                  //  > 0 when granted: what the settle names
    char scope[MESH_TOKENS_SCOPE_MAX];  //  refused: the scope that refused ("agent:ops")
    char detail[320];               //  refused: one line, what the scope had and needed
    long agent_used, agent_limit;   //  the agent's scope now (limit -1: none)
} mesh_tokens_grant_t;

typedef struct {
    long charged;                   //  what the call cost (>= 0)
    const char *rule;               //  the charging rule that applied (charge.h)
    const char *result;             //  "accepted", or the attempt's failure class
    const char *action;             //  the action this attempt proposed, or NULL
} mesh_tokens_charge_t;

typedef struct {
    //  0 with *grant filled (granted or refused), or -1 when the ledger did not answer
    //  (the caller must not call the model).
    int (*reserve) (void *arg, const mesh_tokens_ask_t *ask, mesh_tokens_grant_t *grant);
    //  0 once the charge is sent (over the socket it is one way: the ledger charges a
    //  grant whose settle never arrives in full when the instance ends), with *budget
    //  (caller owns) the agent's scope after the charge ({used, reserved, limit, ...})
    //  when the port knows it, else NULL; -1 when it could not be sent.
    int (*settle) (void *arg, int64_t grant, const mesh_tokens_charge_t *charge,
                   json_t **budget);
    void *arg;
} mesh_tokens_port_t;

#endif

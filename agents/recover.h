/*  recover - between stages 7 and 6 after a restart: may a recorded decision run now?
 *  Data path: event -> detect -> incident -> reason -> [gate] -> act -> record, for a
 *  decision the ledger holds without an outcome.
 *
 *  A decision read back from the log is a claim, not a permission: before a previous
 *  life's decision is carried out, the recorded proposal goes through the gates again,
 *  the rule set that judged it loaded from the archive by its hash.  Pure: no socket,
 *  no process, only the config, the archive and the record.
 */
#ifndef MESH_RECOVER_H
#define MESH_RECOVER_H

#include "config.h"
#include <jansson.h>

//  0 when DECISION (borrowed, as the ledger returned it) may be carried out now by AGENT
//  under CFG; -1 with *why set (caller frees; one line saying what did not hold).
//  An accepted decision: exactly one attempt accepted, the last; its proposal names the
//  decision's action with the same params; the rule set of the decision's rules_hash,
//  loaded from STATE_DIR/rules/<hash>/ and verified, accepts that proposal (built-in
//  check with today's action specs, then every rule) with the ctx rebuilt from the
//  record (ctx + incident + the attempt's ctx_action, which must equal today's spec).
//  A fallback decision: the action is AGENT's configured fallback and its params pass
//  the built-in check.  Anything else is refused.
int mesh_recover_check (const mesh_config_t *cfg, const mesh_agent_config_t *agent,
                        const char *state_dir, json_t *decision, char **why);

#endif

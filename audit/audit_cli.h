/*  audit_cli - what `meshctl audit ...` hands to the audit commands.
 *
 *  meshctl parses the options once (getopt, anywhere on the line) and fills one of these;
 *  each command lives in its own module under audit/ and prints to OUT, diagnostics to
 *  the log module.  Return codes are exit-code shaped: 0 ok, 1 the answer is "no" (a
 *  proof that does not verify, a replay with differences, a broken log), 2 a file cannot
 *  be read, 64 usage, 78 configuration.
 */
#ifndef MESH_AUDIT_CLI_H
#define MESH_AUDIT_CLI_H

#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    bool json;                      //  --json
    bool csv;                       //  --csv (stats)
    const char *log;                //  the decision log (--log, else the config's)
    const mesh_config_t *cfg;       //  the loaded config; NULL when --log was given and
                                    //  the config could not be loaded
    const char *key;                //  --key FILE: the ledger's MAC key (verify) or the
                                    //  signing key (keygen: where to write it)
    const char *pubkey;             //  --pubkey KEY: a verifier key (text or a file)
    const char *rules;              //  --rules DIR: a candidate rule set (replay)
    const char *by;                 //  --by agent|action|verdict|backend|rule (stats)
    int64_t from_seq, to_seq;       //  --from SEQ --to SEQ (replay); 0 = open
    int64_t since_ms, until_ms;     //  --since T --until T (stats); 0 = open
    int argc;                       //  the words after `audit COMMAND`
    char **argv;
} mesh_audit_cli_t;

//  audit/replay.c: `audit replay [--from SEQ] [--to SEQ] [--rules DIR]`.
int mesh_audit_replay_cli (const mesh_audit_cli_t *o, FILE *out);
//  audit/stats.c: `audit stats [--since T] [--until T] [--by KEY] [--json|--csv]`.
int mesh_audit_stats_cli (const mesh_audit_cli_t *o, FILE *out);
//  audit/proofs.c: keygen, pubkey, prove ID, verify-proof FILE, consistency OLD NEW.
int mesh_audit_keygen_cli (const mesh_audit_cli_t *o, FILE *out);
int mesh_audit_pubkey_cli (const mesh_audit_cli_t *o, FILE *out);
int mesh_audit_prove_cli (const mesh_audit_cli_t *o, FILE *out);
int mesh_audit_verify_proof_cli (const mesh_audit_cli_t *o, FILE *out);
int mesh_audit_consistency_cli (const mesh_audit_cli_t *o, FILE *out);
//  The tree part of `audit verify`: every checkpoint record against the tree (signatures
//  with PUBKEY, a verifier key text or file, else with the key each record names) and
//  <log>.checkpoint.  Prints "tree: ..." and "checkpoints: ..." lines (JSON: one object),
//  or "FAIL: ..." naming the first bad record.  0, 1, 2, 64.
int mesh_audit_verify_tree (const char *log, const char *pubkey, bool json, FILE *out);

#endif

//  (being written)
#include "audit_cli.h"
#include "log.h"
#define S_STUB(fn) int fn (const mesh_audit_cli_t *o, FILE *out) { mesh_err (#fn ": not built yet"); return 2; }
S_STUB (mesh_audit_keygen_cli)
S_STUB (mesh_audit_pubkey_cli)
S_STUB (mesh_audit_prove_cli)
S_STUB (mesh_audit_verify_proof_cli)
S_STUB (mesh_audit_consistency_cli)

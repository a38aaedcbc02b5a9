//  (being written)
#include "audit_cli.h"
#include "log.h"
int
mesh_audit_stats_cli (const mesh_audit_cli_t *o, FILE *out)
{
    mesh_err ("audit stats: not built yet");
    return 2;
}

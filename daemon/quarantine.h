/*  quarantine - the supervisor's strike table for poison messages.
 *
 *  A strike is one death (crash, kill, heartbeat timeout) of an agent while one of its
 *  threads was handling a position (topic, partition, offset), as the agent's in-flight
 *  area showed after the death (common/inflight.h).  Strikes are kept per agent (the
 *  config's agent, so replicas share them: a partition may move to another replica),
 *  survive agent restarts, and survive meshd restarts in <state_dir>/quarantine.json
 *  (written whole, to a temporary file then renamed, at each change; changes come with
 *  deaths only).  A position whose strikes reach the limit is quarantined: it stays so,
 *  and is given to every later life of the agent, which skips it.  A position handled
 *  to the end later loses its strikes.
 *
 *  Bounded: at most MESH_QUARANTINE_MAX positions in all; past that the oldest
 *  position with strikes only, else the oldest quarantined one, is forgotten.
 */
#ifndef MESH_QUARANTINE_H
#define MESH_QUARANTINE_H

#include "inflight.h"

#include <stdbool.h>
#include <stddef.h>

#define MESH_QUARANTINE_MAX 4096
//  Bounds of daemon.restart.quarantine_after.
#define MESH_QUARANTINE_AFTER_DEFAULT 3
#define MESH_QUARANTINE_AFTER_MAX     100

typedef struct _mesh_quarantine_t mesh_quarantine_t;

//  The table kept in PATH (copied; NULL: memory only).  A file that does not parse is
//  reported (FILE:LINE:COL) and moved aside to PATH.bad; entries that are not valid are
//  reported and skipped.  Never NULL.
mesh_quarantine_t *mesh_quarantine_new (const char *path);
void mesh_quarantine_destroy (mesh_quarantine_t **self_p);
//  AGENT died while handling POS: one more strike.  Returns the strikes now; *reached
//  is true when this strike quarantined it (strikes >= LIMIT for the first time).  A
//  strike on a position already quarantined makes it the most recent one.
int mesh_quarantine_strike (mesh_quarantine_t *self, const char *agent,
                            const mesh_inflight_pos_t *pos, int limit, bool *reached);
//  AGENT handled POS to the end: its strikes are gone (a quarantined one stays).
void mesh_quarantine_clear (mesh_quarantine_t *self, const char *agent,
                            const mesh_inflight_pos_t *pos);
//  What to tell AGENT's next life: up to MAX positions with strikes, the quarantined
//  ones first, most recent first.  QUARANTINED[i] flags POS[i].  Returns the count.
size_t mesh_quarantine_marks (mesh_quarantine_t *self, const char *agent,
                              mesh_inflight_pos_t *pos, bool *quarantined, size_t max);
//  Positions of AGENT quarantined, and with strikes but not quarantined.
size_t mesh_quarantine_count (mesh_quarantine_t *self, const char *agent);
size_t mesh_quarantine_suspects (mesh_quarantine_t *self, const char *agent);

#endif

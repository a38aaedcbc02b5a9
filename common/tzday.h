/*  tzday - calendar days in a named time zone, for budgets that reset at midnight.
 *
 *  Reads the zone's TZif file (RFC 8536) from /usr/share/zoneinfo (or $TZDIR) once, and
 *  answers "when did the local day holding this instant start, and when does the next
 *  one start" without touching the process's TZ or localtime's global state (meshd has
 *  threads that are not ours).  Only the file's transition table is used: past its last
 *  transition (2037 in Debian's files) the last offset holds, so a rule change after
 *  that is not seen (documented in docs/reasoning.md).
 */
#ifndef MESH_TZDAY_H
#define MESH_TZDAY_H

#include <stddef.h>
#include <stdint.h>

typedef struct _mesh_tz_t mesh_tz_t;

//  Load zone NAME ("UTC", "Europe/Berlin"): letters, digits, '_', '-', '+', '/', no "..",
//  no leading '/'.  NULL with why in WHY when the name is not one or its file cannot be
//  read as TZif.
mesh_tz_t *mesh_tz_load (const char *name, char *why, size_t why_size);
void mesh_tz_destroy (mesh_tz_t **self_p);
const char *mesh_tz_name (const mesh_tz_t *self);
//  The UTC offset in seconds at epoch second T.
int32_t mesh_tz_offset (const mesh_tz_t *self, int64_t t);
//  The start (epoch seconds) of the local calendar day holding epoch second T, and the
//  start of the next one (*next_p, may be NULL).
int64_t mesh_tz_day_start (const mesh_tz_t *self, int64_t t, int64_t *next_p);

#endif

/*  silence - operator mutes over key fields, in wall-clock time.
 *
 *  A silence is a set of matchers over the key fields of a point ("host=web-1",
 *  "metric=~cpu.*") and a wall-clock interval [starts, ends).  While it is active,
 *  every anomalous point whose fields satisfy all its matchers is counted as
 *  silenced and opens no incident.  The matchers are Alertmanager's: = and != compare
 *  the whole value, =~ and !~ match a POSIX extended regular expression anchored at
 *  both ends, and a field the point does not have reads as the empty string.  A
 *  silence must have at least one matcher that the empty string does not satisfy,
 *  so that no silence can mute everything by accident.
 *
 *  Silences come from two places: the agent's config (incident.silences) and the
 *  run-time file state_dir/silences.json that `meshctl silence add|list|expire`
 *  edits under a lock and rewrites atomically (write, fsync, rename, fsync of the
 *  directory).  Agents re-read that file when its identity (inode, size, mtime)
 *  changes.  Silences are operator actions, so they are judged by the wall clock,
 *  never by event time: a replay of old events meets today's silences.
 *
 *  Not thread-safe: one thread owns a set.
 */
#ifndef MESH_SILENCE_H
#define MESH_SILENCE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MESH_SILENCE_MATCHERS_MAX 16    //  matchers per silence
#define MESH_SILENCE_MAX 10000          //  silences per set (more is refused)

typedef struct _mesh_silences_t mesh_silences_t;

//  The value of field NAME of the point being checked, or NULL when it has none (it then
//  matches as the empty string).  ARG is what mesh_silences_match was given.
typedef const char *(mesh_silence_field_fn) (void *arg, const char *name);

//  Check one matcher ("name=value", "name!=value", "name=~regex", "name!~regex").
//  0 if good; else -1 with what is wrong in WHY.
int mesh_silence_matcher_check (const char *text, char *why, size_t why_size);
//  True if the matcher (already checked) is satisfied by the empty string.
bool mesh_silence_matcher_matches_empty (const char *text);
//  An RFC 3339 time ("2024-05-01T10:00:00Z", "...T12:00:00.5+02:00") as epoch ms.
//  0, or -1 if TEXT is not one.
int mesh_silence_parse_time (const char *text, int64_t *ms_p);
//  A duration ("90s", "15m", "2h", "1h30m", "7d", "1w") as ms > 0.  0, or -1.
int mesh_silence_parse_duration (const char *text, int64_t *ms_p);
//  Epoch ms as RFC 3339 UTC with seconds ("2024-05-01T10:00:00Z") into BUF.
void mesh_silence_format_time (int64_t ms, char *buf, size_t size);

//  Create an empty set; NULL (logged) if out of memory.
mesh_silences_t *mesh_silences_new (void);
//  Destroy; sets *self_p to NULL; safe on NULL.
void mesh_silences_destroy (mesh_silences_t **self_p);
//  Add a silence (all copied).  ID NULL: a fresh random id (16 hex digits).  STARTS_MS 0:
//  active from the start; ENDS_MS 0: never ends.  Returns the id (borrowed, valid while
//  the silence is in the set), or NULL with why in WHY.
const char *mesh_silences_add (mesh_silences_t *self, const char *id,
                               const char *const *matchers, size_t matcher_count,
                               int64_t starts_ms, int64_t ends_ms, const char *comment,
                               int64_t created_ms, char *why, size_t why_size);
//  Expire at NOW_MS the one silence whose id starts with PREFIX.  0; -1 with why if no
//  silence or more than one matches, or it has already ended.
int mesh_silences_expire (mesh_silences_t *self, const char *prefix, int64_t now_ms,
                          char *why, size_t why_size);
//  Forget silences that ended more than KEEP_MS before NOW_MS; returns how many.
size_t mesh_silences_prune (mesh_silences_t *self, int64_t now_ms, int64_t keep_ms);
//  The id of the first silence active at NOW_MS whose matchers all hold for the
//  fields FIELD returns, or NULL if none.
const char *mesh_silences_match (const mesh_silences_t *self, mesh_silence_field_fn *field,
                                 void *arg, int64_t now_ms);
//  Silences held, and those active at NOW_MS.
size_t mesh_silences_size (const mesh_silences_t *self);
size_t mesh_silences_active (const mesh_silences_t *self, int64_t now_ms);
//  The set as a JSON array, each {id, matchers, starts_at, ends_at (null = never),
//  comment, created_at, state: "pending" | "active" | "expired"}.  Caller owns it.
json_t *mesh_silences_json (const mesh_silences_t *self, int64_t now_ms);

//  Replace the contents with the silences in PATH (a missing file is an empty set).
//  0; or -1 (logged once per call) with the contents unchanged.
int mesh_silences_load (mesh_silences_t *self, const char *path);
//  Write the set to PATH atomically (PATH.tmp, fsync, rename, fsync of the directory).
//  0, or -1 (logged).
int mesh_silences_save (const mesh_silences_t *self, const char *path);
//  Re-read PATH if it changed (inode, size or mtime) since the last look; cheap when it
//  did not (one stat).  1 if reloaded, 0 if unchanged, -1 if it changed and could not
//  be read (logged; the previous contents stay).
int mesh_silences_refresh (mesh_silences_t *self, const char *path);
//  Take an exclusive lock for a read-modify-write of PATH (on PATH.lock, created if
//  needed).  Returns a descriptor to pass to mesh_silences_unlock, or -1 (logged).
int mesh_silences_lock (const char *path);
void mesh_silences_unlock (int fd);

//  The `silence` command of meshctl, given main's whole argv:
//      meshctl [--json] [--config FILE | --state-dir DIR] silence add --match F=V
//              [--match F=~RE ...] (--for DURATION | --until TIME) [--starts TIME]
//              [--comment TEXT]
//      meshctl [--json] [--config FILE | --state-dir DIR] silence list [--all]
//      meshctl [--json] [--config FILE | --state-dir DIR] silence expire ID
//  The file is <state_dir>/silences.json (state_dir from the config, default
//  $MESHD_CONFIG or /etc/meshd/meshd.yaml).  Output to OUT, problems to ERR.  Exit code:
//  0; 1 no such silence; 2 the file cannot be read or written; 64 usage; 78 config.
int mesh_silences_cli (int argc, char **argv, FILE *out, FILE *err);
//  True if main's argv names the `silence` command (the first word that is neither an
//  option nor the value of --config/-c/--log/-l/--labels/-L/--state-dir).
bool mesh_silences_is_command (int argc, char **argv);

#endif

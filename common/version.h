/*  version - what this build is: the release, the commit it was built from, the date,
 *  and the libraries it links, for --version, the start-up line and build metrics.
 *
 *  The release is the VERSION file at the top of the tree; the Makefile passes it, the
 *  output of `git describe` and `git rev-parse --short` and the build date (UTC, or
 *  SOURCE_DATE_EPOCH's) as -D flags to this one object.  Outside a git checkout (a
 *  release tarball) the commit is "unknown".
 */
#ifndef MESH_VERSION_H
#define MESH_VERSION_H

#include <stdio.h>

//  The release, e.g. "0.1.0".  Borrowed, static.
const char *mesh_version (void);
//  The commit, e.g. "30a93ec" (with "-dirty" when the tree had changes), or "unknown".
const char *mesh_version_commit (void);
//  `git describe --tags --always --dirty`, or "unknown".
const char *mesh_version_describe (void);
//  The build date, YYYY-MM-DD.
const char *mesh_version_date (void);
//  Print "PROGRAM VERSION (commit C, built D, librdkafka X, Lua Y, libsodium Z, libzmq W,
//  czmq V)\n" to OUT.
void mesh_version_print (FILE *out, const char *program);

#endif

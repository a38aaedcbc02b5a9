/*  version - the build's identity (see version.h).  The strings come from the
 *  Makefile's -D flags for this file only, so a new commit rebuilds one object.
 */
#include "version.h"

#include <czmq.h>
#include <lua.h>
#include <librdkafka/rdkafka.h>
#include <sodium.h>

#ifndef MESH_VERSION
#define MESH_VERSION "unknown"
#endif
#ifndef MESH_GIT_COMMIT
#define MESH_GIT_COMMIT "unknown"
#endif
#ifndef MESH_GIT_DESCRIBE
#define MESH_GIT_DESCRIBE "unknown"
#endif
#ifndef MESH_BUILD_DATE
#define MESH_BUILD_DATE __DATE__
#endif

const char *
mesh_version (void)
{
    return MESH_VERSION;
}

const char *
mesh_version_commit (void)
{
    return *MESH_GIT_COMMIT ? MESH_GIT_COMMIT : "unknown";
}

const char *
mesh_version_describe (void)
{
    return *MESH_GIT_DESCRIBE ? MESH_GIT_DESCRIBE : "unknown";
}

const char *
mesh_version_date (void)
{
    return MESH_BUILD_DATE;
}

void
mesh_version_print (FILE *out, const char *program)
{
    int zmajor, zminor, zpatch;
    zmq_version (&zmajor, &zminor, &zpatch);
    fprintf (out, "%s %s (commit %s, built %s, librdkafka %s, %s, libsodium %s, libzmq %d.%d.%d, "
                  "czmq %d.%d.%d)\n",
             program, mesh_version (), mesh_version_commit (), mesh_version_date (),
             rd_kafka_version_str (), LUA_RELEASE, sodium_version_string (), zmajor, zminor,
             zpatch, CZMQ_VERSION_MAJOR, CZMQ_VERSION_MINOR, CZMQ_VERSION_PATCH);
}

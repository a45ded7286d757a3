/* The build stamp (see include/portway_build.h). The generated headers are optional: without them
 * (a plain `swift build` of a fresh clone) the fallbacks below apply. scripts/stamp-build.sh
 * touches this file whenever it rewrites one, so SwiftPM recompiles it. */
#include "portway_build.h"

#if __has_include("generated/version.h")
#include "generated/version.h"
#endif
#ifndef PORTWAY_BUILD_VERSION
#define PORTWAY_BUILD_VERSION "dev"
#endif
#ifndef PORTWAY_BUILD_COMMIT
#define PORTWAY_BUILD_COMMIT "unknown"
#endif

const char *portway_build_version(void) { return PORTWAY_BUILD_VERSION; }
const char *portway_build_commit(void) { return PORTWAY_BUILD_COMMIT; }

#if __has_include("generated/portway_lb_object.h")
/* static const unsigned char portway_lb_object[] = {...}; */
#include "generated/portway_lb_object.h"
const unsigned char *portway_build_bpf_object(size_t *size)
{
    *size = sizeof(portway_lb_object);
    return portway_lb_object;
}
#else
const unsigned char *portway_build_bpf_object(size_t *size)
{
    *size = 0;
    return NULL;
}
#endif

/* What the build stamps into the binary: the version, the git commit and the datapath object.
 * `make build`/`make image` generate Sources/CPortwayBuild/generated/ (scripts/stamp-build.sh);
 * a plain `swift build` without it gets version "dev", commit "unknown" and no embedded object. */
#ifndef PORTWAY_BUILD_H
#define PORTWAY_BUILD_H

#include <stddef.h>

/// The release version, e.g. "0.1.0" ("dev" when the build was not stamped).
const char *portway_build_version(void);
/// The git commit the binary was built from (12 hex digits, "-dirty" with uncommitted changes;
/// "unknown" when the build was not stamped).
const char *portway_build_commit(void);
/// The compiled datapath (bpf/out/portway_lb.o) embedded at build time; *size 0 when the build
/// had none (a plain `swift build` before `make bpf`).
const unsigned char *portway_build_bpf_object(size_t *size);

#endif

/* Small C helpers for Swift around libbpf calls whose option structs or macros Swift cannot use. */
#ifndef PORTWAY_BPF_SHIM_H
#define PORTWAY_BPF_SHIM_H

#include <linux/types.h>
#include "portway_maps.h"

/// Returns libbpf's version as major * 1000 + minor (used to check that the package linked).
int portway_libbpf_version(void);

#endif

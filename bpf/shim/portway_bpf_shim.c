#include <bpf/libbpf.h>
#include "portway_bpf_shim.h"

int portway_libbpf_version(void) {
    return (int)(libbpf_major_version() * 1000 + libbpf_minor_version());
}

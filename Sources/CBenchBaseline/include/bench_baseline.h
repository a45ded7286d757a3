#pragma once
#include <stdint.h>

/// The baseline for the map writer benchmark: creates a BPF hash map with the services map's key and
/// value sizes, makes `count` bpf_map_update_elem calls with distinct keys in a plain C loop, and
/// returns the loop's elapsed nanoseconds (negative errno on failure). The map is closed afterwards.
int64_t pw_bench_raw_update_loop(uint32_t count);

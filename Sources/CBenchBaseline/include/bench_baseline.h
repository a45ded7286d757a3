#pragma once
#include <stdint.h>

/// The baseline for the map writer benchmark: creates a BPF hash map with the services map's key and
/// value sizes, makes `count` bpf_map_update_elem calls with distinct keys in a plain C loop, and
/// returns the loop's elapsed nanoseconds (negative errno on failure). The map is closed afterwards.
int64_t pw_bench_raw_update_loop(uint32_t count);

/// Creates an (unpinned) BPF hash map; returns its fd or -errno.
int pw_bench_create_map(uint32_t key_size, uint32_t value_size, uint32_t max_entries);

/// Writes `n` pairs from packed arrays with one bpf_map_update_elem each; returns the elapsed
/// nanoseconds or -errno, and the thread's CPU nanoseconds in *cpu.
int64_t pw_bench_update_loop(int fd, const void *keys, const void *values, uint32_t n, uint32_t key_size, uint32_t value_size, int64_t *cpu);

/// Writes `n` pairs from packed arrays with BPF_MAP_UPDATE_BATCH, `chunk` pairs per call; returns
/// the elapsed nanoseconds or -errno, and the thread's CPU nanoseconds in *cpu.
int64_t pw_bench_update_batch(int fd, const void *keys, const void *values, uint32_t n, uint32_t key_size, uint32_t value_size, uint32_t chunk, int64_t *cpu);

/// Returns free heap pages to the kernel (glibc's malloc_trim), so VmRSS shows live memory.
void pw_bench_malloc_trim(void);

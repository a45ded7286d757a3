#include <bpf/bpf.h>
#include <errno.h>
#include <malloc.h>
#include <time.h>
#include <unistd.h>
#include "bench_baseline.h"
#include "portway_maps.h"

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t pw_bench_raw_update_loop(uint32_t count) {
    int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "pw_bench_raw", sizeof(struct pw_lb4_key),
                            sizeof(struct pw_lb4_service), count + 1, NULL);
    if (fd < 0) return -errno;
    int64_t start = now_ns();
    for (uint32_t i = 0; i < count; i++) {
        struct pw_lb4_key key = {.address = i, .dport = (__be16)(i >> 16), .backend_slot = 0, .proto = 6};
        struct pw_lb4_service value = {.backend_id = i, .count = 1};
        if (bpf_map_update_elem(fd, &key, &value, BPF_ANY) != 0) {
            int err = -errno;
            close(fd);
            return err;
        }
    }
    int64_t elapsed = now_ns() - start;
    close(fd);
    return elapsed;
}

int pw_bench_create_map(uint32_t key_size, uint32_t value_size, uint32_t max_entries) {
    int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "pw_bench", key_size, value_size, max_entries, NULL);
    return fd < 0 ? -errno : fd;
}

int64_t pw_bench_update_loop(int fd, const void *keys, const void *values, uint32_t n, uint32_t key_size, uint32_t value_size, int64_t *cpu) {
    const char *k = keys, *v = values;
    int64_t start = now_ns(), cpu_start = cpu_ns();
    for (uint32_t i = 0; i < n; i++) {
        if (bpf_map_update_elem(fd, k + (size_t)i * key_size, v + (size_t)i * value_size, BPF_ANY) != 0) return -errno;
    }
    *cpu = cpu_ns() - cpu_start;
    return now_ns() - start;
}

int64_t pw_bench_update_batch(int fd, const void *keys, const void *values, uint32_t n, uint32_t key_size, uint32_t value_size, uint32_t chunk, int64_t *cpu) {
    const char *k = keys, *v = values;
    LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = BPF_ANY);
    int64_t start = now_ns(), cpu_start = cpu_ns();
    for (uint32_t done = 0; done < n;) {
        uint32_t count = n - done < chunk ? n - done : chunk;
        if (bpf_map_update_batch(fd, k + (size_t)done * key_size, v + (size_t)done * value_size, &count, &opts) != 0) return -errno;
        done += count;
    }
    *cpu = cpu_ns() - cpu_start;
    return now_ns() - start;
}

void pw_bench_malloc_trim(void) { malloc_trim(0); }

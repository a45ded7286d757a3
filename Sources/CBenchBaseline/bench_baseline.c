#include <bpf/bpf.h>
#include <errno.h>
#include <time.h>
#include <unistd.h>
#include "bench_baseline.h"
#include "portway_maps.h"

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
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

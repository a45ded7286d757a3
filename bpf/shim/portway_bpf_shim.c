#include <errno.h>
#include <stdio.h>
#include <unistd.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/vfs.h>
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include "portway_bpf_shim.h"

int portway_libbpf_version(void) {
    return (int)(libbpf_major_version() * 1000 + libbpf_minor_version());
}

/* libbpf 1.x returns -errno from its low-level API; normalise anything else to -errno as well. */
static int neg_errno(int ret) {
    if (ret >= 0) return ret;
    if (ret == -1) return errno ? -errno : -EINVAL;
    return ret;
}

int portway_is_bpffs(const char *path) {
    struct statfs buf;
    if (statfs(path, &buf) != 0) return -errno;
    return (unsigned long)buf.f_type == BPF_FS_MAGIC ? 1 : 0;
}

int portway_obj_pin(int fd, const char *path) { return neg_errno(bpf_obj_pin(fd, path)); }

int portway_obj_get(const char *path) { return neg_errno(bpf_obj_get(path)); }

unsigned int portway_map_type_hash(void) { return BPF_MAP_TYPE_HASH; }
unsigned int portway_map_type_lru_hash(void) { return BPF_MAP_TYPE_LRU_HASH; }

int portway_map_create(unsigned int map_type, const char *name, __u32 key_size, __u32 value_size, __u32 max_entries) {
    return neg_errno(bpf_map_create((enum bpf_map_type)map_type, name, key_size, value_size, max_entries, NULL));
}

int portway_map_info(int fd, __u32 *map_type, __u32 *key_size, __u32 *value_size, __u32 *max_entries, __u32 *map_flags) {
    struct bpf_map_info info;
    __u32 len = sizeof(info);
    memset(&info, 0, sizeof(info));
    int ret = neg_errno(bpf_obj_get_info_by_fd(fd, &info, &len));
    if (ret < 0) return ret;
    *map_type = info.type;
    *key_size = info.key_size;
    *value_size = info.value_size;
    *max_entries = info.max_entries;
    *map_flags = info.map_flags;
    return 0;
}

int portway_map_update(int fd, const void *key, const void *value) {
    return neg_errno(bpf_map_update_elem(fd, key, value, BPF_ANY));
}

int portway_map_lookup(int fd, const void *key, void *value) {
    return neg_errno(bpf_map_lookup_elem(fd, key, value));
}

int portway_map_delete(int fd, const void *key) {
    return neg_errno(bpf_map_delete_elem(fd, key));
}

int portway_map_next_key(int fd, const void *key, void *next_key) {
    return neg_errno(bpf_map_get_next_key(fd, key, next_key));
}

int portway_map_update_batch(int fd, const void *keys, const void *values, __u32 *count) {
    LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = BPF_ANY);
    return neg_errno(bpf_map_update_batch(fd, keys, values, count, &opts));
}

int portway_map_delete_batch(int fd, const void *keys, __u32 *count) {
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    return neg_errno(bpf_map_delete_batch(fd, keys, count, &opts));
}

int portway_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, __u32 *count) {
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    return neg_errno(bpf_map_lookup_batch(fd, in_batch, out_batch, keys, values, count, &opts));
}

int portway_pinned_object_kind(const char *path) {
    int fd = bpf_obj_get(path);
    if (fd < 0) return neg_errno(fd);
    char link[64], target[128];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    close(fd);
    if (n < 0) return -errno;
    target[n] = 0;
    if (strcmp(target, "anon_inode:bpf-map") == 0) return 1;
    if (strcmp(target, "anon_inode:bpf-prog") == 0) return 2;
    if (strcmp(target, "anon_inode:bpf_link") == 0 || strcmp(target, "anon_inode:bpf-link") == 0) return 3;
    return 0;
}

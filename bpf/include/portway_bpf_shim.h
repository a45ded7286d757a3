/* Small C helpers for Swift around libbpf calls whose option structs or macros Swift cannot use. */
#ifndef PORTWAY_BPF_SHIM_H
#define PORTWAY_BPF_SHIM_H

#include <linux/types.h>
#include "portway_maps.h"

/// Asks the CPU to bring the cache line at `p` in: a hint (it never faults, whatever `p` is).
static inline void portway_prefetch(const void *p) { __builtin_prefetch(p); }

/// Returns libbpf's version as major * 1000 + minor (used to check that the package linked).
int portway_libbpf_version(void);

/// 1 if path is on a bpffs mount, 0 if not, -errno if statfs failed.
int portway_is_bpffs(const char *path);

/// bpf_obj_pin / bpf_obj_get; return 0 / an fd, or -errno.
int portway_obj_pin(int fd, const char *path);
int portway_obj_get(const char *path);

/// Map types Portway creates (values of enum bpf_map_type).
unsigned int portway_map_type_hash(void);
unsigned int portway_map_type_lru_hash(void);

/// Creates a map with flags 0; returns its fd, or -errno.
int portway_map_create(unsigned int map_type, const char *name, __u32 key_size, __u32 value_size, __u32 max_entries);

/// Fills the basic properties of a map fd (bpf_obj_get_info_by_fd); returns 0 or -errno.
int portway_map_info(int fd, __u32 *map_type, __u32 *key_size, __u32 *value_size, __u32 *max_entries, __u32 *map_flags);

/// Update with BPF_ANY; returns 0 or -errno.
int portway_map_update(int fd, const void *key, const void *value);

/// Lookup/delete/get_next_key; return 0 or -errno (ENOENT when absent / at the end).
int portway_map_lookup(int fd, const void *key, void *value);
int portway_map_delete(int fd, const void *key);
int portway_map_next_key(int fd, const void *key, void *next_key);

/// BPF_MAP_UPDATE_BATCH with BPF_ANY: writes *count key/value pairs (packed arrays) in one syscall.
/// On return *count holds how many were written; returns 0 or -errno (the error of element *count).
int portway_map_update_batch(int fd, const void *keys, const void *values, __u32 *count);

/// BPF_MAP_DELETE_BATCH: deletes *count keys (a packed array) in one syscall, stopping at the first
/// failure (ENOENT for an absent key). On return *count holds how many were deleted; returns 0 or -errno.
int portway_map_delete_batch(int fd, const void *keys, __u32 *count);

/// BPF_MAP_LOOKUP_BATCH: copies up to *count entries into packed keys/values, continuing after the
/// position `in_batch` names (NULL: from the start) and storing the next position in `out_batch`
/// (a buffer of at least max(key size, 4) bytes). *count holds how many were copied; returns 0, or
/// -ENOENT when the walk ended (entries may still have been copied), or another -errno.
int portway_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, __u32 *count);

/// What the pinned object at `path` is: 1 a map, 2 a program, 3 a link, 0 something else; -errno
/// when it cannot be opened. (`bpf_obj_get` succeeds for any pinned object.)
int portway_pinned_object_kind(const char *path);

#endif

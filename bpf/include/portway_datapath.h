/* C helpers for Swift's Datapath module: libbpf log capture, tcx links (libbpf 1.1 has no
 * bpf_tcx_* API, so raw bpf_link_create attach types are used) and the clsact fallback. */
#ifndef PORTWAY_DATAPATH_H
#define PORTWAY_DATAPATH_H

#include <linux/types.h>

/* Kernel attach types for tcx (Linux 6.6+), absent from older uapi headers. */
#define PORTWAY_BPF_TCX_INGRESS 46
#define PORTWAY_BPF_TCX_EGRESS 47

/// Starts capturing libbpf's log (including verifier logs) into an internal buffer, replacing
/// any earlier capture. Not thread-safe: callers serialize loads.
void portway_dp_log_capture_start(void);
/// Stops capturing and restores libbpf's default printer.
void portway_dp_log_capture_stop(void);
/// The text captured since the last start (the last 64 KiB if more was logged).
const char *portway_dp_log_captured(void);

/// Creates a tcx link of prog_fd on ifindex (ingress != 0: TCX_INGRESS, else TCX_EGRESS).
/// Returns the link fd or -errno.
int portway_dp_tcx_link_create(int prog_fd, int ifindex, int ingress);
/// Replaces the program of an existing link. Returns 0 or -errno.
int portway_dp_link_update(int link_fd, int prog_fd);
/// Reads a link's program id and, for tcx links, the ifindex and attach type it is attached to
/// (ifindex 0 once the device is gone). Returns 0 or -errno.
int portway_dp_link_info(int link_fd, __u32 *prog_id, __u32 *ifindex, __u32 *attach_type);

/// Attaches prog_fd to the clsact hook of ifindex (created if needed), handle 1, priority 1,
/// replacing what is there. Returns 0 or -errno.
int portway_dp_tc_attach(int prog_fd, int ifindex, int ingress);
/// Removes Portway's clsact filter (handle 1, priority 1). Returns 0, -ENOENT or -errno.
int portway_dp_tc_detach(int ifindex, int ingress);
/// The program id of Portway's clsact filter, 0 if none, or -errno.
int portway_dp_tc_query(int ifindex, int ingress);

/// Reads a map's type, key/value sizes, max entries and flags. Returns 0 or -errno.
int portway_dp_map_info(int map_fd, __u32 *type, __u32 *key_size, __u32 *value_size, __u32 *max_entries,
                        __u32 *map_flags);
/// Reads a program's id. Returns 0 or -errno.
int portway_dp_prog_id(int prog_fd, __u32 *id);

/// 1 if path is on a BPF filesystem (bpffs), 0 if not, -errno if it cannot be examined.
int portway_dp_is_bpffs(const char *path);

/// Moves the calling thread into the network namespace at path (e.g. /var/run/netns/NAME).
/// Returns 0 or -errno.
int portway_dp_enter_netns(const char *path);

#endif

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
/// Creates a cgroup link of prog_fd on the cgroup directory fd with a kernel attach type
/// (BPF_CGROUP_INET4_CONNECT, ...). Returns the link fd or -errno.
int portway_dp_cgroup_link_create(int prog_fd, int cgroup_fd, __u32 attach_type);
/// Creates a network-namespace link of prog_fd (attach type BPF_SK_LOOKUP) on the calling thread's
/// network namespace. Returns the link fd or -errno.
int portway_dp_netns_link_create(int prog_fd, __u32 attach_type);
/// The inode of the calling thread's network namespace (what a netns link reports). Returns 0 or -errno.
int portway_dp_netns_inode(__u64 *ino);
/// 1 if the kernel offers sk_lookup programs with bpf_sk_assign and SOCKHASH maps, 0 if not.
int portway_dp_have_sk_lookup(void);
/// Replaces the program of an existing link. Returns 0 or -errno.
int portway_dp_link_update(int link_fd, int prog_fd);
/// Reads a link's program id and, for tcx links, the ifindex and attach type it is attached to
/// (ifindex 0 once the device is gone). Returns 0 or -errno.
int portway_dp_link_info(int link_fd, __u32 *prog_id, __u32 *ifindex, __u32 *attach_type);
/// Where a tcx, cgroup or netns link is attached: its program id, `where` = the ifindex (tcx; 0
/// once the device is gone), the cgroup id (cgroup) or the namespace's inode (netns), and the attach type. Other link types report
/// where = 0 and attach_type = 0. Returns 0 or -errno.
int portway_dp_link_target(int link_fd, __u32 *prog_id, __u64 *where, __u32 *attach_type);

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

/// Installs, in the calling thread's network namespace, the policy route that delivers packets
/// marked for the L7 proxy locally: `ip rule add fwmark MARK/MASK lookup TABLE prio PRIO` and
/// `ip route add local 0.0.0.0/0 dev lo table TABLE` (values from portway_maps.h). Existing
/// entries are kept. Returns 0 or -errno.
int portway_dp_proxy_route_install(void);

/// Removes what portway_dp_proxy_route_install added (the rule and the table's route), in the
/// calling thread's network namespace. Missing entries are fine. Returns 0 or -errno.
int portway_dp_proxy_route_remove(void);
/// 1 if the calling thread's network namespace has a policy rule to PW_PROXY_ROUTE_TABLE, 0 if
/// not, -errno on failure.
int portway_dp_proxy_route_present(void);

/// 1 if the kernel offers bpf_redirect_neigh and bpf_fib_lookup to tc programs, 0 if not.
int portway_dp_have_host_routing(void);

/// Reads the load-time configuration (the .rodata value, struct pw_dp_config) of a loaded program
/// by its id into out (size bytes). Returns 0, -ENOENT when the program has no such map, or -errno.
int portway_dp_prog_config(__u32 prog_id, void *out, __u32 size);

/// Receives one datagram on a UDP socket with IP_RECVORIGDSTADDR set: the payload (up to len
/// bytes), the sender and the destination it was addressed to (addresses and ports in network
/// order). Returns the payload length or -errno (-ENOMSG: no original destination came with it).
int portway_dp_recv_origdst(int fd, void *buf, __u32 len, __u32 *src_addr, __u16 *src_port, __u32 *dst_addr,
                            __u16 *dst_port);

/// 1 if path is on a cgroup v2 filesystem, 0 if not, -errno if it cannot be examined.
int portway_dp_is_cgroup2(const char *path);

/// The cookie of the calling thread's network namespace (SO_NETNS_COOKIE, Linux 5.14+), the
/// value bpf_get_netns_cookie() returns for sockets there. Returns 0 or -errno.
int portway_dp_netns_cookie(__u64 *cookie);

/// 1 if path is on a BPF filesystem (bpffs), 0 if not, -errno if it cannot be examined.
int portway_dp_is_bpffs(const char *path);

/// Moves the calling thread into the network namespace at path (e.g. /var/run/netns/NAME).
/// Returns 0 or -errno.
int portway_dp_enter_netns(const char *path);

/// One network device of the calling thread's namespace, as rtnetlink describes it.
struct pw_link_info {
    int ifindex;
    char name[16];
    char kind[16];            /* IFLA_INFO_KIND: "veth", "bridge", ... ("" for plain devices) */
    __u32 master;             /* the ifindex of the bridge it is a port of, 0 if none */
    int peer_in_other_netns;  /* IFLA_LINK_NETNSID present: a veth whose peer is in another namespace */
    int up;
};

/// Lists the links of the calling thread's network namespace into out (at most max). Returns the
/// number listed or -errno.
int portway_nl_list_links(struct pw_link_info *out, int max);
/// A netlink socket subscribed to link changes (RTMGRP_LINK), non-blocking. Returns the fd or -errno.
int portway_nl_link_events_open(void);
/// Waits up to timeout_ms for link changes on fd and drains them. Returns how many messages were
/// read (0: none within the timeout) or -errno.
int portway_nl_link_events_wait(int fd, int timeout_ms);

#endif

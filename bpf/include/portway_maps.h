/* The one definition of Portway's BPF map layouts.
 *
 * Included by the BPF programs (bpf/progs/, compiled with clang -target bpf) and by the Swift
 * C shim module CPortwayBPF, so Swift and the datapath read and write the very same structs.
 * Byte order: addresses, ports and rev_nat_index in network order; slot, backend_id and counts in
 * host order (as in Cilium's lb4 maps).
 */
#ifndef PORTWAY_MAPS_H
#define PORTWAY_MAPS_H

#include <linux/types.h>

/* Map names, as pinned under the bpffs directory (--bpffs, default /sys/fs/bpf/portway). */
#define PW_MAP_SERVICES   "pw_lb4_services"
#define PW_MAP_BACKENDS   "pw_lb4_backends"
#define PW_MAP_REVNAT     "pw_lb4_reverse_nat"
#define PW_MAP_AFFINITY   "pw_lb4_affinity"
#define PW_MAP_CT         "pw_ct4"
#define PW_MAP_SNAT       "pw_snat4"
#define PW_MAP_SOCK_REVNAT "pw_sock4_revnat" /* socket-LB: (socket, backend) -> frontend; created by the loader */
#define PW_MAP_L7_LISTENERS "pw_l7_listeners" /* L7LB: proxy port -> the proxy's listener (SOCKHASH); created by the loader */

/* Default sizes (overridable by agent flags; the BPF object is resized before load). The services
 * and backends maps hold a cluster of 10,000 Services x 10 endpoints (110,002 entries) with room
 * to spare, for about 46 MiB of kernel memory; see docs/OPERATING.md for the arithmetic. */
#define PW_DEFAULT_SERVICE_MAP_SIZE  262144
#define PW_DEFAULT_BACKEND_MAP_SIZE  262144
#define PW_DEFAULT_REVNAT_MAP_SIZE   65536
#define PW_DEFAULT_AFFINITY_MAP_SIZE 65536
#define PW_DEFAULT_CT_MAP_SIZE       262144
#define PW_DEFAULT_SNAT_MAP_SIZE     262144
#define PW_DEFAULT_SOCK_REVNAT_MAP_SIZE 65536
#define PW_DEFAULT_L7_LISTENERS_MAP_SIZE 4096

/* Service flags (struct pw_lb4_service.flags). */
#define PW_SVC_FLAG_CLUSTER_IP     0x01
#define PW_SVC_FLAG_NODEPORT       0x02
#define PW_SVC_FLAG_LOADBALANCER   0x04
#define PW_SVC_FLAG_EXTERNAL_IP    0x08
#define PW_SVC_FLAG_NON_ROUTABLE   0x10
#define PW_SVC_FLAG_EXT_LOCAL      0x20 /* externalTrafficPolicy: Local */
#define PW_SVC_FLAG_INT_LOCAL      0x40 /* internalTrafficPolicy: Local */
#define PW_SVC_FLAG_AFFINITY       0x80 /* sessionAffinity: ClientIP */
/* Service flags2 (struct pw_lb4_service.flags2). */
#define PW_SVC_FLAG2_L7LB          0x01 /* redirect to the local L7 proxy port */
#define PW_SVC_FLAG2_TWO_SCOPES    0x02 /* reserved: separate internal-scope entries exist */

/* Frontend scope (struct pw_lb4_key.scope). */
#define PW_SCOPE_EXTERNAL 0
#define PW_SCOPE_INTERNAL 1

/* Backend states (struct pw_lb4_backend.state). */
#define PW_BACKEND_ACTIVE      0
#define PW_BACKEND_TERMINATING 1
#define PW_BACKEND_QUARANTINED 2
#define PW_BACKEND_MAINTENANCE 3

/* IP protocol numbers used in keys. */
#define PW_PROTO_TCP  6
#define PW_PROTO_UDP  17
#define PW_PROTO_SCTP 132

/* Service map key: slot 0 is the master entry of a frontend, slots 1..count its backends. */
struct pw_lb4_key {
    __be32 address;
    __be16 dport;
    __u16 backend_slot;
    __u8 proto;
    __u8 scope;
    __u8 pad[2];
};

/* Service map value. In the master (slot 0): count backends, rev_nat_index, flags and, in the
 * union, the session affinity timeout or the L7LB proxy port. In slots 1..N: backend_id. */
struct pw_lb4_service {
    union {
        __u32 backend_id;
        __u32 affinity_timeout;
        __u32 l7_lb_proxy_port; /* host order */
    };
    __u16 count;
    __be16 rev_nat_index;
    __u8 flags;
    __u8 flags2;
    __u16 qcount; /* number of terminating backends after the active ones */
};

/* Backend map: key is the backend_id (__u32, host order). */
struct pw_lb4_backend {
    __be32 address;
    __be16 port;
    __u8 proto;
    __u8 state;
    __u16 pad0;
    __u8 zone;
    __u8 pad1;
};

/* Reverse NAT map: key is rev_nat_index (__be16). */
struct pw_lb4_reverse_nat {
    __be32 address;
    __be16 port;
    __u16 pad;
};

/* Session affinity: the backend last chosen for a client of a service. */
struct pw_lb4_affinity_key {
    __be32 client_ip;
    __be16 rev_nat_index;
    __u16 pad;
};

struct pw_lb4_affinity_val {
    __u64 last_used_ns;
    __u32 backend_id;
    __u32 pad;
};

/* Connection tracking: the flow tuple as seen on the wire. */
struct pw_ct4_key {
    __be32 saddr;
    __be32 daddr;
    __be16 sport;
    __be16 dport;
    __u8 proto;
    __u8 dir; /* 0: original (client to frontend), 1: reply (backend to client) */
    __u16 pad;
};

struct pw_ct4_val {
    __u64 last_seen_ns;
    __u32 backend_id;
    __be16 rev_nat_index;
    __u16 flags;
    __be32 frontend_addr; /* what the client dialled */
    __be16 frontend_port;
    __be16 snat_port;     /* != 0 when the flow was source-NATed to reach a remote backend */
    __be32 snat_addr;
    __be32 client_addr;
    __be16 client_port;
    __u16 pad;
    /* Where the flow was sent, so an established flow survives its backend's removal from the
     * services and backends maps (added by the datapath; appended to keep earlier offsets). */
    __be32 backend_addr;
    __be16 backend_port;
    __u16 pad2;
};

/* SNAT table: (node address, node port, backend, proto) -> original client. */
struct pw_snat4_key {
    __be32 addr;
    __be32 peer_addr;
    __be16 port;
    __be16 peer_port;
    __u8 proto;
    __u8 pad[3];
};

struct pw_snat4_val {
    __be32 to_addr;
    __be16 to_port;
    __u16 pad;
    __u64 last_seen_ns;
};

/* Socket-level LB: what a socket's connect/sendmsg was translated to, so recvmsg and
 * getpeername can show the frontend again. Key: the socket cookie and the backend. */
struct pw_sock4_revnat_key {
    __u64 cookie;
    __be32 backend_addr;
    __be16 backend_port;
    __u16 pad;
};

struct pw_sock4_revnat_val {
    __be32 frontend_addr;
    __be16 frontend_port;
    __be16 rev_nat_index;
};

/* The L7 proxy's listening sockets (BPF_MAP_TYPE_SOCKHASH), for the sk_lookup program pw_sk_lookup:
 * key: the proxy port (host order, as pw_lb4_service.l7_lb_proxy_port); value: the socket. The agent
 * writes a listener's file descriptor when the proxy opens the port (user space writes an fd and
 * reads back the socket cookie, both as the 8-byte value); the kernel removes the entry when that
 * socket closes. One socket per port: the others of its SO_REUSEPORT group (a take-over's second
 * agent) are chosen among by the kernel after the program assigns one. */
struct pw_l7_listener_key {
    __u32 proxy_port;
};

/* The datapath's load-time configuration: the one `const volatile` variable of the object
 * (its .rodata), written by the loader before the programs are verified. */
#define PW_CFG_HOST_ROUTING 0x01 /* forward with bpf_fib_lookup + bpf_redirect_neigh/peer */
#define PW_CFG_SOCKET_LB    0x02 /* socket-LB is attached (informational) */
#define PW_CFG_HOST_ROUTING_UNSUPPORTED 0x04 /* host routing was asked for, the kernel lacks it */
#define PW_CFG_SK_LOOKUP    0x08 /* pw_sk_lookup is attached to the node's namespace: a TCP packet for an
                                  * L7LB frontend whose listener is in pw_l7_listeners goes up the stack
                                  * unassigned, and the kernel's own lookup (TIME_WAIT included) finds it */

/* skb->mark set on packets handed to the local L7 proxy, so the policy route
 * (`ip rule fwmark PW_MARK_TO_PROXY/PW_MARK_TO_PROXY_MASK lookup PW_PROXY_ROUTE_TABLE`, with
 * `local 0.0.0.0/0 dev lo` in that table) delivers them locally whatever their destination. */
#define PW_MARK_TO_PROXY      0x0b00
#define PW_MARK_TO_PROXY_MASK 0x0f00
#define PW_PROXY_ROUTE_TABLE  2005
#define PW_PROXY_RULE_PRIO    90

/* Pod-facing devices host routing enters with bpf_redirect_peer (the first ones given). */
#define PW_MAX_PEER_DEVICES 32

struct pw_dp_config {
    __u64 node_netns_cookie; /* the node's network namespace (sockets there reach L7LB via 127.0.0.1) */
    __u32 flags;             /* PW_CFG_* */
    __u32 peer_device_count; /* used entries of peer_ifindex */
    __u32 peer_ifindex[PW_MAX_PEER_DEVICES]; /* --pod-device ifindexes (veths: redirect_peer) */
};

_Static_assert(sizeof(struct pw_lb4_key) == 12, "pw_lb4_key must be 12 bytes");
_Static_assert(sizeof(struct pw_lb4_service) == 12, "pw_lb4_service must be 12 bytes");
_Static_assert(sizeof(struct pw_lb4_backend) == 12, "pw_lb4_backend must be 12 bytes");
_Static_assert(sizeof(struct pw_lb4_reverse_nat) == 8, "pw_lb4_reverse_nat must be 8 bytes");
_Static_assert(sizeof(struct pw_lb4_affinity_key) == 8, "pw_lb4_affinity_key must be 8 bytes");
_Static_assert(sizeof(struct pw_lb4_affinity_val) == 16, "pw_lb4_affinity_val must be 16 bytes");
_Static_assert(sizeof(struct pw_ct4_key) == 16, "pw_ct4_key must be 16 bytes");
_Static_assert(sizeof(struct pw_ct4_val) == 48, "pw_ct4_val must be 48 bytes");
_Static_assert(sizeof(struct pw_snat4_key) == 16, "pw_snat4_key must be 16 bytes");
_Static_assert(sizeof(struct pw_snat4_val) == 16, "pw_snat4_val must be 16 bytes");
_Static_assert(sizeof(struct pw_sock4_revnat_key) == 16, "pw_sock4_revnat_key must be 16 bytes");
_Static_assert(sizeof(struct pw_sock4_revnat_val) == 8, "pw_sock4_revnat_val must be 8 bytes");
_Static_assert(sizeof(struct pw_l7_listener_key) == 4, "pw_l7_listener_key must be 4 bytes");
_Static_assert(sizeof(struct pw_dp_config) == 144, "pw_dp_config must be 144 bytes");

#endif /* PORTWAY_MAPS_H */

/* Private helpers of the tc datapath (bpf/progs/portway_lb.c): map definitions, packet parsing
 * and NAT rewrites. The map layouts themselves come from bpf/include/portway_maps.h. */
#ifndef PORTWAY_LB_H
#define PORTWAY_LB_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "portway_maps.h"

#ifndef AF_INET
#define AF_INET 2
#endif

/* Source ports used when a flow is source-NATed to reach a backend on another node. Kept out of
 * Linux's default ip_local_port_range (32768-60999) so they do not collide with the node's own
 * connections. */
#define PW_SNAT_PORT_MIN 61000
#define PW_SNAT_PORT_MAX 65535
#define PW_SNAT_PORT_TRIES 8

/* A UDP flow whose last packet is older than this picks a backend afresh. */
#define PW_UDP_CT_LIFETIME_NS (60ULL * 1000000000ULL)

#define PW_IP_TTL_OFF (ETH_HLEN + 8)
#define PW_IP_CSUM_OFF (ETH_HLEN + 10)
#define PW_IP_SADDR_OFF (ETH_HLEN + 12)
#define PW_IP_DADDR_OFF (ETH_HLEN + 16)

#define PW_TCP_FLAG_SYN 0x02
#define PW_TCP_FLAG_ACK 0x10

/* The maps, declared exactly as BPFMaps creates and pins them (the loader points each one at its
 * pin under --bpffs and copies max_entries and map_flags from an existing pin before load). */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __type(key, struct pw_lb4_key);
    __type(value, struct pw_lb4_service);
    __uint(max_entries, PW_DEFAULT_SERVICE_MAP_SIZE);
} pw_lb4_services SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __type(key, __u32);
    __type(value, struct pw_lb4_backend);
    __uint(max_entries, PW_DEFAULT_BACKEND_MAP_SIZE);
} pw_lb4_backends SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __type(key, __be16);
    __type(value, struct pw_lb4_reverse_nat);
    __uint(max_entries, PW_DEFAULT_REVNAT_MAP_SIZE);
} pw_lb4_reverse_nat SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __type(key, struct pw_lb4_affinity_key);
    __type(value, struct pw_lb4_affinity_val);
    __uint(max_entries, PW_DEFAULT_AFFINITY_MAP_SIZE);
} pw_lb4_affinity SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __type(key, struct pw_ct4_key);
    __type(value, struct pw_ct4_val);
    __uint(max_entries, PW_DEFAULT_CT_MAP_SIZE);
} pw_ct4 SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __type(key, struct pw_snat4_key);
    __type(value, struct pw_snat4_val);
    __uint(max_entries, PW_DEFAULT_SNAT_MAP_SIZE);
} pw_snat4 SEC(".maps");

/* The proxy's listeners by proxy port, written by the agent (see portway_maps.h). */
struct {
    __uint(type, BPF_MAP_TYPE_SOCKHASH);
    __type(key, struct pw_l7_listener_key);
    __type(value, __u64);
    __uint(max_entries, PW_DEFAULT_L7_LISTENERS_MAP_SIZE);
} pw_l7_listeners SEC(".maps");

/* The parts of an IPv4 TCP/UDP packet the datapath reads. */
struct pw_pkt {
    __be32 saddr;
    __be32 daddr;
    __be16 sport;
    __be16 dport;
    __u16 tot_len;
    __u8 proto;
    __u8 tcp_flags;
    __u32 l4_off;
    __u32 csum_off; /* offset of the L4 checksum field */
};

/* Parses an Ethernet + IPv4 + TCP/UDP packet. Returns 0 when the packet is one the datapath
 * handles; anything else (other protocols, IP options are fine, fragments are not) returns -1 and
 * is passed untouched. */
static __always_inline int pw_parse(struct __sk_buff *skb, struct pw_pkt *p)
{
    struct iphdr ip;
    __be16 ports[2];

    if (skb->protocol != bpf_htons(ETH_P_IP))
        return -1;
    if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0)
        return -1;
    if (ip.version != 4 || ip.ihl < 5)
        return -1;
    /* Non-first fragments carry no ports; first fragments would need reassembly state. */
    if (ip.frag_off & bpf_htons(0x3fff))
        return -1;
    if (ip.protocol != IPPROTO_TCP && ip.protocol != IPPROTO_UDP)
        return -1;
    p->l4_off = ETH_HLEN + ip.ihl * 4;
    if (bpf_skb_load_bytes(skb, p->l4_off, ports, sizeof(ports)) < 0)
        return -1;
    p->saddr = ip.saddr;
    p->daddr = ip.daddr;
    p->sport = ports[0];
    p->dport = ports[1];
    p->proto = ip.protocol;
    p->tot_len = bpf_ntohs(ip.tot_len);
    p->tcp_flags = 0;
    if (ip.protocol == IPPROTO_TCP) {
        p->csum_off = p->l4_off + 16;
        if (bpf_skb_load_bytes(skb, p->l4_off + 13, &p->tcp_flags, 1) < 0)
            return -1;
    } else {
        p->csum_off = p->l4_off + 6;
    }
    return 0;
}

/* Rewrites the IPv4 address at addr_off (source or destination) and fixes both checksums. The
 * L4 checksum covers the address through the pseudo header (BPF_F_PSEUDO_HDR keeps
 * CHECKSUM_PARTIAL packets from veth correct); a UDP checksum of zero stays zero. */
static __always_inline int pw_set_addr(struct __sk_buff *skb, const struct pw_pkt *p, __u32 addr_off,
                                       __be32 from, __be32 to)
{
    __u64 l4flags = BPF_F_PSEUDO_HDR | sizeof(to);

    if (from == to)
        return 0;
    if (p->proto == IPPROTO_UDP)
        l4flags |= BPF_F_MARK_MANGLED_0;
    if (bpf_l4_csum_replace(skb, p->csum_off, from, to, l4flags) < 0)
        return -1;
    if (bpf_l3_csum_replace(skb, PW_IP_CSUM_OFF, from, to, sizeof(to)) < 0)
        return -1;
    return bpf_skb_store_bytes(skb, addr_off, &to, sizeof(to), 0) < 0 ? -1 : 0;
}

/* Rewrites a TCP/UDP port (port_off = l4_off for the source, l4_off + 2 for the destination). */
static __always_inline int pw_set_port(struct __sk_buff *skb, const struct pw_pkt *p, __u32 port_off,
                                       __be16 from, __be16 to)
{
    __u64 l4flags = sizeof(to);

    if (from == to)
        return 0;
    if (p->proto == IPPROTO_UDP)
        l4flags |= BPF_F_MARK_MANGLED_0;
    if (bpf_l4_csum_replace(skb, p->csum_off, from, to, l4flags) < 0)
        return -1;
    return bpf_skb_store_bytes(skb, port_off, &to, sizeof(to), 0) < 0 ? -1 : 0;
}

/* Decrements the IP TTL of a packet the program forwards itself (bpf_redirect_neigh bypasses
 * the stack's forwarding path, which would do it). Returns -1 when the TTL is spent. */
static __always_inline int pw_dec_ttl(struct __sk_buff *skb)
{
    __be16 old_word, new_word; /* TTL and protocol share one 16-bit checksum word */
    __u8 ttl;

    if (bpf_skb_load_bytes(skb, PW_IP_TTL_OFF, &old_word, sizeof(old_word)) < 0)
        return -1;
    ttl = *(__u8 *)&old_word;
    if (ttl <= 1)
        return -1;
    new_word = old_word;
    *(__u8 *)&new_word = ttl - 1;
    if (bpf_l3_csum_replace(skb, PW_IP_CSUM_OFF, old_word, new_word, sizeof(new_word)) < 0)
        return -1;
    return bpf_skb_store_bytes(skb, PW_IP_TTL_OFF, &new_word, sizeof(new_word), 0) < 0 ? -1 : 0;
}

#endif /* PORTWAY_LB_H */

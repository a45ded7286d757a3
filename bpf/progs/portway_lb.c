/* Portway's datapath: tc programs for the node's external devices (pw_ingress / pw_egress) and
 * pod-facing devices (pw_from_pod / pw_to_pod), and cgroup socket hooks (portway_sock.h).
 *
 * pw_ingress: an IPv4 TCP/UDP packet whose (daddr, dport, proto) is a routable external-scope
 *   frontend (nodeIP:nodePort, LoadBalancer IP, external IP) is DNATed to a backend, chosen once
 *   per flow and remembered in pw_ct4. The kernel then routes it (the node forwards). When the
 *   route to the backend leaves through the very device the packet came in on, the backend is on
 *   another node: the source is NATed to the node's address and a port from pw_snat4's range, so
 *   the reply comes back here, as kube-proxy does. Replies to such SNATed flows also arrive on
 *   ingress and are translated back (dst -> client, src -> frontend). Both SNATed directions
 *   carry a node address as source, which the stack would drop as martian on input, so they are
 *   sent straight back out of the same device with bpf_redirect_neigh.
 * pw_egress: replies from backends on this node leave through the external device; their source
 *   is rewritten back to the frontend the client dialled.
 *
 * pw_from_pod / pw_to_pod: the same for traffic entering from pods, where ClusterIPs (and the
 *   internal scope of two-scope frontends) are served too; pw_to_pod translates the replies back
 *   with the reverse-NAT map.
 * L7LB frontends (flags2 L7LB) are never DNATed: the packet is handed to the local proxy socket
 *   on the frontend's proxy port, TPROXY style: TCP through the kernel's own socket lookup with
 *   pw_sk_lookup naming the listener, else (and UDP) with bpf_sk_assign, see pw_to_proxy.
 *
 * Everything else passes untouched (TC_ACT_OK).
 */
#include "portway_lb.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set by the loader before load (the object's only .rodata variable): see struct pw_dp_config. */
const volatile struct pw_dp_config pw_config = {};

/* Picks a backend for a new flow: the affine one when session affinity holds, else a random
 * active backend, else (no active ones) a random terminating one. Returns the backend id or 0. */
static __always_inline __u32 pw_select_backend(const struct pw_lb4_key *master_key,
                                               const struct pw_lb4_service *master, __be32 client,
                                               __u64 now)
{
    struct pw_lb4_key slot_key = *master_key;
    struct pw_lb4_service *slot;
    __u16 slot_nr;

    if (master->flags & PW_SVC_FLAG_AFFINITY) {
        struct pw_lb4_affinity_key ak = {.client_ip = client, .rev_nat_index = master->rev_nat_index};
        struct pw_lb4_affinity_val *av = bpf_map_lookup_elem(&pw_lb4_affinity, &ak);

        if (av && now - av->last_used_ns <= (__u64)master->affinity_timeout * 1000000000ULL &&
            bpf_map_lookup_elem(&pw_lb4_backends, &av->backend_id))
            return av->backend_id;
    }

    if (master->count > 0)
        slot_nr = (__u16)(bpf_get_prandom_u32() % master->count) + 1;
    else if (master->qcount > 0)
        slot_nr = (__u16)(bpf_get_prandom_u32() % master->qcount) + 1;
    else
        return 0;

    slot_key.backend_slot = slot_nr;
    slot = bpf_map_lookup_elem(&pw_lb4_services, &slot_key);
    if (!slot)
        return 0;
    return slot->backend_id;
}

/* Decides whether the backend is behind another node: the FIB sends it out of the device the
 * packet came in on. Also returns the node address to source-NAT with. */
static __always_inline int pw_needs_snat(struct __sk_buff *skb, const struct pw_pkt *p, __be32 backend_addr,
                                         __be16 backend_port, __be32 *snat_addr)
{
    struct bpf_fib_lookup fib = {};
    long rc;

    fib.family = AF_INET;
    fib.l4_protocol = p->proto;
    fib.sport = p->sport;
    fib.dport = backend_port;
    fib.tot_len = p->tot_len;
    fib.ipv4_src = p->saddr;
    fib.ipv4_dst = backend_addr;
    fib.ifindex = skb->ingress_ifindex;

    /* BPF_FIB_LOOKUP_SRC (kernel 6.7+) also yields the preferred source address of the route. */
    rc = bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_SKIP_NEIGH | BPF_FIB_LOOKUP_SRC);
    if (rc < 0) {
        /* Older kernel: plain lookup, SNAT to the address the client dialled. */
        __builtin_memset(&fib, 0, sizeof(fib));
        fib.family = AF_INET;
        fib.l4_protocol = p->proto;
        fib.sport = p->sport;
        fib.dport = backend_port;
        fib.tot_len = p->tot_len;
        fib.ipv4_src = p->saddr;
        fib.ipv4_dst = backend_addr;
        fib.ifindex = skb->ingress_ifindex;
        rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
        fib.ipv4_src = p->daddr;
    }
    if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
        return 0;
    if (fib.ifindex != skb->ingress_ifindex)
        return 0;
    *snat_addr = fib.ipv4_src ? fib.ipv4_src : p->daddr;
    return 1;
}

/* Reserves a source port on snat_addr towards the backend. Returns it (network order) or 0. */
static __always_inline __be16 pw_alloc_snat_port(const struct pw_pkt *p, __be32 snat_addr, __be32 backend_addr,
                                                 __be16 backend_port, __u64 now)
{
    struct pw_snat4_key nk = {
        .addr = snat_addr,
        .peer_addr = backend_addr,
        .peer_port = backend_port,
        .proto = p->proto,
    };
    struct pw_snat4_val nv = {.to_addr = p->saddr, .to_port = p->sport, .last_seen_ns = now};
    int i;

#pragma unroll
    for (i = 0; i < PW_SNAT_PORT_TRIES; i++) {
        __u16 port = PW_SNAT_PORT_MIN + (__u16)(bpf_get_prandom_u32() % (PW_SNAT_PORT_MAX - PW_SNAT_PORT_MIN + 1));

        nk.port = bpf_htons(port);
        if (bpf_map_update_elem(&pw_snat4, &nk, &nv, BPF_NOEXIST) == 0)
            return nk.port;
    }
    return 0;
}

/* Whether host routing may enter this device's peer directly (a --pod-device veth). */
static __always_inline int pw_is_peer_device(__u32 ifindex)
{
    __u32 i;

    for (i = 0; i < PW_MAX_PEER_DEVICES; i++) {
        if (i >= pw_config.peer_device_count)
            break;
        if (pw_config.peer_ifindex[i] == ifindex)
            return 1;
    }
    return 0;
}

/* eBPF host routing: forwards a translated packet (source saddr, destination daddr) itself
 * instead of letting it climb the stack (routing, netfilter FORWARD, neighbour output): a full
 * FIB lookup as the stack would do it; a known neighbour gets its MACs written and a plain
 * bpf_redirect (bpf_redirect_peer straight into the pod when the device is a pod's veth: the
 * packet skips the veth pair's transmit path), an unresolved one bpf_redirect_neigh. Anything else the lookup reports
 * (fragmentation needed, not forwarded, blackhole, local) falls back to the stack. */
static __always_inline int pw_host_route(struct __sk_buff *skb, const struct pw_pkt *p, __be32 saddr, __be32 daddr,
                                         __be16 sport, __be16 dport)
{
    struct bpf_fib_lookup fib = {};
    long rc;

    if (!(pw_config.flags & PW_CFG_HOST_ROUTING))
        return TC_ACT_OK;
    fib.family = AF_INET;
    fib.l4_protocol = p->proto;
    fib.sport = sport;
    fib.dport = dport;
    fib.tot_len = p->tot_len;
    fib.ipv4_src = saddr;
    fib.ipv4_dst = daddr;
    fib.ifindex = skb->ingress_ifindex;
    rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
    if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
        if (pw_dec_ttl(skb) < 0)
            return TC_ACT_OK; /* let the stack send the ICMP time exceeded */
        if (bpf_skb_store_bytes(skb, 0, fib.dmac, ETH_ALEN, 0) < 0 ||
            bpf_skb_store_bytes(skb, ETH_ALEN, fib.smac, ETH_ALEN, 0) < 0)
            return TC_ACT_SHOT;
        if (pw_is_peer_device(fib.ifindex))
            return bpf_redirect_peer(fib.ifindex, 0);
        return bpf_redirect(fib.ifindex, 0);
    }
    if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
        if (pw_dec_ttl(skb) < 0)
            return TC_ACT_OK;
        return bpf_redirect_neigh(fib.ifindex, NULL, 0, 0);
    }
    return TC_ACT_OK;
}

/* Applies a flow's translation to a client -> frontend packet. */
static __always_inline int pw_apply_forward(struct __sk_buff *skb, const struct pw_pkt *p, const struct pw_ct4_val *v)
{
    if (pw_set_addr(skb, p, PW_IP_DADDR_OFF, p->daddr, v->backend_addr) < 0)
        return TC_ACT_SHOT;
    if (pw_set_port(skb, p, p->l4_off + 2, p->dport, v->backend_port) < 0)
        return TC_ACT_SHOT;
    if (v->snat_port) {
        if (pw_set_addr(skb, p, PW_IP_SADDR_OFF, p->saddr, v->snat_addr) < 0)
            return TC_ACT_SHOT;
        if (pw_set_port(skb, p, p->l4_off, p->sport, v->snat_port) < 0 || pw_dec_ttl(skb) < 0)
            return TC_ACT_SHOT;
        /* The source is now the node's own address: the stack would drop it as a martian on
         * input, so send it straight back out (SNAT is only chosen when the route to the backend
         * leaves through this device). */
        return bpf_redirect_neigh(skb->ifindex, NULL, 0, 0);
    }
    return pw_host_route(skb, p, p->saddr, v->backend_addr, p->sport, v->backend_port);
}

static __always_inline __sum16 pw_csum_fold(__u64 csum)
{
    csum = (csum & 0xffff) + (csum >> 16);
    csum = (csum & 0xffff) + (csum >> 16);
    csum = (csum & 0xffff) + (csum >> 16);
    return (__sum16)~csum;
}

/* Answers a TCP packet for an L7LB frontend nobody listens for with a reset, built in place and
 * sent back out of the device it came in on. The kernel cannot do it: the frontend (a ClusterIP,
 * a LoadBalancer IP) is not a local address, so its own reset would not be routable. RFC 9293:
 * with an ACK the reset takes its sequence number from it, else it acknowledges the segment. */
static __always_inline int pw_reply_reset(struct __sk_buff *skb, const struct pw_pkt *p)
{
    struct {
        __be32 saddr;
        __be32 daddr;
        __u8 zero;
        __u8 proto;
        __be16 len;
    } pseudo = {};
    struct ethhdr eth;
    struct iphdr ip = {};
    struct tcphdr in, rst = {};
    __u8 mac[ETH_ALEN];
    __u32 payload;
    __u64 csum;

    if (p->l4_off != ETH_HLEN + sizeof(struct iphdr))
        return TC_ACT_SHOT; /* IP options: not worth a reset, drop */
    if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)) < 0 || bpf_skb_load_bytes(skb, p->l4_off, &in, sizeof(in)) < 0)
        return TC_ACT_SHOT;
    if (in.rst)
        return TC_ACT_SHOT;
    payload = p->tot_len - sizeof(struct iphdr) - in.doff * 4;
    rst.source = in.dest;
    rst.dest = in.source;
    rst.doff = 5;
    rst.rst = 1;
    if (in.ack) {
        rst.seq = in.ack_seq;
    } else {
        rst.ack = 1;
        rst.ack_seq = bpf_htonl(bpf_ntohl(in.seq) + payload + in.syn + in.fin);
    }
    ip.version = 4;
    ip.ihl = 5;
    ip.tot_len = bpf_htons(sizeof(ip) + sizeof(rst));
    ip.frag_off = bpf_htons(0x4000); /* DF */
    ip.ttl = 64;
    ip.protocol = IPPROTO_TCP;
    ip.saddr = p->daddr;
    ip.daddr = p->saddr;
    ip.check = pw_csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)&ip, sizeof(ip), 0));
    pseudo.saddr = ip.saddr;
    pseudo.daddr = ip.daddr;
    pseudo.proto = IPPROTO_TCP;
    pseudo.len = bpf_htons(sizeof(rst));
    csum = bpf_csum_diff(NULL, 0, (__be32 *)&pseudo, sizeof(pseudo), 0);
    rst.check = pw_csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)&rst, sizeof(rst), (__u32)csum));
    __builtin_memcpy(mac, eth.h_dest, ETH_ALEN);
    __builtin_memcpy(eth.h_dest, eth.h_source, ETH_ALEN);
    __builtin_memcpy(eth.h_source, mac, ETH_ALEN);

    if (bpf_skb_change_tail(skb, ETH_HLEN + sizeof(ip) + sizeof(rst), 0) < 0 ||
        bpf_skb_store_bytes(skb, 0, &eth, sizeof(eth), 0) < 0 ||
        bpf_skb_store_bytes(skb, ETH_HLEN, &ip, sizeof(ip), 0) < 0 ||
        bpf_skb_store_bytes(skb, ETH_HLEN + sizeof(ip), &rst, sizeof(rst), 0) < 0)
        return TC_ACT_SHOT;
    return bpf_redirect(skb->ifindex, 0);
}

/* The proxy's listener on proxy_port as registered in pw_l7_listeners (a new reference to
 * release), or NULL. */
static __always_inline struct bpf_sock *pw_proxy_listener(__u32 proxy_port)
{
    struct pw_l7_listener_key k = {.proxy_port = proxy_port};

    return bpf_map_lookup_elem(&pw_l7_listeners, &k);
}

static __always_inline int pw_proxy_registered(__u32 proxy_port)
{
    struct bpf_sock *sk = pw_proxy_listener(proxy_port);

    if (!sk)
        return 0;
    bpf_sk_release(sk);
    return 1;
}

/* Hands a packet for an L7LB frontend to the local proxy, TPROXY style. TCP, when pw_sk_lookup
 * is attached and the proxy registered its listener: marked and passed up (see below). Otherwise
 * the socket of this connection if the proxy accepted it already, else the listener on proxy_port
 * (bound with IP_TRANSPARENT), is assigned to the packet with bpf_sk_assign; the addresses stay as the client
 * sent them, so the proxy's accepted socket has the client as peer and the frontend as local
 * address. The mark selects the policy route that delivers any destination locally. Without a
 * listener, a TCP SYN is dropped: the proxy is restarting (a frontend is L7LB only while an agent
 * programs it), and the client's SYN retransmission (1 s, then 3 s) reaches the next agent, so a
 * restart or a SIGKILL refuses no connection; any other TCP segment of a connection the proxy no
 * longer has gets a reset at once (pw_reply_reset). UDP is delivered locally all the same, where
 * no socket wants it (an ICMP port unreachable only when the frontend is a node address). */
static __always_inline int pw_to_proxy(struct __sk_buff *skb, const struct pw_pkt *p, __u32 proxy_port)
{
    struct bpf_sock_tuple t = {};
    struct bpf_sock *sk;
    long rc;

    /* With pw_sk_lookup attached and the proxy's listener registered, TCP goes up the stack
     * unassigned, only marked for local delivery: the kernel's own lookup finds the connection's
     * socket, and for a SYN that meets the TIME_WAIT socket of a reused client port it recycles
     * that socket and asks for a listener, which pw_sk_lookup names. (A SYN assigned to the
     * listener here skips that: its request is dropped as a duplicate of the TIME_WAIT socket, for
     * as long as that lives.) Not registered (an older agent, a take-over's gap): as below. */
    if (p->proto == IPPROTO_TCP && (pw_config.flags & PW_CFG_SK_LOOKUP) && pw_proxy_registered(proxy_port)) {
        skb->mark = (skb->mark & ~PW_MARK_TO_PROXY_MASK) | PW_MARK_TO_PROXY;
        return TC_ACT_OK;
    }
    t.ipv4.saddr = p->saddr;
    t.ipv4.daddr = p->daddr;
    t.ipv4.sport = p->sport;
    t.ipv4.dport = p->dport;
    if (p->proto == IPPROTO_TCP) {
        sk = bpf_skc_lookup_tcp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
        if (sk && (sk->state == BPF_TCP_LISTEN || sk->state == BPF_TCP_TIME_WAIT)) {
            bpf_sk_release(sk);
            sk = NULL;
        }
        if (!sk) {
            __builtin_memset(&t, 0, sizeof(t));
            t.ipv4.dport = bpf_htons((__u16)proxy_port);
            sk = bpf_skc_lookup_tcp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
            if (sk && sk->state != BPF_TCP_LISTEN) {
                bpf_sk_release(sk);
                sk = NULL;
            }
        }
    } else {
        sk = bpf_sk_lookup_udp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
        if (sk && sk->dst_port == 0) { /* unconnected: not this flow's own socket */
            bpf_sk_release(sk);
            sk = NULL;
        }
        if (!sk) {
            __builtin_memset(&t, 0, sizeof(t));
            t.ipv4.dport = bpf_htons((__u16)proxy_port);
            sk = (struct bpf_sock *)bpf_sk_lookup_udp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
        }
    }
    if (!sk && p->proto == IPPROTO_TCP) {
        if ((p->tcp_flags & (PW_TCP_FLAG_SYN | PW_TCP_FLAG_ACK)) == PW_TCP_FLAG_SYN)
            return TC_ACT_SHOT;
        return pw_reply_reset(skb, p);
    }
    skb->mark = (skb->mark & ~PW_MARK_TO_PROXY_MASK) | PW_MARK_TO_PROXY;
    if (!sk)
        return TC_ACT_OK;
    rc = bpf_sk_assign(skb, sk, 0);
    bpf_sk_release(sk);
    if (rc == 0)
        return TC_ACT_OK;
    /* The socket is going away (a proxy killed or stopping while a handshake or a connection was
     * still in its queue): a SYN waits for the next proxy (retransmission), any other segment
     * gets a reset, so the client learns at once instead of retransmitting into nothing. */
    if (p->proto == IPPROTO_TCP && (p->tcp_flags & (PW_TCP_FLAG_SYN | PW_TCP_FLAG_ACK)) != PW_TCP_FLAG_SYN)
        return pw_reply_reset(skb, p);
    return TC_ACT_SHOT;
}

/* The master entry of the frontend a packet is addressed to, as seen from where it entered:
 * from outside only routable (external-scope) frontends; from pods every frontend, in the
 * internal scope when the frontend has two. */
static __always_inline struct pw_lb4_service *pw_lookup_master(const struct pw_pkt *p, struct pw_lb4_key *mk, int from_pod)
{
    struct pw_lb4_service *master;

    mk->address = p->daddr;
    mk->dport = p->dport;
    mk->backend_slot = 0;
    mk->proto = p->proto;
    mk->scope = PW_SCOPE_EXTERNAL;
    master = bpf_map_lookup_elem(&pw_lb4_services, mk);
    if (!master)
        return NULL;
    if (!from_pod)
        return (master->flags & PW_SVC_FLAG_NON_ROUTABLE) ? NULL : master;
    if (master->flags2 & PW_SVC_FLAG2_TWO_SCOPES) {
        mk->scope = PW_SCOPE_INTERNAL;
        return bpf_map_lookup_elem(&pw_lb4_services, mk);
    }
    return master;
}

/* A new flow to a frontend: choose the backend, decide SNAT, record CT (both directions) and
 * affinity, then translate. */
static __always_inline int pw_new_flow(struct __sk_buff *skb, const struct pw_pkt *p, const struct pw_ct4_key *fk,
                                       const struct pw_lb4_key *master_key, const struct pw_lb4_service *master, __u64 now)
{
    struct pw_lb4_key mk = *master_key;
    struct pw_lb4_service m;
    struct pw_lb4_backend *be;
    struct pw_ct4_val v = {};
    struct pw_ct4_key rk = {};
    __u32 backend_id;
    __be32 snat_addr = 0;

    m = *master;
    backend_id = pw_select_backend(&mk, &m, p->saddr, now);
    if (!backend_id)
        return TC_ACT_SHOT; /* no endpoints (incl. Local without a local backend): drop, like kube-proxy */
    be = bpf_map_lookup_elem(&pw_lb4_backends, &backend_id);
    if (!be)
        return TC_ACT_SHOT;

    v.last_seen_ns = now;
    v.backend_id = backend_id;
    v.rev_nat_index = m.rev_nat_index;
    v.frontend_addr = p->daddr;
    v.frontend_port = p->dport;
    v.client_addr = p->saddr;
    v.client_port = p->sport;
    v.backend_addr = be->address;
    v.backend_port = be->port ? be->port : p->dport;

    rk.saddr = v.backend_addr;
    rk.sport = v.backend_port;
    rk.proto = p->proto;
    rk.dir = 1;
    if (pw_needs_snat(skb, p, v.backend_addr, v.backend_port, &snat_addr)) {
        v.snat_addr = snat_addr;
        v.snat_port = pw_alloc_snat_port(p, snat_addr, v.backend_addr, v.backend_port, now);
        if (!v.snat_port)
            return TC_ACT_SHOT;
        rk.daddr = snat_addr;
        rk.dport = v.snat_port;
    } else {
        rk.daddr = p->saddr;
        rk.dport = p->sport;
    }

    if (bpf_map_update_elem(&pw_ct4, &rk, &v, BPF_ANY) < 0)
        return TC_ACT_SHOT;
    if (bpf_map_update_elem(&pw_ct4, fk, &v, BPF_ANY) < 0)
        return TC_ACT_SHOT;
    if (m.flags & PW_SVC_FLAG_AFFINITY) {
        struct pw_lb4_affinity_key ak = {.client_ip = p->saddr, .rev_nat_index = m.rev_nat_index};
        struct pw_lb4_affinity_val av = {.last_used_ns = now, .backend_id = backend_id};

        bpf_map_update_elem(&pw_lb4_affinity, &ak, &av, BPF_ANY);
    }
    return pw_apply_forward(skb, p, &v);
}

/* Ingress of an external (from_pod = 0) or pod-facing (from_pod = 1) device. */
static __always_inline int pw_ingress_common(struct __sk_buff *skb, int from_pod)
{
    struct pw_pkt p;
    struct pw_lb4_key mk = {};
    struct pw_lb4_service *master;
    struct pw_ct4_key key = {};
    struct pw_ct4_val *ct;
    struct pw_ct4_val v;
    __u64 now;

    if (pw_parse(skb, &p) < 0)
        return TC_ACT_OK;
    now = bpf_ktime_get_ns();

    key.saddr = p.saddr;
    key.daddr = p.daddr;
    key.sport = p.sport;
    key.dport = p.dport;
    key.proto = p.proto;

    /* A reply to a flow we source-NATed towards a remote backend. */
    key.dir = 1;
    ct = bpf_map_lookup_elem(&pw_ct4, &key);
    if (ct && ct->snat_port) {
        ct->last_seen_ns = now;
        v = *ct;
        if (pw_set_addr(skb, &p, PW_IP_DADDR_OFF, p.daddr, v.client_addr) < 0 ||
            pw_set_port(skb, &p, p.l4_off + 2, p.dport, v.client_port) < 0 ||
            pw_set_addr(skb, &p, PW_IP_SADDR_OFF, p.saddr, v.frontend_addr) < 0 ||
            pw_set_port(skb, &p, p.l4_off, p.sport, v.frontend_port) < 0 || pw_dec_ttl(skb) < 0)
            return TC_ACT_SHOT;
        /* Source is now the frontend (a node address): forward to the client directly, out of
         * the device the client's flow came in on (it came in here too). */
        return bpf_redirect_neigh(skb->ifindex, NULL, 0, 0);
    }

    /* With host routing, replies of flows to backends reached without SNAT are translated back
     * where they enter (a backend's device, or the external device for a backend behind another
     * node) and forwarded from here; without it the stack forwards them and egress translates. */
    if (ct && (pw_config.flags & PW_CFG_HOST_ROUTING)) {
        struct pw_lb4_reverse_nat *rn = bpf_map_lookup_elem(&pw_lb4_reverse_nat, &ct->rev_nat_index);
        __be32 frontend_addr = ct->frontend_addr;
        __be16 frontend_port = ct->frontend_port;

        ct->last_seen_ns = now;
        if (rn && rn->address) {
            frontend_addr = rn->address;
            frontend_port = rn->port;
        }
        if (pw_set_addr(skb, &p, PW_IP_SADDR_OFF, p.saddr, frontend_addr) < 0 ||
            pw_set_port(skb, &p, p.l4_off, p.sport, frontend_port) < 0)
            return TC_ACT_SHOT;
        return pw_host_route(skb, &p, frontend_addr, p.daddr, frontend_port, p.dport);
    }

    /* A packet of a known flow keeps its backend, even one since removed from the service. A
     * TCP SYN starts a new flow (the client may reuse a port), and a UDP flow whose backend is
     * gone or which has been idle too long picks again. */
    key.dir = 0;
    ct = bpf_map_lookup_elem(&pw_ct4, &key);
    if (ct) {
        int fresh = 1;

        if (p.proto == IPPROTO_TCP)
            fresh = (p.tcp_flags & (PW_TCP_FLAG_SYN | PW_TCP_FLAG_ACK)) == PW_TCP_FLAG_SYN;
        else
            fresh = now - ct->last_seen_ns > PW_UDP_CT_LIFETIME_NS ||
                    !bpf_map_lookup_elem(&pw_lb4_backends, &ct->backend_id);
        if (!fresh) {
            ct->last_seen_ns = now;
            v = *ct;
            return pw_apply_forward(skb, &p, &v);
        }
    }
    master = pw_lookup_master(&p, &mk, from_pod);
    if (!master)
        return TC_ACT_OK; /* not a frontend (served here) */
    /* L7LB frontends go to the local proxy, even with no backends (the proxy picks them). */
    if (master->flags2 & PW_SVC_FLAG2_L7LB)
        return pw_to_proxy(skb, &p, master->l7_lb_proxy_port);
    return pw_new_flow(skb, &p, &key, &mk, master, now);
}

SEC("tc")
int pw_ingress(struct __sk_buff *skb)
{
    return pw_ingress_common(skb, 0);
}

SEC("tc")
int pw_from_pod(struct __sk_buff *skb)
{
    return pw_ingress_common(skb, 1);
}

/* Egress: replies from backends of flows DNATed here get their source back to the frontend,
 * read from the reverse-NAT map (the CT entry's copy when the frontend is gone meanwhile). */
static __always_inline int pw_egress_common(struct __sk_buff *skb)
{
    struct pw_pkt p;
    struct pw_ct4_key key = {};
    struct pw_ct4_val *ct;
    struct pw_lb4_reverse_nat *rn;
    __be32 frontend_addr;
    __be16 frontend_port;

    if (pw_parse(skb, &p) < 0)
        return TC_ACT_OK;
    key.saddr = p.saddr;
    key.daddr = p.daddr;
    key.sport = p.sport;
    key.dport = p.dport;
    key.proto = p.proto;
    key.dir = 1;
    ct = bpf_map_lookup_elem(&pw_ct4, &key);
    /* Only replies of flows to backends on this node; SNATed replies were handled on ingress. */
    if (!ct || ct->snat_port)
        return TC_ACT_OK;
    frontend_addr = ct->frontend_addr;
    frontend_port = ct->frontend_port;
    rn = bpf_map_lookup_elem(&pw_lb4_reverse_nat, &ct->rev_nat_index);
    if (rn && rn->address) {
        frontend_addr = rn->address;
        frontend_port = rn->port;
    }
    if (pw_set_addr(skb, &p, PW_IP_SADDR_OFF, p.saddr, frontend_addr) < 0 ||
        pw_set_port(skb, &p, p.l4_off, p.sport, frontend_port) < 0)
        return TC_ACT_SHOT;
    return TC_ACT_OK;
}

SEC("tc")
int pw_egress(struct __sk_buff *skb)
{
    return pw_egress_common(skb);
}

SEC("tc")
int pw_to_pod(struct __sk_buff *skb)
{
    return pw_egress_common(skb);
}

/* sk_lookup, attached to the node's network namespace (a netns link): the kernel's listener
 * lookup for a TCP connection to an L7LB frontend finds the proxy's listener on the frontend's
 * proxy port (pw_l7_listeners), TPROXY style, instead of the nothing that listens on the
 * frontend's own address and port. It runs for connections pw_to_proxy passed up unassigned (a
 * ClusterIP or LoadBalancer IP is delivered locally by its mark) and for those to a node address
 * from anywhere in the namespace (the node's own processes included); established connections
 * and the rest never reach it. Within the listener's SO_REUSEPORT group (a take-over's two agents)
 * the kernel chooses afterwards. */
SEC("sk_lookup")
int pw_sk_lookup(struct bpf_sk_lookup *ctx)
{
    struct pw_lb4_key mk = {};
    struct pw_lb4_service *master;
    struct bpf_sock *sk;

    if (ctx->family != AF_INET || ctx->protocol != IPPROTO_TCP)
        return SK_PASS;
    mk.address = ctx->local_ip4;
    mk.dport = bpf_htons((__u16)ctx->local_port);
    mk.proto = IPPROTO_TCP;
    mk.scope = PW_SCOPE_EXTERNAL;
    master = bpf_map_lookup_elem(&pw_lb4_services, &mk);
    if (master && !(master->flags2 & PW_SVC_FLAG2_L7LB) && (master->flags2 & PW_SVC_FLAG2_TWO_SCOPES)) {
        mk.scope = PW_SCOPE_INTERNAL;
        master = bpf_map_lookup_elem(&pw_lb4_services, &mk);
    }
    if (!master || !(master->flags2 & PW_SVC_FLAG2_L7LB))
        return SK_PASS;
    sk = pw_proxy_listener(master->l7_lb_proxy_port);
    if (!sk)
        return SK_PASS; /* no proxy listening: the regular lookup (a reset) */
    bpf_sk_assign(ctx, sk, 0);
    bpf_sk_release(sk);
    return SK_PASS;
}

#include "portway_sock.h"

/* Portway's NodePort datapath: two tc programs for the node's external device(s).
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
 * Everything else passes untouched (TC_ACT_OK).
 */
#include "portway_lb.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

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
    return TC_ACT_OK;
}

/* A new flow to a frontend: choose the backend, decide SNAT, record CT (both directions) and
 * affinity, then translate. */
static __always_inline int pw_new_flow(struct __sk_buff *skb, const struct pw_pkt *p, const struct pw_ct4_key *fk,
                                       __u64 now)
{
    struct pw_lb4_key mk = {
        .address = p->daddr,
        .dport = p->dport,
        .backend_slot = 0,
        .proto = p->proto,
        .scope = PW_SCOPE_EXTERNAL,
    };
    struct pw_lb4_service *master;
    struct pw_lb4_service m;
    struct pw_lb4_backend *be;
    struct pw_ct4_val v = {};
    struct pw_ct4_key rk = {};
    __u32 backend_id;
    __be32 snat_addr = 0;

    master = bpf_map_lookup_elem(&pw_lb4_services, &mk);
    if (!master)
        return TC_ACT_OK; /* not a frontend */
    m = *master;
    /* ClusterIPs and other non-routable frontends are not served at the external device. */
    if (m.flags & PW_SVC_FLAG_NON_ROUTABLE)
        return TC_ACT_OK;
    /* TODO(L7LB issue): hand L7LB frontends to the local proxy port (m.l7_lb_proxy_port). */
    if (m.flags2 & PW_SVC_FLAG2_L7LB)
        return TC_ACT_OK;

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

SEC("tc")
int pw_ingress(struct __sk_buff *skb)
{
    struct pw_pkt p;
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
    return pw_new_flow(skb, &p, &key, now);
}

SEC("tc")
int pw_egress(struct __sk_buff *skb)
{
    struct pw_pkt p;
    struct pw_ct4_key key = {};
    struct pw_ct4_val *ct;
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
    if (pw_set_addr(skb, &p, PW_IP_SADDR_OFF, p.saddr, frontend_addr) < 0 ||
        pw_set_port(skb, &p, p.l4_off, p.sport, frontend_port) < 0)
        return TC_ACT_SHOT;
    return TC_ACT_OK;
}

/* Socket-level load balancing: cgroup v2 socket hooks, included by portway_lb.c (they share its
 * maps and backend selection). A socket connecting (or sending, unconnected UDP) to a frontend is
 * pointed at a backend once, at connect time: its packets then carry the backend address and
 * need no per-packet NAT. pw_sock4_revnat remembers (socket, backend) -> frontend so that
 * getpeername() and the source of received datagrams show the frontend again.
 *
 * L7LB frontends: sockets in the node's network namespace go to 127.0.0.1:<proxy port>; sockets
 * in pod namespaces are left alone, and their packets are handed to the proxy with the frontend
 * intact by pw_from_pod (pw_to_proxy). */
#ifndef PORTWAY_SOCK_H
#define PORTWAY_SOCK_H

#ifndef ECONNREFUSED
#define ECONNREFUSED 111
#endif
#define PW_LOOPBACK_ADDR 0x7f000001

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __type(key, struct pw_sock4_revnat_key);
    __type(value, struct pw_sock4_revnat_val);
    __uint(max_entries, PW_DEFAULT_SOCK_REVNAT_MAP_SIZE);
} pw_sock4_revnat SEC(".maps");

/* Translates the destination of connect()/sendmsg() when it is a frontend. Returns 1 to let the
 * call proceed, 0 to fail it (a frontend without backends: ECONNREFUSED). */
static __always_inline int pw_sock_forward(struct bpf_sock_addr *ctx)
{
    struct pw_lb4_key mk = {};
    struct pw_lb4_service *master;
    struct pw_lb4_service m;
    struct pw_sock4_revnat_key rk = {};
    struct pw_sock4_revnat_val rv = {};
    __be32 backend_addr;
    __be16 backend_port;
    __u64 netns;

    if (ctx->protocol != IPPROTO_TCP && ctx->protocol != IPPROTO_UDP)
        return 1;
    mk.address = ctx->user_ip4;
    mk.dport = (__be16)ctx->user_port;
    mk.proto = (__u8)ctx->protocol;
    mk.scope = PW_SCOPE_EXTERNAL;
    master = bpf_map_lookup_elem(&pw_lb4_services, &mk);
    /* 127.0.0.1:<nodePort> and 0.0.0.0:<nodePort> reach the NodePort's wildcard entry
     * (0.0.0.0:<nodePort>, written beside the node IPs' entries). */
    if (!master && (mk.address == 0 || (bpf_ntohl(mk.address) >> 24) == 127)) {
        mk.address = 0;
        master = bpf_map_lookup_elem(&pw_lb4_services, &mk);
        if (master && !(master->flags & PW_SVC_FLAG_NODEPORT))
            master = NULL;
    }
    if (!master)
        return 1;
    if (master->flags2 & PW_SVC_FLAG2_TWO_SCOPES) {
        mk.scope = PW_SCOPE_INTERNAL;
        master = bpf_map_lookup_elem(&pw_lb4_services, &mk);
        if (!master)
            return 1;
    }
    m = *master;
    netns = bpf_get_netns_cookie(ctx);

    if (m.flags2 & PW_SVC_FLAG2_L7LB) {
        if (netns != pw_config.node_netns_cookie)
            return 1; /* a pod: the tc path hands its packets to the proxy, destination intact */
        backend_addr = bpf_htonl(PW_LOOPBACK_ADDR);
        backend_port = bpf_htons((__u16)m.l7_lb_proxy_port);
    } else {
        /* Session affinity is per network namespace here (the client address is not known yet). */
        __u32 backend_id = pw_select_backend(&mk, &m, (__be32)netns, bpf_ktime_get_ns());
        struct pw_lb4_backend *be;

        be = backend_id ? bpf_map_lookup_elem(&pw_lb4_backends, &backend_id) : NULL;
        if (!be) {
            bpf_set_retval(-ECONNREFUSED);
            return 0;
        }
        backend_addr = be->address;
        backend_port = be->port ? be->port : mk.dport;
        if (m.flags & PW_SVC_FLAG_AFFINITY) {
            struct pw_lb4_affinity_key ak = {.client_ip = (__be32)netns, .rev_nat_index = m.rev_nat_index};
            struct pw_lb4_affinity_val av = {.last_used_ns = bpf_ktime_get_ns(), .backend_id = backend_id};

            bpf_map_update_elem(&pw_lb4_affinity, &ak, &av, BPF_ANY);
        }
    }

    rk.cookie = bpf_get_socket_cookie(ctx);
    rk.backend_addr = backend_addr;
    rk.backend_port = backend_port;
    rv.frontend_addr = ctx->user_ip4; /* what the socket asked for (not the wildcard key) */
    rv.frontend_port = mk.dport;
    rv.rev_nat_index = m.rev_nat_index;
    if (bpf_map_update_elem(&pw_sock4_revnat, &rk, &rv, BPF_ANY) < 0)
        return 1; /* cannot translate back: leave this socket alone */
    ctx->user_ip4 = backend_addr;
    ctx->user_port = (__u32)backend_port;
    return 1;
}

/* Shows the frontend instead of the backend a translated socket talks to. */
static __always_inline int pw_sock_reverse(struct bpf_sock_addr *ctx)
{
    struct pw_sock4_revnat_key rk = {};
    struct pw_sock4_revnat_val *rv;

    rk.cookie = bpf_get_socket_cookie(ctx);
    rk.backend_addr = ctx->user_ip4;
    rk.backend_port = (__be16)ctx->user_port;
    rv = bpf_map_lookup_elem(&pw_sock4_revnat, &rk);
    if (rv) {
        ctx->user_ip4 = rv->frontend_addr;
        ctx->user_port = (__u32)rv->frontend_port;
    }
    return 1;
}

SEC("cgroup/connect4")
int pw_sock_connect4(struct bpf_sock_addr *ctx)
{
    return pw_sock_forward(ctx);
}

SEC("cgroup/sendmsg4")
int pw_sock_sendmsg4(struct bpf_sock_addr *ctx)
{
    return pw_sock_forward(ctx);
}

SEC("cgroup/recvmsg4")
int pw_sock_recvmsg4(struct bpf_sock_addr *ctx)
{
    return pw_sock_reverse(ctx);
}

SEC("cgroup/getpeername4")
int pw_sock_getpeername4(struct bpf_sock_addr *ctx)
{
    return pw_sock_reverse(ctx);
}

#endif /* PORTWAY_SOCK_H */

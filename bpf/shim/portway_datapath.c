#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/vfs.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/fib_rules.h>
#include <net/if.h>
#include <netinet/in.h>
#include "portway_datapath.h"
#include "portway_maps.h"
#include "portway_netlink.h"

#define LOG_CAP (64 * 1024)
static char log_buf[LOG_CAP + 1];
static size_t log_len;

static int capture_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
    char line[4096];
    int n;
    (void)level;
    n = vsnprintf(line, sizeof(line), fmt, args);
    if (n <= 0)
        return 0;
    if ((size_t)n >= sizeof(line))
        n = sizeof(line) - 1;
    if (log_len + (size_t)n > LOG_CAP) {
        /* keep the tail: the verifier's verdict is at the end */
        size_t drop = log_len + (size_t)n - LOG_CAP;
        if (drop > log_len)
            drop = log_len;
        memmove(log_buf, log_buf + drop, log_len - drop);
        log_len -= drop;
    }
    memcpy(log_buf + log_len, line, (size_t)n);
    log_len += (size_t)n;
    log_buf[log_len] = 0;
    return n;
}

void portway_dp_log_capture_start(void)
{
    log_len = 0;
    log_buf[0] = 0;
    libbpf_set_print(capture_print);
}

void portway_dp_log_capture_stop(void)
{
    libbpf_set_print(NULL);
}

const char *portway_dp_log_captured(void)
{
    return log_buf;
}

int portway_dp_tcx_link_create(int prog_fd, int ifindex, int ingress)
{
    int fd = bpf_link_create(prog_fd, ifindex, ingress ? PORTWAY_BPF_TCX_INGRESS : PORTWAY_BPF_TCX_EGRESS, NULL);
    return fd < 0 ? -errno : fd;
}

int portway_dp_cgroup_link_create(int prog_fd, int cgroup_fd, __u32 attach_type)
{
    int fd = bpf_link_create(prog_fd, cgroup_fd, (enum bpf_attach_type)attach_type, NULL);
    return fd < 0 ? -errno : fd;
}

int portway_dp_netns_link_create(int prog_fd, __u32 attach_type)
{
    int netns_fd, fd;

    netns_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (netns_fd < 0)
        return -errno;
    fd = bpf_link_create(prog_fd, netns_fd, (enum bpf_attach_type)attach_type, NULL);
    fd = fd < 0 ? -errno : fd;
    close(netns_fd);
    return fd;
}

int portway_dp_link_update(int link_fd, int prog_fd)
{
    return bpf_link_update(link_fd, prog_fd, NULL) < 0 ? -errno : 0;
}

int portway_dp_link_info(int link_fd, __u32 *prog_id, __u32 *ifindex, __u32 *attach_type)
{
    /* struct bpf_link_info: type, id, prog_id, then (8-byte aligned) the per-type union; for
     * tcx links that union starts with { __u32 ifindex; __u32 attach_type; }. Read it raw: the
     * installed uapi header predates tcx. */
    __u64 raw[32];
    __u32 len = sizeof(raw);
    memset(raw, 0, sizeof(raw));
    if (bpf_obj_get_info_by_fd(link_fd, raw, &len) < 0)
        return -errno;
    const __u32 *w = (const __u32 *)raw;
    *prog_id = w[2];
    *ifindex = w[4];
    *attach_type = w[5];
    return 0;
}

int portway_dp_link_target(int link_fd, __u32 *prog_id, __u64 *where, __u32 *attach_type)
{
    /* Raw struct bpf_link_info (see portway_dp_link_info): w[0] type, w[2] prog_id, union at
     * byte 16. cgroup (type 3): { __u64 cgroup_id; __u32 attach_type; }; tcx (type 11):
     * { __u32 ifindex; __u32 attach_type; }; netns (type 5): { __u32 netns_ino; __u32 attach_type; }. */
    __u64 raw[32];
    __u32 len = sizeof(raw);
    memset(raw, 0, sizeof(raw));
    if (bpf_obj_get_info_by_fd(link_fd, raw, &len) < 0)
        return -errno;
    const __u32 *w = (const __u32 *)raw;
    *prog_id = w[2];
    *where = 0;
    *attach_type = 0;
    if (w[0] == 3) { /* BPF_LINK_TYPE_CGROUP */
        *where = raw[2];
        *attach_type = w[6];
    } else if (w[0] == 11) { /* BPF_LINK_TYPE_TCX */
        *where = w[4];
        *attach_type = w[5];
    } else if (w[0] == 5) { /* BPF_LINK_TYPE_NETNS: { __u32 netns_ino; __u32 attach_type; }, ino 0 once gone */
        *where = w[4];
        *attach_type = w[5];
    }
    return 0;
}

static void tc_hook_for(struct bpf_tc_hook *hook, int ifindex, int ingress)
{
    memset(hook, 0, sizeof(*hook));
    hook->sz = sizeof(*hook);
    hook->ifindex = ifindex;
    hook->attach_point = ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS;
}

int portway_dp_tc_attach(int prog_fd, int ifindex, int ingress)
{
    struct bpf_tc_hook hook;
    struct bpf_tc_opts opts;
    int err;

    tc_hook_for(&hook, ifindex, ingress);
    err = bpf_tc_hook_create(&hook);
    if (err && err != -EEXIST)
        return err;
    memset(&opts, 0, sizeof(opts));
    opts.sz = sizeof(opts);
    opts.handle = 1;
    opts.priority = 1;
    opts.prog_fd = prog_fd;
    opts.flags = BPF_TC_F_REPLACE;
    return bpf_tc_attach(&hook, &opts);
}

static int quiet_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
    (void)level;
    (void)fmt;
    (void)args;
    return 0;
}

int portway_dp_tc_detach(int ifindex, int ingress)
{
    struct bpf_tc_hook hook;
    struct bpf_tc_opts opts;
    libbpf_print_fn_t old;
    int err;

    tc_hook_for(&hook, ifindex, ingress);
    memset(&opts, 0, sizeof(opts));
    opts.sz = sizeof(opts);
    opts.handle = 1;
    opts.priority = 1;
    /* "no clsact qdisc" is an expected answer here, not something to print. */
    old = libbpf_set_print(quiet_print);
    err = bpf_tc_detach(&hook, &opts);
    libbpf_set_print(old);
    return err;
}

int portway_dp_tc_query(int ifindex, int ingress)
{
    struct bpf_tc_hook hook;
    struct bpf_tc_opts opts;
    libbpf_print_fn_t old;
    int err;

    tc_hook_for(&hook, ifindex, ingress);
    memset(&opts, 0, sizeof(opts));
    opts.sz = sizeof(opts);
    opts.handle = 1;
    opts.priority = 1;
    old = libbpf_set_print(quiet_print);
    err = bpf_tc_query(&hook, &opts);
    libbpf_set_print(old);
    if (err == -ENOENT || err == -EINVAL)
        return 0;
    return err < 0 ? err : (int)opts.prog_id;
}

int portway_dp_map_info(int map_fd, __u32 *type, __u32 *key_size, __u32 *value_size, __u32 *max_entries,
                        __u32 *map_flags)
{
    struct bpf_map_info info;
    __u32 len = sizeof(info);
    memset(&info, 0, sizeof(info));
    if (bpf_obj_get_info_by_fd(map_fd, &info, &len) < 0)
        return -errno;
    *type = info.type;
    *key_size = info.key_size;
    *value_size = info.value_size;
    *max_entries = info.max_entries;
    *map_flags = info.map_flags;
    return 0;
}

int portway_dp_prog_id(int prog_fd, __u32 *id)
{
    struct bpf_prog_info info;
    __u32 len = sizeof(info);
    memset(&info, 0, sizeof(info));
    if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) < 0)
        return -errno;
    *id = info.id;
    return 0;
}

int portway_dp_is_cgroup2(const char *path)
{
    struct statfs fs;
    if (statfs(path, &fs) < 0)
        return -errno;
    return fs.f_type == 0x63677270 ? 1 : 0; /* CGROUP2_SUPER_MAGIC */
}

int portway_dp_netns_cookie(__u64 *cookie)
{
    socklen_t len = sizeof(*cookie);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int rc;
    if (fd < 0)
        return -errno;
    rc = getsockopt(fd, SOL_SOCKET, 71 /* SO_NETNS_COOKIE */, cookie, &len) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

int portway_dp_is_bpffs(const char *path)
{
    struct statfs fs;
    if (statfs(path, &fs) < 0)
        return -errno;
    return fs.f_type == 0xcafe4a11 ? 1 : 0; /* BPF_FS_MAGIC */
}

int portway_dp_enter_netns(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc;
    if (fd < 0)
        return -errno;
    rc = setns(fd, CLONE_NEWNET) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* A request for the proxy's rule (fwmark → table) or route (local, table, via lo). */
struct proxy_route_request {
    struct nlmsghdr h;
    union {
        struct fib_rule_hdr rule;
        struct rtmsg rt;
    };
    char attrs[128];
};

/* The rule "fwmark PW_MARK_TO_PROXY/mask lookup PW_PROXY_ROUTE_TABLE", to add (RTM_NEWRULE) or delete. */
static void proxy_rule_request(struct proxy_route_request *req, __u16 type, __u16 flags)
{
    memset(req, 0, sizeof(*req));
    req->h.nlmsg_type = type;
    req->h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    req->h.nlmsg_len = NLMSG_LENGTH(sizeof(struct fib_rule_hdr));
    req->rule.family = AF_INET;
    req->rule.action = FR_ACT_TO_TBL;
    req->rule.table = RT_TABLE_UNSPEC;
    pw_nl_attr_u32(&req->h, FRA_FWMARK, PW_MARK_TO_PROXY);
    pw_nl_attr_u32(&req->h, FRA_FWMASK, PW_MARK_TO_PROXY_MASK);
    pw_nl_attr_u32(&req->h, FRA_TABLE, PW_PROXY_ROUTE_TABLE);
    pw_nl_attr_u32(&req->h, FRA_PRIORITY, PW_PROXY_RULE_PRIO);
}

/* The route "local 0.0.0.0/0 dev lo table PW_PROXY_ROUTE_TABLE", to add (RTM_NEWROUTE) or delete
 * (lo 0: any device). */
static void proxy_route_request(struct proxy_route_request *req, __u16 type, __u16 flags, unsigned int lo)
{
    memset(req, 0, sizeof(*req));
    req->h.nlmsg_type = type;
    req->h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    req->h.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg));
    req->rt.rtm_family = AF_INET;
    req->rt.rtm_table = RT_TABLE_UNSPEC;
    if (type == RTM_NEWROUTE)
        req->rt.rtm_protocol = RTPROT_STATIC;
    req->rt.rtm_scope = RT_SCOPE_HOST;
    req->rt.rtm_type = RTN_LOCAL;
    pw_nl_attr_u32(&req->h, RTA_TABLE, PW_PROXY_ROUTE_TABLE);
    if (lo != 0)
        pw_nl_attr_u32(&req->h, RTA_OIF, lo);
}

int portway_dp_proxy_route_install(void)
{
    struct proxy_route_request req;
    unsigned int lo = if_nametoindex("lo");
    int rc;

    if (lo == 0)
        return -errno;
    proxy_rule_request(&req, RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL);
    rc = pw_nl_request(&req.h);
    if (rc < 0)
        return rc;
    proxy_route_request(&req, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, lo);
    return pw_nl_request(&req.h);
}

int portway_dp_proxy_route_remove(void)
{
    struct proxy_route_request req;
    int rc, rc2;

    proxy_rule_request(&req, RTM_DELRULE, 0);
    rc = pw_nl_request(&req.h);
    proxy_route_request(&req, RTM_DELROUTE, 0, if_nametoindex("lo"));
    rc2 = pw_nl_request(&req.h);
    /* gone already is fine */
    if (rc == -ENOENT || rc == -ESRCH)
        rc = 0;
    if (rc2 == -ENOENT || rc2 == -ESRCH)
        rc2 = 0;
    return rc < 0 ? rc : rc2;
}

/* One fib rule of the dump: is it the proxy's (a rule that looks up the proxy's table)? */
static int note_proxy_rule(const struct nlmsghdr *h, void *found)
{
    int alen = (int)h->nlmsg_len - (int)NLMSG_LENGTH(sizeof(struct fib_rule_hdr));
    const struct rtattr *a = (const struct rtattr *)((const char *)NLMSG_DATA(h) + NLMSG_ALIGN(sizeof(struct fib_rule_hdr)));
    for (; RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
        if (a->rta_type == FRA_TABLE && *(const __u32 *)RTA_DATA(a) == PW_PROXY_ROUTE_TABLE)
            *(int *)found = 1;
    }
    return 0;
}

int portway_dp_proxy_route_present(void)
{
    struct {
        struct nlmsghdr h;
        struct fib_rule_hdr rule;
    } req;
    int found = 0, rc;

    memset(&req, 0, sizeof(req));
    req.h.nlmsg_len = NLMSG_LENGTH(sizeof(req.rule));
    req.h.nlmsg_type = RTM_GETRULE;
    req.rule.family = AF_INET;
    rc = pw_nl_dump(&req.h, note_proxy_rule, &found);
    return rc < 0 ? rc : found;
}

int portway_dp_have_host_routing(void)
{
    return libbpf_probe_bpf_helper(BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_redirect_neigh, NULL) == 1 &&
           libbpf_probe_bpf_helper(BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_fib_lookup, NULL) == 1;
}

int portway_dp_have_sk_lookup(void)
{
    return libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SK_LOOKUP, NULL) == 1 &&
           libbpf_probe_bpf_map_type(BPF_MAP_TYPE_SOCKHASH, NULL) == 1 &&
           libbpf_probe_bpf_helper(BPF_PROG_TYPE_SK_LOOKUP, BPF_FUNC_sk_assign, NULL) == 1;
}

int portway_dp_netns_inode(__u64 *ino)
{
    struct stat st;

    if (stat("/proc/thread-self/ns/net", &st) != 0)
        return -errno;
    *ino = st.st_ino;
    return 0;
}

int portway_dp_prog_config(__u32 prog_id, void *out, __u32 size)
{
    struct bpf_prog_info info;
    __u32 ids[64];
    __u32 len = sizeof(info), i, n;
    int prog_fd, rc = -ENOENT;

    prog_fd = bpf_prog_get_fd_by_id(prog_id);
    if (prog_fd < 0)
        return -errno;
    memset(&info, 0, sizeof(info));
    info.nr_map_ids = 64;
    info.map_ids = (__u64)(unsigned long)ids;
    if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) < 0) {
        rc = -errno;
        close(prog_fd);
        return rc;
    }
    close(prog_fd);
    n = info.nr_map_ids < 64 ? info.nr_map_ids : 64;
    for (i = 0; i < n && rc == -ENOENT; i++) {
        struct bpf_map_info mi;
        __u32 mlen = sizeof(mi), zero = 0;
        size_t name_len;
        int map_fd = bpf_map_get_fd_by_id(ids[i]);
        if (map_fd < 0)
            continue;
        memset(&mi, 0, sizeof(mi));
        if (bpf_obj_get_info_by_fd(map_fd, &mi, &mlen) == 0) {
            name_len = strlen(mi.name);
            if (name_len >= 7 && strcmp(mi.name + name_len - 7, ".rodata") == 0 && mi.value_size == size)
                rc = bpf_map_lookup_elem(map_fd, &zero, out) < 0 ? -errno : 0;
        }
        close(map_fd);
    }
    return rc;
}

int portway_dp_recv_origdst(int fd, void *buf, __u32 len, __u32 *src_addr, __u16 *src_port, __u32 *dst_addr,
                            __u16 *dst_port)
{
    struct sockaddr_in from;
    char control[CMSG_SPACE(sizeof(struct sockaddr_in))];
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr msg = {
        .msg_name = &from,
        .msg_namelen = sizeof(from),
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control,
        .msg_controllen = sizeof(control),
    };
    struct cmsghdr *c;
    ssize_t n = recvmsg(fd, &msg, 0);

    if (n < 0)
        return -errno;
    *src_addr = from.sin_addr.s_addr;
    *src_port = from.sin_port;
    for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_IP && c->cmsg_type == IP_ORIGDSTADDR) {
            struct sockaddr_in orig;
            memcpy(&orig, CMSG_DATA(c), sizeof(orig));
            *dst_addr = orig.sin_addr.s_addr;
            *dst_port = orig.sin_port;
            return (int)n;
        }
    }
    return -ENOMSG;
}

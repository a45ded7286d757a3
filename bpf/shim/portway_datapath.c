#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/vfs.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "portway_datapath.h"

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

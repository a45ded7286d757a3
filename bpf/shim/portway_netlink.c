/* rtnetlink: one request with its acknowledgement and one dump, for the shims (the proxy's route
 * and rule in portway_datapath.c); and the agent's device discovery: the links of this network
 * namespace (name, kind, whether a veth's peer lives in another namespace) and a socket that wakes
 * up on link changes. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/if_link.h>
#include "portway_datapath.h"
#include "portway_netlink.h"

static void parse_link(const struct nlmsghdr *h, struct pw_link_info *out)
{
    const struct ifinfomsg *ifi = NLMSG_DATA(h);
    int len = (int)h->nlmsg_len - (int)NLMSG_LENGTH(sizeof(*ifi));
    struct rtattr *a;

    memset(out, 0, sizeof(*out));
    out->ifindex = ifi->ifi_index;
    out->up = (ifi->ifi_flags & 1 /* IFF_UP */) ? 1 : 0;
    for (a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        switch (a->rta_type) {
        case IFLA_IFNAME:
            strncpy(out->name, RTA_DATA(a), sizeof(out->name) - 1);
            break;
        case IFLA_MASTER:
            out->master = *(__u32 *)RTA_DATA(a);
            break;
        case IFLA_LINK_NETNSID:
            out->peer_in_other_netns = 1;
            break;
        case IFLA_LINKINFO: {
            struct rtattr *info = RTA_DATA(a);
            int ilen = RTA_PAYLOAD(a);
            for (; RTA_OK(info, ilen); info = RTA_NEXT(info, ilen)) {
                if (info->rta_type == IFLA_INFO_KIND)
                    strncpy(out->kind, RTA_DATA(info), sizeof(out->kind) - 1);
            }
            break;
        }
        }
    }
}

int pw_nl_request(struct nlmsghdr *req)
{
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    char buf[4096];
    int fd, rc;
    ssize_t n;

    fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        return -errno;
    if (sendto(fd, req, req->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    n = recv(fd, buf, sizeof(buf), 0);
    rc = n < 0 ? -errno : -EIO;
    if (n >= (ssize_t)sizeof(struct nlmsghdr)) {
        struct nlmsghdr *h = (struct nlmsghdr *)buf;
        if (h->nlmsg_type == NLMSG_ERROR) {
            int err = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
            rc = (err == 0 || err == -EEXIST) ? 0 : err;
        }
    }
    close(fd);
    return rc;
}

void pw_nl_attr_u32(struct nlmsghdr *h, unsigned short type, __u32 value)
{
    struct rtattr *a = (struct rtattr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len));
    a->rta_type = type;
    a->rta_len = RTA_LENGTH(sizeof(value));
    memcpy(RTA_DATA(a), &value, sizeof(value));
    h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len);
}

int pw_nl_dump(struct nlmsghdr *req, int (*each)(const struct nlmsghdr *h, void *ctx), void *ctx)
{
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    char buf[32768];
    int fd, rc = 0, done = 0;

    fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        return -errno;
    req->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req->nlmsg_seq = 1;
    if (sendto(fd, req, req->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    while (!done) {
        ssize_t len = recv(fd, buf, sizeof(buf), 0);
        struct nlmsghdr *h;
        if (len < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        if (len == 0) {
            rc = -EIO;
            break;
        }
        for (h = (struct nlmsghdr *)buf; NLMSG_OK(h, (unsigned int)len); h = NLMSG_NEXT(h, len)) {
            if (h->nlmsg_type == NLMSG_DONE) {
                done = 1;
                break;
            }
            if (h->nlmsg_type == NLMSG_ERROR) {
                rc = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
                done = 1;
                break;
            }
            rc = each(h, ctx);
            if (rc < 0) {
                done = 1;
                break;
            }
        }
    }
    close(fd);
    return rc < 0 ? rc : 0;
}

struct link_list {
    struct pw_link_info *out;
    int max;
    int n;
};

static int note_link(const struct nlmsghdr *h, void *ctx)
{
    struct link_list *list = ctx;
    if (h->nlmsg_type == RTM_NEWLINK && list->n < list->max)
        parse_link(h, &list->out[list->n++]);
    return 0;
}

int portway_nl_list_links(struct pw_link_info *out, int max)
{
    struct {
        struct nlmsghdr h;
        struct ifinfomsg ifi;
    } req;
    struct link_list list = {.out = out, .max = max, .n = 0};
    int rc;

    memset(&req, 0, sizeof(req));
    req.h.nlmsg_len = NLMSG_LENGTH(sizeof(req.ifi));
    req.h.nlmsg_type = RTM_GETLINK;
    req.ifi.ifi_family = AF_UNSPEC;
    rc = pw_nl_dump(&req.h, note_link, &list);
    return rc < 0 ? rc : list.n;
}

int portway_nl_link_events_open(void)
{
    struct sockaddr_nl local = {.nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK};
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&local, sizeof(local)) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

int portway_nl_link_events_wait(int fd, int timeout_ms)
{
    char buf[32768];
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int rc = poll(&p, 1, timeout_ms), events = 0;
    if (rc < 0)
        return errno == EINTR ? 0 : -errno;
    if (rc == 0)
        return 0;
    for (;;) {
        ssize_t len = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (len < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == ENOBUFS) { /* overrun: the caller rescans anyway */
                events++;
                continue;
            }
            return events > 0 ? events : -errno;
        }
        events++;
    }
    return events;
}

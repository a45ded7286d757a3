/* rtnetlink for the agent's device discovery: the links of this network namespace (name, kind,
 * whether a veth's peer lives in another namespace) and a socket that wakes up on link changes. */
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

static void parse_link(struct nlmsghdr *h, struct pw_link_info *out)
{
    struct ifinfomsg *ifi = NLMSG_DATA(h);
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

int portway_nl_list_links(struct pw_link_info *out, int max)
{
    struct {
        struct nlmsghdr h;
        struct ifinfomsg ifi;
    } req;
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    char buf[32768];
    int fd, n = 0, done = 0;

    fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        return -errno;
    memset(&req, 0, sizeof(req));
    req.h.nlmsg_len = NLMSG_LENGTH(sizeof(req.ifi));
    req.h.nlmsg_type = RTM_GETLINK;
    req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.h.nlmsg_seq = 1;
    req.ifi.ifi_family = AF_UNSPEC;
    if (sendto(fd, &req, req.h.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
        n = -errno;
        close(fd);
        return n;
    }
    while (!done) {
        ssize_t len = recv(fd, buf, sizeof(buf), 0);
        struct nlmsghdr *h;
        if (len < 0) {
            if (errno == EINTR)
                continue;
            n = -errno;
            break;
        }
        for (h = (struct nlmsghdr *)buf; NLMSG_OK(h, (unsigned int)len); h = NLMSG_NEXT(h, len)) {
            if (h->nlmsg_type == NLMSG_DONE) {
                done = 1;
                break;
            }
            if (h->nlmsg_type == NLMSG_ERROR) {
                n = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
                done = 1;
                break;
            }
            if (h->nlmsg_type == RTM_NEWLINK && n < max)
                parse_link(h, &out[n++]);
        }
    }
    close(fd);
    return n;
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

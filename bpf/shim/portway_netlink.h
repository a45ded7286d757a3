/* rtnetlink plumbing shared by the shims (not part of the Swift-facing headers). */
#ifndef PORTWAY_NETLINK_H
#define PORTWAY_NETLINK_H

#include <linux/netlink.h>
#include <linux/types.h>

/* Sends one rtnetlink request that asks for an acknowledgement and waits for it; 0, or a negative
 * errno (EEXIST counts as success). */
int pw_nl_request(struct nlmsghdr *req);

/* Appends a u32 attribute to the message (the caller's buffer has room). */
void pw_nl_attr_u32(struct nlmsghdr *h, unsigned short type, __u32 value);

/* Sends `req` as a dump request (its flags and sequence are set here) and calls `each` with every
 * message of the answer until the end of the dump; `each` returns 0 to go on or a negative errno to
 * stop. 0, or a negative errno: the socket's, the kernel's error answer, or `each`'s. */
int pw_nl_dump(struct nlmsghdr *req, int (*each)(const struct nlmsghdr *h, void *ctx), void *ctx);

#endif

/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_NETLINK_RTNL_INT_H
#define MESHD_NETLINK_RTNL_INT_H

/*
 * Internal to netlink/: shared by rtnl.c and rtnl-monitor.c, and exposed
 * so unit tests and fuzzers can feed the parsers untrusted bytes without a
 * socket.  Not part of the public API.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <linux/netlink.h>

#include "netlink/rtnl.h"

/*
 * Receive buffer.  The kernel sizes dump skbs up to 32 KiB less overhead
 * for readers that offer that much, and we never ask for VF info, the one
 * thing that makes a single link message bigger.
 */
#define RTNL_RECV_BUFSZ		32768

/*
 * Walk the messages in a datagram.  Not mnl_nlmsg_ok(): libmnl 1.0.4
 * compares nlmsg_len as an int, so a length of 2^31 or more passes it.
 */
bool rtnl_msg_ok(const struct nlmsghdr *nlh, size_t len);
const struct nlmsghdr *rtnl_msg_next(const struct nlmsghdr *nlh, size_t *len);

/*
 * Message parsers.  nlh must have passed rtnl_msg_ok() for the bytes it
 * sits in; everything past the netlink header is checked here.  Return 1
 * with *out filled, 0 for a message we do not model (another address
 * family, a type we ignore), or -EPROTO if it is malformed.
 */
int rtnl_parse_link(const struct nlmsghdr *nlh, struct rtnl_link *out);
int rtnl_parse_addr(const struct nlmsghdr *nlh, struct rtnl_addr *out);
int rtnl_parse_route(const struct nlmsghdr *nlh, struct rtnl_route *out);
int rtnl_parse_rule(const struct nlmsghdr *nlh, struct rtnl_rule *out);
/* Any RTM_{NEW,DEL}{LINK,ADDR,ROUTE,RULE} notification, same returns. */
int rtnl_parse_event(const struct nlmsghdr *nlh, struct rtnl_event *ev);

/* 4 for AF_INET, 16 for AF_INET6, 0 otherwise. */
size_t rtnl_family_addrlen(int family);

/*
 * recvmsg() one datagram.  Returns its length, 0 for a datagram not sent
 * by the kernel (dropped), -EMSGSIZE if it was truncated, or -errno.
 */
ssize_t rtnl_recv(int fd, void *buf, size_t len, int flags);

/*
 * Reply state for one request: walk each received datagram with
 * rtnl_reply_walk() until done.  Messages with another sequence number or
 * port id are replies to an earlier request that gave up and are skipped.
 * err keeps the first error: from NLMSG_ERROR, from the error code in
 * NLMSG_DONE, or from fn.  intr is set if any reply carried
 * NLM_F_DUMP_INTR (the dump may be inconsistent).
 */
struct rtnl_reply {
	uint32_t	seq;
	uint32_t	portid;
	int		(*fn)(const struct nlmsghdr *nlh, void *arg);
	void		*arg;
	int		err;
	bool		done;
	bool		intr;
};

void rtnl_reply_walk(struct rtnl_reply *st, const void *buf, size_t len);

#endif

// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * Netlink replies and notifications as the kernel (or anything able to
 * reach our socket) might send them: the message walker, the reply state
 * machine, and every parser.
 */
#include <stdlib.h>
#include <string.h>

#include "netlink/rtnl-int.h"

static int
on_msg(const struct nlmsghdr *nlh, void *arg)
{
	struct rtnl_event ev;
	struct rtnl_link l;
	struct rtnl_addr a;
	struct rtnl_route r;
	struct rtnl_rule ru;

	(void)rtnl_parse_link(nlh, &l);
	(void)rtnl_parse_addr(nlh, &a);
	(void)rtnl_parse_route(nlh, &r);
	(void)rtnl_parse_rule(nlh, &ru);
	(void)rtnl_parse_event(nlh, &ev);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rtnl_reply st = { .seq = 1, .portid = 0, .fn = on_msg };
	const struct nlmsghdr *nlh;
	size_t len = size;
	void *buf;

	if (size > RTNL_RECV_BUFSZ)
		return 0;
	/* An aligned private copy, as recv() would give us. */
	buf = malloc(size ? size : 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	for (nlh = buf; rtnl_msg_ok(nlh, len); nlh = rtnl_msg_next(nlh, &len)) {
		struct rtnl_event ev;

		if ((const char *)nlh + nlh->nlmsg_len > (const char *)buf + size)
			abort();	/* the walker let a message run past the datagram */
		(void)rtnl_parse_event(nlh, &ev);
	}
	rtnl_reply_walk(&st, buf, size);
	free(buf);
	return 0;
}

// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * rtnetlink monitor: a non-blocking socket subscribed to link, address,
 * route and rule notifications, read from the daemon's event loop.  The
 * agent uses link and address changes to re-STUN and rebind, and rule
 * deletions in its priority range to put its rules back (systemd-networkd
 * removes foreign rules; tailscaled does the same re-add).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/rtnetlink.h>

#include <libmnl/libmnl.h>

#include "common/log.h"
#include "netlink/rtnl-int.h"
#include "netlink/rtnl.h"

/*
 * Socket receive buffer asked for.  Notifications arrive in bursts (a
 * link going down takes its addresses and routes with it); the default
 * (~200 KiB) overruns with a few thousand routes.  Overruns are still
 * handled, as RTNL_EV_RESYNC.
 */
#define MON_RCVBUF	(1 << 20)

struct rtnl_mon {
	struct mnl_socket	*nl;
	rtnl_event_fn		fn;
	void			*ctx;
	_Alignas(struct nlmsghdr) uint8_t buf[RTNL_RECV_BUFSZ];
};

static const struct {
	unsigned int	flag;
	unsigned int	group;
} mon_groups[] = {
	{ RTNL_MON_LINK, RTNLGRP_LINK },
	{ RTNL_MON_ADDR, RTNLGRP_IPV4_IFADDR },
	{ RTNL_MON_ADDR, RTNLGRP_IPV6_IFADDR },
	{ RTNL_MON_ROUTE, RTNLGRP_IPV4_ROUTE },
	{ RTNL_MON_ROUTE, RTNLGRP_IPV6_ROUTE },
	{ RTNL_MON_RULE, RTNLGRP_IPV4_RULE },
	{ RTNL_MON_RULE, RTNLGRP_IPV6_RULE },
};

#define RTNL_MON_ALL	(RTNL_MON_LINK | RTNL_MON_ADDR | RTNL_MON_ROUTE | \
			 RTNL_MON_RULE)

int
rtnl_mon_open(unsigned int groups, rtnl_event_fn fn, void *ctx,
    struct rtnl_mon **mp)
{
	struct rtnl_mon *m;
	int sz = MON_RCVBUF, fd, ret;
	size_t i;

	*mp = NULL;
	if (fn == NULL || groups == 0 || (groups & ~RTNL_MON_ALL) != 0)
		return -EINVAL;
	if ((m = calloc(1, sizeof *m)) == NULL)
		return -ENOMEM;
	m->fn = fn;
	m->ctx = ctx;
	m->nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (m->nl == NULL ||
	    mnl_socket_bind(m->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		ret = -errno;
		goto fail;
	}
	fd = mnl_socket_get_fd(m->nl);
	/*
	 * FORCE needs CAP_NET_ADMIN, which the daemon holds; without it the
	 * size is capped by net.core.rmem_max.
	 */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
	for (i = 0; i < ARRAY_SIZE(mon_groups); i++) {
		unsigned int g = mon_groups[i].group;

		if (!(groups & mon_groups[i].flag))
			continue;
		if (mnl_socket_setsockopt(m->nl, NETLINK_ADD_MEMBERSHIP, &g,
		    sizeof g) < 0) {
			ret = -errno;
			goto fail;
		}
	}
	*mp = m;
	return 0;
fail:
	rtnl_mon_close(m);
	return ret;
}

void
rtnl_mon_close(struct rtnl_mon *m)
{
	if (m == NULL)
		return;
	if (m->nl != NULL)
		mnl_socket_close(m->nl);
	free(m);
}

int
rtnl_mon_fd(const struct rtnl_mon *m)
{
	return mnl_socket_get_fd(m->nl);
}

static enum rtnl_event_kind
link_kind(const struct nlmsghdr *nlh, const struct rtnl_link *l)
{
	if (nlh->nlmsg_type == RTM_DELLINK)
		return RTNL_EV_LINK_DEL;
	/* register_netdevice() and new rtnl links announce with change ~0. */
	if (l->change == ~0U)
		return RTNL_EV_LINK_NEW;
	if (l->change & IFF_UP)
		return (l->flags & IFF_UP) ? RTNL_EV_LINK_UP :
		    RTNL_EV_LINK_DOWN;
	return RTNL_EV_LINK_CHANGE;
}

int
rtnl_parse_event(const struct nlmsghdr *nlh, struct rtnl_event *ev)
{
	bool new = false;
	int ret;

	memset(ev, 0, sizeof *ev);
	switch (nlh->nlmsg_type) {
	case RTM_NEWLINK:
	case RTM_DELLINK:
		if ((ret = rtnl_parse_link(nlh, &ev->link)) == 1)
			ev->kind = link_kind(nlh, &ev->link);
		return ret;
	case RTM_NEWADDR:
		new = true;
		/* FALLTHROUGH */
	case RTM_DELADDR:
		if ((ret = rtnl_parse_addr(nlh, &ev->addr)) == 1)
			ev->kind = new ? RTNL_EV_ADDR_NEW : RTNL_EV_ADDR_DEL;
		return ret;
	case RTM_NEWROUTE:
		new = true;
		/* FALLTHROUGH */
	case RTM_DELROUTE:
		if ((ret = rtnl_parse_route(nlh, &ev->route)) == 1)
			ev->kind = new ? RTNL_EV_ROUTE_NEW : RTNL_EV_ROUTE_DEL;
		return ret;
	case RTM_NEWRULE:
		new = true;
		/* FALLTHROUGH */
	case RTM_DELRULE:
		if ((ret = rtnl_parse_rule(nlh, &ev->rule)) == 1)
			ev->kind = new ? RTNL_EV_RULE_NEW : RTNL_EV_RULE_DEL;
		return ret;
	default:
		return 0;
	}
}

static void
resync(struct rtnl_mon *m, int why)
{
	struct rtnl_event ev = { .kind = RTNL_EV_RESYNC };

	log_debug("rtnl: monitor lost notifications (%s), resync",
	    strerror(-why));
	m->fn(m->ctx, &ev);
}

int
rtnl_mon_read(struct rtnl_mon *m)
{
	const struct nlmsghdr *nlh;
	struct rtnl_event ev;
	int fd = mnl_socket_get_fd(m->nl), events = 0, i, ret;
	size_t rem;
	ssize_t n;

	for (i = 0; i < RTNL_MON_BATCH; i++) {
		/* MSG_DONTWAIT too, in case the caller cleared O_NONBLOCK. */
		n = rtnl_recv(fd, m->buf, sizeof m->buf, MSG_DONTWAIT);
		if (n == -EAGAIN || n == -EWOULDBLOCK)
			break;
		if (n == -EINTR)
			continue;
		/*
		 * ENOBUFS: the socket overran and the kernel dropped
		 * notifications.  EMSGSIZE: one did not fit our buffer.
		 * Either way our picture is stale; say so and carry on
		 * reading, since the socket itself is fine.
		 */
		if (n == -ENOBUFS || n == -EMSGSIZE) {
			resync(m, (int)n);
			events++;
			continue;
		}
		if (n < 0)
			return (int)n;
		rem = (size_t)n;
		nlh = (const struct nlmsghdr *)m->buf;
		for (; rtnl_msg_ok(nlh, rem); nlh = rtnl_msg_next(nlh, &rem)) {
			/* NLMSG_NOOP, _ERROR, _DONE and _OVERRUN. */
			if (nlh->nlmsg_type < NLMSG_MIN_TYPE)
				continue;
			ret = rtnl_parse_event(nlh, &ev);
			if (ret == 0)
				continue;
			/*
			 * A malformed notification still told us something
			 * changed; we just cannot say what.
			 */
			if (ret < 0)
				resync(m, ret);
			else
				m->fn(m->ctx, &ev);
			events++;
		}
	}
	return events;
}

// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * rtnetlink requests: links, addresses, routes and policy rules, one
 * synchronous request/ACK exchange at a time on one NETLINK_ROUTE socket.
 * The kernel runs an rtnetlink request inside our sendmsg() and queues the
 * ACK before it returns, and it builds dump replies inside our recvmsg(),
 * so the reads below never wait for anything but the kernel; the receive
 * timeout only guards against a kernel bug wedging the daemon.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <linux/fib_rules.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>

#include <libmnl/libmnl.h>

#include "common/log.h"
#include "netlink/rtnl-int.h"
#include "netlink/rtnl.h"

/* Requests carry a fixed header and a handful of small attributes. */
#define REQ_BUFSZ	512

/*
 * How often a dump interrupted by a concurrent change (NLM_F_DUMP_INTR)
 * is restarted before giving up with -EAGAIN.  wireguard-tools accepts
 * such dumps rather than retry "potentially indefinitely"; we retry a
 * bounded number of times because callers compare and delete from them.
 */
#define DUMP_TRIES	5

/* Dump-and-delete passes a flush makes before deciding it is racing. */
#define FLUSH_PASSES	8

/* Cap on entries a list may return, to bound memory on a hostile dump. */
#define LIST_MAX	(1U << 20)

struct rtnl {
	struct mnl_socket	*nl;
	uint32_t		portid;
	uint32_t		seq;
	_Alignas(struct nlmsghdr) uint8_t buf[RTNL_RECV_BUFSZ];
};

struct reqbuf {
	_Alignas(struct nlmsghdr) uint8_t b[REQ_BUFSZ];
	bool	overflow;
};

typedef int (*msg_fn)(const struct nlmsghdr *nlh, void *arg);

int
rtnl_open(struct rtnl **rp)
{
	struct timeval tv = { .tv_sec = RTNL_TIMEOUT_SEC };
	struct rtnl *r;
	int one = 1, ret;

	*rp = NULL;
	if ((r = calloc(1, sizeof *r)) == NULL)
		return -ENOMEM;
	if ((r->nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC)) == NULL ||
	    mnl_socket_bind(r->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		ret = -errno;
		goto fail;
	}
	/*
	 * Best effort, both: CAP_ACK keeps error replies from echoing the
	 * whole request, EXT_ACK gets the kernel's reason for the debug log.
	 */
	(void)mnl_socket_setsockopt(r->nl, NETLINK_CAP_ACK, &one, sizeof one);
	(void)mnl_socket_setsockopt(r->nl, NETLINK_EXT_ACK, &one, sizeof one);
	if (setsockopt(mnl_socket_get_fd(r->nl), SOL_SOCKET, SO_RCVTIMEO, &tv,
	    sizeof tv) < 0) {
		ret = -errno;
		goto fail;
	}
	r->portid = mnl_socket_get_portid(r->nl);
	*rp = r;
	return 0;
fail:
	rtnl_close(r);
	return ret;
}

void
rtnl_close(struct rtnl *r)
{
	if (r == NULL)
		return;
	if (r->nl != NULL)
		mnl_socket_close(r->nl);
	free(r);
}

/* Start a request in rb; returns its zeroed fixed header (ifinfomsg...). */
static void *
req_start(struct reqbuf *rb, uint16_t type, uint16_t flags, size_t hdrlen)
{
	struct nlmsghdr *nlh;

	rb->overflow = false;
	nlh = mnl_nlmsg_put_header(rb->b);
	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = flags;
	return mnl_nlmsg_put_extra_header(nlh, hdrlen);
}

static void
put(struct reqbuf *rb, uint16_t type, size_t len, const void *data)
{
	struct nlmsghdr *nlh = (struct nlmsghdr *)rb->b;

	if (!mnl_attr_put_check(nlh, sizeof rb->b, type, len, data))
		rb->overflow = true;
}

static void
put_u32(struct reqbuf *rb, uint16_t type, uint32_t v)
{
	put(rb, type, sizeof v, &v);
}

/*
 * Send one request and read replies until its ACK, error or NLMSG_DONE,
 * handing each reply message to fn.  Every request but a dump asks for an
 * ACK, so success is confirmed rather than assumed.
 */
static int
transact(struct rtnl *r, struct reqbuf *rb, bool dump, msg_fn fn, void *arg,
    bool *intr)
{
	struct nlmsghdr *nlh = (struct nlmsghdr *)rb->b;
	struct rtnl_reply st = { .fn = fn, .arg = arg, .portid = r->portid };
	int fd = mnl_socket_get_fd(r->nl);
	ssize_t n;

	if (rb->overflow)
		return -EMSGSIZE;
	st.seq = nlh->nlmsg_seq = ++r->seq;
	nlh->nlmsg_flags |= NLM_F_REQUEST | (dump ? NLM_F_DUMP : NLM_F_ACK);
	do {
		n = mnl_socket_sendto(r->nl, nlh, nlh->nlmsg_len);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if ((size_t)n != nlh->nlmsg_len)
		return -EIO;
	while (!st.done) {
		n = rtnl_recv(fd, r->buf, sizeof r->buf, 0);
		if (n == -EINTR)
			continue;
		if (n == -EAGAIN || n == -EWOULDBLOCK)
			return -ETIMEDOUT;
		if (n < 0)
			return (int)n;
		rtnl_reply_walk(&st, r->buf, (size_t)n);
	}
	if (intr != NULL)
		*intr = st.intr;
	return st.err;
}

/* A growable array of list results. */
struct vec {
	void	*items;
	size_t	n;
	size_t	cap;
	size_t	size;
};

static int
vec_push(struct vec *v, const void *item)
{
	size_t cap;
	void *p;

	if (v->n == v->cap) {
		if (v->cap >= LIST_MAX)
			return -E2BIG;
		cap = v->cap ? MIN(v->cap * 2, (size_t)LIST_MAX) : 16;
		if ((p = reallocarray(v->items, cap, v->size)) == NULL)
			return -ENOMEM;
		v->items = p;
		v->cap = cap;
	}
	memcpy((uint8_t *)v->items + v->n * v->size, item, v->size);
	v->n++;
	return 0;
}

struct collect {
	struct vec	v;
	int		family;
	int		ifindex;
	uint32_t	table;
};

/*
 * Run a dump, restarting it from scratch when the kernel flags it
 * interrupted: a dump that raced a change may miss or repeat entries, and
 * callers act on what it returns.
 */
static int
dump(struct rtnl *r, struct reqbuf *rb, msg_fn fn, struct collect *c)
{
	bool intr;
	int i, ret;

	for (i = 0; i < DUMP_TRIES; i++) {
		c->v.n = 0;
		intr = false;
		if ((ret = transact(r, rb, true, fn, c, &intr)) < 0)
			return ret;
		if (!intr)
			return 0;
		log_debug("rtnl: dump interrupted by a change, restarting");
	}
	return -EAGAIN;
}

/* The list to hand back: freed and NULL on error or when empty. */
static void *
finish_list(struct collect *c, int ret, size_t *n)
{
	if (ret < 0 || c->v.n == 0) {
		free(c->v.items);
		c->v.items = NULL;
		c->v.n = 0;
	}
	*n = c->v.n;
	return c->v.items;
}

static bool
family_ok(int family)
{
	return family == AF_UNSPEC || rtnl_family_addrlen(family) != 0;
}

/*
 * Links.
 */

int
rtnl_link_index(const char *name)
{
	unsigned int idx;

	/* if_nametoindex() would silently truncate a long name. */
	if (name == NULL || name[0] == '\0' || strlen(name) >= IF_NAMESIZE)
		return -EINVAL;
	if ((idx = if_nametoindex(name)) == 0)
		return errno == ENXIO || errno == 0 ? -ENODEV : -errno;
	if (idx > INT_MAX)
		return -ERANGE;
	return (int)idx;
}

struct link_get {
	struct rtnl_link	*out;
	bool			found;
};

static int
link_cb(const struct nlmsghdr *nlh, void *arg)
{
	struct link_get *g = arg;
	struct rtnl_link l;
	int ret;

	if ((ret = rtnl_parse_link(nlh, &l)) < 0)
		return ret;
	if (ret == 1 && l.ifindex == g->out->ifindex) {
		*g->out = l;
		g->found = true;
	}
	return 0;
}

int
rtnl_link_get(struct rtnl *r, int ifindex, struct rtnl_link *out)
{
	struct link_get g = { .out = out };
	struct reqbuf rb;
	struct ifinfomsg *ifi;
	int ret;

	if (ifindex <= 0)
		return -EINVAL;
	ifi = req_start(&rb, RTM_GETLINK, 0, sizeof *ifi);
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = ifindex;
	/* Counters are most of a link message and we never read them. */
	put_u32(&rb, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
	memset(out, 0, sizeof *out);
	out->ifindex = ifindex;
	if ((ret = transact(r, &rb, false, link_cb, &g, NULL)) < 0)
		return ret;
	/* The kernel answers ENODEV itself; this covers an empty reply. */
	return g.found ? 0 : -ENODEV;
}

static int
link_req(struct rtnl *r, int ifindex, unsigned int change, unsigned int flags,
    uint32_t mtu)
{
	struct reqbuf rb;
	struct ifinfomsg *ifi;

	if (ifindex <= 0)
		return -EINVAL;
	ifi = req_start(&rb, RTM_NEWLINK, 0, sizeof *ifi);
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = ifindex;
	ifi->ifi_change = change;
	ifi->ifi_flags = flags;
	if (mtu != 0)
		put_u32(&rb, IFLA_MTU, mtu);
	return transact(r, &rb, false, NULL, NULL, NULL);
}

int
rtnl_link_set_up(struct rtnl *r, int ifindex, bool up)
{
	return link_req(r, ifindex, IFF_UP, up ? IFF_UP : 0, 0);
}

int
rtnl_link_set_mtu(struct rtnl *r, int ifindex, uint32_t mtu)
{
	if (mtu == 0)
		return -EINVAL;
	return link_req(r, ifindex, 0, 0, mtu);
}

/*
 * Addresses.
 */

static int
addr_req(struct rtnl *r, uint16_t type, uint16_t flags,
    const struct rtnl_addr *a)
{
	struct reqbuf rb;
	struct ifaddrmsg *ifa;
	size_t alen = rtnl_family_addrlen(a->family);

	if (alen == 0)
		return -EAFNOSUPPORT;
	if (a->ifindex <= 0 || a->prefixlen > alen * 8)
		return -EINVAL;
	ifa = req_start(&rb, type, flags, sizeof *ifa);
	ifa->ifa_family = (uint8_t)a->family;
	ifa->ifa_prefixlen = a->prefixlen;
	ifa->ifa_flags = (uint8_t)a->flags;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = (uint32_t)a->ifindex;
	/* Both, equal, as `ip addr` sends them when there is no peer. */
	put(&rb, IFA_LOCAL, alen, a->addr);
	put(&rb, IFA_ADDRESS, alen, a->addr);
	if (type == RTM_NEWADDR && a->flags != 0)
		put_u32(&rb, IFA_FLAGS, a->flags);
	return transact(r, &rb, false, NULL, NULL, NULL);
}

int
rtnl_addr_add(struct rtnl *r, const struct rtnl_addr *a)
{
	/*
	 * NLM_F_REPLACE makes a present address a successful update (of its
	 * flags and lifetimes) instead of EEXIST, for IPv4 and IPv6 alike;
	 * it is what tailscaled's AddrReplace and `ip addr replace` do.
	 */
	return addr_req(r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, a);
}

int
rtnl_addr_del(struct rtnl *r, const struct rtnl_addr *a)
{
	int ret = addr_req(r, RTM_DELADDR, 0, a);

	return ret == -EADDRNOTAVAIL ? -ENOENT : ret;
}

static int
addr_cb(const struct nlmsghdr *nlh, void *arg)
{
	struct collect *c = arg;
	struct rtnl_addr a;
	int ret;

	if ((ret = rtnl_parse_addr(nlh, &a)) <= 0)
		return ret;
	if ((c->family != AF_UNSPEC && a.family != c->family) ||
	    (c->ifindex != 0 && a.ifindex != c->ifindex))
		return 0;
	return vec_push(&c->v, &a);
}

int
rtnl_addr_list(struct rtnl *r, int family, int ifindex, struct rtnl_addr **out,
    size_t *n)
{
	struct collect c = {
		.v.size = sizeof **out, .family = family, .ifindex = ifindex,
	};
	struct reqbuf rb;
	struct ifaddrmsg *ifa;
	int ret;

	if (!family_ok(family))
		ret = -EAFNOSUPPORT;
	else {
		ifa = req_start(&rb, RTM_GETADDR, 0, sizeof *ifa);
		ifa->ifa_family = (uint8_t)family;
		ret = dump(r, &rb, addr_cb, &c);
	}
	*out = finish_list(&c, ret, n);
	return ret;
}

/*
 * Routes.
 */

static int
route_req(struct rtnl *r, uint16_t type, uint16_t flags,
    const struct rtnl_route *rt)
{
	struct reqbuf rb;
	struct rtmsg *rtm;
	size_t alen = rtnl_family_addrlen(rt->family);
	uint32_t table = rt->table ? rt->table : RT_TABLE_MAIN;

	if (alen == 0)
		return -EAFNOSUPPORT;
	if (rt->dst_len > alen * 8 || rt->oif < 0)
		return -EINVAL;
	rtm = req_start(&rb, type, flags, sizeof *rtm);
	rtm->rtm_family = (uint8_t)rt->family;
	rtm->rtm_dst_len = rt->dst_len;
	rtm->rtm_tos = rt->tos;
	/* The 8-bit field for old kernels; RTA_TABLE below is authoritative. */
	rtm->rtm_table = table < 256 ? (uint8_t)table : RT_TABLE_UNSPEC;
	if (type == RTM_NEWROUTE) {
		rtm->rtm_protocol = rt->protocol ? rt->protocol : RTPROT_STATIC;
		rtm->rtm_type = rt->type ? rt->type : RTN_UNICAST;
		rtm->rtm_scope = rtm->rtm_type == RTN_UNICAST && rt->oif > 0 ?
		    RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
	} else {
		/* Zero protocol and type, and scope NOWHERE, match any. */
		rtm->rtm_protocol = RTPROT_UNSPEC;
		rtm->rtm_type = rt->type;
		rtm->rtm_scope = RT_SCOPE_NOWHERE;
	}
	if (rt->dst_len != 0)
		put(&rb, RTA_DST, alen, rt->dst);
	if (rt->oif > 0)
		put_u32(&rb, RTA_OIF, (uint32_t)rt->oif);
	if (rt->metric != 0)
		put_u32(&rb, RTA_PRIORITY, rt->metric);
	put_u32(&rb, RTA_TABLE, table);
	return transact(r, &rb, false, NULL, NULL, NULL);
}

int
rtnl_route_add(struct rtnl *r, const struct rtnl_route *rt)
{
	return route_req(r, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, rt);
}

int
rtnl_route_del(struct rtnl *r, const struct rtnl_route *rt)
{
	int ret = route_req(r, RTM_DELROUTE, 0, rt);

	return ret == -ESRCH ? -ENOENT : ret;
}

static int
route_cb(const struct nlmsghdr *nlh, void *arg)
{
	struct collect *c = arg;
	struct rtnl_route rt;
	int ret;

	if ((ret = rtnl_parse_route(nlh, &rt)) <= 0)
		return ret;
	if ((c->family != AF_UNSPEC && rt.family != c->family) ||
	    (c->table != 0 && rt.table != c->table))
		return 0;
	return vec_push(&c->v, &rt);
}

int
rtnl_route_list(struct rtnl *r, int family, uint32_t table,
    struct rtnl_route **out, size_t *n)
{
	struct collect c = {
		.v.size = sizeof **out, .family = family, .table = table,
	};
	struct reqbuf rb;
	struct rtmsg *rtm;
	int ret;

	if (!family_ok(family))
		ret = -EAFNOSUPPORT;
	else {
		/*
		 * Filtered here, not by the kernel: table filtering in the
		 * request needs NETLINK_GET_STRICT_CHK (4.20+).
		 */
		rtm = req_start(&rb, RTM_GETROUTE, 0, sizeof *rtm);
		rtm->rtm_family = (uint8_t)family;
		ret = dump(r, &rb, route_cb, &c);
	}
	*out = finish_list(&c, ret, n);
	return ret;
}

int
rtnl_route_flush_table(struct rtnl *r, int family, uint32_t table)
{
	struct rtnl_route *rts, rt;
	size_t i, n;
	int pass, ret, err;

	if (table == RT_TABLE_UNSPEC)
		return -EINVAL;
	for (pass = 0; pass < FLUSH_PASSES; pass++) {
		if ((ret = rtnl_route_list(r, family, table, &rts, &n)) < 0)
			return ret;
		if (n == 0)
			return 0;
		err = 0;
		for (i = 0; i < n; i++) {
			rt = rts[i];
			/*
			 * IPv6 reports reject routes (throw, unreachable) on
			 * lo, and IPv4 refuses a device on them.
			 */
			if (rt.type != RTN_UNICAST)
				rt.oif = 0;
			ret = rtnl_route_del(r, &rt);
			if (ret < 0 && ret != -ENOENT && err == 0)
				err = ret;
		}
		free(rts);
		if (err < 0)
			return err;
	}
	return -EBUSY;
}

/*
 * Rules.
 */

static uint32_t
rule_mask(const struct rtnl_rule *ru)
{
	if (ru->fwmask != 0)
		return ru->fwmask;
	return ru->fwmark != 0 ? 0xffffffffU : 0;
}

static uint8_t
rule_action(const struct rtnl_rule *ru)
{
	return ru->action ? ru->action : FR_ACT_TO_TBL;
}

static int
rule_check(const struct rtnl_rule *ru)
{
	if (rtnl_family_addrlen(ru->family) == 0)
		return -EAFNOSUPPORT;
	/*
	 * Priority 0 in a delete matches any rule; and for FR_ACT_TO_TBL
	 * without a table, IPv4 picks some empty table of its own.
	 */
	if (ru->priority == 0 ||
	    (rule_action(ru) == FR_ACT_TO_TBL && ru->table == 0))
		return -EINVAL;
	return 0;
}

static int
rule_req(struct rtnl *r, uint16_t type, uint16_t flags,
    const struct rtnl_rule *ru)
{
	struct reqbuf rb;
	struct fib_rule_hdr *frh;
	uint8_t action = rule_action(ru);
	uint32_t mask = rule_mask(ru);

	frh = req_start(&rb, type, flags, sizeof *frh);
	frh->family = (uint8_t)ru->family;
	frh->action = action;
	frh->flags = ru->invert ? FIB_RULE_INVERT : 0;
	if (action == FR_ACT_TO_TBL && ru->table < 256)
		frh->table = (uint8_t)ru->table;
	put_u32(&rb, FRA_PRIORITY, ru->priority);
	if (ru->fwmark != 0 || mask != 0) {
		put_u32(&rb, FRA_FWMARK, ru->fwmark);
		put_u32(&rb, FRA_FWMASK, mask);
	}
	if (action == FR_ACT_TO_TBL)
		put_u32(&rb, FRA_TABLE, ru->table);
	return transact(r, &rb, false, NULL, NULL, NULL);
}

static bool
rule_equal(const struct rtnl_rule *have, const struct rtnl_rule *want)
{
	uint8_t action = rule_action(want);

	return !have->other_selectors && have->family == want->family &&
	    have->priority == want->priority && have->action == action &&
	    have->invert == want->invert && have->fwmark == want->fwmark &&
	    have->fwmask == rule_mask(want) &&
	    (action != FR_ACT_TO_TBL || have->table == want->table);
}

int
rtnl_rule_add(struct rtnl *r, const struct rtnl_rule *ru)
{
	struct rtnl_rule *rules;
	bool found = false;
	size_t i, n;
	int ret;

	if ((ret = rule_check(ru)) < 0)
		return ret;
	if ((ret = rtnl_rule_list(r, ru->family, &rules, &n)) < 0)
		return ret;
	for (i = 0; i < n && !found; i++)
		found = rule_equal(&rules[i], ru);
	free(rules);
	if (found)
		return 0;
	/*
	 * NLM_F_EXCL: 4.16+ kernels refuse an equal rule with EEXIST, which
	 * closes the race with another writer between our dump and add.
	 */
	ret = rule_req(r, RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, ru);
	return ret == -EEXIST ? 0 : ret;
}

static int
rule_del(struct rtnl *r, const struct rtnl_rule *ru)
{
	int ret = rule_req(r, RTM_DELRULE, 0, ru);

	return ret == -ESRCH ? -ENOENT : ret;
}

int
rtnl_rule_del(struct rtnl *r, const struct rtnl_rule *ru)
{
	int ret;

	if ((ret = rule_check(ru)) < 0)
		return ret;
	return rule_del(r, ru);
}

static int
rule_cb(const struct nlmsghdr *nlh, void *arg)
{
	struct collect *c = arg;
	struct rtnl_rule ru;
	int ret;

	if ((ret = rtnl_parse_rule(nlh, &ru)) <= 0)
		return ret;
	if (c->family != AF_UNSPEC && ru.family != c->family)
		return 0;
	return vec_push(&c->v, &ru);
}

int
rtnl_rule_list(struct rtnl *r, int family, struct rtnl_rule **out, size_t *n)
{
	struct collect c = { .v.size = sizeof **out, .family = family };
	struct reqbuf rb;
	struct fib_rule_hdr *frh;
	int ret;

	if (!family_ok(family))
		ret = -EAFNOSUPPORT;
	else {
		frh = req_start(&rb, RTM_GETRULE, 0, sizeof *frh);
		frh->family = (uint8_t)family;
		ret = dump(r, &rb, rule_cb, &c);
	}
	*out = finish_list(&c, ret, n);
	return ret;
}

int
rtnl_rule_flush_priority(struct rtnl *r, int family, uint32_t lo, uint32_t hi)
{
	struct rtnl_rule *rules, ru;
	size_t i, n;
	bool any;
	int pass, ret, err;

	if (lo == 0 || lo > hi)
		return -EINVAL;
	for (pass = 0; pass < FLUSH_PASSES; pass++) {
		if ((ret = rtnl_rule_list(r, family, &rules, &n)) < 0)
			return ret;
		any = false;
		err = 0;
		for (i = 0; i < n; i++) {
			ru = rules[i];
			if (ru.priority < lo || ru.priority > hi)
				continue;
			any = true;
			/*
			 * The kernel deletes the first rule matching what we
			 * send; a rule with selectors we do not model may be
			 * matched by another one in range instead, and the
			 * next pass gets it.  No rule_check(): this deletes
			 * what the kernel showed us, whatever its action.
			 */
			ret = rule_del(r, &ru);
			if (ret < 0 && ret != -ENOENT && err == 0)
				err = ret;
		}
		free(rules);
		if (err < 0)
			return err;
		if (!any)
			return 0;
	}
	return -EBUSY;
}

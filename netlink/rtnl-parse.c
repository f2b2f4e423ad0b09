// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * Parsers for rtnetlink messages.  Replies and notifications are untrusted
 * input like any other: every fixed header is length-checked before it is
 * read, and every attribute we use is checked for type and exact size
 * before its payload is touched.  Attributes we do not know are skipped,
 * since newer kernels add them all the time.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/fib_rules.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>

#include <libmnl/libmnl.h>

#include "common/log.h"
#include "netlink/rtnl-int.h"

/* What an attribute we read must look like. */
enum {
	A_IGNORE = 0,
	A_U8,
	A_U32,
	A_STR,		/* NUL-terminated */
	A_ADDR,		/* 4 or 16 bytes; callers check the family's */
	A_PRESENT,	/* only its presence matters */
};

struct attrs {
	const uint8_t		*policy;
	uint16_t		max;
	bool			unknown;	/* saw a type beyond max */
	const struct nlattr	**tb;
};

size_t
rtnl_family_addrlen(int family)
{
	switch (family) {
	case AF_INET:
		return 4;
	case AF_INET6:
		return 16;
	default:
		return 0;
	}
}

static int
attr_cb(const struct nlattr *a, void *data)
{
	struct attrs *t = data;
	uint16_t type = mnl_attr_get_type(a);
	uint16_t len;
	int ok = 0;

	if (type > t->max) {
		t->unknown = true;
		return MNL_CB_OK;
	}
	switch (t->policy[type]) {
	case A_IGNORE:
		return MNL_CB_OK;
	case A_U8:
		ok = mnl_attr_validate(a, MNL_TYPE_U8);
		break;
	case A_U32:
		ok = mnl_attr_validate(a, MNL_TYPE_U32);
		break;
	case A_STR:
		ok = mnl_attr_validate(a, MNL_TYPE_NUL_STRING);
		break;
	case A_ADDR:
		len = mnl_attr_get_payload_len(a);
		ok = len == 4 || len == 16 ? 0 : -1;
		break;
	case A_PRESENT:
		break;
	}
	if (ok < 0) {
		log_debug("rtnl: bad attribute type %u len %u", type,
		    mnl_attr_get_payload_len(a));
		return MNL_CB_ERROR;
	}
	t->tb[type] = a;
	return MNL_CB_OK;
}

/*
 * Check that the message holds a fixed header of hdrlen bytes, return it
 * through *hdr, and fill tb[0..max] with the attributes that follow.  The
 * attribute area is bounded by nlmsg_len exactly (not rounded up), so a
 * message that ends unaligned cannot make us read past it.
 */
static int
parse_attrs(const struct nlmsghdr *nlh, size_t hdrlen, const void **hdr,
    const uint8_t *policy, uint16_t max, const struct nlattr **tb,
    bool *unknown)
{
	struct attrs t = { .policy = policy, .max = max, .tb = tb };
	size_t plen, off = MNL_ALIGN(hdrlen);
	const uint8_t *payload;

	if (nlh->nlmsg_len < NLMSG_HDRLEN)
		return -EPROTO;
	plen = nlh->nlmsg_len - NLMSG_HDRLEN;
	if (plen < off)
		return -EPROTO;
	payload = mnl_nlmsg_get_payload(nlh);
	*hdr = payload;
	memset(tb, 0, (max + 1U) * sizeof *tb);
	if (mnl_attr_parse_payload(payload + off, plen - off, attr_cb, &t) < 0)
		return -EPROTO;
	if (unknown != NULL)
		*unknown = t.unknown;
	return 0;
}

/* Copy an address attribute, which must be exactly the family's size. */
static int
get_addr(const struct nlattr *a, size_t alen, uint8_t dst[16])
{
	if (mnl_attr_get_payload_len(a) != alen)
		return -EPROTO;
	memcpy(dst, mnl_attr_get_payload(a), alen);
	return 0;
}

static int
get_ifindex(const struct nlattr *a, int *out)
{
	uint32_t v = mnl_attr_get_u32(a);

	if (v > INT_MAX)
		return -EPROTO;
	*out = (int)v;
	return 0;
}

static const uint8_t link_policy[IFLA_MAX + 1] = {
	[IFLA_IFNAME] = A_STR,
	[IFLA_MTU] = A_U32,
	[IFLA_OPERSTATE] = A_U8,
};

int
rtnl_parse_link(const struct nlmsghdr *nlh, struct rtnl_link *out)
{
	const struct nlattr *tb[IFLA_MAX + 1];
	const struct ifinfomsg *ifi;
	const void *hdr;
	const char *name;
	int ret;

	if (nlh->nlmsg_type != RTM_NEWLINK && nlh->nlmsg_type != RTM_DELLINK)
		return 0;
	ret = parse_attrs(nlh, sizeof *ifi, &hdr, link_policy, IFLA_MAX, tb,
	    NULL);
	if (ret < 0)
		return ret;
	ifi = hdr;
	if (ifi->ifi_index <= 0)
		return -EPROTO;
	memset(out, 0, sizeof *out);
	out->ifindex = ifi->ifi_index;
	out->flags = ifi->ifi_flags;
	out->change = ifi->ifi_change;
	if (tb[IFLA_MTU] != NULL)
		out->mtu = mnl_attr_get_u32(tb[IFLA_MTU]);
	if (tb[IFLA_OPERSTATE] != NULL)
		out->operstate = mnl_attr_get_u8(tb[IFLA_OPERSTATE]);
	if (tb[IFLA_IFNAME] != NULL) {
		name = mnl_attr_get_str(tb[IFLA_IFNAME]);
		/* NUL-terminated (validated); refuse impossible lengths. */
		if (strlen(name) >= sizeof out->name)
			return -EPROTO;
		memcpy(out->name, name, strlen(name) + 1);
	}
	return 1;
}

static const uint8_t addr_policy[IFA_MAX + 1] = {
	[IFA_ADDRESS] = A_ADDR,
	[IFA_LOCAL] = A_ADDR,
	[IFA_FLAGS] = A_U32,
};

int
rtnl_parse_addr(const struct nlmsghdr *nlh, struct rtnl_addr *out)
{
	const struct nlattr *tb[IFA_MAX + 1];
	const struct ifaddrmsg *ifa;
	const struct nlattr *a;
	const void *hdr;
	size_t alen;
	int ret;

	if (nlh->nlmsg_type != RTM_NEWADDR && nlh->nlmsg_type != RTM_DELADDR)
		return 0;
	ret = parse_attrs(nlh, sizeof *ifa, &hdr, addr_policy, IFA_MAX, tb,
	    NULL);
	if (ret < 0)
		return ret;
	ifa = hdr;
	if ((alen = rtnl_family_addrlen(ifa->ifa_family)) == 0)
		return 0;
	if (ifa->ifa_prefixlen > alen * 8 || ifa->ifa_index == 0 ||
	    ifa->ifa_index > INT_MAX)
		return -EPROTO;
	/*
	 * IFA_LOCAL is the address itself; IFA_ADDRESS is the peer on a
	 * point-to-point IPv4 link.  IPv6 usually sends IFA_ADDRESS alone.
	 */
	if ((a = tb[IFA_LOCAL]) == NULL && (a = tb[IFA_ADDRESS]) == NULL)
		return -EPROTO;
	memset(out, 0, sizeof *out);
	if (get_addr(a, alen, out->addr) < 0)
		return -EPROTO;
	out->family = ifa->ifa_family;
	out->ifindex = (int)ifa->ifa_index;
	out->prefixlen = ifa->ifa_prefixlen;
	out->scope = ifa->ifa_scope;
	/* IFA_FLAGS carries the bits that do not fit the 8-bit ifa_flags. */
	out->flags = tb[IFA_FLAGS] != NULL ?
	    mnl_attr_get_u32(tb[IFA_FLAGS]) : ifa->ifa_flags;
	return 1;
}

static const uint8_t route_policy[RTA_MAX + 1] = {
	[RTA_DST] = A_ADDR,
	[RTA_OIF] = A_U32,
	[RTA_PRIORITY] = A_U32,
	[RTA_TABLE] = A_U32,
};

int
rtnl_parse_route(const struct nlmsghdr *nlh, struct rtnl_route *out)
{
	const struct nlattr *tb[RTA_MAX + 1];
	const struct rtmsg *rtm;
	const void *hdr;
	size_t alen;
	int ret;

	if (nlh->nlmsg_type != RTM_NEWROUTE && nlh->nlmsg_type != RTM_DELROUTE)
		return 0;
	ret = parse_attrs(nlh, sizeof *rtm, &hdr, route_policy, RTA_MAX, tb,
	    NULL);
	if (ret < 0)
		return ret;
	rtm = hdr;
	/* RTNL_FAMILY_IPMR, MPLS and the rest are not ours. */
	if ((alen = rtnl_family_addrlen(rtm->rtm_family)) == 0)
		return 0;
	if (rtm->rtm_dst_len > alen * 8)
		return -EPROTO;
	memset(out, 0, sizeof *out);
	out->family = rtm->rtm_family;
	out->dst_len = rtm->rtm_dst_len;
	out->type = rtm->rtm_type;
	out->protocol = rtm->rtm_protocol;
	out->scope = rtm->rtm_scope;
	out->tos = rtm->rtm_tos;
	/* rtm_table holds only 8 bits; RTA_TABLE has the real id. */
	out->table = tb[RTA_TABLE] != NULL ?
	    mnl_attr_get_u32(tb[RTA_TABLE]) : rtm->rtm_table;
	if (tb[RTA_DST] != NULL && get_addr(tb[RTA_DST], alen, out->dst) < 0)
		return -EPROTO;
	if (tb[RTA_OIF] != NULL && get_ifindex(tb[RTA_OIF], &out->oif) < 0)
		return -EPROTO;
	if (tb[RTA_PRIORITY] != NULL)
		out->metric = mnl_attr_get_u32(tb[RTA_PRIORITY]);
	return 1;
}

/*
 * Rule attributes.  Everything that narrows what a rule matches, beyond
 * the priority and fwmark we model, is A_PRESENT so that other_selectors
 * can be set; so is any attribute newer than our headers, since it may be
 * a selector too.
 */
static const uint8_t rule_policy[FRA_MAX + 1] = {
	[FRA_PRIORITY] = A_U32,
	[FRA_FWMARK] = A_U32,
	[FRA_FWMASK] = A_U32,
	[FRA_TABLE] = A_U32,
	[FRA_DST] = A_PRESENT,
	[FRA_SRC] = A_PRESENT,
	[FRA_IIFNAME] = A_PRESENT,
	[FRA_OIFNAME] = A_PRESENT,
	[FRA_GOTO] = A_PRESENT,
	[FRA_FLOW] = A_PRESENT,
	[FRA_TUN_ID] = A_PRESENT,
	[FRA_SUPPRESS_IFGROUP] = A_U32,
	[FRA_SUPPRESS_PREFIXLEN] = A_U32,
	[FRA_L3MDEV] = A_PRESENT,
	[FRA_UID_RANGE] = A_PRESENT,
	[FRA_IP_PROTO] = A_PRESENT,
	[FRA_SPORT_RANGE] = A_PRESENT,
	[FRA_DPORT_RANGE] = A_PRESENT,
};

static const uint16_t rule_selectors[] = {
	FRA_DST, FRA_SRC, FRA_IIFNAME, FRA_OIFNAME, FRA_GOTO, FRA_FLOW,
	FRA_TUN_ID, FRA_L3MDEV, FRA_UID_RANGE, FRA_IP_PROTO, FRA_SPORT_RANGE,
	FRA_DPORT_RANGE,
};

/*
 * The kernel always sends FRA_SUPPRESS_PREFIXLEN, as -1 when unset (and
 * FRA_SUPPRESS_IFGROUP likewise if at all), so only a real value counts.
 */
static bool
suppress_set(const struct nlattr *a)
{
	return a != NULL && mnl_attr_get_u32(a) != 0xffffffffU;
}

int
rtnl_parse_rule(const struct nlmsghdr *nlh, struct rtnl_rule *out)
{
	const struct nlattr *tb[FRA_MAX + 1];
	const struct fib_rule_hdr *frh;
	const void *hdr;
	bool unknown;
	size_t i;
	int ret;

	if (nlh->nlmsg_type != RTM_NEWRULE && nlh->nlmsg_type != RTM_DELRULE)
		return 0;
	ret = parse_attrs(nlh, sizeof *frh, &hdr, rule_policy, FRA_MAX, tb,
	    &unknown);
	if (ret < 0)
		return ret;
	frh = hdr;
	if (rtnl_family_addrlen(frh->family) == 0)
		return 0;
	memset(out, 0, sizeof *out);
	out->family = frh->family;
	out->action = frh->action;
	out->invert = (frh->flags & FIB_RULE_INVERT) != 0;
	out->table = tb[FRA_TABLE] != NULL ?
	    mnl_attr_get_u32(tb[FRA_TABLE]) : frh->table;
	/* The kernel leaves FRA_PRIORITY out for priority 0. */
	if (tb[FRA_PRIORITY] != NULL)
		out->priority = mnl_attr_get_u32(tb[FRA_PRIORITY]);
	if (tb[FRA_FWMARK] != NULL)
		out->fwmark = mnl_attr_get_u32(tb[FRA_FWMARK]);
	/*
	 * The kernel omits FRA_FWMASK when the mask is 0xffffffff, and omits
	 * FRA_FWMARK (sending a 0 mask) for rules without a mark, which
	 * leaves both 0 here: our "no mark" convention.
	 */
	if (tb[FRA_FWMASK] != NULL)
		out->fwmask = mnl_attr_get_u32(tb[FRA_FWMASK]);
	else if (tb[FRA_FWMARK] != NULL)
		out->fwmask = 0xffffffffU;
	out->other_selectors = unknown || frh->dst_len != 0 ||
	    frh->src_len != 0 || frh->tos != 0 ||
	    suppress_set(tb[FRA_SUPPRESS_PREFIXLEN]) ||
	    suppress_set(tb[FRA_SUPPRESS_IFGROUP]);
	for (i = 0; i < ARRAY_SIZE(rule_selectors); i++)
		if (tb[rule_selectors[i]] != NULL)
			out->other_selectors = true;
	return 1;
}

bool
rtnl_msg_ok(const struct nlmsghdr *nlh, size_t len)
{
	return len >= NLMSG_HDRLEN && nlh->nlmsg_len >= NLMSG_HDRLEN &&
	    nlh->nlmsg_len <= len;
}

const struct nlmsghdr *
rtnl_msg_next(const struct nlmsghdr *nlh, size_t *len)
{
	/* The last message may end unaligned; never step past the data. */
	size_t step = MIN((size_t)NLMSG_ALIGN(nlh->nlmsg_len), *len);

	*len -= step;
	return (const struct nlmsghdr *)((const uint8_t *)nlh + step);
}

ssize_t
rtnl_recv(int fd, void *buf, size_t len, int flags)
{
	struct sockaddr_nl sa;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = {
		.msg_name = &sa,
		.msg_namelen = sizeof sa,
		.msg_iov = &iov,
		.msg_iovlen = 1,
	};
	ssize_t n;

	if ((n = recvmsg(fd, &msg, flags)) < 0)
		return -errno;
	if (msg.msg_flags & MSG_TRUNC)
		return -EMSGSIZE;
	/*
	 * Only the kernel (port 0) speaks rtnetlink to us; a process with
	 * CAP_NET_ADMIN could send to our port id, and we drop that.
	 */
	if (msg.msg_namelen != sizeof sa || sa.nl_family != AF_NETLINK ||
	    sa.nl_pid != 0) {
		log_debug("rtnl: dropped a datagram not from the kernel");
		return 0;
	}
	return n;
}

/* The errno in an NLMSG_ERROR; 0 is an ACK. */
static int
parse_error(const struct nlmsghdr *nlh)
{
	const struct nlmsgerr *e;
	const struct nlattr *tb[NLMSGERR_ATTR_MAX + 1];
	static const uint8_t policy[NLMSGERR_ATTR_MAX + 1] = {
		[NLMSGERR_ATTR_MSG] = A_STR,
	};
	struct attrs t = {
		.policy = policy, .max = NLMSGERR_ATTR_MAX, .tb = tb,
	};
	size_t plen = nlh->nlmsg_len - NLMSG_HDRLEN, off;
	const uint8_t *payload = mnl_nlmsg_get_payload(nlh);

	if (plen < sizeof *e)
		return -EPROTO;
	e = (const struct nlmsgerr *)payload;
	if (e->error > 0 || e->error < -4095)
		return -EPROTO;
	if (e->error == 0 || !(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return e->error;
	/*
	 * Extended ACK: TLVs follow the echoed request, which is only its
	 * header when NETLINK_CAP_ACK took effect.  Used for the debug log
	 * alone, so anything odd just skips it.
	 */
	off = sizeof *e;
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) {
		if (e->msg.nlmsg_len < NLMSG_HDRLEN)
			return e->error;
		off += e->msg.nlmsg_len - NLMSG_HDRLEN;
	}
	off = MNL_ALIGN(off);
	memset(tb, 0, sizeof tb);
	if (off <= plen && mnl_attr_parse_payload(payload + off, plen - off,
	    attr_cb, &t) >= 0 && tb[NLMSGERR_ATTR_MSG] != NULL)
		log_debug("rtnl: kernel says: %s (%s)",
		    mnl_attr_get_str(tb[NLMSGERR_ATTR_MSG]),
		    strerror(-e->error));
	return e->error;
}

/* NLMSG_DONE carries the dump's own error code, normally 0. */
static int
parse_done(const struct nlmsghdr *nlh)
{
	int v;

	if (nlh->nlmsg_len - NLMSG_HDRLEN < sizeof v)
		return 0;
	memcpy(&v, mnl_nlmsg_get_payload(nlh), sizeof v);
	if (v > 0)
		return 0;
	return v < -4095 ? -EPROTO : v;
}

static void
set_err(struct rtnl_reply *st, int err)
{
	if (err < 0 && st->err == 0)
		st->err = err;
}

void
rtnl_reply_walk(struct rtnl_reply *st, const void *buf, size_t len)
{
	const struct nlmsghdr *nlh = buf;
	size_t rem = len;

	for (; !st->done && rtnl_msg_ok(nlh, rem);
	    nlh = rtnl_msg_next(nlh, &rem)) {
		/*
		 * A reply to an earlier request that gave up (timeout,
		 * truncated datagram) is skipped rather than failing this
		 * one, so a single lost reply cannot wedge the socket.
		 */
		if (nlh->nlmsg_seq != st->seq || nlh->nlmsg_pid != st->portid)
			continue;
		if (nlh->nlmsg_flags & NLM_F_DUMP_INTR)
			st->intr = true;
		switch (nlh->nlmsg_type) {
		case NLMSG_ERROR:
			set_err(st, parse_error(nlh));
			st->done = true;
			break;
		case NLMSG_DONE:
			set_err(st, parse_done(nlh));
			st->done = true;
			break;
		default:
			/* NLMSG_NOOP, NLMSG_OVERRUN and reserved types. */
			if (nlh->nlmsg_type < NLMSG_MIN_TYPE)
				break;
			/* After an error, keep draining but stop delivering. */
			if (st->err == 0 && st->fn != NULL)
				set_err(st, st->fn(nlh, st->arg));
			break;
		}
	}
}

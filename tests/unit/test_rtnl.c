// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * netlink/rtnl against the real kernel, inside a network namespace of its
 * own: the group setup calls unshare(CLONE_NEWNET), so every link, route
 * and rule made here disappears when the process exits and the host is
 * never touched.  Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and
 * /dev/net/tun; without them the setup fails, loudly, rather than skip.
 *
 * The parser tests at the top need no kernel: they feed the parsers and
 * the reply walker hand-made and random bytes.
 *
 * MESHD_DEBUG=1 in the environment turns on debug logging (the kernel's
 * extended-ACK messages among it).
 */
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <linux/fib_rules.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/rtnetlink.h>

#include <libmnl/libmnl.h>
#include <cmocka.h>

#include "common/log.h"
#include "netlink/rtnl-int.h"
#include "netlink/rtnl.h"
#include "wg/tun.h"

#define TUN_NAME	"rt0"
#define TUN2_NAME	"rt1"
#define BOGUS_IFINDEX	999999
#define TS_MARK		0x80000U
#define TS_MASK		0xff0000U

static struct {
	struct rtnl	*r;
	int		tun_fd;
	int		ifindex;
} fx = { .tun_fd = -1 };

/*
 * Helpers.
 */

static void
pton(int family, const char *s, uint8_t out[16])
{
	memset(out, 0, 16);
	assert_int_equal(inet_pton(family, s, out), 1);
}

static struct rtnl_addr
mkaddr(int family, const char *s, uint8_t plen)
{
	struct rtnl_addr a = {
		.family = family, .ifindex = fx.ifindex, .prefixlen = plen,
	};

	pton(family, s, a.addr);
	/* A TUN is IFF_NOARP and does no DAD anyway; say so explicitly. */
	if (family == AF_INET6)
		a.flags = IFA_F_NODAD;
	return a;
}

static struct rtnl_route
mkroute(int family, uint32_t table, uint8_t type, const char *dst,
    uint8_t dst_len, int oif)
{
	struct rtnl_route rt = {
		.family = family, .table = table, .type = type,
		.dst_len = dst_len, .oif = oif,
	};

	pton(family, dst, rt.dst);
	return rt;
}

static struct rtnl_rule
mkrule(int family, uint32_t prio, uint32_t mark, uint32_t mask,
    uint8_t action, uint32_t table)
{
	struct rtnl_rule ru = {
		.family = family, .priority = prio, .fwmark = mark,
		.fwmask = mask, .action = action, .table = table,
	};

	return ru;
}

/* A plain TUN (no offloads) through the project's own tun_open(). */
static int
tun_create(const char *name)
{
	char ifname[IFNAMSIZ];
	char *cause = NULL;
	bool vnet;
	int fd;

	snprintf(ifname, sizeof ifname, "%s", name);
	fd = tun_open(ifname, false, &vnet, &cause);
	free(cause);
	return fd;
}

/* Independent of rtnl: the ioctl view of a link. */
static void
ioctl_link(const char *name, int *mtu, short *flags)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(s >= 0);
	memset(&ifr, 0, sizeof ifr);
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
	assert_int_equal(ioctl(s, SIOCGIFMTU, &ifr), 0);
	*mtu = ifr.ifr_mtu;
	assert_int_equal(ioctl(s, SIOCGIFFLAGS, &ifr), 0);
	*flags = ifr.ifr_flags;
	close(s);
}

static size_t
count_addr(const struct rtnl_addr *v, size_t n, const struct rtnl_addr *want)
{
	size_t i, c = 0;

	for (i = 0; i < n; i++)
		if (v[i].family == want->family &&
		    v[i].ifindex == want->ifindex &&
		    v[i].prefixlen == want->prefixlen &&
		    memcmp(v[i].addr, want->addr,
		    rtnl_family_addrlen(want->family)) == 0)
			c++;
	return c;
}

static size_t
addr_on_link(const struct rtnl_addr *want)
{
	struct rtnl_addr *v;
	size_t n, c;

	assert_int_equal(rtnl_addr_list(fx.r, want->family, want->ifindex, &v,
	    &n), 0);
	c = count_addr(v, n, want);
	free(v);
	return c;
}

/* Independent of rtnl: getifaddrs() parses its own dump. */
static bool
getifaddrs_has(const char *ifname, const struct rtnl_addr *want)
{
	struct ifaddrs *ifa, *p;
	bool found = false;
	const void *b;

	assert_int_equal(getifaddrs(&ifa), 0);
	for (p = ifa; p != NULL && !found; p = p->ifa_next) {
		if (p->ifa_addr == NULL || strcmp(p->ifa_name, ifname) != 0 ||
		    p->ifa_addr->sa_family != want->family)
			continue;
		if (want->family == AF_INET)
			b = &((struct sockaddr_in *)(void *)p->ifa_addr)->sin_addr;
		else
			b = &((struct sockaddr_in6 *)(void *)
			    p->ifa_addr)->sin6_addr;
		found = memcmp(b, want->addr,
		    rtnl_family_addrlen(want->family)) == 0;
	}
	freeifaddrs(ifa);
	return found;
}

static size_t
count_route(const struct rtnl_route *v, size_t n, const struct rtnl_route *want)
{
	size_t i, c = 0;

	for (i = 0; i < n; i++)
		if (v[i].family == want->family && v[i].table == want->table &&
		    v[i].dst_len == want->dst_len &&
		    v[i].type == (want->type ? want->type : RTN_UNICAST) &&
		    (want->oif == 0 || v[i].oif == want->oif) &&
		    memcmp(v[i].dst, want->dst, 16) == 0)
			c++;
	return c;
}

static size_t
route_in_table(const struct rtnl_route *want)
{
	struct rtnl_route *v;
	size_t n, c;

	assert_int_equal(rtnl_route_list(fx.r, want->family, want->table, &v,
	    &n), 0);
	c = count_route(v, n, want);
	free(v);
	return c;
}

static size_t
count_rule(const struct rtnl_rule *v, size_t n, const struct rtnl_rule *want)
{
	uint8_t action = want->action ? want->action : FR_ACT_TO_TBL;
	size_t i, c = 0;

	for (i = 0; i < n; i++)
		if (v[i].family == want->family &&
		    v[i].priority == want->priority &&
		    v[i].fwmark == want->fwmark &&
		    v[i].fwmask == want->fwmask && v[i].action == action &&
		    v[i].invert == want->invert && !v[i].other_selectors &&
		    (action != FR_ACT_TO_TBL || v[i].table == want->table))
			c++;
	return c;
}

static size_t
rules_in_range(int family, uint32_t lo, uint32_t hi)
{
	struct rtnl_rule *v;
	size_t i, n, c = 0;

	assert_int_equal(rtnl_rule_list(fx.r, family, &v, &n), 0);
	for (i = 0; i < n; i++)
		if (v[i].priority >= lo && v[i].priority <= hi)
			c++;
	free(v);
	return c;
}

/*
 * Parser tests: no kernel involved.
 */

/* Start a message in buf; returns its fixed header, *nlhp its netlink one. */
static void *
msg_start(void *buf, size_t size, uint16_t type, size_t hdrlen,
    struct nlmsghdr **nlhp)
{
	struct nlmsghdr *nlh;

	memset(buf, 0, size);
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = type;
	*nlhp = nlh;
	return mnl_nlmsg_put_extra_header(nlh, hdrlen);
}

/* An attribute with any nla_len we like, past libmnl's checks. */
static void
put_raw_attr(struct nlmsghdr *nlh, uint16_t type, uint16_t nla_len,
    const void *data, size_t datalen)
{
	struct nlattr *a = mnl_nlmsg_get_payload_tail(nlh);

	a->nla_type = type;
	a->nla_len = nla_len;
	memcpy(a + 1, data, datalen);
	nlh->nlmsg_len += MNL_ALIGN(sizeof *a + datalen);
}

static void
test_parse_addr(void **state)
{
	_Alignas(struct nlmsghdr) uint8_t buf[256];
	struct nlmsghdr *nlh;
	struct ifaddrmsg *ifa;
	struct rtnl_addr a;
	uint8_t v4[4] = { 100, 64, 0, 1 }, v6[16] = { 0xfd, 0x7a };

	/* Well-formed. */
	ifa = msg_start(buf, sizeof buf, RTM_NEWADDR, sizeof *ifa, &nlh);
	ifa->ifa_family = AF_INET;
	ifa->ifa_prefixlen = 32;
	ifa->ifa_index = 7;
	mnl_attr_put(nlh, IFA_LOCAL, 4, v4);
	mnl_attr_put_u32(nlh, IFA_FLAGS, IFA_F_PERMANENT | IFA_F_NOPREFIXROUTE);
	assert_int_equal(rtnl_parse_addr(nlh, &a), 1);
	assert_int_equal(a.family, AF_INET);
	assert_int_equal(a.ifindex, 7);
	assert_int_equal(a.prefixlen, 32);
	assert_memory_equal(a.addr, v4, 4);
	assert_int_equal(a.flags, IFA_F_PERMANENT | IFA_F_NOPREFIXROUTE);

	/* An IPv6-sized address in an IPv4 message. */
	ifa = msg_start(buf, sizeof buf, RTM_NEWADDR, sizeof *ifa, &nlh);
	ifa->ifa_family = AF_INET;
	ifa->ifa_index = 7;
	mnl_attr_put(nlh, IFA_LOCAL, 16, v6);
	assert_int_equal(rtnl_parse_addr(nlh, &a), -EPROTO);

	/* A 3-byte address. */
	ifa = msg_start(buf, sizeof buf, RTM_NEWADDR, sizeof *ifa, &nlh);
	ifa->ifa_family = AF_INET;
	ifa->ifa_index = 7;
	mnl_attr_put(nlh, IFA_ADDRESS, 3, v4);
	assert_int_equal(rtnl_parse_addr(nlh, &a), -EPROTO);

	/* IFA_FLAGS of the wrong size. */
	ifa = msg_start(buf, sizeof buf, RTM_NEWADDR, sizeof *ifa, &nlh);
	ifa->ifa_family = AF_INET6;
	ifa->ifa_prefixlen = 128;
	ifa->ifa_index = 7;
	mnl_attr_put(nlh, IFA_ADDRESS, 16, v6);
	mnl_attr_put_u16(nlh, IFA_FLAGS, 1);
	assert_int_equal(rtnl_parse_addr(nlh, &a), -EPROTO);

	/* Prefix length beyond the family. */
	ifa = msg_start(buf, sizeof buf, RTM_NEWADDR, sizeof *ifa, &nlh);
	ifa->ifa_family = AF_INET;
	ifa->ifa_prefixlen = 33;
	ifa->ifa_index = 7;
	mnl_attr_put(nlh, IFA_LOCAL, 4, v4);
	assert_int_equal(rtnl_parse_addr(nlh, &a), -EPROTO);

	/* An attribute claiming more bytes than the message has: no address. */
	ifa = msg_start(buf, sizeof buf, RTM_NEWADDR, sizeof *ifa, &nlh);
	ifa->ifa_family = AF_INET;
	ifa->ifa_index = 7;
	put_raw_attr(nlh, IFA_LOCAL, 200, v4, 4);
	assert_int_equal(rtnl_parse_addr(nlh, &a), -EPROTO);

	/* Shorter than struct ifaddrmsg. */
	ifa = msg_start(buf, sizeof buf, RTM_NEWADDR, 0, &nlh);
	nlh->nlmsg_len += 4;
	assert_int_equal(rtnl_parse_addr(nlh, &a), -EPROTO);

	/* Another family is skipped, not an error. */
	ifa = msg_start(buf, sizeof buf, RTM_NEWADDR, sizeof *ifa, &nlh);
	ifa->ifa_family = AF_PACKET;
	ifa->ifa_index = 7;
	assert_int_equal(rtnl_parse_addr(nlh, &a), 0);
}

static void
test_parse_link_route_rule(void **state)
{
	_Alignas(struct nlmsghdr) uint8_t buf[256];
	struct nlmsghdr *nlh;
	struct ifinfomsg *ifi;
	struct rtmsg *rtm;
	struct fib_rule_hdr *frh;
	struct rtnl_link l;
	struct rtnl_route rt;
	struct rtnl_rule ru;
	struct rtnl_event ev;
	uint8_t v4[4] = { 100, 64, 0, 0 };

	ifi = msg_start(buf, sizeof buf, RTM_NEWLINK, sizeof *ifi, &nlh);
	ifi->ifi_index = 3;
	ifi->ifi_flags = IFF_UP;
	ifi->ifi_change = IFF_UP;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, "rt0");
	mnl_attr_put_u32(nlh, IFLA_MTU, 1280);
	assert_int_equal(rtnl_parse_link(nlh, &l), 1);
	assert_string_equal(l.name, "rt0");
	assert_int_equal(l.mtu, 1280);
	assert_int_equal(rtnl_parse_event(nlh, &ev), 1);
	assert_int_equal(ev.kind, RTNL_EV_LINK_UP);
	ifi->ifi_change = ~0U;
	assert_int_equal(rtnl_parse_event(nlh, &ev), 1);
	assert_int_equal(ev.kind, RTNL_EV_LINK_NEW);

	/* Name without its NUL. */
	ifi = msg_start(buf, sizeof buf, RTM_NEWLINK, sizeof *ifi, &nlh);
	ifi->ifi_index = 3;
	mnl_attr_put(nlh, IFLA_IFNAME, 3, "rt0");
	assert_int_equal(rtnl_parse_link(nlh, &l), -EPROTO);
	/* Name longer than IFNAMSIZ. */
	ifi = msg_start(buf, sizeof buf, RTM_NEWLINK, sizeof *ifi, &nlh);
	ifi->ifi_index = 3;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, "abcdefghijklmnopqrstuvwxyz");
	assert_int_equal(rtnl_parse_link(nlh, &l), -EPROTO);
	/* 2-byte MTU. */
	ifi = msg_start(buf, sizeof buf, RTM_NEWLINK, sizeof *ifi, &nlh);
	ifi->ifi_index = 3;
	mnl_attr_put_u16(nlh, IFLA_MTU, 1280);
	assert_int_equal(rtnl_parse_link(nlh, &l), -EPROTO);
	/* ifindex 0. */
	ifi = msg_start(buf, sizeof buf, RTM_NEWLINK, sizeof *ifi, &nlh);
	assert_int_equal(rtnl_parse_link(nlh, &l), -EPROTO);

	rtm = msg_start(buf, sizeof buf, RTM_NEWROUTE, sizeof *rtm, &nlh);
	rtm->rtm_family = AF_INET;
	rtm->rtm_dst_len = 10;
	rtm->rtm_type = RTN_UNICAST;
	mnl_attr_put(nlh, RTA_DST, 4, v4);
	mnl_attr_put_u32(nlh, RTA_TABLE, 52);
	mnl_attr_put_u32(nlh, RTA_OIF, 3);
	assert_int_equal(rtnl_parse_route(nlh, &rt), 1);
	assert_int_equal(rt.table, 52);
	assert_int_equal(rt.oif, 3);
	assert_memory_equal(rt.dst, v4, 4);
	rtm->rtm_dst_len = 33;
	assert_int_equal(rtnl_parse_route(nlh, &rt), -EPROTO);
	rtm->rtm_dst_len = 10;
	mnl_attr_put_u32(nlh, RTA_OIF, 0x80000000U);
	assert_int_equal(rtnl_parse_route(nlh, &rt), -EPROTO);
	/* MPLS and multicast routing tables are skipped. */
	rtm->rtm_family = AF_MPLS;
	assert_int_equal(rtnl_parse_route(nlh, &rt), 0);
	rtm->rtm_family = RTNL_FAMILY_IPMR;
	assert_int_equal(rtnl_parse_route(nlh, &rt), 0);

	frh = msg_start(buf, sizeof buf, RTM_NEWRULE, sizeof *frh, &nlh);
	frh->family = AF_INET;
	frh->action = FR_ACT_TO_TBL;
	mnl_attr_put_u32(nlh, FRA_PRIORITY, 5210);
	mnl_attr_put_u32(nlh, FRA_FWMARK, TS_MARK);
	mnl_attr_put_u32(nlh, FRA_FWMASK, TS_MASK);
	mnl_attr_put_u32(nlh, FRA_TABLE, RT_TABLE_MAIN);
	/* Always sent; -1 means unset. */
	mnl_attr_put_u32(nlh, FRA_SUPPRESS_PREFIXLEN, 0xffffffffU);
	mnl_attr_put_u8(nlh, FRA_PROTOCOL, RTPROT_BOOT);
	assert_int_equal(rtnl_parse_rule(nlh, &ru), 1);
	assert_int_equal(ru.priority, 5210);
	assert_int_equal(ru.fwmark, TS_MARK);
	assert_int_equal(ru.fwmask, TS_MASK);
	assert_int_equal(ru.table, RT_TABLE_MAIN);
	assert_false(ru.other_selectors);
	/* A selector we do not model. */
	mnl_attr_put_strz(nlh, FRA_IIFNAME, "eth0");
	assert_int_equal(rtnl_parse_rule(nlh, &ru), 1);
	assert_true(ru.other_selectors);
	/* wg-quick's "suppress_prefixlength 0" is not our rule either. */
	frh = msg_start(buf, sizeof buf, RTM_NEWRULE, sizeof *frh, &nlh);
	frh->family = AF_INET;
	mnl_attr_put_u32(nlh, FRA_PRIORITY, 5210);
	mnl_attr_put_u32(nlh, FRA_SUPPRESS_PREFIXLEN, 0);
	assert_int_equal(rtnl_parse_rule(nlh, &ru), 1);
	assert_true(ru.other_selectors);
	/* An attribute newer than our headers counts as one too. */
	frh = msg_start(buf, sizeof buf, RTM_NEWRULE, sizeof *frh, &nlh);
	frh->family = AF_INET6;
	mnl_attr_put_u32(nlh, FRA_PRIORITY, 5270);
	mnl_attr_put_u32(nlh, FRA_MAX + 7, 1);
	assert_int_equal(rtnl_parse_rule(nlh, &ru), 1);
	assert_true(ru.other_selectors);
	/* Mark without mask: the kernel's way of saying 0xffffffff. */
	frh = msg_start(buf, sizeof buf, RTM_NEWRULE, sizeof *frh, &nlh);
	frh->family = AF_INET;
	mnl_attr_put_u32(nlh, FRA_FWMARK, 5);
	assert_int_equal(rtnl_parse_rule(nlh, &ru), 1);
	assert_int_equal(ru.fwmask, 0xffffffffU);
	/* 8-byte priority. */
	frh = msg_start(buf, sizeof buf, RTM_NEWRULE, sizeof *frh, &nlh);
	frh->family = AF_INET;
	mnl_attr_put_u64(nlh, FRA_PRIORITY, 5210);
	assert_int_equal(rtnl_parse_rule(nlh, &ru), -EPROTO);
}

struct walk_count {
	int	calls;
};

static int
walk_fn(const struct nlmsghdr *nlh, void *arg)
{
	struct walk_count *w = arg;

	w->calls++;
	return 0;
}

static size_t
put_msg(uint8_t *p, uint16_t type, uint16_t flags, uint32_t seq, uint32_t pid,
    const void *payload, size_t plen)
{
	struct nlmsghdr *nlh = (struct nlmsghdr *)p;

	memset(nlh, 0, NLMSG_HDRLEN);
	nlh->nlmsg_len = NLMSG_HDRLEN + plen;
	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = flags;
	nlh->nlmsg_seq = seq;
	nlh->nlmsg_pid = pid;
	memcpy(p + NLMSG_HDRLEN, payload, plen);
	return NLMSG_ALIGN(nlh->nlmsg_len);
}

static void
test_reply_walk(void **state)
{
	_Alignas(struct nlmsghdr) uint8_t buf[512];
	struct ifaddrmsg ifa = { .ifa_family = AF_INET };
	struct nlmsgerr e;
	struct walk_count w;
	struct rtnl_reply st;
	size_t off;
	int v;

	/* A stale error from an abandoned request, an interrupted dump. */
	memset(&e, 0, sizeof e);
	e.error = -EPERM;
	off = put_msg(buf, NLMSG_ERROR, 0, 1, 42, &e, sizeof e);
	off += put_msg(buf + off, RTM_NEWADDR, NLM_F_MULTI | NLM_F_DUMP_INTR, 2,
	    42, &ifa, sizeof ifa);
	off += put_msg(buf + off, RTM_NEWADDR, NLM_F_MULTI, 2, 43, &ifa,
	    sizeof ifa);
	v = 0;
	off += put_msg(buf + off, NLMSG_DONE, NLM_F_MULTI, 2, 42, &v, sizeof v);
	/* Anything after DONE is not delivered. */
	off += put_msg(buf + off, RTM_NEWADDR, NLM_F_MULTI, 2, 42, &ifa,
	    sizeof ifa);
	memset(&w, 0, sizeof w);
	st = (struct rtnl_reply){
		.seq = 2, .portid = 42, .fn = walk_fn, .arg = &w,
	};
	rtnl_reply_walk(&st, buf, off);
	assert_true(st.done);
	assert_true(st.intr);
	assert_int_equal(st.err, 0);
	assert_int_equal(w.calls, 1);

	/* NLMSG_DONE carrying an error. */
	v = -ENOMEM;
	off = put_msg(buf, NLMSG_DONE, NLM_F_MULTI, 5, 42, &v, sizeof v);
	st = (struct rtnl_reply){ .seq = 5, .portid = 42 };
	rtnl_reply_walk(&st, buf, off);
	assert_true(st.done);
	assert_int_equal(st.err, -ENOMEM);

	/* Truncated NLMSG_ERROR, and a positive "errno". */
	off = put_msg(buf, NLMSG_ERROR, 0, 6, 42, &e, 4);
	st = (struct rtnl_reply){ .seq = 6, .portid = 42 };
	rtnl_reply_walk(&st, buf, off);
	assert_true(st.done);
	assert_int_equal(st.err, -EPROTO);
	e.error = 5;
	off = put_msg(buf, NLMSG_ERROR, 0, 7, 42, &e, sizeof e);
	st = (struct rtnl_reply){ .seq = 7, .portid = 42 };
	rtnl_reply_walk(&st, buf, off);
	assert_int_equal(st.err, -EPROTO);

	/* A message longer than the datagram is not walked into. */
	off = put_msg(buf, NLMSG_DONE, 0, 8, 42, &v, sizeof v);
	((struct nlmsghdr *)buf)->nlmsg_len = 4000;
	st = (struct rtnl_reply){ .seq = 8, .portid = 42 };
	rtnl_reply_walk(&st, buf, off);
	assert_false(st.done);
}

/* Random bytes through every parser; ASan/UBSan judge. */
static void
test_parse_random(void **state)
{
	static const uint16_t types[] = {
		RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_DELADDR,
		RTM_NEWROUTE, RTM_DELROUTE, RTM_NEWRULE, RTM_DELRULE,
		NLMSG_ERROR, NLMSG_DONE,
	};
	struct rtnl_reply st;
	struct rtnl_event ev;
	uint32_t x = 0x12345678;
	uint8_t *buf;
	size_t len, j;
	int i;

	for (i = 0; i < 20000; i++) {
		len = 16 + (size_t)(i % 300);
		/* Exactly sized heap buffers, so ASan sees any overread. */
		assert_non_null(buf = malloc(len));
		for (j = 0; j < len; j++) {
			x ^= x << 13, x ^= x >> 17, x ^= x << 5;
			buf[j] = (uint8_t)x;
		}
		/* Mostly plausible headers, so the parsers get past them. */
		((struct nlmsghdr *)buf)->nlmsg_len =
		    (uint32_t)(len - (x % 4 == 0 ? x % 32 : 0));
		((struct nlmsghdr *)buf)->nlmsg_type =
		    types[x % ARRAY_SIZE(types)];
		((struct nlmsghdr *)buf)->nlmsg_seq = 9;
		((struct nlmsghdr *)buf)->nlmsg_pid = 42;
		if (rtnl_msg_ok((struct nlmsghdr *)buf, len))
			(void)rtnl_parse_event((struct nlmsghdr *)buf, &ev);
		st = (struct rtnl_reply){ .seq = 9, .portid = 42, .fn = walk_fn,
		    .arg = &(struct walk_count){ 0 } };
		rtnl_reply_walk(&st, buf, len);
		free(buf);
	}
}

/*
 * Kernel tests, in the namespace.
 */

static int
group_setup(void **state)
{
	int lo, ret;

	if (getenv("MESHD_DEBUG") != NULL)
		log_init("test_rtnl", LOG_LVL_DEBUG);
	if (unshare(CLONE_NEWNET) < 0) {
		fprintf(stderr, "test_rtnl: unshare(CLONE_NEWNET): %s "
		    "(run as root)\n", strerror(errno));
		return -1;
	}
	if ((ret = rtnl_open(&fx.r)) < 0) {
		fprintf(stderr, "test_rtnl: rtnl_open: %s\n", strerror(-ret));
		return -1;
	}
	if ((lo = rtnl_link_index("lo")) <= 0 ||
	    (ret = rtnl_link_set_up(fx.r, lo, true)) < 0) {
		fprintf(stderr, "test_rtnl: lo up failed\n");
		return -1;
	}
	if ((fx.tun_fd = tun_create(TUN_NAME)) < 0) {
		fprintf(stderr, "test_rtnl: TUN %s: %s\n", TUN_NAME,
		    strerror(-fx.tun_fd));
		return -1;
	}
	if ((fx.ifindex = rtnl_link_index(TUN_NAME)) <= 0) {
		fprintf(stderr, "test_rtnl: no ifindex for %s\n", TUN_NAME);
		return -1;
	}
	return 0;
}

static int
group_teardown(void **state)
{
	if (fx.tun_fd >= 0)
		close(fx.tun_fd);
	rtnl_close(fx.r);
	return 0;
}

static void
test_link_index(void **state)
{
	assert_int_equal(rtnl_link_index("lo"), 1);
	assert_int_equal(rtnl_link_index(TUN_NAME), fx.ifindex);
	assert_int_equal(rtnl_link_index("nosuch0"), -ENODEV);
	assert_int_equal(rtnl_link_index(""), -EINVAL);
	assert_int_equal(rtnl_link_index("a-name-longer-than-ifnamsiz"), -EINVAL);
}

static void
test_link_mtu_up(void **state)
{
	struct rtnl_link l;
	short flags;
	int mtu;

	assert_int_equal(rtnl_link_set_mtu(fx.r, fx.ifindex, 1280), 0);
	assert_int_equal(rtnl_link_set_up(fx.r, fx.ifindex, true), 0);

	assert_int_equal(rtnl_link_get(fx.r, fx.ifindex, &l), 0);
	assert_int_equal(l.ifindex, fx.ifindex);
	assert_string_equal(l.name, TUN_NAME);
	assert_int_equal(l.mtu, 1280);
	assert_true(l.flags & IFF_UP);
	ioctl_link(TUN_NAME, &mtu, &flags);
	assert_int_equal(mtu, 1280);
	assert_true(flags & IFF_UP);

	/* Down and up again, and setting what is already set. */
	assert_int_equal(rtnl_link_set_up(fx.r, fx.ifindex, false), 0);
	assert_int_equal(rtnl_link_get(fx.r, fx.ifindex, &l), 0);
	assert_false(l.flags & IFF_UP);
	ioctl_link(TUN_NAME, &mtu, &flags);
	assert_false(flags & IFF_UP);
	assert_int_equal(rtnl_link_set_up(fx.r, fx.ifindex, true), 0);
	assert_int_equal(rtnl_link_set_up(fx.r, fx.ifindex, true), 0);
	assert_int_equal(rtnl_link_set_mtu(fx.r, fx.ifindex, 1280), 0);
	assert_int_equal(rtnl_link_get(fx.r, fx.ifindex, &l), 0);
	assert_true(l.flags & IFF_UP);
	assert_int_equal(l.mtu, 1280);

	assert_int_equal(rtnl_link_get(fx.r, 1, &l), 0);
	assert_string_equal(l.name, "lo");
	assert_true(l.flags & IFF_UP);
}

static void
test_addr(void **state)
{
	struct rtnl_addr v4 = mkaddr(AF_INET, "100.64.0.1", 32);
	struct rtnl_addr v6 = mkaddr(AF_INET6, "fd7a:115c:a1e0::1", 128);
	struct rtnl_addr *all;
	size_t n;

	assert_int_equal(rtnl_addr_add(fx.r, &v4), 0);
	assert_int_equal(rtnl_addr_add(fx.r, &v6), 0);
	/* Idempotent: a second add succeeds and does not double. */
	assert_int_equal(rtnl_addr_add(fx.r, &v4), 0);
	assert_int_equal(rtnl_addr_add(fx.r, &v6), 0);
	assert_int_equal(addr_on_link(&v4), 1);
	assert_int_equal(addr_on_link(&v6), 1);

	/* Both families, every link: still once each, and not on lo. */
	assert_int_equal(rtnl_addr_list(fx.r, AF_UNSPEC, 0, &all, &n), 0);
	assert_int_equal(count_addr(all, n, &v4), 1);
	assert_int_equal(count_addr(all, n, &v6), 1);
	free(all);

	assert_true(getifaddrs_has(TUN_NAME, &v4));
	assert_true(getifaddrs_has(TUN_NAME, &v6));

	assert_int_equal(rtnl_addr_del(fx.r, &v4), 0);
	assert_int_equal(addr_on_link(&v4), 0);
	assert_false(getifaddrs_has(TUN_NAME, &v4));
	assert_int_equal(rtnl_addr_del(fx.r, &v4), -ENOENT);
	assert_int_equal(rtnl_addr_add(fx.r, &v4), 0);
	assert_int_equal(addr_on_link(&v4), 1);

	/* An empty list comes back as NULL, 0. */
	assert_int_equal(rtnl_addr_list(fx.r, AF_INET, BOGUS_IFINDEX, &all,
	    &n), 0);
	assert_null(all);
	assert_int_equal(n, 0);
}

static void
test_route(void **state)
{
	struct rtnl_route want[] = {
		mkroute(AF_INET, 52, 0, "100.64.0.0", 10, fx.ifindex),
		mkroute(AF_INET, 52, 0, "100.100.100.100", 32, fx.ifindex),
		mkroute(AF_INET6, 52, 0, "fd7a:115c:a1e0::", 48, fx.ifindex),
		mkroute(AF_INET6, 52, 0, "fd7a:115c:a1e0::53", 128, fx.ifindex),
		/* LocalRoutes as tailscaled sends them back to main. */
		mkroute(AF_INET, 52, RTN_THROW, "192.168.0.0", 16, 0),
		mkroute(AF_INET6, 52, RTN_THROW, "fe80::", 64, 0),
		/* A default route through the tunnel, as for an exit node. */
		mkroute(AF_INET, 52, 0, "0.0.0.0", 0, fx.ifindex),
	};
	struct rtnl_route metric = mkroute(AF_INET6, 52, 0, "fd00:1::", 64,
	    fx.ifindex);
	struct rtnl_route *v;
	size_t i, n;

	for (i = 0; i < ARRAY_SIZE(want); i++)
		assert_int_equal(rtnl_route_add(fx.r, &want[i]), 0);
	/* Idempotent (NLM_F_REPLACE). */
	for (i = 0; i < ARRAY_SIZE(want); i++)
		assert_int_equal(rtnl_route_add(fx.r, &want[i]), 0);

	assert_int_equal(rtnl_route_list(fx.r, AF_UNSPEC, 52, &v, &n), 0);
	assert_int_equal(n, ARRAY_SIZE(want));
	for (i = 0; i < ARRAY_SIZE(want); i++)
		assert_int_equal(count_route(v, n, &want[i]), 1);
	for (i = 0; i < n; i++) {
		assert_int_equal(v[i].table, 52);
		assert_int_equal(v[i].protocol, RTPROT_STATIC);
		if (v[i].type == RTN_UNICAST)
			assert_int_equal(v[i].oif, fx.ifindex);
		if (v[i].type == RTN_UNICAST && v[i].family == AF_INET)
			assert_int_equal(v[i].scope, RT_SCOPE_LINK);
	}
	free(v);

	/* Not in main. */
	assert_int_equal(rtnl_route_list(fx.r, AF_INET, RT_TABLE_MAIN, &v, &n), 0);
	assert_int_equal(count_route(v, n, &(struct rtnl_route){
	    .family = AF_INET, .table = RT_TABLE_MAIN, .dst_len = 10,
	    .dst = { 100, 64 } }), 0);
	free(v);

	/* A metric round-trips, and replace keys on it. */
	metric.metric = 300;
	assert_int_equal(rtnl_route_add(fx.r, &metric), 0);
	assert_int_equal(rtnl_route_add(fx.r, &metric), 0);
	assert_int_equal(rtnl_route_list(fx.r, AF_INET6, 52, &v, &n), 0);
	assert_int_equal(count_route(v, n, &metric), 1);
	for (i = 0; i < n; i++)
		if (count_route(&v[i], 1, &metric) == 1)
			assert_int_equal(v[i].metric, 300);
	free(v);
	assert_int_equal(rtnl_route_del(fx.r, &metric), 0);
	assert_int_equal(route_in_table(&metric), 0);

	assert_int_equal(rtnl_route_del(fx.r, &want[1]), 0);
	assert_int_equal(route_in_table(&want[1]), 0);
	assert_int_equal(rtnl_route_del(fx.r, &want[1]), -ENOENT);
	assert_int_equal(rtnl_route_del(fx.r, &want[5]), 0);
	assert_int_equal(rtnl_route_del(fx.r, &want[5]), -ENOENT);
	assert_int_equal(rtnl_route_add(fx.r, &want[1]), 0);
	assert_int_equal(rtnl_route_add(fx.r, &want[5]), 0);
	assert_int_equal(route_in_table(&want[5]), 1);
}

/* tailscaled's baseIPRules (protocol/host.md §3.2). */
static void
ts_rules(int family, struct rtnl_rule out[4])
{
	out[0] = mkrule(family, 5210, TS_MARK, TS_MASK, FR_ACT_TO_TBL,
	    RT_TABLE_MAIN);
	out[1] = mkrule(family, 5230, TS_MARK, TS_MASK, FR_ACT_TO_TBL,
	    RT_TABLE_DEFAULT);
	out[2] = mkrule(family, 5250, TS_MARK, TS_MASK, FR_ACT_UNREACHABLE, 0);
	out[3] = mkrule(family, 5270, 0, 0, FR_ACT_TO_TBL, 52);
}

static void
test_rule(void **state)
{
	static const int fams[] = { AF_INET, AF_INET6 };
	struct rtnl_rule want[4], *v;
	struct rtnl_rule inv;
	size_t f, i, n;

	for (f = 0; f < ARRAY_SIZE(fams); f++) {
		ts_rules(fams[f], want);
		for (i = 0; i < 4; i++)
			assert_int_equal(rtnl_rule_add(fx.r, &want[i]), 0);
		/* Idempotent: no duplicates. */
		for (i = 0; i < 4; i++)
			assert_int_equal(rtnl_rule_add(fx.r, &want[i]), 0);
		assert_int_equal(rtnl_rule_list(fx.r, fams[f], &v, &n), 0);
		for (i = 0; i < 4; i++)
			assert_int_equal(count_rule(v, n, &want[i]), 1);
		free(v);
		assert_int_equal(rules_in_range(fams[f], 5200, 5299), 4);
	}

	/* The UBNT form: not fwmark 0x80000/0xff0000 lookup 52. */
	inv = mkrule(AF_INET, 5280, TS_MARK, TS_MASK, FR_ACT_TO_TBL, 52);
	inv.invert = true;
	assert_int_equal(rtnl_rule_add(fx.r, &inv), 0);
	assert_int_equal(rtnl_rule_add(fx.r, &inv), 0);
	assert_int_equal(rtnl_rule_list(fx.r, AF_INET, &v, &n), 0);
	assert_int_equal(count_rule(v, n, &inv), 1);
	free(v);
	assert_int_equal(rtnl_rule_del(fx.r, &inv), 0);
	assert_int_equal(rtnl_rule_del(fx.r, &inv), -ENOENT);
	assert_int_equal(rules_in_range(AF_INET, 5280, 5280), 0);

	/* A rule that differs only in table is a different rule. */
	inv = mkrule(AF_INET, 5270, 0, 0, FR_ACT_TO_TBL, 53);
	assert_int_equal(rtnl_rule_add(fx.r, &inv), 0);
	assert_int_equal(rules_in_range(AF_INET, 5270, 5270), 2);
	assert_int_equal(rtnl_rule_del(fx.r, &inv), 0);
	assert_int_equal(rules_in_range(AF_INET, 5270, 5270), 1);
}

static void
test_flush(void **state)
{
	struct rtnl_route other = mkroute(AF_INET, 53, 0, "10.0.0.0", 8,
	    fx.ifindex);
	struct rtnl_rule outside = mkrule(AF_INET6, 5300, 0, 0, FR_ACT_TO_TBL,
	    52);
	struct rtnl_route *v;
	size_t n;

	assert_int_equal(rtnl_route_add(fx.r, &other), 0);
	assert_int_equal(rtnl_route_list(fx.r, AF_UNSPEC, 52, &v, &n), 0);
	free(v);
	assert_true(n > 0);
	assert_int_equal(rtnl_route_flush_table(fx.r, AF_UNSPEC, 52), 0);
	assert_int_equal(rtnl_route_list(fx.r, AF_UNSPEC, 52, &v, &n), 0);
	assert_int_equal(n, 0);
	assert_null(v);
	/* Other tables are left alone, and flushing nothing is fine. */
	assert_int_equal(route_in_table(&other), 1);
	assert_int_equal(rtnl_route_flush_table(fx.r, AF_UNSPEC, 52), 0);
	assert_int_equal(rtnl_route_flush_table(fx.r, AF_INET, 53), 0);
	assert_int_equal(route_in_table(&other), 0);
	assert_int_equal(rtnl_route_flush_table(fx.r, AF_INET, 0), -EINVAL);

	assert_int_equal(rtnl_rule_add(fx.r, &outside), 0);
	assert_int_equal(rtnl_rule_flush_priority(fx.r, AF_UNSPEC, 5200, 5299), 0);
	assert_int_equal(rules_in_range(AF_UNSPEC, 5200, 5299), 0);
	/* The kernel's own rules and ours outside the range survive. */
	assert_int_equal(rules_in_range(AF_INET6, 5300, 5300), 1);
	assert_int_equal(rules_in_range(AF_INET, 0, 0), 1);
	assert_int_equal(rules_in_range(AF_INET, 32766, 32767), 2);
	assert_int_equal(rules_in_range(AF_INET6, 32766, 32766), 1);
	assert_int_equal(rtnl_rule_flush_priority(fx.r, AF_INET6, 5300, 5300), 0);
	assert_int_equal(rules_in_range(AF_INET6, 5300, 5300), 0);
	assert_int_equal(rtnl_rule_flush_priority(fx.r, AF_UNSPEC, 0, 10),
	    -EINVAL);
	assert_int_equal(rtnl_rule_flush_priority(fx.r, AF_UNSPEC, 10, 9),
	    -EINVAL);
}

static void
test_errors(void **state)
{
	struct rtnl_route rt = mkroute(AF_INET, 52, 0, "100.64.0.0", 10,
	    BOGUS_IFINDEX);
	struct rtnl_addr a = mkaddr(AF_INET, "100.64.0.9", 32);
	struct rtnl_rule ru = mkrule(AF_INET, 0, 0, 0, FR_ACT_TO_TBL, 52);
	struct rtnl_link l;

	/* The kernel's answers. */
	assert_int_equal(rtnl_route_add(fx.r, &rt), -ENODEV);
	assert_int_equal(rtnl_link_set_mtu(fx.r, BOGUS_IFINDEX, 1280), -ENODEV);
	assert_int_equal(rtnl_link_set_up(fx.r, BOGUS_IFINDEX, true), -ENODEV);
	assert_int_equal(rtnl_link_get(fx.r, BOGUS_IFINDEX, &l), -ENODEV);
	/* A TUN's MTU tops out at 65535. */
	assert_true(rtnl_link_set_mtu(fx.r, fx.ifindex, 1U << 20) < 0);
	a.ifindex = BOGUS_IFINDEX;
	assert_int_equal(rtnl_addr_add(fx.r, &a), -ENODEV);
	/* Host bits set below the prefix (IPv4 refuses). */
	rt = mkroute(AF_INET, 52, 0, "100.64.0.1", 10, fx.ifindex);
	assert_int_equal(rtnl_route_add(fx.r, &rt), -EINVAL);
	/* A device on a throw route. */
	rt = mkroute(AF_INET, 52, RTN_THROW, "10.0.0.0", 8, fx.ifindex);
	assert_int_equal(rtnl_route_add(fx.r, &rt), -EINVAL);

	/* Ours, before anything is sent. */
	a = mkaddr(AF_INET, "100.64.0.9", 33);
	assert_int_equal(rtnl_addr_add(fx.r, &a), -EINVAL);
	a = mkaddr(AF_INET, "100.64.0.9", 32);
	a.family = AF_PACKET;
	assert_int_equal(rtnl_addr_add(fx.r, &a), -EAFNOSUPPORT);
	rt = mkroute(AF_INET6, 52, 0, "fd7a::", 48, fx.ifindex);
	rt.dst_len = 129;
	assert_int_equal(rtnl_route_add(fx.r, &rt), -EINVAL);
	assert_int_equal(rtnl_rule_add(fx.r, &ru), -EINVAL);
	assert_int_equal(rtnl_rule_del(fx.r, &ru), -EINVAL);
	ru = mkrule(AF_INET, 5270, 0, 0, FR_ACT_TO_TBL, 0);
	assert_int_equal(rtnl_rule_add(fx.r, &ru), -EINVAL);
	assert_int_equal(rtnl_link_set_mtu(fx.r, fx.ifindex, 0), -EINVAL);
	assert_int_equal(rtnl_link_set_up(fx.r, 0, true), -EINVAL);
	assert_int_equal(rtnl_route_list(fx.r, AF_PACKET, 0,
	    &(struct rtnl_route *){ NULL }, &(size_t){ 0 }), -EAFNOSUPPORT);

	/* And the socket is still in step afterwards. */
	assert_int_equal(rtnl_link_get(fx.r, fx.ifindex, &l), 0);
	assert_int_equal(l.mtu, 1280);
}

/*
 * Monitor.
 */

#define MAX_EVENTS	4096

struct evlog {
	size_t			n;
	size_t			dropped;
	struct rtnl_event	ev[MAX_EVENTS];
};

static void
record(void *ctx, const struct rtnl_event *ev)
{
	struct evlog *log = ctx;

	if (log->n < MAX_EVENTS)
		log->ev[log->n++] = *ev;
	else
		log->dropped++;
}

typedef bool (*ev_match)(const struct rtnl_event *ev, const void *arg);

static bool
have_event(const struct evlog *log, ev_match m, const void *arg)
{
	size_t i;

	for (i = 0; i < log->n; i++)
		if (m(&log->ev[i], arg))
			return true;
	return false;
}

/* Poll the monitor until m matches or two seconds pass. */
static bool
wait_event(struct rtnl_mon *mon, struct evlog *log, ev_match m,
    const void *arg)
{
	struct pollfd pfd = { .fd = rtnl_mon_fd(mon), .events = POLLIN };
	struct timespec t0, t;
	long ms;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!have_event(log, m, arg)) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		ms = 2000 - ((t.tv_sec - t0.tv_sec) * 1000 +
		    (t.tv_nsec - t0.tv_nsec) / 1000000);
		if (ms <= 0)
			return false;
		if (poll(&pfd, 1, (int)ms) > 0)
			assert_true(rtnl_mon_read(mon) >= 0);
	}
	return true;
}

struct link_want {
	enum rtnl_event_kind	kind;
	int			ifindex;
	const char		*name;
};

static bool
match_link(const struct rtnl_event *ev, const void *arg)
{
	const struct link_want *w = arg;

	return ev->kind == w->kind &&
	    (w->ifindex == 0 || ev->link.ifindex == w->ifindex) &&
	    (w->name == NULL || strcmp(ev->link.name, w->name) == 0);
}

struct addr_want {
	enum rtnl_event_kind	kind;
	struct rtnl_addr	a;
};

static bool
match_addr(const struct rtnl_event *ev, const void *arg)
{
	const struct addr_want *w = arg;

	return ev->kind == w->kind && count_addr(&ev->addr, 1, &w->a) == 1;
}

struct route_want {
	enum rtnl_event_kind	kind;
	struct rtnl_route	rt;
};

static bool
match_route(const struct rtnl_event *ev, const void *arg)
{
	const struct route_want *w = arg;

	return ev->kind == w->kind && count_route(&ev->route, 1, &w->rt) == 1;
}

struct rule_want {
	enum rtnl_event_kind	kind;
	struct rtnl_rule	ru;
};

static bool
match_rule(const struct rtnl_event *ev, const void *arg)
{
	const struct rule_want *w = arg;

	return ev->kind == w->kind && count_rule(&ev->rule, 1, &w->ru) == 1;
}

static bool
match_kind(const struct rtnl_event *ev, const void *arg)
{
	return ev->kind == *(const enum rtnl_event_kind *)arg;
}

static void
test_monitor(void **state)
{
	static struct evlog log;
	struct rtnl_mon *mon;
	struct link_want lw;
	struct addr_want aw = { RTNL_EV_ADDR_NEW,
	    mkaddr(AF_INET, "100.64.0.2", 32) };
	struct addr_want aw6 = { RTNL_EV_ADDR_NEW,
	    mkaddr(AF_INET6, "fd7a:115c:a1e0::2", 128) };
	struct route_want rw = { RTNL_EV_ROUTE_NEW,
	    mkroute(AF_INET, 52, 0, "100.64.0.0", 10, fx.ifindex) };
	struct rule_want uw = { RTNL_EV_RULE_NEW,
	    mkrule(AF_INET6, 5270, 0, 0, FR_ACT_TO_TBL, 52) };
	int fd2, idx2;

	memset(&log, 0, sizeof log);
	assert_int_equal(rtnl_mon_open(0, record, &log, &mon), -EINVAL);
	assert_int_equal(rtnl_mon_open(RTNL_MON_LINK, NULL, &log, &mon), -EINVAL);
	assert_int_equal(rtnl_mon_open(RTNL_MON_LINK | RTNL_MON_ADDR |
	    RTNL_MON_ROUTE | RTNL_MON_RULE, record, &log, &mon), 0);
	/* Non-blocking, and reading with nothing queued returns at once. */
	assert_true(fcntl(rtnl_mon_fd(mon), F_GETFL) & O_NONBLOCK);
	assert_int_equal(rtnl_mon_read(mon), 0);

	/* Admin down, then up. */
	assert_int_equal(rtnl_link_set_up(fx.r, fx.ifindex, false), 0);
	lw = (struct link_want){ RTNL_EV_LINK_DOWN, fx.ifindex, TUN_NAME };
	assert_true(wait_event(mon, &log, match_link, &lw));
	assert_int_equal(rtnl_link_set_up(fx.r, fx.ifindex, true), 0);
	lw = (struct link_want){ RTNL_EV_LINK_UP, fx.ifindex, TUN_NAME };
	assert_true(wait_event(mon, &log, match_link, &lw));

	/* Addresses come and go. */
	assert_int_equal(rtnl_addr_add(fx.r, &aw.a), 0);
	assert_true(wait_event(mon, &log, match_addr, &aw));
	assert_int_equal(rtnl_addr_add(fx.r, &aw6.a), 0);
	assert_true(wait_event(mon, &log, match_addr, &aw6));
	assert_int_equal(rtnl_addr_del(fx.r, &aw.a), 0);
	aw.kind = RTNL_EV_ADDR_DEL;
	assert_true(wait_event(mon, &log, match_addr, &aw));

	/* Routes. */
	assert_int_equal(rtnl_route_add(fx.r, &rw.rt), 0);
	assert_true(wait_event(mon, &log, match_route, &rw));
	assert_int_equal(rtnl_route_del(fx.r, &rw.rt), 0);
	rw.kind = RTNL_EV_ROUTE_DEL;
	assert_true(wait_event(mon, &log, match_route, &rw));

	/* Rules: a deletion is what tells the agent to put them back. */
	assert_int_equal(rtnl_rule_add(fx.r, &uw.ru), 0);
	assert_true(wait_event(mon, &log, match_rule, &uw));
	assert_int_equal(rtnl_rule_del(fx.r, &uw.ru), 0);
	uw.kind = RTNL_EV_RULE_DEL;
	assert_true(wait_event(mon, &log, match_rule, &uw));

	/* A link appears and disappears. */
	assert_true((fd2 = tun_create(TUN2_NAME)) >= 0);
	assert_true((idx2 = rtnl_link_index(TUN2_NAME)) > 0);
	lw = (struct link_want){ RTNL_EV_LINK_NEW, idx2, TUN2_NAME };
	assert_true(wait_event(mon, &log, match_link, &lw));
	close(fd2);
	lw = (struct link_want){ RTNL_EV_LINK_DEL, idx2, NULL };
	assert_true(wait_event(mon, &log, match_link, &lw));

	assert_false(have_event(&log, match_kind,
	    &(enum rtnl_event_kind){ RTNL_EV_RESYNC }));
	assert_int_equal(log.dropped, 0);
	rtnl_mon_close(mon);
	rtnl_mon_close(NULL);
}

/* Overrun the monitor socket on purpose: it must say RESYNC, then go on. */
static void
test_monitor_overrun(void **state)
{
	static struct evlog log;
	enum rtnl_event_kind resync = RTNL_EV_RESYNC;
	struct rtnl_mon *mon;
	struct rtnl_addr a;
	struct addr_want aw;
	int i, tiny = 1, ret;
	char s[32];

	memset(&log, 0, sizeof log);
	assert_int_equal(rtnl_mon_open(RTNL_MON_ADDR, record, &log, &mon), 0);
	/* The kernel rounds this up to its minimum, a few KiB. */
	assert_int_equal(setsockopt(rtnl_mon_fd(mon), SOL_SOCKET,
	    SO_RCVBUFFORCE, &tiny, sizeof tiny), 0);
	for (i = 0; i < 200; i++) {
		snprintf(s, sizeof s, "100.65.%d.%d", i / 250, i % 250 + 1);
		a = mkaddr(AF_INET, s, 32);
		assert_int_equal(rtnl_addr_add(fx.r, &a), 0);
	}
	while ((ret = rtnl_mon_read(mon)) > 0)
		;
	assert_int_equal(ret, 0);
	assert_true(have_event(&log, match_kind, &resync));

	/* Still delivering after the overrun. */
	aw = (struct addr_want){ RTNL_EV_ADDR_DEL, a };
	assert_int_equal(rtnl_addr_del(fx.r, &a), 0);
	assert_true(wait_event(mon, &log, match_addr, &aw));
	rtnl_mon_close(mon);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_addr),
		cmocka_unit_test(test_parse_link_route_rule),
		cmocka_unit_test(test_reply_walk),
		cmocka_unit_test(test_parse_random),
		cmocka_unit_test(test_link_index),
		cmocka_unit_test(test_link_mtu_up),
		cmocka_unit_test(test_addr),
		cmocka_unit_test(test_route),
		cmocka_unit_test(test_rule),
		cmocka_unit_test(test_flush),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_monitor),
		cmocka_unit_test(test_monitor_overrun),
	};

	return cmocka_run_group_tests_name("rtnl", tests, group_setup,
	    group_teardown);
}

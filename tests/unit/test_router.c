// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * The router against the real kernel, inside a network namespace of its
 * own (as test_rtnl does): every rule and route made here disappears with
 * the process and the host is never touched.  Needs root and
 * /dev/net/tun; without them the setup fails, loudly, rather than skip.
 *
 * What the kernel holds is read back through rtnl_*_list(), independently
 * of the router's own bookkeeping.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <sys/socket.h>

#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>

#include <cmocka.h>

#include "agent/router.h"
#include "common/log.h"
#include "netlink/rtnl.h"
#include "wg/tun.h"

#define TUN_NAME	"mesh0"

static struct {
	struct rtnl	*nl;
	int		tun_fd;
	int		ifindex;
	bool		v6;
} fx = { .tun_fd = -1 };

/* --- helpers --- */

static struct router_prefix
pfx(const char *s)
{
	struct router_prefix p;
	char buf[64], *slash;

	memset(&p, 0, sizeof p);
	snprintf(buf, sizeof buf, "%s", s);
	slash = strchr(buf, '/');
	assert_non_null(slash);
	*slash = '\0';
	p.bits = (uint8_t)atoi(slash + 1);
	if (strchr(buf, ':') != NULL) {
		p.family = 6;
		assert_int_equal(inet_pton(AF_INET6, buf, p.addr), 1);
	} else {
		p.family = 4;
		assert_int_equal(inet_pton(AF_INET, buf, p.addr), 1);
	}
	return p;
}

/*
 * Table 52 as "a.b.c.d/n" strings, sorted, joined with spaces; every
 * route must be a unicast through the TUN.
 */
static void
table52(char *out, size_t len)
{
	struct rtnl_route *rt;
	char names[64][64], a[INET6_ADDRSTRLEN], tmp[64];
	size_t n, k = 0;

	assert_int_equal(rtnl_route_list(fx.nl, AF_UNSPEC, ROUTER_TABLE, &rt, &n), 0);
	for (size_t i = 0; i < n; i++) {
		/* The kernel's own IPv6 multicast/link-local routes live elsewhere. */
		assert_int_equal(rt[i].table, ROUTER_TABLE);
		assert_int_equal(rt[i].type, RTN_UNICAST);
		assert_int_equal(rt[i].oif, fx.ifindex);
		assert_non_null(inet_ntop(rt[i].family, rt[i].dst, a, sizeof a));
		assert_true(k < 64);
		snprintf(names[k++], sizeof names[0], "%s/%u", a, rt[i].dst_len);
	}
	free(rt);
	for (size_t i = 0; i < k; i++)
		for (size_t j = i + 1; j < k; j++)
			if (strcmp(names[i], names[j]) > 0) {
				memcpy(tmp, names[i], sizeof tmp);
				memcpy(names[i], names[j], sizeof tmp);
				memcpy(names[j], tmp, sizeof tmp);
			}
	out[0] = '\0';
	for (size_t i = 0; i < k; i++) {
		if (i)
			strncat(out, " ", len - strlen(out) - 1);
		strncat(out, names[i], len - strlen(out) - 1);
	}
}

/* How many rules of family at priority prio; the last one into *out. */
static size_t
rules_at(int family, uint32_t prio, struct rtnl_rule *out)
{
	struct rtnl_rule *ru;
	size_t n, c = 0;

	assert_int_equal(rtnl_rule_list(fx.nl, family, &ru, &n), 0);
	for (size_t i = 0; i < n; i++) {
		if (ru[i].priority != prio)
			continue;
		c++;
		if (out)
			*out = ru[i];
	}
	free(ru);
	return c;
}

static size_t
rules_in_range(int family, uint32_t lo, uint32_t hi)
{
	size_t c = 0;

	for (uint32_t p = lo; p <= hi; p++)
		c += rules_at(family, p, NULL);
	return c;
}

/* The four rules of host.md §3.2, exactly once each. */
static void
assert_rules(int family)
{
	struct rtnl_rule ru;

	assert_int_equal(rules_at(family, 5210, &ru), 1);
	assert_int_equal(ru.action, FR_ACT_TO_TBL);
	assert_int_equal(ru.table, RT_TABLE_MAIN);
	assert_int_equal(ru.fwmark, 0x80000);
	assert_int_equal(ru.fwmask, 0xff0000);
	assert_false(ru.invert);
	assert_false(ru.other_selectors);

	assert_int_equal(rules_at(family, 5230, &ru), 1);
	assert_int_equal(ru.action, FR_ACT_TO_TBL);
	assert_int_equal(ru.table, RT_TABLE_DEFAULT);
	assert_int_equal(ru.fwmark, 0x80000);
	assert_int_equal(ru.fwmask, 0xff0000);

	assert_int_equal(rules_at(family, 5250, &ru), 1);
	assert_int_equal(ru.action, FR_ACT_UNREACHABLE);
	assert_int_equal(ru.fwmark, 0x80000);
	assert_int_equal(ru.fwmask, 0xff0000);

	assert_int_equal(rules_at(family, 5270, &ru), 1);
	assert_int_equal(ru.action, FR_ACT_TO_TBL);
	assert_int_equal(ru.table, 52);
	assert_int_equal(ru.fwmark, 0);
	assert_false(ru.invert);
	assert_false(ru.other_selectors);
}

static void
assert_no_rules(int family)
{
	static const uint32_t prios[] = { 5210, 5230, 5250, 5270 };

	for (size_t i = 0; i < ARRAY_SIZE(prios); i++)
		assert_int_equal(rules_at(family, prios[i], NULL), 0);
}

static struct router *
new_router(void)
{
	char *cause = NULL;
	struct router *rt = router_new(fx.nl, fx.ifindex, &cause);

	if (rt == NULL)
		fprintf(stderr, "router_new: %s\n", cause ? cause : "?");
	free(cause);
	assert_non_null(rt);
	return rt;
}

static void
add_rule(int family, uint32_t prio, uint32_t mark, uint32_t mask,
    uint8_t action, uint32_t table)
{
	struct rtnl_rule ru = {
		.family = family, .priority = prio, .fwmark = mark,
		.fwmask = mask, .action = action, .table = table,
	};

	assert_int_equal(rtnl_rule_add(fx.nl, &ru), 0);
}

static void
link_up(bool up)
{
	assert_int_equal(rtnl_link_set_up(fx.nl, fx.ifindex, up), 0);
}

/* --- setup --- */

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

static int
group_setup(void **state)
{
	struct rtnl_rule *ru;
	size_t n;
	int lo, ret;

	if (getenv("MESHD_DEBUG") != NULL)
		log_init("test_router", LOG_LVL_DEBUG);
	if (unshare(CLONE_NEWNET) < 0) {
		fprintf(stderr, "test_router: unshare(CLONE_NEWNET): %s "
		    "(run as root)\n", strerror(errno));
		return -1;
	}
	if ((ret = rtnl_open(&fx.nl)) < 0) {
		fprintf(stderr, "test_router: rtnl_open: %s\n", strerror(-ret));
		return -1;
	}
	if ((lo = rtnl_link_index("lo")) <= 0 ||
	    rtnl_link_set_up(fx.nl, lo, true) < 0) {
		fprintf(stderr, "test_router: lo up failed\n");
		return -1;
	}
	if ((fx.tun_fd = tun_create(TUN_NAME)) < 0) {
		fprintf(stderr, "test_router: TUN %s: %s\n", TUN_NAME,
		    strerror(-fx.tun_fd));
		return -1;
	}
	if ((fx.ifindex = rtnl_link_index(TUN_NAME)) <= 0 ||
	    rtnl_link_set_up(fx.nl, fx.ifindex, true) < 0) {
		fprintf(stderr, "test_router: %s not usable\n", TUN_NAME);
		return -1;
	}
	/* Whether this kernel has IPv6 rules at all, independently. */
	fx.v6 = rtnl_rule_list(fx.nl, AF_INET6, &ru, &n) == 0;
	if (fx.v6)
		free(ru);
	return 0;
}

static int
group_teardown(void **state)
{
	if (fx.tun_fd >= 0)
		close(fx.tun_fd);
	rtnl_close(fx.nl);
	return 0;
}

/* Every test starts from a clean table 52 and rule range. */
static int
clean(void **state)
{
	assert_int_equal(router_cleanup(fx.nl), 0);
	return 0;
}

/* --- tests --- */

static void
test_rules(void **state)
{
	struct router *rt;

	assert_no_rules(AF_INET);
	rt = new_router();
	assert_rules(AF_INET);
	if (fx.v6)
		assert_rules(AF_INET6);
	router_free(rt);
	assert_no_rules(AF_INET);
	if (fx.v6)
		assert_no_rules(AF_INET6);
}

static void
test_stale_rules(void **state)
{
	struct router *rt;
	struct rtnl_rule ru;

	/* Left by an earlier run: wrong table, wrong mark, no mask. */
	add_rule(AF_INET, 5210, 0x80000, 0xff0000, FR_ACT_TO_TBL, 100);
	add_rule(AF_INET, 5250, 0x40000, 0xff0000, FR_ACT_UNREACHABLE, 0);
	add_rule(AF_INET, 5270, 0, 0, FR_ACT_TO_TBL, 53);
	/* An exact copy of ours: kept as it is. */
	add_rule(AF_INET, 5230, 0x80000, 0xff0000, FR_ACT_TO_TBL, RT_TABLE_DEFAULT);
	/* An administrator's rule between ours: not ours to touch. */
	add_rule(AF_INET, 5220, 0x1, 0xff, FR_ACT_TO_TBL, 200);
	if (fx.v6)
		add_rule(AF_INET6, 5270, 0, 0, FR_ACT_TO_TBL, 53);

	rt = new_router();
	assert_rules(AF_INET);
	if (fx.v6)
		assert_rules(AF_INET6);
	assert_int_equal(rules_at(AF_INET, 5220, &ru), 1);
	assert_int_equal(ru.table, 200);
	router_free(rt);
	assert_no_rules(AF_INET);
	assert_int_equal(rules_at(AF_INET, 5220, NULL), 1);
}

static void
test_routes_diff(void **state)
{
	struct router *rt = new_router();
	struct router_prefix a[] = {
		pfx("100.64.0.2/32"), pfx("100.100.100.100/32"),
		pfx("10.1.2.3/16"),		/* host bits: masked */
		pfx("100.64.0.2/32"),		/* duplicate */
		pfx("fd7a:115c:a1e0::53/128"),
	};
	struct router_prefix b[] = {
		pfx("100.64.0.2/32"), pfx("10.2.0.0/16"),
		pfx("fd7a:115c:a1e0::/48"),
	};
	struct rtnl_route del = {
		.family = AF_INET, .table = ROUTER_TABLE, .dst_len = 32,
	};
	char got[1024];

	assert_int_equal(router_set_routes(rt, a, ARRAY_SIZE(a)), 0);
	table52(got, sizeof got);
	if (fx.v6)
		assert_string_equal(got, "10.1.0.0/16 100.100.100.100/32 "
		    "100.64.0.2/32 fd7a:115c:a1e0::53/128");
	else
		assert_string_equal(got, "10.1.0.0/16 100.100.100.100/32 "
		    "100.64.0.2/32");

	/*
	 * Take 100.64.0.2 away behind the router's back.  It is in both
	 * sets, so the diff must leave it alone: it stays missing.
	 */
	memcpy(del.dst, b[0].addr, 4);
	assert_int_equal(rtnl_route_del(fx.nl, &del), 0);
	assert_int_equal(router_set_routes(rt, b, ARRAY_SIZE(b)), 0);
	table52(got, sizeof got);
	if (fx.v6)
		assert_string_equal(got, "10.2.0.0/16 fd7a:115c:a1e0::/48");
	else
		assert_string_equal(got, "10.2.0.0/16");

	/* Resync puts back what it wants, whatever it believed. */
	assert_int_equal(router_resync(rt), 0);
	table52(got, sizeof got);
	if (fx.v6)
		assert_string_equal(got, "10.2.0.0/16 100.64.0.2/32 "
		    "fd7a:115c:a1e0::/48");
	else
		assert_string_equal(got, "10.2.0.0/16 100.64.0.2/32");

	/* Empty set: table empty. */
	assert_int_equal(router_set_routes(rt, NULL, 0), 0);
	table52(got, sizeof got);
	assert_string_equal(got, "");

	/* Free removes routes and rules. */
	assert_int_equal(router_set_routes(rt, b, ARRAY_SIZE(b)), 0);
	router_free(rt);
	table52(got, sizeof got);
	assert_string_equal(got, "");
	assert_no_rules(AF_INET);
	if (fx.v6)
		assert_no_rules(AF_INET6);
}

static void
test_invalid_prefixes(void **state)
{
	struct router *rt = new_router();
	struct router_prefix bad[3];
	char got[256];

	memset(bad, 0, sizeof bad);
	bad[0].family = 5;
	bad[0].bits = 8;
	bad[1].family = 4;
	bad[1].bits = 33;
	bad[2].family = 6;
	bad[2].bits = 129;
	assert_int_equal(router_set_routes(rt, bad, ARRAY_SIZE(bad)), 0);
	table52(got, sizeof got);
	assert_string_equal(got, "");
	assert_int_equal(router_set_routes(NULL, bad, 1), -EINVAL);
	router_free(rt);
	router_free(NULL);
}

static void
test_retry(void **state)
{
	struct router *rt = new_router();
	struct router_prefix a[] = { pfx("100.64.0.7/32"), pfx("10.9.0.0/16") };
	char got[256];
	int missing;

	/* A down link: the kernel refuses routes through it. */
	link_up(false);
	missing = router_set_routes(rt, a, ARRAY_SIZE(a));
	assert_int_equal(missing, 2);
	table52(got, sizeof got);
	assert_string_equal(got, "");
	/* Still failing: still missing, not an error. */
	assert_int_equal(router_set_routes(rt, a, ARRAY_SIZE(a)), 2);
	/* The link is back: the same set goes in. */
	link_up(true);
	assert_int_equal(router_set_routes(rt, a, ARRAY_SIZE(a)), 0);
	table52(got, sizeof got);
	assert_string_equal(got, "10.9.0.0/16 100.64.0.7/32");

	/* A flap drops them in the kernel; resync restores them. */
	link_up(false);
	link_up(true);
	table52(got, sizeof got);
	assert_string_equal(got, "");
	assert_int_equal(router_resync(rt), 0);
	table52(got, sizeof got);
	assert_string_equal(got, "10.9.0.0/16 100.64.0.7/32");
	router_free(rt);
}

static void
test_idempotent(void **state)
{
	struct router *rt, *rt2;
	struct router_prefix a[] = { pfx("100.64.0.2/32"), pfx("fd7a:115c:a1e0::/48") };
	char got1[256], got2[256];

	rt = new_router();
	/* A second router_new (a restart without cleanup): no duplicates. */
	rt2 = new_router();
	assert_rules(AF_INET);
	if (fx.v6)
		assert_rules(AF_INET6);
	router_free(rt2);
	assert_no_rules(AF_INET);
	/* Resync brings the first one's rules back, once each. */
	assert_int_equal(router_resync(rt), 0);
	assert_int_equal(router_resync(rt), 0);
	assert_rules(AF_INET);
	if (fx.v6)
		assert_rules(AF_INET6);

	/* The same set twice: same table, nothing doubled. */
	assert_int_equal(router_set_routes(rt, a, ARRAY_SIZE(a)), 0);
	table52(got1, sizeof got1);
	assert_int_equal(router_set_routes(rt, a, ARRAY_SIZE(a)), 0);
	table52(got2, sizeof got2);
	assert_string_equal(got1, got2);
	assert_string_equal(got1, fx.v6 ? "100.64.0.2/32 fd7a:115c:a1e0::/48" :
	    "100.64.0.2/32");
	router_free(rt);
	table52(got1, sizeof got1);
	assert_string_equal(got1, "");
}

static void
test_cleanup(void **state)
{
	struct router *rt = new_router();
	struct router_prefix a[] = { pfx("100.64.0.2/32"), pfx("fd7a:115c:a1e0::53/128") };
	struct rtnl_route other = {
		.family = AF_INET, .table = 53, .dst_len = 8, .oif = fx.ifindex,
	};
	struct rtnl_route *rts;
	char got[256];
	size_t n;

	assert_int_equal(router_set_routes(rt, a, ARRAY_SIZE(a)), 0);
	/* Others in the range go too; outside it, and other tables, stay. */
	add_rule(AF_INET, 5200, 0x1, 0xff, FR_ACT_TO_TBL, 200);
	add_rule(AF_INET, 5299, 0x2, 0xff, FR_ACT_TO_TBL, 200);
	add_rule(AF_INET, 5300, 0x3, 0xff, FR_ACT_TO_TBL, 200);
	other.dst[0] = 10;
	assert_int_equal(rtnl_route_add(fx.nl, &other), 0);

	assert_int_equal(router_cleanup(fx.nl), 0);
	table52(got, sizeof got);
	assert_string_equal(got, "");
	assert_int_equal(rules_in_range(AF_INET, 5200, 5299), 0);
	if (fx.v6)
		assert_int_equal(rules_in_range(AF_INET6, 5200, 5299), 0);
	assert_int_equal(rules_at(AF_INET, 5300, NULL), 1);
	assert_int_equal(rtnl_route_list(fx.nl, AF_INET, 53, &rts, &n), 0);
	assert_int_equal(n, 1);
	free(rts);
	/* Twice is fine; freeing the router afterwards too. */
	assert_int_equal(router_cleanup(fx.nl), 0);
	router_free(rt);

	struct rtnl_rule ru = {
		.family = AF_INET, .priority = 5300, .fwmark = 0x3,
		.fwmask = 0xff, .table = 200,
	};
	assert_int_equal(rtnl_rule_del(fx.nl, &ru), 0);
	assert_int_equal(rtnl_route_del(fx.nl, &other), 0);
}

static void
set_disable_ipv6(const char *v)
{
	int fd = open("/proc/sys/net/ipv6/conf/all/disable_ipv6", O_WRONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, v, 1), 1);
	close(fd);
}

/* IPv6 switched off (in this namespace only): IPv4 rules and routes only. */
static void
test_no_ipv6(void **state)
{
	struct router *rt;
	struct router_prefix a[] = { pfx("100.64.0.2/32"), pfx("fd7a:115c:a1e0::/48") };
	char got[256];

	if (!fx.v6) {
		/* Nothing to switch off; the IPv6-less path ran everywhere. */
		assert_no_rules(AF_INET);
		return;
	}
	set_disable_ipv6("1");
	rt = new_router();
	assert_rules(AF_INET);
	assert_no_rules(AF_INET6);
	assert_int_equal(router_set_routes(rt, a, ARRAY_SIZE(a)), 0);
	table52(got, sizeof got);
	assert_string_equal(got, "100.64.0.2/32");
	router_free(rt);
	assert_no_rules(AF_INET);
	set_disable_ipv6("0");
}

static void
test_bad_args(void **state)
{
	char *cause = NULL;

	assert_null(router_new(fx.nl, 0, &cause));
	assert_non_null(cause);
	free(cause);
	cause = NULL;
	assert_null(router_new(NULL, fx.ifindex, &cause));
	assert_non_null(cause);
	free(cause);
	assert_int_equal(router_cleanup(NULL), -EINVAL);
	assert_int_equal(router_resync(NULL), -EINVAL);
	assert_no_rules(AF_INET);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_rules, clean),
		cmocka_unit_test_setup(test_stale_rules, clean),
		cmocka_unit_test_setup(test_routes_diff, clean),
		cmocka_unit_test_setup(test_invalid_prefixes, clean),
		cmocka_unit_test_setup(test_retry, clean),
		cmocka_unit_test_setup(test_idempotent, clean),
		cmocka_unit_test_setup(test_cleanup, clean),
		cmocka_unit_test_setup(test_no_ipv6, clean),
		cmocka_unit_test_setup(test_bad_args, clean),
	};

	return cmocka_run_group_tests_name("router", tests, group_setup,
	    group_teardown);
}

// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * Policy rules and table-52 routes, the way tailscaled's Linux router
 * programs them (wgengine/router/osrouter/router_linux.go: baseIPRules,
 * addIPRules, addRoute), over rtnetlink.
 *
 * We keep the set of routes we asked for, sorted, with whether each is in
 * the kernel; a new set is merged against it so only the difference goes
 * to the kernel.  Adds use NLM_F_REPLACE and so are idempotent, which is
 * what makes resync after a link flap a plain re-add.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>

#include "agent/router.h"
#include "common/log.h"
#include "common/util.h"
#include "netlink/rtnl.h"

#define RULE_PASSES	5

struct route_ent {
	struct router_prefix p;
	bool installed;		/* the kernel accepted our add */
	bool warned;		/* its failure has been logged */
};

struct router {
	struct rtnl *nl;
	int ifindex;
	bool v6;		/* the kernel has IPv6 */
	struct route_ent *routes;	/* sorted, unique */
	size_t n_routes;
};

/* tailscaled's baseIPRules at ipPolicyPrefBase 5200. */
static const struct {
	uint32_t priority;
	uint32_t fwmark;
	uint32_t fwmask;
	uint8_t action;
	uint32_t table;
} base_rules[] = {
	/* Our own marked packets try the main table... */
	{ ROUTER_PRIO_MAIN, ROUTER_FWMARK, ROUTER_FWMASK, FR_ACT_TO_TBL, RT_TABLE_MAIN },
	/* ...then the default table... */
	{ ROUTER_PRIO_DEFAULT, ROUTER_FWMARK, ROUTER_FWMASK, FR_ACT_TO_TBL, RT_TABLE_DEFAULT },
	/* ...and fail rather than loop into the tunnel. */
	{ ROUTER_PRIO_UNREACH, ROUTER_FWMARK, ROUTER_FWMASK, FR_ACT_UNREACHABLE, 0 },
	/* Everything else sees table 52 before main (32766). */
	{ ROUTER_PRIO_TABLE, 0, 0, FR_ACT_TO_TBL, ROUTER_TABLE },
};

static struct rtnl_rule
base_rule(int family, size_t i)
{
	struct rtnl_rule ru = {
		.family = family,
		.priority = base_rules[i].priority,
		.fwmark = base_rules[i].fwmark,
		.fwmask = base_rules[i].fwmask,
		.action = base_rules[i].action,
		.table = base_rules[i].table,
	};

	return ru;
}

/* The index in base_rules of a rule at one of our priorities, or -1. */
static int
base_index(uint32_t priority)
{
	for (size_t i = 0; i < ARRAY_SIZE(base_rules); i++)
		if (base_rules[i].priority == priority)
			return (int)i;
	return -1;
}

static bool
rule_is(const struct rtnl_rule *have, const struct rtnl_rule *want)
{
	uint8_t act = have->action ? have->action : FR_ACT_TO_TBL;

	return !have->other_selectors && !have->invert &&
	    have->family == want->family && have->priority == want->priority &&
	    act == want->action && have->fwmark == want->fwmark &&
	    have->fwmask == want->fwmask &&
	    (want->action != FR_ACT_TO_TBL || have->table == want->table);
}

static int
family_af(uint8_t family)
{
	return family == 6 ? AF_INET6 : AF_INET;
}

/*
 * Whether IPv6 is usable: rules for it exist in the kernel (no
 * ipv6.disable=1) and it is not switched off for every interface.
 */
static bool
have_ipv6(struct rtnl *nl)
{
	struct rtnl_rule *rules;
	size_t n;
	char c = '0';
	int fd;

	if (rtnl_rule_list(nl, AF_INET6, &rules, &n) < 0)
		return false;
	free(rules);
	if ((fd = open("/proc/sys/net/ipv6/conf/all/disable_ipv6",
	    O_RDONLY | O_CLOEXEC)) >= 0) {
		if (read(fd, &c, 1) != 1)
			c = '0';
		close(fd);
	}
	return c != '1';
}

/*
 * Removes every rule at one of our priorities that is not ours, and extra
 * copies of ours, then adds whatever of ours is missing.  Ours are never
 * deleted first: a gap in 5210 would send our own marked packets into
 * table 52.  (The kernel deletes the first rule matching a request, so
 * deleting a stale rule that differs from ours only in a selector we do
 * not model can take ours instead; the add below puts it back.)
 */
static int
ensure_rules(struct rtnl *nl, int family)
{
	struct rtnl_rule *rules, want;
	bool seen[ARRAY_SIZE(base_rules)];
	bool deleted;
	size_t i, n;
	int idx, err;

	for (int pass = 0; pass < RULE_PASSES; pass++) {
		if ((err = rtnl_rule_list(nl, family, &rules, &n)) < 0)
			return err;
		memset(seen, 0, sizeof seen);
		deleted = false;
		for (i = 0; i < n; i++) {
			if ((idx = base_index(rules[i].priority)) < 0)
				continue;
			want = base_rule(family, (size_t)idx);
			if (!seen[idx] && rule_is(&rules[i], &want)) {
				seen[idx] = true;
				continue;
			}
			log_info("router: removing stale rule %u (family %d)",
			    rules[i].priority, family);
			err = rtnl_rule_del(nl, &rules[i]);
			if (err < 0 && err != -ENOENT) {
				free(rules);
				return err;
			}
			deleted = true;
		}
		free(rules);
		if (!deleted)
			break;
	}
	for (i = 0; i < ARRAY_SIZE(base_rules); i++) {
		want = base_rule(family, i);
		if ((err = rtnl_rule_add(nl, &want)) < 0)
			return err;
	}
	return 0;
}

static void
remove_rules(struct rtnl *nl, int family)
{
	struct rtnl_rule ru;
	int err;

	for (size_t i = 0; i < ARRAY_SIZE(base_rules); i++) {
		ru = base_rule(family, i);
		err = rtnl_rule_del(nl, &ru);
		if (err < 0 && err != -ENOENT)
			log_warn("router: deleting rule %u: %s", ru.priority,
			    strerror(-err));
	}
}

static int
install_rules(struct router *rt)
{
	int err;

	if ((err = ensure_rules(rt->nl, AF_INET)) < 0)
		return err;
	if (rt->v6 && (err = ensure_rules(rt->nl, AF_INET6)) < 0)
		return err;
	return 0;
}

struct router *
router_new(struct rtnl *nl, int ifindex, char **cause)
{
	struct router *rt;
	int err;

	if (nl == NULL || ifindex <= 0) {
		set_cause(cause, -EINVAL, "router: bad netlink handle or ifindex");
		return NULL;
	}
	rt = xcalloc(1, sizeof *rt);
	rt->nl = nl;
	rt->ifindex = ifindex;
	rt->v6 = have_ipv6(nl);
	if (!rt->v6)
		log_info("router: no IPv6 in the kernel; IPv4 rules and routes only");
	if ((err = install_rules(rt)) < 0) {
		set_cause(cause, err, "router: adding policy rules: %s",
		    strerror(-err));
		remove_rules(nl, AF_INET);
		if (rt->v6)
			remove_rules(nl, AF_INET6);
		free(rt);
		return NULL;
	}
	return rt;
}

static void
format_prefix(const struct router_prefix *p, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (inet_ntop(family_af(p->family), p->addr, a, sizeof a) == NULL)
		snprintf(a, sizeof a, "?");
	snprintf(buf, len, "%s/%u", a, p->bits);
}

static struct rtnl_route
mkroute(const struct router *rt, const struct router_prefix *p)
{
	struct rtnl_route r = {
		.family = family_af(p->family),
		.table = ROUTER_TABLE,
		.type = RTN_UNICAST,
		.dst_len = p->bits,
		.oif = rt->ifindex,
	};

	memcpy(r.dst, p->addr, sizeof r.dst);
	return r;
}

static int
prefix_cmp(const struct router_prefix *a, const struct router_prefix *b)
{
	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	if (a->bits != b->bits)
		return a->bits < b->bits ? -1 : 1;
	return memcmp(a->addr, b->addr, sizeof a->addr);
}

static int
ent_cmp(const void *a, const void *b)
{
	return prefix_cmp(&((const struct route_ent *)a)->p,
	    &((const struct route_ent *)b)->p);
}

/* Validates and masks p into *out; false if it is not a route we make. */
static bool
normalize(const struct router *rt, const struct router_prefix *p,
    struct router_prefix *out)
{
	unsigned int alen, full, i;

	if (p->family == 4)
		alen = 4;
	else if (p->family == 6 && rt->v6)
		alen = 16;
	else
		return false;
	if (p->bits > alen * 8)
		return false;
	memset(out, 0, sizeof *out);
	out->family = p->family;
	out->bits = p->bits;
	full = p->bits / 8;
	memcpy(out->addr, p->addr, full);
	if (p->bits % 8 != 0)
		out->addr[full] = p->addr[full] &
		    (uint8_t)(0xff << (8 - p->bits % 8));
	for (i = alen; i < 16; i++)
		out->addr[i] = 0;
	return true;
}

/* Tries to put e in the kernel; logs a failure once per route. */
static void
add_route(struct router *rt, struct route_ent *e)
{
	struct rtnl_route r = mkroute(rt, &e->p);
	char buf[64];
	int err;

	if ((err = rtnl_route_add(rt->nl, &r)) == 0) {
		if (e->warned) {
			format_prefix(&e->p, buf, sizeof buf);
			log_info("router: route %s added after all", buf);
		}
		e->installed = true;
		e->warned = false;
		return;
	}
	e->installed = false;
	if (!e->warned) {
		format_prefix(&e->p, buf, sizeof buf);
		log_warn("router: adding route %s: %s (will retry)", buf,
		    strerror(-err));
		e->warned = true;
	}
}

static void
del_route(struct router *rt, const struct route_ent *e)
{
	struct rtnl_route r = mkroute(rt, &e->p);
	char buf[64];
	int err;

	if (!e->installed)
		return;
	err = rtnl_route_del(rt->nl, &r);
	if (err < 0 && err != -ENOENT) {
		format_prefix(&e->p, buf, sizeof buf);
		log_warn("router: deleting route %s: %s", buf, strerror(-err));
	}
}

static int
count_missing(const struct router *rt)
{
	int missing = 0;

	for (size_t i = 0; i < rt->n_routes; i++)
		if (!rt->routes[i].installed)
			missing++;
	return missing;
}

int
router_set_routes(struct router *rt, const struct router_prefix *p, size_t n)
{
	struct route_ent *want;
	size_t i, j, k, nw = 0;

	if (rt == NULL)
		return -EINVAL;
	if (n > ROUTER_MAX_ROUTES) {
		log_warn("router: %zu routes wanted, installing the first %d",
		    n, ROUTER_MAX_ROUTES);
		n = ROUTER_MAX_ROUTES;
	}
	want = n ? xcalloc(n, sizeof *want) : NULL;
	for (i = 0; i < n; i++)
		if (normalize(rt, &p[i], &want[nw].p))
			nw++;
	if (nw > 1)
		qsort(want, nw, sizeof *want, ent_cmp);
	for (i = k = 0; i < nw; i++)
		if (k == 0 || prefix_cmp(&want[k - 1].p, &want[i].p) != 0)
			want[k++] = want[i];
	nw = k;

	/* Merge: carry the state of routes we keep; add the new first. */
	for (i = j = 0; i < nw; i++) {
		while (j < rt->n_routes &&
		    prefix_cmp(&rt->routes[j].p, &want[i].p) < 0)
			j++;
		if (j < rt->n_routes && prefix_cmp(&rt->routes[j].p,
		    &want[i].p) == 0)
			want[i] = rt->routes[j];
		if (!want[i].installed)
			add_route(rt, &want[i]);
	}
	/* Then delete what is no longer wanted. */
	for (i = j = 0; i < rt->n_routes; i++) {
		while (j < nw && prefix_cmp(&want[j].p, &rt->routes[i].p) < 0)
			j++;
		if (j < nw && prefix_cmp(&want[j].p, &rt->routes[i].p) == 0)
			continue;
		del_route(rt, &rt->routes[i]);
	}
	free(rt->routes);
	rt->routes = want;
	rt->n_routes = nw;
	return count_missing(rt);
}

int
router_resync(struct router *rt)
{
	int err;

	if (rt == NULL)
		return -EINVAL;
	if ((err = install_rules(rt)) < 0) {
		log_warn("router: re-adding policy rules: %s", strerror(-err));
		return err;
	}
	for (size_t i = 0; i < rt->n_routes; i++)
		add_route(rt, &rt->routes[i]);
	return count_missing(rt);
}

void
router_free(struct router *rt)
{
	if (rt == NULL)
		return;
	for (size_t i = 0; i < rt->n_routes; i++)
		del_route(rt, &rt->routes[i]);
	remove_rules(rt->nl, AF_INET);
	if (rt->v6)
		remove_rules(rt->nl, AF_INET6);
	free(rt->routes);
	free(rt);
}

int
router_cleanup(struct rtnl *nl)
{
	static const int families[] = { AF_INET, AF_INET6 };
	int first = 0, err;

	if (nl == NULL)
		return -EINVAL;
	for (size_t i = 0; i < ARRAY_SIZE(families); i++) {
		err = rtnl_route_flush_table(nl, families[i], ROUTER_TABLE);
		if (err < 0 && err != -EAFNOSUPPORT && first == 0)
			first = err;
		err = rtnl_rule_flush_priority(nl, families[i], ROUTER_PRIO_LO,
		    ROUTER_PRIO_HI);
		if (err < 0 && err != -EAFNOSUPPORT && first == 0)
			first = err;
	}
	return first;
}

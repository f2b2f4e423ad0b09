// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * The netcheck core against derp_disco.md §5.2-§5.3, with a fake clock, a
 * DERP map built here, and a counter as the random source (so txids are
 * distinct and runs repeat).
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "tests/unit/endpoints.h"

#include "agent/control/netmap.h"
#include "agent/magicsock/netcheck.h"
#include "common/clock.h"
#include "common/util.h"

#define MS		NSEC_PER_MSEC
#define SEC		NSEC_PER_SEC
#define T0		(1000 * SEC)	/* the clock does not start at 0 */
#define MAXP		64

/* --- the fake random source --- */

static uint64_t rnd_counter;

static void
fake_random(void *ctx, void *buf, size_t len)
{
	uint8_t *b = buf;

	for (size_t i = 0; i < len; i++) {
		rnd_counter = rnd_counter * 6364136223846793005ULL +
		    1442695040888963407ULL;
		b[i] = (uint8_t)(rnd_counter >> 56);
	}
}

/* Always the same bytes: txids repeat, the core must cope. */
static void
stuck_random(void *ctx, void *buf, size_t len)
{
	memset(buf, 0x5a, len);
}

/* --- a DERP map --- */

/*
 * 1: two nodes, literal v4 and v6, second on port 3479.
 * 2: one node, DNS for both families.
 * 3: NoMeasureNoHome.
 * 4: first node STUN-disabled (-1), second v4 only ("none" for v6).
 * 5: a STUNOnly node.
 * 6: Avoid.
 */
static const struct netmap_derp_node nodes1[] = {
	{ .name = "1a", .hostname = "a.one", .ipv4 = "192.0.2.1",
	  .ipv6 = "2001:db8::1", .region_id = 1 },
	{ .name = "1b", .hostname = "b.one", .ipv4 = "192.0.2.2",
	  .ipv6 = "2001:db8::2", .region_id = 1, .stun_port = 3479 },
};
static const struct netmap_derp_node nodes2[] = {
	{ .name = "2a", .hostname = "a.two", .ipv4 = "", .ipv6 = "",
	  .region_id = 2 },
};
static const struct netmap_derp_node nodes3[] = {
	{ .name = "3a", .hostname = "a.three", .ipv4 = "192.0.2.3",
	  .ipv6 = "", .region_id = 3 },
};
static const struct netmap_derp_node nodes4[] = {
	{ .name = "4a", .hostname = "a.four", .ipv4 = "192.0.2.40",
	  .ipv6 = "", .region_id = 4, .stun_port = -1 },
	{ .name = "4b", .hostname = "b.four", .ipv4 = "192.0.2.41",
	  .ipv6 = "none", .region_id = 4 },
};
static const struct netmap_derp_node nodes5[] = {
	{ .name = "5a", .hostname = "a.five", .ipv4 = "192.0.2.5",
	  .ipv6 = "none", .region_id = 5, .flags = NETMAP_DERP_STUN_ONLY },
};
static const struct netmap_derp_node nodes6[] = {
	{ .name = "6a", .hostname = "a.six", .ipv4 = "192.0.2.6",
	  .ipv6 = "none", .region_id = 6 },
};

static const struct netmap_derp_region regions_all[] = {
	{ .region_id = 1, .code = "one", .n_nodes = 2, .nodes = nodes1 },
	{ .region_id = 2, .code = "two", .n_nodes = 1, .nodes = nodes2 },
	{ .region_id = 3, .code = "three", .n_nodes = 1, .nodes = nodes3,
	  .flags = NETMAP_DERP_REGION_NO_MEASURE_NO_HOME },
	{ .region_id = 4, .code = "four", .n_nodes = 2, .nodes = nodes4 },
	{ .region_id = 5, .code = "five", .n_nodes = 1, .nodes = nodes5 },
	{ .region_id = 6, .code = "six", .n_nodes = 1, .nodes = nodes6,
	  .flags = NETMAP_DERP_REGION_AVOID },
};

static const struct netmap_derp_map map_all = {
	.n_regions = ARRAY_SIZE(regions_all), .regions = regions_all,
};

/* Four plain one-node v4 regions, 11..14, for the home-selection tests. */
static const struct netmap_derp_node simple_nodes[4][1] = {
	{ { .name = "11", .hostname = "h11", .ipv4 = "198.51.100.11", .ipv6 = "none", .region_id = 11 } },
	{ { .name = "12", .hostname = "h12", .ipv4 = "198.51.100.12", .ipv6 = "none", .region_id = 12 } },
	{ { .name = "13", .hostname = "h13", .ipv4 = "198.51.100.13", .ipv6 = "none", .region_id = 13 } },
	{ { .name = "14", .hostname = "h14", .ipv4 = "198.51.100.14", .ipv6 = "none", .region_id = 14 } },
};
static const struct netmap_derp_region simple_regions[] = {
	{ .region_id = 11, .n_nodes = 1, .nodes = simple_nodes[0] },
	{ .region_id = 12, .n_nodes = 1, .nodes = simple_nodes[1] },
	{ .region_id = 13, .n_nodes = 1, .nodes = simple_nodes[2] },
	{ .region_id = 14, .n_nodes = 1, .nodes = simple_nodes[3] },
};
static const struct netmap_derp_map map_simple = {
	.n_regions = 4, .regions = simple_regions,
};

static const struct netcheck_opts v4only = { .have_v4 = true };
static const struct netcheck_opts v4full = { .have_v4 = true, .force_full = true };
static const struct netcheck_opts dual = {
	.have_v4 = true, .have_v6 = true, .os_has_ipv6 = true,
};

/* --- helpers --- */

static struct netcheck *
nc_new(void)
{
	rnd_counter = 1;
	return netcheck_new(fake_random, NULL);
}

static void
start(struct netcheck *nc, const struct netmap_derp_map *dm,
    const struct netcheck_opts *o, uint64_t now)
{
	assert_int_equal(netcheck_start(nc, dm, o, now), 0);
	assert_int_equal(netcheck_state(nc), NETCHECK_RUNNING);
}

static size_t
due(struct netcheck *nc, uint64_t now, struct netcheck_probe *p,
    uint64_t *next)
{
	uint64_t dl;
	size_t n = netcheck_due(nc, now, p, MAXP, &dl);

	for (size_t i = 0; i < n; i++)
		netcheck_sent(nc, p[i].txid, true);
	if (next)
		*next = dl;
	return n;
}

static const struct netcheck_probe *
find_probe(const struct netcheck_probe *p, size_t n, int32_t region, int fam)
{
	for (size_t i = 0; i < n; i++)
		if (p[i].region_id == region && p[i].family == fam)
			return &p[i];
	return NULL;
}

static size_t
count_region(const struct netcheck_probe *p, size_t n, int32_t region)
{
	size_t c = 0;

	for (size_t i = 0; i < n; i++)
		c += p[i].region_id == region;
	return c;
}

static void
answer(struct netcheck *nc, const struct netcheck_probe *p, uint64_t now)
{
	union wg_endpoint m = p->family == 4 ? ep4("203.0.113.7", 41641) :
	    ep6("2001:db8:ffff::7", 41641);

	assert_non_null(p);
	assert_true(netcheck_on_stun(nc, p->txid, &m, now));
}

/*
 * Runs one report over map_simple where region 11+i answers after lat[i]
 * ms (0 = never), and returns it.  Each region's first try is answered.
 */
static const struct netcheck_report *
run_report(struct netcheck *nc, const struct netcheck_opts *o, uint64_t t,
    const uint64_t lat_ms[4])
{
	struct netcheck_probe p[MAXP];
	struct {
		struct netcheck_probe p;
		uint64_t at;
	} pend[4];
	bool done[4] = { false, false, false, false };
	size_t n, np = 0;
	uint64_t now = t, next;
	const struct netcheck_probe *q;

	start(nc, &map_simple, o, t);
	while (netcheck_state(nc) == NETCHECK_RUNNING) {
		n = due(nc, now, p, &next);
		for (int i = 0; i < 4; i++) {
			if (lat_ms[i] == 0 || (q = find_probe(p, n, 11 + i, 4)) == NULL)
				continue;
			/* Only the first try of a region is answered. */
			bool seen = false;

			for (size_t j = 0; j < np; j++)
				seen |= pend[j].p.region_id == 11 + i;
			if (!seen) {
				pend[np].p = *q;
				pend[np].at = now + lat_ms[i] * MS;
				np++;
			}
		}
		if (netcheck_state(nc) != NETCHECK_RUNNING)
			break;
		/* Advance to the next event: a timer or an answer. */
		uint64_t ev = next;

		for (size_t j = 0; j < np; j++)
			if (!done[j] && pend[j].at < ev)
				ev = pend[j].at;
		assert_true(ev != UINT64_MAX);
		assert_true(ev >= now);
		for (size_t j = 0; j < np; j++) {
			if (!done[j] && pend[j].at == ev) {
				done[j] = true;
				answer(nc, &pend[j].p, ev);
			}
		}
		now = ev;
		assert_true(now - t <= 3 * SEC);
	}
	assert_int_equal(netcheck_state(nc), NETCHECK_DONE);
	return netcheck_last_report(nc);
}

/* --- tests --- */

static void
test_plan_full(void **state)
{
	struct netcheck *nc = nc_new();
	struct netcheck_probe p[MAXP];
	const struct netcheck_probe *q;
	char buf[INET6_ADDRSTRLEN];
	uint64_t next;
	size_t n;

	start(nc, &map_all, &dual, T0);
	n = due(nc, T0, p, &next);
	/* One try per family and region at 0 ms; 3 (NoMeasureNoHome) never. */
	assert_int_equal(count_region(p, n, 3), 0);
	assert_int_equal(next, T0 + 100 * MS);
	/* 1: v4 + v6 to node 0, literal addresses, port 3478. */
	q = find_probe(p, n, 1, 4);
	assert_non_null(q);
	assert_int_equal(q->node_index, 0);
	assert_int_equal(q->dst.sa.sa_family, AF_INET);
	assert_int_equal(ntohs(q->dst.in4.sin_port), 3478);
	inet_ntop(AF_INET, &q->dst.in4.sin_addr, buf, sizeof buf);
	assert_string_equal(buf, "192.0.2.1");
	assert_string_equal(q->hostname, "a.one");
	q = find_probe(p, n, 1, 6);
	assert_non_null(q);
	assert_int_equal(q->dst.sa.sa_family, AF_INET6);
	inet_ntop(AF_INET6, &q->dst.in6.sin6_addr, buf, sizeof buf);
	assert_string_equal(buf, "2001:db8::1");
	/* 2: DNS for both: AF_UNSPEC, hostname and port given. */
	q = find_probe(p, n, 2, 4);
	assert_non_null(q);
	assert_int_equal(q->dst.sa.sa_family, AF_UNSPEC);
	assert_string_equal(q->hostname, "a.two");
	assert_int_equal(q->port, 3478);
	assert_non_null(find_probe(p, n, 2, 6));
	/* 4: node 0 has STUN off: node 1, and v4 only. */
	q = find_probe(p, n, 4, 4);
	assert_non_null(q);
	assert_int_equal(q->node_index, 1);
	assert_null(find_probe(p, n, 4, 6));
	/* 5: STUNOnly nodes are probed. 6: Avoid is probed in a full report. */
	assert_non_null(find_probe(p, n, 5, 4));
	assert_non_null(find_probe(p, n, 6, 4));
	assert_int_equal(n, 2 + 2 + 1 + 1 + 1);
	/* All txids distinct. */
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			assert_memory_not_equal(p[i].txid, p[j].txid, NETCHECK_TXID_LEN);

	/* Nothing more before 100 ms. */
	assert_int_equal(due(nc, T0 + 99 * MS, p, &next), 0);
	assert_int_equal(next, T0 + 100 * MS);
	/* Second try: node 1 of region 1, on its port. */
	n = due(nc, T0 + 100 * MS, p, &next);
	assert_int_equal(n, 7);
	q = find_probe(p, n, 1, 4);
	assert_int_equal(q->node_index, 1);
	assert_int_equal(ntohs(q->dst.in4.sin_port), 3479);
	assert_int_equal(q->port, 3479);
	assert_int_equal(next, T0 + 200 * MS);
	/* Third try: back to node 0. */
	n = due(nc, T0 + 200 * MS, p, &next);
	assert_int_equal(n, 7);
	assert_int_equal(find_probe(p, n, 1, 4)->node_index, 0);
	assert_int_equal(find_probe(p, n, 4, 4)->node_index, 1);
	/* No more tries; only the 3 s limit is left. */
	assert_int_equal(due(nc, T0 + 300 * MS, p, &next), 0);
	assert_int_equal(next, T0 + 3 * SEC);
	netcheck_free(nc);
}

static void
test_plan_families(void **state)
{
	struct netcheck *nc = nc_new();
	struct netcheck_probe p[MAXP];
	struct netcheck_opts v6only = { .have_v6 = true };
	size_t n;

	/* v4 only: no v6 probes. */
	start(nc, &map_all, &v4full, T0);
	n = due(nc, T0, p, NULL);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(p[i].family, 4);
	netcheck_abort(nc);
	assert_int_equal(netcheck_state(nc), NETCHECK_IDLE);
	assert_null(netcheck_last_report(nc));

	/* v6 only: regions whose nodes all disable v6 get nothing. */
	v6only.force_full = true;
	start(nc, &map_all, &v6only, T0);
	n = due(nc, T0, p, NULL);
	assert_int_equal(n, 2);
	assert_non_null(find_probe(p, n, 1, 6));
	assert_non_null(find_probe(p, n, 2, 6));
	netcheck_free(nc);
}

static void
test_latency(void **state)
{
	struct netcheck *nc = nc_new();
	struct netcheck_probe p[MAXP], first[MAXP], second[MAXP];
	const struct netcheck_report *r;
	size_t n1, n2, n;

	start(nc, &map_simple, &v4only, T0);
	n1 = due(nc, T0, first, NULL);
	assert_int_equal(n1, 4);
	/* Region 11 answers its first try after 25 ms. */
	answer(nc, find_probe(first, n1, 11, 4), T0 + 25 * MS);
	/* Its remaining tries are cancelled. */
	n2 = due(nc, T0 + 100 * MS, second, NULL);
	assert_int_equal(n2, 3);
	assert_null(find_probe(second, n2, 11, 4));
	/* Region 12: the second try answered 40 ms after it was sent... */
	answer(nc, find_probe(second, n2, 12, 4), T0 + 140 * MS);
	/* ...then a late answer to its first try (sent at 0): lower wins. */
	answer(nc, find_probe(first, n1, 12, 4), T0 + 150 * MS);
	/* Same answer again: already answered. */
	assert_false(netcheck_on_stun(nc, find_probe(first, n1, 12, 4)->txid,
	    NULL, T0 + 151 * MS));
	n = due(nc, T0 + 3 * SEC, p, NULL);
	assert_int_equal(n, 0);
	assert_int_equal(netcheck_state(nc), NETCHECK_DONE);
	r = netcheck_last_report(nc);
	assert_non_null(r);
	assert_true(r->udp);
	assert_true(r->ipv4);
	assert_false(r->ipv6);
	assert_true(r->ipv4_can_send);
	assert_false(r->ipv6_can_send);
	assert_true(r->full);
	assert_int_equal(r->n_regions, 2);
	assert_int_equal(netcheck_region_latency(r, 11), 25 * MS);
	assert_int_equal(netcheck_region_latency(r, 12), 40 * MS);
	assert_int_equal(netcheck_region_latency(r, 13), 0);
	assert_int_equal(r->regions[0].region_id, 11);
	assert_int_equal(r->regions[0].v6_ns, 0);
	assert_int_equal(r->preferred_derp, 11);
	assert_int_equal(r->netcheck_derp, 11);
	assert_int_equal(netcheck_home(nc), 11);
	assert_int_equal(r->end_ns, T0 + 3 * SEC);
	netcheck_free(nc);
}

static void
test_early_stop(void **state)
{
	struct netcheck *nc = nc_new();
	struct netcheck_probe p[MAXP];
	uint64_t next;
	size_t n;

	start(nc, &map_simple, &v4only, T0);
	n = due(nc, T0, p, &next);
	assert_int_equal(n, 4);
	answer(nc, find_probe(p, n, 11, 4), T0 + 10 * MS);
	answer(nc, find_probe(p, n, 12, 4), T0 + 20 * MS);
	answer(nc, find_probe(p, n, 13, 4), T0 + 30 * MS);
	/* Three regions: wait 2 x 30 ms (full report) from the third. */
	assert_int_equal(due(nc, T0 + 50 * MS, p, &next), 0);
	assert_int_equal(next, T0 + 90 * MS);
	assert_int_equal(netcheck_state(nc), NETCHECK_RUNNING);
	(void)due(nc, T0 + 89 * MS, p, &next);
	assert_int_equal(netcheck_state(nc), NETCHECK_RUNNING);
	(void)due(nc, T0 + 90 * MS, p, &next);
	assert_int_equal(netcheck_state(nc), NETCHECK_DONE);
	assert_int_equal(next, UINT64_MAX);
	assert_int_equal(netcheck_last_report(nc)->n_regions, 3);
	netcheck_free(nc);

	/* Every set answered: done at once, no timer needed. */
	nc = nc_new();
	start(nc, &map_simple, &v4only, T0);
	n = due(nc, T0, p, &next);
	for (int i = 0; i < 3; i++)
		answer(nc, find_probe(p, n, 11 + i, 4), T0 + 5 * MS);
	assert_int_equal(netcheck_state(nc), NETCHECK_RUNNING);
	answer(nc, find_probe(p, n, 14, 4), T0 + 6 * MS);
	assert_int_equal(netcheck_state(nc), NETCHECK_DONE);
	assert_int_equal(netcheck_last_report(nc)->end_ns, T0 + 6 * MS);
	netcheck_free(nc);
}

static void
test_hard_timeout(void **state)
{
	struct netcheck *nc = nc_new();
	struct netcheck_probe p[MAXP];
	const struct netcheck_report *r;
	uint64_t next, now = T0;
	int calls = 0;

	start(nc, &map_all, &dual, T0);
	do {
		(void)due(nc, now, p, &next);
		if (netcheck_state(nc) != NETCHECK_RUNNING)
			break;
		assert_true(next > now);
		assert_true(next <= T0 + 3 * SEC);
		now = next;
		assert_true(++calls < 10);
	} while (1);
	assert_int_equal(now, T0 + 3 * SEC);
	r = netcheck_last_report(nc);
	assert_false(r->udp);
	assert_false(r->ipv4);
	assert_int_equal(r->n_regions, 0);
	assert_int_equal(r->mapping_varies_by_dest_ip, -1);
	assert_int_equal(r->global_v4.sa.sa_family, AF_UNSPEC);
	assert_true(r->os_has_ipv6);
	/* UDP blocked: a fallback home, never the NoMeasureNoHome region. */
	assert_int_equal(r->netcheck_derp, 0);
	assert_true(r->preferred_derp != 0 && r->preferred_derp != 3);
	netcheck_free(nc);
}

static void
test_unknown_txid(void **state)
{
	struct netcheck *nc = nc_new();
	struct netcheck_probe p[MAXP];
	uint8_t bogus[NETCHECK_TXID_LEN];
	union wg_endpoint m = ep4("203.0.113.1", 1);
	size_t n;

	/* No report running. */
	memset(bogus, 0xee, sizeof bogus);
	assert_false(netcheck_on_stun(nc, bogus, &m, T0));
	start(nc, &map_simple, &v4only, T0);
	n = netcheck_due(nc, T0, p, MAXP, NULL);
	assert_int_equal(n, 4);
	assert_false(netcheck_on_stun(nc, bogus, &m, T0 + MS));
	/* A probe that could not be sent is forgotten. */
	netcheck_sent(nc, p[0].txid, false);
	assert_false(netcheck_on_stun(nc, p[0].txid, &m, T0 + MS));
	netcheck_sent(nc, p[1].txid, true);
	assert_true(netcheck_on_stun(nc, p[1].txid, &m, T0 + MS));
	assert_false(netcheck_on_stun(nc, p[1].txid, &m, T0 + 2 * MS));
	/* After the report, nothing is outstanding. */
	(void)netcheck_due(nc, T0 + 3 * SEC, p + 4, MAXP - 4, NULL);
	assert_int_equal(netcheck_state(nc), NETCHECK_DONE);
	assert_false(netcheck_on_stun(nc, p[2].txid, &m, T0 + 3 * SEC));
	assert_false(netcheck_on_stun(nc, NULL, &m, T0 + 3 * SEC));
	/* One v4 probe left: the report says v4 can send. */
	assert_true(netcheck_last_report(nc)->ipv4_can_send);
	netcheck_free(nc);

	/* An answer after the 3 s limit, before any netcheck_due(): too late. */
	nc = nc_new();
	start(nc, &map_simple, &v4only, T0);
	n = due(nc, T0, p, NULL);
	assert_false(netcheck_on_stun(nc, p[0].txid, &m, T0 + 3 * SEC));
	assert_int_equal(netcheck_state(nc), NETCHECK_DONE);
	assert_int_equal(netcheck_last_report(nc)->end_ns, T0 + 3 * SEC);
	assert_false(netcheck_last_report(nc)->udp);
	netcheck_free(nc);

	/* A broken random source repeating itself must not crash. */
	nc = netcheck_new(stuck_random, NULL);
	start(nc, &map_simple, &v4only, T0);
	n = netcheck_due(nc, T0, p, MAXP, NULL);
	assert_int_equal(n, 4);
	assert_true(netcheck_on_stun(nc, p[0].txid, &m, T0 + MS));
	(void)netcheck_due(nc, T0 + 3 * SEC, p, MAXP, NULL);
	assert_int_equal(netcheck_state(nc), NETCHECK_DONE);
	netcheck_free(nc);
}

static void
test_mapping_varies(void **state)
{
	struct netcheck *nc = nc_new();
	struct netcheck_probe p[MAXP];
	const struct netcheck_report *r;
	union wg_endpoint a = ep4("203.0.113.9", 5000);
	union wg_endpoint b = ep4("203.0.113.9", 5001);
	union wg_endpoint v6a = ep6("2001:db8::a", 7), v6b = ep6("2001:db8::b", 8);
	size_t n;

	start(nc, &map_all, &dual, T0);
	n = due(nc, T0, p, NULL);
	assert_true(netcheck_on_stun(nc, find_probe(p, n, 1, 4)->txid, &a, T0 + MS));
	assert_true(netcheck_on_stun(nc, find_probe(p, n, 2, 4)->txid, &a, T0 + MS));
	assert_true(netcheck_on_stun(nc, find_probe(p, n, 1, 6)->txid, &v6a, T0 + MS));
	assert_true(netcheck_on_stun(nc, find_probe(p, n, 2, 6)->txid, &v6b, T0 + 2 * MS));
	/* A third, different mapping (port): it varies. */
	assert_true(netcheck_on_stun(nc, find_probe(p, n, 4, 4)->txid, &b, T0 + 3 * MS));
	(void)due(nc, T0 + 3 * SEC, p, NULL);
	r = netcheck_last_report(nc);
	assert_int_equal(r->mapping_varies_by_dest_ip, 1);
	/* GlobalV4 is the first mapping; GlobalV6 the latest. */
	assert_memory_equal(&r->global_v4.in4, &a.in4, sizeof a.in4);
	assert_memory_equal(&r->global_v6.in6, &v6b.in6, sizeof v6b.in6);
	assert_true(r->ipv6);
	assert_true(r->ipv6_can_send);
	assert_int_equal(r->regions[0].region_id, 1);
	assert_int_equal(r->regions[0].v6_ns, MS);
	netcheck_free(nc);

	/* Two equal mappings: 0. */
	nc = nc_new();
	start(nc, &map_simple, &v4only, T0);
	n = due(nc, T0, p, NULL);
	assert_true(netcheck_on_stun(nc, p[0].txid, &a, T0 + MS));
	assert_true(netcheck_on_stun(nc, p[1].txid, &a, T0 + MS));
	(void)due(nc, T0 + 3 * SEC, p, NULL);
	assert_int_equal(netcheck_last_report(nc)->mapping_varies_by_dest_ip, 0);
	netcheck_free(nc);

	/* One mapping only: unknown. */
	nc = nc_new();
	start(nc, &map_simple, &v4only, T0);
	n = due(nc, T0, p, NULL);
	assert_true(netcheck_on_stun(nc, p[0].txid, &a, T0 + MS));
	(void)due(nc, T0 + 3 * SEC, p, NULL);
	assert_int_equal(netcheck_last_report(nc)->mapping_varies_by_dest_ip, -1);
	netcheck_free(nc);
}

/*
 * A later try is dropped, with its set, when it would teach nothing: the
 * region has a latency and (v6) some v6 result exists / (v4) the mapping
 * question is settled.
 */
static void
test_probe_would_help(void **state)
{
	struct netcheck *nc = nc_new();
	struct netcheck_probe p[MAXP];
	union wg_endpoint a = ep4("203.0.113.9", 5000);
	size_t n;

	start(nc, &map_all, &dual, T0);
	n = due(nc, T0, p, NULL);
	/* Region 1 answers on v4 and region 2 on v4 and v6. */
	answer(nc, find_probe(p, n, 2, 6), T0 + MS);
	assert_true(netcheck_on_stun(nc, find_probe(p, n, 1, 4)->txid, &a, T0 + MS));
	assert_true(netcheck_on_stun(nc, find_probe(p, n, 2, 4)->txid, &a, T0 + MS));
	/* Region 1's v6 retries would add nothing now. */
	n = due(nc, T0 + 100 * MS, p, NULL);
	assert_null(find_probe(p, n, 1, 6));
	assert_null(find_probe(p, n, 1, 4));
	/* Regions without a latency still get theirs. */
	assert_non_null(find_probe(p, n, 4, 4));
	netcheck_free(nc);
}

/* Runs the four-region report with latencies in ms; returns the home. */
static int32_t
home_after(struct netcheck *nc, uint64_t t, uint64_t a, uint64_t b,
    uint64_t c, uint64_t d)
{
	const uint64_t lat[4] = { a, b, c, d };
	const struct netcheck_report *r = run_report(nc, &v4full, t, lat);

	assert_int_equal(r->preferred_derp, netcheck_home(nc));
	return r->preferred_derp;
}

static void
test_stickiness(void **state)
{
	struct netcheck *nc = nc_new();
	uint64_t t = T0;

	assert_int_equal(home_after(nc, t, 20, 40, 0, 0), 11);
	/* 12 is 9 ms better (and more than a third): stay, by the 10 ms rule. */
	t += 30 * SEC;
	assert_int_equal(home_after(nc, t, 20, 11, 0, 0), 11);
	/* 10 ms better and 50% better: switch. */
	t += 30 * SEC;
	assert_int_equal(home_after(nc, t, 20, 10, 0, 0), 12);
	netcheck_free(nc);

	/* Far apart in absolute terms but within a third: stay. */
	nc = nc_new();
	t = T0;
	assert_int_equal(home_after(nc, t, 300, 400, 0, 0), 11);
	t += 30 * SEC;
	assert_int_equal(home_after(nc, t, 300, 210, 0, 0), 11);
	/* 199 < 2/3 x 300: switch. */
	t += 30 * SEC;
	assert_int_equal(home_after(nc, t, 300, 199, 0, 0), 12);
	netcheck_free(nc);

	/* The history: a region's best over 5 min + 5 s counts. */
	nc = nc_new();
	t = T0;
	assert_int_equal(home_after(nc, t, 50, 20, 0, 0), 12);
	/* 12 is slow now but its best recent (20) still beats 11. */
	t += 60 * SEC;
	assert_int_equal(home_after(nc, t, 50, 80, 0, 0), 12);
	/* Once that sample is older than 5 min 5 s, 11 wins clearly. */
	t = T0 + 306 * SEC;
	assert_int_equal(home_after(nc, t, 50, 80, 0, 0), 11);
	netcheck_free(nc);
}

static void
test_reachability(void **state)
{
	struct netcheck *nc = nc_new();
	uint64_t t = T0;

	assert_int_equal(home_after(nc, t, 30, 60, 0, 0), 11);
	/*
	 * 11 does not answer (the report runs to its 3 s limit); its last
	 * DERP frame came 7 s before the end: still reachable, kept.
	 */
	t += 30 * SEC;
	netcheck_note_derp_frame(nc, 11, t + 3 * SEC - 7 * SEC);
	assert_int_equal(home_after(nc, t, 0, 60, 0, 0), 11);
	assert_int_equal(netcheck_last_report(nc)->netcheck_derp, 11);
	/* Its last frame 9 s before the end: unreachable, move. */
	t += 30 * SEC;
	netcheck_note_derp_frame(nc, 11, t + 3 * SEC - 9 * SEC);
	assert_int_equal(home_after(nc, t, 0, 60, 0, 0), 12);
	/* Frames from other regions do not count for the home. */
	t += 30 * SEC;
	netcheck_note_derp_frame(nc, 11, t);
	netcheck_note_derp_frame(nc, 13, t);
	assert_int_equal(home_after(nc, t, 30, 0, 0, 0), 11);
	netcheck_free(nc);

	/* Nothing measured: a home heard within 120 s is kept by netcheck. */
	nc = nc_new();
	t = T0;
	assert_int_equal(home_after(nc, t, 30, 0, 0, 0), 11);
	t += 200 * SEC;
	netcheck_note_derp_frame(nc, 11, t - 100 * SEC);
	home_after(nc, t, 0, 0, 0, 0);
	assert_int_equal(netcheck_last_report(nc)->netcheck_derp, 11);
	assert_int_equal(netcheck_home(nc), 11);
	/* Heard 130 s ago: netcheck has no choice; magicsock keeps the home. */
	t += 200 * SEC;
	netcheck_note_derp_frame(nc, 11, t - 130 * SEC);
	home_after(nc, t, 0, 0, 0, 0);
	assert_int_equal(netcheck_last_report(nc)->netcheck_derp, 0);
	assert_int_equal(netcheck_last_report(nc)->preferred_derp, 11);
	netcheck_free(nc);
}

static void
test_region_score(void **state)
{
	static const struct netmap_derp_score sc1[] = {
		{ .region_id = 11, .score = 2.0 },
	};
	static const struct netmap_derp_score sc_bad[] = {
		{ .region_id = 11, .score = -1.0 }, { .region_id = 12, .score = 0 },
		{ .region_id = 13, .score = NAN },
		{ .region_id = 14, .score = 1e300 },
	};
	struct netmap_derp_map dm = map_simple;
	struct netcheck_probe p[MAXP];
	struct netcheck *nc;
	size_t n;

	/* 11 at 30 ms x 2 = 60 loses to 12 at 40. */
	dm.n_scores = 1;
	dm.scores = sc1;
	nc = nc_new();
	start(nc, &dm, &v4only, T0);
	n = due(nc, T0, p, NULL);
	answer(nc, find_probe(p, n, 11, 4), T0 + 30 * MS);
	answer(nc, find_probe(p, n, 12, 4), T0 + 40 * MS);
	(void)due(nc, T0 + 3 * SEC, p, NULL);
	assert_int_equal(netcheck_home(nc), 12);
	/* The report keeps raw latencies. */
	assert_int_equal(netcheck_region_latency(netcheck_last_report(nc), 11), 30 * MS);
	netcheck_free(nc);

	/*
	 * The old home's latency is scaled too: home 11 at 30 ms x 2 = 60
	 * against 12 at 35 ms is neither within 10 ms nor within a third.
	 */
	nc = nc_new();
	netcheck_set_home(nc, 11);
	start(nc, &dm, &v4only, T0);
	n = due(nc, T0, p, NULL);
	answer(nc, find_probe(p, n, 11, 4), T0 + 30 * MS);
	answer(nc, find_probe(p, n, 12, 4), T0 + 35 * MS);
	(void)due(nc, T0 + 3 * SEC, p, NULL);
	assert_int_equal(netcheck_home(nc), 12);
	netcheck_free(nc);

	/* Without the score 11 wins. */
	nc = nc_new();
	start(nc, &map_simple, &v4only, T0);
	n = due(nc, T0, p, NULL);
	answer(nc, find_probe(p, n, 11, 4), T0 + 30 * MS);
	answer(nc, find_probe(p, n, 12, 4), T0 + 40 * MS);
	(void)due(nc, T0 + 3 * SEC, p, NULL);
	assert_int_equal(netcheck_home(nc), 11);
	netcheck_free(nc);

	/* Scores <= 0 and NaN are ignored; a huge one penalises, no overflow. */
	dm.n_scores = ARRAY_SIZE(sc_bad);
	dm.scores = sc_bad;
	nc = nc_new();
	start(nc, &dm, &v4only, T0);
	n = due(nc, T0, p, NULL);
	answer(nc, find_probe(p, n, 14, 4), T0 + 1 * MS);
	answer(nc, find_probe(p, n, 13, 4), T0 + 50 * MS);
	answer(nc, find_probe(p, n, 11, 4), T0 + 30 * MS);
	answer(nc, find_probe(p, n, 12, 4), T0 + 40 * MS);
	assert_int_equal(netcheck_state(nc), NETCHECK_DONE);
	assert_int_equal(netcheck_home(nc), 11);
	netcheck_free(nc);
}

static void
test_no_measure_no_home(void **state)
{
	struct netcheck_probe p[MAXP];
	struct netcheck *nc;

	/* Whatever the seed, the fallback never picks region 3. */
	for (uint64_t seed = 1; seed < 64; seed++) {
		nc = netcheck_new(fake_random, NULL);
		rnd_counter = seed * 7919;
		start(nc, &map_all, &v4only, T0);
		(void)due(nc, T0 + 3 * SEC, p, NULL);
		assert_int_not_equal(netcheck_home(nc), 3);
		assert_int_not_equal(netcheck_home(nc), 0);
		netcheck_free(nc);
	}

	/* A NoMeasureNoHome home (e.g. from a cached netmap) is replaced. */
	nc = nc_new();
	netcheck_set_home(nc, 3);
	assert_int_equal(netcheck_home(nc), 3);
	netcheck_set_control(nc, false);
	start(nc, &map_all, &v4only, T0);
	{
		size_t n = due(nc, T0, p, NULL);

		answer(nc, find_probe(p, n, 2, 4), T0 + 10 * MS);
	}
	(void)due(nc, T0 + 3 * SEC, p, NULL);
	assert_int_equal(netcheck_home(nc), 2);
	netcheck_free(nc);

	/* The fallback is stable for the process. */
	nc = nc_new();
	start(nc, &map_all, &v4only, T0);
	(void)due(nc, T0 + 3 * SEC, p, NULL);
	int32_t h = netcheck_home(nc);

	netcheck_set_home(nc, 0);
	start(nc, &map_all, &v4full, T0 + 10 * SEC);
	(void)due(nc, T0 + 13 * SEC, p, NULL);
	assert_int_equal(netcheck_home(nc), h);
	netcheck_free(nc);
}

static void
test_incremental(void **state)
{
	struct netcheck *nc = nc_new();
	struct netcheck_probe p[MAXP];
	uint64_t t = T0, next;
	size_t n;
	const uint64_t lat[4] = { 10, 20, 30, 40 };

	/* A full report first (the first one always is). */
	assert_true(run_report(nc, &v4only, t, lat)->full);
	assert_int_equal(netcheck_home(nc), 11);

	/* 30 s later: incremental. */
	t += 30 * SEC;
	start(nc, &map_simple, &v4only, t);
	n = due(nc, t, p, &next);
	/* The 3 fastest (11 home, 12, 13); 14 not at all. */
	assert_int_equal(n, 3);
	assert_non_null(find_probe(p, n, 11, 4));
	assert_non_null(find_probe(p, n, 12, 4));
	assert_non_null(find_probe(p, n, 13, 4));
	/* Home 11 (last 10 ms): retries at 12 ms, 24+100, 36+150. */
	assert_int_equal(next, t + 12 * MS);
	n = due(nc, t + 12 * MS, p, &next);
	assert_int_equal(n, 1);
	assert_int_equal(p[0].region_id, 11);
	/* 12 (20 ms, fastest two): one retry at 24 ms. */
	assert_int_equal(next, t + 24 * MS);
	n = due(nc, t + 24 * MS, p, &next);
	assert_int_equal(n, 1);
	assert_int_equal(p[0].region_id, 12);
	assert_int_equal(next, t + 124 * MS);
	n = due(nc, t + 124 * MS, p, &next);
	assert_int_equal(n, 1);
	assert_int_equal(p[0].region_id, 11);
	assert_int_equal(next, t + 186 * MS);
	n = due(nc, t + 186 * MS, p, &next);
	assert_int_equal(n, 1);
	assert_int_equal(p[0].region_id, 11);
	assert_int_equal(next, t + 3 * SEC);
	(void)due(nc, t + 3 * SEC, p, &next);
	assert_false(netcheck_last_report(nc)->full);
	/* No answer at all in this one: nothing measured, home kept. */
	assert_int_equal(netcheck_home(nc), 11);

	/* Home outside the 3 fastest is added, with 4 tries. */
	t += 30 * SEC;
	(void)run_report(nc, &v4full, t, lat);
	netcheck_set_home(nc, 14);
	t += 30 * SEC;
	start(nc, &map_simple, &v4only, t);
	n = due(nc, t, p, &next);
	assert_int_equal(n, 4);
	assert_non_null(find_probe(p, n, 14, 4));
	size_t tries14 = 1;

	while (netcheck_state(nc) == NETCHECK_RUNNING && next < t + 3 * SEC) {
		uint64_t now = next;

		n = due(nc, now, p, &next);
		tries14 += count_region(p, n, 14);
	}
	assert_int_equal(tries14, 4);
	(void)due(nc, t + 3 * SEC, p, &next);
	assert_int_equal(netcheck_state(nc), NETCHECK_DONE);

	/* Three regions answer in an incremental report: wait 1 x max. */
	t += 30 * SEC;
	start(nc, &map_simple, &v4only, t);
	n = due(nc, t, p, &next);
	answer(nc, find_probe(p, n, 11, 4), t + 5 * MS);
	answer(nc, find_probe(p, n, 12, 4), t + 8 * MS);
	answer(nc, find_probe(p, n, 13, 4), t + 9 * MS);
	(void)due(nc, t + 10 * MS, p, &next);
	assert_int_equal(next, t + 18 * MS);
	(void)due(nc, t + 18 * MS, p, &next);
	assert_int_equal(netcheck_state(nc), NETCHECK_DONE);
	assert_false(netcheck_last_report(nc)->full);

	/* More than 5 min since the last full one: full again. */
	t += 5 * 60 * SEC;
	start(nc, &map_simple, &v4only, t);
	n = due(nc, t, p, &next);
	assert_int_equal(n, 4);
	(void)due(nc, t + 3 * SEC, p, &next);
	assert_true(netcheck_last_report(nc)->full);

	/* A report running refuses another start. */
	start(nc, &map_simple, &v4only, t + 10 * SEC);
	assert_int_equal(netcheck_start(nc, &map_simple, &v4only, t + 11 * SEC), -EBUSY);
	assert_int_equal(netcheck_start(nc, NULL, &v4only, t + 11 * SEC), -EINVAL);
	netcheck_free(nc);
}

static void
test_incremental_dual(void **state)
{
	struct netcheck *nc = nc_new();
	struct netcheck_probe p[MAXP];
	uint64_t t = T0, next;
	size_t n;

	/* Full dual-stack report: 1 and 2 answer on both families, 4-6 on v4. */
	start(nc, &map_all, &dual, t);
	n = due(nc, t, p, &next);
	answer(nc, find_probe(p, n, 1, 4), t + 10 * MS);
	answer(nc, find_probe(p, n, 1, 6), t + 11 * MS);
	answer(nc, find_probe(p, n, 4, 4), t + 20 * MS);
	answer(nc, find_probe(p, n, 6, 4), t + 25 * MS);	/* Avoid */
	answer(nc, find_probe(p, n, 2, 4), t + 30 * MS);
	answer(nc, find_probe(p, n, 2, 6), t + 31 * MS);
	answer(nc, find_probe(p, n, 5, 4), t + 40 * MS);
	(void)due(nc, t + 3 * SEC, p, &next);
	assert_int_equal(netcheck_home(nc), 1);

	t += 30 * SEC;
	start(nc, &map_all, &dual, t);
	n = due(nc, t, p, &next);
	/*
	 * 1 (home) and 4 (the two fastest): every family they have; 2
	 * (third, an even rank on a dual-stack host): IPv4 only.
	 */
	assert_non_null(find_probe(p, n, 1, 4));
	assert_non_null(find_probe(p, n, 1, 6));
	assert_non_null(find_probe(p, n, 4, 4));
	assert_non_null(find_probe(p, n, 2, 4));
	assert_null(find_probe(p, n, 2, 6));
	/* 6 (third fastest, but Avoid) and 5 are not probed; 3 never. */
	assert_int_equal(count_region(p, n, 5) + count_region(p, n, 6) +
	    count_region(p, n, 3), 0);
	assert_int_equal(n, 4);
	/* The home's retries keep both families: IPv6 answered last time. */
	assert_int_equal(next, t + 12 * MS);
	n = due(nc, t + 12 * MS, p, &next);
	assert_int_equal(n, 2);
	assert_non_null(find_probe(p, n, 1, 4));
	assert_non_null(find_probe(p, n, 1, 6));
	netcheck_free(nc);
}

static void
test_disconnected(void **state)
{
	struct netcheck *nc = nc_new();
	uint64_t t = T0;

	assert_int_equal(home_after(nc, t, 30, 60, 0, 0), 11);
	netcheck_set_control(nc, false);
	t += 30 * SEC;
	/* 12 is far better, but control cannot tell peers: stay. */
	assert_int_equal(home_after(nc, t, 100, 10, 0, 0), 11);
	assert_int_equal(netcheck_last_report(nc)->netcheck_derp, 12);
	/* Back in touch with control: move. */
	netcheck_set_control(nc, true);
	t += 30 * SEC;
	assert_int_equal(home_after(nc, t, 100, 10, 0, 0), 12);
	netcheck_free(nc);

	/* No home yet: choose one even while disconnected. */
	nc = nc_new();
	netcheck_set_control(nc, false);
	assert_int_equal(home_after(nc, T0, 30, 20, 0, 0), 12);
	netcheck_free(nc);
}

/*
 * Random answers (real and made-up txids, random mappings, random clock
 * steps, random send failures) over many reports: never a crash, and the
 * report stays consistent.
 */
static void
test_random(void **state)
{
	struct netcheck *nc = nc_new();
	struct netcheck_probe p[MAXP], sent[256];
	const struct netcheck_report *r;
	uint64_t t = T0, now, next, x = 12345;
	size_t n, ns;
	union wg_endpoint m;
	uint8_t txid[NETCHECK_TXID_LEN];
	struct netcheck_opts o;

#define RND()	(x = x * 6364136223846793005ULL + 1442695040888963407ULL, \
		 (uint32_t)(x >> 33))
	for (int iter = 0; iter < 300; iter++) {
		o = (struct netcheck_opts){ .have_v4 = RND() % 4 != 0,
		    .have_v6 = RND() % 2, .force_full = RND() % 5 == 0 };
		if (RND() % 7 == 0)
			netcheck_set_home(nc, (int32_t)(RND() % 8));
		netcheck_set_control(nc, RND() % 3 != 0);
		t += (RND() % 120) * SEC;
		start(nc, RND() % 2 ? &map_all : &map_simple, &o, t);
		now = t;
		ns = 0;
		for (int step = 0; step < 200 &&
		    netcheck_state(nc) == NETCHECK_RUNNING; step++) {
			n = netcheck_due(nc, now, p, 1 + RND() % 8, &next);
			assert_true(next >= now);
			for (size_t i = 0; i < n; i++) {
				assert_true(p[i].family == 4 || p[i].family == 6);
				assert_true(p[i].family == 4 ? o.have_v4 : o.have_v6);
				assert_int_not_equal(p[i].region_id, 3);
				netcheck_sent(nc, p[i].txid, RND() % 10 != 0);
				if (ns < ARRAY_SIZE(sent))
					sent[ns++] = p[i];
			}
			if (RND() % 2 && ns > 0)
				memcpy(txid, sent[RND() % ns].txid, sizeof txid);
			else
				for (size_t i = 0; i < sizeof txid; i++)
					txid[i] = (uint8_t)RND();
			memset(&m, 0, sizeof m);
			switch (RND() % 4) {
			case 0:
				m = ep4("203.0.113.1", (uint16_t)(RND() % 3));
				break;
			case 1:
				m = ep6("2001:db8::1", (uint16_t)RND());
				break;
			case 2:
				m.sa.sa_family = (sa_family_t)RND();
				break;
			}
			now += (RND() % 400) * MS;
			(void)netcheck_on_stun(nc, txid, RND() % 5 ? &m : NULL, now);
			assert_true(now - t <= 200 * 400 * MS);
		}
		(void)netcheck_due(nc, t + 3 * SEC, p, MAXP, &next);
		(void)netcheck_due(nc, now + 3 * SEC, p, MAXP, &next);
		assert_int_equal(netcheck_state(nc), NETCHECK_DONE);
		assert_int_equal(next, UINT64_MAX);
		r = netcheck_last_report(nc);
		assert_non_null(r);
		assert_true(r->n_regions <= NETCHECK_MAX_REGIONS);
		assert_int_equal(r->udp, r->n_regions > 0);
		for (size_t i = 0; i < r->n_regions; i++) {
			assert_true(r->regions[i].v4_ns || r->regions[i].v6_ns);
			assert_true(r->regions[i].v4_ns <= r->end_ns - r->start_ns);
			assert_true(r->regions[i].v6_ns <= r->end_ns - r->start_ns);
			assert_int_not_equal(r->regions[i].region_id, 3);
			if (i > 0)
				assert_true(r->regions[i - 1].region_id <
				    r->regions[i].region_id);
		}
		assert_true(r->mapping_varies_by_dest_ip >= -1 &&
		    r->mapping_varies_by_dest_ip <= 1);
		assert_true(r->global_v4.sa.sa_family == AF_UNSPEC ||
		    r->global_v4.sa.sa_family == AF_INET);
		assert_true(r->end_ns - r->start_ns <= 3 * SEC);
		assert_int_equal(r->preferred_derp, netcheck_home(nc));
		assert_int_not_equal(r->preferred_derp, 3);
		if (r->netcheck_derp != 0)
			assert_true(netcheck_region_latency(r, r->netcheck_derp) ||
			    r->netcheck_derp == r->preferred_derp);
		if (RND() % 3 == 0)
			netcheck_note_derp_frame(nc, (int32_t)(RND() % 300), now);
	}
#undef RND
	netcheck_free(nc);
}

/* Nothing to probe: the report ends at the first netcheck_due(). */
static void
test_empty_plan(void **state)
{
	struct netcheck *nc = nc_new();
	struct netcheck_probe p[MAXP];
	const struct netcheck_opts none = { .force_full = true };
	static const struct netmap_derp_map empty = { 0 };
	uint64_t next;

	start(nc, &map_all, &none, T0);
	assert_int_equal(netcheck_due(nc, T0 + MS, p, MAXP, &next), 0);
	assert_int_equal(netcheck_state(nc), NETCHECK_DONE);
	assert_int_equal(next, UINT64_MAX);
	assert_int_equal(netcheck_last_report(nc)->end_ns, T0 + MS);
	assert_true(netcheck_home(nc) != 0 && netcheck_home(nc) != 3);

	/* An empty map: no home to fall back to. */
	netcheck_set_home(nc, 0);
	start(nc, &empty, &v4full, T0 + SEC);
	assert_int_equal(netcheck_due(nc, T0 + SEC, p, MAXP, &next), 0);
	assert_int_equal(netcheck_state(nc), NETCHECK_DONE);
	assert_int_equal(netcheck_home(nc), 0);

	/*
	 * Every remaining try useless: settled without waiting for 3 s.
	 * Regions 1 and 2, dual stack: 1 answers over v4, 2 over both.
	 * Region 1's v6 retry would teach nothing (some v6 result exists and
	 * 1 has a latency), so its set settles and with it the report.
	 */
	const struct netmap_derp_map two = { .n_regions = 2, .regions = regions_all };
	const uint64_t t = T0 + 2 * SEC;
	size_t n;

	start(nc, &two, &dual, t);
	n = due(nc, t, p, &next);
	assert_int_equal(n, 4);
	answer(nc, find_probe(p, n, 1, 4), t + MS);
	answer(nc, find_probe(p, n, 2, 4), t + MS);
	answer(nc, find_probe(p, n, 2, 6), t + MS);
	assert_int_equal(netcheck_state(nc), NETCHECK_RUNNING);
	assert_int_equal(next, t + 100 * MS);
	assert_int_equal(due(nc, t + 100 * MS, p, &next), 0);
	assert_int_equal(netcheck_state(nc), NETCHECK_DONE);
	assert_int_equal(netcheck_last_report(nc)->end_ns, t + 100 * MS);
	netcheck_free(nc);
}

/*
 * A map beyond the caps, with odd fields (no hostname, a hostname too long
 * for DNS, garbage and wrong-family addresses, out-of-range ports): the
 * copy is capped and every probe it plans is well-formed.
 */
static void
test_odd_map(void **state)
{
	enum { NR = 100, NN = 20 };
	static struct netmap_derp_region regs[NR];
	static struct netmap_derp_node nodes[NR][NN];
	static const char *v4s[] = { "", "none", "192.0.2.9", "2001:db8::9",
	    "300.1.1.1", NULL };
	static const char *v6s[] = { "", "none", "2001:db8::9", "192.0.2.9",
	    "zz::", NULL };
	static const int32_t ports[] = { 0, -1, 3478, 65535, 65536, -7, 1 };
	static char longname[300];
	const struct netmap_derp_map dm = { .n_regions = NR, .regions = regs };
	struct netcheck_probe p[MAXP];
	struct netcheck *nc = nc_new();
	uint64_t now = T0, next, x = 99;
	size_t n, total = 0;

	memset(longname, 'a', sizeof longname - 1);
	for (int i = 0; i < NR; i++) {
		for (int j = 0; j < NN; j++) {
			x = x * 6364136223846793005ULL + 1442695040888963407ULL;
			nodes[i][j] = (struct netmap_derp_node){
				.hostname = (x >> 40) % 5 == 0 ? NULL :
				    (x >> 40) % 5 == 1 ? longname : "h.example",
				.ipv4 = v4s[(x >> 20) % ARRAY_SIZE(v4s)],
				.ipv6 = v6s[(x >> 30) % ARRAY_SIZE(v6s)],
				.stun_port = ports[(x >> 50) % ARRAY_SIZE(ports)],
				.region_id = i + 1,
			};
		}
		regs[i] = (struct netmap_derp_region){ .region_id = i + 1,
		    .n_nodes = NN, .nodes = nodes[i] };
	}
	regs[5].n_nodes = 0;
	regs[6].nodes = NULL;
	regs[7].region_id = -3;

	start(nc, &dm, &dual, now);
	while (netcheck_state(nc) == NETCHECK_RUNNING) {
		n = netcheck_due(nc, now, p, MAXP, &next);
		for (size_t i = 0; i < n; i++) {
			const struct netcheck_probe *q = &p[i];

			total++;
			assert_true(q->region_id >= 1 && q->region_id <= NR);
			assert_true(q->node_index < NETCHECK_MAX_NODES);
			assert_true(q->port != 0);
			assert_non_null(q->hostname);
			assert_true(strlen(q->hostname) <= 253);
			if (q->dst.sa.sa_family == AF_UNSPEC)
				assert_true(q->hostname[0] != '\0');
			else
				assert_int_equal(q->dst.sa.sa_family,
				    q->family == 4 ? AF_INET : AF_INET6);
		}
		if (netcheck_state(nc) != NETCHECK_RUNNING)
			break;
		now = next;
	}
	assert_true(total > 0);
	assert_true(total <= NETCHECK_MAX_REGIONS * 2 * 3);
	netcheck_free(nc);
}

static void
test_free_null(void **state)
{
	netcheck_free(NULL);
	assert_int_equal(netcheck_state(NULL), NETCHECK_IDLE);
	assert_null(netcheck_last_report(NULL));
	assert_int_equal(netcheck_region_latency(NULL, 1), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan_full),
		cmocka_unit_test(test_plan_families),
		cmocka_unit_test(test_latency),
		cmocka_unit_test(test_early_stop),
		cmocka_unit_test(test_hard_timeout),
		cmocka_unit_test(test_unknown_txid),
		cmocka_unit_test(test_mapping_varies),
		cmocka_unit_test(test_probe_would_help),
		cmocka_unit_test(test_stickiness),
		cmocka_unit_test(test_reachability),
		cmocka_unit_test(test_region_score),
		cmocka_unit_test(test_no_measure_no_home),
		cmocka_unit_test(test_incremental),
		cmocka_unit_test(test_incremental_dual),
		cmocka_unit_test(test_disconnected),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_empty_plan),
		cmocka_unit_test(test_odd_map),
		cmocka_unit_test(test_free_null),
	};

	return cmocka_run_group_tests_name("netcheck", tests, NULL, NULL);
}

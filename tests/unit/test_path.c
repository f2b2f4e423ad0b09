// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * The per-peer path state machine with a fake clock and scripted loss
 * (derp_disco.md §4.4-§4.9): what each send, pong, CallMeMaybe and tick
 * asks the host to do, and where datagrams go.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>

#include "tests/unit/endpoints.h"

#include "agent/magicsock/path.h"
#include "common/util.h"

#define MS	1000000ULL
#define SEC	1000000000ULL
#define T0	(1000 * SEC)

static uint64_t rng_ctr;

/* Distinct TxIDs: a counter, so a test can never collide by chance. */
static void
fake_random(void *ctx, void *buf, size_t len)
{
	uint8_t *b = buf;

	(void)ctx;
	memset(b, 0xa5, len);
	rng_ctr++;
	for (size_t i = 0; i < len && i < 8; i++)
		b[i] = (uint8_t)(rng_ctr >> (8 * i));
}

static bool
same(const union wg_endpoint *a, const union wg_endpoint *b)
{
	if (a->sa.sa_family != b->sa.sa_family)
		return false;
	if (a->sa.sa_family == AF_INET)
		return a->in4.sin_port == b->in4.sin_port &&
		    a->in4.sin_addr.s_addr == b->in4.sin_addr.s_addr;
	return a->in6.sin6_port == b->in6.sin6_port &&
	    memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, 16) == 0;
}

static struct path *
new_peer(const union wg_endpoint *eps, size_t n)
{
	struct path *p = path_new(fake_random, NULL);

	path_set_disco(p, true);
	path_set_derp(p, true);
	path_set_endpoints(p, eps, n, T0);
	return p;
}

static size_t
count_kind(const struct path_actions *acts, int kind)
{
	size_t c = 0;

	for (size_t i = 0; i < acts->n; i++)
		c += acts->a[i].kind == kind;
	return c;
}

/* The UDP ping to `to` among the actions; NULL if none. */
static const struct path_action *
ping_to(const struct path_actions *acts, const union wg_endpoint *to)
{
	for (size_t i = 0; i < acts->n; i++) {
		if (acts->a[i].kind == PATH_SEND_PING && !acts->a[i].via_derp && same(&acts->a[i].to, to))
			return &acts->a[i];
	}
	return NULL;
}

static const struct path_action *
derp_ping(const struct path_actions *acts)
{
	for (size_t i = 0; i < acts->n; i++) {
		if (acts->a[i].kind == PATH_SEND_PING && acts->a[i].via_derp)
			return &acts->a[i];
	}
	return NULL;
}

static void
assert_best(struct path *p, const union wg_endpoint *want, bool want_trusted, uint64_t now)
{
	union wg_endpoint got;
	bool tr;

	assert_true(path_best(p, &got, NULL, &tr, now));
	assert_true(same(&got, want));
	assert_int_equal(tr, want_trusted);
}

/* Makes `to` the trusted best address: ping it at `now`, answer after lat. */
static void
establish(struct path *p, const union wg_endpoint *to, uint64_t now, uint64_t lat)
{
	struct path_actions acts = { .n = 0 };
	struct path_route r;
	struct path_pong pong;
	const struct path_action *a;

	path_on_send(p, now, &r, &acts);
	assert_non_null(a = ping_to(&acts, to));
	assert_true(path_on_pong(p, a->txid, to, now + lat, &pong));
	assert_best(p, to, true, now + lat);
}

/* ---- §4.5 send path ------------------------------------------------------ */

static void
test_first_send_derp_and_discovery(void **state)
{
	union wg_endpoint eps[2] = { ep4("203.0.113.1", 41641), ep4("192.168.1.5", 41641) };
	struct path *p = new_peer(eps, 2);
	struct path_actions acts = { .n = 0 };
	struct path_route r;

	path_on_send(p, T0, &r, &acts);
	assert_false(r.udp);
	assert_true(r.derp);
	assert_int_equal(acts.n, 3);
	assert_non_null(ping_to(&acts, &eps[0]));
	assert_non_null(ping_to(&acts, &eps[1]));
	assert_null(derp_ping(&acts));
	/* The CallMeMaybe follows the pings that opened our NAT. */
	assert_int_equal(acts.a[2].kind, PATH_SEND_CALL_ME_MAYBE);
	assert_memory_not_equal(acts.a[0].txid, acts.a[1].txid, PATH_TXID_LEN);

	/* Within 5 s: no new pings, no CallMeMaybe. */
	acts.n = 0;
	path_on_send(p, T0 + 4999 * MS, &r, &acts);
	assert_int_equal(acts.n, 0);
	assert_true(r.derp);

	/* After 5 s of no answer: another round. */
	path_on_send(p, T0 + 5 * SEC, &r, &acts);
	assert_int_equal(count_kind(&acts, PATH_SEND_PING), 2);
	assert_int_equal(count_kind(&acts, PATH_SEND_CALL_ME_MAYBE), 1);
	path_free(p);
}

static void
test_pong_trusts_then_expires(void **state)
{
	union wg_endpoint eps[2] = { ep4("203.0.113.1", 41641), ep4("198.51.100.2", 41641) };
	struct path *p = new_peer(eps, 2);
	struct path_actions acts = { .n = 0 };
	struct path_route r;
	struct path_pong pong;
	const struct path_action *a;
	uint64_t lat;

	path_on_send(p, T0, &r, &acts);
	assert_non_null(a = ping_to(&acts, &eps[1]));
	/* The pong may come from elsewhere (multi-homed): the address pinged wins. */
	assert_true(path_on_pong(p, a->txid, &eps[0], T0 + 20 * MS, &pong));
	assert_int_equal(pong.purpose, PATH_DISCOVERY);
	assert_false(pong.via_derp);
	assert_true(same(&pong.to, &eps[1]));
	assert_int_equal(pong.latency_ns, 20 * MS);
	assert_true(pong.new_best);
	assert_true(path_best(p, NULL, &lat, NULL, T0 + 20 * MS));
	assert_int_equal(lat, 20 * MS);

	/* Trusted: UDP only, no discovery. */
	acts.n = 0;
	path_on_send(p, T0 + 1 * SEC, &r, &acts);
	assert_true(r.udp);
	assert_true(same(&r.addr, &eps[1]));
	assert_false(r.derp);
	assert_int_equal(acts.n, 0);
	path_on_send(p, T0 + 20 * MS + 6500 * MS, &r, &acts);
	assert_false(r.derp);

	/* 6.5 s after the pong without another: UDP and DERP, and rediscovery. */
	path_on_send(p, T0 + 20 * MS + 6500 * MS + 1, &r, &acts);
	assert_true(r.udp);
	assert_true(same(&r.addr, &eps[1]));
	assert_true(r.derp);
	assert_int_equal(count_kind(&acts, PATH_SEND_PING), 2);
	assert_int_equal(count_kind(&acts, PATH_SEND_CALL_ME_MAYBE), 1);
	assert_best(p, &eps[1], false, T0 + 7 * SEC);
	path_free(p);
}

static void
test_no_disco_is_derp_only(void **state)
{
	union wg_endpoint ep = ep4("203.0.113.1", 41641);
	struct path *p = path_new(fake_random, NULL);
	struct path_actions acts = { .n = 0 };
	struct path_route r;

	path_set_derp(p, true);
	path_set_endpoints(p, &ep, 1, T0);
	path_on_send(p, T0, &r, &acts);
	assert_false(r.udp);
	assert_true(r.derp);
	assert_int_equal(acts.n, 0);
	assert_int_equal(path_tick(p, T0, &acts), UINT64_MAX);
	assert_false(path_cli_ping(p, T0, 5, &acts));
	assert_int_equal(acts.n, 0);
	path_free(p);
}

static void
test_no_derp_home(void **state)
{
	union wg_endpoint ep = ep4("203.0.113.1", 41641);
	struct path *p = new_peer(&ep, 1);
	struct path_actions acts = { .n = 0 };
	struct path_route r;

	path_set_derp(p, false);
	path_on_send(p, T0, &r, &acts);
	/* Nowhere known: the host falls back to the peer's last DERP region. */
	assert_false(r.udp);
	assert_false(r.derp);
	/* Pings still go out, but no CallMeMaybe without a DERP route. */
	assert_int_equal(count_kind(&acts, PATH_SEND_PING), 1);
	assert_int_equal(count_kind(&acts, PATH_SEND_CALL_ME_MAYBE), 0);
	path_free(p);
}

/* ---- §4.8 heartbeat -------------------------------------------------------- */

static void
test_heartbeat_while_active(void **state)
{
	union wg_endpoint ep = ep4("192.168.1.5", 41641);
	struct path *p = new_peer(&ep, 1);
	struct path_actions acts = { .n = 0 };
	struct path_pong pong;
	uint64_t now = T0, next, last_hb = 0;
	int heartbeats = 0, others = 0;

	establish(p, &ep, T0, 1 * MS);
	/* Every ping answered after 1 ms; only the heartbeat timer drives us. */
	for (int guard = 0; guard < 100; guard++) {
		acts.n = 0;
		next = path_tick(p, now, &acts);
		for (size_t i = 0; i < acts.n; i++) {
			assert_int_equal(acts.a[i].kind, PATH_SEND_PING);
			assert_true(path_on_pong(p, acts.a[i].txid, &ep, now + 1 * MS, &pong));
			if (pong.purpose == PATH_HEARTBEAT) {
				heartbeats++;
				last_hb = now;
				/* Exactly every 3 s. */
				assert_int_equal((now - T0) % (3 * SEC), 0);
			} else {
				others++;
			}
		}
		if (next == UINT64_MAX)
			break;
		assert_true(next > now);
		now = next;
	}
	/* 3, 6, ..., 45 s after the last send, then idle: it stops. */
	assert_int_equal(heartbeats, 15);
	assert_int_equal(last_hb, T0 + 45 * SEC);
	/* Latency 1 ms <= 5 ms and trusted: no full rounds. */
	assert_int_equal(others, 0);
	assert_best(p, &ep, true, last_hb + 1 * MS + 6500 * MS);
	assert_best(p, &ep, false, last_hb + 1 * MS + 6500 * MS + 1);

	/* The next send restarts it. */
	struct path_route r;

	acts.n = 0;
	path_on_send(p, T0 + 100 * SEC, &r, &acts);
	assert_true(r.udp && r.derp);
	assert_int_equal(path_tick(p, T0 + 100 * SEC, &acts), T0 + 103 * SEC);
	path_free(p);
}

static void
test_heartbeat_full_round_when_slow(void **state)
{
	union wg_endpoint eps[2] = { ep4("203.0.113.1", 41641), ep4("198.51.100.2", 41641) };
	struct path *p = new_peer(eps, 2);
	struct path_actions acts = { .n = 0 };
	struct path_pong pong;
	uint64_t now;

	/* 20 ms > goodEnoughLatency: a full round every 60 s. */
	establish(p, &eps[0], T0, 20 * MS);
	int full_rounds = 0;
	for (now = T0 + 3 * SEC; now <= T0 + 45 * SEC; now += 3 * SEC) {
		const struct path_action *hb;

		acts.n = 0;
		path_tick(p, now, &acts);
		assert_non_null(hb = ping_to(&acts, &eps[0]));
		assert_true(path_on_pong(p, hb->txid, &eps[0], now + 20 * MS, &pong));
		if (ping_to(&acts, &eps[1]) != NULL)
			full_rounds++;
	}
	/* The first round was at T0: the next is due at T0 + 60 s, not yet. */
	assert_int_equal(full_rounds, 0);
	path_on_send(p, T0 + 50 * SEC, &(struct path_route){ 0 }, &acts);
	for (; now <= T0 + 63 * SEC; now += 3 * SEC) {
		acts.n = 0;
		path_tick(p, now, &acts);
		if (ping_to(&acts, &eps[1]) != NULL) {
			full_rounds++;
			assert_int_equal(now, T0 + 60 * SEC);
			assert_int_equal(count_kind(&acts, PATH_SEND_CALL_ME_MAYBE), 1);
		}
		const struct path_action *hb = ping_to(&acts, &eps[0]);
		if (hb != NULL)
			assert_true(path_on_pong(p, hb->txid, &eps[0], now + 20 * MS, &pong));
	}
	assert_int_equal(full_rounds, 1);
	path_free(p);
}

/* ---- §4.7 timeouts --------------------------------------------------------- */

static void
test_ping_timeout_clears_best(void **state)
{
	union wg_endpoint ep = ep4("192.168.1.5", 41641);
	struct path *p = new_peer(&ep, 1);
	struct path_actions acts = { .n = 0 };
	struct path_route r;
	uint64_t t1 = T0 + 1 * MS, next;

	establish(p, &ep, T0, 1 * MS);		/* trusted until t1 + 6.5 s */
	/* From now on every ping is lost. */
	next = path_tick(p, t1, &acts);
	assert_int_equal(next, T0 + 3 * SEC);
	acts.n = 0;
	assert_int_equal(path_tick(p, T0 + 3 * SEC, &acts), T0 + 6 * SEC);
	assert_int_equal(count_kind(&acts, PATH_SEND_PING), 1);		/* heartbeat */
	acts.n = 0;
	next = path_tick(p, T0 + 6 * SEC, &acts);
	assert_int_equal(count_kind(&acts, PATH_SEND_PING), 1);
	/* The first heartbeat times out 5 s after it went. */
	assert_int_equal(next, T0 + 8 * SEC);
	/* Still trusted just before; untrusted after 6.5 s but still best. */
	assert_best(p, &ep, false, T0 + 7 * SEC);
	path_on_send(p, T0 + 7 * SEC, &r, &acts);
	assert_true(r.udp);
	assert_true(r.derp);

	acts.n = 0;
	path_tick(p, T0 + 8 * SEC, &acts);
	assert_false(path_best(p, NULL, NULL, NULL, T0 + 8 * SEC));
	/* DERP only, and rediscovery. */
	acts.n = 0;
	path_on_send(p, T0 + 8 * SEC, &r, &acts);
	assert_false(r.udp);
	assert_true(r.derp);
	path_free(p);
}

static void
test_timeout_while_trusted_keeps_best(void **state)
{
	union wg_endpoint eps[2] = { ep4("192.168.1.5", 41641), ep4("203.0.113.9", 41641) };
	struct path *p = new_peer(eps, 2);
	struct path_actions acts = { .n = 0 };
	struct path_pong pong;

	/* T0: both pinged; only eps[0] answers. */
	establish(p, &eps[0], T0, 1 * MS);
	/* Heartbeat at T0+3 answered keeps trust past the lost ping's timeout at T0+5. */
	path_tick(p, T0 + 3 * SEC, &acts);
	assert_int_equal(acts.n, 1);
	assert_true(path_on_pong(p, acts.a[0].txid, &eps[0], T0 + 3 * SEC + 1 * MS, &pong));
	acts.n = 0;
	path_tick(p, T0 + 5 * SEC, &acts);
	assert_best(p, &eps[0], true, T0 + 5 * SEC);
	path_free(p);
}

/* ---- §4.9 betterAddr -------------------------------------------------------- */

/*
 * Best is `cur` (trusted, latency cur_lat); a CallMeMaybe makes us ping
 * `cand` too, and it answers with cand_lat.  Returns whether it took over.
 */
static bool
switches(const union wg_endpoint *cur, uint64_t cur_lat, const union wg_endpoint *cand,
    uint64_t cand_lat)
{
	union wg_endpoint eps[2] = { *cur, *cand }, best;
	struct path *p = new_peer(eps, 2);
	struct path_actions acts = { .n = 0 };
	struct path_pong pong;
	const struct path_action *a;
	bool ret;

	establish(p, cur, T0, cur_lat);
	path_on_call_me_maybe(p, NULL, 0, T0 + 1 * SEC, &acts);
	assert_non_null(a = ping_to(&acts, cand));
	assert_true(path_on_pong(p, a->txid, cand, T0 + 1 * SEC + cand_lat, &pong));
	assert_true(path_best(p, &best, NULL, NULL, T0 + 1 * SEC + cand_lat));
	ret = same(&best, cand);
	assert_int_equal(pong.new_best, ret);
	path_free(p);
	return ret;
}

static void
test_better_addr(void **state)
{
	union wg_endpoint pub1 = ep4("203.0.113.1", 41641), pub2 = ep4("198.51.100.2", 41641);
	union wg_endpoint priv = ep4("192.168.1.5", 41641), priv10 = ep4("10.9.8.7", 41641);
	union wg_endpoint priv172 = ep4("172.20.0.1", 41641), not172 = ep4("172.32.0.1", 41641);
	union wg_endpoint ll = ep4("169.254.3.4", 41641), lo = ep4("127.0.0.1", 41641);
	union wg_endpoint pub6 = ep6("2001:db8::1", 41641), ula = ep6("fd7a:115c::1", 41641);

	/* 1 % stickiness: under 2 % faster keeps the current path. */
	assert_false(switches(&pub1, 100 * MS, &pub2, 99500 * 1000ULL));
	assert_false(switches(&pub1, 100 * MS, &pub2, 99 * MS));
	assert_true(switches(&pub1, 100 * MS, &pub2, 98 * MS));
	assert_true(switches(&pub1, 100 * MS, &pub2, 70 * MS));
	assert_false(switches(&pub1, 70 * MS, &pub2, 100 * MS));
	/* Private beats public at equal latency, and not the other way round. */
	assert_true(switches(&pub1, 10 * MS, &priv, 10 * MS));
	assert_false(switches(&priv, 10 * MS, &pub1, 10 * MS));
	assert_true(switches(&pub1, 10 * MS, &priv10, 10 * MS));
	assert_true(switches(&pub1, 10 * MS, &priv172, 10 * MS));
	assert_false(switches(&pub1, 10 * MS, &not172, 10 * MS));
	/* ... unless the public one is more than 20 % faster. */
	assert_true(switches(&priv, 10 * MS, &pub1, 7 * MS));
	assert_false(switches(&priv, 10 * MS, &pub1, 8 * MS));
	/* Link-local beats private, loopback beats everything. */
	assert_true(switches(&priv, 10 * MS, &ll, 10 * MS));
	assert_true(switches(&ll, 10 * MS, &lo, 10 * MS));
	/* IPv6 gets 10 points at equal latency. */
	assert_true(switches(&pub1, 10 * MS, &pub6, 10 * MS));
	assert_false(switches(&pub6, 10 * MS, &pub1, 10 * MS));
	/* A ULA is private and IPv6: 30 points against a private v4's 20. */
	assert_true(switches(&priv, 10 * MS, &ula, 10 * MS));
}

static void
test_untrusted_best_replaced_by_any_pong(void **state)
{
	union wg_endpoint fast = ep4("192.168.1.5", 41641), slow = ep4("203.0.113.1", 41641);
	union wg_endpoint eps[2] = { fast, slow }, best;
	struct path *p = new_peer(eps, 2);
	struct path_actions acts = { .n = 0 };
	struct path_pong pong;
	struct path_route r;
	const struct path_action *a;

	establish(p, &fast, T0, 1 * MS);
	/* Trust lapses; the next round only hears back from the worse address. */
	path_on_send(p, T0 + 10 * SEC, &r, &acts);
	assert_non_null(a = ping_to(&acts, &slow));
	assert_true(path_on_pong(p, a->txid, &slow, T0 + 10 * SEC + 80 * MS, &pong));
	assert_true(path_best(p, &best, NULL, NULL, T0 + 10 * SEC + 80 * MS));
	assert_true(same(&best, &slow));
	path_free(p);
}

/* ---- §4.7 receive ----------------------------------------------------------- */

static void
test_call_me_maybe(void **state)
{
	union wg_endpoint a = ep4("203.0.113.1", 41641), c = ep4("198.51.100.3", 1001);
	union wg_endpoint d = ep6("2001:db8::4", 1002), ll6 = ep6("fe80::1", 1003);
	union wg_endpoint cmm1[3] = { c, d, ll6 }, cmm2[1] = { d };
	struct path *p = new_peer(&a, 1);
	struct path_actions acts = { .n = 0 };
	struct path_route r;

	path_on_send(p, T0, &r, &acts);
	assert_non_null(ping_to(&acts, &a));
	assert_int_equal(count_kind(&acts, PATH_SEND_CALL_ME_MAYBE), 1);

	/* 1 s later: everything is pinged at once, a included; no CallMeMaybe back. */
	acts.n = 0;
	path_on_call_me_maybe(p, cmm1, 3, T0 + 1 * SEC, &acts);
	assert_int_equal(path_n_candidates(p), 3);		/* not the link-local one */
	assert_int_equal(acts.n, 3);
	assert_non_null(ping_to(&acts, &a));
	assert_non_null(ping_to(&acts, &c));
	assert_non_null(ping_to(&acts, &d));
	assert_null(ping_to(&acts, &ll6));
	assert_int_equal(count_kind(&acts, PATH_SEND_CALL_ME_MAYBE), 0);

	/* The next CallMeMaybe replaces the previous one's entries. */
	acts.n = 0;
	path_on_call_me_maybe(p, cmm2, 1, T0 + 2 * SEC, &acts);
	assert_int_equal(path_n_candidates(p), 2);
	assert_int_equal(acts.n, 2);
	assert_non_null(ping_to(&acts, &a));
	assert_non_null(ping_to(&acts, &d));

	/* A netmap address that was also in a CallMeMaybe survives its removal there. */
	acts.n = 0;
	union wg_endpoint cmm3[1] = { a };
	path_on_call_me_maybe(p, cmm3, 1, T0 + 3 * SEC, &acts);
	assert_int_equal(path_n_candidates(p), 1);
	path_on_call_me_maybe(p, NULL, 0, T0 + 4 * SEC, &acts);
	assert_int_equal(path_n_candidates(p), 1);
	path_free(p);
}

static void
test_call_me_maybe_drops_best(void **state)
{
	union wg_endpoint a = ep4("203.0.113.1", 41641), c = ep4("198.51.100.3", 1001);
	struct path *p = new_peer(NULL, 0);
	struct path_actions acts = { .n = 0 };
	struct path_pong pong;

	path_on_call_me_maybe(p, &c, 1, T0, &acts);
	assert_int_equal(acts.n, 1);
	assert_true(path_on_pong(p, acts.a[0].txid, &c, T0 + 5 * MS, &pong));
	assert_best(p, &c, true, T0 + 5 * MS);
	/* The peer no longer lists it: it is no candidate, and so not best. */
	acts.n = 0;
	path_on_call_me_maybe(p, &a, 1, T0 + 1 * SEC, &acts);
	assert_false(path_best(p, NULL, NULL, NULL, T0 + 1 * SEC));
	path_free(p);
}

static void
test_incoming_pings(void **state)
{
	union wg_endpoint nm = ep4("203.0.113.1", 41641), x = ep4("198.51.100.7", 5555);
	struct path *p = new_peer(&nm, 1);
	struct path_actions acts = { .n = 0 };
	uint8_t t1[PATH_TXID_LEN], t2[PATH_TXID_LEN];

	memset(t1, 1, sizeof t1);
	memset(t2, 2, sizeof t2);
	/* Via DERP: always answered, never a candidate. */
	assert_true(path_on_ping(p, NULL, t1, T0));
	assert_true(path_on_ping(p, NULL, t1, T0));
	assert_int_equal(path_n_candidates(p), 1);

	/* The same TxID twice from one source is a duplicate. */
	assert_true(path_on_ping(p, &x, t1, T0));
	assert_int_equal(path_n_candidates(p), 2);
	assert_false(path_on_ping(p, &x, t1, T0 + 1 * MS));
	assert_true(path_on_ping(p, &x, t2, T0 + 2 * MS));
	assert_false(path_on_ping(p, &x, t2, T0 + 3 * MS));
	/* ... but not from another source. */
	assert_true(path_on_ping(p, &nm, t2, T0 + 4 * MS));
	assert_false(path_on_ping(p, &nm, t2, T0 + 5 * MS));

	/* A ping-learned candidate is pinged by the next round ... */
	struct path_route r;
	path_on_send(p, T0 + 1 * SEC, &r, &acts);
	assert_non_null(ping_to(&acts, &x));
	/* ... and expires 45 s after its last ping (T0 + 3 ms); the netmap one does not. */
	acts.n = 0;
	path_tick(p, T0 + 3 * MS + 45 * SEC, &acts);
	assert_int_equal(path_n_candidates(p), 2);
	path_tick(p, T0 + 3 * MS + 45 * SEC + 1, &acts);
	assert_int_equal(path_n_candidates(p), 1);
	path_free(p);
}

static void
test_pong_matching(void **state)
{
	union wg_endpoint ep = ep4("203.0.113.1", 41641);
	struct path *p = new_peer(&ep, 1);
	struct path_actions acts = { .n = 0 };
	struct path_route r;
	struct path_pong pong;
	uint8_t unknown[PATH_TXID_LEN];

	path_on_send(p, T0, &r, &acts);
	memcpy(unknown, acts.a[0].txid, sizeof unknown);
	unknown[11] ^= 0xff;
	assert_false(path_on_pong(p, unknown, &ep, T0 + 1 * MS, &pong));
	assert_false(path_best(p, NULL, NULL, NULL, T0 + 1 * MS));
	/* A pong via DERP for a UDP ping proves nothing about UDP. */
	assert_true(path_on_pong(p, acts.a[0].txid, NULL, T0 + 2 * MS, &pong));
	assert_true(pong.via_derp);
	assert_false(path_best(p, NULL, NULL, NULL, T0 + 2 * MS));
	/* Each TxID is answered once. */
	assert_false(path_on_pong(p, acts.a[0].txid, &ep, T0 + 3 * MS, &pong));
	/* A pong after the timeout is unknown. */
	acts.n = 0;
	path_on_send(p, T0 + 10 * SEC, &r, &acts);
	assert_int_equal(acts.a[0].kind, PATH_SEND_PING);
	path_tick(p, T0 + 15 * SEC, &acts);
	assert_false(path_on_pong(p, acts.a[0].txid, &ep, T0 + 15 * SEC, &pong));
	path_free(p);
}

static void
test_netmap_update(void **state)
{
	union wg_endpoint a = ep4("203.0.113.1", 41641), b = ep4("198.51.100.2", 41641);
	union wg_endpoint both[2] = { a, b };
	union wg_endpoint junk[4] = { ep4("0.0.0.0", 1), ep4("1.2.3.4", 0), ep6("::", 9) };
	struct path *p = new_peer(both, 2);

	memset(&junk[3], 0, sizeof junk[3]);		/* AF_UNSPEC */
	establish(p, &b, T0, 3 * MS);
	/* b leaves the netmap: it was best, so there is none now. */
	path_set_endpoints(p, &a, 1, T0 + 1 * SEC);
	assert_int_equal(path_n_candidates(p), 1);
	assert_false(path_best(p, NULL, NULL, NULL, T0 + 1 * SEC));
	/* Unusable entries are skipped, duplicates merged. */
	path_set_endpoints(p, junk, 4, T0 + 2 * SEC);
	assert_int_equal(path_n_candidates(p), 0);
	union wg_endpoint dup[3] = { a, a, b };
	path_set_endpoints(p, dup, 3, T0 + 3 * SEC);
	assert_int_equal(path_n_candidates(p), 2);
	path_free(p);
}

static void
test_connectivity_change_and_bad_endpoint(void **state)
{
	union wg_endpoint ep = ep4("203.0.113.1", 41641);
	struct path *p = new_peer(&ep, 1);
	struct path_actions acts = { .n = 0 };
	struct path_route r;

	establish(p, &ep, T0, 3 * MS);
	path_note_connectivity_change(p);
	assert_false(path_best(p, NULL, NULL, NULL, T0 + 1 * SEC));
	/* Its ping history is gone too: pinged again at once. */
	path_on_send(p, T0 + 1 * SEC, &r, &acts);
	assert_non_null(ping_to(&acts, &ep));
	assert_true(r.derp);

	establish(p, &ep, T0 + 10 * SEC, 3 * MS);
	path_note_bad_endpoint(p, &ep);
	assert_false(path_best(p, NULL, NULL, NULL, T0 + 10 * SEC));
	path_free(p);
}

/* ---- CLI pings ---------------------------------------------------------------- */

static void
test_cli_ping(void **state)
{
	union wg_endpoint eps[2] = { ep4("203.0.113.1", 41641), ep4("198.51.100.2", 41641) };
	struct path *p = new_peer(eps, 2);
	struct path_actions acts = { .n = 0 };
	struct path_pong pong;
	const struct path_action *a, *d;

	/* No trusted path: via DERP and to every candidate. */
	assert_true(path_cli_ping(p, T0, 77, &acts));
	assert_int_equal(acts.n, 3);
	assert_non_null(d = derp_ping(&acts));
	assert_int_equal(d->cookie, 77);
	assert_non_null(a = ping_to(&acts, &eps[1]));
	assert_int_equal(a->cookie, 77);
	assert_non_null(ping_to(&acts, &eps[0]));

	/* The first pong answers the user; it also sets the path. */
	assert_true(path_on_pong(p, a->txid, &eps[1], T0 + 30 * MS, &pong));
	assert_int_equal(pong.purpose, PATH_CLI);
	assert_int_equal(pong.cookie, 77);
	assert_true(pong.cli_answer);
	assert_true(pong.new_best);
	assert_int_equal(pong.latency_ns, 30 * MS);
	/* The DERP one arrives later: same cookie, no second answer. */
	assert_true(path_on_pong(p, d->txid, NULL, T0 + 90 * MS, &pong));
	assert_true(pong.via_derp);
	assert_int_equal(pong.cookie, 77);
	assert_false(pong.cli_answer);
	/* The unanswered third one times out without a report. */
	acts.n = 0;
	path_tick(p, T0 + 5 * SEC, &acts);
	assert_int_equal(count_kind(&acts, PATH_CLI_TIMEOUT), 0);

	/* Trusted path: only that, and no DERP. */
	establish(p, &eps[1], T0 + 10 * SEC, 30 * MS);
	acts.n = 0;
	assert_true(path_cli_ping(p, T0 + 11 * SEC, 78, &acts));
	assert_int_equal(acts.n, 1);
	assert_true(same(&acts.a[0].to, &eps[1]));
	assert_false(acts.a[0].via_derp);
	path_free(p);
}

static void
test_cli_ping_timeout(void **state)
{
	union wg_endpoint eps[2] = { ep4("203.0.113.1", 41641), ep4("198.51.100.2", 41641) };
	struct path *p = new_peer(eps, 2);
	struct path_actions acts = { .n = 0 };
	uint64_t next;

	assert_true(path_cli_ping(p, T0, 88, &acts));
	assert_true(path_cli_ping(p, T0 + 1 * SEC, 89, &acts));
	/* Nothing answers. */
	acts.n = 0;
	next = path_tick(p, T0 + 4 * SEC, &acts);
	assert_int_equal(count_kind(&acts, PATH_CLI_TIMEOUT), 0);
	assert_true(next <= T0 + 5 * SEC);
	acts.n = 0;
	path_tick(p, T0 + 5 * SEC, &acts);
	assert_int_equal(count_kind(&acts, PATH_CLI_TIMEOUT), 1);
	for (size_t i = 0; i < acts.n; i++) {
		if (acts.a[i].kind == PATH_CLI_TIMEOUT)
			assert_int_equal(acts.a[i].cookie, 88);
	}
	acts.n = 0;
	path_tick(p, T0 + 5 * SEC, &acts);
	assert_int_equal(count_kind(&acts, PATH_CLI_TIMEOUT), 0);	/* once */
	acts.n = 0;
	path_tick(p, T0 + 6 * SEC, &acts);
	assert_int_equal(count_kind(&acts, PATH_CLI_TIMEOUT), 1);
	assert_int_equal(acts.a[count_kind(&acts, PATH_SEND_PING)].kind, PATH_CLI_TIMEOUT);

	/* No disco: refused at once. */
	path_set_disco(p, false);
	assert_false(path_cli_ping(p, T0 + 7 * SEC, 90, &acts));
	path_free(p);
}

/* ---- caps ---------------------------------------------------------------------- */

static void
test_candidate_caps(void **state)
{
	static union wg_endpoint eps[150];
	struct path *p;
	struct path_actions acts = { .n = 0 };
	struct path_route r;
	struct path_pong pong;
	uint8_t first_txid[PATH_TXID_LEN], last_txid[PATH_TXID_LEN], txid[PATH_TXID_LEN];
	size_t pings = 0, cmms = 0;
	uint64_t next = 0;

	for (int i = 0; i < 150; i++) {
		char ip[32];

		snprintf(ip, sizeof ip, "198.18.%d.%d", i / 200, 1 + i % 200);
		eps[i] = ep4(ip, 41641);
	}
	p = new_peer(eps, 150);
	assert_int_equal(path_n_candidates(p), PATH_MAX_CANDIDATES);

	/* One send: 100 pings over several calls, one CallMeMaybe. */
	path_on_send(p, T0, &r, &acts);
	assert_int_equal(acts.n, PATH_MAX_ACTIONS);
	assert_int_equal(acts.a[PATH_MAX_ACTIONS - 1].kind, PATH_SEND_CALL_ME_MAYBE);
	memcpy(first_txid, acts.a[0].txid, PATH_TXID_LEN);
	for (int guard = 0; guard < 10; guard++) {
		pings += count_kind(&acts, PATH_SEND_PING);
		cmms += count_kind(&acts, PATH_SEND_CALL_ME_MAYBE);
		for (size_t i = 0; i < acts.n; i++) {
			if (acts.a[i].kind == PATH_SEND_PING)
				memcpy(last_txid, acts.a[i].txid, PATH_TXID_LEN);
		}
		if (guard > 0 && next != T0)
			break;
		acts.n = 0;
		next = path_tick(p, T0, &acts);
	}
	assert_true(next > T0);
	assert_int_equal(pings, PATH_MAX_CANDIDATES);
	assert_int_equal(cmms, 1);
	/* Only the last PATH_MAX_PINGS are remembered. */
	assert_false(path_on_pong(p, first_txid, &eps[0], T0 + 1 * MS, &pong));
	assert_true(path_on_pong(p, last_txid, &eps[99], T0 + 1 * MS, &pong));
	assert_true(same(&pong.to, &eps[99]));

	/* Learned candidates: the table is full until some expire. */
	path_free(p);
	p = new_peer(NULL, 0);
	for (int i = 0; i < 120; i++) {
		memset(txid, i, sizeof txid);
		assert_true(path_on_ping(p, &eps[i], txid, T0 + (uint64_t)i * SEC / 10));
	}
	assert_int_equal(path_n_candidates(p), PATH_MAX_CANDIDATES);
	/* 45 s after the first ones: they make room. */
	memset(txid, 0xee, sizeof txid);
	assert_true(path_on_ping(p, &eps[140], txid, T0 + 45 * SEC + 5 * SEC + 1));
	/* Pinged at T0 + i/10 s, those with i <= 50 are over 45 s old. */
	assert_int_equal(path_n_candidates(p), 100 - 51 + 1);
	/* The round reaches the new one in a later batch. */
	acts.n = 0;
	path_on_send(p, T0 + 50 * SEC + 1, &r, &acts);
	assert_int_equal(acts.n, PATH_MAX_ACTIONS);
	assert_null(ping_to(&acts, &eps[140]));
	acts.n = 0;
	/* The tick the host makes after any call finishes the round. */
	assert_true(path_tick(p, T0 + 50 * SEC + 1, &acts) > T0 + 50 * SEC + 1);
	assert_int_equal(count_kind(&acts, PATH_SEND_PING), 50 - (PATH_MAX_ACTIONS - 1));
	assert_non_null(ping_to(&acts, &eps[140]));
	assert_int_equal(count_kind(&acts, PATH_SEND_CALL_ME_MAYBE), 0);
	path_free(p);
}

static void
test_ping_table_eviction(void **state)
{
	union wg_endpoint ep = ep4("203.0.113.1", 41641);
	struct path *p = new_peer(&ep, 1);
	struct path_actions acts;
	struct path_route r;
	struct path_pong pong;
	uint8_t oldest[PATH_TXID_LEN], newest[PATH_TXID_LEN];

	/* 70 rounds 5 s apart: more discovery pings than the table holds. */
	for (int i = 0; i < PATH_MAX_PINGS + 6; i++) {
		acts.n = 0;
		path_on_send(p, T0 + (uint64_t)i * 5 * SEC, &r, &acts);
		assert_non_null(ping_to(&acts, &ep));
		if (i == 0)
			memcpy(oldest, ping_to(&acts, &ep)->txid, PATH_TXID_LEN);
		memcpy(newest, ping_to(&acts, &ep)->txid, PATH_TXID_LEN);
	}
	uint64_t now = T0 + (uint64_t)(PATH_MAX_PINGS + 5) * 5 * SEC;
	assert_false(path_on_pong(p, oldest, &ep, now + 1 * MS, &pong));
	assert_true(path_on_pong(p, newest, &ep, now + 1 * MS, &pong));
	assert_best(p, &ep, true, now + 1 * MS);
	path_free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_send_derp_and_discovery),
		cmocka_unit_test(test_pong_trusts_then_expires),
		cmocka_unit_test(test_no_disco_is_derp_only),
		cmocka_unit_test(test_no_derp_home),
		cmocka_unit_test(test_heartbeat_while_active),
		cmocka_unit_test(test_heartbeat_full_round_when_slow),
		cmocka_unit_test(test_ping_timeout_clears_best),
		cmocka_unit_test(test_timeout_while_trusted_keeps_best),
		cmocka_unit_test(test_better_addr),
		cmocka_unit_test(test_untrusted_best_replaced_by_any_pong),
		cmocka_unit_test(test_call_me_maybe),
		cmocka_unit_test(test_call_me_maybe_drops_best),
		cmocka_unit_test(test_incoming_pings),
		cmocka_unit_test(test_pong_matching),
		cmocka_unit_test(test_netmap_update),
		cmocka_unit_test(test_connectivity_change_and_bad_endpoint),
		cmocka_unit_test(test_cli_ping),
		cmocka_unit_test(test_cli_ping_timeout),
		cmocka_unit_test(test_candidate_caps),
		cmocka_unit_test(test_ping_table_eviction),
	};

	return cmocka_run_group_tests_name("path", tests, NULL, NULL);
}

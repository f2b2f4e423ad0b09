/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */

/*
 * Per-peer path selection, after tailscale v1.102.3
 * wgengine/magicsock/endpoint.go (derp_disco.md §4.3-§4.9):
 *
 *  - send (§4.5): a trusted best address gets the datagram alone; otherwise
 *    it goes to the best address (if any) and to DERP, and every candidate
 *    not pinged for 5 s is pinged, followed by a CallMeMaybe via DERP;
 *  - pong (§4.7): the address pinged becomes the best one when betterAddr()
 *    says so or the current one is no longer trusted, and a pong from the
 *    best address trusts it for 6.5 s;
 *  - heartbeat (§4.8): every 3 s while we sent within 45 s, ping the best
 *    address, plus a full round when it is missing or untrusted, or slower
 *    than 5 ms and the last full round is 60 s old;
 *  - a ping unanswered after 5 s to an untrusted best address drops it.
 *
 * Deviations, on purpose: candidates are kept by three independent marks
 * (netmap, CallMeMaybe, recent incoming ping) rather than Go's single
 * index/time fields, so a CallMeMaybe no longer deletes an address the
 * netmap still lists; a ping-learned candidate does not expire while it is
 * the best address; and the tables are capped (PATH_MAX_CANDIDATES,
 * PATH_MAX_PINGS) instead of growing without bound.
 */
#include <stdlib.h>
#include <string.h>

#include "agent/magicsock/path.h"
#include "common/util.h"

struct cand {
	union wg_endpoint addr;
	uint64_t last_ping;		/* our last ping to it, if pinged */
	uint64_t got_ping_at;		/* its last ping to us, if learned */
	uint64_t latency;		/* from the last pong, if has_latency */
	uint8_t got_txid[PATH_TXID_LEN];
	bool pinged;
	bool learned;			/* first seen as the source of a ping */
	bool has_got_txid;
	bool in_netmap;
	bool in_cmm;
	bool has_latency;
};

struct sent_ping {
	uint8_t txid[PATH_TXID_LEN];
	union wg_endpoint to;		/* AF_UNSPEC when via DERP */
	uint64_t at;
	uint64_t cookie;
	uint8_t purpose;
	bool via_derp;
	bool cli_done;			/* its cookie was already answered */
};

struct path {
	void (*random)(void *, void *, size_t);
	void *rctx;

	struct cand *cands;
	size_t n_cands, cap_cands;
	struct sent_ping *pings;
	size_t n_pings, cap_pings;

	bool has_disco;
	bool has_derp;

	bool best_valid;
	union wg_endpoint best;
	uint64_t best_latency;
	uint64_t trust_until;

	bool sent_ext;			/* last_send_ext is set */
	uint64_t last_send_ext;
	bool hb_running;
	uint64_t hb_at;
	bool full_ping_done;
	uint64_t last_full_ping;

	/* A ping round ran out of action slots; path_tick() continues it. */
	bool round_pending;
	bool round_cmm;			/* ... and still owes a CallMeMaybe */
};

/* ---- addresses ------------------------------------------------------------ */

/* Something we could send a ping to. */
static bool
ep_usable(const union wg_endpoint *ep)
{
	switch (ep->sa.sa_family) {
	case AF_INET:
		return ep->in4.sin_port != 0 && ep->in4.sin_addr.s_addr != 0;
	case AF_INET6:
		return ep->in6.sin6_port != 0 && !IN6_IS_ADDR_UNSPECIFIED(&ep->in6.sin6_addr);
	default:
		return false;
	}
}

static bool
ep_is_v6_link_local(const union wg_endpoint *ep)
{
	return ep->sa.sa_family == AF_INET6 && IN6_IS_ADDR_LINKLOCAL(&ep->in6.sin6_addr);
}

/* betterAddr's preference points for the kind of address (§4.9). */
static int
addr_points(const union wg_endpoint *ep)
{
	const uint8_t *a;
	int pts = 0;

	if (ep->sa.sa_family == AF_INET) {
		a = (const uint8_t *)&ep->in4.sin_addr;
		if (a[0] == 127)
			pts += 50;
		else if (a[0] == 169 && a[1] == 254)
			pts += 30;
		else if (a[0] == 10 || (a[0] == 172 && (a[1] & 0xf0) == 16) ||
		    (a[0] == 192 && a[1] == 168))
			pts += 20;
	} else if (ep->sa.sa_family == AF_INET6) {
		a = ep->in6.sin6_addr.s6_addr;
		if (IN6_IS_ADDR_LOOPBACK(&ep->in6.sin6_addr))
			pts += 50;
		else if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
			pts += 30;
		else if ((a[0] & 0xfe) == 0xfc)
			pts += 20;
		/* IPv6 is a little more robust (no NAT), at equal latency. */
		pts += 10;
	}
	return pts;
}

/*
 * Whether address a at latency alat is better than b at blat (b NULL: no
 * best address).  As betterAddr(): the faster one scores how many percent
 * faster it is, kinds of address add points, and a gain of at most 1 % with
 * nothing else going for it does not switch.  Path MTU is not probed, so
 * the same address is never better than itself.
 */
static bool
better_addr(const union wg_endpoint *a, uint64_t alat, const union wg_endpoint *b, uint64_t blat)
{
	int apts = 0, bpts = 0;

	if (b == NULL)
		return true;
	if (wg_endpoint_equal(a, b))
		return false;
	if (alat > blat && alat > 0)
		bpts = (int)(100 - (blat * 100) / alat);
	else if (blat > 0)
		apts = (int)(100 - (alat * 100) / blat);
	apts += addr_points(a);
	bpts += addr_points(b);
	if (apts <= 1 && bpts == 0)
		return false;
	return apts > bpts;
}

/* ---- state helpers -------------------------------------------------------- */

static bool
trusted(const struct path *p, uint64_t now)
{
	return p->best_valid && now <= p->trust_until;
}

static void
clear_best(struct path *p)
{
	p->best_valid = false;
	memset(&p->best, 0, sizeof p->best);
	p->best_latency = 0;
	p->trust_until = 0;
}

static struct cand *
find_cand(struct path *p, const union wg_endpoint *ep)
{
	for (size_t i = 0; i < p->n_cands; i++) {
		if (wg_endpoint_equal(&p->cands[i].addr, ep))
			return &p->cands[i];
	}
	return NULL;
}

static bool
is_best(const struct path *p, const union wg_endpoint *ep)
{
	return p->best_valid && wg_endpoint_equal(&p->best, ep);
}

/* Whether a candidate still has a reason to exist (shouldDeleteLocked). */
static bool
cand_keep(const struct path *p, const struct cand *c, uint64_t now)
{
	if (c->in_netmap || c->in_cmm)
		return true;
	if (!c->learned)
		return false;
	return now <= c->got_ping_at + PATH_SESSION_ACTIVE_TIMEOUT || is_best(p, &c->addr);
}

static void
remove_cand(struct path *p, size_t i)
{
	if (is_best(p, &p->cands[i].addr))
		clear_best(p);
	/* Keep the order: pings go out in netmap order. */
	memmove(&p->cands[i], &p->cands[i + 1], (p->n_cands - i - 1) * sizeof p->cands[0]);
	p->n_cands--;
}

static void
prune(struct path *p, uint64_t now)
{
	for (size_t i = 0; i < p->n_cands;) {
		if (cand_keep(p, &p->cands[i], now))
			i++;
		else
			remove_cand(p, i);
	}
}

/* A new, unmarked candidate; NULL at the cap even after pruning. */
static struct cand *
add_cand(struct path *p, const union wg_endpoint *ep, uint64_t now)
{
	struct cand *c;
	size_t ncap;

	if (p->n_cands == PATH_MAX_CANDIDATES)
		prune(p, now);
	if (p->n_cands == PATH_MAX_CANDIDATES)
		return NULL;
	if (p->n_cands == p->cap_cands) {
		ncap = MIN(p->cap_cands ? 2 * p->cap_cands : 4, (size_t)PATH_MAX_CANDIDATES);
		p->cands = xreallocarray(p->cands, ncap, sizeof *p->cands);
		p->cap_cands = ncap;
	}
	c = &p->cands[p->n_cands++];
	memset(c, 0, sizeof *c);
	c->addr = *ep;
	return c;
}

static void
forget_cand_history(struct cand *c)
{
	c->pinged = false;
	c->has_latency = false;
	c->has_got_txid = false;
}

/* ---- pings ---------------------------------------------------------------- */

static bool
acts_full(const struct path_actions *acts, size_t reserve)
{
	return acts->n + reserve >= PATH_MAX_ACTIONS;
}

static struct path_action *
add_action(struct path_actions *acts, int kind)
{
	struct path_action *a = &acts->a[acts->n++];

	memset(a, 0, sizeof *a);
	a->kind = kind;
	return a;
}

static void
remove_ping(struct path *p, size_t i)
{
	p->pings[i] = p->pings[--p->n_pings];
}

/*
 * A slot for a new ping: a free one, a new one, or the oldest non-CLI ping's
 * (that ping is forgotten; its pong will be ignored).  CLI pings are not
 * evicted because the user waits for each cookie's answer; NULL if the
 * table holds nothing but those.
 */
static struct sent_ping *
ping_slot(struct path *p)
{
	struct sent_ping *old = NULL;
	size_t ncap;

	if (p->n_pings < p->cap_pings)
		return &p->pings[p->n_pings++];
	if (p->cap_pings < PATH_MAX_PINGS) {
		ncap = MIN(p->cap_pings ? 2 * p->cap_pings : 8, (size_t)PATH_MAX_PINGS);
		p->pings = xreallocarray(p->pings, ncap, sizeof *p->pings);
		p->cap_pings = ncap;
		return &p->pings[p->n_pings++];
	}
	for (size_t i = 0; i < p->n_pings; i++) {
		if (p->pings[i].purpose != PATH_CLI && (old == NULL || p->pings[i].at < old->at))
			old = &p->pings[i];
	}
	return old;
}

/*
 * Appends a Ping to "to" (NULL: via DERP).  The caller checked there is an
 * action slot.  False if the ping table is full of CLI pings.
 */
static bool
start_ping(struct path *p, const union wg_endpoint *to, uint64_t now,
    enum path_ping_purpose purpose, uint64_t cookie, struct path_actions *acts)
{
	struct sent_ping *sp;
	struct path_action *a;
	struct cand *c;

	if (purpose != PATH_CLI && to != NULL) {
		/* Only live candidates get discovery and heartbeat pings. */
		if ((c = find_cand(p, to)) == NULL)
			return false;
		if ((sp = ping_slot(p)) == NULL)
			return false;
		c->pinged = true;
		c->last_ping = now;
	} else if ((sp = ping_slot(p)) == NULL)
		return false;

	memset(sp, 0, sizeof *sp);
	p->random(p->rctx, sp->txid, sizeof sp->txid);
	if (to != NULL)
		sp->to = *to;
	sp->via_derp = to == NULL;
	sp->at = now;
	sp->purpose = (uint8_t)purpose;
	sp->cookie = cookie;

	a = add_action(acts, PATH_SEND_PING);
	a->via_derp = sp->via_derp;
	a->to = sp->to;
	memcpy(a->txid, sp->txid, sizeof a->txid);
	a->cookie = purpose == PATH_CLI ? cookie : 0;
	return true;
}

/* noteTxActivityExtTriggerLocked: the session is active; keep heartbeating. */
static void
note_tx(struct path *p, uint64_t now)
{
	p->sent_ext = true;
	p->last_send_ext = now;
	if (!p->hb_running && p->has_disco) {
		p->hb_running = true;
		p->hb_at = now + PATH_HEARTBEAT_INTERVAL;
	}
}

/*
 * sendDiscoPingsLocked: a discovery ping to every candidate not pinged in
 * the last 5 s, then -- if any went out and with_cmm -- a CallMeMaybe via
 * DERP so the peer pings back through the holes our pings opened.  When the
 * actions run out, the rest of the round is left to path_tick().
 */
static void
ping_round(struct path *p, uint64_t now, bool with_cmm, bool fresh, struct path_actions *acts)
{
	bool sent_any = false, want_cmm = with_cmm && p->has_derp;

	if (!p->has_disco)
		return;
	if (fresh) {
		p->full_ping_done = true;
		p->last_full_ping = now;
		prune(p, now);
	}
	p->round_pending = false;
	p->round_cmm = false;
	for (size_t i = 0; i < p->n_cands; i++) {
		struct cand *c = &p->cands[i];

		if (c->pinged && now < c->last_ping + PATH_DISCO_PING_INTERVAL)
			continue;
		/* Keep one slot for the CallMeMaybe that follows. */
		if (acts_full(acts, want_cmm ? 1 : 0)) {
			p->round_pending = true;
			p->round_cmm = want_cmm && !sent_any;
			break;
		}
		if (start_ping(p, &c->addr, now, PATH_DISCOVERY, 0, acts))
			sent_any = true;
	}
	if (sent_any && want_cmm)
		add_action(acts, PATH_SEND_CALL_ME_MAYBE);
}

static bool
want_full_ping(const struct path *p, uint64_t now)
{
	if (!p->best_valid || !p->full_ping_done)
		return true;
	if (!trusted(p, now))
		return true;
	if (p->best_latency <= PATH_GOOD_ENOUGH_LATENCY)
		return false;
	return now >= p->last_full_ping + PATH_UPGRADE_INTERVAL;
}

/* ---- the API -------------------------------------------------------------- */

struct path *
path_new(void (*random)(void *ctx, void *buf, size_t len), void *rctx)
{
	struct path *p = xcalloc(1, sizeof *p);

	p->random = random;
	p->rctx = rctx;
	return p;
}

void
path_free(struct path *p)
{
	if (p == NULL)
		return;
	free(p->cands);
	free(p->pings);
	free(p);
}

void
path_set_endpoints(struct path *p, const union wg_endpoint *eps, size_t n, uint64_t now)
{
	struct cand *c;

	for (size_t i = 0; i < p->n_cands; i++)
		p->cands[i].in_netmap = false;
	for (size_t i = 0; i < n; i++) {
		if (!ep_usable(&eps[i]))
			continue;
		if ((c = find_cand(p, &eps[i])) == NULL && (c = add_cand(p, &eps[i], now)) == NULL)
			continue;
		c->in_netmap = true;
	}
	prune(p, now);
}

void
path_set_disco(struct path *p, bool has_disco)
{
	p->has_disco = has_disco;
	if (!has_disco) {
		/* Without disco nothing can confirm or refresh a UDP path. */
		clear_best(p);
		p->hb_running = false;
		p->round_pending = false;
	}
}

void
path_set_derp(struct path *p, bool has_derp)
{
	p->has_derp = has_derp;
}

void
path_on_send(struct path *p, uint64_t now, struct path_route *route, struct path_actions *acts)
{
	bool trust = trusted(p, now);

	memset(route, 0, sizeof *route);
	if (p->best_valid) {
		route->udp = true;
		route->addr = p->best;
	}
	route->derp = !trust && p->has_derp;

	if (!trust)
		ping_round(p, now, true, true, acts);
	note_tx(p, now);
}

bool
path_on_ping(struct path *p, const union wg_endpoint *src, const uint8_t txid[PATH_TXID_LEN],
    uint64_t now)
{
	struct cand *c;
	bool dup;

	/* Via DERP: the sender is authenticated by the server; no candidate. */
	if (src == NULL || !ep_usable(src))
		return true;
	if ((c = find_cand(p, src)) != NULL) {
		dup = c->has_got_txid && memcmp(c->got_txid, txid, PATH_TXID_LEN) == 0;
		memcpy(c->got_txid, txid, PATH_TXID_LEN);
		c->has_got_txid = true;
		/* Netmap and CallMeMaybe entries do not become time-limited. */
		if (c->learned)
			c->got_ping_at = now;
		return !dup;
	}
	if ((c = add_cand(p, src, now)) != NULL) {
		c->learned = true;
		c->got_ping_at = now;
		memcpy(c->got_txid, txid, PATH_TXID_LEN);
		c->has_got_txid = true;
	}
	return true;
}

bool
path_on_pong(struct path *p, const uint8_t txid[PATH_TXID_LEN], const union wg_endpoint *src,
    uint64_t now, struct path_pong *out)
{
	struct sent_ping sp;
	struct cand *c;
	size_t i;

	for (i = 0; i < p->n_pings; i++) {
		if (memcmp(p->pings[i].txid, txid, PATH_TXID_LEN) == 0)
			break;
	}
	if (i == p->n_pings)
		return false;
	sp = p->pings[i];
	remove_ping(p, i);

	memset(out, 0, sizeof *out);
	out->purpose = sp.purpose;
	out->via_derp = src == NULL || sp.via_derp;
	out->to = sp.to;
	out->latency_ns = now >= sp.at ? now - sp.at : 0;
	if (sp.purpose == PATH_CLI) {
		out->cookie = sp.cookie;
		out->cli_answer = !sp.cli_done;
		/* One answer per cookie: the others still count for the path. */
		for (size_t k = 0; k < p->n_pings; k++) {
			if (p->pings[k].purpose == PATH_CLI && p->pings[k].cookie == sp.cookie)
				p->pings[k].cli_done = true;
		}
	}
	if (out->via_derp)
		return true;

	/* A pong for an address we no longer consider says nothing. */
	if ((c = find_cand(p, &sp.to)) == NULL)
		return true;
	c->latency = out->latency_ns;
	c->has_latency = true;

	/* Note: the address pinged, not the pong's source, becomes best. */
	if (better_addr(&sp.to, out->latency_ns, p->best_valid ? &p->best : NULL,
	    p->best_latency) || !trusted(p, now)) {
		out->new_best = !is_best(p, &sp.to);
		p->best_valid = true;
		p->best = sp.to;
		p->best_latency = out->latency_ns;
	}
	if (is_best(p, &sp.to)) {
		p->best_latency = out->latency_ns;
		p->trust_until = now + PATH_TRUST_UDP_DURATION;
	}
	return true;
}

void
path_on_call_me_maybe(struct path *p, const union wg_endpoint *eps, size_t n, uint64_t now,
    struct path_actions *acts)
{
	struct cand *c;

	for (size_t i = 0; i < p->n_cands; i++)
		p->cands[i].in_cmm = false;
	for (size_t i = 0; i < n; i++) {
		/* Pinging these would need the right interface; Go skips them too. */
		if (!ep_usable(&eps[i]) || ep_is_v6_link_local(&eps[i]))
			continue;
		if ((c = find_cand(p, &eps[i])) == NULL && (c = add_cand(p, &eps[i], now)) == NULL)
			continue;
		c->in_cmm = true;
	}
	prune(p, now);

	/* The peer just opened its side: ping everything now, whatever the 5 s. */
	for (size_t i = 0; i < p->n_cands; i++)
		p->cands[i].pinged = false;
	ping_round(p, now, false, true, acts);
}

bool
path_cli_ping(struct path *p, uint64_t now, uint64_t cookie, struct path_actions *acts)
{
	bool any = false;

	if (!p->has_disco)
		return false;
	if (!trusted(p, now) && p->has_derp && !acts_full(acts, 0))
		any |= start_ping(p, NULL, now, PATH_CLI, cookie, acts);
	if (trusted(p, now)) {
		/*
		 * Only the path in use: pinging every candidate would make the
		 * answer bounce between equally good ones.
		 */
		if (!acts_full(acts, 0))
			any |= start_ping(p, &p->best, now, PATH_CLI, cookie, acts);
	} else {
		for (size_t i = 0; i < p->n_cands && !acts_full(acts, 0); i++)
			any |= start_ping(p, &p->cands[i].addr, now, PATH_CLI, cookie, acts);
	}
	if (any)
		note_tx(p, now);
	return any;
}

/* Another unanswered CLI ping with the same cookie is still in flight. */
static bool
cli_sibling(const struct path *p, size_t self)
{
	for (size_t k = 0; k < p->n_pings; k++) {
		if (k != self && p->pings[k].purpose == PATH_CLI && !p->pings[k].cli_done &&
		    p->pings[k].cookie == p->pings[self].cookie)
			return true;
	}
	return false;
}

uint64_t
path_tick(struct path *p, uint64_t now, struct path_actions *acts)
{
	uint64_t next = UINT64_MAX;
	bool again = false;
	size_t i;

	/* discoPingTimeout */
	for (i = 0; i < p->n_pings;) {
		struct sent_ping *sp = &p->pings[i];

		if (now < sp->at + PATH_PING_TIMEOUT) {
			i++;
			continue;
		}
		if (sp->purpose == PATH_CLI && !sp->cli_done && !cli_sibling(p, i)) {
			if (acts_full(acts, 0)) {
				again = true;
				i++;
				continue;
			}
			add_action(acts, PATH_CLI_TIMEOUT)->cookie = sp->cookie;
		}
		if (!sp->via_derp && is_best(p, &sp->to) && !trusted(p, now))
			clear_best(p);
		remove_ping(p, i);
	}

	/* Ping-learned candidates that stopped pinging us. */
	prune(p, now);

	if (p->round_pending) {
		if (!acts_full(acts, 0))
			ping_round(p, now, p->round_cmm, false, acts);
		again |= p->round_pending;
	}

	/* heartbeat */
	if (p->hb_running && now >= p->hb_at) {
		if (acts_full(acts, 1)) {
			again = true;
		} else if (!p->sent_ext || now > p->last_send_ext + PATH_SESSION_ACTIVE_TIMEOUT ||
		    !p->has_disco) {
			/* Idle: stop; the next send restarts it. */
			p->hb_running = false;
		} else {
			if (p->best_valid)
				start_ping(p, &p->best, now, PATH_HEARTBEAT, 0, acts);
			if (want_full_ping(p, now))
				ping_round(p, now, true, true, acts);
			p->hb_at = now + PATH_HEARTBEAT_INTERVAL;
		}
	}

	if (again)
		return now;
	if (p->hb_running)
		next = MIN(next, p->hb_at);
	for (i = 0; i < p->n_pings; i++)
		next = MIN(next, p->pings[i].at + PATH_PING_TIMEOUT);
	if (p->round_pending)
		next = now;
	return next;
}

bool
path_best(const struct path *p, union wg_endpoint *addr, uint64_t *latency_ns, bool *is_trusted,
    uint64_t now)
{
	if (addr != NULL) {
		if (p->best_valid)
			*addr = p->best;
		else
			memset(addr, 0, sizeof *addr);
	}
	if (latency_ns != NULL)
		*latency_ns = p->best_valid ? p->best_latency : 0;
	if (is_trusted != NULL)
		*is_trusted = trusted(p, now);
	return p->best_valid;
}

void
path_note_bad_endpoint(struct path *p, const union wg_endpoint *addr)
{
	struct cand *c;

	clear_best(p);
	if ((c = find_cand(p, addr)) != NULL)
		forget_cand_history(c);
}

void
path_note_connectivity_change(struct path *p)
{
	clear_best(p);
	for (size_t i = 0; i < p->n_cands; i++)
		forget_cand_history(&p->cands[i]);
}

size_t
path_n_candidates(const struct path *p)
{
	return p->n_cands;
}

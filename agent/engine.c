/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */

/*
 * The engine: the TUN and WireGuard data path (wg/dp.c), magicsock, and
 * the routes and rules of tailscaled's Linux router, kept in step with the
 * netmap.  See engine.h.
 *
 * Peers are configured from the netmap's change log, so a delta costs work
 * in proportion to what it changed; only a full peer list walks them all.
 * The WireGuard handshake with a peer starts lazily, with the first packet
 * to it, and WireGuard's own roaming is off: magicsock owns the path.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <sodium.h>

#include "agent/control/ctlclient.h"
#include "agent/control/netmap.h"
#include "agent/engine.h"
#include "agent/magicsock/derpconn.h"
#include "agent/magicsock/magicsock.h"
#include "agent/magicsock/netcheck.h"
#include "agent/router.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/util.h"
#include "netlink/rtnl.h"
#include "wg/dp.h"
#include "wg/wg.h"

#define ENGINE_BUCKETS		1024		/* peers by node ID */
#define ENGINE_MAX_ALLOWED	64		/* allowed IPs taken per peer */
#define ENGINE_ACTIVE_NS	(120 * NSEC_PER_SEC)
#define ENGINE_LINK_SETTLE	(1 * NSEC_PER_SEC)

/* tailscaled's service addresses, always routed into the TUN (host.md §3.3). */
static const uint8_t quad100[4] = { 100, 100, 100, 100 };
static const uint8_t quad100_v6[16] = { 0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0x53 };

struct engine_peer {
	int64_t id;
	uint8_t key[KEY_LEN];
	struct wg_peer *wp;
	struct msock_peer *mp;
	struct engine_peer *next;	/* hash chain */
	bool mark;
};

struct engine {
	struct event_base *base;
	const struct engine_ops *ops;
	void *ctx;
	struct dp *dp;
	struct msock *ms;
	struct rtnl *rtnl;
	struct router *router;
	struct rtnl_mon *mon;
	struct event *mon_ev, *link_ev, *resync_ev;
	int ifindex;

	struct engine_peer *peers[ENGINE_BUCKETS];
	size_t n_peers;
	bool running;

	struct engine_ping *pings;	/* user pings in flight */
	engine_netcheck_fn nc_fn;	/* a user's netcheck in flight */
	void *nc_ctx;
};

struct engine_ping {
	struct engine *e;
	engine_ping_fn fn;
	void *ctx;
	struct engine_ping *next;
};

/* --- dp hooks: everything goes through magicsock --- */

static void
hook_send_pkt(void *ctx, struct wg_peer *peer, struct pkt *p)
{
	struct engine *e = ctx;

	msock_send_pkt(e->ms, peer, p);
}

static void
hook_send(void *ctx, struct wg_peer *peer, const union wg_endpoint *to, const uint8_t *buf,
    size_t len)
{
	struct engine *e = ctx;

	msock_send(e->ms, peer, to, buf, len);
}

static bool
hook_classify(void *ctx, const uint8_t *buf, size_t len, const union wg_endpoint *src,
    uint64_t now)
{
	struct engine *e = ctx;

	return msock_classify(e->ms, buf, len, src, now);
}

static void
hook_batch_end(void *ctx, uint64_t now)
{
	struct engine *e = ctx;

	msock_batch_end(e->ms, now);
}

static const struct dp_hooks engine_hooks = {
	.send_pkt = hook_send_pkt,
	.send = hook_send,
	.classify = hook_classify,
	.batch_end = hook_batch_end,
};

static void
ms_netinfo_changed(void *ctx)
{
	struct engine *e = ctx;

	e->ops->netinfo_changed(e->ctx);
}

static const struct msock_ops engine_ms_ops = { ms_netinfo_changed };

/* --- peers --- */

static struct engine_peer **
peer_slot(struct engine *e, int64_t id)
{
	struct engine_peer **pp = &e->peers[(uint64_t)id % ENGINE_BUCKETS];

	while (*pp && (*pp)->id != id)
		pp = &(*pp)->next;
	return pp;
}

static void
peer_remove(struct engine *e, struct engine_peer **pp)
{
	struct engine_peer *ep = *pp;

	*pp = ep->next;
	msock_peer_free(ep->mp);
	wg_peer_remove(dp_device(e->dp), ep->wp);
	free(ep);
	e->n_peers--;
}

/* Whether a peer can be talked to at all: a key, and not expired. */
static bool
peer_usable(const struct netmap_node *n)
{
	return !key_is_zero(n->key) && !(n->flags & NETMAP_NODE_EXPIRED);
}

static void
peer_allowed_ips(struct engine_peer *ep, const struct netmap_node *n)
{
	wg_peer_clear_allowed_ips(ep->wp);
	/*
	 * The peer's own addresses.  Subnet routes and exit routes join only
	 * when the user accepts them (--accept-routes, --exit-node).
	 */
	for (unsigned int i = 0; i < n->n_allowed_ips && i < ENGINE_MAX_ALLOWED; i++) {
		const struct netmap_prefix *p = &n->allowed_ips[i];
		bool host = p->bits == (p->family == 6 ? 128 : 32);

		if (!host)
			continue;
		if (wg_peer_add_allowed_ip(ep->wp, p->family == 6 ? AF_INET6 : AF_INET, p->addr,
		    p->bits) < 0)
			log_warn("engine: peer %lld: cannot add an allowed IP", (long long)n->id);
	}
}

/* Adds or updates one peer; false if it had to be removed instead. */
static void
peer_sync(struct engine *e, const struct netmap_node *n, uint32_t what)
{
	struct engine_peer **pp = peer_slot(e, n->id), *ep = *pp;

	if (!peer_usable(n)) {
		if (ep)
			peer_remove(e, pp);
		return;
	}
	if (ep != NULL && memcmp(ep->key, n->key, KEY_LEN) != 0) {
		peer_remove(e, pp);	/* a new node key is a new WireGuard peer */
		ep = NULL;
	}
	if (ep == NULL) {
		struct wg_peer *wp = wg_peer_new(dp_device(e->dp), n->key);

		if (wp == NULL) {
			log_warn("engine: peer %lld: cannot add it", (long long)n->id);
			return;
		}
		ep = xcalloc(1, sizeof *ep);
		ep->id = n->id;
		memcpy(ep->key, n->key, KEY_LEN);
		ep->wp = wp;
		ep->mp = msock_peer_new(e->ms, wp, n->key);
		ep->next = e->peers[(uint64_t)n->id % ENGINE_BUCKETS];
		e->peers[(uint64_t)n->id % ENGINE_BUCKETS] = ep;
		e->n_peers++;
		what = ~0U;
	}
	ep->mark = true;
	if (what & (NETMAP_PEER_ADDED | NETMAP_PEER_ADDRS))
		peer_allowed_ips(ep, n);
	if (what & (NETMAP_PEER_ADDED | NETMAP_PEER_DISCO | NETMAP_PEER_ENDPOINTS |
	    NETMAP_PEER_DERP | NETMAP_PEER_OTHER))
		msock_peer_update(ep->mp, n);
}

static void
remove_all_peers(struct engine *e)
{
	for (size_t b = 0; b < ENGINE_BUCKETS; b++)
		while (e->peers[b])
			peer_remove(e, &e->peers[b]);
}

static void
sync_full(struct engine *e, const struct netmap *nm)
{
	struct netmap_iter it = { 0 };
	const struct netmap_node *n;

	for (size_t b = 0; b < ENGINE_BUCKETS; b++)
		for (struct engine_peer *ep = e->peers[b]; ep; ep = ep->next)
			ep->mark = false;
	while ((n = netmap_iter_next(nm, &it)) != NULL)
		peer_sync(e, n, ~0U);
	for (size_t b = 0; b < ENGINE_BUCKETS; b++) {
		struct engine_peer **pp = &e->peers[b];

		while (*pp)
			if (!(*pp)->mark)
				peer_remove(e, pp);
			else
				pp = &(*pp)->next;
	}
}

static void
sync_changes(struct engine *e, const struct netmap *nm)
{
	const struct netmap_change *ch;
	size_t n;

	ch = netmap_changes(nm, &n);
	for (size_t i = 0; i < n; i++) {
		const struct netmap_node *node = netmap_peer(nm, ch[i].id);
		struct engine_peer **pp = peer_slot(e, ch[i].id);

		if (node != NULL)
			peer_sync(e, node, ch[i].what);
		else if (*pp != NULL)
			peer_remove(e, pp);
	}
}

/* --- routes --- */

static void
route_add(struct router_prefix **v, size_t *n, size_t *cap, int family, const uint8_t *addr,
    uint8_t bits)
{
	struct router_prefix *p;

	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		*v = xreallocarray(*v, *cap, sizeof **v);
	}
	p = &(*v)[(*n)++];
	memset(p, 0, sizeof *p);
	p->family = (uint8_t)family;
	p->bits = bits;
	memcpy(p->addr, addr, family == 6 ? 16 : 4);
}

/*
 * Table 52 (host.md §3.3): a /32 per peer IPv4 address, the tailnet's IPv6
 * ULA range as one /48 once any peer has an address in it, and the
 * MagicDNS service addresses.
 */
static void
sync_routes(struct engine *e, const struct netmap *nm)
{
	static const uint8_t ula[16] = { 0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0 };
	struct router_prefix *v = NULL;
	size_t n = 0, cap = 0;
	struct netmap_iter it = { 0 };
	const struct netmap_node *node;
	bool ula_seen = false;
	int r;

	if (e->router == NULL)
		return;
	while ((node = netmap_iter_next(nm, &it)) != NULL) {
		if (!peer_usable(node))
			continue;
		for (unsigned int i = 0; i < node->n_addrs; i++) {
			const struct netmap_prefix *p = &node->addrs[i];

			if (p->family == 4)
				route_add(&v, &n, &cap, 4, p->addr, 32);
			else if (memcmp(p->addr, ula, 6) == 0)
				ula_seen = true;
			else
				route_add(&v, &n, &cap, 6, p->addr, 128);
		}
	}
	if (ula_seen)
		route_add(&v, &n, &cap, 6, ula, 48);
	route_add(&v, &n, &cap, 4, quad100, 32);
	route_add(&v, &n, &cap, 6, quad100_v6, 128);
	if ((r = router_set_routes(e->router, v, n)) < 0)
		log_warn("engine: routes: %s", strerror(-r));
	free(v);
}

/* --- the netmap --- */

void
engine_set_netmap(struct engine *e, const struct netmap *nm, uint32_t changed,
    const uint8_t *node_priv)
{
	char *cause = NULL;

	if (nm == NULL || node_priv == NULL) {
		if (!e->running)
			return;
		remove_all_peers(e);
		msock_set_derp_map(e->ms, NULL);
		msock_set_node_key(e->ms, NULL);
		wg_device_set_private_key(dp_device(e->dp), (const uint8_t[KEY_LEN]){ 0 });
		router_free(e->router);
		e->router = NULL;
		e->running = false;
		dp_changed(e->dp);
		return;
	}
	if (!e->running) {
		changed = 0;
		e->running = true;
		e->router = router_new(e->rtnl, e->ifindex, &cause);
		if (e->router == NULL) {
			log_warn("engine: routing rules: %s", cause ? cause : "failed");
			free(cause);
		}
	}
	{
		uint8_t cur[KEY_LEN];
		bool same = wg_device_private_key(dp_device(e->dp), cur) &&
		    memcmp(cur, node_priv, KEY_LEN) == 0;

		sodium_memzero(cur, sizeof cur);
		if (!same) {
			/* A new node key: every session starts over. */
			remove_all_peers(e);
			wg_device_set_private_key(dp_device(e->dp), node_priv);
			changed = 0;
		}
	}
	msock_set_node_key(e->ms, node_priv);
	if (changed == 0 || (changed & NETMAP_CHANGED_DERP))
		msock_set_derp_map(e->ms, netmap_derp_map(nm));
	if (changed == 0 || (changed & NETMAP_CHANGED_PEERS_FULL))
		sync_full(e, nm);
	else if (changed & (NETMAP_CHANGED_PEERS_ADDED | NETMAP_CHANGED_PEERS_REMOVED |
	    NETMAP_CHANGED_PEERS_CHANGED))
		sync_changes(e, nm);
	if (changed & ~(NETMAP_CHANGED_DNS | NETMAP_CHANGED_FILTER | NETMAP_CHANGED_USERS |
	    NETMAP_CHANGED_HEALTH | NETMAP_CHANGED_COLLECT_SERVICES))
		sync_routes(e, nm);
	dp_changed(e->dp);
}

void
engine_set_control(struct engine *e, bool connected)
{
	msock_set_control(e->ms, connected);
}

/* --- link changes: re-STUN --- */

static void
link_settled_cb(evutil_socket_t fd, short what, void *arg)
{
	struct engine *e = arg;

	if (e->running)
		msock_link_changed(e->ms);
}

static void
resync_cb(evutil_socket_t fd, short what, void *arg)
{
	struct engine *e = arg;
	int r;

	if (e->router != NULL && (r = router_resync(e->router)) < 0)
		log_warn("engine: restoring routes and rules: %s", strerror(-r));
}

static void
mon_event(void *ctx, const struct rtnl_event *ev)
{
	struct engine *e = ctx;
	struct timeval tv = { 1, 0 };

	/*
	 * The kernel drops our routes when the TUN goes down, and network
	 * managers delete foreign rules: put them back (rate-limited).
	 */
	if ((ev->kind == RTNL_EV_LINK_UP && ev->link.ifindex == e->ifindex) ||
	    (ev->kind == RTNL_EV_RULE_DEL && ev->rule.priority >= ROUTER_PRIO_LO &&
	    ev->rule.priority <= ROUTER_PRIO_HI) || ev->kind == RTNL_EV_RESYNC) {
		if (!evtimer_pending(e->resync_ev, NULL))
			evtimer_add(e->resync_ev, &tv);
	}

	/* Our own TUN's addresses are no path to anyone. */
	if ((ev->kind == RTNL_EV_ADDR_NEW || ev->kind == RTNL_EV_ADDR_DEL) &&
	    ev->addr.ifindex == e->ifindex)
		return;
	if (ev->kind == RTNL_EV_ADDR_NEW || ev->kind == RTNL_EV_ADDR_DEL ||
	    ev->kind == RTNL_EV_LINK_UP || ev->kind == RTNL_EV_LINK_DOWN ||
	    ev->kind == RTNL_EV_RESYNC)
		evtimer_add(e->link_ev, &tv);	/* changes come in bursts: settle first */
}

static void
mon_cb(evutil_socket_t fd, short what, void *arg)
{
	struct engine *e = arg;

	if (rtnl_mon_read(e->mon) < 0)
		log_debug("engine: netlink monitor read failed");
}

/* --- what the local API and control read --- */

int
engine_ifindex(const struct engine *e)
{
	return e->ifindex;
}

void
engine_disco_public(const struct engine *e, uint8_t out[static KEY_LEN])
{
	msock_disco_public(e->ms, out);
}

void
engine_netinfo(const struct engine *e, struct ctl_netinfo *out)
{
	const struct netcheck_report *r = msock_report(e->ms);
	struct msock_endpoint eps[MSOCK_MAX_ENDPOINTS];
	size_t n = msock_endpoints(e->ms, eps, ARRAY_SIZE(eps));

	memset(out, 0, sizeof *out);
	out->preferred_derp = msock_home(e->ms);
	out->working_udp = out->working_ipv6 = out->mapping_varies = -1;
	for (size_t i = 0; i < n && out->n_endpoints < CTL_MAX_ENDPOINTS; i++) {
		wg_endpoint_str(&eps[i].addr, out->endpoints[out->n_endpoints],
		    sizeof out->endpoints[0]);
		out->endpoint_types[out->n_endpoints++] = eps[i].type;
	}
	if (r == NULL)
		return;
	out->working_udp = r->udp;
	out->working_ipv6 = r->ipv6;
	out->mapping_varies = (int8_t)r->mapping_varies_by_dest_ip;
	out->os_has_ipv6 = r->os_has_ipv6;
	for (size_t i = 0; i < r->n_regions && out->n_latencies + 2 <= CTL_MAX_LATENCIES; i++) {
		const struct netcheck_region_latency *l = &r->regions[i];

		if (l->v4_ns) {
			snprintf(out->latency[out->n_latencies].key, sizeof out->latency[0].key,
			    "%d-v4", (int)l->region_id);
			out->latency[out->n_latencies++].seconds = (double)l->v4_ns / 1e9;
		}
		if (l->v6_ns) {
			snprintf(out->latency[out->n_latencies].key, sizeof out->latency[0].key,
			    "%d-v6", (int)l->region_id);
			out->latency[out->n_latencies++].seconds = (double)l->v6_ns / 1e9;
		}
	}
}

int32_t
engine_preferred_derp(const struct engine *e)
{
	return e ? msock_home(e->ms) : 0;
}

const struct netcheck_report *
engine_last_report(const struct engine *e)
{
	return e ? msock_report(e->ms) : NULL;
}

bool
engine_peer_status(const struct engine *e, const uint8_t node_key[static KEY_LEN],
    struct engine_peer_status *out)
{
	struct wg_peer *wp;
	struct wg_peer_info info;
	struct msock_peer_status ms;

	memset(out, 0, sizeof *out);
	if (e == NULL || (wp = wg_peer_lookup(dp_device(e->dp), node_key)) == NULL ||
	    wg_peer_user(wp) == NULL)
		return false;
	wg_peer_get_info(wp, &info);
	msock_peer_status(wg_peer_user(wp), &ms);
	out->rx_bytes = info.rx_bytes;
	out->tx_bytes = info.tx_bytes;
	out->last_handshake_ms = (int64_t)(info.last_handshake_ns / 1000000);
	out->derp_region = ms.derp_region;
	if (ms.direct)
		wg_endpoint_str(&ms.addr, out->cur_addr, sizeof out->cur_addr);
	out->active = info.last_handshake_ns != 0 &&
	    clock_real_ns() - info.last_handshake_ns < ENGINE_ACTIVE_NS;
	return true;
}

/* --- metrics --- */

static void
counter(FILE *f, const char *name, const char *help, uint64_t v)
{
	fprintf(f, "# HELP meshd_%s %s\n# TYPE meshd_%s counter\nmeshd_%s %llu\n", name, help,
	    name, name, (unsigned long long)v);
}

static void
gauge(FILE *f, const char *name, const char *help, uint64_t v)
{
	fprintf(f, "# HELP meshd_%s %s\n# TYPE meshd_%s gauge\nmeshd_%s %llu\n", name, help,
	    name, name, (unsigned long long)v);
}

char *
engine_metrics(const struct engine *e)
{
	const struct wg_stats *w = wg_device_stats(dp_device(e->dp));
	struct dp_stats d;
	struct msock_stats m;
	struct derpconn_stats ds;
	size_t up, open;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (f == NULL)
		return NULL;
	dp_get_stats(e->dp, &d);
	msock_get_stats(e->ms, &m);
	msock_derp_stats(e->ms, &ds, &up, &open);
	gauge(f, "peers", "WireGuard peers configured", wg_device_peer_count(dp_device(e->dp)));
	counter(f, "wg_handshakes_sent_total", "handshake initiations sent", w->handshakes_sent);
	counter(f, "wg_handshakes_completed_total", "sessions established",
	    w->handshakes_completed);
	counter(f, "wg_rx_short_total", "datagrams too short for any message", w->rx_short);
	counter(f, "wg_rx_bad_type_total", "datagrams of an unknown type", w->rx_bad_type);
	counter(f, "wg_rx_bad_mac_total", "handshakes with a wrong mac1/mac2", w->rx_bad_mac);
	counter(f, "wg_rx_handshake_invalid_total", "handshakes that failed to open",
	    w->rx_handshake_invalid);
	counter(f, "wg_rx_decrypt_fail_total", "data that failed authentication",
	    w->rx_decrypt_fail);
	counter(f, "wg_rx_replay_total", "data replayed or too old", w->rx_replay);
	counter(f, "wg_rx_unknown_index_total", "data for no known session", w->rx_unknown_index);
	counter(f, "wg_rx_bad_source_total", "inner source outside the peer's allowed IPs",
	    w->rx_bad_source);
	counter(f, "wg_tx_no_route_total", "packets to no peer", w->tx_no_route);
	counter(f, "tun_dropped_total", "packets dropped at the TUN", d.tun_dropped);
	counter(f, "udp_dropped_total", "datagrams the UDP socket could not send", d.udp_dropped);
	counter(f, "disco_rx_total", "disco messages received", m.disco_rx);
	counter(f, "disco_tx_total", "disco messages sent", m.disco_tx);
	counter(f, "disco_bad_total", "disco from unknown keys, failing to open or malformed",
	    m.disco_bad);
	counter(f, "stun_bad_total", "STUN answers unparsable or for no probe of ours",
	    m.stun_bad);
	counter(f, "no_path_total", "datagrams with no UDP path and no DERP region", m.no_route);
	counter(f, "derp_rx_packets_total", "packets received via DERP", m.derp_rx);
	counter(f, "derp_tx_packets_total", "packets sent via DERP", m.derp_tx);
	counter(f, "derp_dropped_total", "DERP packets dropped (no region, queue full)",
	    m.derp_dropped + ds.drops_queue + ds.drops_output + ds.drops_too_big);
	counter(f, "derp_bad_frames_total", "malformed DERP frames", ds.bad_frames);
	counter(f, "derp_connects_total", "DERP handshakes completed", ds.connects);
	gauge(f, "derp_regions_open", "DERP region connections open", open);
	gauge(f, "derp_regions_up", "DERP region connections up", up);
	gauge(f, "derp_home_region", "the home DERP region (0 = none)",
	    (uint64_t)msock_home(e->ms));
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* --- pings and netcheck, for the local API --- */

static void
ping_done(void *ctx, const struct msock_ping_result *r)
{
	struct engine_ping *p = ctx, **pp;
	struct engine_ping_result res = { .err = r->err, .latency_ns = r->latency_ns };

	for (pp = &p->e->pings; *pp && *pp != p; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = p->next;
	if (r->direct)
		wg_endpoint_str(&r->addr, res.endpoint, sizeof res.endpoint);
	else
		res.derp_region = r->derp_region;
	p->fn(p->ctx, &res);
	free(p);
}

int
engine_ping(struct engine *e, const uint8_t node_key[static KEY_LEN], engine_ping_fn done,
    void *ctx)
{
	struct wg_peer *wp = e ? wg_peer_lookup(dp_device(e->dp), node_key) : NULL;
	struct msock_peer *mp = wp ? wg_peer_user(wp) : NULL;
	struct engine_ping *p;
	int r;

	if (mp == NULL)
		return -ENOENT;
	p = xcalloc(1, sizeof *p);
	p->e = e;
	p->fn = done;
	p->ctx = ctx;
	p->next = e->pings;
	e->pings = p;
	r = msock_ping(e->ms, mp, ping_done, p);
	if (r < 0) {
		e->pings = p->next;
		free(p);
	}
	dp_changed(e->dp);
	return r;
}

void
engine_ping_cancel(struct engine *e, void *ctx)
{
	struct engine_ping **pp;

	if (e == NULL)
		return;
	pp = &e->pings;
	while (*pp) {
		struct engine_ping *p = *pp;

		if (p->ctx == ctx) {
			*pp = p->next;
			msock_ping_cancel(e->ms, p);
			free(p);
		} else {
			pp = &p->next;
		}
	}
}

static void
netcheck_done(void *ctx, const struct netcheck_report *r)
{
	struct engine *e = ctx;
	engine_netcheck_fn fn = e->nc_fn;

	e->nc_fn = NULL;
	if (fn)
		fn(e->nc_ctx, r, msock_derp_map(e->ms));
}

int
engine_netcheck(struct engine *e, engine_netcheck_fn done, void *ctx)
{
	int r;

	if (e == NULL)
		return -ENOENT;
	if (e->nc_fn != NULL)
		return -EBUSY;
	e->nc_fn = done;
	e->nc_ctx = ctx;
	r = msock_netcheck(e->ms, netcheck_done, e);
	if (r < 0)
		e->nc_fn = NULL;
	return r;
}

void
engine_netcheck_cancel(struct engine *e, void *ctx)
{
	if (e != NULL && e->nc_fn != NULL && e->nc_ctx == ctx) {
		e->nc_fn = NULL;
		msock_netcheck_cancel(e->ms, e);
	}
}

/* --- life cycle --- */

struct engine *
engine_new(struct event_base *base, struct evdns_base *dns, const struct engine_cfg *cfg,
    const struct engine_ops *ops, void *ctx, char **cause)
{
	struct engine *e = xcalloc(1, sizeof *e);
	struct dp_cfg dc = { .ifname = cfg->tun, .port = cfg->port, .fwmark = MSOCK_FWMARK,
		.mtu = cfg->mtu };
	struct msock_cfg mc = { 0 };
	const char *http = getenv("MESHD_DEBUG_USE_DERP_HTTP");
	int r;

	e->base = base;
	e->ops = ops;
	e->ctx = ctx;
	if ((r = rtnl_open(&e->rtnl)) < 0) {
		if (asprintf(cause, "netlink: %s", strerror(-r)) < 0)
			*cause = NULL;
		goto fail;
	}
	e->dp = dp_new(base, &dc, &engine_hooks, e, cause);
	if (e->dp == NULL)
		goto fail;
	wg_device_set_roaming(dp_device(e->dp), false);
	e->ifindex = rtnl_link_index(dp_ifname(e->dp));
	mc.tun = dp_ifname(e->dp);
	mc.derp_plain_http = http != NULL && (strcmp(http, "1") == 0 || strcmp(http, "true") == 0);
	if (mc.derp_plain_http)
		log_warn("MESHD_DEBUG_USE_DERP_HTTP is set: DERP without TLS (for test servers only)");
	e->ms = msock_new(base, dns, e->dp, &mc, &engine_ms_ops, e);
	e->link_ev = evtimer_new(base, link_settled_cb, e);
	e->resync_ev = evtimer_new(base, resync_cb, e);
	if (rtnl_mon_open(RTNL_MON_ADDR | RTNL_MON_LINK | RTNL_MON_RULE, mon_event, e,
	    &e->mon) == 0) {
		e->mon_ev = event_new(base, rtnl_mon_fd(e->mon), EV_READ | EV_PERSIST, mon_cb, e);
		event_add(e->mon_ev, NULL);
	} else {
		log_warn("engine: no netlink monitor; endpoints refresh only periodically");
	}
	log_info("%s: data plane up, UDP port %u%s", dp_ifname(e->dp), dp_port(e->dp),
	    dp_offloads(e->dp) ? ", with TUN and UDP offloads" : "");
	return e;
fail:
	engine_free(e);
	return NULL;
}

void
engine_free(struct engine *e)
{
	if (e == NULL)
		return;
	e->nc_fn = NULL;
	if (e->dp != NULL && e->ms != NULL)
		engine_set_netmap(e, NULL, 0, NULL);
	msock_free(e->ms);	/* fails the pings still in flight */
	dp_free(e->dp);
	router_free(e->router);
	if (e->mon_ev)
		event_free(e->mon_ev);
	if (e->link_ev)
		event_free(e->link_ev);
	if (e->resync_ev)
		event_free(e->resync_ev);
	rtnl_mon_close(e->mon);
	rtnl_close(e->rtnl);
	free(e);
}

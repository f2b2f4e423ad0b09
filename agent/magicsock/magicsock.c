/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */

/*
 * magicsock: the glue between the WireGuard data path, DERP, disco and
 * STUN; see magicsock.h.  Protocol decisions live in the sans-I/O cores
 * (path.c, netcheck.c); this file does their I/O and keeps their timers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <sodium.h>

#include "agent/control/netmap.h"
#include "agent/magicsock/derp.h"
#include "agent/magicsock/derpconn.h"
#include "agent/magicsock/disco.h"
#include "agent/magicsock/magicsock.h"
#include "agent/magicsock/netcheck.h"
#include "agent/magicsock/path.h"
#include "agent/magicsock/stun.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/util.h"
#include "wg/dp.h"

#define MSOCK_MAX_REGIONS	32		/* open DERP connections */
#define MSOCK_DISCO_BUCKETS	256		/* peers by disco key */
#define MSOCK_DERP_IDLE		(60 * NSEC_PER_SEC)	/* close unused non-home regions */
#define MSOCK_DERP_CLEAN	(15 * NSEC_PER_SEC)
#define MSOCK_RESTUN_MIN	(20 * NSEC_PER_SEC)	/* periodic re-STUN while active */
#define MSOCK_RESTUN_JITTER	(6 * NSEC_PER_SEC)
#define MSOCK_FULL_EVERY	(5 * 60 * NSEC_PER_SEC)
#define MSOCK_MAX_PINGS		32		/* user pings in flight */
#define MSOCK_NC_PROBES		16
#define MSOCK_DERP_MAGIC_IP	0x7f030328U	/* 127.3.3.40: a DERP region as an address */

struct msock_peer {
	struct msock *ms;
	struct wg_peer *wp;
	struct path *path;
	uint8_t node_key[KEY_LEN];
	uint8_t disco_key[KEY_LEN];
	uint8_t shared[KEY_LEN];	/* disco box key; wiped on change and free */
	bool has_disco;
	int32_t home_derp;
	int32_t derp_route;		/* region the peer last reached us through */
	uint64_t deadline;		/* path_tick() due; UINT64_MAX = none */
	bool dirty;			/* path state changed: tick at the batch end */
	struct msock_peer *dirty_next;
	struct msock_peer *disco_next;	/* hash chain by disco key */
	struct msock_peer *next, *prev;	/* all peers */
};

struct msock_region {
	int32_t id;
	struct derpconn *conn;
};

struct msock_cli {
	uint64_t cookie;
	struct msock_peer *peer;
	msock_ping_fn fn;
	void *ctx;
	uint64_t sent;
};

struct msock {
	struct event_base *base;
	struct evdns_base *dns;
	struct dp *dp;
	const struct msock_ops *ops;
	void *ctx;
	char tun[IFNAMSIZ];
	bool derp_plain_http;

	uint8_t *disco_priv;		/* sodium_malloc: locked, guarded */
	uint8_t disco_pub[KEY_LEN];
	uint8_t *node_priv;		/* sodium_malloc; NULL until a key is set */
	uint8_t node_pub[KEY_LEN];

	struct msock_peer *peers;
	struct msock_peer *disco_map[MSOCK_DISCO_BUCKETS];
	struct msock_peer *dirty;

	struct netmap_derp_map *dm;	/* our deep copy */
	struct msock_region regions[MSOCK_MAX_REGIONS];
	size_t n_regions;
	bool control_up;

	struct netcheck *nc;
	struct event *nc_ev;
	struct event *restun_ev;
	uint64_t last_report_at;	/* when the last report finished */
	uint64_t last_active;		/* last data send to any peer */
	msock_netcheck_fn nc_fn;	/* a user's netcheck waiting */
	void *nc_ctx;
	bool nc_again;			/* a re-STUN was asked for during a report */

	struct msock_endpoint eps[MSOCK_MAX_ENDPOINTS];
	size_t n_eps;

	struct event *tick_ev;
	uint64_t tick_at;
	struct event *clean_ev;

	struct msock_cli cli[MSOCK_MAX_PINGS];
	uint64_t next_cookie;

	uint8_t derp_buf[DERP_MAX_PACKET];	/* a DERP-received WireGuard datagram, to decrypt in place */
	struct msock_stats stats;
};

static void arm_tick(struct msock *ms, uint64_t deadline);
static void run_actions(struct msock *ms, struct msock_peer *mp, struct path_actions *acts);
static void start_netcheck(struct msock *ms, bool full);

/* --- small helpers --- */

static void
random_cb(void *ctx, void *buf, size_t len)
{
	randombytes_buf(buf, len);
}

static void
derp_addr(union wg_endpoint *ep, int32_t region)
{
	memset(ep, 0, sizeof *ep);
	ep->in4.sin_family = AF_INET;
	ep->in4.sin_addr.s_addr = htonl(MSOCK_DERP_MAGIC_IP);
	ep->in4.sin_port = htons((uint16_t)region);
}

static void
evtimer_at(struct event *ev, uint64_t delay_ns)
{
	struct timeval tv = {
		.tv_sec = (time_t)(delay_ns / NSEC_PER_SEC),
		.tv_usec = (suseconds_t)(delay_ns % NSEC_PER_SEC / 1000),
	};

	evtimer_add(ev, &tv);
}

static unsigned int
disco_bucket(const uint8_t key[static KEY_LEN])
{
	return key[0] % MSOCK_DISCO_BUCKETS;
}

static struct msock_peer *
peer_by_disco(const struct msock *ms, const uint8_t key[static KEY_LEN])
{
	for (struct msock_peer *mp = ms->disco_map[disco_bucket(key)]; mp; mp = mp->disco_next)
		if (mp->has_disco && sodium_memcmp(mp->disco_key, key, KEY_LEN) == 0)
			return mp;
	return NULL;
}

static struct msock_peer *
peer_by_node(const struct msock *ms, const uint8_t key[static KEY_LEN])
{
	struct wg_peer *wp = wg_peer_lookup(dp_device(ms->dp), key);

	return wp ? wg_peer_user(wp) : NULL;
}

static void
mark_dirty(struct msock *ms, struct msock_peer *mp)
{
	if (mp->dirty)
		return;
	mp->dirty = true;
	mp->dirty_next = ms->dirty;
	ms->dirty = mp;
}

/* --- DERP regions --- */

static const struct netmap_derp_region *
region_def(const struct msock *ms, int32_t id)
{
	if (ms->dm == NULL)
		return NULL;
	for (uint32_t i = 0; i < ms->dm->n_regions; i++)
		if (ms->dm->regions[i].region_id == id)
			return &ms->dm->regions[i];
	return NULL;
}

static struct msock_region *
region_find(struct msock *ms, int32_t id)
{
	for (size_t i = 0; i < ms->n_regions; i++)
		if (ms->regions[i].id == id)
			return &ms->regions[i];
	return NULL;
}

static void
region_close(struct msock *ms, struct msock_region *r)
{
	int32_t id = r->id;

	derpconn_free(r->conn);
	*r = ms->regions[--ms->n_regions];
	/* Routes learned on that connection are gone with it (§6). */
	for (struct msock_peer *mp = ms->peers; mp; mp = mp->next)
		if (mp->derp_route == id)
			mp->derp_route = 0;
	log_debug("derp: closed region %d", (int)id);
}

static void derp_recv_cb(void *ctx, struct derpconn *c, const uint8_t src[KEY_LEN],
    const uint8_t *pkt, size_t len);
static void derp_state_cb(void *ctx, struct derpconn *c, bool up);
static void derp_gone_cb(void *ctx, struct derpconn *c, const uint8_t key[KEY_LEN],
    uint8_t reason);

static const struct derpconn_ops msock_derp_ops = {
	.recv = derp_recv_cb,
	.state = derp_state_cb,
	.peer_gone = derp_gone_cb,
};

/* The connection to region id, opened on demand; NULL if it cannot be. */
static struct derpconn *
region_conn(struct msock *ms, int32_t id)
{
	struct msock_region *r = region_find(ms, id);
	const struct netmap_derp_region *def;
	struct derpconn_cfg cfg;
	char *cause = NULL;

	if (r != NULL)
		return r->conn;
	if (ms->node_priv == NULL || ms->n_regions == MSOCK_MAX_REGIONS ||
	    (def = region_def(ms, id)) == NULL)
		return NULL;
	memset(&cfg, 0, sizeof cfg);
	cfg.region = def;
	cfg.node_priv = ms->node_priv;
	cfg.node_pub = ms->node_pub;
	cfg.fwmark = MSOCK_FWMARK;
	cfg.plain_http = ms->derp_plain_http;
	r = &ms->regions[ms->n_regions];
	r->id = id;
	r->conn = derpconn_new(ms->base, ms->dns, &cfg, &msock_derp_ops, ms, &cause);
	if (r->conn == NULL) {
		log_warn("derp: region %d: %s", (int)id, cause ? cause : "cannot connect");
		free(cause);
		return NULL;
	}
	ms->n_regions++;
	derpconn_note_preferred(r->conn, id == netcheck_home(ms->nc));
	log_debug("derp: opening region %d (%s)", (int)id, def->code);
	return r->conn;
}

static void
close_all_regions(struct msock *ms)
{
	while (ms->n_regions > 0)
		region_close(ms, &ms->regions[ms->n_regions - 1]);
}

/*
 * Sends buf to the peer via DERP: through region if given (a reply goes
 * back the way its request came), else the peer's home region, else the
 * region it last reached us through (ts#150: also when that one is open and
 * its home is not).
 */
static void
derp_send(struct msock *ms, struct msock_peer *mp, int32_t region, const uint8_t *buf, size_t len)
{
	struct derpconn *c = NULL;

	if (region == 0) {
		region = mp->home_derp ? mp->home_derp : mp->derp_route;
		if (mp->derp_route && mp->derp_route != region &&
		    region_find(ms, mp->derp_route) && region_find(ms, region) == NULL)
			region = mp->derp_route;
	}
	if (region != 0)
		c = region_conn(ms, region);
	if (c == NULL || derpconn_send(c, mp->node_key, buf, len) < 0) {
		ms->stats.derp_dropped++;
		return;
	}
	ms->stats.derp_tx++;
}

static void
clean_cb(evutil_socket_t fd, short what, void *arg)
{
	struct msock *ms = arg;
	uint64_t now = clock_mono_ns();
	int32_t home = netcheck_home(ms->nc);

	for (size_t i = 0; i < ms->n_regions;) {
		struct msock_region *r = &ms->regions[i];

		if (r->id != home && now - derpconn_last_activity(r->conn) > MSOCK_DERP_IDLE)
			region_close(ms, r);
		else
			i++;
	}
	evtimer_at(ms->clean_ev, MSOCK_DERP_CLEAN);
}

/* --- disco --- */

/* A disco message to the peer: over UDP to "to", or via DERP (region 0: the usual one). */
static void
disco_send(struct msock *ms, struct msock_peer *mp, const struct disco_msg *m,
    const union wg_endpoint *to, int32_t region)
{
	uint8_t buf[DISCO_MAX_LEN];
	size_t len;

	if (!mp->has_disco)
		return;
	len = disco_seal(buf, sizeof buf, ms->disco_pub, mp->shared, m);
	if (len == 0)
		return;
	ms->stats.disco_tx++;
	if (to != NULL)
		(void)dp_sendto(ms->dp, buf, len, to);
	else
		derp_send(ms, mp, region, buf, len);
}

static void
send_ping(struct msock *ms, struct msock_peer *mp, const struct path_action *a)
{
	struct disco_msg m = { .type = DISCO_PING, .has_node_key = true };

	memcpy(m.txid, a->txid, DISCO_TXID_LEN);
	memcpy(m.node_key, ms->node_pub, KEY_LEN);
	disco_send(ms, mp, &m, a->via_derp ? NULL : &a->to, 0);
}

static void
send_call_me_maybe(struct msock *ms, struct msock_peer *mp)
{
	struct disco_msg m = { .type = DISCO_CALL_ME_MAYBE };

	for (size_t i = 0; i < ms->n_eps && m.n_endpoints < DISCO_MAX_ENDPOINTS; i++)
		m.endpoints[m.n_endpoints++] = ms->eps[i].addr;
	/* Stale endpoints may no longer be ours: refresh them for next time (§4.6). */
	if (clock_mono_ns() - ms->last_report_at > 27 * NSEC_PER_SEC)
		start_netcheck(ms, false);
	disco_send(ms, mp, &m, NULL, 0);
}

static struct msock_cli *
cli_find(struct msock *ms, uint64_t cookie)
{
	for (size_t i = 0; i < MSOCK_MAX_PINGS; i++)
		if (ms->cli[i].fn && ms->cli[i].cookie == cookie)
			return &ms->cli[i];
	return NULL;
}

static void
cli_finish(struct msock_cli *c, const struct msock_ping_result *r)
{
	msock_ping_fn fn = c->fn;

	c->fn = NULL;
	c->peer = NULL;
	fn(c->ctx, r);
}

static void
run_actions(struct msock *ms, struct msock_peer *mp, struct path_actions *acts)
{
	for (size_t i = 0; i < acts->n; i++) {
		const struct path_action *a = &acts->a[i];
		struct msock_cli *c;

		switch (a->kind) {
		case PATH_SEND_PING:
			send_ping(ms, mp, a);
			break;
		case PATH_SEND_CALL_ME_MAYBE:
			send_call_me_maybe(ms, mp);
			break;
		case PATH_CLI_TIMEOUT:
			if ((c = cli_find(ms, a->cookie)) != NULL) {
				struct msock_ping_result r = { .err = "timeout" };

				cli_finish(c, &r);
			}
			break;
		}
	}
	acts->n = 0;
	mark_dirty(ms, mp);
}

static void
handle_pong(struct msock *ms, struct msock_peer *mp, const struct disco_msg *m,
    const union wg_endpoint *src, int32_t region, uint64_t now)
{
	struct path_pong pong;
	struct msock_cli *c;

	if (!path_on_pong(mp->path, m->txid, src, now, &pong))
		return;
	mark_dirty(ms, mp);
	if (pong.new_best) {
		char a[64];

		log_debug("magicsock: direct path to %s",
		    wg_endpoint_str(&pong.to, a, sizeof a));
	}
	if (pong.cli_answer && (c = cli_find(ms, pong.cookie)) != NULL) {
		struct msock_ping_result r = { .latency_ns = pong.latency_ns };

		if (src != NULL) {
			r.direct = true;
			r.addr = pong.to;
		} else {
			r.derp_region = region;
		}
		cli_finish(c, &r);
	}
}

/*
 * One disco message, from src over UDP or (src NULL) via DERP region from
 * the peer with node key derp_src.
 */
static void
handle_disco(struct msock *ms, const uint8_t *buf, size_t len, const union wg_endpoint *src,
    int32_t region, const uint8_t *derp_src, uint64_t now)
{
	struct msock_peer *mp = peer_by_disco(ms, disco_sender_key(buf));
	struct path_actions acts = { .n = 0 };
	struct disco_msg m;
	int r;

	if (mp == NULL) {
		ms->stats.disco_bad++;	/* not a peer of ours, or a key from before its restart */
		return;
	}
	/* Via DERP, the server vouches for the node key: it must be the same peer's. */
	if (derp_src != NULL && sodium_memcmp(mp->node_key, derp_src, KEY_LEN) != 0) {
		ms->stats.disco_bad++;
		return;
	}
	r = disco_open(buf, len, mp->shared, &m);
	if (r < 0) {
		if (r != -ENOTSUP)
			ms->stats.disco_bad++;
		return;
	}
	ms->stats.disco_rx++;
	switch (m.type) {
	case DISCO_PING: {
		struct disco_msg pong = { .type = DISCO_PONG };

		if (!path_on_ping(mp->path, src, m.txid, now))
			break;
		memcpy(pong.txid, m.txid, DISCO_TXID_LEN);
		if (src != NULL)
			pong.src = *src;
		else
			derp_addr(&pong.src, region);
		/* The answer goes back exactly the way the ping came (pitfall 9). */
		disco_send(ms, mp, &pong, src, region);
		mark_dirty(ms, mp);
		break;
	}
	case DISCO_PONG:
		handle_pong(ms, mp, &m, src, region, now);
		break;
	case DISCO_CALL_ME_MAYBE:
		if (src != NULL) {
			ms->stats.disco_bad++;	/* only ever valid via DERP */
			break;
		}
		path_on_call_me_maybe(mp->path, m.endpoints, m.n_endpoints, now, &acts);
		run_actions(ms, mp, &acts);
		break;
	}
}

/* --- the data path --- */

void
msock_send_pkt(struct msock *ms, struct wg_peer *peer, struct pkt *p)
{
	struct msock_peer *mp = wg_peer_user(peer);
	struct path_actions acts = { .n = 0 };
	struct path_route route;
	uint64_t now = clock_mono_ns();

	if (mp == NULL) {
		pkt_put(dp_pool(ms->dp), p);
		return;
	}
	ms->last_active = now;
	path_on_send(mp->path, now, &route, &acts);
	if (acts.n > 0)
		run_actions(ms, mp, &acts);
	else
		mark_dirty(ms, mp);
	if (route.derp || (!route.udp && mp->derp_route != 0))
		derp_send(ms, mp, 0, pkt_data(p), p->len);
	else if (!route.udp)
		ms->stats.no_route++;
	if (route.udp)
		dp_send(ms->dp, p, &route.addr);
	else
		pkt_put(dp_pool(ms->dp), p);
}

void
msock_send(struct msock *ms, struct wg_peer *peer, const union wg_endpoint *to,
    const uint8_t *buf, size_t len)
{
	struct msock_peer *mp = peer ? wg_peer_user(peer) : NULL;
	struct path_actions acts = { .n = 0 };
	struct path_route route;
	uint64_t now = clock_mono_ns();

	if (mp == NULL) {
		/* A cookie reply to an unauthenticated source: only over real UDP. */
		if (to != NULL && !(to->sa.sa_family == AF_INET &&
		    ntohl(to->in4.sin_addr.s_addr) == MSOCK_DERP_MAGIC_IP))
			(void)dp_sendto(ms->dp, buf, len, to);
		return;
	}
	path_on_send(mp->path, now, &route, &acts);
	if (acts.n > 0)
		run_actions(ms, mp, &acts);
	else
		mark_dirty(ms, mp);
	if (route.udp)
		(void)dp_sendto(ms->dp, buf, len, &route.addr);
	if (route.derp || (!route.udp && mp->derp_route != 0))
		derp_send(ms, mp, 0, buf, len);
	else if (!route.udp)
		ms->stats.no_route++;
}

bool
msock_classify(struct msock *ms, const uint8_t *buf, size_t len, const union wg_endpoint *src,
    uint64_t now)
{
	/* WireGuard first, the common case: a little-endian type 1-4 (§3.4). */
	if (len >= 4 && buf[0] >= 1 && buf[0] <= 4 && buf[1] == 0 && buf[2] == 0 && buf[3] == 0)
		return false;
	if (stun_looks_like(buf, len)) {
		uint8_t txid[STUN_TXID_LEN];
		union wg_endpoint mapped;

		if (stun_parse_response(buf, len, txid, &mapped) < 0 ||
		    !netcheck_on_stun(ms->nc, txid, &mapped, now))
			ms->stats.stun_bad++;
		else if (ms->nc_ev)
			event_active(ms->nc_ev, EV_TIMEOUT, 0);
		return true;
	}
	if (disco_looks_like(buf, len)) {
		handle_disco(ms, buf, len, src, 0, NULL, now);
		return true;
	}
	return false;
}

/* Runs the path timers of every peer touched in this batch, and re-arms the tick. */
void
msock_batch_end(struct msock *ms, uint64_t now)
{
	while (ms->dirty != NULL) {
		struct msock_peer *mp = ms->dirty;
		struct path_actions acts = { .n = 0 };

		ms->dirty = mp->dirty_next;
		mp->dirty = false;
		mp->deadline = path_tick(mp->path, now, &acts);
		if (acts.n > 0) {
			run_actions(ms, mp, &acts);	/* marks it dirty again */
			continue;
		}
		arm_tick(ms, mp->deadline);
	}
}

static void
arm_tick(struct msock *ms, uint64_t deadline)
{
	uint64_t now;

	if (deadline == UINT64_MAX || deadline >= ms->tick_at)
		return;
	now = clock_mono_ns();
	ms->tick_at = deadline;
	evtimer_at(ms->tick_ev, deadline > now ? deadline - now : 0);
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct msock *ms = arg;
	uint64_t now = clock_mono_ns();

	ms->tick_at = UINT64_MAX;
	for (struct msock_peer *mp = ms->peers; mp; mp = mp->next) {
		if (mp->deadline <= now)
			mark_dirty(ms, mp);
		else
			arm_tick(ms, mp->deadline);
	}
	msock_batch_end(ms, now);
	dp_changed(ms->dp);
}

/* --- DERP callbacks --- */

static void
derp_recv_cb(void *ctx, struct derpconn *c, const uint8_t src[KEY_LEN], const uint8_t *pkt,
    size_t len)
{
	struct msock *ms = ctx;
	struct msock_peer *mp = peer_by_node(ms, src);
	int32_t region = derpconn_region_id(c);
	uint64_t now = clock_mono_ns();
	union wg_endpoint from;

	netcheck_note_derp_frame(ms->nc, region, now);
	ms->stats.derp_rx++;
	if (mp == NULL || len > sizeof ms->derp_buf) {
		ms->stats.derp_dropped++;
		return;
	}
	mp->derp_route = region;
	if (disco_looks_like(pkt, len)) {
		handle_disco(ms, pkt, len, NULL, region, src, now);
	} else {
		memcpy(ms->derp_buf, pkt, len);
		derp_addr(&from, region);
		dp_receive(ms->dp, ms->derp_buf, len, &from, now);
	}
	msock_batch_end(ms, now);
	dp_changed(ms->dp);
}

static void
derp_state_cb(void *ctx, struct derpconn *c, bool up)
{
	struct msock *ms = ctx;
	int32_t id = derpconn_region_id(c);

	if (up) {
		log_info("derp: connected to region %d", (int)id);
		derpconn_note_preferred(c, id == netcheck_home(ms->nc));
		netcheck_note_derp_frame(ms->nc, id, clock_mono_ns());
	} else {
		log_info("derp: disconnected from region %d; reconnecting", (int)id);
		for (struct msock_peer *mp = ms->peers; mp; mp = mp->next)
			if (mp->derp_route == id)
				mp->derp_route = 0;
	}
}

static void
derp_gone_cb(void *ctx, struct derpconn *c, const uint8_t key[KEY_LEN], uint8_t reason)
{
	struct msock *ms = ctx;
	struct msock_peer *mp = peer_by_node(ms, key);

	/* Only "do not reply here any more" (pitfall 15). */
	if (mp != NULL && mp->derp_route == derpconn_region_id(c))
		mp->derp_route = 0;
}

/* --- netcheck and endpoints --- */

static bool
skip_local(const struct msock *ms, const struct ifaddrs *ifa)
{
	const struct sockaddr *sa = ifa->ifa_addr;

	if (sa == NULL || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
		return true;
	if (!(ifa->ifa_flags & IFF_UP) || (ifa->ifa_flags & IFF_LOOPBACK))
		return true;
	if (strcmp(ifa->ifa_name, ms->tun) == 0)
		return true;
	if (sa->sa_family == AF_INET) {
		uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);

		return (a & 0xffc00000U) == 0x64400000U;	/* 100.64.0.0/10: the tailnet */
	} else {
		const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		static const uint8_t ts6[6] = { 0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0 };

		return (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) || memcmp(a, ts6, 6) == 0;
	}
}

static bool
ep_add(struct msock *ms, const union wg_endpoint *addr, int type)
{
	for (size_t i = 0; i < ms->n_eps; i++)
		if (wg_endpoint_equal(&ms->eps[i].addr, addr))
			return false;
	if (ms->n_eps == MSOCK_MAX_ENDPOINTS)
		return false;
	ms->eps[ms->n_eps].addr = *addr;
	ms->eps[ms->n_eps].type = type;
	ms->n_eps++;
	return true;
}

/* Go's determineEndpoints (§4.2), the parts that apply: STUN first, then local addresses. */
static bool
update_endpoints(struct msock *ms)
{
	const struct netcheck_report *r = netcheck_last_report(ms->nc);
	struct msock_endpoint old[MSOCK_MAX_ENDPOINTS];
	size_t n_old = ms->n_eps;
	struct ifaddrs *ifs = NULL;
	uint16_t port = dp_port(ms->dp);
	bool changed;

	memcpy(old, ms->eps, sizeof old);
	ms->n_eps = 0;
	if (r != NULL) {
		if (r->global_v4.sa.sa_family == AF_INET)
			ep_add(ms, &r->global_v4, 2);
		if (r->global_v6.sa.sa_family == AF_INET6)
			ep_add(ms, &r->global_v6, 2);
	}
	if (getifaddrs(&ifs) == 0) {
		for (struct ifaddrs *ifa = ifs; ifa; ifa = ifa->ifa_next) {
			union wg_endpoint ep;

			if (skip_local(ms, ifa))
				continue;
			memset(&ep, 0, sizeof ep);
			if (ifa->ifa_addr->sa_family == AF_INET) {
				ep.in4 = *(const struct sockaddr_in *)ifa->ifa_addr;
				ep.in4.sin_port = htons(port);
			} else {
				ep.in6 = *(const struct sockaddr_in6 *)ifa->ifa_addr;
				ep.in6.sin6_port = htons(port);
				ep.in6.sin6_scope_id = 0;
				ep.in6.sin6_flowinfo = 0;
			}
			ep_add(ms, &ep, 1);
		}
		freeifaddrs(ifs);
	}
	changed = n_old != ms->n_eps;
	for (size_t i = 0; !changed && i < n_old; i++)
		changed = !wg_endpoint_equal(&old[i].addr, &ms->eps[i].addr);
	return changed;
}

static void
set_home(struct msock *ms, int32_t home, int32_t old)
{
	if (home == old)
		return;
	log_info("derp: home region %d -> %d", (int)old, (int)home);
	/* Tell every open connection which one is home now (stats only). */
	for (size_t i = 0; i < ms->n_regions; i++)
		derpconn_note_preferred(ms->regions[i].conn, ms->regions[i].id == home);
	if (home != 0)
		(void)region_conn(ms, home);
}

static void
report_done(struct msock *ms, int32_t old_home)
{
	const struct netcheck_report *r = netcheck_last_report(ms->nc);
	int32_t home = netcheck_home(ms->nc);
	bool changed;

	ms->last_report_at = clock_mono_ns();
	changed = update_endpoints(ms);
	if (home == 0 && ms->dm != NULL && ms->dm->n_regions > 0 && old_home == 0) {
		/* Nothing answered: pick a region anyway, so peers can reach us (§5.3 step 5). */
		for (uint32_t i = 0; i < ms->dm->n_regions; i++) {
			if (!(ms->dm->regions[i].flags & NETMAP_DERP_REGION_NO_MEASURE_NO_HOME)) {
				home = ms->dm->regions[i].region_id;
				netcheck_set_home(ms->nc, home);
				break;
			}
		}
	}
	set_home(ms, home, old_home);
	if (changed || home != old_home)
		ms->ops->netinfo_changed(ms->ctx);
	if (ms->nc_fn != NULL) {
		msock_netcheck_fn fn = ms->nc_fn;

		ms->nc_fn = NULL;
		fn(ms->nc_ctx, r);
	}
	if (ms->nc_again) {
		ms->nc_again = false;
		start_netcheck(ms, false);
	}
}

static void
send_probe(struct msock *ms, const struct netcheck_probe *pr)
{
	uint8_t req[STUN_REQ_LEN];
	union wg_endpoint dst = pr->dst;
	bool ok = false;

	if (dst.sa.sa_family == AF_UNSPEC && pr->hostname != NULL) {
		/* Only literal host names; DNS for STUN servers is not wired yet. */
		memset(&dst, 0, sizeof dst);
		if (pr->family == 4 && inet_pton(AF_INET, pr->hostname, &dst.in4.sin_addr) == 1) {
			dst.in4.sin_family = AF_INET;
			dst.in4.sin_port = htons(pr->port);
		} else if (pr->family == 6 &&
		    inet_pton(AF_INET6, pr->hostname, &dst.in6.sin6_addr) == 1) {
			dst.in6.sin6_family = AF_INET6;
			dst.in6.sin6_port = htons(pr->port);
		}
	}
	if (dst.sa.sa_family != AF_UNSPEC) {
		stun_build_request(req, pr->txid);
		ok = dp_sendto(ms->dp, req, sizeof req, &dst) == 0;
	}
	netcheck_sent(ms->nc, pr->txid, ok);
}

static void
nc_cb(evutil_socket_t fd, short what, void *arg)
{
	struct msock *ms = arg;
	struct netcheck_probe probes[MSOCK_NC_PROBES];
	int32_t old_home = netcheck_home(ms->nc);
	uint64_t now = clock_mono_ns(), next;
	size_t n;

	if (netcheck_state(ms->nc) != NETCHECK_RUNNING)
		return;
	do {
		n = netcheck_due(ms->nc, now, probes, ARRAY_SIZE(probes), &next);
		for (size_t i = 0; i < n; i++)
			send_probe(ms, &probes[i]);
	} while (n == ARRAY_SIZE(probes));
	if (netcheck_state(ms->nc) == NETCHECK_DONE) {
		report_done(ms, old_home);
		return;
	}
	if (next != UINT64_MAX)
		evtimer_at(ms->nc_ev, next > now ? next - now : 0);
}

static bool
have_family(int family)
{
	struct ifaddrs *ifs = NULL;
	bool found = false;

	if (getifaddrs(&ifs) < 0)
		return family == AF_INET;
	for (struct ifaddrs *ifa = ifs; ifa && !found; ifa = ifa->ifa_next)
		found = ifa->ifa_addr && ifa->ifa_addr->sa_family == family &&
		    !(ifa->ifa_flags & IFF_LOOPBACK) && (ifa->ifa_flags & IFF_UP);
	freeifaddrs(ifs);
	return found;
}

static void
start_netcheck(struct msock *ms, bool full)
{
	struct netcheck_opts o = { 0 };

	if (ms->dm == NULL)
		return;
	if (netcheck_state(ms->nc) == NETCHECK_RUNNING) {
		ms->nc_again = true;
		return;
	}
	o.have_v4 = have_family(AF_INET);
	o.have_v6 = have_family(AF_INET6);
	o.os_has_ipv6 = o.have_v6;
	o.force_full = full;
	if (netcheck_start(ms->nc, ms->dm, &o, clock_mono_ns()) < 0)
		return;
	event_active(ms->nc_ev, EV_TIMEOUT, 0);
}

static void
restun_cb(evutil_socket_t fd, short what, void *arg)
{
	struct msock *ms = arg;
	uint64_t now = clock_mono_ns();

	/* Only while peers are talking (§4.2): an idle node stays quiet. */
	if (ms->peers != NULL && now - ms->last_active < 45 * NSEC_PER_SEC)
		start_netcheck(ms, now - ms->last_report_at > MSOCK_FULL_EVERY);
	evtimer_at(ms->restun_ev, MSOCK_RESTUN_MIN + randombytes_uniform(
	    (uint32_t)(MSOCK_RESTUN_JITTER / 1000000)) * 1000000ULL);
}

/* --- the public interface --- */

static struct netmap_derp_map *
derp_map_copy(const struct netmap_derp_map *dm)
{
	struct netmap_derp_map *c = xcalloc(1, sizeof *c);
	struct netmap_derp_region *regs;
	struct netmap_derp_score *scores;

	regs = xcalloc(dm->n_regions ? dm->n_regions : 1, sizeof *regs);
	for (uint32_t i = 0; i < dm->n_regions; i++) {
		const struct netmap_derp_region *s = &dm->regions[i];
		struct netmap_derp_node *nodes = xcalloc(s->n_nodes ? s->n_nodes : 1,
		    sizeof *nodes);

		regs[i] = *s;
		regs[i].code = xstrdup(s->code);
		regs[i].name = xstrdup(s->name);
		for (uint32_t j = 0; j < s->n_nodes; j++) {
			nodes[j] = s->nodes[j];
			nodes[j].name = xstrdup(s->nodes[j].name);
			nodes[j].hostname = xstrdup(s->nodes[j].hostname);
			nodes[j].cert_name = xstrdup(s->nodes[j].cert_name);
			nodes[j].ipv4 = xstrdup(s->nodes[j].ipv4);
			nodes[j].ipv6 = xstrdup(s->nodes[j].ipv6);
		}
		regs[i].nodes = nodes;
	}
	scores = xcalloc(dm->n_scores ? dm->n_scores : 1, sizeof *scores);
	if (dm->n_scores > 0)
		memcpy(scores, dm->scores, dm->n_scores * sizeof *scores);
	*c = *dm;
	c->regions = regs;
	c->scores = scores;
	return c;
}

static void
derp_map_free(struct netmap_derp_map *dm)
{
	if (dm == NULL)
		return;
	for (uint32_t i = 0; i < dm->n_regions; i++) {
		const struct netmap_derp_region *r = &dm->regions[i];

		for (uint32_t j = 0; j < r->n_nodes; j++) {
			free((char *)r->nodes[j].name);
			free((char *)r->nodes[j].hostname);
			free((char *)r->nodes[j].cert_name);
			free((char *)r->nodes[j].ipv4);
			free((char *)r->nodes[j].ipv6);
		}
		free((void *)r->nodes);
		free((char *)r->code);
		free((char *)r->name);
	}
	free((void *)dm->regions);
	free((void *)dm->scores);
	free(dm);
}

void
msock_set_derp_map(struct msock *ms, const struct netmap_derp_map *dm)
{
	int32_t home = netcheck_home(ms->nc);

	/* Connections are tied to the old definitions: reopen on demand (§1.3). */
	close_all_regions(ms);
	netcheck_abort(ms->nc);
	derp_map_free(ms->dm);
	ms->dm = dm ? derp_map_copy(dm) : NULL;
	if (ms->dm == NULL) {
		netcheck_set_home(ms->nc, 0);
		return;
	}
	if (home != 0 && region_def(ms, home) != NULL)
		(void)region_conn(ms, home);
	else
		netcheck_set_home(ms->nc, 0);
	start_netcheck(ms, true);
}

void
msock_set_control(struct msock *ms, bool connected)
{
	ms->control_up = connected;
	netcheck_set_control(ms->nc, connected);
}

void
msock_link_changed(struct msock *ms)
{
	for (struct msock_peer *mp = ms->peers; mp; mp = mp->next) {
		path_note_connectivity_change(mp->path);
		mark_dirty(ms, mp);
	}
	if (update_endpoints(ms))
		ms->ops->netinfo_changed(ms->ctx);
	start_netcheck(ms, true);
}

void
msock_set_node_key(struct msock *ms, const uint8_t *priv)
{
	uint8_t pub[KEY_LEN];

	if (priv != NULL) {
		crypto_scalarmult_curve25519_base(pub, priv);
		if (ms->node_priv != NULL && sodium_memcmp(pub, ms->node_pub, KEY_LEN) == 0)
			return;
	} else if (ms->node_priv == NULL) {
		return;
	}
	/* DERP knows us by this key: every connection starts over with the new one. */
	close_all_regions(ms);
	if (ms->node_priv != NULL) {
		sodium_free(ms->node_priv);
		ms->node_priv = NULL;
	}
	memset(ms->node_pub, 0, KEY_LEN);
	if (priv == NULL)
		return;
	ms->node_priv = sodium_malloc(KEY_LEN);
	if (ms->node_priv == NULL)
		fatal("out of memory");
	memcpy(ms->node_priv, priv, KEY_LEN);
	memcpy(ms->node_pub, pub, KEY_LEN);
	if (netcheck_home(ms->nc) != 0)
		(void)region_conn(ms, netcheck_home(ms->nc));
}

void
msock_disco_public(const struct msock *ms, uint8_t out[static KEY_LEN])
{
	memcpy(out, ms->disco_pub, KEY_LEN);
}

struct msock_peer *
msock_peer_new(struct msock *ms, struct wg_peer *wp, const uint8_t node_key[static KEY_LEN])
{
	struct msock_peer *mp = xcalloc(1, sizeof *mp);

	mp->ms = ms;
	mp->wp = wp;
	mp->path = path_new(random_cb, NULL);
	mp->deadline = UINT64_MAX;
	memcpy(mp->node_key, node_key, KEY_LEN);
	mp->next = ms->peers;
	if (ms->peers)
		ms->peers->prev = mp;
	ms->peers = mp;
	wg_peer_set_user(wp, mp);
	return mp;
}

static void
disco_unlink(struct msock *ms, struct msock_peer *mp)
{
	struct msock_peer **pp;

	if (!mp->has_disco)
		return;
	for (pp = &ms->disco_map[disco_bucket(mp->disco_key)]; *pp; pp = &(*pp)->disco_next) {
		if (*pp == mp) {
			*pp = mp->disco_next;
			break;
		}
	}
	mp->has_disco = false;
	sodium_memzero(mp->shared, sizeof mp->shared);
}

void
msock_peer_update(struct msock_peer *mp, const struct netmap_node *n)
{
	struct msock *ms = mp->ms;
	union wg_endpoint eps[64];
	size_t neps = 0;
	bool has_disco = !key_is_zero(n->disco);

	if (has_disco != mp->has_disco ||
	    (has_disco && sodium_memcmp(n->disco, mp->disco_key, KEY_LEN) != 0)) {
		disco_unlink(ms, mp);
		if (has_disco && disco_shared_key(mp->shared, n->disco, ms->disco_priv)) {
			memcpy(mp->disco_key, n->disco, KEY_LEN);
			mp->has_disco = true;
			mp->disco_next = ms->disco_map[disco_bucket(mp->disco_key)];
			ms->disco_map[disco_bucket(mp->disco_key)] = mp;
		}
	}
	/* WireGuard-only peers have no DERP and no disco (pitfall 18). */
	mp->home_derp = (n->flags & NETMAP_NODE_WIREGUARD_ONLY) ? 0 : n->home_derp;
	path_set_disco(mp->path, mp->has_disco);
	path_set_derp(mp->path, mp->home_derp != 0);
	for (uint16_t i = 0; i < n->n_endpoints && neps < ARRAY_SIZE(eps); i++) {
		const struct netmap_addrport *a = &n->endpoints[i];
		union wg_endpoint *ep = &eps[neps];

		memset(ep, 0, sizeof *ep);
		if (a->family == 4) {
			ep->in4.sin_family = AF_INET;
			memcpy(&ep->in4.sin_addr, a->addr, 4);
			ep->in4.sin_port = htons(a->port);
		} else {
			ep->in6.sin6_family = AF_INET6;
			memcpy(&ep->in6.sin6_addr, a->addr, 16);
			ep->in6.sin6_port = htons(a->port);
		}
		neps++;
	}
	path_set_endpoints(mp->path, eps, neps, clock_mono_ns());
	mark_dirty(ms, mp);
}

void
msock_peer_free(struct msock_peer *mp)
{
	struct msock *ms;

	if (mp == NULL)
		return;
	ms = mp->ms;
	for (size_t i = 0; i < MSOCK_MAX_PINGS; i++) {
		if (ms->cli[i].fn && ms->cli[i].peer == mp) {
			struct msock_ping_result r = { .err = "peer went away" };

			cli_finish(&ms->cli[i], &r);
		}
	}
	disco_unlink(ms, mp);
	if (mp->dirty) {
		struct msock_peer **pp;

		for (pp = &ms->dirty; *pp; pp = &(*pp)->dirty_next) {
			if (*pp == mp) {
				*pp = mp->dirty_next;
				break;
			}
		}
	}
	if (mp->prev)
		mp->prev->next = mp->next;
	else
		ms->peers = mp->next;
	if (mp->next)
		mp->next->prev = mp->prev;
	wg_peer_set_user(mp->wp, NULL);
	path_free(mp->path);
	free(mp);
}

void
msock_peer_status(const struct msock_peer *mp, struct msock_peer_status *out)
{
	bool trusted = false;

	memset(out, 0, sizeof *out);
	out->direct = path_best(mp->path, &out->addr, NULL, &trusted, clock_mono_ns()) &&
	    trusted;
	if (!out->direct)
		out->derp_region = mp->home_derp ? mp->home_derp : mp->derp_route;
}

size_t
msock_endpoints(const struct msock *ms, struct msock_endpoint *out, size_t cap)
{
	size_t n = MIN(cap, ms->n_eps);

	memcpy(out, ms->eps, n * sizeof *out);
	return n;
}

int32_t
msock_home(const struct msock *ms)
{
	return netcheck_home(ms->nc);
}

const struct netmap_derp_map *
msock_derp_map(const struct msock *ms)
{
	return ms->dm;
}

const struct netcheck_report *
msock_report(const struct msock *ms)
{
	return netcheck_last_report(ms->nc);
}

int
msock_ping(struct msock *ms, struct msock_peer *mp, msock_ping_fn done, void *ctx)
{
	struct path_actions acts = { .n = 0 };
	struct msock_cli *c = NULL;

	for (size_t i = 0; i < MSOCK_MAX_PINGS && c == NULL; i++)
		if (ms->cli[i].fn == NULL)
			c = &ms->cli[i];
	if (c == NULL)
		return -EBUSY;
	c->cookie = ++ms->next_cookie;
	if (!path_cli_ping(mp->path, clock_mono_ns(), c->cookie, &acts))
		return -EHOSTUNREACH;
	c->peer = mp;
	c->fn = done;
	c->ctx = ctx;
	run_actions(ms, mp, &acts);
	msock_batch_end(ms, clock_mono_ns());
	return 0;
}

void
msock_ping_cancel(struct msock *ms, void *ctx)
{
	for (size_t i = 0; i < MSOCK_MAX_PINGS; i++)
		if (ms->cli[i].fn && ms->cli[i].ctx == ctx)
			ms->cli[i].fn = NULL;
}

int
msock_netcheck(struct msock *ms, msock_netcheck_fn done, void *ctx)
{
	if (ms->dm == NULL)
		return -ENOENT;
	if (ms->nc_fn != NULL)
		return -EBUSY;
	ms->nc_fn = done;
	ms->nc_ctx = ctx;
	if (netcheck_state(ms->nc) == NETCHECK_RUNNING)
		return 0;	/* this one will do */
	start_netcheck(ms, true);
	if (netcheck_state(ms->nc) != NETCHECK_RUNNING) {
		ms->nc_fn = NULL;
		return -EAGAIN;
	}
	return 0;
}

void
msock_netcheck_cancel(struct msock *ms, void *ctx)
{
	if (ms->nc_fn != NULL && ms->nc_ctx == ctx)
		ms->nc_fn = NULL;
}

void
msock_get_stats(const struct msock *ms, struct msock_stats *out)
{
	*out = ms->stats;
}

void
msock_derp_stats(const struct msock *ms, struct derpconn_stats *sum, size_t *n_up,
    size_t *n_open)
{
	memset(sum, 0, sizeof *sum);
	*n_up = 0;
	*n_open = ms->n_regions;
	for (size_t i = 0; i < ms->n_regions; i++) {
		struct derpconn_stats st;

		derpconn_stats(ms->regions[i].conn, &st);
		sum->rx_frames += st.rx_frames;
		sum->rx_bytes += st.rx_bytes;
		sum->rx_packets += st.rx_packets;
		sum->tx_frames += st.tx_frames;
		sum->tx_bytes += st.tx_bytes;
		sum->tx_packets += st.tx_packets;
		sum->bad_frames += st.bad_frames;
		sum->skipped_frames += st.skipped_frames;
		sum->drops_queue += st.drops_queue;
		sum->drops_output += st.drops_output;
		sum->drops_too_big += st.drops_too_big;
		sum->connects += st.connects;
		sum->disconnects += st.disconnects;
		sum->failures += st.failures;
		sum->reconnects += st.reconnects;
		*n_up += derpconn_is_up(ms->regions[i].conn);
	}
}

struct msock *
msock_new(struct event_base *base, struct evdns_base *dns, struct dp *dp,
    const struct msock_cfg *cfg, const struct msock_ops *ops, void *ctx)
{
	struct msock *ms = xcalloc(1, sizeof *ms);

	ms->base = base;
	ms->dns = dns;
	ms->dp = dp;
	ms->ops = ops;
	ms->ctx = ctx;
	ms->tick_at = UINT64_MAX;
	ms->derp_plain_http = cfg->derp_plain_http;
	ms->control_up = true;
	snprintf(ms->tun, sizeof ms->tun, "%s", cfg->tun);
	ms->disco_priv = sodium_malloc(KEY_LEN);
	if (ms->disco_priv == NULL)
		fatal("out of memory");
	/* A fresh disco key per start, as tailscaled does. */
	randombytes_buf(ms->disco_priv, KEY_LEN);
	crypto_scalarmult_curve25519_base(ms->disco_pub, ms->disco_priv);
	ms->nc = netcheck_new(random_cb, NULL);
	ms->nc_ev = evtimer_new(base, nc_cb, ms);
	ms->restun_ev = evtimer_new(base, restun_cb, ms);
	ms->tick_ev = evtimer_new(base, tick_cb, ms);
	ms->clean_ev = evtimer_new(base, clean_cb, ms);
	evtimer_at(ms->restun_ev, MSOCK_RESTUN_MIN);
	evtimer_at(ms->clean_ev, MSOCK_DERP_CLEAN);
	(void)update_endpoints(ms);
	return ms;
}

void
msock_free(struct msock *ms)
{
	if (ms == NULL)
		return;
	for (size_t i = 0; i < MSOCK_MAX_PINGS; i++) {
		if (ms->cli[i].fn) {
			struct msock_ping_result r = { .err = "shutting down" };

			cli_finish(&ms->cli[i], &r);
		}
	}
	while (ms->peers)
		msock_peer_free(ms->peers);
	close_all_regions(ms);
	derp_map_free(ms->dm);
	netcheck_free(ms->nc);
	event_free(ms->nc_ev);
	event_free(ms->restun_ev);
	event_free(ms->tick_ev);
	event_free(ms->clean_ev);
	if (ms->node_priv)
		sodium_free(ms->node_priv);
	sodium_free(ms->disco_priv);
	free(ms);
}

/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_MAGICSOCK_H
#define MESHD_MAGICSOCK_H

/*
 * magicsock: how WireGuard datagrams reach tailnet peers.
 *
 * It sits under the WireGuard data path (wg/dp.h) and shares its UDP
 * sockets: it sees every received datagram first and keeps the STUN and
 * disco ones, and it decides where each outgoing datagram goes -- the
 * peer's best direct UDP address, the peer's home DERP region, or both
 * while a direct path is being found (derp_disco.md §4).
 *
 * The pieces it drives are sans-I/O cores: path.c (per-peer path choice),
 * netcheck.c (STUN, home region), disco.c and stun.c (codecs); the DERP
 * connections are derpconn.c.  Everything runs on the caller's event loop.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/keys.h"
#include "common/pkt.h"
#include "wg/wg.h"

struct event_base;
struct evdns_base;
struct dp;
struct msock;
struct msock_peer;
struct netmap_derp_map;
struct netmap_node;
struct netcheck_report;

#define MSOCK_FWMARK		0x80000U	/* as tailscaled: our own traffic skips table 52 */
#define MSOCK_MAX_ENDPOINTS	16

struct msock_cfg {
	const char *tun;		/* not an endpoint */
	bool derp_plain_http;		/* MESHD_DEBUG_USE_DERP_HTTP: DERP without TLS */
};

struct msock_ops {
	/* Our endpoints or home region changed: tell control (msock_endpoints, msock_report). */
	void (*netinfo_changed)(void *ctx);
};

struct msock *msock_new(struct event_base *base, struct evdns_base *dns, struct dp *dp,
    const struct msock_cfg *cfg, const struct msock_ops *ops, void *ctx);
void msock_free(struct msock *ms);	/* NULL-safe */

/* Our disco key pair lives here (a fresh one per process, as tailscaled's). */
void msock_disco_public(const struct msock *ms, uint8_t out[static KEY_LEN]);
/* The node key DERP identifies us by; NULL disconnects from DERP. */
void msock_set_node_key(struct msock *ms, const uint8_t *priv);

/* The DERP map (NULL: none, close every region). */
void msock_set_derp_map(struct msock *ms, const struct netmap_derp_map *dm);
/* Whether the control stream is up: the home region never moves while it is not. */
void msock_set_control(struct msock *ms, bool connected);
/* The network changed (an address came or went): re-STUN and re-ping. */
void msock_link_changed(struct msock *ms);

/* --- peers --- */

struct msock_peer *msock_peer_new(struct msock *ms, struct wg_peer *wp,
    const uint8_t node_key[static KEY_LEN]);
/* Disco key, home region and endpoints from the peer's netmap node. */
void msock_peer_update(struct msock_peer *mp, const struct netmap_node *n);
void msock_peer_free(struct msock_peer *mp);	/* NULL-safe; fails its pending pings */

struct msock_peer_status {
	bool direct;
	union wg_endpoint addr;		/* when direct */
	int32_t derp_region;		/* the region we would use now, 0 if none */
};
void msock_peer_status(const struct msock_peer *mp, struct msock_peer_status *out);

/* --- the data path (struct dp_hooks of the engine call these) --- */

void msock_send_pkt(struct msock *ms, struct wg_peer *peer, struct pkt *p);
void msock_send(struct msock *ms, struct wg_peer *peer, const union wg_endpoint *to,
    const uint8_t *buf, size_t len);
bool msock_classify(struct msock *ms, const uint8_t *buf, size_t len,
    const union wg_endpoint *src, uint64_t now);
void msock_batch_end(struct msock *ms, uint64_t now);

/* --- what we report and show --- */

struct msock_endpoint {
	union wg_endpoint addr;
	int type;			/* tailcfg.EndpointType: 1 local, 2 STUN */
};
size_t msock_endpoints(const struct msock *ms, struct msock_endpoint *out, size_t cap);
int32_t msock_home(const struct msock *ms);
const struct netcheck_report *msock_report(const struct msock *ms);
/* Our copy of the DERP map, or NULL. */
const struct netmap_derp_map *msock_derp_map(const struct msock *ms);

/* --- user requests --- */

struct msock_ping_result {
	const char *err;		/* NULL on success */
	uint64_t latency_ns;
	bool direct;
	union wg_endpoint addr;		/* when direct */
	int32_t derp_region;		/* when via DERP */
};
typedef void (*msock_ping_fn)(void *ctx, const struct msock_ping_result *r);
/* One disco ping; done is called once (a pong, a timeout, or the peer went away). */
int msock_ping(struct msock *ms, struct msock_peer *mp, msock_ping_fn done, void *ctx);
void msock_ping_cancel(struct msock *ms, void *ctx);

typedef void (*msock_netcheck_fn)(void *ctx, const struct netcheck_report *r);
/* A full netcheck now; done with the report (NULL if it could not run). */
int msock_netcheck(struct msock *ms, msock_netcheck_fn done, void *ctx);
void msock_netcheck_cancel(struct msock *ms, void *ctx);

struct msock_stats {
	uint64_t disco_rx, disco_tx;
	uint64_t disco_bad;		/* unknown sender, failed to open, malformed */
	uint64_t stun_bad;		/* unparsable, or an unknown transaction */
	uint64_t derp_rx, derp_tx;
	uint64_t derp_dropped;		/* no region to send to */
	uint64_t no_route;		/* a datagram with no UDP path and no DERP */
};
void msock_get_stats(const struct msock *ms, struct msock_stats *out);

/* DERP counters summed over the open region connections, and how many are up. */
struct derpconn_stats;
void msock_derp_stats(const struct msock *ms, struct derpconn_stats *sum, size_t *n_up,
    size_t *n_open);

#endif

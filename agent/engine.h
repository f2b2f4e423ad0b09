/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_ENGINE_H
#define MESHD_ENGINE_H

/*
 * The engine: the tailnet data plane of a Running node.  It owns the TUN
 * device, the WireGuard device, magicsock (UDP, DERP, disco, STUN) and the
 * routes and policy rules, and keeps all of them in step with the netmap.
 *
 * node.c creates it when the node starts and frees it on down/logout;
 * the local API asks it for per-peer path state, pings and netcheck.
 */

#include <stdbool.h>
#include <stdint.h>

#include "common/keys.h"

struct event_base;
struct evdns_base;
struct netmap;
struct netmap_derp_map;
struct netcheck_report;
struct ctl_netinfo;
struct engine;

struct engine_cfg {
	const char *tun;		/* TUN device name */
	uint16_t port;			/* UDP port for WireGuard/disco/STUN; 0 = any */
	unsigned int mtu;		/* TUN MTU */
};

/* What the engine tells its owner. */
struct engine_ops {
	/* Our endpoints or home DERP changed: see engine_netinfo(). */
	void (*netinfo_changed)(void *ctx);
};

/*
 * Creates the TUN device and the UDP sockets; with no netmap yet there are
 * no peers and no DERP connections.  NULL with *cause set on failure.
 */
struct engine *engine_new(struct event_base *base, struct evdns_base *dns,
    const struct engine_cfg *cfg, const struct engine_ops *ops, void *ctx, char **cause);
/* Tears everything down and removes routes and rules.  NULL-safe. */
void engine_free(struct engine *e);

int engine_ifindex(const struct engine *e);
/* Our disco public key, for MapRequest.DiscoKey (fresh per process). */
void engine_disco_public(const struct engine *e, uint8_t out[static KEY_LEN]);

/*
 * Brings the data plane in step with the netmap (changed: mask of enum
 * netmap_changed; 0 = everything).  node_priv is the node key control
 * knows us by (borrowed, locked memory).  A NULL nm stops it: no peers, no
 * DERP, no routes or rules.
 */
void engine_set_netmap(struct engine *e, const struct netmap *nm, uint32_t changed,
    const uint8_t *node_priv);
/* Whether the control stream is up (the home DERP never moves while it is not). */
void engine_set_control(struct engine *e, bool connected);

/* What the next MapRequest reports: endpoints, home DERP, NetInfo. */
void engine_netinfo(const struct engine *e, struct ctl_netinfo *out);
int32_t engine_preferred_derp(const struct engine *e);
/* The last netcheck report, or NULL. */
const struct netcheck_report *engine_last_report(const struct engine *e);

/*
 * Counters of the data plane in Prometheus text (meshd_*): packets, drops
 * by reason, bad input from the network, DERP.  Caller frees.
 */
char *engine_metrics(const struct engine *e);

/* --- status --- */

struct engine_peer_status {
	char cur_addr[64];		/* direct "ip:port" in use, "" if via DERP or idle */
	int32_t derp_region;		/* region we reach it through, 0 if none */
	uint64_t rx_bytes, tx_bytes;
	int64_t last_handshake_ms;	/* Unix ms; 0 = never */
	bool active;			/* traffic within the last 2 minutes */
};
bool engine_peer_status(const struct engine *e, const uint8_t node_key[static KEY_LEN],
    struct engine_peer_status *out);

/* --- ping (disco) --- */

struct engine_ping_result {
	const char *err;		/* NULL on success */
	uint64_t latency_ns;
	char endpoint[64];		/* "ip:port" when the pong came directly */
	int32_t derp_region;		/* the region when it came via DERP */
};
typedef void (*engine_ping_fn)(void *ctx, const struct engine_ping_result *r);
/*
 * Sends one disco ping to the peer (to its best path, or to every
 * candidate and via DERP, as `tailscale ping` does) and calls done once:
 * with the first pong, or with err set: "timeout" when no pong came within
 * disco's ping timeout (5 s), or why it could not be sent.  Returns 0,
 * -ENOENT if the peer is unknown, -EHOSTUNREACH if it has no path at all.
 */
int engine_ping(struct engine *e, const uint8_t node_key[static KEY_LEN], engine_ping_fn done,
    void *ctx);
/* Forgets every pending ping registered with ctx (its client went away). */
void engine_ping_cancel(struct engine *e, void *ctx);

/* --- netcheck --- */

typedef void (*engine_netcheck_fn)(void *ctx, const struct netcheck_report *r,
    const struct netmap_derp_map *dm);
/* Runs a full netcheck now and calls done with the report.  0 or -errno. */
int engine_netcheck(struct engine *e, engine_netcheck_fn done, void *ctx);
void engine_netcheck_cancel(struct engine *e, void *ctx);

#endif

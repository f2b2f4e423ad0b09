/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_DP_H
#define MESHD_DP_H

/*
 * The WireGuard data path: a TUN device, one UDP socket per address family
 * and a WireGuard device, moved by one libevent loop with the kernel's
 * offloads doing the per-packet work where it can (perf.md §1.1):
 *  - the TUN is opened with IFF_VNET_HDR and TSO, so one read() returns a
 *    TCP super-packet of up to 64 KiB, which offload_split() cuts into
 *    MTU-sized packets;
 *  - encrypted datagrams to one endpoint leave as one UDP GSO send
 *    (UDP_SEGMENT), many of them per sendmmsg();
 *  - UDP_GRO hands us runs of datagrams in one buffer, many per recvmmsg(),
 *    which are decrypted in place;
 *  - decrypted TCP segments of one flow are coalesced back into a
 *    super-packet for a single TUN write.
 * Packet buffers come from a pool sized at start-up; nothing on the packet
 * path allocates.
 *
 * Where datagrams go is the host's decision (struct dp_hooks): plain
 * WireGuard (`meshd wg`) sends to the peer's endpoint; the tailnet engine
 * lets magicsock choose a UDP path or DERP.  The host also sees every
 * received datagram that is not WireGuard (STUN, disco).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/pkt.h"
#include "wg/wg.h"

struct event_base;
struct dp;

struct dp_hooks {
	/* An encrypted data datagram for peer: pass it to dp_send() or pkt_put() it. */
	void (*send_pkt)(void *ctx, struct wg_peer *peer, struct pkt *p);
	/*
	 * A handshake, cookie reply or keepalive (rare; buf valid during the
	 * call).  peer is NULL for a cookie reply to an unauthenticated source.
	 */
	void (*send)(void *ctx, struct wg_peer *peer, const union wg_endpoint *to,
	    const uint8_t *buf, size_t len);
	/*
	 * A received UDP datagram, before WireGuard sees it: return true if it
	 * was something else (STUN, disco) and is consumed.  May be NULL.
	 */
	bool (*classify)(void *ctx, const uint8_t *buf, size_t len, const union wg_endpoint *src,
	    uint64_t now);
	/* Runs after each batch of packets, before the send queue is flushed.  May be NULL. */
	void (*batch_end)(void *ctx, uint64_t now);
};

struct dp_cfg {
	const char *ifname;		/* TUN name; created if missing */
	uint16_t port;			/* UDP port; 0 = any */
	uint32_t fwmark;		/* SO_MARK of the UDP sockets; 0 = none */
	unsigned int mtu;		/* set this MTU on the TUN; 0 = keep it (1420 if fresh) */
};

/* Returns NULL with *cause set (caller frees). */
struct dp *dp_new(struct event_base *base, const struct dp_cfg *cfg, const struct dp_hooks *hooks,
    void *ctx, char **cause);
void dp_free(struct dp *dp);	/* NULL-safe */

struct wg_device *dp_device(const struct dp *dp);
const char *dp_ifname(const struct dp *dp);
struct pkt_pool *dp_pool(struct dp *dp);
bool dp_offloads(const struct dp *dp);

uint16_t dp_port(const struct dp *dp);
/* Rebinds both sockets to port (0 = any).  0 or -errno. */
int dp_set_port(struct dp *dp, uint16_t port);
uint32_t dp_fwmark(const struct dp *dp);
int dp_set_fwmark(struct dp *dp, uint32_t mark);

/* Queues a datagram for a batched send; takes p.  A NULL to drops it. */
void dp_send(struct dp *dp, struct pkt *p, const union wg_endpoint *to);
/* Sends one datagram now (disco, STUN, handshakes).  0 or -errno. */
int dp_sendto(struct dp *dp, const uint8_t *buf, size_t len, const union wg_endpoint *to);

/*
 * A WireGuard datagram that arrived by another way (DERP): decrypts and
 * delivers it as if it came from src.  msg is modified in place.
 */
void dp_receive(struct dp *dp, uint8_t *msg, size_t len, const union wg_endpoint *src, uint64_t now);

/* Flushes queued sends and re-arms the WireGuard timer after the host changed the device. */
void dp_changed(struct dp *dp);

struct dp_stats {
	uint64_t tun_dropped;		/* no buffer, or TUN write failed */
	uint64_t udp_dropped;		/* sendmmsg failed or no destination */
};
void dp_get_stats(const struct dp *dp, struct dp_stats *out);

#endif

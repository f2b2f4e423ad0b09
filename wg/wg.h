/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_WG_H
#define MESHD_WG_H

/*
 * The WireGuard protocol core.
 *
 * It does no I/O and reads no clock: its inputs are datagrams, packets and
 * "now" (monotonic nanoseconds); its outputs are return values and calls
 * through struct wg_ops.  It keeps no globals, so a test can run two devices
 * against each other in one process with a fake clock.
 *
 * Ownership of packet buffers (struct pkt, common/pkt.h):
 *  - wg_encrypt() either hands the buffer back ready to send, takes it into
 *    the peer's staging queue, or hands it back for the caller to free.
 *  - Staged packets leave through wg_ops.send_pkt(), which takes ownership.
 *  - wg_receive() works on the caller's buffer and never keeps it.
 */

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/keys.h"
#include "common/pkt.h"

#define WG_KEY_LEN KEY_LEN

/* Message types and sizes (wireguard-go device/noise-protocol.go). */
enum {
	WG_MSG_INITIATION = 1,
	WG_MSG_RESPONSE = 2,
	WG_MSG_COOKIE = 3,
	WG_MSG_DATA = 4,
};
#define WG_INITIATION_LEN	148
#define WG_RESPONSE_LEN		92
#define WG_COOKIE_LEN		64
#define WG_DATA_HEADER_LEN	16
#define WG_TAG_LEN		16
#define WG_DATA_MIN_LEN		(WG_DATA_HEADER_LEN + WG_TAG_LEN)
#define WG_OVERHEAD		(WG_DATA_HEADER_LEN + WG_TAG_LEN)

/* Timer constants, in nanoseconds unless named otherwise (whitepaper §6). */
#define WG_REKEY_AFTER_MESSAGES		(1ULL << 60)
#define WG_REJECT_AFTER_MESSAGES	(UINT64_MAX - (1ULL << 13))
#define WG_REKEY_AFTER_TIME		(120ULL * 1000000000ULL)
#define WG_REJECT_AFTER_TIME		(180ULL * 1000000000ULL)
#define WG_REKEY_ATTEMPT_TIME		(90ULL * 1000000000ULL)
#define WG_REKEY_TIMEOUT		(5ULL * 1000000000ULL)
#define WG_KEEPALIVE_TIMEOUT		(10ULL * 1000000000ULL)
#define WG_COOKIE_REFRESH_TIME		(120ULL * 1000000000ULL)
#define WG_JITTER_MAX			(334ULL * 1000000ULL)
#define WG_MAX_TIMER_HANDSHAKES		(WG_REKEY_ATTEMPT_TIME / WG_REKEY_TIMEOUT)
#define WG_MAX_STAGED			128
#define WG_MAX_PEERS			(1U << 16)

union wg_endpoint {
	struct sockaddr sa;
	struct sockaddr_in in4;
	struct sockaddr_in6 in6;
};

struct wg_device;
struct wg_peer;

/* What the core asks of its host.  All calls happen inside core functions. */
struct wg_ops {
	/*
	 * Sends a datagram (a handshake message, cookie reply or keepalive) to
	 * the peer.  buf is valid only during the call.  peer is NULL for a
	 * cookie reply to an unauthenticated source; then "to" is its address.
	 */
	void (*send)(void *ctx, struct wg_peer *peer, const union wg_endpoint *to,
	    const uint8_t *buf, size_t len);
	/* Sends an encrypted staged packet; ownership of p passes to the host. */
	void (*send_pkt)(void *ctx, struct wg_peer *peer, struct pkt *p);
	/* Wall-clock nanoseconds since the epoch, for TAI64N timestamps. */
	uint64_t (*realtime)(void *ctx);
	/* Fills buf with cryptographically secure random bytes. */
	void (*random)(void *ctx, void *buf, size_t len);
};

/* Counters of dropped and exceptional input, per device. */
struct wg_stats {
	uint64_t rx_short;		/* shorter than any message */
	uint64_t rx_bad_type;		/* unknown message type */
	uint64_t rx_bad_size;		/* handshake message of the wrong size */
	uint64_t rx_bad_mac;		/* mac1 (or required mac2) wrong */
	uint64_t rx_handshake_invalid;	/* failed to decrypt, unknown peer, replayed timestamp */
	uint64_t rx_handshake_flood;	/* initiation too soon after the last */
	uint64_t rx_ratelimited;	/* dropped by the per-source rate limiter under load */
	uint64_t rx_cookie_invalid;	/* cookie reply we did not ask for or could not open */
	uint64_t rx_unknown_index;	/* data or response for no known session */
	uint64_t rx_expired_key;	/* data on a keypair older than REJECT_AFTER_TIME */
	uint64_t rx_decrypt_fail;	/* data that failed authentication */
	uint64_t rx_replay;		/* counter already seen or too old */
	uint64_t rx_bad_inner;		/* decrypted payload not a sane IP packet */
	uint64_t rx_bad_source;		/* inner source outside the peer's allowed IPs */
	uint64_t tx_no_route;		/* no peer for the destination */
	uint64_t tx_staged_dropped;	/* staging queue overflow or handshake gave up */
	uint64_t cookies_sent;
	uint64_t handshakes_sent;
	uint64_t handshakes_completed;
};

/* A snapshot of one peer, for wg(8) and status. */
struct wg_peer_info {
	uint8_t public_key[WG_KEY_LEN];
	bool has_endpoint;
	union wg_endpoint endpoint;
	uint64_t last_handshake_ns;	/* wall clock; 0 = never */
	uint64_t rx_bytes;
	uint64_t tx_bytes;
	uint16_t persistent_keepalive;	/* seconds; 0 = off */
};

/* --- device --- */

/* sodium_init() must have been called: the device keeps its key in sodium_malloc memory. */
struct wg_device *wg_device_new(const struct wg_ops *ops, void *ctx, struct pkt_pool *pool);
void wg_device_free(struct wg_device *dev);	/* NULL-safe; frees every peer */

/* A zero key removes the private key.  The key is copied into locked memory. */
void wg_device_set_private_key(struct wg_device *dev, const uint8_t key[static WG_KEY_LEN]);
bool wg_device_has_private_key(const struct wg_device *dev);
/* Copies out the private key; the caller wipes it.  False if none. */
bool wg_device_private_key(const struct wg_device *dev, uint8_t out[static WG_KEY_LEN]);
bool wg_device_public_key(const struct wg_device *dev, uint8_t out[static WG_KEY_LEN]);

/*
 * In plain-WireGuard mode the core follows a peer to whatever address it
 * last sent an authenticated packet from.  An overlay that owns the path
 * (magicsock) turns this off.  On by default.
 */
void wg_device_set_roaming(struct wg_device *dev, bool on);

/* The tunnel MTU, up to which packets are padded (default 1420). */
void wg_device_set_mtu(struct wg_device *dev, unsigned int mtu);

/* Forces the "under load" state used to decide on cookie replies (tests). */
void wg_device_force_under_load(struct wg_device *dev, bool on);

const struct wg_stats *wg_device_stats(const struct wg_device *dev);
size_t wg_device_peer_count(const struct wg_device *dev);

/*
 * Runs every timer due at or before now and returns the next deadline
 * (UINT64_MAX if none).  Packet processing can also move deadlines earlier:
 * read wg_device_next_deadline() after a batch to reschedule.
 */
uint64_t wg_device_tick(struct wg_device *dev, uint64_t now);
uint64_t wg_device_next_deadline(const struct wg_device *dev);

/* --- peers --- */

/*
 * Adds a peer.  NULL if the key is already a peer, is our own public key,
 * or the device holds WG_MAX_PEERS peers.
 */
struct wg_peer *wg_peer_new(struct wg_device *dev, const uint8_t public_key[static WG_KEY_LEN]);
void wg_peer_remove(struct wg_device *dev, struct wg_peer *peer);
void wg_device_remove_all_peers(struct wg_device *dev);
struct wg_peer *wg_peer_lookup(const struct wg_device *dev, const uint8_t public_key[static WG_KEY_LEN]);

/* Iteration in insertion order; do not remove peers while iterating. */
struct wg_peer *wg_peer_first(const struct wg_device *dev);
struct wg_peer *wg_peer_next(const struct wg_peer *peer);

/* A zero key means no preshared key. */
void wg_peer_set_preshared_key(struct wg_peer *peer, const uint8_t psk[static WG_KEY_LEN]);
bool wg_peer_preshared_key(const struct wg_peer *peer, uint8_t out[static WG_KEY_LEN]);
void wg_peer_set_endpoint(struct wg_peer *peer, const union wg_endpoint *ep);
bool wg_peer_endpoint(const struct wg_peer *peer, union wg_endpoint *out);
/* seconds, 0 = off; an enabled keepalive sends one at once when a session exists. */
void wg_peer_set_persistent_keepalive(struct wg_peer *peer, uint16_t secs, uint64_t now);

int wg_peer_add_allowed_ip(struct wg_peer *peer, int family, const uint8_t *addr, uint8_t cidr)
	__attribute__((warn_unused_result));
bool wg_peer_remove_allowed_ip(struct wg_peer *peer, int family, const uint8_t *addr, uint8_t cidr);
void wg_peer_clear_allowed_ips(struct wg_peer *peer);
/* Same contract as aip_walk_owner(). */
int wg_peer_walk_allowed_ips(const struct wg_peer *peer,
    int (*fn)(void *ctx, int family, const uint8_t *addr, uint8_t cidr), void *ctx);

void wg_peer_get_info(const struct wg_peer *peer, struct wg_peer_info *out);
/* The host may hang its own per-peer state here. */
void wg_peer_set_user(struct wg_peer *peer, void *user);
void *wg_peer_user(const struct wg_peer *peer);

/* Starts a handshake now (if none is in flight) without waiting for data. */
void wg_peer_initiate(struct wg_peer *peer, uint64_t now);

/* --- data path --- */

/* The peer that owns the destination of an IP packet, or NULL (counted as tx_no_route). */
struct wg_peer *wg_route(struct wg_device *dev, const uint8_t *ip, size_t len);

enum wg_tx {
	WG_TX_SEND,	/* p now holds the datagram; send it to the peer, then free it */
	WG_TX_STAGED,	/* the core kept p until a session exists */
	WG_TX_DROP,	/* free p */
};

/*
 * Encrypts the IP packet in p (at pkt_data(p), p->len bytes, with
 * PKT_HEADROOM in front and PKT_TAILROOM behind) in place for the peer.
 */
enum wg_tx wg_encrypt(struct wg_peer *peer, struct pkt *p, uint64_t now)
	__attribute__((warn_unused_result));

enum wg_rx {
	WG_RX_DATA,	/* an inner IP packet was decrypted; see struct wg_rx_info */
	WG_RX_CONSUMED,	/* handshake, cookie or keepalive: nothing to deliver */
	WG_RX_DROP,	/* bad input; counted in wg_stats */
};

struct wg_rx_info {
	struct wg_peer *peer;	/* the sender */
	uint8_t *data;		/* the inner packet, decrypted in place within msg */
	size_t len;
};

/*
 * Processes one datagram of len bytes received from src.  Data messages are
 * decrypted in place; the WireGuard header in front of the inner packet
 * (WG_DATA_HEADER_LEN bytes) is then free for the caller to reuse.
 */
enum wg_rx wg_receive(struct wg_device *dev, uint8_t *msg, size_t len, const union wg_endpoint *src,
    uint64_t now, struct wg_rx_info *info) __attribute__((warn_unused_result));

/* Same family, address, port (and IPv6 scope); AF_UNSPEC equals nothing. */
bool wg_endpoint_equal(const union wg_endpoint *a, const union wg_endpoint *b);
/* Writes src (an endpoint) as "ip:port" or "[ip6]:port"; returns buf. */
char *wg_endpoint_str(const union wg_endpoint *ep, char *buf, size_t len);

#endif

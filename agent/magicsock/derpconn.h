/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_DERPCONN_H
#define MESHD_DERPCONN_H

/*
 * One client connection to one DERP region, on the caller's libevent loop
 * (derp_disco.md §1, §2.4; tailscale derp/derphttp/derphttp_client.go).
 *
 * It dials the region's nodes in order (STUN-only nodes skipped; per node
 * IPv4 then IPv6, 1.5 s each for TCP), runs TLS (or plain HTTP when asked),
 * the "Upgrade: DERP" request, waits for the ServerKey frame and sends
 * ClientInfo, all within 10 s; then it is up.  A connection that fails or
 * goes quiet for 120 s (two missed keepalives) is closed and redialled
 * with jittered exponential backoff capped at 5 s, for as long as the
 * object lives.  Frames the client does not know are skipped; a malformed
 * frame is counted and dropped, and one that breaks the framing (a length
 * over DERP_FRAME_MAX) ends the connection.
 *
 * Packets sent while the connection is not up wait in a queue of
 * DERPCONN_QUEUE_MAX packets (the oldest is dropped first) and go out
 * after the handshake.  Once up, packets go to the socket buffer, which is
 * capped at DERPCONN_OUTPUT_MAX bytes: beyond it new packets are dropped
 * and counted, as a congested UDP path would drop them.
 *
 * Writes to a socket the peer closed raise SIGPIPE: the process must
 * ignore it (the daemon does).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evdns_base;
struct netmap_derp_region;
struct derpconn;

#define DERPCONN_QUEUE_MAX		32
#define DERPCONN_OUTPUT_MAX		(256 * 1024)
#define DERPCONN_DIAL_TIMEOUT_MS	1500
#define DERPCONN_HANDSHAKE_TIMEOUT_MS	10000
#define DERPCONN_READ_TIMEOUT_MS	120000
#define DERPCONN_BACKOFF_MAX_MS		5000
/* Port of a plain-HTTP node whose DERPPort is 0 (derphttp dialNode without TLS). */
#define DERPCONN_PLAIN_HTTP_PORT	3340

/*
 * Callbacks, on the event loop; any may be NULL.  Pointers passed in are
 * valid only during the call.  A callback may call derpconn_free() on its
 * own connection (the memory goes once the callback returns; the
 * connection must not be used after that call), and derpconn_send() or
 * derpconn_note_preferred().
 */
struct derpconn_ops {
	/* A RecvPacket: pkt (len ≤ 65536, maybe 0) from the node key src. */
	void (*recv)(void *ctx, struct derpconn *c, const uint8_t src[32], const uint8_t *pkt,
	    size_t len);
	/* PeerGone: key left the server (reason 0) or is not there (1); forget routes via c. */
	void (*peer_gone)(void *ctx, struct derpconn *c, const uint8_t key[32], uint8_t reason);
	/* The connection came up (handshake done) or went down.  Only transitions are reported. */
	void (*state)(void *ctx, struct derpconn *c, bool up);
};

struct derpconn_cfg {
	/* Deep-copied by derpconn_new(); the netmap may free it afterwards. */
	const struct netmap_derp_region *region;
	/*
	 * Our node key pair.  node_priv is borrowed and must stay valid (and
	 * unchanged) until derpconn_free(): each reconnect seals a new
	 * ClientInfo with it.  It is never logged or copied.
	 */
	const uint8_t *node_priv;
	const uint8_t *node_pub;
	/* SO_MARK for the TCP socket (0 = none); EPERM is ignored. */
	uint32_t fwmark;
	/*
	 * Plain HTTP instead of TLS, for test setups (tailscaled's
	 * TS_DEBUG_USE_DERP_HTTP): a DERPPort of 0 then means 3340.
	 */
	bool plain_http;
};

struct derpconn_stats {
	uint64_t rx_frames, rx_bytes;	/* frames read, 5-byte headers included */
	uint64_t rx_packets;		/* RecvPacket frames handed to ops->recv */
	uint64_t tx_frames, tx_bytes;	/* frames handed to the socket buffer */
	uint64_t tx_packets;		/* SendPacket frames among them */
	uint64_t bad_frames;		/* malformed frames */
	uint64_t skipped_frames;	/* frame types we do not handle */
	uint64_t drops_queue;		/* queued while down, pushed out by newer ones */
	uint64_t drops_output;		/* socket buffer over DERPCONN_OUTPUT_MAX */
	uint64_t drops_too_big;		/* packets over DERP_MAX_PACKET */
	uint64_t connects;		/* handshakes completed */
	uint64_t disconnects;		/* up connections lost */
	uint64_t failures;		/* dial or handshake attempts that failed */
	uint64_t reconnects;		/* attempts started after the first */
};

/*
 * Creates the connection and starts dialling from the event loop (nothing
 * is called back from inside this call).  dns may be NULL: then only nodes
 * with an IP literal (IPv4/IPv6 field, or a HostName that is an IP) can be
 * dialled.  Returns NULL with *cause set (caller frees) when the region
 * has no node to dial or the configuration is unusable.
 */
struct derpconn *derpconn_new(struct event_base *base, struct evdns_base *dns,
    const struct derpconn_cfg *cfg, const struct derpconn_ops *ops, void *ctx, char **cause);
/* Closes and frees; no callback is made.  NULL-safe; see derpconn_ops for use from a callback. */
void derpconn_free(struct derpconn *c);

/*
 * Queues a SendPacket of pkt (copied) to the node key dst.  Returns 0 if
 * it was queued or written (a full queue drops its oldest packet),
 * -EMSGSIZE over DERP_MAX_PACKET, -ENOBUFS if the socket buffer is full.
 * Never blocks, never calls back.
 */
int derpconn_send(struct derpconn *c, const uint8_t dst[32], const uint8_t *pkt, size_t len);
/*
 * Tells the server whether this is our home region (stats only): sent at
 * once if up, and "true" again after every reconnect (a new connection
 * starts as not preferred on the server, as derphttp does it).
 */
void derpconn_note_preferred(struct derpconn *c, bool preferred);

/* Monotonic ns of the last derpconn_send() (of creation before any), to close idle regions. */
uint64_t derpconn_last_activity(const struct derpconn *c);
int32_t derpconn_region_id(const struct derpconn *c);
bool derpconn_is_up(const struct derpconn *c);
/* Bytes waiting: queued while down plus unsent in the socket buffer. */
size_t derpconn_queued_bytes(const struct derpconn *c);
void derpconn_stats(const struct derpconn *c, struct derpconn_stats *st);
/* The server's last Health text on this connection; "" when healthy. */
const char *derpconn_health(const struct derpconn *c);
/* Why the last attempt or connection ended; "" if none has. */
const char *derpconn_last_error(const struct derpconn *c);

#endif

/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_UAPI_H
#define MESHD_UAPI_H

/*
 * The WireGuard cross-platform configuration protocol ("UAPI"): the text
 * protocol wg(8) speaks to a userspace WireGuard over
 * /var/run/wireguard/<ifname>.sock (wireguard-tools src/ipc-uapi.h,
 * wireguard-go device/uapi.go, https://www.wireguard.com/xplatform/).
 *
 *   get=1\n\n        -> private_key=, listen_port=, fwmark=, then per peer
 *                       public_key=, preshared_key=, protocol_version=1,
 *                       endpoint=, last_handshake_time_{sec,nsec}=,
 *                       tx_bytes=, rx_bytes=, persistent_keepalive_interval=,
 *                       allowed_ip= ...; then errno=0\n\n
 *   set=1\n k=v\n ... \n  -> errno=0\n\n or errno=-N\n\n
 *   get=stats\n\n    -> (meshd extension) the struct wg_stats counters as
 *                       name=value lines, then errno=0\n\n
 *
 * As in wireguard-go, a failure is answered with a *negative* errno
 * ("errno=-22"): wg(8) reads it with fscanf("errno=%d") and sets
 * errno = -ret, so a positive value would print as "Unknown error -22".
 * The codes follow wireguard-go's device/uapi.go:
 *   EPROTO    a set line without '='
 *   EINVAL    an unknown key (device or peer), a bad value, get=1 not
 *             followed by its blank line, a set cut off mid-line by EOF
 *   EMSGSIZE  a line over UAPI_MAX_LINE, a request over UAPI_MAX_REQUEST
 *             (wireguard-go has no line cap below bufio's 64 KiB, then EIO)
 *   ENOSPC    WG_MAX_PEERS reached
 *   ENOMEM    an answer over the output limit
 *   EPERM     set=1 on a read_only host
 *   the host's own errno for listen_port and fwmark (e.g. EADDRINUSE)
 * An unknown operation is not answered; the connection is closed.
 *
 * A set request is applied line by line as it arrives, as in wireguard-go:
 * after a failed line the earlier lines stay applied and the rest of the
 * request is skipped.  A failed line never touches another peer, and a new
 * peer is created only once one of its lines has been checked, so a bad
 * line does not leave a half-made peer behind.  Private keys and preshared
 * keys are never logged, and every buffer that held one is wiped.
 *
 * Two layers:
 *  - struct uapi_conn is a sans-I/O parser: bytes in, response text out,
 *    configuration applied to the wg core through wg.h and to the device
 *    layer through struct uapi_host.  It does no I/O and keeps no globals, so
 *    tests and the fuzzer drive it directly.
 *  - uapi_server_* is the libevent glue: the listening unix socket and its
 *    connections.  uapi_client_request() is a blocking client for
 *    `meshd wg --stats IFNAME` and tests.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct wg_device;

#define UAPI_SOCK_DIR		"/var/run/wireguard"
/* Longest line accepted, without its '\n'; wg(8) never sends more than ~100. */
#define UAPI_MAX_LINE		4096
/*
 * Largest request (from "set=1" to its blank line) and largest response.
 * Requests are applied line by line, so the request cap bounds the time one
 * client can hold the loop, not memory; a full config of WG_MAX_PEERS peers
 * with a few allowed IPs each fits in either.
 */
#define UAPI_MAX_REQUEST	(64U << 20)
#define UAPI_MAX_RESPONSE	(64U << 20)
/* Connections served at once; more wait in the listen backlog. */
#define UAPI_MAX_CONNS		16
/* A connection with no progress for this long is closed. */
#define UAPI_IDLE_TIMEOUT_SEC	10

/*
 * What the protocol needs from the device layer beyond the wg core.  Every
 * callback gets ctx.  The struct (and ctx) must outlive every connection and
 * server that points at it.
 */
struct uapi_host {
	void *ctx;
	/* The UDP port we listen on (0 if none); NULL reads as 0. */
	uint16_t (*get_listen_port)(void *ctx);
	/* Rebinds; 0 or -errno (e.g. -EADDRINUSE).  NULL answers -EOPNOTSUPP. */
	int (*set_listen_port)(void *ctx, uint16_t port);
	/* SO_MARK of the UDP sockets, 0 = off; NULL reads as 0. */
	uint32_t (*get_fwmark)(void *ctx);
	/* 0 or -errno.  NULL answers -EOPNOTSUPP. */
	int (*set_fwmark)(void *ctx, uint32_t mark);
	/* Monotonic nanoseconds, for wg_peer_set_persistent_keepalive().  Required. */
	uint64_t (*now)(void *ctx);
	/*
	 * Called once after each set operation that may have changed the
	 * device (also after one that failed part-way), so the device layer can
	 * re-arm its timer from wg_device_next_deadline().  May be NULL.
	 */
	void (*changed)(void *ctx);
	/*
	 * Refuse set=1 with -EPERM: the Tailscale-mode node owns its peers and
	 * exposes the socket for `wg show` only (STYLE.md §24).
	 */
	bool read_only;
};

/*
 * Response text.  Zero-initialise it (struct uapi_out out = { 0 }); the
 * unsent bytes are buf[off..len), and buf[len] is always '\0' once buf is
 * non-NULL.  An answer (get=1, get=stats) that would pass the limit is
 * replaced by "errno=-12" (ENOMEM) rather than sent truncated; only the
 * errno lines that end answers may pass it, by a few bytes per request.  It
 * can hold a private key, so it is wiped as it is consumed and freed; free
 * it with uapi_out_free().
 */
struct uapi_out {
	char *buf;
	size_t off;
	size_t len;
	size_t cap;
	size_t limit;	/* most unsent answer bytes; 0 means UAPI_MAX_RESPONSE */
	bool overflow;	/* an append would have passed the limit */
};

/* Frees (and wipes) the text; out is left empty, its limit kept, ready for reuse. */
void uapi_out_free(struct uapi_out *out);
/* Drops (and wipes) the first n unsent bytes, after they were written. */
void uapi_out_consume(struct uapi_out *out, size_t n);
static inline size_t uapi_out_pending(const struct uapi_out *out) { return out->len - out->off; }

/*
 * A connection's parser state.
 *
 * Why incremental rather than "read the whole request, then handle it": a
 * set request has no length prefix and can be megabytes (one line per
 * allowed IP), the socket hands it over in arbitrary pieces, and wireguard-go
 * also applies it line by line as it streams in.  Feeding bytes as they
 * arrive keeps memory at one line per connection and lets a request be
 * answered (or refused) without buffering it whole.  Several requests may
 * follow each other on one connection, as wireguard-go allows.
 *
 * The connection holds no pointer into the device between calls (peers are
 * remembered by public key), so the device may change between two feeds,
 * for example by another connection.
 */
struct uapi_conn;

struct uapi_conn *uapi_conn_new(void);		/* never NULL (x*alloc) */
void uapi_conn_free(struct uapi_conn *conn);	/* NULL-safe; wipes the line buffer */

/*
 * Consumes len bytes of request, applying them to dev and appending
 * responses to out.  Returns true once the connection should be closed
 * after out has been flushed (an unknown operation, which wireguard-go
 * answers by hanging up, or a request over UAPI_MAX_REQUEST); after that it
 * ignores further input.
 */
bool uapi_conn_feed(struct uapi_conn *conn, struct wg_device *dev, const struct uapi_host *host,
    const void *data, size_t len, struct uapi_out *out);
/*
 * The peer closed its side.  A set request cut short still has its last
 * line applied and is answered, as wireguard-go does; a partial get is not.
 */
void uapi_conn_eof(struct uapi_conn *conn, struct wg_device *dev, const struct uapi_host *host,
    struct uapi_out *out);

/* One-shot: a fresh connection fed req then EOF.  Convenient for tests and embedding. */
void uapi_handle(struct wg_device *dev, const struct uapi_host *host, const void *req, size_t len,
    struct uapi_out *out);

/*
 * The errno value a response ends with: 0, a negative errno, or -EPROTO if
 * resp does not end with an "errno=N\n\n" line.
 */
int uapi_response_status(const char *resp, size_t len);

/* --- socket glue (libevent) --- */

struct uapi_server;

/*
 * Listens on UAPI_SOCK_DIR/<ifname>.sock.  The directory is created mode
 * 0700 if missing, the socket under umask 077; a stale socket (nobody
 * answering) is replaced, a live one is an error.  Only root and our own
 * uid may connect (SO_PEERCRED).  dev and host must outlive the server.
 * Returns NULL with *cause set (caller frees) on failure.
 */
struct uapi_server *uapi_server_open(struct event_base *base, const char *ifname,
    struct wg_device *dev, const struct uapi_host *host, char **cause);
/* The same in another directory (tests). */
struct uapi_server *uapi_server_open_at(struct event_base *base, const char *dir,
    const char *ifname, struct wg_device *dev, const struct uapi_host *host, char **cause);
/* Closes every connection, the listener, and removes the socket file.  NULL-safe. */
void uapi_server_close(struct uapi_server *srv);

/*
 * Sends request (complete, e.g. "get=stats\n\n") to the interface's socket,
 * half-closes, and reads the answer until the server hangs up (blocking,
 * 5 s timeouts).  On a failed exchange returns a negative errno with
 * *response NULL.  Otherwise *response is the NUL-terminated answer (caller
 * frees; an answer to get=1 holds the private key, so wipe it first) and the
 * return value is its uapi_response_status(): 0, the device's negative
 * errno, or -EPROTO if it has no errno line (e.g. wireguard-go, which hangs
 * up on get=stats).
 */
int uapi_client_request(const char *ifname, const char *request, char **response);
int uapi_client_request_at(const char *dir, const char *ifname, const char *request,
    char **response);

#endif

/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_PATH_H
#define MESHD_PATH_H

/*
 * Per-peer path selection: which UDP address (if any) a peer's WireGuard
 * datagrams go to, and when to ping what to find a better one.  This is
 * tailscale's magicsock endpoint (wgengine/magicsock/endpoint.go;
 * derp_disco.md §4.3-§4.9) as a sans-I/O state machine:
 *
 *  - it does no I/O and reads no clock: every entry point takes "now"
 *    (monotonic nanoseconds) and appends what the host must send to a
 *    caller-supplied struct path_actions;
 *  - it keeps no globals; transaction IDs come from the random function
 *    given to path_new();
 *  - the host owns timers: path_tick() returns the next deadline.
 *
 * The host sends each PATH_SEND_PING as a disco Ping with the given TxID
 * (over UDP to "to", or via DERP to the peer), each PATH_SEND_CALL_ME_MAYBE
 * as a CallMeMaybe listing our endpoints via DERP (re-STUNning first if they
 * are stale), and answers each PATH_CLI_TIMEOUT's cookie as "no reply".
 *
 * Memory: one allocation at creation; the candidate and in-flight tables
 * grow (a few times per peer at most) up to PATH_MAX_CANDIDATES and
 * PATH_MAX_PINGS, and never shrink.  path_on_send() and path_best() never
 * allocate.  Nothing here is thread-safe; one peer, one caller at a time.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wg/wg.h"

#define PATH_SEC			1000000000ULL
/* The §4.4 constants, from tailscale v1.102.3 magicsock.go and tsconst. */
#define PATH_HEARTBEAT_INTERVAL		(3 * PATH_SEC)
#define PATH_TRUST_UDP_DURATION		(6500 * 1000000ULL)
#define PATH_SESSION_ACTIVE_TIMEOUT	(45 * PATH_SEC)
#define PATH_PING_TIMEOUT		(5 * PATH_SEC)
#define PATH_DISCO_PING_INTERVAL	(5 * PATH_SEC)
#define PATH_UPGRADE_INTERVAL		(60 * PATH_SEC)
#define PATH_GOOD_ENOUGH_LATENCY	(5 * 1000000ULL)

#define PATH_MAX_CANDIDATES	100	/* addresses we may ping */
#define PATH_MAX_PINGS		64	/* pings awaiting a pong; the oldest is forgotten */
#define PATH_MAX_ACTIONS	32	/* per call; the rest waits for path_tick() */
#define PATH_TXID_LEN		12

struct path;

/* What a ping was for; comes back with its pong. */
enum path_ping_purpose {
	PATH_DISCOVERY,		/* is this candidate reachable, and how fast? */
	PATH_HEARTBEAT,		/* is the best address still there? */
	PATH_CLI,		/* a user's ping (meshctl ping) */
};

enum path_action_kind {
	PATH_SEND_PING = 1,		/* a disco Ping with txid, to "to" or via DERP */
	PATH_SEND_CALL_ME_MAYBE,	/* a CallMeMaybe via DERP */
	PATH_CLI_TIMEOUT,		/* every ping carrying cookie went unanswered */
};

struct path_action {
	int kind;			/* enum path_action_kind */
	bool via_derp;			/* PING: via DERP rather than UDP to "to" */
	union wg_endpoint to;		/* PING over UDP */
	uint8_t txid[PATH_TXID_LEN];	/* PING */
	uint64_t cookie;		/* CLI_TIMEOUT, and PINGs from path_cli_ping() */
};

/* Appended to, never reset, by the calls below; the caller empties it. */
struct path_actions {
	struct path_action a[PATH_MAX_ACTIONS];
	size_t n;
};

/*
 * Where one WireGuard datagram goes.  Both may be set (duplicates are
 * harmless under WireGuard's replay protection).  Neither set: no UDP path
 * and no DERP home -- the host tries the region it last heard the peer on,
 * or drops the datagram.
 */
struct path_route {
	bool udp;
	union wg_endpoint addr;	/* when udp */
	bool derp;		/* to the peer's home region */
};

/* What an answered ping was. */
struct path_pong {
	enum path_ping_purpose purpose;
	bool via_derp;		/* the ping went, or the pong came, via DERP */
	union wg_endpoint to;	/* the address pinged (when !via_derp) */
	uint64_t latency_ns;
	uint64_t cookie;	/* PATH_CLI */
	bool cli_answer;	/* PATH_CLI and the first answer for cookie */
	bool new_best;		/* this pong changed the best address */
};

/*
 * A peer with no candidates, no disco key and no DERP home.  random fills
 * buf with len unpredictable bytes (for TxIDs).  Free with path_free()
 * (NULL is fine).
 */
struct path *path_new(void (*random)(void *ctx, void *buf, size_t len), void *rctx);
void path_free(struct path *p);

/*
 * The peer's Node.Endpoints from a netmap; replaces the previous netmap set.
 * Entries that are not AF_INET/AF_INET6, have port 0 or an unspecified
 * address are skipped, and so is anything past the candidate cap.  A
 * dropped candidate that was the best address stops being it.
 */
void path_set_endpoints(struct path *p, const union wg_endpoint *eps, size_t n, uint64_t now);

/* Whether the peer has a disco key; without one it is DERP-only: no pings. */
void path_set_disco(struct path *p, bool has_disco);

/* Whether the peer has a home DERP region (Node.HomeDERP != 0). */
void path_set_derp(struct path *p, bool has_derp);

/*
 * A WireGuard datagram for the peer is about to go out (§4.5): fills *route,
 * and when no trusted direct path exists, appends discovery pings to every
 * candidate not pinged in the last 5 s and, if any went out and the peer has
 * a DERP home, one CallMeMaybe.  Starts the heartbeat: call path_tick().
 */
void path_on_send(struct path *p, uint64_t now, struct path_route *route,
    struct path_actions *acts);

/*
 * A Ping from the peer arrived from src over UDP, or via DERP (src NULL).
 * Returns whether to answer it: false for a repeat of the last TxID seen
 * from that src.  A UDP source becomes a candidate for 45 s.
 */
bool path_on_ping(struct path *p, const union wg_endpoint *src, const uint8_t txid[PATH_TXID_LEN],
    uint64_t now);

/*
 * A Pong from the peer, from src over UDP or via DERP (src NULL).  Returns
 * false, touching nothing, if the TxID is not one of our pings in flight;
 * otherwise fills *out and, for a UDP pong, updates the best address by
 * betterAddr() and trusts it for 6.5 s when it is the one pinged.
 */
bool path_on_pong(struct path *p, const uint8_t txid[PATH_TXID_LEN], const union wg_endpoint *src,
    uint64_t now, struct path_pong *out);

/*
 * A CallMeMaybe from the peer (only ever accepted via DERP): its entries
 * replace the previous CallMeMaybe candidates (IPv6 link-local ones are
 * skipped), every candidate becomes due, and all are pinged now -- without a
 * CallMeMaybe back, which would loop.
 */
void path_on_call_me_maybe(struct path *p, const union wg_endpoint *eps, size_t n, uint64_t now,
    struct path_actions *acts);

/*
 * A user's ping (§4.5 discoPing): one via DERP unless the best address is
 * trusted, then to the trusted best address only, or else to every
 * candidate.  The first pong reports cookie with cli_answer set; if none
 * comes, path_tick() reports PATH_CLI_TIMEOUT with the cookie.  Returns false
 * if no ping could be sent at all (no disco key, nowhere to send): the host
 * answers the user at once.
 */
bool path_cli_ping(struct path *p, uint64_t now, uint64_t cookie, struct path_actions *acts);

/*
 * Timers: ping timeouts (a lost ping to an untrusted best address clears
 * it; unanswered CLI pings are reported), the 3 s heartbeat while the peer
 * was sent to within 45 s (§4.8), the rest of a ping round that did not fit
 * in an earlier call's actions, and expiry of ping-learned candidates.
 * Returns the next deadline (UINT64_MAX: none); call again at or after it,
 * and after any other call into this module.
 */
uint64_t path_tick(struct path *p, uint64_t now, struct path_actions *acts);

/*
 * The best UDP address: false if none.  trusted means datagrams go only
 * there (a pong within the last 6.5 s).  Any out-pointer may be NULL.
 */
bool path_best(const struct path *p, union wg_endpoint *addr, uint64_t *latency_ns, bool *trusted,
    uint64_t now);

/* Sending to addr failed hard (e.g. EHOSTUNREACH): forget the best address. */
void path_note_bad_endpoint(struct path *p, const union wg_endpoint *addr);

/* Our network changed: forget the best address and all ping history. */
void path_note_connectivity_change(struct path *p);

/* How many candidates the peer has (for status and tests). */
size_t path_n_candidates(const struct path *p);

#endif

/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_DISCO_H
#define MESHD_DISCO_H

/*
 * Disco messages (tailscale disco/disco.go; derp_disco.md §3): the sealed
 * outer packet and the Ping, Pong and CallMeMaybe bodies.
 *
 * Outer packet:  magic(6) ‖ sender disco key(32) ‖ nonce(24) ‖ MAC(16) ‖
 *                ciphertext, a NaCl box under crypto_box_beforenm(peer, me).
 * Inner payload: type(1) ‖ version(1) = 0 ‖ body.
 *
 * Pure codecs: no I/O, no clock, no allocation.  The only outside input is
 * the random nonce disco_seal() draws from libsodium.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wg/wg.h"

#define DISCO_MAGIC		"TS\xf0\x9f\x92\xac"	/* "TS💬" */
#define DISCO_MAGIC_LEN		6
#define DISCO_KEY_LEN		32
#define DISCO_NONCE_LEN		24
#define DISCO_MAC_LEN		16
#define DISCO_TXID_LEN		12
#define DISCO_HDR_LEN		62	/* magic ‖ sender ‖ nonce */
#define DISCO_OVERHEAD		78	/* DISCO_HDR_LEN ‖ MAC */
#define DISCO_ADDR_LEN		18	/* 16-byte (v4-mapped) IP ‖ BE port */

/* CallMeMaybe entries past this many are ignored on receipt, never sent. */
#define DISCO_MAX_ENDPOINTS	32

/* Sizes of the messages we build (an unpadded Ping carries the node key). */
#define DISCO_PING_LEN		(DISCO_OVERHEAD + 2 + DISCO_TXID_LEN + 32)		/* 124 */
#define DISCO_PONG_LEN		(DISCO_OVERHEAD + 2 + DISCO_TXID_LEN + DISCO_ADDR_LEN)	/* 110 */
#define DISCO_CMM_LEN(n)	(DISCO_OVERHEAD + 2 + (n) * DISCO_ADDR_LEN)		/* 80 + 18n */
/* No packet disco_seal() produces is longer than this. */
#define DISCO_MAX_LEN		DISCO_CMM_LEN(DISCO_MAX_ENDPOINTS)

enum {
	DISCO_PING = 1,
	DISCO_PONG = 2,
	DISCO_CALL_ME_MAYBE = 3,
};

/*
 * One decoded (or to-be-encoded) message.  Which fields mean something
 * depends on type:
 *   PING           txid; node_key if has_node_key (always sent)
 *   PONG           txid; src = where the pinged side saw the ping from
 *   CALL_ME_MAYBE  endpoints[0..n_endpoints)
 * Addresses are AF_INET or AF_INET6 (a v4-mapped wire address becomes
 * AF_INET); AF_UNSPEC marks an absent one.
 */
struct disco_msg {
	uint8_t type;
	uint8_t txid[DISCO_TXID_LEN];
	bool has_node_key;
	uint8_t node_key[32];
	union wg_endpoint src;
	size_t n_endpoints;
	union wg_endpoint endpoints[DISCO_MAX_ENDPOINTS];
};

/* Magic present and long enough for the header (§3.4 step 3). */
bool disco_looks_like(const uint8_t *b, size_t len);

/* The sender's disco public key inside a packet disco_looks_like() accepted. */
const uint8_t *disco_sender_key(const uint8_t *b);

/*
 * The box key shared with a peer (the same in both directions).  False if
 * the peer key is of low order (the result would be all zeros); shared is
 * then zeroed.  The caller caches it per peer and wipes it when done.
 */
bool disco_shared_key(uint8_t shared[32], const uint8_t peer_pub[32],
    const uint8_t my_priv[32]) __attribute__((warn_unused_result));

/*
 * Encodes m and seals it for the peer.  Returns the packet length, or 0 if
 * cap is too small or m cannot be encoded (unknown type, an address that is
 * neither IPv4 nor IPv6, more than DISCO_MAX_ENDPOINTS entries).
 * DISCO_MAX_LEN bytes of out always suffice.
 */
size_t disco_seal(uint8_t *out, size_t cap, const uint8_t my_pub[32], const uint8_t shared[32],
    const struct disco_msg *m) __attribute__((warn_unused_result));

/*
 * Opens a packet and decodes it into *m.  The caller has already matched the
 * sender key (disco_sender_key) to a peer and passes that peer's shared key.
 * Returns 0; -EBADMSG if the packet is short, has no magic or does not
 * authenticate; -EINVAL if the body is malformed; -ENOTSUP for a message
 * type we do not handle (the peer-relay types 4..9 and unknown ones), which
 * the caller ignores.  Trailing bytes in a body are ignored.
 */
int disco_open(const uint8_t *pkt, size_t len, const uint8_t shared[32],
    struct disco_msg *m) __attribute__((warn_unused_result));

/* The inner-payload half of disco_open(): its results, less -EBADMSG. */
int disco_decode(const uint8_t *plain, size_t len, struct disco_msg *m)
    __attribute__((warn_unused_result));

/*
 * The inner-payload half of disco_seal(): writes type ‖ version ‖ body to
 * out.  Returns its length, or 0 as disco_seal().
 */
size_t disco_encode(uint8_t *out, size_t cap, const struct disco_msg *m)
    __attribute__((warn_unused_result));

#endif

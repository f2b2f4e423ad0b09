/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_STUN_H
#define MESHD_STUN_H

/*
 * STUN binding requests and responses: the RFC 5389 subset tailscale's
 * net/stun speaks (derp_disco.md §5.1).  Pure codecs: no I/O, no clock, no
 * allocation.  The caller picks the transaction ID (12 random bytes) and
 * matches responses against the requests it has in flight.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wg/wg.h"

#define STUN_REQ_LEN		40
#define STUN_TXID_LEN		12
#define STUN_HDR_LEN		20
#define STUN_MAGIC_COOKIE	0x2112a442U

/*
 * A Binding Request carrying SOFTWARE "tailnode" and a FINGERPRINT: the only
 * form tailscale's derper and Headscale's STUN server answer.
 */
void stun_build_request(uint8_t out[STUN_REQ_LEN], const uint8_t txid[STUN_TXID_LEN]);

/*
 * Whether a datagram on the WireGuard socket is STUN (§3.4): at least a
 * header, top two bits clear, the magic cookie, and a Binding class byte.
 */
bool stun_looks_like(const uint8_t *b, size_t len);

/*
 * Parses a Binding Success Response.  On success returns 0 with the
 * transaction ID copied to txid and the reflexive address in *mapped
 * (XOR-MAPPED-ADDRESS 0x0020 or 0x8020, else MAPPED-ADDRESS; IPv4-mapped
 * IPv6 addresses come back as AF_INET).  Anything else -- a request, an
 * error response, a bad cookie, a truncated or malformed attribute list, no
 * address -- is -EINVAL.  Bytes past the header's length are ignored.
 */
int stun_parse_response(const uint8_t *b, size_t len, uint8_t txid[STUN_TXID_LEN],
    union wg_endpoint *mapped) __attribute__((warn_unused_result));

#endif

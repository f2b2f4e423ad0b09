// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * STUN responses on untrusted bytes: stun_parse_response() must reject or
 * return a usable address with the packet's TxID, agree with
 * stun_looks_like(), and read the same address back from a response
 * re-encoded here from what it returned.  Requests we build from the input's
 * first bytes must look like STUN and never parse as a response.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent/magicsock/stun.h"
#include "common/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT 4096

/* A success response with one XOR-MAPPED-ADDRESS, written from RFC 5389 §15.2. */
static size_t
encode_response(uint8_t *b, const uint8_t txid[STUN_TXID_LEN], const union wg_endpoint *ep)
{
	uint8_t key[16], ip[16];
	size_t alen;
	uint16_t port;

	put_be32(key, STUN_MAGIC_COOKIE);
	memcpy(key + 4, txid, STUN_TXID_LEN);
	if (ep->sa.sa_family == AF_INET) {
		alen = 4;
		memcpy(ip, &ep->in4.sin_addr, 4);
		port = ntohs(ep->in4.sin_port);
	} else {
		alen = 16;
		memcpy(ip, &ep->in6.sin6_addr, 16);
		port = ntohs(ep->in6.sin6_port);
	}
	put_be16(b, 0x0101);
	put_be16(b + 2, (uint16_t)(8 + alen));
	put_be32(b + 4, STUN_MAGIC_COOKIE);
	memcpy(b + 8, txid, STUN_TXID_LEN);
	put_be16(b + 20, 0x0020);
	put_be16(b + 22, (uint16_t)(4 + alen));
	b[24] = 0;
	b[25] = alen == 4 ? 1 : 2;
	put_be16(b + 26, port ^ 0x2112);
	for (size_t i = 0; i < alen; i++)
		b[28 + i] = ip[i] ^ key[i];
	return 28 + alen;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t txid[STUN_TXID_LEN], txid2[STUN_TXID_LEN], req[STUN_REQ_LEN], b[64];
	union wg_endpoint ep, ep2;
	size_t n;

	if (size > FUZZ_MAX_INPUT)
		return 0;

	if (stun_parse_response(data, size, txid, &ep) == 0) {
		if (!stun_looks_like(data, size) || memcmp(txid, data + 8, STUN_TXID_LEN) != 0)
			abort();
		if (ep.sa.sa_family != AF_INET && ep.sa.sa_family != AF_INET6)
			abort();
		/* IPv4-mapped addresses always come back as IPv4. */
		if (ep.sa.sa_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&ep.in6.sin6_addr))
			abort();
		n = encode_response(b, txid, &ep);
		if (stun_parse_response(b, n, txid2, &ep2) != 0 ||
		    memcmp(txid, txid2, STUN_TXID_LEN) != 0 || memcmp(&ep, &ep2, sizeof ep) != 0)
			abort();
	}

	if (size >= STUN_TXID_LEN) {
		stun_build_request(req, data);
		if (!stun_looks_like(req, sizeof req) ||
		    stun_parse_response(req, sizeof req, txid, &ep) != -EINVAL)
			abort();
	}
	return 0;
}

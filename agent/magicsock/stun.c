/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */

/*
 * STUN codecs (RFC 5389 subset; tailscale net/stun/stun.go, derp_disco.md
 * §5.1).  Untrusted input is read only after a bounds check; addresses come
 * out as struct sockaddr_in/_in6 with the port in network order.
 */
#include <errno.h>
#include <string.h>

#include "agent/magicsock/stun.h"
#include "common/util.h"

#define STUN_BINDING_REQUEST	0x0001
#define STUN_BINDING_SUCCESS	0x0101

#define ATTR_MAPPED_ADDRESS	0x0001
#define ATTR_XOR_MAPPED		0x0020
#define ATTR_XOR_MAPPED_ALT	0x8020	/* pre-RFC 5389 servers */
#define ATTR_SOFTWARE		0x8022
#define ATTR_FINGERPRINT	0x8028

#define FINGERPRINT_XOR		0x5354554eU	/* "STUN" */

static const char software[8] = "tailnode";

/* CRC-32 as in IEEE 802.3 / zlib (reflected 0x04c11db7). */
static uint32_t
crc32_ieee(const uint8_t *b, size_t len)
{
	uint32_t crc = 0xffffffffU;

	for (size_t i = 0; i < len; i++) {
		crc ^= b[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xedb88320U & (0U - (crc & 1)));
	}
	return ~crc;
}

void
stun_build_request(uint8_t out[STUN_REQ_LEN], const uint8_t txid[STUN_TXID_LEN])
{
	put_be16(out, STUN_BINDING_REQUEST);
	put_be16(out + 2, STUN_REQ_LEN - STUN_HDR_LEN);
	put_be32(out + 4, STUN_MAGIC_COOKIE);
	memcpy(out + 8, txid, STUN_TXID_LEN);
	put_be16(out + 20, ATTR_SOFTWARE);
	put_be16(out + 22, sizeof software);
	memcpy(out + 24, software, sizeof software);
	/* The servers insist on a correct FINGERPRINT as the last attribute. */
	put_be16(out + 32, ATTR_FINGERPRINT);
	put_be16(out + 34, 4);
	put_be32(out + 36, crc32_ieee(out, 36 - 4) ^ FINGERPRINT_XOR);
}

bool
stun_looks_like(const uint8_t *b, size_t len)
{
	return len >= STUN_HDR_LEN && (b[0] & 0xc0) == 0 && b[1] == 0x01 &&
	    get_be32(b + 4) == STUN_MAGIC_COOKIE;
}

static int
family_len(uint8_t family)
{
	switch (family) {
	case 0x01:
		return 4;
	case 0x02:
		return 16;
	default:
		return 0;
	}
}

/*
 * An address attribute's value: reserved(1) ‖ family(1) ‖ port(2) ‖ address.
 * For the XOR form, key is cookie ‖ TxID (RFC 5389 §15.2); NULL otherwise.
 */
static int
read_address(const uint8_t *a, size_t len, const uint8_t *key, union wg_endpoint *ep)
{
	uint8_t ip[16];
	uint16_t port;
	int alen;

	if (len < 4 || (alen = family_len(a[1])) == 0 || len - 4 < (size_t)alen)
		return -EINVAL;
	port = get_be16(a + 2);
	memcpy(ip, a + 4, (size_t)alen);
	if (key != NULL) {
		port ^= (uint16_t)(STUN_MAGIC_COOKIE >> 16);
		for (int i = 0; i < alen; i++)
			ip[i] ^= key[i];
	}

	memset(ep, 0, sizeof *ep);
	if (alen == 16 && !IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)(const void *)ip)) {
		ep->in6.sin6_family = AF_INET6;
		memcpy(&ep->in6.sin6_addr, ip, 16);
		ep->in6.sin6_port = htons(port);
	} else {
		ep->in4.sin_family = AF_INET;
		memcpy(&ep->in4.sin_addr, alen == 16 ? ip + 12 : ip, 4);
		ep->in4.sin_port = htons(port);
	}
	return 0;
}

int
stun_parse_response(const uint8_t *b, size_t len, uint8_t txid[STUN_TXID_LEN],
    union wg_endpoint *mapped)
{
	union wg_endpoint xor_addr, plain_addr;
	uint8_t key[4 + STUN_TXID_LEN];
	const uint8_t *a;
	size_t attrs_len, alen, padded;
	bool have_xor = false, have_plain = false;

	if (!stun_looks_like(b, len) || get_be16(b) != STUN_BINDING_SUCCESS)
		return -EINVAL;
	attrs_len = get_be16(b + 2);
	if (attrs_len > len - STUN_HDR_LEN)
		return -EINVAL;
	put_be32(key, STUN_MAGIC_COOKIE);
	memcpy(key + 4, b + 8, STUN_TXID_LEN);

	/* Bytes past the header's length are not part of the message. */
	a = b + STUN_HDR_LEN;
	while (attrs_len > 0) {
		if (attrs_len < 4)
			return -EINVAL;
		alen = get_be16(a + 2);
		padded = (alen + 3) & ~(size_t)3;
		if (padded > attrs_len - 4)
			return -EINVAL;
		switch (get_be16(a)) {
		case ATTR_XOR_MAPPED:
		case ATTR_XOR_MAPPED_ALT:
			/* A malformed address attribute spoils the whole response. */
			if (read_address(a + 4, alen, key, &xor_addr) != 0)
				return -EINVAL;
			have_xor = true;
			break;
		case ATTR_MAPPED_ADDRESS:
			if (read_address(a + 4, alen, NULL, &plain_addr) != 0)
				return -EINVAL;
			have_plain = true;
			break;
		}
		a += 4 + padded;
		attrs_len -= 4 + padded;
	}

	if (!have_xor && !have_plain)
		return -EINVAL;
	memcpy(txid, b + 8, STUN_TXID_LEN);
	*mapped = have_xor ? xor_addr : plain_addr;
	return 0;
}

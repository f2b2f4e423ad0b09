/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */

/*
 * Disco message codec (tailscale disco/disco.go; derp_disco.md §3.1, §3.2).
 *
 * Opening does not need a buffer as large as the packet: the box is
 * XSalsa20-Poly1305 (NaCl secretbox under the crypto_box_beforenm key), so
 * the tag is checked over the whole ciphertext with a streaming Poly1305
 * and only the prefix the decoder reads -- at most DISCO_PLAIN_MAX bytes --
 * is decrypted.  A padded 9000-byte MTU probe and a 64 KiB DERP frame cost
 * the same stack as a bare Ping.
 */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "agent/magicsock/disco.h"
#include "common/util.h"

#define DISCO_VERSION		0
#define DISCO_MSG_HDR_LEN	2	/* type ‖ version */
#define PING_BODY_MIN		DISCO_TXID_LEN
#define PING_BODY_LEN		(DISCO_TXID_LEN + 32)
#define PONG_BODY_LEN		(DISCO_TXID_LEN + DISCO_ADDR_LEN)
/* The most of a payload the decoder ever looks at. */
#define DISCO_PLAIN_MAX		(DISCO_MSG_HDR_LEN + DISCO_MAX_ENDPOINTS * DISCO_ADDR_LEN)

_Static_assert(DISCO_HDR_LEN == DISCO_MAGIC_LEN + DISCO_KEY_LEN + DISCO_NONCE_LEN, "header");
_Static_assert(DISCO_OVERHEAD == DISCO_HDR_LEN + crypto_box_MACBYTES, "overhead");
_Static_assert(DISCO_NONCE_LEN == crypto_box_NONCEBYTES, "nonce");
_Static_assert(crypto_box_BEFORENMBYTES == 32, "shared key");
_Static_assert(DISCO_PLAIN_MAX >= DISCO_MSG_HDR_LEN + PING_BODY_LEN &&
    DISCO_PLAIN_MAX >= DISCO_MSG_HDR_LEN + PONG_BODY_LEN, "decoder prefix");
_Static_assert(DISCO_PING_LEN == 124 && DISCO_PONG_LEN == 110 && DISCO_CMM_LEN(0) == 80, "sizes");

bool
disco_looks_like(const uint8_t *b, size_t len)
{
	return len >= DISCO_HDR_LEN && memcmp(b, DISCO_MAGIC, DISCO_MAGIC_LEN) == 0;
}

const uint8_t *
disco_sender_key(const uint8_t *b)
{
	return b + DISCO_MAGIC_LEN;
}

bool
disco_shared_key(uint8_t shared[32], const uint8_t peer_pub[32], const uint8_t my_priv[32])
{
	/* libsodium refuses a peer key whose product with ours is all zeros. */
	if (crypto_box_beforenm(shared, peer_pub, my_priv) != 0) {
		sodium_memzero(shared, 32);
		return false;
	}
	return true;
}

/* 16-byte IP (IPv4 as ::ffff:a.b.c.d) ‖ big-endian port. */
static bool
put_addr(uint8_t *p, const union wg_endpoint *ep)
{
	switch (ep->sa.sa_family) {
	case AF_INET:
		memset(p, 0, 10);
		p[10] = p[11] = 0xff;
		memcpy(p + 12, &ep->in4.sin_addr, 4);
		put_be16(p + 16, ntohs(ep->in4.sin_port));
		return true;
	case AF_INET6:
		memcpy(p, &ep->in6.sin6_addr, 16);
		put_be16(p + 16, ntohs(ep->in6.sin6_port));
		return true;
	default:
		return false;
	}
}

static void
get_addr(const uint8_t *p, union wg_endpoint *ep)
{
	static const uint8_t v4mapped[12] = { [10] = 0xff, [11] = 0xff };

	memset(ep, 0, sizeof *ep);
	if (memcmp(p, v4mapped, sizeof v4mapped) == 0) {
		ep->in4.sin_family = AF_INET;
		memcpy(&ep->in4.sin_addr, p + 12, 4);
		ep->in4.sin_port = htons(get_be16(p + 16));
	} else {
		ep->in6.sin6_family = AF_INET6;
		memcpy(&ep->in6.sin6_addr, p, 16);
		ep->in6.sin6_port = htons(get_be16(p + 16));
	}
}

size_t
disco_encode(uint8_t *out, size_t cap, const struct disco_msg *m)
{
	size_t len;

	switch (m->type) {
	case DISCO_PING:
		len = DISCO_MSG_HDR_LEN + (m->has_node_key ? PING_BODY_LEN : PING_BODY_MIN);
		break;
	case DISCO_PONG:
		len = DISCO_MSG_HDR_LEN + PONG_BODY_LEN;
		break;
	case DISCO_CALL_ME_MAYBE:
		if (m->n_endpoints > DISCO_MAX_ENDPOINTS)
			return 0;
		len = DISCO_MSG_HDR_LEN + m->n_endpoints * DISCO_ADDR_LEN;
		break;
	default:
		return 0;
	}
	if (len > cap)
		return 0;

	out[0] = m->type;
	out[1] = DISCO_VERSION;
	switch (m->type) {
	case DISCO_PING:
		memcpy(out + 2, m->txid, DISCO_TXID_LEN);
		if (m->has_node_key)
			memcpy(out + 2 + DISCO_TXID_LEN, m->node_key, 32);
		break;
	case DISCO_PONG:
		memcpy(out + 2, m->txid, DISCO_TXID_LEN);
		if (!put_addr(out + 2 + DISCO_TXID_LEN, &m->src))
			return 0;
		break;
	case DISCO_CALL_ME_MAYBE:
		for (size_t i = 0; i < m->n_endpoints; i++) {
			if (!put_addr(out + 2 + i * DISCO_ADDR_LEN, &m->endpoints[i]))
				return 0;
		}
		break;
	}
	return len;
}

size_t
disco_seal(uint8_t *out, size_t cap, const uint8_t my_pub[32], const uint8_t shared[32],
    const struct disco_msg *m)
{
	uint8_t plain[DISCO_PLAIN_MAX];
	size_t len;

	len = disco_encode(plain, sizeof plain, m);
	if (len == 0 || cap < DISCO_OVERHEAD || len > cap - DISCO_OVERHEAD)
		return 0;
	memcpy(out, DISCO_MAGIC, DISCO_MAGIC_LEN);
	memcpy(out + DISCO_MAGIC_LEN, my_pub, DISCO_KEY_LEN);
	randombytes_buf(out + DISCO_MAGIC_LEN + DISCO_KEY_LEN, DISCO_NONCE_LEN);
	if (crypto_box_easy_afternm(out + DISCO_HDR_LEN, plain, len,
	    out + DISCO_MAGIC_LEN + DISCO_KEY_LEN, shared) != 0)
		return 0;
	return DISCO_OVERHEAD + len;
}

/*
 * Decodes a payload of which the first `avail` bytes of `total` are at
 * plain.  avail is at least MIN(total, DISCO_PLAIN_MAX).
 */
static int
decode(const uint8_t *plain, size_t avail, size_t total, struct disco_msg *m)
{
	const uint8_t *body = plain + DISCO_MSG_HDR_LEN;
	size_t body_len, n;

	memset(m, 0, sizeof *m);
	if (total < DISCO_MSG_HDR_LEN)
		return -EINVAL;
	body_len = total - DISCO_MSG_HDR_LEN;
	m->type = plain[0];

	switch (m->type) {
	case DISCO_PING:
		/* Clients before 1.16 send no node key; padding is allowed. */
		if (body_len < PING_BODY_MIN)
			return -EINVAL;
		memcpy(m->txid, body, DISCO_TXID_LEN);
		if (body_len >= PING_BODY_LEN) {
			memcpy(m->node_key, body + DISCO_TXID_LEN, 32);
			m->has_node_key = true;
		}
		return 0;
	case DISCO_PONG:
		if (body_len < PONG_BODY_LEN)
			return -EINVAL;
		memcpy(m->txid, body, DISCO_TXID_LEN);
		get_addr(body + DISCO_TXID_LEN, &m->src);
		return 0;
	case DISCO_CALL_ME_MAYBE:
		/*
		 * As disco.go's parseCallMeMaybe: a ragged body or another
		 * version is an empty list, not an error.
		 */
		if (plain[1] != DISCO_VERSION || body_len % DISCO_ADDR_LEN != 0)
			return 0;
		n = MIN(body_len / DISCO_ADDR_LEN, (size_t)DISCO_MAX_ENDPOINTS);
		if (DISCO_MSG_HDR_LEN + n * DISCO_ADDR_LEN > avail)
			return -EINVAL;		/* cannot happen; see the caller */
		for (size_t i = 0; i < n; i++)
			get_addr(body + i * DISCO_ADDR_LEN, &m->endpoints[i]);
		m->n_endpoints = n;
		return 0;
	default:
		/* Peer-relay messages (4..9) and anything newer. */
		return -ENOTSUP;
	}
}

int
disco_decode(const uint8_t *plain, size_t len, struct disco_msg *m)
{
	return decode(plain, len, len, m);
}

/*
 * crypto_box_open_easy_afternm() for the first `want` plaintext bytes only.
 * The secretbox keystream block 0 holds the Poly1305 key (bytes 0..31) and
 * the pad for plaintext bytes 0..31 (bytes 32..63); later plaintext bytes
 * are keystream blocks 1, 2, ...
 */
static bool
open_prefix(uint8_t *plain, size_t want, const uint8_t *box, size_t box_len,
    const uint8_t nonce[DISCO_NONCE_LEN], const uint8_t key[32])
{
	crypto_onetimeauth_poly1305_state st;
	uint8_t block0[64], tag[crypto_box_MACBYTES];
	const uint8_t *c = box + crypto_box_MACBYTES;
	size_t clen = box_len - crypto_box_MACBYTES, n, head;
	bool ok;

	crypto_stream_xsalsa20(block0, sizeof block0, nonce, key);
	crypto_onetimeauth_poly1305_init(&st, block0);
	crypto_onetimeauth_poly1305_update(&st, c, clen);
	crypto_onetimeauth_poly1305_final(&st, tag);
	ok = crypto_verify_16(tag, box) == 0;
	sodium_memzero(&st, sizeof st);

	if (ok) {
		n = MIN(want, clen);
		head = MIN(n, (size_t)32);
		for (size_t i = 0; i < head; i++)
			plain[i] = c[i] ^ block0[32 + i];
		if (n > head)
			crypto_stream_xsalsa20_xor_ic(plain + head, c + head, n - head, nonce, 1, key);
	}
	sodium_memzero(block0, sizeof block0);
	return ok;
}

int
disco_open(const uint8_t *pkt, size_t len, const uint8_t shared[32], struct disco_msg *m)
{
	uint8_t plain[DISCO_PLAIN_MAX];
	size_t total;
	int ret;

	memset(m, 0, sizeof *m);
	if (len < DISCO_OVERHEAD || !disco_looks_like(pkt, len))
		return -EBADMSG;
	total = len - DISCO_OVERHEAD;
	if (!open_prefix(plain, sizeof plain, pkt + DISCO_HDR_LEN, len - DISCO_HDR_LEN,
	    pkt + DISCO_MAGIC_LEN + DISCO_KEY_LEN, shared))
		return -EBADMSG;
	ret = decode(plain, MIN(total, sizeof plain), total, m);
	sodium_memzero(plain, sizeof plain);
	return ret;
}

// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * Disco codec: sealed round trips between two key pairs, the wire layouts
 * of disco/disco.go checked byte by byte after opening with libsodium
 * directly, packets sealed by libsodium directly (not by disco_seal) opened
 * by disco_open, and the malformed cases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>

#include "tests/unit/endpoints.h"
#include <errno.h>
#include <sodium.h>

#include "agent/magicsock/disco.h"
#include "common/util.h"

struct keys {
	uint8_t a_pub[32], a_priv[32], b_pub[32], b_priv[32];
	uint8_t ab[32], ba[32];		/* A's view, B's view */
};

static struct keys k;

static int
setup(void **state)
{
	crypto_box_keypair(k.a_pub, k.a_priv);
	crypto_box_keypair(k.b_pub, k.b_priv);
	if (!disco_shared_key(k.ab, k.b_pub, k.a_priv) || !disco_shared_key(k.ba, k.a_pub, k.b_priv))
		return -1;
	return 0;
}

static void
assert_ep_equal(const union wg_endpoint *a, const union wg_endpoint *b)
{
	assert_int_equal(a->sa.sa_family, b->sa.sa_family);
	if (a->sa.sa_family == AF_INET) {
		assert_int_equal(a->in4.sin_port, b->in4.sin_port);
		assert_memory_equal(&a->in4.sin_addr, &b->in4.sin_addr, 4);
	} else {
		assert_int_equal(a->in6.sin6_port, b->in6.sin6_port);
		assert_memory_equal(&a->in6.sin6_addr, &b->in6.sin6_addr, 16);
	}
}

/* Opens pkt with libsodium itself and returns the inner payload length. */
static size_t
sodium_open(uint8_t *plain, const uint8_t *pkt, size_t len, const uint8_t shared[32])
{
	assert_true(len >= DISCO_OVERHEAD);
	assert_int_equal(crypto_box_open_easy_afternm(plain, pkt + DISCO_HDR_LEN, len - DISCO_HDR_LEN,
	    pkt + 38, shared), 0);
	return len - DISCO_OVERHEAD;
}

/* Seals a payload with libsodium itself, as a Go peer would. */
static size_t
sodium_seal(uint8_t *pkt, const uint8_t *plain, size_t len, const uint8_t sender[32],
    const uint8_t shared[32])
{
	memcpy(pkt, "TS\xf0\x9f\x92\xac", 6);
	memcpy(pkt + 6, sender, 32);
	randombytes_buf(pkt + 38, 24);
	assert_int_equal(crypto_box_easy_afternm(pkt + DISCO_HDR_LEN, plain, len, pkt + 38, shared), 0);
	return DISCO_OVERHEAD + len;
}

static void
test_shared_key(void **state)
{
	uint8_t zero[32] = { 0 }, s[32];

	assert_memory_equal(k.ab, k.ba, 32);
	/* A low-order point gives an all-zero secret: refused, output wiped. */
	memset(s, 0xaa, sizeof s);
	assert_false(disco_shared_key(s, zero, k.a_priv));
	assert_memory_equal(s, zero, 32);
}

static void
test_ping_round_trip(void **state)
{
	struct disco_msg m = { .type = DISCO_PING, .has_node_key = true }, got;
	uint8_t pkt[DISCO_MAX_LEN], plain[256];
	size_t n;

	for (int i = 0; i < 12; i++)
		m.txid[i] = (uint8_t)(0x10 + i);
	for (int i = 0; i < 32; i++)
		m.node_key[i] = (uint8_t)(0x80 + i);
	n = disco_seal(pkt, sizeof pkt, k.a_pub, k.ab, &m);
	assert_int_equal(n, 124);
	assert_int_equal(n, DISCO_PING_LEN);
	assert_true(disco_looks_like(pkt, n));
	assert_memory_equal(pkt, "TS\xf0\x9f\x92\xac", 6);
	assert_memory_equal(disco_sender_key(pkt), k.a_pub, 32);

	/* Wire layout: 01 00 txid nodekey. */
	assert_int_equal(sodium_open(plain, pkt, n, k.ba), 46);
	assert_int_equal(plain[0], 1);
	assert_int_equal(plain[1], 0);
	assert_memory_equal(plain + 2, m.txid, 12);
	assert_memory_equal(plain + 14, m.node_key, 32);

	assert_int_equal(disco_open(pkt, n, k.ba, &got), 0);
	assert_int_equal(got.type, DISCO_PING);
	assert_memory_equal(got.txid, m.txid, 12);
	assert_true(got.has_node_key);
	assert_memory_equal(got.node_key, m.node_key, 32);
}

static void
test_ping_without_node_key(void **state)
{
	struct disco_msg m = { .type = DISCO_PING }, got;
	uint8_t pkt[DISCO_MAX_LEN];
	size_t n;

	memset(m.txid, 7, sizeof m.txid);
	n = disco_seal(pkt, sizeof pkt, k.a_pub, k.ab, &m);
	assert_int_equal(n, 124 - 32);
	assert_int_equal(disco_open(pkt, n, k.ba, &got), 0);
	assert_int_equal(got.type, DISCO_PING);
	assert_false(got.has_node_key);
	assert_memory_equal(got.txid, m.txid, 12);
}

/* A padded ping (path-MTU probe) sealed by a foreign sender, 9000 bytes long. */
static void
test_padded_ping_from_peer(void **state)
{
	static uint8_t plain[9000], pkt[9000 + DISCO_OVERHEAD];
	struct disco_msg got;
	size_t n;

	memset(plain, 0, sizeof plain);
	plain[0] = 1;
	memset(plain + 2, 0x33, 12);
	memset(plain + 14, 0x44, 32);
	n = sodium_seal(pkt, plain, sizeof plain, k.b_pub, k.ba);
	assert_int_equal(disco_open(pkt, n, k.ab, &got), 0);
	assert_int_equal(got.type, DISCO_PING);
	assert_true(got.has_node_key);
	for (int i = 0; i < 32; i++)
		assert_int_equal(got.node_key[i], 0x44);
	/* The tag covers the tail too: flip the last byte. */
	pkt[n - 1] ^= 1;
	assert_int_equal(disco_open(pkt, n, k.ab, &got), -EBADMSG);
}

static void
test_pong_v4_v6(void **state)
{
	struct disco_msg m = { .type = DISCO_PONG }, got;
	uint8_t pkt[DISCO_MAX_LEN], plain[64];
	static const uint8_t want_v4[18] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 7, 0xa2, 0xa9,
	};
	size_t n;

	memset(m.txid, 0x21, sizeof m.txid);
	m.src = ep4("198.51.100.7", 41641);
	n = disco_seal(pkt, sizeof pkt, k.b_pub, k.ba, &m);
	assert_int_equal(n, 110);
	assert_int_equal(n, DISCO_PONG_LEN);
	assert_int_equal(sodium_open(plain, pkt, n, k.ab), 32);
	assert_int_equal(plain[0], 2);
	assert_memory_equal(plain + 2, m.txid, 12);
	assert_memory_equal(plain + 14, want_v4, 18);
	assert_int_equal(disco_open(pkt, n, k.ab, &got), 0);
	assert_int_equal(got.type, DISCO_PONG);
	assert_memory_equal(got.txid, m.txid, 12);
	assert_ep_equal(&got.src, &m.src);

	m.src = ep6("2001:db8::5", 3478);
	n = disco_seal(pkt, sizeof pkt, k.b_pub, k.ba, &m);
	assert_int_equal(n, 110);
	assert_int_equal(sodium_open(plain, pkt, n, k.ab), 32);
	assert_int_equal(plain[14], 0x20);
	assert_int_equal(plain[15], 0x01);
	assert_int_equal(get_be16(plain + 30), 3478);
	assert_int_equal(disco_open(pkt, n, k.ab, &got), 0);
	assert_ep_equal(&got.src, &m.src);

	/* The fake DERP source 127.3.3.40:<region>. */
	m.src = ep4("127.3.3.40", 900);
	n = disco_seal(pkt, sizeof pkt, k.b_pub, k.ba, &m);
	assert_int_equal(disco_open(pkt, n, k.ab, &got), 0);
	assert_ep_equal(&got.src, &m.src);
}

static void
test_call_me_maybe(void **state)
{
	struct disco_msg m = { .type = DISCO_CALL_ME_MAYBE }, got;
	uint8_t pkt[DISCO_MAX_LEN], plain[DISCO_MAX_LEN];
	size_t n;

	n = disco_seal(pkt, sizeof pkt, k.a_pub, k.ab, &m);
	assert_int_equal(n, 80);
	assert_int_equal(disco_open(pkt, n, k.ba, &got), 0);
	assert_int_equal(got.type, DISCO_CALL_ME_MAYBE);
	assert_int_equal(got.n_endpoints, 0);

	m.n_endpoints = 1;
	m.endpoints[0] = ep4("203.0.113.1", 41641);
	n = disco_seal(pkt, sizeof pkt, k.a_pub, k.ab, &m);
	assert_int_equal(n, 98);
	assert_int_equal(disco_open(pkt, n, k.ba, &got), 0);
	assert_int_equal(got.n_endpoints, 1);
	assert_ep_equal(&got.endpoints[0], &m.endpoints[0]);

	m.n_endpoints = 3;
	m.endpoints[1] = ep6("2001:db8:1::2", 41641);
	m.endpoints[2] = ep4("192.168.1.20", 1);
	n = disco_seal(pkt, sizeof pkt, k.a_pub, k.ab, &m);
	assert_int_equal(n, 80 + 3 * 18);
	assert_int_equal(n, DISCO_CMM_LEN(3));
	assert_int_equal(sodium_open(plain, pkt, n, k.ba), 2 + 3 * 18);
	assert_int_equal(plain[0], 3);
	assert_int_equal(plain[2 + 18 + 0], 0x20);		/* v6 entry verbatim */
	assert_int_equal(plain[2 + 36 + 11], 0xff);		/* v4-mapped */
	assert_int_equal(plain[2 + 36 + 12], 192);
	assert_int_equal(get_be16(plain + 2 + 36 + 16), 1);
	assert_int_equal(disco_open(pkt, n, k.ba, &got), 0);
	assert_int_equal(got.n_endpoints, 3);
	for (int i = 0; i < 3; i++)
		assert_ep_equal(&got.endpoints[i], &m.endpoints[i]);

	/* The largest message we build. */
	m.n_endpoints = DISCO_MAX_ENDPOINTS;
	for (int i = 0; i < DISCO_MAX_ENDPOINTS; i++)
		m.endpoints[i] = ep4("10.0.0.1", (uint16_t)(1000 + i));
	n = disco_seal(pkt, sizeof pkt, k.a_pub, k.ab, &m);
	assert_int_equal(n, DISCO_MAX_LEN);
	assert_int_equal(disco_open(pkt, n, k.ba, &got), 0);
	assert_int_equal(got.n_endpoints, DISCO_MAX_ENDPOINTS);
	assert_int_equal(ntohs(got.endpoints[31].in4.sin_port), 1031);
}

static void
test_call_me_maybe_lax(void **state)
{
	uint8_t plain[2 + 40 * 18], pkt[sizeof plain + DISCO_OVERHEAD];
	struct disco_msg got;
	size_t n;

	/* 40 entries from a peer: the first DISCO_MAX_ENDPOINTS are kept. */
	plain[0] = 3;
	plain[1] = 0;
	for (int i = 0; i < 40; i++) {
		uint8_t *e = plain + 2 + 18 * i;

		memset(e, 0, 10);
		e[10] = e[11] = 0xff;
		e[12] = 100;
		e[13] = 64;
		e[14] = 0;
		e[15] = (uint8_t)i;
		put_be16(e + 16, (uint16_t)(2000 + i));
	}
	n = sodium_seal(pkt, plain, sizeof plain, k.b_pub, k.ba);
	assert_int_equal(disco_open(pkt, n, k.ab, &got), 0);
	assert_int_equal(got.n_endpoints, DISCO_MAX_ENDPOINTS);
	assert_int_equal(ntohs(got.endpoints[31].in4.sin_port), 2031);
	assert_int_equal(((uint8_t *)&got.endpoints[31].in4.sin_addr)[3], 31);

	/* Not a multiple of 18: an empty list, as Go. */
	n = sodium_seal(pkt, plain, 2 + 18 + 5, k.b_pub, k.ba);
	assert_int_equal(disco_open(pkt, n, k.ab, &got), 0);
	assert_int_equal(got.type, DISCO_CALL_ME_MAYBE);
	assert_int_equal(got.n_endpoints, 0);

	/* Another version: empty too. */
	plain[1] = 1;
	n = sodium_seal(pkt, plain, 2 + 18, k.b_pub, k.ba);
	assert_int_equal(disco_open(pkt, n, k.ab, &got), 0);
	assert_int_equal(got.n_endpoints, 0);
	assert_int_equal(disco_decode(plain, 2 + 18, &got), 0);
	assert_int_equal(got.n_endpoints, 0);
	plain[1] = 0;
	assert_int_equal(disco_decode(plain, 2 + 18, &got), 0);
	assert_int_equal(got.n_endpoints, 1);
}

static void
test_tamper(void **state)
{
	struct disco_msg m = { .type = DISCO_PING, .has_node_key = true }, got;
	uint8_t pkt[DISCO_MAX_LEN], bad[DISCO_MAX_LEN], other[32];
	size_t n;

	n = disco_seal(pkt, sizeof pkt, k.a_pub, k.ab, &m);
	assert_int_equal(n, 124);
	/* Magic, nonce, MAC and ciphertext are all covered. */
	for (size_t i = 0; i < n; i++) {
		if (i >= 6 && i < 38)
			continue;	/* the sender key selects the box key; see below */
		memcpy(bad, pkt, n);
		bad[i] ^= 0x01;
		assert_int_equal(disco_open(bad, n, k.ba, &got), -EBADMSG);
	}
	/* Truncated anywhere. */
	for (size_t len = 0; len < n; len++)
		assert_int_equal(disco_open(pkt, len, k.ba, &got), -EBADMSG);
	/* The wrong shared key (e.g. a peer that restarted with a new one). */
	memcpy(other, k.ba, 32);
	other[0] ^= 1;
	assert_int_equal(disco_open(pkt, n, other, &got), -EBADMSG);
	/* Trailing bytes after the box fail the tag: they are ciphertext. */
	memcpy(bad, pkt, n);
	bad[n] = 0;
	assert_int_equal(disco_open(bad, n + 1, k.ba, &got), -EBADMSG);
	/* Still intact. */
	assert_int_equal(disco_open(pkt, n, k.ba, &got), 0);
}

static void
test_bad_bodies(void **state)
{
	uint8_t plain[64] = { 0 }, pkt[64 + DISCO_OVERHEAD];
	struct disco_msg got;
	size_t n;

	/* Shorter than type + version. */
	n = sodium_seal(pkt, plain, 1, k.b_pub, k.ba);
	assert_int_equal(disco_open(pkt, n, k.ab, &got), -EINVAL);
	n = sodium_seal(pkt, plain, 0, k.b_pub, k.ba);
	assert_int_equal(disco_open(pkt, n, k.ab, &got), -EINVAL);

	/* Ping body under a TxID; Pong body under TxID + address. */
	plain[0] = DISCO_PING;
	assert_int_equal(disco_decode(plain, 2 + 11, &got), -EINVAL);
	assert_int_equal(disco_decode(plain, 2 + 12, &got), 0);
	assert_false(got.has_node_key);
	assert_int_equal(disco_decode(plain, 2 + 12 + 31, &got), 0);
	assert_false(got.has_node_key);
	plain[0] = DISCO_PONG;
	assert_int_equal(disco_decode(plain, 2 + 29, &got), -EINVAL);
	n = sodium_seal(pkt, plain, 2 + 29, k.b_pub, k.ba);
	assert_int_equal(disco_open(pkt, n, k.ab, &got), -EINVAL);
	/* Trailing bytes are ignored; the all-zero address is IPv6 "::". */
	assert_int_equal(disco_decode(plain, 2 + 30 + 9, &got), 0);
	assert_int_equal(got.src.sa.sa_family, AF_INET6);

	/* Relay messages and unknown types are not ours. */
	for (int t = 4; t <= 9; t++) {
		plain[0] = (uint8_t)t;
		n = sodium_seal(pkt, plain, 2 + 60, k.b_pub, k.ba);
		assert_int_equal(disco_open(pkt, n, k.ab, &got), -ENOTSUP);
	}
	plain[0] = 0;
	assert_int_equal(disco_decode(plain, 40, &got), -ENOTSUP);
	plain[0] = 0xff;
	assert_int_equal(disco_decode(plain, 40, &got), -ENOTSUP);
}

static void
test_seal_limits(void **state)
{
	struct disco_msg m = { .type = DISCO_PONG };
	uint8_t pkt[DISCO_MAX_LEN];

	/* No address to report. */
	assert_int_equal(disco_seal(pkt, sizeof pkt, k.a_pub, k.ab, &m), 0);
	m.src = ep4("1.2.3.4", 5);
	assert_int_equal(disco_seal(pkt, 109, k.a_pub, k.ab, &m), 0);
	assert_int_equal(disco_seal(pkt, 110, k.a_pub, k.ab, &m), 110);
	assert_int_equal(disco_seal(pkt, 10, k.a_pub, k.ab, &m), 0);
	m.type = 9;
	assert_int_equal(disco_seal(pkt, sizeof pkt, k.a_pub, k.ab, &m), 0);
	m.type = DISCO_CALL_ME_MAYBE;
	m.n_endpoints = DISCO_MAX_ENDPOINTS + 1;
	assert_int_equal(disco_seal(pkt, sizeof pkt, k.a_pub, k.ab, &m), 0);
	m.n_endpoints = 1;
	m.endpoints[0].sa.sa_family = AF_UNIX;
	assert_int_equal(disco_seal(pkt, sizeof pkt, k.a_pub, k.ab, &m), 0);
}

static void
test_looks_like(void **state)
{
	uint8_t b[80] = "TS\xf0\x9f\x92\xac";

	assert_true(disco_looks_like(b, 62));
	assert_false(disco_looks_like(b, 61));
	b[5] = 0xad;
	assert_false(disco_looks_like(b, 80));
}

static void
test_nonces_differ(void **state)
{
	struct disco_msg m = { .type = DISCO_CALL_ME_MAYBE };
	uint8_t p1[DISCO_MAX_LEN], p2[DISCO_MAX_LEN];

	assert_int_equal(disco_seal(p1, sizeof p1, k.a_pub, k.ab, &m), 80);
	assert_int_equal(disco_seal(p2, sizeof p2, k.a_pub, k.ab, &m), 80);
	assert_memory_not_equal(p1 + 38, p2 + 38, 24);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shared_key),
		cmocka_unit_test(test_ping_round_trip),
		cmocka_unit_test(test_ping_without_node_key),
		cmocka_unit_test(test_padded_ping_from_peer),
		cmocka_unit_test(test_pong_v4_v6),
		cmocka_unit_test(test_call_me_maybe),
		cmocka_unit_test(test_call_me_maybe_lax),
		cmocka_unit_test(test_tamper),
		cmocka_unit_test(test_bad_bodies),
		cmocka_unit_test(test_seal_limits),
		cmocka_unit_test(test_looks_like),
		cmocka_unit_test(test_nonces_differ),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests_name("disco", tests, setup, NULL);
}

// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * STUN codecs against vectors built independently (Python's zlib.crc32 and
 * struct/ipaddress, following RFC 5389 §15) rather than by our own encoder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <errno.h>

#include "agent/magicsock/stun.h"
#include "common/util.h"

/*
 * TxID 01..0c; FINGERPRINT = zlib.crc32(bytes 0..31, i.e. up to the
 * FINGERPRINT attribute) ^ 0x5354554e = 0xb32c370f, as stun.go computes it.
 */
static const char req_vec[] =
    "000100142112a4420102030405060708090a0b0c"
    "802200087461696c6e6f6465"
    "80280004b32c370f";

/* TxID a1..ac. */
static const char resp_v4[] =		/* XOR-MAPPED 1.2.3.4:41641 */
    "0101000c2112a442a1a2a3a4a5a6a7a8a9aaabac00200008000183bb2010a746";
static const char resp_v6[] =		/* XOR-MAPPED [2001:db8::1]:41641 */
    "010100182112a442a1a2a3a4a5a6a7a8a9aaabac00200014000283bb0113a9faa1a2a3a4a5a6a7a8a9aaabad";
static const char resp_alt[] =		/* 0x8020, 198.51.100.7:3478 */
    "0101000c2112a442a1a2a3a4a5a6a7a8a9aaabac8020000800012c84e721c045";
static const char resp_mapped[] =	/* MAPPED-ADDRESS only, 203.0.113.9:1234 */
    "0101000c2112a442a1a2a3a4a5a6a7a8a9aaabac00010008000104d2cb007109";
static const char resp_pad[] =		/* SOFTWARE "derp1" (+3 pad), then XOR 1.2.3.4:41641 */
    "010100182112a442a1a2a3a4a5a6a7a8a9aaabac80220005646572703100000000200008000183bb2010a746";
static const char resp_pad7[] =		/* SOFTWARE "derp123" (+1 pad), then XOR 1.2.3.4:41641 */
    "010100182112a442a1a2a3a4a5a6a7a8a9aaabac80220007646572703132330000200008000183bb2010a746";
static const char resp_both[] =		/* MAPPED 203.0.113.9:1234 then XOR 1.2.3.4:41641 */
    "010100182112a442a1a2a3a4a5a6a7a8a9aaabac00010008000104d2cb00710900200008000183bb2010a746";
static const char resp_v4mapped[] =	/* XOR-MAPPED [::ffff:10.1.2.3]:5555 */
    "010100182112a442a1a2a3a4a5a6a7a8a9aaabac00200014000234a12112a442a1a2a3a4a5a65857a3aba9af";

static const uint8_t resp_txid[12] = {
	0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac,
};

static size_t
unhex(uint8_t *out, const char *hex)
{
	size_t n = strlen(hex) / 2;

	for (size_t i = 0; i < n; i++)
		assert_int_equal(sscanf(hex + 2 * i, "%2hhx", &out[i]), 1);
	return n;
}

static void
assert_v4(const union wg_endpoint *ep, const char *ip, uint16_t port)
{
	char buf[INET_ADDRSTRLEN];

	assert_int_equal(ep->sa.sa_family, AF_INET);
	assert_non_null(inet_ntop(AF_INET, &ep->in4.sin_addr, buf, sizeof buf));
	assert_string_equal(buf, ip);
	assert_int_equal(ntohs(ep->in4.sin_port), port);
}

static void
assert_v6(const union wg_endpoint *ep, const char *ip, uint16_t port)
{
	char buf[INET6_ADDRSTRLEN];

	assert_int_equal(ep->sa.sa_family, AF_INET6);
	assert_non_null(inet_ntop(AF_INET6, &ep->in6.sin6_addr, buf, sizeof buf));
	assert_string_equal(buf, ip);
	assert_int_equal(ntohs(ep->in6.sin6_port), port);
}

static int
parse_hex(const char *hex, uint8_t txid[12], union wg_endpoint *ep)
{
	uint8_t b[256];
	size_t n = unhex(b, hex);

	return stun_parse_response(b, n, txid, ep);
}

static void
test_request_bytes(void **state)
{
	uint8_t txid[12], want[STUN_REQ_LEN], got[STUN_REQ_LEN];

	for (int i = 0; i < 12; i++)
		txid[i] = (uint8_t)(i + 1);
	assert_int_equal(unhex(want, req_vec), STUN_REQ_LEN);
	memset(got, 0xee, sizeof got);
	stun_build_request(got, txid);
	assert_memory_equal(got, want, STUN_REQ_LEN);
	/* Our own request is STUN but not a response. */
	assert_true(stun_looks_like(got, sizeof got));
	union wg_endpoint ep;
	assert_int_equal(stun_parse_response(got, sizeof got, txid, &ep), -EINVAL);
}

static void
test_request_fingerprint_tracks_txid(void **state)
{
	uint8_t a[STUN_REQ_LEN], b[STUN_REQ_LEN], txid[12] = { 0 };

	stun_build_request(a, txid);
	txid[11] = 1;
	stun_build_request(b, txid);
	assert_memory_not_equal(a + 36, b + 36, 4);
	assert_memory_equal(a + 20, b + 20, 16);
}

static void
test_looks_like(void **state)
{
	uint8_t b[64];

	unhex(b, resp_v4);
	assert_true(stun_looks_like(b, 32));
	assert_true(stun_looks_like(b, 20));
	assert_false(stun_looks_like(b, 19));
	b[0] |= 0x40;
	assert_false(stun_looks_like(b, 32));
	b[0] &= 0x3f;
	b[1] = 0x11;		/* not a binding */
	assert_false(stun_looks_like(b, 32));
	b[1] = 0x01;
	b[7] ^= 1;		/* cookie */
	assert_false(stun_looks_like(b, 32));
	/* A WireGuard initiation and a disco magic are not STUN. */
	memset(b, 0, sizeof b);
	b[0] = 1;
	assert_false(stun_looks_like(b, 64));
	memcpy(b, "TS\xf0\x9f\x92\xac", 6);
	assert_false(stun_looks_like(b, 64));
}

static void
test_xor_v4(void **state)
{
	uint8_t txid[12];
	union wg_endpoint ep;

	assert_int_equal(parse_hex(resp_v4, txid, &ep), 0);
	assert_memory_equal(txid, resp_txid, 12);
	assert_v4(&ep, "1.2.3.4", 41641);
}

static void
test_xor_v6(void **state)
{
	uint8_t txid[12];
	union wg_endpoint ep;

	assert_int_equal(parse_hex(resp_v6, txid, &ep), 0);
	assert_memory_equal(txid, resp_txid, 12);
	assert_v6(&ep, "2001:db8::1", 41641);
}

static void
test_xor_alt(void **state)
{
	uint8_t txid[12];
	union wg_endpoint ep;

	assert_int_equal(parse_hex(resp_alt, txid, &ep), 0);
	assert_v4(&ep, "198.51.100.7", 3478);
}

static void
test_mapped_fallback(void **state)
{
	uint8_t txid[12];
	union wg_endpoint ep;

	assert_int_equal(parse_hex(resp_mapped, txid, &ep), 0);
	assert_v4(&ep, "203.0.113.9", 1234);
	/* With both present, the XOR form wins wherever it comes. */
	assert_int_equal(parse_hex(resp_both, txid, &ep), 0);
	assert_v4(&ep, "1.2.3.4", 41641);
}

static void
test_padding(void **state)
{
	uint8_t b[128], txid[12];
	union wg_endpoint ep;
	size_t n;

	assert_int_equal(parse_hex(resp_pad, txid, &ep), 0);
	assert_v4(&ep, "1.2.3.4", 41641);
	assert_int_equal(parse_hex(resp_pad7, txid, &ep), 0);
	assert_v4(&ep, "1.2.3.4", 41641);
	/* Without its padding, the 5-byte attribute runs into the next one. */
	n = unhex(b, resp_pad);
	memmove(b + 29, b + 32, n - 32);
	n -= 3;
	put_be16(b + 2, (uint16_t)(n - 20));
	assert_int_equal(stun_parse_response(b, n, txid, &ep), -EINVAL);
}

static void
test_unmaps_v4_mapped(void **state)
{
	uint8_t txid[12];
	union wg_endpoint ep;

	assert_int_equal(parse_hex(resp_v4mapped, txid, &ep), 0);
	assert_v4(&ep, "10.1.2.3", 5555);
}

static void
test_trailing_trimmed(void **state)
{
	uint8_t b[128], txid[12];
	union wg_endpoint ep;
	size_t n = unhex(b, resp_v4);

	/* Junk after the header's length -- even a malformed attribute -- is ignored. */
	memcpy(b + n, "\x00\x20\xff\xff garbage", 12);
	assert_int_equal(stun_parse_response(b, n + 12, txid, &ep), 0);
	assert_v4(&ep, "1.2.3.4", 41641);
}

static void
test_truncated(void **state)
{
	uint8_t b[128], txid[12];
	union wg_endpoint ep;
	size_t n = unhex(b, resp_v6);

	for (size_t len = 0; len < n; len++)
		assert_int_equal(stun_parse_response(b, len, txid, &ep), -EINVAL);
	/* A header length shorter than the address attribute cuts it. */
	put_be16(b + 2, 0x10);
	assert_int_equal(stun_parse_response(b, n, txid, &ep), -EINVAL);
	/* No attributes at all: no address. */
	put_be16(b + 2, 0);
	assert_int_equal(stun_parse_response(b, n, txid, &ep), -EINVAL);
}

static void
test_rejects(void **state)
{
	uint8_t b[128], txid[12];
	union wg_endpoint ep;
	size_t n;

	n = unhex(b, resp_v4);
	b[4] ^= 0x01;		/* wrong cookie */
	assert_int_equal(stun_parse_response(b, n, txid, &ep), -EINVAL);

	n = unhex(b, resp_v4);
	b[1] = 0x11;		/* error response */
	assert_int_equal(stun_parse_response(b, n, txid, &ep), -EINVAL);

	n = unhex(b, resp_v4);
	b[0] = 0x00;		/* a request */
	assert_int_equal(stun_parse_response(b, n, txid, &ep), -EINVAL);

	n = unhex(b, resp_v4);
	b[25] = 0x03;		/* unknown family */
	assert_int_equal(stun_parse_response(b, n, txid, &ep), -EINVAL);

	n = unhex(b, resp_v6);
	b[25] = 0x01;		/* says v4, fine: 16 bytes hold 4 */
	assert_int_equal(stun_parse_response(b, n, txid, &ep), 0);
	assert_int_equal(ep.sa.sa_family, AF_INET);

	n = unhex(b, resp_v4);
	b[25] = 0x02;		/* says v6 but carries 4 bytes */
	assert_int_equal(stun_parse_response(b, n, txid, &ep), -EINVAL);

	n = unhex(b, resp_v4);
	put_be16(b + 22, 2);	/* attribute too short for family + port */
	assert_int_equal(stun_parse_response(b, n, txid, &ep), -EINVAL);
}

/* The request is what tailscale's stun.ParseBindingRequest would accept. */
static void
test_request_structure(void **state)
{
	uint8_t b[STUN_REQ_LEN], txid[12];

	memset(txid, 0x5a, sizeof txid);
	stun_build_request(b, txid);
	assert_int_equal(get_be16(b + 2), STUN_REQ_LEN - STUN_HDR_LEN);
	assert_memory_equal(b + 8, txid, 12);
	assert_int_equal(get_be16(b + 20), 0x8022);
	assert_memory_equal(b + 24, "tailnode", 8);
	assert_int_equal(get_be16(b + 32), 0x8028);
	assert_int_equal(get_be16(b + 34), 4);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_bytes),
		cmocka_unit_test(test_request_fingerprint_tracks_txid),
		cmocka_unit_test(test_request_structure),
		cmocka_unit_test(test_looks_like),
		cmocka_unit_test(test_xor_v4),
		cmocka_unit_test(test_xor_v6),
		cmocka_unit_test(test_xor_alt),
		cmocka_unit_test(test_mapped_fallback),
		cmocka_unit_test(test_padding),
		cmocka_unit_test(test_unmaps_v4_mapped),
		cmocka_unit_test(test_trailing_trimmed),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_rejects),
	};

	return cmocka_run_group_tests_name("stun", tests, NULL, NULL);
}

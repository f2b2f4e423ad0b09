// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * Disco packets and payloads on untrusted bytes.
 *
 * Input: [mode][bytes...].  mode % 2 picks what the bytes are:
 *   0  a whole packet, opened with a fixed shared key (the seeds are
 *      packets sealed with it);
 *   1  an inner payload, sealed here with libsodium under that key and then
 *      opened, so every input reaches the decoder through disco_open().
 * Either way the verdict must match libsodium's crypto_box_open_easy_afternm
 * followed by disco_decode() of the whole plaintext -- disco_open()
 * authenticates the whole box but decrypts only a prefix -- and a decoded
 * message must survive disco_encode()/disco_seal() and back unchanged.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "agent/magicsock/disco.h"
#include "common/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT 65536

static uint8_t a_pub[32], b_pub[32], shared[32];
static uint8_t pkt[FUZZ_MAX_INPUT + DISCO_OVERHEAD], plain[FUZZ_MAX_INPUT + DISCO_OVERHEAD];

static void
setup(void)
{
	uint8_t seed[32], a_priv[32], b_priv[32], other[32];

	if (sodium_init() < 0)
		abort();
	memset(seed, 0x01, sizeof seed);
	crypto_box_seed_keypair(a_pub, a_priv, seed);
	memset(seed, 0x02, sizeof seed);
	crypto_box_seed_keypair(b_pub, b_priv, seed);
	/* B opens what A seals. */
	if (!disco_shared_key(shared, a_pub, b_priv) || !disco_shared_key(other, b_pub, a_priv) ||
	    memcmp(shared, other, 32) != 0)
		abort();
}

static bool
ep_same(const union wg_endpoint *a, const union wg_endpoint *b)
{
	if (a->sa.sa_family != b->sa.sa_family)
		return false;
	switch (a->sa.sa_family) {
	case AF_INET:
		return a->in4.sin_port == b->in4.sin_port &&
		    a->in4.sin_addr.s_addr == b->in4.sin_addr.s_addr;
	case AF_INET6:
		return a->in6.sin6_port == b->in6.sin6_port &&
		    memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, 16) == 0;
	default:
		return true;
	}
}

static bool
msg_same(const struct disco_msg *a, const struct disco_msg *b)
{
	if (a->type != b->type || memcmp(a->txid, b->txid, sizeof a->txid) != 0 ||
	    a->has_node_key != b->has_node_key ||
	    memcmp(a->node_key, b->node_key, sizeof a->node_key) != 0 ||
	    !ep_same(&a->src, &b->src) || a->n_endpoints != b->n_endpoints)
		return false;
	for (size_t i = 0; i < a->n_endpoints; i++) {
		if (!ep_same(&a->endpoints[i], &b->endpoints[i]))
			return false;
	}
	return true;
}

static bool
addr_ok(const union wg_endpoint *ep)
{
	return ep->sa.sa_family == AF_INET || ep->sa.sa_family == AF_INET6;
}

/* A decoded message is well-formed and round-trips. */
static void
check_msg(const struct disco_msg *m)
{
	static uint8_t enc[DISCO_MAX_LEN], sealed[DISCO_MAX_LEN];
	struct disco_msg again;
	size_t n;

	if (m->type < DISCO_PING || m->type > DISCO_CALL_ME_MAYBE ||
	    m->n_endpoints > DISCO_MAX_ENDPOINTS)
		abort();
	if (m->type != DISCO_CALL_ME_MAYBE && m->n_endpoints != 0)
		abort();
	if (m->type == DISCO_PONG && !addr_ok(&m->src))
		abort();
	for (size_t i = 0; i < m->n_endpoints; i++) {
		if (!addr_ok(&m->endpoints[i]))
			abort();
	}

	n = disco_encode(enc, sizeof enc, m);
	if (n == 0 || disco_decode(enc, n, &again) != 0 || !msg_same(m, &again))
		abort();
	n = disco_seal(sealed, sizeof sealed, a_pub, shared, m);
	if (n == 0 || n > DISCO_MAX_LEN || !disco_looks_like(sealed, n) ||
	    memcmp(disco_sender_key(sealed), a_pub, 32) != 0 ||
	    disco_open(sealed, n, shared, &again) != 0 || !msg_same(m, &again))
		abort();
}

static void
open_and_compare(const uint8_t *p, size_t len)
{
	struct disco_msg m, ref;
	int ret, want;

	ret = disco_open(p, len, shared, &m);
	if (len < DISCO_OVERHEAD || !disco_looks_like(p, len) ||
	    crypto_box_open_easy_afternm(plain, p + DISCO_HDR_LEN, len - DISCO_HDR_LEN,
	    p + DISCO_MAGIC_LEN + DISCO_KEY_LEN, shared) != 0)
		want = -EBADMSG;
	else
		want = disco_decode(plain, len - DISCO_OVERHEAD, &ref);
	if (ret != want)
		abort();
	if (ret != 0 && ret != -EBADMSG && ret != -EINVAL && ret != -ENOTSUP)
		abort();
	if (ret == 0) {
		if (!msg_same(&m, &ref))
			abort();
		check_msg(&m);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	struct disco_msg m;
	size_t n;

	if (!ready) {
		setup();
		ready = true;
	}
	if (size < 1 || size - 1 > FUZZ_MAX_INPUT)
		return 0;

	if (data[0] % 2 == 0) {
		open_and_compare(data + 1, size - 1);
	} else {
		n = size - 1;
		memcpy(pkt, DISCO_MAGIC, DISCO_MAGIC_LEN);
		memcpy(pkt + DISCO_MAGIC_LEN, a_pub, 32);
		memset(pkt + DISCO_MAGIC_LEN + 32, 0x5a, DISCO_NONCE_LEN);
		if (crypto_box_easy_afternm(pkt + DISCO_HDR_LEN, data + 1, n,
		    pkt + DISCO_MAGIC_LEN + 32, shared) != 0)
			abort();
		if (disco_open(pkt, n + DISCO_OVERHEAD, shared, &m) == -EBADMSG)
			abort();
		open_and_compare(pkt, n + DISCO_OVERHEAD);
	}

	/* And the decoder alone, on the raw bytes. */
	if (disco_decode(data + 1, size - 1, &m) == 0)
		check_msg(&m);
	return 0;
}

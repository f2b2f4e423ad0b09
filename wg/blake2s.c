// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/util.h"
#include "wg/blake2s.h"

/*
 * BLAKE2s as specified in RFC 7693, written for clarity rather than speed:
 * WireGuard only hashes during handshakes (chaining key, mac1/mac2, cookie),
 * so one portable compression function is plenty.
 */

/* The SHA-256 IV (RFC 7693 §2.6). */
static const uint32_t blake2s_iv[8] = {
	0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

/* Message word schedule σ for the 10 rounds (RFC 7693 §2.7). */
static const uint8_t blake2s_sigma[10][16] = {
	{ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 },
	{ 14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3 },
	{ 11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4 },
	{ 7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8 },
	{ 9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13 },
	{ 2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9 },
	{ 12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11 },
	{ 13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10 },
	{ 6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5 },
	{ 10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0 },
};

static inline uint32_t
ror32(uint32_t x, unsigned int n)
{
	return x >> n | x << (32 - n);
}

/* The mixing function G (RFC 7693 §3.1) with BLAKE2s's rotations 16, 12, 8, 7. */
static inline void
mix(uint32_t v[16], int a, int b, int c, int d, uint32_t x, uint32_t y)
{
	v[a] = v[a] + v[b] + x;
	v[d] = ror32(v[d] ^ v[a], 16);
	v[c] = v[c] + v[d];
	v[b] = ror32(v[b] ^ v[c], 12);
	v[a] = v[a] + v[b] + y;
	v[d] = ror32(v[d] ^ v[a], 8);
	v[c] = v[c] + v[d];
	v[b] = ror32(v[b] ^ v[c], 7);
}

/*
 * The compression function F (RFC 7693 §3.2).  The counter and the
 * final-block flag are read from the state, so callers set them first.
 */
static void
compress(struct blake2s_state *s, const uint8_t block[static BLAKE2S_BLOCK_SIZE])
{
	uint32_t m[16], v[16];
	int i, r;

	for (i = 0; i < 16; i++)
		m[i] = get_le32(block + 4 * i);
	for (i = 0; i < 8; i++) {
		v[i] = s->h[i];
		v[i + 8] = blake2s_iv[i];
	}
	v[12] ^= s->t[0];
	v[13] ^= s->t[1];
	v[14] ^= s->f[0];
	v[15] ^= s->f[1];

	for (r = 0; r < 10; r++) {
		const uint8_t *sg = blake2s_sigma[r];

		mix(v, 0, 4, 8, 12, m[sg[0]], m[sg[1]]);
		mix(v, 1, 5, 9, 13, m[sg[2]], m[sg[3]]);
		mix(v, 2, 6, 10, 14, m[sg[4]], m[sg[5]]);
		mix(v, 3, 7, 11, 15, m[sg[6]], m[sg[7]]);
		mix(v, 0, 5, 10, 15, m[sg[8]], m[sg[9]]);
		mix(v, 1, 6, 11, 12, m[sg[10]], m[sg[11]]);
		mix(v, 2, 7, 8, 13, m[sg[12]], m[sg[13]]);
		mix(v, 3, 4, 9, 14, m[sg[14]], m[sg[15]]);
	}

	for (i = 0; i < 8; i++)
		s->h[i] ^= v[i] ^ v[i + 8];

	/* In keyed mode and under HMAC the message words and working vector are key-derived. */
	sodium_memzero(m, sizeof m);
	sodium_memzero(v, sizeof v);
}

/* t is a 64-bit byte count split across two words. */
static inline void
add_counter(struct blake2s_state *s, uint32_t inc)
{
	s->t[0] += inc;
	if (s->t[0] < inc)
		s->t[1]++;
}

void
blake2s_init(struct blake2s_state *s, size_t outlen, const uint8_t *key, size_t keylen)
{
	/*
	 * The API has no error return and a wrong length here is always a
	 * programming error with a constant argument, so fail loudly rather
	 * than produce a digest nobody else can reproduce.
	 */
	if (outlen == 0 || outlen > BLAKE2S_HASH_SIZE || keylen > BLAKE2S_KEY_SIZE ||
	    (keylen > 0 && key == NULL))
		abort();

	memset(s, 0, sizeof *s);
	memcpy(s->h, blake2s_iv, sizeof s->h);
	/* Parameter block word 0: digest length, key length, fanout 1, depth 1. */
	s->h[0] ^= 0x01010000 ^ (uint32_t)keylen << 8 ^ (uint32_t)outlen;
	s->outlen = outlen;

	/*
	 * A key is zero-padded to a full block and hashed as the first block
	 * (RFC 7693 §3.3).  It goes through update() so that, with empty
	 * input, this block is the one final() compresses with the final flag.
	 */
	if (keylen > 0) {
		uint8_t block[BLAKE2S_BLOCK_SIZE] = { 0 };

		memcpy(block, key, keylen);
		blake2s_update(s, block, sizeof block);
		sodium_memzero(block, sizeof block);
	}
}

void
blake2s_update(struct blake2s_state *s, const uint8_t *in, size_t inlen)
{
	size_t fill;

	if (inlen == 0)
		return;

	/*
	 * The last block must be compressed with the final flag set, so a
	 * full buffer is only compressed once we know more input follows.
	 */
	fill = BLAKE2S_BLOCK_SIZE - s->buflen;
	if (inlen > fill) {
		memcpy(s->buf + s->buflen, in, fill);
		add_counter(s, BLAKE2S_BLOCK_SIZE);
		compress(s, s->buf);
		s->buflen = 0;
		in += fill;
		inlen -= fill;

		while (inlen > BLAKE2S_BLOCK_SIZE) {
			add_counter(s, BLAKE2S_BLOCK_SIZE);
			compress(s, in);
			in += BLAKE2S_BLOCK_SIZE;
			inlen -= BLAKE2S_BLOCK_SIZE;
		}
	}
	memcpy(s->buf + s->buflen, in, inlen);
	s->buflen += inlen;
}

void
blake2s_final(struct blake2s_state *s, uint8_t *out)
{
	uint8_t digest[BLAKE2S_HASH_SIZE];
	int i;

	add_counter(s, (uint32_t)s->buflen);
	s->f[0] = 0xffffffff;
	memset(s->buf + s->buflen, 0, BLAKE2S_BLOCK_SIZE - s->buflen);
	compress(s, s->buf);

	for (i = 0; i < 8; i++)
		put_le32(digest + 4 * i, s->h[i]);
	memcpy(out, digest, s->outlen);

	sodium_memzero(digest, sizeof digest);
	sodium_memzero(s, sizeof *s);
}

void
blake2s(uint8_t *out, size_t outlen, const uint8_t *key, size_t keylen,
    const uint8_t *in, size_t inlen)
{
	struct blake2s_state s;

	blake2s_init(&s, outlen, key, keylen);
	blake2s_update(&s, in, inlen);
	blake2s_final(&s, out);
}

/*
 * HMAC (RFC 2104) with B = 64 and L = 32.  WireGuard's KDF is built on this
 * rather than on keyed BLAKE2s, so it must match the textbook construction.
 * The result goes to a local buffer first, so out may alias key or in
 * (the KDF chains outputs back in as keys).
 */
void
blake2s_hmac(uint8_t out[static BLAKE2S_HASH_SIZE], const uint8_t *key, size_t keylen,
    const uint8_t *in, size_t inlen)
{
	struct blake2s_state s;
	uint8_t k[BLAKE2S_BLOCK_SIZE] = { 0 };
	uint8_t pad[BLAKE2S_BLOCK_SIZE];
	uint8_t ihash[BLAKE2S_HASH_SIZE];
	int i;

	/*
	 * The header only promises keys up to one block, but RFC 2104 says
	 * a longer key is first hashed, so honour that instead of truncating.
	 */
	if (keylen > BLAKE2S_BLOCK_SIZE)
		blake2s(k, BLAKE2S_HASH_SIZE, NULL, 0, key, keylen);
	else if (keylen > 0)
		memcpy(k, key, keylen);

	for (i = 0; i < BLAKE2S_BLOCK_SIZE; i++)
		pad[i] = k[i] ^ 0x36;
	blake2s_init(&s, BLAKE2S_HASH_SIZE, NULL, 0);
	blake2s_update(&s, pad, sizeof pad);
	blake2s_update(&s, in, inlen);
	blake2s_final(&s, ihash);

	for (i = 0; i < BLAKE2S_BLOCK_SIZE; i++)
		pad[i] = k[i] ^ 0x5c;
	blake2s_init(&s, BLAKE2S_HASH_SIZE, NULL, 0);
	blake2s_update(&s, pad, sizeof pad);
	blake2s_update(&s, ihash, sizeof ihash);
	blake2s_final(&s, ihash);

	memcpy(out, ihash, BLAKE2S_HASH_SIZE);

	sodium_memzero(k, sizeof k);
	sodium_memzero(pad, sizeof pad);
	sodium_memzero(ihash, sizeof ihash);
}

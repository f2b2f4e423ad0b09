/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_BLAKE2S_H
#define MESHD_BLAKE2S_H

#include <stddef.h>
#include <stdint.h>

/*
 * BLAKE2s (RFC 7693), keyed and unkeyed, plus HMAC-BLAKE2s (RFC 2104).
 * Neither libsodium 1.0.18 nor a fixed-cost OpenSSL call offers keyed
 * BLAKE2s with a 16-byte digest, which WireGuard's mac1/mac2 need, so we
 * carry our own ~150 lines, checked against the RFC 7693 self-test and the
 * official KAT vectors.  Only handshakes use it, so it favours clarity.
 */
#define BLAKE2S_BLOCK_SIZE 64
#define BLAKE2S_HASH_SIZE 32
#define BLAKE2S_KEY_SIZE 32

struct blake2s_state {
	uint32_t h[8];
	uint32_t t[2];
	uint32_t f[2];
	uint8_t buf[BLAKE2S_BLOCK_SIZE];
	size_t buflen;
	size_t outlen;
};

/* outlen 1..32; key may be NULL when keylen is 0; keylen 0..32. */
void blake2s_init(struct blake2s_state *s, size_t outlen, const uint8_t *key, size_t keylen);
void blake2s_update(struct blake2s_state *s, const uint8_t *in, size_t inlen);
/* Writes s->outlen bytes and wipes the state. */
void blake2s_final(struct blake2s_state *s, uint8_t *out);

/* One-shot: out = BLAKE2s(key, in), outlen bytes. */
void blake2s(uint8_t *out, size_t outlen, const uint8_t *key, size_t keylen,
    const uint8_t *in, size_t inlen);

/* out (32 bytes) = HMAC-BLAKE2s-256(key, in).  keylen <= 64. */
void blake2s_hmac(uint8_t out[static BLAKE2S_HASH_SIZE], const uint8_t *key, size_t keylen,
    const uint8_t *in, size_t inlen);

#endif

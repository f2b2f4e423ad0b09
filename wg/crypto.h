/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_WG_CRYPTO_H
#define MESHD_WG_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

/*
 * The primitives WireGuard is built from (whitepaper §5.4).
 *
 * Handshake AEAD and X25519 come from libsodium: they run once per
 * handshake on stack buffers.  Transport data uses OpenSSL's EVP
 * ChaCha20-Poly1305, about twice libsodium 1.0.18's speed at tunnel packet
 * sizes, through a context keyed once per session.
 */
#define WG_HASH_LEN 32
#define WG_AEAD_KEY_LEN 32

/* HASH(a || b) */
void wg_hash2(uint8_t out[static WG_HASH_LEN], const uint8_t *a, size_t alen,
    const uint8_t *b, size_t blen);
/* MAC(key, in): keyed BLAKE2s with a 16-byte digest. */
void wg_mac(uint8_t out[static 16], const uint8_t key[static 32], const uint8_t *in, size_t len);
/* KDF_n(C, input) for n = 1..3; outputs that are NULL are not produced. */
void wg_kdf(uint8_t *t1, uint8_t *t2, uint8_t *t3, const uint8_t c[static 32],
    const uint8_t *in, size_t len);
/* X25519 with WireGuard's rule that an all-zero result is an error. */
bool wg_dh(uint8_t out[static 32], const uint8_t priv[static 32], const uint8_t pub[static 32])
	__attribute__((warn_unused_result));
void wg_pubkey(uint8_t pub[static 32], const uint8_t priv[static 32]);
void wg_clamp(uint8_t key[static 32]);

/* Handshake AEAD: nonce is 4 zero bytes then the 64-bit counter, little-endian. */
void wg_aead_seal(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *ad, size_t adlen,
    uint64_t ctr, const uint8_t key[static 32]);
bool wg_aead_open(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *ad, size_t adlen,
    uint64_t ctr, const uint8_t key[static 32]) __attribute__((warn_unused_result));
/* Cookie AEAD with a 24-byte nonce. */
void wg_xaead_seal(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *ad, size_t adlen,
    const uint8_t nonce[static 24], const uint8_t key[static 32]);
bool wg_xaead_open(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *ad, size_t adlen,
    const uint8_t nonce[static 24], const uint8_t key[static 32]) __attribute__((warn_unused_result));

/*
 * Transport data.  A context is keyed once; each packet then sets only the
 * nonce.  In-place operation (dst == src) is supported.  len is the
 * plaintext length; the 16-byte tag follows the ciphertext.
 */
EVP_CIPHER_CTX *wg_data_ctx_new(const uint8_t key[static 32], bool encrypt);
void wg_data_ctx_free(EVP_CIPHER_CTX *ctx);
bool wg_data_seal(EVP_CIPHER_CTX *ctx, uint8_t *dst, const uint8_t *src, size_t len, uint64_t ctr)
	__attribute__((warn_unused_result));
bool wg_data_open(EVP_CIPHER_CTX *ctx, uint8_t *dst, const uint8_t *src, size_t len, uint64_t ctr)
	__attribute__((warn_unused_result));

#endif

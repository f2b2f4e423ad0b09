// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */
#include <string.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "common/util.h"
#include "wg/blake2s.h"
#include "wg/crypto.h"

void
wg_hash2(uint8_t out[static WG_HASH_LEN], const uint8_t *a, size_t alen,
    const uint8_t *b, size_t blen)
{
	struct blake2s_state s;

	blake2s_init(&s, WG_HASH_LEN, NULL, 0);
	blake2s_update(&s, a, alen);
	blake2s_update(&s, b, blen);
	blake2s_final(&s, out);
}

void
wg_mac(uint8_t out[static 16], const uint8_t key[static 32], const uint8_t *in, size_t len)
{
	blake2s(out, 16, key, 32, in, len);
}

void
wg_kdf(uint8_t *t1, uint8_t *t2, uint8_t *t3, const uint8_t c[static 32],
    const uint8_t *in, size_t len)
{
	uint8_t prk[32], t[33];

	/* HKDF with HMAC-BLAKE2s: T(i) = HMAC(prk, T(i-1) || i). */
	blake2s_hmac(prk, c, 32, in, len);
	t[0] = 1;
	blake2s_hmac(t, prk, 32, t, 1);
	if (t1)
		memcpy(t1, t, 32);
	if (t2 || t3) {
		t[32] = 2;
		blake2s_hmac(t, prk, 32, t, 33);
		if (t2)
			memcpy(t2, t, 32);
	}
	if (t3) {
		t[32] = 3;
		blake2s_hmac(t, prk, 32, t, 33);
		memcpy(t3, t, 32);
	}
	sodium_memzero(prk, sizeof prk);
	sodium_memzero(t, sizeof t);
}

bool
wg_dh(uint8_t out[static 32], const uint8_t priv[static 32], const uint8_t pub[static 32])
{
	/* libsodium clamps, and fails on an all-zero (small-order) result. */
	if (crypto_scalarmult_curve25519(out, priv, pub) != 0) {
		sodium_memzero(out, 32);
		return false;
	}
	return true;
}

void
wg_pubkey(uint8_t pub[static 32], const uint8_t priv[static 32])
{
	if (crypto_scalarmult_curve25519_base(pub, priv) != 0)
		memset(pub, 0, 32);
}

void
wg_clamp(uint8_t key[static 32])
{
	key[0] &= 248;
	key[31] = (key[31] & 127) | 64;
}

static void
make_nonce(uint8_t nonce[static 12], uint64_t ctr)
{
	memset(nonce, 0, 4);
	put_le64(nonce + 4, ctr);
}

void
wg_aead_seal(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *ad, size_t adlen,
    uint64_t ctr, const uint8_t key[static 32])
{
	uint8_t nonce[12];

	make_nonce(nonce, ctr);
	crypto_aead_chacha20poly1305_ietf_encrypt(dst, NULL, src, len, ad, adlen, NULL, nonce, key);
}

bool
wg_aead_open(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *ad, size_t adlen,
    uint64_t ctr, const uint8_t key[static 32])
{
	uint8_t nonce[12];

	if (len < 16)
		return false;
	make_nonce(nonce, ctr);
	return crypto_aead_chacha20poly1305_ietf_decrypt(dst, NULL, NULL, src, len, ad, adlen,
	    nonce, key) == 0;
}

void
wg_xaead_seal(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *ad, size_t adlen,
    const uint8_t nonce[static 24], const uint8_t key[static 32])
{
	crypto_aead_xchacha20poly1305_ietf_encrypt(dst, NULL, src, len, ad, adlen, NULL, nonce, key);
}

bool
wg_xaead_open(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *ad, size_t adlen,
    const uint8_t nonce[static 24], const uint8_t key[static 32])
{
	if (len < 16)
		return false;
	return crypto_aead_xchacha20poly1305_ietf_decrypt(dst, NULL, NULL, src, len, ad, adlen,
	    nonce, key) == 0;
}

EVP_CIPHER_CTX *
wg_data_ctx_new(const uint8_t key[static 32], bool encrypt)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	uint8_t nonce[12] = { 0 };

	if (ctx == NULL)
		return NULL;
	if (EVP_CipherInit_ex(ctx, EVP_chacha20_poly1305(), NULL, key, nonce, encrypt ? 1 : 0) != 1) {
		EVP_CIPHER_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

void
wg_data_ctx_free(EVP_CIPHER_CTX *ctx)
{
	EVP_CIPHER_CTX_free(ctx);	/* clears the key schedule */
}

bool
wg_data_seal(EVP_CIPHER_CTX *ctx, uint8_t *dst, const uint8_t *src, size_t len, uint64_t ctr)
{
	uint8_t nonce[12];
	int outl;

	make_nonce(nonce, ctr);
	/* A NULL key keeps the one set at creation; the nonce resets the MAC. */
	if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1)
		return false;
	if (len > 0 && EVP_EncryptUpdate(ctx, dst, &outl, src, (int)len) != 1)
		return false;
	if (EVP_EncryptFinal_ex(ctx, dst + len, &outl) != 1)
		return false;
	return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, dst + len) == 1;
}

bool
wg_data_open(EVP_CIPHER_CTX *ctx, uint8_t *dst, const uint8_t *src, size_t len, uint64_t ctr)
{
	uint8_t nonce[12], tag[16];
	int outl;

	make_nonce(nonce, ctr);
	/* Copy the tag first: in-place decryption may overwrite nothing past len, but be safe. */
	memcpy(tag, src + len, 16);
	if (EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1)
		return false;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, tag) != 1)
		return false;
	if (len > 0 && EVP_DecryptUpdate(ctx, dst, &outl, src, (int)len) != 1)
		return false;
	return EVP_DecryptFinal_ex(ctx, dst + len, &outl) == 1;
}

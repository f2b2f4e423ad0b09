// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * mac1, mac2 and cookie replies (whitepaper §5.4.7, kernel cookie.c).
 *
 * mac1 proves the sender knows our public key and is checked before any
 * Diffie-Hellman work.  Under load we also demand mac2, keyed by a cookie
 * that binds the sender's address; a sender without one gets a cookie reply
 * and must retry, which a spoofed source cannot.
 */
#include <string.h>

#include <sodium.h>

#include "common/util.h"
#include "wg/blake2s.h"
#include "wg/crypto.h"
#include "wg/wg-int.h"

static const uint8_t label_mac1[8] = "mac1----";
static const uint8_t label_cookie[8] = "cookie--";

static void
derive_keys(uint8_t mac1_key[static 32], uint8_t cookie_key[static 32], const uint8_t pub[static 32])
{
	wg_hash2(mac1_key, label_mac1, 8, pub, 32);
	wg_hash2(cookie_key, label_cookie, 8, pub, 32);
}

void
cookie_checker_init(struct cookie_checker *cc, const uint8_t pub[static 32])
{
	derive_keys(cc->mac1_key, cc->cookie_key, pub);
}

void
cookie_maker_init(struct cookie_maker *cm, const uint8_t peer_pub[static 32])
{
	memset(cm, 0, sizeof *cm);
	derive_keys(cm->mac1_key, cm->cookie_key, peer_pub);
}

/* mac1 covers everything before it; mac2 everything before mac2. */
void
cookie_add_macs(struct cookie_maker *cm, uint8_t *msg, size_t len, uint64_t now)
{
	uint8_t *mac1 = msg + len - 32, *mac2 = msg + len - 16;

	wg_mac(mac1, cm->mac1_key, msg, len - 32);
	memcpy(cm->last_mac1_sent, mac1, 16);
	cm->have_sent_mac1 = true;
	if (cm->have_cookie && now - cm->cookie_birth < WG_COOKIE_REFRESH_TIME)
		blake2s(mac2, 16, cm->cookie, 16, msg, len - 16);
	else
		memset(mac2, 0, 16);
}

bool
cookie_check_mac1(const struct cookie_checker *cc, const uint8_t *msg, size_t len)
{
	uint8_t mac[16];

	wg_mac(mac, cc->mac1_key, msg, len - 32);
	return crypto_verify_16(mac, msg + len - 32) == 0;
}

/* The cookie for a source: MAC(secret, ip || port), the secret rotating every two minutes. */
static void
make_cookie(struct wg_device *dev, uint8_t cookie[static 16], const union wg_endpoint *src,
    uint64_t now)
{
	struct cookie_checker *cc = &dev->cookie;
	uint8_t addr[18];
	size_t n;

	if (!cc->have_secret || now - cc->secret_birth >= WG_COOKIE_REFRESH_TIME) {
		dev->ops->random(dev->ctx, cc->secret, sizeof cc->secret);
		cc->secret_birth = now;
		cc->have_secret = true;
	}
	if (src->sa.sa_family == AF_INET6) {
		memcpy(addr, &src->in6.sin6_addr, 16);
		memcpy(addr + 16, &src->in6.sin6_port, 2);
		n = 18;
	} else {
		memcpy(addr, &src->in4.sin_addr, 4);
		memcpy(addr + 4, &src->in4.sin_port, 2);
		n = 6;
	}
	wg_mac(cookie, cc->secret, addr, n);
}

bool
cookie_check_mac2(struct wg_device *dev, const uint8_t *msg, size_t len,
    const union wg_endpoint *src, uint64_t now)
{
	uint8_t cookie[16], mac[16];

	make_cookie(dev, cookie, src, now);
	blake2s(mac, 16, cookie, 16, msg, len - 16);
	return crypto_verify_16(mac, msg + len - 16) == 0;
}

void
cookie_make_reply(struct wg_device *dev, uint8_t out[static WG_COOKIE_LEN], uint32_t index,
    const uint8_t mac1[static 16], const union wg_endpoint *src, uint64_t now)
{
	uint8_t cookie[16];

	memset(out, 0, 4);
	out[0] = WG_MSG_COOKIE;
	put_le32(out + 4, index);
	dev->ops->random(dev->ctx, out + 8, 24);
	make_cookie(dev, cookie, src, now);
	wg_xaead_seal(out + 32, cookie, 16, mac1, 16, out + 8, dev->cookie.cookie_key);
	sodium_memzero(cookie, sizeof cookie);
}

bool
cookie_consume_reply(struct cookie_maker *cm, const uint8_t msg[static WG_COOKIE_LEN], uint64_t now)
{
	uint8_t cookie[16];

	/* Only a reply to a message we sent, and only once per message. */
	if (!cm->have_sent_mac1)
		return false;
	if (!wg_xaead_open(cookie, msg + 32, 32, cm->last_mac1_sent, 16, msg + 8, cm->cookie_key))
		return false;
	memcpy(cm->cookie, cookie, 16);
	cm->cookie_birth = now;
	cm->have_cookie = true;
	cm->have_sent_mac1 = false;
	sodium_memzero(cookie, sizeof cookie);
	return true;
}

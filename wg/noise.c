// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * The Noise_IKpsk2 handshake (whitepaper §5.4, wireguard-go
 * device/noise-protocol.go).  The generic message writers at the top work
 * on bare Noise messages so that they can be checked against fixed-key
 * vectors; the functions below them frame WireGuard's messages and keep the
 * per-peer handshake state.
 *
 * Every consume function works on copies of the chaining key and hash and
 * commits them only when the whole message has authenticated: a forged
 * message must not disturb a handshake in flight.
 */
#include <string.h>

#include <sodium.h>

#include "common/clock.h"
#include "common/util.h"
#include "wg/crypto.h"
#include "wg/wg-int.h"

static const uint8_t construction[] = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";

static void
mix_hash(uint8_t h[static 32], const uint8_t *data, size_t len)
{
	wg_hash2(h, h, 32, data, len);
}

static void
mix_key(uint8_t ck[static 32], const uint8_t *data, size_t len)
{
	wg_kdf(ck, NULL, NULL, ck, data, len);
}

/* (ck, key) = KDF2(ck, DH(priv, pub)) */
static bool __must_check
mix_dh(uint8_t ck[static 32], uint8_t key[static 32], const uint8_t priv[static 32],
    const uint8_t pub[static 32])
{
	uint8_t dh[32];

	if (!wg_dh(dh, priv, pub))
		return false;
	wg_kdf(ck, key, NULL, ck, dh, 32);
	sodium_memzero(dh, sizeof dh);
	return true;
}

/* ck = KDF1(ck, DH(priv, pub)) */
static bool __must_check
mix_dh1(uint8_t ck[static 32], const uint8_t priv[static 32], const uint8_t pub[static 32])
{
	uint8_t dh[32];

	if (!wg_dh(dh, priv, pub))
		return false;
	mix_key(ck, dh, 32);
	sodium_memzero(dh, sizeof dh);
	return true;
}

/* (ck, tau, key) = KDF3(ck, psk); h = HASH(h || tau) */
static void
mix_psk(uint8_t ck[static 32], uint8_t h[static 32], uint8_t key[static 32],
    const uint8_t psk[static 32])
{
	uint8_t tau[32];

	wg_kdf(ck, tau, key, ck, psk, 32);
	mix_hash(h, tau, 32);
	sodium_memzero(tau, sizeof tau);
}

void
noise_state_init(struct noise_state *st, const uint8_t *prologue, size_t plen,
    const uint8_t responder_static_pub[static 32])
{
	wg_hash2(st->ck, construction, sizeof construction - 1, NULL, 0);
	wg_hash2(st->h, st->ck, 32, prologue, plen);
	mix_hash(st->h, responder_static_pub, 32);
}

/*
 * msg1 = e || AEAD(k_es, 0, s_pub, h) || AEAD(k_ss, 0, payload, h).
 * ss is DH(s, rs), which WireGuard precomputes per peer; s_pub is ours.
 */
static bool __must_check
write_msg1(struct noise_state *st, uint8_t out[static 108], const uint8_t e_priv[static 32],
    const uint8_t s_pub[static 32], const uint8_t ss[static 32], const uint8_t rs_pub[static 32],
    const uint8_t payload[static 12])
{
	uint8_t key[32];
	bool ok = false;

	wg_pubkey(out, e_priv);
	mix_key(st->ck, out, 32);
	mix_hash(st->h, out, 32);
	if (!mix_dh(st->ck, key, e_priv, rs_pub))
		goto out;
	wg_aead_seal(out + 32, s_pub, 32, st->h, 32, 0, key);
	mix_hash(st->h, out + 32, 48);
	wg_kdf(st->ck, key, NULL, st->ck, ss, 32);
	wg_aead_seal(out + 80, payload, 12, st->h, 32, 0, key);
	mix_hash(st->h, out + 80, 28);
	ok = true;
out:
	sodium_memzero(key, sizeof key);
	return ok;
}

bool
noise_write_msg1(struct noise_state *st, uint8_t out[static 108],
    const uint8_t e_priv[static 32], const uint8_t s_priv[static 32],
    const uint8_t rs_pub[static 32], const uint8_t payload[static 12])
{
	uint8_t s_pub[32], ss[32];
	bool ok;

	wg_pubkey(s_pub, s_priv);
	if (!wg_dh(ss, s_priv, rs_pub))
		return false;
	ok = write_msg1(st, out, e_priv, s_pub, ss, rs_pub, payload);
	sodium_memzero(ss, sizeof ss);
	return ok;
}

/* msg2 = e || AEAD(k, 0, empty, h), after ee, se and the PSK are mixed in. */
bool
noise_write_msg2(struct noise_state *st, uint8_t out[static 48],
    const uint8_t e_priv[static 32], const uint8_t re_pub[static 32],
    const uint8_t rs_pub[static 32], const uint8_t psk[static 32])
{
	uint8_t key[32];

	wg_pubkey(out, e_priv);
	mix_key(st->ck, out, 32);
	mix_hash(st->h, out, 32);
	if (!mix_dh1(st->ck, e_priv, re_pub) || !mix_dh1(st->ck, e_priv, rs_pub))
		return false;
	mix_psk(st->ck, st->h, key, psk);
	wg_aead_seal(out + 32, NULL, 0, st->h, 32, 0, key);
	mix_hash(st->h, out + 32, 16);
	sodium_memzero(key, sizeof key);
	return true;
}

void
noise_split(const struct noise_state *st, uint8_t t1[static 32], uint8_t t2[static 32])
{
	wg_kdf(t1, t2, NULL, st->ck, NULL, 0);
}

/* --- WireGuard framing and per-peer state --- */

void
noise_precompute_peer(struct wg_device *dev, struct wg_peer *peer)
{
	struct wg_handshake *hs = peer->hs;

	if (!dev->has_private || !wg_dh(hs->precomputed_ss, dev->static_private, hs->remote_static))
		memset(hs->precomputed_ss, 0, 32);
}

void
noise_handshake_clear(struct wg_device *dev, struct wg_peer *peer)
{
	struct wg_handshake *hs = peer->hs;

	index_remove(dev, &hs->entry);
	hs->state = HS_ZEROED;
	sodium_memzero(hs->hash, 32);
	sodium_memzero(hs->chaining_key, 32);
	sodium_memzero(hs->ephemeral_private, 32);
	sodium_memzero(hs->remote_ephemeral, 32);
	hs->remote_index = 0;
}

static void
new_ephemeral(struct wg_device *dev, uint8_t priv[static 32])
{
	dev->ops->random(dev->ctx, priv, 32);
	wg_clamp(priv);
}

bool
noise_create_initiation(struct wg_device *dev, struct wg_peer *peer,
    uint8_t msg[static WG_INITIATION_LEN], uint64_t now)
{
	struct wg_handshake *hs = peer->hs;
	struct noise_state st;
	uint8_t ts[WG_TAI64N_LEN];
	bool ok = false;

	if (!dev->has_private || sodium_is_zero(hs->precomputed_ss, 32))
		return false;
	noise_handshake_clear(dev, peer);
	noise_state_init(&st, dev->identifier, dev->identifier_len, hs->remote_static);
	new_ephemeral(dev, hs->ephemeral_private);
	tai64n_now(dev, ts);
	memset(msg, 0, WG_INITIATION_LEN);
	msg[0] = WG_MSG_INITIATION;
	if (!write_msg1(&st, msg + 8, hs->ephemeral_private, dev->static_public,
	    hs->precomputed_ss, hs->remote_static, ts))
		goto out;
	put_le32(msg + 4, index_insert(dev, &hs->entry, INDEX_HANDSHAKE, peer));
	memcpy(hs->chaining_key, st.ck, 32);
	memcpy(hs->hash, st.h, 32);
	hs->state = HS_INITIATION_CREATED;
	ok = true;
out:
	sodium_memzero(&st, sizeof st);
	return ok;
}

struct wg_peer *
noise_consume_initiation(struct wg_device *dev, const uint8_t msg[static WG_INITIATION_LEN],
    uint64_t now)
{
	const uint8_t *e = msg + 8, *enc_static = msg + 40, *enc_ts = msg + 88;
	struct wg_peer *peer = NULL, *found;
	struct noise_state st;
	struct wg_handshake *hs;
	uint8_t key[32], s[32], ts[WG_TAI64N_LEN];
	bool flood = false;

	if (!dev->has_private) {
		dev->stats.rx_handshake_invalid++;
		return NULL;
	}
	noise_state_init(&st, dev->identifier, dev->identifier_len, dev->static_public);
	mix_key(st.ck, e, 32);
	mix_hash(st.h, e, 32);
	if (!mix_dh(st.ck, key, dev->static_private, e))
		goto out;
	if (!wg_aead_open(s, enc_static, 48, st.h, 32, 0, key))
		goto out;
	mix_hash(st.h, enc_static, 48);

	found = wg_peer_lookup(dev, s);
	if (found == NULL)
		goto out;
	hs = found->hs;
	if (sodium_is_zero(hs->precomputed_ss, 32))
		goto out;
	wg_kdf(st.ck, key, NULL, st.ck, hs->precomputed_ss, 32);
	if (!wg_aead_open(ts, enc_ts, 28, st.h, 32, 0, key))
		goto out;
	mix_hash(st.h, enc_ts, 28);

	/* Replay protection: timestamps must increase strictly per peer. */
	if (memcmp(ts, hs->latest_timestamp, WG_TAI64N_LEN) <= 0)
		goto out;
	/* Flood protection: at most one initiation per 1/50 s per peer. */
	if (hs->have_consumed && now - hs->last_initiation_consumed < NSEC_PER_SEC / 50) {
		flood = true;
		goto out;
	}

	noise_handshake_clear(dev, found);
	memcpy(hs->hash, st.h, 32);
	memcpy(hs->chaining_key, st.ck, 32);
	memcpy(hs->remote_ephemeral, e, 32);
	memcpy(hs->latest_timestamp, ts, WG_TAI64N_LEN);
	hs->remote_index = get_le32(msg + 4);
	hs->last_initiation_consumed = now;
	hs->have_consumed = true;
	hs->state = HS_INITIATION_CONSUMED;
	peer = found;
out:
	if (peer == NULL && flood)
		dev->stats.rx_handshake_flood++;
	else if (peer == NULL)
		dev->stats.rx_handshake_invalid++;
	sodium_memzero(&st, sizeof st);
	sodium_memzero(key, sizeof key);
	sodium_memzero(s, sizeof s);
	return peer;
}

bool
noise_create_response(struct wg_device *dev, struct wg_peer *peer, uint8_t msg[static WG_RESPONSE_LEN])
{
	struct wg_handshake *hs = peer->hs;
	struct noise_state st;
	bool ok = false;

	if (hs->state != HS_INITIATION_CONSUMED)
		return false;
	memcpy(st.ck, hs->chaining_key, 32);
	memcpy(st.h, hs->hash, 32);
	new_ephemeral(dev, hs->ephemeral_private);
	memset(msg, 0, WG_RESPONSE_LEN);
	msg[0] = WG_MSG_RESPONSE;
	put_le32(msg + 8, hs->remote_index);
	if (!noise_write_msg2(&st, msg + 12, hs->ephemeral_private, hs->remote_ephemeral,
	    hs->remote_static, hs->psk))
		goto out;
	put_le32(msg + 4, index_insert(dev, &hs->entry, INDEX_HANDSHAKE, peer));
	memcpy(hs->chaining_key, st.ck, 32);
	memcpy(hs->hash, st.h, 32);
	hs->state = HS_RESPONSE_CREATED;
	ok = true;
out:
	sodium_memzero(&st, sizeof st);
	return ok;
}

struct wg_peer *
noise_consume_response(struct wg_device *dev, const uint8_t msg[static WG_RESPONSE_LEN])
{
	const uint8_t *e = msg + 12, *enc_empty = msg + 44;
	struct index_entry *ie = index_lookup(dev, get_le32(msg + 8));
	struct wg_handshake *hs;
	struct wg_peer *peer = NULL;
	struct noise_state st;
	uint8_t key[32];

	if (ie == NULL || ie->kind != INDEX_HANDSHAKE || !dev->has_private) {
		dev->stats.rx_unknown_index++;
		return NULL;
	}
	hs = ie->peer->hs;
	if (hs->state != HS_INITIATION_CREATED) {
		dev->stats.rx_unknown_index++;
		return NULL;
	}
	memcpy(st.ck, hs->chaining_key, 32);
	memcpy(st.h, hs->hash, 32);
	mix_key(st.ck, e, 32);
	mix_hash(st.h, e, 32);
	if (!mix_dh1(st.ck, hs->ephemeral_private, e) ||
	    !mix_dh1(st.ck, dev->static_private, e))
		goto out;
	mix_psk(st.ck, st.h, key, hs->psk);
	if (!wg_aead_open(NULL, enc_empty, 16, st.h, 32, 0, key))
		goto out;
	mix_hash(st.h, enc_empty, 16);

	memcpy(hs->chaining_key, st.ck, 32);
	memcpy(hs->hash, st.h, 32);
	hs->remote_index = get_le32(msg + 4);
	hs->state = HS_RESPONSE_CONSUMED;
	peer = ie->peer;
out:
	if (peer == NULL)
		dev->stats.rx_handshake_invalid++;
	sodium_memzero(&st, sizeof st);
	sodium_memzero(key, sizeof key);
	return peer;
}

static void
keypair_free(struct wg_device *dev, struct wg_keypair *kp)
{
	if (kp == NULL)
		return;
	index_remove(dev, &kp->entry);
	wg_data_ctx_free(kp->send);
	wg_data_ctx_free(kp->recv);
	sodium_memzero(kp, sizeof *kp);
	free(kp);
}

/*
 * Derives the transport keys from a finished handshake and rotates the
 * peer's keypairs (wireguard-go BeginSymmetricSession).  The keypair takes
 * over the handshake's local index, so the peer's next data packet finds it.
 */
struct wg_keypair *
noise_begin_session(struct wg_device *dev, struct wg_peer *peer, uint64_t now)
{
	struct wg_handshake *hs = peer->hs;
	struct wg_keypair *kp, *old_prev;
	uint8_t t1[32], t2[32];
	bool initiator;

	if (hs->state == HS_RESPONSE_CONSUMED)
		initiator = true;
	else if (hs->state == HS_RESPONSE_CREATED)
		initiator = false;
	else
		return NULL;

	kp = calloc(1, sizeof *kp);
	if (kp == NULL)
		return NULL;
	wg_kdf(t1, t2, NULL, hs->chaining_key, NULL, 0);
	kp->send = wg_data_ctx_new(initiator ? t1 : t2, true);
	kp->recv = wg_data_ctx_new(initiator ? t2 : t1, false);
	sodium_memzero(t1, sizeof t1);
	sodium_memzero(t2, sizeof t2);
	if (kp->send == NULL || kp->recv == NULL) {
		keypair_free(dev, kp);
		return NULL;
	}
	kp->initiator = initiator;
	kp->sending_ok = initiator;
	kp->created = now;
	kp->remote_index = hs->remote_index;
	replay_init(&kp->replay);

	/* The keypair takes over the handshake's index (wireguard-go SwapIndexForKeypair). */
	index_swap(dev, &hs->entry, &kp->entry, INDEX_KEYPAIR);
	noise_handshake_clear(dev, peer);

	old_prev = peer->kp_prev;
	if (initiator) {
		if (peer->kp_next != NULL) {
			peer->kp_prev = peer->kp_next;
			peer->kp_next = NULL;
			keypair_free(dev, peer->kp_cur);
		} else {
			peer->kp_prev = peer->kp_cur;
		}
		keypair_free(dev, old_prev);
		peer->kp_cur = kp;
	} else {
		keypair_free(dev, peer->kp_next);
		peer->kp_next = kp;
		keypair_free(dev, old_prev);
		peer->kp_prev = NULL;
	}
	return kp;
}

void
noise_keypair_free(struct wg_device *dev, struct wg_keypair *kp)
{
	keypair_free(dev, kp);
}

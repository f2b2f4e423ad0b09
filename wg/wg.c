// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * The WireGuard device: peers, the receiver-index table, timers and the
 * transport data path.  See wg.h for the contract; the handshake itself is
 * in noise.c and the DoS cookies in cookie.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <sodium.h>

#include "common/clock.h"
#include "common/util.h"
#include "wg/crypto.h"
#include "wg/wg-int.h"

static const uint8_t wg_identifier[] = "WireGuard v1 zx2c4 Jason@zx2c4.com";

/* Handshake messages per 1/8 s beyond which we call ourselves under load. */
#define UNDER_LOAD_WINDOW	(NSEC_PER_SEC / 8)
#define UNDER_LOAD_THRESHOLD	128
#define UNDER_LOAD_HOLD		NSEC_PER_SEC

static void send_initiation(struct wg_peer *peer, uint64_t now, bool retry);
static void send_keepalive(struct wg_peer *peer, uint64_t now);
static void send_staged(struct wg_peer *peer, uint64_t now);
static void keypairs_clear(struct wg_peer *peer);

/* --- timers ---
 *
 * Each timer is a deadline on the peer (0 = off).  Arming one lowers the
 * device's next deadline so that the host can reschedule; wg_device_tick()
 * runs what is due and recomputes it.  The rules are the whitepaper's §6.
 */

static uint64_t
jitter(struct wg_device *dev)
{
	/* xorshift128+: timer jitter needs spread, not secrecy. */
	uint64_t s1 = dev->rng[0];
	const uint64_t s0 = dev->rng[1];

	dev->rng[0] = s0;
	s1 ^= s1 << 23;
	dev->rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
	return (dev->rng[1] + s0) % WG_JITTER_MAX;
}

static void
arm(struct wg_peer *peer, uint64_t *timer, uint64_t when)
{
	*timer = when;
	if (when < peer->dev->next_deadline)
		peer->dev->next_deadline = when;
}

static bool
pending(uint64_t timer)
{
	return timer != 0;
}

static void
timers_any_authenticated_packet_traversal(struct wg_peer *peer, uint64_t now)
{
	if (peer->persistent_keepalive)
		arm(peer, &peer->t_persistent, now + peer->persistent_keepalive * NSEC_PER_SEC);
}

static void
timers_any_authenticated_packet_sent(struct wg_peer *peer)
{
	peer->t_send_keepalive = 0;
}

static void
timers_any_authenticated_packet_received(struct wg_peer *peer)
{
	peer->t_new_handshake = 0;
}

static void
timers_data_sent(struct wg_peer *peer, uint64_t now)
{
	if (!pending(peer->t_new_handshake))
		arm(peer, &peer->t_new_handshake,
		    now + WG_KEEPALIVE_TIMEOUT + WG_REKEY_TIMEOUT + jitter(peer->dev));
}

static void
timers_data_received(struct wg_peer *peer, uint64_t now)
{
	if (!pending(peer->t_send_keepalive))
		arm(peer, &peer->t_send_keepalive, now + WG_KEEPALIVE_TIMEOUT);
	else
		peer->need_another_keepalive = true;
}

static void
timers_handshake_initiated(struct wg_peer *peer, uint64_t now)
{
	arm(peer, &peer->t_retransmit, now + WG_REKEY_TIMEOUT + jitter(peer->dev));
}

static void
timers_handshake_complete(struct wg_peer *peer)
{
	peer->t_retransmit = 0;
	peer->handshake_attempts = 0;
	peer->sent_lastminute_handshake = false;
	peer->last_handshake_real = peer->dev->ops->realtime(peer->dev->ctx);
	peer->dev->stats.handshakes_completed++;
}

static void
timers_session_derived(struct wg_peer *peer, uint64_t now)
{
	arm(peer, &peer->t_zero_keys, now + 3 * WG_REJECT_AFTER_TIME);
}

static void
staged_purge(struct wg_peer *peer)
{
	struct pkt *p;

	while ((p = peer->staged.head) != NULL) {
		peer->staged.head = p->next;
		pkt_put(peer->dev->pool, p);
		peer->dev->stats.tx_staged_dropped++;
	}
	peer->staged.tail = NULL;
	peer->staged.count = 0;
}

static void
expired_retransmit(struct wg_peer *peer, uint64_t now)
{
	if (peer->handshake_attempts > WG_MAX_TIMER_HANDSHAKES) {
		/* Give up: drop what waits and let the keys age out. */
		peer->t_send_keepalive = 0;
		staged_purge(peer);
		if (!pending(peer->t_zero_keys))
			arm(peer, &peer->t_zero_keys, now + 3 * WG_REJECT_AFTER_TIME);
		return;
	}
	peer->handshake_attempts++;
	send_initiation(peer, now, true);
}

static void
expired_send_keepalive(struct wg_peer *peer, uint64_t now)
{
	send_keepalive(peer, now);
	if (peer->need_another_keepalive) {
		peer->need_another_keepalive = false;
		arm(peer, &peer->t_send_keepalive, now + WG_KEEPALIVE_TIMEOUT);
	}
}

static void
expired_new_handshake(struct wg_peer *peer, uint64_t now)
{
	/* We sent data and heard nothing back for 15 s: the session may be dead. */
	send_initiation(peer, now, false);
}

static void
expired_zero_keys(struct wg_peer *peer, uint64_t now)
{
	keypairs_clear(peer);
	noise_handshake_clear(peer->dev, peer);
}

static void
expired_persistent(struct wg_peer *peer, uint64_t now)
{
	if (peer->persistent_keepalive)
		send_keepalive(peer, now);
}

static uint64_t
peer_tick(struct wg_peer *peer, uint64_t now)
{
	static const struct {
		size_t off;
		void (*fn)(struct wg_peer *, uint64_t);
	} timers[] = {
		{ offsetof(struct wg_peer, t_retransmit), expired_retransmit },
		{ offsetof(struct wg_peer, t_send_keepalive), expired_send_keepalive },
		{ offsetof(struct wg_peer, t_new_handshake), expired_new_handshake },
		{ offsetof(struct wg_peer, t_zero_keys), expired_zero_keys },
		{ offsetof(struct wg_peer, t_persistent), expired_persistent },
	};
	uint64_t next = UINT64_MAX;

	for (size_t i = 0; i < ARRAY_SIZE(timers); i++) {
		uint64_t *t = (uint64_t *)((char *)peer + timers[i].off);

		if (*t != 0 && *t <= now) {
			*t = 0;
			timers[i].fn(peer, now);
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(timers); i++) {
		uint64_t t = *(uint64_t *)((char *)peer + timers[i].off);

		if (t != 0 && t < next)
			next = t;
	}
	return next;
}

uint64_t
wg_device_tick(struct wg_device *dev, uint64_t now)
{
	uint64_t next = UINT64_MAX;

	/* Handlers may arm timers; start from "none" and take the minimum. */
	dev->next_deadline = UINT64_MAX;
	for (struct wg_peer *p = dev->peers_head; p != NULL; p = p->next) {
		uint64_t t = peer_tick(p, now);

		if (t < next)
			next = t;
	}
	if (next < dev->next_deadline)
		dev->next_deadline = next;
	return dev->next_deadline;
}

uint64_t
wg_device_next_deadline(const struct wg_device *dev)
{
	return dev->next_deadline;
}

/* --- the receiver-index table --- */

static uint32_t
index_hash(const struct index_table *t, uint32_t index)
{
	/* Indices are random, so their low bits are a fine hash. */
	return index & t->mask;
}

static void
index_grow(struct index_table *t)
{
	uint32_t nsize = (t->mask + 1) * 2;
	struct index_entry **nb = calloc(nsize, sizeof *nb);

	if (nb == NULL)
		return;		/* keep the old table; chains just get longer */
	for (uint32_t i = 0; i <= t->mask; i++) {
		struct index_entry *e, *next;

		for (e = t->buckets[i]; e != NULL; e = next) {
			next = e->next;
			e->next = nb[e->index & (nsize - 1)];
			nb[e->index & (nsize - 1)] = e;
		}
	}
	free(t->buckets);
	t->buckets = nb;
	t->mask = nsize - 1;
}

struct index_entry *
index_lookup(const struct wg_device *dev, uint32_t index)
{
	const struct index_table *t = &dev->index;

	for (struct index_entry *e = t->buckets[index_hash(t, index)]; e != NULL; e = e->next)
		if (e->index == index)
			return e;
	return NULL;
}

uint32_t
index_insert(struct wg_device *dev, struct index_entry *e, enum index_kind kind,
    struct wg_peer *peer)
{
	struct index_table *t = &dev->index;
	uint32_t idx;

	index_remove(dev, e);
	do {
		dev->ops->random(dev->ctx, &idx, sizeof idx);
	} while (idx == 0 || index_lookup(dev, idx) != NULL);
	e->index = idx;
	e->kind = (uint8_t)kind;
	e->peer = peer;
	e->next = t->buckets[index_hash(t, idx)];
	t->buckets[index_hash(t, idx)] = e;
	if (++t->count > t->mask + 1)
		index_grow(t);
	return idx;
}

void
index_remove(struct wg_device *dev, struct index_entry *e)
{
	struct index_table *t = &dev->index;
	struct index_entry **pp;

	if (e->index == 0)
		return;
	for (pp = &t->buckets[index_hash(t, e->index)]; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			t->count--;
			break;
		}
	}
	e->index = 0;
	e->next = NULL;
}

void
index_swap(struct wg_device *dev, struct index_entry *e_old, struct index_entry *e_new,
    enum index_kind kind)
{
	struct index_table *t = &dev->index;
	struct index_entry **pp;

	for (pp = &t->buckets[index_hash(t, e_old->index)]; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == e_old) {
			*e_new = *e_old;
			e_new->kind = (uint8_t)kind;
			*pp = e_new;
			e_old->index = 0;
			e_old->next = NULL;
			return;
		}
	}
}

void
tai64n_now(struct wg_device *dev, uint8_t out[static WG_TAI64N_LEN])
{
	uint64_t ns = dev->ops->realtime(dev->ctx);
	uint64_t secs = ns / NSEC_PER_SEC;
	/* Whiten the low 24 bits so the stamp leaks no fine timing (wireguard-go tai64n). */
	uint32_t nanos = (uint32_t)(ns % NSEC_PER_SEC) & ~0xffffffU;

	put_be64(out, 0x400000000000000aULL + secs);
	put_be32(out + 8, nanos);
}

/* --- device --- */

struct wg_device *
wg_device_new(const struct wg_ops *ops, void *ctx, struct pkt_pool *pool)
{
	struct wg_device *dev = calloc(1, sizeof *dev);

	if (dev == NULL)
		return NULL;
	dev->ops = ops;
	dev->ctx = ctx;
	dev->pool = pool;
	dev->static_private = sodium_malloc(32);
	dev->peer_hash = calloc(1U << PEER_HASH_BITS, sizeof *dev->peer_hash);
	dev->index.buckets = calloc(1024, sizeof *dev->index.buckets);
	dev->index.mask = 1023;
	dev->aips = aip_new();
	dev->rl = ratelimiter_new(ops->random, ctx);
	if (dev->static_private == NULL || dev->peer_hash == NULL || dev->index.buckets == NULL ||
	    dev->aips == NULL || dev->rl == NULL) {
		wg_device_free(dev);
		return NULL;
	}
	sodium_memzero(dev->static_private, 32);
	ops->random(ctx, dev->rng, sizeof dev->rng);
	dev->rng[0] |= 1;
	dev->mtu = 1420;
	dev->roaming = true;
	dev->next_deadline = UINT64_MAX;
	dev->identifier = wg_identifier;
	dev->identifier_len = sizeof wg_identifier - 1;
	return dev;
}

void
wg_device_free(struct wg_device *dev)
{
	if (dev == NULL)
		return;
	wg_device_remove_all_peers(dev);
	sodium_free(dev->static_private);
	sodium_memzero(&dev->cookie, sizeof dev->cookie);
	free(dev->peer_hash);
	free(dev->index.buckets);
	aip_free(dev->aips);
	ratelimiter_free(dev->rl);
	free(dev);
}

void
wg_device_set_private_key(struct wg_device *dev, const uint8_t key[static WG_KEY_LEN])
{
	uint8_t pub[32];
	struct wg_peer *p, *next;

	if (sodium_is_zero(key, 32)) {
		sodium_memzero(dev->static_private, 32);
		memset(dev->static_public, 0, 32);
		dev->has_private = false;
	} else {
		memcpy(dev->static_private, key, 32);
		wg_clamp(dev->static_private);
		wg_pubkey(pub, dev->static_private);
		/* A peer with our own public key would talk to itself: drop it (as wireguard-go). */
		p = wg_peer_lookup(dev, pub);
		if (p != NULL)
			wg_peer_remove(dev, p);
		memcpy(dev->static_public, pub, 32);
		dev->has_private = true;
	}
	cookie_checker_init(&dev->cookie, dev->static_public);
	for (p = dev->peers_head; p != NULL; p = next) {
		next = p->next;
		noise_precompute_peer(dev, p);
		/* Sessions made with the old key are worthless now. */
		keypairs_clear(p);
		noise_handshake_clear(dev, p);
	}
}

bool
wg_device_has_private_key(const struct wg_device *dev)
{
	return dev->has_private;
}

bool
wg_device_private_key(const struct wg_device *dev, uint8_t out[static WG_KEY_LEN])
{
	if (!dev->has_private)
		return false;
	memcpy(out, dev->static_private, 32);
	return true;
}

bool
wg_device_public_key(const struct wg_device *dev, uint8_t out[static WG_KEY_LEN])
{
	if (!dev->has_private)
		return false;
	memcpy(out, dev->static_public, 32);
	return true;
}

void
wg_device_set_roaming(struct wg_device *dev, bool on)
{
	dev->roaming = on;
}

void
wg_device_set_mtu(struct wg_device *dev, unsigned int mtu)
{
	dev->mtu = mtu;
}

void
wg_device_force_under_load(struct wg_device *dev, bool on)
{
	dev->force_under_load = on;
}

const struct wg_stats *
wg_device_stats(const struct wg_device *dev)
{
	return &dev->stats;
}

size_t
wg_device_peer_count(const struct wg_device *dev)
{
	return dev->npeers;
}

/* --- peers --- */

static uint32_t
peer_hash(const uint8_t key[static 32])
{
	/* Peers come from configuration, not from the network, so no keyed hash is needed. */
	return get_le32(key) & ((1U << PEER_HASH_BITS) - 1);
}

struct wg_peer *
wg_peer_lookup(const struct wg_device *dev, const uint8_t public_key[static WG_KEY_LEN])
{
	for (struct wg_peer *p = dev->peer_hash[peer_hash(public_key)]; p != NULL; p = p->hash_next)
		if (sodium_memcmp(p->hs->remote_static, public_key, 32) == 0)
			return p;
	return NULL;
}

struct wg_peer *
wg_peer_new(struct wg_device *dev, const uint8_t public_key[static WG_KEY_LEN])
{
	struct wg_peer *peer;
	uint32_t h;

	if (dev->npeers >= WG_MAX_PEERS || wg_peer_lookup(dev, public_key) != NULL)
		return NULL;
	if (dev->has_private && sodium_memcmp(public_key, dev->static_public, 32) == 0)
		return NULL;
	peer = calloc(1, sizeof *peer);
	if (peer == NULL)
		return NULL;
	/*
	 * Handshake secrets get their own allocation, locked so that they are
	 * never swapped out.  Locking is best effort: without CAP_IPC_LOCK and
	 * over RLIMIT_MEMLOCK it fails, and we carry on.
	 */
	peer->hs = calloc(1, sizeof *peer->hs);
	if (peer->hs == NULL) {
		free(peer);
		return NULL;
	}
	(void)mlock(peer->hs, sizeof *peer->hs);
	peer->dev = dev;
	memcpy(peer->hs->remote_static, public_key, 32);
	cookie_maker_init(&peer->cookie, public_key);
	noise_precompute_peer(dev, peer);

	h = peer_hash(public_key);
	peer->hash_next = dev->peer_hash[h];
	dev->peer_hash[h] = peer;
	peer->prev = dev->peers_tail;
	if (dev->peers_tail)
		dev->peers_tail->next = peer;
	else
		dev->peers_head = peer;
	dev->peers_tail = peer;
	dev->npeers++;
	return peer;
}

static void
keypairs_clear(struct wg_peer *peer)
{
	noise_keypair_free(peer->dev, peer->kp_prev);
	noise_keypair_free(peer->dev, peer->kp_cur);
	noise_keypair_free(peer->dev, peer->kp_next);
	peer->kp_prev = peer->kp_cur = peer->kp_next = NULL;
}

void
wg_peer_remove(struct wg_device *dev, struct wg_peer *peer)
{
	struct wg_peer **pp;

	for (pp = &dev->peer_hash[peer_hash(peer->hs->remote_static)]; *pp; pp = &(*pp)->hash_next) {
		if (*pp == peer) {
			*pp = peer->hash_next;
			break;
		}
	}
	if (peer->prev)
		peer->prev->next = peer->next;
	else
		dev->peers_head = peer->next;
	if (peer->next)
		peer->next->prev = peer->prev;
	else
		dev->peers_tail = peer->prev;
	dev->npeers--;

	aip_remove_owner(dev->aips, peer);
	staged_purge(peer);
	keypairs_clear(peer);
	noise_handshake_clear(dev, peer);
	sodium_memzero(peer->hs, sizeof *peer->hs);
	(void)munlock(peer->hs, sizeof *peer->hs);
	free(peer->hs);
	sodium_memzero(&peer->cookie, sizeof peer->cookie);
	free(peer);
}

void
wg_device_remove_all_peers(struct wg_device *dev)
{
	while (dev->peers_head != NULL)
		wg_peer_remove(dev, dev->peers_head);
}

struct wg_peer *
wg_peer_first(const struct wg_device *dev)
{
	return dev->peers_head;
}

struct wg_peer *
wg_peer_next(const struct wg_peer *peer)
{
	return peer->next;
}

void
wg_peer_set_preshared_key(struct wg_peer *peer, const uint8_t psk[static WG_KEY_LEN])
{
	memcpy(peer->hs->psk, psk, 32);
}

bool
wg_peer_preshared_key(const struct wg_peer *peer, uint8_t out[static WG_KEY_LEN])
{
	memcpy(out, peer->hs->psk, 32);
	return !sodium_is_zero(out, 32);
}

void
wg_peer_set_endpoint(struct wg_peer *peer, const union wg_endpoint *ep)
{
	if (ep == NULL) {
		peer->has_endpoint = false;
		return;
	}
	peer->endpoint = *ep;
	peer->has_endpoint = true;
}

bool
wg_peer_endpoint(const struct wg_peer *peer, union wg_endpoint *out)
{
	if (!peer->has_endpoint)
		return false;
	*out = peer->endpoint;
	return true;
}

void
wg_peer_set_persistent_keepalive(struct wg_peer *peer, uint16_t secs, uint64_t now)
{
	bool was_off = peer->persistent_keepalive == 0;

	peer->persistent_keepalive = secs;
	if (secs == 0) {
		peer->t_persistent = 0;
		return;
	}
	/* Like wireguard-go: turning it on sends a keepalive at once if we can. */
	if (was_off && peer->kp_cur != NULL)
		send_keepalive(peer, now);
	arm(peer, &peer->t_persistent, now + secs * NSEC_PER_SEC);
}

int
wg_peer_add_allowed_ip(struct wg_peer *peer, int family, const uint8_t *addr, uint8_t cidr)
{
	return aip_insert(peer->dev->aips, family, addr, cidr, peer);
}

bool
wg_peer_remove_allowed_ip(struct wg_peer *peer, int family, const uint8_t *addr, uint8_t cidr)
{
	return aip_remove(peer->dev->aips, family, addr, cidr, peer);
}

void
wg_peer_clear_allowed_ips(struct wg_peer *peer)
{
	aip_remove_owner(peer->dev->aips, peer);
}

int
wg_peer_walk_allowed_ips(const struct wg_peer *peer,
    int (*fn)(void *ctx, int family, const uint8_t *addr, uint8_t cidr), void *ctx)
{
	return aip_walk_owner(peer->dev->aips, peer, fn, ctx);
}

void
wg_peer_get_info(const struct wg_peer *peer, struct wg_peer_info *out)
{
	memset(out, 0, sizeof *out);
	memcpy(out->public_key, peer->hs->remote_static, 32);
	out->has_endpoint = peer->has_endpoint;
	out->endpoint = peer->endpoint;
	out->last_handshake_ns = peer->last_handshake_real;
	out->rx_bytes = peer->rx_bytes;
	out->tx_bytes = peer->tx_bytes;
	out->persistent_keepalive = peer->persistent_keepalive;
}

void
wg_peer_set_user(struct wg_peer *peer, void *user)
{
	peer->user = user;
}

void *
wg_peer_user(const struct wg_peer *peer)
{
	return peer->user;
}

void
wg_peer_initiate(struct wg_peer *peer, uint64_t now)
{
	send_initiation(peer, now, false);
}

/* --- sending --- */

static void
peer_send(struct wg_peer *peer, const uint8_t *buf, size_t len)
{
	struct wg_device *dev = peer->dev;

	dev->ops->send(dev->ctx, peer, peer->has_endpoint ? &peer->endpoint : NULL, buf, len);
}

static void
send_initiation(struct wg_peer *peer, uint64_t now, bool retry)
{
	struct wg_handshake *hs = peer->hs;
	uint8_t msg[WG_INITIATION_LEN];

	if (!retry)
		peer->handshake_attempts = 0;
	/* At most one initiation per REKEY_TIMEOUT, retries included. */
	if (hs->have_sent && now - hs->last_sent_handshake < WG_REKEY_TIMEOUT)
		return;
	hs->last_sent_handshake = now;
	hs->have_sent = true;
	if (!noise_create_initiation(peer->dev, peer, msg, now))
		return;
	cookie_add_macs(&peer->cookie, msg, sizeof msg, now);
	timers_any_authenticated_packet_traversal(peer, now);
	timers_any_authenticated_packet_sent(peer);
	peer_send(peer, msg, sizeof msg);
	peer->tx_bytes += sizeof msg;
	peer->dev->stats.handshakes_sent++;
	timers_handshake_initiated(peer, now);
}

static bool
keypair_usable_for_send(const struct wg_keypair *kp, uint64_t now)
{
	return kp != NULL && kp->sending_ok && kp->send_counter < WG_REJECT_AFTER_MESSAGES &&
	    now - kp->created < WG_REJECT_AFTER_TIME;
}

/* Pads, encrypts and frames the packet in p in place; p->len is the plaintext length. */
static bool
seal_packet(struct wg_peer *peer, struct wg_keypair *kp, struct pkt *p, uint64_t now)
{
	unsigned int mtu = peer->dev->mtu;
	size_t len = p->len, padded;
	uint8_t *data = pkt_data(p), *hdr = data - WG_DATA_HEADER_LEN;
	uint64_t ctr = kp->send_counter++;

	/* Pad to 16 bytes, but never past the MTU (wireguard-go calculatePaddingSize). */
	padded = (len + 15) & ~(size_t)15;
	if (mtu != 0 && padded > mtu)
		padded = len > mtu ? len : mtu;
	if (padded > PKT_MAX_PAYLOAD + 15)
		return false;
	memset(data + len, 0, padded - len);

	hdr[0] = WG_MSG_DATA;
	hdr[1] = hdr[2] = hdr[3] = 0;
	put_le32(hdr + 4, kp->remote_index);
	put_le64(hdr + 8, ctr);
	if (!wg_data_seal(kp->send, data, data, padded, ctr))
		return false;
	p->off -= WG_DATA_HEADER_LEN;
	p->len = (uint16_t)(WG_DATA_HEADER_LEN + padded + WG_TAG_LEN);

	peer->tx_bytes += p->len;
	timers_any_authenticated_packet_traversal(peer, now);
	timers_any_authenticated_packet_sent(peer);
	if (len > 0)
		timers_data_sent(peer, now);
	return true;
}

/* Rekey on the sender's side: by message count, or by age if we initiated. */
static void
keep_key_fresh_sending(struct wg_peer *peer, uint64_t now)
{
	struct wg_keypair *kp = peer->kp_cur;

	if (kp == NULL)
		return;
	if (kp->send_counter > WG_REKEY_AFTER_MESSAGES ||
	    (kp->initiator && now - kp->created > WG_REKEY_AFTER_TIME))
		send_initiation(peer, now, false);
}

static void
stage(struct wg_peer *peer, struct pkt *p)
{
	struct staged *q = &peer->staged;

	if (q->count >= WG_MAX_STAGED) {
		/* Full: drop the oldest, as the newest is the likeliest to matter. */
		struct pkt *old = q->head;

		q->head = old->next;
		if (q->head == NULL)
			q->tail = NULL;
		q->count--;
		pkt_put(peer->dev->pool, old);
		peer->dev->stats.tx_staged_dropped++;
	}
	p->next = NULL;
	if (q->tail)
		q->tail->next = p;
	else
		q->head = p;
	q->tail = p;
	q->count++;
}

static void
send_staged(struct wg_peer *peer, uint64_t now)
{
	struct wg_keypair *kp = peer->kp_cur;
	struct pkt *p;

	if (peer->staged.head == NULL)
		return;
	if (!keypair_usable_for_send(kp, now)) {
		send_initiation(peer, now, false);
		return;
	}
	while ((p = peer->staged.head) != NULL) {
		peer->staged.head = p->next;
		peer->staged.count--;
		p->next = NULL;
		if (seal_packet(peer, kp, p, now))
			peer->dev->ops->send_pkt(peer->dev->ctx, peer, p);
		else
			pkt_put(peer->dev->pool, p);
	}
	peer->staged.tail = NULL;
	keep_key_fresh_sending(peer, now);
}

static void
send_keepalive(struct wg_peer *peer, uint64_t now)
{
	struct wg_keypair *kp = peer->kp_cur;
	uint8_t buf[WG_DATA_MIN_LEN];
	uint64_t ctr;

	/* Queued data carries the same proof of life; a handshake will follow if needed. */
	if (peer->staged.head != NULL) {
		send_staged(peer, now);
		return;
	}
	if (!keypair_usable_for_send(kp, now)) {
		send_initiation(peer, now, false);
		return;
	}
	ctr = kp->send_counter++;
	buf[0] = WG_MSG_DATA;
	buf[1] = buf[2] = buf[3] = 0;
	put_le32(buf + 4, kp->remote_index);
	put_le64(buf + 8, ctr);
	if (!wg_data_seal(kp->send, buf + WG_DATA_HEADER_LEN, NULL, 0, ctr))
		return;
	timers_any_authenticated_packet_traversal(peer, now);
	timers_any_authenticated_packet_sent(peer);
	peer_send(peer, buf, sizeof buf);
	peer->tx_bytes += sizeof buf;
}

struct wg_peer *
wg_route(struct wg_device *dev, const uint8_t *ip, size_t len)
{
	struct wg_peer *peer = NULL;

	if (len >= 20 && ip[0] >> 4 == 4)
		peer = aip_lookup(dev->aips, AF_INET, ip + 16);
	else if (len >= 40 && ip[0] >> 4 == 6)
		peer = aip_lookup(dev->aips, AF_INET6, ip + 24);
	if (peer == NULL)
		dev->stats.tx_no_route++;
	return peer;
}

enum wg_tx
wg_encrypt(struct wg_peer *peer, struct pkt *p, uint64_t now)
{
	struct wg_keypair *kp = peer->kp_cur;

	if (p->off < WG_DATA_HEADER_LEN || p->len > PKT_MAX_PAYLOAD)
		return WG_TX_DROP;
	/* Keep order: if packets wait for a session, this one waits behind them. */
	if (peer->staged.head != NULL || !keypair_usable_for_send(kp, now)) {
		stage(peer, p);
		send_staged(peer, now);
		return WG_TX_STAGED;
	}
	if (!seal_packet(peer, kp, p, now))
		return WG_TX_DROP;
	keep_key_fresh_sending(peer, now);
	return WG_TX_SEND;
}

/* --- receiving --- */

static bool
under_load(struct wg_device *dev, uint64_t now)
{
	if (dev->force_under_load)
		return true;
	if (now - dev->load_window_start >= UNDER_LOAD_WINDOW) {
		dev->load_window_start = now;
		dev->load_window_count = 0;
	}
	if (++dev->load_window_count > UNDER_LOAD_THRESHOLD)
		dev->under_load_until = now + UNDER_LOAD_HOLD;
	return now < dev->under_load_until;
}

static void
update_endpoint(struct wg_peer *peer, const union wg_endpoint *src)
{
	if (peer->dev->roaming && src != NULL) {
		peer->endpoint = *src;
		peer->has_endpoint = true;
	}
}

/*
 * Checks mac1, and under load mac2 and the rate limit.  Returns false if the
 * message is to be dropped (a cookie reply may have been sent).
 */
static bool
handshake_admit(struct wg_device *dev, const uint8_t *msg, size_t len, uint32_t sender,
    const union wg_endpoint *src, uint64_t now)
{
	uint8_t reply[WG_COOKIE_LEN];

	if (!cookie_check_mac1(&dev->cookie, msg, len)) {
		dev->stats.rx_bad_mac++;
		return false;
	}
	if (!under_load(dev, now))
		return true;
	if (!cookie_check_mac2(dev, msg, len, src, now)) {
		cookie_make_reply(dev, reply, sender, msg + len - 32, src, now);
		dev->ops->send(dev->ctx, NULL, src, reply, sizeof reply);
		dev->stats.cookies_sent++;
		return false;
	}
	if (!ratelimiter_allow(dev->rl, src, now)) {
		dev->stats.rx_ratelimited++;
		return false;
	}
	return true;
}

static void
receive_initiation(struct wg_device *dev, const uint8_t *msg, const union wg_endpoint *src,
    uint64_t now)
{
	uint8_t resp[WG_RESPONSE_LEN];
	struct wg_peer *peer;

	if (!handshake_admit(dev, msg, WG_INITIATION_LEN, get_le32(msg + 4), src, now))
		return;
	peer = noise_consume_initiation(dev, msg, now);
	if (peer == NULL)
		return;
	update_endpoint(peer, src);
	peer->rx_bytes += WG_INITIATION_LEN;
	timers_any_authenticated_packet_traversal(peer, now);
	timers_any_authenticated_packet_received(peer);
	if (!noise_create_response(dev, peer, resp))
		return;
	cookie_add_macs(&peer->cookie, resp, sizeof resp, now);
	if (noise_begin_session(dev, peer, now) == NULL)
		return;
	timers_session_derived(peer, now);
	timers_any_authenticated_packet_traversal(peer, now);
	timers_any_authenticated_packet_sent(peer);
	peer_send(peer, resp, sizeof resp);
	peer->tx_bytes += sizeof resp;
}

static void
receive_response(struct wg_device *dev, const uint8_t *msg, const union wg_endpoint *src,
    uint64_t now)
{
	struct wg_peer *peer;

	if (!handshake_admit(dev, msg, WG_RESPONSE_LEN, get_le32(msg + 4), src, now))
		return;
	peer = noise_consume_response(dev, msg);
	if (peer == NULL)
		return;
	update_endpoint(peer, src);
	peer->rx_bytes += WG_RESPONSE_LEN;
	timers_any_authenticated_packet_traversal(peer, now);
	timers_any_authenticated_packet_received(peer);
	if (noise_begin_session(dev, peer, now) == NULL)
		return;
	timers_session_derived(peer, now);
	timers_handshake_complete(peer);
	/* Key confirmation for the responder: staged data, or else a keepalive. */
	send_keepalive(peer, now);
}

static void
receive_cookie(struct wg_device *dev, const uint8_t *msg, uint64_t now)
{
	struct index_entry *ie = index_lookup(dev, get_le32(msg + 4));

	if (ie == NULL) {
		dev->stats.rx_unknown_index++;
		return;
	}
	if (!cookie_consume_reply(&ie->peer->cookie, msg, now))
		dev->stats.rx_cookie_invalid++;
}

/* The inner packet's length from its IP header, or 0 if it is not a sane IP packet. */
static size_t
inner_length(const uint8_t *ip, size_t len)
{
	size_t n;

	if (len >= 20 && ip[0] >> 4 == 4) {
		n = get_be16(ip + 2);
		return n >= 20 && n <= len ? n : 0;
	}
	if (len >= 40 && ip[0] >> 4 == 6) {
		n = 40 + (size_t)get_be16(ip + 4);
		return n <= len ? n : 0;
	}
	return 0;
}

static void
promote_next(struct wg_peer *peer, uint64_t now)
{
	/* The initiator used the new session: it holds the keys, so rotate. */
	noise_keypair_free(peer->dev, peer->kp_prev);
	peer->kp_prev = peer->kp_cur;
	peer->kp_cur = peer->kp_next;
	peer->kp_next = NULL;
	peer->kp_cur->sending_ok = true;
	timers_handshake_complete(peer);
	send_staged(peer, now);
}

static enum wg_rx
receive_data(struct wg_device *dev, uint8_t *msg, size_t len, const union wg_endpoint *src,
    uint64_t now, struct wg_rx_info *info)
{
	uint8_t *payload = msg + WG_DATA_HEADER_LEN;
	size_t plen = len - WG_DATA_MIN_LEN, n;
	struct index_entry *ie = index_lookup(dev, get_le32(msg + 4));
	struct wg_keypair *kp;
	struct wg_peer *peer;
	uint64_t ctr = get_le64(msg + 8);

	if (ie == NULL || ie->kind != INDEX_KEYPAIR) {
		dev->stats.rx_unknown_index++;
		return WG_RX_DROP;
	}
	kp = (struct wg_keypair *)ie;
	peer = ie->peer;
	if (now - kp->created >= WG_REJECT_AFTER_TIME || ctr >= WG_REJECT_AFTER_MESSAGES) {
		dev->stats.rx_expired_key++;
		return WG_RX_DROP;
	}
	if (!wg_data_open(kp->recv, payload, payload, plen, ctr)) {
		dev->stats.rx_decrypt_fail++;
		return WG_RX_DROP;
	}
	/* Only after authentication may the counter move the window. */
	if (!replay_check(&kp->replay, ctr, WG_REJECT_AFTER_MESSAGES)) {
		dev->stats.rx_replay++;
		return WG_RX_DROP;
	}
	if (kp == peer->kp_next)
		promote_next(peer, now);
	update_endpoint(peer, src);
	peer->rx_bytes += len;
	timers_any_authenticated_packet_traversal(peer, now);
	timers_any_authenticated_packet_received(peer);
	/* The receiving side's rekey: one last try before the session expires. */
	if (!peer->sent_lastminute_handshake && peer->kp_cur != NULL && peer->kp_cur->initiator &&
	    now - peer->kp_cur->created > WG_REJECT_AFTER_TIME - WG_KEEPALIVE_TIMEOUT - WG_REKEY_TIMEOUT) {
		peer->sent_lastminute_handshake = true;
		send_initiation(peer, now, false);
	}
	if (plen == 0)
		return WG_RX_CONSUMED;	/* keepalive */
	timers_data_received(peer, now);

	n = inner_length(payload, plen);
	if (n == 0) {
		dev->stats.rx_bad_inner++;
		return WG_RX_DROP;
	}
	/* Cryptokey routing: the source must be one this peer may use. */
	if (aip_lookup(dev->aips, payload[0] >> 4 == 4 ? AF_INET : AF_INET6,
	    payload + (payload[0] >> 4 == 4 ? 12 : 8)) != peer) {
		dev->stats.rx_bad_source++;
		return WG_RX_DROP;
	}
	info->peer = peer;
	info->data = payload;
	info->len = n;
	return WG_RX_DATA;
}

enum wg_rx
wg_receive(struct wg_device *dev, uint8_t *msg, size_t len, const union wg_endpoint *src,
    uint64_t now, struct wg_rx_info *info)
{
	info->peer = NULL;
	info->data = NULL;
	info->len = 0;
	if (len < 4) {
		dev->stats.rx_short++;
		return WG_RX_DROP;
	}
	switch (get_le32(msg)) {
	case WG_MSG_INITIATION:
		if (len != WG_INITIATION_LEN)
			break;
		receive_initiation(dev, msg, src, now);
		return WG_RX_CONSUMED;
	case WG_MSG_RESPONSE:
		if (len != WG_RESPONSE_LEN)
			break;
		receive_response(dev, msg, src, now);
		return WG_RX_CONSUMED;
	case WG_MSG_COOKIE:
		if (len != WG_COOKIE_LEN)
			break;
		receive_cookie(dev, msg, now);
		return WG_RX_CONSUMED;
	case WG_MSG_DATA:
		if (len < WG_DATA_MIN_LEN)
			break;
		return receive_data(dev, msg, len, src, now, info);
	default:
		dev->stats.rx_bad_type++;
		return WG_RX_DROP;
	}
	dev->stats.rx_bad_size++;
	return WG_RX_DROP;
}

bool
wg_endpoint_equal(const union wg_endpoint *a, const union wg_endpoint *b)
{
	if (a->sa.sa_family != b->sa.sa_family)
		return false;
	switch (a->sa.sa_family) {
	case AF_INET:
		return a->in4.sin_port == b->in4.sin_port &&
		    a->in4.sin_addr.s_addr == b->in4.sin_addr.s_addr;
	case AF_INET6:
		return a->in6.sin6_port == b->in6.sin6_port &&
		    memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, 16) == 0 &&
		    a->in6.sin6_scope_id == b->in6.sin6_scope_id;
	default:
		return false;
	}
}

char *
wg_endpoint_str(const union wg_endpoint *ep, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	if (ep->sa.sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &ep->in6.sin6_addr, ip, sizeof ip);
		snprintf(buf, len, "[%s]:%u", ip, ntohs(ep->in6.sin6_port));
	} else if (ep->sa.sa_family == AF_INET) {
		inet_ntop(AF_INET, &ep->in4.sin_addr, ip, sizeof ip);
		snprintf(buf, len, "%s:%u", ip, ntohs(ep->in4.sin_port));
	} else {
		snprintf(buf, len, "(none)");
	}
	return buf;
}

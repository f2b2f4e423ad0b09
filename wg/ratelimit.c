// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * Per-source token buckets for handshake messages under load (wireguard-go
 * ratelimiter: 20 per second, bursts of 5).  IPv4 sources are keyed by
 * address, IPv6 by /64, as an attacker owns at least that much.  The table
 * is a fixed array indexed by a keyed hash, so memory is bounded and an
 * attacker cannot aim at a bucket; a collision simply shares a bucket.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/clock.h"
#include "wg/wg-int.h"

#define RL_SLOTS	4096
#define RL_RATE		20
#define RL_BURST	5
#define RL_COST		(NSEC_PER_SEC / RL_RATE)
#define RL_MAX_TOKENS	(RL_COST * RL_BURST)

struct rl_slot {
	uint64_t key;
	uint64_t tokens;	/* nanoseconds of credit */
	uint64_t last;
};

struct ratelimiter {
	uint8_t hash_key[crypto_shorthash_KEYBYTES];
	struct rl_slot slots[RL_SLOTS];
};

struct ratelimiter *
ratelimiter_new(void (*rnd)(void *, void *, size_t), void *ctx)
{
	struct ratelimiter *rl = calloc(1, sizeof *rl);

	if (rl != NULL)
		rnd(ctx, rl->hash_key, sizeof rl->hash_key);
	return rl;
}

void
ratelimiter_free(struct ratelimiter *rl)
{
	free(rl);
}

bool
ratelimiter_allow(struct ratelimiter *rl, const union wg_endpoint *src, uint64_t now)
{
	uint8_t addr[17], h[crypto_shorthash_BYTES];
	struct rl_slot *s;
	uint64_t key;

	if (src->sa.sa_family == AF_INET6) {
		addr[0] = 6;
		memcpy(addr + 1, &src->in6.sin6_addr, 8);
		memset(addr + 9, 0, 8);
	} else {
		addr[0] = 4;
		memcpy(addr + 1, &src->in4.sin_addr, 4);
		memset(addr + 5, 0, 12);
	}
	crypto_shorthash(h, addr, sizeof addr, rl->hash_key);
	memcpy(&key, h, sizeof key);
	s = &rl->slots[key % RL_SLOTS];
	if (s->key != key || s->last == 0) {
		s->key = key;
		s->tokens = RL_MAX_TOKENS;
		s->last = now;
	}
	s->tokens += now - s->last;
	if (s->tokens > RL_MAX_TOKENS)
		s->tokens = RL_MAX_TOKENS;
	s->last = now;
	if (s->tokens < RL_COST)
		return false;
	s->tokens -= RL_COST;
	return true;
}

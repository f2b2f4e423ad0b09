// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */
#include <string.h>

#include "wg/replay.h"

void
replay_init(struct replay *r)
{
	memset(r, 0, sizeof *r);
}

bool
replay_check(struct replay *r, uint64_t ctr, uint64_t limit)
{
	uint64_t word, bit;

	if (ctr >= limit)
		return false;
	word = ctr / 64;
	if (ctr > r->last) {
		uint64_t cur = r->last / 64;
		uint64_t diff = word - cur;

		/* Clear the words the head moves over; at most the whole ring. */
		if (diff > REPLAY_WORDS)
			diff = REPLAY_WORDS;
		for (uint64_t i = 1; i <= diff; i++)
			r->bitmap[(cur + i) % REPLAY_WORDS] = 0;
		r->last = ctr;
	} else if (r->last - ctr > REPLAY_WINDOW) {
		return false;
	}
	word %= REPLAY_WORDS;
	bit = 1ULL << (ctr % 64);
	if (r->bitmap[word] & bit)
		return false;
	r->bitmap[word] |= bit;
	return true;
}

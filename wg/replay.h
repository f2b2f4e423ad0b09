/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_REPLAY_H
#define MESHD_REPLAY_H

#include <stdbool.h>
#include <stdint.h>

/*
 * The receive counter window (RFC 6479 bitmap ring, as in the kernel's
 * counter_validate and wireguard-go's replay package): 128 words of 64 bits,
 * of which one word is slack, so 8128 counters behind the highest seen are
 * tracked.
 */
#define REPLAY_WORDS		128
#define REPLAY_BITS_TOTAL	(REPLAY_WORDS * 64)
#define REPLAY_WINDOW		(REPLAY_BITS_TOTAL - 64)

struct replay {
	uint64_t last;		/* highest counter accepted */
	uint64_t bitmap[REPLAY_WORDS];
};

void replay_init(struct replay *r);
/* True, and the counter is marked seen, if ctr has not been seen and is in the window. */
bool replay_check(struct replay *r, uint64_t ctr, uint64_t limit) __attribute__((warn_unused_result));

#endif

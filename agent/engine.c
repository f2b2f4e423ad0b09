/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
/* Placeholder while the engine is written; replaced before it is used. */
#include <errno.h>
#include <stddef.h>

#include "agent/engine.h"

int
engine_ping(struct engine *e, const uint8_t node_key[static KEY_LEN], uint32_t timeout_ms,
    engine_ping_fn done, void *ctx)
{
	return -ENOSYS;
}

void
engine_ping_cancel(struct engine *e, void *ctx)
{
}

int
engine_netcheck(struct engine *e, engine_netcheck_fn done, void *ctx)
{
	return -ENOSYS;
}

void
engine_netcheck_cancel(struct engine *e, void *ctx)
{
}

bool
engine_peer_status(const struct engine *e, const uint8_t node_key[static KEY_LEN],
    struct engine_peer_status *out)
{
	return false;
}

int32_t
engine_preferred_derp(const struct engine *e)
{
	return 0;
}

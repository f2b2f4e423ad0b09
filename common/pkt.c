// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */
#include <errno.h>
#include <stdlib.h>

#include "common/pkt.h"

int
pkt_pool_init(struct pkt_pool *pool, size_t n)
{
	pool->mem = calloc(n, sizeof(*pool->mem));
	if (pool->mem == NULL)
		return -ENOMEM;
	pool->free = NULL;
	pool->fresh = 0;
	pool->total = pool->avail = n;
	pool->exhausted = 0;
	return 0;
}

void
pkt_pool_free(struct pkt_pool *pool)
{
	free(pool->mem);
	pool->mem = pool->free = NULL;
	pool->total = pool->avail = 0;
}

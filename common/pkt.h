/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_PKT_H
#define MESHD_PKT_H

#include <stddef.h>
#include <stdint.h>

/*
 * Packet buffers.  Every buffer the data path touches comes from a pool that
 * is allocated once at start-up; a packet that finds the pool empty is
 * dropped and counted, never allocated for.
 *
 * A buffer leaves PKT_HEADROOM bytes in front of the data so that the
 * WireGuard header can be written in place, and room behind it for padding
 * and the authentication tag.
 */
#define PKT_HEADROOM	32
#define PKT_MAX_PAYLOAD	1500	/* largest inner packet we carry (tunnel MTU) */
#define PKT_TAILROOM	32
#define PKT_BUFSIZE	(PKT_HEADROOM + PKT_MAX_PAYLOAD + PKT_TAILROOM)

struct pkt {
	struct pkt *next;	/* free list, or a queue while owned */
	uint16_t off;		/* start of data within buf */
	uint16_t len;		/* bytes of data */
	uint8_t buf[PKT_BUFSIZE];
};

static inline uint8_t *pkt_data(struct pkt *p) { return p->buf + p->off; }

struct pkt_pool {
	struct pkt *free;
	struct pkt *mem;
	size_t fresh;		/* mem[fresh..total) were never handed out */
	size_t total;
	size_t avail;
	uint64_t exhausted;	/* allocations refused */
};

/* Allocates n buffers; returns -ENOMEM on failure. */
int pkt_pool_init(struct pkt_pool *pool, size_t n) __attribute__((warn_unused_result));
void pkt_pool_free(struct pkt_pool *pool);

static inline struct pkt *
pkt_get(struct pkt_pool *pool)
{
	struct pkt *p = pool->free;

	/*
	 * Buffers never used come from the untouched tail, so an idle daemon
	 * keeps the pool's pages out of memory until traffic needs them.
	 */
	if (p != NULL) {
		pool->free = p->next;
	} else if (pool->fresh < pool->total) {
		p = &pool->mem[pool->fresh++];
	} else {
		pool->exhausted++;
		return NULL;
	}
	pool->avail--;
	p->next = NULL;
	p->off = PKT_HEADROOM;
	p->len = 0;
	return p;
}

static inline void
pkt_put(struct pkt_pool *pool, struct pkt *p)
{
	p->next = pool->free;
	pool->free = p;
	pool->avail++;
}

#endif

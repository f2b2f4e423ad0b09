// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/control/mapresp.h"
#include "agent/control/netmap.h"
#include "common/util.h"

/*
 * The map stream end to end: input byte 0 chooses the mode, the rest is
 * the HTTP/2 body of POST /machine/map as control would deliver it:
 *
 *   byte 0, bit 0: the body is zstd ([u32 LE len][zstd frame]...), else
 *                  plain JSON ([u32 LE len][JSON]...);
 *   byte 0, bits 1-7: seed for how the second pass cuts the body.
 *
 * Pass 1 feeds the body in one piece; every message is decoded and the
 * good ones are applied to one netmap that lives for the whole input, so
 * that deltas meet the state earlier messages built.  After each apply the
 * netmap's invariants must hold (netmap_check).  Pass 2 feeds the same
 * body in pieces of 1..16 bytes: the messages handed out and the final
 * error must be the same, byte for byte.  Besides "no crash, no leak, no
 * UB", that is what this target asserts.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MSGS 4096

struct run {
	struct netmap *nm;		/* NULL in pass 2 */
	size_t n;
	uint64_t sig[MAX_MSGS];
};

static uint64_t
fnv1a(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 0x100000001b3ULL;
	return h ^ n;
}

static int64_t
fake_clock(void *ctx __attribute__((unused)))
{
	return 1795573366000LL;
}

static int
on_msg(void *ctx, const char *json, size_t len)
{
	struct run *r = ctx;
	struct mapresp *mr;
	char where[96];

	if (json[len] != '\0')
		abort();
	if (r->n < MAX_MSGS)
		r->sig[r->n] = fnv1a(json, len);
	r->n++;
	if (r->nm == NULL)
		return 0;
	if (mapresp_decode(json, len, &mr, NULL, where, sizeof where) != 0)
		return 0;	/* counted and dropped; the stream goes on */
	netmap_apply(r->nm, mr);
	/* Every pointer the netmap hands out must be readable after the
	 * message it came from is freed. */
	mapresp_free(mr);
	if (netmap_check(r->nm) != 0)
		abort();
	return 0;
}

static void
touch_netmap(const struct netmap *nm)
{
	struct netmap_iter it = { 0, NULL };
	const struct netmap_node *n;
	const struct netmap_filter *f;
	const struct netmap_derp_map *dm = netmap_derp_map(nm);
	const struct netmap_dns_config *dns = netmap_dns(nm);
	size_t nf = netmap_filters(nm, &f), sum = 0, cnt = 0;
	char buf[128];

	while ((n = netmap_iter_next(nm, &it)) != NULL) {
		sum += strlen(n->name) + strlen(n->hostname) + n->n_addrs + n->n_endpoints;
		if (netmap_peer(nm, n->id) == NULL || netmap_peer_by_key(nm, n->key) == NULL)
			abort();
		sum += netmap_computed_name(nm, n, true, buf, sizeof buf);
		for (uint32_t i = 0; i < n->n_caps; i++)
			if (!netmap_node_has_cap(n, n->caps[i]))
				abort();
		cnt++;
	}
	if (cnt != netmap_peer_count(nm))
		abort();
	for (size_t i = 0; i < nf; i++)
		for (uint32_t k = 0; k < f[i].n_rules; k++)
			sum += f[i].rules[k].n_src_ips + f[i].rules[k].n_dst_ports;
	if (dm != NULL)
		for (uint32_t i = 0; i < dm->n_regions; i++)
			sum += strlen(dm->regions[i].code) + dm->regions[i].n_nodes;
	sum += dns->n_routes + dns->n_resolvers + strlen(netmap_domain(nm));
	if (netmap_self(nm) != NULL)
		sum += netmap_computed_name(nm, netmap_self(nm), false, buf, sizeof buf);
	(void)sum;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct run r1, r2;
	struct mapresp_stream *s;
	uint32_t flags, rng;
	int e1, e2;
	size_t p1, p2, off;

	if (size < 1)
		return 0;
	flags = (data[0] & 1) ? MAPRESP_STREAM_ZSTD : 0;
	rng = data[0] | 0x100u;
	data++;
	size--;

	/* Small caps keep each run fast and reach the cap paths. */
	memset(&r1, 0, sizeof r1);
	r1.nm = netmap_new();
	netmap_set_clock(r1.nm, fake_clock, NULL);
	s = mapresp_stream_new(flags, 1u << 20, 4u << 20, on_msg, &r1);
	if (s == NULL)
		abort();
	e1 = mapresp_stream_feed(s, data, size);
	p1 = mapresp_stream_pending(s);
	mapresp_stream_free(s);
	touch_netmap(r1.nm);
	netmap_free(r1.nm);

	memset(&r2, 0, sizeof r2);
	s = mapresp_stream_new(flags, 1u << 20, 4u << 20, on_msg, &r2);
	if (s == NULL)
		abort();
	e2 = 0;
	for (off = 0; off < size && e2 == 0;) {
		size_t n;

		rng = rng * 1103515245u + 12345u;
		n = MIN((size_t)((rng >> 16) % 16) + 1, size - off);
		e2 = mapresp_stream_feed(s, data + off, n);
		off += n;
	}
	p2 = mapresp_stream_pending(s);
	mapresp_stream_free(s);

	if (e1 != e2 || r1.n != r2.n || (e1 == 0 && p1 != p2) ||
	    memcmp(r1.sig, r2.sig, MIN(r1.n, (size_t)MAX_MSGS) * sizeof r1.sig[0]) != 0)
		abort();
	return 0;
}

// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */
/*
 * libFuzzer target for wg/offload.c.  The input is what a read() from a
 * vnet TUN returns (vnet header + packet), as in the seeds.
 *
 *  1. offload_split() into fixed buffers: no crash, every length within
 *     the buffers.
 *  2. The segments go through GRO and every write is split again: since
 *     they are one flow in order, re-splitting the writes must give back
 *     exactly the segments (so GRO kept order, bytes and headers).
 *  3. The input is also cut into arbitrary packets for GRO: no byte is
 *     lost or added, and every coalesced write splits into as many
 *     segments as it has iovecs, carrying the same payloads.
 * Every packet buffer is its own allocation with exactly OFFLOAD_HEADROOM
 * in front, so ASan sees any write outside the contract.
 */
#include <linux/virtio_net.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "wg/offload.h"

#define NOUT	64
#define CAP	9216
#define FLAT	(OFFLOAD_VNET_HDR_LEN + 65535 + 40)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *seg[NOUT];	/* OFFLOAD_HEADROOM + CAP each */
static uint8_t *ref[NOUT], *seg2[NOUT];	/* CAP each */
static uint8_t *flat;
static struct offload_gro *gro;

static void
init(void)
{
	for (int i = 0; i < NOUT; i++) {
		seg[i] = (uint8_t *)malloc(OFFLOAD_HEADROOM + CAP) + OFFLOAD_HEADROOM;
		ref[i] = malloc(CAP);
		seg2[i] = malloc(CAP);
	}
	flat = malloc(FLAT);
	gro = offload_gro_new(NOUT);
	if (gro == NULL || flat == NULL)
		abort();
}

static size_t
flatten(const struct offload_write *w)
{
	size_t n = 0;

	for (unsigned int i = 0; i < w->iovcnt; i++) {
		if (n + w->iov[i].iov_len > FLAT)
			abort();
		memcpy(flat + n, w->iov[i].iov_base, w->iov[i].iov_len);
		n += w->iov[i].iov_len;
	}
	if (n != w->len)
		abort();
	return n;
}

/* A write's header is all zero (pass-through) or a TCP super-packet. */
static bool
is_gso(const uint8_t *b)
{
	struct virtio_net_hdr h;
	static const struct virtio_net_hdr zero;

	memcpy(&h, b, sizeof h);
	if (memcmp(&h, &zero, sizeof h) == 0)
		return false;
	if (h.flags != VIRTIO_NET_HDR_F_NEEDS_CSUM || h.csum_offset != 16 ||
	    (h.gso_type != VIRTIO_NET_HDR_GSO_TCPV4 &&
	    h.gso_type != VIRTIO_NET_HDR_GSO_TCPV6) || h.gso_size == 0)
		abort();
	return true;
}

static void
split_then_gro(const uint8_t *data, size_t size)
{
	uint16_t len[NOUT], len2[NOUT];
	const struct offload_write *w;
	size_t nw, k = 0;
	int n;

	n = offload_split(data, size, seg, CAP, len, NOUT);
	if (n == 0 || n > NOUT)
		abort();
	if (n < 0)
		return;
	for (int i = 0; i < n; i++)
		if (len[i] > CAP || len[i] < 20)
			abort();
	/* GRO rewrites a group's first packet in place: keep the originals. */
	for (int i = 0; i < n; i++)
		memcpy(ref[i], seg[i], len[i]);

	offload_gro_reset(gro);
	for (int i = 0; i < n; i++)
		if (offload_gro_add(gro, seg[i], len[i]) != 0)
			abort();
	nw = offload_gro_flush(gro, &w);
	for (size_t i = 0; i < nw; i++) {
		size_t fl = flatten(&w[i]);
		int m;

		if (!is_gso(flat)) {
			if (w[i].iovcnt != 1)
				abort();
			if (memcmp(flat + OFFLOAD_VNET_HDR_LEN, ref[k], len[k]) != 0 ||
			    fl - OFFLOAD_VNET_HDR_LEN != len[k])
				abort();
			k++;
			continue;
		}
		m = offload_split(flat, fl, seg2, CAP, len2, NOUT);
		if (m != (int)w[i].iovcnt)
			abort();
		for (int j = 0; j < m; j++, k++)
			if (len2[j] != len[k] || memcmp(seg2[j], ref[k], len[k]) != 0)
				abort();
	}
	if (k != (size_t)n)
		abort();
}

static void
gro_arbitrary(const uint8_t *data, size_t size)
{
	const struct offload_write *w;
	size_t total = 0, out = 0, nw;
	int n = 0;

	/* Packets: a length byte pair then that many bytes, until exhausted. */
	offload_gro_reset(gro);
	while (size >= 2 && n < NOUT) {
		size_t l = MIN((size_t)get_be16(data) % 1600, size - 2);

		data += 2;
		size -= 2;
		if (l == 0)
			continue;
		memcpy(seg[n], data, l);
		if (offload_gro_add(gro, seg[n], l) != 0)
			abort();
		total += l;
		data += l;
		size -= l;
		n++;
	}
	nw = offload_gro_flush(gro, &w);
	for (size_t i = 0; i < nw; i++) {
		size_t fl = flatten(&w[i]);
		uint16_t len2[NOUT];
		int m;

		out += fl - OFFLOAD_VNET_HDR_LEN;
		if (!is_gso(flat)) {
			if (w[i].iovcnt != 1)
				abort();
			continue;
		}
		m = offload_split(flat, fl, seg2, CAP, len2, NOUT);
		if (m != (int)w[i].iovcnt)
			abort();
		for (int j = 1; j < m; j++) {
			size_t hl;

			if (w[i].iov[j].iov_len > len2[j])
				abort();
			hl = len2[j] - w[i].iov[j].iov_len;
			if (memcmp(seg2[j] + hl, w[i].iov[j].iov_base,
			    w[i].iov[j].iov_len) != 0)
				abort();
		}
	}
	if (out != total)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (gro == NULL)
		init();
	split_then_gro(data, size);
	gro_arbitrary(data, size);
	return 0;
}

// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * wg_receive() on untrusted datagrams: all four message types.
 *
 * Each input is a list of records (1 byte target, 2 bytes big-endian length,
 * then the datagram) delivered to one of two devices that have just
 * completed a handshake with the fixed keys and randomness of the
 * protocol/wireguard.md §10 vectors.  So the session indices are known, and
 * seeds built from the vectors reach the decryption and replay paths.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/clock.h"
#include "common/util.h"
#include "wg/wg-int.h"

struct host {
	struct wg_device *dev;
	struct pkt_pool pool;
	uint8_t script[64];
	size_t script_len, script_pos;
	uint64_t fill;
	uint8_t last[256];
	size_t last_len;
};

static uint64_t now_ns;

static void
op_send(void *ctx, struct wg_peer *peer, const union wg_endpoint *to, const uint8_t *buf, size_t len)
{
	struct host *h = ctx;

	if (len <= sizeof h->last) {
		memcpy(h->last, buf, len);
		h->last_len = len;
	}
}

static void
op_send_pkt(void *ctx, struct wg_peer *peer, struct pkt *p)
{
	struct host *h = ctx;

	op_send(ctx, peer, NULL, pkt_data(p), p->len);
	pkt_put(&h->pool, p);
}

static uint64_t
op_realtime(void *ctx)
{
	return 1700000000ULL * NSEC_PER_SEC + now_ns;
}

static void
op_random(void *ctx, void *buf, size_t len)
{
	struct host *h = ctx;
	uint8_t *b = buf;

	for (size_t i = 0; i < len; i++)
		b[i] = h->script_pos < h->script_len ? h->script[h->script_pos++] :
		    (uint8_t)(++h->fill * 0x9e3779b97f4a7c15ULL >> 56);
}

static const struct wg_ops ops = { op_send, op_send_pkt, op_realtime, op_random };

static void
host_setup(struct host *h, uint8_t key0, uint8_t eph0, uint32_t index)
{
	uint8_t priv[32];

	memset(h, 0, sizeof *h);
	if (pkt_pool_init(&h->pool, 64) < 0)
		abort();
	h->dev = wg_device_new(&ops, h, &h->pool);
	for (int i = 0; i < 32; i++) {
		priv[i] = (uint8_t)(key0 + i);
		h->script[i] = (uint8_t)(eph0 + i);
	}
	put_le32(h->script + 32, index);
	h->script_len = 36;
	wg_device_set_private_key(h->dev, priv);
}

static struct wg_peer *
link_peer(struct host *h, struct host *other, const char *ip)
{
	uint8_t pub[32], addr[4];
	union wg_endpoint ep = { .in4 = { .sin_family = AF_INET, .sin_port = htons(51820) } };
	struct wg_peer *p;

	wg_device_public_key(other->dev, pub);
	p = wg_peer_new(h->dev, pub);
	inet_pton(AF_INET, ip, addr);
	if (p == NULL || wg_peer_add_allowed_ip(p, AF_INET, addr, 32) < 0)
		abort();
	wg_peer_set_endpoint(p, &ep);
	return p;
}

static void
deliver(struct host *to, uint8_t *buf, size_t len)
{
	union wg_endpoint src = { .in4 = { .sin_family = AF_INET, .sin_port = htons(51820) } };
	struct wg_rx_info rx;

	src.in4.sin_addr.s_addr = htonl(0x7f000001);
	if (wg_receive(to->dev, buf, len, &src, now_ns, &rx) == WG_RX_DATA) {
		/* The core promises the inner packet lies within the datagram. */
		if (rx.data < buf || rx.data + rx.len > buf + len || rx.peer == NULL)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	struct host a, b;
	uint8_t buf[PKT_BUFSIZE];

	if (!init) {
		if (sodium_init() < 0)
			abort();
		init = true;
	}
	now_ns = 0;
	host_setup(&a, 0x00, 0x20, 0x11223344);
	host_setup(&b, 0x40, 0x60, 0x55667788);
	wg_peer_initiate(link_peer(&a, &b, "100.64.0.2"), 0);
	link_peer(&b, &a, "100.64.0.1");
	/* The §10 exchange: initiation, response, keepalive. */
	deliver(&b, a.last, a.last_len);
	deliver(&a, b.last, b.last_len);
	deliver(&b, a.last, a.last_len);

	while (size >= 3) {
		struct host *to = data[0] & 1 ? &a : &b;
		size_t len = get_be16(data + 1);

		data += 3;
		size -= 3;
		if (len > size)
			len = size;
		if (len > sizeof buf)
			len = sizeof buf;
		memcpy(buf, data, len);
		if (data[-3] & 2)
			now_ns += 60 * NSEC_PER_SEC;	/* let time pass: expiry paths */
		deliver(to, buf, len);
		wg_device_tick(to->dev, now_ns);
		data += len;
		size -= len;
	}
	wg_device_free(a.dev);
	wg_device_free(b.dev);
	if (a.pool.avail != a.pool.total || b.pool.avail != b.pool.total)
		abort();	/* a packet buffer leaked */
	pkt_pool_free(&a.pool);
	pkt_pool_free(&b.pool);
	return 0;
}

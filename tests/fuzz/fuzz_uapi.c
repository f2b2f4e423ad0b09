// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/log.h"
#include "common/pkt.h"
#include "common/util.h"
#include "wg/uapi.h"
#include "wg/wg.h"

/*
 * The UAPI socket's parser, fed arbitrary bytes as one connection's input
 * on a fresh device with a stub host.
 *
 * Each input runs twice, on two fresh devices: once in one piece, once cut
 * into pieces of 1..7 bytes as a socket might deliver it.  Besides "no crash,
 * no leak, no UB", the two answers must be byte for byte the same: where the
 * stream happens to be cut must never change what is applied or answered.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct stub {
	uint16_t port;
	uint32_t fwmark;
	uint64_t rng;
};

static uint16_t
get_port(void *ctx)
{
	return ((struct stub *)ctx)->port;
}

static int
set_port(void *ctx, uint16_t port)
{
	/* Some port must fail, so that the host-error path is reachable. */
	if (port == 1)
		return -98;	/* EADDRINUSE */
	((struct stub *)ctx)->port = port;
	return 0;
}

static uint32_t
get_fwmark(void *ctx)
{
	return ((struct stub *)ctx)->fwmark;
}

static int
set_fwmark(void *ctx, uint32_t mark)
{
	((struct stub *)ctx)->fwmark = mark;
	return 0;
}

static uint64_t
now(void *ctx)
{
	return 42000000000ULL;
}

static void
ops_send(void *ctx, struct wg_peer *peer, const union wg_endpoint *to, const uint8_t *buf,
    size_t len)
{
}

static void
ops_send_pkt(void *ctx, struct wg_peer *peer, struct pkt *p)
{
	abort();	/* no session can exist: nothing is ever staged */
}

static uint64_t
ops_realtime(void *ctx)
{
	return 1700000000ULL * 1000000000ULL;
}

/* Deterministic, so that a crash reproduces from its input alone. */
static void
ops_random(void *ctx, void *buf, size_t len)
{
	struct stub *s = ctx;
	uint8_t *b = buf;

	for (size_t i = 0; i < len; i++) {
		s->rng = s->rng * 6364136223846793005ULL + 1442695040888963407ULL;
		b[i] = (uint8_t)(s->rng >> 56);
	}
}

static const struct wg_ops ops = {
	.send = ops_send,
	.send_pkt = ops_send_pkt,
	.realtime = ops_realtime,
	.random = ops_random,
};

/* Runs the input on a fresh device; chunk 0 means in one piece. */
static void
run(const uint8_t *data, size_t size, size_t chunk, struct uapi_out *out)
{
	struct stub st = { .rng = 1 };
	const struct uapi_host host = {
		.ctx = &st,
		.get_listen_port = get_port,
		.set_listen_port = set_port,
		.get_fwmark = get_fwmark,
		.set_fwmark = set_fwmark,
		.now = now,
	};
	struct wg_device *dev = wg_device_new(&ops, &st, NULL);
	struct uapi_conn *conn = uapi_conn_new();
	bool closed = false;

	if (dev == NULL)
		abort();
	for (size_t off = 0, n; off < size && !closed; off += n) {
		n = chunk == 0 ? size : MIN(chunk, size - off);
		closed = uapi_conn_feed(conn, dev, &host, data + off, n, out);
	}
	if (!closed)
		uapi_conn_eof(conn, dev, &host, out);
	/* Bodies stay within the limit; errno lines (<= 12 bytes per >= 7 read) may pass it. */
	if (uapi_out_pending(out) > out->limit + 2 * size + 16)
		abort();
	uapi_conn_free(conn);
	wg_device_free(dev);
}

/* Nothing, or answers of which the last ends in an "errno=N" line and a blank line. */
static bool
complete(const struct uapi_out *out)
{
	size_t len = uapi_out_pending(out);
	const char *s, *line;

	if (len == 0)
		return true;
	s = out->buf + out->off;
	if (len < 9 || s[len - 1] != '\n' || s[len - 2] != '\n')
		return false;
	line = s + len - 2;
	while (line > s && line[-1] != '\n')
		line--;
	return strncmp(line, "errno=", 6) == 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	struct uapi_out whole = { 0 }, pieces = { 0 };

	if (!init) {
		/* The core keeps the private key in sodium_malloc() memory. */
		if (sodium_init() < 0)
			abort();
		log_init("fuzz_uapi", LOG_LVL_ERR);
		init = true;
	}
	/* Small enough that a few pipelined gets reach the "too large" answer. */
	whole.limit = pieces.limit = 16384;
	run(data, size, 0, &whole);
	run(data, size, 1 + size % 7, &pieces);
	if (uapi_out_pending(&whole) != uapi_out_pending(&pieces) ||
	    (uapi_out_pending(&whole) > 0 &&
	    memcmp(whole.buf + whole.off, pieces.buf + pieces.off, uapi_out_pending(&whole)) != 0))
		abort();
	if (!complete(&whole))
		abort();
	uapi_out_free(&whole);
	uapi_out_free(&pieces);
	return 0;
}

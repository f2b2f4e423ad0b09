// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * The DERP client codec on untrusted bytes.
 *
 * Input: [mode][arg][bytes...].  mode % 3 picks the entry point:
 *   0  the server's side of a connection as one TCP stream: the response
 *      to the upgrade, fed in reads of `arg` bytes (0 means 1) and again in
 *      one piece (both must agree on everything), then, after a 101, the
 *      frames that follow, the first one read as the ServerKey;
 *   1  a stream of frames, each decoded by derp_msg_parse and, for a
 *      ServerInfo, opened with the fixed keys below;
 *   2  every per-type parser on the bytes as one payload, arg as the type.
 * The client and server keys are fixed, so seeds can carry a ServerInfo
 * box that opens and reach the JSON decoder.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "agent/magicsock/derp.h"
#include "common/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT (2 * DERP_FRAME_MAX)

static uint8_t client_priv[32], server_pub[32];
static struct derp_http whole, pieces;

static void
setup(void)
{
	uint8_t server_priv[32];

	if (sodium_init() < 0)
		abort();
	/* Seeds are sealed with these: client key bytes 1..32, server key bytes 0x41..0x60. */
	for (int i = 0; i < 32; i++) {
		client_priv[i] = (uint8_t)(i + 1);
		server_priv[i] = (uint8_t)(0x41 + i);
	}
	crypto_scalarmult_curve25519_base(server_pub, server_priv);
}

static void
check_text(const char *s, size_t cap)
{
	size_t n = strnlen(s, cap);

	/* NUL terminated within its buffer, printable ASCII only: it goes to logs. */
	if (n >= cap)
		abort();
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			abort();
}

static bool
within(const uint8_t *p, size_t len, const uint8_t *base, size_t blen)
{
	return p >= base && len <= blen && (size_t)(p - base) <= blen - len;
}

/* One payload through derp_msg_parse and the parsers behind it. */
static void
message(uint8_t type, const uint8_t *p, size_t len)
{
	struct derp_server_info si;
	struct derp_msg m;
	char text[64];
	int r;

	r = derp_msg_parse(type, p, len, &m);
	if (r != DERP_OK && r != DERP_SKIP && r != DERP_ERR_SHORT && r != DERP_ERR_FORMAT &&
	    r != DERP_ERR_TOO_BIG)
		abort();
	if (r != DERP_OK)
		return;
	switch (type) {
	case DERP_FRAME_SERVER_KEY:
		if (!within(m.u.server_key, 32, p, len))
			abort();
		break;
	case DERP_FRAME_SERVER_INFO:
		r = derp_server_info_open(m.u.server_info.p, m.u.server_info.len, client_priv,
		    server_pub, &si);
		if (r == DERP_OK && (si.version < 0 || si.version > 1000000))
			abort();
		if (r != DERP_OK && (si.version != 0 || si.token_bucket_bytes_per_second != 0))
			abort();
		break;
	case DERP_FRAME_RECV_PACKET:
		if (m.u.recv.src != p || m.u.recv.pkt != p + 32 || m.u.recv.len > DERP_MAX_PACKET ||
		    !within(m.u.recv.pkt, m.u.recv.len, p, len))
			abort();
		break;
	case DERP_FRAME_PEER_GONE:
		if (m.u.peer_gone.key != p || len < 32 || (len == 32 && m.u.peer_gone.reason != 0))
			abort();
		break;
	case DERP_FRAME_PING:
	case DERP_FRAME_PONG:
		if (len < 8 || memcmp(m.u.ping, p, 8) != 0)
			abort();
		break;
	case DERP_FRAME_HEALTH:
		if (!within(m.u.health.text, m.u.health.len, p, len))
			abort();
		derp_health_text(m.u.health.text, m.u.health.len, text, sizeof text);
		check_text(text, sizeof text);
		break;
	case DERP_FRAME_RESTARTING:
		if (len < 8 || m.u.restarting.reconnect_in_ms != get_be32(p))
			abort();
		break;
	case DERP_FRAME_KEEP_ALIVE:
		break;
	default:
		/* Anything else must have been skipped. */
		abort();
	}
}

/* Frames until the bytes run out; the first may be held to the ServerKey limit. */
static void
frames(const uint8_t *p, size_t len, bool first_is_key)
{
	struct derp_frame f;
	uint8_t key[32];
	int r;

	while (len > 0) {
		r = derp_frame_next(p, len, first_is_key ? DERP_SERVER_KEY_FRAME_MAX : DERP_FRAME_MAX,
		    &f);
		if (r == DERP_MORE || r == DERP_ERR_TOO_BIG)
			return;
		if (r != DERP_OK || f.total > len || f.payload != p + DERP_FRAME_HDR_LEN ||
		    f.total != DERP_FRAME_HDR_LEN + (size_t)f.len || f.len > DERP_FRAME_MAX)
			abort();
		if (first_is_key) {
			/* What derpconn does with the first frame. */
			if (f.type == DERP_FRAME_SERVER_KEY &&
			    derp_server_key_parse(f.payload, f.len, key) == DERP_OK &&
			    memcmp(key, f.payload + DERP_MAGIC_LEN, 32) != 0)
				abort();
			first_is_key = false;
		} else {
			message(f.type, f.payload, f.len);
		}
		p += f.total;
		len -= f.total;
	}
}

static int
http_run(struct derp_http *hp, const uint8_t *data, size_t size, size_t chunk, size_t *consumed)
{
	size_t off = 0, used;
	int r = DERP_MORE;

	derp_http_init(hp);
	while (off < size && r == DERP_MORE) {
		size_t n = MIN(chunk, size - off);

		r = derp_http_feed(hp, data + off, n, &used);
		if (used > n || (r == DERP_MORE && used != n))
			abort();
		off += used;
	}
	if (r == DERP_MORE) {
		r = derp_http_eof(hp);
		if (r != DERP_ERR_HTTP_EOF && r != DERP_ERR_HTTP_STATUS)
			abort();
	}
	*consumed = off;
	return r;
}

static void
http(const uint8_t *data, size_t size, size_t chunk)
{
	char why[512];
	size_t a, b;
	int ra, rb;

	ra = http_run(&whole, data, size, size ? size : 1, &a);
	rb = http_run(&pieces, data, size, chunk, &b);
	/* Where the head ends and what it said cannot depend on how it was read. */
	if (ra != rb || a != b || whole.status != pieces.status ||
	    strcmp(whole.reason, pieces.reason) != 0)
		abort();
	if (a > DERP_HTTP_HEAD_MAX || whole.len > DERP_HTTP_HEAD_MAX)
		abort();
	if (ra == DERP_OK && whole.status != 101)
		abort();
	check_text(whole.reason, sizeof whole.reason);
	check_text(whole.detail, sizeof whole.detail);
	derp_http_describe(&whole, ra, why, sizeof why);
	check_text(why, sizeof why);
	if (ra == DERP_OK)
		frames(data + a, size - a, true);
}

static void
per_type(uint8_t type, const uint8_t *p, size_t len)
{
	const uint8_t *src, *pkt, *key;
	struct derp_server_info si;
	uint8_t out[32], reason;
	uint32_t a, b;
	size_t n;
	char text[16];

	(void)derp_server_key_parse(p, len, out);
	(void)derp_server_info_open(p, len, client_priv, server_pub, &si);
	if (derp_recv_packet_parse(p, len, &src, &pkt, &n) == DERP_OK &&
	    (n > DERP_MAX_PACKET || n + 32 != len))
		abort();
	if (derp_peer_gone_parse(p, len, &key, &reason) == DERP_OK && key != p)
		abort();
	(void)derp_ping_parse(p, len, out);
	(void)derp_restarting_parse(p, len, &a, &b);
	derp_health_text(p, len, text, sizeof text);
	check_text(text, sizeof text);
	message(type, p, len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	uint8_t mode, arg;

	if (!ready) {
		setup();
		ready = true;
	}
	if (size < 2 || size - 2 > FUZZ_MAX_INPUT)
		return 0;
	mode = data[0] % 3;
	arg = data[1];
	data += 2;
	size -= 2;
	switch (mode) {
	case 0:
		http(data, size, arg ? arg : 1);
		break;
	case 1:
		frames(data, size, false);
		break;
	default:
		per_type(arg, data, size);
		break;
	}
	return 0;
}

// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * The controlbase client read path on untrusted bytes.
 *
 * Input: [mode][chunk][server bytes...].  mode % 3 picks where the server
 * bytes enter:
 *   0  the HTTP response to the upgrade, then (after a 101) the handshake
 *      response, then transport records, then the early-payload filter --
 *      the whole read path, as one TCP stream;
 *   1  the handshake response, then records and early payload;
 *   2  transport records after a completed handshake.
 * The client uses the fixed keys and ephemeral of the protocol/control.md
 * §3.5 vector, so seeds built from the vector (and records sealed with its
 * k_s2c at counters 0, 1, ...) reach the success paths.
 *
 * Each input runs twice: in one piece and in reads of `chunk` bytes (0 means
 * 1).  The parsers are incremental, so both runs must agree on everything:
 * the verdict, the plaintext, the early payload and the error texts.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "agent/control/controlbase.h"
#include "common/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT 65536

enum { S_HTTP, S_RESP, S_RECORDS };

struct run {
	int stage;
	int err;		/* first failure, 0 if none */
	struct ctlb_http hp;
	struct ctlb c;
	struct ctlb_early early;
	uint8_t plain[FUZZ_MAX_INPUT];
	size_t plain_len;
};

static const uint8_t vec_server_pub[32] = {
	0x79, 0xa6, 0x31, 0xee, 0xde, 0x1b, 0xf9, 0xc9, 0x8f, 0x12, 0x03, 0x2c, 0xde, 0xad, 0xd0, 0xe7,
	0xa0, 0x79, 0x39, 0x8f, 0xc7, 0x86, 0xb8, 0x8c, 0xc8, 0x46, 0xec, 0x89, 0xaf, 0x85, 0xa5, 0x1a,
};
static const uint8_t vec_resp[CTLB_RESP_LEN] = {
	0x02, 0x00, 0x30, 0x67, 0x5d, 0xd5, 0x74, 0xed, 0x77, 0x89, 0x31, 0x0b, 0x3d, 0x2e, 0x76, 0x81,
	0xf3, 0x79, 0x0b, 0x46, 0x6c, 0x77, 0x3b, 0x15, 0x21, 0xfe, 0xcf, 0x36, 0x57, 0x79, 0x58, 0x37,
	0x1e, 0xa5, 0x2f, 0xc9, 0xdd, 0x7d, 0x78, 0xdf, 0x78, 0xba, 0x87, 0xd8, 0xe5, 0xe2, 0x46, 0xff,
	0xc6, 0xaf, 0x00,
};

static uint8_t machine_priv[32];
static struct ctlb sent_tmpl, open_tmpl;
static struct run whole, pieces;

static void
vector_rng(void *ctx, uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(0x20 + i);
}

static void
setup(void)
{
	uint8_t init[CTLB_INIT_LEN];
	size_t used;

	if (sodium_init() < 0)
		abort();
	for (int i = 0; i < 32; i++)
		machine_priv[i] = (uint8_t)i;
	if (ctlb_init(&sent_tmpl, 130, machine_priv, NULL, vec_server_pub, vector_rng, NULL) != 0 ||
	    ctlb_initiation(&sent_tmpl, init) != 0)
		abort();
	open_tmpl = sent_tmpl;
	if (ctlb_read_response(&open_tmpl, vec_resp, sizeof vec_resp, &used) != CTLB_DONE)
		abort();
}

static bool
printable(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < 0x20 || s[i] > 0x7e)
			return false;
	}
	return true;
}

static bool
zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

static int
plain_cb(void *ctx, const uint8_t *buf, size_t len)
{
	struct run *r = ctx;

	/* Plaintext is always shorter than the records that carried it. */
	if (len == 0 || r->plain_len + len > sizeof r->plain)
		abort();
	memcpy(r->plain + r->plain_len, buf, len);
	r->plain_len += len;
	return 0;
}

static int
early_cb(void *ctx, const uint8_t *buf, size_t len)
{
	struct run *r = ctx;

	if (len == 0 || len > CTLB_MAX_PLAINTEXT)
		abort();
	return ctlb_early_feed(&r->early, buf, len, plain_cb, r) < 0;
}

/* One read's worth of bytes, through whichever stage we are in. */
static void
feed(struct run *r, const uint8_t *buf, size_t len)
{
	size_t used;
	int ret;

	while (len > 0 && r->err == 0) {
		switch (r->stage) {
		case S_HTTP:
			ret = ctlb_http_feed(&r->hp, buf, len, &used);
			break;
		case S_RESP:
			ret = ctlb_read_response(&r->c, buf, len, &used);
			break;
		default:
			ret = ctlb_feed(&r->c, buf, len, early_cb, r);
			used = len;
			break;
		}
		if (used > len || (ret == CTLB_MORE && used != len))
			abort();
		if (ret < 0) {
			r->err = ret;
			return;
		}
		if (ret == CTLB_DONE)
			r->stage++;
		buf += used;
		len -= used;
	}
}

static void
run(struct run *r, int mode, const uint8_t *data, size_t size, size_t chunk)
{
	r->stage = mode;
	r->err = 0;
	r->plain_len = 0;
	ctlb_http_init(&r->hp);
	ctlb_early_init(&r->early);
	r->c = mode == S_RECORDS ? open_tmpl : sent_tmpl;

	for (size_t off = 0; off < size && r->err == 0; off += chunk)
		feed(r, data + off, MIN(chunk, size - off));
	if (r->stage == S_HTTP && r->err == 0) {
		r->err = ctlb_http_eof(&r->hp);
		if (r->err >= 0)
			abort();
	}

	/* Peer text is bounded and log-safe. */
	if (!printable(ctlb_http_reason(&r->hp), CTLB_TEXT_MAX) ||
	    !printable(ctlb_http_detail(&r->hp), CTLB_TEXT_MAX) ||
	    !printable(ctlb_server_error(&r->c), CTLB_TEXT_MAX))
		abort();
	if (r->hp.head_len > CTLB_HTTP_HEAD_MAX + 1)
		abort();
	/* A failed connection holds no keys; a live one holds no handshake secrets. */
	if (ctlb_error(&r->c) != 0 &&
	    (!zero(r->c.tx_key, 32) || !zero(r->c.rx_key, 32) || r->c.machine_priv != NULL))
		abort();
	if (ctlb_is_open(&r->c) && (!zero(r->c.eph_priv, 32) || r->c.machine_priv != NULL))
		abort();
	if (r->c.rx_len >= CTLB_MAX_MSG)
		abort();
}

static void
compare(const struct run *a, const struct run *b)
{
	const uint8_t *ja, *jb;
	size_t la, lb;

	if (a->err != b->err || a->stage != b->stage || a->plain_len != b->plain_len ||
	    memcmp(a->plain, b->plain, a->plain_len) != 0)
		abort();
	if (ctlb_http_status(&a->hp) != ctlb_http_status(&b->hp) ||
	    strcmp(ctlb_http_reason(&a->hp), ctlb_http_reason(&b->hp)) != 0 ||
	    strcmp(ctlb_http_detail(&a->hp), ctlb_http_detail(&b->hp)) != 0 ||
	    strcmp(ctlb_server_error(&a->c), ctlb_server_error(&b->c)) != 0)
		abort();
	ja = ctlb_early_payload(&a->early, &la);
	jb = ctlb_early_payload(&b->early, &lb);
	if ((ja == NULL) != (jb == NULL) || la != lb || la > CTLB_EARLY_MAX ||
	    (ja != NULL && memcmp(ja, jb, la) != 0))
		abort();
	if (a->c.rx_ctr != b->c.rx_ctr)
		abort();
}

/* The send side on the same connection: sizes and counters add up. */
static void
send_back(struct run *r)
{
	static uint8_t out[FUZZ_MAX_INPUT + 64 * CTLB_RECORD_OVERHEAD];
	size_t n, len = MIN(r->plain_len, (size_t)FUZZ_MAX_INPUT);
	uint64_t before = r->c.tx_ctr;

	if (!ctlb_is_open(&r->c))
		return;
	if (ctlb_encrypt(&r->c, r->plain, len, out, sizeof out, &n) != 0 ||
	    n != ctlb_sealed_size(len) ||
	    r->c.tx_ctr - before != (len + CTLB_MAX_PLAINTEXT - 1) / CTLB_MAX_PLAINTEXT)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	size_t chunk;
	int mode;

	if (!ready) {
		setup();
		ready = true;
	}
	if (size < 2 || size - 2 > FUZZ_MAX_INPUT)
		return 0;
	mode = data[0] % 3;
	chunk = data[1] ? data[1] : 1;
	data += 2;
	size -= 2;

	run(&whole, mode, data, size, size ? size : 1);
	run(&pieces, mode, data, size, chunk);
	compare(&whole, &pieces);
	send_back(&whole);
	ctlb_clear(&whole.c);
	ctlb_clear(&pieces.c);
	return 0;
}

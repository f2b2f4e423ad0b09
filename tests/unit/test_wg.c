// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * The WireGuard core against fixed vectors, and two cores wired together
 * through an in-memory network with a fake clock to exercise the timers.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "common/clock.h"
#include "common/util.h"
#include "wg/crypto.h"
#include "wg/blake2s.h"
#include "wg/replay.h"
#include "wg/wg-int.h"

#define SEC NSEC_PER_SEC

static void
unhex(uint8_t *out, const char *hex)
{
	size_t n = strlen(hex) / 2;

	for (size_t i = 0; i < n; i++)
		assert_int_equal(sscanf(hex + 2 * i, "%2hhx", &out[i]), 1);
}

static void
assert_hex(const uint8_t *got, const char *hex)
{
	uint8_t want[512];
	size_t n = strlen(hex) / 2;

	unhex(want, hex);
	assert_memory_equal(got, want, n);
}

static void
range(uint8_t *out, uint8_t start, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = (uint8_t)(start + i);
}

/* --- a fake host: scripted randomness, a fake wall clock, a datagram queue --- */

#define MAX_DGRAMS 64

struct dgram {
	struct host *from;
	size_t len;
	uint8_t buf[PKT_BUFSIZE];
};

struct host {
	struct wg_device *dev;
	struct pkt_pool pool;
	struct host *other;
	union wg_endpoint addr;		/* where the other side sees us */
	uint8_t script[256];		/* served first by the random op */
	size_t script_len, script_pos;
	uint64_t fill;
	struct dgram out[MAX_DGRAMS];	/* datagrams sent, oldest first */
	size_t nout;
	unsigned int initiations, keepalives, cookies;
};

/* The wall clock runs with the fake monotonic clock, from the vectors' epoch. */
static uint64_t fake_real_ns = 1700000000ULL * SEC;
static uint64_t cur_now;

static void
host_record(struct host *h, const uint8_t *buf, size_t len)
{
	if (len >= 4 && buf[0] == WG_MSG_INITIATION)
		h->initiations++;
	if (len == WG_DATA_MIN_LEN && buf[0] == WG_MSG_DATA)
		h->keepalives++;
	if (len == WG_COOKIE_LEN && buf[0] == WG_MSG_COOKIE)
		h->cookies++;
	assert_true(h->nout < MAX_DGRAMS);
	h->out[h->nout].len = len;
	memcpy(h->out[h->nout].buf, buf, len);
	h->nout++;
}

static void
op_send(void *ctx, struct wg_peer *peer, const union wg_endpoint *to, const uint8_t *buf, size_t len)
{
	host_record(ctx, buf, len);
}

static void
op_send_pkt(void *ctx, struct wg_peer *peer, struct pkt *p)
{
	struct host *h = ctx;

	host_record(h, pkt_data(p), p->len);
	pkt_put(&h->pool, p);
}

static uint64_t
op_realtime(void *ctx)
{
	return fake_real_ns + cur_now;
}

static void
op_random(void *ctx, void *buf, size_t len)
{
	struct host *h = ctx;
	uint8_t *b = buf;

	for (size_t i = 0; i < len; i++) {
		if (h->script_pos < h->script_len)
			b[i] = h->script[h->script_pos++];
		else
			b[i] = (uint8_t)(++h->fill * 0x9e3779b97f4a7c15ULL >> 56);
	}
}

static const struct wg_ops ops = {
	.send = op_send,
	.send_pkt = op_send_pkt,
	.realtime = op_realtime,
	.random = op_random,
};

static void
script(struct host *h, const uint8_t *bytes, size_t n)
{
	memcpy(h->script + h->script_len, bytes, n);
	h->script_len += n;
}

static void
host_init(struct host *h, uint8_t key_start, uint16_t port)
{
	uint8_t priv[32];

	memset(h, 0, sizeof *h);
	assert_int_equal(pkt_pool_init(&h->pool, 512), 0);
	h->dev = wg_device_new(&ops, h, &h->pool);
	assert_non_null(h->dev);
	range(priv, key_start, 32);
	wg_device_set_private_key(h->dev, priv);
	h->addr.in4.sin_family = AF_INET;
	h->addr.in4.sin_addr.s_addr = htonl(0x7f000001);
	h->addr.in4.sin_port = htons(port);
}

static void
host_free(struct host *h)
{
	wg_device_free(h->dev);
	assert_int_equal(h->pool.avail, h->pool.total);	/* no buffer leaked */
	pkt_pool_free(&h->pool);
}

static struct wg_peer *
add_peer(struct host *h, struct host *other, const char *allowed)
{
	uint8_t pub[32], addr[4];
	struct wg_peer *p;

	assert_true(wg_device_public_key(other->dev, pub));
	p = wg_peer_new(h->dev, pub);
	assert_non_null(p);
	wg_peer_set_endpoint(p, &other->addr);
	assert_int_equal(inet_pton(AF_INET, allowed, addr), 1);
	assert_int_equal(wg_peer_add_allowed_ip(p, AF_INET, addr, 32), 0);
	h->other = other;
	return p;
}

/* Delivers everything h has sent to the other side; returns packets delivered as data. */
static unsigned int
flush(struct host *h, uint64_t now)
{
	unsigned int data = 0;

	cur_now = now;
	for (size_t i = 0; i < h->nout; i++) {
		struct wg_rx_info rx;

		if (wg_receive(h->other->dev, h->out[i].buf, h->out[i].len, &h->addr, now, &rx) ==
		    WG_RX_DATA)
			data++;
	}
	h->nout = 0;
	return data;
}

static void
drop(struct host *h)
{
	h->nout = 0;
}

/* Exchanges datagrams until both sides are quiet. */
static unsigned int
pump(struct host *a, struct host *b, uint64_t now)
{
	unsigned int data = 0;

	for (int i = 0; i < 8 && (a->nout || b->nout); i++) {
		data += flush(a, now);
		data += flush(b, now);
	}
	return data;
}

static const uint8_t ip_hello[] = {
	0x45, 0x00, 0x00, 0x21, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x72, 0x49,
	100, 64, 0, 2, 100, 64, 0, 1,
	0x9c, 0x40, 0x14, 0x51, 0x00, 0x0d, 0x00, 0x00, 'h', 'e', 'l', 'l', 'o',
};

/* Sends ip_hello from h to its peer; returns the core's verdict. */
static enum wg_tx
send_hello(struct host *h, struct wg_peer *peer, uint64_t now, const uint8_t src[4])
{
	struct pkt *p = pkt_get(&h->pool);
	enum wg_tx r;

	assert_non_null(p);
	cur_now = now;
	memcpy(pkt_data(p), ip_hello, sizeof ip_hello);
	if (src)
		memcpy(pkt_data(p) + 12, src, 4);
	p->len = sizeof ip_hello;
	r = wg_encrypt(peer, p, now);
	if (r == WG_TX_SEND)
		op_send_pkt(h, peer, p);
	else if (r == WG_TX_DROP)
		pkt_put(&h->pool, p);
	return r;
}

static void
tick(struct host *h, uint64_t now)
{
	cur_now = now;
	wg_device_tick(h->dev, now);
}

static void
tick_until(struct host *a, struct host *b, uint64_t from, uint64_t to, uint64_t step, bool deliver)
{
	for (uint64_t t = from; t <= to; t += step) {
		tick(a, t);
		tick(b, t);
		if (deliver) {
			pump(a, b, t);
		} else {
			drop(a);
			drop(b);
		}
	}
}

/* --- vectors --- */

/* protocol/wireguard.md §10.9: the bare Noise IKpsk2 exchange with fixed keys. */
static void
test_noise_fixed_vector(void **state)
{
	uint8_t si[32], ei[32], sr[32], er[32], psk[32], sr_pub[32], si_pub[32], ei_pub[32];
	uint8_t msg1[108], msg2[48], t1[32], t2[32];
	struct noise_state st;

	range(si, 0x00, 32);
	range(ei, 0x20, 32);
	range(sr, 0x40, 32);
	range(er, 0x60, 32);
	range(psk, 0x80, 32);
	crypto_scalarmult_curve25519_base(sr_pub, sr);
	crypto_scalarmult_curve25519_base(si_pub, si);
	crypto_scalarmult_curve25519_base(ei_pub, ei);

	noise_state_init(&st, (const uint8_t *)"TEST HANDSHAKE", 14, sr_pub);
	assert_true(noise_write_msg1(&st, msg1, ei, si, sr_pub, (const uint8_t *)"TEST PAYLOAD"));
	assert_hex(msg1, "358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd1662544df99f4e2d9c658302e247ec71c206e70c31df074049bd3d8ab636b27d8a20c512e4beeec758c4b2bee13e5d6c4a6abfe18cb917c010702e44515036af229780d44f50cf68cf7cdaabd81372");
	assert_true(noise_write_msg2(&st, msg2, er, ei_pub, si_pub, psk));
	assert_hex(msg2, "675dd574ed7789310b3d2e7681f3790b466c773b1521fecf36577958371ea52f1d31e903c203fe7ca9187d9ef4059b09");
	noise_split(&st, t1, t2);
	assert_hex(t1, "4b3c4c082e01f711109ce03f0bb7f8cb981980f6d3cba4fd549a8fe8587b453c");
	assert_hex(t2, "4f798f03bf7308ce91fb63a862e4af61bf1117afdb4fea1e170bbae646fe4eae");
}

static void
test_initial_constants(void **state)
{
	uint8_t c0[32], h0[32];
	static const char id[] = "WireGuard v1 zx2c4 Jason@zx2c4.com";

	blake2s(c0, 32, NULL, 0, (const uint8_t *)"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s", 37);
	assert_hex(c0, "60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36");
	wg_hash2(h0, c0, 32, (const uint8_t *)id, sizeof id - 1);
	assert_hex(h0, "2211b361081ac566691243db458ad5322d9c6c662293e8b70ee19c65ba079ef3");
}

/* protocol/wireguard.md §10.10: the WireGuard-framed exchange, byte for byte. */
static void
test_framed_exchange(void **state)
{
	struct host a, b;
	struct wg_peer *pa, *pb;
	uint8_t e[32], idx[4], init[WG_INITIATION_LEN], buf[80];
	struct wg_rx_info rx;

	host_init(&a, 0x00, 1000);
	host_init(&b, 0x40, 2000);
	pa = add_peer(&a, &b, "100.64.0.2");
	pb = add_peer(&b, &a, "100.64.0.1");

	range(e, 0x20, 32);
	put_le32(idx, 0x11223344);
	script(&a, e, 32);
	script(&a, idx, 4);
	wg_peer_initiate(pa, 0);
	assert_int_equal(a.nout, 1);
	assert_int_equal(a.out[0].len, WG_INITIATION_LEN);
	assert_hex(a.out[0].buf, "0100000044332211358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd1662544df99f4e2d9c658302e247ec71c206e70c31df074049bd3d8ab636b27d8a20c5795093f125290044fcfd29465fbd1379f5c9ea438513c07d081e117265b1a7db795910342f66a817ffa1298aa6b1b21d9623240df05bc8cb0b2ea33300000000000000000000000000000000");
	memcpy(init, a.out[0].buf, sizeof init);

	range(e, 0x60, 32);
	put_le32(idx, 0x55667788);
	script(&b, e, 32);
	script(&b, idx, 4);
	flush(&a, 0);
	assert_int_equal(b.nout, 1);
	assert_hex(b.out[0].buf, "020000008877665544332211675dd574ed7789310b3d2e7681f3790b466c773b1521fecf36577958371ea52f211abb127d7e7b9929428535ad666021a315e7b76896b8b11a45d7468643f2cd00000000000000000000000000000000");

	/* The initiator confirms the session with a keepalive, counter 0. */
	flush(&b, 0);
	assert_int_equal(a.nout, 1);
	assert_hex(a.out[0].buf, "04000000887766550000000000000000b25c1728230c91552491621c08fee203");
	assert_int_equal(flush(&a, 0), 0);
	assert_non_null(pb->kp_cur);
	assert_null(pb->kp_next);

	/* Responder to initiator: the 33-byte packet, padded to 48. */
	assert_int_equal(send_hello(&b, pb, 0, NULL), WG_TX_SEND);
	assert_int_equal(b.out[0].len, 80);
	assert_hex(b.out[0].buf, "040000004433221100000000000000003ae61ca7d0b8fe4782347ad945011f0f6f148756b7922f6e301632da7a54890c249280a572f587cd2dba463774262c37088327b54b8a4554bb577aec800232cb");

	memcpy(buf, b.out[0].buf, 80);
	assert_int_equal(wg_receive(a.dev, buf, 80, &b.addr, 0, &rx), WG_RX_DATA);
	assert_ptr_equal(rx.peer, pa);
	assert_ptr_equal(rx.data, buf + WG_DATA_HEADER_LEN);
	assert_int_equal(rx.len, sizeof ip_hello);
	assert_memory_equal(rx.data, ip_hello, sizeof ip_hello);
	/* The same datagram again is a replay. */
	memcpy(buf, b.out[0].buf, 80);
	assert_int_equal(wg_receive(a.dev, buf, 80, &b.addr, 0, &rx), WG_RX_DROP);
	assert_int_equal(wg_device_stats(a.dev)->rx_replay, 1);
	b.nout = 0;
	host_free(&a);
	host_free(&b);
}

/* protocol/wireguard.md §10.10: a cookie reply under load, and mac2 from it. */
static void
test_cookie_reply(void **state)
{
	struct host a, b;
	struct wg_peer *pa;
	uint8_t e[32], idx[4], nonce[24], secret[32], init[WG_INITIATION_LEN];
	union wg_endpoint src = { 0 };

	host_init(&a, 0x00, 1000);
	host_init(&b, 0x40, 2000);
	pa = add_peer(&a, &b, "100.64.0.2");
	add_peer(&b, &a, "100.64.0.1");
	src.in4.sin_family = AF_INET;
	src.in4.sin_addr.s_addr = htonl(0xa9fe0102);	/* 169.254.1.2 */
	src.in4.sin_port = htons(51820);

	range(e, 0x20, 32);
	put_le32(idx, 0x11223344);
	script(&a, e, 32);
	script(&a, idx, 4);
	wg_peer_initiate(pa, 0);
	memcpy(init, a.out[0].buf, sizeof init);

	wg_device_force_under_load(b.dev, true);
	/* Checking mac2 draws the cookie secret first, then the reply its nonce. */
	range(nonce, 0xc0, 24);
	range(secret, 0xa0, 32);
	script(&b, secret, 32);
	script(&b, nonce, 24);
	a.addr = src;
	flush(&a, 0);
	assert_int_equal(b.cookies, 1);
	assert_int_equal(b.nout, 1);
	assert_hex(b.out[0].buf, "0300000044332211c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7913881d9c245794710e200c64ae801b835d3aa145fbe27f71740ff346554ea8b");
	assert_int_equal(wg_device_stats(b.dev)->cookies_sent, 1);
	assert_int_equal(wg_device_stats(b.dev)->handshakes_completed, 0);

	flush(&b, 0);
	assert_true(pa->cookie.have_cookie);
	assert_hex(pa->cookie.cookie, "37c600b1f4814d68e2f17d49c4e8a25c");
	/* A second copy of the reply is refused: one reply per mac1 sent. */
	assert_false(cookie_consume_reply(&pa->cookie, b.out[0].buf, 0));
	cookie_add_macs(&pa->cookie, init, sizeof init, 0);
	assert_hex(init + 132, "b09b2fa314b68e80bb407e4716cdab0c");

	/* The retry carries mac2 and gets through while b is still under load. */
	tick_until(&a, &b, 0, 6 * SEC, SEC / 10, true);
	assert_int_equal(wg_device_stats(b.dev)->handshakes_completed, 1);
	assert_int_equal(wg_device_stats(a.dev)->handshakes_completed, 1);
	host_free(&a);
	host_free(&b);
}

/* wireguard-go replay/replay_test.go, itself from the kernel's selftest/counter.c. */
static void
test_replay_window(void **state)
{
	struct replay r;
	const uint64_t lim = REPLAY_WINDOW + 1, rej = WG_REJECT_AFTER_MESSAGES;
	uint64_t i;

#define T(n, want) assert_int_equal(replay_check(&r, (n), rej), (want))
	replay_init(&r);
	T(0, true); T(1, true); T(1, false); T(9, true); T(8, true); T(7, true); T(7, false);
	T(lim, true); T(lim - 1, true); T(lim - 1, false); T(lim - 2, true); T(2, true);
	T(2, false); T(lim + 16, true); T(3, false); T(lim + 16, false); T(lim * 4, true);
	T(lim * 4 - (lim - 1), true); T(10, false); T(lim * 4 - lim, false);
	T(lim * 4 - (lim + 1), false); T(lim * 4 - (lim - 2), true); T(lim * 4 + 1 - lim, false);
	T(0, false); T(rej, false); T(rej - 1, true); T(rej, false); T(rej - 1, false);
	T(rej - 2, true); T(rej + 1, false); T(rej + 2, false); T(rej - 2, false);
	T(rej - 3, true); T(0, false);

	replay_init(&r);
	for (i = 1; i <= REPLAY_WINDOW; i++)
		T(i, true);
	T(0, true);
	T(0, false);

	replay_init(&r);
	for (i = 2; i <= REPLAY_WINDOW + 1; i++)
		T(i, true);
	T(1, true);
	T(0, false);

	replay_init(&r);
	for (i = REPLAY_WINDOW + 1; i > 0; i--)
		T(i, true);

	replay_init(&r);
	for (i = REPLAY_WINDOW + 2; i > 1; i--)
		T(i, true);
	T(0, false);

	replay_init(&r);
	for (i = REPLAY_WINDOW; i > 0; i--)
		T(i, true);
	T(REPLAY_WINDOW + 1, true);
	T(0, false);

	replay_init(&r);
	for (i = REPLAY_WINDOW; i > 0; i--)
		T(i, true);
	T(0, true);
	T(REPLAY_WINDOW + 1, true);
#undef T
}

/* --- timers, on a fake clock --- */

struct pair {
	struct host a, b;
	struct wg_peer *pa, *pb;
};

static void
pair_up(struct pair *s, uint64_t now)
{
	host_init(&s->a, 0x00, 1000);
	host_init(&s->b, 0x40, 2000);
	s->pa = add_peer(&s->a, &s->b, "100.64.0.2");
	s->pb = add_peer(&s->b, &s->a, "100.64.0.1");
	assert_int_equal(send_hello(&s->a, s->pa, now, (const uint8_t[]){ 100, 64, 0, 1 }),
	    WG_TX_STAGED);
	assert_int_equal(pump(&s->a, &s->b, now), 1);	/* the staged packet arrives */
	assert_non_null(s->pa->kp_cur);
	assert_non_null(s->pb->kp_cur);
}

static void
pair_free(struct pair *s)
{
	host_free(&s->a);
	host_free(&s->b);
}

static void
test_timer_rekey_after_time(void **state)
{
	struct pair s;
	uint64_t t0 = 100 * SEC, t;
	unsigned int before;

	pair_up(&s, t0);
	before = s.a.initiations;
	/* Traffic both ways every second keeps the passive timers quiet. */
	for (t = t0 + SEC; t < t0 + 120 * SEC; t += SEC) {
		assert_int_equal(send_hello(&s.a, s.pa, t, (const uint8_t[]){ 100, 64, 0, 1 }), WG_TX_SEND);
		assert_int_equal(send_hello(&s.b, s.pb, t, NULL), WG_TX_SEND);
		tick(&s.a, t);
		tick(&s.b, t);
		pump(&s.a, &s.b, t);
	}
	assert_int_equal(s.a.initiations, before);
	/* Past REKEY_AFTER_TIME the initiator's next send starts a handshake. */
	t = t0 + 120 * SEC + 1;
	assert_int_equal(send_hello(&s.a, s.pa, t, (const uint8_t[]){ 100, 64, 0, 1 }), WG_TX_SEND);
	assert_int_equal(s.a.initiations, before + 1);
	pump(&s.a, &s.b, t);
	assert_true(s.pa->kp_cur->created == t);
	/* The responder never rekeys on time. */
	assert_int_equal(s.b.initiations, 0);
	pair_free(&s);
}

static void
test_timer_reject_after_time(void **state)
{
	struct pair s;
	uint64_t t0 = 100 * SEC;

	pair_up(&s, t0);
	/* The network goes dark: nothing more is delivered. */
	tick_until(&s.a, &s.b, t0, t0 + 179 * SEC, SEC, false);
	assert_int_equal(send_hello(&s.b, s.pb, t0 + 179 * SEC, NULL), WG_TX_SEND);
	drop(&s.b);
	/* At REJECT_AFTER_TIME the session may no longer carry data: it is staged. */
	assert_int_equal(send_hello(&s.b, s.pb, t0 + 180 * SEC, NULL), WG_TX_STAGED);
	assert_int_equal(s.b.nout, 1);
	assert_int_equal(s.b.out[0].buf[0], WG_MSG_INITIATION);
	drop(&s.b);
	pair_free(&s);
}

static void
test_timer_keepalive(void **state)
{
	struct pair s;
	uint64_t t0 = 100 * SEC;

	pair_up(&s, t0);
	/* b received data at t0 and has sent nothing: a keepalive is due at t0 + 10 s. */
	assert_int_equal(s.b.keepalives, 0);
	tick(&s.b, t0 + 10 * SEC - 1);
	assert_int_equal(s.b.keepalives, 0);
	assert_true(wg_device_next_deadline(s.b.dev) <= t0 + 10 * SEC);
	tick(&s.b, t0 + 10 * SEC);
	assert_int_equal(s.b.keepalives, 1);
	pump(&s.a, &s.b, t0 + 10 * SEC);
	/* And only one. */
	tick(&s.b, t0 + 30 * SEC);
	assert_int_equal(s.b.keepalives, 1);
	pair_free(&s);
}

static void
test_timer_new_handshake(void **state)
{
	struct pair s;
	uint64_t t0 = 100 * SEC;
	unsigned int before;

	/* pair_up sent data at t0; b answers nothing (we never tick it). */
	pair_up(&s, t0);
	before = s.a.initiations;
	/* a sends more data, which does not push the deadline back. */
	assert_int_equal(send_hello(&s.a, s.pa, t0 + SEC, (const uint8_t[]){ 100, 64, 0, 1 }), WG_TX_SEND);
	drop(&s.a);
	/* Silence for KEEPALIVE + REKEY_TIMEOUT (+ jitter) after the first data: a new handshake. */
	tick(&s.a, t0 + 15 * SEC - 1);
	assert_int_equal(s.a.initiations, before);
	tick(&s.a, t0 + 15 * SEC + WG_JITTER_MAX);
	assert_int_equal(s.a.initiations, before + 1);
	drop(&s.a);
	pair_free(&s);
}

static void
test_timer_give_up(void **state)
{
	struct host a, b;
	struct wg_peer *pa;
	uint64_t t, last = 0;
	unsigned int n = 0;

	host_init(&a, 0x00, 1000);
	host_init(&b, 0x40, 2000);
	pa = add_peer(&a, &b, "100.64.0.2");
	assert_int_equal(send_hello(&a, pa, SEC, NULL), WG_TX_STAGED);
	for (t = SEC; t <= 300 * SEC; t += SEC / 100) {
		tick(&a, t);
		if (a.nout) {
			n += (unsigned int)a.nout;
			last = t;
			drop(&a);
		}
	}
	/* The first initiation and MAX_TIMER_HANDSHAKES + 1 retries, 5 s + jitter apart. */
	assert_int_equal(n, WG_MAX_TIMER_HANDSHAKES + 2);
	assert_true(last >= SEC + 95 * SEC && last <= SEC + 95 * SEC + 19 * WG_JITTER_MAX);
	/* Then it gives up and drops what waited. */
	assert_int_equal(wg_device_stats(a.dev)->tx_staged_dropped, 1);
	assert_null(pa->staged.head);
	b.nout = 0;
	host_free(&a);
	host_free(&b);
}

static void
test_timer_zero_keys(void **state)
{
	struct pair s;
	uint64_t t0 = 100 * SEC;

	pair_up(&s, t0);
	pump(&s.a, &s.b, t0);
	tick_until(&s.a, &s.b, t0, t0 + 539 * SEC, SEC, false);
	assert_non_null(s.pa->kp_cur);
	tick(&s.a, t0 + 540 * SEC);
	tick(&s.b, t0 + 540 * SEC);
	assert_null(s.pa->kp_cur);
	assert_null(s.pa->kp_prev);
	assert_null(s.pb->kp_cur);
	assert_int_equal(s.pa->hs->state, HS_ZEROED);
	assert_true(sodium_is_zero(s.pa->hs->chaining_key, 32));
	pair_free(&s);
}

static void
test_timer_persistent_keepalive(void **state)
{
	struct pair s;
	uint64_t t0 = 100 * SEC;

	pair_up(&s, t0);
	s.a.keepalives = 0;
	wg_peer_set_persistent_keepalive(s.pa, 25, t0);
	assert_int_equal(s.a.keepalives, 1);	/* one at once */
	pump(&s.a, &s.b, t0);
	/* b's passive keepalive for the data at t0; receiving it restarts a's interval. */
	tick(&s.b, t0 + 10 * SEC);
	pump(&s.a, &s.b, t0 + 10 * SEC);
	tick(&s.a, t0 + 35 * SEC - 1);
	assert_int_equal(s.a.keepalives, 1);
	tick(&s.a, t0 + 35 * SEC);
	assert_int_equal(s.a.keepalives, 2);
	tick(&s.a, t0 + 60 * SEC);
	assert_int_equal(s.a.keepalives, 3);
	drop(&s.a);
	pair_free(&s);
}

/* --- bad input --- */

static void
test_cryptokey_routing(void **state)
{
	struct pair s;
	uint64_t t0 = 100 * SEC;

	pair_up(&s, t0);
	/* b's allowed source is 100.64.0.2; 100.64.0.9 must be dropped. */
	assert_int_equal(send_hello(&s.b, s.pb, t0, (const uint8_t[]){ 100, 64, 0, 9 }), WG_TX_SEND);
	assert_int_equal(flush(&s.b, t0), 0);
	assert_int_equal(wg_device_stats(s.a.dev)->rx_bad_source, 1);
	assert_int_equal(send_hello(&s.b, s.pb, t0, NULL), WG_TX_SEND);
	assert_int_equal(flush(&s.b, t0), 1);

	/* Sending: a's only peer owns 100.64.0.2; ip_hello goes to 100.64.0.1. */
	assert_null(wg_route(s.a.dev, ip_hello, sizeof ip_hello));
	assert_int_equal(wg_device_stats(s.a.dev)->tx_no_route, 1);
	assert_ptr_equal(wg_route(s.b.dev, ip_hello, sizeof ip_hello), s.pb);
	assert_null(wg_route(s.a.dev, ip_hello, 19));	/* too short to be IPv4 */
	pair_free(&s);
}

static void
test_wrong_key(void **state)
{
	struct host a, b, c;
	struct wg_peer *pa;

	host_init(&a, 0x00, 1000);
	host_init(&b, 0x40, 2000);
	host_init(&c, 0x80, 3000);
	/* b knows c, not a: a's initiation passes mac1 (a knows b's key) but fails the peer check. */
	pa = add_peer(&a, &b, "100.64.0.2");
	add_peer(&b, &c, "100.64.0.3");
	wg_peer_initiate(pa, SEC);
	flush(&a, SEC);
	assert_int_equal(b.nout, 0);
	assert_int_equal(wg_device_stats(b.dev)->rx_handshake_invalid, 1);
	/* And a message keyed to someone else fails mac1. */
	wg_peer_initiate(add_peer(&c, &a, "100.64.0.1"), SEC);
	c.other = &b;
	flush(&c, SEC);
	assert_int_equal(wg_device_stats(b.dev)->rx_bad_mac, 1);
	host_free(&a);
	host_free(&b);
	host_free(&c);
}

static void
test_malformed(void **state)
{
	struct pair s;
	struct wg_rx_info rx;
	const struct wg_stats *st;
	uint8_t buf[256];
	uint64_t t0 = 100 * SEC;
	static const struct { uint8_t type; uint16_t len; } bad[] = {
		{ 1, 3 }, { 1, 147 }, { 1, 149 }, { 2, 91 }, { 3, 65 }, { 4, 31 }, { 5, 100 }, { 0, 148 },
	};

	pair_up(&s, t0);
	st = wg_device_stats(s.a.dev);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		memset(buf, 0, bad[i].len);
		buf[0] = bad[i].type;
		assert_int_equal(wg_receive(s.a.dev, buf, bad[i].len, &s.b.addr, t0, &rx), WG_RX_DROP);
	}
	assert_int_equal(st->rx_short, 1);
	assert_int_equal(st->rx_bad_size, 5);
	assert_int_equal(st->rx_bad_type, 2);

	/* Data for an unknown index, then a forged body on a real index. */
	memset(buf, 0xaa, 100);
	put_le32(buf, WG_MSG_DATA);
	assert_int_equal(wg_receive(s.a.dev, buf, 100, &s.b.addr, t0, &rx), WG_RX_DROP);
	assert_int_equal(st->rx_unknown_index, 1);
	put_le32(buf + 4, s.pa->kp_cur->entry.index);
	assert_int_equal(wg_receive(s.a.dev, buf, 100, &s.b.addr, t0, &rx), WG_RX_DROP);
	assert_int_equal(st->rx_decrypt_fail, 1);
	/* A forged response must not disturb anything. */
	memset(buf, 0x55, WG_RESPONSE_LEN);
	put_le32(buf, WG_MSG_RESPONSE);
	assert_int_equal(wg_receive(s.a.dev, buf, WG_RESPONSE_LEN, &s.b.addr, t0, &rx), WG_RX_CONSUMED);
	assert_int_equal(st->rx_bad_mac, 1);
	assert_int_equal(send_hello(&s.b, s.pb, t0, NULL), WG_TX_SEND);
	assert_int_equal(flush(&s.b, t0), 1);
	pair_free(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_initial_constants),
		cmocka_unit_test(test_noise_fixed_vector),
		cmocka_unit_test(test_framed_exchange),
		cmocka_unit_test(test_cookie_reply),
		cmocka_unit_test(test_replay_window),
		cmocka_unit_test(test_timer_rekey_after_time),
		cmocka_unit_test(test_timer_reject_after_time),
		cmocka_unit_test(test_timer_keepalive),
		cmocka_unit_test(test_timer_new_handshake),
		cmocka_unit_test(test_timer_give_up),
		cmocka_unit_test(test_timer_zero_keys),
		cmocka_unit_test(test_timer_persistent_keepalive),
		cmocka_unit_test(test_cryptokey_routing),
		cmocka_unit_test(test_wrong_key),
		cmocka_unit_test(test_malformed),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests_name("wg", tests, NULL, NULL);
}

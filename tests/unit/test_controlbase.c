// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * controlbase against the vectors of protocol/control.md §3.5 (the upstream
 * tailscale-rs ts_noise/src/ik.rs test_handshake vector and the derived
 * control-shaped one), and against a responder written here from the Noise
 * IK steps of §3.2 directly on libsodium and HMAC-BLAKE2s -- the server side
 * of control/controlbase/handshake.go -- so that the two only agree if both
 * follow the spec.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "agent/control/controlbase.h"
#include "common/util.h"
#include "wg/blake2s.h"

/* ---- vectors (§3.5) ------------------------------------------------------ */

static const char up_init_payload[] =
    "358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd166254"
    "ad5b8febedeb97415be53612205e6bfab385e34cb127dd8854c4f9afb10f9b0e"
    "49075a6f14f9d5bc61412f096ae4950589aef8286944be93ca02ab76a5483b51";
static const char up_resp_payload[] =
    "675dd574ed7789310b3d2e7681f3790b466c773b1521fecf36577958371ea52f"
    "5ef5508032efff8066fc858410f411e8";

static const char vec_client_pub[] = "8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f";
static const char vec_server_pub[] = "79a631eede1bf9c98f12032cdeadd0e7a079398fc786b88cc846ec89af85a51a";
static const char vec_init[] =
    "0082010060358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd16"
    "6254ad5b8febedeb97415be53612205e6bfab385e34cb127dd8854c4f9afb10f9b0e49"
    "945171d80e52b62b1cc7794ec92042d7380dba1e3c96fde099f9f4158e08ea";
static const char vec_resp[] =
    "020030675dd574ed7789310b3d2e7681f3790b466c773b1521fecf36577958371ea52f"
    "c9dd7d78df78ba87d8e5e246ffc6af00";
static const char vec_k_c2s[] = "1ffa520b7b784b83355f4ca5754d333f51f53ff31d9d98f697c22e8f79b66e22";
static const char vec_k_s2c[] = "1657d025486888648386e46e37e6722a42c605d3f1b0ec24454190a645355089";
static const char vec_hello0[] = "0400150090874f2241645e3a06b58754e4038336d36c5fdb";
static const char vec_hello1[] = "040015891ee68f2f7ea27b189b4bf52d8002bee5dbd132a2";
/* base64.StdEncoding of vec_init, computed independently (Python). */
static const char vec_init_b64[] =
    "AIIBAGA1gHLWNliA0a7qMprfkSE4OFHtIaKOO3XpZdDSzRZiVK1bj+vt65dBW+U2EiBea/qz"
    "heNMsSfdiFTE+a+xD5sOSZRRcdgOUrYrHMd5TskgQtc4DboePJb94Jn59BWOCOo=";

static size_t
unhex(uint8_t *out, const char *hex)
{
	size_t n = strlen(hex) / 2;

	for (size_t i = 0; i < n; i++)
		assert_int_equal(sscanf(hex + 2 * i, "%2hhx", &out[i]), 1);
	return n;
}

static void
assert_hex(const uint8_t *got, const char *hex)
{
	uint8_t want[512];
	size_t n = unhex(want, hex);

	assert_memory_equal(got, want, n);
}

static void
range(uint8_t *out, uint8_t start, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = (uint8_t)(start + i);
}

static bool
all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

/* ---- randomness ---------------------------------------------------------- */

struct script {
	uint8_t bytes[32];
};

static void
rng_script(void *ctx, uint8_t *buf, size_t len)
{
	struct script *s = ctx;

	assert_true(len <= sizeof s->bytes);
	memcpy(buf, s->bytes, len);
}

static void
rng_sodium(void *ctx, uint8_t *buf, size_t len)
{
	randombytes_buf(buf, len);
}

/* ---- a test-local responder (the server half of §3.2) -------------------- */

struct responder {
	uint8_t h[32], ck[32];
	uint8_t k_c2s[32], k_s2c[32];
	uint64_t rx_ctr, tx_ctr;
	uint8_t client_pub[32];
	uint16_t version;
};

static void
r_mix_hash(uint8_t h[32], const uint8_t *d, size_t n)
{
	uint8_t buf[32 + 64];

	assert_true(n <= 64);
	memcpy(buf, h, 32);
	memcpy(buf + 32, d, n);
	blake2s(h, 32, NULL, 0, buf, 32 + n);
}

/* Noise HKDF (RFC 5869, HMAC-BLAKE2s, salt = ck, empty info), two outputs. */
static void
r_hkdf(uint8_t ck[32], uint8_t *k, const uint8_t *ikm, size_t n)
{
	uint8_t prk[32], t1[32], in[33];

	blake2s_hmac(prk, ck, 32, ikm, n);
	in[0] = 1;
	blake2s_hmac(t1, prk, 32, in, 1);
	memcpy(in, t1, 32);
	in[32] = 2;
	if (k)
		blake2s_hmac(k, prk, 32, in, 33);
	memcpy(ck, t1, 32);
}

static void
r_mix_dh(uint8_t ck[32], uint8_t *k, const uint8_t priv[32], const uint8_t pub[32])
{
	uint8_t dh[32];

	assert_int_equal(crypto_scalarmult_curve25519(dh, priv, pub), 0);
	r_hkdf(ck, k, dh, 32);
}

static void
nonce_be(uint8_t nonce[12], uint64_t ctr)
{
	memset(nonce, 0, 4);
	for (int i = 0; i < 8; i++)
		nonce[4 + i] = (uint8_t)(ctr >> (56 - 8 * i));
}

/*
 * Consumes an initiation and writes the 51-byte response with ephemeral
 * epriv.  prologue NULL means the production one built from the header's
 * version, as handshake.go Server does.
 */
static void
r_handshake(struct responder *r, const char *prologue, const uint8_t spriv[32],
    const uint8_t epriv[32], const uint8_t init[CTLB_INIT_LEN], uint8_t out[CTLB_RESP_LEN])
{
	static const char name[] = "Noise_IK_25519_ChaChaPoly_BLAKE2s";
	uint8_t spub[32], epub[32], k[32], nonce[12] = { 0 };
	char pro[64];

	memset(r, 0, sizeof *r);
	r->version = (uint16_t)(init[0] << 8 | init[1]);
	assert_int_equal(init[2], 1);
	assert_int_equal(init[3] << 8 | init[4], 96);
	if (prologue == NULL) {
		snprintf(pro, sizeof pro, "Tailscale Control Protocol v%u", r->version);
		prologue = pro;
	}
	crypto_scalarmult_curve25519_base(spub, spriv);
	blake2s(r->h, 32, NULL, 0, (const uint8_t *)name, strlen(name));
	memcpy(r->ck, r->h, 32);
	r_mix_hash(r->h, (const uint8_t *)prologue, strlen(prologue));
	r_mix_hash(r->h, spub, 32);
	r_mix_hash(r->h, init + 5, 32);				/* e */
	r_mix_dh(r->ck, k, spriv, init + 5);			/* es */
	assert_int_equal(crypto_aead_chacha20poly1305_ietf_decrypt(r->client_pub, NULL, NULL,
	    init + 37, 48, r->h, 32, nonce, k), 0);		/* s */
	r_mix_hash(r->h, init + 37, 48);
	r_mix_dh(r->ck, k, spriv, r->client_pub);		/* ss */
	assert_int_equal(crypto_aead_chacha20poly1305_ietf_decrypt(NULL, NULL, NULL,
	    init + 85, 16, r->h, 32, nonce, k), 0);
	r_mix_hash(r->h, init + 85, 16);

	out[0] = 2;
	out[1] = 0;
	out[2] = 48;
	crypto_scalarmult_curve25519_base(epub, epriv);
	memcpy(out + 3, epub, 32);
	r_mix_hash(r->h, epub, 32);				/* e */
	r_mix_dh(r->ck, NULL, epriv, init + 5);			/* ee */
	r_mix_dh(r->ck, k, epriv, r->client_pub);		/* se */
	crypto_aead_chacha20poly1305_ietf_encrypt(out + 35, NULL, NULL, 0, r->h, 32, NULL,
	    nonce, k);
	r_mix_hash(r->h, out + 35, 16);
	r_hkdf(r->ck, r->k_s2c, NULL, 0);	/* k1 lands in ck, k2 in k_s2c */
	memcpy(r->k_c2s, r->ck, 32);
}

/* Appends one server record to out, returns its size. */
static size_t
r_seal(struct responder *r, const uint8_t *pt, size_t n, uint8_t *out)
{
	uint8_t nonce[12];

	assert_true(n <= CTLB_MAX_PLAINTEXT);
	out[0] = 4;
	out[1] = (uint8_t)((n + 16) >> 8);
	out[2] = (uint8_t)(n + 16);
	nonce_be(nonce, r->tx_ctr++);
	crypto_aead_chacha20poly1305_ietf_encrypt(out + 3, NULL, pt, n, NULL, 0, NULL, nonce,
	    r->k_s2c);
	return n + CTLB_RECORD_OVERHEAD;
}

/* Opens one client record at rec; returns the plaintext length, or -1. */
static int
r_open(struct responder *r, const uint8_t *rec, size_t avail, uint8_t *pt, size_t *reclen)
{
	uint8_t nonce[12];
	size_t clen;

	if (avail < 3 || rec[0] != 4)
		return -1;
	clen = (size_t)rec[1] << 8 | rec[2];
	if (clen < 16 || 3 + clen > avail || 3 + clen > CTLB_MAX_MSG)
		return -1;
	nonce_be(nonce, r->rx_ctr);
	if (crypto_aead_chacha20poly1305_ietf_decrypt(pt, NULL, NULL, rec + 3, clen, NULL, 0,
	    nonce, r->k_c2s) != 0)
		return -1;
	r->rx_ctr++;
	*reclen = 3 + clen;
	return (int)(clen - 16);
}

/* ---- a plaintext sink ---------------------------------------------------- */

struct sink {
	uint8_t buf[65536];
	size_t len;
	unsigned int calls;
	int stop_after;		/* return non-zero on this call (1-based); 0 never */
};

static int
sink_cb(void *ctx, const uint8_t *buf, size_t len)
{
	struct sink *s = ctx;

	assert_true(s->len + len <= sizeof s->buf);
	memcpy(s->buf + s->len, buf, len);
	s->len += len;
	s->calls++;
	return s->stop_after != 0 && (int)s->calls == s->stop_after;
}

/* ---- helpers: a completed handshake ------------------------------------- */

static uint8_t pair_mpriv[32];

/* Random keys (or the vector's when vec), handshake done both sides. */
static void
open_pair(struct ctlb *c, struct responder *r)
{
	uint8_t spriv[32], spub[32], epriv[32], init[CTLB_INIT_LEN], resp[CTLB_RESP_LEN];
	size_t used;

	randombytes_buf(pair_mpriv, 32);
	randombytes_buf(spriv, 32);
	randombytes_buf(epriv, 32);
	crypto_scalarmult_curve25519_base(spub, spriv);
	assert_int_equal(ctlb_init(c, 130, pair_mpriv, NULL, spub, rng_sodium, NULL), 0);
	assert_int_equal(ctlb_initiation(c, init), 0);
	r_handshake(r, NULL, spriv, epriv, init, resp);
	assert_int_equal(ctlb_read_response(c, resp, sizeof resp, &used), CTLB_DONE);
	assert_int_equal(used, sizeof resp);
	assert_true(ctlb_is_open(c));
}

/*
 * One zeroed struct per test, in static storage so that a failed assertion
 * (which longjmps out of the test) leaks nothing.
 */
static struct ctlb *
new_ctlb(void)
{
	static struct ctlb store;

	memset(&store, 0, sizeof store);
	return &store;
}

/* ---- 2. handshake vectors ------------------------------------------------ */

static void
test_upstream_vector(void **state)
{
	struct ctlb *c = new_ctlb();
	struct responder r;
	struct script eph;
	uint8_t mpriv[32], spriv[32], spub[32], epriv[32], init[CTLB_INIT_LEN];
	uint8_t resp[CTLB_RESP_LEN];
	size_t used;

	range(mpriv, 0x00, 32);
	range(eph.bytes, 0x20, 32);
	range(spriv, 0x40, 32);
	range(epriv, 0x60, 32);
	crypto_scalarmult_curve25519_base(spub, spriv);
	assert_int_equal(ctlb_init(c, 130, mpriv, NULL, spub, rng_script, &eph), 0);
	/* ik.rs uses the prologue "TEST HANDSHAKE"; the header stays ours. */
	memcpy(c->prologue, "TEST HANDSHAKE", 14);
	c->prologue_len = 14;
	assert_int_equal(ctlb_initiation(c, init), 0);
	assert_hex(init, "0082010060");
	assert_hex(init + 5, up_init_payload);

	r_handshake(&r, "TEST HANDSHAKE", spriv, epriv, init, resp);
	assert_hex(resp, "020030");
	assert_hex(resp + 3, up_resp_payload);
	assert_int_equal(ctlb_read_response(c, resp, sizeof resp, &used), CTLB_DONE);
	assert_int_equal(used, CTLB_RESP_LEN);
	assert_memory_equal(c->tx_key, r.k_c2s, 32);
	assert_memory_equal(c->rx_key, r.k_s2c, 32);
	ctlb_clear(c);
}

static void
test_control_vector(void **state)
{
	struct ctlb *c = new_ctlb();
	struct responder r;
	struct script eph;
	struct sink s = { 0 };
	uint8_t mpriv[32], mpub[32], spriv[32], spub[32], epriv[32], init[CTLB_INIT_LEN];
	uint8_t resp[CTLB_RESP_LEN], rec[64], out[64], pt[16];
	size_t used, n, reclen;

	range(mpriv, 0x00, 32);
	range(eph.bytes, 0x20, 32);
	range(spriv, 0x40, 32);
	range(epriv, 0x60, 32);
	unhex(mpub, vec_client_pub);
	unhex(spub, vec_server_pub);
	assert_int_equal(ctlb_init(c, 130, mpriv, mpub, spub, rng_script, &eph), 0);
	assert_int_equal(c->prologue_len, strlen("Tailscale Control Protocol v130"));
	assert_memory_equal(c->prologue, "Tailscale Control Protocol v130", c->prologue_len);
	assert_int_equal(ctlb_initiation(c, init), 0);
	assert_hex(init, vec_init);

	/* The responder reproduces the vector's response from the same keys. */
	r_handshake(&r, NULL, spriv, epriv, init, resp);
	assert_hex(resp, vec_resp);
	assert_hex(r.client_pub, vec_client_pub);
	assert_hex(r.k_c2s, vec_k_c2s);
	assert_hex(r.k_s2c, vec_k_s2c);

	/* The client consumes the vector's bytes, not the responder's. */
	unhex(resp, vec_resp);
	assert_int_equal(ctlb_read_response(c, resp, sizeof resp, &used), CTLB_DONE);
	assert_int_equal(used, CTLB_RESP_LEN);
	assert_hex(c->tx_key, vec_k_c2s);
	assert_hex(c->rx_key, vec_k_s2c);
	/* Handshake secrets are gone and the machine key is no longer referenced. */
	assert_null(c->machine_priv);
	assert_true(all_zero(c->eph_priv, 32));
	assert_true(all_zero(c->ck, 32));

	/* The server's "hello" records at counters 0 and 1 (the second needs BE nonces). */
	n = unhex(rec, vec_hello0);
	assert_int_equal(ctlb_feed(c, rec, n, sink_cb, &s), 0);
	n = unhex(rec, vec_hello1);
	assert_int_equal(ctlb_feed(c, rec, n, sink_cb, &s), 0);
	assert_int_equal(s.len, 10);
	assert_memory_equal(s.buf, "hellohello", 10);
	assert_int_equal(c->rx_ctr, 2);
	/* Our responder's sealing agrees with the vector. */
	assert_int_equal(r_seal(&r, (const uint8_t *)"hello", 5, out), 24);
	assert_hex(out, vec_hello0);
	assert_int_equal(r_seal(&r, (const uint8_t *)"hello", 5, out), 24);
	assert_hex(out, vec_hello1);

	/* Client to server with k_c2s. */
	assert_int_equal(ctlb_encrypt(c, (const uint8_t *)"hello", 5, out, sizeof out, &n), 0);
	assert_int_equal(n, 24);
	assert_int_equal(r_open(&r, out, n, pt, &reclen), 5);
	assert_memory_equal(pt, "hello", 5);
	ctlb_clear(c);
	assert_true(all_zero((const uint8_t *)c, sizeof *c));
}

static void
test_round_trip_random(void **state)
{
	for (int iter = 0; iter < 24; iter++) {
		struct ctlb *c = new_ctlb();
		struct responder r;
		struct sink s = { 0 };
		uint8_t mpriv[32], mpub[32], spriv[32], spub[32], epriv[32];
		uint8_t init[CTLB_INIT_LEN], resp[CTLB_RESP_LEN];
		uint8_t msg[6000], wire[6100], pt[CTLB_MAX_PLAINTEXT];
		uint16_t capver = (uint16_t)randombytes_uniform(65536);
		size_t used, n, off, len, reclen, got = 0;
		int k;

		randombytes_buf(mpriv, 32);
		randombytes_buf(spriv, 32);
		randombytes_buf(epriv, 32);
		crypto_scalarmult_curve25519_base(mpub, mpriv);
		crypto_scalarmult_curve25519_base(spub, spriv);
		assert_int_equal(ctlb_init(c, capver, mpriv, iter & 1 ? mpub : NULL, spub,
		    rng_sodium, NULL), 0);
		assert_int_equal(ctlb_initiation(c, init), 0);
		assert_int_equal(init[0] << 8 | init[1], capver);
		r_handshake(&r, NULL, spriv, epriv, init, resp);
		assert_memory_equal(r.client_pub, mpub, 32);
		assert_int_equal(ctlb_read_response(c, resp, sizeof resp, &used), CTLB_DONE);
		assert_memory_equal(c->tx_key, r.k_c2s, 32);
		assert_memory_equal(c->rx_key, r.k_s2c, 32);

		/* client -> server */
		len = randombytes_uniform(sizeof msg);
		randombytes_buf(msg, len);
		assert_int_equal(ctlb_encrypt(c, msg, len, wire, sizeof wire, &n), 0);
		assert_int_equal(n, ctlb_sealed_size(len));
		for (off = 0; off < n; off += reclen) {
			k = r_open(&r, wire + off, n - off, pt, &reclen);
			assert_true(k >= 0);
			assert_memory_equal(pt, msg + got, (size_t)k);
			got += (size_t)k;
		}
		assert_int_equal(got, len);

		/* server -> client */
		len = randombytes_uniform(CTLB_MAX_PLAINTEXT + 1);
		randombytes_buf(msg, len);
		n = r_seal(&r, msg, len, wire);
		assert_int_equal(ctlb_feed(c, wire, n, sink_cb, &s), 0);
		assert_int_equal(s.len, len);
		assert_memory_equal(s.buf, msg, len);
		ctlb_clear(c);
		}
}

/* ---- handshake failures -------------------------------------------------- */

/* A client that has sent the vector initiation. */
static void
vector_client(struct ctlb *c, struct script *eph, uint8_t mpriv[32])
{
	uint8_t spub[32], init[CTLB_INIT_LEN];

	range(mpriv, 0x00, 32);
	range(eph->bytes, 0x20, 32);
	unhex(spub, vec_server_pub);
	assert_int_equal(ctlb_init(c, 130, mpriv, NULL, spub, rng_script, eph), 0);
	assert_int_equal(ctlb_initiation(c, init), 0);
}

static void
test_response_split_and_trailing(void **state)
{
	struct ctlb *c = new_ctlb();
	struct script eph;
	struct sink s = { 0 };
	uint8_t mpriv[32], buf[128];
	size_t n, used, i;
	int r = CTLB_MORE;

	vector_client(c, &eph, mpriv);
	/* Response, then both hello records, delivered one byte at a time
	 * until the handshake completes and then in one piece. */
	n = unhex(buf, vec_resp);
	n += unhex(buf + n, vec_hello0);
	n += unhex(buf + n, vec_hello1);
	for (i = 0; i < CTLB_RESP_LEN - 1; i++) {
		assert_int_equal(ctlb_read_response(c, buf + i, 1, &used), CTLB_MORE);
		assert_int_equal(used, 1);
	}
	/* The last response byte arrives with the records behind it (§3.1:
	 * the server corks the response and the early payload together). */
	r = ctlb_read_response(c, buf + i, n - i, &used);
	assert_int_equal(r, CTLB_DONE);
	assert_int_equal(used, 1);
	i += used;
	assert_int_equal(ctlb_feed(c, buf + i, n - i, sink_cb, &s), 0);
	assert_int_equal(s.len, 10);
	/* Done is idempotent. */
	assert_int_equal(ctlb_read_response(c, buf, 5, &used), CTLB_DONE);
	assert_int_equal(used, 0);
	ctlb_clear(c);
}

static void
test_response_errors(void **state)
{
	struct ctlb *c = new_ctlb();
	struct script eph;
	uint8_t mpriv[32], buf[600];
	size_t n, used;

	/* Error frame: text reported, bounded, sanitized. */
	vector_client(c, &eph, mpriv);
	memcpy(buf, "\x03\x00\x1a" "unsupported client\nversion", 29);
	for (n = 0; n < 28; n++)
		assert_int_equal(ctlb_read_response(c, buf + n, 1, &used), CTLB_MORE);
	assert_int_equal(ctlb_read_response(c, buf + 28, 1, &used), CTLB_ERR_SERVER);
	assert_string_equal(ctlb_server_error(c), "unsupported client version");
	assert_int_equal(ctlb_error(c), CTLB_ERR_SERVER);
	assert_null(c->machine_priv);
	assert_true(all_zero(c->eph_priv, 32));
	/* sticky */
	assert_int_equal(ctlb_read_response(c, buf, 3, &used), CTLB_ERR_SERVER);
	assert_int_equal(ctlb_feed(c, buf, 3, sink_cb, NULL), CTLB_ERR_SERVER);

	/* A long one stops after CTLB_TEXT_MAX bytes, without the rest. */
	vector_client(c, &eph, mpriv);
	buf[0] = 3;
	buf[1] = 0x02;
	buf[2] = 0x58;		/* 600 */
	memset(buf + 3, 'x', CTLB_TEXT_MAX);
	buf[3 + 10] = 0x1b;	/* ESC: must not reach a log */
	assert_int_equal(ctlb_read_response(c, buf, 3 + CTLB_TEXT_MAX, &used), CTLB_ERR_SERVER);
	assert_int_equal(strlen(ctlb_server_error(c)), CTLB_TEXT_MAX);
	assert_int_equal(ctlb_server_error(c)[10], '?');

	/* An empty one fails at once. */
	vector_client(c, &eph, mpriv);
	assert_int_equal(ctlb_read_response(c, (const uint8_t *)"\x03\x00\x00", 3, &used),
	    CTLB_ERR_SERVER);
	assert_string_equal(ctlb_server_error(c), "");

	/* Neither 2 nor 3: abort on the header. */
	vector_client(c, &eph, mpriv);
	assert_int_equal(ctlb_read_response(c, (const uint8_t *)"\x04\x00\x30", 3, &used),
	    CTLB_ERR_MSG_TYPE);
	vector_client(c, &eph, mpriv);
	assert_int_equal(ctlb_read_response(c, (const uint8_t *)"\x02\x00\x31", 3, &used),
	    CTLB_ERR_MSG_LEN);

	/* A corrupted tag, and a wrong server key, fail authentication. */
	vector_client(c, &eph, mpriv);
	n = unhex(buf, vec_resp);
	buf[n - 1] ^= 1;
	assert_int_equal(ctlb_read_response(c, buf, n, &used), CTLB_ERR_AUTH);
	assert_true(all_zero(c->tx_key, 32));
	assert_true(all_zero(c->rx_key, 32));
	assert_null(c->machine_priv);
	vector_client(c, &eph, mpriv);
	n = unhex(buf, vec_resp);
	buf[10] ^= 0x40;	/* a different server ephemeral */
	assert_int_equal(ctlb_read_response(c, buf, n, &used), CTLB_ERR_AUTH);

	/* A low-order server ephemeral (all zero) is refused by X25519. */
	vector_client(c, &eph, mpriv);
	memset(buf, 0, sizeof buf);
	memcpy(buf, "\x02\x00\x30", 3);
	assert_int_equal(ctlb_read_response(c, buf, CTLB_RESP_LEN, &used), CTLB_ERR_DH);
	assert_string_not_equal(ctlb_strerror(CTLB_ERR_DH), ctlb_strerror(-12345));
	ctlb_clear(c);
}

static void
test_api_misuse(void **state)
{
	struct ctlb *c = new_ctlb();
	struct script eph;
	uint8_t mpriv[32], mpub[32], spub[32] = { 0 }, init[CTLB_INIT_LEN], out[64];
	size_t n, used;

	/* A zeroed struct does nothing. */
	assert_int_equal(ctlb_initiation(c, init), CTLB_ERR_STATE);
	assert_int_equal(ctlb_feed(c, out, 1, sink_cb, NULL), CTLB_ERR_STATE);
	assert_false(ctlb_is_open(c));

	range(mpriv, 0, 32);
	range(eph.bytes, 0x20, 32);
	/* machine_pub must match; rng is required. */
	memset(mpub, 7, 32);
	assert_int_equal(ctlb_init(c, 130, mpriv, mpub, spub, rng_script, &eph), CTLB_ERR_INVAL);
	assert_int_equal(ctlb_init(c, 130, mpriv, NULL, spub, NULL, NULL), CTLB_ERR_INVAL);
	assert_int_equal(ctlb_init(NULL, 130, mpriv, NULL, spub, rng_script, &eph), CTLB_ERR_INVAL);

	/* Before the initiation: no response, no records. */
	unhex(spub, vec_server_pub);
	assert_int_equal(ctlb_init(c, 130, mpriv, NULL, spub, rng_script, &eph), 0);
	assert_int_equal(ctlb_read_response(c, out, 1, &used), CTLB_ERR_STATE);
	assert_int_equal(ctlb_encrypt(c, out, 1, out, sizeof out, &n), CTLB_ERR_STATE);
	assert_int_equal(ctlb_initiation(c, init), 0);
	/* Once only; no records before the response. */
	assert_int_equal(ctlb_initiation(c, init), CTLB_ERR_STATE);
	assert_int_equal(ctlb_feed(c, out, 1, sink_cb, NULL), CTLB_ERR_STATE);
	assert_int_equal(ctlb_encrypt(c, out, 1, out, sizeof out, &n), CTLB_ERR_STATE);
	assert_int_equal(ctlb_error(c), 0);

	/* A zero server key makes es fail. */
	memset(spub, 0, 32);
	assert_int_equal(ctlb_init(c, 130, mpriv, NULL, spub, rng_script, &eph), 0);
	assert_int_equal(ctlb_initiation(c, init), CTLB_ERR_DH);
	assert_true(all_zero(init, sizeof init));
	assert_int_equal(ctlb_error(c), CTLB_ERR_DH);
	ctlb_clear(NULL);
	ctlb_clear(c);
}

/* ---- 3. records ---------------------------------------------------------- */

static void
test_split_10k(void **state)
{
	struct ctlb *c = new_ctlb();
	struct responder r;
	static uint8_t msg[10000], wire[10100], pt[CTLB_MAX_PLAINTEXT];
	size_t n, off, reclen, got = 0;
	const size_t sizes[] = { 4077, 4077, 1846 };
	int k;

	open_pair(c, &r);
	randombytes_buf(msg, sizeof msg);
	assert_int_equal(ctlb_sealed_size(sizeof msg), 10000 + 3 * 19);
	/* Too small a buffer: nothing written, nothing spent, not sticky. */
	assert_int_equal(ctlb_encrypt(c, msg, sizeof msg, wire, 10000 + 3 * 19 - 1, &n),
	    CTLB_ERR_NOSPACE);
	assert_int_equal(n, 0);
	assert_int_equal(c->tx_ctr, 0);
	assert_int_equal(ctlb_error(c), 0);

	assert_int_equal(ctlb_encrypt(c, msg, sizeof msg, wire, sizeof wire, &n), 0);
	assert_int_equal(n, 10000 + 3 * 19);
	assert_int_equal(c->tx_ctr, 3);
	for (off = 0, k = 0; k < 3; k++) {
		/* header: type 4, BE length = plaintext + 16, each record <= 4096 */
		assert_int_equal(wire[off], 4);
		assert_int_equal((size_t)(wire[off + 1] << 8 | wire[off + 2]), sizes[k] + 16);
		assert_true(sizes[k] + 19 <= CTLB_MAX_MSG);
		assert_int_equal(r_open(&r, wire + off, n - off, pt, &reclen), (int)sizes[k]);
		assert_memory_equal(pt, msg + got, sizes[k]);
		got += sizes[k];
		off += reclen;
	}
	assert_int_equal(off, n);

	/* Boundaries: 4077 is one record, 4078 two, 0 none. */
	assert_int_equal(ctlb_encrypt(c, msg, 4077, wire, sizeof wire, &n), 0);
	assert_int_equal(n, 4096);
	assert_int_equal(ctlb_encrypt(c, msg, 4078, wire, sizeof wire, &n), 0);
	assert_int_equal(n, 4078 + 38);
	assert_int_equal(ctlb_encrypt(c, msg, 0, wire, 0, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(c->tx_ctr, 6);
	assert_int_equal(ctlb_sealed_size(0), 0);
	assert_int_equal(ctlb_sealed_size(SIZE_MAX - 10), SIZE_MAX);
	ctlb_clear(c);
}

/* A server stream of records of these sizes (0 = an empty record). */
static size_t
make_stream(struct responder *r, uint8_t *wire, uint8_t *plain, size_t *plainlen)
{
	const size_t sizes[] = { 0, 1, CTLB_MAX_PLAINTEXT, 100, 0, 0, 2000, CTLB_MAX_PLAINTEXT, 7 };
	size_t n = 0, p = 0;

	for (size_t k = 0; k < ARRAY_SIZE(sizes); k++) {
		randombytes_buf(plain + p, sizes[k]);
		n += r_seal(r, plain + p, sizes[k], wire + n);
		p += sizes[k];
	}
	*plainlen = p;
	return n;
}

static void
test_feed_chunking(void **state)
{
	static uint8_t wire[16384], plain[16384];
	static struct sink s;
	struct ctlb *c = new_ctlb();
	struct responder r;
	size_t n, plen, off, step;

	/* One byte at a time. */
	open_pair(c, &r);
	n = make_stream(&r, wire, plain, &plen);
	memset(&s, 0, sizeof s);
	for (off = 0; off < n; off++)
		assert_int_equal(ctlb_feed(c, wire + off, 1, sink_cb, &s), 0);
	assert_int_equal(s.len, plen);
	assert_memory_equal(s.buf, plain, plen);
	assert_int_equal(c->rx_ctr, 9);
	assert_int_equal(c->rx_len, 0);

	/* All at once: the fast path opens straight from the input. */
	open_pair(c, &r);
	n = make_stream(&r, wire, plain, &plen);
	memset(&s, 0, sizeof s);
	assert_int_equal(ctlb_feed(c, wire, n, sink_cb, &s), 0);
	assert_int_equal(s.len, plen);
	assert_memory_equal(s.buf, plain, plen);
	assert_int_equal(s.calls, 6);	/* empty records are not reported */

	/* Random chunks, and zero-length feeds. */
	for (int iter = 0; iter < 20; iter++) {
		open_pair(c, &r);
		n = make_stream(&r, wire, plain, &plen);
		memset(&s, 0, sizeof s);
		assert_int_equal(ctlb_feed(c, wire, 0, sink_cb, &s), 0);
		for (off = 0; off < n; off += step) {
			step = 1 + randombytes_uniform(5000);	/* not inside MIN(): evaluated twice */
			step = MIN(n - off, step);
			assert_int_equal(ctlb_feed(c, wire + off, step, sink_cb, &s), 0);
		}
		assert_int_equal(s.len, plen);
		assert_memory_equal(s.buf, plain, plen);
	}
	ctlb_clear(c);
}

/* Answers every run of plaintext on the same connection. */
static int
echo_cb(void *ctx, const uint8_t *buf, size_t len)
{
	static uint8_t out[CTLB_MAX_MSG];
	size_t n;

	(void)!ctlb_encrypt(ctx, buf, len, out, sizeof out, &n);
	return 0;
}

static void
test_bad_records(void **state)
{
	struct ctlb *c = new_ctlb();
	struct responder r;
	struct sink s = { 0 };
	uint8_t wire[256], good[64], out[64];
	size_t n, gn;
	const uint8_t bad_types[] = { 0, 1, 2, 3, 5, 0xff };

	/* Corrupted tag: sticky, keys wiped, later good records refused. */
	open_pair(c, &r);
	n = r_seal(&r, (const uint8_t *)"abc", 3, wire);
	gn = r_seal(&r, (const uint8_t *)"def", 3, good);
	wire[n - 1] ^= 0x80;
	assert_int_equal(ctlb_feed(c, wire, n, sink_cb, &s), CTLB_ERR_DECRYPT);
	assert_int_equal(ctlb_error(c), CTLB_ERR_DECRYPT);
	assert_int_equal(ctlb_feed(c, good, gn, sink_cb, &s), CTLB_ERR_DECRYPT);
	assert_int_equal(ctlb_encrypt(c, good, 1, out, sizeof out, &n), CTLB_ERR_DECRYPT);
	assert_true(all_zero(c->rx_key, 32));
	assert_true(all_zero(c->tx_key, 32));
	assert_false(ctlb_is_open(c));
	assert_int_equal(s.len, 0);

	/* A replayed record fails too (the counter has moved on). */
	open_pair(c, &r);
	n = r_seal(&r, (const uint8_t *)"abc", 3, wire);
	assert_int_equal(ctlb_feed(c, wire, n, sink_cb, &s), 0);
	assert_int_equal(ctlb_feed(c, wire, n, sink_cb, &s), CTLB_ERR_DECRYPT);

	/* 3 + length > 4096 is refused on the header alone. */
	open_pair(c, &r);
	assert_int_equal(ctlb_feed(c, (const uint8_t *)"\x04\x0f\xfd", 3, sink_cb, &s), 0);
	open_pair(c, &r);
	assert_int_equal(ctlb_feed(c, (const uint8_t *)"\x04\x0f\xfe", 3, sink_cb, &s),
	    CTLB_ERR_RECORD_LEN);
	open_pair(c, &r);
	assert_int_equal(ctlb_feed(c, (const uint8_t *)"\x04\xff", 2, sink_cb, &s), 0);
	assert_int_equal(ctlb_feed(c, (const uint8_t *)"\xff", 1, sink_cb, &s),
	    CTLB_ERR_RECORD_LEN);
	/* Shorter than a tag. */
	open_pair(c, &r);
	assert_int_equal(ctlb_feed(c, (const uint8_t *)"\x04\x00\x0f", 3, sink_cb, &s),
	    CTLB_ERR_RECORD_LEN);

	/* Any type but 4, the handshake error frame included. */
	for (size_t k = 0; k < sizeof bad_types; k++) {
		open_pair(c, &r);
		n = r_seal(&r, (const uint8_t *)"abc", 3, wire);
		wire[0] = bad_types[k];
		assert_int_equal(ctlb_feed(c, wire, n, sink_cb, &s), CTLB_ERR_RECORD_TYPE);
		assert_int_equal(ctlb_feed(c, good, gn, sink_cb, &s), CTLB_ERR_RECORD_TYPE);
	}

	/* A callback whose reply fails the connection stops the feed there. */
	open_pair(c, &r);
	n = r_seal(&r, (const uint8_t *)"abc", 3, wire);
	n += r_seal(&r, (const uint8_t *)"def", 3, wire + n);
	c->tx_ctr = UINT64_MAX;
	memset(&s, 0, sizeof s);
	assert_int_equal(ctlb_feed(c, wire, n, echo_cb, c), CTLB_ERR_EXHAUSTED);
	assert_int_equal(ctlb_error(c), CTLB_ERR_EXHAUSTED);

	/* A callback that stops the feed. */
	open_pair(c, &r);
	n = r_seal(&r, (const uint8_t *)"abc", 3, wire);
	n += r_seal(&r, (const uint8_t *)"def", 3, wire + n);
	memset(&s, 0, sizeof s);
	s.stop_after = 1;
	assert_int_equal(ctlb_feed(c, wire, n, sink_cb, &s), CTLB_ERR_ABORTED);
	assert_int_equal(s.len, 3);
	assert_int_equal(ctlb_error(c), CTLB_ERR_ABORTED);
	ctlb_clear(c);
}

static void
test_counters(void **state)
{
	struct ctlb *c = new_ctlb();
	struct responder r;
	struct sink s = { 0 };
	static uint8_t wire[9000], pt[CTLB_MAX_PLAINTEXT];
	uint8_t nonce[12], le[12];
	size_t n, reclen;

	/* Receive: 2^64-2 is the last usable counter. */
	open_pair(c, &r);
	c->rx_ctr = r.tx_ctr = UINT64_MAX - 1;
	n = r_seal(&r, (const uint8_t *)"last", 4, wire);
	assert_int_equal(ctlb_feed(c, wire, n, sink_cb, &s), 0);
	assert_int_equal(s.len, 4);
	assert_true(c->rx_ctr == UINT64_MAX);
	n = r_seal(&r, (const uint8_t *)"over", 4, wire);
	assert_int_equal(ctlb_feed(c, wire, n, sink_cb, &s), CTLB_ERR_EXHAUSTED);
	assert_int_equal(s.len, 4);

	/* Send: the same limit, checked before anything is written. */
	open_pair(c, &r);
	c->tx_ctr = r.rx_ctr = UINT64_MAX - 1;
	assert_int_equal(ctlb_encrypt(c, (const uint8_t *)"last", 4, wire, sizeof wire, &n), 0);
	assert_int_equal(r_open(&r, wire, n, pt, &reclen), 4);
	assert_int_equal(ctlb_encrypt(c, (const uint8_t *)"over", 4, wire, sizeof wire, &n),
	    CTLB_ERR_EXHAUSTED);
	assert_int_equal(n, 0);
	assert_int_equal(ctlb_error(c), CTLB_ERR_EXHAUSTED);

	open_pair(c, &r);
	c->tx_ctr = UINT64_MAX - 2;	/* two nonces left, three records wanted */
	memset(wire, 0xaa, sizeof wire);
	assert_int_equal(ctlb_encrypt(c, pt, 2 * CTLB_MAX_PLAINTEXT, wire, sizeof wire, &n), 0);
	open_pair(c, &r);
	c->tx_ctr = UINT64_MAX - 2;
	memset(wire, 0xaa, sizeof wire);
	assert_int_equal(ctlb_encrypt(c, pt, 2 * CTLB_MAX_PLAINTEXT + 1, wire, sizeof wire, &n),
	    CTLB_ERR_EXHAUSTED);
	assert_int_equal(wire[0], 0xaa);

	/* The nonce is big-endian: a record at 0x0102030405060708 opens
	 * with the BE nonce and not with WireGuard's LE one. */
	open_pair(c, &r);
	c->tx_ctr = r.rx_ctr = 0x0102030405060708ULL;
	assert_int_equal(ctlb_encrypt(c, (const uint8_t *)"order", 5, wire, sizeof wire, &n), 0);
	nonce_be(nonce, 0x0102030405060708ULL);
	memset(le, 0, 4);
	put_le64(le + 4, 0x0102030405060708ULL);
	assert_int_equal(crypto_aead_chacha20poly1305_ietf_decrypt(pt, NULL, NULL, wire + 3,
	    n - 3, NULL, 0, le, c->tx_key), -1);
	assert_int_equal(crypto_aead_chacha20poly1305_ietf_decrypt(pt, NULL, NULL, wire + 3,
	    n - 3, NULL, 0, nonce, c->tx_key), 0);
	assert_memory_equal(pt, "order", 5);
	ctlb_clear(c);
}

/* ---- 4. early payload ---------------------------------------------------- */

static const char early_json[] =
    "{\"nodeKeyChallenge\":\"chalpub:0123456789abcdef0123456789abcdef"
    "0123456789abcdef0123456789abcdef\"}";
/* An HTTP/2 SETTINGS frame header + one setting: what follows, or comes instead. */
static const uint8_t h2_settings[] = {
	0x00, 0x00, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x64,
};

static size_t
early_bytes(uint8_t *out, const void *json, uint32_t len)
{
	memcpy(out, "\xff\xff\xffTS", 5);
	put_be32(out + 5, len);
	memcpy(out + 9, json, len);
	return 9 + len;
}

/* The early payload filter between ctlb_feed() and the sink. */
static int
early_cb(void *ctx, const uint8_t *buf, size_t len)
{
	void **pair = ctx;
	int r = ctlb_early_feed(pair[0], buf, len, sink_cb, pair[1]);

	return r < 0 ? r : 0;
}

static void
test_early_present(void **state)
{
	struct ctlb *c = new_ctlb();
	struct responder r;
	struct ctlb_early e;
	struct sink s = { 0 };
	void *pair[2] = { &e, &s };
	uint8_t plain[256], wire[512];
	size_t plen, n = 0, jl;
	const uint8_t *json;

	/* Go's server writes it as three records: 5, 4 and N bytes (§3.4). */
	open_pair(c, &r);
	plen = early_bytes(plain, early_json, sizeof early_json - 1);
	n += r_seal(&r, plain, 5, wire + n);
	n += r_seal(&r, plain + 5, 4, wire + n);
	n += r_seal(&r, plain + 9, plen - 9, wire + n);
	n += r_seal(&r, h2_settings, sizeof h2_settings, wire + n);
	ctlb_early_init(&e);
	assert_null(ctlb_early_payload(&e, &jl));
	for (size_t i = 0; i < n; i++)
		assert_int_equal(ctlb_feed(c, wire + i, 1, early_cb, pair), 0);
	json = ctlb_early_payload(&e, &jl);
	assert_non_null(json);
	assert_int_equal(jl, sizeof early_json - 1);
	assert_memory_equal(json, early_json, jl);
	assert_int_equal(s.len, sizeof h2_settings);
	assert_memory_equal(s.buf, h2_settings, sizeof h2_settings);

	/* Directly, one byte at a time: MORE until the JSON is complete. */
	ctlb_early_init(&e);
	memset(&s, 0, sizeof s);
	memcpy(plain + plen, h2_settings, sizeof h2_settings);
	for (size_t i = 0; i < plen - 1; i++)
		assert_int_equal(ctlb_early_feed(&e, plain + i, 1, sink_cb, &s), CTLB_MORE);
	assert_int_equal(ctlb_early_feed(&e, plain + plen - 1, 1 + sizeof h2_settings, sink_cb, &s),
	    CTLB_DONE);
	assert_int_equal(s.len, sizeof h2_settings);
	assert_memory_equal(s.buf, h2_settings, sizeof h2_settings);
	assert_int_equal(ctlb_early_feed(&e, plain, 3, sink_cb, &s), CTLB_DONE);
	assert_int_equal(s.len, sizeof h2_settings + 3);

	/* Exactly the cap, and an empty one, are fine. */
	{
		static uint8_t big[9 + CTLB_EARLY_MAX];
		uint8_t filler[CTLB_EARLY_MAX];

		memset(filler, 'x', sizeof filler);
		ctlb_early_init(&e);
		n = early_bytes(big, filler, CTLB_EARLY_MAX);
		assert_int_equal(ctlb_early_feed(&e, big, n, sink_cb, &s), CTLB_DONE);
		assert_non_null(ctlb_early_payload(&e, &jl));
		assert_int_equal(jl, CTLB_EARLY_MAX);
	}
	ctlb_early_init(&e);
	n = early_bytes(plain, "", 0);
	assert_int_equal(ctlb_early_feed(&e, plain, n, sink_cb, &s), CTLB_DONE);
	assert_non_null(ctlb_early_payload(&e, &jl));
	assert_int_equal(jl, 0);
	ctlb_clear(c);
}

static void
test_early_absent(void **state)
{
	struct ctlb_early e;
	struct sink s = { 0 };
	uint8_t partial[16];
	size_t jl;

	/* An HTTP/2 frame: decided on the first byte, passed through whole. */
	ctlb_early_init(&e);
	assert_int_equal(ctlb_early_feed(&e, h2_settings, sizeof h2_settings, sink_cb, &s),
	    CTLB_DONE);
	assert_int_equal(s.len, sizeof h2_settings);
	assert_memory_equal(s.buf, h2_settings, sizeof h2_settings);
	assert_null(ctlb_early_payload(&e, &jl));
	assert_int_equal(jl, 0);

	/* Byte by byte: nothing is held back. */
	ctlb_early_init(&e);
	memset(&s, 0, sizeof s);
	for (size_t i = 0; i < sizeof h2_settings; i++)
		assert_int_equal(ctlb_early_feed(&e, h2_settings + i, 1, sink_cb, &s), CTLB_DONE);
	assert_int_equal(s.len, sizeof h2_settings);
	assert_memory_equal(s.buf, h2_settings, sizeof h2_settings);

	/* A prefix of the magic, then a mismatch: the held bytes come back first. */
	memcpy(partial, "\xff\xff\xffT" "X123", 8);
	ctlb_early_init(&e);
	memset(&s, 0, sizeof s);
	assert_int_equal(ctlb_early_feed(&e, partial, 3, sink_cb, &s), CTLB_MORE);
	assert_int_equal(ctlb_early_feed(&e, partial + 3, 1, sink_cb, &s), CTLB_MORE);
	assert_int_equal(s.len, 0);
	assert_int_equal(ctlb_early_feed(&e, partial + 4, 4, sink_cb, &s), CTLB_DONE);
	assert_int_equal(s.len, 8);
	assert_memory_equal(s.buf, partial, 8);
	assert_null(ctlb_early_payload(&e, NULL));

	/* The magic alone is not enough to decide: wait for the length. */
	ctlb_early_init(&e);
	memset(&s, 0, sizeof s);
	assert_int_equal(ctlb_early_feed(&e, (const uint8_t *)"\xff\xff\xffTS\x00\x00", 7,
	    sink_cb, &s), CTLB_MORE);
	assert_int_equal(s.len, 0);
}

static void
test_early_oversized(void **state)
{
	struct ctlb_early e;
	struct sink s = { 0 };
	uint8_t hdr[9];

	memcpy(hdr, "\xff\xff\xffTS", 5);
	put_be32(hdr + 5, CTLB_EARLY_MAX + 1);
	ctlb_early_init(&e);
	assert_int_equal(ctlb_early_feed(&e, hdr, 9, sink_cb, &s), CTLB_ERR_EARLY_LEN);
	assert_int_equal(ctlb_early_feed(&e, h2_settings, 3, sink_cb, &s), CTLB_ERR_EARLY_LEN);
	assert_null(ctlb_early_payload(&e, NULL));
	assert_int_equal(s.len, 0);

	put_be32(hdr + 5, 0xffffffffu);
	ctlb_early_init(&e);
	assert_int_equal(ctlb_early_feed(&e, hdr, 9, sink_cb, &s), CTLB_ERR_EARLY_LEN);

	/* A sink that refuses. */
	ctlb_early_init(&e);
	s.stop_after = 1;
	assert_int_equal(ctlb_early_feed(&e, h2_settings, 4, sink_cb, &s), CTLB_ERR_ABORTED);
	assert_int_equal(ctlb_early_feed(&e, h2_settings, 4, sink_cb, &s), CTLB_ERR_ABORTED);
}

/* ---- 1. HTTP upgrade ----------------------------------------------------- */

static void
test_upgrade_request(void **state)
{
	char out[512], want[512];
	uint8_t init[CTLB_INIT_LEN];
	int n;

	unhex(init, vec_init);
	snprintf(want, sizeof want,
	    "POST /ts2021 HTTP/1.1\r\n"
	    "Host: 127.0.0.1:8080\r\n"
	    "Upgrade: tailscale-control-protocol\r\n"
	    "Connection: upgrade\r\n"
	    "X-Tailscale-Handshake: %s\r\n"
	    "Content-Length: 0\r\n"
	    "\r\n", vec_init_b64);
	assert_int_equal(strlen(vec_init_b64), 136);
	n = ctlb_upgrade_request(out, sizeof out, "127.0.0.1:8080", init);
	assert_int_equal(n, (int)strlen(want));
	assert_string_equal(out, want);
	/* The size macro is exact, NUL included. */
	assert_int_equal(CTLB_UPGRADE_REQ_LEN(strlen("127.0.0.1:8080")), n + 1);
	assert_int_equal(ctlb_upgrade_request(out, (size_t)n, "127.0.0.1:8080", init),
	    CTLB_ERR_NOSPACE);
	assert_string_equal(out, "");
	assert_int_equal(ctlb_upgrade_request(out, (size_t)n + 1, "127.0.0.1:8080", init), n);

	/* Hosts that could inject fields or break the line. */
	assert_int_equal(ctlb_upgrade_request(out, sizeof out, "", init), CTLB_ERR_INVAL);
	assert_int_equal(ctlb_upgrade_request(out, sizeof out, "a b", init), CTLB_ERR_INVAL);
	assert_int_equal(ctlb_upgrade_request(out, sizeof out, "h\r\nX-Evil: 1", init),
	    CTLB_ERR_INVAL);
	assert_int_equal(ctlb_upgrade_request(out, sizeof out, "h\x7f", init), CTLB_ERR_INVAL);
	assert_int_equal(ctlb_upgrade_request(out, sizeof out, "h\xc3\xa9", init), CTLB_ERR_INVAL);
	assert_int_equal(ctlb_upgrade_request(out, sizeof out, "[::1]:443", init) > 0, 1);
}

static const char head_101[] =
    "HTTP/1.1 101 Switching Protocols\r\n"
    "Upgrade: tailscale-control-protocol\r\n"
    "Connection: upgrade\r\n"
    "\r\n";

static int
feed_str(struct ctlb_http *hp, const char *s, size_t *used)
{
	return ctlb_http_feed(hp, (const uint8_t *)s, strlen(s), used);
}

static void
test_http_101(void **state)
{
	struct ctlb_http hp;
	uint8_t buf[256];
	size_t hl = strlen(head_101), used, n;
	char msg[128];

	/* Noise bytes in the same read are handed back. */
	memcpy(buf, head_101, hl);
	n = hl + unhex(buf + hl, vec_resp);
	ctlb_http_init(&hp);
	assert_int_equal(ctlb_http_feed(&hp, buf, n, &used), CTLB_DONE);
	assert_int_equal(used, hl);
	assert_int_equal(ctlb_http_status(&hp), 101);
	assert_string_equal(ctlb_http_reason(&hp), "Switching Protocols");
	/* Later calls consume nothing. */
	assert_int_equal(ctlb_http_feed(&hp, buf, n, &used), CTLB_DONE);
	assert_int_equal(used, 0);
	assert_int_equal(ctlb_http_eof(&hp), CTLB_DONE);

	/* Split one byte at a time: DONE on the final LF, nothing after it taken. */
	ctlb_http_init(&hp);
	for (size_t i = 0; i < hl - 1; i++) {
		assert_int_equal(ctlb_http_feed(&hp, buf + i, 1, &used), CTLB_MORE);
		assert_int_equal(used, 1);
	}
	assert_int_equal(ctlb_http_feed(&hp, buf + hl - 1, n - hl + 1, &used), CTLB_DONE);
	assert_int_equal(used, 1);

	/* Split at every point into two reads. */
	for (size_t cut = 0; cut <= hl; cut++) {
		int r;

		ctlb_http_init(&hp);
		r = ctlb_http_feed(&hp, buf, cut, &used);
		assert_int_equal(r, cut == hl ? CTLB_DONE : CTLB_MORE);
		if (r == CTLB_MORE) {
			assert_int_equal(ctlb_http_feed(&hp, buf + cut, n - cut, &used), CTLB_DONE);
			assert_int_equal(cut + used, hl);
		}
	}

	/* Case-insensitive names and value, bare LF, OWS, no reason phrase,
	 * and an interim 100 Continue first. */
	ctlb_http_init(&hp);
	assert_int_equal(feed_str(&hp,
	    "HTTP/1.1 100 Continue\r\n\r\n"
	    "HTTP/1.1 101\n"
	    "UPGRADE:\t Tailscale-Control-PROTOCOL \n"
	    "connection: Upgrade\n"
	    "\n", &used), CTLB_DONE);
	assert_int_equal(ctlb_http_status(&hp), 101);
	assert_string_equal(ctlb_http_reason(&hp), "");

	/* 101 to another protocol, or with no Upgrade field. */
	ctlb_http_init(&hp);
	assert_int_equal(feed_str(&hp, "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\nConnection: upgrade\r\n\r\n", &used), CTLB_ERR_HTTP_UPGRADE);
	assert_string_equal(ctlb_http_detail(&hp), "websocket");
	ctlb_http_describe(&hp, msg, sizeof msg);
	assert_string_equal(msg, "server switched to unexpected protocol \"websocket\"");
	assert_int_equal(feed_str(&hp, "more", &used), CTLB_ERR_HTTP_UPGRADE);
	assert_int_equal(ctlb_http_eof(&hp), CTLB_ERR_HTTP_UPGRADE);

	ctlb_http_init(&hp);
	assert_int_equal(feed_str(&hp, "HTTP/1.1 101 Switching Protocols\r\n"
	    "Connection: upgrade\r\n\r\n", &used), CTLB_ERR_HTTP_UPGRADE);
	ctlb_http_describe(&hp, msg, sizeof msg);
	assert_string_equal(msg, "HTTP 101 without an Upgrade header");

	/* A second, different Upgrade field spoils the first. */
	ctlb_http_init(&hp);
	assert_int_equal(feed_str(&hp, "HTTP/1.1 101 OK\r\nUpgrade: tailscale-control-protocol\r\n"
	    "Upgrade: h2c\r\n\r\n", &used), CTLB_ERR_HTTP_UPGRADE);
	assert_string_equal(ctlb_http_detail(&hp), "h2c");
	/* A prefix of the right value is not the right value. */
	ctlb_http_init(&hp);
	assert_int_equal(feed_str(&hp, "HTTP/1.1 101 OK\r\nUpgrade: tailscale-control\r\n\r\n",
	    &used), CTLB_ERR_HTTP_UPGRADE);
}

static void
test_http_errors(void **state)
{
	struct ctlb_http hp;
	char msg[512], body[600];
	size_t used;
	const char *resp;

	/* Headscale's 400 for a bad Upgrade value (http.Error: text + LF). */
	ctlb_http_init(&hp);
	assert_int_equal(feed_str(&hp,
	    "HTTP/1.1 400 Bad Request\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "X-Content-Type-Options: nosniff\r\n"
	    "Date: Thu, 01 Jan 2026 00:00:00 GMT\r\n"
	    "Content-Length: 29\r\n"
	    "\r\n"
	    "unknown upgrade protocol\nxyz\n", &used), CTLB_ERR_HTTP_STATUS);
	assert_int_equal(ctlb_http_status(&hp), 400);
	assert_string_equal(ctlb_http_reason(&hp), "Bad Request");
	assert_string_equal(ctlb_http_detail(&hp), "unknown upgrade protocol xyz");
	ctlb_http_describe(&hp, msg, sizeof msg);
	assert_string_equal(msg, "HTTP 400 Bad Request: unknown upgrade protocol xyz");
	assert_int_equal(ctlb_http_eof(&hp), CTLB_ERR_HTTP_STATUS);

	/* A 500 whose body arrives in pieces: MORE until the last byte. */
	ctlb_http_init(&hp);
	assert_int_equal(feed_str(&hp, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 15\r\n\r\nInter",
	    &used), CTLB_MORE);
	assert_int_equal(feed_str(&hp, "nal erro", &used), CTLB_MORE);
	assert_int_equal(feed_str(&hp, "r\ntrailing", &used), CTLB_ERR_HTTP_STATUS);
	assert_int_equal(used, 2);
	assert_int_equal(ctlb_http_status(&hp), 500);
	assert_string_equal(ctlb_http_detail(&hp), "Internal error");

	/* No Content-Length: the body ends at EOF. */
	ctlb_http_init(&hp);
	assert_int_equal(feed_str(&hp, "HTTP/1.0 502 Bad Gateway\r\n\r\nupstream \x01" "down", &used),
	    CTLB_MORE);
	assert_int_equal(ctlb_http_eof(&hp), CTLB_ERR_HTTP_STATUS);
	assert_string_equal(ctlb_http_detail(&hp), "upstream ?down");
	ctlb_http_describe(&hp, msg, sizeof msg);
	assert_string_equal(msg, "HTTP 502 Bad Gateway: upstream ?down");

	/* A long body stops at CTLB_TEXT_MAX bytes without waiting for the rest. */
	memset(body, 'b', sizeof body);
	body[sizeof body - 1] = '\0';
	ctlb_http_init(&hp);
	assert_int_equal(feed_str(&hp, "HTTP/1.1 403 Forbidden\r\nContent-Length: 100000\r\n\r\n",
	    &used), CTLB_MORE);
	assert_int_equal(feed_str(&hp, body, &used), CTLB_ERR_HTTP_STATUS);
	assert_int_equal(used, CTLB_TEXT_MAX);
	assert_int_equal(strlen(ctlb_http_detail(&hp)), CTLB_TEXT_MAX);

	/* A 426 names protocols in Upgrade; the excerpt is still the body. */
	ctlb_http_init(&hp);
	assert_int_equal(feed_str(&hp, "HTTP/1.1 426 Upgrade Required\r\nUpgrade: TLS/1.0\r\n"
	    "Content-Length: 4\r\n\r\nnope", &used), CTLB_ERR_HTTP_STATUS);
	assert_string_equal(ctlb_http_detail(&hp), "nope");

	/* Reported at the end of the head: no body, empty, chunked, bad length. */
	resp = "HTTP/1.1 204 No Content\r\n\r\n";
	ctlb_http_init(&hp);
	assert_int_equal(feed_str(&hp, resp, &used), CTLB_ERR_HTTP_STATUS);
	ctlb_http_describe(&hp, msg, sizeof msg);
	assert_string_equal(msg, "HTTP 204 No Content");
	ctlb_http_init(&hp);
	assert_int_equal(feed_str(&hp, "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n", &used),
	    CTLB_ERR_HTTP_STATUS);
	ctlb_http_init(&hp);
	assert_int_equal(feed_str(&hp, "HTTP/1.1 500 x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n",
	    &used), CTLB_ERR_HTTP_STATUS);
	assert_string_equal(ctlb_http_detail(&hp), "");
	ctlb_http_init(&hp);
	assert_int_equal(feed_str(&hp, "HTTP/1.1 500 x\r\nContent-Length: 1x\r\n\r\n", &used),
	    CTLB_ERR_HTTP_STATUS);
	ctlb_http_init(&hp);
	assert_int_equal(feed_str(&hp, "HTTP/1.1 500 x\r\nContent-Length: 3\r\n"
	    "Content-Length: 3\r\n\r\n", &used), CTLB_ERR_HTTP_STATUS);

	/* EOF inside the head. */
	ctlb_http_init(&hp);
	assert_int_equal(feed_str(&hp, "HTTP/1.1 101 Switching", &used), CTLB_MORE);
	assert_int_equal(ctlb_http_eof(&hp), CTLB_ERR_HTTP_EOF);
	ctlb_http_init(&hp);
	assert_int_equal(ctlb_http_eof(&hp), CTLB_ERR_HTTP_EOF);
}

static void
test_http_malformed(void **state)
{
	static const char *const bad[] = {
		"HTTP/2 101 Switching Protocols\r\n",
		"HTTP/1.1 1O1 x\r\n",
		"HTTP/1.1 101x\r\n",
		"HTTP/1.1 099 x\r\n",
		"HTTP/1.2 101 x\r\n",
		"http/1.1 101 x\r\n",
		"\r\nHTTP/1.1 101 x\r\n",
		"HTTP/1.1 101 x\rUpgrade: tailscale-control-protocol\r\n\r\n",
		"HTTP/1.1 101 x\r\nUpgrade : tailscale-control-protocol\r\n\r\n",
		"HTTP/1.1 101 x\r\nUpgrade: tailscale-control-protocol\r\n folded\r\n\r\n",
		"HTTP/1.1 101 x\r\nno colon here\r\n\r\n",
		"HTTP/1.1 101 x\r\n: empty name\r\n\r\n",
		"SSH-2.0-OpenSSH_9.6\r\n",
	};
	struct ctlb_http hp;
	size_t used;

	for (size_t k = 0; k < ARRAY_SIZE(bad); k++) {
		ctlb_http_init(&hp);
		assert_int_equal(feed_str(&hp, bad[k], &used), CTLB_ERR_HTTP_MALFORMED);
		assert_int_equal(feed_str(&hp, head_101, &used), CTLB_ERR_HTTP_MALFORMED);
	}
	/* A NUL in the head. */
	ctlb_http_init(&hp);
	assert_int_equal(ctlb_http_feed(&hp, (const uint8_t *)"HTTP/1.1 101 \0x\r\n", 17, &used),
	    CTLB_ERR_HTTP_MALFORMED);
}

static void
test_http_oversized(void **state)
{
	static char head[CTLB_HTTP_HEAD_MAX + 64];
	struct ctlb_http hp;
	size_t used, fixed, pad;
	char *p;

	/* A head of exactly CTLB_HTTP_HEAD_MAX bytes passes... */
	fixed = strlen(head_101) + strlen("X-Pad: \r\n");
	pad = CTLB_HTTP_HEAD_MAX - fixed;
	p = head;
	p += sprintf(p, "HTTP/1.1 101 Switching Protocols\r\nX-Pad: ");
	memset(p, 'p', pad);
	p += pad;
	p += sprintf(p, "\r\nUpgrade: tailscale-control-protocol\r\nConnection: upgrade\r\n\r\n");
	assert_int_equal(strlen(head), CTLB_HTTP_HEAD_MAX);
	ctlb_http_init(&hp);
	assert_int_equal(feed_str(&hp, head, &used), CTLB_DONE);
	assert_int_equal(used, CTLB_HTTP_HEAD_MAX);

	/* ...one more byte does not, in one read or byte by byte. */
	memmove(head + 40, head + 39, strlen(head + 39) + 1);
	ctlb_http_init(&hp);
	assert_int_equal(feed_str(&hp, head, &used), CTLB_ERR_HTTP_TOO_BIG);
	assert_int_equal(used, CTLB_HTTP_HEAD_MAX + 1);
	ctlb_http_init(&hp);
	for (size_t i = 0; i < CTLB_HTTP_HEAD_MAX; i++)
		assert_int_equal(ctlb_http_feed(&hp, (const uint8_t *)head + i, 1, &used), CTLB_MORE);
	assert_int_equal(ctlb_http_feed(&hp, (const uint8_t *)head + CTLB_HTTP_HEAD_MAX, 1, &used),
	    CTLB_ERR_HTTP_TOO_BIG);

	/* A never-ending line, and endless interim responses, are bounded too. */
	memset(head, 'a', sizeof head);
	ctlb_http_init(&hp);
	assert_int_equal(ctlb_http_feed(&hp, (const uint8_t *)"HTTP/1.1 101 ", 13, &used), CTLB_MORE);
	assert_int_equal(ctlb_http_feed(&hp, (const uint8_t *)head, sizeof head, &used),
	    CTLB_ERR_HTTP_TOO_BIG);
	ctlb_http_init(&hp);
	for (int i = 0; i < 1000; i++) {
		int r = feed_str(&hp, "HTTP/1.1 100 Continue\r\n\r\n", &used);

		if (r != CTLB_MORE) {
			assert_int_equal(r, CTLB_ERR_HTTP_TOO_BIG);
			break;
		}
		assert_true(i < 400);
	}

	/* An over-long Upgrade value is stored truncated and refused. */
	p = head;
	p += sprintf(p, "HTTP/1.1 101 x\r\nUpgrade: tailscale-control-protocol");
	memset(p, ' ', 300);
	p += 300;
	p += sprintf(p, "x\r\n\r\n");
	ctlb_http_init(&hp);
	assert_int_equal(feed_str(&hp, head, &used), CTLB_ERR_HTTP_UPGRADE);
}

static void
test_strerror(void **state)
{
	for (int e = CTLB_ERR_ABORTED; e <= CTLB_ERR_INVAL; e++) {
		const char *s = ctlb_strerror(e);

		assert_non_null(s);
		assert_string_not_equal(s, ctlb_strerror(-1000));
		for (int f = e + 1; f <= CTLB_ERR_INVAL; f++)
			assert_string_not_equal(s, ctlb_strerror(f));
	}
	assert_string_equal(ctlb_strerror(0), "success");
	assert_string_equal(ctlb_strerror(CTLB_DONE), "success");
	assert_string_equal(ctlb_strerror(-1000), "unknown controlbase error");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_upstream_vector),
		cmocka_unit_test(test_control_vector),
		cmocka_unit_test(test_round_trip_random),
		cmocka_unit_test(test_response_split_and_trailing),
		cmocka_unit_test(test_response_errors),
		cmocka_unit_test(test_api_misuse),
		cmocka_unit_test(test_split_10k),
		cmocka_unit_test(test_feed_chunking),
		cmocka_unit_test(test_bad_records),
		cmocka_unit_test(test_counters),
		cmocka_unit_test(test_early_present),
		cmocka_unit_test(test_early_absent),
		cmocka_unit_test(test_early_oversized),
		cmocka_unit_test(test_upgrade_request),
		cmocka_unit_test(test_http_101),
		cmocka_unit_test(test_http_errors),
		cmocka_unit_test(test_http_malformed),
		cmocka_unit_test(test_http_oversized),
		cmocka_unit_test(test_strerror),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests_name("controlbase", tests, NULL, NULL);
}

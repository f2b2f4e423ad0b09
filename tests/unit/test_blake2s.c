// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "wg/blake2s.h"

/*
 * Expected values come from RFC 7693, the official blake2s-kat.txt, wg-go's
 * kdf_test.go, and python3's hashlib.blake2s / hmac (pasted in as literals
 * when this file was written).  The "seq" inputs are bytes 00, 01, 02, ...
 * as in the KAT file, and the KAT key is 00..1f.
 */

static void
unhex(uint8_t *out, size_t outlen, const char *hex)
{
	size_t i;

	assert_int_equal(strlen(hex), outlen * 2);
	for (i = 0; i < outlen; i++) {
		unsigned int b;

		assert_int_equal(sscanf(hex + 2 * i, "%2x", &b), 1);
		out[i] = (uint8_t)b;
	}
}

static void
assert_hex_equal(const uint8_t *got, size_t len, const char *hex)
{
	uint8_t want[64];

	assert_true(len <= sizeof want);
	unhex(want, len, hex);
	assert_memory_equal(got, want, len);
}

static void
seq(uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)i;
}

static void
test_rfc7693_abc(void **state)
{
	uint8_t out[BLAKE2S_HASH_SIZE];

	blake2s(out, sizeof out, NULL, 0, (const uint8_t *)"abc", 3);
	assert_hex_equal(out, sizeof out,
	    "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982");
}

/* RFC 7693 Appendix E: the deterministic generator and the self-test loop. */
static void
selftest_seq(uint8_t *out, size_t len, uint32_t seed)
{
	uint32_t a = 0xdead4bad * seed, b = 1, t;

	for (size_t i = 0; i < len; i++) {
		t = a + b;
		a = b;
		b = t;
		out[i] = (uint8_t)(t >> 24);
	}
}

static void
test_rfc7693_selftest(void **state)
{
	static const size_t md_len[] = { 16, 20, 28, 32 };
	static const size_t in_len[] = { 0, 3, 64, 65, 255, 1024 };
	uint8_t in[1024], md[32], key[32];
	struct blake2s_state ctx;

	blake2s_init(&ctx, 32, NULL, 0);
	for (size_t i = 0; i < 4; i++) {
		size_t outlen = md_len[i];

		for (size_t j = 0; j < 6; j++) {
			size_t inlen = in_len[j];

			selftest_seq(in, inlen, (uint32_t)inlen);
			blake2s(md, outlen, NULL, 0, in, inlen);
			blake2s_update(&ctx, md, outlen);

			selftest_seq(key, outlen, (uint32_t)outlen);
			blake2s(md, outlen, key, outlen, in, inlen);
			blake2s_update(&ctx, md, outlen);
		}
	}
	blake2s_final(&ctx, md);
	assert_hex_equal(md, 32,
	    "6a411f08ce25adcdfb02aba641451cec53c598b24f4fc787fbdc88797f4c1dfe");
}

static const struct {
	size_t len;
	const char *hex;
} kat_unkeyed[] = {
	{ 0, "69217a3079908094e11121d042354a7c1f55b6482ca1a51e1b250dfd1ed0eef9" },
	{ 1, "e34d74dbaf4ff4c6abd871cc220451d2ea2648846c7757fbaac82fe51ad64bea" },
	{ 2, "ddad9ab15dac4549ba42f49d262496bef6c0bae1dd342a8808f8ea267c6e210c" },
	{ 3, "e8f91c6ef232a041452ab0e149070cdd7dd1769e75b3a5921be37876c45c9900" },
	{ 63, "e57cb79487dd57902432b250733813bd96a84efce59f650fac26e6696aefafc3" },
	{ 64, "56f34e8b96557e90c1f24b52d0c89d51086acf1b00f634cf1dde9233b8eaaa3e" },
	{ 65, "1b53ee94aaf34e4b159d48de352c7f0661d0a40edff95a0b1639b4090e974472" },
	{ 127, "f18417b39d617ab1c18fdf91ebd0fc6d5516bb34cf39364037bce81fa04cecb1" },
	{ 128, "1fa877de67259d19863a2a34bcc6962a2b25fcbf5cbecd7ede8f1fa36688a796" },
	{ 129, "5bd169e67c82c2c2e98ef7008bdf261f2ddf30b1c00f9e7f275bb3e8a28dc9a2" },
	{ 255, "f03f5789d3336b80d002d59fdf918bdb775b00956ed5528e86aa994acb38fe2d" },
}, kat_keyed[] = {
	{ 0, "48a8997da407876b3d79c0d92325ad3b89cbb754d86ab71aee047ad345fd2c49" },
	{ 1, "40d15fee7c328830166ac3f918650f807e7e01e177258cdc0a39b11f598066f1" },
	{ 2, "6bb71300644cd3991b26ccd4d274acd1adeab8b1d7914546c1198bbe9fc9d803" },
	{ 63, "c65382513f07460da39833cb666c5ed82e61b9e998f4b0c4287cee56c3cc9bcd" },
	{ 64, "8975b0577fd35566d750b362b0897a26c399136df07bababbde6203ff2954ed4" },
	{ 65, "21fe0ceb0052be7fb0f004187cacd7de67fa6eb0938d927677f2398c132317a8" },
	{ 128, "0c311f38c35a4fb90d651c289d486856cd1413df9b0677f53ece2cd9e477c60a" },
	{ 255, "3fb735061abc519dfe979e54c1ee5bfad0a9d858b3315bad34bde999efd724dd" },
};

static void
test_kat_unkeyed(void **state)
{
	uint8_t in[256], out[BLAKE2S_HASH_SIZE];

	seq(in, sizeof in);
	for (size_t i = 0; i < sizeof kat_unkeyed / sizeof kat_unkeyed[0]; i++) {
		blake2s(out, sizeof out, NULL, 0, in, kat_unkeyed[i].len);
		assert_hex_equal(out, sizeof out, kat_unkeyed[i].hex);
	}
}

static void
test_kat_keyed(void **state)
{
	uint8_t in[256], key[BLAKE2S_KEY_SIZE], out[BLAKE2S_HASH_SIZE];

	seq(in, sizeof in);
	seq(key, sizeof key);
	for (size_t i = 0; i < sizeof kat_keyed / sizeof kat_keyed[0]; i++) {
		blake2s(out, sizeof out, key, sizeof key, in, kat_keyed[i].len);
		assert_hex_equal(out, sizeof out, kat_keyed[i].hex);
	}
}

/* Short digests and short keys change the parameter block, as mac1/mac2 do. */
static void
test_short_digest_and_key(void **state)
{
	static const uint8_t key5[] = { 1, 2, 3, 4, 5 };
	uint8_t in[116], key[BLAKE2S_KEY_SIZE], out[BLAKE2S_HASH_SIZE];

	seq(in, sizeof in);
	seq(key, sizeof key);

	memset(out, 0xaa, sizeof out);
	blake2s(out, 16, key, sizeof key, in, 116);
	assert_hex_equal(out, 16, "072e94ffbfc684bd8ab2a1b9dade2fd5");
	/* Only outlen bytes are written. */
	for (size_t i = 16; i < sizeof out; i++)
		assert_int_equal(out[i], 0xaa);

	blake2s(out, 16, NULL, 0, (const uint8_t *)"abc", 3);
	assert_hex_equal(out, 16, "aa4938119b1dc7b87cbad0ffd200d0ae");

	blake2s(out, 20, key5, sizeof key5, in, 100);
	assert_hex_equal(out, 20, "7f9b1c658fc2e465c0690cd01c75cb5139d5a015");
}

/* Updates in odd chunk sizes must hit every buffer boundary case and agree with one-shot. */
static void
test_incremental(void **state)
{
	static const size_t chunks[] = { 1, 3, 7, 13, 31, 63, 64, 65, 127, 129, 200 };
	uint8_t in[1000], key[BLAKE2S_KEY_SIZE];
	uint8_t one[BLAKE2S_HASH_SIZE], inc[BLAKE2S_HASH_SIZE];

	seq(in, sizeof in);
	seq(key, sizeof key);

	for (int keyed = 0; keyed < 2; keyed++) {
		for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
			/* Several total lengths, including exact block multiples. */
			static const size_t totals[] = { 0, 1, 64, 128, 191, 192, 1000 };

			for (size_t t = 0; t < sizeof totals / sizeof totals[0]; t++) {
				struct blake2s_state s;
				size_t total = totals[t], off = 0;

				blake2s(one, sizeof one, keyed ? key : NULL,
				    keyed ? sizeof key : 0, in, total);

				blake2s_init(&s, sizeof inc, keyed ? key : NULL,
				    keyed ? sizeof key : 0);
				while (off < total) {
					size_t n = chunks[c];

					if (n > total - off)
						n = total - off;
					blake2s_update(&s, in + off, n);
					/* Empty updates in between must be no-ops. */
					blake2s_update(&s, in + off, 0);
					off += n;
				}
				blake2s_final(&s, inc);
				assert_memory_equal(one, inc, sizeof one);
			}
		}
	}

	/* Varying chunk sizes in one run, against a KAT value. */
	{
		struct blake2s_state s;
		size_t off = 0, n = 1;

		blake2s_init(&s, BLAKE2S_HASH_SIZE, key, sizeof key);
		while (off < 255) {
			if (n > 255 - off)
				n = 255 - off;
			blake2s_update(&s, in + off, n);
			off += n;
			n = n * 3 % 70 + 1;
		}
		blake2s_final(&s, inc);
		assert_hex_equal(inc, sizeof inc,
		    "3fb735061abc519dfe979e54c1ee5bfad0a9d858b3315bad34bde999efd724dd");
	}
}

static void
test_final_wipes_state(void **state)
{
	static const uint8_t zero[sizeof(struct blake2s_state)];
	struct blake2s_state s;
	uint8_t key[BLAKE2S_KEY_SIZE], out[BLAKE2S_HASH_SIZE];

	seq(key, sizeof key);
	blake2s_init(&s, sizeof out, key, sizeof key);
	blake2s_update(&s, (const uint8_t *)"abc", 3);
	assert_memory_not_equal(&s, zero, sizeof s);
	blake2s_final(&s, out);
	assert_memory_equal(&s, zero, sizeof s);
}

static void
test_hmac(void **state)
{
	uint8_t key[100], msg[200], out[BLAKE2S_HASH_SIZE];
	static const char fox[] = "The quick brown fox jumps over the lazy dog";

	seq(key, sizeof key);
	seq(msg, sizeof msg);

	blake2s_hmac(out, (const uint8_t *)"key", 3, (const uint8_t *)fox, strlen(fox));
	assert_hex_equal(out, sizeof out,
	    "f93215bb90d4af4c3061cd932fb169fb8bb8a91d0b4022baea1271e1323cd9a0");

	blake2s_hmac(out, NULL, 0, NULL, 0);
	assert_hex_equal(out, sizeof out,
	    "eaf4bb25938f4d20e72656bbbc7a9bf63c0c18537333c35bdb67db1402661acd");

	blake2s_hmac(out, key, 32, msg, 200);
	assert_hex_equal(out, sizeof out,
	    "543eec9b22646365ef782d72dae137cc761d018005f8d33d0f20bfbd01e62974");

	/* A key of exactly one block is used as is. */
	blake2s_hmac(out, key, 64, (const uint8_t *)"abc", 3);
	assert_hex_equal(out, sizeof out,
	    "3a0ef09eac123871fb79852ec512086d013abff437bd68ca03630932bd6ba81f");

	/* Longer keys are hashed first (RFC 2104 §2), beyond what the header promises. */
	blake2s_hmac(out, key, 65, NULL, 0);
	assert_hex_equal(out, sizeof out,
	    "019d0d4ece4de18d4db0fe1b3b13460ff4bca4ff2b08d86e50bb1c8a799643ae");
	blake2s_hmac(out, key, 100, (const uint8_t *)"long key", 8);
	assert_hex_equal(out, sizeof out,
	    "096d2dec44b647196383c466daf27592cf0c187793f83d1e9f8a19efc137d0d1");
}

/* The Noise code chains outputs back in, so out may alias key or in. */
static void
test_hmac_aliasing(void **state)
{
	uint8_t buf[BLAKE2S_HASH_SIZE], key[BLAKE2S_HASH_SIZE], want[BLAKE2S_HASH_SIZE];

	seq(key, sizeof key);
	blake2s_hmac(want, key, sizeof key, (const uint8_t *)"abc", 3);
	memcpy(buf, key, sizeof buf);
	blake2s_hmac(buf, buf, sizeof buf, (const uint8_t *)"abc", 3);
	assert_memory_equal(buf, want, sizeof buf);

	blake2s_hmac(want, (const uint8_t *)"k", 1, key, sizeof key);
	memcpy(buf, key, sizeof buf);
	blake2s_hmac(buf, (const uint8_t *)"k", 1, buf, sizeof buf);
	assert_memory_equal(buf, want, sizeof buf);
}

/*
 * WireGuard's KDF (whitepaper §5.4): HKDF with HMAC-BLAKE2s.
 * T0 = HMAC(key, input); T1 = HMAC(T0, 0x1); Ti = HMAC(T0, T(i-1) || i).
 */
static void
kdf3(uint8_t t1[32], uint8_t t2[32], uint8_t t3[32], const char *key, const char *input)
{
	uint8_t prk[32], buf[33];

	blake2s_hmac(prk, (const uint8_t *)key, strlen(key), (const uint8_t *)input,
	    strlen(input));
	buf[0] = 1;
	blake2s_hmac(t1, prk, 32, buf, 1);
	memcpy(buf, t1, 32);
	buf[32] = 2;
	blake2s_hmac(t2, prk, 32, buf, 33);
	memcpy(buf, t2, 32);
	buf[32] = 3;
	blake2s_hmac(t3, prk, 32, buf, 33);
}

static void
test_wireguard_kdf(void **state)
{
	static const struct {
		const char *key, *input, *t0, *t1, *t2;
	} v[] = {
		{ "test-key", "test-input",
		  "6f0e5ad38daba1bea8a0d213688736f19763239305e0f58aba697f9ffc41c633",
		  "df1194df20802a4fe594cde27e92991c8cae66c366e8106aaa937a55fa371e8a",
		  "fac6e2745a325f5dc5d11a5b165aad08b0ada28e7b4e666b7c077934a4d76c24" },
		{ "wireguard", "wireguard",
		  "491d43bbfdaa8750aaf535e334ecbfe5129967cd64635101c566d4caefda96e8",
		  "1e71a379baefd8a79aa4662212fcafe19a23e2b609a3db7d6bcba8f560e3d25f",
		  "31e1ae48bddfbe5de38f295e5452b1909a1b4e38e183926af3780b0c1e1f0160" },
		{ "", "",
		  "8387b46bf43eccfcf349552a095d8315c4055beb90208fb1be23b894bc2ed5d0",
		  "58a0e5f6faefccf4807bff1f05fa8a9217945762040bcec2f4b4a62bdfe0e86e",
		  "0ce6ea98ec548f8e281e93e32db65621c45eb18dc6f0a7ad94178610a2f7338e" },
	};
	uint8_t t0[32], t1[32], t2[32];

	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		kdf3(t0, t1, t2, v[i].key, v[i].input);
		assert_hex_equal(t0, 32, v[i].t0);
		assert_hex_equal(t1, 32, v[i].t1);
		assert_hex_equal(t2, 32, v[i].t2);
	}
}

/* C0 = HASH(CONSTRUCTION), the initial chaining key of every handshake. */
static void
test_noise_c0(void **state)
{
	static const char construction[] = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
	uint8_t c0[BLAKE2S_HASH_SIZE];

	blake2s(c0, sizeof c0, NULL, 0, (const uint8_t *)construction, strlen(construction));
	assert_hex_equal(c0, sizeof c0,
	    "60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc7693_abc),
		cmocka_unit_test(test_rfc7693_selftest),
		cmocka_unit_test(test_kat_unkeyed),
		cmocka_unit_test(test_kat_keyed),
		cmocka_unit_test(test_short_digest_and_key),
		cmocka_unit_test(test_incremental),
		cmocka_unit_test(test_final_wipes_state),
		cmocka_unit_test(test_hmac),
		cmocka_unit_test(test_hmac_aliasing),
		cmocka_unit_test(test_wireguard_kdf),
		cmocka_unit_test(test_noise_c0),
	};

	return cmocka_run_group_tests_name("blake2s", tests, NULL, NULL);
}

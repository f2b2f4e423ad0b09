// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/* The constant-time key codecs against libsodium's own hex and base64. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "common/keys.h"

static void
test_round_trip_random(void **state)
{
	for (int i = 0; i < 2000; i++) {
		uint8_t key[KEY_LEN], back[KEY_LEN];
		char hex[KEY_HEX_LEN], ref_hex[KEY_HEX_LEN], b64[KEY_B64_LEN], ref_b64[KEY_B64_LEN];

		randombytes_buf(key, sizeof key);
		key_to_hex(hex, key);
		sodium_bin2hex(ref_hex, sizeof ref_hex, key, sizeof key);
		assert_string_equal(hex, ref_hex);
		assert_true(key_from_hex(back, hex));
		assert_memory_equal(back, key, KEY_LEN);

		key_to_base64(b64, key);
		sodium_bin2base64(ref_b64, sizeof ref_b64, key, sizeof key,
		    sodium_base64_VARIANT_ORIGINAL);
		assert_string_equal(b64, ref_b64);
		assert_true(key_from_base64(back, b64));
		assert_memory_equal(back, key, KEY_LEN);
	}
}

static void
test_hex_upper_case(void **state)
{
	uint8_t key[KEY_LEN];
	char hex[KEY_HEX_LEN];

	memset(hex, 'A', KEY_HEX_LEN - 1);
	hex[KEY_HEX_LEN - 1] = '\0';
	assert_true(key_from_hex(key, hex));
	for (int i = 0; i < KEY_LEN; i++)
		assert_int_equal(key[i], 0xaa);
}

static void
test_bad_input_wipes(void **state)
{
	static const char *bad_hex[] = {
		"", "00",
		"g000000000000000000000000000000000000000000000000000000000000000",
		"000000000000000000000000000000000000000000000000000000000000000",
		"00000000000000000000000000000000000000000000000000000000000000000",
		"0000000000000000000000000000000000000000000000000000000000000 00",
		"000000000000000000000000000000000000000000000000000000000000000\xff",
	};
	static const char *bad_b64[] = {
		"", "AAAA",
		"!AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=",	/* non-canonical last sextet */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
	};
	uint8_t key[KEY_LEN];

	for (size_t i = 0; i < sizeof bad_hex / sizeof bad_hex[0]; i++) {
		memset(key, 0x5a, sizeof key);
		assert_false(key_from_hex(key, bad_hex[i]));
		assert_true(key_is_zero(key));
	}
	for (size_t i = 0; i < sizeof bad_b64 / sizeof bad_b64[0]; i++) {
		memset(key, 0x5a, sizeof key);
		assert_false(key_from_base64(key, bad_b64[i]));
		assert_true(key_is_zero(key));
	}
}

static void
test_fingerprint(void **state)
{
	uint8_t key[KEY_LEN];
	char b64[KEY_B64_LEN];
	struct key_fp fp;

	randombytes_buf(key, sizeof key);
	key_to_base64(b64, key);
	fp = key_fingerprint(key);
	assert_int_equal(strlen(fp.s), 11);
	assert_memory_equal(fp.s, b64, 8);
	assert_string_equal(fp.s + 8, "...");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_random),
		cmocka_unit_test(test_hex_upper_case),
		cmocka_unit_test(test_bad_input_wipes),
		cmocka_unit_test(test_fingerprint),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests_name("keys", tests, NULL, NULL);
}

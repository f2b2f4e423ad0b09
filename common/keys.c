// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */
#include <string.h>

#include <sodium.h>

#include "common/keys.h"

/*
 * Constant-time nibble and sextet conversions: every branch below is on a
 * value derived by arithmetic masks, never on the secret byte itself.
 */
static char
nibble_to_hex(unsigned int n)
{
	/* 0..9 -> '0'..'9', 10..15 -> 'a'..'f' */
	return (char)(n + '0' + (((9 - (int)n) >> 8) & ('a' - '0' - 10)));
}

static int
hex_to_nibble(unsigned char c)
{
	int v = c, lower = c | 0x20;
	/* -1 when c lies in the range, else 0: the sign of (lo-1-v) & (v-hi-1). */
	int is_digit = (('0' - 1 - v) & (v - ('9' + 1))) >> 8;
	int is_alpha = (('a' - 1 - lower) & (lower - ('f' + 1))) >> 8;

	/* 0..15, or -1 when c is not a hex digit. */
	return -1 + ((is_digit & (v - '0' + 1)) | (is_alpha & (lower - 'a' + 11)));
}

void
key_to_hex(char hex[static KEY_HEX_LEN], const uint8_t key[static KEY_LEN])
{
	for (size_t i = 0; i < KEY_LEN; i++) {
		hex[i * 2] = nibble_to_hex(key[i] >> 4);
		hex[i * 2 + 1] = nibble_to_hex(key[i] & 0xf);
	}
	hex[KEY_LEN * 2] = '\0';
}

bool
key_from_hex(uint8_t key[static KEY_LEN], const char *hex)
{
	volatile int bad = 0;

	if (strlen(hex) != KEY_LEN * 2)
		goto fail;
	for (size_t i = 0; i < KEY_LEN; i++) {
		int hi = hex_to_nibble((unsigned char)hex[i * 2]);
		int lo = hex_to_nibble((unsigned char)hex[i * 2 + 1]);

		bad |= (hi | lo) >> 8;	/* negative -> all ones */
		key[i] = (uint8_t)((unsigned int)hi << 4 | (unsigned int)lo);
	}
	if (!bad)
		return true;
fail:
	sodium_memzero(key, KEY_LEN);
	return false;
}

static char
sextet_to_b64(int n)
{
	/* A-Z 0..25, a-z 26..51, 0-9 52..61, + 62, / 63 */
	return (char)(n + 'A' +
	    (((25 - n) >> 8) & 6) -
	    (((51 - n) >> 8) & 75) -
	    (((61 - n) >> 8) & 15) +
	    (((62 - n) >> 8) & 3));
}

static int
b64_to_sextet(unsigned char c)
{
	int v = (int)c;

	/* Each term contributes (value + 1) when c is in its range, else 0. */
	return -1 +
	    ((((('A' - 1) - v) & (v - ('Z' + 1))) >> 8) & (v - 64)) +
	    ((((('a' - 1) - v) & (v - ('z' + 1))) >> 8) & (v - 70)) +
	    ((((('0' - 1) - v) & (v - ('9' + 1))) >> 8) & (v + 5)) +
	    ((((('+' - 1) - v) & (v - ('+' + 1))) >> 8) & 63) +
	    ((((('/' - 1) - v) & (v - ('/' + 1))) >> 8) & 64);
}

void
key_to_base64(char b64[static KEY_B64_LEN], const uint8_t key[static KEY_LEN])
{
	size_t i, o = 0;

	for (i = 0; i + 3 <= KEY_LEN; i += 3) {
		uint32_t v = (uint32_t)key[i] << 16 | (uint32_t)key[i + 1] << 8 | key[i + 2];

		b64[o++] = sextet_to_b64((v >> 18) & 63);
		b64[o++] = sextet_to_b64((v >> 12) & 63);
		b64[o++] = sextet_to_b64((v >> 6) & 63);
		b64[o++] = sextet_to_b64(v & 63);
	}
	/* 32 = 10 * 3 + 2: two bytes left, one '=' of padding. */
	{
		uint32_t v = (uint32_t)key[i] << 16 | (uint32_t)key[i + 1] << 8;

		b64[o++] = sextet_to_b64((v >> 18) & 63);
		b64[o++] = sextet_to_b64((v >> 12) & 63);
		b64[o++] = sextet_to_b64((v >> 6) & 63);
		b64[o++] = '=';
	}
	b64[o] = '\0';
}

bool
key_from_base64(uint8_t key[static KEY_LEN], const char *b64)
{
	volatile int bad = 0;
	size_t i, o = 0;

	if (strlen(b64) != KEY_B64_LEN - 1 || b64[KEY_B64_LEN - 2] != '=')
		goto fail;
	for (i = 0; i < KEY_B64_LEN - 1 - 4; i += 4) {
		int a = b64_to_sextet((unsigned char)b64[i]);
		int b = b64_to_sextet((unsigned char)b64[i + 1]);
		int c = b64_to_sextet((unsigned char)b64[i + 2]);
		int d = b64_to_sextet((unsigned char)b64[i + 3]);
		uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;

		bad |= (a | b | c | d) >> 8;
		key[o++] = (uint8_t)(v >> 16);
		key[o++] = (uint8_t)(v >> 8);
		key[o++] = (uint8_t)v;
	}
	{
		int a = b64_to_sextet((unsigned char)b64[i]);
		int b = b64_to_sextet((unsigned char)b64[i + 1]);
		int c = b64_to_sextet((unsigned char)b64[i + 2]);
		uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6;

		/* The last sextet's two low bits must be zero for a canonical encoding. */
		bad |= ((a | b | c) >> 8) | ((c & 3) != 0);
		key[o++] = (uint8_t)(v >> 16);
		key[o++] = (uint8_t)(v >> 8);
	}
	if (!bad)
		return true;
fail:
	sodium_memzero(key, KEY_LEN);
	return false;
}

struct key_fp
key_fingerprint(const uint8_t key[static KEY_LEN])
{
	struct key_fp fp;
	char b64[KEY_B64_LEN];

	key_to_base64(b64, key);
	memcpy(fp.s, b64, 8);
	memcpy(fp.s + 8, "...", 4);
	return fp;
}

bool
key_is_zero(const uint8_t key[static KEY_LEN])
{
	return sodium_is_zero(key, KEY_LEN) == 1;
}

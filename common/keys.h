/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_KEYS_H
#define MESHD_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEY_LEN 32
#define KEY_HEX_LEN (KEY_LEN * 2 + 1)
#define KEY_B64_LEN (((KEY_LEN + 2) / 3) * 4 + 1)

/*
 * Text forms of 32-byte keys.  Encoding and decoding run in constant time
 * (no table lookups or branches on key bytes), since private keys pass
 * through them on their way in from wg(8) and the state file.  A failed
 * decode leaves the output zeroed.
 */
void key_to_hex(char hex[static KEY_HEX_LEN], const uint8_t key[static KEY_LEN]);
bool key_from_hex(uint8_t key[static KEY_LEN], const char *hex) __attribute__((warn_unused_result));
void key_to_base64(char b64[static KEY_B64_LEN], const uint8_t key[static KEY_LEN]);
bool key_from_base64(uint8_t key[static KEY_LEN], const char *b64) __attribute__((warn_unused_result));

/* Short printable form of a *public* key for logs: the first 8 base64 characters. */
struct key_fp { char s[12]; };
struct key_fp key_fingerprint(const uint8_t key[static KEY_LEN]);

bool key_is_zero(const uint8_t key[static KEY_LEN]);

#endif

/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_ALLOWEDIPS_H
#define MESHD_ALLOWEDIPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The allowed-IPs table: a longest-prefix-match trie for IPv4 and IPv6 that
 * maps a prefix to an opaque owner (a WireGuard peer).  Sending uses it to
 * pick the peer for a destination; receiving uses it to check that a
 * decrypted packet's source belongs to the peer that sent it (cryptokey
 * routing).
 *
 * Addresses are in network byte order: 4 bytes for AF_INET, 16 for AF_INET6.
 * Inserting a prefix that exists already moves it to the new owner, as
 * WireGuard does.  Host bits beyond the prefix length are ignored.
 *
 * Lookups do not allocate and take O(address bits).  Inserts allocate nodes
 * (configuration path).
 */
struct aip_table;

struct aip_table *aip_new(void);
void aip_free(struct aip_table *t);	/* NULL-safe */

/* 0, or -EINVAL for a bad family or prefix length, -ENOMEM. */
int aip_insert(struct aip_table *t, int family, const uint8_t *addr, uint8_t cidr, void *owner)
	__attribute__((warn_unused_result));
/* Removes exactly this prefix if it belongs to owner; returns true if removed. */
bool aip_remove(struct aip_table *t, int family, const uint8_t *addr, uint8_t cidr, void *owner);
/* Removes every prefix that belongs to owner. */
void aip_remove_owner(struct aip_table *t, void *owner);

/* The owner of the longest prefix containing addr, or NULL. */
void *aip_lookup(const struct aip_table *t, int family, const uint8_t *addr);

/*
 * Calls fn for each prefix that belongs to owner, in no particular order.
 * fn must not modify the table.  Stops early and returns fn's value if it is
 * non-zero.
 */
typedef int (*aip_walk_fn)(void *ctx, int family, const uint8_t *addr, uint8_t cidr);
int aip_walk_owner(const struct aip_table *t, const void *owner, aip_walk_fn fn, void *ctx);

/* Number of prefixes in the table. */
size_t aip_count(const struct aip_table *t);

#endif

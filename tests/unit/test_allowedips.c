// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "wg/allowedips.h"

/* Owners are opaque to the table; any distinct non-NULL pointers will do. */
static int peers[8];
#define A (&peers[0])
#define B (&peers[1])
#define C (&peers[2])
#define D (&peers[3])

static int
fam_len(int family)
{
	return family == AF_INET ? 4 : 16;
}

static void
parse(int family, const char *s, uint8_t out[16])
{
	memset(out, 0, 16);
	assert_int_equal(inet_pton(family, s, out), 1);
}

static int
ins(struct aip_table *t, int family, const char *s, uint8_t cidr, void *owner)
{
	uint8_t a[16];

	parse(family, s, a);
	return aip_insert(t, family, a, cidr, owner);
}

static void
ins_ok(struct aip_table *t, int family, const char *s, uint8_t cidr, void *owner)
{
	assert_int_equal(ins(t, family, s, cidr, owner), 0);
}

static bool
rm(struct aip_table *t, int family, const char *s, uint8_t cidr, void *owner)
{
	uint8_t a[16];

	parse(family, s, a);
	return aip_remove(t, family, a, cidr, owner);
}

static void *
look(struct aip_table *t, int family, const char *s)
{
	uint8_t a[16];

	parse(family, s, a);
	return aip_lookup(t, family, a);
}

#define look4(t, s) look((t), AF_INET, (s))
#define look6(t, s) look((t), AF_INET6, (s))

static void
test_basic_v4(void **state)
{
	struct aip_table *t = aip_new();

	assert_non_null(t);
	assert_null(look4(t, "10.1.2.3"));

	ins_ok(t, AF_INET, "10.0.0.0", 8, A);
	ins_ok(t, AF_INET, "10.1.0.0", 16, B);
	ins_ok(t, AF_INET, "10.1.2.3", 32, C);
	ins_ok(t, AF_INET, "192.168.0.0", 24, D);
	assert_int_equal(aip_count(t), 4);

	assert_ptr_equal(look4(t, "10.1.2.3"), C);
	assert_ptr_equal(look4(t, "10.1.2.4"), B);
	assert_ptr_equal(look4(t, "10.1.255.255"), B);
	assert_ptr_equal(look4(t, "10.2.0.0"), A);
	assert_ptr_equal(look4(t, "10.255.255.255"), A);
	assert_ptr_equal(look4(t, "192.168.0.77"), D);
	assert_null(look4(t, "192.168.1.0"));
	assert_null(look4(t, "11.0.0.0"));
	assert_null(look4(t, "9.255.255.255"));
	/* An IPv4 table says nothing about IPv6. */
	assert_null(look6(t, "::a01:203"));

	aip_free(t);
	aip_free(NULL);
}

static void
test_basic_v6(void **state)
{
	struct aip_table *t = aip_new();

	ins_ok(t, AF_INET6, "2001:db8::", 32, A);
	ins_ok(t, AF_INET6, "2001:db8:1::", 48, B);
	ins_ok(t, AF_INET6, "2001:db8:1::1", 128, C);
	ins_ok(t, AF_INET6, "fd7a:115c:a1e0::", 48, D);
	/* Prefixes that straddle the 64-bit word boundary. */
	ins_ok(t, AF_INET6, "2001:db8:1:2:8000::", 65, A);
	ins_ok(t, AF_INET6, "2001:db8:1:2::", 63, C);
	assert_int_equal(aip_count(t), 6);

	assert_ptr_equal(look6(t, "2001:db8:1::1"), C);
	assert_ptr_equal(look6(t, "2001:db8:1::2"), B);
	assert_ptr_equal(look6(t, "2001:db8:2::1"), A);
	assert_ptr_equal(look6(t, "2001:db8:1:2:8000::1"), A);
	assert_ptr_equal(look6(t, "2001:db8:1:2:7fff::1"), C);
	assert_ptr_equal(look6(t, "2001:db8:1:3:ffff::1"), C);
	assert_ptr_equal(look6(t, "2001:db8:1:4::"), B);
	assert_ptr_equal(look6(t, "fd7a:115c:a1e0::1234"), D);
	assert_null(look6(t, "fd7a:115c:a1e1::"));
	assert_null(look6(t, "2001:db9::"));
	assert_null(look4(t, "32.1.13.184"));

	aip_free(t);
}

static void
test_default_routes(void **state)
{
	struct aip_table *t = aip_new();

	ins_ok(t, AF_INET, "0.0.0.0", 0, A);
	assert_ptr_equal(look4(t, "0.0.0.0"), A);
	assert_ptr_equal(look4(t, "255.255.255.255"), A);
	assert_null(look6(t, "::"));

	ins_ok(t, AF_INET6, "::", 0, B);
	assert_ptr_equal(look6(t, "::"), B);
	assert_ptr_equal(look6(t, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), B);
	assert_ptr_equal(look4(t, "1.2.3.4"), A);

	/* More specific routes win over the default; host bits of /0 are ignored. */
	ins_ok(t, AF_INET, "100.64.0.0", 10, C);
	ins_ok(t, AF_INET, "1.2.3.4", 0, D);
	assert_int_equal(aip_count(t), 3);
	assert_ptr_equal(look4(t, "100.100.100.100"), C);
	assert_ptr_equal(look4(t, "100.128.0.0"), D);
	assert_ptr_equal(look4(t, "8.8.8.8"), D);

	assert_true(rm(t, AF_INET, "0.0.0.0", 0, D));
	assert_null(look4(t, "8.8.8.8"));
	assert_ptr_equal(look4(t, "100.64.0.1"), C);
	assert_ptr_equal(look6(t, "2001::1"), B);
	assert_int_equal(aip_count(t), 2);

	aip_free(t);
}

static void
test_host_routes_and_edges(void **state)
{
	struct aip_table *t = aip_new();

	ins_ok(t, AF_INET, "255.255.255.255", 32, A);
	ins_ok(t, AF_INET, "255.255.255.254", 32, B);
	ins_ok(t, AF_INET, "0.0.0.0", 32, C);
	ins_ok(t, AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 128, A);
	ins_ok(t, AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 128, B);
	ins_ok(t, AF_INET6, "::", 128, C);

	assert_ptr_equal(look4(t, "255.255.255.255"), A);
	assert_ptr_equal(look4(t, "255.255.255.254"), B);
	assert_null(look4(t, "255.255.255.253"));
	assert_ptr_equal(look4(t, "0.0.0.0"), C);
	assert_null(look4(t, "0.0.0.1"));
	assert_ptr_equal(look6(t, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), A);
	assert_ptr_equal(look6(t, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"), B);
	assert_null(look6(t, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffd"));
	assert_ptr_equal(look6(t, "::"), C);
	assert_null(look6(t, "::1"));

	aip_free(t);
}

static void
test_overlap_and_masking(void **state)
{
	struct aip_table *t = aip_new();

	/* Inserted from most to least specific, so later nodes go above earlier ones. */
	ins_ok(t, AF_INET, "192.168.1.1", 32, A);
	ins_ok(t, AF_INET, "192.168.1.0", 24, B);
	ins_ok(t, AF_INET, "192.168.0.0", 16, C);
	ins_ok(t, AF_INET, "192.0.0.0", 8, D);
	/* Siblings that force a branching node at 192.168.0.0/23. */
	ins_ok(t, AF_INET, "192.168.0.0", 24, A);

	assert_ptr_equal(look4(t, "192.168.1.1"), A);
	assert_ptr_equal(look4(t, "192.168.1.2"), B);
	assert_ptr_equal(look4(t, "192.168.0.9"), A);
	assert_ptr_equal(look4(t, "192.168.2.0"), C);
	assert_ptr_equal(look4(t, "192.169.0.0"), D);

	/* Host bits are ignored on insert: this re-owns 192.168.1.0/24. */
	ins_ok(t, AF_INET, "192.168.1.200", 24, C);
	assert_int_equal(aip_count(t), 5);
	assert_ptr_equal(look4(t, "192.168.1.2"), C);
	/* ...and on remove. */
	assert_true(rm(t, AF_INET, "192.168.1.99", 24, C));
	assert_ptr_equal(look4(t, "192.168.1.2"), C);	/* the /16, also C */
	assert_ptr_equal(look4(t, "192.168.1.1"), A);

	/* The branching node is not a prefix of the table. */
	assert_false(rm(t, AF_INET, "192.168.0.0", 23, A));
	assert_false(rm(t, AF_INET, "192.168.0.0", 23, NULL));
	assert_int_equal(aip_count(t), 4);

	aip_free(t);
}

static void
test_reown(void **state)
{
	struct aip_table *t = aip_new();

	ins_ok(t, AF_INET6, "fd00::", 8, A);
	ins_ok(t, AF_INET6, "fd00::", 8, B);
	assert_int_equal(aip_count(t), 1);
	assert_ptr_equal(look6(t, "fd12::1"), B);
	/* A no longer owns it, so A cannot remove it. */
	assert_false(rm(t, AF_INET6, "fd00::", 8, A));
	assert_true(rm(t, AF_INET6, "fd00::", 8, B));
	assert_int_equal(aip_count(t), 0);
	assert_null(look6(t, "fd12::1"));

	/* Re-owning an existing prefix needs no allocation, and leaves the rest alone. */
	ins_ok(t, AF_INET, "10.0.0.0", 8, A);
	ins_ok(t, AF_INET, "10.0.0.0", 24, A);
	ins_ok(t, AF_INET, "10.0.0.0", 24, B);
	assert_ptr_equal(look4(t, "10.0.0.1"), B);
	assert_ptr_equal(look4(t, "10.0.1.1"), A);
	assert_int_equal(aip_count(t), 2);

	aip_free(t);
}

static void
test_invalid(void **state)
{
	struct aip_table *t = aip_new();
	uint8_t a[16] = { 10 };

	assert_int_equal(aip_insert(t, AF_UNIX, a, 8, A), -EINVAL);
	assert_int_equal(aip_insert(t, AF_INET, a, 33, A), -EINVAL);
	assert_int_equal(aip_insert(t, AF_INET6, a, 129, A), -EINVAL);
	assert_int_equal(aip_insert(t, AF_INET, a, 8, NULL), -EINVAL);
	assert_int_equal(aip_count(t), 0);
	assert_int_equal(aip_insert(t, AF_INET, a, 32, A), 0);
	assert_int_equal(aip_insert(t, AF_INET6, a, 128, A), 0);
	assert_null(aip_lookup(t, AF_UNIX, a));
	assert_false(aip_remove(t, AF_UNIX, a, 8, A));
	assert_false(aip_remove(t, AF_INET, a, 33, A));
	assert_int_equal(aip_count(t), 2);

	aip_free(t);
}

static void
test_remove(void **state)
{
	struct aip_table *t = aip_new();

	ins_ok(t, AF_INET, "10.0.0.0", 24, A);
	ins_ok(t, AF_INET, "10.0.1.0", 24, B);
	ins_ok(t, AF_INET, "10.0.0.0", 16, C);
	ins_ok(t, AF_INET, "10.0.0.128", 25, D);
	assert_int_equal(aip_count(t), 4);

	assert_false(rm(t, AF_INET, "10.0.0.0", 24, B));	/* wrong owner */
	assert_false(rm(t, AF_INET, "10.0.2.0", 24, A));	/* absent */
	assert_false(rm(t, AF_INET, "10.0.0.0", 25, A));	/* absent, shorter than a node */
	assert_false(rm(t, AF_INET6, "::a00:0", 120, A));	/* other family */
	assert_int_equal(aip_count(t), 4);

	/* Same length as a stored prefix and on its path, but different bits. */
	{
		struct aip_table *u = aip_new();

		ins_ok(u, AF_INET, "10.0.0.0", 24, A);
		assert_false(rm(u, AF_INET, "10.0.1.0", 24, A));
		ins_ok(u, AF_INET6, "2001:db8::1:0:0:0", 80, A);
		assert_false(rm(u, AF_INET6, "2001:db8::2:0:0:0", 80, A));
		assert_false(rm(u, AF_INET6, "2001:db9::1:0:0:0", 80, A));
		assert_int_equal(aip_count(u), 2);
		assert_true(rm(u, AF_INET, "10.0.0.0", 24, A));
		assert_true(rm(u, AF_INET6, "2001:db8::1:0:0:0", 80, A));
		assert_int_equal(aip_count(u), 0);
		aip_free(u);
	}

	/* Removing an inner prefix keeps what hangs below it. */
	assert_true(rm(t, AF_INET, "10.0.0.0", 24, A));
	assert_ptr_equal(look4(t, "10.0.0.1"), C);
	assert_ptr_equal(look4(t, "10.0.0.200"), D);
	assert_ptr_equal(look4(t, "10.0.1.1"), B);
	assert_false(rm(t, AF_INET, "10.0.0.0", 24, A));	/* already gone */

	assert_true(rm(t, AF_INET, "10.0.0.0", 16, C));
	assert_null(look4(t, "10.0.0.1"));
	assert_ptr_equal(look4(t, "10.0.0.200"), D);
	assert_ptr_equal(look4(t, "10.0.1.1"), B);

	assert_true(rm(t, AF_INET, "10.0.0.128", 25, D));
	assert_true(rm(t, AF_INET, "10.0.1.0", 24, B));
	assert_int_equal(aip_count(t), 0);
	assert_null(look4(t, "10.0.1.1"));

	/* The table is still usable once empty. */
	ins_ok(t, AF_INET, "10.0.0.0", 8, A);
	assert_ptr_equal(look4(t, "10.9.9.9"), A);

	aip_free(t);
}

struct seen {
	int n;
	int family[16];
	uint8_t addr[16][16];
	uint8_t cidr[16];
};

static int
collect(void *ctx, int family, const uint8_t *addr, uint8_t cidr)
{
	struct seen *s = ctx;

	assert_true(s->n < 16);
	s->family[s->n] = family;
	memcpy(s->addr[s->n], addr, (size_t)fam_len(family));
	s->cidr[s->n] = cidr;
	s->n++;
	return 0;
}

static bool
seen_has(const struct seen *s, int family, const char *str, uint8_t cidr)
{
	uint8_t a[16];

	parse(family, str, a);
	for (int i = 0; i < s->n; i++)
		if (s->family[i] == family && s->cidr[i] == cidr &&
		    memcmp(s->addr[i], a, (size_t)fam_len(family)) == 0)
			return true;
	return false;
}

static int
stop_after_two(void *ctx, int family, const uint8_t *addr, uint8_t cidr)
{
	int *calls = ctx;

	return ++*calls == 2 ? 42 : 0;
}

static void
test_walk_and_remove_owner(void **state)
{
	struct aip_table *t = aip_new();
	struct seen s = { 0 };
	int calls = 0;

	ins_ok(t, AF_INET, "10.1.2.3", 16, A);		/* reported as 10.1.0.0/16 */
	ins_ok(t, AF_INET, "10.1.2.0", 24, B);
	ins_ok(t, AF_INET, "100.64.0.1", 32, A);
	ins_ok(t, AF_INET, "0.0.0.0", 0, B);
	ins_ok(t, AF_INET6, "fd7a:115c:a1e0::1", 128, A);
	ins_ok(t, AF_INET6, "2001:db8::ffff", 32, A);	/* reported as 2001:db8::/32 */
	ins_ok(t, AF_INET6, "2001:db8:1::", 48, B);

	assert_int_equal(aip_walk_owner(t, A, collect, &s), 0);
	assert_int_equal(s.n, 4);
	assert_true(seen_has(&s, AF_INET, "10.1.0.0", 16));
	assert_true(seen_has(&s, AF_INET, "100.64.0.1", 32));
	assert_true(seen_has(&s, AF_INET6, "fd7a:115c:a1e0::1", 128));
	assert_true(seen_has(&s, AF_INET6, "2001:db8::", 32));

	memset(&s, 0, sizeof s);
	assert_int_equal(aip_walk_owner(t, C, collect, &s), 0);
	assert_int_equal(s.n, 0);

	/* A non-zero return stops the walk and is passed through. */
	assert_int_equal(aip_walk_owner(t, A, stop_after_two, &calls), 42);
	assert_int_equal(calls, 2);

	aip_remove_owner(t, A);
	assert_int_equal(aip_count(t), 3);
	assert_ptr_equal(look4(t, "10.1.9.9"), B);	/* falls back to the default */
	assert_ptr_equal(look4(t, "10.1.2.9"), B);
	assert_null(look6(t, "fd7a:115c:a1e0::1"));
	assert_null(look6(t, "2001:db8::1"));
	assert_ptr_equal(look6(t, "2001:db8:1::1"), B);
	memset(&s, 0, sizeof s);
	assert_int_equal(aip_walk_owner(t, A, collect, &s), 0);
	assert_int_equal(s.n, 0);

	/* Removing an owner with nothing left, or NULL, changes nothing. */
	aip_remove_owner(t, A);
	aip_remove_owner(t, NULL);
	assert_int_equal(aip_count(t), 3);

	aip_remove_owner(t, B);
	assert_int_equal(aip_count(t), 0);
	assert_null(look4(t, "10.1.2.9"));
	assert_null(look6(t, "2001:db8:1::1"));

	aip_free(t);
}

/*
 * Randomized comparison against a flat list of prefixes where lookup is a
 * linear scan for the longest match.  A fixed-seed xorshift keeps it
 * reproducible whatever the libc.  Addresses are drawn near a few bases so
 * that prefixes nest and branch a lot instead of scattering.
 */
struct ref_entry {
	uint8_t addr[16];
	uint8_t cidr;
	void *owner;
};

struct ref {
	int family;
	int bits;
	size_t n;
	struct ref_entry e[8192];
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t
rnd(void)
{
	uint64_t x = rng_state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static unsigned int
rnd_below(unsigned int n)
{
	return (unsigned int)(rnd() % n);
}

static void
mask_bytes(uint8_t *a, int len, unsigned int cidr)
{
	for (int i = 0; i < len; i++) {
		unsigned int start = (unsigned int)i * 8;

		if (cidr >= start + 8)
			continue;
		a[i] &= cidr <= start ? 0 : (uint8_t)(0xff00 >> (cidr - start));
	}
}

static bool
ref_matches(const uint8_t *prefix, unsigned int cidr, const uint8_t *a, int len)
{
	uint8_t tmp[16];

	memcpy(tmp, a, (size_t)len);
	mask_bytes(tmp, len, cidr);
	return memcmp(tmp, prefix, (size_t)len) == 0;
}

static void *
ref_lookup(const struct ref *r, const uint8_t *a)
{
	int len = fam_len(r->family), best = -1;
	void *owner = NULL;

	for (size_t i = 0; i < r->n; i++) {
		if ((int)r->e[i].cidr > best &&
		    ref_matches(r->e[i].addr, r->e[i].cidr, a, len)) {
			best = r->e[i].cidr;
			owner = r->e[i].owner;
		}
	}
	return owner;
}

static long
ref_find(const struct ref *r, const uint8_t *a, unsigned int cidr)
{
	uint8_t m[16] = { 0 };
	int len = fam_len(r->family);

	memcpy(m, a, (size_t)len);
	mask_bytes(m, len, cidr);
	for (size_t i = 0; i < r->n; i++)
		if (r->e[i].cidr == cidr && memcmp(r->e[i].addr, m, (size_t)len) == 0)
			return (long)i;
	return -1;
}

static void
ref_insert(struct ref *r, const uint8_t *a, unsigned int cidr, void *owner)
{
	long i = ref_find(r, a, cidr);
	int len = fam_len(r->family);

	if (i >= 0) {
		r->e[i].owner = owner;
		return;
	}
	assert_true(r->n < sizeof r->e / sizeof r->e[0]);
	memset(&r->e[r->n], 0, sizeof r->e[r->n]);
	memcpy(r->e[r->n].addr, a, (size_t)len);
	mask_bytes(r->e[r->n].addr, len, cidr);
	r->e[r->n].cidr = (uint8_t)cidr;
	r->e[r->n].owner = owner;
	r->n++;
}

static void
ref_delete_at(struct ref *r, size_t i)
{
	r->e[i] = r->e[--r->n];
}

static const uint8_t bases4[][4] = {
	{ 10, 0, 0, 0 }, { 10, 0, 1, 0 }, { 10, 128, 0, 0 }, { 100, 64, 0, 0 },
	{ 192, 168, 1, 0 }, { 0, 0, 0, 0 }, { 255, 255, 255, 255 }, { 11, 0, 0, 0 },
};
static const uint8_t bases6[][16] = {
	{ 0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0 },
	{ 0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0, 0, 0x80 },
	{ 0x20, 0x01, 0x0d, 0xb8 },
	{ 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 },
	{ 0 },
	{ 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff },
	{ 0xfe, 0x80 },
	{ 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff },
};

/* A base address with a few random bits flipped, mostly in the low half. */
static void
rand_addr(const struct ref *r, uint8_t a[16])
{
	int len = fam_len(r->family), flips = (int)rnd_below(6);
	/* IPv4 has few bits to play with, so flip over more of them. */
	unsigned int low = r->family == AF_INET ? 8 : 64;

	memset(a, 0, 16);
	if (r->family == AF_INET)
		memcpy(a, bases4[rnd_below(8)], 4);
	else
		memcpy(a, bases6[rnd_below(8)], 16);
	for (int i = 0; i < flips; i++) {
		unsigned int pos = rnd_below(4) == 0 ? rnd_below((unsigned int)r->bits) :
		    low + rnd_below((unsigned int)r->bits - low);

		a[pos / 8] ^= (uint8_t)(0x80 >> (pos % 8));
	}
	/* Sometimes a completely random address. */
	if (rnd_below(16) == 0)
		for (int i = 0; i < len; i++)
			a[i] = (uint8_t)rnd();
}

/*
 * Favour lengths at and around the bit positions rand_addr() flips.  Never
 * /0: a default route would answer every lookup, so random_family() adds
 * one only for a while.
 */
static unsigned int
rand_cidr(const struct ref *r)
{
	unsigned int low = r->family == AF_INET ? 8 : 64, pick = rnd_below(64);

	/* Short prefixes are rare, or they would cover every lookup. */
	if (pick == 0)
		return 1 + rnd_below((unsigned int)r->bits);
	if (pick < 5)
		return (unsigned int)r->bits;
	return low + rnd_below((unsigned int)r->bits - low + 1);
}

static void
check_lookups(struct aip_table *t, const struct ref *r, int n)
{
	uint8_t a[16];

	for (int i = 0; i < n; i++) {
		rand_addr(r, a);
		assert_ptr_equal(aip_lookup(t, r->family, a), ref_lookup(r, a));
	}
	/* Every stored prefix's own address must resolve to the longest match too. */
	for (size_t i = 0; i < r->n; i += 7)
		assert_ptr_equal(aip_lookup(t, r->family, r->e[i].addr),
		    ref_lookup(r, r->e[i].addr));
}

struct walk_check {
	const struct ref *r;
	const void *owner;
	size_t seen;
};

static int
walk_check(void *ctx, int family, const uint8_t *addr, uint8_t cidr)
{
	struct walk_check *w = ctx;
	long i;

	assert_int_equal(family, w->r->family);
	i = ref_find(w->r, addr, cidr);
	assert_true(i >= 0);
	/* Reported addresses are already masked. */
	assert_memory_equal(w->r->e[i].addr, addr, (size_t)fam_len(family));
	assert_ptr_equal(w->r->e[i].owner, w->owner);
	w->seen++;
	return 0;
}

static void
check_walks(struct aip_table *t, const struct ref *r)
{
	for (size_t p = 0; p < sizeof peers / sizeof peers[0]; p++) {
		struct walk_check w = { r, &peers[p], 0 };
		size_t want = 0;

		for (size_t i = 0; i < r->n; i++)
			want += r->e[i].owner == &peers[p];
		assert_int_equal(aip_walk_owner(t, &peers[p], walk_check, &w), 0);
		assert_int_equal(w.seen, want);
	}
}

static void
random_family(int family)
{
	struct aip_table *t = aip_new();
	struct ref *r = calloc(1, sizeof *r);
	uint8_t a[16];

	assert_non_null(t);
	assert_non_null(r);
	r->family = family;
	r->bits = family == AF_INET ? 32 : 128;

	for (int round = 0; round < 3; round++) {
		/* Only the middle round has a default route. */
		memset(a, 0, sizeof a);
		if (round == 1) {
			assert_int_equal(aip_insert(t, family, a, 0, &peers[7]), 0);
			ref_insert(r, a, 0, &peers[7]);
		} else if (round == 2) {
			/* Unless a removal below already took it. */
			long k = ref_find(r, a, 0);

			assert_int_equal(aip_remove(t, family, a, 0, &peers[7]), k >= 0);
			if (k >= 0)
				ref_delete_at(r, (size_t)k);
		}

		/* Inserts, many of them re-owning an existing prefix. */
		for (int i = 0; i < 3000; i++) {
			unsigned int cidr = rand_cidr(r);
			void *owner = &peers[rnd_below(8)];

			rand_addr(r, a);
			assert_int_equal(aip_insert(t, family, a, (uint8_t)cidr, owner), 0);
			ref_insert(r, a, cidr, owner);
		}
		assert_int_equal(aip_count(t), r->n);
		check_lookups(t, r, 3000);
		check_walks(t, r);

		/* Removals of existing prefixes, with the right or a wrong owner. */
		for (int i = 0; i < 700 && r->n > 0; i++) {
			size_t k = rnd_below((unsigned int)r->n);
			void *owner = rnd_below(4) == 0 ? &peers[rnd_below(8)] : r->e[k].owner;
			bool want = owner == r->e[k].owner;

			memcpy(a, r->e[k].addr, 16);
			/* Host bits must not matter to remove either. */
			if (r->e[k].cidr < r->bits && rnd_below(2) == 0) {
				unsigned int pos = r->e[k].cidr +
				    rnd_below((unsigned int)r->bits - r->e[k].cidr);

				a[pos / 8] ^= (uint8_t)(0x80 >> (pos % 8));
			}
			assert_int_equal(aip_remove(t, family, a, r->e[k].cidr, owner), want);
			if (want)
				ref_delete_at(r, k);
		}
		/* Near misses: a stored prefix with one bit inside it flipped. */
		for (int i = 0; i < 300 && r->n > 0; i++) {
			size_t k = rnd_below((unsigned int)r->n);
			unsigned int cidr = r->e[k].cidr, pos;
			long j;
			bool want;

			if (cidr == 0)
				continue;
			memcpy(a, r->e[k].addr, 16);
			pos = rnd_below(cidr);
			a[pos / 8] ^= (uint8_t)(0x80 >> (pos % 8));
			j = ref_find(r, a, cidr);
			want = j >= 0 && r->e[j].owner == r->e[k].owner;
			assert_int_equal(aip_remove(t, family, a, (uint8_t)cidr, r->e[k].owner),
			    want);
			if (want)
				ref_delete_at(r, (size_t)j);
		}
		/* Removals of random, mostly absent, prefixes. */
		for (int i = 0; i < 300; i++) {
			unsigned int cidr = rand_cidr(r);
			void *owner = &peers[rnd_below(8)];
			long k;
			bool want;

			rand_addr(r, a);
			k = ref_find(r, a, cidr);
			want = k >= 0 && r->e[k].owner == owner;
			assert_int_equal(aip_remove(t, family, a, (uint8_t)cidr, owner), want);
			if (want)
				ref_delete_at(r, (size_t)k);
		}
		assert_int_equal(aip_count(t), r->n);
		check_lookups(t, r, 3000);

		/* Drop one owner wholesale. */
		{
			void *owner = &peers[rnd_below(8)];

			aip_remove_owner(t, owner);
			for (size_t i = 0; i < r->n;) {
				if (r->e[i].owner == owner)
					ref_delete_at(r, i);
				else
					i++;
			}
		}
		assert_int_equal(aip_count(t), r->n);
		check_lookups(t, r, 3000);
		check_walks(t, r);
	}

	/* Empty the table one prefix at a time; nothing may be left behind. */
	while (r->n > 0) {
		size_t k = rnd_below((unsigned int)r->n);

		assert_true(aip_remove(t, family, r->e[k].addr, r->e[k].cidr, r->e[k].owner));
		ref_delete_at(r, k);
		if (r->n % 512 == 0)
			check_lookups(t, r, 200);
	}
	assert_int_equal(aip_count(t), 0);
	for (int i = 0; i < 200; i++) {
		rand_addr(r, a);
		assert_null(aip_lookup(t, family, a));
	}

	aip_free(t);
	free(r);
}

static void
test_random_v4(void **state)
{
	rng_state = 0x9e3779b97f4a7c15ULL;
	random_family(AF_INET);
}

static void
test_random_v6(void **state)
{
	rng_state = 0x0123456789abcdefULL;
	random_family(AF_INET6);
}

/* Both families in one table must not disturb each other. */
static void
test_random_mixed(void **state)
{
	struct aip_table *t = aip_new();
	uint8_t a[16];

	rng_state = 42;
	for (int i = 0; i < 2000; i++) {
		int family = rnd_below(2) ? AF_INET : AF_INET6;
		int bits = family == AF_INET ? 32 : 128;

		for (int j = 0; j < 16; j++)
			a[j] = (uint8_t)rnd();
		assert_int_equal(aip_insert(t, family, a, (uint8_t)rnd_below((unsigned)bits + 1),
		    &peers[rnd_below(8)]), 0);
	}
	ins_ok(t, AF_INET, "0.0.0.0", 0, A);
	ins_ok(t, AF_INET6, "::", 0, B);
	aip_remove_owner(t, C);
	aip_remove_owner(t, D);
	for (size_t p = 4; p < 8; p++)
		aip_remove_owner(t, &peers[p]);
	/* Whatever is left belongs to A or B and the defaults catch the rest. */
	for (int i = 0; i < 2000; i++) {
		void *o4, *o6;

		for (int j = 0; j < 16; j++)
			a[j] = (uint8_t)rnd();
		o4 = aip_lookup(t, AF_INET, a);
		o6 = aip_lookup(t, AF_INET6, a);
		assert_true(o4 == A || o4 == B);
		assert_true(o6 == A || o6 == B);
	}
	aip_remove_owner(t, A);
	aip_remove_owner(t, B);
	assert_int_equal(aip_count(t), 0);
	aip_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic_v4),
		cmocka_unit_test(test_basic_v6),
		cmocka_unit_test(test_default_routes),
		cmocka_unit_test(test_host_routes_and_edges),
		cmocka_unit_test(test_overlap_and_masking),
		cmocka_unit_test(test_reown),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_remove),
		cmocka_unit_test(test_walk_and_remove_owner),
		cmocka_unit_test(test_random_v4),
		cmocka_unit_test(test_random_v6),
		cmocka_unit_test(test_random_mixed),
	};

	return cmocka_run_group_tests_name("allowedips", tests, NULL, NULL);
}

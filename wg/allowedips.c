// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/util.h"
#include "wg/allowedips.h"

/*
 * A path-compressed binary trie per address family.
 *
 * Every node stands for one prefix: its address (host bits cleared) and
 * length.  A node's children hold strictly longer prefixes that share the
 * node's prefix, child[b] being the one whose bit at position node->cidr
 * is b.  Single-child chains are never stored: a node without an owner
 * exists only to branch and so always has two children; a node with an
 * owner may have zero, one or two.  Depth is therefore at most bits + 1,
 * which bounds both lookup time and the recursion in the walkers.
 *
 * Addresses are held as two host-order 64-bit words, most significant bit
 * first, IPv4 in the top 32 bits of hi.  A prefix test is then two masked
 * XORs per node, so a lookup costs O(depth) = O(address bits).
 */

struct addr128 {
	uint64_t hi, lo;
};

struct node {
	struct node *child[2];
	void *owner;		/* NULL: branching node, not a prefix of the table */
	struct addr128 key;	/* host bits beyond cidr are zero */
	uint8_t cidr;
};

struct aip_table {
	struct node *root4;
	struct node *root6;
	size_t count;
};

static int
family_bits(int family)
{
	switch (family) {
	case AF_INET:
		return 32;
	case AF_INET6:
		return 128;
	default:
		return -1;
	}
}

static struct node **
family_root(struct aip_table *t, int family)
{
	return family == AF_INET ? &t->root4 : &t->root6;
}

static struct addr128
load_addr(int family, const uint8_t *addr)
{
	struct addr128 a;

	if (family == AF_INET) {
		a.hi = (uint64_t)get_be32(addr) << 32;
		a.lo = 0;
	} else {
		a.hi = (uint64_t)get_be32(addr) << 32 | get_be32(addr + 4);
		a.lo = (uint64_t)get_be32(addr + 8) << 32 | get_be32(addr + 12);
	}
	return a;
}

static void
store_addr(uint8_t *out, int family, const struct addr128 *a)
{
	if (family == AF_INET) {
		put_be32(out, (uint32_t)(a->hi >> 32));
	} else {
		put_be64(out, a->hi);
		put_be64(out + 8, a->lo);
	}
}

/* Masks for the first cidr bits of each word; shifts by 64 would be undefined. */
static inline uint64_t
mask_hi(unsigned int cidr)
{
	if (cidr == 0)
		return 0;
	return cidr >= 64 ? ~(uint64_t)0 : ~(uint64_t)0 << (64 - cidr);
}

static inline uint64_t
mask_lo(unsigned int cidr)
{
	if (cidr <= 64)
		return 0;
	return cidr >= 128 ? ~(uint64_t)0 : ~(uint64_t)0 << (128 - cidr);
}

static inline struct addr128
mask_addr(struct addr128 a, unsigned int cidr)
{
	a.hi &= mask_hi(cidr);
	a.lo &= mask_lo(cidr);
	return a;
}

/* Does a lie inside the prefix key/cidr? */
static inline bool
prefix_contains(const struct addr128 *key, unsigned int cidr, const struct addr128 *a)
{
	return (((a->hi ^ key->hi) & mask_hi(cidr)) | ((a->lo ^ key->lo) & mask_lo(cidr))) == 0;
}

/* Bit i of a, counting from the most significant; i < 128. */
static inline unsigned int
bit_at(const struct addr128 *a, unsigned int i)
{
	if (i < 64)
		return (unsigned int)(a->hi >> (63 - i)) & 1;
	return (unsigned int)(a->lo >> (127 - i)) & 1;
}

/* Number of leading bits a and b share, at most limit. */
static unsigned int
common_bits(const struct addr128 *a, const struct addr128 *b, unsigned int limit)
{
	uint64_t x;
	unsigned int n;

	if ((x = a->hi ^ b->hi) != 0)
		n = (unsigned int)__builtin_clzll(x);
	else if ((x = a->lo ^ b->lo) != 0)
		n = 64 + (unsigned int)__builtin_clzll(x);
	else
		n = 128;
	return n < limit ? n : limit;
}

static struct node *
node_new(const struct addr128 *key, unsigned int cidr, void *owner)
{
	struct node *n = calloc(1, sizeof *n);

	if (n == NULL)
		return NULL;
	n->key = mask_addr(*key, cidr);
	n->cidr = (uint8_t)cidr;
	n->owner = owner;
	return n;
}

static void
free_tree(struct node *n)
{
	if (n == NULL)
		return;
	free_tree(n->child[0]);
	free_tree(n->child[1]);
	free(n);
}

struct aip_table *
aip_new(void)
{
	return calloc(1, sizeof(struct aip_table));
}

void
aip_free(struct aip_table *t)
{
	if (t == NULL)
		return;
	free_tree(t->root4);
	free_tree(t->root6);
	free(t);
}

int
aip_insert(struct aip_table *t, int family, const uint8_t *addr, uint8_t cidr, void *owner)
{
	struct node **link, *n, *leaf, *mid;
	struct addr128 key;
	int bits = family_bits(family);
	unsigned int common;

	/* A NULL owner would be indistinguishable from a branching node. */
	if (t == NULL || addr == NULL || owner == NULL || bits < 0 || cidr > bits)
		return -EINVAL;
	key = mask_addr(load_addr(family, addr), cidr);

	link = family_root(t, family);
	while ((n = *link) != NULL) {
		common = common_bits(&n->key, &key, MIN(n->cidr, cidr));
		if (common == n->cidr) {
			if (n->cidr == cidr) {
				/* Same prefix: it moves to the new owner, as in WireGuard. */
				if (n->owner == NULL)
					t->count++;
				n->owner = owner;
				return 0;
			}
			/* n's prefix contains ours; cidr > n->cidr, so the bit exists. */
			link = &n->child[bit_at(&key, n->cidr)];
			continue;
		}

		/* Here common < n->cidr, so the new prefix does not go below n. */
		if (common == cidr) {
			/* Ours contains n's: the new node takes n's place, n below it. */
			leaf = node_new(&key, cidr, owner);
			if (leaf == NULL)
				return -ENOMEM;
			leaf->child[bit_at(&n->key, cidr)] = n;
			*link = leaf;
			t->count++;
			return 0;
		}

		/* The prefixes diverge at bit common: branch there. */
		leaf = node_new(&key, cidr, owner);
		mid = node_new(&key, common, NULL);
		if (leaf == NULL || mid == NULL) {
			free(leaf);
			free(mid);
			return -ENOMEM;
		}
		mid->child[bit_at(&key, common)] = leaf;
		mid->child[bit_at(&n->key, common)] = n;
		*link = mid;
		t->count++;
		return 0;
	}

	leaf = node_new(&key, cidr, owner);
	if (leaf == NULL)
		return -ENOMEM;
	*link = leaf;
	t->count++;
	return 0;
}

/*
 * Fixes up the node at *link after its owner was cleared or a child was
 * unlinked: an ownerless node needs two children to be worth keeping.
 * Returns true if the node was freed.
 */
static bool
collapse(struct node **link)
{
	struct node *n = *link;

	if (n->owner != NULL || (n->child[0] != NULL && n->child[1] != NULL))
		return false;
	*link = n->child[0] != NULL ? n->child[0] : n->child[1];
	free(n);
	return true;
}

bool
aip_remove(struct aip_table *t, int family, const uint8_t *addr, uint8_t cidr, void *owner)
{
	struct node **link, **parent = NULL, *n;
	struct addr128 key;
	int bits = family_bits(family);

	if (t == NULL || addr == NULL || owner == NULL || bits < 0 || cidr > bits)
		return false;
	key = mask_addr(load_addr(family, addr), cidr);

	link = family_root(t, family);
	while ((n = *link) != NULL && n->cidr < cidr) {
		if (!prefix_contains(&n->key, n->cidr, &key))
			return false;
		parent = link;
		link = &n->child[bit_at(&key, n->cidr)];
	}
	if (n == NULL || n->cidr != cidr || n->owner != owner ||
	    n->key.hi != key.hi || n->key.lo != key.lo)
		return false;

	n->owner = NULL;
	t->count--;
	/*
	 * A freed leaf may leave its parent a branching node with a single
	 * child, which must go too.  Nothing further up changes: the parent's
	 * replacement has the same position and its own children are intact.
	 */
	if (collapse(link) && parent != NULL)
		collapse(parent);
	return true;
}

/* Post-order, so that children are settled before their parent is judged. */
static struct node *
prune_owner(struct node *n, const void *owner, size_t *removed)
{
	struct node *keep;

	if (n == NULL)
		return NULL;
	n->child[0] = prune_owner(n->child[0], owner, removed);
	n->child[1] = prune_owner(n->child[1], owner, removed);
	if (n->owner == owner) {
		n->owner = NULL;
		(*removed)++;
	}
	keep = n;
	collapse(&keep);
	return keep;
}

void
aip_remove_owner(struct aip_table *t, void *owner)
{
	size_t removed = 0;

	/* NULL marks branching nodes, which must not be counted as prefixes. */
	if (t == NULL || owner == NULL)
		return;
	t->root4 = prune_owner(t->root4, owner, &removed);
	t->root6 = prune_owner(t->root6, owner, &removed);
	t->count -= removed;
}

void *
aip_lookup(const struct aip_table *t, int family, const uint8_t *addr)
{
	const struct node *n;
	struct addr128 a;
	void *best = NULL;
	int bits = family_bits(family);

	if (t == NULL || addr == NULL || bits < 0)
		return NULL;
	a = load_addr(family, addr);

	/* Prefixes only lengthen going down, so the last match is the longest. */
	n = family == AF_INET ? t->root4 : t->root6;
	while (n != NULL && prefix_contains(&n->key, n->cidr, &a)) {
		if (n->owner != NULL)
			best = n->owner;
		if (n->cidr == bits)
			break;
		n = n->child[bit_at(&a, n->cidr)];
	}
	return best;
}

static int
walk(const struct node *n, int family, const void *owner, aip_walk_fn fn, void *ctx)
{
	uint8_t addr[16];
	int ret;

	if (n == NULL)
		return 0;
	/* owner is never NULL here, so branching nodes never match. */
	if (n->owner == owner) {
		store_addr(addr, family, &n->key);
		if ((ret = fn(ctx, family, addr, n->cidr)) != 0)
			return ret;
	}
	if ((ret = walk(n->child[0], family, owner, fn, ctx)) != 0)
		return ret;
	return walk(n->child[1], family, owner, fn, ctx);
}

int
aip_walk_owner(const struct aip_table *t, const void *owner, aip_walk_fn fn, void *ctx)
{
	int ret;

	if (t == NULL || owner == NULL)
		return 0;
	if ((ret = walk(t->root4, AF_INET, owner, fn, ctx)) != 0)
		return ret;
	return walk(t->root6, AF_INET6, owner, fn, ctx);
}

size_t
aip_count(const struct aip_table *t)
{
	return t == NULL ? 0 : t->count;
}

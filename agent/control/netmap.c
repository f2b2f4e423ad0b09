// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include <sodium.h>

#include "agent/control/mapresp.h"
#include "agent/control/netmap.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/util.h"

/*
 * Layout.  Each peer is one allocation: struct netmap_node followed by its
 * strings and arrays, packed exactly (about 450 bytes for a Headscale peer
 * with two addresses and two endpoints).  Peers sit in two hash tables with
 * intrusive chains (by node ID, and by node key through a keyed SipHash so
 * that a hostile server cannot pile keys into one bucket), so adding,
 * removing, patching or re-keying one peer is O(1).  A change that alters
 * a peer's variable-size data repacks that peer alone.  The DERP map, the
 * DNS configuration and each named filter live in an arena of their own,
 * replaced wholesale when the server sends a different one; "different" is
 * decided by a hash of the JSON bytes (Go marshals deterministically), so
 * Headscale resending DNSConfig with every policy change costs a hash, not
 * a rebuild, and is not reported as a change.
 */

#define NM_MIN_LOG2 4

struct nm_filter {
	struct netmap_filter f;
	uint8_t hash[16];
	struct mapresp_arena *ar;
};

struct netmap {
	struct netmap_node **by_id;
	struct netmap_node **by_key;
	size_t nb;			/* buckets in each table, a power of two */
	unsigned int nb_log2;
	size_t n_peers;
	uint64_t id_seed;
	unsigned char key_seed[crypto_shorthash_KEYBYTES];
	struct netmap_node *self;
	char *suffix;			/* MagicDNS suffix of self->name */

	uint32_t seq;			/* applies so far */
	struct netmap_change *log;
	size_t log_n, log_cap;
	uint32_t self_changes;

	bool has_derp, has_scores;
	struct netmap_derp_map derp;
	struct mapresp_arena *derp_ar;
	uint8_t regions_hash[16], scores_hash[16];

	bool has_dns;
	struct netmap_dns_config dns;
	struct mapresp_arena *dns_ar;
	uint8_t dns_hash[16];

	bool has_filter;
	struct nm_filter *filters;	/* sorted by name */
	struct netmap_filter *filter_view;
	size_t n_filters, filters_cap;

	struct netmap_user **users;
	size_t users_nb, n_users;

	char *domain;
	const char *const *health;
	size_t n_health;
	struct mapresp_arena *health_ar;
	int64_t control_time;
	int collect_services;

	netmap_clock_fn clock;
	void *clock_ctx;
	size_t mem;			/* nodes, users and tables */
};

/* ---- allocation helpers ---- */

static void *
aalloc(struct mapresp_arena *a, size_t n, size_t align)
{
	void *p = mapresp_arena_alloc(a, n == 0 ? 1 : n, align);

	if (p == NULL)
		fatal("netmap: out of memory");
	return p;
}

static const char *
astr(struct mapresp_arena *a, const char *s)
{
	char *d = mapresp_arena_strdup(a, s);

	if (d == NULL)
		fatal("netmap: out of memory");
	return d;
}

static struct mapresp_arena *
arena_new(void)
{
	struct mapresp_arena *a = mapresp_arena_new(0);

	if (a == NULL)
		fatal("netmap: out of memory");
	return a;
}

static int64_t
real_clock(void *ctx __attribute__((unused)))
{
	return (int64_t)(clock_real_ns() / NSEC_PER_MSEC);
}

/* ---- node packing ---- */

static inline size_t
str_bytes(const char *s)
{
	return s[0] != '\0' ? strlen(s) + 1 : 0;
}

static bool
prefixes_eq(const struct netmap_prefix *a, uint32_t na, const struct netmap_prefix *b, uint32_t nb)
{
	/* struct netmap_prefix is all bytes, no padding. */
	return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

static bool
endpoints_eq(const struct netmap_addrport *a, uint32_t na, const struct netmap_addrport *b,
    uint32_t nb)
{
	if (na != nb)
		return false;
	for (uint32_t i = 0; i < na; i++)
		if (a[i].family != b[i].family || a[i].port != b[i].port ||
		    memcmp(a[i].addr, b[i].addr, sizeof a[i].addr) != 0)
			return false;
	return true;
}

static bool
strs_eq(const char *const *a, uint32_t na, const char *const *b, uint32_t nb)
{
	if (na != nb)
		return false;
	for (uint32_t i = 0; i < na; i++)
		if (strcmp(a[i], b[i]) != 0)
			return false;
	return true;
}

static char *
put_str(unsigned char **p, const char *s)
{
	size_t n = str_bytes(s);
	char *d;

	if (n == 0)
		return (char *)"";
	d = (char *)*p;
	memcpy(d, s, n);
	*p += n;
	return d;
}

static const char *const *
put_strs(unsigned char **arr, unsigned char **strs, const char *const *src, uint32_t n)
{
	const char **d;

	if (n == 0)
		return NULL;
	d = (const char **)(void *)*arr;
	*arr += n * sizeof *d;
	for (uint32_t i = 0; i < n; i++)
		d[i] = put_str(strs, src[i]);
	return d;
}

static void *
put_mem(unsigned char **p, const void *src, size_t n)
{
	void *d;

	if (n == 0)
		return NULL;
	d = *p;
	memcpy(d, src, n);
	*p += n;
	return d;
}

/* Copies s (whose pointers may point anywhere) into one exact allocation.
 * Layout after the struct: pointer arrays, endpoints, prefixes, strings. */
static struct netmap_node *
node_pack(struct netmap *nm, const struct netmap_node *s)
{
	bool share = prefixes_eq(s->allowed_ips, s->n_allowed_ips, s->addrs, s->n_addrs);
	size_t ptrs = ((size_t)s->n_caps + s->n_tags) * sizeof(char *);
	size_t eps = (size_t)s->n_endpoints * sizeof(struct netmap_addrport);
	size_t pfx = ((size_t)s->n_addrs + (share ? 0 : s->n_allowed_ips) + s->n_primary_routes) *
	    sizeof(struct netmap_prefix);
	size_t strs = str_bytes(s->stable_id) + str_bytes(s->name) + str_bytes(s->hostname) +
	    str_bytes(s->os);
	size_t total;
	struct netmap_node *d;
	unsigned char *arr, *sp;

	for (uint32_t i = 0; i < s->n_caps; i++)
		strs += str_bytes(s->caps[i]);
	for (uint32_t i = 0; i < s->n_tags; i++)
		strs += str_bytes(s->tags[i]);
	total = sizeof *d + ptrs + eps + pfx + strs;
	d = xmalloc(total);
	*d = *s;
	d->id_next = d->key_next = NULL;
	d->id_pprev = d->key_pprev = NULL;
	d->mark = d->log_seq = d->log_idx = 0;
	d->size = (uint32_t)total;

	arr = (unsigned char *)(d + 1);
	sp = arr + ptrs + eps + pfx;
	d->caps = put_strs(&arr, &sp, s->caps, s->n_caps);
	d->tags = put_strs(&arr, &sp, s->tags, s->n_tags);
	d->endpoints = put_mem(&arr, s->endpoints, eps);
	d->addrs = put_mem(&arr, s->addrs, (size_t)s->n_addrs * sizeof *s->addrs);
	if (share)
		d->allowed_ips = d->addrs;
	else
		d->allowed_ips = put_mem(&arr, s->allowed_ips,
		    (size_t)s->n_allowed_ips * sizeof *s->allowed_ips);
	d->primary_routes = put_mem(&arr, s->primary_routes,
	    (size_t)s->n_primary_routes * sizeof *s->primary_routes);
	d->stable_id = put_str(&sp, s->stable_id);
	d->name = put_str(&sp, s->name);
	d->hostname = put_str(&sp, s->hostname);
	d->os = put_str(&sp, s->os);
	nm->mem += total;
	return d;
}

static void
node_free(struct netmap *nm, struct netmap_node *n)
{
	if (n == NULL)
		return;
	nm->mem -= n->size;
	free(n);
}

/* What differs between two versions of a node (enum netmap_node_change). */
static uint32_t
node_diff(const struct netmap_node *a, const struct netmap_node *b)
{
	uint32_t w = 0;
	const uint8_t other_flags = (uint8_t)~NETMAP_NODE_EXPIRED;

	if (memcmp(a->key, b->key, KEY_LEN) != 0)
		w |= NETMAP_PEER_KEY;
	if (memcmp(a->disco, b->disco, KEY_LEN) != 0)
		w |= NETMAP_PEER_DISCO;
	if (!endpoints_eq(a->endpoints, a->n_endpoints, b->endpoints, b->n_endpoints))
		w |= NETMAP_PEER_ENDPOINTS;
	if (a->home_derp != b->home_derp)
		w |= NETMAP_PEER_DERP;
	if (!prefixes_eq(a->addrs, a->n_addrs, b->addrs, b->n_addrs) ||
	    !prefixes_eq(a->allowed_ips, a->n_allowed_ips, b->allowed_ips, b->n_allowed_ips) ||
	    !prefixes_eq(a->primary_routes, a->n_primary_routes, b->primary_routes,
	    b->n_primary_routes))
		w |= NETMAP_PEER_ADDRS;
	if (a->online != b->online)
		w |= NETMAP_PEER_ONLINE;
	if (a->last_seen != b->last_seen)
		w |= NETMAP_PEER_LAST_SEEN;
	if (a->key_expiry != b->key_expiry || ((a->flags ^ b->flags) & NETMAP_NODE_EXPIRED))
		w |= NETMAP_PEER_EXPIRY;
	if (a->user != b->user || strcmp(a->name, b->name) != 0 ||
	    strcmp(a->stable_id, b->stable_id) != 0 || strcmp(a->hostname, b->hostname) != 0 ||
	    strcmp(a->os, b->os) != 0 || !strs_eq(a->tags, a->n_tags, b->tags, b->n_tags))
		w |= NETMAP_PEER_NAME;
	if (a->cap != b->cap || !strs_eq(a->caps, a->n_caps, b->caps, b->n_caps))
		w |= NETMAP_PEER_CAPS;
	if (memcmp(a->machine, b->machine, KEY_LEN) != 0 || a->created != b->created ||
	    ((a->flags ^ b->flags) & other_flags) || a->id != b->id)
		w |= NETMAP_PEER_OTHER;
	return w;
}

/* ---- peer tables ---- */

static inline size_t
id_bucket(const struct netmap *nm, int64_t id)
{
	uint64_t h = ((uint64_t)id ^ nm->id_seed) * 0x9e3779b97f4a7c15ULL;

	return (size_t)(h >> (64 - nm->nb_log2));
}

static inline size_t
key_bucket(const struct netmap *nm, const uint8_t key[static KEY_LEN])
{
	unsigned char h[crypto_shorthash_BYTES];

	crypto_shorthash(h, key, KEY_LEN, nm->key_seed);
	return (size_t)(get_le64(h) & (nm->nb - 1));
}

static void
key_link(struct netmap *nm, struct netmap_node *n)
{
	struct netmap_node **b = &nm->by_key[key_bucket(nm, n->key)];

	n->key_next = *b;
	if (*b != NULL)
		(*b)->key_pprev = &n->key_next;
	*b = n;
	n->key_pprev = b;
}

static void
key_unlink(struct netmap_node *n)
{
	*n->key_pprev = n->key_next;
	if (n->key_next != NULL)
		n->key_next->key_pprev = n->key_pprev;
}

static void
peer_link(struct netmap *nm, struct netmap_node *n)
{
	struct netmap_node **b = &nm->by_id[id_bucket(nm, n->id)];

	n->id_next = *b;
	if (*b != NULL)
		(*b)->id_pprev = &n->id_next;
	*b = n;
	n->id_pprev = b;
	key_link(nm, n);
}

static void
peer_unlink(struct netmap_node *n)
{
	*n->id_pprev = n->id_next;
	if (n->id_next != NULL)
		n->id_next->id_pprev = n->id_pprev;
	key_unlink(n);
}

static void
peers_rehash(struct netmap *nm, unsigned int log2)
{
	struct netmap_node **old = nm->by_id, *n, *next;
	size_t old_nb = nm->nb;

	free(nm->by_key);
	nm->mem -= 2 * old_nb * sizeof *old;
	nm->nb_log2 = log2;
	nm->nb = (size_t)1 << log2;
	nm->by_id = xcalloc(nm->nb, sizeof *nm->by_id);
	nm->by_key = xcalloc(nm->nb, sizeof *nm->by_key);
	nm->mem += 2 * nm->nb * sizeof *old;
	for (size_t i = 0; i < old_nb; i++)
		for (n = old[i]; n != NULL; n = next) {
			next = n->id_next;
			peer_link(nm, n);
		}
	free(old);
}

/* Keeps the load factor at most 1 for `want` peers (amortised O(1)). */
static void
peers_reserve(struct netmap *nm, size_t want)
{
	unsigned int log2 = nm->nb_log2;

	while (((size_t)1 << log2) < want)
		log2++;
	if (log2 != nm->nb_log2)
		peers_rehash(nm, log2);
}

static void
peers_maybe_shrink(struct netmap *nm)
{
	unsigned int log2 = NM_MIN_LOG2;

	if (nm->nb_log2 <= NM_MIN_LOG2 || nm->n_peers >= nm->nb / 8)
		return;
	while (((size_t)1 << log2) < nm->n_peers * 2)
		log2++;
	peers_rehash(nm, log2);
}

static struct netmap_node *
peer_find(const struct netmap *nm, int64_t id)
{
	struct netmap_node *n;

	for (n = nm->by_id[id_bucket(nm, id)]; n != NULL; n = n->id_next)
		if (n->id == id)
			return n;
	return NULL;
}

/* ---- change log ---- */

static void
log_node(struct netmap *nm, struct netmap_node *n, uint32_t what)
{
	if (what == 0)
		return;
	if (n->log_seq == nm->seq) {
		nm->log[n->log_idx].what |= what;
		return;
	}
	if (nm->log_n == nm->log_cap) {
		nm->log_cap = nm->log_cap ? nm->log_cap * 2 : 64;
		nm->log = xreallocarray(nm->log, nm->log_cap, sizeof *nm->log);
	}
	nm->log[nm->log_n].id = n->id;
	nm->log[nm->log_n].what = what;
	n->log_seq = nm->seq;
	n->log_idx = (uint32_t)nm->log_n++;
}

/* Swaps a repacked copy in for old, keeping its bookkeeping. */
static void
peer_replace(struct netmap *nm, struct netmap_node *old, struct netmap_node *n)
{
	peer_unlink(old);
	n->mark = old->mark;
	n->log_seq = old->log_seq;
	n->log_idx = old->log_idx;
	peer_link(nm, n);
	node_free(nm, old);
}

static void
peer_remove(struct netmap *nm, struct netmap_node *n)
{
	peer_unlink(n);
	nm->n_peers--;
	log_node(nm, n, NETMAP_PEER_REMOVED);
	node_free(nm, n);
}

/* PeersChanged semantics: the whole node replaces the old one by ID. */
static uint32_t
peer_upsert(struct netmap *nm, const struct netmap_node *src)
{
	struct netmap_node *old = peer_find(nm, src->id), *n;
	uint32_t what;

	if (old == NULL) {
		peers_reserve(nm, nm->n_peers + 1);
		n = node_pack(nm, src);
		n->mark = nm->seq;
		peer_link(nm, n);
		nm->n_peers++;
		log_node(nm, n, NETMAP_PEER_ADDED);
		return NETMAP_CHANGED_PEERS_ADDED;
	}
	old->mark = nm->seq;
	what = node_diff(old, src);
	if (what == 0)
		return 0;
	n = node_pack(nm, src);
	peer_replace(nm, old, n);
	log_node(nm, n, what);
	return NETMAP_CHANGED_PEERS_CHANGED;
}

static uint32_t
apply_patch(struct netmap *nm, const struct mapresp_patch *pc)
{
	struct netmap_node *n = peer_find(nm, pc->node_id);
	struct netmap_node v;
	uint32_t what = 0;
	bool repack = false;

	if (n == NULL)
		return 0;	/* map.go: patches for unknown peers are ignored */
	if ((pc->has & MAPRESP_PATCH_DERP) && n->home_derp != pc->derp_region) {
		n->home_derp = pc->derp_region;
		what |= NETMAP_PEER_DERP;
	}
	if ((pc->has & MAPRESP_PATCH_CAP) && n->cap != pc->cap) {
		n->cap = pc->cap;
		what |= NETMAP_PEER_CAPS;
	}
	if ((pc->has & MAPRESP_PATCH_KEY) && memcmp(n->key, pc->key, KEY_LEN) != 0) {
		key_unlink(n);
		memcpy(n->key, pc->key, KEY_LEN);
		key_link(nm, n);
		what |= NETMAP_PEER_KEY;
	}
	if ((pc->has & MAPRESP_PATCH_DISCO) && memcmp(n->disco, pc->disco, KEY_LEN) != 0) {
		memcpy(n->disco, pc->disco, KEY_LEN);
		what |= NETMAP_PEER_DISCO;
	}
	if (pc->has & MAPRESP_PATCH_ONLINE) {
		uint8_t o = pc->online ? NETMAP_ONLINE_YES : NETMAP_ONLINE_NO;

		if (n->online != o) {
			n->online = o;
			what |= NETMAP_PEER_ONLINE;
		}
	}
	if ((pc->has & MAPRESP_PATCH_LAST_SEEN) && n->last_seen != pc->last_seen) {
		n->last_seen = pc->last_seen;
		what |= NETMAP_PEER_LAST_SEEN;
	}
	if ((pc->has & MAPRESP_PATCH_KEY_EXPIRY) && n->key_expiry != pc->key_expiry) {
		n->key_expiry = pc->key_expiry;
		what |= NETMAP_PEER_EXPIRY;
	}

	v = *n;
	if ((pc->has & MAPRESP_PATCH_ENDPOINTS) &&
	    !endpoints_eq(n->endpoints, n->n_endpoints, pc->endpoints, pc->n_endpoints)) {
		v.endpoints = pc->endpoints;
		v.n_endpoints = pc->n_endpoints;
		what |= NETMAP_PEER_ENDPOINTS;
		repack = true;
	}
	if ((pc->has & MAPRESP_PATCH_CAPMAP) && !strs_eq(n->caps, n->n_caps, pc->caps,
	    pc->n_caps)) {
		v.caps = pc->caps;
		v.n_caps = pc->n_caps;
		what |= NETMAP_PEER_CAPS;
		repack = true;
	}
	if (repack) {
		struct netmap_node *p = node_pack(nm, &v);

		peer_replace(nm, n, p);
		n = p;
	}
	log_node(nm, n, what);
	return what != 0 ? NETMAP_CHANGED_PEERS_CHANGED : 0;
}

/* map.go updatePeersStateFromResponse, in its order. */
static uint32_t
apply_peers(struct netmap *nm, const struct mapresp *mr)
{
	uint32_t chg = 0;

	if (mr->n_peers > 0) {
		/* A non-empty Peers is the complete list and precludes every
		 * other peer delta in the message. */
		struct netmap_node *n, *next;

		peers_reserve(nm, MAX(nm->n_peers, (size_t)mr->n_peers));
		for (uint32_t i = 0; i < mr->n_peers; i++)
			chg |= peer_upsert(nm, &mr->peers[i]);
		for (size_t b = 0; b < nm->nb; b++)
			for (n = nm->by_id[b]; n != NULL; n = next) {
				next = n->id_next;
				if (n->mark != nm->seq) {
					peer_remove(nm, n);
					chg |= NETMAP_CHANGED_PEERS_REMOVED;
				}
			}
		return chg | NETMAP_CHANGED_PEERS_FULL;
	}
	for (uint32_t i = 0; i < mr->n_peers_removed; i++) {
		struct netmap_node *n = peer_find(nm, mr->peers_removed[i]);

		if (n != NULL) {
			peer_remove(nm, n);
			chg |= NETMAP_CHANGED_PEERS_REMOVED;
		}
	}
	for (uint32_t i = 0; i < mr->n_peers_changed; i++)
		chg |= peer_upsert(nm, &mr->peers_changed[i]);
	for (uint32_t i = 0; i < mr->n_seen_change; i++) {
		struct netmap_node *n = peer_find(nm, mr->seen_change[i].id);
		int64_t ls;

		if (n == NULL)
			continue;
		/* true: LastSeen = now; false: LastSeen = nil. */
		ls = mr->seen_change[i].value ? nm->clock(nm->clock_ctx) : 0;
		if (n->last_seen != ls) {
			n->last_seen = ls;
			log_node(nm, n, NETMAP_PEER_LAST_SEEN);
			chg |= NETMAP_CHANGED_PEERS_CHANGED;
		}
	}
	for (uint32_t i = 0; i < mr->n_online_change; i++) {
		struct netmap_node *n = peer_find(nm, mr->online_change[i].id);
		uint8_t o;

		if (n == NULL)
			continue;
		o = mr->online_change[i].value ? NETMAP_ONLINE_YES : NETMAP_ONLINE_NO;
		if (n->online != o) {
			n->online = o;
			log_node(nm, n, NETMAP_PEER_ONLINE);
			chg |= NETMAP_CHANGED_PEERS_CHANGED;
		}
	}
	for (uint32_t i = 0; i < mr->n_patches; i++)
		chg |= apply_patch(nm, &mr->patches[i]);
	return chg;
}

/* netmap.MagicDNSSuffixOfNodeName: strip all outer dots, drop the first
 * label; a single-label name is its own suffix. */
static char *
magic_dns_suffix(const char *name)
{
	size_t n = strlen(name);
	const char *dot;

	while (n > 0 && *name == '.') {
		name++;
		n--;
	}
	while (n > 0 && name[n - 1] == '.')
		n--;
	dot = memchr(name, '.', n);
	if (dot != NULL) {
		n -= (size_t)(dot + 1 - name);
		name = dot + 1;
	}
	{
		char *s = strndup(name, n);

		if (s == NULL)
			fatal("netmap: out of memory");
		return s;
	}
}

static uint32_t
apply_self(struct netmap *nm, const struct netmap_node *src)
{
	uint32_t what;
	struct netmap_node *n;

	if (nm->self == NULL) {
		what = NETMAP_PEER_ADDED;
	} else {
		what = node_diff(nm->self, src);
		if (what == 0)
			return 0;
	}
	n = node_pack(nm, src);
	node_free(nm, nm->self);
	nm->self = n;
	if (what & (NETMAP_PEER_ADDED | NETMAP_PEER_NAME)) {
		free(nm->suffix);
		nm->suffix = magic_dns_suffix(n->name);
	}
	nm->self_changes = what;
	return NETMAP_CHANGED_SELF;
}

/* ---- user profiles: upserted by ID, never removed (map.go) ---- */

static size_t
user_bucket(const struct netmap *nm, int64_t id)
{
	return (size_t)((((uint64_t)id ^ nm->id_seed) * 0x9e3779b97f4a7c15ULL) >> 32) &
	    (nm->users_nb - 1);
}

static struct netmap_user **
user_slot(const struct netmap *nm, int64_t id)
{
	struct netmap_user **pp = &nm->users[user_bucket(nm, id)];

	while (*pp != NULL && (*pp)->id != id)
		pp = &(*pp)->next;
	return pp;
}

static void
users_grow(struct netmap *nm)
{
	struct netmap_user **old = nm->users, *u, *next;
	size_t old_nb = nm->users_nb;

	nm->users_nb = old_nb * 2;
	nm->users = xcalloc(nm->users_nb, sizeof *nm->users);
	nm->mem += old_nb * sizeof *old;
	for (size_t i = 0; i < old_nb; i++)
		for (u = old[i]; u != NULL; u = next) {
			struct netmap_user **b = &nm->users[user_bucket(nm, u->id)];

			next = u->next;
			u->next = *b;
			*b = u;
		}
	free(old);
}

static uint32_t
apply_user(struct netmap *nm, const struct netmap_user *src)
{
	struct netmap_user **pp = user_slot(nm, src->id), *u;
	size_t ln = strlen(src->login_name) + 1, dn = strlen(src->display_name) + 1;
	char *p;

	if (*pp != NULL && strcmp((*pp)->login_name, src->login_name) == 0 &&
	    strcmp((*pp)->display_name, src->display_name) == 0)
		return 0;
	u = xmalloc(sizeof *u + ln + dn);
	p = (char *)(u + 1);
	u->id = src->id;
	u->login_name = memcpy(p, src->login_name, ln);
	u->display_name = memcpy(p + ln, src->display_name, dn);
	nm->mem += sizeof *u + ln + dn;
	if (*pp != NULL) {
		struct netmap_user *old = *pp;

		u->next = old->next;
		*pp = u;
		nm->mem -= sizeof *old + strlen(old->login_name) + strlen(old->display_name) + 2;
		free(old);
	} else {
		u->next = NULL;
		*pp = u;
		if (++nm->n_users > nm->users_nb)
			users_grow(nm);
	}
	return NETMAP_CHANGED_USERS;
}

/* ---- DERP map ---- */

static void
copy_regions(struct mapresp_arena *a, struct netmap_derp_map *d, const struct netmap_derp_map *s)
{
	struct netmap_derp_region *rg;

	d->n_regions = s->n_regions;
	d->omit_default_regions = s->omit_default_regions;
	d->regions = NULL;
	if (s->n_regions == 0)
		return;
	rg = aalloc(a, s->n_regions * sizeof *rg, alignof(struct netmap_derp_region));
	for (uint32_t i = 0; i < s->n_regions; i++) {
		const struct netmap_derp_region *sr = &s->regions[i];
		struct netmap_derp_node *dn = NULL;

		rg[i] = *sr;
		rg[i].code = astr(a, sr->code);
		rg[i].name = astr(a, sr->name);
		if (sr->n_nodes > 0)
			dn = aalloc(a, sr->n_nodes * sizeof *dn, alignof(struct netmap_derp_node));
		for (uint32_t k = 0; k < sr->n_nodes; k++) {
			dn[k] = sr->nodes[k];
			dn[k].name = astr(a, sr->nodes[k].name);
			dn[k].hostname = astr(a, sr->nodes[k].hostname);
			dn[k].cert_name = astr(a, sr->nodes[k].cert_name);
			dn[k].ipv4 = astr(a, sr->nodes[k].ipv4);
			dn[k].ipv6 = astr(a, sr->nodes[k].ipv6);
		}
		rg[i].nodes = dn;
	}
	d->regions = rg;
}

static void
copy_scores(struct mapresp_arena *a, struct netmap_derp_map *d, const struct netmap_derp_map *s)
{
	struct netmap_derp_score *sc = NULL;

	if (s->n_scores > 0) {
		sc = aalloc(a, s->n_scores * sizeof *sc, alignof(struct netmap_derp_score));
		memcpy(sc, s->scores, s->n_scores * sizeof *sc);
	}
	d->scores = sc;
	d->n_scores = s->n_scores;
}

/* map.go: a DERPMap with null Regions keeps the old regions (and
 * omitDefaultRegions); a null HomeParams (or RegionScore) keeps the old
 * scores (capver 65). */
static uint32_t
apply_derp(struct netmap *nm, const struct mapresp_derp *d)
{
	struct netmap_derp_map m;
	struct mapresp_arena *a;
	bool regions_new = d->has_regions && (!nm->has_derp ||
	    memcmp(d->regions_hash, nm->regions_hash, 16) != 0 ||
	    d->map.omit_default_regions != nm->derp.omit_default_regions);
	bool scores_new = d->has_scores && (!nm->has_scores ||
	    memcmp(d->scores_hash, nm->scores_hash, 16) != 0);

	if (nm->has_derp && !regions_new && !scores_new)
		return 0;
	memset(&m, 0, sizeof m);
	a = arena_new();
	if (d->has_regions)
		copy_regions(a, &m, &d->map);
	else if (nm->has_derp)
		copy_regions(a, &m, &nm->derp);
	if (d->has_scores)
		copy_scores(a, &m, &d->map);
	else if (nm->has_scores)
		copy_scores(a, &m, &nm->derp);
	mapresp_arena_free(nm->derp_ar);
	nm->derp_ar = a;
	nm->derp = m;
	if (d->has_regions)
		memcpy(nm->regions_hash, d->regions_hash, 16);
	if (d->has_scores) {
		memcpy(nm->scores_hash, d->scores_hash, 16);
		nm->has_scores = true;
	}
	nm->has_derp = true;
	return NETMAP_CHANGED_DERP;
}

/* ---- DNS ---- */

static const struct netmap_dns_resolver *
copy_resolvers(struct mapresp_arena *a, const struct netmap_dns_resolver *s, uint32_t n)
{
	struct netmap_dns_resolver *d;

	if (n == 0)
		return NULL;
	d = aalloc(a, n * sizeof *d, alignof(struct netmap_dns_resolver));
	for (uint32_t i = 0; i < n; i++) {
		d[i] = s[i];
		d[i].addr = astr(a, s[i].addr);
	}
	return d;
}

static const char *const *
copy_strs(struct mapresp_arena *a, const char *const *s, uint32_t n)
{
	const char **d;

	if (n == 0)
		return NULL;
	d = aalloc(a, n * sizeof *d, alignof(const char *));
	for (uint32_t i = 0; i < n; i++)
		d[i] = astr(a, s[i]);
	return d;
}

static uint32_t
apply_dns(struct netmap *nm, const struct netmap_dns_config *s, const uint8_t hash[16])
{
	struct mapresp_arena *a;
	struct netmap_dns_config d;

	if (nm->has_dns && memcmp(nm->dns_hash, hash, 16) == 0)
		return 0;
	a = arena_new();
	d = *s;
	d.resolvers = copy_resolvers(a, s->resolvers, s->n_resolvers);
	d.fallback = copy_resolvers(a, s->fallback, s->n_fallback);
	d.domains = copy_strs(a, s->domains, s->n_domains);
	d.cert_domains = copy_strs(a, s->cert_domains, s->n_cert_domains);
	d.routes = NULL;
	if (s->n_routes > 0) {
		struct netmap_dns_route *rt = aalloc(a, s->n_routes * sizeof *rt,
		    alignof(struct netmap_dns_route));

		for (uint32_t i = 0; i < s->n_routes; i++) {
			rt[i].suffix = astr(a, s->routes[i].suffix);
			rt[i].n_resolvers = s->routes[i].n_resolvers;
			rt[i].resolvers = copy_resolvers(a, s->routes[i].resolvers,
			    s->routes[i].n_resolvers);
		}
		d.routes = rt;
	}
	d.records = NULL;
	if (s->n_records > 0) {
		struct netmap_dns_record *rec = aalloc(a, s->n_records * sizeof *rec,
		    alignof(struct netmap_dns_record));

		for (uint32_t i = 0; i < s->n_records; i++) {
			rec[i].name = astr(a, s->records[i].name);
			rec[i].type = astr(a, s->records[i].type);
			rec[i].value = astr(a, s->records[i].value);
		}
		d.records = rec;
	}
	mapresp_arena_free(nm->dns_ar);
	nm->dns_ar = a;
	nm->dns = d;
	memcpy(nm->dns_hash, hash, 16);
	nm->has_dns = true;
	return NETMAP_CHANGED_DNS;
}

/* ---- packet filters ---- */

static const struct netmap_filter_rule *
copy_rules(struct mapresp_arena *a, const struct netmap_filter_rule *s, uint32_t n)
{
	struct netmap_filter_rule *d;

	if (n == 0)
		return NULL;
	d = aalloc(a, n * sizeof *d, alignof(struct netmap_filter_rule));
	for (uint32_t i = 0; i < n; i++) {
		d[i] = s[i];
		d[i].src_ips = copy_strs(a, s[i].src_ips, s[i].n_src_ips);
		d[i].src_bits = NULL;
		if (s[i].n_src_bits > 0) {
			int32_t *b = aalloc(a, s[i].n_src_bits * sizeof *b, alignof(int32_t));

			memcpy(b, s[i].src_bits, s[i].n_src_bits * sizeof *b);
			d[i].src_bits = b;
		}
		d[i].ip_proto = NULL;
		if (s[i].n_ip_proto > 0) {
			int32_t *p = aalloc(a, s[i].n_ip_proto * sizeof *p, alignof(int32_t));

			memcpy(p, s[i].ip_proto, s[i].n_ip_proto * sizeof *p);
			d[i].ip_proto = p;
		}
		d[i].dst_ports = NULL;
		if (s[i].n_dst_ports > 0) {
			struct netmap_dst_ports *dp = aalloc(a, s[i].n_dst_ports * sizeof *dp,
			    alignof(struct netmap_dst_ports));

			for (uint32_t k = 0; k < s[i].n_dst_ports; k++) {
				dp[k] = s[i].dst_ports[k];
				dp[k].ip = astr(a, s[i].dst_ports[k].ip);
			}
			d[i].dst_ports = dp;
		}
	}
	return d;
}

/* Index of name, or -(insertion point) - 1. */
static ssize_t
filter_find(const struct netmap *nm, const char *name)
{
	size_t lo = 0, hi = nm->n_filters;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(nm->filters[mid].f.name, name);

		if (c == 0)
			return (ssize_t)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -(ssize_t)lo - 1;
}

static bool
filter_set(struct netmap *nm, const char *name, const struct netmap_filter_rule *rules,
    uint32_t n, const uint8_t hash[16])
{
	ssize_t i = filter_find(nm, name);
	struct nm_filter *f;

	if (i >= 0) {
		f = &nm->filters[i];
		if (memcmp(f->hash, hash, 16) == 0)
			return false;
		mapresp_arena_free(f->ar);
	} else {
		size_t at = (size_t)(-i - 1);

		if (nm->n_filters == nm->filters_cap) {
			nm->filters_cap = nm->filters_cap ? nm->filters_cap * 2 : 4;
			nm->filters = xreallocarray(nm->filters, nm->filters_cap,
			    sizeof *nm->filters);
		}
		memmove(&nm->filters[at + 1], &nm->filters[at],
		    (nm->n_filters - at) * sizeof *nm->filters);
		nm->n_filters++;
		f = &nm->filters[at];
	}
	f->ar = arena_new();
	f->f.name = astr(f->ar, name);
	f->f.n_rules = n;
	f->f.rules = copy_rules(f->ar, rules, n);
	memcpy(f->hash, hash, 16);
	return true;
}

static bool
filter_del(struct netmap *nm, const char *name)
{
	ssize_t i = filter_find(nm, name);

	if (i < 0)
		return false;
	mapresp_arena_free(nm->filters[i].ar);
	memmove(&nm->filters[i], &nm->filters[i + 1],
	    (nm->n_filters - (size_t)i - 1) * sizeof *nm->filters);
	nm->n_filters--;
	return true;
}

/* map.go: PacketFilter (legacy) sets "base"; then PacketFilters, where
 * "*": null (its final value, as in a Go map) clears every chunk first,
 * null deletes a chunk and a list replaces it. */
static uint32_t
apply_filters(struct netmap *nm, const struct mapresp *mr)
{
	bool changed = false;
	bool clear = false;

	if (mr->has & MAPRESP_HAS_PACKET_FILTER)
		changed |= filter_set(nm, "base", mr->packet_filter, mr->n_packet_filter,
		    mr->packet_filter_hash);
	if (mr->has & MAPRESP_HAS_PACKET_FILTERS) {
		for (uint32_t i = 0; i < mr->n_packet_filters; i++)
			if (strcmp(mr->packet_filters[i].name, "*") == 0)
				clear = mr->packet_filters[i].is_null;
		if (clear) {
			while (nm->n_filters > 0)
				changed |= filter_del(nm, nm->filters[nm->n_filters - 1].f.name);
		}
		for (uint32_t i = 0; i < mr->n_packet_filters; i++) {
			const struct mapresp_filter *f = &mr->packet_filters[i];

			if (strcmp(f->name, "*") == 0)
				continue;
			if (f->is_null)
				changed |= filter_del(nm, f->name);
			else
				changed |= filter_set(nm, f->name, f->rules, f->n_rules, f->hash);
		}
	}
	if (!(mr->has & (MAPRESP_HAS_PACKET_FILTER | MAPRESP_HAS_PACKET_FILTERS)))
		return 0;
	if (!nm->has_filter)
		changed = true;
	nm->has_filter = true;
	if (!changed)
		return 0;
	free(nm->filter_view);
	nm->filter_view = xcalloc(MAX(nm->n_filters, (size_t)1), sizeof *nm->filter_view);
	for (size_t i = 0; i < nm->n_filters; i++)
		nm->filter_view[i] = nm->filters[i].f;
	return NETMAP_CHANGED_FILTER;
}

static uint32_t
apply_health(struct netmap *nm, const struct mapresp *mr)
{
	struct mapresp_arena *a;

	if (strs_eq(nm->health, (uint32_t)nm->n_health, mr->health, mr->n_health))
		return 0;
	a = arena_new();
	nm->health = copy_strs(a, mr->health, mr->n_health);
	nm->n_health = mr->n_health;
	mapresp_arena_free(nm->health_ar);
	nm->health_ar = a;
	return NETMAP_CHANGED_HEALTH;
}

/* ---- public ---- */

struct netmap *
netmap_new(void)
{
	struct netmap *nm;

	if (sodium_init() < 0)
		fatal("netmap: libsodium init failed");
	nm = xcalloc(1, sizeof *nm);
	randombytes_buf(&nm->id_seed, sizeof nm->id_seed);
	randombytes_buf(nm->key_seed, sizeof nm->key_seed);
	nm->nb_log2 = NM_MIN_LOG2;
	nm->nb = (size_t)1 << NM_MIN_LOG2;
	nm->by_id = xcalloc(nm->nb, sizeof *nm->by_id);
	nm->by_key = xcalloc(nm->nb, sizeof *nm->by_key);
	nm->users_nb = 16;
	nm->users = xcalloc(nm->users_nb, sizeof *nm->users);
	nm->mem = 2 * nm->nb * sizeof *nm->by_id + nm->users_nb * sizeof *nm->users;
	nm->domain = xstrdup("");
	nm->suffix = xstrdup("");
	nm->collect_services = -1;
	nm->clock = real_clock;
	return nm;
}

void
netmap_free(struct netmap *nm)
{
	struct netmap_node *n, *next;
	struct netmap_user *u, *unext;

	if (nm == NULL)
		return;
	for (size_t b = 0; b < nm->nb; b++)
		for (n = nm->by_id[b]; n != NULL; n = next) {
			next = n->id_next;
			free(n);
		}
	for (size_t b = 0; b < nm->users_nb; b++)
		for (u = nm->users[b]; u != NULL; u = unext) {
			unext = u->next;
			free(u);
		}
	for (size_t i = 0; i < nm->n_filters; i++)
		mapresp_arena_free(nm->filters[i].ar);
	free(nm->filters);
	free(nm->filter_view);
	mapresp_arena_free(nm->derp_ar);
	mapresp_arena_free(nm->dns_ar);
	mapresp_arena_free(nm->health_ar);
	free(nm->self);
	free(nm->by_id);
	free(nm->by_key);
	free(nm->users);
	free(nm->log);
	free(nm->domain);
	free(nm->suffix);
	free(nm);
}

void
netmap_set_clock(struct netmap *nm, netmap_clock_fn fn, void *ctx)
{
	nm->clock = fn != NULL ? fn : real_clock;
	nm->clock_ctx = ctx;
}

/*
 * Go's order (map.go updateStateFromResponse): peers first, then the self
 * node, user profiles, DERP map, packet filters, DNS, and the scalars.
 * Absent fields mean "unchanged" throughout (capver >= 15/18/65/81).
 */
uint32_t
netmap_apply(struct netmap *nm, const struct mapresp *mr)
{
	uint32_t chg = 0;

	nm->seq++;
	nm->log_n = 0;
	nm->self_changes = 0;
	/* A burst of changes (a full map) leaves a big log behind; give it
	 * back once messages are small again. */
	if (nm->log_cap > 4096) {
		free(nm->log);
		nm->log = NULL;
		nm->log_cap = 0;
	}
	if (mr->has & MAPRESP_HAS_CONTROL_TIME)
		nm->control_time = mr->control_time;
	/* A keep-alive carries nothing else the netmap honours (§4.4). */
	if (mr->keep_alive)
		return 0;

	chg |= apply_peers(nm, mr);
	peers_maybe_shrink(nm);
	if (mr->node != NULL)
		chg |= apply_self(nm, mr->node);
	for (uint32_t i = 0; i < mr->n_user_profiles; i++)
		chg |= apply_user(nm, &mr->user_profiles[i]);
	if (mr->derp != NULL)
		chg |= apply_derp(nm, mr->derp);
	chg |= apply_filters(nm, mr);
	if (mr->dns != NULL)
		chg |= apply_dns(nm, mr->dns, mr->dns_hash);
	if ((mr->has & MAPRESP_HAS_COLLECT_SERVICES) &&
	    nm->collect_services != (int)mr->collect_services) {
		nm->collect_services = mr->collect_services;
		chg |= NETMAP_CHANGED_COLLECT_SERVICES;
	}
	/* An empty Domain means unchanged (map.go). */
	if (mr->domain != NULL && mr->domain[0] != '\0' && strcmp(nm->domain, mr->domain) != 0) {
		free(nm->domain);
		nm->domain = xstrdup(mr->domain);
		chg |= NETMAP_CHANGED_DOMAIN;
	}
	if (mr->has & MAPRESP_HAS_HEALTH)
		chg |= apply_health(nm, mr);
	return chg;
}

const struct netmap_change *
netmap_changes(const struct netmap *nm, size_t *n)
{
	*n = nm->log_n;
	return nm->log;
}

uint32_t
netmap_self_changes(const struct netmap *nm)
{
	return nm->self_changes;
}

const struct netmap_node *
netmap_self(const struct netmap *nm)
{
	return nm->self;
}

size_t
netmap_peer_count(const struct netmap *nm)
{
	return nm->n_peers;
}

const struct netmap_node *
netmap_peer(const struct netmap *nm, int64_t id)
{
	return peer_find(nm, id);
}

const struct netmap_node *
netmap_peer_by_key(const struct netmap *nm, const uint8_t key[static KEY_LEN])
{
	const struct netmap_node *n;

	for (n = nm->by_key[key_bucket(nm, key)]; n != NULL; n = n->key_next)
		if (sodium_memcmp(n->key, key, KEY_LEN) == 0)
			return n;
	return NULL;
}

const struct netmap_node *
netmap_iter_next(const struct netmap *nm, struct netmap_iter *it)
{
	const struct netmap_node *n = it->next;

	while (n == NULL) {
		if (it->bucket >= nm->nb)
			return NULL;
		n = nm->by_id[it->bucket++];
	}
	it->next = n->id_next;
	return n;
}

const struct netmap_derp_map *
netmap_derp_map(const struct netmap *nm)
{
	return nm->has_derp ? &nm->derp : NULL;
}

const struct netmap_dns_config *
netmap_dns(const struct netmap *nm)
{
	return &nm->dns;
}

size_t
netmap_filters(const struct netmap *nm, const struct netmap_filter **out)
{
	*out = nm->filter_view;
	return nm->n_filters;
}

bool
netmap_has_filter(const struct netmap *nm)
{
	return nm->has_filter;
}

const struct netmap_user *
netmap_user(const struct netmap *nm, int64_t id)
{
	return *user_slot(nm, id);
}

size_t
netmap_user_count(const struct netmap *nm)
{
	return nm->n_users;
}

const char *
netmap_domain(const struct netmap *nm)
{
	return nm->domain;
}

size_t
netmap_health(const struct netmap *nm, const char *const **out)
{
	*out = nm->health;
	return nm->n_health;
}

int64_t
netmap_control_time(const struct netmap *nm)
{
	return nm->control_time;
}

int
netmap_collect_services(const struct netmap *nm)
{
	return nm->collect_services;
}

const char *
netmap_magic_dns_suffix(const struct netmap *nm)
{
	return nm->suffix;
}

/* ---- display names (tailcfg.go InitDisplayNames, util/dnsname) ---- */

static bool
is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool
has_suffix(const char *s, size_t n, const char *suf, size_t sn)
{
	return n >= sn && memcmp(s + n - sn, suf, sn) == 0;
}

/* dnsname.SanitizeHostname: TrimCommonSuffixes, then SanitizeLabel. */
static size_t
sanitize_hostname(const char *h, char out[64])
{
	size_t n = strlen(h), start = 0, end, o = 0;

	if (has_suffix(h, n, ".local", 6))
		n -= 6;
	if (has_suffix(h, n, ".localdomain", 12))
		n -= 12;
	if (has_suffix(h, n, ".lan", 4))
		n -= 4;
	end = MIN(n, (size_t)63);
	while (start < end && !is_alnum((unsigned char)h[start]))
		start++;
	while (start < end && !is_alnum((unsigned char)h[end - 1]))
		end--;
	for (size_t i = start; i < end; i++) {
		unsigned char c = (unsigned char)h[i];
		bool boundary = i == start || i == end - 1;

		if (!boundary && (c == ' ' || c == '.' || c == '@' || c == '_'))
			out[o++] = '-';
		else if (is_alnum(c) || c == '-')
			out[o++] = (char)(c >= 'A' && c <= 'Z' ? c + 'a' - 'A' : c);
	}
	out[o] = '\0';
	return o;
}

/* dnsname.TrimSuffix(name, suffix): returns the length of the kept prefix. */
static size_t
trim_dns_suffix(const char *name, const char *suffix)
{
	size_t n = strlen(name), sn = strlen(suffix), base, k = n;
	const char *s = suffix;

	/* HasSuffix: one trailing dot off name; one trailing and one leading
	 * dot off suffix; then name must end in "." + suffix. */
	if (k > 0 && name[k - 1] == '.')
		k--;
	if (sn > 0 && s[sn - 1] == '.')
		sn--;
	if (sn > 0 && s[0] == '.') {
		s++;
		sn--;
	}
	base = has_suffix(name, k, s, sn) ? k - sn : k;
	if (base < k && base > 0 && name[base - 1] == '.') {
		/* Trim: all outer dots off suffix this time. */
		s = suffix;
		sn = strlen(suffix);
		while (sn > 0 && *s == '.') {
			s++;
			sn--;
		}
		while (sn > 0 && s[sn - 1] == '.')
			sn--;
		n = k;
		if (has_suffix(name, n, s, sn))
			n -= sn;
	}
	if (n > 0 && name[n - 1] == '.')
		n--;
	return n;
}

size_t
netmap_computed_name(const struct netmap *nm, const struct netmap_node *n, bool with_host,
    char *buf, size_t len)
{
	char host[64], keyname[8 + 2 * KEY_LEN + 1];
	const char *name = n->name;
	size_t name_len = trim_dns_suffix(n->name, nm->suffix);
	size_t host_len = sanitize_hostname(n->hostname, host);
	int r;

	if (name_len == host_len && strncasecmp(name, host, name_len) == 0)
		host_len = 0;
	if (name_len == 0) {
		if (host_len != 0) {
			name = host;
			name_len = host_len;
			host_len = 0;
		} else {
			memcpy(keyname, "nodekey:", 8);
			key_to_hex(keyname + 8, n->key);
			name = keyname;
			name_len = strlen(keyname);
		}
	}
	if (with_host && host_len != 0)
		r = snprintf(buf, len, "%.*s (%.*s)", (int)name_len, name, (int)host_len, host);
	else
		r = snprintf(buf, len, "%.*s", (int)name_len, name);
	return r < 0 ? 0 : (size_t)r;
}

bool
netmap_node_has_cap(const struct netmap_node *n, const char *cap)
{
	size_t lo = 0, hi = n->n_caps;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(n->caps[mid], cap);

		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

size_t
netmap_mem_usage(const struct netmap *nm)
{
	size_t m = sizeof *nm + nm->mem + nm->log_cap * sizeof *nm->log +
	    mapresp_arena_size(nm->derp_ar) + mapresp_arena_size(nm->dns_ar) +
	    mapresp_arena_size(nm->health_ar) +
	    nm->filters_cap * sizeof *nm->filters + nm->n_filters * sizeof *nm->filter_view;

	for (size_t i = 0; i < nm->n_filters; i++)
		m += mapresp_arena_size(nm->filters[i].ar);
	return m;
}

int
netmap_check(const struct netmap *nm)
{
	size_t count = 0, kcount = 0, ucount = 0;
	const struct netmap_node *n;
	const struct netmap_user *u;

	if (nm->nb != (size_t)1 << nm->nb_log2 || nm->n_peers > nm->nb)
		return -1;
	for (size_t b = 0; b < nm->nb; b++) {
		for (n = nm->by_id[b]; n != NULL; n = n->id_next) {
			if (*n->id_pprev != n || id_bucket(nm, n->id) != b)
				return -1;
			if (*n->key_pprev != n || peer_find(nm, n->id) == NULL)
				return -1;
			if (n->n_allowed_ips > 0 && n->allowed_ips == NULL)
				return -1;
			count++;
		}
		for (n = nm->by_key[b]; n != NULL; n = n->key_next) {
			if (*n->key_pprev != n || key_bucket(nm, n->key) != b)
				return -1;
			kcount++;
		}
	}
	if (count != nm->n_peers || kcount != nm->n_peers)
		return -1;
	for (size_t b = 0; b < nm->users_nb; b++)
		for (u = nm->users[b]; u != NULL; u = u->next) {
			if (user_bucket(nm, u->id) != b)
				return -1;
			ucount++;
		}
	if (ucount != nm->n_users)
		return -1;
	for (size_t i = 1; i < nm->n_filters; i++)
		if (strcmp(nm->filters[i - 1].f.name, nm->filters[i].f.name) >= 0)
			return -1;
	for (size_t i = 0; i < nm->log_n; i++)
		if (nm->log[i].what == 0)
			return -1;
	return 0;
}

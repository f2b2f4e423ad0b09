// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/virtio_net.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "wg/offload.h"

_Static_assert(sizeof(struct virtio_net_hdr) == OFFLOAD_VNET_HDR_LEN,
    "vnet header size");

#define TCP_FIN		0x01
#define TCP_PSH		0x08
#define TCP_ACK		0x10
#define TCP_CWR		0x80
#define TCP_CSUM_OFF	16	/* offsetof(struct tcphdr, check) */
/* VIRTIO_NET_HDR_GSO_UDP_L4, missing from older <linux/virtio_net.h>. */
#define GSO_UDP_L4	5

/*
 * The sum is kept in "native" order: 16-bit words as the CPU loads them.
 * One's-complement addition commutes with byte swapping (RFC 1071 §2(B)),
 * so a folded native sum stored as it is is the right field on either
 * endianness, and only the public API converts to host values.
 *
 * The word accessors use __builtin_memcpy, not memcpy: with
 * _FORTIFY_SOURCE clang turns the latter into __memcpy_chk and keeps the
 * words in memory rather than registers, which halved checksum speed.
 */
static inline uint64_t
load64(const uint8_t *p)
{
	uint64_t v;

	__builtin_memcpy(&v, p, sizeof v);
	return v;
}

static inline void
store64(uint8_t *p, uint64_t v)
{
	__builtin_memcpy(p, &v, sizeof v);
}

/*
 * Headers are at most 120 bytes and a multiple of 4; gcc turns a memcpy()
 * of them into "rep movsq", whose start-up cost dominated a segment.
 */
static inline void
copy_hdr(uint8_t *dst, const uint8_t *src, size_t n)
{
	size_t i;

	for (i = 0; i + 8 <= n; i += 8)
		store64(dst + i, load64(src + i));
	if (i < n)
		__builtin_memcpy(dst + i, src + i, 4);
}

/* Adds with the end-around carry, so 64-bit words can be summed directly. */
static inline uint64_t
add_carry(uint64_t a, uint64_t b)
{
	a += b;
	return a + (a < b);
}

static uint64_t
csum_add(uint64_t sum, const uint8_t *p, size_t len)
{
	/*
	 * Four carry chains over 32-byte blocks: one chain of add/adc pairs is
	 * latency-bound at about 4 bytes a cycle, four run side by side (the
	 * one's-complement sum does not care how words are grouped).
	 */
	uint64_t s1 = 0, s2 = 0, s3 = 0;

	while (len >= 32) {
		sum = add_carry(sum, load64(p));
		s1 = add_carry(s1, load64(p + 8));
		s2 = add_carry(s2, load64(p + 16));
		s3 = add_carry(s3, load64(p + 24));
		p += 32;
		len -= 32;
	}
	sum = add_carry(add_carry(sum, s1), add_carry(s2, s3));
	while (len >= 8) {
		sum = add_carry(sum, load64(p));
		p += 8;
		len -= 8;
	}
	if (len > 0) {
		/* Zero-padding the tail is RFC 1071's odd-byte rule. */
		uint64_t t = 0;

		memcpy(&t, p, len);
		sum = add_carry(sum, t);
	}
	return sum;
}

/* csum_add() while copying: the payload is touched once, not twice. */
static uint64_t
csum_copy(uint8_t *dst, const uint8_t *src, size_t len, uint64_t sum)
{
	uint64_t s1 = 0, s2 = 0, s3 = 0;

	while (len >= 32) {
		uint64_t a = load64(src), b = load64(src + 8);
		uint64_t c = load64(src + 16), d = load64(src + 24);

		store64(dst, a);
		store64(dst + 8, b);
		store64(dst + 16, c);
		store64(dst + 24, d);
		sum = add_carry(sum, a);
		s1 = add_carry(s1, b);
		s2 = add_carry(s2, c);
		s3 = add_carry(s3, d);
		src += 32;
		dst += 32;
		len -= 32;
	}
	sum = add_carry(add_carry(sum, s1), add_carry(s2, s3));
	while (len >= 8) {
		uint64_t a = load64(src);

		store64(dst, a);
		sum = add_carry(sum, a);
		src += 8;
		dst += 8;
		len -= 8;
	}
	if (len > 0) {
		uint64_t t = 0;

		memcpy(&t, src, len);
		memcpy(dst, src, len);
		sum = add_carry(sum, t);
	}
	return sum;
}

static inline uint16_t
fold_native(uint64_t sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/*
 * The pseudo-header after the addresses.  IPv6 puts a 32-bit length and
 * the next header in the low byte of a zero word; IPv4's 16-bit length and
 * protocol byte sum the same.
 */
static inline uint64_t
pseudo_rest(uint64_t sum, uint8_t proto, uint32_t l4_len)
{
	sum = add_carry(sum, htonl(l4_len));
	return add_carry(sum, htonl(proto));
}

static inline void
store_native16(uint8_t *p, uint16_t v)
{
	__builtin_memcpy(p, &v, sizeof v);
}

static inline uint16_t
load16(const uint8_t *p)
{
	uint16_t v;

	__builtin_memcpy(&v, p, sizeof v);
	return v;
}

uint64_t
offload_csum_add(uint64_t sum, const void *buf, size_t len)
{
	return csum_add(sum, buf, len);
}

uint64_t
offload_pseudo_sum(const uint8_t *src, const uint8_t *dst, size_t addr_len,
    uint8_t proto, uint32_t l4_len)
{
	uint64_t sum = csum_add(0, src, addr_len);

	sum = add_carry(sum, csum_add(0, dst, addr_len));
	return pseudo_rest(sum, proto, l4_len);
}

uint16_t
offload_csum_fold(uint64_t sum)
{
	return ntohs(fold_native(sum));
}

uint16_t
offload_csum(const void *buf, size_t len, uint64_t sum)
{
	return ntohs((uint16_t)~fold_native(csum_add(sum, buf, len)));
}

/* The IPv6 extension headers (RFC 8200 §4, IANA list) we do not walk. */
static bool
is_ipv6_ext(uint8_t nh)
{
	switch (nh) {
	case 0: case 43: case 44: case 50: case 51: case 60:
	case 135: case 139: case 140: case 253: case 254:
		return true;
	}
	return false;
}

static int
split_none(const struct virtio_net_hdr *h, const uint8_t *pkt, size_t plen,
    uint8_t *const *out, size_t out_cap, uint16_t *out_len, size_t nout)
{
	size_t iphl, start, off;
	uint16_t csum;

	if (nout < 1 || plen > out_cap || plen > UINT16_MAX)
		return -EMSGSIZE;
	if (!(h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)) {
		memcpy(out[0], pkt, plen);
		out_len[0] = (uint16_t)plen;
		return 1;
	}

	iphl = (pkt[0] >> 4) == 4 ? (size_t)(pkt[0] & 0x0f) * 4 : 40;
	start = h->csum_start;
	off = h->csum_offset;
	/*
	 * The kernel's skb_checksum_help(): sum from csum_start to the end,
	 * the field (holding the pseudo-header sum) included.  An odd offset
	 * would straddle the 16-bit words the sum is made of, so no protocol
	 * has one.
	 */
	if (start < iphl || (off & 1) || start + off + 2 > plen)
		return -EINVAL;
	memcpy(out[0], pkt, start);
	csum = (uint16_t)~fold_native(csum_copy(out[0] + start, pkt + start,
	    plen - start, 0));
	/* 0 is "no checksum" to UDP; the kernel sends 0xffff instead. */
	store_native16(out[0] + start + off, csum ? csum : 0xffff);
	out_len[0] = (uint16_t)plen;
	return 1;
}

/*
 * The sum of a header with the 16-bit words at the given offsets counted
 * as zero: the parts of a segment's headers that do not change.
 */
static uint64_t
sum_without(const uint8_t *p, size_t len, size_t w1, size_t w2, size_t w3)
{
	uint64_t sum = csum_add(0, p, len);

	/* Subtracting in one's complement is adding the complement. */
	sum = add_carry(sum, (uint16_t)~load16(p + w1));
	sum = add_carry(sum, (uint16_t)~load16(p + w2));
	return add_carry(sum, (uint16_t)~load16(p + w3));
}

static int
split_tcp(const struct virtio_net_hdr *h, const uint8_t *pkt, size_t plen,
    uint8_t *const *out, size_t out_cap, uint16_t *out_len, size_t nout)
{
	bool v4 = (pkt[0] >> 4) == 4;
	size_t iphl, thl, hdrlen, payload, mss, nseg, first, off;
	const uint8_t *tcp;
	uint64_t ipsum = 0, tcpsum;
	uint32_t seq;
	uint16_t id = 0;
	uint8_t flags;

	if (v4) {
		iphl = (size_t)(pkt[0] & 0x0f) * 4;
		/* A fragment cannot be a TSO packet; tot_len must be exact. */
		if (iphl < 20 || get_be16(pkt + 2) != plen ||
		    (get_be16(pkt + 6) & 0x3fff) || pkt[9] != IPPROTO_TCP)
			return -EINVAL;
		id = get_be16(pkt + 4);
	} else {
		iphl = 40;
		if (plen < 40 || 40 + (size_t)get_be16(pkt + 4) != plen)
			return -EINVAL;
		if (pkt[6] != IPPROTO_TCP)
			return is_ipv6_ext(pkt[6]) ? -EPROTONOSUPPORT : -EINVAL;
	}
	if (plen < iphl + 20)
		return -EINVAL;
	tcp = pkt + iphl;
	thl = (size_t)(tcp[12] >> 4) * 4;
	hdrlen = iphl + thl;
	if (thl < 20 || hdrlen > plen)
		return -EINVAL;
	if ((h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
	    (h->csum_start != iphl || h->csum_offset != TCP_CSUM_OFF))
		return -EINVAL;

	mss = h->gso_size;
	payload = plen - hdrlen;
	nseg = payload ? (payload + mss - 1) / mss : 1;
	first = MIN(mss, payload);
	if (nseg > nout || hdrlen + first > out_cap ||
	    hdrlen + first > UINT16_MAX)
		return -EMSGSIZE;

	/*
	 * Each segment's header checksums are the sums of what all segments
	 * share plus the few fields that differ, so nothing just written is
	 * read back (which would also stall on store forwarding).  IPv4:
	 * all but total length, ID and checksum.  TCP: the pseudo-header
	 * addresses and protocol, and all but seq, offset/flags and checksum.
	 */
	if (v4) {
		ipsum = sum_without(pkt, iphl, 2, 4, 10);
		tcpsum = csum_add(0, pkt + 12, 8);
	} else {
		tcpsum = csum_add(0, pkt + 8, 32);
	}
	tcpsum = pseudo_rest(tcpsum, IPPROTO_TCP, 0);
	tcpsum = add_carry(tcpsum, sum_without(tcp, thl, 4, 6, 12));
	tcpsum = add_carry(tcpsum, (uint16_t)~load16(tcp + TCP_CSUM_OFF));
	seq = get_be32(tcp + 4);
	flags = tcp[13];
	off = hdrlen;
	for (size_t i = 0; i < nseg; i++) {
		size_t chunk = MIN(mss, plen - off);
		uint8_t *o = out[i], *th = o + iphl;
		uint32_t sseq = seq + (uint32_t)(i * mss);
		uint8_t f = flags;
		uint64_t sum;

		copy_hdr(o, pkt, hdrlen);
		if (v4) {
			uint16_t tot = (uint16_t)(hdrlen + chunk);
			uint16_t sid = (uint16_t)(id + i);

			sum = add_carry(ipsum, htons(tot));
			sum = add_carry(sum, htons(sid));
			put_be16(o + 2, tot);
			put_be16(o + 4, sid);
			store_native16(o + 10, (uint16_t)~fold_native(sum));
		} else {
			put_be16(o + 4, (uint16_t)(thl + chunk));
		}
		/* What the kernel's tcp_gso_segment() does with the flags. */
		if (i != nseg - 1)
			f &= (uint8_t)~(TCP_FIN | TCP_PSH);
		if (i != 0)
			f &= (uint8_t)~TCP_CWR;
		th[13] = f;
		put_be32(th + 4, sseq);
		sum = add_carry(tcpsum, htonl((uint32_t)(thl + chunk)));
		sum = add_carry(sum, htonl(sseq));
		sum = add_carry(sum, htons((uint16_t)(tcp[12] << 8 | f)));
		sum = csum_copy(o + hdrlen, pkt + off, chunk, sum);
		store_native16(th + TCP_CSUM_OFF, (uint16_t)~fold_native(sum));
		out_len[i] = (uint16_t)(hdrlen + chunk);
		off += chunk;
	}
	return (int)nseg;
}

int
offload_split(const uint8_t *in, size_t len, uint8_t *const *out,
    size_t out_cap, uint16_t *out_len, size_t nout)
{
	struct virtio_net_hdr h;
	const uint8_t *pkt = in + OFFLOAD_VNET_HDR_LEN;
	size_t plen;
	unsigned int ver;

	if (len < OFFLOAD_VNET_HDR_LEN + 20)
		return -EINVAL;
	memcpy(&h, in, sizeof h);
	plen = len - OFFLOAD_VNET_HDR_LEN;
	ver = pkt[0] >> 4;
	if (ver == 4) {
		if ((pkt[0] & 0x0f) < 5 || (size_t)(pkt[0] & 0x0f) * 4 > plen)
			return -EINVAL;
	} else if (ver != 6 || plen < 40) {
		return -EINVAL;
	}

	switch (h.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) {
	case VIRTIO_NET_HDR_GSO_NONE:
		if (h.gso_type != VIRTIO_NET_HDR_GSO_NONE)
			return -EINVAL;	/* ECN without a GSO type */
		return split_none(&h, pkt, plen, out, out_cap, out_len, nout);
	case VIRTIO_NET_HDR_GSO_TCPV4:
	case VIRTIO_NET_HDR_GSO_TCPV6:
		if (ver != ((h.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) ==
		    VIRTIO_NET_HDR_GSO_TCPV4 ? 4U : 6U) || h.gso_size == 0)
			return -EINVAL;
		return split_tcp(&h, pkt, plen, out, out_cap, out_len, nout);
	case VIRTIO_NET_HDR_GSO_UDP:
	case GSO_UDP_L4:
		/* We never enable TUN_F_UFO or TUN_F_USO4/6. */
		return -EPROTONOSUPPORT;
	}
	return -EINVAL;
}

/*
 * GRO.  Items are the packets in the order added; groups are runs of one
 * flow's segments in the order their first packet arrived, and become the
 * writes.  The flow table maps a TCP 4-tuple to that flow's latest group,
 * by open addressing over at least twice as many slots as packets, so it
 * always has free slots and never needs deletion.
 */
#define ALIGN_UP(n)	(((n) + _Alignof(max_align_t) - 1) & \
			    ~(size_t)(_Alignof(max_align_t) - 1))

struct gro_item {
	uint8_t *pkt;
	uint32_t len;
	int32_t next;		/* next item of the group, or -1 */
};

struct gro_group {
	uint32_t head, tail;	/* items */
	uint32_t nseg;
	uint32_t hash;
	uint32_t next_seq;	/* the seq a joining segment must carry */
	uint32_t total;		/* IP length of the super-packet so far */
	uint16_t gso_size;
	uint8_t iphl, thl;
	uint8_t flags;		/* TCP flags of the first segment */
	bool v6, open, psh;
};

struct offload_gro {
	unsigned int max;
	unsigned int nitems;
	unsigned int ngroups;
	bool flushed;
	uint32_t mask;		/* table size - 1 */
	int32_t *table;		/* group index or -1 */
	struct gro_item *items;
	struct gro_group *groups;
	struct iovec *iov;
	struct offload_write *writes;
};

/* What add() learns about a packet. */
struct tcp_view {
	bool flow;		/* a TCP packet whose ports we can see */
	bool mergeable;		/* lengths consistent, not a fragment */
	bool v6;
	uint8_t iphl, thl;
	uint8_t flags;
	uint32_t seq;
	uint32_t payload;
};

static void
parse_tcp(const uint8_t *p, size_t len, struct tcp_view *v)
{
	size_t iphl, iplen;

	memset(v, 0, sizeof *v);
	if (len < 20)
		return;
	if ((p[0] >> 4) == 4) {
		iphl = (size_t)(p[0] & 0x0f) * 4;
		/* Later fragments have no ports to tell the flow by. */
		if (iphl < 20 || p[9] != IPPROTO_TCP ||
		    (get_be16(p + 6) & 0x1fff) || len < iphl + 20)
			return;
		iplen = get_be16(p + 2);
		v->mergeable = !(get_be16(p + 6) & 0x2000);	/* not MF */
	} else if ((p[0] >> 4) == 6) {
		iphl = 40;
		/* Extension headers are rare in a tunnel: no flow for them. */
		if (len < 60 || p[6] != IPPROTO_TCP)
			return;
		iplen = 40 + (size_t)get_be16(p + 4);
		v->v6 = true;
		v->mergeable = true;
	} else {
		return;
	}
	v->flow = true;
	v->iphl = (uint8_t)iphl;
	v->thl = (uint8_t)((p[iphl + 12] >> 4) * 4);
	v->flags = p[iphl + 13];
	v->seq = get_be32(p + iphl + 4);
	if (iplen != len || v->thl < 20 || iphl + v->thl > len) {
		v->mergeable = false;
		return;
	}
	v->payload = (uint32_t)(len - iphl - v->thl);
}

static inline uint32_t
load32(const uint8_t *p)
{
	uint32_t v;

	__builtin_memcpy(&v, p, sizeof v);
	return v;
}

static uint32_t
flow_hash(const uint8_t *p, const struct tcp_view *v)
{
	const uint8_t *a = v->v6 ? p + 8 : p + 12;
	size_t n = v->v6 ? 32 : 8;
	uint32_t h = v->v6 ? 0x9e3779b9 : 0x7f4a7c15;

	for (size_t i = 0; i < n; i += 4)
		h = (h ^ load32(a + i)) * 0x85ebca6b;
	h = (h ^ load32(p + v->iphl)) * 0xc2b2ae35;
	return h ^ (h >> 16);
}

/* Same 4-tuple; a hash match is only a hint. */
static bool
same_flow(const struct gro_group *grp, const uint8_t *head, const uint8_t *p,
    const struct tcp_view *v)
{
	if (grp->v6 != v->v6)
		return false;
	if (v->v6)
		return memcmp(head + 8, p + 8, 32) == 0 &&
		    memcmp(head + 40, p + 40, 4) == 0;
	return memcmp(head + 12, p + 12, 8) == 0 &&
	    memcmp(head + grp->iphl, p + v->iphl, 4) == 0;
}

static bool
can_join(const struct gro_group *grp, const uint8_t *head, const uint8_t *p,
    const struct tcp_view *v)
{
	const uint8_t *hth = head + grp->iphl, *th = p + v->iphl;

	if (!v->mergeable || v->iphl != grp->iphl || v->thl != grp->thl ||
	    (v->flags & (uint8_t)~TCP_PSH) != grp->flags ||
	    v->payload == 0 || v->payload > grp->gso_size ||
	    v->seq != grp->next_seq ||
	    grp->total + v->payload > (v->v6 ? 40U + 0xffff : 0xffffU))
		return false;
	/* IP headers equal but for length, ID and checksum. */
	if (v->v6) {
		if (memcmp(head, p, 4) != 0 || memcmp(head + 6, p + 6, 2) != 0)
			return false;
	} else {
		if (memcmp(head, p, 2) != 0 ||
		    memcmp(head + 6, p + 6, 4) != 0 ||
		    memcmp(head + 20, p + 20, grp->iphl - 20U) != 0)
			return false;
	}
	/* TCP headers equal but for seq, flags and checksum (ports are). */
	return memcmp(hth + 8, th + 8, 5) == 0 &&
	    memcmp(hth + 14, th + 14, 2) == 0 &&
	    memcmp(hth + 18, th + 18, grp->thl - 18U) == 0;
}

struct offload_gro *
offload_gro_new(unsigned int max_pkts)
{
	struct offload_gro *g;
	size_t slots = 2, sz, o_items, o_groups, o_iov, o_writes, o_table;
	uint8_t *mem;

	if (max_pkts == 0 || max_pkts > OFFLOAD_GRO_MAX_PKTS)
		return NULL;
	while (slots < 2 * (size_t)max_pkts)
		slots <<= 1;
	/* One allocation; every piece starts suitably aligned for any type. */
	o_items = ALIGN_UP(sizeof *g);
	o_groups = ALIGN_UP(o_items + max_pkts * sizeof(struct gro_item));
	o_iov = ALIGN_UP(o_groups + max_pkts * sizeof(struct gro_group));
	o_writes = ALIGN_UP(o_iov + max_pkts * sizeof(struct iovec));
	o_table = ALIGN_UP(o_writes + max_pkts * sizeof(struct offload_write));
	sz = o_table + slots * sizeof(int32_t);
	if ((mem = calloc(1, sz)) == NULL)
		return NULL;
	g = (void *)mem;
	g->max = max_pkts;
	g->mask = (uint32_t)(slots - 1);
	g->items = (void *)(mem + o_items);
	g->groups = (void *)(mem + o_groups);
	g->iov = (void *)(mem + o_iov);
	g->writes = (void *)(mem + o_writes);
	g->table = (void *)(mem + o_table);
	offload_gro_reset(g);
	return g;
}

void
offload_gro_free(struct offload_gro *g)
{
	free(g);
}

void
offload_gro_reset(struct offload_gro *g)
{
	g->nitems = 0;
	g->ngroups = 0;
	g->flushed = false;
	memset(g->table, 0xff, ((size_t)g->mask + 1) * sizeof *g->table);
}

static struct gro_group *
new_group(struct offload_gro *g, uint32_t item, const struct tcp_view *v,
    uint32_t hash)
{
	struct gro_group *grp = &g->groups[g->ngroups++];

	memset(grp, 0, sizeof *grp);
	grp->head = grp->tail = item;
	grp->nseg = 1;
	grp->hash = hash;
	if (!v->flow)
		return grp;
	grp->v6 = v->v6;
	grp->iphl = v->iphl;
	grp->thl = v->thl;
	/*
	 * Only a data segment with no flag but ACK opens a group.  PSH ends
	 * one (the kernel's own GRO flushes after it), so it may only come
	 * last, and the other flags must reach the peer on their own segment.
	 */
	grp->open = v->mergeable && v->payload > 0 &&
	    (v->flags & (uint8_t)~TCP_ACK) == 0;
	grp->flags = v->flags;
	grp->gso_size = (uint16_t)v->payload;
	grp->next_seq = v->seq + v->payload;
	grp->total = g->items[item].len;
	return grp;
}

int
offload_gro_add(struct offload_gro *g, uint8_t *pkt, size_t len)
{
	struct gro_item *it;
	struct gro_group *grp;
	struct tcp_view v;
	uint32_t idx, hash, slot;

	if (g->flushed)
		return -EBUSY;
	if (len == 0 || len > OFFLOAD_MAX_PKT)
		return -EINVAL;
	if (g->nitems == g->max)
		return -ENOSPC;
	idx = g->nitems++;
	it = &g->items[idx];
	it->pkt = pkt;
	it->len = (uint32_t)len;
	it->next = -1;

	parse_tcp(pkt, len, &v);
	if (!v.flow) {
		new_group(g, idx, &v, 0);
		return 0;
	}
	hash = flow_hash(pkt, &v);
	for (slot = hash & g->mask; g->table[slot] >= 0;
	    slot = (slot + 1) & g->mask) {
		grp = &g->groups[g->table[slot]];
		if (grp->hash != hash ||
		    !same_flow(grp, g->items[grp->head].pkt, pkt, &v))
			continue;
		if (grp->open) {
			if (can_join(grp, g->items[grp->head].pkt, pkt, &v)) {
				g->items[grp->tail].next = (int32_t)idx;
				grp->tail = idx;
				grp->nseg++;
				grp->next_seq += v.payload;
				grp->total += v.payload;
				if (v.flags & TCP_PSH)
					grp->psh = true;
				if ((v.flags & TCP_PSH) ||
				    v.payload < grp->gso_size)
					grp->open = false;
				return 0;
			}
			/* Later segments must not overtake this one. */
			grp->open = false;
		}
		break;
	}
	new_group(g, idx, &v, hash);
	g->table[slot] = (int32_t)(g->ngroups - 1);
	return 0;
}

static void
finish_group(const struct gro_group *grp, uint8_t *p)
{
	struct virtio_net_hdr h;
	uint8_t *th = p + grp->iphl;
	uint16_t l4_len = (uint16_t)(grp->total - grp->iphl);

	if (grp->v6) {
		put_be16(p + 4, l4_len);
	} else {
		put_be16(p + 2, (uint16_t)grp->total);
		p[10] = p[11] = 0;
		put_be16(p + 10, offload_csum(p, grp->iphl, 0));
	}
	if (grp->psh)
		th[13] |= TCP_PSH;
	/* Partial checksum: the kernel (or the NIC) adds header and payload. */
	store_native16(th + TCP_CSUM_OFF, fold_native(pseudo_rest(
	    csum_add(0, grp->v6 ? p + 8 : p + 12, grp->v6 ? 32 : 8),
	    IPPROTO_TCP, l4_len)));

	memset(&h, 0, sizeof h);
	h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	h.gso_type = grp->v6 ? VIRTIO_NET_HDR_GSO_TCPV6 :
	    VIRTIO_NET_HDR_GSO_TCPV4;
	h.hdr_len = (uint16_t)(grp->iphl + grp->thl);
	h.gso_size = grp->gso_size;
	h.csum_start = grp->iphl;
	h.csum_offset = TCP_CSUM_OFF;
	memcpy(p - OFFLOAD_VNET_HDR_LEN, &h, sizeof h);
}

size_t
offload_gro_flush(struct offload_gro *g, const struct offload_write **writes)
{
	size_t k = 0;

	*writes = g->writes;
	if (g->flushed)
		return g->ngroups;
	g->flushed = true;
	for (unsigned int i = 0; i < g->ngroups; i++) {
		const struct gro_group *grp = &g->groups[i];
		struct offload_write *w = &g->writes[i];
		const struct gro_item *it = &g->items[grp->head];
		size_t hdrlen = (size_t)grp->iphl + grp->thl;

		w->iov = &g->iov[k];
		w->iovcnt = grp->nseg;
		if (grp->nseg == 1) {
			memset(it->pkt - OFFLOAD_VNET_HDR_LEN, 0,
			    OFFLOAD_VNET_HDR_LEN);
			w->len = it->len + OFFLOAD_VNET_HDR_LEN;
		} else {
			finish_group(grp, it->pkt);
			w->len = grp->total + OFFLOAD_VNET_HDR_LEN;
		}
		g->iov[k].iov_base = it->pkt - OFFLOAD_VNET_HDR_LEN;
		g->iov[k++].iov_len = it->len + OFFLOAD_VNET_HDR_LEN;
		for (int32_t j = it->next; j >= 0; j = g->items[j].next) {
			g->iov[k].iov_base = g->items[j].pkt + hdrlen;
			g->iov[k++].iov_len = g->items[j].len - hdrlen;
		}
	}
	return g->ngroups;
}

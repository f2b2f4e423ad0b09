// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/util.h"
#include "wg/offload.h"

#define HR		OFFLOAD_HEADROOM
#define VNET		OFFLOAD_VNET_HDR_LEN
#define FIN		0x01
#define SYN		0x02
#define RST		0x04
#define PSH		0x08
#define ACK		0x10
#define CWR		0x80
#define MAXSEG		128
#define SEGCAP		2048

/* Payload bytes: segment payload at stream offset k is pattern[k]. */
static uint8_t pattern[1 << 17];

/*
 * The reference checksum: RFC 1071 the slow obvious way, big-endian words
 * into a wide sum, folded at the end; shares nothing with offload.c.
 */
static uint64_t
ref_sum(uint64_t s, const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		s += (uint64_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		s += (uint64_t)p[n - 1] << 8;
	return s;
}

static uint16_t
ref_fold(uint64_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

/* Pseudo-header of the IP packet ip for an L4 part of l4len bytes. */
static uint64_t
ref_pseudo(const uint8_t *ip, size_t l4len, uint8_t proto)
{
	uint64_t s;

	if ((ip[0] >> 4) == 4)
		s = ref_sum(0, ip + 12, 8);
	else
		s = ref_sum(0, ip + 8, 32);
	return s + (l4len >> 16) + (l4len & 0xffff) + proto;
}

static size_t
ip_hlen(const uint8_t *ip)
{
	return (ip[0] >> 4) == 4 ? (size_t)(ip[0] & 0x0f) * 4 : 40;
}

static bool
ipv4_csum_ok(const uint8_t *ip)
{
	return ref_fold(ref_sum(0, ip, ip_hlen(ip))) == 0xffff;
}

static bool
l4_csum_ok(const uint8_t *ip, size_t len, uint8_t proto)
{
	size_t iphl = ip_hlen(ip);

	return ref_fold(ref_sum(ref_pseudo(ip, len - iphl, proto), ip + iphl,
	    len - iphl)) == 0xffff;
}

/* Completes a partial checksum the way the kernel's skb_checksum_help() does. */
static void
ref_complete(uint8_t *p, size_t len, size_t start, size_t off)
{
	uint16_t c = (uint16_t)~ref_fold(ref_sum(0, p + start, len - start));

	put_be16(p + start + off, c ? c : 0xffff);
}

struct flow {
	bool v6;
	uint8_t src[16], dst[16];
	uint16_t sport, dport;
	uint8_t ipopt;		/* IPv4 option bytes (multiple of 4) */
	uint8_t tcpopt;		/* TCP options: 4 = MSS, 12 = NOP NOP timestamps */
	uint32_t ack;
	uint16_t win;
	uint8_t tos;
};

static const struct flow flow4 = {
	.src = { 10, 1, 2, 3 }, .dst = { 10, 9, 8, 7 },
	.sport = 40000, .dport = 5201, .ack = 0x11223344, .win = 501,
};
static const struct flow flow6 = {
	.v6 = true,
	.src = { 0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 },
	.dst = { 0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2 },
	.sport = 50000, .dport = 443, .ack = 0xfffffff0, .win = 1024,
	.tcpopt = 12,
};

/*
 * Writes a TCP/IP packet with plen bytes of pattern[poff..] as payload.
 * partial: the TCP checksum field gets the pseudo-header sum only, as the
 * kernel hands out with NEEDS_CSUM.  Returns its length.
 */
static size_t
build_tcp(uint8_t *p, const struct flow *f, uint32_t seq, uint16_t id,
    uint8_t flags, size_t poff, size_t plen, bool partial)
{
	size_t iphl = f->v6 ? 40 : 20u + f->ipopt;
	size_t thl = 20u + f->tcpopt;
	size_t len = iphl + thl + plen;
	uint8_t *th = p + iphl;
	uint64_t ps;

	memset(p, 0, iphl + thl);
	if (f->v6) {
		p[0] = 0x60 | f->tos >> 4;
		p[1] = (uint8_t)(f->tos << 4 | 0x0a);	/* a flow label too */
		p[2] = 0xbc;
		p[3] = 0xde;
		put_be16(p + 4, (uint16_t)(len - 40));
		p[6] = IPPROTO_TCP;
		p[7] = 64;
		memcpy(p + 8, f->src, 16);
		memcpy(p + 24, f->dst, 16);
	} else {
		p[0] = (uint8_t)(0x40 | iphl / 4);
		p[1] = f->tos;
		put_be16(p + 2, (uint16_t)len);
		put_be16(p + 4, id);
		p[6] = 0x40;	/* DF */
		p[8] = 64;
		p[9] = IPPROTO_TCP;
		memcpy(p + 12, f->src, 4);
		memcpy(p + 16, f->dst, 4);
		for (size_t i = 20; i < iphl; i++)
			p[i] = 1;	/* NOP options */
		put_be16(p + 10, (uint16_t)~ref_fold(ref_sum(0, p, iphl)));
	}
	put_be16(th, f->sport);
	put_be16(th + 2, f->dport);
	put_be32(th + 4, seq);
	put_be32(th + 8, f->ack);
	th[12] = (uint8_t)(thl / 4 << 4);
	th[13] = flags;
	put_be16(th + 14, f->win);
	if (f->tcpopt == 4) {
		th[20] = 2;	/* MSS 1460 */
		th[21] = 4;
		put_be16(th + 22, 1460);
	}
	if (f->tcpopt >= 12) {
		th[20] = 1;
		th[21] = 1;
		th[22] = 8;
		th[23] = 10;
		put_be32(th + 24, 0xaabbccdd);
		put_be32(th + 28, 0x01020304);
	}
	memcpy(th + thl, pattern + poff, plen);
	ps = ref_pseudo(p, len - iphl, IPPROTO_TCP);
	if (partial)
		put_be16(th + 16, ref_fold(ps));
	else
		put_be16(th + 16, (uint16_t)~ref_fold(ref_sum(ps, th, len - iphl)));
	return len;
}

static void
put_vnet(uint8_t *b, uint8_t flags, uint8_t gso_type, uint16_t hdr_len,
    uint16_t gso_size, uint16_t start, uint16_t off)
{
	struct virtio_net_hdr h = {
		.flags = flags, .gso_type = gso_type, .hdr_len = hdr_len,
		.gso_size = gso_size, .csum_start = start, .csum_offset = off,
	};

	memcpy(b, &h, sizeof h);
}

static struct virtio_net_hdr
get_vnet(const uint8_t *b)
{
	struct virtio_net_hdr h;

	memcpy(&h, b, sizeof h);
	return h;
}

/* A super-packet as a TSO read delivers it: vnet header + packet. */
static size_t
build_super(uint8_t *b, const struct flow *f, uint32_t seq, uint16_t id,
    uint8_t flags, size_t plen, uint16_t mss)
{
	size_t iphl = f->v6 ? 40 : 20u + f->ipopt;
	size_t len = build_tcp(b + VNET, f, seq, id, flags, 0, plen, true);

	/* hdr_len is the skb's linear length, not the headers': keep it odd. */
	put_vnet(b, VIRTIO_NET_HDR_F_NEEDS_CSUM,
	    f->v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4,
	    (uint16_t)MIN(len, 1000), mss, (uint16_t)iphl, 16);
	return VNET + len;
}

struct segs {
	uint8_t *ptr[MAXSEG];
	uint16_t len[MAXSEG];
	uint8_t mem[MAXSEG][SEGCAP];
};

static struct segs *
segs_new(void)
{
	struct segs *s = calloc(1, sizeof *s);

	assert_non_null(s);
	for (int i = 0; i < MAXSEG; i++)
		s->ptr[i] = s->mem[i];
	return s;
}

/* Checks the split of super-packet sup (vnet header stripped). */
static void
check_segments(const uint8_t *sup, size_t suplen, uint16_t mss,
    const struct segs *s, int n)
{
	bool v4 = (sup[0] >> 4) == 4;
	size_t iphl = ip_hlen(sup);
	size_t thl = (size_t)(sup[iphl + 12] >> 4) * 4;
	size_t hdrlen = iphl + thl, payload = suplen - hdrlen, off = 0;
	uint8_t flags = sup[iphl + 13];

	assert_int_equal(n, payload ? (payload + mss - 1) / mss : 1);
	for (int i = 0; i < n; i++) {
		const uint8_t *o = s->ptr[i];
		size_t chunk = MIN(mss, payload - off);
		uint8_t want = flags;

		assert_int_equal(s->len[i], hdrlen + chunk);
		if (v4) {
			assert_int_equal(get_be16(o + 2), hdrlen + chunk);
			assert_int_equal(get_be16(o + 4), (uint16_t)(get_be16(sup + 4) + i));
			assert_true(ipv4_csum_ok(o));
			/* Everything else of the IP header is the original's. */
			assert_memory_equal(o, sup, 2);
			assert_memory_equal(o + 6, sup + 6, 4);
			assert_memory_equal(o + 12, sup + 12, iphl - 12);
		} else {
			assert_int_equal(get_be16(o + 4), thl + chunk);
			assert_memory_equal(o, sup, 4);
			assert_memory_equal(o + 6, sup + 6, 34);
		}
		assert_int_equal(get_be32(o + iphl + 4),
		    (uint32_t)(get_be32(sup + iphl + 4) + i * mss));
		if (i != n - 1)
			want &= (uint8_t)~(FIN | PSH);
		if (i != 0)
			want &= (uint8_t)~CWR;
		assert_int_equal(o[iphl + 13], want);
		assert_memory_equal(o + iphl, sup + iphl, 4);
		assert_memory_equal(o + iphl + 8, sup + iphl + 8, 5);
		assert_memory_equal(o + iphl + 14, sup + iphl + 14, 2);
		assert_memory_equal(o + iphl + 18, sup + iphl + 18, thl - 18);
		assert_true(l4_csum_ok(o, s->len[i], IPPROTO_TCP));
		assert_memory_equal(o + hdrlen, sup + hdrlen + off, chunk);
		off += chunk;
	}
	assert_int_equal(off, payload);
}

static void
split_and_check(const struct flow *f, uint8_t flags, size_t plen, uint16_t mss)
{
	static uint8_t in[VNET + 70000];
	struct segs *s = segs_new();
	size_t len = build_super(in, f, 0xfffff000, 0xfffe, flags, plen, mss);
	int n = offload_split(in, len, s->ptr, SEGCAP, s->len, MAXSEG);

	assert_true(n > 0);
	check_segments(in + VNET, len - VNET, mss, s, n);
	free(s);
}

static void
test_split_v4(void **state)
{
	struct flow f = flow4;

	split_and_check(&f, ACK, 64000, 1380);		/* seq and ID wrap */
	split_and_check(&f, ACK | PSH, 65535 - 40, 1380);
	split_and_check(&f, ACK | PSH | FIN, 13800, 1380);	/* exact multiple */
	split_and_check(&f, ACK | CWR | PSH, 5000, 1460);
	split_and_check(&f, ACK, 999, 1380);		/* one segment */
	split_and_check(&f, ACK | FIN, 0, 1380);	/* no payload */
	f.tcpopt = 12;
	split_and_check(&f, ACK | PSH, 60000, 1368);
	f.ipopt = 8;
	f.tos = 0x02;
	split_and_check(&f, ACK | PSH, 40001, 1000);
	split_and_check(&f, ACK, 7, 1);			/* tiny MSS */
}

static void
test_split_v6(void **state)
{
	struct flow f = flow6;

	split_and_check(&f, ACK | PSH, 65535 - 32, 1368);
	split_and_check(&f, ACK | PSH | FIN, 20000, 1220);
	f.tcpopt = 0;
	f.tos = 0xb8;
	split_and_check(&f, ACK | CWR, 64000, 1440);
	split_and_check(&f, ACK, 1, 1440);
}

/* A plain UDP datagram as the kernel hands it out with a partial checksum. */
static size_t
build_udp(uint8_t *p, bool v6, const uint8_t *payload, size_t plen)
{
	size_t iphl = v6 ? 40 : 20, len = iphl + 8 + plen;

	memset(p, 0, iphl + 8);
	if (v6) {
		p[0] = 0x60;
		put_be16(p + 4, (uint16_t)(len - 40));
		p[6] = IPPROTO_UDP;
		p[7] = 64;
		memcpy(p + 8, flow6.src, 16);
		memcpy(p + 24, flow6.dst, 16);
	} else {
		p[0] = 0x45;
		put_be16(p + 2, (uint16_t)len);
		p[8] = 64;
		p[9] = IPPROTO_UDP;
		memcpy(p + 12, flow4.src, 4);
		memcpy(p + 16, flow4.dst, 4);
		put_be16(p + 10, (uint16_t)~ref_fold(ref_sum(0, p, 20)));
	}
	put_be16(p + iphl, 53);
	put_be16(p + iphl + 2, 33333);
	put_be16(p + iphl + 4, (uint16_t)(len - iphl));
	memcpy(p + iphl + 8, payload, plen);
	put_be16(p + iphl + 6, ref_fold(ref_pseudo(p, len - iphl, IPPROTO_UDP)));
	return len;
}

static void
test_split_none(void **state)
{
	static uint8_t in[VNET + 4000];
	struct segs *s = segs_new();
	size_t len;

	for (int v6 = 0; v6 <= 1; v6++) {
		size_t iphl = v6 ? 40 : 20;

		/* UDP with NEEDS_CSUM, odd length. */
		len = VNET + build_udp(in + VNET, v6, pattern, 1001);
		put_vnet(in, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, (uint16_t)iphl, 6);
		assert_int_equal(offload_split(in, len, s->ptr, SEGCAP, s->len, 1), 1);
		assert_int_equal(s->len[0], len - VNET);
		assert_true(l4_csum_ok(s->ptr[0], s->len[0], IPPROTO_UDP));
		assert_memory_equal(s->ptr[0], in + VNET, iphl + 6);
		assert_memory_equal(s->ptr[0] + iphl + 8, pattern, 1001);

		/* TCP with NEEDS_CSUM and no GSO. */
		len = VNET + build_tcp(in + VNET, v6 ? &flow6 : &flow4, 5, 6,
		    ACK | PSH, 100, 1200, true);
		put_vnet(in, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, (uint16_t)iphl, 16);
		assert_int_equal(offload_split(in, len, s->ptr, SEGCAP, s->len, 1), 1);
		assert_int_equal(s->len[0], len - VNET);
		assert_true(l4_csum_ok(s->ptr[0], s->len[0], IPPROTO_TCP));

		/* Already complete: copied untouched (DATA_VALID is ignored). */
		len = VNET + build_tcp(in + VNET, v6 ? &flow6 : &flow4, 5, 6,
		    ACK, 0, 77, false);
		put_vnet(in, VIRTIO_NET_HDR_F_DATA_VALID, 0, 0, 0, 0, 0);
		assert_int_equal(offload_split(in, len, s->ptr, SEGCAP, s->len, 1), 1);
		assert_int_equal(s->len[0], len - VNET);
		assert_memory_equal(s->ptr[0], in + VNET, len - VNET);
	}

	/* A UDP sum that comes out 0 must be sent as 0xffff. */
	{
		uint8_t pl[10] = { 1, 2, 3, 4, 5, 6, 7, 8, 0, 0 };
		uint16_t c;

		len = VNET + build_udp(in + VNET, false, pl, sizeof pl);
		/* Pick the last word so that the full sum is 0xffff. */
		c = ref_fold(ref_sum(0, in + VNET + 20, len - VNET - 20));
		put_be16(in + len - 2, (uint16_t)~c);
		put_vnet(in, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 20, 6);
		assert_int_equal(offload_split(in, len, s->ptr, SEGCAP, s->len, 1), 1);
		assert_int_equal(get_be16(s->ptr[0] + 26), 0xffff);
		assert_true(l4_csum_ok(s->ptr[0], s->len[0], IPPROTO_UDP));
	}
	free(s);
}

static void
test_split_errors(void **state)
{
	static uint8_t in[VNET + 70000], bad[VNET + 70000];
	struct segs *s = segs_new();
	size_t len = build_super(in, &flow4, 1, 1, ACK, 30000, 1380);
	size_t len6 = 0;
	int n;

#define SPLIT(b, l)	offload_split((b), (l), s->ptr, SEGCAP, s->len, MAXSEG)
#define MUTATE(stmt)	do { memcpy(bad, in, len); stmt; } while (0)
	assert_int_equal(SPLIT(in, len), 22);

	/* Every truncation is an error (lengths no longer match). */
	for (size_t l = 0; l < len; l++)
		assert_true(SPLIT(in, l) < 0);

	MUTATE(put_vnet(bad, 1, VIRTIO_NET_HDR_GSO_TCPV4, 40, 0, 20, 16));
	assert_int_equal(SPLIT(bad, len), -EINVAL);	/* gso_size 0 */
	MUTATE(put_vnet(bad, 1, VIRTIO_NET_HDR_GSO_TCPV4, 40, 1380, 24, 16));
	assert_int_equal(SPLIT(bad, len), -EINVAL);	/* csum_start */
	MUTATE(put_vnet(bad, 1, VIRTIO_NET_HDR_GSO_TCPV4, 40, 1380, 20, 6));
	assert_int_equal(SPLIT(bad, len), -EINVAL);	/* csum_offset */
	MUTATE(put_vnet(bad, 1, VIRTIO_NET_HDR_GSO_TCPV6, 40, 1380, 20, 16));
	assert_int_equal(SPLIT(bad, len), -EINVAL);	/* TCPV6 on IPv4 */
	MUTATE(put_vnet(bad, 0, VIRTIO_NET_HDR_GSO_UDP, 40, 1380, 20, 16));
	assert_int_equal(SPLIT(bad, len), -EPROTONOSUPPORT);
	MUTATE(put_vnet(bad, 0, 5, 40, 1380, 20, 16));	/* UDP_L4 */
	assert_int_equal(SPLIT(bad, len), -EPROTONOSUPPORT);
	MUTATE(put_vnet(bad, 0, 2, 40, 1380, 20, 16));
	assert_int_equal(SPLIT(bad, len), -EINVAL);	/* unknown type */
	MUTATE(bad[1] = VIRTIO_NET_HDR_GSO_ECN);
	assert_int_equal(SPLIT(bad, len), -EINVAL);	/* ECN without GSO */
	MUTATE(bad[1] |= VIRTIO_NET_HDR_GSO_ECN);
	assert_int_equal(SPLIT(bad, len), 22);		/* ECN with GSO is fine */
	MUTATE(bad[1] = 0; bad[0] = 0);
	assert_int_equal(SPLIT(bad, len), -EMSGSIZE);	/* too big for one buffer */
	MUTATE(bad[VNET] = 0x55);
	assert_int_equal(SPLIT(bad, len), -EINVAL);	/* version 5 */
	MUTATE(bad[VNET] = 0x44);
	assert_int_equal(SPLIT(bad, len), -EINVAL);	/* IHL 4 */
	MUTATE(bad[VNET] = 0x4f);
	assert_int_equal(SPLIT(bad, len), -EINVAL);	/* IHL 15: bad options */
	MUTATE(bad[VNET + 9] = IPPROTO_UDP);
	assert_int_equal(SPLIT(bad, len), -EINVAL);	/* TCP GSO of UDP */
	MUTATE(bad[VNET + 6] |= 0x20);
	assert_int_equal(SPLIT(bad, len), -EINVAL);	/* MF */
	MUTATE(put_be16(bad + VNET + 2, 1000));
	assert_int_equal(SPLIT(bad, len), -EINVAL);	/* total length */
	MUTATE(bad[VNET + 32] = 0x40);
	assert_int_equal(SPLIT(bad, len), -EINVAL);	/* doff 4 */
	MUTATE(bad[VNET + 32] = 0xf0; put_be16(bad + VNET + 2, 70));
	assert_int_equal(SPLIT(bad, VNET + 70), -EINVAL);	/* doff past end */

	/* Not enough buffers, or buffers too small. */
	assert_int_equal(offload_split(in, len, s->ptr, SEGCAP, s->len, 21), -EMSGSIZE);
	assert_int_equal(offload_split(in, len, s->ptr, 1419, s->len, 64), -EMSGSIZE);
	assert_int_equal(offload_split(in, len, s->ptr, 1420, s->len, 22), 22);

	/* GSO_NONE checksum offsets. */
	len = VNET + build_udp(in + VNET, false, pattern, 100);
	put_vnet(in, 1, 0, 0, 0, 20, 6);
	assert_int_equal(SPLIT(in, len), 1);
	put_vnet(in, 1, 0, 0, 0, 19, 6);
	assert_int_equal(SPLIT(in, len), -EINVAL);	/* inside the IP header */
	put_vnet(in, 1, 0, 0, 0, 20, 7);
	assert_int_equal(SPLIT(in, len), -EINVAL);	/* odd offset */
	put_vnet(in, 1, 0, 0, 0, 20, 108);
	assert_int_equal(SPLIT(in, len), -EINVAL);	/* field past the end */
	put_vnet(in, 1, 0, 0, 0, 20, 106);
	assert_int_equal(SPLIT(in, len), 1);		/* last two bytes */
	put_vnet(in, 1, 0, 0, 0, 0xffff, 0xffff);
	assert_int_equal(SPLIT(in, len), -EINVAL);
	assert_int_equal(offload_split(in, len, s->ptr, SEGCAP, s->len, 0), -EMSGSIZE);

	/* IPv6 extension headers are refused, unknown next headers invalid. */
	len6 = build_super(in, &flow6, 1, 1, ACK, 3000, 1000);
	assert_int_equal(SPLIT(in, len6), 3);
	in[VNET + 6] = 0;
	assert_int_equal(SPLIT(in, len6), -EPROTONOSUPPORT);
	in[VNET + 6] = 44;
	assert_int_equal(SPLIT(in, len6), -EPROTONOSUPPORT);
	in[VNET + 6] = 17;
	assert_int_equal(SPLIT(in, len6), -EINVAL);
	in[VNET + 6] = 6;
	put_be16(in + VNET + 4, 10);
	assert_int_equal(SPLIT(in, len6), -EINVAL);

	/* Random corruption never crashes and never overflows a buffer. */
	len = build_super(in, &flow4, 1, 1, ACK | PSH, 8000, 1380);
	srand(7);
	for (int iter = 0; iter < 20000; iter++) {
		memcpy(bad, in, len);
		for (int k = 0; k < 1 + iter % 4; k++) {
			size_t at = (size_t)rand() % (iter & 1 ? 80 : len);

			bad[at] = (uint8_t)rand();
		}
		n = SPLIT(bad, len - (size_t)(iter % 3));
		assert_true(n <= MAXSEG);
		for (int i = 0; i < n; i++)
			assert_true(s->len[i] <= SEGCAP);
	}
#undef SPLIT
#undef MUTATE
	free(s);
}

/* GRO helpers: packets in malloc'ed buffers with exactly HR bytes in front. */
static uint8_t *
gbuf(const uint8_t *pkt, size_t len)
{
	uint8_t *b = malloc(HR + len);

	assert_non_null(b);
	memcpy(b + HR, pkt, len);
	return b + HR;
}

static void
gfree(uint8_t **bufs, int n)
{
	for (int i = 0; i < n; i++)
		free(bufs[i] - HR);
}

/* Concatenates a write; returns its length. */
static size_t
flatten(const struct offload_write *w, uint8_t *out)
{
	size_t n = 0;

	for (unsigned int i = 0; i < w->iovcnt; i++) {
		memcpy(out + n, w->iov[i].iov_base, w->iov[i].iov_len);
		n += w->iov[i].iov_len;
	}
	assert_int_equal(n, w->len);
	return n;
}

/* A coalesced write's headers are what the kernel expects; returns segs. */
static void
check_gro_write(const uint8_t *b, size_t len, size_t nseg_min)
{
	struct virtio_net_hdr h = get_vnet(b);
	const uint8_t *ip = b + VNET;
	size_t iphl = ip_hlen(ip), thl = (size_t)(ip[iphl + 12] >> 4) * 4;
	uint8_t *copy;

	assert_int_equal(h.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
	assert_int_equal(h.gso_type, (ip[0] >> 4) == 4 ?
	    VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6);
	assert_int_equal(h.hdr_len, iphl + thl);
	assert_int_equal(h.csum_start, iphl);
	assert_int_equal(h.csum_offset, 16);
	assert_true(h.gso_size > 0);
	assert_true(len - VNET - iphl - thl > (size_t)h.gso_size * (nseg_min - 1));
	if ((ip[0] >> 4) == 4) {
		assert_int_equal(get_be16(ip + 2), len - VNET);
		assert_true(ipv4_csum_ok(ip));
	} else {
		assert_int_equal(get_be16(ip + 4), len - VNET - 40);
	}
	assert_true(len - VNET - ((ip[0] >> 4) == 6 ? 40 : 0) <= 65535);
	/* The field holds the pseudo-header sum; completing it verifies. */
	assert_int_equal(get_be16(ip + iphl + 16),
	    ref_fold(ref_pseudo(ip, len - VNET - iphl, IPPROTO_TCP)));
	copy = malloc(len);
	assert_non_null(copy);
	memcpy(copy, ip, len - VNET);
	ref_complete(copy, len - VNET, iphl, 16);
	assert_true(l4_csum_ok(copy, len - VNET, IPPROTO_TCP));
	free(copy);
}

static void
check_pass_write(const struct offload_write *w, const uint8_t *pkt, size_t len)
{
	static const uint8_t zero[VNET];

	assert_int_equal(w->iovcnt, 1);
	assert_int_equal(w->len, len + VNET);
	assert_memory_equal(w->iov[0].iov_base, zero, VNET);
	assert_ptr_equal((uint8_t *)w->iov[0].iov_base + VNET, pkt);
}

static void
gro_roundtrip(const struct flow *f, uint8_t flags, size_t plen, uint16_t mss)
{
	static uint8_t in[VNET + 70000], flat[VNET + 70000];
	struct segs *s = segs_new(), *s2 = segs_new();
	struct offload_gro *g = offload_gro_new(128);
	const struct offload_write *w;
	uint8_t *bufs[MAXSEG];
	size_t len = build_super(in, f, 0x7ffffff0, 99, flags, plen, mss);
	size_t iphl = f->v6 ? 40 : 20u + f->ipopt, fl;
	int n = offload_split(in, len, s->ptr, SEGCAP, s->len, MAXSEG), n2, m;
	size_t nw;

	assert_non_null(g);
	assert_true(n > 1);
	for (int i = 0; i < n; i++) {
		bufs[i] = gbuf(s->ptr[i], s->len[i]);
		assert_int_equal(offload_gro_add(g, bufs[i], s->len[i]), 0);
	}
	nw = offload_gro_flush(g, &w);
	/* A FIN segment never coalesces: it comes out alone, last. */
	m = flags & FIN ? n - 1 : n;
	assert_int_equal(nw, flags & FIN ? 2 : 1);
	assert_int_equal(w[0].iovcnt, m);
	fl = flatten(&w[0], flat);
	check_gro_write(flat, fl, (size_t)m);
	assert_int_equal(get_vnet(flat).gso_size, mss);
	if (!(flags & FIN)) {
		/* Byte for byte the super-packet the kernel handed us. */
		assert_int_equal(fl, len);
		assert_memory_equal(flat + VNET, in + VNET, len - VNET);
	} else {
		check_pass_write(&w[1], bufs[n - 1], s->len[n - 1]);
		assert_int_equal(flat[VNET + iphl + 13], flags & ~(FIN | PSH));
	}
	/* Splitting it again gives the very same segments. */
	n2 = offload_split(flat, fl, s2->ptr, SEGCAP, s2->len, MAXSEG);
	assert_int_equal(n2, m);
	for (int i = 0; i < m; i++) {
		assert_int_equal(s2->len[i], s->len[i]);
		assert_memory_equal(s2->ptr[i], s->ptr[i], s->len[i]);
	}
	/* Flushing again is harmless. */
	assert_int_equal(offload_gro_flush(g, &w), nw);
	assert_int_equal(offload_gro_add(g, bufs[0], s->len[0]), -EBUSY);
	offload_gro_reset(g);
	gfree(bufs, n);
	offload_gro_free(g);
	free(s);
	free(s2);
}

static void
test_gro_roundtrip(void **state)
{
	struct flow f = flow4;

	gro_roundtrip(&f, ACK, 64000, 1380);
	gro_roundtrip(&f, ACK | PSH, 65535 - 40, 1380);
	gro_roundtrip(&f, ACK | PSH | FIN, 30000, 1380);
	gro_roundtrip(&f, ACK, 2761, 1380);	/* 3 segments, short last */
	f.tcpopt = 12;
	gro_roundtrip(&f, ACK | PSH, 46 * 1368, 1368);
	f.ipopt = 4;
	gro_roundtrip(&f, ACK, 20000, 1000);
	f = flow6;
	gro_roundtrip(&f, ACK | PSH, 65535 - 32, 1368);
	gro_roundtrip(&f, ACK | FIN, 5000, 1220);
	f.tcpopt = 0;
	gro_roundtrip(&f, ACK, 2880, 1440);
}

/* Segments of a flow at stream offsets, each its own buffer. */
static uint8_t *
seg(const struct flow *f, uint32_t seq, uint8_t flags, size_t poff,
    size_t plen, size_t *len)
{
	uint8_t tmp[SEGCAP];

	*len = build_tcp(tmp, f, seq, (uint16_t)(seq / 7), flags, poff, plen,
	    false);
	return gbuf(tmp, *len);
}

static void
test_gro_mixed(void **state)
{
	static uint8_t flat[VNET + 70000];
	struct offload_gro *g = offload_gro_new(64);
	struct segs *s = segs_new();
	const struct offload_write *w;
	struct flow fb = flow4;
	uint8_t *bufs[64], udp[200], icmp[64];
	size_t lens[64], fl, ulen = 0, nw;
	int n = 0;

	assert_non_null(g);
	fb.sport = 40001;	/* another flow between the same hosts */
	/* A1 B1 A2 B2 UDP A3 B3 ICMP A4(PSH) A5 */
	for (int i = 0; i < 3; i++) {
		bufs[n] = seg(&flow4, 1000 + (uint32_t)i * 1200, ACK, (size_t)i * 1200,
		    1200, &lens[n]);
		n++;
		bufs[n] = seg(&fb, 5000 + (uint32_t)i * 1000, ACK, 7, 1000, &lens[n]);
		n++;
		if (i == 1) {
			ulen = build_udp(udp, false, pattern, 100);
			bufs[n] = gbuf(udp, ulen);
			lens[n++] = ulen;
		}
	}
	memset(icmp, 0, sizeof icmp);
	icmp[0] = 0x45;
	put_be16(icmp + 2, sizeof icmp);
	icmp[9] = IPPROTO_ICMP;
	bufs[n] = gbuf(icmp, sizeof icmp);
	lens[n++] = sizeof icmp;
	bufs[n] = seg(&flow4, 1000 + 3 * 1200, ACK | PSH, 3 * 1200, 1200, &lens[n]);
	n++;
	bufs[n] = seg(&flow4, 1000 + 4 * 1200, ACK, 4 * 1200, 1200, &lens[n]);
	n++;
	for (int i = 0; i < n; i++)
		assert_int_equal(offload_gro_add(g, bufs[i], lens[i]), 0);

	nw = offload_gro_flush(g, &w);
	/* A1-A4 (PSH closes it), B1-B3, UDP, ICMP, A5: in order of first packet. */
	assert_int_equal(nw, 5);
	fl = flatten(&w[0], flat);
	check_gro_write(flat, fl, 4);
	assert_int_equal(w[0].iovcnt, 4);
	assert_int_equal(flat[VNET + 20 + 13], ACK | PSH);
	assert_int_equal(offload_split(flat, fl, s->ptr, SEGCAP, s->len, MAXSEG), 4);
	assert_memory_equal(s->ptr[0] + 40, pattern, 1200);
	assert_memory_equal(s->ptr[3] + 40, pattern + 3600, 1200);
	assert_int_equal(get_be32(s->ptr[3] + 24), 1000 + 3600);
	assert_int_equal(s->ptr[3][33], ACK | PSH);
	assert_int_equal(s->ptr[2][33], ACK);

	fl = flatten(&w[1], flat);
	check_gro_write(flat, fl, 3);
	assert_int_equal(get_be16(flat + VNET + 20), 40001);
	assert_int_equal(offload_split(flat, fl, s->ptr, SEGCAP, s->len, MAXSEG), 3);
	assert_int_equal(get_be32(s->ptr[2] + 24), 7000);

	check_pass_write(&w[2], bufs[4], ulen);
	check_pass_write(&w[3], bufs[7], sizeof icmp);
	check_pass_write(&w[4], bufs[9], lens[9]);
	gfree(bufs, n);
	offload_gro_free(g);
	free(s);
}

/* Feeds segments (seq, payload length, flags) and returns the writes' iovcnt. */
static size_t
gro_pattern(const struct flow *f, const uint32_t *seq, const size_t *plen,
    const uint8_t *flags, int n, unsigned int *cnt)
{
	struct offload_gro *g = offload_gro_new(64);
	const struct offload_write *w;
	uint8_t *bufs[64];
	size_t lens[64], nw;

	assert_non_null(g);
	for (int i = 0; i < n; i++) {
		bufs[i] = seg(f, seq[i], flags[i], 0, plen[i], &lens[i]);
		assert_int_equal(offload_gro_add(g, bufs[i], lens[i]), 0);
	}
	nw = offload_gro_flush(g, &w);
	for (size_t i = 0; i < nw; i++)
		cnt[i] = w[i].iovcnt;
	gfree(bufs, n);
	offload_gro_free(g);
	return nw;
}

static void
test_gro_breaks(void **state)
{
	static const uint8_t a5[5] = { ACK, ACK, ACK, ACK, ACK };
	unsigned int cnt[64];
	struct flow f = flow4;

	/* A gap in seq starts a new group. */
	{
		uint32_t seq[5] = { 0, 1000, 2000, 4000, 5000 };
		size_t pl[5] = { 1000, 1000, 1000, 1000, 1000 };

		assert_int_equal(gro_pattern(&f, seq, pl, a5, 5, cnt), 2);
		assert_int_equal(cnt[0], 3);
		assert_int_equal(cnt[1], 2);
	}
	/* A retransmission too, and after it the flow's order is kept. */
	{
		uint32_t seq[5] = { 0, 1000, 1000, 2000, 3000 };
		size_t pl[5] = { 1000, 1000, 1000, 1000, 1000 };

		assert_int_equal(gro_pattern(&f, seq, pl, a5, 5, cnt), 2);
		assert_int_equal(cnt[0], 2);
		assert_int_equal(cnt[1], 3);
	}
	/* A shorter segment ends a group; a longer one never joins. */
	{
		uint32_t seq[5] = { 0, 1000, 2000, 2500, 3500 };
		size_t pl[5] = { 1000, 1000, 500, 1000, 1000 };

		assert_int_equal(gro_pattern(&f, seq, pl, a5, 5, cnt), 2);
		assert_int_equal(cnt[0], 3);
		assert_int_equal(cnt[1], 2);
	}
	{
		uint32_t seq[3] = { 0, 500, 1500 };
		size_t pl[3] = { 500, 1000, 1000 };

		assert_int_equal(gro_pattern(&f, seq, pl, a5, 3, cnt), 2);
		assert_int_equal(cnt[0], 1);
		assert_int_equal(cnt[1], 2);
	}
	/* SYN/FIN/RST/URG segments and pure ACKs pass alone and keep order. */
	{
		uint32_t seq[6] = { 0, 1000, 2000, 2000, 2000, 3000 };
		size_t pl[6] = { 1000, 1000, 0, 1000, 1000, 1000 };
		uint8_t fl[6] = { ACK, ACK, ACK, ACK | RST, ACK, ACK };

		assert_int_equal(gro_pattern(&f, seq, pl, fl, 6, cnt), 4);
		assert_int_equal(cnt[0], 2);
		assert_int_equal(cnt[1], 1);
		assert_int_equal(cnt[2], 1);
		assert_int_equal(cnt[3], 2);
	}
	/* Differences in the headers break coalescing. */
	{
		struct offload_gro *g = offload_gro_new(8);
		const struct offload_write *w;
		struct flow f2 = flow4;
		uint8_t *b[6];
		size_t l[6];

		assert_non_null(g);
		b[0] = seg(&f, 0, ACK, 0, 1000, &l[0]);
		b[1] = seg(&f, 1000, ACK, 0, 1000, &l[1]);
		f2.ack++;				/* new ACK number */
		b[2] = seg(&f2, 2000, ACK, 0, 1000, &l[2]);
		f2.tos = 3;				/* CE mark */
		b[3] = seg(&f2, 3000, ACK, 0, 1000, &l[3]);
		b[4] = seg(&f2, 4000, ACK | SYN, 0, 1000, &l[4]);
		b[5] = seg(&f2, 5000, ACK, 0, 1000, &l[5]);
		b[5][8]--;				/* TTL */
		b[5][10]++;
		for (int i = 0; i < 6; i++)
			assert_int_equal(offload_gro_add(g, b[i], l[i]), 0);
		assert_int_equal(offload_gro_flush(g, &w), 5);
		assert_int_equal(w[0].iovcnt, 2);
		gfree(b, 6);
		offload_gro_free(g);
	}
	/* Options must match (timestamps differ here). */
	{
		struct offload_gro *g = offload_gro_new(8);
		const struct offload_write *w;
		struct flow f2 = flow6;
		uint8_t *b[3];
		size_t l[3];

		assert_non_null(g);
		b[0] = seg(&f2, 0, ACK, 0, 1000, &l[0]);
		b[1] = seg(&f2, 1000, ACK, 0, 1000, &l[1]);
		b[2] = seg(&f2, 2000, ACK, 0, 1000, &l[2]);
		b[2][40 + 27]++;
		for (int i = 0; i < 3; i++)
			assert_int_equal(offload_gro_add(g, b[i], l[i]), 0);
		assert_int_equal(offload_gro_flush(g, &w), 2);
		assert_int_equal(w[0].iovcnt, 2);
		assert_int_equal(w[1].iovcnt, 1);
		gfree(b, 3);
		offload_gro_free(g);
	}
}

static void
test_gro_limits(void **state)
{
	static uint8_t flat[VNET + 70000];
	struct offload_gro *g = offload_gro_new(64);
	const struct offload_write *w;
	uint8_t *bufs[64], x[4] = { 0x45 };
	size_t lens[64], nw, fl;

	assert_non_null(g);
	assert_null(offload_gro_new(0));
	assert_null(offload_gro_new(OFFLOAD_GRO_MAX_PKTS + 1));
	offload_gro_free(NULL);

	/* 60 x 1380 bytes do not fit one 64 KiB packet: 47 + 13. */
	for (int i = 0; i < 60; i++) {
		bufs[i] = seg(&flow4, (uint32_t)i * 1380, ACK, (size_t)i * 1380,
		    1380, &lens[i]);
		assert_int_equal(offload_gro_add(g, bufs[i], lens[i]), 0);
	}
	nw = offload_gro_flush(g, &w);
	assert_int_equal(nw, 2);
	assert_int_equal(w[0].iovcnt, 47);
	assert_int_equal(w[1].iovcnt, 13);
	fl = flatten(&w[0], flat);
	check_gro_write(flat, fl, 47);
	assert_true(fl - VNET <= 65535);
	fl = flatten(&w[1], flat);
	check_gro_write(flat, fl, 13);
	assert_int_equal(get_be32(flat + VNET + 24), 47 * 1380);
	offload_gro_reset(g);

	/* Capacity. */
	for (int i = 0; i < 64; i++)
		assert_int_equal(offload_gro_add(g, bufs[0], lens[0]), 0);
	assert_int_equal(offload_gro_add(g, bufs[0], lens[0]), -ENOSPC);
	offload_gro_reset(g);
	assert_int_equal(offload_gro_add(g, bufs[0], 0), -EINVAL);
	assert_int_equal(offload_gro_add(g, bufs[0], 65536), -EINVAL);
	assert_int_equal(offload_gro_flush(g, &w), 0);
	offload_gro_reset(g);

	/* Garbage passes through untouched. */
	{
		uint8_t *b = gbuf(x, sizeof x);

		assert_int_equal(offload_gro_add(g, b, sizeof x), 0);
		assert_int_equal(offload_gro_flush(g, &w), 1);
		check_pass_write(&w[0], b, sizeof x);
		gfree(&b, 1);
	}
	gfree(bufs, 60);
	offload_gro_free(g);

	/* An odd capacity still lays its arrays out aligned (UBSan checks). */
	g = offload_gro_new(5);
	assert_non_null(g);
	for (int i = 0; i < 5; i++) {
		bufs[i] = seg(&flow6, (uint32_t)i * 1000, ACK, 0, 1000, &lens[i]);
		assert_int_equal(offload_gro_add(g, bufs[i], lens[i]), 0);
	}
	assert_int_equal(offload_gro_add(g, bufs[0], lens[0]), -ENOSPC);
	assert_int_equal(offload_gro_flush(g, &w), 1);
	assert_int_equal(w[0].iovcnt, 5);
	gfree(bufs, 5);
	offload_gro_free(g);
}

/*
 * Random batches over four flows (two per family) with gaps, pure ACKs,
 * PSH and short segments: re-splitting the writes in order must give each
 * flow exactly its own packets in their original order.
 */
static void
test_gro_random(void **state)
{
	static uint8_t flat[VNET + 70000];
	struct offload_gro *g = offload_gro_new(64);
	struct segs *s = segs_new();
	struct flow fl[4] = { flow4, flow4, flow6, flow6 };
	uint32_t seq[4] = { 1, 0xfffff000, 77, 0x80000000 };
	uint16_t id[4] = { 0xfff0, 0, 0, 0 };
	uint8_t *bufs[64], *orig[64];
	size_t lens[64];

	assert_non_null(g);
	fl[1].sport++;
	fl[1].tcpopt = 12;
	fl[3].sport++;
	fl[3].tcpopt = 0;
	srand(11);
	for (int iter = 0; iter < 300; iter++) {
		const struct offload_write *w;
		size_t nw, next[4] = { 0 };
		int n = 1 + rand() % 64, who[64];

		offload_gro_reset(g);
		for (int i = 0; i < n; i++) {
			uint8_t tmp[SEGCAP];
			int f = rand() % (iter % 2 ? 4 : 2), r = rand() % 100;
			size_t plen = 1000, l;
			uint8_t flags = ACK;

			if (r < 5)
				plen = 0;		/* pure ACK */
			else if (r < 10)
				plen = 1 + (size_t)rand() % 999;
			else if (r < 15)
				flags |= PSH;
			else if (r < 18)
				seq[f] += 1000;		/* a gap */
			l = build_tcp(tmp, &fl[f], seq[f], id[f]++, flags, 0, plen,
			    false);
			seq[f] += (uint32_t)plen;
			who[i] = f;
			bufs[i] = gbuf(tmp, l);
			orig[i] = malloc(l);
			assert_non_null(orig[i]);
			memcpy(orig[i], tmp, l);
			lens[i] = l;
			assert_int_equal(offload_gro_add(g, bufs[i], l), 0);
		}
		nw = offload_gro_flush(g, &w);
		for (size_t k = 0; k < nw; k++) {
			size_t len = flatten(&w[k], flat);
			int m = offload_split(flat, len, s->ptr, SEGCAP, s->len, MAXSEG);

			assert_int_equal(m, w[k].iovcnt);
			if (get_vnet(flat).gso_type != VIRTIO_NET_HDR_GSO_NONE)
				check_gro_write(flat, len, (size_t)m);
			for (int j = 0; j < m; j++) {
				const uint8_t *o = s->ptr[j];
				size_t iphl = ip_hlen(o);
				int f = ((o[0] >> 4) == 6 ? 2 : 0) +
				    (get_be16(o + iphl) != flow4.sport &&
				    get_be16(o + iphl) != flow6.sport);
				size_t want;

				/* The next packet of flow f in input order. */
				for (want = next[f]; who[want] != f; want++)
					assert_true(want + 1 < (size_t)n);
				next[f] = want + 1;
				assert_int_equal(s->len[j], lens[want]);
				assert_memory_equal(o, orig[want], lens[want]);
			}
		}
		for (int f = 0; f < 4; f++)
			for (size_t i = next[f]; i < (size_t)n; i++)
				assert_true(who[i] != f);	/* nothing lost */
		for (int i = 0; i < n; i++)
			free(orig[i]);
		gfree(bufs, n);
	}
	offload_gro_free(g);
	free(s);
}

static void
test_csum_api(void **state)
{
	uint8_t buf[1031];
	uint64_t s;

	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (uint8_t)(i * 37 + 11);
	for (size_t n = 0; n <= sizeof buf; n++) {
		assert_int_equal(offload_csum(buf, n, 0),
		    (uint16_t)~ref_fold(ref_sum(0, buf, n)));
		/* Even-length blocks may be chained. */
		s = offload_csum_add(0, buf, n & ~(size_t)1);
		s = offload_csum_add(s, buf + (n & ~(size_t)1), n & 1);
		assert_int_equal(offload_csum_fold(s), ref_fold(ref_sum(0, buf, n)));
	}
	s = offload_pseudo_sum(flow6.src, flow6.dst, 16, IPPROTO_TCP, 70000);
	assert_int_equal(offload_csum_fold(s),
	    ref_fold(ref_sum(ref_sum(0, flow6.src, 16), flow6.dst, 16) +
	    (70000 >> 16) + (70000 & 0xffff) + IPPROTO_TCP));
	/* All ones in the accumulator must still fold correctly. */
	memset(buf, 0xff, 64);
	assert_int_equal(offload_csum(buf, 64, UINT64_MAX), 0);
}

/*
 * The kernel's view.  In a fresh network namespace, a vnet TUN with TSO
 * carries a real TCP connection (IPv4, then IPv6) between a socket in this
 * process and a hand-made peer: the peer's data goes in as one GRO
 * super-packet (the kernel rejects bad vnet headers with EINVAL and drops
 * bad IP checksums), and the socket's data comes back as kernel TSO
 * super-packets that we split and check.
 */
#define K_PORT	5555
#define K_PEER	40000

static const uint8_t k_local4[4] = { 10, 77, 0, 1 }, k_peer4[4] = { 10, 77, 0, 2 };
static const uint8_t k_local6[16] = { 0xfd, 0, 0, 0x77, [15] = 1 };
static const uint8_t k_peer6[16] = { 0xfd, 0, 0, 0x77, [15] = 2 };

/* Reads until a TCP packet of our connection arrives; returns the vnet read. */
static ssize_t
ktun_read(int fd, bool v6, uint8_t *buf, size_t cap)
{
	const uint8_t *ip = buf + VNET;
	size_t iphl = v6 ? 40 : 20;

	for (int tries = 0; tries < 50; tries++) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, 2000) != 1)
			return -1;
		n = read(fd, buf, cap);
		if (n < (ssize_t)(VNET + iphl + 20) || (ip[0] >> 4) != (v6 ? 6 : 4) ||
		    ip[v6 ? 6 : 9] != IPPROTO_TCP)
			continue;	/* router solicitations, MLD and the like */
		if (get_be16(ip + iphl) == K_PORT && get_be16(ip + iphl + 2) == K_PEER)
			return n;
	}
	return -1;
}

static void
ktun_write(int fd, const uint8_t *ip, size_t len)
{
	uint8_t b[VNET + 1500] = { 0 };

	memcpy(b + VNET, ip, len);
	assert_int_equal(write(fd, b, VNET + len), (ssize_t)(VNET + len));
}

static const struct flow *
kflow(bool v6, uint32_t ack, uint8_t tcpopt)
{
	static struct flow f;

	memset(&f, 0, sizeof f);
	f.v6 = v6;
	memcpy(f.src, v6 ? k_peer6 : k_peer4, v6 ? 16 : 4);
	memcpy(f.dst, v6 ? k_local6 : k_local4, v6 ? 16 : 4);
	f.sport = K_PEER;
	f.dport = K_PORT;
	f.ack = ack;
	f.win = 65535;
	f.tcpopt = tcpopt;
	return &f;
}

static void
kernel_tcp(int fd, bool v6)
{
	static uint8_t rbuf[VNET + 70000], sbuf[20000], rcv[70000];
	struct sockaddr_storage ss;
	socklen_t sslen;
	size_t iphl = v6 ? 40 : 20, got, nseg, seglen, want;
	const size_t data = 1400;
	struct offload_gro *g;
	const struct offload_write *w;
	struct segs *s;
	uint8_t *bufs[64], pkt[1500];
	uint32_t iss, seq = 1000;
	uint16_t win;
	ssize_t n;
	int ls, cs, one = 1, gso_reads = 0;

	memset(&ss, 0, sizeof ss);
	if (v6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(K_PORT);
		memcpy(&sin6->sin6_addr, k_local6, 16);
		sslen = sizeof *sin6;
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(K_PORT);
		memcpy(&sin->sin_addr, k_local4, 4);
		sslen = sizeof *sin;
	}
	ls = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(ls >= 0);
	assert_int_equal(setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), 0);
	/*
	 * Even without DAD a new IPv6 address stays tentative until a work
	 * item runs, and binding to it fails until then.
	 */
	for (int tries = 0; bind(ls, (struct sockaddr *)&ss, sslen) != 0; tries++) {
		assert_int_equal(errno, EADDRNOTAVAIL);
		assert_true(tries < 500);
		usleep(10000);
	}
	assert_int_equal(listen(ls, 1), 0);

	/* Handshake: a SYN with MSS 1460; the kernel's SYN-ACK split and checked. */
	ktun_write(fd, pkt, build_tcp(pkt, kflow(v6, 0, 4), seq - 1, 1, SYN, 0, 0,
	    false));
	n = ktun_read(fd, v6, rbuf, sizeof rbuf);
	assert_true(n > 0);
	s = segs_new();
	assert_int_equal(offload_split(rbuf, (size_t)n, s->ptr, SEGCAP, s->len,
	    MAXSEG), 1);
	assert_int_equal(s->ptr[0][iphl + 13], SYN | ACK);
	assert_true(v6 || ipv4_csum_ok(s->ptr[0]));
	assert_true(l4_csum_ok(s->ptr[0], s->len[0], IPPROTO_TCP));
	iss = get_be32(s->ptr[0] + iphl + 4);
	win = get_be16(s->ptr[0] + iphl + 14);
	ktun_write(fd, pkt, build_tcp(pkt, kflow(v6, iss + 1, 0), seq, 2, ACK, 0,
	    0, false));
	{
		struct pollfd pfd = { .fd = ls, .events = POLLIN };

		assert_int_equal(poll(&pfd, 1, 2000), 1);
		cs = accept(ls, NULL, NULL);
		assert_true(cs >= 0);
	}

	/* The kernel checks vnet headers: a checksum field past the end fails. */
	{
		uint8_t b[VNET + 60];
		size_t l = build_tcp(b + VNET, kflow(v6, iss + 1, 0), seq, 3, ACK,
		    0, 0, true);

		put_vnet(b, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0,
		    (uint16_t)(l - 1), 16);
		assert_int_equal(write(fd, b, VNET + l), -1);
		assert_int_equal(errno, EINVAL);
	}

	/* Peer to socket: one GRO write of as many segments as the window takes. */
	nseg = MIN(46u, win / data);
	assert_true(nseg >= 2);
	g = offload_gro_new(64);
	assert_non_null(g);
	for (size_t i = 0; i < nseg; i++) {
		size_t l = build_tcp(pkt, kflow(v6, iss + 1, 0),
		    seq + (uint32_t)(i * data), (uint16_t)(3 + i),
		    i == nseg - 1 ? ACK | PSH : ACK, i * data, data, false);

		bufs[i] = gbuf(pkt, l);
		assert_int_equal(offload_gro_add(g, bufs[i], l), 0);
	}
	assert_int_equal(offload_gro_flush(g, &w), 1);
	assert_int_equal(w[0].iovcnt, nseg);
	assert_int_equal(writev(fd, w[0].iov, (int)w[0].iovcnt), (ssize_t)w[0].len);
	for (got = 0; got < nseg * data;) {
		struct pollfd pfd = { .fd = cs, .events = POLLIN };

		assert_int_equal(poll(&pfd, 1, 2000), 1);
		n = recv(cs, rcv + got, sizeof rcv - got, 0);
		assert_true(n > 0);
		got += (size_t)n;
	}
	assert_int_equal(got, nseg * data);
	assert_memory_equal(rcv, pattern, got);
	print_message("IPv%d: kernel took a %zu-byte GRO write of %zu segments\n",
	    v6 ? 6 : 4, w[0].len, nseg);
	gfree(bufs, (int)nseg);
	offload_gro_free(g);

	/*
	 * Socket to peer: the first flight (initial cwnd 10 segments of the
	 * MSS the kernel picks from our 1460 and its MTU) as TSO reads.
	 */
	for (size_t i = 0; i < sizeof sbuf; i++)
		sbuf[i] = (uint8_t)(i * 13 + 5);
	assert_int_equal(send(cs, sbuf, sizeof sbuf, 0), (ssize_t)sizeof sbuf);
	want = 10 * MIN(1460u, 1500 - iphl - 20);
	for (got = 0; got < want;) {
		struct virtio_net_hdr h;
		int k;

		n = ktun_read(fd, v6, rbuf, sizeof rbuf);
		assert_true(n > 0);
		h = get_vnet(rbuf);
		if (h.gso_type != VIRTIO_NET_HDR_GSO_NONE)
			gso_reads++;
		k = offload_split(rbuf, (size_t)n, s->ptr, SEGCAP, s->len, MAXSEG);
		assert_true(k > 0);
		for (int i = 0; i < k; i++) {
			const uint8_t *o = s->ptr[i];
			size_t off = get_be32(o + iphl + 4) - (iss + 1);

			seglen = s->len[i] - iphl - 20;
			assert_true(seglen <= 1460);
			assert_true(v6 || ipv4_csum_ok(o));
			assert_true(l4_csum_ok(o, s->len[i], IPPROTO_TCP));
			assert_int_equal(v6 ? get_be16(o + 4) + 40u : get_be16(o + 2),
			    s->len[i]);
			assert_true(off + seglen <= sizeof sbuf);
			assert_memory_equal(o + iphl + 20, sbuf + off, seglen);
			got += seglen;
		}
	}
	print_message("IPv%d: kernel sent %zu bytes in %d TSO super-packet read(s)\n",
	    v6 ? 6 : 4, got, gso_reads);
	assert_true(gso_reads > 0);
	free(s);
	close(cs);
	close(ls);
}

static void
test_kernel_roundtrip(void **state)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct in6_ifreq {	/* <linux/ipv6.h>, which clashes with libc's */
		struct in6_addr addr;
		uint32_t prefixlen;
		int ifindex;
	} ifr6;
	struct ifreq ifr;
	int fd = -1, ctl, vhs = VNET;
	FILE *f;

	if (unshare(CLONE_NEWNET) != 0 ||
	    (fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC)) < 0) {
		print_message("no netns/TUN here (%s): skipped\n", strerror(errno));
		skip();
	}
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, "offt0");
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI | IFF_VNET_HDR;
	assert_int_equal(ioctl(fd, TUNSETIFF, &ifr), 0);
	assert_int_equal(ioctl(fd, TUNSETVNETHDRSZ, &vhs), 0);
	assert_int_equal(ioctl(fd, TUNSETOFFLOAD,
	    TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6), 0);

	ctl = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(ctl >= 0);
	memcpy(&sin.sin_addr, k_local4, 4);
	memcpy(&ifr.ifr_addr, &sin, sizeof sin);
	assert_int_equal(ioctl(ctl, SIOCSIFADDR, &ifr), 0);
	sin.sin_addr.s_addr = htonl(0xffffff00);
	memcpy(&ifr.ifr_netmask, &sin, sizeof sin);
	assert_int_equal(ioctl(ctl, SIOCSIFNETMASK, &ifr), 0);
	assert_int_equal(ioctl(ctl, SIOCGIFFLAGS, &ifr), 0);
	ifr.ifr_flags |= IFF_UP;
	assert_int_equal(ioctl(ctl, SIOCSIFFLAGS, &ifr), 0);
	close(ctl);

	/* IPv6 without duplicate address detection, so it is usable at once. */
	if ((f = fopen("/proc/sys/net/ipv6/conf/offt0/accept_dad", "w")) != NULL) {
		fputs("0\n", f);
		fclose(f);
	}
	ctl = socket(AF_INET6, SOCK_DGRAM, 0);
	assert_true(ctl >= 0);
	memset(&ifr6, 0, sizeof ifr6);
	memcpy(&ifr6.addr, k_local6, 16);
	ifr6.prefixlen = 64;
	ifr6.ifindex = (int)if_nametoindex("offt0");
	assert_int_equal(ioctl(ctl, SIOCSIFADDR, &ifr6), 0);
	close(ctl);

	kernel_tcp(fd, false);
	kernel_tcp(fd, true);
	close(fd);
}

static int
setup(void **state)
{
	uint32_t x = 0x12345678;

	for (size_t i = 0; i < sizeof pattern; i++) {
		x = x * 1103515245 + 12345;
		pattern[i] = (uint8_t)(x >> 16);
	}
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_csum_api),
		cmocka_unit_test(test_split_v4),
		cmocka_unit_test(test_split_v6),
		cmocka_unit_test(test_split_none),
		cmocka_unit_test(test_split_errors),
		cmocka_unit_test(test_gro_roundtrip),
		cmocka_unit_test(test_gro_mixed),
		cmocka_unit_test(test_gro_breaks),
		cmocka_unit_test(test_gro_limits),
		cmocka_unit_test(test_gro_random),
		/* Last: it moves the process into its own network namespace. */
		cmocka_unit_test(test_kernel_roundtrip),
	};

	return cmocka_run_group_tests_name("offload", tests, setup, NULL);
}

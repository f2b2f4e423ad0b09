/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_OFFLOAD_H
#define MESHD_OFFLOAD_H

/*
 * TUN offloads (IFF_VNET_HDR with TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6),
 * sans-I/O: this module never touches a file descriptor and never allocates
 * on the packet path.
 *
 * Every read() from and write() to such a TUN starts with a 10-byte
 * struct virtio_net_hdr (<linux/virtio_net.h>).  Its 16-bit fields are in
 * the kernel's legacy vnet byte order, which is the host's own unless
 * TUNSETVNETLE/TUNSETVNETBE is used (we never do); on x86 that is
 * little-endian.
 *
 *  - offload_split() turns what we read (a plain packet whose checksum may
 *    be partial, or a TCP super-packet of up to 64 KiB) into plain,
 *    fully checksummed IP packets for WireGuard.
 *  - struct offload_gro coalesces decrypted TCP segments of one flow back
 *    into super-packets before they are written to the TUN, so the kernel
 *    handles one skb instead of dozens.
 *  - offload_csum*() are the Internet checksum (RFC 1071) helpers both use.
 */

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define OFFLOAD_VNET_HDR_LEN	10	/* sizeof(struct virtio_net_hdr) */
/* Bytes the GRO writes in front of each packet: its vnet header. */
#define OFFLOAD_HEADROOM	OFFLOAD_VNET_HDR_LEN
/* Largest packet offload_gro_add() takes (the IPv4 total length is 16 bits). */
#define OFFLOAD_MAX_PKT		65535
/*
 * Largest read() from a vnet TUN, so the size of the buffer to read into:
 * an IPv6 super-packet may carry a 65535-byte payload behind its header.
 */
#define OFFLOAD_MAX_READ	(OFFLOAD_VNET_HDR_LEN + 40 + 65535)
/* Upper bound for offload_gro_new(); 128 is wireguard-go's IdealBatchSize. */
#define OFFLOAD_GRO_MAX_PKTS	1024

/*
 * Checksums.  An accumulator is an opaque 64-bit one's-complement sum that
 * starts at 0; feed it with offload_csum_add() (only the last block fed may
 * have an odd length, as the sum works on 16-bit words) and
 * offload_pseudo_sum(), then fold it.
 *
 * Results are host-order values of the big-endian field: store them with
 * put_be16() / htons().
 */
uint64_t offload_csum_add(uint64_t sum, const void *buf, size_t len);
/*
 * The TCP/UDP pseudo-header: addr_len is 4 (IPv4) or 16 (IPv6), l4_len the
 * transport header plus payload length, proto the IP protocol number.
 */
uint64_t offload_pseudo_sum(const uint8_t *src, const uint8_t *dst,
    size_t addr_len, uint8_t proto, uint32_t l4_len);
/* The folded, not complemented, 16-bit sum (what a partial checksum holds). */
uint16_t offload_csum_fold(uint64_t sum);
/* The Internet checksum of buf on top of sum: ~fold(sum + buf). */
uint16_t offload_csum(const void *buf, size_t len, uint64_t sum);

/*
 * Splits what one read() from the TUN returned.
 *
 * in/len: the vnet header followed by one IP packet.  Not modified.
 * out[0..nout-1]: caller-owned buffers of out_cap bytes each; on success
 * out[i] holds a plain IP packet (no vnet header) of out_len[i] bytes with
 * its IPv4 header and TCP/UDP checksums complete.
 *
 * GSO_NONE: the packet is copied; with VIRTIO_NET_HDR_F_NEEDS_CSUM the
 * checksum from csum_start to the end is completed into
 * csum_start + csum_offset (any protocol, so UDP and ICMPv6 too).
 * GSO_TCPV4/TCPV6 (ECN bit allowed): the payload is cut into gso_size
 * chunks, each sent with a copy of the IP and TCP headers fixed up as the
 * kernel's own TSO does (lengths, IPv4 ID + i, seq, FIN/PSH only on the
 * last segment, CWR only on the first, fresh checksums).  The vnet header's
 * hdr_len is ignored: the kernel fills it with the skb's linear length,
 * which need not be the header length.
 *
 * Each segment is at most the headers plus gso_size bytes, so buffers of
 * the TUN MTU suffice for what a TSO read gives.
 *
 * Returns the number of packets written (>= 1), or
 *   -EINVAL           malformed or inconsistent header or packet,
 *   -EPROTONOSUPPORT  GSO of IPv6 with extension headers, or UDP GSO,
 *   -EMSGSIZE         more than nout segments, or one larger than out_cap.
 * On error the contents of out[] are unspecified.
 */
int offload_split(const uint8_t *in, size_t len, uint8_t *const *out,
    size_t out_cap, uint16_t *out_len, size_t nout)
    __attribute__((warn_unused_result));

/*
 * Coalescing (GRO) of a batch of packets about to be written to the TUN.
 *
 * Use: reset, add each packet of the batch in order, flush once, write
 * every write it returns (writev(), in order), then reset for the next
 * batch.  The struct is opaque, allocated once with offload_gro_new() and
 * owned by the caller; it is not thread-safe.
 *
 * Buffer contract for offload_gro_add(g, pkt, len):
 *  - OFFLOAD_HEADROOM bytes before pkt are writable and belong to us: the
 *    vnet header is written there;
 *  - the packet bytes may be modified in place (a group's first packet gets
 *    the super-packet's lengths and checksums);
 *  - the buffer must stay valid and unmoved until the caller is done with
 *    the writes of that batch (the next offload_gro_reset()).
 * Nothing is copied: a coalesced group's write is an iovec list made of the
 * first packet (vnet header, headers and payload, contiguous) followed by
 * the payloads of the others, read straight out of their buffers.
 *
 * Segments coalesce when they belong to the same TCP flow and have equal
 * IP headers apart from length/ID/checksum (IPv4 without fragmentation,
 * IPv6 without extension headers), equal TCP headers apart from
 * seq/checksum/PSH, flags only ACK and PSH, a non-empty payload, a seq that
 * continues the group, and the size of the first segment (only the last may
 * be shorter, and a shorter or PSH segment closes the group), while the
 * 16-bit IPv4 total length or IPv6 payload length can describe the result.
 * The result carries NEEDS_CSUM with the pseudo-header sum in the TCP
 * checksum field, csum_start/hdr_len at the TCP header/payload, gso_size =
 * the first segment's payload, and the first segment's IPv4 ID (the kernel
 * numbers the others on).  The segments' own checksums are not verified:
 * they came out of an authenticated WireGuard session.  The kernel answers
 * a write with a header it dislikes with EINVAL: count and drop it.
 *
 * Everything else (UDP, ICMP, SYN/FIN/RST/URG/ECE/CWR segments, pure ACKs,
 * groups of one) is written as it is behind an all-zero vnet header.
 * Writes come out in the order of each group's first packet; packets of one
 * flow never overtake each other, because a flow's open group is closed as
 * soon as one of its packets does not join it.  (Packets whose ports cannot
 * be seen, IPv4 non-first fragments and IPv6 with extension headers, are
 * not tied to a flow and pass at their own place.)
 */
struct offload_gro;

struct offload_write {
	const struct iovec *iov;	/* iov[0] starts with the vnet header */
	unsigned int iovcnt;		/* <= max_pkts <= IOV_MAX */
	size_t len;			/* bytes over iov, header included */
};

/*
 * Allocates bookkeeping for batches of up to max_pkts packets
 * (1..OFFLOAD_GRO_MAX_PKTS), ready to use.  Returns NULL on bad max_pkts or
 * out of memory.  Free with offload_gro_free(), which accepts NULL.
 */
struct offload_gro *offload_gro_new(unsigned int max_pkts)
    __attribute__((warn_unused_result));
void offload_gro_free(struct offload_gro *g);
/* Forgets the batch (and invalidates the writes of the last flush). */
void offload_gro_reset(struct offload_gro *g);
/*
 * Adds a packet (see the buffer contract above).  Returns 0, -EINVAL for
 * len 0 or above OFFLOAD_MAX_PKT, -ENOSPC when the batch is full (flush,
 * write, reset and add it again), or -EBUSY after a flush without reset.
 */
int offload_gro_add(struct offload_gro *g, uint8_t *pkt, size_t len)
    __attribute__((warn_unused_result));
/*
 * Ends the batch: fixes up the headers of coalesced groups and returns the
 * number of writes, with *writes pointing at an array owned by g that stays
 * valid until offload_gro_reset() or offload_gro_free().  Flushing again
 * before a reset returns the same writes.
 */
size_t offload_gro_flush(struct offload_gro *g,
    const struct offload_write **writes);

#endif

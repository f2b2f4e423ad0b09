// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * `meshd wg [-f] IFNAME`: a plain userspace WireGuard interface, configured
 * by wg(8) over the UAPI socket, like wireguard-go.
 *
 * One libevent loop moves packets between the TUN device and one UDP socket
 * per address family, with the kernel's offloads doing the per-packet work
 * where it can (perf.md §1.1):
 *  - the TUN is opened with IFF_VNET_HDR and TSO, so one read() returns a
 *    TCP super-packet of up to 64 KiB, which offload_split() cuts into
 *    MTU-sized packets;
 *  - encrypted datagrams to one endpoint leave as one UDP GSO send
 *    (UDP_SEGMENT), many of them per sendmmsg();
 *  - UDP_GRO hands us runs of datagrams in one buffer, many per recvmmsg(),
 *    which are decrypted in place;
 *  - decrypted TCP segments of one flow are coalesced back into a
 *    super-packet for a single TUN write.
 * Packet buffers come from a pool sized at start-up; nothing on the packet
 * path allocates.
 */
#include <arpa/inet.h>
#include <linux/virtio_net.h>
#include <netinet/udp.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>
#include <sodium.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/pkt.h"
#include "common/util.h"
#include "wg/offload.h"
#include "wg/tun.h"
#include "wg/uapi.h"
#include "wg/wg.h"
#include "wg/wgd.h"

#define WGD_POOL	2048		/* ~3.3 MB of packet buffers */
#define WGD_SOCKBUF	(7 << 20)	/* as wireguard-go: absorbs bursts at high rates */
#define WGD_DEFAULT_MTU	1420
#define WGD_TUN_READS	8		/* super-packets read per wake-up, to bound latency */
#define WGD_SPLIT_MAX	128		/* segments one super-packet may become */
#define WGD_RX_SLOTS	8		/* recvmmsg batch; each slot takes a GRO run */
#define WGD_RX_SLOT	65536
#define WGD_GRO_BATCH	(WGD_RX_SLOTS * UDP_GSO_MAX)	/* packets one recvmmsg can yield */
#define TXQ_PKTS	256
#define UDP_GSO_MAX	64		/* the kernel's UDP_MAX_SEGMENTS */
#define UDP_GSO_BYTES	65000

/*
 * Datagrams waiting to be sent.  Consecutive datagrams to the same endpoint
 * with the same size share one message as UDP GSO segments (only the last may
 * be shorter); the segments are separate iovecs, so nothing is copied.
 */
struct txq {
	unsigned int npkts, nmsgs;
	struct pkt *pkts[TXQ_PKTS];
	struct iovec iov[TXQ_PKTS];
	struct mmsghdr msgs[TXQ_PKTS];
	union wg_endpoint dst[TXQ_PKTS];
	uint16_t seg[TXQ_PKTS];
	uint32_t bytes[TXQ_PKTS];
	bool closed[TXQ_PKTS];		/* got a short segment: no more may follow */
	union {
		char buf[CMSG_SPACE(sizeof(uint16_t))];
		struct cmsghdr align;
	} cmsg[TXQ_PKTS];
};

struct wgd {
	struct event_base *base;
	struct wg_device *dev;
	struct pkt_pool pool;
	struct uapi_host host;
	struct uapi_server *uapi;
	char ifname[IFNAMSIZ];

	int tun_fd;
	struct event *tun_ev;
	int sock4, sock6;
	struct event *sock4_ev, *sock6_ev;
	uint16_t port;
	uint32_t fwmark;

	struct event *timer_ev;
	uint64_t timer_at;		/* when timer_ev fires; UINT64_MAX = not armed */
	struct event *sig_ev[2];

	bool vnet;			/* TUN has virtio headers and TSO */
	bool udp_gso;
	bool udp_gro;

	struct txq txq;
	/* Receive batch: recvmmsg fills these. */
	struct mmsghdr rmsgs[WGD_RX_SLOTS];
	struct iovec riov[WGD_RX_SLOTS];
	union wg_endpoint rsrc[WGD_RX_SLOTS];
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} rcmsg[WGD_RX_SLOTS];
	uint8_t *rbuf;			/* WGD_RX_SLOTS * WGD_RX_SLOT bytes */
	struct offload_gro *gro;

	uint8_t *tunbuf;		/* one super-packet read from the TUN */
	struct pkt *split[WGD_SPLIT_MAX];

	uint64_t tun_dropped;		/* no buffer, or TUN write failed */
	uint64_t udp_dropped;		/* sendmmsg failed */
};

/* --- sockets --- */

static int
sock_for(struct wgd *w, int family)
{
	return family == AF_INET6 ? w->sock6 : w->sock4;
}

static bool
same_endpoint(const union wg_endpoint *a, const union wg_endpoint *b)
{
	if (a->sa.sa_family != b->sa.sa_family)
		return false;
	if (a->sa.sa_family == AF_INET6)
		return a->in6.sin6_port == b->in6.sin6_port &&
		    memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, 16) == 0 &&
		    a->in6.sin6_scope_id == b->in6.sin6_scope_id;
	return a->in4.sin_port == b->in4.sin_port && a->in4.sin_addr.s_addr == b->in4.sin_addr.s_addr;
}

static void
txq_flush(struct wgd *w)
{
	struct txq *q = &w->txq;
	unsigned int i = 0;

	for (i = 0; i < q->nmsgs; i++) {
		struct msghdr *mh = &q->msgs[i].msg_hdr;

		mh->msg_name = &q->dst[i];
		mh->msg_namelen = q->dst[i].sa.sa_family == AF_INET6 ?
		    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
		if (mh->msg_iovlen > 1) {
			struct cmsghdr *cm = (struct cmsghdr *)q->cmsg[i].buf;

			cm->cmsg_level = SOL_UDP;
			cm->cmsg_type = UDP_SEGMENT;
			cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
			memcpy(CMSG_DATA(cm), &q->seg[i], sizeof(uint16_t));
			mh->msg_control = q->cmsg[i].buf;
			mh->msg_controllen = sizeof q->cmsg[i].buf;
		}
	}
	i = 0;
	while (i < q->nmsgs) {
		int family = q->dst[i].sa.sa_family, fd = sock_for(w, family);
		unsigned int j = i, done;
		int r;

		/* One sendmmsg per run of the same family. */
		while (j < q->nmsgs && q->dst[j].sa.sa_family == family)
			j++;
		for (done = i; done < j;) {
			if (fd < 0) {
				w->udp_dropped += j - done;
				break;
			}
			r = sendmmsg(fd, &q->msgs[done], j - done, 0);
			if (r < 0) {
				if (errno == EINTR)
					continue;
				/*
				 * EIO means the route's device cannot checksum GSO
				 * segments: fall back to one datagram per message.
				 */
				if (errno == EIO && w->udp_gso) {
					log_warn("%s: UDP GSO refused by the kernel; turning it off",
					    w->ifname);
					w->udp_gso = false;
				}
				/* A full socket buffer or a dead route: drop, as a NIC would. */
				w->udp_dropped += j - done;
				break;
			}
			done += (unsigned int)r;
		}
		i = j;
	}
	for (i = 0; i < q->npkts; i++)
		pkt_put(&w->pool, q->pkts[i]);
	q->npkts = q->nmsgs = 0;
}

static void
txq_add(struct wgd *w, struct pkt *p, const union wg_endpoint *to)
{
	struct txq *q = &w->txq;
	unsigned int m = q->nmsgs - 1, i;

	if (to == NULL) {
		pkt_put(&w->pool, p);
		w->udp_dropped++;
		return;
	}
	if (q->npkts == TXQ_PKTS)
		txq_flush(w);
	i = q->npkts++;
	q->pkts[i] = p;
	q->iov[i].iov_base = pkt_data(p);
	q->iov[i].iov_len = p->len;

	if (w->udp_gso && q->nmsgs > 0 && !q->closed[m] && p->len <= q->seg[m] &&
	    q->msgs[m].msg_hdr.msg_iovlen < UDP_GSO_MAX &&
	    q->bytes[m] + p->len <= UDP_GSO_BYTES && same_endpoint(&q->dst[m], to)) {
		q->msgs[m].msg_hdr.msg_iovlen++;
		q->bytes[m] += p->len;
		q->closed[m] = p->len < q->seg[m];
		return;
	}
	m = q->nmsgs++;
	memset(&q->msgs[m], 0, sizeof q->msgs[m]);
	q->msgs[m].msg_hdr.msg_iov = &q->iov[i];
	q->msgs[m].msg_hdr.msg_iovlen = 1;
	q->dst[m] = *to;
	q->seg[m] = p->len;
	q->bytes[m] = p->len;
	q->closed[m] = false;
}

static int
sock_open(int family, uint16_t *port, uint32_t fwmark)
{
	union wg_endpoint a;
	socklen_t len;
	int fd, one = 1, size = WGD_SOCKBUF;

	fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	memset(&a, 0, sizeof a);
	if (family == AF_INET6) {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
		a.in6.sin6_family = AF_INET6;
		a.in6.sin6_port = htons(*port);
		len = sizeof a.in6;
	} else {
		a.in4.sin_family = AF_INET;
		a.in4.sin_port = htons(*port);
		len = sizeof a.in4;
	}
	/* Big buffers; the FORCE variants pass rmem_max when we hold CAP_NET_ADMIN. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
	if (fwmark && setsockopt(fd, SOL_SOCKET, SO_MARK, &fwmark, sizeof fwmark) < 0)
		goto fail;
	/* Coalesced receive; harmless where unsupported (we then get single datagrams). */
	setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one);
	if (bind(fd, &a.sa, len) < 0)
		goto fail;
	if (getsockname(fd, &a.sa, &len) < 0)
		goto fail;
	*port = ntohs(family == AF_INET6 ? a.in6.sin6_port : a.in4.sin_port);
	return fd;
fail:
	{
		int err = -errno;

		close(fd);
		return err;
	}
}

static void udp_read_cb(evutil_socket_t fd, short what, void *arg);

static void
socks_close(struct wgd *w)
{
	if (w->sock4_ev)
		event_free(w->sock4_ev);
	if (w->sock6_ev)
		event_free(w->sock6_ev);
	if (w->sock4 >= 0)
		close(w->sock4);
	if (w->sock6 >= 0)
		close(w->sock6);
	w->sock4_ev = w->sock6_ev = NULL;
	w->sock4 = w->sock6 = -1;
}

/*
 * Binds both families on one port (0 = let the kernel pick, then use the
 * same for IPv6).  IPv6 may be missing from the host; IPv4 may not.
 */
static int
socks_open(struct wgd *w, uint16_t port, uint32_t fwmark)
{
	uint16_t p = port;
	int s4, s6;

	s4 = sock_open(AF_INET, &p, fwmark);
	if (s4 < 0)
		return s4;
	s6 = sock_open(AF_INET6, &p, fwmark);
	if (s6 < 0 && s6 != -EAFNOSUPPORT && s6 != -EADDRNOTAVAIL) {
		close(s4);
		return s6;
	}
	txq_flush(w);
	socks_close(w);
	w->sock4 = s4;
	w->sock6 = s6;
	w->port = p;
	w->fwmark = fwmark;
	w->sock4_ev = event_new(w->base, s4, EV_READ | EV_PERSIST, udp_read_cb, w);
	event_add(w->sock4_ev, NULL);
	if (s6 >= 0) {
		w->sock6_ev = event_new(w->base, s6, EV_READ | EV_PERSIST, udp_read_cb, w);
		event_add(w->sock6_ev, NULL);
	}
	return 0;
}

/* --- timers --- */

static void
timer_sync(struct wgd *w)
{
	uint64_t next = wg_device_next_deadline(w->dev), now;
	struct timeval tv;

	if (next >= w->timer_at)
		return;
	now = clock_mono_ns();
	next = next > now ? next - now : 0;
	tv.tv_sec = (time_t)(next / NSEC_PER_SEC);
	tv.tv_usec = (suseconds_t)(next % NSEC_PER_SEC / 1000);
	evtimer_add(w->timer_ev, &tv);
	w->timer_at = wg_device_next_deadline(w->dev);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wgd *w = arg;

	w->timer_at = UINT64_MAX;
	wg_device_tick(w->dev, clock_mono_ns());
	txq_flush(w);
	timer_sync(w);
}

/* --- the core's host operations --- */

static void
op_send(void *ctx, struct wg_peer *peer, const union wg_endpoint *to, const uint8_t *buf, size_t len)
{
	struct wgd *w = ctx;
	int fd;

	/* Handshakes and keepalives are rare: send at once, no batching. */
	if (to == NULL)
		return;
	fd = sock_for(w, to->sa.sa_family);
	if (fd < 0 || sendto(fd, buf, len, 0, &to->sa, to->sa.sa_family == AF_INET6 ?
	    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in)) < 0)
		w->udp_dropped++;
}

static void
op_send_pkt(void *ctx, struct wg_peer *peer, struct pkt *p)
{
	struct wgd *w = ctx;
	union wg_endpoint ep;

	txq_add(w, p, wg_peer_endpoint(peer, &ep) ? &ep : NULL);
}

static uint64_t
op_realtime(void *ctx)
{
	return clock_real_ns();
}

static void
op_random(void *ctx, void *buf, size_t len)
{
	randombytes_buf(buf, len);
}

static const struct wg_ops wgd_ops = {
	.send = op_send,
	.send_pkt = op_send_pkt,
	.realtime = op_realtime,
	.random = op_random,
};

/* --- data path --- */

/* Encrypts one inner packet for its peer and queues the datagram. */
static void
tun_packet(struct wgd *w, struct pkt *p, uint64_t now)
{
	struct wg_peer *peer = wg_route(w->dev, pkt_data(p), p->len);
	union wg_endpoint ep;

	if (peer == NULL) {
		pkt_put(&w->pool, p);	/* counted by the core as tx_no_route */
		return;
	}
	switch (wg_encrypt(peer, p, now)) {
	case WG_TX_SEND:
		txq_add(w, p, wg_peer_endpoint(peer, &ep) ? &ep : NULL);
		break;
	case WG_TX_STAGED:
		break;
	case WG_TX_DROP:
		pkt_put(&w->pool, p);
		w->tun_dropped++;
		break;
	}
}

/*
 * How many buffers a read of len bytes can become: one, or for a TSO
 * super-packet one per gso_size of payload (plus one for rounding).  Taking
 * only those keeps the per-read cost, and the pool pages touched, in
 * proportion to the data.  offload_split() checks the header properly.
 */
static size_t
split_count(const struct wgd *w, size_t len)
{
	struct virtio_net_hdr h;

	if (!w->vnet || len < sizeof h)
		return 1;
	memcpy(&h, w->tunbuf, sizeof h);
	if (h.gso_type == VIRTIO_NET_HDR_GSO_NONE || h.gso_size == 0)
		return 1;
	return MIN(len / h.gso_size + 2, (size_t)WGD_SPLIT_MAX);
}

/* One read(): a plain packet, or with virtio headers possibly a TSO super-packet. */
static bool
tun_read_one(struct wgd *w, uint64_t now)
{
	uint8_t *out[WGD_SPLIT_MAX];
	uint16_t lens[WGD_SPLIT_MAX];
	size_t n = 0, want;
	ssize_t len;
	int segs;

	len = read(w->tun_fd, w->tunbuf, OFFLOAD_MAX_READ);
	if (len <= 0)
		return false;
	want = split_count(w, (size_t)len);
	while (n < want && (w->split[n] = pkt_get(&w->pool)) != NULL) {
		out[n] = pkt_data(w->split[n]);
		n++;
	}
	if (w->vnet) {
		segs = offload_split(w->tunbuf, (size_t)len, out, PKT_MAX_PAYLOAD, lens, n);
	} else if (n > 0 && (size_t)len <= PKT_MAX_PAYLOAD) {
		memcpy(out[0], w->tunbuf, (size_t)len);
		lens[0] = (uint16_t)len;
		segs = 1;
	} else {
		segs = -EMSGSIZE;
	}
	if (segs < 0)
		w->tun_dropped++;
	for (size_t i = 0; i < n; i++) {
		if ((int)i < segs) {
			w->split[i]->len = lens[i];
			tun_packet(w, w->split[i], now);
		} else {
			pkt_put(&w->pool, w->split[i]);
		}
	}
	return true;
}

static void
tun_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wgd *w = arg;
	uint64_t now = clock_mono_ns();

	for (int i = 0; i < WGD_TUN_READS && tun_read_one(w, now); i++)
		;
	txq_flush(w);
	timer_sync(w);
}

static void
tun_write(struct wgd *w, uint8_t *data, size_t len)
{
	if (w->vnet) {
		/* The bytes in front held the WireGuard header; reuse them for a plain virtio header. */
		data -= OFFLOAD_VNET_HDR_LEN;
		len += OFFLOAD_VNET_HDR_LEN;
		memset(data, 0, OFFLOAD_VNET_HDR_LEN);
	}
	if (write(w->tun_fd, data, len) < 0)
		w->tun_dropped++;
}

static void
gro_flush(struct wgd *w)
{
	const struct offload_write *wr;
	size_t n = offload_gro_flush(w->gro, &wr);

	for (size_t i = 0; i < n; i++)
		if (writev(w->tun_fd, wr[i].iov, (int)wr[i].iovcnt) < 0)
			w->tun_dropped++;
	offload_gro_reset(w->gro);
}

static void
deliver(struct wgd *w, const struct wg_rx_info *rx)
{
	int r;

	if (w->gro == NULL) {
		tun_write(w, rx->data, rx->len);
		return;
	}
	r = offload_gro_add(w->gro, rx->data, rx->len);
	if (r == -ENOSPC) {
		gro_flush(w);
		r = offload_gro_add(w->gro, rx->data, rx->len);
	}
	if (r < 0)
		w->tun_dropped++;
}

static int
gro_size(const struct msghdr *mh)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR((struct msghdr *)mh, cm)) {
		if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
			int v;

			memcpy(&v, CMSG_DATA(cm), sizeof v);
			return v;
		}
	}
	return 0;
}

static void
udp_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wgd *w = arg;
	uint64_t now;
	int n;

	for (unsigned int i = 0; i < WGD_RX_SLOTS; i++) {
		struct msghdr *mh = &w->rmsgs[i].msg_hdr;

		w->riov[i].iov_base = w->rbuf + (size_t)i * WGD_RX_SLOT;
		w->riov[i].iov_len = WGD_RX_SLOT;
		memset(mh, 0, sizeof *mh);
		mh->msg_name = &w->rsrc[i];
		mh->msg_namelen = sizeof w->rsrc[i];
		mh->msg_iov = &w->riov[i];
		mh->msg_iovlen = 1;
		mh->msg_control = w->rcmsg[i].buf;
		mh->msg_controllen = sizeof w->rcmsg[i].buf;
	}
	n = recvmmsg(fd, w->rmsgs, WGD_RX_SLOTS, MSG_DONTWAIT, NULL);
	now = clock_mono_ns();
	for (int i = 0; i < n; i++) {
		uint8_t *buf = w->riov[i].iov_base;
		size_t len = w->rmsgs[i].msg_len, seg = (size_t)gro_size(&w->rmsgs[i].msg_hdr);
		struct wg_rx_info rx;

		/* A truncated datagram is no message we accept: count it as short. */
		if (len == 0 || (w->rmsgs[i].msg_hdr.msg_flags & MSG_TRUNC)) {
			enum wg_rx r = wg_receive(w->dev, buf, 0, &w->rsrc[i], now, &rx);

			(void)r;	/* always a drop */
			continue;
		}
		/* Without GRO a run is a single datagram. */
		if (seg == 0 || seg > len)
			seg = len;
		for (size_t off = 0; off < len; off += seg) {
			if (wg_receive(w->dev, buf + off, MIN(seg, len - off), &w->rsrc[i], now, &rx) ==
			    WG_RX_DATA)
				deliver(w, &rx);
		}
	}
	if (w->gro != NULL)
		gro_flush(w);
	txq_flush(w);
	timer_sync(w);
}

/* --- UAPI host --- */

static uint16_t
host_get_port(void *ctx)
{
	return ((struct wgd *)ctx)->port;
}

static int
host_set_port(void *ctx, uint16_t port)
{
	struct wgd *w = ctx;

	if (port == w->port && port != 0)
		return 0;
	return socks_open(w, port, w->fwmark);
}

static uint32_t
host_get_fwmark(void *ctx)
{
	return ((struct wgd *)ctx)->fwmark;
}

static int
host_set_fwmark(void *ctx, uint32_t mark)
{
	struct wgd *w = ctx;

	for (int i = 0; i < 2; i++) {
		int fd = i ? w->sock6 : w->sock4;

		if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) < 0)
			return -errno;
	}
	w->fwmark = mark;
	return 0;
}

static uint64_t
host_now(void *ctx)
{
	return clock_mono_ns();
}

static void
host_changed(void *ctx)
{
	struct wgd *w = ctx;

	txq_flush(w);
	timer_sync(w);
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct wgd *w = arg;

	log_info("%s: signal %d, shutting down", w->ifname, (int)sig);
	event_base_loopbreak(w->base);
}

/* --- life cycle --- */

static void
wgd_free(struct wgd *w)
{
	uapi_server_close(w->uapi);
	socks_close(w);
	for (int i = 0; i < 2; i++)
		if (w->sig_ev[i])
			event_free(w->sig_ev[i]);
	if (w->timer_ev)
		event_free(w->timer_ev);
	if (w->tun_ev)
		event_free(w->tun_ev);
	if (w->tun_fd >= 0)
		close(w->tun_fd);
	wg_device_free(w->dev);
	pkt_pool_free(&w->pool);
	offload_gro_free(w->gro);
	free(w->rbuf);
	free(w->tunbuf);
	if (w->base)
		event_base_free(w->base);
	free(w);
}

static struct wgd *
wgd_new(const char *ifname, char **cause)
{
	struct wgd *w = xcalloc(1, sizeof *w);
	int err;

	w->tun_fd = w->sock4 = w->sock6 = -1;
	w->timer_at = UINT64_MAX;
	snprintf(w->ifname, sizeof w->ifname, "%s", ifname);
	w->base = event_base_new();
	w->rbuf = malloc((size_t)WGD_RX_SLOTS * WGD_RX_SLOT);
	w->tunbuf = malloc(OFFLOAD_MAX_READ);
	if (w->base == NULL || w->rbuf == NULL || w->tunbuf == NULL ||
	    pkt_pool_init(&w->pool, WGD_POOL) < 0) {
		*cause = xstrdup("out of memory");
		goto fail;
	}
	w->dev = wg_device_new(&wgd_ops, w, &w->pool);
	if (w->dev == NULL) {
		*cause = xstrdup("out of memory");
		goto fail;
	}
	w->tun_fd = tun_open(w->ifname, !getenv("MESHD_NO_OFFLOAD"), &w->vnet, cause);
	if (w->tun_fd < 0)
		goto fail;
	w->udp_gso = w->vnet;
	if (w->vnet && (w->gro = offload_gro_new(WGD_GRO_BATCH)) == NULL) {
		*cause = xstrdup("out of memory");
		goto fail;
	}
	/* A fresh device gets WireGuard's usual MTU; an existing one keeps its own. */
	if (tun_get_mtu(w->ifname) == 1500)
		(void)tun_set_mtu(w->ifname, WGD_DEFAULT_MTU);
	err = tun_get_mtu(w->ifname);
	wg_device_set_mtu(w->dev, err > 0 ? (unsigned int)err : WGD_DEFAULT_MTU);
	err = socks_open(w, 0, 0);
	if (err < 0) {
		if (asprintf(cause, "UDP socket: %s", strerror(-err)) < 0)
			*cause = NULL;
		goto fail;
	}
	w->tun_ev = event_new(w->base, w->tun_fd, EV_READ | EV_PERSIST, tun_read_cb, w);
	w->timer_ev = evtimer_new(w->base, timer_cb, w);
	w->sig_ev[0] = evsignal_new(w->base, SIGTERM, signal_cb, w);
	w->sig_ev[1] = evsignal_new(w->base, SIGINT, signal_cb, w);
	event_add(w->tun_ev, NULL);
	event_add(w->sig_ev[0], NULL);
	event_add(w->sig_ev[1], NULL);

	w->host = (struct uapi_host){
		.ctx = w,
		.get_listen_port = host_get_port,
		.set_listen_port = host_set_port,
		.get_fwmark = host_get_fwmark,
		.set_fwmark = host_set_fwmark,
		.now = host_now,
		.changed = host_changed,
	};
	w->uapi = uapi_server_open(w->base, w->ifname, w->dev, &w->host, cause);
	if (w->uapi == NULL)
		goto fail;
	return w;
fail:
	wgd_free(w);
	return NULL;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: meshd wg [-f] IFNAME    run a userspace WireGuard interface (configure with wg(8))\n"
	    "       meshd wg --stats IFNAME show the interface's packet and drop counters\n");
}

static int
print_stats(const char *ifname)
{
	char *resp = NULL;
	int r = uapi_client_request(ifname, "get=stats\n\n", &resp);

	if (resp == NULL) {
		fprintf(stderr, "meshd wg: %s: %s\n", ifname, strerror(-r));
		return 1;
	}
	/* Print the counters without the protocol's closing errno line. */
	for (char *line = strtok(resp, "\n"); line; line = strtok(NULL, "\n"))
		if (strncmp(line, "errno=", 6) != 0)
			printf("%s\n", line);
	free(resp);
	return r == 0 ? 0 : 1;
}

/*
 * Forks; the parent waits until the child reports that the interface is up
 * (or why not) and exits with that status, so `meshd wg IFNAME` fails
 * visibly when it cannot create the device.
 */
static int
background(int *notify_fd)
{
	int fds[2];
	pid_t pid;
	char c;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(fds[1]);
		if (read(fds[0], &c, 1) != 1)
			c = 1;
		_exit(c == 0 ? 0 : 1);
	}
	close(fds[0]);
	setsid();
	*notify_fd = fds[1];
	return 0;
}

int
wgd_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "stats", no_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool foreground = false, stats = false;
	int c, notify = -1, ret = 1;
	char *cause = NULL;
	struct wgd *w;

	while ((c = getopt_long(argc, argv, "fh", opts, NULL)) != -1) {
		switch (c) {
		case 'f': foreground = true; break;
		case 's': stats = true; break;
		default: usage(); return c == 'h' ? 0 : 2;
		}
	}
	if (optind != argc - 1 || strlen(argv[optind]) >= IFNAMSIZ) {
		usage();
		return 2;
	}
	if (stats)
		return print_stats(argv[optind]);
	if (sodium_init() < 0)
		fatal("libsodium failed to initialise");
	if (!foreground && background(&notify) < 0)
		fatal("fork: %s", strerror(errno));
	/*
	 * Session keys live inside OpenSSL's cipher contexts, out of reach of
	 * sodium_mlock().  Lock the whole process instead, page by page as it
	 * is touched (MCL_ONFAULT), so no secret is ever swapped out and the
	 * resident size does not grow.  Without CAP_IPC_LOCK this fails: go on.
	 */
	if (mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) < 0)
		log_debug("mlockall: %s", strerror(errno));

	w = wgd_new(argv[optind], &cause);
	if (w == NULL) {
		log_err("%s", cause ? cause : "failed to start");
		free(cause);
		if (notify >= 0)
			(void)!write(notify, "\1", 1);
		return 1;
	}
	log_info("%s: up, listening on UDP port %u%s", w->ifname, w->port,
	    w->vnet ? ", with TUN and UDP offloads" : "");
	if (notify >= 0) {
		int devnull = open("/dev/null", O_RDWR);

		(void)!write(notify, "\0", 1);
		close(notify);
		if (devnull >= 0) {
			dup2(devnull, 0);
			dup2(devnull, 1);
			dup2(devnull, 2);
			close(devnull);
		}
	}
	event_base_dispatch(w->base);
	ret = 0;
	log_info("%s: down", w->ifname);
	wgd_free(w);
	return ret;
}

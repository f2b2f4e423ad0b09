/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */

/* The WireGuard data path; see dp.h. */
#include <arpa/inet.h>
#include <linux/virtio_net.h>
#include <netinet/udp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/event.h>
#include <sodium.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/pkt.h"
#include "common/util.h"
#include "wg/dp.h"
#include "wg/offload.h"
#include "wg/tun.h"
#include "wg/wg.h"

#define DP_POOL	2048		/* ~3.3 MB of packet buffers */
#define DP_SOCKBUF	(7 << 20)	/* as wireguard-go: absorbs bursts at high rates */
#define DP_DEFAULT_MTU	1420
#define DP_TUN_READS	8		/* super-packets read per wake-up, to bound latency */
#define DP_SPLIT_MAX	128		/* segments one super-packet may become */
#define DP_RX_SLOTS	8		/* recvmmsg batch; each slot takes a GRO run */
#define DP_RX_SLOT	65536
#define DP_GRO_BATCH	(DP_RX_SLOTS * UDP_GSO_MAX)	/* packets one recvmmsg can yield */
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

struct dp {
	struct event_base *base;
	struct wg_device *dev;
	struct pkt_pool pool;
	const struct dp_hooks *hooks;
	void *ctx;
	char ifname[IFNAMSIZ];

	int tun_fd;
	struct event *tun_ev;
	int sock4, sock6;
	struct event *sock4_ev, *sock6_ev;
	uint16_t port;
	uint32_t fwmark;

	struct event *timer_ev;
	uint64_t timer_at;		/* when timer_ev fires; UINT64_MAX = not armed */

	bool vnet;			/* TUN has virtio headers and TSO */
	bool udp_gso;
	bool udp_gro;

	struct txq txq;
	/* Receive batch: recvmmsg fills these. */
	struct mmsghdr rmsgs[DP_RX_SLOTS];
	struct iovec riov[DP_RX_SLOTS];
	union wg_endpoint rsrc[DP_RX_SLOTS];
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} rcmsg[DP_RX_SLOTS];
	uint8_t *rbuf;			/* DP_RX_SLOTS * DP_RX_SLOT bytes */
	struct offload_gro *gro;

	uint8_t *tunbuf;		/* one super-packet read from the TUN */
	struct pkt *split[DP_SPLIT_MAX];

	struct dp_stats stats;
};

/* --- sockets --- */

static int
sock_for(struct dp *dp, int family)
{
	return family == AF_INET6 ? dp->sock6 : dp->sock4;
}

static void
txq_flush(struct dp *dp)
{
	struct txq *q = &dp->txq;
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
		int family = q->dst[i].sa.sa_family, fd = sock_for(dp, family);
		unsigned int j = i, done;
		int r;

		/* One sendmmsg per run of the same family. */
		while (j < q->nmsgs && q->dst[j].sa.sa_family == family)
			j++;
		for (done = i; done < j;) {
			if (fd < 0) {
				dp->stats.udp_dropped += j - done;
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
				if (errno == EIO && dp->udp_gso) {
					log_warn("%s: UDP GSO refused by the kernel; turning it off",
					    dp->ifname);
					dp->udp_gso = false;
				}
				/* A full socket buffer or a dead route: drop, as a NIC would. */
				dp->stats.udp_dropped += j - done;
				break;
			}
			done += (unsigned int)r;
		}
		i = j;
	}
	for (i = 0; i < q->npkts; i++)
		pkt_put(&dp->pool, q->pkts[i]);
	q->npkts = q->nmsgs = 0;
}

static void
txq_add(struct dp *dp, struct pkt *p, const union wg_endpoint *to)
{
	struct txq *q = &dp->txq;
	unsigned int m = q->nmsgs - 1, i;

	if (to == NULL) {
		pkt_put(&dp->pool, p);
		dp->stats.udp_dropped++;
		return;
	}
	if (q->npkts == TXQ_PKTS)
		txq_flush(dp);
	i = q->npkts++;
	q->pkts[i] = p;
	q->iov[i].iov_base = pkt_data(p);
	q->iov[i].iov_len = p->len;

	if (dp->udp_gso && q->nmsgs > 0 && !q->closed[m] && p->len <= q->seg[m] &&
	    q->msgs[m].msg_hdr.msg_iovlen < UDP_GSO_MAX &&
	    q->bytes[m] + p->len <= UDP_GSO_BYTES && wg_endpoint_equal(&q->dst[m], to)) {
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
	int fd, one = 1, size = DP_SOCKBUF;

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
socks_close(struct dp *dp)
{
	if (dp->sock4_ev)
		event_free(dp->sock4_ev);
	if (dp->sock6_ev)
		event_free(dp->sock6_ev);
	if (dp->sock4 >= 0)
		close(dp->sock4);
	if (dp->sock6 >= 0)
		close(dp->sock6);
	dp->sock4_ev = dp->sock6_ev = NULL;
	dp->sock4 = dp->sock6 = -1;
}

/*
 * Binds both families on one port (0 = let the kernel pick, then use the
 * same for IPv6).  IPv6 may be missing from the host; IPv4 may not.
 */
static int
socks_open(struct dp *dp, uint16_t port, uint32_t fwmark)
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
	txq_flush(dp);
	socks_close(dp);
	dp->sock4 = s4;
	dp->sock6 = s6;
	dp->port = p;
	dp->fwmark = fwmark;
	dp->sock4_ev = event_new(dp->base, s4, EV_READ | EV_PERSIST, udp_read_cb, dp);
	event_add(dp->sock4_ev, NULL);
	if (s6 >= 0) {
		dp->sock6_ev = event_new(dp->base, s6, EV_READ | EV_PERSIST, udp_read_cb, dp);
		event_add(dp->sock6_ev, NULL);
	}
	return 0;
}

/* --- timers --- */

static void
timer_sync(struct dp *dp)
{
	uint64_t next = wg_device_next_deadline(dp->dev), now;
	struct timeval tv;

	if (next >= dp->timer_at)
		return;
	now = clock_mono_ns();
	next = next > now ? next - now : 0;
	tv.tv_sec = (time_t)(next / NSEC_PER_SEC);
	tv.tv_usec = (suseconds_t)(next % NSEC_PER_SEC / 1000);
	evtimer_add(dp->timer_ev, &tv);
	dp->timer_at = wg_device_next_deadline(dp->dev);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dp *dp = arg;

	dp->timer_at = UINT64_MAX;
	wg_device_tick(dp->dev, clock_mono_ns());
	if (dp->hooks->batch_end)
		dp->hooks->batch_end(dp->ctx, clock_mono_ns());
	txq_flush(dp);
	timer_sync(dp);
}

/* --- the core's host operations --- */

static void
op_send(void *ctx, struct wg_peer *peer, const union wg_endpoint *to, const uint8_t *buf, size_t len)
{
	struct dp *dp = ctx;

	dp->hooks->send(dp->ctx, peer, to, buf, len);
}

static void
op_send_pkt(void *ctx, struct wg_peer *peer, struct pkt *p)
{
	struct dp *dp = ctx;

	dp->hooks->send_pkt(dp->ctx, peer, p);
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

static const struct wg_ops dp_wg_ops = {
	.send = op_send,
	.send_pkt = op_send_pkt,
	.realtime = op_realtime,
	.random = op_random,
};

/* --- data path --- */

/* Encrypts one inner packet for its peer and hands the datagram to the host. */
static void
tun_packet(struct dp *dp, struct pkt *p, uint64_t now)
{
	struct wg_peer *peer = wg_route(dp->dev, pkt_data(p), p->len);

	if (peer == NULL) {
		pkt_put(&dp->pool, p);	/* counted by the core as tx_no_route */
		return;
	}
	switch (wg_encrypt(peer, p, now)) {
	case WG_TX_SEND:
		dp->hooks->send_pkt(dp->ctx, peer, p);
		break;
	case WG_TX_STAGED:
		break;
	case WG_TX_DROP:
		pkt_put(&dp->pool, p);
		dp->stats.tun_dropped++;
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
split_count(const struct dp *dp, size_t len)
{
	struct virtio_net_hdr h;

	if (!dp->vnet || len < sizeof h)
		return 1;
	memcpy(&h, dp->tunbuf, sizeof h);
	if (h.gso_type == VIRTIO_NET_HDR_GSO_NONE || h.gso_size == 0)
		return 1;
	return MIN(len / h.gso_size + 2, (size_t)DP_SPLIT_MAX);
}

/* One read(): a plain packet, or with virtio headers possibly a TSO super-packet. */
static bool
tun_read_one(struct dp *dp, uint64_t now)
{
	uint8_t *out[DP_SPLIT_MAX];
	uint16_t lens[DP_SPLIT_MAX];
	size_t n = 0, want;
	ssize_t len;
	int segs;

	len = read(dp->tun_fd, dp->tunbuf, OFFLOAD_MAX_READ);
	if (len <= 0)
		return false;
	want = split_count(dp, (size_t)len);
	while (n < want && (dp->split[n] = pkt_get(&dp->pool)) != NULL) {
		out[n] = pkt_data(dp->split[n]);
		n++;
	}
	if (dp->vnet) {
		segs = offload_split(dp->tunbuf, (size_t)len, out, PKT_MAX_PAYLOAD, lens, n);
	} else if (n > 0 && (size_t)len <= PKT_MAX_PAYLOAD) {
		memcpy(out[0], dp->tunbuf, (size_t)len);
		lens[0] = (uint16_t)len;
		segs = 1;
	} else {
		segs = -EMSGSIZE;
	}
	if (segs < 0)
		dp->stats.tun_dropped++;
	for (size_t i = 0; i < n; i++) {
		if ((int)i < segs) {
			dp->split[i]->len = lens[i];
			tun_packet(dp, dp->split[i], now);
		} else {
			pkt_put(&dp->pool, dp->split[i]);
		}
	}
	return true;
}

static void
tun_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dp *dp = arg;
	uint64_t now = clock_mono_ns();

	for (int i = 0; i < DP_TUN_READS && tun_read_one(dp, now); i++)
		;
	if (dp->hooks->batch_end)
		dp->hooks->batch_end(dp->ctx, now);
	txq_flush(dp);
	timer_sync(dp);
}

static void
tun_write(struct dp *dp, uint8_t *data, size_t len)
{
	if (dp->vnet) {
		/* The bytes in front held the WireGuard header; reuse them for a plain virtio header. */
		data -= OFFLOAD_VNET_HDR_LEN;
		len += OFFLOAD_VNET_HDR_LEN;
		memset(data, 0, OFFLOAD_VNET_HDR_LEN);
	}
	if (write(dp->tun_fd, data, len) < 0)
		dp->stats.tun_dropped++;
}

static void
gro_flush(struct dp *dp)
{
	const struct offload_write *wr;
	size_t n = offload_gro_flush(dp->gro, &wr);

	for (size_t i = 0; i < n; i++)
		if (writev(dp->tun_fd, wr[i].iov, (int)wr[i].iovcnt) < 0)
			dp->stats.tun_dropped++;
	offload_gro_reset(dp->gro);
}

static void
deliver(struct dp *dp, const struct wg_rx_info *rx)
{
	int r;

	if (dp->gro == NULL) {
		tun_write(dp, rx->data, rx->len);
		return;
	}
	r = offload_gro_add(dp->gro, rx->data, rx->len);
	if (r == -ENOSPC) {
		gro_flush(dp);
		r = offload_gro_add(dp->gro, rx->data, rx->len);
	}
	if (r < 0)
		dp->stats.tun_dropped++;
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
	struct dp *dp = arg;
	uint64_t now;
	int n;

	for (unsigned int i = 0; i < DP_RX_SLOTS; i++) {
		struct msghdr *mh = &dp->rmsgs[i].msg_hdr;

		dp->riov[i].iov_base = dp->rbuf + (size_t)i * DP_RX_SLOT;
		dp->riov[i].iov_len = DP_RX_SLOT;
		memset(mh, 0, sizeof *mh);
		mh->msg_name = &dp->rsrc[i];
		mh->msg_namelen = sizeof dp->rsrc[i];
		mh->msg_iov = &dp->riov[i];
		mh->msg_iovlen = 1;
		mh->msg_control = dp->rcmsg[i].buf;
		mh->msg_controllen = sizeof dp->rcmsg[i].buf;
	}
	n = recvmmsg(fd, dp->rmsgs, DP_RX_SLOTS, MSG_DONTWAIT, NULL);
	now = clock_mono_ns();
	for (int i = 0; i < n; i++) {
		uint8_t *buf = dp->riov[i].iov_base;
		size_t len = dp->rmsgs[i].msg_len, seg = (size_t)gro_size(&dp->rmsgs[i].msg_hdr);
		struct wg_rx_info rx;

		/* A truncated datagram is no message we accept: count it as short. */
		if (len == 0 || (dp->rmsgs[i].msg_hdr.msg_flags & MSG_TRUNC)) {
			enum wg_rx r = wg_receive(dp->dev, buf, 0, &dp->rsrc[i], now, &rx);

			(void)r;	/* always a drop */
			continue;
		}
		/* Without GRO a run is a single datagram. */
		if (seg == 0 || seg > len)
			seg = len;
		for (size_t off = 0; off < len; off += seg) {
			size_t l = MIN(seg, len - off);

			if (dp->hooks->classify &&
			    dp->hooks->classify(dp->ctx, buf + off, l, &dp->rsrc[i], now))
				continue;
			if (wg_receive(dp->dev, buf + off, l, &dp->rsrc[i], now, &rx) == WG_RX_DATA)
				deliver(dp, &rx);
		}
	}
	if (dp->gro != NULL)
		gro_flush(dp);
	if (dp->hooks->batch_end)
		dp->hooks->batch_end(dp->ctx, now);
	txq_flush(dp);
	timer_sync(dp);
}

/* --- life cycle and the host's interface --- */

void
dp_free(struct dp *dp)
{
	if (dp == NULL)
		return;
	socks_close(dp);
	if (dp->timer_ev)
		event_free(dp->timer_ev);
	if (dp->tun_ev)
		event_free(dp->tun_ev);
	if (dp->tun_fd >= 0)
		close(dp->tun_fd);
	wg_device_free(dp->dev);
	pkt_pool_free(&dp->pool);
	offload_gro_free(dp->gro);
	free(dp->rbuf);
	free(dp->tunbuf);
	free(dp);
}

struct dp *
dp_new(struct event_base *base, const struct dp_cfg *cfg, const struct dp_hooks *hooks, void *ctx,
    char **cause)
{
	struct dp *dp = xcalloc(1, sizeof *dp);
	int err;

	dp->base = base;
	dp->hooks = hooks;
	dp->ctx = ctx;
	dp->tun_fd = dp->sock4 = dp->sock6 = -1;
	dp->timer_at = UINT64_MAX;
	snprintf(dp->ifname, sizeof dp->ifname, "%s", cfg->ifname);
	dp->rbuf = malloc((size_t)DP_RX_SLOTS * DP_RX_SLOT);
	dp->tunbuf = malloc(OFFLOAD_MAX_READ);
	if (dp->rbuf == NULL || dp->tunbuf == NULL || pkt_pool_init(&dp->pool, DP_POOL) < 0) {
		*cause = xstrdup("out of memory");
		goto fail;
	}
	dp->dev = wg_device_new(&dp_wg_ops, dp, &dp->pool);
	if (dp->dev == NULL) {
		*cause = xstrdup("out of memory");
		goto fail;
	}
	dp->tun_fd = tun_open(dp->ifname, !getenv("MESHD_NO_OFFLOAD"), &dp->vnet, cause);
	if (dp->tun_fd < 0)
		goto fail;
	dp->udp_gso = dp->vnet;
	if (dp->vnet && (dp->gro = offload_gro_new(DP_GRO_BATCH)) == NULL) {
		*cause = xstrdup("out of memory");
		goto fail;
	}
	/* A fresh device gets WireGuard's usual MTU; an existing one keeps its own. */
	if (cfg->mtu)
		(void)tun_set_mtu(dp->ifname, cfg->mtu);
	else if (tun_get_mtu(dp->ifname) == 1500)
		(void)tun_set_mtu(dp->ifname, DP_DEFAULT_MTU);
	err = tun_get_mtu(dp->ifname);
	wg_device_set_mtu(dp->dev, err > 0 ? (unsigned int)err : DP_DEFAULT_MTU);
	err = socks_open(dp, cfg->port, cfg->fwmark);
	if (err < 0 && cfg->port != 0) {
		/* Someone has the port: any port works, as tailscaled falls back. */
		log_warn("%s: UDP port %u: %s; using another", dp->ifname, cfg->port, strerror(-err));
		err = socks_open(dp, 0, cfg->fwmark);
	}
	if (err < 0) {
		if (asprintf(cause, "UDP socket: %s", strerror(-err)) < 0)
			*cause = NULL;
		goto fail;
	}
	dp->tun_ev = event_new(dp->base, dp->tun_fd, EV_READ | EV_PERSIST, tun_read_cb, dp);
	dp->timer_ev = evtimer_new(dp->base, timer_cb, dp);
	event_add(dp->tun_ev, NULL);
	return dp;
fail:
	dp_free(dp);
	return NULL;
}

struct wg_device *
dp_device(const struct dp *dp)
{
	return dp->dev;
}

const char *
dp_ifname(const struct dp *dp)
{
	return dp->ifname;
}

struct pkt_pool *
dp_pool(struct dp *dp)
{
	return &dp->pool;
}

bool
dp_offloads(const struct dp *dp)
{
	return dp->vnet;
}

uint16_t
dp_port(const struct dp *dp)
{
	return dp->port;
}

int
dp_set_port(struct dp *dp, uint16_t port)
{
	if (port == dp->port && port != 0)
		return 0;
	return socks_open(dp, port, dp->fwmark);
}

uint32_t
dp_fwmark(const struct dp *dp)
{
	return dp->fwmark;
}

int
dp_set_fwmark(struct dp *dp, uint32_t mark)
{
	for (int i = 0; i < 2; i++) {
		int fd = i ? dp->sock6 : dp->sock4;

		if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) < 0)
			return -errno;
	}
	dp->fwmark = mark;
	return 0;
}

void
dp_send(struct dp *dp, struct pkt *p, const union wg_endpoint *to)
{
	txq_add(dp, p, to);
}

int
dp_sendto(struct dp *dp, const uint8_t *buf, size_t len, const union wg_endpoint *to)
{
	int fd = sock_for(dp, to->sa.sa_family);

	if (fd < 0)
		return -EAFNOSUPPORT;
	if (sendto(fd, buf, len, 0, &to->sa, to->sa.sa_family == AF_INET6 ?
	    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in)) < 0) {
		dp->stats.udp_dropped++;
		return -errno;
	}
	return 0;
}

void
dp_receive(struct dp *dp, uint8_t *msg, size_t len, const union wg_endpoint *src, uint64_t now)
{
	struct wg_rx_info rx;

	if (wg_receive(dp->dev, msg, len, src, now, &rx) == WG_RX_DATA) {
		/* One packet at a time: GRO has nothing to coalesce. */
		tun_write(dp, rx.data, rx.len);
	}
}

void
dp_changed(struct dp *dp)
{
	txq_flush(dp);
	timer_sync(dp);
}

void
dp_get_stats(const struct dp *dp, struct dp_stats *out)
{
	*out = dp->stats;
}

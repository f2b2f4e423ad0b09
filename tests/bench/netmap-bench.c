// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * Map-stream cost at tailnet scale (STYLE.md §34, Tailscale's
 * tstest/largetailnet idea): a Headscale-shaped initial MapResponse with
 * N peers (default 10,000), then 1,000 deltas, each framed as on the wire
 * and taken through mapresp_stream -> mapresp_decode -> netmap_apply.
 *
 * Prints: full-map time (plain and zstd), the per-delta mean and max on a
 * netmap of N peers and on one of N/10 peers (O(1) per delta means the two
 * agree), and the memory per peer: VmRSS growth over the build of the
 * netmap, and the bytes the netmap itself accounts for.
 *
 *   netmap-bench [peers]
 */
#include <malloc.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <zstd.h>

#include "agent/control/mapresp.h"
#include "agent/control/netmap.h"
#include "common/util.h"

#define N_DELTAS 1000

struct buf {
	char *p;
	size_t n, cap;
};

static void
bprintf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
bprintf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
	va_end(ap);
	if (r < 0 || (size_t)r >= b->cap - b->n) {
		fprintf(stderr, "bench: buffer too small\n");
		exit(1);
	}
	b->n += (size_t)r;
}

/* Big buffers straight from mmap, so that they never interleave with the
 * heap the netmap lives in and blur the RSS figure. */
static struct buf
buf_new(size_t cap)
{
	struct buf b = { mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
	    0),
	    0, cap };

	if (b.p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	return b;
}

static void
buf_free(struct buf *b)
{
	munmap(b->p, b->cap);
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static long
rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL)
		if (strncmp(line, "VmRSS:", 6) == 0)
			kb = strtol(line + 6, NULL, 10);
	fclose(f);
	return kb;
}

/* One peer as Headscale 0.29.2 sends it to tailscaled 1.102.3 (the shape of
 * a real dump: full Hostinfo with NetInfo and Services). */
static void
peer_json(struct buf *b, int id, int port, bool online)
{
	bprintf(b, "{\"ID\":%d,\"StableID\":\"%d\",\"Name\":\"node-%d.tailnet.test.\",\"User\":%d,"
	    "\"Key\":\"nodekey:%064x\",\"Machine\":\"mkey:%064x\",\"DiscoKey\":\"discokey:%064x\","
	    "\"Addresses\":[\"100.64.%d.%d/32\",\"fd7a:115c:a1e0::%x/128\"],"
	    "\"AllowedIPs\":[\"100.64.%d.%d/32\",\"fd7a:115c:a1e0::%x/128\"],"
	    "\"Endpoints\":[\"198.51.%d.%d:%d\",\"10.%d.%d.1:%d\"],\"HomeDERP\":999,",
	    id, id, id, 1 + id % 50, id, id * 7, id * 13, (id >> 8) & 255, id & 255, id,
	    (id >> 8) & 255, id & 255, id, (id >> 8) & 255, id & 255, port, (id >> 8) & 255,
	    id & 255, port);
	bprintf(b, "\"Hostinfo\":{\"IPNVersion\":\"1.102.3-t0123456789-gabcdef012345\","
	    "\"BackendLogID\":\"%064x\",\"OS\":\"linux\",\"OSVersion\":\"6.1.0-18-amd64\","
	    "\"Container\":false,\"Distro\":\"debian\",\"DistroVersion\":\"12.11\","
	    "\"DistroCodeName\":\"bookworm\",\"Desktop\":false,\"Hostname\":\"node-%d\","
	    "\"NoLogsNoSupport\":true,\"Machine\":\"x86_64\",\"GoArch\":\"amd64\",\"GoArchVar\":\"v1\","
	    "\"GoVersion\":\"go1.26.8\",\"Services\":[{\"Proto\":\"peerapi4\",\"Port\":58436},"
	    "{\"Proto\":\"peerapi6\",\"Port\":58436},{\"Proto\":\"peerapi-dns-proxy\",\"Port\":1}],"
	    "\"NetInfo\":{\"WorkingIPv6\":false,\"OSHasIPv6\":true,\"WorkingUDP\":true,"
	    "\"WorkingICMPv4\":false,\"UPnP\":false,\"PMP\":false,\"PCP\":false,\"PreferredDERP\":999,"
	    "\"DERPLatency\":{\"999-v4\":0.000256637}},\"Userspace\":false,\"UserspaceRouter\":false,"
	    "\"AppConnector\":false,\"StateEncrypted\":false},"
	    "\"Created\":\"2026-11-25T02:22:54.82601666Z\",\"Cap\":130,\"Online\":%s,"
	    "\"MachineAuthorized\":true}", id * 31, id, online ? "true" : "false");
}

static void
full_map(struct buf *b, int n)
{
	bprintf(b, "{\"Node\":");
	peer_json(b, 1, 41641, true);
	bprintf(b,
	    ",\"DERPMap\":{\"Regions\":{\"999\":{\"RegionID\":999,\"RegionCode\":\"headscale\","
	    "\"RegionName\":\"Headscale Embedded DERP\",\"Nodes\":[{\"Name\":\"999\",\"RegionID\":999,"
	    "\"HostName\":\"127.0.0.1\",\"IPv4\":\"127.0.0.1\",\"STUNPort\":3478,\"DERPPort\":8080}]}}},"
	    "\"Peers\":[");
	for (int i = 0; i < n; i++) {
		if (i > 0)
			bprintf(b, ",");
		peer_json(b, i + 2, 41641, true);
	}
	bprintf(b, "],\"DNSConfig\":{\"Resolvers\":[{\"Addr\":\"192.0.2.53\"}],\"Domains\":"
	    "[\"tailnet.test\"],\"Proxied\":true},\"Domain\":\"127.0.0.1\",\"PacketFilters\":{\"base\":"
	    "[{\"SrcIPs\":[\"*\"],\"DstPorts\":[{\"IP\":\"*\",\"Ports\":{\"First\":0,\"Last\":65535}}]}]},"
	    "\"UserProfiles\":[");
	for (int u = 1; u <= 50; u++)
		bprintf(b, "%s{\"ID\":%d,\"LoginName\":\"user%d\",\"DisplayName\":\"User %d\"}",
		    u > 1 ? "," : "", u, u, u);
	bprintf(b, "],\"ControlTime\":\"2026-11-25T02:23:00.967868158Z\"}");
}

/* The kinds of delta Headscale sends most: a changed peer in full
 * (PeersChanged + UserProfiles), endpoint and online patches, a relogin. */
static void
delta_json(struct buf *b, int i, int peers)
{
	int id = 2 + (int)(((unsigned)i * 2654435761u) % (unsigned)peers);

	switch (i % 4) {
	case 0:
		bprintf(b, "{\"PeersChanged\":[");
		peer_json(b, id, 50000 + i, true);
		bprintf(b,
		    "],\"UserProfiles\":[{\"ID\":%d,\"LoginName\":\"user%d\",\"DisplayName\":"
		    "\"User %d\"}],\"ControlTime\":\"2026-11-25T02:24:00Z\"}", 1 + id % 50,
		    1 + id % 50, 1 + id % 50);
		break;
	case 1:
		bprintf(b,
		    "{\"PeersChangedPatch\":[{\"NodeID\":%d,\"Endpoints\":[\"198.51.100.7:%d\","
		    "\"10.0.0.7:%d\"]}],\"ControlTime\":\"2026-11-25T02:24:00Z\"}", id, 1000 + i,
		    1000 + i);
		break;
	case 2:
		bprintf(b, "{\"PeersChangedPatch\":[{\"NodeID\":%d,\"Online\":%s}],"
		    "\"ControlTime\":\"2026-11-25T02:24:00Z\"}", id, (i / 4) % 2 ? "true" : "false");
		break;
	default:
		bprintf(b, "{\"PeersChangedPatch\":[{\"NodeID\":%d,\"Key\":\"nodekey:%064x\","
		    "\"DiscoKey\":\"discokey:%064x\",\"Endpoints\":[\"198.51.100.9:%d\"]}],"
		    "\"ControlTime\":\"2026-11-25T02:24:00Z\"}", id, 0x100000 + i, 0x200000 + i, i);
		break;
	}
}

struct sink {
	struct netmap *nm;
	double decode_ms, apply_ms;
	int errors;
};

static int
on_msg(void *ctx, const char *json, size_t len)
{
	struct sink *s = ctx;
	struct mapresp *mr;
	char where[128];
	double t0 = now_ms(), t1;
	int r = mapresp_decode(json, len, &mr, NULL, where, sizeof where);

	t1 = now_ms();
	s->decode_ms += t1 - t0;
	if (r != 0) {
		fprintf(stderr, "decode: %s (%s)\n", mapresp_strerror(r), where);
		s->errors++;
		return 0;
	}
	netmap_apply(s->nm, mr);
	mapresp_free(mr);
	s->apply_ms += now_ms() - t1;
	return 0;
}

/* Frames json ([u32 LE len][body]), zstd-compressed if asked. */
static struct buf
frame(const char *json, size_t len, bool zstd)
{
	size_t bound = zstd ? ZSTD_compressBound(len) : len;
	struct buf f = buf_new(bound + 4);

	if (zstd) {
		size_t r = ZSTD_compress(f.p + 4, bound, json, len, 1);

		if (ZSTD_isError(r)) {
			fprintf(stderr, "zstd: %s\n", ZSTD_getErrorName(r));
			exit(1);
		}
		len = r;
	} else {
		memcpy(f.p + 4, json, len);
	}
	put_le32((uint8_t *)f.p, (uint32_t)len);
	f.n = len + 4;
	return f;
}

/* Feeds a framed message in 4 KiB pieces, as Noise records would. */
static double
feed(struct sink *s, const struct buf *f, bool zstd)
{
	struct mapresp_stream *st = mapresp_stream_new(zstd ? MAPRESP_STREAM_ZSTD : 0, 0, 0, on_msg,
	    s);
	double t0 = now_ms();

	for (size_t off = 0; off < f->n; off += 4077)
		if (mapresp_stream_feed(st, (const uint8_t *)f->p + off, MIN((size_t)4077,
		    f->n - off)) != 0) {
			fprintf(stderr, "stream: %s\n", mapresp_strerror(mapresp_stream_error(st)));
			exit(1);
		}
	t0 = now_ms() - t0;
	mapresp_stream_free(st);
	return t0;
}

struct delta_stats {
	double mean_us, max_us, p99_us;
};

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static struct delta_stats
run_deltas(struct netmap *nm, int peers, bool zstd)
{
	static double t[N_DELTAS];
	struct delta_stats ds = { 0, 0, 0 };
	struct sink s = { nm, 0, 0, 0 };

	for (int i = 0; i < N_DELTAS; i++) {
		struct buf j = buf_new(1 << 16), f;

		delta_json(&j, i, peers);
		f = frame(j.p, j.n, zstd);
		t[i] = feed(&s, &f, zstd) * 1e3;
		ds.mean_us += t[i];
		buf_free(&f);
		buf_free(&j);
	}
	if (s.errors != 0)
		exit(1);
	ds.mean_us /= N_DELTAS;
	qsort(t, N_DELTAS, sizeof t[0], cmp_double);
	ds.max_us = t[N_DELTAS - 1];
	ds.p99_us = t[N_DELTAS * 99 / 100];
	return ds;
}

int
main(int argc, char **argv)
{
	int peers = argc > 1 ? atoi(argv[1]) : 10000;
	struct buf json, fplain, fzstd, small;
	struct sink s = { NULL, 0, 0, 0 };
	double t_plain, t_zstd, t_again;
	long rss0, rss1, rss2;
	size_t mem;
	struct delta_stats big, little;
	struct netmap *nm2;

	if (peers < 10) {
		fprintf(stderr, "usage: netmap-bench [peers >= 10]\n");
		return 2;
	}
	json = buf_new((size_t)peers * 2048 + (1 << 20));
	full_map(&json, peers);
	fplain = frame(json.p, json.n, false);
	fzstd = frame(json.p, json.n, true);

	/* Warm up the allocator and libsodium, then measure from here. */
	s.nm = netmap_new();
	{
		struct buf w = buf_new(1 << 20), wf;

		full_map(&w, 10);
		wf = frame(w.p, w.n, false);
		feed(&s, &wf, false);
		buf_free(&wf);
		buf_free(&w);
	}
	netmap_free(s.nm);
	malloc_trim(0);

	rss0 = rss_kb();
	s.nm = netmap_new();
	s.decode_ms = s.apply_ms = 0;
	t_plain = feed(&s, &fplain, false);
	rss1 = rss_kb();
	mem = netmap_mem_usage(s.nm);
	if (s.errors != 0 || netmap_peer_count(s.nm) != (size_t)peers || netmap_check(s.nm) != 0) {
		fprintf(stderr, "bench: bad netmap\n");
		return 1;
	}
	printf("netmap-bench: %d peers, full map %.1f MB JSON, %.1f MB zstd\n", peers,
	    json.n / 1e6, fzstd.n / 1e6);
	printf("full map, plain:   %7.1f ms  (decode %.1f ms, apply %.1f ms)\n", t_plain,
	    s.decode_ms, s.apply_ms);
	s.decode_ms = s.apply_ms = 0;
	t_again = feed(&s, &fplain, false);
	printf("same map again:    %7.1f ms  (nothing changed: diff only)\n", t_again);

	big = run_deltas(s.nm, peers, false);
	printf("%d deltas on %d peers:   mean %6.1f us  p99 %6.1f us  max %6.1f us\n", N_DELTAS,
	    peers, big.mean_us, big.p99_us, big.max_us);

	nm2 = netmap_new();
	{
		struct sink s2 = { nm2, 0, 0, 0 };

		small = buf_new((size_t)peers / 10 * 2048 + (1 << 20));
		full_map(&small, peers / 10);
		{
			struct buf f = frame(small.p, small.n, false);

			feed(&s2, &f, false);
			buf_free(&f);
		}
	}
	little = run_deltas(nm2, peers / 10, false);
	printf("%d deltas on %d peers:    mean %6.1f us  p99 %6.1f us  max %6.1f us  (O(1): ratio %.2f)\n",
	    N_DELTAS, peers / 10, little.mean_us, little.p99_us, little.max_us,
	    big.mean_us / little.mean_us);
	netmap_free(nm2);
	buf_free(&small);

	printf("memory: VmRSS +%ld KB for the netmap = %.0f bytes/peer; netmap-owned %.0f bytes/peer\n",
	    rss1 - rss0, (rss1 - rss0) * 1024.0 / peers, (double)mem / peers);
	netmap_free(s.nm);

	s.nm = netmap_new();
	s.decode_ms = s.apply_ms = 0;
	t_zstd = feed(&s, &fzstd, true);
	printf("full map, zstd:    %7.1f ms  (decode %.1f ms, apply %.1f ms, the rest zstd)\n", t_zstd,
	    s.decode_ms, s.apply_ms);
	netmap_free(s.nm);
	malloc_trim(0);
	rss2 = rss_kb();
	printf("after netmap_free: VmRSS %+ld KB against the start\n", rss2 - rss0);
	buf_free(&json);
	buf_free(&fplain);
	buf_free(&fzstd);
	return 0;
}

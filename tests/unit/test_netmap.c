// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * The map stream (control.md §4.3), the MapResponse decoder (§7) and the
 * netmap's delta semantics (§7.1, Go's controlclient/map.go).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <zstd.h>

#include "agent/control/mapresp.h"
#include "agent/control/netmap.h"
#include "common/util.h"

/* ---- helpers ---- */

/* A Headscale 0.29.2 initial map as tailscaled 1.102.3 received it
 * (HEADSCALE_DEBUG_DUMP_MAPRESPONSE_PATH), compacted, with the 64 reverse
 * zones of DNSConfig.Routes cut down to three. */
static const char hs_initial[] =
	"{\"Node\":{\"ID\":2,\"StableID\":\"2\",\"Name\":\"node-two.tailnet.test.\",\"User\":2,\"Key\":\"nodekey:8"
	"805ce4898cc3621d9ed6354387d784419388c2eb8d626ce91ee5029fb9cb078\",\"Machine\":\"mkey:4f48072"
	"d22d6ab62e74e4e89ef19d66590be361870fb05e2719b064a5529c200\",\"DiscoKey\":\"discokey:04856f5f"
	"bca3aee44f98caff1c7921cafc7dbc9f3f009483a676069c2fec1a67\",\"Addresses\":[\"100.64.0.2/32\",\""
	"fd7a:115c:a1e0::2/128\"],\"AllowedIPs\":[\"100.64.0.2/32\",\"fd7a:115c:a1e0::2/128\"],\"Hostinfo"
	"\":{\"IPNVersion\":\"1.102.3-ERR-BuildInfo\",\"BackendLogID\":\"4b376201dee47e617c3deb56d5ad1c70"
	"a9d12644c5d01926afc68cf6bd2bdb74\",\"OS\":\"linux\",\"OSVersion\":\"6.18.44-fc-v657\",\"Container\""
	":true,\"Distro\":\"debian\",\"DistroVersion\":\"12.11\",\"DistroCodeName\":\"bookworm\",\"Desktop\":fa"
	"lse,\"Hostname\":\"node-two\",\"NoLogsNoSupport\":true,\"Machine\":\"x86_64\",\"GoArch\":\"amd64\",\"Go"
	"ArchVar\":\"v1\",\"GoVersion\":\"go1.26.8\",\"Services\":[{\"Proto\":\"peerapi-dns-proxy\",\"Port\":1}]"
	",\"Userspace\":true,\"UserspaceRouter\":true,\"AppConnector\":false,\"StateEncrypted\":false},\"C"
	"reated\":\"2026-11-25T02:22:59.672212566Z\",\"Cap\":142,\"Online\":true,\"MachineAuthorized\":tru"
	"e,\"CapMap\":{\"default-auto-update\":[false],\"https://tailscale.com/cap/file-sharing\":[],\"h"
	"ttps://tailscale.com/cap/is-admin\":[],\"https://tailscale.com/cap/ssh\":[]}},\"DERPMap\":{\"R"
	"egions\":{\"999\":{\"RegionID\":999,\"RegionCode\":\"headscale\",\"RegionName\":\"Headscale Embedded"
	" DERP\",\"Nodes\":[{\"Name\":\"999\",\"RegionID\":999,\"HostName\":\"127.0.0.1\",\"IPv4\":\"127.0.0.1\",\""
	"STUNPort\":13478,\"DERPPort\":18380}]}}},\"Peers\":[{\"ID\":1,\"StableID\":\"1\",\"Name\":\"node-one.t"
	"ailnet.test.\",\"User\":1,\"Key\":\"nodekey:074c0831dec1959625b4d41ce8e09e0d016d64d025774ca310"
	"d8fc25bceb5c77\",\"Machine\":\"mkey:4ef51f1127a8ed2776f73c70df094a17c836767ff5a551b18b1721c8"
	"21ba5154\",\"DiscoKey\":\"discokey:0a5a0938a281ca3f0473053711e5fda9b081ef2d74b7311444ec10c34"
	"6510a54\",\"Addresses\":[\"100.64.0.1/32\",\"fd7a:115c:a1e0::1/128\"],\"AllowedIPs\":[\"100.64.0.1"
	"/32\",\"fd7a:115c:a1e0::1/128\"],\"Endpoints\":[\"127.0.0.1:47932\",\"192.0.2.2:47932\"],\"HomeDER"
	"P\":999,\"Hostinfo\":{\"IPNVersion\":\"1.102.3-ERR-BuildInfo\",\"BackendLogID\":\"9e7d00e874cd0af9"
	"0ddccb1b5ade886d039b2a88d10347a447f40be69d63a2a7\",\"OS\":\"linux\",\"OSVersion\":\"6.18.44-fc-v"
	"657\",\"Container\":true,\"Distro\":\"debian\",\"DistroVersion\":\"12.11\",\"DistroCodeName\":\"bookwo"
	"rm\",\"Desktop\":false,\"Hostname\":\"node-one\",\"NoLogsNoSupport\":true,\"Machine\":\"x86_64\",\"GoA"
	"rch\":\"amd64\",\"GoArchVar\":\"v1\",\"GoVersion\":\"go1.26.8\",\"RoutableIPs\":[\"10.77.0.0/24\"],\"Ser"
	"vices\":[{\"Proto\":\"peerapi4\",\"Port\":58436},{\"Proto\":\"peerapi6\",\"Port\":58436},{\"Proto\":\"pe"
	"erapi-dns-proxy\",\"Port\":1}],\"NetInfo\":{\"WorkingIPv6\":false,\"OSHasIPv6\":true,\"WorkingUDP\""
	":true,\"WorkingICMPv4\":false,\"UPnP\":false,\"PMP\":false,\"PCP\":false,\"PreferredDERP\":999,\"DE"
	"RPLatency\":{\"999-v4\":0.000256637}},\"Userspace\":true,\"UserspaceRouter\":true,\"AppConnector"
	"\":false,\"StateEncrypted\":false},\"Created\":\"2026-11-25T02:22:54.82601666Z\",\"Cap\":142,\"Onl"
	"ine\":true,\"MachineAuthorized\":true}],\"DNSConfig\":{\"Resolvers\":[{\"Addr\":\"192.0.2.53\"}],\"R"
	"outes\":{\"100.100.in-addr.arpa\":[],\"64.100.in-addr.arpa\":[],\"0.e.1.a.c.5.1.1.a.7.d.f.ip6."
	"arpa\":[],\"corp.test\":[{\"Addr\":\"192.0.2.54\"}]},\"Domains\":[\"tailnet.test\",\"search.test\"],\""
	"Proxied\":true,\"ExtraRecords\":[{\"Name\":\"grafana.tailnet.test\",\"Type\":\"A\",\"Value\":\"100.100"
	".50.50\"}]},\"Domain\":\"127.0.0.1\",\"PacketFilters\":{\"base\":[{\"SrcIPs\":[\"*\"],\"DstPorts\":[{\"I"
	"P\":\"*\",\"Ports\":{\"First\":0,\"Last\":65535}}]}]},\"UserProfiles\":[{\"ID\":1,\"LoginName\":\"alice\""
	",\"DisplayName\":\"alice\"},{\"ID\":2,\"LoginName\":\"bob\",\"DisplayName\":\"bob\"}],\"ControlTime\":\"2"
	"026-11-25T02:23:00.967868158Z\"}";

static char *
fx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *
fx(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	assert_true(vasprintf(&s, fmt, ap) >= 0);
	va_end(ap);
	return s;
}

static struct mapresp *
dec_ok(const char *json)
{
	struct mapresp *mr = NULL;
	char where[128];
	int r = mapresp_decode(json, strlen(json), &mr, NULL, where, sizeof where);

	if (r != 0)
		fail_msg("decode failed: %s (%s)", mapresp_strerror(r), where);
	assert_non_null(mr);
	return mr;
}

static int
dec_err(const char *json)
{
	struct mapresp *mr = (struct mapresp *)1;
	int r = mapresp_decode(json, strlen(json), &mr, NULL, NULL, 0);

	if (r == 0)
		mapresp_free(mr);
	else
		assert_null(mr);
	return r;
}

static uint32_t
apply(struct netmap *nm, const char *json)
{
	struct mapresp *mr = dec_ok(json);
	uint32_t c = netmap_apply(nm, mr);

	mapresp_free(mr);
	assert_int_equal(netmap_check(nm), 0);
	return c;
}

/* apply() for a heap string, freed afterwards. */
static uint32_t
apply_f(struct netmap *nm, char *json)
{
	uint32_t c = apply(nm, json);

	free(json);
	return c;
}

/* A peer as Headscale builds it: node i has nodekey:<i in hex>. */
static char *
peer_json(int id, const char *extra)
{
	return fx("{\"ID\":%d,\"StableID\":\"%d\",\"Name\":\"peer%d.ts.test.\",\"User\":%d,"
	    "\"Key\":\"nodekey:%064x\",\"Machine\":\"mkey:%064x\",\"DiscoKey\":\"discokey:%064x\","
	    "\"Addresses\":[\"100.64.%d.%d/32\",\"fd7a:115c:a1e0::%x/128\"],"
	    "\"AllowedIPs\":[\"100.64.%d.%d/32\",\"fd7a:115c:a1e0::%x/128\"],"
	    "\"Endpoints\":[\"192.0.2.1:%d\"],\"HomeDERP\":999,"
	    "\"Hostinfo\":{\"Hostname\":\"peer%d\",\"OS\":\"linux\"},\"Cap\":130,"
	    "\"Online\":true,\"MachineAuthorized\":true%s%s}",
	    id, id, id, 1 + id % 3, id, id + 0x1000, id + 0x2000, id >> 8, id & 255, id,
	    id >> 8, id & 255, id, 40000 + id, id, extra ? "," : "", extra ? extra : "");
}

static void
key_of(uint8_t key[KEY_LEN], int id)
{
	memset(key, 0, KEY_LEN);
	key[28] = (uint8_t)(id >> 24);
	key[29] = (uint8_t)(id >> 16);
	key[30] = (uint8_t)(id >> 8);
	key[31] = (uint8_t)id;
}

/* {"Node":self, "Peers":[ids...]} */
static char *
full_map(const int *ids, size_t n)
{
	char *self = peer_json(1, NULL), *s = fx("{\"Node\":%s,\"Peers\":[", self), *t;

	free(self);
	for (size_t i = 0; i < n; i++) {
		char *p = peer_json(ids[i], NULL);

		t = fx("%s%s%s", s, i ? "," : "", p);
		free(p);
		free(s);
		s = t;
	}
	t = fx("%s]}", s);
	free(s);
	return t;
}

static uint32_t
change_of(const struct netmap *nm, int64_t id)
{
	size_t n;
	const struct netmap_change *c = netmap_changes(nm, &n);
	uint32_t w = 0;

	for (size_t i = 0; i < n; i++)
		if (c[i].id == id)
			w |= c[i].what;
	return w;
}

static void
prefix_is(const struct netmap_prefix *p, const char *addr, int bits)
{
	uint8_t a[16] = { 0 };
	int fam = strchr(addr, ':') ? AF_INET6 : AF_INET;

	assert_int_equal(inet_pton(fam, addr, a), 1);
	assert_int_equal(p->family, fam == AF_INET ? 4 : 6);
	assert_memory_equal(p->addr, a, fam == AF_INET ? 4 : 16);
	assert_int_equal(p->bits, bits);
}

/* ---- framing ---- */

struct rec {
	size_t n;
	char *msg[16];
	size_t len[16];
	int fail_at;		/* 1-based message to fail on, 0 = never */
};

static int
rec_cb(void *ctx, const char *json, size_t len)
{
	struct rec *r = ctx;

	assert_int_equal(json[len], '\0');
	if (r->n < 16) {
		r->msg[r->n] = malloc(len + 1);
		memcpy(r->msg[r->n], json, len + 1);
		r->len[r->n] = len;
	}
	r->n++;
	return r->fail_at != 0 && (int)r->n == r->fail_at ? -1 : 0;
}

static void
rec_free(struct rec *r)
{
	for (size_t i = 0; i < r->n && i < 16; i++)
		free(r->msg[i]);
	memset(r, 0, sizeof *r);
}

/* Appends [u32 LE len][body] to *buf. */
static void
put_frame(uint8_t **buf, size_t *n, const void *body, size_t len)
{
	*buf = realloc(*buf, *n + 4 + len);
	put_le32(*buf + *n, (uint32_t)len);
	memcpy(*buf + *n + 4, body, len);
	*n += 4 + len;
}

/* One zstd frame of s, with or without the content size in its header. */
static void *
zstd_frame(const char *s, bool content_size, size_t *out_len)
{
	size_t cap = ZSTD_compressBound(strlen(s)) + 64, r;
	void *out = malloc(cap);

	if (content_size) {
		ZSTD_CCtx *c = ZSTD_createCCtx();

		ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
		r = ZSTD_compress2(c, out, cap, s, strlen(s));
		assert_false(ZSTD_isError(r));
		ZSTD_freeCCtx(c);
		assert_int_equal(ZSTD_getFrameContentSize(out, r), strlen(s));
	} else {
		/* Streamed without a pledged size, libzstd leaves it out. */
		ZSTD_CCtx *cs = ZSTD_createCCtx();
		ZSTD_inBuffer in = { s, strlen(s), 0 };
		ZSTD_outBuffer ob = { out, cap, 0 };

		ZSTD_CCtx_setParameter(cs, ZSTD_c_checksumFlag, 1);
		assert_false(ZSTD_isError(ZSTD_compressStream2(cs, &ob, &in, ZSTD_e_continue)));
		assert_int_equal(ZSTD_compressStream2(cs, &ob, &in, ZSTD_e_end), 0);
		ZSTD_freeCCtx(cs);
		r = ob.pos;
		assert_true(ZSTD_getFrameContentSize(out, r) == ZSTD_CONTENTSIZE_UNKNOWN);
	}
	*out_len = r;
	return out;
}

static void
test_frame_le_length(void **state __attribute__((unused)))
{
	/* 258 bytes: as little-endian 02 01 00 00; big-endian would read a
	 * 33 MB frame and trip the cap. */
	char body[259];
	uint8_t *buf = NULL;
	size_t n = 0;
	struct rec r = { 0 };
	struct mapresp_stream *s = mapresp_stream_new(0, 0, 0, rec_cb, &r);

	memset(body, ' ', 258);
	body[0] = '{';
	body[257] = '}';
	body[258] = '\0';
	put_frame(&buf, &n, body, 258);
	assert_int_equal(buf[0], 0x02);
	assert_int_equal(buf[1], 0x01);
	assert_int_equal(mapresp_stream_feed(s, buf, n), 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.len[0], 258);
	assert_string_equal(r.msg[0], body);
	assert_int_equal(mapresp_stream_pending(s), 0);
	assert_int_equal(mapresp_stream_stats(s)->frames, 1);
	assert_int_equal(mapresp_stream_stats(s)->wire_bytes, 262);
	mapresp_stream_free(s);
	rec_free(&r);
	free(buf);
}

static void
feed_bytewise(struct mapresp_stream *s, const uint8_t *buf, size_t n)
{
	for (size_t i = 0; i < n; i++)
		assert_int_equal(mapresp_stream_feed(s, buf + i, 1), 0);
}

static void
test_frame_split_bytewise(void **state __attribute__((unused)))
{
	const char *msgs[] = { "{\"KeepAlive\":true}", hs_initial, "{}" };
	uint8_t *buf = NULL;
	size_t n = 0;
	struct rec r = { 0 };
	struct mapresp_stream *s = mapresp_stream_new(0, 0, 0, rec_cb, &r);

	for (size_t i = 0; i < ARRAY_SIZE(msgs); i++)
		put_frame(&buf, &n, msgs[i], strlen(msgs[i]));
	feed_bytewise(s, buf, n);
	assert_int_equal(r.n, 3);
	for (size_t i = 0; i < 3; i++)
		assert_string_equal(r.msg[i], msgs[i]);
	/* A header cut after 3 bytes, then a body cut short: pending. */
	assert_int_equal(mapresp_stream_feed(s, buf, 3), 0);
	assert_int_equal(mapresp_stream_pending(s), 3);
	assert_int_equal(mapresp_stream_feed(s, buf + 3, 5), 0);
	assert_int_equal(mapresp_stream_pending(s), 8);
	assert_int_equal(r.n, 3);
	mapresp_stream_free(s);
	rec_free(&r);
	free(buf);
}

static void
test_frame_zstd(void **state __attribute__((unused)))
{
	const char *msgs[] = { hs_initial, "{\"KeepAlive\":true}", "{\"Domain\":\"x\"}" };
	uint8_t *buf = NULL;
	size_t n = 0, zl[3];
	void *z[3];
	struct rec r = { 0 };
	struct mapresp_stream *s;

	/* With a content size (one-shot path), without (streaming path). */
	z[0] = zstd_frame(msgs[0], true, &zl[0]);
	z[1] = zstd_frame(msgs[1], false, &zl[1]);
	z[2] = zstd_frame(msgs[2], true, &zl[2]);
	for (int i = 0; i < 3; i++)
		put_frame(&buf, &n, z[i], zl[i]);
	/* One message made of two frames: decodes as their concatenation. */
	{
		uint8_t *two = malloc(zl[1] + zl[2]);

		memcpy(two, z[1], zl[1]);
		memcpy(two + zl[1], z[2], zl[2]);
		put_frame(&buf, &n, two, zl[1] + zl[2]);
		free(two);
	}

	for (int pass = 0; pass < 2; pass++) {
		s = mapresp_stream_new(MAPRESP_STREAM_ZSTD, 0, 0, rec_cb, &r);
		if (pass == 0)
			assert_int_equal(mapresp_stream_feed(s, buf, n), 0);
		else
			feed_bytewise(s, buf, n);
		assert_int_equal(r.n, 4);
		for (int i = 0; i < 3; i++)
			assert_string_equal(r.msg[i], msgs[i]);
		assert_int_equal(r.len[3], strlen(msgs[1]) + strlen(msgs[2]));
		assert_memory_equal(r.msg[3], "{\"KeepAlive\":true}{\"Domain\"", 27);
		assert_int_equal(mapresp_stream_stats(s)->json_bytes,
		    strlen(msgs[0]) + 2 * (strlen(msgs[1]) + strlen(msgs[2])));
		mapresp_stream_free(s);
		rec_free(&r);
	}
	for (int i = 0; i < 3; i++)
		free(z[i]);
	free(buf);
}

static void
test_frame_caps(void **state __attribute__((unused)))
{
	uint8_t hdr[4];
	uint8_t *buf = NULL;
	size_t n = 0, zl;
	struct rec r = { 0 };
	struct mapresp_stream *s;
	char *big = malloc(5001);
	void *z;

	/* A length prefix above frame_max: sticky, before any body byte. */
	s = mapresp_stream_new(0, 1000, 0, rec_cb, &r);
	put_le32(hdr, 1001);
	assert_int_equal(mapresp_stream_feed(s, hdr, 4), MAPRESP_E_FRAME_TOO_BIG);
	assert_int_equal(mapresp_stream_error(s), MAPRESP_E_FRAME_TOO_BIG);
	put_frame(&buf, &n, "{}", 2);
	assert_int_equal(mapresp_stream_feed(s, buf, n), MAPRESP_E_FRAME_TOO_BIG);
	assert_int_equal(r.n, 0);
	mapresp_stream_free(s);

	/* Exactly frame_max is fine. */
	s = mapresp_stream_new(0, 2, 0, rec_cb, &r);
	assert_int_equal(mapresp_stream_feed(s, buf, n), 0);
	assert_int_equal(r.n, 1);
	mapresp_stream_free(s);
	rec_free(&r);

	/* Plain JSON is also held to json_max. */
	s = mapresp_stream_new(0, 0, 1, rec_cb, &r);
	assert_int_equal(mapresp_stream_feed(s, buf, n), MAPRESP_E_JSON_TOO_BIG);
	mapresp_stream_free(s);
	free(buf);

	/* zstd: a declared content size above json_max is refused before
	 * decompressing; without a declared size the streaming decoder stops
	 * at json_max + 1. */
	memset(big, 'a', 5000);
	big[0] = '"';
	big[4999] = '"';
	big[5000] = '\0';
	for (int cs = 0; cs < 2; cs++) {
		buf = NULL;
		n = 0;
		z = zstd_frame(big, cs, &zl);
		put_frame(&buf, &n, z, zl);
		s = mapresp_stream_new(MAPRESP_STREAM_ZSTD, 0, 4999, rec_cb, &r);
		assert_int_equal(mapresp_stream_feed(s, buf, n), MAPRESP_E_JSON_TOO_BIG);
		assert_int_equal(r.n, 0);
		mapresp_stream_free(s);
		/* ... and exactly json_max passes. */
		s = mapresp_stream_new(MAPRESP_STREAM_ZSTD, 0, 5000, rec_cb, &r);
		feed_bytewise(s, buf, n);
		assert_int_equal(r.n, 1);
		assert_int_equal(r.len[0], 5000);
		mapresp_stream_free(s);
		rec_free(&r);
		free(z);
		free(buf);
	}
	free(big);
}

static void
test_frame_bad_zstd(void **state __attribute__((unused)))
{
	static const uint8_t garbage[] = { 8, 0, 0, 0, 0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3, 4 };
	static const uint8_t empty[] = { 0, 0, 0, 0 };
	uint8_t *buf = NULL;
	size_t n = 0, zl;
	struct rec r = { 0 };
	struct mapresp_stream *s;
	uint8_t *z = zstd_frame("{\"KeepAlive\":true}", true, &zl);

	s = mapresp_stream_new(MAPRESP_STREAM_ZSTD, 0, 0, rec_cb, &r);
	assert_int_equal(mapresp_stream_feed(s, garbage, sizeof garbage), MAPRESP_E_ZSTD);
	mapresp_stream_free(s);

	s = mapresp_stream_new(MAPRESP_STREAM_ZSTD, 0, 0, rec_cb, &r);
	assert_int_equal(mapresp_stream_feed(s, empty, sizeof empty), MAPRESP_E_ZSTD);
	mapresp_stream_free(s);

	/* A frame cut short (checksum missing), and one with a flipped byte. */
	put_frame(&buf, &n, z, zl - 2);
	s = mapresp_stream_new(MAPRESP_STREAM_ZSTD, 0, 0, rec_cb, &r);
	assert_int_equal(mapresp_stream_feed(s, buf, n), MAPRESP_E_ZSTD);
	mapresp_stream_free(s);
	free(buf);
	buf = NULL;
	n = 0;
	z[zl - 1] ^= 0x55;
	put_frame(&buf, &n, z, zl);
	s = mapresp_stream_new(MAPRESP_STREAM_ZSTD, 0, 0, rec_cb, &r);
	assert_int_equal(mapresp_stream_feed(s, buf, n), MAPRESP_E_ZSTD);
	mapresp_stream_free(s);
	assert_int_equal(r.n, 0);

	/* Trailing garbage after a complete frame. */
	z[zl - 1] ^= 0x55;
	free(buf);
	buf = NULL;
	n = 0;
	z = realloc(z, zl + 3);
	memcpy(z + zl, "\x01\x02\x03", 3);
	put_frame(&buf, &n, z, zl + 3);
	s = mapresp_stream_new(MAPRESP_STREAM_ZSTD, 0, 0, rec_cb, &r);
	assert_int_equal(mapresp_stream_feed(s, buf, n), MAPRESP_E_ZSTD);
	mapresp_stream_free(s);
	assert_int_equal(r.n, 0);
	free(z);
	free(buf);
}

static void
test_frame_callback_error(void **state __attribute__((unused)))
{
	uint8_t *buf = NULL;
	size_t n = 0;
	struct rec r = { .fail_at = 2 };
	struct mapresp_stream *s = mapresp_stream_new(0, 0, 0, rec_cb, &r);

	for (int i = 0; i < 3; i++)
		put_frame(&buf, &n, "{}", 2);
	/* An empty message is handed on as "" (the decoder refuses it). */
	put_frame(&buf, &n, "", 0);
	assert_int_equal(mapresp_stream_feed(s, buf, n), MAPRESP_E_CALLBACK);
	assert_int_equal(r.n, 2);
	assert_int_equal(mapresp_stream_feed(s, buf, n), MAPRESP_E_CALLBACK);
	assert_int_equal(r.n, 2);
	mapresp_stream_free(s);
	rec_free(&r);

	s = mapresp_stream_new(0, 0, 0, rec_cb, &r);
	assert_int_equal(mapresp_stream_feed(s, buf, n), 0);
	assert_int_equal(r.n, 4);
	assert_int_equal(r.len[3], 0);
	assert_int_equal(dec_err(r.msg[3]), MAPRESP_E_SYNTAX);
	mapresp_stream_free(s);
	rec_free(&r);
	free(buf);
}

/* ---- decoding ---- */

static void
test_decode_headscale_initial(void **state __attribute__((unused)))
{
	struct mapresp *mr = dec_ok(hs_initial);
	const struct netmap_node *n = mr->node, *p;
	const struct netmap_derp_region *rg;
	const struct netmap_dns_config *d;
	const struct netmap_filter_rule *fr;
	uint8_t key[KEY_LEN];

	assert_non_null(n);
	assert_false(mr->keep_alive);
	assert_int_equal(n->id, 2);
	assert_string_equal(n->stable_id, "2");
	assert_string_equal(n->name, "node-two.tailnet.test.");
	assert_int_equal(n->user, 2);
	assert_true(key_from_hex(key, "8805ce4898cc3621d9ed6354387d784419388c2eb8d626ce91ee5029fb9cb078"));
	assert_memory_equal(n->key, key, KEY_LEN);
	assert_true(key_from_hex(key, "4f48072d22d6ab62e74e4e89ef19d66590be361870fb05e2719b064a5529c200"));
	assert_memory_equal(n->machine, key, KEY_LEN);
	assert_true(key_from_hex(key, "04856f5fbca3aee44f98caff1c7921cafc7dbc9f3f009483a676069c2fec1a67"));
	assert_memory_equal(n->disco, key, KEY_LEN);
	assert_int_equal(n->n_addrs, 2);
	prefix_is(&n->addrs[0], "100.64.0.2", 32);
	prefix_is(&n->addrs[1], "fd7a:115c:a1e0::2", 128);
	assert_int_equal(n->n_allowed_ips, 2);
	prefix_is(&n->allowed_ips[1], "fd7a:115c:a1e0::2", 128);
	assert_int_equal(n->n_endpoints, 0);
	assert_int_equal(n->home_derp, 0);
	assert_string_equal(n->hostname, "node-two");
	assert_string_equal(n->os, "linux");
	assert_int_equal(n->cap, 142);
	assert_int_equal(n->online, NETMAP_ONLINE_YES);
	assert_true(n->flags & NETMAP_NODE_AUTHORIZED);
	assert_int_equal(n->created, 1795573379672LL);	/* 2026-11-25T02:22:59.672Z */
	assert_int_equal(n->n_caps, 4);
	assert_string_equal(n->caps[0], "default-auto-update");
	assert_string_equal(n->caps[3], "https://tailscale.com/cap/ssh");

	assert_int_equal(mr->n_peers, 1);
	p = &mr->peers[0];
	assert_int_equal(p->id, 1);
	assert_string_equal(p->hostname, "node-one");
	assert_int_equal(p->home_derp, 999);
	assert_int_equal(p->n_endpoints, 2);
	assert_int_equal(p->endpoints[0].family, 4);
	assert_int_equal(p->endpoints[0].port, 47932);
	assert_memory_equal(p->endpoints[1].addr, "\xc0\x00\x02\x02", 4);

	assert_non_null(mr->derp);
	assert_true(mr->derp->has_regions);
	assert_false(mr->derp->has_scores);
	assert_int_equal(mr->derp->map.n_regions, 1);
	rg = &mr->derp->map.regions[0];
	assert_int_equal(rg->region_id, 999);
	assert_string_equal(rg->code, "headscale");
	assert_string_equal(rg->name, "Headscale Embedded DERP");
	assert_int_equal(rg->n_nodes, 1);
	assert_string_equal(rg->nodes[0].name, "999");
	assert_int_equal(rg->nodes[0].region_id, 999);
	assert_string_equal(rg->nodes[0].hostname, "127.0.0.1");
	assert_string_equal(rg->nodes[0].ipv4, "127.0.0.1");
	assert_string_equal(rg->nodes[0].ipv6, "");
	assert_int_equal(rg->nodes[0].stun_port, 13478);
	assert_int_equal(rg->nodes[0].derp_port, 18380);
	assert_int_equal(rg->nodes[0].flags, 0);

	d = mr->dns;
	assert_non_null(d);
	assert_true(d->proxied);
	assert_int_equal(d->n_resolvers, 1);
	assert_string_equal(d->resolvers[0].addr, "192.0.2.53");
	assert_int_equal(d->n_routes, 4);
	/* Sorted by suffix; the reverse zones have no resolvers. */
	assert_string_equal(d->routes[0].suffix, "0.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa");
	assert_int_equal(d->routes[0].n_resolvers, 0);
	assert_string_equal(d->routes[3].suffix, "corp.test");
	assert_int_equal(d->routes[3].n_resolvers, 1);
	assert_string_equal(d->routes[3].resolvers[0].addr, "192.0.2.54");
	assert_int_equal(d->n_domains, 2);
	assert_string_equal(d->domains[1], "search.test");
	assert_int_equal(d->n_records, 1);
	assert_string_equal(d->records[0].name, "grafana.tailnet.test");
	assert_string_equal(d->records[0].type, "A");
	assert_string_equal(d->records[0].value, "100.100.50.50");

	assert_string_equal(mr->domain, "127.0.0.1");
	assert_true(mr->has & MAPRESP_HAS_PACKET_FILTERS);
	assert_int_equal(mr->n_packet_filters, 1);
	assert_string_equal(mr->packet_filters[0].name, "base");
	assert_false(mr->packet_filters[0].is_null);
	assert_int_equal(mr->packet_filters[0].n_rules, 1);
	fr = &mr->packet_filters[0].rules[0];
	assert_int_equal(fr->n_src_ips, 1);
	assert_string_equal(fr->src_ips[0], "*");
	assert_int_equal(fr->n_dst_ports, 1);
	assert_string_equal(fr->dst_ports[0].ip, "*");
	assert_int_equal(fr->dst_ports[0].bits, -1);
	assert_int_equal(fr->dst_ports[0].ports.first, 0);
	assert_int_equal(fr->dst_ports[0].ports.last, 65535);
	assert_int_equal(fr->n_ip_proto, 0);

	assert_int_equal(mr->n_user_profiles, 2);
	assert_int_equal(mr->user_profiles[1].id, 2);
	assert_string_equal(mr->user_profiles[1].login_name, "bob");
	assert_true(mr->has & MAPRESP_HAS_CONTROL_TIME);
	assert_int_equal(mr->control_time, 1795573380967LL);
	mapresp_free(mr);
}

static void
test_decode_unknown_and_case(void **state __attribute__((unused)))
{
	/* New fields appear all the time (§7.4): any shape, any depth, is
	 * skipped; field names match case-insensitively like Go's. */
	char *p = peer_json(7, "\"NewThing\":{\"a\":[1,2.5e-3,true,null,{\"b\":\"\\u00e9\"}]},"
	    "\"ComputedName\":\"ignored\",\"KeySignature\":\"AAEC\","
	    "\"SelfNodeV4MasqAddrForThisPeer\":\"10.0.0.1\",\"ExitNodeDNSResolvers\":[{\"Addr\":\"x\"}]");
	char *j = fx("{\"future\":[[[[]]]],\"Peers\":[%s],\"peersremoved\":[3],"
	    "\"NODE\":{\"id\":5,\"NAME\":\"me.ts.test.\",\"hostinfo\":{\"HOSTNAME\":\"me\",\"x\":{}}},"
	    "\"TKAInfo\":{\"Head\":\"x\"},\"ClientVersion\":{\"Notify\":true},"
	    "\"DisplayMessages\":{\"a\":null},\"DefaultAutoUpdate\":true,\"Seq\":42,"
	    "\"MapSessionHandle\":\"h\",\"SSHPolicy\":{\"rules\":[]},\"Debug\":null,"
	    "\"ControlDialPlan\":{\"Candidates\":[]}}", p);
	struct mapresp *mr = dec_ok(j);

	assert_int_equal(mr->n_peers, 1);
	assert_int_equal(mr->peers[0].id, 7);
	assert_int_equal(mr->n_peers_removed, 1);
	assert_int_equal(mr->peers_removed[0], 3);
	assert_non_null(mr->node);
	assert_int_equal(mr->node->id, 5);
	assert_string_equal(mr->node->name, "me.ts.test.");
	assert_string_equal(mr->node->hostname, "me");
	assert_int_equal(mr->seq, 42);
	assert_string_equal(mr->map_session_handle, "h");
	assert_true(mr->has & MAPRESP_HAS_SSH_POLICY);
	assert_false(mr->has & MAPRESP_HAS_DEBUG);
	mapresp_free(mr);
	free(j);
	free(p);

	/* null is "absent" for every field. */
	mr = dec_ok("{\"Node\":null,\"Peers\":null,\"DERPMap\":null,\"DNSConfig\":null,"
	    "\"PacketFilter\":null,\"PacketFilters\":null,\"Domain\":null,\"Health\":null,"
	    "\"ControlTime\":null,\"KeepAlive\":null,\"CollectServices\":null,\"PingRequest\":null}");
	assert_null(mr->node);
	assert_null(mr->derp);
	assert_null(mr->dns);
	assert_int_equal(mr->has, 0);
	assert_null(mr->domain);
	assert_null(mr->ping);
	mapresp_free(mr);

	mr = dec_ok("  {\"KeepAlive\":true}\r\n");
	assert_true(mr->keep_alive);
	mapresp_free(mr);
	mr = dec_ok("null");
	assert_null(mr->node);
	mapresp_free(mr);
}

static void
test_decode_node_normalise(void **state __attribute__((unused)))
{
	struct mapresp *mr;

	/* Legacy DERP string when HomeDERP is 0; AllowedIPs null = Addresses
	 * (map.go upgradeNode); Capabilities merged into CapMap keys. */
	mr = dec_ok("{\"Node\":{\"ID\":1,\"DERP\":\"127.3.3.40:12\",\"Addresses\":[\"100.64.0.1/32\"],"
	    "\"Capabilities\":[\"b\",\"a\"],\"CapMap\":{\"c\":[{\"x\":1}],\"a\":null},"
	    "\"Online\":false,\"LastSeen\":\"2026-01-01T00:00:00Z\",\"Expired\":true,"
	    "\"KeyExpiry\":\"2026-01-02T00:00:00Z\",\"IsWireGuardOnly\":true,\"Tags\":[\"tag:x\"],"
	    "\"PrimaryRoutes\":[\"10.0.0.0/24\"]},"
	    "\"PeersChanged\":[{\"ID\":2,\"HomeDERP\":3,\"DERP\":\"127.3.3.40:12\",\"AllowedIPs\":[],"
	    "\"Addresses\":[\"100.64.0.2/32\"]},{\"ID\":3,\"DERP\":\"10.0.0.1:12\"},null]}");
	assert_int_equal(mr->node->home_derp, 12);
	assert_int_equal(mr->node->n_allowed_ips, 1);
	prefix_is(&mr->node->allowed_ips[0], "100.64.0.1", 32);
	assert_int_equal(mr->node->n_caps, 3);
	assert_string_equal(mr->node->caps[0], "a");
	assert_string_equal(mr->node->caps[1], "b");
	assert_string_equal(mr->node->caps[2], "c");
	assert_int_equal(mr->node->online, NETMAP_ONLINE_NO);
	assert_int_equal(mr->node->last_seen, 1767225600000LL);
	assert_int_equal(mr->node->key_expiry, 1767312000000LL);
	assert_int_equal(mr->node->flags, NETMAP_NODE_EXPIRED | NETMAP_NODE_WIREGUARD_ONLY);
	assert_int_equal(mr->node->n_tags, 1);
	assert_string_equal(mr->node->tags[0], "tag:x");
	assert_int_equal(mr->node->n_primary_routes, 1);
	prefix_is(&mr->node->primary_routes[0], "10.0.0.0", 24);
	/* A null element of []*Node is dropped. */
	assert_int_equal(mr->n_peers_changed, 2);
	assert_int_equal(mr->peers_changed[0].home_derp, 3);
	assert_int_equal(mr->peers_changed[0].n_allowed_ips, 0);	/* explicit [] */
	assert_int_equal(mr->peers_changed[0].n_addrs, 1);
	assert_int_equal(mr->peers_changed[0].online, NETMAP_ONLINE_UNKNOWN);
	assert_int_equal(mr->peers_changed[1].home_derp, 0);	/* not the magic IP */
	assert_string_equal(mr->peers_changed[1].name, "");
	mapresp_free(mr);
}

static void
test_decode_patch_fields(void **state __attribute__((unused)))
{
	char *j = fx("{\"PeersChangedPatch\":[{\"NodeID\":5,\"DERPRegion\":7,\"Cap\":130,"
	    "\"CapMap\":{\"y\":[],\"x\":[]},\"Endpoints\":[\"1.2.3.4:5\",\"[::1]:6\",\"[fe80::1%%eth0]:7\"],"
	    "\"Key\":\"nodekey:%064x\",\"DiscoKey\":\"discokey:%064x\",\"Online\":false,"
	    "\"LastSeen\":\"2026-01-01T00:00:00.5Z\",\"KeyExpiry\":\"0001-01-01T00:00:00Z\","
	    "\"KeySignature\":\"AA==\"},{\"NodeID\":6,\"DERPRegion\":0,\"Cap\":0,\"Endpoints\":[],"
	    "\"Key\":null,\"Online\":null}],\"OnlineChange\":{\"5\":true,\"+6\":false,\"7\":null},"
	    "\"PeerSeenChange\":{\"-1\":true}}", 0x55, 0x66);
	struct mapresp *mr = dec_ok(j);
	const struct mapresp_patch *pc = &mr->patches[0];
	uint8_t key[KEY_LEN];

	assert_int_equal(mr->n_patches, 2);
	assert_int_equal(pc->node_id, 5);
	assert_int_equal(pc->has, MAPRESP_PATCH_DERP | MAPRESP_PATCH_CAP | MAPRESP_PATCH_CAPMAP |
	    MAPRESP_PATCH_ENDPOINTS | MAPRESP_PATCH_KEY | MAPRESP_PATCH_DISCO | MAPRESP_PATCH_ONLINE |
	    MAPRESP_PATCH_LAST_SEEN | MAPRESP_PATCH_KEY_EXPIRY);
	assert_int_equal(pc->derp_region, 7);
	assert_int_equal(pc->cap, 130);
	assert_int_equal(pc->n_caps, 2);
	assert_string_equal(pc->caps[0], "x");
	assert_int_equal(pc->n_endpoints, 3);
	assert_int_equal(pc->endpoints[1].family, 6);
	assert_int_equal(pc->endpoints[1].port, 6);
	assert_int_equal(pc->endpoints[2].port, 7);	/* zone dropped */
	key_of(key, 0x55);
	assert_memory_equal(pc->key, key, KEY_LEN);
	key_of(key, 0x66);
	assert_memory_equal(pc->disco, key, KEY_LEN);
	assert_false(pc->online);
	assert_int_equal(pc->last_seen, 1767225600500LL);
	assert_int_equal(pc->key_expiry, 0);
	/* Zero DERPRegion/Cap are "no change" (map.go); [] endpoints are a change. */
	assert_int_equal(mr->patches[1].has, MAPRESP_PATCH_ENDPOINTS);
	assert_int_equal(mr->patches[1].n_endpoints, 0);
	assert_int_equal(mr->n_online_change, 3);
	assert_int_equal(mr->online_change[1].id, 6);
	assert_false(mr->online_change[2].value);
	assert_int_equal(mr->n_seen_change, 1);
	assert_int_equal(mr->seen_change[0].id, -1);
	mapresp_free(mr);
	free(j);
}

static void
test_decode_times(void **state __attribute__((unused)))
{
	static const struct { const char *t; int64_t ms; } good[] = {
		{ "1970-01-01T00:00:00.001Z", 1 },
		{ "2026-07-01T10:00:00.123Z", 1782900000123LL },
		{ "2026-07-01T12:00:00.123456789+02:00", 1782900000123LL },
		{ "2026-07-01t09:30:00-00:30", 1782900000000LL },
		{ "2024-02-29T00:00:00Z", 1709164800000LL },
		{ "0001-01-01T00:00:00Z", 0 },			/* Go's zero time */
		{ "0001-01-01T01:00:00+01:00", 0 },
		{ "9999-12-31T23:59:59Z", 253402300799000LL },
	};
	static const char *bad[] = {
		"2026-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-01-01T24:00:00Z",
		"2026-01-01T00:00:60Z", "2026-01-01 00:00:00Z", "2026-01-01T00:00:00",
		"2026-01-01T00:00:00.Z", "2026-01-01T00:00:00.1234567890Z", "26-01-01T00:00:00Z",
		"2026-01-01T00:00:00+0100", "2026-01-01T00:00:00+24:00", "", "2026-01-01T00:00:00ZZ",
	};

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		char *j = fx("{\"ControlTime\":\"%s\"}", good[i].t);
		struct mapresp *mr = dec_ok(j);

		assert_int_equal(mr->control_time, good[i].ms);
		mapresp_free(mr);
		free(j);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *j = fx("{\"ControlTime\":\"%s\"}", bad[i]);

		assert_int_equal(dec_err(j), MAPRESP_E_VALUE);
		free(j);
	}
	assert_int_equal(dec_err("{\"ControlTime\":12}"), MAPRESP_E_TYPE);
}

static void
test_decode_strings(void **state __attribute__((unused)))
{
	struct mapresp *mr = dec_ok("{\"Domain\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\u20ac"
	    "\\ud83d\\ude00\\ud800x\\udc00\",\"Health\":[null,\"h\"]}");

	assert_string_equal(mr->domain, "a\"b\\c/d\b\f\n\r\t\xc3\xa9\xe2\x82\xac"
	    "\xf0\x9f\x98\x80\xef\xbf\xbdx\xef\xbf\xbd");
	assert_int_equal(mr->n_health, 2);
	assert_string_equal(mr->health[0], "");
	mapresp_free(mr);
	/* A NUL would truncate a C string: refused where kept... */
	assert_int_equal(dec_err("{\"Domain\":\"a\\u0000b\"}"), MAPRESP_E_VALUE);
	/* ... and fine where skipped. */
	mr = dec_ok("{\"Unknown\":\"a\\u0000b\",\"Domain\":\"\"}");
	assert_string_equal(mr->domain, "");
	mapresp_free(mr);
}

static void
test_decode_bad_input(void **state __attribute__((unused)))
{
	static const struct { const char *json; int err; } cases[] = {
		/* syntax */
		{ "", MAPRESP_E_SYNTAX }, { "   ", MAPRESP_E_SYNTAX }, { "{", MAPRESP_E_SYNTAX },
		{ "{\"Domain\":\"x\",}", MAPRESP_E_SYNTAX }, { "{\"a\":[1,]}", MAPRESP_E_SYNTAX },
		{ "{} {}", MAPRESP_E_SYNTAX }, { "{\"a\":01}", MAPRESP_E_SYNTAX },
		{ "{\"a\":NaN}", MAPRESP_E_SYNTAX }, { "{\"a\":1.}", MAPRESP_E_SYNTAX },
		{ "{\"a\":\"\x01\"}", MAPRESP_E_SYNTAX }, { "{\"a\":\"\\x\"}", MAPRESP_E_SYNTAX },
		{ "{\"a\":\"\\u12g4\"}", MAPRESP_E_SYNTAX }, { "{\"a\" 1}", MAPRESP_E_SYNTAX },
		{ "{a:1}", MAPRESP_E_SYNTAX }, { "{\"a\":tru}", MAPRESP_E_SYNTAX },
		{ "{\"a\":[}", MAPRESP_E_SYNTAX }, { "\xef\xbb\xbf{}", MAPRESP_E_SYNTAX },
		{ "{\"a\":1}]", MAPRESP_E_SYNTAX }, { "{\"Domain\":\"abc", MAPRESP_E_SYNTAX },
		{ "{\"a\":{\"b\":1,\"c\"}}", MAPRESP_E_SYNTAX }, { "{\"a\":[1 2]}", MAPRESP_E_SYNTAX },
		/* wrong types */
		{ "[]", MAPRESP_E_TYPE }, { "\"x\"", MAPRESP_E_TYPE },
		{ "{\"Peers\":{}}", MAPRESP_E_TYPE }, { "{\"Peers\":[1]}", MAPRESP_E_TYPE },
		{ "{\"Node\":[]}", MAPRESP_E_TYPE }, { "{\"Node\":{\"ID\":\"1\"}}", MAPRESP_E_TYPE },
		{ "{\"Node\":{\"ID\":1.5}}", MAPRESP_E_TYPE }, { "{\"Node\":{\"ID\":1e3}}", MAPRESP_E_TYPE },
		{ "{\"Node\":{\"Online\":\"yes\"}}", MAPRESP_E_TYPE },
		{ "{\"Node\":{\"Addresses\":[1]}}", MAPRESP_E_TYPE },
		{ "{\"Node\":{\"Addresses\":[null]}}", MAPRESP_E_TYPE },
		{ "{\"Node\":{\"Name\":5}}", MAPRESP_E_TYPE }, { "{\"KeepAlive\":1}", MAPRESP_E_TYPE },
		{ "{\"DERPMap\":{\"Regions\":[]}}", MAPRESP_E_TYPE },
		{ "{\"DNSConfig\":{\"Routes\":{\"a\":{}}}}", MAPRESP_E_TYPE },
		{ "{\"PacketFilters\":{\"base\":{}}}", MAPRESP_E_TYPE },
		{ "{\"PacketFilter\":[{\"DstPorts\":[{\"Ports\":[]}]}]}", MAPRESP_E_TYPE },
		{ "{\"OnlineChange\":{\"1\":1}}", MAPRESP_E_TYPE },
		{ "{\"CollectServices\":\"true\"}", MAPRESP_E_TYPE },
		/* bad values */
		{ "{\"Node\":{\"ID\":9223372036854775808}}", MAPRESP_E_VALUE },
		{ "{\"Node\":{\"HomeDERP\":2147483648}}", MAPRESP_E_VALUE },
		{ "{\"Node\":{\"Key\":\"nodekey:00\"}}", MAPRESP_E_VALUE },
		{ "{\"Node\":{\"Key\":\"mkey:0000000000000000000000000000000000000000000000000000000000000000\"}}", MAPRESP_E_VALUE },
		{ "{\"Node\":{\"Key\":\"NODEKEY:0000000000000000000000000000000000000000000000000000000000000000\"}}", MAPRESP_E_VALUE },
		{ "{\"Node\":{\"Key\":\"nodekey:000000000000000000000000000000000000000000000000000000000000000g\"}}", MAPRESP_E_VALUE },
		{ "{\"Node\":{\"Key\":\"nodekey:00000000000000000000000000000000000000000000000000000000000000000\"}}", MAPRESP_E_VALUE },
		{ "{\"Node\":{\"DiscoKey\":\"\"}}", MAPRESP_E_VALUE },
		{ "{\"Node\":{\"Addresses\":[\"100.64.0.1\"]}}", MAPRESP_E_VALUE },
		{ "{\"Node\":{\"Addresses\":[\"100.64.0.1/33\"]}}", MAPRESP_E_VALUE },
		{ "{\"Node\":{\"Addresses\":[\"100.64.0.1/032\"]}}", MAPRESP_E_VALUE },
		{ "{\"Node\":{\"Addresses\":[\"01.2.3.4/32\"]}}", MAPRESP_E_VALUE },
		{ "{\"Node\":{\"Addresses\":[\"fe80::1%eth0/64\"]}}", MAPRESP_E_VALUE },
		{ "{\"Node\":{\"AllowedIPs\":[\"::/129\"]}}", MAPRESP_E_VALUE },
		{ "{\"Node\":{\"Endpoints\":[\"1.2.3.4\"]}}", MAPRESP_E_VALUE },
		{ "{\"Node\":{\"Endpoints\":[\"1.2.3.4:65536\"]}}", MAPRESP_E_VALUE },
		{ "{\"Node\":{\"Endpoints\":[\"::1:80\"]}}", MAPRESP_E_VALUE },
		{ "{\"Node\":{\"Endpoints\":[\"[1.2.3.4]:80\"]}}", MAPRESP_E_VALUE },
		{ "{\"PacketFilter\":[{\"DstPorts\":[{\"Ports\":{\"Last\":65536}}]}]}", MAPRESP_E_VALUE },
		{ "{\"OnlineChange\":{\"x\":true}}", MAPRESP_E_VALUE },
		{ "{\"DERPMap\":{\"Regions\":{\"4294967296\":{}}}}", MAPRESP_E_VALUE },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int r = dec_err(cases[i].json);

		if (r != cases[i].err)
			fail_msg("case %zu %s: got %d (%s), want %d", i, cases[i].json, r,
			    mapresp_strerror(r), cases[i].err);
	}
}

static void
test_decode_limits(void **state __attribute__((unused)))
{
	struct mapresp_stats st = { 0 };
	struct mapresp *mr;
	char where[128];
	size_t n = 0, cap = 1 << 20;
	char *j = malloc(cap);
	int r;

	/* An overlong string, in bytes after unescaping. */
	memset(j, 0, cap);
	memcpy(j, "{\"Domain\":\"", 11);
	memset(j + 11, 'a', MAPRESP_MAX_STRING);
	memcpy(j + 11 + MAPRESP_MAX_STRING, "\"}", 3);
	mr = dec_ok(j);
	mapresp_free(mr);
	memcpy(j + 11 + MAPRESP_MAX_STRING, "a\"}", 4);
	r = mapresp_decode(j, strlen(j), &mr, &st, where, sizeof where);
	assert_int_equal(r, MAPRESP_E_LIMIT);
	assert_int_equal(strncmp(where, "Domain at byte ", 15), 0);
	assert_int_equal(st.rejected, 1);
	assert_int_equal(st.over_cap, 1);

	/* One address too many. */
	n = (size_t)sprintf(j, "{\"Node\":{\"Addresses\":[");
	for (int i = 0; i <= MAPRESP_MAX_ADDRS; i++)
		n += (size_t)sprintf(j + n, "%s\"10.0.0.%d/32\"", i ? "," : "", i);
	sprintf(j + n, "]}}");
	assert_int_equal(dec_err(j), MAPRESP_E_LIMIT);

	/* Nesting: skipped values are held to the same depth cap. */
	n = (size_t)sprintf(j, "{\"x\":");
	for (int i = 0; i < MAPRESP_MAX_DEPTH; i++)
		j[n++] = '[';
	for (int i = 0; i < MAPRESP_MAX_DEPTH; i++)
		j[n++] = ']';
	sprintf(j + n, "}");
	assert_int_equal(dec_err(j), MAPRESP_E_LIMIT);
	n = (size_t)sprintf(j, "{\"x\":");
	for (int i = 0; i < MAPRESP_MAX_DEPTH - 1; i++)
		j[n++] = '[';
	for (int i = 0; i < MAPRESP_MAX_DEPTH - 1; i++)
		j[n++] = ']';
	sprintf(j + n, "}");
	mr = dec_ok(j);
	mapresp_free(mr);

	/* A huge array of cheap elements: each {} becomes a ~250-byte node,
	 * more than MAPRESP_MEM_FACTOR x its 3 bytes: the memory budget stops
	 * it long before the count cap. */
	n = (size_t)sprintf(j, "{\"Peers\":[");
	for (int i = 0; i < 60000; i++)
		n += (size_t)sprintf(j + n, "%s{}", i ? "," : "");
	sprintf(j + n, "]}");
	r = mapresp_decode(j, strlen(j), &mr, &st, where, sizeof where);
	assert_int_equal(r, MAPRESP_E_LIMIT);
	assert_non_null(strstr(where, "memory budget"));

	/* An array over its count cap. */
	n = (size_t)sprintf(j, "{\"Health\":[");
	for (int i = 0; i <= MAPRESP_MAX_HEALTH; i++)
		n += (size_t)sprintf(j + n, "%s\"\"", i ? "," : "");
	sprintf(j + n, "]}");
	assert_int_equal(dec_err(j), MAPRESP_E_LIMIT);
	free(j);
}

static void
test_decode_derp_dns_filters(void **state __attribute__((unused)))
{
	struct mapresp *mr = dec_ok("{\"DERPMap\":{\"Regions\":{\"2\":{\"RegionCode\":\"b\","
	    "\"Nodes\":[{\"Name\":\"2a\",\"STUNOnly\":true,\"InsecureForTests\":true,"
	    "\"CanPort80\":true,\"STUNPort\":-1,\"IPv6\":\"::1\",\"CertName\":\"c\"},null]},"
	    "\"1\":{\"RegionCode\":\"a\",\"Avoid\":true,\"NoMeasureNoHome\":true},\"3\":null,"
	    "\"2\":{\"RegionCode\":\"b2\"}},\"HomeParams\":{\"RegionScore\":{\"1\":2.5,\"2\":0.5}},"
	    "\"omitDefaultRegions\":true},"
	    "\"DNSConfig\":{\"Routes\":{\"b\":null,\"a\":[{\"Addr\":\"1.1.1.1\"}],\"b\":[]},"
	    "\"FallbackResolvers\":[{\"Addr\":\"9.9.9.9\",\"UseWithExitNode\":true}],"
	    "\"CertDomains\":[\"me.ts.test\"],\"Nameservers\":[\"1.2.3.4\"]},"
	    "\"PacketFilter\":[{\"SrcIPs\":[\"100.64.0.1-100.64.0.9\"],\"SrcBits\":[32],"
	    "\"DstPorts\":[{\"IP\":\"10.0.0.0\",\"Bits\":8,\"Ports\":{\"First\":22,\"Last\":80}}],"
	    "\"IPProto\":[6,17],\"CapGrant\":[{\"Dsts\":[],\"CapMap\":{}}]},{\"CapGrant\":[]},null],"
	    "\"PacketFilters\":{\"*\":null,\"x\":[]},"
	    "\"PingRequest\":{\"URL\":\"http://h/p?id=1\",\"URLIsNoise\":true,\"Types\":\"c2n\","
	    "\"IP\":\"100.64.0.1\",\"Payload\":\"AA==\"},\"CollectServices\":false}");
	const struct netmap_derp_map *m = &mr->derp->map;
	const struct netmap_filter_rule *fr;

	/* Sorted by ID, the null region dropped, the duplicate key's last wins. */
	assert_int_equal(m->n_regions, 2);
	assert_int_equal(m->regions[0].region_id, 1);
	assert_int_equal(m->regions[0].flags,
	    NETMAP_DERP_REGION_AVOID | NETMAP_DERP_REGION_NO_MEASURE_NO_HOME);
	assert_int_equal(m->regions[0].n_nodes, 0);
	assert_string_equal(m->regions[1].code, "b2");
	assert_int_equal(m->regions[1].n_nodes, 0);
	assert_true(m->omit_default_regions);
	assert_true(mr->derp->has_scores);
	assert_int_equal(m->n_scores, 2);
	assert_int_equal(m->scores[1].region_id, 2);
	assert_true(m->scores[0].score == 2.5);

	assert_int_equal(mr->dns->n_routes, 2);
	assert_string_equal(mr->dns->routes[0].suffix, "a");
	assert_string_equal(mr->dns->routes[1].suffix, "b");
	assert_int_equal(mr->dns->n_fallback, 1);
	assert_true(mr->dns->fallback[0].use_with_exit_node);
	assert_false(mr->dns->proxied);
	assert_int_equal(mr->dns->n_cert_domains, 1);

	assert_true(mr->has & MAPRESP_HAS_PACKET_FILTER);
	assert_int_equal(mr->n_packet_filter, 2);
	fr = &mr->packet_filter[0];
	assert_string_equal(fr->src_ips[0], "100.64.0.1-100.64.0.9");
	assert_int_equal(fr->n_src_bits, 1);
	assert_int_equal(fr->src_bits[0], 32);
	assert_int_equal(fr->dst_ports[0].bits, 8);
	assert_int_equal(fr->dst_ports[0].ports.first, 22);
	assert_int_equal(fr->dst_ports[0].ports.last, 80);
	assert_int_equal(fr->n_ip_proto, 2);
	assert_int_equal(fr->ip_proto[1], 17);
	assert_true(fr->cap_grant);
	assert_false(mr->packet_filter[1].cap_grant);
	assert_int_equal(mr->n_packet_filters, 2);
	assert_true(mr->packet_filters[0].is_null);
	assert_false(mr->packet_filters[1].is_null);
	assert_int_equal(mr->packet_filters[1].n_rules, 0);

	assert_non_null(mr->ping);
	assert_string_equal(mr->ping->url, "http://h/p?id=1");
	assert_true(mr->ping->url_is_noise);
	assert_string_equal(mr->ping->types, "c2n");
	assert_true(mr->has & MAPRESP_HAS_COLLECT_SERVICES);
	assert_false(mr->collect_services);
	mapresp_free(mr);

	/* HomeParams without RegionScore; DERPMap without Regions. */
	mr = dec_ok("{\"DERPMap\":{\"HomeParams\":{}}}");
	assert_false(mr->derp->has_regions);
	assert_false(mr->derp->has_scores);
	mapresp_free(mr);
}

/* ---- applying ---- */

static int64_t test_now = 1000;

static int64_t
fake_clock(void *ctx __attribute__((unused)))
{
	return test_now;
}

static struct netmap *
nm_new(void)
{
	struct netmap *nm = netmap_new();

	netmap_set_clock(nm, fake_clock, NULL);
	return nm;
}

static void
test_apply_headscale_initial(void **state __attribute__((unused)))
{
	struct netmap *nm = nm_new();
	uint32_t c = apply(nm, hs_initial);
	const struct netmap_node *self = netmap_self(nm), *p;
	const struct netmap_filter *f;
	char name[64];

	assert_int_equal(c, NETMAP_CHANGED_SELF | NETMAP_CHANGED_PEERS_ADDED |
	    NETMAP_CHANGED_PEERS_FULL | NETMAP_CHANGED_DERP | NETMAP_CHANGED_DNS |
	    NETMAP_CHANGED_FILTER | NETMAP_CHANGED_USERS | NETMAP_CHANGED_DOMAIN);
	assert_non_null(self);
	assert_int_equal(netmap_self_changes(nm), NETMAP_PEER_ADDED);
	assert_string_equal(netmap_magic_dns_suffix(nm), "tailnet.test");
	assert_int_equal(netmap_peer_count(nm), 1);
	p = netmap_peer(nm, 1);
	assert_non_null(p);
	assert_ptr_equal(netmap_peer_by_key(nm, p->key), p);
	assert_null(netmap_peer_by_key(nm, self->key));
	assert_int_equal(change_of(nm, 1), NETMAP_PEER_ADDED);
	/* Strings and arrays live in the netmap, not in the freed message. */
	assert_string_equal(p->name, "node-one.tailnet.test.");
	assert_int_equal(p->n_endpoints, 2);
	assert_int_equal(p->endpoints[0].port, 47932);
	assert_ptr_equal(p->allowed_ips, p->addrs);	/* equal lists share storage */
	netmap_computed_name(nm, p, true, name, sizeof name);
	assert_string_equal(name, "node-one");
	assert_string_equal(netmap_derp_map(nm)->regions[0].code, "headscale");
	assert_int_equal(netmap_dns(nm)->n_routes, 4);
	assert_string_equal(netmap_dns(nm)->routes[3].resolvers[0].addr, "192.0.2.54");
	assert_true(netmap_has_filter(nm));
	assert_int_equal(netmap_filters(nm, &f), 1);
	assert_string_equal(f[0].name, "base");
	assert_string_equal(f[0].rules[0].dst_ports[0].ip, "*");
	assert_string_equal(netmap_user(nm, 2)->login_name, "bob");
	assert_int_equal(netmap_user_count(nm), 2);
	assert_string_equal(netmap_domain(nm), "127.0.0.1");
	assert_int_equal(netmap_control_time(nm), 1795573380967LL);
	assert_true(netmap_mem_usage(nm) > 0);

	/* The same full map again changes nothing. */
	assert_int_equal(apply(nm, hs_initial), NETMAP_CHANGED_PEERS_FULL);
	assert_int_equal(netmap_changes(nm, &(size_t){ 0 }) != NULL || true, true);
	{
		size_t n;

		netmap_changes(nm, &n);
		assert_int_equal(n, 0);
	}
	netmap_free(nm);
}

static void
test_apply_full_replaces(void **state __attribute__((unused)))
{
	static const int a[] = { 2, 3, 4, 5 }, b[] = { 3, 5, 6 };
	struct netmap *nm = nm_new();
	uint32_t c;
	char *p;

	c = apply_f(nm, full_map(a, 4));
	assert_int_equal(netmap_peer_count(nm), 4);
	assert_true(c & NETMAP_CHANGED_PEERS_ADDED);
	/* Peer 5 changes, 6 appears, 2 and 4 go; 3 is as before. */
	p = full_map(b, 3);
	{
		char *q = strstr(p, "peer5.ts.test.");

		assert_non_null(q);
		q[4] = '9';	/* peer9.ts.test. */
	}
	c = apply_f(nm, p);
	assert_int_equal(c, NETMAP_CHANGED_PEERS_ADDED | NETMAP_CHANGED_PEERS_REMOVED |
	    NETMAP_CHANGED_PEERS_CHANGED | NETMAP_CHANGED_PEERS_FULL);
	assert_int_equal(netmap_peer_count(nm), 3);
	assert_null(netmap_peer(nm, 2));
	assert_null(netmap_peer(nm, 4));
	assert_string_equal(netmap_peer(nm, 5)->name, "peer9.ts.test.");
	assert_int_equal(change_of(nm, 2), NETMAP_PEER_REMOVED);
	assert_int_equal(change_of(nm, 4), NETMAP_PEER_REMOVED);
	assert_int_equal(change_of(nm, 5), NETMAP_PEER_NAME);
	assert_int_equal(change_of(nm, 6), NETMAP_PEER_ADDED);
	assert_int_equal(change_of(nm, 3), 0);
	/* An empty Peers is "no full list", not "no peers" (§10.14). */
	assert_int_equal(apply(nm, "{\"Peers\":[]}"), 0);
	assert_int_equal(netmap_peer_count(nm), 3);
	netmap_free(nm);
}

static void
test_apply_peers_changed(void **state __attribute__((unused)))
{
	static const int a[] = { 2, 3 };
	struct netmap *nm = nm_new();
	char *p2 = peer_json(2, "\"Endpoints\":[\"198.51.100.1:1\"],\"HomeDERP\":5,\"Online\":false,"
	    "\"Tags\":[\"tag:a\"],\"CapMap\":{\"c\":[]}"), *p7 = peer_json(7, NULL), *p3 = peer_json(3, NULL);

	apply_f(nm, full_map(a, 2));
	/* PeersChanged replaces the whole node (not a merge): absent fields
	 * take their zero value.  Adding a new ID is an upsert. */
	assert_int_equal(apply_f(nm, fx("{\"PeersChanged\":[%s,%s,%s]}", p2, p7, p3)),
	    NETMAP_CHANGED_PEERS_ADDED | NETMAP_CHANGED_PEERS_CHANGED);
	assert_int_equal(change_of(nm, 2), NETMAP_PEER_ENDPOINTS | NETMAP_PEER_DERP |
	    NETMAP_PEER_ONLINE | NETMAP_PEER_NAME | NETMAP_PEER_CAPS);
	assert_int_equal(change_of(nm, 7), NETMAP_PEER_ADDED);
	assert_int_equal(change_of(nm, 3), 0);
	assert_int_equal(netmap_peer(nm, 2)->home_derp, 5);
	assert_true(netmap_node_has_cap(netmap_peer(nm, 2), "c"));
	assert_false(netmap_node_has_cap(netmap_peer(nm, 2), "d"));
	assert_int_equal(netmap_peer_count(nm), 3);
	assert_int_equal(apply_f(nm, fx("{\"PeersChanged\":[{\"ID\":7}]}")),
	    NETMAP_CHANGED_PEERS_CHANGED);
	assert_int_equal(netmap_peer(nm, 7)->n_addrs, 0);
	assert_string_equal(netmap_peer(nm, 7)->name, "");
	netmap_free(nm);
	free(p2);
	free(p7);
	free(p3);
}

static void
test_apply_peers_removed(void **state __attribute__((unused)))
{
	static const int a[] = { 2, 3, 4 };
	struct netmap *nm = nm_new();
	uint8_t k3[KEY_LEN];
	char *p3;

	apply_f(nm, full_map(a, 3));
	key_of(k3, 3);
	assert_non_null(netmap_peer_by_key(nm, k3));
	/* Unknown IDs are harmless; duplicates too. */
	assert_int_equal(apply(nm, "{\"PeersRemoved\":[3,99,3,-5,0]}"), NETMAP_CHANGED_PEERS_REMOVED);
	assert_int_equal(netmap_peer_count(nm), 2);
	assert_null(netmap_peer(nm, 3));
	assert_null(netmap_peer_by_key(nm, k3));
	assert_int_equal(apply(nm, "{\"PeersRemoved\":[1000]}"), 0);
	/* Removed then re-added in one message: two entries, in that order. */
	p3 = peer_json(2, NULL);
	assert_int_equal(apply_f(nm, fx("{\"PeersRemoved\":[2],\"PeersChanged\":[%s]}", p3)),
	    NETMAP_CHANGED_PEERS_REMOVED | NETMAP_CHANGED_PEERS_ADDED);
	{
		size_t n;
		const struct netmap_change *c = netmap_changes(nm, &n);

		assert_int_equal(n, 2);
		assert_int_equal(c[0].what, NETMAP_PEER_REMOVED);
		assert_int_equal(c[1].what, NETMAP_PEER_ADDED);
	}
	/* Removing the rest shrinks the tables back, soundly. */
	apply(nm, "{\"PeersRemoved\":[2,4]}");
	assert_int_equal(netmap_peer_count(nm), 0);
	free(p3);
	netmap_free(nm);
}

static void
test_apply_patches(void **state __attribute__((unused)))
{
	static const int a[] = { 2, 3 };
	struct netmap *nm = nm_new();
	const struct netmap_node *p;
	uint8_t oldkey[KEY_LEN], newkey[KEY_LEN];

	apply_f(nm, full_map(a, 2));
	memcpy(oldkey, netmap_peer(nm, 2)->key, KEY_LEN);
	key_of(newkey, 0x4242);
	/* Relogin as Headscale sends it (types/change/change.go
	 * NodeKeyRotated): Key, DiscoKey, Endpoints in one patch. */
	assert_int_equal(apply_f(nm, fx("{\"PeersChangedPatch\":[{\"NodeID\":2,"
	    "\"Key\":\"nodekey:%064x\",\"DiscoKey\":\"discokey:%064x\","
	    "\"Endpoints\":[\"127.0.0.1:56951\",\"192.0.2.2:56951\"]},"
	    "{\"NodeID\":404,\"Online\":false}]}", 0x4242, 0x4343)), NETMAP_CHANGED_PEERS_CHANGED);
	assert_int_equal(change_of(nm, 2), NETMAP_PEER_KEY | NETMAP_PEER_DISCO | NETMAP_PEER_ENDPOINTS);
	p = netmap_peer(nm, 2);
	assert_ptr_equal(netmap_peer_by_key(nm, newkey), p);
	assert_null(netmap_peer_by_key(nm, oldkey));
	assert_int_equal(p->n_endpoints, 2);
	assert_int_equal(p->endpoints[1].port, 56951);
	assert_string_equal(p->name, "peer2.ts.test.");	/* untouched by the patch */
	assert_int_equal(p->n_addrs, 2);

	/* Online, DERP, Cap, CapMap, LastSeen, KeyExpiry, one at a time. */
	assert_int_equal(apply(nm, "{\"PeersChangedPatch\":[{\"NodeID\":3,\"Online\":false}]}"),
	    NETMAP_CHANGED_PEERS_CHANGED);
	assert_int_equal(netmap_peer(nm, 3)->online, NETMAP_ONLINE_NO);
	assert_int_equal(apply(nm, "{\"PeersChangedPatch\":[{\"NodeID\":3,\"Online\":false}]}"), 0);
	apply(nm, "{\"PeersChangedPatch\":[{\"NodeID\":3,\"DERPRegion\":901,\"Cap\":131,"
	    "\"CapMap\":{\"k\":[]},\"LastSeen\":\"2026-01-01T00:00:00Z\","
	    "\"KeyExpiry\":\"2026-02-01T00:00:00Z\"}]}");
	assert_int_equal(change_of(nm, 3), NETMAP_PEER_DERP | NETMAP_PEER_CAPS |
	    NETMAP_PEER_LAST_SEEN | NETMAP_PEER_EXPIRY);
	p = netmap_peer(nm, 3);
	assert_int_equal(p->home_derp, 901);
	assert_int_equal(p->cap, 131);
	assert_int_equal(p->n_caps, 1);
	assert_int_equal(p->last_seen, 1767225600000LL);
	assert_int_equal(p->key_expiry, 1769904000000LL);
	/* DERPRegion 0 / Cap 0 mean "no change"; the zero time clears the
	 * expiry; an explicit [] clears the endpoints. */
	apply(nm, "{\"PeersChangedPatch\":[{\"NodeID\":3,\"DERPRegion\":0,\"Cap\":0,"
	    "\"KeyExpiry\":\"0001-01-01T00:00:00Z\",\"Endpoints\":[]}]}");
	p = netmap_peer(nm, 3);
	assert_int_equal(p->home_derp, 901);
	assert_int_equal(p->cap, 131);
	assert_int_equal(p->key_expiry, 0);
	assert_int_equal(p->n_endpoints, 0);
	assert_int_equal(change_of(nm, 3), NETMAP_PEER_EXPIRY | NETMAP_PEER_ENDPOINTS);
	netmap_free(nm);
}

static void
test_apply_online_seen(void **state __attribute__((unused)))
{
	static const int a[] = { 2, 3 };
	struct netmap *nm = nm_new();

	apply_f(nm, full_map(a, 2));
	test_now = 1767225600000LL;
	assert_int_equal(apply(nm, "{\"OnlineChange\":{\"2\":false,\"77\":true},"
	    "\"PeerSeenChange\":{\"3\":true,\"78\":false}}"), NETMAP_CHANGED_PEERS_CHANGED);
	assert_int_equal(netmap_peer(nm, 2)->online, NETMAP_ONLINE_NO);
	assert_int_equal(netmap_peer(nm, 3)->last_seen, test_now);
	assert_int_equal(change_of(nm, 2), NETMAP_PEER_ONLINE);
	assert_int_equal(change_of(nm, 3), NETMAP_PEER_LAST_SEEN);
	apply(nm, "{\"PeerSeenChange\":{\"3\":false}}");
	assert_int_equal(netmap_peer(nm, 3)->last_seen, 0);
	/* Go's order: PeerSeenChange, OnlineChange, then patches, so a patch
	 * in the same message wins. */
	apply(nm, "{\"OnlineChange\":{\"2\":true},\"PeersChangedPatch\":[{\"NodeID\":2,\"Online\":false}]}");
	assert_int_equal(netmap_peer(nm, 2)->online, NETMAP_ONLINE_NO);
	assert_int_equal(change_of(nm, 2), NETMAP_PEER_ONLINE);
	netmap_free(nm);
}

static void
test_apply_full_precludes_deltas(void **state __attribute__((unused)))
{
	static const int a[] = { 2, 3 };
	struct netmap *nm = nm_new();
	char *m = full_map(a, 2), *j;

	apply(nm, m);
	/* A non-empty Peers ignores every other peer delta (map.go). */
	m[strlen(m) - 1] = '\0';
	j = fx("%s,\"PeersRemoved\":[2],\"PeersChangedPatch\":[{\"NodeID\":3,\"Online\":false}],"
	    "\"OnlineChange\":{\"2\":false}}", m);
	assert_int_equal(apply_f(nm, j), NETMAP_CHANGED_PEERS_FULL);
	assert_non_null(netmap_peer(nm, 2));
	assert_int_equal(netmap_peer(nm, 3)->online, NETMAP_ONLINE_YES);
	assert_int_equal(netmap_peer(nm, 2)->online, NETMAP_ONLINE_YES);
	free(m);
	netmap_free(nm);
}

static void
test_apply_absent_unchanged(void **state __attribute__((unused)))
{
	struct netmap *nm = nm_new();
	const struct netmap_filter *f;

	apply(nm, hs_initial);
	/* Deltas without Node/DERPMap/DNSConfig/PacketFilters/Domain keep them. */
	assert_int_equal(apply(nm, "{\"PeersChangedPatch\":[{\"NodeID\":1,\"Online\":false}],"
	    "\"Domain\":\"\",\"ControlTime\":\"2026-11-25T02:23:24Z\"}"), NETMAP_CHANGED_PEERS_CHANGED);
	assert_non_null(netmap_self(nm));
	assert_non_null(netmap_derp_map(nm));
	assert_int_equal(netmap_dns(nm)->n_routes, 4);
	assert_int_equal(netmap_filters(nm, &f), 1);
	assert_string_equal(netmap_domain(nm), "127.0.0.1");
	assert_int_equal(netmap_control_time(nm), 1795573404000LL);
	/* Resending identical DNSConfig/filters (Headscale does, with every
	 * policy change) is not a change. */
	assert_int_equal(apply(nm, hs_initial), NETMAP_CHANGED_PEERS_FULL | NETMAP_CHANGED_PEERS_CHANGED);
	/* A self change alone (a rename). */
	{
		char *j = strdup(hs_initial), *q = strstr(j, "node-two.tailnet");

		memcpy(q, "node-2ww", 8);
		assert_true(apply(nm, j) & NETMAP_CHANGED_SELF);
		assert_int_equal(netmap_self_changes(nm), NETMAP_PEER_NAME);
		free(j);
	}
	netmap_free(nm);
}

static void
test_apply_derp_merge(void **state __attribute__((unused)))
{
	struct netmap *nm = nm_new();
	const struct netmap_derp_map *d;

	assert_null(netmap_derp_map(nm));
	assert_int_equal(apply(nm, "{\"DERPMap\":{\"Regions\":{\"1\":{\"RegionCode\":\"a\"},"
	    "\"2\":{\"RegionCode\":\"b\"}},\"HomeParams\":{\"RegionScore\":{\"1\":1.5}}}}"),
	    NETMAP_CHANGED_DERP);
	/* Regions null: keep the regions; a new HomeParams replaces scores. */
	assert_int_equal(apply(nm, "{\"DERPMap\":{\"HomeParams\":{\"RegionScore\":{\"2\":3}}}}"),
	    NETMAP_CHANGED_DERP);
	d = netmap_derp_map(nm);
	assert_int_equal(d->n_regions, 2);
	assert_string_equal(d->regions[1].code, "b");
	assert_int_equal(d->n_scores, 1);
	assert_int_equal(d->scores[0].region_id, 2);
	/* HomeParams without RegionScore keeps the scores; an identical
	 * Regions is no change. */
	assert_int_equal(apply(nm, "{\"DERPMap\":{\"HomeParams\":{},\"Regions\":{\"1\":{\"RegionCode\":"
	    "\"a\"},\"2\":{\"RegionCode\":\"b\"}}}}"), 0);
	assert_int_equal(netmap_derp_map(nm)->n_scores, 1);
	/* New regions (null entries dropped) replace; scores stay. */
	assert_int_equal(apply(nm, "{\"DERPMap\":{\"Regions\":{\"3\":{\"RegionCode\":\"c\"},\"4\":null}}}"),
	    NETMAP_CHANGED_DERP);
	d = netmap_derp_map(nm);
	assert_int_equal(d->n_regions, 1);
	assert_int_equal(d->regions[0].region_id, 3);
	assert_int_equal(d->n_scores, 1);
	netmap_free(nm);
}

static void
test_apply_packet_filters(void **state __attribute__((unused)))
{
	struct netmap *nm = nm_new();
	const struct netmap_filter *f;

	assert_false(netmap_has_filter(nm));
	assert_int_equal(netmap_filters(nm, &f), 0);
	/* Legacy PacketFilter becomes "base". */
	assert_int_equal(apply(nm, "{\"PacketFilter\":[{\"SrcIPs\":[\"*\"]}]}"), NETMAP_CHANGED_FILTER);
	assert_int_equal(netmap_filters(nm, &f), 1);
	assert_string_equal(f[0].name, "base");
	/* Named chunks, sorted by name for concatenation. */
	assert_int_equal(apply(nm, "{\"PacketFilters\":{\"zz\":[{\"SrcIPs\":[\"1.1.1.1\"]}],"
	    "\"aa\":[{\"SrcIPs\":[\"2.2.2.2\"]},{\"SrcIPs\":[\"3.3.3.3\"]}]}}"), NETMAP_CHANGED_FILTER);
	assert_int_equal(netmap_filters(nm, &f), 3);
	assert_string_equal(f[0].name, "aa");
	assert_int_equal(f[0].n_rules, 2);
	assert_string_equal(f[1].name, "base");
	assert_string_equal(f[2].name, "zz");
	assert_string_equal(f[2].rules[0].src_ips[0], "1.1.1.1");
	/* Same again: no change.  null deletes one; unknown null is harmless. */
	assert_int_equal(apply(nm, "{\"PacketFilters\":{\"zz\":[{\"SrcIPs\":[\"1.1.1.1\"]}]}}"), 0);
	assert_int_equal(apply(nm, "{\"PacketFilters\":{\"zz\":null,\"nope\":null}}"), NETMAP_CHANGED_FILTER);
	assert_int_equal(netmap_filters(nm, &f), 2);
	/* "*": null clears everything first, then the rest applies. */
	assert_int_equal(apply(nm, "{\"PacketFilters\":{\"*\":null,\"new\":[]}}"), NETMAP_CHANGED_FILTER);
	assert_int_equal(netmap_filters(nm, &f), 1);
	assert_string_equal(f[0].name, "new");
	assert_int_equal(f[0].n_rules, 0);
	/* ... including a PacketFilter "base" from the same message (Go
	 * clears the map after setting base). */
	apply(nm, "{\"PacketFilter\":[],\"PacketFilters\":{\"*\":null}}");
	assert_int_equal(netmap_filters(nm, &f), 0);
	assert_true(netmap_has_filter(nm));
	/* "*" with a list is not a clear, and is not kept as a chunk. */
	apply(nm, "{\"PacketFilters\":{\"a\":[]}}");
	assert_int_equal(apply(nm, "{\"PacketFilters\":{\"*\":[]}}"), 0);
	assert_int_equal(netmap_filters(nm, &f), 1);
	netmap_free(nm);
}

static void
test_apply_users_scalars(void **state __attribute__((unused)))
{
	struct netmap *nm = nm_new();
	const char *const *h;

	assert_int_equal(apply(nm, "{\"UserProfiles\":[{\"ID\":1,\"LoginName\":\"a\",\"DisplayName\":\"A\"},"
	    "{\"ID\":2,\"LoginName\":\"b\"}]}"), NETMAP_CHANGED_USERS);
	/* Upsert by ID; never removed (map.go keeps old profiles). */
	assert_int_equal(apply(nm, "{\"UserProfiles\":[{\"ID\":1,\"LoginName\":\"a\",\"DisplayName\":\"A\"}]}"), 0);
	assert_int_equal(apply(nm, "{\"UserProfiles\":[{\"ID\":2,\"LoginName\":\"b2\"}]}"), NETMAP_CHANGED_USERS);
	assert_string_equal(netmap_user(nm, 2)->login_name, "b2");
	assert_string_equal(netmap_user(nm, 1)->display_name, "A");
	assert_null(netmap_user(nm, 3));
	for (int i = 10; i < 100; i++) {
		char *j = fx("{\"UserProfiles\":[{\"ID\":%d,\"LoginName\":\"u%d\"}]}", i, i);

		apply_f(nm, j);
	}
	assert_int_equal(netmap_user_count(nm), 92);
	assert_string_equal(netmap_user(nm, 57)->login_name, "u57");

	assert_int_equal(netmap_collect_services(nm), -1);
	assert_int_equal(apply(nm, "{\"CollectServices\":true,\"Health\":[\"x\"],\"Domain\":\"d\"}"),
	    NETMAP_CHANGED_COLLECT_SERVICES | NETMAP_CHANGED_HEALTH | NETMAP_CHANGED_DOMAIN);
	assert_int_equal(netmap_collect_services(nm), 1);
	assert_int_equal(netmap_health(nm, &h), 1);
	assert_string_equal(h[0], "x");
	/* Absent Health keeps it; [] clears it. */
	assert_int_equal(apply(nm, "{\"Domain\":\"d\"}"), 0);
	assert_int_equal(apply(nm, "{\"Health\":[]}"), NETMAP_CHANGED_HEALTH);
	assert_int_equal(netmap_health(nm, &h), 0);
	netmap_free(nm);
}

static void
test_apply_keepalive(void **state __attribute__((unused)))
{
	struct netmap *nm = nm_new();

	apply(nm, hs_initial);
	/* Only ControlTime is honoured on a keep-alive (§4.4). */
	assert_int_equal(apply(nm, "{\"KeepAlive\":true,\"PeersRemoved\":[1],\"Domain\":\"x\","
	    "\"ControlTime\":\"2026-11-25T03:00:00Z\"}"), 0);
	assert_non_null(netmap_peer(nm, 1));
	assert_string_equal(netmap_domain(nm), "127.0.0.1");
	assert_int_equal(netmap_control_time(nm), 1795575600000LL);
	netmap_free(nm);
}

static void
test_apply_computed_names(void **state __attribute__((unused)))
{
	struct netmap *nm = nm_new();
	char buf[128];
	const struct netmap_node *p;

	apply(nm, "{\"Node\":{\"ID\":1,\"Name\":\"me.example.ts.net.\"},\"Peers\":["
	    "{\"ID\":2,\"Name\":\"laptop.example.ts.net.\",\"Hostinfo\":{\"Hostname\":\"Laptop\"}},"
	    "{\"ID\":3,\"Name\":\"box.example.ts.net.\",\"Hostinfo\":{\"Hostname\":\"-My_Box.local\"}},"
	    "{\"ID\":4,\"Name\":\"shared.other.ts.net.\"},"
	    "{\"ID\":5,\"Hostinfo\":{\"Hostname\":\"only host\"}},"
	    "{\"ID\":6,\"Key\":\"nodekey:00000000000000000000000000000000000000000000000000000000000000ab\"}]}");
	assert_string_equal(netmap_magic_dns_suffix(nm), "example.ts.net");
	netmap_computed_name(nm, netmap_peer(nm, 2), true, buf, sizeof buf);
	assert_string_equal(buf, "laptop");		/* EqualFold with the host */
	p = netmap_peer(nm, 3);
	netmap_computed_name(nm, p, false, buf, sizeof buf);
	assert_string_equal(buf, "box");
	netmap_computed_name(nm, p, true, buf, sizeof buf);
	assert_string_equal(buf, "box (my-box)");
	netmap_computed_name(nm, netmap_peer(nm, 4), true, buf, sizeof buf);
	assert_string_equal(buf, "shared.other.ts.net");	/* shared-in: FQDN */
	netmap_computed_name(nm, netmap_peer(nm, 5), true, buf, sizeof buf);
	assert_string_equal(buf, "only-host");
	netmap_computed_name(nm, netmap_peer(nm, 6), true, buf, sizeof buf);
	assert_string_equal(buf, "nodekey:00000000000000000000000000000000000000000000000000000000000000ab");
	/* Truncation reports the full length, like snprintf. */
	assert_int_equal(netmap_computed_name(nm, p, true, buf, 4), 12);
	assert_string_equal(buf, "box");
	netmap_computed_name(nm, netmap_self(nm), false, buf, sizeof buf);
	assert_string_equal(buf, "me");
	netmap_free(nm);
}

static void
test_apply_delta_cost(void **state __attribute__((unused)))
{
	/* 2,000 peers; a delta touches its peer and nothing else: one log
	 * entry, the others' storage untouched. */
	struct netmap *nm = nm_new();
	int ids[2000];
	const struct netmap_node *before[2000];
	size_t n;

	for (int i = 0; i < 2000; i++)
		ids[i] = i + 2;
	apply_f(nm, full_map(ids, 2000));
	assert_int_equal(netmap_peer_count(nm), 2000);
	for (int i = 0; i < 2000; i++)
		before[i] = netmap_peer(nm, ids[i]);
	apply(nm, "{\"PeersChangedPatch\":[{\"NodeID\":1000,\"Endpoints\":[\"1.2.3.4:5\"]}]}");
	netmap_changes(nm, &n);
	assert_int_equal(n, 1);
	for (int i = 0; i < 2000; i++)
		if (ids[i] != 1000)
			assert_ptr_equal(netmap_peer(nm, ids[i]), before[i]);
	/* The whole set replaced by a smaller one, then everything removed. */
	apply_f(nm, full_map(ids, 10));
	assert_int_equal(netmap_peer_count(nm), 10);
	netmap_changes(nm, &n);
	assert_int_equal(n, 1990);		/* removed; the other 10 as they were */
	apply(nm, "{\"PeersRemoved\":[2,3,4,5,6,7,8,9,10,11]}");
	assert_int_equal(netmap_peer_count(nm), 0);
	netmap_free(nm);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_le_length),
		cmocka_unit_test(test_frame_split_bytewise),
		cmocka_unit_test(test_frame_zstd),
		cmocka_unit_test(test_frame_caps),
		cmocka_unit_test(test_frame_bad_zstd),
		cmocka_unit_test(test_frame_callback_error),
		cmocka_unit_test(test_decode_headscale_initial),
		cmocka_unit_test(test_decode_unknown_and_case),
		cmocka_unit_test(test_decode_node_normalise),
		cmocka_unit_test(test_decode_patch_fields),
		cmocka_unit_test(test_decode_times),
		cmocka_unit_test(test_decode_strings),
		cmocka_unit_test(test_decode_bad_input),
		cmocka_unit_test(test_decode_limits),
		cmocka_unit_test(test_decode_derp_dns_filters),
		cmocka_unit_test(test_apply_headscale_initial),
		cmocka_unit_test(test_apply_full_replaces),
		cmocka_unit_test(test_apply_peers_changed),
		cmocka_unit_test(test_apply_peers_removed),
		cmocka_unit_test(test_apply_patches),
		cmocka_unit_test(test_apply_online_seen),
		cmocka_unit_test(test_apply_full_precludes_deltas),
		cmocka_unit_test(test_apply_absent_unchanged),
		cmocka_unit_test(test_apply_derp_merge),
		cmocka_unit_test(test_apply_packet_filters),
		cmocka_unit_test(test_apply_users_scalars),
		cmocka_unit_test(test_apply_keepalive),
		cmocka_unit_test(test_apply_computed_names),
		cmocka_unit_test(test_apply_delta_cost),
	};

	return cmocka_run_group_tests_name("netmap", tests, NULL, NULL);
}

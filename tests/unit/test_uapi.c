// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <sodium.h>

#include "common/keys.h"
#include "common/log.h"
#include "common/pkt.h"
#include "common/util.h"
#include "wg/uapi.h"
#include "wg/wg.h"

/*
 * The UAPI parser against the real wg core.  Expected texts follow
 * wireguard-go's device/uapi.go (IpcGetOperation / IpcSetOperation) and what
 * wg(8) sends (wireguard-tools src/ipc-uapi.h userspace_set_device).
 */

/* --- fixtures --- */

struct stub_host {
	uint16_t port;
	uint32_t fwmark;
	int port_err;		/* what set_listen_port answers */
	unsigned int changed;
	uint64_t now;
};

static uint16_t
stub_get_port(void *ctx)
{
	return ((struct stub_host *)ctx)->port;
}

static int
stub_set_port(void *ctx, uint16_t port)
{
	struct stub_host *h = ctx;

	if (h->port_err != 0)
		return h->port_err;
	h->port = port;
	return 0;
}

static uint32_t
stub_get_fwmark(void *ctx)
{
	return ((struct stub_host *)ctx)->fwmark;
}

static int
stub_set_fwmark(void *ctx, uint32_t mark)
{
	((struct stub_host *)ctx)->fwmark = mark;
	return 0;
}

static uint64_t
stub_now(void *ctx)
{
	return ((struct stub_host *)ctx)->now;
}

static void
stub_changed(void *ctx)
{
	((struct stub_host *)ctx)->changed++;
}

static void
ops_send(void *ctx, struct wg_peer *peer, const union wg_endpoint *to, const uint8_t *buf,
    size_t len)
{
}

static void
ops_send_pkt(void *ctx, struct wg_peer *peer, struct pkt *p)
{
	pkt_put(ctx, p);
}

static uint64_t
ops_realtime(void *ctx)
{
	return 1700000000ULL * 1000000000ULL;
}

static void
ops_random(void *ctx, void *buf, size_t len)
{
	randombytes_buf(buf, len);
}

static const struct wg_ops test_ops = {
	.send = ops_send,
	.send_pkt = ops_send_pkt,
	.realtime = ops_realtime,
	.random = ops_random,
};

struct fixture {
	struct pkt_pool pool;
	struct wg_device *dev;
	struct stub_host sh;
	struct uapi_host host;
	struct uapi_out out;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	assert_non_null(f);
	assert_int_equal(pkt_pool_init(&f->pool, 8), 0);
	f->dev = wg_device_new(&test_ops, &f->pool, &f->pool);
	assert_non_null(f->dev);
	f->sh.now = 1000;
	f->host = (struct uapi_host){
		.ctx = &f->sh,
		.get_listen_port = stub_get_port,
		.set_listen_port = stub_set_port,
		.get_fwmark = stub_get_fwmark,
		.set_fwmark = stub_set_fwmark,
		.now = stub_now,
		.changed = stub_changed,
	};
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	uapi_out_free(&f->out);
	wg_device_free(f->dev);
	pkt_pool_free(&f->pool);
	free(f);
	return 0;
}

/* Runs one request on a fresh connection; returns the response text. */
static const char *
run(struct fixture *f, const char *req)
{
	uapi_out_free(&f->out);
	uapi_handle(f->dev, &f->host, req, strlen(req), &f->out);
	return f->out.buf != NULL ? f->out.buf + f->out.off : "";
}

/* Deterministic key pairs: private key i is clamped bytes i, i+1, ... */
static void
make_key(int i, uint8_t priv[static 32], uint8_t pub[static 32])
{
	for (int j = 0; j < 32; j++)
		priv[j] = (uint8_t)(i * 37 + j);
	priv[0] &= 248;
	priv[31] = (priv[31] & 127) | 64;
	assert_int_equal(crypto_scalarmult_base(pub, priv), 0);
}

static const char *
pub_hex(int i)
{
	static char hex[4][KEY_HEX_LEN];
	static int slot;
	uint8_t priv[32], pub[32];
	char *s = hex[slot++ % 4];

	make_key(i, priv, pub);
	key_to_hex(s, pub);
	return s;
}

static const char *
priv_hex(int i)
{
	static char hex[4][KEY_HEX_LEN];
	static int slot;
	uint8_t priv[32], pub[32];
	char *s = hex[slot++ % 4];

	make_key(i, priv, pub);
	key_to_hex(s, priv);
	return s;
}

static struct wg_peer *
peer_of(struct fixture *f, int i)
{
	uint8_t priv[32], pub[32];

	make_key(i, priv, pub);
	return wg_peer_lookup(f->dev, pub);
}

static bool
has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return true;
	}
	return false;
}

#define assert_line(text, line) do { \
	if (!has_line((text), (line))) \
		fail_msg("no line \"%s\" in:\n%s", (line), (text)); \
} while (0)
#define assert_prefix(text, prefix) do { \
	if (strncmp((text), (prefix), strlen(prefix)) != 0) \
		fail_msg("expected to start with:\n%s\ngot:\n%s", (prefix), (text)); \
} while (0)
#define assert_no_line(text, line) do { \
	if (has_line((text), (line))) \
		fail_msg("unexpected line \"%s\" in:\n%s", (line), (text)); \
} while (0)

/* The lines of one peer in a get response, copied into buf. */
static const char *
peer_block(const char *resp, const char *pubhex, char *buf, size_t len)
{
	char key[96];
	const char *start, *end;

	snprintf(key, sizeof key, "public_key=%s\n", pubhex);
	start = strstr(resp, key);
	if (start == NULL)
		fail_msg("no peer %s in:\n%s", pubhex, resp);
	end = strstr(start + strlen(key), "public_key=");
	if (end == NULL)
		end = strstr(start, "errno=");
	assert_non_null(end);
	assert_true((size_t)(end - start) < len);
	memcpy(buf, start, (size_t)(end - start));
	buf[end - start] = '\0';
	return buf;
}

static int
count_lines(const char *text, const char *prefix)
{
	int n = 0;
	size_t len = strlen(prefix);

	for (const char *p = text; *p != '\0'; p = strchr(p, '\n') + 1) {
		if (strncmp(p, prefix, len) == 0)
			n++;
		if (strchr(p, '\n') == NULL)
			break;
	}
	return n;
}

static char *
fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));

static char *
fmt(const char *f, ...)
{
	static char bufs[4][8192];
	static int slot;
	char *b = bufs[slot++ % 4];
	va_list ap;

	va_start(ap, f);
	vsnprintf(b, sizeof bufs[0], f, ap);
	va_end(ap);
	return b;
}

/* --- tests --- */

static void
test_get_empty(void **state)
{
	struct fixture *f = *state;

	/* No private key, port 0, no fwmark: wireguard-go prints nothing but errno. */
	assert_string_equal(run(f, "get=1\n\n"), "errno=0\n\n");
}

static void
test_set_get_roundtrip(void **state)
{
	struct fixture *f = *state;
	char blk[4096];
	const char *resp;
	struct wg_peer_info info;
	uint8_t psk[32];

	/* In the order and form wg(8) sends a setconf. */
	resp = run(f, fmt("set=1\n"
	    "private_key=%s\n"
	    "listen_port=51820\n"
	    "fwmark=4660\n"
	    "replace_peers=true\n"
	    "public_key=%s\n"
	    "preshared_key=%s\n"
	    "endpoint=192.0.2.1:51820\n"
	    "persistent_keepalive_interval=25\n"
	    "replace_allowed_ips=true\n"
	    "allowed_ip=10.0.0.0/24\n"
	    "allowed_ip=10.9.8.7/32\n"
	    "allowed_ip=fd00::/64\n"
	    "public_key=%s\n"
	    "endpoint=[2001:db8::1]:443\n"
	    "replace_allowed_ips=true\n"
	    "allowed_ip=10.1.0.0/16\n"
	    "allowed_ip=2001:db8:1::/48\n"
	    "\n", priv_hex(1), pub_hex(2), priv_hex(9), pub_hex(3)));
	assert_string_equal(resp, "errno=0\n\n");
	assert_int_equal(f->sh.port, 51820);
	assert_int_equal(f->sh.fwmark, 4660);
	assert_int_equal(f->sh.changed, 1);
	assert_int_equal(wg_device_peer_count(f->dev), 2);

	/* What the core holds. */
	wg_peer_get_info(peer_of(f, 2), &info);
	assert_int_equal(info.persistent_keepalive, 25);
	assert_true(info.has_endpoint);
	assert_int_equal(info.endpoint.sa.sa_family, AF_INET);
	assert_int_equal(ntohs(info.endpoint.in4.sin_port), 51820);
	assert_true(wg_peer_preshared_key(peer_of(f, 2), psk));
	assert_false(wg_peer_preshared_key(peer_of(f, 3), psk));

	resp = run(f, "get=1\n\n");
	/* Device lines first, in wireguard-go's order. */
	assert_prefix(resp, fmt("private_key=%s\nlisten_port=51820\nfwmark=4660\npublic_key=%s\n",
	    priv_hex(1), pub_hex(2)));
	assert_non_null(strstr(resp, "\nerrno=0\n\n"));
	assert_int_equal(strlen(strstr(resp, "\nerrno=0\n\n")), strlen("\nerrno=0\n\n"));

	/* Peers in insertion order. */
	assert_true(strstr(resp, pub_hex(2)) < strstr(resp, pub_hex(3)));

	peer_block(resp, pub_hex(2), blk, sizeof blk);
	assert_prefix(blk, fmt("public_key=%s\npreshared_key=%s\nprotocol_version=1\n"
	    "endpoint=192.0.2.1:51820\nlast_handshake_time_sec=0\nlast_handshake_time_nsec=0\n"
	    "tx_bytes=0\nrx_bytes=0\npersistent_keepalive_interval=25\n",
	    pub_hex(2), priv_hex(9)));
	assert_line(blk, "allowed_ip=10.0.0.0/24");
	assert_line(blk, "allowed_ip=10.9.8.7/32");
	assert_line(blk, "allowed_ip=fd00::/64");
	assert_int_equal(count_lines(blk, "allowed_ip="), 3);

	peer_block(resp, pub_hex(3), blk, sizeof blk);
	assert_line(blk, fmt("preshared_key=%064d", 0));
	assert_line(blk, "endpoint=[2001:db8::1]:443");
	assert_line(blk, "persistent_keepalive_interval=0");
	assert_line(blk, "allowed_ip=10.1.0.0/16");
	assert_line(blk, "allowed_ip=2001:db8:1::/48");
	assert_int_equal(count_lines(blk, "allowed_ip="), 2);
}

static void
test_set_masks_host_bits(void **state)
{
	struct fixture *f = *state;
	const char *resp;

	resp = run(f, fmt("set=1\npublic_key=%s\nallowed_ip=10.1.2.3/8\nallowed_ip=fd00::1234/16\n"
	    "allowed_ip=::ffff:192.0.2.9/120\n\n", pub_hex(2)));
	assert_string_equal(resp, "errno=0\n\n");
	resp = run(f, "get=1\n\n");
	assert_line(resp, "allowed_ip=10.0.0.0/8");
	assert_line(resp, "allowed_ip=fd00::/16");
	assert_line(resp, "allowed_ip=::ffff:192.0.2.0/120");
}

static void
test_private_key_clear_and_clamp(void **state)
{
	struct fixture *f = *state;
	uint8_t priv[32], pub[32], got[32];
	char hex[KEY_HEX_LEN];

	/* An unclamped key comes back clamped, as in wireguard-go. */
	make_key(1, priv, pub);
	priv[0] |= 7;
	key_to_hex(hex, priv);
	assert_string_equal(run(f, fmt("set=1\nprivate_key=%s\n\n", hex)), "errno=0\n\n");
	assert_true(wg_device_private_key(f->dev, got));
	make_key(1, priv, pub);
	assert_memory_equal(got, priv, 32);

	assert_string_equal(run(f, "set=1\nprivate_key="
	    "0000000000000000000000000000000000000000000000000000000000000000\n\n"), "errno=0\n\n");
	assert_false(wg_device_has_private_key(f->dev));
	assert_string_equal(run(f, "get=1\n\n"), "errno=0\n\n");
}

static void
test_replace_peers(void **state)
{
	struct fixture *f = *state;
	const char *resp;

	assert_string_equal(run(f, fmt("set=1\npublic_key=%s\npublic_key=%s\n\n", pub_hex(2),
	    pub_hex(3))), "errno=0\n\n");
	assert_int_equal(wg_device_peer_count(f->dev), 2);

	assert_string_equal(run(f, fmt("set=1\nreplace_peers=true\npublic_key=%s\n"
	    "allowed_ip=10.4.0.0/16\n\n", pub_hex(4))), "errno=0\n\n");
	assert_int_equal(wg_device_peer_count(f->dev), 1);
	assert_null(peer_of(f, 2));
	assert_non_null(peer_of(f, 4));
	resp = run(f, "get=1\n\n");
	assert_int_equal(count_lines(resp, "public_key="), 1);

	/* Only "true" is accepted, and the peers stay. */
	assert_string_equal(run(f, "set=1\nreplace_peers=false\n\n"), "errno=-22\n\n");
	assert_int_equal(wg_device_peer_count(f->dev), 1);
}

static void
test_replace_allowed_ips(void **state)
{
	struct fixture *f = *state;
	char blk[4096];
	const char *resp;

	assert_string_equal(run(f, fmt("set=1\npublic_key=%s\nallowed_ip=10.0.0.0/24\n"
	    "allowed_ip=fd00::/64\npublic_key=%s\nallowed_ip=10.3.0.0/16\n\n", pub_hex(2),
	    pub_hex(3))), "errno=0\n\n");

	/* Without replace_allowed_ips, prefixes accumulate. */
	assert_string_equal(run(f, fmt("set=1\npublic_key=%s\nallowed_ip=10.0.1.0/24\n\n",
	    pub_hex(2))), "errno=0\n\n");
	peer_block(run(f, "get=1\n\n"), pub_hex(2), blk, sizeof blk);
	assert_int_equal(count_lines(blk, "allowed_ip="), 3);

	assert_string_equal(run(f, fmt("set=1\npublic_key=%s\nreplace_allowed_ips=true\n"
	    "allowed_ip=192.168.0.0/16\n\n", pub_hex(2))), "errno=0\n\n");
	resp = run(f, "get=1\n\n");
	peer_block(resp, pub_hex(2), blk, sizeof blk);
	assert_int_equal(count_lines(blk, "allowed_ip="), 1);
	assert_line(blk, "allowed_ip=192.168.0.0/16");
	/* The other peer keeps its own. */
	peer_block(resp, pub_hex(3), blk, sizeof blk);
	assert_line(blk, "allowed_ip=10.3.0.0/16");

	/* A prefix moves to the peer that claims it last. */
	assert_string_equal(run(f, fmt("set=1\npublic_key=%s\nallowed_ip=10.3.0.0/16\n\n",
	    pub_hex(2))), "errno=0\n\n");
	resp = run(f, "get=1\n\n");
	peer_block(resp, pub_hex(3), blk, sizeof blk);
	assert_int_equal(count_lines(blk, "allowed_ip="), 0);
}

static void
test_remove(void **state)
{
	struct fixture *f = *state;

	assert_string_equal(run(f, fmt("set=1\npublic_key=%s\nallowed_ip=10.0.0.0/24\n"
	    "public_key=%s\n\n", pub_hex(2), pub_hex(3))), "errno=0\n\n");
	assert_string_equal(run(f, fmt("set=1\npublic_key=%s\nremove=true\n\n", pub_hex(2))),
	    "errno=0\n\n");
	assert_null(peer_of(f, 2));
	assert_non_null(peer_of(f, 3));

	/* Lines after remove go nowhere; removing an unknown peer creates nothing. */
	assert_string_equal(run(f, fmt("set=1\npublic_key=%s\nremove=true\nallowed_ip=10.0.0.0/8\n"
	    "endpoint=192.0.2.1:1\n\n", pub_hex(5))), "errno=0\n\n");
	assert_null(peer_of(f, 5));
	assert_int_equal(wg_device_peer_count(f->dev), 1);

	assert_string_equal(run(f, fmt("set=1\npublic_key=%s\nremove=1\n\n", pub_hex(3))),
	    "errno=-22\n\n");
	assert_non_null(peer_of(f, 3));
}

static void
test_update_only(void **state)
{
	struct fixture *f = *state;
	struct wg_peer_info info;

	/* A peer that does not exist is not created. */
	assert_string_equal(run(f, fmt("set=1\npublic_key=%s\nupdate_only=true\n"
	    "endpoint=192.0.2.1:1\n\n", pub_hex(2))), "errno=0\n\n");
	assert_int_equal(wg_device_peer_count(f->dev), 0);

	/* ... even when lines before update_only would have created it (wireguard-go). */
	assert_string_equal(run(f, fmt("set=1\npublic_key=%s\nendpoint=192.0.2.1:1\n"
	    "update_only=true\n\n", pub_hex(2))), "errno=0\n\n");
	assert_int_equal(wg_device_peer_count(f->dev), 0);

	/* An existing one is updated. */
	assert_string_equal(run(f, fmt("set=1\npublic_key=%s\n\n", pub_hex(2))), "errno=0\n\n");
	assert_string_equal(run(f, fmt("set=1\npublic_key=%s\nupdate_only=true\n"
	    "persistent_keepalive_interval=15\n\n", pub_hex(2))), "errno=0\n\n");
	wg_peer_get_info(peer_of(f, 2), &info);
	assert_int_equal(info.persistent_keepalive, 15);
}

static void
test_own_key_ignored(void **state)
{
	struct fixture *f = *state;

	/* wireguard-go skips a peer with our own public key instead of failing. */
	assert_string_equal(run(f, fmt("set=1\nprivate_key=%s\npublic_key=%s\n"
	    "allowed_ip=10.0.0.0/8\npublic_key=%s\n\n", priv_hex(1), pub_hex(1), pub_hex(2))),
	    "errno=0\n\n");
	assert_int_equal(wg_device_peer_count(f->dev), 1);
	assert_null(peer_of(f, 1));
}

static void
test_keepalive(void **state)
{
	struct fixture *f = *state;
	struct wg_peer_info info;

	assert_string_equal(run(f, fmt("set=1\npublic_key=%s\n"
	    "persistent_keepalive_interval=65535\n\n", pub_hex(2))), "errno=0\n\n");
	wg_peer_get_info(peer_of(f, 2), &info);
	assert_int_equal(info.persistent_keepalive, 65535);
	assert_string_equal(run(f, fmt("set=1\npublic_key=%s\n"
	    "persistent_keepalive_interval=65536\n\n", pub_hex(2))), "errno=-22\n\n");
	assert_string_equal(run(f, fmt("set=1\npublic_key=%s\npersistent_keepalive_interval=0\n\n",
	    pub_hex(2))), "errno=0\n\n");
	wg_peer_get_info(peer_of(f, 2), &info);
	assert_int_equal(info.persistent_keepalive, 0);
}

static void
test_endpoints(void **state)
{
	static const struct {
		const char *in, *out;
	} ok[] = {
		{ "192.0.2.1:51820", "192.0.2.1:51820" },
		{ "0.0.0.0:0", "0.0.0.0:0" },
		{ "255.255.255.255:65535", "255.255.255.255:65535" },
		{ "[2001:db8::1]:443", "[2001:db8::1]:443" },
		{ "[::ffff:192.0.2.1]:1", "[::ffff:192.0.2.1]:1" },
		{ "[fe80::1%1]:51820", "[fe80::1]:51820" },
		{ "[fe80::1%lo]:51820", "[fe80::1]:51820" },
	};
	static const char *bad[] = {
		"", "192.0.2.1", "192.0.2.1:", "192.0.2.1:65536", "192.0.2.1:-1", "192.0.2.1:+1",
		"example.com:51820", "2001:db8::1:443", "[2001:db8::1]", "[2001:db8::1]443",
		"[192.0.2.1]:1", "192.0.2.01:1", "[fe80::1%]:1", "[fe80::1%nosuchif0]:1",
		"[2001:db8::1:443", "1.2.3:4",
	};
	struct fixture *f = *state;
	char blk[4096];

	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		assert_string_equal(run(f, fmt("set=1\npublic_key=%s\nendpoint=%s\n\n", pub_hex(2),
		    ok[i].in)), "errno=0\n\n");
		peer_block(run(f, "get=1\n\n"), pub_hex(2), blk, sizeof blk);
		assert_line(blk, fmt("endpoint=%s", ok[i].out));
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *resp = run(f, fmt("set=1\npublic_key=%s\nendpoint=%s\n\n", pub_hex(2),
		    bad[i]));

		if (strcmp(resp, "errno=-22\n\n") != 0)
			fail_msg("endpoint \"%s\": %s", bad[i], resp);
	}
	/* The last good endpoint is still there. */
	peer_block(run(f, "get=1\n\n"), pub_hex(2), blk, sizeof blk);
	assert_line(blk, "endpoint=[fe80::1]:51820");
}

static void
test_bad_lines(void **state)
{
	static const struct {
		const char *line;
		int err;
	} cases[] = {
		/* bad hex keys */
		{ "preshared_key=zz0000000000000000000000000000"
		    "0000000000000000000000000000000000", -EINVAL },
		{ "preshared_key=0000", -EINVAL },
		{ "preshared_key=", -EINVAL },
		{ "public_key=123", -EINVAL },
		/* bad prefixes */
		{ "allowed_ip=10.0.0.0/33", -EINVAL },
		{ "allowed_ip=::/129", -EINVAL },
		{ "allowed_ip=10.0.0.0", -EINVAL },
		{ "allowed_ip=10.0.0.0/", -EINVAL },
		{ "allowed_ip=10.0.0.0/024", -EINVAL },
		{ "allowed_ip=10.0.0.0/+24", -EINVAL },
		{ "allowed_ip=10.0.0/24", -EINVAL },
		{ "allowed_ip=fe80::1%eth0/64", -EINVAL },
		{ "allowed_ip=/0", -EINVAL },
		/* bad values */
		{ "persistent_keepalive_interval=-1", -EINVAL },
		{ "persistent_keepalive_interval=", -EINVAL },
		{ "protocol_version=2", -EINVAL },
		{ "replace_allowed_ips=yes", -EINVAL },
		{ "update_only=1", -EINVAL },
		/* unknown keys: ipcErrorInvalid in wireguard-go */
		{ "bogus=1", -EINVAL },
		{ "listen_port=1", -EINVAL },	/* a device key in a peer section */
		{ "=", -EINVAL },
		/* no '=': ipcErrorProtocol */
		{ "allowed_ip", -EPROTO },
		{ "garbage", -EPROTO },
	};
	struct fixture *f = *state;
	struct wg_peer_info info;
	char blk[4096];
	const char *resp;

	assert_string_equal(run(f, fmt("set=1\npublic_key=%s\nallowed_ip=10.2.0.0/16\n"
	    "persistent_keepalive_interval=7\npublic_key=%s\nallowed_ip=10.3.0.0/16\n\n",
	    pub_hex(2), pub_hex(3))), "errno=0\n\n");

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		/* A line valid before the bad one is kept, like wireguard-go's streaming apply. */
		resp = run(f, fmt("set=1\npublic_key=%s\nendpoint=192.0.2.%zu:1\n%s\n"
		    "allowed_ip=10.99.0.0/16\n\n", pub_hex(2), i + 1, cases[i].line));
		if (strcmp(resp, fmt("errno=%d\n\n", cases[i].err)) != 0)
			fail_msg("\"%s\": got %s", cases[i].line, resp);
		wg_peer_get_info(peer_of(f, 2), &info);
		assert_int_equal(ntohl(info.endpoint.in4.sin_addr.s_addr) & 0xff, i + 1);
	}
	/* Lines after the bad one were not applied; the other peer was not touched. */
	resp = run(f, "get=1\n\n");
	assert_no_line(resp, "allowed_ip=10.99.0.0/16");
	peer_block(resp, pub_hex(2), blk, sizeof blk);
	assert_line(blk, "allowed_ip=10.2.0.0/16");
	assert_line(blk, "persistent_keepalive_interval=7");
	peer_block(resp, pub_hex(3), blk, sizeof blk);
	assert_line(blk, "allowed_ip=10.3.0.0/16");
	assert_no_line(blk, "endpoint=");
	assert_int_equal(wg_device_peer_count(f->dev), 2);
}

static void
test_bad_device_lines(void **state)
{
	struct fixture *f = *state;
	uint8_t got[32], priv[32], pub[32];

	assert_string_equal(run(f, fmt("set=1\nprivate_key=%s\nlisten_port=1000\n\n", priv_hex(1))),
	    "errno=0\n\n");
	/* A bad private key is refused and the old one kept. */
	assert_string_equal(run(f, "set=1\nprivate_key=xyz\n\n"), "errno=-22\n\n");
	assert_string_equal(run(f, fmt("set=1\nprivate_key=%.63s\n\n", priv_hex(2))),
	    "errno=-22\n\n");
	assert_string_equal(run(f, fmt("set=1\nprivate_key=%sff\n\n", priv_hex(2))),
	    "errno=-22\n\n");
	assert_true(wg_device_private_key(f->dev, got));
	make_key(1, priv, pub);
	assert_memory_equal(got, priv, 32);

	assert_string_equal(run(f, "set=1\nlisten_port=65536\n\n"), "errno=-22\n\n");
	assert_string_equal(run(f, "set=1\nlisten_port=0x10\n\n"), "errno=-22\n\n");
	assert_string_equal(run(f, "set=1\nlisten_port= 1\n\n"), "errno=-22\n\n");
	assert_string_equal(run(f, "set=1\nfwmark=4294967296\n\n"), "errno=-22\n\n");
	assert_string_equal(run(f, "set=1\nfwmark=-1\n\n"), "errno=-22\n\n");
	assert_string_equal(run(f, "set=1\nendpoint=192.0.2.1:1\n\n"), "errno=-22\n\n");
	assert_string_equal(run(f, "set=1\nnope\n\n"), "errno=-71\n\n");
	assert_int_equal(f->sh.port, 1000);

	/* The host's error is passed on, as wireguard-go's ipcErrorPortInUse. */
	f->sh.port_err = -EADDRINUSE;
	assert_string_equal(run(f, "set=1\nlisten_port=2000\n\n"), "errno=-98\n\n");
	assert_int_equal(f->sh.port, 1000);

	/* Leading zeros are fine for numbers (strconv.ParseUint). */
	f->sh.port_err = 0;
	assert_string_equal(run(f, "set=1\nlisten_port=02000\nfwmark=0\n\n"), "errno=0\n\n");
	assert_int_equal(f->sh.port, 2000);
}

static void
test_missing_host_callbacks(void **state)
{
	struct fixture *f = *state;

	f->host.set_listen_port = NULL;
	f->host.set_fwmark = NULL;
	f->host.get_listen_port = NULL;
	f->host.get_fwmark = NULL;
	f->host.changed = NULL;
	assert_string_equal(run(f, "set=1\nlisten_port=1\n\n"), "errno=-95\n\n");
	assert_string_equal(run(f, "set=1\nfwmark=1\n\n"), "errno=-95\n\n");
	assert_string_equal(run(f, "get=1\n\n"), "errno=0\n\n");
}

static void
test_overlong_line(void **state)
{
	struct fixture *f = *state;
	size_t n = UAPI_MAX_LINE + 100;
	char *req = malloc(n + 256);
	int len;

	assert_non_null(req);
	len = snprintf(req, n + 256, "set=1\npublic_key=%s\nallowed_ip=", pub_hex(2));
	memset(req + len, '1', n);
	strcpy(req + len + n, "\nallowed_ip=10.0.0.0/8\n\nget=1\n\n");
	run(f, req);
	/* Refused, the rest skipped, no peer created, the next request served. */
	assert_string_equal(f->out.buf, "errno=-90\n\nerrno=0\n\n");

	/* A line of exactly UAPI_MAX_LINE bytes is still a line. */
	len = snprintf(req, n + 256, "set=1\npublic_key=%s\nbogus=", pub_hex(3));
	memset(req + len, 'x', UAPI_MAX_LINE - strlen("bogus="));
	strcpy(req + len + UAPI_MAX_LINE - strlen("bogus="), "\n\n");
	assert_string_equal(run(f, req), "errno=-22\n\n");

	/* An overlong operation line hangs up without an answer. */
	memset(req, 'g', n);
	req[n] = '\0';
	assert_string_equal(run(f, req), "");
	free(req);
}

static void
test_request_cap(void **state)
{
	struct fixture *f = *state;
	struct uapi_conn *c = uapi_conn_new();
	static char chunk[1 << 20];
	const char *head = fmt("set=1\npublic_key=%s\nallowed_ip=10.0.0.0/8\n", pub_hex(2));
	bool closed = false;
	size_t fed = 0;

	/* Valid lines forever: the request cap ends it with EMSGSIZE. */
	for (size_t i = 0; i + 19 <= sizeof chunk; i += 19)
		memcpy(chunk + i, "protocol_version=1\n", 19);
	assert_false(uapi_conn_feed(c, f->dev, &f->host, head, strlen(head), &f->out));
	while (!closed && fed <= UAPI_MAX_REQUEST + sizeof chunk) {
		closed = uapi_conn_feed(c, f->dev, &f->host, chunk,
		    sizeof chunk - sizeof chunk % 19, &f->out);
		fed += sizeof chunk;
	}
	assert_true(closed);
	assert_string_equal(f->out.buf, "errno=-90\n\n");
	/* The peer made before the cap stays; input after close is ignored. */
	assert_non_null(peer_of(f, 2));
	assert_true(uapi_conn_feed(c, f->dev, &f->host, "get=1\n\n", 7, &f->out));
	assert_string_equal(f->out.buf, "errno=-90\n\n");
	uapi_conn_free(c);
}

static void
test_response_limit(void **state)
{
	struct fixture *f = *state;
	const char *resp;
	char *stats;

	for (int i = 2; i < 12; i++)
		assert_string_equal(run(f, fmt("set=1\npublic_key=%s\nallowed_ip=10.%d.0.0/16\n\n",
		    pub_hex(i), i)), "errno=0\n\n");
	resp = run(f, "get=1\n\n");
	assert_true(strlen(resp) > 2000);

	/* Too big: no partial answer that would parse as complete, just ENOMEM. */
	stats = strdup(run(f, "get=stats\n\n"));
	assert_non_null(stats);
	f->out.limit = 2000;
	assert_string_equal(run(f, "get=1\n\nget=stats\n\n"), fmt("errno=-12\n\n%s", stats));
	free(stats);
	/* ... and what was queued before it stays. */
	uapi_out_free(&f->out);
	uapi_handle(f->dev, &f->host, "get=stats\n\nget=1\n\n", 18, &f->out);
	assert_int_equal(count_lines(f->out.buf, "errno=0"), 1);
	assert_int_equal(count_lines(f->out.buf, "errno=-12"), 1);
	assert_int_equal(count_lines(f->out.buf, "public_key="), 0);
	assert_int_equal(f->out.limit, 2000);

	/*
	 * Every answer is whole: a stats body that does not fit is dropped,
	 * and the errno lines still go out once the limit is reached.
	 */
	f->out.limit = 100;
	assert_string_equal(run(f, "get=stats\n\nset=1\n\nget=1\nx\n"),
	    "errno=-12\n\nerrno=0\n\nerrno=-22\n\n");
	uapi_out_free(&f->out);
	for (int i = 0; i < 20; i++)
		uapi_handle(f->dev, &f->host, "set=1\n\n", 7, &f->out);
	assert_int_equal(count_lines(f->out.buf, "errno=0"), 20);
	assert_int_equal(uapi_out_pending(&f->out), 20 * 9);
}

static void
test_operations(void **state)
{
	struct fixture *f = *state;

	/* wireguard-go hangs up on an unknown operation without answering. */
	assert_string_equal(run(f, "get=2\n\n"), "");
	assert_string_equal(run(f, "\n"), "");
	assert_string_equal(run(f, "set=1\r\n\n"), "");
	assert_string_equal(run(f, "GET=1\n\n"), "");
	/* get=1 must be followed by the blank line ("trailing character"). */
	assert_string_equal(run(f, "get=1\nx\n"), "errno=-22\n\n");
	/* A partial get at EOF is not answered. */
	assert_string_equal(run(f, "get=1\n"), "");
	assert_string_equal(run(f, "get=1"), "");
	/* Set lines may end in "\r\n" (bufio.ScanLines). */
	assert_string_equal(run(f, fmt("set=1\r\npublic_key=%s\r\n\r\n", pub_hex(2))), "");
	assert_string_equal(run(f, fmt("set=1\npublic_key=%s\r\nallowed_ip=10.0.0.0/8\r\n\r\n",
	    pub_hex(2))), "errno=0\n\n");
	assert_non_null(peer_of(f, 2));
	/* An embedded NUL is no key we know. */
	uapi_out_free(&f->out);
	{
		static const char req[] = "set=1\nfwmark=1\0002\n\n";

		uapi_handle(f->dev, &f->host, req, sizeof req - 1, &f->out);
	}
	assert_string_equal(f->out.buf, "errno=-22\n\n");
	/* An empty set is fine. */
	assert_string_equal(run(f, "set=1\n\n"), "errno=0\n\n");
}

static void
test_eof(void **state)
{
	struct fixture *f = *state;

	/* A set ended by EOF between lines is applied and answered (wireguard-go). */
	assert_string_equal(run(f, fmt("set=1\npublic_key=%s\n", pub_hex(2))), "errno=0\n\n");
	assert_non_null(peer_of(f, 2));
	/* A line cut short by EOF is not applied. */
	assert_string_equal(run(f, fmt("set=1\npublic_key=%s\nallowed_ip=10.0.0.0/2", pub_hex(3))),
	    "errno=-22\n\n");
	assert_no_line(run(f, "get=1\n\n"), "allowed_ip=0.0.0.0/2");
}

static void
test_incremental(void **state)
{
	struct fixture *f = *state;
	const char *req = fmt("set=1\nprivate_key=%s\nlisten_port=7\npublic_key=%s\n"
	    "endpoint=[2001:db8::2]:9\nallowed_ip=10.0.0.0/24\n\nget=1\n\nget=stats\n\n"
	    "set=1\npublic_key=%s\nbad\nallowed_ip=1.0.0.0/8\n\nget=1\n\n", priv_hex(1), pub_hex(2),
	    pub_hex(3));
	struct uapi_out whole = { 0 };
	struct uapi_conn *c;
	char *expect;

	/* Several requests on one connection, at once ... */
	uapi_handle(f->dev, &f->host, req, strlen(req), &whole);
	expect = strdup(whole.buf);
	assert_non_null(expect);
	assert_int_equal(count_lines(expect, "errno=0"), 4);
	assert_int_equal(count_lines(expect, "errno=-71"), 1);
	assert_int_equal(count_lines(expect, "public_key="), 2);

	/* ... and byte by byte on a fresh device give the same answers. */
	wg_device_free(f->dev);
	f->dev = wg_device_new(&test_ops, &f->pool, &f->pool);
	c = uapi_conn_new();
	for (size_t i = 0; req[i] != '\0'; i++)
		assert_false(uapi_conn_feed(c, f->dev, &f->host, req + i, 1, &f->out));
	uapi_conn_eof(c, f->dev, &f->host, &f->out);
	uapi_conn_free(c);
	assert_string_equal(f->out.buf, expect);
	free(expect);
	uapi_out_free(&whole);
}

static void
test_stats(void **state)
{
	static const char *names[] = {
		"rx_short", "rx_bad_type", "rx_bad_size", "rx_bad_mac", "rx_handshake_invalid",
		"rx_handshake_flood", "rx_ratelimited", "rx_cookie_invalid", "rx_unknown_index",
		"rx_expired_key", "rx_decrypt_fail", "rx_replay", "rx_bad_inner", "rx_bad_source",
		"tx_no_route", "tx_staged_dropped", "cookies_sent", "handshakes_sent",
		"handshakes_completed",
	};
	struct fixture *f = *state;
	union wg_endpoint src = { .in4 = { .sin_family = AF_INET, .sin_port = htons(1) } };
	uint8_t msg[3] = { 1, 0, 0 };
	struct wg_rx_info info;
	const char *resp;

	/* A 3-byte datagram counts as rx_short. */
	assert_int_equal(wg_receive(f->dev, msg, sizeof msg, &src, 1, &info), WG_RX_DROP);

	resp = run(f, "get=stats\n\n");
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		assert_non_null(strstr(resp, fmt("%s=", names[i])));
	assert_int_equal(count_lines(resp, "rx_"), 14);
	assert_int_equal(count_lines(resp, ""), 19 + 2);
	assert_line(resp, "rx_short=1");
	assert_line(resp, "rx_replay=0");
	assert_true(strcmp(resp + strlen(resp) - 9, "errno=0\n\n") == 0);
	assert_string_equal(run(f, "get=stats\nx\n"), "errno=-22\n\n");
}

static void
test_read_only(void **state)
{
	struct fixture *f = *state;

	f->host.read_only = true;
	assert_string_equal(run(f, fmt("set=1\npublic_key=%s\n\nget=1\n\n", pub_hex(2))),
	    "errno=-1\n\nerrno=0\n\n");
	assert_int_equal(wg_device_peer_count(f->dev), 0);
	assert_int_equal(f->sh.changed, 0);
}

static void
test_response_status(void **state)
{
	assert_int_equal(uapi_response_status("errno=0\n\n", 9), 0);
	assert_int_equal(uapi_response_status("a=b\nerrno=-22\n\n", 15), -22);
	assert_int_equal(uapi_response_status("errno=22\n\n", 10), -22);
	assert_int_equal(uapi_response_status("errno=0\n", 8), -EPROTO);
	assert_int_equal(uapi_response_status("errno=\n\n", 8), -EPROTO);
	assert_int_equal(uapi_response_status("errno=-\n\n", 9), -EPROTO);
	assert_int_equal(uapi_response_status("errno=1x\n\n", 10), -EPROTO);
	assert_int_equal(uapi_response_status("errno=99999999999\n\n", 19), -EPROTO);
	assert_int_equal(uapi_response_status("x=1\n\n", 5), -EPROTO);
	assert_int_equal(uapi_response_status("", 0), -EPROTO);
	assert_int_equal(uapi_response_status(NULL, 0), -EPROTO);
}

static void
test_out_buffer(void **state)
{
	struct fixture *f = *state;
	struct uapi_conn *c = uapi_conn_new();
	char *one, *all, *got;
	size_t n, glen = 0;

	one = strdup(run(f, "get=stats\n\n"));
	assert_non_null(one);
	n = strlen(one);
	all = calloc(50, n + 1);
	got = calloc(50, n + 1);
	assert_non_null(all);
	assert_non_null(got);
	for (int i = 0; i < 50; i++)
		strcat(all, one);

	/* Appends while the front is being consumed keep the unsent bytes in order. */
	uapi_out_free(&f->out);
	for (int i = 0; i < 50; i++) {
		size_t take;

		assert_false(uapi_conn_feed(c, f->dev, &f->host, "get=stats\n\n", 11, &f->out));
		take = MIN(uapi_out_pending(&f->out), (size_t)(n / 3 + i));
		memcpy(got + glen, f->out.buf + f->out.off, take);
		glen += take;
		uapi_out_consume(&f->out, take);
		assert_int_equal(f->out.buf[f->out.len], '\0');
	}
	memcpy(got + glen, f->out.buf + f->out.off, uapi_out_pending(&f->out));
	glen += uapi_out_pending(&f->out);
	uapi_out_consume(&f->out, uapi_out_pending(&f->out) + 5);
	assert_int_equal(uapi_out_pending(&f->out), 0);
	assert_int_equal(glen, 50 * n);
	assert_memory_equal(got, all, glen);
	uapi_conn_free(c);
	free(one);
	free(all);
	free(got);
}

/* --- the socket --- */

static char tmpdir[64];
static int expected_peers;	/* set before a fork, read by the child */

static void
on_child_done(evutil_socket_t fd, short what, void *arg)
{
	char b;

	if (what & EV_TIMEOUT || read(fd, &b, 1) <= 0)
		event_base_loopbreak(arg);
}

/*
 * Runs fn in a child process while the loop serves the socket; returns the
 * child's exit status.  Forking keeps the blocking client and the event loop
 * apart without threads.
 */
static int
with_client(struct event_base *base, int (*fn)(void), int timeout_sec)
{
	struct timeval tv = { timeout_sec, 0 };
	struct event *ev;
	int p[2], status;
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		_exit(fn());
	}
	close(p[1]);
	ev = event_new(base, p[0], EV_READ | EV_PERSIST, on_child_done, base);
	event_add(ev, &tv);
	event_base_dispatch(base);
	event_free(ev);
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

static int
client_set_get(void)
{
	char *resp;
	int r;

	r = uapi_client_request_at(tmpdir, "wgtest0", fmt("set=1\nlisten_port=4242\n"
	    "public_key=%s\nendpoint=192.0.2.7:7\nallowed_ip=10.7.0.0/16\n\n", pub_hex(2)), &resp);
	if (r != 0 || strcmp(resp, "errno=0\n\n") != 0) {
		fprintf(stderr, "set: %d %s\n", r, resp ? resp : "(null)");
		return 1;
	}
	free(resp);
	r = uapi_client_request_at(tmpdir, "wgtest0", "get=1\n\n", &resp);
	if (r != 0 || !has_line(resp, "listen_port=4242") ||
	    !has_line(resp, "endpoint=192.0.2.7:7") || !has_line(resp, "allowed_ip=10.7.0.0/16")) {
		fprintf(stderr, "get: %d %s\n", r, resp ? resp : "(null)");
		return 2;
	}
	free(resp);
	r = uapi_client_request_at(tmpdir, "wgtest0", "set=1\nbogus=1\n\n", &resp);
	if (r != -EINVAL || strcmp(resp, "errno=-22\n\n") != 0) {
		fprintf(stderr, "bad set: %d %s\n", r, resp ? resp : "(null)");
		return 3;
	}
	free(resp);
	r = uapi_client_request_at(tmpdir, "wgtest0", "get=stats\n\n", &resp);
	if (r != 0 || !has_line(resp, "rx_replay=0")) {
		fprintf(stderr, "stats: %d %s\n", r, resp ? resp : "(null)");
		return 4;
	}
	free(resp);
	/* Unknown operation: the server hangs up; no errno line is -EPROTO. */
	r = uapi_client_request_at(tmpdir, "wgtest0", "hello\n\n", &resp);
	if (r != -EPROTO || resp == NULL || resp[0] != '\0') {
		fprintf(stderr, "unknown op: %d\n", r);
		return 5;
	}
	free(resp);
	return 0;
}

/* Many clients at once, more than UAPI_MAX_CONNS, each sending in pieces. */
static int
client_many(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fds[UAPI_MAX_CONNS * 2];
	char buf[2048];

	snprintf(sun.sun_path, sizeof sun.sun_path, "%s/wgtest0.sock", tmpdir);
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
		fds[i] = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&sun, sizeof sun) != 0)
			return 10;
		if (write(fds[i], "get=", 4) != 4)
			return 11;
	}
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
		ssize_t n, len = 0;

		if (write(fds[i], "stats\n\n", 7) != 7 || shutdown(fds[i], SHUT_WR) != 0)
			return 12;
		while ((n = read(fds[i], buf + len, sizeof buf - 1 - (size_t)len)) > 0)
			len += n;
		buf[len] = '\0';
		if (strstr(buf, "errno=0\n\n") == NULL)
			return 13;
		close(fds[i]);
	}
	return 0;
}

static int
read_answer(int fd, char *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got + 1 < len && (n = read(fd, buf + got, len - 1 - got)) > 0) {
		got += (size_t)n;
		buf[got] = '\0';
		if (strstr(buf, "\n\n") != NULL)
			return 0;
	}
	return -1;
}

static int
client_many_keepalive(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fds[UAPI_MAX_CONNS * 2];
	char buf[1024];

	snprintf(sun.sun_path, sizeof sun.sun_path, "%s/wgtest0.sock", tmpdir);
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
		fds[i] = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&sun, sizeof sun) != 0)
			return 20;
	}
	/* The first UAPI_MAX_CONNS are served while the rest wait in the backlog. */
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
		if (write(fds[i], "get=stats\n\n", 11) != 11 ||
		    read_answer(fds[i], buf, sizeof buf) != 0)
			return 21;
		/* A second request on the same connection. */
		if (write(fds[i], "get=1\n\n", 7) != 7 || read_answer(fds[i], buf, sizeof buf) != 0)
			return 22;
		close(fds[i]);
	}
	return 0;
}

/*
 * Two big answers requested at once, read only after a pause: the server
 * must stop reading at its output high-water mark, wait for the socket to
 * drain (EAGAIN, write event), then serve the second request.
 */
static int
client_pipelined_big(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t len = 0, cap = 8 << 20;
	char *buf = malloc(cap);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ssize_t n;
	int ret = 0;

	snprintf(sun.sun_path, sizeof sun.sun_path, "%s/wgtest0.sock", tmpdir);
	if (buf == NULL || fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0)
		return 30;
	if (write(fd, "get=1\n\nget=1\n\n", 14) != 14 || shutdown(fd, SHUT_WR) != 0)
		return 31;
	usleep(200 * 1000);
	while ((n = read(fd, buf + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	if (count_lines(buf, "errno=0") != 2 ||
	    count_lines(buf, "public_key=") != 2 * expected_peers) {
		fprintf(stderr, "pipelined: %zu bytes, %d answers, %d peers\n", len,
		    count_lines(buf, "errno="), count_lines(buf, "public_key="));
		ret = 32;
	}
	/* Both answers are the same text. */
	if (ret == 0 && memcmp(buf, buf + len / 2, len / 2) != 0)
		ret = 33;
	free(buf);
	close(fd);
	return ret;
}

static void
test_server(void **state)
{
	struct fixture *f = *state;
	struct event_base *base = event_base_new();
	struct uapi_server *srv, *srv2;
	char path[128], *cause = NULL, *resp;
	struct stat st;

	assert_non_null(base);
	snprintf(tmpdir, sizeof tmpdir, "/tmp/meshd-uapi-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	/* The directory is made (0700) when missing. */
	strcat(tmpdir, "/wireguard");
	snprintf(path, sizeof path, "%s/wgtest0.sock", tmpdir);

	srv = uapi_server_open_at(base, tmpdir, "wgtest0", f->dev, &f->host, &cause);
	if (srv == NULL)
		fail_msg("%s", cause);
	assert_int_equal(stat(tmpdir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 077, 0);

	/* A second server on a live socket fails; the first keeps its file. */
	srv2 = uapi_server_open_at(base, tmpdir, "wgtest0", f->dev, &f->host, &cause);
	assert_null(srv2);
	assert_non_null(strstr(cause, "in use"));
	free(cause);
	assert_int_equal(stat(path, &st), 0);

	assert_int_equal(with_client(base, client_set_get, 20), 0);
	assert_int_equal(f->sh.port, 4242);
	assert_non_null(peer_of(f, 2));
	assert_int_equal(with_client(base, client_many, 20), 0);
	assert_int_equal(with_client(base, client_many_keepalive, 20), 0);

	/* 1500 peers: each get=1 answer is ~0.7 MB, far over socket buffers. */
	for (int i = 0; i < 1500; i++) {
		uint8_t priv[32], pub[32];
		struct wg_peer *p;

		randombytes_buf(priv, sizeof priv);
		assert_int_equal(crypto_scalarmult_base(pub, priv), 0);
		p = wg_peer_new(f->dev, pub);
		assert_non_null(p);
		assert_int_equal(wg_peer_add_allowed_ip(p, AF_INET6, pub, 128), 0);
	}
	expected_peers = (int)wg_device_peer_count(f->dev);
	assert_int_equal(with_client(base, client_pipelined_big, 30), 0);

	uapi_server_close(srv);
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(errno, ENOENT);

	/* Nobody listening. */
	assert_int_equal(uapi_client_request_at(tmpdir, "wgtest0", "get=1\n\n", &resp), -ENOENT);
	assert_null(resp);
	assert_int_equal(uapi_client_request_at(tmpdir, "bad/name", "get=1\n\n", &resp), -EINVAL);

	/* A stale socket (its process gone) is replaced. */
	{
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);

		strcpy(sun.sun_path, path);
		assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
		close(fd);
	}
	srv = uapi_server_open_at(base, tmpdir, "wgtest0", f->dev, &f->host, &cause);
	if (srv == NULL)
		fail_msg("%s", cause);
	uapi_server_close(srv);

	/* Something that is not a socket is left alone. */
	fclose(fopen(path, "w"));
	assert_null(uapi_server_open_at(base, tmpdir, "wgtest0", f->dev, &f->host, &cause));
	free(cause);
	unlink(path);

	/* Bad interface names. */
	assert_null(uapi_server_open_at(base, tmpdir, "../x", f->dev, &f->host, &cause));
	free(cause);
	assert_null(uapi_server_open_at(base, tmpdir, "0123456789abcdef", f->dev, &f->host,
	    &cause));
	free(cause);

	rmdir(tmpdir);
	*strrchr(tmpdir, '/') = '\0';
	rmdir(tmpdir);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_get_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_get_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_masks_host_bits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_private_key_clear_and_clamp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replace_peers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replace_allowed_ips, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_update_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_own_key_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keepalive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_endpoints, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_device_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_host_callbacks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overlong_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_response_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_operations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eof, setup, teardown),
		cmocka_unit_test_setup_teardown(test_incremental, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_only, setup, teardown),
		cmocka_unit_test(test_response_status),
		cmocka_unit_test_setup_teardown(test_out_buffer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server, setup, teardown),
	};

	log_init("test_uapi", LOG_LVL_ERR);
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests_name("uapi", tests, NULL, NULL);
}

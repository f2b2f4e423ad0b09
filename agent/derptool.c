// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * `meshd debug-derp`: one DERP client connection (derpconn.c) on its own,
 * to a server given by URL, for debugging a DERP server and for the tests
 * against a real derper.
 *
 *   meshd debug-derp --url URL [--key-file F] recv [--count N] [--reply]
 *   meshd debug-derp --url URL [--key-file F] send PEERKEY [--count N] [--wait]
 *
 * http:// URLs are dialled in plain HTTP, https:// with TLS (--insecure
 * skips verification, --cert-name sets the region's CertName, e.g.
 * sha256-raw:<hex> for a self-signed derper).  The node key is fresh per
 * run, or read from --key-file (created with a new key if missing).  The
 * public key is printed first as "nodekey:<hex>"; then received packets
 * as "recv from nodekey:<hex> len N: <text>", and connection changes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <sodium.h>

#include "agent/control/ctlconn.h"
#include "agent/control/netmap.h"
#include "agent/derptool.h"
#include "agent/magicsock/derp.h"
#include "agent/magicsock/derpconn.h"
#include "common/clock.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/util.h"

#define TOOL_REGION_ID	900
#define TOOL_MAX_COUNT	1000000
/* Keep this much in flight at most, well under the connection's output cap. */
#define TOOL_SEND_WINDOW (64 * 1024)
#define TOOL_LINGER_MS	300

struct tool {
	struct event_base *base;
	struct derpconn *conn;
	struct event *tick;
	bool send_mode, reply, wait;
	uint8_t peer[32];
	long count;		/* packets to send, or to receive before exiting (0 = no limit) */
	long sent, received;
	const char *message;
	bool ever_up;
	uint64_t flushed_at;	/* when the last packet left our buffers (send mode) */
	int status;
	bool done;
};

static void
usage(void)
{
	fprintf(stderr,
	    "usage: meshd debug-derp --url http[s]://HOST[:PORT] [--key-file FILE] [--timeout SECONDS]\n"
	    "                        [--insecure] [--cert-name NAME] [--verbose]\n"
	    "                        recv [--count N] [--reply]\n"
	    "                      | send PEERKEY [--count N] [--message TEXT] [--wait]\n");
}

static void
finish(struct tool *t, int status)
{
	if (t->done)
		return;
	t->done = true;
	t->status = status;
	event_base_loopbreak(t->base);
}

/* Payloads are test text; anything unprintable is shown as '.'. */
static void
print_payload(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len && i < 512; i++)
		putchar(p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '.');
	if (len > 512)
		fputs("...", stdout);
}

static void
on_recv(void *ctx, struct derpconn *c, const uint8_t src[32], const uint8_t *pkt, size_t len)
{
	struct tool *t = ctx;
	char hex[KEY_HEX_LEN];

	key_to_hex(hex, src);
	printf("recv from nodekey:%s len %zu: ", hex, len);
	print_payload(pkt, len);
	putchar('\n');
	fflush(stdout);
	t->received++;
	if (t->reply && !t->send_mode) {
		uint8_t echo[DERP_MAX_PACKET];
		size_t n = MIN(len, sizeof echo - 6);

		memcpy(echo, "echo: ", 6);
		memcpy(echo + 6, pkt, n);
		if (derpconn_send(c, src, echo, n + 6) != 0)
			fprintf(stderr, "meshd: debug-derp: reply dropped\n");
	}
	if (t->count > 0 && ((!t->send_mode && t->received >= t->count) ||
	    (t->send_mode && t->wait && t->received >= t->count && t->sent >= t->count)))
		finish(t, 0);
}

static void
on_peer_gone(void *ctx, struct derpconn *c, const uint8_t key[32], uint8_t reason)
{
	char hex[KEY_HEX_LEN];

	key_to_hex(hex, key);
	printf("peer gone nodekey:%s reason %u\n", hex, reason);
	fflush(stdout);
}

static void
on_state(void *ctx, struct derpconn *c, bool up)
{
	struct tool *t = ctx;

	if (up) {
		t->ever_up = true;
		printf("connected to region %d\n", derpconn_region_id(c));
	} else {
		printf("disconnected: %s\n", derpconn_last_error(c));
	}
	fflush(stdout);
}

static const struct derpconn_ops tool_ops = { on_recv, on_peer_gone, on_state };

/* Send mode: feed packets while the connection is up, then wait for them to drain. */
static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct tool *t = arg;
	char buf[1024];
	int n;

	if (!t->send_mode || !derpconn_is_up(t->conn))
		return;
	while (t->sent < t->count && derpconn_queued_bytes(t->conn) < TOOL_SEND_WINDOW) {
		n = snprintf(buf, sizeof buf, "%s %ld", t->message, t->sent + 1);
		if (derpconn_send(t->conn, t->peer, (const uint8_t *)buf, (size_t)n) != 0)
			break;
		t->sent++;
	}
	if (t->sent < t->count || derpconn_queued_bytes(t->conn) != 0) {
		t->flushed_at = 0;
		return;
	}
	if (t->flushed_at == 0) {
		t->flushed_at = clock_mono_ns();
		printf("sent %ld packets\n", t->sent);
		fflush(stdout);
		if (t->wait && t->received >= t->count)
			finish(t, 0);
		return;
	}
	/*
	 * A moment after the last write, so the kernel has sent it before we
	 * close (and an unread byte in our receive queue cannot turn the
	 * close into a reset that loses it).
	 */
	if (!t->wait && clock_mono_ns() - t->flushed_at >= TOOL_LINGER_MS * NSEC_PER_MSEC)
		finish(t, 0);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	finish(arg, 0);
}

static void
on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct tool *t = arg;
	const char *err = derpconn_last_error(t->conn);

	if (!t->ever_up) {
		fprintf(stderr, "meshd: debug-derp: no connection: %s\n", err[0] ? err : "timed out");
		finish(t, 1);
	} else if (t->send_mode && (t->sent < t->count || (t->wait && t->received < t->count))) {
		fprintf(stderr, "meshd: debug-derp: timed out (sent %ld, received %ld of %ld)\n",
		    t->sent, t->received, t->count);
		finish(t, 1);
	} else if (!t->send_mode && t->count > 0 && t->received < t->count) {
		fprintf(stderr, "meshd: debug-derp: timed out (received %ld of %ld)\n", t->received,
		    t->count);
		finish(t, 1);
	} else {
		finish(t, 0);
	}
}

/* "nodekey:<hex>" or bare hex. */
static bool
parse_pubkey(uint8_t key[32], const char *s)
{
	if (strncmp(s, "nodekey:", 8) == 0)
		s += 8;
	return strlen(s) == 64 && key_from_hex(key, s);
}

/*
 * The node key from FILE ("privkey:<hex>", bare hex, or base64 as wg genkey
 * writes it), or a new one written there (mode 0600) if it does not exist.
 */
static bool
load_key(uint8_t *priv, const char *path)
{
	char line[128];
	const char *s = line;
	ssize_t n;
	int fd;
	bool ok;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT) {
		char hex[KEY_HEX_LEN];

		randombytes_buf(priv, 32);
		key_to_hex(hex, priv);
		n = snprintf(line, sizeof line, "privkey:%s\n", hex);
		sodium_memzero(hex, sizeof hex);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		ok = fd >= 0 && write(fd, line, (size_t)n) == n;
		if (fd >= 0)
			close(fd);
		sodium_memzero(line, sizeof line);
		if (!ok)
			fprintf(stderr, "meshd: debug-derp: cannot write %s: %s\n", path, strerror(errno));
		return ok;
	}
	if (fd < 0) {
		fprintf(stderr, "meshd: debug-derp: %s: %s\n", path, strerror(errno));
		return false;
	}
	n = read(fd, line, sizeof line - 1);
	close(fd);
	if (n < 0)
		n = 0;
	line[n] = '\0';
	line[strcspn(line, "\r\n \t")] = '\0';
	if (strncmp(s, "privkey:", 8) == 0)
		s += 8;
	ok = strlen(s) == 64 ? key_from_hex(priv, s) : key_from_base64(priv, s);
	sodium_memzero(line, sizeof line);
	if (!ok)
		fprintf(stderr, "meshd: debug-derp: %s holds no private key\n", path);
	return ok;
}

int
derptool_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "key-file", required_argument, NULL, 'k' },
		{ "count", required_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 't' },
		{ "message", required_argument, NULL, 'm' },
		{ "cert-name", required_argument, NULL, 'c' },
		{ "insecure", no_argument, NULL, 'i' },
		{ "reply", no_argument, NULL, 'r' },
		{ "wait", no_argument, NULL, 'w' },
		{ "verbose", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	const char *url = NULL, *key_file = NULL, *cert_name = "", *mode;
	struct tool t = { .status = 1, .message = "hello" };
	struct netmap_derp_node node = { 0 };
	struct netmap_derp_region region = { 0 };
	struct derpconn_cfg cfg = { 0 };
	struct evdns_base *dns = NULL;
	struct event *sigint = NULL, *sigterm = NULL, *tmo = NULL;
	struct timeval tick = { 0, 20 * 1000 };
	char host[256], hex[KEY_HEX_LEN], *cause = NULL, *end;
	uint8_t *priv = NULL, pub[32];
	uint16_t port;
	long timeout = 0;
	bool tls, insecure = false;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'u': url = optarg; break;
		case 'k': key_file = optarg; break;
		case 'm': t.message = optarg; break;
		case 'c': cert_name = optarg; break;
		case 'i': insecure = true; break;
		case 'r': t.reply = true; break;
		case 'w': t.wait = true; break;
		case 'v': log_level = LOG_LVL_DEBUG; break;
		case 'n':
		case 't': {
			long v = strtol(optarg, &end, 10);

			if (*optarg == '\0' || *end != '\0' || v < 0 || v > TOOL_MAX_COUNT) {
				usage();
				return 2;
			}
			if (c == 'n')
				t.count = v;
			else
				timeout = v;
			break;
		}
		default:
			usage();
			return 2;
		}
	}
	if (url == NULL || optind >= argc) {
		usage();
		return 2;
	}
	mode = argv[optind++];
	if (strcmp(mode, "send") == 0) {
		t.send_mode = true;
		if (optind >= argc || !parse_pubkey(t.peer, argv[optind++])) {
			fprintf(stderr, "meshd: debug-derp: send needs a peer key (nodekey:<64 hex>)\n");
			return 2;
		}
		if (t.count == 0)
			t.count = 1;
	} else if (strcmp(mode, "recv") != 0) {
		usage();
		return 2;
	}
	if (optind != argc) {
		usage();
		return 2;
	}
	if (!ctl_parse_url(url, &tls, host, sizeof host, &port)) {
		fprintf(stderr, "meshd: debug-derp: the URL must be http[s]://HOST[:PORT]\n");
		return 2;
	}
	if (sodium_init() < 0)
		fatal("libsodium failed to initialise");
	signal(SIGPIPE, SIG_IGN);

	/* The key lives in guarded, locked memory and is never printed. */
	if ((priv = sodium_malloc(32)) == NULL)
		fatal("out of memory");
	if (key_file != NULL) {
		if (!load_key(priv, key_file))
			goto out;
	} else {
		randombytes_buf(priv, 32);
	}
	crypto_scalarmult_curve25519_base(pub, priv);
	key_to_hex(hex, pub);
	printf("nodekey:%s\n", hex);
	fflush(stdout);

	/* A one-node region made from the URL, the way derphttp.NewClient treats a URL. */
	node.name = "1";
	node.hostname = host;
	node.cert_name = cert_name;
	node.ipv4 = "";
	node.ipv6 = "";
	node.region_id = TOOL_REGION_ID;
	node.derp_port = port;
	node.flags = insecure ? NETMAP_DERP_INSECURE_FOR_TESTS : 0;
	region.region_id = TOOL_REGION_ID;
	region.code = "debug";
	region.name = url;
	region.n_nodes = 1;
	region.nodes = &node;
	cfg.region = &region;
	cfg.node_priv = priv;
	cfg.node_pub = pub;
	cfg.plain_http = !tls;

	t.base = event_base_new();
	if (t.base == NULL)
		fatal("cannot create the event loop");
	{
		uint8_t ip[16];

		/* No resolver needed (nor /etc/resolv.conf read) for an IP literal. */
		if (inet_pton(AF_INET, host, ip) != 1 && inet_pton(AF_INET6, host, ip) != 1 &&
		    (dns = evdns_base_new(t.base, EVDNS_BASE_INITIALIZE_NAMESERVERS)) == NULL)
			dns = evdns_base_new(t.base, 0);
	}
	t.conn = derpconn_new(t.base, dns, &cfg, &tool_ops, &t, &cause);
	if (t.conn == NULL) {
		fprintf(stderr, "meshd: debug-derp: %s\n", cause ? cause : "cannot start");
		goto out;
	}
	sigint = evsignal_new(t.base, SIGINT, on_signal, &t);
	sigterm = evsignal_new(t.base, SIGTERM, on_signal, &t);
	event_add(sigint, NULL);
	event_add(sigterm, NULL);
	if (t.send_mode) {
		t.tick = event_new(t.base, -1, EV_PERSIST, on_tick, &t);
		event_add(t.tick, &tick);
	}
	if (timeout > 0) {
		struct timeval tv = { timeout, 0 };

		tmo = evtimer_new(t.base, on_timeout, &t);
		evtimer_add(tmo, &tv);
	}
	event_base_dispatch(t.base);
	if (t.conn != NULL) {
		struct derpconn_stats st;

		derpconn_stats(t.conn, &st);
		log_debug("debug-derp: rx %llu frames, tx %llu frames, %llu bad, %llu dropped, "
		    "%llu reconnects", (unsigned long long)st.rx_frames,
		    (unsigned long long)st.tx_frames, (unsigned long long)st.bad_frames,
		    (unsigned long long)(st.drops_queue + st.drops_output + st.drops_too_big),
		    (unsigned long long)st.reconnects);
	}
out:
	derpconn_free(t.conn);
	if (t.base != NULL) {
		/* A cancelled lookup reports back once more; let it, so nothing is left allocated. */
		event_base_loop(t.base, EVLOOP_NONBLOCK);
	}
	free(cause);
	if (t.tick)
		event_free(t.tick);
	if (sigint)
		event_free(sigint);
	if (sigterm)
		event_free(sigterm);
	if (tmo)
		event_free(tmo);
	if (dns)
		evdns_base_free(dns, 0);
	if (t.base)
		event_base_free(t.base);
	if (priv != NULL)
		sodium_free(priv);
	return t.status;
}

// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <sodium.h>

#include "common/keys.h"
#include "common/log.h"
#include "common/util.h"
#include "wg/uapi.h"
#include "wg/wg.h"

/* --- response buffer --- */

/*
 * Makes room for more bytes (plus the '\0').  Never reallocs in place: the
 * buffer may hold a private key, so an outgrown copy is wiped, not handed
 * back to malloc as is.
 *
 * Answer bodies stay within the limit; once one would not, overflow is set
 * and its caller replaces it (out_end()).  The errno line that ends every
 * answer is forced in past the limit, so that no answer is ever left
 * unterminated; those lines are a few bytes per request read.
 */
static bool
out_reserve(struct uapi_out *out, size_t more, bool force)
{
	size_t pending = out->len - out->off, ncap, limit = UAPI_MAX_RESPONSE;
	char *nbuf;

	if (out->limit != 0 && out->limit < limit)
		limit = out->limit;
	if (!force && (out->overflow || pending > limit || more > limit - pending)) {
		out->overflow = true;
		return false;
	}
	if (out->buf != NULL && out->len + more < out->cap)
		return true;
	if (out->off > 0) {
		memmove(out->buf, out->buf + out->off, pending);
		sodium_memzero(out->buf + pending, out->len - pending);
		out->off = 0;
		out->len = pending;
		if (pending + more < out->cap)
			return true;
	}
	ncap = out->cap ? out->cap : 512;
	while (ncap <= pending + more)
		ncap *= 2;
	nbuf = xmalloc(ncap);
	if (out->buf != NULL) {
		memcpy(nbuf, out->buf, out->len);
		sodium_memzero(out->buf, out->cap);
		free(out->buf);
	}
	nbuf[out->len] = '\0';
	out->buf = nbuf;
	out->cap = ncap;
	return true;
}

static void __attribute__((format(printf, 2, 3)))
out_printf(struct uapi_out *out, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !out_reserve(out, (size_t)n, false))
		return;
	va_start(ap, fmt);
	vsnprintf(out->buf + out->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	out->len += (size_t)n;
}

/* Drops what was appended after the first "keep" pending bytes. */
static void
out_truncate(struct uapi_out *out, size_t keep)
{
	size_t end = out->off + keep;

	if (out->buf == NULL || end >= out->len)
		return;
	sodium_memzero(out->buf + end, out->len - end);
	out->len = end;
}

void
uapi_out_consume(struct uapi_out *out, size_t n)
{
	if (n > uapi_out_pending(out))
		n = uapi_out_pending(out);
	if (n == 0)
		return;
	sodium_memzero(out->buf + out->off, n);
	out->off += n;
	if (out->off == out->len) {
		out->off = out->len = 0;
		out->buf[0] = '\0';
	}
}

void
uapi_out_free(struct uapi_out *out)
{
	size_t limit = out->limit;

	if (out->buf != NULL) {
		sodium_memzero(out->buf, out->cap);
		free(out->buf);
	}
	memset(out, 0, sizeof *out);
	out->limit = limit;
}

static void
out_key(struct uapi_out *out, const char *name, const uint8_t key[static WG_KEY_LEN])
{
	char hex[KEY_HEX_LEN];

	key_to_hex(hex, key);
	out_printf(out, "%s=%s\n", name, hex);
	sodium_memzero(hex, sizeof hex);
}

static void
out_errno(struct uapi_out *out, int err)
{
	char line[32];
	int n = snprintf(line, sizeof line, "errno=%d\n\n", err);

	out_reserve(out, (size_t)n, true);
	memcpy(out->buf + out->len, line, (size_t)n + 1);
	out->len += (size_t)n;
}

/*
 * Ends an answer whose body began when keep bytes were pending: with errno
 * err, or, if the body did not fit, with ENOMEM and no body at all, since a
 * truncated answer would parse as a complete one.
 */
static void
out_end(struct uapi_out *out, size_t keep, int err)
{
	if (out->overflow) {
		out_truncate(out, keep);
		out->overflow = false;
		log_warn("uapi: answer too large");
		err = -ENOMEM;
	}
	out_errno(out, err);
}

/* --- parsing values --- */

/* Decimal digits only, like Go's strconv.ParseUint(s, 10, bits). */
static bool
parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		unsigned int d = (unsigned int)(*s - '0');

		if (d > 9 || v > (max - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

static bool
parse_port(const char *s, in_port_t *port)
{
	uint64_t v;

	if (!parse_uint(s, UINT16_MAX, &v))
		return false;
	*port = htons((uint16_t)v);
	return true;
}

/*
 * An IPv6 zone: a scope id or an interface name, since wg(8) formats a
 * link-local endpoint with getnameinfo(NI_NUMERICHOST), which names the
 * interface.  if_nametoindex() is this module's only system call outside
 * the socket glue.
 */
static bool
parse_zone(const char *zone, uint32_t *scope)
{
	uint64_t v;

	if (parse_uint(zone, UINT32_MAX, &v)) {
		*scope = (uint32_t)v;
		return true;
	}
	if (*zone == '\0')
		return false;
	*scope = if_nametoindex(zone);
	return *scope != 0;
}

/*
 * "a.b.c.d:port" or "[v6%zone]:port", numeric only, as wireguard-go's
 * netip.ParseAddrPort takes it (wg(8) resolves names before it sends).
 * Modifies s.
 */
static bool
parse_endpoint(char *s, union wg_endpoint *ep)
{
	char *end, *zone;

	memset(ep, 0, sizeof *ep);
	if (s[0] == '[') {
		end = strchr(s, ']');
		if (end == NULL || end[1] != ':')
			return false;
		*end = '\0';
		zone = strchr(s + 1, '%');
		if (zone != NULL)
			*zone++ = '\0';
		ep->in6.sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, s + 1, &ep->in6.sin6_addr) != 1)
			return false;
		if (zone != NULL && !parse_zone(zone, &ep->in6.sin6_scope_id))
			return false;
		return parse_port(end + 2, &ep->in6.sin6_port);
	}
	end = strrchr(s, ':');
	if (end == NULL)
		return false;
	*end = '\0';
	ep->in4.sin_family = AF_INET;
	if (inet_pton(AF_INET, s, &ep->in4.sin_addr) != 1)
		return false;
	return parse_port(end + 1, &ep->in4.sin_port);
}

/*
 * "addr/bits" as netip.ParsePrefix takes it: the length is required, has no
 * sign or leading zero, and an IPv6 zone is refused.  Host bits are
 * cleared, so `wg show` prints the prefix the way wireguard-go does.
 */
static bool
parse_prefix(char *s, int *family, uint8_t addr[static 16], uint8_t *cidr)
{
	char *slash = strrchr(s, '/');
	uint64_t bits, max;

	if (slash == NULL)
		return false;
	*slash++ = '\0';
	if (slash[0] == '0' && slash[1] != '\0')
		return false;
	if (!parse_uint(slash, 128, &bits))
		return false;
	memset(addr, 0, 16);
	if (strchr(s, ':') != NULL) {
		*family = AF_INET6;
		max = 128;
	} else {
		*family = AF_INET;
		max = 32;
	}
	if (inet_pton(*family, s, addr) != 1 || bits > max)
		return false;
	for (unsigned int i = 0; i < max / 8; i++) {
		uint64_t keep = bits > i * 8u ? bits - i * 8u : 0;

		if (keep < 8)
			addr[i] &= (uint8_t)(0xff00u >> keep);
	}
	*cidr = (uint8_t)bits;
	return true;
}

/* --- the connection parser --- */

enum conn_state {
	CONN_OP,	/* expecting an operation line */
	CONN_GET,	/* "get=1" read; expecting its blank line */
	CONN_STATS,	/* "get=stats" read; expecting its blank line */
	CONN_SET,	/* applying set=1 lines */
	CONN_SKIP,	/* answered already; discarding up to the blank line */
	CONN_CLOSED,
};

enum peer_state {
	PEER_NONE,	/* still in the device section */
	PEER_PENDING,	/* public_key names no peer yet: created on first use */
	PEER_LIVE,	/* an existing peer, or one this request created */
	PEER_DUMMY,	/* lines go nowhere: removed, update_only, or our own key */
};

struct uapi_conn {
	enum conn_state state;
	enum peer_state peer;
	bool created;		/* the PEER_LIVE peer was created by this request */
	bool overlong;		/* the line passed UAPI_MAX_LINE; discarding to '\n' */
	size_t line_len;
	size_t req_len;		/* bytes of the current request so far */
	unsigned int line_no;	/* within a set request, for the log */
	uint8_t peer_key[WG_KEY_LEN];
	char line[UAPI_MAX_LINE + 1];
};

struct uapi_conn *
uapi_conn_new(void)
{
	return xcalloc(1, sizeof(struct uapi_conn));
}

void
uapi_conn_free(struct uapi_conn *conn)
{
	if (conn == NULL)
		return;
	sodium_memzero(conn, sizeof *conn);
	free(conn);
}

/*
 * The peer the current lines apply to, or NULL when they apply to none.  A
 * peer is created only once a line that configures it has been validated,
 * so a bad line never leaves a new, half-configured peer behind.  The peer
 * is looked up again for every line because another connection may have
 * removed it since the last feed.
 */
static int
cur_peer(struct uapi_conn *conn, struct wg_device *dev, struct wg_peer **peerp)
{
	struct wg_peer *peer = NULL;

	switch (conn->peer) {
	case PEER_PENDING:
		peer = wg_peer_new(dev, conn->peer_key);
		if (peer == NULL) {
			peer = wg_peer_lookup(dev, conn->peer_key);
			if (peer == NULL)
				return wg_device_peer_count(dev) >= WG_MAX_PEERS ?
				    -ENOSPC : -EINVAL;
			conn->created = false;
		} else {
			conn->created = true;
			log_debug("uapi: peer %s created", key_fingerprint(conn->peer_key).s);
		}
		conn->peer = PEER_LIVE;
		break;
	case PEER_LIVE:
		peer = wg_peer_lookup(dev, conn->peer_key);
		if (peer == NULL)
			conn->peer = PEER_DUMMY;
		break;
	case PEER_NONE:
	case PEER_DUMMY:
		break;
	}
	*peerp = peer;
	return 0;
}

/* The end of a peer's lines: "wg set wg0 peer KEY" alone creates the peer. */
static int
finish_peer(struct uapi_conn *conn, struct wg_device *dev)
{
	struct wg_peer *peer;

	if (conn->peer != PEER_PENDING)
		return 0;
	return cur_peer(conn, dev, &peer);
}

static int
set_public_key(struct uapi_conn *conn, struct wg_device *dev, const char *value)
{
	uint8_t self[WG_KEY_LEN];
	int r;

	if ((r = finish_peer(conn, dev)) != 0)
		return r;
	if (!key_from_hex(conn->peer_key, value))
		return -EINVAL;
	conn->created = false;
	/* wireguard-go ignores lines for our own key rather than failing. */
	if (wg_device_public_key(dev, self) && sodium_memcmp(self, conn->peer_key, WG_KEY_LEN) == 0)
		conn->peer = PEER_DUMMY;
	else if (wg_peer_lookup(dev, conn->peer_key) != NULL)
		conn->peer = PEER_LIVE;
	else
		conn->peer = PEER_PENDING;
	return 0;
}

static int
set_device_line(struct wg_device *dev, const struct uapi_host *host, const char *key, char *value)
{
	uint8_t sk[WG_KEY_LEN];
	uint64_t v;
	int r;

	if (strcmp(key, "private_key") == 0) {
		/* All zeros is valid hex and clears the key. */
		if (!key_from_hex(sk, value))
			return -EINVAL;
		wg_device_set_private_key(dev, sk);
		sodium_memzero(sk, sizeof sk);
		log_debug("uapi: private key updated");
		return 0;
	}
	if (strcmp(key, "listen_port") == 0) {
		if (!parse_uint(value, UINT16_MAX, &v))
			return -EINVAL;
		if (host->set_listen_port == NULL)
			return -EOPNOTSUPP;
		r = host->set_listen_port(host->ctx, (uint16_t)v);
		return r > 0 ? -r : r;
	}
	if (strcmp(key, "fwmark") == 0) {
		if (!parse_uint(value, UINT32_MAX, &v))
			return -EINVAL;
		if (host->set_fwmark == NULL)
			return -EOPNOTSUPP;
		r = host->set_fwmark(host->ctx, (uint32_t)v);
		return r > 0 ? -r : r;
	}
	if (strcmp(key, "replace_peers") == 0) {
		if (strcmp(value, "true") != 0)
			return -EINVAL;
		wg_device_remove_all_peers(dev);
		log_debug("uapi: all peers removed");
		return 0;
	}
	/* wireguard-go: "invalid UAPI device key", ipcErrorInvalid. */
	return -EINVAL;
}

static int
set_peer_line(struct uapi_conn *conn, struct wg_device *dev, const struct uapi_host *host,
    const char *key, char *value)
{
	struct wg_peer *peer;
	union wg_endpoint ep;
	uint8_t psk[WG_KEY_LEN], addr[16], cidr;
	uint64_t v;
	int family, r;

	if (strcmp(key, "update_only") == 0) {
		if (strcmp(value, "true") != 0)
			return -EINVAL;
		if (conn->peer == PEER_PENDING) {
			conn->peer = PEER_DUMMY;
		} else if (conn->peer == PEER_LIVE && conn->created) {
			/* Lines before update_only created it; wireguard-go undoes that. */
			if ((r = cur_peer(conn, dev, &peer)) != 0)
				return r;
			if (peer != NULL)
				wg_peer_remove(dev, peer);
			conn->peer = PEER_DUMMY;
		}
		return 0;
	}
	if (strcmp(key, "remove") == 0) {
		if (strcmp(value, "true") != 0)
			return -EINVAL;
		if (conn->peer == PEER_LIVE) {
			if ((r = cur_peer(conn, dev, &peer)) != 0)
				return r;
			if (peer != NULL) {
				wg_peer_remove(dev, peer);
				log_debug("uapi: peer %s removed",
				    key_fingerprint(conn->peer_key).s);
			}
		}
		conn->peer = PEER_DUMMY;
		return 0;
	}
	if (strcmp(key, "preshared_key") == 0) {
		if (!key_from_hex(psk, value))
			return -EINVAL;
		r = cur_peer(conn, dev, &peer);
		if (r == 0 && peer != NULL)
			wg_peer_set_preshared_key(peer, psk);
		sodium_memzero(psk, sizeof psk);
		return r;
	}
	if (strcmp(key, "endpoint") == 0) {
		if (!parse_endpoint(value, &ep))
			return -EINVAL;
		if ((r = cur_peer(conn, dev, &peer)) != 0)
			return r;
		if (peer != NULL)
			wg_peer_set_endpoint(peer, &ep);
		return 0;
	}
	if (strcmp(key, "persistent_keepalive_interval") == 0) {
		struct wg_peer_info info;

		if (!parse_uint(value, UINT16_MAX, &v))
			return -EINVAL;
		if ((r = cur_peer(conn, dev, &peer)) != 0 || peer == NULL)
			return r;
		/*
		 * Only a change reaches the core: wireguard-go sends the
		 * immediate keepalive only when the interval goes from off to on,
		 * and `wg setconf` repeats the interval on every run.
		 */
		wg_peer_get_info(peer, &info);
		if (info.persistent_keepalive != v)
			wg_peer_set_persistent_keepalive(peer, (uint16_t)v,
			    host->now != NULL ? host->now(host->ctx) : 0);
		return 0;
	}
	if (strcmp(key, "replace_allowed_ips") == 0) {
		if (strcmp(value, "true") != 0)
			return -EINVAL;
		if ((r = cur_peer(conn, dev, &peer)) != 0)
			return r;
		if (peer != NULL)
			wg_peer_clear_allowed_ips(peer);
		return 0;
	}
	if (strcmp(key, "allowed_ip") == 0) {
		if (!parse_prefix(value, &family, addr, &cidr))
			return -EINVAL;
		if ((r = cur_peer(conn, dev, &peer)) != 0 || peer == NULL)
			return r;
		return wg_peer_add_allowed_ip(peer, family, addr, cidr);
	}
	if (strcmp(key, "protocol_version") == 0)
		return strcmp(value, "1") == 0 ? 0 : -EINVAL;
	/* wireguard-go: "invalid UAPI peer key", ipcErrorInvalid. */
	return -EINVAL;
}

/* One complete "key=value" line of a set request, NUL-terminated at len. */
static int
set_line(struct uapi_conn *conn, struct wg_device *dev, const struct uapi_host *host,
    char *line, size_t len)
{
	char *eq = memchr(line, '=', len);

	/* wireguard-go answers a line without '=' with ipcErrorProtocol. */
	if (eq == NULL)
		return -EPROTO;
	if (memchr(line, '\0', len) != NULL)
		return -EINVAL;
	*eq = '\0';
	if (strcmp(line, "public_key") == 0)
		return set_public_key(conn, dev, eq + 1);
	if (conn->peer == PEER_NONE)
		return set_device_line(dev, host, line, eq + 1);
	return set_peer_line(conn, dev, host, line, eq + 1);
}

static void
end_set(struct uapi_conn *conn, const struct uapi_host *host, struct uapi_out *out, int err)
{
	if (err != 0)
		log_info("uapi: set failed at line %u: %s", conn->line_no, strerror(-err));
	out_errno(out, err);
	if (host->changed != NULL)
		host->changed(host->ctx);
}

static int
put_allowed_ip(void *ctx, int family, const uint8_t *addr, uint8_t cidr)
{
	char s[INET6_ADDRSTRLEN];

	if (inet_ntop(family, addr, s, sizeof s) != NULL)
		out_printf(ctx, "allowed_ip=%s/%u\n", s, cidr);
	return 0;
}

static void
do_get(struct wg_device *dev, const struct uapi_host *host, struct uapi_out *out)
{
	size_t keep = uapi_out_pending(out);
	uint8_t key[WG_KEY_LEN];
	struct wg_peer *peer;
	uint32_t fwmark;
	uint16_t port;

	/* wireguard-go prints the device keys only when they are set. */
	if (wg_device_private_key(dev, key))
		out_key(out, "private_key", key);
	port = host->get_listen_port != NULL ? host->get_listen_port(host->ctx) : 0;
	if (port != 0)
		out_printf(out, "listen_port=%u\n", port);
	fwmark = host->get_fwmark != NULL ? host->get_fwmark(host->ctx) : 0;
	if (fwmark != 0)
		out_printf(out, "fwmark=%u\n", fwmark);

	for (peer = wg_peer_first(dev); peer != NULL && !out->overflow; peer = wg_peer_next(peer)) {
		struct wg_peer_info info;
		char ep[128];

		wg_peer_get_info(peer, &info);
		out_key(out, "public_key", info.public_key);
		if (!wg_peer_preshared_key(peer, key))
			memset(key, 0, sizeof key);
		out_key(out, "preshared_key", key);
		out_printf(out, "protocol_version=1\n");
		if (info.has_endpoint)
			out_printf(out, "endpoint=%s\n",
			    wg_endpoint_str(&info.endpoint, ep, sizeof ep));
		out_printf(out, "last_handshake_time_sec=%llu\nlast_handshake_time_nsec=%llu\n",
		    (unsigned long long)(info.last_handshake_ns / 1000000000ULL),
		    (unsigned long long)(info.last_handshake_ns % 1000000000ULL));
		out_printf(out, "tx_bytes=%llu\nrx_bytes=%llu\npersistent_keepalive_interval=%u\n",
		    (unsigned long long)info.tx_bytes, (unsigned long long)info.rx_bytes,
		    info.persistent_keepalive);
		(void)wg_peer_walk_allowed_ips(peer, put_allowed_ip, out);
	}
	sodium_memzero(key, sizeof key);
	out_end(out, keep, 0);
}

/* The struct wg_stats fields, by name; get=stats prints them in this order. */
#define STAT(f) { #f, offsetof(struct wg_stats, f) }
static const struct stat_field {
	const char *name;
	size_t off;
} stat_fields[] = {
	STAT(rx_short), STAT(rx_bad_type), STAT(rx_bad_size), STAT(rx_bad_mac),
	STAT(rx_handshake_invalid), STAT(rx_handshake_flood), STAT(rx_ratelimited),
	STAT(rx_cookie_invalid), STAT(rx_unknown_index), STAT(rx_expired_key),
	STAT(rx_decrypt_fail), STAT(rx_replay), STAT(rx_bad_inner), STAT(rx_bad_source),
	STAT(tx_no_route), STAT(tx_staged_dropped), STAT(cookies_sent), STAT(handshakes_sent),
	STAT(handshakes_completed),
};
#undef STAT
_Static_assert(sizeof(struct wg_stats) == ARRAY_SIZE(stat_fields) * sizeof(uint64_t),
    "struct wg_stats changed: update stat_fields in wg/uapi.c");

static void
do_stats(struct wg_device *dev, struct uapi_out *out)
{
	const struct wg_stats *st = wg_device_stats(dev);
	size_t keep = uapi_out_pending(out);

	for (size_t i = 0; i < ARRAY_SIZE(stat_fields); i++) {
		uint64_t v;

		memcpy(&v, (const char *)st + stat_fields[i].off, sizeof v);
		out_printf(out, "%s=%llu\n", stat_fields[i].name, (unsigned long long)v);
	}
	out_end(out, keep, 0);
}

static bool
line_is(const char *line, size_t len, const char *s)
{
	return len == strlen(s) && memcmp(line, s, len) == 0;
}

/* A complete line (without its '\n'), or an overlong one's remains. */
static void
process_line(struct uapi_conn *conn, struct wg_device *dev, const struct uapi_host *host,
    struct uapi_out *out)
{
	char *line = conn->line;
	size_t len = conn->line_len;
	bool blank;
	int r;

	/* bufio.ScanLines in wireguard-go drops one '\r' from set lines. */
	if ((conn->state == CONN_SET || conn->state == CONN_SKIP) && len > 0 &&
	    line[len - 1] == '\r')
		len--;
	line[len] = '\0';
	blank = len == 0 && !conn->overlong;

	switch (conn->state) {
	case CONN_OP:
		if (line_is(line, len, "get=1")) {
			conn->state = CONN_GET;
		} else if (line_is(line, len, "get=stats")) {
			conn->state = CONN_STATS;
		} else if (line_is(line, len, "set=1")) {
			conn->line_no = 1;
			conn->peer = PEER_NONE;
			conn->created = false;
			conn->state = CONN_SET;
			if (host->read_only) {
				out_errno(out, -EPERM);
				conn->state = CONN_SKIP;
			}
		} else {
			/* wireguard-go logs "invalid UAPI operation" and hangs up. */
			log_debug("uapi: unknown operation, closing");
			conn->state = CONN_CLOSED;
		}
		break;
	case CONN_GET:
	case CONN_STATS:
		/* wireguard-go: "trailing character in UAPI get", ipcErrorInvalid. */
		if (!blank)
			out_errno(out, -EINVAL);
		else if (conn->state == CONN_GET)
			do_get(dev, host, out);
		else
			do_stats(dev, out);
		conn->state = CONN_OP;
		break;
	case CONN_SET:
		conn->line_no++;
		if (blank) {
			end_set(conn, host, out, finish_peer(conn, dev));
			conn->state = CONN_OP;
			break;
		}
		r = conn->overlong ? -EMSGSIZE : set_line(conn, dev, host, line, len);
		if (r != 0) {
			end_set(conn, host, out, r);
			conn->state = CONN_SKIP;
		}
		break;
	case CONN_SKIP:
		if (blank)
			conn->state = CONN_OP;
		break;
	case CONN_CLOSED:
		break;
	}
	sodium_memzero(conn->line, conn->line_len + 1);
	conn->line_len = 0;
	conn->overlong = false;
	if (conn->state == CONN_OP)
		conn->req_len = 0;
}

/* Input past a cap: answer what is unanswered, then hang up. */
static void
give_up(struct uapi_conn *conn, const struct uapi_host *host, struct uapi_out *out)
{
	if (conn->state == CONN_SET)
		end_set(conn, host, out, -EMSGSIZE);
	else if (conn->state == CONN_GET || conn->state == CONN_STATS)
		out_errno(out, -EMSGSIZE);
	sodium_memzero(conn->line, sizeof conn->line);
	conn->line_len = 0;
	conn->state = CONN_CLOSED;
}

bool
uapi_conn_feed(struct uapi_conn *conn, struct wg_device *dev, const struct uapi_host *host,
    const void *data, size_t len, struct uapi_out *out)
{
	const char *p = data, *end = p + len;

	while (p < end && conn->state != CONN_CLOSED) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl != NULL ? nl : end) - p);
		size_t used = n + (nl != NULL);

		if (used > UAPI_MAX_REQUEST - conn->req_len) {
			give_up(conn, host, out);
			break;
		}
		conn->req_len += used;
		if (!conn->overlong && n > UAPI_MAX_LINE - conn->line_len) {
			sodium_memzero(conn->line, conn->line_len);
			conn->line_len = 0;
			conn->overlong = true;
			/* Only set and skip lines can be worth reading to their end. */
			if (conn->state != CONN_SET && conn->state != CONN_SKIP) {
				give_up(conn, host, out);
				break;
			}
		}
		if (!conn->overlong) {
			memcpy(conn->line + conn->line_len, p, n);
			conn->line_len += n;
		}
		p += used;
		if (nl != NULL)
			process_line(conn, dev, host, out);
	}
	return conn->state == CONN_CLOSED;
}

void
uapi_conn_eof(struct uapi_conn *conn, struct wg_device *dev, const struct uapi_host *host,
    struct uapi_out *out)
{
	/*
	 * wireguard-go applies a set request's last line even without its
	 * '\n'; we do not, since a line cut short ("allowed_ip=10.0.0.0/2" of
	 * ".../24") would be applied as something else.  A set that ends
	 * cleanly between lines is finished and answered as wireguard-go does.
	 */
	if (conn->state == CONN_SET) {
		if (conn->line_len > 0 || conn->overlong)
			end_set(conn, host, out, -EINVAL);
		else
			end_set(conn, host, out, finish_peer(conn, dev));
	}
	sodium_memzero(conn->line, sizeof conn->line);
	conn->line_len = 0;
	conn->state = CONN_CLOSED;
}

void
uapi_handle(struct wg_device *dev, const struct uapi_host *host, const void *req, size_t len,
    struct uapi_out *out)
{
	struct uapi_conn *conn = uapi_conn_new();

	if (!uapi_conn_feed(conn, dev, host, req, len, out))
		uapi_conn_eof(conn, dev, host, out);
	uapi_conn_free(conn);
}

int
uapi_response_status(const char *resp, size_t len)
{
	const char *line, *s;
	long long v = 0;
	bool neg;

	if (resp == NULL || len < 3 || resp[len - 1] != '\n' || resp[len - 2] != '\n')
		return -EPROTO;
	line = resp + len - 2;
	while (line > resp && line[-1] != '\n')
		line--;
	if ((size_t)(resp + len - 2 - line) < 7 || strncmp(line, "errno=", 6) != 0)
		return -EPROTO;
	s = line + 6;
	neg = *s == '-';
	if (neg)
		s++;
	if (s == resp + len - 2)
		return -EPROTO;
	for (; s < resp + len - 2; s++) {
		if (*s < '0' || *s > '9' || v > 100000)
			return -EPROTO;
		v = v * 10 + (*s - '0');
	}
	/* wireguard-go sends negative values; take a positive one to mean the same. */
	return -(int)v;
}

/* --- socket glue --- */

struct uapi_client {
	TAILQ_ENTRY(uapi_client) entry;
	struct uapi_server *srv;
	int fd;
	struct event *rev;
	struct event *wev;
	struct uapi_conn *conn;
	struct uapi_out out;
	bool reading;
	bool closing;		/* close once out is flushed */
};

struct uapi_server {
	struct event_base *base;
	struct wg_device *dev;
	const struct uapi_host *host;
	int fd;
	struct event *lev;
	struct event *retry;	/* re-enables accept() after EMFILE */
	bool listening;
	bool backoff;
	unsigned int nclients;
	TAILQ_HEAD(, uapi_client) clients;
	dev_t sock_dev;		/* the socket file we made, to remove only that one */
	ino_t sock_ino;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* Pending output above which a connection stops reading (pipelined gets). */
#define CLIENT_OUT_HIGH	(64U << 10)

static const struct timeval idle_tv = { UAPI_IDLE_TIMEOUT_SEC, 0 };

static void
listener_update(struct uapi_server *srv)
{
	bool want = !srv->backoff && srv->nclients < UAPI_MAX_CONNS;

	if (want == srv->listening)
		return;
	if (want)
		event_add(srv->lev, NULL);
	else
		event_del(srv->lev);
	srv->listening = want;
}

/*
 * finish: the connection ends without EOF (timeout, error); a set request
 * in progress is still closed properly so the host hears about changes.
 */
static void
client_free(struct uapi_client *c, bool finish)
{
	struct uapi_server *srv = c->srv;

	if (finish)
		uapi_conn_eof(c->conn, srv->dev, srv->host, &c->out);
	TAILQ_REMOVE(&srv->clients, c, entry);
	event_free(c->rev);
	event_free(c->wev);
	close(c->fd);
	uapi_conn_free(c->conn);
	uapi_out_free(&c->out);
	free(c);
	srv->nclients--;
	listener_update(srv);
}

/* Writes what it can; may free c. */
static void
client_flush(struct uapi_client *c)
{
	while (uapi_out_pending(&c->out) > 0) {
		ssize_t n = send(c->fd, c->out.buf + c->out.off, uapi_out_pending(&c->out),
		    MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			client_free(c, true);
			return;
		}
		uapi_out_consume(&c->out, (size_t)n);
	}
	if (uapi_out_pending(&c->out) > 0) {
		event_add(c->wev, &idle_tv);
	} else if (c->closing) {
		client_free(c, false);
		return;
	}
	if (!c->closing && (uapi_out_pending(&c->out) < CLIENT_OUT_HIGH) != c->reading) {
		c->reading = !c->reading;
		if (c->reading)
			event_add(c->rev, &idle_tv);
		else
			event_del(c->rev);
	}
}

static void
client_read(evutil_socket_t fd, short what, void *arg)
{
	struct uapi_client *c = arg;
	struct uapi_server *srv = c->srv;
	uint8_t buf[16384];
	ssize_t n;

	if (what & EV_TIMEOUT) {
		log_debug("uapi: connection idle, closing");
		client_free(c, true);
		return;
	}
	/* One read per wakeup, so a big set request does not starve the loop. */
	n = read(fd, buf, sizeof buf);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n < 0) {
		client_free(c, true);
		return;
	}
	if (n == 0) {
		uapi_conn_eof(c->conn, srv->dev, srv->host, &c->out);
		c->closing = true;
	} else {
		c->closing = uapi_conn_feed(c->conn, srv->dev, srv->host, buf, (size_t)n, &c->out);
		sodium_memzero(buf, (size_t)n);
	}
	if (c->closing) {
		event_del(c->rev);
		c->reading = false;
	}
	client_flush(c);
}

static void
client_write(evutil_socket_t fd, short what, void *arg)
{
	struct uapi_client *c = arg;

	if (what & EV_TIMEOUT) {
		log_debug("uapi: client not reading, closing");
		client_free(c, true);
		return;
	}
	client_flush(c);
}

/* Defence in depth behind the 0700 directory: root or our own user only. */
static bool
peer_allowed(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof cred;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1)
		return false;
	return cred.uid == 0 || cred.uid == geteuid();
}

static void
server_accept(evutil_socket_t fd, short what, void *arg)
{
	static const struct timeval backoff_tv = { 1, 0 };
	struct uapi_server *srv = arg;
	struct uapi_client *c;
	int cfd;

	while (srv->nclients < UAPI_MAX_CONNS) {
		cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* Out of descriptors: pause rather than spin (tmux). */
				log_warn("uapi: accept: %s", strerror(errno));
				srv->backoff = true;
				listener_update(srv);
				evtimer_add(srv->retry, &backoff_tv);
			} else if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != ECONNABORTED) {
				log_warn("uapi: accept: %s", strerror(errno));
			}
			break;
		}
		if (!peer_allowed(cfd)) {
			log_info("uapi: refused a connection from another user");
			close(cfd);
			continue;
		}
		c = xcalloc(1, sizeof *c);
		c->srv = srv;
		c->fd = cfd;
		c->conn = uapi_conn_new();
		c->rev = event_new(srv->base, cfd, EV_READ | EV_PERSIST, client_read, c);
		c->wev = event_new(srv->base, cfd, EV_WRITE, client_write, c);
		if (c->rev == NULL || c->wev == NULL)
			fatal("uapi: event_new failed");
		TAILQ_INSERT_TAIL(&srv->clients, c, entry);
		srv->nclients++;
		c->reading = true;
		event_add(c->rev, &idle_tv);
	}
	listener_update(srv);
}

static void
server_retry(evutil_socket_t fd, short what, void *arg)
{
	struct uapi_server *srv = arg;

	srv->backoff = false;
	listener_update(srv);
}

/* Linux's dev_valid_name(), which also keeps the name a single path component. */
static bool
ifname_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len >= IFNAMSIZ || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	for (const char *s = name; *s != '\0'; s++) {
		if (*s == '/' || *s == ':' || *s == ' ' || (*s >= '\t' && *s <= '\r'))
			return false;
	}
	return true;
}

static int
sock_path(struct sockaddr_un *sun, const char *dir, const char *ifname)
{
	int n;

	memset(sun, 0, sizeof *sun);
	sun->sun_family = AF_UNIX;
	if (!ifname_valid(ifname))
		return -EINVAL;
	n = snprintf(sun->sun_path, sizeof sun->sun_path, "%s/%s.sock", dir, ifname);
	if (n < 0 || (size_t)n >= sizeof sun->sun_path)
		return -ENAMETOOLONG;
	return 0;
}

static int
bind_private(int fd, const struct sockaddr_un *sun)
{
	mode_t old = umask(077);
	int r = bind(fd, (const struct sockaddr *)sun, sizeof *sun);
	int saved = errno;

	umask(old);
	errno = saved;
	return r;
}

/*
 * True unless connecting is refused, i.e. unless nobody listens (wireguard-go
 * tests the same before it unlinks).  Non-blocking: a live server with a full
 * backlog answers EAGAIN, which counts as alive, instead of stalling start-up.
 */
static bool
sock_alive(const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	bool alive;

	if (fd == -1)
		return true;
	alive = connect(fd, (const struct sockaddr *)sun, sizeof *sun) == 0 ||
	    errno != ECONNREFUSED;
	close(fd);
	return alive;
}

struct uapi_server *
uapi_server_open_at(struct event_base *base, const char *dir, const char *ifname,
    struct wg_device *dev, const struct uapi_host *host, char **cause)
{
	struct uapi_server *srv;
	struct sockaddr_un sun;
	struct stat st;
	int fd = -1, r;

	*cause = NULL;
	if ((r = sock_path(&sun, dir, ifname)) != 0) {
		if (asprintf(cause, "uapi socket for \"%s\": %s", ifname, strerror(-r)) == -1)
			*cause = NULL;
		return NULL;
	}
	if (mkdir(dir, 0700) == -1 && errno != EEXIST)
		goto fail;
	if (stat(dir, &st) == -1)
		goto fail;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		goto fail;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		goto fail;
	if (bind_private(fd, &sun) == -1) {
		if (errno != EADDRINUSE)
			goto fail;
		if (lstat(sun.sun_path, &st) == -1 || !S_ISSOCK(st.st_mode)) {
			errno = EEXIST;
			goto fail;
		}
		if (sock_alive(&sun)) {
			errno = EADDRINUSE;
			goto fail;
		}
		log_info("uapi: removing stale socket %s", sun.sun_path);
		if (unlink(sun.sun_path) == -1 || bind_private(fd, &sun) == -1)
			goto fail;
	}
	if (listen(fd, UAPI_MAX_CONNS) == -1 || lstat(sun.sun_path, &st) == -1) {
		int saved = errno;

		unlink(sun.sun_path);
		errno = saved;
		goto fail;
	}

	srv = xcalloc(1, sizeof *srv);
	srv->base = base;
	srv->dev = dev;
	srv->host = host;
	srv->fd = fd;
	srv->sock_dev = st.st_dev;
	srv->sock_ino = st.st_ino;
	memcpy(srv->path, sun.sun_path, sizeof srv->path);
	TAILQ_INIT(&srv->clients);
	srv->lev = event_new(base, fd, EV_READ | EV_PERSIST, server_accept, srv);
	srv->retry = evtimer_new(base, server_retry, srv);
	if (srv->lev == NULL || srv->retry == NULL)
		fatal("uapi: event_new failed");
	listener_update(srv);
	log_info("uapi: listening on %s", srv->path);
	return srv;

fail:
	r = errno;
	if (fd != -1)
		close(fd);
	if (asprintf(cause, "%s: %s", sun.sun_path, strerror(r)) == -1)
		*cause = NULL;
	return NULL;
}

struct uapi_server *
uapi_server_open(struct event_base *base, const char *ifname, struct wg_device *dev,
    const struct uapi_host *host, char **cause)
{
	return uapi_server_open_at(base, UAPI_SOCK_DIR, ifname, dev, host, cause);
}

void
uapi_server_close(struct uapi_server *srv)
{
	struct uapi_client *c;
	struct stat st;

	if (srv == NULL)
		return;
	while ((c = TAILQ_FIRST(&srv->clients)) != NULL)
		client_free(c, false);
	event_free(srv->lev);
	event_free(srv->retry);
	close(srv->fd);
	/* Only our own socket: another instance may have replaced it. */
	if (lstat(srv->path, &st) == 0 && st.st_dev == srv->sock_dev && st.st_ino == srv->sock_ino)
		unlink(srv->path);
	free(srv);
}

/* --- client --- */

int
uapi_client_request_at(const char *dir, const char *ifname, const char *request, char **response)
{
	static const struct timeval tv = { 5, 0 };
	struct sockaddr_un sun;
	size_t len = 0, cap = 4096, reqlen = strlen(request);
	char *buf = NULL;
	int fd, r;

	*response = NULL;
	if ((r = sock_path(&sun, dir, ifname)) != 0)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == -1 ||
	    connect(fd, (const struct sockaddr *)&sun, sizeof sun) == -1)
		goto fail;
	for (size_t off = 0; off < reqlen;) {
		ssize_t n = send(fd, request + off, reqlen - off, MSG_NOSIGNAL);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto fail;
		off += (size_t)n;
	}
	/* EOF tells the server (ours or wireguard-go) that no request follows. */
	if (shutdown(fd, SHUT_WR) == -1)
		goto fail;

	buf = xmalloc(cap);
	for (;;) {
		ssize_t n;

		if (len + 1 == cap) {
			char *nbuf;

			if (cap >= UAPI_MAX_RESPONSE) {
				errno = EMSGSIZE;
				goto fail;
			}
			/* The answer to get=1 holds the private key: wipe what we outgrow. */
			nbuf = xmalloc(cap * 2);
			memcpy(nbuf, buf, len);
			sodium_memzero(buf, cap);
			free(buf);
			buf = nbuf;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				errno = ETIMEDOUT;
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	*response = buf;
	return uapi_response_status(buf, len);

fail:
	r = -errno;
	close(fd);
	if (buf != NULL) {
		sodium_memzero(buf, cap);
		free(buf);
	}
	return r;
}

int
uapi_client_request(const char *ifname, const char *request, char **response)
{
	return uapi_client_request_at(UAPI_SOCK_DIR, ifname, request, response);
}

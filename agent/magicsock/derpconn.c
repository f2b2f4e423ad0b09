// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * A DERP region connection on libevent: the dial loop over the region's
 * nodes, TLS, the upgrade, the handshake and the frame loop, with the
 * codec in derp.c doing all the parsing.
 *
 *   IDLE --retry timer--> DIAL (DNS, TCP per node/family) --> TLS --> HTTP (101)
 *        --> SERVER_KEY (send ClientInfo) --> UP --error/EOF/120 s--> IDLE
 *
 * The TCP connect is ours (a non-blocking connect() watched by an event),
 * so that SO_MARK is on the socket before the SYN and the 1.5 s per-node
 * limit covers only TCP, as in derphttp's dialNode.  The bufferevent is
 * made on the connected socket, with deferred callbacks so that nothing
 * calls back into the owner from inside derpconn_send().
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include "agent/control/netmap.h"
#include "agent/magicsock/derp.h"
#include "agent/magicsock/derpconn.h"
#include "common/clock.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/util.h"

#define DC_ERR_MAX	256
#define DC_HEALTH_MAX	256
#define DC_BACKOFF_BASE_MS 100
/* derpconst.MetaCertCommonNamePrefix: derper's extra certificate carrying its key. */
#define DC_META_CERT_PREFIX "derpkey"

enum dc_state {
	DC_IDLE,	/* waiting for the retry timer */
	DC_DIAL,	/* resolving or TCP connecting */
	DC_TLS,
	DC_HTTP,	/* upgrade sent, waiting for the 101 */
	DC_SERVER_KEY,	/* waiting for the first frame */
	DC_UP,
};

struct dc_node {
	char *hostname;
	char *check_name;	/* the name the certificate must carry */
	char *ipv4, *ipv6;	/* "" = DNS, an IP = dial it, anything else = family off */
	uint16_t port;		/* dial port */
	uint16_t derp_port;	/* as configured (0 = scheme default), for the Host header */
	bool insecure;		/* InsecureForTests */
	bool pin;		/* CertName "sha256-raw:<hex>" */
	bool pin_bad;		/* ... with a value that is not 64 hex digits */
	uint8_t pin_hash[32];
};

/* One DNS lookup; outlives the connection if it is cancelled (libevent calls back later). */
struct dc_dns {
	struct derpconn *c;
	struct evdns_getaddrinfo_request *req;
};

struct derpconn {
	struct event_base *base;
	struct evdns_base *dns;
	const struct derpconn_ops *ops;
	void *ctx;

	int32_t region_id;
	char *region_code;
	struct dc_node *nodes;
	size_t n_nodes;
	const uint8_t *node_priv;
	uint8_t node_pub[32];
	uint32_t fwmark;
	bool plain_http;

	enum dc_state state;
	size_t next_node;	/* dial cursor: node index and family */
	int next_fam;		/* 0 = IPv4, 1 = IPv6 */
	size_t cur;		/* node of the attempt in progress */
	char cur_addr[INET6_ADDRSTRLEN + 8];
	int fd;			/* during the TCP connect */
	struct event *ev_connect;
	struct dc_dns *dnsreq;
	struct bufferevent *bev;
	SSL_CTX *ssl_ctx;
	struct event *ev_retry;
	struct event *ev_deadline;
	struct derp_http http;
	uint8_t server_key[DERP_KEY_LEN];
	bool verified;		/* the server spoke after our ClientInfo */
	bool preferred;
	bool started;
	unsigned int fails;	/* consecutive failures, for the backoff */
	uint32_t restart_hint_ms;
	char cycle_err[DC_ERR_MAX];	/* first dial error of this round */
	char last_err[DC_ERR_MAX];
	char logged_err[DC_ERR_MAX];	/* the last failure logged at warning level */
	char health[DC_HEALTH_MAX];

	/* Frames waiting for the connection: sizes in a ring, bytes in one evbuffer. */
	struct evbuffer *queue;
	uint32_t qlen[DERPCONN_QUEUE_MAX];
	unsigned int qhead, qcount;

	uint64_t last_activity;
	struct derpconn_stats st;
	unsigned int cb_depth;	/* owner callbacks running */
	bool freed;		/* derpconn_free() was called from one */
};

enum frame_verdict { FRAME_NEXT, FRAME_STOP, FRAME_GONE };

static void conn_fail(struct derpconn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void next_attempt(struct derpconn *c);
static void really_free(struct derpconn *c);

/* --- owner callbacks --- */

static void
cb_enter(struct derpconn *c)
{
	c->cb_depth++;
}

/* After an owner callback: false if the owner freed c, which is then gone. */
static bool
cb_leave(struct derpconn *c)
{
	if (--c->cb_depth == 0 && c->freed) {
		really_free(c);
		return false;
	}
	return !c->freed;
}

/* --- teardown and retry --- */

static void
dns_cancel(struct derpconn *c)
{
	struct dc_dns *d = c->dnsreq;

	if (d == NULL)
		return;
	c->dnsreq = NULL;
	d->c = NULL;
	/* The callback still comes (with EVUTIL_EAI_CANCEL) and frees d. */
	evdns_getaddrinfo_cancel(d->req);
}

/* Drops every socket, TLS session, lookup and handshake timer; keeps the queue. */
static void
conn_close(struct derpconn *c)
{
	dns_cancel(c);
	if (c->ev_connect != NULL) {
		event_free(c->ev_connect);
		c->ev_connect = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	if (c->ev_deadline != NULL)
		evtimer_del(c->ev_deadline);
	c->verified = false;
}

static void
schedule_retry(struct derpconn *c)
{
	uint64_t base_ms, delay_ms;
	struct timeval tv;

	/* derphttp backs off exponentially with jitter, capped at 5 s (derp_disco.md §2.4). */
	c->fails++;
	base_ms = (uint64_t)DC_BACKOFF_BASE_MS << MIN(c->fails - 1, 8U);
	if (c->restart_hint_ms != 0) {
		/* The server said when to come back (Restarting frame); advisory. */
		base_ms = c->restart_hint_ms;
		c->restart_hint_ms = 0;
	}
	base_ms = MIN(base_ms, (uint64_t)DERPCONN_BACKOFF_MAX_MS);
	delay_ms = base_ms / 2 + randombytes_uniform((uint32_t)base_ms + 1);
	delay_ms = MIN(delay_ms, (uint64_t)DERPCONN_BACKOFF_MAX_MS);
	tv.tv_sec = (time_t)(delay_ms / 1000);
	tv.tv_usec = (suseconds_t)(delay_ms % 1000) * 1000;
	evtimer_add(c->ev_retry, &tv);
}

/* Ends the attempt or the connection and schedules the next one; no owner callback. */
static void
fail_quiet(struct derpconn *c, const char *msg, bool *was_up)
{
	*was_up = c->state == DC_UP;
	snprintf(c->last_err, sizeof c->last_err, "%s", msg);
	conn_close(c);
	c->state = DC_IDLE;
	if (*was_up)
		c->st.disconnects++;
	else
		c->st.failures++;
	schedule_retry(c);
	/* A server that stays down should not fill the log every 5 s. */
	if (*was_up || strcmp(msg, c->logged_err) != 0) {
		log_warn("derp: region %d (%s): %s", c->region_id, c->region_code, msg);
		snprintf(c->logged_err, sizeof c->logged_err, "%s", msg);
	} else {
		log_debug("derp: region %d (%s): %s", c->region_id, c->region_code, msg);
	}
}

/*
 * Ends the attempt or the connection, schedules the next one and, if it
 * was up, tells the owner, who may free c: callers return right after.
 */
static void
conn_fail(struct derpconn *c, const char *fmt, ...)
{
	char msg[DC_ERR_MAX];
	va_list ap;
	bool was_up;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fail_quiet(c, msg, &was_up);
	if (was_up && c->ops->state != NULL) {
		cb_enter(c);
		c->ops->state(c->ctx, c, false);
		(void)cb_leave(c);
	}
}

/* --- sending --- */

static void
queue_drop_oldest(struct derpconn *c)
{
	evbuffer_drain(c->queue, c->qlen[c->qhead]);
	c->qhead = (c->qhead + 1) % DERPCONN_QUEUE_MAX;
	c->qcount--;
	c->st.drops_queue++;
}

/* Writes a control frame when up; false if the socket buffer is too full. */
static bool
write_frame(struct derpconn *c, const uint8_t *frame, size_t len)
{
	struct evbuffer *out;

	if (c->state != DC_UP && c->state != DC_SERVER_KEY)
		return false;
	out = bufferevent_get_output(c->bev);
	if (evbuffer_get_length(out) + len > DERPCONN_OUTPUT_MAX || evbuffer_add(out, frame, len) != 0)
		return false;
	c->st.tx_frames++;
	c->st.tx_bytes += len;
	return true;
}

int
derpconn_send(struct derpconn *c, const uint8_t dst[32], const uint8_t *pkt, size_t len)
{
	uint8_t hdr[DERP_SEND_HDR_LEN];
	struct evbuffer *out;
	size_t frame = DERP_SEND_HDR_LEN + len;

	if (c->freed)
		return -ENOTCONN;
	if (derp_send_packet_hdr(hdr, dst, len) < 0) {
		c->st.drops_too_big++;
		return -EMSGSIZE;
	}
	c->last_activity = clock_mono_ns();
	if (c->state == DC_UP) {
		out = bufferevent_get_output(c->bev);
		/* Reserve first: a header without its packet would break the stream. */
		if (evbuffer_get_length(out) + frame > DERPCONN_OUTPUT_MAX ||
		    evbuffer_expand(out, frame) != 0) {
			c->st.drops_output++;
			return -ENOBUFS;
		}
		evbuffer_add(out, hdr, sizeof hdr);
		evbuffer_add(out, pkt, len);
		c->st.tx_frames++;
		c->st.tx_packets++;
		c->st.tx_bytes += frame;
		return 0;
	}
	while (c->qcount > 0 && (c->qcount == DERPCONN_QUEUE_MAX ||
	    evbuffer_get_length(c->queue) + frame > DERPCONN_OUTPUT_MAX))
		queue_drop_oldest(c);
	if (evbuffer_expand(c->queue, frame) != 0) {
		c->st.drops_queue++;
		return -ENOBUFS;
	}
	evbuffer_add(c->queue, hdr, sizeof hdr);
	evbuffer_add(c->queue, pkt, len);
	c->qlen[(c->qhead + c->qcount) % DERPCONN_QUEUE_MAX] = (uint32_t)frame;
	c->qcount++;
	return 0;
}

void
derpconn_note_preferred(struct derpconn *c, bool preferred)
{
	uint8_t f[DERP_NOTE_PREFERRED_FRAME_LEN];

	c->preferred = preferred;
	if (c->state == DC_UP && !c->freed) {
		derp_note_preferred_build(f, preferred);
		(void)write_frame(c, f, sizeof f);
	}
}

/* --- the handshake --- */

static void
send_upgrade(struct derpconn *c)
{
	const struct dc_node *n = &c->nodes[c->cur];
	char req[512];
	int len;

	len = derp_upgrade_request(req, sizeof req, n->hostname, n->derp_port, !c->plain_http);
	if (len < 0) {
		conn_fail(c, "cannot form the upgrade request for %s", n->hostname);
		return;
	}
	derp_http_init(&c->http);
	c->state = DC_HTTP;
	bufferevent_write(c->bev, req, (size_t)len);
}

/* The ServerKey frame arrived: answer with ClientInfo and open up. */
static enum frame_verdict
handshake_done(struct derpconn *c, const uint8_t *p, size_t len)
{
	uint8_t server_key[DERP_KEY_LEN], nonce[DERP_NONCE_LEN];
	uint8_t ci[DERP_CLIENT_INFO_FRAME_LEN], np[DERP_NOTE_PREFERRED_FRAME_LEN];
	struct evbuffer *out = bufferevent_get_output(c->bev);
	int r;

	if ((r = derp_server_key_parse(p, len, server_key)) != DERP_OK) {
		c->st.bad_frames++;
		conn_fail(c, "bad server key frame from %s: %s", c->cur_addr, derp_strerror(r));
		return FRAME_STOP;
	}
	memcpy(c->server_key, server_key, sizeof server_key);
	randombytes_buf(nonce, sizeof nonce);
	r = derp_client_info_build(ci, c->node_priv, c->node_pub, server_key, nonce);
	if (r < 0) {
		conn_fail(c, "cannot seal the client info to the server key of %s", c->cur_addr);
		return FRAME_STOP;
	}
	/* ClientInfo must be the first frame we send. */
	if (!write_frame(c, ci, (size_t)r)) {
		conn_fail(c, "out of memory");
		return FRAME_STOP;
	}
	if (c->preferred) {
		derp_note_preferred_build(np, true);
		(void)write_frame(c, np, sizeof np);
	}
	/* What waited for the connection goes out now, in order. */
	if (c->qcount > 0) {
		c->st.tx_frames += c->qcount;
		c->st.tx_packets += c->qcount;
		c->st.tx_bytes += evbuffer_get_length(c->queue);
		evbuffer_add_buffer(out, c->queue);
		c->qhead = c->qcount = 0;
	}
	c->state = DC_UP;
	c->st.connects++;
	c->health[0] = '\0';
	c->logged_err[0] = '\0';
	evtimer_del(c->ev_deadline);
	{
		/* Two missed keepalives (60 s each) mean the connection is gone. */
		struct timeval tv = { DERPCONN_READ_TIMEOUT_MS / 1000, 0 };

		bufferevent_set_timeouts(c->bev, &tv, NULL);
	}
	log_info("derp: region %d (%s): connected to %s (%s)", c->region_id, c->region_code,
	    c->nodes[c->cur].hostname, c->cur_addr);
	if (c->ops->state != NULL) {
		cb_enter(c);
		c->ops->state(c->ctx, c, true);
		if (!cb_leave(c))
			return FRAME_GONE;
	}
	return FRAME_NEXT;
}

static enum frame_verdict
handle_frame(struct derpconn *c, uint8_t type, const uint8_t *p, size_t len)
{
	struct derp_server_info si;
	struct derp_msg m;
	uint8_t pong[DERP_PING_FRAME_LEN];
	int r;

	if (c->state == DC_SERVER_KEY) {
		if (type != DERP_FRAME_SERVER_KEY) {
			c->st.bad_frames++;
			conn_fail(c, "%s sent frame type 0x%02x before its key", c->cur_addr, type);
			return FRAME_STOP;
		}
		return handshake_done(c, p, len);
	}

	r = derp_msg_parse(type, p, len, &m);
	if (r == DERP_SKIP) {
		c->st.skipped_frames++;
		return FRAME_NEXT;
	}
	if (r < 0) {
		/* The frame is dropped; its length kept the stream in step. */
		c->st.bad_frames++;
		log_debug("derp: region %d: dropped a bad frame of type 0x%02x (%zu bytes): %s",
		    c->region_id, type, len, derp_strerror(r));
		return FRAME_NEXT;
	}
	if (!c->verified) {
		/* The server answered our ClientInfo, so it admitted us: the backoff starts over. */
		c->verified = true;
		c->fails = 0;
	}
	switch (type) {
	case DERP_FRAME_SERVER_KEY:
		/* A late one (after a fast start) carries nothing new. */
		break;
	case DERP_FRAME_SERVER_INFO:
		r = derp_server_info_open(m.u.server_info.p, m.u.server_info.len, c->node_priv,
		    c->server_key, &si);
		if (r == DERP_OK) {
			log_debug("derp: region %d: server protocol version %d", c->region_id,
			    si.version);
		} else if (r < 0) {
			/* Go drops the connection here; the server will have refused our ClientInfo anyway. */
			c->st.bad_frames++;
			log_warn("derp: region %d (%s): unreadable server info from %s: %s",
			    c->region_id, c->region_code, c->cur_addr, derp_strerror(r));
		}
		break;
	case DERP_FRAME_RECV_PACKET:
		c->st.rx_packets++;
		if (c->ops->recv != NULL) {
			cb_enter(c);
			c->ops->recv(c->ctx, c, m.u.recv.src, m.u.recv.pkt, m.u.recv.len);
			if (!cb_leave(c))
				return FRAME_GONE;
		}
		break;
	case DERP_FRAME_PEER_GONE:
		log_debug("derp: region %d: peer %s gone (reason %u)", c->region_id,
		    key_fingerprint(m.u.peer_gone.key).s, m.u.peer_gone.reason);
		if (c->ops->peer_gone != NULL) {
			cb_enter(c);
			c->ops->peer_gone(c->ctx, c, m.u.peer_gone.key, m.u.peer_gone.reason);
			if (!cb_leave(c))
				return FRAME_GONE;
		}
		break;
	case DERP_FRAME_PING:
		derp_ping_build(pong, DERP_FRAME_PONG, m.u.ping);
		(void)write_frame(c, pong, sizeof pong);
		break;
	case DERP_FRAME_HEALTH: {
		char text[DC_HEALTH_MAX];

		derp_health_text(m.u.health.text, m.u.health.len, text, sizeof text);
		if (strcmp(text, c->health) != 0) {
			if (text[0] != '\0')
				log_warn("derp: region %d (%s): server reports: %s", c->region_id,
				    c->region_code, text);
			else
				log_info("derp: region %d (%s): server reports healthy again",
				    c->region_id, c->region_code);
			memcpy(c->health, text, sizeof text);
		}
		break;
	}
	case DERP_FRAME_RESTARTING:
		log_info("derp: region %d (%s): server restarting (reconnect in %u ms)", c->region_id,
		    c->region_code, m.u.restarting.reconnect_in_ms);
		c->restart_hint_ms = MAX(m.u.restarting.reconnect_in_ms, 1U);
		break;
	default:
		/* KeepAlive, Pong: nothing to do; the read timeout was reset by the read. */
		break;
	}
	return FRAME_NEXT;
}

/* --- reading --- */

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct derpconn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	uint8_t hdr[DERP_FRAME_HDR_LEN];
	struct derp_frame f;
	int r;

	while (c->state == DC_HTTP) {
		char why[DC_ERR_MAX];
		uint8_t buf[1024];
		ev_ssize_t n;
		size_t used;

		if ((n = evbuffer_copyout(in, buf, sizeof buf)) <= 0)
			return;
		r = derp_http_feed(&c->http, buf, (size_t)n, &used);
		evbuffer_drain(in, used);
		if (r == DERP_MORE)
			continue;
		if (r != DERP_OK) {
			derp_http_describe(&c->http, r, why, sizeof why);
			conn_fail(c, "%s: %s%s", c->cur_addr,
			    r == DERP_ERR_HTTP_STATUS ? "upgrade refused: " : "", why);
			return;
		}
		c->state = DC_SERVER_KEY;
	}
	while (c->state == DC_SERVER_KEY || c->state == DC_UP) {
		size_t avail = evbuffer_get_length(in);
		enum frame_verdict v;
		uint8_t *p;

		if (avail < sizeof hdr)
			return;
		evbuffer_copyout(in, hdr, sizeof hdr);
		r = derp_frame_hdr_parse(hdr, sizeof hdr, c->state == DC_SERVER_KEY ?
		    DERP_SERVER_KEY_FRAME_MAX : DERP_FRAME_MAX, &f);
		if (r != DERP_OK) {
			/* A length we will not buffer: the stream cannot be trusted past it. */
			c->st.bad_frames++;
			conn_fail(c, "%s sent a frame of type 0x%02x with length %u, over the limit",
			    c->cur_addr, hdr[0], get_be32(hdr + 1));
			return;
		}
		if (avail < f.total)
			return;
		if ((p = evbuffer_pullup(in, (ev_ssize_t)f.total)) == NULL) {
			conn_fail(c, "out of memory");
			return;
		}
		c->st.rx_frames++;
		c->st.rx_bytes += f.total;
		v = handle_frame(c, f.type, p + DERP_FRAME_HDR_LEN, f.len);
		if (v != FRAME_NEXT)
			return;
		evbuffer_drain(in, f.total);
	}
}

/* --- TLS --- */

static bool
is_ip(const char *s, int af)
{
	uint8_t buf[16];

	return inet_pton(af, s, buf) == 1;
}

static bool
is_any_ip(const char *s)
{
	return is_ip(s, AF_INET) || is_ip(s, AF_INET6);
}

static SSL *
tls_new(struct derpconn *c, const struct dc_node *n)
{
	SSL *ssl;

	if (c->ssl_ctx == NULL) {
		if ((c->ssl_ctx = SSL_CTX_new(TLS_client_method())) == NULL)
			return NULL;
		SSL_CTX_set_min_proto_version(c->ssl_ctx, TLS1_2_VERSION);
		SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_PEER, NULL);
		/* The system CAs, as tlsdial uses the system roots.  No ALPN: an h2 pick breaks the upgrade. */
		if (SSL_CTX_set_default_verify_paths(c->ssl_ctx) != 1) {
			SSL_CTX_free(c->ssl_ctx);
			c->ssl_ctx = NULL;
			return NULL;
		}
	}
	if ((ssl = SSL_new(c->ssl_ctx)) == NULL)
		return NULL;
	/* SNI is the HostName; an IP address is not sent as SNI (RFC 6066 §3, and Go omits it). */
	if (!is_any_ip(n->hostname) && SSL_set_tlsext_host_name(ssl, n->hostname) != 1)
		goto fail;
	if (n->insecure || n->pin) {
		/* No chain check; a pin is checked on the finished handshake (tls_check_pin). */
		SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
	} else if (is_any_ip(n->check_name)) {
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), n->check_name) != 1)
			goto fail;
	} else if (SSL_set1_host(ssl, n->check_name) != 1) {
		goto fail;
	}
	return ssl;
fail:
	SSL_free(ssl);
	return NULL;
}

/* derper adds a certificate named "derpkey<hex>" carrying its key; pins ignore it. */
static bool
is_meta_cert(X509 *x)
{
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_ENTRY *e;
	ASN1_STRING *s;
	int i;

	if (name == NULL || (i = X509_NAME_get_index_by_NID(name, NID_commonName, -1)) < 0)
		return false;
	if ((e = X509_NAME_get_entry(name, i)) == NULL || (s = X509_NAME_ENTRY_get_data(e)) == NULL)
		return false;
	return ASN1_STRING_length(s) >= (int)strlen(DC_META_CERT_PREFIX) &&
	    memcmp(ASN1_STRING_get0_data(s), DC_META_CERT_PREFIX, strlen(DC_META_CERT_PREFIX)) == 0;
}

/*
 * CertName "sha256-raw:<hex>" (tlsdial SetConfigExpectedCertHash): exactly
 * one certificate besides the meta one, with that SHA-256 over its DER, for
 * the HostName, and within its dates.
 */
static bool
tls_check_pin(struct derpconn *c, char *why, size_t len)
{
	const struct dc_node *n = &c->nodes[c->cur];
	STACK_OF(X509) *chain;
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int mdlen;
	bool good = false;

	if (!n->pin)
		return true;
	if (n->pin_bad) {
		snprintf(why, len, "the node's CertName is not sha256-raw:<64 hex digits>");
		return false;
	}
	chain = SSL_get_peer_cert_chain(bufferevent_openssl_get_ssl(c->bev));
	for (int i = 0; chain != NULL && i < sk_X509_num(chain); i++) {
		X509 *x = sk_X509_value(chain, i);

		if (is_meta_cert(x))
			continue;
		if (good) {
			snprintf(why, len, "more than one certificate presented");
			return false;
		}
		if (X509_digest(x, EVP_sha256(), md, &mdlen) != 1 || mdlen != 32 ||
		    memcmp(md, n->pin_hash, 32) != 0) {
			snprintf(why, len, "certificate does not match the pinned sha256");
			return false;
		}
		if (is_any_ip(n->hostname) ? X509_check_ip_asc(x, n->hostname, 0) != 1 :
		    X509_check_host(x, n->hostname, 0, 0, NULL) != 1) {
			snprintf(why, len, "certificate is not for %s", n->hostname);
			return false;
		}
		if (X509_cmp_current_time(X509_get0_notAfter(x)) <= 0 ||
		    X509_cmp_current_time(X509_get0_notBefore(x)) >= 0) {
			snprintf(why, len, "certificate expired or not yet valid");
			return false;
		}
		good = true;
	}
	if (!good)
		snprintf(why, len, "expected certificate not presented");
	return good;
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct derpconn *c = arg;
	const char *host = c->nodes[c->cur].hostname;
	char why[DC_ERR_MAX];

	if (what & BEV_EVENT_CONNECTED) {
		/* Only a TLS bufferevent reports this: its handshake is done. */
		if (!tls_check_pin(c, why, sizeof why)) {
			conn_fail(c, "TLS to %s (%s): %s", host, c->cur_addr, why);
			return;
		}
		send_upgrade(c);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		conn_fail(c, "no frames from %s for %d s", c->cur_addr, DERPCONN_READ_TIMEOUT_MS / 1000);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		int err = EVUTIL_SOCKET_ERROR();
		unsigned long e = 0, more;

		if (!c->plain_http) {
			while ((more = bufferevent_get_openssl_error(bev)) != 0)
				if (e == 0)
					e = more;
		}
		if (e != 0) {
			SSL *ssl = bufferevent_openssl_get_ssl(bev);
			long vr = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
			const char *reason = ERR_reason_error_string(e);

			if (vr != X509_V_OK)
				conn_fail(c, "TLS to %s (%s): certificate verify failed: %s", host,
				    c->cur_addr, X509_verify_cert_error_string(vr));
			else
				conn_fail(c, "TLS to %s (%s): %s%s", host, c->cur_addr,
				    reason != NULL ? reason : "error",
				    ERR_GET_REASON(e) == SSL_R_WRONG_VERSION_NUMBER ?
				    " (not a TLS server?)" : "");
		} else if (err != 0) {
			conn_fail(c, "%s (%s): %s", host, c->cur_addr, evutil_socket_error_to_string(err));
		} else {
			conn_fail(c, "%s (%s): %s failed", host, c->cur_addr,
			    c->state == DC_TLS ? "TLS handshake" : "connection");
		}
		return;
	}
	if (what & BEV_EVENT_EOF) {
		switch (c->state) {
		case DC_TLS:
			conn_fail(c, "TLS to %s (%s): closed during the handshake", host, c->cur_addr);
			break;
		case DC_HTTP: {
			int r = derp_http_eof(&c->http);

			derp_http_describe(&c->http, r, why, sizeof why);
			conn_fail(c, "%s: %s%s", c->cur_addr,
			    r == DERP_ERR_HTTP_STATUS ? "upgrade refused: " : "", why);
			break;
		}
		case DC_SERVER_KEY:
			conn_fail(c, "%s closed the connection before sending its key", c->cur_addr);
			break;
		default:
			/* Headscale's verify_clients answers an unknown node key by hanging up. */
			conn_fail(c, "%s closed the connection%s", c->cur_addr, c->verified ? "" :
			    " after our client info (is this node key admitted?)");
			break;
		}
	}
}

/* --- dialling --- */

/* This node/family failed to connect: note why and try the next. */
static void attempt_failed(struct derpconn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void
attempt_failed(struct derpconn *c, const char *fmt, ...)
{
	char msg[DC_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	/* As dialRegion, the first error says the most. */
	if (c->cycle_err[0] == '\0')
		snprintf(c->cycle_err, sizeof c->cycle_err, "%s", msg);
	log_debug("derp: region %d: %s", c->region_id, msg);
	if (c->ev_connect != NULL) {
		event_free(c->ev_connect);
		c->ev_connect = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	next_attempt(c);
}

static void
tcp_connected(struct derpconn *c)
{
	const struct dc_node *n = &c->nodes[c->cur];
	int opts = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;
	int fd = c->fd;
	SSL *ssl;

	c->fd = -1;
	if (c->plain_http) {
		if ((c->bev = bufferevent_socket_new(c->base, fd, opts)) == NULL) {
			close(fd);
			conn_fail(c, "out of memory");
			return;
		}
		bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
		bufferevent_enable(c->bev, EV_READ | EV_WRITE);
		send_upgrade(c);
		return;
	}
	if ((ssl = tls_new(c, n)) == NULL) {
		close(fd);
		conn_fail(c, "TLS setup for %s failed", n->hostname);
		return;
	}
	/* On failure libevent frees ssl (BEV_OPT_CLOSE_ON_FREE); the socket is still ours. */
	if ((c->bev = bufferevent_openssl_socket_new(c->base, fd, ssl, BUFFEREVENT_SSL_CONNECTING,
	    opts)) == NULL) {
		close(fd);
		conn_fail(c, "out of memory");
		return;
	}
	/* Servers often close without close_notify; that is an EOF, not an attack. */
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	c->state = DC_TLS;
	bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void
connect_cb(evutil_socket_t fd, short what, void *arg)
{
	struct derpconn *c = arg;
	socklen_t len = sizeof(int);
	int err = 0;

	if (what & EV_TIMEOUT) {
		attempt_failed(c, "%s: TCP connect timed out after %d ms", c->cur_addr,
		    DERPCONN_DIAL_TIMEOUT_MS);
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err != 0) {
		attempt_failed(c, "%s: %s", c->cur_addr, strerror(err));
		return;
	}
	event_free(c->ev_connect);
	c->ev_connect = NULL;
	tcp_connected(c);
}

static void
start_connect(struct derpconn *c, struct sockaddr_storage *ss)
{
	const struct dc_node *n = &c->nodes[c->cur];
	struct timeval tv = { 0, DERPCONN_DIAL_TIMEOUT_MS * 1000 };
	socklen_t salen;
	char ip[INET6_ADDRSTRLEN];
	int fd, one = 1, e;

	if (ss->ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_port = htons(n->port);
		salen = sizeof *sin;
		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip);
		snprintf(c->cur_addr, sizeof c->cur_addr, "%s:%u", ip, n->port);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_port = htons(n->port);
		salen = sizeof *sin6;
		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof ip);
		snprintf(c->cur_addr, sizeof c->cur_addr, "[%s]:%u", ip, n->port);
	}
	tv.tv_sec = tv.tv_usec / 1000000;
	tv.tv_usec %= 1000000;
	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd < 0) {
		attempt_failed(c, "%s: socket: %s", c->cur_addr, strerror(errno));
		return;
	}
	/* The mark keeps our own traffic out of the tunnel routes (host.md); it needs CAP_NET_ADMIN. */
	if (c->fwmark != 0 &&
	    setsockopt(fd, SOL_SOCKET, SO_MARK, &c->fwmark, sizeof c->fwmark) != 0 && errno != EPERM)
		log_debug("derp: region %d: SO_MARK: %s", c->region_id, strerror(errno));
	/* Packets are small and latency matters (Go's net.TCPConn defaults to NoDelay too). */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	c->fd = fd;
	log_debug("derp: region %d: dialling %s (%s)", c->region_id, n->hostname, c->cur_addr);
	if (connect(fd, (struct sockaddr *)ss, salen) == 0) {
		tcp_connected(c);
		return;
	}
	if (errno != EINPROGRESS) {
		e = errno;
		attempt_failed(c, "%s: %s", c->cur_addr, strerror(e));
		return;
	}
	if ((c->ev_connect = event_new(c->base, fd, EV_WRITE, connect_cb, c)) == NULL ||
	    event_add(c->ev_connect, &tv) != 0) {
		attempt_failed(c, "%s: out of memory", c->cur_addr);
		return;
	}
}

static void
dns_cb(int result, struct evutil_addrinfo *res, void *arg)
{
	struct dc_dns *d = arg;
	struct derpconn *c = d->c;
	struct sockaddr_storage ss;

	free(d);
	if (c == NULL) {
		/* Cancelled: the connection may be gone already. */
		if (res != NULL)
			evutil_freeaddrinfo(res);
		return;
	}
	c->dnsreq = NULL;
	if (result != 0 || res == NULL || res->ai_addrlen > sizeof ss ||
	    (res->ai_family != AF_INET && res->ai_family != AF_INET6)) {
		if (res != NULL)
			evutil_freeaddrinfo(res);
		attempt_failed(c, "%s: %s", c->nodes[c->cur].hostname,
		    result != 0 ? evutil_gai_strerror(result) : "no address");
		return;
	}
	memset(&ss, 0, sizeof ss);
	memcpy(&ss, res->ai_addr, res->ai_addrlen);
	evutil_freeaddrinfo(res);
	start_connect(c, &ss);
}

static void
start_resolve(struct derpconn *c, int af)
{
	struct evutil_addrinfo hints;
	struct evdns_getaddrinfo_request *req;
	struct dc_dns *d = xcalloc(1, sizeof *d);

	memset(&hints, 0, sizeof hints);
	hints.ai_family = af;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	d->c = c;
	c->dnsreq = d;
	snprintf(c->cur_addr, sizeof c->cur_addr, "%s", c->nodes[c->cur].hostname);
	/* NULL means it has already called back (and d is freed). */
	req = evdns_getaddrinfo(c->dns, c->nodes[c->cur].hostname, NULL, &hints, dns_cb, d);
	if (req != NULL)
		d->req = req;
}

static bool
parse_literal(const char *s, int af, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	ss->ss_family = (sa_family_t)af;
	if (af == AF_INET)
		return inet_pton(AF_INET, s, &((struct sockaddr_in *)ss)->sin_addr) == 1;
	return inet_pton(AF_INET6, s, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1;
}

/*
 * The next node and family to dial, in region order, IPv4 before IPv6
 * (derphttp races the two; trying them in turn is simpler and close).
 * Per family the node's IPv4/IPv6 field decides: "" resolves the HostName,
 * an IP of that family is dialled as is, anything else ("none") turns the
 * family off.
 */
static void
next_attempt(struct derpconn *c)
{
	struct sockaddr_storage ss;

	while (c->next_node < c->n_nodes) {
		const struct dc_node *n = &c->nodes[c->next_node];
		int af = c->next_fam == 0 ? AF_INET : AF_INET6;
		const char *field = af == AF_INET ? n->ipv4 : n->ipv6;

		c->cur = c->next_node;
		if (++c->next_fam == 2) {
			c->next_fam = 0;
			c->next_node++;
		}
		if (field[0] != '\0') {
			if (parse_literal(field, af, &ss)) {
				start_connect(c, &ss);
				return;
			}
			continue;
		}
		if (parse_literal(n->hostname, af, &ss)) {
			start_connect(c, &ss);
			return;
		}
		if (is_any_ip(n->hostname))
			continue;
		if (c->dns == NULL) {
			if (c->cycle_err[0] == '\0')
				snprintf(c->cycle_err, sizeof c->cycle_err,
				    "%s: no resolver to look it up", n->hostname);
			continue;
		}
		start_resolve(c, af);
		return;
	}
	conn_fail(c, "%s", c->cycle_err[0] ? c->cycle_err : "no node with a usable address");
}

/* --- timers --- */

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct derpconn *c = arg;
	struct timeval tv = { DERPCONN_HANDSHAKE_TIMEOUT_MS / 1000, 0 };

	if (c->started)
		c->st.reconnects++;
	c->started = true;
	c->state = DC_DIAL;
	c->next_node = 0;
	c->next_fam = 0;
	c->cycle_err[0] = '\0';
	/* DNS, TCP, TLS, the upgrade and the server key, all in 10 s (derphttp connect). */
	evtimer_add(c->ev_deadline, &tv);
	next_attempt(c);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct derpconn *c = arg;

	if (c->state == DC_DIAL)
		conn_fail(c, "no connection within %d s%s%s", DERPCONN_HANDSHAKE_TIMEOUT_MS / 1000,
		    c->cycle_err[0] ? "; " : "", c->cycle_err);
	else if (c->state != DC_UP && c->state != DC_IDLE)
		conn_fail(c, "%s (%s): handshake not done within %d s", c->nodes[c->cur].hostname,
		    c->cur_addr, DERPCONN_HANDSHAKE_TIMEOUT_MS / 1000);
}

/* --- life cycle --- */

static char *
dupstr(const char *s)
{
	return xstrdup(s != NULL ? s : "");
}

static bool
node_usable(const struct netmap_derp_node *n)
{
	return !(n->flags & NETMAP_DERP_STUN_ONLY) && n->hostname != NULL &&
	    n->hostname[0] != '\0' && n->derp_port >= 0 && n->derp_port <= 65535;
}

static void
node_init(struct dc_node *d, const struct netmap_derp_node *n, bool plain)
{
	static const char pin_prefix[] = "sha256-raw:";
	const char *cert = n->cert_name != NULL ? n->cert_name : "";
	const char *end;
	size_t binlen;

	d->hostname = dupstr(n->hostname);
	d->ipv4 = dupstr(n->ipv4);
	d->ipv6 = dupstr(n->ipv6);
	d->derp_port = (uint16_t)n->derp_port;
	d->port = n->derp_port != 0 ? (uint16_t)n->derp_port :
	    plain ? DERPCONN_PLAIN_HTTP_PORT : 443;
	d->insecure = (n->flags & NETMAP_DERP_INSECURE_FOR_TESTS) != 0;
	if (strncmp(cert, pin_prefix, sizeof pin_prefix - 1) == 0) {
		const char *hex = cert + sizeof pin_prefix - 1;

		d->pin = true;
		d->pin_bad = strlen(hex) != 64 ||
		    sodium_hex2bin(d->pin_hash, sizeof d->pin_hash, hex, 64, NULL, &binlen, &end) != 0 ||
		    binlen != 32 || end != hex + 64;
		d->check_name = xstrdup(d->hostname);
	} else {
		d->check_name = xstrdup(cert[0] != '\0' ? cert : d->hostname);
	}
}

struct derpconn *
derpconn_new(struct event_base *base, struct evdns_base *dns, const struct derpconn_cfg *cfg,
    const struct derpconn_ops *ops, void *ctx, char **cause)
{
	const struct netmap_derp_region *r = cfg->region;
	struct timeval now = { 0, 0 };
	struct derpconn *c;
	size_t n = 0;

	if (r == NULL || cfg->node_priv == NULL || cfg->node_pub == NULL || ops == NULL) {
		set_cause(cause, -EINVAL, "DERP connection: missing region or node key");
		return NULL;
	}
	for (uint32_t i = 0; i < r->n_nodes; i++)
		if (node_usable(&r->nodes[i]))
			n++;
	if (n == 0) {
		set_cause(cause, -EINVAL, "DERP region %d has no node to connect to", r->region_id);
		return NULL;
	}
	c = xcalloc(1, sizeof *c);
	c->base = base;
	c->dns = dns;
	c->ops = ops;
	c->ctx = ctx;
	c->region_id = r->region_id;
	c->region_code = dupstr(r->code);
	c->nodes = xcalloc(n, sizeof *c->nodes);
	for (uint32_t i = 0; i < r->n_nodes; i++)
		if (node_usable(&r->nodes[i]))
			node_init(&c->nodes[c->n_nodes++], &r->nodes[i], cfg->plain_http);
	c->node_priv = cfg->node_priv;
	memcpy(c->node_pub, cfg->node_pub, sizeof c->node_pub);
	c->fwmark = cfg->fwmark;
	c->plain_http = cfg->plain_http;
	c->fd = -1;
	c->state = DC_IDLE;
	c->last_activity = clock_mono_ns();
	derp_http_init(&c->http);
	c->ev_retry = evtimer_new(base, retry_cb, c);
	c->ev_deadline = evtimer_new(base, deadline_cb, c);
	c->queue = evbuffer_new();
	if (c->ev_retry == NULL || c->ev_deadline == NULL || c->queue == NULL) {
		really_free(c);
		set_cause(cause, -ENOMEM, "out of memory");
		return NULL;
	}
	/* The first dial starts from the loop, so no callback ever runs inside this call. */
	evtimer_add(c->ev_retry, &now);
	return c;
}

static void
really_free(struct derpconn *c)
{
	conn_close(c);
	if (c->ev_retry != NULL)
		event_free(c->ev_retry);
	if (c->ev_deadline != NULL)
		event_free(c->ev_deadline);
	if (c->queue != NULL)
		evbuffer_free(c->queue);
	if (c->ssl_ctx != NULL)
		SSL_CTX_free(c->ssl_ctx);
	for (size_t i = 0; i < c->n_nodes; i++) {
		free(c->nodes[i].hostname);
		free(c->nodes[i].check_name);
		free(c->nodes[i].ipv4);
		free(c->nodes[i].ipv6);
	}
	free(c->nodes);
	free(c->region_code);
	c->node_priv = NULL;
	free(c);
}

void
derpconn_free(struct derpconn *c)
{
	if (c == NULL)
		return;
	if (c->cb_depth > 0) {
		/* Inside one of its callbacks: finished when the callback returns. */
		c->freed = true;
		return;
	}
	really_free(c);
}

uint64_t
derpconn_last_activity(const struct derpconn *c)
{
	return c->last_activity;
}

int32_t
derpconn_region_id(const struct derpconn *c)
{
	return c->region_id;
}

bool
derpconn_is_up(const struct derpconn *c)
{
	return c->state == DC_UP && !c->freed;
}

size_t
derpconn_queued_bytes(const struct derpconn *c)
{
	size_t n = evbuffer_get_length(c->queue);

	if (c->bev != NULL)
		n += evbuffer_get_length(bufferevent_get_output(c->bev));
	return n;
}

void
derpconn_stats(const struct derpconn *c, struct derpconn_stats *st)
{
	*st = c->st;
}

const char *
derpconn_health(const struct derpconn *c)
{
	return c->health;
}

const char *
derpconn_last_error(const struct derpconn *c)
{
	return c->last_err;
}

// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * The control connection: a bufferevent carries bytes; controlbase turns
 * them into the Noise stream; nghttp2 speaks HTTP/2 over its plaintext.
 *
 *   socket -> http head (101) -> Noise response -> records -> early payload -> nghttp2
 *   nghttp2 -> records -> socket
 *
 * nghttp2 is transport-agnostic (mem_recv/mem_send), which is why we do not
 * write an HTTP/2 framer: after every input or request we drain what it
 * wants to send through ctlb_encrypt() into the bufferevent.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include "agent/control/controlbase.h"
#include "agent/control/ctlconn.h"
#include "common/log.h"
#include "common/util.h"

#define CTL_HOST_MAX	256
#define CTL_MAX_STREAMS	16

enum conn_state {
	CS_CONNECTING,
	CS_HTTP,	/* waiting for the 101 */
	CS_NOISE,	/* waiting for the Noise response */
	CS_OPEN,	/* HTTP/2 running */
	CS_DEAD,
};

struct ctl_req {
	struct ctl_conn *conn;
	int32_t stream_id;
	bool streaming;
	bool in_use;
	int status;
	const struct ctl_req_ops *ops;
	void *ctx;
	uint8_t *body;		/* request body */
	size_t body_len, body_off;
	char *resp;		/* collected response body */
	size_t resp_len, resp_cap;
	char err[128];
};

struct ctl_conn {
	struct event_base *base;
	struct bufferevent *bev;
	SSL_CTX *ssl_ctx;
	enum conn_state state;
	bool tls;
	char host[CTL_HOST_MAX];
	char authority[CTL_HOST_MAX + 8];
	uint16_t port;

	struct ctlb noise;
	struct ctlb_http http;
	struct ctlb_early early;
	nghttp2_session *h2;
	const uint8_t *machine_priv;

	const struct ctl_conn_ops *ops;
	void *ctx;
	struct ctl_req reqs[CTL_MAX_STREAMS];
	bool in_callback;	/* a user callback is running: defer teardown */
	uint8_t sealbuf[CTLB_MAX_MSG * 4];
};

static void conn_fail(struct ctl_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void h2_flush(struct ctl_conn *c);

bool
ctl_parse_url(const char *url, bool *tls, char *host, size_t hostlen, uint16_t *port)
{
	const char *p, *end, *colon = NULL;
	size_t n;

	if (strncmp(url, "https://", 8) == 0) {
		*tls = true;
		p = url + 8;
		*port = 443;
	} else if (strncmp(url, "http://", 7) == 0) {
		*tls = false;
		p = url + 7;
		*port = 80;
	} else {
		return false;
	}
	end = p + strcspn(p, "/?#");
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(end - p));

		if (rb == NULL)
			return false;
		n = (size_t)(rb - p - 1);
		if (n == 0 || n >= hostlen)
			return false;
		memcpy(host, p + 1, n);
		host[n] = '\0';
		if (rb + 1 < end) {
			if (rb[1] != ':')
				return false;
			colon = rb + 1;
		}
	} else {
		colon = memchr(p, ':', (size_t)(end - p));
		n = (size_t)((colon ? colon : end) - p);
		if (n == 0 || n >= hostlen)
			return false;
		memcpy(host, p, n);
		host[n] = '\0';
	}
	for (size_t i = 0; host[i]; i++)
		if (!isalnum((unsigned char)host[i]) && !strchr(".-_:", host[i]))
			return false;
	if (colon) {
		unsigned long v = 0;
		const char *q;

		if (colon + 1 == end)
			return false;
		for (q = colon + 1; q < end; q++) {
			if (!isdigit((unsigned char)*q))
				return false;
			v = v * 10 + (unsigned long)(*q - '0');
			if (v > 65535)
				return false;
		}
		if (v == 0)
			return false;
		*port = (uint16_t)v;
	}
	return true;
}

/* --- requests --- */

static void
req_release(struct ctl_req *r)
{
	free(r->body);
	free(r->resp);
	memset(r, 0, sizeof *r);
}

static struct ctl_req *
req_by_stream(struct ctl_conn *c, int32_t id)
{
	for (int i = 0; i < CTL_MAX_STREAMS; i++)
		if (c->reqs[i].in_use && c->reqs[i].stream_id == id)
			return &c->reqs[i];
	return NULL;
}

static void
req_finish(struct ctl_req *r, const char *err)
{
	struct ctl_conn *c = r->conn;
	const struct ctl_req_ops *ops = r->ops;
	void *ctx = r->ctx;
	int status = r->status;
	char *resp = r->resp;
	size_t len = r->resp_len;
	char errbuf[sizeof r->err];

	if (err == NULL && r->err[0])
		err = r->err;
	if (err != NULL) {
		snprintf(errbuf, sizeof errbuf, "%s", err);
		err = errbuf;
	}
	r->resp = NULL;
	free(r->body);
	memset(r, 0, sizeof *r);
	c->in_callback = true;
	ops->done(ctx, status, resp ? resp : "", len, err);
	c->in_callback = false;
	free(resp);
}

/* --- nghttp2 callbacks --- */

static ssize_t
body_read_cb(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
    nghttp2_data_source *src, void *user)
{
	struct ctl_req *r = src->ptr;
	size_t n = MIN(len, r->body_len - r->body_off);

	memcpy(buf, r->body + r->body_off, n);
	r->body_off += n;
	if (r->body_off == r->body_len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static int
on_header_cb(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
    const uint8_t *value, size_t valuelen, uint8_t flags, void *user)
{
	struct ctl_req *r = req_by_stream(user, frame->hd.stream_id);

	if (r != NULL && namelen == 7 && memcmp(name, ":status", 7) == 0 && valuelen == 3)
		r->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
	return 0;
}

static int
on_data_cb(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
    void *user)
{
	struct ctl_conn *c = user;
	struct ctl_req *r = req_by_stream(c, id);
	int rv;

	if (r == NULL)
		return 0;
	/* An error status carries a text body: collect it even for a stream. */
	if (r->streaming && r->status == 200) {
		c->in_callback = true;
		rv = r->ops->data(r->ctx, data, len);
		c->in_callback = false;
		if (rv != 0) {
			snprintf(r->err, sizeof r->err, "response stream rejected");
			nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
		}
		return 0;
	}
	if (r->resp_len + len > CTL_BODY_MAX) {
		snprintf(r->err, sizeof r->err, "response body over %u bytes", CTL_BODY_MAX);
		nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
		return 0;
	}
	if (r->resp_len + len + 1 > r->resp_cap) {
		size_t cap = MAX(r->resp_cap * 2, r->resp_len + len + 1);

		r->resp = xreallocarray(r->resp, cap, 1);
		r->resp_cap = cap;
	}
	memcpy(r->resp + r->resp_len, data, len);
	r->resp_len += len;
	r->resp[r->resp_len] = '\0';
	return 0;
}

static int
on_stream_close_cb(nghttp2_session *s, int32_t id, uint32_t error_code, void *user)
{
	struct ctl_req *r = req_by_stream(user, id);
	char err[64];

	if (r == NULL)
		return 0;
	if (error_code != NGHTTP2_NO_ERROR && r->err[0] == '\0') {
		snprintf(err, sizeof err, "stream reset: %s", nghttp2_http2_strerror(error_code));
		req_finish(r, err);
	} else {
		req_finish(r, NULL);
	}
	return 0;
}

/* --- the byte pipeline --- */

/* Plaintext from the Noise layer, after the early payload: HTTP/2 input. */
static int
h2_input(void *ctx, const uint8_t *buf, size_t len)
{
	struct ctl_conn *c = ctx;
	ssize_t n = nghttp2_session_mem_recv(c->h2, buf, len);

	if (n < 0) {
		conn_fail(c, "HTTP/2: %s", nghttp2_strerror((int)n));
		return -1;
	}
	return 0;
}

static int
noise_plaintext(void *ctx, const uint8_t *buf, size_t len)
{
	struct ctl_conn *c = ctx;
	int r = ctlb_early_feed(&c->early, buf, len, h2_input, c);

	return r < 0 ? -1 : 0;
}

/* Encrypts and queues everything nghttp2 wants to send. */
static void
h2_flush(struct ctl_conn *c)
{
	const uint8_t *data;
	ssize_t n = 0;

	while (c->state == CS_OPEN && (n = nghttp2_session_mem_send(c->h2, &data)) > 0) {
		size_t off = 0;

		while (off < (size_t)n) {
			size_t chunk = MIN((size_t)n - off, sizeof c->sealbuf / 2), outlen;
			int r = ctlb_encrypt(&c->noise, data + off, chunk, c->sealbuf,
			    sizeof c->sealbuf, &outlen);

			if (r < 0) {
				conn_fail(c, "noise: %s", ctlb_strerror(r));
				return;
			}
			bufferevent_write(c->bev, c->sealbuf, outlen);
			off += chunk;
		}
	}
	if (n < 0)
		conn_fail(c, "HTTP/2: %s", nghttp2_strerror((int)n));
	else if (c->state == CS_OPEN && !nghttp2_session_want_read(c->h2) &&
	    !nghttp2_session_want_write(c->h2))
		conn_fail(c, "the server closed the HTTP/2 session");
}

static bool
h2_start(struct ctl_conn *c)
{
	nghttp2_session_callbacks *cbs;
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, CTL_MAX_STREAMS },
		/* A full map can be megabytes: a big window keeps the stream flowing. */
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 4 << 20 },
	};
	int rv;

	if (nghttp2_session_callbacks_new(&cbs) != 0)
		return false;
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header_cb);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_cb);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close_cb);
	rv = nghttp2_session_client_new(&c->h2, cbs, c);
	nghttp2_session_callbacks_del(cbs);
	if (rv != 0)
		return false;
	if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, ARRAY_SIZE(iv)) != 0)
		return false;
	nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, 16 << 20);
	return true;
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct ctl_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	uint8_t buf[16384];
	size_t len, used;
	int r;

	while (c->state != CS_DEAD && (len = evbuffer_remove(in, buf, sizeof buf)) > 0) {
		const uint8_t *p = buf;

		if (c->state == CS_HTTP) {
			r = ctlb_http_feed(&c->http, p, len, &used);
			if (r < 0) {
				char why[400];

				ctlb_http_describe(&c->http, why, sizeof why);
				conn_fail(c, "upgrade refused: %s", why);
				return;
			}
			if (r == CTLB_MORE)
				continue;
			c->state = CS_NOISE;
			p += used;
			len -= used;
		}
		if (c->state == CS_NOISE) {
			r = ctlb_read_response(&c->noise, p, len, &used);
			if (r == CTLB_ERR_SERVER) {
				conn_fail(c, "control server refused the handshake: %s",
				    ctlb_server_error(&c->noise));
				return;
			}
			if (r < 0) {
				conn_fail(c, "noise handshake: %s", ctlb_strerror(r));
				return;
			}
			if (r == CTLB_MORE)
				continue;
			c->machine_priv = NULL;
			c->state = CS_OPEN;
			p += used;
			len -= used;
			if (!h2_start(c)) {
				conn_fail(c, "HTTP/2 setup failed");
				return;
			}
			h2_flush(c);
			c->in_callback = true;
			c->ops->ready(c->ctx);
			c->in_callback = false;
			if (c->state == CS_DEAD)
				return;
		}
		if (len > 0) {
			r = ctlb_feed(&c->noise, p, len, noise_plaintext, c);
			if (r < 0 && c->state != CS_DEAD) {
				conn_fail(c, "noise: %s", ctlb_strerror(r));
				return;
			}
		}
	}
	if (c->state == CS_OPEN)
		h2_flush(c);
}

static void
rng(void *ctx, uint8_t *buf, size_t len)
{
	randombytes_buf(buf, len);
}

static void
send_upgrade(struct ctl_conn *c)
{
	uint8_t init[CTLB_INIT_LEN];
	char req[CTLB_UPGRADE_REQ_LEN(sizeof c->authority)];
	int n;

	if ((n = ctlb_initiation(&c->noise, init)) < 0 ||
	    (n = ctlb_upgrade_request(req, sizeof req, c->authority, init)) < 0) {
		conn_fail(c, "noise: %s", ctlb_strerror(n));
		return;
	}
	bufferevent_write(c->bev, req, (size_t)n);
	c->state = CS_HTTP;
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct ctl_conn *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		send_upgrade(c);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long e = c->tls ? bufferevent_get_openssl_error(bev) : 0;
		int dnserr = bufferevent_socket_get_dns_error(bev);

		if (dnserr)
			conn_fail(c, "%s: %s", c->host, evutil_gai_strerror(dnserr));
		else if (e)
			conn_fail(c, "TLS to %s: %s", c->host, ERR_reason_error_string(e));
		else
			conn_fail(c, "%s:%u: %s", c->host, c->port,
			    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		return;
	}
	if (what & BEV_EVENT_EOF) {
		if (c->state == CS_HTTP && ctlb_http_eof(&c->http) < 0) {
			char why[400];

			ctlb_http_describe(&c->http, why, sizeof why);
			conn_fail(c, "upgrade refused: %s", why);
		} else if (c->state == CS_NOISE) {
			/* Headscale answers a bad handshake by hanging up (control.md §3.7). */
			conn_fail(c, "the control server closed the connection during the handshake "
			    "(wrong server key, or a protocol version it refuses)");
		} else {
			conn_fail(c, "the control server closed the connection");
		}
	}
}

static void
conn_fail(struct ctl_conn *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (c->state == CS_DEAD)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	c->state = CS_DEAD;
	c->machine_priv = NULL;
	ctlb_clear(&c->noise);
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	for (int i = 0; i < CTL_MAX_STREAMS; i++)
		if (c->reqs[i].in_use)
			req_finish(&c->reqs[i], msg);
	c->in_callback = true;
	c->ops->closed(c->ctx, msg);
	c->in_callback = false;
}

static SSL_CTX *
tls_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

struct ctl_conn *
ctl_conn_new(struct event_base *base, struct evdns_base *dns, const char *server_url,
    uint16_t capver, const uint8_t machine_priv[static 32], const uint8_t server_pub[static 32],
    const struct ctl_conn_ops *ops, void *ctx, char **cause)
{
	struct ctl_conn *c = xcalloc(1, sizeof *c);
	SSL *ssl;
	int r;

	if (!ctl_parse_url(server_url, &c->tls, c->host, sizeof c->host, &c->port)) {
		*cause = xstrdup("control server URL must be http://host[:port] or https://host[:port]");
		free(c);
		return NULL;
	}
	snprintf(c->authority, sizeof c->authority, strchr(c->host, ':') ? "[%s]:%u" : "%s:%u",
	    c->host, c->port);
	c->base = base;
	c->ops = ops;
	c->ctx = ctx;
	c->machine_priv = machine_priv;
	r = ctlb_init(&c->noise, capver, machine_priv, NULL, server_pub, rng, NULL);
	if (r < 0) {
		if (asprintf(cause, "noise: %s", ctlb_strerror(r)) < 0)
			*cause = NULL;
		free(c);
		return NULL;
	}
	ctlb_http_init(&c->http);
	ctlb_early_init(&c->early);
	if (c->tls) {
		c->ssl_ctx = tls_ctx();
		ssl = c->ssl_ctx ? SSL_new(c->ssl_ctx) : NULL;
		if (ssl == NULL) {
			*cause = xstrdup("TLS setup failed");
			ctl_conn_free(c);
			return NULL;
		}
		/* SNI, and the certificate must name the host (the /ts2021 upgrade is HTTP/1.1, no ALPN). */
		SSL_set_tlsext_host_name(ssl, c->host);
		SSL_set1_host(ssl, c->host);
		c->bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
		    BEV_OPT_CLOSE_ON_FREE);
	} else {
		c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	}
	if (c->bev == NULL) {
		*cause = xstrdup("out of memory");
		ctl_conn_free(c);
		return NULL;
	}
	bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	c->state = CS_CONNECTING;
	if (bufferevent_socket_connect_hostname(c->bev, dns, AF_UNSPEC, c->host, c->port) < 0) {
		if (asprintf(cause, "cannot connect to %s:%u", c->host, c->port) < 0)
			*cause = NULL;
		ctl_conn_free(c);
		return NULL;
	}
	return c;
}

void
ctl_conn_free(struct ctl_conn *c)
{
	if (c == NULL)
		return;
	for (int i = 0; i < CTL_MAX_STREAMS; i++)
		if (c->reqs[i].in_use)
			req_release(&c->reqs[i]);
	if (c->h2)
		nghttp2_session_del(c->h2);
	if (c->bev)
		bufferevent_free(c->bev);
	if (c->ssl_ctx)
		SSL_CTX_free(c->ssl_ctx);
	ctlb_clear(&c->noise);
	sodium_memzero(c->sealbuf, sizeof c->sealbuf);
	free(c);
}

struct ctl_req *
ctl_conn_request(struct ctl_conn *c, const char *path, const char *body, size_t len,
    bool streaming, const struct ctl_req_ops *ops, void *ctx)
{
	struct ctl_req *r = NULL;
	nghttp2_data_provider prov;
	char clen[24];
	int n;

	if (c->state != CS_OPEN)
		return NULL;
	for (int i = 0; i < CTL_MAX_STREAMS && r == NULL; i++)
		if (!c->reqs[i].in_use)
			r = &c->reqs[i];
	if (r == NULL)
		return NULL;
	n = snprintf(clen, sizeof clen, "%zu", len);
	{
		/* Go rewrites http: to https: for :scheme; Headscale ignores it (control.md §4.1). */
		const nghttp2_nv hdrs[] = {
#define NV(k, v, vl) { (uint8_t *)(k), (uint8_t *)(v), sizeof(k) - 1, (vl), NGHTTP2_NV_FLAG_NONE }
			NV(":method", "POST", 4),
			NV(":scheme", "https", 5),
			NV(":authority", c->authority, strlen(c->authority)),
			NV(":path", path, strlen(path)),
			NV("content-type", "application/json", 16),
			NV("content-length", clen, (size_t)n),
#undef NV
		};

		memset(r, 0, sizeof *r);
		r->in_use = true;
		r->conn = c;
		r->streaming = streaming;
		r->ops = ops;
		r->ctx = ctx;
		r->body = xmalloc(len);
		memcpy(r->body, body, len);
		r->body_len = len;
		prov.source.ptr = r;
		prov.read_callback = body_read_cb;
		r->stream_id = nghttp2_submit_request(c->h2, NULL, hdrs, ARRAY_SIZE(hdrs), &prov, r);
	}
	if (r->stream_id < 0) {
		req_release(r);
		return NULL;
	}
	if (!c->in_callback)
		h2_flush(c);
	return r;
}

void
ctl_req_cancel(struct ctl_req *r)
{
	struct ctl_conn *c = r->conn;

	if (c->state == CS_OPEN)
		nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, r->stream_id, NGHTTP2_CANCEL);
	req_release(r);
	if (!c->in_callback)
		h2_flush(c);
}

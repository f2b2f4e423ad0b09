// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * The local API server: evhttp on a unix socket, the transport rules of
 * localapi.h, and dispatch to the daemon's handler table.
 *
 * Two things evhttp 2.1 does not do, and how we do them:
 *
 *  - Counting connections.  evhttp accepts by itself and has no
 *    connection cap (evhttp_set_max_connections arrived in 2.2), and it
 *    tells nobody when a connection goes away.  So every connection's
 *    bufferevent is ours (evhttp_set_bevcb) and we hold a reference on it.
 *    When evhttp frees a connection, bufferevent_free() clears the
 *    bufferevent's callbacks, but our reference keeps the memory (and the
 *    descriptor, which evhttp has already shut down for writing) until a
 *    sweep sees the cleared callbacks and drops it.  Sweeps run on every
 *    accept and request, twice a second while connections exist, and at
 *    once when a reply finds its connection gone.  At LAPI_MAX_CONNS we
 *    stop accepting (further clients wait in the backlog) until a sweep
 *    frees a slot, as tmux does on EMFILE.  (A pass-through
 *    bufferevent_filter with a free callback would be the obvious hook,
 *    but evhttp 2.1 over a filter loses responses: the filter reports
 *    "written" once bytes reach the socket bufferevent, not the socket.)
 *
 *  - Noticing that a client left while its reply is pending.  evhttp stops
 *    reading a connection while a request is being handled, so an `up`
 *    whose user pressed ^C would wait forever.  A pending reply therefore
 *    watches its socket with a one-shot read event and MSG_PEEK: EOF or an
 *    error cancels the reply; bytes (a pipelined request) end the watch,
 *    and the sweep still catches the close later.
 *
 * A request whose connection died is detached by evhttp (its connection
 * is NULL) and freed by the send that finishes it, which makes finishing a
 * reply safe in every state.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <sodium.h>

#include "agent/localapi/localapi.h"
#include "common/log.h"
#include "common/version.h"

#define LISTEN_BACKLOG	64
/* How long accept() stays off after EMFILE/ENFILE (tmux: one second). */
#define ACCEPT_BACKOFF_SEC 1
/* How often dead connections are looked for while any exist. */
#define SWEEP_USEC	500000
/*
 * What a connection may buffer unread.  evhttp waits for a whole body in
 * the bufferevent before taking it, so this is a request's worth; it
 * bounds what a connection evhttp has dropped can pile up before a sweep.
 */
#define READ_HIGH_WATER	(LAPI_MAX_HEADERS + LAPI_MAX_BODY + 4096)

struct lapi_conn {
	struct bufferevent *bev;	/* evhttp's; we hold a reference */
	struct lapi_reply *pending;
	LIST_ENTRY(lapi_conn) entry;
};

struct lapi_reply {
	struct lapi_server *srv;
	struct evhttp_request *req;
	struct lapi_conn *conn;		/* NULL: untracked or gone */
	struct event *eof_ev;
	lapi_cancel_fn *cancel_fn;
	void *cancel_arg;
	bool deferring;			/* inside a handler or cancel call */
	bool finished;			/* answered while deferring */
	bool streaming;
	bool pending;			/* on srv->pending */
	LIST_ENTRY(lapi_reply) entry;
};

struct lapi_server {
	struct event_base *base;
	struct evhttp *http;
	struct evconnlistener *listener;
	struct event *backoff_ev;
	struct event *sweep_ev;
	struct lapi_handlers handlers;
	void *ctx;
	bool have_operator;
	uid_t operator_uid;
	lapi_cred_fn *get_cred;
	char *path;
	dev_t sock_dev;
	ino_t sock_ino;
	bool accept_backoff;
	bool accept_full;
	bool listed;			/* on servers */
	LIST_HEAD(, lapi_conn) conns;
	LIST_HEAD(, lapi_reply) replies;
	struct lapi_server_stats stats;
	LIST_ENTRY(lapi_server) entry;
};

/*
 * Live servers.  evhttp_bind_listener() makes the listener's user data the
 * evhttp, so its error callback finds its server here by listener.
 */
static LIST_HEAD(, lapi_server) servers = LIST_HEAD_INITIALIZER(servers);

struct lapi_query {
	struct evkeyvalq kv;
};

static void sweep_soon(struct lapi_server *srv);

/* --- routes ------------------------------------------------------------- */

#define BUILTIN_VERSION	((size_t)-1)

struct route {
	const char *name;		/* after LAPI_PREFIX */
	unsigned methods;
	unsigned write;			/* methods that need write permission */
	bool no_version;
	size_t handler;			/* offsetof(struct lapi_handlers, …) */
};

#define H(f) offsetof(struct lapi_handlers, f)
#define RD (LAPI_GET | LAPI_HEAD)

static const struct route routes[] = {
	{ "status", RD, 0, false, H(status) },
	{ "prefs", RD, 0, false, H(prefs_get) },
	{ "prefs", LAPI_PATCH, LAPI_PATCH, false, H(prefs_patch) },
	{ "up", LAPI_POST, LAPI_POST, false, H(up) },
	{ "down", LAPI_POST, LAPI_POST, false, H(down) },
	{ "login-interactive", LAPI_POST, LAPI_POST, false, H(login_interactive) },
	{ "logout", LAPI_POST, LAPI_POST, false, H(logout) },
	{ "whois", RD, 0, false, H(whois) },
	/* Not a write, as in tailscaled: any local user may ping. */
	{ "ping", LAPI_POST, 0, false, H(ping) },
	{ "netcheck", RD, 0, false, H(netcheck) },
	{ "dns-status", RD, 0, false, H(dns_status) },
	{ "metrics", RD, 0, true, H(metrics) },
	{ "watch-ipn-bus", RD, 0, false, H(watch_ipn_bus) },
	{ "version", RD, 0, false, BUILTIN_VERSION },
};

#undef H
#undef RD

static const struct {
	unsigned bit;
	const char *name;
} method_names[] = {
	{ LAPI_GET, "GET" }, { LAPI_HEAD, "HEAD" }, { LAPI_POST, "POST" },
	{ LAPI_PUT, "PUT" }, { LAPI_PATCH, "PATCH" }, { LAPI_DELETE, "DELETE" },
};

static unsigned
method_of(enum evhttp_cmd_type cmd)
{
	switch (cmd) {
	case EVHTTP_REQ_GET: return LAPI_GET;
	case EVHTTP_REQ_HEAD: return LAPI_HEAD;
	case EVHTTP_REQ_POST: return LAPI_POST;
	case EVHTTP_REQ_PUT: return LAPI_PUT;
	case EVHTTP_REQ_PATCH: return LAPI_PATCH;
	case EVHTTP_REQ_DELETE: return LAPI_DELETE;
	default: return 0;
	}
}

/* --- replies ------------------------------------------------------------ */

static void
add_common_headers(struct evhttp_request *req, const char *content_type)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	char v[16];

	snprintf(v, sizeof v, "%d", LAPI_API_VERSION);
	evhttp_add_header(h, LAPI_VERSION_HEADER, v);
	evhttp_add_header(h, LAPI_DAEMON_HEADER, MESHD_VERSION);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	if (content_type != NULL)
		evhttp_add_header(h, "Content-Type", content_type);
}

static void
eof_watch_stop(struct lapi_reply *r)
{
	if (r->eof_ev != NULL) {
		event_free(r->eof_ev);
		r->eof_ev = NULL;
	}
}

/* The reply has been answered: forget it (or let the deferring caller do so). */
static void
reply_done(struct lapi_reply *r)
{
	eof_watch_stop(r);
	if (r->conn != NULL && r->conn->pending == r)
		r->conn->pending = NULL;
	r->conn = NULL;
	r->req = NULL;
	if (r->pending) {
		LIST_REMOVE(r, entry);
		r->pending = false;
		r->srv->stats.pending--;
	}
	if (r->deferring)
		r->finished = true;
	else
		free(r);
}

static bool
reply_usable(const struct lapi_reply *r, const char *fn)
{
	if (r == NULL || r->req == NULL) {
		log_err("localapi: %s on a reply already finished", fn);
		return false;
	}
	return true;
}

void
lapi_reply_set_cancel(struct lapi_reply *r, lapi_cancel_fn *fn, void *arg)
{
	if (!reply_usable(r, __func__))
		return;
	r->cancel_fn = fn;
	r->cancel_arg = arg;
}

void
lapi_reply_send(struct lapi_reply *r, int status, const char *content_type,
    const void *body, size_t len)
{
	struct evbuffer *buf;

	if (!reply_usable(r, __func__))
		return;
	if (r->streaming) {
		/* Headers are gone already; all that is left is to end it. */
		log_err("localapi: lapi_reply_send on a stream");
		lapi_reply_stream_end(r);
		return;
	}
	add_common_headers(r->req, content_type);
	buf = evbuffer_new();
	if (buf != NULL && len > 0 && evbuffer_add(buf, body, len) != 0) {
		evbuffer_free(buf);
		buf = NULL;
		status = 500;
	}
	evhttp_send_reply(r->req, status, NULL, buf);
	if (buf != NULL)
		evbuffer_free(buf);
	reply_done(r);
}

void
lapi_reply_json(struct lapi_reply *r, int status, const char *json)
{
	lapi_reply_send(r, status, LAPI_CONTENT_JSON, json, json ? strlen(json) : 0);
}

void
lapi_reply_no_content(struct lapi_reply *r)
{
	lapi_reply_send(r, 204, NULL, NULL, 0);
}

static void
reply_verror(struct lapi_reply *r, int status, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void
reply_verror(struct lapi_reply *r, int status, const char *fmt, va_list ap)
{
	char msg[512];
	char *json;

	vsnprintf(msg, sizeof msg, fmt, ap);
	json = lapi_error_json(msg);
	if (json == NULL) {
		static const char oom[] = "{\"error\":\"out of memory\"}";

		lapi_reply_send(r, 500, LAPI_CONTENT_JSON, oom, sizeof oom - 1);
		return;
	}
	lapi_reply_json(r, status, json);
	free(json);
}

void
lapi_reply_error(struct lapi_reply *r, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	reply_verror(r, status, fmt, ap);
	va_end(ap);
}

/* A refusal decided here rather than by a handler. */
static void
refuse(struct lapi_reply *r, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
refuse(struct lapi_reply *r, int status, const char *fmt, ...)
{
	va_list ap;

	r->srv->stats.refused++;
	va_start(ap, fmt);
	reply_verror(r, status, fmt, ap);
	va_end(ap);
}

int
lapi_reply_stream_start(struct lapi_reply *r, const char *content_type)
{
	if (!reply_usable(r, __func__))
		return -EINVAL;
	if (r->streaming)
		return 0;
	add_common_headers(r->req, content_type);
	r->streaming = true;
	evhttp_send_reply_start(r->req, 200, NULL);
	return 0;
}

int
lapi_reply_stream_write(struct lapi_reply *r, const void *data, size_t len)
{
	struct evbuffer *buf;
	int ret = 0;

	if (!reply_usable(r, __func__))
		return -EINVAL;
	if (!r->streaming) {
		ret = lapi_reply_stream_start(r, LAPI_CONTENT_NDJSON);
		if (ret != 0)
			return ret;
	}
	/* A detached request (the connection died) has no connection. */
	if (evhttp_request_get_connection(r->req) == NULL) {
		sweep_soon(r->srv);
		return -EPIPE;
	}
	if (len == 0)
		return 0;
	buf = evbuffer_new();
	if (buf == NULL)
		return -ENOMEM;
	if (evbuffer_add(buf, data, len) != 0)
		ret = -ENOMEM;
	else
		evhttp_send_reply_chunk(r->req, buf);
	evbuffer_free(buf);
	return ret;
}

void
lapi_reply_stream_end(struct lapi_reply *r)
{
	if (!reply_usable(r, __func__))
		return;
	if (!r->streaming) {
		lapi_reply_no_content(r);
		return;
	}
	evhttp_send_reply_end(r->req);
	reply_done(r);
}

/*
 * The client is gone, or the server is going: the handler forgets the
 * reply in its cancel callback, then we answer whatever is left.
 */
static void
reply_cancel(struct lapi_reply *r)
{
	lapi_cancel_fn *fn = r->cancel_fn;

	eof_watch_stop(r);
	r->cancel_fn = NULL;
	r->deferring = true;
	if (fn != NULL)
		fn(r->cancel_arg, r);
	r->deferring = false;
	if (r->finished) {
		free(r);
		return;
	}
	if (r->streaming)
		lapi_reply_stream_end(r);
	else
		lapi_reply_error(r, 503, "request cancelled");
}

static void
eof_watch_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lapi_reply *r = arg;
	char c;
	ssize_t n;

	n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n > 0) {
		/* A pipelined request: we cannot tell more; the free hook will. */
		eof_watch_stop(r);
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
		event_add(r->eof_ev, NULL);
		return;
	}
	log_debug("localapi: client left with a reply pending");
	reply_cancel(r);
}

static void
eof_watch_start(struct lapi_reply *r)
{
	int fd;

	if (r->conn == NULL)
		return;
	fd = bufferevent_getfd(r->conn->bev);
	if (fd < 0)
		return;
	r->eof_ev = event_new(r->srv->base, fd, EV_READ, eof_watch_cb, r);
	if (r->eof_ev != NULL)
		event_add(r->eof_ev, NULL);
}

/* --- connections -------------------------------------------------------- */

static void
accept_update(struct lapi_server *srv)
{
	bool on;

	if (srv->listener == NULL)
		return;
	srv->accept_full = srv->stats.connections >= LAPI_MAX_CONNS;
	on = !srv->accept_full && !srv->accept_backoff;
	if (on)
		evconnlistener_enable(srv->listener);
	else
		evconnlistener_disable(srv->listener);
}

/* Has evhttp freed this connection?  bufferevent_free() clears the callbacks. */
static bool
conn_dead(const struct lapi_conn *c)
{
	bufferevent_event_cb errcb = NULL;

	bufferevent_getcb(c->bev, NULL, NULL, &errcb, NULL);
	return errcb == NULL;
}

static void
conn_release(struct lapi_server *srv, struct lapi_conn *c)
{
	LIST_REMOVE(c, entry);
	srv->stats.connections--;
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	bufferevent_decref(c->bev);	/* the last reference: closes the socket */
	free(c);
}

/* Drops the connections evhttp is done with, cancelling their replies. */
static void
sweep(struct lapi_server *srv)
{
	struct lapi_conn *c, *next;
	struct timeval tv = { 0, SWEEP_USEC };

	for (c = LIST_FIRST(&srv->conns); c != NULL; c = next) {
		next = LIST_NEXT(c, entry);
		if (!conn_dead(c))
			continue;
		if (c->pending != NULL) {
			struct lapi_reply *r = c->pending;

			c->pending = NULL;
			r->conn = NULL;
			reply_cancel(r);
		}
		conn_release(srv, c);
	}
	accept_update(srv);
	if (!LIST_EMPTY(&srv->conns))
		evtimer_add(srv->sweep_ev, &tv);
}

static void
sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	sweep(arg);
}

/* Sweeps from the loop, never from inside a caller's call. */
static void
sweep_soon(struct lapi_server *srv)
{
	event_active(srv->sweep_ev, EV_TIMEOUT, 0);
}

static struct bufferevent *
conn_new_bev(struct event_base *base, void *arg)
{
	struct lapi_server *srv = arg;
	struct lapi_conn *c;
	struct bufferevent *bev;

	sweep(srv);
	c = calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		free(c);
		return NULL;
	}
	bufferevent_setwatermark(bev, EV_READ, 0, READ_HIGH_WATER);
	bufferevent_incref(bev);
	c->bev = bev;
	LIST_INSERT_HEAD(&srv->conns, c, entry);
	srv->stats.connections++;
	accept_update(srv);
	return bev;
}

static struct lapi_conn *
conn_of(struct lapi_server *srv, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev;
	struct lapi_conn *c;

	if (evcon == NULL)
		return NULL;
	bev = evhttp_connection_get_bufferevent(evcon);
	LIST_FOREACH(c, &srv->conns, entry)
		if (c->bev == bev)
			return c;
	return NULL;
}

static int
peercred(int fd, uid_t *uid, pid_t *pid)
{
	struct ucred uc;
	socklen_t len = sizeof uc;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
		return -errno;
	*uid = uc.uid;
	*pid = uc.pid;
	return 0;
}

static void
backoff_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lapi_server *srv = arg;

	srv->accept_backoff = false;
	accept_update(srv);
}

static void
listener_error_cb(struct evconnlistener *l, void *arg)
{
	struct lapi_server *srv;
	int err = EVUTIL_SOCKET_ERROR();
	struct timeval tv = { ACCEPT_BACKOFF_SEC, 0 };

	LIST_FOREACH(srv, &servers, entry)
		if (srv->listener == l)
			break;
	if (srv == NULL) {
		evconnlistener_disable(l);
		return;
	}

	/* Out of descriptors: stop accepting for a while rather than spin. */
	log_warn("localapi: accept: %s; pausing for %d s", strerror(err),
	    ACCEPT_BACKOFF_SEC);
	srv->accept_backoff = true;
	accept_update(srv);
	evtimer_add(srv->backoff_ev, &tv);
}

/* --- dispatch ----------------------------------------------------------- */

const char *
lapi_request_query(const struct lapi_request *req, const char *key)
{
	if (req->query == NULL)
		return NULL;
	return evhttp_find_header(&req->query->kv, key);
}

static void
answer_version(struct lapi_reply *r)
{
	char body[128];

	snprintf(body, sizeof body, "{\"Version\":\"%s\",\"ApiVersion\":%d}",
	    MESHD_VERSION, LAPI_API_VERSION);
	lapi_reply_json(r, 200, body);
}

static bool
version_ok(struct evhttp_request *req, const char **got)
{
	const char *v = evhttp_find_header(evhttp_request_get_input_headers(req),
	    LAPI_VERSION_HEADER);
	char *end;
	long n;

	*got = v;
	if (v == NULL)
		return false;
	while (*v == ' ' || *v == '\t')
		v++;
	errno = 0;
	n = strtol(v, &end, 10);
	while (*end == ' ' || *end == '\t')
		end++;
	return errno == 0 && end != v && *end == '\0' && n == LAPI_API_VERSION;
}

/* Finds the route for path and method; *allow gets the methods path takes. */
static const struct route *
route_find(const char *path, unsigned method, unsigned *allow)
{
	const struct route *hit = NULL;
	size_t plen = strlen(LAPI_PREFIX);

	*allow = 0;
	if (strncmp(path, LAPI_PREFIX, plen) != 0)
		return NULL;
	path += plen;
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		if (strcmp(routes[i].name, path) != 0)
			continue;
		*allow |= routes[i].methods;
		if ((routes[i].methods & method) != 0 && hit == NULL)
			hit = &routes[i];
	}
	return hit;
}

static void
allow_header(struct evhttp_request *req, unsigned allow)
{
	char v[64] = "";

	for (size_t i = 0; i < sizeof method_names / sizeof method_names[0]; i++) {
		if ((allow & method_names[i].bit) == 0)
			continue;
		if (v[0] != '\0')
			strcat(v, ", ");
		strcat(v, method_names[i].name);
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", v);
}

static bool
may_write(const struct lapi_server *srv, uid_t uid)
{
	if (uid == (uid_t)-1)
		return false;
	return uid == 0 || uid == geteuid() ||
	    (srv->have_operator && uid == srv->operator_uid);
}

static void
dispatch(struct lapi_server *srv, struct evhttp_request *ereq, struct lapi_reply *r)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(ereq);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ereq);
	struct lapi_request req = { .uid = (uid_t)-1, .pid = -1, .body = "" };
	struct lapi_query query;
	bool have_query = false;
	const struct route *rt;
	const char *path, *qs, *ver;
	lapi_handler_fn *fn;
	unsigned allow;
	char *body = NULL;
	size_t body_len = 0;

	if (r->conn != NULL) {
		int fd = bufferevent_getfd(r->conn->bev);

		if (fd >= 0 && srv->get_cred(fd, &req.uid, &req.pid) != 0) {
			req.uid = (uid_t)-1;
			req.pid = -1;
		}
	}
	req.can_write = may_write(srv, req.uid);

	/* A browser page could reach a socket through a local proxy; refuse. */
	if (evhttp_find_header(in, "Origin") != NULL ||
	    evhttp_find_header(in, "Referer") != NULL) {
		refuse(r, 403, "requests from browsers are not allowed");
		return;
	}
	req.method = method_of(evhttp_request_get_command(ereq));
	path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	/* An unknown method (OPTIONS) matches no route: 405 below. */
	if (path == NULL) {
		refuse(r, 400, "malformed request");
		return;
	}
	rt = route_find(path, req.method, &allow);
	if (rt == NULL && allow == 0) {
		refuse(r, 404, "no such local API endpoint: %.200s", path);
		return;
	}
	if (rt == NULL || !rt->no_version) {
		if (!version_ok(ereq, &ver)) {
			if (ver == NULL)
				refuse(r, 400, "missing %s header: this meshd speaks "
				    "local API version %d; use the meshctl that came "
				    "with it", LAPI_VERSION_HEADER, LAPI_API_VERSION);
			else
				refuse(r, 400, "local API version mismatch: the client "
				    "speaks %.20s, this meshd speaks %d; use the meshctl "
				    "that came with it", ver, LAPI_API_VERSION);
			return;
		}
	}
	if (rt == NULL) {
		allow_header(ereq, allow);
		refuse(r, 405, "method not allowed for %.200s", path);
		return;
	}
	if ((rt->write & req.method) != 0 && !req.can_write) {
		refuse(r, 403, "this operation requires root (try again with sudo)");
		return;
	}
	srv->stats.requests++;
	if (rt->handler == BUILTIN_VERSION) {
		answer_version(r);
		return;
	}
	memcpy(&fn, (const char *)&srv->handlers + rt->handler, sizeof fn);
	if (fn == NULL) {
		refuse(r, 501, "%s is not implemented by this meshd", path);
		return;
	}
	if (srv->stats.pending >= LAPI_MAX_PENDING) {
		refuse(r, 503, "meshd is busy: too many requests in flight");
		return;
	}

	qs = evhttp_uri_get_query(uri);
	TAILQ_INIT(&query.kv);
	if (qs != NULL) {
		if (evhttp_parse_query_str(qs, &query.kv) != 0) {
			evhttp_clear_headers(&query.kv);
			refuse(r, 400, "malformed query string");
			return;
		}
		have_query = true;
	}
	req.query = &query;
	req.path = path;
	if ((req.method & (LAPI_GET | LAPI_HEAD)) == 0) {
		struct evbuffer *ib = evhttp_request_get_input_buffer(ereq);

		body_len = evbuffer_get_length(ib);
		/* evhttp enforced LAPI_MAX_BODY; this is belt and braces. */
		if (body_len > LAPI_MAX_BODY) {
			if (have_query)
				evhttp_clear_headers(&query.kv);
			refuse(r, 413, "request body too large");
			return;
		}
		body = malloc(body_len + 1);
		if (body == NULL) {
			if (have_query)
				evhttp_clear_headers(&query.kv);
			refuse(r, 500, "out of memory");
			return;
		}
		evbuffer_copyout(ib, body, body_len);
		body[body_len] = '\0';
		/* The copy is all we use; the auth key must not linger there. */
		evbuffer_drain(ib, body_len);
		req.body = body;
		req.body_len = body_len;
	}

	fn(srv->ctx, &req, r);

	if (body != NULL) {
		sodium_memzero(body, body_len);
		free(body);
	}
	if (have_query)
		evhttp_clear_headers(&query.kv);
}

static void
on_request(struct evhttp_request *ereq, void *arg)
{
	struct lapi_server *srv = arg;
	struct lapi_reply *r;

	r = calloc(1, sizeof *r);
	if (r == NULL) {
		evhttp_send_error(ereq, 500, "out of memory");
		return;
	}
	r->srv = srv;
	r->req = ereq;
	r->conn = conn_of(srv, ereq);
	r->deferring = true;
	sweep_soon(srv);

	dispatch(srv, ereq, r);

	r->deferring = false;
	if (r->finished) {
		free(r);
		return;
	}
	if (r->cancel_fn == NULL) {
		log_err("localapi: a handler kept a reply without a cancel callback");
		if (r->streaming)
			lapi_reply_stream_end(r);
		else
			lapi_reply_error(r, 500, "internal error: reply abandoned");
		return;
	}
	LIST_INSERT_HEAD(&srv->replies, r, entry);
	r->pending = true;
	srv->stats.pending++;
	if (r->conn != NULL && r->conn->pending == NULL) {
		r->conn->pending = r;
		eof_watch_start(r);
	}
}

/* --- socket ------------------------------------------------------------- */

static int
mkdir_parents(const char *path, char **cause)
{
	char *copy = strdup(path), *dir, *p;
	int ret = 0;

	if (copy == NULL)
		return -ENOMEM;
	dir = dirname(copy);
	for (p = dir + 1; ; p++) {
		char saved = *p;

		if (saved != '/' && saved != '\0')
			continue;
		*p = '\0';
		if (mkdir(dir, 0755) == 0) {
			/* Whatever the daemon's umask: others must reach the socket. */
			if (chmod(dir, 0755) < 0)
				log_warn("localapi: chmod %s: %s", dir, strerror(errno));
		} else if (errno != EEXIST) {
			ret = -errno;
			if (cause != NULL &&
			    asprintf(cause, "creating %s: %s", dir, strerror(errno)) < 0)
				*cause = NULL;
			break;
		}
		*p = saved;
		if (saved == '\0')
			break;
	}
	free(copy);
	return ret;
}

static int
fail(char **cause, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
fail(char **cause, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (cause != NULL && vasprintf(cause, fmt, ap) < 0)
		*cause = NULL;
	va_end(ap);
	return err;
}

/* A socket at path: is anybody serving it? */
static bool
socket_live(const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool live;

	if (fd < 0)
		return false;
	live = connect(fd, (const struct sockaddr *)sun, sizeof *sun) == 0;
	close(fd);
	return live;
}

static int
make_socket(struct lapi_server *srv, char **cause)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old;
	int fd, ret;

	if (strlen(srv->path) >= sizeof sun.sun_path)
		return fail(cause, -ENAMETOOLONG, "socket path too long: %s", srv->path);
	strcpy(sun.sun_path, srv->path);
	ret = mkdir_parents(srv->path, cause);
	if (ret != 0)
		return ret;
	if (lstat(srv->path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return fail(cause, -EEXIST, "%s exists and is not a socket",
			    srv->path);
		if (socket_live(&sun))
			return fail(cause, -EADDRINUSE,
			    "another meshd is already serving %s", srv->path);
		/* Left by a daemon that died: ours to replace. */
		if (unlink(srv->path) < 0 && errno != ENOENT)
			return fail(cause, -errno, "removing stale %s: %s",
			    srv->path, strerror(errno));
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail(cause, -errno, "socket: %s", strerror(errno));
	/* Born private, then opened up on purpose: reads are for everyone. */
	old = umask(0177);
	ret = bind(fd, (struct sockaddr *)&sun, sizeof sun);
	umask(old);
	if (ret < 0) {
		ret = fail(cause, -errno, "binding %s: %s", srv->path, strerror(errno));
		close(fd);
		return ret;
	}
	if (chmod(srv->path, 0666) < 0 || listen(fd, LISTEN_BACKLOG) < 0 ||
	    stat(srv->path, &st) < 0) {
		ret = fail(cause, -errno, "setting up %s: %s", srv->path,
		    strerror(errno));
		unlink(srv->path);
		close(fd);
		return ret;
	}
	srv->sock_dev = st.st_dev;
	srv->sock_ino = st.st_ino;
	return fd;
}

/* --- server ------------------------------------------------------------- */

int
lapi_server_new(struct event_base *base, const struct lapi_server_config *cfg,
    struct lapi_server **out, char **cause)
{
	struct lapi_server *srv;
	struct sigaction sa;
	int fd, ret;

	*out = NULL;
	if (cause != NULL)
		*cause = NULL;
	/* A client that closes early must not take the daemon with it. */
	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
		signal(SIGPIPE, SIG_IGN);

	srv = calloc(1, sizeof *srv);
	if (srv == NULL)
		return fail(cause, -ENOMEM, "out of memory");
	srv->base = base;
	if (cfg->handlers != NULL)
		srv->handlers = *cfg->handlers;
	srv->ctx = cfg->ctx;
	srv->have_operator = cfg->have_operator;
	srv->operator_uid = cfg->operator_uid;
	srv->get_cred = cfg->get_cred != NULL ? cfg->get_cred : peercred;
	LIST_INIT(&srv->conns);
	LIST_INIT(&srv->replies);
	srv->path = strdup(cfg->socket_path != NULL ? cfg->socket_path :
	    LAPI_DEFAULT_SOCKET);
	srv->http = evhttp_new(base);
	srv->backoff_ev = evtimer_new(base, backoff_cb, srv);
	srv->sweep_ev = evtimer_new(base, sweep_cb, srv);
	if (srv->path == NULL || srv->http == NULL || srv->backoff_ev == NULL ||
	    srv->sweep_ev == NULL) {
		ret = fail(cause, -ENOMEM, "out of memory");
		goto err;
	}
	evhttp_set_max_headers_size(srv->http, LAPI_MAX_HEADERS);
	evhttp_set_max_body_size(srv->http, LAPI_MAX_BODY);
	evhttp_set_timeout(srv->http, cfg->io_timeout_sec != 0 ?
	    (int)cfg->io_timeout_sec : LAPI_IO_TIMEOUT_SEC);
	evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
	    EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_PATCH |
	    EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS);
	evhttp_set_default_content_type(srv->http, LAPI_CONTENT_JSON);
	evhttp_set_gencb(srv->http, on_request, srv);
	evhttp_set_bevcb(srv->http, conn_new_bev, srv);

	fd = make_socket(srv, cause);
	if (fd < 0) {
		ret = fd;
		free(srv->path);
		srv->path = NULL;	/* not ours: never unlink it */
		goto err;
	}
	srv->listener = evconnlistener_new(base, NULL, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (srv->listener == NULL) {
		close(fd);
		ret = fail(cause, -ENOMEM, "cannot listen on %s", srv->path);
		goto err;
	}
	evconnlistener_set_error_cb(srv->listener, listener_error_cb);
	if (evhttp_bind_listener(srv->http, srv->listener) == NULL) {
		evconnlistener_free(srv->listener);
		srv->listener = NULL;
		ret = fail(cause, -ENOMEM, "cannot serve %s", srv->path);
		goto err;
	}
	LIST_INSERT_HEAD(&servers, srv, entry);
	srv->listed = true;
	log_debug("localapi: serving %s", srv->path);
	*out = srv;
	return 0;

err:
	lapi_server_free(srv);
	return ret;
}

void
lapi_server_free(struct lapi_server *srv)
{
	struct lapi_conn *c;
	struct stat st;

	if (srv == NULL)
		return;
	if (srv->listed)
		LIST_REMOVE(srv, entry);
	/* Handlers forget their replies first, while evhttp is still whole. */
	while (!LIST_EMPTY(&srv->replies)) {
		struct lapi_reply *r = LIST_FIRST(&srv->replies);

		reply_cancel(r);
	}
	srv->listener = NULL;		/* owned and freed by evhttp */
	if (srv->http != NULL)
		evhttp_free(srv->http);
	/* evhttp has let go of every connection; now we do. */
	while ((c = LIST_FIRST(&srv->conns)) != NULL)
		conn_release(srv, c);
	if (srv->backoff_ev != NULL)
		event_free(srv->backoff_ev);
	if (srv->sweep_ev != NULL)
		event_free(srv->sweep_ev);
	if (srv->path != NULL && lstat(srv->path, &st) == 0 &&
	    st.st_dev == srv->sock_dev && st.st_ino == srv->sock_ino)
		unlink(srv->path);
	free(srv->path);
	free(srv);
}

void
lapi_server_get_stats(const struct lapi_server *srv, struct lapi_server_stats *st)
{
	*st = srv->stats;
}

// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * The local API end to end: a real server on a temporary unix socket, its
 * libevent loop in a second thread, and real HTTP from this one (the
 * libcurl client meshctl uses, or raw bytes for what no client would
 * send).  Routing, 404/405/501, the version header, write refusal (the
 * credential check is overridden through the config's test seam: the test
 * runs as root), body and connection caps, deferred and streamed replies,
 * clients leaving early, server shutdown with replies pending, malformed
 * requests; then the JSON contract's codecs.
 *
 * Only the loop thread touches libevent and the server; this thread asks
 * it to run things through a pipe (run_in_loop) and reads what handlers
 * recorded under a mutex.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "agent/localapi/localapi.h"
#include "common/version.h"

/* --- harness ------------------------------------------------------------ */

enum up_mode {
	UP_ECHO,		/* answer at once with what we saw */
	UP_STREAM,		/* URL line now, final line on "go" */
	UP_HOLD,		/* keep it, with a cancel callback */
	UP_ABANDON,		/* keep it without one (a handler bug) */
	UP_HOLD_FINISH_IN_CANCEL, /* the cancel callback answers itself */
};

struct harness {
	char dir[64];
	char sock[160];
	struct event_base *base;
	struct lapi_server *srv;
	pthread_t thr;
	int ctl[2];
	struct event *ctl_ev;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	void (*fn)(struct harness *, void *);
	void *fn_arg;
	unsigned fn_seq, fn_done;
	bool stopping;

	/* What handlers saw, under mu. */
	enum up_mode up_mode;
	unsigned calls;
	uid_t last_uid;
	bool last_can_write;
	char last_body[256];
	size_t last_body_len;
	char last_query[128];
	unsigned cancels;
	struct lapi_reply *held;	/* loop thread only */
	struct event *timer;		/* loop thread only */
	struct lapi_reply *timer_reply;
	unsigned stream_writes;
	int stream_err;
};

static volatile uid_t fake_uid = 0;

static int
fake_cred(int fd, uid_t *uid, pid_t *pid)
{
	*uid = fake_uid;
	*pid = getpid();
	return 0;
}

static void
ctl_cb(evutil_socket_t fd, short what, void *arg)
{
	struct harness *h = arg;
	char c;

	while (read(fd, &c, 1) == 1) {
		void (*fn)(struct harness *, void *);
		void *fa;

		pthread_mutex_lock(&h->mu);
		fn = h->fn;
		fa = h->fn_arg;
		pthread_mutex_unlock(&h->mu);
		if (fn == NULL)
			event_base_loopbreak(h->base);
		else
			fn(h, fa);
		pthread_mutex_lock(&h->mu);
		h->fn_done++;
		pthread_cond_broadcast(&h->cv);
		pthread_mutex_unlock(&h->mu);
	}
}

/* Runs fn(h, arg) on the loop thread and waits for it. */
static void
run_in_loop(struct harness *h, void (*fn)(struct harness *, void *), void *arg)
{
	unsigned want;

	pthread_mutex_lock(&h->mu);
	h->fn = fn;
	h->fn_arg = arg;
	want = ++h->fn_seq;
	pthread_mutex_unlock(&h->mu);
	assert_int_equal(write(h->ctl[1], "x", 1), 1);
	pthread_mutex_lock(&h->mu);
	while (h->fn_done < want)
		pthread_cond_wait(&h->cv, &h->mu);
	pthread_mutex_unlock(&h->mu);
}

static void *
loop_main(void *arg)
{
	struct harness *h = arg;

	event_base_dispatch(h->base);
	return NULL;
}

static void
record(struct harness *h, const struct lapi_request *req)
{
	const char *q;

	pthread_mutex_lock(&h->mu);
	h->calls++;
	h->last_uid = req->uid;
	h->last_can_write = req->can_write;
	h->last_body_len = req->body_len;
	snprintf(h->last_body, sizeof h->last_body, "%s", req->body);
	q = lapi_request_query(req, "ip");
	snprintf(h->last_query, sizeof h->last_query, "%s", q != NULL ? q : "");
	pthread_mutex_unlock(&h->mu);
}

static void
note_cancel(void *arg, struct lapi_reply *r)
{
	struct harness *h = arg;

	pthread_mutex_lock(&h->mu);
	h->cancels++;
	pthread_mutex_unlock(&h->mu);
	if (h->held == r)
		h->held = NULL;
	if (h->timer_reply == r) {
		h->timer_reply = NULL;
		evtimer_del(h->timer);
	}
}

static void
cancel_and_answer(void *arg, struct lapi_reply *r)
{
	note_cancel(arg, r);
	lapi_reply_error(r, 410, "gone");
}

static void
h_status(void *ctx, const struct lapi_request *req, struct lapi_reply *r)
{
	static const char *const ips[] = { "100.64.0.1", "fd7a:115c:a1e0::1" };
	struct lapi_peer_status self = {
		.id = "1", .node_id = 1, .public_key = "nodekey:00", .host_name = "me",
		.dns_name = "me.ts.test.", .os = "linux", .user_id = 1,
		.tailscale_ips = { ips, 2 }, .online = true,
	};
	struct lapi_status st = {
		.backend_state = "Running", .tailscale_ips = { ips, 2 }, .self = &self,
		.magic_dns_suffix = "ts.test",
		.omit_peers = lapi_request_query(req, "peers") != NULL,
	};
	char *json = lapi_status_json(&st);

	record(ctx, req);
	assert_non_null(json);
	lapi_reply_json(r, 200, json);
	free(json);
}

static void
h_up(void *ctx, const struct lapi_request *req, struct lapi_reply *r)
{
	struct harness *h = ctx;
	enum up_mode mode;

	record(h, req);
	pthread_mutex_lock(&h->mu);
	mode = h->up_mode;
	pthread_mutex_unlock(&h->mu);
	switch (mode) {
	case UP_ECHO:
		lapi_reply_send(r, 200, "text/plain", req->body, req->body_len);
		break;
	case UP_STREAM: {
		struct lapi_notify n = { .browse_to_url = "http://ctl/register/abc" };
		char *line = lapi_notify_json(&n);

		assert_int_equal(lapi_reply_stream_start(r, LAPI_CONTENT_NDJSON), 0);
		assert_int_equal(lapi_reply_stream_write(r, line, strlen(line)), 0);
		free(line);
		lapi_reply_set_cancel(r, note_cancel, h);
		h->held = r;
		break;
	}
	case UP_HOLD:
		lapi_reply_set_cancel(r, note_cancel, h);
		h->held = r;
		break;
	case UP_HOLD_FINISH_IN_CANCEL:
		lapi_reply_set_cancel(r, cancel_and_answer, h);
		h->held = r;
		break;
	case UP_ABANDON:
		break;
	}
}

static void
h_down(void *ctx, const struct lapi_request *req, struct lapi_reply *r)
{
	record(ctx, req);
	lapi_reply_no_content(r);
}

static void
h_ping(void *ctx, const struct lapi_request *req, struct lapi_reply *r)
{
	const char *ip = lapi_request_query(req, "ip");
	struct lapi_ping_result pr = { .ip = ip, .node_ip = ip, .node_name = "peer",
	    .endpoint = "10.0.0.2:41641", .latency_seconds = 0.012 };
	char *json;

	record(ctx, req);
	if (ip == NULL) {
		lapi_reply_error(r, 400, "missing 'ip' parameter");
		return;
	}
	json = lapi_ping_result_json(&pr);
	lapi_reply_json(r, 200, json);
	free(json);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct harness *h = arg;
	struct lapi_reply *r = h->timer_reply;

	h->timer_reply = NULL;
	if (r != NULL)
		lapi_reply_json(r, 200, "{\"late\":true}");
}

/* whois answers 100 ms later, from a timer. */
static void
h_whois(void *ctx, const struct lapi_request *req, struct lapi_reply *r)
{
	struct harness *h = ctx;
	struct timeval tv = { 0, 100000 };

	record(h, req);
	lapi_reply_set_cancel(r, note_cancel, h);
	h->timer_reply = r;
	evtimer_add(h->timer, &tv);
}

/* watch-ipn-bus writes a line every 20 ms until the client leaves. */
static void
watch_tick(evutil_socket_t fd, short what, void *arg)
{
	struct harness *h = arg;
	struct timeval tv = { 0, 20000 };
	int ret;

	if (h->timer_reply == NULL)
		return;
	ret = lapi_reply_stream_write(h->timer_reply, "{\"State\":\"Running\"}\n", 20);
	pthread_mutex_lock(&h->mu);
	h->stream_writes++;
	if (ret != 0)
		h->stream_err = ret;
	pthread_mutex_unlock(&h->mu);
	if (h->timer_reply != NULL)
		evtimer_add(h->timer, &tv);
}

static void
h_watch(void *ctx, const struct lapi_request *req, struct lapi_reply *r)
{
	struct harness *h = ctx;
	struct timeval tv = { 0, 20000 };

	record(h, req);
	assert_int_equal(lapi_reply_stream_start(r, LAPI_CONTENT_NDJSON), 0);
	lapi_reply_set_cancel(r, note_cancel, h);
	h->timer_reply = r;
	evtimer_assign(h->timer, h->base, watch_tick, h);
	evtimer_add(h->timer, &tv);
}

static void
h_metrics(void *ctx, const struct lapi_request *req, struct lapi_reply *r)
{
	static const char m[] = "# TYPE meshd_up gauge\nmeshd_up 1\n";

	record(ctx, req);
	lapi_reply_send(r, 200, LAPI_CONTENT_METRICS, m, sizeof m - 1);
}

static const struct lapi_handlers handlers = {
	.status = h_status,
	.up = h_up,
	.down = h_down,
	.ping = h_ping,
	.whois = h_whois,
	.watch_ipn_bus = h_watch,
	.metrics = h_metrics,
	/* prefs, logout, netcheck, …: NULL, so 501 */
};

static void
harness_start_at(struct harness *h, const char *sock)
{
	struct lapi_server_config cfg = {
		.handlers = &handlers, .ctx = h, .get_cred = fake_cred,
		.io_timeout_sec = 1,
	};
	char *cause = NULL;
	int ret;

	snprintf(h->sock, sizeof h->sock, "%s", sock);
	cfg.socket_path = h->sock;
	h->base = event_base_new();
	assert_non_null(h->base);
	assert_int_equal(pipe2(h->ctl, O_NONBLOCK | O_CLOEXEC), 0);
	h->ctl_ev = event_new(h->base, h->ctl[0], EV_READ | EV_PERSIST, ctl_cb, h);
	event_add(h->ctl_ev, NULL);
	h->timer = evtimer_new(h->base, timer_cb, h);
	ret = lapi_server_new(h->base, &cfg, &h->srv, &cause);
	if (ret != 0)
		fail_msg("lapi_server_new: %d %s", ret, cause ? cause : "");
	free(cause);
	assert_int_equal(pthread_create(&h->thr, NULL, loop_main, h), 0);
}

static int
setup(void **state)
{
	struct harness *h = calloc(1, sizeof *h);
	char sock[160];

	assert_non_null(h);
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	snprintf(h->dir, sizeof h->dir, "/tmp/meshd-test-lapi-XXXXXX");
	assert_non_null(mkdtemp(h->dir));
	fake_uid = 0;
	snprintf(sock, sizeof sock, "%s/run/meshd.sock", h->dir);
	harness_start_at(h, sock);
	*state = h;
	return 0;
}

static void
harness_stop_loop(struct harness *h)
{
	if (h->stopping)
		return;
	h->stopping = true;
	run_in_loop(h, NULL, NULL);
	pthread_join(h->thr, NULL);
}

static int
teardown(void **state)
{
	struct harness *h = *state;
	char p[256];

	harness_stop_loop(h);
	lapi_server_free(h->srv);
	event_free(h->timer);
	event_free(h->ctl_ev);
	event_base_free(h->base);
	close(h->ctl[0]);
	close(h->ctl[1]);
	snprintf(p, sizeof p, "%s/run", h->dir);
	rmdir(p);
	rmdir(h->dir);
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cv);
	free(h);
	fake_uid = 0;
	return 0;
}

/* --- clients ------------------------------------------------------------ */

static int
call(struct harness *h, const char *method, const char *path, const char *body,
    struct lapi_response *resp)
{
	struct lapi_call c = { .method = method, .path = path, .body = body,
	    .body_len = body ? strlen(body) : 0, .timeout_ms = 10000 };
	char *cause = NULL;
	int ret = lapi_client_call(h->sock, &c, resp, &cause);

	free(cause);
	return ret;
}

static int
raw_connect(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval tv = { 3, 0 };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
		close(fd);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	return fd;
}

/* Sends req as is and reads until the server closes (or 3 s pass). */
static size_t
raw_exchange(struct harness *h, const void *req, size_t len, char *out, size_t cap)
{
	int fd = raw_connect(h->sock);
	size_t got = 0;
	ssize_t n;

	assert_true(fd >= 0);
	if (len > 0)
		assert_int_equal(send(fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
	while (got + 1 < cap && (n = recv(fd, out + got, cap - 1 - got, 0)) > 0)
		got += (size_t)n;
	out[got] = '\0';
	close(fd);
	return got;
}

static void
assert_error_has(const struct lapi_response *r, const char *needle)
{
	char *msg = lapi_response_error(r);

	assert_non_null(msg);
	if (strstr(msg, needle) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", msg, needle);
	free(msg);
}

static unsigned
get_calls(struct harness *h)
{
	unsigned n;

	pthread_mutex_lock(&h->mu);
	n = h->calls;
	pthread_mutex_unlock(&h->mu);
	return n;
}

static unsigned
get_cancels(struct harness *h)
{
	unsigned n;

	pthread_mutex_lock(&h->mu);
	n = h->cancels;
	pthread_mutex_unlock(&h->mu);
	return n;
}

static void
set_up_mode(struct harness *h, enum up_mode m)
{
	pthread_mutex_lock(&h->mu);
	h->up_mode = m;
	pthread_mutex_unlock(&h->mu);
}

static void
read_stats(struct harness *h, void *arg)
{
	lapi_server_get_stats(h->srv, arg);
}

static struct lapi_server_stats
stats(struct harness *h)
{
	struct lapi_server_stats st;

	run_in_loop(h, read_stats, &st);
	return st;
}

/* Waits up to ms for cond(h) to hold. */
static bool
eventually(struct harness *h, bool (*cond)(struct harness *), int ms)
{
	for (int i = 0; i < ms / 10; i++) {
		if (cond(h))
			return true;
		usleep(10000);
	}
	return cond(h);
}

static bool
one_cancel(struct harness *h)
{
	return get_cancels(h) == 1;
}

static bool
nothing_pending(struct harness *h)
{
	return stats(h).pending == 0;
}

static bool
no_connections(struct harness *h)
{
	return stats(h).connections == 0;
}

/* --- tests: routing ----------------------------------------------------- */

static void
test_status_route(void **state)
{
	struct harness *h = *state;
	struct lapi_response r;

	assert_int_equal(call(h, "GET", LAPI_PREFIX "status", NULL, &r), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.api_version, LAPI_API_VERSION);
	assert_string_equal(r.daemon_version, MESHD_VERSION);
	assert_string_equal(r.content_type, LAPI_CONTENT_JSON);
	assert_non_null(strstr(r.body, "\"BackendState\":\"Running\""));
	assert_non_null(strstr(r.body, "\"Peer\":{}"));
	lapi_response_clear(&r);
	assert_int_equal(call(h, "GET", LAPI_PREFIX "status?peers=false", NULL, &r), 0);
	assert_null(strstr(r.body, "\"Peer\""));
	lapi_response_clear(&r);
	/* HEAD answers like GET, without a body. */
	assert_int_equal(call(h, "HEAD", LAPI_PREFIX "status", NULL, &r), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, 0);
	lapi_response_clear(&r);
	assert_int_equal(get_calls(h), 3);
}

static void
test_not_found_and_methods(void **state)
{
	struct harness *h = *state;
	struct lapi_response r;
	char buf[4096];
	static const char del_prefs[] = "DELETE /localapi/v0/status HTTP/1.1\r\n"
	    "Host: x\r\nMeshd-Api-Version: 1\r\nConnection: close\r\n\r\n";

	assert_int_equal(call(h, "GET", LAPI_PREFIX "nope", NULL, &r), 0);
	assert_int_equal(r.status, 404);
	assert_error_has(&r, "no such local API endpoint");
	lapi_response_clear(&r);
	assert_int_equal(call(h, "GET", "/elsewhere", NULL, &r), 0);
	assert_int_equal(r.status, 404);
	lapi_response_clear(&r);
	assert_int_equal(call(h, "GET", LAPI_PREFIX "status/", NULL, &r), 0);
	assert_int_equal(r.status, 404);
	lapi_response_clear(&r);

	assert_int_equal(call(h, "POST", LAPI_PREFIX "status", "{}", &r), 0);
	assert_int_equal(r.status, 405);
	assert_error_has(&r, "method not allowed");
	lapi_response_clear(&r);
	assert_int_equal(call(h, "GET", LAPI_PREFIX "up", NULL, &r), 0);
	assert_int_equal(r.status, 405);
	lapi_response_clear(&r);

	raw_exchange(h, del_prefs, sizeof del_prefs - 1, buf, sizeof buf);
	assert_non_null(strstr(buf, "HTTP/1.1 405"));
	assert_non_null(strstr(buf, "Allow: GET, HEAD"));

	/* A route the daemon did not register. */
	assert_int_equal(call(h, "GET", LAPI_PREFIX "netcheck", NULL, &r), 0);
	assert_int_equal(r.status, 501);
	assert_error_has(&r, "not implemented");
	lapi_response_clear(&r);
	assert_int_equal(call(h, "PATCH", LAPI_PREFIX "prefs", "{}", &r), 0);
	assert_int_equal(r.status, 501);
	lapi_response_clear(&r);

	/* Answered by the module itself. */
	assert_int_equal(call(h, "GET", LAPI_PREFIX "version", NULL, &r), 0);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"Version\":\"" MESHD_VERSION "\""));
	lapi_response_clear(&r);
	assert_int_equal(get_calls(h), 0);
	assert_true(stats(h).refused >= 7);
}

static void
test_version_header(void **state)
{
	struct harness *h = *state;
	struct lapi_call c = { .method = "GET", .path = LAPI_PREFIX "status",
	    .no_version = true, .timeout_ms = 5000 };
	struct lapi_response r;
	char buf[4096], *cause = NULL;
	static const char v2[] = "GET /localapi/v0/status HTTP/1.1\r\nHost: x\r\n"
	    "Meshd-Api-Version: 2\r\nConnection: close\r\n\r\n";
	static const char vjunk[] = "GET /localapi/v0/status HTTP/1.1\r\nHost: x\r\n"
	    "Meshd-Api-Version: 1x\r\nConnection: close\r\n\r\n";
	static const char vsp[] = "GET /localapi/v0/status HTTP/1.1\r\nHost: x\r\n"
	    "Meshd-Api-Version:  1 \r\nConnection: close\r\n\r\n";

	assert_int_equal(lapi_client_call(h->sock, &c, &r, &cause), 0);
	assert_int_equal(r.status, 400);
	assert_error_has(&r, "missing Meshd-Api-Version");
	lapi_response_clear(&r);

	raw_exchange(h, v2, sizeof v2 - 1, buf, sizeof buf);
	assert_non_null(strstr(buf, "HTTP/1.1 400"));
	assert_non_null(strstr(buf, "the client speaks 2, this meshd speaks 1"));
	raw_exchange(h, vjunk, sizeof vjunk - 1, buf, sizeof buf);
	assert_non_null(strstr(buf, "HTTP/1.1 400"));
	raw_exchange(h, vsp, sizeof vsp - 1, buf, sizeof buf);
	assert_non_null(strstr(buf, "HTTP/1.1 200"));
	assert_int_equal(get_calls(h), 1);

	/* Scrapers need not know about versions. */
	c.path = LAPI_PREFIX "metrics";
	assert_int_equal(lapi_client_call(h->sock, &c, &r, &cause), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.content_type, LAPI_CONTENT_METRICS);
	assert_non_null(strstr(r.body, "meshd_up 1\n"));
	lapi_response_clear(&r);
}

static void
test_browser_refused(void **state)
{
	struct harness *h = *state;
	char buf[4096];
	static const char origin[] = "GET /localapi/v0/status HTTP/1.1\r\nHost: x\r\n"
	    "Meshd-Api-Version: 1\r\nOrigin: http://evil.example\r\n"
	    "Connection: close\r\n\r\n";
	static const char referer[] = "POST /localapi/v0/down HTTP/1.1\r\nHost: x\r\n"
	    "Meshd-Api-Version: 1\r\nReferer: http://evil.example/\r\n"
	    "Content-Length: 0\r\nConnection: close\r\n\r\n";

	raw_exchange(h, origin, sizeof origin - 1, buf, sizeof buf);
	assert_non_null(strstr(buf, "HTTP/1.1 403"));
	raw_exchange(h, referer, sizeof referer - 1, buf, sizeof buf);
	assert_non_null(strstr(buf, "HTTP/1.1 403"));
	assert_int_equal(get_calls(h), 0);
}

/* --- tests: permissions ------------------------------------------------- */

static void
test_write_needs_root(void **state)
{
	struct harness *h = *state;
	struct lapi_response r;

	fake_uid = 1000;
	assert_int_equal(call(h, "POST", LAPI_PREFIX "down", NULL, &r), 0);
	assert_int_equal(r.status, 403);
	assert_error_has(&r, "requires root");
	lapi_response_clear(&r);
	assert_int_equal(call(h, "POST", LAPI_PREFIX "up", "{}", &r), 0);
	assert_int_equal(r.status, 403);
	lapi_response_clear(&r);
	assert_int_equal(get_calls(h), 0);

	/* Reads stay open, and ping is a read, as in tailscaled. */
	assert_int_equal(call(h, "GET", LAPI_PREFIX "status", NULL, &r), 0);
	assert_int_equal(r.status, 200);
	lapi_response_clear(&r);
	assert_int_equal(call(h, "POST", LAPI_PREFIX "ping?ip=100.64.0.2&type=disco",
	    NULL, &r), 0);
	assert_int_equal(r.status, 200);
	lapi_response_clear(&r);
	pthread_mutex_lock(&h->mu);
	assert_int_equal(h->last_uid, 1000);
	assert_false(h->last_can_write);
	assert_string_equal(h->last_query, "100.64.0.2");
	pthread_mutex_unlock(&h->mu);

	fake_uid = 0;
	assert_int_equal(call(h, "POST", LAPI_PREFIX "down", NULL, &r), 0);
	assert_int_equal(r.status, 204);
	lapi_response_clear(&r);
	pthread_mutex_lock(&h->mu);
	assert_int_equal(h->last_uid, 0);
	assert_true(h->last_can_write);
	pthread_mutex_unlock(&h->mu);
}

static void
test_real_peercred(void **state)
{
	struct harness *h = calloc(1, sizeof *h);
	struct lapi_server_config cfg = { .handlers = &handlers, .ctx = h };
	struct lapi_response r;
	char sock[160];

	/* The default check (SO_PEERCRED) sees us as root. */
	(void)state;
	assert_non_null(h);
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	snprintf(h->dir, sizeof h->dir, "/tmp/meshd-test-lapi-XXXXXX");
	assert_non_null(mkdtemp(h->dir));
	snprintf(sock, sizeof sock, "%s/s", h->dir);
	memcpy(h->sock, sock, sizeof sock);
	cfg.socket_path = h->sock;
	h->base = event_base_new();
	assert_int_equal(pipe2(h->ctl, O_NONBLOCK | O_CLOEXEC), 0);
	h->ctl_ev = event_new(h->base, h->ctl[0], EV_READ | EV_PERSIST, ctl_cb, h);
	event_add(h->ctl_ev, NULL);
	h->timer = evtimer_new(h->base, timer_cb, h);
	assert_int_equal(lapi_server_new(h->base, &cfg, &h->srv, NULL), 0);
	assert_int_equal(pthread_create(&h->thr, NULL, loop_main, h), 0);

	assert_int_equal(call(h, "POST", LAPI_PREFIX "down", NULL, &r), 0);
	assert_int_equal(r.status, 204);
	lapi_response_clear(&r);
	pthread_mutex_lock(&h->mu);
	assert_int_equal(h->last_uid, geteuid());
	assert_true(h->last_can_write);
	pthread_mutex_unlock(&h->mu);
	{
		void *s = h;

		teardown(&s);
	}
}

/* --- tests: bodies and queries ------------------------------------------ */

static void
test_body_and_query(void **state)
{
	struct harness *h = *state;
	struct lapi_response r;
	static const char body[] = "{\"AuthKey\":\"tskey-x\",\"Reset\":true}";

	set_up_mode(h, UP_ECHO);
	assert_int_equal(call(h, "POST", LAPI_PREFIX "up", body, &r), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, sizeof body - 1);
	assert_memory_equal(r.body, body, sizeof body - 1);
	lapi_response_clear(&r);
	pthread_mutex_lock(&h->mu);
	assert_string_equal(h->last_body, body);
	assert_int_equal(h->last_body_len, sizeof body - 1);
	pthread_mutex_unlock(&h->mu);

	/* Query values are decoded. */
	assert_int_equal(call(h, "POST", LAPI_PREFIX "ping?ip=fd7a%3A115c%3Aa1e0%3A%3A2"
	    "&type=disco", NULL, &r), 0);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"IP\":\"fd7a:115c:a1e0::2\""));
	lapi_response_clear(&r);
	assert_int_equal(call(h, "POST", LAPI_PREFIX "ping", NULL, &r), 0);
	assert_int_equal(r.status, 400);
	assert_error_has(&r, "missing 'ip'");
	lapi_response_clear(&r);
}

static void
test_body_cap(void **state)
{
	struct harness *h = *state;
	size_t big = LAPI_MAX_BODY + 1, ok = LAPI_MAX_BODY - 4096;
	char *body = malloc(big + 1);
	struct lapi_response r;
	unsigned before;

	assert_non_null(body);
	memset(body, 'a', big);
	body[big] = '\0';
	set_up_mode(h, UP_ECHO);
	before = get_calls(h);
	assert_int_equal(call(h, "POST", LAPI_PREFIX "up", body, &r), 0);
	assert_int_equal(r.status, 413);
	lapi_response_clear(&r);
	assert_int_equal(get_calls(h), before);

	body[ok] = '\0';
	assert_int_equal(call(h, "POST", LAPI_PREFIX "up", body, &r), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, ok);
	lapi_response_clear(&r);
	free(body);

	/* A Content-Length over the cap is refused before any body arrives. */
	{
		char buf[4096];
		static const char hdr[] = "POST /localapi/v0/up HTTP/1.1\r\nHost: x\r\n"
		    "Meshd-Api-Version: 1\r\nContent-Length: 999999999\r\n\r\n";

		raw_exchange(h, hdr, sizeof hdr - 1, buf, sizeof buf);
		assert_non_null(strstr(buf, "HTTP/1.1 413"));
	}
}

static void
test_header_cap(void **state)
{
	struct harness *h = *state;
	size_t n = LAPI_MAX_HEADERS + 1024;
	char *req = malloc(n + 256), buf[4096];
	struct lapi_response r;
	int len;

	assert_non_null(req);
	len = snprintf(req, 256, "GET /localapi/v0/status HTTP/1.1\r\nHost: x\r\n"
	    "Meshd-Api-Version: 1\r\nX-Big: ");
	memset(req + len, 'b', n);
	memcpy(req + len + n, "\r\n\r\n", 4);
	raw_exchange(h, req, (size_t)len + n + 4, buf, sizeof buf);
	free(req);
	assert_true(buf[0] == '\0' || strstr(buf, "HTTP/1.1 4") != NULL);
	assert_null(strstr(buf, "HTTP/1.1 200"));
	/* Still serving. */
	assert_int_equal(call(h, "GET", LAPI_PREFIX "status", NULL, &r), 0);
	assert_int_equal(r.status, 200);
	lapi_response_clear(&r);
}

/* --- tests: deferred and streamed replies ------------------------------- */

static void
test_deferred_reply(void **state)
{
	struct harness *h = *state;
	struct lapi_response r;
	struct timespec t0, t1;
	long ms;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(call(h, "GET", LAPI_PREFIX "whois?addr=100.64.0.2", NULL, &r),
	    0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "{\"late\":true}");
	lapi_response_clear(&r);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms >= 90);
	assert_int_equal(get_cancels(h), 0);
	assert_true(nothing_pending(h));
}

struct stream_seen {
	struct harness *h;
	int lines;
	char first[256];
	char last[256];
};

static void
finish_stream(struct harness *h, void *arg)
{
	struct lapi_notify n = { .state = "Running" };
	char *line = lapi_notify_json(&n);

	(void)arg;
	assert_non_null(h->held);
	assert_int_equal(lapi_reply_stream_write(h->held, line, strlen(line)), 0);
	lapi_reply_stream_end(h->held);
	h->held = NULL;
	free(line);
}

static int
on_stream_line(void *arg, const char *line, size_t len)
{
	struct stream_seen *s = arg;

	assert_int_equal(strlen(line), len);
	if (s->lines++ == 0) {
		snprintf(s->first, sizeof s->first, "%s", line);
		/* The final line is only sent once we have seen the first. */
		run_in_loop(s->h, finish_stream, NULL);
	}
	snprintf(s->last, sizeof s->last, "%s", line);
	return 0;
}

static void
test_stream_incremental(void **state)
{
	struct harness *h = *state;
	struct stream_seen seen = { .h = h };
	struct lapi_call c = { .method = "POST", .path = LAPI_PREFIX "up",
	    .body = "{}", .body_len = 2, .timeout_ms = 5000,
	    .on_line = on_stream_line, .arg = &seen };
	struct lapi_response r;
	char *cause = NULL;

	set_up_mode(h, UP_STREAM);
	assert_int_equal(lapi_client_call(h->sock, &c, &r, &cause), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.content_type, LAPI_CONTENT_NDJSON);
	assert_int_equal(seen.lines, 2);
	assert_string_equal(seen.first, "{\"BrowseToURL\":\"http://ctl/register/abc\"}");
	assert_string_equal(seen.last, "{\"State\":\"Running\"}");
	lapi_response_clear(&r);
	assert_int_equal(get_cancels(h), 0);
	assert_true(nothing_pending(h));
}

static void
test_client_leaves_pending(void **state)
{
	struct harness *h = *state;
	struct lapi_call c = { .method = "POST", .path = LAPI_PREFIX "up",
	    .body = "{}", .body_len = 2, .timeout_ms = 200 };
	struct lapi_response r;
	char *cause = NULL;

	/* ^C on a waiting `up`: the daemon must hear of it. */
	set_up_mode(h, UP_HOLD);
	assert_int_equal(lapi_client_call(h->sock, &c, &r, &cause), -ETIMEDOUT);
	free(cause);
	assert_true(eventually(h, one_cancel, 3000));
	assert_true(eventually(h, nothing_pending, 3000));
	assert_true(eventually(h, no_connections, 3000));

	/* The cancel callback may answer the reply itself. */
	set_up_mode(h, UP_HOLD_FINISH_IN_CANCEL);
	cause = NULL;
	assert_int_equal(lapi_client_call(h->sock, &c, &r, &cause), -ETIMEDOUT);
	free(cause);
	for (int i = 0; i < 300 && get_cancels(h) < 2; i++)
		usleep(10000);
	assert_int_equal(get_cancels(h), 2);
	assert_true(eventually(h, nothing_pending, 3000));
}

static int
stop_after_two(void *arg, const char *line, size_t len)
{
	int *n = arg;

	(void)line;
	(void)len;
	return ++*n >= 2;
}

static bool
stream_failed_or_cancelled(struct harness *h)
{
	return get_cancels(h) == 1;
}

static void
test_stream_client_leaves(void **state)
{
	struct harness *h = *state;
	int n = 0;
	struct lapi_call c = { .method = "GET", .path = LAPI_PREFIX "watch-ipn-bus",
	    .timeout_ms = 5000, .on_line = stop_after_two, .arg = &n };
	struct lapi_response r;
	char *cause = NULL;

	assert_int_equal(lapi_client_call(h->sock, &c, &r, &cause), -ECANCELED);
	free(cause);
	assert_int_equal(n, 2);
	assert_true(eventually(h, stream_failed_or_cancelled, 3000));
	assert_true(eventually(h, nothing_pending, 3000));
}

static void
test_abandoned_reply(void **state)
{
	struct harness *h = *state;
	struct lapi_response r;

	set_up_mode(h, UP_ABANDON);
	assert_int_equal(call(h, "POST", LAPI_PREFIX "up", "{}", &r), 0);
	assert_int_equal(r.status, 500);
	assert_error_has(&r, "abandoned");
	lapi_response_clear(&r);
	assert_true(nothing_pending(h));
}

struct bg_call {
	const char *sock;
	int ret;
	long status;
};

static void *
bg_up(void *arg)
{
	struct bg_call *b = arg;
	struct lapi_call c = { .method = "POST", .path = LAPI_PREFIX "up",
	    .body = "{}", .body_len = 2, .timeout_ms = 5000 };
	struct lapi_response r;
	char *cause = NULL;

	b->ret = lapi_client_call(b->sock, &c, &r, &cause);
	b->status = r.status;
	free(cause);
	if (b->ret == 0)
		lapi_response_clear(&r);
	return NULL;
}

static bool
one_held(struct harness *h)
{
	return get_calls(h) == 1;
}

static void
test_server_free_cancels(void **state)
{
	struct harness *h = *state;
	struct bg_call b = { .sock = h->sock };
	struct stat st;
	pthread_t t;

	set_up_mode(h, UP_HOLD);
	assert_int_equal(pthread_create(&t, NULL, bg_up, &b), 0);
	assert_true(eventually(h, one_held, 3000));
	assert_int_equal(stats(h).pending, 1);
	harness_stop_loop(h);
	lapi_server_free(h->srv);
	h->srv = NULL;
	assert_int_equal(h->cancels, 1);
	assert_null(h->held);
	/* The socket file goes with the server. */
	assert_int_equal(stat(h->sock, &st), -1);
	pthread_join(t, NULL);
	assert_true(b.ret != 0 || b.status == 503);
}

/* --- tests: connections ------------------------------------------------- */

struct hammer {
	const char *sock;
	int ok;
};

static void *
hammer_main(void *arg)
{
	struct hammer *hm = arg;

	for (int i = 0; i < 20; i++) {
		struct lapi_call c = { .method = "GET", .path = LAPI_PREFIX "status",
		    .timeout_ms = 20000 };
		struct lapi_response r;
		char *cause = NULL;

		if (lapi_client_call(hm->sock, &c, &r, &cause) == 0 && r.status == 200)
			hm->ok++;
		free(cause);
		lapi_response_clear(&r);
	}
	return NULL;
}

static void
test_many_connections(void **state)
{
	struct harness *h = *state;
	enum { NT = 24, IDLE = LAPI_MAX_CONNS + 16 };
	struct hammer hm[NT];
	pthread_t t[NT];
	int idle[IDLE];
	struct lapi_response r;
	struct lapi_server_stats st;

	/* More idle connections than the cap: the rest wait in the backlog. */
	for (int i = 0; i < IDLE; i++) {
		idle[i] = raw_connect(h->sock);
		assert_true(idle[i] >= 0);
	}
	for (int i = 0; i < 300 && stats(h).connections < LAPI_MAX_CONNS; i++)
		usleep(10000);
	usleep(50000);
	st = stats(h);
	assert_int_equal(st.connections, LAPI_MAX_CONNS);

	for (int i = 0; i < NT; i++) {
		hm[i] = (struct hammer){ .sock = h->sock };
		assert_int_equal(pthread_create(&t[i], NULL, hammer_main, &hm[i]), 0);
	}
	for (int i = 0; i < NT; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(hm[i].ok, 20);
	}
	assert_true(stats(h).connections <= LAPI_MAX_CONNS);
	for (int i = 0; i < IDLE; i++)
		close(idle[i]);
	/* Idle connections time out (1 s here); the server is whole after. */
	assert_true(eventually(h, no_connections, 5000));
	assert_int_equal(call(h, "GET", LAPI_PREFIX "status", NULL, &r), 0);
	assert_int_equal(r.status, 200);
	lapi_response_clear(&r);
	assert_int_equal(get_calls(h), NT * 20 + 1);
}

static void
test_pending_cap(void **state)
{
	struct harness *h = *state;
	enum { N = LAPI_MAX_PENDING + 3 };
	struct bg_call b[N];
	pthread_t t[N];
	int busy = 0;

	set_up_mode(h, UP_HOLD);
	for (int i = 0; i < N; i++) {
		b[i] = (struct bg_call){ .sock = h->sock };
		assert_int_equal(pthread_create(&t[i], NULL, bg_up, &b[i]), 0);
	}
	/* The first LAPI_MAX_PENDING are held; the rest get 503 at once. */
	for (int i = 0; i < 500 && (stats(h).pending < LAPI_MAX_PENDING ||
	    stats(h).refused < 3); i++)
		usleep(10000);
	assert_int_equal(stats(h).pending, LAPI_MAX_PENDING);
	assert_int_equal(stats(h).refused, 3);
	harness_stop_loop(h);
	lapi_server_free(h->srv);
	h->srv = NULL;
	/* Held or refused, nobody got anything but a 503 or a closed socket. */
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		if (b[i].ret != 0 || b[i].status == 503)
			busy++;
	}
	assert_int_equal(busy, N);
	assert_int_equal(h->cancels, LAPI_MAX_PENDING);
}

static void
test_keepalive_and_pipelining(void **state)
{
	struct harness *h = *state;
	char buf[8192];
	static const char two[] =
	    "GET /localapi/v0/version HTTP/1.1\r\nHost: x\r\nMeshd-Api-Version: 1\r\n\r\n"
	    "GET /localapi/v0/status HTTP/1.1\r\nHost: x\r\nMeshd-Api-Version: 1\r\n"
	    "Connection: close\r\n\r\n";
	char *second;

	raw_exchange(h, two, sizeof two - 1, buf, sizeof buf);
	second = strstr(buf + 1, "HTTP/1.1 200");
	assert_non_null(strstr(buf, "HTTP/1.1 200"));
	assert_non_null(second);
	assert_non_null(strstr(second, "BackendState"));
}

/* --- tests: malformed input --------------------------------------------- */

static void
test_malformed(void **state)
{
	struct harness *h = *state;
	static const char *const reqs[] = {
		"",
		"\r\n\r\n",
		"garbage\r\n\r\n",
		"GET\r\n\r\n",
		"GET / HTTP/9.9\r\n\r\n",
		"FOO /localapi/v0/status HTTP/1.1\r\nMeshd-Api-Version: 1\r\n\r\n",
		"GET /localapi/v0/status HTTP/1.1\r\nBad Header\r\n\r\n",
		"GET /localapi/v0/status?%zz=%%% HTTP/1.1\r\nMeshd-Api-Version: 1\r\n\r\n",
		"GET http://x/localapi/v0/status HTTP/1.1\r\nMeshd-Api-Version: 1\r\n\r\n",
		"GET * HTTP/1.1\r\nMeshd-Api-Version: 1\r\n\r\n",
		"POST /localapi/v0/up HTTP/1.1\r\nMeshd-Api-Version: 1\r\n"
		    "Content-Length: -5\r\n\r\n",
		"POST /localapi/v0/up HTTP/1.1\r\nMeshd-Api-Version: 1\r\n"
		    "Content-Length: abc\r\n\r\n",
		"POST /localapi/v0/up HTTP/1.1\r\nMeshd-Api-Version: 1\r\n"
		    "Transfer-Encoding: chunked\r\n\r\nzz\r\n",
		"POST /localapi/v0/up HTTP/1.1\r\nMeshd-Api-Version: 1\r\n"
		    "Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
		"POST /localapi/v0/up HTTP/1.1\r\nMeshd-Api-Version: 1\r\n"
		    "Content-Length: 10\r\n\r\nabc",
		"GET /localapi/v0/../../etc/passwd HTTP/1.1\r\nMeshd-Api-Version: 1\r\n\r\n",
		"GET /localapi/v0/status HTTP/1.1\r\n Meshd-Api-Version: 1\r\n\r\n",
	};
	char buf[8192];
	struct lapi_response r;

	set_up_mode(h, UP_ECHO);
	for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++)
		raw_exchange(h, reqs[i], strlen(reqs[i]), buf, sizeof buf);
	/* NUL bytes and binary junk. */
	{
		char junk[512];

		for (size_t i = 0; i < sizeof junk; i++)
			junk[i] = (char)(i * 37 + 11);
		raw_exchange(h, junk, sizeof junk, buf, sizeof buf);
		memcpy(junk, "GET /localapi/v0/status\0 HTTP/1.1\r\n\r\n", 38);
		raw_exchange(h, junk, 38, buf, sizeof buf);
	}
	assert_int_equal(call(h, "GET", LAPI_PREFIX "status", NULL, &r), 0);
	assert_int_equal(r.status, 200);
	lapi_response_clear(&r);
	assert_true(eventually(h, nothing_pending, 1000));
}

/* --- tests: the socket -------------------------------------------------- */

static void
test_socket_modes(void **state)
{
	struct harness *h = *state;
	struct stat st;
	char dir[200];

	assert_int_equal(stat(h->sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0666);
	snprintf(dir, sizeof dir, "%s/run", h->dir);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0755);
}

static void
test_socket_conflicts(void **state)
{
	struct harness *h = *state;
	struct lapi_server_config cfg = { .handlers = &handlers, .ctx = h };
	struct event_base *base = event_base_new();
	struct lapi_server *srv = NULL;
	char *cause = NULL, path[200];
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, ret;

	/* A live meshd on the path: refuse. */
	cfg.socket_path = h->sock;
	ret = lapi_server_new(base, &cfg, &srv, &cause);
	assert_int_equal(ret, -EADDRINUSE);
	assert_non_null(strstr(cause, "already serving"));
	free(cause);
	assert_null(srv);

	/* Not a socket: refuse, and leave the file alone. */
	snprintf(path, sizeof path, "%s/plain", h->dir);
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	cfg.socket_path = path;
	ret = lapi_server_new(base, &cfg, &srv, &cause);
	assert_int_equal(ret, -EEXIST);
	free(cause);
	assert_int_equal(access(path, F_OK), 0);
	unlink(path);

	/* A stale socket (nobody listening): replaced. */
	snprintf(path, sizeof path, "%s/stale.sock", h->dir);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(strlen(path) < sizeof sun.sun_path);
	memcpy(sun.sun_path, path, strlen(path) + 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
	close(fd);
	ret = lapi_server_new(base, &cfg, &srv, &cause);
	assert_int_equal(ret, 0);
	assert_null(cause);
	lapi_server_free(srv);
	assert_int_equal(access(path, F_OK), -1);

	/* Too long for sun_path. */
	memset(path, 'x', sizeof path - 1);
	path[0] = '/';
	path[sizeof path - 1] = '\0';
	ret = lapi_server_new(base, &cfg, &srv, &cause);
	assert_int_equal(ret, -ENAMETOOLONG);
	free(cause);
	event_base_free(base);
}

static void
test_client_errors(void **state)
{
	struct harness *h = *state;
	struct lapi_call c = { .method = "GET", .path = LAPI_PREFIX "status" };
	struct lapi_response r;
	char *cause = NULL, path[200];

	snprintf(path, sizeof path, "%s/nobody.sock", h->dir);
	assert_int_equal(lapi_client_call(path, &c, &r, &cause), -ECONNREFUSED);
	assert_non_null(cause);
	assert_non_null(strstr(cause, "failed to connect to meshd at"));
	assert_non_null(strstr(cause, "is meshd running?"));
	free(cause);

	c.path = "no-slash";
	assert_int_equal(lapi_client_call(h->sock, &c, &r, &cause), -EINVAL);
	free(cause);
}

/* --- tests: the JSON contract ------------------------------------------- */

static void
test_up_request_roundtrip(void **state)
{
	struct lapi_up_request up = { 0 }, back;
	char *json, *cause = NULL;
	char *routes[] = { "10.0.0.0/24", "0.0.0.0/0" };

	(void)state;
	up.auth_key = strdup("tskey-auth-secret");
	up.force_reauth = true;
	up.timeout_sec = 2.5;
	up.prefs.prefs.control_url = strdup("http://10.0.0.1:8080");
	up.prefs.prefs.route_all = true;
	up.prefs.prefs.advertise_routes = routes;
	up.prefs.prefs.n_advertise_routes = 2;
	up.prefs.set = LAPI_PREF_CONTROL_URL | LAPI_PREF_ROUTE_ALL |
	    LAPI_PREF_ADVERTISE_ROUTES;
	json = lapi_up_request_json(&up);
	assert_non_null(json);
	assert_non_null(strstr(json, "\"ControlURLSet\":true"));
	assert_null(strstr(json, "HostnameSet"));
	assert_non_null(strstr(json, "http://10.0.0.1:8080"));	/* no "\/" */
	up.prefs.prefs.advertise_routes = NULL;
	up.prefs.prefs.n_advertise_routes = 0;
	lapi_up_request_clear(&up);

	assert_int_equal(lapi_up_request_parse(json, strlen(json), &back, &cause), 0);
	assert_null(cause);
	assert_string_equal(back.auth_key, "tskey-auth-secret");
	assert_true(back.force_reauth);
	assert_false(back.reset);
	assert_true(back.timeout_sec > 2.49 && back.timeout_sec < 2.51);
	assert_int_equal(back.prefs.set, LAPI_PREF_CONTROL_URL | LAPI_PREF_ROUTE_ALL |
	    LAPI_PREF_ADVERTISE_ROUTES);
	assert_string_equal(back.prefs.prefs.control_url, "http://10.0.0.1:8080");
	assert_true(back.prefs.prefs.route_all);
	assert_int_equal(back.prefs.prefs.n_advertise_routes, 2);
	assert_string_equal(back.prefs.prefs.advertise_routes[1], "0.0.0.0/0");
	lapi_up_request_clear(&back);
	free(json);
}

static void
test_decoders_reject(void **state)
{
	static const struct {
		const char *body;
		const char *why;
	} bad[] = {
		{ "", "empty" },
		{ "[]", "not a JSON object" },
		{ "42", "not a JSON object" },
		{ "{", "not valid JSON" },
		{ "{} x", "trailing" },
		{ "{\"AuthKey\":5}", "AuthKey" },
		{ "{\"ForceReauth\":\"yes\"}", "ForceReauth" },
		{ "{\"Timeout\":-1}", "Timeout" },
		{ "{\"Timeout\":\"1s\"}", "Timeout" },
		{ "{\"Prefs\":[]}", "Prefs" },
		{ "{\"Prefs\":{\"HostnameSet\":true,\"Hostname\":1}}", "Hostname" },
		{ "{\"Prefs\":{\"HostnameSet\":\"x\"}}", "HostnameSet" },
		{ "{\"Prefs\":{\"AdvertiseRoutesSet\":true,\"AdvertiseRoutes\":[1]}}",
		    "AdvertiseRoutes" },
		{ "{\"Prefs\":{\"NetfilterModeSet\":true,\"NetfilterMode\":7}}",
		    "NetfilterMode" },
		{ "{\"AuthKey\":\"a\\u0000b\"}", "NUL" },
		{ "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
		    "not valid JSON" },
	};
	struct lapi_up_request up;
	char *cause;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cause = NULL;
		assert_int_equal(lapi_up_request_parse(bad[i].body, strlen(bad[i].body),
		    &up, &cause), -EINVAL);
		assert_non_null(cause);
		if (strstr(cause, bad[i].why) == NULL)
			fail_msg("%zu: \"%s\" lacks \"%s\"", i, cause, bad[i].why);
		/* Never a value from the body in the message. */
		assert_null(strstr(cause, "yes"));
		free(cause);
		assert_null(up.auth_key);
	}
	/* A NUL byte in the body itself. */
	cause = NULL;
	assert_int_equal(lapi_up_request_parse("{}\0{}", 5, &up, &cause), -EINVAL);
	free(cause);
	/* Unknown members and nulls are fine. */
	assert_int_equal(lapi_up_request_parse("{\"New\":1,\"AuthKey\":null}", 24,
	    &up, NULL), 0);
	assert_null(up.auth_key);
	lapi_up_request_clear(&up);
}

static void
test_prefs_codec(void **state)
{
	struct lapi_prefs p, q;
	struct lapi_masked_prefs mp;
	char *json, *cause = NULL;

	(void)state;
	lapi_prefs_init_default(&p);
	assert_true(p.corp_dns);
	assert_int_equal(p.netfilter_mode, LAPI_NETFILTER_ON);
	p.hostname = strdup("h1");
	p.want_running = true;
	json = lapi_prefs_json(&p);
	assert_non_null(strstr(json, "\"Hostname\":\"h1\""));
	assert_non_null(strstr(json, "\"CorpDNS\":true"));
	assert_non_null(strstr(json, "\"AdvertiseRoutes\":[]"));
	assert_null(strstr(json, "Set\""));
	assert_int_equal(lapi_prefs_parse(json, strlen(json), &q, &cause), 0);
	assert_string_equal(q.hostname, "h1");
	assert_true(q.want_running);
	assert_int_equal(q.netfilter_mode, LAPI_NETFILTER_ON);
	free(json);

	/* PATCH semantics: only what is marked Set counts. */
	json = strdup("{\"Hostname\":\"h2\",\"RouteAll\":true,\"RouteAllSet\":true,"
	    "\"AdvertiseRoutes\":[\"10.1.0.0/16\"],\"AdvertiseRoutesSet\":true}");
	assert_int_equal(lapi_masked_prefs_parse(json, strlen(json), &mp, &cause), 0);
	assert_int_equal(mp.set, LAPI_PREF_ROUTE_ALL | LAPI_PREF_ADVERTISE_ROUTES);
	assert_null(mp.prefs.hostname);
	assert_int_equal(lapi_prefs_apply(&q, &mp.prefs, mp.set), 0);
	assert_string_equal(q.hostname, "h1");
	assert_true(q.route_all);
	assert_int_equal(q.n_advertise_routes, 1);
	assert_string_equal(q.advertise_routes[0], "10.1.0.0/16");
	free(json);
	json = lapi_masked_prefs_json(&mp);
	assert_string_equal(json, "{\"RouteAll\":true,\"RouteAllSet\":true,"
	    "\"AdvertiseRoutes\":[\"10.1.0.0/16\"],\"AdvertiseRoutesSet\":true}");
	free(json);
	lapi_prefs_clear(&mp.prefs);
	lapi_prefs_clear(&p);
	lapi_prefs_clear(&q);
}

static void
test_status_encoder(void **state)
{
	static const char *const ips[] = { "100.64.0.2", "fd7a:115c:a1e0::2" };
	static const char *const routes[] = { "10.88.0.0/24" };
	static const char *const health[] = { "not connected to home DERP" };
	struct lapi_peer_status peer = {
		.id = "2", .node_id = 2, .public_key = "nodekey:ab", .host_name = "p",
		.dns_name = "p.ts.test.", .os = "linux", .user_id = 7,
		.tailscale_ips = { ips, 2 }, .primary_routes = { routes, 1 },
		.relay = "headscale", .online = true, .expired = true,
		.has_key_expiry = true, .key_expiry = { 1767225600, 500000000 },
		.last_seen = { 1767225600, 0 },
	};
	struct lapi_user_profile u = { .id = 7, .login_name = "user2@test.no" };
	struct lapi_status st = {
		.backend_state = "Running", .peers = &peer, .n_peers = 1,
		.users = &u, .n_users = 1, .health = { health, 1 },
		.magic_dns_suffix = "ts.test", .has_tailnet = true,
		.magic_dns_enabled = true,
	};
	char *json;

	(void)state;
	json = lapi_status_json(&st);
	assert_non_null(json);
	assert_non_null(strstr(json, "\"Version\":\"" MESHD_VERSION "\""));
	assert_non_null(strstr(json, "\"Self\":null"));
	assert_non_null(strstr(json, "\"Peer\":{\"nodekey:ab\":{\"ID\":\"2\""));
	assert_non_null(strstr(json, "\"PrimaryRoutes\":[\"10.88.0.0/24\"]"));
	assert_null(strstr(json, "\"AllowedIPs\""));
	assert_non_null(strstr(json, "\"Expired\":true"));
	assert_non_null(strstr(json, "\"KeyExpiry\":\"2026-01-01T00:00:00.5Z\""));
	assert_non_null(strstr(json, "\"LastSeen\":\"2026-01-01T00:00:00Z\""));
	assert_non_null(strstr(json, "\"Created\":\"0001-01-01T00:00:00Z\""));
	assert_non_null(strstr(json, "\"User\":{\"7\":{\"ID\":7,\"LoginName\":"
	    "\"user2@test.no\""));
	assert_non_null(strstr(json, "\"Health\":[\"not connected to home DERP\"]"));
	assert_non_null(strstr(json, "\"CurrentTailnet\":{\"Name\":\"\","
	    "\"MagicDNSSuffix\":\"ts.test\",\"MagicDNSEnabled\":true}"));
	free(json);
}

static void
test_small_encoders(void **state)
{
	struct lapi_notify n = { .browse_to_url = "http://h/register/x\"y" };
	struct lapi_ping_result pr = { .ip = "1.2.3.4", .derp_region_id = 999,
	    .derp_region_code = "headscale", .is_local_ip = true };
	struct lapi_derp_region rg = { .id = 999, .code = "hs", .name = "HS",
	    .latency_ns = 1500000 };
	struct lapi_netcheck nc = { .udp = true, .mapping_varies_by_dest_ip =
	    LAPI_UNKNOWN, .preferred_derp = 999, .regions = &rg, .n_regions = 1 };
	static const char *const res[] = { "10.0.0.53" };
	struct lapi_dns_route route = { .suffix = "corp.test", .resolvers = { res, 1 } };
	struct lapi_dns_status ds = { .tailscale_dns = true, .has_tailnet = true,
	    .resolvers = { res, 1 }, .routes = &route, .n_routes = 1 };
	char *s;

	(void)state;
	s = lapi_notify_json(&n);
	assert_string_equal(s, "{\"BrowseToURL\":\"http://h/register/x\\\"y\"}\n");
	free(s);
	s = lapi_error_json("a \"quoted\"\nmessage");
	assert_string_equal(s, "{\"error\":\"a \\\"quoted\\\"\\nmessage\"}");
	free(s);
	s = lapi_ping_result_json(&pr);
	assert_non_null(strstr(s, "\"DERPRegionID\":999"));
	assert_non_null(strstr(s, "\"IsLocalIP\":true"));
	assert_null(strstr(s, "PeerAPIPort"));
	free(s);
	s = lapi_netcheck_json(&nc);
	assert_non_null(strstr(s, "\"MappingVariesByDestIP\":null"));
	assert_non_null(strstr(s, "\"RegionLatency\":{\"999\":1500000}"));
	assert_non_null(strstr(s, "\"Regions\":{\"999\":{\"RegionID\":999"));
	free(s);
	s = lapi_dns_status_json(&ds);
	assert_non_null(strstr(s, "\"SplitDNSRoutes\":{\"corp.test\":[{\"Addr\":"
	    "\"10.0.0.53\"}]}"));
	assert_null(strstr(s, "SystemDNS"));
	free(s);
}

static void
test_times(void **state)
{
	static const struct {
		struct lapi_time t;
		const char *s;
	} cases[] = {
		{ { 0, 0 }, "0001-01-01T00:00:00Z" },
		{ { 1, 0 }, "1970-01-01T00:00:01Z" },
		{ { 1767225600, 120000000 }, "2026-01-01T00:00:00.12Z" },
		{ { 1767225600, 1 }, "2026-01-01T00:00:00.000000001Z" },
	};
	struct lapi_time t;
	char buf[40];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		lapi_time_format(cases[i].t, buf);
		assert_string_equal(buf, cases[i].s);
		assert_int_equal(lapi_time_parse(buf, &t), 0);
		assert_int_equal(t.sec, cases[i].t.sec);
		assert_int_equal(t.nsec, cases[i].t.nsec);
	}
	assert_int_equal(lapi_time_parse("2026-01-01T01:00:00+01:00", &t), 0);
	assert_int_equal(t.sec, 1767225600);
	assert_int_equal(lapi_time_parse("2026-01-01T00:00:00", &t), -EINVAL);
	assert_int_equal(lapi_time_parse("2026-13-01T00:00:00Z", &t), -EINVAL);
	assert_int_equal(lapi_time_parse("2026-01-01T00:00:00.Z", &t), -EINVAL);
	assert_int_equal(lapi_time_parse("garbage", &t), -EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_status_route, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_found_and_methods, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_version_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_browser_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_needs_root, setup, teardown),
		cmocka_unit_test(test_real_peercred),
		cmocka_unit_test_setup_teardown(test_body_and_query, setup, teardown),
		cmocka_unit_test_setup_teardown(test_body_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deferred_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_incremental, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_client_leaves_pending, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_stream_client_leaves, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_abandoned_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_free_cancels, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_many_connections, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pending_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keepalive_and_pipelining, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_conflicts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_errors, setup, teardown),
		cmocka_unit_test(test_up_request_roundtrip),
		cmocka_unit_test(test_decoders_reject),
		cmocka_unit_test(test_prefs_codec),
		cmocka_unit_test(test_status_encoder),
		cmocka_unit_test(test_small_encoders),
		cmocka_unit_test(test_times),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("localapi", tests, NULL, NULL);
}

// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * The local API's untrusted inputs, chosen by the first byte:
 *
 *   0  raw bytes as an HTTP request, written to a real server on a unix
 *      socket (evhttp parses; our transport rules and dispatch run), its
 *      loop driven from here until the answer or the connection settles;
 *   1  an up body (lapi_up_request_parse), 2 a PATCH prefs body
 *      (lapi_masked_prefs_parse), 3 a prefs body (lapi_prefs_parse):
 *      whatever parses must encode and parse back to the same encoding
 *      (the encoding is a fixed point);
 *   4  a status document through meshctl's parser and table renderer;
 *   5  a ping result, a whois answer, a netcheck report, a DNS status and
 *      an up event line through meshctl's renderers.
 *
 * Besides "no crash, no leak, no UB": the server never keeps a reply
 * pending once its client is gone, and error messages from the decoders
 * never quote the body (no run of 16 input bytes in them).
 */
#define MESHCTL_NO_MAIN
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "agent/cli/meshctl.c"
#pragma GCC diagnostic pop

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <event2/event.h>

#include "common/log.h"

#define NOW_FOR_FUZZ 1767225600	/* 2026-01-01 */

/* Member names a decoder's message may name (they are ours, not input). */
static const char known_names[] =
	"ControlURLSet RouteAllSet ExitNodeIDSet ExitNodeIPSet "
	"ExitNodeAllowLANAccessSet CorpDNSSet RunSSHSet WantRunningSet "
	"LoggedOutSet ShieldsUpSet AdvertiseTagsSet HostnameSet "
	"AdvertiseRoutesSet NoSNATSet NetfilterModeSet AuthKey ForceReauth "
	"Reset Timeout Prefs";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static struct event_base *fz_base;
static struct lapi_server *fz_srv;
static char fz_dir[64] = "/tmp/meshd-fuzz-lapi-XXXXXX";
static char fz_sock[128];
static struct lapi_reply *fz_held;
static struct event *fz_timer;

/* --- a small daemon ----------------------------------------------------- */

static void
fz_status(void *ctx, const struct lapi_request *req, struct lapi_reply *r)
{
	struct lapi_status st = { .backend_state = "Running",
	    .omit_peers = lapi_request_query(req, "peers") != NULL };
	char *json = lapi_status_json(&st);

	if (json == NULL) {
		lapi_reply_error(r, 500, "out of memory");
		return;
	}
	lapi_reply_json(r, 200, json);
	free(json);
}

static void
fz_cancel(void *arg, struct lapi_reply *r)
{
	if (fz_held == r) {
		fz_held = NULL;
		evtimer_del(fz_timer);
	}
}

static void
fz_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lapi_reply *r = fz_held;

	fz_held = NULL;
	if (r != NULL)
		lapi_reply_stream_end(r);
}

static void
fz_up(void *ctx, const struct lapi_request *req, struct lapi_reply *r)
{
	struct lapi_up_request up;
	struct lapi_notify n = { .browse_to_url = "http://x/register/y" };
	struct timeval tv = { 0, 0 };
	char *cause = NULL, *line;

	if (lapi_up_request_parse(req->body, req->body_len, &up, &cause) != 0) {
		lapi_reply_error(r, 400, "%s", cause != NULL ? cause : "bad body");
		free(cause);
		return;
	}
	lapi_up_request_clear(&up);
	line = lapi_notify_json(&n);
	if (line != NULL)
		lapi_reply_stream_write(r, line, strlen(line));
	free(line);
	if (fz_held != NULL) {
		lapi_reply_stream_end(r);
		return;
	}
	/* Finished on a later loop pass, or cancelled if the client leaves. */
	lapi_reply_set_cancel(r, fz_cancel, NULL);
	fz_held = r;
	evtimer_add(fz_timer, &tv);
}

static void
fz_prefs_patch(void *ctx, const struct lapi_request *req, struct lapi_reply *r)
{
	struct lapi_masked_prefs mp;
	char *cause = NULL, *json;

	if (lapi_masked_prefs_parse(req->body, req->body_len, &mp, &cause) != 0) {
		lapi_reply_error(r, 400, "%s", cause != NULL ? cause : "bad body");
		free(cause);
		return;
	}
	json = lapi_prefs_json(&mp.prefs);
	lapi_prefs_clear(&mp.prefs);
	lapi_reply_json(r, 200, json != NULL ? json : "{}");
	free(json);
}

static void
fz_ping(void *ctx, const struct lapi_request *req, struct lapi_reply *r)
{
	struct lapi_ping_result pr = { .ip = lapi_request_query(req, "ip"),
	    .node_name = lapi_request_query(req, "type") };
	char *json = lapi_ping_result_json(&pr);

	lapi_reply_json(r, 200, json != NULL ? json : "{}");
	free(json);
}

static void
fz_down(void *ctx, const struct lapi_request *req, struct lapi_reply *r)
{
	lapi_reply_no_content(r);
}

static const struct lapi_handlers fz_handlers = {
	.status = fz_status, .up = fz_up, .prefs_patch = fz_prefs_patch,
	.ping = fz_ping, .down = fz_down,
};

static void
fz_cleanup(void)
{
	lapi_server_free(fz_srv);	/* removes the socket */
	fz_srv = NULL;
	rmdir(fz_dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct lapi_server_config cfg = { .handlers = &fz_handlers };
	char *cause = NULL;

	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_IGN);
	log_init("fuzz", LOG_LVL_ERR - 1);	/* quiet */
	if (mkdtemp(fz_dir) == NULL)
		abort();
	snprintf(fz_sock, sizeof fz_sock, "%s/s", fz_dir);
	fz_base = event_base_new();
	fz_timer = evtimer_new(fz_base, fz_timer_cb, NULL);
	cfg.socket_path = fz_sock;
	if (fz_base == NULL || fz_timer == NULL ||
	    lapi_server_new(fz_base, &cfg, &fz_srv, &cause) != 0)
		abort();
	atexit(fz_cleanup);
	return 0;
}

static void
pump(int rounds)
{
	for (int i = 0; i < rounds; i++)
		event_base_loop(fz_base, EVLOOP_NONBLOCK);
}

static void
fuzz_http(const uint8_t *data, size_t size)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct lapi_server_stats st;
	size_t off = 0;
	char buf[4096];
	int fd;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		abort();
	memcpy(sun.sun_path, fz_sock, strlen(fz_sock) + 1);
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0)
		abort();
	/* Feed the request, letting the server read as we go. */
	for (int spins = 0; off < size && spins < 1000; spins++) {
		ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);

		if (n > 0)
			off += (size_t)n;
		else if (n < 0 && errno != EAGAIN)
			break;
		pump(1);
		while (recv(fd, buf, sizeof buf, 0) > 0)
			;
	}
	/* Let it answer (deferred replies finish a pass later). */
	for (int i = 0; i < 8; i++) {
		pump(1);
		while (recv(fd, buf, sizeof buf, 0) > 0)
			;
	}
	close(fd);
	pump(4);
	/* A reply whose client has gone is never left pending. */
	lapi_server_get_stats(fz_srv, &st);
	if (st.pending != 0 && fz_held == NULL)
		abort();
	if (fz_held != NULL) {
		/* Still waiting on our timer: it must finish on the next passes. */
		pump(4);
		lapi_server_get_stats(fz_srv, &st);
		if (st.pending != 0)
			abort();
	}
}

/* A decoder's message must not echo the input. */
static void
check_cause(const char *cause, const uint8_t *data, size_t size)
{
	size_t cl;

	if (cause == NULL)
		abort();
	cl = strlen(cause);
	if (size < 16 || cl < 16)
		return;
	for (size_t i = 0; i + 16 <= cl; i++) {
		/* Only runs that look like a value: letters and digits. */
		bool word = true;

		for (size_t j = 0; j < 16 && word; j++)
			word = isalnum((unsigned char)cause[i + j]) != 0;
		if (word && memmem(data, size, cause + i, 16) != NULL &&
		    memmem(known_names, sizeof known_names - 1, cause + i, 16) == NULL)
			abort();
	}
}

static void
fuzz_up(const uint8_t *data, size_t size)
{
	struct lapi_up_request up, again;
	char *cause = NULL, *a, *b;

	if (lapi_up_request_parse((const char *)data, size, &up, &cause) != 0) {
		check_cause(cause, data, size);
		free(cause);
		if (up.auth_key != NULL || up.prefs.set != 0)
			abort();	/* left cleared on error */
		return;
	}
	a = lapi_up_request_json(&up);
	lapi_up_request_clear(&up);
	if (a == NULL)
		return;
	if (lapi_up_request_parse(a, strlen(a), &again, NULL) != 0)
		abort();
	b = lapi_up_request_json(&again);
	lapi_up_request_clear(&again);
	if (b == NULL || strcmp(a, b) != 0)
		abort();
	free(a);
	free(b);
}

static void
fuzz_masked(const uint8_t *data, size_t size)
{
	struct lapi_masked_prefs mp, again;
	char *cause = NULL, *a, *b;

	if (lapi_masked_prefs_parse((const char *)data, size, &mp, &cause) != 0) {
		check_cause(cause, data, size);
		free(cause);
		return;
	}
	a = lapi_masked_prefs_json(&mp);
	lapi_prefs_clear(&mp.prefs);
	if (a == NULL)
		return;
	if (lapi_masked_prefs_parse(a, strlen(a), &again, NULL) != 0)
		abort();
	b = lapi_masked_prefs_json(&again);
	if (b == NULL || strcmp(a, b) != 0 || again.set != mp.set)
		abort();
	lapi_prefs_clear(&again.prefs);
	free(a);
	free(b);
}

static void
fuzz_prefs(const uint8_t *data, size_t size)
{
	struct lapi_prefs p, again, copy;
	char *cause = NULL, *a, *b;

	if (lapi_prefs_parse((const char *)data, size, &p, &cause) != 0) {
		check_cause(cause, data, size);
		free(cause);
		return;
	}
	memset(&copy, 0, sizeof copy);
	if (lapi_prefs_apply(&copy, &p, UINT32_MAX) != 0)
		abort();
	a = lapi_prefs_json(&p);
	b = lapi_prefs_json(&copy);
	if (a == NULL || b == NULL || strcmp(a, b) != 0)
		abort();
	free(b);
	if (lapi_prefs_parse(a, strlen(a), &again, NULL) != 0)
		abort();
	b = lapi_prefs_json(&again);
	if (b == NULL || strcmp(a, b) != 0)
		abort();
	lapi_prefs_clear(&p);
	lapi_prefs_clear(&again);
	lapi_prefs_clear(&copy);
	free(a);
	free(b);
}

static void
fuzz_status(const uint8_t *data, size_t size, uint8_t opts)
{
	struct cli_status_opts o = { .self = opts & 1, .peers = opts & 2,
	    .active = opts & 4, .header = opts & 8 };
	struct cli_status st;
	char *out = NULL, ip[64], *cause = NULL;
	size_t len = 0;
	FILE *f;
	bool self;

	if (cli_status_parse((const char *)data, size, &st) != 0)
		return;
	f = open_memstream(&out, &len);
	if (f == NULL)
		abort();
	cli_status_render(&st, &o, f, NOW_FOR_FUZZ);
	fclose(f);
	free(out);
	/* Name lookups never reach DNS here: only IPs and known names. */
	for (size_t i = 0; i < st.n_peers; i++) {
		if (st.peers[i].n_ips > 0 && is_ip(st.peers[i].ips[0])) {
			if (resolve_host(&st, st.peers[i].ips[0], ip, sizeof ip, &self,
			    &cause) != 0)
				abort();
		}
		free(cause);
		cause = NULL;
	}
	cli_status_free(&st);
}

static void
fuzz_renderers(const uint8_t *data, size_t size)
{
	struct cli_ping_opts po = { .count = 10, .until_direct = true };
	struct up_state u;
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	bool pong = false;

	if (f == NULL)
		abort();
	cli_out = cli_err = f;
	cli_ping_render((const char *)data, size, &po, &pong, f);
	cli_whois_render((const char *)data, size, f);
	cli_netcheck_render((const char *)data, size, f);
	cli_dns_status_render((const char *)data, size, true, f);
	u = (struct up_state){ .out = f, .err = f, .json = size & 1 };
	cli_up_event(&u, (const char *)data, size);
	cli_out = cli_err = NULL;
	fclose(f);
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 6) {
	case 0:
		fuzz_http(data + 1, size - 1);
		break;
	case 1:
		fuzz_up(data + 1, size - 1);
		break;
	case 2:
		fuzz_masked(data + 1, size - 1);
		break;
	case 3:
		fuzz_prefs(data + 1, size - 1);
		break;
	case 4:
		if (size >= 2)
			fuzz_status(data + 2, size - 2, data[1]);
		break;
	case 5:
		fuzz_renderers(data + 1, size - 1);
		break;
	}
	return 0;
}

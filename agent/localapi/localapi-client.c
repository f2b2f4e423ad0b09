// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * The client end of the local API: one blocking HTTP request over the unix
 * socket.  libcurl does the HTTP (CURLOPT_UNIX_SOCKET_PATH, chunked
 * decoding, timeouts); libevent 2.1's evhttp client cannot dial a unix
 * socket.  This runs in meshctl and in tests, never on the daemon's loop,
 * so the easy interface is right here (STYLE §21 is about the loop).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "agent/localapi/localapi.h"
#include "common/util.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 5000

struct call_ctx {
	CURL *curl;
	const struct lapi_call *call;
	struct lapi_response *resp;
	char *buf;
	size_t len, cap;
	bool decided;		/* stream or keep, once the status is known */
	bool stream;
	bool stopped;		/* on_line asked to stop */
	bool too_big;
	bool oom;
};

static bool
buf_add(struct call_ctx *c, const char *p, size_t n)
{
	if (c->len + n + 1 > c->cap) {
		size_t cap = c->cap ? c->cap : 4096;
		char *nb;

		while (cap < c->len + n + 1)
			cap *= 2;
		nb = realloc(c->buf, cap);
		if (nb == NULL) {
			c->oom = true;
			return false;
		}
		c->buf = nb;
		c->cap = cap;
	}
	memcpy(c->buf + c->len, p, n);
	c->len += n;
	c->buf[c->len] = '\0';
	return true;
}

/* Hands every complete line in buf to on_line and keeps the rest. */
static bool
deliver_lines(struct call_ctx *c, bool final)
{
	size_t start = 0;

	for (size_t i = 0; i < c->len; i++) {
		size_t n;

		if (c->buf[i] != '\n')
			continue;
		n = i - start;
		if (n > 0 && c->buf[start + n - 1] == '\r')
			n--;
		c->buf[start + n] = '\0';
		if (n > 0 && c->call->on_line(c->call->arg, c->buf + start, n) != 0) {
			c->stopped = true;
			return false;
		}
		start = i + 1;
	}
	if (final && start < c->len) {
		size_t n = c->len - start;

		if (c->call->on_line(c->call->arg, c->buf + start, n) != 0) {
			c->stopped = true;
			return false;
		}
		start = c->len;
	}
	memmove(c->buf, c->buf + start, c->len - start);
	c->len -= start;
	if (c->buf != NULL)
		c->buf[c->len] = '\0';
	return true;
}

static size_t
write_cb(char *p, size_t size, size_t nmemb, void *arg)
{
	struct call_ctx *c = arg;
	size_t n = size * nmemb;

	if (!c->decided) {
		long status = 0;

		curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
		c->stream = c->call->on_line != NULL && status >= 200 && status < 300;
		c->decided = true;
	}
	if (c->len + n > LAPI_CLIENT_MAX_BODY) {
		c->too_big = true;
		return 0;
	}
	if (!buf_add(c, p, n))
		return 0;
	if (c->stream && !deliver_lines(c, false))
		return 0;
	return n;
}

static void
copy_value(char *dst, size_t dstlen, const char *v, size_t n)
{
	while (n > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		n--;
	}
	while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
		n--;
	if (n >= dstlen)
		n = dstlen - 1;
	memcpy(dst, v, n);
	dst[n] = '\0';
}

static size_t
header_cb(char *p, size_t size, size_t nmemb, void *arg)
{
	struct call_ctx *c = arg;
	size_t n = size * nmemb;
	const char *colon;
	size_t klen;
	char v[64];

	/* A status line starts a new header block (after a 100 Continue). */
	if (n >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		c->resp->api_version = 0;
		c->resp->daemon_version[0] = '\0';
		c->resp->content_type[0] = '\0';
		return n;
	}
	colon = memchr(p, ':', n);
	if (colon == NULL)
		return n;
	klen = (size_t)(colon - p);
	colon++;
	if (klen == strlen(LAPI_VERSION_HEADER) &&
	    strncasecmp(p, LAPI_VERSION_HEADER, klen) == 0) {
		copy_value(v, sizeof v, colon, n - klen - 1);
		c->resp->api_version = atoi(v);
		if (c->resp->api_version == 0)
			c->resp->api_version = -1;	/* present but garbage */
	} else if (klen == strlen(LAPI_DAEMON_HEADER) &&
	    strncasecmp(p, LAPI_DAEMON_HEADER, klen) == 0) {
		copy_value(c->resp->daemon_version, sizeof c->resp->daemon_version,
		    colon, n - klen - 1);
	} else if (klen == 12 && strncasecmp(p, "Content-Type", 12) == 0) {
		copy_value(c->resp->content_type, sizeof c->resp->content_type,
		    colon, n - klen - 1);
	}
	return n;
}

/* Why could we not connect?  libcurl only says "couldn't connect". */
static int
connect_errno(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, err = 0;

	if (strlen(path) >= sizeof sun.sun_path)
		return ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0)
		err = errno;
	close(fd);
	return err;
}

static int
connect_failure(const char *path, char **cause)
{
	int err = connect_errno(path);

	if (err == 0 || err == ENOENT || err == ECONNREFUSED)
		return set_cause(cause, -ECONNREFUSED, "failed to connect to meshd "
		    "at %s: is meshd running?", path);
	return set_cause(cause, -ECONNREFUSED, "failed to connect to meshd at %s: %s",
	    path, strerror(err));
}

void
lapi_response_clear(struct lapi_response *resp)
{
	free(resp->body);
	memset(resp, 0, sizeof *resp);
}

int
lapi_client_call(const char *socket_path, const struct lapi_call *call,
    struct lapi_response *resp, char **cause)
{
	struct call_ctx c = { .call = call, .resp = resp };
	struct curl_slist *hdrs = NULL, *h;
	char url[1024], ver[64];
	CURLcode rc;
	int ret = 0;

	memset(resp, 0, sizeof *resp);
	if (cause != NULL)
		*cause = NULL;
	if (socket_path == NULL)
		socket_path = LAPI_DEFAULT_SOCKET;
	if (call->path == NULL || call->path[0] != '/' ||
	    snprintf(url, sizeof url, "http://local-meshd.sock%s", call->path) >=
	    (int)sizeof url)
		return set_cause(cause, -EINVAL, "bad local API path");
	c.curl = curl_easy_init();
	if (c.curl == NULL)
		return set_cause(cause, -ENOMEM, "out of memory");

	snprintf(ver, sizeof ver, "%s: %d", LAPI_VERSION_HEADER, LAPI_API_VERSION);
	if (!call->no_version && (h = curl_slist_append(hdrs, ver)) != NULL)
		hdrs = h;
	/* No "Expect: 100-continue" round trip for larger bodies. */
	if ((h = curl_slist_append(hdrs, "Expect:")) != NULL)
		hdrs = h;
	if (call->body != NULL &&
	    (h = curl_slist_append(hdrs, "Content-Type: " LAPI_CONTENT_JSON)) != NULL)
		hdrs = h;

	curl_easy_setopt(c.curl, CURLOPT_UNIX_SOCKET_PATH, socket_path);
	curl_easy_setopt(c.curl, CURLOPT_URL, url);
	curl_easy_setopt(c.curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c.curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c.curl, CURLOPT_NOPROGRESS, 1L);
	curl_easy_setopt(c.curl, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(c.curl, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(c.curl, CURLOPT_WRITEDATA, &c);
	curl_easy_setopt(c.curl, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(c.curl, CURLOPT_HEADERDATA, &c);
	curl_easy_setopt(c.curl, CURLOPT_CONNECTTIMEOUT_MS,
	    call->connect_timeout_ms > 0 ? call->connect_timeout_ms :
	    (long)DEFAULT_CONNECT_TIMEOUT_MS);
	if (call->timeout_ms > 0)
		curl_easy_setopt(c.curl, CURLOPT_TIMEOUT_MS, call->timeout_ms);
	if (strcmp(call->method, "GET") == 0) {
		curl_easy_setopt(c.curl, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(call->method, "HEAD") == 0) {
		curl_easy_setopt(c.curl, CURLOPT_NOBODY, 1L);
	} else {
		if (strcmp(call->method, "POST") == 0)
			curl_easy_setopt(c.curl, CURLOPT_POST, 1L);
		else
			curl_easy_setopt(c.curl, CURLOPT_CUSTOMREQUEST, call->method);
		curl_easy_setopt(c.curl, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)(call->body != NULL ? call->body_len : 0));
		curl_easy_setopt(c.curl, CURLOPT_POSTFIELDS,
		    call->body != NULL ? call->body : "");
	}

	rc = curl_easy_perform(c.curl);
	curl_easy_getinfo(c.curl, CURLINFO_RESPONSE_CODE, &resp->status);

	if (rc == CURLE_OK && c.stream && !deliver_lines(&c, true))
		rc = CURLE_WRITE_ERROR;
	switch (rc) {
	case CURLE_OK:
		break;
	case CURLE_COULDNT_CONNECT:
		ret = connect_failure(socket_path, cause);
		break;
	case CURLE_OPERATION_TIMEDOUT:
		ret = set_cause(cause, -ETIMEDOUT, "meshd did not answer in time");
		break;
	case CURLE_WRITE_ERROR:
		if (c.stopped)
			ret = set_cause(cause, -ECANCELED, "stopped");
		else if (c.too_big)
			ret = set_cause(cause, -EFBIG, "answer from meshd too large");
		else
			ret = set_cause(cause, -ENOMEM, "out of memory");
		break;
	case CURLE_OUT_OF_MEMORY:
		ret = set_cause(cause, -ENOMEM, "out of memory");
		break;
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
		ret = set_cause(cause, -EIO, "meshd closed the connection (%s)",
		    curl_easy_strerror(rc));
		break;
	default:
		ret = set_cause(cause, -EPROTO, "talking to meshd at %s: %s",
		    socket_path, curl_easy_strerror(rc));
		break;
	}
	if (ret == 0 && resp->api_version != 0 &&
	    resp->api_version != LAPI_API_VERSION)
		ret = set_cause(cause, -EPROTO, "meshd at %s speaks local API "
		    "version %d, meshctl speaks %d: use the meshctl that came with "
		    "this meshd", socket_path, resp->api_version, LAPI_API_VERSION);
	else if (ret == 0 && resp->api_version == 0 && resp->status >= 200 &&
	    resp->status < 300)
		ret = set_cause(cause, -EPROTO, "%s answered without %s: is it a "
		    "meshd socket?", socket_path, LAPI_VERSION_HEADER);

	if (ret == 0 && !c.stream) {
		resp->body = c.buf;
		resp->body_len = c.len;
		c.buf = NULL;
	}
	free(c.buf);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c.curl);
	if (ret != 0) {
		free(resp->body);
		resp->body = NULL;
		resp->body_len = 0;
	}
	return ret;
}

char *
lapi_response_error(const struct lapi_response *resp)
{
	char *msg = NULL;

	if (resp->body != NULL && resp->body_len > 0) {
		json_tokener *tok = json_tokener_new();
		json_object *o = NULL, *e;

		if (tok != NULL) {
			o = json_tokener_parse_ex(tok, resp->body, (int)resp->body_len);
			json_tokener_free(tok);
		}
		if (o != NULL && json_object_is_type(o, json_type_object) &&
		    json_object_object_get_ex(o, "error", &e) &&
		    json_object_is_type(e, json_type_string))
			msg = strdup(json_object_get_string(e));
		json_object_put(o);
	}
	if (msg == NULL) {
		const char *what;

		switch (resp->status) {
		case 400: what = "bad request"; break;
		case 403: what = "forbidden"; break;
		case 404: what = "not found"; break;
		case 413: what = "request too large"; break;
		case 501: what = "not implemented"; break;
		case 503: what = "unavailable"; break;
		default: what = "error"; break;
		}
		if (asprintf(&msg, "meshd answered HTTP %ld (%s)", resp->status,
		    what) < 0)
			msg = NULL;
	}
	return msg;
}

char *
lapi_query_escape(const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0);
	char *out;

	if (e == NULL)
		return NULL;
	out = strdup(e);
	curl_free(e);
	return out;
}

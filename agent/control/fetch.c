// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * libcurl's multi interface driven by libevent: curl tells us which
 * sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to call it back
 * (CURLMOPT_TIMERFUNCTION); we never block the loop in curl_easy_perform.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "agent/control/fetch.h"
#include "common/util.h"

struct fetch {
	struct fetcher *f;
	CURL *easy;
	char *body;
	size_t len, cap, max;
	bool too_big;
	fetch_done_fn done;
	void *ctx;
	struct fetch *next;
};

struct fetcher {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	struct fetch *list;
};

struct sockwatch {
	struct event *ev;
};

static void check_done(struct fetcher *f);

static void
sock_cb_ev(evutil_socket_t fd, short what, void *arg)
{
	struct fetcher *f = arg;
	int running, flags = 0;

	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(f->multi, fd, flags, &running);
	check_done(f);
}

static int
socket_fn(CURL *easy, curl_socket_t s, int what, void *userp, void *sockp)
{
	struct fetcher *f = userp;
	struct sockwatch *w = sockp;
	short kind = EV_PERSIST;

	if (what == CURL_POLL_REMOVE) {
		if (w) {
			event_free(w->ev);
			free(w);
			curl_multi_assign(f->multi, s, NULL);
		}
		return 0;
	}
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	if (w == NULL) {
		w = xcalloc(1, sizeof *w);
		curl_multi_assign(f->multi, s, w);
	} else {
		event_free(w->ev);
	}
	w->ev = event_new(f->base, s, kind, sock_cb_ev, f);
	event_add(w->ev, NULL);
	return 0;
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fetcher *f = arg;
	int running;

	curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(f);
}

static int
timer_fn(CURLM *multi, long ms, void *userp)
{
	struct fetcher *f = userp;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (ms < 0)
		evtimer_del(f->timer);
	else
		evtimer_add(f->timer, &tv);
	return 0;
}

static size_t
write_fn(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct fetch *x = userdata;
	size_t n = size * nmemb;

	if (x->len + n > x->max) {
		x->too_big = true;
		return 0;	/* makes curl fail the transfer */
	}
	if (x->len + n + 1 > x->cap) {
		x->cap = MAX(x->cap * 2, x->len + n + 1);
		x->body = xreallocarray(x->body, x->cap, 1);
	}
	memcpy(x->body + x->len, ptr, n);
	x->len += n;
	x->body[x->len] = '\0';
	return n;
}

static void
unlink_fetch(struct fetch *x)
{
	struct fetch **pp;

	for (pp = &x->f->list; *pp; pp = &(*pp)->next) {
		if (*pp == x) {
			*pp = x->next;
			break;
		}
	}
	curl_multi_remove_handle(x->f->multi, x->easy);
	curl_easy_cleanup(x->easy);
}

static void
check_done(struct fetcher *f)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(f->multi, &left)) != NULL) {
		struct fetch *x = NULL;
		char err[256] = "";
		long status = 0;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		if (m->data.result != CURLE_OK)
			snprintf(err, sizeof err, "%s", x->too_big ? "response too large" :
			    curl_easy_strerror(m->data.result));
		else
			curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
		unlink_fetch(x);
		x->done(x->ctx, status, x->body ? x->body : "", x->len, err[0] ? err : NULL);
		free(x->body);
		free(x);
	}
}

struct fetcher *
fetcher_new(struct event_base *base)
{
	static bool init;
	struct fetcher *f;

	if (!init) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
			return NULL;
		init = true;
	}
	f = xcalloc(1, sizeof *f);
	f->base = base;
	f->multi = curl_multi_init();
	f->timer = evtimer_new(base, timer_cb, f);
	if (f->multi == NULL || f->timer == NULL) {
		fetcher_free(f);
		return NULL;
	}
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, socket_fn);
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, timer_fn);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
	return f;
}

void
fetch_cancel(struct fetch *x)
{
	if (x == NULL)
		return;
	unlink_fetch(x);
	free(x->body);
	free(x);
}

void
fetcher_free(struct fetcher *f)
{
	if (f == NULL)
		return;
	while (f->list)
		fetch_cancel(f->list);
	if (f->multi)
		curl_multi_cleanup(f->multi);
	if (f->timer)
		event_free(f->timer);
	free(f);
}

static struct fetch *
fetch_start(struct fetcher *f, const char *url, bool head, size_t max_body, long timeout_ms,
    fetch_done_fn done, void *ctx)
{
	struct fetch *x = xcalloc(1, sizeof *x);

	x->f = f;
	x->max = max_body;
	x->done = done;
	x->ctx = ctx;
	x->easy = curl_easy_init();
	if (x->easy == NULL) {
		free(x);
		return NULL;
	}
	curl_easy_setopt(x->easy, CURLOPT_URL, url);
	curl_easy_setopt(x->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(x->easy, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(x->easy, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, write_fn);
	curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	curl_easy_setopt(x->easy, CURLOPT_USERAGENT, "meshd");
	if (head)
		curl_easy_setopt(x->easy, CURLOPT_NOBODY, 1L);
	if (curl_multi_add_handle(f->multi, x->easy) != CURLM_OK) {
		curl_easy_cleanup(x->easy);
		free(x);
		return NULL;
	}
	x->next = f->list;
	f->list = x;
	return x;
}

struct fetch *
fetch_get(struct fetcher *f, const char *url, size_t max_body, long timeout_ms,
    fetch_done_fn done, void *ctx)
{
	return fetch_start(f, url, false, max_body, timeout_ms, done, ctx);
}

struct fetch *
fetch_head(struct fetcher *f, const char *url, long timeout_ms, fetch_done_fn done, void *ctx)
{
	return fetch_start(f, url, true, 0, timeout_ms, done, ctx);
}

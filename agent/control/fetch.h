/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_FETCH_H
#define MESHD_FETCH_H

/*
 * One-shot HTTP(S) GETs on the event loop, through libcurl's multi
 * interface (proxies, CAs and redirects are libcurl's job).  Used for the
 * control server's /key and, later, DERP map URLs.
 */

#include <stddef.h>

struct event_base;
struct fetcher;
struct fetch;

/*
 * Called once per fetch.  status is the HTTP status (0 on a transport
 * error); body is NUL-terminated, owned by the fetcher and valid during the
 * call; err is NULL or why the transfer failed.
 */
typedef void (*fetch_done_fn)(void *ctx, long status, const char *body, size_t len,
    const char *err);

struct fetcher *fetcher_new(struct event_base *base);
void fetcher_free(struct fetcher *f);	/* cancels pending fetches without callbacks; NULL-safe */

/*
 * GETs url, keeping at most max_body bytes of body (more is an error) and
 * giving up after timeout_ms.  Returns NULL if the fetch could not start.
 */
struct fetch *fetch_get(struct fetcher *f, const char *url, size_t max_body, long timeout_ms,
    fetch_done_fn done, void *ctx);
/* A HEAD request (PingRequest answers): only the status matters. */
struct fetch *fetch_head(struct fetcher *f, const char *url, long timeout_ms, fetch_done_fn done,
    void *ctx);
void fetch_cancel(struct fetch *x);	/* no callback; NULL-safe */

#endif

/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_CTLCONN_H
#define MESHD_CTLCONN_H

/*
 * One connection to the control server: TCP (or TLS for https://), the
 * /ts2021 upgrade, the Noise transport (controlbase.h) and HTTP/2 on top
 * (nghttp2), with requests multiplexed as streams (control.md §3, §4).
 *
 * The connection reports through callbacks on the caller's event loop.  It
 * never retries: when it fails or closes, the owner (the control client)
 * decides when to dial again.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evdns_base;
struct ctl_conn;
struct ctl_req;

/* Largest response body a non-streaming request collects (Headscale caps requests at 1 MiB). */
#define CTL_BODY_MAX	(1U << 20)

struct ctl_conn_ops {
	/* The Noise + HTTP/2 session is up; requests may be sent. */
	void (*ready)(void *ctx);
	/*
	 * The connection failed or closed; msg says why (for logs and the
	 * user).  Every request still open has had its done callback first.
	 * The owner must ctl_conn_free() it, but not from inside this call.
	 */
	void (*closed)(void *ctx, const char *msg);
};

/* Callbacks of one request; all get the ctx given to ctl_conn_request(). */
struct ctl_req_ops {
	/* Response body bytes as they arrive (streaming requests only). */
	int (*data)(void *ctx, const uint8_t *buf, size_t len);
	/*
	 * The request ended.  status is the HTTP status (0 if none arrived);
	 * body/len the collected body for non-streaming requests (NUL
	 * terminated, owned by the connection, valid during the call); err is
	 * NULL on a clean end, or why it failed.
	 */
	void (*done)(void *ctx, int status, const char *body, size_t len, const char *err);
};

/*
 * Starts connecting to server_url (http:// or https://, with an optional
 * port; the path is ignored) for a server whose Noise key is server_pub.
 * machine_priv is borrowed until ready() or closed() is called.
 * Returns NULL with *cause set (caller frees) on a bad URL.
 */
struct ctl_conn *ctl_conn_new(struct event_base *base, struct evdns_base *dns,
    const char *server_url, uint16_t capver, const uint8_t machine_priv[static 32],
    const uint8_t server_pub[static 32], const struct ctl_conn_ops *ops, void *ctx,
    char **cause);
/* Closes at once, without calling closed(); open requests' done() is not called.  NULL-safe. */
void ctl_conn_free(struct ctl_conn *c);

/*
 * Sends "POST path" with a JSON body (copied).  If streaming, the body is
 * handed to ops->data as it arrives instead of being collected.  Returns
 * a handle valid until done() is called, or NULL if the session is not
 * ready or refuses a new stream.
 */
struct ctl_req *ctl_conn_request(struct ctl_conn *c, const char *path, const char *body,
    size_t len, bool streaming, const struct ctl_req_ops *ops, void *ctx);
/* Cancels a request (RST_STREAM); its done() is not called. */
void ctl_req_cancel(struct ctl_req *r);

/* Parses "http[s]://host[:port][/…]" (host may be [v6]).  Returns false if malformed. */
bool ctl_parse_url(const char *url, bool *tls, char *host, size_t hostlen, uint16_t *port);

#endif

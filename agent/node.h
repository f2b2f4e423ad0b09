/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_NODE_H
#define MESHD_NODE_H

/*
 * The node: the daemon's state machine, in the terms a tailscaled user
 * knows (ipn.State): NoState, NeedsLogin, NeedsMachineAuth, Starting,
 * Running, Stopped.  It owns the state file, the control client and the
 * host configuration (the TUN device and its addresses), and answers the
 * local API through the functions below.
 */

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct engine;
struct netmap;
struct node;
struct state_identity;
struct state_prefs;

enum node_backend {
	NODE_NO_STATE,
	NODE_NEEDS_LOGIN,
	NODE_NEEDS_MACHINE_AUTH,
	NODE_STARTING,
	NODE_RUNNING,
	NODE_STOPPED,
};

const char *node_backend_name(enum node_backend s);

struct node_cfg {
	const char *statedir;
	const char *tun;
	uint16_t port;
};

/* Returns NULL with *cause set (caller frees). */
struct node *node_new(struct event_base *base, const struct node_cfg *cfg, char **cause);
/* Stops everything and removes what the node added to the host.  NULL-safe. */
void node_free(struct node *n);

/* Options of `meshctl up` that reach the node. */
struct node_up_opts {
	const char *login_server;	/* NULL: keep the current one */
	const char *auth_key;		/* NULL: none; never stored */
	const char *hostname;		/* NULL: keep */
	bool force_reauth;
	bool reset;			/* unspecified options go back to their defaults */
};

/*
 * Brings the node up.  done (if not NULL) hears of progress: the node is
 * Running, it needs a human at an AuthURL (auth_url set), or an error (err
 * set).  It returns true to go on waiting, false when it is done; it is
 * not called again after returning false.  Returns 0, or a negative errno
 * with *cause set for options that cannot work.
 */
typedef bool (*node_up_fn)(void *ctx, enum node_backend s, const char *auth_url, const char *err);
int node_up(struct node *n, const struct node_up_opts *o, node_up_fn done, void *ctx, char **cause);
/* Forgets the waiter registered with ctx (its client went away). */
void node_up_cancel(struct node *n, void *ctx);
/* Disconnects but stays logged in (Stopped); survives restarts. */
void node_down(struct node *n);
/* Logs out with the control server; the node key is replaced (NeedsLogin). */
void node_logout(struct node *n);

enum node_backend node_state(const struct node *n);
/* The netmap while Running, else NULL; valid until the loop runs again. */
struct netmap *node_netmap(struct node *n);
const char *node_auth_url(const struct node *n);	/* NULL if none */
const char *node_error(const struct node *n);		/* the last control error, or NULL */
const struct state_prefs *node_prefs(const struct node *n);
bool node_has_key(const struct node *n);
/* Who control last said we are (kept across restarts), or NULL. */
const struct state_identity *node_identity(const struct node *n);
/* The data plane while the node is started (Starting/Running), else NULL. */
struct engine *node_engine(struct node *n);

#endif

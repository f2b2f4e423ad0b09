// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * The node's state machine (tailscaled's ipn.State) and its effects:
 *
 *   NeedsLogin --up--> Starting --map--> Running --down--> Stopped
 *        ^                 |  \--AuthURL--> NeedsLogin (until approved)
 *        +----logout-------+------------------------------+
 *
 * Prefs and keys persist in the state file; a restart comes back to the
 * state the user left (Running after up, Stopped after down).
 */
#include <arpa/inet.h>
#include <linux/if_addr.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <sodium.h>

#include "agent/control/ctlclient.h"
#include "agent/control/netmap.h"
#include "agent/engine.h"
#include "agent/node.h"
#include "agent/sdnotify.h"
#include "agent/state.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/util.h"
#include "netlink/rtnl.h"

#define NODE_TUN_MTU	1280	/* tailscaled's default (net/tstun/mtu.go) */
#define NODE_MAX_WAITERS 8

struct waiter {
	node_up_fn fn;
	void *ctx;
};

struct node {
	struct event_base *base;
	struct evdns_base *dns;
	char *statedir;
	char tun[IFNAMSIZ];
	uint16_t port;

	struct state *st;
	struct ctl_client *cl;
	struct ctl_client *leaving;	/* logging out with the server */
	enum node_backend backend;
	char *auth_url;
	char *error;		/* the last control error, for Health */
	char *login_name;
	struct engine *engine;
	struct rtnl *rtnl;
	int ifindex;
	struct netmap_prefix addrs[8];
	unsigned int n_addrs;

	struct waiter waiters[NODE_MAX_WAITERS];
};

const char *
node_backend_name(enum node_backend s)
{
	static const char *names[] = {
		"NoState", "NeedsLogin", "NeedsMachineAuth", "Starting", "Running", "Stopped",
	};

	return names[s];
}

static void
save(struct node *n)
{
	char *cause = NULL;
	bool written;

	if (state_save(n->st, n->statedir, &written, &cause) < 0) {
		log_err("state: %s", cause);
		free(cause);
	}
}

static void
set_error(struct node *n, const char *msg)
{
	free(n->error);
	n->error = msg ? xstrdup(msg) : NULL;
}

static void
notify_waiters(struct node *n, const char *err)
{
	for (int i = 0; i < NODE_MAX_WAITERS; i++) {
		struct waiter w = n->waiters[i];

		if (w.fn == NULL)
			continue;
		n->waiters[i].fn = NULL;
		/* A waiter that is not done yet (an AuthURL is not the end) stays. */
		if (w.fn(w.ctx, n->backend, n->auth_url, err))
			n->waiters[i] = w;
	}
}

void
node_up_cancel(struct node *n, void *ctx)
{
	for (int i = 0; i < NODE_MAX_WAITERS; i++)
		if (n->waiters[i].fn && n->waiters[i].ctx == ctx)
			n->waiters[i].fn = NULL;
}

static void
set_backend(struct node *n, enum node_backend s)
{
	if (n->backend != s)
		log_info("state: %s -> %s", node_backend_name(n->backend), node_backend_name(s));
	n->backend = s;
}

/* --- host configuration --- */

static void
host_clear(struct node *n)
{
	for (unsigned int i = 0; i < n->n_addrs; i++) {
		struct rtnl_addr a = {
			.family = n->addrs[i].family == 6 ? AF_INET6 : AF_INET,
			.ifindex = n->ifindex,
			.prefixlen = n->addrs[i].family == 6 ? 128 : 32,
		};

		memcpy(a.addr, n->addrs[i].addr, 16);
		(void)rtnl_addr_del(n->rtnl, &a);
	}
	n->n_addrs = 0;
	if (n->ifindex > 0 && rtnl_link_set_up(n->rtnl, n->ifindex, false) < 0)
		log_debug("%s: cannot set the link down", n->tun);
}

/* The self node's addresses go on the TUN, as /32 and /128 like tailscaled's. */
static void
host_apply(struct node *n, const struct netmap_node *self)
{
	unsigned int cnt = MIN(self->n_addrs, (unsigned int)ARRAY_SIZE(n->addrs));
	int r;

	if (cnt == n->n_addrs && memcmp(n->addrs, self->addrs, cnt * sizeof n->addrs[0]) == 0)
		return;
	host_clear(n);
	for (unsigned int i = 0; i < cnt; i++) {
		struct rtnl_addr a = {
			.family = self->addrs[i].family == 6 ? AF_INET6 : AF_INET,
			.ifindex = n->ifindex,
			.prefixlen = self->addrs[i].family == 6 ? 128 : 32,
			.flags = self->addrs[i].family == 6 ? IFA_F_NODAD : 0,
		};

		memcpy(a.addr, self->addrs[i].addr, 16);
		if ((r = rtnl_addr_add(n->rtnl, &a)) < 0)
			log_warn("%s: adding an address: %s", n->tun, strerror(-r));
	}
	memcpy(n->addrs, self->addrs, cnt * sizeof n->addrs[0]);
	n->n_addrs = cnt;
	if ((r = rtnl_link_set_mtu(n->rtnl, n->ifindex, NODE_TUN_MTU)) < 0 ||
	    (r = rtnl_link_set_up(n->rtnl, n->ifindex, true)) < 0)
		log_warn("%s: %s", n->tun, strerror(-r));
}

/* --- control client callbacks --- */

static void
on_phase(void *ctx, enum ctl_phase phase, const char *url)
{
	struct node *n = ctx;

	engine_set_control(n->engine, phase == CTL_MAPPING);
	if (phase == CTL_NEEDS_LOGIN) {
		free(n->auth_url);
		n->auth_url = xstrdup(url);
		set_backend(n, NODE_NEEDS_LOGIN);
		log_info("control: to authenticate, visit %s", url);
		notify_waiters(n, NULL);
	} else if (phase == CTL_CONNECTING && n->backend != NODE_RUNNING) {
		set_backend(n, NODE_STARTING);
	}
}

static void
on_error(void *ctx, const char *msg, bool fatal)
{
	struct node *n = ctx;

	set_error(n, msg);
	if (!fatal)
		return;
	/*
	 * The user must act (a new key, a new login): the client has stopped
	 * itself; it is replaced on the next up (not freed here, inside its
	 * own callback).
	 */
	set_backend(n, NODE_NEEDS_LOGIN);
	notify_waiters(n, msg);
}

static void
on_registered(void *ctx, const char *login, bool expired)
{
	struct node *n = ctx;
	struct state_prefs p = *state_prefs(n->st);

	free(n->login_name);
	n->login_name = xstrdup(login);
	free(n->auth_url);
	n->auth_url = NULL;
	set_error(n, NULL);
	if (p.logged_out) {
		p.logged_out = false;
		if (state_set_prefs(n->st, &p, NULL) == 0)
			save(n);
	}
	if (expired)
		set_backend(n, NODE_NEEDS_LOGIN);
}

static void
on_netmap(void *ctx, struct netmap *nm, uint32_t changed)
{
	struct node *n = ctx;
	const struct netmap_node *self = netmap_self(nm);
	struct state_identity id;

	if (self == NULL)
		return;
	if (self->flags & NETMAP_NODE_EXPIRED) {
		/* The key expired while running: log in again (AC: expiry -> NeedsLogin). */
		set_error(n, "node key expired");
		set_backend(n, NODE_NEEDS_LOGIN);
		engine_set_netmap(n->engine, NULL, 0, NULL);
		host_clear(n);
		notify_waiters(n, NULL);
		return;
	}
	host_apply(n, self);
	engine_set_control(n->engine, true);
	engine_set_netmap(n->engine, nm, n->backend == NODE_RUNNING ? changed : 0,
	    state_node_key(n->st));
	memset(&id, 0, sizeof id);
	if (state_identity(n->st) != NULL)
		id = *state_identity(n->st);
	id.node_id = self->id;
	snprintf(id.stable_id, sizeof id.stable_id, "%s", self->stable_id);
	id.user_id = self->user;
	id.key_expiry = self->key_expiry / 1000;
	if (n->login_name)
		snprintf(id.login_name, sizeof id.login_name, "%s", n->login_name);
	id.n_addresses = 0;
	for (unsigned int i = 0; i < self->n_addrs && id.n_addresses < STATE_ADDRS_MAX; i++) {
		struct state_prefix *a = &id.addresses[id.n_addresses++];

		a->ip.family = self->addrs[i].family == 6 ? AF_INET6 : AF_INET;
		memcpy(a->ip.addr, self->addrs[i].addr, 16);
		a->bits = self->addrs[i].bits;
	}
	if (state_set_identity(n->st, &id, NULL) == 0)
		save(n);
	if (n->backend != NODE_RUNNING) {
		set_backend(n, NODE_RUNNING);
		sd_notify("READY=1\nSTATUS=Running");
	}
	notify_waiters(n, NULL);
}

static const struct ctl_client_ops node_ctl_ops = { on_phase, on_error, on_registered, on_netmap };

/* The engine found new endpoints or a new home DERP: control hears at once. */
static void
on_netinfo(void *ctx)
{
	struct node *n = ctx;
	struct ctl_netinfo ni;

	if (n->cl == NULL)
		return;
	engine_netinfo(n->engine, &ni);
	ctl_client_set_netinfo(n->cl, &ni);
}

static const struct engine_ops node_engine_ops = { on_netinfo };

static int
start_control(struct node *n, const char *auth_key, char **cause)
{
	const struct state_prefs *p = state_prefs(n->st);
	struct ctl_client_cfg cfg = { 0 };
	char hostname[256];

	if (p->login_server[0] == '\0') {
		*cause = xstrdup("no control server: use meshctl up --login-server URL");
		return -EINVAL;
	}
	if (p->hostname[0])
		snprintf(hostname, sizeof hostname, "%s", p->hostname);
	else if (gethostname(hostname, sizeof hostname) != 0)
		snprintf(hostname, sizeof hostname, "meshd");
	ctl_client_free(n->cl);
	cfg.server_url = p->login_server;
	cfg.machine_priv = state_machine_key(n->st);
	state_node_pubkey(n->st, cfg.node_pub);
	engine_disco_public(n->engine, cfg.disco_pub);
	cfg.auth_key = auth_key;
	cfg.hostname = hostname;
	n->cl = ctl_client_new(n->base, n->dns, &cfg, &node_ctl_ops, n);
	if (n->cl == NULL) {
		*cause = xstrdup("cannot start the control client");
		return -ENOMEM;
	}
	on_netinfo(n);
	set_backend(n, NODE_STARTING);
	ctl_client_start(n->cl);
	return 0;
}

/* --- the local API's verbs --- */

int
node_up(struct node *n, const struct node_up_opts *o, node_up_fn done, void *ctx, char **cause)
{
	struct state_prefs p = *state_prefs(n->st);
	int r, i;

	if (o->reset)
		state_prefs_default(&p);
	if (o->login_server && *o->login_server) {
		if (strncmp(o->login_server, "http://", 7) != 0 &&
		    strncmp(o->login_server, "https://", 8) != 0) {
			*cause = xstrdup("--login-server must be an http:// or https:// URL");
			return -EINVAL;
		}
		snprintf(p.login_server, sizeof p.login_server, "%s", o->login_server);
	}
	if (o->hostname)
		snprintf(p.hostname, sizeof p.hostname, "%s", o->hostname);
	p.want_running = true;
	if ((r = state_set_prefs(n->st, &p, cause)) < 0)
		return r;
	if (o->force_reauth) {
		state_begin_rotation(n->st);
		(void)state_commit_rotation(n->st);
	}
	save(n);
	set_error(n, NULL);
	for (i = 0; i < NODE_MAX_WAITERS && n->waiters[i].fn; i++)
		;
	if (i == NODE_MAX_WAITERS) {
		*cause = xstrdup("too many pending up requests");
		return -EBUSY;
	}
	if (done != NULL)
		n->waiters[i] = (struct waiter){ done, ctx };
	/* Already running with the same settings: nothing to do but answer. */
	if (n->backend == NODE_RUNNING && !o->force_reauth && o->auth_key == NULL) {
		notify_waiters(n, NULL);
		return 0;
	}
	if ((r = start_control(n, o->auth_key, cause)) < 0)
		n->waiters[i].fn = NULL;
	return r;
}

void
node_down(struct node *n)
{
	struct state_prefs p = *state_prefs(n->st);

	p.want_running = false;
	if (state_set_prefs(n->st, &p, NULL) == 0)
		save(n);
	ctl_client_free(n->cl);
	n->cl = NULL;
	engine_set_netmap(n->engine, NULL, 0, NULL);
	host_clear(n);
	set_backend(n, NODE_STOPPED);
	notify_waiters(n, "meshd was brought down");
}

static void
leaving_gone(void *ctx)
{
	((struct node *)ctx)->leaving = NULL;
}

void
node_logout(struct node *n)
{
	if (n->cl) {
		ctl_client_free(n->leaving);
		n->leaving = n->cl;
		ctl_client_logout(n->cl, leaving_gone, n);
	}
	n->cl = NULL;
	engine_set_netmap(n->engine, NULL, 0, NULL);
	host_clear(n);
	state_logout(n->st);
	save(n);
	free(n->login_name);
	n->login_name = NULL;
	free(n->auth_url);
	n->auth_url = NULL;
	set_backend(n, NODE_NEEDS_LOGIN);
	notify_waiters(n, "logged out");
}

enum node_backend
node_state(const struct node *n)
{
	return n->backend;
}

/* --- what the local API reads --- */

struct netmap *
node_netmap(struct node *n)
{
	return n->cl && n->backend == NODE_RUNNING ? ctl_client_netmap(n->cl) : NULL;
}

const char *
node_auth_url(const struct node *n)
{
	return n->auth_url;
}

const char *
node_error(const struct node *n)
{
	return n->error;
}

const struct state_prefs *
node_prefs(const struct node *n)
{
	return state_prefs(n->st);
}

const struct state_identity *
node_identity(const struct node *n)
{
	return state_identity(n->st);
}

struct engine *
node_engine(struct node *n)
{
	return n->backend == NODE_RUNNING ? n->engine : NULL;
}

bool
node_has_key(const struct node *n)
{
	return state_has_keys(n->st);
}

/* --- life cycle --- */

struct node *
node_new(struct event_base *base, const struct node_cfg *cfg, char **cause)
{
	struct node *n = xcalloc(1, sizeof *n);
	const struct state_prefs *p;
	struct engine_cfg ec = { 0 };
	bool found;
	int r;

	n->base = base;
	n->statedir = xstrdup(cfg->statedir);
	n->port = cfg->port;
	snprintf(n->tun, sizeof n->tun, "%s", cfg->tun);
	n->st = state_new();
	if ((r = state_load(n->st, n->statedir, &found, cause)) < 0)
		goto fail;
	state_ensure_keys(n->st);
	if (state_save(n->st, n->statedir, &found, cause) < 0)
		goto fail;
	if ((r = rtnl_open(&n->rtnl)) < 0) {
		if (asprintf(cause, "netlink: %s", strerror(-r)) < 0)
			*cause = NULL;
		goto fail;
	}
	n->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	if (n->dns == NULL)
		n->dns = evdns_base_new(base, 0);
	ec.tun = n->tun;
	ec.port = n->port;
	ec.mtu = NODE_TUN_MTU;
	n->engine = engine_new(base, n->dns, &ec, &node_engine_ops, n, cause);
	if (n->engine == NULL)
		goto fail;
	n->ifindex = engine_ifindex(n->engine);

	p = state_prefs(n->st);
	if (p->logged_out || p->login_server[0] == '\0') {
		set_backend(n, NODE_NEEDS_LOGIN);
	} else if (!p->want_running) {
		set_backend(n, NODE_STOPPED);
	} else if (start_control(n, NULL, cause) < 0) {
		goto fail;
	}
	return n;
fail:
	node_free(n);
	return NULL;
}

void
node_free(struct node *n)
{
	if (n == NULL)
		return;
	notify_waiters(n, "meshd is shutting down");
	ctl_client_free(n->cl);
	ctl_client_free(n->leaving);
	if (n->rtnl)
		host_clear(n);
	engine_free(n->engine);	/* the kernel removes the TUN with its last fd */
	rtnl_close(n->rtnl);
	if (n->dns)
		evdns_base_free(n->dns, 0);
	state_free(n->st);
	free(n->statedir);
	free(n->auth_url);
	free(n->error);
	free(n->login_name);
	free(n);
}

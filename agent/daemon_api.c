// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * The local API's handlers: they translate between the JSON contract of
 * agent/localapi/localapi.h and the node (agent/node.h).  Neither side
 * knows the other; only this file knows both.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/control/netmap.h"
#include "agent/daemon.h"
#include "agent/localapi/localapi.h"
#include "agent/node.h"
#include "agent/state.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/util.h"
#include "common/version.h"

#define API_MAX_UP	8

/* An `up` request waiting for the node: its reply streams Notify lines. */
struct up_wait {
	struct daemon_api *api;
	struct lapi_reply *reply;
	bool in_use;
	bool sent_url;
};

struct daemon_api {
	struct lapi_server *srv;
	struct node *node;
	struct up_wait ups[API_MAX_UP];
};

/* --- status --- */

/* String storage for one status answer, freed together. */
struct strbuf {
	char **v;
	size_t n, cap;
};

static const char *
keep(struct strbuf *sb, char *s)
{
	if (sb->n == sb->cap) {
		sb->cap = sb->cap ? sb->cap * 2 : 64;
		sb->v = xreallocarray(sb->v, sb->cap, sizeof *sb->v);
	}
	sb->v[sb->n++] = s;
	return s;
}

static void
strbuf_free(struct strbuf *sb)
{
	for (size_t i = 0; i < sb->n; i++)
		free(sb->v[i]);
	free(sb->v);
}

static struct lapi_strv
prefixes(struct strbuf *sb, const struct netmap_prefix *p, unsigned int cnt, bool bits)
{
	const char **v = xcalloc(cnt + 1, sizeof *v);
	char ip[INET6_ADDRSTRLEN], buf[INET6_ADDRSTRLEN + 4];

	for (unsigned int i = 0; i < cnt; i++) {
		inet_ntop(p[i].family == 6 ? AF_INET6 : AF_INET, p[i].addr, ip, sizeof ip);
		if (bits)
			snprintf(buf, sizeof buf, "%s/%u", ip, p[i].bits);
		else
			snprintf(buf, sizeof buf, "%s", ip);
		v[i] = keep(sb, xstrdup(buf));
	}
	keep(sb, (char *)v);
	return (struct lapi_strv){ v, cnt };
}

static struct lapi_strv
endpoints(struct strbuf *sb, const struct netmap_addrport *a, unsigned int cnt)
{
	const char **v = xcalloc(cnt + 1, sizeof *v);
	char ip[INET6_ADDRSTRLEN], buf[INET6_ADDRSTRLEN + 10];

	for (unsigned int i = 0; i < cnt; i++) {
		inet_ntop(a[i].family == 6 ? AF_INET6 : AF_INET, a[i].addr, ip, sizeof ip);
		snprintf(buf, sizeof buf, a[i].family == 6 ? "[%s]:%u" : "%s:%u", ip, a[i].port);
		v[i] = keep(sb, xstrdup(buf));
	}
	keep(sb, (char *)v);
	return (struct lapi_strv){ v, cnt };
}

static struct lapi_time
ms_time(int64_t ms)
{
	return (struct lapi_time){ ms / 1000, (int32_t)(ms % 1000) * 1000000 };
}

/* A peer (or self) as ipnstate.PeerStatus. */
static void
peer_status(struct strbuf *sb, struct netmap *nm, const struct netmap_node *p,
    struct lapi_peer_status *ps, bool self)
{
	char hex[KEY_HEX_LEN], buf[96], host[256];
	const struct netmap_derp_map *dm = netmap_derp_map(nm);

	memset(ps, 0, sizeof *ps);
	key_to_hex(hex, p->key);
	snprintf(buf, sizeof buf, "nodekey:%s", hex);
	ps->public_key = keep(sb, xstrdup(buf));
	snprintf(buf, sizeof buf, "%lld", (long long)p->id);
	ps->id = p->stable_id[0] ? p->stable_id : keep(sb, xstrdup(buf));
	ps->node_id = p->id;
	/* tailscale shows the first label of the MagicDNS name as the host name. */
	snprintf(host, sizeof host, "%s", p->name);
	host[strcspn(host, ".")] = '\0';
	ps->host_name = keep(sb, xstrdup(host[0] ? host : p->hostname));
	ps->dns_name = p->name;
	ps->os = p->os[0] ? p->os : "linux";
	ps->user_id = p->user;
	ps->tailscale_ips = prefixes(sb, p->addrs, p->n_addrs, false);
	if (!self) {
		ps->allowed_ips = prefixes(sb, p->allowed_ips, p->n_allowed_ips, true);
		ps->primary_routes = prefixes(sb, p->primary_routes, p->n_primary_routes, true);
		ps->addrs = endpoints(sb, p->endpoints, p->n_endpoints);
	}
	ps->tags.v = p->tags;
	ps->tags.n = p->n_tags;
	ps->cur_addr = "";
	ps->relay = "";
	for (uint32_t i = 0; dm && i < dm->n_regions; i++)
		if (dm->regions[i].region_id == p->home_derp)
			ps->relay = dm->regions[i].code;
	ps->peer_relay = "";
	ps->created = ms_time(p->created);
	ps->last_seen = ms_time(p->last_seen);
	ps->has_key_expiry = p->key_expiry != 0;
	ps->key_expiry = ms_time(p->key_expiry);
	ps->online = self || p->online == NETMAP_ONLINE_YES;
	ps->expired = (p->flags & NETMAP_NODE_EXPIRED) != 0;
	ps->in_network_map = true;
}

static void
add_user(struct strbuf *sb, struct netmap *nm, struct lapi_user_profile *users, size_t *n,
    int64_t uid)
{
	const struct netmap_user *u = netmap_user(nm, uid);

	for (size_t i = 0; i < *n; i++)
		if (users[i].id == uid)
			return;
	if (u == NULL)
		return;
	users[*n].id = u->id;
	users[*n].login_name = u->login_name;
	users[*n].display_name = u->display_name;
	users[*n].profile_pic_url = "";
	(*n)++;
}

static void
h_status(void *ctx, const struct lapi_request *req, struct lapi_reply *reply)
{
	struct daemon_api *api = ctx;
	struct node *n = api->node;
	struct netmap *nm = node_netmap(n);
	const struct netmap_node *self = nm ? netmap_self(nm) : NULL;
	const char *peers_arg = lapi_request_query(req, "peers");
	struct lapi_status st = { 0 };
	struct lapi_peer_status self_ps, *peers = NULL;
	struct lapi_user_profile *users = NULL;
	struct strbuf sb = { 0 };
	const char *health[1];
	char *json;

	st.version = MESHD_VERSION;
	st.tun = true;
	st.backend_state = node_backend_name(node_state(n));
	st.have_node_key = node_has_key(n);
	st.auth_url = node_auth_url(n) ? node_auth_url(n) : "";
	if (node_error(n)) {
		health[0] = node_error(n);
		st.health = (struct lapi_strv){ health, 1 };
	}
	st.magic_dns_suffix = "";
	st.omit_peers = peers_arg && strcmp(peers_arg, "false") == 0;
	if (self == NULL && node_identity(n) != NULL) {
		/* Stopped, or not connected yet: the addresses are still ours (meshctl ip). */
		const struct state_identity *id = node_identity(n);
		const char **v = xcalloc(id->n_addresses + 1, sizeof *v);
		char ip[INET6_ADDRSTRLEN];

		for (size_t i = 0; i < id->n_addresses; i++) {
			inet_ntop(id->addresses[i].ip.family, id->addresses[i].ip.addr, ip, sizeof ip);
			v[i] = keep(&sb, xstrdup(ip));
		}
		keep(&sb, (char *)v);
		st.tailscale_ips = (struct lapi_strv){ v, id->n_addresses };
	}
	if (self) {
		struct netmap_iter it = { 0 };
		const struct netmap_node *p;
		size_t np = netmap_peer_count(nm), i = 0, nu = 0;

		peer_status(&sb, nm, self, &self_ps, true);
		st.self = &self_ps;
		st.tailscale_ips = self_ps.tailscale_ips;
		st.magic_dns_suffix = netmap_magic_dns_suffix(nm);
		st.has_tailnet = true;
		st.tailnet_name = netmap_domain(nm);
		st.magic_dns_enabled = st.magic_dns_suffix[0] != '\0';
		peers = xcalloc(np + 1, sizeof *peers);
		users = xcalloc(np + 2, sizeof *users);
		add_user(&sb, nm, users, &nu, self->user);
		while ((p = netmap_iter_next(nm, &it)) != NULL && i < np) {
			peer_status(&sb, nm, p, &peers[i++], false);
			add_user(&sb, nm, users, &nu, p->user);
		}
		st.peers = peers;
		st.n_peers = i;
		st.users = users;
		st.n_users = nu;
	}
	json = lapi_status_json(&st);
	if (json)
		lapi_reply_json(reply, 200, json);
	else
		lapi_reply_error(reply, 500, "out of memory");
	free(json);
	free(peers);
	free(users);
	strbuf_free(&sb);
}

/* --- up --- */

static void
up_release(struct up_wait *w)
{
	w->in_use = false;
	w->reply = NULL;
}

static bool
notify(struct up_wait *w, const char *state, const char *url, const char *err)
{
	struct lapi_notify nt = { state, url, err };
	char *line = lapi_notify_json(&nt);
	int r = line ? lapi_reply_stream_write(w->reply, line, strlen(line)) : -ENOMEM;

	free(line);
	return r == 0;
}

static bool
up_progress(void *ctx, enum node_backend s, const char *auth_url, const char *err)
{
	struct up_wait *w = ctx;

	if (err != NULL) {
		notify(w, NULL, NULL, err);
	} else if (s == NODE_RUNNING) {
		notify(w, "Running", NULL, NULL);
	} else if (s == NODE_NEEDS_LOGIN && auth_url != NULL) {
		/* The URL is printed at once; the user's meshctl keeps waiting for Running. */
		if (!w->sent_url && !notify(w, NULL, auth_url, NULL))
			goto done;
		w->sent_url = true;
		return true;
	} else {
		return true;
	}
done:
	lapi_reply_stream_end(w->reply);
	up_release(w);
	return false;
}

static void
up_cancel(void *arg, struct lapi_reply *reply)
{
	struct up_wait *w = arg;

	node_up_cancel(w->api->node, w);
	up_release(w);
}

static void
h_up(void *ctx, const struct lapi_request *req, struct lapi_reply *reply)
{
	struct daemon_api *api = ctx;
	struct lapi_up_request up = { 0 };
	struct node_up_opts o = { 0 };
	struct up_wait *w = NULL;
	char *cause = NULL;

	if (lapi_up_request_parse(req->body, req->body_len, &up, &cause) < 0) {
		lapi_reply_error(reply, 400, "%s", cause ? cause : "bad up request");
		free(cause);
		return;
	}
	for (int i = 0; i < API_MAX_UP && w == NULL; i++)
		if (!api->ups[i].in_use)
			w = &api->ups[i];
	if (w == NULL) {
		lapi_up_request_clear(&up);
		lapi_reply_error(reply, 503, "too many up requests in progress");
		return;
	}
	if (up.prefs.set & LAPI_PREF_CONTROL_URL)
		o.login_server = up.prefs.prefs.control_url;
	if (up.prefs.set & LAPI_PREF_HOSTNAME)
		o.hostname = up.prefs.prefs.hostname;
	o.auth_key = up.auth_key && *up.auth_key ? up.auth_key : NULL;
	o.force_reauth = up.force_reauth;
	o.reset = up.reset;

	*w = (struct up_wait){ .api = api, .reply = reply, .in_use = true };
	if (lapi_reply_stream_start(reply, LAPI_CONTENT_NDJSON) < 0) {
		up_release(w);
		lapi_up_request_clear(&up);
		return;
	}
	lapi_reply_set_cancel(reply, up_cancel, w);
	if (node_up(api->node, &o, up_progress, w, &cause) < 0) {
		notify(w, NULL, NULL, cause ? cause : "cannot bring meshd up");
		free(cause);
		lapi_reply_stream_end(reply);
		up_release(w);
	}
	lapi_up_request_clear(&up);
}

/* --- down, logout, login, prefs --- */

static void
h_down(void *ctx, const struct lapi_request *req, struct lapi_reply *reply)
{
	node_down(((struct daemon_api *)ctx)->node);
	lapi_reply_no_content(reply);
}

static void
h_logout(void *ctx, const struct lapi_request *req, struct lapi_reply *reply)
{
	node_logout(((struct daemon_api *)ctx)->node);
	lapi_reply_no_content(reply);
}

static void
h_login_interactive(void *ctx, const struct lapi_request *req, struct lapi_reply *reply)
{
	struct node_up_opts o = { .force_reauth = false };
	char *cause = NULL;

	/* The AuthURL then appears in status and on the IPN bus. */
	if (node_up(((struct daemon_api *)ctx)->node, &o, NULL, NULL, &cause) < 0) {
		lapi_reply_error(reply, 400, "%s", cause ? cause : "cannot log in");
		free(cause);
		return;
	}
	lapi_reply_no_content(reply);
}

static void
h_prefs_get(void *ctx, const struct lapi_request *req, struct lapi_reply *reply)
{
	const struct state_prefs *sp = node_prefs(((struct daemon_api *)ctx)->node);
	struct lapi_prefs p;
	char *json;

	lapi_prefs_init_default(&p);
	free(p.control_url);
	p.control_url = xstrdup(sp->login_server);
	free(p.hostname);
	p.hostname = xstrdup(sp->hostname);
	p.want_running = sp->want_running;
	p.logged_out = sp->logged_out;
	p.route_all = sp->accept_routes;
	p.corp_dns = sp->accept_dns;
	p.exit_node_allow_lan_access = sp->exit_node_allow_lan_access;
	p.no_snat = !sp->snat_subnet_routes;
	json = lapi_prefs_json(&p);
	lapi_prefs_clear(&p);
	if (json)
		lapi_reply_json(reply, 200, json);
	else
		lapi_reply_error(reply, 500, "out of memory");
	free(json);
}

static const struct lapi_handlers handlers = {
	.status = h_status,
	.prefs_get = h_prefs_get,
	.up = h_up,
	.down = h_down,
	.login_interactive = h_login_interactive,
	.logout = h_logout,
};

struct daemon_api *
daemon_api_open(struct event_base *base, const char *socket_path, struct node *n, char **cause)
{
	struct daemon_api *api = xcalloc(1, sizeof *api);
	struct lapi_server_config cfg = {
		.socket_path = socket_path,
		.handlers = &handlers,
		.ctx = api,
	};

	api->node = n;
	if (lapi_server_new(base, &cfg, &api->srv, cause) < 0) {
		free(api);
		return NULL;
	}
	return api;
}

void
daemon_api_close(struct daemon_api *api)
{
	if (api == NULL)
		return;
	lapi_server_free(api->srv);	/* cancels waiting ups through up_cancel */
	free(api);
}

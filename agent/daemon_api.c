// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * The local API's handlers: they translate between the JSON contract of
 * agent/localapi/localapi.h and the node (agent/node.h).  Neither side
 * knows the other; only this file knows both.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "agent/control/netmap.h"
#include "agent/daemon.h"
#include "agent/engine.h"
#include "agent/daemon_api.h"
#include "agent/localapi/localapi.h"
#include "agent/magicsock/netcheck.h"
#include "agent/node.h"
#include "agent/state.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/util.h"
#include "common/version.h"
#include "wg/wg.h"

#define API_MAX_UP		8
#define API_MAX_PINGS		16
#define API_MAX_NETCHECKS	4

/* An `up` request waiting for the node: its reply streams Notify lines. */
struct up_wait {
	struct daemon_api *api;
	struct lapi_reply *reply;
	bool in_use;
	bool sent_url;
};

/* A ping waiting for its pong (or the engine's word that none came). */
struct ping_wait {
	struct daemon_api *api;
	struct lapi_reply *reply;
	struct event *timer;		/* LAPI_PING_MAX_WAIT_MS */
	struct lapi_ping_target target;
	bool in_use;
};

/* A netcheck waiting for its report. */
struct netcheck_wait {
	struct daemon_api *api;
	struct lapi_reply *reply;
	struct event *timer;		/* LAPI_NETCHECK_MAX_WAIT_MS */
	struct lapi_time started;
	bool in_use;
};

struct daemon_api {
	struct lapi_server *srv;
	struct node *node;
	struct up_wait ups[API_MAX_UP];
	struct ping_wait pings[API_MAX_PINGS];
	struct netcheck_wait netchecks[API_MAX_NETCHECKS];
};

static struct lapi_time
now_realtime(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (struct lapi_time){ ts.tv_sec, (int32_t)ts.tv_nsec };
}

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

/* --- the data plane's part of the answers (daemon_api.h) --- */

const char *
daemon_api_region_code(const struct netmap_derp_map *dm, int32_t id)
{
	for (uint32_t i = 0; dm != NULL && id != 0 && i < dm->n_regions; i++)
		if (dm->regions[i].region_id == id)
			return dm->regions[i].code;
	return "";
}

static int64_t
clamp_i64(uint64_t v)
{
	return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

void
daemon_api_peer_path(struct lapi_peer_status *ps, const struct engine_peer_status *es,
    const struct netmap_derp_map *dm, int32_t home_derp)
{
	/* magicsock names the region of the peer's DERP address: its home. */
	int32_t region = es != NULL && es->derp_region != 0 ? es->derp_region : home_derp;

	ps->relay = daemon_api_region_code(dm, region);
	ps->cur_addr = "";
	if (es == NULL)
		return;
	if (memchr(es->cur_addr, '\0', sizeof es->cur_addr) != NULL)
		ps->cur_addr = es->cur_addr;
	ps->rx_bytes = clamp_i64(es->rx_bytes);
	ps->tx_bytes = clamp_i64(es->tx_bytes);
	if (es->last_handshake_ms > 0)
		ps->last_handshake = ms_time(es->last_handshake_ms);
	ps->active = es->active;
	ps->in_magic_sock = true;
	ps->in_engine = true;
}

static size_t
family_len(int family)
{
	return family == 4 ? 4 : 16;
}

static bool
node_has_addr(const struct netmap_node *p, int family, const uint8_t *a)
{
	for (unsigned int i = 0; i < p->n_addrs; i++)
		if (p->addrs[i].family == family &&
		    memcmp(p->addrs[i].addr, a, family_len(family)) == 0)
			return true;
	return false;
}

static bool
prefix_contains(const struct netmap_prefix *pfx, int family, const uint8_t *a)
{
	unsigned int bits = pfx->bits, full = bits / 8, rem = bits % 8;

	if (pfx->family != family || bits > family_len(family) * 8)
		return false;
	if (memcmp(pfx->addr, a, full) != 0)
		return false;
	return rem == 0 || ((pfx->addr[full] ^ a[full]) & (0xffU << (8 - rem)) & 0xffU) == 0;
}

int
daemon_api_ping_target(const struct netmap *nm, const char *ip, int64_t now_ms,
    struct lapi_ping_target *t)
{
	const struct netmap_node *self, *p, *best = NULL;
	struct netmap_iter it = { 0 };
	uint8_t a[16] = { 0 };
	int family, best_bits = -1;
	const char *dot;

	memset(t, 0, sizeof *t);
	if (ip == NULL)
		return -EINVAL;
	if (inet_pton(AF_INET, ip, a) == 1)
		family = 4;
	else if (inet_pton(AF_INET6, ip, a) == 1)
		family = 6;
	else
		return -EINVAL;
	inet_ntop(family == 4 ? AF_INET : AF_INET6, a, t->ip, sizeof t->ip);

	self = nm != NULL ? netmap_self(nm) : NULL;
	if (self != NULL && node_has_addr(self, family, a)) {
		snprintf(t->err, sizeof t->err, "%s is local Tailscale IP", t->ip);
		t->is_local_ip = true;
		return 1;
	}
	/* The node with the address, else the most specific route (PeerForIP). */
	while (nm != NULL && (p = netmap_iter_next(nm, &it)) != NULL) {
		if (node_has_addr(p, family, a)) {
			best = p;
			break;
		}
		for (uint32_t i = 0; i < p->n_allowed_ips; i++) {
			const struct netmap_prefix *pfx = &p->allowed_ips[i];

			if ((int)pfx->bits > best_bits && prefix_contains(pfx, family, a)) {
				best = p;
				best_bits = pfx->bits;
			}
		}
	}
	if (best == NULL) {
		snprintf(t->err, sizeof t->err, "no matching peer");
		return 1;
	}
	if (best->n_addrs > 0)
		inet_ntop(best->addrs[0].family == 6 ? AF_INET6 : AF_INET,
		    best->addrs[0].addr, t->node_ip, sizeof t->node_ip);
	/* magicsock: the DNS name's first label, else the hostname. */
	if (best->name[0] != '\0') {
		dot = strchr(best->name, '.');
		snprintf(t->node_name, sizeof t->node_name, "%.*s",
		    (int)(dot != NULL ? (size_t)(dot - best->name) : strlen(best->name)),
		    best->name);
	} else {
		snprintf(t->node_name, sizeof t->node_name, "%s", best->hostname);
	}
	memcpy(t->node_key, best->key, KEY_LEN);
	/* Control's flag, or the expiry passing before control says so (expiry.go). */
	if ((best->flags & NETMAP_NODE_EXPIRED) != 0 ||
	    (best->key_expiry != 0 && best->key_expiry <= now_ms)) {
		snprintf(t->err, sizeof t->err, "peer's node key has expired");
		return 1;
	}
	return 0;
}

char *
daemon_api_ping_json(const struct lapi_ping_target *t, const struct engine_ping_result *r,
    const struct netmap_derp_map *dm, const char *err)
{
	struct lapi_ping_result pr = {
		.ip = t->ip, .node_ip = t->node_ip, .node_name = t->node_name,
		.is_local_ip = t->is_local_ip,
	};
	char endpoint[sizeof r->endpoint + 1] = "";

	if (err != NULL) {
		pr.err = err;
	} else if (t->err[0] != '\0') {
		pr.err = t->err;
	} else if (r != NULL && r->err != NULL) {
		pr.err = r->err;
	} else if (r != NULL) {
		pr.latency_seconds = (double)r->latency_ns / 1e9;
		snprintf(endpoint, sizeof endpoint, "%.*s",
		    (int)strnlen(r->endpoint, sizeof r->endpoint), r->endpoint);
		if (endpoint[0] != '\0') {
			pr.endpoint = endpoint;
		} else if (r->derp_region != 0) {
			pr.derp_region_id = r->derp_region;
			pr.derp_region_code = daemon_api_region_code(dm, r->derp_region);
		}
	}
	return lapi_ping_result_json(&pr);
}

static enum lapi_tristate
tristate(int v)
{
	return v < 0 ? LAPI_UNKNOWN : v > 0 ? LAPI_YES : LAPI_NO;
}

char *
daemon_api_netcheck_json(const struct netcheck_report *r, const struct netmap_derp_map *dm,
    struct lapi_time now)
{
	struct lapi_netcheck nc = { 0 };
	struct lapi_derp_region *rg = NULL;
	size_t nr = MIN(r->n_regions, (size_t)NETCHECK_MAX_REGIONS), n = 0;
	char v4[64] = "", v6[64] = "";
	char *json;

	nc.now = now;
	nc.udp = r->udp;
	nc.ipv4 = r->ipv4;
	nc.ipv6 = r->ipv6;
	nc.ipv4_can_send = r->ipv4_can_send;
	nc.ipv6_can_send = r->ipv6_can_send;
	nc.os_has_ipv6 = r->os_has_ipv6;
	nc.mapping_varies_by_dest_ip = tristate(r->mapping_varies_by_dest_ip);
	/* No port mapping protocols are tried: "not checked", as Go says. */
	nc.upnp = nc.pmp = nc.pcp = LAPI_UNKNOWN;
	nc.preferred_derp = r->preferred_derp;
	if (r->global_v4.sa.sa_family == AF_INET)
		wg_endpoint_str(&r->global_v4, v4, sizeof v4);
	if (r->global_v6.sa.sa_family == AF_INET6)
		wg_endpoint_str(&r->global_v6, v6, sizeof v6);
	nc.global_v4 = v4;
	nc.global_v6 = v6;
	if (dm != NULL && dm->n_regions > 0)
		rg = xcalloc(dm->n_regions, sizeof *rg);
	for (uint32_t i = 0; rg != NULL && i < dm->n_regions; i++) {
		const struct netmap_derp_region *d = &dm->regions[i];

		rg[n] = (struct lapi_derp_region){ .id = d->region_id, .code = d->code,
		    .name = d->name, .latency_ns = -1 };
		for (size_t j = 0; j < nr; j++) {
			const struct netcheck_region_latency *l = &r->regions[j];

			if (l->region_id != d->region_id)
				continue;
			rg[n].v4_ns = clamp_i64(l->v4_ns);
			rg[n].v6_ns = clamp_i64(l->v6_ns);
			if (rg[n].v4_ns > 0 && (rg[n].v6_ns <= 0 || rg[n].v4_ns <= rg[n].v6_ns))
				rg[n].latency_ns = rg[n].v4_ns;
			else if (rg[n].v6_ns > 0)
				rg[n].latency_ns = rg[n].v6_ns;
			break;
		}
		n++;
	}
	nc.regions = rg;
	nc.n_regions = n;
	json = lapi_netcheck_json(&nc);
	free(rg);
	return json;
}

/* A peer (or self) as ipnstate.PeerStatus; es: the data plane's view, or NULL. */
static void
peer_status(struct strbuf *sb, struct netmap *nm, const struct netmap_node *p,
    struct lapi_peer_status *ps, bool self, const struct engine_peer_status *es)
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
	daemon_api_peer_path(ps, es, dm, p->home_derp);
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
	struct engine *e = node_engine(n);
	struct lapi_status st = { 0 };
	struct lapi_peer_status self_ps, *peers = NULL;
	struct engine_peer_status *eps = NULL;
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

		peer_status(&sb, nm, self, &self_ps, true, NULL);
		/* Our own relay is the home region magicsock chose (UpdateStatus). */
		if (e != NULL && engine_preferred_derp(e) != 0)
			self_ps.relay = daemon_api_region_code(netmap_derp_map(nm),
			    engine_preferred_derp(e));
		st.self = &self_ps;
		st.tailscale_ips = self_ps.tailscale_ips;
		st.magic_dns_suffix = netmap_magic_dns_suffix(nm);
		st.has_tailnet = true;
		st.tailnet_name = netmap_domain(nm);
		st.magic_dns_enabled = st.magic_dns_suffix[0] != '\0';
		peers = xcalloc(np + 1, sizeof *peers);
		eps = xcalloc(np + 1, sizeof *eps);
		users = xcalloc(np + 2, sizeof *users);
		add_user(&sb, nm, users, &nu, self->user);
		while ((p = netmap_iter_next(nm, &it)) != NULL && i < np) {
			bool known = e != NULL && engine_peer_status(e, p->key, &eps[i]);

			peer_status(&sb, nm, p, &peers[i], false, known ? &eps[i] : NULL);
			i++;
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
	free(eps);
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

/* --- ping --- */

static void
ping_release(struct ping_wait *w)
{
	evtimer_del(w->timer);
	w->in_use = false;
	w->reply = NULL;
}

static void
ping_done(void *ctx, const struct engine_ping_result *r)
{
	struct ping_wait *w = ctx;
	struct netmap *nm;
	char *json;

	if (!w->in_use)
		return;
	/* tailscaled waits for a pong while its client does; "timeout" is our cap. */
	if (r->err != NULL && strcmp(r->err, "timeout") == 0) {
		lapi_reply_error(w->reply, 504, "no pong from %s", w->target.ip);
		ping_release(w);
		return;
	}
	nm = node_netmap(w->api->node);
	json = daemon_api_ping_json(&w->target, r, nm != NULL ? netmap_derp_map(nm) : NULL,
	    NULL);
	if (json != NULL)
		lapi_reply_json(w->reply, 200, json);
	else
		lapi_reply_error(w->reply, 500, "out of memory");
	free(json);
	ping_release(w);
}

static void
ping_forget(struct ping_wait *w)
{
	struct engine *e = node_engine(w->api->node);

	/* Harmless if the engine went away and came back: nothing is under w. */
	if (e != NULL)
		engine_ping_cancel(e, w);
}

/* Released before the engine forgets w, so that a late done finds it idle. */
static void
ping_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct ping_wait *w = arg;
	struct lapi_reply *reply = w->reply;

	ping_release(w);
	ping_forget(w);
	lapi_reply_error(reply, 504, "no pong from %s", w->target.ip);
}

static void
ping_cancel(void *arg, struct lapi_reply *reply)
{
	struct ping_wait *w = arg;

	ping_release(w);
	ping_forget(w);
}

/* Answers at once with t's PingResult; err as daemon_api_ping_json(). */
static void
ping_answer(struct lapi_reply *reply, const struct lapi_ping_target *t, const char *err)
{
	char *json = daemon_api_ping_json(t, NULL, NULL, err);

	if (json != NULL)
		lapi_reply_json(reply, 200, json);
	else
		lapi_reply_error(reply, 500, "out of memory");
	free(json);
}

/* strconv.Atoi: an optional sign and decimal digits, within an int. */
static bool
parse_int(const char *s, long *out)
{
	char *end;
	long v;

	if (*s == '\0' || isspace((unsigned char)*s))
		return false;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < INT_MIN || v > INT_MAX)
		return false;
	*out = v;
	return true;
}

static void
h_ping(void *ctx, const struct lapi_request *req, struct lapi_reply *reply)
{
	struct daemon_api *api = ctx;
	const char *ip = lapi_request_query(req, "ip");
	const char *type = lapi_request_query(req, "type");
	const char *size_s = lapi_request_query(req, "size");
	struct lapi_ping_target t;
	struct lapi_time now = now_realtime();
	struct ping_wait *w = NULL;
	struct timeval tv = { LAPI_PING_MAX_WAIT_MS / 1000, LAPI_PING_MAX_WAIT_MS % 1000 * 1000 };
	struct netmap *nm = node_netmap(api->node);
	struct engine *e;
	long size = 0;
	char err[64];
	int rc;

	/* servePing's checks and words. */
	if (ip == NULL || *ip == '\0') {
		lapi_reply_error(reply, 400, "missing 'ip' parameter");
		return;
	}
	rc = daemon_api_ping_target(nm, ip, now.sec * 1000 + now.nsec / 1000000, &t);
	if (rc == -EINVAL) {
		lapi_reply_error(reply, 400, "invalid IP");
		return;
	}
	if (type == NULL || *type == '\0') {
		lapi_reply_error(reply, 400, "missing 'type' parameter");
		return;
	}
	if (size_s != NULL && *size_s != '\0') {
		if (!parse_int(size_s, &size)) {
			lapi_reply_error(reply, 400, "invalid 'size' parameter");
			return;
		}
		if (size != 0 && strcmp(type, "disco") != 0) {
			lapi_reply_error(reply, 400,
			    "'size' parameter is only supported with disco pings");
			return;
		}
		if (size > LAPI_MAX_DISCO_PING_SIZE) {
			lapi_reply_error(reply, 400, "maximum value for 'size' is %d",
			    LAPI_MAX_DISCO_PING_SIZE);
			return;
		}
	}
	if (strcmp(type, "disco") != 0 && strcmp(type, "TSMP") != 0 &&
	    strcmp(type, "ICMP") != 0 && strcmp(type, "peerapi") != 0) {
		lapi_reply_error(reply, 400, "invalid 'type' parameter");
		return;
	}
	if (rc == 1) {
		ping_answer(reply, &t, NULL);
		return;
	}
	if (strcmp(type, "disco") != 0) {
		snprintf(err, sizeof err, "ping type %s is not supported", type);
		ping_answer(reply, &t, err);
		return;
	}
	e = node_engine(api->node);
	if (e == NULL) {
		ping_answer(reply, &t, "local meshd stopped");
		return;
	}
	for (int i = 0; i < API_MAX_PINGS && w == NULL; i++)
		if (!api->pings[i].in_use)
			w = &api->pings[i];
	if (w == NULL) {
		lapi_reply_error(reply, 503, "too many pings in progress");
		return;
	}
	w->reply = reply;
	w->target = t;
	w->in_use = true;
	lapi_reply_set_cancel(reply, ping_cancel, w);
	evtimer_add(w->timer, &tv);
	/*
	 * Pings are sent at their smallest: the engine pads none, so size only
	 * passes the checks above.  done may run before engine_ping returns.
	 */
	rc = engine_ping(e, t.node_key, ping_done, w);
	if (rc < 0 && w->in_use && w->reply == reply) {
		if (rc == -ENOENT)
			ping_answer(reply, &t, "unknown peer");
		else if (rc == -EHOSTUNREACH)
			ping_answer(reply, &t, "no UDP or DERP path to the peer");
		else
			lapi_reply_error(reply, 500, "ping: %s", strerror(-rc));
		ping_release(w);
	}
}

/* --- netcheck --- */

static void
netcheck_release(struct netcheck_wait *w)
{
	evtimer_del(w->timer);
	w->in_use = false;
	w->reply = NULL;
}

static void
netcheck_done(void *ctx, const struct netcheck_report *r, const struct netmap_derp_map *dm)
{
	struct netcheck_wait *w = ctx;
	char *json;

	if (!w->in_use)
		return;
	if (r == NULL) {
		lapi_reply_error(w->reply, 500, "netcheck failed");
		netcheck_release(w);
		return;
	}
	json = daemon_api_netcheck_json(r, dm, w->started);
	if (json != NULL)
		lapi_reply_json(w->reply, 200, json);
	else
		lapi_reply_error(w->reply, 500, "out of memory");
	free(json);
	netcheck_release(w);
}

static void
netcheck_forget(struct netcheck_wait *w)
{
	struct engine *e = node_engine(w->api->node);

	if (e != NULL)
		engine_netcheck_cancel(e, w);
}

static void
netcheck_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct netcheck_wait *w = arg;
	struct lapi_reply *reply = w->reply;

	netcheck_release(w);
	netcheck_forget(w);
	lapi_reply_error(reply, 504, "netcheck: no report after %d seconds",
	    LAPI_NETCHECK_MAX_WAIT_MS / 1000);
}

static void
netcheck_cancel(void *arg, struct lapi_reply *reply)
{
	struct netcheck_wait *w = arg;

	netcheck_release(w);
	netcheck_forget(w);
}

static void
h_netcheck(void *ctx, const struct lapi_request *req, struct lapi_reply *reply)
{
	struct daemon_api *api = ctx;
	struct engine *e = node_engine(api->node);
	struct netcheck_wait *w = NULL;
	struct timeval tv = { LAPI_NETCHECK_MAX_WAIT_MS / 1000,
	    LAPI_NETCHECK_MAX_WAIT_MS % 1000 * 1000 };
	int rc;

	/* The probes go out from the data plane's socket, which only a started node has. */
	if (e == NULL) {
		lapi_reply_error(reply, 503, "netcheck needs meshd to be up (it is %s)",
		    node_backend_name(node_state(api->node)));
		return;
	}
	for (int i = 0; i < API_MAX_NETCHECKS && w == NULL; i++)
		if (!api->netchecks[i].in_use)
			w = &api->netchecks[i];
	if (w == NULL) {
		lapi_reply_error(reply, 503, "too many netchecks in progress");
		return;
	}
	w->reply = reply;
	w->started = now_realtime();
	w->in_use = true;
	lapi_reply_set_cancel(reply, netcheck_cancel, w);
	evtimer_add(w->timer, &tv);
	rc = engine_netcheck(e, netcheck_done, w);
	if (rc < 0 && w->in_use && w->reply == reply) {
		lapi_reply_error(reply, rc == -ENOSYS ? 501 : 500, "netcheck: %s",
		    strerror(-rc));
		netcheck_release(w);
	}
}

/* The data plane's counters; an idle node has none to show. */
static void
h_metrics(void *ctx, const struct lapi_request *req, struct lapi_reply *reply)
{
	struct engine *e = node_engine(((struct daemon_api *)ctx)->node);
	char *text = e ? engine_metrics(e) : xstrdup("");

	if (text == NULL) {
		lapi_reply_error(reply, 500, "out of memory");
		return;
	}
	lapi_reply_send(reply, 200, "text/plain; version=0.0.4", text, strlen(text));
	free(text);
}

static const struct lapi_handlers handlers = {
	.status = h_status,
	.prefs_get = h_prefs_get,
	.up = h_up,
	.down = h_down,
	.login_interactive = h_login_interactive,
	.logout = h_logout,
	.ping = h_ping,
	.netcheck = h_netcheck,
	.metrics = h_metrics,
};

static void
free_timers(struct daemon_api *api)
{
	for (int i = 0; i < API_MAX_PINGS; i++)
		if (api->pings[i].timer != NULL)
			event_free(api->pings[i].timer);
	for (int i = 0; i < API_MAX_NETCHECKS; i++)
		if (api->netchecks[i].timer != NULL)
			event_free(api->netchecks[i].timer);
}

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
	for (int i = 0; i < API_MAX_PINGS; i++) {
		api->pings[i].api = api;
		api->pings[i].timer = evtimer_new(base, ping_timeout, &api->pings[i]);
		if (api->pings[i].timer == NULL)
			fatal("daemon_api: evtimer_new failed");
	}
	for (int i = 0; i < API_MAX_NETCHECKS; i++) {
		api->netchecks[i].api = api;
		api->netchecks[i].timer = evtimer_new(base, netcheck_timeout,
		    &api->netchecks[i]);
		if (api->netchecks[i].timer == NULL)
			fatal("daemon_api: evtimer_new failed");
	}
	if (lapi_server_new(base, &cfg, &api->srv, cause) < 0) {
		free_timers(api);
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
	/* Cancels waiting ups, pings and netchecks through their cancel callbacks. */
	lapi_server_free(api->srv);
	free_timers(api);
	free(api);
}

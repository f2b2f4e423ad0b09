// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * The control client's life cycle (control.md §11):
 *
 *   GET /key -> dial (ctlconn) -> POST /machine/register
 *     -> AuthURL? follow up until approved -> POST /machine/map (stream)
 *
 * Any failure on the way drops the connection and dials again after a
 * jittered exponential backoff, except those that need the user (a bad
 * auth key, a refused version), which stop the client with an error.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <json-c/json.h>
#include <sodium.h>

#include "agent/control/capver.h"
#include "agent/control/ctlclient.h"
#include "agent/control/ctlconn.h"
#include "agent/control/fetch.h"
#include "agent/control/mapresp.h"
#include "agent/control/netmap.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/util.h"
#include "common/version.h"

#define BACKOFF_MIN_MS		500
#define BACKOFF_MAX_MS		30000
#define KEY_FETCH_TIMEOUT_MS	15000
/* Go gives up on a map stream that is silent this long (direct.go watchdogTimeout). */
#define MAP_WATCHDOG_SEC	120

struct ctl_client {
	struct event_base *base;
	struct evdns_base *dns;
	struct ctl_client_cfg cfg;
	char *server_url, *auth_key, *hostname, *os_version;
	char **routes;
	const struct ctl_client_ops *ops;
	void *ctx;

	enum ctl_phase phase;
	bool running;
	bool have_server_key;
	uint8_t server_pub[32];
	struct fetcher *fetcher;
	struct fetch *key_fetch;
	struct ctl_conn *conn;
	struct ctl_req *reg_req, *map_req;
	char *auth_url;

	struct mapresp_stream *stream;
	struct netmap *nm;
	bool have_map;

	bool conn_ready;
	bool logging_out;
	struct event *free_ev;		/* a logging-out client frees itself from here */
	void (*gone)(void *ctx);	/* ... and says so first */
	void *gone_ctx;
	struct event *retry_ev;		/* backoff, and deferred connection teardown */
	struct event *watchdog_ev;
	unsigned int failures;

	struct ctl_netinfo ni;		/* what the data plane last reported */
	bool have_ni;
	struct ctl_req *lite_req;	/* an endpoint update in flight */
	bool lite_pending;		/* ... and another one due after it */
	struct fetch *ping_fetch;	/* the answer to a PingRequest */
	char *ping_url;			/* the last PingRequest URL, to answer each once */
};

static void dial(struct ctl_client *cl);
static void send_lite(struct ctl_client *cl);
static char *map_request(const struct ctl_client *cl, bool lite);

static void
set_phase(struct ctl_client *cl, enum ctl_phase p, const char *url)
{
	if (cl->phase == p && p != CTL_NEEDS_LOGIN)
		return;
	cl->phase = p;
	if (cl->ops->phase)
		cl->ops->phase(cl->ctx, p, url);
}

static void
report(struct ctl_client *cl, bool fatal, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
report(struct ctl_client *cl, bool fatal, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	log_warn("control: %s", msg);
	if (cl->ops->error)
		cl->ops->error(cl->ctx, msg, fatal);
}

/* Tears the connection down (later, outside its callbacks) and schedules a new dial. */
static void
retry(struct ctl_client *cl)
{
	struct timeval tv;
	unsigned int ms;

	if (!cl->running || cl->logging_out)
		return;
	cl->failures++;
	ms = BACKOFF_MIN_MS << MIN(cl->failures - 1, 6U);
	if (ms > BACKOFF_MAX_MS)
		ms = BACKOFF_MAX_MS;
	/* Jitter: a tailnet's nodes must not all return at the same moment after an outage. */
	ms = ms / 2 + randombytes_uniform(ms / 2 + 1);
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(cl->retry_ev, &tv);
	if (cl->phase != CTL_NEEDS_LOGIN)
		set_phase(cl, CTL_CONNECTING, NULL);
}

static void
drop_conn(struct ctl_client *cl)
{
	cl->conn_ready = false;
	cl->reg_req = cl->map_req = cl->lite_req = NULL;
	ctl_conn_free(cl->conn);
	cl->conn = NULL;
	mapresp_stream_free(cl->stream);
	cl->stream = NULL;
	evtimer_del(cl->watchdog_ev);
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ctl_client *cl = arg;

	drop_conn(cl);
	if (cl->running)
		dial(cl);
}

/* --- JSON --- */

static json_object *
tristate(int8_t v)
{
	return v < 0 ? NULL : json_object_new_boolean(v);
}

static json_object *
netinfo(const struct ctl_netinfo *ni)
{
	json_object *o = json_object_new_object(), *lat = json_object_new_object();

	json_object_object_add(o, "MappingVariesByDestIP", tristate(ni->mapping_varies));
	json_object_object_add(o, "WorkingIPv6", tristate(ni->working_ipv6));
	json_object_object_add(o, "OSHasIPv6", json_object_new_boolean(ni->os_has_ipv6));
	json_object_object_add(o, "WorkingUDP", tristate(ni->working_udp));
	json_object_object_add(o, "WorkingICMPv4", json_object_new_boolean(0));
	json_object_object_add(o, "HavePortMap", json_object_new_boolean(0));
	json_object_object_add(o, "UPnP", json_object_new_boolean(0));
	json_object_object_add(o, "PMP", json_object_new_boolean(0));
	json_object_object_add(o, "PCP", json_object_new_boolean(0));
	json_object_object_add(o, "PreferredDERP", json_object_new_int(ni->preferred_derp));
	for (size_t i = 0; i < ni->n_latencies; i++)
		json_object_object_add(lat, ni->latency[i].key,
		    json_object_new_double(ni->latency[i].seconds));
	json_object_object_add(o, "DERPLatency", lat);
	return o;
}

static json_object *
hostinfo(const struct ctl_client_cfg *cfg, const struct ctl_netinfo *ni)
{
	json_object *hi = json_object_new_object(), *routes = json_object_new_array();

	json_object_object_add(hi, "IPNVersion", json_object_new_string(MESHD_VERSION "-meshd"));
	json_object_object_add(hi, "OS", json_object_new_string("linux"));
	if (cfg->os_version)
		json_object_object_add(hi, "OSVersion", json_object_new_string(cfg->os_version));
	json_object_object_add(hi, "Hostname", json_object_new_string(cfg->hostname));
	json_object_object_add(hi, "GoArch", json_object_new_string("amd64"));
	json_object_object_add(hi, "App", json_object_new_string("meshd"));
	for (unsigned int i = 0; i < cfg->n_routes; i++)
		json_object_array_add(routes, json_object_new_string(cfg->routes[i]));
	json_object_object_add(hi, "RoutableIPs", routes);
	if (ni != NULL)
		json_object_object_add(hi, "NetInfo", netinfo(ni));
	return hi;
}

static json_object *
key_string(const char *prefix, const uint8_t key[static 32])
{
	char hex[KEY_HEX_LEN], buf[16 + KEY_HEX_LEN];

	key_to_hex(hex, key);
	snprintf(buf, sizeof buf, "%s%s", prefix, hex);
	return json_object_new_string(buf);
}

char *
ctl_register_request(const struct ctl_client_cfg *cfg, const char *followup, bool logout)
{
	json_object *o = json_object_new_object();
	char *out;

	json_object_object_add(o, "Version", json_object_new_int(MESHD_CAPVER));
	json_object_object_add(o, "NodeKey", key_string("nodekey:", cfg->node_pub));
	if (cfg->auth_key && *cfg->auth_key) {
		json_object *auth = json_object_new_object();

		json_object_object_add(auth, "AuthKey", json_object_new_string(cfg->auth_key));
		json_object_object_add(o, "Auth", auth);
	}
	/* A past expiry is a logout (control.md §5.5); Go sends Unix 123. */
	json_object_object_add(o, "Expiry", json_object_new_string(logout ?
	    "1970-01-01T00:02:03Z" : "0001-01-01T00:00:00Z"));
	if (followup)
		json_object_object_add(o, "Followup", json_object_new_string(followup));
	json_object_object_add(o, "Hostinfo", hostinfo(cfg, NULL));
	out = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return out;
}

/*
 * The streaming map request, or with lite the endpoint update that leaves
 * the stream alone (Stream false, OmitPeers true: Headscale answers 200 and
 * nothing else, hscontrol/poll.go).
 */
static char *
map_request(const struct ctl_client *cl, bool lite)
{
	const struct ctl_client_cfg *cfg = &cl->cfg;
	const struct ctl_netinfo *ni = cl->have_ni ? &cl->ni : NULL;
	json_object *o = json_object_new_object();
	char *out;

	json_object_object_add(o, "Version", json_object_new_int(MESHD_CAPVER));
	json_object_object_add(o, "Compress", json_object_new_string("zstd"));
	json_object_object_add(o, "KeepAlive", json_object_new_boolean(!lite));
	json_object_object_add(o, "Stream", json_object_new_boolean(!lite));
	if (lite)
		json_object_object_add(o, "OmitPeers", json_object_new_boolean(1));
	json_object_object_add(o, "NodeKey", key_string("nodekey:", cfg->node_pub));
	json_object_object_add(o, "DiscoKey", key_string("discokey:", cfg->disco_pub));
	if (ni != NULL && ni->n_endpoints > 0) {
		json_object *eps = json_object_new_array(), *types = json_object_new_array();

		for (size_t i = 0; i < ni->n_endpoints; i++) {
			json_object_array_add(eps, json_object_new_string(ni->endpoints[i]));
			json_object_array_add(types, json_object_new_int(ni->endpoint_types[i]));
		}
		json_object_object_add(o, "Endpoints", eps);
		json_object_object_add(o, "EndpointTypes", types);
	}
	json_object_object_add(o, "Hostinfo", hostinfo(cfg, ni));
	out = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return out;
}

/* --- the map stream --- */

static void
ping_done(void *ctx, long status, const char *body, size_t len, const char *err)
{
	struct ctl_client *cl = ctx;

	cl->ping_fetch = NULL;
	if (err != NULL || status < 200 || status > 299)
		log_warn("control: answering a ping: %s", err ? err : "unexpected status");
	else
		log_debug("control: answered a ping");
}

/*
 * PingRequest (control.md §7.1): a HEAD to the URL says we are alive and
 * reading the map stream.  Each URL is answered once; Headscale makes a
 * fresh one per ping.  Over Noise (URLIsNoise) and typed pings (c2n, disco,
 * TSMP) are not asked of us by Headscale and are ignored.
 */
static void
answer_ping(struct ctl_client *cl, const struct mapresp_ping *pr)
{
	if (pr->url == NULL || pr->url[0] == '\0' || (pr->types && pr->types[0] != '\0') ||
	    pr->url_is_noise) {
		log_debug("control: ignored a ping request of a kind we do not answer");
		return;
	}
	if (strncmp(pr->url, "http://", 7) != 0 && strncmp(pr->url, "https://", 8) != 0)
		return;
	if (cl->ping_url != NULL && strcmp(cl->ping_url, pr->url) == 0)
		return;
	free(cl->ping_url);
	cl->ping_url = xstrdup(pr->url);
	fetch_cancel(cl->ping_fetch);
	cl->ping_fetch = fetch_head(cl->fetcher, pr->url, 10000, ping_done, cl);
}

static void
lite_done(void *ctx, int status, const char *body, size_t len, const char *err)
{
	struct ctl_client *cl = ctx;

	cl->lite_req = NULL;
	if (err != NULL || status != 200)
		log_warn("control: endpoint update: %s", err ? err : "refused");
	if (cl->lite_pending) {
		cl->lite_pending = false;
		send_lite(cl);
	}
}

static const struct ctl_req_ops lite_ops = { NULL, lite_done };

static void
send_lite(struct ctl_client *cl)
{
	char *req;

	if (cl->conn == NULL || !cl->conn_ready || cl->map_req == NULL || !cl->have_map)
		return;		/* the next map request carries it */
	if (cl->lite_req != NULL) {
		cl->lite_pending = true;
		return;
	}
	req = map_request(cl, true);
	cl->lite_req = ctl_conn_request(cl->conn, "/machine/map", req, strlen(req), false,
	    &lite_ops, cl);
	free(req);
}

static bool
netinfo_material_change(const struct ctl_netinfo *a, const struct ctl_netinfo *b)
{
	if (a->preferred_derp != b->preferred_derp || a->working_udp != b->working_udp ||
	    a->working_ipv6 != b->working_ipv6 || a->mapping_varies != b->mapping_varies ||
	    a->os_has_ipv6 != b->os_has_ipv6 || a->n_endpoints != b->n_endpoints)
		return true;
	/* The endpoint set, in any order. */
	for (size_t i = 0; i < a->n_endpoints; i++) {
		size_t j;

		for (j = 0; j < b->n_endpoints; j++)
			if (strcmp(a->endpoints[i], b->endpoints[j]) == 0)
				break;
		if (j == b->n_endpoints)
			return true;
	}
	return false;
}

void
ctl_client_set_netinfo(struct ctl_client *cl, const struct ctl_netinfo *ni)
{
	bool changed = !cl->have_ni || netinfo_material_change(&cl->ni, ni);

	cl->ni = *ni;
	cl->ni.n_endpoints = MIN(cl->ni.n_endpoints, (size_t)CTL_MAX_ENDPOINTS);
	cl->ni.n_latencies = MIN(cl->ni.n_latencies, (size_t)CTL_MAX_LATENCIES);
	cl->have_ni = true;
	if (changed)
		send_lite(cl);
}

bool
ctl_client_connected(const struct ctl_client *cl)
{
	return cl->map_req != NULL && cl->have_map;
}

static void
watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ctl_client *cl = arg;

	report(cl, false, "no map update or keep-alive for %d s; reconnecting", MAP_WATCHDOG_SEC);
	retry(cl);
}

static int
on_map_msg(void *ctx, const char *json, size_t len)
{
	struct ctl_client *cl = ctx;
	struct timeval tv = { MAP_WATCHDOG_SEC, 0 };
	struct mapresp *mr;
	char where[128] = "";
	uint32_t changed;
	int r;

	evtimer_add(cl->watchdog_ev, &tv);
	r = mapresp_decode(json, len, &mr, NULL, where, sizeof where);
	if (r < 0) {
		/* One bad message is dropped; the stream and the netmap go on. */
		log_warn("control: dropped a map response: %s%s%s", mapresp_strerror(r),
		    where[0] ? " at " : "", where);
		return 0;
	}
	if (!cl->have_map && !mr->keep_alive && mr->node == NULL) {
		mapresp_free(mr);
		report(cl, false, "the first map response lacked the node");
		return -1;
	}
	changed = netmap_apply(cl->nm, mr);
	if (mr->node != NULL)
		cl->have_map = true;
	if (mr->ping != NULL)
		answer_ping(cl, mr->ping);
	mapresp_free(mr);
	if (changed && cl->ops->netmap)
		cl->ops->netmap(cl->ctx, cl->nm, changed);
	return 0;
}

static int
map_data(void *ctx, const uint8_t *buf, size_t len)
{
	struct ctl_client *cl = ctx;
	int r = mapresp_stream_feed(cl->stream, buf, len);

	if (r < 0) {
		report(cl, false, "map stream: %s", mapresp_strerror(r));
		return -1;
	}
	cl->failures = 0;
	return 0;
}

static void
map_done(void *ctx, int status, const char *body, size_t len, const char *err)
{
	struct ctl_client *cl = ctx;

	cl->map_req = NULL;
	if (err)
		report(cl, false, "map stream ended: %s", err);
	else if (status != 200)
		report(cl, status == 400, "map request refused: HTTP %d: %.200s", status, body);
	else
		log_info("control: map stream ended; reconnecting");
	if (status == 400)
		cl->running = false;	/* version refused: retrying cannot help */
	retry(cl);
}

static const struct ctl_req_ops map_ops = { map_data, map_done };

static void
start_map(struct ctl_client *cl)
{
	char *req = map_request(cl, false);
	struct timeval tv = { MAP_WATCHDOG_SEC, 0 };

	mapresp_stream_free(cl->stream);
	cl->stream = mapresp_stream_new(MAPRESP_STREAM_ZSTD, 0, 0, on_map_msg, cl);
	cl->map_req = ctl_conn_request(cl->conn, "/machine/map", req, strlen(req), true,
	    &map_ops, cl);
	free(req);
	if (cl->map_req == NULL) {
		report(cl, false, "could not start the map request");
		retry(cl);
		return;
	}
	evtimer_add(cl->watchdog_ev, &tv);
	set_phase(cl, CTL_MAPPING, NULL);
}

/* --- registration --- */

static void send_register(struct ctl_client *cl, const char *followup);

int
ctl_parse_register(const char *body, size_t len, struct ctl_register_result *out)
{
	struct json_tokener *tok;
	json_object *o, *v;

	memset(out, 0, sizeof *out);
	if (len > CTL_REGISTER_MAX)
		return -EMSGSIZE;
	tok = json_tokener_new();
	if (tok == NULL)
		return -ENOMEM;
	o = json_tokener_parse_ex(tok, body, (int)len);
	json_tokener_free(tok);
	/* Headscale may answer null after an ephemeral logout: not registered (§5.2). */
	if (o == NULL || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return -EINVAL;
	}
#define STR(name, field) \
	if (json_object_object_get_ex(o, name, &v) && json_object_is_type(v, json_type_string)) \
		snprintf(out->field, sizeof out->field, "%s", json_object_get_string(v))
	STR("AuthURL", auth_url);
	STR("Error", error);
#undef STR
	if (json_object_object_get_ex(o, "NodeKeyExpired", &v) && json_object_is_type(v, json_type_boolean))
		out->node_key_expired = json_object_get_boolean(v);
	if (json_object_object_get_ex(o, "MachineAuthorized", &v) &&
	    json_object_is_type(v, json_type_boolean))
		out->machine_authorized = json_object_get_boolean(v);
	if (json_object_object_get_ex(o, "Login", &v) && json_object_is_type(v, json_type_object) &&
	    json_object_object_get_ex(v, "LoginName", &v) && json_object_is_type(v, json_type_string))
		snprintf(out->login_name, sizeof out->login_name, "%s", json_object_get_string(v));
	json_object_put(o);
	return 0;
}

static void
register_done(void *ctx, int status, const char *body, size_t len, const char *err)
{
	struct ctl_client *cl = ctx;
	struct ctl_register_result res;

	cl->reg_req = NULL;
	if (err) {
		report(cl, false, "register: %s", err);
		retry(cl);
		return;
	}
	if (status != 200) {
		/* Headscale's only non-200 here is the version check (control.md §5.2). */
		report(cl, true, "the control server refused registration: HTTP %d: %.200s",
		    status, body);
		cl->running = false;
		return;
	}
	if (ctl_parse_register(body, len, &res) < 0) {
		report(cl, false, "register: the control server sent no registration");
		retry(cl);
		return;
	}
	if (res.error[0]) {
		/* A bad, used or expired auth key: the user has to act. */
		report(cl, true, "%s", res.error);
		cl->running = false;
	} else if (res.auth_url[0]) {
		free(cl->auth_url);
		cl->auth_url = xstrdup(res.auth_url);
		set_phase(cl, CTL_NEEDS_LOGIN, cl->auth_url);
		/* Follow up at once: it must be in flight when the admin approves (§5.4). */
		send_register(cl, cl->auth_url);
	} else if (res.node_key_expired) {
		if (cl->ops->registered)
			cl->ops->registered(cl->ctx, res.login_name, true);
		report(cl, true, "the node key has expired; log in again");
		cl->running = false;
	} else {
		free(cl->auth_url);
		cl->auth_url = NULL;
		cl->failures = 0;
		if (!res.machine_authorized)
			log_warn("control: registered, but the machine is not authorized yet");
		if (cl->ops->registered)
			cl->ops->registered(cl->ctx, res.login_name, false);
		start_map(cl);
	}
}

static const struct ctl_req_ops register_ops = { NULL, register_done };

static void
send_register(struct ctl_client *cl, const char *followup)
{
	char *req = ctl_register_request(&cl->cfg, followup, false);

	cl->reg_req = ctl_conn_request(cl->conn, "/machine/register", req, strlen(req), false,
	    &register_ops, cl);
	sodium_memzero(req, strlen(req));	/* it holds the auth key */
	free(req);
	if (cl->reg_req == NULL) {
		report(cl, false, "could not send the registration");
		retry(cl);
		return;
	}
	if (followup == NULL)
		set_phase(cl, CTL_REGISTERING, NULL);
}

/* --- connection --- */

static void
conn_ready(void *ctx)
{
	struct ctl_client *cl = ctx;

	log_info("control: connected to %s", cl->server_url);
	cl->conn_ready = true;
	send_register(cl, cl->phase == CTL_NEEDS_LOGIN ? cl->auth_url : NULL);
}

static void
conn_closed(void *ctx, const char *msg)
{
	struct ctl_client *cl = ctx;

	report(cl, false, "%s", msg);
	/* A failed handshake may mean the server's key changed: fetch it again. */
	if (strstr(msg, "handshake"))
		cl->have_server_key = false;
	retry(cl);
}

static const struct ctl_conn_ops conn_ops = { conn_ready, conn_closed };

static void
connect_noise(struct ctl_client *cl)
{
	char *cause = NULL;

	cl->conn = ctl_conn_new(cl->base, cl->dns, cl->server_url, MESHD_CAPVER,
	    cl->cfg.machine_priv, cl->server_pub, &conn_ops, cl, &cause);
	if (cl->conn == NULL) {
		report(cl, true, "%s", cause ? cause : "cannot connect");
		free(cause);
		cl->running = false;
	}
}

static void
key_done(void *ctx, long status, const char *body, size_t len, const char *err)
{
	struct ctl_client *cl = ctx;
	json_object *o, *v;
	const char *s;

	cl->key_fetch = NULL;
	if (err || status != 200) {
		if (err)
			report(cl, false, "fetching the control key: %s", err);
		else
			report(cl, false, "fetching the control key: HTTP %ld", status);
		retry(cl);
		return;
	}
	o = json_tokener_parse(body);
	if (o && json_object_object_get_ex(o, "publicKey", &v) &&
	    (s = json_object_get_string(v)) != NULL && strncmp(s, "mkey:", 5) == 0 &&
	    key_from_hex(cl->server_pub, s + 5) && !key_is_zero(cl->server_pub)) {
		cl->have_server_key = true;
		connect_noise(cl);
	} else {
		report(cl, false, "the control server's /key answer has no usable publicKey");
		retry(cl);
	}
	json_object_put(o);
}

static void
dial(struct ctl_client *cl)
{
	char url[1200];

	if (cl->phase != CTL_NEEDS_LOGIN)
		set_phase(cl, CTL_CONNECTING, NULL);
	if (cl->have_server_key) {
		connect_noise(cl);
		return;
	}
	snprintf(url, sizeof url, "%s%skey?v=%d", cl->server_url,
	    cl->server_url[strlen(cl->server_url) - 1] == '/' ? "" : "/", MESHD_CAPVER);
	cl->key_fetch = fetch_get(cl->fetcher, url, 4096, KEY_FETCH_TIMEOUT_MS, key_done, cl);
	if (cl->key_fetch == NULL)
		retry(cl);
}

/* --- logout --- */

static void
free_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ctl_client *cl = arg;

	if (cl->gone)
		cl->gone(cl->gone_ctx);
	ctl_client_free(cl);
}

static void
logout_done(void *ctx, int status, const char *body, size_t len, const char *err)
{
	struct ctl_client *cl = ctx;
	struct timeval now = { 0, 0 };

	cl->reg_req = NULL;
	if (err || status != 200)
		log_warn("control: logout: %s", err ? err : "refused");
	else
		log_info("control: logged out");
	evtimer_add(cl->free_ev, &now);	/* not from inside the connection's callback */
}

static const struct ctl_req_ops logout_ops = { NULL, logout_done };

static const struct ctl_client_ops quiet_ops;

void
ctl_client_logout(struct ctl_client *cl, void (*gone)(void *ctx), void *ctx)
{
	struct timeval tmo = { 5, 0 }, now = { 0, 0 };
	char *req;

	cl->gone = gone;
	cl->gone_ctx = ctx;
	cl->running = false;
	cl->logging_out = true;
	cl->ops = &quiet_ops;
	evtimer_del(cl->retry_ev);
	evtimer_del(cl->watchdog_ev);
	if (!cl->conn_ready) {
		free_cb(-1, 0, cl);
		return;
	}
	if (cl->map_req) {
		ctl_req_cancel(cl->map_req);
		cl->map_req = NULL;
	}
	req = ctl_register_request(&cl->cfg, NULL, true);
	cl->reg_req = ctl_conn_request(cl->conn, "/machine/register", req, strlen(req), false,
	    &logout_ops, cl);
	sodium_memzero(req, strlen(req));
	free(req);
	/* Give the server a few seconds, then go regardless. */
	evtimer_add(cl->free_ev, cl->reg_req ? &tmo : &now);
}

/* --- life cycle --- */

struct ctl_client *
ctl_client_new(struct event_base *base, struct evdns_base *dns, const struct ctl_client_cfg *cfg,
    const struct ctl_client_ops *ops, void *ctx)
{
	struct ctl_client *cl = xcalloc(1, sizeof *cl);

	cl->base = base;
	cl->dns = dns;
	cl->ops = ops;
	cl->ctx = ctx;
	cl->cfg = *cfg;
	cl->server_url = xstrdup(cfg->server_url);
	cl->hostname = xstrdup(cfg->hostname);
	cl->auth_key = cfg->auth_key ? xstrdup(cfg->auth_key) : NULL;
	cl->os_version = cfg->os_version ? xstrdup(cfg->os_version) : NULL;
	cl->routes = xcalloc(cfg->n_routes + 1, sizeof *cl->routes);
	for (unsigned int i = 0; i < cfg->n_routes; i++)
		cl->routes[i] = xstrdup(cfg->routes[i]);
	cl->cfg.server_url = cl->server_url;
	cl->cfg.hostname = cl->hostname;
	cl->cfg.auth_key = cl->auth_key;
	cl->cfg.os_version = cl->os_version;
	cl->cfg.routes = (const char *const *)cl->routes;
	cl->fetcher = fetcher_new(base);
	cl->nm = netmap_new();
	cl->retry_ev = evtimer_new(base, retry_cb, cl);
	cl->watchdog_ev = evtimer_new(base, watchdog_cb, cl);
	cl->free_ev = evtimer_new(base, free_cb, cl);
	if (cl->fetcher == NULL || cl->retry_ev == NULL || cl->watchdog_ev == NULL ||
	    cl->free_ev == NULL) {
		ctl_client_free(cl);
		return NULL;
	}
	return cl;
}

void
ctl_client_free(struct ctl_client *cl)
{
	if (cl == NULL)
		return;
	drop_conn(cl);
	fetch_cancel(cl->key_fetch);
	fetch_cancel(cl->ping_fetch);
	fetcher_free(cl->fetcher);
	free(cl->ping_url);
	if (cl->retry_ev)
		event_free(cl->retry_ev);
	if (cl->watchdog_ev)
		event_free(cl->watchdog_ev);
	if (cl->free_ev)
		event_free(cl->free_ev);
	netmap_free(cl->nm);
	if (cl->auth_key) {
		sodium_memzero(cl->auth_key, strlen(cl->auth_key));
		free(cl->auth_key);
	}
	for (unsigned int i = 0; i < cl->cfg.n_routes; i++)
		free(cl->routes[i]);
	free(cl->routes);
	free(cl->server_url);
	free(cl->hostname);
	free(cl->os_version);
	free(cl->auth_url);
	free(cl);
}

void
ctl_client_start(struct ctl_client *cl)
{
	if (cl->running)
		return;
	cl->running = true;
	cl->failures = 0;
	dial(cl);
}

void
ctl_client_stop(struct ctl_client *cl)
{
	cl->running = false;
	evtimer_del(cl->retry_ev);
	fetch_cancel(cl->key_fetch);
	cl->key_fetch = NULL;
	drop_conn(cl);
	set_phase(cl, CTL_IDLE, NULL);
}

enum ctl_phase
ctl_client_phase(const struct ctl_client *cl)
{
	return cl->phase;
}

struct netmap *
ctl_client_netmap(struct ctl_client *cl)
{
	return cl->nm;
}

// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * The local API's JSON contract (localapi.h §A–§G): encoders from the C
 * structs the daemon fills, decoders of the request bodies the daemon
 * receives.  json-c stays inside this file: nothing here hands a
 * json_object to a caller.
 *
 * Decoders treat the body as hostile: one object, at most LAPI_JSON_DEPTH
 * deep, no NUL bytes (json-c would stop at one and leave the rest
 * unchecked), nothing but whitespace after it, each known member of the
 * type it must have (null counts as absent, as in Go), unknown members
 * ignored (STYLE §42).  Error messages name members, never values: an up
 * body carries an auth key.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <sodium.h>

#include "agent/localapi/localapi.h"
#include "common/version.h"

#define LAPI_JSON_DEPTH		16
#define LAPI_JSON_STR_MAX	(64 * 1024)
#define LAPI_JSON_LIST_MAX	4096

#define OUT_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* --- building ----------------------------------------------------------- */

/* Tracks allocation failure across a whole document. */
struct jb {
	bool oom;
};

static json_object *
chk(struct jb *b, json_object *v)
{
	if (v == NULL)
		b->oom = true;
	return v;
}

static void
put(struct jb *b, json_object *o, const char *k, json_object *v)
{
	if (v == NULL) {
		b->oom = true;
		return;
	}
	if (o == NULL || json_object_object_add(o, k, v) != 0) {
		json_object_put(v);
		b->oom = true;
	}
}

static void
put_str(struct jb *b, json_object *o, const char *k, const char *s)
{
	put(b, o, k, json_object_new_string(s != NULL ? s : ""));
}

static void
put_bool(struct jb *b, json_object *o, const char *k, bool v)
{
	put(b, o, k, json_object_new_boolean(v));
}

static void
put_int(struct jb *b, json_object *o, const char *k, int64_t v)
{
	put(b, o, k, json_object_new_int64(v));
}

/*
 * A float64 as Go's encoding/json writes it: the shortest digits that read
 * back the same, in plain notation unless the magnitude is below 1e-6 or
 * at least 1e21 ("1e-07" then loses its exponent's zero).  json-c's own
 * form differs ("0.0" for 0).  Not finite: 0 (Go refuses to encode it).
 */
static json_object *
new_go_float(double v)
{
	char e[40], out[400];
	double a;
	int prec, exp10, decimals;
	char *p;

	if (!isfinite(v))
		v = 0;
	for (prec = 1; prec < 17; prec++) {
		snprintf(e, sizeof e, "%.*e", prec - 1, v);
		if (strtod(e, NULL) == v)
			break;
	}
	snprintf(e, sizeof e, "%.*e", prec - 1, v);
	a = fabs(v);
	if (a != 0 && (a < 1e-6 || a >= 1e21)) {
		size_t n = strlen(e);

		if (n >= 4 && e[n - 4] == 'e' && e[n - 3] == '-' && e[n - 2] == '0') {
			e[n - 2] = e[n - 1];
			e[n - 1] = '\0';
		}
		return json_object_new_double_s(v, e);
	}
	p = strchr(e, 'e');
	exp10 = p != NULL ? atoi(p + 1) : 0;
	decimals = prec - 1 - exp10;
	snprintf(out, sizeof out, "%.*f", decimals > 0 ? decimals : 0, v);
	return json_object_new_double_s(v, out);
}

static json_object *
new_strv(struct jb *b, const char *const *v, size_t n)
{
	json_object *a = chk(b, json_object_new_array_ext(n < 1024 ? (int)n : 1024));

	if (a == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		json_object *s = json_object_new_string(v[i] != NULL ? v[i] : "");

		if (s == NULL || json_object_array_add(a, s) != 0) {
			json_object_put(s);
			b->oom = true;
		}
	}
	return a;
}

static void
put_strv(struct jb *b, json_object *o, const char *k, struct lapi_strv v)
{
	put(b, o, k, new_strv(b, v.v, v.n));
}

static void
put_strv_nonempty(struct jb *b, json_object *o, const char *k, struct lapi_strv v)
{
	if (v.n > 0)
		put_strv(b, o, k, v);
}

static void
put_time(struct jb *b, json_object *o, const char *k, struct lapi_time t)
{
	char buf[40];

	lapi_time_format(t, buf);
	put_str(b, o, k, buf);
}

/* json-c's null is the NULL object. */
static void
put_null(struct jb *b, json_object *o, const char *k)
{
	if (o == NULL || json_object_object_add(o, k, NULL) != 0)
		b->oom = true;
}

static void
put_tristate(struct jb *b, json_object *o, const char *k, enum lapi_tristate t)
{
	if (t == LAPI_UNKNOWN)
		put_null(b, o, k);
	else
		put_bool(b, o, k, t == LAPI_YES);
}

/* Serialises root (and frees it); NULL if anything failed. */
static char *
finish(struct jb *b, json_object *root, bool newline)
{
	const char *s;
	char *out = NULL;
	size_t n;

	if (root == NULL || b->oom) {
		json_object_put(root);
		return NULL;
	}
	s = json_object_to_json_string_ext(root, OUT_FLAGS);
	if (s != NULL) {
		n = strlen(s);
		out = malloc(n + 2);
		if (out != NULL) {
			memcpy(out, s, n);
			if (newline)
				out[n++] = '\n';
			out[n] = '\0';
		}
	}
	json_object_put(root);
	return out;
}

/* --- times -------------------------------------------------------------- */

static const char zero_time[] = "0001-01-01T00:00:00Z";

void
lapi_time_format(struct lapi_time t, char buf[static 40])
{
	struct tm tm;
	time_t s = (time_t)t.sec;
	size_t n;

	if ((t.sec == 0 && t.nsec == 0) || t.nsec < 0 || t.nsec >= 1000000000 ||
	    gmtime_r(&s, &tm) == NULL || tm.tm_year > 9999 - 1900 ||
	    tm.tm_year < 1 - 1900) {
		memcpy(buf, zero_time, sizeof zero_time);
		return;
	}
	n = strftime(buf, 40, "%Y-%m-%dT%H:%M:%S", &tm);
	if (t.nsec != 0) {
		char frac[16];
		size_t fl;

		snprintf(frac, sizeof frac, ".%09d", (int)t.nsec);
		fl = strlen(frac);
		while (fl > 1 && frac[fl - 1] == '0')
			fl--;
		memcpy(buf + n, frac, fl);
		n += fl;
	}
	buf[n++] = 'Z';
	buf[n] = '\0';
}

static bool
digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

int
lapi_time_parse(const char *s, struct lapi_time *t)
{
	struct tm tm = { 0 };
	int year, mon, day, hour, min, sec, nsec = 0, off = 0;
	const char *p;
	time_t base;

	*t = (struct lapi_time){ 0, 0 };
	if (s == NULL || strlen(s) < 20)
		return -EINVAL;
	if (!digits(s, 4, &year) || s[4] != '-' || !digits(s + 5, 2, &mon) ||
	    s[7] != '-' || !digits(s + 8, 2, &day) ||
	    (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
	    !digits(s + 11, 2, &hour) || s[13] != ':' ||
	    !digits(s + 14, 2, &min) || s[16] != ':' || !digits(s + 17, 2, &sec))
		return -EINVAL;
	if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 ||
	    min > 59 || sec > 60)
		return -EINVAL;
	p = s + 19;
	if (*p == '.') {
		int nd = 0;

		for (p++; *p >= '0' && *p <= '9'; p++, nd++)
			if (nd < 9)
				nsec = nsec * 10 + (*p - '0');
		if (nd == 0)
			return -EINVAL;
		for (; nd < 9; nd++)
			nsec *= 10;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh, om;

		if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) ||
		    oh > 23 || om > 59)
			return -EINVAL;
		off = (oh * 60 + om) * 60 * (*p == '-' ? -1 : 1);
		p += 6;
	} else {
		return -EINVAL;
	}
	if (*p != '\0')
		return -EINVAL;
	if (year <= 1)
		return 0;	/* Go's zero time and earlier: never */
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	base = timegm(&tm);
	t->sec = (int64_t)base - off;
	t->nsec = nsec;
	return 0;
}

/* --- small encoders ----------------------------------------------------- */

char *
lapi_error_json(const char *msg)
{
	struct jb b = { 0 };
	json_object *o = chk(&b, json_object_new_object());

	put_str(&b, o, "error", msg);
	return finish(&b, o, false);
}

char *
lapi_notify_json(const struct lapi_notify *n)
{
	struct jb b = { 0 };
	json_object *o = chk(&b, json_object_new_object());

	if (n->state != NULL)
		put_str(&b, o, "State", n->state);
	if (n->browse_to_url != NULL)
		put_str(&b, o, "BrowseToURL", n->browse_to_url);
	if (n->err_message != NULL)
		put_str(&b, o, "ErrMessage", n->err_message);
	return finish(&b, o, true);
}

char *
lapi_ping_result_json(const struct lapi_ping_result *pr)
{
	struct jb b = { 0 };
	json_object *o = chk(&b, json_object_new_object());

	put_str(&b, o, "IP", pr->ip);
	put_str(&b, o, "NodeIP", pr->node_ip);
	put_str(&b, o, "NodeName", pr->node_name);
	put_str(&b, o, "Err", pr->err);
	put(&b, o, "LatencySeconds", new_go_float(pr->latency_seconds));
	put_str(&b, o, "Endpoint", pr->endpoint);
	put_str(&b, o, "PeerRelay", pr->peer_relay);
	put_int(&b, o, "DERPRegionID", pr->derp_region_id);
	put_str(&b, o, "DERPRegionCode", pr->derp_region_code);
	if (pr->peer_api_port != 0)
		put_int(&b, o, "PeerAPIPort", pr->peer_api_port);
	if (pr->peer_api_url != NULL && pr->peer_api_url[0] != '\0')
		put_str(&b, o, "PeerAPIURL", pr->peer_api_url);
	if (pr->is_local_ip)
		put_bool(&b, o, "IsLocalIP", true);
	return finish(&b, o, false);
}

static json_object *
user_profile(struct jb *b, const struct lapi_user_profile *u)
{
	json_object *o = chk(b, json_object_new_object());

	put_int(b, o, "ID", u->id);
	put_str(b, o, "LoginName", u->login_name);
	put_str(b, o, "DisplayName", u->display_name);
	put_str(b, o, "ProfilePicURL", u->profile_pic_url);
	return o;
}

char *
lapi_whois_json(const struct lapi_whois *w)
{
	struct jb b = { 0 };
	json_object *o = chk(&b, json_object_new_object());
	json_object *node = chk(&b, json_object_new_object());
	json_object *hi = chk(&b, json_object_new_object());
	json_object *caps = chk(&b, json_object_new_object());

	put_int(&b, node, "ID", w->node_id);
	put_str(&b, node, "StableID", w->stable_id);
	put_str(&b, node, "Name", w->name);
	put_strv(&b, node, "Addresses", w->addresses);
	put_strv(&b, node, "AllowedIPs", w->allowed_ips);
	put_strv_nonempty(&b, node, "Tags", w->tags);
	put_str(&b, hi, "Hostname", w->host_name);
	put_str(&b, hi, "OS", w->os);
	put(&b, node, "Hostinfo", hi);
	put(&b, o, "Node", node);
	put(&b, o, "UserProfile", user_profile(&b, &w->user));
	for (size_t i = 0; i < w->caps.n; i++)
		put(&b, caps, w->caps.v[i] != NULL ? w->caps.v[i] : "",
		    json_object_new_array());
	put(&b, o, "CapMap", caps);
	return finish(&b, o, false);
}

/* Region IDs as Go's encoding/json orders map[int] keys: as strings. */
struct region_key {
	char id[16];
	const struct lapi_derp_region *rg;
};

static int
region_key_cmp(const void *a, const void *b)
{
	return strcmp(((const struct region_key *)a)->id,
	    ((const struct region_key *)b)->id);
}

/* One map[int]time.Duration of latencies; which picks the member. */
static json_object *
latency_map(struct jb *b, const struct region_key *keys, size_t n, int which)
{
	json_object *m = chk(b, json_object_new_object());

	for (size_t i = 0; i < n; i++) {
		const struct lapi_derp_region *rg = keys[i].rg;

		if (which == 0 && rg->latency_ns >= 0)
			put_int(b, m, keys[i].id, rg->latency_ns);
		else if (which == 4 && rg->v4_ns > 0)
			put_int(b, m, keys[i].id, rg->v4_ns);
		else if (which == 6 && rg->v6_ns > 0)
			put_int(b, m, keys[i].id, rg->v6_ns);
	}
	return m;
}

char *
lapi_netcheck_json(const struct lapi_netcheck *nc)
{
	struct jb b = { 0 };
	json_object *o = chk(&b, json_object_new_object());
	json_object *r = chk(&b, json_object_new_object());
	json_object *dm = chk(&b, json_object_new_object());
	json_object *regions = chk(&b, json_object_new_object());
	struct region_key *keys = NULL;

	if (nc->n_regions > 0) {
		keys = calloc(nc->n_regions, sizeof *keys);
		if (keys == NULL)
			b.oom = true;
	}
	for (size_t i = 0; keys != NULL && i < nc->n_regions; i++) {
		snprintf(keys[i].id, sizeof keys[i].id, "%d", nc->regions[i].id);
		keys[i].rg = &nc->regions[i];
	}
	if (keys != NULL)
		qsort(keys, nc->n_regions, sizeof *keys, region_key_cmp);

	/* net/netcheck.Report, member for member. */
	put_time(&b, r, "Now", nc->now);
	put_bool(&b, r, "UDP", nc->udp);
	put_bool(&b, r, "IPv6", nc->ipv6);
	put_bool(&b, r, "IPv4", nc->ipv4);
	put_bool(&b, r, "IPv6CanSend", nc->ipv6_can_send);
	put_bool(&b, r, "IPv4CanSend", nc->ipv4_can_send);
	put_bool(&b, r, "OSHasIPv6", nc->os_has_ipv6);
	put_bool(&b, r, "ICMPv4", nc->icmpv4);
	put_tristate(&b, r, "MappingVariesByDestIP", nc->mapping_varies_by_dest_ip);
	put_tristate(&b, r, "UPnP", nc->upnp);
	put_tristate(&b, r, "PMP", nc->pmp);
	put_tristate(&b, r, "PCP", nc->pcp);
	put_int(&b, r, "PreferredDERP", nc->preferred_derp);
	if (keys != NULL || nc->n_regions == 0) {
		put(&b, r, "RegionLatency", latency_map(&b, keys, nc->n_regions, 0));
		put(&b, r, "RegionV4Latency", latency_map(&b, keys, nc->n_regions, 4));
		put(&b, r, "RegionV6Latency", latency_map(&b, keys, nc->n_regions, 6));
	}
	put_null(&b, r, "GlobalV4Counters");
	put_null(&b, r, "GlobalV6Counters");
	put_str(&b, r, "GlobalV4", nc->global_v4);
	put_str(&b, r, "GlobalV6", nc->global_v6);
	put_null(&b, r, "CaptivePortal");

	for (size_t i = 0; keys != NULL && i < nc->n_regions; i++) {
		const struct lapi_derp_region *rg = keys[i].rg;
		json_object *ro = chk(&b, json_object_new_object());

		put_int(&b, ro, "RegionID", rg->id);
		put_str(&b, ro, "RegionCode", rg->code);
		put_str(&b, ro, "RegionName", rg->name);
		put(&b, regions, keys[i].id, ro);
	}
	free(keys);
	put(&b, o, "Report", r);
	put(&b, dm, "Regions", regions);
	put(&b, o, "DERPMap", dm);
	return finish(&b, o, false);
}

static json_object *
resolvers(struct jb *b, struct lapi_strv v)
{
	json_object *a = chk(b, json_object_new_array());

	for (size_t i = 0; i < v.n; i++) {
		json_object *r = chk(b, json_object_new_object());

		put_str(b, r, "Addr", v.v[i]);
		if (r != NULL && (a == NULL || json_object_array_add(a, r) != 0)) {
			json_object_put(r);
			b->oom = true;
		}
	}
	return a;
}

char *
lapi_dns_status_json(const struct lapi_dns_status *ds)
{
	struct jb b = { 0 };
	json_object *o = chk(&b, json_object_new_object());

	put_bool(&b, o, "TailscaleDNS", ds->tailscale_dns);
	if (ds->has_tailnet) {
		json_object *t = chk(&b, json_object_new_object());

		put_bool(&b, t, "MagicDNSEnabled", ds->magic_dns_enabled);
		if (ds->magic_dns_suffix != NULL && ds->magic_dns_suffix[0] != '\0')
			put_str(&b, t, "MagicDNSSuffix", ds->magic_dns_suffix);
		if (ds->self_dns_name != NULL && ds->self_dns_name[0] != '\0')
			put_str(&b, t, "SelfDNSName", ds->self_dns_name);
		put(&b, o, "CurrentTailnet", t);
	}
	if (ds->resolvers.n > 0)
		put(&b, o, "Resolvers", resolvers(&b, ds->resolvers));
	if (ds->n_routes > 0) {
		json_object *m = chk(&b, json_object_new_object());

		for (size_t i = 0; i < ds->n_routes; i++)
			put(&b, m, ds->routes[i].suffix != NULL ? ds->routes[i].suffix : "",
			    resolvers(&b, ds->routes[i].resolvers));
		put(&b, o, "SplitDNSRoutes", m);
	}
	if (ds->fallback_resolvers.n > 0)
		put(&b, o, "FallbackResolvers", resolvers(&b, ds->fallback_resolvers));
	put_strv_nonempty(&b, o, "SearchDomains", ds->search_domains);
	put_strv_nonempty(&b, o, "Nameservers", ds->nameservers);
	put_strv_nonempty(&b, o, "CertDomains", ds->cert_domains);
	if (ds->n_extra_records > 0) {
		json_object *a = chk(&b, json_object_new_array());

		for (size_t i = 0; i < ds->n_extra_records; i++) {
			const struct lapi_dns_record *er = &ds->extra_records[i];
			json_object *r = chk(&b, json_object_new_object());

			put_str(&b, r, "Name", er->name);
			if (er->type != NULL && er->type[0] != '\0')
				put_str(&b, r, "Type", er->type);
			put_str(&b, r, "Value", er->value);
			if (r != NULL && (a == NULL || json_object_array_add(a, r) != 0)) {
				json_object_put(r);
				b.oom = true;
			}
		}
		put(&b, o, "ExtraRecords", a);
	}
	put_strv_nonempty(&b, o, "ExitNodeFilteredSet", ds->exit_node_filtered_set);
	if (ds->has_system) {
		json_object *s = chk(&b, json_object_new_object());

		put_strv_nonempty(&b, s, "Nameservers", ds->sys_nameservers);
		put_strv_nonempty(&b, s, "SearchDomains", ds->sys_search_domains);
		put_strv_nonempty(&b, s, "MatchDomains", ds->sys_match_domains);
		put(&b, o, "SystemDNS", s);
	}
	if (ds->system_error != NULL && ds->system_error[0] != '\0')
		put_str(&b, o, "SystemDNSError", ds->system_error);
	return finish(&b, o, false);
}

/* --- status ------------------------------------------------------------- */

static json_object *
peer_status(struct jb *b, const struct lapi_peer_status *ps)
{
	json_object *o = chk(b, json_object_new_object());

	put_str(b, o, "ID", ps->id);
	put_int(b, o, "NodeID", ps->node_id);
	put_str(b, o, "PublicKey", ps->public_key);
	put_str(b, o, "HostName", ps->host_name);
	put_str(b, o, "DNSName", ps->dns_name);
	put_str(b, o, "OS", ps->os);
	put_int(b, o, "UserID", ps->user_id);
	put_strv(b, o, "TailscaleIPs", ps->tailscale_ips);
	put_strv_nonempty(b, o, "AllowedIPs", ps->allowed_ips);
	put_strv_nonempty(b, o, "Tags", ps->tags);
	put_strv_nonempty(b, o, "PrimaryRoutes", ps->primary_routes);
	put_strv(b, o, "Addrs", ps->addrs);
	put_str(b, o, "CurAddr", ps->cur_addr);
	put_str(b, o, "Relay", ps->relay);
	put_str(b, o, "PeerRelay", ps->peer_relay);
	put_int(b, o, "RxBytes", ps->rx_bytes);
	put_int(b, o, "TxBytes", ps->tx_bytes);
	put_time(b, o, "Created", ps->created);
	put_time(b, o, "LastWrite", ps->last_write);
	put_time(b, o, "LastSeen", ps->last_seen);
	put_time(b, o, "LastHandshake", ps->last_handshake);
	put_bool(b, o, "Online", ps->online);
	put_bool(b, o, "ExitNode", ps->exit_node);
	put_bool(b, o, "ExitNodeOption", ps->exit_node_option);
	put_bool(b, o, "Active", ps->active);
	put_bool(b, o, "InNetworkMap", ps->in_network_map);
	put_bool(b, o, "InMagicSock", ps->in_magic_sock);
	put_bool(b, o, "InEngine", ps->in_engine);
	if (ps->expired)
		put_bool(b, o, "Expired", true);
	if (ps->has_key_expiry)
		put_time(b, o, "KeyExpiry", ps->key_expiry);
	return o;
}

char *
lapi_status_json(const struct lapi_status *st)
{
	struct jb b = { 0 };
	json_object *o = chk(&b, json_object_new_object());

	put_str(&b, o, "Version", st->version != NULL ? st->version : MESHD_VERSION);
	put_bool(&b, o, "TUN", st->tun);
	put_str(&b, o, "BackendState", st->backend_state != NULL ?
	    st->backend_state : "NoState");
	if (st->have_node_key)
		put_bool(&b, o, "HaveNodeKey", true);
	put_str(&b, o, "AuthURL", st->auth_url);
	put_strv(&b, o, "TailscaleIPs", st->tailscale_ips);
	if (st->self != NULL)
		put(&b, o, "Self", peer_status(&b, st->self));
	else
		put_null(&b, o, "Self");
	if (st->has_exit_node_status) {
		json_object *e = chk(&b, json_object_new_object());

		put_str(&b, e, "ID", st->exit_node_id);
		put_bool(&b, e, "Online", st->exit_node_online);
		put_strv(&b, e, "TailscaleIPs", st->exit_node_ips);
		put(&b, o, "ExitNodeStatus", e);
	}
	put_strv(&b, o, "Health", st->health);
	put_str(&b, o, "MagicDNSSuffix", st->magic_dns_suffix);
	if (st->has_tailnet) {
		json_object *t = chk(&b, json_object_new_object());

		put_str(&b, t, "Name", st->tailnet_name);
		put_str(&b, t, "MagicDNSSuffix", st->magic_dns_suffix);
		put_bool(&b, t, "MagicDNSEnabled", st->magic_dns_enabled);
		put(&b, o, "CurrentTailnet", t);
	} else {
		put_null(&b, o, "CurrentTailnet");
	}
	put_strv(&b, o, "CertDomains", st->cert_domains);
	if (!st->omit_peers) {
		json_object *peers = chk(&b, json_object_new_object());

		for (size_t i = 0; i < st->n_peers && !b.oom; i++) {
			const struct lapi_peer_status *ps = &st->peers[i];

			put(&b, peers, ps->public_key != NULL ? ps->public_key : "",
			    peer_status(&b, ps));
		}
		put(&b, o, "Peer", peers);
	}
	{
		json_object *users = chk(&b, json_object_new_object());

		for (size_t i = 0; i < st->n_users && !b.oom; i++) {
			char id[24];

			snprintf(id, sizeof id, "%lld", (long long)st->users[i].id);
			put(&b, users, id, user_profile(&b, &st->users[i]));
		}
		put(&b, o, "User", users);
	}
	return finish(&b, o, false);
}

/* --- prefs -------------------------------------------------------------- */

enum ftype { F_STR, F_BOOL, F_STRV, F_INT };

struct pref_field {
	const char *name;
	const char *set_name;
	enum ftype type;
	size_t off;
	size_t n_off;		/* F_STRV: the count */
	unsigned bit;
};

#define P(f) offsetof(struct lapi_prefs, f)

static const struct pref_field pref_fields[] = {
	{ "ControlURL", "ControlURLSet", F_STR, P(control_url), 0,
	    LAPI_PREF_CONTROL_URL },
	{ "RouteAll", "RouteAllSet", F_BOOL, P(route_all), 0, LAPI_PREF_ROUTE_ALL },
	{ "ExitNodeID", "ExitNodeIDSet", F_STR, P(exit_node_id), 0,
	    LAPI_PREF_EXIT_NODE_ID },
	{ "ExitNodeIP", "ExitNodeIPSet", F_STR, P(exit_node_ip), 0,
	    LAPI_PREF_EXIT_NODE_IP },
	{ "ExitNodeAllowLANAccess", "ExitNodeAllowLANAccessSet", F_BOOL,
	    P(exit_node_allow_lan_access), 0, LAPI_PREF_EXIT_NODE_ALLOW_LAN },
	{ "CorpDNS", "CorpDNSSet", F_BOOL, P(corp_dns), 0, LAPI_PREF_CORP_DNS },
	{ "RunSSH", "RunSSHSet", F_BOOL, P(run_ssh), 0, LAPI_PREF_RUN_SSH },
	{ "WantRunning", "WantRunningSet", F_BOOL, P(want_running), 0,
	    LAPI_PREF_WANT_RUNNING },
	{ "LoggedOut", "LoggedOutSet", F_BOOL, P(logged_out), 0,
	    LAPI_PREF_LOGGED_OUT },
	{ "ShieldsUp", "ShieldsUpSet", F_BOOL, P(shields_up), 0,
	    LAPI_PREF_SHIELDS_UP },
	{ "AdvertiseTags", "AdvertiseTagsSet", F_STRV, P(advertise_tags),
	    P(n_advertise_tags), LAPI_PREF_ADVERTISE_TAGS },
	{ "Hostname", "HostnameSet", F_STR, P(hostname), 0, LAPI_PREF_HOSTNAME },
	{ "AdvertiseRoutes", "AdvertiseRoutesSet", F_STRV, P(advertise_routes),
	    P(n_advertise_routes), LAPI_PREF_ADVERTISE_ROUTES },
	{ "NoSNAT", "NoSNATSet", F_BOOL, P(no_snat), 0, LAPI_PREF_NO_SNAT },
	{ "NetfilterMode", "NetfilterModeSet", F_INT, P(netfilter_mode), 0,
	    LAPI_PREF_NETFILTER_MODE },
};

#undef P

typedef char **strv_t;

#define FIELD(p, f, T) ((T *)((char *)(p) + (f)->off))
#define CFIELD(p, f, T) ((const T *)((const char *)(p) + (f)->off))
#define NFIELD(p, f) ((size_t *)((char *)(p) + (f)->n_off))
#define CNFIELD(p, f) ((const size_t *)((const char *)(p) + (f)->n_off))

static void
strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void
lapi_prefs_init_default(struct lapi_prefs *p)
{
	memset(p, 0, sizeof *p);
	p->corp_dns = true;
	p->netfilter_mode = LAPI_NETFILTER_ON;
}

void
lapi_prefs_clear(struct lapi_prefs *p)
{
	for (size_t i = 0; i < sizeof pref_fields / sizeof pref_fields[0]; i++) {
		const struct pref_field *f = &pref_fields[i];

		if (f->type == F_STR)
			free(*FIELD(p, f, char *));
		else if (f->type == F_STRV)
			strv_free(*FIELD(p, f, char **), *NFIELD(p, f));
	}
	memset(p, 0, sizeof *p);
}

static int
strv_dup(char ***out, size_t *n_out, char *const *v, size_t n)
{
	char **c = NULL;

	if (n > 0) {
		c = calloc(n, sizeof *c);
		if (c == NULL)
			return -ENOMEM;
		for (size_t i = 0; i < n; i++) {
			c[i] = strdup(v[i] != NULL ? v[i] : "");
			if (c[i] == NULL) {
				strv_free(c, i);
				return -ENOMEM;
			}
		}
	}
	*out = c;
	*n_out = n;
	return 0;
}

int
lapi_prefs_apply(struct lapi_prefs *dst, const struct lapi_prefs *src, uint32_t mask)
{
	for (size_t i = 0; i < sizeof pref_fields / sizeof pref_fields[0]; i++) {
		const struct pref_field *f = &pref_fields[i];

		if ((mask & f->bit) == 0)
			continue;
		switch (f->type) {
		case F_STR: {
			const char *s = *CFIELD(src, f, char *);
			char *c = NULL;

			if (s != NULL && (c = strdup(s)) == NULL)
				return -ENOMEM;
			free(*FIELD(dst, f, char *));
			*FIELD(dst, f, char *) = c;
			break;
		}
		case F_BOOL:
			*FIELD(dst, f, bool) = *CFIELD(src, f, bool);
			break;
		case F_INT:
			*FIELD(dst, f, int) = *CFIELD(src, f, int);
			break;
		case F_STRV: {
			char **c;
			size_t n;

			if (strv_dup(&c, &n, *CFIELD(src, f, strv_t),
			    *CNFIELD(src, f)) != 0)
				return -ENOMEM;
			strv_free(*FIELD(dst, f, char **), *NFIELD(dst, f));
			*FIELD(dst, f, char **) = c;
			*NFIELD(dst, f) = n;
			break;
		}
		}
	}
	return 0;
}

static void
prefs_put(struct jb *b, json_object *o, const struct lapi_prefs *p, uint32_t mask,
    bool with_set)
{
	for (size_t i = 0; i < sizeof pref_fields / sizeof pref_fields[0]; i++) {
		const struct pref_field *f = &pref_fields[i];

		if ((mask & f->bit) == 0)
			continue;
		switch (f->type) {
		case F_STR:
			put_str(b, o, f->name, *CFIELD(p, f, char *));
			break;
		case F_BOOL:
			put_bool(b, o, f->name, *CFIELD(p, f, bool));
			break;
		case F_INT:
			put_int(b, o, f->name, *CFIELD(p, f, int));
			break;
		case F_STRV:
			put(b, o, f->name, new_strv(b,
			    (const char *const *)*CFIELD(p, f, strv_t),
			    *CNFIELD(p, f)));
			break;
		}
		if (with_set)
			put_bool(b, o, f->set_name, true);
	}
}

char *
lapi_prefs_json(const struct lapi_prefs *p)
{
	struct jb b = { 0 };
	json_object *o = chk(&b, json_object_new_object());

	prefs_put(&b, o, p, UINT32_MAX, false);
	return finish(&b, o, false);
}

char *
lapi_masked_prefs_json(const struct lapi_masked_prefs *mp)
{
	struct jb b = { 0 };
	json_object *o = chk(&b, json_object_new_object());

	prefs_put(&b, o, &mp->prefs, mp->set, true);
	return finish(&b, o, false);
}

char *
lapi_up_request_json(const struct lapi_up_request *up)
{
	struct jb b = { 0 };
	json_object *o = chk(&b, json_object_new_object());
	json_object *p = chk(&b, json_object_new_object());
	char *out;

	put_str(&b, o, "AuthKey", up->auth_key);
	put_bool(&b, o, "ForceReauth", up->force_reauth);
	put_bool(&b, o, "Reset", up->reset);
	put(&b, o, "Timeout", json_object_new_double(
	    isfinite(up->timeout_sec) && up->timeout_sec > 0 ? up->timeout_sec : 0));
	prefs_put(&b, p, &up->prefs.prefs, up->prefs.set, true);
	put(&b, o, "Prefs", p);
	out = finish(&b, o, false);
	return out;
}

/* --- decoding ----------------------------------------------------------- */

static int
perr(char **cause, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
perr(char **cause, const char *fmt, ...)
{
	va_list ap;

	if (cause != NULL) {
		va_start(ap, fmt);
		if (vasprintf(cause, fmt, ap) < 0)
			*cause = NULL;
		va_end(ap);
	}
	return -EINVAL;
}

static int
parse_object(const char *body, size_t len, json_object **out, char **cause)
{
	json_tokener *tok;
	json_object *o;
	size_t end;

	*out = NULL;
	if (len > LAPI_MAX_BODY)
		return perr(cause, "body too large");
	if (body == NULL || len == 0)
		return perr(cause, "empty body: want a JSON object");
	if (memchr(body, '\0', len) != NULL)
		return perr(cause, "body contains a NUL byte");
	tok = json_tokener_new_ex(LAPI_JSON_DEPTH);
	if (tok == NULL)
		return -ENOMEM;
	o = json_tokener_parse_ex(tok, body, (int)len);
	end = json_tokener_get_parse_end(tok);
	if (o == NULL && json_tokener_get_error(tok) == json_tokener_continue) {
		/* A lone number is only complete at the end of input. */
		o = json_tokener_parse_ex(tok, "", 1);
		end = len;
	}
	if (o == NULL) {
		enum json_tokener_error e = json_tokener_get_error(tok);

		json_tokener_free(tok);
		return perr(cause, "body is not valid JSON: %s",
		    json_tokener_error_desc(e));
	}
	json_tokener_free(tok);
	for (; end < len; end++) {
		char c = body[end];

		if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
			json_object_put(o);
			return perr(cause, "trailing data after the JSON object");
		}
	}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return perr(cause, "body is not a JSON object");
	}
	*out = o;
	return 0;
}

/* The member k of o, or NULL when absent or null. */
static json_object *
member(json_object *o, const char *k)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v))
		return NULL;
	return v;
}

static int
get_bool(json_object *o, const char *k, bool *out, char **cause)
{
	json_object *v = member(o, k);

	if (v == NULL)
		return 0;
	if (!json_object_is_type(v, json_type_boolean))
		return perr(cause, "%s: want true or false", k);
	*out = json_object_get_boolean(v);
	return 0;
}

static int
check_str(json_object *v, const char *k, char **cause)
{
	int n = json_object_get_string_len(v);
	const char *s = json_object_get_string(v);

	if (n < 0 || n > LAPI_JSON_STR_MAX)
		return perr(cause, "%s: string too long", k);
	if (memchr(s, '\0', (size_t)n) != NULL)
		return perr(cause, "%s: string contains a NUL", k);
	return 0;
}

static int
get_str(json_object *o, const char *k, char **out, char **cause)
{
	json_object *v = member(o, k);
	char *c;

	if (v == NULL)
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return perr(cause, "%s: want a string", k);
	if (check_str(v, k, cause) != 0)
		return -EINVAL;
	c = strdup(json_object_get_string(v));
	if (c == NULL)
		return -ENOMEM;
	free(*out);
	*out = c;
	return 0;
}

static int
get_strv(json_object *o, const char *k, char ***out, size_t *n_out, char **cause)
{
	json_object *v = member(o, k);
	char **c;
	size_t n;

	if (v == NULL)
		return 0;
	if (!json_object_is_type(v, json_type_array))
		return perr(cause, "%s: want a list of strings", k);
	n = json_object_array_length(v);
	if (n > LAPI_JSON_LIST_MAX)
		return perr(cause, "%s: too many entries", k);
	c = n > 0 ? calloc(n, sizeof *c) : NULL;
	if (n > 0 && c == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(v, i);

		if (e == NULL || !json_object_is_type(e, json_type_string) ||
		    check_str(e, k, NULL) != 0) {
			strv_free(c, i);
			return perr(cause, "%s[%zu]: want a string", k, i);
		}
		c[i] = strdup(json_object_get_string(e));
		if (c[i] == NULL) {
			strv_free(c, i);
			return -ENOMEM;
		}
	}
	strv_free(*out, *n_out);
	*out = c;
	*n_out = n;
	return 0;
}

static int
get_int(json_object *o, const char *k, int lo, int hi, int *out, char **cause)
{
	json_object *v = member(o, k);
	int64_t n;

	if (v == NULL)
		return 0;
	if (!json_object_is_type(v, json_type_int))
		return perr(cause, "%s: want an integer", k);
	errno = 0;
	n = json_object_get_int64(v);
	if (errno != 0 || n < lo || n > hi)
		return perr(cause, "%s: out of range", k);
	*out = (int)n;
	return 0;
}

static int
prefs_decode(json_object *o, struct lapi_prefs *p, uint32_t *set, char **cause)
{
	for (size_t i = 0; i < sizeof pref_fields / sizeof pref_fields[0]; i++) {
		const struct pref_field *f = &pref_fields[i];
		bool is_set = true;
		int ret = 0;

		if (set != NULL) {
			is_set = false;
			ret = get_bool(o, f->set_name, &is_set, cause);
			if (ret != 0)
				return ret;
			if (!is_set)
				continue;
			*set |= f->bit;
		}
		switch (f->type) {
		case F_STR:
			ret = get_str(o, f->name, FIELD(p, f, char *), cause);
			break;
		case F_BOOL:
			ret = get_bool(o, f->name, FIELD(p, f, bool), cause);
			break;
		case F_INT:
			ret = get_int(o, f->name, LAPI_NETFILTER_OFF, LAPI_NETFILTER_ON,
			    FIELD(p, f, int), cause);
			break;
		case F_STRV:
			ret = get_strv(o, f->name, FIELD(p, f, char **), NFIELD(p, f),
			    cause);
			break;
		}
		if (ret != 0)
			return ret;
	}
	return 0;
}

int
lapi_prefs_parse(const char *body, size_t len, struct lapi_prefs *out, char **cause)
{
	json_object *o;
	int ret;

	if (cause != NULL)
		*cause = NULL;
	memset(out, 0, sizeof *out);
	ret = parse_object(body, len, &o, cause);
	if (ret != 0)
		return ret;
	ret = prefs_decode(o, out, NULL, cause);
	json_object_put(o);
	if (ret != 0)
		lapi_prefs_clear(out);
	return ret;
}

int
lapi_masked_prefs_parse(const char *body, size_t len, struct lapi_masked_prefs *out,
    char **cause)
{
	json_object *o;
	int ret;

	if (cause != NULL)
		*cause = NULL;
	memset(out, 0, sizeof *out);
	ret = parse_object(body, len, &o, cause);
	if (ret != 0)
		return ret;
	ret = prefs_decode(o, &out->prefs, &out->set, cause);
	json_object_put(o);
	if (ret != 0) {
		lapi_prefs_clear(&out->prefs);
		out->set = 0;
	}
	return ret;
}

void
lapi_up_request_clear(struct lapi_up_request *up)
{
	if (up->auth_key != NULL) {
		sodium_memzero(up->auth_key, strlen(up->auth_key));
		free(up->auth_key);
	}
	lapi_prefs_clear(&up->prefs.prefs);
	memset(up, 0, sizeof *up);
}

/* Wipes json-c's copy of a secret string member before the tree is freed. */
static void
wipe_member(json_object *o, const char *k)
{
	json_object *v = member(o, k);

	if (v != NULL && json_object_is_type(v, json_type_string)) {
		int n = json_object_get_string_len(v);

		if (n > 0)
			sodium_memzero((char *)json_object_get_string(v), (size_t)n);
	}
}

int
lapi_up_request_parse(const char *body, size_t len, struct lapi_up_request *out,
    char **cause)
{
	json_object *o, *v;
	int ret;

	if (cause != NULL)
		*cause = NULL;
	memset(out, 0, sizeof *out);
	ret = parse_object(body, len, &o, cause);
	if (ret != 0)
		return ret;
	ret = get_str(o, "AuthKey", &out->auth_key, cause);
	if (ret == 0 && out->auth_key != NULL && out->auth_key[0] == '\0') {
		free(out->auth_key);	/* "" is "no key" */
		out->auth_key = NULL;
	}
	if (ret == 0)
		ret = get_bool(o, "ForceReauth", &out->force_reauth, cause);
	if (ret == 0)
		ret = get_bool(o, "Reset", &out->reset, cause);
	if (ret == 0 && (v = member(o, "Timeout")) != NULL) {
		double t;

		if (!json_object_is_type(v, json_type_double) &&
		    !json_object_is_type(v, json_type_int))
			ret = perr(cause, "Timeout: want a number of seconds");
		else if (t = json_object_get_double(v), !isfinite(t) || t < 0 ||
		    t > 1e9)
			ret = perr(cause, "Timeout: out of range");
		else
			out->timeout_sec = t;
	}
	if (ret == 0 && (v = member(o, "Prefs")) != NULL) {
		if (!json_object_is_type(v, json_type_object))
			ret = perr(cause, "Prefs: want an object");
		else
			ret = prefs_decode(v, &out->prefs.prefs, &out->prefs.set, cause);
	}
	wipe_member(o, "AuthKey");
	json_object_put(o);
	if (ret != 0)
		lapi_up_request_clear(out);
	return ret;
}

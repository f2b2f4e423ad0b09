/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_CTLCLIENT_H
#define MESHD_CTLCLIENT_H

/*
 * The control client: discovers the server's Noise key (GET /key),
 * keeps one control connection (ctlconn.h), registers the node
 * (POST /machine/register, control.md §5) and keeps the map long-poll open
 * (POST /machine/map, §6), folding every MapResponse into a netmap.
 *
 * It reconnects with jittered exponential backoff whenever the connection
 * or the map stream ends, and keeps the last netmap meanwhile.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evdns_base;
struct netmap;
struct ctl_client;

enum ctl_phase {
	CTL_IDLE,		/* not started, or stopped */
	CTL_CONNECTING,		/* fetching the key, dialing, handshaking */
	CTL_REGISTERING,
	CTL_NEEDS_LOGIN,	/* waiting for a human at the AuthURL */
	CTL_MAPPING,		/* registered; the map stream is (re)starting or running */
};

struct ctl_client_cfg {
	const char *server_url;
	const uint8_t *machine_priv;	/* 32 bytes, borrowed for the client's life */
	uint8_t node_pub[32];
	uint8_t disco_pub[32];
	const char *auth_key;		/* NULL: interactive login; borrowed */
	const char *hostname;
	const char *os_version;
	/* Advertised routes as "cidr" strings (Hostinfo.RoutableIPs). */
	const char *const *routes;
	unsigned int n_routes;
};

struct ctl_client_ops {
	/* Phase changes, with an AuthURL in NEEDS_LOGIN. */
	void (*phase)(void *ctx, enum ctl_phase phase, const char *auth_url);
	/*
	 * A problem to show the user (Health, meshctl up).  fatal: retrying
	 * will not help without the user (bad auth key, refused version); the
	 * client then stops until restarted.
	 */
	void (*error)(void *ctx, const char *msg, bool fatal);
	/* Registration succeeded: the login name of the node's user. */
	void (*registered)(void *ctx, const char *login_name, bool node_key_expired);
	/* The netmap changed (mask of enum netmap_changed). */
	void (*netmap)(void *ctx, struct netmap *nm, uint32_t changed);
};

/* cfg strings are copied; machine_priv is borrowed. */
struct ctl_client *ctl_client_new(struct event_base *base, struct evdns_base *dns,
    const struct ctl_client_cfg *cfg, const struct ctl_client_ops *ops, void *ctx);
void ctl_client_free(struct ctl_client *cl);	/* NULL-safe */

void ctl_client_start(struct ctl_client *cl);
/*
 * Logs the node out with the server (a registration with a past expiry,
 * control.md §5.5) and frees the client when that is done, or after a few
 * seconds, calling gone(ctx) just before.  Until then the caller may still
 * ctl_client_free() it (at shutdown).
 */
void ctl_client_logout(struct ctl_client *cl, void (*gone)(void *ctx), void *ctx);
void ctl_client_stop(struct ctl_client *cl);
enum ctl_phase ctl_client_phase(const struct ctl_client *cl);
/* The netmap (never NULL; empty until the first map). */
struct netmap *ctl_client_netmap(struct ctl_client *cl);

/*
 * What the data plane tells control about our network (MapRequest
 * Endpoints/EndpointTypes and Hostinfo.NetInfo, derp_disco.md §4.2, §5.4).
 */
#define CTL_MAX_ENDPOINTS	16
#define CTL_MAX_LATENCIES	32
struct ctl_netinfo {
	int32_t preferred_derp;		/* 0 = none yet */
	int8_t working_udp;		/* -1 unknown (null), 0, 1 */
	int8_t working_ipv6;
	int8_t mapping_varies;
	bool os_has_ipv6;
	size_t n_latencies;
	struct {
		char key[24];		/* "<region>-v4" / "<region>-v6" */
		double seconds;
	} latency[CTL_MAX_LATENCIES];
	size_t n_endpoints;
	char endpoints[CTL_MAX_ENDPOINTS][64];	/* "ip:port", "[ip6]:port" */
	int endpoint_types[CTL_MAX_ENDPOINTS];	/* tailcfg.EndpointType */
};

/*
 * Sets what the next MapRequests carry.  When it changed materially (the
 * endpoint set, the home region or the working-UDP/IPv6 flags, not mere
 * latencies) and the map stream is up, a "lite" update (Stream false,
 * OmitPeers true) tells the server at once.
 */
void ctl_client_set_netinfo(struct ctl_client *cl, const struct ctl_netinfo *ni);
/* Whether the map stream is up (for "never change home DERP while disconnected"). */
bool ctl_client_connected(const struct ctl_client *cl);

/* A RegisterResponse (control.md §5.2), the fields we act on. */
#define CTL_REGISTER_MAX	(1U << 20)
struct ctl_register_result {
	char auth_url[1024];
	char error[512];
	char login_name[256];
	bool node_key_expired;
	bool machine_authorized;
};

/* Parses a RegisterResponse body; 0, or -EINVAL (not an object), -EMSGSIZE, -ENOMEM. */
int ctl_parse_register(const char *body, size_t len, struct ctl_register_result *out)
	__attribute__((warn_unused_result));

/* Builds the RegisterRequest JSON (exposed for tests).  Caller frees. */
char *ctl_register_request(const struct ctl_client_cfg *cfg, const char *followup,
    bool logout);

#endif

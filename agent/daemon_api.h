/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_DAEMON_API_H
#define MESHD_DAEMON_API_H

/*
 * The daemon's side of the contract in localapi.h: how meshd fills the
 * §A/§D/§F answers from its netmap and its data plane.  The functions are
 * implemented in agent/daemon_api.c, the one file that knows both the node
 * and the contract; they are pure (no loop, no clock, no I/O), so the unit
 * tests check them against tailscale's words and shapes.
 */

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent/localapi/localapi.h"
#include "common/keys.h"

struct netmap;
struct netmap_derp_map;
struct netcheck_report;
struct engine_peer_status;
struct engine_ping_result;

/*
 * Who a ping for an address goes to: ipnlocal's PeerForIP (a node that
 * has the address, else the longest AllowedIPs prefix that holds it) and
 * the part of magicsock's Ping that names the node.
 */
struct lapi_ping_target {
	char ip[INET6_ADDRSTRLEN];		/* the address asked for, canonical */
	char node_ip[INET6_ADDRSTRLEN];		/* the node's first address */
	char node_name[256];			/* first DNS label, else hostname */
	char err[128];				/* the PingResult.Err, or "" */
	bool is_local_ip;
	uint8_t node_key[KEY_LEN];
};

/*
 * Resolves ip (text) against nm (NULL: nothing is known) at now_ms (Unix
 * ms, for key expiry).  Returns 0 when a ping should be sent to
 * t->node_key, 1 when t->err already answers (local IP, no matching peer,
 * expired key), -EINVAL when ip is not an IP address.
 */
int daemon_api_ping_target(const struct netmap *nm, const char *ip, int64_t now_ms,
    struct lapi_ping_target *t) __must_check;

/*
 * The PingResult JSON for t.  Its Err is err if not NULL, else t->err if
 * set, else the engine's answer r's (r may be NULL when one of the others
 * says everything); dm (may be NULL) names the DERP region a pong came
 * through.  Caller frees; NULL when out of memory.
 */
char *daemon_api_ping_json(const struct lapi_ping_target *t,
    const struct engine_ping_result *r, const struct netmap_derp_map *dm, const char *err);

/*
 * The §F answer for report r measured against dm (may be NULL), started at
 * now.  Caller frees; NULL when out of memory.
 */
char *daemon_api_netcheck_json(const struct netcheck_report *r,
    const struct netmap_derp_map *dm, struct lapi_time now);

/*
 * A peer's path members of ipnstate.PeerStatus (Relay, CurAddr, RxBytes,
 * TxBytes, LastHandshake, Active, InMagicSock, InEngine) from the data
 * plane's view es (NULL when there is no data plane: Relay still names
 * home_derp's region, as control reported it).  ps keeps pointers into es
 * and dm.
 */
void daemon_api_peer_path(struct lapi_peer_status *ps, const struct engine_peer_status *es,
    const struct netmap_derp_map *dm, int32_t home_derp);

/* The region code of id in dm, "" if there is none (magicsock's words). */
const char *daemon_api_region_code(const struct netmap_derp_map *dm, int32_t id);

#endif

/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_NETCHECK_H
#define MESHD_NETCHECK_H

/*
 * netcheck: STUN latency to every DERP region, our public (mapped)
 * addresses, and the choice of a home ("preferred") DERP region with
 * tailscaled's hysteresis (derp_disco.md §5.2, §5.3).
 *
 * A sans-I/O core: it plans probes and reads their answers, with "now"
 * (monotonic nanoseconds) passed in.  The host sends each due probe as a
 * STUN binding request (stun.h) from the WireGuard socket, and hands the
 * parsed answers back by transaction ID.
 *
 * Driving it:
 *
 *	netcheck_start(nc, derp_map, &opts, now);
 *	loop:
 *		n = netcheck_due(nc, now, probes, cap, &deadline);
 *		send each probes[i] (STUN request with probes[i].txid),
 *		    then netcheck_sent(nc, probes[i].txid, ok);
 *		on a STUN answer: netcheck_on_stun(nc, txid, &mapped, now);
 *		on any DERP frame from region R: netcheck_note_derp_frame(nc, R, now);
 *		call netcheck_due() again at deadline;
 *		stop once netcheck_state(nc) == NETCHECK_DONE, then read
 *		    netcheck_last_report(nc) and netcheck_home(nc).
 *
 * Only netcheck_due() and netcheck_on_stun() can finish a report (the first
 * when a timer expires, the second when the last useful answer arrives).
 *
 * Upstream: net/netcheck/netcheck.go (makeProbePlan, probeWouldHelp,
 * addNodeLatency, addReportHistoryAndSetPreferredDERP) and
 * wgengine/magicsock/derp.go (maybeSetNearestDERP, pickDERPFallback).
 *
 * Ownership: struct netcheck owns a private copy of what it needs from the
 * DERP map, so the netmap may free its map at any time after
 * netcheck_start().  Pointers it hands out (netcheck_last_report(), a
 * probe's hostname) stay valid until the next netcheck_start(),
 * netcheck_abort() or netcheck_free(), except that netcheck_last_report()
 * is also replaced when a report finishes.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wg/wg.h"

struct netmap_derp_map;

#define NETCHECK_MAX_REGIONS	64	/* measured per report; more are ignored */
#define NETCHECK_MAX_NODES	16	/* per region; more are ignored */
#define NETCHECK_TXID_LEN	12
#define NETCHECK_STUN_PORT	3478	/* STUNPort 0 */

/* One report, the fields tailscale's netcheck.Report carries that we fill. */
struct netcheck_region_latency {
	int32_t region_id;
	uint64_t v4_ns;			/* 0 = no answer over IPv4 */
	uint64_t v6_ns;			/* 0 = no answer over IPv6 */
};

struct netcheck_report {
	bool udp;			/* any STUN answer at all */
	bool ipv4, ipv6;		/* an answer over that family */
	bool ipv4_can_send, ipv6_can_send;
	bool os_has_ipv6;
	int mapping_varies_by_dest_ip;	/* -1 unknown, 0 no, 1 yes */
	/*
	 * The home region after every rule of §5.3 including magicsock's
	 * (kept while disconnected from control, fallback when nothing
	 * answered): what NetInfo.PreferredDERP carries.  0 = none.
	 */
	int32_t preferred_derp;
	/*
	 * netcheck's own choice (steps 1-4, Go's Report.PreferredDERP), before
	 * the control and fallback rules; 0 = none.  For display.
	 */
	int32_t netcheck_derp;
	union wg_endpoint global_v4;	/* AF_UNSPEC if none */
	union wg_endpoint global_v6;
	size_t n_regions;		/* regions that answered */
	struct netcheck_region_latency regions[NETCHECK_MAX_REGIONS];
	bool full;			/* probed every region */
	uint64_t start_ns, end_ns;	/* monotonic */
};

/* The best (lowest) latency of a region in a report, v4 or v6; 0 if none. */
uint64_t netcheck_region_latency(const struct netcheck_report *r, int32_t region_id);

/* --- the core --- */

struct netcheck;

/* Fills buf with random bytes (transaction IDs, the fallback home). */
typedef void (*netcheck_random_fn)(void *ctx, void *buf, size_t len);

/* Never NULL (allocation failure is fatal).  rnd must not be NULL. */
struct netcheck *netcheck_new(netcheck_random_fn rnd, void *rnd_ctx);
void netcheck_free(struct netcheck *nc);	/* NULL-safe */

struct netcheck_opts {
	bool have_v4;		/* we can send STUN over IPv4 */
	bool have_v6;		/* ... over IPv6 */
	bool os_has_ipv6;	/* copied into the report */
	bool force_full;	/* probe every region even if not yet due */
};

/*
 * Starts a report over dm's regions.  It is a full one (every region not
 * NoMeasureNoHome, 3 tries at 0/100/200 ms) when forced, when there has
 * been none yet, or when the last full one started more than 5 min ago;
 * otherwise incremental (the 3 fastest regions of the last report plus the
 * home region, §5.2).  A map with nothing to probe gives a report that
 * finishes empty at the next netcheck_due().
 *
 * 0, -EINVAL (dm or opts NULL) or -EBUSY (a report is running: let
 * it finish or netcheck_abort() it).
 */
int netcheck_start(struct netcheck *nc, const struct netmap_derp_map *dm,
    const struct netcheck_opts *opts, uint64_t now) __attribute__((warn_unused_result));

/* Drops a running report without producing one (e.g. the link changed). */
void netcheck_abort(struct netcheck *nc);

enum netcheck_state {
	NETCHECK_IDLE = 0,	/* never started, or aborted */
	NETCHECK_RUNNING,
	NETCHECK_DONE,		/* the last report is ready */
};
enum netcheck_state netcheck_state(const struct netcheck *nc);

/* One STUN binding request to send now. */
struct netcheck_probe {
	int32_t region_id;
	uint32_t node_index;		/* into the region's Nodes, as in the map */
	uint8_t family;			/* 4 or 6 */
	uint8_t txid[NETCHECK_TXID_LEN];
	/*
	 * Where to send it: the node's IPv4/IPv6 literal with its STUN port
	 * (NETCHECK_STUN_PORT for 0), or AF_UNSPEC when the map leaves the
	 * address to DNS: then resolve hostname for this family and use
	 * port.
	 */
	union wg_endpoint dst;
	uint16_t port;
	const char *hostname;		/* owned by nc, see above */
};

/*
 * Writes up to cap probes that are due at now (the rest stay due) and
 * returns how many.  *next_deadline (if not NULL) is when to call again:
 * now if probes were left over, UINT64_MAX when no report is running.
 * Finishes the report when a stop rule fires (3 regions answered and their
 * grace period passed, every probe set settled, or the 3 s STUN limit).
 */
size_t netcheck_due(struct netcheck *nc, uint64_t now,
    struct netcheck_probe *out, size_t cap, uint64_t *next_deadline);

/*
 * The outcome of sending a probe: ok = the datagram left (or was lost the
 * way UDP loses packets); sets ipv4_can_send/ipv6_can_send.  A probe that
 * could not be sent is forgotten: an answer to it is refused.
 */
void netcheck_sent(struct netcheck *nc, const uint8_t txid[NETCHECK_TXID_LEN], bool ok);

/*
 * A STUN success answer for txid; mapped is its XOR-MAPPED-ADDRESS (NULL or
 * AF_UNSPEC if it had none: the latency still counts).  Returns false if
 * the txid is not one of the running report's outstanding probes (never
 * sent, already answered, or the report is over): the host counts those
 * as bad input.
 */
bool netcheck_on_stun(struct netcheck *nc, const uint8_t txid[NETCHECK_TXID_LEN],
    const union wg_endpoint *mapped, uint64_t now);

/*
 * A DERP frame arrived from region_id: the home region is "reachable"
 * without a STUN answer if it sent one during the report or in the last
 * 8 s, and is kept when nothing at all was measured if it sent one in the
 * last 120 s (§5.3).
 */
void netcheck_note_derp_frame(struct netcheck *nc, int32_t region_id, uint64_t now);

/*
 * Whether we are connected to control (default: true).  While not, a
 * finished report never moves an existing home (peers could not learn the
 * new one, corp#18095); it may still pick the first one.
 */
void netcheck_set_control(struct netcheck *nc, bool connected);

/*
 * The current home region (0 = none).  netcheck_set_home() overrides it,
 * e.g. with the home of a cached netmap at start, or 0 when the home
 * region vanished from the DERP map.
 */
int32_t netcheck_home(const struct netcheck *nc);
void netcheck_set_home(struct netcheck *nc, int32_t region_id);

/* The last finished report, or NULL if none. */
const struct netcheck_report *netcheck_last_report(const struct netcheck *nc);

#endif

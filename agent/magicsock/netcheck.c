// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * The netcheck core (derp_disco.md §5.2-§5.3), after tailscale's
 * net/netcheck/netcheck.go and the home-region rules of
 * wgengine/magicsock/derp.go.
 *
 * A report is a plan of probe sets, one per (region, family), each a few
 * tries at fixed delays from the start.  The first answer in a set
 * settles it and cancels its unsent tries; a try about to go out is also
 * dropped, with its set, when it could teach us nothing new
 * (probeWouldHelp).  Answers to tries already sent still count, keeping
 * the lower latency.  The report ends when every set has settled, when
 * the grace period after the third region's answer runs out, or at the
 * 3 s STUN limit.
 *
 * Deliberate differences from upstream:
 *  - A try goes to the try-th node, counting only nodes that can be
 *    probed over that family (STUNPort not -1, address not disabled), so
 *    a disabled node does not cost a try.
 *  - Stickiness compares against the current home (what magicsock uses),
 *    not the previous report's PreferredDERP; upstream notes the former
 *    as the intended design (TODO(raggi) in makeProbePlan).
 *  - No HTTPS/ICMP fallback: with no STUN answer the report ends at 3 s.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "agent/control/netmap.h"
#include "agent/magicsock/netcheck.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/util.h"

/* netcheck.go constants. */
#define FULL_INTERVAL		(300 * NSEC_PER_SEC)	/* fullReportInterval */
#define STUN_TIMEOUT		(3 * NSEC_PER_SEC)	/* stunProbeTimeout */
#define REPORT_TIMEOUT		(5 * NSEC_PER_SEC)	/* ReportTimeout */
#define HISTORY_AGE		(FULL_INTERVAL + REPORT_TIMEOUT)
#define INITIAL_RETRANSMIT	(100 * NSEC_PER_MSEC)
#define ACTIVE_RETRANSMIT	(200 * NSEC_PER_MSEC)
#define TRY_EXTRA		(50 * NSEC_PER_MSEC)
#define ABS_DIFF		(10 * NSEC_PER_MSEC)	/* preferredDERPAbsoluteDiff */
#define FRAME_TIME		(8 * NSEC_PER_SEC)	/* PreferredDERPFrameTime */
#define KEEPALIVE_TIMEOUT	(120 * NSEC_PER_SEC)	/* 2 x derp.KeepAlive */
#define ENOUGH_REGIONS		3
#define INCREMENTAL_REGIONS	3
#define FULL_TRIES		3
#define MAX_TRIES		4
#define HISTORY_MAX		32
#define HEARD_MAX		(2 * NETCHECK_MAX_REGIONS)
#define HOSTNAME_MAX		253
#define TXID_ATTEMPTS		4
/* A scaled latency never exceeds this (a huge score must not overflow). */
#define LATENCY_CAP		(3600 * NSEC_PER_SEC)

struct nc_node {
	uint32_t index;			/* in the map's Nodes */
	uint16_t port;
	bool ok[2];			/* [0] IPv4, [1] IPv6 */
	union wg_endpoint dst[2];	/* AF_UNSPEC: resolve hostname */
	char *hostname;
};

struct nc_region {
	int32_t id;
	uint8_t flags;
	double score;			/* 0 = none */
	size_t n_nodes;
	struct nc_node *nodes;		/* the STUN-capable ones, map order */
};

enum {
	PR_PLANNED = 0,
	PR_SENT,
	PR_ANSWERED,
	PR_DROPPED,
};

struct nc_probe {
	uint64_t at;			/* due, absolute */
	uint64_t sent;
	uint16_t region;		/* index in nc->regions */
	uint16_t node;			/* index in that region's nodes */
	uint16_t set;
	uint8_t fi;			/* 0 IPv4, 1 IPv6 */
	uint8_t state;
	uint8_t txid[NETCHECK_TXID_LEN];
};

struct nc_set {
	bool done;
};

struct nc_hist {
	uint64_t at;
	size_t n;
	struct {
		int32_t id;
		uint64_t ns;
	} lat[NETCHECK_MAX_REGIONS];
};

struct nc_heard {
	int32_t id;
	uint64_t at;
};

struct netcheck {
	netcheck_random_fn rnd;
	void *rnd_ctx;

	enum netcheck_state state;
	bool connected;
	int32_t home;
	bool have_seed;
	uint32_t seed;

	/* The map copy and plan of the current (or last) run. */
	struct nc_region *regions;
	size_t n_regions;
	struct nc_probe *probes;
	size_t n_probes, cap_probes;
	struct nc_set *sets;
	size_t n_sets;
	bool full;
	bool have_v[2];
	uint64_t start;
	uint64_t stop_at;		/* 0 = not armed */
	bool got_ep4;
	struct netcheck_report cur;

	bool have_last;
	struct netcheck_report last;
	bool have_full;
	uint64_t last_full;

	struct nc_hist hist[HISTORY_MAX];
	size_t n_hist;
	struct nc_heard heard[HEARD_MAX];
	size_t n_heard;
};

static uint64_t
since(uint64_t now, uint64_t t)
{
	return now >= t ? now - t : 0;
}

uint64_t
netcheck_region_latency(const struct netcheck_report *r, int32_t region_id)
{
	const struct netcheck_region_latency *l;
	size_t n;

	if (r == NULL)
		return 0;
	n = MIN(r->n_regions, (size_t)NETCHECK_MAX_REGIONS);
	for (size_t i = 0; i < n; i++) {
		l = &r->regions[i];
		if (l->region_id != region_id)
			continue;
		if (l->v4_ns == 0 || (l->v6_ns != 0 && l->v6_ns < l->v4_ns))
			return l->v6_ns;
		return l->v4_ns;
	}
	return 0;
}

struct netcheck *
netcheck_new(netcheck_random_fn rnd, void *rnd_ctx)
{
	struct netcheck *nc = xcalloc(1, sizeof *nc);

	nc->rnd = rnd;
	nc->rnd_ctx = rnd_ctx;
	nc->connected = true;
	return nc;
}

static void
free_plan(struct netcheck *nc)
{
	free(nc->probes);
	nc->probes = NULL;
	nc->n_probes = nc->cap_probes = 0;
	free(nc->sets);
	nc->sets = NULL;
	nc->n_sets = 0;
}

static void
free_regions(struct netcheck *nc)
{
	for (size_t i = 0; i < nc->n_regions; i++) {
		for (size_t j = 0; j < nc->regions[i].n_nodes; j++)
			free(nc->regions[i].nodes[j].hostname);
		free(nc->regions[i].nodes);
	}
	free(nc->regions);
	nc->regions = NULL;
	nc->n_regions = 0;
}

void
netcheck_free(struct netcheck *nc)
{
	if (nc == NULL)
		return;
	free_plan(nc);
	free_regions(nc);
	free(nc);
}

/* --- the map copy --- */

/*
 * Whether node n can be probed over family fi, and where: a literal of
 * that family, or "" (DNS) when there is a hostname.  "none" and anything
 * else disable the family (derp_disco.md §1.3).
 */
static bool
node_family(const struct netmap_derp_node *n, int fi, bool have_host,
    uint16_t port, union wg_endpoint *dst)
{
	const char *s = fi ? n->ipv6 : n->ipv4;

	memset(dst, 0, sizeof *dst);
	dst->sa.sa_family = AF_UNSPEC;
	if (s == NULL || *s == '\0')
		return have_host;
	if (fi == 0) {
		if (inet_pton(AF_INET, s, &dst->in4.sin_addr) != 1)
			return false;
		dst->in4.sin_family = AF_INET;
		dst->in4.sin_port = htons(port);
	} else {
		if (inet_pton(AF_INET6, s, &dst->in6.sin6_addr) != 1)
			return false;
		dst->in6.sin6_family = AF_INET6;
		dst->in6.sin6_port = htons(port);
	}
	return true;
}

static double
map_score(const struct netmap_derp_map *dm, int32_t id)
{
	for (uint32_t i = 0; i < dm->n_scores && dm->scores != NULL; i++)
		if (dm->scores[i].region_id == id)
			return dm->scores[i].score;
	return 0;
}

/*
 * Copies the regions that may be measured or chosen as home, and their
 * STUN-capable nodes.  NoMeasureNoHome regions play no part in netcheck.
 */
static void
copy_map(struct netcheck *nc, const struct netmap_derp_map *dm)
{
	const struct netmap_derp_region *mr;
	const struct netmap_derp_node *mn;
	struct nc_region *r;
	struct nc_node *n;
	size_t hlen;
	double score;

	nc->regions = xcalloc(MIN(dm->n_regions, (uint32_t)NETCHECK_MAX_REGIONS),
	    sizeof *nc->regions);
	for (uint32_t i = 0; i < dm->n_regions && dm->regions != NULL; i++) {
		mr = &dm->regions[i];
		if (mr->flags & NETMAP_DERP_REGION_NO_MEASURE_NO_HOME ||
		    mr->region_id <= 0)
			continue;
		if (nc->n_regions == NETCHECK_MAX_REGIONS) {
			log_warn("netcheck: DERP map has more than %d regions; "
			    "ignoring the rest", NETCHECK_MAX_REGIONS);
			break;
		}
		r = &nc->regions[nc->n_regions++];
		r->id = mr->region_id;
		r->flags = mr->flags;
		score = map_score(dm, mr->region_id);
		r->score = score > 0 && isfinite(score) ? score : 0;
		r->nodes = xcalloc(MIN(mr->n_nodes, (uint32_t)NETCHECK_MAX_NODES),
		    sizeof *r->nodes);
		for (uint32_t j = 0; j < mr->n_nodes && mr->nodes != NULL &&
		    j < NETCHECK_MAX_NODES; j++) {
			mn = &mr->nodes[j];
			/* STUNOnly nodes are STUN servers: probed too. */
			if (mn->stun_port < 0 || mn->stun_port > 65535)
				continue;
			n = &r->nodes[r->n_nodes];
			n->index = j;
			n->port = mn->stun_port ? (uint16_t)mn->stun_port :
			    NETCHECK_STUN_PORT;
			hlen = mn->hostname ? strlen(mn->hostname) : 0;
			if (hlen > HOSTNAME_MAX)
				hlen = 0;
			for (int fi = 0; fi < 2; fi++)
				n->ok[fi] = node_family(mn, fi, hlen > 0,
				    n->port, &n->dst[fi]);
			if (!n->ok[0] && !n->ok[1])
				continue;
			n->hostname = xmalloc(hlen + 1);
			memcpy(n->hostname, hlen ? mn->hostname : "", hlen);
			n->hostname[hlen] = '\0';
			r->n_nodes++;
		}
	}
}

static struct nc_region *
find_region(struct netcheck *nc, int32_t id)
{
	for (size_t i = 0; i < nc->n_regions; i++)
		if (nc->regions[i].id == id)
			return &nc->regions[i];
	return NULL;
}

/* The try-th probe-able node of r for family fi, or -1. */
static int
pick_node(const struct nc_region *r, int fi, int try)
{
	size_t n = 0, k;

	for (size_t i = 0; i < r->n_nodes; i++)
		if (r->nodes[i].ok[fi])
			n++;
	if (n == 0)
		return -1;
	k = (size_t)try % n;
	for (size_t i = 0; i < r->n_nodes; i++)
		if (r->nodes[i].ok[fi] && k-- == 0)
			return (int)i;
	return -1;
}

/* --- the plan --- */

static void
add_probe(struct netcheck *nc, size_t ri, int fi, int node, uint64_t delay,
    int *set)
{
	struct nc_probe *p;

	if (nc->n_probes == nc->cap_probes)
		return;
	if (*set < 0) {
		*set = (int)nc->n_sets;
		nc->sets[nc->n_sets++].done = false;
	}
	p = &nc->probes[nc->n_probes++];
	memset(p, 0, sizeof *p);
	p->at = nc->start + delay;
	p->region = (uint16_t)ri;
	p->node = (uint16_t)node;
	p->set = (uint16_t)*set;
	p->fi = (uint8_t)fi;
	p->state = PR_PLANNED;
}

/* makeProbePlanInitial: every region, 3 tries 100 ms apart, per family. */
static void
plan_full(struct netcheck *nc)
{
	int node, set;

	for (size_t ri = 0; ri < nc->n_regions; ri++) {
		for (int fi = 0; fi < 2; fi++) {
			if (!nc->have_v[fi])
				continue;
			set = -1;
			for (int try = 0; try < FULL_TRIES; try++) {
				if ((node = pick_node(&nc->regions[ri], fi,
				    try)) < 0)
					break;
				add_probe(nc, ri, fi, node,
				    (uint64_t)try * INITIAL_RETRANSMIT, &set);
			}
		}
	}
}

struct ranked {
	size_t ri;
	int32_t id;
	uint64_t lat;
};

/* Fastest first, then regions without a latency; ties by region ID. */
static int
ranked_cmp(const void *a, const void *b)
{
	const struct ranked *x = a, *y = b;

	if ((x->lat == 0) != (y->lat == 0))
		return x->lat == 0 ? 1 : -1;
	if (x->lat != y->lat)
		return x->lat < y->lat ? -1 : 1;
	return (x->id > y->id) - (x->id < y->id);
}

/*
 * makeProbePlan: the 3 fastest regions of the last report plus the home
 * region.  The 2 fastest get 2 tries, the home 4, the others 1; retries
 * are spaced by 1.2 x the region's last latency (200 ms if none), plus
 * try x 50 ms from the third try on.  On dual stack the slower regions
 * alternate between the families.
 */
static void
plan_incremental(struct netcheck *nc, const struct netcheck_report *last)
{
	struct ranked rk[NETCHECK_MAX_REGIONS];
	const struct nc_region *r;
	size_t n = 0, ri, i;
	bool had4 = false, had6 = false, had_both, has_home, is_home, fast2;
	bool dov[2];
	int tries, node, set[2];
	uint64_t prev, delay;

	for (i = 0; i < MIN(last->n_regions, (size_t)NETCHECK_MAX_REGIONS); i++) {
		had4 |= last->regions[i].v4_ns != 0;
		had6 |= last->regions[i].v6_ns != 0;
	}
	had_both = nc->have_v[1] && had4 && had6;
	for (ri = 0; ri < nc->n_regions; ri++) {
		r = &nc->regions[ri];
		/* Avoid: not measured incrementally, unless it is home. */
		if (r->flags & NETMAP_DERP_REGION_AVOID && r->id != nc->home)
			continue;
		rk[n].ri = ri;
		rk[n].id = r->id;
		rk[n].lat = netcheck_region_latency(last, r->id);
		n++;
	}
	qsort(rk, n, sizeof rk[0], ranked_cmp);

	has_home = nc->home == 0;
	for (i = 0; i < n; i++) {
		r = &nc->regions[rk[i].ri];
		is_home = r->id == nc->home;
		if (i >= INCREMENTAL_REGIONS) {
			if (has_home)
				break;
			if (!is_home)
				continue;
		}
		dov[0] = nc->have_v[0];
		dov[1] = nc->have_v[1];
		tries = 1;
		fast2 = i < 2;
		if (fast2 || is_home)
			tries = 2;
		else if (had_both) {
			/* (Only within the families we have.) */
			dov[0] = nc->have_v[0] && i % 2 == 0;
			dov[1] = i % 2 != 0;
		}
		if (!is_home && !fast2 && !had6)
			dov[1] = false;
		if (is_home) {
			tries = MAX_TRIES;
			has_home = true;
		}
		prev = rk[i].lat ? rk[i].lat * 120 / 100 : ACTIVE_RETRANSMIT;
		set[0] = set[1] = -1;
		for (int try = 0; try < tries; try++) {
			if (try != 0 && !had6)
				dov[1] = false;
			delay = (uint64_t)try * prev;
			if (try > 1)
				delay += (uint64_t)try * TRY_EXTRA;
			for (int fi = 0; fi < 2; fi++) {
				if (!dov[fi] ||
				    (node = pick_node(r, fi, try)) < 0)
					continue;
				add_probe(nc, rk[i].ri, fi, node, delay,
				    &set[fi]);
			}
		}
	}
}

int
netcheck_start(struct netcheck *nc, const struct netmap_derp_map *dm,
    const struct netcheck_opts *opts, uint64_t now)
{
	const struct netcheck_report *last;

	if (nc == NULL || dm == NULL || opts == NULL)
		return -EINVAL;
	if (nc->state == NETCHECK_RUNNING)
		return -EBUSY;
	free_plan(nc);
	free_regions(nc);
	copy_map(nc, dm);
	/* At most MAX_TRIES per (region, family). */
	nc->cap_probes = nc->n_regions * 2 * MAX_TRIES;
	nc->probes = xcalloc(nc->cap_probes, sizeof *nc->probes);
	nc->sets = xcalloc(nc->n_regions * 2, sizeof *nc->sets);
	nc->start = now;
	nc->stop_at = 0;
	nc->got_ep4 = false;
	nc->have_v[0] = opts->have_v4;
	nc->have_v[1] = opts->have_v6;

	memset(&nc->cur, 0, sizeof nc->cur);
	nc->cur.os_has_ipv6 = opts->os_has_ipv6;
	nc->cur.mapping_varies_by_dest_ip = -1;
	nc->cur.global_v4.sa.sa_family = AF_UNSPEC;
	nc->cur.global_v6.sa.sa_family = AF_UNSPEC;
	nc->cur.start_ns = now;

	nc->full = opts->force_full || !nc->have_full ||
	    since(now, nc->last_full) > FULL_INTERVAL;
	if (nc->full) {
		nc->have_full = true;
		nc->last_full = now;
	}
	nc->cur.full = nc->full;
	last = nc->have_last ? &nc->last : NULL;
	/* Nothing to go on (no latency last time): probe everything. */
	if (nc->full || last == NULL || last->n_regions == 0)
		plan_full(nc);
	else
		plan_incremental(nc, last);
	nc->state = NETCHECK_RUNNING;
	log_debug("netcheck: %s report, %zu probes in %zu sets over %zu regions",
	    nc->full ? "full" : "incremental", nc->n_probes, nc->n_sets,
	    nc->n_regions);
	return 0;
}

void
netcheck_abort(struct netcheck *nc)
{
	if (nc == NULL || nc->state != NETCHECK_RUNNING)
		return;
	free_plan(nc);
	nc->state = NETCHECK_IDLE;
}

enum netcheck_state
netcheck_state(const struct netcheck *nc)
{
	return nc ? nc->state : NETCHECK_IDLE;
}

/* --- results --- */

static struct netcheck_region_latency *
report_region(struct netcheck_report *r, int32_t id, bool add)
{
	for (size_t i = 0; i < r->n_regions; i++)
		if (r->regions[i].region_id == id)
			return &r->regions[i];
	if (!add || r->n_regions >= NETCHECK_MAX_REGIONS)
		return NULL;
	r->regions[r->n_regions].region_id = id;
	r->regions[r->n_regions].v4_ns = 0;
	r->regions[r->n_regions].v6_ns = 0;
	return &r->regions[r->n_regions++];
}

static bool
heard_at(const struct netcheck *nc, int32_t id, uint64_t *at)
{
	for (size_t i = 0; i < nc->n_heard; i++) {
		if (nc->heard[i].id == id) {
			*at = nc->heard[i].at;
			return true;
		}
	}
	return false;
}

void
netcheck_note_derp_frame(struct netcheck *nc, int32_t region_id, uint64_t now)
{
	size_t i, oldest = 0;

	if (nc == NULL || region_id <= 0)
		return;
	for (i = 0; i < nc->n_heard; i++) {
		if (nc->heard[i].id == region_id) {
			if (now > nc->heard[i].at)
				nc->heard[i].at = now;
			return;
		}
		if (nc->heard[i].at < nc->heard[oldest].at)
			oldest = i;
	}
	if (nc->n_heard < HEARD_MAX)
		i = nc->n_heard++;
	else
		i = oldest;
	nc->heard[i].id = region_id;
	nc->heard[i].at = now;
}

static uint64_t
scale(uint64_t d, double score)
{
	double v;

	if (score <= 0)
		return d;
	v = (double)d * score;
	if (!(v < (double)LATENCY_CAP))
		return LATENCY_CAP;
	return v < 1 ? 1 : (uint64_t)v;
}

static double
region_score(struct netcheck *nc, int32_t id)
{
	struct nc_region *r = find_region(nc, id);

	return r ? r->score : 0;
}

static void
add_history(struct netcheck *nc, uint64_t now)
{
	struct nc_hist *h;
	size_t i, k;
	uint64_t d;

	for (i = k = 0; i < nc->n_hist; i++)
		if (since(now, nc->hist[i].at) <= HISTORY_AGE)
			nc->hist[k++] = nc->hist[i];
	nc->n_hist = k;
	if (nc->n_hist == HISTORY_MAX) {
		memmove(&nc->hist[0], &nc->hist[1],
		    (HISTORY_MAX - 1) * sizeof nc->hist[0]);
		nc->n_hist--;
	}
	h = &nc->hist[nc->n_hist++];
	h->at = now;
	h->n = 0;
	for (i = 0; i < nc->cur.n_regions; i++) {
		d = netcheck_region_latency(&nc->cur, nc->cur.regions[i].region_id);
		if (d == 0)
			continue;
		h->lat[h->n].id = nc->cur.regions[i].region_id;
		h->lat[h->n].ns = d;
		h->n++;
	}
}

static uint64_t
best_recent(const struct netcheck *nc, int32_t id)
{
	uint64_t best = 0;

	for (size_t i = 0; i < nc->n_hist; i++)
		for (size_t j = 0; j < nc->hist[i].n; j++)
			if (nc->hist[i].lat[j].id == id &&
			    (best == 0 || nc->hist[i].lat[j].ns < best))
				best = nc->hist[i].lat[j].ns;
	return best;
}

/*
 * addReportHistoryAndSetPreferredDERP (§5.3 steps 1-4): the region of this
 * report with the best latency over the history, scaled by RegionScore,
 * unless the old home is still reachable and not clearly worse.
 */
static int32_t
select_preferred(struct netcheck *nc, int32_t prev, uint64_t now)
{
	const struct netcheck_report *r = &nc->cur;
	uint64_t d, best, best_any = 0, old_cur = 0, heard = 0;
	int32_t pref = 0, id;
	bool have_heard, keep = false;

	for (size_t i = 0; i < r->n_regions; i++) {
		id = r->regions[i].region_id;
		if ((d = netcheck_region_latency(r, id)) == 0 ||
		    find_region(nc, id) == NULL)
			continue;
		d = scale(d, region_score(nc, id));
		if (id == prev)
			old_cur = d;
		best = scale(best_recent(nc, id), region_score(nc, id));
		if (pref == 0 || best < best_any) {
			best_any = best;
			pref = id;
		}
	}

	have_heard = prev != 0 && heard_at(nc, prev, &heard);
	if (prev != 0 && pref != prev) {
		bool recent = have_heard && (heard > nc->start ||
		    since(now, heard) < FRAME_TIME);

		if (old_cur != 0 || recent) {
			/* Signed: an unmeasured old home (0) is kept. */
			if ((int64_t)old_cur - (int64_t)best_any <
			    (int64_t)ABS_DIFF)
				keep = true;
			if (best_any > old_cur / 3 * 2)
				keep = true;
		}
	}
	if (keep)
		pref = prev;
	/* Nothing measured, but the home's connection is alive: keep it. */
	if (pref == 0 && have_heard && since(now, heard) < KEEPALIVE_TIMEOUT)
		pref = prev;
	return pref;
}

/* pickDERPFallback: an arbitrary region, the same one for this process. */
static int32_t
fallback_region(struct netcheck *nc)
{
	if (nc->n_regions == 0)
		return 0;
	if (!nc->have_seed) {
		nc->rnd(nc->rnd_ctx, &nc->seed, sizeof nc->seed);
		nc->have_seed = true;
	}
	return nc->regions[nc->seed % nc->n_regions].id;
}

static int
latency_cmp(const void *a, const void *b)
{
	const struct netcheck_region_latency *x = a, *y = b;

	return (x->region_id > y->region_id) - (x->region_id < y->region_id);
}

static void
finish(struct netcheck *nc, uint64_t now)
{
	int32_t prev = nc->home, pref;

	/* A home that left the map (or became NoMeasureNoHome) is no home. */
	if (prev != 0 && find_region(nc, prev) == NULL)
		prev = 0;
	nc->cur.end_ns = now;
	qsort(nc->cur.regions, nc->cur.n_regions, sizeof nc->cur.regions[0],
	    latency_cmp);
	add_history(nc, now);
	pref = select_preferred(nc, prev, now);
	nc->cur.netcheck_derp = pref;

	/* maybeSetNearestDERP (§5.3 step 5). */
	if (!nc->connected && prev != 0) {
		if (pref != prev)
			log_info("netcheck: not connected to control; keeping "
			    "home DERP %d (would be %d)", prev, pref);
		pref = prev;
	} else if (pref == 0)
		pref = prev != 0 ? prev : fallback_region(nc);
	if (pref != nc->home)
		log_info("netcheck: home DERP %d -> %d", nc->home, pref);
	nc->home = pref;
	nc->cur.preferred_derp = pref;

	nc->last = nc->cur;
	nc->have_last = true;
	free_plan(nc);
	nc->state = NETCHECK_DONE;
	log_debug("netcheck: done after %llu ms: udp=%d v4=%d v6=%d "
	    "regions=%zu home=%d",
	    (unsigned long long)(since(now, nc->start) / NSEC_PER_MSEC),
	    nc->cur.udp, nc->cur.ipv4, nc->cur.ipv6, nc->cur.n_regions, pref);
}

static bool
all_sets_done(const struct netcheck *nc)
{
	for (size_t i = 0; i < nc->n_sets; i++)
		if (!nc->sets[i].done)
			return false;
	return true;
}

/* probeWouldHelp: a region we have no latency for, or a family result we lack. */
static bool
would_help(const struct netcheck *nc, const struct nc_probe *p)
{
	const struct netcheck_region_latency *l;
	int32_t id = nc->regions[p->region].id;

	l = NULL;
	for (size_t i = 0; i < nc->cur.n_regions; i++)
		if (nc->cur.regions[i].region_id == id)
			l = &nc->cur.regions[i];
	if (l == NULL || (l->v4_ns == 0 && l->v6_ns == 0))
		return true;
	if (p->fi == 1 && !nc->cur.ipv6)
		return true;
	if (p->fi == 0 && nc->cur.mapping_varies_by_dest_ip < 0)
		return true;
	return false;
}

static bool
txid_in_use(const struct netcheck *nc, const uint8_t *txid)
{
	for (size_t i = 0; i < nc->n_probes; i++)
		if (nc->probes[i].state == PR_SENT &&
		    memcmp(nc->probes[i].txid, txid, NETCHECK_TXID_LEN) == 0)
			return true;
	return false;
}

static void
fill_probe(struct netcheck *nc, const struct nc_probe *p,
    struct netcheck_probe *out)
{
	const struct nc_region *r = &nc->regions[p->region];
	const struct nc_node *n = &r->nodes[p->node];

	memset(out, 0, sizeof *out);
	out->region_id = r->id;
	out->node_index = n->index;
	out->family = p->fi ? 6 : 4;
	memcpy(out->txid, p->txid, NETCHECK_TXID_LEN);
	out->dst = n->dst[p->fi];
	out->port = n->port;
	out->hostname = n->hostname;
}

/* When a timer ends the report: the STUN limit or the enough-regions wait. */
static uint64_t
stop_deadline(const struct netcheck *nc)
{
	uint64_t d = nc->start + MIN(STUN_TIMEOUT, REPORT_TIMEOUT);

	if (nc->stop_at != 0)
		d = MIN(d, nc->stop_at);
	return d;
}

size_t
netcheck_due(struct netcheck *nc, uint64_t now, struct netcheck_probe *out,
    size_t cap, uint64_t *next_deadline)
{
	struct nc_probe *p;
	uint64_t next = UINT64_MAX, deadline;
	size_t n = 0;
	int k;

	if (next_deadline != NULL)
		*next_deadline = UINT64_MAX;
	if (nc == NULL || nc->state != NETCHECK_RUNNING)
		return 0;
	/* A late call ends the report when it should have ended. */
	if (now >= (deadline = stop_deadline(nc))) {
		finish(nc, deadline);
		return 0;
	}
	for (size_t i = 0; i < nc->n_probes; i++) {
		p = &nc->probes[i];
		if (p->state != PR_PLANNED)
			continue;
		if (nc->sets[p->set].done) {
			p->state = PR_DROPPED;
			continue;
		}
		if (p->at > now) {
			next = MIN(next, p->at);
			continue;
		}
		if (n == cap || out == NULL) {
			next = now;
			continue;
		}
		if (!would_help(nc, p)) {
			/* Nothing to learn: the whole set is settled. */
			p->state = PR_DROPPED;
			nc->sets[p->set].done = true;
			continue;
		}
		/* 96 random bits; a repeat only if the generator is broken. */
		for (k = 0; k < TXID_ATTEMPTS; k++) {
			nc->rnd(nc->rnd_ctx, p->txid, NETCHECK_TXID_LEN);
			if (!txid_in_use(nc, p->txid))
				break;
		}
		p->state = PR_SENT;
		p->sent = now;
		fill_probe(nc, p, &out[n++]);
	}
	/* Every set settled (none just got a probe): nothing to wait for. */
	if (n == 0 && all_sets_done(nc)) {
		finish(nc, now);
		return 0;
	}
	if (next_deadline != NULL)
		*next_deadline = MIN(next, deadline);
	return n;
}

static struct nc_probe *
find_sent(struct netcheck *nc, const uint8_t *txid)
{
	if (nc == NULL || txid == NULL || nc->state != NETCHECK_RUNNING)
		return NULL;
	for (size_t i = 0; i < nc->n_probes; i++)
		if (nc->probes[i].state == PR_SENT &&
		    memcmp(nc->probes[i].txid, txid, NETCHECK_TXID_LEN) == 0)
			return &nc->probes[i];
	return NULL;
}

void
netcheck_sent(struct netcheck *nc, const uint8_t txid[NETCHECK_TXID_LEN], bool ok)
{
	struct nc_probe *p = find_sent(nc, txid);

	if (p == NULL)
		return;
	if (!ok) {
		p->state = PR_DROPPED;
		return;
	}
	if (p->fi == 0)
		nc->cur.ipv4_can_send = true;
	else
		nc->cur.ipv6_can_send = true;
}

static bool
same_endpoint4(const struct sockaddr_in *a, const struct sockaddr_in *b)
{
	return a->sin_addr.s_addr == b->sin_addr.s_addr &&
	    a->sin_port == b->sin_port;
}

/* addNodeLatency */
bool
netcheck_on_stun(struct netcheck *nc, const uint8_t txid[NETCHECK_TXID_LEN],
    const union wg_endpoint *mapped, uint64_t now)
{
	struct nc_probe *p = find_sent(nc, txid);
	struct netcheck_region_latency *l;
	uint64_t d, *slot, maxd = 0, deadline;
	int32_t id;

	if (p == NULL)
		return false;
	/* The host has not called netcheck_due() at the deadline: too late. */
	if (now >= (deadline = stop_deadline(nc))) {
		finish(nc, deadline);
		return false;
	}
	p->state = PR_ANSWERED;
	nc->sets[p->set].done = true;
	id = nc->regions[p->region].id;
	d = since(now, p->sent);
	if (d == 0)
		d = 1;		/* 0 means "no answer" in the report */

	nc->cur.udp = true;
	if ((l = report_region(&nc->cur, id, true)) != NULL) {
		slot = p->fi ? &l->v6_ns : &l->v4_ns;
		if (*slot == 0 || d < *slot)
			*slot = d;
	}
	if (p->fi)
		nc->cur.ipv6 = true;
	else
		nc->cur.ipv4 = true;

	/*
	 * Enough regions: wait as long as the slowest of them took (twice
	 * that in a full report) for the rest, then stop.
	 */
	if (nc->stop_at == 0 && nc->cur.n_regions >= ENOUGH_REGIONS) {
		for (size_t i = 0; i < nc->cur.n_regions; i++)
			maxd = MAX(maxd, netcheck_region_latency(&nc->cur,
			    nc->cur.regions[i].region_id));
		if (nc->full)
			maxd *= 2;
		nc->stop_at = now + maxd;
	}

	if (mapped != NULL && mapped->sa.sa_family == AF_INET) {
		if (!nc->got_ep4) {
			nc->got_ep4 = true;
			nc->cur.global_v4 = *mapped;
		} else if (!same_endpoint4(&nc->cur.global_v4.in4,
		    &mapped->in4))
			nc->cur.mapping_varies_by_dest_ip = 1;
		else if (nc->cur.mapping_varies_by_dest_ip < 0)
			nc->cur.mapping_varies_by_dest_ip = 0;
	} else if (mapped != NULL && mapped->sa.sa_family == AF_INET6)
		nc->cur.global_v6 = *mapped;

	if (all_sets_done(nc))
		finish(nc, now);
	return true;
}

void
netcheck_set_control(struct netcheck *nc, bool connected)
{
	if (nc != NULL)
		nc->connected = connected;
}

int32_t
netcheck_home(const struct netcheck *nc)
{
	return nc ? nc->home : 0;
}

void
netcheck_set_home(struct netcheck *nc, int32_t region_id)
{
	if (nc != NULL)
		nc->home = region_id > 0 ? region_id : 0;
}

const struct netcheck_report *
netcheck_last_report(const struct netcheck *nc)
{
	return nc && nc->have_last ? &nc->last : NULL;
}

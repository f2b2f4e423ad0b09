/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_ROUTER_H
#define MESHD_ROUTER_H

/*
 * The router: tailscaled's Linux policy rules and table-52 routes
 * (host.md §3.2, §3.3; wgengine/router/osrouter/router_linux.go), through
 * netlink/rtnl.h.
 *
 * Rules, for IPv4 and (if the kernel has it) IPv6, mark/mask
 * 0x80000/0xff0000, the SO_MARK our own sockets carry:
 *
 *	5210: from all fwmark 0x80000/0xff0000 lookup main
 *	5230: from all fwmark 0x80000/0xff0000 lookup default
 *	5250: from all fwmark 0x80000/0xff0000 unreachable
 *	5270: from all lookup 52
 *
 * Routes: each wanted prefix in table 52 via the TUN ("dev <ifindex>").
 *
 * Ownership: router_new() returns an object the caller frees with
 * router_free(), which removes what it installed.  The struct rtnl is
 * borrowed and must outlive the router.
 */

#include <stddef.h>
#include <stdint.h>

#include "common/util.h"

struct rtnl;
struct router;

#define ROUTER_TABLE		52
#define ROUTER_FWMARK		0x80000U
#define ROUTER_FWMASK		0xff0000U
#define ROUTER_PRIO_MAIN	5210
#define ROUTER_PRIO_DEFAULT	5230
#define ROUTER_PRIO_UNREACH	5250
#define ROUTER_PRIO_TABLE	5270
/* The range `meshd --cleanup` clears (tailscaled's ipPolicyPrefBase 5200). */
#define ROUTER_PRIO_LO		5200
#define ROUTER_PRIO_HI		5299
#define ROUTER_MAX_ROUTES	65536	/* wanted routes beyond this are ignored */

/* A route destination; host bits are ignored (the prefix is masked). */
struct router_prefix {
	uint8_t family;		/* 4 or 6 */
	uint8_t bits;
	uint8_t addr[16];	/* IPv4 in the first 4 bytes */
};

/*
 * Installs the policy rules for both families (IPv6 only if the kernel
 * supports it), first removing any other rule at our four priorities, a
 * stale copy left by an earlier run.  Rules already equal to ours are left
 * in place, so a restart never opens a gap in the fwmark bypass.
 * NULL with *cause set (caller frees) on failure.
 */
struct router *router_new(struct rtnl *nl, int ifindex, char **cause);

/*
 * Makes table 52 hold exactly p[0..n) (invalid prefixes and duplicates are
 * skipped): adds the ones not installed yet and deletes the ones installed
 * before and no longer wanted.  IPv6 prefixes are skipped when the kernel
 * has no IPv6.  A route the kernel refuses is logged (once) and retried
 * on every later call; it is not an error.  Returns the number of wanted
 * routes not in place (0 = all in place).
 */
int router_set_routes(struct router *rt, const struct router_prefix *p, size_t n);

/*
 * Re-installs the rules and every wanted route (adds are idempotent), for
 * when something removed them: the TUN went down (the kernel drops its
 * routes), or another program deleted a rule in 5200-5299.  Returns what
 * router_set_routes() returns, or -errno if a rule could not be added.
 */
int router_resync(struct router *rt);

/* Removes every route and rule it installed.  NULL-safe. */
void router_free(struct router *rt);

/*
 * For `meshd --cleanup` after a crash: flushes table 52 and the rules with
 * priorities 5200-5299, for IPv4 and IPv6.  0, or the first -errno (IPv6
 * missing from the kernel is not an error).
 */
int router_cleanup(struct rtnl *nl);

#endif

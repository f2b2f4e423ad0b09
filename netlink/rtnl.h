/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_NETLINK_RTNL_H
#define MESHD_NETLINK_RTNL_H

/*
 * rtnetlink through libmnl: links, addresses, routes, policy rules, and a
 * link/address/route/rule monitor.  Never execs `ip`.
 *
 * Conventions:
 *  - Every function returning int returns 0 (or a count where documented)
 *    on success and -errno on failure (STYLE.md §10).  Errors the kernel
 *    reports come back as its errno; the kernel's extended-ACK text, if
 *    any, is logged at debug level only.
 *  - "Absent" is always -ENOENT: the *_del functions map the kernel's
 *    ESRCH (routes), EADDRNOTAVAIL (addresses) and ENOENT (rules) to it,
 *    so cleanup code can ignore one value.
 *  - Addresses are raw network-order bytes: 4 for AF_INET, 16 for
 *    AF_INET6, stored in a 16-byte array.
 *  - A struct rtnl is not thread-safe; the daemon uses it from its one
 *    event-loop thread.  Requests are synchronous but never wait on
 *    anything but the kernel: rtnetlink handles a request inside
 *    sendmsg() and builds dump replies inside recvmsg().  A receive
 *    timeout (RTNL_TIMEOUT_SEC) bounds them anyway.
 *
 *  - Dumps (the *_list() functions, and the flushes and rtnl_rule_add()
 *    that use them) restart when the kernel flags one interrupted by a
 *    concurrent change (NLM_F_DUMP_INTR), and give up with -EAGAIN after
 *    five tries rather than act on an inconsistent view.
 *  - Link state the kernel ties to a link is not ours to keep: taking a
 *    link down drops its IPv6 addresses (unless keep_addr_on_down) and
 *    every route through it.  Callers reprogram on RTNL_EV_LINK_UP.
 *
 * Ownership: rtnl_open()/rtnl_mon_open() return objects the caller owns
 * and frees with rtnl_close()/rtnl_mon_close() (both NULL-safe).  The
 * *_list() functions return a malloc'd array the caller frees with free();
 * it is NULL when the count is 0.  Event structs passed to a monitor
 * callback are valid only during the call.
 */

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/util.h"

#define RTNL_TIMEOUT_SEC	5

struct rtnl;
struct rtnl_mon;

struct rtnl_link {
	int		ifindex;
	unsigned int	flags;		/* IFF_* as the kernel reports them */
	unsigned int	change;		/* ifi_change: monitor events only */
	uint32_t	mtu;		/* 0 if the kernel did not say */
	uint8_t		operstate;	/* IF_OPER_* */
	char		name[IF_NAMESIZE];	/* "" if not given */
};

struct rtnl_addr {
	int		family;		/* AF_INET or AF_INET6 */
	int		ifindex;
	uint8_t		prefixlen;
	uint8_t		scope;		/* RT_SCOPE_*: output only */
	uint32_t	flags;		/* IFA_F_*, e.g. IFA_F_NODAD on add */
	uint8_t		addr[16];
};

/*
 * A route.  As input to add/del, zero fields mean defaults: table 0 is the
 * main table, type 0 is RTN_UNICAST on add and "any type" on delete,
 * oif 0 is no device (required for RTN_THROW and the other reject types:
 * the kernel refuses a device on them), metric 0 is the kernel default on
 * add and "any metric" on delete, protocol 0 is RTPROT_STATIC on add.
 * scope is output only: add derives it (link for a device route, universe
 * otherwise) the way `ip route` does.
 */
struct rtnl_route {
	int		family;
	uint32_t	table;
	uint8_t		type;		/* RTN_* */
	uint8_t		protocol;	/* RTPROT_* */
	uint8_t		scope;
	uint8_t		tos;
	uint8_t		dst_len;
	uint8_t		dst[16];
	int		oif;
	uint32_t	metric;		/* RTA_PRIORITY */
};

/*
 * A policy rule, "from all [not] fwmark M/K <action>".  priority must be
 * non-zero: the kernel reads a zero priority in a delete as "any", which
 * could remove the local-table rule.  fwmark 0 with fwmask 0 matches every
 * mark; a non-zero fwmark with fwmask 0 means mask 0xffffffff, as in the
 * kernel.  table (non-zero) is used only with FR_ACT_TO_TBL.
 */
struct rtnl_rule {
	int		family;
	uint32_t	priority;
	uint32_t	fwmark;
	uint32_t	fwmask;
	uint32_t	table;
	uint8_t		action;		/* FR_ACT_*, 0 = FR_ACT_TO_TBL */
	bool		invert;		/* FIB_RULE_INVERT, "not fwmark" */
	/*
	 * Output only: the rule also matches on something this struct does
	 * not describe (from/to prefixes, iif/oif, tos, uid or port ranges,
	 * suppress_prefixlength, ...), so it is never equal to ours.
	 */
	bool		other_selectors;
};

/* Request socket. */
int rtnl_open(struct rtnl **rp) __must_check;
void rtnl_close(struct rtnl *r);

/* ifindex of a link by name (if_nametoindex), or -ENODEV / -EINVAL. */
int rtnl_link_index(const char *name) __must_check;
int rtnl_link_get(struct rtnl *r, int ifindex, struct rtnl_link *out)
    __must_check;
int rtnl_link_set_up(struct rtnl *r, int ifindex, bool up) __must_check;
int rtnl_link_set_mtu(struct rtnl *r, int ifindex, uint32_t mtu) __must_check;

/* Add is idempotent (NLM_F_REPLACE): adding a present address succeeds. */
int rtnl_addr_add(struct rtnl *r, const struct rtnl_addr *a) __must_check;
int rtnl_addr_del(struct rtnl *r, const struct rtnl_addr *a);
/* family AF_UNSPEC = both; ifindex 0 = every link. */
int rtnl_addr_list(struct rtnl *r, int family, int ifindex,
    struct rtnl_addr **out, size_t *n) __must_check;

/*
 * Add is idempotent (NLM_F_CREATE|NLM_F_REPLACE): a route with the same
 * destination, tos and metric in the same table is replaced, not doubled.
 */
int rtnl_route_add(struct rtnl *r, const struct rtnl_route *rt) __must_check;
int rtnl_route_del(struct rtnl *r, const struct rtnl_route *rt);
/* family AF_UNSPEC = both; table 0 = every table. */
int rtnl_route_list(struct rtnl *r, int family, uint32_t table,
    struct rtnl_route **out, size_t *n) __must_check;
/*
 * Delete every route in table (non-zero) for family (AF_UNSPEC = both).
 * Repeats dump-and-delete until the table reads empty; -EBUSY if something
 * keeps adding routes.
 */
int rtnl_route_flush_table(struct rtnl *r, int family, uint32_t table);

/*
 * Add is idempotent: if an equal rule (same family, priority, mark/mask,
 * invert, action and table, no other selectors) exists, nothing is done.
 * It checks with a dump instead of deleting first, so the rule never
 * disappears (a gap in the fwmark bypass rule would send our own packets
 * into the tunnel), and also sets NLM_F_EXCL for kernels that honour it.
 */
int rtnl_rule_add(struct rtnl *r, const struct rtnl_rule *ru) __must_check;
int rtnl_rule_del(struct rtnl *r, const struct rtnl_rule *ru);
/* family AF_UNSPEC = both. */
int rtnl_rule_list(struct rtnl *r, int family, struct rtnl_rule **out,
    size_t *n) __must_check;
/* Delete every rule with lo <= priority <= hi (lo >= 1); -EBUSY as above. */
int rtnl_rule_flush_priority(struct rtnl *r, int family, uint32_t lo,
    uint32_t hi);

/*
 * Monitor.  A separate non-blocking socket subscribed to the groups asked
 * for.  The caller's event loop polls rtnl_mon_fd() for reading and calls
 * rtnl_mon_read(), which reads what is queued (at most RTNL_MON_BATCH
 * datagrams per call, so a storm cannot starve the loop; level-triggered
 * polling calls again) and calls fn once per event.  fn may use a struct
 * rtnl but must not close the monitor.
 */
#define RTNL_MON_LINK	(1U << 0)	/* RTNLGRP_LINK */
#define RTNL_MON_ADDR	(1U << 1)	/* RTNLGRP_IPV{4,6}_IFADDR */
#define RTNL_MON_ROUTE	(1U << 2)	/* RTNLGRP_IPV{4,6}_ROUTE */
#define RTNL_MON_RULE	(1U << 3)	/* RTNLGRP_IPV{4,6}_RULE */

#define RTNL_MON_BATCH	64

enum rtnl_event_kind {
	/*
	 * Notifications were lost (the socket overran: ENOBUFS, or one did
	 * not fit the buffer).  The caller must re-read the state it cares
	 * about; no other field is set.
	 */
	RTNL_EV_RESYNC = 1,
	/*
	 * Link kinds come from the kernel's ifi_change mask: it marks every
	 * flag changed (~0) when a link registers (NEW), and IFF_UP when
	 * the admin state flips (UP/DOWN).  Anything else, carrier
	 * (IFF_LOWER_UP/IFF_RUNNING), MTU or name changes included, is
	 * CHANGE; check link.flags.  A link first seen in a CHANGE event
	 * is new to the caller too.
	 */
	RTNL_EV_LINK_NEW,
	RTNL_EV_LINK_UP,
	RTNL_EV_LINK_DOWN,
	RTNL_EV_LINK_CHANGE,
	RTNL_EV_LINK_DEL,
	RTNL_EV_ADDR_NEW,	/* also on a change of flags or lifetimes */
	RTNL_EV_ADDR_DEL,
	RTNL_EV_ROUTE_NEW,
	RTNL_EV_ROUTE_DEL,
	RTNL_EV_RULE_NEW,
	RTNL_EV_RULE_DEL,
};

struct rtnl_event {
	enum rtnl_event_kind kind;
	union {
		struct rtnl_link	link;
		struct rtnl_addr	addr;
		struct rtnl_route	route;
		struct rtnl_rule	rule;
	};
};

typedef void (*rtnl_event_fn)(void *ctx, const struct rtnl_event *ev);

int rtnl_mon_open(unsigned int groups, rtnl_event_fn fn, void *ctx,
    struct rtnl_mon **mp) __must_check;
void rtnl_mon_close(struct rtnl_mon *m);
int rtnl_mon_fd(const struct rtnl_mon *m);
/* Returns the number of events delivered (0 if none were queued) or -errno. */
int rtnl_mon_read(struct rtnl_mon *m) __must_check;

#endif

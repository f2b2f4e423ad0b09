/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_NETMAP_H
#define MESHD_NETMAP_H

/*
 * The node's view of the tailnet, built from the map stream one
 * MapResponse at a time (control.md §7).
 *
 * This header is the data model that the rest of the agent reads: the self
 * node, the peers (hash-indexed by node ID and by node key), the DERP map,
 * the DNS configuration, the named packet filters, user profiles and a few
 * scalars.  mapresp.h decodes the wire into the same types; netmap_apply()
 * folds one decoded message into the netmap with the client semantics of
 * Go's controlclient (map.go updateStateFromResponse /
 * updatePeersStateFromResponse) and reports what changed, so that wg,
 * magicsock, dns and filter can update incrementally.
 *
 * Cost: a delta costs O(size of the delta): every peer operation is a hash
 * lookup plus work on that one peer.  Only a full "Peers" list walks the
 * whole set (to find the peers it no longer names).
 *
 * Ownership: the netmap owns everything it returns.  Pointers handed out
 * (nodes, strings, arrays, DERP/DNS/filter structures) stay valid until the
 * next netmap_apply() or netmap_free(); consumers that keep state across
 * applies keep node IDs, not pointers.
 *
 * Times are Unix milliseconds (int64); Go's zero time and an absent value
 * are both 0.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/keys.h"

struct mapresp;

/* A netip.Prefix: "100.64.0.1/32", "fd7a:115c:a1e0::1/128".  IPv4 uses the
 * first 4 bytes of addr.  Host bits are kept as sent (Go keeps them too). */
struct netmap_prefix {
	uint8_t addr[16];
	uint8_t family;		/* 4 or 6 */
	uint8_t bits;
};

/* A netip.AddrPort: "192.0.2.1:41641", "[2001:db8::1]:41641". */
struct netmap_addrport {
	uint8_t addr[16];
	uint16_t port;
	uint8_t family;		/* 4 or 6 */
};

enum netmap_online {
	NETMAP_ONLINE_UNKNOWN = 0,	/* Node.Online absent (a *bool in Go) */
	NETMAP_ONLINE_NO = 1,
	NETMAP_ONLINE_YES = 2,
};

enum netmap_node_flag {
	NETMAP_NODE_AUTHORIZED = 1U << 0,	/* MachineAuthorized */
	NETMAP_NODE_EXPIRED = 1U << 1,		/* Expired (key expired) */
	NETMAP_NODE_UNSIGNED_PEERAPI = 1U << 2,	/* UnsignedPeerAPIOnly */
	NETMAP_NODE_WIREGUARD_ONLY = 1U << 3,	/* IsWireGuardOnly */
	NETMAP_NODE_JAILED = 1U << 4,		/* IsJailed */
};

/*
 * One tailcfg.Node, normalised the way Go's map.go upgradeNode does it:
 * a legacy "DERP":"127.3.3.40:N" becomes home_derp N when HomeDERP is 0,
 * and AllowedIPs == null becomes a copy of Addresses (capver >= 112).  The
 * deprecated Capabilities list is merged into the CapMap keys.  CapMap
 * values (raw JSON) are not kept, only the keys.  Strings are never NULL
 * ("" when absent).  ComputedName and ComputedNameWithHost are not stored;
 * netmap_computed_name() derives them on demand (as Go's InitDisplayNames
 * would) from name, hostname and the self node's MagicDNS suffix.
 */
struct netmap_node {
	int64_t id;			/* ID (NodeID) */
	int64_t user;			/* User (UserID) */
	int64_t key_expiry;		/* KeyExpiry; 0 = does not expire */
	int64_t last_seen;		/* LastSeen; 0 = null */
	int64_t created;		/* Created */
	uint8_t key[KEY_LEN];		/* Key, "nodekey:": the WireGuard public key */
	uint8_t machine[KEY_LEN];	/* Machine, "mkey:"; zero if absent */
	uint8_t disco[KEY_LEN];		/* DiscoKey, "discokey:"; zero if absent */
	int32_t home_derp;		/* HomeDERP region ID; 0 = none */
	int32_t cap;			/* Cap (under Headscale: *our* capver, §7.2) */
	uint8_t online;			/* enum netmap_online */
	uint8_t flags;			/* enum netmap_node_flag */
	uint8_t n_addrs;
	uint16_t n_endpoints;
	uint16_t n_caps;
	uint16_t n_tags;
	uint32_t n_allowed_ips;
	uint32_t n_primary_routes;
	const char *stable_id;		/* StableID */
	const char *name;		/* Name: MagicDNS FQDN with the trailing dot */
	const char *hostname;		/* Hostinfo.Hostname */
	const char *os;			/* Hostinfo.OS */
	const struct netmap_prefix *addrs;		/* Addresses */
	const struct netmap_prefix *allowed_ips;	/* AllowedIPs */
	const struct netmap_prefix *primary_routes;	/* PrimaryRoutes */
	const struct netmap_addrport *endpoints;	/* Endpoints */
	const char *const *caps;	/* CapMap keys + Capabilities, sorted, unique */
	const char *const *tags;	/* Tags */

	/* Private to netmap.c (hash chains and change bookkeeping). */
	struct netmap_node *id_next, **id_pprev;
	struct netmap_node *key_next, **key_pprev;
	uint32_t mark, log_seq, log_idx, size;
};

/* DERPMap (control.md §7.2; derpmap.go).  Regions sorted by ID. */
enum netmap_derp_flag {
	NETMAP_DERP_STUN_ONLY = 1U << 0,
	NETMAP_DERP_INSECURE_FOR_TESTS = 1U << 1,	/* skip TLS verification */
	NETMAP_DERP_CAN_PORT_80 = 1U << 2,
	NETMAP_DERP_REGION_AVOID = 1U << 3,
	NETMAP_DERP_REGION_NO_MEASURE_NO_HOME = 1U << 4,
};

struct netmap_derp_node {
	const char *name;
	const char *hostname;
	const char *cert_name;
	const char *ipv4;		/* "" = use DNS, "none" = disabled */
	const char *ipv6;
	int32_t region_id;
	int32_t stun_port;		/* 0 = 3478, -1 = disabled */
	int32_t derp_port;		/* 0 = 443 */
	uint8_t flags;			/* NETMAP_DERP_STUN_ONLY etc. */
};

struct netmap_derp_region {
	int32_t region_id;		/* the Regions map key */
	uint8_t flags;			/* NETMAP_DERP_REGION_* */
	const char *code;
	const char *name;
	uint32_t n_nodes;
	const struct netmap_derp_node *nodes;
};

struct netmap_derp_score {
	int32_t region_id;
	double score;
};

struct netmap_derp_map {
	uint32_t n_regions;
	const struct netmap_derp_region *regions;
	uint32_t n_scores;			/* HomeParams.RegionScore */
	const struct netmap_derp_score *scores;
	bool omit_default_regions;
};

/* DNSConfig, a subset (tailcfg.DNSConfig, dnstype.Resolver). */
struct netmap_dns_resolver {
	const char *addr;		/* IP, IP:port, DoH URL, ... as sent */
	bool use_with_exit_node;
};

struct netmap_dns_route {
	const char *suffix;		/* sorted, unique */
	uint32_t n_resolvers;		/* 0: answered by MagicDNS itself */
	const struct netmap_dns_resolver *resolvers;
};

struct netmap_dns_record {
	const char *name;
	const char *type;		/* "" = A/AAAA by the value's family */
	const char *value;
};

struct netmap_dns_config {
	bool proxied;			/* MagicDNS */
	uint32_t n_resolvers, n_fallback, n_routes, n_domains, n_records, n_cert_domains;
	const struct netmap_dns_resolver *resolvers;
	const struct netmap_dns_resolver *fallback;	/* FallbackResolvers */
	const struct netmap_dns_route *routes;
	const char *const *domains;
	const struct netmap_dns_record *records;	/* ExtraRecords */
	const char *const *cert_domains;
};

/* FilterRule, kept raw for agent/filter to compile (tailcfg.FilterRule). */
struct netmap_port_range {
	uint16_t first, last;
};

struct netmap_dst_ports {
	const char *ip;			/* "*", IP, CIDR or "a-b" range */
	int32_t bits;			/* deprecated Bits; -1 if absent */
	struct netmap_port_range ports;
};

struct netmap_filter_rule {
	uint32_t n_src_ips, n_src_bits, n_dst_ports, n_ip_proto;
	const char *const *src_ips;	/* "*", IP, CIDR or "a-b" range */
	const int32_t *src_bits;	/* deprecated SrcBits */
	const struct netmap_dst_ports *dst_ports;
	const int32_t *ip_proto;	/* empty = TCP, UDP, ICMPv4, ICMPv6 */
	bool cap_grant;			/* had CapGrant entries (not kept) */
};

/* One named chunk of PacketFilters; the effective filter is the
 * concatenation of all chunks ordered by name (map.go). */
struct netmap_filter {
	const char *name;
	uint32_t n_rules;
	const struct netmap_filter_rule *rules;
};

struct netmap_user {
	int64_t id;
	const char *login_name;
	const char *display_name;
	struct netmap_user *next;	/* private */
};

/* What netmap_apply() changed. */
enum netmap_changed {
	NETMAP_CHANGED_SELF = 1U << 0,		/* see netmap_self_changes() */
	NETMAP_CHANGED_PEERS_ADDED = 1U << 1,	/* see netmap_changes() */
	NETMAP_CHANGED_PEERS_REMOVED = 1U << 2,
	NETMAP_CHANGED_PEERS_CHANGED = 1U << 3,
	NETMAP_CHANGED_PEERS_FULL = 1U << 4,	/* a full Peers list was applied */
	NETMAP_CHANGED_DERP = 1U << 5,
	NETMAP_CHANGED_DNS = 1U << 6,
	NETMAP_CHANGED_FILTER = 1U << 7,
	NETMAP_CHANGED_USERS = 1U << 8,
	NETMAP_CHANGED_DOMAIN = 1U << 9,
	NETMAP_CHANGED_HEALTH = 1U << 10,
	NETMAP_CHANGED_COLLECT_SERVICES = 1U << 11,
};

/* What changed on one node (per peer in netmap_changes(), and for self). */
enum netmap_node_change {
	NETMAP_PEER_ADDED = 1U << 0,
	NETMAP_PEER_REMOVED = 1U << 1,
	NETMAP_PEER_KEY = 1U << 2,		/* Key: wg peer identity */
	NETMAP_PEER_DISCO = 1U << 3,		/* DiscoKey */
	NETMAP_PEER_ENDPOINTS = 1U << 4,
	NETMAP_PEER_DERP = 1U << 5,		/* HomeDERP */
	NETMAP_PEER_ADDRS = 1U << 6,		/* Addresses, AllowedIPs, PrimaryRoutes */
	NETMAP_PEER_ONLINE = 1U << 7,
	NETMAP_PEER_LAST_SEEN = 1U << 8,
	NETMAP_PEER_EXPIRY = 1U << 9,		/* KeyExpiry, Expired */
	NETMAP_PEER_NAME = 1U << 10,		/* Name, StableID, User, Tags, Hostinfo */
	NETMAP_PEER_CAPS = 1U << 11,		/* CapMap keys, Cap */
	NETMAP_PEER_OTHER = 1U << 12,		/* Machine, Created, other flags */
};

/* One entry per peer touched by the last apply, in order of first change;
 * several changes to one peer in one message are merged into one entry,
 * except that a peer removed and re-added gets a REMOVED then an ADDED. */
struct netmap_change {
	int64_t id;
	uint32_t what;			/* enum netmap_node_change */
};

typedef int64_t (*netmap_clock_fn)(void *ctx);	/* now, Unix ms */

/* Returns a new, empty netmap; never NULL (allocation failure is fatal). */
struct netmap *netmap_new(void);
void netmap_free(struct netmap *nm);

/* The clock PeerSeenChange uses for "LastSeen = now".  Default: the real
 * clock.  Nothing else in the netmap reads a clock. */
void netmap_set_clock(struct netmap *nm, netmap_clock_fn fn, void *ctx);

/*
 * Applies one decoded MapResponse.  Returns a mask of enum netmap_changed
 * (0 for a keep-alive or a message that repeats the current state).  Never
 * fails: every input was validated and capped by mapresp_decode(), and the
 * netmap's own allocations use xmalloc (control path, §13).
 */
uint32_t netmap_apply(struct netmap *nm, const struct mapresp *mr);

/* Per-peer change log of the last netmap_apply(). */
const struct netmap_change *netmap_changes(const struct netmap *nm, size_t *n);
/* enum netmap_node_change bits for the self node in the last apply. */
uint32_t netmap_self_changes(const struct netmap *nm);

/* NULL until a message with Node has been applied. */
const struct netmap_node *netmap_self(const struct netmap *nm);

size_t netmap_peer_count(const struct netmap *nm);
const struct netmap_node *netmap_peer(const struct netmap *nm, int64_t id);
const struct netmap_node *netmap_peer_by_key(const struct netmap *nm,
    const uint8_t key[static KEY_LEN]);

/* Unordered iteration: start with it = {0}; returns NULL at the end. */
struct netmap_iter {
	size_t bucket;
	const struct netmap_node *next;
};
const struct netmap_node *netmap_iter_next(const struct netmap *nm, struct netmap_iter *it);

/* NULL until a DERPMap has been received. */
const struct netmap_derp_map *netmap_derp_map(const struct netmap *nm);
/* Never NULL: an empty configuration until DNSConfig arrives (as Go). */
const struct netmap_dns_config *netmap_dns(const struct netmap *nm);
/* Named filter chunks, sorted by name.  has_filter is false until any
 * PacketFilter(s) arrived: no filter at all means drop inbound (§10.14). */
size_t netmap_filters(const struct netmap *nm, const struct netmap_filter **out);
bool netmap_has_filter(const struct netmap *nm);
const struct netmap_user *netmap_user(const struct netmap *nm, int64_t id);
size_t netmap_user_count(const struct netmap *nm);
const char *netmap_domain(const struct netmap *nm);		/* "" if none */
size_t netmap_health(const struct netmap *nm, const char *const **out);
int64_t netmap_control_time(const struct netmap *nm);		/* 0 if none */
int netmap_collect_services(const struct netmap *nm);		/* -1 unset, 0, 1 */

/* MagicDNS suffix of the self node's name (Go's MagicDNSSuffixOfNodeName),
 * "" before the first Node. */
const char *netmap_magic_dns_suffix(const struct netmap *nm);

/*
 * Go's Node.InitDisplayNames (tailcfg.go) on demand: ComputedName, or with
 * with_host ComputedNameWithHost.  Writes a NUL-terminated string into buf
 * (truncated to len) and returns the untruncated length, like snprintf.
 */
size_t netmap_computed_name(const struct netmap *nm, const struct netmap_node *n,
    bool with_host, char *buf, size_t len);

/* Binary search of the node's sorted capability keys. */
bool netmap_node_has_cap(const struct netmap_node *n, const char *cap);

/* Bytes the netmap has allocated (nodes, tables, DERP/DNS/filter data). */
size_t netmap_mem_usage(const struct netmap *nm);

/* Checks the internal invariants (index consistency, counts); 0 if sound.
 * For tests and fuzzers. */
int netmap_check(const struct netmap *nm);

#endif

/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_MAPRESP_H
#define MESHD_MAPRESP_H

/*
 * The map-response stream (control.md §4.3) and the MapResponse JSON
 * (control.md §7), sans I/O.
 *
 * 1. Framing.  The HTTP/2 response body of POST /machine/map is a sequence
 *    of [u32 little-endian length N][N bytes], the N bytes being one
 *    tailcfg.MapResponse as JSON, or as one zstd frame when the request
 *    said "Compress":"zstd" (Go: control/controlclient/direct.go
 *    sendMapRequest; Headscale: hscontrol/poll.go writeMap).  DATA frames
 *    and Noise records cut the stream anywhere, so mapresp_stream_feed()
 *    takes any split and hands each complete message, decompressed and
 *    NUL-terminated, to a callback.  Every violation is a sticky error: the
 *    stream is unusable afterwards and the caller reconnects, as Go does.
 *
 * 2. Decoding.  mapresp_decode() turns one message into a struct mapresp.
 *    Unknown fields are skipped (§7.4); field names match ASCII
 *    case-insensitively, as Go's encoding/json does; null is "absent"
 *    everywhere.  A known field of the wrong JSON type, a bad key, prefix,
 *    address or time, or any cap below exceeded rejects the whole message.
 *
 *    The decoder is a strict RFC 8259 pull parser that writes straight into
 *    our structs, not json-c: json-c's DOM for a 10,000-peer map (7.9 MB)
 *    took ~95 ms to build and ~90 ms to free here, and its transient heap is
 *    many times the document size, against a budget of 100 ms for the whole
 *    decode + apply.  (DESIGN.md asks for a line of justification when we
 *    hand-write what a listed library does: this is it.)
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/control/netmap.h"

/* Errors: negative, stable, one per class. */
enum mapresp_err {
	MAPRESP_OK = 0,
	MAPRESP_E_NOMEM = -1,
	MAPRESP_E_FRAME_TOO_BIG = -2,	/* length prefix above frame_max */
	MAPRESP_E_JSON_TOO_BIG = -3,	/* decompressed above json_max */
	MAPRESP_E_ZSTD = -4,		/* corrupt, truncated or trailing zstd data */
	MAPRESP_E_CALLBACK = -5,	/* the message callback returned non-zero */
	MAPRESP_E_SYNTAX = -6,		/* not JSON */
	MAPRESP_E_TYPE = -7,		/* a known field has the wrong JSON type */
	MAPRESP_E_LIMIT = -8,		/* a string, array, depth or memory cap */
	MAPRESP_E_VALUE = -9,		/* bad key, prefix, address, time, number */
};

const char *mapresp_strerror(int err);

/*
 * Caps.  Framing: MAPRESP_FRAME_MAX_DEFAULT bounds the bytes on the wire
 * per message (Go's tsp package uses 4 MiB, its main client nothing; §4.3
 * asks for >= 16 MiB), MAPRESP_JSON_MAX_DEFAULT the JSON after
 * decompression.  A full map of 10,000 Headscale peers is ~8 MB of JSON.
 *
 * Decoding: the per-field caps below; a memory budget of
 * 1 MiB + MAPRESP_MEM_FACTOR x the JSON length for everything one decode
 * allocates; nesting depth MAPRESP_MAX_DEPTH.  The caps are far above what
 * a real tailnet sends but stop a hostile or broken server from making us
 * allocate without bound.
 */
#define MAPRESP_FRAME_MAX_DEFAULT	(16u << 20)
#define MAPRESP_JSON_MAX_DEFAULT	(64u << 20)
#define MAPRESP_MEM_FACTOR		32
#define MAPRESP_MAX_DEPTH		64
#define MAPRESP_MAX_STRING		1024	/* any kept string, in bytes */
#define MAPRESP_MAX_LONG_STRING		8192	/* URLs, health messages */
#define MAPRESP_MAX_NODES		200000	/* Peers, PeersChanged, PeersRemoved, ... */
#define MAPRESP_MAX_ADDRS		16	/* Node.Addresses */
#define MAPRESP_MAX_ROUTES		16384	/* AllowedIPs, PrimaryRoutes */
#define MAPRESP_MAX_ENDPOINTS		256
#define MAPRESP_MAX_CAPS		1024	/* CapMap keys + Capabilities, Tags */
#define MAPRESP_MAX_DERP_REGIONS	4096
#define MAPRESP_MAX_DERP_NODES		256	/* per region */
#define MAPRESP_MAX_DNS_LIST		1024	/* resolvers, domains, cert domains */
#define MAPRESP_MAX_DNS_ROUTES		16384
#define MAPRESP_MAX_DNS_RECORDS		65536
#define MAPRESP_MAX_FILTERS		1024	/* named PacketFilters chunks */
#define MAPRESP_MAX_RULES		65536	/* per chunk */
#define MAPRESP_MAX_RULE_LIST		262144	/* SrcIPs, DstPorts, SrcBits per rule */
#define MAPRESP_MAX_IPPROTO		256
#define MAPRESP_MAX_USERS		200000
#define MAPRESP_MAX_HEALTH		256

/* Counters a caller may pass along to both halves. */
struct mapresp_stats {
	uint64_t frames;		/* messages framed */
	uint64_t wire_bytes;		/* bytes fed, including length prefixes */
	uint64_t json_bytes;		/* bytes handed to the callback */
	uint64_t decoded;		/* messages decoded */
	uint64_t rejected;		/* messages mapresp_decode() refused */
	uint64_t over_cap;		/* ... of which for a cap (MAPRESP_E_LIMIT) */
};

/* ---- 1. Framing ---- */

enum mapresp_stream_flag {
	MAPRESP_STREAM_ZSTD = 1U << 0,	/* the request asked for Compress:"zstd" */
};

/*
 * Called once per message with its JSON, NUL-terminated (json[len] == 0);
 * the buffer belongs to the stream and is valid during the call only.
 * Return 0 to go on; anything else stops the stream (MAPRESP_E_CALLBACK).
 */
typedef int (*mapresp_msg_fn)(void *ctx, const char *json, size_t len);

struct mapresp_stream;

/* frame_max / json_max of 0 select the defaults.  NULL only on ENOMEM. */
struct mapresp_stream *mapresp_stream_new(uint32_t flags, size_t frame_max,
    size_t json_max, mapresp_msg_fn fn, void *ctx);
void mapresp_stream_free(struct mapresp_stream *s);

/* Consumes len bytes.  Returns 0, or the (sticky) negative error. */
int mapresp_stream_feed(struct mapresp_stream *s, const uint8_t *buf, size_t len)
	__attribute__((warn_unused_result));
int mapresp_stream_error(const struct mapresp_stream *s);
/* Bytes of an incomplete message held; non-zero at end of body = truncated. */
size_t mapresp_stream_pending(const struct mapresp_stream *s);
const struct mapresp_stats *mapresp_stream_stats(const struct mapresp_stream *s);

/* ---- 2. Decoding ---- */

/* PeersChangedPatch entry (tailcfg.PeerChange): has says which fields were
 * present (non-null); each present field overwrites the peer's. */
enum mapresp_patch_has {
	MAPRESP_PATCH_DERP = 1U << 0,		/* DERPRegion (non-zero) */
	MAPRESP_PATCH_CAP = 1U << 1,		/* Cap (non-zero) */
	MAPRESP_PATCH_CAPMAP = 1U << 2,
	MAPRESP_PATCH_ENDPOINTS = 1U << 3,
	MAPRESP_PATCH_KEY = 1U << 4,
	MAPRESP_PATCH_DISCO = 1U << 5,
	MAPRESP_PATCH_ONLINE = 1U << 6,
	MAPRESP_PATCH_LAST_SEEN = 1U << 7,
	MAPRESP_PATCH_KEY_EXPIRY = 1U << 8,
};

struct mapresp_patch {
	int64_t node_id;
	uint32_t has;			/* enum mapresp_patch_has */
	int32_t derp_region;
	int32_t cap;
	bool online;
	int64_t last_seen;
	int64_t key_expiry;		/* 0 = zero time: clears the expiry */
	uint8_t key[KEY_LEN];
	uint8_t disco[KEY_LEN];
	uint16_t n_endpoints;
	uint16_t n_caps;
	const struct netmap_addrport *endpoints;
	const char *const *caps;	/* CapMap keys, sorted, unique */
};

/* OnlineChange / PeerSeenChange entries, in message order. */
struct mapresp_id_bool {
	int64_t id;
	bool value;
};

/* DERPMap: absent parts mean "keep the old ones" (capver 65). */
struct mapresp_derp {
	bool has_regions;		/* Regions non-null (then omit_default_regions too) */
	bool has_scores;		/* HomeParams.RegionScore non-null */
	struct netmap_derp_map map;
	uint8_t regions_hash[16];	/* BLAKE2b of the raw Regions JSON */
	uint8_t scores_hash[16];
};

/* One PacketFilters entry; is_null deletes that name ("*": null = clear all). */
struct mapresp_filter {
	const char *name;
	bool is_null;
	uint32_t n_rules;
	const struct netmap_filter_rule *rules;
	uint8_t hash[16];		/* BLAKE2b of the raw JSON value */
};

struct mapresp_ping {
	const char *url;
	const char *types;
	const char *ip;
	bool url_is_noise;
	bool log;
};

enum mapresp_has {
	MAPRESP_HAS_PACKET_FILTER = 1U << 0,	/* legacy PacketFilter non-null */
	MAPRESP_HAS_PACKET_FILTERS = 1U << 1,
	MAPRESP_HAS_HEALTH = 1U << 2,
	MAPRESP_HAS_SSH_POLICY = 1U << 3,	/* present; contents not decoded */
	MAPRESP_HAS_CONTROL_TIME = 1U << 4,
	MAPRESP_HAS_COLLECT_SERVICES = 1U << 5,
	MAPRESP_HAS_DEBUG = 1U << 6,		/* present; ignored */
};

/*
 * One decoded MapResponse.  NULL pointers and zero counts mean "absent";
 * netmap_apply() gives absence its meaning (mostly "unchanged", §7.1).
 * Everything is owned by the struct and freed by mapresp_free().
 */
struct mapresp {
	uint32_t has;			/* enum mapresp_has */
	bool keep_alive;
	bool collect_services;		/* if MAPRESP_HAS_COLLECT_SERVICES */
	int64_t seq;
	int64_t control_time;		/* if MAPRESP_HAS_CONTROL_TIME */
	const char *domain;		/* NULL or "": unchanged */
	const char *map_session_handle;
	const char *pop_browser_url;
	const struct mapresp_ping *ping;	/* PingRequest */

	const struct netmap_node *node;	/* self */
	uint32_t n_peers, n_peers_changed, n_peers_removed, n_patches;
	uint32_t n_online_change, n_seen_change;
	const struct netmap_node *peers;
	const struct netmap_node *peers_changed;
	const int64_t *peers_removed;
	const struct mapresp_patch *patches;
	const struct mapresp_id_bool *online_change;
	const struct mapresp_id_bool *seen_change;

	const struct mapresp_derp *derp;
	const struct netmap_dns_config *dns;
	uint8_t dns_hash[16];
	uint32_t n_packet_filter;	/* legacy PacketFilter */
	const struct netmap_filter_rule *packet_filter;
	uint8_t packet_filter_hash[16];
	uint32_t n_packet_filters;
	const struct mapresp_filter *packet_filters;
	uint32_t n_user_profiles;
	const struct netmap_user *user_profiles;
	uint32_t n_health;
	const char *const *health;

	struct mapresp_arena *arena;	/* private */
};

/*
 * Decodes json[0..len) (need not be NUL-terminated).  On success *out is a
 * new struct mapresp; on failure *out is NULL and, when where is non-NULL,
 * it receives a short description of the offending field (static storage
 * inside *where_buf of where_len bytes).  stats may be NULL.
 */
int mapresp_decode(const char *json, size_t len, struct mapresp **out,
    struct mapresp_stats *stats, char *where_buf, size_t where_len)
	__attribute__((warn_unused_result));
void mapresp_free(struct mapresp *mr);

/*
 * A chunked bump allocator, shared with netmap.c (which keeps the DERP map,
 * DNS configuration and filters in one each).  limit 0 = unlimited; above
 * the limit, alloc returns NULL and sets over_limit.  Big chunks come from
 * mmap so that freeing a large map gives the memory back to the system.
 */
struct mapresp_arena *mapresp_arena_new(size_t limit);
void mapresp_arena_free(struct mapresp_arena *a);
void *mapresp_arena_alloc(struct mapresp_arena *a, size_t n, size_t align);
char *mapresp_arena_strdup(struct mapresp_arena *a, const char *s);
size_t mapresp_arena_size(const struct mapresp_arena *a);
bool mapresp_arena_over_limit(const struct mapresp_arena *a);

#endif

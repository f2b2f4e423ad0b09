/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_AGENT_LOCALAPI_H
#define MESHD_AGENT_LOCALAPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * localapi: HTTP/1.1 on a unix socket between meshd and meshctl (DESIGN.md
 * "Local API"; STYLE.md §23).  This module is both ends of the wire and
 * nothing else: the daemon registers a table of handlers and owns every
 * decision; meshctl (agent/cli/) sends requests and renders answers.
 *
 * Three parts, in this order below:
 *   1. the server (lapi_server_*, lapi_reply_*), run on the daemon's loop;
 *   2. the blocking client (lapi_client_call) meshctl and the tests use;
 *   3. the JSON contract: the bodies both ends exchange, with C structs and
 *      codecs so that json-c stays inside this module and agent/cli/.
 *
 * ---------------------------------------------------------------------
 * Transport rules (checked by the server before any handler runs)
 *
 *   Socket     LAPI_DEFAULT_SOCKET unless --socket; the directory is
 *              created 0755 if missing, the socket is 0666: reads are open
 *              to every local user.  A stale socket (nobody answers) is
 *              replaced; a live one (another meshd) is an error, as is a
 *              path that exists and is not a socket.
 *   Writes     every POST/PUT/PATCH/DELETE (except the routes marked
 *              "read" below) needs a caller that is uid 0, the daemon's
 *              own effective uid, or the configured operator uid, as told
 *              by SO_PEERCRED; others get 403.
 *   Version    every request carries "Meshd-Api-Version: 1"; a missing or
 *              different value gets 400 naming both versions (only
 *              /metrics is exempt, for scrapers).  Every response the
 *              module writes carries Meshd-Api-Version and Meshd-Version
 *              (the daemon's MESHD_VERSION), so the client checks too.
 *   Browsers   a request with Referer or Origin gets 403 (as tailscaled).
 *   Caps       headers LAPI_MAX_HEADERS, body LAPI_MAX_BODY (413),
 *              LAPI_MAX_CONNS connections (more wait in the backlog),
 *              LAPI_MAX_PENDING unfinished replies (503), idle and I/O
 *              timeout LAPI_IO_TIMEOUT_SEC.
 *   Errors     every error the module or a handler sends through
 *              lapi_reply_error() is {"error":"<message>"} with a 4xx/5xx
 *              status; the message is shown to the user as is.
 *
 * Routes (all under /localapi/v0/; GET routes also answer HEAD)
 *
 *   path               method  perm   handler            body / answer
 *   status             GET     read   status             -> Status (§A)
 *                                                        ?peers=false: no
 *                                                        Peer map
 *   prefs              GET     read   prefs_get          -> Prefs (§B)
 *   prefs              PATCH   write  prefs_patch        MaskedPrefs (§B)
 *                                                        -> Prefs (new)
 *   up                 POST    write  up                 UpRequest (§C)
 *                                                        -> NDJSON stream
 *   down               POST    write  down               -> 204
 *   login-interactive  POST    write  login_interactive  -> 204
 *   logout             POST    write  logout             -> 204
 *   whois              GET     read   whois              ?addr=IP[:port]
 *                                                        -> WhoIs (§E)
 *   ping               POST    read   ping               ?ip=&type=&size=
 *                                                        -> PingResult (§D)
 *   netcheck           GET     read   netcheck           -> Netcheck (§F)
 *   dns-status         GET     read   dns_status         -> DNSStatus (§G)
 *   metrics            GET     read   metrics            -> Prometheus text
 *   watch-ipn-bus      GET     read   watch_ipn_bus      ?mask=N -> NDJSON
 *                                                        Notify stream (§C)
 *   version            GET     read   (this module)      {"Version":"…",
 *                                                        "ApiVersion":1}
 *
 * Unknown path: 404.  Known path, wrong method: 405 with Allow.  A route
 * whose handler is NULL: 501.  "read" POSTs (ping) are open to all users,
 * as in tailscaled, where ping is not a write.
 */

#define LAPI_API_VERSION	1
#define LAPI_VERSION_HEADER	"Meshd-Api-Version"
#define LAPI_DAEMON_HEADER	"Meshd-Version"
#define LAPI_DEFAULT_SOCKET	"/run/meshd/meshd.sock"
#define LAPI_PREFIX		"/localapi/v0/"

#define LAPI_MAX_HEADERS	(16 * 1024)
#define LAPI_MAX_BODY		(1024 * 1024)
#define LAPI_MAX_CONNS		64
#define LAPI_MAX_PENDING	32
#define LAPI_IO_TIMEOUT_SEC	10
/* How long the daemon waits for a pong (§D) or a netcheck report (§F). */
#define LAPI_PING_MAX_WAIT_MS		30000
#define LAPI_NETCHECK_MAX_WAIT_MS	30000
/* tailscale's magicsock.MaxDiscoPingSize: the largest WireGuard payload
 * (65535 - 32) less IPv4 and UDP headers. */
#define LAPI_MAX_DISCO_PING_SIZE	(65535 - 32 - 20 - 8)
/* What the client accepts back: a Status of ~10k peers is a few MB. */
#define LAPI_CLIENT_MAX_BODY	(64 * 1024 * 1024)

#define LAPI_CONTENT_JSON	"application/json"
#define LAPI_CONTENT_NDJSON	"application/x-ndjson"
#define LAPI_CONTENT_METRICS	"text/plain; version=0.0.4; charset=utf-8"

#ifndef __must_check
#define __must_check __attribute__((warn_unused_result))
#endif

struct event_base;

/* ===================================================================== */
/* 1. Server                                                              */
/* ===================================================================== */

enum lapi_method {
	LAPI_GET = 1U << 0,
	LAPI_HEAD = 1U << 1,
	LAPI_POST = 1U << 2,
	LAPI_PUT = 1U << 3,
	LAPI_PATCH = 1U << 4,
	LAPI_DELETE = 1U << 5,
};

struct lapi_query;	/* opaque: the parsed query string */

/*
 * One request, valid only during the handler call: copy what a deferred
 * reply needs.  body is NUL-terminated ("" when there is none; GET bodies
 * are ignored) and wiped when the call returns, since an up request carries
 * an auth key.
 */
struct lapi_request {
	enum lapi_method method;
	const char *path;		/* e.g. "/localapi/v0/status" */
	const char *body;
	size_t body_len;
	uid_t uid;			/* peer credentials; (uid_t)-1 unknown */
	pid_t pid;
	bool can_write;			/* uid may call write routes */
	const struct lapi_query *query;
};

/* The first value of query parameter key, decoded, or NULL. */
const char *lapi_request_query(const struct lapi_request *req, const char *key);

/*
 * A reply to be finished exactly once, by lapi_reply_send(),
 * lapi_reply_json(), lapi_reply_error(), lapi_reply_no_content() or
 * lapi_reply_stream_end(); the handler may finish it before it returns or
 * keep it and finish it later from the loop.
 *
 * A handler that returns without finishing must first call
 * lapi_reply_set_cancel(): if the client goes away (closes its socket, a
 * write fails or times out) or the server is freed before the reply is
 * finished, the module calls fn(arg, reply) once, then finishes the reply
 * itself; from that call on the handler must forget the pointer.  (A
 * deferred reply without a cancel callback is answered 500 at once and
 * logged: nobody could otherwise tell the daemon its waiter is gone.)
 */
struct lapi_reply;
typedef void lapi_cancel_fn(void *arg, struct lapi_reply *reply);

void lapi_reply_set_cancel(struct lapi_reply *r, lapi_cancel_fn *fn, void *arg);
void lapi_reply_send(struct lapi_reply *r, int status, const char *content_type,
    const void *body, size_t len);
void lapi_reply_json(struct lapi_reply *r, int status, const char *json);
void lapi_reply_error(struct lapi_reply *r, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void lapi_reply_no_content(struct lapi_reply *r);
/*
 * Streams: a 200 with chunked transfer encoding, one write per chunk (for
 * NDJSON: one JSON object and "\n" per write).  A write before any start
 * starts an NDJSON stream.  Writes return -EPIPE once the client is gone
 * (the cancel callback follows from the loop, so the result may be
 * ignored), 0 otherwise.  Ending a reply that never started streaming
 * answers 204.
 */
int lapi_reply_stream_start(struct lapi_reply *r, const char *content_type);
int lapi_reply_stream_write(struct lapi_reply *r, const void *data, size_t len);
void lapi_reply_stream_end(struct lapi_reply *r);

/*
 * The daemon's handlers; any may be NULL (501).  ctx is the config's ctx.
 * A handler answers (or keeps) reply; it never sees libevent or json-c.
 */
typedef void lapi_handler_fn(void *ctx, const struct lapi_request *req,
    struct lapi_reply *reply);

struct lapi_handlers {
	lapi_handler_fn *status;
	lapi_handler_fn *prefs_get;
	lapi_handler_fn *prefs_patch;
	lapi_handler_fn *up;
	lapi_handler_fn *down;
	lapi_handler_fn *login_interactive;
	lapi_handler_fn *logout;
	lapi_handler_fn *whois;
	lapi_handler_fn *ping;
	lapi_handler_fn *netcheck;
	lapi_handler_fn *dns_status;
	lapi_handler_fn *metrics;
	lapi_handler_fn *watch_ipn_bus;
};

/* The peer's credentials for a connected socket: 0 or -errno. */
typedef int lapi_cred_fn(int fd, uid_t *uid, pid_t *pid);

struct lapi_server_config {
	const char *socket_path;		/* NULL: LAPI_DEFAULT_SOCKET */
	const struct lapi_handlers *handlers;	/* copied */
	void *ctx;
	bool have_operator;			/* operator_uid may write too */
	uid_t operator_uid;
	unsigned io_timeout_sec;		/* 0: LAPI_IO_TIMEOUT_SEC */
	lapi_cred_fn *get_cred;			/* NULL: SO_PEERCRED (a test seam) */
};

struct lapi_server;

struct lapi_server_stats {
	uint64_t requests;		/* dispatched to a route */
	uint64_t refused;		/* 4xx/5xx decided by this module */
	unsigned connections;		/* open now */
	unsigned pending;		/* replies handlers still hold */
};

/*
 * Creates the socket and serves it on base.  Also sets SIGPIPE to SIG_IGN
 * if it is SIG_DFL: a client closing early must never kill the daemon.
 * 0 or -errno; *cause (caller frees) says what failed.
 */
int lapi_server_new(struct event_base *base, const struct lapi_server_config *cfg,
    struct lapi_server **out, char **cause) __must_check;
/*
 * Cancels every unfinished reply (cancel callbacks run), closes every
 * connection and removes the socket file if it is still the one we made.
 * NULL-safe.  libevent finalises the connections' buffers on base's next
 * pass or when base is freed, so free the server before the base.
 */
void lapi_server_free(struct lapi_server *srv);
void lapi_server_get_stats(const struct lapi_server *srv, struct lapi_server_stats *st);

/* ===================================================================== */
/* 2. Client                                                              */
/* ===================================================================== */

/*
 * One request over the socket (libcurl, which speaks HTTP over a unix
 * socket; this runs in meshctl and in tests, never on the daemon's loop).
 *
 * If on_line is set, a 2xx answer's body is delivered line by line as it
 * arrives (without the "\n"; empty lines skipped) and not kept; returning
 * non-zero from on_line ends the call with -ECANCELED.  Otherwise the body
 * is kept in resp (up to LAPI_CLIENT_MAX_BODY).  Error bodies are always
 * kept.
 *
 * Returns 0 when an HTTP answer arrived (whatever its status), else:
 *   -ECONNREFUSED  meshd is not there (cause: "failed to connect to meshd
 *                  at PATH: …: is meshd running?")
 *   -ETIMEDOUT     timeout_ms passed
 *   -EPROTO        not an HTTP answer from a meshd of our API version
 *   -ECANCELED     on_line stopped it
 *   -EFBIG, -ENOMEM, -EIO
 * *cause (caller frees) is set on every error.
 */
typedef int lapi_line_fn(void *arg, const char *line, size_t len);

struct lapi_call {
	const char *method;		/* "GET", "POST", … */
	const char *path;		/* with the query, escaped */
	const char *body;		/* NULL: none */
	size_t body_len;
	long timeout_ms;		/* whole call; 0: no limit */
	long connect_timeout_ms;	/* 0: 5000 */
	bool no_version;		/* omit Meshd-Api-Version (tests only) */
	lapi_line_fn *on_line;
	void *arg;
};

struct lapi_response {
	long status;
	char *body;			/* NUL-terminated, malloc'd; may be NULL */
	size_t body_len;
	int api_version;		/* Meshd-Api-Version; 0 absent */
	char daemon_version[64];	/* Meshd-Version; "" absent */
	char content_type[128];
};

int lapi_client_call(const char *socket_path, const struct lapi_call *call,
    struct lapi_response *resp, char **cause) __must_check;
void lapi_response_clear(struct lapi_response *resp);
/* The "error" member of an error body, else a status line; caller frees. */
char *lapi_response_error(const struct lapi_response *resp);
/* s escaped for a query value; caller frees; NULL on OOM. */
char *lapi_query_escape(const char *s);

/* ===================================================================== */
/* 3. The JSON contract                                                   */
/* ===================================================================== */

/*
 * Field names are tailscale's (ipn/ipnstate, ipn.Prefs, ipn.Notify,
 * tailcfg), so `meshctl status --json` answers the jq that headscale's
 * harness and users run against `tailscale status --json`.  Readers ignore
 * unknown members; a missing member is its zero value.  Times are RFC 3339
 * in UTC ("2026-01-02T03:04:05.123Z"); Go's zero time
 * "0001-01-01T00:00:00Z" means "never".  Addresses are text ("100.64.0.1",
 * "fd7a:115c:a1e0::1"), prefixes "100.64.0.1/32", endpoints "ip:port"
 * ("[v6]:port").  Encoders below produce exactly these shapes from C
 * structs (the daemon need not touch JSON); decoders turn request bodies
 * into C structs.  Encoders return a malloc'd NUL-terminated string the
 * caller frees, or NULL when out of memory.
 *
 * §A Status (GET status), ipnstate.Status:
 *   {
 *     "Version": "0.1.0",              daemon version
 *     "TUN": true,
 *     "BackendState": "Running",       NoState | NeedsLogin |
 *                                      NeedsMachineAuth | Stopped |
 *                                      Starting | Running
 *     "HaveNodeKey": true,             omitted when false
 *     "AuthURL": "",                   pending interactive login URL
 *     "TailscaleIPs": ["100.64.0.1", "fd7a:115c:a1e0::1"],
 *     "Self": PeerStatus | null,
 *     "ExitNodeStatus": {"ID": "7", "Online": true,
 *                        "TailscaleIPs": ["100.64.0.7/32", …]},  omitted
 *                                      when no exit node is in use
 *     "Health": ["…"],                 human warnings, [] when healthy
 *     "MagicDNSSuffix": "ts.test",
 *     "CurrentTailnet": {"Name": "…", "MagicDNSSuffix": "ts.test",
 *                        "MagicDNSEnabled": true} | null,
 *     "CertDomains": [],
 *     "Peer": {"nodekey:<64 hex>": PeerStatus, …},   absent with peers=false
 *     "User": {"<id>": {"ID": 1, "LoginName": "user1@test.no",
 *                       "DisplayName": "user1", "ProfilePicURL": ""}, …}
 *   }
 *   PeerStatus:
 *   { "ID": "1" (stable node ID: headscale's numeric ID, as a string),
 *     "NodeID": 1, "PublicKey": "nodekey:<64 hex>",
 *     "HostName": "agent1", "DNSName": "agent1.ts.test." (FQDN, final dot),
 *     "OS": "linux", "UserID": 1,
 *     "TailscaleIPs": ["100.64.0.1", …],
 *     "AllowedIPs": ["100.64.0.1/32", …]      omitted when empty,
 *     "Tags": ["tag:x"]                        omitted when empty,
 *     "PrimaryRoutes": ["10.88.0.0/24"]        omitted when empty,
 *     "Addrs": ["10.0.2.2:41641", …] (the peer's endpoints),
 *     "CurAddr": "10.0.2.2:41641" (direct path in use, else ""),
 *     "Relay": "headscale" (home DERP region code, "" unknown),
 *     "PeerRelay": "",
 *     "RxBytes": 0, "TxBytes": 0,
 *     "Created", "LastWrite", "LastSeen", "LastHandshake": times,
 *     "Online": true (connected to control), "ExitNode": false (in use),
 *     "ExitNodeOption": false (offers an approved exit route),
 *     "Active": false (traffic within the last few minutes),
 *     "InNetworkMap": true, "InMagicSock": true, "InEngine": true,
 *     "Expired": true                           omitted when false,
 *     "KeyExpiry": time                         omitted when none }
 *
 * §B Prefs (GET prefs; the answer to PATCH prefs), a subset of ipn.Prefs:
 *   { "ControlURL": "http://10.0.0.1:8080", "RouteAll": false
 *     (--accept-routes), "ExitNodeID": "", "ExitNodeIP": "",
 *     "ExitNodeAllowLANAccess": false, "CorpDNS": true (--accept-dns),
 *     "RunSSH": false, "WantRunning": true, "LoggedOut": false,
 *     "ShieldsUp": false, "AdvertiseTags": [], "Hostname": "",
 *     "AdvertiseRoutes": ["10.77.0.0/24", "0.0.0.0/0", "::/0"]
 *     (--advertise-exit-node is the two default routes, as tailscale),
 *     "NoSNAT": false (!--snat-subnet-routes),
 *     "NetfilterMode": 2 (0 off, 1 nodivert, 2 on) }
 *   MaskedPrefs (PATCH prefs; UpRequest.Prefs): the same members, each
 *   counted only when "<Member>Set": true accompanies it, e.g.
 *   {"RouteAll": true, "RouteAllSet": true}.  meshctl sends a member's
 *   Set only for flags the user gave; `set --advertise-exit-node` alone
 *   sends AdvertiseRoutes merged with the current prefs (as tailscale).
 *
 * §C Up (POST up): UpRequest
 *   { "AuthKey": "tskey-…" ("" none; meshctl has read file:PATH),
 *     "ForceReauth": false, "Reset": false (unmentioned prefs go back to
 *     their defaults; else they keep their current values),
 *     "Timeout": 0 (seconds the user will wait; 0 forever; the daemon may
 *     use it to give up early), "Prefs": MaskedPrefs }
 *   The daemon validates at once and answers 4xx {"error": …} when the
 *   request cannot proceed ("can't change --login-server without
 *   --force-reauth").  Otherwise it answers a 200 NDJSON stream of Notify
 *   lines (ipn.Notify names), written as things happen, and ends the
 *   stream after the final one:
 *     {"BrowseToURL": "http://…/register/<id>"}   login needed; meshctl
 *                                    prints it at once and keeps waiting
 *     {"State": "Starting"} …        progress, informational
 *     {"State": "NeedsMachineAuth", "BrowseToURL": <admin URL or absent>}
 *                                    waiting for approval; keep waiting
 *     {"State": "Running"}           final: success
 *     {"ErrMessage": "authkey expired"}  final: failure (control's words)
 *   watch-ipn-bus streams the same Notify lines for as long as the client
 *   stays (mask bits as tailscale's: 2 InitialState, 4 InitialPrefs).
 *
 * §D PingResult (POST ping?ip=100.64.0.2&type=disco|TSMP|ICMP|peerapi
 *   &size=N), ipnstate.PingResult; one ping per request:
 *   { "IP": "100.64.0.2", "NodeIP": "100.64.0.2", "NodeName": "peer1"
 *     (first label of the DNS name, else the hostname), "Err": "" (e.g.
 *     "peer's node key has expired"), "LatencySeconds": 0.0012,
 *     "Endpoint": "10.0.2.2:41641" (direct path, else ""),
 *     "PeerRelay": "", "DERPRegionID": 999, "DERPRegionCode": "headscale"
 *     (set when the pong came through DERP), "PeerAPIPort": 0,
 *     "PeerAPIURL": "", "IsLocalIP": false (Err says
 *     "<ip> is local Tailscale IP") }
 *   As tailscaled: 400 for a missing or bad ip ("missing 'ip' parameter",
 *   "invalid IP"), type or size ("'size' parameter is only supported with
 *   disco pings", "maximum value for 'size' is 65475").  The answers that
 *   are a PingResult with Err set: "no matching peer" (no node has the IP,
 *   as an address or inside its AllowedIPs), "<ip> is local Tailscale IP"
 *   (IsLocalIP), "peer's node key has expired", "unknown peer" (the data
 *   plane does not know it yet), "local meshd stopped" (no data plane),
 *   "ping type <T> is not supported" (meshd sends disco pings only: TSMP,
 *   ICMP and peerapi are refused; an accepted size is not padded to
 *   either).  LatencySeconds is written as Go writes a float64 ("0.0125",
 *   "0", "1.5e-7").  503 when too many pings wait.  Only the first pong
 *   counts.  tailscaled waits for a pong until the client gives
 *   up; meshd waits at most LAPI_PING_MAX_WAIT_MS and then answers 504
 *   {"error": …}, which meshctl reports like its own --timeout ("ping
 *   "<ip>" timed out").  A client that goes away cancels the ping.
 *
 * §E WhoIs (GET whois?addr=), apitype.WhoIsResponse:
 *   { "Node": {"ID": 3, "StableID": "3", "Name": "peer1.ts.test.",
 *              "Addresses": ["100.64.0.3/32", …], "AllowedIPs": […],
 *              "Tags": […], "Hostinfo": {"Hostname": "peer1", "OS": "linux"}},
 *     "UserProfile": {"ID": 2, "LoginName": "…", "DisplayName": "…"},
 *     "CapMap": {"<cap>": [], …} }     404 {"error": …} when unknown
 *
 * §F Netcheck (GET netcheck; the daemon runs a full report from its
 *   WireGuard socket, where tailscale's CLI runs one itself):
 *   { "Report": netcheck.Report, members in Go's order, so that meshctl
 *       netcheck --format=json prints what tailscale's prints:
 *       {"Now": time the report started, "UDP": true, "IPv6": false,
 *       "IPv4": true, "IPv6CanSend": false, "IPv4CanSend": true,
 *       "OSHasIPv6": true, "ICMPv4": false,
 *       "MappingVariesByDestIP": false | null (unknown),
 *       "UPnP": null, "PMP": null, "PCP": null (not checked: meshd does no
 *       port mapping), "PreferredDERP": 999,
 *       "RegionLatency": {"999": <ns>}, best of v4 and v6, regions that
 *       answered, keys in Go's (string) order; "RegionV4Latency": {…},
 *       "RegionV6Latency": {…} likewise per family,
 *       "GlobalV4Counters": null, "GlobalV6Counters": null (not kept),
 *       "GlobalV4": "ip:port" | "", "GlobalV6": "[ip6]:port" | "",
 *       "CaptivePortal": null},
 *     "DERPMap": {"Regions": {"999": {"RegionID": 999,
 *       "RegionCode": "headscale", "RegionName": "Headscale Embedded DERP"}}}
 *       (every region of the DERP map the report measured, answered or not:
 *       the text form lists them all) }
 *   503 {"error": …} while the node is not started (no data plane), 504
 *   after LAPI_NETCHECK_MAX_WAIT_MS without a report.
 *
 * §G DNSStatus (GET dns-status), tailscale's tsdnsjsonv0.StatusResponse:
 *   { "TailscaleDNS": true (CorpDNS), "CurrentTailnet": {"MagicDNSEnabled":
 *     true, "MagicDNSSuffix": "ts.test", "SelfDNSName": "agent1.ts.test."}
 *     (omitted when not logged in), "Resolvers": [{"Addr": "10.0.0.53"}],
 *     "SplitDNSRoutes": {"corp.test": [{"Addr": "10.0.0.54"}]},
 *     "FallbackResolvers": [], "SearchDomains": ["ts.test"],
 *     "Nameservers": [], "CertDomains": [], "ExtraRecords": [{"Name":
 *     "grafana.ts.test", "Type": "A", "Value": "100.100.50.50"}],
 *     "ExitNodeFilteredSet": [], "SystemDNS": {"Nameservers": […],
 *     "SearchDomains": […], "MatchDomains": […]} (omitted if unknown),
 *     "SystemDNSError": "" }
 */

/* A time; {0, 0} is "never" (encoded as Go's zero time). */
struct lapi_time {
	int64_t sec;		/* Unix seconds */
	int32_t nsec;
};

/* String lists as the encoders take them. */
struct lapi_strv {
	const char *const *v;
	size_t n;
};

struct lapi_peer_status {
	const char *id;
	int64_t node_id;
	const char *public_key;		/* "nodekey:<hex>"; the Peer map key */
	const char *host_name;
	const char *dns_name;
	const char *os;
	int64_t user_id;
	struct lapi_strv tailscale_ips;
	struct lapi_strv allowed_ips;
	struct lapi_strv tags;
	struct lapi_strv primary_routes;
	struct lapi_strv addrs;
	const char *cur_addr;
	const char *relay;
	const char *peer_relay;
	int64_t rx_bytes, tx_bytes;
	struct lapi_time created, last_write, last_seen, last_handshake;
	struct lapi_time key_expiry;	/* with has_key_expiry */
	bool has_key_expiry;
	bool online, exit_node, exit_node_option, active, expired;
	bool in_network_map, in_magic_sock, in_engine;
};

struct lapi_user_profile {
	int64_t id;
	const char *login_name;
	const char *display_name;
	const char *profile_pic_url;
};

struct lapi_status {
	const char *version;			/* NULL: MESHD_VERSION */
	bool tun;
	const char *backend_state;
	bool have_node_key;
	const char *auth_url;
	struct lapi_strv tailscale_ips;
	const struct lapi_peer_status *self;	/* NULL: null */
	bool has_exit_node_status;
	const char *exit_node_id;
	bool exit_node_online;
	struct lapi_strv exit_node_ips;		/* prefixes */
	struct lapi_strv health;
	const char *magic_dns_suffix;
	bool has_tailnet;			/* CurrentTailnet */
	const char *tailnet_name;
	bool magic_dns_enabled;
	struct lapi_strv cert_domains;
	const struct lapi_peer_status *peers;
	size_t n_peers;
	bool omit_peers;			/* ?peers=false */
	const struct lapi_user_profile *users;
	size_t n_users;
};

char *lapi_status_json(const struct lapi_status *st);

/* §B.  Strings and lists are malloc'd and owned by the struct. */
struct lapi_prefs {
	char *control_url;
	bool route_all;
	char *exit_node_id;
	char *exit_node_ip;
	bool exit_node_allow_lan_access;
	bool corp_dns;
	bool run_ssh;
	bool want_running;
	bool logged_out;
	bool shields_up;
	char **advertise_tags;
	size_t n_advertise_tags;
	char *hostname;
	char **advertise_routes;
	size_t n_advertise_routes;
	bool no_snat;
	int netfilter_mode;
};

#define LAPI_NETFILTER_OFF	0
#define LAPI_NETFILTER_NODIVERT	1
#define LAPI_NETFILTER_ON	2

enum lapi_pref_bit {
	LAPI_PREF_CONTROL_URL = 1U << 0,
	LAPI_PREF_ROUTE_ALL = 1U << 1,
	LAPI_PREF_EXIT_NODE_ID = 1U << 2,
	LAPI_PREF_EXIT_NODE_IP = 1U << 3,
	LAPI_PREF_EXIT_NODE_ALLOW_LAN = 1U << 4,
	LAPI_PREF_CORP_DNS = 1U << 5,
	LAPI_PREF_RUN_SSH = 1U << 6,
	LAPI_PREF_WANT_RUNNING = 1U << 7,
	LAPI_PREF_LOGGED_OUT = 1U << 8,
	LAPI_PREF_SHIELDS_UP = 1U << 9,
	LAPI_PREF_ADVERTISE_TAGS = 1U << 10,
	LAPI_PREF_HOSTNAME = 1U << 11,
	LAPI_PREF_ADVERTISE_ROUTES = 1U << 12,
	LAPI_PREF_NO_SNAT = 1U << 13,
	LAPI_PREF_NETFILTER_MODE = 1U << 14,
};

struct lapi_masked_prefs {
	struct lapi_prefs prefs;
	uint32_t set;			/* enum lapi_pref_bit */
};

/* tailscale's defaults for a fresh node (CorpDNS, WantRunning, on, …). */
void lapi_prefs_init_default(struct lapi_prefs *p);
void lapi_prefs_clear(struct lapi_prefs *p);	/* frees members; zeroes */
/* Copies every member of src whose bit is in mask into dst; 0 or -ENOMEM. */
int lapi_prefs_apply(struct lapi_prefs *dst, const struct lapi_prefs *src,
    uint32_t mask) __must_check;

char *lapi_prefs_json(const struct lapi_prefs *p);
char *lapi_masked_prefs_json(const struct lapi_masked_prefs *mp);
/*
 * Decoders of untrusted bodies: 0, or -EINVAL with *cause (caller frees)
 * naming the member at fault, never quoting a value.  On error out is
 * left cleared.
 */
int lapi_prefs_parse(const char *body, size_t len, struct lapi_prefs *out,
    char **cause) __must_check;
int lapi_masked_prefs_parse(const char *body, size_t len,
    struct lapi_masked_prefs *out, char **cause) __must_check;

/* §C */
struct lapi_up_request {
	char *auth_key;			/* NULL or non-empty; wiped by clear */
	bool force_reauth;
	bool reset;
	double timeout_sec;
	struct lapi_masked_prefs prefs;
};

char *lapi_up_request_json(const struct lapi_up_request *up);
int lapi_up_request_parse(const char *body, size_t len,
    struct lapi_up_request *out, char **cause) __must_check;
void lapi_up_request_clear(struct lapi_up_request *up);

/* One Notify line, "\n"-terminated, for lapi_reply_stream_write(). */
struct lapi_notify {
	const char *state;		/* NULL: absent */
	const char *browse_to_url;
	const char *err_message;
};

char *lapi_notify_json(const struct lapi_notify *n);

/* §D */
struct lapi_ping_result {
	const char *ip;
	const char *node_ip;
	const char *node_name;
	const char *err;
	double latency_seconds;
	const char *endpoint;
	const char *peer_relay;
	int derp_region_id;
	const char *derp_region_code;
	unsigned peer_api_port;
	const char *peer_api_url;
	bool is_local_ip;
};

char *lapi_ping_result_json(const struct lapi_ping_result *pr);

/* §E */
struct lapi_whois {
	int64_t node_id;
	const char *stable_id;
	const char *name;
	struct lapi_strv addresses;
	struct lapi_strv allowed_ips;
	struct lapi_strv tags;
	const char *host_name;
	const char *os;
	struct lapi_user_profile user;
	struct lapi_strv caps;		/* CapMap keys (values empty) */
};

char *lapi_whois_json(const struct lapi_whois *w);

/* §F */
struct lapi_derp_region {
	int id;
	const char *code;
	const char *name;
	int64_t latency_ns;		/* < 0: no answer */
	int64_t v4_ns, v6_ns;		/* per family; <= 0: no answer */
};

enum lapi_tristate { LAPI_UNKNOWN = -1, LAPI_NO = 0, LAPI_YES = 1 };

struct lapi_netcheck {
	struct lapi_time now;
	bool udp, ipv4, ipv6, ipv4_can_send, ipv6_can_send, os_has_ipv6, icmpv4;
	enum lapi_tristate mapping_varies_by_dest_ip;
	enum lapi_tristate upnp, pmp, pcp;
	const char *global_v4;		/* "ip:port" or "" */
	const char *global_v6;
	int preferred_derp;
	const struct lapi_derp_region *regions;
	size_t n_regions;
};

char *lapi_netcheck_json(const struct lapi_netcheck *nc);

/* §G */
struct lapi_dns_route {
	const char *suffix;
	struct lapi_strv resolvers;
};

struct lapi_dns_record {
	const char *name;
	const char *type;		/* "" A/AAAA by value */
	const char *value;
};

struct lapi_dns_status {
	bool tailscale_dns;
	bool has_tailnet;
	bool magic_dns_enabled;
	const char *magic_dns_suffix;
	const char *self_dns_name;
	struct lapi_strv resolvers;
	const struct lapi_dns_route *routes;
	size_t n_routes;
	struct lapi_strv fallback_resolvers;
	struct lapi_strv search_domains;
	struct lapi_strv nameservers;
	struct lapi_strv cert_domains;
	const struct lapi_dns_record *extra_records;
	size_t n_extra_records;
	struct lapi_strv exit_node_filtered_set;
	bool has_system;
	struct lapi_strv sys_nameservers;
	struct lapi_strv sys_search_domains;
	struct lapi_strv sys_match_domains;
	const char *system_error;
};

char *lapi_dns_status_json(const struct lapi_dns_status *ds);

/* {"error": msg}; used by lapi_reply_error(). */
char *lapi_error_json(const char *msg);

/* RFC 3339 in UTC as Go writes it (nanoseconds, trailing zeros cut). */
void lapi_time_format(struct lapi_time t, char buf[static 40]);
/* The reverse; "never" for Go's zero time.  0 or -EINVAL. */
int lapi_time_parse(const char *s, struct lapi_time *t) __must_check;

#endif

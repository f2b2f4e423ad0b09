/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_AGENT_STATE_H
#define MESHD_AGENT_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/keys.h"

/*
 * state: the node's one persistent file, <statedir>/meshd.state (statedir
 * defaults to /var/lib/meshd, set by --statedir; DESIGN.md "State").
 *
 * It holds the machine key (the Noise identity towards control), the node
 * key (the WireGuard and DERP identity), the public half of the node key it
 * replaced last, the prefs `meshctl up` sets, the node's identity once
 * registered, and an opaque "last netmap" blob for a fast start.  The
 * format is JSON, version 1 (an object; members in the order written):
 *
 *   Version      1; a file with a higher version is refused, not half-read
 *   MachineKey   "privkey:<64 hex>"   required
 *   NodeKey      "privkey:<64 hex>"   required
 *   OldNodeKey   "nodekey:<64 hex>"   optional: the key the last rotation
 *                replaced, sent as RegisterRequest.OldNodeKey (Go keeps the
 *                whole private key, persist.OldPrivateNodeKey; the protocol
 *                only ever needs the public half, so that is all we keep)
 *   Prefs        object, required; every member optional, defaulting as
 *                state_prefs_default() says:
 *                LoginServer, Hostname, WantRunning, LoggedOut, AcceptRoutes,
 *                AcceptDNS, AdvertiseRoutes ["10.0.0.0/24", ...],
 *                AdvertiseExitNode, ExitNodeID, ExitNodeIP,
 *                ExitNodeAllowLANAccess, SNATSubnetRoutes
 *   Identity     object, optional (absent = not registered): NodeID,
 *                StableID, UserID, Addresses (required), LoginName,
 *                KeyExpiry (unix seconds, 0 = none)
 *   LastNetmap   base64 of the caller's blob, optional
 *
 * Unknown members are ignored.  Key text uses Tailscale's forms
 * (protocol/control.md §1) through the constant-time codecs of
 * common/keys.h; the hex of a private key never passes through json-c, so
 * no unwiped copy of it is left in json-c's heap (see state.c).
 *
 * Writing (state_save) is atomic: a temporary file ".meshd.state.tmp-*" in
 * the same directory, mode 0600, written, fsync'ed, renamed over the
 * state file, then the directory fsync'ed.  A save whose serialisation
 * equals what was last written or read writes nothing (flash wear,
 * tailscale#1732), and says so.  Temporary files left by a crash are
 * ignored by the reader and removed by the next load or save.
 *
 * Reading (state_load) treats the file as untrusted: it refuses a symbolic
 * link, anything but a regular file, a file not owned by the effective
 * user, a group- or world-writable file, and a file over STATE_FILE_MAX;
 * a file readable by others is loaded with a warning and chmod'ed to 0600.
 * Every load is all-or-nothing: on any error the in-memory state is left
 * exactly as it was.  A missing file (or directory) is not an error: the
 * node is fresh.
 *
 * Secrets.  Private keys live in one sodium_malloc'd (guarded, mlock'ed)
 * block per struct state and are wiped on free, rotation and logout; every
 * transient copy (key text, file buffers) is wiped before it is freed.
 * Error messages (the char **cause strings, which the caller frees) name
 * fields and files, never values, so they never carry key material.
 *
 * Errors are 0 or -errno: -EINVAL bad content, -EFBIG too large,
 * -ELOOP symlink, -EPERM wrong owner or mode, -EPROTONOSUPPORT newer
 * format, others from the system calls.
 */

#define STATE_FILE_NAME		"meshd.state"
#define STATE_TEMP_PREFIX	".meshd.state.tmp-"
#define STATE_FORMAT_VERSION	1
/* Caps for untrusted input; a save that would exceed them fails instead. */
#define STATE_FILE_MAX		(1024 * 1024)
#define STATE_NETMAP_MAX	(512 * 1024)	/* raw bytes; base64 in the file */
/* String sizes include the terminating NUL. */
#define STATE_URL_MAX		1024
#define STATE_HOSTNAME_MAX	256
#define STATE_NAME_MAX		256
#define STATE_ID_MAX		128
#define STATE_ROUTES_MAX	256
#define STATE_ADDRS_MAX		8
/* "ffff:...:ffff/128" plus NUL. */
#define STATE_PREFIX_STRLEN	(46 + 4)

#define STATE_DEFAULT_LOGIN_SERVER "https://controlplane.tailscale.com"

struct state;

/* An IP address; family 0 means "none". */
struct state_ip {
	uint8_t family;		/* AF_INET, AF_INET6 or 0 */
	uint8_t addr[16];	/* network order; AF_INET uses the first 4 bytes */
};

struct state_prefix {
	struct state_ip ip;
	uint8_t bits;
};

/*
 * Prefs: what `meshctl up`/`set` choose.  Plain values with fixed-size
 * members, so a caller copies them with "=", edits, and hands them to
 * state_set_prefs().  --force-reauth and --reset are actions, not prefs,
 * and are not kept.  Go names in brackets where ours differ.
 */
struct state_prefs {
	char login_server[STATE_URL_MAX];	/* "" = STATE_DEFAULT_LOGIN_SERVER [ControlURL] */
	char hostname[STATE_HOSTNAME_MAX];	/* "" = the OS hostname */
	bool want_running;			/* `up` vs `down` */
	bool logged_out;			/* after logout: do not contact control on start */
	bool accept_routes;			/* [RouteAll] */
	bool accept_dns;			/* [CorpDNS] */
	bool advertise_exit_node;		/* [0.0.0.0/0 and ::/0 in AdvertiseRoutes] */
	bool exit_node_allow_lan_access;
	bool snat_subnet_routes;		/* [!NoSNAT] */
	char exit_node_id[STATE_ID_MAX];	/* StableNodeID; "" = none */
	struct state_ip exit_node_ip;		/* until resolved to an ID; family 0 = none */
	size_t n_advertise_routes;
	struct state_prefix advertise_routes[STATE_ROUTES_MAX];	/* host bits zero */
};

/* Who control says we are, from the RegisterResponse and self Node. */
struct state_identity {
	int64_t node_id;			/* > 0 */
	char stable_id[STATE_ID_MAX];		/* non-empty */
	int64_t user_id;			/* >= 0 */
	char login_name[STATE_NAME_MAX];
	int64_t key_expiry;			/* unix seconds; 0 = no expiry */
	size_t n_addresses;
	struct state_prefix addresses[STATE_ADDRS_MAX];
};

/*
 * A fresh state: default prefs, no keys, no identity, no netmap, nothing
 * written yet.  Never returns NULL (out of memory is fatal, as for
 * xmalloc).  state_free(NULL) is a no-op; it wipes every key.
 */
struct state *state_new(void);
void state_free(struct state *st);

/*
 * Reads <dir>/meshd.state into st.  *found (may be NULL) says whether
 * there was a file; if not, st is untouched and 0 is returned.  On success
 * the loaded content counts as "last written", so saving it unchanged
 * writes nothing.  On error st is untouched and *cause is set.
 */
int state_load(struct state *st, const char *dir, bool *found, char **cause)
	__attribute__((warn_unused_result));

/*
 * The parser behind state_load, for a buffer (the fuzz target uses it):
 * same checks, same all-or-nothing rule.  It does not change what
 * state_save() considers last written.
 */
int state_parse(struct state *st, const char *buf, size_t len, char **cause)
	__attribute__((warn_unused_result));

/*
 * Writes st to <dir>/meshd.state if its serialisation differs from what
 * was last written or read; *written (may be NULL) says whether it did.
 * Creates dir (one level, mode 0700) if missing.  st must have keys
 * (state_ensure_keys).  A failed save leaves the old file in place.
 */
int state_save(struct state *st, const char *dir, bool *written, char **cause)
	__attribute__((warn_unused_result));

/*
 * The exact bytes state_save() would write.  The text contains private
 * keys: the caller releases it with state_text_free(), which wipes it.
 */
int state_serialize(const struct state *st, char **text, size_t *len, char **cause)
	__attribute__((warn_unused_result));
void state_text_free(char *text, size_t len);

/*
 * Keys.  state_ensure_keys() generates (libsodium randomness, clamped as
 * Go does) whichever of the machine and node keys is missing, and returns
 * whether it generated any.  The private-key getters return pointers into
 * the state's locked memory, or NULL if absent; they stay valid until the
 * key changes (rotation, logout, load) or state_free().  Copy them only
 * into memory you wipe.  The public-key getters return false, zeroing
 * pub, when the key is absent.
 */
bool state_ensure_keys(struct state *st);
bool state_has_keys(const struct state *st);
const uint8_t *state_machine_key(const struct state *st);
const uint8_t *state_node_key(const struct state *st);
bool state_machine_pubkey(const struct state *st, uint8_t pub[static KEY_LEN]);
bool state_node_pubkey(const struct state *st, uint8_t pub[static KEY_LEN]);
bool state_old_node_pubkey(const struct state *st, uint8_t pub[static KEY_LEN]);

/*
 * Node-key rotation (control.md §5.5; --force-reauth, NodeKeyExpired, and
 * Go's seamless renewal, capver 126).  The machine key never changes.
 *
 *   state_begin_rotation()   makes a fresh pending node key (replacing any
 *                            earlier pending one).  The current key stays
 *                            current, so WireGuard keeps working, and the
 *                            pending key is never saved: after a crash we
 *                            come back with the registered key, like Go's
 *                            in-memory tryingNewKey.
 *   state_register_pubkeys() the RegisterRequest's NodeKey and OldNodeKey:
 *                            during a rotation the pending key and the
 *                            current one; otherwise the current key and
 *                            the saved old key (zero if none).  Both
 *                            output arrays are always written.
 *   state_commit_rotation()  once control accepted the pending key (a
 *                            response with no AuthURL and no Error): it
 *                            becomes the node key, the replaced key's
 *                            public half becomes OldNodeKey.  Returns
 *                            false if no rotation was pending.
 *   state_abort_rotation()   registration refused: wipe the pending key.
 *
 * state_pending_node_key() is the pending private key, or NULL.
 */
void state_begin_rotation(struct state *st);
const uint8_t *state_pending_node_key(const struct state *st);
void state_register_pubkeys(const struct state *st, uint8_t node[static KEY_LEN],
    uint8_t old[static KEY_LEN]);
bool state_commit_rotation(struct state *st);
void state_abort_rotation(struct state *st);

/*
 * After the logout RegisterRequest (sent with the current node key, Expiry
 * in the past): forget the identity and the netmap, replace the node key
 * with a fresh one (the next login is a new registration of the same
 * machine, as in Go, whose logout drops the whole persist), clear
 * OldNodeKey and any pending rotation, and set want_running = false,
 * logged_out = true.  The machine key and the other prefs stay.
 */
void state_logout(struct state *st);

/* Prefs.  The pointer is valid until the next state_set_prefs/load/free. */
void state_prefs_default(struct state_prefs *p);
const struct state_prefs *state_prefs(const struct state *st);
/*
 * Validates and copies *p: strings NUL-terminated within their arrays,
 * valid UTF-8 without control characters (login_server and exit_node_id:
 * printable ASCII), routes well-formed with zero host bits, counts within
 * bounds.  On error (-EINVAL, *cause set) the prefs are unchanged.
 */
int state_set_prefs(struct state *st, const struct state_prefs *p, char **cause)
	__attribute__((warn_unused_result));

/* Identity: NULL when not registered.  Same validation rules as prefs. */
const struct state_identity *state_identity(const struct state *st);
int state_set_identity(struct state *st, const struct state_identity *id, char **cause)
	__attribute__((warn_unused_result));
void state_clear_identity(struct state *st);

/*
 * The last-netmap blob: opaque bytes the caller supplies and gets back,
 * never parsed here.  state_netmap() returns NULL (and *len 0) when there is
 * none; otherwise the bytes, followed by a NUL that is not counted, so a
 * text blob can be used as a string.  Valid until the next
 * state_set_netmap/load/logout/free.  state_set_netmap(st, NULL, 0) clears
 * it; more than STATE_NETMAP_MAX bytes is -EMSGSIZE.  Every change of it is
 * a change of the file: callers should not store every netmap delta.
 */
const uint8_t *state_netmap(const struct state *st, size_t *len);
int state_set_netmap(struct state *st, const void *buf, size_t len)
	__attribute__((warn_unused_result));

/*
 * Prefix text forms ("10.0.0.0/24", "fd7a:115c:a1e0::1/128"), for callers
 * turning flags into prefs.  Parsing is strict: no spaces, decimal bits
 * within the family's length, no leading zeros.  A bare address parses
 * with bits = its full length only if allow_bare.
 */
bool state_prefix_parse(struct state_prefix *p, const char *s, bool allow_bare)
	__attribute__((warn_unused_result));
void state_prefix_format(char buf[static STATE_PREFIX_STRLEN], const struct state_prefix *p);

#endif

// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sodium.h>

#include "agent/state.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/util.h"
#include "wg/crypto.h"

/*
 * Private keys.  One sodium_malloc'd block per state: guard pages, mlock,
 * and sodium_free wipes it.  The pending key of a rotation lives here too
 * but is never serialised.
 */
struct secrets {
	uint8_t machine[KEY_LEN];
	uint8_t node[KEY_LEN];
	uint8_t pending[KEY_LEN];
	bool has_machine;
	bool has_node;
	bool has_pending;
};

struct state {
	struct secrets *sec;
	uint8_t old_node_pub[KEY_LEN];
	bool has_old_node;
	struct state_prefs prefs;
	struct state_identity ident;	/* node_id == 0: not registered */
	uint8_t *netmap;		/* netmap_len bytes + NUL, or NULL */
	size_t netmap_len;
	/*
	 * BLAKE2b of the bytes last written to or read from last_dir; a save
	 * to the same directory compares against it.
	 */
	uint8_t last_hash[crypto_generichash_BYTES];
	bool have_last;
	char *last_dir;
};

static const char privkey_prefix[] = "privkey:";
static const char nodekey_prefix[] = "nodekey:";
#define PREFIX_LEN	8		/* both prefixes */
#define KEY_TEXT_LEN	(PREFIX_LEN + KEY_LEN * 2)

/* Our schema nests three deep; anything much deeper is not ours. */
#define JSON_MAX_DEPTH	8
#define JSON_FLAGS	(JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | \
			 JSON_C_TO_STRING_NOSLASHESCAPE)


/* Puts "<what>: " in front of an existing message. */
static void
prefix_cause(char **cause, const char *what)
{
	char *s;

	if (cause == NULL || *cause == NULL)
		return;
	if (asprintf(&s, "%s: %s", what, *cause) < 0)
		return;
	free(*cause);
	*cause = s;
}

static void *
must(void *p)
{
	if (p == NULL)
		fatal("out of memory");
	return p;
}

static void
gen_key(uint8_t key[static KEY_LEN])
{
	randombytes_buf(key, KEY_LEN);
	/* Go clamps at creation (types/key); X25519 would clamp anyway. */
	wg_clamp(key);
}

/* --- text validation ------------------------------------------------- */

enum text_kind {
	TEXT_UTF8,	/* names: any printable Unicode */
	TEXT_ASCII,	/* URLs and IDs */
};

/*
 * NULL if s (NUL-terminated within size bytes) is acceptable, else why
 * not.  Control characters, C0 and C1, are refused because these strings
 * end up in logs, `meshctl status` and terminals.
 */
static const char *
text_problem(const char *s, size_t size, enum text_kind kind)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strnlen(s, size), i = 0;

	if (len == size)
		return "is too long";
	while (i < len) {
		unsigned char c = p[i];
		uint32_t cp, min;
		size_t n;

		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				return "contains a control character";
			i++;
			continue;
		}
		if (kind == TEXT_ASCII)
			return "must be printable ASCII";
		if ((c & 0xe0) == 0xc0) {
			n = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return "is not valid UTF-8";
		}
		if (len - i - 1 < n)
			return "is not valid UTF-8";
		for (size_t k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return "is not valid UTF-8";
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return "is not valid UTF-8";
		if (cp < 0xa0)
			return "contains a control character";
		i += n + 1;
	}
	/* A key pasted into the wrong field would be logged and sent to control. */
	if (strncmp(s, privkey_prefix, PREFIX_LEN) == 0)
		return "looks like a private key";
	return NULL;
}

/* --- addresses and prefixes ------------------------------------------ */

static unsigned int
family_bits(uint8_t family)
{
	return family == AF_INET ? 32 : family == AF_INET6 ? 128 : 0;
}

static bool
parse_ip(struct state_ip *ip, const char *s, size_t len)
{
	char buf[INET6_ADDRSTRLEN];

	memset(ip, 0, sizeof *ip);
	if (len == 0 || len >= sizeof buf)
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (memchr(buf, ':', len) != NULL) {
		if (inet_pton(AF_INET6, buf, ip->addr) != 1)
			return false;
		ip->family = AF_INET6;
	} else {
		if (inet_pton(AF_INET, buf, ip->addr) != 1)
			return false;
		ip->family = AF_INET;
	}
	return true;
}

static void
format_ip(char buf[static INET6_ADDRSTRLEN], const struct state_ip *ip)
{
	if (inet_ntop(ip->family, ip->addr, buf, INET6_ADDRSTRLEN) == NULL)
		buf[0] = '\0';
}

bool
state_prefix_parse(struct state_prefix *p, const char *s, bool allow_bare)
{
	const char *slash = strchr(s, '/');
	size_t alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
	unsigned int bits = 0, max;
	const char *d;

	if (!parse_ip(&p->ip, s, alen))
		goto bad;
	max = family_bits(p->ip.family);
	if (slash == NULL) {
		if (!allow_bare)
			goto bad;
		p->bits = (uint8_t)max;
		return true;
	}
	/* 1-3 digits, no sign, no leading zero: one spelling per prefix. */
	d = slash + 1;
	if (d[0] == '\0' || (d[0] == '0' && d[1] != '\0') || strlen(d) > 3)
		goto bad;
	for (; *d != '\0'; d++) {
		if (*d < '0' || *d > '9')
			goto bad;
		bits = bits * 10 + (unsigned int)(*d - '0');
	}
	if (bits > max)
		goto bad;
	p->bits = (uint8_t)bits;
	return true;
bad:
	memset(p, 0, sizeof *p);
	return false;
}

void
state_prefix_format(char buf[static STATE_PREFIX_STRLEN], const struct state_prefix *p)
{
	char ip[INET6_ADDRSTRLEN];

	format_ip(ip, &p->ip);
	snprintf(buf, STATE_PREFIX_STRLEN, "%s/%u", ip, (unsigned int)p->bits);
}

static bool
host_bits_zero(const struct state_prefix *p)
{
	unsigned int n = family_bits(p->ip.family) / 8;

	for (unsigned int i = 0; i < n; i++) {
		unsigned int keep = p->bits > i * 8 ? MIN(p->bits - i * 8, 8U) : 0;
		uint8_t host = keep >= 8 ? 0 : (uint8_t)(0xffU >> keep);

		if (p->ip.addr[i] & host)
			return false;
	}
	return true;
}

/*
 * A well-formed address of a known family; the unused tail of an IPv4
 * address is zeroed so that equal values compare equal byte for byte.
 */
static bool
fix_ip(struct state_ip *ip)
{
	if (ip->family == AF_INET)
		memset(ip->addr + 4, 0, sizeof ip->addr - 4);
	return ip->family == AF_INET || ip->family == AF_INET6;
}

static bool
fix_prefix(struct state_prefix *p)
{
	return fix_ip(&p->ip) && p->bits <= family_bits(p->ip.family);
}

/* --- validation of prefs and identity, from the API or the file -------- */

static int
check_text(const char *s, size_t size, enum text_kind kind, const char *name, char **cause)
{
	const char *why = text_problem(s, size, kind);

	if (why != NULL)
		return set_cause(cause, -EINVAL, "%s %s", name, why);
	return 0;
}

static int
check_prefs(struct state_prefs *p, char **cause)
{
	int r;

	if ((r = check_text(p->login_server, sizeof p->login_server, TEXT_ASCII,
	    "Prefs.LoginServer", cause)) < 0 ||
	    (r = check_text(p->hostname, sizeof p->hostname, TEXT_UTF8,
	    "Prefs.Hostname", cause)) < 0 ||
	    (r = check_text(p->exit_node_id, sizeof p->exit_node_id, TEXT_ASCII,
	    "Prefs.ExitNodeID", cause)) < 0)
		return r;
	if (p->exit_node_ip.family == 0) {
		memset(&p->exit_node_ip, 0, sizeof p->exit_node_ip);
	} else if (!fix_ip(&p->exit_node_ip)) {
		return set_cause(cause, -EINVAL, "Prefs.ExitNodeIP has an unknown address family");
	}
	if (p->n_advertise_routes > STATE_ROUTES_MAX)
		return set_cause(cause, -EINVAL, "Prefs.AdvertiseRoutes has more than %d routes",
		    STATE_ROUTES_MAX);
	for (size_t i = 0; i < p->n_advertise_routes; i++) {
		if (!fix_prefix(&p->advertise_routes[i]))
			return set_cause(cause, -EINVAL, "Prefs.AdvertiseRoutes[%zu] is not a prefix", i);
		/* Go refuses these too ("has non-address bits set"). */
		if (!host_bits_zero(&p->advertise_routes[i]))
			return set_cause(cause, -EINVAL,
			    "Prefs.AdvertiseRoutes[%zu] has bits set past its prefix length", i);
	}
	memset(p->advertise_routes + p->n_advertise_routes, 0,
	    (STATE_ROUTES_MAX - p->n_advertise_routes) * sizeof p->advertise_routes[0]);
	return 0;
}

static int
check_identity(struct state_identity *id, char **cause)
{
	int r;

	if (id->node_id <= 0)
		return set_cause(cause, -EINVAL, "Identity.NodeID must be positive");
	if (id->user_id < 0)
		return set_cause(cause, -EINVAL, "Identity.UserID must not be negative");
	if (id->key_expiry < 0)
		return set_cause(cause, -EINVAL, "Identity.KeyExpiry must not be negative");
	if ((r = check_text(id->stable_id, sizeof id->stable_id, TEXT_ASCII,
	    "Identity.StableID", cause)) < 0 ||
	    (r = check_text(id->login_name, sizeof id->login_name, TEXT_UTF8,
	    "Identity.LoginName", cause)) < 0)
		return r;
	if (id->stable_id[0] == '\0')
		return set_cause(cause, -EINVAL, "Identity.StableID is empty");
	if (id->n_addresses > STATE_ADDRS_MAX)
		return set_cause(cause, -EINVAL, "Identity.Addresses has more than %d entries",
		    STATE_ADDRS_MAX);
	for (size_t i = 0; i < id->n_addresses; i++)
		if (!fix_prefix(&id->addresses[i]))
			return set_cause(cause, -EINVAL, "Identity.Addresses[%zu] is not a prefix", i);
	memset(id->addresses + id->n_addresses, 0,
	    (STATE_ADDRS_MAX - id->n_addresses) * sizeof id->addresses[0]);
	return 0;
}

/* --- life cycle, keys, prefs, identity, netmap ------------------------- */

struct state *
state_new(void)
{
	struct state *st;

	if (sodium_init() < 0)
		fatal("libsodium failed to initialise");
	st = xcalloc(1, sizeof *st);
	st->sec = must(sodium_malloc(sizeof *st->sec));
	/* sodium_malloc fills with 0xdb to catch use of uninitialised memory. */
	sodium_memzero(st->sec, sizeof *st->sec);
	state_prefs_default(&st->prefs);
	return st;
}

void
state_free(struct state *st)
{
	if (st == NULL)
		return;
	sodium_free(st->sec);	/* wipes */
	free(st->netmap);
	free(st->last_dir);
	free(st);
}

bool
state_ensure_keys(struct state *st)
{
	bool made = false;

	if (!st->sec->has_machine) {
		gen_key(st->sec->machine);
		st->sec->has_machine = made = true;
	}
	if (!st->sec->has_node) {
		gen_key(st->sec->node);
		st->sec->has_node = made = true;
	}
	return made;
}

bool
state_has_keys(const struct state *st)
{
	return st->sec->has_machine && st->sec->has_node;
}

const uint8_t *
state_machine_key(const struct state *st)
{
	return st->sec->has_machine ? st->sec->machine : NULL;
}

const uint8_t *
state_node_key(const struct state *st)
{
	return st->sec->has_node ? st->sec->node : NULL;
}

const uint8_t *
state_pending_node_key(const struct state *st)
{
	return st->sec->has_pending ? st->sec->pending : NULL;
}

static bool
pub_of(uint8_t pub[static KEY_LEN], const uint8_t *priv)
{
	if (priv == NULL) {
		memset(pub, 0, KEY_LEN);
		return false;
	}
	wg_pubkey(pub, priv);
	return true;
}

bool
state_machine_pubkey(const struct state *st, uint8_t pub[static KEY_LEN])
{
	return pub_of(pub, state_machine_key(st));
}

bool
state_node_pubkey(const struct state *st, uint8_t pub[static KEY_LEN])
{
	return pub_of(pub, state_node_key(st));
}

bool
state_old_node_pubkey(const struct state *st, uint8_t pub[static KEY_LEN])
{
	if (!st->has_old_node) {
		memset(pub, 0, KEY_LEN);
		return false;
	}
	memcpy(pub, st->old_node_pub, KEY_LEN);
	return true;
}

void
state_begin_rotation(struct state *st)
{
	gen_key(st->sec->pending);
	st->sec->has_pending = true;
}

void
state_register_pubkeys(const struct state *st, uint8_t node[static KEY_LEN],
    uint8_t old[static KEY_LEN])
{
	if (st->sec->has_pending) {
		pub_of(node, st->sec->pending);
		pub_of(old, state_node_key(st));
	} else {
		pub_of(node, state_node_key(st));
		state_old_node_pubkey(st, old);
	}
}

bool
state_commit_rotation(struct state *st)
{
	struct secrets *sec = st->sec;

	if (!sec->has_pending)
		return false;
	st->has_old_node = pub_of(st->old_node_pub, state_node_key(st));
	memcpy(sec->node, sec->pending, KEY_LEN);
	sec->has_node = true;
	sodium_memzero(sec->pending, KEY_LEN);
	sec->has_pending = false;
	return true;
}

void
state_abort_rotation(struct state *st)
{
	sodium_memzero(st->sec->pending, KEY_LEN);
	st->sec->has_pending = false;
}

void
state_logout(struct state *st)
{
	state_abort_rotation(st);
	gen_key(st->sec->node);
	st->sec->has_node = true;
	memset(st->old_node_pub, 0, KEY_LEN);
	st->has_old_node = false;
	state_clear_identity(st);
	free(st->netmap);
	st->netmap = NULL;
	st->netmap_len = 0;
	st->prefs.want_running = false;
	st->prefs.logged_out = true;
}

void
state_prefs_default(struct state_prefs *p)
{
	/* tailscale up's defaults on Linux (cmd/tailscale/cli/up.go). */
	memset(p, 0, sizeof *p);
	p->accept_dns = true;
	p->snat_subnet_routes = true;
}

const struct state_prefs *
state_prefs(const struct state *st)
{
	return &st->prefs;
}

int
state_set_prefs(struct state *st, const struct state_prefs *p, char **cause)
{
	struct state_prefs *copy = xmalloc(sizeof *copy);
	int r;

	if (cause != NULL)
		*cause = NULL;
	*copy = *p;
	r = check_prefs(copy, cause);
	if (r == 0)
		st->prefs = *copy;
	free(copy);
	return r;
}

const struct state_identity *
state_identity(const struct state *st)
{
	return st->ident.node_id != 0 ? &st->ident : NULL;
}

int
state_set_identity(struct state *st, const struct state_identity *id, char **cause)
{
	struct state_identity copy = *id;
	int r;

	if (cause != NULL)
		*cause = NULL;
	r = check_identity(&copy, cause);
	if (r == 0)
		st->ident = copy;
	return r;
}

void
state_clear_identity(struct state *st)
{
	memset(&st->ident, 0, sizeof st->ident);
}

const uint8_t *
state_netmap(const struct state *st, size_t *len)
{
	*len = st->netmap_len;
	return st->netmap;
}

int
state_set_netmap(struct state *st, const void *buf, size_t len)
{
	uint8_t *copy = NULL;

	if (len > STATE_NETMAP_MAX)
		return -EMSGSIZE;
	if (len > 0) {
		copy = xmalloc(len + 1);
		memcpy(copy, buf, len);
		copy[len] = '\0';
	}
	free(st->netmap);
	st->netmap = copy;
	st->netmap_len = len;
	return 0;
}

/* --- serialisation ----------------------------------------------------- */

static struct json_object *
jstr(const char *s)
{
	return must(json_object_new_string(s));
}

static struct json_object *
jbool(bool b)
{
	return must(json_object_new_boolean(b));
}

static struct json_object *
jint(int64_t v)
{
	return must(json_object_new_int64(v));
}

static void
jadd(struct json_object *o, const char *name, struct json_object *v)
{
	if (json_object_object_add(o, name, v) != 0)
		fatal("out of memory");
}

static struct json_object *
prefixes_to_json(const struct state_prefix *v, size_t n)
{
	struct json_object *a = must(json_object_new_array());
	char buf[STATE_PREFIX_STRLEN];

	for (size_t i = 0; i < n; i++) {
		state_prefix_format(buf, &v[i]);
		if (json_object_array_add(a, jstr(buf)) != 0)
			fatal("out of memory");
	}
	return a;
}

static struct json_object *
prefs_to_json(const struct state_prefs *p)
{
	struct json_object *o = must(json_object_new_object());
	char ip[INET6_ADDRSTRLEN] = "";

	if (p->exit_node_ip.family != 0)
		format_ip(ip, &p->exit_node_ip);
	jadd(o, "LoginServer", jstr(p->login_server));
	jadd(o, "Hostname", jstr(p->hostname));
	jadd(o, "WantRunning", jbool(p->want_running));
	jadd(o, "LoggedOut", jbool(p->logged_out));
	jadd(o, "AcceptRoutes", jbool(p->accept_routes));
	jadd(o, "AcceptDNS", jbool(p->accept_dns));
	jadd(o, "AdvertiseRoutes", prefixes_to_json(p->advertise_routes, p->n_advertise_routes));
	jadd(o, "AdvertiseExitNode", jbool(p->advertise_exit_node));
	jadd(o, "ExitNodeID", jstr(p->exit_node_id));
	jadd(o, "ExitNodeIP", jstr(ip));
	jadd(o, "ExitNodeAllowLANAccess", jbool(p->exit_node_allow_lan_access));
	jadd(o, "SNATSubnetRoutes", jbool(p->snat_subnet_routes));
	return o;
}

static struct json_object *
identity_to_json(const struct state_identity *id)
{
	struct json_object *o = must(json_object_new_object());

	jadd(o, "NodeID", jint(id->node_id));
	jadd(o, "StableID", jstr(id->stable_id));
	jadd(o, "UserID", jint(id->user_id));
	jadd(o, "LoginName", jstr(id->login_name));
	jadd(o, "Addresses", prefixes_to_json(id->addresses, id->n_addresses));
	jadd(o, "KeyExpiry", jint(id->key_expiry));
	return o;
}

/*
 * Appends `  "name": "privkey:<hex>",\n` without the hex touching the heap
 * anywhere but buf, which the caller wipes.
 */
static size_t
put_privkey(char *buf, const char *name, const uint8_t key[static KEY_LEN])
{
	char hex[KEY_HEX_LEN];
	size_t n = 0, l = strlen(name);

	memcpy(buf + n, "  \"", 3), n += 3;
	memcpy(buf + n, name, l), n += l;
	memcpy(buf + n, "\": \"", 4), n += 4;
	memcpy(buf + n, privkey_prefix, PREFIX_LEN), n += PREFIX_LEN;
	key_to_hex(hex, key);
	memcpy(buf + n, hex, KEY_LEN * 2), n += KEY_LEN * 2;
	sodium_memzero(hex, sizeof hex);
	memcpy(buf + n, "\",\n", 3), n += 3;
	return n;
}

/*
 * json-c builds everything but the private keys; we write the opening
 * brace, the version and the two key members ourselves and append json-c's
 * members after them.  That way key text exists only in the output
 * buffer, which is wiped when freed, and never in json-c's printbufs and
 * string objects, which are freed without wiping (and regrown by realloc).
 */
int
state_serialize(const struct state *st, char **text, size_t *len, char **cause)
{
	static const char head[] = "{\n  \"Version\": 1,\n";
	struct json_object *o;
	const char *body;
	size_t blen, cap, n;
	char *buf;

	*text = NULL;
	*len = 0;
	if (cause != NULL)
		*cause = NULL;
	if (!state_has_keys(st))
		return set_cause(cause, -EINVAL, "state has no keys to save");

	o = must(json_object_new_object());
	if (st->has_old_node) {
		char hex[KEY_HEX_LEN], t[KEY_TEXT_LEN + 1];

		key_to_hex(hex, st->old_node_pub);
		snprintf(t, sizeof t, "%s%s", nodekey_prefix, hex);
		jadd(o, "OldNodeKey", jstr(t));
	}
	jadd(o, "Prefs", prefs_to_json(&st->prefs));
	if (st->ident.node_id != 0)
		jadd(o, "Identity", identity_to_json(&st->ident));
	if (st->netmap_len > 0) {
		size_t b64len = sodium_base64_ENCODED_LEN(st->netmap_len,
		    sodium_base64_VARIANT_ORIGINAL);
		char *b64 = xmalloc(b64len);

		sodium_bin2base64(b64, b64len, st->netmap, st->netmap_len,
		    sodium_base64_VARIANT_ORIGINAL);
		jadd(o, "LastNetmap", jstr(b64));
		free(b64);
	}
	body = json_object_to_json_string_length(o, JSON_FLAGS, &blen);
	/* Always "{\n" and at least the Prefs member: splice after the brace. */
	if (body == NULL || blen < 3 || memcmp(body, "{\n", 2) != 0) {
		json_object_put(o);
		return set_cause(cause, -EINVAL, "internal error: unexpected JSON layout");
	}
	body += 2, blen -= 2;

	cap = sizeof head - 1 + 2 * (sizeof "  \"MachineKey\": \"\",\n" + KEY_TEXT_LEN) +
	    blen + 2;
	buf = xmalloc(cap);
	n = 0;
	memcpy(buf, head, sizeof head - 1), n += sizeof head - 1;
	n += put_privkey(buf + n, "MachineKey", st->sec->machine);
	n += put_privkey(buf + n, "NodeKey", st->sec->node);
	memcpy(buf + n, body, blen), n += blen;
	buf[n++] = '\n';
	buf[n] = '\0';
	json_object_put(o);

	if (n > STATE_FILE_MAX) {
		state_text_free(buf, n);
		return set_cause(cause, -EFBIG, "state would be %zu bytes, over the %d-byte limit",
		    n, STATE_FILE_MAX);
	}
	*text = buf;
	*len = n;
	return 0;
}

void
state_text_free(char *text, size_t len)
{
	if (text == NULL)
		return;
	sodium_memzero(text, len);
	free(text);
}

/* --- parsing ------------------------------------------------------------ */

/*
 * Private keys are taken out of the text before json-c sees it.  Each
 * "privkey:<64 hex>" string is decoded (constant time) into a slot in
 * locked memory and its hex replaced, in a copy of the input, by a marker:
 * 62 hex digits of per-parse randomness and the slot number.  A key member
 * must then be exactly a marker; anything else (bad hex, the wrong prefix,
 * a key spelled with \u escapes, which the scan cannot see) is refused.
 * An attacker cannot forge a marker, since it is random per parse.
 *
 * The scan looks for the quote that opens a string: a '"' preceded by an
 * even number of backslashes is not escaped, and in valid JSON an
 * unescaped quote followed by "privkey:" can only open a string.
 */
#define KEY_SLOTS 4

struct key_slots {
	uint8_t key[KEY_SLOTS + 1][KEY_LEN];	/* +1: scratch for a surplus key */
	char marker[KEY_SLOTS][KEY_LEN * 2];
	char hex[KEY_HEX_LEN];
	unsigned int n;
};

static void
slots_init(struct key_slots *ks)
{
	uint8_t rnd[KEY_LEN - 1];
	char hex[sizeof rnd * 2 + 1];

	sodium_memzero(ks, sizeof *ks);
	randombytes_buf(rnd, sizeof rnd);
	sodium_bin2hex(hex, sizeof hex, rnd, sizeof rnd);
	for (unsigned int i = 0; i < KEY_SLOTS; i++) {
		memcpy(ks->marker[i], hex, sizeof rnd * 2);
		ks->marker[i][KEY_LEN * 2 - 2] = '0';
		ks->marker[i][KEY_LEN * 2 - 1] = (char)('0' + i);
	}
}

static bool
is_alnum(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
redact_keys(char *s, size_t len, struct key_slots *ks, char **cause)
{
	static const char pat[] = "\"privkey:";
	const size_t plen = sizeof pat - 1;
	char *end = s + len, *p = s;

	while ((p = memmem(p, (size_t)(end - p), pat, plen)) != NULL) {
		char *hex = p + plen;
		size_t bs = 0;
		bool ok;

		while (p - bs > s && p[-1 - (ptrdiff_t)bs] == '\\')
			bs++;
		p = hex;
		if (bs % 2 != 0)
			continue;
		if ((size_t)(end - hex) > KEY_LEN * 2 && hex[KEY_LEN * 2] == '"') {
			memcpy(ks->hex, hex, KEY_LEN * 2);
			ks->hex[KEY_LEN * 2] = '\0';
			ok = key_from_hex(ks->key[ks->n], ks->hex);
			sodium_memzero(ks->hex, sizeof ks->hex);
			if (ok) {
				if (ks->n == KEY_SLOTS)
					return set_cause(cause, -EINVAL, "more than %d private keys",
					    KEY_SLOTS);
				memcpy(hex, ks->marker[ks->n], KEY_LEN * 2);
				ks->n++;
				p = hex + KEY_LEN * 2 + 1;
				continue;
			}
		}
		/*
		 * Not a well-formed key: blank what looks like its digits so
		 * that no part of a damaged key reaches json-c either.  The
		 * member is refused later as "not a private key".
		 */
		for (; p < end && is_alnum(*p); p++)
			*p = '-';
	}
	return 0;
}

static const char *
type_name(enum json_type t)
{
	switch (t) {
	case json_type_boolean:	return "a boolean";
	case json_type_int:	return "an integer";
	case json_type_string:	return "a string";
	case json_type_array:	return "an array";
	case json_type_object:	return "an object";
	default:		return "something else";
	}
}

/* *v = the member, or NULL if it is absent or null and not required. */
static int
member(struct json_object *o, const char *ctx, const char *name, enum json_type type,
    bool required, struct json_object **v, char **cause)
{
	if (!json_object_object_get_ex(o, name, v) || *v == NULL) {
		*v = NULL;
		if (required)
			return set_cause(cause, -EINVAL, "%s%s is missing", ctx, name);
		return 0;
	}
	if (!json_object_is_type(*v, type)) {
		*v = NULL;
		return set_cause(cause, -EINVAL, "%s%s must be %s", ctx, name, type_name(type));
	}
	return 0;
}

static int
get_bool(struct json_object *o, const char *ctx, const char *name, bool *out, char **cause)
{
	struct json_object *v;
	int r = member(o, ctx, name, json_type_boolean, false, &v, cause);

	if (r == 0 && v != NULL)
		*out = json_object_get_boolean(v);
	return r;
}

static int
get_int(struct json_object *o, const char *ctx, const char *name, bool required,
    int64_t min, int64_t *out, char **cause)
{
	struct json_object *v;
	int64_t i;
	int r = member(o, ctx, name, json_type_int, required, &v, cause);

	if (r < 0 || v == NULL)
		return r;
	/* json-c saturates: INT64_MAX also stands for anything larger. */
	i = json_object_get_int64(v);
	if (i < min || (i == INT64_MAX && json_object_get_uint64(v) != (uint64_t)INT64_MAX))
		return set_cause(cause, -EINVAL, "%s%s is out of range", ctx, name);
	*out = i;
	return 0;
}

/* Copies a string member into a fixed array; check_* validates it later. */
static int
get_text(struct json_object *o, const char *ctx, const char *name, bool required,
    char *dst, size_t size, char **cause)
{
	struct json_object *v;
	const char *s;
	size_t len;
	int r = member(o, ctx, name, json_type_string, required, &v, cause);

	if (r < 0 || v == NULL)
		return r;
	s = json_object_get_string(v);
	len = (size_t)json_object_get_string_len(v);
	if (len >= size)
		return set_cause(cause, -EINVAL, "%s%s is too long (at most %zu bytes)", ctx, name,
		    size - 1);
	if (memchr(s, '\0', len) != NULL)
		return set_cause(cause, -EINVAL, "%s%s contains a NUL character", ctx, name);
	memcpy(dst, s, len);
	dst[len] = '\0';
	return 0;
}

static int
get_prefixes(struct json_object *o, const char *ctx, const char *name, bool required,
    struct state_prefix *v, size_t max, size_t *n, char **cause)
{
	struct json_object *a;
	size_t cnt;
	int r = member(o, ctx, name, json_type_array, required, &a, cause);

	if (r < 0 || a == NULL)
		return r;
	cnt = json_object_array_length(a);
	if (cnt > max)
		return set_cause(cause, -EINVAL, "%s%s has more than %zu entries", ctx, name, max);
	for (size_t i = 0; i < cnt; i++) {
		struct json_object *e = json_object_array_get_idx(a, i);
		const char *s;

		if (!json_object_is_type(e, json_type_string))
			return set_cause(cause, -EINVAL, "%s%s[%zu] must be a string", ctx, name, i);
		s = json_object_get_string(e);
		if ((size_t)json_object_get_string_len(e) != strlen(s) ||
		    !state_prefix_parse(&v[i], s, false))
			return set_cause(cause, -EINVAL, "%s%s[%zu] is not an IP prefix", ctx, name, i);
	}
	*n = cnt;
	return 0;
}

static int
get_privkey(struct json_object *o, const char *name, const struct key_slots *ks,
    uint8_t out[static KEY_LEN], char **cause)
{
	struct json_object *v;
	const char *s;
	unsigned int i;
	int r = member(o, "", name, json_type_string, true, &v, cause);

	if (r < 0)
		return r;
	/* Never quote the value: it may be (part of) a key. */
	s = json_object_get_string(v);
	if (json_object_get_string_len(v) != KEY_TEXT_LEN ||
	    memcmp(s, privkey_prefix, PREFIX_LEN) != 0)
		goto bad;
	for (i = 0; i < ks->n; i++)
		if (memcmp(s + PREFIX_LEN, ks->marker[i], KEY_LEN * 2) == 0)
			break;
	if (i == ks->n)
		goto bad;
	memcpy(out, ks->key[i], KEY_LEN);
	if (key_is_zero(out))
		return set_cause(cause, -EINVAL, "%s is the all-zero key", name);
	return 0;
bad:
	return set_cause(cause, -EINVAL, "%s is not a private key (\"privkey:\" and 64 hex digits)",
	    name);
}

static int
get_pubkey(struct json_object *o, const char *name, uint8_t out[static KEY_LEN], bool *present,
    char **cause)
{
	struct json_object *v;
	const char *s;
	int r = member(o, "", name, json_type_string, false, &v, cause);

	*present = false;
	if (r < 0 || v == NULL)
		return r;
	s = json_object_get_string(v);
	if (json_object_get_string_len(v) != KEY_TEXT_LEN ||
	    memcmp(s, nodekey_prefix, PREFIX_LEN) != 0 ||
	    !key_from_hex(out, s + PREFIX_LEN))
		return set_cause(cause, -EINVAL, "%s is not a node key (\"nodekey:\" and 64 hex digits)",
		    name);
	if (key_is_zero(out))
		return set_cause(cause, -EINVAL, "%s is the all-zero key", name);
	*present = true;
	return 0;
}

static int
parse_prefs(struct json_object *o, struct state_prefs *p, char **cause)
{
	static const char ctx[] = "Prefs.";
	char ip[INET6_ADDRSTRLEN] = "";
	int r;

	state_prefs_default(p);
	if ((r = get_text(o, ctx, "LoginServer", false, p->login_server,
	    sizeof p->login_server, cause)) < 0 ||
	    (r = get_text(o, ctx, "Hostname", false, p->hostname, sizeof p->hostname, cause)) < 0 ||
	    (r = get_bool(o, ctx, "WantRunning", &p->want_running, cause)) < 0 ||
	    (r = get_bool(o, ctx, "LoggedOut", &p->logged_out, cause)) < 0 ||
	    (r = get_bool(o, ctx, "AcceptRoutes", &p->accept_routes, cause)) < 0 ||
	    (r = get_bool(o, ctx, "AcceptDNS", &p->accept_dns, cause)) < 0 ||
	    (r = get_prefixes(o, ctx, "AdvertiseRoutes", false, p->advertise_routes,
	    STATE_ROUTES_MAX, &p->n_advertise_routes, cause)) < 0 ||
	    (r = get_bool(o, ctx, "AdvertiseExitNode", &p->advertise_exit_node, cause)) < 0 ||
	    (r = get_text(o, ctx, "ExitNodeID", false, p->exit_node_id,
	    sizeof p->exit_node_id, cause)) < 0 ||
	    (r = get_text(o, ctx, "ExitNodeIP", false, ip, sizeof ip, cause)) < 0 ||
	    (r = get_bool(o, ctx, "ExitNodeAllowLANAccess", &p->exit_node_allow_lan_access,
	    cause)) < 0 ||
	    (r = get_bool(o, ctx, "SNATSubnetRoutes", &p->snat_subnet_routes, cause)) < 0)
		return r;
	if (ip[0] != '\0' && !parse_ip(&p->exit_node_ip, ip, strlen(ip)))
		return set_cause(cause, -EINVAL, "Prefs.ExitNodeIP is not an IP address");
	return check_prefs(p, cause);
}

static int
parse_identity(struct json_object *o, struct state_identity *id, char **cause)
{
	static const char ctx[] = "Identity.";
	int r;

	memset(id, 0, sizeof *id);
	if ((r = get_int(o, ctx, "NodeID", true, 1, &id->node_id, cause)) < 0 ||
	    (r = get_text(o, ctx, "StableID", true, id->stable_id, sizeof id->stable_id,
	    cause)) < 0 ||
	    (r = get_int(o, ctx, "UserID", true, 0, &id->user_id, cause)) < 0 ||
	    (r = get_text(o, ctx, "LoginName", false, id->login_name, sizeof id->login_name,
	    cause)) < 0 ||
	    (r = get_prefixes(o, ctx, "Addresses", true, id->addresses, STATE_ADDRS_MAX,
	    &id->n_addresses, cause)) < 0 ||
	    (r = get_int(o, ctx, "KeyExpiry", false, 0, &id->key_expiry, cause)) < 0)
		return r;
	return check_identity(id, cause);
}

static int
parse_netmap(struct json_object *o, struct state *st, char **cause)
{
	static const size_t max_b64 = sodium_base64_ENCODED_LEN(STATE_NETMAP_MAX,
	    sodium_base64_VARIANT_ORIGINAL) - 1;
	struct json_object *v;
	const char *s, *endp;
	size_t len, binlen;
	int r = member(o, "", "LastNetmap", json_type_string, false, &v, cause);

	if (r < 0 || v == NULL)
		return r;
	s = json_object_get_string(v);
	len = (size_t)json_object_get_string_len(v);
	if (len == 0)
		return 0;
	if (len > max_b64)
		return set_cause(cause, -EINVAL, "LastNetmap is over %d bytes", STATE_NETMAP_MAX);
	st->netmap = xmalloc(len / 4 * 3 + 3);
	if (sodium_base642bin(st->netmap, len / 4 * 3 + 2, s, len, NULL, &binlen, &endp,
	    sodium_base64_VARIANT_ORIGINAL) != 0 || endp != s + len ||
	    binlen > STATE_NETMAP_MAX) {
		free(st->netmap);
		st->netmap = NULL;
		return set_cause(cause, -EINVAL, "LastNetmap is not valid base64");
	}
	st->netmap[binlen] = '\0';
	st->netmap_len = binlen;
	return 0;
}

/* Fills out, a fresh state, from the text.  On error out is half filled. */
static int
parse_into(struct state *out, const char *buf, size_t len, char **cause)
{
	struct key_slots *ks = NULL;
	struct json_tokener *tok = NULL;
	struct json_object *root = NULL, *v;
	enum json_tokener_error jerr;
	char *copy = NULL;
	int64_t version = 0;
	int r;

	if (len > STATE_FILE_MAX)
		return set_cause(cause, -EFBIG, "%zu bytes, over the %d-byte limit", len,
		    STATE_FILE_MAX);
	ks = must(sodium_malloc(sizeof *ks));
	slots_init(ks);
	copy = xmalloc(len + 1);
	memcpy(copy, buf, len);
	copy[len] = '\0';
	if ((r = redact_keys(copy, len, ks, cause)) < 0)
		goto out;

	tok = must(json_tokener_new_ex(JSON_MAX_DEPTH));
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	root = json_tokener_parse_ex(tok, copy, (int)len);
	jerr = json_tokener_get_error(tok);
	if (jerr == json_tokener_continue) {
		r = set_cause(cause, -EINVAL, "truncated JSON, or a bare value instead of an object");
		goto out;
	}
	if (jerr != json_tokener_success) {
		r = set_cause(cause, -EINVAL, "bad JSON at byte %zu: %s",
		    json_tokener_get_parse_end(tok), json_tokener_error_desc(jerr));
		goto out;
	}
	if (json_tokener_get_parse_end(tok) != len) {
		r = set_cause(cause, -EINVAL, "trailing data after the JSON object at byte %zu",
		    json_tokener_get_parse_end(tok));
		goto out;
	}
	if (!json_object_is_type(root, json_type_object)) {
		r = set_cause(cause, -EINVAL, "not a JSON object");
		goto out;
	}

	if ((r = get_int(root, "", "Version", true, 1, &version, cause)) < 0)
		goto out;
	if (version > STATE_FORMAT_VERSION) {
		/* Not echoed: whatever the file holds stays out of messages. */
		r = set_cause(cause, -EPROTONOSUPPORT,
		    "the format version is newer than this meshd understands (%d)",
		    STATE_FORMAT_VERSION);
		goto out;
	}
	if ((r = get_privkey(root, "MachineKey", ks, out->sec->machine, cause)) < 0 ||
	    (r = get_privkey(root, "NodeKey", ks, out->sec->node, cause)) < 0)
		goto out;
	out->sec->has_machine = out->sec->has_node = true;
	if ((r = get_pubkey(root, "OldNodeKey", out->old_node_pub, &out->has_old_node,
	    cause)) < 0)
		goto out;
	if ((r = member(root, "", "Prefs", json_type_object, true, &v, cause)) < 0 ||
	    (r = parse_prefs(v, &out->prefs, cause)) < 0)
		goto out;
	if ((r = member(root, "", "Identity", json_type_object, false, &v, cause)) < 0 ||
	    (v != NULL && (r = parse_identity(v, &out->ident, cause)) < 0))
		goto out;
	r = parse_netmap(root, out, cause);
out:
	json_object_put(root);
	if (tok != NULL)	/* json-c 0.16 does not accept NULL here */
		json_tokener_free(tok);
	if (copy != NULL) {
		/* Markers only, unless the file was damaged; wipe regardless. */
		sodium_memzero(copy, len);
		free(copy);
	}
	sodium_free(ks);
	return r;
}

/* Moves tmp's contents into st and frees what st held. */
static void
adopt(struct state *st, struct state *tmp)
{
	struct state old = *st;

	*st = *tmp;
	*tmp = old;
	state_free(tmp);
}

int
state_parse(struct state *st, const char *buf, size_t len, char **cause)
{
	struct state *tmp = state_new();
	int r;

	if (cause != NULL)
		*cause = NULL;
	r = parse_into(tmp, buf, len, cause);
	if (r < 0) {
		state_free(tmp);
		return r;
	}
	memcpy(tmp->last_hash, st->last_hash, sizeof tmp->last_hash);
	tmp->have_last = st->have_last;
	tmp->last_dir = st->last_dir;
	st->last_dir = NULL;
	adopt(st, tmp);
	return 0;
}

/* --- files ------------------------------------------------------------ */

/*
 * Removes temporary files a crash left behind: they may hold keys, and a
 * reader never looks at them.  Best effort.
 */
static void
clean_temps(int dfd, const char *dir)
{
	struct dirent *de;
	DIR *d;
	int fd;

	fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, STATE_TEMP_PREFIX, sizeof STATE_TEMP_PREFIX - 1) != 0)
			continue;
		if (unlinkat(dfd, de->d_name, 0) == 0)
			log_info("removed %s/%s, left by an interrupted save", dir, de->d_name);
	}
	closedir(d);
}

static int
open_dir(const char *dir, bool create, char **cause)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT && create) {
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			return set_cause(cause, -errno, "create state directory %s: %s", dir,
			    strerror(errno));
		fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (fd < 0)
		return set_cause(cause, -errno, "state directory %s: %s", dir, strerror(errno));
	return fd;
}

static int
check_file(int fd, const char *path, struct stat *sb, char **cause)
{
	if (fstat(fd, sb) < 0)
		return set_cause(cause, -errno, "%s: %s", path, strerror(errno));
	if (!S_ISREG(sb->st_mode))
		return set_cause(cause, -EINVAL, "%s is not a regular file", path);
	/* Whoever can write the file chooses our identity: only us. */
	if (sb->st_uid != geteuid())
		return set_cause(cause, -EPERM, "%s is owned by uid %u, not by us (uid %u)", path,
		    (unsigned int)sb->st_uid, (unsigned int)geteuid());
	if (sb->st_mode & (S_IWGRP | S_IWOTH))
		return set_cause(cause, -EPERM, "%s is group- or world-writable (mode %04o); "
		    "refusing to use it", path, (unsigned int)(sb->st_mode & 07777));
	if (sb->st_size > STATE_FILE_MAX)
		return set_cause(cause, -EFBIG, "%s is %lld bytes, over the %d-byte limit", path,
		    (long long)sb->st_size, STATE_FILE_MAX);
	if (sb->st_mode & (S_IRWXG | S_IRWXO)) {
		log_warn("%s was accessible to others (mode %04o): its private keys may have "
		    "been read; setting mode 0600", path, (unsigned int)(sb->st_mode & 07777));
		if (fchmod(fd, 0600) < 0)
			log_warn("chmod %s: %s", path, strerror(errno));
	}
	return 0;
}

static int
read_file(int fd, const char *path, size_t size, char **bufp, size_t *lenp, char **cause)
{
	/* One byte more than fstat promised tells us the file grew meanwhile. */
	size_t cap = size + 1, len = 0;
	char *buf = xmalloc(cap);
	int r = 0;

	while (len < cap) {
		ssize_t n = read(fd, buf + len, cap - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = set_cause(cause, -errno, "read %s: %s", path, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (r == 0 && len == cap)
		r = set_cause(cause, -EAGAIN, "%s changed while being read", path);
	if (r < 0) {
		sodium_memzero(buf, len);
		free(buf);
		return r;
	}
	*bufp = buf;
	*lenp = len;
	return 0;
}

static void
hash_text(uint8_t out[static crypto_generichash_BYTES], const char *text, size_t len)
{
	crypto_generichash(out, crypto_generichash_BYTES, (const unsigned char *)text, len,
	    NULL, 0);
}

int
state_load(struct state *st, const char *dir, bool *found, char **cause)
{
	struct state *tmp = NULL;
	char *path = NULL, *buf = NULL, *text = NULL;
	size_t len = 0, tlen = 0;
	struct stat sb;
	int dfd, fd = -1, r;

	if (found != NULL)
		*found = false;
	if (cause != NULL)
		*cause = NULL;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		if (errno == ENOENT)
			return 0;	/* a fresh node */
		return set_cause(cause, -errno, "state directory %s: %s", dir, strerror(errno));
	}
	if (asprintf(&path, "%s/%s", dir, STATE_FILE_NAME) < 0)
		fatal("out of memory");
	clean_temps(dfd, dir);

	/* O_NONBLOCK: a FIFO planted here must not hang us before fstat. */
	fd = openat(dfd, STATE_FILE_NAME,
	    O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			r = 0;
		else if (errno == ELOOP)
			r = set_cause(cause, -ELOOP, "%s is a symbolic link; refusing to follow it",
			    path);
		else
			r = set_cause(cause, -errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	if ((r = check_file(fd, path, &sb, cause)) < 0 ||
	    (r = read_file(fd, path, (size_t)sb.st_size, &buf, &len, cause)) < 0)
		goto out;

	tmp = state_new();
	if ((r = parse_into(tmp, buf, len, cause)) < 0) {
		prefix_cause(cause, path);
		goto out;
	}
	/*
	 * "Last written" is the canonical form of what we read, so that a
	 * file differing only in layout or unknown members is not rewritten
	 * until something really changes.
	 */
	if (state_serialize(tmp, &text, &tlen, NULL) == 0) {
		hash_text(tmp->last_hash, text, tlen);
		tmp->have_last = true;
		tmp->last_dir = xstrdup(dir);
	}
	adopt(st, tmp);
	tmp = NULL;
	if (found != NULL)
		*found = true;
out:
	state_free(tmp);
	state_text_free(text, tlen);
	if (buf != NULL) {
		sodium_memzero(buf, len);
		free(buf);
	}
	if (fd >= 0)
		close(fd);
	close(dfd);
	free(path);
	return r;
}

static int
write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int
state_save(struct state *st, const char *dir, bool *written, char **cause)
{
	uint8_t hash[crypto_generichash_BYTES], rnd[8];
	char tmpname[sizeof STATE_TEMP_PREFIX + sizeof rnd * 2];
	char *text = NULL;
	size_t len = 0;
	bool created = false;
	int dfd = -1, fd = -1, r;

	if (written != NULL)
		*written = false;
	if (cause != NULL)
		*cause = NULL;
	if ((r = state_serialize(st, &text, &len, cause)) < 0)
		return r;
	hash_text(hash, text, len);
	if (st->have_last && strcmp(st->last_dir, dir) == 0 &&
	    sodium_memcmp(hash, st->last_hash, sizeof hash) == 0)
		goto out;	/* unchanged: spare the flash */

	if ((dfd = r = open_dir(dir, true, cause)) < 0)
		goto out;
	clean_temps(dfd, dir);
	randombytes_buf(rnd, sizeof rnd);
	memcpy(tmpname, STATE_TEMP_PREFIX, sizeof STATE_TEMP_PREFIX - 1);
	sodium_bin2hex(tmpname + sizeof STATE_TEMP_PREFIX - 1, sizeof rnd * 2 + 1, rnd,
	    sizeof rnd);

	fd = openat(dfd, tmpname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = set_cause(cause, -errno, "create %s/%s: %s", dir, tmpname, strerror(errno));
		goto out;
	}
	created = true;
	/*
	 * The umask can only take bits away, but a umask of 0777 would leave
	 * a file we cannot read back.
	 */
	if (fchmod(fd, 0600) < 0 || (r = write_all(fd, text, len)) < 0 || fsync(fd) < 0) {
		r = r < 0 ? r : -errno;
		r = set_cause(cause, r, "write %s/%s: %s", dir, tmpname, strerror(-r));
		goto out;
	}
	r = close(fd);
	fd = -1;
	if (r < 0) {
		r = set_cause(cause, -errno, "write %s/%s: %s", dir, tmpname, strerror(errno));
		goto out;
	}
	if (renameat(dfd, tmpname, dfd, STATE_FILE_NAME) < 0) {
		r = set_cause(cause, -errno, "rename %s/%s to %s: %s", dir, tmpname, STATE_FILE_NAME,
		    strerror(errno));
		goto out;
	}
	created = false;
	/*
	 * The new file is in place either way; without this the rename may not
	 * survive a power cut, which is worth a warning, not a failure.
	 */
	if (fsync(dfd) < 0)
		log_warn("fsync %s: %s", dir, strerror(errno));
	memcpy(st->last_hash, hash, sizeof hash);
	st->have_last = true;
	if (st->last_dir == NULL || strcmp(st->last_dir, dir) != 0) {
		free(st->last_dir);
		st->last_dir = xstrdup(dir);
	}
	if (written != NULL)
		*written = true;
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	if (created)
		unlinkat(dfd, tmpname, 0);
	if (dfd >= 0)
		close(dfd);
	state_text_free(text, len);
	return r;
}

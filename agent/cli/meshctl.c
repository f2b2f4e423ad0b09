// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * meshctl: the command-line client of meshd (DESIGN.md "CLI").
 *
 * `meshctl [--socket PATH] <command> [flags] [args]`, with tailscale's
 * commands, flags and outputs, so that scripts and headscale's
 * integration harness (testing/testbed.md §3) can drive meshd as they
 * drive tailscaled.  A thin client: it turns flags into local API requests
 * (agent/localapi/localapi.h) and renders the answers; every decision
 * about state belongs to the daemon.  The renderers follow
 * cmd/tailscale/cli (status.go, ping.go, ip.go, up.go, whois.go,
 * netcheck.go, dns-status.go) line for line; lines that scripts match on
 * ("Logged out.", "Tailscale is stopped.", "pong from …", "… is local
 * Tailscale IP", "To authenticate, visit:") are tailscale's words exactly.
 *
 * Flags parse as Go's flag package does (tailscale uses it): "-f" or
 * "--f", "--f=v" or "--f v", booleans only as "--f" or "--f=false", "--"
 * ends flags; unlike Go, flags may also follow positional arguments.
 *
 * Exit status: 0 success, 1 failure (the message on stderr starts with
 * "meshctl: "), 2 usage error.  `status` exits 1 unless meshd is Running
 * or Starting (as tailscale's), `status --json` exits 0 whenever meshd
 * answered.
 *
 * Tests and the fuzzer #include this file with MESHCTL_NO_MAIN defined to
 * reach the static parsers and renderers.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sodium.h>

#include "agent/localapi/localapi.h"
#include "common/version.h"

#define CLI_EXIT_OK	0
#define CLI_EXIT_FAIL	1
#define CLI_EXIT_USAGE	2

#define NS_PER_SEC	1000000000LL
#define NS_PER_MS	1000000LL

static FILE *cli_out;		/* stdout unless a test sets it */
static FILE *cli_err;		/* stderr likewise */
static const char *cli_socket = LAPI_DEFAULT_SOCKET;

static int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "meshctl: <message>" on stderr; returns CLI_EXIT_FAIL. */
static int
cli_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("meshctl: ", cli_err);
	va_start(ap, fmt);
	vfprintf(cli_err, fmt, ap);
	va_end(ap);
	fputc('\n', cli_err);
	fflush(cli_err);
	return CLI_EXIT_FAIL;
}

/* ===================================================================== */
/* Flags                                                                  */
/* ===================================================================== */

enum cli_flag_type {
	CLI_BOOL,
	CLI_STR,
	CLI_INT,
	CLI_DUR,		/* Go duration; stored as nanoseconds */
};

struct cli_flag {
	const char *name;
	const char *alias;		/* a second name, e.g. authkey/auth-key */
	enum cli_flag_type type;
	void *val;			/* bool *, const char **, long *, int64_t * */
	bool given;
};

/* strconv.ParseBool */
static int
cli_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "1", "t", "T", "TRUE", "true", "True" };
	static const char *const no[] = { "0", "f", "F", "FALSE", "false", "False" };

	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		if (strcmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

/*
 * time.ParseDuration: "[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+" with units ns, us
 * (µs), ms, s, m, h, or a bare "0".
 */
static int
cli_parse_duration(const char *s, int64_t *out)
{
	static const struct {
		const char *unit;
		double ns;
	} units[] = {
		{ "ns", 1 }, { "us", 1e3 }, { "\xc2\xb5s", 1e3 }, { "\xce\xbcs", 1e3 },
		{ "ms", 1e6 }, { "s", 1e9 }, { "m", 60e9 }, { "h", 3600e9 },
	};
	double total = 0;
	bool neg = false;

	if (*s == '-' || *s == '+')
		neg = *s++ == '-';
	if (strcmp(s, "0") == 0) {
		*out = 0;
		return 0;
	}
	if (*s == '\0')
		return -EINVAL;
	while (*s != '\0') {
		const char *start = s;
		double v = 0, scale = 1;
		bool any = false;
		size_t best = 0, bestlen = 0;

		while (*s >= '0' && *s <= '9') {
			v = v * 10 + (*s++ - '0');
			any = true;
		}
		if (*s == '.') {
			s++;
			while (*s >= '0' && *s <= '9') {
				scale /= 10;
				v += (*s++ - '0') * scale;
				any = true;
			}
		}
		if (!any || s == start)
			return -EINVAL;
		for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
			size_t ul = strlen(units[i].unit);

			if (strncmp(s, units[i].unit, ul) == 0 && ul > bestlen) {
				best = i;
				bestlen = ul;
			}
		}
		if (bestlen == 0)
			return -EINVAL;
		s += bestlen;
		total += v * units[best].ns;
		if (total > 9.2e18)
			return -ERANGE;
	}
	*out = (int64_t)(neg ? -total : total);
	return 0;
}

static struct cli_flag *
flag_find(struct cli_flag *flags, size_t n, const char *name, size_t len)
{
	for (size_t i = 0; i < n; i++) {
		if (strlen(flags[i].name) == len && strncmp(flags[i].name, name, len) == 0)
			return &flags[i];
		if (flags[i].alias != NULL && strlen(flags[i].alias) == len &&
		    strncmp(flags[i].alias, name, len) == 0)
			return &flags[i];
	}
	return NULL;
}

static int
flag_set(struct cli_flag *f, const char *v, char **cause)
{
	char *end;

	switch (f->type) {
	case CLI_BOOL:
		if (cli_parse_bool(v, f->val) != 0)
			goto bad;
		break;
	case CLI_STR:
		*(const char **)f->val = v;
		break;
	case CLI_INT: {
		long n;

		errno = 0;
		n = strtol(v, &end, 0);
		if (errno != 0 || end == v || *end != '\0')
			goto bad;
		*(long *)f->val = n;
		break;
	}
	case CLI_DUR:
		if (cli_parse_duration(v, f->val) != 0)
			goto bad;
		break;
	}
	f->given = true;
	return 0;
bad:
	if (asprintf(cause, "invalid value \"%s\" for flag -%s", v, f->name) < 0)
		*cause = NULL;
	return -EINVAL;
}

/*
 * Parses argv[0..argc) against flags; positional arguments are moved, in
 * order, to the front of argv and counted in *nargs.  0 or -EINVAL with
 * *cause (caller frees).
 */
static int
cli_parse_flags(struct cli_flag *flags, size_t n, int argc, char **argv,
    int *nargs, char **cause)
{
	int np = 0;

	*cause = NULL;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *name, *eq;
		struct cli_flag *f;
		size_t len;

		if (a[0] != '-' || a[1] == '\0') {
			argv[np++] = argv[i];
			continue;
		}
		if (strcmp(a, "--") == 0) {
			for (i++; i < argc; i++)
				argv[np++] = argv[i];
			break;
		}
		name = a + 1 + (a[1] == '-');
		if (name[0] == '-' || name[0] == '=' || name[0] == '\0') {
			if (asprintf(cause, "bad flag syntax: %s", a) < 0)
				*cause = NULL;
			return -EINVAL;
		}
		eq = strchr(name, '=');
		len = eq != NULL ? (size_t)(eq - name) : strlen(name);
		f = flag_find(flags, n, name, len);
		if (f == NULL) {
			if (asprintf(cause, "flag provided but not defined: -%.*s",
			    (int)len, name) < 0)
				*cause = NULL;
			return -EINVAL;
		}
		if (eq != NULL) {
			if (flag_set(f, eq + 1, cause) != 0)
				return -EINVAL;
		} else if (f->type == CLI_BOOL) {
			*(bool *)f->val = true;
			f->given = true;
		} else if (i + 1 < argc) {
			if (flag_set(f, argv[++i], cause) != 0)
				return -EINVAL;
		} else {
			if (asprintf(cause, "flag needs an argument: -%s", f->name) < 0)
				*cause = NULL;
			return -EINVAL;
		}
	}
	*nargs = np;
	return 0;
}

static bool
flag_given(const struct cli_flag *flags, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(flags[i].name, name) == 0)
			return flags[i].given;
	return false;
}

#define NFLAGS(f) (sizeof(f) / sizeof((f)[0]))

/* ===================================================================== */
/* Formatting helpers (Go's)                                              */
/* ===================================================================== */

/* Writes v's last prec digits as a fraction (trailing zeros cut) before w. */
static int
fmt_frac(char *buf, int w, uint64_t *v, int prec)
{
	bool print = false;

	for (int i = 0; i < prec; i++) {
		unsigned digit = (unsigned)(*v % 10);

		print = print || digit != 0;
		if (print)
			buf[--w] = (char)('0' + digit);
		*v /= 10;
	}
	if (print)
		buf[--w] = '.';
	return w;
}

static int
fmt_int(char *buf, int w, uint64_t v)
{
	if (v == 0)
		buf[--w] = '0';
	while (v > 0) {
		buf[--w] = (char)('0' + v % 10);
		v /= 10;
	}
	return w;
}

/* time.Duration.String: "1h2m3.5s", "12ms", "1.5\u00b5s", "0s". */
static void
go_duration(int64_t d, char *buf, size_t len)
{
	char tmp[48];
	int w = (int)sizeof tmp;
	uint64_t u = d < 0 ? (uint64_t)(-(d + 1)) + 1 : (uint64_t)d;

	if (u == 0) {
		snprintf(buf, len, "0s");
		return;
	}
	tmp[--w] = 's';
	if (u < (uint64_t)NS_PER_SEC) {
		int prec;

		if (u < 1000) {
			prec = 0;
			tmp[--w] = 'n';
		} else if (u < 1000000) {
			prec = 3;
			w -= 2;
			memcpy(tmp + w, "\xc2\xb5", 2);
		} else {
			prec = 6;
			tmp[--w] = 'm';
		}
		w = fmt_frac(tmp, w, &u, prec);
		w = fmt_int(tmp, w, u);
	} else {
		w = fmt_frac(tmp, w, &u, 9);
		w = fmt_int(tmp, w, u % 60);
		u /= 60;
		if (u > 0) {
			tmp[--w] = 'm';
			w = fmt_int(tmp, w, u % 60);
			u /= 60;
			if (u > 0) {
				tmp[--w] = 'h';
				w = fmt_int(tmp, w, u);
			}
		}
	}
	if (d < 0)
		tmp[--w] = '-';
	snprintf(buf, len, "%.*s", (int)sizeof tmp - w, tmp + w);
}

/* time.Duration.Round(m): halves away from zero, saturating as Go does. */
static int64_t
go_round(int64_t d, int64_t m)
{
	int64_t r;

	if (m <= 0)
		return d;
	r = d % m;
	if (d < 0) {
		r = -r;
		if (r + r < m)
			return d + r;
		/* Go's d1 < d test after wrapping, without the wrap. */
		if (d >= INT64_MIN + (m - r))
			return d - (m - r);
		return INT64_MIN;
	}
	if (r + r < m)
		return d - r;
	if (d <= INT64_MAX - (m - r))
		return d + (m - r);
	return INT64_MAX;
}

/* time.Duration(secs * float64(time.Second)), saturating where Go's is undefined. */
static int64_t
go_seconds(double secs)
{
	double ns = secs * 1e9;

	if (isnan(ns))
		return 0;
	if (ns >= 9.2e18)
		return INT64_MAX;
	if (ns <= -9.2e18)
		return INT64_MIN;
	return (int64_t)ns;
}

static void
sleep_ns(int64_t ns)
{
	struct timespec ts = { (time_t)(ns / NS_PER_SEC), (long)(ns % NS_PER_SEC) };

	while (ns > 0 && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The prefix Go's log package writes by default: "2006/01/02 15:04:05 ". */
static void
go_log_prefix(FILE *f, time_t now)
{
	struct tm tm;
	char buf[32];

	localtime_r(&now, &tm);
	strftime(buf, sizeof buf, "%Y/%m/%d %H:%M:%S ", &tm);
	fputs(buf, f);
}

/* fmt's %q for the ASCII a region code or hostname can hold. */
static void
go_quote(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		switch (c) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\a': fputs("\\a", f); break;
		case '\b': fputs("\\b", f); break;
		case '\f': fputs("\\f", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		case '\v': fputs("\\v", f); break;
		default:
			if (c < 0x20 || c == 0x7f)
				fprintf(f, "\\x%02x", c);
			else
				fputc(c, f);
		}
	}
	fputc('"', f);
}

/* Runes, as text/tabwriter measures cells. */
static size_t
utf8_width(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

/*
 * A text/tabwriter table: rows of tab-terminated cells, each column as
 * wide as its widest cell plus padding (at least minwidth), padded with
 * spaces, the last cell included (tailscale's status lines end in spaces).
 */
struct cli_table {
	char **cells;
	size_t ncols, nrows, cap;
};

static void
table_add(struct cli_table *t, char **row)
{
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **c = reallocarray(t->cells, cap * t->ncols, sizeof *c);

		if (c == NULL) {
			for (size_t i = 0; i < t->ncols; i++)
				free(row[i]);
			return;
		}
		t->cells = c;
		t->cap = cap;
	}
	for (size_t i = 0; i < t->ncols; i++)
		t->cells[t->nrows * t->ncols + i] = row[i];
	t->nrows++;
}

static void
table_flush(struct cli_table *t, FILE *f, size_t minwidth, size_t padding)
{
	size_t *w = calloc(t->ncols ? t->ncols : 1, sizeof *w);

	for (size_t c = 0; w != NULL && c < t->ncols; c++) {
		w[c] = minwidth;
		for (size_t r = 0; r < t->nrows; r++) {
			size_t cw = utf8_width(t->cells[r * t->ncols + c]) + padding;

			if (cw > w[c])
				w[c] = cw;
		}
	}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];

			fputs(s, f);
			if (w != NULL)
				for (size_t i = utf8_width(s); i < w[c]; i++)
					fputc(' ', f);
			free(t->cells[r * t->ncols + c]);
		}
		fputc('\n', f);
	}
	free(w);
	free(t->cells);
	t->cells = NULL;
	t->nrows = t->cap = 0;
}

static char *cli_sprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *
cli_sprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s != NULL ? s : strdup("");
}

/*
 * Go's json.MarshalIndent(v, "", indent) layout for a json-c tree: "{}" and
 * "[]" when empty, `"key": value`, one member per line.
 */
static void
json_pretty_rec(FILE *f, json_object *o, const char *indent, int depth)
{
	enum json_type t = json_object_get_type(o);

	if (t == json_type_object) {
		bool first = true;

		if (json_object_object_length(o) == 0) {
			fputs("{}", f);
			return;
		}
		fputs("{\n", f);
		json_object_object_foreach(o, k, v) {
			json_object *ks = json_object_new_string(k);

			if (!first)
				fputs(",\n", f);
			first = false;
			for (int i = 0; i <= depth; i++)
				fputs(indent, f);
			fputs(ks != NULL ? json_object_to_json_string_ext(ks,
			    JSON_C_TO_STRING_NOSLASHESCAPE) : "\"\"", f);
			json_object_put(ks);
			fputs(": ", f);
			json_pretty_rec(f, v, indent, depth + 1);
		}
		fputc('\n', f);
		for (int i = 0; i < depth; i++)
			fputs(indent, f);
		fputc('}', f);
	} else if (t == json_type_array) {
		size_t n = json_object_array_length(o);

		if (n == 0) {
			fputs("[]", f);
			return;
		}
		fputs("[\n", f);
		for (size_t i = 0; i < n; i++) {
			for (int j = 0; j <= depth; j++)
				fputs(indent, f);
			json_pretty_rec(f, json_object_array_get_idx(o, i), indent,
			    depth + 1);
			fputs(i + 1 < n ? ",\n" : "\n", f);
		}
		for (int i = 0; i < depth; i++)
			fputs(indent, f);
		fputc(']', f);
	} else {
		fputs(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
		    JSON_C_TO_STRING_NOSLASHESCAPE), f);
	}
}

static json_object *
json_parse_obj(const char *s, size_t len)
{
	json_tokener *tok;
	json_object *o;

	if (s == NULL || len == 0 || len > INT32_MAX || memchr(s, '\0', len) != NULL)
		return NULL;
	tok = json_tokener_new_ex(64);
	if (tok == NULL)
		return NULL;
	o = json_tokener_parse_ex(tok, s, (int)len);
	if (o == NULL && json_tokener_get_error(tok) == json_tokener_continue)
		o = json_tokener_parse_ex(tok, "", 1);
	json_tokener_free(tok);
	if (o != NULL && !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* Lenient getters: a member of the wrong type reads as absent. */
static const char *
jstr(json_object *o, const char *k)
{
	json_object *v;

	if (o != NULL && json_object_object_get_ex(o, k, &v) &&
	    json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return "";
}

static bool
jbool(json_object *o, const char *k)
{
	json_object *v;

	return o != NULL && json_object_object_get_ex(o, k, &v) &&
	    json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
}

static int64_t
jint(json_object *o, const char *k)
{
	json_object *v;

	if (o != NULL && json_object_object_get_ex(o, k, &v) &&
	    (json_object_is_type(v, json_type_int) ||
	    json_object_is_type(v, json_type_double)))
		return json_object_get_int64(v);
	return 0;
}

static double
jdouble(json_object *o, const char *k)
{
	json_object *v;
	double d;

	if (o != NULL && json_object_object_get_ex(o, k, &v) &&
	    (json_object_is_type(v, json_type_int) ||
	    json_object_is_type(v, json_type_double))) {
		d = json_object_get_double(v);
		return isfinite(d) ? d : 0;
	}
	return 0;
}

static json_object *
jget(json_object *o, const char *k, enum json_type t)
{
	json_object *v;

	if (o != NULL && json_object_object_get_ex(o, k, &v) &&
	    json_object_is_type(v, t))
		return v;
	return NULL;
}

/* The strings of an array member (non-strings skipped); caller frees the array. */
static const char **
jstrv(json_object *o, const char *k, size_t *n)
{
	json_object *a = jget(o, k, json_type_array);
	const char **v;
	size_t len, m = 0;

	*n = 0;
	if (a == NULL || (len = json_object_array_length(a)) == 0)
		return NULL;
	v = calloc(len, sizeof *v);
	if (v == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		json_object *e = json_object_array_get_idx(a, i);

		if (e != NULL && json_object_is_type(e, json_type_string))
			v[m++] = json_object_get_string(e);
	}
	*n = m;
	return v;
}

/* ===================================================================== */
/* Status                                                                 */
/* ===================================================================== */

struct cli_peer {
	json_object *o;
	const char *key;		/* the Peer map key */
	const char *public_key, *host_name, *dns_name, *os;
	const char *cur_addr, *relay, *peer_relay;
	const char **ips;
	size_t n_ips;
	int64_t user_id, alt_sharer_user_id, rx, tx;
	bool online, active, exit_node, exit_node_option, sharee;
	struct lapi_time last_seen;
};

struct cli_status {
	json_object *root;		/* owns every string below */
	const char *backend_state, *auth_url, *magic_dns_suffix;
	const char **ips;		/* top-level TailscaleIPs */
	size_t n_ips;
	bool has_self;
	struct cli_peer self;
	struct cli_peer *peers;
	size_t n_peers;
	const char **health;
	size_t n_health;
};

static void
peer_parse(json_object *o, const char *key, struct cli_peer *p)
{
	p->o = o;
	p->key = key;
	p->public_key = jstr(o, "PublicKey");
	p->host_name = jstr(o, "HostName");
	p->dns_name = jstr(o, "DNSName");
	p->os = jstr(o, "OS");
	p->cur_addr = jstr(o, "CurAddr");
	p->relay = jstr(o, "Relay");
	p->peer_relay = jstr(o, "PeerRelay");
	p->ips = jstrv(o, "TailscaleIPs", &p->n_ips);
	p->user_id = jint(o, "UserID");
	p->alt_sharer_user_id = jint(o, "AltSharerUserID");
	p->rx = jint(o, "RxBytes");
	p->tx = jint(o, "TxBytes");
	p->online = jbool(o, "Online");
	p->active = jbool(o, "Active");
	p->exit_node = jbool(o, "ExitNode");
	p->exit_node_option = jbool(o, "ExitNodeOption");
	p->sharee = jbool(o, "ShareeNode");
	if (lapi_time_parse(jstr(o, "LastSeen"), &p->last_seen) != 0)
		p->last_seen = (struct lapi_time){ 0, 0 };
}

static void
cli_status_free(struct cli_status *st)
{
	free(st->self.ips);
	for (size_t i = 0; i < st->n_peers; i++)
		free(st->peers[i].ips);
	free(st->peers);
	free(st->ips);
	free(st->health);
	json_object_put(st->root);
	memset(st, 0, sizeof *st);
}

/* 0, or -EINVAL when json is not a JSON object. */
static int
cli_status_parse(const char *json, size_t len, struct cli_status *st)
{
	json_object *peers, *self;

	memset(st, 0, sizeof *st);
	st->root = json_parse_obj(json, len);
	if (st->root == NULL)
		return -EINVAL;
	st->backend_state = jstr(st->root, "BackendState");
	st->auth_url = jstr(st->root, "AuthURL");
	st->magic_dns_suffix = jstr(st->root, "MagicDNSSuffix");
	st->ips = jstrv(st->root, "TailscaleIPs", &st->n_ips);
	st->health = jstrv(st->root, "Health", &st->n_health);
	self = jget(st->root, "Self", json_type_object);
	if (self != NULL) {
		st->has_self = true;
		peer_parse(self, "", &st->self);
	}
	peers = jget(st->root, "Peer", json_type_object);
	if (peers != NULL && json_object_object_length(peers) > 0) {
		st->peers = calloc((size_t)json_object_object_length(peers),
		    sizeof *st->peers);
		if (st->peers == NULL) {
			cli_status_free(st);
			return -ENOMEM;
		}
		json_object_object_foreach(peers, k, v) {
			if (json_object_is_type(v, json_type_object))
				peer_parse(v, k, &st->peers[st->n_peers++]);
		}
	}
	return 0;
}

/*
 * ipnstate.Status.Peers orders by key, then SortPeers (stable) by DNSName,
 * HostName, first IP, public key; the key order only matters for ties the
 * public key cannot break, so one comparison does both.
 */
static int
ip_cmp(const char *a, const char *b)
{
	unsigned char ba[16], bb[16];
	int fa = 0, fb = 0;

	if (inet_pton(AF_INET, a, ba) == 1)
		fa = 4;
	else if (inet_pton(AF_INET6, a, ba) == 1)
		fa = 6;
	if (inet_pton(AF_INET, b, bb) == 1)
		fb = 4;
	else if (inet_pton(AF_INET6, b, bb) == 1)
		fb = 6;
	if (fa != fb)
		return fa < fb ? -1 : 1;
	if (fa == 0)
		return strcmp(a, b);
	return memcmp(ba, bb, fa == 4 ? 4 : 16);
}

static int
peer_cmp(const void *pa, const void *pb)
{
	const struct cli_peer *a = pa, *b = pb;
	int v;

	if ((v = strcmp(a->dns_name, b->dns_name)) != 0)
		return v;
	if ((v = strcmp(a->host_name, b->host_name)) != 0)
		return v;
	if (a->n_ips > 0 && b->n_ips > 0 && (v = ip_cmp(a->ips[0], b->ips[0])) != 0)
		return v;
	if ((v = strcmp(a->public_key, b->public_key)) != 0)
		return v;
	return strcmp(a->key, b->key);
}

/* dnsname.HasSuffix + TrimSuffix: name without the MagicDNS suffix and dots. */
static char *
dns_trim_suffix(const char *name, const char *suffix)
{
	size_t nl = strlen(name), sl;
	char *out;

	while (nl > 0 && name[nl - 1] == '.')
		nl--;
	while (*suffix == '.')
		suffix++;
	sl = strlen(suffix);
	while (sl > 0 && suffix[sl - 1] == '.')
		sl--;
	if (sl > 0 && nl > sl + 1 && strncmp(name + nl - sl, suffix, sl) == 0 &&
	    name[nl - sl - 1] == '.')
		nl -= sl + 1;
	out = strndup(name, nl);
	return out != NULL ? out : strdup("");
}

/* dnsname.SanitizeHostname */
static char *
sanitize_hostname(const char *h)
{
	static const char *const suffixes[] = { ".local", ".localdomain", ".lan" };
	size_t len = strlen(h), start = 0, end;
	char *out, *o;

	for (size_t i = 0; i < 3; i++) {
		size_t sl = strlen(suffixes[i]);

		if (len >= sl && strcmp(h + len - sl, suffixes[i]) == 0)
			len -= sl;
	}
	end = len > 63 ? 63 : len;
	while (start < end && !isalnum((unsigned char)h[start]))
		start++;
	while (start < end && !isalnum((unsigned char)h[end - 1]))
		end--;
	out = o = malloc(end - start + 1);
	if (out == NULL)
		return strdup("");
	for (size_t i = start; i < end; i++) {
		unsigned char c = (unsigned char)h[i];
		bool boundary = i == start || i == end - 1;

		if (!boundary && (c == ' ' || c == '.' || c == '@' || c == '_'))
			*o++ = '-';
		else if (isalnum(c) || c == '-')
			*o++ = (char)tolower(c);
	}
	*o = '\0';
	return out;
}

/* dnsOrQuoteHostname */
static char *
peer_name(const struct cli_status *st, const struct cli_peer *p)
{
	char *base = dns_trim_suffix(p->dns_name, st->magic_dns_suffix);
	char *san, *out;

	if (base != NULL && base[0] != '\0')
		return base;
	free(base);
	san = sanitize_hostname(p->host_name);
	out = cli_sprintf("(\"%s\")", san);
	free(san);
	return out;
}

/* ownerLogin */
static char *
owner_login(const struct cli_status *st, const struct cli_peer *p)
{
	int64_t uid = p->alt_sharer_user_id != 0 ? p->alt_sharer_user_id : p->user_id;
	json_object *users = jget(st->root, "User", json_type_object);
	json_object *u;
	char key[24];
	const char *login, *at;

	if (uid == 0)
		return strdup("-");
	snprintf(key, sizeof key, "%lld", (long long)uid);
	u = users != NULL ? jget(users, key, json_type_object) : NULL;
	if (u == NULL)
		return cli_sprintf("%lld", (long long)uid);
	login = jstr(u, "LoginName");
	at = strchr(login, '@');
	if (at != NULL)
		return strndup(login, (size_t)(at - login) + 1);
	return strdup(login);
}

/* lastSeenFmt */
static void
last_seen_fmt(char *buf, size_t len, struct lapi_time t, time_t now)
{
	int64_t d;

	buf[0] = '\0';
	if (t.sec == 0 && t.nsec == 0)
		return;
	d = (int64_t)now - t.sec;
	if (d < 60)
		d = 60;
	if (d < 3600)
		snprintf(buf, len, ", last seen %lldm ago", (long long)(d / 60));
	else if (d < 86400)
		snprintf(buf, len, ", last seen %lldh ago", (long long)(d / 3600));
	else
		snprintf(buf, len, ", last seen %lldd ago", (long long)(d / 86400));
}

/* The status column of one line (printPS). */
static char *
peer_state(const struct cli_peer *p, time_t now)
{
	char seen[64], offline[80] = "", *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	bool traffic = p->tx != 0 || p->rx != 0;

	if (f == NULL)
		return strdup("");
	last_seen_fmt(seen, sizeof seen, p->last_seen, now);
	if (!p->online)
		snprintf(offline, sizeof offline, "; offline%s", seen);
	if (!p->active) {
		if (p->exit_node)
			fprintf(f, "idle; exit node%s", offline);
		else if (p->exit_node_option)
			fprintf(f, "idle; offers exit node%s", offline);
		else if (traffic)
			fprintf(f, "idle%s", offline);
		else if (!p->online)
			fprintf(f, "offline%s", seen);
		else
			fputs("-", f);
	} else {
		fputs("active; ", f);
		if (p->exit_node)
			fputs("exit node; ", f);
		else if (p->exit_node_option)
			fputs("offers exit node; ", f);
		if (p->relay[0] != '\0' && p->cur_addr[0] == '\0' &&
		    p->peer_relay[0] == '\0') {
			fputs("relay ", f);
			go_quote(f, p->relay);
		} else if (p->cur_addr[0] != '\0') {
			fprintf(f, "direct %s", p->cur_addr);
		} else if (p->peer_relay[0] != '\0') {
			fprintf(f, "peer-relay %s", p->peer_relay);
		}
		fputs(offline, f);
	}
	if (traffic)
		fprintf(f, ", tx %lld rx %lld", (long long)p->tx, (long long)p->rx);
	fclose(f);
	return buf != NULL ? buf : strdup("");
}

struct cli_status_opts {
	bool self;
	bool peers;
	bool active;
	bool header;
};

/* isRunningOrStarting: NULL when it is, else what status prints. */
static char *
state_description(const struct cli_status *st)
{
	const char *s = st->backend_state;

	if (strcmp(s, "Running") == 0 || strcmp(s, "Starting") == 0)
		return NULL;
	if (strcmp(s, "Stopped") == 0)
		return strdup("Tailscale is stopped.");
	if (strcmp(s, "NeedsLogin") == 0) {
		if (st->auth_url[0] != '\0')
			return cli_sprintf("Logged out.\nLog in at: %s", st->auth_url);
		return strdup("Logged out.");
	}
	if (strcmp(s, "NeedsMachineAuth") == 0)
		return strdup("Machine is not yet approved by tailnet admin.");
	return cli_sprintf("unexpected state: %s", s);
}

static void
print_health(const struct cli_status *st, FILE *out)
{
	fputs("# Health check:\n", out);
	for (size_t i = 0; i < st->n_health; i++)
		fprintf(out, "#     - %s\n", st->health[i]);
}

/* `meshctl status` as text: the exit status (0 or 1). */
static int
cli_status_render(const struct cli_status *st, const struct cli_status_opts *o,
    FILE *out, time_t now)
{
	struct cli_table t = { .ncols = 5 };
	char *desc = state_description(st);
	struct cli_peer *sorted = NULL;
	size_t ns = 0;

	if (desc != NULL) {
		if (st->n_health > 0 && (strcmp(st->backend_state, "Starting") == 0 ||
		    strcmp(st->backend_state, "NoState") == 0)) {
			print_health(st, out);
			fputc('\n', out);
		}
		fprintf(out, "%s\n", desc);
		free(desc);
		return CLI_EXIT_FAIL;
	}
	if (o->header) {
		char *h1[5] = { strdup("IP"), strdup("Hostname"), strdup("Owner"),
		    strdup("OS"), strdup("Status") };
		char *h2[5] = { strdup("--"), strdup("--------"), strdup("-----"),
		    strdup("--"), strdup("------") };

		table_add(&t, h1);
		table_add(&t, h2);
	}
	if (o->self && st->has_self) {
		const struct cli_peer *p = &st->self;
		char *row[5] = { strdup(p->n_ips > 0 ? p->ips[0] : ""),
		    peer_name(st, p), owner_login(st, p), strdup(p->os),
		    peer_state(p, now) };

		table_add(&t, row);
	}
	if (o->peers && st->n_peers > 0)
		sorted = calloc(st->n_peers, sizeof *sorted);
	for (size_t i = 0; sorted != NULL && i < st->n_peers; i++)
		if (!st->peers[i].sharee)
			sorted[ns++] = st->peers[i];
	if (sorted != NULL)
		qsort(sorted, ns, sizeof *sorted, peer_cmp);
	for (size_t i = 0; sorted != NULL && i < ns; i++) {
		const struct cli_peer *p = &sorted[i];
		char *row[5];

		if (o->active && !p->active)
			continue;
		row[0] = strdup(p->n_ips > 0 ? p->ips[0] : "");
		row[1] = peer_name(st, p);
		row[2] = owner_login(st, p);
		row[3] = strdup(p->os);
		row[4] = peer_state(p, now);
		table_add(&t, row);
	}
	free(sorted);
	table_flush(&t, out, 0, 2);
	if (st->n_health > 0) {
		fputc('\n', out);
		print_health(st, out);
	}
	return CLI_EXIT_OK;
}

/* ===================================================================== */
/* Talking to meshd                                                       */
/* ===================================================================== */

/*
 * One call; on failure prints the reason and returns CLI_EXIT_FAIL.  A
 * non-2xx answer is a failure too (its "error" is printed).
 */
static int
cli_call(const char *method, const char *path, const char *body, size_t body_len,
    long timeout_ms, struct lapi_response *resp)
{
	struct lapi_call call = {
		.method = method, .path = path, .body = body, .body_len = body_len,
		.timeout_ms = timeout_ms,
	};
	char *cause = NULL;
	int ret;

	ret = lapi_client_call(cli_socket, &call, resp, &cause);
	if (ret != 0) {
		cli_fail("%s", cause != NULL ? cause : strerror(-ret));
		free(cause);
		return CLI_EXIT_FAIL;
	}
	if (resp->status < 200 || resp->status >= 300) {
		char *msg = lapi_response_error(resp);

		cli_fail("%s", msg != NULL ? msg : "error from meshd");
		free(msg);
		lapi_response_clear(resp);
		return CLI_EXIT_FAIL;
	}
	return CLI_EXIT_OK;
}

static int
get_status(struct cli_status *st, bool peers)
{
	struct lapi_response resp;
	int ret;

	ret = cli_call("GET", peers ? LAPI_PREFIX "status" :
	    LAPI_PREFIX "status?peers=false", NULL, 0, 0, &resp);
	if (ret != CLI_EXIT_OK)
		return ret;
	if (cli_status_parse(resp.body, resp.body_len, st) != 0) {
		lapi_response_clear(&resp);
		return cli_fail("cannot parse the status meshd sent");
	}
	lapi_response_clear(&resp);
	return CLI_EXIT_OK;
}

static void
print_pretty(FILE *f, const char *json, size_t len, const char *indent)
{
	json_object *o = json_parse_obj(json, len);

	if (o == NULL) {
		fwrite(json, 1, len, f);
		fputc('\n', f);
		return;
	}
	json_pretty_rec(f, o, indent, 0);
	fputc('\n', f);
	json_object_put(o);
}

static bool
is_ip(const char *s)
{
	unsigned char b[16];

	return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

static bool
peer_matches(const struct cli_status *st, const struct cli_peer *p, const char *arg)
{
	char *name = peer_name(st, p);
	bool m = strcasecmp(arg, name) == 0 || strcmp(arg, p->dns_name) == 0;
	size_t dl = strlen(p->dns_name);

	free(name);
	/* Also the FQDN without its final dot, as users type it. */
	if (!m && dl > 1 && p->dns_name[dl - 1] == '.' && strlen(arg) == dl - 1 &&
	    strncasecmp(arg, p->dns_name, dl - 1) == 0)
		m = true;
	return m;
}

/*
 * tailscaleIPFromArg: an IP as is (meshd says if it is ours); else a
 * peer's (or our own) first IP by name; else DNS.  0, or -ENOENT with
 * *cause.
 */
static int
resolve_host(const struct cli_status *st, const char *arg, char *ip, size_t iplen,
    bool *self, char **cause)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	int rc;

	*self = false;
	*cause = NULL;
	if (is_ip(arg)) {
		snprintf(ip, iplen, "%s", arg);
		return 0;
	}
	for (size_t i = 0; i < st->n_peers; i++) {
		const struct cli_peer *p = &st->peers[i];

		if (!peer_matches(st, p, arg))
			continue;
		if (p->n_ips == 0) {
			*cause = strdup("node found but lacks an IP");
			return -ENOENT;
		}
		snprintf(ip, iplen, "%s", p->ips[0]);
		return 0;
	}
	if (st->has_self && peer_matches(st, &st->self, arg) && st->self.n_ips > 0) {
		snprintf(ip, iplen, "%s", st->self.ips[0]);
		*self = true;
		return 0;
	}
	rc = getaddrinfo(arg, NULL, &hints, &res);
	if (rc != 0 || res == NULL) {
		*cause = cli_sprintf("error looking up IP of \"%s\": %s", arg,
		    gai_strerror(rc != 0 ? rc : EAI_NONAME));
		if (res != NULL)
			freeaddrinfo(res);
		return -ENOENT;
	}
	if (getnameinfo(res->ai_addr, res->ai_addrlen, ip, (socklen_t)iplen, NULL, 0,
	    NI_NUMERICHOST) != 0) {
		*cause = cli_sprintf("no IPs found for \"%s\"", arg);
		freeaddrinfo(res);
		return -ENOENT;
	}
	freeaddrinfo(res);
	return 0;
}

/* ===================================================================== */
/* Commands                                                               */
/* ===================================================================== */

#define SOCKET_FLAG { "socket", NULL, CLI_STR, &cli_socket, false }

static int
parse_or_usage(struct cli_flag *flags, size_t n, int argc, char **argv, int *nargs,
    const char *usage)
{
	char *cause = NULL;

	if (cli_parse_flags(flags, n, argc, argv, nargs, &cause) != 0) {
		fprintf(cli_err, "meshctl: %s\nusage: %s\n", cause ? cause : "bad flags",
		    usage);
		free(cause);
		return CLI_EXIT_USAGE;
	}
	return CLI_EXIT_OK;
}

/* --- status ------------------------------------------------------------- */

static int
cmd_status(int argc, char **argv)
{
	bool json = false, self = true, peers = true, active = false, header = false;
	struct cli_flag flags[] = {
		{ "json", NULL, CLI_BOOL, &json, false },
		{ "self", NULL, CLI_BOOL, &self, false },
		{ "peers", NULL, CLI_BOOL, &peers, false },
		{ "active", NULL, CLI_BOOL, &active, false },
		{ "header", NULL, CLI_BOOL, &header, false },
		SOCKET_FLAG,
	};
	struct cli_status_opts o;
	struct cli_status st;
	struct lapi_response resp;
	int nargs, ret;

	ret = parse_or_usage(flags, NFLAGS(flags), argc, argv, &nargs,
	    "meshctl status [--json] [--active] [--self=false] [--peers=false]");
	if (ret != CLI_EXIT_OK)
		return ret;
	if (nargs > 0)
		return cli_fail("unexpected non-flag arguments to 'meshctl status'");
	ret = cli_call("GET", peers ? LAPI_PREFIX "status" :
	    LAPI_PREFIX "status?peers=false", NULL, 0, 0, &resp);
	if (ret != CLI_EXIT_OK)
		return ret;
	if (json) {
		json_object *root = json_parse_obj(resp.body, resp.body_len);
		json_object *pm;

		if (root == NULL) {
			lapi_response_clear(&resp);
			return cli_fail("cannot parse the status meshd sent");
		}
		if (active && (pm = jget(root, "Peer", json_type_object)) != NULL) {
			/* Collect first: deleting while iterating is not allowed. */
			size_t n = (size_t)json_object_object_length(pm), k = 0;
			char **drop = calloc(n + 1, sizeof *drop);

			json_object_object_foreach(pm, key, v) {
				if (drop != NULL && !jbool(v, "Active"))
					drop[k++] = strdup(key);
			}
			for (size_t i = 0; i < k; i++) {
				if (drop[i] != NULL)
					json_object_object_del(pm, drop[i]);
				free(drop[i]);
			}
			free(drop);
		}
		json_pretty_rec(cli_out, root, "  ", 0);
		fputc('\n', cli_out);
		json_object_put(root);
		lapi_response_clear(&resp);
		return CLI_EXIT_OK;
	}
	if (cli_status_parse(resp.body, resp.body_len, &st) != 0) {
		lapi_response_clear(&resp);
		return cli_fail("cannot parse the status meshd sent");
	}
	lapi_response_clear(&resp);
	o = (struct cli_status_opts){ .self = self, .peers = peers, .active = active,
	    .header = header };
	ret = cli_status_render(&st, &o, cli_out, time(NULL));
	cli_status_free(&st);
	return ret;
}

/* --- ip ----------------------------------------------------------------- */

struct cli_ip_opts {
	bool want1, want4, want6;
};

/* Prints the addresses ips selects; the exit status. */
static int
cli_ip_render(const char *const *ips, size_t n, const struct cli_ip_opts *o,
    FILE *out)
{
	bool v4 = o->want4, v6 = o->want6, match = false;

	if (!v4 && !v6)
		v4 = v6 = true;
	if (o->want1 && n > 1)
		n = 1;
	for (size_t i = 0; i < n; i++) {
		bool is4 = strchr(ips[i], ':') == NULL;

		if ((is4 && v4) || (!is4 && v6)) {
			fprintf(out, "%s\n", ips[i]);
			match = true;
		}
	}
	if (!match) {
		if (o->want4)
			return cli_fail("no Tailscale IPv4 address");
		if (o->want6)
			return cli_fail("no Tailscale IPv6 address");
	}
	return CLI_EXIT_OK;
}

static int
cmd_ip(int argc, char **argv)
{
	struct cli_ip_opts o = { 0 };
	const char *assert_ip = NULL;
	struct cli_flag flags[] = {
		{ "1", NULL, CLI_BOOL, &o.want1, false },
		{ "4", NULL, CLI_BOOL, &o.want4, false },
		{ "6", NULL, CLI_BOOL, &o.want6, false },
		{ "assert", NULL, CLI_STR, &assert_ip, false },
		SOCKET_FLAG,
	};
	const char *const *ips;
	struct cli_status st;
	size_t n;
	int nargs, ret;

	ret = parse_or_usage(flags, NFLAGS(flags), argc, argv, &nargs,
	    "meshctl ip [-1] [-4] [-6] [peer hostname or ip address]");
	if (ret != CLI_EXIT_OK)
		return ret;
	if (nargs > 1)
		return cli_fail("too many arguments, expected at most one peer");
	if ((o.want1 + o.want4 + o.want6) > 1)
		return cli_fail("meshctl ip -1, -4, and -6 are mutually exclusive");
	ret = get_status(&st, true);
	if (ret != CLI_EXIT_OK)
		return ret;
	ips = st.ips;
	n = st.n_ips;
	if (assert_ip != NULL) {
		for (size_t i = 0; i < n; i++) {
			if (strcmp(ips[i], assert_ip) == 0) {
				cli_status_free(&st);
				return CLI_EXIT_OK;
			}
		}
		ret = cli_fail("assertion failed: IP \"%s\" not found among this "
		    "node's IPs", assert_ip);
		cli_status_free(&st);
		return ret;
	}
	if (nargs == 1) {
		char ip[INET6_ADDRSTRLEN + 8], *cause;
		bool self, found = false;

		if (resolve_host(&st, argv[0], ip, sizeof ip, &self, &cause) != 0) {
			ret = cli_fail("%s", cause != NULL ? cause : "lookup failed");
			free(cause);
			cli_status_free(&st);
			return ret;
		}
		for (size_t i = 0; i < st.n_peers && !found; i++) {
			for (size_t j = 0; j < st.peers[i].n_ips; j++) {
				if (ip_cmp(st.peers[i].ips[j], ip) == 0) {
					ips = st.peers[i].ips;
					n = st.peers[i].n_ips;
					found = true;
					break;
				}
			}
		}
		for (size_t j = 0; !found && st.has_self && j < st.self.n_ips; j++) {
			if (ip_cmp(st.self.ips[j], ip) == 0) {
				ips = st.self.ips;
				n = st.self.n_ips;
				found = true;
			}
		}
		if (!found) {
			ret = cli_fail("no peer or service found with IP %s", ip);
			cli_status_free(&st);
			return ret;
		}
	}
	if (n == 0) {
		ret = cli_fail("no current Tailscale IPs; state: %s", st.backend_state);
		cli_status_free(&st);
		return ret;
	}
	ret = cli_ip_render(ips, n, &o, cli_out);
	cli_status_free(&st);
	return ret;
}

/* --- ping --------------------------------------------------------------- */

struct cli_ping_opts {
	long count;
	int64_t timeout_ns;
	bool until_direct;
	bool tsmp, icmp, peerapi;
	long size;
};

static const char *
ping_type(const struct cli_ping_opts *o)
{
	if (o->tsmp)
		return "TSMP";
	if (o->icmp)
		return "ICMP";
	if (o->peerapi)
		return "peerapi";
	return "disco";
}

/* Between pings, as ping.go's time.Sleep(time.Second); tests shorten it. */
static int64_t ping_interval_ns = NS_PER_SEC;

static int ping_loop(const struct cli_ping_opts *o, const char *ip, const char *path);

enum ping_verdict {
	PING_AGAIN,		/* pong; keep going */
	PING_DONE,		/* stop, success */
	PING_ERROR,		/* stop, failure (message printed) */
};

/* Renders one PingResult as ping.go does. */
static enum ping_verdict
cli_ping_render(const char *json, size_t len, const struct cli_ping_opts *o,
    bool *any_pong, FILE *out)
{
	json_object *pr = json_parse_obj(json, len);
	const char *err, *endpoint, *peer_relay;
	char via[256], lat[48];
	int64_t ns;
	double secs;

	if (pr == NULL) {
		cli_fail("cannot parse the ping result meshd sent");
		return PING_ERROR;
	}
	err = jstr(pr, "Err");
	if (err[0] != '\0') {
		if (jbool(pr, "IsLocalIP")) {
			fprintf(out, "%s\n", err);
			json_object_put(pr);
			return PING_DONE;
		}
		cli_fail("%s", err);
		json_object_put(pr);
		return PING_ERROR;
	}
	secs = jdouble(pr, "LatencySeconds");
	ns = go_round(go_seconds(secs), NS_PER_MS);
	go_duration(ns, lat, sizeof lat);
	endpoint = jstr(pr, "Endpoint");
	peer_relay = jstr(pr, "PeerRelay");
	snprintf(via, sizeof via, "%s", endpoint);
	if (peer_relay[0] != '\0')
		snprintf(via, sizeof via, "peer-relay(%s)", peer_relay);
	else if (jint(pr, "DERPRegionID") != 0)
		snprintf(via, sizeof via, "DERP(%s)", jstr(pr, "DERPRegionCode"));
	if (via[0] == '\0')
		snprintf(via, sizeof via, "%s", ping_type(o));
	if (o->peerapi) {
		fprintf(out, "hit peerapi of %s (%s) at %s in %s\n", jstr(pr, "NodeIP"),
		    jstr(pr, "NodeName"), jstr(pr, "PeerAPIURL"), lat);
		json_object_put(pr);
		return PING_DONE;
	}
	*any_pong = true;
	if (jint(pr, "PeerAPIPort") != 0)
		fprintf(out, "pong from %s (%s, %lld) via %s in %s\n",
		    jstr(pr, "NodeName"), jstr(pr, "NodeIP"),
		    (long long)jint(pr, "PeerAPIPort"), via, lat);
	else
		fprintf(out, "pong from %s (%s) via %s in %s\n", jstr(pr, "NodeName"),
		    jstr(pr, "NodeIP"), via, lat);
	fflush(out);
	if (o->tsmp || o->icmp || (endpoint[0] != '\0' && o->until_direct)) {
		json_object_put(pr);
		return PING_DONE;
	}
	json_object_put(pr);
	return PING_AGAIN;
}

static int
cmd_ping(int argc, char **argv)
{
	struct cli_ping_opts o = {
		.count = 10, .timeout_ns = 5 * NS_PER_SEC, .until_direct = true,
	};
	bool verbose = false;
	struct cli_flag flags[] = {
		{ "c", NULL, CLI_INT, &o.count, false },
		{ "timeout", NULL, CLI_DUR, &o.timeout_ns, false },
		{ "until-direct", NULL, CLI_BOOL, &o.until_direct, false },
		{ "tsmp", NULL, CLI_BOOL, &o.tsmp, false },
		{ "icmp", NULL, CLI_BOOL, &o.icmp, false },
		{ "peerapi", NULL, CLI_BOOL, &o.peerapi, false },
		{ "size", NULL, CLI_INT, &o.size, false },
		{ "verbose", NULL, CLI_BOOL, &verbose, false },
		SOCKET_FLAG,
	};
	char ip[INET6_ADDRSTRLEN + 8], *cause, *esc, path[512];
	struct cli_status st;
	bool self;
	char *desc;
	int nargs, ret;

	ret = parse_or_usage(flags, NFLAGS(flags), argc, argv, &nargs,
	    "meshctl ping [--c N] [--timeout D] [--until-direct=false] "
	    "[--tsmp|--icmp|--peerapi] <hostname-or-IP>");
	if (ret != CLI_EXIT_OK)
		return ret;
	ret = get_status(&st, true);
	if (ret != CLI_EXIT_OK)
		return ret;
	desc = state_description(&st);
	if (desc != NULL) {
		fprintf(cli_out, "%s\n", desc);
		free(desc);
		cli_status_free(&st);
		return CLI_EXIT_FAIL;
	}
	if (nargs != 1 || argv[0][0] == '\0') {
		cli_status_free(&st);
		return cli_fail("usage: meshctl ping <hostname-or-IP>");
	}
	if (resolve_host(&st, argv[0], ip, sizeof ip, &self, &cause) != 0) {
		ret = cli_fail("%s", cause != NULL ? cause : "lookup failed");
		free(cause);
		cli_status_free(&st);
		return ret;
	}
	cli_status_free(&st);
	if (self) {
		fprintf(cli_out, "%s is local Tailscale IP\n", ip);
		return CLI_EXIT_OK;
	}
	if (verbose && strcmp(ip, argv[0]) != 0) {
		/* log.Printf's default prefix, then %q twice. */
		go_log_prefix(cli_err, time(NULL));
		fputs("lookup ", cli_err);
		go_quote(cli_err, argv[0]);
		fputs(" => ", cli_err);
		go_quote(cli_err, ip);
		fputc('\n', cli_err);
	}
	esc = lapi_query_escape(ip);
	if (esc == NULL)
		return cli_fail("out of memory");
	snprintf(path, sizeof path, LAPI_PREFIX "ping?ip=%s&size=%ld&type=%s", esc,
	    o.size, ping_type(&o));
	free(esc);
	return ping_loop(&o, ip, path);
}

/*
 * runPing's loop: one request per ping, each bounded by --timeout; a
 * timeout (ours, or meshd's 504 when it stops waiting first) is reported
 * and the next ping goes out.
 */
static int
ping_loop(const struct cli_ping_opts *o, const char *ip, const char *path)
{
	bool any_pong = false;
	long timeout_ms = o->timeout_ns > 0 ? (long)(o->timeout_ns / NS_PER_MS +
	    (o->timeout_ns % NS_PER_MS != 0)) : 0;
	char *cause;
	int ret;

	for (long n = 1;; n++) {
		struct lapi_call call = { .method = "POST", .path = path,
		    .timeout_ms = timeout_ms };
		struct lapi_response resp = { 0 };
		enum ping_verdict v;
		bool timed_out;

		cause = NULL;
		/* A context with no time left fails at once in Go, as here. */
		if (o->timeout_ns <= 0)
			ret = -ETIMEDOUT;
		else
			ret = lapi_client_call(cli_socket, &call, &resp, &cause);
		timed_out = ret == -ETIMEDOUT || (ret == 0 && resp.status == 504);
		if (timed_out) {
			free(cause);
			lapi_response_clear(&resp);
			fputs("ping ", cli_out);
			go_quote(cli_out, ip);
			fputs(" timed out\n", cli_out);
			fflush(cli_out);
			if (n == o->count)
				return any_pong ? CLI_EXIT_OK : cli_fail("no reply");
			continue;
		}
		if (ret != 0) {
			ret = cli_fail("%s", cause != NULL ? cause : strerror(-ret));
			free(cause);
			return ret;
		}
		if (resp.status < 200 || resp.status >= 300) {
			char *msg = lapi_response_error(&resp);

			ret = cli_fail("%s", msg != NULL ? msg : "ping failed");
			free(msg);
			lapi_response_clear(&resp);
			return ret;
		}
		v = cli_ping_render(resp.body, resp.body_len, o, &any_pong, cli_out);
		lapi_response_clear(&resp);
		if (v == PING_DONE)
			return CLI_EXIT_OK;
		if (v == PING_ERROR)
			return CLI_EXIT_FAIL;
		sleep_ns(ping_interval_ns);
		if (n == o->count) {
			if (!any_pong)
				return cli_fail("no reply");
			if (o->until_direct)
				return cli_fail("direct connection not established");
			return CLI_EXIT_OK;
		}
	}
}

/* --- up, login, set ----------------------------------------------------- */

/* Every flag `up`, `login` and `set` map onto prefs. */
struct cli_pref_args {
	const char *login_server;
	const char *auth_key;
	const char *hostname;
	bool accept_routes;
	bool accept_dns;
	const char *advertise_routes;
	bool advertise_exit_node;
	const char *advertise_tags;
	const char *exit_node;
	bool exit_node_allow_lan;
	bool snat;
	bool shields_up;
	bool ssh;
	const char *netfilter_mode;
	bool force_reauth;
	bool reset;
	int64_t timeout_ns;
	bool json;
};

static bool
is_exit_route(const char *r)
{
	return strcmp(r, "0.0.0.0/0") == 0 || strcmp(r, "::/0") == 0;
}

/* A prefix in canonical form ("10.0.0.0/8", not "10.0.0.1/8"). */
static int
check_prefix(const char *s, char **cause)
{
	char addr[INET6_ADDRSTRLEN + 1], canon[INET6_ADDRSTRLEN + 8];
	unsigned char b[16];
	const char *slash = strchr(s, '/');
	int fam, bits, maxbits;
	char *end;
	long n;

	if (slash == NULL || (size_t)(slash - s) >= sizeof addr)
		goto bad;
	memcpy(addr, s, (size_t)(slash - s));
	addr[slash - s] = '\0';
	fam = strchr(addr, ':') != NULL ? AF_INET6 : AF_INET;
	maxbits = fam == AF_INET ? 32 : 128;
	if (inet_pton(fam, addr, b) != 1)
		goto bad;
	errno = 0;
	n = strtol(slash + 1, &end, 10);
	if (errno != 0 || end == slash + 1 || *end != '\0' || n < 0 || n > maxbits)
		goto bad;
	bits = (int)n;
	for (int i = 0; i < maxbits / 8; i++) {
		int keep = bits - i * 8;

		if (keep >= 8)
			continue;
		b[i] &= keep <= 0 ? 0 : (unsigned char)(0xff << (8 - keep));
	}
	inet_ntop(fam, b, canon, INET6_ADDRSTRLEN);
	snprintf(canon + strlen(canon), 8, "/%u", (unsigned)(unsigned char)bits);
	if (strcmp(canon, s) != 0) {
		*cause = cli_sprintf("%s has non-address bits set; expected %s", s,
		    canon);
		return -EINVAL;
	}
	return 0;
bad:
	*cause = cli_sprintf("\"%s\" is not a valid IP address or CIDR prefix", s);
	return -EINVAL;
}

/* Splits a comma-separated list ("" is the empty list). */
static char **
split_list(const char *s, size_t *n)
{
	char **v = NULL, *copy, *tok, *save = NULL;
	size_t cnt = 0;

	*n = 0;
	if (s == NULL || s[0] == '\0')
		return NULL;
	copy = strdup(s);
	if (copy == NULL)
		return NULL;
	v = calloc(strlen(s) + 1, sizeof *v);
	for (tok = strtok_r(copy, ",", &save); v != NULL && tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ')
			tok++;
		if (*tok != '\0')
			v[cnt++] = strdup(tok);
	}
	free(copy);
	*n = cnt;
	return v;
}

static void
list_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static int
list_add(char ***v, size_t *n, const char *s)
{
	char **nv = reallocarray(*v, *n + 1, sizeof *nv);

	if (nv == NULL)
		return -ENOMEM;
	*v = nv;
	nv[*n] = strdup(s);
	if (nv[*n] == NULL)
		return -ENOMEM;
	(*n)++;
	return 0;
}

/* Reads an auth key: the value itself, or the first line of file:PATH. */
static int
read_auth_key(const char *arg, char **out, char **cause)
{
	char buf[4096];
	size_t n;
	FILE *f;
	char *s, *e;

	*out = NULL;
	*cause = NULL;
	if (strncmp(arg, "file:", 5) != 0) {
		*out = strdup(arg);
		return *out != NULL ? 0 : -ENOMEM;
	}
	f = fopen(arg + 5, "re");
	if (f == NULL) {
		*cause = cli_sprintf("reading auth key from %s: %s", arg + 5,
		    strerror(errno));
		return -errno;
	}
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	s = buf;
	while (*s != '\0' && isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		e--;
	*e = '\0';
	if (*s == '\0') {
		sodium_memzero(buf, sizeof buf);
		*cause = cli_sprintf("auth key file %s is empty", arg + 5);
		return -EINVAL;
	}
	*out = strdup(s);
	sodium_memzero(buf, sizeof buf);
	return *out != NULL ? 0 : -ENOMEM;
}

/*
 * The prefs the given flags mean, as a mask over mp.  Needs the current
 * prefs (cur) when only one of --advertise-routes / --advertise-exit-node
 * was given, and the status (st) to resolve --exit-node names.  0 or -errno
 * with *cause.
 */
static int
cli_build_prefs(const struct cli_pref_args *a, const struct cli_flag *flags,
    size_t nflags, const struct lapi_prefs *cur, const struct cli_status *st,
    struct lapi_masked_prefs *mp, char **cause)
{
	struct lapi_prefs *p = &mp->prefs;
	bool routes = flag_given(flags, nflags, "advertise-routes");
	bool exit_adv = flag_given(flags, nflags, "advertise-exit-node");

	*cause = NULL;
	memset(mp, 0, sizeof *mp);
	lapi_prefs_init_default(p);
	if (flag_given(flags, nflags, "login-server")) {
		p->control_url = strdup(a->login_server);
		mp->set |= LAPI_PREF_CONTROL_URL;
	}
	if (flag_given(flags, nflags, "hostname")) {
		p->hostname = strdup(a->hostname);
		mp->set |= LAPI_PREF_HOSTNAME;
	}
	if (flag_given(flags, nflags, "accept-routes")) {
		p->route_all = a->accept_routes;
		mp->set |= LAPI_PREF_ROUTE_ALL;
	}
	if (flag_given(flags, nflags, "accept-dns")) {
		p->corp_dns = a->accept_dns;
		mp->set |= LAPI_PREF_CORP_DNS;
	}
	if (flag_given(flags, nflags, "exit-node-allow-lan-access")) {
		p->exit_node_allow_lan_access = a->exit_node_allow_lan;
		mp->set |= LAPI_PREF_EXIT_NODE_ALLOW_LAN;
	}
	if (flag_given(flags, nflags, "snat-subnet-routes")) {
		p->no_snat = !a->snat;
		mp->set |= LAPI_PREF_NO_SNAT;
	}
	if (flag_given(flags, nflags, "shields-up")) {
		p->shields_up = a->shields_up;
		mp->set |= LAPI_PREF_SHIELDS_UP;
	}
	if (flag_given(flags, nflags, "ssh")) {
		p->run_ssh = a->ssh;
		mp->set |= LAPI_PREF_RUN_SSH;
	}
	if (flag_given(flags, nflags, "netfilter-mode")) {
		if (strcmp(a->netfilter_mode, "on") == 0)
			p->netfilter_mode = LAPI_NETFILTER_ON;
		else if (strcmp(a->netfilter_mode, "nodivert") == 0)
			p->netfilter_mode = LAPI_NETFILTER_NODIVERT;
		else if (strcmp(a->netfilter_mode, "off") == 0)
			p->netfilter_mode = LAPI_NETFILTER_OFF;
		else {
			*cause = cli_sprintf("invalid value --netfilter-mode=\"%s\"",
			    a->netfilter_mode);
			return -EINVAL;
		}
		mp->set |= LAPI_PREF_NETFILTER_MODE;
	}
	if (flag_given(flags, nflags, "advertise-tags")) {
		char **tags = split_list(a->advertise_tags, &p->n_advertise_tags);

		/* The "tag:" prefix is optional on the command line. */
		for (size_t i = 0; i < p->n_advertise_tags; i++) {
			if (strncmp(tags[i], "tag:", 4) != 0) {
				char *t = cli_sprintf("tag:%s", tags[i]);

				free(tags[i]);
				tags[i] = t;
			}
		}
		p->advertise_tags = tags;
		mp->set |= LAPI_PREF_ADVERTISE_TAGS;
	}
	if (routes || exit_adv) {
		char **rv = NULL;
		size_t rn = 0;
		bool want_exit = a->advertise_exit_node;

		if (routes) {
			rv = split_list(a->advertise_routes, &rn);
		} else if (cur != NULL) {
			for (size_t i = 0; i < cur->n_advertise_routes; i++)
				if (!is_exit_route(cur->advertise_routes[i]))
					list_add(&rv, &rn, cur->advertise_routes[i]);
		}
		if (!exit_adv && cur != NULL)
			for (size_t i = 0; i < cur->n_advertise_routes; i++)
				if (is_exit_route(cur->advertise_routes[i]))
					want_exit = true;
		for (size_t i = 0; i < rn; i++) {
			if (check_prefix(rv[i], cause) != 0) {
				list_free(rv, rn);
				return -EINVAL;
			}
		}
		/* Explicit default routes in --advertise-routes stay as given. */
		if (want_exit) {
			bool has4 = false, has6 = false;

			for (size_t i = 0; i < rn; i++) {
				has4 = has4 || strcmp(rv[i], "0.0.0.0/0") == 0;
				has6 = has6 || strcmp(rv[i], "::/0") == 0;
			}
			if (!has4)
				list_add(&rv, &rn, "0.0.0.0/0");
			if (!has6)
				list_add(&rv, &rn, "::/0");
		} else if (exit_adv) {
			size_t k = 0;

			for (size_t i = 0; i < rn; i++) {
				if (is_exit_route(rv[i]))
					free(rv[i]);
				else
					rv[k++] = rv[i];
			}
			rn = k;
		}
		p->advertise_routes = rv;
		p->n_advertise_routes = rn;
		mp->set |= LAPI_PREF_ADVERTISE_ROUTES;
	}
	if (flag_given(flags, nflags, "exit-node")) {
		mp->set |= LAPI_PREF_EXIT_NODE_IP | LAPI_PREF_EXIT_NODE_ID;
		if (a->exit_node[0] != '\0') {
			char ip[INET6_ADDRSTRLEN + 8];
			bool self = false;

			if (st == NULL || resolve_host(st, a->exit_node, ip, sizeof ip,
			    &self, cause) != 0) {
				char *inner = *cause;

				*cause = cli_sprintf("invalid value \"%s\" for --exit-node: "
				    "must be IP or unique node name%s%s", a->exit_node,
				    inner ? ": " : "", inner ? inner : "");
				free(inner);
				return -EINVAL;
			}
			if (self) {
				*cause = strdup("cannot use this node as its own exit node");
				return -EINVAL;
			}
			p->exit_node_ip = strdup(ip);
		}
	}
	return 0;
}

/* Does building the prefs need GET prefs / GET status first? */
static bool
needs_prefs(const struct cli_flag *flags, size_t n)
{
	return flag_given(flags, n, "advertise-routes") !=
	    flag_given(flags, n, "advertise-exit-node");
}

static int
fetch_prefs(struct lapi_prefs *cur)
{
	struct lapi_response resp;
	char *cause = NULL;
	int ret;

	ret = cli_call("GET", LAPI_PREFIX "prefs", NULL, 0, 0, &resp);
	if (ret != CLI_EXIT_OK)
		return ret;
	if (lapi_prefs_parse(resp.body, resp.body_len, cur, &cause) != 0) {
		ret = cli_fail("cannot parse the prefs meshd sent: %s",
		    cause ? cause : "?");
		free(cause);
		lapi_response_clear(&resp);
		return ret;
	}
	lapi_response_clear(&resp);
	return CLI_EXIT_OK;
}

/* Fetches what cli_build_prefs needs and builds; CLI_EXIT_*. */
static int
prefs_from_flags(const struct cli_pref_args *a, const struct cli_flag *flags,
    size_t n, struct lapi_masked_prefs *mp)
{
	struct lapi_prefs cur;
	struct cli_status st;
	bool have_cur = false;
	char *cause = NULL;
	int ret;

	memset(&cur, 0, sizeof cur);
	memset(&st, 0, sizeof st);
	if (needs_prefs(flags, n)) {
		ret = fetch_prefs(&cur);
		if (ret != CLI_EXIT_OK)
			return ret;
		have_cur = true;
	}
	if (flag_given(flags, n, "exit-node") && a->exit_node[0] != '\0' &&
	    !is_ip(a->exit_node)) {
		ret = get_status(&st, true);
		if (ret != CLI_EXIT_OK) {
			lapi_prefs_clear(&cur);
			return ret;
		}
	}
	ret = cli_build_prefs(a, flags, n, have_cur ? &cur : NULL, &st, mp, &cause);
	lapi_prefs_clear(&cur);
	cli_status_free(&st);
	if (ret != 0) {
		lapi_prefs_clear(&mp->prefs);
		ret = cli_fail("%s", cause != NULL ? cause : "bad flags");
		free(cause);
		return ret;
	}
	return CLI_EXIT_OK;
}

/* What the up stream has shown so far. */
struct up_state {
	bool json;
	bool printed;
	bool done;		/* reached Running */
	bool failed;		/* ErrMessage */
	char last_url[2048];
	bool machine_auth_shown;
	FILE *out, *err;
};

static void
up_json(FILE *out, const char *auth_url, const char *state, const char *error,
    const char *indent)
{
	json_object *o = json_object_new_object();

	if (o == NULL)
		return;
	if (auth_url != NULL)
		json_object_object_add(o, "AuthURL", json_object_new_string(auth_url));
	if (state != NULL)
		json_object_object_add(o, "BackendState", json_object_new_string(state));
	if (error != NULL)
		json_object_object_add(o, "Error", json_object_new_string(error));
	json_pretty_rec(out, o, indent, 0);
	fputc('\n', out);
	fflush(out);
	json_object_put(o);
}

/* One Notify line of the up stream (up.go's watcher loop). */
static int
cli_up_event(void *arg, const char *line, size_t len)
{
	struct up_state *u = arg;
	json_object *n = json_parse_obj(line, len);
	const char *state, *url, *err;

	if (n == NULL)
		return 0;	/* not ours to judge: skip it */
	state = jstr(n, "State");
	url = jstr(n, "BrowseToURL");
	err = jstr(n, "ErrMessage");
	if (jget(n, "ErrMessage", json_type_string) != NULL) {
		if (u->json)
			up_json(u->out, NULL, NULL, err, "  ");
		fprintf(u->err, "backend error: %s\n", err);
		fflush(u->err);
		u->failed = true;
		json_object_put(n);
		return 1;
	}
	if (strcmp(state, "NeedsMachineAuth") == 0) {
		if (u->json) {
			up_json(u->out, NULL, "NeedsMachineAuth", NULL, "  ");
		} else if (url[0] != '\0' && strcmp(url, u->last_url) != 0) {
			snprintf(u->last_url, sizeof u->last_url, "%s", url);
			fprintf(u->err, "\nTo approve your machine, visit (as admin):"
			    "\n\n\t%s\n\n", url);
		} else if (url[0] == '\0' && !u->machine_auth_shown) {
			fprintf(u->err, "\nMachine is not yet approved by tailnet "
			    "admin.\n\n");
		}
		u->machine_auth_shown = true;
		u->printed = true;
		fflush(u->err);
		json_object_put(n);
		return 0;
	}
	if (strcmp(state, "Running") == 0) {
		if (u->json)
			up_json(u->out, NULL, "Running", NULL, "  ");
		else if (u->printed)
			fprintf(u->err, "Success.\n");
		fflush(u->err);
		u->done = true;
		json_object_put(n);
		return 1;
	}
	if (url[0] != '\0' && strcmp(url, u->last_url) != 0) {
		snprintf(u->last_url, sizeof u->last_url, "%s", url);
		u->printed = true;
		if (u->json)
			up_json(u->out, url, "NeedsLogin", NULL, "\t");
		else
			fprintf(u->err, "\nTo authenticate, visit:\n\n\t%s\n\n", url);
		fflush(u->err);
	}
	json_object_put(n);
	return 0;
}

static int
run_up(const struct cli_pref_args *a, const struct cli_flag *flags, size_t nflags,
    bool login)
{
	struct lapi_up_request up;
	struct up_state u = { .json = a->json, .out = cli_out, .err = cli_err };
	struct lapi_call call = { .method = "POST", .path = LAPI_PREFIX "up",
	    .on_line = cli_up_event, .arg = &u };
	struct lapi_response resp;
	char *body, *cause = NULL;
	int ret;

	memset(&up, 0, sizeof up);
	ret = prefs_from_flags(a, flags, nflags, &up.prefs);
	if (ret != CLI_EXIT_OK)
		return ret;
	/* up means "run": WantRunning, and no longer logged out. */
	up.prefs.prefs.want_running = true;
	up.prefs.set |= LAPI_PREF_WANT_RUNNING;
	if (a->auth_key != NULL && a->auth_key[0] != '\0' &&
	    read_auth_key(a->auth_key, &up.auth_key, &cause) != 0) {
		lapi_up_request_clear(&up);
		ret = cli_fail("%s", cause != NULL ? cause : "cannot read auth key");
		free(cause);
		return ret;
	}
	up.force_reauth = a->force_reauth || login;
	up.reset = a->reset;
	up.timeout_sec = (double)a->timeout_ns / 1e9;
	body = lapi_up_request_json(&up);
	lapi_up_request_clear(&up);
	if (body == NULL)
		return cli_fail("out of memory");
	call.body = body;
	call.body_len = strlen(body);
	call.timeout_ms = a->timeout_ns > 0 ?
	    (long)((a->timeout_ns + NS_PER_MS - 1) / NS_PER_MS) : 0;

	ret = lapi_client_call(cli_socket, &call, &resp, &cause);
	sodium_memzero(body, call.body_len);
	free(body);
	if (ret == -ECANCELED || (ret == 0 && (u.done || u.failed))) {
		free(cause);
		lapi_response_clear(&resp);
		return u.done ? CLI_EXIT_OK : CLI_EXIT_FAIL;
	}
	if (ret == -ETIMEDOUT) {
		free(cause);
		return cli_fail("timeout waiting for meshd to enter a Running state; "
		    "check health with \"meshctl status\"");
	}
	if (ret != 0) {
		ret = cli_fail("%s", cause != NULL ? cause : strerror(-ret));
		free(cause);
		return ret;
	}
	if (resp.status < 200 || resp.status >= 300) {
		char *msg = lapi_response_error(&resp);

		ret = cli_fail("%s", msg != NULL ? msg : "up failed");
		free(msg);
		lapi_response_clear(&resp);
		return ret;
	}
	lapi_response_clear(&resp);
	return cli_fail("meshd ended the up request before reaching Running");
}

#define PREF_FLAGS(a)							\
	{ "hostname", NULL, CLI_STR, &(a).hostname, false },		\
	{ "accept-routes", NULL, CLI_BOOL, &(a).accept_routes, false },	\
	{ "accept-dns", NULL, CLI_BOOL, &(a).accept_dns, false },	\
	{ "advertise-routes", NULL, CLI_STR, &(a).advertise_routes, false }, \
	{ "advertise-exit-node", NULL, CLI_BOOL, &(a).advertise_exit_node, false }, \
	{ "exit-node", NULL, CLI_STR, &(a).exit_node, false },		\
	{ "exit-node-allow-lan-access", NULL, CLI_BOOL, &(a).exit_node_allow_lan, \
	    false },							\
	{ "snat-subnet-routes", NULL, CLI_BOOL, &(a).snat, false },	\
	{ "shields-up", NULL, CLI_BOOL, &(a).shields_up, false },	\
	{ "ssh", NULL, CLI_BOOL, &(a).ssh, false },			\
	{ "netfilter-mode", NULL, CLI_STR, &(a).netfilter_mode, false }, \
	SOCKET_FLAG

static void
pref_args_default(struct cli_pref_args *a)
{
	memset(a, 0, sizeof *a);
	a->accept_dns = true;
	a->snat = true;
	a->login_server = "";
	a->auth_key = "";
	a->hostname = "";
	a->advertise_routes = "";
	a->advertise_tags = "";
	a->exit_node = "";
	a->netfilter_mode = "on";
}

static int
cmd_up_common(int argc, char **argv, bool login)
{
	struct cli_pref_args a;
	bool qr = false;
	struct cli_flag flags[] = {
		{ "login-server", NULL, CLI_STR, &a.login_server, false },
		{ "auth-key", "authkey", CLI_STR, &a.auth_key, false },
		{ "advertise-tags", NULL, CLI_STR, &a.advertise_tags, false },
		{ "timeout", NULL, CLI_DUR, &a.timeout_ns, false },
		/* Accepted so scripts run; no QR code is drawn. */
		{ "qr", NULL, CLI_BOOL, &qr, false },
		PREF_FLAGS(a),
		/* up only, last: login has none of them (tailscale's up.go). */
		{ "force-reauth", NULL, CLI_BOOL, &a.force_reauth, false },
		{ "reset", NULL, CLI_BOOL, &a.reset, false },
		{ "json", NULL, CLI_BOOL, &a.json, false },
	};
	size_t n = NFLAGS(flags) - (login ? 3 : 0);
	int nargs, ret;

	pref_args_default(&a);
	ret = parse_or_usage(flags, n, argc, argv, &nargs, login ?
	    "meshctl login [flags]" : "meshctl up [flags]");
	if (ret != CLI_EXIT_OK)
		return ret;
	if (nargs > 0) {
		fprintf(cli_err, "meshctl: too many non-flag arguments: \"%s\"\n",
		    argv[0]);
		return CLI_EXIT_USAGE;
	}
	return run_up(&a, flags, n, login);
}

static int
cmd_up(int argc, char **argv)
{
	return cmd_up_common(argc, argv, false);
}

static int
cmd_login(int argc, char **argv)
{
	return cmd_up_common(argc, argv, true);
}

static int
cmd_set(int argc, char **argv)
{
	struct cli_pref_args a;
	struct cli_flag flags[] = {
		PREF_FLAGS(a),
	};
	struct lapi_masked_prefs mp;
	struct lapi_response resp;
	char *body;
	int nargs, ret;

	pref_args_default(&a);
	ret = parse_or_usage(flags, NFLAGS(flags), argc, argv, &nargs,
	    "meshctl set [flags]");
	if (ret != CLI_EXIT_OK)
		return ret;
	if (nargs > 0) {
		fprintf(cli_err, "meshctl: too many non-flag arguments: \"%s\"\n",
		    argv[0]);
		return CLI_EXIT_USAGE;
	}
	ret = prefs_from_flags(&a, flags, NFLAGS(flags), &mp);
	if (ret != CLI_EXIT_OK)
		return ret;
	if (mp.set == 0) {
		lapi_prefs_clear(&mp.prefs);
		fprintf(cli_err, "meshctl: no flags specified\nusage: meshctl set "
		    "[flags]\n");
		return CLI_EXIT_USAGE;
	}
	body = lapi_masked_prefs_json(&mp);
	lapi_prefs_clear(&mp.prefs);
	if (body == NULL)
		return cli_fail("out of memory");
	ret = cli_call("PATCH", LAPI_PREFIX "prefs", body, strlen(body), 0, &resp);
	free(body);
	if (ret == CLI_EXIT_OK)
		lapi_response_clear(&resp);
	return ret;
}

/* --- down, logout ------------------------------------------------------- */

static int
cmd_down(int argc, char **argv)
{
	const char *reason = "", *risk = "";
	struct cli_flag flags[] = {
		{ "reason", NULL, CLI_STR, &reason, false },
		{ "accept-risk", NULL, CLI_STR, &risk, false },
		SOCKET_FLAG,
	};
	struct lapi_response resp;
	struct cli_status st;
	int nargs, ret;

	ret = parse_or_usage(flags, NFLAGS(flags), argc, argv, &nargs,
	    "meshctl down");
	if (ret != CLI_EXIT_OK)
		return ret;
	if (nargs > 0)
		return cli_fail("too many non-flag arguments: \"%s\"", argv[0]);
	ret = get_status(&st, false);
	if (ret != CLI_EXIT_OK)
		return ret;
	if (strcmp(st.backend_state, "Stopped") == 0) {
		fprintf(cli_err, "Tailscale was already stopped.\n");
		cli_status_free(&st);
		return CLI_EXIT_OK;
	}
	cli_status_free(&st);
	ret = cli_call("POST", LAPI_PREFIX "down", NULL, 0, 0, &resp);
	if (ret == CLI_EXIT_OK)
		lapi_response_clear(&resp);
	return ret;
}

static int
cmd_logout(int argc, char **argv)
{
	const char *reason = "";
	struct cli_flag flags[] = {
		{ "reason", NULL, CLI_STR, &reason, false },
		SOCKET_FLAG,
	};
	struct lapi_response resp;
	int nargs, ret;

	ret = parse_or_usage(flags, NFLAGS(flags), argc, argv, &nargs,
	    "meshctl logout");
	if (ret != CLI_EXIT_OK)
		return ret;
	if (nargs > 0)
		return cli_fail("too many non-flag arguments: \"%s\"", argv[0]);
	ret = cli_call("POST", LAPI_PREFIX "logout", NULL, 0, 0, &resp);
	if (ret == CLI_EXIT_OK)
		lapi_response_clear(&resp);
	return ret;
}

/* --- whois -------------------------------------------------------------- */

/* Go prints a []netip.Prefix as "[a b c]". */
static char *
go_list(const char *const *v, size_t n)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (f == NULL)
		return strdup("[]");
	fputc('[', f);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s%s", i ? " " : "", v[i]);
	fputc(']', f);
	fclose(f);
	return buf;
}

/* Prints one text/tabwriter block of "label:\tvalue" lines. */
static void
kv_block(FILE *out, const char *const *k, const char *const *v, size_t n)
{
	size_t w = 10;

	for (size_t i = 0; i < n; i++)
		if (utf8_width(k[i]) + 5 > w)
			w = utf8_width(k[i]) + 5;
	for (size_t i = 0; i < n; i++)
		fprintf(out, "%s%*s%s\n", k[i], (int)(w - utf8_width(k[i])), "", v[i]);
}

static int
cli_whois_render(const char *json, size_t len, FILE *out)
{
	json_object *w = json_parse_obj(json, len);
	json_object *node, *user, *caps;
	const char *k[5], *v[5];
	char *name, *addrs, *aips = NULL, *tags = NULL, id[32];
	const char **av, **tv;
	size_t an, tn, n = 0;

	if (w == NULL)
		return cli_fail("cannot parse the whois answer meshd sent");
	node = jget(w, "Node", json_type_object);
	user = jget(w, "UserProfile", json_type_object);
	name = dns_trim_suffix(jstr(node, "Name"), "");
	av = jstrv(node, "Addresses", &an);
	addrs = go_list(av, an);
	free(av);
	fputs("Machine:\n", out);
	k[n] = "  Name:"; v[n++] = name;
	k[n] = "  ID:"; v[n++] = jstr(node, "StableID");
	k[n] = "  Addresses:"; v[n++] = addrs;
	av = jstrv(node, "AllowedIPs", &an);
	if (an > 2) {
		aips = go_list(av + 2, an - 2);
		k[n] = "  AllowedIPs:"; v[n++] = aips;
	}
	free(av);
	tv = jstrv(node, "Tags", &tn);
	if (tn > 0) {
		size_t tl = 0;

		for (size_t i = 0; i < tn; i++)
			tl += strlen(tv[i]) + 2;
		tags = calloc(1, tl + 1);
		for (size_t i = 0; tags != NULL && i < tn; i++) {
			if (i > 0)
				strcat(tags, ", ");
			strcat(tags, tv[i]);
		}
		k[n] = "  Tags:"; v[n++] = tags != NULL ? tags : "";
		kv_block(out, k, v, n);
	} else {
		kv_block(out, k, v, n);
		fputs("User:\n", out);
		snprintf(id, sizeof id, "%lld", (long long)jint(user, "ID"));
		k[0] = "  Name:"; v[0] = jstr(user, "LoginName");
		k[1] = "  ID:"; v[1] = id;
		kv_block(out, k, v, 2);
	}
	free(tv);
	caps = jget(w, "CapMap", json_type_object);
	if (caps != NULL && json_object_object_length(caps) > 0) {
		fputs("Capabilities:\n", out);
		json_object_object_foreach(caps, cap, vals) {
			if (json_object_is_type(vals, json_type_array) &&
			    json_object_array_length(vals) > 0) {
				fprintf(out, "  - %s:\n      ", cap);
				json_pretty_rec(out, vals, "  ", 3);
				fputc('\n', out);
			} else {
				fprintf(out, "  - %s\n", cap);
			}
		}
	}
	free(name);
	free(addrs);
	free(aips);
	free(tags);
	json_object_put(w);
	return CLI_EXIT_OK;
}

static int
cmd_whois(int argc, char **argv)
{
	bool json = false;
	const char *proto = "";
	struct cli_flag flags[] = {
		{ "json", NULL, CLI_BOOL, &json, false },
		{ "proto", NULL, CLI_STR, &proto, false },
		SOCKET_FLAG,
	};
	struct lapi_response resp;
	char path[512], *esc, *pesc;
	int nargs, ret;

	ret = parse_or_usage(flags, NFLAGS(flags), argc, argv, &nargs,
	    "meshctl whois [--json] ip[:port]");
	if (ret != CLI_EXIT_OK)
		return ret;
	if (nargs > 1)
		return cli_fail("too many arguments, expected at most one peer");
	if (nargs == 0)
		return cli_fail("missing argument, expected one peer");
	esc = lapi_query_escape(argv[0]);
	pesc = lapi_query_escape(proto);
	if (esc == NULL || pesc == NULL) {
		free(esc);
		free(pesc);
		return cli_fail("out of memory");
	}
	snprintf(path, sizeof path, LAPI_PREFIX "whois?addr=%s%s%s", esc,
	    proto[0] ? "&proto=" : "", pesc);
	free(esc);
	free(pesc);
	ret = cli_call("GET", path, NULL, 0, 0, &resp);
	if (ret != CLI_EXIT_OK)
		return ret;
	if (json)
		print_pretty(cli_out, resp.body, resp.body_len, "  ");
	else
		ret = cli_whois_render(resp.body, resp.body_len, cli_out);
	lapi_response_clear(&resp);
	return ret;
}

/* --- netcheck ----------------------------------------------------------- */

struct region_row {
	const char *id;
	const char *code, *name;
	int64_t lat;		/* -1: none */
};

static int
region_cmp(const void *pa, const void *pb)
{
	const struct region_row *a = pa, *b = pb;

	if ((a->lat < 0) != (b->lat < 0))
		return a->lat < 0 ? 1 : -1;
	if (a->lat != b->lat)
		return a->lat < b->lat ? -1 : 1;
	return atoi(a->id) - atoi(b->id);
}

static const char *
yes_no(json_object *o, const char *k)
{
	return jbool(o, k) ? "true" : "false";
}

/*
 * Time.Local().Format("2006-01-02 15:04:05.999999999Z07:00"): nanoseconds
 * without trailing zeros, "Z" for UTC.  Go's zero time, which "Now" never
 * is from meshd, prints as Go prints it in UTC.
 */
static void
go_local_time(FILE *out, struct lapi_time t)
{
	struct tm tm;
	char ts[64], frac[16] = "";
	time_t sec = (time_t)t.sec;

	if (t.sec == 0 && t.nsec == 0) {
		fputs("\t* Time: 0001-01-01 00:00:00Z\n", out);
		return;
	}
	localtime_r(&sec, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", &tm);
	if (t.nsec > 0 && t.nsec < NS_PER_SEC) {
		size_t n;

		snprintf(frac, sizeof frac, ".%09d", (int)t.nsec);
		for (n = strlen(frac); frac[n - 1] == '0'; n--)
			frac[n - 1] = '\0';
	}
	fprintf(out, "\t* Time: %s%s", ts, frac);
	if (tm.tm_gmtoff == 0)
		fputs("Z\n", out);
	else
		fprintf(out, "%c%02d:%02d\n", tm.tm_gmtoff < 0 ? '-' : '+',
		    (int)(labs(tm.tm_gmtoff) / 3600 % 100),
		    (int)(labs(tm.tm_gmtoff) % 3600 / 60));
}

/* printNetCheckReport's text; verbose adds each region's "derpN, ". */
static int
netcheck_render(const char *json, size_t len, bool verbose, FILE *out)
{
	json_object *root = json_parse_obj(json, len);
	json_object *r, *dm, *regions, *lat;
	const char *v4, *v6;
	struct lapi_time now;
	struct region_row *rows = NULL;
	size_t nrows = 0;
	int64_t pref;

	if (root == NULL)
		return cli_fail("cannot parse the netcheck report meshd sent");
	r = jget(root, "Report", json_type_object);
	dm = jget(root, "DERPMap", json_type_object);
	regions = jget(dm, "Regions", json_type_object);
	lat = jget(r, "RegionLatency", json_type_object);

	fputs("\nReport:\n", out);
	if (lapi_time_parse(jstr(r, "Now"), &now) != 0)
		now = (struct lapi_time){ 0, 0 };
	go_local_time(out, now);
	fprintf(out, "\t* UDP: %s\n", yes_no(r, "UDP"));
	v4 = jstr(r, "GlobalV4");
	v6 = jstr(r, "GlobalV6");
	if (v4[0] != '\0')
		fprintf(out, "\t* IPv4: yes, %s\n", v4);
	else
		fputs("\t* IPv4: (no addr found)\n", out);
	if (v6[0] != '\0')
		fprintf(out, "\t* IPv6: yes, %s\n", v6);
	else if (jbool(r, "IPv6"))
		fputs("\t* IPv6: (no addr found)\n", out);
	else if (jbool(r, "OSHasIPv6"))
		fputs("\t* IPv6: no, but OS has support\n", out);
	else
		fputs("\t* IPv6: no, unavailable in OS\n", out);
	fprintf(out, "\t* MappingVariesByDestIP: %s\n",
	    jget(r, "MappingVariesByDestIP", json_type_boolean) == NULL ? "" :
	    yes_no(r, "MappingVariesByDestIP"));
	{
		bool checked = jget(r, "UPnP", json_type_boolean) != NULL ||
		    jget(r, "PMP", json_type_boolean) != NULL ||
		    jget(r, "PCP", json_type_boolean) != NULL;
		bool first = true;

		fputs("\t* PortMapping: ", out);
		if (!checked)
			fputs("not checked", out);
		if (jbool(r, "UPnP")) {
			fputs("UPnP", out);
			first = false;
		}
		if (jbool(r, "PMP")) {
			fputs(first ? "NAT-PMP" : ", NAT-PMP", out);
			first = false;
		}
		if (jbool(r, "PCP"))
			fputs(first ? "PCP" : ", PCP", out);
		fputc('\n', out);
	}
	if (lat == NULL || json_object_object_length(lat) == 0) {
		fputs("\t* Nearest DERP: unknown (no response to latency probes)\n", out);
		json_object_put(root);
		return CLI_EXIT_OK;
	}
	pref = jint(r, "PreferredDERP");
	if (pref != 0) {
		char id[24];
		json_object *pr;

		snprintf(id, sizeof id, "%lld", (long long)pref);
		pr = jget(regions, id, json_type_object);
		if (pr != NULL)
			fprintf(out, "\t* Nearest DERP: %s\n", jstr(pr, "RegionName"));
		else
			fprintf(out, "\t* Nearest DERP: %lld (region not found in map)\n",
			    (long long)pref);
	} else {
		fputs("\t* Nearest DERP: [none]\n", out);
	}
	fputs("\t* DERP latency:\n", out);
	if (regions != NULL && json_object_object_length(regions) > 0)
		rows = calloc((size_t)json_object_object_length(regions), sizeof *rows);
	if (rows != NULL) {
		json_object_object_foreach(regions, id, ro) {
			json_object *l;

			rows[nrows].id = id;
			rows[nrows].code = jstr(ro, "RegionCode");
			rows[nrows].name = jstr(ro, "RegionName");
			rows[nrows].lat = json_object_object_get_ex(lat, id, &l) &&
			    json_object_is_type(l, json_type_int) ?
			    json_object_get_int64(l) : -1;
			nrows++;
		}
		qsort(rows, nrows, sizeof *rows, region_cmp);
	}
	for (size_t i = 0; i < nrows; i++) {
		char l[48] = "";

		if (rows[i].lat >= 0)
			go_duration(go_round(rows[i].lat, NS_PER_MS / 10), l, sizeof l);
		if (verbose)
			fprintf(out, "\t\t- %3s: %-7s (derp%s, %s)\n", rows[i].code, l,
			    rows[i].id, rows[i].name);
		else
			fprintf(out, "\t\t- %3s: %-7s (%s)\n", rows[i].code, l,
			    rows[i].name);
	}
	free(rows);
	json_object_put(root);
	return CLI_EXIT_OK;
}

/* The plain text form, as the tests and the local API fuzzer drive it. */
static int __attribute__((unused))
cli_netcheck_render(const char *json, size_t len, FILE *out)
{
	return netcheck_render(json, len, false, out);
}

static int
cmd_netcheck(int argc, char **argv)
{
	const char *format = "";
	int64_t every = 0;
	bool verbose = false;
	struct cli_flag flags[] = {
		{ "format", NULL, CLI_STR, &format, false },
		{ "every", NULL, CLI_DUR, &every, false },
		{ "verbose", NULL, CLI_BOOL, &verbose, false },
		SOCKET_FLAG,
	};
	int nargs, ret;

	ret = parse_or_usage(flags, NFLAGS(flags), argc, argv, &nargs,
	    "meshctl netcheck [--format json|json-line] [--every D]");
	if (ret != CLI_EXIT_OK)
		return ret;
	if (strcmp(format, "") != 0 && strcmp(format, "json") != 0 &&
	    strcmp(format, "json-line") != 0)
		return cli_fail("unknown output format \"%s\"", format);
	if (strncmp(format, "json", 4) == 0)
		fputs("# Warning: this JSON format is not yet considered a stable "
		    "interface\n", cli_err);
	for (;;) {
		struct lapi_response resp;
		json_object *root, *rep;

		ret = cli_call("GET", LAPI_PREFIX "netcheck", NULL, 0, 0, &resp);
		if (ret != CLI_EXIT_OK)
			return ret;
		if (format[0] == '\0') {
			ret = netcheck_render(resp.body, resp.body_len, verbose, cli_out);
		} else {
			root = json_parse_obj(resp.body, resp.body_len);
			rep = jget(root, "Report", json_type_object);
			if (rep == NULL) {
				ret = cli_fail("cannot parse the netcheck report meshd sent");
			} else if (strcmp(format, "json") == 0) {
				json_pretty_rec(cli_out, rep, "\t", 0);
				fputc('\n', cli_out);
			} else {
				fprintf(cli_out, "%s\n", json_object_to_json_string_ext(rep,
				    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
			}
			json_object_put(root);
		}
		lapi_response_clear(&resp);
		fflush(cli_out);
		if (ret != CLI_EXIT_OK || every <= 0)
			return ret;
		sleep_ns(every);
	}
}

/* --- dns status --------------------------------------------------------- */

static void
print_resolvers(FILE *out, json_object *a, const char *prefix, bool numbered)
{
	size_t n = a != NULL ? json_object_array_length(a) : 0;

	for (size_t i = 0; i < n; i++) {
		json_object *r = json_object_array_get_idx(a, i);

		if (numbered)
			fprintf(out, "  %zu: %s\n", i, jstr(r, "Addr"));
		else
			fprintf(out, "%s%s\n", prefix, jstr(r, "Addr"));
	}
}

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* formatDNSStatusText; `tailscale` in advice becomes `meshctl`. */
static int
cli_dns_status_render(const char *json, size_t len, bool all, FILE *out)
{
	json_object *d = json_parse_obj(json, len);
	json_object *tn, *res, *routes, *sys, *recs;
	const char **v;
	size_t n;

	if (d == NULL)
		return cli_fail("cannot parse the DNS status meshd sent");
	fputs("\n=== 'Use Tailscale DNS' status ===\n\n", out);
	if (jbool(d, "TailscaleDNS"))
		fputs("Tailscale DNS: enabled.\n\nTailscale is configured to handle "
		    "DNS queries on this device.\nRun 'meshctl set --accept-dns=false' "
		    "to revert to your system default DNS resolver.\n", out);
	else
		fputs("Tailscale DNS: disabled.\n\n(Run 'meshctl set "
		    "--accept-dns=true' to start sending DNS queries to the Tailscale "
		    "DNS resolver)\n", out);
	fputs("\n=== MagicDNS configuration ===\n\n", out);
	fputs("This is the DNS configuration provided by the coordination server "
	    "to this device.\n\n", out);
	tn = jget(d, "CurrentTailnet", json_type_object);
	if (tn == NULL) {
		fputs("No tailnet information available; make sure you're logged in "
		    "to a tailnet.\n", out);
		json_object_put(d);
		return CLI_EXIT_OK;
	}
	if (jbool(tn, "MagicDNSEnabled"))
		fprintf(out, "MagicDNS: enabled tailnet-wide (suffix = %s)\n\nOther "
		    "devices in your tailnet can reach this device at %s\n",
		    jstr(tn, "MagicDNSSuffix"), jstr(tn, "SelfDNSName"));
	else
		fputs("MagicDNS: disabled tailnet-wide.\n", out);
	fputs("\nResolvers (in preference order):\n", out);
	res = jget(d, "Resolvers", json_type_array);
	if (res == NULL || json_object_array_length(res) == 0)
		fputs("  (no resolvers configured, system default will be used: see "
		    "'System DNS configuration' below)\n", out);
	print_resolvers(out, res, "  - ", false);
	fputs("\nSplit DNS Routes:\n", out);
	routes = jget(d, "SplitDNSRoutes", json_type_object);
	if (routes == NULL || json_object_object_length(routes) == 0) {
		fputs("  (no routes configured: split DNS disabled)\n", out);
	} else {
		size_t nk = 0;
		const char **keys = calloc((size_t)json_object_object_length(routes),
		    sizeof *keys);

		json_object_object_foreach(routes, k, rv) {
			(void)rv;
			if (keys != NULL)
				keys[nk++] = k;
		}
		if (keys != NULL)
			qsort(keys, nk, sizeof *keys, str_cmp);
		for (size_t i = 0; i < nk; i++) {
			json_object *a = jget(routes, keys[i], json_type_array);
			size_t an = a != NULL ? json_object_array_length(a) : 0;

			for (size_t j = 0; j < an; j++)
				fprintf(out, "  - %-30s -> %s\n", keys[i],
				    jstr(json_object_array_get_idx(a, j), "Addr"));
		}
		free(keys);
	}
	fputc('\n', out);
	if (all) {
		fputs("Fallback Resolvers:\n", out);
		res = jget(d, "FallbackResolvers", json_type_array);
		if (res == NULL || json_object_array_length(res) == 0)
			fputs("  (no fallback resolvers configured)\n", out);
		print_resolvers(out, res, "", true);
		fputc('\n', out);
	}
	fputs("Search Domains:\n", out);
	v = jstrv(d, "SearchDomains", &n);
	if (n == 0)
		fputs("  (no search domains configured)\n", out);
	else
		qsort(v, n, sizeof *v, str_cmp);
	for (size_t i = 0; i < n; i++)
		fprintf(out, "  - %s\n", v[i]);
	free(v);
	fputc('\n', out);
	if (all) {
		static const struct {
			const char *key, *title, *none;
		} lists[] = {
			{ "Nameservers", "Nameservers IP Addresses:",
			    "  (none were provided)" },
			{ "CertDomains", "Certificate Domains:",
			    "  (no certificate domains are configured)" },
		};

		for (size_t l = 0; l < 2; l++) {
			fprintf(out, "%s\n", lists[l].title);
			v = jstrv(d, lists[l].key, &n);
			if (n == 0)
				fprintf(out, "%s\n", lists[l].none);
			for (size_t i = 0; i < n; i++)
				fprintf(out, "  - %s\n", v[i]);
			free(v);
			fputc('\n', out);
		}
		fputs("Additional DNS Records:\n", out);
		recs = jget(d, "ExtraRecords", json_type_array);
		if (recs == NULL || json_object_array_length(recs) == 0)
			fputs("  (no extra records are configured)\n", out);
		for (size_t i = 0; recs != NULL && i < json_object_array_length(recs);
		    i++) {
			json_object *er = json_object_array_get_idx(recs, i);

			if (jstr(er, "Type")[0] == '\0')
				fprintf(out, "  - %-50s -> %s\n", jstr(er, "Name"),
				    jstr(er, "Value"));
			else
				fprintf(out, "  - [%s] %-50s -> %s\n", jstr(er, "Type"),
				    jstr(er, "Name"), jstr(er, "Value"));
		}
		fputs("\nFiltered suffixes when forwarding DNS queries as an exit "
		    "node:\n", out);
		v = jstrv(d, "ExitNodeFilteredSet", &n);
		if (n == 0)
			fputs("  (no suffixes are filtered)\n", out);
		for (size_t i = 0; i < n; i++)
			fprintf(out, "  - %s\n", v[i]);
		free(v);
		fputc('\n', out);
	}
	fputs("=== System DNS configuration ===\n\n", out);
	fputs("This is the DNS configuration that Tailscale believes your "
	    "operating system is using.\nTailscale may use this configuration if "
	    "'Override Local DNS' is disabled in the admin console,\nor if no "
	    "resolvers are provided by the coordination server.\n\n", out);
	sys = jget(d, "SystemDNS", json_type_object);
	if (jstr(d, "SystemDNSError")[0] != '\0') {
		const char *e = jstr(d, "SystemDNSError");

		if (strstr(e, "not supported") != NULL)
			fputs("  (reading the system DNS configuration is not supported "
			    "on this platform)\n", out);
		else
			fprintf(out, "  (failed to read system DNS configuration: %s)\n", e);
	} else if (sys == NULL) {
		fputs("  (no OS DNS configuration available)\n", out);
	} else {
		static const struct {
			const char *key, *title, *none;
		} lists[] = {
			{ "Nameservers", "Nameservers:", "  (no nameservers found, DNS "
			    "queries might fail\nunless the coordination server is "
			    "providing a nameserver)" },
			{ "SearchDomains", "Search domains:",
			    "  (no search domains found)" },
			{ "MatchDomains", "Match domains:",
			    "  (no match domains found)" },
		};

		for (size_t l = 0; l < 3; l++) {
			fprintf(out, "%s\n", lists[l].title);
			v = jstrv(sys, lists[l].key, &n);
			if (n == 0)
				fprintf(out, "%s\n", lists[l].none);
			for (size_t i = 0; i < n; i++)
				fprintf(out, "  - %s\n", v[i]);
			free(v);
			fputc('\n', out);
		}
	}
	json_object_put(d);
	return CLI_EXIT_OK;
}

static int
cmd_dns(int argc, char **argv)
{
	bool all = false, json = false;
	struct cli_flag flags[] = {
		{ "all", NULL, CLI_BOOL, &all, false },
		{ "json", NULL, CLI_BOOL, &json, false },
		SOCKET_FLAG,
	};
	struct lapi_response resp;
	int nargs, ret;

	if (argc < 1 || strcmp(argv[0], "status") != 0) {
		fprintf(cli_err, "usage: meshctl dns status [--all] [--json]\n");
		return CLI_EXIT_USAGE;
	}
	ret = parse_or_usage(flags, NFLAGS(flags), argc - 1, argv + 1, &nargs,
	    "meshctl dns status [--all] [--json]");
	if (ret != CLI_EXIT_OK)
		return ret;
	if (nargs > 0)
		return cli_fail("too many arguments");
	ret = cli_call("GET", LAPI_PREFIX "dns-status", NULL, 0, 0, &resp);
	if (ret != CLI_EXIT_OK)
		return ret;
	if (json)
		print_pretty(cli_out, resp.body, resp.body_len, "  ");
	else
		ret = cli_dns_status_render(resp.body, resp.body_len, all, cli_out);
	lapi_response_clear(&resp);
	return ret;
}

/* --- version, metrics --------------------------------------------------- */

static int
cmd_version(int argc, char **argv)
{
	bool daemon = false, json = false;
	struct cli_flag flags[] = {
		{ "daemon", NULL, CLI_BOOL, &daemon, false },
		{ "json", NULL, CLI_BOOL, &json, false },
		SOCKET_FLAG,
	};
	struct lapi_call call = { .method = "GET", .path = LAPI_PREFIX "version",
	    .timeout_ms = 2000, .connect_timeout_ms = 1000 };
	struct lapi_response resp;
	char *cause = NULL, dver[64] = "";
	int nargs, ret;

	ret = parse_or_usage(flags, NFLAGS(flags), argc, argv, &nargs,
	    "meshctl version [--daemon] [--json]");
	if (ret != CLI_EXIT_OK)
		return ret;
	if (nargs > 0)
		return cli_fail("too many non-flag arguments: \"%s\"", argv[0]);
	/*
	 * The daemon's version if it answers quickly; `version` itself must
	 * succeed while meshd is down or starting (the harness polls it).
	 */
	ret = lapi_client_call(cli_socket, &call, &resp, &cause);
	if (ret == 0 && resp.status == 200 && resp.daemon_version[0] != '\0')
		snprintf(dver, sizeof dver, "%s", resp.daemon_version);
	if (ret == 0)
		lapi_response_clear(&resp);
	if (daemon && dver[0] == '\0') {
		ret = cli_fail("%s", cause != NULL ? cause : "meshd did not answer");
		free(cause);
		return ret;
	}
	free(cause);
	if (json) {
		json_object *o = json_object_new_object();

		if (o != NULL) {
			json_object_object_add(o, "majorMinorPatch",
			    json_object_new_string(MESHD_VERSION));
			json_object_object_add(o, "short",
			    json_object_new_string(MESHD_VERSION));
			json_object_object_add(o, "long",
			    json_object_new_string(MESHD_VERSION));
			if (dver[0] != '\0')
				json_object_object_add(o, "daemonLong",
				    json_object_new_string(dver));
			json_pretty_rec(cli_out, o, "\t", 0);
			fputc('\n', cli_out);
			json_object_put(o);
		}
		return CLI_EXIT_OK;
	}
	if (daemon) {
		fprintf(cli_out, "Client: %s\nDaemon: %s\n", MESHD_VERSION, dver);
		return CLI_EXIT_OK;
	}
	fprintf(cli_out, "%s\n", MESHD_VERSION);
	if (dver[0] != '\0')
		fprintf(cli_out, "  daemon: %s\n", dver);
	return CLI_EXIT_OK;
}

static int
cmd_metrics(int argc, char **argv)
{
	struct cli_flag flags[] = {
		SOCKET_FLAG,
	};
	struct lapi_response resp;
	int nargs, ret;

	/* `tailscale metrics print` spelling works too. */
	if (argc > 0 && strcmp(argv[0], "print") == 0) {
		argc--;
		argv++;
	}
	ret = parse_or_usage(flags, NFLAGS(flags), argc, argv, &nargs,
	    "meshctl metrics [print]");
	if (ret != CLI_EXIT_OK)
		return ret;
	ret = cli_call("GET", LAPI_PREFIX "metrics", NULL, 0, 0, &resp);
	if (ret != CLI_EXIT_OK)
		return ret;
	if (resp.body != NULL)
		fwrite(resp.body, 1, resp.body_len, cli_out);
	lapi_response_clear(&resp);
	return CLI_EXIT_OK;
}

/* ===================================================================== */
/* main                                                                   */
/* ===================================================================== */

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
} commands[] = {
	{ "up", cmd_up, "Connect to the tailnet, logging in if needed" },
	{ "down", cmd_down, "Disconnect from the tailnet" },
	{ "set", cmd_set, "Change specified preferences" },
	{ "login", cmd_login, "Log in to a tailnet" },
	{ "logout", cmd_logout, "Disconnect from the tailnet and expire the login" },
	{ "status", cmd_status, "Show the state of meshd and its connections" },
	{ "ip", cmd_ip, "Show the node's (or a peer's) tailnet IP addresses" },
	{ "ping", cmd_ping, "Ping a host at the tailnet layer, see how it routed" },
	{ "netcheck", cmd_netcheck, "Print an analysis of local network conditions" },
	{ "whois", cmd_whois, "Show the machine and user of a tailnet IP" },
	{ "dns", cmd_dns, "Diagnose the DNS configuration (dns status)" },
	{ "version", cmd_version, "Print the meshctl (and meshd) version" },
	{ "metrics", cmd_metrics, "Print meshd's metrics (Prometheus text)" },
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: meshctl [--socket PATH] <command> [flags] [args]\n\n"
	    "commands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "\nThe socket defaults to %s.\n", LAPI_DEFAULT_SOCKET);
}

static int
cli_main(int argc, char **argv)
{
	int i = 1;

	if (cli_out == NULL)
		cli_out = stdout;
	if (cli_err == NULL)
		cli_err = stderr;
	/* Global flags come before the command. */
	while (i < argc && argv[i][0] == '-') {
		const char *a = argv[i] + 1 + (argv[i][1] == '-');

		if (strcmp(a, "socket") == 0 && i + 1 < argc) {
			cli_socket = argv[i + 1];
			i += 2;
		} else if (strncmp(a, "socket=", 7) == 0) {
			cli_socket = a + 7;
			i++;
		} else if (strcmp(a, "h") == 0 || strcmp(a, "help") == 0) {
			usage(cli_out);
			return CLI_EXIT_OK;
		} else if (strcmp(a, "version") == 0) {
			fprintf(cli_out, "%s\n", MESHD_VERSION);
			return CLI_EXIT_OK;
		} else {
			fprintf(cli_err, "meshctl: flag provided but not defined: %s\n",
			    argv[i]);
			usage(cli_err);
			return CLI_EXIT_USAGE;
		}
	}
	if (i >= argc) {
		usage(cli_err);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(argv[i], "help") == 0) {
		usage(cli_out);
		return CLI_EXIT_OK;
	}
	for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++)
		if (strcmp(argv[i], commands[c].name) == 0)
			return commands[c].fn(argc - i - 1, argv + i + 1);
	fprintf(cli_err, "meshctl: unknown subcommand: %s\n", argv[i]);
	usage(cli_err);
	return CLI_EXIT_USAGE;
}

#ifndef MESHCTL_NO_MAIN
int
main(int argc, char **argv)
{
	int ret = cli_main(argc, argv);

	if (fflush(stdout) != 0 && ret == CLI_EXIT_OK)
		ret = CLI_EXIT_FAIL;
	return ret;
}
#endif

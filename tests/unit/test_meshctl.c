// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * meshctl: the renderers against status/ping/whois/netcheck/dns fixtures
 * (tailscale's words and column layout), Go-style flag and duration
 * parsing, auth keys from files, flags to prefs, `ip` selection, the `up`
 * event stream; the daemon's builders of PingResult, netcheck reports and
 * per-peer path status (daemon_api.h) from a netmap and the data
 * plane's answers, through meshctl's renderers; then whole commands
 * (cli_main) against a fake meshd on a temporary socket, served by the
 * real local API server on a loop thread and answering pings and netcheck
 * with those builders: `up` printing the login URL before it finishes,
 * `logout` then `status` printing "Logged out." and exiting 1, `ip -4`,
 * `ping` (direct, DERP, local, timeouts, expired keys, until-direct),
 * `netcheck` in its three formats, `set`, and a meshd that is not there.
 */
#define MESHCTL_NO_MAIN
#include "agent/cli/meshctl.c"

#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <event2/event.h>

#include "agent/control/mapresp.h"
#include "agent/control/netmap.h"
#include "agent/engine.h"
#include "agent/daemon_api.h"
#include "agent/magicsock/netcheck.h"

#define NOW 1767225600		/* 2026-01-01T00:00:00Z */

/* --- capture ------------------------------------------------------------ */

struct capture {
	char *out, *err;
	size_t out_len, err_len;
	FILE *fo, *fe;
};

static void
capture_start(struct capture *c)
{
	memset(c, 0, sizeof *c);
	c->fo = open_memstream(&c->out, &c->out_len);
	c->fe = open_memstream(&c->err, &c->err_len);
	assert_non_null(c->fo);
	assert_non_null(c->fe);
	cli_out = c->fo;
	cli_err = c->fe;
}

static void
capture_end(struct capture *c)
{
	fclose(c->fo);
	fclose(c->fe);
	cli_out = NULL;
	cli_err = NULL;
}

static void
capture_free(struct capture *c)
{
	free(c->out);
	free(c->err);
}

/* --- status rendering --------------------------------------------------- */

static const char status_running[] =
	"{\"Version\":\"0.1.0\",\"BackendState\":\"Running\","
	"\"TailscaleIPs\":[\"100.64.0.1\",\"fd7a:115c:a1e0::1\"],"
	"\"MagicDNSSuffix\":\"ts.test\","
	"\"Self\":{\"ID\":\"1\",\"PublicKey\":\"nodekey:01\",\"HostName\":\"agent1\","
	"\"DNSName\":\"agent1.ts.test.\",\"OS\":\"linux\",\"UserID\":1,"
	"\"TailscaleIPs\":[\"100.64.0.1\",\"fd7a:115c:a1e0::1\"],\"Online\":true},"
	"\"Health\":[],"
	"\"Peer\":{"
	/* out of order on purpose: the renderer sorts by DNS name */
	"\"nodekey:05\":{\"ID\":\"5\",\"PublicKey\":\"nodekey:05\",\"HostName\":\"rtr1\","
	"\"DNSName\":\"rtr1.ts.test.\",\"OS\":\"linux\",\"UserID\":2,"
	"\"TailscaleIPs\":[\"100.64.0.5\"],\"Online\":true,\"ExitNodeOption\":true},"
	"\"nodekey:02\":{\"ID\":\"2\",\"PublicKey\":\"nodekey:02\",\"HostName\":\"peer1\","
	"\"DNSName\":\"peer1.ts.test.\",\"OS\":\"linux\",\"UserID\":2,"
	"\"TailscaleIPs\":[\"100.64.0.2\",\"fd7a:115c:a1e0::2\"],\"Online\":true,"
	"\"Active\":true,\"CurAddr\":\"10.0.2.2:41641\",\"Relay\":\"headscale\","
	"\"TxBytes\":100,\"RxBytes\":200},"
	"\"nodekey:04\":{\"ID\":\"4\",\"PublicKey\":\"nodekey:04\",\"HostName\":\"peer3\","
	"\"DNSName\":\"peer3.ts.test.\",\"OS\":\"linux\",\"UserID\":2,"
	"\"TailscaleIPs\":[\"100.64.0.4\"],\"Online\":true,\"Active\":true,"
	"\"CurAddr\":\"\",\"Relay\":\"headscale\"},"
	"\"nodekey:03\":{\"ID\":\"3\",\"PublicKey\":\"nodekey:03\",\"HostName\":\"peer2\","
	"\"DNSName\":\"peer2.ts.test.\",\"OS\":\"linux\",\"UserID\":2,"
	"\"TailscaleIPs\":[\"100.64.0.3\"],\"Online\":false,"
	"\"LastSeen\":\"2025-12-31T23:55:00Z\"}"
	"},"
	"\"User\":{\"1\":{\"ID\":1,\"LoginName\":\"user1@test.no\"},"
	"\"2\":{\"ID\":2,\"LoginName\":\"user2@test.no\"}}}";

/* One tabwriter row: each cell padded to its column's width. */
static void
row(char *buf, size_t len, const char *const cells[5], const int w[5])
{
	size_t n = strlen(buf);

	for (int i = 0; i < 5; i++)
		n += (size_t)snprintf(buf + n, len - n, "%-*s", w[i], cells[i]);
	snprintf(buf + n, len - n, "\n");
}

static int
render(const char *json, const struct cli_status_opts *o, char **out)
{
	struct cli_status st;
	size_t len = 0;
	FILE *f = open_memstream(out, &len);
	int ret;

	assert_int_equal(cli_status_parse(json, strlen(json), &st), 0);
	ret = cli_status_render(&st, o, f, NOW);
	fclose(f);
	cli_status_free(&st);
	return ret;
}

static const struct cli_status_opts all_rows = { .self = true, .peers = true };

static void
test_status_table(void **state)
{
	/* Widths: longest cell + 2 (tabwriter padding), the last column too. */
	static const int w[5] = { 12, 8, 8, 7, 46 };
	static const char *const rows[][5] = {
		{ "100.64.0.1", "agent1", "user1@", "linux", "-" },
		{ "100.64.0.2", "peer1", "user2@", "linux",
		    "active; direct 10.0.2.2:41641, tx 100 rx 200" },
		{ "100.64.0.3", "peer2", "user2@", "linux", "offline, last seen 5m ago" },
		{ "100.64.0.4", "peer3", "user2@", "linux", "active; relay \"headscale\"" },
		{ "100.64.0.5", "rtr1", "user2@", "linux", "idle; offers exit node" },
	};
	char want[2048] = "", *out;

	(void)state;
	for (size_t i = 0; i < 5; i++)
		row(want, sizeof want, rows[i], w);
	assert_int_equal(render(status_running, &all_rows, &out), CLI_EXIT_OK);
	assert_string_equal(out, want);
	free(out);
}

static void
test_status_filters(void **state)
{
	struct cli_status_opts o = { .self = true, .peers = true, .active = true };
	char *out;

	(void)state;
	assert_int_equal(render(status_running, &o, &out), CLI_EXIT_OK);
	assert_non_null(strstr(out, "agent1"));	/* self is always shown */
	assert_non_null(strstr(out, "peer1"));
	assert_non_null(strstr(out, "peer3"));
	assert_null(strstr(out, "peer2"));
	assert_null(strstr(out, "rtr1"));
	free(out);

	o = (struct cli_status_opts){ .self = false, .peers = true };
	assert_int_equal(render(status_running, &o, &out), CLI_EXIT_OK);
	assert_null(strstr(out, "agent1"));
	assert_true(strncmp(out, "100.64.0.2  peer1", 17) == 0);
	free(out);

	o = (struct cli_status_opts){ .self = true, .peers = false, .header = true };
	assert_int_equal(render(status_running, &o, &out), CLI_EXIT_OK);
	assert_string_equal(out,
	    "IP          Hostname  Owner   OS     Status  \n"
	    "--          --------  -----   --     ------  \n"
	    "100.64.0.1  agent1    user1@  linux  -       \n");
	free(out);
}

static void
test_status_health_and_names(void **state)
{
	static const char json[] =
	    "{\"BackendState\":\"Running\",\"MagicDNSSuffix\":\"ts.test\","
	    "\"Self\":{\"HostName\":\"My Box.local\",\"DNSName\":\"\",\"OS\":\"linux\","
	    "\"UserID\":0,\"TailscaleIPs\":[\"100.64.0.9\"],\"Online\":true},"
	    "\"Peer\":{\"nodekey:aa\":{\"HostName\":\"x\",\"DNSName\":\"other.example.\","
	    "\"UserID\":77,\"TailscaleIPs\":[],\"Online\":true,\"TxBytes\":5},"
	    "\"nodekey:bb\":{\"HostName\":\"gone\",\"DNSName\":\"gone.ts.test.\","
	    "\"UserID\":1,\"TailscaleIPs\":[\"100.64.0.8\"],\"Online\":false,"
	    "\"ExitNode\":true,\"LastSeen\":\"2025-12-29T00:00:00Z\"}},"
	    "\"User\":{\"1\":{\"LoginName\":\"admin\"}},"
	    "\"Health\":[\"not connected to home DERP region 999\",\"second\"]}";
	char *out;

	(void)state;
	assert_int_equal(render(json, &all_rows, &out), CLI_EXIT_OK);
	/* No DNS name: the sanitised hostname, quoted; no user: "-". */
	assert_non_null(strstr(out, "100.64.0.9  (\"my-box\")"));
	assert_non_null(strstr(out, "  -  "));
	/* Outside the MagicDNS suffix: the whole name; unknown user: its ID. */
	assert_non_null(strstr(out, "other.example"));
	assert_non_null(strstr(out, "77"));
	assert_non_null(strstr(out, "idle, tx 5 rx 0"));
	/* A login without "@" is shown whole. */
	assert_non_null(strstr(out, "admin"));
	assert_non_null(strstr(out, "idle; exit node; offline, last seen 3d ago"));
	assert_non_null(strstr(out, "\n\n# Health check:\n"
	    "#     - not connected to home DERP region 999\n#     - second\n"));
	free(out);
}

static void
test_status_not_running(void **state)
{
	static const struct {
		const char *json;
		const char *want;
	} cases[] = {
		{ "{\"BackendState\":\"NeedsLogin\"}", "Logged out.\n" },
		{ "{\"BackendState\":\"NeedsLogin\",\"AuthURL\":\"http://c/register/k\"}",
		    "Logged out.\nLog in at: http://c/register/k\n" },
		{ "{\"BackendState\":\"Stopped\"}", "Tailscale is stopped.\n" },
		{ "{\"BackendState\":\"NeedsMachineAuth\"}",
		    "Machine is not yet approved by tailnet admin.\n" },
		{ "{\"BackendState\":\"NoState\",\"Health\":[\"state store broken\"]}",
		    "# Health check:\n#     - state store broken\n\n"
		    "unexpected state: NoState\n" },
		{ "{\"BackendState\":\"Stopped\",\"Health\":[\"x\"]}",
		    "Tailscale is stopped.\n" },
		{ "{}", "unexpected state: \n" },
	};
	char *out;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert_int_equal(render(cases[i].json, &all_rows, &out), CLI_EXIT_FAIL);
		assert_string_equal(out, cases[i].want);
		free(out);
	}
	/* Starting counts as running, and so prints the table. */
	assert_int_equal(render("{\"BackendState\":\"Starting\"}", &all_rows, &out),
	    CLI_EXIT_OK);
	assert_string_equal(out, "");
	free(out);
}

static void
test_status_hostile_json(void **state)
{
	static const char *const bad[] = {
		"{\"BackendState\":5,\"Peer\":[],\"Self\":\"x\",\"User\":1}",
		"{\"BackendState\":\"Running\",\"Peer\":{\"k\":5,\"j\":{\"TailscaleIPs\":"
		    "[1,null,\"1.2.3.4\"],\"LastSeen\":\"never\",\"TxBytes\":1e300,"
		    "\"UserID\":-1,\"Relay\":\"\\u0001\\\"\"}}}",
		"{\"BackendState\":\"Running\",\"Self\":{\"HostName\":\"...___...\"}}",
	};
	struct cli_status st;
	char *out;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int ret = render(bad[i], &all_rows, &out);

		assert_true(ret == CLI_EXIT_OK || ret == CLI_EXIT_FAIL);
		free(out);
	}
	assert_int_equal(cli_status_parse("[1]", 3, &st), -EINVAL);
	assert_int_equal(cli_status_parse("{", 1, &st), -EINVAL);
	assert_int_equal(cli_status_parse("", 0, &st), -EINVAL);
}

/* --- flags -------------------------------------------------------------- */

static void
test_flags_go_syntax(void **state)
{
	const char *server = "", *key = "";
	bool accept = false, dns = true, verbose = false;
	long count = 10;
	int64_t timeout = 0;
	struct cli_flag flags[] = {
		{ "login-server", NULL, CLI_STR, &server, false },
		{ "auth-key", "authkey", CLI_STR, &key, false },
		{ "accept-routes", NULL, CLI_BOOL, &accept, false },
		{ "accept-dns", NULL, CLI_BOOL, &dns, false },
		{ "verbose", NULL, CLI_BOOL, &verbose, false },
		{ "c", NULL, CLI_INT, &count, false },
		{ "timeout", NULL, CLI_DUR, &timeout, false },
	};
	char *argv[] = { "--login-server=http://x:8080", "-authkey", "k1", "peer",
	    "--accept-routes", "--accept-dns=false", "--c", "3", "-timeout=1.5s",
	    "--", "--verbose" };
	char *cause = NULL;
	int nargs;

	(void)state;
	assert_int_equal(cli_parse_flags(flags, NFLAGS(flags), 11, argv, &nargs,
	    &cause), 0);
	assert_string_equal(server, "http://x:8080");
	assert_string_equal(key, "k1");
	assert_true(flags[1].given);
	assert_true(accept);
	assert_false(dns);
	assert_true(flags[3].given);
	assert_false(verbose);
	assert_false(flags[4].given);
	assert_int_equal(count, 3);
	assert_int_equal(timeout, 1500000000LL);
	assert_int_equal(nargs, 2);
	assert_string_equal(argv[0], "peer");
	assert_string_equal(argv[1], "--verbose");
}

static void
test_flags_errors(void **state)
{
	bool b = false;
	const char *s = "";
	long n = 0;
	struct cli_flag flags[] = {
		{ "b", NULL, CLI_BOOL, &b, false },
		{ "s", NULL, CLI_STR, &s, false },
		{ "n", NULL, CLI_INT, &n, false },
	};
	static const struct {
		const char *arg;
		const char *why;
	} cases[] = {
		{ "--nope", "flag provided but not defined: -nope" },
		{ "--b=maybe", "invalid value \"maybe\" for flag -b" },
		{ "--n=3x", "invalid value \"3x\" for flag -n" },
		{ "--s", "flag needs an argument: -s" },
		{ "---b", "bad flag syntax" },
		{ "--=x", "bad flag syntax" },
	};
	char *cause;
	int nargs;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *argv[] = { (char *)cases[i].arg };

		cause = NULL;
		assert_int_equal(cli_parse_flags(flags, NFLAGS(flags), 1, argv, &nargs,
		    &cause), -EINVAL);
		assert_non_null(cause);
		if (strstr(cause, cases[i].why) == NULL)
			fail_msg("\"%s\": \"%s\" lacks \"%s\"", cases[i].arg, cause,
			    cases[i].why);
		free(cause);
	}
	/* Booleans take every strconv.ParseBool spelling; "-" is positional. */
	{
		char *argv[] = { "-b=F", "-", "-n=0x10" };

		b = true;
		assert_int_equal(cli_parse_flags(flags, NFLAGS(flags), 3, argv, &nargs,
		    &cause), 0);
		assert_false(b);
		assert_int_equal(n, 16);
		assert_int_equal(nargs, 1);
		assert_string_equal(argv[0], "-");
	}
}

static void
test_durations(void **state)
{
	static const struct {
		const char *s;
		int64_t ns;
	} ok[] = {
		{ "0", 0 }, { "2s", 2000000000LL }, { "500ms", 500000000LL },
		{ "1m30s", 90000000000LL }, { "1.5s", 1500000000LL },
		{ "1h", 3600000000000LL }, { "-1s", -1000000000LL },
		{ "10us", 10000 }, { "10\xc2\xb5s", 10000 }, { "7ns", 7 },
		{ ".5s", 500000000LL }, { "+3m", 180000000000LL },
	};
	static const char *const bad[] = { "", "5", "s", "1x", "1.s.", "--1s", "1 s" };
	int64_t v;

	(void)state;
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		assert_int_equal(cli_parse_duration(ok[i].s, &v), 0);
		assert_int_equal(v, ok[i].ns);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_not_equal(cli_parse_duration(bad[i], &v), 0);
}

static void
test_go_duration_string(void **state)
{
	static const struct {
		int64_t ns;
		const char *s;
	} cases[] = {
		{ 0, "0s" }, { 12000000, "12ms" }, { 1500000000, "1.5s" },
		{ 61000000000LL, "1m1s" }, { 3600000000000LL, "1h0m0s" },
		{ 1500, "1.5\xc2\xb5s" }, { 999, "999ns" }, { 1200000, "1.2ms" },
		{ -2000000000LL, "-2s" }, { 1000000000, "1s" },
	};
	char buf[48];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		go_duration(cases[i].ns, buf, sizeof buf);
		assert_string_equal(buf, cases[i].s);
	}
}

static void
test_auth_key_file(void **state)
{
	char dir[] = "/tmp/meshd-test-meshctl-XXXXXX", path[128], arg[140];
	char *key = NULL, *cause = NULL;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/key", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("  tskey-auth-abc123\n\n", f);
	fclose(f);
	snprintf(arg, sizeof arg, "file:%s", path);
	assert_int_equal(read_auth_key(arg, &key, &cause), 0);
	assert_string_equal(key, "tskey-auth-abc123");
	free(key);
	assert_int_equal(read_auth_key("tskey-direct", &key, &cause), 0);
	assert_string_equal(key, "tskey-direct");
	free(key);

	f = fopen(path, "w");
	fputs(" \n", f);
	fclose(f);
	assert_int_equal(read_auth_key(arg, &key, &cause), -EINVAL);
	assert_non_null(strstr(cause, "is empty"));
	free(cause);
	cause = NULL;
	unlink(path);
	assert_true(read_auth_key(arg, &key, &cause) < 0);
	assert_non_null(strstr(cause, "reading auth key from"));
	free(cause);
	rmdir(dir);
}

/* --- flags to prefs ----------------------------------------------------- */

struct prefs_case {
	struct cli_pref_args a;
	struct cli_flag flags[16];
	size_t n;
};

static void
prefs_case_init(struct prefs_case *c)
{
	struct cli_flag f[] = {
		{ "login-server", NULL, CLI_STR, &c->a.login_server, false },
		{ "auth-key", "authkey", CLI_STR, &c->a.auth_key, false },
		{ "advertise-tags", NULL, CLI_STR, &c->a.advertise_tags, false },
		PREF_FLAGS(c->a),
	};

	pref_args_default(&c->a);
	memcpy(c->flags, f, sizeof f);
	c->n = NFLAGS(f);
}

static int
build(struct prefs_case *c, int argc, char **argv, const struct lapi_prefs *cur,
    const struct cli_status *st, struct lapi_masked_prefs *mp, char **cause)
{
	int nargs;

	assert_int_equal(cli_parse_flags(c->flags, c->n, argc, argv, &nargs, cause), 0);
	return cli_build_prefs(&c->a, c->flags, c->n, cur, st, mp, cause);
}

static void
test_prefs_from_flags(void **state)
{
	struct prefs_case c;
	struct lapi_masked_prefs mp;
	char *cause = NULL;
	char *argv[] = { "--login-server=http://10.0.0.1:8080", "--hostname=h1",
	    "--accept-routes", "--accept-dns=false", "--snat-subnet-routes=false",
	    "--advertise-routes=10.77.0.0/24,192.168.0.0/16", "--advertise-exit-node",
	    "--advertise-tags=a,tag:b", "--netfilter-mode=off", "--exit-node=" };

	(void)state;
	prefs_case_init(&c);
	assert_int_equal(build(&c, 10, argv, NULL, NULL, &mp, &cause), 0);
	assert_int_equal(mp.set, LAPI_PREF_CONTROL_URL | LAPI_PREF_HOSTNAME |
	    LAPI_PREF_ROUTE_ALL | LAPI_PREF_CORP_DNS | LAPI_PREF_NO_SNAT |
	    LAPI_PREF_ADVERTISE_ROUTES | LAPI_PREF_ADVERTISE_TAGS |
	    LAPI_PREF_NETFILTER_MODE | LAPI_PREF_EXIT_NODE_IP | LAPI_PREF_EXIT_NODE_ID);
	assert_string_equal(mp.prefs.control_url, "http://10.0.0.1:8080");
	assert_string_equal(mp.prefs.hostname, "h1");
	assert_true(mp.prefs.route_all);
	assert_false(mp.prefs.corp_dns);
	assert_true(mp.prefs.no_snat);
	assert_int_equal(mp.prefs.netfilter_mode, LAPI_NETFILTER_OFF);
	assert_null(mp.prefs.exit_node_ip);
	assert_int_equal(mp.prefs.n_advertise_routes, 4);
	assert_string_equal(mp.prefs.advertise_routes[0], "10.77.0.0/24");
	assert_string_equal(mp.prefs.advertise_routes[2], "0.0.0.0/0");
	assert_string_equal(mp.prefs.advertise_routes[3], "::/0");
	assert_int_equal(mp.prefs.n_advertise_tags, 2);
	assert_string_equal(mp.prefs.advertise_tags[0], "tag:a");
	assert_string_equal(mp.prefs.advertise_tags[1], "tag:b");
	lapi_prefs_clear(&mp.prefs);

	/* Unmentioned flags are not sent. */
	prefs_case_init(&c);
	assert_int_equal(build(&c, 0, argv, NULL, NULL, &mp, &cause), 0);
	assert_int_equal(mp.set, 0);
	lapi_prefs_clear(&mp.prefs);
}

static void
test_prefs_route_merging(void **state)
{
	struct prefs_case c;
	struct lapi_masked_prefs mp;
	struct lapi_prefs cur;
	char *cause = NULL;
	char *exit_on[] = { "--advertise-exit-node" };
	char *exit_off[] = { "--advertise-exit-node=false" };
	char *routes[] = { "--advertise-routes=10.9.0.0/16" };
	char *cur_routes[] = { "10.77.0.0/24", "0.0.0.0/0", "::/0" };

	(void)state;
	lapi_prefs_init_default(&cur);
	cur.advertise_routes = cur_routes;
	cur.n_advertise_routes = 1;

	/* `set --advertise-exit-node` keeps the subnet routes already advertised. */
	prefs_case_init(&c);
	assert_int_equal(build(&c, 1, exit_on, &cur, NULL, &mp, &cause), 0);
	assert_int_equal(mp.prefs.n_advertise_routes, 3);
	assert_string_equal(mp.prefs.advertise_routes[0], "10.77.0.0/24");
	assert_string_equal(mp.prefs.advertise_routes[1], "0.0.0.0/0");
	lapi_prefs_clear(&mp.prefs);

	/* `set --advertise-routes=…` keeps an exit node already advertised. */
	cur.n_advertise_routes = 3;
	prefs_case_init(&c);
	assert_int_equal(build(&c, 1, routes, &cur, NULL, &mp, &cause), 0);
	assert_int_equal(mp.prefs.n_advertise_routes, 3);
	assert_string_equal(mp.prefs.advertise_routes[0], "10.9.0.0/16");
	assert_string_equal(mp.prefs.advertise_routes[2], "::/0");
	lapi_prefs_clear(&mp.prefs);

	/* --advertise-exit-node=false takes only the default routes away. */
	prefs_case_init(&c);
	assert_int_equal(build(&c, 1, exit_off, &cur, NULL, &mp, &cause), 0);
	assert_int_equal(mp.prefs.n_advertise_routes, 1);
	assert_string_equal(mp.prefs.advertise_routes[0], "10.77.0.0/24");
	lapi_prefs_clear(&mp.prefs);
	cur.advertise_routes = NULL;
	cur.n_advertise_routes = 0;
	lapi_prefs_clear(&cur);
}

static void
test_prefs_bad_values(void **state)
{
	static const struct {
		const char *arg;
		const char *why;
	} cases[] = {
		{ "--advertise-routes=10.0.0.1/8", "expected 10.0.0.0/8" },
		{ "--advertise-routes=fd00::1/64", "expected fd00::/64" },
		{ "--advertise-routes=10.0.0.0/33", "not a valid" },
		{ "--advertise-routes=banana", "not a valid" },
		{ "--netfilter-mode=sometimes", "invalid value --netfilter-mode" },
		{ "--exit-node=nosuchpeer.invalid", "must be IP or unique node name" },
	};
	struct cli_status st;
	struct prefs_case c;
	struct lapi_masked_prefs mp;
	char *cause;

	(void)state;
	assert_int_equal(cli_status_parse(status_running, strlen(status_running), &st),
	    0);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *argv[] = { (char *)cases[i].arg };

		cause = NULL;
		prefs_case_init(&c);
		assert_int_equal(build(&c, 1, argv, NULL, &st, &mp, &cause), -EINVAL);
		assert_non_null(cause);
		if (strstr(cause, cases[i].why) == NULL)
			fail_msg("\"%s\": \"%s\" lacks \"%s\"", cases[i].arg, cause,
			    cases[i].why);
		free(cause);
		lapi_prefs_clear(&mp.prefs);
	}
	/* A peer's name resolves through the status. */
	{
		char *argv[] = { "--exit-node=rtr1" };

		cause = NULL;
		prefs_case_init(&c);
		assert_int_equal(build(&c, 1, argv, NULL, &st, &mp, &cause), 0);
		assert_string_equal(mp.prefs.exit_node_ip, "100.64.0.5");
		lapi_prefs_clear(&mp.prefs);
	}
	cli_status_free(&st);
}

/* --- ip ----------------------------------------------------------------- */

static void
test_ip_selection(void **state)
{
	static const char *const both[] = { "100.64.0.1", "fd7a:115c:a1e0::1" };
	static const char *const v4only[] = { "100.64.0.1" };
	struct cli_ip_opts o = { 0 };
	struct capture c;

	(void)state;
	capture_start(&c);
	assert_int_equal(cli_ip_render(both, 2, &o, cli_out), CLI_EXIT_OK);
	o.want4 = true;
	assert_int_equal(cli_ip_render(both, 2, &o, cli_out), CLI_EXIT_OK);
	o = (struct cli_ip_opts){ .want6 = true };
	assert_int_equal(cli_ip_render(both, 2, &o, cli_out), CLI_EXIT_OK);
	o = (struct cli_ip_opts){ .want1 = true };
	assert_int_equal(cli_ip_render(both, 2, &o, cli_out), CLI_EXIT_OK);
	o = (struct cli_ip_opts){ .want6 = true };
	assert_int_equal(cli_ip_render(v4only, 1, &o, cli_out), CLI_EXIT_FAIL);
	capture_end(&c);
	assert_string_equal(c.out, "100.64.0.1\nfd7a:115c:a1e0::1\n100.64.0.1\n"
	    "fd7a:115c:a1e0::1\n100.64.0.1\n");
	assert_string_equal(c.err, "meshctl: no Tailscale IPv6 address\n");
	capture_free(&c);
}

static void
test_resolve_host(void **state)
{
	struct cli_status st;
	char ip[64], *cause = NULL;
	bool self;

	(void)state;
	assert_int_equal(cli_status_parse(status_running, strlen(status_running), &st),
	    0);
	assert_int_equal(resolve_host(&st, "peer1", ip, sizeof ip, &self, &cause), 0);
	assert_string_equal(ip, "100.64.0.2");
	assert_false(self);
	assert_int_equal(resolve_host(&st, "PEER1", ip, sizeof ip, &self, &cause), 0);
	assert_int_equal(resolve_host(&st, "peer2.ts.test.", ip, sizeof ip, &self,
	    &cause), 0);
	assert_string_equal(ip, "100.64.0.3");
	assert_int_equal(resolve_host(&st, "peer3.ts.test", ip, sizeof ip, &self,
	    &cause), 0);
	assert_string_equal(ip, "100.64.0.4");
	assert_int_equal(resolve_host(&st, "agent1", ip, sizeof ip, &self, &cause), 0);
	assert_string_equal(ip, "100.64.0.1");
	assert_true(self);
	/* An IP goes to meshd as is, ours too: meshd answers IsLocalIP. */
	assert_int_equal(resolve_host(&st, "100.64.0.1", ip, sizeof ip, &self, &cause), 0);
	assert_false(self);
	assert_int_equal(resolve_host(&st, "fd7a::9", ip, sizeof ip, &self, &cause), 0);
	assert_string_equal(ip, "fd7a::9");
	assert_false(self);
	assert_int_equal(resolve_host(&st, "nosuch.invalid", ip, sizeof ip, &self,
	    &cause), -ENOENT);
	assert_non_null(strstr(cause, "error looking up IP of \"nosuch.invalid\""));
	free(cause);
	cli_status_free(&st);
}

/* --- ping, up events, other renderers ----------------------------------- */

static void
test_ping_render(void **state)
{
	struct cli_ping_opts o = { .count = 10, .until_direct = true };
	bool pong = false;
	struct capture c;
	static const char direct[] = "{\"NodeName\":\"peer1\",\"NodeIP\":\"100.64.0.2\","
	    "\"LatencySeconds\":0.0123,\"Endpoint\":\"10.0.2.2:41641\"}";
	static const char derp[] = "{\"NodeName\":\"peer1\",\"NodeIP\":\"100.64.0.2\","
	    "\"LatencySeconds\":0.2,\"DERPRegionID\":999,\"DERPRegionCode\":\"headscale\"}";
	static const char local[] = "{\"Err\":\"100.64.0.1 is local Tailscale IP\","
	    "\"IsLocalIP\":true}";
	static const char expired[] = "{\"Err\":\"peer's node key has expired\"}";
	static const char tsmp[] = "{\"NodeName\":\"p\",\"NodeIP\":\"1.2.3.4\"}";
	/* time.Duration(s * 1e9).Round(time.Millisecond), halves away from zero */
	static const struct {
		const char *secs, *want;
	} lat[] = {
		{ "0.0123", "12ms" }, { "0.0125", "13ms" }, { "0.0005", "1ms" },
		{ "0.0004999", "0s" }, { "1.2345", "1.235s" }, { "61.5", "1m1.5s" },
		{ "-0.0015", "-2ms" }, { "1e300", "2562047h47m16.854775807s" },
		{ "\"x\"", "0s" },
	};

	(void)state;
	capture_start(&c);
	assert_int_equal(cli_ping_render(derp, strlen(derp), &o, &pong, cli_out),
	    PING_AGAIN);
	assert_true(pong);
	assert_int_equal(cli_ping_render(direct, strlen(direct), &o, &pong, cli_out),
	    PING_DONE);
	o.until_direct = false;
	assert_int_equal(cli_ping_render(direct, strlen(direct), &o, &pong, cli_out),
	    PING_AGAIN);
	assert_int_equal(cli_ping_render(local, strlen(local), &o, &pong, cli_out),
	    PING_DONE);
	assert_int_equal(cli_ping_render(expired, strlen(expired), &o, &pong, cli_out),
	    PING_ERROR);
	o.tsmp = true;
	assert_int_equal(cli_ping_render(tsmp, strlen(tsmp), &o, &pong, cli_out),
	    PING_DONE);
	capture_end(&c);
	assert_string_equal(c.out,
	    "pong from peer1 (100.64.0.2) via DERP(headscale) in 200ms\n"
	    "pong from peer1 (100.64.0.2) via 10.0.2.2:41641 in 12ms\n"
	    "pong from peer1 (100.64.0.2) via 10.0.2.2:41641 in 12ms\n"
	    "100.64.0.1 is local Tailscale IP\n"
	    "pong from p (1.2.3.4) via TSMP in 0s\n");
	assert_string_equal(c.err, "meshctl: peer's node key has expired\n");
	capture_free(&c);

	o.tsmp = false;
	for (size_t i = 0; i < sizeof lat / sizeof lat[0]; i++) {
		char *json = cli_sprintf("{\"NodeName\":\"p\",\"NodeIP\":\"1.2.3.4\","
		    "\"Endpoint\":\"5.6.7.8:9\",\"LatencySeconds\":%s}", lat[i].secs);
		char *want = cli_sprintf("pong from p (1.2.3.4) via 5.6.7.8:9 in %s\n",
		    lat[i].want);

		capture_start(&c);
		assert_int_equal(cli_ping_render(json, strlen(json), &o, &pong, cli_out),
		    PING_AGAIN);
		capture_end(&c);
		assert_string_equal(c.out, want);
		capture_free(&c);
		free(json);
		free(want);
	}
}

static void
test_up_events(void **state)
{
	struct capture c;
	struct up_state u;
	static const char *const lines[] = {
		"{\"State\":\"Starting\"}",
		"not json",
		"{\"BrowseToURL\":\"http://10.0.0.1:8080/register/abc\"}",
		"{\"BrowseToURL\":\"http://10.0.0.1:8080/register/abc\"}",
	};

	(void)state;
	capture_start(&c);
	u = (struct up_state){ .out = cli_out, .err = cli_err };
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(cli_up_event(&u, lines[i], strlen(lines[i])), 0);
	assert_int_equal(cli_up_event(&u, "{\"State\":\"Running\"}", 19), 1);
	assert_true(u.done);
	capture_end(&c);
	/* The URL once, on its own line (the harness trims and takes it). */
	assert_string_equal(c.err, "\nTo authenticate, visit:\n\n"
	    "\thttp://10.0.0.1:8080/register/abc\n\nSuccess.\n");
	assert_string_equal(c.out, "");
	capture_free(&c);

	capture_start(&c);
	u = (struct up_state){ .out = cli_out, .err = cli_err };
	assert_int_equal(cli_up_event(&u, "{\"ErrMessage\":\"authkey expired\"}", 32), 1);
	assert_true(u.failed);
	/* With a key and no URL, success is silent. */
	u = (struct up_state){ .out = cli_out, .err = cli_err };
	assert_int_equal(cli_up_event(&u, "{\"State\":\"Running\"}", 19), 1);
	u = (struct up_state){ .json = true, .out = cli_out, .err = cli_err };
	assert_int_equal(cli_up_event(&u, "{\"BrowseToURL\":\"http://u/\"}", 27), 0);
	assert_int_equal(cli_up_event(&u, "{\"State\":\"Running\"}", 19), 1);
	capture_end(&c);
	assert_string_equal(c.err, "backend error: authkey expired\n");
	assert_string_equal(c.out, "{\n\t\"AuthURL\": \"http://u/\",\n\t\"BackendState\": "
	    "\"NeedsLogin\"\n}\n{\n  \"BackendState\": \"Running\"\n}\n");
	capture_free(&c);
}

static void
test_whois_render(void **state)
{
	static const char json[] = "{\"Node\":{\"ID\":3,\"StableID\":\"3\","
	    "\"Name\":\"peer1.ts.test.\",\"Addresses\":[\"100.64.0.3/32\","
	    "\"fd7a:115c:a1e0::3/128\"],\"AllowedIPs\":[\"100.64.0.3/32\","
	    "\"fd7a:115c:a1e0::3/128\",\"10.88.0.0/24\"]},\"UserProfile\":{\"ID\":2,"
	    "\"LoginName\":\"user2@test.no\"},\"CapMap\":{\"cap-a\":[],"
	    "\"cap-b\":[{\"x\":1}]}}";
	struct capture c;

	(void)state;
	capture_start(&c);
	assert_int_equal(cli_whois_render(json, strlen(json), cli_out), CLI_EXIT_OK);
	capture_end(&c);
	assert_string_equal(c.out,
	    "Machine:\n"
	    "  Name:           peer1.ts.test\n"
	    "  ID:             3\n"
	    "  Addresses:      [100.64.0.3/32 fd7a:115c:a1e0::3/128]\n"
	    "  AllowedIPs:     [10.88.0.0/24]\n"
	    "User:\n"
	    "  Name:     user2@test.no\n"
	    "  ID:       2\n"
	    "Capabilities:\n"
	    "  - cap-a\n"
	    "  - cap-b:\n"
	    "      [\n"
	    "        {\n"
	    "          \"x\": 1\n"
	    "        }\n"
	    "      ]\n");
	capture_free(&c);
}

static void
test_netcheck_and_dns_render(void **state)
{
	static const char nc[] = "{\"Report\":{\"UDP\":true,\"IPv4\":true,"
	    "\"GlobalV4\":\"10.0.1.2:41641\",\"IPv6\":false,\"OSHasIPv6\":true,"
	    "\"MappingVariesByDestIP\":false,\"PreferredDERP\":999,"
	    "\"RegionLatency\":{\"999\":1234567,\"901\":20000000},"
	    "\"Now\":\"0001-01-01T00:00:00Z\"},"
	    "\"DERPMap\":{\"Regions\":{\"901\":{\"RegionCode\":\"derp2\","
	    "\"RegionName\":\"Second\"},\"999\":{\"RegionCode\":\"headscale\","
	    "\"RegionName\":\"Headscale Embedded DERP\"},\"5\":{\"RegionCode\":\"x\","
	    "\"RegionName\":\"Far\"}}}}";
	static const char dns[] = "{\"TailscaleDNS\":true,\"CurrentTailnet\":"
	    "{\"MagicDNSEnabled\":true,\"MagicDNSSuffix\":\"ts.test\","
	    "\"SelfDNSName\":\"agent1.ts.test.\"},\"Resolvers\":[{\"Addr\":\"10.0.0.53\"}],"
	    "\"SplitDNSRoutes\":{\"corp.test\":[{\"Addr\":\"10.0.0.54\"}]},"
	    "\"SearchDomains\":[\"ts.test\"]}";
	struct capture c;

	(void)state;
	capture_start(&c);
	assert_int_equal(cli_netcheck_render(nc, strlen(nc), cli_out), CLI_EXIT_OK);
	assert_int_equal(cli_dns_status_render(dns, strlen(dns), false, cli_out),
	    CLI_EXIT_OK);
	capture_end(&c);
	assert_non_null(strstr(c.out, "\nReport:\n\t* Time: 0001-01-01 00:00:00Z\n"
	    "\t* UDP: true\n"
	    "\t* IPv4: yes, 10.0.1.2:41641\n\t* IPv6: no, but OS has support\n"
	    "\t* MappingVariesByDestIP: false\n\t* PortMapping: not checked\n"
	    "\t* Nearest DERP: Headscale Embedded DERP\n\t* DERP latency:\n"
	    "\t\t- headscale: 1.2ms   (Headscale Embedded DERP)\n"
	    "\t\t- derp2: 20ms    (Second)\n"
	    "\t\t-   x:         (Far)\n"));
	assert_non_null(strstr(c.out, "MagicDNS: enabled tailnet-wide (suffix = "
	    "ts.test)\n\nOther devices in your tailnet can reach this device at "
	    "agent1.ts.test.\n"));
	assert_non_null(strstr(c.out, "  - corp.test                      -> "
	    "10.0.0.54\n"));
	assert_non_null(strstr(c.out, "Search Domains:\n  - ts.test\n"));
	assert_non_null(strstr(c.out, "  (no OS DNS configuration available)\n"));
	capture_free(&c);
}

/* --- the daemon's builders (daemon_api.h) ---------------------------- */

#define K(c) "\"Key\":\"nodekey:" c c c c c c c c c c c c c c c c c c c c c c c c c c c c \
	c c c c "\""

/* A tailnet like status_running's, as control sends it, plus odd nodes. */
static const char tailnet_map[] =
	"{\"Node\":{\"ID\":1,\"StableID\":\"1\",\"Name\":\"agent1.ts.test.\",\"User\":1,"
	K("01") ",\"Addresses\":[\"100.64.0.1/32\",\"fd7a:115c:a1e0::1/128\"],"
	"\"HomeDERP\":999,\"Hostinfo\":{\"Hostname\":\"agent1\",\"OS\":\"linux\"}},"
	"\"DERPMap\":{\"Regions\":{"
	"\"999\":{\"RegionID\":999,\"RegionCode\":\"headscale\","
	"\"RegionName\":\"Headscale Embedded DERP\",\"Nodes\":[{\"Name\":\"999a\","
	"\"RegionID\":999,\"HostName\":\"127.0.0.1\"}]},"
	"\"901\":{\"RegionID\":901,\"RegionCode\":\"derp2\",\"RegionName\":\"Second\","
	"\"Nodes\":[{\"Name\":\"901a\",\"RegionID\":901,\"HostName\":\"127.0.0.2\"}]},"
	"\"5\":{\"RegionID\":5,\"RegionCode\":\"x\",\"RegionName\":\"Far\","
	"\"Nodes\":[{\"Name\":\"5a\",\"RegionID\":5,\"HostName\":\"127.0.0.3\"}]}}},"
	"\"Peers\":["
	"{\"ID\":2,\"Name\":\"peer1.ts.test.\",\"User\":2," K("02") ","
	"\"Addresses\":[\"100.64.0.2/32\",\"fd7a:115c:a1e0::2/128\"],\"HomeDERP\":999},"
	"{\"ID\":3,\"Name\":\"peer2.ts.test.\",\"User\":2," K("03") ","
	"\"Addresses\":[\"100.64.0.3/32\"],\"HomeDERP\":999},"
	"{\"ID\":4,\"Name\":\"peer3.ts.test.\",\"User\":2," K("04") ","
	"\"Addresses\":[\"100.64.0.4/32\"],\"HomeDERP\":901},"
	"{\"ID\":5,\"Name\":\"rtr1.ts.test.\",\"User\":2," K("05") ","
	"\"Addresses\":[\"100.64.0.5/32\"],"
	"\"AllowedIPs\":[\"100.64.0.5/32\",\"10.77.0.0/24\"]},"
	"{\"ID\":6,\"Name\":\"old.ts.test.\",\"User\":2," K("06") ","
	"\"Addresses\":[\"100.64.0.6/32\"],\"Expired\":true},"
	"{\"ID\":7,\"Name\":\"late.ts.test.\",\"User\":2," K("07") ","
	"\"Addresses\":[\"100.64.0.7/32\"],\"KeyExpiry\":\"2025-12-31T00:00:00Z\"},"
	"{\"ID\":8,\"Name\":\"\",\"User\":2," K("08") ",\"Hostinfo\":{\"Hostname\":"
	"\"sub-host\"},\"Addresses\":[\"100.64.0.8/32\"],"
	"\"AllowedIPs\":[\"100.64.0.8/32\",\"10.77.0.128/25\"]}]}";

static struct netmap *
tailnet(void)
{
	struct netmap *nm = netmap_new();
	struct mapresp *mr = NULL;
	char where[128] = "";
	int r = mapresp_decode(tailnet_map, strlen(tailnet_map), &mr, NULL, where,
	    sizeof where);

	if (r != 0)
		fail_msg("map: %s (%s)", mapresp_strerror(r), where);
	netmap_apply(nm, mr);
	mapresp_free(mr);
	assert_int_equal(netmap_peer_count(nm), 7);
	return nm;
}

/* What meshctl prints for one PingResult (and on stderr). */
static enum ping_verdict
ping_line(const char *json, char **out, char **err)
{
	struct cli_ping_opts o = { .count = 10, .until_direct = true };
	struct capture c;
	bool pong = false;
	enum ping_verdict v;

	capture_start(&c);
	v = cli_ping_render(json, strlen(json), &o, &pong, cli_out);
	capture_end(&c);
	*out = c.out;
	*err = c.err;
	return v;
}

static void
test_ping_builders(void **state)
{
	static const struct {
		const char *ip;
		int rc;
		const char *node_ip, *node_name, *err;
	} cases[] = {
		{ "100.64.0.1", 1, "", "", "100.64.0.1 is local Tailscale IP" },
		{ "fd7a:115c:a1e0:0:0::1", 1, "", "",
		    "fd7a:115c:a1e0::1 is local Tailscale IP" },
		{ "100.64.0.99", 1, "", "", "no matching peer" },
		{ "100.64.0.2", 0, "100.64.0.2", "peer1", "" },
		{ "fd7a:115c:a1e0::2", 0, "100.64.0.2", "peer1", "" },
		{ "100.64.0.6", 1, "100.64.0.6", "old", "peer's node key has expired" },
		/* Expired by the clock before control says so. */
		{ "100.64.0.7", 1, "100.64.0.7", "late", "peer's node key has expired" },
		/* Subnet IPs: the most specific route wins; no DNS name: hostname. */
		{ "10.77.0.9", 0, "100.64.0.5", "rtr1", "" },
		{ "10.77.0.200", 0, "100.64.0.8", "sub-host", "" },
		{ "10.78.0.1", 1, "", "", "no matching peer" },
	};
	struct netmap *nm = tailnet();
	const struct netmap_derp_map *dm = netmap_derp_map(nm);
	struct lapi_ping_target t;
	struct engine_ping_result direct = { .latency_ns = 12500000,
	    .endpoint = "10.0.2.2:41641" };
	struct engine_ping_result derp = { .latency_ns = 200000000, .derp_region = 901 };
	struct engine_ping_result odd_derp = { .latency_ns = 1999999, .derp_region = 77 };
	struct engine_ping_result failed = { .err = "no UDP or DERP addr" };
	char *json, *out, *err;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert_int_equal(daemon_api_ping_target(nm, cases[i].ip,
		    NOW * 1000LL, &t), cases[i].rc);
		assert_string_equal(t.node_ip, cases[i].node_ip);
		assert_string_equal(t.node_name, cases[i].node_name);
		assert_string_equal(t.err, cases[i].err);
		assert_int_equal(t.is_local_ip, strstr(cases[i].err, "local") != NULL);
	}
	assert_int_equal(daemon_api_ping_target(nm, "peer1", 0, &t), -EINVAL);
	assert_int_equal(daemon_api_ping_target(nm, "100.64.0.2/32", 0, &t), -EINVAL);
	assert_int_equal(daemon_api_ping_target(NULL, "100.64.0.2", 0, &t), 1);
	assert_string_equal(t.err, "no matching peer");
	/* Not yet expired an hour earlier. */
	assert_int_equal(daemon_api_ping_target(nm, "100.64.0.7",
	    1767139200000LL - 3600000, &t), 0);

	/* ipnstate.PingResult, with the members tailscale always writes. */
	assert_int_equal(daemon_api_ping_target(nm, "100.64.0.1", NOW * 1000LL, &t), 1);
	json = daemon_api_ping_json(&t, NULL, dm, NULL);
	assert_string_equal(json, "{\"IP\":\"100.64.0.1\",\"NodeIP\":\"\","
	    "\"NodeName\":\"\",\"Err\":\"100.64.0.1 is local Tailscale IP\","
	    "\"LatencySeconds\":0,\"Endpoint\":\"\",\"PeerRelay\":\"\","
	    "\"DERPRegionID\":0,\"DERPRegionCode\":\"\",\"IsLocalIP\":true}");
	assert_int_equal(ping_line(json, &out, &err), PING_DONE);
	assert_string_equal(out, "100.64.0.1 is local Tailscale IP\n");
	assert_string_equal(err, "");
	free(out);
	free(err);
	free(json);

	assert_int_equal(daemon_api_ping_target(nm, "100.64.0.6", NOW * 1000LL, &t), 1);
	json = daemon_api_ping_json(&t, NULL, dm, NULL);
	assert_non_null(strstr(json, "\"NodeName\":\"old\",\"Err\":\"peer's node key "
	    "has expired\""));
	assert_null(strstr(json, "IsLocalIP"));
	assert_int_equal(ping_line(json, &out, &err), PING_ERROR);
	assert_string_equal(out, "");
	assert_string_equal(err, "meshctl: peer's node key has expired\n");
	free(out);
	free(err);
	free(json);

	/* Pongs: direct, then through DERP; the latency as Go rounds it. */
	assert_int_equal(daemon_api_ping_target(nm, "100.64.0.2", NOW * 1000LL, &t), 0);
	json = daemon_api_ping_json(&t, &direct, dm, NULL);
	assert_non_null(strstr(json, "\"Err\":\"\",\"LatencySeconds\":0.0125"));
	assert_non_null(strstr(json, "\"Endpoint\":\"10.0.2.2:41641\",\"PeerRelay\":\"\","
	    "\"DERPRegionID\":0,\"DERPRegionCode\":\"\"}"));
	assert_int_equal(ping_line(json, &out, &err), PING_DONE);
	assert_string_equal(out, "pong from peer1 (100.64.0.2) via 10.0.2.2:41641 in 13ms\n");
	free(out);
	free(err);
	free(json);
	json = daemon_api_ping_json(&t, &derp, dm, NULL);
	assert_non_null(strstr(json, "\"Endpoint\":\"\",\"PeerRelay\":\"\","
	    "\"DERPRegionID\":901,\"DERPRegionCode\":\"derp2\"}"));
	assert_int_equal(ping_line(json, &out, &err), PING_AGAIN);
	assert_string_equal(out, "pong from peer1 (100.64.0.2) via DERP(derp2) in 200ms\n");
	free(out);
	free(err);
	free(json);
	/* A region the map does not name: an empty code, as magicsock's. */
	json = daemon_api_ping_json(&t, &odd_derp, dm, NULL);
	assert_int_equal(ping_line(json, &out, &err), PING_AGAIN);
	assert_string_equal(out, "pong from peer1 (100.64.0.2) via DERP() in 2ms\n");
	free(out);
	free(err);
	free(json);
	/* The engine's failure, and the daemon's own words, go to Err. */
	json = daemon_api_ping_json(&t, &failed, dm, NULL);
	assert_non_null(strstr(json, "\"NodeName\":\"peer1\",\"Err\":\"no UDP or DERP "
	    "addr\""));
	free(json);
	/* LatencySeconds as Go's encoding/json writes a float64. */
	{
		static const struct {
			double v;
			const char *s;
		} fl[] = {
			{ 0, "0" }, { 2, "2" }, { 0.000001, "0.000001" }, { 1.5e-7, "1.5e-7" },
			{ 1e21, "1e+21" }, { 0.1 + 0.2, "0.30000000000000004" },
			{ 123.456, "123.456" }, { 1.0 / 0.0, "0" },
		};

		for (size_t i = 0; i < sizeof fl / sizeof fl[0]; i++) {
			struct lapi_ping_result pr = { .latency_seconds = fl[i].v };
			char *want = cli_sprintf("\"LatencySeconds\":%s,", fl[i].s);

			json = lapi_ping_result_json(&pr);
			if (strstr(json, want) == NULL)
				fail_msg("%s: want %s", json, want);
			free(want);
			free(json);
		}
	}
	json = daemon_api_ping_json(&t, &direct, dm, "unknown peer");
	assert_non_null(strstr(json, "\"Err\":\"unknown peer\",\"LatencySeconds\":0,"));
	assert_non_null(strstr(json, "\"Endpoint\":\"\""));
	free(json);
	netmap_free(nm);
}

/* The netcheck report the fake meshd and the tests below share. */
static char *
netcheck_fixture(struct netmap *nm)
{
	struct netcheck_report r = {
		.udp = true, .ipv4 = true, .ipv4_can_send = true, .os_has_ipv6 = true,
		.mapping_varies_by_dest_ip = 0, .preferred_derp = 999, .n_regions = 2,
		.regions = {
			{ .region_id = 999, .v4_ns = 1234567, .v6_ns = 0 },
			{ .region_id = 901, .v4_ns = 25000000, .v6_ns = 20049999 },
		},
	};

	r.global_v4.in4.sin_family = AF_INET;
	r.global_v4.in4.sin_port = htons(41641);
	inet_pton(AF_INET, "10.0.1.2", &r.global_v4.in4.sin_addr);
	return daemon_api_netcheck_json(&r, netmap_derp_map(nm),
	    (struct lapi_time){ NOW + 3661, 120000000 });
}

static const char netcheck_report_json[] =
	"{\"Now\":\"2026-01-01T01:01:01.12Z\",\"UDP\":true,\"IPv6\":false,\"IPv4\":true,"
	"\"IPv6CanSend\":false,\"IPv4CanSend\":true,\"OSHasIPv6\":true,\"ICMPv4\":false,"
	"\"MappingVariesByDestIP\":false,\"UPnP\":null,\"PMP\":null,\"PCP\":null,"
	"\"PreferredDERP\":999,\"RegionLatency\":{\"901\":20049999,\"999\":1234567},"
	"\"RegionV4Latency\":{\"901\":25000000,\"999\":1234567},"
	"\"RegionV6Latency\":{\"901\":20049999},\"GlobalV4Counters\":null,"
	"\"GlobalV6Counters\":null,\"GlobalV4\":\"10.0.1.2:41641\",\"GlobalV6\":\"\","
	"\"CaptivePortal\":null}";

static const char netcheck_text[] =
	"\nReport:\n"
	"\t* Time: 2026-01-01 01:01:01.12Z\n"
	"\t* UDP: true\n"
	"\t* IPv4: yes, 10.0.1.2:41641\n"
	"\t* IPv6: no, but OS has support\n"
	"\t* MappingVariesByDestIP: false\n"
	"\t* PortMapping: not checked\n"
	"\t* Nearest DERP: Headscale Embedded DERP\n"
	"\t* DERP latency:\n"
	"\t\t- headscale: 1.2ms   (Headscale Embedded DERP)\n"
	"\t\t- derp2: 20ms    (Second)\n"
	"\t\t-   x:         (Far)\n";

static void
test_netcheck_builder(void **state)
{
	struct netmap *nm = tailnet();
	struct netcheck_report empty = { .mapping_varies_by_dest_ip = -1 };
	char *json = netcheck_fixture(nm), *want, *s;
	struct capture c;

	(void)state;
	setenv("TZ", "UTC", 1);
	tzset();
	/* Report in Go's member order; every region of the map, by ID as text. */
	want = cli_sprintf("{\"Report\":%s,\"DERPMap\":{\"Regions\":{"
	    "\"5\":{\"RegionID\":5,\"RegionCode\":\"x\",\"RegionName\":\"Far\"},"
	    "\"901\":{\"RegionID\":901,\"RegionCode\":\"derp2\",\"RegionName\":\"Second\"},"
	    "\"999\":{\"RegionID\":999,\"RegionCode\":\"headscale\","
	    "\"RegionName\":\"Headscale Embedded DERP\"}}}}", netcheck_report_json);
	assert_string_equal(json, want);
	free(want);

	capture_start(&c);
	assert_int_equal(cli_netcheck_render(json, strlen(json), cli_out), CLI_EXIT_OK);
	assert_int_equal(netcheck_render(json, strlen(json), true, cli_out), CLI_EXIT_OK);
	capture_end(&c);
	s = strstr(c.out, "\nReport:\n\t* Time");
	assert_non_null(s);
	assert_true(strncmp(c.out, netcheck_text, strlen(netcheck_text)) == 0);
	assert_non_null(strstr(c.out + strlen(netcheck_text),
	    "\t\t- headscale: 1.2ms   (derp999, Headscale Embedded DERP)\n"
	    "\t\t- derp2: 20ms    (derp901, Second)\n"
	    "\t\t-   x:         (derp5, Far)\n"));
	capture_free(&c);
	free(json);

	/* Nothing answered: no latencies, unknown mapping, Go's wording. */
	json = daemon_api_netcheck_json(&empty, netmap_derp_map(nm),
	    (struct lapi_time){ NOW, 0 });
	assert_non_null(strstr(json, "\"MappingVariesByDestIP\":null"));
	assert_non_null(strstr(json, "\"RegionLatency\":{},\"RegionV4Latency\":{},"
	    "\"RegionV6Latency\":{}"));
	capture_start(&c);
	assert_int_equal(cli_netcheck_render(json, strlen(json), cli_out), CLI_EXIT_OK);
	capture_end(&c);
	assert_string_equal(c.out, "\nReport:\n\t* Time: 2026-01-01 00:00:00Z\n"
	    "\t* UDP: false\n\t* IPv4: (no addr found)\n"
	    "\t* IPv6: no, unavailable in OS\n\t* MappingVariesByDestIP: \n"
	    "\t* PortMapping: not checked\n"
	    "\t* Nearest DERP: unknown (no response to latency probes)\n");
	capture_free(&c);
	free(json);
	/* No DERP map yet. */
	json = daemon_api_netcheck_json(&empty, NULL, (struct lapi_time){ NOW, 0 });
	assert_non_null(strstr(json, "\"DERPMap\":{\"Regions\":{}}"));
	free(json);
	netmap_free(nm);
}

static void
test_status_path_builder(void **state)
{
	struct netmap *nm = tailnet();
	const struct netmap_derp_map *dm = netmap_derp_map(nm);
	struct engine_peer_status es[4] = {
		{ .cur_addr = "10.0.2.2:41641", .derp_region = 999, .rx_bytes = 200,
		    .tx_bytes = 100, .last_handshake_ms = NOW * 1000LL + 250,
		    .active = true },
		{ .derp_region = 901, .tx_bytes = 5, .active = true },
		{ .derp_region = 999, .rx_bytes = 7 },
		{ .derp_region = 0 },
	};
	static const char *const names[5] = { "agent1", "peer1", "peer2", "peer3", "rtr1" };
	static const char *const ips[5][1] = { { "100.64.0.1" }, { "100.64.0.2" },
	    { "100.64.0.3" }, { "100.64.0.4" }, { "100.64.0.5" } };
	static const char *const rows[5][5] = {
		{ "100.64.0.1", "agent1", "-", "linux", "-" },
		{ "100.64.0.2", "peer1", "-", "linux",
		    "active; direct 10.0.2.2:41641, tx 100 rx 200" },
		{ "100.64.0.3", "peer2", "-", "linux", "active; relay \"derp2\", tx 5 rx 0" },
		{ "100.64.0.4", "peer3", "-", "linux", "idle, tx 0 rx 7" },
		{ "100.64.0.5", "rtr1", "-", "linux", "-" },
	};
	static const int w[5] = { 12, 8, 3, 7, 46 };
	struct lapi_peer_status ps[5];
	struct lapi_status st = { .backend_state = "Running", .magic_dns_suffix = "ts.test" };
	char want[1024] = "";
	struct cli_status cs;
	char *json, *out, key[32], dns[32];
	size_t len = 0;
	FILE *f;

	(void)state;
	for (int i = 0; i < 5; i++) {
		memset(&ps[i], 0, sizeof ps[i]);
		snprintf(key, sizeof key, "nodekey:%02d", i + 1);
		snprintf(dns, sizeof dns, "%s.ts.test.", names[i]);
		ps[i].public_key = strdup(key);
		ps[i].dns_name = strdup(dns);
		ps[i].host_name = names[i];
		ps[i].os = "linux";
		ps[i].online = true;
		ps[i].tailscale_ips = (struct lapi_strv){ ips[i], 1 };
	}
	/* Self: no data-plane view; its relay is the home region. */
	daemon_api_peer_path(&ps[0], NULL, dm, 999);
	assert_string_equal(ps[0].relay, "headscale");
	assert_false(ps[0].in_engine);
	for (int i = 0; i < 4; i++)
		daemon_api_peer_path(&ps[i + 1], &es[i], dm, 5);
	/* No region from the data plane: the peer's HomeDERP from control. */
	assert_string_equal(ps[4].relay, "x");
	assert_string_equal(ps[2].relay, "derp2");
	st.self = &ps[0];
	st.peers = &ps[1];
	st.n_peers = 4;
	json = lapi_status_json(&st);
	assert_non_null(json);
	assert_non_null(strstr(json, "\"CurAddr\":\"10.0.2.2:41641\",\"Relay\":\"headscale\""));
	assert_non_null(strstr(json, "\"RxBytes\":200,\"TxBytes\":100"));
	assert_non_null(strstr(json, "\"LastHandshake\":\"2026-01-01T00:00:00.25Z\""));
	assert_non_null(strstr(json, "\"LastHandshake\":\"0001-01-01T00:00:00Z\""));
	assert_non_null(strstr(json, "\"InMagicSock\":true,\"InEngine\":true"));

	/* The last column of `meshctl status`, from that JSON. */
	assert_int_equal(cli_status_parse(json, strlen(json), &cs), 0);
	f = open_memstream(&out, &len);
	assert_int_equal(cli_status_render(&cs, &all_rows, f, NOW), CLI_EXIT_OK);
	fclose(f);
	for (size_t i = 0; i < 5; i++)
		row(want, sizeof want, rows[i], w);
	assert_string_equal(out, want);
	free(out);
	cli_status_free(&cs);
	free(json);
	for (int i = 0; i < 5; i++) {
		free((char *)ps[i].public_key);
		free((char *)ps[i].dns_name);
	}
	netmap_free(nm);
}

/* --- whole commands against a fake meshd -------------------------------- */

struct fake {
	char dir[64];
	char sock[128];
	char sockarg[160];
	struct event_base *base;
	struct lapi_server *srv;
	pthread_t thr;
	int ctl[2];
	struct event *ctl_ev;
	struct event *timer;
	struct netmap *nm;		/* what the fake's pings resolve against */
	int ping_cancels;		/* hung pings whose client left (atomic) */
	/* loop thread only */
	const char *state;
	struct lapi_reply *up_reply;
	char last_patch[512];
	char last_up[512];
};

static void
fake_status(void *ctx, const struct lapi_request *req, struct lapi_reply *r)
{
	struct fake *f = ctx;

	if (strcmp(f->state, "Running") == 0) {
		lapi_reply_json(r, 200, status_running);
	} else {
		char buf[128];

		snprintf(buf, sizeof buf, "{\"BackendState\":\"%s\"}", f->state);
		lapi_reply_json(r, 200, buf);
	}
}

static void
fake_up_finish(evutil_socket_t fd, short what, void *arg)
{
	struct fake *f = arg;
	struct lapi_notify n = { .state = "Running" };
	char *line = lapi_notify_json(&n);

	if (f->up_reply != NULL) {
		lapi_reply_stream_write(f->up_reply, line, strlen(line));
		lapi_reply_stream_end(f->up_reply);
		f->up_reply = NULL;
		f->state = "Running";
	}
	free(line);
}

static void
fake_up_cancel(void *arg, struct lapi_reply *r)
{
	struct fake *f = arg;

	f->up_reply = NULL;
	evtimer_del(f->timer);
}

static void
fake_up(void *ctx, const struct lapi_request *req, struct lapi_reply *r)
{
	struct fake *f = ctx;
	struct lapi_up_request up;
	struct lapi_notify n = { .browse_to_url = "http://10.0.0.1:8080/register/ID1" };
	struct timeval tv = { 0, 300000 };
	char *cause = NULL, *line;

	if (lapi_up_request_parse(req->body, req->body_len, &up, &cause) != 0) {
		lapi_reply_error(r, 400, "%s", cause);
		free(cause);
		return;
	}
	snprintf(f->last_up, sizeof f->last_up, "key=%s reauth=%d set=%u host=%s",
	    up.auth_key ? up.auth_key : "", up.force_reauth, up.prefs.set,
	    up.prefs.prefs.hostname ? up.prefs.prefs.hostname : "");
	if (up.auth_key != NULL && strcmp(up.auth_key, "expired") == 0) {
		struct lapi_notify e = { .err_message = "authkey expired" };

		line = lapi_notify_json(&e);
		lapi_reply_stream_write(r, line, strlen(line));
		lapi_reply_stream_end(r);
		free(line);
	} else if (up.auth_key != NULL) {
		struct lapi_notify ok = { .state = "Running" };

		line = lapi_notify_json(&ok);
		lapi_reply_stream_write(r, line, strlen(line));
		lapi_reply_stream_end(r);
		free(line);
		f->state = "Running";
	} else {
		/* Interactive: the URL now, Running 300 ms later. */
		line = lapi_notify_json(&n);
		lapi_reply_stream_write(r, line, strlen(line));
		free(line);
		lapi_reply_set_cancel(r, fake_up_cancel, f);
		f->up_reply = r;
		evtimer_add(f->timer, &tv);
	}
	lapi_up_request_clear(&up);
}

static void
fake_logout(void *ctx, const struct lapi_request *req, struct lapi_reply *r)
{
	struct fake *f = ctx;

	f->state = "NeedsLogin";
	lapi_reply_no_content(r);
}

static void
fake_down(void *ctx, const struct lapi_request *req, struct lapi_reply *r)
{
	struct fake *f = ctx;

	f->state = "Stopped";
	lapi_reply_no_content(r);
}

static void
fake_prefs_get(void *ctx, const struct lapi_request *req, struct lapi_reply *r)
{
	lapi_reply_json(r, 200, "{\"AdvertiseRoutes\":[\"10.77.0.0/24\"]}");
}

static void
fake_prefs_patch(void *ctx, const struct lapi_request *req, struct lapi_reply *r)
{
	struct fake *f = ctx;

	snprintf(f->last_patch, sizeof f->last_patch, "%s", req->body);
	lapi_reply_json(r, 200, "{}");
}

static void
fake_ping_cancel(void *arg, struct lapi_reply *r)
{
	struct fake *f = arg;

	__atomic_add_fetch(&f->ping_cancels, 1, __ATOMIC_SEQ_CST);
}

/*
 * Pings answered by the daemon's builders: peer1 pongs directly, peer3
 * through DERP, peer2 never (the client's --timeout ends it), rtr1's
 * routes get meshd's 504 of a ping it stopped waiting for.
 */
static void
fake_ping(void *ctx, const struct lapi_request *req, struct lapi_reply *r)
{
	struct fake *f = ctx;
	const char *ip = lapi_request_query(req, "ip");
	struct engine_ping_result direct = { .latency_ns = 2000000,
	    .endpoint = "10.0.2.2:41641" };
	struct engine_ping_result derp = { .latency_ns = 30400000, .derp_region = 999 };
	const struct engine_ping_result *pong = NULL;
	struct lapi_ping_target t;
	char *json;
	int rc = daemon_api_ping_target(f->nm, ip != NULL ? ip : "", NOW * 1000LL, &t);

	if (rc < 0) {
		lapi_reply_error(r, 400, "invalid IP");
		return;
	}
	if (rc == 0 && strcmp(t.node_name, "peer2") == 0) {
		lapi_reply_set_cancel(r, fake_ping_cancel, f);
		return;
	}
	if (rc == 0 && strcmp(t.node_name, "rtr1") == 0) {
		lapi_reply_error(r, 504, "no pong from %s", t.ip);
		return;
	}
	if (rc == 0)
		pong = strcmp(t.node_name, "peer3") == 0 ? &derp : &direct;
	json = daemon_api_ping_json(&t, pong, netmap_derp_map(f->nm), NULL);
	lapi_reply_json(r, 200, json);
	free(json);
}

static void
fake_netcheck(void *ctx, const struct lapi_request *req, struct lapi_reply *r)
{
	struct fake *f = ctx;
	char *json = netcheck_fixture(f->nm);

	lapi_reply_json(r, 200, json);
	free(json);
}

static const struct lapi_handlers fake_handlers = {
	.status = fake_status, .up = fake_up, .logout = fake_logout,
	.down = fake_down, .prefs_get = fake_prefs_get,
	.prefs_patch = fake_prefs_patch, .ping = fake_ping, .netcheck = fake_netcheck,
};

static void
fake_ctl(evutil_socket_t fd, short what, void *arg)
{
	struct fake *f = arg;

	event_base_loopbreak(f->base);
}

static void *
fake_loop(void *arg)
{
	struct fake *f = arg;

	event_base_dispatch(f->base);
	return NULL;
}

static int
fake_setup(void **state)
{
	struct fake *f = calloc(1, sizeof *f);
	struct lapi_server_config cfg = { .handlers = &fake_handlers };

	assert_non_null(f);
	snprintf(f->dir, sizeof f->dir, "/tmp/meshd-test-meshctl-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->sock, sizeof f->sock, "%s/m.sock", f->dir);
	snprintf(f->sockarg, sizeof f->sockarg, "--socket=%s", f->sock);
	f->state = "NeedsLogin";
	f->nm = tailnet();
	f->base = event_base_new();
	assert_int_equal(pipe2(f->ctl, O_NONBLOCK | O_CLOEXEC), 0);
	f->ctl_ev = event_new(f->base, f->ctl[0], EV_READ, fake_ctl, f);
	event_add(f->ctl_ev, NULL);
	f->timer = evtimer_new(f->base, fake_up_finish, f);
	cfg.socket_path = f->sock;
	cfg.ctx = f;
	assert_int_equal(lapi_server_new(f->base, &cfg, &f->srv, NULL), 0);
	assert_int_equal(pthread_create(&f->thr, NULL, fake_loop, f), 0);
	cli_socket = LAPI_DEFAULT_SOCKET;
	*state = f;
	return 0;
}

static int
fake_teardown(void **state)
{
	struct fake *f = *state;

	assert_int_equal(write(f->ctl[1], "x", 1), 1);
	pthread_join(f->thr, NULL);
	lapi_server_free(f->srv);
	event_free(f->timer);
	event_free(f->ctl_ev);
	event_base_free(f->base);
	close(f->ctl[0]);
	close(f->ctl[1]);
	rmdir(f->dir);
	netmap_free(f->nm);
	free(f);
	cli_socket = LAPI_DEFAULT_SOCKET;
	return 0;
}

/* Runs meshctl with argv (NULL-terminated words after the socket flag). */
static int
run(struct fake *f, struct capture *c, ...)
{
	char *argv[16];
	int argc = 0, ret;
	va_list ap;
	char *w;

	argv[argc++] = "meshctl";
	argv[argc++] = f->sockarg;
	va_start(ap, c);
	while ((w = va_arg(ap, char *)) != NULL && argc < 15)
		argv[argc++] = w;
	va_end(ap);
	argv[argc] = NULL;
	capture_start(c);
	ret = cli_main(argc, argv);
	capture_end(c);
	return ret;
}

static void
test_cmd_up_interactive(void **state)
{
	struct fake *f = *state;
	struct capture c;
	char *url;

	/* Status while logged out: "Logged out.", exit 1; --json exits 0. */
	assert_int_equal(run(f, &c, "status", NULL), CLI_EXIT_FAIL);
	assert_string_equal(c.out, "Logged out.\n");
	capture_free(&c);
	assert_int_equal(run(f, &c, "status", "--json", NULL), CLI_EXIT_OK);
	assert_string_equal(c.out, "{\n  \"BackendState\": \"NeedsLogin\"\n}\n");
	capture_free(&c);

	assert_int_equal(run(f, &c, "up", "--login-server=http://10.0.0.1:8080",
	    "--hostname", "aux2", NULL), CLI_EXIT_OK);
	/* What hsic's ParseLoginURLFromCLILogin does: first trimmed http line. */
	url = strstr(c.err, "\n\thttp://");
	if (url == NULL)
		fail_msg("out=[%s] err=[%s]", c.out, c.err);
	assert_true(strncmp(url + 2, "http://10.0.0.1:8080/register/ID1\n", 34) == 0);
	assert_non_null(strstr(c.err, "Success.\n"));
	assert_string_equal(f->last_up, "key= reauth=0 set=2177 host=aux2");
	capture_free(&c);

	assert_int_equal(run(f, &c, "status", NULL), CLI_EXIT_OK);
	assert_non_null(strstr(c.out, "100.64.0.1  agent1"));
	capture_free(&c);
}

static void
test_cmd_up_keys(void **state)
{
	struct fake *f = *state;
	struct capture c;

	assert_int_equal(run(f, &c, "up", "--authkey=expired", NULL), CLI_EXIT_FAIL);
	assert_non_null(strstr(c.err, "backend error: authkey expired"));
	capture_free(&c);
	assert_int_equal(run(f, &c, "up", "--auth-key", "tskey-good",
	    "--force-reauth", NULL), CLI_EXIT_OK);
	assert_string_equal(c.err, "");
	assert_string_equal(c.out, "");
	assert_non_null(strstr(f->last_up, "key=tskey-good reauth=1"));
	capture_free(&c);
	/* login always re-authenticates, and knows no --reset. */
	assert_int_equal(run(f, &c, "login", "--authkey=tskey-good", NULL), CLI_EXIT_OK);
	assert_non_null(strstr(f->last_up, "reauth=1"));
	capture_free(&c);
	assert_int_equal(run(f, &c, "login", "--reset", NULL), CLI_EXIT_USAGE);
	capture_free(&c);
	/* --timeout gives up with tailscale's advice. */
	assert_int_equal(run(f, &c, "up", "--timeout=100ms", NULL), CLI_EXIT_FAIL);
	assert_non_null(strstr(c.err, "timeout waiting for meshd to enter a Running "
	    "state"));
	capture_free(&c);
}

static void
test_cmd_logout_status(void **state)
{
	struct fake *f = *state;
	struct capture c;

	f->state = "Running";
	assert_int_equal(run(f, &c, "ip", "-4", NULL), CLI_EXIT_OK);
	assert_string_equal(c.out, "100.64.0.1\n");
	capture_free(&c);
	assert_int_equal(run(f, &c, "ip", NULL), CLI_EXIT_OK);
	assert_string_equal(c.out, "100.64.0.1\nfd7a:115c:a1e0::1\n");
	capture_free(&c);
	assert_int_equal(run(f, &c, "ip", "-6", "peer1", NULL), CLI_EXIT_OK);
	assert_string_equal(c.out, "fd7a:115c:a1e0::2\n");
	capture_free(&c);
	assert_int_equal(run(f, &c, "ping", "--c=1", "--timeout=2s", "peer1", NULL),
	    CLI_EXIT_OK);
	assert_string_equal(c.out, "pong from peer1 (100.64.0.2) via 10.0.2.2:41641 "
	    "in 2ms\n");
	capture_free(&c);
	assert_int_equal(run(f, &c, "ping", "100.64.0.1", NULL), CLI_EXIT_OK);
	assert_string_equal(c.out, "100.64.0.1 is local Tailscale IP\n");
	capture_free(&c);
	assert_int_equal(run(f, &c, "ping", "agent1", NULL), CLI_EXIT_OK);
	assert_string_equal(c.out, "100.64.0.1 is local Tailscale IP\n");
	capture_free(&c);

	assert_int_equal(run(f, &c, "set", "--advertise-exit-node", NULL), CLI_EXIT_OK);
	assert_string_equal(f->last_patch, "{\"AdvertiseRoutes\":[\"10.77.0.0/24\","
	    "\"0.0.0.0/0\",\"::/0\"],\"AdvertiseRoutesSet\":true}");
	capture_free(&c);
	assert_int_equal(run(f, &c, "set", NULL), CLI_EXIT_USAGE);
	capture_free(&c);

	assert_int_equal(run(f, &c, "logout", NULL), CLI_EXIT_OK);
	capture_free(&c);
	assert_int_equal(run(f, &c, "status", NULL), CLI_EXIT_FAIL);
	assert_string_equal(c.out, "Logged out.\n");
	capture_free(&c);
	assert_int_equal(run(f, &c, "ping", "peer1", NULL), CLI_EXIT_FAIL);
	assert_string_equal(c.out, "Logged out.\n");
	capture_free(&c);

	f->state = "Running";
	assert_int_equal(run(f, &c, "down", NULL), CLI_EXIT_OK);
	capture_free(&c);
	assert_int_equal(run(f, &c, "down", NULL), CLI_EXIT_OK);
	assert_string_equal(c.err, "Tailscale was already stopped.\n");
	capture_free(&c);
	assert_int_equal(run(f, &c, "status", NULL), CLI_EXIT_FAIL);
	assert_string_equal(c.out, "Tailscale is stopped.\n");
	capture_free(&c);
	/* A route this meshd lacks. */
	assert_int_equal(run(f, &c, "dns", "status", NULL), CLI_EXIT_FAIL);
	assert_non_null(strstr(c.err, "not implemented"));
	capture_free(&c);
}

static void
test_cmd_ping(void **state)
{
	struct fake *f = *state;
	struct capture c;

	f->state = "Running";
	ping_interval_ns = NS_PER_MS;
	assert_int_equal(run(f, &c, "ping", "--c=1", "--timeout=2s", "peer1", NULL),
	    CLI_EXIT_OK);
	assert_string_equal(c.out, "pong from peer1 (100.64.0.2) via 10.0.2.2:41641 "
	    "in 2ms\n");
	assert_string_equal(c.err, "");
	capture_free(&c);
	/* Our own address, by IP (meshd says so) and by name (meshctl does). */
	assert_int_equal(run(f, &c, "ping", "100.64.0.1", NULL), CLI_EXIT_OK);
	assert_string_equal(c.out, "100.64.0.1 is local Tailscale IP\n");
	capture_free(&c);
	assert_int_equal(run(f, &c, "ping", "agent1.ts.test", NULL), CLI_EXIT_OK);
	assert_string_equal(c.out, "100.64.0.1 is local Tailscale IP\n");
	capture_free(&c);

	/* Only DERP: --c pongs, then the until-direct verdict. */
	assert_int_equal(run(f, &c, "ping", "--c", "2", "peer3.ts.test.", NULL),
	    CLI_EXIT_FAIL);
	assert_string_equal(c.out,
	    "pong from peer3 (100.64.0.4) via DERP(headscale) in 30ms\n"
	    "pong from peer3 (100.64.0.4) via DERP(headscale) in 30ms\n");
	assert_string_equal(c.err, "meshctl: direct connection not established\n");
	capture_free(&c);
	assert_int_equal(run(f, &c, "ping", "--c=2", "--until-direct=false", "peer3", NULL),
	    CLI_EXIT_OK);
	assert_string_equal(c.err, "");
	assert_non_null(strstr(c.out, "in 30ms\npong from peer3"));
	capture_free(&c);

	/* No pong before --timeout: each ping says so; none at all fails. */
	assert_int_equal(run(f, &c, "ping", "--c=2", "--timeout=300ms", "peer2", NULL),
	    CLI_EXIT_FAIL);
	assert_string_equal(c.out, "ping \"100.64.0.3\" timed out\n"
	    "ping \"100.64.0.3\" timed out\n");
	assert_string_equal(c.err, "meshctl: no reply\n");
	capture_free(&c);
	/* meshd heard both clients leave. */
	for (int i = 0; i < 200 && __atomic_load_n(&f->ping_cancels, __ATOMIC_SEQ_CST) < 2;
	    i++)
		usleep(10000);
	assert_int_equal(__atomic_load_n(&f->ping_cancels, __ATOMIC_SEQ_CST), 2);
	/* meshd giving up first reads the same. */
	assert_int_equal(run(f, &c, "ping", "--c=1", "10.77.0.9", NULL), CLI_EXIT_FAIL);
	assert_string_equal(c.out, "ping \"10.77.0.9\" timed out\n");
	capture_free(&c);
	/* A spent timeout: Go's context fails at once, so does ours. */
	assert_int_equal(run(f, &c, "ping", "--c=3", "--timeout=0s", "peer1", NULL),
	    CLI_EXIT_FAIL);
	assert_string_equal(c.out, "ping \"100.64.0.2\" timed out\n"
	    "ping \"100.64.0.2\" timed out\nping \"100.64.0.2\" timed out\n");
	capture_free(&c);

	/* The daemon's errors, on stderr. */
	assert_int_equal(run(f, &c, "ping", "100.64.0.6", NULL), CLI_EXIT_FAIL);
	assert_string_equal(c.out, "");
	assert_string_equal(c.err, "meshctl: peer's node key has expired\n");
	capture_free(&c);
	assert_int_equal(run(f, &c, "ping", "100.64.0.99", NULL), CLI_EXIT_FAIL);
	assert_string_equal(c.err, "meshctl: no matching peer\n");
	capture_free(&c);

	assert_int_equal(run(f, &c, "ping", "--verbose", "--c=1", "peer1", NULL),
	    CLI_EXIT_OK);
	assert_non_null(strstr(c.err, " lookup \"peer1\" => \"100.64.0.2\"\n"));
	capture_free(&c);
	ping_interval_ns = NS_PER_SEC;
}

static void
test_cmd_netcheck(void **state)
{
	struct fake *f = *state;
	struct capture c;

	setenv("TZ", "UTC", 1);
	tzset();
	assert_int_equal(run(f, &c, "netcheck", NULL), CLI_EXIT_OK);
	assert_string_equal(c.out, netcheck_text);
	assert_string_equal(c.err, "");
	capture_free(&c);
	/* json.MarshalIndent(report, "", "\t") */
	assert_int_equal(run(f, &c, "netcheck", "--format=json", NULL), CLI_EXIT_OK);
	assert_string_equal(c.err, "# Warning: this JSON format is not yet considered "
	    "a stable interface\n");
	assert_string_equal(c.out, "{\n"
	    "\t\"Now\": \"2026-01-01T01:01:01.12Z\",\n"
	    "\t\"UDP\": true,\n"
	    "\t\"IPv6\": false,\n"
	    "\t\"IPv4\": true,\n"
	    "\t\"IPv6CanSend\": false,\n"
	    "\t\"IPv4CanSend\": true,\n"
	    "\t\"OSHasIPv6\": true,\n"
	    "\t\"ICMPv4\": false,\n"
	    "\t\"MappingVariesByDestIP\": false,\n"
	    "\t\"UPnP\": null,\n"
	    "\t\"PMP\": null,\n"
	    "\t\"PCP\": null,\n"
	    "\t\"PreferredDERP\": 999,\n"
	    "\t\"RegionLatency\": {\n\t\t\"901\": 20049999,\n\t\t\"999\": 1234567\n\t},\n"
	    "\t\"RegionV4Latency\": {\n\t\t\"901\": 25000000,\n\t\t\"999\": 1234567\n"
	    "\t},\n"
	    "\t\"RegionV6Latency\": {\n\t\t\"901\": 20049999\n\t},\n"
	    "\t\"GlobalV4Counters\": null,\n"
	    "\t\"GlobalV6Counters\": null,\n"
	    "\t\"GlobalV4\": \"10.0.1.2:41641\",\n"
	    "\t\"GlobalV6\": \"\",\n"
	    "\t\"CaptivePortal\": null\n"
	    "}\n");
	capture_free(&c);
	assert_int_equal(run(f, &c, "netcheck", "--format", "json-line", NULL),
	    CLI_EXIT_OK);
	assert_int_equal(c.out_len, strlen(netcheck_report_json) + 1);
	assert_true(strncmp(c.out, netcheck_report_json, c.out_len - 1) == 0);
	assert_string_equal(c.out + c.out_len - 1, "\n");
	capture_free(&c);
	assert_int_equal(run(f, &c, "netcheck", "--format=xml", NULL), CLI_EXIT_FAIL);
	assert_string_equal(c.err, "meshctl: unknown output format \"xml\"\n");
	capture_free(&c);
}

static void
test_cmd_no_daemon(void **state)
{
	struct capture c;
	char *argv_status[] = { "meshctl", "--socket", "/nonexistent/meshd.sock",
	    "status", NULL };
	char *argv_version[] = { "meshctl", "--socket=/nonexistent/meshd.sock",
	    "version", NULL };
	char *argv_bad[] = { "meshctl", "frobnicate", NULL };
	char *argv_none[] = { "meshctl", NULL };

	(void)state;
	capture_start(&c);
	assert_int_equal(cli_main(4, argv_status), CLI_EXIT_FAIL);
	capture_end(&c);
	assert_string_equal(c.err, "meshctl: failed to connect to meshd at "
	    "/nonexistent/meshd.sock: is meshd running?\n");
	capture_free(&c);
	/* version works without a daemon (the harness polls it at start-up). */
	capture_start(&c);
	assert_int_equal(cli_main(3, argv_version), CLI_EXIT_OK);
	capture_end(&c);
	assert_string_equal(c.out, MESHD_VERSION "\n");
	capture_free(&c);
	capture_start(&c);
	assert_int_equal(cli_main(2, argv_bad), CLI_EXIT_USAGE);
	assert_int_equal(cli_main(1, argv_none), CLI_EXIT_USAGE);
	capture_end(&c);
	assert_non_null(strstr(c.err, "unknown subcommand: frobnicate"));
	capture_free(&c);
	cli_socket = LAPI_DEFAULT_SOCKET;
}

static void
test_cmd_version_daemon(void **state)
{
	struct fake *f = *state;
	struct capture c;

	assert_int_equal(run(f, &c, "version", NULL), CLI_EXIT_OK);
	assert_string_equal(c.out, MESHD_VERSION "\n  daemon: " MESHD_VERSION "\n");
	capture_free(&c);
	assert_int_equal(run(f, &c, "version", "--daemon", NULL), CLI_EXIT_OK);
	assert_string_equal(c.out, "Client: " MESHD_VERSION "\nDaemon: "
	    MESHD_VERSION "\n");
	capture_free(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_table),
		cmocka_unit_test(test_status_filters),
		cmocka_unit_test(test_status_health_and_names),
		cmocka_unit_test(test_status_not_running),
		cmocka_unit_test(test_status_hostile_json),
		cmocka_unit_test(test_flags_go_syntax),
		cmocka_unit_test(test_flags_errors),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_go_duration_string),
		cmocka_unit_test(test_auth_key_file),
		cmocka_unit_test(test_prefs_from_flags),
		cmocka_unit_test(test_prefs_route_merging),
		cmocka_unit_test(test_prefs_bad_values),
		cmocka_unit_test(test_ip_selection),
		cmocka_unit_test(test_resolve_host),
		cmocka_unit_test(test_ping_render),
		cmocka_unit_test(test_up_events),
		cmocka_unit_test(test_whois_render),
		cmocka_unit_test(test_netcheck_and_dns_render),
		cmocka_unit_test(test_ping_builders),
		cmocka_unit_test(test_netcheck_builder),
		cmocka_unit_test(test_status_path_builder),
		cmocka_unit_test_setup_teardown(test_cmd_up_interactive, fake_setup,
		    fake_teardown),
		cmocka_unit_test_setup_teardown(test_cmd_up_keys, fake_setup,
		    fake_teardown),
		cmocka_unit_test_setup_teardown(test_cmd_logout_status, fake_setup,
		    fake_teardown),
		cmocka_unit_test_setup_teardown(test_cmd_ping, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_cmd_netcheck, fake_setup,
		    fake_teardown),
		cmocka_unit_test(test_cmd_no_daemon),
		cmocka_unit_test_setup_teardown(test_cmd_version_daemon, fake_setup,
		    fake_teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("meshctl", tests, NULL, NULL);
}

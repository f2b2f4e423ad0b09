// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * `meshd debug-control`: runs the control client alone against a control
 * server, with the keys of a state directory, and prints the netmap it
 * gets.  For debugging a control server or a login without bringing up
 * the data plane; the tests use it against a real Headscale.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <sodium.h>

#include "agent/control/ctlclient.h"
#include "agent/control/netmap.h"
#include "agent/ctltool.h"
#include "agent/state.h"
#include "common/log.h"
#include "common/util.h"

struct tool {
	struct event_base *base;
	bool until_netmap;
	bool json;
	int status;
};

static void
print_prefixes(const struct netmap_prefix *p, unsigned int n)
{
	char buf[INET6_ADDRSTRLEN];

	for (unsigned int i = 0; i < n; i++) {
		inet_ntop(p[i].family == 6 ? AF_INET6 : AF_INET, p[i].addr, buf, sizeof buf);
		printf("%s%s/%u", i ? "," : "", buf, p[i].bits);
	}
}

static void
print_node(const char *what, const struct netmap_node *n)
{
	printf("%s %lld %s %s ", what, (long long)n->id, n->name, n->hostname);
	print_prefixes(n->addrs, n->n_addrs);
	printf(" %s\n", n->online == NETMAP_ONLINE_YES ? "online" :
	    n->online == NETMAP_ONLINE_NO ? "offline" : "-");
}

static void
on_phase(void *ctx, enum ctl_phase phase, const char *url)
{
	if (phase == CTL_NEEDS_LOGIN) {
		/* On its own line at once, as `tailscale up` prints it. */
		printf("\nTo authenticate, visit:\n\n\t%s\n\n", url);
		fflush(stdout);
	}
}

static void
on_error(void *ctx, const char *msg, bool fatal)
{
	struct tool *t = ctx;

	/* Transient errors are in the log already; a fatal one ends the run. */
	if (fatal) {
		fprintf(stderr, "meshd: %s\n", msg);
		t->status = 1;
		event_base_loopbreak(t->base);
	}
}

static void
on_registered(void *ctx, const char *login, bool expired)
{
	printf("registered%s%s%s\n", login[0] ? " as " : "", login, expired ? " (key expired)" : "");
	fflush(stdout);
}

static void
on_netmap(void *ctx, struct netmap *nm, uint32_t changed)
{
	struct tool *t = ctx;
	struct netmap_iter it = { 0 };
	const struct netmap_node *n;

	if (netmap_self(nm) == NULL)
		return;
	print_node("self", netmap_self(nm));
	while ((n = netmap_iter_next(nm, &it)) != NULL)
		print_node("peer", n);
	printf("peers %zu derp-regions %zu\n", netmap_peer_count(nm),
	    netmap_derp_map(nm) ? netmap_derp_map(nm)->n_regions : (size_t)0);
	fflush(stdout);
	if (t->until_netmap) {
		t->status = 0;
		event_base_loopbreak(t->base);
	}
}

static const struct ctl_client_ops tool_ops = { on_phase, on_error, on_registered, on_netmap };

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopbreak(arg);
}

static void
usage(void)
{
	fprintf(stderr, "usage: meshd debug-control --login-server URL --statedir DIR [--authkey KEY|file:PATH]\n"
	    "                           [--hostname NAME] [--until-netmap] [--timeout SECONDS]\n");
}

/* "file:PATH" reads the key from a file, as tailscale up does. */
static char *
read_authkey(const char *arg)
{
	char buf[512];
	FILE *f;
	size_t n;

	if (strncmp(arg, "file:", 5) != 0)
		return xstrdup(arg);
	if ((f = fopen(arg + 5, "r")) == NULL)
		return NULL;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	return xstrdup(buf);
}

int
ctltool_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "login-server", required_argument, NULL, 'l' },
		{ "statedir", required_argument, NULL, 's' },
		{ "authkey", required_argument, NULL, 'a' },
		{ "hostname", required_argument, NULL, 'H' },
		{ "until-netmap", no_argument, NULL, 'u' },
		{ "timeout", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	const char *server = NULL, *dir = NULL;
	char *authkey = NULL, *cause = NULL, hostname[256];
	struct tool t = { .status = 1 };
	struct ctl_client_cfg cfg = { 0 };
	struct ctl_client *cl = NULL;
	struct evdns_base *dns = NULL;
	struct event *sig = NULL, *tmo = NULL;
	struct state *st;
	bool found, written;
	long timeout = 0;
	uint8_t disco_priv[32];
	int c;

	if (gethostname(hostname, sizeof hostname) != 0)
		snprintf(hostname, sizeof hostname, "meshd");
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'l': server = optarg; break;
		case 's': dir = optarg; break;
		case 'a':
			free(authkey);
			if ((authkey = read_authkey(optarg)) == NULL) {
				fprintf(stderr, "meshd: cannot read the auth key file\n");
				return 1;
			}
			break;
		case 'H': snprintf(hostname, sizeof hostname, "%s", optarg); break;
		case 'u': t.until_netmap = true; break;
		case 't': timeout = strtol(optarg, NULL, 10); break;
		default: usage(); free(authkey); return 2;
		}
	}
	if (server == NULL || dir == NULL) {
		usage();
		free(authkey);
		return 2;
	}
	if (sodium_init() < 0)
		fatal("libsodium failed to initialise");

	st = state_new();
	if (state_load(st, dir, &found, &cause) < 0) {
		fprintf(stderr, "meshd: %s\n", cause);
		goto out;
	}
	state_ensure_keys(st);
	if (state_save(st, dir, &written, &cause) < 0) {
		fprintf(stderr, "meshd: %s\n", cause);
		goto out;
	}

	cfg.server_url = server;
	cfg.machine_priv = state_machine_key(st);
	state_node_pubkey(st, cfg.node_pub);
	/* A fresh disco key per run, as tailscaled does. */
	randombytes_buf(disco_priv, sizeof disco_priv);
	crypto_scalarmult_curve25519_base(cfg.disco_pub, disco_priv);
	sodium_memzero(disco_priv, sizeof disco_priv);
	cfg.auth_key = authkey;
	cfg.hostname = hostname;

	t.base = event_base_new();
	dns = evdns_base_new(t.base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	if (dns == NULL)
		dns = evdns_base_new(t.base, 0);
	cl = ctl_client_new(t.base, dns, &cfg, &tool_ops, &t);
	if (cl == NULL) {
		fprintf(stderr, "meshd: cannot start the control client\n");
		goto out;
	}
	sig = evsignal_new(t.base, SIGINT, on_signal, t.base);
	event_add(sig, NULL);
	if (timeout > 0) {
		struct timeval tv = { timeout, 0 };

		tmo = evtimer_new(t.base, on_signal, t.base);
		evtimer_add(tmo, &tv);
	}
	if (!t.until_netmap)
		t.status = 0;
	ctl_client_start(cl);
	event_base_dispatch(t.base);
	if (t.until_netmap && t.status != 0)
		fprintf(stderr, "meshd: no netmap before the timeout\n");
out:
	free(cause);
	ctl_client_free(cl);
	if (sig)
		event_free(sig);
	if (tmo)
		event_free(tmo);
	if (dns)
		evdns_base_free(dns, 0);
	if (t.base)
		event_base_free(t.base);
	state_free(st);
	if (authkey) {
		sodium_memzero(authkey, strlen(authkey));
		free(authkey);
	}
	return t.status;
}

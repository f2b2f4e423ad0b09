// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * `meshd [--statedir DIR] [--socket PATH] [--tun NAME] [--port N] [--verbose N]`
 * and `meshd --cleanup`: the node daemon, with tailscaled's flag names.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <event2/event.h>
#include <sodium.h>

#include "agent/daemon.h"
#include "agent/node.h"
#include "agent/router.h"
#include "agent/sdnotify.h"
#include "common/log.h"
#include "common/util.h"
#include "netlink/rtnl.h"

#define DEFAULT_STATEDIR	"/var/lib/meshd"
#define DEFAULT_SOCKET		"/run/meshd/meshd.sock"
#define DEFAULT_TUN		"mesh0"
#define DEFAULT_PORT		41641

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	log_info("signal %d: shutting down", (int)sig);
	event_base_loopbreak(arg);
}

/* Removes routes and rules a meshd that died without cleaning up left behind. */
static int
cleanup(void)
{
	struct rtnl *r;
	int err;

	if ((err = rtnl_open(&r)) < 0) {
		fprintf(stderr, "meshd: netlink: %s\n", strerror(-err));
		return 1;
	}
	err = router_cleanup(r);
	rtnl_close(r);
	if (err < 0) {
		fprintf(stderr, "meshd: cleanup: %s\n", strerror(-err));
		return 1;
	}
	return 0;
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: meshd [--statedir DIR] [--socket PATH] [--tun NAME] [--port N] [--verbose N]\n"
	    "       meshd --cleanup\n"
	    "defaults: --statedir %s --socket %s --tun %s --port %d\n",
	    DEFAULT_STATEDIR, DEFAULT_SOCKET, DEFAULT_TUN, DEFAULT_PORT);
}

int
daemon_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "statedir", required_argument, NULL, 's' },
		{ "socket", required_argument, NULL, 'S' },
		{ "tun", required_argument, NULL, 't' },
		{ "port", required_argument, NULL, 'p' },
		{ "verbose", required_argument, NULL, 'v' },
		{ "cleanup", no_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct node_cfg cfg = { DEFAULT_STATEDIR, DEFAULT_TUN, DEFAULT_PORT };
	const char *socket_path = DEFAULT_SOCKET;
	struct event_base *base;
	struct event *sigs[2];
	struct daemon_api *api = NULL;
	struct node *n;
	char *cause = NULL;
	int c, ret = 1;
	long v;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's': cfg.statedir = optarg; break;
		case 'S': socket_path = optarg; break;
		case 't': cfg.tun = optarg; break;
		case 'p':
			v = strtol(optarg, NULL, 10);
			if (v < 0 || v > 65535) {
				fprintf(stderr, "meshd: --port must be 0..65535\n");
				return 2;
			}
			cfg.port = (uint16_t)v;
			break;
		case 'v':
			log_level = LOG_LVL_INFO + (int)strtol(optarg, NULL, 10);
			if (log_level > LOG_LVL_TRACE)
				log_level = LOG_LVL_TRACE;
			break;
		case 'c': return cleanup();
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (sodium_init() < 0)
		fatal("libsodium failed to initialise");
	/* Keys live in OpenSSL and json-c buffers too: keep every page out of swap (wgd.c). */
	if (mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) < 0)
		log_debug("mlockall: %s", strerror(errno));
	signal(SIGPIPE, SIG_IGN);

	base = event_base_new();
	if (base == NULL)
		fatal("cannot create the event loop");
	n = node_new(base, &cfg, &cause);
	if (n == NULL) {
		log_err("%s", cause ? cause : "cannot start");
		free(cause);
		event_base_free(base);
		return 1;
	}
	api = daemon_api_open(base, socket_path, n, &cause);
	if (api == NULL) {
		log_err("%s", cause ? cause : "cannot open the local API socket");
		free(cause);
		goto out;
	}
	sigs[0] = evsignal_new(base, SIGTERM, on_signal, base);
	sigs[1] = evsignal_new(base, SIGINT, on_signal, base);
	event_add(sigs[0], NULL);
	event_add(sigs[1], NULL);
	log_info("meshd started: state %s, socket %s, TUN %s", cfg.statedir, socket_path, cfg.tun);
	/* Ready once the local API answers; "Running" is reported separately. */
	sd_notify("READY=1");
	event_base_dispatch(base);
	sd_notify("STOPPING=1");
	event_free(sigs[0]);
	event_free(sigs[1]);
	ret = 0;
out:
	daemon_api_close(api);
	node_free(n);
	event_base_free(base);
	return ret;
}

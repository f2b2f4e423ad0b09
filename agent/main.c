// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * meshd: the node daemon (agent/daemon.c), the plain WireGuard mode
 * `meshd wg IFNAME` (wg/wgd.c), and `meshd debug-control` (agent/ctltool.c).
 */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "agent/ctltool.h"
#include "agent/derptool.h"
#include "agent/daemon.h"
#include "common/version.h"
#include "wg/wgd.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: meshd [--statedir DIR] [--socket PATH] [--tun NAME] [--port N] [--verbose N]\n"
	    "       meshd --cleanup\n"
	    "       meshd wg [-f] IFNAME          userspace WireGuard interface, configured by wg(8)\n"
	    "       meshd wg --stats IFNAME       its packet and drop counters\n"
	    "       meshd debug-control --login-server URL --statedir DIR [--authkey KEY] ...\n"
	    "                                     register with a control server and print the netmap\n"
	    "       meshd debug-derp --url URL recv|send ...\n"
	    "                                     talk to a DERP server directly\n"
	    "       meshd --version\n"
	    "environment:\n"
	    "  MESHD_DEBUG_USE_DERP_HTTP=1  DERP over plain HTTP, for test servers without TLS\n"
	    "                               (as tailscaled's TS_DEBUG_USE_DERP_HTTP)\n"
	    "  MESHD_NO_OFFLOAD=1           no TUN and UDP offloads\n");
}

int
main(int argc, char **argv)
{
	log_init("meshd", LOG_LVL_INFO);
	if (argc >= 2 && strcmp(argv[1], "wg") == 0)
		return wgd_main(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "debug-control") == 0)
		return ctltool_main(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "debug-derp") == 0)
		return derptool_main(argc - 1, argv + 1);
	if (argc == 2 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0)) {
		printf("%s\n", MESHD_VERSION);
		return 0;
	}
	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc == 1 || argv[1][0] == '-')
		return daemon_main(argc, argv);
	usage(stderr);
	return 2;
}

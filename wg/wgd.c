// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * `meshd wg [-f] IFNAME`: a plain userspace WireGuard interface, configured
 * by wg(8) over the UAPI socket, like wireguard-go.  The data path is dp.c;
 * this host sends each datagram to the peer's endpoint, which WireGuard's
 * roaming keeps current.
 */
#include <net/if.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <event2/event.h>
#include <sodium.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/pkt.h"
#include "common/util.h"
#include "wg/dp.h"
#include "wg/uapi.h"
#include "wg/wg.h"
#include "wg/wgd.h"

struct wgd {
	struct event_base *base;
	struct dp *dp;
	struct uapi_host host;
	struct uapi_server *uapi;
	struct event *sig_ev[2];
};

/* --- where datagrams go: the peer's endpoint --- */

static void
wgd_send_pkt(void *ctx, struct wg_peer *peer, struct pkt *p)
{
	struct wgd *w = ctx;
	union wg_endpoint ep;

	dp_send(w->dp, p, wg_peer_endpoint(peer, &ep) ? &ep : NULL);
}

static void
wgd_send(void *ctx, struct wg_peer *peer, const union wg_endpoint *to, const uint8_t *buf,
    size_t len)
{
	struct wgd *w = ctx;

	/* Handshakes and keepalives are rare: send at once, no batching. */
	if (to != NULL)
		(void)dp_sendto(w->dp, buf, len, to);
}

static const struct dp_hooks wgd_hooks = {
	.send_pkt = wgd_send_pkt,
	.send = wgd_send,
};

/* --- UAPI host --- */

static uint16_t
host_get_port(void *ctx)
{
	return dp_port(((struct wgd *)ctx)->dp);
}

static int
host_set_port(void *ctx, uint16_t port)
{
	return dp_set_port(((struct wgd *)ctx)->dp, port);
}

static uint32_t
host_get_fwmark(void *ctx)
{
	return dp_fwmark(((struct wgd *)ctx)->dp);
}

static int
host_set_fwmark(void *ctx, uint32_t mark)
{
	return dp_set_fwmark(((struct wgd *)ctx)->dp, mark);
}

static uint64_t
host_now(void *ctx)
{
	return clock_mono_ns();
}

static void
host_changed(void *ctx)
{
	dp_changed(((struct wgd *)ctx)->dp);
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct wgd *w = arg;

	log_info("%s: signal %d, shutting down", dp_ifname(w->dp), (int)sig);
	event_base_loopbreak(w->base);
}

/* --- life cycle --- */

static void
wgd_free(struct wgd *w)
{
	uapi_server_close(w->uapi);
	for (int i = 0; i < 2; i++)
		if (w->sig_ev[i])
			event_free(w->sig_ev[i]);
	dp_free(w->dp);
	if (w->base)
		event_base_free(w->base);
	free(w);
}

static struct wgd *
wgd_new(const char *ifname, char **cause)
{
	struct wgd *w = xcalloc(1, sizeof *w);
	struct dp_cfg cfg = { .ifname = ifname };

	w->base = event_base_new();
	if (w->base == NULL) {
		*cause = xstrdup("out of memory");
		goto fail;
	}
	w->dp = dp_new(w->base, &cfg, &wgd_hooks, w, cause);
	if (w->dp == NULL)
		goto fail;
	w->sig_ev[0] = evsignal_new(w->base, SIGTERM, signal_cb, w);
	w->sig_ev[1] = evsignal_new(w->base, SIGINT, signal_cb, w);
	event_add(w->sig_ev[0], NULL);
	event_add(w->sig_ev[1], NULL);

	w->host = (struct uapi_host){
		.ctx = w,
		.get_listen_port = host_get_port,
		.set_listen_port = host_set_port,
		.get_fwmark = host_get_fwmark,
		.set_fwmark = host_set_fwmark,
		.now = host_now,
		.changed = host_changed,
	};
	w->uapi = uapi_server_open(w->base, dp_ifname(w->dp), dp_device(w->dp), &w->host, cause);
	if (w->uapi == NULL)
		goto fail;
	return w;
fail:
	wgd_free(w);
	return NULL;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: meshd wg [-f] IFNAME    run a userspace WireGuard interface (configure with wg(8))\n"
	    "       meshd wg --stats IFNAME show the interface's packet and drop counters\n");
}

static int
print_stats(const char *ifname)
{
	char *resp = NULL;
	int r = uapi_client_request(ifname, "get=stats\n\n", &resp);

	if (resp == NULL) {
		fprintf(stderr, "meshd wg: %s: %s\n", ifname, strerror(-r));
		return 1;
	}
	/* Print the counters without the protocol's closing errno line. */
	for (char *line = strtok(resp, "\n"); line; line = strtok(NULL, "\n"))
		if (strncmp(line, "errno=", 6) != 0)
			printf("%s\n", line);
	free(resp);
	return r == 0 ? 0 : 1;
}

/*
 * Forks; the parent waits until the child reports that the interface is up
 * (or why not) and exits with that status, so `meshd wg IFNAME` fails
 * visibly when it cannot create the device.
 */
static int
background(int *notify_fd)
{
	int fds[2];
	pid_t pid;
	char c;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(fds[1]);
		if (read(fds[0], &c, 1) != 1)
			c = 1;
		_exit(c == 0 ? 0 : 1);
	}
	close(fds[0]);
	setsid();
	*notify_fd = fds[1];
	return 0;
}

int
wgd_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "stats", no_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool foreground = false, stats = false;
	int c, notify = -1, ret = 1;
	char *cause = NULL;
	struct wgd *w;

	while ((c = getopt_long(argc, argv, "fh", opts, NULL)) != -1) {
		switch (c) {
		case 'f': foreground = true; break;
		case 's': stats = true; break;
		default: usage(); return c == 'h' ? 0 : 2;
		}
	}
	if (optind != argc - 1 || strlen(argv[optind]) >= IFNAMSIZ) {
		usage();
		return 2;
	}
	if (stats)
		return print_stats(argv[optind]);
	if (sodium_init() < 0)
		fatal("libsodium failed to initialise");
	if (!foreground && background(&notify) < 0)
		fatal("fork: %s", strerror(errno));
	/*
	 * Session keys live inside OpenSSL's cipher contexts, out of reach of
	 * sodium_mlock().  Lock the whole process instead, page by page as it
	 * is touched (MCL_ONFAULT), so no secret is ever swapped out and the
	 * resident size does not grow.  Without CAP_IPC_LOCK this fails: go on.
	 */
	if (mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) < 0)
		log_debug("mlockall: %s", strerror(errno));

	w = wgd_new(argv[optind], &cause);
	if (w == NULL) {
		log_err("%s", cause ? cause : "failed to start");
		free(cause);
		if (notify >= 0)
			(void)!write(notify, "\1", 1);
		return 1;
	}
	log_info("%s: up, listening on UDP port %u%s", dp_ifname(w->dp), dp_port(w->dp),
	    dp_offloads(w->dp) ? ", with TUN and UDP offloads" : "");
	if (notify >= 0) {
		int devnull = open("/dev/null", O_RDWR);

		(void)!write(notify, "\0", 1);
		close(notify);
		if (devnull >= 0) {
			dup2(devnull, 0);
			dup2(devnull, 1);
			dup2(devnull, 2);
			close(devnull);
		}
	}
	event_base_dispatch(w->base);
	ret = 0;
	log_info("%s: down", dp_ifname(w->dp));
	wgd_free(w);
	return ret;
}

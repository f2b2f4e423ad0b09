// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wg/tun.h"

int
tun_open(char name[static IFNAMSIZ], bool offload, bool *vnet, char **cause)
{
	struct ifreq ifr;
	int fd, err, hdrlen = 10;

	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		if (asprintf(cause, "open /dev/net/tun: %s", strerror(errno)) < 0)
			*cause = NULL;
		return err;
	}
	memset(&ifr, 0, sizeof ifr);
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (offload ? IFF_VNET_HDR : 0);
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		err = -errno;
		if (asprintf(cause, "create TUN device %s: %s", name, strerror(errno)) < 0)
			*cause = NULL;
		close(fd);
		return err;
	}
	snprintf(name, IFNAMSIZ, "%s", ifr.ifr_name);
	*vnet = false;
	if (offload) {
		/* TSO lets the kernel hand us 64 KiB of TCP per read; without it, no virtio headers. */
		if (ioctl(fd, TUNSETVNETHDRSZ, &hdrlen) == 0 &&
		    ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) == 0) {
			*vnet = true;
		} else {
			close(fd);
			return tun_open(name, false, vnet, cause);
		}
	}
	return fd;
}

static int
mtu_ioctl(const char *name, unsigned long req, int *mtu)
{
	struct ifreq ifr;
	int s, ret = 0;

	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	memset(&ifr, 0, sizeof ifr);
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
	ifr.ifr_mtu = *mtu;
	if (ioctl(s, req, &ifr) < 0)
		ret = -errno;
	else
		*mtu = ifr.ifr_mtu;
	close(s);
	return ret;
}

int
tun_set_mtu(const char *name, unsigned int mtu)
{
	int m = (int)mtu;

	return mtu_ioctl(name, SIOCSIFMTU, &m);
}

int
tun_get_mtu(const char *name)
{
	int m = 0, ret = mtu_ioctl(name, SIOCGIFMTU, &m);

	return ret < 0 ? ret : m;
}

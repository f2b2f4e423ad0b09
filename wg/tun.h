/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_TUN_H
#define MESHD_TUN_H

#include <net/if.h>
#include <stdbool.h>

/*
 * Opens (creating if need be) the TUN device name, without packet info
 * headers, non-blocking and close-on-exec.  With offload, it asks for virtio
 * headers and TCP segmentation offload, and sets *vnet if the kernel agreed.
 * Returns the fd, or -errno with *cause set (caller frees).  name is updated
 * with the kernel's name.
 */
int tun_open(char name[static IFNAMSIZ], bool offload, bool *vnet, char **cause);
/* Sets the MTU of the device by name in the current network namespace. */
int tun_set_mtu(const char *name, unsigned int mtu);
/* The MTU of the device by name, or -errno. */
int tun_get_mtu(const char *name);

#endif

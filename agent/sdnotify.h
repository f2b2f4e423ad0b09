/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_SDNOTIFY_H
#define MESHD_SDNOTIFY_H

/*
 * systemd's readiness protocol: one datagram to $NOTIFY_SOCKET.  Written
 * out (a dozen lines) rather than linking libsystemd, so that meshd runs
 * unchanged on routers without systemd; without $NOTIFY_SOCKET it does
 * nothing.
 */
void sd_notify(const char *state);

#endif

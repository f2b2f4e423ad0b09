/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_DAEMON_H
#define MESHD_DAEMON_H

struct event_base;
struct node;
struct daemon_api;

/* `meshd [flags]`: the node daemon.  Returns the exit status. */
int daemon_main(int argc, char **argv);

/* The local API on socket_path, answering from the node.  NULL with *cause set. */
struct daemon_api *daemon_api_open(struct event_base *base, const char *socket_path,
    struct node *n, char **cause);
void daemon_api_close(struct daemon_api *api);	/* NULL-safe; removes the socket */

#endif

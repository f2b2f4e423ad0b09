/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_DERPTOOL_H
#define MESHD_DERPTOOL_H

/* `meshd debug-derp ...`: argv[0] is "debug-derp".  Returns the exit status. */
int derptool_main(int argc, char **argv);

#endif

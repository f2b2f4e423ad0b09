/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_CTLTOOL_H
#define MESHD_CTLTOOL_H

/* `meshd debug-control ...`: argv[0] is "debug-control".  Returns the exit status. */
int ctltool_main(int argc, char **argv);

#endif

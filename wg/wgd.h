/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_WGD_H
#define MESHD_WGD_H

/* `meshd wg ...`: argv[0] is "wg".  Returns the exit status. */
int wgd_main(int argc, char **argv);

#endif

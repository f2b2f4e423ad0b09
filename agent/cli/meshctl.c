// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/* meshctl: the command-line client of meshd. */
#include <stdio.h>
#include <string.h>

#include "common/version.h"

int
main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "version") == 0) {
		printf("%s\n", MESHD_VERSION);
		return 0;
	}
	fprintf(stderr, "usage: meshctl version\n");
	return 2;
}

// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/* RegisterResponse bodies from the control server (control.md §5.2). */
#include <stdlib.h>
#include <string.h>

#include "agent/control/ctlclient.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_register_result r;

	if (ctl_parse_register((const char *)data, size, &r) == 0) {
		/* Every kept string is terminated within its field. */
		if (memchr(r.auth_url, 0, sizeof r.auth_url) == NULL ||
		    memchr(r.error, 0, sizeof r.error) == NULL ||
		    memchr(r.login_name, 0, sizeof r.login_name) == NULL)
			abort();
	}
	return 0;
}

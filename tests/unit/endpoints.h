/* SPDX-License-Identifier: MIT */
/* Copyright (C) 2026 The meshd Authors. */
#ifndef MESHD_TEST_ENDPOINTS_H
#define MESHD_TEST_ENDPOINTS_H

/*
 * Endpoints from text, for the unit tests.  Include after <cmocka.h>: a
 * malformed address in a test fails it.
 */

#include <arpa/inet.h>
#include <string.h>

#include "wg/wg.h"

static inline union wg_endpoint
ep4(const char *ip, uint16_t port)
{
	union wg_endpoint ep;

	memset(&ep, 0, sizeof ep);
	ep.in4.sin_family = AF_INET;
	ep.in4.sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, ip, &ep.in4.sin_addr), 1);
	return ep;
}

static inline union wg_endpoint
ep6(const char *ip, uint16_t port)
{
	union wg_endpoint ep;

	memset(&ep, 0, sizeof ep);
	ep.in6.sin6_family = AF_INET6;
	ep.in6.sin6_port = htons(port);
	assert_int_equal(inet_pton(AF_INET6, ip, &ep.in6.sin6_addr), 1);
	return ep;
}

#endif

// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/state.h"

/*
 * The state-file parser (state_parse, the same code state_load runs after
 * its file checks), fed arbitrary bytes.  Besides "no crash, no leak, no
 * UB":
 *
 *   - a failure always explains itself, and the explanation never quotes
 *     the input (no run of 16 hex digits: it could be key material);
 *   - a failure leaves the state exactly as it was (here: fresh);
 *   - whatever the parser accepts, the setters accept too, and it
 *     serialises to a text that parses back to the same text (the
 *     canonical form is a fixed point, so "write only when changed"
 *     compares like with like).
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
has_hex_run(const char *s)
{
	size_t run = 0;

	for (; *s != '\0'; s++) {
		bool hex = (*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') ||
		    (*s >= 'A' && *s <= 'F');

		run = hex ? run + 1 : 0;
		if (run >= 16)
			return true;
	}
	return false;
}

static void
check_fresh(const struct state *st)
{
	struct state_prefs def;
	const struct state_prefs *p = state_prefs(st);
	size_t len;

	state_prefs_default(&def);
	if (state_has_keys(st) || state_identity(st) != NULL ||
	    state_netmap(st, &len) != NULL || len != 0 ||
	    p->accept_dns != def.accept_dns || p->snat_subnet_routes != def.snat_subnet_routes ||
	    p->want_running || p->n_advertise_routes != 0 || p->hostname[0] != '\0')
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct state *a = state_new(), *b;
	char *cause = NULL, *t1 = NULL, *t2 = NULL;
	size_t l1 = 0, l2 = 0;

	if (state_parse(a, (const char *)data, size, &cause) != 0) {
		if (cause == NULL || has_hex_run(cause))
			abort();
		free(cause);
		check_fresh(a);
		state_free(a);
		return 0;
	}
	if (cause != NULL || !state_has_keys(a))
		abort();

	b = state_new();
	if (state_set_prefs(b, state_prefs(a), NULL) != 0)
		abort();
	if (state_identity(a) != NULL && state_set_identity(b, state_identity(a), NULL) != 0)
		abort();

	if (state_serialize(a, &t1, &l1, NULL) != 0 ||
	    state_parse(b, t1, l1, NULL) != 0 ||
	    state_serialize(b, &t2, &l2, NULL) != 0 ||
	    l1 != l2 || memcmp(t1, t2, l1) != 0)
		abort();

	state_text_free(t1, l1);
	state_text_free(t2, l2);
	state_free(a);
	state_free(b);
	return 0;
}

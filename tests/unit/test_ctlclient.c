// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/* The control client's pure parts: URLs, RegisterRequest and RegisterResponse. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "agent/control/capver.h"
#include "agent/control/ctlclient.h"
#include "agent/control/ctlconn.h"

static void
test_parse_url(void **state)
{
	char host[64];
	uint16_t port;
	bool tls;

	assert_true(ctl_parse_url("http://10.0.0.1:8080", &tls, host, sizeof host, &port));
	assert_false(tls);
	assert_string_equal(host, "10.0.0.1");
	assert_int_equal(port, 8080);
	assert_true(ctl_parse_url("https://hs.example.com/", &tls, host, sizeof host, &port));
	assert_true(tls);
	assert_string_equal(host, "hs.example.com");
	assert_int_equal(port, 443);
	assert_true(ctl_parse_url("http://[fd00::1]:80/x", &tls, host, sizeof host, &port));
	assert_string_equal(host, "fd00::1");
	assert_int_equal(port, 80);

	assert_false(ctl_parse_url("ftp://h", &tls, host, sizeof host, &port));
	assert_false(ctl_parse_url("http://", &tls, host, sizeof host, &port));
	assert_false(ctl_parse_url("http://h:0", &tls, host, sizeof host, &port));
	assert_false(ctl_parse_url("http://h:65536", &tls, host, sizeof host, &port));
	assert_false(ctl_parse_url("http://h:80x", &tls, host, sizeof host, &port));
	assert_false(ctl_parse_url("http://h\r\nX: y", &tls, host, sizeof host, &port));
	assert_false(ctl_parse_url("http://[fd00::1", &tls, host, sizeof host, &port));
	assert_false(ctl_parse_url("http://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	    &tls, host, sizeof host, &port));
}

static void
test_register_request(void **state)
{
	struct ctl_client_cfg cfg = { .hostname = "agent1", .auth_key = "hskey-auth-x" };
	const char *routes[] = { "10.77.0.0/24" };
	json_object *o, *v, *hi;
	char *s;

	memset(cfg.node_pub, 0xab, 32);
	cfg.routes = routes;
	cfg.n_routes = 1;
	s = ctl_register_request(&cfg, NULL, false);
	o = json_tokener_parse(s);
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "Version", &v));
	assert_int_equal(json_object_get_int(v), MESHD_CAPVER);
	assert_true(json_object_object_get_ex(o, "NodeKey", &v));
	assert_string_equal(json_object_get_string(v),
	    "nodekey:abababababababababababababababababababababababababababababababab");
	assert_true(json_object_object_get_ex(o, "Auth", &v));
	assert_true(json_object_object_get_ex(v, "AuthKey", &v));
	assert_string_equal(json_object_get_string(v), "hskey-auth-x");
	assert_true(json_object_object_get_ex(o, "Expiry", &v));
	assert_string_equal(json_object_get_string(v), "0001-01-01T00:00:00Z");
	assert_false(json_object_object_get_ex(o, "Followup", NULL));
	assert_true(json_object_object_get_ex(o, "Hostinfo", &hi));
	assert_true(json_object_object_get_ex(hi, "Hostname", &v));
	assert_string_equal(json_object_get_string(v), "agent1");
	assert_true(json_object_object_get_ex(hi, "RoutableIPs", &v));
	assert_string_equal(json_object_get_string(json_object_array_get_idx(v, 0)), "10.77.0.0/24");
	json_object_put(o);
	free(s);

	/* Logout: a past expiry; a follow-up names the AuthURL; no auth key, no Auth. */
	cfg.auth_key = NULL;
	s = ctl_register_request(&cfg, "http://h/register/x", true);
	o = json_tokener_parse(s);
	assert_true(json_object_object_get_ex(o, "Expiry", &v));
	assert_string_equal(json_object_get_string(v), "1970-01-01T00:02:03Z");
	assert_true(json_object_object_get_ex(o, "Followup", &v));
	assert_string_equal(json_object_get_string(v), "http://h/register/x");
	assert_false(json_object_object_get_ex(o, "Auth", NULL));
	json_object_put(o);
	free(s);
}

static void
test_parse_register(void **state)
{
	struct ctl_register_result r;
	static const char ok[] = "{\"Login\":{\"LoginName\":\"user1\"},\"MachineAuthorized\":true,"
	    "\"NodeKeyExpired\":false,\"AuthURL\":\"\",\"Unknown\":[1,2]}";
	static const char url[] = "{\"AuthURL\":\"http://h/register/hskey-authreq-x\"}";
	static const char err[] = "{\"Error\":\"authkey expired\"}";
	static const char wrong[] = "{\"AuthURL\":5,\"Error\":{},\"MachineAuthorized\":\"yes\"}";

	assert_int_equal(ctl_parse_register(ok, strlen(ok), &r), 0);
	assert_string_equal(r.login_name, "user1");
	assert_true(r.machine_authorized);
	assert_false(r.node_key_expired);
	assert_string_equal(r.auth_url, "");
	assert_int_equal(ctl_parse_register(url, strlen(url), &r), 0);
	assert_string_equal(r.auth_url, "http://h/register/hskey-authreq-x");
	assert_int_equal(ctl_parse_register(err, strlen(err), &r), 0);
	assert_string_equal(r.error, "authkey expired");
	/* Wrong types are ignored, not trusted. */
	assert_int_equal(ctl_parse_register(wrong, strlen(wrong), &r), 0);
	assert_string_equal(r.auth_url, "");
	assert_false(r.machine_authorized);
	assert_int_equal(ctl_parse_register("null", 4, &r), -EINVAL);
	assert_int_equal(ctl_parse_register("{", 1, &r), -EINVAL);
	assert_int_equal(ctl_parse_register("[]", 2, &r), -EINVAL);
	assert_int_equal(ctl_parse_register(ok, CTL_REGISTER_MAX + 1, &r), -EMSGSIZE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_url),
		cmocka_unit_test(test_register_request),
		cmocka_unit_test(test_parse_register),
	};

	return cmocka_run_group_tests_name("ctlclient", tests, NULL, NULL);
}

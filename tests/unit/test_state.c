// SPDX-License-Identifier: MIT
/* Copyright (C) 2026 The meshd Authors. */

/*
 * The state file: round trips, "write only when changed", atomic
 * replacement, file modes, hostile files, and that no error message ever
 * carries key material.  Every test works in its own mkdtemp directory.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "agent/state.h"
#include "common/keys.h"

/* --- helpers ----------------------------------------------------------- */

static char *
make_dir(void)
{
	char *d = strdup("/tmp/meshd-test-state-XXXXXX");

	assert_non_null(d);
	assert_non_null(mkdtemp(d));
	return d;
}

static void
remove_dir(char *d)
{
	DIR *dp = opendir(d);
	struct dirent *de;

	assert_non_null(dp);
	while ((de = readdir(dp)) != NULL) {
		char p[512];

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof p, "%s/%s", d, de->d_name);
		if (unlink(p) < 0)
			assert_int_equal(rmdir(p), 0);
	}
	closedir(dp);
	assert_int_equal(rmdir(d), 0);
	free(d);
}

static char *
state_path(const char *dir)
{
	static char p[1024];

	snprintf(p, sizeof p, "%s/%s", dir, STATE_FILE_NAME);
	return p;
}

static void
write_file(const char *path, const char *text, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static int
count_entries(const char *dir)
{
	DIR *dp = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(dp);
	while ((de = readdir(dp)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(dp);
	return n;
}

/* The serialised state, as a string we own (tests only: it holds keys). */
static char *
snapshot(const struct state *st)
{
	char *text, *copy;
	size_t len;

	assert_int_equal(state_serialize(st, &text, &len, NULL), 0);
	copy = strndup(text, len);
	state_text_free(text, len);
	assert_non_null(copy);
	return copy;
}

static struct state_prefix
pfx(const char *s)
{
	struct state_prefix p;

	assert_true(state_prefix_parse(&p, s, false));
	return p;
}

/* A state with every field set to something other than its default. */
static struct state *
full_state(void)
{
	static const uint8_t blob[] = { 0, 1, 2, 0xff, '{', '"', '\\', '\n', 0, 42 };
	struct state *st = state_new();
	struct state_prefs p;
	struct state_identity id;
	char *cause = NULL;

	assert_true(state_ensure_keys(st));
	state_prefs_default(&p);
	strcpy(p.login_server, "http://127.0.0.1:8080/a/b");
	strcpy(p.hostname, "r\xc3\xa9seau-1");	/* UTF-8 is fine in a hostname */
	p.want_running = true;
	p.accept_routes = true;
	p.accept_dns = false;
	p.advertise_exit_node = true;
	p.exit_node_allow_lan_access = true;
	p.snat_subnet_routes = false;
	strcpy(p.exit_node_id, "nXYZ123CNTRL");
	p.exit_node_ip.family = AF_INET;
	inet_pton(AF_INET, "100.64.0.9", p.exit_node_ip.addr);
	p.advertise_routes[0] = pfx("10.0.0.0/24");
	p.advertise_routes[1] = pfx("fd00:1::/64");
	p.advertise_routes[2] = pfx("192.168.1.7/32");
	p.n_advertise_routes = 3;
	assert_int_equal(state_set_prefs(st, &p, &cause), 0);
	assert_null(cause);

	memset(&id, 0, sizeof id);
	id.node_id = 7;
	strcpy(id.stable_id, "7");
	id.user_id = 2147455555;
	strcpy(id.login_name, "alice@example.com");
	id.key_expiry = 1893456000;
	id.addresses[0] = pfx("100.64.0.7/32");
	id.addresses[1] = pfx("fd7a:115c:a1e0::7/128");
	id.n_addresses = 2;
	assert_int_equal(state_set_identity(st, &id, &cause), 0);
	assert_null(cause);

	assert_int_equal(state_set_netmap(st, blob, sizeof blob), 0);
	state_begin_rotation(st);
	assert_true(state_commit_rotation(st));	/* so that OldNodeKey is set */
	return st;
}

static void
assert_same_state(const struct state *a, const struct state *b)
{
	const struct state_prefs *pa = state_prefs(a), *pb = state_prefs(b);
	const struct state_identity *ia = state_identity(a), *ib = state_identity(b);
	uint8_t ka[KEY_LEN], kb[KEY_LEN];
	const uint8_t *na, *nb;
	size_t la, lb;
	bool ha, hb;

	assert_memory_equal(state_machine_key(a), state_machine_key(b), KEY_LEN);
	assert_memory_equal(state_node_key(a), state_node_key(b), KEY_LEN);
	ha = state_old_node_pubkey(a, ka);
	hb = state_old_node_pubkey(b, kb);
	assert_int_equal(ha, hb);
	assert_memory_equal(ka, kb, KEY_LEN);

	assert_string_equal(pa->login_server, pb->login_server);
	assert_string_equal(pa->hostname, pb->hostname);
	assert_int_equal(pa->want_running, pb->want_running);
	assert_int_equal(pa->logged_out, pb->logged_out);
	assert_int_equal(pa->accept_routes, pb->accept_routes);
	assert_int_equal(pa->accept_dns, pb->accept_dns);
	assert_int_equal(pa->advertise_exit_node, pb->advertise_exit_node);
	assert_int_equal(pa->exit_node_allow_lan_access, pb->exit_node_allow_lan_access);
	assert_int_equal(pa->snat_subnet_routes, pb->snat_subnet_routes);
	assert_string_equal(pa->exit_node_id, pb->exit_node_id);
	assert_memory_equal(&pa->exit_node_ip, &pb->exit_node_ip, sizeof pa->exit_node_ip);
	assert_int_equal(pa->n_advertise_routes, pb->n_advertise_routes);
	assert_memory_equal(pa->advertise_routes, pb->advertise_routes,
	    pa->n_advertise_routes * sizeof pa->advertise_routes[0]);

	assert_int_equal(ia == NULL, ib == NULL);
	if (ia != NULL) {
		assert_int_equal(ia->node_id, ib->node_id);
		assert_string_equal(ia->stable_id, ib->stable_id);
		assert_int_equal(ia->user_id, ib->user_id);
		assert_string_equal(ia->login_name, ib->login_name);
		assert_int_equal(ia->key_expiry, ib->key_expiry);
		assert_int_equal(ia->n_addresses, ib->n_addresses);
		assert_memory_equal(ia->addresses, ib->addresses,
		    ia->n_addresses * sizeof ia->addresses[0]);
	}
	na = state_netmap(a, &la);
	nb = state_netmap(b, &lb);
	assert_int_equal(la, lb);
	if (la > 0)
		assert_memory_equal(na, nb, la);
	else
		assert_true(na == NULL && nb == NULL);
}

/*
 * No 16-character run of the key's hex may appear in s (either case), and
 * no "privkey:" may be followed by a hex digit.
 */
static void
assert_no_key_text(const char *s, const uint8_t *key)
{
	char hex[KEY_HEX_LEN];

	for (const char *p = s; (p = strstr(p, "privkey:")) != NULL; p++)
		if (strchr("0123456789abcdefABCDEF", p[8]) != NULL && p[8] != '\0')
			fail_msg("key text after privkey: in \"%s\"", s);

	key_to_hex(hex, key);
	for (int off = 0; off + 16 <= KEY_LEN * 2; off += 4) {
		char frag[17];

		memcpy(frag, hex + off, 16);
		frag[16] = '\0';
		if (strcasestr(s, frag) != NULL)
			fail_msg("key text \"%s\" leaked into \"%s\"", frag, s);
	}
	sodium_memzero(hex, sizeof hex);
}

/* --- round trip --------------------------------------------------------- */

static void
test_round_trip(void **unused)
{
	char *dir = make_dir(), *cause = NULL;
	struct state *a = full_state(), *b = state_new();
	bool written = false, found = false;
	const uint8_t *nm;
	size_t nmlen;

	assert_int_equal(state_save(a, dir, &written, &cause), 0);
	assert_null(cause);
	assert_true(written);
	assert_int_equal(state_load(b, dir, &found, &cause), 0);
	assert_null(cause);
	assert_true(found);
	assert_same_state(a, b);
	/* The netmap blob comes back NUL-terminated beyond its length. */
	nm = state_netmap(b, &nmlen);
	assert_int_equal(nm[nmlen], '\0');
	/* The same bytes again, byte for byte. */
	{
		char *sa = snapshot(a), *sb = snapshot(b);

		assert_string_equal(sa, sb);
		sodium_memzero(sa, strlen(sa));
		sodium_memzero(sb, strlen(sb));
		free(sa);
		free(sb);
	}
	state_free(a);
	state_free(b);
	remove_dir(dir);
}

/* The file's text: keys in Tailscale's forms, and the members documented. */
static void
test_file_format(void **unused)
{
	struct state *st = full_state();
	char *text = snapshot(st);
	uint8_t pub[KEY_LEN];
	char hex[KEY_HEX_LEN], want[128];

	assert_true(strncmp(text, "{\n  \"Version\": 1,\n  \"MachineKey\": \"privkey:", 43) == 0);
	key_to_hex(hex, state_machine_key(st));
	snprintf(want, sizeof want, "\"MachineKey\": \"privkey:%s\"", hex);
	assert_non_null(strstr(text, want));
	key_to_hex(hex, state_node_key(st));
	snprintf(want, sizeof want, "\"NodeKey\": \"privkey:%s\"", hex);
	assert_non_null(strstr(text, want));
	assert_true(state_old_node_pubkey(st, pub));
	key_to_hex(hex, pub);
	snprintf(want, sizeof want, "\"OldNodeKey\": \"nodekey:%s\"", hex);
	assert_non_null(strstr(text, want));
	assert_non_null(strstr(text, "\"LoginServer\": \"http://127.0.0.1:8080/a/b\""));
	assert_non_null(strstr(text, "\"10.0.0.0/24\""));
	assert_non_null(strstr(text, "\"fd00:1::/64\""));
	assert_non_null(strstr(text, "\"ExitNodeIP\": \"100.64.0.9\""));
	assert_non_null(strstr(text, "\"NodeID\": 7"));
	assert_non_null(strstr(text, "\"LastNetmap\": \""));
	assert_int_equal(text[strlen(text) - 1], '\n');
	sodium_memzero(text, strlen(text));
	sodium_memzero(hex, sizeof hex);
	free(text);
	state_free(st);
}

/* --- write only when changed, atomically, 0600 --------------------------- */

static void
test_only_when_changed(void **unused)
{
	char *dir = make_dir(), *cause = NULL;
	struct state *st = full_state(), *st2 = state_new();
	struct state_prefs p;
	struct stat s1, s2;
	bool written = true;

	assert_int_equal(state_save(st, dir, &written, &cause), 0);
	assert_true(written);
	assert_int_equal(stat(state_path(dir), &s1), 0);

	/* The same content again: nothing written, same inode, same mtime. */
	usleep(20000);
	assert_int_equal(state_save(st, dir, &written, &cause), 0);
	assert_false(written);
	assert_int_equal(stat(state_path(dir), &s2), 0);
	assert_int_equal(s1.st_ino, s2.st_ino);
	assert_int_equal(s1.st_mtim.tv_sec, s2.st_mtim.tv_sec);
	assert_int_equal(s1.st_mtim.tv_nsec, s2.st_mtim.tv_nsec);

	/* A pending rotation is not saved, so it is not a change either. */
	state_begin_rotation(st);
	assert_int_equal(state_save(st, dir, &written, &cause), 0);
	assert_false(written);
	state_abort_rotation(st);

	/* Setting a pref to the value it has is not a change. */
	p = *state_prefs(st);
	assert_int_equal(state_set_prefs(st, &p, NULL), 0);
	assert_int_equal(state_save(st, dir, &written, &cause), 0);
	assert_false(written);

	/* A real change is written, through a new inode (rename). */
	p.accept_routes = !p.accept_routes;
	assert_int_equal(state_set_prefs(st, &p, NULL), 0);
	assert_int_equal(state_save(st, dir, &written, &cause), 0);
	assert_true(written);
	assert_int_equal(stat(state_path(dir), &s2), 0);
	assert_int_not_equal(s1.st_ino, s2.st_ino);

	/* What was read counts as written: a loaded state saves nothing. */
	assert_int_equal(state_load(st2, dir, NULL, &cause), 0);
	assert_int_equal(state_save(st2, dir, &written, &cause), 0);
	assert_false(written);
	assert_int_equal(stat(state_path(dir), &s1), 0);
	assert_int_equal(s1.st_ino, s2.st_ino);

	/* Even when the file is laid out differently from what we write. */
	{
		char *text = snapshot(st2), *squashed = malloc(strlen(text) + 64);
		size_t n = 0;

		assert_non_null(squashed);
		for (const char *c = text; *c != '\0'; c++)
			if (*c != '\n')
				squashed[n++] = *c;
		n += (size_t)sprintf(squashed + n, "  ");
		write_file(state_path(dir), squashed, n, 0600);
		sodium_memzero(text, strlen(text));
		sodium_memzero(squashed, n);
		free(text);
		free(squashed);
	}
	assert_int_equal(state_load(st2, dir, NULL, &cause), 0);
	assert_int_equal(stat(state_path(dir), &s1), 0);
	assert_int_equal(state_save(st2, dir, &written, &cause), 0);
	assert_false(written);
	assert_int_equal(stat(state_path(dir), &s2), 0);
	assert_int_equal(s1.st_ino, s2.st_ino);

	state_free(st);
	state_free(st2);
	remove_dir(dir);
}

static void
test_mode_0600(void **unused)
{
	static const mode_t masks[] = { 0, 022, 077, 0777 };

	for (size_t i = 0; i < sizeof masks / sizeof masks[0]; i++) {
		char *dir = make_dir(), *cause = NULL;
		struct state *st = state_new();
		mode_t old;
		struct stat sb;
		bool written;

		state_ensure_keys(st);
		old = umask(masks[i]);
		assert_int_equal(state_save(st, dir, &written, &cause), 0);
		umask(old);
		assert_true(written);
		assert_int_equal(stat(state_path(dir), &sb), 0);
		assert_int_equal(sb.st_mode & 07777, 0600);
		state_free(st);
		remove_dir(dir);
	}
}

static void
test_no_temp_left(void **unused)
{
	char *dir = make_dir(), *cause = NULL;
	struct state *st = full_state();
	struct state_prefs p = *state_prefs(st);

	for (int i = 0; i < 5; i++) {
		bool written;

		snprintf(p.hostname, sizeof p.hostname, "host-%d", i);
		assert_int_equal(state_set_prefs(st, &p, NULL), 0);
		assert_int_equal(state_save(st, dir, &written, &cause), 0);
		assert_true(written);
		assert_int_equal(count_entries(dir), 1);
	}
	state_free(st);
	remove_dir(dir);
}

/*
 * A crash between writing the temporary file and the rename leaves the
 * temporary behind: the reader must ignore it (even a valid-looking one)
 * and the next load or save must remove it.
 */
static void
test_stale_temp_ignored(void **unused)
{
	char *dir = make_dir(), *cause = NULL, tmp1[512], tmp2[512];
	struct state *good = full_state(), *other = full_state(), *st = state_new();
	struct state_prefs p;
	bool written, found;
	char *text;

	assert_int_equal(state_save(good, dir, &written, &cause), 0);
	/* An interrupted save of a different state, and a torn one. */
	snprintf(tmp1, sizeof tmp1, "%s/%s0123456789abcdef", dir, STATE_TEMP_PREFIX);
	snprintf(tmp2, sizeof tmp2, "%s/%sfedcba9876543210", dir, STATE_TEMP_PREFIX);
	text = snapshot(other);
	write_file(tmp1, text, strlen(text), 0600);
	write_file(tmp2, text, strlen(text) / 2, 0600);
	sodium_memzero(text, strlen(text));
	free(text);
	assert_int_equal(count_entries(dir), 3);

	assert_int_equal(state_load(st, dir, &found, &cause), 0);
	assert_true(found);
	assert_same_state(st, good);
	assert_int_equal(count_entries(dir), 1);

	/* And a save cleans up too. */
	write_file(tmp1, "{", 1, 0600);
	p = *state_prefs(st);
	p.want_running = !p.want_running;
	assert_int_equal(state_set_prefs(st, &p, NULL), 0);
	assert_int_equal(state_save(st, dir, &written, &cause), 0);
	assert_true(written);
	assert_int_equal(count_entries(dir), 1);

	state_free(good);
	state_free(other);
	state_free(st);
	remove_dir(dir);
}

/* A save that fails leaves the old file and no temporary file. */
static void
test_failed_save(void **unused)
{
	char *dir = make_dir(), *cause = NULL;
	struct state *st = full_state(), *empty = state_new();
	bool written = true;

	/* A directory where the file should be makes the rename fail. */
	assert_int_equal(mkdir(state_path(dir), 0700), 0);
	assert_true(state_save(st, dir, &written, &cause) < 0);
	assert_false(written);
	assert_non_null(cause);
	print_message("failed save: %s\n", cause);
	assert_no_key_text(cause, state_machine_key(st));
	free(cause);
	cause = NULL;
	assert_int_equal(count_entries(dir), 1);
	assert_int_equal(rmdir(state_path(dir)), 0);

	/* Nothing was recorded as written: the retry writes. */
	assert_int_equal(state_save(st, dir, &written, &cause), 0);
	assert_true(written);

	/* No keys, no save. */
	assert_int_equal(state_save(empty, dir, &written, &cause), -EINVAL);
	assert_non_null(cause);
	free(cause);

	state_free(st);
	state_free(empty);
	remove_dir(dir);
}

static void
test_creates_dir(void **unused)
{
	char *dir = make_dir(), sub[256], *cause = NULL;
	struct state *st = full_state();
	struct stat sb;
	bool written;

	snprintf(sub, sizeof sub, "%s/var-lib-meshd", dir);
	assert_int_equal(state_save(st, sub, &written, &cause), 0);
	assert_true(written);
	assert_int_equal(stat(sub, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0700);
	assert_int_equal(unlink(state_path(sub)), 0);
	assert_int_equal(rmdir(sub), 0);
	state_free(st);
	remove_dir(dir);
}

/* --- reading: fresh nodes, keys ------------------------------------------ */

static void
test_missing_file_is_fresh(void **unused)
{
	char *dir = make_dir(), sub[256], *cause = NULL;
	struct state *st = state_new();
	bool found = true;

	assert_int_equal(state_load(st, dir, &found, &cause), 0);
	assert_false(found);
	assert_null(cause);
	assert_false(state_has_keys(st));
	snprintf(sub, sizeof sub, "%s/nonexistent", dir);
	found = true;
	assert_int_equal(state_load(st, sub, &found, &cause), 0);
	assert_false(found);
	assert_null(state_identity(st));
	/* Fresh prefs are tailscale up's Linux defaults. */
	assert_true(state_prefs(st)->accept_dns);
	assert_true(state_prefs(st)->snat_subnet_routes);
	assert_false(state_prefs(st)->want_running);
	state_free(st);
	remove_dir(dir);
}

static void
test_keys_generated_and_kept(void **unused)
{
	char *dir = make_dir(), *cause = NULL;
	struct state *st = state_new(), *st2 = state_new();
	uint8_t mk[KEY_LEN], nk[KEY_LEN], pub[KEY_LEN], ref[KEY_LEN];
	bool written, found;

	assert_false(state_has_keys(st));
	assert_null(state_machine_key(st));
	assert_false(state_machine_pubkey(st, pub));
	assert_true(key_is_zero(pub));

	assert_true(state_ensure_keys(st));
	assert_false(state_ensure_keys(st));
	assert_true(state_has_keys(st));
	memcpy(mk, state_machine_key(st), KEY_LEN);
	memcpy(nk, state_node_key(st), KEY_LEN);
	assert_memory_not_equal(mk, nk, KEY_LEN);
	/* Clamped at creation, as Go does. */
	assert_int_equal(mk[0] & 7, 0);
	assert_int_equal(mk[31] & 0xc0, 0x40);
	assert_int_equal(nk[0] & 7, 0);
	assert_int_equal(nk[31] & 0xc0, 0x40);
	/* Public keys are X25519 of the base point. */
	assert_true(state_machine_pubkey(st, pub));
	assert_int_equal(crypto_scalarmult_base(ref, mk), 0);
	assert_memory_equal(pub, ref, KEY_LEN);
	assert_true(state_node_pubkey(st, pub));
	assert_int_equal(crypto_scalarmult_base(ref, nk), 0);
	assert_memory_equal(pub, ref, KEY_LEN);

	assert_int_equal(state_save(st, dir, &written, &cause), 0);
	assert_int_equal(state_load(st2, dir, &found, &cause), 0);
	assert_true(found);
	assert_false(state_ensure_keys(st2));
	assert_memory_equal(state_machine_key(st2), mk, KEY_LEN);
	assert_memory_equal(state_node_key(st2), nk, KEY_LEN);
	/* Two fresh states never share keys. */
	{
		struct state *st3 = state_new();

		state_ensure_keys(st3);
		assert_memory_not_equal(state_machine_key(st3), mk, KEY_LEN);
		state_free(st3);
	}
	sodium_memzero(mk, sizeof mk);
	sodium_memzero(nk, sizeof nk);
	state_free(st);
	state_free(st2);
	remove_dir(dir);
}

static void
test_rotation(void **unused)
{
	char *dir = make_dir(), *cause = NULL;
	struct state *st = state_new(), *st2 = state_new();
	uint8_t mk[KEY_LEN], nk[KEY_LEN], nkpub[KEY_LEN], reg[KEY_LEN], old[KEY_LEN];
	uint8_t pend[KEY_LEN], pendpub[KEY_LEN];
	bool written;

	state_ensure_keys(st);
	memcpy(mk, state_machine_key(st), KEY_LEN);
	memcpy(nk, state_node_key(st), KEY_LEN);
	assert_true(state_node_pubkey(st, nkpub));

	/* No rotation: NodeKey is the current key, OldNodeKey zero. */
	state_register_pubkeys(st, reg, old);
	assert_memory_equal(reg, nkpub, KEY_LEN);
	assert_true(key_is_zero(old));
	assert_false(state_commit_rotation(st));
	assert_null(state_pending_node_key(st));

	/* Aborted rotation: nothing changes. */
	state_begin_rotation(st);
	assert_non_null(state_pending_node_key(st));
	state_abort_rotation(st);
	assert_null(state_pending_node_key(st));
	assert_memory_equal(state_node_key(st), nk, KEY_LEN);

	/* A rotation in flight: the current key still works (seamless renewal). */
	state_begin_rotation(st);
	memcpy(pend, state_pending_node_key(st), KEY_LEN);
	assert_memory_not_equal(pend, nk, KEY_LEN);
	assert_memory_equal(state_node_key(st), nk, KEY_LEN);
	assert_int_equal(crypto_scalarmult_base(pendpub, pend), 0);
	state_register_pubkeys(st, reg, old);
	assert_memory_equal(reg, pendpub, KEY_LEN);
	assert_memory_equal(old, nkpub, KEY_LEN);

	/* Committed: new node key, same machine key, old public key kept. */
	assert_true(state_commit_rotation(st));
	assert_null(state_pending_node_key(st));
	assert_memory_equal(state_node_key(st), pend, KEY_LEN);
	assert_memory_equal(state_machine_key(st), mk, KEY_LEN);
	assert_true(state_old_node_pubkey(st, old));
	assert_memory_equal(old, nkpub, KEY_LEN);
	state_register_pubkeys(st, reg, old);
	assert_memory_equal(reg, pendpub, KEY_LEN);
	assert_memory_equal(old, nkpub, KEY_LEN);

	/* The old public key survives a reload. */
	assert_int_equal(state_save(st, dir, &written, &cause), 0);
	assert_int_equal(state_load(st2, dir, NULL, &cause), 0);
	assert_true(state_old_node_pubkey(st2, old));
	assert_memory_equal(old, nkpub, KEY_LEN);
	assert_memory_equal(state_node_key(st2), pend, KEY_LEN);

	sodium_memzero(mk, sizeof mk);
	sodium_memzero(nk, sizeof nk);
	sodium_memzero(pend, sizeof pend);
	state_free(st);
	state_free(st2);
	remove_dir(dir);
}

static void
test_logout(void **unused)
{
	struct state *st = full_state();
	uint8_t mk[KEY_LEN], nk[KEY_LEN], pub[KEY_LEN];
	const struct state_prefs *p;
	size_t len;

	memcpy(mk, state_machine_key(st), KEY_LEN);
	memcpy(nk, state_node_key(st), KEY_LEN);
	state_begin_rotation(st);
	state_logout(st);
	assert_memory_equal(state_machine_key(st), mk, KEY_LEN);
	assert_memory_not_equal(state_node_key(st), nk, KEY_LEN);
	assert_null(state_pending_node_key(st));
	assert_false(state_old_node_pubkey(st, pub));
	assert_null(state_identity(st));
	assert_null(state_netmap(st, &len));
	assert_int_equal(len, 0);
	p = state_prefs(st);
	assert_false(p->want_running);
	assert_true(p->logged_out);
	assert_string_equal(p->login_server, "http://127.0.0.1:8080/a/b");
	sodium_memzero(mk, sizeof mk);
	sodium_memzero(nk, sizeof nk);
	state_free(st);
}

/* --- reading hostile and broken files ------------------------------------ */

/*
 * Documents with two %s for the machine and node key hex.  Every one must
 * fail with a message, leave the loaded state alone, and leak no key text.
 */
#define PREFS_OK "\"Prefs\": {\"Hostname\": \"h\"}"
#define IDENT_OK "\"NodeID\": 3, \"StableID\": \"3\", \"UserID\": 1, " \
	"\"Addresses\": [\"100.64.0.3/32\"]"
#define KEYS "\"MachineKey\": \"privkey:%s\", \"NodeKey\": \"privkey:%s\""
#define DOC(rest) "{\"Version\": 1, " KEYS ", " rest "}"

static const struct bad_doc {
	const char *name;
	const char *fmt;
	int err;
} bad_docs[] = {
	{ "not JSON", "not json %s %s", -EINVAL },
	{ "empty", "", -EINVAL },
	{ "truncated", "{\"Version\": 1, " KEYS ", \"Prefs\": {", -EINVAL },
	{ "truncated in key", "{\"Version\": 1, \"MachineKey\": \"privkey:%.40s", -EINVAL },
	{ "array", "[" KEYS "]", -EINVAL },
	{ "null", "null", -EINVAL },
	{ "trailing data", DOC(PREFS_OK) " {}", -EINVAL },
	{ "trailing comma", DOC(PREFS_OK ",") , -EINVAL },
	{ "version string", "{\"Version\": \"1\", " KEYS ", " PREFS_OK "}", -EINVAL },
	{ "version 0", "{\"Version\": 0, " KEYS ", " PREFS_OK "}", -EINVAL },
	{ "version float", "{\"Version\": 1.0, " KEYS ", " PREFS_OK "}", -EINVAL },
	{ "version newer", "{\"Version\": 2, " KEYS ", " PREFS_OK "}", -EPROTONOSUPPORT },
	{ "no version", "{" KEYS ", " PREFS_OK "}", -EINVAL },
	{ "no machine key", "{\"Version\": 1, \"NodeKey\": \"privkey:%.0s%s\", " PREFS_OK "}",
	    -EINVAL },
	{ "no node key", "{\"Version\": 1, \"MachineKey\": \"privkey:%s\", " PREFS_OK "}%.0s",
	    -EINVAL },
	{ "null node key", "{\"Version\": 1, \"MachineKey\": \"privkey:%s\", "
	    "\"NodeKey\": null, " PREFS_OK "}%.0s", -EINVAL },
	{ "no prefs", DOC("\"Identity\": {" IDENT_OK "}"), -EINVAL },
	{ "prefs array", DOC("\"Prefs\": []"), -EINVAL },
	{ "bad hex", "{\"Version\": 1, \"MachineKey\": \"privkey:%.62szz\", "
	    "\"NodeKey\": \"privkey:%s\", " PREFS_OK "}", -EINVAL },
	{ "bad hex inside", "{\"Version\": 1, \"MachineKey\": \"privkey:%.30sx%.33s\", "
	    PREFS_OK "}", -EINVAL },
	{ "short hex", "{\"Version\": 1, \"MachineKey\": \"privkey:%.63s\", "
	    "\"NodeKey\": \"privkey:%s\", " PREFS_OK "}", -EINVAL },
	{ "long hex", "{\"Version\": 1, \"MachineKey\": \"privkey:%s0\", "
	    "\"NodeKey\": \"privkey:%s\", " PREFS_OK "}", -EINVAL },
	{ "public prefix", "{\"Version\": 1, \"MachineKey\": \"mkey:%s\", "
	    "\"NodeKey\": \"privkey:%s\", " PREFS_OK "}", -EINVAL },
	{ "escaped prefix", "{\"Version\": 1, \"MachineKey\": \"privkey\\u003a%s\", "
	    "\"NodeKey\": \"privkey:%s\", " PREFS_OK "}", -EINVAL },
	{ "escaped digit", "{\"Version\": 1, \"MachineKey\": \"privkey:\\u0030%.63s\", "
	    "\"NodeKey\": \"privkey:%s\", " PREFS_OK "}", -EINVAL },
	{ "key is number", "{\"Version\": 1, \"MachineKey\": 5, \"NodeKey\": \"privkey:%.0s%s\", "
	    PREFS_OK "}", -EINVAL },
	{ "zero key", "{\"Version\": 1, \"MachineKey\": \"privkey:"
	    "0000000000000000000000000000000000000000000000000000000000000000\", "
	    "\"NodeKey\": \"privkey:%s%.0s\", " PREFS_OK "}", -EINVAL },
	{ "private old key", DOC("\"OldNodeKey\": \"privkey:%s\", " PREFS_OK), -EINVAL },
	{ "too many keys", DOC("\"a\": \"privkey:%s\", \"b\": \"privkey:%s\", "
	    "\"c\": \"privkey:%s\", " PREFS_OK), -EINVAL },
	{ "want running string", DOC("\"Prefs\": {\"WantRunning\": \"yes\"}"), -EINVAL },
	{ "routes string", DOC("\"Prefs\": {\"AdvertiseRoutes\": \"10.0.0.0/8\"}"), -EINVAL },
	{ "route number", DOC("\"Prefs\": {\"AdvertiseRoutes\": [10]}"), -EINVAL },
	{ "route host bits", DOC("\"Prefs\": {\"AdvertiseRoutes\": [\"10.0.0.1/24\"]}"), -EINVAL },
	{ "route too long", DOC("\"Prefs\": {\"AdvertiseRoutes\": [\"10.0.0.0/33\"]}"), -EINVAL },
	{ "route leading zero", DOC("\"Prefs\": {\"AdvertiseRoutes\": [\"10.0.0.0/08\"]}"),
	    -EINVAL },
	{ "route bare", DOC("\"Prefs\": {\"AdvertiseRoutes\": [\"10.0.0.0\"]}"), -EINVAL },
	{ "exit ip bad", DOC("\"Prefs\": {\"ExitNodeIP\": \"100.64.0.1/32\"}"), -EINVAL },
	{ "hostname control", DOC("\"Prefs\": {\"Hostname\": \"a\\u001b[31m\"}"), -EINVAL },
	{ "hostname C1", DOC("\"Prefs\": {\"Hostname\": \"a\\u009b\"}"), -EINVAL },
	{ "hostname NUL", DOC("\"Prefs\": {\"Hostname\": \"a\\u0000b\"}"), -EINVAL },
	{ "hostname bad UTF-8", DOC("\"Prefs\": {\"Hostname\": \"a\xc0\xaf\"}"), -EINVAL },
	{ "hostname is a key", DOC("\"Prefs\": {\"Hostname\": \"privkey:%.0s\"}"), -EINVAL },
	{ "url non-ASCII", DOC("\"Prefs\": {\"LoginServer\": \"http://\xc3\xa9\"}"), -EINVAL },
	{ "identity string id", DOC(PREFS_OK ", \"Identity\": {\"NodeID\": \"3\", "
	    "\"StableID\": \"3\", \"UserID\": 1, \"Addresses\": []}"), -EINVAL },
	{ "identity id 0", DOC(PREFS_OK ", \"Identity\": {\"NodeID\": 0, "
	    "\"StableID\": \"3\", \"UserID\": 1, \"Addresses\": []}"), -EINVAL },
	{ "identity id huge", DOC(PREFS_OK ", \"Identity\": {\"NodeID\": 9223372036854775808, "
	    "\"StableID\": \"3\", \"UserID\": 1, \"Addresses\": []}"), -EINVAL },
	{ "identity no addresses", DOC(PREFS_OK ", \"Identity\": {\"NodeID\": 3, "
	    "\"StableID\": \"3\", \"UserID\": 1}"), -EINVAL },
	{ "identity empty stable", DOC(PREFS_OK ", \"Identity\": {\"NodeID\": 3, "
	    "\"StableID\": \"\", \"UserID\": 1, \"Addresses\": []}"), -EINVAL },
	{ "identity negative expiry", DOC(PREFS_OK ", \"Identity\": {" IDENT_OK
	    ", \"KeyExpiry\": -1}"), -EINVAL },
	{ "identity array", DOC(PREFS_OK ", \"Identity\": []"), -EINVAL },
	{ "netmap not base64", DOC(PREFS_OK ", \"LastNetmap\": \"!!!!\""), -EINVAL },
	{ "netmap unpadded", DOC(PREFS_OK ", \"LastNetmap\": \"AAE\""), -EINVAL },
	{ "netmap number", DOC(PREFS_OK ", \"LastNetmap\": 1"), -EINVAL },
	{ "too deep", DOC(PREFS_OK ", \"x\": [[[[[[[[[[[[]]]]]]]]]]]]"), -EINVAL },
};

static void
test_bad_files(void **unused)
{
	char *dir = make_dir();
	struct state *st = full_state();
	char mkhex[KEY_HEX_LEN], nkhex[KEY_HEX_LEN];
	uint8_t mk[KEY_LEN], nk[KEY_LEN];
	char *before, *after, *cause = NULL;
	bool written;

	/* st: a loaded state whose keys differ from those in the bad files. */
	assert_int_equal(state_save(st, dir, &written, &cause), 0);
	assert_int_equal(state_load(st, dir, NULL, &cause), 0);
	before = snapshot(st);
	randombytes_buf(mk, sizeof mk);
	randombytes_buf(nk, sizeof nk);
	key_to_hex(mkhex, mk);
	key_to_hex(nkhex, nk);

	for (size_t i = 0; i < sizeof bad_docs / sizeof bad_docs[0]; i++) {
		char doc[4096];
		bool found = true;
		int n, r;

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		n = snprintf(doc, sizeof doc, bad_docs[i].fmt, mkhex, nkhex, mkhex, nkhex, mkhex);
#pragma GCC diagnostic pop
		assert_true(n >= 0 && (size_t)n < sizeof doc);
		write_file(state_path(dir), doc, (size_t)n, 0600);
		cause = NULL;
		r = state_load(st, dir, &found, &cause);
		if (r != bad_docs[i].err)
			fail_msg("%s: got %d (%s), want %d", bad_docs[i].name, r,
			    cause ? cause : "no message", bad_docs[i].err);
		assert_false(found);
		assert_non_null(cause);
		print_message("%-24s %s\n", bad_docs[i].name, cause);
		assert_no_key_text(cause, mk);
		assert_no_key_text(cause, nk);
		free(cause);

		/* The same through the buffer parser. */
		cause = NULL;
		assert_int_equal(state_parse(st, doc, (size_t)n, &cause), bad_docs[i].err);
		assert_non_null(cause);
		assert_no_key_text(cause, mk);
		assert_no_key_text(cause, nk);
		free(cause);

		after = snapshot(st);
		assert_string_equal(before, after);
		sodium_memzero(after, strlen(after));
		free(after);
		sodium_memzero(doc, sizeof doc);
	}
	/* Nothing changed, so nothing needs writing (the hash is untouched too). */
	assert_int_equal(unlink(state_path(dir)), 0);
	assert_int_equal(state_save(st, dir, &written, &cause), 0);
	assert_false(written);

	sodium_memzero(before, strlen(before));
	free(before);
	sodium_memzero(mkhex, sizeof mkhex);
	sodium_memzero(nkhex, sizeof nkhex);
	state_free(st);
	remove_dir(dir);
}

/* Good files written by hand: unknown members, upper-case hex, nulls. */
static void
test_lenient_where_harmless(void **unused)
{
	struct state *st = state_new();
	uint8_t mk[KEY_LEN], nk[KEY_LEN];
	char mkhex[KEY_HEX_LEN], nkhex[KEY_HEX_LEN], doc[2048], *cause = NULL;
	int n;

	randombytes_buf(mk, sizeof mk);
	randombytes_buf(nk, sizeof nk);
	key_to_hex(mkhex, mk);
	key_to_hex(nkhex, nk);
	for (char *c = mkhex; *c != '\0'; c++)
		if (*c >= 'a' && *c <= 'f')
			*c = (char)(*c - 'a' + 'A');
	n = snprintf(doc, sizeof doc,
	    "{\"Future\": {\"x\": [1, 2]}, \"Version\": 1, \"MachineKey\": \"privkey:%s\",\n"
	    "\"NodeKey\": \"privkey:%s\", \"Prefs\": {\"Hostname\": null, \"New\": 1},"
	    "\"Identity\": null, \"LastNetmap\": \"\"}\n\n", mkhex, nkhex);
	assert_int_equal(state_parse(st, doc, (size_t)n, &cause), 0);
	assert_null(cause);
	assert_memory_equal(state_machine_key(st), mk, KEY_LEN);
	assert_memory_equal(state_node_key(st), nk, KEY_LEN);
	assert_null(state_identity(st));
	assert_true(state_prefs(st)->accept_dns);	/* absent: default */

	/* A string that merely mentions privkey: is not a key. */
	n = snprintf(doc, sizeof doc,
	    "{\"Version\": 1, \"MachineKey\": \"privkey:%s\", \"NodeKey\": \"privkey:%s\", "
	    "\"Prefs\": {\"Hostname\": \"x \\\"privkey:%s\"}}", mkhex, nkhex, nkhex);
	assert_int_equal(state_parse(st, doc, (size_t)n, &cause), 0);
	assert_null(cause);
	assert_int_equal(strlen(state_prefs(st)->hostname), 2 + 1 + 8 + 64);
	assert_memory_equal(state_node_key(st), nk, KEY_LEN);

	sodium_memzero(doc, sizeof doc);
	sodium_memzero(mkhex, sizeof mkhex);
	sodium_memzero(nkhex, sizeof nkhex);
	state_free(st);
}

static void
test_size_limit(void **unused)
{
	char *dir = make_dir(), *cause = NULL;
	struct state *st = full_state(), *st2 = state_new();
	char *text = snapshot(st), *big;
	size_t len = strlen(text);
	bool found = true;

	/* Exactly at the limit (trailing whitespace) is fine ... */
	big = malloc(STATE_FILE_MAX + 1);
	assert_non_null(big);
	memcpy(big, text, len);
	memset(big + len, ' ', STATE_FILE_MAX + 1 - len);
	write_file(state_path(dir), big, STATE_FILE_MAX, 0600);
	assert_int_equal(state_load(st2, dir, &found, &cause), 0);
	assert_true(found);
	assert_same_state(st, st2);

	/* ... one byte more is not, and nothing is half loaded. */
	state_free(st2);
	st2 = state_new();
	write_file(state_path(dir), big, STATE_FILE_MAX + 1, 0600);
	assert_int_equal(state_load(st2, dir, &found, &cause), -EFBIG);
	assert_false(found);
	assert_non_null(cause);
	print_message("oversized: %s\n", cause);
	free(cause);
	assert_false(state_has_keys(st2));
	assert_int_equal(state_parse(st2, big, STATE_FILE_MAX + 1, &cause), -EFBIG);
	free(cause);

	/* The netmap blob has its own cap, and the file stays within its own. */
	assert_int_equal(state_set_netmap(st, big, STATE_NETMAP_MAX + 1), -EMSGSIZE);
	memset(big, 0xff, STATE_NETMAP_MAX);
	assert_int_equal(state_set_netmap(st, big, STATE_NETMAP_MAX), 0);
	{
		bool written;

		assert_int_equal(state_save(st, dir, &written, &cause), 0);
		assert_true(written);
		assert_int_equal(state_load(st2, dir, NULL, &cause), 0);
		assert_same_state(st, st2);
	}

	sodium_memzero(big, STATE_FILE_MAX + 1);
	free(big);
	sodium_memzero(text, len);
	free(text);
	state_free(st);
	state_free(st2);
	remove_dir(dir);
}

/* --- the file itself: symlinks, modes, owners ------------------------------ */

static void
expect_refused(const char *dir, struct state *st, int err, const char *what)
{
	char *before = snapshot(st), *after, *cause = NULL;
	bool found = true;
	int r = state_load(st, dir, &found, &cause);

	if (r != err)
		fail_msg("%s: got %d (%s), want %d", what, r, cause ? cause : "-", err);
	assert_false(found);
	assert_non_null(cause);
	print_message("%-24s %s\n", what, cause);
	assert_no_key_text(cause, state_machine_key(st));
	free(cause);
	after = snapshot(st);
	assert_string_equal(before, after);
	sodium_memzero(before, strlen(before));
	sodium_memzero(after, strlen(after));
	free(before);
	free(after);
}

static void
test_file_checks(void **unused)
{
	char *dir = make_dir(), *other = make_dir(), target[1024], *cause = NULL;
	struct state *st = full_state(), *loaded = state_new();
	struct state_prefs p;
	struct stat sb;
	bool written, found;

	/* The file to point at or tamper with: a different state. */
	p = *state_prefs(st);
	assert_int_equal(state_save(st, other, &written, &cause), 0);
	snprintf(target, sizeof target, "%s", state_path(other));

	/* loaded: the state we must not disturb. */
	assert_int_equal(state_save(st, dir, &written, &cause), 0);
	assert_int_equal(state_load(loaded, dir, NULL, &cause), 0);
	p.accept_routes = !p.accept_routes;
	assert_int_equal(state_set_prefs(loaded, &p, NULL), 0);

	assert_int_equal(unlink(state_path(dir)), 0);
	assert_int_equal(symlink(target, state_path(dir)), 0);
	expect_refused(dir, loaded, -ELOOP, "symlink");
	assert_int_equal(unlink(state_path(dir)), 0);

	assert_int_equal(mkdir(state_path(dir), 0700), 0);
	expect_refused(dir, loaded, -EINVAL, "directory");
	assert_int_equal(rmdir(state_path(dir)), 0);

	assert_int_equal(mkfifo(state_path(dir), 0600), 0);
	expect_refused(dir, loaded, -EINVAL, "fifo");
	assert_int_equal(unlink(state_path(dir)), 0);

	assert_int_equal(link(target, state_path(dir)), 0);
	assert_int_equal(chmod(state_path(dir), 0602), 0);
	expect_refused(dir, loaded, -EPERM, "world-writable");
	assert_int_equal(chmod(state_path(dir), 0620), 0);
	expect_refused(dir, loaded, -EPERM, "group-writable");

	if (geteuid() == 0) {
		assert_int_equal(chmod(state_path(dir), 0600), 0);
		assert_int_equal(chown(state_path(dir), 65534, 65534), 0);
		expect_refused(dir, loaded, -EPERM, "foreign owner");
		assert_int_equal(chown(state_path(dir), 0, 0), 0);
	} else {
		print_message("not root: skipping the foreign-owner case\n");
	}

	/* Readable by others: loaded with a warning, and tightened. */
	assert_int_equal(chmod(state_path(dir), 0644), 0);
	assert_int_equal(state_load(loaded, dir, &found, &cause), 0);
	assert_true(found);
	assert_int_equal(stat(state_path(dir), &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);

	state_free(st);
	state_free(loaded);
	remove_dir(dir);
	remove_dir(other);
}

/* --- setters and helpers -------------------------------------------------- */

static void
test_set_prefs_validation(void **unused)
{
	static const char *bad_hostnames[] = {
		"a\tb", "a\x7f", "\xc2\x85", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
		"abc\xe2\x82", "privkey:0123",
	};
	struct state *st = state_new();
	struct state_prefs p, orig;
	struct state_identity id;
	char *cause = NULL;

	orig = *state_prefs(st);
	for (size_t i = 0; i < sizeof bad_hostnames / sizeof bad_hostnames[0]; i++) {
		p = orig;
		strcpy(p.hostname, bad_hostnames[i]);
		assert_int_equal(state_set_prefs(st, &p, &cause), -EINVAL);
		assert_non_null(cause);
		free(cause);
		cause = NULL;
		assert_string_equal(state_prefs(st)->hostname, orig.hostname);
	}
	p = orig;
	strcpy(p.hostname, "\xe4\xb8\xad\xf0\x9f\x98\x80");	/* CJK and an emoji */
	assert_int_equal(state_set_prefs(st, &p, NULL), 0);

	p = orig;
	memset(p.hostname, 'a', sizeof p.hostname);	/* not terminated */
	assert_int_equal(state_set_prefs(st, &p, NULL), -EINVAL);
	p = orig;
	strcpy(p.login_server, "https://h\xc3\xa9.example");
	assert_int_equal(state_set_prefs(st, &p, NULL), -EINVAL);
	p = orig;
	p.advertise_routes[0] = pfx("10.1.0.0/16");
	p.advertise_routes[0].bits = 8;	/* now 10.1.0.0/8: host bits set */
	p.n_advertise_routes = 1;
	assert_int_equal(state_set_prefs(st, &p, &cause), -EINVAL);
	print_message("host bits: %s\n", cause);
	free(cause);
	p.advertise_routes[0].bits = 33;
	assert_int_equal(state_set_prefs(st, &p, NULL), -EINVAL);
	p.advertise_routes[0].ip.family = 99;
	assert_int_equal(state_set_prefs(st, &p, NULL), -EINVAL);
	p.n_advertise_routes = STATE_ROUTES_MAX + 1;
	assert_int_equal(state_set_prefs(st, &p, NULL), -EINVAL);
	p = orig;
	p.exit_node_ip.family = 7;
	assert_int_equal(state_set_prefs(st, &p, NULL), -EINVAL);

	memset(&id, 0, sizeof id);
	strcpy(id.stable_id, "x");
	assert_int_equal(state_set_identity(st, &id, NULL), -EINVAL);	/* NodeID 0 */
	id.node_id = 1;
	id.n_addresses = STATE_ADDRS_MAX + 1;
	assert_int_equal(state_set_identity(st, &id, NULL), -EINVAL);
	id.n_addresses = 0;
	assert_int_equal(state_set_identity(st, &id, NULL), 0);
	assert_non_null(state_identity(st));
	state_clear_identity(st);
	assert_null(state_identity(st));
	state_free(st);
}

static void
test_prefix_text(void **unused)
{
	static const char *good[] = {
		"0.0.0.0/0", "10.0.0.0/8", "192.168.1.255/32", "::/0", "fd7a:115c:a1e0::1/128",
		"::ffff:1.2.3.4/128",
	};
	static const char *bad[] = {
		"", "/", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/008",
		"10.0.0.0/33", "::/129", "10.0.0/8", "10.0.0.0 /8", "10.0.0.0/8 ", "x/8",
		"fe80::1%eth0/64", "1.2.3.4/1000",
	};
	struct state_prefix p;
	char buf[STATE_PREFIX_STRLEN];

	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		assert_true(state_prefix_parse(&p, good[i], false));
		state_prefix_format(buf, &p);
		assert_string_equal(buf, good[i]);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (state_prefix_parse(&p, bad[i], false))
			fail_msg("\"%s\" parsed", bad[i]);
	assert_false(state_prefix_parse(&p, "100.64.0.1", false));
	assert_true(state_prefix_parse(&p, "100.64.0.1", true));
	assert_int_equal(p.bits, 32);
	assert_true(state_prefix_parse(&p, "fd00::1", true));
	assert_int_equal(p.bits, 128);
	assert_int_equal(p.ip.family, AF_INET6);
}

/* state_parse keeps what counts as last written. */
static void
test_parse_keeps_last_written(void **unused)
{
	char *dir = make_dir(), *cause = NULL, *text;
	struct state *st = full_state(), *other = full_state();
	bool written;

	assert_int_equal(state_save(st, dir, &written, &cause), 0);
	text = snapshot(st);
	assert_int_equal(state_parse(st, text, strlen(text), &cause), 0);
	assert_int_equal(state_save(st, dir, &written, &cause), 0);
	assert_false(written);
	sodium_memzero(text, strlen(text));
	free(text);
	text = snapshot(other);
	assert_int_equal(state_parse(st, text, strlen(text), &cause), 0);
	assert_int_equal(state_save(st, dir, &written, &cause), 0);
	assert_true(written);
	sodium_memzero(text, strlen(text));
	free(text);
	state_free(st);
	state_free(other);
	remove_dir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_file_format),
		cmocka_unit_test(test_only_when_changed),
		cmocka_unit_test(test_mode_0600),
		cmocka_unit_test(test_no_temp_left),
		cmocka_unit_test(test_stale_temp_ignored),
		cmocka_unit_test(test_failed_save),
		cmocka_unit_test(test_creates_dir),
		cmocka_unit_test(test_missing_file_is_fresh),
		cmocka_unit_test(test_keys_generated_and_kept),
		cmocka_unit_test(test_rotation),
		cmocka_unit_test(test_logout),
		cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_lenient_where_harmless),
		cmocka_unit_test(test_size_limit),
		cmocka_unit_test(test_file_checks),
		cmocka_unit_test(test_set_prefs_validation),
		cmocka_unit_test(test_prefix_text),
		cmocka_unit_test(test_parse_keeps_last_written),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests_name("state", tests, NULL, NULL);
}

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Copyright (C) 2026 The meshd Authors.
#
# tests/e2e/control.sh: meshd's control client against a real Headscale
# v0.29.2, with a real tailscaled v1.102.3 as the peer, in one namespace
# (headscale on 10.0.0.1:8080 on its loopback, as in testing/testbed.md).
# Driven through `meshd debug-control`, which runs the control client alone.
#
# Cases: tailscaled registers (calibration); meshd registers with an auth key
# (also given as file:PATH) and its netmap lists itself and the tailscaled
# peer with their addresses; Headscale lists meshd under its hostname; a
# restart keeps the node's ID and addresses; a bad auth key fails with
# Headscale's message; an interactive login prints the AuthURL, and an admin's
# approval completes it; an unreachable server fails after retries.

set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

BIN=$MESHD_CACHE/bin
HSBIN=$BIN/headscale
CTRL=http://10.0.0.1:8080
D=$T_TMP/control
mkdir -p "$D"

for b in "$HSBIN" "$BIN/tailscaled" "$BIN/tailscale"; do
	[[ -x $b ]] || { fail "setup: $b missing (make deps)"; lib_finish; exit 1; }
done

ns_new NS hub

hs_node() { HS nodes list -o json | jq -c --arg h "$1" '.[] | select(.given_name == $h)'; }
# debug-control in the hub namespace; extra arguments follow.
ctl() { timeout 60 ip netns exec "$NS" "$MESHD" debug-control --login-server "$CTRL" "$@"; }

check "setup: headscale answers /key" hs_start "$NS" "$D"
HS users create user1 >/dev/null
USER_ID=$(HS users list -o json | jq -r '.[] | select(.name == "user1") | .id')
KEY=$(HS preauthkeys create --user "$USER_ID" --reusable -e 1h -o json | jq -r .key)
printf '%s\n' "$KEY" >"$D/authkey"

# Calibration: the real client registers in the same setup.
mkdir -p "$D/ts1"
bg_start "$NS" "$D/tailscaled.log" "$BIN/tailscaled" --statedir="$D/ts1" --socket="$D/ts1.sock" \
	--tun=userspace-networking --no-logs-no-support --port=41642
TS() { ip netns exec "$NS" "$BIN/tailscale" --socket="$D/ts1.sock" "$@"; }
wait_until 20 TS status --json >/dev/null 2>&1 || true
check "calibration: tailscaled registers with headscale" \
	timeout 60 ip netns exec "$NS" "$BIN/tailscale" --socket="$D/ts1.sock" up \
	--login-server="$CTRL" --authkey="$KEY" --hostname=peer1 --accept-dns=false
PEER_IP=$(TS ip -4)

# meshd with the key from a file.
if ctl --statedir "$D/agent1" --authkey "file:$D/authkey" --hostname agent1 --until-netmap \
	--timeout 30 >"$D/run1.out" 2>"$D/run1.err"; then
	pass "meshd registers with an auth key (file:PATH) and gets a netmap"
else
	fail "meshd registers with an auth key (file:PATH) and gets a netmap"
	sed 's/^/  | /' "$D/run1.err"
fi
SELF1=$(awk '$1 == "self" { print $2, $5 }' "$D/run1.out")
check "netmap: self is agent1 with a 100.64/10 and an fd7a:115c:a1e0:: address" \
	grep -Eq '^self [0-9]+ agent1\.ts\.test\. agent1 100\.(6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7])\.[0-9.]+/32,fd7a:115c:a1e0::[0-9a-f:]+/128' "$D/run1.out"
check "netmap: the tailscaled peer is listed with its address" \
	grep -Eq "^peer [0-9]+ peer1\.ts\.test\. peer1 $PEER_IP/32," "$D/run1.out"
check "headscale lists meshd under its hostname" \
	test -n "$(hs_node agent1)"
check "the auth key never reaches meshd's output" \
	bash -c "! grep -qF -- '$KEY' '$D/run1.out' '$D/run1.err'"
check "the state file is mode 0600" \
	test "$(stat -c %a "$D/agent1/meshd.state")" = 600

# A restart: same keys, no auth key needed, same identity.
if ctl --statedir "$D/agent1" --hostname agent1 --until-netmap --timeout 30 \
	>"$D/run2.out" 2>"$D/run2.err"; then
	pass "restart: meshd comes back without an auth key"
else
	fail "restart: meshd comes back without an auth key"
	sed 's/^/  | /' "$D/run2.err"
fi
SELF2=$(awk '$1 == "self" { print $2, $5 }' "$D/run2.out")
check "restart: same node ID and addresses" test -n "$SELF1" -a "$SELF1" = "$SELF2"
check "restart: still one node named agent1" \
	test "$(HS nodes list -o json | jq '[.[] | select(.given_name == "agent1")] | length')" = 1

# A bad key: Headscale's own message, and a non-zero exit.
if ctl --statedir "$D/agent2" --authkey hskey-auth-bogus --hostname agent2 --until-netmap \
	--timeout 20 >"$D/bad.out" 2>"$D/bad.err"; then
	fail "a bad auth key fails"
else
	pass "a bad auth key fails"
fi
check "a bad auth key: the control server's message is shown" grep -q 'auth-key' "$D/bad.err"

# Interactive: the AuthURL appears on its own line; the admin approves it.
ip netns exec "$NS" timeout 60 "$MESHD" debug-control --login-server "$CTRL" \
	--statedir "$D/agent3" --hostname agent3 --until-netmap --timeout 50 \
	>"$D/login.out" 2>"$D/login.err" &
LOGIN_PID=$!
T_PIDS+=("$LOGIN_PID")
check "interactive login: the AuthURL is printed on its own line" \
	wait_until 20 grep -Eq "^	$CTRL/register/hskey-authreq-[A-Za-z0-9_-]+\$" "$D/login.out"
AUTH_ID=$(grep -Eo 'hskey-authreq-[A-Za-z0-9_-]+' "$D/login.out" | head -n1 || true)
check "interactive login: the admin approves it" HS auth register --auth-id "$AUTH_ID" --user user1
if wait "$LOGIN_PID"; then
	pass "interactive login: the follow-up completes and the netmap arrives"
else
	fail "interactive login: the follow-up completes and the netmap arrives"
	sed 's/^/  | /' "$D/login.err"
fi
check "interactive login: headscale lists agent3" test -n "$(hs_node agent3)"

# No server: retries, then a clear failure.
if timeout 30 ip netns exec "$NS" "$MESHD" debug-control --login-server http://10.0.0.1:8081 \
	--statedir "$D/agent4" --until-netmap --timeout 4 >/dev/null 2>"$D/down.err"; then
	fail "an unreachable control server fails"
else
	pass "an unreachable control server fails"
fi
check "an unreachable control server is retried with backoff" \
	test "$(grep -c "fetching the control key" "$D/down.err")" -ge 2

SAN=0
for f in "$D"/*.err; do
	if grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error:' "$f"; then
		SAN=1
		echo "  sanitizer report in ${f##*/}:"
		sed 's/^/  | /' "$f" | head -40
	fi
done
if ((SAN)); then fail "no sanitizer reports from meshd"; else pass "no sanitizer reports from meshd"; fi

TS logout >/dev/null 2>&1 || true
lib_finish

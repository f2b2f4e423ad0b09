#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Copyright (C) 2026 The meshd Authors.
#
# tests/e2e/node.sh: the meshd daemon and meshctl against a real Headscale
# v0.29.2 and real tailscaled v1.102.3 peers: the control-plane parts of the
# acceptance cases AC01 to AC06, AC16 and AC17 of
# testing/testbed.md (their pings need the data plane, which is not here yet).
#
# Everything runs in one namespace: headscale on 10.0.0.1:8080 on its
# loopback; each node has its own TUN name, socket and state directory;
# tailscaled peers use userspace networking.
#
# AGENT=tailscaled runs the same cases with tailscaled and tailscale in
# meshd's place, to calibrate the timeouts against the real thing.

set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

BIN=$MESHD_CACHE/bin
HSBIN=$BIN/headscale
CTRL=http://10.0.0.1:8080
AGENT=${AGENT:-meshd}
D=$T_TMP/node
mkdir -p "$D"
MESHCTL=${MESHCTL:-$(dirname "$MESHD")/meshctl}

for b in "$HSBIN" "$BIN/tailscaled" "$BIN/tailscale" "$MESHCTL"; do
	[[ -x $b ]] || { fail "setup: $b missing (make deps, make asan)"; lib_finish; exit 1; }
done

ns_new NS hub

UIDOF() { HS users list -o json | jq -r --arg u "$1" '.[] | select(.name == $u) | .id'; }
KEY() { HS preauthkeys create --user "$(UIDOF "$1")" -e 1h -o json "${@:2}" | jq -r .key; }
NID() { HS nodes list -o json | jq -r --arg h "$1" '.[] | select(.given_name == $h) | .id'; }
HSNODE() { HS nodes list -o json | jq -c --arg h "$1" '.[] | select(.given_name == $h)'; }
HJ() { HSNODE "$1" | jq -e "$2" >/dev/null; }
GONE() { [[ -z $(HSNODE "$1") ]]; }
NCOUNT() { HS nodes list -o json | jq length; }

declare -A PIDS PORT TUN
NEXT_PORT=41700
NEXT_TUN=0

# Real peers: tailscaled in userspace mode.
start_peer() {
	local n=$1
	mkdir -p "$D/$n"
	PORT[$n]=${PORT[$n]:-$((NEXT_PORT++))}
	bg_start "$NS" "$D/$n.log" env TS_DEBUG_USE_DERP_HTTP=1 TS_DISABLE_PORTMAPPER=1 \
		"$BIN/tailscaled" --statedir="$D/$n" --socket="$D/$n.sock" --tun=userspace-networking \
		--no-logs-no-support --port="${PORT[$n]}"
	PIDS[$n]=$BG_PID
}
TS() { local n=$1; shift; ip netns exec "$NS" "$BIN/tailscale" --socket="$D/$n.sock" "$@"; }

# The node under test: meshd + meshctl, or tailscaled + tailscale to calibrate.
start_agent() {
	local n=$1
	if [[ $AGENT == tailscaled ]]; then start_peer "$n"; return; fi
	mkdir -p "$D/$n"
	TUN[$n]=${TUN[$n]:-mtun$((NEXT_TUN++))}
	bg_start "$NS" "$D/$n.log" "$MESHD" --statedir="$D/$n" --socket="$D/$n.sock" \
		--tun="${TUN[$n]}"
	PIDS[$n]=$BG_PID
	sleep 0.3
}
AG() {
	local n=$1; shift
	if [[ $AGENT == tailscaled ]]; then TS "$n" "$@"; return; fi
	ip netns exec "$NS" "$MESHCTL" --socket="$D/$n.sock" "$@"
}
AGT() { local t=$1; shift; timeout "$t" bash -c "$(declare -f AG TS); AGENT=$AGENT NS=$NS D=$D BIN=$BIN MESHCTL=$MESHCTL AG \"\$@\"" _ "$@"; }
stop_node() { stop_pid "${PIDS[$1]}" || true; }
kill9_node() { kill -9 "${PIDS[$1]}" 2>/dev/null || true; wait "${PIDS[$1]}" 2>/dev/null || true; }
SJ() { AG "$1" status --json | jq -e "$2" >/dev/null; }
PJ() { AG "$1" status --json | jq -e --arg h "$2" "[.Peer[]? | select(.HostName == \$h) | ($3)] | any" >/dev/null; }
up_peer() { wait_until 10 TS "$1" status --json >/dev/null; TS "$1" up --login-server="$CTRL" --authkey="$2" --hostname="$1" --accept-dns=false "${@:3}"; }
up_agent() { wait_until 10 AG "$1" status --json >/dev/null; AG "$1" up --login-server="$CTRL" --authkey="$2" --hostname="$1" "${@:3}"; }
until_ok() { local t=$1; shift; wait_until "$t" "$@"; }
AIP() { AG "$1" ip -4; }

check "setup: headscale answers /key" hs_start "$NS" "$D"
HS users create user1 --email user1@test.no >/dev/null
HS users create user2 --email user2@test.no >/dev/null

# Baseline: agent1 (user1), peer1 and peer2 (user2).
start_agent agent1
check "baseline: agent1 up with a reusable key" up_agent agent1 "$(KEY user1 --reusable)"
start_peer peer1; check "baseline: peer1 (tailscaled) up" up_peer peer1 "$(KEY user2 --reusable)"
start_peer peer2; check "baseline: peer2 (tailscaled) up" up_peer peer2 "$(KEY user2 --reusable)"
check "baseline: agent1 sees peer1 and peer2 online" \
	until_ok 30 bash -c "$(declare -f AG TS PJ); AGENT=$AGENT NS=$NS D=$D BIN=$BIN MESHCTL=$MESHCTL; PJ agent1 peer1 .Online && PJ agent1 peer2 .Online"

# AC01: registration with a pre-auth key; the status contract.
start_agent aux1
check "AC01: a fresh node is NeedsLogin" until_ok 15 SJ aux1 '.BackendState == "NeedsLogin"'
check "AC01: up with a pre-auth key" AGT 30 aux1 up --login-server="$CTRL" --authkey="$(KEY user1)" --hostname=aux1
check "AC01: status --json: Running, Self, DNS, two addresses, numeric ID, online" \
	SJ aux1 '.BackendState == "Running" and .Self.HostName == "aux1" and .Self.DNSName == "aux1.ts.test."
	and .MagicDNSSuffix == "ts.test" and (.Self.TailscaleIPs | length) == 2 and (.Self.ID | test("^[0-9]+$")) and .Self.Online'
check "AC01: ip -4 is in 100.64.0.0/10" bash -c "$(declare -f AG TS); AGENT=$AGENT NS=$NS D=$D BIN=$BIN MESHCTL=$MESHCTL; AG aux1 ip -4 | grep -Eq '^100\.(6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7])\.'"
check "AC01: ip -6 is in fd7a:115c:a1e0::/48" bash -c "$(declare -f AG TS); AGENT=$AGENT NS=$NS D=$D BIN=$BIN MESHCTL=$MESHCTL; AG aux1 ip -6 | grep -q '^fd7a:115c:a1e0:'"
if [[ $AGENT == meshd ]]; then
	TUN1=${TUN[aux1]}
	check "AC01: the TUN carries the address" bash -c "ip -n $NS -o addr show dev $TUN1 | grep -q '$(AIP aux1)/32'"
	check "AC01: the TUN's MTU is 1280" bash -c "ip -n $NS -o link show dev $TUN1 | grep -q 'mtu 1280'"
fi
check "AC01: headscale lists aux1 online with two addresses" until_ok 20 HJ aux1 '.online and (.ip_addresses | length) == 2'
check "AC01: aux1 sees peer1 online with two addresses" until_ok 20 PJ aux1 peer1 '.Online and (.TailscaleIPs | length) == 2'
check "AC01: version" AG aux1 version

# AC02: a single-use key registers one machine only; an expired key is refused with control's message.
K1=$(KEY user1)
start_agent aux2
check "AC02: a single-use key registers the first machine" AGT 30 aux2 up --login-server="$CTRL" --authkey="$K1" --hostname=aux2
start_agent aux3
check_not "AC02: the same single-use key fails for a second machine" \
	AGT 30 aux3 up --login-server="$CTRL" --authkey="$K1" --hostname=aux3
check "AC02: that machine is not Running" SJ aux3 '.BackendState != "Running"'
check "AC02: headscale has no aux3" GONE aux3
J=$(HS preauthkeys create --user "$(UIDOF user1)" --reusable -e 1h -o json)
HS preauthkeys expire --id "$(jq -r .id <<<"$J")" >/dev/null 2>&1 || \
	HS preauthkeys expire --user "$(UIDOF user1)" "$(jq -r .key <<<"$J")" >/dev/null 2>&1 || true
if AGT 30 aux3 up --login-server="$CTRL" --authkey="$(jq -r .key <<<"$J")" --hostname=aux3 >"$D/ac02.out" 2>&1; then
	fail "AC02: an expired key fails"
else
	pass "AC02: an expired key fails"
fi
check "AC02: control's message (authkey expired) is shown" grep -q 'authkey expired' "$D/ac02.out"

# AC03: an ephemeral node is deleted at logout, and after inactivity.
start_agent eph1
check "AC03: up with an ephemeral key" up_agent eph1 "$(KEY user1 --ephemeral)"
check "AC03: headscale lists it online" until_ok 20 HJ eph1 .online
check "AC03: logout" AG eph1 logout
if AG eph1 status >"$D/ac03.out" 2>&1; then fail "AC03: status after logout exits non-zero"; else pass "AC03: status after logout exits non-zero"; fi
check "AC03: status after logout says Logged out." grep -q 'Logged out\.' "$D/ac03.out"
check "AC03: logout deletes the ephemeral node" until_ok 30 GONE eph1
check "AC03: up again with a new ephemeral key" up_agent eph1 "$(KEY user1 --ephemeral)"
check "AC03: online again" until_ok 20 HJ eph1 .online
kill9_node eph1
sleep 30
check_not "AC03: still there 30 s after a crash" GONE eph1
check "AC03: deleted after the inactivity timeout (66 s)" until_ok 150 GONE eph1

# AC04: logout and relogin keep the node for the same user.
id=$(NID agent1); ip=$(AIP agent1); n=$(NCOUNT)
check "AC04: logout" AG agent1 logout
if AG agent1 status >"$D/ac04.out" 2>&1; then fail "AC04: status after logout exits non-zero"; else pass "AC04: status after logout exits non-zero"; fi
check "AC04: status after logout says Logged out." grep -q 'Logged out\.' "$D/ac04.out"
check "AC04: NeedsLogin with no peers" SJ agent1 '.BackendState == "NeedsLogin" and ((.Peer // {}) | length) == 0'
check "AC04: headscale sees agent1 offline" until_ok 30 HJ agent1 '(.online // false) == false'
check "AC04: relogin with the same user" up_agent agent1 "$(KEY user1)"
check "AC04: same node ID" test "$(NID agent1)" = "$id"
check "AC04: same address" test "$(AIP agent1)" = "$ip"
check "AC04: no new node" test "$(NCOUNT)" = "$n"

# AC05: interactive login.
start_agent aux4
check "AC05: status answers" until_ok 10 AG aux4 status --json
AGT 10 aux4 up --login-server="$CTRL" --hostname=aux4 >"$D/ac05.out" 2>&1 || true
U=$(sed 's/^[[:space:]]*//' "$D/ac05.out" | grep -E '^https?://' | head -n1 || true)
check "AC05: the AuthURL is printed on its own line" bash -c "echo '$U' | grep -q '^$CTRL/register/.'"
check "AC05: the admin approves it" HS auth register --user user1 --auth-id "${U##*/}"
check "AC05: the node becomes Running" until_ok 30 SJ aux4 '.BackendState == "Running"'

# AC06: peers appear and disappear; the online flag follows the peer.
start_peer aux5; check "AC06: a new peer joins" up_peer aux5 "$(KEY user2)"
check "AC06: agent1 sees it online with two addresses" until_ok 20 PJ agent1 aux5 '.Online and (.TailscaleIPs | length) == 2'
HS nodes delete -i "$(NID aux5)" --force >/dev/null
check "AC06: a deleted peer disappears" until_ok 20 bash -c "$(declare -f AG TS PJ); AGENT=$AGENT NS=$NS D=$D BIN=$BIN MESHCTL=$MESHCTL; ! PJ agent1 aux5 true"
kill9_node peer1
check "AC06: a killed peer goes offline" until_ok 60 PJ agent1 peer1 '.Online == false'
start_peer peer1
check "AC06: it comes back online after a restart" until_ok 60 PJ agent1 peer1 .Online

# AC16: key expiry, the peer's and our own.
HS nodes expire -i "$(NID peer1)" >/dev/null
check "AC16: an expired peer shows Expired with a past KeyExpiry" \
	until_ok 60 PJ agent1 peer1 '.Expired == true and ((.KeyExpiry | sub("\\.[0-9]+"; "") | fromdate) < now)'
ip=$(AIP agent1)
HS nodes expire -i "$(NID agent1)" >/dev/null
check "AC16: our own expiry leads to NeedsLogin" until_ok 60 SJ agent1 '.BackendState == "NeedsLogin"'
check "AC16: re-auth with --force-reauth" up_agent agent1 "$(KEY user1)" --force-reauth
check "AC16: the address is kept" test "$(AIP agent1)" = "$ip"

# AC17: restart persistence, down persistence, saved prefs.
b=$(HSNODE agent1 | jq -c '{id, node_key, ip_addresses}'); n=$(NCOUNT)
stop_node agent1; start_agent agent1
check "AC17: a restart comes back Running without up" until_ok 30 SJ agent1 '.BackendState == "Running"'
check "AC17: same node record" test "$(HSNODE agent1 | jq -c '{id, node_key, ip_addresses}')" = "$b"
check "AC17: no new node" test "$(NCOUNT)" = "$n"
check "AC17: down" AG agent1 down
stop_node agent1; start_agent agent1; sleep 3
check "AC17: after down, a restart stays Stopped" SJ agent1 '.BackendState == "Stopped"'
check "AC17: headscale sees it offline" until_ok 30 HJ agent1 '(.online // false) == false'
check "AC17: ip still answers while Stopped" test "$(AG agent1 ip -4)" = "$(jq -r '.ip_addresses[0]' <<<"$b")"
check "AC17: up with a new hostname" AG agent1 up --login-server="$CTRL" --hostname=agent1b
stop_node agent1; start_agent agent1
check "AC17: the hostname pref survives a restart" \
	until_ok 30 bash -c "$(declare -f HS HSNODE); HS_DIR=$D MESHD_CACHE=$MESHD_CACHE; HS nodes list -o json | jq -e '.[] | select(.id == $(jq -r .id <<<"$b")) | .online and .name == \"agent1b\"' >/dev/null"

# The control server goes away and comes back: the node keeps its netmap, then reconnects.
check "control down: agent1 Running with peer2 first" until_ok 30 PJ agent1 peer2 .Online
stop_pid "$HS_PID" || true
sleep 3
check "control down: still Running" SJ agent1 '.BackendState == "Running"'
check "control down: the last netmap is kept" PJ agent1 peer2 '(.TailscaleIPs | length) == 2'
check "control back: headscale restarts" hs_serve "$NS"
check "control back: meshd reconnects (headscale sees it online)" until_ok 60 HJ agent1b .online
check "control back: still Running with its peers" until_ok 30 PJ agent1 peer2 .Online

# Every agent still alive, and no sanitizer report anywhere.
for n in agent1 aux1 aux2 aux4; do
	check "alive: $n" kill -0 "${PIDS[$n]}"
done
SAN=0
for f in "$D"/agent*.log "$D"/aux*.log; do
	if grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error:|SIGSEGV' "$f"; then
		SAN=1
		echo "  sanitizer report in ${f##*/}:"; sed 's/^/  | /' "$f" | head -30
	fi
done
if ((SAN)); then fail "no sanitizer reports"; else pass "no sanitizer reports"; fi
check_not "no auth key in any meshd log" grep -l 'hskey-auth-' "$D"/agent*.log "$D"/aux*.log "$D"/eph*.log
lib_finish

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Copyright (C) 2026 The meshd Authors.
#
# tests/e2e/mesh.sh: the tailnet data plane against a real Headscale v0.29.2
# and real tailscaled v1.102.3 peers, in the testbed of testing/testbed.md
# §2.2: a hub namespace routes between one namespace per node; headscale,
# its embedded DERP and STUN are on the hub's 10.0.0.1; every node has a real
# TUN (tailscale0), so the OS itself pings, curls and runs iperf3 over the
# tailnet.
#
#   hub ── h-agent1 10.0.1.1 ── agent1 10.0.1.2   [node under test]
#       ── h-peer1  10.0.2.1 ── peer1  10.0.2.2   [tailscaled]
#       ── h-peer2  10.0.3.1 ── peer2  10.0.3.2   [tailscaled]
#       ── h-natA  10.0.21.1 ── natA  10.0.21.2 (masquerade) ── agent2 192.168.21.2 [node under test]
#       ── h-natB  10.0.22.1 ── natB  10.0.22.2 (masquerade) ── peer3  192.168.22.2 [tailscaled]
#
# Cases (testbed.md §6): AC01 (home DERP as seen by control and by peers),
# AC07 (disco ping both ways, direct), AC08 (ICMP v4/v6, TCP, UDP,
# throughput, MTU), AC09 (DERP only when UDP is blocked), AC10 (both ends
# behind NAT go direct), AC18 (control's PingRequest, then an online soak of
# MESH_SOAK_S seconds, default 300, which runs while AC07, AC08, AC06 and AC10
# go on), AC06 (peer restart: new disco key, traffic again), AC17 (daemon
# restart without `up`), AC04 (logout and relogin), AC16 (expired keys);
# and beyond testbed.md: RT (routes and rules, removed on exit and by
# --cleanup), NC (netcheck and the data-plane counters), MM
# (agent1 and agent2 talking to each other: meshd to meshd, one of them
# behind NAT) and DR (the DERP and control server restarts: direct paths
# carry on, DERP comes back).
#
# Environment:
#   AGENT=meshd (default) or tailscaled: what runs as agent1 and agent2
#                  (tailscaled calibrates the cases against the real thing)
#   MESH_SOAK_S    length of the AC18 online soak in seconds (default 300)
#   MESH_CASES     only these cases, e.g. "AC07 AC08" (default: all)
#   MESHD, MESHCTL the binaries (default build/asan/meshd and its meshctl)

set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

AGENT=${AGENT:-meshd}
SOAK_S=${MESH_SOAK_S:-300}
read -r -a CASES <<<"${MESH_CASES:-}"
T0=$SECONDS

want() {
	local c
	((${#CASES[@]})) || return 0
	for c in "${CASES[@]}"; do [[ $c == "$1" ]] && return 0; done
	return 1
}
hdr() { printf '== %s (t+%ds)\n' "$*" $((SECONDS - T0)); }

case $AGENT in
meshd) need=("$MESHD" "$MESHCTL") ;;
tailscaled) need=() ;;
*) fail "setup: AGENT must be meshd or tailscaled, not '$AGENT'"; lib_finish; exit 1 ;;
esac
for b in "$TN_BIN/headscale" "$TN_BIN/tailscaled" "$TN_BIN/tailscale" "${need[@]}"; do
	[[ -x $b ]] || { fail "setup: $b missing (make deps; make asan)"; lib_finish; exit 1; }
done
for t in nft iperf3 curl jq python3 ping; do
	command -v "$t" >/dev/null || { fail "setup: $t missing (make deps)"; lib_finish; exit 1; }
done

# --- helpers (testbed.md §2.4, on top of lib.sh's tn_*) ---------------------

C() { tn_cli "$@"; }                   # the CLI of any node: meshctl or tailscale
start_agent() { tn_start "$1" "$AGENT"; }
start_peer() { tn_start "$1" tailscaled; }
IP4() { tn_cli "$1" ip -4; }
IP6() { tn_cli "$1" ip -6; }
UIDOF() { HS users list -o json | jq -r --arg u "$1" '.[] | select(.name == $u) | .id'; }
KEY() { HS preauthkeys create --user "$(UIDOF "$1")" -e 1h -o json "${@:2}" | jq -r .key; }
NID() { HS nodes list -o json | jq -r --arg h "$1" '.[] | select(.given_name == $h) | .id'; }
HSNODE() { HS nodes list -o json | jq -c --arg h "$1" '.[] | select(.given_name == $h)'; }
HSREC() { HSNODE "$1" | jq -c '{id, node_key, ip_addresses}'; }
NCOUNT() { HS nodes list -o json | jq length; }
HJ() { HSNODE "$1" | jq -e "$2"; }
NSTORE() { in_ns "$TN_HUB" curl -s -m 10 -H 'Accept: application/json' http://127.0.0.1:9090/debug/nodestore; }
NSJ() { NSTORE | jq -e --arg h "$1" "[.[] | select(.Hostname == \$h) | ($2)] | any"; }
SJ() { C "$1" status --json | jq -e "$2"; }
# PJ NODE PEER EXPR: NODE's view of PEER.
PJ() { C "$1" status --json | jq -e --arg h "$2" "[.Peer[]? | select(.HostName == \$h) | ($3)] | any"; }

# until_ok SECS CMD...: once a second until CMD succeeds; shows its last output.
until_ok() {
	local deadline=$((SECONDS + $1)) out; shift
	while :; do
		if out=$("$@" 2>&1); then printf '%s\n' "$out"; return 0; fi
		((SECONDS < deadline)) || { printf '%s\n' "$out"; return 1; }
		sleep 1
	done
}
# OUT RE CMD...: CMD's output matches RE (whatever its exit status).
OUT() {
	local re=$1 out; shift
	out=$("$@" 2>&1) || true
	printf '%s\n' "${out:0:3000}"
	grep -Eq -- "$re" <<<"$out"
}
# OUTZ RE CMD...: CMD exits 0 and its output matches RE.
OUTZ() {
	local re=$1 out rc=0; shift
	out=$("$@" 2>&1) || rc=$?
	printf '%s\n[exit %d]\n' "${out:0:3000}" "$rc"
	((rc == 0)) && grep -Eq -- "$re" <<<"$out"
}
# NSPING NODE ADDR [N [PING-ARGS...]]: the OS pings over the tailnet; all replies must come.
NSPING() { timeout 30 ip netns exec "${TN_NS[$1]}" ping -q -c "${3:-3}" -i 0.3 -W 2 "${@:4}" "$2"; }
NOT() { ! "$@"; }
EQ() { local want=$1 got; shift; got=$("$@") || return 1; printf 'want %s, got %s\n' "$want" "$got"; [[ $got == "$want" ]]; }

# A web server with a known page in NODE's namespace on port 8000 (v4 and v6).
WWW=$T_TMP/www
mkdir -p "$WWW"
echo "meshd-e2e-$$" >"$WWW/index.html"
declare -A HTTP_PID=()
http_start() {
	bg_start "${TN_NS[$1]}" "$T_LOGDIR/$T_IFPREFIX-$1-http.log" python3 -m http.server 8000 --bind :: --directory "$WWW"
	HTTP_PID[$1]=$BG_PID
	wait_until 10 bash -c "ip netns exec '${TN_NS[$1]}' ss -Htln 'sport = :8000' | grep -q ."
}
http_stop() { [[ -z ${HTTP_PID[$1]:-} ]] || stop_pid "${HTTP_PID[$1]}" || true; HTTP_PID[$1]=''; }
CURL() { local n=$1; shift; timeout 20 ip netns exec "${TN_NS[$n]}" curl -gsf -m 5 "$@" | grep -qx "meshd-e2e-$$"; }

# The agents must still be running at the end of each case (testbed.md §6).
alive_check() {
	local c=$1 n; shift
	for n in "$@"; do check "$c: $n's daemon still running" tn_alive "$n"; done
}

# --- topology, headscale, baseline B ----------------------------------------

hdr "setup: topology and headscale (agent: $AGENT)"
if ! { tn_hub && tn_node agent1 1 && tn_node peer1 2 && tn_node peer2 3 &&
	tn_natted natA 21 agent2 && tn_natted natB 22 peer3; } >"$T_TMP/topo.out" 2>&1; then
	fail "setup: topology"; sed 's/^/  | /' "$T_TMP/topo.out"; lib_finish; exit 1
fi
if ! hs_start "$TN_HUB" "$TN_DIR"; then
	fail "setup: headscale answers /key"; tail -n 20 "$TN_DIR/headscale.log" | sed 's/^/  | /'; lib_finish; exit 1
fi
pass "setup: topology and headscale"
HS users create user1 --email user1@test.no >/dev/null
HS users create user2 --email user2@test.no >/dev/null
echo '{"acls":[{"action":"accept","src":["*"],"dst":["*:*"]}]}' >"$T_TMP/allow-all.json"
check "setup: allow-all policy" HS policy set -f "$T_TMP/allow-all.json"

hdr "baseline: agent1 ($AGENT), peer1 and peer2 (tailscaled)"
K1=$(KEY user1 --reusable) K2=$(KEY user2 --reusable)
start_agent agent1
check "baseline: agent1 up" tn_up agent1 "$K1"
start_peer peer1; check "baseline: peer1 up" tn_up peer1 "$K2"
start_peer peer2; check "baseline: peer2 up" tn_up peer2 "$K2"
both_online() { PJ agent1 peer1 .Online && PJ agent1 peer2 .Online; }
check "baseline: agent1 sees peer1 and peer2 online" until_ok 60 both_online
# A node that did not come up has no address: the cases then fail, one by one.
A=$(IP4 agent1) || true; A6=$(IP6 agent1) || true
P1=$(IP4 peer1) || true; P16=$(IP6 peer1) || true; P2=$(IP4 peer2) || true
note "agent1 $A $A6, peer1 $P1 $P16, peer2 $P2"

# --- AC01: the data-plane parts ----------------------------------------------

if want AC01; then
	hdr "AC01: home DERP"
	check "AC01: nodestore: agent1's NetInfo.PreferredDERP is 999" \
		until_ok 60 NSJ agent1 '.Hostinfo.NetInfo.PreferredDERP == 999'
	check "AC01: agent1 sees peer1 online, Relay headscale, two addresses" \
		until_ok 30 PJ agent1 peer1 '.Online and .Relay == "headscale" and (.TailscaleIPs | length) == 2'
	check "AC01: peer1 sees agent1 with Relay headscale" until_ok 30 PJ peer1 agent1 '.Relay == "headscale"'
fi

# --- AC18: control PingRequest, then the soak (in the background) ---------

SOAK_PID=''
soak() {
	local end=$((SECONDS + SOAK_S)) t0=$SECONDS rounds=0 bad=0
	while ((SECONDS < end)); do
		rounds=$((rounds + 1))
		HJ agent1 .online >/dev/null 2>&1 ||
			{ bad=$((bad + 1)); echo "t+$((SECONDS - t0))s: headscale does not list agent1 online"; }
		PJ peer2 agent1 .Online >/dev/null 2>&1 ||
			{ bad=$((bad + 1)); echo "t+$((SECONDS - t0))s: peer2 does not see agent1 Online"; }
		sleep 10
	done
	echo "soak: $rounds rounds over $((SECONDS - t0)) s, $bad failed checks"
	((bad == 0 && rounds >= SOAK_S / 10))
}
if want AC18; then
	hdr "AC18: control PingRequest"
	id=$(NID agent1)
	check "AC18: headscale's PingRequest: Node $id responded" until_ok 30 \
		OUT "Node $id responded in" in_ns "$TN_HUB" curl -s -m 20 "http://127.0.0.1:9090/debug/ping?node=$id"
	hdr "AC18: online soak of ${SOAK_S}s starts (in the background)"
	soak >"$T_TMP/soak.out" 2>&1 &
	SOAK_PID=$!
	T_PIDS+=("$SOAK_PID")
fi

# --- AC07: disco ping both ways, direct ---------------------------------------

if want AC07; then
	hdr "AC07: disco ping"
	declare -A IDX=([peer1]=2 [peer2]=3)
	for p in peer1 peer2; do
		P=$(IP4 "$p") || true
		i=${IDX[$p]}
		check "AC07: $p pings agent1 by IP, direct via 10.0.1.2" until_ok 30 \
			OUTZ "pong from agent1 .* via 10\.0\.1\.2:[0-9]+" C "$p" ping --c=10 --timeout=2s --until-direct=true "$A"
		check "AC07: $p pings agent1 by FQDN, direct" \
			OUTZ "pong from agent1 .* via 10\.0\.1\.2:[0-9]+" C "$p" ping --c=10 --timeout=2s --until-direct=true agent1.ts.test.
		check "AC07: agent1 pings $p by IP, direct via 10.0.$i.2" until_ok 30 \
			OUTZ "pong from $p .* via 10\.0\.$i\.2:[0-9]+" C agent1 ping --c=10 --timeout=2s --until-direct=true "$P"
		check "AC07: agent1 pings $p by short name" \
			OUTZ "pong from $p \($P\)" C agent1 ping --c=3 --timeout=2s --until-direct=false "$p"
		check "AC07: agent1 pings $p by FQDN" \
			OUTZ "pong from $p \($P\)" C agent1 ping --c=3 --timeout=2s --until-direct=false "$p.ts.test."
	done
	check "AC07: agent1 pings itself: is local Tailscale IP" OUT "$A is local Tailscale IP" C agent1 ping "$A"
	alive_check AC07 agent1
fi

# --- AC08: the OS's traffic over the tailnet ------------------------------------

# iperf NAME JQ ARGS...: a 5 s iperf3 run from agent1 to peer1; JQ on its JSON.
iperf() {
	local name=$1 expr=$2 j=$T_TMP/iperf.json; shift 2
	if timeout 40 ip netns exec "${TN_NS[agent1]}" iperf3 -c "$P1" -t 5 -J "$@" >"$j" 2>&1 &&
		jq -e "$expr" "$j" >/dev/null; then
		pass "$name"
	else
		fail "$name"; jq -c '.error // .end.sum_received // .end.sum' "$j" 2>/dev/null | sed 's/^/  | /' || tail -n 5 "$j"
	fi
	note "$(jq -r '"received \(.end.sum_received.bits_per_second / 1e6 | floor) Mbit/s" +
		(if .end.sum.lost_percent then ", loss \(.end.sum.lost_percent * 100 | floor / 100) %" else "" end)' "$j" 2>/dev/null || true)"
}
if want AC08; then
	hdr "AC08: data plane"
	check "AC08: ICMPv4 agent1 -> peer1" NSPING agent1 "$P1" 5
	check "AC08: ICMPv4 peer1 -> agent1" NSPING peer1 "$A" 5
	check "AC08: ICMPv6 agent1 -> peer1" NSPING agent1 "$P16" 3
	check "AC08: ICMPv6 peer1 -> agent1" NSPING peer1 "$A6" 3
	if ! { http_start peer1 && http_start agent1; }; then fail "AC08: web servers start"; fi
	check "AC08: TCP (HTTP) agent1 -> peer1 over IPv4" until_ok 10 CURL agent1 "http://$P1:8000/"
	check "AC08: TCP (HTTP) agent1 -> peer1 over IPv6" until_ok 10 CURL agent1 "http://[$P16]:8000/"
	check "AC08: TCP (HTTP) peer1 -> agent1 over IPv4" until_ok 10 CURL peer1 "http://$A:8000/"
	check "AC08: TCP (HTTP) agent1 -> its own tailnet address" CURL agent1 "http://$A:8000/"
	http_stop peer1; http_stop agent1
	bg_start "${TN_NS[peer1]}" "$T_LOGDIR/$T_IFPREFIX-peer1-iperf3.log" iperf3 -s
	IPERF_PID=$BG_PID
	wait_until 10 bash -c "ip netns exec '${TN_NS[peer1]}' ss -Htln 'sport = :5201' | grep -q ." || true
	iperf "AC08: iperf3 TCP agent1 -> peer1 > 50 Mbit/s" '.end.sum_received.bits_per_second > 5e7'
	iperf "AC08: iperf3 TCP peer1 -> agent1 (-R) > 50 Mbit/s" '.end.sum_received.bits_per_second > 5e7' -R
	iperf "AC08: iperf3 UDP agent1 -> peer1 (-b 100M): > 50 Mbit/s received, loss < 5 %" \
		'.end.sum_received.bits_per_second > 5e7 and .end.sum.lost_percent < 5' -u -b 100M
	stop_pid "$IPERF_PID" || true
	check "AC08: MTU: ping -M do -s 1252 goes through" NSPING agent1 "$P1" 2 -M "do" -s 1252
	check_not "AC08: MTU: ping -M do -s 1253 does not" \
		timeout 10 ip netns exec "${TN_NS[agent1]}" ping -c 1 -W 2 -M "do" -s 1253 "$P1"
	alive_check AC08 agent1
fi

# --- NC: netcheck, and (meshd) the data-plane counters ------------------------

NCJ() { C "$1" netcheck --format=json | jq -e "$2"; }
# METRIC NODE NAME: the value of meshd_NAME in NODE's metrics.
METRIC() { C "$1" metrics | awk -v m="meshd_$2" '$1 == m { print $2 }'; }
# MGT NODE NAME N: meshd_NAME is above N.
MGT() { local v; v=$(METRIC "$1" "$2"); echo "meshd_$2 = $v"; [[ -n $v ]] && ((v > $3)); }
# agent1's home region is 999 and its connection is up.
home_up() {
	local h u; h=$(METRIC agent1 derp_home_region) u=$(METRIC agent1 derp_regions_up)
	echo "home $h, up $u"; [[ $h == 999 && $u == 1 ]]
}
if want NC; then
	hdr "NC: netcheck"
	check "NC: netcheck --format=json: UDP, GlobalV4, PreferredDERP 999, latency to 999" \
		NCJ agent1 '.UDP and (.GlobalV4 | startswith("10.0.1.2:")) and .PreferredDERP == 999 and .RegionLatency["999"] > 0'
	check "NC: netcheck text names the nearest DERP" \
		OUTZ 'Nearest DERP: Headscale Embedded DERP' C agent1 netcheck
	if [[ $AGENT == meshd ]]; then
		check "NC: metrics: home region 999, its connection up" home_up
		check "NC: metrics: disco messages both ways, sessions established" \
			eval 'MGT agent1 disco_rx_total 0 && MGT agent1 disco_tx_total 0 &&
				MGT agent1 wg_handshakes_completed_total 0'
	fi
fi

# --- AC06: a peer restarts with a new disco key ----------------------------

DISCO() { NSTORE | jq -r --arg h "$1" '.[] | select(.Hostname == $h) | .DiscoKey'; }
if want AC06; then
	hdr "AC06: peer restart"
	d0=$(DISCO peer1) || true
	tn_kill9 peer1
	check "AC06: agent1 sees the killed peer1 go offline" until_ok 90 PJ agent1 peer1 '.Online == false'
	start_peer peer1
	check "AC06: peer1 back online for agent1" until_ok 60 PJ agent1 peer1 .Online
	new_disco() { local d; d=$(DISCO peer1); echo "before: $d0, now: $d"; [[ -n $d && $d != "$d0" ]]; }
	check "AC06: peer1 has a new disco key" until_ok 30 new_disco
	check "AC06: OS ping agent1 -> peer1 works again" until_ok 30 NSPING agent1 "$P1"
	check "AC06: OS ping peer1 -> agent1 works again" until_ok 30 NSPING peer1 "$A"
	alive_check AC06 agent1
fi

# --- AC10: both ends behind easy NAT ----------------------------------------

if want AC10; then
	hdr "AC10: both behind NAT"
	start_agent agent2; check "AC10: agent2 (behind natA) up" tn_up agent2 "$(KEY user1)"
	start_peer peer3; check "AC10: peer3 (behind natB) up" tn_up peer3 "$(KEY user2)"
	A2=$(IP4 agent2) || true; P3=$(IP4 peer3) || true
	check "AC10: peer3 pings agent2 direct via natA 10.0.21.2" until_ok 90 \
		OUTZ "pong from agent2 .* via 10\.0\.21\.2:[0-9]+" C peer3 ping --c=5 --timeout=2s --until-direct=true "$A2"
	check "AC10: agent2 pings peer3 direct via natB 10.0.22.2" until_ok 90 \
		OUTZ "pong from peer3 .* via 10\.0\.22\.2:[0-9]+" C agent2 ping --c=5 --timeout=2s --until-direct=true "$P3"
	check "AC10: nodestore: agent2 has its NATed and its LAN endpoint" until_ok 30 NSJ agent2 \
		'(.Endpoints | map(startswith("10.0.21.2:")) | any) and (.Endpoints | map(startswith("192.168.21.2:")) | any)'
	check "AC10: OS ping agent2 -> peer3" NSPING agent2 "$P3" 5
	check "AC10: OS ping peer3 -> agent2" NSPING peer3 "$A2" 5
	alive_check AC10 agent2
	tn_stop peer3
fi

# --- MM: agent1 and agent2 (meshd to meshd; agent2 behind NAT) ----------------

if want MM; then
	hdr "MM: $AGENT to $AGENT"
	if ! tn_alive agent2; then
		start_agent agent2; check "MM: agent2 (behind natA) up" tn_up agent2 "$(KEY user1)"
	fi
	A2=$(IP4 agent2) || true; A26=$(IP6 agent2) || true
	check "MM: agent1 pings agent2 direct via natA 10.0.21.2" until_ok 90 \
		OUTZ "pong from agent2 .* via 10\.0\.21\.2:[0-9]+" C agent1 ping --c=5 --timeout=2s --until-direct=true "$A2"
	check "MM: agent2 pings agent1 direct via 10.0.1.2" until_ok 60 \
		OUTZ "pong from agent1 .* via 10\.0\.1\.2:[0-9]+" C agent2 ping --c=5 --timeout=2s --until-direct=true "$A"
	check "MM: OS ping agent2 -> agent1 (IPv4)" NSPING agent2 "$A" 5
	check "MM: OS ping agent1 -> agent2 (IPv6)" NSPING agent1 "$A26" 3
	bg_start "${TN_NS[agent1]}" "$T_LOGDIR/$T_IFPREFIX-agent1-iperf3.log" iperf3 -s
	IPERF_PID=$BG_PID
	wait_until 10 bash -c "ip netns exec '${TN_NS[agent1]}' ss -Htln 'sport = :5201' | grep -q ." || true
	j=$T_TMP/iperf-mm.json
	check "MM: iperf3 TCP agent2 -> agent1 > 50 Mbit/s" eval \
		"timeout 40 ip netns exec '${TN_NS[agent2]}' iperf3 -c '$A' -t 3 -J >'$j' && jq -e '.end.sum_received.bits_per_second > 5e7' '$j'"
	note "$(jq -r '"received \(.end.sum_received.bits_per_second / 1e6 | floor) Mbit/s"' "$j" 2>/dev/null || true)"
	stop_pid "$IPERF_PID" || true
	alive_check MM agent1 agent2
	tn_stop agent2
fi

# --- AC18: the soak's result --------------------------------------------------

if [[ -n $SOAK_PID ]]; then
	hdr "AC18: waiting for the soak to end"
	rc=0; wait "$SOAK_PID" || rc=$?
	if ((rc == 0)); then
		pass "AC18: agent1 online for ${SOAK_S}s (headscale and peer2, every 10 s)"
	else
		fail "AC18: agent1 online for ${SOAK_S}s (headscale and peer2, every 10 s)"
	fi
	sed 's/^/  | /' "$T_TMP/soak.out" | tail -n 15
	alive_check AC18 agent1
fi

# --- AC17: a restart without `up` ---------------------------------------------

if want AC17; then
	hdr "AC17: daemon restart"
	b=$(HSREC agent1) n=$(NCOUNT)
	tn_stop agent1; start_agent agent1
	check "AC17: agent1 is Running again without up" until_ok 30 SJ agent1 '.BackendState == "Running"'
	check "AC17: same node record in headscale" EQ "$b" HSREC agent1
	check "AC17: no new node" EQ "$n" NCOUNT
	check "AC17: peer1 pings agent1 (disco)" until_ok 30 \
		OUTZ "pong from agent1" C peer1 ping --c=3 --timeout=2s --until-direct=false "$A"
	check "AC17: OS ping peer1 -> agent1" until_ok 30 NSPING peer1 "$A"
	alive_check AC17 agent1
fi

# --- RT: routes and rules while running, gone after exit and after --cleanup -----

# RULES NODE: the policy rules in 5200-5299, one "prio action" per line (v4 then v6).
RULES() { for f in -4 -6; do tn_in "$1" ip "$f" rule show; done | awk -F: '$1 >= 5200 && $1 <= 5299'; }
rules_ok() {
	local r; r=$(RULES "$1"); printf '%s\n' "$r"
	[[ $(grep -c 'fwmark 0x80000/0xff0000 lookup main' <<<"$r") -ge 1 &&
		$(grep -c 'fwmark 0x80000/0xff0000 lookup default' <<<"$r") -ge 1 &&
		$(grep -c 'fwmark 0x80000/0xff0000 unreachable' <<<"$r") -ge 1 &&
		$(grep -Ec '^5270:.*lookup 52' <<<"$r") -ge 1 ]]
}
no_rules() { local r; r=$(RULES "$1"); printf '%s\n' "$r"; [[ -z $r ]]; }
TABLE52() { tn_in "$1" ip -4 route show table 52; tn_in "$1" ip -6 route show table 52; }
if want RT; then
	hdr "RT: routes and rules"
	check "RT: agent1 has the rules 5210-5270 on fwmark 0x80000" rules_ok agent1
	routes_ok() {
		local t; t=$(TABLE52 agent1); printf '%s\n' "$t"
		grep -q "^$P1 dev tailscale0" <<<"$t" && grep -q "^$P2 dev tailscale0" <<<"$t" &&
			grep -q "^100.100.100.100 dev tailscale0" <<<"$t"
	}
	check "RT: table 52 routes peer1, peer2 and 100.100.100.100 into the TUN" routes_ok
	tn_stop agent1
	check "RT: a clean exit removes the rules" no_rules agent1
	check "RT: ... and table 52" eval '[[ -z $(TABLE52 agent1) ]]'
	start_agent agent1
	check "RT: agent1 Running again" until_ok 30 SJ agent1 '.BackendState == "Running"'
	check "RT: rules back" until_ok 30 rules_ok agent1
	tn_kill9 agent1
	if [[ $AGENT == meshd ]]; then
		check "RT: meshd --cleanup removes what a killed daemon left" \
			eval 'tn_in agent1 "$MESHD" --cleanup && no_rules agent1 && [[ -z $(TABLE52 agent1) ]]'
	else
		# tailscaled v1.102.3 --cleanup gives up on the rules once its TUN is gone.
		skip "RT: the cleanup command removes what a killed daemon left" \
			"tailscaled --cleanup leaves the rules when tailscale0 no longer exists"
	fi
	start_agent agent1
	check "RT: agent1 Running after the kill" until_ok 30 SJ agent1 '.BackendState == "Running"'
	check "RT: OS ping peer1 -> agent1" until_ok 30 NSPING peer1 "$A"
	alive_check RT agent1
fi

# --- AC04: logout and relogin ----------------------------------------------------

if want AC04; then
	hdr "AC04: logout and relogin"
	id=$(NID agent1) n=$(NCOUNT)
	check "AC04: logout" C agent1 logout
	check "AC04: NeedsLogin after logout" until_ok 15 SJ agent1 '.BackendState == "NeedsLogin"'
	check "AC04: relogin with a new key of the same user" tn_up agent1 "$(KEY user1)"
	check "AC04: same node" EQ "$id" NID agent1
	check "AC04: same address" EQ "$A" IP4 agent1
	check "AC04: no new node" EQ "$n" NCOUNT
	check "AC04: peer1 pings agent1 (disco)" until_ok 30 \
		OUTZ "pong from agent1" C peer1 ping --c=3 --timeout=2s --until-direct=false "$A"
	check "AC04: OS ping peer1 -> agent1" until_ok 30 NSPING peer1 "$A"
	# Another user on the same machine: a new node; user1's stays.
	check "AC04: logout again" C agent1 logout
	check "AC04: relogin as user2 with --force-reauth" tn_up agent1 "$(KEY user2)" --force-reauth
	check "AC04: the node belongs to user2 now" \
		SJ agent1 '.User[(.Self.UserID | tostring)].LoginName == "user2@test.no"'
	check "AC04: one node more in headscale" EQ $((n + 1)) NCOUNT
	A_U2=$(IP4 agent1) || true
	check "AC04: peer1 pings user2's agent1 (OS)" until_ok 30 NSPING peer1 "$A_U2"
	# Back to user1: the machine's user1 node again, same ID and address.
	check "AC04: logout, relogin as user1" eval 'C agent1 logout && tn_up agent1 "$(KEY user1)" --force-reauth'
	check "AC04: user1's node again" EQ "$id" NID agent1
	check "AC04: its address again" EQ "$A" IP4 agent1
	check "AC04: OS ping peer1 -> agent1 once more" until_ok 30 NSPING peer1 "$A"
	alive_check AC04 agent1
fi

# --- DR: the DERP (and control) server restarts ------------------------------

if want DR; then
	hdr "DR: DERP server restart"
	check "DR: agent1 -> peer1 is direct" until_ok 30 \
		OUTZ "via 10\.0\.2\.2:[0-9]+" C agent1 ping --c=5 --timeout=2s --until-direct=true "$P1"
	[[ $AGENT == meshd ]] && c0=$(METRIC agent1 derp_connects_total)
	stop_pid "$HS_PID" || true
	sleep 8
	# tailscaled v1.102.3 does not pass this one here: with the STUN server
	# gone too, its netcheck reports UDP blocked and its direct path stalls
	# until control is back.  meshd keeps a path that its pongs still prove.
	if [[ $AGENT == meshd ]]; then
		check "DR: with DERP and control down, OS ping agent1 <-> peer1 carries on" \
			eval 'NSPING agent1 "$P1" 10 && NSPING peer1 "$A" 5'
	else
		skip "DR: with DERP and control down, OS ping agent1 <-> peer1 carries on" \
			"tailscaled stalls its direct path while STUN, DERP and control are all down"
	fi
	check "DR: headscale and its DERP come back" hs_serve "$TN_HUB"
	check "DR: agent1 sees peer1 online again" until_ok 60 PJ agent1 peer1 .Online
	check "DR: agent1 -> peer1 still direct" \
		OUTZ "via 10\.0\.2\.2:[0-9]+" C agent1 ping --c=3 --timeout=2s --until-direct=true "$P1"
	if [[ $AGENT == meshd ]]; then
		check "DR: agent1 reconnected to its home DERP" until_ok 30 eval 'home_up && MGT agent1 derp_connects_total "${c0:-0}"'
	fi
	alive_check DR agent1
fi

# --- AC09: UDP blocked between nodes: DERP only ---------------------------------

if want AC09; then
	hdr "AC09: UDP blocked in the hub"
	# STUN and DERP end in the hub itself (input, and DERP is TCP): unaffected.
	check "AC09: the hub drops forwarded UDP" in_ns "$TN_HUB" nft -f - <<-'NFT'
	table inet mesh_block {
		chain forward { type filter hook forward priority filter; policy accept; meta l4proto udp drop; }
	}
	NFT
	tn_stop agent1; tn_stop peer1
	start_agent agent1; start_peer peer1
	check "AC09: agent1 Running again" until_ok 30 SJ agent1 '.BackendState == "Running"'
	check "AC09: peer1 Running again" until_ok 30 SJ peer1 '.BackendState == "Running"'
	check "AC09: peer1 pings agent1 via DERP(headscale)" until_ok 60 \
		OUTZ 'via DERP\(headscale\)' C peer1 ping --c=3 --timeout=2s --until-direct=false "$A"
	check "AC09: agent1 pings peer1 via DERP(headscale)" until_ok 60 \
		OUTZ 'via DERP\(headscale\)' C agent1 ping --c=3 --timeout=2s --until-direct=false peer1
	check "AC09: OS ping agent1 -> peer1: 9 or 10 of 10 replies" \
		OUT ' (9|10) received' timeout 40 ip netns exec "${TN_NS[agent1]}" ping -c 10 -i 0.5 -W 2 "$P1"
	check "AC09: peer1 has no direct address for agent1 (CurAddr empty)" PJ peer1 agent1 '.CurAddr == ""'
	http_start peer1 || true
	check "AC09: TCP (HTTP) agent1 -> peer1 over DERP" until_ok 10 CURL agent1 "http://$P1:8000/"
	http_stop peer1
	in_ns "$TN_HUB" nft delete table inet mesh_block || fail "AC09: unblock UDP"
	alive_check AC09 agent1
fi

# --- AC16: expired keys ---------------------------------------------------------

if want AC16; then
	hdr "AC16: key expiry"
	check "AC16: expire peer2" HS nodes expire -i "$(NID peer2)"
	check "AC16: agent1 sees peer2 expired" until_ok 60 PJ agent1 peer2 '.Expired == true'
	check "AC16: agent1 ping to expired peer2: node key has expired" until_ok 30 \
		OUT 'node key has expired' C agent1 ping --c=1 --timeout=2s "$P2"
	check "AC16: expire agent1" HS nodes expire -i "$(NID agent1)"
	check "AC16: agent1 goes to NeedsLogin" until_ok 60 SJ agent1 '.BackendState == "NeedsLogin"'
	check "AC16: peer1 ping to expired agent1: node key has expired" until_ok 60 \
		OUT 'node key has expired' C peer1 ping --c=1 --timeout=2s "$A"
	check "AC16: agent1 re-authenticates" tn_up agent1 "$(KEY user1)" --force-reauth
	check "AC16: OS ping agent1 -> peer1 after re-auth" until_ok 30 NSPING agent1 "$P1"
	alive_check AC16 agent1
fi

# --- the end --------------------------------------------------------------------

hdr "done"
SAN=0
for n in agent1 agent2; do
	[[ -n ${TN_LOG[$n]:-} ]] || continue
	if grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error:|SIGSEGV|panic:' "${TN_LOG[$n]}"; then
		SAN=1; echo "  crash report in ${TN_LOG[$n]}:"; grep -E -m 3 -A 10 'AddressSanitizer|LeakSanitizer|runtime error:|SIGSEGV|panic:' "${TN_LOG[$n]}" | sed 's/^/  | /'
	fi
done
if ((SAN)); then fail "agent logs free of crash reports"; else pass "agent logs free of crash reports"; fi
cp "$TN_DIR/headscale.log" "$T_LOGDIR/$T_IFPREFIX-headscale.log" 2>/dev/null || true
note "$((SECONDS - T0)) s"
lib_finish

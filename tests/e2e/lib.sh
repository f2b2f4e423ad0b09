# SPDX-License-Identifier: MIT
# Copyright (C) 2026 The meshd Authors.
#
# tests/e2e/lib.sh: helpers shared by the end-to-end scripts, the benchmark
# and the demo. Source it after `set -euo pipefail`.
#
# What it gives:
#   pass/fail/skip/check    report cases as "PASS: name" / "FAIL: name" /
#                           "SKIP: name (why)" lines; tests/run.sh counts them
#   wait_until SECS CMD...  poll until CMD succeeds, or give up
#   ns_new VAR NAME         create a namespace "mdt-<pid>-NAME", store its name
#   wg_start KIND IF NS     start a WireGuard implementation in the foreground
#                           (as a background job of this shell) in NS
#   pair_up TAG KA KB       the wireguard-go tests/netns.sh topology (perf.md
#                           §2.2) with implementation KA on side A, KB on side B
#   lib_finish              stop everything, check the meshd logs for sanitizer
#                           reports, print a summary and exit 0/1
#
# Implementation kinds:
#   meshd           $MESHD wg -f IF (default build/asan/meshd)
#   wg-go-debian    /usr/bin/wireguard-go -f IF (0.0.20220316)
#   wg-go-upstream  $MESHD_CACHE/bin/wireguard -f IF (from scripts/deps.sh)
# MESHD_AS=wg-go-upstream (or wg-go-debian) makes every "meshd" in a script run
# that implementation instead, to check the scripts themselves while meshd is
# not ready. meshd-only checks (`meshd wg --stats`) are then skipped.
#
# Everything a script starts is recorded (namespaces, PIDs, interface names),
# and an EXIT trap stops and removes exactly those, whatever happens.

# shellcheck shell=bash

LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$LIB_DIR/../.." && pwd)
MESHD_CACHE=${MESHD_CACHE:-$HOME/.cache/meshd}
MESHD=${MESHD:-$REPO/build/asan/meshd}
MESHD_AS=${MESHD_AS:-}
WG_GO_DEBIAN=${WG_GO_DEBIAN:-/usr/bin/wireguard-go}
WG_GO_UPSTREAM=${WG_GO_UPSTREAM:-$MESHD_CACHE/bin/wireguard}
# The sanitizer settings tests/run.sh uses, for scripts run by hand.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# Tunnel addresses. wireguard-go's netns.sh uses 192.168.241.0/24; perf.md
# §2.2 and this workplace's rules ask test traffic to stay off private and
# public ranges even inside namespaces, so the IPv4 default is link-local.
# Nothing here has a route out of its namespaces either way.
WG_NET4=${WG_NET4:-169.254.241}
WG_NET6=${WG_NET6:-fd00::}

T_NAME=${T_NAME:-$(basename "$0" .sh)}
# Daemon logs are named after the run's unique interface names, so two runs
# can share the directory; tests/run.sh, which owns its directory, sets
# T_LOGDIR_FRESH=1 to have it emptied first.
T_LOGDIR=${T_LOGDIR:-$REPO/build/test-logs/$T_NAME}
T_PREFIX="mdt-$$"           # namespace names: mdt-<pid>-<name>
T_IFPREFIX="mdt$$"          # interface names (<= 15 chars): mdt<pid>x<n><a|b>
T_PASS=0 T_FAIL=0 T_SKIP=0
T_NS=() T_PIDS=() T_IFS=() T_MESHD_LOGS=()
T_NIF=0
declare -A T_PID_OF=()

[[ ${T_LOGDIR_FRESH:-} != 1 ]] || rm -rf "${T_LOGDIR:?}"
mkdir -p "$T_LOGDIR"
# Logs of earlier runs that have ended go; a concurrent run's stay.
for _f in "$T_LOGDIR"/mdt[0-9]*; do
	[[ -e $_f ]] || continue
	_p=${_f##*/mdt} _p=${_p%%[!0-9]*}
	kill -0 "$_p" 2>/dev/null || rm -f "$_f"
done
unset _f _p
T_TMP=$(mktemp -d "/tmp/$T_PREFIX.XXXXXX")

# --- reporting -------------------------------------------------------------

pass() { T_PASS=$((T_PASS + 1)); printf 'PASS: %s\n' "$1"; }
fail() {
	T_FAIL=$((T_FAIL + 1))
	printf 'FAIL: %s%s\n' "$1" "${2:+ ($2)}"
}
# Skipped cases are reported but never counted as passes.
skip() { T_SKIP=$((T_SKIP + 1)); printf 'SKIP: %s%s\n' "$1" "${2:+ ($2)}"; }
note() { printf '  %s\n' "$*"; }

# check NAME CMD...: one case; on failure show the command and its output.
check() {
	local name=$1 out=$T_TMP/check.out; shift
	if "$@" >"$out" 2>&1; then
		pass "$name"
	else
		fail "$name"
		note "command: $*"
		tail -n 15 "$out" | sed 's/^/  | /'
	fi
}

# check_not NAME CMD...: passes when CMD fails.
check_not() {
	local name=$1 out=$T_TMP/check.out; shift
	if "$@" >"$out" 2>&1; then
		fail "$name"
		note "command unexpectedly succeeded: $*"
		tail -n 15 "$out" | sed 's/^/  | /'
	else
		pass "$name"
	fi
}

# wait_until SECS CMD...: every 0.2 s until CMD succeeds; 1 on timeout.
wait_until() {
	local deadline=$((SECONDS + $1)); shift
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || return 1
		sleep 0.2
	done
}

# --- namespaces and processes ----------------------------------------------

# ns_new VAR NAME: create namespace $T_PREFIX-NAME with lo up; VAR gets the name.
ns_new() {
	local ns="$T_PREFIX-$2"
	ip netns add "$ns" || return 1
	T_NS+=("$ns")
	ip -n "$ns" link set lo up
	printf -v "$1" '%s' "$ns"
}

# ns_del NS...: delete namespaces we created (the rest of the run keeps going).
ns_del() {
	local ns i
	for ns in "$@"; do
		[[ -n $ns ]] || continue
		ip netns del "$ns" 2>/dev/null
		for i in "${!T_NS[@]}"; do [[ ${T_NS[i]} == "$ns" ]] && unset 'T_NS[i]'; done
	done
	T_NS=("${T_NS[@]}")
	return 0
}

# in_ns NS CMD...: run CMD in NS (ip netns exec execs, so CMD keeps the PID).
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# bg_start NS LOG CMD...: CMD as a background job in NS; BG_PID gets its PID.
bg_start() {
	local ns=$1 log=$2; shift 2
	ip netns exec "$ns" "$@" >>"$log" 2>&1 </dev/null &
	BG_PID=$!
	T_PIDS+=("$BG_PID")
}

# our_child PID: PID is a live (not zombie) child of this shell. Checked
# before every signal: bash reaps exited background jobs on its own, and the
# kernel may then give their PID to someone else's process.
our_child() {
	local st
	st=$(awk '{ sub(/^.*\) /, ""); print $1, $2 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ $st == *" $$" && $st != Z* ]]
}

# stop_pid PID: TERM, then KILL after 10 s (LeakSanitizer's exit-time scan
# needs a moment); reaps it. Returns 1 if it took the KILL.
stop_pid() {
	local pid=$1 i
	for ((i = 0; i < 100; i++)); do
		our_child "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
		((i)) || kill -TERM "$pid" 2>/dev/null || true
		sleep 0.1
	done
	our_child "$pid" && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null || true
	return 1
}

# if_new VAR: a fresh interface name unique to this run (the UAPI socket
# /var/run/wireguard/IF.sock is a filesystem path shared by all namespaces).
if_new() {
	T_NIF=$((T_NIF + 1))
	printf -v "$1" '%sx%d%s' "$T_IFPREFIX" "$T_NIF" "${2:-}"
}

# --- WireGuard implementations ---------------------------------------------

# The implementation a kind really runs ("meshd" may stand for wg-go).
real_kind() {
	if [[ $1 == meshd && -n $MESHD_AS ]]; then printf '%s\n' "$MESHD_AS"; else printf '%s\n' "$1"; fi
}

# A label for reports: "meshd", or "meshd(=wg-go-upstream)" when substituted.
kind_label() {
	local r; r=$(real_kind "$1")
	if [[ $r == "$1" ]]; then printf '%s\n' "$1"; else printf '%s(=%s)\n' "$1" "$r"; fi
}

kind_bin() {
	case $(real_kind "$1") in
	meshd) printf '%s\n' "$MESHD" ;;
	wg-go-debian) printf '%s\n' "$WG_GO_DEBIAN" ;;
	wg-go-upstream) printf '%s\n' "$WG_GO_UPSTREAM" ;;
	*) return 1 ;;
	esac
}

# True if the implementation behind KIND has `meshd wg --stats`.
has_stats() { [[ $(real_kind "$1") == meshd ]]; }

# kind_ok KIND: says why KIND can't run here, if it can't.
kind_ok() {
	local bin
	bin=$(kind_bin "$1") || { echo "unknown implementation kind '$1'"; return 1; }
	local hint
	case $(real_kind "$1") in
	meshd) hint="build it: make asan (build/asan/meshd) or make (./meshd), or set MESHD" ;;
	wg-go-upstream) hint="make deps installs it" ;;
	*) hint="apt-get install wireguard-go (make deps)" ;;
	esac
	[[ -x $bin ]] || { echo "$bin not found; $hint"; return 1; }
}

# wg_start KIND IF NS: start KIND in the foreground (-f) as a background job
# of this shell, in namespace NS, creating TUN IF and the UAPI socket
# /var/run/wireguard/IF.sock; its stdout and stderr go to $T_LOGDIR/IF.log.
# Waits up to 10 s for both to appear.
wg_start() {
	local kind=$1 ifn=$2 ns=$3 bin log=$T_LOGDIR/$2.log real
	bin=$(kind_bin "$kind") || return 1
	real=$(real_kind "$kind")
	T_IFS+=("$ifn")
	local cmd=()
	case $real in
	meshd)
		T_MESHD_LOGS+=("$log")
		cmd=("$bin" wg -f "$ifn") ;;
	*)
		# LOG_LEVEL=verbose: handshakes and roaming show up in the log.
		cmd=(env LOG_LEVEL=verbose "$bin" -f "$ifn") ;;
	esac
	printf '# %s %s in %s: %s\n' "$(date +%T)" "$(kind_label "$kind")" "$ns" "${cmd[*]}" >"$log"
	bg_start "$ns" "$log" "${cmd[@]}"
	T_PID_OF[$ifn]=$BG_PID
	if ! wait_until 10 wg_ready "$ifn" "$ns"; then
		if wg_alive "$ifn"; then
			echo "$(kind_label "$kind") did not create $ifn and its UAPI socket within 10 s" >&2
		else
			echo "$(kind_label "$kind") exited before creating $ifn and its UAPI socket" >&2
		fi
		tail -n 20 "$log" >&2
		return 1
	fi
}

wg_ready() {
	[[ -S /var/run/wireguard/$1.sock ]] && ip -n "$2" link show "$1" >/dev/null 2>&1
}

wg_alive() { [[ -n ${T_PID_OF[$1]:-} ]] && our_child "${T_PID_OF[$1]}"; }

# wg_stop IF: stop the daemon of IF. One that ignores SIGTERM gets a marker
# in its log, which lib_check_sanitizers turns into a failure for meshd (a
# SIGKILL would also hide LeakSanitizer's report).
wg_stop() {
	[[ -n ${1:-} ]] || return 0
	local pid=${T_PID_OF[$1]:-}
	[[ -n $pid ]] || return 0
	stop_pid "$pid" || echo "[lib] $1: no exit within 10 s of SIGTERM; killed" >>"$T_LOGDIR/$1.log"
	return 0
}

# wg_cmd NS ARGS...: `wg ARGS` as run in the daemons' namespace.
wg_cmd() { local ns=$1; shift; timeout 10 ip netns exec "$ns" wg "$@"; }

# stats IF: `meshd wg --stats IF` (name=value lines); only for real meshd.
stats() { timeout 10 ip netns exec "$NS0" "$MESHD" wg --stats "$1"; }

# stat_get IF NAME: one counter (0 if the daemon doesn't report it).
stat_get() {
	local v
	v=$(stats "$1" | sed -n "s/^$2=\([0-9][0-9]*\)\$/\1/p" | head -n1) || return 1
	printf '%s\n' "${v:-0}"
}

# --- the netns.sh topology (perf.md §2.2) ----------------------------------
#
#   ns1: IFA  WG_NET4.1  ──┐   ns0: both daemons, UDP on lo   ┌── ns2: IFB  WG_NET4.2
#                          └── 127.0.0.1:PORTA <-> :PORTB ─────┘
#
# pair_up TAG KIND_A KIND_B [MTU]: builds it and sets NS0 NS1 NS2 IFA IFB
# KEYA KEYB (key files) PUBA PUBB PORTA PORTB IP4A IP4B IP6A IP6B. Keys are set
# but peers are not: call pair_config. Returns non-zero (with a reason on
# stderr) if anything fails.
pair_up() {
	local tag=$1 ka=$2 kb=$3 mtu=${4:-} why k
	NS0='' NS1='' NS2='' IFA='' IFB=''
	for k in "$ka" "$kb"; do
		why=$(kind_ok "$k") || { echo "$why" >&2; return 1; }
	done
	ns_new NS0 "$tag-ns0" && ns_new NS1 "$tag-ns1" && ns_new NS2 "$tag-ns2" || return 1
	if_new IFA a; if_new IFB b
	PORTA=10000 PORTB=20000
	IP4A=$WG_NET4.1 IP4B=$WG_NET4.2 IP6A=${WG_NET6}1 IP6B=${WG_NET6}2
	wg_start "$ka" "$IFA" "$NS0" || return 1
	wg_start "$kb" "$IFB" "$NS0" || return 1
	if [[ -n $mtu ]]; then
		# Set while the daemons still see the TUN (they follow MTU changes
		# through netlink in ns0), then give them a moment to notice.
		ip -n "$NS0" link set "$IFA" mtu "$mtu" || return 1
		ip -n "$NS0" link set "$IFB" mtu "$mtu" || return 1
		sleep 0.3
	fi
	# The daemons keep their TUN fd and UDP socket; only the interface moves.
	ip -n "$NS0" link set "$IFA" netns "$NS1" || return 1
	ip -n "$NS0" link set "$IFB" netns "$NS2" || return 1
	# nodad: the addresses are usable at once, no 1-2 s "tentative" state.
	ip -n "$NS1" addr add "$IP4A/24" dev "$IFA" &&
		ip -n "$NS1" addr add "$IP6A/112" dev "$IFA" nodad &&
		ip -n "$NS1" link set "$IFA" up || return 1
	ip -n "$NS2" addr add "$IP4B/24" dev "$IFB" &&
		ip -n "$NS2" addr add "$IP6B/112" dev "$IFB" nodad &&
		ip -n "$NS2" link set "$IFB" up || return 1
	KEYA=$T_TMP/$IFA.key KEYB=$T_TMP/$IFB.key
	(umask 077 && wg genkey >"$KEYA" && wg genkey >"$KEYB") || return 1
	PUBA=$(wg pubkey <"$KEYA") && PUBB=$(wg pubkey <"$KEYB") || return 1
	wg_cmd "$NS0" set "$IFA" private-key "$KEYA" listen-port "$PORTA" || return 1
	wg_cmd "$NS0" set "$IFB" private-key "$KEYB" listen-port "$PORTB" || return 1
}

# pair_config WHO: (re)create the peers from scratch, so no session survives.
# WHO says which side knows the other's endpoint: a (A initiates), b, or both.
pair_config() {
	local epa=() epb=()
	case $1 in
	a) epa=(endpoint "127.0.0.1:$PORTB") ;;
	b) epb=(endpoint "127.0.0.1:$PORTA") ;;
	both) epa=(endpoint "127.0.0.1:$PORTB"); epb=(endpoint "127.0.0.1:$PORTA") ;;
	esac
	# An unknown peer makes `remove` a no-op, so this also works the first time.
	wg_cmd "$NS0" set "$IFA" peer "$PUBB" remove &&
		wg_cmd "$NS0" set "$IFB" peer "$PUBA" remove &&
		wg_cmd "$NS0" set "$IFA" peer "$PUBB" allowed-ips "$IP4B/32,$IP6B/128" "${epa[@]}" &&
		wg_cmd "$NS0" set "$IFB" peer "$PUBA" allowed-ips "$IP4A/32,$IP6A/128" "${epb[@]}"
}

# pair_down: stop the current pair's daemons and delete its namespaces.
pair_down() {
	wg_stop "${IFA:-}"; wg_stop "${IFB:-}"
	ns_del "${NS0:-}" "${NS1:-}" "${NS2:-}"
}

# ping_ok NS ADDR: 3 echo requests, 2 s wait each; succeeds if any reply.
ping_ok() { timeout 20 ip netns exec "$1" ping -q -c 3 -i 0.5 -W 2 "$2"; }

# --- the end -----------------------------------------------------------------

# Stops every process we started, newest first; daemons through wg_stop.
lib_stop_all() {
	local i f
	for f in "${T_IFS[@]}"; do wg_stop "$f"; done
	for ((i = ${#T_PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${T_PIDS[i]}" || true; done
	T_PIDS=()
}

# Sanitizer reports in the logs of the real meshd daemons: one FAIL per log.
lib_check_sanitizers() {
	local log bad=0
	((${#T_MESHD_LOGS[@]})) || return 0
	for log in "${T_MESHD_LOGS[@]}"; do
		if grep -qE 'ERROR: AddressSanitizer|runtime error:|LeakSanitizer' "$log"; then
			fail "$T_NAME: sanitizer report in ${log#"$REPO"/}"
			grep -m 5 -E -A 12 'ERROR: AddressSanitizer|runtime error:|LeakSanitizer' "$log" | sed 's/^/  | /'
			bad=1
		fi
		if grep -q '^\[lib\] .*no exit within' "$log"; then
			fail "$T_NAME: meshd exits on SIGTERM (${log#"$REPO"/})"
			bad=1
		fi
	done
	((bad)) || pass "$T_NAME: meshd logs free of sanitizer reports, clean exits"
}

lib_cleanup() {
	local rc=$? f i
	set +e
	lib_stop_all
	for ((i = ${#T_NS[@]} - 1; i >= 0; i--)); do ip netns del "${T_NS[i]}" 2>/dev/null; done
	T_NS=()
	# A daemon killed with SIGKILL leaves its socket behind; remove ours only.
	for f in "${T_IFS[@]}"; do rm -f "/var/run/wireguard/$f.sock"; done
	rm -rf "$T_TMP"
	exit "$rc"
}
trap lib_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# lib_finish: the last call of an e2e script.
lib_finish() {
	lib_stop_all
	lib_check_sanitizers
	if ((T_FAIL)); then
		local log
		echo "--- daemon logs (tails) from $T_LOGDIR:"
		for log in "$T_LOGDIR/$T_IFPREFIX"*.log; do
			[[ -e $log ]] || continue
			echo "--- ${log##*/}"
			tail -n 15 "$log" | sed 's/^/  | /'
		done
	fi
	printf '%s: %d PASS, %d FAIL, %d SKIP\n' "$T_NAME" "$T_PASS" "$T_FAIL" "$T_SKIP"
	((T_FAIL == 0))
}

# --- headscale ---------------------------------------------------------------

# hs_start NS DIR: headscale v0.29.2 listening on 10.0.0.1:8080 on NS's
# loopback (testing/testbed.md §2.3), with its database, keys, socket and log
# in DIR; returns once /key answers.  HS then runs its CLI.
HS_URL=http://10.0.0.1:8080
hs_start() {
	local ns=$1 dir=$2
	HS_DIR=$dir
	in_ns "$ns" ip addr add 10.0.0.1/32 dev lo
	cat >"$dir/headscale.yaml" <<EOF
server_url: $HS_URL
listen_addr: 10.0.0.1:8080
metrics_listen_addr: 127.0.0.1:9090
grpc_listen_addr: 127.0.0.1:50443
unix_socket: $dir/headscale.sock
unix_socket_permission: "0770"
noise: {private_key_path: $dir/noise.key}
prefixes: {v4: 100.64.0.0/10, v6: fd7a:115c:a1e0::/48, allocation: sequential}
derp:
  server: {enabled: true, region_id: 999, region_code: headscale, region_name: "Headscale Embedded DERP",
           verify_clients: true, stun_listen_addr: "10.0.0.1:3478", private_key_path: $dir/derp.key,
           automatically_add_embedded_derp_region: true}
  urls: []
  paths: []
  auto_update_enabled: false
node: {expiry: 0, ephemeral: {inactivity_timeout: 66s}}
database: {type: sqlite, sqlite: {path: $dir/db.sqlite}}
policy: {mode: database}
dns: {magic_dns: true, base_domain: ts.test, override_local_dns: false, nameservers: {global: []}, search_domains: []}
EOF
	hs_serve "$ns"
}
# hs_serve NS: (re)starts the server of hs_start's DIR; HS_PID is its PID.
hs_serve() {
	bg_start "$1" "$HS_DIR/headscale.log" "$MESHD_CACHE/bin/headscale" -c "$HS_DIR/headscale.yaml" serve
	HS_PID=$BG_PID
	wait_until 30 in_ns "$1" curl -sf "$HS_URL/key?v=130"
}
HS() { "$MESHD_CACHE/bin/headscale" -c "$HS_DIR/headscale.yaml" "$@"; }

# --- tailnet testbed (testing/testbed.md §2.2) -------------------------------
#
# A hub namespace routes between per-node namespaces over veth pairs; headscale
# (hs_start) runs on the hub's 10.0.0.1:8080 with its embedded DERP and STUN on
# 10.0.0.1:3478. Every node has its own namespace, address 10.0.IDX.2/24 on
# eth0 (the hub side is h-NAME, 10.0.IDX.1/24) and a real TUN "tailscale0", so
# the OS itself can send traffic over the tailnet. A natted pair is a router
# namespace NAT (10.0.IDX.2 on its eth0) masquerading for INNER
# (192.168.IDX.2/24) behind it, with nftables (there is no iptables here).
# Like a home router, NAT drops unsolicited packets from its uplink before
# conntrack confirms them: otherwise a peer's early hole-punching packet,
# addressed to NAT itself, leaves a conntrack entry that makes the
# masquerade pick another port for our own packets to that peer later, which
# turns the "easy" NAT into an endpoint-dependent one.
#
#   tn_hub                    the hub namespace (TN_HUB); call hs_start "$TN_HUB" DIR next
#   tn_node NAME IDX          a node namespace behind the hub
#   tn_natted NAT IDX INNER [hard]   a NAT router and the node behind it
#   tn_start NAME KIND        start the daemon of node NAME: KIND meshd or tailscaled
#   tn_stop NAME / tn_kill9 NAME     stop it (TERM, then KILL after 10 s) / SIGKILL it
#   tn_cli NAME ARGS...       meshctl or tailscale for that node (with a time limit)
#   tn_up NAME KEY [FLAGS...] `up` against headscale as hostname NAME
#   tn_in NAME CMD...         CMD in node NAME's namespace
#
# Node state (state directory, socket) lives in TN_DIR (default $T_TMP/tn);
# daemon logs are $T_LOGDIR/${T_IFPREFIX}-NAME.log, so lib_finish shows their
# tails when a case failed. meshd runs with MESHD_DEBUG_USE_DERP_HTTP=1 and
# tailscaled with TS_DEBUG_USE_DERP_HTTP=1 TS_DISABLE_PORTMAPPER=1, both with
# --tun=tailscale0. MESHCTL defaults to the meshctl beside $MESHD.

MESHCTL=${MESHCTL:-$(dirname "$MESHD")/meshctl}
TN_BIN=$MESHD_CACHE/bin
TN_DIR=${TN_DIR:-$T_TMP/tn}
TN_CLI_TIMEOUT=${TN_CLI_TIMEOUT:-60}
TN_HUB=''
declare -A TN_NS=() TN_KIND=() TN_PID=() TN_LOG=()

# tn_veth NSA IFA ADDRA NSB IFB ADDRB: a veth pair with an address on each end.
tn_veth() {
	ip link add "$2" netns "$1" type veth peer name "$5" netns "$4" &&
		ip -n "$1" addr add "$3" dev "$2" && ip -n "$1" link set "$2" up &&
		ip -n "$4" addr add "$6" dev "$5" && ip -n "$4" link set "$5" up
}

tn_hub() {
	ns_new TN_HUB hub || return 1
	ip netns exec "$TN_HUB" sysctl -qw net.ipv4.ip_forward=1
	mkdir -p "$TN_DIR"
}

tn_node() {
	local name=$1 idx=$2 tn_ns
	ns_new tn_ns "$name" || return 1
	TN_NS[$name]=$tn_ns
	tn_veth "$TN_HUB" "h-$name" "10.0.$idx.1/24" "$tn_ns" eth0 "10.0.$idx.2/24" &&
		ip -n "$tn_ns" route add default via "10.0.$idx.1"
}

tn_natted() {
	local nat=$1 idx=$2 inner=$3 mode=${4:-easy} tn_ns random=''
	tn_node "$nat" "$idx" || return 1
	ns_new tn_ns "$inner" || return 1
	TN_NS[$inner]=$tn_ns
	tn_veth "${TN_NS[$nat]}" lan0 "192.168.$idx.1/24" "$tn_ns" eth0 "192.168.$idx.2/24" &&
		ip -n "$tn_ns" route add default via "192.168.$idx.1" || return 1
	ip netns exec "${TN_NS[$nat]}" sysctl -qw net.ipv4.ip_forward=1
	[[ $mode == hard ]] && random=' fully-random'
	ip netns exec "${TN_NS[$nat]}" nft -f - <<-NFT
	table ip tn_nat {
		chain postrouting {
			type nat hook postrouting priority srcnat; policy accept;
			oifname "eth0" masquerade$random
		}
		chain input {
			type filter hook input priority filter; policy accept;
			iifname "eth0" ct state new drop
		}
	}
	NFT
}

tn_in() { local n=$1; shift; ip netns exec "${TN_NS[$n]:?no node $n}" "$@"; }

tn_start() {
	local name=$1 kind=$2 dir=$TN_DIR/$1 log=$T_LOGDIR/$T_IFPREFIX-$1.log cmd=()
	mkdir -p "$dir"
	TN_KIND[$name]=$kind TN_LOG[$name]=$log
	case $kind in
	meshd)
		cmd=(env MESHD_DEBUG_USE_DERP_HTTP=1 "$MESHD" --statedir="$dir" --socket="$dir.sock"
			--tun=tailscale0 ${MESHD_VERBOSE:+--verbose="$MESHD_VERBOSE"})
		[[ " ${T_MESHD_LOGS[*]} " == *" $log "* ]] || T_MESHD_LOGS+=("$log") ;;
	tailscaled)
		cmd=(env TS_DEBUG_USE_DERP_HTTP=1 TS_DISABLE_PORTMAPPER=1 "$TN_BIN/tailscaled"
			--statedir="$dir" --socket="$dir.sock" --tun=tailscale0 --no-logs-no-support) ;;
	*) echo "tn_start: unknown kind '$kind'" >&2; return 1 ;;
	esac
	printf '# %s %s in %s: %s\n' "$(date +%T)" "$kind" "${TN_NS[$name]}" "${cmd[*]}" >>"$log"
	bg_start "${TN_NS[$name]}" "$log" "${cmd[@]}"
	TN_PID[$name]=$BG_PID
}

tn_stop() {
	local pid=${TN_PID[$1]:-}
	[[ -n $pid ]] || return 0
	stop_pid "$pid" || echo "[lib] $1: no exit within 10 s of SIGTERM; killed" >>"${TN_LOG[$1]}"
	TN_PID[$1]=''
}

tn_kill9() {
	local pid=${TN_PID[$1]:-}
	[[ -n $pid ]] || return 0
	our_child "$pid" && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null || true
	TN_PID[$1]=''
}

tn_alive() { [[ -n ${TN_PID[$1]:-} ]] && our_child "${TN_PID[$1]}"; }

tn_cli() {
	local n=$1 bin; shift
	[[ -n ${TN_NS[$n]:-} && -n ${TN_KIND[$n]:-} ]] || { echo "tn_cli: no node '$n'" >&2; return 1; }
	if [[ ${TN_KIND[$n]} == meshd ]]; then bin=$MESHCTL; else bin=$TN_BIN/tailscale; fi
	timeout "$TN_CLI_TIMEOUT" ip netns exec "${TN_NS[$n]}" "$bin" --socket="$TN_DIR/$n.sock" "$@"
}

tn_up() {
	local n=$1 key=$2; shift 2
	wait_until 15 tn_cli "$n" status --json || true
	tn_cli "$n" up --login-server="$HS_URL" --authkey="$key" --hostname="$n" --accept-dns=false "$@"
}

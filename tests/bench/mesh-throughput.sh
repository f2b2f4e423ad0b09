#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Copyright (C) 2026 The meshd Authors.
#
# tests/bench/mesh-throughput.sh: the tailnet data plane, meshd against
# tailscaled, on a direct path. One topology (testing/testbed.md §2.2): a hub
# namespace routes between node namespaces over veth, no NAT; headscale on
# the hub. A pair of meshd nodes (ma 10.0.1.2, mb 10.0.2.2) and a pair of
# tailscaled nodes (ta 10.0.3.2, tb 10.0.4.2), each with a real TUN. Once
# each pair has a direct path, interleaved runs from a to b:
#   iperf3 TCP, SECS seconds, RUNS runs per daemon: median Mbit/s received;
#   iperf3 UDP at UDP_RATE with 1200-byte datagrams (no fragmentation at the
#   tailnet MTU of 1280), RUNS runs: median Mbit/s received and loss.
# For each daemon (sender side a, receiver side b): CPU seconds per GB
# (utime + stime from /proc/PID/stat over all runs of a kind, divided by the
# bytes iperf3 says arrived), VmRSS idle (connected, before traffic), VmRSS
# sampled half-way through each run (the largest), and VmHWM at the end.
# Then the ratios meshd/tailscaled.
#
# A benchmark, not a test: no thresholds; exit 0 unless the setup fails.
#
# Environment:
#   BENCH_AGENTS  "meshd tailscaled" (default), or one of them
#   MESHD         meshd binary (default ./meshd, the release build); MESHCTL beside it
#   RUNS (3), SECS (10), UDP_RATE (2G)

set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
MESHD=${MESHD:-$REPO/meshd}
T_NAME=mesh-throughput
# shellcheck source=tests/e2e/lib.sh
. "$REPO/tests/e2e/lib.sh"

read -r -a KINDS <<<"${BENCH_AGENTS:-meshd tailscaled}"
RUNS=${RUNS:-3}
SECS=${SECS:-10}
UDP_RATE=${UDP_RATE:-2G}
TICK=$(getconf CLK_TCK)

die() { echo "mesh-throughput: $*" >&2; exit 1; }
for k in "${KINDS[@]}"; do
	case $k in
	meshd) [[ -x $MESHD && -x $MESHCTL ]] || die "$MESHD or $MESHCTL missing (make)" ;;
	tailscaled) ;;
	*) die "BENCH_AGENTS: unknown daemon '$k'" ;;
	esac
done
for b in headscale tailscaled tailscale; do [[ -x $TN_BIN/$b ]] || die "$TN_BIN/$b missing (make deps)"; done

declare -A A=([meshd]=ma [tailscaled]=ta) B=([meshd]=mb [tailscaled]=tb)
declare -A IDXA=([meshd]=1 [tailscaled]=3) IDXB=([meshd]=2 [tailscaled]=4)
declare -A BIP=()
# Results per kind.
declare -A TCP_RUNS=() UDP_RUNS=() LOSS_RUNS=() CPU_A=() CPU_B=() BYTES=() UCPU_A=() UCPU_B=() UBYTES=()
declare -A RSS_IDLE_A=() RSS_IDLE_B=() ANON_IDLE_A=() ANON_IDLE_B=() RSS_LOAD_A=() RSS_LOAD_B=() HWM_A=() HWM_B=()

cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
# Private memory: VmRSS without the shared libraries' file pages (a static Go
# binary has none of those, so VmRSS alone flatters it).
anon_kb() { awk '/^RssAnon:/ { print $2 }' "/proc/$1/status"; }
median() {
	sort -g | awk 'NF { a[++n] = $1 } END {
		if (n == 0) { print "nan"; exit }
		if (n % 2) print a[(n + 1) / 2]; else print (a[n / 2] + a[n / 2 + 1]) / 2 }'
}
max() { local m=0 v; for v in "$@"; do ((v > m)) && m=$v; done; echo "$m"; }

# direct KIND: a's disco ping reaches b directly.
direct() {
	tn_cli "${A[$1]}" ping --c=5 --timeout=2s --until-direct=true "${BIP[$1]}" 2>&1 | grep -q "via 10\.0\.${IDXB[$1]}\.2:"
}

echo "setting up: hub, headscale, ${KINDS[*]}"
tn_hub >/dev/null || die "hub namespace"
for k in "${KINDS[@]}"; do
	{ tn_node "${A[$k]}" "${IDXA[$k]}" && tn_node "${B[$k]}" "${IDXB[$k]}"; } || die "node namespaces"
done
hs_start "$TN_HUB" "$TN_DIR" || die "headscale did not start ($TN_DIR/headscale.log)"
HS users create bench >/dev/null
KEY=$(HS preauthkeys create --user "$(HS users list -o json | jq -r '.[0].id')" --reusable -e 1h -o json | jq -r .key)

for k in "${KINDS[@]}"; do
	for n in "${A[$k]}" "${B[$k]}"; do
		tn_start "$n" "$k"
		tn_up "$n" "$KEY" >/dev/null 2>&1 || die "$k: $n did not come up (log: ${TN_LOG[$n]})"
	done
	BIP[$k]=$(tn_cli "${B[$k]}" ip -4)
	# Wait for the direct path, so no run goes through DERP.
	wait_until 60 direct "$k" || die "$k: no direct path from ${A[$k]} to ${B[$k]}"
	bg_start "${TN_NS[${B[$k]}]}" "$T_LOGDIR/$T_IFPREFIX-${B[$k]}-iperf3.log" iperf3 -s
	wait_until 10 bash -c "ip netns exec '${TN_NS[${B[$k]}]}' ss -Htln 'sport = :5201' | grep -q ." ||
		die "$k: iperf3 server did not start"
	sleep 2
	RSS_IDLE_A[$k]=$(rss_kb "${TN_PID[${A[$k]}]}") RSS_IDLE_B[$k]=$(rss_kb "${TN_PID[${B[$k]}]}")
	ANON_IDLE_A[$k]=$(anon_kb "${TN_PID[${A[$k]}]}") ANON_IDLE_B[$k]=$(anon_kb "${TN_PID[${B[$k]}]}")
	RSS_LOAD_A[$k]=0 RSS_LOAD_B[$k]=0
	CPU_A[$k]=0 CPU_B[$k]=0 BYTES[$k]=0 UCPU_A[$k]=0 UCPU_B[$k]=0 UBYTES[$k]=0
	TCP_RUNS[$k]='' UDP_RUNS[$k]='' LOSS_RUNS[$k]=''
done

# one_run KIND tcp|udp: one iperf3 run from a to b; adds to the kind's totals.
one_run() {
	local k=$1 mode=$2 pa=${TN_PID[${A[$1]}]} pb=${TN_PID[${B[$1]}]} j=$T_TMP/run.json
	local args=(-c "${BIP[$k]}" -t "$SECS" -J) ca0 cb0 ca1 cb1 cpid mbps bytes loss
	[[ $mode == udp ]] && args+=(-u -b "$UDP_RATE" -l 1200)
	ca0=$(cpu_ticks "$pa") cb0=$(cpu_ticks "$pb")
	timeout $((SECS + 30)) ip netns exec "${TN_NS[${A[$k]}]}" iperf3 "${args[@]}" >"$j" 2>&1 &
	cpid=$!
	sleep "$(awk -v s="$SECS" 'BEGIN { print s / 2 }')"
	RSS_LOAD_A[$k]=$(max "${RSS_LOAD_A[$k]}" "$(rss_kb "$pa")")
	RSS_LOAD_B[$k]=$(max "${RSS_LOAD_B[$k]}" "$(rss_kb "$pb")")
	wait "$cpid" || { echo "  $k $mode run failed:"; head -c 400 "$j"; echo; return 0; }
	ca1=$(cpu_ticks "$pa") cb1=$(cpu_ticks "$pb")
	bytes=$(jq '.end.sum_received.bytes' "$j")
	mbps=$(jq '.end.sum_received.bits_per_second / 1e5 | round / 10' "$j")
	if [[ $mode == tcp ]]; then
		TCP_RUNS[$k]+="$mbps "
		CPU_A[$k]=$((CPU_A[$k] + ca1 - ca0)) CPU_B[$k]=$((CPU_B[$k] + cb1 - cb0)) BYTES[$k]=$((BYTES[$k] + bytes))
		printf '  %-10s TCP run: %8.1f Mbit/s\n' "$k" "$mbps"
	else
		loss=$(jq '.end.sum.lost_percent * 100 | round / 100' "$j")
		UDP_RUNS[$k]+="$mbps " LOSS_RUNS[$k]+="$loss "
		UCPU_A[$k]=$((UCPU_A[$k] + ca1 - ca0)) UCPU_B[$k]=$((UCPU_B[$k] + cb1 - cb0)) UBYTES[$k]=$((UBYTES[$k] + bytes))
		printf '  %-10s UDP run: %8.1f Mbit/s received, loss %.2f %%\n' "$k" "$mbps" "$loss"
	fi
}

echo "runs: $RUNS x ${SECS}s TCP, then $RUNS x ${SECS}s UDP at $UDP_RATE, interleaved (${KINDS[*]})"
for mode in tcp udp; do
	for ((r = 1; r <= RUNS; r++)); do
		for k in "${KINDS[@]}"; do one_run "$k" "$mode"; sleep 1; done
	done
done
for k in "${KINDS[@]}"; do
	HWM_A[$k]=$(hwm_kb "${TN_PID[${A[$k]}]}") HWM_B[$k]=$(hwm_kb "${TN_PID[${B[$k]}]}")
done

# --- report ---------------------------------------------------------------------

declare -A M=()
spg() { awk -v t="$1" -v b="$2" -v hz="$TICK" 'BEGIN { if (b > 0) printf "%.2f", t / hz / (b / 1e9); else print "nan" }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
for k in "${KINDS[@]}"; do
	M[$k,tcp]=$(tr ' ' '\n' <<<"${TCP_RUNS[$k]}" | median)
	M[$k,udp]=$(tr ' ' '\n' <<<"${UDP_RUNS[$k]}" | median)
	M[$k,loss]=$(tr ' ' '\n' <<<"${LOSS_RUNS[$k]}" | median)
	M[$k,tcpa]=$(spg "${CPU_A[$k]}" "${BYTES[$k]}") M[$k,tcpb]=$(spg "${CPU_B[$k]}" "${BYTES[$k]}")
	M[$k,udpa]=$(spg "${UCPU_A[$k]}" "${UBYTES[$k]}") M[$k,udpb]=$(spg "${UCPU_B[$k]}" "${UBYTES[$k]}")
	M[$k,idlea]=$(mib "${RSS_IDLE_A[$k]}") M[$k,idleb]=$(mib "${RSS_IDLE_B[$k]}")
	M[$k,anona]=$(mib "${ANON_IDLE_A[$k]}") M[$k,anonb]=$(mib "${ANON_IDLE_B[$k]}")
	M[$k,loada]=$(mib "${RSS_LOAD_A[$k]}") M[$k,loadb]=$(mib "${RSS_LOAD_B[$k]}")
	M[$k,hwma]=$(mib "${HWM_A[$k]}") M[$k,hwmb]=$(mib "${HWM_B[$k]}")
done

ratio() {
	[[ -n ${M[meshd,$1]:-} && -n ${M[tailscaled,$1]:-} ]] || { echo -; return; }
	awk -v m="${M[meshd,$1]}" -v t="${M[tailscaled,$1]}" 'BEGIN { if (t + 0 > 0 && m == m + 0) printf "%.2fx", m / t; else print "-" }'
}
row() {
	local label=$1 key=$2 k
	printf '  %-40s' "$label"
	for k in meshd tailscaled; do printf ' %12s' "${M[$k,$key]:--}"; done
	printf ' %12s\n' "$(ratio "$key")"
}
echo
printf 'tailnet data plane, direct path, %d x %ds per mode (medians; a = sender, b = receiver)\n' "$RUNS" "$SECS"
printf '  %-40s %12s %12s %12s\n' '' meshd tailscaled meshd/tsd
row "TCP Mbit/s" tcp
row "UDP Mbit/s received ($UDP_RATE offered)" udp
row "UDP loss %" loss
row "CPU s/GB delivered, TCP, a (sender)" tcpa
row "CPU s/GB delivered, TCP, b (receiver)" tcpb
row "CPU s/GB delivered, UDP, a (sender)" udpa
row "CPU s/GB delivered, UDP, b (receiver)" udpb
row "VmRSS idle MiB, a" idlea
row "VmRSS idle MiB, b" idleb
row "RssAnon (private) idle MiB, a" anona
row "RssAnon (private) idle MiB, b" anonb
row "VmRSS under load MiB, a" loada
row "VmRSS under load MiB, b" loadb
row "VmHWM MiB, a" hwma
row "VmHWM MiB, b" hwmb
for k in "${KINDS[@]}"; do printf '  %s runs: TCP %s| UDP %s\n' "$k" "${TCP_RUNS[$k]}" "${UDP_RUNS[$k]}"; done
if [[ " ${KINDS[*]} " == *" meshd "* && " ${KINDS[*]} " == *" tailscaled "* ]]; then
	echo "ratios meshd/tailscaled: TCP $(ratio tcp), UDP $(ratio udp) (higher is better);" \
		"CPU/GB TCP $(ratio tcpa) / $(ratio tcpb), UDP $(ratio udpa) / $(ratio udpb);" \
		"RSS idle $(ratio idlea) (private $(ratio anona)), under load $(ratio loada), peak $(ratio hwma) (lower is better)"
fi
lib_stop_all

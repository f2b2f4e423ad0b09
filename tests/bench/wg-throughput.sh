#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Copyright (C) 2026 The meshd Authors.
#
# tests/bench/wg-throughput.sh: `make bench`. Single-stream TCP throughput
# through the tunnel, in the perf.md §2.2 layout (both daemons in ns0 on its
# loopback, TUNs in ns1/ns2), for three topologies:
#   A  meshd <-> meshd
#   B  wireguard-go <-> wireguard-go   (upstream, from scripts/deps.sh)
#   C  meshd <-> wireguard-go
# Each run is `iperf3 -c -t 10 -O 1`; runs are interleaved ABCABCABC so the
# noise of this shared 2-core VM spreads evenly (perf.md §2.4). Reported per
# topology: median Gbit/s (min..max), CPU seconds per GB delivered (utime +
# stime of both daemon processes from /proc/PID/stat, over the bytes the
# receiving TUN got), the same per side, peak RSS (VmHWM) per daemon, TCP
# retransmits; then the ratios meshd/wireguard-go (A/B).
#
# A benchmark, not a test: no thresholds, exit 0 unless the setup is broken.
#
# Environment:
#   MESHD      meshd binary (default ./meshd, the release build)
#   MTU        tunnel MTU (default 1420; perf.md also asks for 1280)
#   RUNS       runs per topology (default 3); SECS  seconds per run (default 10)
#   WG_GO      the wireguard-go kind: wg-go-upstream (default) or wg-go-debian
#   TOPOS      which topologies, default "A B C"
#   MESHD_AS   run this wg-go kind wherever meshd is named (to try the script)

set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
MESHD=${MESHD:-$REPO/meshd}
T_NAME=wg-throughput
# shellcheck source=tests/e2e/lib.sh
. "$REPO/tests/e2e/lib.sh"

MTU=${MTU:-1420}
RUNS=${RUNS:-3}
SECS=${SECS:-10}
WG_GO=${WG_GO:-wg-go-upstream}
read -r -a TOPOS <<<"${TOPOS:-A B C}"
TICK=$(getconf CLK_TCK)

declare -A KA=([A]=meshd [B]=$WG_GO [C]=meshd)
declare -A KB=([A]=meshd [B]=$WG_GO [C]=$WG_GO)
# Per topology: namespaces, interfaces, daemon PIDs, and the results.
declare -A T_NS1 T_NS2 T_IFB T_IP T_PA T_PB T_UP
declare -A R_GBPS R_CPU R_CPUA R_CPUB R_RETR R_RSSA R_RSSB

# CPU time (clock ticks) of a process and all its threads: utime + stime,
# fields 14 and 15 of /proc/PID/stat, counted after the "(comm)" field,
# which may itself contain spaces.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
vm_hwm_mib() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
rx_bytes() { ip -n "$1" -s -j link show dev "$2" | jq '.[0].stats64.rx.bytes'; }

median() {
	sort -g | awk '{ a[NR] = $1 } END {
		if (NR == 0) { print "nan"; exit }
		if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
minmax() { sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) printf "%.2f..%.2f", lo, hi }'; }
# fmt NUM [DIGITS]: NUM with DIGITS decimals, or "n/a".
fmt() { awk -v x="$1" -v d="${2:-2}" 'BEGIN { if (x == "nan" || x == "") print "n/a"; else printf "%.*f", d, x }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || b == 0) print "n/a"; else printf "%.2f", a / b }'; }

label() { printf '%s <-> %s' "$(kind_label "${KA[$1]}")" "$(kind_label "${KB[$1]}")"; }

setup() {
	local t=$1
	T_UP[$t]=0
	if ! pair_up "bench$t" "${KA[$t]}" "${KB[$t]}" "$MTU" 2>"$T_TMP/why"; then
		echo "topology $t ($(label "$t")): not available: $(tr '\n' ' ' <"$T_TMP/why")"
		pair_down
		return 0
	fi
	pair_config both
	T_NS1[$t]=$NS1 T_NS2[$t]=$NS2 T_IFB[$t]=$IFB T_IP[$t]=$IP4B
	T_PA[$t]=${T_PID_OF[$IFA]} T_PB[$t]=${T_PID_OF[$IFB]}
	# Handshake now, so no run pays for it.
	if ! wait_until 15 ping_ok "$NS1" "$IP4B"; then
		echo "topology $t ($(label "$t")): no ping through the tunnel; skipped"
		return 0
	fi
	bg_start "$NS2" "$T_LOGDIR/${T_IFPREFIX}iperf3-server-$t.log" iperf3 -s -B "$IP4B" -p 5201
	if ! wait_until 10 sh -c "ip netns exec '$NS2' ss -Htln 'sport = :5201' | grep -q ."; then
		echo "topology $t: iperf3 server did not start; skipped"
		return 0
	fi
	T_UP[$t]=1
}

# One run on topology $1; appends its numbers to the R_* lists.
run_one() {
	local t=$1 r=$2 ns1=${T_NS1[$1]} ns2=${T_NS2[$1]} pa=${T_PA[$1]} pb=${T_PB[$1]}
	local a0 b0 x0 a1 b1 x1 out=$T_LOGDIR/${T_IFPREFIX}iperf3-$t-$r.json
	a0=$(cpu_ticks "$pa") b0=$(cpu_ticks "$pb") x0=$(rx_bytes "$ns2" "${T_IFB[$t]}")
	timeout $((SECS + 60)) ip netns exec "$ns1" iperf3 -c "${T_IP[$t]}" -p 5201 \
		-t "$SECS" -O 1 -J >"$out" 2>&1 || true
	if ! a1=$(cpu_ticks "$pa") || ! b1=$(cpu_ticks "$pb"); then
		echo "  run $r $t: a daemon died (see $T_LOGDIR)"; T_UP[$t]=0; return 0
	fi
	x1=$(rx_bytes "$ns2" "${T_IFB[$t]}")
	local bps retr
	bps=$(jq -r '.end.sum_received.bits_per_second // empty' "$out" 2>/dev/null || true)
	retr=$(jq -r '.end.sum_sent.retransmits // empty' "$out" 2>/dev/null || true)
	if [[ -z $bps ]]; then
		echo "  run $r $t: iperf3 failed: $(jq -r '.error // empty' "$out" 2>/dev/null || tail -n1 "$out")"
		return 0
	fi
	local vals
	vals=$(awk -v bps="$bps" -v a=$((a1 - a0)) -v b=$((b1 - b0)) -v x=$((x1 - x0)) -v hz="$TICK" 'BEGIN {
		gb = x / 1e9; if (gb <= 0) gb = 1e-12
		printf "%.3f %.3f %.3f %.3f\n", bps / 1e9, (a + b) / hz / gb, a / hz / gb, b / hz / gb }')
	local g c ca cb
	read -r g c ca cb <<<"$vals"
	R_GBPS[$t]+="$g"$'\n' R_CPU[$t]+="$c"$'\n' R_CPUA[$t]+="$ca"$'\n' R_CPUB[$t]+="$cb"$'\n'
	R_RETR[$t]+="${retr:-0}"$'\n'
	printf '  run %d  %s  %6.2f Gbit/s  %6.2f CPU s/GB  retr %s\n' "$r" "$t" "$g" "$c" "${retr:-?}"
}

echo "wg-throughput: iperf3 TCP, 1 stream, ${SECS}s (-O 1), tunnel MTU $MTU, $RUNS runs per topology, interleaved"
echo "host: $(uname -r), $(nproc) CPUs; wireguard-go upstream $(cat "$MESHD_CACHE/bin/.wireguard.version" 2>/dev/null || echo '?'), Debian $("$WG_GO_DEBIAN" --version 2>/dev/null | head -n1 | awk '{print $2}')"
echo "logs: $T_LOGDIR"
for t in "${TOPOS[@]}"; do
	[[ -n ${KA[$t]:-} ]] || { echo "unknown topology $t (A, B or C)"; exit 2; }
	setup "$t"
done
for ((r = 1; r <= RUNS; r++)); do
	for t in "${TOPOS[@]}"; do
		if ((T_UP[$t])); then run_one "$t" "$r"; fi
	done
done
for t in "${TOPOS[@]}"; do
	if ((T_UP[$t])); then
		R_RSSA[$t]=$(vm_hwm_mib "${T_PA[$t]}" 2>/dev/null || echo nan)
		R_RSSB[$t]=$(vm_hwm_mib "${T_PB[$t]}" 2>/dev/null || echo nan)
	fi
done

# The table: labels can be long (substituted kinds), so size that column.
W=8
for t in "${TOPOS[@]}"; do l=$(label "$t"); ((${#l} > W)) && W=${#l}; done
row() { printf "%-2s %-${W}s  %7s  %-13s  %8s  %-13s  %-15s  %5s\n" "$@"; }
echo
row "" topology Gbit/s "(min..max)" "CPU s/GB" "(A / B)" "RSS MiB (A/B)" retr
declare -A MED_G MED_C
for t in "${TOPOS[@]}"; do
	MED_G[$t]=$(printf '%s' "${R_GBPS[$t]:-}" | median)
	MED_C[$t]=$(printf '%s' "${R_CPU[$t]:-}" | median)
	mm=$(printf '%s' "${R_GBPS[$t]:-}" | minmax)
	row "$t" "$(label "$t")" "$(fmt "${MED_G[$t]}")" "${mm:+($mm)}" "$(fmt "${MED_C[$t]}")" \
		"($(fmt "$(printf '%s' "${R_CPUA[$t]:-}" | median)") / $(fmt "$(printf '%s' "${R_CPUB[$t]:-}" | median)"))" \
		"$(fmt "${R_RSSA[$t]:-nan}" 1) / $(fmt "${R_RSSB[$t]:-nan}" 1)" \
		"$(fmt "$(printf '%s' "${R_RETR[$t]:-}" | median)" 0)"
done
echo
if [[ -n ${MED_G[A]:-} && -n ${MED_G[B]:-} ]]; then
	echo "meshd/wireguard-go (A/B): throughput $(ratio "${MED_G[A]}" "${MED_G[B]}")x, CPU per GB $(ratio "${MED_C[A]}" "${MED_C[B]}")x (lower is better)"
fi
echo "Gbit/s: median of the runs, iperf3 receiver side. CPU s/GB: both daemons' utime+stime per GB"
echo "delivered to the receiving TUN (A / B: each side's share); softirq and iperf3 time not included."
echo "RSS: peak resident set (VmHWM) of each daemon over all its runs. retr: median TCP retransmits."

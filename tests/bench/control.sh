#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Copyright (C) 2026 The meshd Authors.
#
# tests/bench/control.sh: the control plane, meshd against tailscaled.
#   1. Time from `up` (with a pre-auth key, on a fresh state directory) to
#      Running, for meshd + meshctl and for tailscaled + tailscale against
#      the same headscale, interleaved, RUNS times each; medians and ratio.
#   2. Each daemon's RSS once Running.
#   3. tests/bench/control-netmap.sh: a 10,000-peer map and 1,000 deltas.
# A benchmark, not a test: no thresholds.

set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
MESHD=${MESHD:-$REPO/meshd}
MESHCTL=${MESHCTL:-$REPO/meshctl}
T_NAME=control-bench
# shellcheck source=tests/e2e/lib.sh
. "$REPO/tests/e2e/lib.sh"

RUNS=${RUNS:-5}
BIN=$MESHD_CACHE/bin
CTRL=http://10.0.0.1:8080
D=$T_TMP/bench
mkdir -p "$D"

ns_new NS hub
hs_start "$NS" "$D" || { echo "headscale did not start"; exit 1; }
HS users create bench >/dev/null
KEY=$(HS preauthkeys create --user "$(HS users list -o json | jq -r '.[0].id')" --reusable -e 1h -o json | jq -r .key)

now_ms() { date +%s%3N; }
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

# One run: a fresh daemon, wait for its socket, then time `up` until it returns Running.
run_meshd() {
	local i=$1 s=$D/m$i t0
	mkdir -p "$s"
	bg_start "$NS" "$s.log" "$MESHD" --statedir="$s" --socket="$s.sock" --tun="bm$i"
	local pid=$BG_PID
	wait_until 10 ip netns exec "$NS" "$MESHCTL" --socket="$s.sock" status --json >/dev/null 2>&1
	t0=$(now_ms)
	ip netns exec "$NS" "$MESHCTL" --socket="$s.sock" up --login-server="$CTRL" --authkey="$KEY" \
		--hostname="m$i" >/dev/null 2>&1
	echo "$(($(now_ms) - t0)) $(rss_kb "$pid")"
	stop_pid "$pid" || true
}
run_tailscaled() {
	local i=$1 s=$D/t$i t0
	mkdir -p "$s"
	bg_start "$NS" "$s.log" "$BIN/tailscaled" --statedir="$s" --socket="$s.sock" \
		--tun=userspace-networking --no-logs-no-support --port=$((41800 + i))
	local pid=$BG_PID
	wait_until 10 ip netns exec "$NS" "$BIN/tailscale" --socket="$s.sock" status --json >/dev/null 2>&1 || true
	t0=$(now_ms)
	ip netns exec "$NS" "$BIN/tailscale" --socket="$s.sock" up --login-server="$CTRL" \
		--authkey="$KEY" --hostname="t$i" --accept-dns=false >/dev/null 2>&1
	echo "$(($(now_ms) - t0)) $(rss_kb "$pid")"
	stop_pid "$pid" || true
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

: >"$D/m.txt"; : >"$D/t.txt"
for ((i = 1; i <= RUNS; i++)); do
	run_meshd "$i" >>"$D/m.txt"
	run_tailscaled "$i" >>"$D/t.txt"
done
MU=$(awk '{ print $1 }' "$D/m.txt" | median); TU=$(awk '{ print $1 }' "$D/t.txt" | median)
MR=$(awk '{ print $2 }' "$D/m.txt" | median); TR=$(awk '{ print $2 }' "$D/t.txt" | median)
printf 'up -> Running, %d runs each, interleaved (median ms; RSS once Running, KiB)\n' "$RUNS"
printf '  meshd       %6s ms   RSS %6s KiB   (runs: %s)\n' "$MU" "$MR" "$(awk '{ printf "%s ", $1 }' "$D/m.txt")"
printf '  tailscaled  %6s ms   RSS %6s KiB   (runs: %s)\n' "$TU" "$TR" "$(awk '{ printf "%s ", $1 }' "$D/t.txt")"
awk -v m="$MU" -v t="$TU" -v mr="$MR" -v tr="$TR" \
	'BEGIN { printf "  meshd/tailscaled: time %.2fx, RSS %.2fx (lower is better)\n", m / t, mr / tr }'
lib_stop_all
echo
"$REPO/tests/bench/control-netmap.sh"

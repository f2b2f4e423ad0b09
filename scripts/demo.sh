#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Copyright (C) 2026 The meshd Authors.
#
# scripts/demo.sh: `make demo`. A small tailnet on one machine: headscale in
# a "hub" network namespace that routes between the nodes, two meshd nodes
# (alpha, bravo) and one tailscaled node (charlie), each in its own namespace
# with a real TUN. We show `meshctl status` on alpha, `meshctl ping` by name
# to bravo and to charlie, an ordinary ping over the tailnet, and a 3-second
# iperf3 stream, then tear it all down. (The plain WireGuard demo, meshd wg
# against wireguard-go, is scripts/demo-wg.sh.)
#
# Environment: MESHD (default ./meshd, the release build; meshctl beside it),
# DEMO_AGENT=tailscaled (run tailscaled and tailscale where meshd and meshctl
# would be, to compare). Exits 0 when every step worked, 1 otherwise.

set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
MESHD=${MESHD:-$REPO/meshd}
T_NAME=demo
# shellcheck source=tests/e2e/lib.sh
. "$REPO/tests/e2e/lib.sh"

AGENT=${DEMO_AGENT:-meshd}
case $AGENT in
meshd) CLI=meshctl ;;
tailscaled) CLI=tailscale ;;
*) echo "DEMO_AGENT must be meshd or tailscaled, not '$AGENT'" >&2; exit 2 ;;
esac

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
[[ -t 1 ]] || say() { printf '\n%s\n' "$*"; }
# die MESSAGE [NODE...]: stop with a reason and the tail of those nodes' logs.
die() {
	local n
	printf '\nDEMO FAILED: %s\n' "$1"
	shift
	for n in "$@"; do
		[[ -n ${TN_LOG[$n]:-} ]] || continue
		printf '  last lines of %s:\n' "${TN_LOG[$n]}"
		tail -n 12 "${TN_LOG[$n]}" | sed 's/^/  | /'
	done
	echo "  all logs: $T_LOGDIR"
	exit 1
}
# show NODE LABEL CMD...: print LABEL as the user would type it on NODE, run CMD.
show() {
	local n=$1 label=$2 rc=0; shift 2
	printf '  %s$ %s\n' "$n" "$label"
	"$@" >"$T_TMP/show.out" 2>&1 || rc=$?
	sed 's/^/    /' "$T_TMP/show.out"
	return "$rc"
}

for b in "$TN_BIN/headscale" "$TN_BIN/tailscaled" "$TN_BIN/tailscale"; do
	[[ -x $b ]] || die "$b is missing: run make deps"
done
if [[ $AGENT == meshd ]]; then
	[[ -x $MESHD && -x $MESHCTL ]] || die "$MESHD or $MESHCTL is missing: run make"
fi
for t in nft iperf3 jq curl ping; do command -v "$t" >/dev/null || die "$t is missing: run make deps"; done

say "meshd demo: a tailnet of two $AGENT nodes and one tailscaled node, all on this machine"
[[ $AGENT == meshd ]] || echo "  (DEMO_AGENT=$AGENT: tailscaled and tailscale stand in for meshd and meshctl)"
cat <<EOF
  Every node is a network namespace with its own TUN device, routed through a
  "hub" namespace that also runs the control server (headscale v0.29.2 with its
  built-in DERP relay and STUN). The nodes find each other through headscale
  and then talk WireGuard directly.

    hub      10.0.0.1   headscale :8080, DERP, STUN :3478
    alpha    10.0.1.2   $AGENT
    bravo    10.0.2.2   $AGENT
    charlie  10.0.3.2   tailscaled $("$TN_BIN/tailscaled" --version 2>/dev/null | head -n1 | sed 's/-.*//')
EOF

say "1. Starting headscale and creating a user with a pre-auth key"
{ tn_hub && tn_node alpha 1 && tn_node bravo 2 && tn_node charlie 3; } >"$T_TMP/topo.out" 2>&1 ||
	die "could not build the namespaces: $(tail -n 3 "$T_TMP/topo.out")"
hs_start "$TN_HUB" "$TN_DIR" || die "headscale did not start: $(tail -n 5 "$TN_DIR/headscale.log")"
HS users create demo --email demo@example.com >/dev/null
KEY=$(HS preauthkeys create --user "$(HS users list -o json | jq -r '.[0].id')" --reusable -e 1h -o json | jq -r .key)
echo "  headscale is up at $HS_URL; user \"demo\" created"

say "2. Starting the nodes and joining them to the tailnet"
for n in alpha bravo charlie; do
	kind=$AGENT cli=$CLI
	[[ $n == charlie ]] && kind=tailscaled cli=tailscale
	tn_start "$n" "$kind"
	printf '  %s$ %s up --login-server=%s --authkey=... --hostname=%s\n' "$n" "$cli" "$HS_URL" "$n"
	tn_up "$n" "$KEY" >"$T_TMP/up.out" 2>&1 || die "$n: '$cli up' failed: $(tail -n 3 "$T_TMP/up.out")" "$n"
	echo "    $n is on the tailnet as $(tn_cli "$n" ip -4)"
done
# shellcheck disable=SC2317  # called through wait_until
peers_online() {
	tn_cli alpha status --json |
		jq -e '[.Peer[]? | select(.Online) | .HostName] | (index("bravo") != null and index("charlie") != null)'
}
wait_until 60 peers_online || die "alpha does not see bravo and charlie online" alpha

say "3. What alpha sees: $CLI status"
show alpha "$CLI status" tn_cli alpha status || die "$CLI status failed" alpha

say "4. Disco ping by name, through the tailnet (direct once the path is found)"
for p in bravo charlie; do
	show alpha "$CLI ping $p" tn_cli alpha ping --c=10 --timeout=2s --until-direct=true "$p" ||
		die "$CLI ping $p failed" alpha "$p"
	grep -q 'pong from' "$T_TMP/show.out" || die "no pong from $p" alpha "$p"
done

say "5. The operating system's own ping over the tailnet (ICMP through the TUN)"
for p in bravo charlie; do
	ip=$(tn_cli "$p" ip -4)
	show alpha "ping -c 3 $ip   # $p" tn_in alpha ping -c 3 -i 0.3 -W 2 "$ip" || die "ping to $p ($ip) failed" alpha "$p"
done

say "6. A 3-second TCP stream from alpha to bravo (iperf3)"
BIP=$(tn_cli bravo ip -4)
bg_start "${TN_NS[bravo]}" "$T_LOGDIR/$T_IFPREFIX-iperf3.log" iperf3 -s -1 -B "$BIP"
wait_until 10 bash -c "ip netns exec '${TN_NS[bravo]}' ss -Htln 'sport = :5201' | grep -q ." ||
	die "the iperf3 server did not start"
show alpha "iperf3 -c $BIP -t 3" timeout 30 ip netns exec "${TN_NS[alpha]}" iperf3 -c "$BIP" -t 3 -f m ||
	die "iperf3 from alpha to bravo failed" alpha bravo

lib_stop_all
say "Done: $AGENT nodes and tailscaled pinged each other by name and carried a TCP stream. Cleaning up."
exit 0

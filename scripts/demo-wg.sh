#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Copyright (C) 2026 The meshd Authors.
#
# scripts/demo-wg.sh: the plain WireGuard mode (the tailnet demo is
# scripts/demo.sh, `make demo`). A `meshd wg` node and a wireguard-go node
# (upstream from scripts/deps.sh, else Debian's) build a WireGuard tunnel in
# network namespaces, in the layout of wireguard-go's tests/netns.sh: both
# daemons in ns0 talking UDP over its loopback, their TUN interfaces moved
# into ns1 and ns2. Both are configured with the stock `wg` tool. We show
# `wg show`, ping across, run a 5-second iperf3 stream, and tear it all down.
#
# Environment: MESHD (default ./meshd, the release build), PEER (wg-go kind:
# wg-go-upstream or wg-go-debian), MESHD_AS (run wg-go in meshd's place).
# Exits 0 if the tunnel carried the pings and the stream.

set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
MESHD=${MESHD:-$REPO/meshd}
T_NAME=demo-wg
# shellcheck source=tests/e2e/lib.sh
. "$REPO/tests/e2e/lib.sh"

if [[ -z ${PEER:-} ]]; then
	PEER=wg-go-upstream
	[[ -x $WG_GO_UPSTREAM ]] || PEER=wg-go-debian
fi

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
[[ -t 1 ]] || say() { printf '\n%s\n' "$*"; }
# show CMD...: print the command as a user would type it, then run it.
show() { printf '  $ %s\n' "$*"; "$@" 2>&1 | sed 's/^/    /'; }

peer_version() {
	case $PEER in
	wg-go-upstream) cat "$MESHD_CACHE/bin/.wireguard.version" 2>/dev/null || echo '(version unknown)' ;;
	*) "$WG_GO_DEBIAN" --version 2>/dev/null | awk 'NR == 1 { print $2 }' ;;
	esac
}

say "meshd demo: $(kind_label meshd) and $PEER $(peer_version) build a WireGuard tunnel"
cat <<EOF
  Three network namespaces stand in for two hosts and the wire between them:
  ns0 is the wire (UDP over its loopback), ns1 and ns2 are the hosts. Both
  daemons start in ns0; each creates a TUN interface and the UAPI socket
  /var/run/wireguard/IFNAME.sock that wg(8) talks to. The TUNs then move to
  ns1 and ns2; the daemons keep using them through their open file descriptors.
EOF

if ! pair_up demo meshd "$PEER" 2>"$T_TMP/why"; then
	echo "  setup failed: $(<"$T_TMP/why")"
	[[ -x $MESHD ]] || echo "  (build meshd first: make)"
	exit 1
fi
cat <<EOF

  meshd       : $IFA in ${NS1#"$T_PREFIX"-}, $IP4A / $IP6A, UDP 127.0.0.1:$PORTA (pid ${T_PID_OF[$IFA]})
  wireguard-go: $IFB in ${NS2#"$T_PREFIX"-}, $IP4B / $IP6B, UDP 127.0.0.1:$PORTB (pid ${T_PID_OF[$IFB]})
EOF

say "Configuring both ends with wg(8); only meshd is told where its peer is, so meshd starts the handshake"
printf '  $ wg set %s private-key ... listen-port %s peer %s allowed-ips %s/32,%s/128 endpoint 127.0.0.1:%s\n' \
	"$IFA" "$PORTA" "${PUBB:0:10}..." "$IP4B" "$IP6B" "$PORTB"
printf '  $ wg set %s private-key ... listen-port %s peer %s allowed-ips %s/32,%s/128\n' \
	"$IFB" "$PORTB" "${PUBA:0:10}..." "$IP4A" "$IP6A"
pair_config a

ok=1
say "Pinging wireguard-go from meshd's host, over IPv4 and IPv6 (the first packet triggers the handshake)"
show ip netns exec "$NS1" ping -c 3 -i 0.3 -W 2 "$IP4B" || ok=0
show ip netns exec "$NS1" ping -c 3 -i 0.3 -W 2 "$IP6B" || ok=0

say "What wg(8) sees on the meshd interface"
show ip netns exec "$NS0" wg show "$IFA" || ok=0

say "A 5-second TCP stream from meshd's host to wireguard-go's host (iperf3)"
bg_start "$NS2" "$T_LOGDIR/${T_IFPREFIX}iperf3-server.log" iperf3 -s -1 -B "$IP4B"
if wait_until 10 sh -c "ip netns exec '$NS2' ss -Htln 'sport = :5201' | grep -q ."; then
	show timeout 40 ip netns exec "$NS1" iperf3 -c "$IP4B" -t 5 -f m || ok=0
else
	echo "  iperf3 server did not start"; ok=0
fi

if has_stats meshd; then
	say "meshd's own counters (meshd wg --stats $IFA)"
	show ip netns exec "$NS0" "$MESHD" wg --stats "$IFA" || true
fi

say "wg show after the stream: the transfer counters moved"
show ip netns exec "$NS0" wg show "$IFA" transfer || ok=0

lib_stop_all
if ((ok)); then
	say "Done: meshd and $PEER exchanged pings and a TCP stream. Cleaning up the namespaces."
	exit 0
fi
say "Something did not work; daemon logs are in $T_LOGDIR"
tail -n 20 "$T_LOGDIR/$T_IFPREFIX"*.log | sed 's/^/  /'
exit 1

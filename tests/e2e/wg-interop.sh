#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Copyright (C) 2026 The meshd Authors.
#
# tests/e2e/wg-interop.sh: `meshd wg` against wireguard-go, in the topology of
# wireguard-go's tests/netns.sh (perf.md §2.2, wireguard.md §10.12): both
# daemons in ns0 talking UDP over ns0's loopback, their TUNs moved into ns1
# (side A) and ns2 (side B), configured with plain `wg set` over the UAPI
# socket (wireguard.md §11).
#
# Usage: wg-interop.sh [A:B ...]      (or: wg-interop.sh A B)
#   A, B: meshd | wg-go-debian | wg-go-upstream. Default pairs:
#   meshd:wg-go-debian meshd:wg-go-upstream. Side A is the implementation
#   under test (the one whose --stats are read).
#   MESHD_AS=wg-go-upstream runs wg-go wherever "meshd" is named, to check the
#   script itself; `wg-interop.sh wg-go-upstream:wg-go-debian` does the same.
#
# Per pair: A initiates (only A knows B's endpoint), B initiates (only B knows
# A's), ping v4/v6, `wg show` on A, iperf3 TCP and UDP in both directions,
# B roams to a new listen-port, a captured data packet is replayed to A (and
# sent again with a forged counter), B's host sends from an address outside
# its allowed-ips, and B is given a wrong public key for A.

set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

if (($# == 2)) && [[ $1 != *:* && $2 != *:* ]]; then
	PAIRS=("$1:$2")
elif (($#)); then
	PAIRS=("$@")
else
	read -r -a PAIRS <<<"${WG_INTEROP_PAIRS:-meshd:wg-go-debian meshd:wg-go-upstream}"
fi

# Sniffs ns0's loopback for one WireGuard transport-data message (type 4,
# longer than a bare keepalive) sent to UDP port argv[1]; writes the UDP
# payload to argv[2]. Creates argv[2].ready once the socket listens.
# The traffic we make for it is a few pings, so no UDP GSO batch is involved
# and one datagram is one WireGuard message.
SNIFF_PY='
import socket, struct, sys, time
port, out, secs = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0003))
s.bind(("lo", 0))
open(out + ".ready", "w").close()
end = time.time() + secs
while time.time() < end:
    s.settimeout(max(0.05, end - time.time()))
    try:
        data, addr = s.recvfrom(65535)
    except socket.timeout:
        break
    if addr[1] != 0x0800 or len(data) < 28 or data[9] != 17:
        continue
    ihl = (data[0] & 15) * 4
    _, dport, ulen = struct.unpack("!HHH", data[ihl:ihl + 6])
    p = data[ihl + 8:ihl + ulen]
    if dport == port and len(p) > 32 and p[:4] == b"\x04\0\0\0":
        open(out, "wb").write(p)
        sys.exit(0)
sys.exit(1)
'

# Sends the WireGuard message in file argv[1] three times to
# 127.0.0.1:argv[2]. argv[3] = "replay": unchanged; "tamper": with the
# counter (bytes 8..15, little-endian) moved 100000 ahead, so it is fresh for
# any replay window but no longer authenticates (the counter is the nonce).
SEND_PY='
import socket, struct, sys
p = bytearray(open(sys.argv[1], "rb").read())
if sys.argv[3] == "tamper":
    (c,) = struct.unpack_from("<Q", p, 8)
    struct.pack_into("<Q", p, 8, c + 100000)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3):
    s.sendto(bytes(p), ("127.0.0.1", int(sys.argv[2])))
'

# iperf_case NAME ARGS...: one iperf3 run from ns1 (A) to a one-shot server
# in ns2 (B); passes if the receiver got a nonzero amount of data.
iperf_case() {
	local name=$1 out=$T_TMP/iperf.json slog=$T_TMP/iperf-server.log; shift
	local udp=0 a
	for a in "$@"; do [[ $a == -u ]] && udp=1; done
	: >"$slog"
	bg_start "$NS2" "$slog" iperf3 -s -1 -B "$IP4B" -p 5201
	local spid=$BG_PID
	if ! wait_until 10 sh -c "ip netns exec '$NS2' ss -Htln 'sport = :5201' | grep -q ."; then
		fail "$name" "iperf3 server did not start"; stop_pid "$spid"; return 0
	fi
	timeout 30 ip netns exec "$NS1" iperf3 -c "$IP4B" -p 5201 -t 3 -J "$@" >"$out" 2>&1 || true
	stop_pid "$spid"
	local q='.end.sum_received.bits_per_second'
	((udp)) && q='(if (.end.sum.packets - .end.sum.lost_packets) > 0 then .end.sum.bits_per_second else 0 end)'
	local bps
	bps=$(jq -r "($q // 0) | floor" "$out" 2>/dev/null) || bps=0
	if [[ $bps =~ ^[0-9]+$ ]] && ((bps > 0)); then
		pass "$name"
		note "$((bps / 1000000)) Mbit/s"
	else
		fail "$name"
		jq -r '.error // empty' "$out" 2>/dev/null | sed 's/^/  | /'
		tail -n 5 "$out" | sed 's/^/  | /'
		tail -n 5 "$slog" | sed 's/^/  | server: /'
	fi
}

# endpoint_is PORT: A's view of B's endpoint is 127.0.0.1:PORT.
endpoint_is() {
	wg_cmd "$NS0" show "$IFA" endpoints | grep -qxF "$PUBB	127.0.0.1:$1"
}

# wg_show_ok: `wg show` on A has a handshake time and transfer counters for B.
wg_show_ok() {
	local out; out=$(wg_cmd "$NS0" show "$IFA") || return 1
	printf '%s\n' "$out"
	grep -q "peer: $PUBB" <<<"$out" && grep -q 'latest handshake:' <<<"$out" &&
		grep -q 'transfer:' <<<"$out"
}

# stat_increased IF NAME BEFORE: the counter went above BEFORE.
stat_increased() {
	local now; now=$(stat_get "$1" "$2") && ((now > $3))
}

# bad_handshake_counted IF INV MAC: rx_handshake_invalid > INV or rx_bad_mac > MAC.
bad_handshake_counted() {
	stat_increased "$1" rx_handshake_invalid "$2" || stat_increased "$1" rx_bad_mac "$3"
}

# wrong_key_config KEY: B's peer entry for A now has public key KEY.
wrong_key_config() {
	wg_cmd "$NS0" set "$IFB" peer "$PUBA" remove &&
		wg_cmd "$NS0" set "$IFB" peer "$1" allowed-ips "$IP4A/32,$IP6A/128" endpoint "127.0.0.1:$PORTA"
}

both_alive() { wg_alive "$IFA" && wg_alive "$IFB"; }

run_pair() {
	local ka=$1 kb=$2 tag=$3
	local la lb P why
	la=$(kind_label "$ka") lb=$(kind_label "$kb")
	P="$la~$lb"
	echo "== $P"
	# Not in $(...): pair_up sets variables and starts daemons in this shell.
	if ! pair_up "$tag" "$ka" "$kb" 2>"$T_TMP/why"; then
		why=$(<"$T_TMP/why")
		fail "$P: setup: both daemons up, TUNs moved to ns1/ns2, keys set" "${why//$'\n'/; }"
		pair_down
		return 0
	fi
	pass "$P: setup: both daemons up, TUNs moved to ns1/ns2, keys set"
	local stats_ok=0
	has_stats "$ka" && stats_ok=1

	# 1. A initiates: only A knows where B is.
	check "$P: config with endpoint on $la only" pair_config a
	check "$P: $la initiates: ping IPv4" ping_ok "$NS1" "$IP4B"
	check "$P: $la initiates: ping IPv6" ping_ok "$NS1" "$IP6B"
	check "$P: wg show on $la lists latest handshake and transfer" wg_show_ok
	if ((stats_ok)); then
		check "$P: --stats handshakes_completed > 0" stat_increased "$IFA" handshakes_completed 0
	else
		skip "$P: --stats handshakes_completed > 0" "$la has no --stats"
	fi

	# 2. B initiates: fresh peers, only B knows where A is.
	check "$P: config with endpoint on $lb only" pair_config b
	check_not "$P: $la without endpoint cannot reach $lb yet" \
		timeout 10 ip netns exec "$NS1" ping -q -c 1 -W 1 "$IP4B"
	check "$P: $lb initiates: ping IPv4" ping_ok "$NS2" "$IP4A"
	check "$P: $lb initiates: ping IPv6" ping_ok "$NS2" "$IP6A"
	check "$P: $la learned $lb's endpoint 127.0.0.1:$PORTB" wait_until 5 endpoint_is "$PORTB"
	check "$P: $la replies: ping IPv4" ping_ok "$NS1" "$IP4B"

	# 3. Bulk traffic both ways (A is the iperf3 client; -R reverses).
	iperf_case "$P: iperf3 TCP $la->$lb"
	iperf_case "$P: iperf3 TCP $lb->$la" -R
	iperf_case "$P: iperf3 UDP $la->$lb" -u -b 100M
	iperf_case "$P: iperf3 UDP $lb->$la" -u -b 100M -R

	# 4. Roaming: B moves to another port; A must follow the authenticated
	#    packets that now come from there.
	PORTB=20001
	check "$P: $lb changes listen-port to $PORTB" wg_cmd "$NS0" set "$IFB" listen-port "$PORTB"
	check "$P: roaming: ping $lb->$la after the port change" ping_ok "$NS2" "$IP4A"
	check "$P: roaming: ping $la->$lb after the port change" ping_ok "$NS1" "$IP4B"
	check "$P: roaming: wg show on $la shows endpoint port $PORTB" wait_until 5 endpoint_is "$PORTB"

	# 5. Replay: capture one data packet on its way to A, send it again.
	local cap=$T_TMP/replay.bin before=0
	rm -f "$cap" "$cap.ready"
	# A --stats that fails here is caught by the checks below, not by set -e.
	((stats_ok)) && before=$(stat_get "$IFA" rx_replay || echo 0)
	bg_start "$NS0" "$T_LOGDIR/${T_IFPREFIX}sniff.log" timeout 20 python3 -c "$SNIFF_PY" "$PORTA" "$cap" 15
	local spid=$BG_PID
	if wait_until 5 test -e "$cap.ready"; then
		ping_ok "$NS2" "$IP4A" >/dev/null 2>&1 || true
		wait_until 10 test -s "$cap" || true
	fi
	stop_pid "$spid"
	if [[ -s $cap ]]; then
		pass "$P: replay: captured a data packet to $la"
		in_ns "$NS0" python3 -c "$SEND_PY" "$cap" "$PORTA" replay || fail "$P: replay: resend" "python3 failed"
		if ((stats_ok)); then
			check "$P: replay: --stats rx_replay increased" \
				wait_until 5 stat_increased "$IFA" rx_replay "$before"
			note "rx_replay: $before -> $(stat_get "$IFA" rx_replay || echo '?')"
		else
			skip "$P: replay: --stats rx_replay increased" "$la has no --stats"
		fi
		# The replay came from another port; a replayed packet must not
		# move the endpoint (only authenticated, fresh packets may).
		sleep 0.5
		check "$P: replay: endpoint on $la unchanged" endpoint_is "$PORTB"
		check "$P: replay: tunnel still works" ping_ok "$NS2" "$IP4A"

		# 5b. The same packet with a forged counter must fail to decrypt.
		((stats_ok)) && before=$(stat_get "$IFA" rx_decrypt_fail || echo 0)
		in_ns "$NS0" python3 -c "$SEND_PY" "$cap" "$PORTA" tamper || fail "$P: tamper: send" "python3 failed"
		if ((stats_ok)); then
			check "$P: tampered packet: --stats rx_decrypt_fail increased" \
				wait_until 5 stat_increased "$IFA" rx_decrypt_fail "$before"
			note "rx_decrypt_fail: $before -> $(stat_get "$IFA" rx_decrypt_fail || echo '?')"
		else
			skip "$P: tampered packet: --stats rx_decrypt_fail increased" "$la has no --stats"
		fi
		sleep 0.5
		check "$P: tampered packet: endpoint on $la unchanged" endpoint_is "$PORTB"
		check "$P: tampered packet: tunnel still works" ping_ok "$NS2" "$IP4A"
	else
		fail "$P: replay: captured a data packet to $la" "nothing captured; see ${T_IFPREFIX}sniff.log"
	fi

	# 5c. Cryptokey routing: B's packets may only carry B's allowed-ips as
	#     their inner source. Give B's host a second address and ping from it.
	local src=$WG_NET4.9
	((stats_ok)) && before=$(stat_get "$IFA" rx_bad_source || echo 0)
	if ip -n "$NS2" addr add "$src/32" dev "$IFB"; then
		check_not "$P: allowed-ips: $la drops packets from $src (not in $lb's allowed-ips)" \
			timeout 20 ip netns exec "$NS2" ping -q -c 3 -i 0.5 -W 2 -I "$src" "$IP4A"
		ip -n "$NS2" addr del "$src/32" dev "$IFB" || true
		if ((stats_ok)); then
			check "$P: allowed-ips: --stats rx_bad_source increased" \
				wait_until 5 stat_increased "$IFA" rx_bad_source "$before"
		else
			skip "$P: allowed-ips: --stats rx_bad_source increased" "$la has no --stats"
		fi
	else
		fail "$P: allowed-ips: add $src in ns2"
	fi

	# 6. Wrong key: B now believes A's public key is some other key. Its
	#    handshake initiations carry a mac1 (and an encrypted static) made
	#    for that key, so A must drop them and nothing gets through.
	local wrong before_inv=0 before_mac=0
	wrong=$(wg genkey | wg pubkey)
	if ((stats_ok)); then
		before_inv=$(stat_get "$IFA" rx_handshake_invalid || echo 0)
		before_mac=$(stat_get "$IFA" rx_bad_mac || echo 0)
	fi
	check "$P: wrong key: reconfigure $lb with a wrong public key for $la" wrong_key_config "$wrong"
	check_not "$P: wrong key: no ping $lb->$la" ping_ok "$NS2" "$IP4A"
	check_not "$P: wrong key: no ping $la->$lb" ping_ok "$NS1" "$IP4B"
	if ((stats_ok)); then
		check "$P: wrong key: --stats rx_handshake_invalid or rx_bad_mac increased" \
			wait_until 5 bad_handshake_counted "$IFA" "$before_inv" "$before_mac"
		note "rx_handshake_invalid: $before_inv -> $(stat_get "$IFA" rx_handshake_invalid || echo '?')," \
			"rx_bad_mac: $before_mac -> $(stat_get "$IFA" rx_bad_mac || echo '?')"
	else
		skip "$P: wrong key: --stats rx_handshake_invalid or rx_bad_mac increased" "$la has no --stats"
	fi

	check "$P: both daemons still running" both_alive
	pair_down
}

n=0
for pair in "${PAIRS[@]}"; do
	n=$((n + 1))
	run_pair "${pair%%:*}" "${pair#*:}" "p$n"
done
lib_finish

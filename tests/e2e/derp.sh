#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Copyright (C) 2026 The meshd Authors.
#
# tests/e2e/derp.sh: meshd's DERP client against the real derper v1.102.3,
# driven through `meshd debug-derp` (one derpconn on its own), in one
# namespace: derper on 10.0.0.2:3340 in plain HTTP as in testing/testbed.md
# §2.3 (a non-443 port without -certmode manual serves HTTP), and on
# 10.0.0.2:3341 with TLS and the self-signed certificate derper makes for an
# IP hostname; broken servers on 10.0.0.3.
#
# Cases: two clients exchange packets both ways; a send to a key that is not
# connected delivers nothing and harms nothing; the derper restarts and a
# receiving client reconnects by itself and receives again; a server that
# answers 200, random bytes, or a 101 followed by a broken frame gives a
# clear error and no crash; TLS with the certificate pinned by sha256-raw
# works and a wrong pin is refused.

set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

DERPER=$MESHD_CACHE/bin/derper
D=$T_TMP/derp
mkdir -p "$D"
URL=http://10.0.0.2:3340

for b in "$DERPER" "$MESHD"; do
	[[ -x $b ]] || { fail "setup: $b missing (make deps; make asan)"; lib_finish; exit 1; }
done

ns_new NS derp
in_ns "$NS" ip addr add 10.0.0.2/32 dev lo
in_ns "$NS" ip addr add 10.0.0.3/32 dev lo

# derper_start: plain-HTTP derper with a fixed key file; DERPER_PID. Waits for /derp/probe.
derper_start() {
	bg_start "$NS" "$D/derper.log" "$DERPER" -c "$D/derper.key" -a 10.0.0.2:3340 \
		-http-port=-1 -stun-port=3478
	DERPER_PID=$BG_PID
	wait_until 20 in_ns "$NS" curl -sf -o /dev/null http://10.0.0.2:3340/derp/probe
}

# dd LOG ARGS...: a debug-derp run in the foreground; stdout+stderr to LOG.
dd() {
	local log=$1; shift
	T_MESHD_LOGS+=("$log")
	timeout 60 ip netns exec "$NS" "$MESHD" debug-derp "$@" >"$log" 2>&1
}

# dd_bg LOG ARGS...: the same in the background; BG_PID.
dd_bg() {
	local log=$1; shift
	T_MESHD_LOGS+=("$log")
	bg_start "$NS" "$log" "$MESHD" debug-derp "$@"
}

nodekey_of() { grep -m1 -o '^nodekey:[0-9a-f]\{64\}$' "$1"; }
count() { grep -c -- "$2" "$1" || true; }
connected_times() { [[ $(count "$1" '^connected to region 900$') -ge $2 ]]; }

check "setup: derper serves plain HTTP on 10.0.0.2:3340" derper_start

# --- two clients, both ways ---------------------------------------------------
A_LOG=$D/a.log
dd_bg "$A_LOG" --url "$URL" --key-file "$D/a.key" --timeout 120 recv --reply
A_PID=$BG_PID
if wait_until 15 connected_times "$A_LOG" 1; then
	pass "a receiving client connects and prints its node key"
else
	fail "a receiving client connects and prints its node key"
	sed 's/^/  | /' "$A_LOG"
fi
KA=$(nodekey_of "$A_LOG" || true)
# The key file keeps the identity: same key on the next run.
check "the key file is mode 0600 and holds a private key" \
	bash -c "[[ \$(stat -c %a '$D/a.key') == 600 ]] && grep -q '^privkey:[0-9a-f]\{64\}$' '$D/a.key'"

if dd "$D/b1.log" --url "$URL" --key-file "$D/b.key" --timeout 20 send "$KA" --count 3 --wait; then
	pass "B sends 3 packets to A and gets 3 replies back"
else
	fail "B sends 3 packets to A and gets 3 replies back"
	sed 's/^/  | /' "$D/b1.log"
fi
KB=$(nodekey_of "$D/b1.log" || true)
a_got() { [[ $(count "$A_LOG" "^recv from $KB len 7: hello [1-3]\$") -ge $1 ]]; }
wait_until 5 a_got 3 || true
check "A received hello 1..3 from B's node key" a_got 3
check "B received echo: hello 1..3 from A's node key" \
	test "$(count "$D/b1.log" "^recv from $KA len 13: echo: hello [1-3]\$")" -eq 3

# --- a key that is not there ----------------------------------------------------
GHOST=nodekey:$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
if dd "$D/ghost.log" --url "$URL" --timeout 20 send "$GHOST" --count 3; then
	pass "a send to a key that is not connected completes"
else
	fail "a send to a key that is not connected completes"
	sed 's/^/  | /' "$D/ghost.log"
fi
a_quiet() { [[ $(count "$A_LOG" '^recv from') == 3 ]] && our_child "$A_PID"; }
check "... nothing reaches A, and A is still running" a_quiet
check "... and the derper still serves" in_ns "$NS" curl -sf -o /dev/null http://10.0.0.2:3340/derp/probe

# --- the derper restarts --------------------------------------------------------
stop_pid "$DERPER_PID" || true
if wait_until 10 grep -q '^disconnected: ' "$A_LOG"; then
	pass "restart: A notices the derper went away"
	note "$(grep -m1 '^disconnected: ' "$A_LOG")"
else
	fail "restart: A notices the derper went away"
fi
sleep 1
check "restart: derper comes back" derper_start
if wait_until 20 connected_times "$A_LOG" 2; then
	pass "restart: A reconnects by itself"
else
	fail "restart: A reconnects by itself"
	tail -n 20 "$A_LOG" | sed 's/^/  | /'
fi
if dd "$D/b2.log" --url "$URL" --key-file "$D/b.key" --timeout 20 send "$KA" --count 3 --wait; then
	pass "restart: B reaches A again, both ways"
else
	fail "restart: B reaches A again, both ways"
	sed 's/^/  | /' "$D/b2.log"
fi
check "restart: A received 6 packets in all" a_got 6

# --- broken servers -------------------------------------------------------------
cat >"$D/broken.py" <<'EOF'
import os, socket, sys
mode, port = sys.argv[1], int(sys.argv[2])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.0.0.3", port))
s.listen(16)
while True:
    c, _ = s.accept()
    try:
        c.recv(4096)
        if mode == "ok200":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello")
        elif mode == "random":
            c.sendall(b"\x00" + os.urandom(511))
        else:  # a 101, then a frame length no client should buffer
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: DERP\r\n\r\n\x01\xff\xff\xff\xff")
    except OSError:
        pass
    c.close()
EOF
broken() {
	local mode=$1 port=$2 want=$3 log=$D/broken-$1.log rc=0
	bg_start "$NS" "$D/py-$mode.log" python3 "$D/broken.py" "$mode" "$port"
	local pid=$BG_PID
	wait_until 10 in_ns "$NS" bash -c "exec 3<>/dev/tcp/10.0.0.3/$port" || true
	dd "$log" --url "http://10.0.0.3:$port" --timeout 3 recv || rc=$?
	stop_pid "$pid" || true
	if [[ $rc == 1 ]] && grep -q "^meshd: debug-derp: no connection: .*$want" "$log"; then
		pass "broken server ($mode): clear error, exit 1"
		note "$(grep -m1 '^meshd: debug-derp: ' "$log")"
	else
		fail "broken server ($mode): clear error, exit 1" "exit $rc"
		tail -n 15 "$log" | sed 's/^/  | /'
	fi
}
broken ok200 3340 "upgrade refused: HTTP 200 OK: hello"
broken random 3341 "the server did not answer with HTTP"
broken badframe 3342 "over the limit"
if dd "$D/refused.log" --url http://10.0.0.3:3399 --timeout 2 recv; then
	fail "nothing listening: exit 1 with the reason"
else
	if grep -q 'no connection: 10.0.0.3:3399: Connection refused' "$D/refused.log"; then
		pass "nothing listening: exit 1 with the reason"
	else
		fail "nothing listening: exit 1 with the reason"
		sed 's/^/  | /' "$D/refused.log"
	fi
fi

# --- TLS --------------------------------------------------------------------------
mkdir -p "$D/certs"
bg_start "$NS" "$D/derper-tls.log" "$DERPER" -c "$D/derper-tls.key" -a 10.0.0.2:3341 \
	-http-port=-1 -stun-port=3479 -certmode manual -certdir "$D/certs" -hostname 10.0.0.2
wait_until 20 grep -q 'sha256-raw:' "$D/derper-tls.log" || true
PIN=$(grep -m1 -o 'sha256-raw:[0-9a-f]\{64\}' "$D/derper-tls.log" || true)
check "TLS: derper prints the pin of its self-signed certificate" test -n "$PIN"
TURL=https://10.0.0.2:3341
dd_bg "$D/ta.log" --url "$TURL" --cert-name "$PIN" --timeout 60 recv --reply
wait_until 15 connected_times "$D/ta.log" 1 || true
KTA=$(nodekey_of "$D/ta.log" || true)
if dd "$D/tb.log" --url "$TURL" --cert-name "$PIN" --timeout 20 send "$KTA" --count 2 --wait; then
	pass "TLS: pinned sha256-raw certificate, packets both ways"
else
	fail "TLS: pinned sha256-raw certificate, packets both ways"
	sed 's/^/  | /' "$D/tb.log" "$D/ta.log"
fi
BADPIN=sha256-raw:$(printf '%064d' 0)
if ! dd "$D/tbad.log" --url "$TURL" --cert-name "$BADPIN" --timeout 3 recv &&
	grep -q 'does not match the pinned sha256' "$D/tbad.log"; then
	pass "TLS: a wrong pin is refused"
else
	fail "TLS: a wrong pin is refused"
	sed 's/^/  | /' "$D/tbad.log"
fi
if ! dd "$D/tca.log" --url "$TURL" --timeout 3 recv && grep -q 'certificate verify failed' "$D/tca.log"; then
	pass "TLS: a self-signed certificate without a pin fails verification"
else
	fail "TLS: a self-signed certificate without a pin fails verification"
	sed 's/^/  | /' "$D/tca.log"
fi

lib_finish

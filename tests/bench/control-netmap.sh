#!/bin/sh
# SPDX-License-Identifier: MIT
# Copyright (C) 2026 The meshd Authors.
#
# tests/bench/control-netmap.sh [PEERS]: builds tests/bench/netmap-bench.c
# with -O2 against the map-stream and netmap sources and runs it (default
# 10,000 peers).  Budgets: full map <= 100 ms, deltas O(1), <= 2 KB/peer.
set -eu
cd "$(dirname "$0")/../.."
CC=${CC:-cc}
mkdir -p build/bench
# shellcheck disable=SC2046
"$CC" -std=gnu11 -D_GNU_SOURCE -I. -O2 -g -Wall -Wextra -Wshadow -Wformat=2 -Wvla \
	-Wstrict-prototypes -Wmissing-prototypes \
	-o build/bench/netmap-bench tests/bench/netmap-bench.c \
	agent/control/mapresp.c agent/control/netmap.c common/keys.c common/log.c common/util.c \
	$(pkg-config --cflags --libs libzstd libsodium)
exec build/bench/netmap-bench "$@"

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Copyright (C) 2026 The meshd Authors.
#
# scripts/deps.sh: `make deps`. Installs what the build and the tests need on
# Debian 12, then the real peers we test against, built with `go install` into
# a cache outside the repo:
#
#   $MESHD_CACHE/bin/wireguard   golang.zx2c4.com/wireguard@latest ("current upstream")
#   $MESHD_CACHE/bin/tailscale, tailscaled, derper   tailscale.com @ v1.102.3
#   $MESHD_CACHE/bin/headscale   github.com/juanfont/headscale @ v0.29.2
#
# Each Go binary gets a stamp file bin/.NAME.version holding the module version
# it was built from; a binary is rebuilt only when it is missing, or when the
# stamp or the version embedded in the binary (`go version -m`) is not the
# expected one. For the unpinned wireguard-go the stamp records the version
# @latest resolved to; set MESHD_DEPS_REFRESH=1 to resolve @latest again.
#
# With everything present this takes well under a second. It is idempotent,
# needs root only when something is missing, and stops at the first error.

set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

CACHE=${MESHD_CACHE:-$HOME/.cache/meshd}
BIN=$CACHE/bin
LOGDIR=$CACHE/logs

TAILSCALE_VERSION=v1.102.3
HEADSCALE_VERSION=v0.29.2
# Used only to bootstrap when the machine's Go is too old to fetch a toolchain
# itself (Debian 12's golang-go is 1.19; GOTOOLCHAIN needs >= 1.21).
BOOTSTRAP_GO=go1.26.8

APT_PKGS=(
	pkg-config build-essential clang libevent-dev libssl-dev libsodium-dev
	libnghttp2-dev libjson-c-dev libzstd-dev libcurl4-openssl-dev libmnl-dev
	libnftnl-dev libcmocka-dev libsystemd-dev iproute2 iperf3 iputils-ping
	wireguard-tools wireguard-go jq nftables tcpdump python3 procps psmisc
)

log() { printf 'deps: %s\n' "$*"; }
die() { printf 'deps: ERROR: %s\n' "$*" >&2; exit 1; }

# Runs a noisy command with its output in a log file, and shows the tail of
# that log only if it fails, so a normal run stays short but a failure is
# never silent.
quietly() {
	local logf=$1; shift
	if ! "$@" >"$logf" 2>&1; then
		printf 'deps: ERROR: command failed: %s\n' "$*" >&2
		tail -n 40 "$logf" >&2
		exit 1
	fi
}

mkdir -p "$BIN" "$LOGDIR"

# Two `make deps` at once (a developer plus CI, or make -j) would otherwise
# run apt and the same go install twice; the second waits for the first.
exec 9>"$CACHE/.deps.lock"
flock 9

# --- Debian packages -------------------------------------------------------

missing=()
for p in "${APT_PKGS[@]}"; do
	st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) || st=
	[[ $st == installed ]] || missing+=("$p")
done
if ((${#missing[@]})); then
	[[ $EUID -eq 0 ]] || die "missing packages (${missing[*]}) and not root"
	log "apt-get install ${missing[*]}"
	# Only now: the package lists may be absent or stale on a fresh machine.
	quietly "$LOGDIR/apt-update.log" apt-get update
	quietly "$LOGDIR/apt-install.log" apt-get install -y --no-install-recommends "${missing[@]}"
fi

# --- Go toolchain ----------------------------------------------------------

# Prints the version of the go binary $1 as "1.26.8" (empty if it can't run).
go_ver() { "$1" env GOVERSION 2>/dev/null | sed -n 's/^go\([0-9][0-9.]*\).*/\1/p'; }

# True if dotted version $1 >= $2.
ver_ge() { [[ $(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1) == "$2" ]]; }

GO=$(command -v go || true)
[[ -n $GO ]] || { [[ -x /usr/local/go/bin/go ]] && GO=/usr/local/go/bin/go; }
if [[ -z $GO ]] || ! ver_ge "$(go_ver "$GO")" 1.21; then
	# No Go, or one that can't switch toolchains. Take Debian's and use it
	# only to download a current toolchain: the Go module proxy serves Go
	# itself as the module golang.org/toolchain.
	if [[ -z $GO ]]; then
		[[ $EUID -eq 0 ]] || die "no Go found and not root"
		log "apt-get install golang-go (to bootstrap $BOOTSTRAP_GO)"
		quietly "$LOGDIR/apt-update.log" apt-get update
		quietly "$LOGDIR/apt-install.log" apt-get install -y --no-install-recommends golang-go
		GO=/usr/bin/go
	fi
	tc=golang.org/toolchain@v0.0.1-$BOOTSTRAP_GO.linux-$(dpkg --print-architecture)
	log "downloading $tc"
	dir=$(cd /tmp && GO111MODULE=on GOFLAGS=-modcacherw "$GO" mod download -json "$tc" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[[ -d $dir/bin ]] || die "could not bootstrap $BOOTSTRAP_GO"
	# Module files are unpacked read-only and without exec bits; the go
	# command does this same chmod when it switches toolchains itself.
	find "$dir/pkg/tool" "$dir/bin" -type f -exec chmod a+x {} +
	GO=$dir/bin/go
fi
# auto: a module that asks for a newer Go than ours gets it from the proxy.
export GOTOOLCHAIN=auto
# `go install M@vX` also fetches M's version list to look for a deprecation
# notice in M's latest go.mod, and the module proxy we reach answers 403 for
# headscale's list, which fails the whole install. A file:// proxy listed
# first answers just the version lists of the modules we pin (with the pinned
# version); every other request falls through to the usual proxy (a file://
# miss counts as "not found"), so what gets built is unchanged.
GOPIN=$CACHE/goproxy
pin_list() { mkdir -p "$GOPIN/$1/@v"; printf '%s\n' "$2" >"$GOPIN/$1/@v/list"; }
pin_list tailscale.com "$TAILSCALE_VERSION"
pin_list github.com/juanfont/headscale "$HEADSCALE_VERSION"
GOPROXY="file://$GOPIN,$("$GO" env GOPROXY)"
export GOPROXY
export GOBIN=$BIN
export GOFLAGS="-trimpath${GOFLAGS:+ $GOFLAGS}"

# --- Go-installed peers ----------------------------------------------------

# Prints the module version embedded in Go binary $1 ("" if none/unreadable).
bin_mod_ver() {
	[[ -x $1 ]] || return 0
	"$GO" version -m "$1" 2>/dev/null | awk '$1 == "mod" { print $3; exit }'
}

# True if bin/NAME exists, its stamp says $2 and the binary agrees.
# With $2 empty (an unpinned @latest) any stamped version is accepted.
is_current() {
	local name=$1 want=$2 stamp="$BIN/.$1.version" have
	[[ -x $BIN/$name && -s $stamp ]] || return 1
	have=$(bin_mod_ver "$BIN/$name")
	[[ -n $have && $have == "$(<"$stamp")" ]] || return 1
	[[ -z $want || $have == "$want" ]]
}

# A binary that is already there with the right version (from an earlier go
# install that ran without this script) only needs its stamp.
adopt() {
	local name=$1 want=$2 have
	have=$(bin_mod_ver "$BIN/$name")
	if [[ -n $have && ( -z $want || $have == "$want" ) && ! -s $BIN/.$name.version ]]; then
		printf '%s\n' "$have" >"$BIN/.$name.version"
	fi
}

# go_install VERSION NAME... -- PKG...: install PKGs unless every NAME is
# current at VERSION (empty = @latest), then stamp each NAME.
go_install() {
	local want=$1; shift
	local names=() pkgs=() n need=0 have
	while [[ $1 != -- ]]; do names+=("$1"); shift; done
	shift; pkgs=("$@")
	for n in "${names[@]}"; do
		[[ -n ${MESHD_DEPS_REFRESH:-} && -z $want ]] && rm -f "$BIN/.$n.version"
		[[ -n ${MESHD_DEPS_REFRESH:-} && -z $want ]] || adopt "$n" "$want"
		is_current "$n" "$want" || need=1
	done
	((need)) || return 0
	log "go install ${pkgs[*]} (this can take minutes)"
	for n in "${names[@]}"; do rm -f "$BIN/.$n.version"; done  # none stale if it fails
	quietly "$LOGDIR/go-install-${names[0]}.log" "$GO" install "${pkgs[@]}"
	for n in "${names[@]}"; do
		have=$(bin_mod_ver "$BIN/$n")
		[[ -n $have ]] || die "$BIN/$n missing or unreadable after go install"
		[[ -z $want || $have == "$want" ]] || die "$BIN/$n is $have, wanted $want"
		printf '%s\n' "$have" >"$BIN/.$n.version"
	done
	log "installed ${names[*]} ${have}"
}

go_install "" wireguard -- golang.zx2c4.com/wireguard@latest
go_install "$TAILSCALE_VERSION" tailscale tailscaled derper -- \
	"tailscale.com/cmd/tailscale@$TAILSCALE_VERSION" \
	"tailscale.com/cmd/tailscaled@$TAILSCALE_VERSION" \
	"tailscale.com/cmd/derper@$TAILSCALE_VERSION"
go_install "$HEADSCALE_VERSION" headscale -- \
	"github.com/juanfont/headscale/cmd/headscale@$HEADSCALE_VERSION"

# --- sanity -----------------------------------------------------------------

for t in cc clang pkg-config ip wg wireguard-go iperf3 ping jq tcpdump python3 nft; do
	command -v "$t" >/dev/null || die "$t not found after install"
done
exit 0

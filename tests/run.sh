#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Copyright (C) 2026 The meshd Authors.
#
# tests/run.sh: the `make check` runner (after `make asan fuzz-build`).
#
#   tests/run.sh                   everything: unit, fuzz smoke, e2e
#   tests/run.sh unit|fuzz|e2e     one group
#   tests/run.sh [GROUP] WORD...   only tests whose name contains a WORD,
#                                  e.g. `tests/run.sh e2e wg`, `tests/run.sh keys`
#
# Counting:
#   unit  every cmocka case in build/asan/tests/test_* ("[ RUN ]" followed by
#         "[ OK ]" passes; "[ FAILED ]", or no outcome at all because the
#         binary died in it, fails). A binary that exits non-zero with no
#         failed case, or that ends in a sanitizer report or a signal after
#         its last case, adds one failure.
#   fuzz  each build/fuzz/fuzz_* is one test: its seed corpus
#         tests/fuzz/corpus/<name>/ plus FUZZ_SECONDS (default 5) of
#         exploration must end without a crash, leak or timeout.
#   e2e   each tests/e2e/*.sh reports its cases as "PASS: name" / "FAIL: name"
#         lines (tests/e2e/lib.sh); a script that exits non-zero without a
#         FAIL line adds one failure. "SKIP:" lines are not counted.
# The last line is "N passed, N failed"; the exit status is non-zero if
# anything failed or nothing passed. Logs: build/test-logs/.
#
# Environment: MESHD (default build/asan/meshd), FUZZ_SECONDS, UNIT_TIMEOUT
# (per binary, default 300 s), E2E_TIMEOUT (per script, default 1200 s),
# UNIT_DIR / FUZZ_DIR / FUZZ_SEEDS / E2E_DIR (where to look; for testing this runner).

set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

export MESHD=${MESHD:-$REPO/build/asan/meshd}
# Leaks are errors, and any sanitizer report stops the process at once so it
# can't be missed; anything the caller set comes after and wins.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:halt_on_error=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
# cmocka's plain output is what we parse, whatever a developer's shell says.
export CMOCKA_MESSAGE_OUTPUT=stdout
FUZZ_SECONDS=${FUZZ_SECONDS:-5}
UNIT_TIMEOUT=${UNIT_TIMEOUT:-300}
E2E_TIMEOUT=${E2E_TIMEOUT:-1200}
# Where the tests are (overridable to test this runner itself).
UNIT_DIR=${UNIT_DIR:-build/asan/tests}
FUZZ_DIR=${FUZZ_DIR:-build/fuzz}
E2E_DIR=${E2E_DIR:-tests/e2e}
FUZZ_SEEDS=${FUZZ_SEEDS:-tests/fuzz/corpus}

LOGS=build/test-logs
mkdir -p "$LOGS"
# Several people (or a person and an agent) may run this in one work tree.
# The first run owns build/test-logs/; a concurrent one writes to a private
# directory instead of interleaving with it. The lock goes with our exit.
exec 8>"$LOGS/.lock"
if flock -n 8; then
	for d in "$LOGS"/run-[0-9]*; do   # private log dirs of runs now over
		[[ -d $d ]] && ! kill -0 "${d##*-}" 2>/dev/null && rm -rf "$d"
	done
else
	LOGS=$LOGS/run-$$
	mkdir -p "$LOGS"
	echo "note: another tests/run.sh is running here; this run's logs go to $LOGS"
fi

GROUPS_SEL=(unit fuzz e2e)
if (($#)) && [[ $1 =~ ^(unit|fuzz|e2e|all)$ ]]; then
	[[ $1 == all ]] || GROUPS_SEL=("$1")
	shift
fi
WORDS=("$@")

PASSED=0 FAILED=0
FAILED_NAMES=()

# selected NAME: no words given, or NAME contains one of them.
selected() {
	local w
	((${#WORDS[@]})) || return 0
	for w in "${WORDS[@]}"; do [[ $1 == *"$w"* ]] && return 0; done
	return 1
}

# record NAME PASSES FAILS LOG: add to the totals; print one line per test
# (deliberately not in the "N passed, N failed" form, which is the last line's
# alone) and the tail of the log when something failed.
record() {
	local name=$1 p=$2 f=$3 log=$4
	PASSED=$((PASSED + p)) FAILED=$((FAILED + f))
	if ((f)); then
		FAILED_NAMES+=("$name")
		printf 'FAIL  %-40s %d ok, %d failing  (log: %s)\n' "$name" "$p" "$f" "$log"
		tail -n "${TAIL_LINES:-40}" "$log" | sed 's/^/    | /'
	else
		printf 'ok    %-40s %d ok\n' "$name" "$p"
	fi
}

# run_logged LOG SECS CMD...: CMD with a time limit, all output to LOG; sets RC.
# The subshell is the one that reports a death by signal ("Aborted"), so
# that line lands in the log instead of on the terminal.
run_logged() {
	local log=$1 secs=$2; shift 2
	RC=0
	( timeout -k 10 "$secs" "$@" </dev/null; exit $? ) >>"$log" 2>&1 || RC=$?
	((RC == 124)) && echo "[runner] timed out after ${secs}s" >>"$log"
	((RC != 0)) && echo "[runner] exit status $RC" >>"$log"
	return 0
}

sanitizer_report() { grep -qE 'ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:' "$1"; }

# --- unit ------------------------------------------------------------------

# Prints "passes fails open" for a cmocka log: open = cases started but with
# no outcome line (the binary died inside them). Summary and "listed below"
# lines come when no case is open and are ignored, so nothing counts twice.
cmocka_count() {
	awk '
		/^\[ RUN      \] /     { if (open) { f++; dead++ } open = 1; next }
		/^\[       OK \] /     { if (open) { p++; open = 0 } next }
		/^\[  FAILED  \] /     { if (open) { f++; open = 0 } next }
		/^\[  SKIPPED \] /     { if (open) { open = 0 } next }
		END { if (open) { f++; dead++ } print p + 0, f + 0, dead + 0 }
	' "$1"
}

run_unit() {
	local bins=() b name log rc p f dead
	shopt -s nullglob
	bins=("$UNIT_DIR"/test_*)
	shopt -u nullglob
	if ((${#bins[@]} == 0)); then
		echo "unit: no binaries in $UNIT_DIR/ (make asan builds them)"
		return 0
	fi
	mkdir -p "$LOGS/unit"
	for b in "${bins[@]}"; do
		[[ -x $b && -f $b ]] || continue
		name=unit/${b##*/}
		selected "$name" || continue
		log=$LOGS/unit/${b##*/}.log
		: >"$log"
		run_logged "$log" "$UNIT_TIMEOUT" "$b"
		rc=$RC
		read -r p f dead < <(cmocka_count "$log")
		if ((rc != 0 && f == 0)); then
			f=1
		elif ((dead == 0)) && { ((rc >= 124)) || sanitizer_report "$log"; }; then
			f=$((f + 1)) # died after its last case, e.g. a leak report at exit
		fi
		record "$name" "$p" "$f" "$log"
	done
}

# --- fuzz ------------------------------------------------------------------

run_fuzz() {
	local bins=() b n name log seeds scratch
	shopt -s nullglob
	bins=("$FUZZ_DIR"/fuzz_*)
	shopt -u nullglob
	if ((${#bins[@]} == 0)); then
		echo "fuzz: no targets in $FUZZ_DIR/ (make fuzz-build builds them)"
		return 0
	fi
	mkdir -p "$LOGS/fuzz"
	for b in "${bins[@]}"; do
		[[ -x $b && -f $b ]] || continue
		n=${b##*/fuzz_}
		name=fuzz/$n
		selected "$name" || continue
		log=$LOGS/fuzz/$n.log
		seeds=$FUZZ_SEEDS/$n
		# New inputs go to the first directory: the same scratch corpus
		# `make fuzz` grows, never the committed seeds.
		scratch=$FUZZ_DIR/corpus/$n
		mkdir -p "$scratch"
		rm -f "$LOGS/fuzz/$n-"*   # crash artifacts of an earlier run
		local dirs=("$scratch")
		: >"$log"
		if [[ -d $seeds ]]; then dirs+=("$seeds"); else echo "[runner] note: no seed corpus $seeds" >"$log"; fi
		local limit=(-max_total_time="$FUZZ_SECONDS")
		# libFuzzer reads max_total_time=0 as "forever"; 0 here means seeds only.
		((FUZZ_SECONDS > 0)) || limit=(-runs=0)
		run_logged "$log" $((FUZZ_SECONDS + 300)) "$b" "${limit[@]}" -timeout=25 \
			-rss_limit_mb=2048 -print_final_stats=1 \
			-artifact_prefix="$LOGS/fuzz/$n-" "${dirs[@]}"
		if ((RC == 0)); then record "$name" 1 0 "$log"; else record "$name" 0 1 "$log"; fi
	done
}

# --- e2e -------------------------------------------------------------------

run_e2e() {
	local scripts=() s n name log rc p f
	shopt -s nullglob
	scripts=("$E2E_DIR"/*.sh)
	shopt -u nullglob
	mkdir -p "$LOGS/e2e"
	for s in "${scripts[@]}"; do
		n=${s##*/}; n=${n%.sh}
		[[ $n == lib ]] && continue
		name=e2e/$n
		selected "$name" || continue
		log=$LOGS/e2e/$n.log
		echo "e2e: running $n (log: $log)"
		: >"$log"
		# T_LOGDIR: where lib.sh puts the daemons' own logs.
		T_LOGDIR=$REPO/$LOGS/e2e/$n T_LOGDIR_FRESH=1 T_NAME=$n \
			run_logged "$log" "$E2E_TIMEOUT" bash "$s"
		rc=$RC
		p=$(grep -c '^PASS: ' "$log" || true)
		f=$(grep -c '^FAIL: ' "$log" || true)
		((rc != 0 && f == 0)) && f=1
		if ((f)); then
			# Show which cases failed before the log's tail.
			grep '^FAIL: ' "$log" | sed 's/^/    /' || true
		fi
		record "$name" "$p" "$f" "$log"
	done
}

for g in "${GROUPS_SEL[@]}"; do
	"run_$g"
done

if ((${#FAILED_NAMES[@]})); then
	echo "failing: ${FAILED_NAMES[*]}"
fi
echo "$PASSED passed, $FAILED failed"
((FAILED == 0 && PASSED > 0))

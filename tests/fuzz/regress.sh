#!/bin/bash
# tests/fuzz/regress.sh: runs the libFuzzer harnesses of a build configured with --enable-fuzzing.
#
#   tests/fuzz/regress.sh                       (make check) each harness: every input that once crashed it
#                                               (tests/fuzz/regressions/HARNESS/), then FUZZ_RUNS (5000) runs
#                                               from its seeds; one TAP line per harness
#   tests/fuzz/regress.sh --for SECONDS [H…]    long runs, all harnesses (or H…) one after another: the corpus
#                                               grows in $top_builddir/fuzz/corpus/H, crashes are saved in
#                                               $top_builddir/fuzz/crashes/H; a summary line per harness
#
# Seeds are the recorded fixtures (tests/fixtures): the kernel's dumps, dpkg's stream, the files the program
# wrote. Environment: top_builddir (default: the current directory if it is the build, else build-fuzz), FUZZ_RUNS,
# FUZZ_JOBS (long runs: parallel workers).
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
# the build: make check says; by hand, the directory run from when it has the harnesses, else build-fuzz
[ -x tests/fuzz/fuzz-nftables ] && : "${top_builddir:=$(pwd)}"
: "${top_builddir:=$top/build-fuzz}"
fixtures=$top/tests/fixtures
HARNESSES=(nftables links dpkg-status package-events snapshot link-history run-history config names)

seeds() { # HARNESS: the seed files, one a line
	case $1 in
	nftables) ls "$fixtures"/*.ruleset.nl ;;
	links) ls "$fixtures"/*.links.nl ;;
	dpkg-status) echo "$fixtures/dpkg/status-logger.stream" ;;
	package-events) echo "$fixtures/state/dpkg-events.jsonl" ;;
	snapshot) ls "$fixtures"/state/*.snapshot.json ;;
	link-history) ls "$fixtures"/state/*.links.json ;;
	run-history) ls "$fixtures"/state/*.history.jsonl ;;
	config) echo "$top/etc/50reconcile-after-upgrade"; ls "$fixtures"/config/*.conf ;;
	names) echo "$fixtures/fuzz/names" ;;
	esac
}

scratch=$(mktemp -d "${TMPDIR:-/tmp}/rau-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$scratch"' EXIT
export TMPDIR=$scratch # the harnesses' own scratch directories go there too

seed_dir() { # HARNESS DIR
	mkdir -p "$2"
	local f
	seeds "$1" | while read -r f; do cp "$f" "$2/"; done
}

# libFuzzer's last "stat::number_of_executed_units" (-print_final_stats=1)
executed() { sed -n 's/^stat::number_of_executed_units: *//p' "$1" | tail -n 1; }

if [ "${1:-}" = --for ]; then
	secs=${2:?--for SECONDS}
	shift 2
	[ $# -gt 0 ] && HARNESSES=("$@")
	total=0
	for h in "${HARNESSES[@]}"; do
		bin=$top_builddir/tests/fuzz/fuzz-$h
		[ -x "$bin" ] || { echo "no $bin: configure with --enable-fuzzing CC=clang CXX=clang++ and make check" >&2; exit 2; }
		corpus=$top_builddir/fuzz/corpus/$h crashes=$top_builddir/fuzz/crashes/$h
		mkdir -p "$corpus" "$crashes"
		seed_dir "$h" "$scratch/seeds-$h"
		log=$top_builddir/fuzz/$h.log
		jobs=${FUZZ_JOBS:-1}
		if [ "$jobs" -gt 1 ]; then
			(cd "$top_builddir/fuzz" && "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
				-print_final_stats=1 -artifact_prefix="$crashes/" -jobs="$jobs" -workers="$jobs" \
				"$corpus" "$scratch/seeds-$h" >"$log" 2>&1)
			rc=$?
			n=0
			for l in "$top_builddir"/fuzz/fuzz-*.log; do
				[ -f "$l" ] || continue
				n=$((n + $(executed "$l" || echo 0))); rm -f "$l"
			done
		else
			"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
				-artifact_prefix="$crashes/" "$corpus" "$scratch/seeds-$h" >"$log" 2>&1
			rc=$?
			n=$(executed "$log")
		fi
		total=$((total + ${n:-0}))
		printf '%-16s %12s executions  %5s corpus  %s crashes  exit %s\n' "$h" "${n:-?}" \
			"$(find "$corpus" -type f | wc -l)" "$(find "$crashes" -type f | wc -l)" "$rc"
	done
	printf '%-16s %12s executions\n' total "$total"
	exit 0
fi

runs=${FUZZ_RUNS:-5000}
echo "1..${#HARNESSES[@]}"
i=0
for h in "${HARNESSES[@]}"; do
	i=$((i + 1))
	bin=$top_builddir/tests/fuzz/fuzz-$h
	if [ ! -x "$bin" ]; then
		echo "not ok $i - fuzz-$h (not built: configure --enable-fuzzing)"
		continue
	fi
	log=$scratch/$h.log
	ok=yes why=
	# every input that once crashed it, each run once
	regressions=()
	for f in "$here/regressions/$h"/*; do [ -f "$f" ] && regressions+=("$f"); done
	if [ ${#regressions[@]} -gt 0 ]; then
		"$bin" "${regressions[@]}" >"$log" 2>&1 || { ok=no why="a recorded crash is back"; }
	fi
	if [ $ok = yes ]; then
		seed_dir "$h" "$scratch/seeds-$h"
		mkdir -p "$scratch/corpus-$h"
		"$bin" -runs="$runs" -seed=1 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
			-artifact_prefix="$scratch/" "$scratch/corpus-$h" "$scratch/seeds-$h" >"$log" 2>&1 ||
			{ ok=no why="crashed"; }
	fi
	n=$(executed "$log")
	if [ $ok = yes ] && [ "${n:-0}" -ge "$runs" ]; then
		echo "ok $i - fuzz-$h: ${#regressions[@]} recorded crash(es) pass, $n runs from $(seeds "$h" | wc -l) seed(s), none failed"
	else
		echo "not ok $i - fuzz-$h: ${why:-only ${n:-0} of $runs runs}"
		sed 's/^/# /' "$log" | grep -vE '^# #[0-9]+' | tail -n 40
	fi
done

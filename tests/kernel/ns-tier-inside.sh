#!/bin/bash
# tests/kernel/ns-tier-inside.sh: runs in the guest (tests/kernel/ns-tier.sh boots it). Unpacks the tree it was
# given (the build's binaries and tests/), runs each namespace test and the fault matrix, and prints one line per
# test: "R <file> <exit> <ok> <not-ok> <seconds>", then the failing lines of each that failed.
cd /opt/t || exit 1
mkdir -p src && tar -C src -xzf tree.tgz && cd src || exit 1
export top_builddir=$PWD/build top_srcdir=$PWD
# under emulation every nft run is ~15 times slower: fewer runs where a test counts them
export RAU_LOOP_RUNS=${RAU_LOOP_RUNS:-100} RAU_DUMP_CHAINS=${RAU_DUMP_CHAINS:-20} RAU_DUMP_RUNS=${RAU_DUMP_RUNS:-5}
echo "K $(uname -r)"
for t in $(cat tests.list); do
	t0=$(date +%s.%N)
	out=$(timeout 600 bash "$t" 2>&1)
	rc=$?
	secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	echo "R $t $rc $(grep -c '^ok' <<<"$out") $(grep -c '^not ok' <<<"$out") $secs"
	[ "$rc" -eq 0 ] || grep -E '^not ok|^Bail|^# ' <<<"$out" | head -n 20 | sed 's/^/F /'
done

#!/bin/bash
# The pipeline as a library, called as the watcher calls it: 1,000 times in one process, each time after the
# interface was re-created, each run fixed and verified. No growth per run (RSS after 10 runs and after 1,000),
# and under the sanitizer build LeakSanitizer checks at exit that the runs left nothing behind. The table beside
# the firewall is the same at the end.
source "$(dirname "$0")/../lib.sh"
in_netns "$@"
LOOP="$top_builddir/tests/pipeline-loop"
N=${RAU_LOOP_RUNS:-1000}

coproc LOOPER { "$LOOP" "$RUN_DIR" "$STATE_DIR" ts0 "$N" 2>&1; }
looper=$LOOPER_PID
read -r -t 10 first <&"${LOOPER[0]}"
[ "$first" = ready ] || bail "pipeline-loop did not start: $first"
nft -f - <<'NFT' || bail "cannot load the rules"
table inet filter {
	set vpn { type iface_index; elements = { "ts0" } }
	chain forward {
		type filter hook forward priority 0; policy drop;
		iif "ts0" accept
		oif "ts0" ct state established accept
		iif @vpn counter
	}
}
table ip foreign {
	chain input {
		type filter hook input priority 10; policy accept;
		tcp dport 9100 accept
	}
}
NFT
foreign=$(nft list table ip foreign)
rau -q snapshot
t0=$(date +%s.%N)
echo go >&"${LOOPER[1]}"
out=$(cat <&"${LOOPER[0]}")
wait "$looper"
rc=$?
secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
echo "$out" | grep -v '^rss' | tail -n 20 | sed 's/^/# /'
check "$N runs in one process, each fixed and verified ($secs s), exit 0 (LeakSanitizer finds nothing where it runs)" \
	test "$rc" -eq 0
check "$N records, all via watch and fixed" \
	test "$(jq -s '[.[] | select(.via == "watch" and .outcome == "fixed")] | length' "$STATE_DIR/history.jsonl")" -eq "$N"
rss10=$(awk '$1 == "rss-after-10" { print $2 }' <<<"$out")
rssN=$(awk -v k="rss-after-$N" '$1 == k { print $2 }' <<<"$out")
echo "# RSS (KiB) after runs: $(awk '$1 ~ /^rss-after/ { sub(/rss-after-/, "", $1); printf "%s:%s ", $1, $2 }' <<<"$out")"
if ldd "$LOOP" | grep -q libasan; then
	# ASan keeps freed memory in quarantine: RSS says nothing there, LeakSanitizer does
	ok "RSS not compared under ASan (its quarantine holds freed memory)"
else
	check "no growth per run: RSS after $N runs within 512 KiB of after 10 ($rss10 -> $rssN KiB)" \
		test -n "$rssN" -a -n "$rss10" -a "$((rssN - rss10))" -le 512
fi
check "the foreign table is intact" test "$(nft list table ip foreign)" = "$foreign"
tap_done

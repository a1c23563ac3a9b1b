#!/bin/bash
# The world moves while we look. A rebind computed from one generation of the ruleset is refused whole by the
# kernel once another program changed the ruleset in between (NFNL_BATCH_GENID), so it is never applied to a
# ruleset it was not computed from; the next reading repairs it, and the other program's change stays. Then the
# same under a stream of changes from another process: every run ends fixed and exact, and every change the other
# process made is still there.
source "$(dirname "$0")/../lib.sh"
in_netns "$@"
RACE="$top_builddir/tests/nl-rebind-race"

holder_start ts0
nft -f - <<'NFT' || bail "cannot load the rules"
table inet filter {
	set seen { type ipv4_addr; }
	chain forward {
		type filter hook forward priority 0; policy drop;
		iif "ts0" accept
	}
}
NFT
rau -q snapshot
holder_restart ts0

out=$("$RACE" "$RUN_DIR" "$STATE_DIR" "nft add rule inet filter forward ip saddr 192.0.2.7 counter")
echo "$out" | sed 's/^/# /'
check "a plan from the previous generation is refused by the kernel" test "$(tail -n1 <<<"$out")" = refused
check "nothing of it was applied: the rule is still stale" test "$(rau check --json | jq '.stale | length')" -eq 1
check "the other program's rule is there" grep -q 'ip saddr 192.0.2.7 counter' <(nft list chain inet filter forward)

rau -q
check "the next run reads again and repairs it" rau -q check
check "and the other program's rule is still there, after the repaired one" \
	test "$(nft list chain inet filter forward | grep -E 'iif|192.0.2.7' | sed 's/ packets.*//;s/^[[:space:]]*//' | paste -sd'|')" = \
	'iif "ts0" accept|ip saddr 192.0.2.7 counter'

# Changes from another process, every 20 ms: each run reads, plans and commits against a moving ruleset.
(for i in $(seq 1 100000); do
	a=198.51.100.$((i % 250 + 1))
	nft add element inet filter seen "{ $a }" 2>/dev/null && echo "$a" >>"$WORK/added"
	sleep 0.02
done) &
changer=$!
fixed=0 retried=0
for run in $(seq 1 20); do
	holder_restart ts0
	rau -v >"$WORK/out" 2>&1 && fixed=$((fixed + 1))
	grep -q 'changed since it was read' "$WORK/out" && retried=$((retried + 1))
	grep -q 'read back exact' "$WORK/out" || sed 's/^/# /' "$WORK/out"
done
kill "$changer"
wait "$changer" 2>/dev/null
echo "# 20 runs under a stream of changes: $fixed fixed, $retried of them read again after a refused commit"
check "every run under a stream of changes ended fixed and read back exact" test "$fixed" -eq 20
check "and left the ruleset fresh" rau -q check
nft -j list set inet filter seen | jq -r '.nftables[].set.elem // empty | .[]' | sort -u >"$WORK/present"
sort -u "$WORK/added" >"$WORK/added.sorted"
check "every element the other process added is there ($(wc -l <"$WORK/added.sorted") of them)" \
	test -s "$WORK/added.sorted" -a -z "$(comm -23 "$WORK/added.sorted" "$WORK/present")"
tap_done

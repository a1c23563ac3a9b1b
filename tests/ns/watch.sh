#!/bin/bash
# The watcher with no systemd and no D-Bus (a container without them, or a namespace): link events alone drive
# it, and it rebinds in place. Rules loaded after it started become its baseline (nf_tables events); a re-created
# interface is repaired within a second, exactly; the rate limit holds and says so, and a SIGHUP with the limit
# lifted repairs at once; Watch "false" leaves it idle. SIGTERM stops it with exit 0 (and, in the sanitizer build,
# LeakSanitizer finds nothing). A table another program made stays as it was.
source "$(dirname "$0")/../lib.sh"
in_netns "$@"

holder_start ts0
holder_start wg0
nft -f - <<'NFT' || bail "cannot load the foreign table"
table ip foreign {
	chain input {
		type filter hook input priority 10; policy accept;
		tcp dport 9100 accept
	}
}
NFT
foreign=$(nft list table ip foreign)
export APT_CONFIG=$WORK/apt.conf
conf() { printf 'Reconcile-After-Upgrade { Watch-Debounce "50ms"; %s };\n' "$*" >"$APT_CONFIG"; }
conf 'Watch-Repair-Limit "2";'

"$RAU" --run-dir "$RUN_DIR" --state-dir "$STATE_DIR" watch >"$WORK/watch.out" 2>&1 &
WATCHER=$!
for _ in $(seq 100); do grep -q "watch: watching" "$WORK/watch.out" && break; sleep 0.05; done
check "it starts with no systemd and says what it watches (nothing yet)" \
	grep -q "watch: watching 0 interface(s)" "$WORK/watch.out"

# rules loaded after the watcher started: its baseline follows them
nft -f - <<'NFT' || bail "cannot load the rules"
table inet filter {
	set vpn { type iface_index; elements = { "ts0", "wg0" } }
	chain forward {
		type filter hook forward priority 0; policy drop;
		iif "ts0" oif "wg0" accept
		iif @vpn counter accept
	}
}
table ip other {
	chain c {
		iif "wg0" accept
	}
}
NFT
snapshot_refs() { jq '.references | length' "$RUN_DIR/snapshot.json" 2>/dev/null; }
for _ in $(seq 100); do [ "$(snapshot_refs)" = 5 ] && break; sleep 0.05; done
check "the rules loaded after it started became the baseline (snapshot with their 5 references)" \
	test "$(snapshot_refs)" = 5
# a set's elements list in hash order: an element deleted and added again may move
listing() { nft -j -a list table inet filter | jq -c '.nftables[1:] | walk(if type == "object" and has("elem") then .elem |= sort else . end)'; }
before=$(listing)

records() { grep -c . "$STATE_DIR/history.jsonl" 2>/dev/null || echo 0; }
stale() { "$RAU" --run-dir "$RUN_DIR" --state-dir "$STATE_DIR" check --json | jq '.stale | length'; }
# until_fresh N: wait (polling every 20 ms, at most 5 s) for the Nth record
until_record() { for _ in $(seq 250); do [ "$(records)" -ge "$1" ] && return 0; sleep 0.02; done; return 1; }

n=$(records)
t0=$(date +%s.%N)
holder_restart ts0
until_record $((n + 1))
secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
rec=$(tail -n1 "$STATE_DIR/history.jsonl")
check "ts0 re-created: repaired ($secs s after the restart began), via watch, rebound in place, read back exact" \
	test "$(jq -c '[.via, .outcome, .actions[0].repair, .actions[0].rebind.exact, .cause.event]' <<<"$rec")" = \
	'["watch","fixed","rebind",true,"link"]'
check "the record's window from the link event to verified fresh is under a second" \
	jq -e '.finished - .cause.first_event < 1' <<<"$rec"
after=$(listing)
[ "$after" = "$before" ] || printf "# %s\n" "before: $before" "after:  $after"
check "the table lists as it did before ts0 was re-created (handles included; elements sorted)" test "$after" = "$before"
check "nothing is stale" test "$(stale)" -eq 0

# the rate limit: 2 repairs of the table per minute
holder_restart wg0
until_record $((n + 2))
n=$(records)
holder_restart ts0
until_record $((n + 1))
rec=$(tail -n1 "$STATE_DIR/history.jsonl")
check "a third re-creation within the minute: not repaired, the record says why" \
	test "$(jq -c '[.outcome, (.not_repaired[0].why | test("Watch-Repair-Limit"))]' <<<"$rec")" = '["stale",true]'
check "and the journal line says it backs off" grep -q "Watch-Repair-Limit (2 per table per minute) reached" "$WORK/watch.out"
check "the references are left stale meanwhile" test "$(stale)" -gt 0
# meanwhile another table is still repaired: wg0 re-created, ip other rebound, inet filter left (said once already)
n=$(records)
holder_restart wg0
until_record $((n + 1))
rec=$(tail -n1 "$STATE_DIR/history.jsonl")
check "during the back-off another table is still repaired (ip other rebound), the held one left with why" \
	test "$(jq -c '[[.actions[] | select(.rebind.state == "rebound") | .table], ([.not_repaired[].table] | unique)]' <<<"$rec")" = \
	'[["other"],["filter"]]'
check "and ip other is fresh, only inet filter stale" \
	test "$("$RAU" --run-dir "$RUN_DIR" --state-dir "$STATE_DIR" check --json | jq -c '[.stale[].table] | unique')" = '["filter"]'
n=$(records)
conf 'Watch-Repair-Limit "0";'
kill -HUP "$WATCHER"
until_record $((n + 1))
check "SIGHUP with the limit lifted: the look it makes repairs" \
	test "$(tail -n1 "$STATE_DIR/history.jsonl" | jq -c '[.outcome, .cause.event]') $(stale)" = '["fixed","reload"] 0'

# Watch "false": idle
conf 'Watch "false";'
kill -HUP "$WATCHER"
for _ in $(seq 100); do grep -q "watch: idle" "$WORK/watch.out" && break; sleep 0.05; done
n=$(records)
holder_restart ts0
sleep 1
check "Watch \"false\": idle, the re-created ts0 is left to the hooks" test "$(records) $(stale)" = "$n 2"

kill -TERM "$WATCHER"
wait "$WATCHER"
rc=$?
check "SIGTERM: exit 0" test "$rc" -eq 0
check "nothing leaked or overflowed (sanitizers, where built with them)" \
	test "$(grep -cE 'LeakSanitizer|AddressSanitizer|runtime error' "$WORK/watch.out")" -eq 0
check "the foreign table is intact" test "$(nft list table ip foreign)" = "$foreign"
sed 's/^/# /' "$WORK/watch.out"
jq -c '[.via, .outcome, .cause]' "$STATE_DIR/history.jsonl" | sed "s/^/# /"
tap_done

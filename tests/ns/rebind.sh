#!/bin/bash
# Rebind in place, on the real kernel: every form the checker finds, rewritten in one transaction to the
# re-created interface's index, and nothing else. The proof is the kernel's own listing: after the repair,
# `nft -j -a list ruleset` (handles included) is exactly what it was before the interface was re-created.
# Also what is not rebound: an index nothing names (no snapshot, no history), an interface that is gone.
source "$(dirname "$0")/../lib.sh"
in_netns "$@"

ip link add eth-out type veth peer name eth-peer
holder_start ts0
holder_start wg0
# Every by-index form, with counters, comments, and another anonymous set in the same rule.
nft -f - <<'NFT' || bail "cannot load the rules"
table inet filter {
	set vpn { type iface_index; elements = { "ts0", "lo" } }
	set ranges { type iface_index; flags interval; elements = { "ts0", "wg0" } }
	set pairs { type iface_index . ipv4_addr; flags interval; elements = { "ts0" . 10.0.0.0/8, "wg0" . 10.1.0.0/16 } }
	set plain_pairs { typeof meta iif . ip saddr; elements = { "ts0" . 100.64.0.1 } }
	map egress { type ipv4_addr : iface_index; elements = { 100.64.0.9 : "ts0", 100.64.0.10 : "wg0" } }
	map peers { type iface_index . ipv4_addr : verdict; elements = { "ts0" . 100.64.0.1 : accept } }
	chain forward {
		type filter hook forward priority 0; policy drop;
		ct state established,related accept
		iif "ts0" oif "eth-out" counter accept comment "vpn to uplink"
		iif "eth-out" oif "ts0" ct state established counter accept
		oif != "ts0" counter
		iif { "ts0", "wg0" } tcp dport { 22, 443 } accept
		iif vmap { "ts0" : accept, "wg0" : jump wg }
		iif . ip saddr { "ts0" . 100.64.0.0/10 } accept
		ip saddr . oif { 100.64.0.1 . "ts0" } accept
		fib daddr oif "ts0" accept
		iif @vpn accept
		iifname "ts0" accept
	}
	chain wg {
		oif "ts0" drop
	}
}
table netdev edge {
	chain in {
		type filter hook ingress device "eth-out" priority 0;
		ip daddr 192.0.2.1 dup to "ts0"
		fwd to "ts0"
	}
}
table ip other {
	chain c { iif "wg0" accept; }
}
NFT
# Sets list their elements in key order, and a new index sorts elsewhere: elements are compared as sets.
listing() {
	nft -j -a list ruleset | jq -S 'walk(if type == "object" then
		(if (.elem | type) == "array" then .elem |= sort_by(tojson) else . end) |
		(if (.set | type) == "array" then .set |= sort_by(tojson) else . end) else . end)'
}
listing >"$WORK/fresh.json"
rau -q snapshot
old=$(ifindex ts0)
holder_restart ts0
new=$(ifindex ts0)
rau check --json >"$WORK/stale.json"
n_stale=$(jq '.stale | length' "$WORK/stale.json")
check "ts0 re-created ($old -> $new): $n_stale stale references, every form" \
	test "$(jq -c '[.stale[].key] | unique' "$WORK/stale.json")" = '["dup","element","fib","fwd","iif","oif"]'

rau >"$WORK/out" 2>"$WORK/err"
rc=$?
sed 's/^/# /' "$WORK/out" "$WORK/err"
check "reconcile exits 0" test $rc -eq 0
check "table inet filter: every reference rebound in place, read back exact" \
	grep -qx "table inet filter: rebound $((n_stale - 2)) stale reference(s) in place, read back exact (systemd is not running here)" "$WORK/out"
check "table netdev edge: fwd and dup rebound" \
	grep -qx "table netdev edge: rebound 2 stale reference(s) in place, read back exact (systemd is not running here)" "$WORK/out"
check "verified" grep -qx "Verified: no stale interface references remain." "$WORK/out"
listing >"$WORK/repaired.json"
check "the ruleset lists exactly as before ts0 was re-created: same rules, handles, sets, elements, comments" \
	cmp -s "$WORK/fresh.json" "$WORK/repaired.json"
cmp -s "$WORK/fresh.json" "$WORK/repaired.json" ||
	diff "$WORK/fresh.json" "$WORK/repaired.json" | head -40 | sed 's/^/# /'
check "check is clean" rau -q check
rec=$(jq -c '.actions | map({table, repair, state, rebind: .rebind.rebound, exact: .rebind.exact})' "$STATE_DIR/last-run.json")
check "the record says which repair each table got, and that it read back exact" test "$rec" = \
	"[{\"table\":\"filter\",\"repair\":\"rebind\",\"state\":\"rebound\",\"rebind\":$((n_stale - 2)),\"exact\":true},{\"table\":\"edge\",\"repair\":\"rebind\",\"state\":\"rebound\",\"rebind\":2,\"exact\":true}]"

# A second restart: the snapshot the repair left behind is the new baseline.
holder_restart ts0
rau -q
check "a second restart is repaired from the verified state the first one recorded" rau -q check

# What is not rebound: an interface that is gone, and an index nothing names.
holder_stop ts0
rau >"$WORK/out" 2>&1
rc=$?
sed 's/^/# /' "$WORK/out"
check "ts0 gone: exit 1, nothing rebound" test "$rc $(grep -c 'rebound' "$WORK/out")" = "1 0"
check "the report says why and what to run" \
	grep -q "Not repaired: table inet filter: rule handle [0-9]* in chain forward: the interface it was does not exist now; once ts0 exists again, run 'reconcile-after-upgrade'" "$WORK/out"
holder_start ts0
rau -q
check "once ts0 is back, the next run repairs it" rau -q check

holder_restart ts0
rm -f "$RUN_DIR/snapshot.json" "$STATE_DIR/links.json"
rau >"$WORK/out" 2>&1
rc=$?
check "no snapshot, no history: exit 1, nothing rebound" test "$rc $(grep -c 'rebound' "$WORK/out")" = "1 0"
check "the report says the interface is not known, and to reload what loads the table" \
	grep -q "which interface the index was is not known (no snapshot or link history names it); reload what loads table inet filter" "$WORK/out"
tap_done

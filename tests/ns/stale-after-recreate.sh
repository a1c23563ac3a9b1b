#!/bin/bash
# The incident in a namespace: the daemon re-creates tailscale0, the rules keep the old index.
source "$(dirname "$0")/../lib.sh"
in_netns "$@"

ip link add eth-out type veth peer name eth-peer
holder_start tailscale0
nft -f "$(dirname "$0")/rules-tailscale.nft" || bail "cannot load rules"
old=$(ifindex tailscale0)

rau -q snapshot
check "snapshot written, mode 0600" test "$(stat -c %a "$RUN_DIR/snapshot.json")" = 600
rau -q check
check "fresh rules: check exits 0" test $? -eq 0

holder_restart tailscale0
new=$(ifindex tailscale0)
check "tailscale0 came back with a new index ($old -> $new)" test "$old" != "$new"

rau check --json >"$WORK/out.json"
rc=$?
check "stale rules: check exits 1" test $rc -eq 1
# iif in rule, oif in rule, concatenation, named set element, map data
check "five stale references" test "$(jq '.stale | length' "$WORK/out.json")" -eq 5
check "every one holds the old index, was tailscale0, now the new index" \
	test "$(jq --argjson o "$old" --argjson n "$new" \
		'[.stale[] | select(.ifindex == $o and .was == "tailscale0" and .now == $n)] | length' "$WORK/out.json")" -eq 5
check "rule references carry family, table, chain, handle and key" \
	test "$(jq '[.stale[] | select(.chain == "forward" and .family == "inet" and .table == "filter" and (.handle > 0) and (.key == "iif" or .key == "oif"))] | length' "$WORK/out.json")" -eq 3
check "set and map elements name their set" \
	test "$(jq -c '[.stale[] | select(.key == "element") | .set] | sort' "$WORK/out.json")" = '["egress","vpn_ifaces"]'
pid=${HOLDER_PID[tailscale0]}
check "the re-created interface and its owner are reported" \
	test "$(jq -r --argjson o "$old" --argjson n "$new" '.interfaces[] | select(.name == "tailscale0" and .change == "recreated" and .old_ifindex == $o and .new_ifindex == $n) | "\(.owner.pid) \(.owner.command) \(.kind)"' "$WORK/out.json")" = "$pid tun-holder tun"
check "eth-out (unchanged) is not reported" test "$(jq '[.interfaces[] | select(.name == "eth-out")] | length' "$WORK/out.json")" -eq 0

rau check >"$WORK/out.txt"
check "human report names the interface, the rule and what to do" \
	grep -q "tailscale0 was re-created: index $old -> $new" "$WORK/out.txt"
check "human report lists the rule by table, chain and handle" \
	grep -qE "table inet filter, chain forward, rule handle [0-9]+: iif $old \(was tailscale0, now index $new\)" "$WORK/out.txt"
check "human report says which table to reload" grep -q "table inet filter: restart the unit" "$WORK/out.txt"

nft flush ruleset
nft -f "$(dirname "$0")/rules-tailscale.nft"
rau -q check
check "after reloading the rules: exit 0" test $? -eq 0
check "and no stale entry in JSON" test "$(rau check --json | jq '.stale | length')" -eq 0

tap_done

#!/bin/bash
# Names are data. Chains named `counter`, `my chain` and `x;delete table inet other` (nft's JSON input takes any
# name) hold stale leftovers beside their fresh twins, as a script that adds rules without flushing leaves them:
# exactly the leftovers are deleted, by handle, in one netlink transaction; every chain, every fresh rule and the
# unrelated table stay. Nothing is ever formatted into nft command text.
source "$(dirname "$0")/../lib.sh"
in_netns "$@"

holder_start ts0
chains=("counter" "my chain" "x;delete table inet other")
rules() {
	local json='{"nftables":[' c
	for c in "${chains[@]}"; do
		json+=$(jq -cn --arg c "$c" '{add: {rule: {family: "inet", table: "filter", chain: $c, expr: [
			{match: {op: "==", left: {meta: {key: "iif"}}, right: "ts0"}}, {counter: null}, {accept: null}]}}}'),
	done
	json+=$(jq -cn '{add: {element: {family: "inet", table: "filter", name: "vpn", elem: ["ts0"]}}}')
	echo "$json]}"
}
{
	echo '{"nftables":[{"add":{"table":{"family":"inet","name":"filter"}}},'
	echo '{"add":{"set":{"family":"inet","table":"filter","name":"vpn","type":"iface_index"}}},'
	for c in "${chains[@]}"; do jq -cn --arg c "$c" '{add: {chain: {family: "inet", table: "filter", name: $c}}}'; echo ,; done
	echo '{"add":{"table":{"family":"inet","name":"other"}}},'
	echo '{"add":{"chain":{"family":"inet","table":"other","name":"c"}}},'
	echo '{"add":{"rule":{"family":"inet","table":"other","chain":"c","expr":[{"accept":null}]}}}]}'
} | nft -j -f - || bail "cannot create the chains"
rules | nft -j -f - || bail "cannot load the rules"
rau -q snapshot
holder_restart ts0
# the script runs again without flushing: each rule and the element once more, now with the new index
rules | nft -j -f - || bail "cannot load the rules again"
nft -j -a list ruleset >"$WORK/before.json"
check "three stale rules and one stale element, each beside its fresh twin" \
	test "$(rau check --json | jq '.stale | length')" -eq 4

rau >"$WORK/out" 2>&1
rc=$?
sed 's/^/# /' "$WORK/out"
check "exit 0, verified" test "$rc $(grep -c 'Verified: no stale interface references remain.' "$WORK/out")" = "0 1"
for c in "${chains[@]}"; do
	n=$(nft -j list table inet filter | jq --arg c "$c" '[.nftables[].rule // empty | select(.chain == $c)] | length')
	check "chain '$c' still exists, with exactly its fresh rule" test "$n" -eq 1
done
check "the fresh element alone is left in the set" \
	test "$(nft -j list set inet filter vpn | jq -c '.nftables[].set.elem // empty')" = '["ts0"]'
check "the unrelated table and its rule are intact" \
	test "$(nft -j list table inet other | jq '[.nftables[].rule // empty] | length')" -eq 1
after=$(nft -j -a list ruleset | jq -c '[.nftables[].rule // empty | select(.table == "filter") | .handle] | sort')
want=$(jq -c '[.nftables[].rule // empty | select(.table == "filter") | select(.expr[0].match.right == "ts0") | .handle] | sort' "$WORK/before.json")
check "exactly the leftovers were deleted: the fresh rules keep their handles" test "$after" = "$want"
check "the record lists each deleted leftover and why" \
	test "$(jq -c '[.leftovers[] | select(.pruned) | .why] | group_by(.) | map([.[0], length])' "$STATE_DIR/last-run.json")" = \
	'[["a fresh copy of this element exists in the set",1],["a fresh copy of this rule exists in the chain",3]]'
tap_done

#!/bin/bash
# The inventory of device-bound hooks (issue 14, its first part): every netdev base chain, inet's ingress chain and
# every flowtable, with the devices the kernel lists, read over netlink into the snapshot, on whatever kernel this
# runs (the host's here; 6.1 and 6.12 in the kernel tier, tests/kernel/ns-tier.sh). The oracle is nft's own
# listing, read at each step: loaded, ts0 gone, ts0 back. Each kernel does something else to them then (6.1
# deletes a chain whose only device went, 6.12 keeps it with none, 6.16 and later re-attach by name): each snapshot
# must say what the kernel says, except for what the kernel took out, which it keeps as it was (naming the device
# taken out) until a run puts it back. The hook, priority, policy and the rules of each chain are kept to
# re-create it from.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../kernel/nft-devices.sh"
in_netns "$@"

holder_start ts0
holder_start ts1
nft -f - <<'NFT' || bail "cannot load the chains"
table netdev rau_p1 { chain c { type filter hook ingress device "ts0" priority 0; policy drop; counter; iif "ts0" accept; }; }
table netdev rau_p2 { chain c { type filter hook ingress devices = { ts0, ts1 } priority -10; counter; }; }
table inet rau_p3 { chain c { type filter hook ingress device "ts0" priority 5; counter; }; }
table ip plain { chain input { type filter hook input priority 0; counter; }; }
NFT
# a flowtable where the kernel has them (the host's 6.18 here has no CONFIG_NF_FLOW_TABLE)
flowtables=1
nft -f - <<<'table inet rau_p4 { flowtable f { hook ingress priority 0; devices = { ts0, ts1 }; }; }' 2>/dev/null || flowtables=0

# nft's listing: absent | none | A,B (sorted) for chain c of FAMILY TABLE, or the flowtable
listed() {
	local devs
	if [ "$1" = flowtable ]; then devs=$(nft_devices flowtable inet rau_p4 f); else devs=$(nft_devices chain "$1" "$2" c); fi
	echo "${devs:-none}"
}
# the snapshot's: the same shape
snapped() {
	local sel
	if [ "$1" = flowtable ]; then sel='.flowtable == "f" and .table == "rau_p4"'; else sel=".chain == \"c\" and .table == \"$2\" and .family == \"$1\""; fi
	jq -r "[.device_hooks[] | select($sel)] | if length == 0 then \"absent\" else (.[0].devices | sort | if length == 0 then \"none\" else join(\",\") end) end" \
		"$RUN_DIR/snapshot.json"
}
# the devices the kernel took out that the snapshot names for it: "" or A,B
detached() {
	local sel
	if [ "$1" = flowtable ]; then sel='.flowtable == "f" and .table == "rau_p4"'; else sel=".chain == \"c\" and .table == \"$2\" and .family == \"$1\""; fi
	jq -r "[.device_hooks[] | select($sel)] | .[0].detached // [] | sort | join(\",\")" "$RUN_DIR/snapshot.json"
}
cases=("netdev rau_p1" "netdev rau_p2" "inet rau_p3")
[ $flowtables = 1 ] && cases+=("flowtable")
declare -A LOADED
# Each snapshot lists what nft lists; but a hook the kernel took ts0 out of (or deleted) is kept as the first
# snapshot had it, naming ts0 as detached, until a run puts it back: else the loss would become the baseline.
compare() { # PHASE
	local c bad= now
	rau -q snapshot
	for c in "${cases[@]}"; do
		# shellcheck disable=SC2086 # c is "FAMILY TABLE"
		now=$(listed $c)
		[ -n "${LOADED[$c]:-}" ] || LOADED[$c]=$now
		if [ "$now" = "${LOADED[$c]}" ]; then
			# shellcheck disable=SC2086
			[ "$now" = "$(snapped $c)" ] && [ -z "$(detached $c)" ] || bad+=" [$c: nft $now, snapshot $(snapped $c)]"
		else
			# shellcheck disable=SC2086
			[ "$(snapped $c)" = "${LOADED[$c]}" ] && [ "$(detached $c)" = ts0 ] ||
				bad+=" [$c: nft $now, snapshot $(snapped $c) detached $(detached $c), loaded ${LOADED[$c]}]"
		fi
	done
	check "$1: the snapshot lists the devices nft lists, or keeps what the kernel took out, for ${#cases[@]} hooks${bad}" test -z "$bad"
	LISTED=$(for c in "${cases[@]}"; do printf '%s=%s ' "${c// /:}" "$(listed $c)"; done)
	echo "# $1 ($(uname -r)): $LISTED"
}
compare "loaded"
check "loaded: each as loaded (ts0; ts0,ts1; ts0$([ $flowtables = 1 ] && echo '; ts0,ts1'))" \
	test "$(for c in "${cases[@]}"; do snapped $c; done | paste -sd';' -)" = "ts0;ts0,ts1;ts0$([ $flowtables = 1 ] && echo ';ts0,ts1')"
check "the base chain on a hook without devices (ip input) is not one of them" \
	test "$(jq '[.device_hooks[] | select(.table == "plain")] | length' "$RUN_DIR/snapshot.json")" -eq 0
check "what re-creates a chain is kept: hook, priority, policy, type, its 2 rules" \
	test "$(jq -c '.device_hooks[] | select(.table == "rau_p1") | [.hook, .priority, .policy, .type, .rules]' "$RUN_DIR/snapshot.json")" = \
	'["ingress",0,"drop","filter",2]'
check "priorities as loaded (-10, 5)" \
	test "$(jq -c '[.device_hooks[] | select(.table == "rau_p2" or .table == "rau_p3") | .priority]' "$RUN_DIR/snapshot.json")" = '[-10,5]'
check "snapshot --json counts them" test "$(rau snapshot --json | jq .device_hooks)" -eq "$((${#cases[@]}))"
if [ $flowtables = 0 ]; then
	check "this kernel has no flowtables: loading one is refused, and none is listed" \
		test "$(jq '[.device_hooks[] | select(.flowtable)] | length' "$RUN_DIR/snapshot.json")" -eq 0
fi

holder_stop ts0
compare "ts0 gone"
holder_start ts0
compare "ts0 back"
check "the unrelated table is there throughout" sh -c 'nft list table ip plain >/dev/null'
tap_done

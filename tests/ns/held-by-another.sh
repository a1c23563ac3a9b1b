#!/bin/bash
# A stale index another interface has taken: the kernel may give a deleted interface's index to a new one
# (here asked for explicitly, `ip link add … index N`). A rule loaded for ts0 then silently matches that other
# interface. The snapshot saw the rule name ts0: stale, reported with was and now_held_by, and rebound to ts0's
# new index. A rule loaded for the new holder after it took the index is not touched.
source "$(dirname "$0")/../lib.sh"
in_netns "$@"

holder_start ts0
n=$(ifindex ts0)
nft -f - <<'NFT' || bail "cannot load the rules"
table inet filter {
	chain forward {
		type filter hook forward priority 0; policy drop;
		iif "ts0" accept
	}
}
NFT
rau -q snapshot
holder_stop ts0
ip link add name imp index "$n" type veth peer name imp-peer || bail "cannot create an interface with index $n"
holder_start ts0
check "imp has ts0's old index $n; ts0 came back as $(ifindex ts0)" test "$(ifindex imp)" = "$n"
# loaded now, for imp: it means imp
nft add rule inet filter forward iif imp counter
rau check --json >"$WORK/out.json"
rc=$?
jq -c '.stale' "$WORK/out.json" | sed 's/^/# /'
check "check exits 1: one stale reference" test "$rc $(jq '.stale | length' "$WORK/out.json")" = "1 1"
check "it was ts0, now ts0 is $(ifindex ts0), and index $n is imp's" \
	test "$(jq -c '.stale[0] | [.ifindex, .was, .now, .now_held_by]' "$WORK/out.json")" = "[$n,\"ts0\",$(ifindex ts0),\"imp\"]"
check "the human report says the rule matches the wrong interface" \
	grep -q "index $n is imp's now: the rule matches the wrong interface" <(rau check)
rau >"$WORK/out" 2>&1
rc=$?
sed 's/^/# /' "$WORK/out"
check "reconcile: rebound, exit 0" test "$rc $(grep -c 'rebound 1 stale reference(s) in place, read back exact' "$WORK/out")" = "0 1"
check "the rule names ts0 again, and the rule for imp still names imp" \
	test "$(nft list chain inet filter forward | grep -oE 'iif "[a-z0-9]+"' | paste -sd' ')" = 'iif "ts0" iif "imp"'
tap_done

#!/bin/bash
# iifname/oifname match the name as a string: a re-created interface never makes them stale.
source "$(dirname "$0")/../lib.sh"
in_netns "$@"

holder_start tailscale0
nft -f - <<'NFT' || bail "cannot load rules"
table inet filter {
	chain forward {
		type filter hook forward priority 0; policy drop;
		iifname "tailscale0" oifname "eth*" accept
		iifname { "tailscale0", "wg0" } accept
		fib daddr oif != 0 accept
	}
}
NFT
rau -q snapshot
holder_restart tailscale0

rau check --json >"$WORK/out.json"
check "check exits 0" test $? -eq 0
check "no stale reference" test "$(jq '.stale | length' "$WORK/out.json")" -eq 0
check "the by-name references were seen" test "$(jq '.by_name_references' "$WORK/out.json")" -ge 2
check "the re-created interface is still reported" \
	test "$(jq -r '.interfaces[0] | "\(.name) \(.change) \(.stale_references)"' "$WORK/out.json")" = "tailscale0 recreated 0"
rau check >"$WORK/out.txt"
check "human report says nothing is stale" grep -q "No stale interface references" "$WORK/out.txt"

tap_done

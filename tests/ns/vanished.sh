#!/bin/bash
# The daemon stopped and did not come back: the interface is gone, not re-created.
source "$(dirname "$0")/../lib.sh"
in_netns "$@"

ip link add eth-out type veth peer name eth-peer
holder_start tailscale0
nft -f "$(dirname "$0")/rules-tailscale.nft" || bail "cannot load rules"
old=$(ifindex tailscale0)
rau -q snapshot
holder_stop tailscale0

rau check --json >"$WORK/out.json"
check "check exits 1" test $? -eq 1
check "tailscale0 is reported as vanished with its last owner" \
	test "$(jq -r '.interfaces[] | select(.name == "tailscale0") | "\(.change) \(.old_ifindex) \(.new_ifindex) \(.owner.command)"' "$WORK/out.json")" = "vanished $old null tun-holder"
check "its references are stale with now = null" \
	test "$(jq '[.stale[] | select(.was == "tailscale0" and .now == null)] | length' "$WORK/out.json")" -eq 5
rau check >"$WORK/out.txt"
check "human report says it is gone" grep -q "tailscale0 (index $old) is gone" "$WORK/out.txt"

tap_done

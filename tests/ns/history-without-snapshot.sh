#!/bin/bash
# The post-mortem at 11:10: nobody took a snapshot, but an earlier run saw tailscale0 with its old index.
source "$(dirname "$0")/../lib.sh"
in_netns "$@"

ip link add eth-out type veth peer name eth-peer
holder_start tailscale0
nft -f "$(dirname "$0")/rules-tailscale.nft" || bail "cannot load rules"
old=$(ifindex tailscale0)

rau -q check
check "an earlier check run (fresh, exit 0)" test $? -eq 0
check "it kept a link history, mode 0600" test "$(stat -c %a "$STATE_DIR/links.json")" = 600
check "no snapshot exists" test ! -e "$RUN_DIR/snapshot.json"

holder_restart tailscale0
holder_restart tailscale0 # restarted twice, as at 09:13
new=$(ifindex tailscale0)

rau check --json >"$WORK/out.json"
check "check exits 1" test $? -eq 1
check "was is known from the history alone" \
	test "$(jq --argjson o "$old" '[.stale[] | select(.ifindex == $o and .was == "tailscale0")] | length' "$WORK/out.json")" -eq 5
check "now is the current index" test "$(jq '[.stale[].now] | unique | .[0]' "$WORK/out.json")" -eq "$new"
check "the JSON says no snapshot was used" test "$(jq '.snapshot' "$WORK/out.json")" = false

rm -rf "$STATE_DIR"
rau check --json >"$WORK/out2.json"
check "without history either: still stale (exit 1)" test $? -eq 1
check "and was is null" test "$(jq '[.stale[] | select(.was == null and .now == null)] | length' "$WORK/out2.json")" -eq 5

tap_done

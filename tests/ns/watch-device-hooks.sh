#!/bin/bash
# The watcher and device-bound hooks (issue 14), with no systemd and no D-Bus, on whatever kernel this runs (the
# host's here; Debian's 6.1 and 6.12 in the kernel tier). It runs as its unit's sandbox has it: no TUN device and no
# namespace of its own for the kernel probe (here /dev/net/tun is /dev/null in its mount namespace), and no answer
# kept from an earlier probe. ts0 re-created under a netdev chain on ts0 alone (with an anonymous set), a netdev
# chain on ts0 and ts1, and an iif "ts0" rule: one look, on the link event, puts back what this kernel lost (6.1:
# the chain re-created, the other deleted and made again; 6.12: ts0 added back; 6.16 and later: nothing, the kernel
# hooked ts0 again), rebinds the rule, and a packet on the new ts0 is counted. A table that has nothing to do with
# it stays as it was.
source "$(dirname "$0")/../lib.sh"
in_netns "$@"
INJECT=$top_builddir/tests/tun-inject

TUN_HOLDER=$INJECT holder_start ts0
holder_start ts1
nft -f - <<'NFT' || bail "cannot load the rules"
table netdev rau_p1 { chain c { type filter hook ingress device "ts0" priority 0; policy accept; counter; udp dport { 4002, 4003 } counter; }; }
table netdev rau_p2 { chain c { type filter hook ingress devices = { ts0, ts1 } priority -10; counter; }; }
table inet filter { chain forward { type filter hook forward priority 0; policy drop; iif "ts0" accept; }; }
table ip foreign { chain input { type filter hook input priority 10; policy accept; tcp dport 9100 accept; }; }
NFT
foreign=$(nft list table ip foreign)
listing() { tables_listing netdev:rau_p1 netdev:rau_p2 inet:filter; }
p1_packets() { chain_packets netdev rau_p1 c; }
inject_ts0() { inject ts0; }
records() { grep -c . "$STATE_DIR/history.jsonl" 2>/dev/null || echo 0; }
export APT_CONFIG=$WORK/apt.conf
printf 'Reconcile-After-Upgrade { Watch-Debounce "50ms"; };\n' >"$APT_CONFIG"
before=$(listing)

unshare -m sh -c 'mount --bind /dev/null /dev/net/tun && exec "$@"' sh \
	"$RAU" --run-dir "$RUN_DIR" --state-dir "$STATE_DIR" watch >"$WORK/watch.out" 2>&1 &
WATCHER=$!
for _ in $(seq 100); do grep -q "watch: watching" "$WORK/watch.out" && break; sleep 0.05; done
for _ in $(seq 100); do [ -s "$RUN_DIR/snapshot.json" ] && break; sleep 0.05; done
check "started with no TUN device: no probe answer kept" test ! -e "$RUN_DIR/kernel-hooks.json"
check "its baseline holds both device-bound chains" \
	test "$(jq -c '[.device_hooks[] | [.table, (.devices | sort)]] | sort' "$RUN_DIR/snapshot.json")" = '[["rau_p1",["ts0"]],["rau_p2",["ts0","ts1"]]]'

case $(uname -r) in
6.1.*) expect='[["rau_p1","re-create","fixed"],["rau_p2","replace","fixed"]]' ;;
6.12.*) expect='[["rau_p1","add-device","fixed"],["rau_p2","add-device","fixed"]]' ;;
*) expect='[]' ;;
esac
n=$(records)
TUN_HOLDER=$INJECT holder_restart ts0
for _ in $(seq 250); do [ "$(records)" -gt "$n" ] && break; sleep 0.02; done
rec=$(tail -n1 "$STATE_DIR/history.jsonl")
check "ts0 re-created: one record, via watch, fixed, on the link event" \
	test "$(($(records) - n)) $(jq -c '[.via, .outcome, .cause.event]' <<<"$rec")" = '1 ["watch","fixed","link"]'
got=$(jq -c '[.hooks[]? | [.table, .action, .result]] | sort' <<<"$rec")
check "what it did to the hooks on $(uname -r): $got" test "$got" = "$expect"
check "and the iif rule rebound in place" test "$(jq -c '[.actions[] | [.table, .repair]]' <<<"$rec")" = '[["filter","rebind"]]'
window=$(jq '.finished - .cause.first_event' <<<"$rec")
check "within a second of the link event ($window s)" awk -v w="$window" 'BEGIN { exit !(w > 0 && w < 1) }'
after=$(listing)
check "every table lists as before (handles and counters aside)" test "$after" = "$before"
[ "$after" = "$before" ] || diff <(echo "$before" | jq .) <(echo "$after" | jq .) | head -30 | sed 's/^/# /'
packets=$(p1_packets)
inject_ts0
check "attached: a packet on the new ts0 is counted ($packets -> $(p1_packets))" test "$(p1_packets)" -gt "$packets"
check "check is clean" "$RAU" --run-dir "$RUN_DIR" --state-dir "$STATE_DIR" -q check

kill -TERM "$WATCHER"
wait "$WATCHER"
check "SIGTERM: exit 0" test $? -eq 0
check "nothing leaked or overflowed (sanitizers, where built with them)" \
	test "$(grep -cE 'LeakSanitizer|AddressSanitizer|runtime error' "$WORK/watch.out")" -eq 0
check "the foreign table is intact" test "$(nft list table ip foreign)" = "$foreign"
sed 's/^/# /' "$WORK/watch.out"
tap_done

#!/bin/bash
# Device-bound hooks after their device is re-created (issue 14): diagnosis, repair, verification, on whatever
# kernel this runs (the host's here; Debian's 6.1 and 6.12 in the kernel tier, tests/kernel/ns-tier.sh). Each kernel
# does something else (6.1 deletes a chain whose only device goes, 6.12 keeps it with none, neither puts a device
# back in a list; 6.16 and later re-attach by name): the product's probe must say which, check must report exactly
# what is lost (nothing where the kernel re-attaches), one run must restore it (the same rules in the same order,
# handles and counters aside), and a packet arriving on the new ts0 must be counted again: attached, not only
# listed. A netdev egress chain is lost and put back like an ingress one. Rules that look up anonymous sets (a set, an interval set, a verdict map), which a kernel that deletes
# the chain deletes with it, come back with their sets. A table that has nothing to do with it is there throughout.
source "$(dirname "$0")/../lib.sh"
in_netns "$@"
INJECT=$top_builddir/tests/tun-inject
# valid DEF < JSON: against the documented schema (tests/schema/output.schema.json)
valid() { "$top_srcdir/tests/schema/validate" "$1" >/dev/null; }

TUN_HOLDER=$INJECT holder_start ts0
holder_start ts1
nft -f - <<'NFT' || bail "cannot load the chains"
table netdev rau_p1 { chain c { type filter hook ingress device "ts0" priority 0; policy accept; counter; meta l4proto udp counter; udp dport 4001 counter accept; udp dport { 4002, 4003 } counter; udp dport vmap { 53 : accept, 4004 : drop }; }; }
table netdev rau_p2 { chain c { type filter hook ingress devices = { ts0, ts1 } priority -10; counter; ip saddr { 192.0.2.0/24, 198.51.100.7 } counter; }; }
table inet rau_p3 { chain c { type filter hook ingress device "ts0" priority 5; counter; ip daddr 192.0.2.1 counter; }; }
table netdev rau_p5 { chain out { type filter hook egress device "ts0" priority 0; counter; ip daddr { 192.0.2.9, 192.0.2.10 } counter; }; }
table ip plain { chain input { type filter hook input priority 0; counter; }; }
NFT
# a flowtable, with the rule that offloads to it, where the kernel has them (the host's 6.18 has no CONFIG_NF_FLOW_TABLE)
flowtables=true
nft -f - <<<'table inet rau_p4 { flowtable f { hook ingress priority 0; devices = { ts0, ts1 }; }; chain fw { type filter hook forward priority 0; counter; meta l4proto udp counter flow add @f; }; }' \
	2>/dev/null || flowtables=false
tables=(netdev:rau_p1 netdev:rau_p2 inet:rau_p3 netdev:rau_p5 ip:plain)
$flowtables && tables+=(inet:rau_p4)

listing() { tables_listing "${tables[@]}"; }
p1_packets() { chain_packets netdev rau_p1 c; }
inject_ts0() { inject ts0; }
lost() { # what check reports: table key now missing back, sorted
	rau check --json | jq -c '[.stale[] | select(.key == "hook" or .key == "flowtable") |
		[.table, .key, (if .now == null then "deleted" else (.now | join(",")) end), (.missing | join(",")), (.back | join(","))]] | sort'
}

before=$(listing)
rau -q snapshot
inject_ts0
packets0=$(p1_packets)
check "loaded: a packet on ts0 is counted by the ingress chain ($packets0)" test "$packets0" -ge 1

TUN_HOLDER=$INJECT holder_restart ts0
release=$(uname -r)
case $release in
6.1.*) class=delete expect_probe='{"chain_kept":false,"reattaches":false,"chain_add_device":false,"flowtables":true}' ;;
6.12.*) class=keep expect_probe='{"chain_kept":true,"reattaches":false,"chain_add_device":true,"flowtables":true}' ;;
*) class=reattach expect_probe="{\"chain_kept\":true,\"reattaches\":true,\"chain_add_device\":true,\"flowtables\":$flowtables}" ;;
esac
probe=$(rau check --json | jq -c .kernel_hooks)
check "the probe's answer on $release ($class): $probe" test "$probe" = "$expect_probe"
check "the answer is kept for the boot" test "$(jq -c .kernel "$RUN_DIR/kernel-hooks.json")" = "$expect_probe"

inject_ts0
case $class in
delete) expect_lost='[["rau_p1","hook","deleted","ts0","ts0"],["rau_p2","hook","ts1","ts0","ts0"],["rau_p3","hook","deleted","ts0","ts0"],["rau_p5","hook","deleted","ts0","ts0"]'
	expect_actions='[["rau_p1","re-create","fixed"],["rau_p2","replace","fixed"],["rau_p3","re-create","fixed"],["rau_p5","re-create","fixed"]' ;;
keep) expect_lost='[["rau_p1","hook","","ts0","ts0"],["rau_p2","hook","ts1","ts0","ts0"],["rau_p3","hook","","ts0","ts0"],["rau_p5","hook","","ts0","ts0"]'
	expect_actions='[["rau_p1","add-device","fixed"],["rau_p2","add-device","fixed"],["rau_p3","add-device","fixed"],["rau_p5","add-device","fixed"]' ;;
reattach) expect_lost='[' expect_actions='[' ;;
esac
if [ $class != reattach ] && $flowtables; then
	expect_lost+=',["rau_p4","flowtable","ts1","ts0","ts0"]'
	expect_actions+=',["rau_p4","add-device","fixed"]'
fi
expect_lost=$(jq -c sort <<<"${expect_lost/#[,/[}]") expect_actions=$(jq -c sort <<<"${expect_actions/#[,/[}]")

if [ $class = reattach ]; then
	check "ts0 re-created: this kernel hooked it again by itself (a packet counted: $(p1_packets) > $packets0)" \
		test "$(p1_packets)" -gt "$packets0"
	rau check >/dev/null
	check "check reports nothing on a kernel that re-attaches (exit 0)" test $? -eq 0
else
	check "ts0 re-created: the kernel did not hook it again (no packet counted)" test "$(p1_packets)" -le "$packets0"
	rau check >"$WORK/check.out"
	rc=$?
	check "check says so: exit 1" test $rc -eq 1
	check "check names each lost hook, exactly: $(lost)" test "$(lost)" = "$expect_lost"
	check "in words: the chains that lost ts0" grep -q "device-bound hooks lost their device" "$WORK/check.out"
	check "check --json is valid against the documented schema" valid check < <(rau check --json)
	sed 's/^/# /' "$WORK/check.out"
	# apt's Pre-Invoke takes a new snapshot before the next dpkg run: the loss must not become the baseline
	rau -q snapshot
	rau -q snapshot
	check "two new snapshots later, check still names each lost hook" test "$(lost)" = "$expect_lost"

	rau >"$WORK/run.out" 2>&1
	rc=$?
	sed 's/^/# /' "$WORK/run.out"
	check "one run repairs and verifies: exit 0" test $rc -eq 0
	check "the record says what was done to each: $(jq -c '[.hooks[] | [.table, .action, .result]] | sort' "$STATE_DIR/last-run.json")" \
		test "$(jq -c '[.hooks[] | [.table, .action, .result]] | sort' "$STATE_DIR/last-run.json")" = "$expect_actions"
	check "the record's outcome: fixed" test "$(jq -r .outcome "$STATE_DIR/last-run.json")" = fixed
	check "the record is valid against the documented schema" valid record <"$STATE_DIR/last-run.json"
	rau check >/dev/null
	check "a second check is clean (exit 0)" test $? -eq 0
	packets1=$(p1_packets)
	inject_ts0
	check "attached again: a packet on the new ts0 is counted ($packets1 -> $(p1_packets))" test "$(p1_packets)" -gt "$packets1"
fi
after=$(listing)
check "every table lists as before: the same rules in the same order (handles and counters aside)" test "$after" = "$before"
[ "$after" = "$before" ] || diff <(echo "$before" | jq .) <(echo "$after" | jq .) | head -40 | sed 's/^/# /'
if $flowtables; then
	check "the flowtable is still referenced by its flow add rule" \
		test "$(nft -j list chain inet rau_p4 fw | jq -r '.nftables[] | .rule? | select(.) | .expr[] | .flow? | select(.) | .flowtable')" = "@f"
fi

# a device that stays gone: reported as gone, left as it is, repaired once it is back
if [ $class != reattach ]; then
	rau -q snapshot
	holder_stop ts1
	check "ts1 gone: reported as gone ($(lost))" grep -q '"rau_p2","hook","ts0","ts1",""' <<<"$(lost)"
	rau --dry-run --json >"$WORK/dry.json"
	check "a dry run says it would leave it: $(jq -c '[.hooks[] | select(.table == "rau_p2") | .action]' "$WORK/dry.json")" \
		test "$(jq -c '[.hooks[] | select(.table == "rau_p2") | .action]' "$WORK/dry.json")" = '["leave"]'
	check "the run's --json is valid against the documented schema" valid run <"$WORK/dry.json"
	rau >"$WORK/run2.out" 2>&1
	rc=$?
	check "a run leaves it, saying why (exit 1)" \
		sh -c "[ $rc -eq 1 ] && grep -q 'rau_p2, chain c: left as it is: its devices are gone' '$WORK/run2.out'"
	holder_start ts1
	rau >/dev/null 2>&1
	check "ts1 back: the next run hooks it again (exit $?)" test "$(lost)" = "[]"
fi
# Where the probe cannot run: the watcher's sandbox (PrivateDevices=, RestrictNamespaces=) has no TUN device and no
# namespace of its own. Here: /dev/net/tun is /dev/null in a mount namespace of the run's own, and no answer is kept.
# A kernel that refuses a device added to a chain (6.1) has the chain deleted and made again in the same
# transaction, as when the probe says so.
if [ $class != reattach ]; then
	rm -f "$RUN_DIR/kernel-hooks.json"
	rau_no_tun() { unshare -m sh -c 'mount --bind /dev/null /dev/net/tun && exec "$@"' sh "$RAU" --run-dir "$RUN_DIR" --state-dir "$STATE_DIR" "$@"; }
	rau_no_tun -q snapshot
	TUN_HOLDER=$INJECT holder_restart ts0
	check "no TUN device: the kernel's behaviour is not known ($(rau_no_tun check --json | jq -c .kernel_hooks))" \
		test "$(rau_no_tun check --json | jq -c .kernel_hooks)" = null
	case $class in
	delete) expect_actions='[["rau_p1","re-create","fixed"],["rau_p2","replace","fixed"],["rau_p3","re-create","fixed"],["rau_p5","re-create","fixed"]' ;;
	keep) expect_actions='[["rau_p1","add-device","fixed"],["rau_p2","add-device","fixed"],["rau_p3","add-device","fixed"],["rau_p5","add-device","fixed"]' ;;
	esac
	$flowtables && expect_actions+=',["rau_p4","add-device","fixed"]'
	expect_actions=$(jq -c sort <<<"$expect_actions]")
	rau_no_tun >"$WORK/run3.out" 2>&1
	rc=$?
	sed 's/^/# /' "$WORK/run3.out"
	got=$(jq -c '[.hooks[] | [.table, .action, .result]] | sort' "$STATE_DIR/last-run.json")
	check "no TUN device: one run repairs and verifies (exit $rc): $got" \
		test "$rc $got" = "0 $expect_actions"
	check "no TUN device: every table lists as before" test "$(listing)" = "$before"
	check "no TUN device: nothing is left to report" test "$(lost)" = "[]"
fi
check "the unrelated table is there throughout" sh -c 'nft list table ip plain >/dev/null'
tap_done

#!/bin/bash
# Every --json output against its documented schema (tests/schema/output.schema.json, validated as JSON Schema
# 2020-12 by tests/schema/validate): check, snapshot, status, the reconcile run (nothing stale, dry run, fixed, a
# reference left stale), and the history's records, in the situations that produce each shape. A table named
# with a quote and a backslash runs through all of them (names that are not UTF-8: names-not-utf8.sh).
source "$(dirname "$0")/../lib.sh"
in_netns "$@"
V="$top_srcdir/tests/schema/validate"

holder_start ts0
holder_start wg0
nft -f - <<'NFT' || bail "cannot load the rules"
table inet filter {
	set vpn { type iface_index; elements = { "ts0", "wg0" } }
	chain forward {
		type filter hook forward priority 0; policy drop;
		iif "ts0" accept
		oif "wg0" accept
		iif @vpn counter
	}
}
NFT
odd='q"t\b'
jq -cn --arg t "$odd" '{nftables: [{add: {table: {family: "ip", name: $t}}}, {add: {chain: {family: "ip", table: $t, name: "c"}}},
	{add: {rule: {family: "ip", table: $t, chain: "c", expr: [{match: {op: "==", left: {meta: {key: "iif"}}, right: "ts0"}}, {accept: null}]}}}]}' |
	nft -j -f - 2>/dev/null || bail "cannot load the oddly named table"

valid() { # DEF DESCRIPTION COMMAND...: the command's stdout is valid against $defs/DEF
	local def=$1 what=$2 out err
	shift 2
	out=$("$@" 2>/dev/null)
	if err=$("$V" "$def" <<<"$out" 2>&1); then ok "$what: valid ($def)"; else not_ok "$what: $err"; fi
	LAST=$out
}
valid check "check --json, nothing stale" rau check --json
valid snapshot "snapshot --json" rau snapshot --json
valid status "status --json, fresh, no run yet" rau status --json
check "status --json says 0 stale now, no last run, no watcher (no systemd)" \
	test "$(jq -c '[.stale_now, .last_run, .watcher]' <<<"$LAST")" = '[0,null,null]'
valid run "the run --json, nothing stale" rau --json
check "outcome nothing-stale, no record" test "$(jq -c '[.outcome, .record]' <<<"$LAST")" = '["nothing-stale",null]'

holder_restart ts0
valid check "check --json, stale (rules, a set element, the odd table)" rau check --json
check "the odd table's name is escaped, not lost" test "$(jq -r '[.stale[].table] | map(select(startswith("q"))) | .[0]' <<<"$LAST")" = 'q"t\x5cb'
valid status "status --json, stale" rau status --json
valid run "the run --json --dry-run" rau --json --dry-run
check "outcome dry-run, the plan per table, no record" \
	test "$(jq -c '[.outcome, (.actions | length), .record, .dry_run]' <<<"$LAST")" = '["dry-run",2,null,true]'
valid run "the run --json, fixed" rau --json
check "outcome fixed, with its record" test "$(jq -c '[.outcome, .record.outcome, .stale_left]' <<<"$LAST")" = '["fixed","fixed",0]'
valid status "status --json after the repair" rau status --json

holder_stop wg0
holder_restart ts0
valid run "the run --json, wg0 gone: its references are left, with why" rau --json
check "outcome stale, not_repaired names wg0's references" \
	test "$(jq -c '[.outcome, ([.not_repaired[].was] | unique)]' <<<"$LAST")" = '["stale",["wg0"]]'
valid status "status --json, the last repair refused" rau status --json
check "status says the trouble: refused" test "$(jq -r .last_trouble <<<"$LAST")" = refused
valid record-lines "history --json: every record" rau history --json
check "two records in the history (the dry run and the run with nothing stale record nothing)" test "$(rau history --json | grep -c .)" -eq 2
tap_done

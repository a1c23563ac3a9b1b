#!/bin/bash
# What a fleet's monitoring sees. `check --nagios` gives each of its exit codes in the situation that means it
# (fresh 0, stale 2, the last repair refused 1, the ruleset unreadable 3: the plugin run without privileges), one
# line that parses as the monitoring-plugin guidelines say (TEXT | 'label'=value[UOM];[warn];[crit];[min];[max]),
# and changes nothing. The textfile for node_exporter follows every run: promtool accepts it, the values are
# the run's, a table named with a quote and a backslash is escaped as the exposition format requires, and a run
# costs no temporary file left behind.
source "$(dirname "$0")/../lib.sh"
in_netns "$@"
PROMTOOL=${RAU_PROMTOOL:-$(command -v promtool || echo /var/cache/reconcile-after-upgrade-tests/promtool/usr/bin/promtool)}
[ -x "$PROMTOOL" ] || bail "no promtool (tests/install-deps takes it out of Debian's prometheus package)"

mkdir "$WORK/textfile"
export APT_CONFIG=$WORK/apt.conf
printf 'Reconcile-After-Upgrade::Metrics-Dir "%s";\n' "$WORK/textfile" >"$APT_CONFIG"
PROM=$WORK/textfile/reconcile_after_upgrade.prom

holder_start ts0
holder_start wg0
nft -f - <<'NFT' || bail "cannot load the rules"
table inet filter {
	chain forward {
		type filter hook forward priority 0; policy drop;
		iif "ts0" accept
		oif "wg0" accept
	}
}
NFT
jq -cn --arg t 'q"t\b' '{nftables: [{add: {table: {family: "ip", name: $t}}}, {add: {chain: {family: "ip", table: $t, name: "c"}}},
	{add: {rule: {family: "ip", table: $t, chain: "c", expr: [{match: {op: "==", left: {meta: {key: "iif"}}, right: "ts0"}}, {accept: null}]}}}]}' |
	nft -j -f - || bail "cannot load the oddly named table"

# One plugin line: SERVICE STATUS - text | perfdata, each 'label'=value[UOM];[warn];[crit];[min];[max]
GRAMMAR="^RECONCILE-AFTER-UPGRADE (OK|WARNING|CRITICAL|UNKNOWN) - [^|]+( \\| ('[^'=]+'=-?[0-9.]+(s|%|B|KB|MB|TB|c)?(;[0-9.:~@-]*){0,4})( '[^'=]+'=-?[0-9.]+(s|%|B|KB|MB|TB|c)?(;[0-9.:~@-]*){0,4})*)?$"
nagios() { # EXPECTED-CODE SITUATION [COMMAND PREFIX...]
	local want=$1 what=$2 out rc
	shift 2
	local before after
	before=$(nft -j -a list ruleset; ls -la --time-style=full-iso "$RUN_DIR" "$STATE_DIR" 2>/dev/null)
	out=$("$@" "$RAU" --run-dir "$RUN_DIR" --state-dir "$STATE_DIR" check --nagios 2>/dev/null)
	rc=$?
	after=$(nft -j -a list ruleset; ls -la --time-style=full-iso "$RUN_DIR" "$STATE_DIR" 2>/dev/null)
	echo "# $out"
	check "$what: exit $rc, the line parses as the plugin guidelines say" \
		test "$rc $(wc -l <<<"$out") $(grep -cE "$GRAMMAR" <<<"$out")" = "$want 1 1"
	check "$what: nothing changed (ruleset, state files)" test "$before" = "$after"
	LINE=$out
}
rau -q snapshot
nagios 0 "fresh: OK"
check "OK: 3 references checked, 0 stale in the performance data" grep -q "'stale'=0;;0;0 'interfaces_recreated'=0;;;0 'references'=3;;;0" <<<"$LINE"

holder_restart ts0
nagios 2 "ts0 re-created: CRITICAL"
check "CRITICAL names the count, the table and the interface" \
	grep -q "CRITICAL - 2 stale interface reference(s), first in table inet filter (ts0 re-created) | 'stale'=2;;0;0 'interfaces_recreated'=1;;;0" <<<"$LINE"

# the textfile after a check: the stale references by table, the odd name escaped
rau -q check >/dev/null
"$PROMTOOL" check metrics <"$PROM" >"$WORK/promtool.out" 2>&1
check "promtool check metrics accepts the file ($(wc -l <"$PROM") lines)" test $? -eq 0
metric() { grep -E "^reconcile_after_upgrade_$1( |\\{)" "$PROM" | sed -n "${2:-1}p"; }
check "stale references by table, the table name with its quote and backslash escaped" \
	test "$(grep -c '^reconcile_after_upgrade_stale_references{family="ip",table="q\\"t\\\\x5cb"} 1$' "$PROM") $(grep -c '^reconcile_after_upgrade_stale_references{family="inet",table="filter"} 1$' "$PROM")" = "1 1"
check "interfaces re-created: 1; one check run, stale" \
	test "$(metric interfaces_recreated) | $(metric runs_total)" = 'reconcile_after_upgrade_interfaces_recreated 1 | reconcile_after_upgrade_runs_total{via="check",outcome="stale"} 1'
check "the file is world-readable (node_exporter's user reads it), nothing temporary left" \
	test "$(stat -c %a "$PROM") $(find "$WORK/textfile" -name '.*' -type f | wc -l)" = "644 0"

rau -q >/dev/null
check "after the repair: 0 stale in both tables, one rebind counted per table, the repair's time" \
	test "$(grep -c '^reconcile_after_upgrade_stale_references{.*} 0$' "$PROM") $(metric repairs_total) $(metric last_repair_success)" = \
	'2 reconcile_after_upgrade_repairs_total{kind="rebind",result="ok"} 2 reconcile_after_upgrade_last_repair_success 1'
check "the last repair took between 0 and 1 s; the last run and the last fresh verdict are now" \
	awk -v d="$(metric last_repair_duration_seconds | cut -d' ' -f2)" -v r="$(metric last_run_timestamp_seconds | cut -d' ' -f2)" \
		-v f="$(metric last_fresh_timestamp_seconds | cut -d' ' -f2)" -v now="$(date +%s)" \
		'BEGIN { exit !(d > 0 && d < 1 && now - r < 60 && r == f) }'
"$PROMTOOL" check metrics <"$PROM" >/dev/null 2>&1
check "promtool still accepts it" test $? -eq 0
nagios 0 "repaired: OK"

# the last repair refused: wg0 gone, its reference left; then deleted by hand
holder_stop wg0
holder_restart ts0
rau -q >/dev/null
check "with wg0 gone the run left its reference (last_repair_success 0)" test "$(metric last_repair_success)" = 'reconcile_after_upgrade_last_repair_success 0'
handle=$(nft -a list chain inet filter forward | sed -n 's/.*oif [0-9]* accept # handle \([0-9]*\)/\1/p')
nft delete rule inet filter forward handle "$handle"
nagios 1 "nothing stale now, but the last repair left a reference: WARNING"
check "WARNING says so" grep -q "WARNING - no stale references now, but the last repair left references it could not repair" <<<"$LINE"

# run without privileges, as a plugin runner's user would without sudo
chmod 755 "$WORK"
nagios 3 "without privileges: UNKNOWN" setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all
tap_done

#!/bin/bash
# The fleet's view, with Debian's real prometheus-node-exporter running in a booted container and this package
# installed from its .deb with nothing configured: node_exporter's /metrics (curl on loopback) serves our
# metrics with the run's values; when the rules go stale again the values change, and after the watcher's repair
# they change back (its run and its reload counted); a table named with a quote and a backslash comes out
# escaped as the exposition format requires; promtool accepts our file. A table another program made stays.
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${top_builddir:=$(cd "$here/../.." && pwd)/build}"
: "${top_srcdir:=$(cd "$here/../.." && pwd)}"
export RAU_CT_EXTRA_PACKAGES="prometheus-node-exporter curl ${RAU_CT_EXTRA_PACKAGES:-}"
source "$here/container.sh"
source "$here/postmortem-units.sh"
PROMTOOL=${RAU_PROMTOOL:-$(command -v promtool || echo /var/cache/reconcile-after-upgrade-tests/promtool/usr/bin/promtool)}

[ "$(id -u)" -eq 0 ] || ct_bail "the container tier needs root"
[ -x "$PROMTOOL" ] || ct_bail "no promtool (tests/install-deps takes it out of Debian's prometheus package)"
DEB=$("$top_srcdir/tests/system/build-deb" "$top_builddir/deb" | tail -n1) || ct_bail "could not build the .deb"
ct_rootfs_ensure || ct_bail "no rootfs"
ct_boot rau-metrics || ct_bail "container did not boot"

install_standin_tailscaled || ct_bail "could not install the stand-in tailscaled"
install_postmortem_units || ct_bail "could not install the post-mortem's units"
ct_exec systemctl enable --now tailscaled.service >/dev/null 2>&1
start_firewall_beside_foreign
ct_check "node_exporter is running (Debian's prometheus-node-exporter)" ct_exec systemctl is-active -q prometheus-node-exporter.service

ct_copy_in "$DEB" /var/tmp/reconcile-after-upgrade.deb
out=$(ct_exec apt-get install -y /var/tmp/reconcile-after-upgrade.deb 2>&1)
rc=$?
[ $rc -eq 0 ] || ct_diag "$out"
ct_check "the .deb installs (nothing configured)" test $rc -eq 0

# curl node_exporter's /metrics on loopback; our series only
scrape() { ct_exec curl -s --max-time 5 http://127.0.0.1:9100/metrics | grep '^reconcile_after_upgrade_'; }
# until_scrape PATTERN: node_exporter reads the textfile at each scrape; the run that writes it may still be on
until_scrape() { for _ in $(seq 60); do scrape | grep -qE "$1" && return 0; sleep 0.1; done; return 1; }
ct_check "after the watcher's first look: node_exporter serves our metrics, inet filter with 0 stale references" \
	until_scrape '^reconcile_after_upgrade_stale_references\{family="inet",table="filter"\} 0$'
ct_diag "$(scrape)"
ct_check "the build-info metric names the version" \
	grep -qx "reconcile_after_upgrade_build_info{version=\"$(dpkg-deb -f "$DEB" Version | sed 's/-[^-]*$//')\"} 1" <<<"$(scrape)"

# stale again, seen by check before anything repairs it: the watcher stopped for a moment
ct_exec systemctl stop reconcile-after-upgrade.service
ct_exec systemctl restart tailscaled.service
for _ in $(seq 100); do ct_exec ip link show tailscale0 >/dev/null 2>&1 && break; sleep 0.05; done
ct_exec reconcile-after-upgrade check >/dev/null
ct_check "stale again (check): the value changes to 2, one interface re-created, the check counted" \
	test "$(scrape | grep -cE '^reconcile_after_upgrade_(stale_references\{family="inet",table="filter"\} 2|interfaces_recreated 1|runs_total\{outcome="stale",via="check"\} 1)$')" -eq 3
ct_exec systemctl start reconcile-after-upgrade.service
ct_check "the watcher repairs at its start: back to 0, its run and the reload counted, the last repair a success" \
	until_scrape '^reconcile_after_upgrade_repairs_total\{kind="reload",result="ok"\} 1$'
s=$(scrape)
ct_diag "$s"
ct_check "  (stale 0, runs_total via watch fixed 1, last_repair_success 1)" \
	test "$(grep -cE '^reconcile_after_upgrade_(stale_references\{family="inet",table="filter"\} 0|runs_total\{outcome="fixed",via="watch"\} 1|last_repair_success 1)$' <<<"$s")" -eq 3

# a table named with a quote and a backslash, holding tailscale0 by index; then tailscale0 re-created by hand
ct_exec systemctl stop reconcile-after-upgrade.service
jq -cn --arg t 'q"t\b' '{nftables: [{add: {table: {family: "ip", name: $t}}}, {add: {chain: {family: "ip", table: $t, name: "c"}}},
	{add: {rule: {family: "ip", table: $t, chain: "c", expr: [{match: {op: "==", left: {meta: {key: "iif"}}, right: "tailscale0"}}, {accept: null}]}}}]}' |
	ct_exec nft -j -f - || ct_bail "cannot load the oddly named table"
ct_exec reconcile-after-upgrade -q snapshot
ct_exec systemctl restart tailscaled.service
for _ in $(seq 100); do ct_exec ip link show tailscale0 >/dev/null 2>&1 && break; sleep 0.05; done
ct_exec reconcile-after-upgrade check >/dev/null
s=$(scrape)
grep -q 'table="q' <<<"$s" || ct_diag "$s"
ct_check "the odd table's name in node_exporter's output: the quote and the backslash escaped" \
	grep -qxF 'reconcile_after_upgrade_stale_references{family="ip",table="q\"t\\x5cb"} 1' <<<"$s"
ct_exec cat /var/lib/prometheus/node-exporter/reconcile_after_upgrade.prom >"$CT_TMP/ours.prom"
"$PROMTOOL" check metrics <"$CT_TMP/ours.prom" >"$CT_TMP/promtool.out" 2>&1
rc=$?
[ $rc -eq 0 ] || ct_diag "$(cat "$CT_TMP/promtool.out")"
ct_check "promtool check metrics accepts our file" test $rc -eq 0
ct_check "node_exporter read it without complaint (no textfile error series)" \
	test "$(ct_exec curl -s http://127.0.0.1:9100/metrics | grep -c '^node_textfile_scrape_error 0$')" -eq 1
ct_exec systemctl start reconcile-after-upgrade.service
ct_check "repaired: both tables back to 0" \
	until_scrape '^reconcile_after_upgrade_stale_references\{family="ip",table="q\\"t\\\\x5cb"\} 0$'
ct_check "the foreign table is intact" foreign_intact
ct_poweroff
ct_tap_done

#!/bin/bash
# Repair under real systemd. The post-mortem's units: tailscaled re-creates tailscale0 on restart;
# nftables-local.service (oneshot, Wants= only) loads `iif "tailscale0"` rules with policy drop. Its script is
# proven safe (it deletes and re-creates only its own table), so it is reloaded; with Repair "rebind", Never-Touch,
# policy-rc.d or a failing reload the references are rebound in place instead. A configuration that flushes the
# whole ruleset beside another daemon's table is never reloaded, Debian's stock nftables.service included, and
# neither are rules loaded by hand. Also --dry-run, report mode, the record, the time budget, two runs at once,
# stale twins, shutdown. A table some other program made for itself sits beside the firewall throughout: every
# run must leave it alone.
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${top_builddir:=$(cd "$here/../.." && pwd)/build}"
source "$here/container.sh"
source "$here/postmortem-units.sh"

[ "$(id -u)" -eq 0 ] || ct_bail "the container tier needs root"
ct_rootfs_ensure || ct_bail "no rootfs"
ct_boot rau-reconcile || ct_bail "container did not boot"

ct_copy_in "$top_builddir/reconcile-after-upgrade" /usr/local/sbin/reconcile-after-upgrade
install_standin_tailscaled || ct_bail "could not install the stand-in tailscaled"
install_postmortem_units || ct_bail "could not install the post-mortem's units"
ct_exec systemctl enable --now tailscaled.service >/dev/null 2>&1
for _ in $(seq 100); do ct_exec ip link show tailscale0 >/dev/null 2>&1 && break; sleep 0.05; done
ct_exec systemctl enable --now nftables-local.service >/dev/null 2>&1
ct_check "nftables-local.service loaded the rules" ct_exec nft list chain inet filter forward
# Another program's table, loaded by hand: nothing here creates it, every run must leave it as it is.
ct_exec nft -f - <<'NFT'
table ip foreign {
	chain input {
		type filter hook input priority 10; policy accept;
		tcp dport 9100 counter accept
	}
}
NFT
foreign=$(ct_exec nft list table ip foreign)
foreign_saved=$foreign

restart_daemon() {
	ct_exec systemctl restart tailscaled.service
	for _ in $(seq 100); do ct_exec ip link show tailscale0 >/dev/null 2>&1 && break; sleep 0.05; done
}
stale_refs() { ct_exec reconcile-after-upgrade check --json | jq '.stale | length'; }
stale_rules() { ct_exec nft list chain inet filter forward | grep -cE 'iif [0-9]+|oif [0-9]+'; }
reloads() { nftables_local_reloads; }
foreign_intact() { test "$(ct_exec nft list table ip foreign 2>&1 | sed 's/packets [0-9]* bytes [0-9]*//')" = \
	"$(sed 's/packets [0-9]* bytes [0-9]*//' <<<"$foreign")"; }
summary() { ct_exec cat /var/lib/reconcile-after-upgrade/last-run.json; }
# another table beside the foreign one: tailscaled's own (ts-daemon), or the one nftables.service loads
intact_with() { ct_exec nft list table "$@" >/dev/null && foreign_intact; }
MID=1081ccdfd4e44403bdfd47027dcb408a

ct_exec reconcile-after-upgrade -q snapshot
restart_daemon
ct_check "after the daemon restart the rules are stale (as in the incident)" test "$(stale_rules)" -eq 2

# --dry-run: the plan and the proof, nothing touched
n0=$(reloads)
out=$(ct_exec reconcile-after-upgrade --dry-run)
rc=$?
ct_diag "$out"
ct_check "--dry-run exits 1 (stale remains)" test $rc -eq 1
ct_check "--dry-run names the unit found through Wants= with no configuration, and proves its reload safe" \
	grep -qx "table inet filter: would reload nftables-local.service (Wants=tailscaled.service and it runs nft; its configuration creates table inet filter and deletes nothing it does not create)" <<<"$out"
ct_check "--dry-run changed nothing, recorded nothing" \
	test "$(stale_rules) $(reloads) $(ct_exec sh -c 'ls /var/lib/reconcile-after-upgrade/history.jsonl 2>/dev/null | wc -l')" = "2 $n0 0"

# the real run: the proven-safe reload
out=$(ct_exec reconcile-after-upgrade)
rc=$?
ct_diag "$out"
ct_check "reconcile exits 0" test $rc -eq 0
ct_check "it reloaded nftables-local.service" grep -qE "^table inet filter: reloaded nftables-local.service in [0-9.]+ s " <<<"$out"
ct_check "and verified" grep -q "Verified: no stale interface references remain." <<<"$out"
ct_check "the ruleset is fresh" test "$(stale_rules)" -eq 0
ct_check "the rules name tailscale0 again" ct_exec sh -c 'nft list chain inet filter forward | grep -q "iif \"tailscale0\""'
ct_check "the unit ran once more" test "$(reloads)" -eq $((n0 + 1))
ct_check "the foreign table is intact" foreign_intact

# the record: journal (with its catalog entry), history, summary
ct_exec journalctl --flush >/dev/null 2>&1
j=$(ct_exec journalctl -q -o json MESSAGE_ID=$MID | tail -1)
ct_diag "$(echo "$j" | jq -r .MESSAGE)"
ct_check "one journal entry with the MESSAGE_ID" test "$(ct_exec journalctl -q -o cat MESSAGE_ID=$MID | wc -l)" -eq 1
ct_check "its fields: outcome fixed, 2 found, 0 left, at info priority" \
	test "$(echo "$j" | jq -r '"\(.RAU_OUTCOME) \(.RAU_STALE_FOUND) \(.RAU_STALE_LEFT) \(.PRIORITY)"')" = "fixed 2 0 6"
ct_check "its fields: the unit reloaded, the repair, the daemon restarted, the interface old -> new" \
	test "$(echo "$j" | jq -r '"\(.RAU_UNITS_RELOADED)|\(.RAU_REPAIRS)|\(.RAU_RESTARTED_UNITS)|\(.RAU_INTERFACES)"' | sed -E 's/[0-9]+->[0-9]+/N->M/')" = "nftables-local.service:reloaded|table inet filter: reloaded nftables-local.service|tailscaled.service|tailscale0 N->M"
ct_copy_in "$here/../../etc/reconcile-after-upgrade.catalog" /usr/lib/systemd/catalog/reconcile-after-upgrade.catalog
ct_exec journalctl --update-catalog
ct_check "the catalog explains the entry" \
	ct_exec sh -c "journalctl -q -x MESSAGE_ID=$MID | grep -q 'nftables rules held the index of a re-created interface'"
ct_check "one history record, mode 0600" \
	test "$(ct_exec sh -c 'wc -l </var/lib/reconcile-after-upgrade/history.jsonl; stat -c %a /var/lib/reconcile-after-upgrade/history.jsonl' | tr '\n' ' ')" = "1 600 "
ct_check "the summary says which repair the table got, why, the job's result and how long it took" \
	test "$(summary | jq -r '.actions[0] | "\(.unit) \(.repair) \(.state) \(.reload.job_result) \(.reload.seconds > 0) \(.why)"')" = \
	"nftables-local.service reload reloaded done true its configuration creates table inet filter and deletes nothing it does not create"
out=$(ct_exec reconcile-after-upgrade history)
ct_diag "$out"
ct_check "history shows the run as a table" grep -qE "fixed +2 +0  table inet filter: reloaded nftables-local.service" <<<"$out"

# Repair "rebind": the unit is not touched, the references are rewritten in place
restart_daemon
n0=$(reloads)
ct_exec sh -c 'echo "Reconcile-After-Upgrade::Repair \"rebind\";" >/etc/apt/apt.conf.d/99rau-test'
out=$(ct_exec reconcile-after-upgrade)
rc=$?
ct_diag "$out"
ct_check "Repair rebind: exit 0, rebound in place, read back exact" \
	test "$rc $(grep -cx 'table inet filter: rebound 2 stale reference(s) in place, read back exact (Reconcile-After-Upgrade::Repair is "rebind")' <<<"$out")" = "0 1"
ct_check "Repair rebind: fresh, and nftables-local.service was not run" test "$(stale_rules) $(reloads)" = "0 $n0"
ct_check "the foreign table is intact" foreign_intact

# report mode: what would be done, nothing done
restart_daemon
ct_exec sh -c 'echo "Reconcile-After-Upgrade::Mode \"report\";" >/etc/apt/apt.conf.d/99rau-test'
out=$(ct_exec reconcile-after-upgrade)
rc=$?
ct_check "report mode: exit 1, says what it would reload" \
	test "$rc $(grep -c 'would reload nftables-local.service' <<<"$out")" = "1 1"
ct_check "report mode: nothing reloaded, nothing rebound" test "$(stale_rules)" -eq 2
ct_check "report mode: the record says what would have been" \
	test "$(summary | jq -r '"\(.outcome) \(.actions[0].state) \(.actions[0].unit)"')" = "stale would-reload nftables-local.service"

# never touch: the unit is not reloaded; the table is rebound instead
n0=$(reloads)
ct_exec sh -c 'echo "Reconcile-After-Upgrade::Never-Touch { \"nftables-local.service\"; };" >/etc/apt/apt.conf.d/99rau-test'
out=$(ct_exec reconcile-after-upgrade)
rc=$?
ct_check "never-touch: exit 0, rebound instead, and the run says why" \
	test "$rc $(grep -c 'rebound 2 stale reference(s) in place, read back exact (nftables-local.service is in Reconcile-After-Upgrade::Never-Touch)' <<<"$out")" = "0 1"
ct_check "never-touch: the unit was not run" test "$(stale_rules) $(reloads)" = "0 $n0"
ct_exec rm -f /etc/apt/apt.conf.d/99rau-test

# policy-rc.d forbids restarting the unit: rebound instead
restart_daemon
ct_exec sh -c 'printf "#!/bin/sh\nexit 101\n" >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d'
out=$(ct_exec reconcile-after-upgrade)
rc=$?
ct_check "policy-rc.d 101: exit 0, not reloaded, rebound, and said" \
	test "$rc $(grep -c '(policy-rc.d forbids restarting nftables-local.service)' <<<"$out") $(stale_rules) $(reloads)" = "0 1 0 $n0"
ct_exec rm -f /usr/sbin/policy-rc.d

# a reload that fails: the table is rebound instead, and the record says both
restart_daemon
ct_exec touch /etc/nftables-local.fail
out=$(ct_exec reconcile-after-upgrade)
rc=$?
ct_diag "$out"
ct_check "failing reload: exit 0, the failure said, rebound instead" \
	test "$rc $(grep -c 'table inet filter: reloading nftables-local.service failed: failed; rebound 2 stale reference(s) in place, read back exact (rebound instead)' <<<"$out")" = "0 1"
ct_check "failing reload: fresh" test "$(stale_rules)" -eq 0
ct_check "failing reload: the record says both (reload failed, rebound, outcome fixed)" \
	test "$(summary | jq -r '"\(.outcome) \(.actions[0].reload.state) \(.actions[0].reload.job_result) \(.actions[0].state) \(.actions[0].rebind.rebound)"')" = "fixed failed failed rebound 2"
ct_exec rm -f /etc/nftables-local.fail
ct_check "the foreign table is intact" foreign_intact

# under a hook, the time budget bounds the run: a reload that hangs costs apt at most the budget, and one line
restart_daemon
ct_exec touch /etc/nftables-local.slow
ct_exec sh -c 'echo "Reconcile-After-Upgrade::Time-Budget \"1\";" >/etc/apt/apt.conf.d/60budget'
t0=$(date +%s.%N)
out=$(ct_exec reconcile-after-upgrade --hook=apt 2>&1)
rc=$?
secs=$(ct_secs "$t0" "$(date +%s.%N)")
ct_diag "hook with a 1 s budget and a 4 s reload: exit $rc after $secs s:" "$out"
ct_check "time budget: exit 0 within the budget (plus start-up), one line that says so" \
	test "$rc $(wc -l <<<"$out") $(awk -v s="$secs" 'BEGIN { print (s < 2.5) }')" = "0 1 1"
ct_check "the line names the key and what to do" \
	test "$out" = "reconcile-after-upgrade: gave up after 1 s (Reconcile-After-Upgrade::Time-Budget); run 'reconcile-after-upgrade' by hand."
ct_exec rm -f /etc/nftables-local.slow /etc/apt/apt.conf.d/60budget
# the reload the hook started goes on without it: let it finish before the next test
for _ in $(seq 100); do
	[ -z "$(ct_exec systemctl list-jobs --no-legend nftables-local.service)" ] &&
		[ "$(ct_exec systemctl is-active nftables-local.service)" != activating ] && break
	sleep 0.1
done
restart_daemon

# two runs at once: one reload
n0=$(reloads)
ct_exec sh -c 'reconcile-after-upgrade >/var/tmp/a.out 2>&1 & reconcile-after-upgrade >/var/tmp/b.out 2>&1 & wait'
ct_diag "$(ct_exec cat /var/tmp/a.out /var/tmp/b.out)"
ct_check "two runs at once: one reload" test "$(reloads)" -eq $((n0 + 1))
ct_check "and the other found nothing stale" \
	test "$(ct_exec cat /var/tmp/a.out /var/tmp/b.out | grep -c 'No stale interface references.')" -eq 1
ct_check "the ruleset is fresh" test "$(stale_rules)" -eq 0

# stale twins: a script that adds rules and never flushes leaves, after its reload, each stale rule beside its
# fresh copy. With pruning off the leftovers are named and stay (exit 1); on, they are deleted by handle.
ct_exec sh -c 'cat >/etc/nftables-local.sh' <<'SCRIPT'
#!/bin/sh
set -e
nft add table inet filter
nft add chain inet filter forward '{ type filter hook forward priority 0; policy drop; }'
nft add rule inet filter forward iif "tailscale0" accept
nft add rule inet filter forward oif "tailscale0" ct state established,related counter accept
nft add set inet filter vpn_ifaces '{ type iface_index; }'
nft add element inet filter vpn_ifaces '{ "tailscale0" }'
nft add map inet filter peer_verdict '{ type iface_index . ipv4_addr : verdict; }'
nft add element inet filter peer_verdict '{ "tailscale0" . 100.64.0.1 : accept }'
SCRIPT
ct_exec nft delete table inet filter
ct_exec systemctl restart nftables-local.service
ct_exec reconcile-after-upgrade -q snapshot
restart_daemon
ct_exec sh -c 'echo "Reconcile-After-Upgrade::Prune-Stale-Twins \"false\";" >/etc/apt/apt.conf.d/99rau-test'
out=$(ct_exec reconcile-after-upgrade)
rc=$?
ct_diag "$out"
ct_check "pruning off: reloaded, then exit 1" \
	test "$rc $(grep -c '^table inet filter: reloaded nftables-local.service' <<<"$out")" = "1 1"
ct_check "pruning off: both leftover rules named, not deleted" \
	test "$(grep -c 'Not deleting stale leftover table inet filter: rule handle [0-9]* in chain forward (its fresh twin exists)' <<<"$out") $(stale_rules)" = "2 2"
ct_check "pruning off: the leftover set and map elements named, not deleted" \
	test "$(grep -cE 'Not deleting stale leftover table inet filter: element holding index [0-9]+ \(was tailscale0\) in set (vpn_ifaces|peer_verdict)' <<<"$out") $(stale_refs)" = "2 4"
ct_exec rm -f /etc/apt/apt.conf.d/99rau-test
# the same incident again, from a clean start, with pruning on (the default)
ct_exec nft delete table inet filter
ct_exec systemctl restart nftables-local.service
restart_daemon
out=$(ct_exec reconcile-after-upgrade)
rc=$?
ct_diag "$out"
ct_check "pruning on: exit 0, verified" test "$rc $(grep -c 'Verified: no stale' <<<"$out")" = "0 1"
ct_check "the two stale leftover rules were deleted" \
	test "$(grep -c 'Deleted stale leftover table inet filter: rule handle' <<<"$out") $(stale_rules)" = "2 0"
ct_check "the stale set and map elements were deleted, in the same transaction; nothing stale is left" \
	test "$(grep -c 'Deleted stale leftover table inet filter: element' <<<"$out") $(stale_refs)" = "2 0"
ct_check "the fresh elements are there exactly once" \
	test "$(ct_exec nft list table inet filter | grep -cE '"tailscale0"( . 100.64.0.1 : accept)? }')" -eq 2
ct_check "the fresh rules are there exactly once" \
	test "$(ct_exec nft list chain inet filter forward | grep -c 'tailscale0')" -eq 2
ct_check "the record says which rules and elements were pruned and why" \
	test "$(summary | jq -c '[.leftovers[] | select(.pruned) | .why] | group_by(.) | map([.[0], length])')" = \
	'[["a fresh copy of this element exists in the set",2],["a fresh copy of this rule exists in the chain",2]]'
ct_check "the foreign table is intact" foreign_intact

# The firewall's script starts with "flush ruleset", and tailscaled has made a table of its own: reloading it
# would wipe that table (and the foreign one). Not reloaded: rebound in place.
ct_exec sed -i 's/^set -e$/set -e\nnft flush ruleset/' /etc/nftables-local.sh
ct_exec nft -f - <<'NFT'
table ip ts-daemon {
	chain ts-input {
		type filter hook input priority 0;
	}
}
NFT
restart_daemon
n0=$(reloads)
out=$(ct_exec reconcile-after-upgrade --dry-run)
ct_diag "$out"
ct_check "--dry-run: would rebind, because the reload would flush tables it does not create, which it names" \
	grep -qx "table inet filter: would rebind 4 stale reference(s) in place (not reloading nftables-local.service: reloading it flushes the whole ruleset and would delete table ip foreign, table ip ts-daemon, which it does not create)" <<<"$out"
out=$(ct_exec reconcile-after-upgrade)
rc=$?
ct_diag "$out"
ct_check "flushing script: exit 0, rebound in place, the unit not run" \
	test "$rc $(stale_rules) $(reloads) $(grep -c '^table inet filter: rebound 4 stale reference(s) in place' <<<"$out")" = "0 0 $n0 1"
ct_check "tailscaled's table and the foreign table are intact" intact_with ip ts-daemon
ct_check "the record says why the reload was refused" \
	test "$(summary | jq -r '.actions[0] | "\(.repair): \(.why)"')" = "rebind: not reloading nftables-local.service: reloading it flushes the whole ruleset and would delete table ip foreign, table ip ts-daemon, which it does not create"

# Repair "reload" refuses it too; only Allow-Flush makes it reload, and then the loss is reported.
restart_daemon
ct_exec sh -c 'echo "Reconcile-After-Upgrade::Repair \"reload\";" >/etc/apt/apt.conf.d/99rau-test'
out=$(ct_exec reconcile-after-upgrade --dry-run)
ct_check "Repair reload: the unsafe reload is still refused" grep -q '^table inet filter: would rebind 4 stale reference(s) in place (not reloading nftables-local.service: reloading it flushes' <<<"$out"
ct_exec sh -c 'echo "Reconcile-After-Upgrade::Allow-Flush \"true\";" >>/etc/apt/apt.conf.d/99rau-test'
out=$(ct_exec reconcile-after-upgrade)
rc=$?
ct_diag "$out"
ct_check "Repair reload + Allow-Flush: reloaded, the rules fresh, but exit 1" \
	test "$rc $(stale_rules) $(grep -c '^table inet filter: reloaded nftables-local.service' <<<"$out")" = "1 0 1"
ct_check "and the tables the reload wiped are named" \
	test "$(grep -c 'Collateral loss: table ip \(foreign\|ts-daemon\) no longer exists after the reload' <<<"$out")" -eq 2
ct_check "outcome degraded, journal at warning priority, the loss in the record" \
	test "$(ct_exec journalctl -q -o json MESSAGE_ID=$MID | tail -1 | jq -r '"\(.PRIORITY) \(.RAU_OUTCOME)"') $(summary | jq -c '.collateral_loss')" = \
	'4 degraded [{"family":"ip","table":"foreign"},{"family":"ip","table":"ts-daemon"}]'
ct_exec rm -f /etc/apt/apt.conf.d/99rau-test
ct_exec nft -f - <<<"$foreign_saved"

# Debian's stock nftables.service, enabled. (a) Its nftables.conf defines the stale table and starts with "flush
# ruleset", beside tailscaled's table: rebound in place, nothing reloaded. (b) The rules were loaded by hand into a
# table of their own while nftables.service runs the stock configuration: rebound, every table intact.
ct_exec systemctl disable --now nftables-local.service >/dev/null 2>&1
ct_exec rm /etc/systemd/system/nftables-local.service
ct_exec systemctl daemon-reload
ct_exec nft delete table inet filter
ct_exec cp /etc/nftables.conf /var/tmp/nftables.conf.stock
ct_exec sh -c 'cat >/etc/nftables.conf' <<'NFT'
#!/usr/sbin/nft -f
flush ruleset
table inet filter {
	chain forward {
		type filter hook forward priority filter; policy drop;
		iif "tailscale0" accept
		oif "tailscale0" ct state established,related accept
	}
}
NFT
ct_exec systemctl enable --now nftables.service >/dev/null 2>&1
ct_exec nft -f - <<'NFT'
table ip ts-daemon {
	chain ts-input {
		type filter hook input priority 0;
	}
}
NFT
ct_exec nft -f - <<<"$foreign"
nft_reloads() { ct_exec journalctl -q -u nftables.service -o cat | grep -ciE "^(reloading|starting) "; }
ct_exec reconcile-after-upgrade -q snapshot
restart_daemon
n0=$(nft_reloads)
out=$(ct_exec reconcile-after-upgrade)
rc=$?
ct_diag "$out"
ct_check "stock nftables.service, flushing config with the stale table: exit 0, rebound, not reloaded" \
	test "$rc $(stale_rules) $(nft_reloads) $(grep -c 'not reloading nftables.service: reloading it flushes the whole ruleset and would delete table ip ts-daemon, table ip foreign' <<<"$out")" = "0 0 $n0 1"
ct_check "tailscaled's table and the foreign table are intact" intact_with ip ts-daemon

ct_exec cp /var/tmp/nftables.conf.stock /etc/nftables.conf
ct_exec systemctl restart nftables.service
ct_exec nft -f - <<'NFT'
table inet vpn {
	chain forward {
		type filter hook forward priority 1; policy drop;
		iif "tailscale0" accept
		oif "tailscale0" ct state established,related accept
	}
}
NFT
ct_exec nft -f - <<<"$foreign"
ct_exec reconcile-after-upgrade -q snapshot
restart_daemon
n0=$(nft_reloads)
out=$(ct_exec reconcile-after-upgrade)
rc=$?
ct_diag "$out"
ct_check "rules loaded by hand, stock nftables.service enabled: exit 0, rebound, nothing reloaded" \
	test "$rc $(nft_reloads) $(grep -c '^table inet vpn: rebound 2 stale reference(s) in place, read back exact (no unit is known to load it)' <<<"$out")" = "0 $n0 1"
ct_check "the hand-loaded table keeps its policy drop chain, now fresh" \
	test "$(ct_exec nft list chain inet vpn forward | grep -cE 'policy drop|iif "tailscale0"|oif "tailscale0"')" -eq 3
ct_check "nftables.service's table and the foreign table are intact" intact_with inet filter
ct_exec systemctl disable --now nftables.service >/dev/null 2>&1
ct_exec nft flush ruleset
install_postmortem_units || ct_bail "could not install the post-mortem's units again"
ct_exec systemctl enable --now nftables-local.service >/dev/null 2>&1

# shutting down: a unit stopped during poweroff runs the hook while systemd's SystemState is "stopping". It must
# change nothing, say so in one line, and exit 0 at once (a poweroff is no time to restart firewalls).
restart_daemon
ct_exec sh -c 'cat >/etc/systemd/system/rau-shutdown-probe.service' <<'UNIT'
[Unit]
Description=runs the apt hook while the system shuts down
# stopped before these: the bus, the daemon and the firewall are still there
After=dbus.service tailscaled.service nftables-local.service
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true
ExecStop=/bin/sh -c 'reconcile-after-upgrade --hook=apt >/var/tmp/shutdown.out 2>&1; echo "exit $?" >>/var/tmp/shutdown.out; sync'
UNIT
ct_exec systemctl daemon-reload
ct_exec systemctl start rau-shutdown-probe.service
upper=${CT_OVERLAY:+$CT_TMP/upper}
upper=${upper:-$CT_ROOT}
ct_exec systemctl start poweroff.target --job-mode=replace-irreversibly --no-block >/dev/null 2>&1
for _ in $(seq 300); do kill -0 "$CT_NSPAWN_PID" 2>/dev/null || break; sleep 0.1; done
out=$(cat "$upper/var/tmp/shutdown.out" 2>&1)
ct_diag "the hook during poweroff:" "$out"
ct_check "during shutdown: one line saying nothing was reloaded, exit 0" \
	test "$(grep -c 'but the system is shutting down: nothing reloaded' <<<"$out") $(wc -l <<<"$out") $(tail -1 <<<"$out")" = "1 2 exit 0"
ct_poweroff
ct_tap_done

#!/bin/bash
# Acting in the middle of a restart. Real VPN daemons are Type=simple: `systemctl restart` returns before they have
# created their interface, so the dpkg trigger (or the apt hook) can run while it is missing. A daemon stand-in
# that creates tailscale0 300 ms after its start: the trigger waits for it on rtnetlink and repairs once. With the
# daemon stopped instead, nothing is waited for; with a daemon that does not bring it back, the wait ends at
# Reconcile-After-Upgrade::Interface-Wait. A foreign table beside the firewall stays untouched.
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${top_builddir:=$(cd "$here/../.." && pwd)/build}"
source "$here/container.sh"
source "$here/postmortem-units.sh"

[ "$(id -u)" -eq 0 ] || ct_bail "the container tier needs root"
ct_rootfs_ensure || ct_bail "no rootfs"
ct_boot rau-wait || ct_bail "container did not boot"

ct_copy_in "$top_builddir/reconcile-after-upgrade" /usr/local/sbin/reconcile-after-upgrade
daemon_unit() { install_standin_tailscaled "$1"; }
daemon_unit 300
install_postmortem_units || ct_bail "could not install the post-mortem's units"
ct_exec systemctl start tailscaled.service
for _ in $(seq 100); do ct_exec ip link show tailscale0 >/dev/null 2>&1 && break; sleep 0.05; done
ct_exec systemctl enable --now nftables-local.service >/dev/null 2>&1
ct_exec nft add table ip foreign
ct_exec nft add chain ip foreign input '{ type filter hook input priority 10; }'
ct_exec nft add rule ip foreign input tcp dport 9100 accept
foreign=$(ct_exec nft list table ip foreign)

reloads() { nftables_local_reloads; }
stale_rules() { ct_exec nft list chain inet filter forward | grep -cE 'iif [0-9]+|oif [0-9]+'; }
summary() { ct_exec cat /var/lib/reconcile-after-upgrade/last-run.json; }
foreign_intact() { test "$(ct_exec nft list table ip foreign)" = "$foreign"; }
# The trigger, as dpkg runs it right after a maintainer script restarted the daemon: timed.
trigger() {
	local t0
	t0=$(date +%s.%N)
	out=$(ct_exec reconcile-after-upgrade --hook=dpkg-trigger 2>&1)
	rc=$?
	secs=$(ct_secs "$t0" "$(date +%s.%N)")
	ct_diag "trigger: exit $rc after $secs s: $out"
}
within() { awk -v s="$secs" -v lo="$1" -v hi="$2" 'BEGIN { exit !(s >= lo && s < hi) }'; }

ct_exec reconcile-after-upgrade -q snapshot
n0=$(reloads)
ct_exec systemctl restart tailscaled.service
ct_check "right after the restart, tailscale0 does not exist yet" test "$(ct_exec ip link show tailscale0 2>&1 | grep -c 'does not exist')" -eq 1
trigger
ct_check "the trigger exits 0 with one line: repaired and verified" \
	test "$rc $(wc -l <<<"$out") $(grep -c 'reloaded nftables-local.service; verified fresh in' <<<"$out")" = "0 1 1"
ct_check "it waited for tailscale0 (came back after $(summary | jq .waited.seconds) s) before acting" \
	test "$(summary | jq -c '[.waited.interfaces, .waited.came_back, .waited.seconds >= 0.1]')" = '[["tailscale0"],true,true]'
ct_check "the rules are fresh, the firewall was reloaded once" test "$(stale_rules) $(reloads)" = "0 $((n0 + 1))"
trigger
ct_check "a second trigger finds nothing to do and says nothing" test "$rc $out $(reloads)" = "0  $((n0 + 1))"

# The daemon stopped: its interface is gone for good; nothing to wait for.
ct_exec systemctl stop tailscaled.service
trigger
ct_check "daemon stopped: no wait (exit 0 in less than a second), said in one line" \
	test "$rc $(wc -l <<<"$out") $(within 0 1 && echo quick)" = "0 1 quick"
ct_check "and nothing waited for, nothing reloaded, the references left as they are" \
	test "$(summary | jq -c '[.waited, .outcome, .actions[0].rebind.kept]') $(reloads)" = "[null,\"stale\",2] $((n0 + 1))"

# A daemon that does not bring its interface back in time: the wait ends at Interface-Wait.
daemon_unit 60000
ct_exec sh -c 'echo "Reconcile-After-Upgrade::Interface-Wait \"1\";" >/etc/apt/apt.conf.d/99rau-test'
ct_exec systemctl start tailscaled.service
trigger
ct_check "a daemon that takes longer: the wait ends after Interface-Wait (1 s), exit 0" \
	test "$rc $(within 1 2.5 && echo bounded)" = "0 bounded"
ct_check "the record says it waited and the interface did not come back" \
	test "$(summary | jq -c '[.waited.interfaces, .waited.came_back, .outcome]')" = '[["tailscale0"],false,"stale"]'
ct_check "the foreign table is intact" foreign_intact
ct_poweroff
ct_tap_done

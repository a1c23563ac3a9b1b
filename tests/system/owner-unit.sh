#!/bin/bash
# Real systemd, in a booted Debian 12 container: the TUN owner scan maps a re-created interface to the systemd
# unit of its daemon (a plain service and a template instance), and InvocationIDs tell which units restarted.
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${top_builddir:=$(cd "$here/../.." && pwd)/build}"
source "$here/container.sh"

[ "$(id -u)" -eq 0 ] || ct_bail "the container tier needs root"
ct_rootfs_ensure || ct_bail "no rootfs"
ct_boot rau-owner || ct_bail "container did not boot"

ct_copy_in "$top_builddir/reconcile-after-upgrade" /usr/local/sbin/reconcile-after-upgrade
ct_copy_in "$top_builddir/tests/tun-holder" /usr/local/bin/tun-holder
ct_exec sh -c 'cat >/etc/systemd/system/tund.service' <<'UNIT'
[Unit]
Description=a VPN daemon that owns tailscale0
[Service]
ExecStart=/usr/local/bin/tun-holder tailscale0
UNIT
ct_exec sh -c 'cat >/etc/systemd/system/tund@.service' <<'UNIT'
[Unit]
Description=a templated VPN daemon for network %i
[Service]
ExecStart=/usr/local/bin/tun-holder tun-%i
UNIT
ct_exec systemctl daemon-reload
ct_exec systemctl start tund.service tund@lab.service
for _ in $(seq 100); do ct_exec ip link show tun-lab >/dev/null 2>&1 && ct_exec ip link show tailscale0 >/dev/null 2>&1 && break; sleep 0.05; done
ct_exec nft -f - <<'NFT'
table inet filter {
	chain forward {
		type filter hook forward priority 0; policy drop;
		iif "tailscale0" accept
		oif "tun-lab" accept
	}
}
NFT
ct_check "rules loaded" test $? -eq 0

rau() { ct_exec reconcile-after-upgrade "$@"; }
rau -q snapshot
ct_check "snapshot recorded the units' InvocationIDs" \
	test "$(ct_exec jq -r '.units[] | select(.name == "tund.service") | .invocation_id | length' /run/reconcile-after-upgrade/snapshot.json)" = 32

ct_exec systemctl restart tund.service tund@lab.service
for _ in $(seq 100); do ct_exec ip link show tun-lab >/dev/null 2>&1 && ct_exec ip link show tailscale0 >/dev/null 2>&1 && break; sleep 0.05; done

out=$(rau check --json)
rc=$?
ct_check "check exits 1 after the daemons restarted" test $rc -eq 1
ct_diag "$(echo "$out" | jq -c '.interfaces[] | {name, change, owner}')"
ct_check "tailscale0's owner is tund.service" \
	test "$(echo "$out" | jq -r '.interfaces[] | select(.name == "tailscale0") | "\(.change) \(.owner.command) \(.owner.unit)"')" = "recreated tun-holder tund.service"
ct_check "tun-lab's owner is the template instance tund@lab.service" \
	test "$(echo "$out" | jq -r '.interfaces[] | select(.name == "tun-lab") | .owner.unit')" = "tund@lab.service"
ct_check "both units are reported as restarted since the snapshot" \
	test "$(echo "$out" | jq -c '[.restarted_units[] | select(startswith("tund"))] | sort')" = '["tund.service","tund@lab.service"]'
ct_check "units that did not restart are not reported" \
	test "$(echo "$out" | jq '[.restarted_units[] | select(. == "dbus.service" or . == "systemd-journald.service")] | length')" -eq 0
ct_check "the stale rules name the interfaces they were" \
	test "$(echo "$out" | jq -c '[.stale[] | .was] | sort')" = '["tailscale0","tun-lab"]'
human=$(rau check)
ct_check "human report names the unit" grep -q "unit tund.service" <<<"$human"

ct_tap_done

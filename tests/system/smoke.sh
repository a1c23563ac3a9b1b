#!/bin/bash
# tests/system/smoke.sh: the container tier works — systemd boots as PID 1 with a system bus, a service can own a
# TUN device, and a restart gives it a new InvocationID and the device a new ifindex. TAP on stdout. Root only.
# Env: top_builddir (default /work/main/build; holds tests/tun-holder), TUN_HOLDER (default $top_builddir/tests/tun-holder).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/container.sh"
: "${top_builddir:=/work/main/build}"
: "${TUN_HOLDER:=$top_builddir/tests/tun-holder}"

quiet() { "$@" >/dev/null 2>&1; }
fails() { ! "$@" >/dev/null 2>&1; }

[ "$(id -u)" -eq 0 ] || { echo "1..0 # SKIP the container tier needs root"; exit 0; }
for tool in debootstrap systemd-nspawn nsenter; do
	command -v "$tool" >/dev/null || ct_bail "$tool is missing (apt-get install systemd-container debootstrap util-linux)"
done
[ -x "$TUN_HOLDER" ] || ct_bail "$TUN_HOLDER not built (cd $top_builddir && make tests/tun-holder)"

t0=$(date +%s.%N)
ct_rootfs_ensure || ct_bail "could not build the container rootfs"
t1=$(date +%s.%N)
ct_boot "rau-smoke-$$" || ct_bail "container did not boot"
t2=$(date +%s.%N)
ct_diag "rootfs ready in $(ct_secs "$t0" "$t1") s ($CT_ROOTFS_CACHED), boot to running in $(ct_secs "$t1" "$t2") s"

# --- systemd and the bus
comm=$(ct_exec cat /proc/1/comm)
ct_check "systemd is PID 1 in the container (comm: $comm)" test "$comm" = systemd
state=$(ct_exec systemctl is-system-running)
ct_check "system state is running or degraded ($state)" test "$state" = running -o "$state" = degraded
[ "$state" = running ] || ct_diag "failed units:" "$(ct_exec systemctl --failed --no-legend --plain)"
ct_check "the system bus answers (busctl --system status)" quiet ct_exec busctl --system status
dbus_inv=$(ct_exec systemctl show -P InvocationID dbus.service)
ct_check "dbus.service has an InvocationID ($dbus_inv)" test -n "$dbus_inv"

# --- a service that owns a TUN device, like a VPN daemon
ct_copy_in "$TUN_HOLDER" /usr/local/sbin/tun-holder
cat >"$CT_TMP/tund.service" <<'EOF'
[Unit]
Description=test daemon holding the TUN device tun-test

[Service]
ExecStart=/usr/local/sbin/tun-holder tun-test
EOF
ct_copy_in "$CT_TMP/tund.service" /etc/systemd/system/tund.service
ct_exec systemctl daemon-reload
ct_check "tund.service starts" ct_exec systemctl start tund.service

# wait_link NAME: up to 5 s for the link to exist inside; prints its ifindex.
wait_link() {
	local i idx
	for ((i = 0; i < 100; i++)); do
		idx=$(ct_exec cat "/sys/class/net/$1/ifindex" 2>/dev/null) && { echo "$idx"; return 0; }
		sleep 0.05
	done
	return 1
}
idx1=$(wait_link tun-test)
ct_check "ip link show tun-test inside the container (ifindex $idx1)" quiet ct_exec ip link show tun-test
ct_check "tun-test is absent on the host (private network)" fails ip link show tun-test
inv1=$(ct_exec systemctl show -P InvocationID tund.service)
pid=$(ct_exec systemctl show -P MainPID tund.service)
ct_check "tund.service has an InvocationID and a MainPID ($inv1, $pid)" test -n "$inv1" -a "${pid:-0}" != 0
cg=$(ct_exec cat "/proc/$pid/cgroup")
ct_diag "/proc/$pid/cgroup of tund inside the container:" "$cg"
ct_check "the cgroup of tund's process names tund.service" grep -q '/tund\.service$' <<<"$cg"
fdinfo=$(ct_exec sh -c "grep -h '^iff:' /proc/$pid/fdinfo/* 2>/dev/null")
ct_check "fdinfo of tund's /dev/net/tun fd says iff: tun-test" grep -qx $'iff:\ttun-test' <<<"$fdinfo"

# --- restart: new InvocationID, new ifindex
ct_check "systemctl restart tund.service" ct_exec systemctl restart tund.service
# the old process has released the device; wait (up to 5 s) for the new one to have created it again
for ((i = 0; i < 100; i++)); do
	idx2=$(ct_exec cat /sys/class/net/tun-test/ifindex 2>/dev/null)
	[ -n "$idx2" ] && [ "$idx2" != "$idx1" ] && break
	sleep 0.05
done
inv2=$(ct_exec systemctl show -P InvocationID tund.service)
ct_check "InvocationID changed on restart ($inv1 -> $inv2)" test -n "$inv2" -a "$inv2" != "$inv1"
ct_check "ifindex of tun-test changed on restart ($idx1 -> ${idx2:-none})" test -n "${idx2:-}" -a "${idx2:-}" != "$idx1"

# --- power off, nothing left behind
nspawn_pid=$CT_NSPAWN_PID tmp=$CT_TMP
t3=$(date +%s.%N)
ct_check "container powers off cleanly" ct_poweroff
t4=$(date +%s.%N)
ct_diag "power off in $(ct_secs "$t3" "$t4") s"
ct_check "no systemd-nspawn process is left" fails pgrep -f "^systemd-nspawn .*--machine=rau-smoke-$$ "
ct_check "systemd-nspawn $nspawn_pid is gone" fails kill -0 "$nspawn_pid"
if [ "${RAU_CT_KEEP:-0}" = 1 ]; then ct_ok "the per-boot rootfs is kept ($tmp) # SKIP RAU_CT_KEEP=1"
else ct_check "the per-boot rootfs is gone ($tmp)" fails test -e "$tmp"; fi
ct_check "no mount of the per-boot rootfs is left" fails grep -q "^rau-ct-rau-smoke-$$ " /proc/mounts
ct_diag "total $(ct_secs "$t0" "$(date +%s.%N)") s"
ct_tap_done

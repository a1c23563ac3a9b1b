#!/bin/bash
# Where systemd is not running (this namespace tier, a chroot, debootstrap): the reconcile run says so in one line,
# exits 2, reloads nothing and does not hang. With nothing stale it has nothing to do and exits 0.
source "$(dirname "$0")/../lib.sh"
in_netns "$@"

holder_start tailscale0
nft add table inet filter && nft add chain inet filter forward && nft add rule inet filter forward iif tailscale0 accept
rau -q snapshot

timeout 20 "$RAU" --run-dir "$RUN_DIR" --state-dir "$STATE_DIR" >"$WORK/out" 2>"$WORK/err"
check "nothing stale: exit 0" test $? -eq 0

holder_restart tailscale0
start=$(date +%s%N)
timeout 20 "$RAU" --run-dir "$RUN_DIR" --state-dir "$STATE_DIR" >"$WORK/out" 2>"$WORK/err"
rc=$?
end=$(date +%s%N)
check "stale, no systemd: exit 2" test $rc -eq 2
check "one line on stderr" test "$(wc -l <"$WORK/err")" -eq 1
check "which says why and that nothing was reloaded" grep -q "systemd is not running here (chroot?): nothing reloaded" "$WORK/err"
check "it returned at once, not after a timeout (< 5 s)" test $(((end - start) / 1000000)) -lt 5000

DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent timeout 20 "$RAU" --run-dir "$RUN_DIR" --state-dir "$STATE_DIR" \
	--dry-run >/dev/null 2>"$WORK/err"
check "--dry-run without systemd: exit 2 too" test $? -eq 2

tap_done

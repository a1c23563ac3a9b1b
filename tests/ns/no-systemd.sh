#!/bin/bash
# Where systemd is not running (this namespace tier, a machine without it): no unit can be reloaded, and none is
# needed: the stale references are rebound in place, the run says so and exits 0, and does not hang on a bus that
# is not there. With nothing stale it has nothing to do and exits 0.
source "$(dirname "$0")/../lib.sh"
in_netns "$@"

holder_start tailscale0
nft add table inet filter && nft add chain inet filter forward && nft add rule inet filter forward iif tailscale0 accept
rau -q snapshot

timeout 20 "$RAU" --run-dir "$RUN_DIR" --state-dir "$STATE_DIR" >"$WORK/out" 2>"$WORK/err"
check "nothing stale: exit 0" test $? -eq 0

holder_restart tailscale0
DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent timeout 20 "$RAU" --run-dir "$RUN_DIR" --state-dir "$STATE_DIR" \
	--dry-run >"$WORK/out" 2>"$WORK/err"
check "--dry-run without systemd: exit 1, would rebind, nothing changed" \
	test "$? $(grep -c 'table inet filter: would rebind 1 stale reference(s) in place (systemd is not running here)' "$WORK/out") $(nft list chain inet filter forward | grep -c 'iif "tailscale0"')" = "1 1 0"

start=$(date +%s%N)
DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent timeout 20 "$RAU" --run-dir "$RUN_DIR" --state-dir "$STATE_DIR" \
	>"$WORK/out" 2>"$WORK/err"
rc=$?
end=$(date +%s%N)
sed 's/^/# /' "$WORK/out" "$WORK/err"
check "stale, no systemd: exit 0" test $rc -eq 0
check "it says it rebound the reference in place, and why no unit" \
	grep -qx 'table inet filter: rebound 1 stale reference(s) in place, read back exact (systemd is not running here)' "$WORK/out"
check "and verified" grep -qx 'Verified: no stale interface references remain.' "$WORK/out"
check "nothing on stderr" test ! -s "$WORK/err"
check "the rule names tailscale0 again" grep -q 'iif "tailscale0" accept' <(nft list chain inet filter forward)
check "it returned at once, not after a timeout (< 5 s)" test $(((end - start) / 1000000)) -lt 5000

tap_done

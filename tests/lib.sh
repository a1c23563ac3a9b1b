# tests/lib.sh: TAP output and namespace helpers for the shell tiers. Sourced, not run.
# Every test re-executes itself in a new network namespace, so it sees only its own devices and rules.

tap_n=0
tap_failed=0

ok() { tap_n=$((tap_n + 1)); echo "ok $tap_n - $*"; }
not_ok() { tap_n=$((tap_n + 1)); tap_failed=$((tap_failed + 1)); echo "not ok $tap_n - $*"; }
# check DESCRIPTION COMMAND...: one TAP line from a command's success.
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
tap_done() { echo "1..$tap_n"; [ "$tap_failed" -eq 0 ]; }
bail() { echo "Bail out! $*"; exit 1; }

: "${top_builddir:=$(pwd)}"
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
RAU="$top_builddir/reconcile-after-upgrade"
TUN_HOLDER="$top_builddir/tests/tun-holder"

# in_netns "$@": run the calling script again inside a private network namespace (root only).
in_netns() {
	if [ -z "${RAU_IN_NETNS:-}" ]; then
		[ "$(id -u)" -eq 0 ] || bail "namespace tests need root (they create TUN devices and load nftables rules)"
		RAU_IN_NETNS=1 exec unshare -n "$BASH" "$0" "$@"
	fi
	ip link set lo up
	WORK=$(mktemp -d /tmp/rau-test.XXXXXX)
	RUN_DIR=$WORK/run
	STATE_DIR=$WORK/state
	trap 'holders_stop; rm -rf "$WORK"' EXIT
}

declare -A HOLDER_PID
# holder_start NAME...: hold TUN devices like a VPN daemon does; waits until they exist.
holder_start() {
	local key=$1 out="$WORK/holder.$1.out"
	"$TUN_HOLDER" "$@" >"$out" 2>&1 &
	HOLDER_PID[$key]=$!
	for _ in $(seq 500); do
		grep -q ready "$out" 2>/dev/null && return 0
		kill -0 "${HOLDER_PID[$key]}" 2>/dev/null || break
		sleep 0.01
	done
	bail "tun-holder $* did not start: $(cat "$out")"
}
holder_stop() {
	local pid=${HOLDER_PID[$1]:-}
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	unset "HOLDER_PID[$1]"
	# the device goes with the last fd; wait until the kernel has removed it
	for _ in $(seq 500); do ip link show "$1" >/dev/null 2>&1 || return 0; sleep 0.01; done
}
holder_restart() { holder_stop "$1"; holder_start "$@"; }
holders_stop() { for k in "${!HOLDER_PID[@]}"; do holder_stop "$k"; done; }

# Device-bound hooks (ns/device-hooks-repair.sh, ns/watch-device-hooks.sh): ts0 held by tests/tun-inject.
# tables_listing FAMILY:TABLE...: nft's JSON listing of each, handles and counter values aside (what "restored
# exactly" is compared with); a table that is not there lists as nothing
tables_listing() {
	local t
	for t in "$@"; do
		nft -j list table "${t%%:*}" "${t#*:}" 2>/dev/null |
			jq -c '[.nftables[] | select(has("metainfo") | not)] | walk(if type == "object" then del(.handle) | (if has("counter") and (.counter | type) == "object" then .counter = {} else . end) else . end)'
	done
}
# chain_packets FAMILY TABLE CHAIN: the packets its first rule's counter counted (0 when the chain is gone)
chain_packets() {
	local n
	n=$(nft -j list chain "$1" "$2" "$3" 2>/dev/null | jq '[.nftables[] | .rule? | select(.) | .expr[0].counter.packets] | first // 0')
	echo "${n:-0}"
}
# inject NAME: one packet into a device tun-inject holds, then let the softirq run
inject() {
	local out=$WORK/holder.$1.out n
	n=$(grep -c '^sent' "$out")
	kill -USR1 "${HOLDER_PID[$1]}"
	for _ in $(seq 200); do [ "$(grep -c '^sent' "$out")" -gt "$n" ] && break; sleep 0.01; done
	sleep 0.2
}

# not /sys/class/net: sysfs is the mounting namespace's view, not ours
ifindex() { ip -o link show dev "$1" | cut -d: -f1; }
rau() { "$RAU" --run-dir "$RUN_DIR" --state-dir "$STATE_DIR" "$@"; }

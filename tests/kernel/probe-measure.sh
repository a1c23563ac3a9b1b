#!/bin/bash
# tests/kernel/probe-measure.sh: what the running kernel does to device-bound nftables hooks when their device is
# deleted and created again. Run by probe.sh inside each booted kernel (kvm_run) and on the host; re-executes
# itself in a new network namespace. Root only. Prints one result a line, for probe.sh to read:
#   R kernel RELEASE
#   R smoke RC                       reconcile-after-upgrade check on the empty ruleset (when the binary is here)
#   R load CASE ok|fail MESSAGE      loading the case's table
#   R state CASE PHASE STATE         PHASE: loaded | deleted | recreated; STATE: absent | nodev | devs:A,B
#   R traffic CASE DEV PACKETS       packets the case's counter saw from one packet injected on DEV after recreate
#   R hooks PHASE N                  hooks `nft list hooks netdev device ts0` shows (kernels with nfnetlink_hook)
# and "D ..." lines of detail (nft's own listing, `nft list hooks`, the smoke run's output).
# Env: TUN_HOLDER, TUN_INJECT, RAU_BIN (default: beside this script).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${TUN_HOLDER:=$here/tun-holder}"
: "${TUN_INJECT:=$here/tun-inject}"
: "${RAU_BIN:=$here/reconcile-after-upgrade}"
# shellcheck source=nft-devices.sh
. "$here/nft-devices.sh"

if [ -z "${RAU_PROBE_NETNS:-}" ]; then
	[ "$(id -u)" -eq 0 ] || { echo "probe-measure: needs root" >&2; exit 1; }
	RAU_PROBE_NETNS=1 exec unshare -n "$BASH" "$0" "$@"
fi
ip link set lo up
work=$(mktemp -d /tmp/rau-probe.XXXXXX)
declare -A pid
stop() { # stop NAME: end the process holding NAME and wait until the kernel removed the device
	local p=${pid[$1]:-}
	[ -n "$p" ] || return 0
	kill "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	unset "pid[$1]"
	for _ in $(seq 500); do ip link show "$1" >/dev/null 2>&1 || return 0; sleep 0.01; done
	echo "D $1 still exists 5 s after its holder ended"
}
cleanup() { for k in "${!pid[@]}"; do stop "$k"; done; rm -rf "$work"; }
trap cleanup EXIT
start() { # start NAME PROGRAM: PROGRAM NAME holds the TUN device NAME; waits for its "ready"
	local out=$work/$1.out
	: >"$out"
	"$2" "$1" >"$out" 2>&1 &
	pid[$1]=$!
	for _ in $(seq 500); do
		grep -q ready "$out" && return 0
		kill -0 "${pid[$1]}" 2>/dev/null || break
		sleep 0.01
	done
	echo "D $2 $1 did not start: $(cat "$out")"
	exit 1
}
inject() { # inject NAME: one packet into NAME (held by tun-inject), wait for it to be counted
	local out=$work/$1.out n
	n=$(grep -c '^sent' "$out")
	kill -USR1 "${pid[$1]}"
	for _ in $(seq 200); do [ "$(grep -c '^sent' "$out")" -gt "$n" ] && break; sleep 0.01; done
	sleep 0.2 # netif_rx queues the packet to a softirq; let it run
}

echo "R kernel $(uname -r)"

if [ -x "$RAU_BIN" ]; then
	"$RAU_BIN" check --run-dir "$work/r" --state-dir "$work/s" >"$work/smoke.out" 2>&1
	echo "R smoke $?"
	sed 's/^/D smoke: /' "$work/smoke.out"
fi

# ---------------------------------------------------------------- the cases (the issue's table, one table each)
cases=(netdev1 netdev2 inet1 flowtable)
declare -A family=([netdev1]=netdev [netdev2]=netdev [inet1]=inet [flowtable]=inet)
declare -A table=([netdev1]=rau_p1 [netdev2]=rau_p2 [inet1]=rau_p3 [flowtable]=rau_p4)
# nft 1.0.6 wants a ";" (or a newline) after every statement and block on one line: "counter; }; }".
declare -A ruleset=(
	[netdev1]='table netdev rau_p1 { chain c { type filter hook ingress device "ts0" priority 0; counter; }; }'
	# one counter per device, in this order: traffic from ts0, then from ts1
	[netdev2]='table netdev rau_p2 { chain c { type filter hook ingress devices = { ts0, ts1 } priority 0; meta iifname "ts0" counter; meta iifname "ts1" counter; }; }'
	[inet1]='table inet rau_p3 { chain c { type filter hook ingress device "ts0" priority 0; counter; }; }'
	[flowtable]='table inet rau_p4 { flowtable f { hook ingress priority 0; devices = { ts0, ts1 }; }; }'
)

# state CASE: absent | nodev | devs:A,B (sorted) for the case's chain or flowtable, from nft's listing.
state() {
	local devs
	if [ "$1" = flowtable ]; then devs=$(nft_devices flowtable inet rau_p4 f); else devs=$(nft_devices chain "${family[$1]}" "${table[$1]}" c); fi
	case $devs in absent) echo absent ;; '') echo nodev ;; *) echo "devs:$devs" ;; esac
}
# packets CASE: the packet count of each counter of the case's chain, in rule order, blank separated.
packets() {
	nft -j list chain "${family[$1]}" "${table[$1]}" c 2>/dev/null |
		jq -r '[.nftables[] | .rule // empty | .expr[] | .counter // empty | .packets] | map(tostring) | join(" ")'
}
report() { # report PHASE: state of every case, and nft's listing as detail
	local c
	for c in "${cases[@]}"; do
		[ "${loaded[$c]}" = ok ] && echo "R state $c $1 $(state "$c")"
	done
	nft list ruleset | sed "s/^/D $1: /"
	# the kernel's own list of what is hooked to ts0 (nfnetlink_hook: 6.12 has it, 6.1 and this host do not)
	if [ -e /sys/module/nfnetlink_hook ] && nft list hooks netdev device ts0 >"$work/hooks" 2>&1; then
		echo "R hooks $1 $(grep -cE '(chain |nf_flow_offload)' "$work/hooks")"
		sed "s/^/D $1: hooks on ts0: /" "$work/hooks"
	fi
}

start ts0 "$TUN_HOLDER"
start ts1 "$TUN_INJECT" # never deleted: the control for counting
declare -A loaded
for c in "${cases[@]}"; do
	if msg=$(nft -f - <<<"${ruleset[$c]}" 2>&1); then
		loaded[$c]=ok
		echo "R load $c ok"
	else
		loaded[$c]=fail
		echo "R load $c fail $(tr '\n' ' ' <<<"$msg" | tr -s ' ' | cut -c1-200)"
	fi
done
report loaded

# ts0 goes away the way a VPN daemon's device does when the daemon stops
stop ts0
report deleted

# and comes back (a new device, a new index), this time held by tun-inject so packets can be sent into it
start ts0 "$TUN_INJECT"
report recreated

# witnesses, loaded now on the new ts0: they prove an injected packet reaches ts0's ingress hooks at all
nft -f - <<<'table netdev rau_w1 { chain c { type filter hook ingress device "ts0" priority 0; counter; }; }'
nft -f - <<<'table inet rau_w2 { chain c { type filter hook ingress device "ts0" priority 0; counter; }; }'
family[witness_netdev]=netdev table[witness_netdev]=rau_w1
family[witness_inet]=inet table[witness_inet]=rau_w2
inject ts0
inject ts1
for c in netdev1 netdev2 inet1 witness_netdev witness_inet; do
	[ "${loaded[$c]:-ok}" = ok ] || continue
	p=$(packets "$c")
	if [ "$c" = netdev2 ]; then
		read -r p0 p1 <<<"$p"
		echo "R traffic $c ts0 ${p0:-none}"
		echo "R traffic $c ts1 ${p1:-none}"
	else
		echo "R traffic $c ts0 ${p:-none}"
	fi
done

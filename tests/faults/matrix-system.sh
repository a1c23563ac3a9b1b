#!/bin/bash
# The fault matrix, the faults that need real systemd (the rest: matrix.sh). In a booted Debian 12 container with
# the post-mortem's units (whose reload here takes 0.2 s):
#   - kill -9 of a reconcile at 50 points spread over its run, with a real reload and with a rebind (one batch: the
#     rules are never left half repaired);
#   - the apt hook killed with SIGKILL while apt waits for it: apt's exit status is unchanged;
#   - two hooks and a manual run at once.
# After each: bounded, history whole (no record torn or twice), no temporary file, lock free; at the end a run
# repairs what is left, and the foreign table beside the firewall is intact. A table of the rows is printed.
set -u
here=$(cd "$(dirname "$0")/../system" && pwd)
: "${top_builddir:=$(cd "$here/../.." && pwd)/build}"
source "$here/container.sh"
source "$here/postmortem-units.sh"

[ "$(id -u)" -eq 0 ] || ct_bail "the container tier needs root"
ct_rootfs_ensure || ct_bail "no rootfs"
ct_boot rau-faults || ct_bail "container did not boot"

# installed where the apt hooks look for it, with the hooks themselves
ct_copy_in "$top_builddir/reconcile-after-upgrade" /usr/sbin/reconcile-after-upgrade
ct_copy_in "$here/../../hooks/99reconcile-after-upgrade" /etc/apt/apt.conf.d/99reconcile-after-upgrade
install_standin_tailscaled || ct_bail "could not install the stand-in tailscaled"
install_postmortem_units || ct_bail "could not install the post-mortem's units"
# a reload that takes a moment, so that kills land before, during and after it
ct_exec sed -i 's|^set -e$|set -e\nsleep 0.2|' /etc/nftables-local.sh
ct_exec systemctl daemon-reload
ct_exec systemctl start tailscaled.service
start_firewall_beside_foreign
ct_exec reconcile-after-upgrade -q snapshot
# a package apt can install without a network, to have apt run its hooks
ct_exec sh -c 'mkdir -p /var/tmp/pkg/DEBIAN && printf "Package: rau-fault-probe\nVersion: 1\nArchitecture: all\nMaintainer: tests <root@localhost>\nDescription: probe\n" >/var/tmp/pkg/DEBIAN/control &&
	dpkg-deb -b /var/tmp/pkg /var/tmp/rau-fault-probe.deb >/dev/null'

# Inside the container: the checks every row makes after its fault.
ct_exec sh -c 'cat >/var/tmp/invariants && chmod +x /var/tmp/invariants' <<'SH'
#!/bin/sh
# prints "history tmp lock" as yes/no
h=/var/lib/reconcile-after-upgrade/history.jsonl
hist=yes; tmp=yes; lock=yes
if [ -f "$h" ]; then
	jq -e . "$h" >/dev/null 2>&1 || hist=no
	[ "$(jq -r .finished "$h" | sort | uniq -d | wc -l)" -eq 0 ] || hist=no
fi
[ -z "$(find /run/reconcile-after-upgrade /var/lib/reconcile-after-upgrade -maxdepth 1 -name '.*.tmp')" ] || tmp=no
flock -n -w 0 /run/reconcile-after-upgrade/lock true || lock=no
echo "$hist $tmp $lock"
SH

ROWS=()
row() { # FAULT RESULT("ok"/"FAIL") DETAILS
	ROWS+=("$(printf '%-52s %-5s %s' "$1" "$2" "$3")")
	if [ "$2" = ok ]; then ct_ok "$1"; else ct_not_ok "$1 ($3)"; fi
}

# --- kill -9 at 50 points: the delays walk over the run (start-up, the reading, the repair, the record). KILL_SPAN_MS
# is how long a run takes in that repair mode here (a reload waits for the unit's 0.2 s; a rebind is one batch).
kill_walk() { # SPAN_MS; prints "BAD[ details]"
	ct_exec sh -c '
	bad=0; out=""; span=$1
	for i in $(seq 1 50); do
		# systemd finishes the reload a killed run asked for; a restart of tailscaled in the middle of it would
		# make the unit'"'"'s own script fail (it deletes, then loads rules naming tailscale0): as in life, apt
		# restarts daemons one after the other
		for _ in $(seq 100); do [ -z "$(systemctl list-jobs --no-legend)" ] && break; sleep 0.02; done
		systemctl restart tailscaled.service
		for _ in $(seq 100); do ip link show tailscale0 >/dev/null 2>&1 && break; sleep 0.02; done
		reconcile-after-upgrade >/dev/null 2>&1 &
		pid=$!
		sleep "0.$(printf %03d $(( (i * 37) % span )))"
		kill -9 $pid 2>/dev/null
		wait $pid 2>/dev/null
		set -- $(/var/tmp/invariants)
		# a kill between the link of the whole, synced temporary and its rename (a few microseconds) leaves a
		# named copy: the next run removes it, whatever it writes
		if [ "$2" = no ]; then
			reconcile-after-upgrade >/dev/null 2>&1
			set -- $(/var/tmp/invariants)
		fi
		# a batch is all or nothing, and a reload job runs to its end: once systemd is idle the chain has its two
		# rules, each either stale or fresh
		for _ in $(seq 100); do [ -z "$(systemctl list-jobs --no-legend)" ] && break; sleep 0.02; done
		rules=$(nft list chain inet filter forward 2>/dev/null | grep -cE "^[[:space:]]+[io]if ")
		[ "$1 $2 $3 $rules" = "yes yes yes 2" ] ||
			{ bad=$((bad + 1)); out="$out kill $i: history $1 tmp $2 lock $3 rules $rules;"; }
	done
	echo "$bad$out"' sh "$1"
}
records() { ct_exec sh -c 'cat /var/lib/reconcile-after-upgrade/history.jsonl* 2>/dev/null | wc -l'; }

n0=$(records)
kills=$(kill_walk 400)
ct_diag "kill -9 x 50 (reload): $kills"
row "kill -9 of a reconcile at 50 points during a reload" "$([ "${kills%% *}" = 0 ] && echo ok || echo FAIL)" \
	"${kills%% *} of 50 left a torn history, a temporary file, the lock held or the rules cut; $(( $(records) - n0 )) whole records"

ct_exec sh -c 'echo "Reconcile-After-Upgrade::Repair \"rebind\";" >/etc/apt/apt.conf.d/60rebind'
# the walk spans twice a whole rebind run, so that the last kills land after it
span=$(ct_exec sh -c 'systemctl restart tailscaled.service
	for _ in $(seq 100); do ip link show tailscale0 >/dev/null 2>&1 && break; sleep 0.02; done
	t0=$(date +%s%N); reconcile-after-upgrade >/dev/null 2>&1; echo $(( ($(date +%s%N) - t0) * 2 / 1000000 ))')
[ "${span:-0}" -ge 20 ] && [ "$span" -le 999 ] || span=999   # the walk's delays are 0.000 to 0.999 s
n0=$(records)
kills=$(kill_walk "$span")
ct_diag "kill -9 x 50 (rebind, over ${span} ms): $kills"
row "kill -9 of a reconcile at 50 points during a rebind" "$([ "${kills%% *}" = 0 ] && echo ok || echo FAIL)" \
	"${kills%% *} of 50 left a torn history, a temporary file, the lock held or the rules cut; $(( $(records) - n0 )) whole records"
ct_exec rm -f /etc/apt/apt.conf.d/60rebind

# systemd finishes a reload job whoever asked for it: let the last one end before the next run
for _ in $(seq 100); do [ -z "$(ct_exec systemctl list-jobs --no-legend)" ] && break; sleep 0.1; done
out=$(ct_exec reconcile-after-upgrade 2>&1)
rc=$?
row "after the kills, the next run repairs what is left" \
	"$([ $rc -eq 0 ] && ct_exec nft list table inet filter >/dev/null && ct_exec reconcile-after-upgrade -q check && echo ok || echo FAIL)" \
	"exit $rc: $(tail -n 1 <<<"$out")"

# --- the apt hook killed while apt waits: apt's own exit status is unchanged (the hook line is "|| true")
ct_exec systemctl restart tailscaled.service
for _ in $(seq 100); do ct_exec ip link show tailscale0 >/dev/null 2>&1 && break; sleep 0.05; done
t0=$(date +%s.%N)
ct_exec rm -f /var/tmp/killed
out=$(ct_exec sh -c '(for i in $(seq 1000); do pkill -9 -f "reconcile-after-upgrade --hook=apt$" &&
		{ echo killed >/var/tmp/killed; break; }; sleep 0.005; done) &
	apt-get install -y --reinstall /var/tmp/rau-fault-probe.deb 2>&1; echo "apt exit $?"; wait')
killed=$(ct_exec cat /var/tmp/killed 2>/dev/null)
secs=$(ct_secs "$t0" "$(date +%s.%N)")
set -- $(ct_exec /var/tmp/invariants)
ct_diag "apt with its hook killed ($secs s): $(grep -E '^apt exit|^E:|reconcile' <<<"$out" | tr '\n' ' ')"
row "the apt Post-Invoke hook killed with SIGKILL while apt waits" \
	"$([ "$killed" = killed ] && [ "$(tail -n 1 <<<"$out")" = "apt exit 0" ] && [ "$1 $2 $3" = "yes yes yes" ] && echo ok || echo FAIL)" \
	"${killed:-not killed}, $(tail -n 1 <<<"$out"), history $1, tmp $2, lock $3, $secs s"
for _ in $(seq 100); do [ -z "$(ct_exec systemctl list-jobs --no-legend)" ] && break; sleep 0.1; done
ct_exec reconcile-after-upgrade -q >/dev/null

# --- two hooks and a manual run at once: one reload, every exit as it should be, one record
ct_exec systemctl restart tailscaled.service
for _ in $(seq 100); do ct_exec ip link show tailscale0 >/dev/null 2>&1 && break; sleep 0.05; done
r0=$(nftables_local_reloads)
n0=$(records)
out=$(ct_exec sh -c '
	reconcile-after-upgrade --hook=apt >/var/tmp/h1 2>&1 & a=$!
	reconcile-after-upgrade --hook=dpkg-trigger >/var/tmp/h2 2>&1 & b=$!
	reconcile-after-upgrade >/var/tmp/m 2>&1 & c=$!
	wait $a; ra=$?; wait $b; rb=$?; wait $c; rc=$?
	echo "$ra $rb $rc"')
r1=$(nftables_local_reloads)
n1=$(records)
set -- $(ct_exec /var/tmp/invariants)
ct_diag "two hooks and a manual run: exits $out; reloads $((r1 - r0)); records $((n1 - n0))" "$(ct_exec sh -c 'tail -n 3 /var/tmp/h1 /var/tmp/h2 /var/tmp/m')"
row "two hooks and a manual run at once" \
	"$([ "$out" = "0 0 0" ] && [ $((r1 - r0)) -eq 1 ] && [ $((n1 - n0)) -eq 1 ] && [ "$1 $2 $3" = "yes yes yes" ] && echo ok || echo FAIL)" \
	"exits $out, $((r1 - r0)) reload(s), $((n1 - n0)) record(s)"

ct_check "the foreign table is intact" foreign_intact
ct_diag "fault matrix (system): fault, verdict, details"
printf '# %s\n' "${ROWS[@]}"
ct_poweroff
ct_tap_done

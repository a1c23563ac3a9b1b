#!/bin/bash
# tests/system/replay.sh: the incident replayed in a booted Debian 12 container. A tailscale stand-in (fakescale/)
# goes 1.0 -> 1.1 from a local file: repository through the real unattended-upgrade, whose dpkg run restarts
# tailscaled (debhelper-style postinst), which re-creates tailscale0 with a new ifindex, while the post-mortem's
# nftables-local.service (oneshot, Wants= only) keeps the rules it loaded. TAP on stdout. Root only.
#
# Halves, one container each:
#   replay_control  without reconcile-after-upgrade: the rules are left holding the old index, as in the incident.
#   replay_product  with the .deb installed: the hooks and the trigger reload nftables-local.service, the rules are
#                   fresh, the record names the package; then the dpkg-trigger path (dpkg -i 1.2, no apt) and a
#                   chroot-style apt run (systemd not running) where apt succeeds and the hook says it skipped.
#
# Env: top_builddir (holds tests/tun-holder; default /work/main/build), TUN_HOLDER (default
# $top_builddir/tests/tun-holder), RAU_REPLAY_WORK (host temp dirs, default /var/tmp). Host tools: dpkg-deb,
# apt-ftparchive (apt-utils), plus what container.sh needs.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=container.sh
. "$here/container.sh"
# shellcheck source=postmortem-units.sh
. "$here/postmortem-units.sh"
: "${top_builddir:=/work/main/build}"
: "${TUN_HOLDER:=$top_builddir/tests/tun-holder}"
: "${RAU_REPLAY_WORK:=/var/tmp}"
: "${top_srcdir:=$(cd "$here/../.." && pwd)}"
# needrestart runs beside us on many machines: its Post-Invoke hook must come before ours
export RAU_CT_EXTRA_PACKAGES=needrestart
BUILD_REPO=$here/fakescale/build-repo

# replay_init: checks the host, makes the repository's temp dir (removed at exit, after the power off).
replay_init() {
	T_START=$(date +%s.%N)
	[ "$(id -u)" -eq 0 ] || { echo "1..0 # SKIP the container tier needs root"; exit 0; }
	local tool
	for tool in debootstrap systemd-nspawn nsenter dpkg-deb apt-ftparchive; do
		command -v "$tool" >/dev/null ||
			ct_bail "$tool is missing (apt-get install systemd-container debootstrap util-linux dpkg apt-utils)"
	done
	[ -x "$TUN_HOLDER" ] || ct_bail "$TUN_HOLDER not built (cd $top_builddir && make tests/tun-holder)"
	DEB=$("$top_srcdir/tests/system/build-deb" "$top_builddir/deb") || ct_bail "could not build the .deb"
	REPO_HOST=$(mktemp -d "$RAU_REPLAY_WORK/rau-replay-repo.XXXXXX") || ct_bail "no temp dir in $RAU_REPLAY_WORK"
	# set before ct_boot: container.sh runs it after powering the container off
	trap 'rm -rf "$REPO_HOST"' EXIT
	ct_rootfs_ensure || ct_bail "could not build the container rootfs"
}

# ---------------------------------------------------------------- steps shared by the halves
# publish VERSION [EXTRA_VERSION...]: build the packages on the host and publish VERSION only.
publish() {
	local v=$1
	"$BUILD_REPO" --publish "$v" "$REPO_HOST" "$TUN_HOLDER" "$@"
}

# repo_copy_in: the host repository replaces /var/tmp/repo inside the container (through the container's own
# view of its filesystem, like ct_copy_in).
repo_copy_in() {
	tar -C "$REPO_HOST" --exclude='./.work.*' -cf - . |
		ct_exec sh -c 'rm -rf /var/tmp/repo.new && mkdir -p /var/tmp/repo.new &&
			tar -xf - -C /var/tmp/repo.new --no-same-owner && chmod -R u=rwX,go=rX /var/tmp/repo.new &&
			rm -rf /var/tmp/repo && mv /var/tmp/repo.new /var/tmp/repo'
}

ifindex() { ct_exec ip -o link show tailscale0 2>/dev/null | awk -F': ' 'NR == 1 { print $1 }'; }
# wait_ifindex_not OLD: until tailscale0 exists with an index other than OLD (empty: any); prints it (bounded, 5 s).
wait_ifindex_not() {
	local i idx=
	for ((i = 0; i < 100; i++)); do
		idx=$(ifindex)
		[ -n "$idx" ] && [ "$idx" != "${1:-}" ] && break
		sleep 0.05
	done
	echo "$idx"
}
# no_progress: drop dpkg's "(Reading database ... 5%" progress from a log
no_progress() { sed -E 's/^\(Reading database .*\(Reading database \.\.\. /(Reading database ... /'; }
# shellcheck disable=SC2016 # a dpkg-query format
pkg_version() { ct_exec dpkg-query -W -f='${Version}' tailscale 2>/dev/null; }
forward_chain() { ct_exec nft list chain inet filter forward 2>&1; }

# replay_prepare NAME: boot a container, point apt at the local repository with 1.0 published, install
# tailscale 1.0, the post-mortem's firewall, and the unattended-upgrades configuration for the repository.
replay_prepare() {
	local name=$1 out rc
	publish 1.0 1.2 || ct_bail "build-repo failed"
	ct_boot "$name" || ct_bail "container did not boot"
	repo_copy_in || ct_bail "could not copy the repository into the container"
	# the container has no network: this repository is apt's only source
	ct_exec sh -c ': >/etc/apt/sources.list; rm -f /etc/apt/sources.list.d/*;
		echo "deb [trusted=yes] file:/var/tmp/repo stable main" >/etc/apt/sources.list.d/tailscale.list'
	out=$(ct_exec apt-get update 2>&1)
	rc=$?
	[ $rc -eq 0 ] || ct_diag "$out"
	ct_check "apt-get update exits 0 with only the local repository" test $rc -eq 0
	ct_check "apt offers tailscale 1.0 from it" \
		ct_exec sh -c 'apt-cache policy tailscale | grep -q "Candidate: 1.0"'
	out=$(ct_exec apt-get install -y tailscale=1.0 2>&1)
	rc=$?
	[ $rc -eq 0 ] || ct_diag "$out"
	ct_check "apt-get install tailscale=1.0 exits 0" test $rc -eq 0
	IDX_INSTALLED=$(wait_ifindex_not '')
	ct_check "tailscale0 exists (ifindex ${IDX_INSTALLED:-none})" test -n "$IDX_INSTALLED"
	ct_check "tailscaled.service is active" ct_exec systemctl is-active --quiet tailscaled.service

	install_postmortem_units || ct_bail "could not install the post-mortem's units"
	ct_exec systemctl enable --now nftables-local.service >/dev/null 2>&1
	out=$(forward_chain)
	ct_check "nftables-local.service loaded iif/oif \"tailscale0\" rules" \
		test "$(grep -cE '(iif|oif) "tailscale0"' <<<"$out")" -eq 2

	# unattended-upgrades: allow the repository's origin (see fakescale/README.md for why this is enough)
	ct_exec sh -c 'cat >/etc/apt/apt.conf.d/51replay' <<'CONF'
Unattended-Upgrade::Origins-Pattern { "origin=Tailscale,suite=stable"; };
CONF
	# count the hook runs (a diagnostic: apt runs DPkg::Pre/Post-Invoke around every dpkg call it makes)
	ct_exec sh -c 'cat >/etc/apt/apt.conf.d/52replay-count' <<'CONF'
DPkg::Pre-Invoke { "echo pre-invoke >>/var/tmp/pre-invoke.count"; };
DPkg::Post-Invoke { "echo post-invoke >>/var/tmp/post-invoke.count"; };
CONF
	out=$(ct_exec unattended-upgrade --dry-run -v 2>&1)
	rc=$?
	ct_check "unattended-upgrade --dry-run: nothing to upgrade yet (exit $rc)" \
		test "$rc $(grep -c 'No packages found that can be upgraded unattended' <<<"$out")" = "0 1"
	[ $rc -eq 0 ] || ct_diag "$out"
}

# replay_upgrade: publish 1.1 and run the real unattended-upgrade. Sets UU_RC UU_SECS IDX_BEFORE IDX_AFTER
# RULES_BEFORE RULES_AFTER (the forward chain) UU_OUT POST_INVOKES PRE_INVOKES for the half's assertions.
replay_upgrade() {
	local t0 t1
	IDX_BEFORE=$(ifindex)
	# shellcheck disable=SC2034 # for the halves
	RULES_BEFORE=$(forward_chain)
	ct_diag "ruleset before the upgrade (tailscale0 is ifindex $IDX_BEFORE):" "$(ct_exec nft list ruleset)"
	publish 1.1 || ct_bail "build-repo 1.1 failed"
	repo_copy_in || ct_bail "could not copy the repository into the container"
	ct_check "apt-get update sees tailscale 1.1" \
		ct_exec sh -c 'apt-get update >/dev/null 2>&1 && apt-cache policy tailscale | grep -q "Candidate: 1.1"'
	ct_exec rm -f /var/tmp/post-invoke.count /var/tmp/pre-invoke.count
	local n_log n_dpkg_log
	n_log=$(ct_exec sh -c 'cat /var/log/unattended-upgrades/unattended-upgrades.log 2>/dev/null | wc -l')
	n_dpkg_log=$(ct_exec sh -c 'cat /var/log/unattended-upgrades/unattended-upgrades-dpkg.log 2>/dev/null | wc -l')
	t0=$(date +%s.%N)
	UU_OUT=$(ct_exec unattended-upgrade -v 2>&1)
	UU_RC=$?
	t1=$(date +%s.%N)
	UU_SECS=$(ct_secs "$t0" "$t1")
	IDX_AFTER=$(wait_ifindex_not "$IDX_BEFORE")
	RULES_AFTER=$(forward_chain)
	POST_INVOKES=$(ct_exec sh -c 'cat /var/tmp/post-invoke.count 2>/dev/null | wc -l')
	PRE_INVOKES=$(ct_exec sh -c 'cat /var/tmp/pre-invoke.count 2>/dev/null | wc -l')
	ct_diag "unattended-upgrade -v: exit $UU_RC in $UU_SECS s; DPkg::Pre-Invoke ran $PRE_INVOKES times, DPkg::Post-Invoke $POST_INVOKES times"
	[ "$UU_RC" -eq 0 ] || ct_diag "unattended-upgrade output:" "$(no_progress <<<"$UU_OUT")"
	ct_diag "unattended-upgrades.log, this run:" \
		"$(ct_exec tail -n +$((n_log + 1)) /var/log/unattended-upgrades/unattended-upgrades.log 2>&1)"
	ct_diag "unattended-upgrades-dpkg.log, this run:" \
		"$(ct_exec tail -n +$((n_dpkg_log + 1)) /var/log/unattended-upgrades/unattended-upgrades-dpkg.log 2>&1 |
			no_progress)"
	ct_diag "ruleset after (tailscale0 is ifindex ${IDX_AFTER:-none}):" "$(ct_exec nft list ruleset)"
}

# the dpkg-trigger path: a bare dpkg -i that apt never sees (no Pre/Post-Invoke hook runs). Sets DPKG_RC
# IDX_DPKG_BEFORE IDX_DPKG_AFTER.
replay_dpkg_i() {
	local out
	IDX_DPKG_BEFORE=$(ifindex)
	out=$(ct_exec dpkg -i /var/tmp/repo/debs/tailscale_1.2_amd64.deb 2>&1)
	DPKG_RC=$?
	IDX_DPKG_AFTER=$(wait_ifindex_not "$IDX_DPKG_BEFORE")
	ct_diag "dpkg -i tailscale_1.2_amd64.deb: exit $DPKG_RC; tailscale0 ifindex $IDX_DPKG_BEFORE -> ${IDX_DPKG_AFTER:-none}" "$out"
	ct_check "dpkg -i tailscale 1.2 exits 0" test "$DPKG_RC" -eq 0
	ct_check "dpkg -i: tailscale 1.2 installed" test "$(pkg_version)" = 1.2
	ct_check "dpkg -i: tailscale0 re-created with a new ifindex ($IDX_DPKG_BEFORE -> ${IDX_DPKG_AFTER:-none})" \
		test -n "$IDX_DPKG_AFTER" -a "$IDX_DPKG_AFTER" != "$IDX_DPKG_BEFORE"
}

# ---------------------------------------------------------------- the control half
replay_control() {
	replay_prepare rau-replay-control
	replay_upgrade
	ct_check "unattended-upgrade exits 0" test "$UU_RC" -eq 0
	ct_check "it upgraded tailscale to 1.1 (dpkg-query: $(pkg_version))" test "$(pkg_version)" = 1.1
	ct_check "tailscaled.service is active after the upgrade" ct_exec systemctl is-active --quiet tailscaled.service
	ct_check "tailscale0 was re-created with a new ifindex ($IDX_BEFORE -> ${IDX_AFTER:-none})" \
		test -n "$IDX_AFTER" -a "$IDX_AFTER" != "$IDX_BEFORE"
	ct_check "nftables-local.service did not run again (oneshot, Wants= only)" \
		test "$(ct_exec journalctl -q -u nftables-local.service -o cat | grep -c 'Finished nftables-local.service')" -eq 1
	ct_check "control: the forward chain holds the stale index (iif $IDX_BEFORE / oif $IDX_BEFORE), as in the incident" \
		test "$(grep -cE "(iif|oif) $IDX_BEFORE " <<<"$RULES_AFTER")" -eq 2
	ct_check "control: no rule names tailscale0 any more" test "$(grep -c '"tailscale0"' <<<"$RULES_AFTER")" -eq 0
	replay_dpkg_i
	ct_check "control: after dpkg -i the rules still hold the first index" \
		test "$(forward_chain | grep -cE "(iif|oif) $IDX_BEFORE ")" -eq 2
	ct_check "the container powered off cleanly" ct_poweroff
}

# ---------------------------------------------------------------- the half with the product
# record_field JQ: from the newest history record
last_record() { ct_exec tail -n 1 /var/lib/reconcile-after-upgrade/history.jsonl 2>/dev/null; }
records() { ct_exec sh -c 'cat /var/lib/reconcile-after-upgrade/history.jsonl 2>/dev/null | wc -l'; }
# usec_of UNIT PROPERTY: a unit's timestamp as seconds since the epoch, to the µs
unit_time() {
	local t
	t=$(ct_exec systemctl show -p "$2" --value --timestamp=us+utc "$1")
	date -u -d "${t% UTC}" +%s.%N 2>/dev/null
}
fresh() { test "$(grep -cE '(iif|oif) "tailscale0"' <<<"$1")" -eq 2 && ! grep -qE '(iif|oif) [0-9]+ ' <<<"$1"; }
reloads() { nftables_local_reloads; }

replay_product() {
	local out rc rec n0 r0 line t_stale t_fresh
	replay_prepare rau-replay-product
	ct_copy_in "$DEB" /var/tmp/reconcile-after-upgrade.deb
	out=$(ct_exec apt-get install -y /var/tmp/reconcile-after-upgrade.deb 2>&1)
	rc=$?
	[ $rc -eq 0 ] || ct_diag "$out"
	ct_check "apt-get install of the .deb exits 0 (no network: its dependencies are in the rootfs)" test $rc -eq 0
	ct_check "our Post-Invoke hook runs after needrestart's (apt.conf.d file-name order)" \
		test "$(ct_exec apt-config dump DPkg::Post-Invoke | grep -oE 'needrestart|reconcile-after-upgrade' | uniq |
			tr '\n' ' ')" = "needrestart reconcile-after-upgrade "

	r0=$(reloads)
	replay_upgrade
	ct_check "unattended-upgrade exits 0" test "$UU_RC" -eq 0
	ct_check "it upgraded tailscale to 1.1 (dpkg-query: $(pkg_version))" test "$(pkg_version)" = 1.1
	ct_check "tailscale0 was re-created with a new ifindex ($IDX_BEFORE -> ${IDX_AFTER:-none})" \
		test -n "$IDX_AFTER" -a "$IDX_AFTER" != "$IDX_BEFORE"
	ct_check "the rules are fresh: iif/oif \"tailscale0\", no bare index" fresh "$RULES_AFTER"
	ct_check "nftables-local.service was reloaded once" test "$(($(reloads) - r0))" -eq 1
	ct_check "the watcher (the package's service) was running throughout" \
		test "$(ct_exec systemctl show -P NRestarts reconcile-after-upgrade.service) $(ct_exec systemctl is-active reconcile-after-upgrade.service)" = "0 active"
	out=$(ct_exec cat /var/log/unattended-upgrades/unattended-upgrades-dpkg.log | grep '^reconcile-after-upgrade:')
	ct_diag "our lines in unattended-upgrades-dpkg.log:" "$out"
	rec=$(last_record)
	ct_diag "the history record:" "$(jq . <<<"$rec")"
	# The restart happens inside dpkg's run: the dpkg trigger (at the end of it) and the watcher (200 ms after
	# tailscale0 came back) both look, under one lock; whichever comes first repairs, the other finds nothing.
	case $(jq -r .via <<<"$rec") in
	dpkg-trigger)
		ct_check "repaired by the dpkg trigger: one line in the unattended-upgrades log says what was reloaded and why" \
			test "$(grep -c 'tailscale0 recreated by tailscale 1.0->1.1 (Tailscale stable).*reloaded nftables-local.service.*verified fresh' <<<"$out")" -eq 1
		ct_check "and no other line of ours (the watcher found nothing to do)" test "$(wc -l <<<"$out")" -eq 1 ;;
	watch)
		ct_check "repaired by the watcher, first: the trigger and the hooks found nothing to do (no line)" \
			test -z "$out"
		ct_ok "(the dpkg trigger did not come first: nothing of it to check)" ;;
	*) ct_not_ok "repaired by the dpkg trigger or the watcher (via: $(jq -r .via <<<"$rec"))"; ct_not_ok "-" ;;
	esac
	ct_check "one history record: outcome fixed, package tailscale 1.0 -> 1.1 from Tailscale stable" \
		test "$(records) $(jq -c '[.outcome, .packages[0].package, .packages[0].version_before, .packages[0].version, .packages[0].origin, .packages[0].units]' <<<"$rec")" = \
		'1 ["fixed","tailscale","1.0","1.1","Tailscale stable",["tailscaled.service"]]'
	ct_check "the journal has the entry" \
		test "$(ct_exec journalctl -q MESSAGE_ID=1081ccdfd4e44403bdfd47027dcb408a -o json | jq -r .RAU_PACKAGES)" = "tailscale 1.0->1.1 (Tailscale stable)"
	t_stale=$(unit_time tailscaled.service ActiveEnterTimestamp)
	t_fresh=$(jq .finished <<<"$rec")
	STALE_WINDOW=$(ct_secs "$t_stale" "$t_fresh")
	ct_diag "rules stale from tailscaled's restart to verified fresh: $STALE_WINDOW s (via $(jq -r .via <<<"$rec"); the post-mortem's outage: 4 h 33 min)"
	ct_check "verified fresh within 1 s of the daemon's restart" awk -v s="$STALE_WINDOW" 'BEGIN { exit !(s >= 0 && s <= 1) }'

	# The dpkg-trigger path: dpkg -i, no apt, so no apt hook; dpkg's trigger on the unit directories runs us.
	# The watcher stopped: it would race the trigger, and this is the trigger's test (watch.sh is the watcher's).
	ct_exec systemctl stop reconcile-after-upgrade.service
	n0=$(records) r0=$(reloads)
	replay_dpkg_i
	ct_check "dpkg -i: the rules are fresh again" fresh "$(forward_chain)"
	ct_check "dpkg -i: nftables-local.service reloaded once" test "$(($(reloads) - r0))" -eq 1
	rec=$(last_record)
	ct_check "dpkg -i: one new record, via the dpkg trigger, tailscale 1.1 -> 1.2 (no origin: not from a repository)" \
		test "$(($(records) - n0)) $(jq -c '[.via, .outcome, .packages[0].version_before, .packages[0].version, .packages[0].origin]' <<<"$rec")" = \
		'1 ["dpkg-trigger","fixed","1.1","1.2",null]'
	ct_exec systemctl start reconcile-after-upgrade.service

	# The package's own autopkgtest, on this booted system (the test daemon built on the host)
	ct_copy_in "$top_srcdir/debian/tests/incident" /var/tmp/autopkgtest-incident
	ct_copy_in "$TUN_HOLDER" /var/tmp/autopkgtest-tun-holder
	out=$(ct_exec env RAU_TUN_HOLDER=/var/tmp/autopkgtest-tun-holder AUTOPKGTEST_TMP=/var/tmp \
		/var/tmp/autopkgtest-incident 2>&1)
	rc=$?
	ct_diag "debian/tests/incident (exit $rc):" "$out"
	ct_check "the autopkgtest debian/tests/incident passes on the booted container" test $rc -eq 0

	# Nothing network-related changes: the hooks stay silent and record nothing.
	n0=$(records)
	out=$(ct_exec apt-get install -y --reinstall /var/tmp/reconcile-after-upgrade.deb 2>&1 </dev/null)
	rc=$?
	got="$rc $(grep -c '^Setting up reconcile-after-upgrade' <<<"$out") $(grep -c '^reconcile-after-upgrade:' <<<"$out") $(($(records) - n0))"
	[ "$got" = "0 1 0 0" ] || ct_diag "exit, set-up lines, our lines, new records: $got" "$out" \
		"$(ct_exec tail -n 1 /var/lib/reconcile-after-upgrade/history.jsonl | jq -c '[.via, .outcome, .cause, .interfaces, .stale]')"
	ct_check "an apt run that changes nothing network-related: exit 0, dpkg ran, no line of ours, no record" \
		test "$got" = "0 1 0 0"

	# Chroot-style: the same rootfs from outside, where systemd is not running (as in debootstrap or an image
	# build). apt must succeed; the hook says it skipped; the host's rules are not touched.
	out=$(chroot "$CT_ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --allow-downgrades tailscale=1.1 2>&1 </dev/null)
	rc=$?
	ct_diag "chroot apt-get install tailscale=1.1 (exit $rc):" "$out"
	ct_check "chroot: apt exits 0 and installed tailscale 1.1" test "$rc $(pkg_version)" = "0 1.1"
	# once from the dpkg trigger, once from the Post-Invoke hook, and nothing else of ours
	ct_check "chroot: the trigger and the hook each say they skipped, in one line" \
		test "$(grep -c '^reconcile-after-upgrade:' <<<"$out") $(grep -c '^reconcile-after-upgrade: systemd is not running here (chroot or image build): skipped.$' <<<"$out")" = "2 2"

	# A rescue chroot, the common recipe: /proc and /run bind-mounted, so /run/systemd/system is there (the running
	# system's). The chroot's root is not PID 1's: still skipped. (In a network namespace of its own: were it not
	# skipped, it could not touch the host's rules.)
	mount --bind "/proc/$CT_PID1/root/run" "$CT_ROOT/run" && mount -t proc proc "$CT_ROOT/proc"
	out=$(unshare -n chroot "$CT_ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --reinstall tailscale=1.1 2>&1 </dev/null)
	rc=$?
	umount "$CT_ROOT/proc" "$CT_ROOT/run"
	ct_diag "rescue chroot (with /proc and /run) apt-get install --reinstall (exit $rc):" "$(grep '^reconcile' <<<"$out")"
	ct_check "rescue chroot with /run bind-mounted: apt exits 0, and the trigger and the hook still skip" \
		test "$rc $(grep -c '^reconcile-after-upgrade: systemd is not running here (chroot or image build): skipped.$' <<<"$out")" = "0 2"
	ct_check "the container powered off cleanly" ct_poweroff
}

# ---------------------------------------------------------------- installed with dpkg, then a bare dpkg -i at once
# No apt (so no Pre-Invoke snapshot), no earlier run: only the postinst's baseline says what tailscale0's index
# was when the daemon's dpkg -i re-creates it. Then, with the baseline and the history gone, the hook's line names
# the tables, since no interface can be named.
replay_first_dpkg() {
	local out rc rec
	replay_prepare rau-replay-first
	ct_copy_in "$DEB" /var/tmp/reconcile-after-upgrade.deb
	out=$(ct_exec dpkg -i /var/tmp/reconcile-after-upgrade.deb 2>&1)
	rc=$?
	[ $rc -eq 0 ] || ct_diag "$out"
	ct_check "dpkg -i of the .deb exits 0, silently" test "$rc $(grep -c '^reconcile-after-upgrade' <<<"$out")" = "0 0"
	ct_check "its postinst took the baseline: a snapshot naming tailscale0's index, and the link history" 		test "$(ct_exec jq -c --argjson i "$IDX_INSTALLED" '[.links[] | select(.name == "tailscale0") | .ifindex == $i]' 			/run/reconcile-after-upgrade/snapshot.json) $(ct_exec jq '.links | length > 0' /var/lib/reconcile-after-upgrade/links.json)" = "[true] true"
	ct_check "it enabled and started the watcher" test "$(ct_exec systemctl is-enabled reconcile-after-upgrade.service) $(ct_exec systemctl is-active reconcile-after-upgrade.service)" = "enabled active"
	# the trigger's test: the watcher would race it (watch.sh is the watcher's)
	ct_exec systemctl stop reconcile-after-upgrade.service
	replay_dpkg_i
	ct_check "the first dpkg -i of the daemon after installing: the rules are fresh" fresh "$(forward_chain)"
	rec=$(last_record)
	ct_check "one record, via the dpkg trigger, fixed, knowing what the index was" 		test "$(records) $(jq -c '[.via, .outcome, (.stale | map(.was) | unique)]' <<<"$rec")" = 		'1 ["dpkg-trigger","fixed",["tailscale0"]]'

	ct_exec rm -f /run/reconcile-after-upgrade/snapshot.json /var/lib/reconcile-after-upgrade/links.json
	ct_exec systemctl restart tailscaled.service
	wait_ifindex_not "$IDX_DPKG_AFTER" >/dev/null
	out=$(ct_exec reconcile-after-upgrade --hook=apt 2>&1)
	rc=$?
	ct_diag "the hook with no snapshot and no history: $out"
	ct_check "no interface can be named: the hook's one line names the table instead" 		test "$rc $(wc -l <<<"$out") $(grep -c '^reconcile-after-upgrade: table inet filter; 2 stale rule reference(s); ' <<<"$out")" = "0 1 1"
	ct_check "the container powered off cleanly" ct_poweroff
}

replay_main() {
	replay_init
	replay_control
	replay_product
	replay_first_dpkg
	ct_diag "whole replay: $(ct_secs "$T_START" "$(date +%s.%N)") s"
	ct_tap_done
}

# sourced (to reuse the steps, or to run one half by hand): define only
[ "${BASH_SOURCE[0]}" != "$0" ] || replay_main

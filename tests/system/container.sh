# tests/system/container.sh: a booted Debian 12 container with real systemd, for the system test tier.
# Sourced, not run (bash). Needs root, debootstrap, systemd-nspawn (systemd-container), nsenter, flock.
#
#   . tests/system/container.sh
#   ct_rootfs_ensure            # build or reuse the cached rootfs (keyed by its package list)
#   ct_boot rau-test            # fresh copy of it, booted; sets CT_ROOT CT_PID1 CT_NSPAWN_PID CT_LOG
#   ct_exec systemctl status    # run a command inside (exit status and output are the command's)
#   ct_copy_in ./bin /usr/local/bin/bin
#   ct_reboot                   # a real reboot: nspawn exits 133, the same rootfs boots again
#   ct_poweroff                 # also run by the EXIT trap ct_boot installs
#
# ct_boot installs `trap ct_cleanup EXIT` (and turns INT/TERM/HUP into an exit); an EXIT trap the caller set
# before ct_boot still runs, after the power off. Set no EXIT trap after ct_boot (or call ct_cleanup from it).
# Call ct_boot in the main shell, not in $(...) or a pipeline: it keeps state in shell variables and waits for
# the nspawn child. ct_exec passes stdin through: inside a `while read` loop, give it </dev/null.
#
# Environment:
#   RAU_CT_CACHE          where cached rootfs live (default /var/cache/reconcile-after-upgrade-tests)
#   RAU_CT_MIRROR         Debian mirror (default: first URIs: of /etc/apt/sources.list.d/debian.sources)
#   RAU_CT_EXTRA_PACKAGES more packages for the rootfs, comma or space separated (part of the cache key)
#   RAU_CT_FRESH          overlay | copy: how each boot gets a fresh rootfs (default overlay, falls back to copy)
#   RAU_CT_WORK           where per-boot temp dirs go (default /var/tmp)
#   RAU_CT_KEEP=1         keep the per-boot rootfs and log after power off (debugging)
#   RAU_CT_BOOT_TIMEOUT   seconds for boot to reach running/degraded (default 60)
#   RAU_CT_EXEC_TIMEOUT   seconds a ct_exec command may take (default 300)

: "${RAU_CT_CACHE:=/var/cache/reconcile-after-upgrade-tests}"
: "${RAU_CT_FRESH:=overlay}"
: "${RAU_CT_WORK:=/var/tmp}"
: "${RAU_CT_BOOT_TIMEOUT:=60}"
: "${RAU_CT_EXEC_TIMEOUT:=300}"
CT_SUITE=bookworm
# Bump when the way the rootfs is prepared changes: it is part of the cache key.
CT_RECIPE=1
CT_PACKAGES=(systemd systemd-sysv dbus nftables iproute2 apt unattended-upgrades jq procps
	libnftnl11 libnftables1 libjansson4 libmnl0 libsystemd0 libapt-pkg6.0)
CT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# State of the one booted container (ct_boot sets, ct_poweroff clears).
CT_ROOTFS_CACHED='' CT_NAME='' CT_TMP='' CT_ROOT='' CT_LOG='' CT_NSPAWN_PID='' CT_PID1='' CT_OVERLAY=''
CT_EXIT_STATUS='' CT_TRAPPED='' CT_PREV_EXIT_TRAP=''

ct_log() { echo "# ct: $*" >&2; }
ct_die() { echo "# ct: error: $*" >&2; return 1; }

# ---------------------------------------------------------------- TAP (own helpers: ../lib.sh belongs to the other tiers)
CT_TAP_N=0
CT_TAP_FAILED=0
ct_ok() { CT_TAP_N=$((CT_TAP_N + 1)); echo "ok $CT_TAP_N - $*"; }
ct_not_ok() { CT_TAP_N=$((CT_TAP_N + 1)); CT_TAP_FAILED=$((CT_TAP_FAILED + 1)); echo "not ok $CT_TAP_N - $*"; }
# ct_check DESCRIPTION COMMAND...: one TAP line from a command's exit status.
ct_check() { local d=$1; shift; if "$@"; then ct_ok "$d"; else ct_not_ok "$d"; fi; }
# ct_diag TEXT...: TAP diagnostics (each line prefixed with "# ").
ct_diag() { printf '%s\n' "$@" | sed 's/^/# /'; }
ct_tap_done() { echo "1..$CT_TAP_N"; [ "$CT_TAP_FAILED" -eq 0 ]; }
ct_bail() { echo "Bail out! $*"; exit 1; }
# ct_secs START END: seconds between two `date +%s.%N` stamps, to 0.01 s.
ct_secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# ---------------------------------------------------------------- the cached rootfs
ct_mirror() {
	if [ -n "${RAU_CT_MIRROR:-}" ]; then echo "$RAU_CT_MIRROR"; return; fi
	local m=
	if [ -r /etc/apt/sources.list.d/debian.sources ]; then
		m=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
	fi
	if [ -z "$m" ] && [ -r /etc/apt/sources.list ]; then
		m=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:/) { print $i; exit } }' /etc/apt/sources.list)
	fi
	echo "${m:-http://deb.debian.org/debian}"
}

ct_package_list() {
	local extra=${RAU_CT_EXTRA_PACKAGES:-}
	# shellcheck disable=SC2086 # split the extra list on blanks
	printf '%s\n' "${CT_PACKAGES[@]}" ${extra//,/ } | sort -u | paste -sd, -
}

# ct_rootfs_key: the cache key, a hash of what goes into the rootfs (suite, variant, recipe, package list).
ct_rootfs_key() {
	printf 'suite=%s\nvariant=minbase\nrecipe=%s\npackages=%s\narch=%s\n' \
		"$CT_SUITE" "$CT_RECIPE" "$(ct_package_list)" "$(dpkg --print-architecture)" |
		sha256sum | cut -c1-16
}

# ct_rootfs_ensure: sets CT_ROOTFS_CACHED to a complete cached rootfs, building it first if needed (~60 s).
# Concurrent callers serialize on a lock; a build happens in a temp dir renamed into place when complete,
# and a rootfs without its completion stamp is never used.
ct_rootfs_ensure() {
	local key dir lock fd build rc
	key=$(ct_rootfs_key) || return 1
	dir=$RAU_CT_CACHE/rootfs-$CT_SUITE-$key
	if [ -f "$dir/etc/rau-ct-complete" ]; then CT_ROOTFS_CACHED=$dir; return 0; fi
	mkdir -p "$RAU_CT_CACHE" || return 1
	lock=$RAU_CT_CACHE/.lock-$key
	exec {fd}>"$lock" || return 1
	if ! flock -w 1200 "$fd"; then exec {fd}>&-; ct_die "timed out waiting for $lock"; return 1; fi
	if [ -f "$dir/etc/rau-ct-complete" ]; then
		exec {fd}>&-; CT_ROOTFS_CACHED=$dir; return 0
	fi
	# We hold the lock: anything half-built for this key is a leftover of an interrupted build.
	rm -rf "$RAU_CT_CACHE"/.build-"$key".* "$dir"
	build=$(mktemp -d "$RAU_CT_CACHE/.build-$key.XXXXXX") || { exec {fd}>&-; return 1; }
	ct_log "building rootfs $dir (packages $(ct_package_list)) from $(ct_mirror)"
	local t0=$SECONDS
	( ct_rootfs_build "$build/root" ) >"$build/build.log" 2>&1
	rc=$?
	if [ $rc -eq 0 ] && [ -f "$build/root/etc/rau-ct-complete" ] && mv -T "$build/root" "$dir"; then
		cp "$build/build.log" "$RAU_CT_CACHE/rootfs-$CT_SUITE-$key.log" 2>/dev/null
		rm -rf "$build"
		ct_log "rootfs built in $((SECONDS - t0)) s"
		exec {fd}>&-
		CT_ROOTFS_CACHED=$dir
		return 0
	fi
	ct_log "rootfs build failed (exit $rc); last lines of the log:"
	tail -n 25 "$build/build.log" | sed 's/^/# ct:   /' >&2
	rm -rf "$build"
	exec {fd}>&-
	return 1
}

# ct_rootfs_build DIR: debootstrap and prepare DIR (runs in a subshell; output goes to the build log).
ct_rootfs_build() {
	set -e
	local root=$1
	export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 PATH=$CT_PATH
	timeout -k 10 1200 debootstrap --variant=minbase --components=main \
		--include="$(ct_package_list)" "$CT_SUITE" "$root" "$(ct_mirror)"
	# Every package must really be there (debootstrap does not fail on all missing --include).
	local p missing=
	for p in $(ct_package_list | tr , ' '); do
		# shellcheck disable=SC2016 # a dpkg-query format
		chroot "$root" dpkg-query -W -f='${db:Status-Status}\n' "$p" 2>/dev/null | grep -qx installed ||
			missing="$missing $p"
	done
	[ -z "$missing" ] || { echo "packages missing from the rootfs:$missing"; return 1; }
	chroot "$root" apt-get clean
	# The container has no network: no apt source it could not reach, no periodic apt runs during a test.
	: >"$root/etc/apt/sources.list"
	rm -rf "$root"/var/lib/apt/lists/*
	mkdir -p "$root/var/lib/apt/lists/partial"
	systemctl --root="$root" disable apt-daily.timer apt-daily-upgrade.timer 2>/dev/null || true
	systemctl --root="$root" mask apt-daily.service apt-daily-upgrade.service \
		systemd-networkd-wait-online.service 2>/dev/null || true
	echo rau-ct >"$root/etc/hostname"
	: >"$root/etc/machine-id" # systemd makes a new one at every boot
	printf 'key=%s\npackages=%s\nbuilt=%s\n' "$(ct_rootfs_key)" "$(ct_package_list)" "$(date -u +%FT%TZ)" \
		>"$root/etc/rau-ct-complete.tmp"
	sync -f "$root/etc"
	mv "$root/etc/rau-ct-complete.tmp" "$root/etc/rau-ct-complete"
}

# ---------------------------------------------------------------- one booted container
# ct_fresh_root DIR: a writable rootfs at DIR/root for one boot (overlayfs over the cache, or a copy).
ct_fresh_root() {
	local tmp=$1
	CT_ROOT=$tmp/root
	mkdir -p "$CT_ROOT"
	if [ "$RAU_CT_FRESH" = overlay ]; then
		mkdir -p "$tmp/upper" "$tmp/work"
		if mount -t overlay "rau-ct-$CT_NAME" \
			-o "lowerdir=$CT_ROOTFS_CACHED,upperdir=$tmp/upper,workdir=$tmp/work" "$CT_ROOT" 2>"$tmp/overlay.err"; then
			CT_OVERLAY=$CT_ROOT
			return 0
		fi
		ct_log "overlayfs failed ($(cat "$tmp/overlay.err")), copying the rootfs instead"
	fi
	cp -a --reflink=auto "$CT_ROOTFS_CACHED/." "$CT_ROOT/"
}

# ct_boot NAME: boot a fresh copy of the cached rootfs; returns once systemd says running or degraded.
ct_boot() {
	local name=${1:-rau-ct}
	[ -z "$CT_NSPAWN_PID" ] || { ct_die "a container is already booted ($CT_NAME)"; return 1; }
	[ "$(id -u)" -eq 0 ] || { ct_die "the container tier needs root"; return 1; }
	[ -n "$CT_ROOTFS_CACHED" ] || ct_rootfs_ensure || return 1
	CT_NAME=$name
	ct_sweep
	if [ -z "$CT_TRAPPED" ]; then
		# keep a caller's EXIT trap: ct_cleanup runs it after powering off
		CT_PREV_EXIT_TRAP=$(trap -p EXIT)
		CT_PREV_EXIT_TRAP=${CT_PREV_EXIT_TRAP#trap -- }
		CT_PREV_EXIT_TRAP=${CT_PREV_EXIT_TRAP% EXIT}
		[ -z "$CT_PREV_EXIT_TRAP" ] || eval "CT_PREV_EXIT_TRAP=$CT_PREV_EXIT_TRAP"
		CT_TRAPPED=1
	fi
	trap ct_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP
	mkdir -p "$RAU_CT_WORK"
	CT_TMP=$(mktemp -d "$RAU_CT_WORK/rau-ct-$name.XXXXXX") || return 1
	CT_LOG=$CT_TMP/nspawn.log
	ct_pid_stamp $$ >"$CT_TMP/owner"
	ct_fresh_root "$CT_TMP" || { ct_die "could not prepare a rootfs in $CT_TMP"; return 1; }
	ct_nspawn_start
}

# ct_nspawn_start: boot systemd-nspawn on CT_ROOT; returns once systemd says running or degraded.
ct_nspawn_start() {
	local name=$CT_NAME
	# --register=no --keep-unit: there is no host systemd/D-Bus to register with.
	# /dev/net/tun: nspawn creates it in the container's /dev itself (it is in its list of device nodes to copy),
	# and registered nowhere it sets no device cgroup policy: no --bind or DeviceAllow is needed (README.md).
	systemd-nspawn -D "$CT_ROOT" -b --private-network --machine="$name" --register=no --keep-unit -q \
		--link-journal=no --resolv-conf=off --timezone=off </dev/null >>"$CT_LOG" 2>&1 &
	CT_NSPAWN_PID=$!
	ct_pid_stamp "$CT_NSPAWN_PID" >"$CT_TMP/nspawn"
	local i
	for ((i = 0; i < 200; i++)); do
		CT_PID1=$(pgrep -P "$CT_NSPAWN_PID" -x systemd | head -n1)
		[ -n "$CT_PID1" ] && break
		kill -0 "$CT_NSPAWN_PID" 2>/dev/null || break
		sleep 0.05
	done
	if [ -z "$CT_PID1" ]; then
		ct_die "no systemd in container $name; nspawn log:"; sed 's/^/# ct:   /' "$CT_LOG" >&2
		return 1
	fi
	local deadline=$((SECONDS + RAU_CT_BOOT_TIMEOUT)) state=
	while ((SECONDS < deadline)); do
		kill -0 "$CT_NSPAWN_PID" 2>/dev/null || break
		state=$(RAU_CT_EXEC_TIMEOUT=$((deadline - SECONDS + 1)) ct_exec systemctl is-system-running --wait 2>/dev/null)
		case $state in running | degraded) return 0 ;; esac
		sleep 0.1
	done
	ct_die "container $name did not reach running/degraded in ${RAU_CT_BOOT_TIMEOUT} s (state: ${state:-unknown})"
	sed 's/^/# ct:   /' "$CT_LOG" >&2
	ct_exec systemctl --failed --no-legend 2>&1 | sed 's/^/# ct:   /' >&2
	return 1
}

# ct_reboot: a real reboot of the booted container: its systemd stops every unit and asks for a reboot, which
# systemd-nspawn reports by exiting with status 133; then the same rootfs (what changed in it kept) boots again.
ct_reboot() {
	local i
	[ -n "$CT_NSPAWN_PID" ] || { ct_die "ct_reboot: no container booted"; return 1; }
	RAU_CT_EXEC_TIMEOUT=10 ct_exec systemctl start reboot.target --job-mode=replace-irreversibly --no-block \
		>/dev/null 2>&1
	for ((i = 0; i < 300; i++)); do kill -0 "$CT_NSPAWN_PID" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$CT_NSPAWN_PID" 2>/dev/null; then ct_die "container $CT_NAME did not reboot in 30 s"; return 1; fi
	wait "$CT_NSPAWN_PID" 2>/dev/null
	CT_EXIT_STATUS=$?
	CT_NSPAWN_PID='' CT_PID1=''
	[ "$CT_EXIT_STATUS" -eq 133 ] || { ct_die "systemd-nspawn exited with $CT_EXIT_STATUS, not 133 (reboot)"; return 1; }
	ct_nspawn_start
}

# ct_exec CMD...: run CMD in all of the container's namespaces with a clean environment. stdin, stdout,
# stderr and the exit status are CMD's (124 on timeout after RAU_CT_EXEC_TIMEOUT seconds).
ct_exec() {
	[ -n "$CT_PID1" ] || { ct_die "ct_exec: no container booted"; return 1; }
	local ns=(-m -u -i -p -n)
	# Enter the container's cgroup namespace too when it has its own, so /proc/self/cgroup reads as inside.
	[ "$(readlink "/proc/$CT_PID1/ns/cgroup")" = "$(readlink /proc/self/ns/cgroup)" ] || ns+=(-C)
	timeout -k 5 "$RAU_CT_EXEC_TIMEOUT" nsenter -t "$CT_PID1" "${ns[@]}" -r -w \
		env -i PATH=$CT_PATH HOME=/root LANG=C.UTF-8 TERM=dumb SYSTEMD_PAGER= SYSTEMD_COLORS=0 \
		DEBIAN_FRONTEND=noninteractive "$@"
}

# ct_copy_in SRC DST: copy a file into the running container (DST is an absolute path inside it; an existing
# directory or a trailing / means into that directory); keeps the mode, creates missing parent directories.
# The bytes go through ct_exec, so DST resolves as inside the container (an absolute symlink in its rootfs
# cannot send the write to the host, /tmp lands on the container's tmpfs), and the file is renamed into place
# (replacing a running binary works).
ct_copy_in() {
	local src=$1 dst=$2
	[ -n "$CT_PID1" ] || { ct_die "ct_copy_in: no container booted"; return 1; }
	if [ ! -f "$src" ] || [ ! -r "$src" ]; then ct_die "ct_copy_in: $src is not a readable file"; return 1; fi
	case $dst in /*) ;; *) ct_die "ct_copy_in: $dst is not absolute"; return 1 ;; esac
	# shellcheck disable=SC2016,SC2094 # $1 $2 $3 are for sh; src is only read
	ct_exec sh -c 'd=$1; case $d in */) d=$d$3 ;; esac; [ -d "$d" ] && d=${d%/}/$3
		mkdir -p "${d%/*}/" && cat >"$d.rau-ct-new" && chmod "$2" "$d.rau-ct-new" && mv -f "$d.rau-ct-new" "$d" ||
		{ rm -f "$d.rau-ct-new"; exit 1; }' \
		sh "$dst" "$(stat -L -c %a "$src")" "$(basename "$src")" <"$src"
}

# ct_poweroff: power the container off (bounded), kill it if it does not stop, remove the per-boot rootfs.
# Idempotent; ct_cleanup (the EXIT trap) calls it.
ct_poweroff() {
	local rc=0 i
	if [ -n "$CT_NSPAWN_PID" ] && kill -0 "$CT_NSPAWN_PID" 2>/dev/null; then
		# Not `systemctl poweroff`: that goes through logind, which waits ~2 s for the delay inhibitor that
		# unattended-upgrades.service (unattended-upgrade-shutdown --wait-for-signal) holds. Starting the target
		# the way systemctl does without logind is the same clean shutdown, in ~0.15 s.
		[ -n "$CT_PID1" ] && RAU_CT_EXEC_TIMEOUT=10 ct_exec \
			systemctl start poweroff.target --job-mode=replace-irreversibly --no-block >/dev/null 2>&1
		for ((i = 0; i < 300; i++)); do kill -0 "$CT_NSPAWN_PID" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$CT_NSPAWN_PID" 2>/dev/null; then
			ct_log "container $CT_NAME did not power off in 30 s; terminating systemd-nspawn"
			rc=1
			kill -TERM "$CT_NSPAWN_PID" 2>/dev/null # nspawn asks the container's init to power off
			for ((i = 0; i < 100; i++)); do kill -0 "$CT_NSPAWN_PID" 2>/dev/null || break; sleep 0.1; done
		fi
		if kill -0 "$CT_NSPAWN_PID" 2>/dev/null; then
			ct_log "killing container $CT_NAME"
			[ -n "$CT_PID1" ] && kill -KILL "$CT_PID1" 2>/dev/null # ends its whole PID namespace
			kill -KILL "$CT_NSPAWN_PID" 2>/dev/null
		fi
	fi
	if [ -n "$CT_NSPAWN_PID" ]; then
		wait "$CT_NSPAWN_PID" 2>/dev/null
		CT_EXIT_STATUS=$?
		[ "$CT_EXIT_STATUS" -eq 0 ] || { ct_log "systemd-nspawn exited with status $CT_EXIT_STATUS"; rc=1; }
	fi
	CT_NSPAWN_PID='' CT_PID1=''
	if [ -n "$CT_OVERLAY" ]; then
		umount "$CT_OVERLAY" 2>/dev/null || umount -l "$CT_OVERLAY" 2>/dev/null || rc=1
		CT_OVERLAY=
	fi
	if [ -n "$CT_TMP" ]; then
		if [ "${RAU_CT_KEEP:-0}" = 1 ]; then
			rm -f "$CT_TMP/owner"; ct_log "kept $CT_TMP (upper/ holds what changed, nspawn.log the console)"
		elif ! mountpoint -q "$CT_TMP/root"; then
			rm -rf --one-file-system "$CT_TMP"
		else
			ct_log "$CT_TMP/root is still mounted; not removing it"; rc=1
		fi
	fi
	CT_TMP='' CT_ROOT=''
	return $rc
}

ct_cleanup() {
	local rc=$?
	trap - EXIT
	ct_poweroff
	[ -z "$CT_PREV_EXIT_TRAP" ] || eval "$CT_PREV_EXIT_TRAP"
	exit $rc
}

# ct_pid_stamp PID: "PID STARTTIME", which tells a process apart from a later one that reuses its PID.
ct_pid_stamp() { echo "$1 $(awk '{ sub(/^.*\) /, ""); print $20 }' "/proc/$1/stat" 2>/dev/null)"; }
ct_pid_alive() { [ -n "${2:-}" ] && [ "$(ct_pid_stamp "$1")" = "$1 $2" ]; }

# ct_sweep: clean up after test runs that were killed with SIGKILL (no trap runs then). For each per-boot dir
# under RAU_CT_WORK: if the test shell that booted it is gone but its systemd-nspawn is not, stop that
# container; then unmount and remove the dir. Dirs whose test shell is alive are never touched, nor dirs still
# being set up (no owner stamp yet).
ct_sweep() {
	local d owner nspawn i
	for d in "$RAU_CT_WORK"/rau-ct-*.??????; do
		[ -f "$d/owner" ] || continue
		owner=$(cat "$d/owner")
		# shellcheck disable=SC2086
		ct_pid_alive $owner && continue
		nspawn=$(cat "$d/nspawn" 2>/dev/null)
		# shellcheck disable=SC2086
		if [ -n "$nspawn" ] && ct_pid_alive $nspawn; then
			ct_log "stopping container left running by a killed test: $d"
			kill -TERM "${nspawn%% *}" 2>/dev/null
			for ((i = 0; i < 100; i++)); do ct_pid_alive $nspawn || break; sleep 0.1; done
			ct_pid_alive $nspawn && kill -KILL "${nspawn%% *}" 2>/dev/null && sleep 0.5
			ct_pid_alive $nspawn && continue
		fi
		! mountpoint -q "$d/root" || umount "$d/root" 2>/dev/null || umount -l "$d/root" || continue
		ct_log "removing leftover $d"
		rm -rf --one-file-system "$d"
	done
}

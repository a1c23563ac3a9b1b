# tests/kernel/kernel-vm.sh: Debian 12's own kernels booted under qemu, with a tiny Debian 12 root, to run a test
# script inside as root. Sourced, not run (bash). Needs root, apt-get, dpkg-deb, debootstrap, mke2fs (e2fsprogs),
# cpio, busybox (busybox-static), depmod/modprobe (kmod), readelf (binutils), xz, zstd, qemu-system-x86_64.
#
#   . tests/kernel/kernel-vm.sh
#   kvm_kernels                      # the kernels to test, one "PACKAGE=VERSION" a line (newest 6.1, newest 6.12)
#   kvm_prepare linux-image-6.1.0-56-amd64=6.1.192-2   # download, extract, build the cached images (once)
#   kvm_run 6.12 ./t.sh helper file  # boot it, run t.sh as root with its files in /opt/t; its output, its status
#   kvm_prune                        # drop cached kernels and root images that are no longer the current ones
#
# A kernel is named by a spec: "PACKAGE=VERSION" (what kvm_kernels prints), "PACKAGE" (apt's candidate version),
# or the shorthand "6.1" / "6.12" (that line of kvm_kernels).
#
# How a boot works (README.md has the why and the timings): the kernel package's bzImage is unpacked once into its
# ELF vmlinux, booted through qemu's PVH entry (no real-mode decompressor: ~3 s less per boot under TCG). A busybox
# initrd loads virtio_pci/virtio_blk/ext4, mounts the root image (disk 1, written through a throwaway qemu
# snapshot) and the kernel's modules image (disk 2, read-only, on /usr/lib/modules), copies the script and its
# files (a second cpio archive appended to the initrd per run) to /opt/t and switches root to a bash runner. The
# runner mounts the API file systems, loads RAU_KVM_MODULES, runs the script with stdin from /dev/null, stdout and
# stderr on the second serial port, writes its exit status on the third and powers off. The kernel's console is
# the first serial port, kept in a log shown when a boot fails.
#
# kvm_run returns the script's exit status; 124 when the run hit RAU_KVM_TIMEOUT (the VM is killed), 125 when the
# guest never reported a status (boot failure, panic), 1 when something could not be prepared. Error lines start
# with "kvm: error:" on stderr. After kvm_run (called in the main shell, not in $(...)), KVM_BOOT_SECS holds the
# seconds from qemu's start to the script's start, KVM_RUN_SECS from qemu's start to its exit, KVM_ACCEL the
# accelerator used; after kvm_prepare, KVM_PREPARE_SECS its duration and KVM_PREPARE_COLD=1 if it built anything.
#
# Environment:
#   RAU_KVM_CACHE     cache of kernels and images (default /var/cache/reconcile-after-upgrade-tests/kernel)
#   RAU_KVM_MIRROR    Debian mirror for debootstrap (default: first URIs: of /etc/apt/sources.list.d/debian.sources)
#   RAU_KVM_EXTRA_PACKAGES  more packages in the root, comma or space separated (part of the root's cache key)
#   RAU_KVM_TIMEOUT   seconds one kvm_run may take, boot included (default 300)
#   RAU_KVM_MEM       guest RAM in MiB (default 1024);  RAU_KVM_SMP  vCPUs (default 2, at most 2)
#   RAU_KVM_ACCEL     tcg (default) | kvm | auto (auto: kvm if a probe boot with it finishes in 20 s, else tcg;
#                     the answer is kept for the host's boot in /run/rau-kvm-accel). On these machines KVM stops
#                     the guest within a second of boot ("KVM internal error. Suberror: 1", an instruction the
#                     nested hypervisor cannot emulate): kvm_run sees that and fails at once (125).
#   RAU_KVM_MODULES   modules the runner loads before the script (default: tun veth ifb dummy nf_tables
#                     nft_chain_nat nf_flow_table_inet nfnetlink_hook; missing ones are skipped)
#   RAU_KVM_WORK      where per-run temp dirs go (default /var/tmp)
#   RAU_KVM_APPEND    more kernel command line (e.g. loglevel=7 to see the boot in console.log with RAU_KVM_KEEP=1)
#   RAU_KVM_KEEP=1    keep the per-run dir (console.log, initrd, output) and say where
#   RAU_KVM_QUIET=1   no progress lines on stderr
#   RAU_KVM_PARALLEL=1  do not wait for other kvm_runs ($RAU_KVM_CACHE/.lock-qemu serializes them by default)

: "${RAU_KVM_CACHE:=/var/cache/reconcile-after-upgrade-tests/kernel}"
: "${RAU_KVM_TIMEOUT:=300}"
: "${RAU_KVM_MEM:=1024}"
: "${RAU_KVM_SMP:=2}"
: "${RAU_KVM_ACCEL:=tcg}"
: "${RAU_KVM_WORK:=/var/tmp}"
: "${RAU_KVM_MODULES:=tun veth ifb dummy nf_tables nft_chain_nat nf_flow_table_inet nfnetlink_hook}"
KVM_SUITE=bookworm
# Bump when the way a kernel's files or the root image are made changes: both are part of the cache keys.
KVM_RECIPE=1
# python3-jsonschema and prometheus (for promtool): the namespace tier's schema and metrics tests.
KVM_ROOT_PACKAGES=(libnftnl11 libnftables1 libjansson4 libmnl0 libsystemd0 libapt-pkg6.0
	nftables iproute2 jq kmod util-linux procps bash coreutils python3-jsonschema prometheus)
# What the initrd loads to reach the root disk (with their dependencies; built-in ones are skipped).
KVM_INITRD_MODULES=(virtio_pci virtio_blk crc32c_generic crc32c_intel ext4)
KVM_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# Results for the caller (see above).
# shellcheck disable=SC2034
KVM_BOOT_SECS='' KVM_RUN_SECS='' KVM_ACCEL='' KVM_PREPARE_SECS='' KVM_PREPARE_COLD=''
# Set by kvm_resolve.
KVM_PKG='' KVM_VER='' KVM_DIR=''
# Set by kvm_root_ensure.
KVM_ROOT_IMAGE=''

kvm_log() { [ "${RAU_KVM_QUIET:-0}" = 1 ] || echo "# kvm: $*" >&2; }
kvm_die() { echo "kvm: error: $*" >&2; return 1; }
# kvm_now: seconds since the epoch, with fractions; kvm_secs A B: B - A to 0.01 s.
kvm_now() { date +%s.%N; }
kvm_secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# ---------------------------------------------------------------- which kernels
# kvm_candidate PACKAGE: apt's candidate version of PACKAGE (empty if apt does not know it).
kvm_candidate() {
	LC_ALL=C apt-cache policy "$1" 2>/dev/null | awk '$1 == "Candidate:" && $2 != "(none)" { print $2; exit }'
}

# kvm_meta_dep META: the linux-image-* package the candidate of META depends on.
kvm_meta_dep() {
	LC_ALL=C apt-cache show --no-all-versions "$1" 2>/dev/null |
		awk -F': ' '$1 == "Depends" { n = split($2, d, /, */); for (i = 1; i <= n; i++) {
			split(d[i], w, / /); if (w[1] ~ /^linux-image-/) { print w[1]; exit } } }'
}

# kvm_kernels: the kernels to test, one "PACKAGE=VERSION" a line: what linux-image-amd64 installs (6.1), then
# the newest Debian 12 build of 6.12 (linux-image-6.12-amd64's dependency, or the highest
# linux-image-6.12.*+deb12-amd64 apt knows). Needs current apt lists (apt-get update).
kvm_kernels() {
	local p v found=0
	p=$(kvm_meta_dep linux-image-amd64)
	v=$([ -n "$p" ] && kvm_candidate "$p")
	if [ -n "$v" ]; then echo "$p=$v"; found=$((found + 1)); else kvm_die "no 6.1 kernel: linux-image-amd64 has no candidate (apt-get update?)"; fi
	p=$(kvm_meta_dep linux-image-6.12-amd64)
	if [ -z "$p" ]; then
		p=$(apt-cache pkgnames linux-image-6.12. 2>/dev/null | grep -E '^linux-image-6\.12\.[0-9]+\+deb12-amd64$' | sort -V | tail -n1)
	fi
	v=$([ -n "$p" ] && kvm_candidate "$p")
	if [ -n "$v" ]; then echo "$p=$v"; found=$((found + 1)); else kvm_die "no linux-image-6.12.*+deb12-amd64 known to apt (apt-get update? bookworm-security in the sources?)"; fi
	[ "$found" -eq 2 ]
}

# kvm_resolve SPEC: sets KVM_PKG, KVM_VER and KVM_DIR (the kernel's cache dir).
kvm_resolve() {
	local spec=$1 line
	case $spec in
	6.1 | 6.12)
		line=$(kvm_kernels | awk -v s="$spec" '{ split($0, a, "="); v = a[2]; sub(/-.*/, "", v); split(v, n, ".");
			if (n[1] "." n[2] == s) { print; exit } }')
		[ -n "$line" ] || { kvm_die "no kernel $spec found by kvm_kernels"; return 1; }
		spec=$line ;;
	esac
	KVM_PKG=${spec%%=*}
	if [ "$spec" != "$KVM_PKG" ]; then KVM_VER=${spec#*=}; else KVM_VER=$(kvm_candidate "$KVM_PKG"); fi
	case $KVM_PKG in linux-image-*) ;; *) kvm_die "not a kernel package: $KVM_PKG"; return 1 ;; esac
	[ -n "$KVM_VER" ] || { kvm_die "apt knows no version of $KVM_PKG"; return 1; }
	case $KVM_PKG$KVM_VER in */* | *..*) kvm_die "bad kernel spec: $spec"; return 1 ;; esac
	KVM_DIR=$RAU_KVM_CACHE/k${KVM_RECIPE}-${KVM_PKG}_$KVM_VER
}

# ---------------------------------------------------------------- the root image
kvm_mirror() {
	if [ -n "${RAU_KVM_MIRROR:-}" ]; then echo "$RAU_KVM_MIRROR"; return; fi
	local m=
	[ -r /etc/apt/sources.list.d/debian.sources ] &&
		m=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
	if [ -z "$m" ] && [ -r /etc/apt/sources.list ]; then
		m=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:/) { print $i; exit } }' /etc/apt/sources.list)
	fi
	echo "${m:-http://deb.debian.org/debian}"
}

kvm_root_packages() {
	local extra=${RAU_KVM_EXTRA_PACKAGES:-}
	# shellcheck disable=SC2086 # split the extra list on blanks
	printf '%s\n' "${KVM_ROOT_PACKAGES[@]}" ${extra//,/ } | sort -u | paste -sd, -
}

kvm_root_key() {
	printf 'suite=%s\nvariant=minbase\nrecipe=%s\npackages=%s\narch=%s\n' \
		"$KVM_SUITE" "$KVM_RECIPE" "$(kvm_root_packages)" "$(dpkg --print-architecture)" | sha256sum | cut -c1-16
}

# kvm_locked LOCKNAME COMMAND...: run COMMAND holding $RAU_KVM_CACHE/.lock-LOCKNAME (waits up to 20 min).
kvm_locked() {
	local name=$1 fd rc
	shift
	mkdir -p "$RAU_KVM_CACHE" || return 1
	exec {fd}>"$RAU_KVM_CACHE/.lock-$name" || return 1
	if ! flock -w 1200 "$fd"; then exec {fd}>&-; kvm_die "timed out waiting for $RAU_KVM_CACHE/.lock-$name"; return 1; fi
	"$@"
	rc=$?
	exec {fd}>&-
	return $rc
}

# kvm_root_ensure: sets KVM_ROOT_IMAGE to the cached root image, debootstrapping it first if needed (~60 s).
kvm_root_ensure() {
	local key
	key=$(kvm_root_key) || return 1
	KVM_ROOT_IMAGE=$RAU_KVM_CACHE/root-$KVM_SUITE-$key.ext4
	[ -f "$KVM_ROOT_IMAGE.complete" ] && return 0
	kvm_locked "root-$key" kvm_root_build_locked "$key"
}

kvm_root_build_locked() {
	local key=$1 build rc t0=$SECONDS
	[ -f "$KVM_ROOT_IMAGE.complete" ] && return 0
	KVM_PREPARE_COLD=1
	rm -rf "$RAU_KVM_CACHE"/.root-"$key".* "$KVM_ROOT_IMAGE"
	build=$(mktemp -d "$RAU_KVM_CACHE/.root-$key.XXXXXX") || return 1
	kvm_log "building the root image $KVM_ROOT_IMAGE (packages $(kvm_root_packages)) from $(kvm_mirror)"
	(kvm_root_build "$build/root" "$build/root.ext4") >"$build/build.log" 2>&1
	rc=$?
	if [ $rc -eq 0 ] && mv -f "$build/root.ext4" "$KVM_ROOT_IMAGE"; then
		cp "$build/build.log" "$RAU_KVM_CACHE/root-$KVM_SUITE-$key.log" 2>/dev/null
		kvm_root_packages >"$KVM_ROOT_IMAGE.complete"
		rm -rf "$build"
		kvm_log "root image built in $((SECONDS - t0)) s"
		return 0
	fi
	kvm_die "building the root image failed (exit $rc); last lines of its log:"
	tail -n 25 "$build/build.log" | sed 's/^/# kvm:   /' >&2
	rm -rf "$build"
	return 1
}

# kvm_root_build DIR IMAGE: debootstrap DIR, trim it, make the ext4 IMAGE of it (runs in a subshell).
kvm_root_build() {
	set -e
	local root=$1 image=$2 p missing='' mb
	export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 PATH=$KVM_PATH
	timeout -k 10 1200 debootstrap --variant=minbase --components=main \
		--include="$(kvm_root_packages)" "$KVM_SUITE" "$root" "$(kvm_mirror)"
	for p in $(kvm_root_packages | tr , ' '); do
		# shellcheck disable=SC2016 # a dpkg-query format
		chroot "$root" dpkg-query -W -f='${db:Status-Status}\n' "$p" 2>/dev/null | grep -qx installed ||
			missing="$missing $p"
	done
	[ -z "$missing" ] || { echo "packages missing from the root:$missing"; return 1; }
	chroot "$root" apt-get clean
	rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
		"$root"/usr/share/locale/* "$root"/var/cache/debconf/*-old "$root"/var/log/*.log
	: >"$root/etc/apt/sources.list"
	mkdir -p "$root/usr/lib/modules" "$root/opt"
	echo rau-kvm >"$root/etc/hostname"
	printf '127.0.0.1\tlocalhost rau-kvm\n::1\tlocalhost\n' >"$root/etc/hosts"
	printf 'key=%s\npackages=%s\nbuilt=%s\n' "$(kvm_root_key)" "$(kvm_root_packages)" "$(date -u +%FT%TZ)" \
		>"$root/etc/rau-kvm-root"
	# Room for what tests write (it goes to a throwaway qemu snapshot, the image itself is never changed).
	mb=$(($(du -sm "$root" | cut -f1) * 5 / 4 + 512))
	mke2fs -q -F -t ext4 -L rau-root -d "$root" "$image" "${mb}M"
}

# ---------------------------------------------------------------- one kernel's files
# kvm_prepare SPEC: the kernel's vmlinux, initrd base and modules image, and the root image, in the cache.
kvm_prepare() {
	local t0
	t0=$(kvm_now)
	KVM_PREPARE_COLD=''
	[ "$(id -u)" -eq 0 ] || { kvm_die "the kernel tier needs root"; return 1; }
	kvm_resolve "$1" || return 1
	if [ ! -f "$KVM_DIR/complete" ]; then
		kvm_locked "$(basename "$KVM_DIR")" kvm_kernel_build_locked || return 1
	fi
	kvm_root_ensure || return 1
	KVM_PREPARE_SECS=$(kvm_secs "$t0" "$(kvm_now)")
}

kvm_kernel_build_locked() {
	local build rc t0=$SECONDS
	[ -f "$KVM_DIR/complete" ] && return 0
	KVM_PREPARE_COLD=1
	rm -rf "$KVM_DIR" "$KVM_DIR".build.*
	build=$(mktemp -d "$KVM_DIR.build.XXXXXX") || return 1
	chmod 755 "$build"
	kvm_log "preparing $KVM_PKG $KVM_VER"
	(kvm_kernel_build "$build") >"$build/build.log" 2>&1
	rc=$?
	if [ $rc -eq 0 ] && [ -f "$build/out/complete" ] && mv -T "$build/out" "$KVM_DIR"; then
		cp "$build/build.log" "$KVM_DIR/build.log"
		rm -rf "$build"
		kvm_log "$KVM_PKG prepared in $((SECONDS - t0)) s"
		return 0
	fi
	kvm_die "preparing $KVM_PKG $KVM_VER failed (exit $rc); last lines of its log:"
	tail -n 25 "$build/build.log" | sed 's/^/# kvm:   /' >&2
	rm -rf "$build"
	return 1
}

# kvm_kernel_build BUILD: download and unpack the package in BUILD, leave the results in BUILD/out (subshell).
kvm_kernel_build() {
	set -e
	local build=$1 deb kver m src out=$1/out
	mkdir -p "$build/dl" "$build/x" "$out" "$build/initrd/lib/modules" "$build/initrd/bin" "$build/initrd/dev"
	mknod -m 600 "$build/initrd/dev/console" c 5 1
	# _apt cannot write into a root-only dir; let it, so the download is sandboxed and apt says nothing
	chown _apt "$build/dl" 2>/dev/null || true
	(cd "$build/dl" && apt-get download -q "$KVM_PKG=$KVM_VER")
	deb=$(find "$build/dl" -maxdepth 1 -name '*.deb' | head -n1)
	[ -n "$deb" ]
	dpkg-deb -x "$deb" "$build/x"
	rm -rf "$build/dl"
	# merged /usr or not, the package has boot/vmlinuz-KVER and (usr/)lib/modules/KVER
	src=$(find "$build/x/boot" -maxdepth 1 -name 'vmlinuz-*' | head -n1)
	[ -n "$src" ]
	kver=${src##*/vmlinuz-}
	m=$build/x/lib/modules
	[ -d "$m/$kver" ] || m=$build/x/usr/lib/modules
	[ -d "$m/$kver" ] || { echo "no modules dir for $kver"; return 1; }
	echo "$kver" >"$out/kver"
	cp "$build/x/boot/config-$kver" "$out/config"

	# The boot image: the ELF vmlinux out of the bzImage when it has a PVH entry, else the bzImage itself.
	if kvm_extract_vmlinux "$src" "$out/vmlinux" && kvm_has_pvh_note "$out/vmlinux"; then
		echo pvh >"$out/boot"
	else
		echo "no PVH-capable vmlinux; booting the bzImage"
		rm -f "$out/vmlinux"
		cp "$src" "$out/bzImage"
		echo bzimage >"$out/boot"
	fi

	# Module dependencies: the package does not ship them (its postinst runs depmod).
	depmod -b "${m%/lib/modules}" "$kver"

	# The initrd's base: busybox and what reaches the root disk, decompressed (busybox insmod takes plain .ko).
	cp "$(command -v busybox)" "$build/initrd/bin/busybox"
	: >"$build/initrd/modules.load"
	local mod path name
	for mod in "${KVM_INITRD_MODULES[@]}"; do
		modprobe -d "${m%/lib/modules}" -S "$kver" --show-depends "$mod" 2>/dev/null | awk '$1 == "insmod" { print $2 }'
	done | awk '!seen[$0]++' | while read -r path; do
		name=${path##*/}
		case $name in
		*.ko.xz) xz -dc "$path" >"$build/initrd/lib/modules/${name%.xz}"; name=${name%.xz} ;;
		*.ko.zst) zstd -qdc "$path" >"$build/initrd/lib/modules/${name%.zst}"; name=${name%.zst} ;;
		*.ko.gz) gzip -dc "$path" >"$build/initrd/lib/modules/${name%.gz}"; name=${name%.gz} ;;
		*) cp "$path" "$build/initrd/lib/modules/$name" ;;
		esac
		echo "$name" >>"$build/initrd/modules.load"
	done
	echo "initrd modules: $(paste -sd' ' "$build/initrd/modules.load")"
	grep -q '^virtio_blk\.ko$' "$build/initrd/modules.load" || grep -qx 'CONFIG_VIRTIO_BLK=y' "$out/config"
	(cd "$build/initrd" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$out/initrd-base.cpio"

	# The modules image, mounted read-only on /usr/lib/modules: KVER/ at its top.
	mkdir -p "$build/modules"
	mv "$m/$kver" "$build/modules/$kver"
	local mb
	mb=$(($(du -sm "$build/modules" | cut -f1) * 11 / 10 + 32))
	mke2fs -q -F -t ext4 -L rau-modules -d "$build/modules" "$out/modules.ext4" "${mb}M"
	rm -rf "$build/x" "$build/modules"
	printf 'package=%s\nversion=%s\nkver=%s\nrecipe=%s\nbuilt=%s\n' \
		"$KVM_PKG" "$KVM_VER" "$kver" "$KVM_RECIPE" "$(date -u +%FT%TZ)" >"$out/complete"
}

# kvm_extract_vmlinux BZIMAGE OUT: the compressed ELF inside a bzImage, uncompressed. The setup header says where
# the payload is (setup_sects at 0x1f1, payload_offset at 0x248 and payload_length at 0x24c, both relative to
# the protected-mode code after the setup sectors); its last 4 bytes are the uncompressed size, checked here.
kvm_extract_vmlinux() {
	local img=$1 out=$2 ss po pl start magic want got
	[ "$(dd if="$img" bs=1 skip=514 count=4 status=none)" = HdrS ] || { echo "$img: not a bzImage"; return 1; }
	ss=$(od -An -tu1 -j $((0x1f1)) -N1 "$img" | tr -d ' ')
	[ "$ss" -ne 0 ] || ss=4
	po=$(od -An -tu4 -j $((0x248)) -N4 "$img" | tr -d ' ')
	pl=$(od -An -tu4 -j $((0x24c)) -N4 "$img" | tr -d ' ')
	start=$(((ss + 1) * 512 + po))
	want=$(od -An -tu4 -j $((start + pl - 4)) -N4 "$img" | tr -d ' ')
	magic=$(od -An -tx1 -j "$start" -N4 "$img" | tr -d ' \n')
	local dec
	case $magic in
	fd377a58) dec=(xz -dc --single-stream) ;;
	28b52ffd) dec=(zstd -qdc) ;;
	1f8b08*) dec=(gzip -dc) ;;
	894c5a4f) dec=(lzop -dc) ;;
	5d000000 | 5d00*) dec=(xz -dc --format=lzma) ;;
	*) echo "$img: unknown payload compression (magic $magic)"; return 1 ;;
	esac
	# zstd and gzip complain about the 4 size bytes after the stream: judge by the size and the ELF magic
	dd if="$img" bs=1M iflag=skip_bytes,count_bytes skip="$start" count="$pl" status=none | "${dec[@]}" >"$out" 2>/dev/null
	got=$(stat -c %s "$out")
	[ "$got" = "$want" ] || { echo "$img: payload is $got bytes uncompressed, header says $want"; return 1; }
	[ "$(od -An -tx1 -N4 "$out" | tr -d ' \n')" = 7f454c46 ] || { echo "$img: payload is not an ELF file"; return 1; }
}

# kvm_has_pvh_note VMLINUX: the ELF has a Xen note of type 18 (XEN_ELFNOTE_PHYS32_ENTRY), the PVH entry point.
kvm_has_pvh_note() {
	LC_ALL=C readelf -n "$1" 2>/dev/null | awk '$1 == "Xen" && ($3 ~ /PHYS32/ || $0 ~ /\(0x00000012\)/) { f = 1 } END { exit !f }'
}

# kvm_prune [SPEC...]: remove cached kernels other than SPECs (default: kvm_kernels' list) and root images other
# than the current one, with their logs and locks. Nothing else in the cache is touched.
kvm_prune() {
	local keep=() spec d key
	if [ $# -eq 0 ]; then mapfile -t keep < <(kvm_kernels) || return 1; else keep=("$@"); fi
	local -A kept=()
	for spec in "${keep[@]}"; do kvm_resolve "$spec" || return 1; kept[$KVM_DIR]=1; done
	key=$(kvm_root_key) || return 1
	for d in "$RAU_KVM_CACHE"/k[0-9]*-linux-image-*; do
		if [ ! -d "$d" ] || [ -n "${kept[$d]:-}" ]; then continue; fi
		kvm_log "removing $d"
		rm -rf "$d" "$RAU_KVM_CACHE/.lock-${d##*/}"
	done
	for d in "$RAU_KVM_CACHE"/root-*.ext4; do
		if [ ! -f "$d" ] || [ "$d" = "$RAU_KVM_CACHE/root-$KVM_SUITE-$key.ext4" ]; then continue; fi
		kvm_log "removing $d"
		rm -f "$d" "$d.complete" "${d%.ext4}.log"
	done
}

# ---------------------------------------------------------------- accelerator
# kvm_accel: prints tcg or kvm according to RAU_KVM_ACCEL.
kvm_accel() {
	case $RAU_KVM_ACCEL in
	tcg | kvm) echo "$RAU_KVM_ACCEL"; return ;;
	auto) ;;
	*) kvm_die "RAU_KVM_ACCEL must be tcg, kvm or auto, not $RAU_KVM_ACCEL"; return 1 ;;
	esac
	local cache=/run/rau-kvm-accel
	if [ -s "$cache" ] && [ "$(cut -d' ' -f2- "$cache")" = "$(cat /proc/sys/kernel/random/boot_id)" ]; then
		cut -d' ' -f1 "$cache"
		return
	fi
	local a=tcg
	if [ -w /dev/kvm ]; then
		local probe
		probe=$(mktemp -d "$RAU_KVM_WORK/rau-kvm-probe.XXXXXX") || return 1
		printf '#!/bin/sh\nexit 0\n' >"$probe/true.sh"
		chmod +x "$probe/true.sh"
		if (RAU_KVM_ACCEL=kvm RAU_KVM_TIMEOUT=20 RAU_KVM_QUIET=1 RAU_KVM_MODULES='' kvm_run "$KVM_PKG=$KVM_VER" "$probe/true.sh") \
			>/dev/null 2>&1; then a=kvm; fi
		rm -rf "$probe"
	fi
	echo "$a $(cat /proc/sys/kernel/random/boot_id)" >"$cache"
	echo "$a"
}

# ---------------------------------------------------------------- one run
# The initrd's /init (busybox sh): reach the root disk, copy the run's files over, mount the API file systems in
# it, switch to the runner. Everything that can is done here by the static busybox: under TCG each start of a
# dynamically linked program of the root costs ~50 ms, and this saves ~0.6 s a boot.
kvm_write_init() {
	cat >"$1" <<'EOF'
#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /newroot /usr/bin /sbin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() {
	echo "rau-kvm init: $*" >/dev/ttyS0; echo "rau-kvm init: $*" >/dev/ttyS1
	echo o >/proc/sysrq-trigger; sleep 5; exit 1
}
while read -r m; do insmod "/lib/modules/$m" 2>/dev/null || echo "rau-kvm init: insmod $m failed" >/dev/ttyS0; done </modules.load
i=0
while [ ! -b /dev/vda ] || [ ! -b /dev/vdb ]; do
	i=$((i + 1)); [ $i -lt 500 ] || fail "no /dev/vda and /dev/vdb"; sleep 0.01
done
r=/newroot
mount -t ext4 -o rw,noatime /dev/vda $r || fail "cannot mount the root disk"
mount -t ext4 -o ro /dev/vdb $r/usr/lib/modules || fail "cannot mount the modules disk"
mkdir -p $r/opt/t $r/opt/rau-kvm
cp -a /opt/t/. $r/opt/t/ && cp -a /rau-kvm/. $r/opt/rau-kvm/ || fail "cannot copy the run's files"
stty -F /dev/ttyS1 raw -echo
stty -F /dev/ttyS2 raw -echo
hostname rau-kvm
ip link set lo up
mount --move /proc $r/proc && mount --move /sys $r/sys && mount --move /dev $r/dev || fail "cannot move /proc /sys /dev"
mkdir -p $r/dev/pts $r/dev/shm
mount -t devpts devpts $r/dev/pts
mount -t tmpfs tmpfs $r/dev/shm
mount -t tmpfs -o mode=755 tmpfs $r/run
mount -t tmpfs -o mode=1777 tmpfs $r/tmp
mount -t cgroup2 cgroup2 $r/sys/fs/cgroup
ln -sf /proc/self/fd $r/dev/fd
# what udev would make: nft -f - and bash's process substitution need them
ln -sf /proc/self/fd/0 $r/dev/stdin
ln -sf /proc/self/fd/1 $r/dev/stdout
ln -sf /proc/self/fd/2 $r/dev/stderr
exec switch_root $r /bin/bash /opt/rau-kvm/runner
EOF
	chmod 755 "$1"
}

# The runner (bash, PID 1 in the root): modules, the script, its status, power off.
kvm_write_runner() {
	cat >"$1" <<'EOF'
#!/bin/bash
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/root TERM=dumb
. /opt/rau-kvm/env
# one modprobe for all (each start of kmod costs ~0.1 s under TCG); -a goes on past missing ones
# shellcheck disable=SC2086
[ -z "$RAU_KVM_MODULES" ] || modprobe -a -q $RAU_KVM_MODULES 2>/dev/null
echo "start" >/dev/ttyS2
cd /opt/t || exit 1
if [ -x "./$RAU_KVM_SCRIPT" ]; then cmd=("./$RAU_KVM_SCRIPT"); else cmd=(bash "./$RAU_KVM_SCRIPT"); fi
RAU_KVM=1 "${cmd[@]}" </dev/null >/dev/ttyS1 2>&1
rc=$?
echo "status $rc" >/dev/ttyS2
sync
echo o >/proc/sysrq-trigger
sleep 5
echo b >/proc/sysrq-trigger
sleep 60
EOF
	chmod 755 "$1"
}

# kvm_run SPEC SCRIPT [FILES...]: boot the kernel, run SCRIPT as root inside with FILES beside it in /opt/t
# (a directory is copied whole), print its output as it comes and return its exit status.
kvm_run() {
	[ $# -ge 2 ] || { kvm_die "usage: kvm_run KERNEL SCRIPT [FILES...]"; return 1; }
	local spec=$1 script=$2 f
	shift 2
	[ -f "$script" ] || { kvm_die "no script $script"; return 1; }
	for f in "$@"; do [ -e "$f" ] || { kvm_die "no file $f"; return 1; }; done
	KVM_BOOT_SECS='' KVM_RUN_SECS=''
	# kvm_prepare resolves the spec and, when everything is cached, only checks stamps
	local cold=$KVM_PREPARE_COLD psecs=$KVM_PREPARE_SECS
	kvm_prepare "$spec" || return 1
	KVM_PREPARE_COLD=$cold KVM_PREPARE_SECS=$psecs
	KVM_ACCEL=$(kvm_accel) || return 1
	local smp=$RAU_KVM_SMP
	[ "$smp" -le 2 ] 2>/dev/null || smp=2

	local tmp
	mkdir -p "$RAU_KVM_WORK"
	tmp=$(mktemp -d "$RAU_KVM_WORK/rau-kvm-run.XXXXXX") || return 1
	mkdir -p "$tmp/cpio/opt/t" "$tmp/cpio/rau-kvm"
	kvm_write_init "$tmp/cpio/init"
	kvm_write_runner "$tmp/cpio/rau-kvm/runner"
	printf 'RAU_KVM_SCRIPT=%q\nRAU_KVM_MODULES=%q\n' "$(basename "$script")" "$RAU_KVM_MODULES" >"$tmp/cpio/rau-kvm/env"
	cp -a "$script" "$tmp/cpio/opt/t/" || { rm -rf "$tmp"; return 1; }
	for f in "$@"; do cp -a "$f" "$tmp/cpio/opt/t/" || { rm -rf "$tmp"; return 1; }; done
	{
		cat "$KVM_DIR/initrd-base.cpio"
		(cd "$tmp/cpio" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet)
	} >"$tmp/initrd" || { rm -rf "$tmp"; return 1; }
	: >"$tmp/out"
	: >"$tmp/status"

	local kernel=(-kernel "$KVM_DIR/vmlinux")
	[ "$(cat "$KVM_DIR/boot")" = pvh ] || kernel=(-kernel "$KVM_DIR/bzImage")
	local append="console=ttyS0,115200 loglevel=4 panic=-1 rdinit=/init mitigations=off no_timer_check"
	append+=" i8042.noaux i8042.nokbd i8042.nopnp i8042.dumbkbd audit=0 nmi_watchdog=0 ${RAU_KVM_APPEND:-}"
	local cpu=${RAU_KVM_CPU:-max}
	[ "$KVM_ACCEL" = kvm ] && cpu=host
	# -drive snapshot=on: the guest writes into a temp file qemu deletes; the cached root image never changes.
	local qemu=(qemu-system-x86_64 -nodefaults -no-user-config -display none -no-reboot
		-machine pc -accel "$KVM_ACCEL" -cpu "$cpu" -m "$RAU_KVM_MEM" -smp "$smp"
		"${kernel[@]}" -initrd "$tmp/initrd" -append "$append"
		-drive "file=$KVM_ROOT_IMAGE,if=virtio,format=raw,snapshot=on"
		-drive "file=$KVM_DIR/modules.ext4,if=virtio,format=raw,readonly=on"
		-serial "file:$tmp/console.log" -serial "file:$tmp/out" -serial "file:$tmp/status")
	printf '%q ' "${qemu[@]}" >"$tmp/qemu.cmd"

	# One VM at a time on this host (2 cores; two TCG guests would each take twice as long): wait for the others.
	local lockfd
	if [ "${RAU_KVM_PARALLEL:-0}" != 1 ]; then
		mkdir -p "$RAU_KVM_CACHE"
		exec {lockfd}>"$RAU_KVM_CACHE/.lock-qemu"
		if ! flock -w "$RAU_KVM_TIMEOUT" "$lockfd"; then
			exec {lockfd}>&-
			rm -rf "$tmp"
			kvm_die "another kernel-tier VM held $RAU_KVM_CACHE/.lock-qemu for $RAU_KVM_TIMEOUT s"
			return 1
		fi
	fi
	local t0 tnow qpid shown=0 size deadline rc
	t0=$(kvm_now)
	deadline=$((SECONDS + RAU_KVM_TIMEOUT))
	# timeout(1) only as a backstop, should this shell die without killing qemu (the loop below does the timing)
	TMPDIR=$tmp timeout -k 5 $((RAU_KVM_TIMEOUT + 30)) "${qemu[@]}" </dev/null >"$tmp/qemu.log" 2>&1 &
	qpid=$!
	local timed_out=0 kvm_failed=0
	while :; do
		if [ -z "$KVM_BOOT_SECS" ] && [ -s "$tmp/status" ]; then
			tnow=$(kvm_now)
			KVM_BOOT_SECS=$(kvm_secs "$t0" "$tnow")
		fi
		size=$(stat -c %s "$tmp/out")
		if [ "$size" -gt "$shown" ]; then
			tail -c +$((shown + 1)) "$tmp/out" | head -c $((size - shown))
			shown=$size
		fi
		kill -0 "$qpid" 2>/dev/null || break
		if [ "$SECONDS" -ge "$deadline" ]; then timed_out=1; break; fi
		# a KVM guest that hits an instruction the (nested) hypervisor cannot emulate stops, and qemu waits forever
		if [ "$KVM_ACCEL" = kvm ] && grep -q 'KVM internal error' "$tmp/qemu.log"; then kvm_failed=1; break; fi
		sleep 0.1
	done
	if [ "$timed_out" = 1 ] || [ "$kvm_failed" = 1 ]; then
		kill -TERM "$qpid" 2>/dev/null
		sleep 1
		kill -KILL "$qpid" 2>/dev/null
	fi
	wait "$qpid"
	local qrc=$?
	[ -z "$lockfd" ] || exec {lockfd}>&-
	# shellcheck disable=SC2034 # for the caller
	KVM_RUN_SECS=$(kvm_secs "$t0" "$(kvm_now)")
	size=$(stat -c %s "$tmp/out")
	[ "$size" -le "$shown" ] || tail -c +$((shown + 1)) "$tmp/out"
	# the script's output may not end with a newline
	[ "$size" -eq 0 ] || [ "$(tail -c 1 "$tmp/out" | od -An -tx1 | tr -d ' ')" = 0a ] || echo

	local status
	status=$(awk '$1 == "status" { print $2 }' "$tmp/status" | tail -n1)
	if [ "$timed_out" = 1 ]; then
		kvm_die "timed out after $RAU_KVM_TIMEOUT s running $(basename "$script") on $KVM_PKG $KVM_VER ($KVM_ACCEL); the VM was killed. Last console lines:"
		tail -n 15 "$tmp/console.log" | sed 's/^/# kvm:   /' >&2
		rc=124
	elif [ "$kvm_failed" = 1 ]; then
		kvm_die "KVM stopped the guest ($(grep -m1 -A0 'KVM internal error' "$tmp/qemu.log")); use RAU_KVM_ACCEL=tcg"
		rc=125
	elif [[ $status =~ ^[0-9]+$ ]]; then
		rc=$status
	else
		kvm_die "$KVM_PKG $KVM_VER gave no exit status for $(basename "$script") (qemu exit $qrc); last console lines:"
		tail -n 25 "$tmp/console.log" | sed 's/^/# kvm:   /' >&2
		sed 's/^/# kvm:   qemu: /' "$tmp/qemu.log" >&2
		rc=125
	fi
	if [ "${RAU_KVM_KEEP:-0}" = 1 ]; then kvm_log "kept $tmp"; else rm -rf "$tmp"; fi
	return "$rc"
}

#!/bin/bash
# The kernel tier: Debian 12's own kernels, 6.1 (what linux-image-amd64 installs) and 6.12 (bookworm-security),
# booted under qemu (kernel-vm.sh), run the whole namespace tier and the fault matrix with this build's binaries,
# in each. One TAP line per kernel and test file; the boot and the run timed. The device-bound hooks' behaviour on
# each kernel is measured by probe.sh.
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${top_builddir:=$(cd "$here/../.." && pwd)/build}"
: "${top_srcdir:=$(cd "$here/../.." && pwd)}"
. "$here/kernel-vm.sh"
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
[ "$(id -u)" -eq 0 ] || { echo "Bail out! the kernel tier needs root"; exit 1; }
for f in reconcile-after-upgrade tests/tun-holder tests/tun-inject tests/nl-rebind-race tests/pipeline-loop tests/nl-capture \
	tests/hung-bus tests/fault-after-commit.so; do
	[ -e "$top_builddir/$f" ] || { echo "Bail out! no $top_builddir/$f (make check builds it)"; exit 1; }
done
if ldd "$top_builddir/reconcile-after-upgrade" | grep -q libasan; then
	echo "Bail out! a sanitizer build: the guest's root has no sanitizer runtimes (run this tier from the gcc build)"
	exit 1
fi

work=$(mktemp -d "${RAU_KVM_WORK:-/var/tmp}/rau-ns-tier.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
# the files the tests need, laid out as in the tree (build/ being top_builddir)
mkdir -p "$work/tree/build/tests" "$work/tree/tests"
cp "$top_builddir/reconcile-after-upgrade" "$work/tree/build/"
for f in tun-holder tun-inject nl-rebind-race pipeline-loop nl-capture hung-bus fault-after-commit.so; do
	cp "$top_builddir/tests/$f" "$work/tree/build/tests/"
done
cp -r "$top_srcdir/tests/ns" "$top_srcdir/tests/faults" "$top_srcdir/tests/fixtures" "$top_srcdir/tests/schema" \
	"$top_srcdir/tests/lib.sh" "$work/tree/tests/"
mkdir -p "$work/tree/tests/kernel" && cp "$top_srcdir/tests/kernel/nft-devices.sh" "$work/tree/tests/kernel/"
# RAU_NS_TIER_ONLY="tests/ns/a.sh …": only those (a developer's shortcut; CI runs them all)
if [ -n "${RAU_NS_TIER_ONLY:-}" ]; then
	printf '%s\n' $RAU_NS_TIER_ONLY >"$work/tree/tests.list"
else
	(cd "$work/tree" && ls tests/ns/*.sh && echo tests/faults/matrix.sh) >"$work/tree/tests.list"
fi
tar -C "$work/tree" -czf "$work/tree.tgz" . || exit 1
cp "$here/ns-tier-inside.sh" "$work/"

: "${RAU_KVM_TIMEOUT:=1500}"
export RAU_KVM_TIMEOUT
mapfile -t kernels < <(kvm_kernels)
[ "${#kernels[@]}" -eq 2 ] || { echo "Bail out! apt knows no 6.1 and 6.12 kernels (kvm_kernels: ${kernels[*]})"; exit 1; }
for k in "${kernels[@]}"; do
	kvm_prepare "$k" >&2 || { not_ok "$k: could not prepare the kernel and the root image"; continue; }
	echo "# $k: prepared in $KVM_PREPARE_SECS s$([ "$KVM_PREPARE_COLD" = 1 ] && echo ' (cold)')"
	RAU_KVM_QUIET=1 kvm_run "$k" "$work/ns-tier-inside.sh" "$work/tree.tgz" >"$work/out" 2>"$work/err"
	rc=$?
	kver=$(sed -n 's/^K //p' "$work/out")
	echo "# $k (${kver:-?}): qemu start to the tier $KVM_BOOT_SECS s, whole run $KVM_RUN_SECS s, exit $rc"
	[ "$rc" -eq 0 ] || sed 's/^/# /' "$work/err"
	tests=0
	while read -r tag file trc oks bads secs; do
		[ "$tag" = R ] || continue
		tests=$((tests + 1))
		if [ "$trc" -eq 0 ] && [ "$bads" -eq 0 ] && [ "$oks" -gt 0 ]; then
			ok "$kver: $file ($oks checks, $secs s)"
		else
			not_ok "$kver: $file (exit $trc, $oks ok, $bads not ok, $secs s)"
			awk -v f="$file" '$1 == "R" { cur = $2 } $1 == "F" && cur == f { sub(/^F /, "#   "); print }' "$work/out"
		fi
	done <"$work/out"
	[ "$tests" -eq "$(grep -c . "$work/tree/tests.list")" ] || not_ok "$k: ran $tests of $(grep -c . "$work/tree/tests.list") test files"
done
echo "1..$n"
[ "$failed" -eq 0 ]

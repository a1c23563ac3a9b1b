#!/bin/bash
# tests/system/package.sh: the Debian package. Builds the .deb through tests/system/build-deb (reused while the
# sources are unchanged), then checks it: lintian clean (binary and source), the files and conffiles it ships,
# its triggers, that its Depends exist and cover every library the program links, and that `make install` of the
# build tree installs the same files. TAP on stdout. Needs no root.
# Env: top_srcdir (default: the tree this script is in), top_builddir (default /work/main/build; the .deb goes to
# $top_builddir/deb, `make install` runs there when it has a Makefile).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${top_srcdir:=$(cd "$here/../.." && pwd)}"
: "${top_builddir:=/work/main/build}"

n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
diag() { printf '%s\n' "$@" | sed 's/^/# /'; }
bail() { echo "Bail out! $*"; exit 1; }
not_grep() { ! grep -q "$@"; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

for tool in dpkg-buildpackage dh lintian dpkg-deb flock readelf apt-cache; do
	command -v "$tool" >/dev/null ||
		bail "$tool is missing (apt-get install dpkg-dev debhelper lintian binutils util-linux apt)"
done
tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/rau-package-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# ---- build (or reuse)
t0=$(date +%s.%N)
deb=$("$top_srcdir/tests/system/build-deb" "$top_builddir/deb" 2>"$tmp/build-deb.err" | tail -n 1)
t1=$(date +%s.%N)
diag "$(cat "$tmp/build-deb.err")"
[ -n "$deb" ] && [ -f "$deb" ] || bail "build-deb made no .deb"
ok "build-deb made $(basename "$deb") ($(secs "$t0" "$t1") s)"
changes=$(ls "$(dirname "$deb")"/reconcile-after-upgrade_*.changes 2>/dev/null | head -n 1)

# ---- lintian: no error, no warning (informational tags are shown, not counted)
# lintian warns when run as root; that line is not a tag.
lintian_q() { lintian --display-info "$@" 2>&1 | grep -v '^running with root privileges is not recommended!$'; }
lintian_q "${changes:-$deb}" >"$tmp/lintian"
diag "lintian ${changes:-$deb}:" "$(cat "$tmp/lintian")" "(end of lintian output)" | grep -v '^# $'
check "lintian: no E: or W: tag on the binary package" not_grep '^[EW]: ' "$tmp/lintian"

# the source package: debian/tests/control, debian/copyright and debian/control are checked there
mkdir "$tmp/src"
if git -C "$top_srcdir" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git -C "$top_srcdir" ls-files -z --cached --others --exclude-standard
else
	(cd "$top_srcdir" && find src hooks debian etc man tests configure.ac Makefile.am README.md -type f -print0)
fi | (cd "$top_srcdir" && while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done) |
	tar -C "$top_srcdir" --null -T - -cf - | tar -C "$tmp/src" -xf -
if (cd "$tmp" && dpkg-source -b src) >"$tmp/dpkg-source.log" 2>&1; then
	lintian_q "$tmp"/reconcile-after-upgrade_*.dsc >"$tmp/lintian-src"
	diag "lintian (source):" "$(cat "$tmp/lintian-src")" "(end of lintian output)" | grep -v '^# $'
	check "lintian: no E: or W: tag on the source package" not_grep '^[EW]: ' "$tmp/lintian-src"
else
	diag "$(cat "$tmp/dpkg-source.log")"
	not_ok "dpkg-source -b builds the source package"
fi

# ---- contents
dpkg-deb -c "$deb" >"$tmp/contents-long"
awk '{ print $NF }' "$tmp/contents-long" | sed 's|^\./|/|' >"$tmp/contents"
for f in /usr/sbin/reconcile-after-upgrade \
	/usr/share/man/man8/reconcile-after-upgrade.8.gz /usr/share/man/man5/reconcile-after-upgrade.conf.5.gz \
	/etc/apt/apt.conf.d/50reconcile-after-upgrade /etc/apt/apt.conf.d/99reconcile-after-upgrade \
	/etc/dpkg/dpkg.cfg.d/reconcile-after-upgrade /usr/lib/systemd/catalog/reconcile-after-upgrade.catalog \
	/usr/lib/tmpfiles.d/reconcile-after-upgrade.conf /usr/share/doc/reconcile-after-upgrade/copyright \
	/lib/systemd/system/reconcile-after-upgrade.service \
	/usr/share/doc/reconcile-after-upgrade/examples/reconcile-after-upgrade.rules.yml; do
	check "the .deb ships $f" grep -qxF "$f" "$tmp/contents"
done
check "/usr/sbin/reconcile-after-upgrade is executable (mode 0755)" \
	grep -qE '^-rwxr-xr-x root/root .* \./usr/sbin/reconcile-after-upgrade$' "$tmp/contents-long"

# ---- control: conffiles, triggers, maintainer scripts
mkdir "$tmp/control" "$tmp/data"
dpkg-deb -e "$deb" "$tmp/control"
dpkg-deb -x "$deb" "$tmp/data"
for f in /etc/apt/apt.conf.d/50reconcile-after-upgrade /etc/apt/apt.conf.d/99reconcile-after-upgrade \
	/etc/dpkg/dpkg.cfg.d/reconcile-after-upgrade; do
	check "conffile $f" grep -qxF "$f" "$tmp/control/conffiles"
done
for d in /lib/systemd/system /usr/lib/systemd/system; do
	check "triggers: interest-noawait $d" grep -qx "interest-noawait $d" "$tmp/control/triggers"
done
check "postinst runs the program with --hook=dpkg-trigger on triggered, never failing" \
	grep -qE 'reconcile-after-upgrade --hook=dpkg-trigger \|\| true' "$tmp/control/postinst"
check "postrm purges /var/lib/reconcile-after-upgrade and /run/reconcile-after-upgrade" \
	grep -qE 'rm -rf /var/lib/reconcile-after-upgrade /run/reconcile-after-upgrade' "$tmp/control/postrm"
check "postinst takes the baseline snapshot on configure, quietly, never failing" \
	grep -qE 'reconcile-after-upgrade --hook=postinst -q snapshot >/dev/null 2>&1 \|\| true' "$tmp/control/postinst"
check "postinst enables the watcher's unit (dh_installsystemd)" \
	grep -qE "deb-systemd-helper enable 'reconcile-after-upgrade.service'" "$tmp/control/postinst"
check "postinst starts (or restarts) it through deb-systemd-invoke, which honours policy-rc.d" \
	grep -qE "deb-systemd-invoke .*'reconcile-after-upgrade.service'" "$tmp/control/postinst"
check "the unit is the watcher: Type=notify, ExecStart=/usr/sbin/reconcile-after-upgrade watch" \
	test "$(grep -cxE 'Type=notify|ExecStart=/usr/sbin/reconcile-after-upgrade watch' "$tmp/data/lib/systemd/system/reconcile-after-upgrade.service")" -eq 2
check "postinst creates the directories through systemd-tmpfiles (dh_installtmpfiles)" \
	grep -q 'systemd-tmpfiles .*--create reconcile-after-upgrade.conf' "$tmp/control/postinst"

# ---- the hooks do nothing and succeed when the program is absent; the status-logger drains its input
hook_cmd() { sed -n "s/^DPkg::$1 { \"\\(.*\\)\"; };\$/\\1/p" "$tmp/data/etc/apt/apt.conf.d/99reconcile-after-upgrade"; }
for h in Pre-Invoke Post-Invoke; do
	cmd=$(hook_cmd "$h")
	check "DPkg::$h runs /usr/sbin/reconcile-after-upgrade --hook=apt" grep -q -- '/usr/sbin/reconcile-after-upgrade --hook=apt' <<<"$cmd"
	# the same command with the program moved somewhere absent, then replaced by one that fails
	check "DPkg::$h exits 0 when the program is absent" sh -c "${cmd//\/usr\/sbin\/reconcile-after-upgrade/$tmp/absent}"
	printf '#!/bin/sh\nexit 2\n' >"$tmp/failing" && chmod +x "$tmp/failing"
	check "DPkg::$h exits 0 when the program fails" sh -c "${cmd//\/usr\/sbin\/reconcile-after-upgrade/$tmp/failing}"
done
logger=$(sed -n 's/^status-logger //p' "$tmp/data/etc/dpkg/dpkg.cfg.d/reconcile-after-upgrade")
check "status-logger runs /usr/sbin/reconcile-after-upgrade dpkg-status" grep -q '/usr/sbin/reconcile-after-upgrade dpkg-status' <<<"$logger"
# 1 MiB into the logger: a writer that is not drained dies of SIGPIPE (status 141), as dpkg would
drains() { head -c 1048576 /dev/zero | tr '\0' 'x' | sh -c "${logger//\/usr\/sbin\/reconcile-after-upgrade/$1}"; }
check "status-logger drains dpkg's stream when the program is absent" drains "$tmp/absent"
check "status-logger drains dpkg's stream when the program exits early" drains "$tmp/failing"

# ---- Depends: every package exists, and every library the program links is covered
depends=$(dpkg-deb -f "$deb" Depends)
diag "Depends: $depends"
dep_names=$(tr ',|' '\n\n' <<<"$depends" | sed 's/(.*)//; s/:any//; s/[[:space:]]//g' | grep .)
missing=
for p in $dep_names; do
	apt-cache show --no-all-versions "$p" >/dev/null 2>&1 || dpkg-query -W "$p" >/dev/null 2>&1 || missing="$missing $p"
done
check "every package in Depends exists${missing:+ (missing:$missing)}" test -z "$missing"
# pkg_of PATH: the package that ships a library (dpkg knows it under /lib or /usr/lib, as packaged)
pkg_of() {
	local c
	for c in "$1" "$(readlink -f "$1")" "${1#/usr}" "/usr$1"; do
		dpkg-query -S "$c" 2>/dev/null | head -n 1 | cut -d: -f1 | grep . && return 0
	done
	return 1
}
uncovered=
for lib in $(readelf -d "$tmp/data/usr/sbin/reconcile-after-upgrade" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
	path=$(ldconfig -p | awk -v l="$lib" '$1 == l { print $NF; exit }')
	pkg=$(pkg_of "$path")
	grep -qxF "${pkg:-?}" <<<"$dep_names" || uncovered="$uncovered $lib(${pkg:-?})"
done
check "Depends covers every NEEDED library of the program${uncovered:+ (not:$uncovered)}" test -z "$uncovered"

# ---- make install DESTDIR installs the same files (the .deb adds only /usr/share/doc; man pages get .gz)
if [ -f "$top_builddir/Makefile" ]; then
	# a make of its own: not the jobserver or the variables of a `make check` this test may run under
	if env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -C "$top_builddir" -s install DESTDIR="$tmp/inst" prefix=/usr \
		sysconfdir=/etc >"$tmp/install.log" 2>&1; then
		(cd "$tmp/inst" && find . ! -type d | sed 's|^\.||; s|\.gz$||' | sort) >"$tmp/inst.list"
		(cd "$tmp/data" && find . ! -type d | sed 's|^\.||; s|\.gz$||' | grep -v '^/usr/share/doc/' | sort) >"$tmp/deb.list"
		if diff -u "$tmp/inst.list" "$tmp/deb.list" >"$tmp/list.diff"; then
			ok "make install DESTDIR=... installs the files the .deb ships ($(wc -l <"$tmp/deb.list") files)"
		else
			diag "$(cat "$tmp/list.diff")"
			not_ok "make install DESTDIR=... installs the files the .deb ships"
		fi
		same=1
		for f in $(grep -v -e '^/usr/sbin/' -e '^/usr/share/man/' "$tmp/deb.list"); do
			cmp -s "$tmp/inst$f" "$tmp/data$f" || { diag "differs: $f"; same=0; }
		done
		check "installed configuration, hooks, catalog and tmpfiles are byte for byte the .deb's" test "$same" = 1
	else
		diag "$(tail -n 20 "$tmp/install.log")"
		not_ok "make -C $top_builddir install DESTDIR=..."
	fi
else
	diag "$top_builddir has no Makefile: make install not compared"
fi

echo "1..$n"
[ "$failed" -eq 0 ]

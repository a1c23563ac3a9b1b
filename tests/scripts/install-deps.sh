#!/bin/bash
# The README's two commands share tests/install-deps. Its "what is missing" logic once died under set -e when dpkg
# knew a package by no name at all, which is the normal case on a fresh machine, and tests/demo exited 1 without a
# word. Checked here against a miniature dpkg database (one package installed, one removed with its conffiles
# left, one never heard of), and apt's failure against an empty package index: both run the real dpkg-query and
# apt-get.
. "$(dirname "$0")/../lib.sh"
[ "$(id -u)" -eq 0 ] || bail "needs root (install-deps refuses to run apt-get otherwise)"
src=$top_srcdir
work=$(mktemp -d /tmp/rau-install-deps.XXXXXX)
trap 'rm -rf "$work"' EXIT

db=$work/dpkg
mkdir -p "$db/info" "$db/updates"
cat >"$db/status" <<'EOF'
Package: rau-present
Status: install ok installed
Maintainer: Test <test@example.org>
Architecture: all
Version: 1.0
Description: installed

Package: rau-removed
Status: deinstall ok config-files
Maintainer: Test <test@example.org>
Architecture: all
Version: 1.0
Description: removed, its conffiles left

EOF
export RAU_DPKG_ADMINDIR=$db

out=$("$src/tests/install-deps" --missing rau-present rau-removed rau-never-heard-of 2>&1)
rc=$?
check "--missing exits 0 although dpkg-query fails on an unknown name" test "$rc" -eq 0
check "--missing lists the removed and the unknown package, not the installed one (got: $(echo $out))" \
	test "$out" = "$(printf 'rau-removed\nrau-never-heard-of')"
out=$("$src/tests/install-deps" --missing rau-present 2>&1)
check "--missing prints nothing when everything is installed" test -z "$out"

# Nothing to install: no apt at all, exit 0, silent.
out=$("$src/tests/install-deps" rau-present 2>&1)
rc=$?
check "nothing missing: exit 0 and silent" test "$rc" -eq 0 -a -z "$out"

# apt with no sources: it knows no package, as with a typo or a component missing from sources.list.
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/parts"
: >"$work/apt-status"
export RAU_APT_OPTIONS="-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts=$work/parts \
-o Dir::State::Lists=$work/lists -o Dir::Cache=$work/cache -o Dir::State::status=$work/apt-status \
-o Debug::NoLocking=1"
"$src/tests/install-deps" rau-present rau-never-heard-of >"$work/out" 2>"$work/err"
rc=$?
check "apt cannot install: exit 1 (got $rc)" test "$rc" -eq 1
check "says in one line what it is installing and why" \
	grep -qx 'install-deps: installing rau-never-heard-of (to build reconcile-after-upgrade and run its tests)' "$work/out"
check "names the package apt cannot install, in one line" \
	test "$(cat "$work/err")" = "install-deps: apt cannot install rau-never-heard-of: no installation candidate (is this Debian 12 with the main component in its sources?)."

# The first command of the README, on a machine where apt can install nothing: it must say what failed.
RAU_DPKG_ADMINDIR=$work/empty-db
mkdir -p "$RAU_DPKG_ADMINDIR/info" "$RAU_DPKG_ADMINDIR/updates"
: >"$RAU_DPKG_ADMINDIR/status"
"$src/tests/demo" >"$work/out" 2>"$work/err"
rc=$?
check "tests/demo exits non-zero when the install step fails (got $rc)" test "$rc" -ne 0
check "tests/demo names the package apt cannot install" grep -q '^install-deps: apt cannot install build-essential ' "$work/err"
check "tests/demo says which step failed and what to do" \
	grep -qx 'tests/demo: failed while checking dependencies (exit 1). Fix what install-deps said above (apt sources, network, disk space), then run tests/demo again.' "$work/err"
grep -q . "$work/err" || cat "$work/out" | sed 's/^/# /'
tap_done

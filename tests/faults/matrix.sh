#!/bin/bash
# The fault matrix, the faults a network namespace can stage (tests/faults/matrix-system.sh has those that need
# real systemd). One row per fault; each run is checked for what an administrator relies on: it is bounded in time,
# it says in one line what went wrong, the history stays parseable (every line a whole record, none lost, none
# twice), no temporary file is left, and the lock is free afterwards. A table of the rows is printed at the end.
source "$(dirname "$0")/../lib.sh"
# A private mount namespace too: tmpfs mounts here (a small state dir, a /run where systemd seems to run) stay here.
[ -n "${RAU_IN_MNTNS:-}" ] || [ "$(id -u)" -ne 0 ] || RAU_IN_MNTNS=1 exec unshare -m --propagation private "$BASH" "$0" "$@"
in_netns "$@"
HUNG_BUS="$top_builddir/tests/hung-bus"
SHIM="$top_builddir/tests/fault-after-commit.so"

holder_start ts0
cat >"$WORK/filter.nft" <<'NFT'
table inet filter {
	chain forward {
		type filter hook forward priority 0; policy drop;
		iif "ts0" accept
		oif "ts0" ct state established accept
	}
}
NFT
nft -f "$WORK/filter.nft" || bail "cannot load the rules"
nft add table ip foreign
nft add chain ip foreign c
nft add rule ip foreign c tcp dport 9100 accept
foreign=$(nft list table ip foreign)

ROWS=()
# fresh: the firewall loaded again, empty state, a snapshot, ts0 re-created: two stale references
fresh() {
	nft delete table inet filter && nft -f "$WORK/filter.nft" || bail "cannot reload the rules"
	rm -rf "$RUN_DIR" "$STATE_DIR"
	mkdir -p -m 0700 "$RUN_DIR" "$STATE_DIR"
	rau -q snapshot || bail "snapshot failed"
	holder_restart ts0
}
records() { [ -f "$STATE_DIR/history.jsonl" ] && wc -l <"$STATE_DIR/history.jsonl" || echo 0; }
# every line of the history a whole JSON record, and no two the same run (past the first $GARBAGE lines, planted
# by the row itself; a symlink planted for it is not ours and never read)
GARBAGE=0
history_ok() {
	local f
	for f in "$STATE_DIR/history.jsonl.1" "$STATE_DIR/history.jsonl"; do
		[ -f "$f" ] && [ ! -L "$f" ] || continue
		tail -n +$((GARBAGE + 1)) "$f" | jq -e . >/dev/null 2>&1 || return 1
		[ "$(tail -n +$((GARBAGE + 1)) "$f" | jq -r .finished | sort | uniq -d | wc -l)" -eq 0 ] || return 1
	done
	return 0
}
no_tmp() { [ -z "$(find "$RUN_DIR" "$STATE_DIR" -maxdepth 1 -name '.*.tmp' 2>/dev/null)" ]; }
# (only a regular file can be the lock: a FIFO planted there is the fault itself, and flock would block on it)
lock_free() { [ ! -f "$RUN_DIR/lock" ] || flock -n "$RUN_DIR/lock" true; }
# run CMD...: times CMD (output in $WORK/out, $WORK/err), sets RC SECS; "rau" is the program with the test's dirs
run() {
	local t0
	[ "$1" != rau ] || set -- "$RAU" --run-dir "$RUN_DIR" --state-dir "$STATE_DIR" "${@:2}"
	t0=$(date +%s.%N)
	timeout 60 "$@" >"$WORK/out" 2>"$WORK/err"
	RC=$?
	SECS=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
}
# row FAULT LIMIT_S EXPECT: checks the invariants after a run, and what the row itself expects (a command)
row() {
	local fault=$1 limit=$2 expect=$3 bounded=yes hist=yes tmp=yes lock=yes own=yes verdict=ok
	awk -v s="$SECS" -v l="$limit" 'BEGIN { exit !(s < l) }' || bounded=no
	history_ok || hist=no
	no_tmp || tmp=no
	lock_free || lock=no
	eval "$expect" || own=no
	[ "$bounded$hist$tmp$lock$own" = yesyesyesyesyes ] || verdict=FAIL
	ROWS+=("$(printf '%-44s %4s %7s %8s %7s %7s %5s  %s' "$fault" "$RC" "${SECS}s<$limit" "$hist" "$tmp" "$lock" "$own" "$verdict")")
	if [ $verdict = ok ]; then ok "$fault"; else
		not_ok "$fault (exit $RC, ${SECS} s, history $hist, no tmp $tmp, lock free $lock, expected $own)"
		sed 's/^/#   out: /' "$WORK/out" | head -5
		sed 's/^/#   err: /' "$WORK/err" | head -5
	fi
}
one_line() { [ "$(wc -l <"$WORK/err")" -eq 1 ] && grep -q "$1" "$WORK/err"; }
fixed() { rau -q check && nft list chain inet filter forward | grep -q 'iif "ts0"'; }

# --- disk full: the state directory on a 64 KiB tmpfs, filled but for a few hundred bytes
fresh
mkdir -p "$WORK/small"
mount -t tmpfs -o size=64k,mode=0700 small "$WORK/small" || bail "cannot mount a tmpfs"
cp -a "$STATE_DIR/." "$WORK/small/"
rm -rf "$STATE_DIR"
STATE_DIR=$WORK/small
# a record that ends on a page boundary: the next one needs a page the tmpfs does not have
printf '{"time":1,"outcome":"fixed","finished":1.5,"pad":"%s"}\n' "$(head -c 4043 /dev/zero | tr '\0' x)" \
	>"$STATE_DIR/history.jsonl"
chmod 600 "$STATE_DIR/history.jsonl"
dd if=/dev/zero of="$STATE_DIR/filler" bs=1k count=63 2>/dev/null
rm -f "$STATE_DIR/filler"
dd if=/dev/zero of="$STATE_DIR/filler" bs=256 count=1000 2>/dev/null
n0=$(records)
run rau
row "disk full (state on a full tmpfs)" 5 \
	'[ $RC -eq 0 ] && fixed && [ "$(records)" -eq "$n0" ] && grep -q "No space left on device" "$WORK/err"'
rm -f "$STATE_DIR/filler"
holder_restart ts0
run rau
row "disk full, then space again: whole records" 5 '[ $RC -eq 0 ] && [ "$(records)" -eq $((n0 + 1)) ]'
umount "$WORK/small"
STATE_DIR=$WORK/state

# --- planted files: a symlink for the state directory, for the history, a FIFO for the snapshot and the lock
fresh
mv "$STATE_DIR" "$WORK/state.real"
mkdir -p "$WORK/elsewhere" && chown nobody "$WORK/elsewhere"
ln -s "$WORK/elsewhere" "$STATE_DIR"
chown -h nobody "$STATE_DIR"
run rau
row "state dir replaced by a symlink (by nobody)" 5 \
	'[ $RC -eq 2 ] && one_line "state directory" && [ -z "$(ls -A "$WORK/elsewhere")" ]'
rm "$STATE_DIR"
mv "$WORK/state.real" "$STATE_DIR"

chown nobody "$STATE_DIR"
run rau
row "state dir owned by another user" 5 '[ $RC -eq 2 ] && one_line "Operation not permitted"'
chown root "$STATE_DIR"

echo "something of value" >"$WORK/precious"
cp "$WORK/precious" "$WORK/precious.orig"
ln -s "$WORK/precious" "$STATE_DIR/history.jsonl"
run rau
row "history.jsonl replaced by a symlink" 5 \
	'[ $RC -eq 0 ] && fixed && cmp -s "$WORK/precious" "$WORK/precious.orig" && grep -q "history.jsonl" "$WORK/err"'
rm "$STATE_DIR/history.jsonl"

fresh
rm -f "$RUN_DIR/snapshot.json" && mkfifo "$RUN_DIR/snapshot.json"
run rau
row "snapshot.json replaced by a FIFO" 5 '[ $RC -eq 0 ] && fixed && grep -q "unreadable snapshot" "$WORK/err"'

fresh
rm -f "$RUN_DIR/lock" && mkfifo "$RUN_DIR/lock"
run rau
row "lock replaced by a FIFO" 5 '[ $RC -eq 2 ] && one_line "lock"'
rm -f "$RUN_DIR/lock"

# --- corrupt state: a truncated snapshot, a corrupt link history, a history with garbage and a torn last line
fresh
head -c 100 "$RUN_DIR/snapshot.json" >"$WORK/s" && cat "$WORK/s" >"$RUN_DIR/snapshot.json"
run rau
row "truncated snapshot (the history still names ts0)" 5 \
	'[ $RC -eq 0 ] && fixed && grep -q "Ignoring unreadable snapshot" "$WORK/err"'
fresh
echo '{"links": [{"name": 7' >"$STATE_DIR/links.json"
run rau
row "corrupt link history" 5 '[ $RC -eq 0 ] && fixed && grep -q "Ignoring unreadable link history" "$WORK/err"'
fresh
printf 'garbage\n{"time":1,"outcome":"fi' >"$STATE_DIR/history.jsonl"
chmod 600 "$STATE_DIR/history.jsonl"
GARBAGE=2
run rau
row "history with garbage and a torn last line" 5 \
	'[ $RC -eq 0 ] && [ "$(tail -n 1 "$STATE_DIR/history.jsonl" | jq -r .outcome)" = fixed ] &&
	 [ "$(rau history | grep -c "(unreadable line)")" -eq 2 ]'
GARBAGE=0
rm -f "$STATE_DIR/history.jsonl"
SECS=0 RC=0
fresh
printf 'not json\n{"package": 3}\n{"time":1,"package":"tailscale","action":"upgrade","version_before":"1.0"}\n{"tim' \
	>"$RUN_DIR/dpkg-events.jsonl"
run rau
row "corrupt dpkg events file" 5 '[ $RC -eq 0 ] && fixed && [ ! -e "$RUN_DIR/dpkg-events.jsonl" ]'

# --- a configuration value of every wrong type, read through apt's own parser
fresh
cat >"$WORK/apt.conf" <<'CONF'
Reconcile-After-Upgrade {
  Mode "sometimes"; Repair "restart"; Allow-Flush "perhaps"; Interface-Wait "-3"; Job-Timeout "soon";
  Time-Budget "1e9"; Prune-Stale-Twins "2"; History-Max-Size "10"; Never-Touch { "not a unit"; };
  Table-Unit::filter "x.service"; Daemon-Unit::nounit "y.service";
};
CONF
APT_CONFIG=$WORK/apt.conf run rau
row "a configuration value of every wrong type" 5 \
	'[ $RC -eq 0 ] && fixed && [ "$(grep -c "using the default" "$WORK/err")" -eq 11 ]'

# --- leftovers of an interrupted replace (killed between its write and its rename)
fresh
echo partial >"$STATE_DIR/.last-run.json.4242.tmp"
echo partial >"$RUN_DIR/.snapshot.json.4242.tmp"
run rau
row "temporary files of an interrupted replace" 5 '[ $RC -eq 0 ] && fixed'

# --- the system bus absent and hung, where systemd seems to run (/run/systemd/system exists: /run a tmpfs here)
mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system || bail "cannot stage /run"
fresh
DBUS_SYSTEM_BUS_ADDRESS=unix:path=/run/nonexistent run rau
row "D-Bus absent, systemd seemingly running" 5 '[ $RC -eq 0 ] && fixed && one_line "The system bus did not answer"'
"$HUNG_BUS" /run/hung.sock >"$WORK/bus.out" 2>&1 &
bus=$!
for _ in $(seq 100); do grep -q ready "$WORK/bus.out" && break; sleep 0.02; done
fresh
DBUS_SYSTEM_BUS_ADDRESS=unix:path=/run/hung.sock run rau
row "D-Bus hung (accepts, never answers)" 5 \
	'[ $RC -eq 0 ] && fixed && one_line "The system bus did not answer (Connection timed out)"'
fresh
DBUS_SYSTEM_BUS_ADDRESS=unix:path=/run/hung.sock run rau --hook=apt
row "D-Bus hung, under the apt hook" 5 \
	'[ $RC -eq 0 ] && fixed && [ "$(wc -l <"$WORK/out")" -eq 1 ] && grep -q "verified fresh" "$WORK/out"'
# The status-logger: garbage, a line of a megabyte, no final newline. It reads to the end (dpkg must not get
# SIGPIPE) and notes only what is real.
rm -f "$RUN_DIR/dpkg-events.jsonl"
{ printf 'garbage\0line\nprocessing: upgrade: tailscale\n'; head -c 1048576 /dev/zero | tr '\0' x
	printf '\nstatus: tailscale: installed\nprocessing: configure: tailscale'; } >"$WORK/stream"
run sh -c "cat '$WORK/stream' | '$RAU' --run-dir '$RUN_DIR' --state-dir '$STATE_DIR' dpkg-status"
row "dpkg status stream: garbage, a 1 MiB line, no final newline" 5 \
	'[ $RC -eq 0 ] && [ "$(jq -r .action "$RUN_DIR/dpkg-events.jsonl" | paste -sd" ")" = "upgrade configure" ]'
kill "$bus"
wait "$bus" 2>/dev/null
umount /run

# --- a verify that cannot read: the reading after the commit fails (the one mock: see fault-after-commit.c)
fresh
cp "$RUN_DIR/snapshot.json" "$WORK/snapshot.before"
LD_PRELOAD=$SHIM ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 run rau
row "the read after the commit fails (preloaded mock)" 5 \
	'[ $RC -eq 2 ] && ! grep -q Verified "$WORK/out" && grep -q "Failed to read the ruleset again to verify" "$WORK/err" &&
	 [ "$(jq -r .outcome "$STATE_DIR/last-run.json")" = failed ] && cmp -s "$RUN_DIR/snapshot.json" "$WORK/snapshot.before"'

check "the foreign table survived every run" test "$(nft list table ip foreign)" = "$foreign"
echo "# fault matrix (namespace): exit, seconds < bound, history whole, no temporary file, lock free, as expected"
printf '# %-44s %4s %7s %8s %7s %7s %5s  %s\n' "fault" "exit" "time" "history" "no-tmp" "lock" "own" "verdict"
printf '# %s\n' "${ROWS[@]}"
tap_done

#!/bin/bash
# The command-line contract: exit codes, one clear error line, root-only state that is never read through a
# symlink, and concurrent runs serialised by the lock.
source "$(dirname "$0")/../lib.sh"
in_netns "$@"

"$RAU" --run-dir "$RUN_DIR" --state-dir "$STATE_DIR" frobnicate 2>"$WORK/err"
check "unknown command: exit 2" test $? -eq 2
check "with one line on stderr" test "$(wc -l <"$WORK/err")" -eq 1

: >"$WORK/file"
"$RAU" --run-dir "$WORK/file" --state-dir "$STATE_DIR" check 2>"$WORK/err"
check "run dir that is a file: exit 2" test $? -eq 2
check "and the error names it" grep -q "$WORK/file" "$WORK/err"
check "in one line" test "$(wc -l <"$WORK/err")" -eq 1

ln -s /tmp "$WORK/link"
"$RAU" --run-dir "$WORK/link" --state-dir "$STATE_DIR" check 2>"$WORK/err"
check "run dir that is a symlink: refused (exit 2)" test $? -eq 2

holder_start tun0
nft add table ip t && nft add chain ip t c && nft add rule ip t c iif tun0 accept
rau -q snapshot
check "state dirs are 0700" test "$(stat -c %a "$RUN_DIR") $(stat -c %a "$STATE_DIR")" = "700 700"
check "history is 0600" test "$(stat -c %a "$STATE_DIR/links.json")" = 600

mv "$RUN_DIR/snapshot.json" "$WORK/real-snapshot.json"
ln -s "$WORK/real-snapshot.json" "$RUN_DIR/snapshot.json"
rau check 2>"$WORK/err" >/dev/null
check "a symlinked snapshot is not followed (check still runs: exit 0)" test $? -eq 0
check "and says so" grep -q "Ignoring unreadable snapshot" "$WORK/err"
rm "$RUN_DIR/snapshot.json"

echo garbage >"$STATE_DIR/links.json"
rau -q check 2>"$WORK/err"
check "a corrupt history is a warning, not an error (exit 0)" test $? -eq 0
check "the warning names the file" grep -q "links.json" "$WORK/err"
check "and the history is rewritten" test "$(jq '.links | length > 0' "$STATE_DIR/links.json")" = true

# the lock: a held lock makes the next run wait, then go on
exec 9>"$RUN_DIR/lock"
flock 9
( sleep 0.5; flock -u 9 ) &
start=$(date +%s%N)
rau -q snapshot
end=$(date +%s%N)
exec 9>&-
check "a run waits for the lock held by another" test $(((end - start) / 1000000)) -ge 400

pids=()
for i in 1 2 3 4; do rau -q snapshot & pids+=($!); done
fails=0
for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
check "four concurrent snapshots all succeed" test $fails -eq 0
check "and leave one valid snapshot, no temporary files" \
	test "$(jq '.links | length' "$RUN_DIR/snapshot.json") $(ls -A "$RUN_DIR" | grep -c tmp)" = "2 0"

tap_done

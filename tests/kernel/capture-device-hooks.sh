#!/bin/bash
# tests/kernel/capture-device-hooks.sh: records the fixture tests/fixtures/device-hooks.* (the netlink messages
# the checker reads, and nft -j's listing) on Debian's 6.1 kernel under qemu: netdev chains bound to one and to two
# devices, an inet ingress chain and a flowtable, which the build machines' kernel cannot make (it has no
# flowtables). The fuzzers take it as a seed for the flowtable and hook-device parsing.
# Usage (root): tests/kernel/capture-device-hooks.sh [BUILDDIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
. "$here/kernel-vm.sh"
work=$(mktemp -d /var/tmp/rau-capture.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp "$build/tests/nl-capture" "$build/tests/tun-holder" "$work/"
cat >"$work/capture.sh" <<'INNER'
#!/bin/bash
set -e
cd /opt/t
unshare -n bash -c '
	ip link set lo up
	./tun-holder ts0 ts1 >holder.out 2>&1 &
	for _ in $(seq 200); do grep -q ready holder.out && break; sleep 0.05; done
	nft -f - <<NFT
table netdev rau_p1 { chain c { type filter hook ingress device "ts0" priority 0; policy drop; counter; iif "ts0" accept; }; }
table netdev rau_p2 { chain c { type filter hook ingress devices = { ts0, ts1 } priority -10; counter; }; }
table inet rau_p3 { chain c { type filter hook ingress device "ts0" priority 5; counter; }; }
table inet rau_p4 { flowtable f { hook ingress priority 0; devices = { ts0, ts1 }; }; chain fw { type filter hook forward priority 0; flow add @f; }; }
NFT
	./nl-capture links.nl ruleset.nl
	nft -j list ruleset | python3 -m json.tool >listing.json
	for f in links.nl ruleset.nl listing.json; do echo "FILE $f $(base64 -w0 $f)"; done
'
INNER
chmod +x "$work/capture.sh"
RAU_KVM_QUIET=1 kvm_run 6.1 "$work/capture.sh" "$work/nl-capture" "$work/tun-holder" >"$work/out"
out() { awk -v f="$1" '$1 == "FILE" && $2 == f { print $3 }' "$work/out" | base64 -d; }
out links.nl >"$top/tests/fixtures/device-hooks.links.nl"
out ruleset.nl >"$top/tests/fixtures/device-hooks.ruleset.nl"
out listing.json >"$top/tests/fixtures/device-hooks.json"
ls -la "$top"/tests/fixtures/device-hooks.*

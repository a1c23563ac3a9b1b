# tests/kernel/nft-devices.sh: the devices a chain or flowtable is bound to, as nft lists them. Sourced (bash) by
# probe-measure.sh (beside it, in the guest and on the host) and by ns/device-hooks.sh.
#
# nft 1.0.6 (Debian 12) lists a chain's devices only in its text output (its JSON has none), so the text is read;
# a newer nft's JSON is read where the text has none.

# nft_devices chain|flowtable FAMILY TABLE NAME: "absent" when there is no such object; otherwise its devices,
# sorted, comma separated (nothing when it is on none)
nft_devices() {
	local kind=$1 family=$2 table=$3 name=$4 out line devs
	out=$(nft list "$kind" "$family" "$table" "$name" 2>/dev/null) || { echo absent; return; }
	if [ "$kind" = flowtable ]; then
		line=$(grep -m1 'devices = ' <<<"$out")
	else
		line=$(grep -m1 -E 'hook (ingress|egress)' <<<"$out" | sed -n -E 's/.*hook (ingress|egress)(.*)priority.*/\2/p')
	fi
	devs=$(sed 's/devices = //; s/device //; s/[{}",;]/ /g' <<<"$line" | tr -s '[:blank:]' '\n' | grep -v '^$' | sort | paste -sd, -)
	if [ -z "$devs" ]; then
		devs=$(nft -j list "$kind" "$family" "$table" "$name" 2>/dev/null | jq -r '.nftables[] | (.chain // .flowtable // empty) |
			.dev // empty | if type == "array" then .[] else . end' | sort | paste -sd, -)
	fi
	echo "$devs"
}

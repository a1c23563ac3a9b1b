# tests/system/postmortem-units.sh: the post-mortem's local firewall, for tests that boot a container.
# Sourced (bash), after container.sh and ct_boot:
#
#   . tests/system/postmortem-units.sh
#   install_standin_tailscaled   # tailscaled.service: tun-holder re-creates tailscale0 at every start
#   install_postmortem_units     # writes the unit and its script inside the container, then daemon-reload
#   ct_exec systemctl enable --now nftables-local.service   # once tailscale0 exists: nft refuses iif "x" before
#   start_firewall_beside_foreign   # or: that, once tailscale0 exists, and another program's table beside it
#   foreign_intact                  # that table is as it was
#
# nftables-local.service is as in the incident: Type=oneshot with only Wants=/After=tailscaled.service, so a
# restart of tailscaled does not re-run it. /etc/nftables-local.sh loads `iif "tailscale0"` / `oif "tailscale0"`
# rules under policy drop, which nftables resolves to tailscale0's ifindex at load time. Two test affordances,
# which change nothing unless used: StartLimitIntervalSec=0 (tests start it more than 5 times in 10 s) and the
# file /etc/nftables-local.fail, whose presence makes the script fail (a reload that fails), and
# /etc/nftables-local.slow, which makes it take 4 s (a reload that outlasts a time budget).

install_postmortem_units() {
	ct_exec sh -c 'cat >/etc/systemd/system/nftables-local.service' <<'UNIT' || return 1
[Unit]
Description=local firewall (as in the post-mortem: oneshot, Wants= only)
Wants=tailscaled.service
After=tailscaled.service
# tests start it more than 5 times in 10 s; the default start limit would fail it (as it would in real life)
StartLimitIntervalSec=0
[Service]
Type=oneshot
ExecStart=/etc/nftables-local.sh
[Install]
WantedBy=multi-user.target
UNIT
	ct_exec sh -c 'cat >/etc/nftables-local.sh && chmod +x /etc/nftables-local.sh' <<'SCRIPT' || return 1
#!/bin/sh
set -e
[ -e /etc/nftables-local.fail ] && exit 1
[ -e /etc/nftables-local.slow ] && sleep 4
nft list table inet filter >/dev/null 2>&1 && nft delete table inet filter
nft -f - <<'NFT'
table inet filter {
	chain forward {
		type filter hook forward priority 0; policy drop;
		iif "tailscale0" accept
		oif "tailscale0" ct state established,related accept
	}
}
NFT
SCRIPT
	ct_exec systemctl daemon-reload
}

# start_firewall_beside_foreign: waits (5 s at most) for tailscale0, starts nftables-local.service, and loads a table
# some other program made for itself (nothing here creates or deletes it); FOREIGN keeps its listing.
start_firewall_beside_foreign() {
	for _ in $(seq 100); do ct_exec ip link show tailscale0 >/dev/null 2>&1 && break; sleep 0.05; done
	ct_exec systemctl enable --now nftables-local.service >/dev/null 2>&1
	ct_exec nft -f - <<'NFT'
table ip foreign {
	chain input {
		type filter hook input priority 10; policy accept;
		tcp dport 9100 accept
	}
}
NFT
	FOREIGN=$(ct_exec nft list table ip foreign)
}
# install_standin_tailscaled [DELAY_MS [UNIT_LINES [SERVICE_LINES]]]: tailscaled.service, a stand-in that re-creates
# tailscale0 (a TUN device, so at a new index) at every start, DELAY_MS after it; the lines go into [Unit] and
# [Service] as they are (Restart=, PartOf=). Copies $top_builddir/tests/tun-holder in; daemon-reload.
install_standin_tailscaled() {
	ct_copy_in "$top_builddir/tests/tun-holder" /usr/local/bin/tun-holder || return 1
	ct_exec sh -c 'cat >/etc/systemd/system/tailscaled.service' <<UNIT || return 1
[Unit]
Description=stand-in for tailscaled: re-creates tailscale0 at every start, ${1:-0} ms after it
# tests restart it more than 5 times in 10 s
StartLimitIntervalSec=0
${2:-}
[Service]
ExecStart=/usr/local/bin/tun-holder -d ${1:-0} tailscale0
${3:-}
[Install]
WantedBy=multi-user.target
UNIT
	ct_exec systemctl daemon-reload
}

# nftables_local_reloads: how many times nftables-local.service ran to completion this boot. journald takes the
# message from systemd asynchronously; --sync makes what systemd logged before the call visible to the count.
nftables_local_reloads() {
	ct_exec journalctl --sync
	ct_exec journalctl -q -u nftables-local.service -o cat | grep -c "Finished nftables-local.service"
}

foreign_intact() { test "$(ct_exec nft list table ip foreign 2>&1)" = "$FOREIGN"; }

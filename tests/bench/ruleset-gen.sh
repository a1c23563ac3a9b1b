# SPDX-License-Identifier: GPL-2.0-or-later
# tests/bench/ruleset-gen.sh: the benchmarks' ruleset, sourced by check-bench and rebind-bench (bash).

# gen_ruleset NIFACES NCHAINS NRULES : prints an nft script for table inet filter.
# Chains 0..2 are the base chains input/forward/output; input jumps to every regular chain. Rule mix (per
# rule number): ~66% iif "tunN" ip saddr X accept, ~10% oif "tunN" ... accept, ~10% iifname "tunN" (by name,
# never stale), ~5% iif + port + counter, ~2% anonymous iif { "tunA", "tunB" }, ~2% iif @named-set, the rest
# plain address/port rules with counters and no interface.
gen_ruleset() {
	awk -v nif="$1" -v nchains="$2" -v nrules="$3" '
	function ifn(k) { return "\"tun" (k % nif) "\"" }
	function addr(k) { return "10." int(k / 65536) % 256 "." int(k / 256) % 256 "." k % 256 }
	function chname(c) { return c == 0 ? "input" : c == 1 ? "forward" : c == 2 ? "output" : "c" c }
	BEGIN {
	        per = int(nrules / nchains)
	        print "flush ruleset"
	        print "table inet filter {"
	        # two named sets of interface indexes
	        printf "\tset vpn_ifaces {\n\t\ttype iface_index\n\t\telements = { "
	        for (k = 0; k < 40 && k < nif; k++) printf "%s%s", (k ? ", " : ""), ifn(k * 7 + 3)
	        print " }\n\t}"
	        printf "\tset trusted_ifaces {\n\t\ttype iface_index\n\t\telements = { "
	        for (k = 0; k < 100 && k * 5 < nif; k++) printf "%s%s", (k ? ", " : ""), ifn(k * 5)
	        print " }\n\t}"
	        for (c = 0; c < nchains; c++) {
	                print "\tchain " chname(c) " {"
	                if (c < 3)
	                        print "\t\ttype filter hook " chname(c) " priority filter; policy accept;"
	                n = 0
	                if (c == 0)
	                        for (j = 3; j < nchains && n < per; j++) {
	                                print "\t\tjump " chname(j)
	                                n++
	                        }
	                for (; n < per; n++) {
	                        r = c * per + n
	                        k = (r * 7919) % nif # spread interfaces over the rules
	                        m = r % 100
	                        if (c == 2 && m < 66) m = 66 # output: oif, not iif
	                        if (m < 66)
	                                print "\t\tiif " ifn(k) " ip saddr " addr(r) " accept"
	                        else if (m < 76)
	                                print "\t\toif " ifn(k) " ip daddr " addr(r) " tcp dport " 1024 + r % 30000 " accept"
	                        else if (m < 86)
	                                print "\t\tiifname " ifn(k) " ip saddr " addr(r) " accept"
	                        else if (m < 91)
	                                print "\t\tiif " ifn(k) " tcp dport " 1 + r % 1000 " counter accept"
	                        else if (m < 93)
	                                print "\t\tiif { " ifn(k) ", " ifn(k + 1) " } udp dport " 1 + r % 60000 " accept"
	                        else if (m < 95)
	                                print "\t\tiif @" (r % 2 ? "vpn_ifaces" : "trusted_ifaces") " ip saddr " addr(r) " counter accept"
	                        else
	                                print "\t\tip saddr " addr(r) " tcp dport " 1 + r % 1000 " counter drop"
	                }
	                print "\t}"
	        }
	        print "}"
	}'
}

/* SPDX-License-Identifier: GPL-2.0-or-later */
/* fuzz-links: the rtnetlink link dump parser. Input: RTM_NEWLINK messages as a dump returns them (seeds:
 * tests/fixtures/NAME.links.nl). */
#include <libmnl/libmnl.h>

#include "fuzz.h"
#include "links.h"
#include "netlink.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        fuzz_quiet();
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(link_table_done) struct link_table table = {};
        const struct nlmsghdr *nlh;
        size_t off;

        NLMSG_FOREACH_IN(nlh, data, size, off)
                if (links_parse_msg(&table, nlh) < 0)
                        break;
        links_finish(&table);

        /* sorted, names terminated, and each one found again by the lookups diagnose uses */
        for (size_t i = 0; i < table.n_links; i++) {
                const struct link *l = &table.links[i];
                if (i > 0 && table.links[i - 1].ifindex > l->ifindex)
                        abort();
                if (strnlen(l->name, sizeof(l->name)) == sizeof(l->name) || strnlen(l->kind, sizeof(l->kind)) == sizeof(l->kind))
                        abort();
                if (!links_by_index(&table, l->ifindex) || !links_by_name(&table, l->name))
                        abort();
        }
        return 0;
}

/* SPDX-License-Identifier: GPL-2.0-or-later */
/* nl-capture: records the netlink messages the checker reads (links, then the ruleset) to two files, as the
 * fixtures of the unit tests. Usage: nl-capture LINKS.nl RULESET.nl */
#include <libmnl/libmnl.h>
#include <stdio.h>
#include <string.h>

#include "links.h"
#include "netlink.h"
#include "ruleset.h"

static void record(const struct nlmsghdr *nlh, void *userdata) {
        fwrite(nlh, 1, nlh->nlmsg_len, userdata);
}

int main(int argc, char *argv[]) {
        if (argc != 3) {
                fprintf(stderr, "usage: nl-capture LINKS.nl RULESET.nl\n");
                return 2;
        }
        FILE *lf = fopen(argv[1], "we"), *rf = fopen(argv[2], "we");
        if (!lf || !rf) {
                perror("fopen");
                return 1;
        }

        struct link_table links;
        int r = links_dump(&links, record, lf);
        if (r < 0) {
                fprintf(stderr, "links: %s\n", strerror(-r));
                return 1;
        }
        link_table_done(&links);

        struct ruleset rs;
        r = ruleset_read(&rs, record, rf);
        if (r < 0) {
                fprintf(stderr, "ruleset: %s\n", strerror(-r));
                return 1;
        }
        ruleset_done(&rs);
        return fclose(lf) == 0 && fclose(rf) == 0 ? 0 : 1;
}

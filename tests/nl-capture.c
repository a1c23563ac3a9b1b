/* SPDX-License-Identifier: GPL-2.0-or-later */
/* nl-capture: records the netlink messages the checker reads (links, then the ruleset) to two files, as the
 * fixtures of the unit tests. Usage: nl-capture LINKS.nl RULESET.nl */
#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "links.h"
#include "netlink.h"
#include "ruleset.h"

static void record(const struct nlmsghdr *nlh, void *userdata) {
        fwrite(nlh, 1, nlh->nlmsg_len, userdata);
}

static int links_cb(const struct nlmsghdr *nlh, void *userdata) {
        record(nlh, userdata);
        return MNL_CB_OK;
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

        struct mnl_socket *nl;
        char buf[MNL_SOCKET_BUFFER_SIZE];
        if (netlink_open(NETLINK_ROUTE, &nl) < 0) {
                perror("netlink");
                return 1;
        }
        struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
        nlh->nlmsg_type = RTM_GETLINK;
        nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
        nlh->nlmsg_seq = (uint32_t) time(NULL);
        struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
        ifi->ifi_family = AF_UNSPEC;
        mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
        if (netlink_dump(nl, nlh, links_cb, lf, NULL, NULL) < 0) {
                perror("link dump");
                return 1;
        }
        mnl_socket_close(nl);

        struct ruleset rs;
        int r = ruleset_read(&rs, record, rf);
        if (r < 0) {
                fprintf(stderr, "ruleset: %s\n", strerror(-r));
                return 1;
        }
        ruleset_done(&rs);
        return fclose(lf) == 0 && fclose(rf) == 0 ? 0 : 1;
}

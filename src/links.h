/* SPDX-License-Identifier: GPL-2.0-or-later */
/* links.h: the network interfaces of the current namespace, from one rtnetlink dump. */
#pragma once

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct nlmsghdr;

struct link {
        uint32_t ifindex;
        char name[IFNAMSIZ];
        char kind[32]; /* IFLA_INFO_KIND: "tun", "veth", "ifb", …; empty for plain devices */
        bool up;
};

/* Sorted by ifindex once complete. */
struct link_table {
        struct link *links;
        size_t n_links;
        size_t allocated;
};

/* Dumps the links of the namespace this process is in. tap (may be NULL) sees each message as received. */
int links_dump(struct link_table *ret, void (*tap)(const struct nlmsghdr *nlh, void *userdata), void *tap_data);

/* Adds the link an RTM_NEWLINK message describes (other messages are ignored); call links_finish() after the last. */
int links_parse_msg(struct link_table *table, const struct nlmsghdr *nlh);
void links_finish(struct link_table *table);

/* Waits on an rtnetlink subscription (no polling) until an interface of each name exists, at most timeout_usec.
 * 0 when they all do, -ETIMEDOUT when one still does not. */
int links_wait_for(const char *const *names, size_t n, uint64_t timeout_usec);

const struct link *links_by_index(const struct link_table *table, uint32_t ifindex);
const struct link *links_by_name(const struct link_table *table, const char *name);

void link_table_done(struct link_table *table);

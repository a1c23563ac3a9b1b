/* SPDX-License-Identifier: GPL-2.0-or-later */
/* links.c: RTM_GETLINK dump through libmnl, parsed into struct link. */
#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <poll.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <time.h>

#include "links.h"
#include "macro.h"
#include "netlink.h"

struct link_attrs {
        const struct nlattr *name;
        const struct nlattr *linkinfo;
};

static int link_attr_cb(const struct nlattr *attr, void *data) {
        struct link_attrs *a = data;

        switch (mnl_attr_get_type(attr)) {
        case IFLA_IFNAME:
                if (mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0)
                        a->name = attr;
                break;
        case IFLA_LINKINFO:
                if (mnl_attr_validate(attr, MNL_TYPE_NESTED) >= 0)
                        a->linkinfo = attr;
                break;
        }
        return MNL_CB_OK;
}

static int linkinfo_attr_cb(const struct nlattr *attr, void *data) {
        const struct nlattr **kind = data;

        if (mnl_attr_get_type(attr) == IFLA_INFO_KIND && mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0)
                *kind = attr;
        return MNL_CB_OK;
}

int links_parse_msg(struct link_table *table, const struct nlmsghdr *nlh) {
        if (nlh->nlmsg_type != RTM_NEWLINK)
                return 0;
        if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(struct ifinfomsg)))
                return -EBADMSG;

        const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
        struct link_attrs a = {};
        if (mnl_attr_parse(nlh, sizeof(*ifi), link_attr_cb, &a) < 0)
                return -EBADMSG;
        if (!a.name || ifi->ifi_index <= 0)
                return -EBADMSG;

        if (GROW(table->links, table->allocated, table->n_links + 1) < 0)
                return -ENOMEM;

        struct link *l = &table->links[table->n_links];
        *l = (struct link){.ifindex = (uint32_t) ifi->ifi_index, .up = ifi->ifi_flags & IFF_UP};
        snprintf(l->name, sizeof(l->name), "%s", mnl_attr_get_str(a.name));
        if (a.linkinfo) {
                const struct nlattr *kind = NULL;
                if (mnl_attr_parse_nested(a.linkinfo, linkinfo_attr_cb, &kind) < 0)
                        return -EBADMSG;
                if (kind)
                        snprintf(l->kind, sizeof(l->kind), "%s", mnl_attr_get_str(kind));
        }
        table->n_links++;
        return 0;
}

static int link_cmp(const void *a, const void *b) {
        const struct link *x = a, *y = b;
        return (x->ifindex > y->ifindex) - (x->ifindex < y->ifindex);
}

void links_finish(struct link_table *table) {
        if (table->n_links > 0)
                qsort(table->links, table->n_links, sizeof(struct link), link_cmp);
}

static int links_msg_cb(const struct nlmsghdr *nlh, void *data) {
        return links_parse_msg(data, nlh) < 0 ? MNL_CB_ERROR : MNL_CB_OK;
}

static int links_dump_once(struct mnl_socket *nl, struct link_table *ret, netlink_tap_t tap, void *tap_data) {
        struct link_table table = {};
        char buf[MNL_SOCKET_BUFFER_SIZE];
        int r;

        struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
        nlh->nlmsg_type = RTM_GETLINK;
        nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
        nlh->nlmsg_seq = (uint32_t) time(NULL);
        struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
        ifi->ifi_family = AF_UNSPEC;
        /* Statistics are most of a link message and we need none of them. */
        mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);

        r = netlink_dump(nl, nlh, links_msg_cb, &table, tap, tap_data);
        if (r < 0) {
                link_table_done(&table);
                return r;
        }

        links_finish(&table);
        *ret = table;
        return 0;
}

int links_dump(struct link_table *ret, netlink_tap_t tap, void *tap_data) {
        _cleanup_(mnl_socket_closep) struct mnl_socket *nl = NULL;
        int r = netlink_open(NETLINK_ROUTE, &nl);
        if (r < 0)
                return r;
        /* Interfaces come and go while they are listed (NLM_F_DUMP_INTR): list again, bounded, backing off. */
        for (unsigned attempt = 0; attempt < 8; attempt++) {
                if (attempt > 0)
                        netlink_backoff(attempt - 1);
                r = links_dump_once(nl, ret, tap, tap_data);
                if (r != -EINTR)
                        return r;
        }
        return r;
}

const struct link *links_by_index(const struct link_table *table, uint32_t ifindex) {
        struct link key = {.ifindex = ifindex};
        if (!table->links)
                return NULL;
        return bsearch(&key, table->links, table->n_links, sizeof(struct link), link_cmp);
}

const struct link *links_by_name(const struct link_table *table, const char *name) {
        for (size_t i = 0; i < table->n_links; i++)
                if (strcmp(table->links[i].name, name) == 0)
                        return &table->links[i];
        return NULL;
}

void link_table_done(struct link_table *table) {
        free(table->links);
        *table = (struct link_table){};
}

struct wait_state {
        const char *const *names;
        bool *present;
        size_t n, missing;
};

static void wait_note(struct wait_state *w, const char *name, bool exists) {
        for (size_t i = 0; i < w->n; i++) {
                if (!streq(w->names[i], name) || w->present[i] == exists)
                        continue;
                w->present[i] = exists;
                if (exists)
                        w->missing--;
                else
                        w->missing++;
        }
}

static int wait_msg_cb(const struct nlmsghdr *nlh, void *data) {
        struct wait_state *w = data;
        struct link_table one = {};
        if (nlh->nlmsg_type != RTM_NEWLINK && nlh->nlmsg_type != RTM_DELLINK)
                return MNL_CB_OK;
        if (nlh->nlmsg_type == RTM_NEWLINK) {
                if (links_parse_msg(&one, nlh) >= 0 && one.n_links == 1)
                        wait_note(w, one.links[0].name, true);
        } else {
                struct link_attrs a = {};
                if (nlh->nlmsg_len >= mnl_nlmsg_size(sizeof(struct ifinfomsg)) &&
                    mnl_attr_parse(nlh, sizeof(struct ifinfomsg), link_attr_cb, &a) >= 0 && a.name)
                        wait_note(w, mnl_attr_get_str(a.name), false);
        }
        link_table_done(&one);
        return MNL_CB_OK;
}

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

int links_wait_for(const char *const *names, size_t n, uint64_t timeout_usec) {
        _cleanup_(mnl_socket_closep) struct mnl_socket *nl = NULL;
        _cleanup_(link_table_done) struct link_table now = {};
        _cleanup_free_ bool *present = calloc(n + 1, sizeof(bool));
        _cleanup_free_ char *buf = malloc(MNL_SOCKET_BUFFER_SIZE);
        struct wait_state w = {.names = names, .present = present, .n = n, .missing = n};
        uint64_t deadline = now_usec() + timeout_usec;
        int r;

        if (!present || !buf)
                return -ENOMEM;
        /* Subscribe first, then look: an interface created in between is seen either way. */
        nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (!nl)
                return negative_errno();
        if (mnl_socket_bind(nl, RTMGRP_LINK, MNL_SOCKET_AUTOPID) < 0)
                return negative_errno();
        if ((r = links_dump(&now, NULL, NULL)) < 0)
                return r;
        for (size_t i = 0; i < now.n_links; i++)
                wait_note(&w, now.links[i].name, true);

        while (w.missing > 0) {
                uint64_t t = now_usec();
                if (t >= deadline)
                        return -ETIMEDOUT;
                struct pollfd pfd = {.fd = mnl_socket_get_fd(nl), .events = POLLIN};
                int k = poll(&pfd, 1, (int) ((deadline - t + 999) / 1000));
                if (k < 0 && errno != EINTR)
                        return negative_errno();
                if (k <= 0)
                        continue;
                ssize_t len = mnl_socket_recvfrom(nl, buf, MNL_SOCKET_BUFFER_SIZE);
                if (len < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                continue;
                        /* ENOBUFS: events were lost; look again */
                        if (errno != ENOBUFS)
                                return negative_errno();
                        link_table_done(&now);
                        if ((r = links_dump(&now, NULL, NULL)) < 0)
                                return r;
                        for (size_t i = 0; i < now.n_links; i++)
                                wait_note(&w, now.links[i].name, true);
                        continue;
                }
                (void) mnl_cb_run(buf, (size_t) len, 0, 0, wait_msg_cb, &w);
        }
        return 0;
}

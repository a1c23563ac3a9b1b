/* SPDX-License-Identifier: GPL-2.0-or-later */
/* netlink.c: dumps over libmnl with a receive buffer sized for nf_tables' large messages. */
#include <stdlib.h>

#include "netlink.h"

/* Rule dumps send messages close to 64 KiB; a page-sized buffer would truncate them. */
#define NETLINK_RECV_BUFFER (64 * 1024)

int netlink_open(int bus, struct mnl_socket **ret) {
        struct mnl_socket *nl = mnl_socket_open2(bus, SOCK_CLOEXEC);
        if (!nl)
                return negative_errno();
        if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
                int r = negative_errno();
                mnl_socket_close(nl);
                return r;
        }
        *ret = nl;
        return 0;
}

struct tap_ctx {
        mnl_cb_t cb;
        void *data;
        netlink_tap_t tap;
        void *tap_data;
};

static int tap_cb(const struct nlmsghdr *nlh, void *userdata) {
        struct tap_ctx *t = userdata;
        t->tap(nlh, t->tap_data);
        return t->cb(nlh, t->data);
}

int netlink_dump(struct mnl_socket *nl, struct nlmsghdr *request, mnl_cb_t cb, void *data, netlink_tap_t tap,
                 void *tap_data) {
        _cleanup_free_ char *buf = malloc(NETLINK_RECV_BUFFER);
        if (!buf)
                return -ENOMEM;

        uint32_t portid = mnl_socket_get_portid(nl);
        uint32_t seq = request->nlmsg_seq;
        uint16_t flags = request->nlmsg_flags;
        struct tap_ctx t = {.cb = cb, .data = data, .tap = tap, .tap_data = tap_data};

        if (mnl_socket_sendto(nl, request, request->nlmsg_len) < 0)
                return negative_errno();

        for (;;) {
                ssize_t n = mnl_socket_recvfrom(nl, buf, NETLINK_RECV_BUFFER);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                /* mnl_cb_run sets errno from an NLMSG_ERROR and returns -1. */
                errno = 0;
                int r = tap ? mnl_cb_run(buf, (size_t) n, seq, portid, tap_cb, &t)
                            : mnl_cb_run(buf, (size_t) n, seq, portid, cb, data);
                /* A plain GET is answered by one message and no NLMSG_DONE. */
                if (r == MNL_CB_STOP || !(flags & NLM_F_DUMP))
                        return 0;
                if (r < 0)
                        return errno > 0 ? -errno : -EBADMSG;
        }
}

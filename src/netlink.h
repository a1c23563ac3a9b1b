/* SPDX-License-Identifier: GPL-2.0-or-later */
/* netlink.h: the one netlink helper layer: open a socket, run a dump, hand each message to a callback. */
#pragma once

#include <libmnl/libmnl.h>

#include "macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct mnl_socket *, mnl_socket_close)

/* Sees every message of a dump as received; used to record fixtures. */
typedef void (*netlink_tap_t)(const struct nlmsghdr *nlh, void *userdata);

int netlink_open(int bus, struct mnl_socket **ret);

/* Sends the request and runs cb on each answer until NLMSG_DONE. Returns the kernel's error, negative. */
int netlink_dump(struct mnl_socket *nl, struct nlmsghdr *request, mnl_cb_t cb, void *data, netlink_tap_t tap,
                 void *tap_data);

/* SPDX-License-Identifier: GPL-2.0-or-later */
/* netlink.h: the one netlink helper layer: open a socket, run a dump, hand each message to a callback. */
#pragma once

#include <libmnl/libmnl.h>
#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct mnl_socket *, mnl_socket_close)

/* Sees every message of a dump as received; used to record fixtures. */
typedef void (*netlink_tap_t)(const struct nlmsghdr *nlh, void *userdata);

int netlink_open(int bus, struct mnl_socket **ret);

/* Walks a buffer of netlink messages that did not come from a socket (a recording, a fuzzer's input):
 * mnl_nlmsg_ok() compares the length as an int, so a header claiming 2 GiB or more passes it and the walk leaves
 * the buffer; and libmnl reads a message's attributes up to its aligned end, so a last message without its
 * padding is read past the buffer (both found by fuzz-links). After the loop, off == size when the buffer was
 * whole messages, as the kernel sends them. */
static inline bool nlmsg_whole_at(const void *buf, size_t size, size_t off) {
        const struct nlmsghdr *nlh = (const void *) ((const uint8_t *) buf + off);
        return off <= size && size - off >= sizeof(*nlh) && nlh->nlmsg_len >= sizeof(*nlh) &&
               nlh->nlmsg_len <= size - off && MNL_ALIGN(nlh->nlmsg_len) <= size - off;
}
#define NLMSG_FOREACH_IN(nlh, buf, size, off)                                                                          \
        for ((off) = 0; nlmsg_whole_at((buf), (size), (off)) &&                                                        \
                        ((nlh) = (const void *) ((const uint8_t *) (buf) + (off)), true);                              \
             (off) += MNL_ALIGN((nlh)->nlmsg_len))

/* Zero bytes after the last message of every buffer parsed: libnftnl 1.2.4 copies the strings nested in an
 * expression with strdup() without checking for their NUL. The kernel always sends it; a recording may not, and
 * the copy then stops here instead of past the buffer. */
#define NETLINK_ZERO_TAIL 4

/* Sleeps before the next of several reads of a list that kept changing: 10 ms, doubling each attempt. */
void netlink_backoff(unsigned attempt);

/* Sends the request and runs cb on each answer until NLMSG_DONE. Returns the kernel's error, negative; -EINTR
 * when the list changed while it was dumped (NLM_F_DUMP_INTR: read it again). The socket stays usable. */
int netlink_dump(struct mnl_socket *nl, struct nlmsghdr *request, mnl_cb_t cb, void *data, netlink_tap_t tap,
                 void *tap_data);

/* A batch of nf_tables changes being built: BEGIN (with the generation id it was computed from), the messages,
 * END. One sendmsg: the kernel applies all of it or none. */
struct nl_batch {
        uint8_t *buf;
        size_t len, allocated;
        uint32_t seq_begin, seq_next;
        size_t n_msgs;   /* between BEGIN and END */
        size_t last_msg; /* offset of the last of them */
};

int nl_batch_begin(struct nl_batch *b, uint32_t genid);
/* Room for a message whose attributes take at most payload bytes; returns its header (type NFT_MSG_*), to be
 * filled with mnl_attr_put*() and closed with nl_batch_msg_end(). NULL on ENOMEM. */
struct nlmsghdr *nl_batch_msg(struct nl_batch *b, uint16_t type, uint8_t family, uint16_t flags, size_t payload);
void nl_batch_msg_end(struct nl_batch *b, struct nlmsghdr *nlh);
int nl_batch_end(struct nl_batch *b);
void nl_batch_done(struct nl_batch *b);

/* Sends the batch and reads the kernel's answers. 0 when it was applied; else the first error (-ERESTART: the
 * generation id did not match, nothing applied), in *ret_failed_seq the sequence number it answered and in
 * *ret_message the kernel's words for it, when it gave any (may stay NULL). */
int nl_batch_send(struct mnl_socket *nl, const struct nl_batch *b, uint32_t *ret_failed_seq, char **ret_message);

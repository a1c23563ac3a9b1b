/* SPDX-License-Identifier: GPL-2.0-or-later */
/* netlink.c: dumps over libmnl with a receive buffer sized for nf_tables' large messages. */
#include <arpa/inet.h>
#include <libnftnl/common.h>
#include <linux/netfilter/nfnetlink.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
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

void netlink_backoff(unsigned attempt) {
        uint64_t ms = 10u << MIN(attempt, 6u);
        struct timespec ts = {.tv_sec = (time_t) (ms / 1000), .tv_nsec = (long) (ms % 1000) * 1000000};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
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

/* After a dump stopped half way (an error, or NLM_F_DUMP_INTR), reads the rest of it and drops it: until its
 * NLMSG_DONE the kernel would refuse the socket another dump. */
static void dump_drain(struct mnl_socket *nl, char *buf, uint32_t seq) {
        for (;;) {
                ssize_t n = mnl_socket_recvfrom(nl, buf, NETLINK_RECV_BUFFER);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return;
                }
                int len = (int) n;
                for (const struct nlmsghdr *nlh = (const struct nlmsghdr *) buf; mnl_nlmsg_ok(nlh, len);
                     nlh = mnl_nlmsg_next(nlh, &len))
                        if (nlh->nlmsg_seq == seq && (nlh->nlmsg_type == NLMSG_DONE || nlh->nlmsg_type == NLMSG_ERROR))
                                return;
        }
}

/* Receives a dump whole before any of it is parsed: the kernel builds the next part of a dump only when the last
 * one is read, and a commit in between marks the dump interrupted. Parsing 250 rules between two reads took
 * longer, under the sanitizers, than nft takes to commit an element, so a chain changing every few ms was never
 * read whole; receiving first keeps the window to a few system calls. Returns 0 with the parts in *ret, -EINTR
 * when the dump was interrupted (its rest drained). */
static int dump_receive(struct mnl_socket *nl, uint32_t seq, uint8_t **ret, size_t *ret_len) {
        _cleanup_free_ uint8_t *all = NULL;
        size_t len = 0, allocated = 0;

        for (;;) {
                if (allocated - len < NETLINK_RECV_BUFFER + NETLINK_ZERO_TAIL) {
                        size_t n = MAX(allocated * 2, (size_t) 4 * NETLINK_RECV_BUFFER);
                        uint8_t *p = realloc(all, n);
                        if (!p)
                                return -ENOMEM;
                        all = p;
                        allocated = n;
                }
                ssize_t n = mnl_socket_recvfrom(nl, all + len, NETLINK_RECV_BUFFER);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                bool done = false, interrupted = false;
                const struct nlmsghdr *nlh;
                size_t off;
                NLMSG_FOREACH_IN(nlh, all + len, (size_t) n, off) {
                        if (nlh->nlmsg_seq != seq)
                                continue;
                        done = done || nlh->nlmsg_type == NLMSG_DONE || nlh->nlmsg_type == NLMSG_ERROR;
                        interrupted = interrupted || (nlh->nlmsg_flags & NLM_F_DUMP_INTR);
                }
                /* the kernel pads every message; a part that is not whole messages is not a dump answer */
                if (off != (size_t) n)
                        done = true;
                len += (size_t) n;
                if (interrupted && !done) {
                        dump_drain(nl, (char *) all, seq);
                        return -EINTR;
                }
                if (done || n == 0)
                        break;
        }
        memset(all + len, 0, NETLINK_ZERO_TAIL);
        *ret = TAKE_PTR(all);
        *ret_len = len;
        return 0;
}

int netlink_dump(struct mnl_socket *nl, struct nlmsghdr *request, mnl_cb_t cb, void *data, netlink_tap_t tap,
                 void *tap_data) {
        uint32_t portid = mnl_socket_get_portid(nl);
        uint32_t seq = request->nlmsg_seq;
        struct tap_ctx t = {.cb = cb, .data = data, .tap = tap, .tap_data = tap_data};
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len;
        int r;

        if (mnl_socket_sendto(nl, request, request->nlmsg_len) < 0)
                return negative_errno();

        if (request->nlmsg_flags & NLM_F_DUMP) {
                r = dump_receive(nl, seq, &buf, &len);
                if (r < 0)
                        return r;
        } else {
                /* A plain GET is answered by one message and no NLMSG_DONE. */
                buf = malloc(NETLINK_RECV_BUFFER + NETLINK_ZERO_TAIL);
                if (!buf)
                        return -ENOMEM;
                for (;;) {
                        ssize_t n = mnl_socket_recvfrom(nl, buf, NETLINK_RECV_BUFFER);
                        if (n >= 0) {
                                len = (size_t) n;
                                memset(buf + len, 0, NETLINK_ZERO_TAIL);
                                break;
                        }
                        if (errno != EINTR)
                                return negative_errno();
                }
        }

        /* mnl_cb_run sets errno from an NLMSG_ERROR (EINTR: NLM_F_DUMP_INTR) and returns -1. */
        errno = 0;
        r = tap ? mnl_cb_run(buf, len, seq, portid, tap_cb, &t) : mnl_cb_run(buf, len, seq, portid, cb, data);
        if (r < 0)
                return errno > 0 ? -errno : -EBADMSG;
        return 0;
}

static int batch_reserve(struct nl_batch *b, size_t need) {
        if (b->len + need <= b->allocated)
                return 0;
        size_t n = b->allocated ? b->allocated : 64 * 1024;
        while (n < b->len + need)
                n *= 2;
        uint8_t *p = realloc(b->buf, n);
        if (!p)
                return -ENOMEM;
        /* headers of finished messages were only ever written, never kept: moving the buffer is fine */
        memset(p + b->allocated, 0, n - b->allocated);
        b->buf = p;
        b->allocated = n;
        return 0;
}

int nl_batch_begin(struct nl_batch *b, uint32_t genid) {
        *b = (struct nl_batch){.seq_begin = (uint32_t) time(NULL)};
        if (batch_reserve(b, MNL_SOCKET_BUFFER_SIZE) < 0)
                return -ENOMEM;
        b->seq_next = b->seq_begin;
        struct nlmsghdr *nlh = nftnl_batch_begin((char *) b->buf, b->seq_next++);
        /* the kernel refuses the whole batch when the ruleset is no longer this generation */
        mnl_attr_put_u32(nlh, NFNL_BATCH_GENID, htonl(genid));
        b->len = NLMSG_ALIGN(nlh->nlmsg_len);
        return 0;
}

struct nlmsghdr *nl_batch_msg(struct nl_batch *b, uint16_t type, uint8_t family, uint16_t flags, size_t payload) {
        if (batch_reserve(b, NLMSG_ALIGN(NLMSG_HDRLEN + sizeof(struct nfgenmsg)) + payload + 64) < 0)
                return NULL;
        b->n_msgs++;
        b->last_msg = b->len;
        return nftnl_nlmsg_build_hdr((char *) b->buf + b->len, type, family, flags, b->seq_next++);
}

void nl_batch_msg_end(struct nl_batch *b, struct nlmsghdr *nlh) {
        b->len += NLMSG_ALIGN(nlh->nlmsg_len);
}

int nl_batch_end(struct nl_batch *b) {
        if (batch_reserve(b, MNL_SOCKET_BUFFER_SIZE) < 0)
                return -ENOMEM;
        /* The last change asks for an acknowledgement: the kernel answers it after every error before it, so its
         * answer ends the wait, whether the batch was applied or not. */
        if (b->n_msgs > 0)
                ((struct nlmsghdr *) (b->buf + b->last_msg))->nlmsg_flags |= NLM_F_ACK;
        struct nlmsghdr *nlh = nftnl_batch_end((char *) b->buf + b->len, b->seq_next++);
        b->len += NLMSG_ALIGN(nlh->nlmsg_len);
        return 0;
}

void nl_batch_done(struct nl_batch *b) {
        free(b->buf);
        *b = (struct nl_batch){};
}

struct batch_answer {
        uint32_t seq_begin, seq_last;
        int error;
        uint32_t failed_seq;
        char message[256]; /* the kernel's words for the error (extended ack), if it sent any */
        bool done;
};

static int batch_answer_cb(const struct nlmsghdr *nlh, void *userdata) {
        struct batch_answer *a = userdata;
        if (nlh->nlmsg_type != NLMSG_ERROR || nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(struct nlmsgerr))
                return MNL_CB_OK;
        const struct nlmsgerr *err = mnl_nlmsg_get_payload(nlh);
        if (err->error != 0 && a->error == 0) {
                a->error = err->error;
                a->failed_seq = nlh->nlmsg_seq;
                /* NETLINK_CAP_ACK: the request is not echoed; the extended ack attributes follow the header */
                if (nlh->nlmsg_flags & NLM_F_ACK_TLVS) {
                        const struct nlattr *attr;
                        mnl_attr_for_each(attr, nlh, sizeof(struct nlmsgerr))
                                if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG &&
                                    mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0)
                                        snprintf(a->message, sizeof(a->message), "%s", mnl_attr_get_str(attr));
                                else if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_OFFS &&
                                         mnl_attr_validate(attr, MNL_TYPE_U32) >= 0)
                                        log_debug("netlink: message %u: error at byte %u", nlh->nlmsg_seq,
                                                  mnl_attr_get_u32(attr));
                }
        }
        /* the BEGIN answers only when the whole batch was refused (generation, permission) */
        if (nlh->nlmsg_seq == a->seq_last || (nlh->nlmsg_seq == a->seq_begin && err->error != 0))
                a->done = true;
        return MNL_CB_OK;
}

int nl_batch_send(struct mnl_socket *nl, const struct nl_batch *b, uint32_t *ret_failed_seq, char **ret_message) {
        int fd = mnl_socket_get_fd(nl);
        /* One sendmsg, or the kernel sees a BEGIN without its END. Answers queue up while it works. */
        int size = b->len > INT32_MAX / 2 ? INT32_MAX / 2 : (int) (b->len + 65536);
        int rcv = b->n_msgs > 1024 * 1024 ? 1 << 30 : (int) (b->n_msgs * 1024 + (1 << 20));
        (void) setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size));
        (void) setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv));
        int one = 1;
        (void) setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
        (void) setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));

        if (b->n_msgs == 0)
                return 0;
        if (mnl_socket_sendto(nl, b->buf, b->len) < 0)
                return negative_errno();

        _cleanup_free_ char *buf = malloc(NETLINK_RECV_BUFFER);
        if (!buf)
                return -ENOMEM;
        struct batch_answer a = {.seq_begin = b->seq_begin, .seq_last = b->seq_next - 2};
        while (!a.done) {
                struct pollfd pfd = {.fd = fd, .events = POLLIN};
                int k = poll(&pfd, 1, 30 * 1000);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return k < 0 ? negative_errno() : -ETIMEDOUT;
                ssize_t n = mnl_socket_recvfrom(nl, buf, NETLINK_RECV_BUFFER);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                mnl_cb_t ctl[NLMSG_MIN_TYPE] = {[NLMSG_ERROR] = batch_answer_cb};
                (void) mnl_cb_run2(buf, (size_t) n, 0, mnl_socket_get_portid(nl), NULL, &a, ctl, NLMSG_MIN_TYPE);
        }
        if (a.error != 0 && ret_failed_seq)
                *ret_failed_seq = a.failed_seq;
        if (a.error != 0 && ret_message && a.message[0])
                *ret_message = strdup(a.message);
        return a.error;
}

/* SPDX-License-Identifier: GPL-2.0-or-later */
/* fault-after-commit.so: LD_PRELOAD'ed into reconcile-after-upgrade, makes the reading after an nf_tables commit
 * fail: once a batch (NFNL_MSG_BATCH_BEGIN) has been sent, the next request for the ruleset's generation (the
 * first message of every ruleset read) fails with EIO. A mock, and the only one: the real kernel cannot be made
 * to refuse the one read that follows a commit, and a verify that could not read must not pass for a success. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>

static bool committed;

ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *addr, socklen_t addrlen) {
        static ssize_t (*real)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
        const struct nlmsghdr *nlh = buf;
        if (!real)
                real = (ssize_t(*)(int, const void *, size_t, int, const struct sockaddr *, socklen_t)) dlsym(RTLD_NEXT, "sendto");
        if (len >= sizeof(*nlh)) {
                if (nlh->nlmsg_type == NFNL_MSG_BATCH_BEGIN)
                        committed = true;
                else if (committed && nlh->nlmsg_type == ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN)) {
                        errno = EIO;
                        return -1;
                }
        }
        return real(fd, buf, len, flags, addr, addrlen);
}

/* SPDX-License-Identifier: GPL-2.0-or-later */
/* hookprobe.c: asks the running kernel what it does to a device-bound chain whose device goes and comes back:
 * two TUN devices in a scratch network namespace, a netdev table with a chain on each, one device deleted and
 * created again, the ruleset read at each step. */
#include <fcntl.h>
#include <jansson.h>
#include <linux/if_tun.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "hookprobe.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "netlink.h"

#define PROBE_TABLE "rau-probe"
#define PROBE_DEV "rau-probe0"   /* deleted and created again */
#define PROBE_OTHER "rau-probe1" /* stays */
#define PROBE_TIMEOUT_MS 3000

static int tun_create(const char *name) {
        _cleanup_close_ int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
        struct ifreq ifr = {.ifr_flags = IFF_TUN | IFF_NO_PI};
        if (fd < 0)
                return negative_errno();
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        if (ioctl(fd, TUNSETIFF, &ifr) < 0)
                return negative_errno();
        return TAKE_FD(fd);
}

/* The device goes when its last file descriptor is closed; its unregistration finishes a moment later. */
static int tun_delete(int fd, const char *name) {
        close(fd);
        for (int i = 0; i < 200; i++) {
                if (if_nametoindex(name) == 0)
                        return 0;
                struct timespec ts = {.tv_nsec = 5 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        return -EBUSY;
}

static int commit(struct mnl_socket *nl, uint32_t genid, const struct device_hook *chains, size_t n_chains,
                  const struct device_hook *flowtable, bool create_table, uint16_t flags) {
        _cleanup_(nl_batch_done) struct nl_batch b = {};
        int r = nl_batch_begin(&b, genid);
        if (r < 0)
                return r;
        if (create_table) {
                struct nlmsghdr *nlh = nl_batch_msg(&b, NFT_MSG_NEWTABLE, chains ? NFPROTO_NETDEV : NFPROTO_INET,
                                                    NLM_F_CREATE, 64);
                if (!nlh)
                        return -ENOMEM;
                mnl_attr_put_strz(nlh, NFTA_TABLE_NAME, PROBE_TABLE);
                nl_batch_msg_end(&b, nlh);
        }
        for (size_t i = 0; i < n_chains; i++)
                if ((r = devhooks_put_chain(&b, &chains[i], (const char *const *) chains[i].devices,
                                            chains[i].n_devices, flags)) < 0)
                        return r;
        if (flowtable && (r = devhooks_put_flowtable(&b, flowtable, (const char *const *) flowtable->devices,
                                                     flowtable->n_devices, flags)) < 0)
                return r;
        if ((r = nl_batch_end(&b)) < 0)
                return r;
        return nl_batch_send(nl, &b, NULL, NULL);
}

static int genid_now(uint32_t *ret) {
        _cleanup_(ruleset_done) struct ruleset rs = {};
        int r = ruleset_read(&rs, NULL, NULL);
        if (r >= 0)
                *ret = rs.genid;
        return r;
}

/* Whether any chain of the probe's table lists the device. */
static int listed(const char *device, bool *ret_chain_c, bool *ret_listed) {
        _cleanup_(ruleset_done) struct ruleset rs = {};
        int r = ruleset_read(&rs, NULL, NULL);
        if (r < 0)
                return r;
        *ret_chain_c = ruleset_hook(&rs, NFPROTO_NETDEV, PROBE_TABLE, "c", false) != NULL;
        *ret_listed = false;
        for (size_t i = 0; i < rs.n_hooks; i++)
                if (!rs.hooks[i].flowtable && streq(rs.hooks[i].table, PROBE_TABLE) &&
                    device_hook_has(&rs.hooks[i], device))
                        *ret_listed = true;
        return 0;
}

/* In the child, in its own network namespace. */
static int probe_here(struct hook_behaviour *ret) {
        char dev[] = PROBE_DEV, other[] = PROBE_OTHER;
        char *on_dev[] = {dev}, *on_other[] = {other}, *on_both[] = {other, dev};
        struct device_hook chains[] = {
                {.family = NFPROTO_NETDEV, .table = (char *) PROBE_TABLE, .name = (char *) "c",
                 .hooknum = NF_NETDEV_INGRESS, .type = (char *) "filter", .policy = NF_ACCEPT, .devices = on_dev,
                 .n_devices = 1},
                {.family = NFPROTO_NETDEV, .table = (char *) PROBE_TABLE, .name = (char *) "d",
                 .hooknum = NF_NETDEV_INGRESS, .type = (char *) "filter", .policy = NF_ACCEPT,
                 .devices = on_other, .n_devices = 1},
        };
        struct device_hook flowtable = {.family = NFPROTO_INET, .table = (char *) PROBE_TABLE, .name = (char *) "f",
                                        .flowtable = true, .hooknum = NF_NETDEV_INGRESS, .devices = on_dev,
                                        .n_devices = 1};
        _cleanup_(mnl_socket_closep) struct mnl_socket *nl = NULL;
        uint32_t genid = 0;
        bool kept, back;
        int r;

        int fd = tun_create(dev);
        if (fd < 0)
                return fd;
        _cleanup_close_ int fd_other = tun_create(other);
        if (fd_other < 0)
                return close(fd), fd_other;
        if ((r = netlink_open(NETLINK_NETFILTER, &nl)) < 0 || (r = genid_now(&genid)) < 0 ||
            (r = commit(nl, genid, chains, 2, NULL, true, NLM_F_CREATE | NLM_F_EXCL)) < 0)
                return close(fd), r;
        /* without CONFIG_NF_FLOW_TABLE the kernel refuses it */
        ret->flowtables = genid_now(&genid) >= 0 && commit(nl, genid, NULL, 0, &flowtable, true, NLM_F_CREATE) >= 0;
        chains[1].devices = on_both;
        chains[1].n_devices = 2;
        ret->chain_add_device = genid_now(&genid) >= 0 && commit(nl, genid, &chains[1], 1, NULL, false, 0) >= 0;

        if ((r = tun_delete(fd, dev)) < 0 || (r = listed(dev, &kept, &back)) < 0)
                return r;
        ret->chain_kept = kept;
        _cleanup_close_ int fd_again = tun_create(dev);
        if (fd_again < 0)
                return fd_again;
        if ((r = listed(dev, &kept, &back)) < 0)
                return r;
        ret->reattaches = back;
        ret->known = true;
        return 0;
}

int hookprobe_run(struct hook_behaviour *ret) {
        struct hook_behaviour answer = {};
        int pipefd[2], r;

        *ret = (struct hook_behaviour){};
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return negative_errno();
        _cleanup_close_ int reader = pipefd[0], writer = pipefd[1];
        pid_t pid = fork();
        if (pid < 0)
                return negative_errno();
        if (pid == 0) {
                /* a user namespace first where this may not create a network namespace by itself */
                if (unshare(CLONE_NEWNET) < 0 && unshare(CLONE_NEWUSER | CLONE_NEWNET) < 0)
                        r = negative_errno();
                else
                        r = probe_here(&answer);
                struct {
                        int r;
                        struct hook_behaviour b;
                } msg = {r, answer};
                _exit(write(writer, &msg, sizeof(msg)) == (ssize_t) sizeof(msg) ? 0 : 1);
        }
        writer = safe_close(writer);

        struct {
                int r;
                struct hook_behaviour b;
        } msg = {-ETIMEDOUT, {}};
        struct pollfd pfd = {.fd = reader, .events = POLLIN};
        int k;
        while ((k = poll(&pfd, 1, PROBE_TIMEOUT_MS)) < 0 && errno == EINTR)
                ;
        if (k > 0 && read(reader, &msg, sizeof(msg)) != (ssize_t) sizeof(msg))
                msg.r = -EIO;
        if (k <= 0)
                kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
        if (msg.r < 0)
                return msg.r;
        *ret = msg.b;
        return 0;
}

json_t *hook_behaviour_json(const struct hook_behaviour *k) {
        if (!k->known)
                return json_null();
        return json_pack("{s:b, s:b, s:b, s:b}", "chain_kept", k->chain_kept, "reattaches", k->reattaches,
                         "chain_add_device", k->chain_add_device, "flowtables", k->flowtables);
}

static int boot_id(char ret[static 64]) {
        _cleanup_fclose_ FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
        if (!f || !fgets(ret, 64, f))
                return -errno ?: -EIO;
        ret[strcspn(ret, "\n")] = 0;
        return 0;
}

int hookprobe_get(const char *run_dir, bool keep, struct hook_behaviour *ret) {
        _cleanup_free_ char *text = NULL;
        _cleanup_(json_decrefp) json_t *cached = NULL;
        char boot[64] = "";
        struct utsname u = {};
        int r;

        (void) boot_id(boot);
        (void) uname(&u);
        if (boot[0] && file_read(run_dir, HOOKPROBE_FILE, 4096, &text, NULL) >= 0 &&
            (cached = json_loads(text, 0, NULL))) {
                const char *b = NULL, *release = NULL;
                int kept = 0, re = 0, add = 0, ft = 0;
                if (json_unpack(cached, "{s:s, s:s, s:{s:b, s:b, s:b, s:b}}", "boot_id", &b, "release", &release,
                                "kernel", "chain_kept", &kept, "reattaches", &re, "chain_add_device", &add,
                                "flowtables", &ft) >= 0 &&
                    streq(b, boot) && streq(release, u.release)) {
                        *ret = (struct hook_behaviour){.known = true, .chain_kept = kept, .reattaches = re,
                                                       .chain_add_device = add, .flowtables = ft};
                        return 0;
                }
        }

        r = hookprobe_run(ret);
        if (r < 0)
                return log_debug_errno(r, "hookprobe: could not ask the kernel (%m); comparing device lists as they are");
        log_debug("hookprobe: %s: a chain whose only device goes is %s; a device created again is %s", u.release,
                  ret->chain_kept ? "kept" : "deleted", ret->reattaches ? "hooked again" : "not hooked again");
        if (!keep || !boot[0])
                return 0;
        _cleanup_(json_decrefp) json_t *j = json_pack("{s:s, s:s, s:o}", "boot_id", boot, "release", u.release,
                                                      "kernel", hook_behaviour_json(ret));
        _cleanup_free_ char *out = j ? json_dumps(j, JSON_COMPACT) : NULL;
        if (!out || (r = file_replace_unsynced(run_dir, HOOKPROBE_FILE, out, strlen(out))) < 0)
                log_debug_errno(out ? r : -ENOMEM, "hookprobe: failed to keep the answer in %s: %m", run_dir);
        return 0;
}

/* SPDX-License-Identifier: GPL-2.0-or-later */
/* owners.c: /proc/PID/fd → /dev/net/tun → fdinfo "iff:" → PID → comm → cgroup → unit. */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "macro.h"
#include "owners.h"


int fdinfo_parse_iff(const char *fdinfo, char ret_ifname[IFNAMSIZ]) {
        for (const char *line = fdinfo; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
                if (strncmp(line, "iff:", 4) != 0)
                        continue;
                const char *p = line + 4;
                p += strspn(p, " \t");
                size_t n = strcspn(p, "\n");
                if (n == 0 || n >= IFNAMSIZ)
                        return -EBADMSG;
                memcpy(ret_ifname, p, n);
                ret_ifname[n] = '\0';
                return 0;
        }
        return -ENOENT; /* a TUN fd not (yet) attached to a device */
}

static bool unit_name_valid(const char *s, size_t n) {
        static const char *const suffixes[] = {".service", ".scope", ".socket", ".mount", ".swap", ".target",
                                               ".timer", ".path", ".device", ".automount"};
        if (n == 0 || n > 255)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char) s[i]) && !strchr(":-_.\\@", s[i]))
                        return false;
        for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
                size_t k = strlen(suffixes[i]);
                if (n > k && memcmp(s + n - k, suffixes[i], k) == 0)
                        return true;
        }
        return false;
}

/* The unit is the first path component that is not a slice: /system.slice/system-tinc.slice/tinc@lab.service. */
static int cgroup_path_to_unit(const char *path, size_t len, char **ret_unit) {
        const char *p = path, *end = path + len;
        while (p < end) {
                p += strspn(p, "/");
                size_t n = 0;
                while (p + n < end && p[n] != '/')
                        n++;
                if (n == 0)
                        break;
                if (!(n > 6 && memcmp(p + n - 6, ".slice", 6) == 0)) {
                        if (!unit_name_valid(p, n))
                                return -ENXIO;
                        char *u = strndup(p, n);
                        if (!u)
                                return -ENOMEM;
                        *ret_unit = u;
                        return 0;
                }
                p += n;
        }
        return -ENXIO;
}

int cgroup_parse_unit(const char *cgroup_file, char **ret_unit) {
        const char *unified = NULL, *named = NULL;
        size_t unified_len = 0, named_len = 0;

        /* Lines are "ID:CONTROLLERS:PATH". Hybrid hierarchies carry systemd's tree as name=systemd, unified
         * ones as "0::". */
        for (const char *line = cgroup_file; line && *line;) {
                const char *eol = strchr(line, '\n');
                size_t len = eol ? (size_t) (eol - line) : strlen(line);
                const char *c1 = memchr(line, ':', len);
                const char *c2 = c1 ? memchr(c1 + 1, ':', len - (size_t) (c1 + 1 - line)) : NULL;
                if (c2) {
                        size_t clen = (size_t) (c2 - c1 - 1);
                        const char *path = c2 + 1;
                        size_t plen = len - (size_t) (path - line);
                        if (clen == 12 && memcmp(c1 + 1, "name=systemd", 12) == 0)
                                named = path, named_len = plen;
                        else if (clen == 0 && c1 - line == 1 && line[0] == '0')
                                unified = path, unified_len = plen;
                }
                line = eol ? eol + 1 : NULL;
        }

        if (named)
                return cgroup_path_to_unit(named, named_len, ret_unit);
        if (unified)
                return cgroup_path_to_unit(unified, unified_len, ret_unit);
        return -ENXIO;
}

static int read_small(int dirfd, const char *path, char *buf, size_t size) {
        _cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return negative_errno();
        ssize_t n = read(fd, buf, size - 1);
        if (n < 0)
                return negative_errno();
        buf[n] = '\0';
        return (int) n;
}

static int owner_add(struct owner_table *table, int piddir, pid_t pid, const char *ifname) {
        char buf[4096];

        if (GROW(table->owners, table->allocated, table->n_owners + 1) < 0)
                return -ENOMEM;
        struct tun_owner *o = &table->owners[table->n_owners];
        *o = (struct tun_owner){.pid = pid};
        snprintf(o->ifname, sizeof(o->ifname), "%s", ifname);
        if (read_small(piddir, "comm", buf, sizeof(buf)) > 0) {
                buf[strcspn(buf, "\n")] = '\0';
                snprintf(o->comm, sizeof(o->comm), "%.15s", buf);
        }
        if (read_small(piddir, "cgroup", buf, sizeof(buf)) > 0) {
                int r = cgroup_parse_unit(buf, &o->unit);
                if (r == -ENOMEM)
                        return r;
        }
        table->n_owners++;
        return 0;
}

static int scan_pid(struct owner_table *table, int procfd, const char *pidname, ino_t our_netns) {
        _cleanup_close_ int piddir = openat(procfd, pidname, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (piddir < 0)
                return 0;

        /* A device name is only meaningful in the namespace it lives in; test namespaces reuse names. */
        struct stat st;
        if (fstatat(piddir, "ns/net", &st, 0) < 0 || st.st_ino != our_netns)
                return 0;

        _cleanup_close_ int fddir = openat(piddir, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fddir < 0)
                return 0;
        _cleanup_(closedirp) DIR *d = fdopendir(fddir);
        if (!d)
                return 0;
        TAKE_FD(fddir);

        struct dirent *de;
        while ((de = readdir(d))) {
                char target[32], path[16 + NAME_MAX], info[1024];
                if (de->d_name[0] == '.')
                        continue;
                ssize_t n = readlinkat(dirfd(d), de->d_name, target, sizeof(target) - 1);
                if (n < 0)
                        continue;
                target[n] = '\0';
                if (!streq(target, "/dev/net/tun"))
                        continue;

                snprintf(path, sizeof(path), "fdinfo/%s", de->d_name);
                char ifname[IFNAMSIZ];
                if (read_small(piddir, path, info, sizeof(info)) <= 0 || fdinfo_parse_iff(info, ifname) < 0)
                        continue;
                int r = owner_add(table, piddir, (pid_t) atoi(pidname), ifname);
                if (r < 0)
                        return r;
        }
        return 0;
}

int owners_scan(const char *proc_root, struct owner_table *ret) {
        _cleanup_close_ int procfd = open(proc_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (procfd < 0)
                return negative_errno();

        struct stat self;
        if (fstatat(procfd, "self/ns/net", &self, 0) < 0)
                return negative_errno();

        int dfd = dup(procfd);
        if (dfd < 0)
                return negative_errno();
        _cleanup_(closedirp) DIR *d = fdopendir(dfd);
        if (!d) {
                safe_close(dfd);
                return negative_errno();
        }

        struct owner_table table = {};
        struct dirent *de;
        while ((de = readdir(d))) {
                if (!isdigit((unsigned char) de->d_name[0]))
                        continue;
                int r = scan_pid(&table, procfd, de->d_name, self.st_ino);
                if (r < 0) {
                        owner_table_done(&table);
                        return r;
                }
        }
        *ret = table;
        return 0;
}

const struct tun_owner *owners_find(const struct owner_table *table, const char *ifname) {
        for (size_t i = 0; i < table->n_owners; i++)
                if (streq(table->owners[i].ifname, ifname))
                        return &table->owners[i];
        return NULL;
}

void owner_table_done(struct owner_table *table) {
        for (size_t i = 0; i < table->n_owners; i++)
                free(table->owners[i].unit);
        free(table->owners);
        *table = (struct owner_table){};
}

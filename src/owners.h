/* SPDX-License-Identifier: GPL-2.0-or-later */
/* owners.h: which process, and which systemd unit, holds each TUN/TAP device (the needrestart-style /proc scan). */
#pragma once

#include <net/if.h>
#include <stddef.h>
#include <sys/types.h>

struct tun_owner {
        char ifname[IFNAMSIZ];
        pid_t pid;
        char comm[16];
        char *unit; /* e.g. "tailscaled.service"; NULL when the process is in no unit (or systemd is absent) */
};

struct owner_table {
        struct tun_owner *owners;
        size_t n_owners, allocated;
};

/* Scans proc_root (normally "/proc") for open /dev/net/tun fds of processes in our network namespace.
 * Processes that vanish or cannot be read are skipped without a word: that is the normal case for PID 1. */
int owners_scan(const char *proc_root, struct owner_table *ret);

const struct tun_owner *owners_find(const struct owner_table *table, const char *ifname);
void owner_table_done(struct owner_table *table);

/* The pieces of the scan, for tests. */
int fdinfo_parse_iff(const char *fdinfo, char ret_ifname[IFNAMSIZ]);
int cgroup_parse_unit(const char *cgroup_file, char **ret_unit);

/* SPDX-License-Identifier: GPL-2.0-or-later */
/* pipeline-loop RUN_DIR STATE_DIR IFNAME N: what the watcher does for the uptime, N times in one process: re-create
 * the TUN device IFNAME (a new index), run the pipeline (via "watch"), and require each run to end fixed and
 * verified with nothing left stale. Prints the RSS after the first 10 runs and after the last, and exits 1 on the
 * first run that does not end fixed. Under ASan, LeakSanitizer checks at exit that the N runs left nothing behind.
 * Run it in a network namespace where IFNAME does not exist yet and the rules are loaded once it does (it prints
 * "ready" with IFNAME created and waits for a line on stdin). */
#include <fcntl.h>
#include <malloc.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "pipeline.h"

static int tun_create(const char *name) {
        struct ifreq ifr = {.ifr_flags = IFF_TUN | IFF_NO_PI};
        int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        if (fd < 0 || ioctl(fd, TUNSETIFF, &ifr) < 0) {
                perror(name);
                exit(2);
        }
        return fd;
}

static long rss_kib(void) {
        char line[256];
        long kib = -1;
        FILE *f = fopen("/proc/self/status", "re");
        while (f && fgets(line, sizeof(line), f))
                if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
                        break;
        if (f)
                fclose(f);
        return kib;
}

int main(int argc, char *argv[]) {
        struct config config;
        char line[16];

        if (argc != 5) {
                fprintf(stderr, "usage: pipeline-loop RUN_DIR STATE_DIR IFNAME N\n");
                return 2;
        }
        long n = strtol(argv[4], NULL, 10);
        config_defaults(&config);
        int fd = tun_create(argv[3]);
        printf("ready\n");
        fflush(stdout);
        if (!fgets(line, sizeof(line), stdin))
                return 2;

        for (long i = 0; i < n; i++) {
                struct pipeline_result res = {};
                struct pipeline_options opt = {
                        .run_dir = argv[1], .state_dir = argv[2], .config = &config, .via = "watch",
                        .lazy_owners = true,
                };
                close(fd);
                fd = tun_create(argv[3]);
                int r = pipeline_run(&opt, JOB_RECONCILE, &res);
                bool fixed = r >= 0 && res.record && res.outcome == OUTCOME_FIXED && res.verified &&
                             res.left.n_stale == 0;
                if (!fixed)
                        fprintf(stderr, "run %ld: r=%d outcome=%s problem=%s\n", i + 1, r,
                                res.record ? record_outcome_to_string(res.outcome) : "(no record)",
                                res.problem ? res.problem : "-");
                pipeline_result_done(&res);
                malloc_trim(0); /* as the watcher does after each look */
                if (!fixed)
                        return 1;
                if (i + 1 == 10 || (i + 1) % 100 == 0 || i + 1 == n)
                        printf("rss-after-%ld %ld\n", i + 1, rss_kib());
        }
        close(fd);
        config_done(&config);
        return 0;
}

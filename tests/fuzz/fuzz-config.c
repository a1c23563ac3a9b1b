/* SPDX-License-Identifier: GPL-2.0-or-later */
/* fuzz-config: a configuration file through apt's parser and ours: every key of the scope with values of every
 * wrong type, lists, nesting. Input: the file (seeds: etc/50reconcile-after-upgrade, tests/fixtures/config). */
#include <sys/mman.h>

#include "config.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        fuzz_quiet();
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(config_done) struct config c = {};
        char path[64];

        /* apt's #include reads other files: what they hold is not this input */
        if (memmem(data, size, "include", 7))
                return 0;
        _cleanup_close_ int fd = memfd_create("fuzz-config", MFD_CLOEXEC);
        if (fd < 0 || (size && write(fd, data, size) != (ssize_t) size))
                abort();
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        int r = config_load(path, &c);
        if (r < 0 && r != -EINVAL)
                abort();
        /* whatever was read, the values are within their documented ranges */
        if (c.job_timeout_ms < 100 || c.job_timeout_ms > 600 * 1000 || c.time_budget_ms < 100 ||
            c.time_budget_ms > 3600 * 1000 || c.interface_wait_ms > 600 * 1000 || c.history_max_bytes < (64u << 10) ||
            c.history_max_bytes > (1u << 30))
                abort();
        for (size_t i = 0; i < c.n_table_units; i++)
                if (!c.table_units[i].from || !c.table_units[i].unit)
                        abort();
        for (size_t i = 0; i < c.n_daemon_units; i++)
                if (!config_daemon_unit(&c, c.daemon_units[i].from))
                        abort();
        return 0;
}

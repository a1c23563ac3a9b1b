/* SPDX-License-Identifier: GPL-2.0-or-later */
/* fuzz-dpkg-status: dpkg's status-logger stream as the dpkg-status command reads it (garbage, long lines, no final
 * newline), then the take of the events it wrote. Input: the stream (seed: tests/fixtures/dpkg/
 * status-logger.stream). */
#include "fuzz.h"
#include "packages.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        fuzz_quiet();
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(package_changes_done) struct package_changes changes = {};
        const char *dir = fuzz_scratch_dir();

        FILE *in = fmemopen((void *) data, size, "r");
        if (!in)
                return 0; /* fmemopen refuses size 0 on older glibc */
        int r = dpkg_status_consume(in, dir, FIXTURES "/dpkg/status");
        fclose(in);
        if (r < 0)
                abort(); /* it logs and goes on: a stream cannot make it fail */

        /* each package taken was named by a line that said so */
        if (package_changes_take(dir, &changes) < 0)
                abort();
        for (size_t i = 0; i < changes.n_changes; i++) {
                const struct package_change *c = &changes.changes[i];
                if (!c->name[0] || !c->actions[0] || !memmem(data, size, c->name, strlen(c->name)))
                        abort();
        }
        return 0;
}

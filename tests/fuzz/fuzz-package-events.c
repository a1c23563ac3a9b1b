/* SPDX-License-Identifier: GPL-2.0-or-later */
/* fuzz-package-events: the run dir's dpkg-events.jsonl as a run takes it (a torn last line, lines that are not
 * JSON or not the logger's objects). Input: the file (seed: what dpkg-status writes for the fixture stream). */
#include "fuzz.h"
#include "packages.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        fuzz_quiet();
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(package_changes_done) struct package_changes changes = {};
        const char *dir = fuzz_scratch_dir();

        fuzz_write_file(dir, PACKAGES_EVENTS_FILE, data, size);
        int r = package_changes_take(dir, &changes);
        if (r < 0 && r != -EFBIG)
                abort();
        /* taken means gone: the next run does not count them again */
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, PACKAGES_EVENTS_FILE);
        if (access(path, F_OK) == 0)
                abort();
        for (size_t i = 0; i < changes.n_changes; i++)
                if (!changes.changes[i].name || !changes.changes[i].actions)
                        abort();
        return 0;
}

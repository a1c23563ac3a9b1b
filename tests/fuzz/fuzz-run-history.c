/* SPDX-License-Identifier: GPL-2.0-or-later */
/* fuzz-run-history: `reconcile-after-upgrade history` over a history.jsonl that is not what it wrote (torn lines,
 * other JSON, very long lines), both as the table and as --json. Input: the file (seed: records of real runs). */
#include "fuzz.h"
#include "record.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        fuzz_quiet();
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *dir = fuzz_scratch_dir();
        _cleanup_fclose_ FILE *out = fopen("/dev/null", "we");
        if (!out)
                abort();

        fuzz_write_file(dir, RECORD_HISTORY_FILE, data, size);
        if (record_show_history(dir, false, out) < 0 || record_show_history(dir, true, out) < 0)
                abort();
        return 0;
}

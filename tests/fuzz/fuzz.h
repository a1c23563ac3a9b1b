/* SPDX-License-Identifier: GPL-2.0-or-later */
/* fuzz.h: what the libFuzzer harnesses share: quiet logs, a scratch directory of the harness's own for the
 * readers that take a directory, and the input as a C string. */
#pragma once

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A parser sees what the kernel, dpkg or a file gave it: its errors are expected, their log lines noise. */
static inline void fuzz_quiet(void) {
        log_set_max_level(getenv("FUZZ_VERBOSE") ? LOG_DEBUG : LOG_EMERG);
}

/* mkdtemp once per process (the harness runs one input after another in it); removed by the regression script
 * with its TMPDIR. */
static inline const char *fuzz_scratch_dir(void) {
        static char dir[256];
        if (!dir[0]) {
                snprintf(dir, sizeof(dir), "%s/rau-fuzz.XXXXXX", getenv("TMPDIR") ?: "/tmp");
                if (!mkdtemp(dir))
                        abort();
        }
        return dir;
}

static inline char *fuzz_string(const uint8_t *data, size_t size) {
        char *s = malloc(size + 1);
        if (!s)
                abort();
        memcpy(s, data, size);
        s[size] = '\0';
        return s;
}

/* Writes the input as dir/name, replacing what the last input left. */
static inline void fuzz_write_file(const char *dir, const char *name, const uint8_t *data, size_t size) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        FILE *f = fopen(path, "we");
        if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0)
                abort();
}

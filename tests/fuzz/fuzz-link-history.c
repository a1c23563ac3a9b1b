/* SPDX-License-Identifier: GPL-2.0-or-later */
/* fuzz-link-history: the state dir's links.json reader, what a run adds to it, and the write and read back (a
 * history that parses must survive its own round trip). Input: the file (seed: a history the program wrote). */
#include "fixture-world.h"
#include "fuzz.h"
#include "state.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        fuzz_quiet();
        (void) fixture_world();
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *text = fuzz_string(data, size);
        _cleanup_(link_history_done) struct link_history past = {}, again = {};
        _cleanup_(findings_done) struct findings found = {};
        const struct observation *now = fixture_world();
        const char *dir = fuzz_scratch_dir();

        if (history_parse(text, &past) < 0)
                return 0;
        if (diagnose(now, NULL, &past, &found) < 0)
                return 0;
        if (history_note_links(&past, &now->links, 1000) < 0)
                return 0;
        past.dirty = true;
        if (history_write(dir, &past) < 0)
                abort();
        if (history_read(dir, &again) < 0 || again.n_entries != past.n_entries)
                abort();
        return 0;
}

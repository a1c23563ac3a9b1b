/* SPDX-License-Identifier: GPL-2.0-or-later */
/* fuzz-snapshot: the run dir's snapshot.json reader (a truncated, corrupt or hand-edited file), then diagnose with
 * it against the recorded stale fixture, as a run does. Input: the file (seed: a snapshot the program wrote). */
#include "fixture-world.h"
#include "fuzz.h"
#include "report.h"
#include "state.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        fuzz_quiet();
        (void) fixture_world();
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *text = fuzz_string(data, size);
        _cleanup_(snapshot_done) struct snapshot before = {};
        _cleanup_(findings_done) struct findings found = {};
        const struct observation *now = fixture_world();

        if (snapshot_parse(text, &before) < 0)
                return 0;
        for (size_t i = 0; i < now->ruleset.n_refs; i++)
                (void) snapshot_resolved(&before, &now->ruleset.refs[i]);
        if (diagnose(now, &before, NULL, &found) < 0)
                return 0;
        json_t *j = report_json(&found);
        if (!j)
                abort();
        json_decref(j);
        return 0;
}

/* SPDX-License-Identifier: GPL-2.0-or-later */
/* nl-rebind-race: the generation check, made to happen. Reads the ruleset and plans a rebind from it, as a run
 * does; then runs COMMAND (which changes the ruleset, as another program might in between); then sends the plan.
 * Prints "refused" when the kernel turned the transaction down because the ruleset is no longer the generation
 * the plan was computed from, "applied" when it took it, or the error.
 *
 *   nl-rebind-race RUN_DIR STATE_DIR COMMAND */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diagnose.h"
#include "rebind.h"
#include "state.h"

int main(int argc, char *argv[]) {
        struct observation now = {};
        struct snapshot before = {};
        struct link_history history = {};
        struct findings found = {};
        struct rebind_plan plan = {};
        char *error = NULL;
        int r;

        if (argc != 4) {
                fprintf(stderr, "usage: nl-rebind-race RUN_DIR STATE_DIR COMMAND\n");
                return 2;
        }
        if ((r = links_dump(&now.links, NULL, NULL)) < 0 || (r = ruleset_read(&now.ruleset, NULL, NULL)) < 0) {
                fprintf(stderr, "read: %s\n", strerror(-r));
                return 2;
        }
        bool have_snapshot = snapshot_read(argv[1], &before) >= 0;
        (void) history_read(argv[2], &history);
        if ((r = diagnose(&now, have_snapshot ? &before : NULL, &history, &found)) < 0 ||
            (r = rebind_plan(&now.ruleset, &found, true, &plan)) < 0) {
                fprintf(stderr, "plan: %s\n", strerror(-r));
                return 2;
        }
        printf("planned %zu rebind(s) at generation %u\n", plan.n_rebind, plan.genid);
        fflush(stdout);
        if (system(argv[3]) != 0) {
                fprintf(stderr, "the command failed\n");
                return 2;
        }
        r = rebind_commit(&now.ruleset, &plan, &error);
        printf("%s\n", r == -ERESTART ? "refused" : r == 0 ? "applied" : strerror(-r));

        free(error);
        rebind_plan_done(&plan);
        findings_done(&found);
        link_history_done(&history);
        snapshot_done(&before);
        observation_done(&now);
        return 0;
}

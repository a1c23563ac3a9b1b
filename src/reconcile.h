/* SPDX-License-Identifier: GPL-2.0-or-later */
/* reconcile.h: plan and act on findings: for each table with stale references, the unit to reload, reloaded at
 * most once per run. The caller verifies by observing again, and prints. */
#pragma once

#include <stdbool.h>

#include "act.h"
#include "config.h"
#include "diagnose.h"
#include "plan.h"

enum action_state {
        ACTION_RELOADED,
        ACTION_FAILED,
        ACTION_WOULD_RELOAD, /* --dry-run or Mode "report" */
        ACTION_NEVER_TOUCH,
        ACTION_POLICY_FORBIDS,
        ACTION_NO_UNIT,
        ACTION_SAME_UNIT, /* the unit was already reloaded for another table in this run */
};

const char *action_state_to_string(enum action_state s);

struct action {
        struct plan_item plan;
        enum action_state state;
        struct act_result result;
        int error;     /* with ACTION_FAILED */
        char *warning; /* with ACTION_WOULD_RELOAD: what else the reload would delete */
};

struct reconcile_result {
        struct action *actions;
        size_t n_actions;
};

struct reconcile_options {
        const struct config *config;
        bool dry_run;
        const char *policy_rc_d;
        const struct ruleset *ruleset; /* the tables that exist now, for the warning before a flushing reload */
};

/* Needs a bus with systemd on the other end; the caller checks that first. */
int reconcile_plan_and_act(sd_bus *bus, const struct reconcile_options *opt, const struct findings *f,
                           struct reconcile_result *ret);
void reconcile_result_done(struct reconcile_result *r);

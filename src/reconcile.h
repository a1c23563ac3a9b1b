/* SPDX-License-Identifier: GPL-2.0-or-later */
/* reconcile.h: for each table holding stale references, which repair: reload the unit that loads it — only when
 * its configuration is proven to re-create the table and to delete nothing it does not create — or rebind the
 * references in place. Then the reloads themselves (each unit at most once per run); a reload that fails leaves
 * its table to the rebind. The caller rebinds, verifies and prints. */
#pragma once

#include <stdbool.h>

#include "act.h"
#include "config.h"
#include "diagnose.h"
#include "plan.h"

enum table_repair {
        TABLE_RELOAD, /* reload plan.unit */
        TABLE_REBIND, /* rewrite the stale references in place */
};

const char *table_repair_to_string(enum table_repair r);

enum reload_state {
        RELOAD_NONE,     /* no reload was chosen */
        RELOAD_DONE,
        RELOAD_FAILED,   /* then the table is rebound */
        RELOAD_WOULD,    /* --dry-run or Mode "report" */
        RELOAD_SAME_UNIT /* the unit was reloaded for another table in this run */
};

const char *reload_state_to_string(enum reload_state s);

enum rebind_state {
        REBIND_NONE,   /* nothing of this table was left to rebind */
        REBIND_DONE,   /* every change sent, applied and read back */
        REBIND_WOULD,  /* --dry-run or Mode "report" */
        REBIND_FAILED, /* the kernel refused the transaction, or the read-back differs */
};

const char *rebind_state_to_string(enum rebind_state s);

struct action {
        struct plan_item plan;    /* the unit that loads the table, if one was found, and how */
        enum table_repair repair;
        char *why;                /* why this repair: the proof, or what stood in the way of a reload */
        enum reload_state reload;
        struct act_result result; /* of the reload job */
        int error;                /* with RELOAD_FAILED */
        enum rebind_state rebind;
        size_t rebound, pruned, kept; /* stale references of this table: rewritten, deleted as leftovers, left */
        bool exact;               /* with REBIND_DONE: what was rewritten reads back as planned */
        char *rebind_error;       /* with REBIND_FAILED */
};

struct reconcile_result {
        struct action *actions;
        size_t n_actions;
};

struct reconcile_options {
        const struct config *config;
        bool dry_run;
        const char *policy_rc_d;
        const struct ruleset *ruleset; /* what exists now: what a reload must not take with it */
        const char *why_no_units;      /* set when units cannot be used (systemd not running, bus unreachable) */
};

/* One action per table with stale references. bus may be NULL: then every table is rebound. */
int reconcile_plan(sd_bus *bus, const struct reconcile_options *opt, const struct findings *f,
                   struct reconcile_result *ret);

/* Runs the planned reloads (not in dry-run or report mode). */
void reconcile_reload(sd_bus *bus, const struct reconcile_options *opt, struct reconcile_result *res);

struct action *reconcile_find(struct reconcile_result *res, uint8_t family, const char *table);
void reconcile_result_done(struct reconcile_result *r);

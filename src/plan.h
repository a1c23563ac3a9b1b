/* SPDX-License-Identifier: GPL-2.0-or-later */
/* plan.h: which nftables unit to reload for each table holding stale references. Pure decisions over unit facts
 * (gathered through sd-bus by the caller) and the configuration; the only I/O is reading scripts a unit runs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

enum dep_kind {
        DEP_WANTS,
        DEP_REQUIRES,
        DEP_BINDS_TO,
        DEP_PART_OF,
        DEP_AFTER,
        _DEP_MAX,
};

const char *dep_kind_to_string(enum dep_kind kind); /* "Wants", … */

/* What the planner needs to know of one loaded unit. strv fields are NULL-terminated, may be NULL. */
struct unit_info {
        const char *name;
        const char *active_state;
        char **deps[_DEP_MAX];
        char **exec;     /* ExecStart= and ExecReload= command lines, argv joined by spaces */
        bool can_reload;
};

/* One table, and the daemon units that own the interfaces its stale references were. */
struct plan_request {
        const char *family;
        const char *table;
        const char *const *daemon_units; /* NULL-terminated; may be empty */
};

enum plan_reason {
        PLAN_CONFIG_TABLE,  /* Table-Unit:: */
        PLAN_CONFIG_DAEMON, /* Daemon-Unit:: */
        PLAN_DEPENDENCY,    /* a unit that depends on the daemon and runs nft */
        PLAN_NFTABLES,      /* nftables.service, active */
        PLAN_NONE,
};

struct plan_item {
        char *family, *table;
        char *unit;       /* NULL with PLAN_NONE */
        enum plan_reason reason;
        char *why;        /* "Wants=tailscaled.service and ExecStart runs nft", for the report and the record */
        bool never_touch; /* chosen, but on the Never-Touch list: not to be acted on */
};

/* script_root prefixes every script path read (tests); "" or NULL for the real root. */
int plan_table(const struct config *config, const struct unit_info *units, size_t n_units,
               const struct plan_request *request, const char *script_root, struct plan_item *ret);
void plan_item_done(struct plan_item *item);

/* Whether a command line runs nft, directly, through a shell, or through a script that does. */
bool exec_runs_nft(const char *command_line, const char *script_root);

/* What reloading a unit does to the rest of the ruleset: whether its configuration flushes the whole ruleset, and
 * the tables it defines. Read from its Exec lines and the files they name (scripts, nft -f files, includes),
 * followed two levels deep. */
struct unit_scope {
        bool flushes_ruleset;
        char **tables; /* "inet filter", NULL-terminated; NULL when none */
        size_t n_tables;
};

int plan_unit_scope(const struct unit_info *u, const char *script_root, struct unit_scope *ret);
bool unit_scope_defines(const struct unit_scope *scope, const char *family, const char *table);
void unit_scope_done(struct unit_scope *scope);

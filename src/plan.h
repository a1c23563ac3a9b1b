/* SPDX-License-Identifier: GPL-2.0-or-later */
/* plan.h: which nftables unit to reload for each table holding stale references. Pure decisions over unit facts
 * (gathered through sd-bus by the caller) and the configuration; the only I/O is reading scripts a unit runs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "ruleset.h"

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
        char **exec;        /* ExecStartPre=, ExecStart=, ExecStartPost= command lines, argv joined by spaces */
        char **exec_reload; /* ExecReload= */
        char **exec_stop;   /* ExecStop=, ExecStopPost= */
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
        PLAN_SCOPE,         /* a unit whose configuration creates the table */
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

/* What the job that reloads a unit would run (ExecReload= of an active unit that can reload, else ExecStop= and
 * the start lines), read from those lines and the files they name (scripts, nft -f files, includes): the tables
 * and chains it creates, those it deletes or flushes, and whether it flushes the whole ruleset. */
struct unit_scope {
        bool flushes_ruleset;
        char *opaque;    /* why it could not be read whole ("nft -f $CONF"); NULL when it could */
        char **tables;   /* created: "inet filter" */
        size_t n_tables;
        char **chains;   /* created: "inet filter forward" */
        size_t n_chains;
        char **deleted;  /* deleted or flushed: "table inet filter", "chain inet filter forward" */
        size_t n_deleted;
        char **words;    /* every word it contains, sorted: whether it names an interface */
        size_t n_words;
};

int plan_unit_scope(const struct unit_info *u, const char *script_root, struct unit_scope *ret);
bool unit_scope_defines(const struct unit_scope *scope, const char *family, const char *table);
void unit_scope_done(struct unit_scope *scope);

/* The proof a reload needs: the job creates the stale table, names the interfaces its stale references were
 * (names, NULL-terminated, may be empty: not known), and would delete or flush no table or chain of rs that it
 * does not create itself, and nothing it runs is out of sight. Returns true when proven; *ret_why says why, or
 * why not, in words for the report and the record. */
bool plan_reload_is_safe(const struct unit_scope *scope, const char *family, const char *table,
                         const char *const *names, const struct ruleset *rs, char **ret_why);

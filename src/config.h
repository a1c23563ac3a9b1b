/* SPDX-License-Identifier: GPL-2.0-or-later */
/* config.h: the parsed configuration (apt.conf syntax, scope Reconcile-After-Upgrade::). The one piece of state
 * every part of a run may read. A malformed value costs one error line naming the key, then its default. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_SCOPE "Reconcile-After-Upgrade"
#define CONFIG_METRICS_DIR_DEFAULT "/var/lib/prometheus/node-exporter"

enum config_mode {
        MODE_RECONCILE, /* reload the dependent units */
        MODE_REPORT,    /* only say what would be reloaded */
};

enum config_repair {
        REPAIR_AUTO,   /* reload the unit when that is proven safe, else rebind in place */
        REPAIR_REBIND, /* never touch units: rebind in place */
        REPAIR_RELOAD, /* reload the unit, still refusing one that would delete what it does not create */
};

struct unit_map_entry {
        char *from; /* "inet filter" (a table) or "tailscaled.service" (a daemon's unit) */
        char *unit; /* the nftables unit to reload */
};

struct config {
        enum config_mode mode;
        struct unit_map_entry *table_units;
        size_t n_table_units;
        struct unit_map_entry *daemon_units;
        size_t n_daemon_units;
        char **never_touch;
        size_t n_never_touch;
        unsigned job_timeout_ms;  /* one reload job */
        unsigned time_budget_ms;  /* the whole run, from the hook's start */
        unsigned interface_wait_ms; /* how long to wait for a daemon to create its interface again */
        bool prune_stale_twins;
        enum config_repair repair;
        bool allow_flush;         /* Repair "reload": reload even a unit that flushes what it does not create */
        uint64_t history_max_bytes; /* history.jsonl is rotated to history.jsonl.1 beyond this */
        bool watch;               /* the watcher acts on restarts apt never sees; false: it stays idle */
        unsigned watch_debounce_ms; /* quiet after the last link event before the watcher looks */
        unsigned watch_repair_limit; /* repairs of one table per minute the watcher makes; 0: no limit */
        char *metrics_dir;        /* node_exporter's textfile directory; "" : none. Used only when it exists */
};

const char *config_repair_to_string(enum config_repair r);

void config_defaults(struct config *c);

/* Reads the configuration as apt-config would show it, or only file when not NULL. Returns the number of malformed
 * values (each already logged and replaced by its default), or a negative errno when nothing could be read. */
int config_load(const char *file, struct config *ret);

const char *config_table_unit(const struct config *c, const char *family, const char *table);
const char *config_daemon_unit(const struct config *c, const char *daemon_unit);
bool config_never_touch(const struct config *c, const char *unit);
const char *config_metrics_dir(const struct config *c);

void config_done(struct config *c);

/* SPDX-License-Identifier: GPL-2.0-or-later */
/* metrics.h: what the runs found and did, for a fleet's monitoring: Prometheus text exposition written for
 * node_exporter's textfile collector (a temporary file in the same directory, then rename; never the directory
 * created). Counters and the last times live in the run directory (they start again at boot, which Prometheus
 * reads as a counter reset). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "diagnose.h"
#include "reconcile.h"

#define METRICS_FILE "reconcile_after_upgrade.prom"
#define METRICS_STATE_FILE "metrics.json"
/* Its own file: the dpkg status-logger writes it at the end of each dpkg run apt made, beside (not under) the run
 * lock, which the trigger inside that dpkg run may hold. */
#define METRICS_APT_FILE "reconcile_after_upgrade_apt.prom"

/* One run, as the metrics see it. */
struct metrics_run {
        const char *via;     /* "apt", "dpkg-trigger", "watch", "manual", "check", "snapshot" */
        const char *outcome; /* "nothing-stale", "fixed", "stale", "failed", "degraded", "error" */
        double time;         /* when it ended, seconds since the epoch */
        const struct ruleset *ruleset;  /* the last reading (its tables holding an index are listed, 0 or not);
                                         * NULL when the run could not read it */
        const struct findings *stale;   /* what is stale in that reading; NULL with ruleset NULL */
        size_t interfaces_recreated;    /* since the baseline, as the run first found them */
        const struct reconcile_result *repairs; /* what it repaired; NULL or empty: nothing */
        bool repaired;                  /* it acted (reload, rebind, prune) */
        bool repair_success;            /* with repaired: verified fresh, nothing lost */
        double repair_seconds;          /* with repaired */
};

/* Adds the run to the counters in run_dir and writes the exposition to metrics_dir/METRICS_FILE, when that
 * directory exists. Returns 0, or a negative errno (the caller notes it: metrics never fail a run). */
int metrics_update(const char *run_dir, const char *metrics_dir, const struct metrics_run *run);

/* Notes in metrics_dir/METRICS_APT_FILE that apt ran dpkg (time: seconds since the epoch), when the directory
 * exists. An alert compares it with the last run: apt ran, and no run of ours followed (its hooks are broken). */
int metrics_apt_ran(const char *metrics_dir, double time);

/* Adds the run to a state (as kept in METRICS_STATE_FILE; an empty object to start). */
int metrics_state_add(json_t *state, const struct metrics_run *run);

/* The exposition of a state, to out. */
int metrics_render(FILE *out, json_t *state);

/* A label value in the exposition format: the name as everywhere else (names.h), then \ and " escaped. */
int metrics_label_escape(const char *name, char *buf, size_t size);

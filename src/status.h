/* SPDX-License-Identifier: GPL-2.0-or-later */
/* status.h: what `status` and `check --nagios` say. One read-only check of the ruleset (no lock held longer than
 * the caller allows, nothing written), the last record, and the watcher's state from systemd; then the verdict in
 * the three forms: for a person, as JSON, and as a monitoring plugin's line and exit code. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "pipeline.h"

#define WATCHER_UNIT "reconcile-after-upgrade.service"

struct status {
        struct pipeline_result check;
        int check_error;   /* < 0: the ruleset could not be read (check.problem says why) */
        json_t *last;      /* the last record (last-run.json); NULL when there is none */
        bool have_watcher; /* systemd answered */
        char *watcher_active, *watcher_sub, *watcher_text, *watcher_since;
};

void status_done(struct status *s);

/* opt: the check's options (its read_only and lock_timeout_ms are set here). with_watcher: ask systemd. */
int status_gather(struct pipeline_options opt, bool with_watcher, struct status *ret);

/* Exit status of `status`: 0 nothing stale now, 1 stale now, 2 the ruleset could not be read. */
int status_exit(const struct status *s);
void status_print(const struct status *s, FILE *out);
json_t *status_json(const struct status *s);

/* The monitoring plugin: one line (status, text, performance data), returns 0 OK, 1 WARNING, 2 CRITICAL,
 * 3 UNKNOWN. */
int status_nagios(const struct status *s, FILE *out);

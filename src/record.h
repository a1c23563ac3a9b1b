/* SPDX-License-Identifier: GPL-2.0-or-later */
/* record.h: what a run found and did, kept three ways: a journal entry (fixed MESSAGE_ID, structured fields), one
 * line appended to the history (JSON lines, O_APPEND, synced, 0600), and the latest summary (replaced by rename). */
#pragma once

#include <jansson.h>

#include "diagnose.h"
#include "reconcile.h"

#define RECORD_MESSAGE_ID "1081ccdfd4e44403bdfd47027dcb408a"
#define RECORD_HISTORY_FILE "history.jsonl"
#define RECORD_SUMMARY_FILE "last-run.json"
/* A record lists at most this many stale references (and leftovers, and references not repaired). */
#define RECORD_MAX_LISTED 100

enum record_outcome {
        OUTCOME_FIXED,    /* every stale reference resolved after the reloads */
        OUTCOME_STALE,    /* stale references remain (nothing could be reloaded, or report mode) */
        OUTCOME_FAILED,   /* a repair failed: the kernel refused the rebind, or it did not read back exactly */
        OUTCOME_DRY_RUN,
        OUTCOME_DEGRADED, /* fixed or not, a reload wiped tables or chains that others had created */
};

const char *record_outcome_to_string(enum record_outcome o);

struct record_input {
        uint64_t time;
        const char *via; /* "apt", "dpkg-trigger"; NULL: by hand */
        enum record_outcome outcome;
        const struct findings *found;      /* before acting */
        const struct reconcile_result *res; /* NULL when nothing was planned */
        const struct findings *left;        /* after verifying; NULL when nothing was acted on */
        json_t *lost, *leftovers, *packages; /* each may be NULL */
        json_t *not_repaired;                /* stale references left as they were, with why; may be NULL */
        json_t *waited;                      /* the wait for interfaces mid-restart; may be NULL */
        json_t *cause;                       /* what made the caller run (the watcher's event); may be NULL */
        json_t *hooks;                       /* device-bound hooks: what was done to each; may be NULL */
        double seconds;                      /* from the start of the run to the verdict */
        double repair_seconds;               /* from the end of the diagnosis to the verified reading; 0: none */
        double finished;                     /* when the verdict was reached: seconds since the epoch, to the µs */
};

json_t *record_build(const struct record_input *in);

/* One table's plan and what came of it, as in a record's "actions". */
json_t *record_action_json(const struct action *a);

/* One line for apt's and unattended-upgrades' logs: what changed, what was reloaded, the verdict. */
char *record_one_line(json_t *record);

/* Journal, history and summary. On failure, ret_failed_file names the file that could not be written; recording
 * never fails the run, the caller says it. */
int record_store(const char *state_dir, json_t *record, uint64_t history_max_bytes, const char **ret_failed_file);

/* Prints the history as a table (or the raw JSON lines). */
int record_show_history(const char *state_dir, bool json, FILE *out);

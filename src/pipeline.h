/* SPDX-License-Identifier: GPL-2.0-or-later */
/* pipeline.h: one run of the product — observe, diagnose, plan, act, verify, prune, record — over one context.
 * The hook, the dpkg trigger, the manual command and the watcher all call it; it never prints and never exits,
 * and keeps nothing between calls: what a run found and did is in its result, for the caller to render. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "config.h"
#include "diagnose.h"
#include "packages.h"
#include "reconcile.h"
#include "record.h"
#include "state.h"

/* What a caller sets once. Read-only during a run. */
struct pipeline_options {
        const char *run_dir;     /* snapshot, lock, dpkg events */
        const char *state_dir;   /* link history, records */
        const struct config *config;
        const char *via;         /* "apt", "dpkg-trigger", …; NULL: by hand */
        bool dry_run;            /* plan, change nothing, record nothing */
        bool lazy_owners;        /* read TUN owners and units only when something is stale (hooks: most runs
                                  * find nothing) */
        const char *policy_rc_d; /* NULL: /usr/sbin/policy-rc.d */
        uint64_t deadline_usec;  /* CLOCK_MONOTONIC: waits end before it (the time budget); 0: no deadline */
        unsigned lock_timeout_ms; /* how long to wait for another run's lock; 0: the default (30 s) */
        /* Tables this run must leave as they are (the watcher's repair rate limit): their stale references are
         * reported, with hold_why, and not repaired. NULL: none. */
        bool (*hold_table)(void *userdata, uint8_t family, const char *table);
        void *hold_userdata;
        const char *hold_why;
        json_t *cause;           /* what made the caller run (recorded as is); may be NULL */
        bool read_only;          /* write nothing at all: no link history, no metrics (the monitoring check) */
        bool record_only_repairs; /* no record of a run that found only interfaces that are gone, and so could
                                   * change nothing (the watcher looks when a daemon stops, too) */
        bool quiet_held;          /* no record of a run that changed nothing because every stale reference it
                                   * could repair is in a held table (already said once) */
};

/* One run's view: what is now, what was (snapshot, history), and the diagnosis. */
struct run_view {
        struct observation now;
        struct snapshot before;
        bool have_snapshot;
        struct link_history history;
        struct findings findings;
};

void run_view_done(struct run_view *v);

/* Why a run stopped short of acting; result.problem says it in one line. */
enum pipeline_stop {
        STOP_NONE,
        STOP_NO_SYSTEMD,    /* stale, but systemd is not running here: nothing reloaded */
        STOP_NO_BUS,        /* stale, but the system bus did not answer */
        STOP_SHUTTING_DOWN, /* stale, but the system is shutting down */
        STOP_ERROR,         /* the run could not observe or act at all */
};

enum pipeline_job {
        JOB_SNAPSHOT,  /* observe and keep it as the baseline */
        JOB_CHECK,     /* observe and diagnose */
        JOB_RECONCILE, /* and repair, verify, record */
};

/* Something the run has to say besides its result: a warning about state it could not keep, say. */
struct pipeline_note {
        int level; /* LOG_WARNING, LOG_ERR */
        char *text;
};

struct pipeline_result {
        struct run_view view;          /* before acting */
        struct reconcile_result res;   /* per table: the plan and what came of it */
        struct observation again;      /* the last read after acting */
        struct findings left;          /* stale after acting (points into again) */
        bool acted;                    /* something was changed (a reload ran, a rebind was sent) */
        bool verified;                 /* again/left hold a read taken after acting */
        json_t *leftovers;             /* stale leftovers beside fresh twins, each {"pruned": bool}; or NULL */
        json_t *not_repaired;          /* stale references left as they were, each with "why"; or NULL */
        json_t *lost;                  /* tables/chains a reload took with it; or NULL */
        json_t *record;                /* what was recorded (history, journal, summary); NULL if nothing */
        json_t *held;                  /* stale references of held tables, each with "why"; or NULL */
        json_t *hooks;                 /* device-bound hooks that lost a device: what was done (hook_fix_json);
                                        * or NULL */
        json_t *waited;                /* {"interfaces": [...], "seconds": s, "came_back": bool}: the wait for
                                        * interfaces whose daemon was (re)starting; NULL when none */
        enum record_outcome outcome;   /* meaningful when record != NULL */
        enum pipeline_stop stop;
        char *problem;                 /* one line, when the run stopped short */
        struct pipeline_note *notes;
        size_t n_notes, allocated_notes;
};

void pipeline_result_done(struct pipeline_result *r);

/* Serialises with every other run through the lock in run_dir. Returns 0 when the run got as far as it could
 * (result says how far: stop, problem), or a negative errno when it could not observe at all (problem says why). */
int pipeline_run(const struct pipeline_options *opt, enum pipeline_job job, struct pipeline_result *ret);

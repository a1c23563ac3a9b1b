/* SPDX-License-Identifier: GPL-2.0-or-later */
/* watch.h: the watcher, for the restarts apt never sees (by hand, Restart=on-failure, needrestart). One sd-event
 * loop over rtnetlink link events, nf_tables generation changes and systemd's JobRemoved; idle, it is blocked in
 * that loop. When an interface the ruleset holds by index is re-created, it waits for quiet (Watch-Debounce) and
 * for the interface to be up (bounded by Interface-Wait), then runs the pipeline (via "watch") under the same lock
 * as the hooks; a ruleset change it did not make renews the baseline (snapshot, link history). At most
 * Watch-Repair-Limit repairs of one table per minute: beyond that it says so once and leaves that table until the
 * minute is over; other tables are still repaired. */
#pragma once

#include "config.h"

struct watch_options {
        const char *run_dir;
        const char *state_dir;
        const char *config_file; /* NULL: apt's configuration (re-read on SIGHUP) */
        struct config *config;   /* the parsed configuration: replaced on SIGHUP */
};

/* Runs until SIGTERM or SIGINT. Tells systemd READY=1 once subscribed (and pings its watchdog from the loop).
 * Returns 0 on a clean stop, a negative errno when it could not start or the loop failed. */
int watch_main(const struct watch_options *opt);

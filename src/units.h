/* SPDX-License-Identifier: GPL-2.0-or-later */
/* units.h: systemd units over sd-bus (system bus; DBUS_SYSTEM_BUS_ADDRESS honoured): which service units are
 * loaded and their InvocationID (it changes at every start, so two readings tell which units restarted), and
 * the facts the planner needs about a unit. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "plan.h"

typedef struct sd_bus sd_bus;

/* 0 when systemd runs as the system manager here, -ENOMEDIUM when not (chroot, container without it, build). */
int systemd_running(void);
/* 1 when this process's root is not PID 1's (or /proc is not there to tell), 0 when it is. */
int running_in_chroot(void);

/* Connects with a bounded method-call timeout, so a wedged bus cannot hang apt; -ETIMEDOUT at once (2 s) when the
 * bus, or systemd on it, does not answer. */
int units_bus_open(sd_bus **ret);

struct unit_invocation {
        char *name;
        char invocation_id[33]; /* 32 hex digits; empty when the unit never ran */
        char *active_state;
};

struct unit_invocations {
        struct unit_invocation *units;
        size_t n_units;
};

/* The service units matching patterns (NULL-terminated; NULL: every service) and their InvocationIDs. */
int units_list_invocations(sd_bus *bus, const char *const *patterns, struct unit_invocations *ret);

/* The file a unit was loaded from ("/lib/systemd/system/tailscaled.service"); "" for a transient unit. */
int units_fragment_path(sd_bus *bus, const char *name, char **ret);
void unit_invocations_done(struct unit_invocations *u);

/* The planner's view of one unit, with the storage behind it. */
struct unit_facts {
        struct unit_info info;
        char *name, *active_state;
};

int units_get_facts(sd_bus *bus, const char *name, struct unit_facts *ret);
void unit_facts_done(struct unit_facts *f);

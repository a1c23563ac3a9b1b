/* SPDX-License-Identifier: GPL-2.0-or-later */
/* act.h: reloading a unit through systemd, waiting for its job, bounded; and the checks before acting. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef struct sd_bus sd_bus;

/* Subscribes to the manager's job signals; call once before act_reload_unit(). */
int act_subscribe(sd_bus *bus);

/* true while the system is shutting down (SystemState "stopping"): starting jobs then would be wrong. */
int act_system_stopping(sd_bus *bus);

/* What /usr/sbin/policy-rc.d says of "UNIT ACTION", as invoke-rc.d reads it: 0 allowed, -EPERM forbidden (101). */
int act_policy_allows(const char *policy_rc_d, const char *unit, const char *action);

struct act_result {
        char job_result[32]; /* systemd's word: "done", "failed", "timeout", "canceled", …; "" if no job ran */
        uint64_t duration_usec;
};

/* ReloadOrRestartUnit (RestartUnit when the unit cannot reload), then waits for the job's JobRemoved.
 * Returns 0 when the job finished "done", -EIO when it finished otherwise, -ETIMEDOUT past timeout_usec. */
int act_reload_unit(sd_bus *bus, const char *unit, bool can_reload, uint64_t timeout_usec, struct act_result *ret);

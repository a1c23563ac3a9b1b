/* SPDX-License-Identifier: GPL-2.0-or-later */
/* act.c: one reload job at a time, watched through JobRemoved. */
#include <string.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include "act.h"
#include "log.h"
#include "macro.h"

#define SYSTEMD_DEST "org.freedesktop.systemd1"
#define SYSTEMD_PATH "/org/freedesktop/systemd1"
#define MANAGER_IFACE "org.freedesktop.systemd1.Manager"

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

int act_subscribe(sd_bus *bus) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r = sd_bus_call_method(bus, SYSTEMD_DEST, SYSTEMD_PATH, MANAGER_IFACE, "Subscribe", &error, NULL, NULL);
        sd_bus_error_free(&error);
        return r;
}

int act_system_stopping(sd_bus *bus) {
        _cleanup_free_ char *state = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r = sd_bus_get_property_string(bus, SYSTEMD_DEST, SYSTEMD_PATH, MANAGER_IFACE, "SystemState", &error,
                                           &state);
        sd_bus_error_free(&error);
        if (r < 0)
                return r;
        return streq(state, "stopping");
}

int act_policy_allows(const char *policy_rc_d, const char *unit, const char *action) {
        if (access(policy_rc_d, X_OK) < 0)
                return 0; /* no policy: everything is allowed */

        pid_t pid = fork();
        if (pid < 0)
                return negative_errno();
        if (pid == 0) {
                execl(policy_rc_d, policy_rc_d, unit, action, (char *) NULL);
                _exit(127);
        }
        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return negative_errno();
        /* invoke-rc.d: 101 forbids; 104 and 106 allow; anything else is treated as allowed with a word. */
        if (WIFEXITED(status) && WEXITSTATUS(status) == 101)
                return -EPERM;
        return 0;
}

struct job_wait {
        const char *job;
        char result[32];
        bool done;
};

static int job_removed_cb(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct job_wait *w = userdata;
        uint32_t id;
        const char *path, *unit, *result;

        if (sd_bus_message_read(m, "uoss", &id, &path, &unit, &result) < 0)
                return 0;
        if (streq(path, w->job)) {
                snprintf(w->result, sizeof(w->result), "%s", result);
                w->done = true;
        }
        return 0;
}

int act_reload_unit(sd_bus *bus, const char *unit, bool can_reload, uint64_t timeout_usec, struct act_result *ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        struct job_wait w = {};
        const char *job;
        uint64_t start = now_usec();
        int r;

        *ret = (struct act_result){};
        /* The match first: a fast job could otherwise finish before we listen. */
        r = sd_bus_match_signal(bus, &slot, SYSTEMD_DEST, SYSTEMD_PATH, MANAGER_IFACE, "JobRemoved", job_removed_cb,
                                &w);
        if (r < 0)
                return r;

        r = sd_bus_call_method(bus, SYSTEMD_DEST, SYSTEMD_PATH, MANAGER_IFACE,
                               can_reload ? "ReloadOrRestartUnit" : "RestartUnit", &error, &reply, "ss", unit,
                               "replace");
        if (r < 0) {
                log_debug("act: %s: %s", unit, error.message ? error.message : strerror(-r));
                sd_bus_error_free(&error);
                return r;
        }
        r = sd_bus_message_read(reply, "o", &job);
        if (r < 0)
                return r;
        w.job = job;

        while (!w.done) {
                uint64_t elapsed = now_usec() - start;
                if (elapsed >= timeout_usec) {
                        ret->duration_usec = elapsed;
                        snprintf(ret->job_result, sizeof(ret->job_result), "timeout");
                        return -ETIMEDOUT;
                }
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        return r;
                if (r > 0)
                        continue;
                r = sd_bus_wait(bus, timeout_usec - elapsed);
                if (r < 0)
                        return r;
        }

        ret->duration_usec = now_usec() - start;
        snprintf(ret->job_result, sizeof(ret->job_result), "%s", w.result);
        return streq(w.result, "done") ? 0 : -EIO;
}

/* SPDX-License-Identifier: GPL-2.0-or-later */
/* units.c: ListUnitsByPatterns, InvocationID, dependency and Exec properties through sd-bus. */
#include <string.h>
#include <systemd/sd-bus.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "units.h"

#define BUS_TIMEOUT_USEC (5 * 1000 * 1000ULL)
/* The first call: a bus that does not answer this is not used at all (each call would wait its own timeout) */
#define BUS_PROBE_TIMEOUT_USEC (2 * 1000 * 1000ULL)
#define SYSTEMD_DEST "org.freedesktop.systemd1"
#define SYSTEMD_PATH "/org/freedesktop/systemd1"
#define MANAGER_IFACE "org.freedesktop.systemd1.Manager"
#define UNIT_IFACE "org.freedesktop.systemd1.Unit"
#define SERVICE_IFACE "org.freedesktop.systemd1.Service"

/* sd-bus.h provides sd_bus_message_unrefp() and sd_bus_flush_close_unrefp() for _cleanup_. */

static void strv_free(char **l) {
        for (char **p = l; p && *p; p++)
                free(*p);
        free(l);
}

int running_in_chroot(void) {
        struct stat root, init_root;
        /* What systemd does: the root PID 1 sees is ours unless we are chrooted. Opened, not stat()ed: where PID 1
         * may not be looked at (another user namespace), stat() answers for the /proc entry itself. Not allowed to
         * look: as systemd, not a chroot. No /proc at all (debootstrap, a bare chroot): there is no telling, and
         * acting on a network that may not be this system's is the worse mistake. */
        _cleanup_close_ int fd = open("/proc/1/root", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return errno == EACCES || errno == EPERM ? 0 : 1;
        if (fstat(fd, &init_root) < 0 || stat("/", &root) < 0)
                return 1;
        return root.st_dev != init_root.st_dev || root.st_ino != init_root.st_ino;
}

int systemd_running(void) {
        /* What sd_booted() checks, and what systemctl needs; in a chroot with /run bind-mounted (a common rescue
         * recipe) /run/systemd/system is the host's, and so is the network: that is not running here either. */
        if (access("/run/systemd/system/", F_OK) < 0 || running_in_chroot() != 0)
                return -ENOMEDIUM;
        return 0;
}

static uint64_t now_usec_monotonic(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

int units_bus_open(sd_bus **ret) {
        _cleanup_(sd_bus_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r = sd_bus_open_system(&bus);
        if (r < 0)
                return r;
        /* The connection's own handshake (authentication, Hello) is not bounded by a call's timeout, but by
         * sd-bus's 90 s: wait for it here, against the probe's bound. */
        uint64_t deadline = now_usec_monotonic() + BUS_PROBE_TIMEOUT_USEC;
        while ((r = sd_bus_is_ready(bus)) == 0) {
                uint64_t now = now_usec_monotonic();
                if ((r = sd_bus_process(bus, NULL)) < 0)
                        return r;
                if (r > 0)
                        continue;
                if (now >= deadline)
                        return -ETIMEDOUT;
                if ((r = sd_bus_wait(bus, deadline - now)) < 0)
                        return r;
        }
        if (r < 0)
                return r;
        /* One short call first: a bus that accepts and never answers (a hung dbus-daemon, a dying system) is told
         * apart at once, instead of by every later call's own timeout. */
        r = sd_bus_message_new_method_call(bus, &call, SYSTEMD_DEST, SYSTEMD_PATH, "org.freedesktop.DBus.Peer", "Ping");
        if (r >= 0)
                r = sd_bus_call(bus, call, BUS_PROBE_TIMEOUT_USEC, &error, &reply);
        sd_bus_error_free(&error);
        if (r < 0)
                return r;
        r = sd_bus_set_method_call_timeout(bus, BUS_TIMEOUT_USEC);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(bus);
        return 0;
}

static int unit_path(const char *name, char **ret) {
        return sd_bus_path_encode(SYSTEMD_PATH "/unit", name, ret);
}

static int read_invocation_id(sd_bus *bus, const char *path, char ret[33]) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const void *id;
        size_t size;
        int r;

        r = sd_bus_get_property(bus, SYSTEMD_DEST, path, UNIT_IFACE, "InvocationID", NULL, &reply, "ay");
        if (r < 0)
                return r;
        r = sd_bus_message_read_array(reply, 'y', &id, &size);
        if (r < 0)
                return r;
        ret[0] = '\0';
        if (size == 16)
                for (size_t i = 0; i < 16; i++)
                        snprintf(ret + 2 * i, 3, "%02x", ((const unsigned char *) id)[i]);
        return 0;
}

int units_list_invocations(sd_bus *bus, const char *const *patterns, struct unit_invocations *ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        struct unit_invocations list = {};
        static const char *const all_services[] = {"*.service", NULL};
        size_t allocated = 0;
        int r;

        r = sd_bus_message_new_method_call(bus, &call, SYSTEMD_DEST, SYSTEMD_PATH, MANAGER_IFACE,
                                           "ListUnitsByPatterns");
        if (r >= 0)
                r = sd_bus_message_append_strv(call, NULL);
        if (r >= 0)
                r = sd_bus_message_append_strv(call, (char **) (patterns ? patterns : all_services));
        if (r < 0)
                return r;
        r = sd_bus_call(bus, call, 0, &error, &reply);
        sd_bus_error_free(&error);
        if (r < 0)
                return r;

        r = sd_bus_message_enter_container(reply, 'a', "(ssssssouso)");
        if (r < 0)
                return r;
        for (;;) {
                const char *name, *active, *path;
                r = sd_bus_message_read(reply, "(ssssssouso)", &name, NULL, NULL, &active, NULL, NULL, &path, NULL,
                                        NULL, NULL);
                if (r < 0)
                        break;
                if (r == 0) {
                        *ret = list;
                        return 0;
                }
                if ((r = GROW(list.units, allocated, list.n_units + 1)) < 0)
                        break;
                struct unit_invocation *u = &list.units[list.n_units];
                *u = (struct unit_invocation){.name = strdup(name), .active_state = strdup(active)};
                if (!u->name || !u->active_state) {
                        free(u->name);
                        free(u->active_state);
                        r = -ENOMEM;
                        break;
                }
                list.n_units++;
                /* A unit unloaded since the listing has no ID to compare: keep it with an empty one. */
                r = read_invocation_id(bus, path, u->invocation_id);
                if (r < 0)
                        log_debug_errno(r, "units: %s: no InvocationID: %m", name);
        }
        unit_invocations_done(&list);
        return r;
}

int units_fragment_path(sd_bus *bus, const char *name, char **ret) {
        _cleanup_free_ char *path = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r = unit_path(name, &path);
        if (r < 0)
                return r;
        r = sd_bus_get_property_string(bus, SYSTEMD_DEST, path, UNIT_IFACE, "FragmentPath", &error, ret);
        sd_bus_error_free(&error);
        return r;
}

void unit_invocations_done(struct unit_invocations *u) {
        for (size_t i = 0; i < u->n_units; i++) {
                free(u->units[i].name);
                free(u->units[i].active_state);
        }
        free(u->units);
        *u = (struct unit_invocations){};
}

static int get_strv(sd_bus *bus, const char *path, const char *iface, const char *property, char ***ret) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r = sd_bus_get_property_strv(bus, SYSTEMD_DEST, path, iface, property, &error, ret);
        sd_bus_error_free(&error);
        return r;
}

/* ExecStart= and the others: a(sasbttttuii); we keep argv joined by spaces, which is what the planner reads. */
static int get_exec(sd_bus *bus, const char *path, const char *property, char ***list, size_t *n) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_get_property(bus, SYSTEMD_DEST, path, SERVICE_IFACE, property, &error, &reply,
                                "a(sasbttttuii)");
        sd_bus_error_free(&error);
        if (r < 0)
                return r;
        if ((r = sd_bus_message_enter_container(reply, 'a', "(sasbttttuii)")) < 0)
                return r;
        while ((r = sd_bus_message_enter_container(reply, 'r', "sasbttttuii")) > 0) {
                const char *binary, *arg;
                char *line = NULL;
                size_t len = 0;
                _cleanup_fclose_ FILE *f = NULL;

                if ((r = sd_bus_message_read(reply, "s", &binary)) < 0)
                        return r;
                f = open_memstream(&line, &len);
                if (!f)
                        return -ENOMEM;
                if ((r = sd_bus_message_enter_container(reply, 'a', "s")) < 0)
                        return r;
                bool first = true;
                while ((r = sd_bus_message_read(reply, "s", &arg)) > 0) {
                        /* argv[0] may be a bare name; the binary path is what runs */
                        fprintf(f, "%s%s", first ? "" : " ", first ? binary : arg);
                        first = false;
                }
                if (r < 0)
                        return r;
                fclose(TAKE_PTR(f));
                if ((r = sd_bus_message_exit_container(reply)) < 0 ||
                    (r = sd_bus_message_skip(reply, "bttttuii")) < 0 || (r = sd_bus_message_exit_container(reply)) < 0) {
                        free(line);
                        return r;
                }
                char **p = reallocarray(*list, *n + 2, sizeof(char *));
                if (!p) {
                        free(line);
                        return -ENOMEM;
                }
                *list = p;
                p[(*n)++] = line;
                p[*n] = NULL;
        }
        return r < 0 ? r : 0;
}

int units_get_facts(sd_bus *bus, const char *name, struct unit_facts *ret) {
        static const char *const dep_properties[_DEP_MAX] = {
                [DEP_WANTS] = "Wants", [DEP_REQUIRES] = "Requires", [DEP_BINDS_TO] = "BindsTo",
                [DEP_PART_OF] = "PartOf", [DEP_AFTER] = "After",
        };
        _cleanup_free_ char *path = NULL;
        _cleanup_(unit_facts_done) struct unit_facts f = {};
        sd_bus_error error = SD_BUS_ERROR_NULL;
        size_t n_start = 0, n_reload = 0, n_stop = 0;
        int r, can_reload = 0;

        if ((r = unit_path(name, &path)) < 0)
                return r;
        if (!(f.name = strdup(name)))
                return -ENOMEM;
        r = sd_bus_get_property_string(bus, SYSTEMD_DEST, path, UNIT_IFACE, "ActiveState", &error, &f.active_state);
        sd_bus_error_free(&error);
        if (r < 0)
                return r;
        for (enum dep_kind k = 0; k < _DEP_MAX; k++)
                if ((r = get_strv(bus, path, UNIT_IFACE, dep_properties[k], &f.info.deps[k])) < 0)
                        return r;
        r = sd_bus_get_property_trivial(bus, SYSTEMD_DEST, path, UNIT_IFACE, "CanReload", &error, 'b', &can_reload);
        sd_bus_error_free(&error);
        if (r < 0)
                return r;
        /* Only services have Exec properties: what a start, a reload and a stop run. */
        if (strlen(name) > 8 && streq(name + strlen(name) - 8, ".service") &&
            ((r = get_exec(bus, path, "ExecStartPre", &f.info.exec, &n_start)) < 0 ||
             (r = get_exec(bus, path, "ExecStart", &f.info.exec, &n_start)) < 0 ||
             (r = get_exec(bus, path, "ExecStartPost", &f.info.exec, &n_start)) < 0 ||
             (r = get_exec(bus, path, "ExecReload", &f.info.exec_reload, &n_reload)) < 0 ||
             (r = get_exec(bus, path, "ExecStop", &f.info.exec_stop, &n_stop)) < 0 ||
             (r = get_exec(bus, path, "ExecStopPost", &f.info.exec_stop, &n_stop)) < 0))
                return r;

        f.info.name = f.name;
        f.info.active_state = f.active_state;
        f.info.can_reload = can_reload;
        *ret = f;
        f = (struct unit_facts){};
        return 0;
}

void unit_facts_done(struct unit_facts *f) {
        for (enum dep_kind k = 0; k < _DEP_MAX; k++)
                strv_free(f->info.deps[k]);
        strv_free(f->info.exec);
        strv_free(f->info.exec_reload);
        strv_free(f->info.exec_stop);
        free(f->name);
        free(f->active_state);
        *f = (struct unit_facts){};
}

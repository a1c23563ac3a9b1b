/* SPDX-License-Identifier: GPL-2.0-or-later */
/* packages.c: dpkg's status stream in, package changes out; unit file → package; versions and origin. */
#include <ctype.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "apt-shim.h"
#include "fileio.h"
#include "json-util.h"
#include "log.h"
#include "packages.h"

#define EVENTS_MAX_SIZE (16u * 1024 * 1024)

static const char *const recorded_actions[] = {"install", "upgrade", "configure", "remove", "purge", "disappear"};

/* As dpkg checks a package name (an ASCII letter or digit, then those and "-+._"), with an optional ":ARCH". A line
 * naming anything else is not dpkg's. */
static bool package_name_valid(const char *s) {
        static const char also[] = "-+._";
        const char *colon = strchr(s, ':');
        if (!isalnum((unsigned char) s[0]) || !isascii((unsigned char) s[0]))
                return false;
        for (const char *p = s; *p && p != colon; p++)
                if (!isascii((unsigned char) *p) || (!isalnum((unsigned char) *p) && !strchr(also, *p)))
                        return false;
        if (colon) {
                if (!colon[1])
                        return false;
                for (const char *p = colon + 1; *p; p++)
                        if (!isascii((unsigned char) *p) || (!isalnum((unsigned char) *p) && *p != '-'))
                                return false;
        }
        return true;
}

int dpkg_status_line_parse(char *line, const char **ret_action, const char **ret_package) {
        static const char prefix[] = "processing: ";
        if (strncmp(line, prefix, sizeof(prefix) - 1) != 0)
                return 0;
        char *action = line + sizeof(prefix) - 1;
        char *sep = strstr(action, ": ");
        if (!sep || sep == action)
                return 0;
        *sep = '\0';
        char *package = sep + 2;
        package[strcspn(package, " \t\r\n")] = '\0';
        if (!package_name_valid(package))
                return 0;
        *ret_action = action;
        *ret_package = package;
        return 1;
}

static bool action_recorded(const char *action) {
        for (size_t i = 0; i < ELEMENTSOF(recorded_actions); i++)
                if (streq(action, recorded_actions[i]))
                        return true;
        return false;
}

/* dpkg names a package "name" or "name:arch"; the status file keys a native package by its bare name. */
static const char *version_lookup(const struct apt_shim_entry *versions, size_t n, const char *package) {
        size_t len = strcspn(package, ":");
        for (size_t i = 0; i < n; i++)
                if (streq(versions[i].key, package) ||
                    (strlen(versions[i].key) == len && strncmp(versions[i].key, package, len) == 0))
                        return versions[i].value;
        return NULL;
}

struct seen_set {
        char **keys;
        size_t n_keys, allocated;
};

static void seen_set_done(struct seen_set *s) {
        for (size_t i = 0; i < s->n_keys; i++)
                free(s->keys[i]);
        free(s->keys);
}

/* 1 when key was new (and is now in the set). dpkg names each package a handful of times: a list will do. */
static int seen_set_add(struct seen_set *s, const char *action, const char *package) {
        _cleanup_free_ char *key = NULL;
        if (asprintf(&key, "%s %s", action, package) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_keys; i++)
                if (streq(s->keys[i], key))
                        return 0;
        if (GROW(s->keys, s->allocated, s->n_keys + 1) < 0)
                return -ENOMEM;
        s->keys[s->n_keys++] = TAKE_PTR(key);
        return 1;
}

/* A logger waits at most this for a run that is taking the events (a rename and a read). */
#define EVENTS_LOCK_TIMEOUT_MS 5000

static int event_append(const char *run_dir, const char *action, const char *package, const char *version_before) {
        _cleanup_(json_decrefp) json_t *event =
                json_pack("{s:I, s:s, s:s, s:o}", "time", (json_int_t) time(NULL), "package", package, "action",
                          action, "version_before", json_string_or_null(version_before));
        _cleanup_free_ char *text = event ? json_dumps(event, JSON_COMPACT) : NULL;
        if (!text)
                return -ENOMEM;
        size_t len = strlen(text);
        text[len] = '\n'; /* json_dumps leaves room: the NUL is not written */
        /* Under the events lock: a run taking the events (rename, read) never leaves this append in a file it has
         * already read. */
        _cleanup_close_ int lock = file_lock(run_dir, PACKAGES_EVENTS_LOCK, EVENTS_LOCK_TIMEOUT_MS);
        if (lock < 0)
                return lock;
        return file_append(run_dir, PACKAGES_EVENTS_FILE, text, len + 1);
}

int dpkg_status_consume(FILE *in, const char *run_dir, const char *status_file) {
        struct apt_shim_entry *versions = NULL;
        size_t n_versions = 0;
        bool versions_read = false;
        _cleanup_(seen_set_done) struct seen_set seen = {};
        _cleanup_free_ char *line = NULL;
        size_t line_size = 0;
        int r = 0;

        while (getline(&line, &line_size, in) >= 0) {
                const char *action, *package;
                if (dpkg_status_line_parse(line, &action, &package) <= 0 || !action_recorded(action))
                        continue;
                r = seen_set_add(&seen, action, package);
                if (r < 0)
                        break;
                if (r == 0)
                        continue;

                if (!versions_read) {
                        versions_read = true;
                        int k = apt_shim_dpkg_versions(status_file, &versions, &n_versions);
                        if (k < 0)
                                log_warning_errno(k, "Failed to read dpkg's status file, no versions before: %m");
                }
                r = event_append(run_dir, action, package, version_lookup(versions, n_versions, package));
                if (r < 0)
                        break;
        }
        apt_shim_entries_free(versions, n_versions);
        if (r < 0)
                return log_warning_errno(r, "Failed to record dpkg's events in %s/%s: %m", run_dir,
                                         PACKAGES_EVENTS_FILE);
        return 0;
}

void package_changes_done(struct package_changes *c) {
        for (size_t i = 0; i < c->n_changes; i++) {
                free(c->changes[i].name);
                free(c->changes[i].version_before);
                free(c->changes[i].actions);
        }
        free(c->changes);
        *c = (struct package_changes){};
}

static struct package_change *change_find(const struct package_changes *c, const char *name) {
        for (size_t i = 0; c && i < c->n_changes; i++)
                if (streq(c->changes[i].name, name))
                        return &c->changes[i];
        return NULL;
}

/* Folds one event line into the list: the first version_before a package shows is the one before the run. */
static int changes_add_event(struct package_changes *c, size_t *allocated, const char *line) {
        _cleanup_(json_decrefp) json_t *e = json_loads(line, 0, NULL);
        const char *name = json_string_value(json_object_get(e, "package"));
        const char *action = json_string_value(json_object_get(e, "action"));
        const char *before = json_string_value(json_object_get(e, "version_before"));
        if (!name || !action)
                return 0; /* a torn last line of a logger still writing: it arrives whole next time */

        struct package_change *p = change_find(c, name);
        if (!p) {
                if (GROW(c->changes, *allocated, c->n_changes + 1) < 0)
                        return -ENOMEM;
                p = &c->changes[c->n_changes++];
                *p = (struct package_change){.name = strdup(name), .version_before = before ? strdup(before) : NULL,
                                             .actions = strdup(action)};
                return p->name && p->actions && (!before || p->version_before) ? 0 : -ENOMEM;
        }
        char *joined;
        if (asprintf(&joined, "%s %s", p->actions, action) < 0)
                return -ENOMEM;
        free(p->actions);
        p->actions = joined;
        return 0;
}

int package_changes_take(const char *run_dir, struct package_changes *ret) {
        static const char taken[] = PACKAGES_EVENTS_FILE ".taken";
        _cleanup_(package_changes_done) struct package_changes c = {};
        _cleanup_free_ char *text = NULL;
        _cleanup_close_ int dfd = open(run_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        size_t allocated = 0;
        int r;

        *ret = (struct package_changes){};
        if (dfd < 0)
                return -errno;
        /* Serialised with the status-logger's appends: every event is either in the file taken, whole, or
         * arrives in the next one; none is lost, none counted twice. */
        _cleanup_close_ int lock = file_lock(run_dir, PACKAGES_EVENTS_LOCK, EVENTS_LOCK_TIMEOUT_MS);
        if (lock < 0)
                return lock;
        if (renameat(dfd, PACKAGES_EVENTS_FILE, dfd, taken) < 0)
                return errno == ENOENT ? 0 : -errno;
        r = file_read(run_dir, taken, EVENTS_MAX_SIZE, &text, NULL);
        (void) unlinkat(dfd, taken, 0);
        lock = safe_close(lock);
        if (r < 0)
                return r;
        for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
                if ((r = changes_add_event(&c, &allocated, line)) < 0)
                        return r;
        *ret = c;
        c = (struct package_changes){};
        return 0;
}

/* "tailscale: /lib/systemd/system/tailscaled.service" (or "a, b: path" when several packages ship it): the first
 * package. "diversion by …" lines say who moved a file, not who ships it. */
static int search_output_parse(const char *out, char **ret) {
        for (const char *line = out; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
                if (strncmp(line, "diversion by ", 13) == 0)
                        continue;
                size_t len = strcspn(line, ",:\n");
                if (len == 0 || line[len] == '\n' || !line[len])
                        continue;
                const char *colon = memchr(line, ':', len);
                /* "name:arch: path" for a multi-arch package: the record wants its name */
                *ret = strndup(line, colon ? (size_t) (colon - line) : len);
                return *ret ? 0 : -ENOMEM;
        }
        return -ENOENT;
}

/* /usr-merge: /usr/lib/x and /lib/x are one file. dpkg knows whichever the package shipped (Debian 12 units are in
 * /lib/systemd/system), systemd's FragmentPath may name either. */
static const char *usr_unmerged(const char *path) {
        return strncmp(path, "/usr/lib/", 9) == 0 ? path + 4 : path;
}

int package_owning(const char *admindir, const char *path, char **ret) {
        _cleanup_free_ char *admin_arg = NULL, *out = NULL;
        const char *unmerged = usr_unmerged(path);
        int pipefd[2];
        pid_t pid;
        int r;

        if (admindir && asprintf(&admin_arg, "--admindir=%s", admindir) < 0)
                return -ENOMEM;
        /* dpkg-query is dpkg's interface to its database, and reads it without the lock a running dpkg holds */
        char *argv[8], **a = argv;
        *a++ = (char *) "dpkg-query";
        if (admin_arg)
                *a++ = admin_arg;
        *a++ = (char *) "--search";
        *a++ = (char *) "--";
        *a++ = (char *) path;
        if (unmerged != path)
                *a++ = (char *) unmerged;
        *a = NULL;
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, pipefd[1], STDOUT_FILENO);
        posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        r = -posix_spawnp(&pid, "dpkg-query", &actions, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&actions);
        close(pipefd[1]);
        if (r < 0) {
                close(pipefd[0]);
                return r;
        }

        size_t size = 0;
        _cleanup_fclose_ FILE *memf = open_memstream(&out, &size);
        char buf[4096];
        ssize_t n;
        while ((n = read(pipefd[0], buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
                if (n > 0 && memf)
                        fwrite(buf, 1, (size_t) n, memf);
        close(pipefd[0]);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
        if (!memf || fflush(memf) != 0)
                return -ENOMEM;
        return search_output_parse(out, ret);
}

json_t *packages_describe(const char *admindir, const struct package_changes *changes, const char *const *units,
                          const char *const *unit_paths, size_t n_units) {
        _cleanup_(json_decrefp) json_t *list = json_array();
        if (!list)
                return NULL;

        for (size_t i = 0; i < n_units; i++) {
                _cleanup_free_ char *name = NULL;
                if (!unit_paths[i] || !*unit_paths[i])
                        continue;
                int r = package_owning(admindir, unit_paths[i], &name);
                if (r < 0) {
                        log_debug_errno(r, "packages: no package ships %s: %m", unit_paths[i]);
                        continue;
                }
                const struct package_change *change = change_find(changes, name);
                if (!change)
                        continue; /* the unit restarted, but not because this dpkg run touched its package */

                json_t *entry = NULL;
                for (size_t k = 0; k < json_array_size(list) && !entry; k++)
                        if (streq(json_string_value(json_object_get(json_array_get(list, k), "package")), name))
                                entry = json_array_get(list, k);
                if (!entry) {
                        _cleanup_free_ char *version = NULL, *origin = NULL;
                        r = apt_shim_package_installed(name, &version, &origin);
                        if (r < 0 && r != -ENOENT)
                                log_debug_errno(r, "packages: %s: no version from apt: %m", name);
                        entry = json_pack("{s:s, s:o, s:o, s:o, s:[]}", "package", name, "version_before",
                                          json_string_or_null(change->version_before), "version",
                                          json_string_or_null(version), "origin", json_string_or_null(origin),
                                          "units");
                        if (!entry || json_array_append_new(list, entry) < 0)
                                return NULL;
                }
                if (json_array_append_new(json_object_get(entry, "units"), json_string(units[i])) < 0)
                        return NULL;
        }
        return TAKE_PTR(list);
}

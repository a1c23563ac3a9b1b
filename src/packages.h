/* SPDX-License-Identifier: GPL-2.0-or-later */
/* packages.h: the packages a dpkg run touched and what they own. dpkg's status-logger stream goes to the run dir as
 * it arrives; a unit file leads to its package through dpkg-query; versions and origin come from the apt shim. */
#pragma once

#include <jansson.h>
#include <stdio.h>

#define PACKAGES_EVENTS_FILE "dpkg-events.jsonl"
#define PACKAGES_EVENTS_LOCK "dpkg-events.lock"

/* One "processing: ACTION: PACKAGE" line of dpkg's --status-fd format: returns 1 and the two words (pointing into
 * line, which is modified), 0 for every other line. */
int dpkg_status_line_parse(char *line, const char **ret_action, const char **ret_package);

/* Reads dpkg's status stream from in until EOF. Each package action it names (install, upgrade, configure, remove,
 * purge, disappear) is appended at once to run_dir/PACKAGES_EVENTS_FILE as {"time","package","action",
 * "version_before"}: a dpkg trigger that runs mid-way sees what came before it. status_file (NULL: apt's
 * Dir::State::status) gives version_before; it is read at the first event, before dpkg has rewritten it. */
int dpkg_status_consume(FILE *in, const char *run_dir, const char *status_file);

struct package_change {
        char *name;
        char *version_before; /* NULL when the package was not installed before */
        char *actions;        /* "upgrade configure" */
};

struct package_changes {
        struct package_change *changes;
        size_t n_changes;
};

/* Takes the events recorded since the last take: renames the file first, so each dpkg run is attributed to one
 * run of ours and an event that arrives meanwhile goes to a new file. No events: 0 and an empty list. */
int package_changes_take(const char *run_dir, struct package_changes *ret);
void package_changes_done(struct package_changes *c);

/* The package that ships path (/usr-merged or not), as dpkg-query --search tells from dpkg's database in admindir.
 * admindir NULL: dpkg's own. -ENOENT when no package ships it. */
int package_owning(const char *admindir, const char *path, char **ret);

/* The record's "packages": for each unit in units (NULL-terminated names) whose file a package in changes ships:
 * {"package","version_before","version","origin","units"}. unit_paths are the units' FragmentPaths. */
json_t *packages_describe(const char *admindir, const struct package_changes *changes, const char *const *units,
                          const char *const *unit_paths, size_t n_units);

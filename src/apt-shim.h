/* SPDX-License-Identifier: GPL-2.0-or-later */
/* apt-shim.h: the only door to libapt-pkg (C++). A narrow extern "C" API; no C++ type crosses it. */
#pragma once

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One leaf of the configuration tree below a scope: key relative to the scope ("Mode",
 * "Table-Unit::inet::filter"; a list item ends in "::"), and its value. */
struct apt_shim_entry {
        char *key;
        char *value;
};

/* Reads apt's configuration the way apt-config does (APT_CONFIG, apt.conf.d, apt.conf), or only file when it is
 * not NULL, and returns the leaves below scope ("Reconcile-After-Upgrade"). On a syntax error returns -EINVAL and,
 * in *ret_error, apt's message. */
int apt_shim_config_read(const char *file, const char *scope, struct apt_shim_entry **ret_entries, size_t *ret_n,
                         char **ret_error);

void apt_shim_entries_free(struct apt_shim_entry *entries, size_t n);

/* The version of every package dpkg's status file (status_file, or apt's Dir::State::status when NULL) lists as
 * present, as entries: key the package name ("name:arch" for a foreign architecture), value its version. */
int apt_shim_dpkg_versions(const char *status_file, struct apt_shim_entry **ret_entries, size_t *ret_n);

/* The installed version of package name, from apt's cache, and the archive it came from ("Tailscale stable":
 * Origin and Suite of its Release file; *ret_origin NULL when only dpkg knows it, e.g. after dpkg -i).
 * -ENOENT when it is not installed. */
int apt_shim_package_installed(const char *name, char **ret_version, char **ret_origin);

#ifdef __cplusplus
}
#endif

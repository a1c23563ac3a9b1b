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

#ifdef __cplusplus
}
#endif

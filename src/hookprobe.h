/* SPDX-License-Identifier: GPL-2.0-or-later */
/* hookprobe.h: what the running kernel does to a device-bound chain when its device goes and comes back, asked
 * of the kernel itself in a scratch network namespace (the way nftables' own feature tests ask, instead of
 * guessing from a version that distributions patch), once a boot: the answer is kept in the run directory with
 * the boot id. */
#pragma once

#include "devhooks.h"

#define HOOKPROBE_FILE "kernel-hooks.json"

/* The boot's answer from the run directory, or the probe's (then kept). Never fails: an answer it could not get
 * (no namespaces in a sandbox, no TUN device) is {.known = false}, and -errno says why. */
int hookprobe_get(const char *run_dir, bool keep, struct hook_behaviour *ret);

/* The probe itself, in a child in a new network namespace, bounded in time. */
int hookprobe_run(struct hook_behaviour *ret);

json_t *hook_behaviour_json(const struct hook_behaviour *k);

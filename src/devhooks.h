/* SPDX-License-Identifier: GPL-2.0-or-later */
/* devhooks.h: device-bound base chains (netdev, inet ingress) and flowtables that a kernel before 6.16 detached
 * from a device that went away, or deleted with it (6.1 deletes a chain whose only device goes; 6.12 keeps it
 * with none; neither puts a device that comes back into the list). Found by comparing the live ruleset with the
 * snapshot; repaired in one generation-checked transaction: the device added back where the kernel takes that,
 * else the chain re-created exactly, with its rules in order. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "links.h"
#include "ruleset.h"

struct snapshot;
struct nl_batch;

/* What the running kernel does when a hooked device goes and comes back (hookprobe.c measures it). */
struct hook_behaviour {
        bool known;            /* false: not measured (the probe failed); the lists are compared as they are */
        bool chain_kept;       /* a chain whose only device goes stays, with no device */
        bool reattaches;       /* a device created again under its name is hooked again (6.16 and later) */
        bool chain_add_device; /* a NEWCHAIN for an existing chain adds devices to it (6.3 and later) */
        bool flowtables;       /* the kernel has flowtables at all */
};

struct hook_finding {
        const struct device_hook *was; /* the snapshot's */
        const struct device_hook *now; /* NULL: the kernel deleted the chain */
        const char **missing;          /* was's devices that now lacks (pointing into was); those that exist
                                        * again come first */
        size_t n_missing, n_back;
};

/* Every device-bound chain or flowtable of before that lost a device the kernel removed (the device is gone, or
 * has another index now); a device someone took out of a chain whose device is still the same one is not a
 * finding, nor is anything of a table that is gone. On a kernel that re-attaches, nothing. */
int hooks_diagnose(const struct ruleset *now, const struct link_table *links, const struct snapshot *before,
                   const struct hook_behaviour *kernel, struct hook_finding **ret, size_t *ret_n);
void hook_findings_free(struct hook_finding *h, size_t n);

json_t *hook_finding_json(const struct hook_finding *h);
/* "ingress" or "egress". */
const char *device_hook_name(const struct device_hook *h);

/* NEWCHAIN for h's chain (its hook, priority, type, policy and flags) on devices: with NLM_F_CREATE|NLM_F_EXCL it
 * creates the chain, with 0 it adds the devices to the chain that exists (6.3 and later take that). */
int devhooks_put_chain(struct nl_batch *b, const struct device_hook *h, const char *const *devices, size_t n,
                       uint16_t flags);
/* NEWFLOWTABLE for h's flowtable on devices: the same (every kernel with flowtables takes the update). */
int devhooks_put_flowtable(struct nl_batch *b, const struct device_hook *h, const char *const *devices, size_t n,
                           uint16_t flags);

/* ---- repair ---- */

enum hook_fix_kind {
        HOOK_FIX_ADD,      /* NEWCHAIN/NEWFLOWTABLE update: the devices that exist again are added */
        HOOK_FIX_RECREATE, /* the deleted chain created again with the snapshot's rules, in order */
        HOOK_FIX_REPLACE,  /* a kernel that cannot add a device to a chain (6.1): the chain deleted and created
                            * again with its devices and its live rules, in the same transaction */
        HOOK_FIX_LEAVE,    /* nothing sent: why says why */
};

enum hook_fix_state {
        HOOK_PLANNED,
        HOOK_FIXED,   /* sent and read back as planned */
        HOOK_FAILED,  /* refused by the kernel, or read back otherwise */
};

struct hook_fix {
        const struct hook_finding *finding;
        enum hook_fix_kind kind;
        enum hook_fix_state state;
        const char *why;            /* HOOK_FIX_LEAVE: a constant string */
        const char **devices;       /* what the chain or flowtable is on afterwards */
        size_t n_devices;
        const struct nl_blob *rules; /* HOOK_FIX_RECREATE, HOOK_FIX_REPLACE: the rules it is created with */
        size_t n_rules;
        struct ifindex_set *sets;   /* and the anonymous sets they look up, made anew with them */
        size_t n_sets;
        uint32_t seq_first, seq_last; /* its messages in the transaction */
        char *error;
};

struct hook_plan {
        struct hook_fix *fixes;
        size_t n_fixes, n_todo;
        uint32_t genid;
        bool kernel_known; /* the probe answered: no guessing at commit time */
};

/* Decides how each finding (pointing into rs) is repaired on this kernel. skip(userdata, family, table): a table to
 * leave alone (the watcher's rate limit), may be NULL. */
int devhooks_plan(const struct ruleset *rs, const struct hook_finding *found, size_t n_found,
                  const struct hook_behaviour *kernel, bool (*skip)(void *userdata, uint8_t family, const char *table),
                  void *userdata, struct hook_plan *ret);
void hook_plan_done(struct hook_plan *p);
/* One transaction for every fix to do, checked against plan->genid. -ERESTART: the ruleset changed since, nothing
 * applied (read again). A fix the kernel refuses is marked failed with its words, and the others are sent again
 * without it. */
int devhooks_commit(struct hook_plan *plan);
/* Each fix sent must read back: the chain or flowtable on its devices, a re-created chain with the same rules in
 * the same order (handles and counters aside). Marks each fixed or failed. */
void devhooks_verify(struct hook_plan *plan, const struct ruleset *after);
json_t *hook_fix_json(const struct hook_fix *fix);
const char *hook_fix_kind_to_string(enum hook_fix_kind k);

/* SPDX-License-Identifier: GPL-2.0-or-later */
/* diagnose.h: compares what is now against the snapshot and the link history. Pure: no I/O, no logging. */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "devhooks.h"
#include "links.h"
#include "owners.h"
#include "ruleset.h"
#include "state.h"

/* What one run observed. */
struct observation {
        struct link_table links;
        struct ruleset ruleset;
        struct owner_table owners;
        struct unit_invocations units; /* empty without systemd */
        struct hook_behaviour kernel;  /* read only when the snapshot has device-bound hooks */
};

void observation_done(struct observation *o);

struct stale_ref {
        const struct iface_ref *ref; /* points into the observation */
        char was[IFNAMSIZ];          /* the name the index used to resolve to; empty if unknown */
        int64_t now;                 /* that name's current index; -1 if unknown or gone */
        char now_held_by[IFNAMSIZ];  /* the index names another interface now (it matches the wrong device); empty
                                      * when no interface has it */
};

enum iface_change {
        IFACE_RECREATED,
        IFACE_VANISHED,
};

struct iface_finding {
        char name[IFNAMSIZ];
        enum iface_change change;
        uint32_t old_ifindex;
        uint32_t new_ifindex; /* 0 when vanished */
        char kind[32];
        size_t n_stale; /* stale references that still hold old_ifindex */
        const struct tun_owner *owner; /* current TUN owner (recreated), or the snapshot's (vanished); may be NULL */
};

struct findings {
        struct stale_ref *stale;
        size_t n_stale;
        struct iface_finding *ifaces;
        size_t n_ifaces, allocated_ifaces;
        const char **restarted_units; /* InvocationID changed (or first started) since the snapshot */
        size_t n_restarted_units;
        size_t n_refs, n_name_refs; /* what was checked */
        const struct nft_path *unreadable; /* rules that could not be read (not checked); points into now */
        size_t n_unreadable;
        struct hook_behaviour kernel; /* as observed (known: false when not asked) */
        struct hook_finding *hooks; /* device-bound chains and flowtables that lost a device (point into now and
                                     * before) */
        size_t n_hooks;
        bool have_snapshot;
};

/* before and history may be NULL. The findings point into now and before: keep them alive. */
/* Stale references and lost device hooks: what makes check say "stale". */
static inline size_t findings_stale(const struct findings *f) {
        return f->n_stale + f->n_hooks;
}

int diagnose(const struct observation *now, const struct snapshot *before, const struct link_history *history,
             struct findings *ret);
void findings_done(struct findings *f);

/* Tables and chains in before that after no longer has: what a reload that flushes the whole ruleset takes with
 * it (tailscale's ts-* chains). Returns a JSON array of {"family","table","chain"?}; empty when nothing is lost. */
json_t *ruleset_lost(const struct ruleset *before, const struct ruleset *after);

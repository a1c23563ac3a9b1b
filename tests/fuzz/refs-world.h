/* SPDX-License-Identifier: GPL-2.0-or-later */
/* refs-world.h: a past and a present made up for the indexes a ruleset's rules hold, so that diagnose and the
 * rebind planner have work on any ruleset: fuzz-nftables and the unit tests that replay what it found. */
#pragma once

#include <stdio.h>
#include <stdlib.h>

#include "links.h"
#include "ruleset.h"
#include "state.h"

static inline int refs_world_link_cmp(const void *a, const void *b) {
        uint32_t x = ((const struct link *) a)->ifindex, y = ((const struct link *) b)->ifindex;
        return (x > y) - (x < y);
}

/* A past and a present for the indexes the rules hold: index N was "ifN"; now "ifN" is back at N + 1000 when N
 * is even and gone when odd, and when N is a multiple of 5 another interface holds N. So every path of
 * diagnose and of the planner (rebind, vanished, held by another) is reachable from the rules alone. */
static inline void refs_world(const struct ruleset *rs, struct link_history *past, struct link_table *present) {
        size_t n = rs->n_refs;
        past->entries = calloc(n + 1, sizeof(struct history_entry));
        present->links = calloc(2 * n + 1, sizeof(struct link));
        if (!past->entries || !present->links)
                abort();
        past->allocated = n + 1;
        for (size_t i = 0; i < n; i++) {
                uint32_t idx = rs->refs[i].ifindex;
                struct history_entry *e = &past->entries[past->n_entries++];
                *e = (struct history_entry){.ifindex = idx, .first_seen = 1, .last_seen = 2};
                snprintf(e->name, sizeof(e->name), "if%u", idx);
                if (idx % 2 == 0 && idx < UINT32_MAX - 1000) {
                        struct link *l = &present->links[present->n_links++];
                        *l = (struct link){.ifindex = idx + 1000, .up = true};
                        snprintf(l->name, sizeof(l->name), "if%u", idx);
                }
                if (idx % 5 == 0 && idx != 0) {
                        struct link *l = &present->links[present->n_links++];
                        *l = (struct link){.ifindex = idx};
                        snprintf(l->name, sizeof(l->name), "other%u", idx);
                }
        }
        /* one interface per index, as the kernel has it */
        qsort(present->links, present->n_links, sizeof(struct link), refs_world_link_cmp);
        size_t kept = 0;
        for (size_t i = 0; i < present->n_links; i++)
                if (kept == 0 || present->links[kept - 1].ifindex != present->links[i].ifindex)
                        present->links[kept++] = present->links[i];
        present->n_links = kept;
        present->allocated = 2 * n + 1;
}


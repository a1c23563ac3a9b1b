/* SPDX-License-Identifier: GPL-2.0-or-later */
/* state.h: what survives between runs. The snapshot (run dir, taken before dpkg runs) and the link history
 * (state dir: every name ↔ index pair seen, so a later run can name a stale index without a snapshot). */
#pragma once

#include <stdint.h>

#include "devhooks.h"
#include "links.h"
#include "owners.h"
#include "ruleset.h"
#include "units.h"

#define SNAPSHOT_FILE "snapshot.json"
#define HISTORY_FILE "links.json"
#define LOCK_FILE "lock"

/* A by-index reference as the snapshot saw it: where it is, and the interface its index named then. */
struct snapshot_ref {
        uint8_t family;
        char *table;
        char *chain, *set; /* one of them */
        uint64_t handle;
        enum ref_key key;
        uint32_t ifindex;
        char resolves_to[IFNAMSIZ]; /* empty when the index named no interface then */
};

struct snapshot {
        uint64_t taken; /* seconds since the epoch */
        struct link_table links;
        struct owner_table owners;
        struct unit_invocations units; /* empty when systemd was not reachable */
        size_t units_allocated;
        struct snapshot_ref *refs;
        size_t n_refs, allocated_refs;
        struct device_hook *hooks; /* device-bound chains (with their rules) and flowtables */
        size_t n_hooks, allocated_hooks;
};

/* The name the snapshot saw ref's index resolve to, for the same rule (or set) and the same index; NULL when the
 * snapshot has no such reference. */
const char *snapshot_resolved(const struct snapshot *s, const struct iface_ref *ref);

/* lost: device-bound hooks that lost a device since the last snapshot and are not put back yet; they are kept as
 * that snapshot had them (with the devices the kernel took out), so that the loss is still seen by the next run. */
int snapshot_write(const char *run_dir, uint64_t now, const struct link_table *links, const struct ruleset *rs,
                   const struct owner_table *owners, const struct unit_invocations *units,
                   const struct hook_finding *lost, size_t n_lost);
/* -ENOENT when no snapshot was taken. */
int snapshot_read(const char *run_dir, struct snapshot *ret);
void snapshot_done(struct snapshot *s);

struct history_entry {
        char name[IFNAMSIZ];
        uint32_t ifindex;
        uint64_t first_seen, last_seen;
};

struct link_history {
        struct history_entry *entries;
        size_t n_entries, allocated;
        bool dirty;
};

/* A missing history is an empty one. */
int history_read(const char *state_dir, struct link_history *ret);
/* Records the current links. Marks the history dirty only when something worth a write changed. */
int history_note_links(struct link_history *h, const struct link_table *links, uint64_t now);
/* The name the index belonged to most recently, or NULL. */
const char *history_name_for_index(const struct link_history *h, uint32_t ifindex);
int history_write(const char *state_dir, struct link_history *h);
void link_history_done(struct link_history *h);

/* Parsers for the files above, for tests. */
int snapshot_parse(const char *text, struct snapshot *ret);
int history_parse(const char *text, struct link_history *ret);

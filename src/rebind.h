/* SPDX-License-Identifier: GPL-2.0-or-later */
/* rebind.h: exact repair in place. Each stale reference whose interface exists again gets that interface's
 * current index, and a stale leftover beside its fresh twin is deleted, in ONE nf_tables transaction built from
 * the bytes the kernel sent (nothing re-encoded but the index) and carrying the generation id of the dump it was
 * computed from: if the ruleset changed since, the kernel refuses it whole and the caller reads again.
 * Afterwards, a read of the ruleset proves it: each rewritten rule or element is byte for byte the original but
 * for the index, and every other rule of the touched chains is where it was. No systemd, no nft command text. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diagnose.h"

enum fix_kind {
        FIX_REBIND, /* the index becomes the interface's current one */
        FIX_PRUNE,  /* a stale leftover whose fresh twin exists: deleted */
        FIX_KEEP,   /* left as it is; why says why */
};

const char *fix_kind_to_string(enum fix_kind k);

/* What happens to one stale reference (same order as findings.stale). */
struct ref_fix {
        enum fix_kind kind;
        uint32_t to_ifindex;  /* FIX_REBIND */
        bool twin;            /* a fresh copy of its rule or element exists (FIX_PRUNE, or FIX_KEEP when pruning
                               * is off) */
        const char *why;      /* FIX_KEEP: why not (a constant string) */
};

struct rule_change;
struct elem_change;
struct nl_batch;

struct rebind_plan {
        struct ref_fix *fixes; /* one per findings.stale */
        size_t n_fixes;
        size_t n_rebind, n_prune, n_keep;
        uint32_t genid; /* of the ruleset it was computed from */
        struct rule_change *rules;
        size_t n_rules, allocated_rules;
        struct elem_change *elems;
        size_t n_elems, allocated_elems;
};

/* Decides each stale reference of f (which points into rs). prune: delete leftovers that have a fresh twin
 * (Reconcile-After-Upgrade::Prune-Stale-Twins); when false they are kept. Reads the other anonymous sets of the
 * rules it changes into rs; -EAGAIN when the ruleset moved on since rs was read (read again). */
int rebind_plan(struct ruleset *rs, const struct findings *f, bool prune, struct rebind_plan *ret);
void rebind_plan_done(struct rebind_plan *p);

/* The transaction rebind_commit() sends, built but not sent: BEGIN (with plan->genid), the changes, END. ret_seqs
 * (n_rules + n_elems entries) gets each change's sequence number, to name the one the kernel refuses. */
int rebind_batch(const struct ruleset *rs, const struct rebind_plan *plan, struct nl_batch *ret, uint32_t *ret_seqs);

/* Sends the plan as one transaction, checked against plan->genid. -ERESTART: the ruleset changed since it was
 * read, nothing was applied. Another negative errno: the kernel refused it (nothing was applied either: a
 * transaction is all or nothing); ret_error then says which change, when known. 0 when nothing needed sending. */
int rebind_commit(const struct ruleset *rs, const struct rebind_plan *plan, char **ret_error);

/* Compares the ruleset read after the commit with the one the plan came from: every touched chain and set must
 * read back as planned, byte for byte but for the indexes (counters aside). 0 when exact; -EBADE and a
 * description of the first difference otherwise; -EAGAIN when the ruleset changed again while the read-back's
 * anonymous sets were fetched (nothing proven either way). */
int rebind_verify(const struct ruleset *before, const struct rebind_plan *plan, struct ruleset *after,
                  char **ret_difference);

/* Whether two NEWRULE messages are the same rule: expressions (state such as counters blanked), user data. An
 * anonymous set a rule looks up is compared by its contents when it is among that rule's sets, by its name
 * otherwise. Table, chain and handle aside. */
bool rule_msgs_same(const struct nl_blob *a, const struct ifindex_set *a_sets, size_t a_n_sets,
                    const struct nl_blob *b, const struct ifindex_set *b_sets, size_t b_n_sets);
/* Appends a NEWRULE message (as the kernel sent it) to its chain in batch b again, every attribute but the
 * handle and position; each anonymous set it looks up that is among sets is sent anew before it, numbered from
 * *set_id on. */
int rule_put_again(struct nl_batch *b, const struct nl_blob *rule, const struct ifindex_set *sets, size_t n_sets,
                   uint32_t *set_id);
/* Whether a rule names a set nft made for it alone (an anonymous set goes with its rule) that is not among sets,
 * or that rule_put_again() would not make anew. */
bool rule_msg_sets_missing(const struct nl_blob *msg, const struct ifindex_set *sets, size_t n_sets);

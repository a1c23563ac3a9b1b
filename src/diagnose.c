/* SPDX-License-Identifier: GPL-2.0-or-later */
/* diagnose.c: stale references (an index no interface holds now) and the interfaces behind them. */
#include <string.h>

#include "diagnose.h"
#include "macro.h"
#include "names.h"

void observation_done(struct observation *o) {
        link_table_done(&o->links);
        ruleset_done(&o->ruleset);
        owner_table_done(&o->owners);
        unit_invocations_done(&o->units);
}

static const struct unit_invocation *invocation_find(const struct unit_invocations *u, const char *name) {
        for (size_t i = 0; i < u->n_units; i++)
                if (streq(u->units[i].name, name))
                        return &u->units[i];
        return NULL;
}

/* A unit restarted since the snapshot runs with another InvocationID, or runs where it did not. */
static int restarted_units(struct findings *f, const struct observation *now, const struct snapshot *before) {
        if (!before || before->units.n_units == 0 || now->units.n_units == 0)
                return 0;
        f->restarted_units = calloc(now->units.n_units, sizeof(char *));
        if (!f->restarted_units)
                return -ENOMEM;
        for (size_t i = 0; i < now->units.n_units; i++) {
                const struct unit_invocation *u = &now->units.units[i];
                const struct unit_invocation *old = invocation_find(&before->units, u->name);
                if (u->invocation_id[0] && (!old || !streq(old->invocation_id, u->invocation_id)))
                        f->restarted_units[f->n_restarted_units++] = u->name;
        }
        return 0;
}

static struct iface_finding *iface_find(struct findings *f, const char *name, uint32_t old_ifindex) {
        for (size_t i = 0; i < f->n_ifaces; i++)
                if (streq(f->ifaces[i].name, name) && f->ifaces[i].old_ifindex == old_ifindex)
                        return &f->ifaces[i];
        return NULL;
}

/* name had old_ifindex (per snapshot or history); classify it against the links of now. */
static int iface_note(struct findings *f, const struct observation *now, const struct snapshot *before,
                      const char *name, uint32_t old_ifindex, const char *old_kind) {
        if (iface_find(f, name, old_ifindex))
                return 0;

        const struct link *cur = links_by_name(&now->links, name);
        if (cur && cur->ifindex == old_ifindex)
                return 0;

        if (GROW(f->ifaces, f->allocated_ifaces, f->n_ifaces + 1) < 0)
                return -ENOMEM;
        struct iface_finding *i = &f->ifaces[f->n_ifaces++];
        *i = (struct iface_finding){
                .change = cur ? IFACE_RECREATED : IFACE_VANISHED,
                .old_ifindex = old_ifindex,
                .new_ifindex = cur ? cur->ifindex : 0,
                .owner = cur ? owners_find(&now->owners, name) : (before ? owners_find(&before->owners, name) : NULL),
        };
        snprintf(i->name, sizeof(i->name), "%s", name);
        snprintf(i->kind, sizeof(i->kind), "%s", cur ? cur->kind : (old_kind ? old_kind : ""));
        return 0;
}

/* An interface re-created twice since the snapshot (e.g. a dpkg -i after an apt run) shows up once from the
 * snapshot (its index then) and once from the history (the index the stale rules hold): keep the one that
 * explains stale references. */
static void drop_superseded(struct findings *f) {
        size_t kept = 0;
        for (size_t i = 0; i < f->n_ifaces; i++) {
                bool superseded = false;
                for (size_t j = 0; j < f->n_ifaces && !superseded && f->ifaces[i].n_stale == 0; j++)
                        superseded = j != i && f->ifaces[j].n_stale > 0 && streq(f->ifaces[j].name, f->ifaces[i].name);
                if (!superseded)
                        f->ifaces[kept++] = f->ifaces[i];
        }
        f->n_ifaces = kept;
}

/* Report order: by table, then rules by chain and handle, then set elements by set. */
static int stale_cmp(const void *a, const void *b) {
        const struct iface_ref *x = ((const struct stale_ref *) a)->ref, *y = ((const struct stale_ref *) b)->ref;
        int c;
        if (x->family != y->family)
                return (int) x->family - (int) y->family;
        if ((c = strcmp(x->table, y->table)))
                return c;
        if (!x->chain != !y->chain)
                return x->chain ? -1 : 1;
        if (x->chain) {
                if ((c = strcmp(x->chain, y->chain)))
                        return c;
                return (x->handle > y->handle) - (x->handle < y->handle);
        }
        if ((c = strcmp(x->set, y->set)))
                return c;
        return (x->ifindex > y->ifindex) - (x->ifindex < y->ifindex);
}

int diagnose(const struct observation *now, const struct snapshot *before, const struct link_history *history,
             struct findings *ret) {
        _cleanup_(findings_done) struct findings f = {
                .n_refs = now->ruleset.n_refs,
                .n_name_refs = now->ruleset.n_name_refs,
                .unreadable = now->ruleset.unreadable,
                .n_unreadable = now->ruleset.n_unreadable,
                .have_snapshot = before != NULL,
                .kernel = now->kernel,
        };
        int r;

        if (before)
                for (size_t i = 0; i < before->links.n_links; i++) {
                        const struct link *l = &before->links.links[i];
                        if ((r = iface_note(&f, now, before, l->name, l->ifindex, l->kind)) < 0)
                                return r;
                }

        f.stale = calloc(now->ruleset.n_refs ? now->ruleset.n_refs : 1, sizeof(struct stale_ref));
        if (!f.stale) {
                return -ENOMEM;
        }

        for (size_t k = 0; k < now->ruleset.n_refs; k++) {
                const struct iface_ref *ref = &now->ruleset.refs[k];
                const struct link *holder = links_by_index(&now->links, ref->ifindex);
                /* An index some interface holds is stale only when the snapshot saw this very reference name
                 * another one: the index was taken over, and the rule matches the wrong device. (The history alone
                 * cannot tell that from a rule loaded for the new holder.) */
                const char *then = holder && before ? snapshot_resolved(before, ref) : NULL;
                if (holder && (!then || streq(then, holder->name)))
                        continue;

                struct stale_ref *s = &f.stale[f.n_stale++];
                *s = (struct stale_ref){.ref = ref, .now = -1};
                if (holder)
                        snprintf(s->now_held_by, sizeof(s->now_held_by), "%s", holder->name);

                /* The snapshot was taken right before the change; the history may be older but covers the case
                 * where nobody took one. */
                const struct link *old = !holder && before ? links_by_index(&before->links, ref->ifindex) : NULL;
                const char *was = then                 ? then
                                  : old                ? old->name
                                  : history && !holder ? history_name_for_index(history, ref->ifindex)
                                                       : NULL;
                if (!was)
                        continue;
                snprintf(s->was, sizeof(s->was), "%s", was);
                const struct link *cur = links_by_name(&now->links, was);
                if (cur)
                        s->now = cur->ifindex;
                if ((r = iface_note(&f, now, before, was, ref->ifindex, old ? old->kind : NULL)) < 0)
                        return r;
        }

        if ((r = restarted_units(&f, now, before)) < 0 ||
            (r = hooks_diagnose(&now->ruleset, &now->links, before, &now->kernel, &f.hooks, &f.n_hooks)) < 0)
                return r;

        if (f.n_stale > 1)
                qsort(f.stale, f.n_stale, sizeof(struct stale_ref), stale_cmp);
        for (size_t k = 0; k < f.n_stale; k++)
                if (f.stale[k].was[0]) {
                        struct iface_finding *i = iface_find(&f, f.stale[k].was, f.stale[k].ref->ifindex);
                        if (i)
                                i->n_stale++;
                }
        drop_superseded(&f);

        *ret = f;
        f = (struct findings){};
        return 0;
}

void findings_done(struct findings *f) {
        free(f->restarted_units);
        free(f->stale);
        free(f->ifaces);
        hook_findings_free(f->hooks, f->n_hooks);
        *f = (struct findings){};
}

static bool path_in(const struct nft_path *paths, size_t n, const struct nft_path *p) {
        for (size_t i = 0; i < n; i++)
                if (paths[i].family == p->family && streq(paths[i].table, p->table) && streq_ptr(paths[i].chain, p->chain))
                        return true;
        return false;
}

json_t *ruleset_lost(const struct ruleset *before, const struct ruleset *after) {
        json_t *lost = json_array();
        for (size_t i = 0; lost && i < before->n_tables; i++)
                if (!path_in(after->tables, after->n_tables, &before->tables[i]) &&
                    json_array_append_new(lost, json_pack("{s:s, s:o}", "family",
                                                          nfproto_to_string(before->tables[i].family), "table",
                                                          json_name(before->tables[i].table))) < 0)
                        return json_decref(lost), NULL;
        for (size_t i = 0; lost && i < before->n_chains; i++) {
                const struct nft_path *c = &before->chains[i];
                struct nft_path table = {.family = c->family, .table = c->table};
                /* a chain of a lost table is already said */
                if (path_in(after->chains, after->n_chains, c) || !path_in(after->tables, after->n_tables, &table))
                        continue;
                if (json_array_append_new(lost, json_pack("{s:s, s:o, s:o}", "family", nfproto_to_string(c->family),
                                                          "table", json_name(c->table), "chain",
                                                          json_name(c->chain))) < 0)
                        return json_decref(lost), NULL;
        }
        return lost;
}

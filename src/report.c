/* SPDX-License-Identifier: GPL-2.0-or-later */
/* report.c: renders findings. Both renderings walk the same arrays in the same order. */
#include <string.h>

#include "hookprobe.h"
#include "json-util.h"
#include "macro.h"
#include "names.h"
#include "report.h"

static const char *iface_change_to_string(enum iface_change c) {
        return c == IFACE_RECREATED ? "recreated" : "vanished";
}

static json_t *stale_to_json(const struct stale_ref *s) {
        const struct iface_ref *ref = s->ref;
        json_t *now = s->now >= 0 ? json_integer(s->now) : json_null();

        if (ref->chain)
                return json_pack("{s:s, s:o, s:o, s:I, s:s, s:I, s:b, s:o, s:o, s:o}", "family",
                                 nfproto_to_string(ref->family), "table", json_name(ref->table), "chain",
                                 json_name(ref->chain), "handle", (json_int_t) ref->handle, "key",
                                 ref_key_to_string(ref->key), "ifindex", (json_int_t) ref->ifindex, "negated",
                                 ref->negated, "was", json_name(s->was[0] ? s->was : NULL), "now", now, "now_held_by",
                                 json_name(s->now_held_by[0] ? s->now_held_by : NULL));
        return json_pack("{s:s, s:o, s:o, s:s, s:I, s:b, s:o, s:o, s:o}", "family", nfproto_to_string(ref->family),
                         "table", json_name(ref->table), "set", json_name(ref->set), "key", ref_key_to_string(ref->key),
                         "ifindex", (json_int_t) ref->ifindex, "negated", ref->negated, "was",
                         json_name(s->was[0] ? s->was : NULL), "now", now, "now_held_by",
                         json_name(s->now_held_by[0] ? s->now_held_by : NULL));
}

static json_t *iface_to_json(const struct iface_finding *i) {
        json_t *owner = i->owner ? json_pack("{s:i, s:o, s:s?}", "pid", (int) i->owner->pid, "command",
                                             json_name(i->owner->comm), "unit", i->owner->unit)
                                 : json_null();
        return json_pack("{s:o, s:s, s:o, s:I, s:o, s:I, s:o}", "name", json_name(i->name), "change",
                         iface_change_to_string(i->change), "kind", json_name(i->kind), "old_ifindex",
                         (json_int_t) i->old_ifindex, "new_ifindex",
                         i->new_ifindex ? json_integer(i->new_ifindex) : json_null(), "stale_references",
                         (json_int_t) i->n_stale, "owner", owner);
}

json_t *report_unreadable_json(const struct findings *f) {
        json_t *a = json_array();
        for (size_t k = 0; a && k < f->n_unreadable; k++) {
                const struct nft_path *u = &f->unreadable[k];
                if (json_array_append_new(a, json_pack("{s:s, s:o, s:o, s:I}", "family", nfproto_to_string(u->family),
                                                       "table", json_name(u->table), "chain", json_name(u->chain), "handle",
                                                       (json_int_t) u->handles[0])) < 0)
                        return json_decref(a), NULL;
        }
        return a;
}

json_t *report_json(const struct findings *f) {
        _cleanup_(json_decrefp) json_t *stale = json_array(), *ifaces = json_array(), *restarted = json_array();
        if (!stale || !ifaces || !restarted)
                return NULL;

        for (size_t k = 0; k < f->n_restarted_units; k++)
                if (json_array_append_new(restarted, json_string(f->restarted_units[k])) < 0)
                        return NULL;

        for (size_t k = 0; k < f->n_stale; k++)
                if (json_array_append_new(stale, stale_to_json(&f->stale[k])) < 0)
                        return NULL;
        for (size_t k = 0; k < f->n_hooks; k++)
                if (json_array_append_new(stale, hook_finding_json(&f->hooks[k])) < 0)
                        return NULL;
        for (size_t k = 0; k < f->n_ifaces; k++)
                if (json_array_append_new(ifaces, iface_to_json(&f->ifaces[k])) < 0)
                        return NULL;

        /* "o" hands the arrays over, also when packing fails. */
        return json_pack("{s:o, s:o, s:o, s:I, s:I, s:b, s:o, s:o}", "stale", TAKE_PTR(stale), "interfaces",
                         TAKE_PTR(ifaces), "restarted_units", TAKE_PTR(restarted), "references_checked",
                         (json_int_t) f->n_refs, "by_name_references", (json_int_t) f->n_name_refs, "snapshot",
                         f->have_snapshot, "unreadable", report_unreadable_json(f), "kernel_hooks",
                         hook_behaviour_json(&f->kernel));
}

static void print_ref_place(const struct iface_ref *ref, FILE *out) {
        if (ref->chain)
                fprintf(out, "table %s %s, chain %s, rule handle %llu", nfproto_to_string(ref->family),
                        NAME(ref->table), NAME(ref->chain), (unsigned long long) ref->handle);
        else
                fprintf(out, "table %s %s, set %s", nfproto_to_string(ref->family), NAME(ref->table), NAME(ref->set));
}

static void print_owner(const struct tun_owner *o, FILE *out) {
        fprintf(out, "owner %s (pid %d%s%s)", o->comm[0] ? NAME(o->comm) : "?", (int) o->pid, o->unit ? ", unit " : "",
                o->unit ? o->unit : "");
}

/* "1 rule could not be read: table inet filter chain forward handle 5": what was not checked. */
void report_unreadable(const struct findings *f, FILE *out) {
        if (f->n_unreadable == 0)
                return;
        fprintf(out, "%zu rule%s could not be read (an expression this version does not know), so %s not checked:",
                f->n_unreadable, f->n_unreadable == 1 ? "" : "s", f->n_unreadable == 1 ? "it is" : "they are");
        for (size_t k = 0; k < f->n_unreadable && k < 10; k++)
                fprintf(out, "%s table %s %s chain %s handle %llu", k ? "," : "",
                        nfproto_to_string(f->unreadable[k].family), NAME(f->unreadable[k].table),
                        NAME(f->unreadable[k].chain),
                        (unsigned long long) f->unreadable[k].handles[0]);
        fprintf(out, "%s\n", f->n_unreadable > 10 ? ", …" : "");
}

static void print_devices(const char *const *devices, size_t n, FILE *out) {
        for (size_t i = 0; i < n; i++)
                fprintf(out, "%s%s", i ? ", " : "", NAME(devices[i]));
}

/* "table netdev edge, chain in (ingress): deleted by the kernel with ts0 (which exists again)" */
static void report_hooks(const struct findings *f, FILE *out) {
        if (f->n_hooks == 0)
                return;
        fprintf(out, "%zu device-bound hook%s lost %s device (%s):\n", f->n_hooks, f->n_hooks == 1 ? "" : "s",
                f->n_hooks == 1 ? "a" : "their",
                !f->kernel.known      ? "the kernel did not re-attach them"
                : f->kernel.chain_kept ? "this kernel keeps a chain whose device goes, but does not hook a device "
                                         "again when it comes back"
                                       : "this kernel deletes a chain whose only device goes, and does not hook a "
                                         "device again when it comes back");
        for (size_t k = 0; k < f->n_hooks; k++) {
                const struct hook_finding *h = &f->hooks[k];
                const struct device_hook *was = h->was;
                fprintf(out, "  table %s %s, %s %s (%s): ", nfproto_to_string(was->family), NAME(was->table),
                        was->flowtable ? "flowtable" : "chain", NAME(was->name), device_hook_name(was));
                fputs(h->now ? "lost " : "deleted by the kernel with ", out);
                print_devices(h->missing, h->n_missing, out);
                if (h->n_back == h->n_missing)
                        fputs(h->n_missing == 1 ? " (which exists again)" : " (which exist again)", out);
                else if (h->n_back == 0)
                        fputs(h->n_missing == 1 ? " (which is gone)" : " (which are gone)", out);
                else {
                        fputs(" (back: ", out);
                        print_devices(h->missing, h->n_back, out);
                        fputc(')', out);
                }
                if (h->now && h->now->n_devices) {
                        fputs("; still on ", out);
                        print_devices((const char *const *) h->now->devices, h->now->n_devices, out);
                } else if (h->now)
                        fputs("; on no device: it sees no packet", out);
                fputc('\n', out);
        }
        fputs("Run reconcile-after-upgrade to hook them to the devices again (a deleted chain is re-created with its "
              "rules).\n", out);
}

int report_human(const struct findings *f, FILE *out) {
        if (f->n_restarted_units > 0) {
                fputs("Restarted since the snapshot:", out);
                for (size_t k = 0; k < f->n_restarted_units; k++)
                        fprintf(out, " %s", f->restarted_units[k]);
                fputc('\n', out);
        }
        for (size_t k = 0; k < f->n_ifaces; k++) {
                const struct iface_finding *i = &f->ifaces[k];
                if (i->change == IFACE_RECREATED)
                        fprintf(out, "%s was re-created: index %u -> %u", NAME(i->name), i->old_ifindex,
                                i->new_ifindex);
                else
                        fprintf(out, "%s (index %u) is gone", NAME(i->name), i->old_ifindex);
                if (i->owner) {
                        fputs(", ", out);
                        print_owner(i->owner, out);
                }
                fputc('\n', out);
        }

        report_unreadable(f, out);
        if (findings_stale(f) == 0) {
                fprintf(out, "No stale interface references (%zu by index checked; %zu by name, which never go "
                             "stale).\n",
                        f->n_refs, f->n_name_refs);
                return 0;
        }
        report_hooks(f, out);
        if (f->n_stale == 0)
                return 0;

        fprintf(out, "%zu stale interface reference%s (the rule holds an index its interface does not have any more):\n",
                f->n_stale, f->n_stale == 1 ? "" : "s");
        for (size_t k = 0; k < f->n_stale; k++) {
                const struct stale_ref *s = &f->stale[k];
                fputs("  ", out);
                print_ref_place(s->ref, out);
                fprintf(out, ": %s%s %u", ref_key_to_string(s->ref->key), s->ref->negated ? " !=" : "",
                        s->ref->ifindex);
                if (!s->was[0])
                        fputs(" (unknown interface)", out);
                else if (s->now >= 0)
                        fprintf(out, " (was %s, now index %lld)", NAME(s->was), (long long) s->now);
                else
                        fprintf(out, " (was %s, which is gone)", NAME(s->was));
                if (s->now_held_by[0])
                        fprintf(out, "; index %u is %s's now: the rule matches the wrong interface", s->ref->ifindex,
                                NAME(s->now_held_by));
                fputc('\n', out);
        }

        /* One line per table: that is the unit of reloading. */
        fputs("Reload the rules that created each table, so that names resolve to the current indexes:\n", out);
        for (size_t k = 0; k < f->n_stale; k++) {
                const struct iface_ref *ref = f->stale[k].ref;
                bool seen = false;
                for (size_t j = 0; j < k && !seen; j++)
                        seen = f->stale[j].ref->family == ref->family && streq(f->stale[j].ref->table, ref->table);
                if (!seen)
                        fprintf(out, "  table %s %s: restart the unit or rerun the script that loads it "
                                     "(e.g. systemctl restart nftables.service)\n",
                                nfproto_to_string(ref->family), NAME(ref->table));
        }
        fputs("Rules written with iifname/oifname match by name and survive re-created interfaces.\n", out);
        return 0;
}

/* SPDX-License-Identifier: GPL-2.0-or-later */
/* reconcile.c: findings → per table, the unit (plan.c) and whether reloading it is proven safe → reloads. */
#include <string.h>
#include <systemd/sd-bus.h>

#include "log.h"
#include "macro.h"
#include "reconcile.h"
#include "units.h"

static const char *const table_repair_table[] = {
        [TABLE_RELOAD] = "reload",
        [TABLE_REBIND] = "rebind",
};

const char *table_repair_to_string(enum table_repair r) {
        return r < ELEMENTSOF(table_repair_table) ? table_repair_table[r] : "?";
}

static const char *const reload_state_table[] = {
        [RELOAD_NONE] = "none",     [RELOAD_DONE] = "reloaded",       [RELOAD_FAILED] = "failed",
        [RELOAD_WOULD] = "would-reload", [RELOAD_SAME_UNIT] = "same-unit",
};

const char *reload_state_to_string(enum reload_state s) {
        return s < ELEMENTSOF(reload_state_table) ? reload_state_table[s] : "?";
}

static const char *const rebind_state_table[] = {
        [REBIND_NONE] = "none",
        [REBIND_DONE] = "rebound",
        [REBIND_WOULD] = "would-rebind",
        [REBIND_FAILED] = "failed",
};

const char *rebind_state_to_string(enum rebind_state s) {
        return s < ELEMENTSOF(rebind_state_table) ? rebind_state_table[s] : "?";
}

struct unit_facts_list {
        struct unit_facts *facts;
        size_t n;
};

static void unit_facts_list_done(struct unit_facts_list *l) {
        for (size_t i = 0; i < l->n; i++)
                unit_facts_done(&l->facts[i]);
        free(l->facts);
}

static int gather_units(sd_bus *bus, struct unit_facts_list *ret) {
        _cleanup_(unit_invocations_done) struct unit_invocations inv = {};
        int r = units_list_invocations(bus, NULL, &inv);
        if (r < 0)
                return r;
        ret->facts = calloc(inv.n_units ? inv.n_units : 1, sizeof(struct unit_facts));
        if (!ret->facts)
                return -ENOMEM;
        for (size_t i = 0; i < inv.n_units; i++) {
                r = units_get_facts(bus, inv.units[i].name, &ret->facts[ret->n]);
                if (r < 0) {
                        log_debug_errno(r, "reconcile: %s: no unit facts: %m", inv.units[i].name);
                        continue;
                }
                ret->n++;
        }
        return 0;
}

/* The daemon units behind a table's stale references (the owners of the interfaces they were), and those
 * interfaces' names: what a reload must re-create. */
static int table_context(const struct findings *f, uint8_t family, const char *table, const char ***ret_daemons,
                         const char ***ret_names, const char **ret_missing) {
        _cleanup_free_ const char **daemons = calloc(f->n_ifaces + 1, sizeof(char *));
        _cleanup_free_ const char **names = calloc(f->n_stale + 1, sizeof(char *));
        size_t n = 0, m = 0;
        if (!daemons || !names)
                return -ENOMEM;
        for (size_t i = 0; i < f->n_ifaces; i++) {
                const struct iface_finding *iface = &f->ifaces[i];
                if (!iface->owner || !iface->owner->unit)
                        continue;
                bool used = false;
                for (size_t k = 0; k < f->n_stale && !used; k++) {
                        const struct iface_ref *ref = f->stale[k].ref;
                        used = ref->family == family && streq(ref->table, table) &&
                               streq(f->stale[k].was, iface->name);
                }
                if (used)
                        daemons[n++] = iface->owner->unit;
        }
        *ret_missing = NULL;
        for (size_t k = 0; k < f->n_stale; k++) {
                const struct stale_ref *s = &f->stale[k];
                if (s->was[0] && s->now < 0 && s->ref->family == family && streq(s->ref->table, table))
                        *ret_missing = s->was;
                bool dup = !s->was[0] || s->ref->family != family || !streq(s->ref->table, table);
                for (size_t j = 0; j < m && !dup; j++)
                        dup = streq(names[j], s->was);
                if (!dup)
                        names[m++] = s->was;
        }
        *ret_daemons = TAKE_PTR(daemons);
        *ret_names = TAKE_PTR(names);
        return 0;
}

_printf_(2, 3) static void why_set(struct action *a, const char *format, ...) {
        va_list ap;
        free(a->why);
        va_start(ap, format);
        if (vasprintf(&a->why, format, ap) < 0)
                a->why = NULL;
        va_end(ap);
}

/* Whether this table's unit may be reloaded, and if not, why the table is rebound instead. */
static void decide(const struct reconcile_options *opt, const struct unit_info *u, const char *const *names,
                   const char *missing, struct action *a) {
        const struct config *c = opt->config;
        a->repair = TABLE_REBIND;
        if (c->repair == REPAIR_REBIND)
                return why_set(a, "Reconcile-After-Upgrade::Repair is \"rebind\"");
        if (opt->why_no_units)
                return why_set(a, "%s", opt->why_no_units);
        if (!a->plan.unit)
                return why_set(a, "no unit is known to load it");
        if (a->plan.never_touch)
                return why_set(a, "%s is in Reconcile-After-Upgrade::Never-Touch", a->plan.unit);
        if (!u)
                return why_set(a, "%s is not loaded", a->plan.unit);
        /* nft refuses iif "X" while X does not exist: such a reload can only fail */
        if (missing)
                return why_set(a, "not reloading %s: %s does not exist now", a->plan.unit, missing);

        _cleanup_(unit_scope_done) struct unit_scope scope = {};
        _cleanup_free_ char *proof = NULL;
        bool safe = plan_unit_scope(u, NULL, &scope) >= 0 &&
                    plan_reload_is_safe(&scope, a->plan.family, a->plan.table, names, opt->ruleset, &proof);
        if (safe || (c->repair == REPAIR_RELOAD && c->allow_flush)) {
                a->repair = TABLE_RELOAD;
                if (safe)
                        return why_set(a, "%s", proof ? proof : "proven safe");
                return why_set(a, "Allow-Flush is on, although %s", proof ? proof : "it is not proven safe");
        }
        why_set(a, "not reloading %s: %s", a->plan.unit, proof ? proof : "its configuration could not be read");
}

int reconcile_plan(sd_bus *bus, const struct reconcile_options *opt, const struct findings *f,
                   struct reconcile_result *ret) {
        _cleanup_(unit_facts_list_done) struct unit_facts_list units = {};
        struct reconcile_result res = {};
        int r;

        if (bus && (r = gather_units(bus, &units)) < 0)
                return r;
        _cleanup_free_ struct unit_info *infos = calloc(units.n ? units.n : 1, sizeof(struct unit_info));
        res.actions = calloc(f->n_stale ? f->n_stale : 1, sizeof(struct action));
        if (!infos || !res.actions) {
                free(res.actions);
                return -ENOMEM;
        }
        for (size_t i = 0; i < units.n; i++)
                infos[i] = units.facts[i].info;

        for (size_t k = 0; k < f->n_stale; k++) {
                const struct iface_ref *ref = f->stale[k].ref;
                if (reconcile_find(&res, ref->family, ref->table))
                        continue;

                _cleanup_free_ const char **daemons = NULL, **names = NULL;
                const char *missing;
                if ((r = table_context(f, ref->family, ref->table, &daemons, &names, &missing)) < 0) {
                        reconcile_result_done(&res);
                        return r;
                }
                struct plan_request req = {.family = nfproto_to_string(ref->family), .table = ref->table,
                                           .daemon_units = daemons};
                log_debug("reconcile: table %s %s: %zu units loaded, daemon %s", req.family, req.table, units.n,
                          daemons[0] ? daemons[0] : "unknown");
                struct action *a = &res.actions[res.n_actions];
                if ((r = plan_table(opt->config, infos, units.n, &req, NULL, &a->plan)) < 0) {
                        reconcile_result_done(&res);
                        return r;
                }
                res.n_actions++;

                const struct unit_info *u = NULL;
                for (size_t i = 0; a->plan.unit && i < units.n; i++)
                        if (streq(infos[i].name, a->plan.unit))
                                u = &infos[i];
                decide(opt, u, names, missing, a);
                if (!a->why) {
                        reconcile_result_done(&res);
                        return -ENOMEM;
                }
        }

        *ret = res;
        return 0;
}

void reconcile_reload(sd_bus *bus, const struct reconcile_options *opt, struct reconcile_result *res) {
        for (size_t i = 0; i < res->n_actions; i++) {
                struct action *a = &res->actions[i];
                if (a->repair != TABLE_RELOAD)
                        continue;
                if (opt->dry_run || opt->config->mode == MODE_REPORT) {
                        a->reload = RELOAD_WOULD;
                        continue;
                }
                /* Each unit at most once per run, whatever the number of its tables. */
                bool same = false;
                for (size_t j = 0; j < i && !same; j++)
                        same = res->actions[j].reload == RELOAD_DONE &&
                               streq_ptr(res->actions[j].plan.unit, a->plan.unit);
                if (same) {
                        a->reload = RELOAD_SAME_UNIT;
                        continue;
                }
                if (act_policy_allows(opt->policy_rc_d, a->plan.unit, "restart") == -EPERM) {
                        a->repair = TABLE_REBIND;
                        why_set(a, "policy-rc.d forbids restarting %s", a->plan.unit);
                        continue;
                }
                const struct unit_info *u = NULL;
                (void) u;
                int r = act_reload_unit(bus, a->plan.unit, true, (uint64_t) opt->config->job_timeout_ms * 1000,
                                        &a->result);
                a->reload = r < 0 ? RELOAD_FAILED : RELOAD_DONE;
                a->error = r;
                /* a reload that fails leaves the table to the rebind */
                if (r < 0)
                        a->repair = TABLE_REBIND;
        }
}

struct action *reconcile_find(struct reconcile_result *res, uint8_t family, const char *table) {
        const char *f = nfproto_to_string(family);
        for (size_t i = 0; i < res->n_actions; i++)
                if (streq(res->actions[i].plan.family, f) && streq(res->actions[i].plan.table, table))
                        return &res->actions[i];
        return NULL;
}

void reconcile_result_done(struct reconcile_result *r) {
        for (size_t i = 0; i < r->n_actions; i++) {
                plan_item_done(&r->actions[i].plan);
                free(r->actions[i].why);
                free(r->actions[i].rebind_error);
        }
        free(r->actions);
        *r = (struct reconcile_result){};
}

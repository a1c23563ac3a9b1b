/* SPDX-License-Identifier: GPL-2.0-or-later */
/* reconcile.c: findings → plan (per table) → act (per unit, once). */
#include <string.h>
#include <systemd/sd-bus.h>

#include "log.h"
#include "macro.h"
#include "reconcile.h"
#include "units.h"

static const char *const action_state_table[] = {
        [ACTION_RELOADED] = "reloaded",         [ACTION_FAILED] = "failed",
        [ACTION_WOULD_RELOAD] = "would-reload", [ACTION_NEVER_TOUCH] = "never-touch",
        [ACTION_POLICY_FORBIDS] = "policy-rc.d-forbids", [ACTION_NO_UNIT] = "no-unit",
        [ACTION_SAME_UNIT] = "same-unit",
};

const char *action_state_to_string(enum action_state s) {
        return s < ELEMENTSOF(action_state_table) ? action_state_table[s] : "?";
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

/* The daemon units behind a table's stale references: the owners of the interfaces they were. */
static int table_daemons(const struct findings *f, uint8_t family, const char *table, const char ***ret) {
        const char **daemons = calloc(f->n_ifaces + 1, sizeof(char *));
        size_t n = 0;
        if (!daemons)
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
        *ret = daemons;
        return 0;
}

/* A configuration that begins with "flush ruleset" deletes every table, also those other daemons created for
 * themselves (tailscale's ts-* chains) and that it does not define again: say so before anything is touched. */
static int flush_warning(const struct unit_info *u, const struct ruleset *rs, char **ret) {
        _cleanup_(unit_scope_done) struct unit_scope scope = {};
        char *buf = NULL;
        size_t len = 0, n = 0;
        int r;

        *ret = NULL;
        if (!rs || (r = plan_unit_scope(u, NULL, &scope)) < 0 || !scope.flushes_ruleset)
                return 0; /* unreadable configuration: no warning rather than a wrong one */
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return -ENOMEM;
        fprintf(f, "reloading %s flushes the whole ruleset and would delete", u->name);
        for (size_t i = 0; i < rs->n_tables; i++) {
                const char *family = nfproto_to_string(rs->tables[i].family);
                if (unit_scope_defines(&scope, family, rs->tables[i].table))
                        continue;
                fprintf(f, "%s table %s %s", n++ ? "," : "", family, rs->tables[i].table);
        }
        fputs(", which its configuration does not create again", f);
        if (fclose(f) != 0)
                return -ENOMEM;
        if (n == 0) {
                free(buf);
                return 0;
        }
        *ret = buf;
        return 0;
}

int reconcile_plan_and_act(sd_bus *bus, const struct reconcile_options *opt, const struct findings *f,
                           struct reconcile_result *ret) {
        _cleanup_(unit_facts_list_done) struct unit_facts_list units = {};
        struct reconcile_result res = {};
        int r;

        r = gather_units(bus, &units);
        if (r < 0)
                return log_error_errno(r, "Failed to list systemd units: %m");
        _cleanup_free_ struct unit_info *infos = calloc(units.n ? units.n : 1, sizeof(struct unit_info));
        if (!infos)
                return log_oom();
        for (size_t i = 0; i < units.n; i++)
                infos[i] = units.facts[i].info;

        res.actions = calloc(f->n_stale ? f->n_stale : 1, sizeof(struct action));
        if (!res.actions)
                return log_oom();

        for (size_t k = 0; k < f->n_stale; k++) {
                const struct iface_ref *ref = f->stale[k].ref;
                bool seen = false;
                for (size_t j = 0; j < k && !seen; j++)
                        seen = f->stale[j].ref->family == ref->family && streq(f->stale[j].ref->table, ref->table);
                if (seen)
                        continue;

                _cleanup_free_ const char **daemons = NULL;
                if ((r = table_daemons(f, ref->family, ref->table, &daemons)) < 0) {
                        reconcile_result_done(&res);
                        return log_oom();
                }
                struct plan_request req = {.family = nfproto_to_string(ref->family), .table = ref->table,
                                           .daemon_units = daemons};
                struct action *a = &res.actions[res.n_actions];
                if ((r = plan_table(opt->config, infos, units.n, &req, NULL, &a->plan)) < 0) {
                        reconcile_result_done(&res);
                        return log_oom();
                }
                res.n_actions++;

                const struct unit_info *u = NULL;
                for (size_t i = 0; a->plan.unit && i < units.n; i++)
                        if (streq(infos[i].name, a->plan.unit))
                                u = &infos[i];

                if (!a->plan.unit)
                        a->state = ACTION_NO_UNIT;
                else if (a->plan.never_touch)
                        a->state = ACTION_NEVER_TOUCH;
                else if (opt->dry_run || opt->config->mode == MODE_REPORT) {
                        a->state = ACTION_WOULD_RELOAD;
                        if (u && (r = flush_warning(u, opt->ruleset, &a->warning)) < 0) {
                                reconcile_result_done(&res);
                                return log_oom();
                        }
                }
                else {
                        /* Each unit at most once per run, whatever the number of its tables. */
                        for (size_t j = 0; j + 1 < res.n_actions; j++)
                                if (streq_ptr(res.actions[j].plan.unit, a->plan.unit))
                                        a->state = ACTION_SAME_UNIT, seen = true;
                        if (seen)
                                continue;
                        if (act_policy_allows(opt->policy_rc_d, a->plan.unit, "restart") == -EPERM) {
                                a->state = ACTION_POLICY_FORBIDS;
                                continue;
                        }
                        r = act_reload_unit(bus, a->plan.unit, u ? u->can_reload : false,
                                            (uint64_t) opt->config->job_timeout_ms * 1000, &a->result);
                        a->state = r < 0 ? ACTION_FAILED : ACTION_RELOADED;
                        a->error = r;
                }
        }

        *ret = res;
        return 0;
}

void reconcile_result_done(struct reconcile_result *r) {
        for (size_t i = 0; i < r->n_actions; i++) {
                plan_item_done(&r->actions[i].plan);
                free(r->actions[i].warning);
        }
        free(r->actions);
        *r = (struct reconcile_result){};
}

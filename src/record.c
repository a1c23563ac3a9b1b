/* SPDX-License-Identifier: GPL-2.0-or-later */
/* record.c: one record per run that found something, rendered for the journal, the history and the summary. */
#include <string.h>
#include <systemd/sd-journal.h>
#include <time.h>

#include "fileio.h"
#include "json-util.h"
#include "log.h"
#include "names.h"
#include "record.h"
#include "report.h"


static const char *const outcome_table[] = {
        [OUTCOME_FIXED] = "fixed",
        [OUTCOME_STALE] = "stale",
        [OUTCOME_FAILED] = "failed",
        [OUTCOME_DRY_RUN] = "dry-run",
        [OUTCOME_DEGRADED] = "degraded",
};

const char *record_outcome_to_string(enum record_outcome o) {
        return o < ELEMENTSOF(outcome_table) ? outcome_table[o] : "?";
}

/* The first RECORD_MAX_LISTED stale references: a record stays small with thousands of them (the counts say how
 * many there were). */
static json_t *stale_list(const struct findings *f) {
        json_t *a = json_array();
        for (size_t k = 0; a && k < f->n_stale && k < RECORD_MAX_LISTED; k++) {
                const struct iface_ref *ref = f->stale[k].ref;
                const char *was = f->stale[k].was, *held_by = f->stale[k].now_held_by;
                json_t *e = json_pack("{s:s, s:o, s:o, s:o, s:I, s:s, s:I, s:o, s:o}", "family",
                                      nfproto_to_string(ref->family), "table", json_name(ref->table), "chain",
                                      json_name(ref->chain), "set", json_name(ref->set), "handle",
                                      (json_int_t) ref->handle, "key", ref_key_to_string(ref->key), "ifindex",
                                      (json_int_t) ref->ifindex, "was", json_name(was[0] ? was : NULL), "now_held_by",
                                      json_name(held_by[0] ? held_by : NULL));
                if (json_array_append_new(a, e) < 0) {
                        json_decref(a);
                        return NULL;
                }
        }
        return a;
}

/* The state a table ended in, in one word: what was done to it, or what would have been. */
static const char *action_state(const struct action *a) {
        if (a->rebind == REBIND_FAILED)
                return "failed";
        if (a->rebind == REBIND_DONE)
                return "rebound";
        if (a->reload == RELOAD_DONE || a->reload == RELOAD_SAME_UNIT)
                return reload_state_to_string(a->reload);
        if (a->reload == RELOAD_FAILED)
                return "failed";
        if (a->reload == RELOAD_WOULD)
                return "would-reload";
        if (a->rebind == REBIND_WOULD)
                return "would-rebind";
        return "stale";
}

json_t *record_action_json(const struct action *a) {
        json_t *j = json_pack("{s:s, s:o, s:o, s:o, s:s, s:o, s:s}", "family", a->plan.family, "table",
                              json_name(a->plan.table), "unit", json_name(a->plan.unit), "unit_why",
                              json_name(a->plan.why), "repair", table_repair_to_string(a->repair), "why",
                              json_name(a->why), "state", action_state(a));
        if (!j)
                return NULL;
        if (a->reload != RELOAD_NONE &&
            json_object_set_new(j, "reload", json_pack("{s:s, s:s?, s:f}", "state", reload_state_to_string(a->reload),
                                                       "job_result", a->result.job_result[0] ? a->result.job_result : NULL,
                                                       "seconds", (double) a->result.duration_usec / 1e6)) < 0)
                return json_decref(j), NULL;
        if ((a->rebind != REBIND_NONE || a->kept) &&
            json_object_set_new(j, "rebind", json_pack("{s:s, s:I, s:I, s:I, s:b, s:o}", "state",
                                                       rebind_state_to_string(a->rebind), "rebound",
                                                       (json_int_t) a->rebound, "pruned", (json_int_t) a->pruned,
                                                       "kept", (json_int_t) a->kept, "exact", a->exact, "error",
                                                       json_name(a->rebind_error))) < 0)
                return json_decref(j), NULL;
        return j;
}

/* At most RECORD_MAX_LISTED items of a list (a new reference), or the list itself. */
static json_t *bounded(json_t *list) {
        if (!list || json_array_size(list) <= RECORD_MAX_LISTED)
                return json_incref(list);
        json_t *b = json_array();
        for (size_t i = 0; b && i < RECORD_MAX_LISTED; i++)
                if (json_array_append(b, json_array_get(list, i)) < 0)
                        return json_decref(b), NULL;
        return b;
}

json_t *record_build(const struct record_input *in) {
        const struct findings *found = in->found, *left = in->left;
        const struct reconcile_result *res = in->res;
        _cleanup_(json_decrefp) json_t *ifaces = json_array(), *actions = json_array(), *restarted = json_array();
        if (!ifaces || !actions || !restarted)
                return NULL;

        for (size_t k = 0; k < found->n_restarted_units; k++)
                if (json_array_append_new(restarted, json_string(found->restarted_units[k])) < 0)
                        return NULL;
        for (size_t k = 0; k < found->n_ifaces; k++) {
                const struct iface_finding *i = &found->ifaces[k];
                if (json_array_append_new(ifaces, json_pack("{s:o, s:s, s:I, s:o, s:s?}", "name", json_name(i->name), "change",
                                                            i->change == IFACE_RECREATED ? "recreated" : "vanished",
                                                            "old_ifindex", (json_int_t) i->old_ifindex, "new_ifindex",
                                                            i->new_ifindex ? json_integer(i->new_ifindex) : json_null(),
                                                            "unit", i->owner ? i->owner->unit : NULL)) < 0)
                        return NULL;
        }
        _cleanup_(json_decrefp) json_t *unreadable = found->n_unreadable ? report_unreadable_json(found) : NULL;
        for (size_t k = 0; res && k < res->n_actions; k++) {
                json_t *j = record_action_json(&res->actions[k]);
                if (!j || json_array_append_new(actions, j) < 0)
                        return NULL;
        }

        _cleanup_(json_decrefp) json_t *leftovers = bounded(in->leftovers), *not_repaired = bounded(in->not_repaired);
        json_t *record = json_pack("{s:I, s:s?, s:s, s:o, s:o, s:o, s:I, s:o, s:o, s:I, s:o?, s:O?, s:O?, s:O?, s:O?, s:O?, s:f, "
                         "s:f, s:b, s:f}",
                         "time", (json_int_t) in->time, "via", in->via, "outcome",
                         record_outcome_to_string(in->outcome), "packages",
                         in->packages ? json_incref(in->packages) : json_array(), "restarted_units",
                         TAKE_PTR(restarted), "interfaces", TAKE_PTR(ifaces), "stale_found",
                         (json_int_t) findings_stale(found), "stale", stale_list(found), "actions", TAKE_PTR(actions),
                         "stale_left", (json_int_t) findings_stale(left ? left : found), "stale_left_list",
                         left && left->n_stale ? stale_list(left) : NULL, "collateral_loss", in->lost, "leftovers",
                         leftovers, "not_repaired", not_repaired, "waited", in->waited, "unreadable",
                         unreadable, "seconds", in->seconds,
                         "repair_seconds", in->repair_seconds, "lists_truncated",
                         found->n_stale > RECORD_MAX_LISTED || (left && left->n_stale > RECORD_MAX_LISTED) ||
                                 json_array_size(in->leftovers) > RECORD_MAX_LISTED ||
                                 json_array_size(in->not_repaired) > RECORD_MAX_LISTED,
                         "finished",
                         in->finished);
        if (record && in->cause && json_object_set(record, "cause", in->cause) < 0)
                return json_decref(record), NULL;
        if (record && in->hooks && json_object_set(record, "hooks", in->hooks) < 0)
                return json_decref(record), NULL;
        return record;
}

/* "a b c" from an array of strings, or of objects' field. */
static char *join(json_t *array, const char *field, const char *field2) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        size_t i;
        json_t *v;
        if (!f)
                return NULL;
        json_array_foreach(array, i, v) {
                const char *s = field ? json_string_value(json_object_get(v, field)) : json_string_value(v);
                const char *s2 = field2 ? json_string_value(json_object_get(v, field2)) : NULL;
                fprintf(f, "%s%s%s%s", i ? " " : "", s ? s : "-", s2 ? ":" : "", s2 ? s2 : "");
        }
        fclose(f);
        return buf;
}

/* "nftables-local.service:reloaded": the units the run reloaded (or tried to). */
static char *reloaded_units(json_t *actions) {
        char *buf = NULL;
        size_t len = 0, i, n = 0;
        json_t *a;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return NULL;
        json_array_foreach(actions, i, a) {
                json_t *reload = json_object_get(a, "reload");
                if (!reload)
                        continue;
                fprintf(f, "%s%s:%s", n++ ? " " : "", json_string_value(json_object_get(a, "unit")),
                        json_string_value(json_object_get(reload, "state")));
        }
        fclose(f);
        return buf;
}

/* "inet filter: reloaded nftables-local.service, ip nat: rebound 2": each table's repair. */
static char *repairs_line(json_t *actions) {
        char *buf = NULL;
        size_t len = 0, i;
        json_t *a;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return NULL;
        json_array_foreach(actions, i, a) {
                const char *state = json_string_value(json_object_get(a, "state"));
                json_t *rebind = json_object_get(a, "rebind"), *reload = json_object_get(a, "reload");
                fprintf(f, "%stable %s %s: ", i ? ", " : "", json_string_value(json_object_get(a, "family")),
                        json_string_value(json_object_get(a, "table")));
                if (reload && streq_ptr(json_string_value(json_object_get(reload, "state")), "failed"))
                        fprintf(f, "reloading %s FAILED (%s), ", json_string_value(json_object_get(a, "unit")),
                                json_string_value(json_object_get(reload, "job_result")) ?: "error");
                if (streq_ptr(state, "reloaded") || streq_ptr(state, "same-unit"))
                        fprintf(f, "reloaded %s", json_string_value(json_object_get(a, "unit")));
                else if (streq_ptr(state, "would-reload"))
                        fprintf(f, "would reload %s", json_string_value(json_object_get(a, "unit")));
                else if (rebind && (streq_ptr(state, "rebound") || streq_ptr(state, "would-rebind"))) {
                        json_int_t rebound = json_integer_value(json_object_get(rebind, "rebound"));
                        json_int_t pruned = json_integer_value(json_object_get(rebind, "pruned"));
                        fprintf(f, "%s %lld in place", streq_ptr(state, "rebound") ? "rebound" : "would rebind",
                                (long long) rebound);
                        if (pruned)
                                fprintf(f, ", %s %lld leftover(s)", streq_ptr(state, "rebound") ? "deleted" : "would delete",
                                        (long long) pruned);
                } else if (streq_ptr(state, "failed"))
                        fprintf(f, "rebind FAILED (%s)", json_string_value(json_object_get(rebind, "error")) ?: "error");
                else
                        fprintf(f, "not repaired (%s)", json_string_value(json_object_get(a, "why")) ?: "?");
        }
        fclose(f);
        return buf;
}

/* "tailscale 1.0->1.1 (Tailscale stable)": what the record's packages went from and to. */
static char *packages_line(json_t *packages) {
        char *buf = NULL;
        size_t len = 0, i;
        json_t *p;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return NULL;
        json_array_foreach(packages, i, p) {
                const char *origin = json_string_value(json_object_get(p, "origin"));
                fprintf(f, "%s%s %s->%s", i ? ", " : "", json_string_value(json_object_get(p, "package")),
                        json_string_value(json_object_get(p, "version_before")) ?: "(new)",
                        json_string_value(json_object_get(p, "version")) ?: "(gone)");
                if (origin)
                        fprintf(f, " (%s)", origin);
        }
        fclose(f);
        return buf;
}

static void record_journal(json_t *rec) {
        const char *outcome = json_string_value(json_object_get(rec, "outcome"));
        json_int_t found = json_integer_value(json_object_get(rec, "stale_found"));
        json_int_t left = json_integer_value(json_object_get(rec, "stale_left"));
        _cleanup_free_ char *units = reloaded_units(json_object_get(rec, "actions"));
        _cleanup_free_ char *repairs = repairs_line(json_object_get(rec, "actions"));
        _cleanup_free_ char *restarted = join(json_object_get(rec, "restarted_units"), NULL, NULL);
        _cleanup_free_ char *ifaces = NULL;
        {
                char *buf = NULL;
                size_t len = 0;
                FILE *f = open_memstream(&buf, &len);
                size_t i;
                json_t *v;
                if (f) {
                        json_array_foreach(json_object_get(rec, "interfaces"), i, v) {
                                json_t *n = json_object_get(v, "new_ifindex");
                                fprintf(f, "%s%s %lld->%s%lld", i ? " " : "",
                                        json_string_value(json_object_get(v, "name")),
                                        (long long) json_integer_value(json_object_get(v, "old_ifindex")),
                                        json_is_null(n) ? "gone" : "", json_is_null(n) ? 0LL : (long long) json_integer_value(n));
                        }
                        fclose(f);
                        ifaces = buf;
                }
        }
        _cleanup_free_ char *packages = packages_line(json_object_get(rec, "packages"));
        _cleanup_free_ char *json = json_dumps(rec, JSON_COMPACT);
        int priority = streq_ptr(outcome, "failed") ? LOG_ERR : streq_ptr(outcome, "fixed") ? LOG_INFO : LOG_WARNING;

        int r = sd_journal_send("MESSAGE=reconcile-after-upgrade: %s: %lld stale interface reference(s) found, %lld "
                                "left; %s",
                                outcome, (long long) found, (long long) left, repairs && *repairs ? repairs : "no repair",
                                "MESSAGE_ID=" RECORD_MESSAGE_ID, "PRIORITY=%i", priority, "RAU_OUTCOME=%s", outcome,
                                "RAU_STALE_FOUND=%lld", (long long) found, "RAU_STALE_LEFT=%lld", (long long) left,
                                "RAU_UNITS_RELOADED=%s", units ? units : "", "RAU_REPAIRS=%s", repairs ? repairs : "",
                                "RAU_PACKAGES=%s",
                                packages ? packages : "", "RAU_RESTARTED_UNITS=%s",
                                restarted ? restarted : "", "RAU_INTERFACES=%s", ifaces ? ifaces : "",
                                "RAU_RECORD=%s", json ? json : "", NULL);
        if (r < 0)
                log_debug_errno(r, "record: journal: %m");
}

int record_store(const char *state_dir, json_t *record, uint64_t history_max_bytes, const char **ret_failed_file) {
        int r;

        record_journal(record);

        _cleanup_free_ char *line = json_dumps(record, JSON_COMPACT);
        if (!line)
                return -ENOMEM;
        size_t len = strlen(line);
        line[len] = '\n'; /* json_dumps leaves room for the NUL we overwrite: the write below is len + 1 bytes */
        /* Beyond its size, the history becomes history.jsonl.1 (the one before goes) and starts again. */
        r = file_rotate(state_dir, RECORD_HISTORY_FILE, RECORD_HISTORY_FILE ".1", history_max_bytes, len + 1);
        if (r < 0) {
                *ret_failed_file = RECORD_HISTORY_FILE;
                return r;
        }
        r = file_append(state_dir, RECORD_HISTORY_FILE, line, len + 1);
        if (r < 0) {
                *ret_failed_file = RECORD_HISTORY_FILE;
                return r;
        }
        r = file_replace(state_dir, RECORD_SUMMARY_FILE, line, len + 1);
        if (r < 0) {
                *ret_failed_file = RECORD_SUMMARY_FILE;
                return r;
        }
        return 0;
}

static void show_record_line(const char *line, bool json, FILE *out) {
        if (json) {
                fprintf(out, "%s\n", line);
                return;
        }
        _cleanup_(json_decrefp) json_t *rec = json_loads(line, 0, NULL);
        if (!rec) {
                fprintf(out, "(unreadable line)\n");
                return;
        }
        time_t t = (time_t) json_integer_value(json_object_get(rec, "time"));
        char when[32];
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime(&t));
        _cleanup_free_ char *units = repairs_line(json_object_get(rec, "actions"));
        fprintf(out, "%-20s %-8s %5lld %4lld  %s\n", when, json_string_value(json_object_get(rec, "outcome")) ?: "?",
                (long long) json_integer_value(json_object_get(rec, "stale_found")),
                (long long) json_integer_value(json_object_get(rec, "stale_left")), units && *units ? units : "-");
}

/* Line by line, however long the file: the rotated part first, then the current one. */
int record_show_history(const char *state_dir, bool json, FILE *out) {
        static const char *const files[] = {RECORD_HISTORY_FILE ".1", RECORD_HISTORY_FILE};
        bool any = false;
        int r;

        if (!json)
                fprintf(out, "%-20s %-8s %5s %4s  %s\n", "TIME", "OUTCOME", "FOUND", "LEFT", "REPAIRS");
        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                _cleanup_fclose_ FILE *f = NULL;
                r = file_open_read(state_dir, files[i], &f);
                if (r == -ENOENT)
                        continue;
                if (r < 0)
                        return log_error_errno(r, "Failed to read %s/%s: %m", state_dir, files[i]);
                any = true;
                _cleanup_free_ char *line = NULL;
                size_t allocated = 0;
                ssize_t n;
                while ((n = getline(&line, &allocated, f)) > 0) {
                        if (line[n - 1] == '\n')
                                line[--n] = '\0';
                        if (n > 0)
                                show_record_line(line, json, out);
                }
        }
        if (!any && !json)
                fprintf(out, "No runs recorded in %s/%s.\n", state_dir, RECORD_HISTORY_FILE);
        return 0;
}

char *record_one_line(json_t *rec) {
        const char *outcome = json_string_value(json_object_get(rec, "outcome"));
        json_t *ifaces = json_object_get(rec, "interfaces"), *actions = json_object_get(rec, "actions");
        char *buf = NULL;
        size_t len = 0, i;
        json_t *v;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return NULL;

        fputs("reconcile-after-upgrade: ", f);
        json_array_foreach(ifaces, i, v)
                fprintf(f, "%s%s %s", i ? ", " : "", json_string_value(json_object_get(v, "name")),
                        json_string_value(json_object_get(v, "change")));
        /* no interface known (no snapshot, no history): say where the stale rules are */
        if (json_array_size(ifaces) == 0)
                json_array_foreach(actions, i, v)
                        fprintf(f, "%stable %s %s", i ? ", " : "", json_string_value(json_object_get(v, "family")),
                                json_string_value(json_object_get(v, "table")));
        _cleanup_free_ char *packages = packages_line(json_object_get(rec, "packages"));
        if (packages && *packages)
                fprintf(f, " by %s", packages);
        fprintf(f, "; %lld stale rule reference(s)", (long long) json_integer_value(json_object_get(rec, "stale_found")));
        _cleanup_free_ char *repairs = repairs_line(actions);
        if (repairs && *repairs)
                fprintf(f, "; %s", repairs);

        json_int_t left = json_integer_value(json_object_get(rec, "stale_left"));
        if (streq_ptr(outcome, "fixed"))
                fprintf(f, "; verified fresh in %.2f s.", json_real_value(json_object_get(rec, "seconds")));
        else if (streq_ptr(outcome, "degraded"))
                fprintf(f, "; %lld left, but the reload deleted %zu table(s)/chain(s) others had created: see "
                        "'reconcile-after-upgrade history'.", (long long) left,
                        json_array_size(json_object_get(rec, "collateral_loss")));
        else
                fprintf(f, "; %lld still stale: see 'reconcile-after-upgrade check'.", (long long) left);
        fclose(f);
        return buf;
}

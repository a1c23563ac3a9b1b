/* SPDX-License-Identifier: GPL-2.0-or-later */
/* status.c: the verdict `status` and `check --nagios` give, from a read-only check, the last record and the
 * watcher's unit. */
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <time.h>

#include "fileio.h"
#include "json-util.h"
#include "log.h"
#include "names.h"
#include "record.h"
#include "report.h"
#include "status.h"
#include "units.h"

#define STATUS_LOCK_TIMEOUT_MS 2000
#define SUMMARY_MAX_SIZE (4 * 1024 * 1024)

void status_done(struct status *s) {
        pipeline_result_done(&s->check);
        json_decref(s->last);
        free(s->watcher_active);
        free(s->watcher_sub);
        free(s->watcher_text);
        free(s->watcher_since);
        *s = (struct status){};
}

static void watcher_state(struct status *s) {
        _cleanup_(sd_bus_close_unrefp) sd_bus *bus = NULL;
        _cleanup_free_ char *path = NULL;
        uint64_t since = 0;
        if (systemd_running() < 0 || units_bus_open(&bus) < 0 ||
            sd_bus_path_encode("/org/freedesktop/systemd1/unit", WATCHER_UNIT, &path) < 0)
                return;
        if (sd_bus_get_property_string(bus, "org.freedesktop.systemd1", path, "org.freedesktop.systemd1.Unit",
                                       "ActiveState", NULL, &s->watcher_active) < 0 ||
            sd_bus_get_property_string(bus, "org.freedesktop.systemd1", path, "org.freedesktop.systemd1.Unit",
                                       "SubState", NULL, &s->watcher_sub) < 0)
                return;
        (void) sd_bus_get_property_string(bus, "org.freedesktop.systemd1", path, "org.freedesktop.systemd1.Service",
                                          "StatusText", NULL, &s->watcher_text);
        (void) sd_bus_get_property_trivial(bus, "org.freedesktop.systemd1", path, "org.freedesktop.systemd1.Unit",
                                           "ActiveEnterTimestamp", NULL, 't', &since);
        if (since > 0) {
                time_t t = (time_t) (since / 1000000);
                char buf[64];
                if (strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S %Z", localtime(&t)) > 0)
                        s->watcher_since = strdup(buf);
        }
        s->have_watcher = true;
}

int status_gather(struct pipeline_options opt, bool with_watcher, struct status *ret) {
        struct status s = {};
        _cleanup_free_ char *text = NULL;
        size_t size = 0;

        /* A monitoring check changes nothing and never waits long for a run in progress. */
        opt.read_only = true;
        opt.lazy_owners = false;
        opt.lock_timeout_ms = STATUS_LOCK_TIMEOUT_MS;
        s.check_error = pipeline_run(&opt, JOB_CHECK, &s.check);
        if (file_read(opt.state_dir, RECORD_SUMMARY_FILE, SUMMARY_MAX_SIZE, &text, &size) >= 0)
                s.last = json_loadb(text, size, 0, NULL);
        if (!json_is_object(s.last))
                s.last = (json_decref(s.last), NULL);
        if (with_watcher)
                watcher_state(&s);
        *ret = s;
        return 0;
}

int status_exit(const struct status *s) {
        if (s->check_error < 0)
                return 2;
        return findings_stale(&s->check.view.findings) > 0 ? 1 : 0;
}

static const char *last_string(const struct status *s, const char *key) {
        return json_string_value(json_object_get(s->last, key));
}

/* The last repair was refused or went wrong: failed, degraded, or references it could not repair. */
static const char *last_trouble(const struct status *s) {
        const char *outcome = last_string(s, "outcome");
        if (!outcome)
                return NULL;
        if (streq(outcome, "failed") || streq(outcome, "degraded"))
                return outcome;
        if (streq(outcome, "stale") && json_array_size(json_object_get(s->last, "not_repaired")) > 0)
                return "refused";
        return NULL;
}

static void print_when(FILE *out, double when) {
        time_t t = (time_t) when;
        char buf[64];
        double ago = difftime(time(NULL), t);
        if (strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S %Z", localtime(&t)) == 0)
                buf[0] = '\0';
        if (ago < 120)
                fprintf(out, "%s (%.0f s ago)", buf, ago);
        else if (ago < 7200)
                fprintf(out, "%s (%.0f min ago)", buf, ago / 60);
        else
                fprintf(out, "%s (%.1f h ago)", buf, ago / 3600);
}

void status_print(const struct status *s, FILE *out) {
        const struct findings *f = &s->check.view.findings;
        size_t i;
        json_t *v;

        if (s->check_error < 0)
                fprintf(out, "\u00d7 reconcile-after-upgrade: cannot read the ruleset: %s\n",
                        s->check.problem ? s->check.problem : strerror(-s->check_error));
        else if (findings_stale(f) == 0)
                fprintf(out, "\u25cf reconcile-after-upgrade: no stale interface references (%zu by index checked)\n",
                        f->n_refs);
        else {
                fprintf(out, "\u25cf reconcile-after-upgrade: %zu STALE interface reference(s) now\n", findings_stale(f));
                report_human(f, out);
        }

        if (!s->last)
                fprintf(out, "    Last run: none recorded\n");
        else {
                fputs("    Last run: ", out);
                print_when(out, json_real_value(json_object_get(s->last, "finished")));
                fprintf(out, " via %s: %s\n", last_string(s, "via") ?: "hand", last_string(s, "outcome") ?: "?");
                json_array_foreach(json_object_get(s->last, "packages"), i, v)
                        fprintf(out, "    Package: %s %s -> %s%s%s%s\n", json_string_value(json_object_get(v, "package")),
                                json_string_value(json_object_get(v, "version_before")) ?: "(none)",
                                json_string_value(json_object_get(v, "version")) ?: "(removed)",
                                json_is_string(json_object_get(v, "origin")) ? " (" : "",
                                json_string_value(json_object_get(v, "origin")) ?: "",
                                json_is_string(json_object_get(v, "origin")) ? ")" : "");
                json_array_foreach(json_object_get(s->last, "actions"), i, v) {
                        json_t *reload = json_object_get(v, "reload"), *rebind = json_object_get(v, "rebind");
                        fprintf(out, "    Table %s %s: %s", json_string_value(json_object_get(v, "family")),
                                json_string_value(json_object_get(v, "table")), json_string_value(json_object_get(v, "state")));
                        if (reload)
                                fprintf(out, ", %s %s", json_string_value(json_object_get(reload, "state")),
                                        json_string_value(json_object_get(v, "unit")) ?: "");
                        if (rebind)
                                fprintf(out, ", %lld rebound, %lld pruned, %lld left%s",
                                        (long long) json_integer_value(json_object_get(rebind, "rebound")),
                                        (long long) json_integer_value(json_object_get(rebind, "pruned")),
                                        (long long) json_integer_value(json_object_get(rebind, "kept")),
                                        json_is_true(json_object_get(rebind, "exact")) ? ", read back exact" : "");
                        fprintf(out, " (%s)\n", json_string_value(json_object_get(v, "why")) ?: "");
                }
                json_array_foreach(json_object_get(s->last, "not_repaired"), i, v)
                        fprintf(out, "    Not repaired: table %s %s: %s\n", json_string_value(json_object_get(v, "family")),
                                json_string_value(json_object_get(v, "table")), json_string_value(json_object_get(v, "why")));
        }

        if (!s->have_watcher)
                fprintf(out, "    Watcher: unknown (systemd is not running here, or did not answer)\n");
        else {
                fprintf(out, "    Watcher: %s (%s)", s->watcher_active, s->watcher_sub);
                if (s->watcher_since && streq(s->watcher_active, "active"))
                        fprintf(out, " since %s", s->watcher_since);
                if (s->watcher_text && s->watcher_text[0])
                        fprintf(out, "; %s", s->watcher_text);
                fputc('\n', out);
        }
        fprintf(out, "    More: reconcile-after-upgrade history; journalctl -u %s; reconcile-after-upgrade check --json\n",
                WATCHER_UNIT);
        if (findings_stale(f) > 0)
                fprintf(out, "    Repair now: reconcile-after-upgrade (--dry-run shows the plan first)\n");
}

json_t *status_json(const struct status *s) {
        json_t *check = s->check_error < 0 ? json_null() : report_json(&s->check.view.findings);
        json_t *watcher = s->have_watcher ? json_pack("{s:s, s:s, s:s?, s:s?}", "active_state", s->watcher_active,
                                                       "sub_state", s->watcher_sub, "status", s->watcher_text,
                                                       "since", s->watcher_since)
                                           : json_null();
        return json_pack("{s:i, s:o, s:O?, s:o, s:s?, s:s?}", "stale_now",
                         s->check_error < 0 ? -1 : (int) findings_stale(&s->check.view.findings), "check", check, "last_run",
                         s->last ? s->last : json_null(), "watcher", watcher, "last_trouble", last_trouble(s),
                         "problem", s->check_error < 0 ? s->check.problem : NULL);
}

int status_nagios(const struct status *s, FILE *out) {
        const struct findings *f = &s->check.view.findings;
        static const char *const label[] = {"OK", "WARNING", "CRITICAL", "UNKNOWN"};
        int code;
        size_t recreated = 0;

        if (s->check_error < 0) {
                fprintf(out, "RECONCILE-AFTER-UPGRADE UNKNOWN - %s\n",
                        s->check.problem ? s->check.problem : strerror(-s->check_error));
                return 3;
        }
        for (size_t i = 0; i < f->n_ifaces; i++)
                recreated += f->ifaces[i].change == IFACE_RECREATED && f->ifaces[i].n_stale > 0;
        const char *trouble = last_trouble(s);
        code = findings_stale(f) > 0 ? 2 : trouble ? 1 : 0;
        fprintf(out, "RECONCILE-AFTER-UPGRADE %s - ", label[code]);
        if (f->n_stale == 0 && f->n_hooks > 0)
                fprintf(out, "%zu device-bound hook(s) lost their device, first table %s %s %s %s", f->n_hooks,
                        nfproto_to_string(f->hooks[0].was->family), NAME(f->hooks[0].was->table),
                        f->hooks[0].was->flowtable ? "flowtable" : "chain", NAME(f->hooks[0].was->name));
        else if (f->n_stale > 0) {
                const struct iface_ref *first = f->stale[0].ref;
                fprintf(out, "%zu stale interface reference(s), first in table %s %s", f->n_stale,
                        nfproto_to_string(first->family), NAME(first->table));
                if (f->stale[0].was[0])
                        fprintf(out, " (%s re-created)", NAME(f->stale[0].was));
        } else if (trouble)
                fprintf(out, "no stale references now, but the last repair %s (%s)",
                        streq(trouble, "refused") ? "left references it could not repair" : trouble,
                        last_string(s, "via") ?: "by hand");
        else
                fprintf(out, "no stale interface references (%zu by index checked)", f->n_refs);
        /* 'label'=value[UOM];[warn];[crit];[min];[max]: critical above 0 stale references */
        double age = s->last ? difftime(time(NULL), (time_t) json_real_value(json_object_get(s->last, "finished"))) : -1;
        fprintf(out, " | 'stale'=%zu;;0;0 'interfaces_recreated'=%zu;;;0 'references'=%zu;;;0", findings_stale(f),
                recreated, f->n_refs);
        if (age >= 0)
                fprintf(out, " 'last_run_age'=%.0fs;;;0", age);
        fputc('\n', out);
        return code;
}

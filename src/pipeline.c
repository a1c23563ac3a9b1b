/* SPDX-License-Identifier: GPL-2.0-or-later */
/* pipeline.c: the run itself, in order. Everything it learns goes into the result; what it cannot keep (a history
 * write that failed) becomes a note; why it stopped short becomes the problem line. */
#include <inttypes.h>
#include <stdarg.h>
#include <systemd/sd-bus.h>
#include <time.h>

#include "devhooks.h"
#include "fileio.h"
#include "hookprobe.h"
#include "json-util.h"
#include "log.h"
#include "names.h"
#include "metrics.h"
#include "pipeline.h"
#include "rebind.h"
#include "units.h"

#define LOCK_TIMEOUT_MS 30000

_printf_(4, 0) static void note_va(struct pipeline_result *r, int level, int error, const char *format, va_list ap) {
        char *text = NULL;
        errno = error < 0 ? -error : error; /* %m shows the error given */
        if (vasprintf(&text, format, ap) < 0)
                return;
        if (GROW(r->notes, r->allocated_notes, r->n_notes + 1) < 0) {
                free(text);
                return;
        }
        r->notes[r->n_notes++] = (struct pipeline_note){.level = level, .text = text};
}

/* A warning worth saying that does not stop the run. */
_printf_(4, 5) static void note(struct pipeline_result *r, int level, int error, const char *format, ...) {
        va_list ap;
        va_start(ap, format);
        note_va(r, level, error, format, ap);
        va_end(ap);
}

/* The one line saying why the run stopped short; returns error (negative) so "return stop(...)" reads as one step. */
_printf_(4, 5) static int stop(struct pipeline_result *r, enum pipeline_stop why, int error, const char *format, ...) {
        va_list ap;
        free(r->problem);
        r->problem = NULL;
        r->stop = why;
        errno = error < 0 ? -error : error;
        va_start(ap, format);
        if (vasprintf(&r->problem, format, ap) < 0)
                r->problem = NULL;
        va_end(ap);
        return error < 0 ? error : -error;
}

void run_view_done(struct run_view *v) {
        findings_done(&v->findings);
        observation_done(&v->now);
        snapshot_done(&v->before);
        link_history_done(&v->history);
}

void pipeline_result_done(struct pipeline_result *r) {
        run_view_done(&r->view);
        reconcile_result_done(&r->res);
        findings_done(&r->left);
        observation_done(&r->again);
        json_decref(r->leftovers);
        json_decref(r->not_repaired);
        json_decref(r->waited);
        json_decref(r->held);
        json_decref(r->hooks);
        json_decref(r->lost);
        json_decref(r->record);
        free(r->problem);
        for (size_t i = 0; i < r->n_notes; i++)
                free(r->notes[i].text);
        free(r->notes);
        *r = (struct pipeline_result){};
}

/* Units are an addition to the diagnosis, not a condition of it: without systemd (chroot, build, namespace) the
 * checker still finds stale rules. Only the units that own interfaces matter: their InvocationIDs say which
 * daemons restarted, and a few property reads cost less than one per service. */
static void observe_units(struct pipeline_result *res, const struct owner_table *owners,
                          struct unit_invocations *ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_free_ const char **patterns = calloc(owners->n_owners + 1, sizeof(char *));
        size_t n = 0;
        int r;

        if (!patterns)
                return;
        for (size_t i = 0; i < owners->n_owners; i++)
                if (owners->owners[i].unit)
                        patterns[n++] = owners->owners[i].unit;
        if (n == 0)
                return;
        if (systemd_running() < 0) {
                log_debug("systemd is not running here: not reading units.");
                return;
        }
        r = units_bus_open(&bus);
        if (r < 0) {
                note(res, LOG_WARNING, r, "The system bus did not answer (%m): not reading units.");
                return;
        }
        r = units_list_invocations(bus, patterns, ret);
        if (r < 0)
                note(res, LOG_WARNING, r, "Failed to list systemd units: %m");
}

/* Links and ruleset: enough to know whether anything is stale. */
static int observe_rules(struct pipeline_result *res, struct observation *o) {
        int r = links_dump(&o->links, NULL, NULL);
        if (r < 0)
                return stop(res, STOP_ERROR, r, "Failed to list network interfaces: %m");
        r = ruleset_read(&o->ruleset, NULL, NULL);
        if (r < 0)
                return stop(res, STOP_ERROR, r, "Failed to read the nftables ruleset: %m");
        return 0;
}

/* Who owns the interfaces, and their units: what explains a change. */
static int observe_owners(struct pipeline_result *res, struct observation *o) {
        int r = owners_scan("/proc", &o->owners);
        if (r < 0)
                return stop(res, STOP_ERROR, r, "Failed to scan /proc for TUN devices: %m");
        observe_units(res, &o->owners, &o->units);
        return 0;
}

static int run_begin(const struct pipeline_options *opt, struct pipeline_result *res) {
        int r = dir_ensure(opt->run_dir);
        if (r < 0)
                return stop(res, STOP_ERROR, r, "Failed to create run directory %s: %m", opt->run_dir);
        r = dir_ensure(opt->state_dir);
        if (r < 0)
                return stop(res, STOP_ERROR, r, "Failed to create state directory %s: %m", opt->state_dir);
        unsigned timeout_ms = opt->lock_timeout_ms ? opt->lock_timeout_ms : LOCK_TIMEOUT_MS;
        int fd = file_lock(opt->run_dir, LOCK_FILE, timeout_ms);
        if (fd == -ETIMEDOUT)
                return stop(res, STOP_ERROR, fd, "Another run holds %s/%s; gave up after %.1f s.", opt->run_dir,
                            LOCK_FILE, (double) timeout_ms / 1000);
        if (fd < 0)
                return stop(res, STOP_ERROR, fd, "Failed to lock %s/%s: %m", opt->run_dir, LOCK_FILE);
        /* what a run killed between a temporary's link and its rename left, whichever file it was */
        if (!opt->read_only) {
                (void) dir_remove_leftovers(opt->run_dir);
                (void) dir_remove_leftovers(opt->state_dir);
        }
        return fd;
}

/* A history that cannot be kept costs precision later, not correctness now: note it and go on. */
static void history_update(const struct pipeline_options *opt, struct pipeline_result *res,
                           struct link_history *h, const struct link_table *links, uint64_t now) {
        if (opt->read_only)
                return;
        int r = history_note_links(h, links, now);
        if (r >= 0 && h->dirty)
                r = history_write(opt->state_dir, h);
        if (r < 0)
                note(res, LOG_WARNING, r, "Failed to update the link history in %s: %m", opt->state_dir);
}

static int do_snapshot(const struct pipeline_options *opt, struct pipeline_result *res, uint64_t now) {
        struct observation *o = &res->view.now;
        struct link_history *h = &res->view.history;
        int r = observe_rules(res, o);
        if (r < 0)
                return r;
        /* No rule holds an index: nothing can go stale, and the owners need not be known. */
        if (o->ruleset.n_refs > 0 && (r = observe_owners(res, o)) < 0)
                return r;

        /* A device-bound hook the kernel took a device out of since the last snapshot, and no run put back yet:
         * kept as that snapshot had it, or the next run would take its loss for the way things are. */
        struct hook_finding *lost = NULL;
        size_t n_lost = 0;
        _cleanup_(snapshot_done) struct snapshot old = {};
        if (snapshot_read(opt->run_dir, &old) >= 0 && old.n_hooks > 0) {
                (void) hookprobe_get(opt->run_dir, !opt->read_only, &o->kernel);
                if ((r = hooks_diagnose(&o->ruleset, &o->links, &old, &o->kernel, &lost, &n_lost)) < 0)
                        return stop(res, STOP_ERROR, r, "Failed to compare against the snapshot: %m");
        }
        r = snapshot_write(opt->run_dir, now, &o->links, &o->ruleset, &o->owners, &o->units, lost, n_lost);
        hook_findings_free(lost, n_lost);
        if (r < 0)
                return stop(res, STOP_ERROR, r, "Failed to write %s/%s: %m", opt->run_dir, SNAPSHOT_FILE);

        r = history_read(opt->state_dir, h);
        if (r < 0)
                note(res, LOG_WARNING, r, "Ignoring unreadable link history %s/%s: %m", opt->state_dir,
                     HISTORY_FILE);
        history_update(opt, res, h, &o->links, now);
        return 0;
}

/* Observe, compare against the snapshot and the history, then record the links seen. */
static int view_load(const struct pipeline_options *opt, struct pipeline_result *res, uint64_t now) {
        struct run_view *v = &res->view;
        int r = observe_rules(res, &v->now);
        if (r < 0)
                return r;
        if (!opt->lazy_owners && (r = observe_owners(res, &v->now)) < 0)
                return r;

        r = snapshot_read(opt->run_dir, &v->before);
        v->have_snapshot = r >= 0;
        if (r < 0 && r != -ENOENT)
                note(res, LOG_WARNING, r, "Ignoring unreadable snapshot %s/%s: %m", opt->run_dir, SNAPSHOT_FILE);
        /* what this kernel does to hooks whose device goes: asked once a boot, when there are any to compare */
        if (v->have_snapshot && v->before.n_hooks > 0)
                (void) hookprobe_get(opt->run_dir, !opt->read_only && !opt->dry_run, &v->now.kernel);
        r = history_read(opt->state_dir, &v->history);
        if (r < 0)
                note(res, LOG_WARNING, r, "Ignoring unreadable link history %s/%s: %m", opt->state_dir,
                     HISTORY_FILE);

        r = diagnose(&v->now, v->have_snapshot ? &v->before : NULL, &v->history, &v->findings);
        if (r >= 0 && opt->lazy_owners && v->findings.n_stale > 0) {
                findings_done(&v->findings);
                if ((r = observe_owners(res, &v->now)) < 0)
                        return r;
                r = diagnose(&v->now, v->have_snapshot ? &v->before : NULL, &v->history, &v->findings);
        }
        if (r < 0)
                return stop(res, STOP_ERROR, r, "Failed to compare against the snapshot: %m");

        /* After the diagnosis: the history must still say what the stale indexes were. */
        history_update(opt, res, &v->history, &v->now.links, now);
        return 0;
}

static uint64_t monotonic_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static double seconds_since(const struct timespec *start) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        return (double) (now.tv_sec - start->tv_sec) + (double) (now.tv_nsec - start->tv_nsec) / 1e9;
}

/* The packages behind the change: the units that own the interfaces, or restarted, traced to the package that
 * ships them, when this dpkg run touched it. */
static json_t *describe_packages(sd_bus *bus, const struct findings *found, const struct package_changes *changes) {
        size_t max = found->n_ifaces + found->n_restarted_units, n = 0;
        _cleanup_free_ const char **units = calloc(max + 1, sizeof(char *));
        _cleanup_free_ char **paths = calloc(max + 1, sizeof(char *));
        json_t *packages = NULL;

        if (!units || !paths)
                return NULL;
        if (!bus || changes->n_changes == 0)
                return json_array();
        for (size_t i = 0; i < max; i++) {
                const char *unit = i < found->n_ifaces
                                           ? (found->ifaces[i].owner ? found->ifaces[i].owner->unit : NULL)
                                           : found->restarted_units[i - found->n_ifaces];
                bool dup = !unit;
                for (size_t k = 0; !dup && k < n; k++)
                        dup = streq(units[k], unit);
                if (dup)
                        continue;
                int r = units_fragment_path(bus, unit, &paths[n]);
                if (r < 0)
                        log_debug_errno(r, "%s: no unit file: %m", unit);
                units[n++] = unit;
        }
        packages = packages_describe(NULL, changes, units, (const char *const *) paths, n);
        for (size_t k = 0; k < n; k++)
                free(paths[k]);
        return packages;
}

/* What one reconcile run knows at its end, kept three ways (journal, history, summary). */
static void record_run(const struct pipeline_options *opt, struct pipeline_result *res, struct record_input *in,
                       const struct timespec *start) {
        struct timespec wall;
        clock_gettime(CLOCK_REALTIME, &wall);
        in->via = opt->via;
        in->cause = opt->cause;
        in->waited = res->waited;
        in->seconds = seconds_since(start);
        in->finished = (double) wall.tv_sec + (double) (wall.tv_nsec / 1000) / 1e6;
        res->outcome = in->outcome;
        res->record = record_build(in);
        if (!res->record) {
                note(res, LOG_ERR, ENOMEM, "Failed to build the record: %m");
                return;
        }
        const char *failed_file = NULL;
        int r = record_store(opt->state_dir, res->record, opt->config->history_max_bytes, &failed_file);
        if (r < 0)
                note(res, LOG_WARNING, r, "Failed to write %s/%s: %m", opt->state_dir, failed_file);
}

/* One read of the ruleset and the links, with its diagnosis against the same baseline as the first. */
struct reading {
        struct observation obs;
        struct findings found; /* points into obs */
        bool taken;
};

static void reading_done(struct reading *r) {
        findings_done(&r->found);
        observation_done(&r->obs);
}

static int reading_take(struct pipeline_result *res, struct reading *ret) {
        struct run_view *v = &res->view;
        int r;
        reading_done(ret);
        ret->obs.kernel = v->now.kernel;
        if ((r = links_dump(&ret->obs.links, NULL, NULL)) < 0 || (r = ruleset_read(&ret->obs.ruleset, NULL, NULL)) < 0)
                return stop(res, STOP_ERROR, r, "Failed to read the ruleset again to verify: %m");
        r = diagnose(&ret->obs, v->have_snapshot ? &v->before : NULL, &v->history, &ret->found);
        if (r < 0)
                return stop(res, STOP_ERROR, r, "Failed to verify: %m");
        ret->taken = true;
        return 0;
}

static bool actions_any(const struct reconcile_result *res, enum reload_state state) {
        for (size_t i = 0; i < res->n_actions; i++)
                if (res->actions[i].reload == state)
                        return true;
        return false;
}

/* The place of a stale reference, for the record: rule (chain, handle) or set element (set, index). */
static json_t *ref_place(const struct stale_ref *s) {
        const struct iface_ref *ref = s->ref;
        json_t *j = json_pack("{s:s, s:o}", "family", nfproto_to_string(ref->family), "table", json_name(ref->table));
        if (!j)
                return NULL;
        if (ref->chain) {
                if (json_object_set_new(j, "chain", json_name(ref->chain)) < 0 ||
                    json_object_set_new(j, "handle", json_integer((json_int_t) ref->handle)) < 0)
                        return json_decref(j), NULL;
        } else if (json_object_set_new(j, "set", json_name(ref->set)) < 0 ||
                   json_object_set_new(j, "ifindex", json_integer(ref->ifindex)) < 0 ||
                   json_object_set_new(j, "was", json_name(s->was[0] ? s->was : NULL)) < 0)
                return json_decref(j), NULL;
        return j;
}

/* The stale references this run may repair: f without those of held tables (the watcher's rate limit), which go
 * to held (when not NULL) with why. A view into f: only its stale list is its own (findings_view_done). */
static int findings_unheld(const struct pipeline_options *opt, const struct findings *f, struct findings *ret,
                           json_t *held) {
        *ret = *f;
        ret->n_stale = 0;
        ret->stale = calloc(f->n_stale + 1, sizeof(*ret->stale));
        if (!ret->stale)
                return -ENOMEM;
        for (size_t k = 0; k < f->n_stale; k++) {
                const struct stale_ref *s = &f->stale[k];
                if (!opt->hold_table || !opt->hold_table(opt->hold_userdata, s->ref->family, s->ref->table)) {
                        ret->stale[ret->n_stale++] = *s;
                        continue;
                }
                if (!held)
                        continue;
                json_t *e = ref_place(s);
                if (!e || json_object_set_new(e, "why", json_string(opt->hold_why ?: "held back")) < 0 ||
                    json_object_set_new(e, "ifindex", json_integer(s->ref->ifindex)) < 0 ||
                    json_object_set_new(e, "was", json_name(s->was[0] ? s->was : NULL)) < 0 ||
                    json_array_append_new(held, e) < 0)
                        return json_decref(e), -ENOMEM;
        }
        return 0;
}

static void findings_view_done(struct findings *f) {
        free(f->stale);
        *f = (struct findings){};
}

/* What the plan did not rewrite, and why; and the leftovers it deleted (or, with pruning off, left): one entry
 * per rule or element. */
static int plan_lists(const struct findings *f, const struct rebind_plan *plan, json_t *kept, json_t *leftovers) {
        for (size_t k = 0; k < f->n_stale; k++) {
                const struct ref_fix *fix = &plan->fixes[k];
                const struct iface_ref *ref = f->stale[k].ref;
                json_t *list = fix->twin ? leftovers : fix->kind == FIX_KEEP ? kept : NULL;
                if (!list)
                        continue;
                /* one entry per rule */
                bool dup = false;
                for (size_t j = 0; j < k && ref->chain && !dup; j++)
                        dup = f->stale[j].ref->site.rule == ref->site.rule && plan->fixes[j].twin == fix->twin &&
                              plan->fixes[j].kind == fix->kind;
                if (dup)
                        continue;
                json_t *e = ref_place(&f->stale[k]);
                if (!e)
                        return -ENOMEM;
                int r = fix->twin ? json_object_set_new(e, "why", json_string(ref->chain ? "a fresh copy of this rule exists in the chain"
                                                                                         : "a fresh copy of this element exists in the set")) |
                                            json_object_set_new(e, "pruned", json_boolean(fix->kind == FIX_PRUNE))
                                  : json_object_set_new(e, "why", json_string(fix->why)) |
                                            json_object_set_new(e, "ifindex", json_integer(ref->ifindex)) |
                                            json_object_set_new(e, "was", json_name(f->stale[k].was[0] ? f->stale[k].was : NULL));
                if (r < 0 || json_array_append_new(list, e) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* Each table's share of the plan. */
static void plan_attribute(struct reconcile_result *rr, const struct findings *f, const struct rebind_plan *plan,
                           enum rebind_state state) {
        for (size_t i = 0; i < rr->n_actions; i++) {
                struct action *a = &rr->actions[i];
                a->rebound = a->pruned = a->kept = 0;
        }
        for (size_t k = 0; k < f->n_stale; k++) {
                struct action *a = reconcile_find(rr, f->stale[k].ref->family, f->stale[k].ref->table);
                if (!a)
                        continue;
                switch (plan->fixes[k].kind) {
                case FIX_REBIND: a->rebound++; break;
                case FIX_PRUNE: a->pruned++; break;
                case FIX_KEEP: a->kept++; break;
                }
                if (plan->fixes[k].kind != FIX_KEEP)
                        a->rebind = state;
        }
}

/* Rewrites what is still stale in one transaction against the generation it was read at; when the ruleset moved
 * in between, reads again and plans again (bounded). Starts from *cur when it holds a reading (taken after a
 * reload), else from the run's first one; leaves in *cur the last reading taken, if any. */
#define REBIND_ATTEMPTS 5
static int repair_in_place(const struct pipeline_options *opt, struct pipeline_result *res, struct reading *cur) {
        bool pretend = opt->dry_run || opt->config->mode == MODE_REPORT;
        struct ruleset *rs = cur->taken ? &cur->obs.ruleset : &res->view.now.ruleset;
        const struct findings *f = cur->taken ? &cur->found : &res->view.findings;
        int r;

        for (unsigned attempt = 0;; attempt++) {
                _cleanup_(rebind_plan_done) struct rebind_plan plan = {};
                _cleanup_(findings_view_done) struct findings mine = {};
                _cleanup_free_ char *error = NULL;
                if (findings_unheld(opt, f, &mine, NULL) < 0)
                        return stop(res, STOP_ERROR, ENOMEM, "Out of memory.");
                if (mine.n_stale == 0)
                        return 0;
                uint64_t t0 = monotonic_usec();
                r = rebind_plan(rs, &mine, opt->config->prune_stale_twins, &plan);
                log_debug("rebind: planned in %.1f ms", (double) (monotonic_usec() - t0) / 1e3);
                if (r == -EAGAIN && attempt + 1 < REBIND_ATTEMPTS) {
                        if ((r = reading_take(res, cur)) < 0)
                                return r;
                        rs = &cur->obs.ruleset, f = &cur->found;
                        continue;
                }
                if (r == -EAGAIN)
                        return stop(res, STOP_ERROR, r, "The ruleset kept changing while it was read: nothing rebound; "
                                                        "run 'reconcile-after-upgrade' again.");
                if (r < 0)
                        return stop(res, STOP_ERROR, r, "Failed to plan the rebind: %m");

                json_decref(res->not_repaired);
                json_decref(res->leftovers);
                res->not_repaired = json_array();
                res->leftovers = json_array();
                if (!res->not_repaired || !res->leftovers || plan_lists(&mine, &plan, res->not_repaired, res->leftovers) < 0)
                        return stop(res, STOP_ERROR, ENOMEM, "Out of memory.");
                plan_attribute(&res->res, &mine, &plan, pretend ? REBIND_WOULD : REBIND_DONE);
                if (pretend || plan.n_rebind + plan.n_prune == 0)
                        return 0;

                t0 = monotonic_usec();
                r = rebind_commit(rs, &plan, &error);
                log_debug("rebind: committed in %.1f ms", (double) (monotonic_usec() - t0) / 1e3);
                if (r == -ERESTART && attempt + 1 < REBIND_ATTEMPTS) {
                        log_debug("rebind: the ruleset changed since it was read (generation %u); reading again",
                                  plan.genid);
                        if ((r = reading_take(res, cur)) < 0)
                                return r;
                        rs = &cur->obs.ruleset, f = &cur->found;
                        continue;
                }
                res->acted = true;
                if (r < 0) {
                        plan_attribute(&res->res, &mine, &plan, REBIND_FAILED);
                        for (size_t i = 0; i < res->res.n_actions; i++) {
                                struct action *a = &res->res.actions[i];
                                if (a->rebind == REBIND_FAILED && !a->rebind_error &&
                                    asprintf(&a->rebind_error, "%s%s%s",
                                             r == -ERESTART ? "the ruleset kept changing" : strerror(-r),
                                             error ? ": " : "", error ? error : "") < 0)
                                        a->rebind_error = NULL;
                        }
                        return reading_take(res, cur);
                }

                /* The proof: the same rules and elements read back, the index aside. */
                _cleanup_(reading_done) struct reading after = {};
                t0 = monotonic_usec();
                if ((r = reading_take(res, &after)) < 0)
                        return r;
                log_debug("rebind: read back in %.1f ms", (double) (monotonic_usec() - t0) / 1e3);
                t0 = monotonic_usec();
                /* What we touched is compared whatever else changed since; a difference is ours only when nothing
                 * else was committed in between (then it is a failure), else it is unproven, not failed. */
                _cleanup_free_ char *difference = NULL;
                bool others = after.obs.ruleset.genid != plan.genid + 1;
                r = rebind_verify(rs, &plan, &after.obs.ruleset, &difference);
                others = others || r == -EAGAIN;
                log_debug("rebind: verified in %.1f ms", (double) (monotonic_usec() - t0) / 1e3);
                for (size_t i = 0; i < res->res.n_actions; i++) {
                        struct action *a = &res->res.actions[i];
                        if (a->rebind != REBIND_DONE)
                                continue;
                        a->exact = r >= 0;
                        if (r >= 0)
                                continue;
                        if (others)
                                note(res, LOG_WARNING, 0, "table %s %s: rebound, but not proven exact: the ruleset was "
                                     "changed by another program before it could be read back (%s).",
                                     a->plan.family, a->plan.table, difference ? difference : strerror(-r));
                        else {
                                a->rebind = REBIND_FAILED;
                                if (asprintf(&a->rebind_error, "read back: %s",
                                             difference ? difference : strerror(-r)) < 0)
                                        a->rebind_error = NULL;
                        }
                }
                reading_done(cur);
                *cur = after;
                after = (struct reading){};
                return 0;
        }
}

/* Device-bound chains and flowtables a kernel before 6.16 detached or deleted: hooked to their devices again in
 * one transaction against the generation last read (read again when it moved on), then read back. */
static int repair_hooks(const struct pipeline_options *opt, struct pipeline_result *res, struct reading *cur) {
        bool pretend = opt->dry_run || opt->config->mode == MODE_REPORT;
        int r;

        for (unsigned attempt = 0;; attempt++) {
                const struct ruleset *rs = cur->taken ? &cur->obs.ruleset : &res->view.now.ruleset;
                const struct findings *f = cur->taken ? &cur->found : &res->view.findings;
                _cleanup_(hook_plan_done) struct hook_plan plan = {};
                if (f->n_hooks == 0)
                        return 0;
                if ((r = devhooks_plan(rs, f->hooks, f->n_hooks, &f->kernel, opt->hold_table, opt->hold_userdata,
                                       &plan)) < 0)
                        return stop(res, STOP_ERROR, r, "Failed to plan: %m");
                if (!pretend && plan.n_todo > 0) {
                        r = devhooks_commit(&plan);
                        if (r == -ERESTART && attempt + 1 < REBIND_ATTEMPTS) {
                                if ((r = reading_take(res, cur)) < 0)
                                        return r;
                                continue;
                        }
                        if (r < 0)
                                return stop(res, STOP_ERROR, r, "Failed to hook the device-bound chains again: %m");
                }
                _cleanup_(reading_done) struct reading after = {};
                if (!pretend && plan.n_todo > 0) {
                        res->acted = true;
                        if ((r = reading_take(res, &after)) < 0)
                                return r;
                        devhooks_verify(&plan, &after.obs.ruleset);
                }
                json_decref(res->hooks);
                res->hooks = json_array();
                bool complete = res->hooks;
                for (size_t i = 0; complete && i < plan.n_fixes; i++)
                        complete = json_array_append_new(res->hooks, hook_fix_json(&plan.fixes[i])) >= 0;
                if (!complete)
                        return stop(res, STOP_ERROR, ENOMEM, "Out of memory.");
                if (after.taken) {
                        reading_done(cur);
                        *cur = after;
                        after = (struct reading){};
                }
                return 0;
        }
}

static bool hooks_failed(const struct pipeline_result *res) {
        size_t i;
        json_t *v;
        json_array_foreach(res->hooks, i, v) if (streq_ptr(json_string_value(json_object_get(v, "result")), "failed")) return true;
        return false;
}

static bool rebind_any(const struct reconcile_result *res, enum rebind_state state) {
        for (size_t i = 0; i < res->n_actions; i++)
                if (res->actions[i].rebind == state)
                        return true;
        return false;
}


/* A stale reference's interface is missing while the unit that owned it (per the snapshot) is (re)starting: real
 * VPN daemons (Type=simple) create it a moment after their unit started, so a dpkg trigger can run in between.
 * Wait for it on rtnetlink, bounded by Interface-Wait and the run's deadline. One whose owner is stopped is not
 * waited for. Returns 1 when it waited (the caller looks again), 0 when there was nothing to wait for. */
static int wait_for_interfaces(const struct pipeline_options *opt, struct pipeline_result *res, sd_bus *bus) {
        const struct findings *f = &res->view.findings;
        const struct snapshot *before = res->view.have_snapshot ? &res->view.before : NULL;
        _cleanup_free_ const char **names = calloc(f->n_ifaces + 1, sizeof(char *));
        size_t n = 0;

        if (!names || !bus || !before)
                return 0;
        for (size_t i = 0; i < f->n_ifaces; i++) {
                const struct iface_finding *iface = &f->ifaces[i];
                if (iface->change != IFACE_VANISHED || iface->n_stale == 0 || !iface->owner || !iface->owner->unit)
                        continue;
                _cleanup_(unit_invocations_done) struct unit_invocations now = {};
                const char *const pattern[] = {iface->owner->unit, NULL};
                if (units_list_invocations(bus, pattern, &now) < 0 || now.n_units != 1)
                        continue;
                const struct unit_invocation *u = &now.units[0];
                bool restarted = false;
                for (size_t k = 0; k < before->units.n_units; k++)
                        if (streq(before->units.units[k].name, u->name))
                                restarted = !streq(before->units.units[k].invocation_id, u->invocation_id);
                bool starting = streq(u->active_state, "active") || streq(u->active_state, "activating") ||
                                streq(u->active_state, "reloading");
                log_debug("wait: %s is missing; %s is %s%s", iface->name, u->name, u->active_state,
                          restarted ? ", restarted since the snapshot" : "");
                if (starting || restarted)
                        names[n++] = iface->name;
        }
        if (n == 0)
                return 0;

        uint64_t start = monotonic_usec(), timeout = (uint64_t) opt->config->interface_wait_ms * 1000;
        /* leave a second of the budget for the repair itself */
        if (opt->deadline_usec)
                timeout = opt->deadline_usec > start + 1000000 ? MIN(timeout, opt->deadline_usec - start - 1000000) : 0;
        int r = links_wait_for(names, n, timeout);
        double seconds = (double) (monotonic_usec() - start) / 1e6;
        json_t *list = json_array();
        for (size_t i = 0; list && i < n; i++)
                json_array_append_new(list, json_name(names[i]));
        res->waited = json_pack("{s:o?, s:f, s:b}", "interfaces", list, "seconds", seconds, "came_back", r >= 0);
        if (r == -ETIMEDOUT)
                note(res, LOG_WARNING, 0, "%s%s did not come back within %.1f s (Reconcile-After-Upgrade::Interface-Wait).",
                     names[0], n > 1 ? " and others" : "", (double) timeout / 1e6);
        else if (r < 0)
                note(res, LOG_WARNING, r, "Failed to wait for %s: %m", names[0]);
        else
                log_debug("wait: %zu interface(s) back after %.3f s", n, seconds);
        return 1;
}

static bool findings_any_recreated(const struct findings *f) {
        for (size_t i = 0; i < f->n_ifaces; i++)
                if (f->ifaces[i].change == IFACE_RECREATED && f->ifaces[i].n_stale > 0)
                        return true;
        return false;
}

static int do_reconcile(const struct pipeline_options *opt, struct pipeline_result *res, uint64_t now) {
        _cleanup_(package_changes_done) struct package_changes changes = {};
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(json_decrefp) json_t *packages = NULL;
        _cleanup_(reading_done) struct reading cur = {};
        const char *why_no_units = NULL;
        struct timespec start;
        int r;

        clock_gettime(CLOCK_MONOTONIC, &start);
        /* Each dpkg run's packages are told once: by the first run after it, whatever it finds. */
        if (!opt->dry_run && (r = package_changes_take(opt->run_dir, &changes)) < 0)
                note(res, LOG_WARNING, r, "Failed to read the packages dpkg touched from %s: %m", opt->run_dir);

        r = view_load(opt, res, now);
        if (r < 0)
                return r;
        const struct findings *found = &res->view.findings;
        struct record_input in = {.time = now, .found = found};

        if (findings_stale(found) == 0)
                return 0;

        /* Units are for reloading and for naming packages; without them the references are rebound in place. */
        if (systemd_running() < 0)
                why_no_units = "systemd is not running here";
        else if ((r = units_bus_open(&bus)) < 0 || (r = act_subscribe(bus)) < 0) {
                note(res, LOG_WARNING, r, "The system bus did not answer (%m): no unit is reloaded, the rules are "
                                          "rebound in place.");
                why_no_units = "the system bus did not answer";
                bus = sd_bus_flush_close_unref(bus);
        } else if (act_system_stopping(bus) > 0) {
                stop(res, STOP_SHUTTING_DOWN, ESHUTDOWN,
                     "%zu stale interface references, but the system is shutting down: nothing reloaded.",
                     findings_stale(found));
                if (!opt->dry_run) {
                        in.outcome = OUTCOME_STALE;
                        record_run(opt, res, &in, &start);
                }
                return 0;
        }

        /* An interface mid-restart: wait, then look again. */
        if (wait_for_interfaces(opt, res, bus) > 0) {
                run_view_done(&res->view);
                if ((r = view_load(opt, res, now)) < 0)
                        return r;
                found = &res->view.findings;
                in.found = found;
                if (findings_stale(found) == 0)
                        return 0;
        }

        /* Held tables (the watcher's rate limit) are neither reloaded nor rebound: said, left as they are. */
        _cleanup_(findings_view_done) struct findings planned = {};
        res->held = json_array();
        if (!res->held || findings_unheld(opt, found, &planned, res->held) < 0)
                return stop(res, STOP_ERROR, ENOMEM, "Out of memory.");

        /* From here to the verified reading: what the repair itself costs. */
        uint64_t repair_start = monotonic_usec();
        struct reconcile_options ro = {.config = opt->config, .dry_run = opt->dry_run,
                                       .policy_rc_d = opt->policy_rc_d ? opt->policy_rc_d : "/usr/sbin/policy-rc.d",
                                       .ruleset = &res->view.now.ruleset, .why_no_units = why_no_units};
        r = reconcile_plan(bus, &ro, &planned, &res->res);
        if (r < 0)
                return stop(res, STOP_ERROR, r, "Failed to plan: %m");
        reconcile_reload(bus, &ro, &res->res);
        res->acted = actions_any(&res->res, RELOAD_DONE) || actions_any(&res->res, RELOAD_FAILED);

        /* What a reload left stale (leftovers beside their fresh twins, a table whose reload failed) and every
         * table not reloaded: rebound in place, from a fresh reading when a reload changed the ruleset. */
        if (res->acted && (r = reading_take(res, &cur)) < 0)
                return 0;
        r = repair_in_place(opt, res, &cur);
        if (r >= 0)
                r = repair_hooks(opt, res, &cur);
        if (opt->dry_run)
                return 0;

        in.res = &res->res;
        in.packages = packages = describe_packages(bus, found, &changes);
        in.leftovers = json_array_size(res->leftovers) ? res->leftovers : NULL;
        if (json_array_size(res->held)) {
                if (!res->not_repaired)
                        res->not_repaired = json_array();
                if (!res->not_repaired || json_array_extend(res->not_repaired, res->held) < 0)
                        return stop(res, STOP_ERROR, ENOMEM, "Out of memory.");
        }
        in.not_repaired = json_array_size(res->not_repaired) ? res->not_repaired : NULL;
        in.hooks = json_array_size(res->hooks) ? res->hooks : NULL;
        if (r >= 0 && !res->acted && opt->record_only_repairs && !json_array_size(res->held) &&
            !findings_any_recreated(found))
                return 0;
        if (r >= 0 && !res->acted && opt->quiet_held && json_array_size(res->held) && planned.n_stale == 0)
                return 0;
        if (r < 0 || !res->acted) {
                in.outcome = r < 0 && res->acted ? OUTCOME_FAILED : OUTCOME_STALE;
                record_run(opt, res, &in, &start);
                return 0;
        }

        /* The last reading is the verdict (a rebind that had nothing to send took none: nothing changed). */
        if (!cur.taken && (r = reading_take(res, &cur)) < 0)
                return 0;
        res->again = cur.obs;
        res->left = cur.found;
        cur = (struct reading){};
        res->verified = true;
        in.repair_seconds = (double) (monotonic_usec() - repair_start) / 1e6;

        res->lost = ruleset_lost(&res->view.now.ruleset, &res->again.ruleset);
        if (!res->lost)
                return stop(res, STOP_ERROR, ENOMEM, "Out of memory.");
        in.lost = res->lost;

        /* What was just verified is the next run's "before": a dpkg -i later, with no Pre-Invoke snapshot of its
         * own, then compares against it, not against the state before this change. */
        r = snapshot_write(opt->run_dir, now, &res->again.links, &res->again.ruleset, &res->view.now.owners,
                           &res->view.now.units, res->left.hooks, res->left.n_hooks);
        if (r < 0)
                note(res, LOG_WARNING, r, "Failed to write %s/%s: %m", opt->run_dir, SNAPSHOT_FILE);

        in.left = &res->left;
        in.outcome = rebind_any(&res->res, REBIND_FAILED) || hooks_failed(res)             ? OUTCOME_FAILED
                     : json_array_size(res->lost)                                          ? OUTCOME_DEGRADED
                     : findings_stale(&res->left)                                          ? OUTCOME_STALE
                                                                                           : OUTCOME_FIXED;
        record_run(opt, res, &in, &start);
        return 0;
}

/* What the run found and did, for the fleet's monitoring. Never fails the run: a failure is noted. */
static void metrics_note(const struct pipeline_options *opt, enum pipeline_job job, int r, struct pipeline_result *res) {
        const struct findings *first = &res->view.findings;
        struct timespec wall;
        clock_gettime(CLOCK_REALTIME, &wall);
        struct metrics_run m = {
                .via = opt->via ? opt->via : job == JOB_CHECK ? "check" : "manual",
                .time = (double) wall.tv_sec + (double) (wall.tv_nsec / 1000) / 1e6,
                .repairs = &res->res,
                .repaired = res->acted,
                .repair_success = res->record && res->outcome == OUTCOME_FIXED,
                .repair_seconds = json_real_value(json_object_get(res->record, "repair_seconds")),
        };
        if (r < 0)
                m.outcome = "error";
        else {
                m.outcome = res->record ? record_outcome_to_string(res->outcome)
                            : findings_stale(first) == 0 ? "nothing-stale" : "stale";
                m.ruleset = res->verified ? &res->again.ruleset : &res->view.now.ruleset;
                m.stale = res->verified ? &res->left : first;
                for (size_t i = 0; i < first->n_ifaces; i++)
                        m.interfaces_recreated += first->ifaces[i].change == IFACE_RECREATED && first->ifaces[i].n_stale > 0;
        }
        uint64_t t0 = monotonic_usec();
        int k = metrics_update(opt->run_dir, config_metrics_dir(opt->config), &m);
        log_debug("metrics: written in %" PRIu64 " us", monotonic_usec() - t0);
        if (k < 0)
                note(res, LOG_WARNING, k, "Failed to write the metrics (%s/%s): %m", config_metrics_dir(opt->config),
                     METRICS_FILE);
}

int pipeline_run(const struct pipeline_options *opt, enum pipeline_job job, struct pipeline_result *ret) {
        struct pipeline_result res = {};
        uint64_t now = (uint64_t) time(NULL);
        int r;

        _cleanup_close_ int lock = run_begin(opt, &res);
        if (lock < 0)
                r = lock;
        else if (job == JOB_SNAPSHOT)
                r = do_snapshot(opt, &res, now);
        else if (job == JOB_CHECK)
                r = view_load(opt, &res, now);
        else
                r = do_reconcile(opt, &res, now);

        if (lock >= 0 && job != JOB_SNAPSHOT && !opt->read_only && !opt->dry_run)
                metrics_note(opt, job, r, &res);
        *ret = res;
        return r;
}

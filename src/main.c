/* SPDX-License-Identifier: GPL-2.0-or-later */
/* main.c: the command line. The only place that talks to the user; exit status 0 fine, 1 stale, 2 error. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "diagnose.h"
#include "fileio.h"
#include "json-util.h"
#include "log.h"
#include "packages.h"
#include "report.h"
#include "state.h"
#include "reconcile.h"
#include "twins.h"
#include "record.h"
#include "units.h"
#include <systemd/sd-bus.h>

#define EXIT_STALE 1
#define EXIT_ERROR 2
#define LOCK_TIMEOUT_MS 30000

struct context {
        const char *run_dir;
        const char *state_dir;
        const char *hook; /* "apt", "dpkg-trigger": run by apt or dpkg, which must never see it fail */
        bool json;
        bool quiet;
        bool dry_run;
        FILE *out; /* what a person reads: stdout, or nothing under a hook (which prints one line at the end) */
        struct config config;
};

static void help(void) {
        printf("Usage: reconcile-after-upgrade [OPTIONS] COMMAND\n"
               "\n"
               "Finds nftables rules that still hold the index of an interface that was re-created\n"
               "(e.g. tailscale0 after tailscaled restarted during an upgrade).\n"
               "\n"
               "Commands:\n"
               "  (none)          check, reload the units that loaded the stale tables, verify\n"
               "  snapshot        record links, interface references, TUN owners and units (before dpkg runs)\n"
               "  check           report stale references; exit 0 none, 1 some, 2 error\n"
               "  history         the runs that found or did something (--json: the raw records)\n"
               "  dpkg-status     read dpkg's status-logger stream on stdin, note the packages it touches\n"
               "\n"
               "Options:\n"
               "  --json          print the findings as one JSON object\n"
               "  --dry-run       print the plan, touch nothing\n"
               "  --hook=NAME     run for apt (NAME apt) or dpkg (dpkg-trigger): always exit 0, one line,\n"
               "                  within Reconcile-After-Upgrade::Time-Budget\n"
               "  --run-dir DIR   snapshot and lock (default %s)\n"
               "  --state-dir DIR link history (default %s)\n"
               "  -q, --quiet     print nothing on success\n"
               "  -v, --verbose   debug output on stderr\n"
               "  -h, --help      this text\n"
               "      --version   the version\n",
               "/run/reconcile-after-upgrade", "/var/lib/reconcile-after-upgrade");
}

/* Units are an addition to the diagnosis, not a condition of it: without systemd (chroot, build, namespace) the
 * checker still finds stale rules. Only the units that own interfaces matter: their InvocationIDs say which
 * daemons restarted, and a few property reads cost less than one per service. */
static void observe_units(const struct owner_table *owners, struct unit_invocations *ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_free_ const char **patterns = calloc(owners->n_owners + 1, sizeof(char *));
        size_t n = 0;
        int r;

        if (!patterns) {
                log_oom();
                return;
        }
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
                log_warning_errno(r, "Failed to connect to the system bus, not reading units: %m");
                return;
        }
        r = units_list_invocations(bus, patterns, ret);
        if (r < 0)
                log_warning_errno(r, "Failed to list systemd units: %m");
}

/* Links and ruleset: enough to know whether anything is stale. */
static int observe_rules(struct observation *o) {
        int r = links_dump(&o->links, NULL, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to list network interfaces: %m");
        r = ruleset_read(&o->ruleset, NULL, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to read the nftables ruleset: %m");
        return 0;
}

/* Who owns the interfaces, and their units: what explains a change. */
static int observe_owners(struct observation *o) {
        int r = owners_scan("/proc", &o->owners);
        if (r < 0)
                return log_error_errno(r, "Failed to scan /proc for TUN devices: %m");
        observe_units(&o->owners, &o->units);
        return 0;
}

static int observe(struct observation *ret) {
        _cleanup_(observation_done) struct observation o = {};
        int r = observe_rules(&o);
        if (r < 0)
                return r;
        r = observe_owners(&o);
        if (r < 0)
                return r;
        *ret = o;
        o = (struct observation){};
        return 0;
}

static int state_dirs_ensure(const struct context *ctx) {
        int r = dir_ensure(ctx->run_dir);
        if (r < 0)
                return log_error_errno(r, "Failed to create run directory %s: %m", ctx->run_dir);
        r = dir_ensure(ctx->state_dir);
        if (r < 0)
                return log_error_errno(r, "Failed to create state directory %s: %m", ctx->state_dir);
        return 0;
}

static int lock_take(const struct context *ctx) {
        int fd = file_lock(ctx->run_dir, LOCK_FILE, LOCK_TIMEOUT_MS);
        if (fd == -ETIMEDOUT)
                return log_error_errno(fd, "Another run holds %s/%s; gave up after %u s.", ctx->run_dir, LOCK_FILE,
                                       LOCK_TIMEOUT_MS / 1000);
        if (fd < 0)
                return log_error_errno(fd, "Failed to lock %s/%s: %m", ctx->run_dir, LOCK_FILE);
        return fd;
}

/* Every command: the state directories exist, and this run holds the lock. Serialised runs mean the second one
 * finds the rules already fresh and reloads nothing. Returns the lock's fd. */
static int run_begin(const struct context *ctx) {
        int r = state_dirs_ensure(ctx);
        if (r < 0)
                return r;
        return lock_take(ctx);
}

/* A history that cannot be kept costs precision later, not correctness now: warn and go on. */
static void history_update(const struct context *ctx, struct link_history *h, const struct link_table *links,
                           uint64_t now) {
        int r = history_note_links(h, links, now);
        if (r >= 0 && h->dirty)
                r = history_write(ctx->state_dir, h);
        if (r < 0)
                log_warning_errno(r, "Failed to update the link history in %s: %m", ctx->state_dir);
}

static int cmd_snapshot(const struct context *ctx) {
        _cleanup_(observation_done) struct observation o = {};
        _cleanup_(link_history_done) struct link_history h = {};
        uint64_t now = (uint64_t) time(NULL);
        int r;

        /* A chroot or an image build: no daemons restart there, and the rules seen would be the host's. */
        if (ctx->hook && systemd_running() < 0)
                return 0;

        _cleanup_close_ int lock = run_begin(ctx);
        if (lock < 0)
                return lock;

        r = observe_rules(&o);
        if (r < 0)
                return r;
        /* No rule holds an index: nothing can go stale, and the owners need not be known. */
        if (o.ruleset.n_refs > 0 && (r = observe_owners(&o)) < 0)
                return r;

        r = snapshot_write(ctx->run_dir, now, &o.links, &o.ruleset, &o.owners, &o.units);
        if (r < 0)
                return log_error_errno(r, "Failed to write %s/%s: %m", ctx->run_dir, SNAPSHOT_FILE);

        r = history_read(ctx->state_dir, &h);
        if (r < 0)
                log_warning_errno(r, "Ignoring unreadable link history %s/%s: %m", ctx->state_dir, HISTORY_FILE);
        history_update(ctx, &h, &o.links, now);

        if (!ctx->quiet)
                fprintf(ctx->out, "Snapshot: %zu interfaces, %zu references by index, %zu TUN owners -> %s/%s\n",
                       o.links.n_links, o.ruleset.n_refs, o.owners.n_owners, ctx->run_dir, SNAPSHOT_FILE);
        return 0;
}

/* One run's view: what is now, what was (snapshot, history), and the diagnosis. Everything a run reads. */
struct run_view {
        struct observation now;
        struct snapshot before;
        bool have_snapshot;
        struct link_history history;
        struct findings findings;
};

static void run_view_done(struct run_view *v) {
        findings_done(&v->findings);
        observation_done(&v->now);
        snapshot_done(&v->before);
        link_history_done(&v->history);
}

/* Observe, compare against the snapshot and the history, then record the links seen. */
static int run_view_load(const struct context *ctx, uint64_t now, struct run_view *v) {
        /* Under a hook, most runs find nothing: the owners are looked up only when something is stale. */
        int r = ctx->hook ? observe_rules(&v->now) : observe(&v->now);
        if (r < 0)
                return r;

        r = snapshot_read(ctx->run_dir, &v->before);
        v->have_snapshot = r >= 0;
        if (r < 0 && r != -ENOENT)
                log_warning_errno(r, "Ignoring unreadable snapshot %s/%s: %m", ctx->run_dir, SNAPSHOT_FILE);
        r = history_read(ctx->state_dir, &v->history);
        if (r < 0)
                log_warning_errno(r, "Ignoring unreadable link history %s/%s: %m", ctx->state_dir, HISTORY_FILE);

        r = diagnose(&v->now, v->have_snapshot ? &v->before : NULL, &v->history, &v->findings);
        if (r >= 0 && ctx->hook && v->findings.n_stale > 0) {
                findings_done(&v->findings);
                if ((r = observe_owners(&v->now)) < 0)
                        return r;
                r = diagnose(&v->now, v->have_snapshot ? &v->before : NULL, &v->history, &v->findings);
        }
        if (r < 0)
                return log_error_errno(r, "Failed to compare against the snapshot: %m");

        /* After the diagnosis: the history must still say what the stale indexes were. */
        history_update(ctx, &v->history, &v->now.links, now);
        return 0;
}

static int cmd_check(const struct context *ctx) {
        _cleanup_(run_view_done) struct run_view v = {};
        int r;

        _cleanup_close_ int lock = run_begin(ctx);
        if (lock < 0)
                return lock;

        r = run_view_load(ctx, (uint64_t) time(NULL), &v);
        if (r < 0)
                return r;

        if (ctx->json) {
                _cleanup_(json_decrefp) json_t *j = report_json(&v.findings);
                if (!j || json_dumpf(j, ctx->out, JSON_INDENT(2)) < 0)
                        return log_oom();
                fputc('\n', ctx->out);
        } else if (!ctx->quiet || v.findings.n_stale > 0)
                report_human(&v.findings, ctx->out);

        return v.findings.n_stale > 0 ? EXIT_STALE : 0;
}

static void print_actions(FILE *out, const struct reconcile_result *res) {
        for (size_t i = 0; i < res->n_actions; i++) {
                const struct action *a = &res->actions[i];
                const struct plan_item *p = &a->plan;
                switch (a->state) {
                case ACTION_RELOADED:
                        fprintf(out, "table %s %s: reloaded %s in %.2f s (%s)\n", p->family, p->table, p->unit,
                                (double) a->result.duration_usec / 1e6, p->why);
                        break;
                case ACTION_FAILED:
                        fprintf(out, "table %s %s: reloading %s failed: %s (%s)\n", p->family, p->table, p->unit,
                                a->result.job_result[0] ? a->result.job_result : strerror(-a->error), p->why);
                        break;
                case ACTION_WOULD_RELOAD:
                        fprintf(out, "table %s %s: would reload %s (%s)\n", p->family, p->table, p->unit, p->why);
                        if (a->warning)
                                fprintf(out, "Warning: %s.\n", a->warning);
                        break;
                case ACTION_NEVER_TOUCH:
                        fprintf(out, "table %s %s: not reloading %s: it is in Reconcile-After-Upgrade::Never-Touch\n",
                                p->family, p->table, p->unit);
                        break;
                case ACTION_POLICY_FORBIDS:
                        fprintf(out, "table %s %s: not reloading %s: policy-rc.d forbids it\n", p->family, p->table,
                                p->unit);
                        break;
                case ACTION_NO_UNIT:
                        fprintf(out, "table %s %s: %s\n", p->family, p->table, p->why);
                        break;
                case ACTION_SAME_UNIT:
                        break;
                }
        }
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

/* What one reconcile run knows at its end, for the record. */
static void record_run(const struct context *ctx, struct record_input *in, const struct timespec *start,
                       json_t **ret_record) {
        struct timespec wall;
        clock_gettime(CLOCK_REALTIME, &wall);
        in->via = ctx->hook;
        in->seconds = seconds_since(start);
        in->finished = (double) wall.tv_sec + (double) (wall.tv_nsec / 1000) / 1e6;
        json_t *rec = record_build(in);
        if (!rec) {
                log_oom();
                return;
        }
        record_store(ctx->state_dir, rec);
        *ret_record = rec;
}

/* Read again after acting; left gets what is still stale. */
static int verify(const struct run_view *v, struct observation *again, struct findings *left) {
        int r;
        observation_done(again);
        findings_done(left);
        if ((r = links_dump(&again->links, NULL, NULL)) < 0 || (r = ruleset_read(&again->ruleset, NULL, NULL)) < 0)
                return log_error_errno(r, "Failed to read the ruleset again to verify: %m");
        r = diagnose(again, v->have_snapshot ? &v->before : NULL, &v->history, left);
        return r < 0 ? log_oom() : 0;
}

/* A set element as nft writes it: 2, 2 . 100.64.0.1 */
static void print_element(FILE *out, json_t *e) {
        json_t *concat = json_object_get(e, "concat"), *part;
        size_t i;
        if (json_is_string(e))
                fputs(json_string_value(e), out);
        else if (concat)
                json_array_foreach(concat, i, part) {
                        fputs(i ? " . " : "", out);
                        print_element(out, part);
                }
        else
                json_dumpf(e, out, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* Leftovers of scripts that add without flushing: delete those with a fresh twin, then verify again. Returns the
 * twins found (each marked "pruned" when deleted), or NULL when there were none. */
static json_t *prune_twins(const struct context *ctx, const struct run_view *v, struct observation *again,
                           struct findings *left) {
        _cleanup_(json_decrefp) json_t *twins = NULL;
        size_t k;
        json_t *t;
        int r;

        if (left->n_stale == 0)
                return NULL;
        if ((r = twins_find(left, &again->links, &twins)) < 0) {
                log_warning_errno(r, "Failed to look for fresh twins of the stale rules: %m");
                return NULL;
        }
        if (json_array_size(twins) == 0)
                return NULL;

        bool prune = ctx->config.prune_stale_twins;
        json_array_foreach(twins, k, t) {
                fprintf(ctx->out, "table %s %s: %s stale leftover ", json_string_value(json_object_get(t, "family")),
                        json_string_value(json_object_get(t, "table")), prune ? "deleting" : "not deleting");
                if (json_object_get(t, "chain"))
                        fprintf(ctx->out, "rule handle %lld in chain %s",
                                (long long) json_integer_value(json_object_get(t, "handle")),
                                json_string_value(json_object_get(t, "chain")));
                else {
                        fputs("element ", ctx->out);
                        print_element(ctx->out, json_object_get(t, "element"));
                        fprintf(ctx->out, " in set %s", json_string_value(json_object_get(t, "set")));
                }
                fputs(" (its fresh twin exists)\n", ctx->out);
        }
        if (!prune) {
                fprintf(ctx->out, "Reconcile-After-Upgrade::Prune-Stale-Twins is off: the leftovers stay.\n");
                return TAKE_PTR(twins);
        }
        if ((r = twins_prune(twins)) < 0)
                return TAKE_PTR(twins);
        json_array_foreach(twins, k, t) json_object_set_new(t, "pruned", json_true());
        (void) verify(v, again, left);
        return TAKE_PTR(twins);
}

static int cmd_reconcile(struct context *ctx, json_t **ret_record) {
        _cleanup_(run_view_done) struct run_view v = {};
        _cleanup_(observation_done) struct observation again = {};
        _cleanup_(findings_done) struct findings left = {};
        _cleanup_(reconcile_result_done) struct reconcile_result res = {};
        _cleanup_(package_changes_done) struct package_changes changes = {};
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(json_decrefp) json_t *packages = NULL, *twins = NULL, *lost = NULL;
        struct timespec start;
        uint64_t now = (uint64_t) time(NULL);
        int r;

        clock_gettime(CLOCK_MONOTONIC, &start);
        /* Under a hook in a chroot or image build: no daemon restarted, and the rules seen would be the host's. */
        if (ctx->hook && systemd_running() < 0) {
                printf("reconcile-after-upgrade: systemd is not running here (chroot or image build): skipped.\n");
                return 0;
        }

        _cleanup_close_ int lock = run_begin(ctx);
        if (lock < 0)
                return lock;

        /* Each dpkg run's packages are told once: by the first run after it, whatever it finds. */
        if (!ctx->dry_run && (r = package_changes_take(ctx->run_dir, &changes)) < 0)
                log_warning_errno(r, "Failed to read the packages dpkg touched from %s: %m", ctx->run_dir);

        r = run_view_load(ctx, now, &v);
        if (r < 0)
                return r;
        const struct findings *found = &v.findings;
        struct record_input in = {.time = now, .found = found};

        if (found->n_stale == 0) {
                if (!ctx->quiet)
                        fprintf(ctx->out, "No stale interface references.\n");
                return 0;
        }

        if (systemd_running() < 0)
                r = log_error_errno(ENOMEDIUM, "%zu stale interface references, but systemd is not running here "
                                               "(chroot?): nothing reloaded.", found->n_stale);
        else if ((r = units_bus_open(&bus)) < 0)
                r = log_error_errno(r, "%zu stale interface references, but the system bus is unreachable: %m; "
                                       "nothing reloaded.", found->n_stale);
        else if (act_system_stopping(bus) > 0)
                r = log_error_errno(ESHUTDOWN, "%zu stale interface references, but the system is shutting down: "
                                               "nothing reloaded.", found->n_stale);
        else if ((r = act_subscribe(bus)) < 0)
                r = log_error_errno(r, "Failed to subscribe to systemd's job signals: %m");
        if (r < 0) {
                if (!ctx->dry_run) {
                        in.outcome = OUTCOME_STALE;
                        record_run(ctx, &in, &start, ret_record);
                }
                return r;
        }

        struct reconcile_options opt = {.config = &ctx->config, .dry_run = ctx->dry_run,
                                        .policy_rc_d = "/usr/sbin/policy-rc.d", .ruleset = &v.now.ruleset};
        r = reconcile_plan_and_act(bus, &opt, found, &res);
        if (r < 0)
                return r;
        print_actions(ctx->out, &res);
        if (ctx->dry_run)
                return EXIT_STALE;

        in.res = &res;
        in.packages = packages = describe_packages(bus, found, &changes);

        bool acted = false, failed = false;
        for (size_t i = 0; i < res.n_actions; i++) {
                acted = acted || res.actions[i].state == ACTION_RELOADED || res.actions[i].state == ACTION_FAILED;
                failed = failed || res.actions[i].state == ACTION_FAILED;
        }
        if (!acted) {
                in.outcome = OUTCOME_STALE;
                record_run(ctx, &in, &start, ret_record);
                return EXIT_STALE;
        }

        /* Verify: whatever is still stale is said. The first observation stays: the findings point into it. */
        if ((r = verify(&v, &again, &left)) < 0) {
                in.outcome = OUTCOME_FAILED;
                record_run(ctx, &in, &start, ret_record);
                return r;
        }
        in.leftovers = twins = prune_twins(ctx, &v, &again, &left);

        in.lost = lost = ruleset_lost(&v.now.ruleset, &again.ruleset);
        if (!lost)
                return log_oom();
        size_t i;
        json_t *item;
        json_array_foreach(lost, i, item)
                fprintf(ctx->out, "Collateral loss: %s %s %s%s%s no longer exists after the reload\n",
                        json_object_get(item, "chain") ? "chain" : "table",
                        json_string_value(json_object_get(item, "family")),
                        json_string_value(json_object_get(item, "table")), json_object_get(item, "chain") ? " " : "",
                        json_object_get(item, "chain") ? json_string_value(json_object_get(item, "chain")) : "");

        /* What was just verified is the next run's "before": a dpkg -i later, with no Pre-Invoke snapshot of its
         * own, then compares against it, not against the state before this change. */
        r = snapshot_write(ctx->run_dir, now, &again.links, &again.ruleset, &v.now.owners, &v.now.units);
        if (r < 0)
                log_warning_errno(r, "Failed to write %s/%s: %m", ctx->run_dir, SNAPSHOT_FILE);

        in.left = &left;
        in.outcome = failed ? OUTCOME_FAILED
                     : json_array_size(lost) ? OUTCOME_DEGRADED
                     : left.n_stale ? OUTCOME_STALE
                                    : OUTCOME_FIXED;
        record_run(ctx, &in, &start, ret_record);
        if (left.n_stale == 0) {
                fprintf(ctx->out, "Verified: no stale interface references remain.\n");
                return failed || in.outcome == OUTCOME_DEGRADED ? EXIT_STALE : 0;
        }
        fprintf(ctx->out, "%zu stale interface references remain:\n", left.n_stale);
        report_human(&left, ctx->out);
        return EXIT_STALE;
}

/* dpkg's status-logger: never fails dpkg, and reads to the end so dpkg never writes into a closed pipe. */
static int cmd_dpkg_status(const struct context *ctx) {
        int r = 0;
        if (systemd_running() < 0)
                log_debug("systemd is not running here: not noting packages.");
        else if ((r = dir_ensure(ctx->run_dir)) < 0)
                log_warning_errno(r, "Failed to create run directory %s: %m", ctx->run_dir);
        else
                (void) dpkg_status_consume(stdin, ctx->run_dir, NULL);
        char buf[4096];
        while (fread(buf, 1, sizeof(buf), stdin) > 0)
                ;
        return 0;
}

static int cmd_history(const struct context *ctx) {
        return record_show_history(ctx->state_dir, ctx->json, stdout);
}

/* Set once from the configuration, before the alarm can fire: a signal handler may only write what exists. */
static char hook_timeout_line[160];

static void hook_timeout(int sig) {
        (void) sig;
        /* apt must go on: say it in one line, and exit 0 as every hook does. */
        (void) !write(STDOUT_FILENO, hook_timeout_line, strlen(hook_timeout_line));
        _exit(0);
}

/* Under apt or dpkg: bounded by the time budget, quiet unless something happened, and never a failure. */
static void hook_begin(struct context *ctx) {
        unsigned budget_s = (ctx->config.time_budget_ms + 999) / 1000;
        snprintf(hook_timeout_line, sizeof(hook_timeout_line),
                 "reconcile-after-upgrade: gave up after %u s (Reconcile-After-Upgrade::Time-Budget); "
                 "run 'reconcile-after-upgrade' by hand.\n", budget_s);
        (void) signal(SIGALRM, hook_timeout);
        alarm(budget_s);
        if (log_get_max_level() < LOG_DEBUG)
                log_set_max_level(LOG_ERR);
        ctx->quiet = true;
        ctx->out = fopen("/dev/null", "we");
        if (!ctx->out)
                ctx->out = stdout;
}

int main(int argc, char *argv[]) {
        enum { ARG_RUN_DIR = 0x100, ARG_STATE_DIR, ARG_JSON, ARG_VERSION, ARG_DRY_RUN, ARG_HOOK };
        static const struct option options[] = {
                {"run-dir", required_argument, NULL, ARG_RUN_DIR},
                {"state-dir", required_argument, NULL, ARG_STATE_DIR},
                {"json", no_argument, NULL, ARG_JSON},
                {"dry-run", no_argument, NULL, ARG_DRY_RUN},
                {"hook", required_argument, NULL, ARG_HOOK},
                {"quiet", no_argument, NULL, 'q'},
                {"verbose", no_argument, NULL, 'v'},
                {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, ARG_VERSION},
                {},
        };
        struct context ctx = {
                .run_dir = "/run/reconcile-after-upgrade",
                .state_dir = "/var/lib/reconcile-after-upgrade",
                .out = stdout,
        };
        int c, r;

        while ((c = getopt_long(argc, argv, "qvh", options, NULL)) >= 0)
                switch (c) {
                case ARG_RUN_DIR: ctx.run_dir = optarg; break;
                case ARG_STATE_DIR: ctx.state_dir = optarg; break;
                case ARG_JSON: ctx.json = true; break;
                case ARG_DRY_RUN: ctx.dry_run = true; break;
                case ARG_HOOK: ctx.hook = optarg; break;
                case 'q': ctx.quiet = true; break;
                case 'v': log_set_max_level(LOG_DEBUG); break;
                case 'h': help(); return 0;
                case ARG_VERSION: printf("reconcile-after-upgrade %s\n", PACKAGE_VERSION); return 0;
                default:
                        fprintf(stderr, "Try 'reconcile-after-upgrade --help'.\n");
                        /* a newer hook file calling an older binary must not fail apt either */
                        return ctx.hook ? 0 : EXIT_ERROR;
                }

        if (optind + 1 < argc) {
                log_error("Unexpected argument '%s'.", argv[optind + 1]);
                return ctx.hook ? 0 : EXIT_ERROR;
        }

        /* A malformed value has been reported and replaced by its default: go on. */
        (void) config_load(NULL, &ctx.config);
        if (ctx.hook)
                hook_begin(&ctx);

        _cleanup_(json_decrefp) json_t *record = NULL;
        const char *cmd = optind < argc ? argv[optind] : NULL;
        if (!cmd)
                r = cmd_reconcile(&ctx, &record);
        else if (streq(cmd, "snapshot"))
                r = cmd_snapshot(&ctx);
        else if (streq(cmd, "check"))
                r = cmd_check(&ctx);
        else if (streq(cmd, "history"))
                r = cmd_history(&ctx);
        else if (streq(cmd, "dpkg-status"))
                r = cmd_dpkg_status(&ctx);
        else {
                log_error("Unknown command '%s'; see 'reconcile-after-upgrade --help'.", cmd);
                r = -EINVAL;
        }

        if (ctx.hook) {
                /* A run that stopped on an error has said why in its one line already. */
                _cleanup_free_ char *line = record && r >= 0 ? record_one_line(record) : NULL;
                if (line)
                        printf("%s\n", line);
                r = 0;
        }
        if (ctx.out != stdout)
                fclose(ctx.out);
        config_done(&ctx.config);
        return r < 0 ? EXIT_ERROR : r;
}

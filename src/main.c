/* SPDX-License-Identifier: GPL-2.0-or-later */
/* main.c: the command line. The only place that talks to the user; exit status 0 fine, 1 stale, 2 error. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "diagnose.h"
#include "fileio.h"
#include "json-util.h"
#include "log.h"
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
        bool json;
        bool quiet;
        bool dry_run;
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
               "\n"
               "Options:\n"
               "  --json          print the findings as one JSON object\n"
               "  --dry-run       print the plan, touch nothing\n"
               "  --run-dir DIR   snapshot and lock (default %s)\n"
               "  --state-dir DIR link history (default %s)\n"
               "  -q, --quiet     print nothing on success\n"
               "  -v, --verbose   debug output on stderr\n"
               "  -h, --help      this text\n"
               "      --version   the version\n",
               "/run/reconcile-after-upgrade", "/var/lib/reconcile-after-upgrade");
}

/* Units are an addition to the diagnosis, not a condition of it: without systemd (chroot, build, namespace) the
 * checker still finds stale rules. */
static void observe_units(struct unit_invocations *ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        if (systemd_running() < 0) {
                log_debug("systemd is not running here: not reading units.");
                return;
        }
        r = units_bus_open(&bus);
        if (r < 0) {
                log_warning_errno(r, "Failed to connect to the system bus, not reading units: %m");
                return;
        }
        r = units_list_invocations(bus, ret);
        if (r < 0)
                log_warning_errno(r, "Failed to list systemd units: %m");
}

static int observe(struct observation *ret) {
        struct observation o = {};
        int r;

        r = links_dump(&o.links, NULL, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to list network interfaces: %m");
        r = ruleset_read(&o.ruleset, NULL, NULL);
        if (r < 0) {
                observation_done(&o);
                return log_error_errno(r, "Failed to read the nftables ruleset: %m");
        }
        r = owners_scan("/proc", &o.owners);
        if (r < 0) {
                observation_done(&o);
                return log_error_errno(r, "Failed to scan /proc for TUN devices: %m");
        }
        observe_units(&o.units);
        *ret = o;
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

        _cleanup_close_ int lock = run_begin(ctx);
        if (lock < 0)
                return lock;

        r = observe(&o);
        if (r < 0)
                return r;

        r = snapshot_write(ctx->run_dir, now, &o.links, &o.ruleset, &o.owners, &o.units);
        if (r < 0)
                return log_error_errno(r, "Failed to write %s/%s: %m", ctx->run_dir, SNAPSHOT_FILE);

        r = history_read(ctx->state_dir, &h);
        if (r < 0)
                log_warning_errno(r, "Ignoring unreadable link history %s/%s: %m", ctx->state_dir, HISTORY_FILE);
        history_update(ctx, &h, &o.links, now);

        if (!ctx->quiet)
                printf("Snapshot: %zu interfaces, %zu references by index, %zu TUN owners -> %s/%s\n",
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
        int r = observe(&v->now);
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
                if (!j || json_dumpf(j, stdout, JSON_INDENT(2)) < 0)
                        return log_oom();
                putchar('\n');
        } else if (!ctx->quiet || v.findings.n_stale > 0)
                report_human(&v.findings, stdout);

        return v.findings.n_stale > 0 ? EXIT_STALE : 0;
}

static void print_actions(const struct reconcile_result *res) {
        for (size_t i = 0; i < res->n_actions; i++) {
                const struct action *a = &res->actions[i];
                const struct plan_item *p = &a->plan;
                switch (a->state) {
                case ACTION_RELOADED:
                        printf("table %s %s: reloaded %s in %.2f s (%s)\n", p->family, p->table, p->unit,
                               (double) a->result.duration_usec / 1e6, p->why);
                        break;
                case ACTION_FAILED:
                        printf("table %s %s: reloading %s failed: %s (%s)\n", p->family, p->table, p->unit,
                               a->result.job_result[0] ? a->result.job_result : strerror(-a->error), p->why);
                        break;
                case ACTION_WOULD_RELOAD:
                        printf("table %s %s: would reload %s (%s)\n", p->family, p->table, p->unit, p->why);
                        break;
                case ACTION_NEVER_TOUCH:
                        printf("table %s %s: not reloading %s: it is in Reconcile-After-Upgrade::Never-Touch\n",
                               p->family, p->table, p->unit);
                        break;
                case ACTION_POLICY_FORBIDS:
                        printf("table %s %s: not reloading %s: policy-rc.d forbids it\n", p->family, p->table,
                               p->unit);
                        break;
                case ACTION_NO_UNIT:
                        printf("table %s %s: %s\n", p->family, p->table, p->why);
                        break;
                case ACTION_SAME_UNIT:
                        break;
                }
        }
}

static void record_run(const struct context *ctx, uint64_t now, enum record_outcome outcome,
                       const struct findings *found, const struct reconcile_result *res, const struct findings *left,
                       json_t *lost, json_t *pruned) {
        _cleanup_(json_decrefp) json_t *rec = record_build(now, outcome, found, res, left, lost, pruned);
        if (!rec) {
                log_oom();
                return;
        }
        record_store(ctx->state_dir, rec);
}

static int cmd_reconcile(struct context *ctx) {
        _cleanup_(run_view_done) struct run_view v = {};
        _cleanup_(observation_done) struct observation verify = {};
        _cleanup_(findings_done) struct findings left = {};
        _cleanup_(reconcile_result_done) struct reconcile_result res = {};
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        uint64_t now = (uint64_t) time(NULL);
        int r;

        _cleanup_close_ int lock = run_begin(ctx);
        if (lock < 0)
                return lock;

        r = run_view_load(ctx, now, &v);
        if (r < 0)
                return r;
        const struct findings *found = &v.findings;
        const struct snapshot *before = v.have_snapshot ? &v.before : NULL;

        if (found->n_stale == 0) {
                if (!ctx->quiet)
                        printf("No stale interface references.\n");
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
                if (!ctx->dry_run)
                        record_run(ctx, now, OUTCOME_STALE, found, NULL, NULL, NULL, NULL);
                return r;
        }

        struct reconcile_options opt = {.config = &ctx->config, .dry_run = ctx->dry_run,
                                        .policy_rc_d = "/usr/sbin/policy-rc.d"};
        r = reconcile_plan_and_act(bus, &opt, found, &res);
        if (r < 0)
                return r;
        print_actions(&res);

        if (ctx->dry_run)
                return EXIT_STALE;

        bool acted = false, failed = false;
        for (size_t i = 0; i < res.n_actions; i++) {
                acted = acted || res.actions[i].state == ACTION_RELOADED || res.actions[i].state == ACTION_FAILED;
                failed = failed || res.actions[i].state == ACTION_FAILED;
        }
        if (!acted) {
                record_run(ctx, now, OUTCOME_STALE, found, &res, NULL, NULL, NULL);
                return EXIT_STALE;
        }

        /* Verify: read the ruleset again; whatever is still stale is said. The first observation stays: the
         * findings point into it. */
        if ((r = links_dump(&verify.links, NULL, NULL)) < 0 || (r = ruleset_read(&verify.ruleset, NULL, NULL)) < 0) {
                record_run(ctx, now, OUTCOME_FAILED, found, &res, NULL, NULL, NULL);
                return log_error_errno(r, "Failed to read the ruleset again to verify: %m");
        }
        r = diagnose(&verify, before, &v.history, &left);
        if (r < 0)
                return log_oom();

        /* Leftovers of scripts that add without flushing: delete those with a fresh twin, then verify again. */
        _cleanup_(json_decrefp) json_t *twins = NULL;
        if (left.n_stale > 0 && (r = twins_find(&left, &verify.links, &twins)) < 0)
                log_warning_errno(r, "Failed to look for fresh twins of the stale rules: %m");
        if (twins && json_array_size(twins) > 0) {
                size_t k;
                json_t *t;
                bool prune = ctx->config.prune_stale_twins;
                json_array_foreach(twins, k, t)
                        printf("table %s %s: %s stale leftover rule handle %lld in chain %s (its fresh twin exists)\n",
                               json_string_value(json_object_get(t, "family")),
                               json_string_value(json_object_get(t, "table")), prune ? "deleting" : "not deleting",
                               (long long) json_integer_value(json_object_get(t, "handle")),
                               json_string_value(json_object_get(t, "chain")));
                if (!prune)
                        printf("Reconcile-After-Upgrade::Prune-Stale-Twins is off: the leftovers stay.\n");
                else if ((r = twins_prune(twins)) >= 0) {
                        findings_done(&left);
                        observation_done(&verify);
                        if ((r = links_dump(&verify.links, NULL, NULL)) < 0 || (r = ruleset_read(&verify.ruleset, NULL, NULL)) < 0)
                                return log_error_errno(r, "Failed to read the ruleset again to verify: %m");
                        if ((r = diagnose(&verify, before, &v.history, &left)) < 0)
                                return log_oom();
                        json_array_foreach(twins, k, t) json_object_set_new(t, "pruned", json_true());
                }
        }

        _cleanup_(json_decrefp) json_t *lost = ruleset_lost(&v.now.ruleset, &verify.ruleset);
        if (!lost)
                return log_oom();
        size_t i;
        json_t *item;
        json_array_foreach(lost, i, item)
                printf("Collateral loss: %s %s %s%s%s no longer exists after the reload\n",
                       json_object_get(item, "chain") ? "chain" : "table",
                       json_string_value(json_object_get(item, "family")), json_string_value(json_object_get(item, "table")),
                       json_object_get(item, "chain") ? " " : "",
                       json_object_get(item, "chain") ? json_string_value(json_object_get(item, "chain")) : "");

        enum record_outcome outcome = failed ? OUTCOME_FAILED
                                      : json_array_size(lost) ? OUTCOME_DEGRADED
                                      : left.n_stale ? OUTCOME_STALE
                                                     : OUTCOME_FIXED;
        record_run(ctx, now, outcome, found, &res, &left, lost, twins);
        if (left.n_stale == 0) {
                printf("Verified: no stale interface references remain.\n");
                return failed || outcome == OUTCOME_DEGRADED ? EXIT_STALE : 0;
        }
        printf("%zu stale interface references remain:\n", left.n_stale);
        report_human(&left, stdout);
        return EXIT_STALE;
}

static int cmd_history(const struct context *ctx) {
        return record_show_history(ctx->state_dir, ctx->json, stdout);
}

int main(int argc, char *argv[]) {
        enum { ARG_RUN_DIR = 0x100, ARG_STATE_DIR, ARG_JSON, ARG_VERSION, ARG_DRY_RUN };
        static const struct option options[] = {
                {"run-dir", required_argument, NULL, ARG_RUN_DIR},
                {"state-dir", required_argument, NULL, ARG_STATE_DIR},
                {"json", no_argument, NULL, ARG_JSON},
                {"dry-run", no_argument, NULL, ARG_DRY_RUN},
                {"quiet", no_argument, NULL, 'q'},
                {"verbose", no_argument, NULL, 'v'},
                {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, ARG_VERSION},
                {},
        };
        struct context ctx = {
                .run_dir = "/run/reconcile-after-upgrade",
                .state_dir = "/var/lib/reconcile-after-upgrade",
        };
        int c, r;

        while ((c = getopt_long(argc, argv, "qvh", options, NULL)) >= 0)
                switch (c) {
                case ARG_RUN_DIR: ctx.run_dir = optarg; break;
                case ARG_STATE_DIR: ctx.state_dir = optarg; break;
                case ARG_JSON: ctx.json = true; break;
                case ARG_DRY_RUN: ctx.dry_run = true; break;
                case 'q': ctx.quiet = true; break;
                case 'v': log_set_max_level(LOG_DEBUG); break;
                case 'h': help(); return 0;
                case ARG_VERSION: printf("reconcile-after-upgrade %s\n", PACKAGE_VERSION); return 0;
                default:
                        fprintf(stderr, "Try 'reconcile-after-upgrade --help'.\n");
                        return EXIT_ERROR;
                }

        if (optind + 1 < argc) {
                log_error("Unexpected argument '%s'.", argv[optind + 1]);
                return EXIT_ERROR;
        }

        /* A malformed value has been reported and replaced by its default: go on. */
        (void) config_load(NULL, &ctx.config);

        const char *cmd = optind < argc ? argv[optind] : NULL;
        if (!cmd)
                r = cmd_reconcile(&ctx);
        else if (streq(cmd, "snapshot"))
                r = cmd_snapshot(&ctx);
        else if (streq(cmd, "check"))
                r = cmd_check(&ctx);
        else if (streq(cmd, "history"))
                r = cmd_history(&ctx);
        else {
                log_error("Unknown command '%s'; see 'reconcile-after-upgrade --help'.", cmd);
                return EXIT_ERROR;
        }
        config_done(&ctx.config);
        return r < 0 ? EXIT_ERROR : r;
}

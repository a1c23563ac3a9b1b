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
#include "record.h"
#include "log.h"
#include "metrics.h"
#include "names.h"
#include "packages.h"
#include "report.h"
#include "state.h"
#include "status.h"
#include "pipeline.h"
#include "units.h"
#include "watch.h"

#define EXIT_STALE 1
#define EXIT_ERROR 2

struct context {
        const char *run_dir;
        const char *state_dir;
        const char *hook; /* "apt", "dpkg-trigger": run by apt or dpkg, which must never see it fail */
        bool json;
        bool nagios;
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
               "  status          stale references now, the last run, the watcher; exit 0 fine, 1 stale, 2 error\n"
               "  history         the runs that found or did something (--json: the raw records)\n"
               "  dpkg-status     read dpkg's status-logger stream on stdin, note the packages it touches\n"
               "  watch           repair after restarts apt never sees (the service); SIGHUP re-reads the\n"
               "                  configuration\n"
               "\n"
               "Options:\n"
               "  --json          print the findings or the result as one JSON object\n"
               "  --nagios        check as a monitoring plugin: one line, exit 0 OK, 1 WARNING, 2 CRITICAL,\n"
               "                  3 UNKNOWN; changes nothing\n"
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

/* What the run had to say besides its result, at the level the user asked for (under a hook: errors only); and
 * the one line saying why it stopped short. */
static void print_notes(const struct context *ctx, const struct pipeline_result *res) {
        for (size_t i = 0; i < res->n_notes; i++)
                if (res->notes[i].level <= log_get_max_level())
                        fprintf(stderr, "reconcile-after-upgrade: %s\n", res->notes[i].text);
        if (res->problem)
                fprintf(stderr, "reconcile-after-upgrade: %s\n", res->problem);
}

static struct pipeline_options pipeline_options(const struct context *ctx) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        return (struct pipeline_options){
                .deadline_usec = (uint64_t) now.tv_sec * 1000000 + (uint64_t) now.tv_nsec / 1000 +
                                 (uint64_t) ctx->config.time_budget_ms * 1000,
                .run_dir = ctx->run_dir,
                .state_dir = ctx->state_dir,
                .config = &ctx->config,
                .via = ctx->hook,
                .dry_run = ctx->dry_run,
                .lazy_owners = ctx->hook != NULL,
        };
}

static int print_json(const struct context *ctx, json_t *j) {
        if (!j || json_dumpf(j, ctx->out, JSON_INDENT(2)) < 0)
                return log_oom();
        fputc('\n', ctx->out);
        return 0;
}

static int cmd_status(const struct context *ctx) {
        _cleanup_(status_done) struct status s = {};
        (void) status_gather(pipeline_options(ctx), true, &s);
        if (ctx->json) {
                _cleanup_(json_decrefp) json_t *j = status_json(&s);
                int r = print_json(ctx, j);
                if (r < 0)
                        return r;
        } else
                status_print(&s, ctx->out);
        return status_exit(&s);
}

static int cmd_snapshot(const struct context *ctx) {
        _cleanup_(pipeline_result_done) struct pipeline_result res = {};
        struct pipeline_options opt = pipeline_options(ctx);

        /* A chroot or an image build: no daemons restart there, and the rules seen would be the host's. */
        if (ctx->hook && systemd_running() < 0)
                return 0;
        opt.lazy_owners = false;
        int r = pipeline_run(&opt, JOB_SNAPSHOT, &res);
        print_notes(ctx, &res);
        if (r < 0)
                return r;
        const struct observation *o = &res.view.now;
        if (ctx->json) {
                _cleanup_free_ char *file = NULL;
                if (asprintf(&file, "%s/%s", ctx->run_dir, SNAPSHOT_FILE) < 0)
                        return log_oom();
                _cleanup_(json_decrefp) json_t *j = json_pack("{s:I, s:I, s:I, s:I, s:s}", "interfaces",
                                                              (json_int_t) o->links.n_links, "references",
                                                              (json_int_t) o->ruleset.n_refs, "device_hooks",
                                                              (json_int_t) o->ruleset.n_hooks, "owners",
                                                              (json_int_t) o->owners.n_owners, "file", file);
                return print_json(ctx, j);
        }
        if (!ctx->quiet)
                fprintf(ctx->out,
                        "Snapshot: %zu interfaces, %zu references by index, %zu device-bound chains and flowtables, "
                        "%zu TUN owners -> %s/%s\n",
                        o->links.n_links, o->ruleset.n_refs, o->ruleset.n_hooks, o->owners.n_owners, ctx->run_dir,
                        SNAPSHOT_FILE);
        return 0;
}

static int cmd_check(const struct context *ctx) {
        _cleanup_(pipeline_result_done) struct pipeline_result res = {};
        struct pipeline_options opt = pipeline_options(ctx);
        if (ctx->nagios) {
                _cleanup_(status_done) struct status s = {};
                (void) status_gather(opt, false, &s);
                return status_nagios(&s, ctx->out);
        }
        opt.lazy_owners = false;
        int r = pipeline_run(&opt, JOB_CHECK, &res);
        print_notes(ctx, &res);
        if (r < 0)
                return r;
        const struct findings *f = &res.view.findings;

        if (ctx->json) {
                _cleanup_(json_decrefp) json_t *j = report_json(f);
                if ((r = print_json(ctx, j)) < 0)
                        return r;
        } else if (!ctx->quiet || findings_stale(f) > 0)
                report_human(f, ctx->out);

        return findings_stale(f) > 0 ? EXIT_STALE : 0;
}

static void print_actions(FILE *out, const struct reconcile_result *res) {
        for (size_t i = 0; i < res->n_actions; i++) {
                const struct action *a = &res->actions[i];
                const struct plan_item *p = &a->plan;
                fprintf(out, "table %s %s: ", p->family, NAME(p->table));
                switch (a->reload) {
                case RELOAD_DONE:
                        fprintf(out, "reloaded %s in %.2f s (%s; %s)\n", p->unit,
                                (double) a->result.duration_usec / 1e6, p->why, a->why);
                        continue;
                case RELOAD_SAME_UNIT:
                        fprintf(out, "reloaded with %s\n", p->unit);
                        continue;
                case RELOAD_WOULD:
                        fprintf(out, "would reload %s (%s; %s)\n", p->unit, p->why, a->why);
                        continue;
                case RELOAD_FAILED:
                        fprintf(out, "reloading %s failed: %s; ", p->unit,
                                a->result.job_result[0] ? a->result.job_result : strerror(-a->error));
                        break;
                case RELOAD_NONE:
                        break;
                }
                switch (a->rebind) {
                case REBIND_DONE:
                        if (a->rebound)
                                fprintf(out, "rebound %zu stale reference(s) in place%s", a->rebound,
                                        a->pruned ? ", " : "");
                        if (a->pruned)
                                fprintf(out, "deleted %zu stale leftover(s)", a->pruned);
                        fprintf(out, "%s", a->exact ? ", read back exact" : "");
                        break;
                case REBIND_WOULD:
                        if (a->rebound)
                                fprintf(out, "would rebind %zu stale reference(s) in place%s", a->rebound,
                                        a->pruned ? ", " : "");
                        if (a->pruned)
                                fprintf(out, "would delete %zu stale leftover(s)", a->pruned);
                        break;
                case REBIND_FAILED:
                        fprintf(out, "rebind failed: %s", a->rebind_error ? a->rebind_error : "?");
                        break;
                case REBIND_NONE:
                        fprintf(out, "nothing repaired");
                        break;
                }
                if (a->kept)
                        fprintf(out, "; %zu left as they are", a->kept);
                fprintf(out, " (%s)\n", a->reload == RELOAD_FAILED ? "rebound instead" : a->why);
        }
}

static void print_place(FILE *out, json_t *t) {
        fprintf(out, "table %s %s: ", json_string_value(json_object_get(t, "family")),
                json_string_value(json_object_get(t, "table")));
        if (json_object_get(t, "chain"))
                fprintf(out, "rule handle %lld in chain %s", (long long) json_integer_value(json_object_get(t, "handle")),
                        json_string_value(json_object_get(t, "chain")));
        else
                fprintf(out, "element holding index %lld%s%s%s in set %s",
                        (long long) json_integer_value(json_object_get(t, "ifindex")),
                        json_is_string(json_object_get(t, "was")) ? " (was " : "",
                        json_string_value(json_object_get(t, "was")) ?: "",
                        json_is_string(json_object_get(t, "was")) ? ")" : "",
                        json_string_value(json_object_get(t, "set")));
}

static void print_leftovers(const struct context *ctx, json_t *leftovers) {
        size_t k;
        json_t *t;
        json_array_foreach(leftovers, k, t) {
                bool pruned = json_is_true(json_object_get(t, "pruned"));
                fputs(pruned ? "Deleted stale leftover " : "Not deleting stale leftover ", ctx->out);
                print_place(ctx->out, t);
                fputs(" (its fresh twin exists)\n", ctx->out);
        }
        if (json_array_size(leftovers) > 0 && !ctx->config.prune_stale_twins)
                fprintf(ctx->out, "Reconcile-After-Upgrade::Prune-Stale-Twins is off: the leftovers stay.\n");
}

/* What was left as it was, why, and what to run. */
static void print_not_repaired(const struct context *ctx, json_t *kept) {
        size_t k;
        json_t *t;
        json_array_foreach(kept, k, t) {
                const char *was = json_string_value(json_object_get(t, "was"));
                fputs("Not repaired: ", ctx->out);
                print_place(ctx->out, t);
                fprintf(ctx->out, ": %s; ", json_string_value(json_object_get(t, "why")));
                if (was)
                        fprintf(ctx->out, "once %s exists again, run 'reconcile-after-upgrade'\n", was);
                else
                        fprintf(ctx->out, "reload what loads table %s %s (e.g. systemctl restart nftables.service)\n",
                                json_string_value(json_object_get(t, "family")),
                                json_string_value(json_object_get(t, "table")));
        }
}

static void print_device_list(FILE *out, json_t *names) {
        size_t i;
        json_t *v;
        json_array_foreach(names, i, v) fprintf(out, "%s%s", i ? ", " : "", json_string_value(v));
}

/* "table netdev edge, chain in: re-created on ts0 with its 2 rules" */
static void print_hooks(const struct context *ctx, json_t *hooks) {
        size_t i;
        json_t *h;
        json_array_foreach(hooks, i, h) {
                const char *action = json_string_value(json_object_get(h, "action"));
                const char *result = json_string_value(json_object_get(h, "result"));
                bool flowtable = json_object_get(h, "flowtable");
                fprintf(ctx->out, "table %s %s, %s %s: ", json_string_value(json_object_get(h, "family")),
                        json_string_value(json_object_get(h, "table")), flowtable ? "flowtable" : "chain",
                        json_string_value(json_object_get(h, flowtable ? "flowtable" : "chain")));
                if (streq(action, "leave")) {
                        fprintf(ctx->out, "left as it is: %s\n", json_string_value(json_object_get(h, "why")));
                        continue;
                }
                bool would = ctx->dry_run || streq(result, "planned");
                fputs(streq(action, "add-device") ? (would ? "would hook " : "hooked ")
                      : streq(action, "re-create") ? (would ? "would re-create on " : "re-created on ")
                                                   : (would ? "would replace (this kernel cannot add a device to a "
                                                              "chain) on "
                                                            : "replaced (this kernel cannot add a device to a chain) "
                                                              "on "),
                      ctx->out);
                print_device_list(ctx->out, json_object_get(h, streq(action, "add-device") ? "back" : "devices_after"));
                if (streq(action, "add-device"))
                        fputs(" again", ctx->out);
                else
                        fprintf(ctx->out, " with its %lld rule(s)",
                                (long long) json_integer_value(json_object_get(h, "rules")));
                if (streq(result, "failed"))
                        fprintf(ctx->out, ": FAILED, %s", json_string_value(json_object_get(h, "error")));
                else if (streq(result, "fixed"))
                        fputs(", read back as planned", ctx->out);
                fputc('\n', ctx->out);
        }
}

/* The run as one object: its verdict, the counts, what each table got (planned, with --dry-run), the record. */
static int print_run_json(const struct context *ctx, int r, const struct pipeline_result *res) {
        const struct findings *found = &res->view.findings;
        const char *outcome = r < 0 ? "error"
                              : res->record ? record_outcome_to_string(res->outcome)
                              : findings_stale(found) == 0 ? "nothing-stale"
                              : ctx->dry_run ? "dry-run"
                                             : "stale";
        json_t *actions = json_array();
        for (size_t i = 0; actions && i < res->res.n_actions; i++)
                if (json_array_append_new(actions, record_action_json(&res->res.actions[i])) < 0)
                        actions = (json_decref(actions), NULL);
        _cleanup_(json_decrefp) json_t *j = json_pack(
                "{s:s, s:I, s:I, s:o?, s:O?, s:O?, s:O?, s:s?, s:b}", "outcome", outcome, "stale_found",
                (json_int_t) findings_stale(found), "stale_left",
                (json_int_t) findings_stale(res->verified ? &res->left : found), "actions", actions, "record",
                res->record ? res->record : json_null(), "not_repaired", res->not_repaired ? res->not_repaired : json_null(),
                "hooks", res->hooks ? res->hooks : json_null(), "problem", res->problem, "dry_run", ctx->dry_run);
        int k = print_json(ctx, j);
        if (k < 0)
                return k;
        if (r < 0)
                return r;
        return streq(outcome, "nothing-stale") || streq(outcome, "fixed") ? 0 : EXIT_STALE;
}

static int cmd_reconcile(const struct context *ctx, json_t **ret_record) {
        _cleanup_(pipeline_result_done) struct pipeline_result res = {};
        struct pipeline_options opt = pipeline_options(ctx);

        /* Under a hook in a chroot or image build: no daemon restarted, and the rules seen would be the host's. */
        if (ctx->hook && systemd_running() < 0) {
                printf("reconcile-after-upgrade: systemd is not running here (chroot or image build): skipped.\n");
                return 0;
        }

        int r = pipeline_run(&opt, JOB_RECONCILE, &res);
        print_notes(ctx, &res);
        if (res.record)
                *ret_record = json_incref(res.record);
        if (ctx->json && !ctx->hook)
                return print_run_json(ctx, r, &res);

        if (r < 0)
                return r;

        if (findings_stale(&res.view.findings) == 0) {
                if (!ctx->quiet) {
                        report_unreadable(&res.view.findings, ctx->out);
                        fprintf(ctx->out, "No stale interface references.\n");
                }
                return 0;
        }
        if (res.stop != STOP_NONE && !res.acted)
                return -ENOMEDIUM;
        print_actions(ctx->out, &res.res);
        print_hooks(ctx, res.hooks);
        print_leftovers(ctx, res.leftovers);
        print_not_repaired(ctx, res.not_repaired);
        if (ctx->dry_run || !res.acted)
                return EXIT_STALE;
        if (!res.verified)
                return -EIO;

        size_t i;
        json_t *item;
        json_array_foreach(res.lost, i, item)
                fprintf(ctx->out, "Collateral loss: %s %s %s%s%s no longer exists after the reload\n",
                        json_object_get(item, "chain") ? "chain" : "table",
                        json_string_value(json_object_get(item, "family")),
                        json_string_value(json_object_get(item, "table")), json_object_get(item, "chain") ? " " : "",
                        json_object_get(item, "chain") ? json_string_value(json_object_get(item, "chain")) : "");

        if (findings_stale(&res.left) == 0) {
                fprintf(ctx->out, "Verified: no stale interface references remain.\n");
                return res.outcome == OUTCOME_FIXED ? 0 : EXIT_STALE;
        }
        fprintf(ctx->out, "%zu stale interface references remain:\n", findings_stale(&res.left));
        report_human(&res.left, ctx->out);
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
        /* dpkg's stream ended: its run is over. apt holds its frontend lock for dpkg and says so in this variable;
         * its Post-Invoke hook is due now. */
        struct timespec wall;
        clock_gettime(CLOCK_REALTIME, &wall);
        if (systemd_running() >= 0 && getenv("DPKG_FRONTEND_LOCKED") &&
            (r = metrics_apt_ran(config_metrics_dir(&ctx->config), (double) wall.tv_sec + wall.tv_nsec / 1e9)) < 0)
                log_warning_errno(r, "Failed to write %s/%s: %m", config_metrics_dir(&ctx->config), METRICS_APT_FILE);
        return 0;
}

static int cmd_history(const struct context *ctx) {
        return record_show_history(ctx->state_dir, ctx->json, stdout);
}

/* Set once from the configuration, before the alarm can fire: a signal handler may only write what exists. */
static char budget_line[160];
static int budget_exit;

static void budget_spent(int sig) {
        (void) sig;
        /* Under a hook apt must go on: one line, exit 0 as every hook does; by hand, exit 2 (an error). */
        (void) !write(budget_exit ? STDERR_FILENO : STDOUT_FILENO, budget_line, strlen(budget_line));
        _exit(budget_exit);
}

/* Every run is bounded by the time budget: a wedged bus or kernel must not hold apt, or a shell, forever. */
static void budget_begin(const struct context *ctx) {
        unsigned budget_s = (ctx->config.time_budget_ms + 999) / 1000;
        snprintf(budget_line, sizeof(budget_line),
                 "reconcile-after-upgrade: gave up after %u s (Reconcile-After-Upgrade::Time-Budget)%s\n", budget_s,
                 ctx->hook ? "; run 'reconcile-after-upgrade' by hand." : ".");
        budget_exit = ctx->hook ? 0 : EXIT_ERROR;
        (void) signal(SIGALRM, budget_spent);
        alarm(budget_s);
}

/* Under apt or dpkg: bounded by the time budget, quiet unless something happened, and never a failure. */
static void hook_begin(struct context *ctx) {
        if (log_get_max_level() < LOG_DEBUG)
                log_set_max_level(LOG_ERR);
        ctx->quiet = true;
        ctx->out = fopen("/dev/null", "we");
        if (!ctx->out)
                ctx->out = stdout;
}

int main(int argc, char *argv[]) {
        enum { ARG_RUN_DIR = 0x100, ARG_STATE_DIR, ARG_JSON, ARG_NAGIOS, ARG_VERSION, ARG_DRY_RUN, ARG_HOOK };
        static const struct option options[] = {
                {"run-dir", required_argument, NULL, ARG_RUN_DIR},
                {"state-dir", required_argument, NULL, ARG_STATE_DIR},
                {"json", no_argument, NULL, ARG_JSON},
                {"nagios", no_argument, NULL, ARG_NAGIOS},
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
                case ARG_NAGIOS: ctx.nagios = true; break;
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
        const char *cmd = optind < argc ? argv[optind] : NULL;
        /* Not the status-logger: it lives as long as dpkg's run, and must read its stream to the end; nor the
         * watcher, which bounds each of its runs. */
        if (!cmd || (!streq(cmd, "dpkg-status") && !streq(cmd, "watch")))
                budget_begin(&ctx);
        if (ctx.hook)
                hook_begin(&ctx);

        _cleanup_(json_decrefp) json_t *record = NULL;
        if (!cmd)
                r = cmd_reconcile(&ctx, &record);
        else if (streq(cmd, "snapshot"))
                r = cmd_snapshot(&ctx);
        else if (streq(cmd, "check"))
                r = cmd_check(&ctx);
        else if (streq(cmd, "status"))
                r = cmd_status(&ctx);
        else if (streq(cmd, "history"))
                r = cmd_history(&ctx);
        else if (streq(cmd, "dpkg-status"))
                r = cmd_dpkg_status(&ctx);
        else if (streq(cmd, "watch") && !ctx.hook) {
                /* a service: when it started, stopped, backed off is what its journal is for */
                if (log_get_max_level() < LOG_NOTICE)
                        log_set_max_level(LOG_NOTICE);
                r = watch_main(&(struct watch_options){.run_dir = ctx.run_dir, .state_dir = ctx.state_dir,
                                                       .config = &ctx.config});
        } else {
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

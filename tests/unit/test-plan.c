/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The planner's decisions: configuration first, then units that depend on the daemon (every dependency kind,
 * template instances, PartOf= propagation) and run nft directly or through scripts, then a unit whose
 * configuration creates the table; and the proof a reload needs before it may run. Unit facts are written as
 * systemd reports them over D-Bus; the scripts and nft files are in tests/fixtures/units. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "plan.h"

#define ROOT FIXTURES "/units"
#define STRV(...) ((char *[]){__VA_ARGS__, NULL})

static const char *const tailscaled[] = {"tailscaled.service", NULL};

static struct plan_item plan(const struct config *c, const struct unit_info *units, size_t n, const char *family,
                             const char *table, const char *const *daemons) {
        struct plan_request req = {.family = family, .table = table, .daemon_units = daemons};
        struct plan_item item;
        assert_int_equal(plan_table(c, units, n, &req, ROOT, &item), 0);
        return item;
}

static void test_exec_runs_nft(void **state) {
        assert_true(exec_runs_nft("/usr/sbin/nft -f /etc/nftables.conf", ROOT));
        assert_true(exec_runs_nft("/bin/sh -c 'nft flush ruleset; nft -f /etc/x'", ROOT));
        assert_true(exec_runs_nft("/etc/nftables-local.sh", ROOT));
        assert_true(exec_runs_nft("/bin/sh /etc/nftables-local.sh start", ROOT));
        assert_true(exec_runs_nft("/etc/wrapper.sh", ROOT)); /* a script that calls a script */
        assert_false(exec_runs_nft("/etc/not-nft.sh", ROOT));
        assert_false(exec_runs_nft("/etc/binary-like", ROOT)); /* not a #! script */
        assert_false(exec_runs_nft("/usr/sbin/tailscaled --state=/var/lib/tailscale", ROOT));
        assert_false(exec_runs_nft("/usr/sbin/nftables-exporter", ROOT));
}

/* The post-mortem: Wants= only, a oneshot running the non-flushing script. Found with no configuration. */
static void test_postmortem_wants(void **state) {
        struct config c;
        config_defaults(&c);
        struct unit_info units[] = {
                {.name = "tailscaled.service", .active_state = "active", .exec = STRV("/usr/sbin/tailscaled")},
                {.name = "haproxy.service", .active_state = "active", .deps[DEP_AFTER] = STRV("tailscaled.service"),
                 .exec = STRV("/usr/sbin/haproxy -f /etc/haproxy/haproxy.cfg")},
                {.name = "nftables-local.service", .active_state = "active",
                 .deps[DEP_WANTS] = STRV("tailscaled.service"), .exec = STRV("/etc/nftables-local.sh")},
                {.name = "nftables.service", .active_state = "active", .exec = STRV("/usr/sbin/nft -f /etc/nftables.conf")},
        };
        struct plan_item it = plan(&c, units, 4, "inet", "filter", tailscaled);
        assert_int_equal(it.reason, PLAN_DEPENDENCY);
        assert_string_equal(it.unit, "nftables-local.service");
        assert_string_equal(it.why, "Wants=tailscaled.service and it runs nft");
        assert_false(it.never_touch);
        plan_item_done(&it);
}

static void test_every_dependency_kind(void **state) {
        struct config c;
        config_defaults(&c);
        for (enum dep_kind k = 0; k < _DEP_MAX; k++) {
                struct unit_info units[] = {
                        {.name = "tailscaled.service", .active_state = "active"},
                        {.name = "fw.service", .active_state = "active", .exec = STRV("/usr/sbin/nft -f /etc/fw.nft")},
                };
                units[1].deps[k] = STRV("tailscaled.service");
                struct plan_item it = plan(&c, units, 2, "inet", "filter", tailscaled);
                assert_int_equal(it.reason, PLAN_DEPENDENCY);
                assert_string_equal(it.unit, "fw.service");
                char why[128];
                snprintf(why, sizeof(why), "%s=tailscaled.service and it runs nft", dep_kind_to_string(k));
                assert_string_equal(it.why, why);
                plan_item_done(&it);
        }
}

/* tinc@lab.service is PartOf=tinc.service; a firewall instance bound to tinc.service follows it. */
static void test_template_instance_and_partof(void **state) {
        struct config c;
        config_defaults(&c);
        static const char *const tinc[] = {"tinc@lab.service", NULL};
        struct unit_info units[] = {
                {.name = "tinc@lab.service", .active_state = "active", .deps[DEP_PART_OF] = STRV("tinc.service")},
                {.name = "tinc.service", .active_state = "active"},
                {.name = "firewall@lab.service", .active_state = "active", .deps[DEP_BINDS_TO] = STRV("tinc.service"),
                 .exec = STRV("/bin/sh -c 'nft -f /etc/firewall/lab.nft'")},
        };
        struct plan_item it = plan(&c, units, 3, "ip", "vpn", tinc);
        assert_string_equal(it.unit, "firewall@lab.service");
        assert_string_equal(it.why, "BindsTo=tinc.service and it runs nft");
        plan_item_done(&it);
}

static void test_configuration_wins(void **state) {
        struct config c;
        config_defaults(&c);
        struct unit_map_entry table_map[] = {{.from = "inet filter", .unit = "my-fw.service"}};
        struct unit_map_entry daemon_map[] = {{.from = "tailscaled.service", .unit = "other-fw.service"}};
        struct unit_info units[] = {
                {.name = "tailscaled.service", .active_state = "active"},
                {.name = "nftables-local.service", .active_state = "active",
                 .deps[DEP_WANTS] = STRV("tailscaled.service"), .exec = STRV("/etc/nftables-local.sh")},
        };

        c.daemon_units = daemon_map, c.n_daemon_units = 1;
        struct plan_item it = plan(&c, units, 2, "inet", "filter", tailscaled);
        assert_int_equal(it.reason, PLAN_CONFIG_DAEMON);
        assert_string_equal(it.unit, "other-fw.service");
        plan_item_done(&it);

        c.table_units = table_map, c.n_table_units = 1;
        it = plan(&c, units, 2, "inet", "filter", tailscaled);
        assert_int_equal(it.reason, PLAN_CONFIG_TABLE);
        assert_string_equal(it.unit, "my-fw.service");
        plan_item_done(&it);
}

static void test_fallbacks(void **state) {
        struct config c;
        config_defaults(&c);
        /* a dependent unit that does not run nft is not a candidate; nftables.service is, for the tables its
         * nftables.conf creates, and only for those */
        struct unit_info units[] = {
                {.name = "tailscaled.service", .active_state = "active"},
                {.name = "not-fw.service", .active_state = "active", .deps[DEP_REQUIRES] = STRV("tailscaled.service"),
                 .exec = STRV("/etc/not-nft.sh")},
                {.name = "nftables.service", .active_state = "active", .exec = STRV("/usr/sbin/nft -f /etc/nftables.conf")},
        };
        struct plan_item it = plan(&c, units, 3, "inet", "filter", tailscaled);
        assert_int_equal(it.reason, PLAN_SCOPE);
        assert_string_equal(it.unit, "nftables.service");
        assert_string_equal(it.why, "its configuration creates table inet filter");
        plan_item_done(&it);

        /* active or not, and whoever the daemon is (e.g. a veth: no owner) */
        units[2].active_state = "inactive";
        it = plan(&c, units, 3, "ip", "nat", NULL);
        assert_int_equal(it.reason, PLAN_SCOPE);
        assert_string_equal(it.unit, "nftables.service");
        plan_item_done(&it);

        /* a table nobody's configuration creates (rules loaded by hand): no unit, and the report says what to do */
        it = plan(&c, units, 3, "inet", "vpn", tailscaled);
        assert_int_equal(it.reason, PLAN_NONE);
        assert_null(it.unit);
        assert_non_null(strstr(it.why, "Reconcile-After-Upgrade::Table-Unit::inet::vpn"));
        plan_item_done(&it);
}

static void test_never_touch(void **state) {
        struct config c;
        config_defaults(&c);
        char *never[] = {"nftables.service"};
        c.never_touch = never, c.n_never_touch = 1;
        struct unit_info units[] = {
                {.name = "nftables.service", .active_state = "active", .exec = STRV("/usr/sbin/nft -f /etc/nftables.conf")},
        };
        struct plan_item it = plan(&c, units, 1, "inet", "filter", tailscaled);
        assert_string_equal(it.unit, "nftables.service");
        assert_true(it.never_touch);
        plan_item_done(&it);
}

static void test_unit_scope(void **state) {
        struct unit_scope scope;
        struct unit_info nftables = {.name = "nftables.service", .exec = STRV("/usr/sbin/nft -f /etc/nftables.conf")};
        struct unit_info local = {.name = "nftables-local.service", .exec = STRV("/etc/wrapper.sh")};
        struct unit_info inline_sh = {.name = "fw.service",
                                      .exec = STRV("/bin/sh -c 'nft flush ruleset && nft add table bridge br0'")};

        /* Debian's shape: flush ruleset, then its own tables and chains, one table from an include */
        assert_int_equal(plan_unit_scope(&nftables, ROOT, &scope), 0);
        assert_true(scope.flushes_ruleset);
        assert_null(scope.opaque);
        assert_int_equal(scope.n_tables, 2);
        assert_true(unit_scope_defines(&scope, "inet", "filter"));
        assert_true(unit_scope_defines(&scope, "ip", "nat"));
        assert_false(unit_scope_defines(&scope, "inet", "ts-forward"));
        assert_false(unit_scope_defines(&scope, "ip", "commented-out"));
        assert_int_equal(scope.n_chains, 3);
        unit_scope_done(&scope);

        /* the post-mortem's script, through a wrapper: adds to its table, flushes nothing */
        assert_int_equal(plan_unit_scope(&local, ROOT, &scope), 0);
        assert_false(scope.flushes_ruleset);
        assert_int_equal(scope.n_tables, 1);
        assert_true(unit_scope_defines(&scope, "inet", "filter"));
        assert_int_equal(scope.n_chains, 1);
        assert_string_equal(scope.chains[0], "inet filter forward");
        unit_scope_done(&scope);

        assert_int_equal(plan_unit_scope(&inline_sh, ROOT, &scope), 0);
        assert_true(scope.flushes_ruleset);
        assert_true(unit_scope_defines(&scope, "bridge", "br0"));
        unit_scope_done(&scope);
}

/* A ruleset as the kernel would list it: tables, then "family table chain" for chains. */
struct fake_ruleset {
        struct ruleset rs;
        struct nft_path paths[16];
};

static void fake(struct fake_ruleset *f, const char *const *tables, const char *const *chains) {
        *f = (struct fake_ruleset){};
        size_t n = 0;
        f->rs.tables = f->paths;
        for (; tables && *tables; tables++, n++) {
                char fam[16];
                sscanf(*tables, "%15s", fam);
                f->paths[n] = (struct nft_path){.family = streq(fam, "inet") ? 1 : streq(fam, "ip") ? 2 : 7,
                                                .table = (char *) strchr(*tables, ' ') + 1};
        }
        f->rs.n_tables = n;
        f->rs.chains = f->paths + n;
        for (; chains && *chains; chains += 3, n++)
                f->paths[n] = (struct nft_path){.family = streq(chains[0], "inet") ? 1 : streq(chains[0], "ip") ? 2 : 7,
                                                .table = (char *) chains[1], .chain = (char *) chains[2]};
        f->rs.n_chains = n - f->rs.n_tables;
}

static bool safe(const struct unit_info *u, const char *family, const char *table, const char *const *names,
                 const struct ruleset *rs, const char *want_why) {
        struct unit_scope scope;
        char *why = NULL;
        assert_int_equal(plan_unit_scope(u, ROOT, &scope), 0);
        bool ok = plan_reload_is_safe(&scope, family, table, names, rs, &why);
        assert_non_null(why);
        if (want_why && !strstr(why, want_why))
                fail_msg("why: \"%s\", expected to contain \"%s\"", why, want_why);
        free(why);
        unit_scope_done(&scope);
        return ok;
}

static const char *const ts0[] = {"tailscale0", NULL};

/* Debian's nftables.service: it flushes the ruleset, so a reload is safe only while every table and chain there
 * is one its configuration creates again (NFPROTO_INET is 1, NFPROTO_IPV4 2 in these fakes). */
static void test_safety_flush(void **state) {
        struct unit_info nft = {.name = "nftables.service", .active_state = "active", .can_reload = true,
                                .exec = STRV("/usr/sbin/nft -f /etc/nftables.conf"),
                                .exec_reload = STRV("/usr/sbin/nft -f /etc/nftables.conf"),
                                .exec_stop = STRV("/usr/sbin/nft flush ruleset")};
        struct fake_ruleset f;

        fake(&f, (const char *const[]){"inet filter", "ip nat", NULL},
             (const char *const[]){"inet", "filter", "input", "inet", "filter", "forward", "ip", "nat", "postrouting", NULL});
        assert_true(safe(&nft, "inet", "filter", ts0, &f.rs, "creates table inet filter and deletes nothing"));

        /* another daemon's table beside it (tailscaled's, docker's) */
        fake(&f, (const char *const[]){"inet filter", "ip nat", "ip ts-daemon", NULL},
             (const char *const[]){"inet", "filter", "forward", NULL});
        assert_false(safe(&nft, "inet", "filter", ts0, &f.rs,
                          "reloading it flushes the whole ruleset and would delete table ip ts-daemon, which it does "
                          "not create"));

        /* a chain someone added to its own table */
        fake(&f, (const char *const[]){"inet filter", NULL},
             (const char *const[]){"inet", "filter", "forward", "inet", "filter", "ts-forward", NULL});
        assert_false(safe(&nft, "inet", "filter", ts0, &f.rs, "would delete chain inet filter ts-forward"));

        /* the stale table is not one it creates: rules loaded by hand */
        fake(&f, (const char *const[]){"inet vpn", NULL}, NULL);
        assert_false(safe(&nft, "inet", "vpn", ts0, &f.rs, "does not create table inet vpn"));

        /* Debian's stock nftables.conf creates an inet filter, but not the rules that held tailscale0 */
        nft.exec_reload = STRV("/usr/sbin/nft -f /etc/nftables-default.conf");
        fake(&f, (const char *const[]){"inet filter", NULL}, (const char *const[]){"inet", "filter", "forward", NULL});
        assert_false(safe(&nft, "inet", "filter", ts0, &f.rs, "does not name tailscale0"));

        /* with an inactive unit, the start lines count (a unit that cannot reload: stop, then start) */
        nft.active_state = "inactive";
        nft.exec = STRV("/usr/sbin/nft -f /etc/globbed.conf");
        fake(&f, (const char *const[]){"inet vpn", "ip nat", NULL},
             (const char *const[]){"inet", "vpn", "forward", "ip", "nat", "postrouting", NULL});
        assert_true(safe(&nft, "inet", "vpn", ts0, &f.rs, NULL)); /* include "/etc/fw.d/NAME*.nft", both files */
}

static void test_safety_scripts(void **state) {
        struct unit_info pm = {.name = "nftables-local.service", .active_state = "inactive",
                               .exec = STRV("/etc/postmortem.sh")};
        struct unit_info other = {.name = "fw.service", .active_state = "inactive", .exec = STRV("/etc/delete-other.sh")};
        struct unit_info opaque = {.name = "fw2.service", .active_state = "inactive", .exec = STRV("/etc/opaque.sh")};
        struct fake_ruleset f;

        /* deletes its own table, loads it again: safe */
        fake(&f, (const char *const[]){"inet filter", "ip legacy", NULL},
             (const char *const[]){"inet", "filter", "forward", NULL});
        assert_true(safe(&pm, "inet", "filter", ts0, &f.rs, "deletes nothing it does not create"));

        /* deletes a table it does not create */
        fake(&f, (const char *const[]){"inet vpn", "ip legacy", NULL},
             (const char *const[]){"inet", "vpn", "forward", NULL});
        assert_false(safe(&other, "inet", "vpn", ts0, &f.rs, "would delete table ip legacy"));
        /* which is harmless when that table does not exist */
        fake(&f, (const char *const[]){"inet vpn", NULL}, (const char *const[]){"inet", "vpn", "forward", NULL});
        assert_true(safe(&other, "inet", "vpn", ts0, &f.rs, NULL));

        /* what nft loads is decided when it runs: out of sight, not proven */
        assert_false(safe(&opaque, "inet", "vpn", ts0, &f.rs, "not all in sight"));
}

/* A file a configuration names is opened only once it is known to be a regular file: a FIFO (or /dev/watchdog)
 * is never opened, and nothing blocks. */
static void test_scope_never_opens_special_files(void **state) {
        char dir[] = "/tmp/rau-plan.XXXXXX", fifo[64], line[128];
        assert_non_null(mkdtemp(dir));
        snprintf(fifo, sizeof(fifo), "%s/rules.nft", dir);
        assert_int_equal(mkfifo(fifo, 0600), 0);
        snprintf(line, sizeof(line), "/usr/sbin/nft -f %s", fifo);
        struct unit_info u = {.name = "fifo.service", .active_state = "inactive", .exec = (char *[]){line, NULL}};
        struct unit_scope scope;
        assert_int_equal(plan_unit_scope(&u, NULL, &scope), 0);
        assert_non_null(scope.opaque);
        assert_non_null(strstr(scope.opaque, "cannot read"));
        unit_scope_done(&scope);
        unlink(fifo);
        rmdir(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_exec_runs_nft),         cmocka_unit_test(test_postmortem_wants),
                cmocka_unit_test(test_every_dependency_kind), cmocka_unit_test(test_template_instance_and_partof),
                cmocka_unit_test(test_configuration_wins),    cmocka_unit_test(test_fallbacks),
                cmocka_unit_test(test_never_touch),           cmocka_unit_test(test_unit_scope),
                cmocka_unit_test(test_safety_flush),          cmocka_unit_test(test_safety_scripts),
                cmocka_unit_test(test_scope_never_opens_special_files),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

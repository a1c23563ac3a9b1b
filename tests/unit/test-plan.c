/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The planner's decisions: configuration first, then units that depend on the daemon (every dependency kind,
 * template instances, PartOf= propagation) and run nft directly or through scripts, then nftables.service.
 * Unit facts are written as systemd reports them over D-Bus; the scripts are files in tests/fixtures/units. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

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
        /* a dependent unit that does not run nft is not a candidate */
        struct unit_info units[] = {
                {.name = "tailscaled.service", .active_state = "active"},
                {.name = "not-fw.service", .active_state = "active", .deps[DEP_REQUIRES] = STRV("tailscaled.service"),
                 .exec = STRV("/etc/not-nft.sh")},
                {.name = "nftables.service", .active_state = "active", .exec = STRV("/usr/sbin/nft -f /etc/nftables.conf")},
        };
        struct plan_item it = plan(&c, units, 3, "inet", "filter", tailscaled);
        assert_int_equal(it.reason, PLAN_NFTABLES);
        assert_string_equal(it.unit, "nftables.service");
        plan_item_done(&it);

        /* nftables.service inactive: nothing to reload, and the report says what to do */
        units[2].active_state = "inactive";
        it = plan(&c, units, 3, "inet", "filter", tailscaled);
        assert_int_equal(it.reason, PLAN_NONE);
        assert_null(it.unit);
        assert_non_null(strstr(it.why, "Reconcile-After-Upgrade::Table-Unit::inet::filter"));
        plan_item_done(&it);

        /* no owner known at all (e.g. a veth): only configuration or nftables.service can answer */
        units[2].active_state = "active";
        it = plan(&c, units, 3, "inet", "filter", NULL);
        assert_int_equal(it.reason, PLAN_NFTABLES);
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

        /* Debian's shape: flush ruleset, then its own tables, one of them from an include */
        assert_int_equal(plan_unit_scope(&nftables, ROOT, &scope), 0);
        assert_true(scope.flushes_ruleset);
        assert_int_equal(scope.n_tables, 2);
        assert_true(unit_scope_defines(&scope, "inet", "filter"));
        assert_true(unit_scope_defines(&scope, "ip", "nat"));
        assert_false(unit_scope_defines(&scope, "inet", "ts-forward"));
        assert_false(unit_scope_defines(&scope, "ip", "commented-out"));
        unit_scope_done(&scope);

        /* the post-mortem's script, through a wrapper: adds to its table, flushes nothing */
        assert_int_equal(plan_unit_scope(&local, ROOT, &scope), 0);
        assert_false(scope.flushes_ruleset);
        assert_int_equal(scope.n_tables, 1);
        assert_true(unit_scope_defines(&scope, "inet", "filter"));
        unit_scope_done(&scope);

        assert_int_equal(plan_unit_scope(&inline_sh, ROOT, &scope), 0);
        assert_true(scope.flushes_ruleset);
        assert_true(unit_scope_defines(&scope, "bridge", "br0"));
        unit_scope_done(&scope);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_exec_runs_nft),         cmocka_unit_test(test_postmortem_wants),
                cmocka_unit_test(test_every_dependency_kind), cmocka_unit_test(test_template_instance_and_partof),
                cmocka_unit_test(test_configuration_wins),    cmocka_unit_test(test_fallbacks),
                cmocka_unit_test(test_never_touch),           cmocka_unit_test(test_unit_scope),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Configuration read through the real libapt-pkg parser, from files in apt.conf syntax. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static void load(const char *name, struct config *c, int expect) {
        char path[512];
        snprintf(path, sizeof(path), "%s/config/%s", FIXTURES, name);
        assert_int_equal(config_load(path, c), expect);
}

static void test_shipped_file_is_the_defaults(void **state) {
        struct config c, d;
        char path[512];
        snprintf(path, sizeof(path), "%s/50reconcile-after-upgrade", ETCDIR);
        assert_int_equal(config_load(path, &c), 0);
        config_defaults(&d);
        assert_int_equal(c.mode, d.mode);
        assert_int_equal(c.job_timeout_ms, 30000);
        assert_int_equal(c.time_budget_ms, 60000);
        assert_true(c.prune_stale_twins);
        assert_int_equal(c.repair, REPAIR_AUTO);
        assert_false(c.allow_flush);
        assert_int_equal(c.interface_wait_ms, 5000);
        assert_int_equal(c.history_max_bytes, 4u << 20);
        assert_true(c.watch);
        assert_int_equal(c.watch_debounce_ms, 200);
        assert_int_equal(c.watch_repair_limit, 5);
        assert_string_equal(config_metrics_dir(&c), "/var/lib/prometheus/node-exporter");
        assert_int_equal(c.n_table_units + c.n_daemon_units + c.n_never_touch, 0);
        config_done(&c);
}

static void test_every_key(void **state) {
        struct config c;
        load("valid.conf", &c, 0);
        assert_int_equal(c.mode, MODE_REPORT);
        assert_string_equal(config_table_unit(&c, "inet", "filter"), "nftables-local.service");
        assert_string_equal(config_table_unit(&c, "ip", "nat"), "nat-rules.service");
        assert_null(config_table_unit(&c, "ip", "filter"));
        assert_string_equal(config_daemon_unit(&c, "tinc@lab.service"), "firewall@lab.service");
        assert_true(config_never_touch(&c, "nftables.service"));
        assert_true(config_never_touch(&c, "ufw.service"));
        assert_false(config_never_touch(&c, "nftables-local.service"));
        assert_int_equal(c.job_timeout_ms, 1500);
        assert_int_equal(c.time_budget_ms, 500);
        assert_false(c.prune_stale_twins);
        assert_int_equal(c.repair, REPAIR_REBIND);
        assert_true(c.allow_flush);
        assert_int_equal(c.interface_wait_ms, 250);
        assert_int_equal(c.history_max_bytes, 512u << 10);
        assert_false(c.watch);
        assert_int_equal(c.watch_debounce_ms, 50);
        assert_int_equal(c.watch_repair_limit, 0);
        assert_string_equal(config_metrics_dir(&c), "/srv/textfile");
        config_done(&c);
}

static void test_malformed_values_fall_back(void **state) {
        struct config c;
        /* fourteen malformed values, each its default; the good list item is kept */
        load("malformed.conf", &c, 14);
        assert_string_equal(config_metrics_dir(&c), "/var/lib/prometheus/node-exporter");
        assert_true(c.watch);
        assert_int_equal(c.watch_debounce_ms, 200);
        assert_int_equal(c.watch_repair_limit, 5);
        assert_int_equal(c.mode, MODE_RECONCILE);
        assert_int_equal(c.job_timeout_ms, 30000);
        assert_int_equal(c.time_budget_ms, 60000);
        assert_true(c.prune_stale_twins);
        assert_int_equal(c.repair, REPAIR_AUTO);
        assert_false(c.allow_flush);
        assert_int_equal(c.interface_wait_ms, 5000);
        assert_int_equal(c.n_table_units, 0);
        assert_int_equal(c.n_never_touch, 1);
        assert_true(config_never_touch(&c, "ok.service"));
        config_done(&c);
}

static void test_syntax_error(void **state) {
        struct config c;
        load("syntax-error.conf", &c, -EINVAL);
        assert_int_equal(c.mode, MODE_RECONCILE); /* defaults */
        config_done(&c);
}

/* The watcher re-reads apt's configuration on SIGHUP: a key removed since the first read is gone, a list is not
 * doubled. */
static void test_read_again(void **state) {
        char path[] = "/tmp/rau-test-config.XXXXXX";
        struct config c;
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        FILE *f = fdopen(fd, "w");
        assert_non_null(f);
        fputs("Reconcile-After-Upgrade::Watch \"false\";\nReconcile-After-Upgrade::Never-Touch { \"a.service\"; };\n", f);
        fclose(f);
        setenv("APT_CONFIG", path, 1);
        assert_int_equal(config_load(NULL, &c), 0);
        assert_false(c.watch);
        assert_int_equal(c.n_never_touch, 1);
        config_done(&c);
        f = fopen(path, "w");
        assert_non_null(f);
        fputs("Reconcile-After-Upgrade::Never-Touch { \"a.service\"; };\n", f);
        fclose(f);
        assert_int_equal(config_load(NULL, &c), 0);
        assert_true(c.watch);
        assert_int_equal(c.n_never_touch, 1);
        config_done(&c);
        unsetenv("APT_CONFIG");
        unlink(path);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_shipped_file_is_the_defaults),
                cmocka_unit_test(test_every_key),
                cmocka_unit_test(test_malformed_values_fall_back),
                cmocka_unit_test(test_syntax_error),
                cmocka_unit_test(test_read_again),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

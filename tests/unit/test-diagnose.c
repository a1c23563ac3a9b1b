/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The diagnosis on recorded kernel state: what was tailscale0 (index 2) is now index 4. */
#include <libmnl/libmnl.h>

#include "diagnose.h"
#include "fixture.h"
#include "macro.h"
#include "report.h"
#include "state.h"

static void observe(const char *name, struct observation *o) {
        *o = (struct observation){};
        fixture_links(name, &o->links);
        fixture_ruleset(name, &o->ruleset);
}

static void test_with_snapshot(void **state) {
        struct observation now;
        struct snapshot before = {};
        struct findings f;

        observe("stale", &now);
        fixture_links("forms", &before.links);

        assert_int_equal(diagnose(&now, &before, NULL, &f), 0);
        /* iif, oif !=, iif in a set, in a vmap, in a concatenation, fwd, and 2 set elements */
        assert_int_equal(f.n_stale, 8);
        for (size_t i = 0; i < f.n_stale; i++) {
                assert_int_equal(f.stale[i].ref->ifindex, 2);
                assert_string_equal(f.stale[i].was, "tailscale0");
                assert_int_equal(f.stale[i].now, 4);
        }
        assert_int_equal(f.n_ifaces, 1);
        assert_string_equal(f.ifaces[0].name, "tailscale0");
        assert_int_equal(f.ifaces[0].change, IFACE_RECREATED);
        assert_int_equal(f.ifaces[0].old_ifindex, 2);
        assert_int_equal(f.ifaces[0].new_ifindex, 4);
        assert_int_equal(f.ifaces[0].n_stale, 8);

        /* the JSON contract */
        json_t *j = report_json(&f);
        assert_non_null(j);
        json_t *stale = json_object_get(j, "stale");
        assert_int_equal(json_array_size(stale), 8);
        bool saw_rule = false, saw_set = false;
        for (size_t i = 0; i < json_array_size(stale); i++) {
                json_t *e = json_array_get(stale, i);
                assert_string_equal(json_string_value(json_object_get(e, "was")), "tailscale0");
                assert_int_equal(json_integer_value(json_object_get(e, "now")), 4);
                assert_int_equal(json_integer_value(json_object_get(e, "ifindex")), 2);
                assert_non_null(json_object_get(e, "family"));
                assert_non_null(json_object_get(e, "table"));
                if (json_object_get(e, "chain")) {
                        assert_true(json_integer_value(json_object_get(e, "handle")) > 0);
                        saw_rule = true;
                } else {
                        assert_string_equal(json_string_value(json_object_get(e, "key")), "element");
                        assert_non_null(json_object_get(e, "set"));
                        saw_set = true;
                }
        }
        assert_true(saw_rule && saw_set);
        assert_int_equal(json_array_size(json_object_get(j, "interfaces")), 1);
        json_decref(j);

        findings_done(&f);
        snapshot_done(&before);
        observation_done(&now);
}

static void test_history_only(void **state) {
        struct observation now;
        struct link_history h = {};
        struct link_table old;
        struct findings f;

        observe("stale", &now);
        fixture_links("forms", &old);
        assert_int_equal(history_note_links(&h, &old, 1000), 0);
        assert_true(h.dirty);
        assert_string_equal(history_name_for_index(&h, 2), "tailscale0");

        assert_int_equal(diagnose(&now, NULL, &h, &f), 0);
        assert_int_equal(f.n_stale, 8);
        assert_string_equal(f.stale[0].was, "tailscale0");
        assert_int_equal(f.stale[0].now, 4);
        assert_false(f.have_snapshot);

        findings_done(&f);
        link_table_done(&old);
        link_history_done(&h);
        observation_done(&now);
}

/* tailscale0 re-created twice: the snapshot knew it as 3 (say, after a first upgrade), the rules hold 2 (named by
 * the history), now it is 4. One interface finding: the one that explains the stale rules. */
static void test_recreated_twice(void **state) {
        struct observation now;
        struct snapshot before = {};
        struct link_history h = {};
        struct link_table old;
        struct findings f;

        observe("stale", &now);
        fixture_links("forms", &old);
        assert_int_equal(history_note_links(&h, &old, 1000), 0);
        fixture_links("forms", &before.links);
        bool found = false;
        for (size_t i = 0; i < before.links.n_links; i++)
                if (streq(before.links.links[i].name, "tailscale0")) {
                        before.links.links[i].ifindex = 3;
                        found = true;
                }
        assert_true(found);

        assert_int_equal(diagnose(&now, &before, &h, &f), 0);
        assert_int_equal(f.n_stale, 8);
        assert_string_equal(f.stale[0].was, "tailscale0");
        assert_int_equal(f.n_ifaces, 1);
        assert_int_equal(f.ifaces[0].old_ifindex, 2);
        assert_int_equal(f.ifaces[0].new_ifindex, 4);
        assert_int_equal(f.ifaces[0].n_stale, 8);

        findings_done(&f);
        snapshot_done(&before);
        link_table_done(&old);
        link_history_done(&h);
        observation_done(&now);
}

static void test_nothing_known(void **state) {
        struct observation now;
        struct findings f;
        observe("stale", &now);
        assert_int_equal(diagnose(&now, NULL, NULL, &f), 0);
        assert_int_equal(f.n_stale, 8);
        assert_string_equal(f.stale[0].was, "");
        assert_int_equal(f.stale[0].now, -1);
        json_t *j = report_json(&f);
        assert_true(json_is_null(json_object_get(json_array_get(json_object_get(j, "stale"), 0), "was")));
        json_decref(j);
        findings_done(&f);
        observation_done(&now);
}

static void test_fresh(void **state) {
        static const char *const fresh[] = {"forms", "iifname", "numeric", "named-3", "empty"};
        for (size_t i = 0; i < sizeof(fresh) / sizeof(fresh[0]); i++) {
                struct observation now;
                struct findings f;
                observe(fresh[i], &now);
                assert_int_equal(diagnose(&now, NULL, NULL, &f), 0);
                assert_int_equal(f.n_stale, 0);
                findings_done(&f);
                observation_done(&now);
        }
}

static void test_vanished(void **state) {
        struct observation now;
        struct snapshot before = {};
        struct findings f;

        observe("stale", &now);
        fixture_links("forms", &before.links);
        /* wg0 gone since the snapshot (removed from the recorded links) */
        for (size_t i = 0; i < now.links.n_links; i++)
                if (strcmp(now.links.links[i].name, "wg0") == 0) {
                        memmove(&now.links.links[i], &now.links.links[i + 1],
                                (now.links.n_links - i - 1) * sizeof(struct link));
                        now.links.n_links--;
                        break;
                }
        assert_int_equal(diagnose(&now, &before, NULL, &f), 0);
        size_t vanished = 0;
        for (size_t i = 0; i < f.n_ifaces; i++)
                if (f.ifaces[i].change == IFACE_VANISHED) {
                        assert_string_equal(f.ifaces[i].name, "wg0");
                        assert_int_equal(f.ifaces[i].new_ifindex, 0);
                        vanished++;
                }
        assert_int_equal(vanished, 1);
        for (size_t i = 0; i < f.n_stale; i++)
                if (strcmp(f.stale[i].was, "wg0") == 0)
                        assert_int_equal(f.stale[i].now, -1);
        assert_int_equal(f.n_stale, 8 + 7); /* every wg0 reference is stale too */
        findings_done(&f);
        snapshot_done(&before);
        observation_done(&now);
}

static void set_units(struct unit_invocations *u, const char *const *names, const char *const *ids, size_t n) {
        u->units = calloc(n, sizeof(struct unit_invocation));
        u->n_units = n;
        for (size_t i = 0; i < n; i++) {
                u->units[i].name = strdup(names[i]);
                u->units[i].active_state = strdup("active");
                snprintf(u->units[i].invocation_id, sizeof(u->units[i].invocation_id), "%s", ids[i]);
        }
}

static void test_restarted_units(void **state) {
        struct observation now;
        struct snapshot before = {};
        struct findings f;
        static const char *const names[] = {"tailscaled.service", "haproxy.service", "new.service", "dead.service"};
        static const char *const old_ids[] = {"0123456789abcdef0123456789abcdef", "11111111111111111111111111111111"};
        static const char *const new_ids[] = {"fedcba9876543210fedcba9876543210", "11111111111111111111111111111111",
                                              "22222222222222222222222222222222", ""};

        observe("forms", &now);
        fixture_links("forms", &before.links);
        set_units(&before.units, names, old_ids, 2);
        set_units(&now.units, names, new_ids, 4);
        assert_int_equal(diagnose(&now, &before, NULL, &f), 0);
        /* tailscaled restarted, haproxy did not, new.service started, dead.service never ran */
        assert_int_equal(f.n_restarted_units, 2);
        assert_string_equal(f.restarted_units[0], "tailscaled.service");
        assert_string_equal(f.restarted_units[1], "new.service");
        json_t *j = report_json(&f);
        assert_int_equal(json_array_size(json_object_get(j, "restarted_units")), 2);
        json_decref(j);
        findings_done(&f);

        /* without units in the snapshot (taken where systemd did not run) nothing can be said */
        unit_invocations_done(&before.units);
        assert_int_equal(diagnose(&now, &before, NULL, &f), 0);
        assert_int_equal(f.n_restarted_units, 0);
        findings_done(&f);
        snapshot_done(&before);
        observation_done(&now);
}

static void test_state_files(void **state) {
        struct link_history h;
        struct snapshot s;
        assert_int_equal(history_parse("{\"links\":[{\"name\":\"tailscale0\",\"ifindex\":5,\"first_seen\":1,"
                                       "\"last_seen\":2}]}",
                                       &h),
                         0);
        assert_string_equal(history_name_for_index(&h, 5), "tailscale0");
        link_history_done(&h);
        assert_int_equal(history_parse("{\"links\":[{\"name\":\"x\"}]}", &h), -EBADMSG);
        assert_int_equal(history_parse("not json", &h), -EBADMSG);
        assert_int_equal(snapshot_parse("{\"taken\":1,\"links\":[],\"owners\":[{\"ifname\":\"t\",\"pid\":1,"
                                        "\"command\":\"c\",\"unit\":null}]}",
                                        &s),
                         0);
        assert_null(s.owners.owners[0].unit);
        snapshot_done(&s);
        assert_int_equal(snapshot_parse("{\"taken\":1,\"links\":[{\"ifindex\":0,\"name\":\"x\"}],\"owners\":[]}", &s),
                         -EBADMSG);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_with_snapshot), cmocka_unit_test(test_history_only),
                cmocka_unit_test(test_recreated_twice),
                cmocka_unit_test(test_nothing_known), cmocka_unit_test(test_fresh),
                cmocka_unit_test(test_vanished),      cmocka_unit_test(test_state_files),
                cmocka_unit_test(test_restarted_units),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

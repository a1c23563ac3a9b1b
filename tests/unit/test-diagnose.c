/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The diagnosis on recorded kernel state: what was tailscale0 (index 2) is now index 4. */
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* Takes the device out of h's list, as a kernel before 6.16 does when it goes. */
static void hook_drop_device(struct device_hook *h, const char *device) {
        size_t kept = 0;
        for (size_t i = 0; i < h->n_devices; i++) {
                if (strcmp(h->devices[i], device) == 0)
                        free(h->devices[i]);
                else
                        h->devices[kept++] = h->devices[i];
        }
        h->n_devices = kept;
}

static void hook_delete(struct ruleset *rs, const char *table) {
        for (size_t i = 0; i < rs->n_hooks; i++)
                if (strcmp(rs->hooks[i].table, table) == 0) {
                        device_hook_done(&rs->hooks[i]);
                        rs->hooks[i] = rs->hooks[--rs->n_hooks];
                        return;
                }
}

static const struct hook_finding *hook_found(const struct findings *f, const char *table) {
        for (size_t i = 0; i < f->n_hooks; i++)
                if (strcmp(f->hooks[i].was->table, table) == 0)
                        return &f->hooks[i];
        return NULL;
}

/* Recorded on Debian's 6.1 (tests/kernel/capture-device-hooks.sh): rau_p1 (netdev, ts0, 2 rules), rau_p2 (netdev,
 * ts0 and ts1), rau_p3 (inet ingress, ts0), rau_p4 (flowtable, ts0 and ts1). The snapshot is written and read
 * back; then ts0 is re-created and the kernel does what 6.1 does. */
static void test_device_hooks(void **state) {
        char dir[] = "/tmp/rau-test-hooks.XXXXXX";
        struct observation now;
        struct snapshot before;
        struct findings f;

        assert_non_null(mkdtemp(dir));
        observe("device-hooks", &now);
        struct owner_table no_owners = {};
        struct unit_invocations no_units = {};
        assert_int_equal(snapshot_write(dir, 1, &now.links, &now.ruleset, &no_owners, &no_units, NULL, 0), 0);
        assert_int_equal(snapshot_read(dir, &before), 0);
        assert_int_equal(before.n_hooks, 4);
        for (size_t i = 0; i < before.n_hooks; i++) {
                const struct device_hook *b = &before.hooks[i];
                const struct device_hook *n = ruleset_hook(&now.ruleset, b->family, b->table, b->name, b->flowtable);
                assert_non_null(n);
                assert_int_equal(b->n_devices, n->n_devices);
                assert_int_equal(b->priority, n->priority);
                assert_int_equal(b->policy, n->policy);
                /* the rules, byte for byte */
                assert_int_equal(b->n_rules, n->n_rules);
                for (size_t k = 0; k < b->n_rules; k++) {
                        assert_int_equal(b->rules[k].size, n->rules[k].size);
                        assert_memory_equal(b->rules[k].data, n->rules[k].data, b->rules[k].size);
                }
        }
        assert_int_equal(ruleset_hook(&now.ruleset, NFPROTO_NETDEV, "rau_p1", "c", false)->n_rules, 2);

        /* nothing changed: nothing to say */
        assert_int_equal(diagnose(&now, &before, NULL, &f), 0);
        assert_int_equal(f.n_hooks, 0);
        findings_done(&f);

        /* someone took ts0 out of rau_p2 while ts0 stayed the same device: meant, not reported */
        hook_drop_device((struct device_hook *) ruleset_hook(&now.ruleset, NFPROTO_NETDEV, "rau_p2", "c", false), "ts0");
        assert_int_equal(diagnose(&now, &before, NULL, &f), 0);
        assert_int_equal(f.n_hooks, 0);
        findings_done(&f);

        /* ts0 re-created: 6.1 deleted rau_p1 and rau_p3, and dropped ts0 from the flowtable */
        for (size_t i = 0; i < now.links.n_links; i++)
                if (strcmp(now.links.links[i].name, "ts0") == 0)
                        now.links.links[i].ifindex += 10;
        links_finish(&now.links);
        hook_delete(&now.ruleset, "rau_p1");
        hook_delete(&now.ruleset, "rau_p3");
        hook_drop_device((struct device_hook *) ruleset_hook(&now.ruleset, NFPROTO_INET, "rau_p4", "f", true), "ts0");
        now.kernel = (struct hook_behaviour){.known = true, .flowtables = true};
        assert_int_equal(diagnose(&now, &before, NULL, &f), 0);
        assert_int_equal(f.n_hooks, 4);
        const struct hook_finding *p1 = hook_found(&f, "rau_p1"), *p2 = hook_found(&f, "rau_p2"),
                                  *p4 = hook_found(&f, "rau_p4");
        assert_non_null(p1);
        assert_null(p1->now);
        assert_int_equal(p1->n_missing, 1);
        assert_int_equal(p1->n_back, 1);
        assert_string_equal(p1->missing[0], "ts0");
        assert_non_null(p2->now);
        assert_int_equal(p2->now->n_devices, 1);
        assert_string_equal(p2->missing[0], "ts0");
        assert_true(p4->was->flowtable);

        /* JSON: key hook/flowtable, now null for the deleted chain */
        json_t *j = hook_finding_json(p1);
        assert_string_equal(json_string_value(json_object_get(j, "key")), "hook");
        assert_true(json_is_null(json_object_get(j, "now")));
        assert_string_equal(json_string_value(json_array_get(json_object_get(j, "back"), 0)), "ts0");
        json_decref(j);
        j = hook_finding_json(p4);
        assert_string_equal(json_string_value(json_object_get(j, "key")), "flowtable");
        json_decref(j);

        /* the plan on 6.1: re-create from the snapshot's rules, replace the chain that cannot take a device,
         * add to the flowtable */
        struct hook_plan plan;
        assert_int_equal(devhooks_plan(&now.ruleset, f.hooks, f.n_hooks, &now.kernel, NULL, NULL, &plan), 0);
        assert_int_equal(plan.n_todo, 4);
        for (size_t i = 0; i < plan.n_fixes; i++) {
                const struct hook_fix *fix = &plan.fixes[i];
                const char *t = fix->finding->was->table;
                if (strcmp(t, "rau_p1") == 0) {
                        assert_int_equal(fix->kind, HOOK_FIX_RECREATE);
                        assert_ptr_equal(fix->rules, fix->finding->was->rules);
                        assert_int_equal(fix->n_rules, 2);
                } else if (strcmp(t, "rau_p2") == 0) {
                        assert_int_equal(fix->kind, HOOK_FIX_REPLACE);
                        assert_int_equal(fix->n_devices, 2);
                } else if (strcmp(t, "rau_p4") == 0)
                        assert_int_equal(fix->kind, HOOK_FIX_ADD);
        }
        hook_plan_done(&plan);
        /* on 6.12 every one that exists takes the device */
        struct hook_behaviour k612 = {.known = true, .chain_kept = true, .chain_add_device = true};
        assert_int_equal(devhooks_plan(&now.ruleset, f.hooks, f.n_hooks, &k612, NULL, NULL, &plan), 0);
        for (size_t i = 0; i < plan.n_fixes; i++)
                assert_int_equal(plan.fixes[i].kind, plan.fixes[i].finding->now ? HOOK_FIX_ADD : HOOK_FIX_RECREATE);
        hook_plan_done(&plan);
        findings_done(&f);

        /* a kernel that keeps chains: a missing chain was deleted by someone, not by the kernel */
        now.kernel.chain_kept = true;
        assert_int_equal(diagnose(&now, &before, NULL, &f), 0);
        assert_int_equal(f.n_hooks, 2);
        findings_done(&f);
        /* a kernel that re-attaches: nothing */
        now.kernel.reattaches = true;
        assert_int_equal(diagnose(&now, &before, NULL, &f), 0);
        assert_int_equal(f.n_hooks, 0);
        findings_done(&f);

        snapshot_done(&before);
        observation_done(&now);
        char path[64];
        snprintf(path, sizeof(path), "%s/snapshot.json", dir);
        unlink(path);
        rmdir(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_with_snapshot), cmocka_unit_test(test_history_only),
                cmocka_unit_test(test_recreated_twice),
                cmocka_unit_test(test_nothing_known), cmocka_unit_test(test_fresh),
                cmocka_unit_test(test_vanished),      cmocka_unit_test(test_state_files),
                cmocka_unit_test(test_restarted_units), cmocka_unit_test(test_device_hooks),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

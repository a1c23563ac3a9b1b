/* SPDX-License-Identifier: GPL-2.0-or-later */
/* test-rebind.c: the rebind planner and the batch it builds, on inputs fuzz-nftables found
 * (tests/fixtures/fuzz/), through the same made-up past and present as the fuzzer (tests/fuzz/refs-world.h). */
#include "fixture.h"
#include "netlink.h"
#include "rebind.h"
#include "state.h"
#include <linux/netfilter/nf_tables.h>
#include "../fuzz/refs-world.h"

/* Parses NAME, diagnoses it against refs_world() and plans and builds the rebind. Returns the plan's counts. */
static void plan_fixture(const char *name, struct rebind_plan *ret) {
        size_t size;
        char *buf = fixture_load(name, &size);
        struct observation now = {};
        struct link_history past = {};
        struct findings found = {};
        struct nl_batch batch = {};

        assert_int_equal(ruleset_parse_messages(buf, size, &now.ruleset), 0);
        refs_world(&now.ruleset, &past, &now.links);
        assert_int_equal(diagnose(&now, NULL, &past, &found), 0);
        for (size_t i = 0; i < now.ruleset.n_rule_msgs; i++)
                assert_true(ruleset_has_anonymous_sets(&now.ruleset, i));
        assert_int_equal(rebind_plan(&now.ruleset, &found, true, ret), 0);
        uint32_t *seqs = calloc(ret->n_rules + ret->n_elems + 1, sizeof(uint32_t));
        assert_non_null(seqs);
        assert_int_equal(rebind_batch(&now.ruleset, ret, &batch, seqs), 0);
        free(seqs);
        nl_batch_done(&batch);
        findings_done(&found);
        link_history_done(&past);
        observation_done(&now);
        free(buf);
}

/* A set element with no attributes: comparing it with the others passed a NULL pointer to memcmp() (undefined,
 * reported by UBSan) when its empty copy was never allocated. */
static void test_fuzz_element_without_attributes(void **state) {
        struct rebind_plan plan = {};
        plan_fixture("fuzz/element-without-attributes.nl", &plan);
        assert_int_equal(plan.n_rebind + plan.n_prune + plan.n_keep, plan.n_fixes);
        rebind_plan_done(&plan);
}

/* A rule with two expression lists: libnftnl reads the last, the batch builder counted the first and wrote past
 * its array for the second (heap overflow, found by ASan). The kernel sends one: such a rule is not read. */
static void test_fuzz_rule_with_two_expression_lists(void **state) {
        size_t size;
        char *buf = fixture_load("fuzz/rule-with-two-expression-lists.nl", &size);
        struct ruleset rs;
        assert_int_equal(ruleset_parse_messages(buf, size, &rs), 0);
        assert_int_equal(rs.n_unreadable, 1);
        ruleset_done(&rs);
        free(buf);

        struct rebind_plan plan = {};
        plan_fixture("fuzz/rule-with-two-expression-lists.nl", &plan);
        assert_int_equal(plan.n_rules, 0);
        rebind_plan_done(&plan);
}

/* The anonymous sets a device-bound chain's rules look up, as a snapshot keeps them (recorded on 6.18 from
 * tests/ns/device-hooks-repair.sh's rules): a rule that looks them up is the same rule only with the same
 * contents, whatever the sets are named; without them it cannot be made again; sent again, each set goes first. */
static void test_hook_anonymous_sets(void **state) {
        size_t size;
        char *text = fixture_load("state/device-hooks-sets.snapshot.json", &size);
        struct snapshot snap = {};
        struct ifindex_set *sets = NULL, *other = NULL;
        size_t n_sets = 0, n_other = 0;

        assert_int_equal(snapshot_parse(text, &snap), 0);
        assert_int_equal(snap.n_hooks, 2);
        const struct device_hook *p1 = &snap.hooks[0];
        assert_string_equal(p1->table, "rau_p1");
        assert_int_equal(p1->n_rules, 2);
        assert_int_equal(ruleset_sets_parse(p1->set_msgs, p1->n_set_msgs, &sets, &n_sets), 0);
        /* udp dport { 4002, 4003 } and a verdict map of two */
        assert_int_equal(n_sets, 2);
        for (size_t i = 0; i < n_sets; i++) {
                assert_true(sets[i].flags & NFT_SET_ANONYMOUS);
                assert_int_equal(sets[i].n_elems, 2);
        }
        assert_true(sets[1].flags & NFT_SET_MAP);

        for (size_t k = 0; k < p1->n_rules; k++) {
                assert_false(rule_msg_sets_missing(&p1->rules[k], sets, n_sets));
                assert_true(rule_msg_sets_missing(&p1->rules[k], NULL, 0));
                assert_true(rule_msgs_same(&p1->rules[k], sets, n_sets, &p1->rules[k], sets, n_sets));
        }
        /* another name, the same contents: the same rule; one element's key another: not */
        assert_int_equal(ruleset_sets_parse(p1->set_msgs, p1->n_set_msgs, &other, &n_other), 0);
        free(other[0].name);
        other[0].name = strdup("__set7");
        uint8_t *renamed = malloc(p1->rules[0].size);
        assert_non_null(renamed);
        memcpy(renamed, p1->rules[0].data, p1->rules[0].size);
        uint8_t *at = memmem(renamed, p1->rules[0].size, "__set0", 7);
        assert_non_null(at);
        at[5] = '7';
        struct nl_blob renamed_rule = {.data = renamed, .size = p1->rules[0].size};
        assert_true(rule_msgs_same(&p1->rules[0], sets, n_sets, &renamed_rule, other, n_other));
        /* by name, the names differ */
        assert_false(rule_msgs_same(&p1->rules[0], NULL, 0, &renamed_rule, NULL, 0));
        free(renamed);
        ruleset_sets_free(other, n_other);
        assert_int_equal(ruleset_sets_parse(p1->set_msgs, p1->n_set_msgs, &other, &n_other), 0);
        other[0].elems[0].attrs.data[other[0].elems[0].key_off] ^= 1;
        assert_false(rule_msgs_same(&p1->rules[0], sets, n_sets, &p1->rules[0], other, n_other));
        ruleset_sets_free(other, n_other);

        /* sent again: set, its elements, then the rule; the next set gets the next id */
        struct nl_batch b = {};
        uint32_t set_id = 0;
        assert_int_equal(nl_batch_begin(&b, 1), 0);
        assert_int_equal(rule_put_again(&b, &p1->rules[0], sets, n_sets, &set_id), 0);
        assert_int_equal(b.n_msgs, 3);
        assert_int_equal(rule_put_again(&b, &p1->rules[1], sets, n_sets, &set_id), 0);
        assert_int_equal(b.n_msgs, 6);
        assert_int_equal(set_id, 2);
        nl_batch_done(&b);

        /* the interval set of rau_p2: network order, so that ranges sort */
        const struct device_hook *p2 = &snap.hooks[1];
        ruleset_sets_free(sets, n_sets);
        assert_int_equal(ruleset_sets_parse(p2->set_msgs, p2->n_set_msgs, &sets, &n_sets), 0);
        assert_int_equal(n_sets, 1);
        assert_true(sets[0].big_endian);
        assert_true(rule_msgs_same(&p2->rules[0], sets, n_sets, &p2->rules[0], sets, n_sets));
        ruleset_sets_free(sets, n_sets);
        snapshot_done(&snap);
        free(text);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_fuzz_element_without_attributes),
                cmocka_unit_test(test_fuzz_rule_with_two_expression_lists),
                cmocka_unit_test(test_hook_anonymous_sets),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

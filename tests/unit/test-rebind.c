/* SPDX-License-Identifier: GPL-2.0-or-later */
/* test-rebind.c: the rebind planner and the batch it builds, on inputs fuzz-nftables found
 * (tests/fixtures/fuzz/), through the same made-up past and present as the fuzzer (tests/fuzz/refs-world.h). */
#include "fixture.h"
#include "netlink.h"
#include "rebind.h"
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

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_fuzz_element_without_attributes),
                cmocka_unit_test(test_fuzz_rule_with_two_expression_lists),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

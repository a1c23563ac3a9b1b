/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Links parsed from RTM_NEWLINK messages the kernel really sent. */
#include <libmnl/libmnl.h>

#include "fixture.h"
#include "netlink.h"

static void test_links(void **state) {
        struct link_table t;
        fixture_links("forms", &t);
        assert_int_equal(t.n_links, 3);
        assert_string_equal(links_by_index(&t, 1)->name, "lo");
        const struct link *ts = links_by_name(&t, "tailscale0");
        assert_non_null(ts);
        assert_int_equal(ts->ifindex, 2);
        assert_string_equal(ts->kind, "tun");
        assert_true(ts->up);
        assert_int_equal(links_by_name(&t, "wg0")->ifindex, 3);
        assert_null(links_by_index(&t, 4));
        link_table_done(&t);
}

static void test_recreated(void **state) {
        struct link_table t;
        fixture_links("stale", &t);
        assert_null(links_by_index(&t, 2));
        assert_int_equal(links_by_name(&t, "tailscale0")->ifindex, 4);
        link_table_done(&t);
}

static void test_name_is_digits(void **state) {
        struct link_table t;
        fixture_links("named-3", &t);
        assert_int_equal(links_by_name(&t, "3")->ifindex, 5);
        /* and index 3 is another device: a digit string alone says nothing */
        assert_string_equal(links_by_index(&t, 3)->name, "wg0");
        link_table_done(&t);
}

/* Found by fuzz-links (tests/fixtures/fuzz/link-message-without-padding.nl): a 37-byte RTM_NEWLINK whose last
 * attribute ends where the buffer does, without the message's padding. libmnl reads attributes up to the aligned
 * end, so the name was read 3 bytes past the buffer. Such a buffer is not whole messages: none is parsed. */
static void test_fuzz_message_without_padding(void **state) {
        size_t size, off;
        char *buf = fixture_load("fuzz/link-message-without-padding.nl", &size);
        struct link_table t = {};
        const struct nlmsghdr *nlh;
        NLMSG_FOREACH_IN(nlh, buf, size, off)
                assert_int_equal(links_parse_msg(&t, nlh), 0);
        assert_int_equal(t.n_links, 0);
        assert_true(off != size);
        link_table_done(&t);
        free(buf);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_links),
                cmocka_unit_test(test_recreated),
                cmocka_unit_test(test_name_is_digits),
                cmocka_unit_test(test_fuzz_message_without_padding),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

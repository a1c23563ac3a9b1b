/* SPDX-License-Identifier: GPL-2.0-or-later */
/* test-names.c: the escaped form of names (names.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"

static void assert_round_trip(const char *name, const char *escaped) {
        char *e = name_escape(name), *back = NULL;
        assert_non_null(e);
        assert_string_equal(e, escaped);
        assert_int_equal(name_needs_escape(name), strcmp(name, escaped) != 0);
        assert_int_equal(name_unescape_dup(e, &back), 0);
        assert_string_equal(back, name);
        json_t *j = json_name(name);
        assert_non_null(j); /* valid UTF-8, or jansson would have refused it */
        assert_string_equal(json_string_value(j), escaped);
        json_decref(j);
        free(back);
        free(e);
}

static void test_escape(void **state) {
        assert_round_trip("tailscale0", "tailscale0");
        assert_round_trip("wg-vpn.1", "wg-vpn.1");
        assert_round_trip("grün", "grün");                 /* UTF-8 stays */
        assert_round_trip("ts\xff", "ts\\xff");             /* not UTF-8 */
        assert_round_trip("e\x1b[7m", "e\\x1b[7m");         /* a control character */
        assert_round_trip("a\\b", "a\\x5cb");               /* the backslash itself */
        assert_round_trip("\xc0\xaf", "\\xc0\\xaf");        /* an overlong '/' */
        assert_round_trip("\xed\xa0\x80", "\\xed\\xa0\\x80"); /* a surrogate */
        assert_round_trip("\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"); /* past U+10FFFF */
        assert_round_trip("\xe2\x82", "\\xe2\\x82");        /* cut short */
        assert_round_trip("x\x7f", "x\\x7f");
        assert_round_trip("", "");
}

static void test_unescape(void **state) {
        char buf[IFNAMSIZ];
        assert_int_equal(name_unescape("ts\\xFF", buf, sizeof(buf)), 0);
        assert_string_equal(buf, "ts\xff");
        /* written before escaping existed: a lone backslash or a short escape stays as it is */
        assert_int_equal(name_unescape("a\\b\\x4", buf, sizeof(buf)), 0);
        assert_string_equal(buf, "a\\b\\x4");
        assert_int_equal(name_unescape("a\\x00b", buf, sizeof(buf)), -EINVAL);
        /* 16 bytes do not fit an interface name; escaped, 15 do */
        assert_int_equal(name_unescape("0123456789abcdef", buf, sizeof(buf)), -ENAMETOOLONG);
        assert_int_equal(name_unescape("0123456789abcd\\xff", buf, sizeof(buf)), 0);
        assert_int_equal(strlen(buf), 15);
}

static void test_escape_into_cuts(void **state) {
        char buf[8];
        assert_string_equal(name_escape_into("abc", buf, sizeof(buf)), "abc");
        assert_string_equal(name_escape_into("abcdefghij", buf, sizeof(buf)), "abcd...");
        assert_string_equal(name_escape_into("ab\xff\xff", buf, sizeof(buf)), "ab...");
        assert_string_equal(NAME("x\xff"), "x\\xff");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_escape),
                cmocka_unit_test(test_unescape),
                cmocka_unit_test(test_escape_into_cuts),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Parsing what /proc shows of a TUN owner: the fdinfo "iff:" line and the cgroup file, unified and hybrid.
 * The texts are the kernel's formats as read on this kind of machine; the live scan runs in tests/ns/. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "owners.h"

static void test_fdinfo(void **state) {
        char name[IFNAMSIZ];
        assert_int_equal(fdinfo_parse_iff("pos:\t0\nflags:\t0100002\nmnt_id:\t25\nino:\t1077\niff:\ttailscale0\n", name),
                         0);
        assert_string_equal(name, "tailscale0");
        /* a TUN fd never attached to a device has no iff: line */
        assert_int_equal(fdinfo_parse_iff("pos:\t0\nflags:\t0100002\n", name), -ENOENT);
        assert_int_equal(fdinfo_parse_iff("iff:\tthis-name-is-far-too-long\n", name), -EBADMSG);
}

static void expect_unit(const char *cgroup, const char *unit) {
        char *u = NULL;
        int r = cgroup_parse_unit(cgroup, &u);
        if (!unit) {
                assert_int_equal(r, -ENXIO);
                return;
        }
        assert_int_equal(r, 0);
        assert_string_equal(u, unit);
        free(u);
}

static void test_cgroup(void **state) {
        /* unified */
        expect_unit("0::/system.slice/tailscaled.service\n", "tailscaled.service");
        /* template instance under its own slice */
        expect_unit("0::/system.slice/system-tinc.slice/tinc@lab.service\n", "tinc@lab.service");
        /* hybrid: the name=systemd hierarchy wins over the (empty) unified one */
        expect_unit("12:pids:/system.slice/openvpn@x.service\n1:name=systemd:/system.slice/openvpn@x.service\n0::/\n",
                    "openvpn@x.service");
        /* user sessions and the root cgroup */
        expect_unit("0::/user.slice/user-1000.slice/session-3.scope\n", "session-3.scope");
        expect_unit("0::/init.scope\n", "init.scope");
        expect_unit("0::/\n", NULL);
        /* not a unit name (a container's own tree, a docker cgroup) */
        expect_unit("0::/lxc.payload.c1/foo\n", NULL);
        expect_unit("", NULL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_fdinfo),
                cmocka_unit_test(test_cgroup),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

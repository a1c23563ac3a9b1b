/* SPDX-License-Identifier: GPL-2.0-or-later */
/* fixture.h: loads the netlink recordings made by tests/fixtures/regenerate. */
#pragma once

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "links.h"
#include "ruleset.h"
#include <libmnl/libmnl.h>

static inline char *fixture_load(const char *name, size_t *ret_size) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", FIXTURES, name);
        FILE *f = fopen(path, "re");
        assert_non_null(f);
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *buf = malloc((size_t) size + 1);
        assert_non_null(buf);
        assert_int_equal(fread(buf, 1, (size_t) size, f), (size_t) size);
        fclose(f);
        *ret_size = (size_t) size;
        return buf;
}

static inline void fixture_ruleset(const char *name, struct ruleset *ret) {
        char file[256];
        size_t size;
        snprintf(file, sizeof(file), "%s.ruleset.nl", name);
        char *buf = fixture_load(file, &size);
        assert_int_equal(ruleset_parse_messages(buf, size, ret), 0);
        free(buf);
}

static inline void fixture_links(const char *name, struct link_table *ret) {
        char file[256];
        size_t size;
        snprintf(file, sizeof(file), "%s.links.nl", name);
        char *buf = fixture_load(file, &size);
        *ret = (struct link_table){};
        int len = (int) size;
        for (const struct nlmsghdr *nlh = (const void *) buf; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len))
                assert_int_equal(links_parse_msg(ret, nlh), 0);
        assert_int_equal(len, 0);
        links_finish(ret);
        free(buf);
}

/* SPDX-License-Identifier: GPL-2.0-or-later */
/* fixture-world.h: the recorded world the state-file harnesses diagnose against: tests/fixtures/stale (the
 * rules still hold tailscale0's first index; tailscale0 came back). Loaded once per process. */
#pragma once

#include <libmnl/libmnl.h>

#include "diagnose.h"
#include "netlink.h"

static inline uint8_t *fixture_bytes(const char *name, size_t *ret_size) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", FIXTURES, name);
        FILE *f = fopen(path, "re");
        if (!f)
                abort();
        uint8_t *buf = malloc(1 << 20);
        if (!buf)
                abort();
        *ret_size = fread(buf, 1, 1 << 20, f);
        fclose(f);
        return buf;
}

/* Never freed: it lives as long as the process, like the harness. */
static inline const struct observation *fixture_world(void) {
        static struct observation world;
        static bool loaded;
        if (loaded)
                return &world;
        size_t size;
        uint8_t *buf = fixture_bytes("stale.ruleset.nl", &size);
        if (ruleset_parse_messages(buf, size, &world.ruleset) < 0)
                abort();
        free(buf);
        buf = fixture_bytes("stale.links.nl", &size);
        const struct nlmsghdr *nlh;
        size_t off;
        NLMSG_FOREACH_IN(nlh, buf, size, off)
                if (links_parse_msg(&world.links, nlh) < 0)
                        abort();
        links_finish(&world.links);
        free(buf);
        loaded = true;
        return &world;
}

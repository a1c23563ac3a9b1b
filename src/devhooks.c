/* SPDX-License-Identifier: GPL-2.0-or-later */
/* devhooks.c: what a kernel before 6.16 did to device-bound chains and flowtables when a device went, found
 * against the snapshot. */
#include <linux/netfilter.h>
#include <string.h>

#include "devhooks.h"
#include "json-util.h"
#include "macro.h"
#include "names.h"
#include "state.h"

static bool table_exists(const struct ruleset *rs, uint8_t family, const char *table) {
        for (size_t i = 0; i < rs->n_tables; i++)
                if (rs->tables[i].family == family && streq(rs->tables[i].table, table))
                        return true;
        return false;
}

/* The kernel took the device out: it is gone, or it is another device of the same name now. A device with the
 * index the snapshot saw is the same device: whoever took it out of the chain meant it. */
static bool device_went(const struct link_table *then, const struct link_table *links, const char *device) {
        const struct link *old = links_by_name(then, device), *cur = links_by_name(links, device);
        return !cur || (old && old->ifindex != cur->ifindex);
}

void hook_findings_free(struct hook_finding *h, size_t n) {
        for (size_t i = 0; h && i < n; i++)
                free(h[i].missing);
        free(h);
}

int hooks_diagnose(const struct ruleset *now, const struct link_table *links, const struct snapshot *before,
                   const struct hook_behaviour *kernel, struct hook_finding **ret, size_t *ret_n) {
        struct hook_finding *found = NULL;
        size_t n = 0;

        *ret = NULL;
        *ret_n = 0;
        /* nothing to compare with; or the kernel puts devices back by itself */
        if (!before || before->n_hooks == 0 || (kernel->known && kernel->reattaches))
                return 0;
        found = calloc(before->n_hooks, sizeof(*found));
        if (!found)
                return -ENOMEM;

        for (size_t i = 0; i < before->n_hooks; i++) {
                const struct device_hook *was = &before->hooks[i];
                if (!table_exists(now, was->family, was->table))
                        continue;
                const struct device_hook *cur = ruleset_hook(now, was->family, was->table, was->name, was->flowtable);
                /* a chain deleted with its device; on a kernel that keeps such chains, someone else deleted it */
                if (!cur && (was->flowtable || (kernel->known && kernel->chain_kept)))
                        continue;
                struct hook_finding *h = &found[n];
                *h = (struct hook_finding){.was = was, .now = cur};
                h->missing = calloc(was->n_devices + 1, sizeof(char *));
                if (!h->missing)
                        return hook_findings_free(found, n), -ENOMEM;
                /* those that exist again first: what a repair can put back */
                for (int pass = 0; pass < 2; pass++)
                        for (size_t k = 0; k < was->n_devices; k++) {
                                const char *dev = was->devices[k];
                                bool back = links_by_name(links, dev);
                                if ((cur && device_hook_has(cur, dev)) || back != (pass == 0) ||
                                    !device_went(&before->links, links, dev))
                                        continue;
                                h->missing[h->n_missing++] = dev;
                                h->n_back += back;
                        }
                if (h->n_missing == 0) {
                        free(h->missing);
                        continue;
                }
                n++;
        }
        if (n == 0) {
                free(found);
                return 0;
        }
        *ret = found;
        *ret_n = n;
        return 0;
}

/* netdev's hooks are ingress (0) and egress (1); inet's device-bound one is its ingress. */
const char *device_hook_name(const struct device_hook *h) {
        if (h->family == NFPROTO_INET)
                return "ingress";
        return h->hooknum == 1 ? "egress" : "ingress";
}

static json_t *names_json(const char *const *names, size_t n) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < n; i++)
                if (json_array_append_new(a, json_name(names[i])) < 0)
                        return json_decref(a), NULL;
        return a;
}

json_t *hook_finding_json(const struct hook_finding *h) {
        const struct device_hook *was = h->was;
        return json_pack("{s:s, s:o, s:o, s:s, s:s, s:o, s:o, s:o, s:o}", "family", nfproto_to_string(was->family),
                         "table", json_name(was->table), was->flowtable ? "flowtable" : "chain", json_name(was->name),
                         "key", was->flowtable ? "flowtable" : "hook", "hook", device_hook_name(was), "was",
                         names_json((const char *const *) was->devices, was->n_devices), "now",
                         h->now ? names_json((const char *const *) h->now->devices, h->now->n_devices) : json_null(),
                         "missing", names_json(h->missing, h->n_missing), "back", names_json(h->missing, h->n_back));
}

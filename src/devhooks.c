/* SPDX-License-Identifier: GPL-2.0-or-later */
/* devhooks.c: what a kernel before 6.16 did to device-bound chains and flowtables when a device went, found
 * against the snapshot. */
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <string.h>

#include "devhooks.h"
#include "json-util.h"
#include "macro.h"
#include "names.h"
#include "netlink.h"
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

/* ---- messages ---- */

static size_t devices_size(const char *const *devices, size_t n) {
        size_t size = 0;
        for (size_t i = 0; i < n; i++)
                size += MNL_ALIGN(strlen(devices[i]) + 1) + 8;
        return size;
}

static void put_devices(struct nlmsghdr *nlh, uint16_t type, const char *const *devices, size_t n) {
        struct nlattr *devs = mnl_attr_nest_start(nlh, type);
        for (size_t i = 0; i < n; i++)
                mnl_attr_put_strz(nlh, NFTA_DEVICE_NAME, devices[i]);
        mnl_attr_nest_end(nlh, devs);
}

int devhooks_put_chain(struct nl_batch *b, const struct device_hook *h, const char *const *devices, size_t n,
                       uint16_t flags) {
        size_t size = strlen(h->table) + strlen(h->name) + (h->type ? strlen(h->type) : 0) + devices_size(devices, n) + 128;
        struct nlmsghdr *nlh = nl_batch_msg(b, NFT_MSG_NEWCHAIN, h->family, flags, size);
        if (!nlh)
                return -ENOMEM;
        mnl_attr_put_strz(nlh, NFTA_CHAIN_TABLE, h->table);
        mnl_attr_put_strz(nlh, NFTA_CHAIN_NAME, h->name);
        struct nlattr *hook = mnl_attr_nest_start(nlh, NFTA_CHAIN_HOOK);
        mnl_attr_put_u32(nlh, NFTA_HOOK_HOOKNUM, htonl(h->hooknum));
        mnl_attr_put_u32(nlh, NFTA_HOOK_PRIORITY, htonl((uint32_t) h->priority));
        put_devices(nlh, NFTA_HOOK_DEVS, devices, n);
        mnl_attr_nest_end(nlh, hook);
        if (h->type)
                mnl_attr_put_strz(nlh, NFTA_CHAIN_TYPE, h->type);
        mnl_attr_put_u32(nlh, NFTA_CHAIN_POLICY, htonl(h->policy));
        /* NFT_CHAIN_BASE is what the hook makes it; hardware offload is the one flag a user sets */
        if (h->flags & ~(uint32_t) NFT_CHAIN_BASE)
                mnl_attr_put_u32(nlh, NFTA_CHAIN_FLAGS, htonl(h->flags & ~(uint32_t) NFT_CHAIN_BASE));
        nl_batch_msg_end(b, nlh);
        return 0;
}

int devhooks_put_flowtable(struct nl_batch *b, const struct device_hook *h, const char *const *devices, size_t n,
                           uint16_t flags) {
        size_t size = strlen(h->table) + strlen(h->name) + devices_size(devices, n) + 128;
        struct nlmsghdr *nlh = nl_batch_msg(b, NFT_MSG_NEWFLOWTABLE, h->family, flags, size);
        if (!nlh)
                return -ENOMEM;
        mnl_attr_put_strz(nlh, NFTA_FLOWTABLE_TABLE, h->table);
        mnl_attr_put_strz(nlh, NFTA_FLOWTABLE_NAME, h->name);
        struct nlattr *hook = mnl_attr_nest_start(nlh, NFTA_FLOWTABLE_HOOK);
        mnl_attr_put_u32(nlh, NFTA_FLOWTABLE_HOOK_NUM, htonl(h->hooknum));
        mnl_attr_put_u32(nlh, NFTA_FLOWTABLE_HOOK_PRIORITY, htonl((uint32_t) h->priority));
        put_devices(nlh, NFTA_FLOWTABLE_HOOK_DEVS, devices, n);
        mnl_attr_nest_end(nlh, hook);
        if (h->flags)
                mnl_attr_put_u32(nlh, NFTA_FLOWTABLE_FLAGS, htonl(h->flags));
        nl_batch_msg_end(b, nlh);
        return 0;
}

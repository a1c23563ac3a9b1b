/* SPDX-License-Identifier: GPL-2.0-or-later */
/* devhooks.c: what a kernel before 6.16 did to device-bound chains and flowtables when a device went, found
 * against the snapshot. */
#include <arpa/inet.h>
#include <endian.h>
#include <stdio.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <string.h>

#include "devhooks.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "names.h"
#include "netlink.h"
#include "rebind.h"
#include "state.h"

static bool table_exists(const struct ruleset *rs, uint8_t family, const char *table) {
        for (size_t i = 0; i < rs->n_tables; i++)
                if (rs->tables[i].family == family && streq(rs->tables[i].table, table))
                        return true;
        return false;
}

/* The kernel took the device out: it is gone, or it is another device of the same name now. A device with the
 * index the snapshot saw is the same device: whoever took it out of the chain meant it. */
static bool device_went(const struct device_hook *was, const struct link_table *then, const struct link_table *links,
                        const char *device) {
        const struct link *old = links_by_name(then, device), *cur = links_by_name(links, device);
        for (size_t i = 0; i < was->n_detached; i++)
                if (streq(was->detached[i], device))
                        return true;
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
                /* another object of that name (another handle): someone made it so since, with the devices they
                 * meant (or a run re-created it: what it put back is verified by the run) */
                if (cur && was->handle && cur->handle != was->handle)
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
                                    !device_went(was, &before->links, links, dev))
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

json_t *hook_finding_json(const struct hook_finding *h) {
        const struct device_hook *was = h->was;
        return json_pack("{s:s, s:o, s:o, s:s, s:s, s:o, s:o, s:o, s:o}", "family", nfproto_to_string(was->family),
                         "table", json_name(was->table), was->flowtable ? "flowtable" : "chain", json_name(was->name),
                         "key", was->flowtable ? "flowtable" : "hook", "hook", device_hook_name(was), "was",
                         json_names((const char *const *) was->devices, was->n_devices), "now",
                         h->now ? json_names((const char *const *) h->now->devices, h->now->n_devices) : json_null(),
                         "missing", json_names(h->missing, h->n_missing), "back", json_names(h->missing, h->n_back));
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

/* ---- repair ---- */

static const char *const hook_fix_kind_table[] = {
        [HOOK_FIX_ADD] = "add-device",
        [HOOK_FIX_RECREATE] = "re-create",
        [HOOK_FIX_REPLACE] = "replace",
        [HOOK_FIX_LEAVE] = "leave",
};

const char *hook_fix_kind_to_string(enum hook_fix_kind k) {
        return k < ELEMENTSOF(hook_fix_kind_table) ? hook_fix_kind_table[k] : "?";
}

void hook_plan_done(struct hook_plan *p) {
        for (size_t i = 0; p->fixes && i < p->n_fixes; i++) {
                free(p->fixes[i].devices);
                free(p->fixes[i].error);
                ruleset_sets_free(p->fixes[i].sets, p->fixes[i].n_sets);
        }
        free(p->fixes);
        *p = (struct hook_plan){};
}

static const char *fix_leave(struct hook_fix *fix, const char *why) {
        fix->kind = HOOK_FIX_LEAVE;
        fix->why = why;
        return why;
}

/* The chain made again: deleted by the kernel, or (a kernel that refuses a device added to a chain) deleted here
 * and made again in the same transaction. */
static int plan_rebuild(struct hook_fix *fix) {
        const struct device_hook *was = fix->finding->was, *now = fix->finding->now;
        /* the chain as it is now, or as the snapshot kept it: its rules, and the sets only they use */
        const struct device_hook *from = now ? now : was;
        fix->kind = now ? HOOK_FIX_REPLACE : HOOK_FIX_RECREATE;
        fix->rules = from->rules;
        fix->n_rules = from->n_rules;
        int r = ruleset_sets_parse(from->set_msgs, from->n_set_msgs, &fix->sets, &fix->n_sets);
        if (r < 0)
                return r;
        for (size_t i = 0; i < fix->n_rules; i++)
                if (rule_msg_sets_missing(&fix->rules[i], fix->sets, fix->n_sets)) {
                        fix_leave(fix, "a rule of it looks up an anonymous set the snapshot does not hold: load the "
                                       "ruleset that defines it again (e.g. nft -f /etc/nftables.conf)");
                        return 0;
                }
        return 0;
}

static int plan_one(struct hook_fix *fix, const struct hook_behaviour *kernel) {
        const struct hook_finding *h = fix->finding;
        const struct device_hook *was = h->was, *now = h->now;

        if (h->n_back == 0) {
                fix_leave(fix, "its devices are gone: nothing to hook it to until they are back");
                return 0;
        }
        /* afterwards: the devices it is on now, and those that are back */
        for (size_t i = 0; now && i < now->n_devices; i++)
                fix->devices[fix->n_devices++] = now->devices[i];
        for (size_t i = 0; i < h->n_back; i++)
                fix->devices[fix->n_devices++] = h->missing[i];

        if (was->flowtable || (now && (!kernel->known || kernel->chain_add_device))) {
                fix->kind = HOOK_FIX_ADD;
                return 0;
        }
        return plan_rebuild(fix);
}

int devhooks_plan(const struct ruleset *rs, const struct hook_finding *found, size_t n_found,
                  const struct hook_behaviour *kernel, bool (*skip)(void *userdata, uint8_t family, const char *table),
                  void *userdata, struct hook_plan *ret) {
        _cleanup_(hook_plan_done) struct hook_plan p = {.genid = rs->genid, .kernel_known = kernel->known};
        int r;
        p.fixes = calloc(n_found + 1, sizeof(struct hook_fix));
        if (!p.fixes)
                return -ENOMEM;
        for (size_t i = 0; i < n_found; i++) {
                const struct hook_finding *h = &found[i];
                struct hook_fix *fix = &p.fixes[p.n_fixes++];
                *fix = (struct hook_fix){.finding = h};
                fix->devices = calloc(h->was->n_devices + (h->now ? h->now->n_devices : 0) + 1, sizeof(char *));
                if (!fix->devices)
                        return -ENOMEM;
                if (skip && skip(userdata, h->was->family, h->was->table))
                        fix_leave(fix, "held back");
                else if ((r = plan_one(fix, kernel)) < 0)
                        return r;
                p.n_todo += fix->kind != HOOK_FIX_LEAVE;
        }
        *ret = p;
        p = (struct hook_plan){};
        return 0;
}

static int put_fix(struct nl_batch *b, struct hook_fix *fix, uint32_t *set_id) {
        const struct device_hook *was = fix->finding->was, *now = fix->finding->now;
        const char *const *devices = fix->devices;
        int r;

        fix->seq_first = b->seq_next;
        switch (fix->kind) {
        case HOOK_FIX_ADD:
                r = was->flowtable ? devhooks_put_flowtable(b, was, devices, fix->n_devices, 0)
                                   : devhooks_put_chain(b, was, devices, fix->n_devices, 0);
                break;
        case HOOK_FIX_REPLACE: {
                /* by handle: the chain read, not one of the same name created since */
                struct nlmsghdr *nlh = nl_batch_msg(b, NFT_MSG_DELCHAIN, now->family, 0, strlen(now->table) + 64);
                if (!nlh)
                        return -ENOMEM;
                mnl_attr_put_strz(nlh, NFTA_CHAIN_TABLE, now->table);
                mnl_attr_put_u64(nlh, NFTA_CHAIN_HANDLE, htobe64(now->handle));
                nl_batch_msg_end(b, nlh);
        }
                __attribute__((fallthrough));
        case HOOK_FIX_RECREATE:
                r = devhooks_put_chain(b, was, devices, fix->n_devices, NLM_F_CREATE | NLM_F_EXCL);
                for (size_t i = 0; r >= 0 && i < fix->n_rules; i++)
                        r = rule_put_again(b, &fix->rules[i], fix->sets, fix->n_sets, set_id);
                break;
        default:
                return 0;
        }
        fix->seq_last = b->seq_next - 1;
        return r;
}

int devhooks_commit(struct hook_plan *plan) {
        _cleanup_(mnl_socket_closep) struct mnl_socket *nl = NULL;
        int r = netlink_open(NETLINK_NETFILTER, &nl);
        if (r < 0)
                return r;
        /* each refusal takes one fix out, or turns an added device into a chain made again: at most twice as many
         * tries as fixes */
        for (size_t attempt = 0; attempt <= 2 * plan->n_fixes; attempt++) {
                _cleanup_(nl_batch_done) struct nl_batch b = {};
                _cleanup_free_ char *message = NULL;
                uint32_t failed = 0, set_id = 0;
                size_t sent = 0;
                if ((r = nl_batch_begin(&b, plan->genid)) < 0)
                        return r;
                for (size_t i = 0; i < plan->n_fixes; i++) {
                        struct hook_fix *fix = &plan->fixes[i];
                        if (fix->kind == HOOK_FIX_LEAVE || fix->state == HOOK_FAILED)
                                continue;
                        if ((r = put_fix(&b, fix, &set_id)) < 0)
                                return r;
                        sent++;
                }
                if (sent == 0)
                        return 0;
                if ((r = nl_batch_end(&b)) < 0)
                        return r;
                r = nl_batch_send(nl, &b, &failed, &message);
                if (r >= 0 || r == -ERESTART)
                        return r;
                struct hook_fix *culprit = NULL;
                for (size_t i = 0; i < plan->n_fixes && !culprit; i++) {
                        struct hook_fix *fix = &plan->fixes[i];
                        if (fix->kind != HOOK_FIX_LEAVE && fix->state != HOOK_FAILED && failed >= fix->seq_first &&
                            failed <= fix->seq_last)
                                culprit = fix;
                }
                if (!culprit)
                        return r;
                /* The probe could not ask the kernel (the watcher's sandbox allows no namespace of its own), and
                 * this one refuses a device added to a chain (6.1): the chain deleted and made again with its live
                 * rules, in one transaction, as when the probe says so. */
                if (culprit->kind == HOOK_FIX_ADD && !plan->kernel_known && !culprit->finding->was->flowtable &&
                    culprit->finding->now) {
                        log_debug("devhooks: %s %s: the kernel refused a device added to the chain (%s); making "
                                  "it again instead", culprit->finding->was->table, culprit->finding->was->name,
                                  strerror(-r));
                        if ((r = plan_rebuild(culprit)) < 0)
                                return r;
                        plan->n_todo -= culprit->kind == HOOK_FIX_LEAVE;
                        continue;
                }
                culprit->state = HOOK_FAILED;
                if (asprintf(&culprit->error, "the kernel refused it: %s%s%s", strerror(-r), message ? ": " : "",
                             message ? message : "") < 0)
                        culprit->error = NULL;
        }
        return 0;
}

static bool hook_has_all(const struct device_hook *h, const char *const *devices, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (!device_hook_has(h, devices[i]))
                        return false;
        return true;
}

static const char *verify_rules(const struct hook_fix *fix, const struct device_hook *h) {
        struct ifindex_set *sets = NULL;
        size_t n_sets = 0;
        const char *difference = NULL;
        if (h->n_rules != fix->n_rules)
                return "read back: another number of rules";
        if (ruleset_sets_parse(h->set_msgs, h->n_set_msgs, &sets, &n_sets) < 0)
                return "read back: its anonymous sets are not readable";
        for (size_t i = 0; i < h->n_rules && !difference; i++)
                if (!rule_msgs_same(&h->rules[i], sets, n_sets, &fix->rules[i], fix->sets, fix->n_sets))
                        difference = "read back: a rule differs, or is out of order";
        ruleset_sets_free(sets, n_sets);
        return difference;
}

static const char *verify_one(const struct hook_fix *fix, const struct ruleset *after) {
        const struct device_hook *was = fix->finding->was;
        const struct device_hook *h = ruleset_hook(after, was->family, was->table, was->name, was->flowtable);
        if (!h)
                return "read back: it is not there";
        if (!hook_has_all(h, fix->devices, fix->n_devices))
                return "read back: not on all of its devices";
        if (h->hooknum != was->hooknum || h->priority != was->priority || (!was->flowtable && h->policy != was->policy))
                return "read back: another hook, priority or policy";
        return fix->kind == HOOK_FIX_ADD ? NULL : verify_rules(fix, h);
}

void devhooks_verify(struct hook_plan *plan, const struct ruleset *after) {
        for (size_t i = 0; i < plan->n_fixes; i++) {
                struct hook_fix *fix = &plan->fixes[i];
                if (fix->kind == HOOK_FIX_LEAVE || fix->state == HOOK_FAILED)
                        continue;
                const char *difference = verify_one(fix, after);
                fix->state = difference ? HOOK_FAILED : HOOK_FIXED;
                if (difference && !(fix->error = strdup(difference)))
                        fix->state = HOOK_FAILED;
        }
}

json_t *hook_fix_json(const struct hook_fix *fix) {
        json_t *j = hook_finding_json(fix->finding);
        static const char *const states[] = {[HOOK_PLANNED] = "planned", [HOOK_FIXED] = "fixed",
                                             [HOOK_FAILED] = "failed"};
        if (!j || json_object_set_new(j, "action", json_string(hook_fix_kind_to_string(fix->kind))) < 0 ||
            json_object_set_new(j, "result", json_string(fix->kind == HOOK_FIX_LEAVE ? "left" : states[fix->state])) < 0 ||
            json_object_set_new(j, "devices_after", json_names(fix->devices, fix->n_devices)) < 0 ||
            (fix->kind == HOOK_FIX_RECREATE || fix->kind == HOOK_FIX_REPLACE
                     ? json_object_set_new(j, "rules", json_integer((json_int_t) fix->n_rules)) < 0
                     : 0) ||
            (fix->why && json_object_set_new(j, "why", json_string(fix->why)) < 0) ||
            (fix->error && json_object_set_new(j, "error", json_string(fix->error)) < 0))
                return json_decref(j), NULL;
        return j;
}

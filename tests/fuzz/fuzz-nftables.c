/* SPDX-License-Identifier: GPL-2.0-or-later */
/* fuzz-nftables: the nf_tables dump parser (generation, tables, chains, rules, sets, elements), then what a run
 * does with what it read: diagnose against a link history, the rebind plan, the batch it would send, and the
 * report. Input: netlink messages as a dump returns them (seeds: tests/fixtures/NAME.ruleset.nl). */
#include <dlfcn.h>
#include <libnftnl/chain.h>
#include <libnftnl/flowtable.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <sanitizer/lsan_interface.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>

#include "diagnose.h"
#include "fuzz.h"
#include "netlink.h"
#include "rebind.h"
#include "refs-world.h"
#include "report.h"
#include "state.h"

/* libnftnl trusts the kernel. An attribute whose size does not match its type ends the process (exit(1), "nf_tables
 * kernel ABI is broken"), and some combinations the kernel never stores are dereferenced unchecked (a jump verdict
 * without its chain: a NULL pointer). The kernel never sends either (these are the inputs the real thing cannot
 * produce), so such an input is dropped before the parser sees it: each message goes through libnftnl alone
 * first, with exit() and SIGSEGV caught here. What leaks when one is caught is libnftnl's half-built object: not
 * counted. */
static sigjmp_buf *libnftnl_trap;

_Noreturn void exit(int status) {
        if (libnftnl_trap)
                siglongjmp(*libnftnl_trap, 1);
        void (*real_exit)(int) = (void (*)(int)) dlsym(RTLD_NEXT, "exit");
        real_exit(status);
        abort();
}

static void on_fault(int sig) {
        if (libnftnl_trap)
                siglongjmp(*libnftnl_trap, 1);
        signal(sig, SIG_DFL);
        raise(sig);
}

static void libnftnl_parse(const struct nlmsghdr *nlh) {
        if (!ruleset_msg_readable(nlh))
                return; /* the parser does not give it to libnftnl either */
        switch (NFNL_MSG_TYPE(nlh->nlmsg_type)) {
        case NFT_MSG_NEWTABLE: {
                struct nftnl_table *t = nftnl_table_alloc();
                nftnl_table_nlmsg_parse(nlh, t);
                nftnl_table_free(t);
                break;
        }
        case NFT_MSG_NEWCHAIN: {
                struct nftnl_chain *c = nftnl_chain_alloc();
                nftnl_chain_nlmsg_parse(nlh, c);
                nftnl_chain_free(c);
                break;
        }
        case NFT_MSG_NEWSET: {
                struct nftnl_set *st = nftnl_set_alloc();
                nftnl_set_nlmsg_parse(nlh, st);
                nftnl_set_free(st);
                break;
        }
        case NFT_MSG_NEWRULE: {
                struct nftnl_rule *r = nftnl_rule_alloc();
                nftnl_rule_nlmsg_parse(nlh, r);
                nftnl_rule_free(r);
                break;
        }
        case NFT_MSG_NEWFLOWTABLE: {
                struct nftnl_flowtable *f = nftnl_flowtable_alloc();
                nftnl_flowtable_nlmsg_parse(nlh, f);
                nftnl_flowtable_free(f);
                break;
        }
        }
}

static bool libnftnl_survives(const uint8_t *input, size_t size) {
        struct sigaction fault = {.sa_handler = on_fault}, old_segv, old_bus;
        sigjmp_buf trap;
        volatile bool survived = true;
        const struct nlmsghdr *nlh;
        size_t off;

        /* as the parser holds messages: followed by zero bytes */
        _cleanup_free_ uint8_t *data = malloc(size + NETLINK_ZERO_TAIL);
        if (!data)
                abort();
        memcpy_safe(data, input, size);
        memset(data + size, 0, NETLINK_ZERO_TAIL);

        __lsan_disable();
        sigaction(SIGSEGV, &fault, &old_segv);
        sigaction(SIGBUS, &fault, &old_bus);
        if (sigsetjmp(trap, 1) == 0) {
                libnftnl_trap = &trap;
                NLMSG_FOREACH_IN(nlh, data, size, off)
                        if ((nlh->nlmsg_type >> 8) == NFNL_SUBSYS_NFTABLES)
                                libnftnl_parse(nlh);
        } else
                survived = false;
        libnftnl_trap = NULL;
        sigaction(SIGSEGV, &old_segv, NULL);
        sigaction(SIGBUS, &old_bus, NULL);
        __lsan_enable();
        return survived;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        fuzz_quiet();
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(observation_done) struct observation now = {};
        _cleanup_(link_history_done) struct link_history past = {};
        _cleanup_(findings_done) struct findings found = {};
        _cleanup_(rebind_plan_done) struct rebind_plan plan = {};
        _cleanup_(nl_batch_done) struct nl_batch batch = {};
        struct ruleset none = {};

        if (!libnftnl_survives(data, size) || ruleset_parse_messages(data, size, &now.ruleset) < 0)
                return 0;
        refs_world(&now.ruleset, &past, &now.links);
        if (diagnose(&now, NULL, &past, &found) < 0)
                return 0;

        json_t *j = report_json(&found);
        json_decref(j);
        j = ruleset_lost(&now.ruleset, &none);
        json_decref(j);

        /* The planner reads the anonymous sets a rule it changes looks up and the dump did not hold from the
         * kernel: not from a fuzzer. */
        for (size_t i = 0; i < now.ruleset.n_rule_msgs; i++)
                if (!ruleset_has_anonymous_sets(&now.ruleset, i))
                        return 0;
        if (rebind_plan(&now.ruleset, &found, size & 1, &plan) < 0)
                return 0;
        if (plan.n_fixes != found.n_stale || plan.n_rebind + plan.n_prune + plan.n_keep != plan.n_fixes)
                abort();
        _cleanup_free_ uint32_t *seqs = calloc(plan.n_rules + plan.n_elems + 1, sizeof(uint32_t));
        if (!seqs)
                abort();
        if (rebind_batch(&now.ruleset, &plan, &batch, seqs) < 0)
                return 0;
        /* whatever it built is a sequence of whole netlink messages */
        int len = (int) batch.len;
        for (const struct nlmsghdr *nlh = (const void *) batch.buf; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len))
                ;
        if (len != 0)
                abort();
        return 0;
}

/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Interface references found in rulesets the kernel really sent (tests/fixtures/regenerate).
 * Indexes in the fixtures: lo 1, tailscale0 2 (4 after it was re-created), wg0 3, an interface named "3" is 5. */
#include <arpa/inet.h>
#include <endian.h>
#include <libnftnl/common.h>
#include <linux/netfilter.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include "fixture.h"

/* How many references match; chain_or_set NULL matches any. */
static size_t count(const struct ruleset *rs, enum ref_key key, uint32_t ifindex, const char *chain_or_set,
                    bool negated) {
        size_t n = 0;
        for (size_t i = 0; i < rs->n_refs; i++) {
                const struct iface_ref *r = &rs->refs[i];
                const char *where = r->chain ? r->chain : r->set;
                if (r->key == key && r->ifindex == ifindex && r->negated == negated &&
                    (!chain_or_set || strcmp(where, chain_or_set) == 0))
                        n++;
        }
        return n;
}

static void test_every_form(void **state) {
        struct ruleset rs;
        fixture_ruleset("forms", &rs);

        /* iif "tailscale0"; iif {ts, wg0}; iif vmap {ts, wg0}; iif . ip saddr {ts . …} */
        assert_int_equal(count(&rs, REF_KEY_IIF, 2, "forward", false), 4);
        assert_int_equal(count(&rs, REF_KEY_IIF, 3, "forward", false), 2);
        /* oif != "tailscale0" */
        assert_int_equal(count(&rs, REF_KEY_OIF, 2, "forward", true), 1);
        /* ip saddr . oif { … . "wg0" }: the index is the second component */
        assert_int_equal(count(&rs, REF_KEY_OIF, 3, "forward", false), 1);
        /* fib daddr oif "wg0"; "!= 0" and "missing" are no interface */
        assert_int_equal(count(&rs, REF_KEY_FIB, 3, "forward", false), 1);
        assert_int_equal(count(&rs, REF_KEY_FIB, 0, NULL, false) + count(&rs, REF_KEY_FIB, 0, NULL, true), 0);
        assert_int_equal(count(&rs, REF_KEY_FIB, 1, NULL, false) + count(&rs, REF_KEY_FIB, 1, NULL, true), 0);
        /* named sets and maps of iface_index, typeof and concatenations in either order */
        assert_int_equal(count(&rs, REF_KEY_ELEMENT, 2, "allowed", false), 1);
        assert_int_equal(count(&rs, REF_KEY_ELEMENT, 1, "allowed", false), 1);
        assert_int_equal(count(&rs, REF_KEY_ELEMENT, 2, "pairs", false), 1);
        assert_int_equal(count(&rs, REF_KEY_ELEMENT, 3, "rpairs", false), 1);
        assert_int_equal(count(&rs, REF_KEY_ELEMENT, 3, "egress", false), 1);
        /* netdev: dup to "wg0", fwd to "tailscale0" */
        assert_int_equal(count(&rs, REF_KEY_DUP, 3, "in", false), 1);
        assert_int_equal(count(&rs, REF_KEY_FWD, 2, "in", false), 1);
        /* and nothing else */
        assert_int_equal(rs.n_refs, 16);

        /* by name: iifname "tailscale0", oifname "wg*" (a prefix) */
        assert_int_equal(rs.n_name_refs, 2);
        assert_string_equal(rs.name_refs[0].name, "tailscale0");
        assert_int_equal(rs.name_refs[0].key, REF_KEY_IIFNAME);
        assert_string_equal(rs.name_refs[1].name, "wg");
        assert_int_equal(rs.name_refs[1].key, REF_KEY_OIFNAME);

        /* a rule reference names its rule exactly */
        for (size_t i = 0; i < rs.n_refs; i++)
                if (rs.refs[i].chain) {
                        assert_non_null(rs.refs[i].table);
                        assert_true(rs.refs[i].handle > 0);
                        assert_null(rs.refs[i].set);
                } else
                        assert_non_null(rs.refs[i].set);

        assert_int_equal(rs.n_tables, 2);
        assert_int_equal(rs.n_chains, 2);
        ruleset_done(&rs);
}

static void test_stale_keeps_old_index(void **state) {
        struct ruleset rs;
        fixture_ruleset("stale", &rs);
        /* the kernel still holds 2 everywhere tailscale0 was written; nothing says 4 */
        assert_int_equal(count(&rs, REF_KEY_IIF, 2, NULL, false), 4);
        assert_int_equal(count(&rs, REF_KEY_IIF, 4, NULL, false), 0);
        assert_int_equal(rs.n_refs, 16);
        ruleset_done(&rs);
}

static void test_by_name_only(void **state) {
        struct ruleset rs;
        fixture_ruleset("iifname", &rs);
        assert_int_equal(rs.n_refs, 0);
        assert_int_equal(rs.n_name_refs, 2);
        ruleset_done(&rs);
}

static void test_numeric(void **state) {
        struct ruleset rs;
        fixture_ruleset("numeric", &rs);
        assert_int_equal(count(&rs, REF_KEY_IIF, 3, "c", false), 1);
        assert_int_equal(count(&rs, REF_KEY_OIF, 4, "c", false), 1);
        assert_int_equal(rs.n_refs, 2);
        assert_string_equal(nfproto_to_string(rs.refs[0].family), "ip");
        ruleset_done(&rs);
}

static void test_interface_named_3(void **state) {
        struct ruleset rs;
        fixture_ruleset("named-3", &rs);
        /* nft -j shows "3"; the kernel holds the device's real index */
        assert_int_equal(rs.n_refs, 1);
        assert_int_equal(rs.refs[0].ifindex, 5);
        ruleset_done(&rs);
}

/* Interval sets: the index is in network order, and the end of each range is no interface. */
static void test_intervals(void **state) {
        struct ruleset rs;
        fixture_ruleset("intervals", &rs);
        assert_int_equal(count(&rs, REF_KEY_ELEMENT, 3, "single", false), 1);
        assert_int_equal(count(&rs, REF_KEY_ELEMENT, 3, "pairs", false), 1);
        /* the rule converts iif to network order before its lookup: still the interface, still found */
        assert_int_equal(count(&rs, REF_KEY_IIF, 3, "forward", false), 1);
        assert_int_equal(rs.n_refs, 3);
        /* each reference points at the bytes that hold it */
        for (size_t i = 0; i < rs.n_refs; i++) {
                const struct ref_site *site = &rs.refs[i].site;
                const struct ifindex_set *s = &rs.sets[site->set];
                const struct set_elem *e = &s->elems[site->elem];
                uint32_t v;
                assert_true(s->big_endian);
                memcpy(&v, e->attrs.data + e->key_off + site->offset, 4);
                assert_int_equal(ntohl(v), 3);
                /* a concatenated range ends at the same interface */
                if (e->key_end_len) {
                        memcpy(&v, e->attrs.data + e->key_end_off + site->offset, 4);
                        assert_int_equal(ntohl(v), 3);
                }
        }
        ruleset_done(&rs);
}

/* A rule with an expression this libnftnl does not know (a newer kernel's): skipped, counted, placed; everything
 * else is still read. The kernel here cannot be made to send one, so it is written by hand into a recording. */
static void test_unreadable_rule(void **state) {
        size_t size;
        char *rec = fixture_load("stale.ruleset.nl", &size);
        char msg[512];
        struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(msg, NFT_MSG_NEWRULE, NFPROTO_INET, 0, 1);
        mnl_attr_put_strz(nlh, NFTA_RULE_TABLE, "filter");
        mnl_attr_put_strz(nlh, NFTA_RULE_CHAIN, "forward");
        mnl_attr_put_u64(nlh, NFTA_RULE_HANDLE, htobe64(99));
        struct nlattr *list = mnl_attr_nest_start(nlh, NFTA_RULE_EXPRESSIONS);
        struct nlattr *elem = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
        mnl_attr_put_strz(nlh, NFTA_EXPR_NAME, "nosuchexpr");
        struct nlattr *data = mnl_attr_nest_start(nlh, NFTA_EXPR_DATA);
        mnl_attr_put_u32(nlh, 1, htonl(7));
        mnl_attr_nest_end(nlh, data);
        mnl_attr_nest_end(nlh, elem);
        mnl_attr_nest_end(nlh, list);

        char *buf = malloc(size + nlh->nlmsg_len);
        assert_non_null(buf);
        memcpy(buf, rec, size);
        memcpy(buf + size, nlh, nlh->nlmsg_len);
        struct ruleset rs;
        assert_int_equal(ruleset_parse_messages(buf, size + nlh->nlmsg_len, &rs), 0);
        assert_int_equal(rs.n_refs, 16); /* every other reference still read */
        assert_int_equal(rs.n_unreadable, 1);
        assert_string_equal(rs.unreadable[0].table, "filter");
        assert_string_equal(rs.unreadable[0].chain, "forward");
        assert_int_equal(rs.unreadable[0].handles[0], 99);
        const struct nft_path *c = ruleset_chain(&rs, NFPROTO_INET, "filter", "forward");
        assert_non_null(c);
        assert_int_equal(c->handles[c->n_handles - 1], 99); /* in its place in the chain */
        ruleset_done(&rs);
        free(buf);
        free(rec);
}

static void test_empty(void **state) {
        struct ruleset rs;
        fixture_ruleset("empty", &rs);
        assert_int_equal(rs.n_refs, 0);
        assert_int_equal(rs.n_name_refs, 0);
        assert_int_equal(rs.n_tables, 0);
        ruleset_done(&rs);
}

static void test_truncated(void **state) {
        size_t size;
        char *buf = fixture_load("forms.ruleset.nl", &size);
        struct ruleset rs;
        /* cut inside a message */
        for (size_t cut = 7; cut < size; cut += size / 7)
                if (cut % 4 != 0)
                        assert_int_equal(ruleset_parse_messages(buf, cut, &rs), -EBADMSG);
        free(buf);
}

static void test_malformed(void **state) {
        size_t size;
        char *buf = fixture_load("forms.ruleset.nl", &size);
        struct ruleset rs;
        int len = (int) size;
        bool corrupted = false;

        /* Break the first attribute of the first rule message: a length past the end of the message. */
        for (struct nlmsghdr *nlh = (void *) buf; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len))
                if (NFNL_MSG_TYPE(nlh->nlmsg_type) == NFT_MSG_NEWRULE) {
                        struct nlattr *attr = mnl_nlmsg_get_payload_offset(nlh, sizeof(struct nfgenmsg));
                        attr->nla_len = 0xfff0;
                        corrupted = true;
                        break;
                }
        assert_true(corrupted);
        assert_int_equal(ruleset_parse_messages(buf, size, &rs), -EBADMSG);
        free(buf);
}

/* Inputs fuzz-nftables found (tests/fixtures/fuzz/, also its regressions). */

/* A rule whose expression has no name: libnftnl 1.2.4 looked it up by a NULL name and crashed. The rule is
 * counted as unreadable and the rest is read. */
static void test_fuzz_rule_expression_without_name(void **state) {
        size_t size;
        char *buf = fixture_load("fuzz/rule-expression-without-name.nl", &size);
        struct ruleset rs;
        assert_int_equal(ruleset_parse_messages(buf, size, &rs), 0);
        assert_int_equal(rs.n_unreadable, 1);
        assert_string_equal(rs.unreadable[0].table, "t");
        assert_string_equal(rs.unreadable[0].chain, "c");
        assert_int_equal(rs.unreadable[0].handles[0], 7);
        ruleset_done(&rs);
        free(buf);
}

/* A goto verdict without its chain: libnftnl 1.2.4 strdup()s the missing chain name. The kernel always sends it;
 * the rule is counted as unreadable. */
static void test_fuzz_goto_without_chain(void **state) {
        size_t size;
        char *buf = fixture_load("fuzz/goto-without-chain.nl", &size);
        struct ruleset rs;
        assert_int_equal(ruleset_parse_messages(buf, size, &rs), 0);
        assert_int_equal(rs.n_unreadable, 1);
        assert_string_equal(rs.unreadable[0].chain, "forward");
        assert_int_equal(rs.unreadable[0].handles[0], 21);
        ruleset_done(&rs);
        free(buf);
}

/* The same for a set's expression (a counter on each element, say): libnftnl crashed the same way. A set that
 * cannot be read fails the read (as when libnftnl refuses one). */
static void test_fuzz_set_expression_without_name(void **state) {
        size_t size;
        char *buf = fixture_load("fuzz/set-expression-without-name.nl", &size);
        struct ruleset rs;
        assert_int_equal(ruleset_parse_messages(buf, size, &rs), -EBADMSG);
        free(buf);
}

/* A header that claims 4 GiB - 16: mnl_nlmsg_ok() compares the length as an int (-16), the walk went 4 GiB past the
 * buffer. A recording that is not whole messages is refused. */
static void test_fuzz_message_length_past_int_max(void **state) {
        size_t size;
        char *buf = fixture_load("fuzz/message-length-past-int-max.nl", &size);
        struct ruleset rs;
        assert_int_equal(ruleset_parse_messages(buf, size, &rs), -EBADMSG);
        free(buf);
}

/* A chain whose name fills its attribute to the end of the recording, with no NUL: libnftnl 1.2.4 strdup()s it
 * and read past the buffer (found as a chain's table). The kernel always ends a name with its NUL; such a chain is
 * not given to libnftnl, and the recording is refused as a chain that cannot be read. */
static void test_fuzz_chain_name_without_nul(void **state) {
        size_t size;
        char *buf = fixture_load("fuzz/chain-name-without-nul.nl", &size);
        struct ruleset rs;
        assert_int_equal(ruleset_parse_messages(buf, size, &rs), -EBADMSG);
        free(buf);
}

/* Device-bound hooks, recorded on Debian's 6.1 (tests/kernel/capture-device-hooks.sh: the build machines' kernel
 * has no flowtables): netdev chains on one and on two devices, inet's ingress chain and a flowtable; the forward
 * chain beside them is not one. */
static void test_device_hooks(void **state) {
        struct ruleset rs;
        fixture_ruleset("device-hooks", &rs);
        assert_int_equal(rs.n_hooks, 4);
        size_t chains = 0, flowtables = 0;
        for (size_t i = 0; i < rs.n_hooks; i++) {
                const struct device_hook *h = &rs.hooks[i];
                if (strcmp(h->table, "rau_p1") == 0) {
                        assert_false(h->flowtable);
                        assert_int_equal(h->family, NFPROTO_NETDEV);
                        assert_int_equal(h->n_devices, 1);
                        assert_string_equal(h->devices[0], "ts0");
                        assert_int_equal(h->policy, NF_DROP);
                        assert_string_equal(h->type, "filter");
                } else if (strcmp(h->table, "rau_p2") == 0) {
                        assert_int_equal(h->n_devices, 2);
                        assert_int_equal(h->priority, -10);
                } else if (strcmp(h->table, "rau_p3") == 0) {
                        assert_int_equal(h->family, NFPROTO_INET);
                        assert_int_equal(h->priority, 5);
                } else {
                        assert_string_equal(h->table, "rau_p4");
                        assert_true(h->flowtable);
                        assert_string_equal(h->name, "f");
                        assert_int_equal(h->n_devices, 2);
                        assert_null(h->type);
                }
                chains += !h->flowtable;
                flowtables += h->flowtable;
        }
        assert_int_equal(chains, 3);
        assert_int_equal(flowtables, 1);
        ruleset_done(&rs);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_every_form),        cmocka_unit_test(test_stale_keeps_old_index),
                cmocka_unit_test(test_by_name_only),      cmocka_unit_test(test_numeric),
                cmocka_unit_test(test_interface_named_3), cmocka_unit_test(test_empty),
                cmocka_unit_test(test_truncated),         cmocka_unit_test(test_malformed),
                cmocka_unit_test(test_intervals),         cmocka_unit_test(test_unreadable_rule),
                cmocka_unit_test(test_fuzz_rule_expression_without_name),
                cmocka_unit_test(test_fuzz_message_length_past_int_max),
                cmocka_unit_test(test_fuzz_set_expression_without_name),
                cmocka_unit_test(test_fuzz_goto_without_chain),
                cmocka_unit_test(test_fuzz_chain_name_without_nul),
                cmocka_unit_test(test_device_hooks),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

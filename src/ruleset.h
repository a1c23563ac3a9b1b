/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ruleset.h: every interface reference in the live nf_tables ruleset, read over netlink with libnftnl.
 *
 * A reference by index (iif, oif, fib … oif, fwd/dup to, iface_index set/map elements) holds the ifindex the
 * kernel resolved at load time; it goes stale when the device is re-created. A reference by name (iifname,
 * oifname) never does; those are collected only to say so. */
#pragma once

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct nlmsghdr;

enum ref_key {
        REF_KEY_IIF,
        REF_KEY_OIF,
        REF_KEY_FIB,
        REF_KEY_FWD,
        REF_KEY_DUP,
        REF_KEY_ELEMENT,
        REF_KEY_IIFNAME,
        REF_KEY_OIFNAME,
        _REF_KEY_MAX,
};

const char *ref_key_to_string(enum ref_key key);
const char *nfproto_to_string(uint8_t family);

struct iface_ref {
        uint8_t family;      /* NFPROTO_* */
        char *table;
        char *chain;         /* the rule's chain; NULL for an element of a named set or map */
        char *set;           /* the named set or map; NULL for a rule */
        uint64_t handle;     /* the rule's handle; 0 for a set element */
        enum ref_key key;
        bool negated;        /* "!=" or a negated set lookup */
        uint32_t ifindex;    /* by-index references; never 0 ("no interface" is not a reference) */
        char name[IFNAMSIZ]; /* by-name references: the name, or its prefix for a "name*" wildcard */
};

/* A table (chain == NULL) or a chain. */
struct nft_path {
        uint8_t family;
        char *table;
        char *chain;
};

struct ruleset {
        struct iface_ref *refs; /* by index */
        size_t n_refs, allocated_refs;
        struct iface_ref *name_refs; /* by name */
        size_t n_name_refs, allocated_name_refs;
        struct nft_path *tables, *chains;
        size_t n_tables, allocated_tables, n_chains, allocated_chains;
        size_t n_rules, n_sets;
};

/* Tap for ruleset_read(): sees each netlink message as received (tests/nl-capture records fixtures with it). */
typedef void (*ruleset_tap_t)(const struct nlmsghdr *nlh, void *userdata);

/* Reads the ruleset of the current network namespace. Retries when the ruleset changes while it is dumped. */
int ruleset_read(struct ruleset *ret, ruleset_tap_t tap, void *tap_data);

/* Parses a recorded sequence of nf_tables netlink messages, as ruleset_read() receives them. */
int ruleset_parse_messages(const void *buf, size_t size, struct ruleset *ret);

void ruleset_done(struct ruleset *rs);

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
enum ref_key ref_key_from_string(const char *s); /* _REF_KEY_MAX when unknown */
const char *nfproto_to_string(uint8_t family);
uint8_t nfproto_from_string(const char *s);      /* 0 (NFPROTO_UNSPEC) when unknown */

/* Bytes exactly as the kernel sent them: what a rebind copies, patches and sends back. */
struct nl_blob {
        uint8_t *data;
        size_t size;
};

/* Where exactly an index sits, so that a rebind rewrites that and nothing else. */
struct ref_site {
        size_t rule;     /* index into ruleset.rules; SIZE_MAX for an element of a named set */
        uint16_t expr;   /* the rule's expression that holds the index (cmp, immediate) or looks it up (lookup) */
        size_t set;      /* index into ruleset.sets; SIZE_MAX when the index is in the rule itself */
        size_t elem;     /* index into that set's elems */
        uint16_t offset; /* byte offset of the index in the element's key, or in its data when in_data */
        bool in_data;
};

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
        struct ref_site site; /* by-index references */
};

/* A table (chain == NULL) or a chain; a chain keeps the handles of its rules in order. */
struct nft_path {
        uint8_t family;
        char *table;
        char *chain;
        uint64_t *handles;
        size_t n_handles, allocated_handles;
};

/* A rule that holds an index, or looks one up: its NEWRULE message. */
struct rule_msg {
        uint8_t family;
        char *table, *chain;
        uint64_t handle;
        size_t chain_index; /* into ruleset.chains; SIZE_MAX if its chain was not seen */
        struct nl_blob msg;
};

/* One element of a set, as its NFTA_LIST_ELEM payload; the offsets point into it (0 length: absent). */
struct set_elem {
        struct nl_blob attrs;
        uint32_t key_off, key_len;         /* NFTA_SET_ELEM_KEY's NFTA_DATA_VALUE */
        uint32_t key_end_off, key_end_len; /* NFTA_SET_ELEM_KEY_END's (a concatenated range) */
        uint32_t data_off, data_len;       /* NFTA_SET_ELEM_DATA's NFTA_DATA_VALUE (not a verdict) */
        uint32_t flags;                    /* NFT_SET_ELEM_INTERVAL_END, … */
};

/* A set or map whose key or data can hold an interface index, with its elements and NEWSET message. */
struct ifindex_set {
        uint8_t family;
        char *table, *name;
        uint32_t flags;      /* NFT_SET_* */
        uint32_t key_len;
        bool data_is_ifindex;
        bool big_endian;     /* interval sets keep integers in network order, so that ranges sort */
        struct nl_blob msg;
        struct set_elem *elems;
        size_t n_elems, allocated_elems;
        /* named sets: where in the key the index components are */
        uint8_t ifindex_offsets[16];
        uint8_t n_ifindex_offsets;
        bool offsets_known;
};

/* A base chain bound to devices (the netdev family's, and inet's ingress hook) or a flowtable, with its devices as
 * the kernel lists them now. Kernels before 6.16 drop a device that goes away from this list and never put it
 * back (6.1 deletes a chain that had only that device): the snapshot keeps them to compare with. */
struct device_hook {
        uint8_t family;
        char *table;
        char *name;       /* the chain's or the flowtable's */
        bool flowtable;
        uint32_t hooknum;
        int32_t priority;
        uint32_t policy;  /* chains: NF_ACCEPT or NF_DROP */
        uint32_t flags;
        char *type;       /* chains: "filter", ...; NULL for a flowtable */
        char **devices;
        size_t n_devices;
        uint64_t handle;  /* the chain's or the flowtable's, in this reading */
        struct nl_blob *rules; /* chains: the NEWRULE message of each rule, in order (what re-creates it) */
        size_t n_rules, allocated_rules;
        char **detached;  /* snapshots only: devices the kernel took out while a snapshot kept the hook as it was */
        size_t n_detached;
        struct nl_blob *set_msgs; /* chains: the NEWSET, then the NEWSETELEM messages, of each anonymous set its
                                   * rules look up (an anonymous set goes with its rule) */
        size_t n_set_msgs, allocated_set_msgs;
};

void device_hook_done(struct device_hook *h);
bool device_hook_has(const struct device_hook *h, const char *device);

struct ruleset {
        struct iface_ref *refs; /* by index */
        size_t n_refs, allocated_refs;
        struct iface_ref *name_refs; /* by name */
        size_t n_name_refs, allocated_name_refs;
        struct nft_path *tables, *chains;
        size_t n_tables, allocated_tables, n_chains, allocated_chains;
        size_t n_rules, n_sets;
        struct rule_msg *rules; /* rules that hold or look up an index */
        size_t n_rule_msgs, allocated_rule_msgs;
        struct nft_path *unreadable; /* rules this libnftnl could not parse (an expression it does not know):
                                      * chain set, handle in .handles[0]; skipped, counted, said */
        size_t n_unreadable, allocated_unreadable;
        struct ifindex_set *sets; /* sets that can hold an index, sorted by family, table, name */
        size_t n_ifindex_sets, allocated_ifindex_sets;
        struct device_hook *hooks; /* device-bound base chains and flowtables */
        size_t n_hooks, allocated_hooks;
        uint32_t genid; /* the generation the whole read saw: a change computed from it carries it */
        bool consistent; /* false: every part was read whole, but the ruleset changed in between (it kept
                          * changing): good to look at, not to compute a change from */
};

const struct nft_path *ruleset_chain(const struct ruleset *rs, uint8_t family, const char *table, const char *chain);
/* The device-bound chain or flowtable of that name; NULL when there is none. */
const struct device_hook *ruleset_hook(const struct ruleset *rs, uint8_t family, const char *table, const char *name,
                                       bool flowtable);

/* Tap for ruleset_read(): sees each netlink message as received (tests/nl-capture records fixtures with it). */
typedef void (*ruleset_tap_t)(const struct nlmsghdr *nlh, void *userdata);

/* Reads the ruleset of the current network namespace. Reads again (bounded, backing off) when it changes while it
 * is dumped; see ruleset.consistent. */
int ruleset_read(struct ruleset *ret, ruleset_tap_t tap, void *tap_data);

/* Adds to rs->sets the anonymous sets the index-holding rules of the chains marked in chains (by ruleset.chains
 * index) look up, with their elements: a rule sent again must send them again too (an anonymous set belongs to
 * one rule). -EAGAIN when the ruleset is no longer rs->genid. */
int ruleset_fetch_anonymous(struct ruleset *rs, const bool *chains);
/* Whether every anonymous set that rule looks up is in rs->sets. */
bool ruleset_has_anonymous_sets(const struct ruleset *rs, size_t rule);

/* The sets in a sequence of NEWSET messages, each followed by its NEWSETELEM messages (a device_hook's
 * set_msgs). */
int ruleset_sets_parse(const struct nl_blob *msgs, size_t n, struct ifindex_set **ret, size_t *ret_n);
void ruleset_sets_free(struct ifindex_set *sets, size_t n);

/* Parses a recorded sequence of nf_tables netlink messages, as ruleset_read() receives them. */
int ruleset_parse_messages(const void *buf, size_t size, struct ruleset *ret);
/* Whether a rule or set message is as the kernel always sends it (each attribute once; expressions named; jump
 * verdicts with their chain), which libnftnl 1.2.4 and the raw walkers rely on. */
bool ruleset_msg_readable(const struct nlmsghdr *nlh);

void ruleset_done(struct ruleset *rs);

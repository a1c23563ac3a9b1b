/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ruleset.c: dumps tables, chains, sets, rules and the elements of interface-typed sets over nf_tables netlink,
 * and finds interface references by following the registers of each rule's expressions.
 *
 * Raw netlink values carry the index itself: unlike nft's JSON they cannot confuse a stale index with an
 * interface named "3", or "no interface" (0) with an interface. */
#include <arpa/inet.h>
#include <endian.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/flowtable.h>
#include <libnftnl/gen.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "macro.h"
#include "netlink.h"
#include "ruleset.h"

/* nftables' datatype numbers (src/datatype.h); concatenations pack one per 6 bits, first component highest. */
#define NFT_TYPE_BITS 6
#define NFT_TYPE_MASK ((1u << NFT_TYPE_BITS) - 1)
#define NFT_TYPE_IFINDEX 20
#ifndef NFT_REG32_COUNT
#define NFT_REG32_COUNT 16
#endif
#define SET_KEY_MAX 64

DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_rule *, nftnl_rule_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_set *, nftnl_set_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_table *, nftnl_table_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_chain *, nftnl_chain_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_flowtable *, nftnl_flowtable_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_gen *, nftnl_gen_free)

static const char *const ref_key_table[_REF_KEY_MAX] = {
        [REF_KEY_IIF] = "iif",         [REF_KEY_OIF] = "oif",         [REF_KEY_FIB] = "fib",
        [REF_KEY_FWD] = "fwd",         [REF_KEY_DUP] = "dup",         [REF_KEY_ELEMENT] = "element",
        [REF_KEY_IIFNAME] = "iifname", [REF_KEY_OIFNAME] = "oifname",
};

const char *ref_key_to_string(enum ref_key key) {
        return key < _REF_KEY_MAX ? ref_key_table[key] : "?";
}

enum ref_key ref_key_from_string(const char *s) {
        for (enum ref_key k = 0; k < _REF_KEY_MAX; k++)
                if (streq(ref_key_table[k], s))
                        return k;
        return _REF_KEY_MAX;
}

uint8_t nfproto_from_string(const char *s) {
        static const uint8_t families[] = {NFPROTO_INET, NFPROTO_IPV4, NFPROTO_IPV6, NFPROTO_ARP, NFPROTO_BRIDGE,
                                           NFPROTO_NETDEV};
        for (size_t i = 0; i < ELEMENTSOF(families); i++)
                if (streq(nfproto_to_string(families[i]), s))
                        return families[i];
        return NFPROTO_UNSPEC;
}

const char *nfproto_to_string(uint8_t family) {
        switch (family) {
        case NFPROTO_INET: return "inet";
        case NFPROTO_IPV4: return "ip";
        case NFPROTO_IPV6: return "ip6";
        case NFPROTO_ARP: return "arp";
        case NFPROTO_BRIDGE: return "bridge";
        case NFPROTO_NETDEV: return "netdev";
        default: return "unknown";
        }
}

/* What a 32-bit register holds at a point in a rule. */
enum reg_source {
        REG_NONE,
        REG_IFINDEX,  /* meta iif/oif or fib … oif: .key says which */
        REG_IFNAME,   /* meta iifname/oifname: first of 4 registers */
        REG_IMMEDIATE,
        REG_MAP_DATA, /* the data of a map lookup: .lookup is its index in scan->lookups */
};

struct reg {
        enum reg_source source;
        enum ref_key key;
        uint32_t value;
        size_t lookup;
        uint16_t expr; /* REG_IMMEDIATE: the expression that loaded it */
};

/* A rule's lookup into an anonymous set whose key holds interface indexes at known offsets. */
struct pending_lookup {
        uint8_t family;
        char *table, *chain, *set;
        uint64_t handle;
        size_t rule;   /* index into ruleset.rules */
        uint16_t expr; /* the lookup expression */
        bool negated;
        uint8_t n_fields;
        struct {
                uint8_t offset;
                enum ref_key key;
        } fields[NFT_REG32_COUNT];
        bool has_data_key; /* the map's data feeds fwd/dup */
        enum ref_key data_key;
};

struct scan {
        struct ruleset *rs;
        bool sets_sorted;
        struct nft_path *chain; /* the chain the last rule was in: rules come chain by chain */
        struct pending_lookup *lookups;
        size_t n_lookups, allocated_lookups;
        int error;
};

static void set_elems_free(struct set_elem *elems, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(elems[i].attrs.data);
        free(elems);
}

static void ifindex_set_done(struct ifindex_set *s) {
        free(s->table);
        free(s->name);
        free(s->msg.data);
        set_elems_free(s->elems, s->n_elems);
}

static int blob_copy(struct nl_blob *b, const void *data, size_t size) {
        b->data = malloc(size ? size : 1);
        if (!b->data)
                return -ENOMEM;
        memcpy_safe(b->data, data, size);
        b->size = size;
        return 0;
}

static void scan_done(struct scan *scan) {
        for (size_t i = 0; i < scan->n_lookups; i++) {
                free(scan->lookups[i].table);
                free(scan->lookups[i].chain);
                free(scan->lookups[i].set);
        }
        free(scan->lookups);
}

/* How far a scan had got: a dump interrupted half way is undone to here, then done again. */
struct scan_mark {
        size_t n_refs, n_name_refs, n_rule_msgs, n_rules, n_lookups, n_unreadable;
};

static struct scan_mark scan_mark(const struct scan *scan) {
        const struct ruleset *rs = scan->rs;
        return (struct scan_mark){rs->n_refs,    rs->n_name_refs,  rs->n_rule_msgs,
                                  rs->n_rules,   scan->n_lookups,  rs->n_unreadable};
}

static void refs_truncate(struct iface_ref *refs, size_t *n, size_t to) {
        for (size_t i = to; i < *n; i++) {
                free(refs[i].table);
                free(refs[i].chain);
                free(refs[i].set);
        }
        *n = to;
}

static void scan_rollback(struct scan *scan, const struct scan_mark *m) {
        struct ruleset *rs = scan->rs;
        refs_truncate(rs->refs, &rs->n_refs, m->n_refs);
        refs_truncate(rs->name_refs, &rs->n_name_refs, m->n_name_refs);
        for (size_t i = m->n_rule_msgs; i < rs->n_rule_msgs; i++) {
                free(rs->rules[i].table);
                free(rs->rules[i].chain);
                free(rs->rules[i].msg.data);
        }
        rs->n_rule_msgs = m->n_rule_msgs;
        rs->n_rules = m->n_rules;
        for (size_t i = m->n_lookups; i < scan->n_lookups; i++) {
                free(scan->lookups[i].table);
                free(scan->lookups[i].chain);
                free(scan->lookups[i].set);
        }
        scan->n_lookups = m->n_lookups;
        for (size_t i = m->n_unreadable; i < rs->n_unreadable; i++) {
                free(rs->unreadable[i].table);
                free(rs->unreadable[i].chain);
                free(rs->unreadable[i].handles);
        }
        rs->n_unreadable = m->n_unreadable;
}

static int reg_slot(uint32_t reg) {
        if (reg >= NFT_REG32_00 && reg < NFT_REG32_00 + NFT_REG32_COUNT)
                return (int) (reg - NFT_REG32_00);
        if (reg >= NFT_REG_1 && reg <= NFT_REG_4)
                return (int) (reg - NFT_REG_1) * 4;
        return -1; /* the verdict register */
}

static bool type_has_ifindex(uint32_t type) {
        for (; type; type >>= NFT_TYPE_BITS)
                if ((type & NFT_TYPE_MASK) == NFT_TYPE_IFINDEX)
                        return true;
        return false;
}

/* Storage size of a datatype in a set key, for named concatenated sets without field lengths. 0 = unknown. */
static unsigned type_size(uint32_t type) {
        switch (type) {
        case 5: /* string */
        case 41: /* ifname */
                return 16;
        case 7: /* ipv4_addr */
        case 19: /* mark */
        case 20: /* iface_index */
        case 22: /* realm */
        case 23: /* classid */
        case 24: /* uid */
        case 25: /* gid */
                return 4;
        case 8: /* ipv6_addr */
                return 16;
        case 9: /* ether_addr */
                return 6;
        case 10: /* ether_type */
        case 13: /* inet_service */
                return 2;
        case 12: /* inet_proto */
                return 1;
        default:
                return 0;
        }
}

static int ref_push(struct iface_ref **array, size_t *n, size_t *allocated, const struct iface_ref *tmpl) {
        if (GROW(*array, *allocated, *n + 1) < 0)
                return -ENOMEM;

        struct iface_ref *r = &(*array)[*n];
        *r = *tmpl;
        r->table = strdup(tmpl->table);
        r->chain = tmpl->chain ? strdup(tmpl->chain) : NULL;
        r->set = tmpl->set ? strdup(tmpl->set) : NULL;
        if (!r->table || (tmpl->chain && !r->chain) || (tmpl->set && !r->set)) {
                free(r->table);
                free(r->chain);
                free(r->set);
                return -ENOMEM;
        }
        (*n)++;
        return 0;
}

static int ref_add(struct ruleset *rs, const struct iface_ref *tmpl) {
        if (tmpl->key == REF_KEY_IIFNAME || tmpl->key == REF_KEY_OIFNAME)
                return ref_push(&rs->name_refs, &rs->n_name_refs, &rs->allocated_name_refs, tmpl);
        if (tmpl->ifindex == 0) /* "no interface", e.g. fib daddr oif != 0 */
                return 0;
        return ref_push(&rs->refs, &rs->n_refs, &rs->allocated_refs, tmpl);
}

static int path_add(struct nft_path **array, size_t *n, size_t *allocated, uint8_t family, const char *table,
                    const char *chain) {
        if (GROW(*array, *allocated, *n + 1) < 0)
                return -ENOMEM;
        struct nft_path *p = &(*array)[*n];
        *p = (struct nft_path){.family = family, .table = strdup(table), .chain = chain ? strdup(chain) : NULL};
        if (!p->table || (chain && !p->chain)) {
                free(p->table);
                free(p->chain);
                return -ENOMEM;
        }
        (*n)++;
        return 0;
}

/* ---- rules ---- */

struct rule_walk {
        struct scan *scan;
        struct iface_ref id; /* family, table, chain, handle of the rule; site.rule: where its message will be */
        struct reg regs[NFT_REG32_COUNT];
        uint16_t expr;       /* position of the expression being walked */
        bool holds_index;    /* the rule's message is worth keeping */
        int error;
};

static void regs_clobber(struct reg *regs, int slot, uint32_t len) {
        uint32_t n = len ? (len + 3) / 4 : 4;
        for (uint32_t i = 0; i < n && slot + (int) i < NFT_REG32_COUNT; i++)
                regs[slot + i] = (struct reg){};
}

static uint32_t data_u32(const struct nftnl_expr *e, uint16_t attr) {
        uint32_t len = 0, v = 0;
        const void *d = nftnl_expr_get_data(e, attr, &len);
        if (d && len >= sizeof(v))
                memcpy(&v, d, sizeof(v));
        return v;
}

static int rule_ref_add(struct rule_walk *w, const struct iface_ref *ref) {
        size_t before = w->scan->rs->n_refs;
        int r = ref_add(w->scan->rs, ref);
        if (r >= 0 && w->scan->rs->n_refs > before)
                w->holds_index = true;
        return r;
}

static int walk_cmp(struct rule_walk *w, const struct nftnl_expr *e) {
        int slot = reg_slot(nftnl_expr_get_u32(e, NFTNL_EXPR_CMP_SREG));
        uint32_t op = nftnl_expr_get_u32(e, NFTNL_EXPR_CMP_OP);
        if (slot < 0 || (op != NFT_CMP_EQ && op != NFT_CMP_NEQ))
                return 0;

        const struct reg *reg = &w->regs[slot];
        struct iface_ref ref = w->id;
        ref.negated = op == NFT_CMP_NEQ;

        if (reg->source == REG_IFINDEX) {
                uint32_t len = 0;
                if (!nftnl_expr_get_data(e, NFTNL_EXPR_CMP_DATA, &len) || len != sizeof(uint32_t))
                        return 0;
                ref.key = reg->key;
                ref.ifindex = data_u32(e, NFTNL_EXPR_CMP_DATA);
                ref.site.expr = w->expr;
                return rule_ref_add(w, &ref);
        }
        if (reg->source == REG_IFNAME) {
                uint32_t len = 0;
                const char *d = nftnl_expr_get_data(e, NFTNL_EXPR_CMP_DATA, &len);
                if (!d)
                        return 0;
                ref.key = reg->key;
                memcpy(ref.name, d, len < IFNAMSIZ - 1 ? len : IFNAMSIZ - 1);
                return ref_add(w->scan->rs, &ref);
        }
        return 0;
}

static int walk_lookup(struct rule_walk *w, const struct nftnl_expr *e) {
        struct scan *scan = w->scan;
        int slot = reg_slot(nftnl_expr_get_u32(e, NFTNL_EXPR_LOOKUP_SREG));
        const char *set = nftnl_expr_get_str(e, NFTNL_EXPR_LOOKUP_SET);
        bool has_dreg = nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_DREG);
        int dslot = has_dreg ? reg_slot(nftnl_expr_get_u32(e, NFTNL_EXPR_LOOKUP_DREG)) : -1;

        if (slot < 0 || !set)
                return 0;
        /* Named sets are reported element by element, whoever looks them up. */
        if (strncmp(set, "__set", 5) != 0 && strncmp(set, "__map", 5) != 0) {
                if (dslot >= 0)
                        regs_clobber(w->regs, dslot, 0);
                return 0;
        }

        struct pending_lookup pl = {
                .family = w->id.family,
                .handle = w->id.handle,
                .rule = w->id.site.rule,
                .expr = w->expr,
                .negated = nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_FLAGS) &&
                           (nftnl_expr_get_u32(e, NFTNL_EXPR_LOOKUP_FLAGS) & NFT_LOOKUP_F_INV),
        };
        /* A concatenation occupies consecutive registers from sreg on; the key's layout follows them. */
        for (int s = slot; s < NFT_REG32_COUNT; s++)
                if (w->regs[s].source == REG_IFINDEX) {
                        pl.fields[pl.n_fields].offset = (uint8_t) ((s - slot) * 4);
                        pl.fields[pl.n_fields].key = w->regs[s].key;
                        pl.n_fields++;
                }

        if (dslot >= 0)
                regs_clobber(w->regs, dslot, 0);
        if (pl.n_fields == 0 && dslot < 0)
                return 0;

        if (GROW(scan->lookups, scan->allocated_lookups, scan->n_lookups + 1) < 0)
                return -ENOMEM;
        pl.table = strdup(w->id.table);
        pl.chain = strdup(w->id.chain);
        pl.set = strdup(set);
        if (!pl.table || !pl.chain || !pl.set) {
                free(pl.table);
                free(pl.chain);
                free(pl.set);
                return -ENOMEM;
        }
        if (dslot >= 0)
                w->regs[dslot] = (struct reg){.source = REG_MAP_DATA, .lookup = scan->n_lookups};
        scan->lookups[scan->n_lookups++] = pl;
        /* Kept whether or not the set turns out to hold an index: the rule must be at hand to rebind it. */
        w->holds_index = true;
        return 0;
}

/* fwd to / dup to: the device register holds an immediate index or a map's data. */
static int walk_device_statement(struct rule_walk *w, uint32_t sreg_dev, enum ref_key key) {
        int slot = reg_slot(sreg_dev);
        if (slot < 0)
                return 0;

        const struct reg *reg = &w->regs[slot];
        if (reg->source == REG_IMMEDIATE) {
                struct iface_ref ref = w->id;
                ref.key = key;
                ref.ifindex = reg->value;
                ref.site.expr = reg->expr;
                return rule_ref_add(w, &ref);
        }
        if (reg->source == REG_MAP_DATA) {
                w->scan->lookups[reg->lookup].has_data_key = true;
                w->scan->lookups[reg->lookup].data_key = key;
        }
        return 0;
}

static int walk_expr(struct rule_walk *w, struct nftnl_expr *e) {
        const char *name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);

        if (!name)
                return 0;

        if (streq(name, "meta")) {
                if (!nftnl_expr_is_set(e, NFTNL_EXPR_META_DREG))
                        return 0; /* meta set statement */
                int slot = reg_slot(nftnl_expr_get_u32(e, NFTNL_EXPR_META_DREG));
                if (slot < 0)
                        return 0;
                switch (nftnl_expr_get_u32(e, NFTNL_EXPR_META_KEY)) {
                case NFT_META_IIF:
                        w->regs[slot] = (struct reg){.source = REG_IFINDEX, .key = REF_KEY_IIF};
                        break;
                case NFT_META_OIF:
                        w->regs[slot] = (struct reg){.source = REG_IFINDEX, .key = REF_KEY_OIF};
                        break;
                case NFT_META_IIFNAME:
                        regs_clobber(w->regs, slot, IFNAMSIZ);
                        w->regs[slot] = (struct reg){.source = REG_IFNAME, .key = REF_KEY_IIFNAME};
                        break;
                case NFT_META_OIFNAME:
                        regs_clobber(w->regs, slot, IFNAMSIZ);
                        w->regs[slot] = (struct reg){.source = REG_IFNAME, .key = REF_KEY_OIFNAME};
                        break;
                default:
                        regs_clobber(w->regs, slot, 4);
                }
                return 0;
        }
        if (streq(name, "fib")) {
                int slot = reg_slot(nftnl_expr_get_u32(e, NFTNL_EXPR_FIB_DREG));
                uint32_t flags = nftnl_expr_get_u32(e, NFTNL_EXPR_FIB_FLAGS);
                if (slot < 0)
                        return 0;
                /* "fib … oif exists" loads a boolean, not an index. */
                if (nftnl_expr_get_u32(e, NFTNL_EXPR_FIB_RESULT) == NFT_FIB_RESULT_OIF && !(flags & NFTA_FIB_F_PRESENT))
                        w->regs[slot] = (struct reg){.source = REG_IFINDEX, .key = REF_KEY_FIB};
                else
                        regs_clobber(w->regs, slot, 0);
                return 0;
        }
        if (streq(name, "immediate")) {
                if (!nftnl_expr_is_set(e, NFTNL_EXPR_IMM_DATA))
                        return 0; /* a verdict */
                int slot = reg_slot(nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_DREG));
                uint32_t len = 0;
                (void) nftnl_expr_get_data(e, NFTNL_EXPR_IMM_DATA, &len);
                if (slot < 0)
                        return 0;
                regs_clobber(w->regs, slot, len);
                if (len == sizeof(uint32_t))
                        w->regs[slot] = (struct reg){.source = REG_IMMEDIATE, .value = data_u32(e, NFTNL_EXPR_IMM_DATA),
                                                     .expr = w->expr};
                return 0;
        }
        if (streq(name, "cmp"))
                return walk_cmp(w, e);
        if (streq(name, "lookup"))
                return walk_lookup(w, e);
        if (streq(name, "fwd"))
                return walk_device_statement(w, nftnl_expr_get_u32(e, NFTNL_EXPR_FWD_SREG_DEV), REF_KEY_FWD);
        if (streq(name, "dup"))
                return nftnl_expr_is_set(e, NFTNL_EXPR_DUP_SREG_DEV)
                               ? walk_device_statement(w, nftnl_expr_get_u32(e, NFTNL_EXPR_DUP_SREG_DEV), REF_KEY_DUP)
                               : 0;
        if (streq(name, "payload")) {
                if (nftnl_expr_is_set(e, NFTNL_EXPR_PAYLOAD_DREG)) {
                        int slot = reg_slot(nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_DREG));
                        if (slot >= 0)
                                regs_clobber(w->regs, slot, nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_LEN));
                }
                return 0;
        }
        if (streq(name, "byteorder")) {
                /* Interval lookups get the index in network order: "iif . ip saddr { ts0 . 10.0.0.0/8 }". The
                 * register still holds the interface, in the byte order the set keeps. */
                int sslot = reg_slot(nftnl_expr_get_u32(e, NFTNL_EXPR_BYTEORDER_SREG));
                int dslot = reg_slot(nftnl_expr_get_u32(e, NFTNL_EXPR_BYTEORDER_DREG));
                struct reg src = sslot >= 0 ? w->regs[sslot] : (struct reg){};
                if (dslot < 0)
                        return 0;
                regs_clobber(w->regs, dslot, nftnl_expr_get_u32(e, NFTNL_EXPR_BYTEORDER_LEN));
                if (src.source == REG_IFINDEX && nftnl_expr_get_u32(e, NFTNL_EXPR_BYTEORDER_LEN) == 4)
                        w->regs[dslot] = src;
                return 0;
        }

        /* Any other expression that loads a register overwrites what it held. */
        static const struct {
                const char *name;
                uint16_t dreg;
        } loaders[] = {
                {"ct", NFTNL_EXPR_CT_DREG},         {"exthdr", NFTNL_EXPR_EXTHDR_DREG},
                {"rt", NFTNL_EXPR_RT_DREG},         {"socket", NFTNL_EXPR_SOCKET_DREG},
                {"numgen", NFTNL_EXPR_NG_DREG},     {"hash", NFTNL_EXPR_HASH_DREG},
                {"bitwise", NFTNL_EXPR_BITWISE_DREG}, {"osf", NFTNL_EXPR_OSF_DREG},
                {"xfrm", NFTNL_EXPR_XFRM_DREG},
        };
        for (size_t i = 0; i < ELEMENTSOF(loaders); i++)
                if (streq(name, loaders[i].name) && nftnl_expr_is_set(e, loaders[i].dreg)) {
                        int slot = reg_slot(nftnl_expr_get_u32(e, loaders[i].dreg));
                        if (slot >= 0)
                                regs_clobber(w->regs, slot, 0);
                        break;
                }
        return 0;
}

static int walk_expr_cb(struct nftnl_expr *e, void *userdata) {
        struct rule_walk *w = userdata;
        int r = walk_expr(w, e);
        if (r < 0) {
                w->error = r;
                return -1;
        }
        w->expr++;
        return 0;
}

static struct nft_path *chain_find(struct scan *scan, uint8_t family, const char *table, const char *chain) {
        struct ruleset *rs = scan->rs;
        struct nft_path *c = scan->chain;
        if (c && c->family == family && streq(c->table, table) && streq(c->chain, chain))
                return c;
        for (size_t i = 0; i < rs->n_chains; i++) {
                c = &rs->chains[i];
                if (c->family == family && streq(c->table, table) && streq(c->chain, chain))
                        return scan->chain = c;
        }
        return NULL;
}

/* A rule libnftnl cannot parse (an expression newer than it, say) is skipped and kept by its place, from the
 * raw attributes: one such rule must not hide every other rule from the check. */
static int scan_unreadable_rule(struct scan *scan, const struct nlmsghdr *nlh) {
        struct ruleset *rs = scan->rs;
        const char *table = NULL, *chain = NULL;
        uint64_t handle = 0;
        const struct nlattr *a;

        if (nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(struct nfgenmsg))
                return -EBADMSG;
        uint8_t family = ((const struct nfgenmsg *) mnl_nlmsg_get_payload(nlh))->nfgen_family;
        mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
                switch (mnl_attr_get_type(a)) {
                case NFTA_RULE_TABLE:
                        table = mnl_attr_validate(a, MNL_TYPE_NUL_STRING) >= 0 ? mnl_attr_get_str(a) : NULL;
                        break;
                case NFTA_RULE_CHAIN:
                        chain = mnl_attr_validate(a, MNL_TYPE_NUL_STRING) >= 0 ? mnl_attr_get_str(a) : NULL;
                        break;
                case NFTA_RULE_HANDLE:
                        if (mnl_attr_validate(a, MNL_TYPE_U64) >= 0)
                                handle = be64toh(mnl_attr_get_u64(a));
                        break;
                }
        }
        if (!table || !chain)
                return -EBADMSG;
        rs->n_rules++;
        struct nft_path *c = chain_find(scan, family, table, chain);
        if (c) {
                if (GROW(c->handles, c->allocated_handles, c->n_handles + 1) < 0)
                        return -ENOMEM;
                c->handles[c->n_handles++] = handle;
        }
        int r = path_add(&rs->unreadable, &rs->n_unreadable, &rs->allocated_unreadable, family, table, chain);
        if (r < 0)
                return r;
        struct nft_path *u = &rs->unreadable[rs->n_unreadable - 1];
        if (GROW(u->handles, u->allocated_handles, 1) < 0)
                return -ENOMEM;
        u->handles[u->n_handles++] = handle;
        log_debug("ruleset: table %s %s, chain %s, rule handle %llu could not be read; skipped",
                  nfproto_to_string(family), table, chain, (unsigned long long) handle);
        return 0;
}

/* A nested attribute of type type directly inside nest, or NULL. */
static const struct nlattr *nested_get(const struct nlattr *nest, uint16_t type) {
        const struct nlattr *a, *found = NULL;
        mnl_attr_for_each_nested(a, nest)
                if (mnl_attr_get_type(a) == type)
                        found = a; /* the last one wins, as in libnftnl */
        return found;
}

/* Each attribute type at most once among first..end. libnftnl keeps the last of a repeated attribute, the raw
 * walkers (ref sites, rebind patches) take the first: with a repeat they would disagree on what a rule is. */
static bool attrs_unique(const struct nlattr *first, const void *end) {
        uint64_t seen[1024 / 64] = {};
        for (const struct nlattr *a = first; mnl_attr_ok(a, (int) ((const char *) end - (const char *) a));
             a = mnl_attr_next(a)) {
                uint16_t t = mnl_attr_get_type(a) & 1023;
                if (seen[t / 64] & (UINT64_C(1) << (t % 64)))
                        return false;
                seen[t / 64] |= UINT64_C(1) << (t % 64);
        }
        return true;
}

static bool nest_unique(const struct nlattr *nest) {
        return attrs_unique(mnl_attr_get_payload(nest), (const char *) mnl_attr_get_payload(nest) +
                                                                mnl_attr_get_payload_len(nest));
}

/* One expression as the kernel always sends it, which libnftnl 1.2.4 and the raw walkers rely on (found by
 * fuzz-nftables): a name, which libnftnl looks up unchecked; the chain of a jump or goto verdict, which it copies
 * unchecked; no attribute twice in the expression, in its data, or in the cmp and immediate data a rebind
 * patches. */
static bool expression_readable(const struct nlattr *expr) {
        const struct nlattr *name = nested_get(expr, NFTA_EXPR_NAME), *data, *imm, *verdict, *code, *d;
        if (!name || mnl_attr_validate(name, MNL_TYPE_NUL_STRING) < 0 || !nest_unique(expr))
                return false;
        bool cmp = streq(mnl_attr_get_str(name), "cmp"), immediate = streq(mnl_attr_get_str(name), "immediate");
        if ((data = nested_get(expr, NFTA_EXPR_DATA))) {
                if (!nest_unique(data))
                        return false;
                /* the nests a rebind patches (other nests may be lists, as dynset's expressions) */
                mnl_attr_for_each_nested(d, data)
                        if (((cmp && mnl_attr_get_type(d) == NFTA_CMP_DATA) ||
                             (immediate && mnl_attr_get_type(d) == NFTA_IMMEDIATE_DATA)) &&
                            !nest_unique(d))
                                return false;
        }
        if (!immediate || !data || !(imm = nested_get(data, NFTA_IMMEDIATE_DATA)) ||
            !(verdict = nested_get(imm, NFTA_DATA_VERDICT)) || !(code = nested_get(verdict, NFTA_VERDICT_CODE)) ||
            mnl_attr_validate(code, MNL_TYPE_U32) < 0)
                return true;
        int32_t v = (int32_t) ntohl(mnl_attr_get_u32(code));
        return (v != NFT_JUMP && v != NFT_GOTO) || nested_get(verdict, NFTA_VERDICT_CHAIN);
}

static bool nul_string(const struct nlattr *a) {
        return mnl_attr_validate(a, MNL_TYPE_NUL_STRING) >= 0;
}

/* The names libnftnl 1.2.4 copies with strdup() after checking only that they are not empty: the kernel ends
 * each with a NUL, a recording may not, and the copy then reads past the message (found by fuzz-nftables, a
 * chain's table). Strings nested in expressions are bounded by the zero bytes every buffer of messages ends
 * with (netlink_dump, ruleset_parse_messages). */
/* A chain's or a flowtable's list of device names (may be NULL: none), each ended by its NUL. */
static bool device_names_terminated(const struct nlattr *devs) {
        const struct nlattr *name;
        if (devs)
                mnl_attr_for_each_nested(name, devs)
                        if (!nul_string(name))
                                return false;
        return true;
}

static bool names_terminated(uint16_t type, const struct nlattr *a) {
        const struct nlattr *dev;
        switch (type) {
        case NFT_MSG_NEWTABLE:
                return mnl_attr_get_type(a) != NFTA_TABLE_NAME || nul_string(a);
        case NFT_MSG_NEWCHAIN:
                switch (mnl_attr_get_type(a)) {
                case NFTA_CHAIN_TABLE:
                case NFTA_CHAIN_NAME:
                case NFTA_CHAIN_TYPE: return nul_string(a);
                case NFTA_CHAIN_HOOK:
                        if ((dev = nested_get(a, NFTA_HOOK_DEV)) && !nul_string(dev))
                                return false;
                        return device_names_terminated(nested_get(a, NFTA_HOOK_DEVS));
                default: return true;
                }
        case NFT_MSG_NEWRULE:
                return (mnl_attr_get_type(a) != NFTA_RULE_TABLE && mnl_attr_get_type(a) != NFTA_RULE_CHAIN) ||
                       nul_string(a);
        case NFT_MSG_NEWSET:
                return (mnl_attr_get_type(a) != NFTA_SET_TABLE && mnl_attr_get_type(a) != NFTA_SET_NAME) ||
                       nul_string(a);
        case NFT_MSG_NEWFLOWTABLE:
                switch (mnl_attr_get_type(a)) {
                case NFTA_FLOWTABLE_TABLE:
                case NFTA_FLOWTABLE_NAME: return nul_string(a);
                case NFTA_FLOWTABLE_HOOK:
                        return device_names_terminated(nested_get(a, NFTA_FLOWTABLE_HOOK_DEVS));
                default: return true;
                }
        default: return true;
        }
}

/* A table, chain, rule or set message as the kernel always sends it: each attribute once, names ended by their
 * NUL, each expression readable. Any other is not given to libnftnl (which would crash on some) nor to the raw
 * walkers. */
bool ruleset_msg_readable(const struct nlmsghdr *nlh) {
        uint16_t type = NFNL_MSG_TYPE(nlh->nlmsg_type);
        const struct nlattr *a, *elem;

        if (nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(struct nfgenmsg) ||
            !attrs_unique(mnl_nlmsg_get_payload_offset(nlh, sizeof(struct nfgenmsg)), mnl_nlmsg_get_payload_tail(nlh)))
                return false;
        mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
                uint16_t at = mnl_attr_get_type(a);
                if (!names_terminated(type, a))
                        return false;
                if ((type == NFT_MSG_NEWRULE && at == NFTA_RULE_EXPRESSIONS) ||
                    (type == NFT_MSG_NEWSET && at == NFTA_SET_EXPRESSIONS)) {
                        mnl_attr_for_each_nested(elem, a)
                                if (!expression_readable(elem))
                                        return false;
                } else if (type == NFT_MSG_NEWSET && at == NFTA_SET_EXPR && !expression_readable(a))
                        return false;
        }
        return true;
}

/* Every rule of a device-bound chain, as received, whatever it holds: what re-creates the chain if a kernel
 * deletes it with its device. */
static int hook_rule_keep(struct scan *scan, const struct nlmsghdr *nlh) {
        struct ruleset *rs = scan->rs;
        const struct nlattr *table = NULL, *chain = NULL, *a;
        if (rs->n_hooks == 0 || nlh->nlmsg_len < mnl_nlmsg_size(sizeof(struct nfgenmsg)))
                return 0;
        mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
                if (mnl_attr_get_type(a) == NFTA_RULE_TABLE && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) >= 0)
                        table = a;
                else if (mnl_attr_get_type(a) == NFTA_RULE_CHAIN && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) >= 0)
                        chain = a;
        }
        if (!table || !chain)
                return 0;
        const struct nfgenmsg *g = mnl_nlmsg_get_payload(nlh);
        struct device_hook *h = (struct device_hook *) ruleset_hook(rs, g->nfgen_family, mnl_attr_get_str(table),
                                                                    mnl_attr_get_str(chain), false);
        if (!h)
                return 0;
        if (GROW(h->rules, h->allocated_rules, h->n_rules + 1) < 0)
                return -ENOMEM;
        struct nl_blob *b = &h->rules[h->n_rules];
        if (blob_copy(b, nlh, nlh->nlmsg_len) < 0)
                return -ENOMEM;
        h->n_rules++;
        return 0;
}

static int scan_rule(struct scan *scan, const struct nlmsghdr *nlh) {
        struct ruleset *rs = scan->rs;
        _cleanup_(nftnl_rule_freep) struct nftnl_rule *rule = nftnl_rule_alloc();
        if (!rule)
                return -ENOMEM;
        int k = hook_rule_keep(scan, nlh);
        if (k < 0)
                return k;
        if (!ruleset_msg_readable(nlh) || nftnl_rule_nlmsg_parse(nlh, rule) < 0)
                return scan_unreadable_rule(scan, nlh);

        struct rule_walk w = {
                .scan = scan,
                .id =
                        {
                                .family = (uint8_t) nftnl_rule_get_u32(rule, NFTNL_RULE_FAMILY),
                                .table = (char *) nftnl_rule_get_str(rule, NFTNL_RULE_TABLE),
                                .chain = (char *) nftnl_rule_get_str(rule, NFTNL_RULE_CHAIN),
                                .handle = nftnl_rule_get_u64(rule, NFTNL_RULE_HANDLE),
                                .site = {.rule = rs->n_rule_msgs, .set = SIZE_MAX},
                        },
        };
        if (!w.id.table || !w.id.chain)
                return -EBADMSG;

        rs->n_rules++;
        /* Every rule's place in its chain: a rebind is verified by position (a replaced rule gets a new handle). */
        struct nft_path *chain = chain_find(scan, w.id.family, w.id.table, w.id.chain);
        if (chain) {
                if (GROW(chain->handles, chain->allocated_handles, chain->n_handles + 1) < 0)
                        return -ENOMEM;
                chain->handles[chain->n_handles++] = w.id.handle;
        }

        if (nftnl_expr_foreach(rule, walk_expr_cb, &w) < 0)
                return w.error < 0 ? w.error : -EBADMSG;
        if (!w.holds_index)
                return 0;

        if (GROW(rs->rules, rs->allocated_rule_msgs, rs->n_rule_msgs + 1) < 0)
                return -ENOMEM;
        struct rule_msg *m = &rs->rules[rs->n_rule_msgs];
        *m = (struct rule_msg){.family = w.id.family, .handle = w.id.handle, .table = strdup(w.id.table),
                               .chain = strdup(w.id.chain),
                               .chain_index = chain ? (size_t) (chain - rs->chains) : SIZE_MAX};
        if (!m->table || !m->chain || blob_copy(&m->msg, nlh, nlh->nlmsg_len) < 0) {
                free(m->table);
                free(m->chain);
                return -ENOMEM;
        }
        rs->n_rule_msgs++;
        return 0;
}

/* ---- sets ---- */

static int set_cmp(const void *a, const void *b) {
        const struct ifindex_set *x = a, *y = b;
        int c;
        if (x->family != y->family)
                return (int) x->family - (int) y->family;
        c = strcmp(x->table, y->table);
        return c ? c : strcmp(x->name, y->name);
}

static void sets_sort(struct scan *scan) {
        struct ruleset *rs = scan->rs;
        if (!scan->sets_sorted && rs->n_ifindex_sets > 0)
                qsort(rs->sets, rs->n_ifindex_sets, sizeof(struct ifindex_set), set_cmp);
        scan->sets_sorted = true;
}

static struct ifindex_set *set_find(struct scan *scan, uint8_t family, const char *table, const char *name) {
        struct ruleset *rs = scan->rs;
        sets_sort(scan);
        struct ifindex_set key = {.family = family, .table = (char *) table, .name = (char *) name};
        return rs->n_ifindex_sets ? bsearch(&key, rs->sets, rs->n_ifindex_sets, sizeof(struct ifindex_set), set_cmp)
                                  : NULL;
}

/* Where the ifindex components of a named set's key are: nft's field lengths if it sent them, else the types. */
static void set_compute_offsets(struct ifindex_set *s, uint32_t key_type, const struct nftnl_set *set) {
        uint32_t types[NFT_REG32_COUNT], n = 0;
        for (uint32_t t = key_type; t && n < NFT_REG32_COUNT; t >>= NFT_TYPE_BITS)
                types[n++] = t & NFT_TYPE_MASK;
        /* types[] is last component first */

        uint8_t lens[NFT_REG32_COUNT];
        uint32_t flen = 0;
        const uint8_t *field_len = nftnl_set_is_set(set, NFTNL_SET_DESC_CONCAT)
                                           ? nftnl_set_get_data(set, NFTNL_SET_DESC_CONCAT, &flen)
                                           : NULL;

        for (uint32_t i = 0; i < n; i++) {
                uint32_t type = types[n - 1 - i];
                unsigned size = field_len && i < flen && field_len[i] ? field_len[i] : type_size(type);
                if (size == 0 && i + 1 < n) {
                        log_debug("ruleset: set %s: component %u has unknown size, skipping its elements", s->name, i);
                        return;
                }
                lens[i] = (uint8_t) size;
        }

        unsigned offset = 0;
        for (uint32_t i = 0; i < n; i++) {
                if (types[n - 1 - i] == NFT_TYPE_IFINDEX)
                        s->ifindex_offsets[s->n_ifindex_offsets++] = (uint8_t) offset;
                offset += (lens[i] + 3u) & ~3u;
        }
        s->offsets_known = true;
}

static int scan_set(struct scan *scan, const struct nlmsghdr *nlh) {
        struct ruleset *rs = scan->rs;
        _cleanup_(nftnl_set_freep) struct nftnl_set *set = nftnl_set_alloc();
        if (!set)
                return -ENOMEM;
        if (!ruleset_msg_readable(nlh) || nftnl_set_nlmsg_parse(nlh, set) < 0)
                return -EBADMSG;

        rs->n_sets++;

        uint32_t key_type = nftnl_set_get_u32(set, NFTNL_SET_KEY_TYPE);
        uint32_t flags = nftnl_set_get_u32(set, NFTNL_SET_FLAGS);
        bool data_is_ifindex = (flags & NFT_SET_MAP) && nftnl_set_get_u32(set, NFTNL_SET_DATA_TYPE) == NFT_TYPE_IFINDEX;
        bool anonymous = flags & NFT_SET_ANONYMOUS;

        /* Only sets that can hold an index matter; anonymous maps may also feed fwd/dup through their data. */
        if (!type_has_ifindex(key_type) && !data_is_ifindex)
                return 0;

        const char *table = nftnl_set_get_str(set, NFTNL_SET_TABLE), *name = nftnl_set_get_str(set, NFTNL_SET_NAME);
        uint32_t key_len = nftnl_set_get_u32(set, NFTNL_SET_KEY_LEN);
        if (!table || !name || key_len > SET_KEY_MAX)
                return -EBADMSG;

        if (GROW(rs->sets, rs->allocated_ifindex_sets, rs->n_ifindex_sets + 1) < 0)
                return -ENOMEM;
        struct ifindex_set *s = &rs->sets[rs->n_ifindex_sets];
        *s = (struct ifindex_set){
                .family = (uint8_t) nftnl_set_get_u32(set, NFTNL_SET_FAMILY),
                .table = strdup(table),
                .name = strdup(name),
                .flags = flags,
                .key_len = key_len,
                .data_is_ifindex = data_is_ifindex,
                /* nft converts host-order keys of interval sets to network order (so ranges compare as bytes) */
                .big_endian = flags & NFT_SET_INTERVAL,
        };
        if (!s->table || !s->name || blob_copy(&s->msg, nlh, nlh->nlmsg_len) < 0) {
                ifindex_set_done(s);
                return -ENOMEM;
        }
        if (!anonymous)
                set_compute_offsets(s, key_type, set);
        rs->n_ifindex_sets++;
        scan->sets_sorted = false;
        return 0;
}

/* NFTA_SET_ELEM_KEY and friends: a nest holding NFTA_DATA_VALUE. Sets *off and *len to that value's payload,
 * relative to base. */
static void elem_value(const struct nlattr *nest, const uint8_t *base, uint32_t *off, uint32_t *len) {
        const struct nlattr *a;
        mnl_attr_for_each_nested(a, nest)
                if (mnl_attr_get_type(a) == NFTA_DATA_VALUE) {
                        *off = (uint32_t) ((const uint8_t *) mnl_attr_get_payload(a) - base);
                        *len = mnl_attr_get_payload_len(a);
                }
}

/* One element (the payload of an NFTA_LIST_ELEM), kept as received. */
static int elem_add(struct ifindex_set *s, const struct nlattr *list_elem) {
        if (GROW(s->elems, s->allocated_elems, s->n_elems + 1) < 0)
                return -ENOMEM;
        struct set_elem *e = &s->elems[s->n_elems];
        *e = (struct set_elem){};
        if (blob_copy(&e->attrs, mnl_attr_get_payload(list_elem), mnl_attr_get_payload_len(list_elem)) < 0)
                return -ENOMEM;

        const uint8_t *base = e->attrs.data, *end = base + e->attrs.size;
        const struct nlattr *a;
        for (a = (const struct nlattr *) base; mnl_attr_ok(a, (int) (end - (const uint8_t *) a)); a = mnl_attr_next(a)) {
                switch (mnl_attr_get_type(a)) {
                case NFTA_SET_ELEM_KEY:
                        elem_value(a, base, &e->key_off, &e->key_len);
                        break;
                case NFTA_SET_ELEM_KEY_END:
                        elem_value(a, base, &e->key_end_off, &e->key_end_len);
                        break;
                case NFTA_SET_ELEM_DATA:
                        elem_value(a, base, &e->data_off, &e->data_len);
                        break;
                case NFTA_SET_ELEM_FLAGS:
                        if (mnl_attr_get_payload_len(a) >= 4)
                                e->flags = ntohl(mnl_attr_get_u32(a));
                        break;
                }
        }
        s->n_elems++;
        return 0;
}

/* A NEWSETELEM message: which set (family, table, name) and its list of elements. */
static int set_elems_header(const struct nlmsghdr *nlh, uint8_t *ret_family, const char **ret_table,
                            const char **ret_name, const struct nlattr **ret_elements) {
        const struct nlattr *a;
        *ret_table = *ret_name = NULL;
        *ret_elements = NULL;
        if (nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(struct nfgenmsg))
                return -EBADMSG;
        *ret_family = ((const struct nfgenmsg *) mnl_nlmsg_get_payload(nlh))->nfgen_family;
        mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
                if (mnl_attr_validate(a, MNL_TYPE_UNSPEC) < 0)
                        return -EBADMSG;
                switch (mnl_attr_get_type(a)) {
                case NFTA_SET_ELEM_LIST_TABLE:
                        if (mnl_attr_validate(a, MNL_TYPE_NUL_STRING) < 0)
                                return -EBADMSG;
                        *ret_table = mnl_attr_get_str(a);
                        break;
                case NFTA_SET_ELEM_LIST_SET:
                        if (mnl_attr_validate(a, MNL_TYPE_NUL_STRING) < 0)
                                return -EBADMSG;
                        *ret_name = mnl_attr_get_str(a);
                        break;
                case NFTA_SET_ELEM_LIST_ELEMENTS:
                        *ret_elements = a;
                        break;
                }
        }
        return *ret_table && *ret_name ? 0 : -EBADMSG;
}

static int elems_add_all(struct ifindex_set *s, const struct nlattr *elements) {
        const struct nlattr *a;
        if (!elements)
                return 0;
        mnl_attr_for_each_nested(a, elements) {
                if (mnl_attr_get_type(a) != NFTA_LIST_ELEM)
                        continue;
                int r = elem_add(s, a);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int scan_set_elems(struct scan *scan, const struct nlmsghdr *nlh) {
        const struct nlattr *elements;
        const char *table, *name;
        uint8_t family;
        int r = set_elems_header(nlh, &family, &table, &name, &elements);
        if (r < 0)
                return r;
        struct ifindex_set *s = set_find(scan, family, table, name);
        return s ? elems_add_all(s, elements) : 0;
}

/* ---- tables and chains ---- */

static int scan_table(struct scan *scan, const struct nlmsghdr *nlh) {
        _cleanup_(nftnl_table_freep) struct nftnl_table *t = nftnl_table_alloc();
        if (!t)
                return -ENOMEM;
        if (!ruleset_msg_readable(nlh) || nftnl_table_nlmsg_parse(nlh, t) < 0 || !nftnl_table_get_str(t, NFTNL_TABLE_NAME))
                return -EBADMSG;
        struct ruleset *rs = scan->rs;
        return path_add(&rs->tables, &rs->n_tables, &rs->allocated_tables,
                        (uint8_t) nftnl_table_get_u32(t, NFTNL_TABLE_FAMILY), nftnl_table_get_str(t, NFTNL_TABLE_NAME),
                        NULL);
}

void device_hook_done(struct device_hook *h) {
        free(h->table);
        free(h->name);
        free(h->type);
        for (size_t i = 0; i < h->n_devices; i++)
                free(h->devices[i]);
        free(h->devices);
        for (size_t i = 0; i < h->n_rules; i++)
                free(h->rules[i].data);
        free(h->rules);
        for (size_t i = 0; i < h->n_detached; i++)
                free(h->detached[i]);
        free(h->detached);
        for (size_t i = 0; i < h->n_set_msgs; i++)
                free(h->set_msgs[i].data);
        free(h->set_msgs);
        *h = (struct device_hook){};
}

const struct device_hook *ruleset_hook(const struct ruleset *rs, uint8_t family, const char *table, const char *name,
                                       bool flowtable) {
        for (size_t i = 0; i < rs->n_hooks; i++) {
                const struct device_hook *h = &rs->hooks[i];
                if (h->family == family && h->flowtable == flowtable && streq(h->table, table) && streq(h->name, name))
                        return h;
        }
        return NULL;
}

bool device_hook_has(const struct device_hook *h, const char *device) {
        for (size_t i = 0; i < h->n_devices; i++)
                if (streq(h->devices[i], device))
                        return true;
        return false;
}

static void hook_rules_clear(struct device_hook *h) {
        for (size_t i = 0; i < h->n_rules; i++)
                free(h->rules[i].data);
        h->n_rules = 0;
}

/* Adds a device-bound hook; devices: NULL-terminated, or NULL with one device dev (a chain's NFTA_HOOK_DEV). */
static int hook_add(struct ruleset *rs, const struct device_hook *h, const char *const *devices, const char *dev) {
        if (GROW(rs->hooks, rs->allocated_hooks, rs->n_hooks + 1) < 0)
                return -ENOMEM;
        struct device_hook *n = &rs->hooks[rs->n_hooks];
        *n = *h;
        n->table = strdup(h->table);
        n->name = strdup(h->name);
        n->type = h->type ? strdup(h->type) : NULL;
        n->devices = NULL;
        n->n_devices = 0;
        n->rules = NULL;
        n->n_rules = n->allocated_rules = 0;
        size_t count = devices ? 0 : !!dev;
        while (devices && devices[count])
                count++;
        n->devices = calloc(count + 1, sizeof(char *));
        if (!n->table || !n->name || (h->type && !n->type) || !n->devices)
                return device_hook_done(n), -ENOMEM;
        for (size_t i = 0; i < count; i++) {
                if (!(n->devices[i] = strdup(devices ? devices[i] : dev)))
                        return device_hook_done(n), -ENOMEM;
                n->n_devices++;
        }
        rs->n_hooks++;
        return 0;
}

static int scan_chain(struct scan *scan, const struct nlmsghdr *nlh) {
        _cleanup_(nftnl_chain_freep) struct nftnl_chain *c = nftnl_chain_alloc();
        if (!c)
                return -ENOMEM;
        if (!ruleset_msg_readable(nlh) || nftnl_chain_nlmsg_parse(nlh, c) < 0 || !nftnl_chain_get_str(c, NFTNL_CHAIN_TABLE) ||
            !nftnl_chain_get_str(c, NFTNL_CHAIN_NAME))
                return -EBADMSG;
        struct ruleset *rs = scan->rs;
        scan->chain = NULL; /* the array may move */
        uint8_t family = (uint8_t) nftnl_chain_get_u32(c, NFTNL_CHAIN_FAMILY);
        int r = path_add(&rs->chains, &rs->n_chains, &rs->allocated_chains, family,
                         nftnl_chain_get_str(c, NFTNL_CHAIN_TABLE), nftnl_chain_get_str(c, NFTNL_CHAIN_NAME));
        if (r < 0 || !nftnl_chain_is_set(c, NFTNL_CHAIN_HOOKNUM))
                return r;
        /* Bound to devices: every netdev base chain (even one left with none), and inet's ingress. */
        uint32_t hooknum = nftnl_chain_get_u32(c, NFTNL_CHAIN_HOOKNUM);
        if (family != NFPROTO_NETDEV && !(family == NFPROTO_INET && hooknum == NF_INET_INGRESS))
                return 0;
        struct device_hook h = {
                .family = family,
                .table = (char *) nftnl_chain_get_str(c, NFTNL_CHAIN_TABLE),
                .name = (char *) nftnl_chain_get_str(c, NFTNL_CHAIN_NAME),
                .hooknum = hooknum,
                .priority = nftnl_chain_is_set(c, NFTNL_CHAIN_PRIO) ? (int32_t) nftnl_chain_get_s32(c, NFTNL_CHAIN_PRIO) : 0,
                .policy = nftnl_chain_is_set(c, NFTNL_CHAIN_POLICY) ? nftnl_chain_get_u32(c, NFTNL_CHAIN_POLICY) : NF_ACCEPT,
                .flags = nftnl_chain_is_set(c, NFTNL_CHAIN_FLAGS) ? nftnl_chain_get_u32(c, NFTNL_CHAIN_FLAGS) : 0,
                .type = (char *) (nftnl_chain_is_set(c, NFTNL_CHAIN_TYPE) ? nftnl_chain_get_str(c, NFTNL_CHAIN_TYPE) : NULL),
                .handle = nftnl_chain_get_u64(c, NFTNL_CHAIN_HANDLE),
        };
        return hook_add(rs, &h,
                        nftnl_chain_is_set(c, NFTNL_CHAIN_DEVICES) ? nftnl_chain_get_array(c, NFTNL_CHAIN_DEVICES) : NULL,
                        nftnl_chain_is_set(c, NFTNL_CHAIN_DEV) ? nftnl_chain_get_str(c, NFTNL_CHAIN_DEV) : NULL);
}

static int scan_flowtable(struct scan *scan, const struct nlmsghdr *nlh) {
        _cleanup_(nftnl_flowtable_freep) struct nftnl_flowtable *f = nftnl_flowtable_alloc();
        if (!f)
                return -ENOMEM;
        if (!ruleset_msg_readable(nlh) || nftnl_flowtable_nlmsg_parse(nlh, f) < 0 ||
            !nftnl_flowtable_get_str(f, NFTNL_FLOWTABLE_TABLE) || !nftnl_flowtable_get_str(f, NFTNL_FLOWTABLE_NAME))
                return -EBADMSG;
        struct device_hook h = {
                .family = (uint8_t) nftnl_flowtable_get_u32(f, NFTNL_FLOWTABLE_FAMILY),
                .table = (char *) nftnl_flowtable_get_str(f, NFTNL_FLOWTABLE_TABLE),
                .name = (char *) nftnl_flowtable_get_str(f, NFTNL_FLOWTABLE_NAME),
                .flowtable = true,
                .hooknum = nftnl_flowtable_get_u32(f, NFTNL_FLOWTABLE_HOOKNUM),
                .priority = nftnl_flowtable_get_s32(f, NFTNL_FLOWTABLE_PRIO),
                .flags = nftnl_flowtable_get_u32(f, NFTNL_FLOWTABLE_FLAGS),
                .handle = nftnl_flowtable_get_u64(f, NFTNL_FLOWTABLE_HANDLE),
        };
        const char *const *devices = nftnl_flowtable_is_set(f, NFTNL_FLOWTABLE_DEVICES)
                                             ? nftnl_flowtable_get_array(f, NFTNL_FLOWTABLE_DEVICES)
                                             : NULL;
        static const char *const none[] = {NULL};
        return hook_add(scan->rs, &h, devices ? devices : none, NULL);
}

static int scan_msg(struct scan *scan, const struct nlmsghdr *nlh) {
        if ((nlh->nlmsg_type >> 8) != NFNL_SUBSYS_NFTABLES)
                return 0;
        switch (NFNL_MSG_TYPE(nlh->nlmsg_type)) {
        case NFT_MSG_NEWTABLE: return scan_table(scan, nlh);
        case NFT_MSG_NEWCHAIN: return scan_chain(scan, nlh);
        case NFT_MSG_NEWSET: return scan_set(scan, nlh);
        case NFT_MSG_NEWRULE: return scan_rule(scan, nlh);
        case NFT_MSG_NEWSETELEM: return scan_set_elems(scan, nlh);
        case NFT_MSG_NEWFLOWTABLE: return scan_flowtable(scan, nlh);
        default: return 0;
        }
}

/* An index component of an element, in the set's byte order. */
static uint32_t elem_ifindex(const struct ifindex_set *s, const uint8_t *p) {
        uint32_t v;
        memcpy(&v, p, sizeof(v));
        return s->big_endian ? ntohl(v) : v;
}

/* Turns the elements of interface-typed sets into references: anonymous ones for the rule that looks them up,
 * named ones as elements of their set. The end of a range is not an interface: only start elements count. */
static int scan_finish(struct scan *scan) {
        struct ruleset *rs = scan->rs;
        int r;

        sets_sort(scan);
        for (size_t i = 0; i < scan->n_lookups; i++) {
                const struct pending_lookup *pl = &scan->lookups[i];
                struct ifindex_set *s = set_find(scan, pl->family, pl->table, pl->set);
                if (!s)
                        continue;
                struct iface_ref ref = {.family = pl->family, .table = pl->table, .chain = pl->chain,
                                        .handle = pl->handle, .negated = pl->negated};
                ref.site = (struct ref_site){.rule = pl->rule, .expr = pl->expr, .set = (size_t) (s - rs->sets)};

                for (size_t k = 0; k < s->n_elems; k++) {
                        const struct set_elem *e = &s->elems[k];
                        const uint8_t *key = e->attrs.data + e->key_off;
                        if (e->flags & NFT_SET_ELEM_INTERVAL_END || e->key_len == 0)
                                continue;
                        ref.site.elem = k;
                        for (uint8_t f = 0; f < pl->n_fields; f++) {
                                if (pl->fields[f].offset + 4u > e->key_len)
                                        continue;
                                ref.key = pl->fields[f].key;
                                ref.ifindex = elem_ifindex(s, key + pl->fields[f].offset);
                                ref.site.offset = pl->fields[f].offset;
                                ref.site.in_data = false;
                                if ((r = ref_add(rs, &ref)) < 0)
                                        return r;
                        }
                        if (pl->has_data_key && s->data_is_ifindex && e->data_len == 4) {
                                ref.key = pl->data_key;
                                ref.ifindex = elem_ifindex(s, e->attrs.data + e->data_off);
                                ref.site.offset = 0;
                                ref.site.in_data = true;
                                if ((r = ref_add(rs, &ref)) < 0)
                                        return r;
                        }
                }
        }

        for (size_t i = 0; i < rs->n_ifindex_sets; i++) {
                const struct ifindex_set *s = &rs->sets[i];
                if (s->flags & NFT_SET_ANONYMOUS)
                        continue;
                struct iface_ref ref = {.family = s->family, .table = s->table, .set = s->name,
                                        .key = REF_KEY_ELEMENT};
                ref.site = (struct ref_site){.rule = SIZE_MAX, .set = i};
                for (size_t k = 0; k < s->n_elems; k++) {
                        const struct set_elem *e = &s->elems[k];
                        if (e->flags & NFT_SET_ELEM_INTERVAL_END || e->key_len == 0)
                                continue;
                        ref.site.elem = k;
                        for (uint8_t f = 0; s->offsets_known && f < s->n_ifindex_offsets; f++) {
                                if (s->ifindex_offsets[f] + 4u > e->key_len)
                                        continue;
                                ref.ifindex = elem_ifindex(s, e->attrs.data + e->key_off + s->ifindex_offsets[f]);
                                ref.site.offset = s->ifindex_offsets[f];
                                ref.site.in_data = false;
                                if ((r = ref_add(rs, &ref)) < 0)
                                        return r;
                        }
                        if (s->data_is_ifindex && e->data_len == 4) {
                                ref.ifindex = elem_ifindex(s, e->attrs.data + e->data_off);
                                ref.site.offset = 0;
                                ref.site.in_data = true;
                                if ((r = ref_add(rs, &ref)) < 0)
                                        return r;
                        }
                }
        }
        return 0;
}

/* ---- live dump ---- */

struct dump_ctx {
        struct scan *scan;
        uint32_t genid;
};

static int dump_msg_cb(const struct nlmsghdr *nlh, void *userdata) {
        struct dump_ctx *d = userdata;
        int r = scan_msg(d->scan, nlh);
        if (r < 0) {
                d->scan->error = r;
                return MNL_CB_ERROR;
        }
        return MNL_CB_OK;
}

static int gen_msg_cb(const struct nlmsghdr *nlh, void *userdata) {
        struct dump_ctx *d = userdata;
        _cleanup_(nftnl_gen_freep) struct nftnl_gen *gen = nftnl_gen_alloc();
        if (!gen || nftnl_gen_nlmsg_parse(nlh, gen) < 0)
                return MNL_CB_ERROR;
        d->genid = nftnl_gen_get_u32(gen, NFTNL_GEN_ID);
        return MNL_CB_OK;
}

static int dump_one(struct mnl_socket *nl, uint16_t type, uint16_t flags, uint8_t family, const struct ifindex_set *set,
                    const struct nft_path *chain, mnl_cb_t cb, struct dump_ctx *d, ruleset_tap_t tap, void *tap_data) {
        char buf[MNL_SOCKET_BUFFER_SIZE];
        struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, type, family, flags, (uint32_t) time(NULL));

        if (chain) {
                mnl_attr_put_strz(nlh, NFTA_RULE_TABLE, chain->table);
                mnl_attr_put_strz(nlh, NFTA_RULE_CHAIN, chain->chain);
        }
        if (set) {
                _cleanup_(nftnl_set_freep) struct nftnl_set *s = nftnl_set_alloc();
                if (!s)
                        return -ENOMEM;
                nftnl_set_set_str(s, NFTNL_SET_TABLE, set->table);
                nftnl_set_set_str(s, NFTNL_SET_NAME, set->name);
                nftnl_set_elems_nlmsg_build_payload(nlh, s);
        }

        d->scan->error = 0;
        int r = netlink_dump(nl, nlh, cb, d, tap, tap_data);
        if (d->scan->error < 0)
                return d->scan->error;
        return r;
}

/* One chain's or one set's dump, interrupted by a change, is done again this many times. */
#define PART_ATTEMPTS 20

static int rule_anonymous_sets(const struct nlmsghdr *nlh, int (*fn)(const char *name, void *userdata),
                               void *userdata);

struct hook_sets_walk {
        struct mnl_socket *nl;
        struct device_hook *hook;
        int error;
};

static int hook_set_msg_cb(const struct nlmsghdr *nlh, void *userdata) {
        struct hook_sets_walk *w = userdata;
        struct device_hook *h = w->hook;
        uint16_t type = NFNL_MSG_TYPE(nlh->nlmsg_type);
        const struct nlattr *elements = NULL;
        const char *table, *name;
        uint8_t family;
        if (type != NFT_MSG_NEWSET && type != NFT_MSG_NEWSETELEM)
                return MNL_CB_OK;
        if (!ruleset_msg_readable(nlh) ||
            (type == NFT_MSG_NEWSETELEM && set_elems_header(nlh, &family, &table, &name, &elements) < 0)) {
                w->error = -EBADMSG;
                return MNL_CB_ERROR;
        }
        /* the dump's last message may carry no elements: nothing to keep */
        if (type == NFT_MSG_NEWSETELEM && (!elements || mnl_attr_get_payload_len(elements) == 0))
                return MNL_CB_OK;
        if (GROW(h->set_msgs, h->allocated_set_msgs, h->n_set_msgs + 1) < 0 ||
            blob_copy(&h->set_msgs[h->n_set_msgs], nlh, nlh->nlmsg_len) < 0) {
                w->error = -ENOMEM;
                return MNL_CB_ERROR;
        }
        h->n_set_msgs++;
        return MNL_CB_OK;
}

static bool hook_has_set(const struct device_hook *h, const char *name) {
        for (size_t i = 0; i < h->n_set_msgs; i++) {
                const struct nlmsghdr *nlh = (const struct nlmsghdr *) h->set_msgs[i].data;
                const struct nlattr *a;
                if (NFNL_MSG_TYPE(nlh->nlmsg_type) != NFT_MSG_NEWSET)
                        continue;
                mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg))
                        if (mnl_attr_get_type(a) == NFTA_SET_NAME && streq(mnl_attr_get_str(a), name))
                                return true;
        }
        return false;
}

/* One anonymous set, then its elements (a dump interrupted by a change is done again). */
static int hook_set_fetch(const char *name, void *userdata) {
        struct hook_sets_walk *w = userdata;
        struct device_hook *h = w->hook;
        char buf[MNL_SOCKET_BUFFER_SIZE];
        if (hook_has_set(h, name))
                return 0;
        _cleanup_(nftnl_set_freep) struct nftnl_set *req = nftnl_set_alloc();
        if (!req)
                return -ENOMEM;
        nftnl_set_set_str(req, NFTNL_SET_TABLE, h->table);
        nftnl_set_set_str(req, NFTNL_SET_NAME, name);
        size_t mark = h->n_set_msgs;
        struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETSET, h->family, 0, (uint32_t) time(NULL));
        nftnl_set_nlmsg_build_payload(nlh, req);
        int r = netlink_dump(w->nl, nlh, hook_set_msg_cb, w, NULL, NULL);
        if (w->error < 0)
                return w->error;
        /* gone since the rules were read, or a string that only looks like a set's name: the generation check,
         * or the repair's own check that each set it needs is there, tells */
        if (r == -ENOENT || (r >= 0 && h->n_set_msgs == mark))
                return 0;
        if (r < 0)
                return r;
        for (unsigned attempt = 0;; attempt++) {
                nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETSETELEM, h->family, NLM_F_DUMP, (uint32_t) time(NULL));
                nftnl_set_elems_nlmsg_build_payload(nlh, req);
                r = netlink_dump(w->nl, nlh, hook_set_msg_cb, w, NULL, NULL);
                if (r != -EINTR || attempt + 1 >= PART_ATTEMPTS)
                        break;
                for (; h->n_set_msgs > mark + 1; h->n_set_msgs--)
                        free(h->set_msgs[h->n_set_msgs - 1].data);
                netlink_backoff(0);
        }
        if (w->error < 0)
                return w->error;
        return r == -ENOENT ? 0 : r;
}

/* The anonymous sets the rules of each device-bound chain look up, as the kernel sends them: a kernel that
 * deletes the chain with its device takes them with it, and the rules cannot be made again without them. */
static int hook_sets_fetch(struct mnl_socket *nl, struct ruleset *rs) {
        for (size_t i = 0; i < rs->n_hooks; i++) {
                struct hook_sets_walk w = {.nl = nl, .hook = &rs->hooks[i]};
                for (size_t k = 0; k < rs->hooks[i].n_rules; k++) {
                        int r = rule_anonymous_sets((const struct nlmsghdr *) rs->hooks[i].rules[k].data,
                                                    hook_set_fetch, &w);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

int ruleset_sets_parse(const struct nl_blob *msgs, size_t n, struct ifindex_set **ret, size_t *ret_n) {
        struct ifindex_set *sets = NULL;
        size_t n_sets = 0, allocated = 0;
        int r = 0;

        for (size_t i = 0; i < n && r >= 0; i++) {
                const struct nlmsghdr *nlh = (const struct nlmsghdr *) msgs[i].data;
                const struct nlattr *a, *elements;
                const char *table, *name;
                uint8_t family;
                if (NFNL_MSG_TYPE(nlh->nlmsg_type) == NFT_MSG_NEWSETELEM) {
                        r = set_elems_header(nlh, &family, &table, &name, &elements);
                        struct ifindex_set *s = NULL;
                        for (size_t k = 0; r >= 0 && k < n_sets && !s; k++)
                                if (sets[k].family == family && streq(sets[k].table, table) && streq(sets[k].name, name))
                                        s = &sets[k];
                        if (r >= 0)
                                r = s ? elems_add_all(s, elements) : -EBADMSG;
                        continue;
                }
                if (NFNL_MSG_TYPE(nlh->nlmsg_type) != NFT_MSG_NEWSET || GROW(sets, allocated, n_sets + 1) < 0) {
                        r = NFNL_MSG_TYPE(nlh->nlmsg_type) != NFT_MSG_NEWSET ? -EBADMSG : -ENOMEM;
                        break;
                }
                struct ifindex_set *s = &sets[n_sets++];
                *s = (struct ifindex_set){.family = ((const struct nfgenmsg *) mnl_nlmsg_get_payload(nlh))->nfgen_family};
                mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
                        uint16_t type = mnl_attr_get_type(a);
                        if (type == NFTA_SET_FLAGS && mnl_attr_validate(a, MNL_TYPE_U32) >= 0)
                                s->flags = ntohl(mnl_attr_get_u32(a));
                        else if (type == NFTA_SET_KEY_LEN && mnl_attr_validate(a, MNL_TYPE_U32) >= 0)
                                s->key_len = ntohl(mnl_attr_get_u32(a));
                        else if (type == NFTA_SET_TABLE && !s->table)
                                s->table = strdup(mnl_attr_get_str(a));
                        else if (type == NFTA_SET_NAME && !s->name)
                                s->name = strdup(mnl_attr_get_str(a));
                }
                s->big_endian = s->flags & NFT_SET_INTERVAL;
                if (!s->table || !s->name)
                        r = -EBADMSG;
                else if (blob_copy(&s->msg, nlh, nlh->nlmsg_len) < 0)
                        r = -ENOMEM;
        }
        if (r < 0) {
                ruleset_sets_free(sets, n_sets);
                return r;
        }
        *ret = sets;
        *ret_n = n_sets;
        return 0;
}

void ruleset_sets_free(struct ifindex_set *sets, size_t n) {
        for (size_t i = 0; sets && i < n; i++)
                ifindex_set_done(&sets[i]);
        free(sets);
}

static int ruleset_read_once(struct mnl_socket *nl, struct ruleset *rs, ruleset_tap_t tap, void *tap_data) {
        _cleanup_(scan_done) struct scan scan = {.rs = rs};
        struct dump_ctx d = {.scan = &scan};
        static const uint16_t dumps[] = {NFT_MSG_GETTABLE, NFT_MSG_GETCHAIN, NFT_MSG_GETSET, NFT_MSG_GETFLOWTABLE};
        uint32_t gen_before;
        int k;

        k = dump_one(nl, NFT_MSG_GETGEN, 0, AF_UNSPEC, NULL, NULL, gen_msg_cb, &d, NULL, NULL);
        if (k < 0)
                return k;
        gen_before = d.genid;

        for (size_t i = 0; i < ELEMENTSOF(dumps); i++) {
                k = dump_one(nl, dumps[i], NLM_F_DUMP, NFPROTO_UNSPEC, NULL, NULL, dump_msg_cb, &d, tap, tap_data);
                if (k < 0)
                        return k;
        }
        /* Rules chain by chain: the kernel resumes a dump by walking from its start, so one dump of a large
         * ruleset costs time quadratic in its size; a chain's own dump walks only that chain. A chain's dump
         * interrupted by a change is undone and done again: on a ruleset that never stays still, the parts
         * are still each whole. */
        for (size_t i = 0; i < rs->n_chains; i++) {
                struct scan_mark m = scan_mark(&scan);
                for (unsigned attempt = 0;; attempt++) {
                        k = dump_one(nl, NFT_MSG_GETRULE, NLM_F_DUMP, rs->chains[i].family, NULL, &rs->chains[i],
                                     dump_msg_cb, &d, tap, tap_data);
                        if (k != -EINTR || attempt + 1 >= PART_ATTEMPTS)
                                break;
                        scan_rollback(&scan, &m);
                        rs->chains[i].n_handles = 0;
                        struct device_hook *h = (struct device_hook *) ruleset_hook(
                                rs, rs->chains[i].family, rs->chains[i].table, rs->chains[i].chain, false);
                        if (h)
                                hook_rules_clear(h);
                        scan.chain = NULL;
                        netlink_backoff(0);
                }
                /* A chain deleted since the chain dump: the generation check below catches the change. */
                if (k < 0 && k != -ENOENT)
                        return k;
        }
        if ((k = hook_sets_fetch(nl, rs)) < 0)
                return k;
        /* Sorted before the element dumps: finding a set while iterating must not reorder the array. */
        sets_sort(&scan);
        for (size_t i = 0; i < rs->n_ifindex_sets; i++) {
                for (unsigned attempt = 0;; attempt++) {
                        k = dump_one(nl, NFT_MSG_GETSETELEM, NLM_F_DUMP, rs->sets[i].family, &rs->sets[i], NULL,
                                     dump_msg_cb, &d, tap, tap_data);
                        if (k != -EINTR || attempt + 1 >= PART_ATTEMPTS)
                                break;
                        set_elems_free(rs->sets[i].elems, rs->sets[i].n_elems);
                        rs->sets[i].elems = NULL;
                        rs->sets[i].n_elems = rs->sets[i].allocated_elems = 0;
                        netlink_backoff(0);
                }
                /* A set deleted since the set dump: the generation check below catches the change. */
                if (k < 0 && k != -ENOENT)
                        return k;
        }

        k = dump_one(nl, NFT_MSG_GETGEN, 0, AF_UNSPEC, NULL, NULL, gen_msg_cb, &d, NULL, NULL);
        if (k < 0)
                return k;
        /* Every part whole, but not all of one generation: usable to look at, not to change anything from. */
        rs->consistent = d.genid == gen_before;
        rs->genid = gen_before;
        return scan_finish(&scan);
}

#define READ_ATTEMPTS 5
int ruleset_read(struct ruleset *ret, ruleset_tap_t tap, void *tap_data) {
        _cleanup_(mnl_socket_closep) struct mnl_socket *nl = NULL;
        struct ruleset last = {}; /* the last whole reading that was not of one generation */
        bool have_last = false;
        int r;

        r = netlink_open(NETLINK_NETFILTER, &nl);
        if (r < 0)
                return r;

        /* The ruleset may change while it is read: read again (bounded, backing off). When it never stays still
         * long enough, the last reading whose every part was whole is returned, marked not consistent. */
        for (unsigned attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
                struct ruleset rs = {};
                if (attempt > 0)
                        netlink_backoff(attempt - 1);
                r = ruleset_read_once(nl, &rs, tap, tap_data);
                if (r >= 0 && rs.consistent) {
                        ruleset_done(&last);
                        *ret = rs;
                        return 0;
                }
                if (r >= 0) {
                        ruleset_done(&last);
                        last = rs;
                        have_last = true;
                        log_debug("ruleset: changed while it was read, reading again");
                        continue;
                }
                ruleset_done(&rs);
                if (r != -EINTR)
                        break;
                log_debug("ruleset: a dump was interrupted by a change, reading again");
        }
        if (have_last && (r >= 0 || r == -EINTR)) {
                log_debug("ruleset: it kept changing; using a reading that is not of one generation");
                *ret = last;
                return 0;
        }
        ruleset_done(&last);
        return r;
}

/* ---- anonymous sets a rewritten rule needs ---- */

static const struct ifindex_set *set_lookup(const struct ruleset *rs, uint8_t family, const char *table,
                                            const char *name) {
        for (size_t i = 0; i < rs->n_ifindex_sets; i++)
                if (rs->sets[i].family == family && streq(rs->sets[i].table, table) && streq(rs->sets[i].name, name))
                        return &rs->sets[i];
        return NULL;
}

struct companion_ctx {
        struct ruleset *rs;
        struct ifindex_set *set;
        uint32_t genid;
        int error;
};

static int companion_set_cb(const struct nlmsghdr *nlh, void *userdata) {
        struct companion_ctx *c = userdata;
        struct ifindex_set *s = c->set;
        const struct nlattr *a;
        if (NFNL_MSG_TYPE(nlh->nlmsg_type) != NFT_MSG_NEWSET)
                return MNL_CB_OK;
        mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
                if (mnl_attr_get_type(a) == NFTA_SET_FLAGS && mnl_attr_validate(a, MNL_TYPE_U32) >= 0)
                        s->flags = ntohl(mnl_attr_get_u32(a));
                else if (mnl_attr_get_type(a) == NFTA_SET_KEY_LEN && mnl_attr_validate(a, MNL_TYPE_U32) >= 0)
                        s->key_len = ntohl(mnl_attr_get_u32(a));
        }
        s->big_endian = s->flags & NFT_SET_INTERVAL;
        if (blob_copy(&s->msg, nlh, nlh->nlmsg_len) < 0) {
                c->error = -ENOMEM;
                return MNL_CB_ERROR;
        }
        return MNL_CB_OK;
}

static int companion_elems_cb(const struct nlmsghdr *nlh, void *userdata) {
        struct companion_ctx *c = userdata;
        const struct nlattr *elements;
        const char *table, *name;
        uint8_t family;
        if (NFNL_MSG_TYPE(nlh->nlmsg_type) != NFT_MSG_NEWSETELEM)
                return MNL_CB_OK;
        if ((c->error = set_elems_header(nlh, &family, &table, &name, &elements)) < 0 ||
            (c->error = elems_add_all(c->set, elements)) < 0)
                return MNL_CB_ERROR;
        return MNL_CB_OK;
}

static int companion_gen_cb(const struct nlmsghdr *nlh, void *userdata) {
        struct companion_ctx *c = userdata;
        _cleanup_(nftnl_gen_freep) struct nftnl_gen *gen = nftnl_gen_alloc();
        if (!gen || nftnl_gen_nlmsg_parse(nlh, gen) < 0)
                return MNL_CB_ERROR;
        c->genid = nftnl_gen_get_u32(gen, NFTNL_GEN_ID);
        return MNL_CB_OK;
}

static int companion_fetch(struct mnl_socket *nl, struct ruleset *rs, uint8_t family, const char *table,
                           const char *name) {
        char buf[MNL_SOCKET_BUFFER_SIZE];
        _cleanup_(nftnl_set_freep) struct nftnl_set *req = nftnl_set_alloc();
        if (!req || GROW(rs->sets, rs->allocated_ifindex_sets, rs->n_ifindex_sets + 1) < 0)
                return -ENOMEM;
        struct ifindex_set *s = &rs->sets[rs->n_ifindex_sets];
        *s = (struct ifindex_set){.family = family, .table = strdup(table), .name = strdup(name)};
        struct companion_ctx c = {.rs = rs, .set = s};
        if (!s->table || !s->name) {
                ifindex_set_done(s);
                return -ENOMEM;
        }
        nftnl_set_set_str(req, NFTNL_SET_TABLE, table);
        nftnl_set_set_str(req, NFTNL_SET_NAME, name);

        struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETSET, family, 0, (uint32_t) time(NULL));
        nftnl_set_nlmsg_build_payload(nlh, req);
        int r = netlink_dump(nl, nlh, companion_set_cb, &c, NULL, NULL);
        if (r >= 0 && c.error >= 0 && s->msg.data) {
                nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETSETELEM, family, NLM_F_DUMP, (uint32_t) time(NULL));
                nftnl_set_elems_nlmsg_build_payload(nlh, req);
                r = netlink_dump(nl, nlh, companion_elems_cb, &c, NULL, NULL);
        }
        if (r >= 0 && c.error < 0)
                r = c.error;
        if (r >= 0 && !s->msg.data)
                r = -ENOENT;
        if (r < 0) {
                ifindex_set_done(s);
                return r;
        }
        rs->n_ifindex_sets++;
        return 0;
}

/* The sets a rule names by "__set…"/"__map…" (nft's anonymous sets): lookups, object maps. */
static int rule_anonymous_sets(const struct nlmsghdr *nlh, int (*fn)(const char *name, void *userdata),
                               void *userdata) {
        const struct nlattr *a, *e, *x;
        mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
                if (mnl_attr_get_type(a) != NFTA_RULE_EXPRESSIONS)
                        continue;
                mnl_attr_for_each_nested(e, a) mnl_attr_for_each_nested(x, e) {
                        if (mnl_attr_get_type(x) != NFTA_EXPR_DATA)
                                continue;
                        const struct nlattr *y;
                        mnl_attr_for_each_nested(y, x) {
                                /* NFTA_LOOKUP_SET and NFTA_OBJREF_SET_NAME: the only set names a rule carries
                                 * that nft makes anonymous */
                                if (mnl_attr_validate(y, MNL_TYPE_NUL_STRING) < 0)
                                        continue;
                                const char *name = mnl_attr_get_str(y);
                                if (strncmp(name, "__set", 5) != 0 && strncmp(name, "__map", 5) != 0)
                                        continue;
                                int r = fn(name, userdata);
                                if (r < 0)
                                        return r;
                        }
                }
        }
        return 0;
}

struct fetch_walk {
        struct mnl_socket *nl;
        struct ruleset *rs;
        const struct rule_msg *rule;
};

static int missing_one(const char *name, void *userdata) {
        const struct fetch_walk *w = userdata;
        return set_lookup(w->rs, w->rule->family, w->rule->table, name) ? 0 : -ENOENT;
}

static int fetch_one(const char *name, void *userdata) {
        struct fetch_walk *w = userdata;
        if (set_lookup(w->rs, w->rule->family, w->rule->table, name))
                return 0;
        int r = companion_fetch(w->nl, w->rs, w->rule->family, w->rule->table, name);
        /* a string that only looks like a set name, or gone since: the generation check below tells */
        return r == -ENOENT ? 0 : r;
}

int ruleset_fetch_anonymous(struct ruleset *rs, const bool *chains) {
        _cleanup_(mnl_socket_closep) struct mnl_socket *nl = NULL;
        char buf[MNL_SOCKET_BUFFER_SIZE];
        int r = netlink_open(NETLINK_NETFILTER, &nl);
        if (r < 0)
                return r;
        for (size_t i = 0; i < rs->n_rule_msgs; i++) {
                const struct rule_msg *m = &rs->rules[i];
                if (m->chain_index == SIZE_MAX || !chains[m->chain_index])
                        continue;
                struct fetch_walk w = {.nl = nl, .rs = rs, .rule = m};
                if ((r = rule_anonymous_sets((const struct nlmsghdr *) m->msg.data, fetch_one, &w)) < 0)
                        return r;
        }
        /* read at the generation of the rest, or not at all */
        struct companion_ctx c = {};
        struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETGEN, AF_UNSPEC, 0, (uint32_t) time(NULL));
        if ((r = netlink_dump(nl, nlh, companion_gen_cb, &c, NULL, NULL)) < 0)
                return r;
        return c.genid == rs->genid ? 0 : -EAGAIN;
}

bool ruleset_has_anonymous_sets(const struct ruleset *rs, size_t rule) {
        struct fetch_walk w = {.rs = (struct ruleset *) rs, .rule = &rs->rules[rule]};
        return rule_anonymous_sets((const struct nlmsghdr *) rs->rules[rule].msg.data, missing_one, &w) == 0;
}

int ruleset_parse_messages(const void *recording, size_t size, struct ruleset *ret) {
        struct ruleset rs = {};
        _cleanup_(scan_done) struct scan scan = {.rs = &rs};
        const struct nlmsghdr *nlh;
        size_t off;
        int r = 0;

        _cleanup_free_ uint8_t *buf = malloc(size + NETLINK_ZERO_TAIL);
        if (!buf)
                return -ENOMEM;
        memcpy_safe(buf, recording, size);
        memset(buf + size, 0, NETLINK_ZERO_TAIL);

        NLMSG_FOREACH_IN(nlh, buf, size, off) {
                r = scan_msg(&scan, nlh);
                if (r < 0)
                        break;
        }
        /* Bytes left over that do not form a whole message: a truncated recording. */
        if (r >= 0 && off != size)
                r = -EBADMSG;
        if (r >= 0)
                r = scan_finish(&scan);
        if (r < 0) {
                ruleset_done(&rs);
                return r;
        }
        rs.consistent = true; /* a recording of one dump */
        *ret = rs;
        return 0;
}

static void refs_free(struct iface_ref *refs, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(refs[i].table);
                free(refs[i].chain);
                free(refs[i].set);
        }
        free(refs);
}

static void paths_free(struct nft_path *p, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(p[i].table);
                free(p[i].chain);
                free(p[i].handles);
        }
        free(p);
}

void ruleset_done(struct ruleset *rs) {
        refs_free(rs->refs, rs->n_refs);
        refs_free(rs->name_refs, rs->n_name_refs);
        paths_free(rs->tables, rs->n_tables);
        paths_free(rs->chains, rs->n_chains);
        paths_free(rs->unreadable, rs->n_unreadable);
        for (size_t i = 0; i < rs->n_rule_msgs; i++) {
                free(rs->rules[i].table);
                free(rs->rules[i].chain);
                free(rs->rules[i].msg.data);
        }
        free(rs->rules);
        for (size_t i = 0; i < rs->n_ifindex_sets; i++)
                ifindex_set_done(&rs->sets[i]);
        free(rs->sets);
        for (size_t i = 0; i < rs->n_hooks; i++)
                device_hook_done(&rs->hooks[i]);
        free(rs->hooks);
        *rs = (struct ruleset){};
}

const struct nft_path *ruleset_chain(const struct ruleset *rs, uint8_t family, const char *table, const char *chain) {
        for (size_t i = 0; i < rs->n_chains; i++) {
                const struct nft_path *c = &rs->chains[i];
                if (c->family == family && streq(c->table, table) && streq(c->chain, chain))
                        return c;
        }
        return NULL;
}

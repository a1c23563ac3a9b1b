/* SPDX-License-Identifier: GPL-2.0-or-later */
/* rebind.c: the plan (what each stale reference becomes), the transaction (copies of the kernel's own messages
 * with the index bytes patched), and the proof (the same bytes read back).
 *
 * Why copies of raw messages, not re-encoded rules: a rule is sent back with every attribute the kernel gave,
 * including expressions this program knows nothing of, so that the index is the only thing that can differ.
 * Counters go back with the values they had at the dump. */
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <stdarg.h>
#include <string.h>

#include "log.h"
#include "netlink.h"
#include "rebind.h"

/* The index a re-created anonymous set asks the kernel to name ("__set%d") and to find it by in the batch. */
#define ANON_SET_NAME "__set%d"
#define ANON_MAP_NAME "__map%d"
#define ELEMS_PER_MSG_BYTES (32 * 1024)

struct patch {
        struct ref_site site;
        uint32_t from, to; /* host order */
};

struct rule_change {
        size_t rule; /* index into ruleset.rules */
        bool prune;
        struct patch *patches;
        size_t n_patches;
};

struct elem_change {
        size_t set, elem;
        size_t end_elem; /* an interval set's end element for this start, or SIZE_MAX */
        bool prune;
        struct patch *patches;
        size_t n_patches;
};

static const char *const fix_kind_table[] = {
        [FIX_REBIND] = "rebind",
        [FIX_PRUNE] = "prune",
        [FIX_KEEP] = "keep",
};

const char *fix_kind_to_string(enum fix_kind k) {
        return k < ELEMENTSOF(fix_kind_table) ? fix_kind_table[k] : "?";
}

/* ---- bytes ---- */

struct buf {
        uint8_t *data;
        size_t len, allocated;
};

static int buf_put(struct buf *b, const void *p, size_t n) {
        if (n == 0)
                return 0;
        if (GROW(b->data, b->allocated, b->len + n) < 0)
                return -ENOMEM;
        memcpy(b->data + b->len, p, n);
        b->len += n;
        return 0;
}

static void buf_done(struct buf *b) {
        free(b->data);
        *b = (struct buf){};
}

static void u32_store(uint8_t *p, uint32_t v, bool big_endian) {
        if (big_endian)
                v = htonl(v);
        memcpy(p, &v, sizeof(v));
}

static uint32_t u32_load(const uint8_t *p, bool big_endian) {
        uint32_t v;
        memcpy(&v, p, sizeof(v));
        return big_endian ? ntohl(v) : v;
}

/* Attributes of a nest, or of a message after its nfgenmsg. */
#define for_each_attr(a, start, end)                                                                                   \
        for (const struct nlattr *a = (const struct nlattr *) (start);                                                 \
             mnl_attr_ok(a, (int) ((const uint8_t *) (end) - (const uint8_t *) a)); a = mnl_attr_next(a))

static const uint8_t *msg_attrs(const struct nlmsghdr *nlh) {
        return (const uint8_t *) mnl_nlmsg_get_payload(nlh) + sizeof(struct nfgenmsg);
}

static const uint8_t *msg_end(const struct nlmsghdr *nlh) {
        return (const uint8_t *) nlh + nlh->nlmsg_len;
}

static const uint8_t *nest_end(const struct nlattr *a) {
        return (const uint8_t *) a + a->nla_len;
}

static const struct nlattr *nest_get(const struct nlattr *nest, uint16_t type) {
        for_each_attr(a, mnl_attr_get_payload(nest), nest_end(nest)) if (mnl_attr_get_type(a) == type) return a;
        return NULL;
}

static const struct nlattr *msg_get(const struct nlmsghdr *nlh, uint16_t type) {
        for_each_attr(a, msg_attrs(nlh), msg_end(nlh)) if (mnl_attr_get_type(a) == type) return a;
        return NULL;
}

/* Expression number pos of a rule (its NFTA_LIST_ELEM), with its name. */
static const struct nlattr *rule_expr(const struct nlmsghdr *nlh, uint16_t pos, const char **ret_name) {
        const struct nlattr *list = msg_get(nlh, NFTA_RULE_EXPRESSIONS);
        uint16_t i = 0;
        if (!list)
                return NULL;
        for_each_attr(e, mnl_attr_get_payload(list), nest_end(list)) {
                if (i++ != pos)
                        continue;
                const struct nlattr *name = nest_get(e, NFTA_EXPR_NAME);
                *ret_name = name ? mnl_attr_get_str(name) : "";
                return e;
        }
        return NULL;
}

/* The 4 bytes an expression compares or loads: cmp's or immediate's NFTA_DATA_VALUE. */
static uint8_t *expr_value(const struct nlattr *e, const char *name) {
        const struct nlattr *data = nest_get(e, NFTA_EXPR_DATA);
        uint16_t type = streq(name, "cmp") ? NFTA_CMP_DATA : streq(name, "immediate") ? NFTA_IMMEDIATE_DATA : 0;
        const struct nlattr *d = data && type ? nest_get(data, type) : NULL;
        const struct nlattr *v = d ? nest_get(d, NFTA_DATA_VALUE) : NULL;
        return v && mnl_attr_get_payload_len(v) == 4 ? (uint8_t *) mnl_attr_get_payload(v) : NULL;
}

/* The set a lookup expression names. */
static const char *lookup_set_name(const struct nlattr *e) {
        const struct nlattr *data = nest_get(e, NFTA_EXPR_DATA);
        const struct nlattr *set = data ? nest_get(data, NFTA_LOOKUP_SET) : NULL;
        return set ? mnl_attr_get_str(set) : NULL;
}

/* ---- canonical form: what must be equal for two rules (or elements) to be the same rule ---- */

/* Counters and other state move with traffic; they are not part of what a rule is. */
static bool stateful_attr(const char *expr, uint16_t type) {
        if (streq(expr, "counter"))
                return type == NFTA_COUNTER_BYTES || type == NFTA_COUNTER_PACKETS;
        if (streq(expr, "quota"))
                return type == NFTA_QUOTA_CONSUMED;
        if (streq(expr, "last"))
                return type == NFTA_LAST_SET || type == NFTA_LAST_MSECS;
        return false;
}

static int canon_attr(struct buf *out, const struct nlattr *a, bool zero) {
        uint16_t type = a->nla_type;
        uint32_t len = mnl_attr_get_payload_len(a);
        int r;
        if ((r = buf_put(out, &type, sizeof(type))) < 0 || (r = buf_put(out, &len, sizeof(len))) < 0)
                return r;
        if (!zero)
                return buf_put(out, mnl_attr_get_payload(a), len);
        for (uint32_t i = 0; i < len; i++)
                if ((r = buf_put(out, "", 1)) < 0)
                        return r;
        return 0;
}

struct canon_ctx {
        const struct ifindex_set *sets; /* where the anonymous sets a lookup names are found */
        size_t n_sets;
        uint8_t family;
        const char *table;
        const struct patch *patches; /* applied to set elements on the way */
        size_t n_patches;
};

static int canon_set(struct buf *out, const struct canon_ctx *c, size_t set_index);

/* One expression: its name, then its data with state blanked; an anonymous set it looks up by its contents (its
 * generated name differs between two copies of the same rule). */
static int canon_expr(struct buf *out, const struct canon_ctx *c, const struct nlattr *e) {
        const struct nlattr *name_attr = nest_get(e, NFTA_EXPR_NAME), *data = nest_get(e, NFTA_EXPR_DATA);
        const char *name = name_attr ? mnl_attr_get_str(name_attr) : "";
        int r;

        if ((r = buf_put(out, name, strlen(name) + 1)) < 0)
                return r;
        if (!data)
                return 0;
        for_each_attr(a, mnl_attr_get_payload(data), nest_end(data)) {
                uint16_t type = mnl_attr_get_type(a);
                if (streq(name, "lookup") && type == NFTA_LOOKUP_SET_ID)
                        continue;
                if (streq(name, "lookup") && type == NFTA_LOOKUP_SET && c) {
                        const char *set = mnl_attr_get_str(a);
                        for (size_t i = 0; i < c->n_sets; i++) {
                                const struct ifindex_set *s = &c->sets[i];
                                if ((s->flags & NFT_SET_ANONYMOUS) && s->family == c->family &&
                                    streq(s->table, c->table) && streq(s->name, set)) {
                                        r = canon_set(out, c, i);
                                        goto next;
                                }
                        }
                }
                r = canon_attr(out, a, stateful_attr(name, type));
        next:
                if (r < 0)
                        return r;
        }
        return 0;
}

/* An element: its attributes but the expiration (a countdown), with the state of its expressions blanked. */
static int canon_elem(struct buf *out, const uint8_t *attrs, size_t size) {
        int r;
        for_each_attr(a, attrs, attrs + size) {
                uint16_t type = mnl_attr_get_type(a);
                if (type == NFTA_SET_ELEM_EXPIRATION)
                        continue;
                if (type == NFTA_SET_ELEM_EXPR)
                        r = canon_expr(out, NULL, a);
                else if (type == NFTA_SET_ELEM_EXPRESSIONS) {
                        r = 0;
                        for_each_attr(e, mnl_attr_get_payload(a), nest_end(a)) if (r >= 0) r = canon_expr(out, NULL, e);
                } else
                        r = canon_attr(out, a, false);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* A copy of an element's attributes with the patches that concern it applied: the key component (and the end of
 * its range) or the data. */
static int elem_patched(const struct set_elem *e, bool big_endian, const struct patch *patches, size_t n,
                        size_t set, size_t elem, struct nl_blob *ret) {
        uint8_t *copy = malloc(e->attrs.size ? e->attrs.size : 1);
        if (!copy)
                return -ENOMEM;
        memcpy_safe(copy, e->attrs.data, e->attrs.size);
        for (size_t i = 0; i < n; i++) {
                const struct patch *p = &patches[i];
                if (p->site.set != set || p->site.elem != elem)
                        continue;
                if (p->site.in_data)
                        u32_store(copy + e->data_off, p->to, big_endian);
                else {
                        u32_store(copy + e->key_off + p->site.offset, p->to, big_endian);
                        if (e->key_end_len >= p->site.offset + 4u)
                                u32_store(copy + e->key_end_off + p->site.offset, p->to, big_endian);
                }
        }
        *ret = (struct nl_blob){.data = copy, .size = e->attrs.size};
        return 0;
}

static int blob_cmp(const void *a, const void *b) {
        const struct nl_blob *x = a, *y = b;
        if (x->size != y->size)
                return x->size < y->size ? -1 : 1;
        return memcmp_safe(x->data, y->data, x->size);
}

/* A set's contents, order aside: the canonical elements, sorted. The context's patches (one rule's, or one
 * set's) that name this set and an element apply on the way. */
static int canon_set(struct buf *out, const struct canon_ctx *c, size_t set_index) {
        const struct ifindex_set *s = &c->sets[set_index];
        _cleanup_free_ struct nl_blob *elems = calloc(s->n_elems ? s->n_elems : 1, sizeof(struct nl_blob));
        size_t n = 0;
        int r = 0;

        if (!elems)
                return -ENOMEM;
        for (size_t k = 0; k < s->n_elems && r >= 0; k++) {
                struct nl_blob patched;
                struct buf one = {};
                r = elem_patched(&s->elems[k], s->big_endian, c->patches, c->n_patches, set_index, k, &patched);
                if (r < 0)
                        break;
                r = canon_elem(&one, patched.data, patched.size);
                free(patched.data);
                if (r >= 0)
                        elems[n++] = (struct nl_blob){.data = one.data, .size = one.len};
                else
                        buf_done(&one);
        }
        if (r >= 0) {
                qsort(elems, n, sizeof(struct nl_blob), blob_cmp);
                uint32_t count = (uint32_t) n;
                r = buf_put(out, &count, sizeof(count));
        }
        for (size_t k = 0; k < n; k++) {
                if (r >= 0) {
                        uint32_t size = (uint32_t) elems[k].size;
                        if ((r = buf_put(out, &size, sizeof(size))) >= 0)
                                r = buf_put(out, elems[k].data, elems[k].size);
                }
                free(elems[k].data);
        }
        return r;
}

/* A rule message's expressions, user data and compat attributes; c NULL: anonymous sets by name. */
static int canon_rule_msg(const struct nlmsghdr *nlh, const struct canon_ctx *c, struct buf *out) {
        int r;
        for_each_attr(a, msg_attrs(nlh), msg_end(nlh)) {
                uint16_t type = mnl_attr_get_type(a);
                if (type == NFTA_RULE_EXPRESSIONS) {
                        for_each_attr(e, mnl_attr_get_payload(a), nest_end(a)) if ((r = canon_expr(out, c, e)) < 0) return r;
                } else if ((type == NFTA_RULE_USERDATA || type == NFTA_RULE_COMPAT) && (r = canon_attr(out, a, false)) < 0)
                        return r;
        }
        return 0;
}

/* A rule as it is, or as it would be with patches applied: its expressions (state blanked, anonymous sets by
 * contents), its user data (comments) and compat attributes. Table, chain and handle are not part of it. */
static int canon_rule(const struct ruleset *rs, size_t rule, const struct patch *patches, size_t n_patches,
                      struct buf *out) {
        const struct rule_msg *m = &rs->rules[rule];
        _cleanup_free_ uint8_t *copy = malloc(m->msg.size);

        if (!copy)
                return -ENOMEM;
        memcpy(copy, m->msg.data, m->msg.size);
        const struct nlmsghdr *nlh = (const struct nlmsghdr *) copy;
        for (size_t i = 0; i < n_patches; i++) {
                const char *name;
                const struct nlattr *e;
                uint8_t *v;
                if (patches[i].site.set != SIZE_MAX || !(e = rule_expr(nlh, patches[i].site.expr, &name)) ||
                    !(v = expr_value(e, name)))
                        continue;
                u32_store(v, patches[i].to, false);
        }

        struct canon_ctx c = {.sets = rs->sets, .n_sets = rs->n_ifindex_sets, .family = m->family,
                              .table = m->table, .patches = patches, .n_patches = n_patches};
        return canon_rule_msg(nlh, &c, out);
}

/* A rule message's family and table, for finding the anonymous sets it names. */
static struct canon_ctx rule_msg_ctx(const struct nl_blob *rule, const struct ifindex_set *sets, size_t n_sets) {
        const struct nlmsghdr *nlh = (const struct nlmsghdr *) rule->data;
        const struct nlattr *table = msg_get(nlh, NFTA_RULE_TABLE);
        return (struct canon_ctx){.sets = sets, .n_sets = n_sets,
                                  .family = ((const struct nfgenmsg *) mnl_nlmsg_get_payload(nlh))->nfgen_family,
                                  .table = table ? mnl_attr_get_str(table) : ""};
}

bool rule_msgs_same(const struct nl_blob *a, const struct ifindex_set *a_sets, size_t a_n_sets,
                    const struct nl_blob *b, const struct ifindex_set *b_sets, size_t b_n_sets) {
        _cleanup_(buf_done) struct buf x = {}, y = {};
        struct canon_ctx ca = rule_msg_ctx(a, a_sets, a_n_sets), cb = rule_msg_ctx(b, b_sets, b_n_sets);
        return canon_rule_msg((const struct nlmsghdr *) a->data, &ca, &x) >= 0 &&
               canon_rule_msg((const struct nlmsghdr *) b->data, &cb, &y) >= 0 && x.len == y.len &&
               (x.len == 0 || memcmp(x.data, y.data, x.len) == 0);
}

bool rule_msg_sets_missing(const struct nl_blob *msg, const struct ifindex_set *sets, size_t n_sets) {
        const struct nlmsghdr *nlh = (const struct nlmsghdr *) msg->data;
        const struct nlattr *list = msg_get(nlh, NFTA_RULE_EXPRESSIONS);
        struct canon_ctx c = rule_msg_ctx(msg, sets, n_sets);
        if (!list)
                return false;
        for_each_attr(e, mnl_attr_get_payload(list), nest_end(list)) {
                const struct nlattr *name = nest_get(e, NFTA_EXPR_NAME), *data = nest_get(e, NFTA_EXPR_DATA);
                const struct nlattr *set = NULL;
                bool found = false;
                if (!name || !data)
                        continue;
                if (streq(mnl_attr_get_str(name), "lookup"))
                        set = nest_get(data, NFTA_LOOKUP_SET);
                else if (streq(mnl_attr_get_str(name), "objref"))
                        /* an object map: rule_put_again() does not make one anew */
                        set = nest_get(data, NFTA_OBJREF_SET_NAME);
                /* nft names the sets it makes for one rule "__set%d", "__map%d" */
                if (!set || strncmp(mnl_attr_get_str(set), "__", 2) != 0)
                        continue;
                for (size_t i = 0; i < c.n_sets && streq(mnl_attr_get_str(name), "lookup") && !found; i++)
                        found = (c.sets[i].flags & NFT_SET_ANONYMOUS) && c.sets[i].family == c.family &&
                                streq(c.sets[i].table, c.table) && streq(c.sets[i].name, mnl_attr_get_str(set));
                if (!found)
                        return true;
        }
        return false;
}

/* ---- the plan ---- */

static int patch_add(struct patch **patches, size_t *n, const struct patch *p) {
        struct patch *l = reallocarray(*patches, *n + 1, sizeof(struct patch));
        if (!l)
                return -ENOMEM;
        *patches = l;
        l[(*n)++] = *p;
        return 0;
}

/* An interval set holds a single index as a range: a start element and an end element one above it (rbtree), or
 * one element with a key and an end key (a concatenation). Only such a range is rewritten; a range over several
 * indexes is no interface of its own. *ret_end: the rbtree end element, or SIZE_MAX. */
static bool range_is_one_index(const struct ifindex_set *s, size_t elem, const struct ref_site *site, uint32_t from,
                               size_t *ret_end) {
        const struct set_elem *e = &s->elems[elem];
        *ret_end = SIZE_MAX;
        if (!(s->flags & NFT_SET_INTERVAL) || site->in_data)
                return true;
        if (e->key_end_len)
                return e->key_end_len >= site->offset + 4u &&
                       u32_load(e->attrs.data + e->key_end_off + site->offset, true) == from;
        if (e->key_len != 4 || from == UINT32_MAX)
                return false;
        for (size_t k = 0; k < s->n_elems; k++) {
                const struct set_elem *end = &s->elems[k];
                if ((end->flags & NFT_SET_ELEM_INTERVAL_END) && end->key_len == 4 &&
                    u32_load(end->attrs.data + end->key_off, true) == from + 1) {
                        *ret_end = k;
                        return true;
                }
        }
        return false;
}

static void fix_keep(struct rebind_plan *p, size_t k, const char *why) {
        p->fixes[k] = (struct ref_fix){.kind = FIX_KEEP, .why = why};
}

/* Canonical forms, sorted, to find a twin by bisection: rules by chain, elements by set. */
struct canon_entry {
        size_t group; /* chain index, or set index */
        struct nl_blob canon;
        struct nl_blob key; /* elements: the key bytes (to find one the rewrite would collide with) */
};

static int canon_entry_cmp(const void *a, const void *b) {
        const struct canon_entry *x = a, *y = b;
        if (x->group != y->group)
                return x->group < y->group ? -1 : 1;
        return blob_cmp(&x->canon, &y->canon);
}

static int key_entry_cmp(const void *a, const void *b) {
        const struct canon_entry *x = a, *y = b;
        if (x->group != y->group)
                return x->group < y->group ? -1 : 1;
        return blob_cmp(&x->key, &y->key);
}

struct canon_table {
        struct canon_entry *entries;
        size_t n, allocated;
};

static void canon_table_done(struct canon_table *t) {
        for (size_t i = 0; i < t->n; i++)
                free(t->entries[i].canon.data);
        free(t->entries);
        *t = (struct canon_table){};
}

static int canon_table_add(struct canon_table *t, size_t group, struct buf *canon, const uint8_t *key, size_t key_len) {
        if (GROW(t->entries, t->allocated, t->n + 1) < 0)
                return -ENOMEM;
        t->entries[t->n++] = (struct canon_entry){.group = group, .canon = {.data = canon->data, .size = canon->len},
                                                  .key = {.data = (uint8_t *) key, .size = key_len}};
        *canon = (struct buf){};
        return 0;
}

static bool canon_table_has(const struct canon_table *t, size_t group, const struct buf *canon) {
        struct canon_entry k = {.group = group, .canon = {.data = canon->data, .size = canon->len}};
        return t->n && bsearch(&k, t->entries, t->n, sizeof(struct canon_entry), canon_entry_cmp);
}

/* Which rules and elements hold a stale index: the others are the fresh ones a leftover may be the twin of. */
struct stale_marks {
        bool *rules;  /* by ruleset.rules index */
        bool **elems; /* by set, then element */
        size_t n_sets;
};

static void stale_marks_done(struct stale_marks *m) {
        for (size_t i = 0; i < m->n_sets; i++)
                free(m->elems[i]);
        free(m->elems);
        free(m->rules);
}

static int stale_marks_build(const struct ruleset *rs, const struct findings *f, struct stale_marks *ret) {
        struct stale_marks m = {.n_sets = rs->n_ifindex_sets};
        m.rules = calloc(rs->n_rule_msgs + 1, sizeof(bool));
        m.elems = calloc(rs->n_ifindex_sets + 1, sizeof(bool *));
        if (!m.rules || !m.elems) {
                stale_marks_done(&m);
                return -ENOMEM;
        }
        for (size_t i = 0; i < rs->n_ifindex_sets; i++)
                if (!(m.elems[i] = calloc(rs->sets[i].n_elems + 1, sizeof(bool)))) {
                        stale_marks_done(&m);
                        return -ENOMEM;
                }
        for (size_t k = 0; k < f->n_stale; k++) {
                const struct ref_site *site = &f->stale[k].ref->site;
                if (site->rule != SIZE_MAX)
                        m.rules[site->rule] = true;
                else if (site->set != SIZE_MAX)
                        m.elems[site->set][site->elem] = true;
        }
        *ret = m;
        return 0;
}

struct bool_lists {
        bool **lists;
        size_t n;
};

static void bool_lists_done(struct bool_lists *b) {
        for (size_t i = 0; b->lists && i < b->n; i++)
                free(b->lists[i]);
        free(b->lists);
}

static int u32_cmp(const void *a, const void *b) {
        uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
        return (x > y) - (x < y);
}

/* The fresh rules of the chains that have changes, and the fresh elements of the sets that have changes, that
 * could be a twin: a rewritten rule holds the index it is given, so only one holding such an index can equal
 * it. */
static int fresh_tables(const struct ruleset *rs, const struct rebind_plan *p, const struct stale_marks *marks,
                        struct canon_table *rules, struct canon_table *elems) {
        _cleanup_free_ bool *chains = calloc(rs->n_chains + 1, sizeof(bool));
        _cleanup_free_ bool *sets = calloc(rs->n_ifindex_sets + 1, sizeof(bool));
        _cleanup_free_ bool *candidate_rules = calloc(rs->n_rule_msgs + 1, sizeof(bool));
        size_t n_targets = 0;
        int r;

        if (!chains || !sets || !candidate_rules)
                return -ENOMEM;
        for (size_t i = 0; i < p->n_rules; i++)
                n_targets += p->rules[i].n_patches;
        for (size_t i = 0; i < p->n_elems; i++)
                n_targets += p->elems[i].n_patches;
        _cleanup_free_ uint32_t *targets = calloc(n_targets + 1, sizeof(uint32_t));
        if (!targets)
                return -ENOMEM;
        n_targets = 0;
        for (size_t i = 0; i < p->n_rules; i++)
                for (size_t k = 0; k < p->rules[i].n_patches; k++)
                        targets[n_targets++] = p->rules[i].patches[k].to;
        for (size_t i = 0; i < p->n_elems; i++)
                for (size_t k = 0; k < p->elems[i].n_patches; k++)
                        targets[n_targets++] = p->elems[i].patches[k].to;
        qsort(targets, n_targets, sizeof(uint32_t), u32_cmp);
        _cleanup_(bool_lists_done) struct bool_lists candidate_elems = {
                .lists = calloc(rs->n_ifindex_sets + 1, sizeof(bool *)), .n = rs->n_ifindex_sets};
        if (!candidate_elems.lists)
                return -ENOMEM;
        r = 0;
        for (size_t i = 0; i < rs->n_refs && r >= 0; i++) {
                const struct ref_site *site = &rs->refs[i].site;
                if (!n_targets || !bsearch(&rs->refs[i].ifindex, targets, n_targets, sizeof(uint32_t), u32_cmp))
                        continue;
                if (site->rule != SIZE_MAX)
                        candidate_rules[site->rule] = true;
                else if (site->set != SIZE_MAX) {
                        bool **l = &candidate_elems.lists[site->set];
                        if (!*l && !(*l = calloc(rs->sets[site->set].n_elems + 1, sizeof(bool))))
                                r = -ENOMEM;
                        else
                                (*l)[site->elem] = true;
                }
        }
        if (r < 0)
                return r;
        for (size_t i = 0; i < p->n_rules; i++)
                if (rs->rules[p->rules[i].rule].chain_index != SIZE_MAX)
                        chains[rs->rules[p->rules[i].rule].chain_index] = true;
        for (size_t i = 0; i < p->n_elems; i++)
                sets[p->elems[i].set] = true;

        for (size_t i = 0; i < rs->n_rule_msgs; i++) {
                size_t c = rs->rules[i].chain_index;
                if (c == SIZE_MAX || !chains[c] || marks->rules[i] || !candidate_rules[i])
                        continue;
                struct buf canon = {};
                if ((r = canon_rule(rs, i, NULL, 0, &canon)) < 0 || (r = canon_table_add(rules, c, &canon, NULL, 0)) < 0) {
                        buf_done(&canon);
                        return r;
                }
        }
        for (size_t i = 0; i < rs->n_ifindex_sets; i++) {
                const struct ifindex_set *s = &rs->sets[i];
                for (size_t k = 0; sets[i] && k < s->n_elems; k++) {
                        const struct set_elem *e = &s->elems[k];
                        if ((e->flags & NFT_SET_ELEM_INTERVAL_END) || marks->elems[i][k] || !candidate_elems.lists[i] ||
                            !candidate_elems.lists[i][k])
                                continue;
                        struct buf canon = {};
                        if ((r = canon_elem(&canon, e->attrs.data, e->attrs.size)) < 0 ||
                            (r = canon_table_add(elems, i, &canon, e->attrs.data + e->key_off, e->key_len)) < 0) {
                                buf_done(&canon);
                                return r;
                        }
                }
        }
        if (rules->n)
                qsort(rules->entries, rules->n, sizeof(struct canon_entry), canon_entry_cmp);
        if (elems->n)
                qsort(elems->entries, elems->n, sizeof(struct canon_entry), canon_entry_cmp);
        return 0;
}

/* Gathers the rewritable stale references of one rule (or one element) into a change; the others are kept with
 * why. Returns 1 when the change has something to do. */
static int change_collect(const struct ruleset *rs, const struct findings *f, struct rebind_plan *p, bool *taken,
                          size_t first, struct patch **ret, size_t *ret_n, size_t *ret_end_elem) {
        const struct ref_site *s0 = &f->stale[first].ref->site;
        *ret_end_elem = SIZE_MAX;
        for (size_t k = first; k < f->n_stale; k++) {
                const struct stale_ref *st = &f->stale[k];
                const struct ref_site *site = &st->ref->site;
                bool same = s0->rule != SIZE_MAX ? site->rule == s0->rule
                                                 : site->rule == SIZE_MAX && site->set == s0->set && site->elem == s0->elem;
                if (taken[k] || !same)
                        continue;
                taken[k] = true;
                if (!st->was[0]) {
                        fix_keep(p, k, "which interface the index was is not known (no snapshot or link history names it)");
                        continue;
                }
                if (st->now < 0) {
                        fix_keep(p, k, "the interface it was does not exist now");
                        continue;
                }
                size_t end = SIZE_MAX;
                if (site->set != SIZE_MAX && !range_is_one_index(&rs->sets[site->set], site->elem, site, st->ref->ifindex, &end)) {
                        fix_keep(p, k, "a range of indexes, not one interface");
                        continue;
                }
                if (end != SIZE_MAX)
                        *ret_end_elem = end;
                struct patch pt = {.site = *site, .from = st->ref->ifindex, .to = (uint32_t) st->now};
                if (patch_add(ret, ret_n, &pt) < 0)
                        return -ENOMEM;
                p->fixes[k] = (struct ref_fix){.kind = FIX_REBIND, .to_ifindex = pt.to};
        }
        return *ret_n > 0;
}

static void fixes_set(struct rebind_plan *p, const struct findings *f, const struct ref_site *of, enum fix_kind kind,
                      bool twin, const char *why) {
        for (size_t k = 0; k < f->n_stale; k++) {
                const struct ref_site *site = &f->stale[k].ref->site;
                bool same = of->rule != SIZE_MAX ? site->rule == of->rule
                                                 : site->rule == SIZE_MAX && site->set == of->set && site->elem == of->elem;
                if (same)
                        p->fixes[k] = (struct ref_fix){.kind = kind, .twin = twin, .why = why};
        }
}

static int fetch_anonymous(struct ruleset *rs, const struct rule_change *rules, size_t n_rules) {
        _cleanup_free_ bool *chains = calloc(rs->n_chains + 1, sizeof(bool));
        bool any = false;
        if (!chains)
                return -ENOMEM;
        for (size_t i = 0; i < n_rules; i++)
                if (rs->rules[rules[i].rule].chain_index != SIZE_MAX)
                        chains[rs->rules[rules[i].rule].chain_index] = any = true;
        return any ? ruleset_fetch_anonymous(rs, chains) : 0;
}

int rebind_plan(struct ruleset *rs, const struct findings *f, bool prune, struct rebind_plan *ret) {
        _cleanup_(rebind_plan_done) struct rebind_plan p = {.genid = rs->genid, .n_fixes = f->n_stale};
        _cleanup_(canon_table_done) struct canon_table fresh_rules = {}, fresh_elems = {};
        _cleanup_(stale_marks_done) struct stale_marks marks = {};
        _cleanup_free_ bool *taken = calloc(f->n_stale + 1, sizeof(bool));
        int r;

        /* A change is computed only from a reading of one generation: the commit carries it. */
        if (!rs->consistent)
                return -EAGAIN;
        p.fixes = calloc(f->n_stale + 1, sizeof(struct ref_fix));
        if (!p.fixes || !taken)
                return -ENOMEM;

        /* Findings are sorted by table, chain and handle: one rule's references are next to each other. */
        for (size_t k = 0; k < f->n_stale; k++) {
                if (taken[k])
                        continue;
                const struct ref_site *site = &f->stale[k].ref->site;
                struct patch *patches = NULL;
                size_t n_patches = 0, end_elem;
                r = change_collect(rs, f, &p, taken, k, &patches, &n_patches, &end_elem);
                if (r <= 0) {
                        free(patches);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (site->rule != SIZE_MAX) {
                        if (GROW(p.rules, p.allocated_rules, p.n_rules + 1) < 0) {
                                free(patches);
                                return -ENOMEM;
                        }
                        p.rules[p.n_rules++] = (struct rule_change){.rule = site->rule, .patches = patches,
                                                                    .n_patches = n_patches};
                } else {
                        if (GROW(p.elems, p.allocated_elems, p.n_elems + 1) < 0) {
                                free(patches);
                                return -ENOMEM;
                        }
                        p.elems[p.n_elems++] = (struct elem_change){.set = site->set, .elem = site->elem,
                                                                    .end_elem = end_elem, .patches = patches,
                                                                    .n_patches = n_patches};
                }
        }

        /* A rule sent again sends its other anonymous sets again too (each belongs to one rule); a twin is
         * compared with them. Read now, at the same generation. */
        if ((r = fetch_anonymous(rs, p.rules, p.n_rules)) < 0)
                return r;
        size_t kept = 0;
        for (size_t i = 0; i < p.n_rules; i++) {
                struct rule_change *rc = &p.rules[i];
                if (ruleset_has_anonymous_sets(rs, rc->rule)) {
                        p.rules[kept++] = *rc;
                        continue;
                }
                fixes_set(&p, f, &(struct ref_site){.rule = rc->rule}, FIX_KEEP, false,
                          "the rule looks up a set that could not be read");
                free(rc->patches);
        }
        p.n_rules = kept;

        if ((r = stale_marks_build(rs, f, &marks)) < 0 ||
            (r = fresh_tables(rs, &p, &marks, &fresh_rules, &fresh_elems)) < 0)
                return r;

        /* A leftover beside its fresh twin goes, when the whole rule is rewritten (else it is no copy of it). */
        kept = 0;
        for (size_t i = 0; i < p.n_rules; i++) {
                struct rule_change *rc = &p.rules[i];
                struct ref_site of = {.rule = rc->rule};
                bool whole = true, twin = false;
                for (size_t k = 0; k < f->n_stale; k++)
                        if (f->stale[k].ref->site.rule == rc->rule && p.fixes[k].kind != FIX_REBIND)
                                whole = false;
                if (whole) {
                        _cleanup_(buf_done) struct buf want = {};
                        if ((r = canon_rule(rs, rc->rule, rc->patches, rc->n_patches, &want)) < 0)
                                return r;
                        twin = canon_table_has(&fresh_rules, rs->rules[rc->rule].chain_index, &want);
                }
                if (twin && !prune) {
                        fixes_set(&p, f, &of, FIX_KEEP, true, "a fresh copy of this rule exists; Prune-Stale-Twins is off");
                        free(rc->patches);
                        continue;
                }
                if (twin) {
                        fixes_set(&p, f, &of, FIX_PRUNE, true, NULL);
                        rc->prune = true;
                }
                p.rules[kept++] = *rc;
        }
        p.n_rules = kept;

        /* The same for elements; and an element whose rewritten key another fresh element has already (with other
         * data) would collide with it: kept. */
        _cleanup_free_ struct canon_entry *by_key = calloc(fresh_elems.n + 1, sizeof(struct canon_entry));
        if (!by_key)
                return -ENOMEM;
        if (fresh_elems.n) {
                memcpy(by_key, fresh_elems.entries, fresh_elems.n * sizeof(struct canon_entry));
                qsort(by_key, fresh_elems.n, sizeof(struct canon_entry), key_entry_cmp);
        }
        kept = 0;
        for (size_t i = 0; i < p.n_elems; i++) {
                struct elem_change *ec = &p.elems[i];
                const struct ifindex_set *s = &rs->sets[ec->set];
                const struct set_elem *e = &s->elems[ec->elem];
                struct ref_site of = {.rule = SIZE_MAX, .set = ec->set, .elem = ec->elem};
                struct nl_blob patched;
                _cleanup_(buf_done) struct buf want = {};
                if ((r = elem_patched(e, s->big_endian, ec->patches, ec->n_patches, ec->set, ec->elem, &patched)) < 0)
                        return r;
                r = canon_elem(&want, patched.data, patched.size);
                struct canon_entry k = {.group = ec->set, .key = {.data = patched.data + e->key_off, .size = e->key_len}};
                bool twin = r >= 0 && canon_table_has(&fresh_elems, ec->set, &want);
                bool collides = r >= 0 && !twin && fresh_elems.n &&
                                bsearch(&k, by_key, fresh_elems.n, sizeof(struct canon_entry), key_entry_cmp);
                free(patched.data);
                if (r < 0)
                        return r;
                if ((twin && !prune) || collides) {
                        fixes_set(&p, f, &of, FIX_KEEP, !collides,
                                  collides ? "an element with that key exists already, with other data"
                                           : "a fresh copy of this element exists; Prune-Stale-Twins is off");
                        free(ec->patches);
                        continue;
                }
                if (twin) {
                        fixes_set(&p, f, &of, FIX_PRUNE, true, NULL);
                        ec->prune = true;
                }
                p.elems[kept++] = *ec;
        }
        p.n_elems = kept;

        for (size_t k = 0; k < f->n_stale; k++)
                switch (p.fixes[k].kind) {
                case FIX_REBIND: p.n_rebind++; break;
                case FIX_PRUNE: p.n_prune++; break;
                case FIX_KEEP: p.n_keep++; break;
                }
        *ret = p;
        p = (struct rebind_plan){};
        return 0;
}

void rebind_plan_done(struct rebind_plan *p) {
        for (size_t i = 0; i < p->n_rules; i++)
                free(p->rules[i].patches);
        for (size_t i = 0; i < p->n_elems; i++)
                free(p->elems[i].patches);
        free(p->rules);
        free(p->elems);
        free(p->fixes);
        *p = (struct rebind_plan){};
}

/* ---- the transaction ---- */

static void attr_copy(struct nlmsghdr *nlh, const struct nlattr *a) {
        /* nla_type as received: keeps NLA_F_NESTED */
        mnl_attr_put(nlh, a->nla_type, mnl_attr_get_payload_len(a), mnl_attr_get_payload(a));
}

/* What a new set or element may carry: newer kernels dump attributes (the set's backend, its element count) that
 * they refuse on input. The identity (name, handle) is the new set's own. */
static bool set_attr_is_input(uint16_t type) {
        switch (type) {
        case NFTA_SET_TABLE: case NFTA_SET_FLAGS: case NFTA_SET_KEY_TYPE: case NFTA_SET_KEY_LEN:
        case NFTA_SET_DATA_TYPE: case NFTA_SET_DATA_LEN: case NFTA_SET_POLICY: case NFTA_SET_DESC:
        case NFTA_SET_TIMEOUT: case NFTA_SET_GC_INTERVAL: case NFTA_SET_USERDATA: case NFTA_SET_OBJ_TYPE:
        case NFTA_SET_EXPR: case NFTA_SET_EXPRESSIONS:
                return true;
        default:
                return false;
        }
}

static bool elem_attr_is_input(uint16_t type) {
        switch (type) {
        case NFTA_SET_ELEM_KEY: case NFTA_SET_ELEM_DATA: case NFTA_SET_ELEM_FLAGS: case NFTA_SET_ELEM_TIMEOUT:
        case NFTA_SET_ELEM_EXPIRATION: case NFTA_SET_ELEM_USERDATA: case NFTA_SET_ELEM_EXPR:
        case NFTA_SET_ELEM_OBJREF: case NFTA_SET_ELEM_KEY_END: case NFTA_SET_ELEM_EXPRESSIONS:
                return true;
        default:
                return false;
        }
}

/* One element (its attributes, patched) as an NFTA_LIST_ELEM of the message being built. */
static void put_elem(struct nlmsghdr *nlh, const struct nl_blob *attrs) {
        struct nlattr *le = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
        for_each_attr(a, attrs->data, attrs->data + attrs->size)
                if (elem_attr_is_input(mnl_attr_get_type(a)))
                        attr_copy(nlh, a);
        mnl_attr_nest_end(nlh, le);
}

/* A new anonymous set with the attributes of the old one, and its elements with the patches of this lookup. */
static int batch_anon_set(struct nl_batch *b, const struct ifindex_set *sets, size_t set_index,
                          const struct patch *patches, size_t n_patches, uint32_t set_id) {
        const struct ifindex_set *s = &sets[set_index];
        const struct nlmsghdr *old = (const struct nlmsghdr *) s->msg.data;
        const char *name = s->flags & NFT_SET_MAP ? ANON_MAP_NAME : ANON_SET_NAME;

        struct nlmsghdr *nlh = nl_batch_msg(b, NFT_MSG_NEWSET, s->family, NLM_F_CREATE, s->msg.size + 64);
        if (!nlh)
                return -ENOMEM;
        for_each_attr(a, msg_attrs(old), msg_end(old))
                if (set_attr_is_input(mnl_attr_get_type(a)))
                        attr_copy(nlh, a);
        mnl_attr_put_strz(nlh, NFTA_SET_NAME, name);
        mnl_attr_put_u32(nlh, NFTA_SET_ID, htonl(set_id));
        nl_batch_msg_end(b, nlh);

        for (size_t k = 0; k < s->n_elems;) {
                size_t bytes = 0, upto = k;
                while (upto < s->n_elems && (upto == k || bytes + s->elems[upto].attrs.size < ELEMS_PER_MSG_BYTES))
                        bytes += s->elems[upto++].attrs.size + 8;
                nlh = nl_batch_msg(b, NFT_MSG_NEWSETELEM, s->family, NLM_F_CREATE, bytes + strlen(s->table) + 64);
                if (!nlh)
                        return -ENOMEM;
                mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, s->table);
                mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, name);
                mnl_attr_put_u32(nlh, NFTA_SET_ELEM_LIST_SET_ID, htonl(set_id));
                struct nlattr *list = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
                for (; k < upto; k++) {
                        struct nl_blob patched;
                        int r = elem_patched(&s->elems[k], s->big_endian, patches, n_patches, set_index, k, &patched);
                        if (r < 0)
                                return r;
                        put_elem(nlh, &patched);
                        free(patched.data);
                }
                mnl_attr_nest_end(nlh, list);
                nl_batch_msg_end(b, nlh);
        }
        return 0;
}

/* A rule message sent again, each anonymous set it looks up (found in sets) sent anew before it, its elements
 * patched (an anonymous set belongs to one rule). NLM_F_REPLACE: in its place, by its handle; otherwise appended
 * to its chain. old may differ from what the kernel sent only in the values it compares or loads. */
static int batch_rule_with_sets(struct nl_batch *b, const struct nlmsghdr *old, const struct ifindex_set *sets,
                                size_t n_sets, const struct patch *patches, size_t n_patches, uint16_t flags,
                                uint32_t *set_id) {
        uint8_t family = ((const struct nfgenmsg *) mnl_nlmsg_get_payload(old))->nfgen_family;
        const struct nlattr *table = msg_get(old, NFTA_RULE_TABLE), *list = msg_get(old, NFTA_RULE_EXPRESSIONS);
        int r;

        if (!list || !table)
                return -EBADMSG;
        /* Anonymous sets first: the rule names them by the id they get in this batch. */
        uint16_t pos = 0;
        size_t n_expr = 0;
        for_each_attr(e, mnl_attr_get_payload(list), nest_end(list)) n_expr++;
        _cleanup_free_ uint32_t *ids = calloc(n_expr + 1, sizeof(uint32_t));
        if (!ids)
                return -ENOMEM;
        for_each_attr(e, mnl_attr_get_payload(list), nest_end(list)) {
                const struct nlattr *nm = nest_get(e, NFTA_EXPR_NAME);
                const char *set = nm && streq(mnl_attr_get_str(nm), "lookup") ? lookup_set_name(e) : NULL;
                if (set)
                        for (size_t i = 0; i < n_sets; i++) {
                                const struct ifindex_set *s = &sets[i];
                                if (!(s->flags & NFT_SET_ANONYMOUS) || s->family != family ||
                                    !streq(s->table, mnl_attr_get_str(table)) || !streq(s->name, set))
                                        continue;
                                ids[pos] = ++*set_id;
                                if ((r = batch_anon_set(b, sets, i, patches, n_patches, ids[pos])) < 0)
                                        return r;
                        }
                pos++;
        }

        struct nlmsghdr *nlh = nl_batch_msg(b, NFT_MSG_NEWRULE, family,
                                            flags & NLM_F_REPLACE ? NLM_F_REPLACE : NLM_F_CREATE | NLM_F_APPEND,
                                            old->nlmsg_len + 64 * n_expr);
        if (!nlh)
                return -ENOMEM;
        for_each_attr(a, msg_attrs(old), msg_end(old)) {
                uint16_t type = mnl_attr_get_type(a);
                if (type == NFTA_RULE_TABLE || type == NFTA_RULE_CHAIN || type == NFTA_RULE_USERDATA ||
                    type == NFTA_RULE_COMPAT || (type == NFTA_RULE_HANDLE && (flags & NLM_F_REPLACE)))
                        attr_copy(nlh, a);
                else if (a == list) {
                        /* the list the ids were counted from; a second one (the kernel never sends it) is not
                         * sent again */
                        struct nlattr *nest = mnl_attr_nest_start(nlh, NFTA_RULE_EXPRESSIONS);
                        pos = 0;
                        for_each_attr(e, mnl_attr_get_payload(a), nest_end(a)) {
                                if (!ids[pos]) {
                                        attr_copy(nlh, e);
                                        pos++;
                                        continue;
                                }
                                /* this lookup names the new set */
                                struct nlattr *elem = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
                                const struct nlattr *data = nest_get(e, NFTA_EXPR_DATA);
                                mnl_attr_put_strz(nlh, NFTA_EXPR_NAME, "lookup");
                                struct nlattr *d = mnl_attr_nest_start(nlh, NFTA_EXPR_DATA);
                                const char *set = lookup_set_name(e);
                                for_each_attr(x, mnl_attr_get_payload(data), nest_end(data)) {
                                        uint16_t t = mnl_attr_get_type(x);
                                        if (t != NFTA_LOOKUP_SET && t != NFTA_LOOKUP_SET_ID)
                                                attr_copy(nlh, x);
                                }
                                mnl_attr_put_strz(nlh, NFTA_LOOKUP_SET,
                                                  strncmp(set, "__map", 5) == 0 ? ANON_MAP_NAME : ANON_SET_NAME);
                                mnl_attr_put_u32(nlh, NFTA_LOOKUP_SET_ID, htonl(ids[pos]));
                                mnl_attr_nest_end(nlh, d);
                                mnl_attr_nest_end(nlh, elem);
                                pos++;
                        }
                        mnl_attr_nest_end(nlh, nest);
                }
        }
        nl_batch_msg_end(b, nlh);
        return 0;
}

/* The rule again, in its place (NLM_F_REPLACE by handle): every attribute as received, the indexes patched, and
 * each anonymous set it looks up sent anew. */
static int batch_replace_rule(struct nl_batch *b, const struct ruleset *rs, const struct rule_change *rc,
                              uint32_t *set_id) {
        const struct rule_msg *m = &rs->rules[rc->rule];
        _cleanup_free_ uint8_t *copy = malloc(m->msg.size);

        if (!copy)
                return -ENOMEM;
        memcpy(copy, m->msg.data, m->msg.size);
        const struct nlmsghdr *old = (const struct nlmsghdr *) copy;
        for (size_t i = 0; i < rc->n_patches; i++) {
                const char *name;
                const struct nlattr *e;
                uint8_t *v;
                if (rc->patches[i].site.set != SIZE_MAX)
                        continue;
                if (!(e = rule_expr(old, rc->patches[i].site.expr, &name)) || !(v = expr_value(e, name)))
                        return -EBADMSG;
                u32_store(v, rc->patches[i].to, false);
        }
        return batch_rule_with_sets(b, old, rs->sets, rs->n_ifindex_sets, rc->patches, rc->n_patches, NLM_F_REPLACE,
                                    set_id);
}

int rule_put_again(struct nl_batch *b, const struct nl_blob *rule, const struct ifindex_set *sets, size_t n_sets,
                   uint32_t *set_id) {
        return batch_rule_with_sets(b, (const struct nlmsghdr *) rule->data, sets, n_sets, NULL, 0, 0, set_id);
}

static int batch_delete_rule(struct nl_batch *b, const struct ruleset *rs, const struct rule_change *rc) {
        const struct rule_msg *m = &rs->rules[rc->rule];
        const struct nlmsghdr *old = (const struct nlmsghdr *) m->msg.data;
        struct nlmsghdr *nlh = nl_batch_msg(b, NFT_MSG_DELRULE, m->family, 0, m->msg.size);
        if (!nlh)
                return -ENOMEM;
        for_each_attr(a, msg_attrs(old), msg_end(old)) {
                uint16_t type = mnl_attr_get_type(a);
                if (type == NFTA_RULE_TABLE || type == NFTA_RULE_CHAIN || type == NFTA_RULE_HANDLE)
                        attr_copy(nlh, a);
        }
        nl_batch_msg_end(b, nlh);
        return 0;
}

/* What identifies an element for a delete: its key, the end of its range, its flags. */
static void put_elem_identity(struct nlmsghdr *nlh, const struct set_elem *e) {
        struct nlattr *le = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
        const uint8_t *base = e->attrs.data;
        for_each_attr(a, base, base + e->attrs.size) {
                uint16_t type = mnl_attr_get_type(a);
                if (type == NFTA_SET_ELEM_KEY || type == NFTA_SET_ELEM_KEY_END || type == NFTA_SET_ELEM_FLAGS)
                        attr_copy(nlh, a);
        }
        mnl_attr_nest_end(nlh, le);
}

static int batch_elems(struct nl_batch *b, const struct ruleset *rs, const struct elem_change *ec) {
        const struct ifindex_set *s = &rs->sets[ec->set];
        size_t size = s->elems[ec->elem].attrs.size + (ec->end_elem != SIZE_MAX ? s->elems[ec->end_elem].attrs.size : 0);
        struct nlmsghdr *nlh = nl_batch_msg(b, NFT_MSG_DELSETELEM, s->family, 0, size + strlen(s->table) +
                                                                                        strlen(s->name) + 64);
        if (!nlh)
                return -ENOMEM;
        mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, s->table);
        mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, s->name);
        struct nlattr *list = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
        put_elem_identity(nlh, &s->elems[ec->elem]);
        if (ec->end_elem != SIZE_MAX)
                put_elem_identity(nlh, &s->elems[ec->end_elem]);
        mnl_attr_nest_end(nlh, list);
        nl_batch_msg_end(b, nlh);
        if (ec->prune)
                return 0;

        nlh = nl_batch_msg(b, NFT_MSG_NEWSETELEM, s->family, NLM_F_CREATE | NLM_F_EXCL,
                           size + strlen(s->table) + strlen(s->name) + 64);
        if (!nlh)
                return -ENOMEM;
        mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, s->table);
        mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, s->name);
        list = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
        size_t which[2] = {ec->elem, ec->end_elem};
        for (size_t i = 0; i < 2 && which[i] != SIZE_MAX; i++) {
                struct nl_blob patched;
                /* the end of a single-index range (rbtree) is one above the index; it has one component */
                struct patch end = ec->patches[0];
                end.site.elem = ec->end_elem;
                end.to++;
                int r = i == 0 ? elem_patched(&s->elems[ec->elem], s->big_endian, ec->patches, ec->n_patches, ec->set,
                                              ec->elem, &patched)
                               : elem_patched(&s->elems[ec->end_elem], s->big_endian, &end, 1, ec->set, ec->end_elem,
                                              &patched);
                if (r < 0)
                        return r;
                put_elem(nlh, &patched);
                free(patched.data);
        }
        mnl_attr_nest_end(nlh, list);
        nl_batch_msg_end(b, nlh);
        return 0;
}

/* Says which change a failed sequence number was, for the one-line error. */
static char *describe_seq(const struct ruleset *rs, const struct rebind_plan *plan, const uint32_t *seqs,
                          uint32_t failed) {
        char *s = NULL;
        for (size_t i = 0; i < plan->n_rules; i++)
                if (seqs[i] == failed) {
                        const struct rule_msg *m = &rs->rules[plan->rules[i].rule];
                        if (asprintf(&s, "table %s %s, chain %s, rule handle %llu", nfproto_to_string(m->family),
                                     m->table, m->chain, (unsigned long long) m->handle) < 0)
                                s = NULL;
                        return s;
                }
        for (size_t i = 0; i < plan->n_elems; i++)
                if (seqs[plan->n_rules + i] == failed || seqs[plan->n_rules + i] + 1 == failed) {
                        const struct ifindex_set *set = &rs->sets[plan->elems[i].set];
                        if (asprintf(&s, "table %s %s, set %s", nfproto_to_string(set->family), set->table,
                                     set->name) < 0)
                                s = NULL;
                        return s;
                }
        return NULL;
}

int rebind_batch(const struct ruleset *rs, const struct rebind_plan *plan, struct nl_batch *ret, uint32_t *ret_seqs) {
        _cleanup_(nl_batch_done) struct nl_batch b = {};
        uint32_t set_id = 0;
        int r;

        if ((r = nl_batch_begin(&b, plan->genid)) < 0)
                return r;
        for (size_t i = 0; i < plan->n_rules; i++) {
                const struct rule_change *rc = &plan->rules[i];
                r = rc->prune ? batch_delete_rule(&b, rs, rc) : batch_replace_rule(&b, rs, rc, &set_id);
                if (r < 0)
                        return r;
                /* the rule's own message is the last one of its change */
                ret_seqs[i] = b.seq_next - 1;
        }
        for (size_t i = 0; i < plan->n_elems; i++) {
                ret_seqs[plan->n_rules + i] = b.seq_next;
                if ((r = batch_elems(&b, rs, &plan->elems[i])) < 0)
                        return r;
        }
        if ((r = nl_batch_end(&b)) < 0)
                return r;
        *ret = b;
        b = (struct nl_batch){};
        return 0;
}

int rebind_commit(const struct ruleset *rs, const struct rebind_plan *plan, char **ret_error) {
        _cleanup_(nl_batch_done) struct nl_batch b = {};
        _cleanup_(mnl_socket_closep) struct mnl_socket *nl = NULL;
        _cleanup_free_ uint32_t *seqs = calloc(plan->n_rules + plan->n_elems + 1, sizeof(uint32_t));
        uint32_t failed = 0;
        int r;

        if (ret_error)
                *ret_error = NULL;
        if (!seqs)
                return -ENOMEM;
        if (plan->n_rules == 0 && plan->n_elems == 0)
                return 0;
        if ((r = rebind_batch(rs, plan, &b, seqs)) < 0)
                return r;

        if ((r = netlink_open(NETLINK_NETFILTER, &nl)) < 0)
                return r;
        _cleanup_free_ char *message = NULL;
        r = nl_batch_send(nl, &b, &failed, &message);
        if (r < 0 && r != -ERESTART && ret_error) {
                _cleanup_free_ char *where = describe_seq(rs, plan, seqs, failed);
                if (asprintf(ret_error, "%s%s%s", where ? where : "", where && message ? ": " : "",
                             message ? message : "") < 0)
                        *ret_error = NULL;
        }
        log_debug("rebind: %zu rule(s), %zu element(s) in %zu messages (%u..%u), generation %u: %d, failed at %u",
                  plan->n_rules, plan->n_elems, b.n_msgs, b.seq_begin, b.seq_next - 1, plan->genid, r, failed);
        if (getenv("RAU_DEBUG_BATCH")) {
                FILE *f = fopen(getenv("RAU_DEBUG_BATCH"), "we");
                if (f) {
                        fwrite(b.buf, 1, b.len, f);
                        fclose(f);
                }
        }
        return r;
}

/* ---- the proof ---- */

_printf_(2, 3) static int differs(char **ret, const char *format, ...) {
        va_list ap;
        va_start(ap, format);
        if (vasprintf(ret, format, ap) < 0)
                *ret = NULL;
        va_end(ap);
        return -EBADE;
}

/* (chain, handle) → an index: the planned change of a rule, or a rule of the ruleset read afterwards. */
struct handle_key {
        size_t chain;
        uint64_t handle;
        size_t index;
};

static int handle_key_cmp(const void *a, const void *b) {
        const struct handle_key *x = a, *y = b;
        if (x->chain != y->chain)
                return x->chain < y->chain ? -1 : 1;
        return (x->handle > y->handle) - (x->handle < y->handle);
}

static size_t handle_find(const struct handle_key *keys, size_t n, size_t chain, uint64_t handle) {
        struct handle_key k = {.chain = chain, .handle = handle};
        const struct handle_key *found = n ? bsearch(&k, keys, n, sizeof(k), handle_key_cmp) : NULL;
        return found ? found->index : SIZE_MAX;
}

/* A touched chain, rule by rule in order: every rule keeps its handle and place, a replaced one reads as planned,
 * a pruned one is gone, and nothing else is there. */
static int verify_chain(const struct ruleset *before, const struct rebind_plan *plan, const struct ruleset *after,
                        size_t chain_index, const struct handle_key *changes, const struct handle_key *rules_after,
                        char **ret) {
        const struct nft_path *chain = &before->chains[chain_index];
        const struct nft_path *now = ruleset_chain(after, chain->family, chain->table, chain->chain);
        size_t j = 0, now_index;
        int r;

        if (!now)
                return differs(ret, "chain %s is gone", chain->chain);
        now_index = (size_t) (now - after->chains);
        for (size_t i = 0; i < chain->n_handles; i++) {
                uint64_t h = chain->handles[i];
                size_t c = handle_find(changes, plan->n_rules, chain_index, h);
                const struct rule_change *rc = c != SIZE_MAX ? &plan->rules[c] : NULL;
                if (rc && rc->prune)
                        continue;
                if (j >= now->n_handles)
                        return differs(ret, "chain %s ends before rule handle %llu", chain->chain,
                                       (unsigned long long) h);
                uint64_t got = now->handles[j++];
                if (!rc) {
                        if (got != h)
                                return differs(ret, "chain %s: rule handle %llu is not where it was", chain->chain,
                                               (unsigned long long) h);
                        continue;
                }
                /* NLM_F_REPLACE keeps the handle and the place; the content says it was replaced */
                size_t new_rule = handle_find(rules_after, after->n_rule_msgs, now_index, got);
                if (got != h || new_rule == SIZE_MAX)
                        return differs(ret, "chain %s: rule handle %llu is not where it was", chain->chain,
                                       (unsigned long long) h);
                _cleanup_(buf_done) struct buf want = {}, have = {};
                if ((r = canon_rule(before, rc->rule, rc->patches, rc->n_patches, &want)) < 0 ||
                    (r = canon_rule(after, new_rule, NULL, 0, &have)) < 0)
                        return r;
                if (want.len != have.len || memcmp_safe(want.data, have.data, want.len) != 0)
                        return differs(ret, "chain %s: rule handle %llu differs from the original beyond the index",
                                       chain->chain, (unsigned long long) h);
        }
        if (j != now->n_handles)
                return differs(ret, "chain %s has %zu rule(s) more than planned", chain->chain, now->n_handles - j);
        return 0;
}

/* A touched named set: its elements, order aside, are the old ones with the planned changes. */
static int verify_set(const struct ruleset *before, const struct rebind_plan *plan, const struct ruleset *after,
                      size_t set_index, char **ret) {
        const struct ifindex_set *s = &before->sets[set_index];
        const struct ifindex_set *now = NULL;
        _cleanup_(buf_done) struct buf want = {}, have = {};
        _cleanup_free_ struct patch *patches = NULL;
        _cleanup_free_ bool *gone = calloc(s->n_elems + 1, sizeof(bool));
        size_t n_patches = 0;
        int r = 0;

        if (!gone)
                return -ENOMEM;
        for (size_t i = 0; i < after->n_ifindex_sets && !now; i++)
                if (after->sets[i].family == s->family && streq(after->sets[i].table, s->table) &&
                    streq(after->sets[i].name, s->name))
                        now = &after->sets[i];
        if (!now)
                return differs(ret, "set %s is gone", s->name);

        /* every planned change of this set: pruned elements (with their range ends) go, the others are patched */
        for (size_t i = 0; i < plan->n_elems && r >= 0; i++) {
                const struct elem_change *ec = &plan->elems[i];
                if (ec->set != set_index)
                        continue;
                if (ec->prune) {
                        gone[ec->elem] = true;
                        if (ec->end_elem != SIZE_MAX)
                                gone[ec->end_elem] = true;
                        continue;
                }
                for (size_t k = 0; k < ec->n_patches && r >= 0; k++)
                        r = patch_add(&patches, &n_patches, &ec->patches[k]);
                if (r >= 0 && ec->end_elem != SIZE_MAX) {
                        struct patch end = ec->patches[0];
                        end.site.elem = ec->end_elem;
                        end.to++;
                        r = patch_add(&patches, &n_patches, &end);
                }
        }
        if (r < 0)
                return r;

        /* The expected set: a copy without the pruned elements, the patches renumbered to match. */
        _cleanup_free_ struct set_elem *kept = calloc(s->n_elems + 1, sizeof(struct set_elem));
        if (!kept)
                return -ENOMEM;
        size_t n_kept = 0;
        for (size_t k = 0; k < s->n_elems; k++) {
                if (gone[k])
                        continue;
                for (size_t p = 0; p < n_patches; p++)
                        if (patches[p].site.elem == k) {
                                patches[p].site.elem = n_kept;
                                patches[p].site.set = 0;
                        }
                kept[n_kept++] = s->elems[k];
        }
        struct ifindex_set expected = *s;
        expected.elems = kept;
        expected.n_elems = n_kept;
        struct canon_ctx cb = {.sets = &expected, .n_sets = 1, .patches = patches, .n_patches = n_patches};
        struct canon_ctx ca = {.sets = now, .n_sets = 1};
        if ((r = canon_set(&want, &cb, 0)) < 0 || (r = canon_set(&have, &ca, 0)) < 0)
                return r;
        if (want.len != have.len || memcmp_safe(want.data, have.data, want.len) != 0)
                return differs(ret, "set %s differs from the original beyond the rewritten elements", s->name);
        return 0;
}

int rebind_verify(const struct ruleset *before, const struct rebind_plan *plan, struct ruleset *after,
                  char **ret_difference) {
        _cleanup_free_ struct handle_key *changes = calloc(plan->n_rules + 1, sizeof(struct handle_key));
        _cleanup_free_ struct handle_key *rules_after = calloc(after->n_rule_msgs + 1, sizeof(struct handle_key));
        _cleanup_free_ bool *chains = calloc(before->n_chains + 1, sizeof(bool));
        _cleanup_free_ bool *sets = calloc(before->n_ifindex_sets + 1, sizeof(bool));
        int r;

        *ret_difference = NULL;
        if (!changes || !rules_after || !chains || !sets)
                return -ENOMEM;
        for (size_t i = 0; i < plan->n_rules; i++) {
                const struct rule_msg *m = &before->rules[plan->rules[i].rule];
                changes[i] = (struct handle_key){.chain = m->chain_index, .handle = m->handle, .index = i};
                if (m->chain_index != SIZE_MAX)
                        chains[m->chain_index] = true;
        }
        for (size_t i = 0; i < after->n_rule_msgs; i++)
                rules_after[i] = (struct handle_key){.chain = after->rules[i].chain_index,
                                                     .handle = after->rules[i].handle, .index = i};
        if (plan->n_rules)
                qsort(changes, plan->n_rules, sizeof(struct handle_key), handle_key_cmp);
        if (after->n_rule_msgs)
                qsort(rules_after, after->n_rule_msgs, sizeof(struct handle_key), handle_key_cmp);
        for (size_t i = 0; i < plan->n_elems; i++)
                sets[plan->elems[i].set] = true;

        /* the replaced rules' new anonymous sets, to compare by contents */
        _cleanup_free_ bool *chains_after = calloc(after->n_chains + 1, sizeof(bool));
        if (!chains_after)
                return -ENOMEM;
        for (size_t c = 0; c < before->n_chains; c++) {
                const struct nft_path *ch = &before->chains[c];
                const struct nft_path *now = chains[c] ? ruleset_chain(after, ch->family, ch->table, ch->chain) : NULL;
                if (now)
                        chains_after[now - after->chains] = true;
        }
        r = ruleset_fetch_anonymous(after, chains_after);
        /* Another program committed between the read-back and this: unproven, not failed (the caller says so). */
        if (r == -EAGAIN)
                return (void) differs(ret_difference, "the ruleset changed again before it could be read back"),
                       -EAGAIN;
        if (r < 0)
                return r;

        for (size_t c = 0; c < before->n_chains; c++)
                if (chains[c] && (r = verify_chain(before, plan, after, c, changes, rules_after, ret_difference)) < 0)
                        return r;
        for (size_t i = 0; i < before->n_ifindex_sets; i++)
                if (sets[i] && (r = verify_set(before, plan, after, i, ret_difference)) < 0)
                        return r;
        return 0;
}

/* SPDX-License-Identifier: GPL-2.0-or-later */
/* twins.c: compares a stale rule, with its stale index replaced by the name it was, to the other rules of its
 * chain as nft renders them in JSON (counters blanked): an equal one is its fresh twin. The same for the elements
 * of a named set or map. */
#include <nftables/libnftables.h>
#include <stdio.h>
#include <string.h>

#include "json-util.h"
#include "log.h"
#include "twins.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct nft_ctx *, nft_ctx_free)

static int nft_json(struct nft_ctx *nft, const char *cmd, json_t **ret) {
        if (nft_run_cmd_from_buffer(nft, cmd) != 0) {
                log_debug("twins: %s: %s", cmd, nft_ctx_get_error_buffer(nft));
                return -EIO;
        }
        json_t *j = json_loads(nft_ctx_get_output_buffer(nft), 0, NULL);
        if (!j)
                return -EBADMSG;
        *ret = j;
        return 0;
}

/* In place: stale index strings become the names they were; counters are blanked. */
static void normalise(json_t *v, const struct findings *f, const struct link_table *links) {
        if (json_is_object(v)) {
                const char *key;
                json_t *child;
                json_object_foreach(v, key, child) {
                        if (streq(key, "counter"))
                                json_object_set_new(v, key, json_null());
                        else
                                normalise(child, f, links);
                }
        } else if (json_is_array(v)) {
                size_t i;
                json_t *child;
                json_array_foreach(v, i, child) {
                        const char *s = json_string_value(child);
                        if (!s) {
                                normalise(child, f, links);
                                continue;
                        }
                        for (size_t k = 0; k < f->n_stale; k++) {
                                char digits[16];
                                snprintf(digits, sizeof(digits), "%u", f->stale[k].ref->ifindex);
                                /* "3" is ambiguous when an interface is named "3": leave it */
                                if (f->stale[k].was[0] && streq(s, digits) && !links_by_name(links, digits)) {
                                        json_array_set_new(v, i, json_string(f->stale[k].was));
                                        break;
                                }
                        }
                }
        }
}

/* Object values are not in arrays: handle "right": "3" and similar. */
static void normalise_values(json_t *v, const struct findings *f, const struct link_table *links) {
        if (json_is_object(v)) {
                const char *key;
                json_t *child;
                json_object_foreach(v, key, child) {
                        const char *s = json_string_value(child);
                        if (s)
                                for (size_t k = 0; k < f->n_stale; k++) {
                                        char digits[16];
                                        snprintf(digits, sizeof(digits), "%u", f->stale[k].ref->ifindex);
                                        if (f->stale[k].was[0] && streq(s, digits) && !links_by_name(links, digits)) {
                                                json_object_set_new(v, key, json_string(f->stale[k].was));
                                                break;
                                        }
                                }
                        else
                                normalise_values(child, f, links);
                }
        } else if (json_is_array(v)) {
                size_t i;
                json_t *child;
                json_array_foreach(v, i, child) normalise_values(child, f, links);
        }
}

static bool rule_is_stale(const struct findings *f, uint8_t family, const char *table, const char *chain,
                          json_int_t handle) {
        for (size_t k = 0; k < f->n_stale; k++) {
                const struct iface_ref *r = f->stale[k].ref;
                if (r->chain && r->family == family && streq(r->table, table) && streq(r->chain, chain) &&
                    (json_int_t) r->handle == handle)
                        return true;
        }
        return false;
}

static int chain_twins(struct nft_ctx *nft, const struct findings *f, const struct link_table *links,
                       const struct iface_ref *ref, json_t *out) {
        char cmd[1024];
        _cleanup_(json_decrefp) json_t *list = NULL;
        snprintf(cmd, sizeof(cmd), "list chain %s %s %s", nfproto_to_string(ref->family), ref->table, ref->chain);
        int r = nft_json(nft, cmd, &list);
        if (r < 0)
                return r;

        json_t *items = json_object_get(list, "nftables"), *item;
        size_t i;
        /* Fresh rules first, normalised, then each stale rule compared against them. */
        _cleanup_(json_decrefp) json_t *fresh = json_array();
        json_array_foreach(items, i, item) {
                json_t *rule = json_object_get(item, "rule");
                json_int_t handle = json_integer_value(json_object_get(rule, "handle"));
                if (!rule || rule_is_stale(f, ref->family, ref->table, ref->chain, handle))
                        continue;
                json_t *expr = json_deep_copy(json_object_get(rule, "expr"));
                normalise(expr, f, links);
                json_array_append_new(fresh, expr);
        }
        json_array_foreach(items, i, item) {
                json_t *rule = json_object_get(item, "rule");
                json_int_t handle = json_integer_value(json_object_get(rule, "handle"));
                if (!rule || !rule_is_stale(f, ref->family, ref->table, ref->chain, handle))
                        continue;
                _cleanup_(json_decrefp) json_t *expr = json_deep_copy(json_object_get(rule, "expr"));
                normalise(expr, f, links);
                normalise_values(expr, f, links);
                size_t k;
                json_t *candidate;
                json_array_foreach(fresh, k, candidate) if (json_equal(expr, candidate)) {
                        if (json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:I, s:s}", "family",
                                                                 nfproto_to_string(ref->family), "table", ref->table,
                                                                 "chain", ref->chain, "handle", handle, "why",
                                                                 "a fresh copy of this rule exists in the chain")) < 0)
                                return -ENOMEM;
                        break;
                }
        }
        return 0;
}

/* A set's element as nft lists it: "tailscale0", {"concat": [...]}, {"elem": {"val": …, "counter": …}}, or for a
 * map [key, data]. The key is what a delete names. */
static json_t *element_key(json_t *e) {
        if (json_is_array(e))
                return element_key(json_array_get(e, 0));
        json_t *wrapped = json_object_get(json_object_get(e, "elem"), "val");
        return wrapped ? wrapped : e;
}

static int set_twins(struct nft_ctx *nft, const struct findings *f, const struct link_table *links,
                     const struct iface_ref *ref, json_t *out) {
        char cmd[1024];
        _cleanup_(json_decrefp) json_t *list = NULL, *fresh = json_array(), *stale = json_array();
        int r;

        if (!fresh || !stale)
                return -ENOMEM;
        /* the reference does not say whether it is a set or a map; nft lists each only under its own word */
        snprintf(cmd, sizeof(cmd), "list set %s %s %s", nfproto_to_string(ref->family), ref->table, ref->set);
        if (nft_json(nft, cmd, &list) < 0) {
                snprintf(cmd, sizeof(cmd), "list map %s %s %s", nfproto_to_string(ref->family), ref->table, ref->set);
                if ((r = nft_json(nft, cmd, &list)) < 0)
                        return r;
        }

        json_t *item, *e;
        size_t i, k;
        json_array_foreach(json_object_get(list, "nftables"), i, item) {
                json_t *set = json_object_get(item, "set") ?: json_object_get(item, "map");
                json_array_foreach(json_object_get(set, "elem"), k, e) {
                        /* Each element twice, counters blanked: as listed, and with stale indexes replaced by the
                         * names they were. One that changes held a stale index. (Wrapped in an array: a bare
                         * string element is replaced in place.) */
                        json_t *listed = json_pack("[O]", e), *named;
                        if (!listed)
                                return -ENOMEM;
                        normalise(listed, &(const struct findings){}, links);
                        named = json_deep_copy(listed);
                        if (!named) {
                                json_decref(listed);
                                return -ENOMEM;
                        }
                        normalise(named, f, links);
                        normalise_values(named, f, links);
                        bool held_stale = !json_equal(named, listed);
                        if (json_array_append_new(held_stale ? stale : fresh, json_pack("[o, o]", named, listed)) < 0)
                                return -ENOMEM;
                }
        }

        json_t *s_item, *f_item;
        json_array_foreach(stale, i, s_item) {
                json_t *named = json_array_get(s_item, 0);
                json_array_foreach(fresh, k, f_item) {
                        if (!json_equal(named, json_array_get(f_item, 0)))
                                continue;
                        json_t *listed = json_array_get(json_array_get(s_item, 1), 0);
                        if (json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:O, s:s}", "family",
                                                                 nfproto_to_string(ref->family), "table", ref->table,
                                                                 "set", ref->set, "element", element_key(listed),
                                                                 "why", "a fresh copy of this element exists in the set")) < 0)
                                return -ENOMEM;
                        break;
                }
        }
        return 0;
}

int twins_find(const struct findings *f, const struct link_table *links, json_t **ret) {
        _cleanup_(nft_ctx_freep) struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);
        _cleanup_(json_decrefp) json_t *out = json_array();
        if (!nft || !out)
                return -ENOMEM;
        nft_ctx_output_set_flags(nft, NFT_CTX_OUTPUT_JSON | NFT_CTX_OUTPUT_HANDLE);
        if (nft_ctx_buffer_output(nft) < 0 || nft_ctx_buffer_error(nft) < 0)
                return -ENOMEM;

        for (size_t k = 0; k < f->n_stale; k++) {
                const struct iface_ref *ref = f->stale[k].ref;
                bool seen = false;
                /* once per chain, once per set */
                for (size_t j = 0; j < k && !seen; j++) {
                        const struct iface_ref *p = f->stale[j].ref;
                        seen = p->family == ref->family && streq(p->table, ref->table) &&
                               (ref->chain ? streq_ptr(p->chain, ref->chain) : streq_ptr(p->set, ref->set));
                }
                if (seen)
                        continue;
                int r = ref->chain ? chain_twins(nft, f, links, ref, out) : set_twins(nft, f, links, ref, out);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(out);
        return 0;
}

int twins_prune(json_t *twins) {
        _cleanup_(nft_ctx_freep) struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);
        _cleanup_(json_decrefp) json_t *cmds = json_array();
        size_t i;
        json_t *t;

        if (!nft || !cmds || nft_ctx_buffer_error(nft) < 0)
                return -ENOMEM;
        json_array_foreach(twins, i, t) {
                json_t *family = json_object_get(t, "family"), *table = json_object_get(t, "table");
                json_t *what = json_object_get(t, "chain")
                                       ? json_pack("{s:{s:O, s:O, s:O, s:O}}", "rule", "family", family, "table",
                                                   table, "chain", json_object_get(t, "chain"), "handle",
                                                   json_object_get(t, "handle"))
                                       : json_pack("{s:{s:O, s:O, s:O, s:[O]}}", "element", "family", family, "table",
                                                   table, "name", json_object_get(t, "set"), "elem",
                                                   json_object_get(t, "element"));
                if (json_array_append_new(cmds, json_pack("{s:o}", "delete", what)) < 0)
                        return -ENOMEM;
        }
        _cleanup_(json_decrefp) json_t *batch = json_pack("{s:O}", "nftables", cmds);
        _cleanup_free_ char *text = batch ? json_dumps(batch, JSON_COMPACT) : NULL;
        if (!text)
                return -ENOMEM;
        /* One buffer is one transaction: all leftovers go, or none. nft reads JSON input when its output is JSON;
         * an index no interface holds is accepted as a number where an interface is expected. */
        nft_ctx_output_set_flags(nft, NFT_CTX_OUTPUT_JSON);
        if (nft_run_cmd_from_buffer(nft, text) != 0)
                return log_error_errno(EIO, "Failed to delete the stale leftovers: %s", nft_ctx_get_error_buffer(nft));
        return 0;
}

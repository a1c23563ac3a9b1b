/* SPDX-License-Identifier: GPL-2.0-or-later */
/* state.c: snapshot and link history as JSON (jansson), written by replace-by-rename, mode 0600. */
#include <jansson.h>
#include <linux/netfilter.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <string.h>

#include "devhooks.h"
#include "fileio.h"
#include "json-util.h"
#include "log.h"
#include "names.h"
#include "state.h"

#define STATE_MAX_SIZE (64u * 1024 * 1024)
/* Enough for a busy host for months: the oldest pairs go first. */
#define HISTORY_MAX_ENTRIES 4096
/* last_seen is refreshed on disk at most this often, so a routine check costs no write. */
#define HISTORY_REFRESH_SECONDS 3600



static int json_write(const char *dir, const char *name, json_t *root) {
        _cleanup_free_ char *text = json_dumps(root, JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        size_t len = strlen(text);
        text[len] = '\n';
        return file_replace(dir, name, text, len + 1);
}

static json_t *link_to_json(const struct link *l) {
        return json_pack("{s:I, s:o, s:o, s:b}", "ifindex", (json_int_t) l->ifindex, "name", json_name(l->name), "kind",
                         json_name(l->kind), "up", l->up);
}


static json_t *hex_json(const struct nl_blob *b) {
        static const char digits[] = "0123456789abcdef";
        _cleanup_free_ char *text = malloc(b->size * 2 + 1);
        if (!text)
                return NULL;
        for (size_t i = 0; i < b->size; i++) {
                text[2 * i] = digits[b->data[i] >> 4];
                text[2 * i + 1] = digits[b->data[i] & 15];
        }
        return json_stringn(text, b->size * 2);
}

static int hex_digit(char c) {
        return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A rule message as the snapshot keeps it: whole, one message, no more than it says. */
static int hex_parse(const char *text, struct nl_blob *ret) {
        size_t len = strlen(text);
        if (len % 2 || len / 2 < sizeof(struct nlmsghdr) || len / 2 > UINT16_MAX)
                return -EBADMSG;
        _cleanup_free_ uint8_t *data = malloc(len / 2);
        if (!data)
                return -ENOMEM;
        for (size_t i = 0; i < len / 2; i++) {
                int hi = hex_digit(text[2 * i]), lo = hex_digit(text[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return -EBADMSG;
                data[i] = (uint8_t) (hi << 4 | lo);
        }
        const struct nlmsghdr *nlh = (const struct nlmsghdr *) data;
        if (nlh->nlmsg_len != len / 2 || !ruleset_msg_readable(nlh))
                return -EBADMSG;
        *ret = (struct nl_blob){.data = TAKE_PTR(data), .size = len / 2};
        return 0;
}

/* A list of messages as hex_json() wrote them, appended to *blobs. */
static int hex_list_parse(json_t *list, struct nl_blob **blobs, size_t *n, size_t *allocated) {
        size_t k;
        json_t *d;
        json_array_foreach(list, k, d) {
                if (GROW(*blobs, *allocated, *n + 1) < 0)
                        return -ENOMEM;
                int r = json_is_string(d) ? hex_parse(json_string_value(d), &(*blobs)[*n]) : -EBADMSG;
                if (r < 0)
                        return r;
                (*n)++;
        }
        return 0;
}

/* One device-bound hook as the snapshot keeps it; detached: devices the kernel took out since (a carried one). */
static json_t *hook_json(const struct device_hook *h, uint64_t handle, const char *const *detached, size_t n_detached) {
        _cleanup_(json_decrefp) json_t *j = json_pack(
                "{s:s, s:o, s:o, s:s, s:I, s:I, s:I, s:o}", "family", nfproto_to_string(h->family), "table",
                json_name(h->table), h->flowtable ? "flowtable" : "chain", json_name(h->name), "hook",
                device_hook_name(h), "hooknum", (json_int_t) h->hooknum, "priority", (json_int_t) h->priority, "flags",
                (json_int_t) h->flags, "devices", json_names((const char *const *) h->devices, h->n_devices));
        if (!j)
                return NULL;
        if ((handle && json_object_set_new(j, "handle", json_integer((json_int_t) handle)) < 0) ||
            (n_detached && json_object_set_new(j, "detached", json_names(detached, n_detached)) < 0))
                return NULL;
        if (h->flowtable)
                return TAKE_PTR(j);
        json_t *msgs = json_array();
        if (json_object_set_new(j, "policy", json_string(h->policy == NF_DROP ? "drop" : "accept")) < 0 ||
            json_object_set_new(j, "type", json_name(h->type)) < 0 ||
            json_object_set_new(j, "rules", json_integer((json_int_t) h->n_rules)) < 0 ||
            json_object_set_new(j, "rule_messages", msgs) < 0)
                return NULL;
        for (size_t k = 0; k < h->n_rules; k++)
                if (json_array_append_new(msgs, hex_json(&h->rules[k])) < 0)
                        return NULL;
        if (h->n_set_msgs == 0)
                return TAKE_PTR(j);
        json_t *sets = json_array();
        if (json_object_set_new(j, "set_messages", sets) < 0)
                return NULL;
        for (size_t k = 0; k < h->n_set_msgs; k++)
                if (json_array_append_new(sets, hex_json(&h->set_msgs[k])) < 0)
                        return NULL;
        return TAKE_PTR(j);
}

int snapshot_write(const char *run_dir, uint64_t now, const struct link_table *links, const struct ruleset *rs,
                   const struct owner_table *owners, const struct unit_invocations *units,
                   const struct hook_finding *lost, size_t n_lost) {
        _cleanup_(json_decrefp) json_t *root = json_object();
        json_t *jl = json_array(), *jr = json_array(), *jo = json_array(), *ju = json_array();

        if (!root || !jl || !jr || !jo || !ju || json_object_set_new(root, "version", json_integer(1)) < 0 ||
            json_object_set_new(root, "units", ju) < 0 ||
            json_object_set_new(root, "taken", json_integer((json_int_t) now)) < 0 ||
            json_object_set_new(root, "links", jl) < 0 || json_object_set_new(root, "references", jr) < 0 ||
            json_object_set_new(root, "owners", jo) < 0)
                return -ENOMEM;

        for (size_t i = 0; i < links->n_links; i++)
                if (json_array_append_new(jl, link_to_json(&links->links[i])) < 0)
                        return -ENOMEM;

        for (size_t i = 0; i < rs->n_refs; i++) {
                const struct iface_ref *ref = &rs->refs[i];
                const struct link *l = links_by_index(links, ref->ifindex);
                json_t *j = json_pack("{s:s, s:o, s:s, s:I, s:I, s:o}", "family", nfproto_to_string(ref->family),
                                      "table", json_name(ref->table), "key", ref_key_to_string(ref->key), "ifindex",
                                      (json_int_t) ref->ifindex, "handle", (json_int_t) ref->handle, "resolves_to",
                                      json_name(l ? l->name : NULL));
                if (!j || (ref->chain && json_object_set_new(j, "chain", json_name(ref->chain)) < 0) ||
                    (ref->set && json_object_set_new(j, "set", json_name(ref->set)) < 0) ||
                    json_array_append_new(jr, j) < 0)
                        return -ENOMEM;
        }

        /* Device-bound base chains and flowtables with their devices now: what a kernel before 6.16 drops for good
         * when a device goes, to compare with (and to re-create from: hook, priority, policy, flags, rules). One
         * that lost a device is kept as it was until it is put back. */
        json_t *jh = json_array();
        if (!jh || json_object_set_new(root, "device_hooks", jh) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < rs->n_hooks; i++) {
                const struct device_hook *h = &rs->hooks[i];
                bool carried = false;
                for (size_t k = 0; k < n_lost && !carried; k++)
                        carried = lost[k].was->family == h->family && lost[k].was->flowtable == h->flowtable &&
                                  streq(lost[k].was->table, h->table) && streq(lost[k].was->name, h->name);
                if (!carried && json_array_append_new(jh, hook_json(h, h->handle, NULL, 0)) < 0)
                        return -ENOMEM;
        }
        for (size_t k = 0; k < n_lost; k++)
                /* the handle of what the kernel left of it (0: it deleted the chain) */
                if (json_array_append_new(jh, hook_json(lost[k].was, lost[k].now ? lost[k].now->handle : 0,
                                                        lost[k].missing, lost[k].n_missing)) < 0)
                        return -ENOMEM;

        for (size_t i = 0; i < owners->n_owners; i++) {
                const struct tun_owner *o = &owners->owners[i];
                json_t *j = json_pack("{s:o, s:i, s:o, s:s?}", "ifname", json_name(o->ifname), "pid", (int) o->pid,
                                      "command", json_name(o->comm), "unit", o->unit);
                if (!j || json_array_append_new(jo, j) < 0)
                        return -ENOMEM;
        }

        for (size_t i = 0; i < units->n_units; i++) {
                const struct unit_invocation *u = &units->units[i];
                json_t *j = json_pack("{s:s, s:s, s:s}", "name", u->name, "invocation_id", u->invocation_id,
                                      "active_state", u->active_state);
                if (!j || json_array_append_new(ju, j) < 0)
                        return -ENOMEM;
        }

        return json_write(run_dir, SNAPSHOT_FILE, root);
}

static int strcmp_null(const char *a, const char *b) {
        if (!a || !b)
                return !!a - !!b;
        return strcmp(a, b);
}

static int snapshot_ref_cmp(const void *a, const void *b) {
        const struct snapshot_ref *x = a, *y = b;
        int c;
        if (x->ifindex != y->ifindex)
                return x->ifindex < y->ifindex ? -1 : 1;
        if (x->handle != y->handle)
                return x->handle < y->handle ? -1 : 1;
        if (x->family != y->family || x->key != y->key)
                return x->family != y->family ? (int) x->family - (int) y->family : (int) x->key - (int) y->key;
        if ((c = strcmp(x->table, y->table)) || (c = strcmp_null(x->chain, y->chain)))
                return c;
        return strcmp_null(x->set, y->set);
}

int snapshot_parse(const char *text, struct snapshot *ret) {
        _cleanup_(json_decrefp) json_t *root = json_loads(text, 0, NULL);
        json_t *links, *owners, *v;
        json_int_t taken;
        size_t i;

        if (!root || json_unpack(root, "{s:I, s:o, s:o}", "taken", &taken, "links", &links, "owners", &owners) < 0 ||
            !json_is_array(links) || !json_is_array(owners))
                return -EBADMSG;

        _cleanup_(snapshot_done) struct snapshot s = {.taken = (uint64_t) taken};
        json_array_foreach(links, i, v) {
                json_int_t ifindex;
                const char *name, *kind = "";
                int up = 0;
                struct link l = {};
                if (json_unpack(v, "{s:I, s:s, s?s, s?b}", "ifindex", &ifindex, "name", &name, "kind", &kind, "up",
                                &up) < 0 ||
                    ifindex <= 0 || ifindex > UINT32_MAX || name_unescape(name, l.name, sizeof(l.name)) < 0 ||
                    name_unescape(kind, l.kind, sizeof(l.kind)) < 0)
                        return -EBADMSG;
                if (GROW(s.links.links, s.links.allocated, s.links.n_links + 1) < 0)
                        return -ENOMEM;
                l.ifindex = (uint32_t) ifindex;
                l.up = up;
                s.links.links[s.links.n_links++] = l;
        }
        links_finish(&s.links);

        json_array_foreach(owners, i, v) {
                const char *ifname, *comm = "";
                json_t *junit = NULL;
                int pid;
                struct tun_owner o = {};
                if (json_unpack(v, "{s:s, s:i, s?s, s?o}", "ifname", &ifname, "pid", &pid, "command", &comm, "unit",
                                &junit) < 0 ||
                    name_unescape(ifname, o.ifname, sizeof(o.ifname)) < 0 ||
                    (junit && !json_is_string(junit) && !json_is_null(junit)))
                        return -EBADMSG;
                /* a command name longer than the kernel's is cut, as the kernel cuts it */
                if (name_unescape(comm, o.comm, sizeof(o.comm)) == -EINVAL)
                        return -EBADMSG;
                const char *unit = json_is_string(junit) ? json_string_value(junit) : NULL;
                if (GROW(s.owners.owners, s.owners.allocated, s.owners.n_owners + 1) < 0)
                        return -ENOMEM;
                o.pid = pid;
                o.unit = unit ? strdup(unit) : NULL;
                s.owners.owners[s.owners.n_owners++] = o;
                if (unit && !o.unit)
                        return -ENOMEM;
        }

        json_t *refs = json_object_get(root, "references");
        json_array_foreach(refs, i, v) {
                const char *family, *table, *key, *chain = NULL, *set = NULL;
                json_t *resolves = NULL;
                json_int_t ifindex, handle = 0;
                if (json_unpack(v, "{s:s, s:s, s:s, s:I, s?I, s?s, s?s, s?o}", "family", &family, "table", &table,
                                "key", &key, "ifindex", &ifindex, "handle", &handle, "chain", &chain, "set", &set,
                                "resolves_to", &resolves) < 0 ||
                    ifindex <= 0 || ifindex > UINT32_MAX || (!chain == !set) ||
                    (resolves && !json_is_null(resolves) && !json_is_string(resolves)))
                        return -EBADMSG;
                if (GROW(s.refs, s.allocated_refs, s.n_refs + 1) < 0)
                        return -ENOMEM;
                struct snapshot_ref *r = &s.refs[s.n_refs++];
                *r = (struct snapshot_ref){.family = nfproto_from_string(family), .handle = (uint64_t) handle,
                                           .key = ref_key_from_string(key), .ifindex = (uint32_t) ifindex};
                if ((json_is_string(resolves) &&
                     name_unescape(json_string_value(resolves), r->resolves_to, sizeof(r->resolves_to)) < 0) ||
                    name_unescape_dup(table, &r->table) == -EINVAL ||
                    (chain && name_unescape_dup(chain, &r->chain) == -EINVAL) ||
                    (set && name_unescape_dup(set, &r->set) == -EINVAL))
                        return -EBADMSG;
                if (!r->table || (chain && !r->chain) || (set && !r->set))
                        return -ENOMEM;
        }

        if (s.n_refs > 1)
                qsort(s.refs, s.n_refs, sizeof(struct snapshot_ref), snapshot_ref_cmp);

        json_t *hooks = json_object_get(root, "device_hooks");
        json_array_foreach(hooks, i, v) {
                const char *family, *table, *chain = NULL, *flowtable = NULL, *policy = "accept", *type = NULL;
                json_int_t hooknum, priority, flags = 0, handle = 0;
                json_t *devices, *msgs = NULL, *set_msgs = NULL, *detached = NULL;
                if (json_unpack(v, "{s:s, s:s, s?s, s?s, s:I, s:I, s?I, s?s, s?s, s:o, s?o, s?o, s?o, s?I}",
                                "family", &family, "table", &table, "chain", &chain, "flowtable", &flowtable,
                                "hooknum", &hooknum, "priority", &priority, "flags", &flags, "policy", &policy,
                                "type", &type, "devices", &devices, "rule_messages", &msgs, "set_messages",
                                &set_msgs, "detached", &detached, "handle", &handle) < 0 ||
                    handle < 0 ||
                    !chain == !flowtable || !json_is_array(devices) || hooknum < 0 || hooknum > UINT32_MAX ||
                    (detached && !json_is_array(detached)) ||
                    priority < INT32_MIN || priority > INT32_MAX || flags < 0 || flags > UINT32_MAX ||
                    (msgs && !json_is_array(msgs)) || (set_msgs && !json_is_array(set_msgs)))
                        return -EBADMSG;
                if (GROW(s.hooks, s.allocated_hooks, s.n_hooks + 1) < 0)
                        return -ENOMEM;
                struct device_hook *h = &s.hooks[s.n_hooks++];
                *h = (struct device_hook){.family = nfproto_from_string(family), .flowtable = !!flowtable,
                                          .hooknum = (uint32_t) hooknum, .priority = (int32_t) priority,
                                          .flags = (uint32_t) flags, .handle = (uint64_t) handle,
                                          .policy = flowtable ? 0 : streq(policy, "drop") ? NF_DROP : NF_ACCEPT};
                if (name_unescape_dup(table, &h->table) == -EINVAL ||
                    name_unescape_dup(chain ? chain : flowtable, &h->name) == -EINVAL ||
                    (type && name_unescape_dup(type, &h->type) == -EINVAL))
                        return -EBADMSG;
                if (!h->table || !h->name || (type && !h->type))
                        return -ENOMEM;
                int r = json_names_parse(devices, &h->devices, &h->n_devices);
                if (r < 0 || (r = json_names_parse(detached, &h->detached, &h->n_detached)) < 0)
                        return r;
                if ((r = hex_list_parse(msgs, &h->rules, &h->n_rules, &h->allocated_rules)) < 0 ||
                    (r = hex_list_parse(set_msgs, &h->set_msgs, &h->n_set_msgs, &h->allocated_set_msgs)) < 0)
                        return r;
        }

        json_t *units = json_object_get(root, "units");
        json_array_foreach(units, i, v) {
                const char *name, *id, *active;
                if (json_unpack(v, "{s:s, s:s, s:s}", "name", &name, "invocation_id", &id, "active_state", &active) < 0 ||
                    strlen(id) > 32)
                        return -EBADMSG;
                if (GROW(s.units.units, s.units_allocated, s.units.n_units + 1) < 0)
                        return -ENOMEM;
                struct unit_invocation *u = &s.units.units[s.units.n_units++];
                *u = (struct unit_invocation){.name = strdup(name), .active_state = strdup(active)};
                snprintf(u->invocation_id, sizeof(u->invocation_id), "%s", id);
                if (!u->name || !u->active_state)
                        return -ENOMEM;
        }

        *ret = s;
        s = (struct snapshot){};
        return 0;
}

int snapshot_read(const char *run_dir, struct snapshot *ret) {
        _cleanup_free_ char *text = NULL;
        int r = file_read(run_dir, SNAPSHOT_FILE, STATE_MAX_SIZE, &text, NULL);
        if (r < 0)
                return r;
        return snapshot_parse(text, ret);
}

const char *snapshot_resolved(const struct snapshot *s, const struct iface_ref *ref) {
        struct snapshot_ref key = {.family = ref->family, .table = ref->table, .chain = ref->chain, .set = ref->set,
                                   .handle = ref->handle, .key = ref->key, .ifindex = ref->ifindex};
        const struct snapshot_ref *r =
                s->n_refs ? bsearch(&key, s->refs, s->n_refs, sizeof(struct snapshot_ref), snapshot_ref_cmp) : NULL;
        return r && r->resolves_to[0] ? r->resolves_to : NULL;
}

void snapshot_done(struct snapshot *s) {
        for (size_t i = 0; i < s->n_refs; i++) {
                free(s->refs[i].table);
                free(s->refs[i].chain);
                free(s->refs[i].set);
        }
        free(s->refs);
        for (size_t i = 0; i < s->n_hooks; i++)
                device_hook_done(&s->hooks[i]);
        free(s->hooks);
        link_table_done(&s->links);
        owner_table_done(&s->owners);
        unit_invocations_done(&s->units);
}

int history_parse(const char *text, struct link_history *ret) {
        _cleanup_(json_decrefp) json_t *root = json_loads(text, 0, NULL);
        json_t *links, *v;
        size_t i;

        if (!root || json_unpack(root, "{s:o}", "links", &links) < 0 || !json_is_array(links))
                return -EBADMSG;

        _cleanup_(link_history_done) struct link_history h = {};
        json_array_foreach(links, i, v) {
                const char *name;
                json_int_t ifindex, first, last;
                if (json_unpack(v, "{s:s, s:I, s:I, s:I}", "name", &name, "ifindex", &ifindex, "first_seen", &first,
                                "last_seen", &last) < 0 ||
                    ifindex <= 0 || ifindex > UINT32_MAX)
                        return -EBADMSG;
                struct history_entry e = {.ifindex = (uint32_t) ifindex, .first_seen = (uint64_t) first,
                                          .last_seen = (uint64_t) last};
                if (name_unescape(name, e.name, sizeof(e.name)) < 0)
                        return -EBADMSG;
                if (GROW(h.entries, h.allocated, h.n_entries + 1) < 0)
                        return -ENOMEM;
                h.entries[h.n_entries++] = e;
        }
        *ret = h;
        h = (struct link_history){};
        return 0;
}

int history_read(const char *state_dir, struct link_history *ret) {
        _cleanup_free_ char *text = NULL;
        int r = file_read(state_dir, HISTORY_FILE, STATE_MAX_SIZE, &text, NULL);
        if (r == -ENOENT) {
                *ret = (struct link_history){};
                return 0;
        }
        if (r < 0)
                return r;
        return history_parse(text, ret);
}

int history_note_links(struct link_history *h, const struct link_table *links, uint64_t now) {
        for (size_t i = 0; i < links->n_links; i++) {
                const struct link *l = &links->links[i];
                struct history_entry *e = NULL;
                for (size_t k = 0; k < h->n_entries; k++)
                        if (h->entries[k].ifindex == l->ifindex && streq(h->entries[k].name, l->name)) {
                                e = &h->entries[k];
                                break;
                        }
                if (e) {
                        if (now >= e->last_seen + HISTORY_REFRESH_SECONDS)
                                h->dirty = true;
                        if (now > e->last_seen)
                                e->last_seen = now;
                        continue;
                }
                if (GROW(h->entries, h->allocated, h->n_entries + 1) < 0)
                        return -ENOMEM;
                e = &h->entries[h->n_entries++];
                *e = (struct history_entry){.ifindex = l->ifindex, .first_seen = now, .last_seen = now};
                snprintf(e->name, sizeof(e->name), "%s", l->name);
                h->dirty = true;
        }
        return 0;
}

const char *history_name_for_index(const struct link_history *h, uint32_t ifindex) {
        const struct history_entry *best = NULL;
        for (size_t k = 0; k < h->n_entries; k++)
                if (h->entries[k].ifindex == ifindex && (!best || h->entries[k].last_seen > best->last_seen))
                        best = &h->entries[k];
        return best ? best->name : NULL;
}

static int entry_newest_first(const void *a, const void *b) {
        const struct history_entry *x = a, *y = b;
        return (x->last_seen < y->last_seen) - (x->last_seen > y->last_seen);
}

int history_write(const char *state_dir, struct link_history *h) {
        if (h->n_entries > HISTORY_MAX_ENTRIES) {
                qsort(h->entries, h->n_entries, sizeof(struct history_entry), entry_newest_first);
                h->n_entries = HISTORY_MAX_ENTRIES;
        }

        _cleanup_(json_decrefp) json_t *root = json_object();
        json_t *links = json_array();
        if (!root || !links || json_object_set_new(root, "version", json_integer(1)) < 0 ||
            json_object_set_new(root, "links", links) < 0)
                return -ENOMEM;
        for (size_t k = 0; k < h->n_entries; k++) {
                const struct history_entry *e = &h->entries[k];
                if (json_array_append_new(links, json_pack("{s:o, s:I, s:I, s:I}", "name", json_name(e->name), "ifindex",
                                                           (json_int_t) e->ifindex, "first_seen",
                                                           (json_int_t) e->first_seen, "last_seen",
                                                           (json_int_t) e->last_seen)) < 0)
                        return -ENOMEM;
        }
        int r = json_write(state_dir, HISTORY_FILE, root);
        if (r >= 0)
                h->dirty = false;
        return r;
}

void link_history_done(struct link_history *h) {
        free(h->entries);
        *h = (struct link_history){};
}

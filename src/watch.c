/* SPDX-License-Identifier: GPL-2.0-or-later */
/* watch.c: the watcher's loop: its subscriptions, when it looks, and its rate limit. What a look finds and does
 * is the pipeline's business; this file only decides when to call it. */
#include <arpa/inet.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/rtnetlink.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <time.h>

#include "json-util.h"
#include "links.h"
#include "log.h"
#include "names.h"
#include "netlink.h"
#include "pipeline.h"
#include "units.h"
#include "watch.h"

#define USEC_PER_MSEC 1000ULL
#define USEC_PER_SEC 1000000ULL
#define REPAIR_WINDOW_USEC (60 * USEC_PER_SEC)
/* Timer slack: sd-event's default (250 ms) would be most of the latency the watcher is for. */
#define TIMER_ACCURACY_USEC USEC_PER_MSEC
/* One read of either socket. Notifications are one message per datagram, a link's at most a few KiB. */
#define RECV_BUFFER_SIZE (64 * 1024)
/* The kernel drops events beyond the socket's buffer (then we look anyway); a ruleset load is a burst. */
#define SOCKET_RCVBUF (1024 * 1024)

/* An interface the ruleset holds by index, as of the last look. */
struct watched_link {
        uint32_t ifindex;
        char name[IFNAMSIZ];
};

/* A watched name that came back under another index since the last look. */
struct seen_link {
        char name[IFNAMSIZ];
        uint32_t ifindex;
        bool up;
};

/* The watcher's repairs of one table within the last minute, oldest first (monotonic µs). */
struct table_repairs {
        char *family;
        char *table;
        uint64_t *at;
        size_t n, allocated;
};

struct watcher {
        const struct watch_options *opt;
        sd_event *event;
        sd_event_source *rtnl_source, *nft_source, *debounce, *backoff;
        struct mnl_socket *rtnl, *nft;
        sd_bus *bus;
        uint8_t *buf;

        /* as of the last look */
        struct watched_link *watched;
        size_t n_watched, allocated_watched;
        char **owner_units;
        size_t n_owner_units;
        uint32_t genid; /* the generation it read: a later one is a change someone else made */
        bool have_genid;

        /* since the last look */
        struct seen_link *seen;
        size_t n_seen, allocated_seen;
        json_t *units_done; /* owner units whose job finished */
        bool ruleset_changed, events_lost;
        uint64_t first_event_usec; /* CLOCK_MONOTONIC; 0: nothing pending */
        double first_event_wall;

        struct table_repairs *repairs;
        size_t n_repairs, allocated_repairs;
        uint64_t backoff_until;
};

static uint64_t now_usec(clockid_t clock) {
        struct timespec ts;
        clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

/* ---- the rate limit ---- */

static struct table_repairs *repairs_find(struct watcher *w, const char *family, const char *table, bool create) {
        for (size_t i = 0; i < w->n_repairs; i++)
                if (streq(w->repairs[i].family, family) && streq(w->repairs[i].table, table))
                        return &w->repairs[i];
        if (!create || GROW(w->repairs, w->allocated_repairs, w->n_repairs + 1) < 0)
                return NULL;
        struct table_repairs *t = &w->repairs[w->n_repairs];
        *t = (struct table_repairs){.family = strdup(family), .table = strdup(table)};
        if (!t->family || !t->table) {
                free(t->family);
                free(t->table);
                return NULL;
        }
        w->n_repairs++;
        return t;
}

/* Forgets repairs older than the window; returns how many are left in it. */
static size_t repairs_recent(struct table_repairs *t, uint64_t now) {
        size_t old = 0;
        while (old < t->n && t->at[old] + REPAIR_WINDOW_USEC <= now)
                old++;
        memmove(t->at, t->at + old, (t->n - old) * sizeof(*t->at));
        t->n -= old;
        return t->n;
}

static bool watcher_hold_table(void *userdata, uint8_t family, const char *table) {
        struct watcher *w = userdata;
        unsigned limit = w->opt->config->watch_repair_limit;
        struct table_repairs *t = repairs_find(w, nfproto_to_string(family), table, false);
        return limit > 0 && t && repairs_recent(t, now_usec(CLOCK_MONOTONIC)) >= limit;
}

/* Each table this look reloaded or rebound counts against its limit, failed attempts too: a failing repair
 * repeated is the storm the limit is for. */
static void repairs_count(struct watcher *w, const struct reconcile_result *rr, uint64_t now) {
        for (size_t i = 0; i < rr->n_actions; i++) {
                const struct action *a = &rr->actions[i];
                bool repaired = a->reload == RELOAD_DONE || a->reload == RELOAD_FAILED || a->rebind == REBIND_DONE ||
                                a->rebind == REBIND_FAILED;
                struct table_repairs *t = repaired ? repairs_find(w, a->plan.family, a->plan.table, true) : NULL;
                if (!t || GROW(t->at, t->allocated, t->n + 1) < 0)
                        continue;
                t->at[t->n++] = now;
        }
}

/* When the first table held back may be repaired again: its oldest repair in the window leaves it. */
static uint64_t repairs_free_at(struct watcher *w, uint64_t now) {
        unsigned limit = w->opt->config->watch_repair_limit;
        uint64_t at = UINT64_MAX;
        for (size_t i = 0; limit > 0 && i < w->n_repairs; i++) {
                struct table_repairs *t = &w->repairs[i];
                if (repairs_recent(t, now) >= limit)
                        at = MIN(at, t->at[t->n - limit] + REPAIR_WINDOW_USEC);
        }
        return at;
}

static void repairs_free(struct watcher *w) {
        for (size_t i = 0; i < w->n_repairs; i++) {
                free(w->repairs[i].family);
                free(w->repairs[i].table);
                free(w->repairs[i].at);
        }
        free(w->repairs);
        w->repairs = NULL;
        w->n_repairs = w->allocated_repairs = 0;
}

/* ---- what the ruleset holds ---- */

static const struct watched_link *watched_by_name(const struct watcher *w, const char *name) {
        for (size_t i = 0; i < w->n_watched; i++)
                if (streq(w->watched[i].name, name))
                        return &w->watched[i];
        return NULL;
}

static bool watched_has(const struct watcher *w, uint32_t ifindex, const char *name) {
        for (size_t i = 0; i < w->n_watched; i++)
                if (w->watched[i].ifindex == ifindex && streq(w->watched[i].name, name))
                        return true;
        return false;
}

static void watched_add(struct watcher *w, uint32_t ifindex, const char *name) {
        if (!name || !name[0] || watched_has(w, ifindex, name) ||
            GROW(w->watched, w->allocated_watched, w->n_watched + 1) < 0)
                return;
        struct watched_link *l = &w->watched[w->n_watched++];
        l->ifindex = ifindex;
        snprintf(l->name, sizeof(l->name), "%s", name);
}

/* What a look read: every index the ruleset holds with the name it resolves to now, or resolved to (a stale
 * reference to an interface that is gone: its return is what to look for); and the units that own them. */
static void watched_update(struct watcher *w, const struct observation *o, const struct findings *f,
                           const struct snapshot *before) {
        w->n_watched = 0;
        for (size_t i = 0; i < o->ruleset.n_refs; i++) {
                const struct link *l = links_by_index(&o->links, o->ruleset.refs[i].ifindex);
                if (l)
                        watched_add(w, l->ifindex, l->name);
        }
        for (size_t k = 0; f && k < f->n_stale; k++)
                watched_add(w, f->stale[k].ref->ifindex, f->stale[k].was);
        /* the devices of device-bound chains and flowtables, where the kernel does not hook them again by itself;
         * one they lost that is gone is watched under index 0: whatever index it comes back with */
        if (!(o->kernel.known && o->kernel.reattaches)) {
                for (size_t i = 0; i < o->ruleset.n_hooks; i++)
                        for (size_t k = 0; k < o->ruleset.hooks[i].n_devices; k++) {
                                const struct link *l = links_by_name(&o->links, o->ruleset.hooks[i].devices[k]);
                                if (l)
                                        watched_add(w, l->ifindex, l->name);
                        }
                for (size_t k = 0; f && k < f->n_hooks; k++)
                        for (size_t d = f->hooks[k].n_back; d < f->hooks[k].n_missing; d++)
                                watched_add(w, 0, f->hooks[k].missing[d]);
        }
        w->genid = o->ruleset.genid;
        w->have_genid = true;

        const struct owner_table *owners = o->owners.n_owners ? &o->owners : before ? &before->owners : NULL;
        for (size_t i = 0; i < w->n_owner_units; i++)
                free(w->owner_units[i]);
        w->n_owner_units = 0;
        if (!owners || !owners->n_owners)
                return;
        char **units = reallocarray(w->owner_units, owners->n_owners, sizeof(char *));
        if (!units)
                return;
        w->owner_units = units;
        for (size_t i = 0; i < owners->n_owners; i++)
                if (owners->owners[i].unit && (units[w->n_owner_units] = strdup(owners->owners[i].unit)))
                        w->n_owner_units++;
}

static bool owner_unit(const struct watcher *w, const char *unit) {
        for (size_t i = 0; i < w->n_owner_units; i++)
                if (streq(w->owner_units[i], unit))
                        return true;
        return false;
}

/* ---- events ---- */

static void arm(struct watcher *w, uint64_t delay_usec) {
        if (!w->first_event_usec) {
                w->first_event_usec = now_usec(CLOCK_MONOTONIC);
                w->first_event_wall = (double) now_usec(CLOCK_REALTIME) / 1e6;
        }
        if (sd_event_source_set_time_relative(w->debounce, delay_usec) < 0 ||
            sd_event_source_set_enabled(w->debounce, SD_EVENT_ONESHOT) < 0)
                log_warning("watch: failed to arm the debounce timer.");
}

static void arm_debounce(struct watcher *w) {
        arm(w, (uint64_t) w->opt->config->watch_debounce_ms * USEC_PER_MSEC);
}

static void seen_note(struct watcher *w, const struct link *l) {
        struct seen_link *s = NULL;
        for (size_t i = 0; i < w->n_seen && !s; i++)
                if (streq(w->seen[i].name, l->name))
                        s = &w->seen[i];
        if (!s) {
                if (GROW(w->seen, w->allocated_seen, w->n_seen + 1) < 0)
                        return;
                s = &w->seen[w->n_seen++];
                snprintf(s->name, sizeof(s->name), "%s", l->name);
        }
        s->ifindex = l->ifindex;
        s->up = l->up;
}

static void link_event(struct watcher *w, const struct nlmsghdr *nlh) {
        _cleanup_(link_table_done) struct link_table one = {};
        if (nlh->nlmsg_type != RTM_NEWLINK || links_parse_msg(&one, nlh) < 0 || one.n_links != 1)
                return;
        const struct link *l = &one.links[0];
        const struct watched_link *held = watched_by_name(w, l->name);
        if (!held || held->ifindex == l->ifindex)
                return;
        log_debug("watch: %s is index %u now (the ruleset holds %u)%s", l->name, l->ifindex, held->ifindex,
                  l->up ? "" : ", not up yet");
        seen_note(w, l);
        arm_debounce(w);
}

/* Reads everything queued on a subscription. Events the kernel dropped (the socket's buffer was full) set *lost:
 * the look then goes by what is, not by what was seen. */
static int drain(struct watcher *w, int fd, void (*event)(struct watcher *w, const struct nlmsghdr *nlh), bool *lost,
                 const char *what) {
        for (;;) {
                ssize_t len = recv(fd, w->buf, RECV_BUFFER_SIZE, MSG_DONTWAIT);
                if (len < 0 && errno == EINTR)
                        continue;
                if (len < 0 && errno == EAGAIN)
                        return 0;
                if (len < 0 && errno == ENOBUFS) {
                        log_debug("watch: %s were lost (socket buffer full); looking anyway", what);
                        *lost = true;
                        arm_debounce(w);
                        continue;
                }
                if (len < 0)
                        return log_error_errno(errno, "watch: failed to read %s: %m", what);
                const struct nlmsghdr *nlh;
                size_t off;
                NLMSG_FOREACH_IN(nlh, w->buf, (size_t) len, off)
                        event(w, nlh);
        }
}

static int on_rtnl(sd_event_source *s _unused_, int fd, uint32_t revents _unused_, void *userdata) {
        struct watcher *w = userdata;
        return drain(w, fd, link_event, &w->events_lost, "link events");
}

static int gen_attr_cb(const struct nlattr *a, void *data) {
        if (mnl_attr_get_type(a) == NFTA_GEN_ID && mnl_attr_validate(a, MNL_TYPE_U32) >= 0)
                *(const struct nlattr **) data = a;
        return MNL_CB_OK;
}

/* Every nf_tables transaction ends with NEWGEN: one that is not the generation the last look read is a change
 * made since (ours are read back, so they are not). */
static void nft_event(struct watcher *w, const struct nlmsghdr *nlh) {
        const struct nlattr *gen = NULL;
        if (NFNL_SUBSYS_ID(nlh->nlmsg_type) != NFNL_SUBSYS_NFTABLES || NFNL_MSG_TYPE(nlh->nlmsg_type) != NFT_MSG_NEWGEN ||
            nlh->nlmsg_len < mnl_nlmsg_size(sizeof(struct nfgenmsg)) ||
            mnl_attr_parse(nlh, sizeof(struct nfgenmsg), gen_attr_cb, &gen) < 0 || !gen)
                return;
        uint32_t genid = ntohl(mnl_attr_get_u32(gen));
        if (w->have_genid && (int32_t) (genid - w->genid) <= 0)
                return;
        log_debug("watch: the ruleset is at generation %u (last read at %u)", genid, w->genid);
        w->ruleset_changed = true;
        arm_debounce(w);
}

static int on_nft(sd_event_source *s _unused_, int fd, uint32_t revents _unused_, void *userdata) {
        struct watcher *w = userdata;
        return drain(w, fd, nft_event, &w->ruleset_changed, "ruleset events");
}

static int on_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *error _unused_) {
        struct watcher *w = userdata;
        const char *job, *unit, *result;
        uint32_t id;
        if (sd_bus_message_read(m, "uoss", &id, &job, &unit, &result) < 0 || !owner_unit(w, unit))
                return 0;
        log_debug("watch: job %u of %s finished: %s", id, unit, result);
        bool known = false;
        size_t i;
        json_t *v;
        json_array_foreach(w->units_done, i, v) known = known || streq(json_string_value(v), unit);
        if (!known)
                (void) json_array_append_new(w->units_done, json_string(unit));
        arm_debounce(w);
        return 0;
}

/* ---- looking ---- */

/* What made this look happen, for the record. */
static json_t *cause_json(const struct watcher *w, const char *why) {
        json_t *ifaces = json_array();
        for (size_t i = 0; ifaces && i < w->n_seen; i++)
                json_array_append_new(ifaces, json_pack("{s:o, s:I, s:b}", "name", json_name(w->seen[i].name),
                                                        "ifindex", (json_int_t) w->seen[i].ifindex, "up",
                                                        w->seen[i].up));
        const char *event = why                             ? why
                            : w->n_seen                     ? "link"
                            : json_array_size(w->units_done) ? "unit"
                            : w->events_lost                ? "events-lost"
                                                            : "ruleset";
        json_t *cause = json_pack("{s:s, s:o?, s:o?, s:f}", "event", event, "interfaces", ifaces, "units",
                                  json_array_size(w->units_done) ? json_copy(w->units_done) : NULL, "debounce_seconds",
                                  (double) w->opt->config->watch_debounce_ms / 1e3);
        if (cause && w->first_event_usec && json_object_set_new(cause, "first_event", json_real(w->first_event_wall)) < 0)
                return json_decref(cause), NULL;
        return cause;
}

static void pending_clear(struct watcher *w) {
        w->n_seen = 0;
        json_array_clear(w->units_done);
        w->ruleset_changed = w->events_lost = false;
        w->first_event_usec = 0;
}

static struct pipeline_options look_options(struct watcher *w) {
        uint64_t budget = (uint64_t) w->opt->config->time_budget_ms * USEC_PER_MSEC, watchdog = 0;
        /* a look must end well before systemd's watchdog would kill the watcher for it */
        if (sd_watchdog_enabled(false, &watchdog) > 0)
                budget = MIN(budget, watchdog / 2);
        return (struct pipeline_options){
                .run_dir = w->opt->run_dir,
                .state_dir = w->opt->state_dir,
                .config = w->opt->config,
                .via = "watch",
                .lazy_owners = true,
                .record_only_repairs = true,
                .deadline_usec = now_usec(CLOCK_MONOTONIC) + budget,
                .hold_table = watcher_hold_table,
                /* while backing off, the held tables have been said: other tables are still repaired */
                .quiet_held = w->backoff_until > now_usec(CLOCK_MONOTONIC),
                .hold_userdata = w,
                .hold_why = "Reconcile-After-Upgrade::Watch-Repair-Limit reached: repaired that often in the last "
                            "minute; backing off",
        };
}

static void log_run(const struct pipeline_result *res) {
        for (size_t i = 0; i < res->n_notes; i++)
                log_full(res->notes[i].level, "watch: %s", res->notes[i].text);
        if (res->problem)
                log_warning("watch: %s", res->problem);
}

static void backoff_arm(struct watcher *w, uint64_t now) {
        uint64_t at = repairs_free_at(w, now);
        if (at == UINT64_MAX)
                return;
        w->backoff_until = at;
        log_warning("watch: Watch-Repair-Limit (%u per table per minute) reached: not repairing that table for %.0f s.",
                    w->opt->config->watch_repair_limit, (double) (at - now) / 1e6);
        if (sd_event_source_set_time(w->backoff, at) < 0 || sd_event_source_set_enabled(w->backoff, SD_EVENT_ONESHOT) < 0)
                log_warning("watch: failed to arm the back-off timer.");
}

static void watcher_look(struct watcher *w, const char *why) {
        _cleanup_(json_decrefp) json_t *cause = cause_json(w, why);
        _cleanup_(pipeline_result_done) struct pipeline_result res = {};
        bool renew = w->ruleset_changed || w->events_lost || !w->have_genid;
        struct pipeline_options o = look_options(w);
        int r;

        pending_clear(w);
        o.cause = cause;
        r = pipeline_run(&o, JOB_RECONCILE, &res);
        log_run(&res);
        if (r < 0)
                return;
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        if (res.record) {
                _cleanup_free_ char *line = record_one_line(res.record);
                const char *what = line ? line : "?";
                /* the line is apt's, which names us first; the log says it already. The journal has the record
                 * itself: this is for -v. */
                if (strncmp(what, "reconcile-after-upgrade: ", 25) == 0)
                        what += 25;
                log_info("watch: %s", what);
                repairs_count(w, &res.res, now);
                if (json_array_size(res.held) && w->backoff_until <= now)
                        backoff_arm(w, now);
        }
        const struct snapshot *before = res.view.have_snapshot ? &res.view.before : NULL;
        if (res.verified)
                watched_update(w, &res.again, &res.left, before);
        else
                watched_update(w, &res.view.now, &res.view.findings, before);

        /* A ruleset someone changed, and nothing stale in it: the baseline the hooks and the next look compare
         * against. */
        if (renew && findings_stale(&res.view.findings) == 0 && !res.verified) {
                _cleanup_(pipeline_result_done) struct pipeline_result snap = {};
                o.cause = NULL;
                r = pipeline_run(&o, JOB_SNAPSHOT, &snap);
                log_run(&snap);
                if (r >= 0)
                        watched_update(w, &snap.view.now, NULL, NULL);
        }
        (void) sd_notifyf(false, "STATUS=Watching %zu interface(s) the ruleset holds by index.", w->n_watched);
        /* what a look allocated is given back: the watcher lives for the uptime */
        malloc_trim(0);
}

static bool seen_down(const struct watcher *w) {
        for (size_t i = 0; i < w->n_seen; i++)
                if (!w->seen[i].up)
                        return true;
        return false;
}

static int on_debounce(sd_event_source *s _unused_, uint64_t usec _unused_, void *userdata) {
        struct watcher *w = userdata;
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        /* A daemon brings its interface up a moment after creating it: its NEWLINK with IFF_UP re-arms. */
        uint64_t up_by = w->first_event_usec + (uint64_t) w->opt->config->interface_wait_ms * USEC_PER_MSEC;
        if (seen_down(w) && now < up_by) {
                (void) sd_event_source_set_time(w->debounce, up_by);
                (void) sd_event_source_set_enabled(w->debounce, SD_EVENT_ONESHOT);
                return 0;
        }
        watcher_look(w, NULL);
        return 0;
}

static int on_backoff(sd_event_source *s _unused_, uint64_t usec _unused_, void *userdata) {
        struct watcher *w = userdata;
        w->backoff_until = 0;
        watcher_look(w, "backoff-over");
        return 0;
}

/* ---- subscriptions ---- */

static int socket_subscribe(int bus, unsigned group, struct mnl_socket **ret) {
        _cleanup_(mnl_socket_closep) struct mnl_socket *nl = mnl_socket_open2(bus, SOCK_CLOEXEC | SOCK_NONBLOCK);
        int size = SOCKET_RCVBUF;
        if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0 ||
            mnl_socket_setsockopt(nl, NETLINK_ADD_MEMBERSHIP, &group, sizeof(group)) < 0)
                return negative_errno();
        /* beyond rmem_max with CAP_NET_ADMIN; the default is enough when that is refused */
        if (setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
                (void) setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
        *ret = TAKE_PTR(nl);
        return 0;
}

/* The system bus is optional: without it (a container without D-Bus, a hung bus) link events still drive the
 * watcher. Asynchronous throughout, so a bus that does not answer never blocks the loop. */
static void bus_subscribe(struct watcher *w) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;
        if (systemd_running() < 0)
                return;
        if ((r = sd_bus_open_system(&bus)) < 0 ||
            (r = sd_bus_match_signal_async(bus, NULL, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                           "org.freedesktop.systemd1.Manager", "JobRemoved", on_job_removed, NULL,
                                           w)) < 0 ||
            (r = sd_bus_call_method_async(bus, NULL, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                          "org.freedesktop.systemd1.Manager", "Subscribe", NULL, NULL, NULL)) < 0 ||
            (r = sd_bus_attach_event(bus, w->event, SD_EVENT_PRIORITY_NORMAL)) < 0) {
                log_warning_errno(r, "watch: the system bus is not usable (%m): following interfaces only.");
                return;
        }
        w->bus = TAKE_PTR(bus);
}

static void unsubscribe(struct watcher *w) {
        w->rtnl_source = sd_event_source_disable_unref(w->rtnl_source);
        w->nft_source = sd_event_source_disable_unref(w->nft_source);
        if (w->rtnl)
                mnl_socket_close(TAKE_PTR(w->rtnl));
        if (w->nft)
                mnl_socket_close(TAKE_PTR(w->nft));
        if (w->bus) {
                sd_bus_detach_event(w->bus);
                w->bus = sd_bus_flush_close_unref(w->bus);
        }
        (void) sd_event_source_set_enabled(w->debounce, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(w->backoff, SD_EVENT_OFF);
        w->backoff_until = 0;
        pending_clear(w);
}

/* Subscribe first, then look: whatever happens in between is seen by one or the other. */
static int subscribe(struct watcher *w) {
        int r;
        if ((r = socket_subscribe(NETLINK_ROUTE, RTNLGRP_LINK, &w->rtnl)) < 0)
                return log_error_errno(r, "watch: failed to subscribe to link events: %m");
        if ((r = socket_subscribe(NETLINK_NETFILTER, NFNLGRP_NFTABLES, &w->nft)) < 0)
                return log_error_errno(r, "watch: failed to subscribe to nf_tables events: %m");
        if ((r = sd_event_add_io(w->event, &w->rtnl_source, mnl_socket_get_fd(w->rtnl), EPOLLIN, on_rtnl, w)) < 0 ||
            (r = sd_event_add_io(w->event, &w->nft_source, mnl_socket_get_fd(w->nft), EPOLLIN, on_nft, w)) < 0)
                return log_error_errno(r, "watch: failed to watch the netlink sockets: %m");
        bus_subscribe(w);
        return 0;
}

static int start(struct watcher *w, const char *why) {
        if (!w->opt->config->watch) {
                (void) sd_notify(false, "READY=1\nSTATUS=Idle: Reconcile-After-Upgrade::Watch is false.");
                log_notice("watch: idle (Reconcile-After-Upgrade::Watch is false).");
                return 0;
        }
        int r = subscribe(w);
        if (r < 0)
                return r;
        watcher_look(w, why);
        (void) sd_notify(false, "READY=1");
        log_notice("watch: watching %zu interface(s) the ruleset holds by index.", w->n_watched);
        return 0;
}

static int on_sighup(sd_event_source *s _unused_, const struct signalfd_siginfo *si _unused_, void *userdata) {
        struct watcher *w = userdata;
        struct config fresh;
        (void) sd_notify(false, "RELOADING=1\nSTATUS=Reloading the configuration.");
        if (config_load(w->opt->config_file, &fresh) < 0) {
                log_warning("watch: keeping the configuration in force.");
                config_done(&fresh);
        } else {
                config_done(w->opt->config);
                *w->opt->config = fresh;
        }
        log_notice("watch: configuration reloaded.");
        unsubscribe(w);
        int r = start(w, "reload");
        if (r < 0)
                return sd_event_exit(w->event, r);
        return 0;
}

static void watcher_done(struct watcher *w) {
        unsubscribe(w);
        sd_event_source_disable_unref(w->debounce);
        sd_event_source_disable_unref(w->backoff);
        sd_event_unref(w->event);
        json_decref(w->units_done);
        for (size_t i = 0; i < w->n_owner_units; i++)
                free(w->owner_units[i]);
        free(w->owner_units);
        free(w->watched);
        free(w->seen);
        free(w->buf);
        repairs_free(w);
}

int watch_main(const struct watch_options *opt) {
        _cleanup_(watcher_done) struct watcher w = {.opt = opt};
        sigset_t mask;
        int r;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "watch: failed to block signals: %m");
        w.buf = malloc(RECV_BUFFER_SIZE);
        w.units_done = json_array();
        if (!w.buf || !w.units_done)
                return log_oom();
        if ((r = sd_event_new(&w.event)) < 0 ||
            (r = sd_event_add_signal(w.event, NULL, SIGTERM, NULL, NULL)) < 0 ||
            (r = sd_event_add_signal(w.event, NULL, SIGINT, NULL, NULL)) < 0 ||
            (r = sd_event_add_signal(w.event, NULL, SIGHUP, on_sighup, &w)) < 0 ||
            (r = sd_event_add_time(w.event, &w.debounce, CLOCK_MONOTONIC, UINT64_MAX, TIMER_ACCURACY_USEC,
                                   on_debounce, &w)) < 0 ||
            (r = sd_event_add_time(w.event, &w.backoff, CLOCK_MONOTONIC, UINT64_MAX, TIMER_ACCURACY_USEC, on_backoff,
                                   &w)) < 0 ||
            (r = sd_event_set_watchdog(w.event, true)) < 0)
                return log_error_errno(r, "watch: failed to set up the event loop: %m");
        (void) sd_event_source_set_enabled(w.debounce, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(w.backoff, SD_EVENT_OFF);

        if ((r = start(&w, "start")) < 0)
                return r;
        r = sd_event_loop(w.event);
        (void) sd_notify(false, "STOPPING=1");
        if (r < 0)
                return log_error_errno(r, "watch: the event loop failed: %m");
        log_notice("watch: stopped.");
        return 0;
}

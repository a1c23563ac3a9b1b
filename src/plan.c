/* SPDX-License-Identifier: GPL-2.0-or-later */
/* plan.c: the order of the decision is the configuration, then the systemd dependency graph, then
 * nftables.service. A unit that merely orders itself after the daemon counts too: the post-mortem's
 * nftables-local.service had only Wants=. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "macro.h"
#include "plan.h"

#define SCRIPT_MAX_SIZE (256 * 1024)
#define SCRIPT_MAX_DEPTH 2

static const char *const dep_kind_table[_DEP_MAX] = {
        [DEP_WANTS] = "Wants",      [DEP_REQUIRES] = "Requires", [DEP_BINDS_TO] = "BindsTo",
        [DEP_PART_OF] = "PartOf",   [DEP_AFTER] = "After",
};

const char *dep_kind_to_string(enum dep_kind kind) {
        return kind < _DEP_MAX ? dep_kind_table[kind] : "?";
}

static bool strv_contains(char **l, const char *s) {
        for (; l && *l; l++)
                if (streq(*l, s))
                        return true;
        return false;
}

static const struct unit_info *unit_find(const struct unit_info *units, size_t n, const char *name) {
        for (size_t i = 0; i < n; i++)
                if (streq(units[i].name, name))
                        return &units[i];
        return NULL;
}

static bool is_word_char(char c) {
        return c && !strchr(" \t\n;|&()`$\"'<>{}!", c);
}

static bool text_runs_nft(const char *text, const char *script_root, unsigned depth);

/* The next word of a shell script or nft file, outside comments: sets *len, returns it (NULL at the end). *pos
 * moves past it. */
static const char *next_word(const char *text, const char **pos, size_t *len) {
        const char *p = *pos;
        while (*p) {
                if (*p == '#' && (p == text || !is_word_char(p[-1]))) {
                        p += strcspn(p, "\n");
                        continue;
                }
                if (!is_word_char(*p)) {
                        p++;
                        continue;
                }
                size_t n = 0;
                while (is_word_char(p[n]))
                        n++;
                *len = n;
                *pos = p + n;
                return p;
        }
        *pos = p;
        return NULL;
}

/* An absolute path to a script (a #! text file) that runs nft. */
static bool script_runs_nft(const char *path, const char *script_root, unsigned depth) {
        char full[4096];
        if (depth > SCRIPT_MAX_DEPTH || path[0] != '/')
                return false;
        snprintf(full, sizeof(full), "%s%s", script_root ? script_root : "", path);

        _cleanup_close_ int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return false;
        _cleanup_free_ char *buf = malloc(SCRIPT_MAX_SIZE + 1);
        if (!buf)
                return false;
        ssize_t n = read(fd, buf, SCRIPT_MAX_SIZE);
        if (n < 2 || buf[0] != '#' || buf[1] != '!')
                return false;
        buf[n] = '\0';
        return text_runs_nft(buf, script_root, depth + 1);
}

/* Looks at every word outside comments: "nft" or ".../nft" is the command; an absolute path may be a script. */
static bool text_runs_nft(const char *text, const char *script_root, unsigned depth) {
        const char *pos = text, *p;
        size_t len;
        while ((p = next_word(text, &pos, &len))) {
                const char *slash = memrchr(p, '/', len);
                const char *base = slash ? slash + 1 : p;
                /* "nft(8)" in a message is a manual page, not a command */
                if ((size_t) (p + len - base) == 3 && memcmp(base, "nft", 3) == 0 && strchr(" \t\n;", p[len]))
                        return true;
                if (p[0] == '/' && len < 4096) {
                        char path[4096];
                        memcpy(path, p, len);
                        path[len] = '\0';
                        if (script_runs_nft(path, script_root, depth))
                                return true;
                }
        }
        return false;
}

bool exec_runs_nft(const char *command_line, const char *script_root) {
        return text_runs_nft(command_line, script_root, 0);
}

static bool unit_runs_nft(const struct unit_info *u, const char *script_root) {
        for (char **e = u->exec; e && *e; e++)
                if (exec_runs_nft(*e, script_root))
                        return true;
        return false;
}

/* The daemon's unit, and (for restarts that propagate) the units it is PartOf=. */
static bool depends_on_daemon(const struct unit_info *candidate, const struct unit_info *units, size_t n_units,
                              const char *daemon, enum dep_kind *ret_kind, const char **ret_target) {
        const struct unit_info *d = unit_find(units, n_units, daemon);
        for (enum dep_kind k = 0; k < _DEP_MAX; k++) {
                if (strv_contains(candidate->deps[k], daemon)) {
                        *ret_kind = k;
                        *ret_target = daemon;
                        return true;
                }
                for (char **p = d ? d->deps[DEP_PART_OF] : NULL; p && *p; p++)
                        if (strv_contains(candidate->deps[k], *p)) {
                                *ret_kind = k;
                                *ret_target = *p;
                                return true;
                        }
        }
        return false;
}

/* Picks the unit for one table; why receives the reason in words. */
static enum plan_reason plan_choose(const struct config *config, const struct unit_info *units, size_t n_units,
                                    const struct plan_request *request, const char *script_root,
                                    const char **ret_unit, char *why, size_t why_size) {
        const char *unit;

        *ret_unit = NULL;
        if ((unit = config_table_unit(config, request->family, request->table))) {
                snprintf(why, why_size, "Table-Unit::%s::%s in the configuration", request->family, request->table);
                *ret_unit = unit;
                return PLAN_CONFIG_TABLE;
        }

        for (const char *const *d = request->daemon_units; d && *d; d++)
                if ((unit = config_daemon_unit(config, *d))) {
                        snprintf(why, why_size, "Daemon-Unit::%s in the configuration", *d);
                        *ret_unit = unit;
                        return PLAN_CONFIG_DAEMON;
                }

        for (const char *const *d = request->daemon_units; d && *d; d++)
                for (size_t i = 0; i < n_units; i++) {
                        enum dep_kind kind;
                        const char *target;
                        if (streq(units[i].name, *d) ||
                            !depends_on_daemon(&units[i], units, n_units, *d, &kind, &target) ||
                            !unit_runs_nft(&units[i], script_root))
                                continue;
                        snprintf(why, why_size, "%s=%s and it runs nft", dep_kind_to_string(kind), target);
                        *ret_unit = units[i].name;
                        return PLAN_DEPENDENCY;
                }

        const struct unit_info *nft = unit_find(units, n_units, "nftables.service");
        if (nft && streq_ptr(nft->active_state, "active")) {
                snprintf(why, why_size, "nftables.service is active");
                *ret_unit = "nftables.service";
                return PLAN_NFTABLES;
        }

        snprintf(why, why_size,
                 "no unit found; rerun what loads table %s %s, or set Reconcile-After-Upgrade::Table-Unit::%s::%s",
                 request->family, request->table, request->family, request->table);
        return PLAN_NONE;
}

int plan_table(const struct config *config, const struct unit_info *units, size_t n_units,
               const struct plan_request *request, const char *script_root, struct plan_item *ret) {
        _cleanup_(plan_item_done) struct plan_item item = {};
        const char *unit;
        char why[1024];

        item.reason = plan_choose(config, units, n_units, request, script_root, &unit, why, sizeof(why));
        item.family = strdup(request->family);
        item.table = strdup(request->table);
        item.unit = unit ? strdup(unit) : NULL;
        item.why = strdup(why);
        if (!item.family || !item.table || (unit && !item.unit) || !item.why)
                return -ENOMEM;
        item.never_touch = unit && config_never_touch(config, unit);

        *ret = item;
        item = (struct plan_item){};
        return 0;
}

void plan_item_done(struct plan_item *item) {
        free(item->family);
        free(item->table);
        free(item->unit);
        free(item->why);
        *item = (struct plan_item){};
}

static const char *const nft_families[] = {"ip", "ip6", "inet", "arp", "bridge", "netdev"};

static bool is_family(const char *word, size_t len) {
        for (size_t i = 0; i < ELEMENTSOF(nft_families); i++)
                if (strlen(nft_families[i]) == len && memcmp(word, nft_families[i], len) == 0)
                        return true;
        return false;
}

static int scope_add_table(struct unit_scope *scope, const char *family, size_t family_len, const char *name,
                           size_t name_len) {
        _cleanup_free_ char *t = NULL;
        if (asprintf(&t, "%.*s %.*s", (int) family_len, family, (int) name_len, name) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < scope->n_tables; i++)
                if (streq(scope->tables[i], t))
                        return 0;
        char **l = reallocarray(scope->tables, scope->n_tables + 2, sizeof(char *));
        if (!l)
                return -ENOMEM;
        scope->tables = l;
        l[scope->n_tables++] = TAKE_PTR(t);
        l[scope->n_tables] = NULL;
        return 0;
}

static int scope_scan_text(const char *text, const char *script_root, unsigned depth, struct unit_scope *scope);

/* Any regular file the configuration names: an nft -f file needs no #! to matter. */
static int scope_scan_file(const char *path, const char *script_root, unsigned depth, struct unit_scope *scope) {
        char full[4096];
        if (depth > SCRIPT_MAX_DEPTH)
                return 0;
        snprintf(full, sizeof(full), "%s%s", script_root ? script_root : "", path);
        _cleanup_close_ int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return 0;
        _cleanup_free_ char *buf = malloc(SCRIPT_MAX_SIZE + 1);
        if (!buf)
                return -ENOMEM;
        ssize_t n = read(fd, buf, SCRIPT_MAX_SIZE);
        if (n <= 0 || memchr(buf, '\0', (size_t) n))
                return 0; /* empty, or a binary such as nft itself */
        buf[n] = '\0';
        return scope_scan_text(buf, script_root, depth + 1, scope);
}

/* The words, outside comments: "flush ruleset", "table [FAMILY] NAME", and absolute paths to follow. */
static int scope_scan_text(const char *text, const char *script_root, unsigned depth, struct unit_scope *scope) {
        const char *pos = text, *prev = NULL, *p;
        size_t len, prev_len = 0;
        int r;

        while ((p = next_word(text, &pos, &len))) {
                if (prev && prev_len == 5 && memcmp(prev, "flush", 5) == 0 && len == 7 && memcmp(p, "ruleset", 7) == 0)
                        scope->flushes_ruleset = true;
                if (prev && prev_len == 5 && memcmp(prev, "table", 5) == 0) {
                        /* "table inet filter", or "table filter" (family ip) */
                        const char *family = "ip", *name = p;
                        size_t family_len = 2, name_len = len;
                        if (is_family(p, len)) {
                                const char *after = pos;
                                family = p, family_len = len;
                                name = next_word(text, &after, &name_len);
                        }
                        if (name && (r = scope_add_table(scope, family, family_len, name, name_len)) < 0)
                                return r;
                }
                if (p[0] == '/' && len < 4096) {
                        char path[4096];
                        memcpy(path, p, len);
                        path[len] = '\0';
                        if ((r = scope_scan_file(path, script_root, depth, scope)) < 0)
                                return r;
                }
                prev = p;
                prev_len = len;
        }
        return 0;
}

int plan_unit_scope(const struct unit_info *u, const char *script_root, struct unit_scope *ret) {
        struct unit_scope scope = {};
        int r = 0;
        for (char **e = u->exec; e && *e && r >= 0; e++)
                r = scope_scan_text(*e, script_root, 0, &scope);
        if (r < 0) {
                unit_scope_done(&scope);
                return r;
        }
        *ret = scope;
        return 0;
}

bool unit_scope_defines(const struct unit_scope *scope, const char *family, const char *table) {
        for (size_t i = 0; i < scope->n_tables; i++) {
                size_t flen = strlen(family);
                if (strncmp(scope->tables[i], family, flen) == 0 && scope->tables[i][flen] == ' ' &&
                    streq(scope->tables[i] + flen + 1, table))
                        return true;
        }
        return false;
}

void unit_scope_done(struct unit_scope *scope) {
        for (size_t i = 0; i < scope->n_tables; i++)
                free(scope->tables[i]);
        free(scope->tables);
        *scope = (struct unit_scope){};
}

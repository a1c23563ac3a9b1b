/* SPDX-License-Identifier: GPL-2.0-or-later */
/* plan.c: the order of the decision is the configuration, then the systemd dependency graph, then a unit whose
 * configuration creates the table. A unit that merely orders itself after the daemon counts too: the post-mortem's
 * nftables-local.service had only Wants=. Which unit is one question; whether reloading it is safe is another,
 * answered from what its job would run. */
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <stdarg.h>

#include "macro.h"
#include "plan.h"

#define SCRIPT_MAX_SIZE (256 * 1024)
#define SCRIPT_MAX_DEPTH 2
/* nft includes nest deeper than scripts call scripts */
#define SCOPE_MAX_DEPTH 6

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

/* Reads a regular file named in a unit's configuration, at most SCRIPT_MAX_SIZE bytes, NUL-terminated. Its type
 * is checked before it is opened for reading: opening a device node named in a script (/dev/watchdog) can act.
 * -ENOENT, -EISDIR (not a regular file), -EFBIG, or another error. */
static int config_file_read(const char *path, const char *script_root, char **ret, size_t *ret_size) {
        char full[4096], self[64];
        struct stat st;

        if ((size_t) snprintf(full, sizeof(full), "%s%s", script_root ? script_root : "", path) >= sizeof(full))
                return -ENAMETOOLONG;
        _cleanup_close_ int pfd = open(full, O_PATH | O_CLOEXEC);
        if (pfd < 0)
                return negative_errno();
        if (fstat(pfd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EISDIR;
        if (st.st_size > SCRIPT_MAX_SIZE)
                return -EFBIG;
        snprintf(self, sizeof(self), "/proc/self/fd/%d", pfd);
        _cleanup_close_ int fd = open(self, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return negative_errno();
        _cleanup_free_ char *buf = malloc(SCRIPT_MAX_SIZE + 1);
        if (!buf)
                return -ENOMEM;
        ssize_t n = read(fd, buf, SCRIPT_MAX_SIZE);
        if (n < 0)
                return negative_errno();
        buf[n] = '\0';
        *ret = TAKE_PTR(buf);
        *ret_size = (size_t) n;
        return 0;
}

/* An absolute path to a script (a #! text file) that runs nft. */
static bool script_runs_nft(const char *path, const char *script_root, unsigned depth) {
        _cleanup_free_ char *buf = NULL;
        size_t n;
        if (depth > SCRIPT_MAX_DEPTH || path[0] != '/' || config_file_read(path, script_root, &buf, &n) < 0)
                return false;
        if (n < 2 || buf[0] != '#' || buf[1] != '!')
                return false;
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
        for (char **e = u->exec_reload; e && *e; e++)
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

        /* Nothing names the daemon: a unit whose configuration creates the table (nftables.service, say, but
         * only when its nftables.conf really loads that table). */
        for (size_t i = 0; i < n_units; i++) {
                _cleanup_(unit_scope_done) struct unit_scope scope = {};
                if (!unit_runs_nft(&units[i], script_root) || plan_unit_scope(&units[i], script_root, &scope) < 0 ||
                    !unit_scope_defines(&scope, request->family, request->table))
                        continue;
                snprintf(why, why_size, "its configuration creates table %s %s", request->family, request->table);
                *ret_unit = units[i].name;
                return PLAN_SCOPE;
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

static bool is_family(const char *word) {
        for (size_t i = 0; i < ELEMENTSOF(nft_families); i++)
                if (streq(word, nft_families[i]))
                        return true;
        return false;
}

static int strv_add_unique(char ***l, size_t *n, char *s) {
        for (size_t i = 0; i < *n; i++)
                if (streq((*l)[i], s)) {
                        free(s);
                        return 0;
                }
        char **p = reallocarray(*l, *n + 2, sizeof(char *));
        if (!p) {
                free(s);
                return -ENOMEM;
        }
        *l = p;
        p[(*n)++] = s;
        p[*n] = NULL;
        return 0;
}

_printf_(3, 4) static int scope_add(char ***l, size_t *n, const char *format, ...) {
        va_list ap;
        char *s;
        va_start(ap, format);
        int r = vasprintf(&s, format, ap);
        va_end(ap);
        return r < 0 ? -ENOMEM : strv_add_unique(l, n, s);
}

/* A shell script or nft file as tokens: words, "{", "}", and ";" for anything that ends a command or a
 * statement (newline, ;, |, &). Quotes separate words; a # at the start of a word starts a comment. */
struct token {
        char *word; /* NULL for punctuation */
        char punct;
};

struct tokens {
        struct token *t;
        size_t n, allocated;
};

static void tokens_done(struct tokens *ts) {
        for (size_t i = 0; i < ts->n; i++)
                free(ts->t[i].word);
        free(ts->t);
}

static int tokens_push(struct tokens *ts, char *word, char punct) {
        if (GROW(ts->t, ts->allocated, ts->n + 1) < 0) {
                free(word);
                return -ENOMEM;
        }
        ts->t[ts->n++] = (struct token){.word = word, .punct = punct};
        return 0;
}

static int tokenize(const char *text, struct tokens *ts) {
        const char *p = text;
        int r;
        while (*p) {
                if (*p == '#' && (p == text || !is_word_char(p[-1]))) {
                        p += strcspn(p, "\n");
                        continue;
                }
                if (strchr("\n;|&", *p)) {
                        if ((ts->n == 0 || ts->t[ts->n - 1].punct != ';') && (r = tokens_push(ts, NULL, ';')) < 0)
                                return r;
                        p++;
                        continue;
                }
                if (*p == '{' || *p == '}') {
                        if ((r = tokens_push(ts, NULL, *p)) < 0)
                                return r;
                        p++;
                        continue;
                }
                if (!is_word_char(*p)) {
                        p++;
                        continue;
                }
                size_t n = 0;
                while (is_word_char(p[n]))
                        n++;
                char *w = strndup(p, n);
                if (!w || (r = tokens_push(ts, w, 0)) < 0)
                        return -ENOMEM;
                p += n;
        }
        return 0;
}

static const char *tok_word(const struct tokens *ts, size_t i) {
        return i < ts->n ? ts->t[i].word : NULL;
}

static bool tok_is(const struct tokens *ts, size_t i, const char *word) {
        const char *w = tok_word(ts, i);
        return w && streq(w, word);
}

struct scope_scan {
        struct unit_scope *scope;
        const char *script_root;
};

static int scope_scan_text(struct scope_scan *sc, const char *text, unsigned depth);

static int scope_opaque(struct scope_scan *sc, const char *why, const char *what) {
        if (sc->scope->opaque)
                return 0;
        return asprintf(&sc->scope->opaque, "%s %s", why, what) < 0 ? -ENOMEM : 0;
}

/* A file an nft -f or an include names: it is part of the configuration, so one that cannot be read leaves the
 * configuration out of sight. */
static int scope_scan_nft_file(struct scope_scan *sc, const char *path, unsigned depth) {
        _cleanup_free_ char *buf = NULL;
        size_t n;
        if (depth > SCOPE_MAX_DEPTH)
                return scope_opaque(sc, "includes nested too deep at", path);
        int r = config_file_read(path, sc->script_root, &buf, &n);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return scope_opaque(sc, "cannot read", path);
        if (memchr(buf, '\0', n))
                return scope_opaque(sc, "not a text file:", path);
        return scope_scan_text(sc, buf, depth + 1);
}

/* include "/etc/nftables.d/NAME*.nft": every file the pattern matches, as nft does. */
static int scope_scan_include(struct scope_scan *sc, const char *pattern, unsigned depth) {
        char full[4096];
        glob_t g = {};
        size_t root_len = sc->script_root ? strlen(sc->script_root) : 0;
        int r = 0;

        if (pattern[0] != '/')
                return scope_opaque(sc, "includes a relative path:", pattern);
        if (!strpbrk(pattern, "*?["))
                return scope_scan_nft_file(sc, pattern, depth);
        snprintf(full, sizeof(full), "%s%s", sc->script_root ? sc->script_root : "", pattern);
        if (glob(full, 0, NULL, &g) == 0)
                for (size_t i = 0; i < g.gl_pathc && r >= 0; i++)
                        r = scope_scan_nft_file(sc, g.gl_pathv[i] + root_len, depth);
        globfree(&g);
        return r;
}

/* A script the configuration runs (a #! file): followed; a binary is not configuration. */
static int scope_scan_script(struct scope_scan *sc, const char *path, unsigned depth) {
        _cleanup_free_ char *buf = NULL;
        size_t n;
        if (depth > SCRIPT_MAX_DEPTH)
                return 0;
        int r = config_file_read(path, sc->script_root, &buf, &n);
        if (r == -ENOMEM)
                return r;
        if (r < 0 || n < 2 || buf[0] != '#' || buf[1] != '!' || memchr(buf, '\0', n))
                return 0;
        return scope_scan_text(sc, buf, depth + 1);
}

enum frame_kind { FRAME_OTHER, FRAME_TABLE };

struct frame {
        enum frame_kind kind;
        const char *family, *table;
};

/* The verbs before "table" and "chain" that matter. NULL when none: a block ("table inet filter {"). */
static const char *verb_before(const struct tokens *ts, size_t i) {
        static const char *const verbs[] = {"add", "create", "delete", "flush", "destroy", "list", "reset"};
        const char *w = i > 0 ? tok_word(ts, i - 1) : NULL;
        for (size_t k = 0; w && k < ELEMENTSOF(verbs); k++)
                if (streq(w, verbs[k]))
                        return verbs[k];
        return NULL;
}

static bool verb_creates(const char *verb) {
        return verb && (streq(verb, "add") || streq(verb, "create"));
}

static bool verb_deletes(const char *verb) {
        return verb && (streq(verb, "delete") || streq(verb, "flush") || streq(verb, "destroy"));
}

static int scope_scan_text(struct scope_scan *sc, const char *text, unsigned depth) {
        _cleanup_(tokens_done) struct tokens ts = {};
        struct unit_scope *scope = sc->scope;
        struct frame frames[32];
        size_t n_frames = 0;
        struct frame pending = {}; /* what the next "{" opens */
        bool in_nft = false;       /* the current command is nft */
        int r;

        if ((r = tokenize(text, &ts)) < 0)
                return r;
        for (size_t i = 0; i < ts.n; i++) {
                const struct token *t = &ts.t[i];
                if (t->punct == ';') {
                        in_nft = false;
                        continue;
                }
                if (t->punct == '{') {
                        if (n_frames < ELEMENTSOF(frames))
                                frames[n_frames++] = pending;
                        pending = (struct frame){};
                        continue;
                }
                if (t->punct == '}') {
                        if (n_frames > 0)
                                n_frames--;
                        continue;
                }
                const char *w = t->word, *verb;
                if ((r = strv_add_unique(&scope->words, &scope->n_words, strdup(w))) < 0)
                        return r;
                const char *slash = strrchr(w, '/');
                if (streq(slash ? slash + 1 : w, "nft"))
                        in_nft = true;

                if (streq(w, "ruleset") && i > 0 && tok_is(&ts, i - 1, "flush"))
                        scope->flushes_ruleset = true;
                else if (streq(w, "table")) {
                        /* table [FAMILY] NAME: family ip when not given */
                        size_t k = i + 1;
                        const char *family = "ip", *name;
                        if (tok_word(&ts, k) && is_family(tok_word(&ts, k)) && tok_word(&ts, k + 1))
                                family = tok_word(&ts, k++);
                        if (!(name = tok_word(&ts, k)))
                                continue;
                        verb = verb_before(&ts, i);
                        if (verb_creates(verb) || (!verb && k + 1 < ts.n && ts.t[k + 1].punct == '{')) {
                                if ((r = scope_add(&scope->tables, &scope->n_tables, "%s %s", family, name)) < 0)
                                        return r;
                                pending = (struct frame){.kind = FRAME_TABLE, .family = family, .table = name};
                        } else if (verb_deletes(verb) && (r = scope_add(&scope->deleted, &scope->n_deleted,
                                                                        "table %s %s", family, name)) < 0)
                                return r;
                        i = k;
                } else if (streq(w, "chain")) {
                        verb = verb_before(&ts, i);
                        if (verb) {
                                /* add chain [FAMILY] TABLE CHAIN */
                                size_t k = i + 1;
                                const char *family = "ip", *table, *chain;
                                if (tok_word(&ts, k) && is_family(tok_word(&ts, k)) && tok_word(&ts, k + 2))
                                        family = tok_word(&ts, k++);
                                if (!(table = tok_word(&ts, k)) || !(chain = tok_word(&ts, k + 1)))
                                        continue;
                                if (verb_creates(verb))
                                        r = scope_add(&scope->chains, &scope->n_chains, "%s %s %s", family, table, chain);
                                else if (verb_deletes(verb))
                                        r = scope_add(&scope->deleted, &scope->n_deleted, "chain %s %s %s", family,
                                                      table, chain);
                                if (r < 0)
                                        return r;
                                i = k + 1;
                        } else if (n_frames > 0 && frames[n_frames - 1].kind == FRAME_TABLE && tok_word(&ts, i + 1)) {
                                /* chain NAME { … } inside table { … } */
                                const struct frame *f = &frames[n_frames - 1];
                                if ((r = scope_add(&scope->chains, &scope->n_chains, "%s %s %s", f->family, f->table,
                                                   tok_word(&ts, i + 1))) < 0)
                                        return r;
                                i++;
                        }
                } else if (streq(w, "include") && tok_word(&ts, i + 1)) {
                        if ((r = scope_scan_include(sc, tok_word(&ts, i + 1), depth)) < 0)
                                return r;
                        i++;
                } else if (in_nft && (streq(w, "-f") || streq(w, "--file"))) {
                        const char *file = tok_word(&ts, i + 1);
                        if (!file && i + 1 < ts.n && ts.t[i + 1].punct == ';')
                                continue;
                        if (!file || file[0] != '/')
                                r = streq_ptr(file, "-") ? 0 : scope_opaque(sc, "runs nft -f on a file named at run time:", file ? file : "?");
                        else
                                r = scope_scan_nft_file(sc, file, depth);
                        if (r < 0)
                                return r;
                        i++;
                } else if (w[0] == '/' && (r = scope_scan_script(sc, w, depth)) < 0)
                        return r;
        }
        return 0;
}

/* The lines the job would run: ReloadOrRestartUnit reloads an active unit that can, restarts (stop, start) one
 * that cannot, and starts an inactive one. */
static void job_lines(const struct unit_info *u, char **ret[2]) {
        bool active = streq_ptr(u->active_state, "active") || streq_ptr(u->active_state, "reloading");
        ret[0] = ret[1] = NULL;
        if (active && u->can_reload)
                ret[0] = u->exec_reload;
        else {
                ret[0] = active ? u->exec_stop : NULL;
                ret[1] = u->exec;
        }
}

static int strcmp_ptr(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int plan_unit_scope(const struct unit_info *u, const char *script_root, struct unit_scope *ret) {
        _cleanup_(unit_scope_done) struct unit_scope scope = {};
        struct scope_scan sc = {.scope = &scope, .script_root = script_root};
        char **lines[2];
        int r = 0;

        job_lines(u, lines);
        for (size_t k = 0; k < ELEMENTSOF(lines) && r >= 0; k++)
                for (char **e = lines[k]; e && *e && r >= 0; e++)
                        r = scope_scan_text(&sc, *e, 0);
        if (r < 0)
                return r;
        if (scope.n_words > 1)
                qsort(scope.words, scope.n_words, sizeof(char *), strcmp_ptr);
        *ret = scope;
        scope = (struct unit_scope){};
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

static bool scope_has(char **l, size_t n, const char *s) {
        for (size_t i = 0; i < n; i++)
                if (streq(l[i], s))
                        return true;
        return false;
}

static bool scope_names(const struct unit_scope *scope, const char *word) {
        const char *key = word;
        return scope->n_words && bsearch(&key, scope->words, scope->n_words, sizeof(char *), strcmp_ptr);
}

/* What of rs a reload would delete that it does not create again: tables it deletes or flushes (all of them when
 * it flushes the ruleset), and their chains. */
static int reload_losses(const struct unit_scope *scope, const struct ruleset *rs, char **ret) {
        char *buf = NULL;
        size_t len = 0, n = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return -ENOMEM;
        for (size_t i = 0; i < rs->n_tables; i++) {
                const char *family = nfproto_to_string(rs->tables[i].family), *table = rs->tables[i].table;
                char key[600];
                snprintf(key, sizeof(key), "table %s %s", family, table);
                if (!scope->flushes_ruleset && !scope_has(scope->deleted, scope->n_deleted, key))
                        continue;
                if (!unit_scope_defines(scope, family, table)) {
                        fprintf(f, "%s%s", n++ ? ", " : "", key);
                        continue;
                }
                /* its own table: then every chain in it must be its own too */
                for (size_t c = 0; c < rs->n_chains; c++) {
                        const struct nft_path *ch = &rs->chains[c];
                        char chain[900];
                        if (ch->family != rs->tables[i].family || !streq(ch->table, table))
                                continue;
                        snprintf(chain, sizeof(chain), "%s %s %s", family, table, ch->chain);
                        if (!scope_has(scope->chains, scope->n_chains, chain))
                                fprintf(f, "%schain %s", n++ ? ", " : "", chain);
                }
        }
        /* chains deleted or flushed by name */
        for (size_t i = 0; i < scope->n_deleted; i++)
                if (strncmp(scope->deleted[i], "chain ", 6) == 0 &&
                    !scope_has(scope->chains, scope->n_chains, scope->deleted[i] + 6))
                        for (size_t c = 0; c < rs->n_chains; c++) {
                                char chain[900];
                                snprintf(chain, sizeof(chain), "%s %s %s", nfproto_to_string(rs->chains[c].family),
                                         rs->chains[c].table, rs->chains[c].chain);
                                if (streq(chain, scope->deleted[i] + 6))
                                        fprintf(f, "%s%s", n++ ? ", " : "", scope->deleted[i]);
                        }
        if (fclose(f) != 0)
                return -ENOMEM;
        if (n == 0) {
                free(buf);
                buf = NULL;
        }
        *ret = buf;
        return 0;
}

bool plan_reload_is_safe(const struct unit_scope *scope, const char *family, const char *table,
                         const char *const *names, const struct ruleset *rs, char **ret_why) {
        _cleanup_free_ char *losses = NULL;
        char *why = NULL;
        bool safe = false;

        if (scope->opaque)
                (void) !asprintf(&why, "its configuration is not all in sight (%s)", scope->opaque);
        else if (!unit_scope_defines(scope, family, table))
                (void) !asprintf(&why, "its configuration does not create table %s %s", family, table);
        else {
                const char *missing = NULL;
                for (const char *const *n = names; n && *n && !missing; n++)
                        if (!scope_names(scope, *n))
                                missing = *n;
                if (missing)
                        (void) !asprintf(&why, "its configuration does not name %s, which the stale rules held",
                                         missing);
                else if (reload_losses(scope, rs, &losses) < 0)
                        why = NULL;
                else if (losses)
                        (void) !asprintf(&why, "reloading it %swould delete %s, which it does not create",
                                         scope->flushes_ruleset ? "flushes the whole ruleset and " : "", losses);
                else {
                        safe = true;
                        (void) !asprintf(&why, "its configuration creates table %s %s and deletes nothing it does "
                                               "not create", family, table);
                }
        }
        *ret_why = why;
        return safe;
}

void unit_scope_done(struct unit_scope *scope) {
        for (size_t i = 0; i < scope->n_tables; i++)
                free(scope->tables[i]);
        free(scope->tables);
        for (size_t i = 0; i < scope->n_chains; i++)
                free(scope->chains[i]);
        free(scope->chains);
        for (size_t i = 0; i < scope->n_deleted; i++)
                free(scope->deleted[i]);
        free(scope->deleted);
        for (size_t i = 0; i < scope->n_words; i++)
                free(scope->words[i]);
        free(scope->words);
        free(scope->opaque);
        *scope = (struct unit_scope){};
}

/* SPDX-License-Identifier: GPL-2.0-or-later */
/* config.c: turns the leaves the apt shim returns into struct config, key by key. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apt-shim.h"
#include "config.h"
#include "log.h"

void config_defaults(struct config *c) {
        *c = (struct config){
                .mode = MODE_RECONCILE,
                .job_timeout_ms = 30 * 1000,
                .time_budget_ms = 60 * 1000,
                .interface_wait_ms = 5 * 1000,
                .prune_stale_twins = true,
                .repair = REPAIR_AUTO,
                .history_max_bytes = 4u << 20,
                .watch = true,
                .watch_debounce_ms = 200,
                .watch_repair_limit = 5,
        };
}

const char *config_repair_to_string(enum config_repair r) {
        switch (r) {
        case REPAIR_AUTO: return "auto";
        case REPAIR_REBIND: return "rebind";
        case REPAIR_RELOAD: return "reload";
        }
        return "?";
}

/* "30", "1.5" or "500ms" → milliseconds in [min_ms, max_ms]. */
static int parse_duration_ms(const char *s, unsigned min_ms, unsigned max_ms, unsigned *ret) {
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (errno || end == s || !isfinite(v) || v < 0)
                return -EINVAL;
        if (streq(end, "ms"))
                ;
        else if (*end == '\0' || streq(end, "s"))
                v *= 1000;
        else
                return -EINVAL;
        if (v < min_ms || v > max_ms)
                return -ERANGE;
        *ret = (unsigned) v;
        return 0;
}

/* "4M", "512K", "1048576" → bytes in [min, max]. */
static int parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *ret) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || end == s || s[0] == '-')
                return -EINVAL;
        uint64_t factor = streq(end, "") || streq(end, "B") ? 1 : streq(end, "K") ? 1u << 10 : streq(end, "M") ? 1u << 20
                                                             : streq(end, "G")                 ? 1u << 30 : 0;
        if (factor == 0)
                return -EINVAL;
        if (v > max / factor || v * factor < min)
                return -ERANGE;
        *ret = v * factor;
        return 0;
}

static int parse_bool(const char *s, bool *ret) {
        static const char *const yes[] = {"1", "yes", "true", "on"}, *const no[] = {"0", "no", "false", "off"};
        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (strcasecmp(s, yes[i]) == 0)
                        return *ret = true, 0;
                if (strcasecmp(s, no[i]) == 0)
                        return *ret = false, 0;
        }
        return -EINVAL;
}

static bool unit_name_plausible(const char *s) {
        size_t n = strlen(s);
        return n > 0 && n < 256 && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-_.\\@") == n &&
               strchr(s, '.') != NULL;
}

static int map_add(struct unit_map_entry **map, size_t *n, const char *from, const char *unit) {
        struct unit_map_entry *p = reallocarray(*map, *n + 1, sizeof(**map));
        if (!p)
                return -ENOMEM;
        *map = p;
        p[*n] = (struct unit_map_entry){.from = strdup(from), .unit = strdup(unit)};
        if (!p[*n].from || !p[*n].unit) {
                free(p[*n].from);
                free(p[*n].unit);
                return -ENOMEM;
        }
        (*n)++;
        return 0;
}

static int list_add(char ***list, size_t *n, const char *s) {
        char **p = reallocarray(*list, *n + 1, sizeof(char *));
        if (!p)
                return -ENOMEM;
        *list = p;
        if (!(p[*n] = strdup(s)))
                return -ENOMEM;
        (*n)++;
        return 0;
}

/* Applies one leaf. Returns 1 when the value was malformed (logged here, once), 0 when taken, <0 on ENOMEM. */
static int config_apply(struct config *c, const char *key, const char *value) {
        const char *rest;
        int r;

#define MALFORMED(why) \
        (log_error("Configuration: " CONFIG_SCOPE "::%s \"%s\" %s; using the default.", key, value, why), 1)

        if (streq(key, "Mode")) {
                if (streq(value, "reconcile"))
                        c->mode = MODE_RECONCILE;
                else if (streq(value, "report"))
                        c->mode = MODE_REPORT;
                else
                        return MALFORMED("is not \"reconcile\" or \"report\"");
                return 0;
        }
        if (streq(key, "Job-Timeout")) {
                r = parse_duration_ms(value, 100, 600 * 1000, &c->job_timeout_ms);
                return r < 0 ? MALFORMED("is not a duration between 0.1 and 600 seconds") : 0;
        }
        if (streq(key, "Time-Budget")) {
                r = parse_duration_ms(value, 100, 3600 * 1000, &c->time_budget_ms);
                return r < 0 ? MALFORMED("is not a duration between 0.1 and 3600 seconds") : 0;
        }
        if (streq(key, "Repair")) {
                if (streq(value, "auto"))
                        c->repair = REPAIR_AUTO;
                else if (streq(value, "rebind"))
                        c->repair = REPAIR_REBIND;
                else if (streq(value, "reload"))
                        c->repair = REPAIR_RELOAD;
                else
                        return MALFORMED("is not \"auto\", \"rebind\" or \"reload\"");
                return 0;
        }
        if (streq(key, "Allow-Flush")) {
                r = parse_bool(value, &c->allow_flush);
                return r < 0 ? MALFORMED("is not a boolean") : 0;
        }
        if (streq(key, "Interface-Wait")) {
                r = parse_duration_ms(value, 0, 600 * 1000, &c->interface_wait_ms);
                return r < 0 ? MALFORMED("is not a duration between 0 and 600 seconds") : 0;
        }
        if (streq(key, "History-Max-Size")) {
                r = parse_size(value, 64u << 10, 1u << 30, &c->history_max_bytes);
                return r < 0 ? MALFORMED("is not a size between 64K and 1G") : 0;
        }
        if (streq(key, "Prune-Stale-Twins")) {
                r = parse_bool(value, &c->prune_stale_twins);
                return r < 0 ? MALFORMED("is not a boolean") : 0;
        }
        if (streq(key, "Watch")) {
                r = parse_bool(value, &c->watch);
                return r < 0 ? MALFORMED("is not a boolean") : 0;
        }
        if (streq(key, "Watch-Debounce")) {
                r = parse_duration_ms(value, 0, 10 * 1000, &c->watch_debounce_ms);
                return r < 0 ? MALFORMED("is not a duration between 0 and 10 seconds") : 0;
        }
        if (streq(key, "Watch-Repair-Limit")) {
                char *end;
                errno = 0;
                unsigned long v = strtoul(value, &end, 10);
                if (errno || end == value || *end || value[0] == '-' || v > 1000)
                        return MALFORMED("is not a number between 0 and 1000");
                c->watch_repair_limit = (unsigned) v;
                return 0;
        }
        if (streq(key, "Metrics-Dir")) {
                if (value[0] && value[0] != '/')
                        return MALFORMED("is not an absolute path (or \"\" for none)");
                char *dup = strdup(value);
                if (!dup)
                        return -ENOMEM;
                free(c->metrics_dir);
                c->metrics_dir = dup;
                return 0;
        }
        if (streq(key, "Never-Touch::")) {
                if (!unit_name_plausible(value))
                        return MALFORMED("is not a unit name");
                return list_add(&c->never_touch, &c->n_never_touch, value);
        }
        if (strncmp(key, "Table-Unit::", 12) == 0) {
                /* Table-Unit::FAMILY::TABLE "unit.service" */
                rest = key + 12;
                const char *sep = strstr(rest, "::");
                if (!sep || sep == rest || !sep[2] || strstr(sep + 2, "::"))
                        return MALFORMED("does not name a table as Table-Unit::FAMILY::TABLE");
                if (!unit_name_plausible(value))
                        return MALFORMED("is not a unit name");
                char from[512];
                snprintf(from, sizeof(from), "%.*s %s", (int) (sep - rest), rest, sep + 2);
                return map_add(&c->table_units, &c->n_table_units, from, value);
        }
        if (strncmp(key, "Daemon-Unit::", 13) == 0) {
                rest = key + 13;
                if (!unit_name_plausible(rest))
                        return MALFORMED("does not name a daemon's unit as Daemon-Unit::UNIT");
                if (!unit_name_plausible(value))
                        return MALFORMED("is not a unit name");
                return map_add(&c->daemon_units, &c->n_daemon_units, rest, value);
        }
#undef MALFORMED

        log_warning("Configuration: ignoring unknown key " CONFIG_SCOPE "::%s.", key);
        return 0;
}

int config_load(const char *file, struct config *ret) {
        struct apt_shim_entry *entries = NULL;
        size_t n = 0;
        _cleanup_free_ char *error = NULL;
        struct config c;
        int r, malformed = 0;

        config_defaults(&c);
        r = apt_shim_config_read(file, CONFIG_SCOPE, &entries, &n, &error);
        if (r < 0) {
                *ret = c;
                return log_error_errno(r, "Configuration: cannot read apt's configuration (%s); using defaults.",
                                       error ? error : strerror(-r));
        }

        for (size_t i = 0; i < n; i++) {
                r = config_apply(&c, entries[i].key, entries[i].value);
                if (r < 0) {
                        apt_shim_entries_free(entries, n);
                        config_done(&c);
                        return log_oom();
                }
                malformed += r;
        }
        apt_shim_entries_free(entries, n);
        *ret = c;
        return malformed;
}

static const char *map_find(const struct unit_map_entry *map, size_t n, const char *from) {
        for (size_t i = 0; i < n; i++)
                if (streq(map[i].from, from))
                        return map[i].unit;
        return NULL;
}

const char *config_table_unit(const struct config *c, const char *family, const char *table) {
        char from[512];
        snprintf(from, sizeof(from), "%s %s", family, table);
        return map_find(c->table_units, c->n_table_units, from);
}

const char *config_daemon_unit(const struct config *c, const char *daemon_unit) {
        return map_find(c->daemon_units, c->n_daemon_units, daemon_unit);
}

const char *config_metrics_dir(const struct config *c) {
        return c->metrics_dir ? c->metrics_dir : CONFIG_METRICS_DIR_DEFAULT;
}

bool config_never_touch(const struct config *c, const char *unit) {
        for (size_t i = 0; i < c->n_never_touch; i++)
                if (streq(c->never_touch[i], unit))
                        return true;
        return false;
}

static void map_free(struct unit_map_entry *map, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(map[i].from);
                free(map[i].unit);
        }
        free(map);
}

void config_done(struct config *c) {
        map_free(c->table_units, c->n_table_units);
        map_free(c->daemon_units, c->n_daemon_units);
        for (size_t i = 0; i < c->n_never_touch; i++)
                free(c->never_touch[i]);
        free(c->never_touch);
        free(c->metrics_dir);
        config_defaults(c);
}

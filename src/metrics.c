/* SPDX-License-Identifier: GPL-2.0-or-later */
/* metrics.c: the counters and last values (a small JSON state in the run directory), their Prometheus text
 * exposition, and the file node_exporter's textfile collector reads. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "json-util.h"
#include "log.h"
#include "metrics.h"
#include "names.h"

#define PREFIX "reconcile_after_upgrade_"
#define STATE_MAX_SIZE (1024 * 1024)

int metrics_label_escape(const char *name, char *buf, size_t size) {
        const char *escaped = NAME(name);
        size_t n = 0;
        for (const char *p = escaped; *p; p++) {
                bool special = *p == '\\' || *p == '"';
                if (n + 1 + special >= size)
                        return -ENAMETOOLONG;
                if (special)
                        buf[n++] = '\\';
                buf[n++] = *p;
        }
        buf[n] = '\0';
        return 0;
}

/* state[a][b] += 1 */
static int count(json_t *state, const char *key, const char *a, const char *b) {
        json_t *top = json_object_get(state, key), *inner;
        if (!top && json_object_set_new(state, key, top = json_object()) < 0)
                return -ENOMEM;
        if (!(inner = json_object_get(top, a)) && json_object_set_new(top, a, inner = json_object()) < 0)
                return -ENOMEM;
        json_int_t n = json_integer_value(json_object_get(inner, b));
        return json_object_set_new(inner, b, json_integer(n + 1)) < 0 ? -ENOMEM : 0;
}

static const char *table_key(const char *family, const char *table, char *buf, size_t size) {
        snprintf(buf, size, "%s %s", family, NAME(table));
        return buf;
}

/* One more stale reference in that table. */
static int table_count(json_t *tables, uint8_t family, const char *table) {
        char key[2 * NAME_ESCAPED_MAX];
        table_key(nfproto_to_string(family), table, key, sizeof(key));
        json_int_t n = json_integer_value(json_object_get(tables, key));
        return json_object_set_new(tables, key, json_integer(n + 1));
}

int metrics_state_add(json_t *state, const struct metrics_run *run) {
        if (count(state, "runs", run->via, run->outcome) < 0 ||
            json_object_set_new(state, "last_run", json_real(run->time)) < 0)
                return -ENOMEM;
        for (size_t i = 0; run->repairs && i < run->repairs->n_actions; i++) {
                const struct action *a = &run->repairs->actions[i];
                int r = 0;
                if (a->reload == RELOAD_DONE || a->reload == RELOAD_FAILED)
                        r = count(state, "repairs", "reload", a->reload == RELOAD_DONE ? "ok" : "failed");
                if (r >= 0 && a->rebound && (a->rebind == REBIND_DONE || a->rebind == REBIND_FAILED))
                        r = count(state, "repairs", "rebind", a->rebind == REBIND_DONE ? "ok" : "failed");
                if (r >= 0 && a->pruned && (a->rebind == REBIND_DONE || a->rebind == REBIND_FAILED))
                        r = count(state, "repairs", "prune", a->rebind == REBIND_DONE ? "ok" : "failed");
                if (r < 0)
                        return r;
        }
        if (run->repaired &&
            json_object_set_new(state, "last_repair",
                                json_pack("{s:f, s:f, s:b}", "time", run->time, "seconds", run->repair_seconds,
                                          "success", run->repair_success)) < 0)
                return -ENOMEM;
        /* A run that could not read the ruleset leaves what the last one saw. */
        if (!run->ruleset)
                return 0;
        if (findings_stale(run->stale) == 0 && json_object_set_new(state, "last_fresh", json_real(run->time)) < 0)
                return -ENOMEM;
        json_t *tables = json_object();
        if (!tables || json_object_set_new(state, "tables", tables) < 0 ||
            json_object_set_new(state, "interfaces_recreated", json_integer((json_int_t) run->interfaces_recreated)) < 0)
                return -ENOMEM;
        char key[2 * NAME_ESCAPED_MAX];
        /* every table that holds an index is listed, stale or not: 0 says "looked, fine" */
        for (size_t i = 0; i < run->ruleset->n_refs; i++) {
                const struct iface_ref *ref = &run->ruleset->refs[i];
                table_key(nfproto_to_string(ref->family), ref->table, key, sizeof(key));
                if (!json_object_get(tables, key) && json_object_set_new(tables, key, json_integer(0)) < 0)
                        return -ENOMEM;
        }
        for (size_t k = 0; k < run->stale->n_stale; k++)
                if (table_count(tables, run->stale->stale[k].ref->family, run->stale->stale[k].ref->table) < 0)
                        return -ENOMEM;
        /* a device-bound chain or flowtable that lost its device counts as one stale reference of its table */
        for (size_t k = 0; k < run->stale->n_hooks; k++)
                if (table_count(tables, run->stale->hooks[k].was->family, run->stale->hooks[k].was->table) < 0)
                        return -ENOMEM;
        return 0;
}

/* A table key is "FAMILY ESCAPED-NAME": the family has no blank. */
static int render_table_labels(FILE *out, const char *key) {
        const char *sp = strchr(key, ' ');
        char name[NAME_ESCAPED_MAX], label[2 * NAME_ESCAPED_MAX + 1];
        if (!sp || name_unescape(sp + 1, name, sizeof(name)) < 0 || metrics_label_escape(name, label, sizeof(label)) < 0)
                return -EINVAL;
        fprintf(out, "{family=\"%.*s\",table=\"%s\"}", (int) (sp - key), key, label);
        return 0;
}

static void header(FILE *out, const char *name, const char *type, const char *help) {
        fprintf(out, "# HELP " PREFIX "%s %s\n# TYPE " PREFIX "%s %s\n", name, help, name, type);
}

int metrics_render(FILE *out, json_t *state) {
        const char *k1, *k2;
        json_t *v1, *v2;

        header(out, "build_info", "gauge", "The version of reconcile-after-upgrade that wrote these metrics.");
        fprintf(out, PREFIX "build_info{version=\"%s\"} 1\n", PACKAGE_VERSION);

        json_t *tables = json_object_get(state, "tables");
        if (tables) {
                header(out, "stale_references", "gauge",
                       "References by interface index that the last run found stale (the interface was re-created or "
                       "is gone), by table; 0 for a table that holds indexes and none is stale.");
                json_object_foreach(tables, k1, v1) {
                        fputs(PREFIX "stale_references", out);
                        if (render_table_labels(out, k1) < 0)
                                fputs("{family=\"?\",table=\"?\"}", out);
                        fprintf(out, " %lld\n", (long long) json_integer_value(v1));
                }
                header(out, "interfaces_recreated", "gauge",
                       "Interfaces re-created since the baseline (snapshot, link history) whose old index rules still "
                       "held, as the last run found them.");
                fprintf(out, PREFIX "interfaces_recreated %lld\n",
                        (long long) json_integer_value(json_object_get(state, "interfaces_recreated")));
        }
        header(out, "runs_total", "counter", "Runs since boot, by what ran them and what came of it.");
        json_object_foreach(json_object_get(state, "runs"), k1, v1)
                json_object_foreach(v1, k2, v2)
                        fprintf(out, PREFIX "runs_total{via=\"%s\",outcome=\"%s\"} %lld\n", k1, k2,
                                (long long) json_integer_value(v2));
        header(out, "repairs_total", "counter",
               "Repairs since boot, by kind (reload of a unit, rebind in place, prune of a stale leftover) and result.");
        json_object_foreach(json_object_get(state, "repairs"), k1, v1)
                json_object_foreach(v1, k2, v2)
                        fprintf(out, PREFIX "repairs_total{kind=\"%s\",result=\"%s\"} %lld\n", k1, k2,
                                (long long) json_integer_value(v2));
        json_t *repair = json_object_get(state, "last_repair");
        if (repair) {
                header(out, "last_repair_duration_seconds", "gauge",
                       "How long the last repair took, from the diagnosis to verified fresh rules.");
                fprintf(out, PREFIX "last_repair_duration_seconds %.6f\n",
                        json_real_value(json_object_get(repair, "seconds")));
                header(out, "last_repair_timestamp_seconds", "gauge", "When the last repair ended.");
                fprintf(out, PREFIX "last_repair_timestamp_seconds %.3f\n",
                        json_real_value(json_object_get(repair, "time")));
                header(out, "last_repair_success", "gauge",
                       "1 when the last repair left the rules verified fresh and took nothing with it; 0 when it "
                       "failed, was refused, or left references stale.");
                fprintf(out, PREFIX "last_repair_success %d\n", json_is_true(json_object_get(repair, "success")));
        }
        header(out, "last_run_timestamp_seconds", "gauge", "When the last run (hook, trigger, watcher, by hand, check) ended.");
        fprintf(out, PREFIX "last_run_timestamp_seconds %.3f\n", json_real_value(json_object_get(state, "last_run")));
        if (json_object_get(state, "last_fresh")) {
                header(out, "last_fresh_timestamp_seconds", "gauge",
                       "When a run last verified that no reference is stale.");
                fprintf(out, PREFIX "last_fresh_timestamp_seconds %.3f\n",
                        json_real_value(json_object_get(state, "last_fresh")));
        }
        return ferror(out) ? -EIO : 0;
}

/* The textfile: readable by node_exporter's user, in a directory we do not own (it is node_exporter's). A
 * temporary name it skips (not *.prom), then rename; not synced: the next run writes it whole again. */
static int write_textfile(const char *dir, const char *name, const char *text, size_t size) {
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0)
                return negative_errno();
        char tmp[128];
        snprintf(tmp, sizeof(tmp), ".%s.%ld.tmp", name, (long) getpid());
        (void) unlinkat(dfd, tmp, 0);
        _cleanup_close_ int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0)
                return negative_errno();
        int r = 0;
        for (size_t done = 0; done < size && r >= 0;) {
                ssize_t n = write(fd, text + done, size - done);
                if (n < 0 && errno != EINTR)
                        r = negative_errno();
                else if (n > 0)
                        done += (size_t) n;
        }
        /* the umask does not decide who may read it */
        if (r >= 0 && fchmod(fd, 0644) < 0)
                r = negative_errno();
        if (r >= 0 && renameat(dfd, tmp, dfd, name) < 0)
                r = negative_errno();
        if (r < 0)
                (void) unlinkat(dfd, tmp, 0);
        return r;
}

static bool metrics_dir_exists(const char *dir) {
        struct stat st;
        return dir && dir[0] && stat(dir, &st) >= 0 && S_ISDIR(st.st_mode);
}

int metrics_update(const char *run_dir, const char *metrics_dir, const struct metrics_run *run) {
        _cleanup_free_ char *text = NULL, *out = NULL;
        _cleanup_(json_decrefp) json_t *state = NULL;
        size_t size = 0, out_size = 0;
        int r = file_read(run_dir, METRICS_STATE_FILE, STATE_MAX_SIZE, &text, &size);
        if (r >= 0)
                state = json_loadb(text, size, 0, NULL);
        if (!json_is_object(state)) {
                /* none yet, or unreadable: counting starts again (a counter reset, as after a boot) */
                json_decref(state);
                if (!(state = json_object()))
                        return -ENOMEM;
        }
        if ((r = metrics_state_add(state, run)) < 0)
                return r;
        free(text);
        text = json_dumps(state, JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        if ((r = file_replace_unsynced(run_dir, METRICS_STATE_FILE, text, strlen(text))) < 0)
                return r;

        if (!metrics_dir_exists(metrics_dir))
                return 0;
        FILE *f = open_memstream(&out, &out_size);
        if (!f)
                return -ENOMEM;
        r = metrics_render(f, state);
        if (fclose(f) != 0 || r < 0)
                return r < 0 ? r : -ENOMEM;
        return write_textfile(metrics_dir, METRICS_FILE, out, out_size);
}

int metrics_apt_ran(const char *metrics_dir, double time) {
        char text[512];
        if (!metrics_dir_exists(metrics_dir))
                return 0;
        int n = snprintf(text, sizeof(text),
                         "# HELP " PREFIX "apt_dpkg_run_timestamp_seconds When apt (or another frontend holding "
                         "its lock) last ran dpkg: its Post-Invoke hook, a reconcile run, follows.\n"
                         "# TYPE " PREFIX "apt_dpkg_run_timestamp_seconds gauge\n" PREFIX
                         "apt_dpkg_run_timestamp_seconds %.3f\n",
                         time);
        return write_textfile(metrics_dir, METRICS_APT_FILE, text, (size_t) n);
}

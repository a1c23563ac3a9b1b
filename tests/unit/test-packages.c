/* SPDX-License-Identifier: GPL-2.0-or-later */
/* dpkg's status stream (captured from real dpkg), the events it leaves in the run dir, versions read by the real
 * libapt-pkg tag parser, and unit file → package through file lists, on a miniature dpkg database. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apt-shim.h"
#include "fileio.h"
#include "packages.h"

#define DPKG FIXTURES "/dpkg"

static void test_line_parse(void **state) {
        const char *action, *package;
        char l1[] = "processing: upgrade: tailscale\n", l2[] = "processing: configure: libfoo1:i386\n";
        char l3[] = "status: tailscale: half-installed\n", l4[] = "processing: : x\n", l5[] = "processing: upgrade: \n";

        assert_int_equal(dpkg_status_line_parse(l1, &action, &package), 1);
        assert_string_equal(action, "upgrade");
        assert_string_equal(package, "tailscale");
        assert_int_equal(dpkg_status_line_parse(l2, &action, &package), 1);
        assert_string_equal(package, "libfoo1:i386");
        assert_int_equal(dpkg_status_line_parse(l3, &action, &package), 0);
        assert_int_equal(dpkg_status_line_parse(l4, &action, &package), 0);
        assert_int_equal(dpkg_status_line_parse(l5, &action, &package), 0);
}

static void test_versions(void **state) {
        struct apt_shim_entry *v;
        size_t n;
        assert_int_equal(apt_shim_dpkg_versions(DPKG "/status", &v, &n), 0);
        /* old-vpn has only its configuration left: not installed */
        assert_int_equal(n, 2);
        assert_string_equal(v[0].key, "tailscale");
        assert_string_equal(v[0].value, "1.0");
        assert_string_equal(v[1].value, "2.0-1");
        apt_shim_entries_free(v, n);
        assert_int_equal(apt_shim_dpkg_versions(DPKG "/no-such-status", &v, &n), -ENOENT);
}

static void make_run_dir(char dir[64]) {
        strcpy(dir, "/tmp/rau-test-packages-XXXXXX");
        assert_non_null(mkdtemp(dir));
}

static void remove_run_dir(const char *dir) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
}

static void test_consume_and_take(void **state) {
        char dir[64];
        struct package_changes c;
        make_run_dir(dir);

        FILE *in = fopen(DPKG "/status-logger.stream", "re");
        assert_non_null(in);
        assert_int_equal(dpkg_status_consume(in, dir, DPKG "/status"), 0);
        fclose(in);

        /* Each action once, in the order dpkg announced them; the version is the one before the run. */
        char *text;
        size_t size;
        assert_int_equal(file_read(dir, PACKAGES_EVENTS_FILE, 1 << 20, &text, &size), 0);
        assert_non_null(strstr(text, "\"action\":\"install\""));
        assert_non_null(strstr(text, "\"version_before\":\"1.0\""));
        free(text);

        assert_int_equal(package_changes_take(dir, &c), 0);
        assert_int_equal(c.n_changes, 1);
        assert_string_equal(c.changes[0].name, "tailscale");
        assert_string_equal(c.changes[0].version_before, "1.0");
        assert_string_equal(c.changes[0].actions, "install configure upgrade remove");
        package_changes_done(&c);

        /* Taken means gone: the next run is not told the same dpkg run again. */
        assert_int_equal(package_changes_take(dir, &c), 0);
        assert_int_equal(c.n_changes, 0);
        remove_run_dir(dir);
}

/* A status-logger appending while runs take the events: every event is taken once, none lost (before the
 * events lock, an append into the file a run had just renamed and read was lost), none twice. */
static void test_take_while_logging(void **state) {
        enum { N = 3000 };
        char dir[64];
        int pipefd[2];
        make_run_dir(dir);
        assert_int_equal(pipe(pipefd), 0);
        /* the whole stream first (the pipe made big enough): the logger then runs flat out on its own */
        assert_true(fcntl(pipefd[1], F_SETPIPE_SZ, 1 << 20) >= (1 << 17));
        FILE *out = fdopen(pipefd[1], "w");
        assert_non_null(out);
        for (int i = 0; i < N; i++)
                fprintf(out, "processing: install: p%d\n", i);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                fclose(out);
                FILE *in = fdopen(pipefd[0], "r");
                _exit(in && dpkg_status_consume(in, dir, DPKG "/status") == 0 ? 0 : 1);
        }
        close(pipefd[0]);
        fclose(out);

        static bool seen[N];
        size_t taken = 0, doubled = 0;
        bool done = false;
        while (!done) {
                int status;
                /* the last take after the logger exited collects what it wrote last */
                if (waitpid(pid, &status, WNOHANG) == pid) {
                        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
                        done = true;
                }
                struct package_changes c;
                assert_int_equal(package_changes_take(dir, &c), 0);
                for (size_t k = 0; k < c.n_changes; k++) {
                        int n = atoi(c.changes[k].name + 1);
                        assert_true(n >= 0 && n < N);
                        doubled += seen[n];
                        seen[n] = true;
                        taken++;
                }
                package_changes_done(&c);
        }
        assert_int_equal(doubled, 0);
        assert_int_equal(taken, N);
        remove_run_dir(dir);
}

static void test_take_skips_a_torn_line(void **state) {
        char dir[64];
        struct package_changes c;
        static const char events[] = "{\"time\": 1, \"package\": \"tailscale\", \"action\": \"upgrade\", "
                                     "\"version_before\": \"1.0\"}\n{\"time\": 2, \"package\": \"wireg";
        make_run_dir(dir);
        assert_int_equal(file_append(dir, PACKAGES_EVENTS_FILE, events, sizeof(events) - 1), 0);
        assert_int_equal(package_changes_take(dir, &c), 0);
        assert_int_equal(c.n_changes, 1);
        assert_string_equal(c.changes[0].actions, "upgrade");
        package_changes_done(&c);
        remove_run_dir(dir);
}

/* Found by fuzz-dpkg-status (the input is tests/fixtures/fuzz/dpkg-status-not-utf8.stream): its third event names
 * "t\x9f\x8dlscale". A name that is not UTF-8 made the event unencodable as JSON; that stopped the stream, reported
 * as "Cannot allocate memory", and every later event was lost. A line that names no package name is not dpkg's. */
static void test_consume_skips_what_is_not_a_package(void **state) {
        char dir[64];
        struct package_changes c;
        const char *action, *package;
        char l1[] = "processing: upgrade: tail\xffscale\n", l2[] = "processing: upgrade: -x\n",
             l3[] = "processing: upgrade: a:\n", l4[] = "processing: upgrade: a:b@\n", l5[] = "processing: upgrade: Foo.1+b~\n";
        assert_int_equal(dpkg_status_line_parse(l1, &action, &package), 0);
        assert_int_equal(dpkg_status_line_parse(l2, &action, &package), 0);
        assert_int_equal(dpkg_status_line_parse(l3, &action, &package), 0);
        assert_int_equal(dpkg_status_line_parse(l4, &action, &package), 0);
        assert_int_equal(dpkg_status_line_parse(l5, &action, &package), 0); /* '~' is a version's, not a name's */

        make_run_dir(dir);
        FILE *in = fopen(FIXTURES "/fuzz/dpkg-status-not-utf8.stream", "re");
        assert_non_null(in);
        assert_int_equal(dpkg_status_consume(in, dir, DPKG "/status"), 0);
        fclose(in);
        assert_int_equal(package_changes_take(dir, &c), 0);
        /* the line after the bad one still counts */
        assert_int_equal(c.n_changes, 2);
        assert_string_equal(c.changes[0].name, "tailscalj");
        assert_string_equal(c.changes[0].actions, "install");
        assert_string_equal(c.changes[1].name, "tailscale");
        assert_string_equal(c.changes[1].actions, "upgrade remove");
        package_changes_done(&c);
        remove_run_dir(dir);
}

static void test_owning(void **state) {
        char *name;

        /* the real dpkg-query, on the miniature database */
        assert_int_equal(package_owning(DPKG, "/lib/systemd/system/tailscaled.service", &name), 0);
        assert_string_equal(name, "tailscale");
        free(name);
        /* systemd may name the /usr-merged path; dpkg knows the one the package shipped */
        assert_int_equal(package_owning(DPKG, "/usr/lib/systemd/system/tailscaled.service", &name), 0);
        assert_string_equal(name, "tailscale");
        free(name);
        /* a multi-arch package answers "libfoo1:i386": the record wants its name */
        assert_int_equal(package_owning(DPKG, "/usr/lib/systemd/system/foo.service", &name), 0);
        assert_string_equal(name, "libfoo1");
        free(name);
        assert_int_equal(package_owning(DPKG, "/etc/systemd/system/local.service", &name), -ENOENT);
        /* a prefix of a listed path is not that path */
        assert_int_equal(package_owning(DPKG, "/lib/systemd/system/tailscaled", &name), -ENOENT);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_line_parse),       cmocka_unit_test(test_versions),
                cmocka_unit_test(test_consume_and_take), cmocka_unit_test(test_take_skips_a_torn_line),
                cmocka_unit_test(test_owning),           cmocka_unit_test(test_take_while_logging),
                cmocka_unit_test(test_consume_skips_what_is_not_a_package),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

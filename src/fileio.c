/* SPDX-License-Identifier: GPL-2.0-or-later */
/* fileio.c: atomic replace, synced append, bounded read and the run lock, all relative to a directory fd. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"

static int dir_open(const char *path) {
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        return fd < 0 ? negative_errno() : fd;
}

int dir_ensure(const char *path) {
        struct stat st;

        if (mkdir(path, 0700) < 0 && errno != EEXIST)
                return negative_errno();
        if (lstat(path, &st) < 0)
                return negative_errno();
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        /* planted by someone else, or open to others: whatever is written there could be swapped under us */
        if (st.st_uid != geteuid() || (st.st_mode & 0022))
                return -EPERM;
        return 0;
}

static int write_all(int fd, const void *data, size_t size) {
        const char *p = data;
        while (size > 0) {
                ssize_t n = write(fd, p, size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                p += n;
                size -= (size_t) n;
        }
        return 0;
}

/* Removes what an interrupted replace of name (NULL: of any file) left (".NAME.*.tmp": killed between the link
 * of its temporary and the rename, by the hook's time budget say). Runs hold the lock, so none of them is being
 * written. */
static void remove_leftovers(int dfd, const char *name) {
        _cleanup_close_ int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        _cleanup_(closedirp) DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        size_t n = name ? strlen(name) : 0;
        if (!d)
                return;
        fd = -1; /* the DIR owns it now */
        for (struct dirent *de; (de = readdir(d));)
                if (de->d_name[0] == '.' && (!name || (strncmp(de->d_name + 1, name, n) == 0 && de->d_name[n + 1] == '.')) &&
                    strlen(de->d_name) > n + 5 && streq(de->d_name + strlen(de->d_name) - 4, ".tmp") &&
                    de->d_type != DT_DIR)
                        (void) unlinkat(dirfd(d), de->d_name, 0);
}

int dir_remove_leftovers(const char *dir) {
        _cleanup_close_ int dfd = dir_open(dir);
        if (dfd < 0)
                return dfd;
        remove_leftovers(dfd, NULL);
        return 0;
}

static int replace(const char *dir, const char *name, const void *data, size_t size, bool sync) {
        _cleanup_close_ int dfd = dir_open(dir);
        if (dfd < 0)
                return dfd;
        remove_leftovers(dfd, name);

        /* An unnamed file first (O_TMPFILE): a run killed before the rename leaves nothing behind. */
        _cleanup_close_ int fd = openat(dfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
        bool named = false;
        char tmp[256];
        int n = snprintf(tmp, sizeof(tmp), ".%s.%ld.tmp", name, (long) getpid());
        if (n < 0 || (size_t) n >= sizeof(tmp))
                return -ENAMETOOLONG;
        if (fd < 0) {
                /* a file system without O_TMPFILE: a named temporary, removed on failure and by the next run */
                (void) unlinkat(dfd, tmp, 0);
                fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (fd < 0)
                        return negative_errno();
                named = true;
        }

        int r = write_all(fd, data, size);
        if (r >= 0 && sync && fsync(fd) < 0)
                r = negative_errno();
        if (r >= 0 && !named) {
                char self[64];
                snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
                (void) unlinkat(dfd, tmp, 0);
                if (linkat(AT_FDCWD, self, dfd, tmp, AT_SYMLINK_FOLLOW) < 0)
                        r = negative_errno();
                else
                        named = true;
        }
        if (r >= 0 && renameat(dfd, tmp, dfd, name) < 0)
                r = negative_errno();
        if (r < 0) {
                if (named)
                        (void) unlinkat(dfd, tmp, 0);
                return r;
        }
        /* The rename itself must survive a crash too. */
        if (sync && fsync(dfd) < 0)
                return negative_errno();
        return 0;
}

int file_replace(const char *dir, const char *name, const void *data, size_t size) {
        return replace(dir, name, data, size, true);
}

int file_replace_unsynced(const char *dir, const char *name, const void *data, size_t size) {
        return replace(dir, name, data, size, false);
}

/* Opens name in dfd as a state file: never through a symlink, and only a regular file (O_NONBLOCK: a FIFO planted
 * in its place must not hang the run before it is refused). Returns the fd, st filled, or a negative errno. */
static int state_file_open(int dfd, const char *name, int flags, struct stat *st) {
        _cleanup_close_ int fd = openat(dfd, name, flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, st) < 0)
                return negative_errno();
        if (!S_ISREG(st->st_mode))
                return -EBADFD;
        return TAKE_FD(fd);
}

int file_append(const char *dir, const char *name, const void *data, size_t size) {
        _cleanup_close_ int dfd = dir_open(dir);
        if (dfd < 0)
                return dfd;

        struct stat st;
        _cleanup_close_ int fd = state_file_open(dfd, name, O_RDWR | O_APPEND | O_CREAT, &st);
        if (fd < 0)
                return fd;

        /* A record starts on a line of its own, even after a torn last line (a crash, a full disk elsewhere). */
        char last = '\n';
        if (st.st_size > 0 && pread(fd, &last, 1, st.st_size - 1) != 1)
                last = '\n';
        int r = last == '\n' ? 0 : write_all(fd, "\n", 1);

        /* A whole record or nothing: a short write (a full disk) is cut off again, so that the next record does
         * not end up glued to half of this one. */
        if (r >= 0)
                r = write_all(fd, data, size);
        if (r >= 0 && fsync(fd) < 0)
                r = negative_errno();
        if (r < 0) {
                (void) ftruncate(fd, st.st_size);
                (void) fsync(fd);
                return r;
        }
        return 0;
}

int file_rotate(const char *dir, const char *name, const char *rotated, uint64_t max_bytes, size_t size) {
        _cleanup_close_ int dfd = dir_open(dir);
        struct stat st;
        if (dfd < 0)
                return dfd;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : negative_errno();
        if (st.st_size == 0 || (uint64_t) st.st_size + size <= max_bytes)
                return 0;
        if (renameat(dfd, name, dfd, rotated) < 0)
                return negative_errno();
        return fsync(dfd) < 0 ? negative_errno() : 0;
}

int file_open_read(const char *dir, const char *name, FILE **ret) {
        _cleanup_close_ int dfd = dir_open(dir);
        if (dfd < 0)
                return dfd;
        struct stat st;
        _cleanup_close_ int fd = state_file_open(dfd, name, O_RDONLY, &st);
        if (fd < 0)
                return fd;
        FILE *f = fdopen(fd, "re");
        if (!f)
                return negative_errno();
        fd = -1;
        *ret = f;
        return 0;
}

int file_read(const char *dir, const char *name, size_t max_size, char **ret_data, size_t *ret_size) {
        _cleanup_close_ int dfd = dir_open(dir);
        if (dfd < 0)
                return dfd;

        struct stat st;
        _cleanup_close_ int fd = state_file_open(dfd, name, O_RDONLY, &st);
        if (fd < 0)
                return fd;
        if ((size_t) st.st_size > max_size)
                return -EFBIG;

        _cleanup_free_ char *buf = malloc((size_t) st.st_size + 1);
        if (!buf)
                return -ENOMEM;

        size_t have = 0;
        for (;;) {
                if (have > (size_t) st.st_size)
                        return -EFBIG;
                ssize_t k = read(fd, buf + have, (size_t) st.st_size + 1 - have);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        break;
                have += (size_t) k;
        }
        buf[have] = '\0';

        *ret_data = TAKE_PTR(buf);
        if (ret_size)
                *ret_size = have;
        return 0;
}

int file_lock(const char *dir, const char *name, unsigned timeout_ms) {
        _cleanup_close_ int dfd = dir_open(dir);
        if (dfd < 0)
                return dfd;

        struct stat st;
        _cleanup_close_ int fd = state_file_open(dfd, name, O_RDWR | O_CREAT, &st);
        if (fd < 0)
                return fd;

        /* Poll instead of a blocking flock() so that the wait is bounded without signals. */
        for (unsigned waited = 0;; waited += 10) {
                if (flock(fd, LOCK_EX | LOCK_NB) >= 0)
                        return TAKE_FD(fd);
                if (errno != EWOULDBLOCK)
                        return negative_errno();
                if (waited >= timeout_ms)
                        return -ETIMEDOUT;
                struct timespec ts = {.tv_nsec = 10 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
}

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

int file_replace(const char *dir, const char *name, const void *data, size_t size) {
        _cleanup_close_ int dfd = dir_open(dir);
        if (dfd < 0)
                return dfd;

        char tmp[256];
        int n = snprintf(tmp, sizeof(tmp), ".%s.%ld.tmp", name, (long) getpid());
        if (n < 0 || (size_t) n >= sizeof(tmp))
                return -ENAMETOOLONG;

        (void) unlinkat(dfd, tmp, 0);
        _cleanup_close_ int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return negative_errno();

        int r = write_all(fd, data, size);
        if (r >= 0 && fsync(fd) < 0)
                r = negative_errno();
        if (r >= 0 && renameat(dfd, tmp, dfd, name) < 0)
                r = negative_errno();
        if (r < 0) {
                (void) unlinkat(dfd, tmp, 0);
                return r;
        }
        /* The rename itself must survive a crash too. */
        if (fsync(dfd) < 0)
                return negative_errno();
        return 0;
}

int file_append(const char *dir, const char *name, const void *data, size_t size) {
        _cleanup_close_ int dfd = dir_open(dir);
        if (dfd < 0)
                return dfd;

        _cleanup_close_ int fd = openat(dfd, name, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return negative_errno();

        int r = write_all(fd, data, size);
        if (r < 0)
                return r;
        return fsync(fd) < 0 ? negative_errno() : 0;
}

int file_read(const char *dir, const char *name, size_t max_size, char **ret_data, size_t *ret_size) {
        _cleanup_close_ int dfd = dir_open(dir);
        if (dfd < 0)
                return dfd;

        _cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();

        struct stat st;
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
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

        _cleanup_close_ int fd = openat(dfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return negative_errno();

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

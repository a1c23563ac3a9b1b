/* SPDX-License-Identifier: GPL-2.0-or-later */
/* fileio.h: state files. Root-only, never through a symlink, replaced by rename, appended with O_APPEND + fsync. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* Creates dir (one level) with mode 0700 if missing; refuses a symlink or a non-directory. */
int dir_ensure(const char *path);

/* Removes the temporaries of replaces that were killed before their rename (under the lock). */
int dir_remove_leftovers(const char *dir);

/* Writes data to dir/name through a temporary file: write, fsync, rename, fsync(dir). Mode 0600. */
int file_replace(const char *dir, const char *name, const void *data, size_t size);
/* The same, whole or not at all, but not synced: for what may go back one step after a crash (the counters
 * for the metrics, which Prometheus then reads as a reset). */
int file_replace_unsynced(const char *dir, const char *name, const void *data, size_t size);

/* Appends one record to dir/name (created 0600) and fsyncs it before returning. */
int file_append(const char *dir, const char *name, const void *data, size_t size);

/* Renames dir/name to dir/rotated (replacing it) when appending size more bytes would take it beyond max_bytes. */
int file_rotate(const char *dir, const char *name, const char *rotated, uint64_t max_bytes, size_t size);

/* Opens dir/name for reading as a stream (no symlinks, regular files only). -ENOENT when it does not exist. */
int file_open_read(const char *dir, const char *name, FILE **ret);

/* Reads dir/name whole (no symlinks, at most max_size bytes). -ENOENT when it does not exist. */
int file_read(const char *dir, const char *name, size_t max_size, char **ret_data, size_t *ret_size);

/* Takes an exclusive lock on dir/name, waiting at most timeout_ms. Returns the fd that holds it. */
int file_lock(const char *dir, const char *name, unsigned timeout_ms);

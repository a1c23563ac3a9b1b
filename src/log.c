/* SPDX-License-Identifier: GPL-2.0-or-later */
/* log.c: the stderr logger. The maximum level is part of the parsed configuration, the only global. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static int log_max_level = LOG_WARNING;

void log_set_max_level(int level) {
        log_max_level = level;
}

int log_get_max_level(void) {
        return log_max_level;
}

int log_internal(int level, int error, const char *file, int line, const char *func, const char *format, ...) {
        int saved_errno = errno;
        if (error < 0)
                error = -error;

        if (level <= log_max_level) {
                char buf[2048];
                va_list ap;

                /* Make %m show the error we were given, not whatever errno holds. */
                errno = error;
                va_start(ap, format);
                vsnprintf(buf, sizeof(buf), format, ap);
                va_end(ap);

                if (log_max_level >= LOG_DEBUG)
                        fprintf(stderr, "reconcile-after-upgrade: %s (%s:%d %s)\n", buf, file, line, func);
                else
                        fprintf(stderr, "reconcile-after-upgrade: %s\n", buf);
        }

        errno = saved_errno;
        return -error;
}

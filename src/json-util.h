/* SPDX-License-Identifier: GPL-2.0-or-later */
/* json-util.h: jansson cleanup helper. */
#pragma once

#include <jansson.h>

#include "macro.h"

/* jansson itself provides json_decrefp() for _cleanup_. */

static inline json_t *json_string_or_null(const char *s) {
        return s && *s ? json_string(s) : json_null();
}

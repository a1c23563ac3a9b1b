/* SPDX-License-Identifier: GPL-2.0-or-later */
/* names.h: a name the kernel holds (interface, table, chain, set) is any bytes, and it goes into JSON (which must
 * be UTF-8) and into lines apt and the journal show. The escaped form: every byte that is a backslash, a control
 * character or part of an invalid UTF-8 sequence becomes \xNN; everything else stays, so ordinary names are
 * unchanged. Unescaping gives back the bytes exactly. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

bool name_needs_escape(const char *s);

/* NULL on ENOMEM. */
char *name_escape(const char *s);

/* The bytes of an escaped name into buf (size bytes with the NUL). -ENAMETOOLONG when they do not fit, -EINVAL
 * when s has a NUL escaped. A string that is not escaped (written before escaping existed) comes back as is,
 * but for its backslashes. */
int name_unescape(const char *s, char *buf, size_t size);
int name_unescape_dup(const char *s, char **ret);

/* Escapes s into buf (size bytes), cut with "..." when it does not fit; returns buf. For lines a person reads:
 * printf("%s", NAME(name)). */
#define NAME_ESCAPED_MAX (4 * 256 + 1) /* nf_tables names are at most 256 bytes */
char *name_escape_into(const char *s, char *buf, size_t size);
#define NAME(s) name_escape_into((s), (char[NAME_ESCAPED_MAX]){}, NAME_ESCAPED_MAX)

/* A JSON string holding the escaped name; JSON null for NULL. NULL on ENOMEM. */
json_t *json_name(const char *s);
/* A JSON array of them. NULL on ENOMEM. */
json_t *json_names(const char *const *names, size_t n);
/* Reads a JSON array of escaped interface names back: a NULL-terminated array (array NULL: an empty one).
 * -EBADMSG when an entry is not a string or not a name. */
int json_names_parse(json_t *array, char ***ret, size_t *ret_n);

/* SPDX-License-Identifier: GPL-2.0-or-later */
/* names.c: the escaped form of names, for JSON and for lines a person reads (see names.h). */
#include <errno.h>
#include <net/if.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "names.h"

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF),
 * or 0. */
static size_t utf8_sequence(const unsigned char *s) {
        unsigned char c = s[0];
        size_t n;
        uint32_t cp;

        if (c < 0x80)
                return 1;
        if (c >= 0xc2 && c <= 0xdf)
                n = 2, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
                n = 3, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
                n = 4, cp = c & 0x07;
        else
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0; /* also stops at the NUL */
                cp = (cp << 6) | (s[i] & 0x3f);
        }
        if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
                return 0;
        return n;
}

static bool byte_escaped(unsigned char c) {
        return c < 0x20 || c == 0x7f || c == '\\';
}

bool name_needs_escape(const char *s) {
        const unsigned char *p = (const unsigned char *) s;
        while (*p) {
                size_t n = utf8_sequence(p);
                if (n == 0 || (n == 1 && byte_escaped(*p)))
                        return true;
                p += n;
        }
        return false;
}

char *name_escape_into(const char *s, char *buf, size_t size) {
        static const char hex[] = "0123456789abcdef";
        const unsigned char *p = (const unsigned char *) s;
        char *o = buf;
        size_t cut = 0; /* the end of the last whole unit that leaves room for "..." */

        if (size < 4) {
                if (size > 0)
                        buf[0] = '\0';
                return buf;
        }
        while (*p) {
                size_t n = utf8_sequence(p);
                bool escaped = n == 0 || (n == 1 && byte_escaped(*p));
                if ((size_t) (o - buf) + (escaped ? 4 : n) + 1 > size) {
                        memcpy(buf + cut, "...", 4);
                        return buf;
                }
                if (escaped) {
                        *o++ = '\\';
                        *o++ = 'x';
                        *o++ = hex[*p >> 4];
                        *o++ = hex[*p & 0xf];
                        p++;
                } else {
                        memcpy(o, p, n);
                        o += n;
                        p += n;
                }
                if ((size_t) (o - buf) + 4 <= size)
                        cut = (size_t) (o - buf);
        }
        *o = '\0';
        return buf;
}

char *name_escape(const char *s) {
        size_t size = 4 * strlen(s) + 1;
        char *out = malloc(size);
        return out ? name_escape_into(s, out, size) : NULL;
}

static int hex_digit(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

int name_unescape(const char *s, char *buf, size_t size) {
        size_t n = 0;
        for (const char *p = s; *p; n++) {
                int hi, lo;
                char c = *p;
                if (p[0] == '\\' && p[1] == 'x' && (hi = hex_digit(p[2])) >= 0 && (lo = hex_digit(p[3])) >= 0) {
                        c = (char) (hi << 4 | lo);
                        if (c == '\0')
                                return -EINVAL;
                        p += 4;
                } else
                        p++;
                if (n + 1 >= size)
                        return -ENAMETOOLONG;
                buf[n] = c;
        }
        if (size == 0)
                return -ENAMETOOLONG;
        buf[n] = '\0';
        return 0;
}

int name_unescape_dup(const char *s, char **ret) {
        size_t size = strlen(s) + 1;
        char *buf = malloc(size);
        if (!buf)
                return -ENOMEM;
        int r = name_unescape(s, buf, size);
        if (r < 0) {
                free(buf);
                return r;
        }
        *ret = buf;
        return 0;
}

json_t *json_name(const char *s) {
        if (!s)
                return json_null();
        if (!name_needs_escape(s))
                return json_string(s);
        _cleanup_free_ char *escaped = name_escape(s);
        return escaped ? json_string(escaped) : NULL;
}

json_t *json_names(const char *const *names, size_t n) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < n; i++)
                if (json_array_append_new(a, json_name(names[i])) < 0)
                        return json_decref(a), NULL;
        return a;
}

int json_names_parse(json_t *array, char ***ret, size_t *ret_n) {
        char **names = calloc(json_array_size(array) + 1, sizeof(char *));
        size_t n = 0, i;
        json_t *v;
        if (!names)
                return -ENOMEM;
        *ret = names;
        *ret_n = 0;
        json_array_foreach(array, i, v) {
                char name[IFNAMSIZ];
                if (!json_is_string(v) || name_unescape(json_string_value(v), name, sizeof(name)) < 0)
                        return -EBADMSG;
                if (!(names[n] = strdup(name)))
                        return -ENOMEM;
                *ret_n = ++n;
        }
        return 0;
}

/* SPDX-License-Identifier: GPL-2.0-or-later */
/* fuzz-names: the escaped form of names (names.h), which every other reader relies on: for any bytes, the escaped
 * form is UTF-8 JSON accepts, it unescapes to the bytes, and a cut form is still UTF-8. Input: a name. */
#include "fuzz.h"
#include "names.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        fuzz_quiet();
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *name = fuzz_string(data, size), *escaped = NULL, *back = NULL;

        if (!(escaped = name_escape(name)))
                abort();
        json_t *j = json_name(name);
        if (!j || !json_is_string(j) || strcmp(json_string_value(j), escaped) != 0)
                abort();
        json_decref(j);
        if (name_unescape_dup(escaped, &back) < 0 || strcmp(back, name) != 0)
                abort();
        if (name_needs_escape(name) != (strcmp(name, escaped) != 0))
                abort();

        /* cut to every size: still UTF-8, never longer than asked */
        for (size_t n = 0; n < 40; n++) {
                char buf[40];
                name_escape_into(name, buf, n);
                if (n > 0 && (strlen(buf) >= n || name_needs_escape(buf) != (strchr(buf, '\\') != NULL)))
                        abort();
        }
        return 0;
}

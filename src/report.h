/* SPDX-License-Identifier: GPL-2.0-or-later */
/* report.h: the findings as JSON (the contract other tools read) and as a short human report, from one source. */
#pragma once

#include <jansson.h>
#include <stdio.h>

#include "diagnose.h"

/* The `check --json` object: {"stale": [...], "interfaces": [...], ...}. */
json_t *report_json(const struct findings *f);

/* The rules that could not be read, and so were not checked (JSON array, and one line). */
json_t *report_unreadable_json(const struct findings *f);
void report_unreadable(const struct findings *f, FILE *out);

/* What an administrator reads: which table, which rule, which interface, what to run. */
int report_human(const struct findings *f, FILE *out);

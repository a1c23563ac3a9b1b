/* SPDX-License-Identifier: GPL-2.0-or-later */
/* twins.h: stale leftovers beside their fresh copies. A script that adds rules without flushing its table leaves,
 * after a reload, each stale rule next to a fresh twin (same chain, same statement, the index now resolving to the
 * name it was) — and a stale "iif != …" keeps matching everything. Those leftovers, and only those, are deleted. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "diagnose.h"

/* Finds the leftovers among f's stale references. Returns a JSON array of {"family","table","chain","handle"} for
 * rules and {"family","table","set","element"} for set elements, each with "why". Uses libnftables (its JSON
 * listing of the affected chains and sets only). */
int twins_find(const struct findings *f, const struct link_table *links, json_t **ret);

/* Deletes them in one nft transaction. */
int twins_prune(json_t *twins);

/* Token categories for aggregating shift metrics: built-in word lists for visually grounded
 * words (objects, colours, spatial terms) vs function words, or a user CSV "word,category".
 * A token piece matches after dropping a leading "▁" and ASCII-lowercasing. */
#ifndef REPRSHIFT_CATEGORIES_H
#define REPRSHIFT_CATEGORIES_H

#include "reprshift/error.h"

typedef struct rs_categories rs_categories;

/* The built-in lists (categories: object, colour, spatial, function). */
int categories_builtin(rs_categories **out, rs_err *err);
/* Load "word,category" lines (# comments and blank lines skipped); errors name file:line. */
int categories_load(rs_categories **out, const char *path, rs_err *err);
/* Category of a token piece, or NULL when it is in no list. */
const char *categories_lookup(const rs_categories *c, const char *piece);
/* Number of distinct categories and the i-th name (stable order). */
int categories_count(const rs_categories *c);
const char *categories_name(const rs_categories *c, int i);
void categories_free(rs_categories *c);

#endif

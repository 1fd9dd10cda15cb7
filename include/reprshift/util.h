/* Small helpers shared by every layer (src/base/util.c). */
#ifndef REPRSHIFT_UTIL_H
#define REPRSHIFT_UTIL_H

/* Does s end with suffix? */
int rs_ends_with(const char *s, const char *suffix);
/* qsort comparator for doubles, ascending (NaN compares equal to everything: filter first). */
int rs_cmp_double(const void *a, const void *b);

#endif

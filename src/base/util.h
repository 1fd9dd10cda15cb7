/* Small helpers shared by every layer (src/base/util.c). */
#ifndef REPRSHIFT_UTIL_H
#define REPRSHIFT_UTIL_H

/* Does s end with suffix? */
int rs_ends_with(const char *s, const char *suffix);
/* qsort comparator for doubles, ascending (NaN compares equal to everything: filter first). */
int rs_cmp_double(const void *a, const void *b);

/* numpy.percentile's default (linear interpolation) of sorted v[0..n-1] at q percent. */
double rs_percentile_sorted(const double *v, int n, double q_percent);

#endif

/* Helpers shared by the benchmark programs under bench/ (header only, as CMake makes each C
 * file there an executable): peak RSS and a qsort comparator for medians. */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H
#include <sys/resource.h>

/* Peak resident set size of this process so far, in GiB (getrusage: ru_maxrss is in KiB). */
static inline double peak_rss_gb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / (1024.0 * 1024.0);
}

/* qsort comparator for doubles, ascending (medians of timed rounds). */
static inline int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
#endif

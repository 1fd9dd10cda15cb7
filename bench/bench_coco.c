/* Benchmark: stream-load a large COCO instances file and report wall time, throughput and
 * peak RSS (getrusage). Generate the input with tools/reference/gen_big_coco.py (~530 MB,
 * shaped like instances_train2017.json); do not commit it.
 * usage: bench_coco FILE.json [--group-counts] */
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "reprshift/coco.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_coco FILE.json [--group-counts]\n");
        return 2;
    }
    rs_err err = {0};
    coco_data *d;
    double t0 = now();
    if (coco_load(argv[1], &d, &err)) {
        fprintf(stderr, "bench_coco: %s\n", err.msg);
        return 1;
    }
    double t1 = now();
    FILE *f = fopen(argv[1], "rb");
    fseek(f, 0, SEEK_END);
    double mb = (double)ftell(f) / 1e6;
    fclose(f);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("file %.1f MB: %zu images, %zu instances, %zu captions, %zu categories\n", mb, d->n_images, d->n_instances,
           d->n_captions, d->n_categories);
    printf("load %.2f s (%.0f MB/s), peak RSS %.1f MB\n", t1 - t0, mb / (t1 - t0), (double)ru.ru_maxrss / 1024.0);
    if (argc > 2 && !strcmp(argv[2], "--group-counts")) {
        coco_sample_opts o;
        coco_sample_defaults(&o);
        coco_sample_stats st;
        double t2 = now();
        if (coco_group_counts(d, &o, &st, &err)) {
            fprintf(stderr, "bench_coco: %s\n", err.msg);
            return 1;
        }
        printf("group counts %.2f s:", now() - t2);
        for (int g = 0; g < o.n_groups; g++) printf(" %s %zu", o.groups[g].name, st.available[g]);
        printf(" (ambiguous %zu, none %zu)\n", st.n_images_ambiguous, st.n_images_no_group);
    }
    coco_free(d);
    return 0;
}

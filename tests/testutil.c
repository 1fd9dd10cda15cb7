#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <unistd.h>
#include <sys/wait.h>
#include "reprshift/fileio.h"
#include "reprshift/pipeline.h"

static const char *shared_base(void) {
    const char *base = getenv("RS_SHARED_DIR");
    if (!base || !*base) base = getenv("RS_SHARED_DIR_DEFAULT");
    return base && *base ? base : "../shared";
}

const char *tu_shared(const char *rel) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", shared_base(), rel);
    return buf;
}

static int g_skipped;

int tu_have_shared(const char *rel, const char *what) {
    const char *p = tu_shared(rel);
    if (access(p, R_OK) == 0) return 1;
    g_skipped = 1;
    printf("RS-SKIP: %s: needs %s (%s), not found; to run it: put the shared data folder at "
           "../shared beside the repository or set RS_SHARED_DIR=/path/to/shared\n",
           program_invocation_short_name, p, what);
    fflush(stdout);
    return 0;
}

int tu_exit(int failed) { return failed ? failed : g_skipped ? TU_SKIP_CODE : 0; }

const char *tu_tmpdir(void) {
    static char buf[256];
    snprintf(buf, sizeof buf, "/tmp/rs_test_XXXXXX");
    if (!mkdtemp(buf)) fail_msg("mkdtemp failed");
    return buf;
}

double tu_max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || isnan(d)) m = isnan(d) ? INFINITY : d;
    }
    return m;
}

double tu_max_abs(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(a[i]) > m) m = fabs(a[i]);
    return m;
}

void tu_assert_close_rel(const float *ref, const float *got, size_t n, double rel, const char *label) {
    double d = tu_max_abs_diff(ref, got, n), m = tu_max_abs(ref, n);
    if (!(d <= rel * m)) fail_msg("%s: max|diff| %.3g > %.3g x max|ref| %.3g", label, d, rel, m);
}

int tu_system(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc == -1 || !WIFEXITED(rc)) return -1;
    return WEXITSTATUS(rc);
}

int tu_run_pipeline(const char *cfg, const char *out, int shard_inputs, char **msg) {
    char ef[PATH_MAX + 8];
    snprintf(ef, sizeof ef, "%s.err", out);
    unlink(ef);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* a child, so a crash or exit() in the pipeline cannot end the test */
        rs_pipeline_opts o = rs_pipeline_defaults();
        o.config_path = cfg;
        o.output_dir = out;
        o.quiet = 1;
        o.threads = 1;
        if (shard_inputs > 0) o.shard_inputs = shard_inputs;
        rs_err err = {0};
        char *rep = NULL;
        int rc = rs_pipeline_run(&o, &rep, &err);
        if (rc) {
            FILE *f = fopen(ef, "w");
            if (f) fputs(err.msg, f), fclose(f);
        }
        free(rep);
        _exit(rc ? 1 : 0);
    }
    int st;
    waitpid(pid, &st, 0);
    if (msg) {
        size_t n;
        rs_err e;
        *msg = NULL;
        if (rs_read_file(ef, 1 << 20, msg, &n, &e)) *msg = strdup("");
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

int tu_count_done(const char *out) {
    char p[PATH_MAX + 16];
    snprintf(p, sizeof p, "%s/stages", out);
    DIR *d = opendir(p);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) n += strstr(e->d_name, ".done") != NULL;
    if (d) closedir(d);
    return n;
}

const st_tensor *tu_need(const st_set *s, const char *name) {
    const st_tensor *t = st_get(s, name);
    if (!t) fail_msg("fixture tensor %s missing", name);
    return t;
}

double tu_rel_err(const float *a, const st_tensor *t, double floor) {
    double mx = floor, e = 0;
    for (int64_t i = 0; i < t->numel; i++) {
        double b = t->dtype == RS_DT_F64 ? ((const double *)t->data)[i] : ((const float *)t->data)[i];
        mx = fabs(b) > mx ? fabs(b) : mx;
        e = fabs(a[i] - b) > e ? fabs(a[i] - b) : e;
    }
    return e / mx;
}

double tu_xs_unif(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (double)(*s >> 11) / 9007199254740992.0;
}

double tu_xs_gauss(uint64_t *s) { return sqrt(-2 * log(tu_xs_unif(s) + 1e-300)) * cos(2 * M_PI * tu_xs_unif(s)); }

/* Cross-language similarity (include/reprshift/crosslang.h, docs/metrics.md "Cross-language
 * similarity"):
 *  - the deterministic values (cos_matched, cos_other, gap, recall@1 both ways, chance and the
 *    per-item m, o, s) against numpy (tools/reference/gen_crosslang_goldens.py →
 *    tests/fixtures/crosslang/similarity.json): a near-identity rotation with noise (gap > 0,
 *    recall high), unrelated X and Y (gap ≈ 0), a large common offset raw and centred, exact
 *    ties (the strict rule), one group per item (group NULL); ≤ 1e-9 relative;
 *  - properties of what depends on our generator: every CI contains its point value; the
 *    planted case has p = 1/(1 + n_perm) and a null centred near 0; the unrelated case a p that
 *    is not small; threads 1, 2, 3 bit-identical; same seed same result, another seed other
 *    intervals and the same point values; group ids only matter through which items share one;
 *  - rs_crosslang_compare: diff against numpy (compare.json), planted difference → small
 *    sign-flip p, zero-mean noise → not small, swapping the conditions negates diff;
 *  - errors: n < 3, one group, NULL pointers, d < 1, negative counts, non-finite values. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/jsonutil.h"
#include "reprshift/crosslang.h"

#define FX_SIM "tests/fixtures/crosslang/similarity.json"
#define FX_CMP "tests/fixtures/crosslang/compare.json"

typedef struct {
    char name[32];
    int n, d, center;
    float *X, *Y;
    int *group;      /* NULL: one group per item */
    double cos_matched, cos_other, gap, r1[2], chance;
    double *m, *o, *s;
} gcase;

static cJSON *SIM, *CMP;

static int setup(void **st) {
    (void)st;
    rs_err err;
    if (rs_json_load(FX_SIM, 8u << 20, &SIM, &err) || rs_json_load(FX_CMP, 1u << 20, &CMP, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **st) {
    (void)st;
    cJSON_Delete(SIM);
    cJSON_Delete(CMP);
    return 0;
}

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v)) fail_msg("fixture: %s is not a number", k);
    return v->valuedouble;
}

static double *dvec(const cJSON *o, const char *k, int n) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n) fail_msg("fixture: %s is not an array of %d", k, n);
    double *v = malloc((size_t)n * sizeof *v);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) v[i++] = e->valuedouble;
    return v;
}

static int *ivec(const cJSON *o, const char *k, int n) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsNull(a)) return NULL;
    double *v = dvec(o, k, n);
    int *r = malloc((size_t)n * sizeof *r);
    for (int i = 0; i < n; i++) r[i] = (int)v[i];
    free(v);
    return r;
}

static float *fvec(const cJSON *o, const char *k, int n) {
    double *v = dvec(o, k, n);
    float *r = malloc((size_t)n * sizeof *r);
    for (int i = 0; i < n; i++) r[i] = (float)v[i]; /* the JSON holds float32 values exactly */
    free(v);
    return r;
}

static gcase load_case(const char *name) {
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(SIM, "cases")) {
        if (strcmp(cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring, name)) continue;
        gcase g;
        memset(&g, 0, sizeof g);
        snprintf(g.name, sizeof g.name, "%s", name);
        g.n = (int)num(c, "n");
        g.d = (int)num(c, "d");
        g.center = (int)num(c, "center");
        g.X = fvec(c, "X", g.n * g.d);
        g.Y = fvec(c, "Y", g.n * g.d);
        g.group = ivec(c, "group", g.n);
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(c, "expect");
        g.cos_matched = num(e, "cos_matched");
        g.cos_other = num(e, "cos_other");
        g.gap = num(e, "gap");
        double *r1 = dvec(e, "r1", 2);
        g.r1[0] = r1[0], g.r1[1] = r1[1];
        free(r1);
        g.chance = num(e, "chance");
        g.m = dvec(e, "m", g.n);
        g.o = dvec(e, "o", g.n);
        g.s = dvec(e, "s", g.n);
        return g;
    }
    fail_msg("fixture: no case %s in %s", name, FX_SIM);
    return (gcase){{0}, 0, 0, 0, NULL, NULL, NULL, 0, 0, 0, {0, 0}, 0, NULL, NULL, NULL};
}

static void free_case(gcase *g) {
    free(g->X), free(g->Y), free(g->group), free(g->m), free(g->o), free(g->s);
}

static rs_crosslang_opts opts(int n_boot, int n_perm, int center) {
    rs_crosslang_opts o = rs_crosslang_defaults();
    o.n_boot = n_boot;
    o.n_perm = n_perm;
    o.center = center;
    return o;
}

/* |got − ref| ≤ 1e-9·|ref| + 1e-13 */
static void close9(double got, double ref, const char *what, const char *name) {
    if (!(fabs(got - ref) <= 1e-9 * fabs(ref) + 1e-13))
        fail_msg("%s %s: got %.17g, numpy %.17g (diff %.3g)", name, what, got, ref, got - ref);
}

static void ci_contains(rs_xl_ci c, const char *what, const char *name) {
    if (!(c.lo <= c.value && c.value <= c.hi))
        fail_msg("%s %s: CI [%.6g, %.6g] does not contain %.6g", name, what, c.lo, c.hi, c.value);
}

static void test_defaults(void **st) {
    (void)st;
    rs_crosslang_opts o = rs_crosslang_defaults();
    assert_int_equal(o.n_boot, 1000);
    assert_int_equal(o.n_perm, 1000);
    assert_true(o.seed == 0);
    assert_int_equal(o.center, 1);
    assert_int_equal(o.threads, 1);
}

/* Every case: the deterministic values against numpy; each CI contains its value. */
static void test_goldens_vs_numpy(void **st) {
    (void)st;
    const char *names[] = {"rotation", "rotation_raw", "unrelated", "offset", "offset_raw", "ties", "singletons"};
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        gcase g = load_case(names[k]);
        rs_crosslang_opts o = opts(300, 200, g.center);
        rs_crosslang_result r;
        rs_err err;
        double *s = malloc((size_t)g.n * sizeof *s);
        if (rs_crosslang_similarity(g.X, g.Y, g.n, g.d, g.group, &o, &r, s, &err)) fail_msg("%s: %s", g.name, err.msg);
        fprintf(stderr,
                "%-12s n %d groups %d: cos_matched %.6f [%.4f, %.4f] cos_other %+.6f gap %+.6f [%+.4f, %+.4f] "
                "null mean %+.4f hi %+.4f p %.4g r1 %.3f/%.3f chance %.4f\n",
                g.name, r.n, r.n_groups, r.cos_matched.value, r.cos_matched.lo, r.cos_matched.hi, r.cos_other.value,
                r.gap.value, r.gap.lo, r.gap.hi, r.gap_null_mean, r.gap_null_hi, r.p, r.r1[0].value, r.r1[1].value,
                r.chance);
        assert_int_equal(r.n, g.n);
        close9(r.cos_matched.value, g.cos_matched, "cos_matched", g.name);
        close9(r.cos_other.value, g.cos_other, "cos_other", g.name);
        close9(r.gap.value, g.gap, "gap", g.name);
        close9(r.chance, g.chance, "chance", g.name);
        for (int w = 0; w < 2; w++)
            if (r.r1[w].value != g.r1[w]) fail_msg("%s r1[%d]: got %.17g, numpy %.17g", g.name, w, r.r1[w].value, g.r1[w]);
        double worst = 0;
        for (int i = 0; i < g.n; i++) {
            close9(s[i], g.s[i], "s_i", g.name);
            double e = fabs(s[i] - g.s[i]) / fmax(fabs(g.s[i]), 1e-300);
            if (e > worst) worst = e;
        }
        fprintf(stderr, "%-12s max relative error of s_i vs numpy: %.2g\n", g.name, worst);
        ci_contains(r.cos_matched, "cos_matched", g.name);
        ci_contains(r.cos_other, "cos_other", g.name);
        ci_contains(r.gap, "gap", g.name);
        ci_contains(r.r1[0], "r1[0]", g.name);
        ci_contains(r.r1[1], "r1[1]", g.name);
        assert_true(r.p > 0 && r.p <= 1);
        free(s);
        free_case(&g);
    }
}

/* The planted pairing: no re-pairing reaches the observed gap, and the null sits near 0. */
static void test_planted_null_and_p(void **st) {
    (void)st;
    gcase g = load_case("rotation");
    rs_crosslang_opts o = opts(1000, 1000, 1);
    rs_crosslang_result r;
    rs_err err;
    assert_int_equal(rs_crosslang_similarity(g.X, g.Y, g.n, g.d, g.group, &o, &r, NULL, &err), 0);
    fprintf(stderr, "rotation: gap %.4f, null mean %+.5f, null 95th %+.4f, p %.6g (1/1001 = %.6g)\n", r.gap.value,
            r.gap_null_mean, r.gap_null_hi, r.p, 1.0 / 1001);
    assert_true(r.p == 1.0 / 1001.0);
    assert_true(fabs(r.gap_null_mean) < 0.03);
    assert_true(r.gap_null_hi < 0.3 * r.gap.value);
    assert_true(r.gap.lo > r.gap_null_hi);
    assert_int_equal(r.n_groups, 20);
    assert_true(r.r1[0].value > 10 * r.chance && r.r1[1].value > 10 * r.chance);
    free_case(&g);
}

/* Unrelated X and Y: the gap is inside the null, p is not small. */
static void test_unrelated_not_significant(void **st) {
    (void)st;
    gcase g = load_case("unrelated");
    rs_crosslang_opts o = opts(1000, 1000, 1);
    rs_crosslang_result r;
    rs_err err;
    assert_int_equal(rs_crosslang_similarity(g.X, g.Y, g.n, g.d, g.group, &o, &r, NULL, &err), 0);
    fprintf(stderr, "unrelated: gap %+.4f [%+.4f, %+.4f], null mean %+.5f, 95th %+.4f, p %.4f\n", r.gap.value, r.gap.lo,
            r.gap.hi, r.gap_null_mean, r.gap_null_hi, r.p);
    assert_true(r.p > 0.05);
    assert_true(r.gap.value < r.gap_null_hi);
    assert_true(fabs(r.gap_null_mean) < 0.03);
    assert_true(r.gap.lo < 0 && r.gap.hi > 0);
    free_case(&g);
}

/* A large common offset: raw cosines are all ≈ 1 (matched and others alike), centring
 * removes the offset and separates them. */
static void test_centring_offset(void **st) {
    (void)st;
    gcase g = load_case("offset");
    rs_crosslang_result raw, cen;
    rs_err err;
    rs_crosslang_opts o0 = opts(200, 200, 0), o1 = opts(200, 200, 1);
    assert_int_equal(rs_crosslang_similarity(g.X, g.Y, g.n, g.d, g.group, &o0, &raw, NULL, &err), 0);
    assert_int_equal(rs_crosslang_similarity(g.X, g.Y, g.n, g.d, g.group, &o1, &cen, NULL, &err), 0);
    fprintf(stderr, "offset raw: matched %.5f other %.5f gap %.5f; centred: matched %.4f other %+.4f gap %.4f\n",
            raw.cos_matched.value, raw.cos_other.value, raw.gap.value, cen.cos_matched.value, cen.cos_other.value,
            cen.gap.value);
    assert_true(raw.cos_matched.value > 0.99 && raw.cos_other.value > 0.99 && raw.gap.value < 0.01);
    assert_true(cen.cos_other.value < 0.1 && cen.gap.value > 0.5);
    assert_true(cen.gap.value > 50 * raw.gap.value);
    free_case(&g);
}

/* Exact ties (X = [e0, e1, e2], Y = [e0, e0, e2], one group per item): x_0 ties between y_0
 * (its own) and y_1 → a miss under the strict rule (a first-index argmax would call it a hit);
 * x_1 has cosine 0 with everything → a miss; x_2 a hit. y_0 → x_0 hit, y_1 → x_0 (not its
 * own) miss, y_2 hit. group NULL gives the same as explicit ids. */
static void test_ties_strict(void **st) {
    (void)st;
    gcase g = load_case("ties");
    rs_crosslang_opts o = opts(50, 20, 0);
    rs_crosslang_result r, rn;
    rs_err err;
    assert_int_equal(rs_crosslang_similarity(g.X, g.Y, 3, 3, g.group, &o, &r, NULL, &err), 0);
    assert_true(r.r1[0].value == 1.0 / 3.0);
    assert_true(r.r1[1].value == 2.0 / 3.0);
    assert_int_equal(rs_crosslang_similarity(g.X, g.Y, 3, 3, NULL, &o, &rn, NULL, &err), 0);
    assert_memory_equal(&r, &rn, sizeof r);
    free_case(&g);
}

/* Group ids matter only through which items share one: relabelling the groups of the rotation
 * case (any injective map) and group NULL vs distinct ids give bit-identical results. */
static void test_group_labels(void **st) {
    (void)st;
    gcase g = load_case("rotation");
    int *g2 = malloc((size_t)g.n * sizeof *g2);
    for (int i = 0; i < g.n; i++) g2[i] = -3 * g.group[i] + 11;
    rs_crosslang_opts o = opts(200, 100, 1);
    rs_crosslang_result a, b;
    rs_err err;
    assert_int_equal(rs_crosslang_similarity(g.X, g.Y, g.n, g.d, g.group, &o, &a, NULL, &err), 0);
    assert_int_equal(rs_crosslang_similarity(g.X, g.Y, g.n, g.d, g2, &o, &b, NULL, &err), 0);
    assert_memory_equal(&a, &b, sizeof a);
    free_case(&g);
    g = load_case("singletons");
    assert_null(g.group);
    int *ids = malloc((size_t)g.n * sizeof *ids);
    for (int i = 0; i < g.n; i++) ids[i] = 1000 - 7 * i;
    assert_int_equal(rs_crosslang_similarity(g.X, g.Y, g.n, g.d, NULL, &o, &a, NULL, &err), 0);
    assert_int_equal(rs_crosslang_similarity(g.X, g.Y, g.n, g.d, ids, &o, &b, NULL, &err), 0);
    assert_memory_equal(&a, &b, sizeof a);
    assert_int_equal(a.n_groups, g.n);
    assert_true(a.chance == 1.0 / g.n);
    free(ids);
    free(g2);
    free_case(&g);
}

/* The permutation loop over 1, 2 and 3 threads: bit-identical results. */
static void test_threads_identical(void **st) {
    (void)st;
    gcase g = load_case("unrelated");
    rs_crosslang_result r[3];
    double *s[3];
    rs_err err;
    for (int t = 0; t < 3; t++) {
        rs_crosslang_opts o = opts(500, 777, 1);
        o.threads = t + 1;
        o.seed = 42;
        s[t] = malloc((size_t)g.n * sizeof *s[t]);
        assert_int_equal(rs_crosslang_similarity(g.X, g.Y, g.n, g.d, g.group, &o, &r[t], s[t], &err), 0);
    }
    fprintf(stderr, "threads 1/2/3: p %.6g / %.6g / %.6g, null mean %.17g / %.17g / %.17g\n", r[0].p, r[1].p, r[2].p,
            r[0].gap_null_mean, r[1].gap_null_mean, r[2].gap_null_mean);
    for (int t = 1; t < 3; t++) {
        assert_memory_equal(&r[0], &r[t], sizeof r[0]);
        assert_memory_equal(s[0], s[t], (size_t)g.n * sizeof *s[0]);
    }
    for (int t = 0; t < 3; t++) free(s[t]);
    free_case(&g);
}

/* Same seed → same result; another seed → the same point values, other intervals and null. */
static void test_seed(void **st) {
    (void)st;
    gcase g = load_case("unrelated");
    rs_crosslang_opts o = opts(400, 400, 1);
    rs_crosslang_result a, b, c;
    rs_err err;
    assert_int_equal(rs_crosslang_similarity(g.X, g.Y, g.n, g.d, g.group, &o, &a, NULL, &err), 0);
    assert_int_equal(rs_crosslang_similarity(g.X, g.Y, g.n, g.d, g.group, &o, &b, NULL, &err), 0);
    assert_memory_equal(&a, &b, sizeof a);
    o.seed = 7;
    assert_int_equal(rs_crosslang_similarity(g.X, g.Y, g.n, g.d, g.group, &o, &c, NULL, &err), 0);
    assert_true(a.gap.value == c.gap.value && a.cos_matched.value == c.cos_matched.value);
    assert_true(a.gap.lo != c.gap.lo || a.gap.hi != c.gap.hi);
    assert_true(a.gap_null_mean != c.gap_null_mean);
    free_case(&g);
}

/* s_item averages to the gap; gap = cos_matched − cos_other; n_boot = 0 / n_perm = 0 leave
 * the point values and give NaN intervals / p. */
static void test_items_and_off_switches(void **st) {
    (void)st;
    gcase g = load_case("offset");
    rs_crosslang_opts o = opts(0, 0, 1);
    rs_crosslang_result r, full;
    rs_err err;
    double *s = malloc((size_t)g.n * sizeof *s);
    assert_int_equal(rs_crosslang_similarity(g.X, g.Y, g.n, g.d, g.group, &o, &r, s, &err), 0);
    double t = 0;
    for (int i = 0; i < g.n; i++) t += s[i];
    assert_true(t / g.n == r.gap.value);
    assert_true(fabs(r.gap.value - (r.cos_matched.value - r.cos_other.value)) < 1e-14);
    assert_true(isnan(r.gap.lo) && isnan(r.gap.hi) && isnan(r.r1[1].lo) && isnan(r.p) && isnan(r.gap_null_mean) &&
                isnan(r.gap_null_hi));
    o = opts(100, 50, 1);
    assert_int_equal(rs_crosslang_similarity(g.X, g.Y, g.n, g.d, g.group, &o, &full, NULL, &err), 0);
    assert_true(full.gap.value == r.gap.value && full.r1[0].value == r.r1[0].value);
    assert_int_equal(full.n_boot, 100);
    assert_int_equal(full.n_perm, 50);
    free(s);
    free_case(&g);
}

/* NULL options = the defaults. */
static void test_null_opts(void **st) {
    (void)st;
    gcase g = load_case("singletons");
    rs_crosslang_opts o = rs_crosslang_defaults();
    rs_crosslang_result a, b;
    rs_err err;
    assert_int_equal(rs_crosslang_similarity(g.X, g.Y, g.n, g.d, NULL, NULL, &a, NULL, &err), 0);
    assert_int_equal(rs_crosslang_similarity(g.X, g.Y, g.n, g.d, NULL, &o, &b, NULL, &err), 0);
    assert_memory_equal(&a, &b, sizeof a);
    free_case(&g);
}

typedef struct {
    int n;
    int *group;
    double *sa, *sb, diff;
} ccase;

static ccase load_cmp(const char *name) {
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(CMP, "cases")) {
        if (strcmp(cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring, name)) continue;
        ccase k;
        k.n = (int)num(c, "n");
        k.group = ivec(c, "group", k.n);
        k.sa = dvec(c, "s_a", k.n);
        k.sb = dvec(c, "s_b", k.n);
        k.diff = num(c, "diff");
        return k;
    }
    fail_msg("fixture: no case %s in %s", name, FX_CMP);
    return (ccase){0, NULL, NULL, NULL, 0};
}

static void free_cmp(ccase *k) { free(k->group), free(k->sa), free(k->sb); }

static void test_compare(void **st) {
    (void)st;
    const char *names[2] = {"planted", "null"};
    for (int k = 0; k < 2; k++) {
        ccase c = load_cmp(names[k]);
        rs_crosslang_opts o = opts(1000, 1000, 1);
        rs_xl_ci d, dr;
        double p, pr;
        rs_err err;
        if (rs_crosslang_compare(c.sa, c.sb, c.n, c.group, &o, &d, &p, &err)) fail_msg("%s", err.msg);
        fprintf(stderr, "compare %-7s n %d: diff %+.6f [%+.5f, %+.5f] (numpy %+.6f), sign-flip p %.4g\n", names[k], c.n,
                d.value, d.lo, d.hi, c.diff, p);
        close9(d.value, c.diff, "diff", names[k]);
        ci_contains(d, "diff", names[k]);
        if (k == 0) assert_true(p < 0.01 && d.lo > 0);
        else assert_true(p > 0.05 && d.lo < 0 && d.hi > 0);
        /* B vs A: the difference negates, the two-sided p is the same */
        assert_int_equal(rs_crosslang_compare(c.sb, c.sa, c.n, c.group, &o, &dr, &pr, &err), 0);
        assert_true(dr.value == -d.value);
        assert_true(fabs(dr.lo + d.hi) < 1e-12 && fabs(dr.hi + d.lo) < 1e-12);
        assert_true(pr == p);
        o.n_perm = 0;
        o.n_boot = 0;
        assert_int_equal(rs_crosslang_compare(c.sa, c.sb, c.n, c.group, &o, &dr, &pr, &err), 0);
        assert_true(isnan(pr) && isnan(dr.lo) && dr.value == d.value);
        free_cmp(&c);
    }
}

/* The two together on the same items: the per-item gaps of the centred and raw rotation case
 * (numpy's s from the fixture) give numpy's mean difference. */
static void test_compare_from_similarity(void **st) {
    (void)st;
    gcase a = load_case("rotation"), b = load_case("rotation_raw");
    double *sa = malloc((size_t)a.n * sizeof *sa), *sb = malloc((size_t)a.n * sizeof *sb);
    rs_crosslang_opts o = opts(200, 200, 1);
    rs_crosslang_result r;
    rs_err err;
    assert_int_equal(rs_crosslang_similarity(a.X, a.Y, a.n, a.d, a.group, &o, &r, sa, &err), 0);
    o.center = 0;
    assert_int_equal(rs_crosslang_similarity(b.X, b.Y, b.n, b.d, b.group, &o, &r, sb, &err), 0);
    rs_xl_ci d;
    double p, ref = 0;
    for (int i = 0; i < a.n; i++) ref += a.s[i] - b.s[i];
    ref /= a.n;
    assert_int_equal(rs_crosslang_compare(sa, sb, a.n, a.group, &o, &d, &p, &err), 0);
    fprintf(stderr, "rotation centred - raw: diff %+.6f (numpy %+.6f) [%+.5f, %+.5f] p %.3g\n", d.value, ref, d.lo,
            d.hi, p);
    close9(d.value, ref, "centred - raw", "rotation");
    free(sa), free(sb);
    free_case(&a), free_case(&b);
}

static void expect_error(int rc, const rs_err *err, rs_err_kind kind, const char *needle) {
    assert_int_equal(rc, -1);
    if (err->kind != kind || !strstr(err->msg, needle))
        fail_msg("error %s \"%s\", expected %s containing \"%s\"", rs_err_kind_name(err->kind), err->msg,
                 rs_err_kind_name(kind), needle);
}

static void test_errors(void **st) {
    (void)st;
    float X[12] = {1, 0, 0, 1, 1, 1, 2, 0, 0, 2, 3, 1}, Y[12] = {1, 1, 0, 1, 1, 0, 2, 2, 0, 1, 3, 2};
    int one[4] = {5, 5, 5, 5}, two[4] = {1, 2, 1, 2};
    rs_crosslang_opts o = opts(10, 10, 1);
    rs_crosslang_result r;
    rs_err err;
    expect_error(rs_crosslang_similarity(X, Y, 2, 3, NULL, &o, &r, NULL, &err), &err, RS_EDATA, "need at least 3");
    expect_error(rs_crosslang_similarity(X, Y, 4, 3, one, &o, &r, NULL, &err), &err, RS_EDATA, "one group");
    expect_error(rs_crosslang_similarity(NULL, Y, 4, 3, two, &o, &r, NULL, &err), &err, RS_EINVAL, "X");
    expect_error(rs_crosslang_similarity(X, NULL, 4, 3, two, &o, &r, NULL, &err), &err, RS_EINVAL, "Y");
    expect_error(rs_crosslang_similarity(X, Y, 4, 3, two, &o, NULL, NULL, &err), &err, RS_EINVAL, "result");
    expect_error(rs_crosslang_similarity(X, Y, 4, 0, two, &o, &r, NULL, &err), &err, RS_EINVAL, "d = 0");
    expect_error(rs_crosslang_similarity(X, Y, 4, -2, two, &o, &r, NULL, &err), &err, RS_EINVAL, "d = -2");
    o.n_boot = -1;
    expect_error(rs_crosslang_similarity(X, Y, 4, 3, two, &o, &r, NULL, &err), &err, RS_EINVAL, "n_boot");
    o = opts(10, -5, 1);
    expect_error(rs_crosslang_similarity(X, Y, 4, 3, two, &o, &r, NULL, &err), &err, RS_EINVAL, "n_perm");
    o = opts(10, 10, 1);
    X[7] = NAN;
    expect_error(rs_crosslang_similarity(X, Y, 4, 3, two, &o, &r, NULL, &err), &err, RS_EDATA, "X row 2 column 1");
    X[7] = 0;
    Y[11] = INFINITY;
    expect_error(rs_crosslang_similarity(X, Y, 4, 3, two, &o, &r, NULL, &err), &err, RS_EDATA, "Y row 3 column 2");
    Y[11] = 2;
    /* a zero row is not an error: its cosines are 0 */
    float Z[12] = {0};
    assert_int_equal(rs_crosslang_similarity(Z, Y, 4, 3, two, &o, &r, NULL, &err), 0);
    assert_true(r.cos_matched.value == 0 && r.cos_other.value == 0 && r.r1[0].value == 0);

    double sa[4] = {0.1, 0.2, 0.3, 0.4}, sb[4] = {0, 0, 0, 0}, p;
    rs_xl_ci d;
    expect_error(rs_crosslang_compare(NULL, sb, 4, two, &o, &d, &p, &err), &err, RS_EINVAL, "s_a");
    expect_error(rs_crosslang_compare(sa, NULL, 4, two, &o, &d, &p, &err), &err, RS_EINVAL, "s_b");
    expect_error(rs_crosslang_compare(sa, sb, 4, two, &o, NULL, &p, &err), &err, RS_EINVAL, "diff");
    expect_error(rs_crosslang_compare(sa, sb, 4, two, &o, &d, NULL, &err), &err, RS_EINVAL, "p output");
    expect_error(rs_crosslang_compare(sa, sb, 2, two, &o, &d, &p, &err), &err, RS_EDATA, "need at least 3");
    expect_error(rs_crosslang_compare(sa, sb, 4, one, &o, &d, &p, &err), &err, RS_EDATA, "one group");
    sb[2] = NAN;
    expect_error(rs_crosslang_compare(sa, sb, 4, two, &o, &d, &p, &err), &err, RS_EDATA, "item 2");
    sb[2] = 0;
    o.n_boot = -3;
    expect_error(rs_crosslang_compare(sa, sb, 4, two, &o, &d, &p, &err), &err, RS_EINVAL, "n_boot");
    /* the error paths write nothing a caller could mistake for a result; err NULL is allowed */
    assert_int_equal(rs_crosslang_similarity(X, Y, 2, 3, NULL, NULL, &r, NULL, NULL), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_goldens_vs_numpy),
        cmocka_unit_test(test_planted_null_and_p),
        cmocka_unit_test(test_unrelated_not_significant),
        cmocka_unit_test(test_centring_offset),
        cmocka_unit_test(test_ties_strict),
        cmocka_unit_test(test_group_labels),
        cmocka_unit_test(test_threads_identical),
        cmocka_unit_test(test_seed),
        cmocka_unit_test(test_items_and_off_switches),
        cmocka_unit_test(test_null_opts),
        cmocka_unit_test(test_compare),
        cmocka_unit_test(test_compare_from_similarity),
        cmocka_unit_test(test_errors),
    };
    return tu_exit(cmocka_run_group_tests(tests, setup, teardown));
}

/* Dictionary matching (sae_match.h, docs/sae-training.md). */
#include "reprshift/sae_match.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "base/jsonutil.h"

/* Shortest augmenting path with row/column potentials (Kuhn-Munkres in the Jonker-Volgenant
 * form): rows are added one at a time; for each, a Dijkstra-like scan over reduced costs
 * c[i][j] − u[i] − v[j] finds the cheapest augmenting path, the potentials are updated so that
 * reduced costs stay ≥ 0 and those on the matching stay 0. Arrays are 1-based, index 0 is a
 * virtual column holding the row being inserted. */
int rs_linear_assignment(const float *cost, int nr, int nc, int *col_of_row, double *total, rs_err *err) {
    if (nr < 0 || nc < nr) return rs_errf(err, "linear assignment: need rows <= columns (got %d x %d)", nr, nc);
    for (size_t j = 0; j < (size_t)nr * nc; j++)
        if (!isfinite(cost[j])) return rs_errf(err, "linear assignment: cost entry %zu is not finite", j);
    double *u = calloc((size_t)nr + 1, sizeof *u), *v = calloc((size_t)nc + 1, sizeof *v),
           *minv = malloc(((size_t)nc + 1) * sizeof *minv);
    int *p = calloc((size_t)nc + 1, sizeof *p), *way = calloc((size_t)nc + 1, sizeof *way);
    char *used = malloc((size_t)nc + 1);
    if (!u || !v || !minv || !p || !way || !used) {
        free(u), free(v), free(minv), free(p), free(way), free(used);
        return rs_errk(err, RS_ENOMEM, "linear assignment: out of memory (%d x %d)", nr, nc);
    }
    for (int i = 1; i <= nr; i++) {
        p[0] = i;
        int j0 = 0;
        for (int j = 0; j <= nc; j++) minv[j] = DBL_MAX, used[j] = 0;
        do {
            used[j0] = 1;
            int i0 = p[j0], j1 = 0;
            double delta = DBL_MAX;
            const float *row = cost + (size_t)(i0 - 1) * nc;
            for (int j = 1; j <= nc; j++) {
                if (used[j]) continue;
                double cur = row[j - 1] - u[i0] - v[j];
                if (cur < minv[j]) minv[j] = cur, way[j] = j0;
                if (minv[j] < delta) delta = minv[j], j1 = j;
            }
            for (int j = 0; j <= nc; j++) {
                if (used[j]) u[p[j]] += delta, v[j] -= delta;
                else minv[j] -= delta;
            }
            j0 = j1;
        } while (p[j0] != 0);
        do { /* flip the path */
            int j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
        } while (j0);
    }
    double tot = 0;
    for (int j = 1; j <= nc; j++)
        if (p[j]) col_of_row[p[j] - 1] = j - 1, tot += cost[(size_t)(p[j] - 1) * nc + (j - 1)];
    if (total) *total = tot;
    free(u), free(v), free(minv), free(p), free(way), free(used);
    return 0;
}

void sae_match_opts_default(sae_match_opts *o) {
    o->threshold = 0.7;
    o->n_boot = 1000;
    o->n_null = 3;
    o->max_width = 4096;
    o->seed = 1;
}

void sae_match_result_free(sae_match_result *r) {
    if (!r) return;
    free(r->a_idx), free(r->b_idx), free(r->cos);
    memset(r, 0, sizeof *r);
}

static uint64_t next_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double unif(uint64_t *s) { return (next_u64(s) >> 11) / 9007199254740992.0; }
static float gauss(uint64_t *s) {
    double u1 = ((next_u64(s) >> 11) + 1.0) / 9007199254740993.0, u2 = unif(s);
    return (float)(sqrt(-2 * log(u1)) * cos(2 * M_PI * u2));
}

/* unit rows (zero rows stay zero) */
static float *unit_rows(const float *W, int n, int d) {
    float *U = malloc((size_t)n * d * sizeof *U);
    if (!U) return NULL;
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int k = 0; k < d; k++) s += (double)W[(size_t)i * d + k] * W[(size_t)i * d + k];
        float f = s > 0 ? (float)(1 / sqrt(s)) : 0.0f;
        for (int k = 0; k < d; k++) U[(size_t)i * d + k] = W[(size_t)i * d + k] * f;
    }
    return U;
}

/* Optimal one-to-one pairing of unit rows Ua [na, d], Ub [nb, d] maximising Σ cos; C is a
 * [na·nb] work buffer; fills ai, bi, cs [min(na, nb)]. */
static int match_units(const float *Ua, int na, const float *Ub, int nb, int d, float *C, int *ai, int *bi, float *cs,
                       rs_err *err) {
    int swap = na > nb, nr = swap ? nb : na, nc = swap ? na : nb;
    const float *R = swap ? Ub : Ua, *Cc = swap ? Ua : Ub;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, nc, d, -1.0f, R, d, Cc, d, 0.0f, C, nc); /* −cos */
    int *col = malloc((size_t)nr * sizeof *col);
    if (!col) return rs_errk(err, RS_ENOMEM, "SAE matching: out of memory");
    if (rs_linear_assignment(C, nr, nc, col, NULL, err)) {
        free(col);
        return -1;
    }
    int n = 0;
    if (!swap) {
        for (int i = 0; i < nr; i++) ai[n] = i, bi[n] = col[i], cs[n++] = -C[(size_t)i * nc + col[i]];
    } else { /* rows are B's latents: list the pairs by A's index */
        int *row_of = malloc((size_t)nc * sizeof *row_of);
        if (!row_of) {
            free(col);
            return rs_errk(err, RS_ENOMEM, "SAE matching: out of memory");
        }
        for (int j = 0; j < nc; j++) row_of[j] = -1;
        for (int i = 0; i < nr; i++) row_of[col[i]] = i;
        for (int j = 0; j < nc; j++)
            if (row_of[j] >= 0) ai[n] = j, bi[n] = row_of[j], cs[n++] = -C[(size_t)row_of[j] * nc + j];
        free(row_of);
    }
    free(col);
    return 0;
}

static void summarise(const float *cs, int n, double thr, double *frac, double *mean) {
    double f = 0, m = 0;
    for (int i = 0; i < n; i++) f += cs[i] > thr, m += cs[i];
    *frac = n ? f / n : NAN;
    *mean = n ? m / n : NAN;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int sae_match_decoders(const float *Wa, int na, const float *Wb, int nb, int d, const sae_match_opts *o,
                       sae_match_result *r, rs_err *err) {
    memset(r, 0, sizeof *r);
    if (na < 1 || nb < 1 || d < 1) return rs_errf(err, "SAE matching: empty dictionary (%d and %d rows of width %d)", na, nb, d);
    if (na > o->max_width || nb > o->max_width)
        return rs_errk(err, RS_EINVAL, "SAE matching: dictionaries of %d and %d latents exceed the exact-matching cap of %d "
                                       "(dense %d x %d cost matrix, O(n^3) assignment); raise the cap (--max-width) if "
                                       "the time and memory are acceptable", na, nb, o->max_width, na, nb);
    if (!(o->threshold >= -1 && o->threshold <= 1) || o->n_boot < 0 || o->n_null < 0)
        return rs_errf(err, "SAE matching: bad options (threshold %g, bootstrap %d, null replicates %d)", o->threshold,
                       o->n_boot, o->n_null);
    for (size_t j = 0; j < (size_t)na * d; j++)
        if (!isfinite(Wa[j])) return rs_errf(err, "SAE matching: decoder A row %zu is not finite", j / (size_t)d);
    for (size_t j = 0; j < (size_t)nb * d; j++)
        if (!isfinite(Wb[j])) return rs_errf(err, "SAE matching: decoder B row %zu is not finite", j / (size_t)d);
    int np = na < nb ? na : nb, rc = -1;
    float *Ua = unit_rows(Wa, na, d), *Ub = unit_rows(Wb, nb, d), *Un = malloc((size_t)nb * d * sizeof *Un),
          *C = malloc((size_t)na * nb * sizeof *C), *ncs = malloc((size_t)np * sizeof *ncs);
    int *nai = malloc((size_t)np * sizeof *nai), *nbi = malloc((size_t)np * sizeof *nbi), *perm = malloc((size_t)d * sizeof *perm);
    double *bs_f = malloc(((size_t)o->n_boot + 1) * sizeof *bs_f), *bs_m = malloc(((size_t)o->n_boot + 1) * sizeof *bs_m);
    r->a_idx = malloc((size_t)np * sizeof *r->a_idx);
    r->b_idx = malloc((size_t)np * sizeof *r->b_idx);
    r->cos = malloc((size_t)np * sizeof *r->cos);
    if (!Ua || !Ub || !Un || !C || !ncs || !nai || !nbi || !perm || !bs_f || !bs_m || !r->a_idx || !r->b_idx || !r->cos) {
        rs_errk(err, RS_ENOMEM, "SAE matching: out of memory (%d x %d cost matrix)", na, nb);
        goto done;
    }
    r->n_a = na, r->n_b = nb, r->d = d, r->n_pairs = np;
    if (match_units(Ua, na, Ub, nb, d, C, r->a_idx, r->b_idx, r->cos, err)) goto done;
    summarise(r->cos, np, o->threshold, &r->frac, &r->mean_cos);
    /* a stream of its own: the trainers draw their initial decoders from splitmix64 started at
     * the seed, and a null drawn from the same stream would reproduce those rows */
    uint64_t rng = o->seed * 0xD1B54A32D192ED03ull + 0x8CB92BA72F3D8DD7ull;
    r->frac_lo = r->frac_hi = r->mean_cos_lo = r->mean_cos_hi = NAN;
    if (o->n_boot > 0) { /* percentile bootstrap over the matched pairs */
        for (int b = 0; b < o->n_boot; b++) {
            double f = 0, m = 0;
            for (int i = 0; i < np; i++) {
                float c = r->cos[next_u64(&rng) % (uint64_t)np];
                f += c > o->threshold, m += c;
            }
            bs_f[b] = f / np, bs_m[b] = m / np;
        }
        qsort(bs_f, (size_t)o->n_boot, sizeof *bs_f, cmp_d);
        qsort(bs_m, (size_t)o->n_boot, sizeof *bs_m, cmp_d);
        int lo = (int)floor(0.025 * (o->n_boot - 1)), hi = (int)ceil(0.975 * (o->n_boot - 1));
        r->frac_lo = bs_f[lo], r->frac_hi = bs_f[hi], r->mean_cos_lo = bs_m[lo], r->mean_cos_hi = bs_m[hi];
    }
    sae_match_null *nulls[2] = {&r->null_random, &r->null_permuted};
    for (int kind = 0; kind < 2; kind++) {
        sae_match_null *nl = nulls[kind];
        nl->frac_mean = nl->frac_max = nl->cos_mean = NAN;
        if (o->n_null == 0) continue;
        nl->frac_mean = nl->cos_mean = 0;
        nl->frac_max = -1;
        for (int rep = 0; rep < o->n_null; rep++) {
            if (kind == 0) {
                for (size_t j = 0; j < (size_t)nb * d; j++) Un[j] = gauss(&rng);
                float *t = unit_rows(Un, nb, d);
                if (!t) {
                    rs_errk(err, RS_ENOMEM, "SAE matching: out of memory");
                    goto done;
                }
                memcpy(Un, t, (size_t)nb * d * sizeof *Un);
                free(t);
            } else { /* one random permutation of the d coordinates, applied to every row of B */
                for (int k = 0; k < d; k++) perm[k] = k;
                for (int k = d - 1; k > 0; k--) {
                    int j = (int)(next_u64(&rng) % (uint64_t)(k + 1)), t = perm[k];
                    perm[k] = perm[j], perm[j] = t;
                }
                for (int i = 0; i < nb; i++)
                    for (int k = 0; k < d; k++) Un[(size_t)i * d + k] = Ub[(size_t)i * d + perm[k]];
            }
            if (match_units(Ua, na, Un, nb, d, C, nai, nbi, ncs, err)) goto done;
            double f, m;
            summarise(ncs, np, o->threshold, &f, &m);
            nl->frac_mean += f / o->n_null, nl->cos_mean += m / o->n_null;
            nl->frac_max = f > nl->frac_max ? f : nl->frac_max;
        }
    }
    r->beats_null = o->n_null > 0 && o->n_boot > 0 && r->frac_lo > r->null_random.frac_max &&
                    r->frac_lo > r->null_permuted.frac_max;
    rc = 0;
done:
    free(Ua), free(Ub), free(Un), free(C), free(ncs), free(nai), free(nbi), free(perm), free(bs_f), free(bs_m);
    if (rc) sae_match_result_free(r);
    return rc;
}

static cJSON *null_json(const sae_match_null *n, int reps) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    rs_json_add_num(o, "replicates", reps);
    rs_json_add_num(o, "frac_matched_mean", n->frac_mean);
    rs_json_add_num(o, "frac_matched_max", n->frac_max);
    rs_json_add_num(o, "mean_cos", n->cos_mean);
    return o;
}

cJSON *sae_match_json(const sae_match_result *r, const sae_match_opts *o) {
    cJSON *js = cJSON_CreateObject();
    if (!js) return NULL;
    rs_json_add_num(js, "d_in", r->d);
    rs_json_add_num(js, "d_sae_a", r->n_a);
    rs_json_add_num(js, "d_sae_b", r->n_b);
    rs_json_add_num(js, "n_pairs", r->n_pairs);
    cJSON_AddStringToObject(js, "assignment", "exact one-to-one, maximising the summed decoder cosine");
    rs_json_add_num(js, "cos_threshold", o->threshold);
    cJSON *fm = rs_json_stat(r->frac, r->frac_lo, r->frac_hi);
    if (fm) rs_json_add_num(fm, "n", r->n_pairs);
    cJSON_AddItemToObject(js, "frac_matched", fm);
    cJSON *mc = rs_json_stat(r->mean_cos, r->mean_cos_lo, r->mean_cos_hi);
    if (mc) rs_json_add_num(mc, "n", r->n_pairs);
    cJSON_AddItemToObject(js, "mean_cos", mc);
    cJSON_AddStringToObject(js, "ci", "percentile bootstrap 95% over the matched pairs");
    rs_json_add_num(js, "bootstrap", o->n_boot);
    cJSON_AddItemToObject(js, "null_random", null_json(&r->null_random, o->n_null));
    cJSON_AddItemToObject(js, "null_permuted", null_json(&r->null_permuted, o->n_null));
    if (o->n_null > 0 && o->n_boot > 0) cJSON_AddBoolToObject(js, "beats_null", r->beats_null);
    else cJSON_AddNullToObject(js, "beats_null");
    rs_json_add_num(js, "seed", (double)o->seed);
    return js;
}

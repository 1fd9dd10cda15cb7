/* Token-type (key) ranking with group-bootstrap intervals, a minimum count and a
 * frequency-matched excess (shift.h, docs/metrics.md "Rankings"). */
#include "reprshift/shift.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

typedef struct {
    int64_t count;
    int32_t key;
    int64_t idx;
} by_count;

static int cmp_count(const void *a, const void *b) {
    const by_count *x = a, *y = b;
    if (x->count != y->count) return (x->count > y->count) - (x->count < y->count);
    return (x->key > y->key) - (x->key < y->key);
}

int shift_rank_keys(const int32_t *key, const float *val, int64_t n, const int64_t *offsets, int64_t n_groups,
                    int min_count, int n_bins, int n_boot, uint64_t seed, const int32_t *boot_counts,
                    shift_rank_entry **out, int64_t *n_out, rs_err *err) {
    *out = NULL;
    *n_out = 0;
    if (n <= 0 || n_groups <= 0 || offsets[0] != 0 || offsets[n_groups] != n)
        return rs_errf(err, "rank: offsets must run from 0 to the row count");
    int32_t *keys = malloc((size_t)n * sizeof *keys);
    int64_t *slot = malloc((size_t)n * sizeof *slot), *grp = malloc((size_t)n * sizeof *grp);
    shift_rank_entry *e = NULL;
    double *sum = NULL, *cnt = NULL, *reps = NULL, *w = NULL, *col = NULL;
    by_count *bc = NULL;
    int rc = -1;
    if (!keys || !slot || !grp) goto oom;
    memcpy(keys, key, (size_t)n * sizeof *keys);
    qsort(keys, (size_t)n, sizeof *keys, cmp_i32);
    /* distinct keys with their counts; kept ones get a slot */
    int64_t nk = 0;
    for (int64_t i = 0; i < n;) {
        int64_t j = i;
        while (j < n && keys[j] == keys[i]) j++;
        if (j - i >= min_count) keys[nk++] = keys[i];
        i = j;
    }
    for (int64_t g = 0; g < n_groups; g++)
        for (int64_t t = offsets[g]; t < offsets[g + 1]; t++) grp[t] = g;
    for (int64_t t = 0; t < n; t++) {
        int32_t *f = bsearch(&key[t], keys, (size_t)nk, sizeof *keys, cmp_i32);
        slot[t] = f ? f - keys : -1;
    }
    e = calloc((size_t)(nk ? nk : 1), sizeof *e);
    sum = calloc((size_t)(nk ? nk : 1), sizeof *sum);
    cnt = calloc((size_t)(nk ? nk : 1), sizeof *cnt);
    int B = n_boot > 0 ? n_boot : 0;
    reps = malloc((size_t)(B ? B : 1) * (nk ? nk : 1) * sizeof *reps);
    w = malloc((size_t)n_groups * sizeof *w);
    col = malloc((size_t)(B ? B : 1) * sizeof *col);
    bc = malloc((size_t)(nk ? nk : 1) * sizeof *bc);
    if (!e || !sum || !cnt || !reps || !w || !col || !bc) goto oom;
    for (int64_t t = 0; t < n; t++)
        if (slot[t] >= 0) {
            sum[slot[t]] += val[t];
            cnt[slot[t]] += 1;
        }
    for (int64_t k = 0; k < nk; k++) {
        e[k].key = keys[k];
        e[k].count = (int64_t)cnt[k];
        e[k].mean = sum[k] / cnt[k];
        e[k].lo = e[k].hi = NAN;
    }
    uint64_t rng = seed;
    for (int r = 0; r < B; r++) {
        if (boot_counts) {
            for (int64_t g = 0; g < n_groups; g++) w[g] = boot_counts[(size_t)r * n_groups + g];
        } else {
            memset(w, 0, (size_t)n_groups * sizeof *w);
            for (int64_t q = 0; q < n_groups; q++) w[stats_splitmix(&rng) % (uint64_t)n_groups] += 1;
        }
        memset(sum, 0, (size_t)nk * sizeof *sum);
        memset(cnt, 0, (size_t)nk * sizeof *cnt);
        for (int64_t t = 0; t < n; t++)
            if (slot[t] >= 0 && w[grp[t]] != 0) {
                sum[slot[t]] += w[grp[t]] * val[t];
                cnt[slot[t]] += w[grp[t]];
            }
        for (int64_t k = 0; k < nk; k++) reps[(size_t)k * B + r] = cnt[k] > 0 ? sum[k] / cnt[k] : NAN;
    }
    for (int64_t k = 0; k < nk && B > 0; k++) {
        memcpy(col, reps + (size_t)k * B, (size_t)B * sizeof *col);
        e[k].lo = stats_percentile(col, B, 0.025);
        memcpy(col, reps + (size_t)k * B, (size_t)B * sizeof *col);
        e[k].hi = stats_percentile(col, B, 0.975);
    }
    /* frequency-matched excess */
    if (n_bins < 1) n_bins = 1;
    for (int64_t k = 0; k < nk; k++) bc[k] = (by_count){e[k].count, e[k].key, k};
    qsort(bc, (size_t)nk, sizeof *bc, cmp_count);
    int64_t nb = nk / 5 < n_bins ? nk / 5 : n_bins, start = 0; /* at least 5 keys per bin */
    if (nb < 1) nb = nk ? 1 : 0;
    for (int64_t b = 0; b < nb; b++) {
        int64_t size = nk / nb + (b < nk % nb), m = 0;
        double s = 0;
        for (int64_t q = start; q < start + size; q++) s += e[bc[q].idx].mean, m++;
        for (int64_t q = start; q < start + size; q++) {
            e[bc[q].idx].excess = e[bc[q].idx].mean - s / m;
            e[bc[q].idx].bin = (int)b;
        }
        start += size;
    }
    *out = e;
    *n_out = nk;
    e = NULL;
    rc = 0;
    goto done;
oom:
    rs_errk(err, RS_ENOMEM, "rank: out of memory (%lld rows)", (long long)n);
done:
    free(keys);
    free(slot);
    free(grp);
    free(e);
    free(sum);
    free(cnt);
    free(reps);
    free(w);
    free(col);
    free(bc);
    return rc;
}

int shift_feature_ci(const sae_sparse *fa, const sae_sparse *fb, const int64_t *offsets, int64_t n_groups,
                     const int *feats, int nf, int n_boot, uint64_t seed, const int32_t *boot_counts, double *out,
                     rs_err *err) {
    for (int k = 0; k < 4 * nf; k++) out[k] = NAN;
    if (nf <= 0 || n_boot <= 0) return 0;
    int m = fa->d_sae;
    int *slot = malloc((size_t)m * sizeof *slot);
    /* per group and selected feature: count and sum differences B − A */
    double *dc = calloc((size_t)n_groups * nf, sizeof *dc), *ds = calloc((size_t)n_groups * nf, sizeof *ds);
    double *w = malloc((size_t)n_groups * sizeof *w), *rf = malloc((size_t)n_boot * nf * sizeof *rf),
           *rm = malloc((size_t)n_boot * nf * sizeof *rm), *col = malloc((size_t)n_boot * sizeof *col);
    int rc = -1;
    if (!slot || !dc || !ds || !w || !rf || !rm || !col) {
        rs_errk(err, RS_ENOMEM, "feature intervals: out of memory");
        goto done;
    }
    for (int j = 0; j < m; j++) slot[j] = -1;
    for (int k = 0; k < nf; k++) slot[feats[k]] = k;
    for (int64_t g = 0; g < n_groups; g++)
        for (int64_t t = offsets[g]; t < offsets[g + 1]; t++)
            for (int side = 0; side < 2; side++) {
                const sae_sparse *f = side ? fb : fa;
                double sg = side ? 1.0 : -1.0;
                for (int64_t z = f->row_ptr[t]; z < f->row_ptr[t + 1]; z++) {
                    int k = slot[f->idx[z]];
                    if (k < 0 || f->val[z] == 0) continue;
                    dc[g * nf + k] += sg;
                    ds[g * nf + k] += sg * f->val[z];
                }
            }
    uint64_t rng = seed;
    for (int r = 0; r < n_boot; r++) {
        if (boot_counts) {
            for (int64_t g = 0; g < n_groups; g++) w[g] = boot_counts[(size_t)r * n_groups + g];
        } else {
            memset(w, 0, (size_t)n_groups * sizeof *w);
            for (int64_t q = 0; q < n_groups; q++) w[stats_splitmix(&rng) % (uint64_t)n_groups] += 1;
        }
        double W = 0;
        for (int64_t g = 0; g < n_groups; g++) W += w[g] * (double)(offsets[g + 1] - offsets[g]);
        for (int k = 0; k < nf; k++) {
            double c = 0, s = 0;
            for (int64_t g = 0; g < n_groups; g++)
                if (w[g] != 0) {
                    c += w[g] * dc[g * nf + k];
                    s += w[g] * ds[g * nf + k];
                }
            rf[(size_t)k * n_boot + r] = W > 0 ? c / W : NAN;
            rm[(size_t)k * n_boot + r] = W > 0 ? s / W : NAN;
        }
    }
    for (int k = 0; k < nf; k++)
        for (int q = 0; q < 4; q++) {
            memcpy(col, (q < 2 ? rf : rm) + (size_t)k * n_boot, (size_t)n_boot * sizeof *col);
            out[k * 4 + q] = stats_percentile(col, n_boot, q % 2 ? 0.975 : 0.025);
        }
    rc = 0;
done:
    free(slot);
    free(dc);
    free(ds);
    free(w);
    free(rf);
    free(rm);
    free(col);
    return rc;
}

/* Floors for the shift metrics (shift.h, docs/metrics.md "Floors"): the value a statistic
 * takes from within-model variation alone (split-half) and from the SAE's own misfit. */
#include "reprshift/shift.h"

#include <stdlib.h>
#include <string.h>

int64_t shift_split_half_groups(const int64_t *offsets, int64_t n_groups) {
    int64_t k = 0;
    for (int64_t g = 0; g < n_groups; g++) k += offsets[g + 1] - offsets[g] >= 2;
    return k;
}

int shift_split_half(const float *x, int d, const int64_t *offsets, int64_t n_groups, const shift_opts *o,
                     shift_result *r, int64_t *n_used, rs_err *err) {
    memset(r, 0, sizeof *r);
    *n_used = 0;
    int64_t k = shift_split_half_groups(offsets, n_groups);
    if (k < 2) return rs_errf(err, "split-half floor: fewer than 2 inputs with at least 2 rows");
    float *h1 = calloc((size_t)k * d, sizeof *h1), *h2 = calloc((size_t)k * d, sizeof *h2);
    int64_t *off = malloc((size_t)(k + 1) * sizeof *off);
    if (!h1 || !h2 || !off) {
        free(h1);
        free(h2);
        free(off);
        return rs_errk(err, RS_ENOMEM, "split-half floor: out of memory");
    }
    int64_t u = 0;
    for (int64_t g = 0; g < n_groups; g++) {
        int64_t a = offsets[g], b = offsets[g + 1];
        if (b - a < 2) continue;
        double n1 = (double)((b - a + 1) / 2), n2 = (double)((b - a) / 2);
        for (int i = 0; i < d; i++) {
            double s1 = 0, s2 = 0;
            for (int64_t t = a; t < b; t++) {
                if ((t - a) % 2 == 0) s1 += x[(size_t)t * d + i];
                else s2 += x[(size_t)t * d + i];
            }
            h1[(size_t)u * d + i] = (float)(s1 / n1);
            h2[(size_t)u * d + i] = (float)(s2 / n2);
        }
        u++;
    }
    for (int64_t i = 0; i <= k; i++) off[i] = i;
    shift_opts so = *o;
    so.n_perm = 0;
    so.boot_counts = NULL;
    shift_input in = {.n_rows = k, .d = d, .a = h1, .b = h2, .n_groups = k, .offsets = off};
    int rc = shift_compare(&in, &so, r, err);
    if (!rc) *n_used = k;
    free(h1);
    free(h2);
    free(off);
    return rc;
}

int shift_pair_floor(const float *x, int d, const int64_t *pi, const int64_t *pj, int64_t n_pairs,
                     const int64_t *group_off, int64_t n_groups, const shift_opts *o, shift_result *r, rs_err *err) {
    memset(r, 0, sizeof *r);
    if (n_pairs < 2) return rs_errf(err, "replicate floor: fewer than 2 pairs");
    if (group_off) {
        if (n_groups < 1 || group_off[0] != 0 || group_off[n_groups] != n_pairs)
            return rs_errf(err, "replicate floor: group offsets must run from 0 to the pair count %lld", (long long)n_pairs);
        for (int64_t g = 0; g < n_groups; g++)
            if (group_off[g + 1] <= group_off[g])
                return rs_errf(err, "replicate floor: group %lld has no pair (offsets must increase)", (long long)g);
    }
    float *a = malloc((size_t)n_pairs * d * sizeof *a), *b = malloc((size_t)n_pairs * d * sizeof *b);
    int64_t *off = group_off ? NULL : malloc((size_t)(n_pairs + 1) * sizeof *off);
    int rc = -1;
    if (!a || !b || (!group_off && !off)) {
        rs_errk(err, RS_ENOMEM, "replicate floor: out of memory");
        goto done;
    }
    for (int64_t k = 0; k < n_pairs; k++) {
        memcpy(a + (size_t)k * d, x + (size_t)pi[k] * d, (size_t)d * sizeof *a);
        memcpy(b + (size_t)k * d, x + (size_t)pj[k] * d, (size_t)d * sizeof *b);
    }
    if (!group_off) {
        for (int64_t k = 0; k <= n_pairs; k++) off[k] = k;
        n_groups = n_pairs;
    }
    shift_opts so = *o;
    so.n_perm = 0;
    so.boot_counts = NULL;
    shift_input in = {.n_rows = n_pairs, .d = d, .a = a, .b = b, .n_groups = n_groups,
                      .offsets = group_off ? group_off : off};
    rc = shift_compare(&in, &so, r, err);
done:
    free(a);
    free(b);
    free(off);
    return rc;
}

int shift_sae_misfit(const rs_sae *sae, const float *x, int64_t n, int d, const int64_t *pool_off, int64_t n_units,
                     const int64_t *goff, int64_t n_groups, const shift_opts *o, shift_result *r, rs_err *err) {
    memset(r, 0, sizeof *r);
    if (!pool_off) n_units = n;
    float *xh = malloc((size_t)n * d * sizeof *xh), *xu = NULL, *xhu = NULL;
    sae_sparse f = {0}, fh = {0}, fu = {0}, fhu = {0};
    int rc = -1;
    if (!xh) {
        rs_errk(err, RS_ENOMEM, "SAE-misfit floor: out of memory");
        goto done;
    }
    if (sae_reconstruct(sae, x, n, xh, err) || sae_encode_sparse(sae, x, n, &f, err) ||
        sae_encode_sparse(sae, xh, n, &fh, err))
        goto done;
    const float *ua = x, *ub = xh;
    const sae_sparse *pa = &f, *pb = &fh;
    if (pool_off) {
        xu = malloc((size_t)n_units * d * sizeof *xu);
        xhu = malloc((size_t)n_units * d * sizeof *xhu);
        if (!xu || !xhu) {
            rs_errk(err, RS_ENOMEM, "SAE-misfit floor: out of memory");
            goto done;
        }
        shift_pool_mean(x, d, pool_off, n_units, xu);
        shift_pool_mean(xh, d, pool_off, n_units, xhu);
        if (sae_sparse_pool_mean(&f, pool_off, n_units, &fu, err) || sae_sparse_pool_mean(&fh, pool_off, n_units, &fhu, err))
            goto done;
        ua = xu;
        ub = xhu;
        pa = &fu;
        pb = &fhu;
    }
    shift_opts so = *o;
    so.n_perm = 0;
    so.boot_counts = NULL;
    shift_input in = {.n_rows = n_units, .d = d, .a = ua, .b = ub, .fa = pa, .fb = pb, .n_groups = n_groups, .offsets = goff};
    rc = shift_compare(&in, &so, r, err);
    if (rc) rs_err_prefix(err, "SAE-misfit floor");
done:
    free(xh);
    free(xu);
    free(xhu);
    sae_sparse_free(&f);
    sae_sparse_free(&fh);
    sae_sparse_free(&fu);
    sae_sparse_free(&fhu);
    return rc;
}

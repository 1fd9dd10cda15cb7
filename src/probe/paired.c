/* Paired comparison of two probes evaluated on identical splits (docs/probes.md, "Paired
 * probe comparison"): seed-mean accuracy difference B − A, a paired nested group bootstrap CI
 * and a group sign-flip permutation p-value. The definition is in probe_eval.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "reprshift/probe_eval.h"

void rs_paired_result_free(rs_paired_result *res) {
    if (!res) return;
    free(res->seed_diff);
    res->seed_diff = NULL;
}

int rs_paired_probe_test(const int *correct_a, const int *correct_b, const int *group, const int *n_rows, int S,
                         int n_boot, uint64_t boot_seed, int n_perm, uint64_t perm_seed, rs_paired_result *res,
                         rs_err *err) {
    memset(res, 0, sizeof *res);
    res->diff = res->ci_lo = res->ci_hi = res->acc_a = res->acc_b = res->p = NAN;
    if (S < 1) return rs_errf(err, "paired test: need at least one seed");
    if (!correct_a || !correct_b || !group || !n_rows) return rs_errf(err, "paired test: missing input");
    if (n_boot < 1) return rs_errf(err, "paired test: need at least one bootstrap replicate");
    if (n_perm < 0) return rs_errf(err, "paired test: negative number of permutations");
    int ntot = 0;
    for (int s = 0; s < S; s++) {
        if (n_rows[s] < 1) return rs_errf(err, "paired test: seed %d has no test rows", s);
        ntot += n_rows[s];
    }
    for (int i = 0; i < ntot; i++)
        if ((correct_a[i] != 0 && correct_a[i] != 1) || (correct_b[i] != 0 && correct_b[i] != 1))
            return rs_errf(err, "paired test: row %d: correctness must be 0 or 1", i);
    int rc = 0;
    int *off = malloc(sizeof(int) * (S + 1)), *gall = malloc(sizeof(int) * (ntot + 1));
    int *gseed = malloc(sizeof(int) * (ntot + 1)), *G = malloc(sizeof(int) * S);
    int *gstart = malloc(sizeof(int) * (S + 1)), *dd = malloc(sizeof(int) * (ntot + 1));
    double *rep = malloc(sizeof(double) * n_boot);
    int *gsum = NULL, *sflip = NULL, *cnt = NULL;
    res->seed_diff = calloc((size_t)S, sizeof(double));
    if (!off || !gall || !gseed || !G || !gstart || !dd || !rep || !res->seed_diff) {
        rc = rs_errk(err, RS_ENOMEM, "paired test: out of memory");
        goto out;
    }
    off[0] = 0;
    for (int s = 0; s < S; s++) off[s + 1] = off[s] + n_rows[s];
    for (int i = 0; i < ntot; i++) dd[i] = correct_b[i] - correct_a[i];
    /* groups over all rows (the flip units) and within each seed (the bootstrap units) */
    int GT = rs_group_dense(group, ntot, gall);
    if (GT < 0) { rc = rs_errk(err, RS_ENOMEM, "paired test: out of memory"); goto out; }
    res->n_groups_tested = GT;
    gstart[0] = 0;
    for (int s = 0; s < S; s++) {
        G[s] = rs_group_dense(group + off[s], n_rows[s], gseed + off[s]);
        if (G[s] < 0) { rc = rs_errk(err, RS_ENOMEM, "paired test: out of memory"); goto out; }
        gstart[s + 1] = gstart[s] + G[s];
    }
    res->n_seeds = S;
    res->n_test_groups = G[0];
    res->n_test_items = n_rows[0];
    /* observed */
    double diff = 0, aa = 0, ab = 0;
    for (int s = 0; s < S; s++) {
        int sd = 0, ca = 0, cb = 0;
        for (int i = off[s]; i < off[s + 1]; i++) sd += dd[i], ca += correct_a[i], cb += correct_b[i];
        res->seed_diff[s] = (double)sd / n_rows[s];
        diff += (double)sd / n_rows[s];
        aa += (double)ca / n_rows[s];
        ab += (double)cb / n_rows[s];
    }
    res->diff = diff / S;
    res->acc_a = aa / S;
    res->acc_b = ab / S;
    /* per (seed, group): summed difference and row count (CSR-free: two dense arrays) */
    int NG = gstart[S];
    gsum = calloc((size_t)NG + 1, sizeof(int));
    cnt = calloc((size_t)NG + 1, sizeof(int));
    sflip = malloc(sizeof(int) * (GT + 1));
    if (!gsum || !cnt || !sflip) { rc = rs_errk(err, RS_ENOMEM, "paired test: out of memory"); goto out; }
    for (int s = 0; s < S; s++)
        for (int i = off[s]; i < off[s + 1]; i++) {
            gsum[gstart[s] + gseed[i]] += dd[i];
            cnt[gstart[s] + gseed[i]]++;
        }
    /* paired nested bootstrap: identical draws for A and B, so the difference is resampled */
    for (int b = 0; b < n_boot; b++) {
        double r = 0;
        for (int j = 0; j < S; j++) {
            int s = (int)(rs_uniform_at(boot_seed, (uint64_t)b * S + j) * S);
            if (s >= S) s = S - 1;
            uint64_t st = boot_seed + 1 + (uint64_t)b * S + j;
            int m = 0, sd = 0;
            for (int k = 0; k < G[s]; k++) {
                int g = (int)(rs_uniform_at(st, (uint64_t)k) * G[s]);
                if (g >= G[s]) g = G[s] - 1;
                sd += gsum[gstart[s] + g];
                m += cnt[gstart[s] + g];
            }
            r += (double)sd / m;
        }
        rep[b] = r / S;
    }
    qsort(rep, n_boot, sizeof(double), rs_cmp_double);
    res->ci_lo = rs_percentile_sorted(rep, n_boot, 2.5);
    res->ci_hi = rs_percentile_sorted(rep, n_boot, 97.5);
    /* paired sign-flip test: one flip per group, shared by every seed that tests it */
    res->n_perm = n_perm;
    if (n_perm > 0) {
        int ge = 0;
        double obs = fabs(res->diff);
        for (int q = 0; q < n_perm; q++) {
            for (int g = 0; g < GT; g++)
                sflip[g] = rs_uniform_at(perm_seed, (uint64_t)q * (uint64_t)GT + (uint64_t)g) < 0.5 ? -1 : 1;
            double nul = 0;
            for (int s = 0; s < S; s++) {
                int sd = 0;
                for (int i = off[s]; i < off[s + 1]; i++) sd += sflip[gall[i]] * dd[i];
                nul += (double)sd / n_rows[s];
            }
            nul /= S;
            ge += fabs(nul) >= obs - 1e-12;
        }
        res->p = (1.0 + ge) / (1.0 + n_perm);
    }
out:
    free(off); free(gall); free(gseed); free(G); free(gstart); free(dd); free(rep);
    free(gsum); free(cnt); free(sflip);
    if (rc) rs_paired_result_free(res);
    return rc;
}

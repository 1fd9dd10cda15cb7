/* Cross-modal probe transfer. Two feature matrices describe the same items in two
 * modalities (e.g. caption activations A and image activations B of the same COCO
 * items; row i of A and row i of B are one item). A probe trained on one modality is
 * scored on the other, next to in-modality baselines and next to the same probe applied
 * after a linear map between the spaces fitted on the paired TRAINING items:
 *
 *   out = μ_t + s · (x − μ_s) · M                                 (M: [d_s, d_t])
 *   moments     M = diag(σ_t / σ_s), s = 1        (per-feature mean/std matching; d_s = d_t)
 *   procrustes  U Σ Vᵀ = svd(S_cᵀ T_c), M = U Vᵀ, s = tr Σ / ‖S_c‖²_F  (1 without scaling)
 *   ridge       M = (S_cᵀ S_c + λ I)⁻¹ S_cᵀ T_c    (sklearn Ridge(alpha=λ) with intercept)
 * with S_c, T_c the centred paired training rows. The maps use no labels. If a probe fails
 * on the other modality but succeeds after a map, the information is present but not
 * aligned; if even the in-modality probe fails, it is not present. See docs/probes.md. */
#ifndef REPRSHIFT_PROBE_TRANSFER_H
#define REPRSHIFT_PROBE_TRANSFER_H

#include <stdint.h>
#include "reprshift/error.h"
#include "reprshift/probe.h"
#include "reprshift/probe_eval.h"
#include "reprshift/probe_mlp.h"

typedef enum { RS_MAP_NONE, RS_MAP_MOMENTS, RS_MAP_PROCRUSTES, RS_MAP_RIDGE } rs_map_kind;

typedef struct {
    rs_map_kind kind;
    int ds, dt;
    double *mu_s, *mu_t; /* [ds], [dt] training means */
    double *M;           /* [ds, dt] row-major (procrustes, ridge) */
    double *diag;        /* [ds] (moments) */
    double s;            /* global scale (procrustes) */
} rs_linmap;

/* Fit a map from source rows S [n, ds] to target rows T [n, dt] (row i ↔ row i).
 * lambda: ridge penalty (absolute, as sklearn's Ridge alpha); procrustes_scale: fit s.
 * Free with rs_linmap_free. */
int rs_linmap_fit(rs_linmap *m, rs_map_kind kind, const float *S, const float *T, int n, int ds,
                  int dt, double lambda, int procrustes_scale, rs_err *err);
/* out [n, dt] = map(S [n, ds]). */
int rs_linmap_apply(const rs_linmap *m, const float *S, int n, float *out, rs_err *err);
/* R² of the mapped rows against T [n, dt]: 1 − Σ‖T − map(S)‖² / Σ‖T − mean(T)‖² (sklearn
 * r2_score with multioutput="variance_weighted"). */
double rs_linmap_r2(const rs_linmap *m, const float *S, const float *T, int n);
/* Same, with out of memory an error (rs_linmap_r2 gives NaN then, as for an undefined R²). */
int rs_linmap_r2_checked(const rs_linmap *m, const float *S, const float *T, int n, double *r2, rs_err *err);
/* Free (safe on a zeroed struct). */
void rs_linmap_free(rs_linmap *m);

/* Cells of the transfer matrix: probe trained on `train` modality (0 = A, 1 = B), scored
 * on `test` modality's test rows, after mapping them into the training modality's space. */
#define RS_TRANSFER_CELLS 10
typedef struct {
    int train, test;
    rs_map_kind map;
    const char *name;       /* "A->B ridge", ... (static string) */
} rs_transfer_cell_def;

/* The cell table (RS_TRANSFER_CELLS entries, in output order). */
const rs_transfer_cell_def *rs_transfer_cells(void);

typedef struct {
    int n_seeds;            /* default 5 */
    double test_frac;       /* default 0.2 (of items) */
    const double *Cs;       /* C grid (default 10^-4 … 10^4); one value → fixed C */
    int n_Cs;
    int cv_folds;           /* stratified folds to choose C per modality and seed (default 5) */
    int standardize;        /* scaler fitted on the probe's training rows (default 1) */
    int balanced;           /* class_weight="balanced" */
    int n_boot;             /* bootstrap replicates (default 1000) */
    uint64_t seed;          /* base seed (default 0) */
    double tol;             /* solver tolerance (default 1e-4) */
    double ridge_alpha;     /* λ = ridge_alpha · ‖S_c‖²_F / d_s (scale-free; default 0.1) */
    int procrustes_scale;   /* default 1 */
    const rs_mlp_opts *mlp; /* non-NULL: the probes are this MLP (no C search) */
    const int *cv_group;    /* item groups [n] for rs_transfer_split's inner CV: non-NULL → group-aware
                               folds (rs_group_kfold), NULL → StratifiedKFold (rs_logreg_cv);
                               rs_transfer_evaluate sets it to its group argument */
} rs_transfer_opts;

/* Defaults above. */
rs_transfer_opts rs_transfer_defaults(void);

typedef struct {
    int available;          /* 0 when the cell needs d_A = d_B and they differ */
    rs_metrics mean, ci_lo, ci_hi; /* over seeds; 95% bootstrap CI of the seed-mean */
    double map_r2;          /* mean held-out R² of the map (mapped cells), else NAN */
} rs_transfer_cell;

typedef struct {
    int n_seeds, K;
    rs_transfer_cell cell[RS_TRANSFER_CELLS];
    double chance[2];       /* majority-class share of the test rows, A and B */
    double C[2];            /* mean chosen C (log-average over seeds), A and B */
} rs_transfer_result;

/* One split: fit probes on the rows with is_test = 0 of each modality (C fixed to
 * o->Cs[0] unless cv_folds ≥ 2 and n_Cs > 1), fit the maps on those paired rows, and
 * predict every cell's test rows. pred [RS_TRANSFER_CELLS][n_test] (−1 where unavailable),
 * r2 [RS_TRANSFER_CELLS] (NAN for unmapped cells) may be NULL. */
int rs_transfer_split(const float *XA, int dA, const float *XB, int dB, const int *yA,
                      const int *yB, int n, int K, const int *is_test,
                      const rs_transfer_opts *o, int *pred, double *r2, double *C_out,
                      rs_err *err);

/* Full protocol over n_seeds group-aware stratified item splits (groups may be NULL;
 * stratified by yA); metrics with bootstrap CIs for every cell. */
int rs_transfer_evaluate(const float *XA, int dA, const float *XB, int dB, const int *yA,
                         const int *yB, const int *group, int n, int K,
                         const rs_transfer_opts *o, rs_transfer_result *res, rs_err *err);

/* A one-line reading of a direction (train 0: A→B, 1: B→A): "not present in B",
 * "transfers directly", "present but not aligned (a linear map recovers it)", or
 * "present, not recovered by the linear maps"; rules in docs/probes.md. Static string. */
const char *rs_transfer_diagnosis(const rs_transfer_result *r, int train);

#endif

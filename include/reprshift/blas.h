/* The BLAS that reprshift's GEMMs run on: which library and kernel, a correctness check of
 * its sgemm, and the OpenBLAS kernel to use when OpenBLAS's own CPU detection falls back
 * to a generic kernel (docs/pipeline.md, "BLAS kernel"). Plain functions: nothing is printed
 * and nothing is read from the environment here; the CLI decides (src/cli/main.c). */
#ifndef REPRSHIFT_BLAS_H
#define REPRSHIFT_BLAS_H

typedef struct {
    char library[32]; /* "OpenBLAS" or "cblas" (another CBLAS) */
    char kernel[64];  /* OpenBLAS's kernel (core) name, e.g. "Cooperlake"; "" when unknown */
    char config[256]; /* OpenBLAS's build configuration string; "" when unknown */
} rs_blas_info;

void rs_blas_info_get(rs_blas_info *out);

/* sgemm against a double-precision reference on ragged and small shapes (1…65 rows and
 * columns, K up to 130) in all four transpose combinations: returns the worst, over every
 * entry, of |C − C_ref| / (u · Σ_k |a_ik b_kj|), u = 2⁻²⁴ (the dot-product error bound is
 * K in these units; a correct kernel stays near √K, a wrong one gives 10⁶ and more; NaN or
 * Inf in C gives Inf). *n_cases (if non-NULL) receives the number of products checked.
 * About 10 ms of CPU. The check passes when the result is ≤ rs_blas_check_bound(). */
double rs_blas_check(int *n_cases);
double rs_blas_check_bound(void);

/* The OpenBLAS kernel this CPU should run when OpenBLAS detected `detected`: NULL when the
 * detected one is fine (it is AVX2-class or newer, or the CPU has nothing better), else the
 * best kernel the CPU's instructions support ("Cooperlake" with AVX512-BF16, "SkylakeX"
 * with AVX512F/BW/VL, "Haswell" with AVX2+FMA). Only pre-AVX2 fallbacks (Prescott, Core2,
 * Nehalem, Sandybridge, …) are replaced: a recognised CPU keeps OpenBLAS's own choice. */
const char *rs_blas_preferred_kernel(const char *detected);

#endif

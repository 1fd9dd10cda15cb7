/* The BLAS that reprshift's GEMMs run on: which library and kernel, a correctness check of
 * its sgemm, and the OpenBLAS kernel to use when OpenBLAS's own CPU detection falls back
 * to a generic kernel (docs/pipeline.md, "BLAS kernel"). Plain functions: nothing is printed
 * and nothing is read from the environment here; the CLI decides (src/cli/main.c). */
#ifndef REPRSHIFT_BLAS_H
#define REPRSHIFT_BLAS_H

#include <stddef.h>

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

/* The route of the models' fp32 linear layers (op_linear: y = x·Wᵀ + b). RS_SGEMM_BLAS runs
 * them on the BLAS; RS_SGEMM_ONEDNN on oneDNN's f32 matmul (builds with oneDNN); RS_SGEMM_AUTO
 * (the default) picks oneDNN where rs_sgemm_auto_onednn() says so (AMD CPUs with AVX-512, where
 * it ran every real pass measured faster) and the BLAS elsewhere (on an AVX-512 + AMX Xeon it
 * was slower at some model shapes; bench/README.md, "fp32 linear layers on oneDNN" and "A third
 * machine kind"). Before its first product the oneDNN route passes the same kind of check as
 * rs_blas_check (x·Wᵀ + b only, with and without the bias); a failed check keeps the BLAS,
 * rs_sgemm_use_onednn() says 0 and rs_sgemm_describe says why. The library reads no
 * environment: the CLI maps RS_SGEMM. */
enum { RS_SGEMM_BLAS = 0, RS_SGEMM_ONEDNN = 1, RS_SGEMM_AUTO = 2 };
/* The route named "auto", "blas" or "onednn" (RS_SGEMM, --sgemm-route); -1 for any other name. */
int rs_sgemm_route_parse(const char *name);
/* 0, or -1 (nothing changed) for an unknown route or RS_SGEMM_ONEDNN without oneDNN. */
int rs_sgemm_set_route(int route);
/* The route asked for (RS_SGEMM_AUTO unless rs_sgemm_set_route changed it). */
int rs_sgemm_route(void);
/* 1 where RS_SGEMM_AUTO picks oneDNN (before its check): a build with oneDNN on an AMD CPU with
 * AVX-512. */
int rs_sgemm_auto_onednn(void);
/* 1 when op_linear runs on oneDNN (checks oneDNN on the first call after the route is set). */
int rs_sgemm_use_onednn(void);
/* "oneDNN" or "BLAS". */
const char *rs_sgemm_path(void);
/* One line for --version and provenance.json: the route, the kernel and why. */
void rs_sgemm_describe(char *buf, size_t n);
/* rs_blas_check's measure for oneDNN's f32 matmul as op_linear calls it; Inf without oneDNN. */
double rs_sgemm_check(int *n_cases);
/* Tests: make the oneDNN route's check fail (fault injection); the route is checked again. */
void rs_sgemm_inject_check_failure(int on);
/* Tests: force rs_sgemm_auto_onednn()'s CPU rule to 0 or 1 (still 0 without oneDNN); -1 gives
 * the CPU's own answer back. The route is decided again. */
void rs_sgemm_inject_auto_rule(int v);

#endif

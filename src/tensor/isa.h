/* Runtime ISA dispatch for the elementwise kernels (internal to the library).
 *
 * A kernel is written once, as scalar C in an always-inline NAME_body function, and
 * RS_ISA_KERNEL(NAME, (params), (args)) compiles that same source three times: baseline
 * x86-64, target("avx2") and target("avx512f,…"), collected in the table NAME_k[RS_ISA_COUNT].
 * RS_ISA_CALL(NAME)(args) calls the entry of rs_isa_active(): the best the CPU supports,
 * or the level rs_isa_force chose. Nothing here reads the environment.
 *
 * Why results stay bit-identical across the copies: the build has no -ffast-math and
 * passes -ffp-contract=off (no FMA contraction even where the target has FMA), so the
 * vectoriser may only vectorise loops whose lanes are independent; a floating-point
 * reduction (a running sum) keeps its scalar order in every copy. libm calls (tanhf, cosf,
 * sinf, expf) stay calls to the same glibc functions (no libmvec without -ffast-math); the
 * fp32 GELU and softmax use rs_vexpf (tensor/vexp.h), plain C that vectorises.
 *
 * Why not target_clones on the op_* functions: an OpenMP parallel region is outlined into
 * its own function before the clones are made, so the loop inside it would stay baseline
 * code; and a clone chosen by an ifunc resolver cannot be forced for a test. So the
 * OpenMP loop stays in the op_* function and calls the dispatched per-row/per-chunk kernel.
 *
 * Other compilers or architectures (or -DRS_NO_ISA_DISPATCH): one baseline copy, every
 * table entry points to it, and rs_isa_supported says only "default" is available. */
#ifndef RS_TENSOR_ISA_H
#define RS_TENSOR_ISA_H

#include "reprshift/ops.h"

#if defined(__GNUC__)
#define RS_KERNEL_BODY static inline __attribute__((always_inline))
#else
#define RS_KERNEL_BODY static inline
#endif

#if !defined(RS_NO_ISA_DISPATCH) && defined(__GNUC__) && defined(__x86_64__)
#define RS_ISA_X86 1
#define RS_TARGET_AVX2 __attribute__((target("avx2")))
#define RS_TARGET_AVX512 __attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512dq")))
#define RS_ISA_KERNEL(name, params, args)                                                        \
    static void name##_isa0 params { name##_body args; }                                         \
    RS_TARGET_AVX2 static void name##_isa1 params { name##_body args; }                          \
    RS_TARGET_AVX512 static void name##_isa2 params { name##_body args; }                        \
    static void (*const name##_k[RS_ISA_COUNT]) params = {name##_isa0, name##_isa1, name##_isa2};
#else
#define RS_ISA_KERNEL(name, params, args)                                                        \
    static void name##_isa0 params { name##_body args; }                                         \
    static void (*const name##_k[RS_ISA_COUNT]) params = {name##_isa0, name##_isa0, name##_isa0};
#endif

#define RS_ISA_CALL(name) (name##_k[rs_isa_active()])

#endif

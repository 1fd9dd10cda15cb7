/* The per-(sequence, head) loop of op_attention_kv, shared by the fp32 and bf16 kernels
 * (internal to the tensor kernels). The two differ only in how a row of scores becomes
 * probabilities (scale, soft-cap, softmax, and where bf16 rounds) and in whether the output
 * is rounded; the key range, the sliding-window skip, the prefix and the two products are
 * this one loop. */
#ifndef RS_TENSOR_ATTENTION_IMPL_H
#define RS_TENSOR_ATTENTION_IMPL_H

#include "reprshift/ops.h"

/* rows(S, n, nr, j0, j1, scale, softcap): the scores of nr ≤ 8 consecutive queries (rows of S,
 * n keys each), row k keeping [j0[k], j1[k]), into probabilities (the others set to 0); a
 * block, so that a kernel can interleave the rows' sequential sums. finish(Zh, Lq, hd,
 * z_stride): applied to each head's output block after the second product, or NULL. */
typedef void (*attn_rows_fn)(float *S, int n, int nr, const int *j0, const int *j1, float scale, float softcap);
typedef void (*attn_finish_fn)(float *Zh, int Lq, int hd, int z_stride);

/* The bf16 run's rows (ops.c, dispatched by ISA level): in blocks of up to 8 rows like the fp32
 * rows, each row's bits those of the per-row bf16 computation. */
void rs_attn_rows_bf16(float *S, int n, int nr, const int *j0, const int *j1, float scale, float softcap);

/* The fused fp32 kernel (attn_fused.c, AVX-512): one block of bq ≤ RS_ATTN_FUSED_QB queries
 * (rows of Q, q_stride apart; output rows of Z) against nb keys/values (rows of K and V,
 * kv_stride apart), head_dim hd ≤ RS_ATTN_FUSED_MAX_HD; query l keeps the keys [j0[l], j1[l])
 * (arrays of RS_ATTN_FUSED_QB entries, lanes ≥ bq included; j0 NULL: all). St: scratch of
 * nb · RS_ATTN_FUSED_QB floats. Only where rs_attn_fused_compiled() and the CPU has AVX-512
 * (rs_isa_supported(RS_ISA_AVX512)). */
enum { RS_ATTN_FUSED_QB = 32, RS_ATTN_FUSED_MAX_HD = 256 };
int rs_attn_fused_compiled(void);
void rs_attn_fused_block(float *Z, int z_stride, const float *Q, int q_stride, const float *K, const float *V,
                         int kv_stride, int bq, int nb, int hd, const int *j0, const int *j1, float scale,
                         float softcap, float *St);

/* fused: run each (sequence, head) through rs_attn_fused_block in blocks of RS_ATTN_FUSED_QB
 * queries (the caller checked it may; sequences of fewer queries, and head dims above the
 * kernel's, take the BLAS products); rows and finish are then unused for those. */
void rs_attention_kv_loop(float *Z, const float *Q, const int64_t *q_offsets, const float *K, const float *V,
                          const int64_t *kv_start, const int *kv_len, int n_seqs, const int *prefix,
                          const op_attn_params *p, float *scores, size_t scores_per_thread, attn_rows_fn rows,
                          attn_finish_fn finish, int fused);

#endif

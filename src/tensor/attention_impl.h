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

void rs_attention_kv_loop(float *Z, const float *Q, const int64_t *q_offsets, const float *K, const float *V,
                          const int64_t *kv_start, const int *kv_len, int n_seqs, const int *prefix,
                          const op_attn_params *p, float *scores, size_t scores_per_thread, attn_rows_fn rows,
                          attn_finish_fn finish);

#endif

/* Pieces shared by the dictionary trainers (sae_train.c, crosscoder.c). */
#ifndef RS_SAE_TRAIN_COMMON_H
#define RS_SAE_TRAIN_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* One Adam update of w[0..n) with gradient g and moments m1, m2 (PyTorch's torch.optim.Adam
 * without weight decay): m1 ← β1·m1 + (1−β1)·g, m2 ← β2·m2 + (1−β2)·g², w ← w − lr·(m1/c1) /
 * (√(m2/c2) + ε) with the bias corrections c1 = 1 − β1^t, c2 = 1 − β2^t. Elementwise, so
 * the result does not depend on the thread count (large n runs on OpenMP threads). */
void rs_adam_update(float *w, const float *g, float *m1, float *m2, size_t n, float lr, float beta1, float beta2,
                    float eps, double c1, double c2);

/* The same update as torch.optim.Adam computes it in float32 (its single-tensor and foreach
 * paths): m1 ← lerp(m1, g, 1−β1), m2 ← β2·m2 + (1−β2)·g², w ← w − (lr/c1)·m1 / (√m2/√c2 + ε),
 * c1 = 1 − β1^t, c2 = 1 − β2^t (t = step, from 1). Vectorisable; elementwise like the above. */
void rs_adam_update_f32(float *w, const float *g, float *m1, float *m2, size_t n, float lr, float beta1, float beta2,
                        float eps, long long step);

/* The trainers' initialisation stream: splitmix64 (advances *s), and a standard normal from
 * two draws of it (Box-Muller, cosine branch). */
uint64_t rs_train_next_u64(uint64_t *s);
float rs_train_gauss(uint64_t *s);

#endif

/* op_linear_st (src/tensor/ops.c), the linear layer of decode steps: at most
 * OP_LINEAR_SMALL_T rows against a BF16 or F16 matrix are computed row by row from the
 * half-precision weights; more rows, or F32 weights, widen the matrix and call sgemm. Both
 * against a double-precision product of the widened weights (st_to_f32), for input widths
 * with and without a tail (not a multiple of 16 or of the 2048-value chunk), weights at an
 * odd address, and 1 or 2 threads giving the same bits. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "reprshift/ops.h"
#include "reprshift/safetensors.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static float frand(void) { return (float)((next() >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f; }

/* A random half-precision matrix [OUT, IN] at data (may be unaligned). */
static void fill_half(unsigned char *data, rs_dtype dt, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        if (dt == RS_DT_BF16) {
            float f = frand() * 0.5f;
            uint32_t u;
            memcpy(&u, &f, 4);
            h = (uint16_t)(u >> 16);
        } else { /* f16: sign, exponent 9..16 (about 2^-6 .. 2^1), random mantissa */
            h = (uint16_t)(((next() & 1) << 15) | ((9 + next() % 8) << 10) | (next() & 0x3ff));
        }
        memcpy(data + 2 * i, &h, 2);
    }
}

static double run(rs_dtype dt, int T, int IN, int OUT, int threads, float **yout) {
    size_t n = (size_t)OUT * IN;
    unsigned char *raw = malloc(2 * n + 1);
    fill_half(raw + 1, dt, n); /* odd address */
    st_tensor W = {.name = "w", .dtype = dt, .ndim = 2, .shape = {OUT, IN}, .numel = (int64_t)n, .data = raw + 1,
                   .nbytes = 2 * n};
    float *Wf = malloc(n * sizeof *Wf), *x = malloc((size_t)T * IN * sizeof *x), *y = malloc((size_t)T * OUT * sizeof *y);
    float *scratch = malloc(n * sizeof *scratch);
    st_to_f32(&W, Wf);
    for (size_t i = 0; i < (size_t)T * IN; i++) x[i] = frand();
    omp_set_num_threads(threads);
    op_linear_st(y, x, &W, scratch, T, IN, OUT);
    double worst = 0;
    for (int t = 0; t < T; t++)
        for (int o = 0; o < OUT; o++) {
            double ref = 0, mag = 0;
            for (int i = 0; i < IN; i++) {
                ref += (double)x[(size_t)t * IN + i] * Wf[(size_t)o * IN + i];
                mag += fabs((double)x[(size_t)t * IN + i] * Wf[(size_t)o * IN + i]);
            }
            double e = fabs(y[(size_t)t * OUT + o] - ref) / (mag > 0 ? mag : 1);
            if (!(e <= worst)) worst = e;
        }
    free(raw); free(Wf); free(x); free(scratch);
    *yout = y;
    return worst;
}

static void test_against_double(void **state) {
    (void)state;
    const rs_dtype DT[2] = {RS_DT_BF16, RS_DT_F16};
    const int INS[4] = {16, 37, 2067, 4100}, TS[5] = {1, 2, 3, OP_LINEAR_SMALL_T, OP_LINEAR_SMALL_T + 1};
    for (int d = 0; d < 2; d++)
        for (int a = 0; a < 4; a++)
            for (int b = 0; b < 5; b++) {
                float *y;
                double w = run(DT[d], TS[b], INS[a], 33, 1, &y);
                printf("%s T=%d IN=%-5d max |y - double| / sum|x w| = %.3g\n", rs_dtype_name(DT[d]), TS[b], INS[a], w);
                assert_true(w < 1e-6); /* a few float roundings of the magnitude */
                free(y);
            }
}

static void test_threads_same_bits(void **state) {
    (void)state;
    for (int T = 1; T <= OP_LINEAR_SMALL_T; T++) {
        float *y1, *y2;
        rng = 12345;
        run(RS_DT_BF16, T, 2067, 301, 1, &y1);
        rng = 12345;
        run(RS_DT_BF16, T, 2067, 301, 2, &y2);
        assert_memory_equal(y1, y2, (size_t)T * 301 * sizeof *y1);
        free(y1);
        free(y2);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_double),
        cmocka_unit_test(test_threads_same_bits),
    };
    return tu_exit(cmocka_run_group_tests(tests, NULL, NULL));
}

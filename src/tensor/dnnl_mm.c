/* oneDNN's matmul for the CPU kernels (tensor/dnnl_mm.h). A primitive is created per call:
 * oneDNN caches primitives by their description (its primitive cache, 1024 entries by
 * default), so a repeated shape does not generate its kernel again. */
#include "tensor/dnnl_mm.h"

#include <stdio.h>

#ifdef RS_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>

static dnnl_engine_t dn_engine;
static dnnl_stream_t dn_stream;
static int dn_ok;
static pthread_once_t dn_once = PTHREAD_ONCE_INIT;
/* One stream serves every caller, and a oneDNN stream must not run two primitives at once:
 * concurrent callers (two models' passes on two threads) take turns. */
static pthread_mutex_t dn_exec_mu = PTHREAD_MUTEX_INITIALIZER;

static void dn_init(void) {
    if (dnnl_engine_create(&dn_engine, dnnl_cpu, 0) != dnnl_success) return;
    if (dnnl_stream_create(&dn_stream, dn_engine, dnnl_stream_default_flags) != dnnl_success) {
        dnnl_engine_destroy(dn_engine);
        return;
    }
    dn_ok = 1;
}

int rs_dnnl_available(void) {
    pthread_once(&dn_once, dn_init);
    return dn_ok;
}

void rs_dnnl_version_str(char *buf, size_t n) {
    const dnnl_version_t *v = dnnl_version();
    snprintf(buf, n, "oneDNN %d.%d.%d", v->major, v->minor, v->patch);
}

/* The primitive descriptor of C[M,N] = A·Bᵀ (+ bias) with C's row stride ldc. */
static int make_pd(dnnl_primitive_desc_t *pd, dnnl_memory_desc_t *a_md, dnnl_memory_desc_t *b_md,
                   dnnl_memory_desc_t *c_md, dnnl_memory_desc_t *bias_md, int has_bias, int ldc, int M, int K, int N,
                   int bf16) {
    dnnl_data_type_t in = bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_dims_t ad = {M, K}, bd = {K, N}, cd = {M, N}, cs = {ldc, 1}, biasd = {1, N};
    if (dnnl_memory_desc_init_by_tag(a_md, 2, ad, in, dnnl_ab) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(b_md, 2, bd, in, dnnl_ba) != dnnl_success ||
        dnnl_memory_desc_init_by_strides(c_md, 2, cd, dnnl_f32, cs) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(bias_md, 2, biasd, dnnl_f32, dnnl_ab) != dnnl_success)
        return -1;
    dnnl_matmul_desc_t md;
    if (dnnl_matmul_desc_init(&md, a_md, b_md, has_bias ? bias_md : NULL, c_md) != dnnl_success) return -1;
    dnnl_primitive_attr_t attr = NULL;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success) return -1;
    int rc = -1;
    if (dnnl_primitive_attr_set_fpmath_mode(attr, dnnl_fpmath_mode_strict) == dnnl_success &&
        dnnl_primitive_desc_create(pd, &md, attr, dn_engine, NULL) == dnnl_success)
        rc = 0;
    dnnl_primitive_attr_destroy(attr);
    return rc;
}

int rs_dnnl_matmul(float *C, int ldc, const void *A, const void *B, const float *bias, int M, int K, int N, int bf16) {
    if (!rs_dnnl_available() || M <= 0 || N <= 0 || K <= 0) return -1;
    dnnl_memory_desc_t a_md, b_md, c_md, bias_md;
    dnnl_primitive_desc_t pd = NULL;
    if (make_pd(&pd, &a_md, &b_md, &c_md, &bias_md, bias != NULL, ldc, M, K, N, bf16)) return -1;
    dnnl_primitive_t prim = NULL;
    dnnl_memory_t ma = NULL, mb = NULL, mc = NULL, mbias = NULL;
    int rc = -1;
    if (dnnl_primitive_create(&prim, pd) != dnnl_success) goto out;
    if (dnnl_memory_create(&ma, &a_md, dn_engine, (void *)A) != dnnl_success ||
        dnnl_memory_create(&mb, &b_md, dn_engine, (void *)B) != dnnl_success ||
        dnnl_memory_create(&mc, &c_md, dn_engine, C) != dnnl_success ||
        (bias && dnnl_memory_create(&mbias, &bias_md, dn_engine, (void *)bias) != dnnl_success))
        goto out;
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}, {DNNL_ARG_BIAS, mbias}};
    pthread_mutex_lock(&dn_exec_mu);
    if (dnnl_primitive_execute(prim, dn_stream, bias ? 4 : 3, args) == dnnl_success &&
        dnnl_stream_wait(dn_stream) == dnnl_success)
        rc = 0;
    pthread_mutex_unlock(&dn_exec_mu);
out:
    if (ma) dnnl_memory_destroy(ma);
    if (mb) dnnl_memory_destroy(mb);
    if (mc) dnnl_memory_destroy(mc);
    if (mbias) dnnl_memory_destroy(mbias);
    if (prim) dnnl_primitive_destroy(prim);
    dnnl_primitive_desc_destroy(pd);
    return rc;
}

void rs_dnnl_f32_impl(char *buf, size_t n, int M, int K, int N) {
    if (n) buf[0] = '\0';
    if (!rs_dnnl_available()) return;
    dnnl_memory_desc_t a_md, b_md, c_md, bias_md;
    dnnl_primitive_desc_t pd = NULL;
    if (make_pd(&pd, &a_md, &b_md, &c_md, &bias_md, 1, N, M, K, N, 0)) return;
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl)
        snprintf(buf, n, "%s", impl);
    dnnl_primitive_desc_destroy(pd);
}

#else

int rs_dnnl_available(void) { return 0; }

void rs_dnnl_version_str(char *buf, size_t n) {
    if (n) buf[0] = '\0';
}

int rs_dnnl_matmul(float *C, int ldc, const void *A, const void *B, const float *bias, int M, int K, int N, int bf16) {
    (void)C, (void)ldc, (void)A, (void)B, (void)bias, (void)M, (void)K, (void)N, (void)bf16;
    return -1;
}

void rs_dnnl_f32_impl(char *buf, size_t n, int M, int K, int N) {
    (void)M, (void)K, (void)N;
    if (n) buf[0] = '\0';
}

#endif

/* Fault injection as SQLite does it: every allocation the library makes goes through
 * malloc/calloc/realloc/strdup/strndup, which this test binary wraps at link time
 * (-Wl,--wrap=…, tests/CMakeLists.txt). For each operation below the test first counts the
 * allocations of one successful call, then runs the call again once per allocation k = 1 … N
 * with the k-th allocation failing, and asserts a clean failure: return −1 with a message of
 * kind RS_ENOMEM
 * (or success, when the failed allocation had a fallback), no crash, and — under ASan, as
 * scripts/ci-sanitize.sh runs the suite — no leak. It prints the number of allocation calls
 * exercised per operation. Allocations made inside other libraries (cJSON, libc's own,
 * OpenBLAS) are not counted: they are not the library's code paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "fault_alloc.h"
#include <execinfo.h>

#include "reprshift/blas.h"
#include "reprshift/config.h"
#include "reprshift/coco.h"
#include "reprshift/gemma2.h"
#include "reprshift/generate.h"
#include "reprshift/intervene.h"
#include "io/npz.h"
#include "reprshift/paligemma.h"
#include "reprshift/report.h"
#include "reprshift/safetensors.h"
#include "reprshift/sae.h"
#include "reprshift/tokenizer.h"

/* ---- the wrapped allocator (fault_alloc.c): the k-th counted call fails (k = 0: none) ---- */

int main(void);
typedef int (*op_fn)(rs_err *err); /* runs the operation and frees what it made */

#define M "examples/quickstart/models"

static int op_st_open(rs_err *err) {
    st_set *s;
    if (st_open(&s, M "/gemma2-tiny/model.safetensors", err)) return -1;
    st_close(s);
    return 0;
}
static int op_tok_load(rs_err *err) {
    rs_tokenizer *t;
    if (tok_load(&t, M "/gemma2-tiny/tokenizer.json", err)) return -1;
    tok_free(t);
    return 0;
}
static int op_sae_load(rs_err *err) {
    rs_sae *s;
    if (sae_load(&s, M "/sae/blocks.1.hook_resid_post", NULL, err)) return -1;
    sae_free(s);
    return 0;
}
static int op_npz_sae(rs_err *err) {
    rs_sae *s;
    if (sae_load(&s, "tests/fixtures/sae/gemma-scope-2b-pt-res/layer_3/width_128/average_l0_5", NULL, err)) return -1;
    sae_free(s);
    return 0;
}
static int op_config(rs_err *err) {
    rs_config *c;
    if (rs_config_load("examples/quickstart.json", &c, err)) return -1;
    rs_config_free(c);
    return 0;
}
static int op_coco(rs_err *err) {
    coco_data *d;
    if (coco_load("examples/data/coco-sample/annotations/instances_val2017.json", &d, err)) return -1;
    coco_free(d);
    return 0;
}
static int op_gemma2(rs_err *err) {
    gemma2_model *m;
    if (gemma2_open(&m, M "/gemma2-tiny", err)) return -1;
    int32_t ids[7] = {2, 651, 432, 9, 2, 17, 300};
    int64_t off[3] = {0, 4, 7};
    gemma2_batch b = {0};
    b.n_seqs = 2;
    b.ids = ids;
    b.offsets = off;
    hook_request h[2];
    memset(h, 0, sizeof h);
    int rc = gemma2_hook_parse(&m->cfg, "blocks.1.hook_resid_post", &h[0], err) ||
                     gemma2_hook_parse(&m->cfg, "blocks.2.attn.hook_z", &h[1], err)
                 ? -1
                 : 0;
    h[0].capture = h[1].capture = 1;
    if (!rc) rc = gemma2_forward(m, &b, h, 2, NULL, err);
    free(h[0].out);
    free(h[1].out);
    gemma2_close(m);
    return rc;
}
/* Generation with a KV cache, steered by an add and an SAE clamp on every step. */
static int op_generate(rs_err *err) {
    gemma2_model *m;
    if (gemma2_open(&m, M "/gemma2-tiny", err)) return -1;
    static const char *const SPECS[2] = {
        "add@blocks.0.hook_resid_post:dir=tests/fixtures/intervene/dir.safetensors:alpha=2",
        "sae@blocks.1.hook_resid_post:sae=" M "/sae/blocks.1.hook_resid_post:feature=3:clamp=5"};
    rs_intervention iv[2];
    memset(iv, 0, sizeof iv);
    int n = 0, rc = 0;
    for (; n < 2 && !rc; n++)
        rc = rs_intervention_parse(SPECS[n], &iv[n], err) || rs_intervention_resolve(&iv[n], m, err) ? -1 : 0;
    int32_t prompt[4] = {2, 651, 432, 9};
    gen_params p = {.max_new_tokens = 4, .top_p = 1, .keep_logits = 1};
    gen_output o = {0}, os = {0};
    if (!rc) rc = gen_gemma2(m, prompt, 4, &p, &o, err);
    p.ivs = iv;
    p.n_iv = 2;
    if (!rc) rc = gen_gemma2(m, prompt, 4, &p, &os, err);
    gen_output_free(&o);
    gen_output_free(&os);
    for (int i = 0; i < n; i++) rs_intervention_free(&iv[i]);
    gemma2_close(m);
    return rc;
}
/* Interventions with read-outs (project, SAE zero, patch from a second input) and the logit lens. */
static int op_intervene(rs_err *err) {
    gemma2_model *m;
    if (gemma2_open(&m, M "/gemma2-tiny", err)) return -1;
    static const char *const SPECS[3] = {
        "project@blocks.0.hook_resid_post:dir=tests/fixtures/intervene/dir.safetensors:dir_b",
        "sae@blocks.1.hook_resid_post:sae=" M "/sae/blocks.1.hook_resid_post:feature=3:zero",
        "patch@blocks.2.hook_resid_post:from=1:pos=1"};
    rs_intervention iv[3];
    memset(iv, 0, sizeof iv);
    int n = 0, rc = 0;
    for (; n < 3 && !rc; n++)
        rc = rs_intervention_parse(SPECS[n], &iv[n], err) || rs_intervention_resolve(&iv[n], m, err) ? -1 : 0;
    int32_t a[5] = {2, 651, 432, 9, 17}, b[5] = {2, 300, 17, 9, 651};
    rs_iv_input in[2] = {{.ids = a, .len = 5}, {.ids = b, .len = 5}};
    rs_iv_result r;
    memset(&r, 0, sizeof r);
    if (!rc) rc = rs_intervene_run(m, in, 2, 0, iv, 3, &r, err);
    rs_iv_result_free(&r);
    int layers[2] = {0, 3};
    float *lens[2] = {NULL, NULL};
    if (!rc) rc = rs_logit_lens(m, &in[0], 0, layers, 2, lens, err);
    free(lens[0]);
    free(lens[1]);
    for (int i = 0; i < n; i++) rs_intervention_free(&iv[i]);
    gemma2_close(m);
    return rc;
}
static int op_paligemma(rs_err *err) {
    paligemma_model *m;
    if (paligemma_open(&m, M "/paligemma-tiny", err)) return -1;
    paligemma_close(m);
    return 0;
}
static int op_report(rs_err *err) {
    char *html = NULL;
    size_t len;
    int figs;
    if (report_render("tests/fixtures/report/full", &html, &len, &figs, err)) return -1;
    free(html);
    return 0;
}

/* max_recovered: failed allocations after which the call may still succeed, each a known
 * fallback (named at the call below); any other success after a failed allocation is a
 * silent error and fails the test. */
static void run_op(const char *name, op_fn op, long max_recovered) {
    rs_err err;
    /* count */
    memset(&err, 0, sizeof err);
    fa_calls = 0;
    fa_fail_at = 0;
    fa_armed = 1;
    int rc = op(&err);
    fa_armed = 0;
    if (rc) fail_msg("%s: fails without injection: %s", name, err.msg);
    long n = fa_calls, clean = 0, recovered = 0;
    for (long k = 1; k <= n; k++) {
        memset(&err, 0, sizeof err);
        fa_calls = 0;
        fa_fail_at = k;
        fa_armed = 1;
        rc = op(&err);
        fa_armed = 0;
        if (rc == 0) {
            recovered++;
            for (int q = 1; q < fa_nbt && getenv("RS_FAULT_SITES"); q++) printf("    bt main%+ld\n", (long)((char *)fa_bt[q] - (char *)&main));
            if (getenv("RS_FAULT_SITES")) printf("  %s: allocation %ld failed, call succeeded: site main%+ld\n", name, k, (long)((char *)fa_fail_site - (char *)&main));
            continue;
        }
        if (rc != -1 || !err.msg[0]) fail_msg("%s: allocation %ld of %ld failed: rc %d, message \"%s\"", name, k, n, rc, err.msg);
        /* the error must say what happened: out of memory, not some other failure it caused */
        if (err.kind != RS_ENOMEM)
            fail_msg("%s: allocation %ld of %ld failed but the error has kind %s: \"%s\"", name, k, n,
                     rs_err_kind_name(err.kind), err.msg);
        clean++;
    }
    printf("%-28s %5ld allocation calls, each failed once: %ld clean errors, %ld recovered\n", name, n, clean, recovered);
    assert_true(n > 0);
    if (recovered > max_recovered)
        fail_msg("%s: %ld calls succeeded after a failed allocation (known fallbacks: %ld); RS_FAULT_SITES=1 lists them",
                 name, recovered, max_recovered);
}

static void test_loaders(void **state) {
    (void)state;
    run_op("st_open (safetensors)", op_st_open, 0);
    /* 1: reading the optional tokenizer_config.json; unreadable counts as absent (its special
       tokens then come from tokenizer.json's own names, which here are the same) */
    run_op("tok_load (tokenizer.json)", op_tok_load, 1);
    run_op("sae_load (sae-lens)", op_sae_load, 0);
    run_op("sae_load (Gemma Scope npz)", op_npz_sae, 0);
    run_op("rs_config_load", op_config, 0);
    run_op("coco_load", op_coco, 0);
    run_op("paligemma_open", op_paligemma, 0);
}

static void test_forward(void **state) {
    (void)state;
    /* The fp32 linear layers' route is decided once per process, on the first product: where it
     * is oneDNN (RS_SGEMM_AUTO on AMD with AVX-512) its accuracy check allocates, and an
     * allocation failing there keeps the BLAS, which rs_sgemm_describe reports. Decide it before
     * counting, so that every counted run allocates alike. */
    printf("fp32 linear layers: %s\n", rs_sgemm_path());
    run_op("gemma2_open + forward", op_gemma2, 0);
    run_op("generate (KV cache, steered)", op_generate, 0);
    run_op("intervene + logit lens", op_intervene, 0);
}

static void test_report(void **state) {
    (void)state;
    run_op("report_render", op_report, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loaders),
        cmocka_unit_test(test_forward),
        cmocka_unit_test(test_report),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* PaliGemma-2 forward pass vs transformers 5.24 goldens (tools/reference/gen_model_fixtures.py)
 * on the three tensor-name layouts: projector output, every decoder hook over the image
 * rows and the text rows separately, logits and suffix CE (prefix-LM mask, 1-based
 * positions); text-only input through the decoder; all runs packed into one batch; prompt
 * construction; bad inputs and configs that disagree with the tensors.
 * Tolerance: max|diff| <= 1e-4 * max|ref|. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store/act_file.h"
#include "reprshift/blas.h"
#include "reprshift/extract.h"
#include "reprshift/fileio.h"
#include "reprshift/paligemma.h"

static const char *MODELS[] = {"paligemma-tiny-f32", "paligemma-tiny-bf16", "paligemma-tiny-model-prefix"};
static const char *SUFFIXES[] = {"hook_resid_pre", "attn.hook_z", "hook_attn_out", "hook_resid_mid",
                                 "hook_mlp_out", "hook_resid_post"};
#define TOL 1e-4

typedef struct {
    paligemma_model *m;
    st_set *g;
    int n_runs, n_text;
} fixture;

/* Worst relative errors seen, per stage (printed at the end of each test). */
static double W_PROJ, W_IMG, W_TXT, W_TONLY, W_LOGITS;

static void open_fixture(fixture *f, const char *name) {
    char dir[512], gpath[600];
    rs_err err = {0};
    snprintf(dir, sizeof dir, "tests/fixtures/models/%s", name);
    snprintf(gpath, sizeof gpath, "%s/golden.safetensors", dir);
    if (paligemma_open(&f->m, dir, &err)) fail_msg("%s", err.msg);
    if (st_open(&f->g, gpath, &err)) fail_msg("%s", err.msg);
    f->n_runs = atoi(st_meta(f->g, "n_prompts"));
    f->n_text = atoi(st_meta(f->g, "n_text_only"));
    assert_true(f->n_runs >= 2 && f->n_text >= 1);
}

static void close_fixture(fixture *f) {
    paligemma_close(f->m);
    st_close(f->g);
}

static const st_tensor *golden(const fixture *f, char kind, int k, const char *what) {
    char name[200];
    snprintf(name, sizeof name, "%c%d.%s", kind, k, what);
    const st_tensor *t = st_get(f->g, name);
    if (!t) fail_msg("golden tensor %s missing", name);
    return t;
}

static int decoder_hooks(const paligemma_model *m, hook_request *h) {
    rs_err err = {0};
    int n = 0;
    char name[96];
    for (int l = 0; l < m->cfg.text.n_layers; l++)
        for (int s = 0; s < 6; s++) {
            snprintf(name, sizeof name, "blocks.%d.%s", l, SUFFIXES[s]);
            if (paligemma_hook_parse(m, name, &h[n++], &err)) fail_msg("%s", err.msg);
        }
    if (paligemma_hook_parse(m, "ln_final.hook_normalized", &h[n++], &err)) fail_msg("%s", err.msg);
    if (paligemma_hook_parse(m, "ln_final.hook_out", &h[n++], &err)) fail_msg("%s", err.msg);
    return n;
}

/* Compare rows [r0, r1) of got (row stride W) with the same rows of a golden [T, W]. */
static double compare_rows(const st_tensor *g, const float *got, int r0, int r1, int W, const char *label) {
    float *ref = st_to_f32_new(g);
    size_t n = (size_t)(r1 - r0) * W;
    const float *rr = ref + (size_t)r0 * W, *gg = got + (size_t)r0 * W;
    double d = tu_max_abs_diff(rr, gg, n), mx = tu_max_abs(rr, n);
    tu_assert_close_rel(rr, gg, n, TOL, label);
    free(ref);
    return mx > 0 ? d / mx : d;
}

static void upd(double *w, double v) { if (v > *w) *w = v; }

/* Mean CE of targets ids[i+1] for i in [i0, i1) from final hidden states. */
static double ce_range(const paligemma_model *m, const float *hid, const int32_t *ids, int i0, int i1) {
    int V = m->cfg.text.vocab_size, D = m->cfg.text.hidden_size;
    float *lg = malloc((size_t)V * sizeof(float));
    double sum = 0;
    for (int i = i0; i < i1; i++) {
        assert_int_equal(gemma2_logits(m->text, hid + (size_t)i * D, 1, lg, NULL), 0);
        double mx = -INFINITY, z = 0;
        for (int v = 0; v < V; v++) if (lg[v] > mx) mx = lg[v];
        for (int v = 0; v < V; v++) z += exp(lg[v] - mx);
        sum += mx + log(z) - lg[ids[i + 1]];
    }
    free(lg);
    return sum / (i1 - i0);
}

/* One sequence of a fixture run ("p" image run or "t" text-only run), laid out for a batch. */
typedef struct {
    char kind;
    int k, T, P, n_images;
    int32_t *ids;
    float *pix;
} run_in;

static run_in load_run(const fixture *f, char kind, int k) {
    run_in r = {.kind = kind, .k = k};
    const st_tensor *ids = golden(f, kind, k, "ids");
    r.T = (int)ids->numel;
    r.ids = malloc((size_t)r.T * sizeof(int32_t));
    memcpy(r.ids, ids->data, (size_t)r.T * sizeof(int32_t));
    if (kind == 'p') {
        int32_t P;
        memcpy(&P, golden(f, kind, k, "prefix_len")->data, 4);
        r.P = P;
        r.n_images = 1;
        r.pix = st_to_f32_new(golden(f, kind, k, "pixel_values"));
    }
    return r;
}

/* Check every capture of sequence r (rows [row0, row0+T) of the batch; images from img0). */
static void check_run(const fixture *f, const run_in *r, const hook_request *h, int nh, const float *hid, int row0,
                      int img0, const char *model) {
    int N = f->m->vision->n_patches, D = f->m->cfg.text.hidden_size;
    char label[300];
    for (int i = 0; i < nh; i++) {
        const st_tensor *g = golden(f, r->kind, r->k, h[i].name);
        if (h[i].id.kind == HK_PROJECTOR_OUT) {
            snprintf(label, sizeof label, "%s %c%d %s", model, r->kind, r->k, h[i].name);
            assert_int_equal(g->numel, (int64_t)N * D);
            upd(&W_PROJ, compare_rows(g, h[i].out + (size_t)img0 * N * D, 0, N, D, label));
            continue;
        }
        assert_int_equal(g->numel, (int64_t)r->T * h[i].width);
        const float *got = h[i].out + (size_t)row0 * h[i].width;
        if (r->kind == 'p') {
            snprintf(label, sizeof label, "%s p%d %s image rows", model, r->k, h[i].name);
            upd(&W_IMG, compare_rows(g, got, 0, N, h[i].width, label));
            snprintf(label, sizeof label, "%s p%d %s text rows", model, r->k, h[i].name);
            upd(&W_TXT, compare_rows(g, got, N, r->T, h[i].width, label));
        } else {
            snprintf(label, sizeof label, "%s t%d %s", model, r->k, h[i].name);
            upd(&W_TONLY, compare_rows(g, got, 0, r->T, h[i].width, label));
        }
    }
    /* logits and CE (image runs: suffix targets only, as HF's loss with prefix labels -100) */
    int V = f->m->cfg.text.vocab_size;
    float *lg = malloc((size_t)r->T * V * sizeof(float));
    assert_int_equal(gemma2_logits(f->m->text, hid + (size_t)row0 * D, r->T, lg, NULL), 0);
    snprintf(label, sizeof label, "%s %c%d logits", model, r->kind, r->k);
    upd(&W_LOGITS, compare_rows(golden(f, r->kind, r->k, "logits"), lg, 0, r->T, V, label));
    free(lg);
    char name[64];
    snprintf(name, sizeof name, "%c%d.ce", r->kind, r->k);
    const st_tensor *gce = st_get(f->g, name);
    int i0 = r->kind == 'p' ? r->P - 1 : 0;
    if (r->T - 1 > i0) {
        assert_non_null(gce);
        float want;
        st_to_f32(gce, &want);
        double ce = ce_range(f->m, hid + (size_t)row0 * D, r->ids, i0, r->T - 1);
        if (fabs(ce - want) > 1e-4 * fabs(want)) fail_msg("%s %s: ce %.7f vs ref %.7f", model, name, ce, want);
    } else {
        assert_null(gce);
    }
}

/* Run a list of sequences as one batch and check them all. */
static void run_batch(const fixture *f, run_in *runs, int n, const char *model) {
    hook_request *h = calloc(512, sizeof *h);
    int nh = decoder_hooks(f->m, h);
    rs_err err = {0};
    assert_int_equal(paligemma_hook_parse(f->m, "projector.hook_out", &h[nh++], &err), 0);
    int64_t *off = calloc((size_t)n + 1, sizeof *off);
    int *pl = calloc((size_t)n, sizeof *pl);
    int n_img = 0;
    for (int s = 0; s < n; s++) {
        off[s + 1] = off[s] + runs[s].T;
        pl[s] = runs[s].P;
        n_img += runs[s].n_images;
    }
    int T = (int)off[n], S = f->m->cfg.vision.image_size;
    size_t npix = (size_t)3 * S * S;
    int32_t *ids = malloc((size_t)T * sizeof *ids);
    float *pix = malloc((n_img ? n_img : 1) * npix * sizeof(float));
    for (int s = 0, im = 0; s < n; s++) {
        memcpy(ids + off[s], runs[s].ids, (size_t)runs[s].T * sizeof *ids);
        if (runs[s].n_images) memcpy(pix + (size_t)im++ * npix, runs[s].pix, npix * sizeof(float));
    }
    paligemma_batch b = {.n_seqs = n, .offsets = off, .ids = ids, .prefix_len = pl, .n_images = n_img,
                         .pixel_values = pix};
    float *hid = malloc((size_t)T * f->m->cfg.text.hidden_size * sizeof(float));
    if (paligemma_forward(f->m, &b, h, nh, hid, &err)) fail_msg("%s", err.msg);
    /* without images the projector hook stays empty */
    if (!n_img) assert_null(h[nh - 1].out);
    for (int s = 0, im = 0; s < n; s++) {
        check_run(f, &runs[s], h, runs[s].n_images ? nh : nh - 1, hid, (int)off[s], im, model);
        im += runs[s].n_images;
    }
    hook_requests_free(h, nh);
    free(h);
    free(off);
    free(pl);
    free(ids);
    free(pix);
    free(hid);
}

static void free_runs(run_in *r, int n) {
    for (int i = 0; i < n; i++) { free(r[i].ids); free(r[i].pix); }
}

static void test_each_run_alone(void **s) {
    (void)s;
    W_PROJ = W_IMG = W_TXT = W_TONLY = W_LOGITS = 0;
    for (int mi = 0; mi < 3; mi++) {
        fixture f;
        open_fixture(&f, MODELS[mi]);
        for (int k = 0; k < f.n_runs; k++) {
            run_in r = load_run(&f, 'p', k);
            run_batch(&f, &r, 1, MODELS[mi]);
            free_runs(&r, 1);
        }
        for (int k = 0; k < f.n_text; k++) {
            run_in r = load_run(&f, 't', k);
            run_batch(&f, &r, 1, MODELS[mi]);
            free_runs(&r, 1);
        }
        close_fixture(&f);
    }
    printf("# worst relative error (max|diff| / max|ref|): projector %.3g, decoder image tokens %.3g, "
           "decoder text tokens %.3g, text-only input %.3g, logits %.3g\n",
           W_PROJ, W_IMG, W_TXT, W_TONLY, W_LOGITS);
}

/* Image runs and text-only runs mixed in one packed batch (several images per call). */
static void test_packed_batch(void **s) {
    (void)s;
    for (int mi = 0; mi < 3; mi++) {
        fixture f;
        open_fixture(&f, MODELS[mi]);
        run_in r[16];
        int n = 0;
        r[n++] = load_run(&f, 't', 0);
        for (int k = 0; k < f.n_runs; k++) r[n++] = load_run(&f, 'p', k);
        run_batch(&f, r, n, MODELS[mi]);
        free_runs(r, n);
        close_fixture(&f);
    }
}

/* The packed batch again with the fp32 linear layers on oneDNN (RS_SGEMM=onednn): the SigLIP
 * tower, the projector and the decoder keep the same tolerance. */
static void test_packed_batch_on_onednn(void **s) {
#ifdef RS_BUILD_HAS_DNNL
    assert_int_equal(rs_sgemm_set_route(RS_SGEMM_ONEDNN), 0);
    assert_int_equal(rs_sgemm_use_onednn(), 1);
    test_packed_batch(s);
    assert_int_equal(rs_sgemm_set_route(RS_SGEMM_BLAS), 0);
#else
    (void)s;
    assert_int_equal(rs_sgemm_set_route(RS_SGEMM_ONEDNN), -1);
    printf("# this build has no oneDNN: its route is refused (nothing else to compare)\n");
#endif
}

/* paligemma_build_input reproduces the processor's ids and prefix length. */
static void test_build_input(void **s) {
    (void)s;
    for (int mi = 0; mi < 3; mi++) {
        fixture f;
        open_fixture(&f, MODELS[mi]);
        int N = f.m->vision->n_patches;
        for (int k = 0; k < f.n_runs; k++) {
            run_in r = load_run(&f, 'p', k);
            int32_t *ids;
            uint8_t *kinds;
            int64_t len;
            int P;
            rs_err err = {0};
            int np = r.P - N - 1;
            assert_int_equal(paligemma_build_input(f.m, 1, r.ids + N + 1, np, r.ids + r.P, r.T - r.P, &ids, &kinds,
                                                   &len, &P, &err), 0);
            assert_int_equal(len, r.T);
            assert_int_equal(P, r.P);
            assert_memory_equal(ids, r.ids, (size_t)r.T * 4);
            for (int i = 0; i < r.T; i++) {
                int want = i < N ? PG_TOK_IMAGE : i == N ? PG_TOK_BOS : i < r.P - 1 ? PG_TOK_PROMPT
                         : i == r.P - 1 ? PG_TOK_SEP : i == r.T - 1 ? PG_TOK_SPECIAL /* the closing <eos> */
                         : PG_TOK_SUFFIX;
                assert_int_equal(kinds[i], want);
            }
            assert_int_equal(r.ids[r.P - 1], 108); /* the "\n" separator */
            free(ids);
            free(kinds);
            free_runs(&r, 1);
        }
        run_in t = load_run(&f, 't', 0);
        uint8_t *kinds = malloc((size_t)t.T);
        paligemma_text_kinds(f.m, t.ids, t.T, kinds);
        assert_int_equal(kinds[0], PG_TOK_BOS);
        for (int i = 1; i < t.T; i++) assert_true(kinds[i] == PG_TOK_TEXT || kinds[i] == PG_TOK_SPECIAL);
        free(kinds);
        free_runs(&t, 1);
        close_fixture(&f);
    }
    assert_string_equal(pg_token_kind_name(PG_TOK_SEP), "sep");
}

static void test_bad_image_count(void **s) {
    (void)s;
    fixture f;
    open_fixture(&f, "paligemma-tiny-f32");
    run_in r = load_run(&f, 'p', 0);
    hook_request h;
    rs_err err = {0};
    assert_int_equal(paligemma_hook_parse(f.m, "blocks.0.hook_resid_post", &h, &err), 0);
    int64_t off[2] = {0, r.T};
    int P = r.P;
    float *pix2 = calloc(2 * 3 * 28 * 28, sizeof(float));
    paligemma_batch b = {.n_seqs = 1, .offsets = off, .ids = r.ids, .prefix_len = &P, .n_images = 2, .pixel_values = pix2};
    assert_int_equal(paligemma_forward(f.m, &b, &h, 1, NULL, &err), -1); /* 4 tokens, 2 images */
    assert_non_null(strstr(err.msg, "2 image(s) were given"));
    b.n_images = 0;
    assert_int_equal(paligemma_forward(f.m, &b, &h, 1, NULL, &err), -1);
    b.n_images = 1;
    r.ids[1] = 7; /* 3 image tokens: not a whole image */
    assert_int_equal(paligemma_forward(f.m, &b, &h, 1, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "not a multiple"));
    r.ids[1] = 256;
    P = 3; /* image tokens outside the prefix */
    assert_int_equal(paligemma_forward(f.m, &b, &h, 1, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "outside the prefix"));
    P = r.T + 1;
    assert_int_equal(paligemma_forward(f.m, &b, &h, 1, NULL, &err), -1);
    P = r.P;
    assert_int_equal(paligemma_forward(f.m, &b, &h, 1, NULL, &err), 0);
    free(h.out);
    /* a vision hook with a decoder name space clash: blocks.* is the decoder, vision.blocks.* the tower */
    assert_int_equal(paligemma_hook_parse(f.m, "vision.blocks.5.hook_resid_post", &h, &err), -1);
    assert_non_null(strstr(err.msg, "vision.blocks.{0..1}"));
    free(pix2);
    free_runs(&r, 1);
    close_fixture(&f);
}

/* Copy a fixture to a temp dir with config.json edited by `edit`. */
static const char *copy_fixture(const char *name, void (*edit)(cJSON *)) {
    static char dir[600];
    snprintf(dir, sizeof dir, "%s/%s", tu_tmpdir(), name);
    assert_int_equal(tu_system("mkdir -p '%s' && cp tests/fixtures/models/%s/*.safetensors* '%s'/", dir, name, dir), 0);
    char src[600], dst[700];
    snprintf(src, sizeof src, "tests/fixtures/models/%s/config.json", name);
    char *buf;
    size_t n;
    rs_err err = {0};
    assert_int_equal(rs_read_file(src, 1 << 20, &buf, &n, &err), 0);
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    edit(j);
    char *txt = cJSON_Print(j);
    snprintf(dst, sizeof dst, "%s/config.json", dir);
    FILE *fp = fopen(dst, "w");
    fputs(txt, fp);
    fclose(fp);
    free(txt);
    cJSON_Delete(j);
    return dir;
}

static void set_num(cJSON *o, const char *k, double v) { cJSON_ReplaceItemInObject(o, k, cJSON_CreateNumber(v)); }
static void edit_projdim(cJSON *j) { set_num(j, "projection_dim", 32); }
static void edit_vision_width(cJSON *j) { set_num(cJSON_GetObjectItem(j, "vision_config"), "hidden_size", 48); }
static void edit_vision_size(cJSON *j) { set_num(cJSON_GetObjectItem(j, "vision_config"), "image_size", 56); }
static void edit_text_width(cJSON *j) {
    set_num(cJSON_GetObjectItem(j, "text_config"), "hidden_size", 48);
    set_num(j, "projection_dim", 48);
}

static void expect_open_error(const char *dir, const char *needle) {
    paligemma_model *m = NULL;
    rs_err err = {0};
    if (paligemma_open(&m, dir, &err) != -1) fail_msg("%s: opened despite the mismatch", dir);
    assert_null(m);
    if (!strstr(err.msg, needle)) fail_msg("error \"%s\" does not mention \"%s\"", err.msg, needle);
}

static void test_config_mismatch(void **s) {
    (void)s;
    expect_open_error(copy_fixture("paligemma-tiny-f32", edit_projdim), "projection_dim 32");
    expect_open_error(copy_fixture("paligemma-tiny-f32", edit_vision_width), "vision_tower.embeddings.patch_embedding.weight");
    expect_open_error(copy_fixture("paligemma-tiny-bf16", edit_vision_size),
                      "vision_tower.vision_model.embeddings.position_embedding.weight");
    expect_open_error(copy_fixture("paligemma-tiny-model-prefix", edit_text_width), "model.language_model.embed_tokens.weight");

    /* projector tensor shape that disagrees with the (consistent) config: rewrite the weights
     * with multi_modal_projector.linear.weight transposed-shaped */
    st_set *w;
    rs_err err = {0};
    assert_int_equal(st_open(&w, "tests/fixtures/models/paligemma-tiny-f32", &err), 0);
    st_writer *wr = st_writer_new();
    for (int i = 0; i < w->n_tensors; i++) {
        const st_tensor *t = &w->tensors[i];
        int64_t shape[ST_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        if (!strcmp(t->name, "multi_modal_projector.linear.weight")) { shape[0] = t->shape[1]; shape[1] = t->shape[0]; }
        assert_int_equal(st_writer_add(wr, t->name, t->dtype, t->ndim, shape, t->data, &err), 0);
    }
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/badproj", tu_tmpdir());
    assert_int_equal(tu_system("mkdir -p '%s' && cp tests/fixtures/models/paligemma-tiny-f32/config.json '%s'/", dir, dir), 0);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    assert_int_equal(st_writer_save(wr, path, &err), 0);
    st_writer_free(wr);
    st_close(w);
    expect_open_error(dir, "multi_modal_projector.linear.weight");
    expect_open_error(dir, "projector");
}

/* Mean over golden rows [r0, r1) of p{k}/t{k}.<hook> into out[W]. */
static void golden_mean(const fixture *f, char kind, int k, const char *hook, int r0, int r1, int W, float *out) {
    float *g = st_to_f32_new(golden(f, kind, k, hook));
    for (int d = 0; d < W; d++) {
        double acc = 0;
        for (int r = r0; r < r1; r++) acc += g[(size_t)r * W + d];
        out[d] = (float)(acc / (r1 - r0));
    }
    free(g);
}

static const pg_tensor *result_tensor(const pg_extract_result *r, const char *name) {
    for (int i = 0; i < r->n_tensors; i++)
        if (!strcmp(r->t[i].name, name)) return &r->t[i];
    fail_msg("output tensor %s missing", name);
    return NULL;
}

/* extract_paligemma on an image read from disk (C decoding + preprocessing) and a text-only
 * input: unpooled rows and the pooled variants against the goldens. */
static void test_extract(void **s) {
    (void)s;
    TU_NEED_SHARED("data/images", "the real test images of the shared data folder");
    fixture f;
    open_fixture(&f, "paligemma-tiny-model-prefix");
    int N = f.m->vision->n_patches, D = f.m->cfg.text.hidden_size, Dv = f.m->cfg.vision.hidden_size;
    cJSON *runs = cJSON_Parse(st_meta(f.g, "runs"));
    char path[600];
    snprintf(path, sizeof path, "data/%s", cJSON_GetObjectItem(cJSON_GetArrayItem(runs, 1), "image")->valuestring);
    cJSON_Delete(runs);
    run_in p1 = load_run(&f, 'p', 1), t0 = load_run(&f, 't', 0);
    assert_int_equal(p1.T, p1.P); /* prefix-only run */
    rs_err err = {0};
    for (int pool = 0; pool < 2; pool++) {
        pg_inputs in = {0};
        int32_t *ids;
        uint8_t *kinds;
        int64_t len;
        int P;
        assert_int_equal(paligemma_build_input(f.m, 1, p1.ids + N + 1, p1.P - N - 1, NULL, 0, &ids, &kinds, &len, &P, &err), 0);
        assert_int_equal(pg_inputs_add(&in, ids, kinds, len, P, tu_shared(path), "prompt", "lbl", &err), 0);
        free(ids);
        free(kinds);
        kinds = malloc((size_t)t0.T);
        paligemma_text_kinds(f.m, t0.ids, t0.T, kinds);
        assert_int_equal(pg_inputs_add(&in, t0.ids, kinds, t0.T, 0, NULL, "text", NULL, &err), 0);
        free(kinds);
        hook_request h[3];
        assert_int_equal(paligemma_hook_parse(f.m, "blocks.1.hook_resid_post", &h[0], &err), 0);
        assert_int_equal(paligemma_hook_parse(f.m, "vision.ln_post", &h[1], &err), 0);
        assert_int_equal(paligemma_hook_parse(f.m, "projector.hook_out", &h[2], &err), 0);
        extract_opts o = {.n_hooks = 3, .hooks = h, .pool = pool ? POOL_MEAN : POOL_NONE, .batch_tokens = 16};
        pg_extract_result r;
        if (extract_paligemma(f.m, &in, &o, &r, NULL, &err)) fail_msg("%s", err.msg);
        if (pool == 0) {
            const pg_tensor *dec = result_tensor(&r, "blocks.1.hook_resid_post");
            assert_int_equal(dec->rows, p1.T + t0.T);
            compare_rows(golden(&f, 'p', 1, "blocks.1.hook_resid_post"), dec->data, 0, p1.T, D, "extract p1 decoder");
            compare_rows(golden(&f, 't', 0, "blocks.1.hook_resid_post"), dec->data + (size_t)p1.T * D, 0, t0.T, D,
                         "extract t0 decoder");
            const pg_tensor *v = result_tensor(&r, "vision.ln_post");
            assert_int_equal(v->rows, N);
            compare_rows(golden(&f, 'p', 1, "vision.ln_post"), v->data, 0, N, Dv, "extract p1 vision.ln_post");
            assert_int_equal(r.vision_offsets[1], N);
            assert_int_equal(r.vision_offsets[2], N);
            assert_int_equal(r.token_kind[N], PG_TOK_BOS);
            assert_int_equal(r.token_kind[p1.T - 1], PG_TOK_SEP);
        } else {
            float *want = malloc((size_t)D * sizeof(float));
            const pg_tensor *base = result_tensor(&r, "blocks.1.hook_resid_post");
            const pg_tensor *im = result_tensor(&r, "blocks.1.hook_resid_post@image");
            const pg_tensor *tx = result_tensor(&r, "blocks.1.hook_resid_post@text");
            assert_int_equal(base->rows, 2);
            /* image input: content = image tokens; @text = prompt tokens (not BOS, not "\n") */
            golden_mean(&f, 'p', 1, "blocks.1.hook_resid_post", 0, N, D, want);
            tu_assert_close_rel(want, base->data, (size_t)D, TOL, "pooled image content");
            tu_assert_close_rel(want, im->data, (size_t)D, TOL, "pooled @image");
            golden_mean(&f, 'p', 1, "blocks.1.hook_resid_post", N + 1, p1.P - 1, D, want);
            tu_assert_close_rel(want, tx->data, (size_t)D, TOL, "pooled @text of the image input");
            /* text input: content = tokens after BOS; no image tokens -> NaN */
            golden_mean(&f, 't', 0, "blocks.1.hook_resid_post", 1, t0.T, D, want);
            tu_assert_close_rel(want, base->data + D, (size_t)D, TOL, "pooled text content");
            tu_assert_close_rel(want, tx->data + D, (size_t)D, TOL, "pooled @text");
            assert_true(isnan(im->data[D]));
            const pg_tensor *v = result_tensor(&r, "vision.ln_post");
            float *wv = malloc((size_t)Dv * sizeof(float));
            golden_mean(&f, 'p', 1, "vision.ln_post", 0, N, Dv, wv);
            tu_assert_close_rel(wv, v->data, (size_t)Dv, TOL, "pooled vision.ln_post");
            assert_true(isnan(v->data[Dv]));
            free(wv);
            free(want);
        }
        char out[700];
        snprintf(out, sizeof out, "%s/x%d.safetensors", tu_tmpdir(), pool);
        assert_int_equal(extract_paligemma_save(&r, &in, out, NULL, &err), 0);
        st_set *saved;
        assert_int_equal(st_open(&saved, out, &err), 0);
        const st_tensor *tk = st_get(saved, "token_kind");
        assert_non_null(tk);
        assert_int_equal(tk->dtype, RS_DT_U8);
        assert_int_equal(tk->numel, p1.T + t0.T);
        st_close(saved);
        pg_extract_result_free(&r);
        pg_inputs_free(&in);
    }
    free_runs(&p1, 1);
    free_runs(&t0, 1);
    close_fixture(&f);
}

/* Batches after the first have their images decoded and preprocessed on a thread of their
 * own while the previous batch runs (extract_paligemma's prefetch). One input per batch, with
 * and without image threads, gives the same bits as each input extracted in a call of its own
 * (one batch, nothing prefetched): the same products in the same shapes, so any difference is
 * the prefetch's. One batch of all is compared within float tolerance only: the BLAS may take
 * another route for another number of rows (OpenBLAS's small-matrix kernels at these tiny
 * shapes, e.g. on SkylakeX/Cooperlake), so batch composition changes the last bits there. A
 * corrupt image in a later batch is one error naming its input and file, and no result.
 * Bundled tiny model and images only. */
static void test_extract_prefetch(void **s) {
    (void)s;
    static const char *IMGS[4] = {"examples/data/coco-sample/val2017/000000062554.jpg",
                                  "examples/data/coco-sample/val2017/000000099053.jpg",
                                  "examples/data/coco-sample/val2017/000000165518.jpg",
                                  "examples/data/coco-sample/val2017/000000183709.jpg"};
    rs_err err = {0};
    paligemma_model *m;
    if (paligemma_open(&m, "examples/quickstart/models/paligemma-tiny", &err)) fail_msg("%s", err.msg);
    char bad[700];
    snprintf(bad, sizeof bad, "%s/corrupt.jpg", tu_tmpdir());
    FILE *f = fopen(bad, "wb");
    assert_non_null(f);
    fputs("\xff\xd8\xff this is not a JPEG stream", f);
    fclose(f);
    const int32_t prompt[3] = {5, 6, 7};
    hook_request h[2];
    assert_int_equal(paligemma_hook_parse(m, "vision.ln_post", &h[0], &err), 0);
    assert_int_equal(paligemma_hook_parse(m, "blocks.1.hook_resid_post", &h[1], &err), 0);
    /* runs 0..3: all four inputs in one call; runs 4..7: input run-4 alone (the references) */
    pg_extract_result res[8];
    for (int run = 0; run < 8; run++) {
        pg_inputs in = {0};
        int i0 = run < 4 ? 0 : run - 4, i1 = run < 4 ? 4 : run - 3;
        for (int i = i0; i < i1; i++) {
            int32_t *ids;
            uint8_t *kinds;
            int64_t len;
            int P;
            assert_int_equal(paligemma_build_input(m, 1, prompt, 3, NULL, 0, &ids, &kinds, &len, &P, &err), 0);
            const char *path = run == 3 && i == 2 ? bad : IMGS[i];
            assert_int_equal(pg_inputs_add(&in, ids, kinds, len, P, path, "prompt", NULL, &err), 0);
            free(ids);
            free(kinds);
        }
        /* run 0: one batch; 1: one input per batch; 2: same on 2 image threads; 3: corrupt 3rd image */
        extract_opts o = {.n_hooks = 2, .hooks = h, .pool = POOL_NONE, .batch_tokens = run == 0 || run >= 4 ? 1 << 20 : 1,
                          .image_threads = run == 2 ? 2 : 0};
        pg_extract_result r;
        int rc = extract_paligemma(m, &in, &o, &r, NULL, &err);
        pg_inputs_free(&in);
        if (run == 3) {
            assert_int_equal(rc, -1);
            if (!strstr(err.msg, "input 2") || !strstr(err.msg, "corrupt.jpg")) fail_msg("error: %s", err.msg);
            assert_int_equal(r.n_tensors, 0);
            memset(&res[3], 0, sizeof res[3]);
            continue;
        }
        if (rc) fail_msg("%s", err.msg);
        res[run] = r;
    }
    for (int run = 0; run < 3; run++) {
        assert_int_equal(res[run].n_tensors, res[4].n_tensors);
        for (int t = 0; t < res[4].n_tensors; t++) {
            int64_t row = 0;
            int w = res[4].t[t].width;
            for (int i = 0; i < 4; i++) {
                const pg_tensor *one = &res[4 + i].t[t];
                assert_string_equal(one->name, res[run].t[t].name);
                assert_true(row + one->rows <= res[run].t[t].rows);
                const float *got = res[run].t[t].data + (size_t)row * w;
                size_t n = (size_t)one->rows * w;
                if (run == 0)
                    tu_assert_close_rel(one->data, got, n, 1e-5, "one batch of all vs each input alone");
                else if (memcmp(got, one->data, n * sizeof(float)))
                    fail_msg("run %d: %s of input %d differs from the input extracted alone", run, one->name, i);
                row += one->rows;
            }
            assert_int_equal(row, res[run].t[t].rows);
        }
    }
    for (int run = 0; run < 8; run++)
        if (run != 3) pg_extract_result_free(&res[run]);
    paligemma_close(m);
}

/* A sparse Hub-style config without vision_config.image_size: derived from num_image_tokens. */
static void edit_sparse(cJSON *j) { cJSON_DeleteItemFromObject(cJSON_GetObjectItem(j, "vision_config"), "image_size"); }

static void test_sparse_config(void **s) {
    (void)s;
    paligemma_model *m = NULL;
    rs_err err = {0};
    if (paligemma_open(&m, copy_fixture("paligemma-tiny-bf16", edit_sparse), &err)) fail_msg("%s", err.msg);
    assert_int_equal(m->cfg.vision.image_size, 42);
    assert_int_equal(m->vision->n_patches, 9);
    paligemma_close(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_run_alone),  cmocka_unit_test(test_packed_batch),
        cmocka_unit_test(test_packed_batch_on_onednn),
        cmocka_unit_test(test_build_input),     cmocka_unit_test(test_bad_image_count),
        cmocka_unit_test(test_config_mismatch), cmocka_unit_test(test_extract), cmocka_unit_test(test_extract_prefetch),
        cmocka_unit_test(test_sparse_config),
    };
    return tu_exit(cmocka_run_group_tests(tests, NULL, NULL));
}

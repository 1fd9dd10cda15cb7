/* PaliGemma inputs with a caption suffix (image + "caption en" prefix, caption suffix) vs
 * transformers 5.24's PaliGemmaProcessor(images, text, suffix=caption) and
 * PaliGemmaForConditionalGeneration (tools/reference/gen_suffix_goldens.py, goldens in
 * tests/fixtures/suffix/): the ids and prefix length the processor builds (tiny Gemma-style
 * tokenizer: caption + <eos>, no stripping; captions with "\n", with leading / trailing
 * spaces, longer than the sliding window), the suffix-token positions, and every decoder
 * hook over the image rows and the suffix rows through extract_paligemma from the image
 * files (each input alone and all packed into one batch), plus the suffix CE and the
 * pooled @suffix mean. Tolerance: max|diff| <= 1e-4 * max|ref|. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store/act_file.h"
#include "reprshift/extract.h"
#include "reprshift/fileio.h"
#include "reprshift/paligemma.h"
#include "reprshift/tokenizer.h"

#define TOL 1e-4
#define TOKENIZER "tests/fixtures/suffix/tiny_tokenizer/tokenizer.json"

static const char *MODELS[] = {"paligemma-tiny-f32", "paligemma-tiny-bf16", "paligemma-tiny-model-prefix"};
/* hook families: decoder hook name without "blocks.L." */
static const char *FAMILY[] = {"hook_resid_pre", "attn.hook_z", "hook_attn_out", "hook_resid_mid", "hook_mlp_out",
                               "hook_resid_post", "ln_final.hook_normalized", "ln_final.hook_out"};
#define N_FAM 8
static double W_IMG[N_FAM], W_SUF[N_FAM], W_CE, W_POOL;

typedef struct {
    paligemma_model *m;
    rs_tokenizer *tok;
    st_set *g;
    cJSON *runs;
    int n_runs;
    const char *prompt;
} sfx_fixture;

static void open_sfx(sfx_fixture *f, const char *name) {
    char dir[300], gpath[400];
    rs_err err = {0};
    snprintf(dir, sizeof dir, "tests/fixtures/models/%s", name);
    snprintf(gpath, sizeof gpath, "tests/fixtures/suffix/%s.safetensors", name);
    if (paligemma_open(&f->m, dir, &err)) fail_msg("%s", err.msg);
    if (tok_load(&f->tok, TOKENIZER, &err)) fail_msg("%s", err.msg);
    if (st_open(&f->g, gpath, &err)) fail_msg("%s", err.msg);
    f->runs = cJSON_Parse(st_meta(f->g, "runs"));
    assert_non_null(f->runs);
    f->n_runs = cJSON_GetArraySize(f->runs);
    assert_int_equal(f->n_runs, atoi(st_meta(f->g, "n_runs")));
    f->prompt = st_meta(f->g, "prompt");
    assert_string_equal(f->prompt, "caption en");
}

static void close_sfx(sfx_fixture *f) {
    cJSON_Delete(f->runs);
    st_close(f->g);
    tok_free(f->tok);
    paligemma_close(f->m);
}

static const st_tensor *gold(const sfx_fixture *f, int k, const char *what) {
    char name[200];
    snprintf(name, sizeof name, "s%d.%s", k, what);
    const st_tensor *t = st_get(f->g, name);
    if (!t) fail_msg("golden tensor %s missing", name);
    return t;
}

static const char *run_str(const sfx_fixture *f, int k, const char *key) {
    return cJSON_GetObjectItem(cJSON_GetArrayItem(f->runs, k), key)->valuestring;
}

/* The prompt ids: tokens of prompt + "\n", one segment, no <bos>. */
static int32_t *prompt_ids(const sfx_fixture *f, size_t *n) {
    char buf[64];
    snprintf(buf, sizeof buf, "%s\n", f->prompt);
    int32_t *ids;
    rs_err err = {0};
    if (tok_encode(f->tok, buf, strlen(buf), 0, &ids, n, &err)) fail_msg("%s", err.msg);
    return ids;
}

/* Build run k's input in C from its caption; it must be the processor's, id for id. */
static void build_run(const sfx_fixture *f, int k, int32_t **ids, uint8_t **kinds, int64_t *len, int *P) {
    rs_err err = {0};
    size_t np, ns;
    int32_t *pids = prompt_ids(f, &np), *sids;
    const char *cap = run_str(f, k, "caption");
    if (paligemma_suffix_ids(f->m, f->tok, cap, strlen(cap), &sids, &ns, &err)) fail_msg("%s", err.msg);
    if (paligemma_build_input(f->m, 1, pids, (int)np, sids, (int)ns, ids, kinds, len, P, &err)) fail_msg("%s", err.msg);
    free(pids);
    free(sids);
}

static void test_processor_ids(void **s) {
    (void)s;
    for (int mi = 0; mi < 3; mi++) {
        sfx_fixture f;
        open_sfx(&f, MODELS[mi]);
        int N = f.m->vision->n_patches;
        const gemma2_config *tc = &f.m->cfg.text;
        for (int k = 0; k < f.n_runs; k++) {
            int32_t *ids;
            uint8_t *kinds;
            int64_t len;
            int P;
            build_run(&f, k, &ids, &kinds, &len, &P);
            const st_tensor *gi = gold(&f, k, "ids"), *gt = gold(&f, k, "token_type_ids");
            int32_t gP;
            memcpy(&gP, gold(&f, k, "prefix_len")->data, 4);
            assert_int_equal(len, gi->numel);
            assert_int_equal(P, gP);
            assert_memory_equal(ids, gi->data, (size_t)len * 4);
            const int32_t *tt = (const int32_t *)gt->data;
            for (int64_t i = 0; i < len; i++) {
                assert_int_equal(tt[i], i >= P); /* token_type_ids: 0 prefix (bidirectional), 1 suffix (causal) */
                int want = i < N ? PG_TOK_IMAGE : i == N ? PG_TOK_BOS : i < P - 1 ? PG_TOK_PROMPT
                         : i == P - 1 ? PG_TOK_SEP : i == len - 1 ? PG_TOK_SPECIAL : PG_TOK_SUFFIX;
                assert_int_equal(kinds[i], want);
            }
            assert_int_equal(ids[len - 1], tc->eos_id);
            assert_int_equal(ids[P - 1], 108);
            /* the caption's whitespace is kept: "\n" is a suffix token, "  a ... table  " starts with
             * "▁" + "▁a" and ends with "▁▁" */
            const char *cap = run_str(&f, k, "caption");
            int32_t nl_id = tok_id(f.tok, "\n"), sp = tok_id(f.tok, "\xe2\x96\x81"),
                    sp2 = tok_id(f.tok, "\xe2\x96\x81\xe2\x96\x81");
            int has_nl = 0;
            for (int64_t i = P; i < len; i++) has_nl |= ids[i] == nl_id;
            assert_int_equal(has_nl, strchr(cap, '\n') != NULL);
            if (cap[0] == ' ' && cap[1] == ' ') {
                assert_int_equal(ids[P], sp);
                assert_int_equal(ids[P + 1], tok_id(f.tok, "\xe2\x96\x81" "a"));
                assert_int_equal(ids[len - 2], sp2);
            }
            /* positions and ids of the caption tokens (the closing <eos> excluded) */
            int64_t *pos, n;
            int32_t *sid;
            rs_err err = {0};
            assert_int_equal(paligemma_suffix_tokens(ids, kinds, len, &pos, &sid, &n, &err), 0);
            assert_int_equal(n, len - P - 1);
            for (int64_t i = 0; i < n; i++) {
                assert_int_equal(pos[i], P + i);
                assert_int_equal(sid[i], ids[P + i]);
            }
            /* and they are the ids of "<bos>" + caption after its <bos> (tiny tokenizer, no Prepend) */
            int32_t *g2;
            size_t ng2;
            assert_int_equal(tok_encode(f.tok, cap, strlen(cap), 1, &g2, &ng2, &err), 0);
            assert_int_equal(g2[0], tc->bos_id);
            assert_int_equal((int64_t)ng2 - 1, n);
            assert_memory_equal(g2 + 1, sid, (size_t)n * 4);
            free(g2);
            free(pos);
            free(sid);
            free(ids);
            free(kinds);
        }
        close_sfx(&f);
    }
}

static void test_suffix_tokens_none(void **s) {
    (void)s;
    int32_t ids[4] = {256, 2, 5, 108};
    uint8_t kinds[4] = {PG_TOK_IMAGE, PG_TOK_BOS, PG_TOK_PROMPT, PG_TOK_SEP};
    int64_t *pos = (int64_t *)1, n = 7;
    int32_t *sid = (int32_t *)1;
    rs_err err = {0};
    assert_int_equal(paligemma_suffix_tokens(ids, kinds, 4, &pos, &sid, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_null(pos);
    assert_null(sid);
}

static void test_bad_suffix(void **s) {
    (void)s;
    sfx_fixture f;
    open_sfx(&f, "paligemma-tiny-f32");
    size_t np;
    int32_t *pids = prompt_ids(&f, &np), *ids;
    uint8_t *kinds;
    int64_t len;
    int P;
    rs_err err = {0};
    int32_t img[2] = {5, 256}, big[2] = {5, 320};
    assert_int_equal(paligemma_build_input(f.m, 1, pids, (int)np, img, 2, &ids, &kinds, &len, &P, &err), -1);
    assert_non_null(strstr(err.msg, "suffix token 2 (id 256)"));
    assert_null(ids);
    assert_int_equal(paligemma_build_input(f.m, 1, pids, (int)np, big, 2, &ids, &kinds, &len, &P, &err), -1);
    assert_non_null(strstr(err.msg, "vocabulary 320"));
    /* a caption with a literal "<eos>" inside: that id is special, not a caption token */
    int32_t *sids;
    size_t ns;
    assert_int_equal(paligemma_suffix_ids(f.m, f.tok, "a<eos>cat", 9, &sids, &ns, &err), 0);
    assert_int_equal(paligemma_build_input(f.m, 1, pids, (int)np, sids, (int)ns, &ids, &kinds, &len, &P, &err), 0);
    assert_int_equal(kinds[P], PG_TOK_SUFFIX);
    assert_int_equal(kinds[P + 1], PG_TOK_SPECIAL);
    assert_int_equal(kinds[len - 1], PG_TOK_SPECIAL);
    /* its caption tokens keep the inner <eos> (Gemma-2's "<bos>a<eos>cat" has it too), not the last */
    int64_t *pos, np2;
    int32_t *cid;
    assert_int_equal(paligemma_suffix_tokens(ids, kinds, len, &pos, &cid, &np2, &err), 0);
    assert_int_equal(np2, len - P - 1);
    assert_int_equal(pos[0], P);
    assert_int_equal(cid[1], 1);
    free(pos);
    free(cid);
    /* a suffix of just <eos> (the processor's empty caption): no caption tokens */
    int32_t eos = 1;
    free(ids);
    free(kinds);
    assert_int_equal(paligemma_build_input(f.m, 1, pids, (int)np, &eos, 1, &ids, &kinds, &len, &P, &err), 0);
    assert_int_equal(paligemma_suffix_tokens(ids, kinds, len, &pos, &cid, &np2, &err), 0);
    assert_int_equal(np2, 0);
    free(sids);
    free(ids);
    free(kinds);
    free(pids);
    close_sfx(&f);
}

static int family(const char *name) {
    const char *p = !strncmp(name, "blocks.", 7) ? strchr(name + 7, '.') + 1 : name;
    for (int i = 0; i < N_FAM; i++)
        if (!strcmp(p, FAMILY[i])) return i;
    fail_msg("no family for %s", name);
    return -1;
}

/* Compare n rows of got (stride W) with golden rows g0.. of gt; returns max|diff|/max|ref|. */
static double cmp(const st_tensor *gt, int g0, const float *got, int n, int W, const char *label) {
    float *ref = st_to_f32_new(gt);
    const float *rr = ref + (size_t)g0 * W;
    double d = tu_max_abs_diff(rr, got, (size_t)n * W), mx = tu_max_abs(rr, (size_t)n * W);
    tu_assert_close_rel(rr, got, (size_t)n * W, TOL, label);
    free(ref);
    return mx > 0 ? d / mx : d;
}

static void upd(double *w, double v) { if (v > *w) *w = v; }

/* Suffix CE from the final-norm rows (logits at P-1 .. T-2 predict ids P .. T-1). */
static double suffix_ce(const paligemma_model *m, const float *hid, const int32_t *ids, int P, int T) {
    int V = m->cfg.text.vocab_size, D = m->cfg.text.hidden_size;
    float *lg = malloc((size_t)V * sizeof(float));
    double sum = 0;
    for (int i = P - 1; i < T - 1; i++) {
        assert_int_equal(gemma2_logits(m->text, hid + (size_t)i * D, 1, lg, NULL), 0);
        double mx = -INFINITY, z = 0;
        for (int v = 0; v < V; v++) if (lg[v] > mx) mx = lg[v];
        for (int v = 0; v < V; v++) z += exp(lg[v] - mx);
        sum += mx + log(z) - lg[ids[i + 1]];
    }
    free(lg);
    return sum / (T - P);
}

static int all_decoder_hooks(const paligemma_model *m, hook_request *h) {
    rs_err err = {0};
    int n = 0;
    char name[96];
    for (int l = 0; l < m->cfg.text.n_layers; l++)
        for (int s = 0; s < 6; s++) {
            snprintf(name, sizeof name, "blocks.%d.%s", l, FAMILY[s]);
            if (paligemma_hook_parse(m, name, &h[n++], &err)) fail_msg("%s", err.msg);
        }
    if (paligemma_hook_parse(m, "ln_final.hook_normalized", &h[n++], &err)) fail_msg("%s", err.msg);
    if (paligemma_hook_parse(m, "ln_final.hook_out", &h[n++], &err)) fail_msg("%s", err.msg);
    return n;
}

/* All runs of a model through extract_paligemma from the image files: every decoder hook
 * over image rows and suffix rows; batch_tokens 1 = each input alone, else one batch. */
static void check_model(const char *model, int64_t batch_tokens) {
    sfx_fixture f;
    open_sfx(&f, model);
    int N = f.m->vision->n_patches, D = f.m->cfg.text.hidden_size;
    rs_err err = {0};
    pg_inputs in = {0};
    int Ps[8];
    for (int k = 0; k < f.n_runs; k++) {
        int32_t *ids;
        uint8_t *kinds;
        int64_t len;
        char rel[400];
        build_run(&f, k, &ids, &kinds, &len, &Ps[k]);
        snprintf(rel, sizeof rel, "data/%s", run_str(&f, k, "image"));
        assert_int_equal(pg_inputs_add(&in, ids, kinds, len, Ps[k], tu_shared(rel), f.prompt, NULL, &err), 0);
        assert_int_equal(pg_inputs_set_suffix(&in, k, run_str(&f, k, "caption"), &err), 0);
        free(ids);
        free(kinds);
    }
    hook_request *h = calloc(256, sizeof *h);
    int nh = all_decoder_hooks(f.m, h);
    extract_opts o = {.n_hooks = nh, .hooks = h, .pool = POOL_NONE, .batch_tokens = batch_tokens};
    pg_extract_result r;
    if (extract_paligemma(f.m, &in, &o, &r, NULL, &err)) fail_msg("%s", err.msg);
    assert_int_equal(r.n_tensors, nh);
    char label[300];
    for (int k = 0; k < f.n_runs; k++) {
        int64_t T = in.lens[k], off = r.offsets[k];
        int P = Ps[k], ns = (int)(T - P);
        for (int i = 0; i < nh; i++) {
            const pg_tensor *t = &r.t[i];
            int W = t->width, fam = family(t->name);
            const st_tensor *g = gold(&f, k, t->name);
            assert_int_equal(g->numel, (int64_t)(N + ns) * W);
            const float *rows = t->data + (size_t)off * W;
            snprintf(label, sizeof label, "%s s%d %s image rows", model, k, t->name);
            upd(&W_IMG[fam], cmp(g, 0, rows, N, W, label));
            snprintf(label, sizeof label, "%s s%d %s suffix rows", model, k, t->name);
            upd(&W_SUF[fam], cmp(g, N, rows + (size_t)P * W, ns, W, label));
        }
        const float *hid = r.t[nh - 1].data + (size_t)off * D; /* ln_final.hook_out = final hidden */
        float want;
        st_to_f32(gold(&f, k, "ce"), &want);
        double ce = suffix_ce(f.m, hid, in.ids[k], P, (int)T);
        if (fabs(ce - want) > TOL * fabs(want)) fail_msg("%s s%d suffix CE %.7f vs ref %.7f", model, k, ce, want);
        upd(&W_CE, fabs(ce - want) / fabs(want));
    }
    pg_extract_result_free(&r);
    free(h);
    pg_inputs_free(&in);
    close_sfx(&f);
}

static void test_suffix_parity(void **s) {
    (void)s;
    TU_NEED_SHARED("data/images", "the real test images of the shared data folder");
    for (int mi = 0; mi < 3; mi++) {
        check_model(MODELS[mi], 1);     /* each input alone */
        check_model(MODELS[mi], 4096);  /* all inputs in one packed batch */
    }
    printf("# suffix parity vs transformers, worst max|diff|/max|ref| per hook family (image rows / suffix rows):\n");
    for (int i = 0; i < N_FAM; i++) printf("#   %-26s %.3g / %.3g\n", FAMILY[i], W_IMG[i], W_SUF[i]);
    printf("#   suffix CE relative error %.3g\n", W_CE);
}

/* Pooled: H (image tokens), H@suffix (caption tokens, <eos> excluded), and the row index. */
static void test_suffix_pooled(void **s) {
    (void)s;
    TU_NEED_SHARED("data/images", "the real test images of the shared data folder");
    sfx_fixture f;
    open_sfx(&f, "paligemma-tiny-f32");
    int N = f.m->vision->n_patches, D = f.m->cfg.text.hidden_size;
    rs_err err = {0};
    pg_inputs in = {0};
    int P;
    int32_t *ids;
    uint8_t *kinds;
    int64_t len;
    char rel[400];
    build_run(&f, 0, &ids, &kinds, &len, &P);
    snprintf(rel, sizeof rel, "data/%s", run_str(&f, 0, "image"));
    assert_int_equal(pg_inputs_add(&in, ids, kinds, len, P, tu_shared(rel), f.prompt, "lbl", &err), 0);
    assert_int_equal(pg_inputs_set_suffix(&in, 0, run_str(&f, 0, "caption"), &err), 0);
    free(ids);
    free(kinds);
    /* a second image input without suffix: NaN @suffix row */
    size_t np;
    int32_t *pids = prompt_ids(&f, &np);
    assert_int_equal(paligemma_build_input(f.m, 1, pids, (int)np, NULL, 0, &ids, &kinds, &len, &P, &err), 0);
    assert_int_equal(pg_inputs_add(&in, ids, kinds, len, P, tu_shared(rel), f.prompt, NULL, &err), 0);
    free(ids);
    free(kinds);
    free(pids);
    hook_request h;
    assert_int_equal(paligemma_hook_parse(f.m, "blocks.1.hook_resid_post", &h, &err), 0);
    extract_opts o = {.n_hooks = 1, .hooks = &h, .pool = POOL_MEAN, .batch_tokens = 4096};
    pg_extract_result r;
    if (extract_paligemma(f.m, &in, &o, &r, NULL, &err)) fail_msg("%s", err.msg);
    assert_int_equal(r.n_tensors, 4);
    assert_string_equal(r.t[3].name, "blocks.1.hook_resid_post@suffix");
    float *g = st_to_f32_new(gold(&f, 0, "blocks.1.hook_resid_post"));
    int ns = (int)(in.lens[0] - in.prefix_len[0]);
    float want[256];
    for (int d = 0; d < D; d++) { /* golden rows N .. N+ns-2: caption tokens (the last one is <eos>) */
        double a = 0;
        for (int i = N; i < N + ns - 1; i++) a += g[(size_t)i * D + d];
        want[d] = (float)(a / (ns - 1));
    }
    tu_assert_close_rel(want, r.t[3].data, (size_t)D, TOL, "@suffix mean");
    W_POOL = tu_max_abs_diff(want, r.t[3].data, (size_t)D) / tu_max_abs(want, (size_t)D);
    for (int d = 0; d < D; d++) {
        double a = 0;
        for (int i = 0; i < N; i++) a += g[(size_t)i * D + d];
        want[d] = (float)(a / N);
    }
    tu_assert_close_rel(want, r.t[0].data, (size_t)D, TOL, "content (image tokens) mean");
    assert_true(isnan(r.t[3].data[D]));
    assert_false(isnan(r.t[2].data[D])); /* @text: prompt tokens of both inputs */
    free(g);
    char out[700];
    snprintf(out, sizeof out, "%s/sfx.safetensors", tu_tmpdir());
    assert_int_equal(extract_paligemma_save(&r, &in, out, NULL, &err), 0);
    char idx[800], *buf;
    size_t n;
    snprintf(idx, sizeof idx, "%s.rows.jsonl", out);
    FILE *fp = fopen(idx, "rb");
    assert_non_null(fp);
    buf = calloc(1, 1 << 16);
    n = fread(buf, 1, (1 << 16) - 1, fp);
    fclose(fp);
    assert_true(n > 0);
    char *nl = strchr(buf, '\n');
    assert_non_null(nl);
    *nl = '\0';
    assert_non_null(strstr(buf, "\"suffix\":\"two dogs\\nplaying in the snow\""));
    char want_len[64];
    snprintf(want_len, sizeof want_len, "\"suffix_len\":%d", ns);
    assert_non_null(strstr(buf, want_len));
    assert_null(strstr(nl + 1, "suffix")); /* the input without suffix */
    free(buf);
    pg_extract_result_free(&r);
    pg_inputs_free(&in);
    close_sfx(&f);
    printf("# pooled @suffix relative error %.3g\n", W_POOL);
}

/* The real Gemma tokenizer: the suffix ids of paligemma_suffix_ids are the processor's
 * (tests/fixtures/suffix/coco_alignment.json, extra_cases: leading / trailing / double
 * spaces, "\n" inside / first / last, tab, non-ASCII, a literal <eos> / <bos>, empty), and
 * on all COCO captions they are Gemma-2's "<bos>" + caption ids after the <bos>, + <eos>. */
static void test_real_tokenizer(void **s) {
    (void)s;
    TU_NEED_SHARED("data/tokenizer/tokenizer.json", "the 17 MB Gemma tokenizer");
    TU_NEED_SHARED("data/text/coco_val2017_captions.txt", "the 25,014 COCO val2017 captions");
    paligemma_model *m;
    rs_tokenizer *tok;
    rs_err err = {0};
    if (paligemma_open(&m, "tests/fixtures/models/paligemma-tiny-f32", &err)) fail_msg("%s", err.msg); /* eos 1 */
    if (tok_load(&tok, tu_shared("data/tokenizer/tokenizer.json"), &err)) fail_msg("%s", err.msg);
    char *buf;
    size_t n;
    assert_int_equal(rs_read_file("tests/fixtures/suffix/coco_alignment.json", 1 << 20, &buf, &n, &err), 0);
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    assert_non_null(j);
    assert_int_equal(cJSON_GetObjectItem(j, "identical")->valueint, 25014);
    cJSON *cases = cJSON_GetObjectItem(j, "extra_cases"), *c;
    int n_cases = 0;
    cJSON_ArrayForEach(c, cases) {
        const char *cap = cJSON_GetObjectItem(c, "caption")->valuestring;
        cJSON *want = cJSON_GetObjectItem(c, "suffix");
        int32_t *ids;
        size_t ni;
        if (paligemma_suffix_ids(m, tok, cap, strlen(cap), &ids, &ni, &err)) fail_msg("%s", err.msg);
        if ((int)ni != cJSON_GetArraySize(want)) fail_msg("\"%s\": %zu suffix ids, processor %d", cap, ni, cJSON_GetArraySize(want));
        for (size_t i = 0; i < ni; i++)
            if (ids[i] != cJSON_GetArrayItem(want, (int)i)->valueint)
                fail_msg("\"%s\": suffix id %zu is %d, processor %d", cap, i, ids[i], cJSON_GetArrayItem(want, (int)i)->valueint);
        free(ids);
        n_cases++;
    }
    assert_true(n_cases >= 10);
    cJSON_Delete(j);
    assert_int_equal(rs_read_file(tu_shared("data/text/coco_val2017_captions.txt"), (size_t)1 << 28, &buf, &n, &err), 0);
    int lines = 0, same = 0;
    for (char *line = buf; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        int32_t *a, *b;
        size_t na, nb;
        if (paligemma_suffix_ids(m, tok, line, strlen(line), &a, &na, &err) ||
            tok_encode(tok, line, strlen(line), 1, &b, &nb, &err))
            fail_msg("%s", err.msg);
        same += na == nb && b[0] == 2 && a[na - 1] == 1 && !memcmp(a, b + 1, (na - 1) * sizeof *a);
        lines++;
        free(a);
        free(b);
        line = nl ? nl + 1 : NULL;
    }
    free(buf);
    printf("# COCO captions whose suffix ids are Gemma-2's <bos>+caption ids: %d / %d\n", same, lines);
    assert_int_equal(lines, 25014);
    assert_int_equal(same, lines);
    tok_free(tok);
    paligemma_close(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_processor_ids), cmocka_unit_test(test_suffix_tokens_none),
        cmocka_unit_test(test_bad_suffix),    cmocka_unit_test(test_suffix_parity),
        cmocka_unit_test(test_suffix_pooled), cmocka_unit_test(test_real_tokenizer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

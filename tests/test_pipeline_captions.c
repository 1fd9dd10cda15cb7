/* `reprshift run` with dataset.captions_per_image = 2 on the bundled tiny models and the
 * bundled COCO sample (examples/data/coco-sample; no ../shared needed): the caption-to-
 * caption floor in shift.json (docs/metrics.md, Floors) is wired as documented:
 *  - the pairs are the documented ones: every image of the manifest has 2 captions (other
 *    caption ids), one pair per image, n_images / n_pairs as in the manifest;
 *  - caption_pair_a / caption_pair_b equal shift_pair_floor called directly on the run's
 *    stored activations (acts/llm_text, acts/vlm_text), pooled here per caption over the
 *    tokens the shift stage includes (not BOS/EOS/pad, not whitespace-only pieces), with the
 *    pairs (first, second caption of each image), images in the order of their first
 *    caption, one bootstrap group per image. shift_pair_floor itself is checked against
 *    numpy in test_stats.c;
 *  - shift_summary.csv has the floor's rows and the report draws it with its n.
 * The captions_per_image = 1 case (floor unavailable, said in shift.json and the report) is
 * checked in test_pipeline.c. */
#include "testutil.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "reprshift/fileio.h"
#include "base/jsonutil.h"
#include "reprshift/manifest.h"
#include "reprshift/pipeline.h"
#include "reprshift/shift.h"
#include "reprshift/store.h"
#include "reprshift/tokenizer.h"

#define HOOK "blocks.1.hook_resid_post"
#define N_BOOT 40

static char CWD[PATH_MAX], OUT[PATH_MAX + 16];

static int setup(void **state) {
    (void)state;
    if (!getcwd(CWD, sizeof CWD)) return -1;
    char dir[PATH_MAX], cfg[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    snprintf(cfg, sizeof cfg, "%s/c.json", dir);
    snprintf(OUT, sizeof OUT, "%s/run", dir);
    FILE *f = fopen(cfg, "w");
    if (!f) return -1;
    const char *S = "examples/data/coco-sample";
    fprintf(f,
            "{\"output_dir\": \"unused\",\n"
            " \"models\": {\"llm\": \"%s/examples/quickstart/models/gemma2-tiny\",\n"
            "            \"vlm\": \"%s/examples/quickstart/models/paligemma-tiny\"},\n"
            " \"layers\": [1], \"hooks\": [\"blocks.{layer}.hook_resid_post\"],\n"
            " \"dataset\": {\"instances\": [\"%s/%s/annotations/instances_train2017.json\"],\n"
            "             \"captions\": [\"%s/%s/annotations/captions_train2017.json\"],\n"
            "             \"images\": [\"%s/%s/train2017\"],\n"
            "             \"groups\": {\"animals\": [\"animal\"], \"vehicles\": [\"vehicle\"]}, \"n_per_group\": 5,\n"
            "             \"allow_fewer\": true, \"captions_per_image\": 2},\n"
            " \"probes\": {\"seeds\": 1, \"folds\": 2, \"bootstrap\": %d, \"min_test_groups\": 1, \"permutations\": 10,\n"
            "            \"which\": [\"concept\"]}}\n",
            CWD, CWD, CWD, S, CWD, S, CWD, S, N_BOOT);
    fclose(f);
    char *msg = NULL;
    if (tu_run_pipeline(cfg, OUT, 0, &msg)) {
        fprintf(stderr, "run failed: %s\n", msg ? msg : "?");
        free(msg);
        return -1;
    }
    free(msg);
    return 0;
}

static char *in_out(const char *rel) {
    static char buf[PATH_MAX + 256];
    snprintf(buf, sizeof buf, "%s/%s", OUT, rel);
    return buf;
}

/* Per-caption mean (double sums) of the included token rows of one store; [n_in, d]. */
static float *pooled_rows(const char *store, const rs_tokenizer *tok, int64_t *n_in, int *d) {
    rs_err err;
    store_reader *r;
    float *x = NULL;
    int32_t *ids = NULL;
    int64_t *off = NULL, rows, width, rr, ww;
    if (store_reader_open(&r, in_out(store), &err) || store_read_f32(r, HOOK, &x, &rows, &width, &err) ||
        store_read_raw(r, "token_ids", RS_DT_I32, (void **)&ids, &rr, &ww, &err) ||
        store_read_offsets(r, "offsets", &off, n_in, &err))
        fail_msg("%s: %s", store, err.msg);
    assert_int_equal(rr, rows);
    *d = (int)width;
    float *p = calloc((size_t)*n_in * width, sizeof *p);
    assert_non_null(p);
    for (int64_t i = 0; i < *n_in; i++) {
        int64_t k = 0;
        for (int64_t t = off[i]; t < off[i + 1]; t++) k += ids[t] > 2 && !tok_is_blank(tok, ids[t]);
        assert_true(k > 0);
        for (int64_t c = 0; c < width; c++) {
            double s = 0;
            for (int64_t t = off[i]; t < off[i + 1]; t++)
                if (ids[t] > 2 && !tok_is_blank(tok, ids[t])) s += x[t * width + c];
            p[i * width + c] = (float)(s / (double)k);
        }
    }
    free(x);
    free(ids);
    free(off);
    store_reader_close(r);
    return p;
}

static void test_caption_pair_floor(void **state) {
    (void)state;
    rs_err err;
    /* the documented pairs, from the manifest */
    rs_manifest *m;
    if (rs_manifest_load(in_out("dataset/manifest.csv"), &m, &err)) fail_msg("%s", err.msg);
    int64_t n_text = 0, *img = calloc(m->n_rows + 1, sizeof *img), *cap = calloc(m->n_rows + 1, sizeof *cap);
    assert_non_null(img);
    assert_non_null(cap);
    for (size_t i = 0; i < m->n_rows; i++)
        if (m->rows[i].modality == RS_MODALITY_TEXT) {
            assert_true(m->rows[i].image_id >= 0);
            img[n_text] = m->rows[i].image_id;
            cap[n_text++] = m->rows[i].caption_id;
        }
    int64_t *pi = calloc((size_t)n_text + 1, sizeof *pi), *pj = calloc((size_t)n_text + 1, sizeof *pj), np = 0;
    int64_t *goff = calloc((size_t)n_text + 2, sizeof *goff);
    assert_non_null(pi);
    assert_non_null(pj);
    assert_non_null(goff);
    uint8_t *used = calloc((size_t)n_text + 1, 1);
    for (int64_t i = 0; i < n_text; i++) {
        if (used[i]) continue;
        int64_t k = 0, prev = i;
        used[i] = 1;
        for (int64_t j = i + 1; j < n_text; j++)
            if (img[j] == img[i]) {
                used[j] = 1;
                assert_true(cap[j] != cap[prev]); /* another caption of the same image */
                pi[np] = prev;
                pj[np++] = j;
                prev = j;
                k++;
            }
        assert_int_equal(k, 1); /* captions_per_image 2: every image gives exactly one pair */
        goff[np] = np;          /* one bootstrap group per image (one pair each) */
    }
    int64_t n_img = np;
    assert_true(n_img >= 4);
    assert_int_equal(n_text, 2 * n_img);
    rs_manifest_free(m);
    free(used);
    printf("  %lld captions, %lld images, %lld pairs\n", (long long)n_text, (long long)n_img, (long long)np);

    cJSON *j;
    if (rs_json_load(in_out("results/shift.json"), 1 << 26, &j, &err)) fail_msg("%s", err.msg);
    cJSON *L = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "layers"), 0), *fl = cJSON_GetObjectItem(L, "floors");
    assert_non_null(fl);
    char tp[PATH_MAX + 128];
    snprintf(tp, sizeof tp, "%s/examples/quickstart/models/gemma2-tiny/tokenizer.json", CWD);
    rs_tokenizer *tok;
    if (tok_load(&tok, tp, &err)) fail_msg("%s", err.msg);
    const char *stores[2] = {"acts/llm_text", "acts/vlm_text"}, *names[2] = {"caption_pair_a", "caption_pair_b"};
    for (int side = 0; side < 2; side++) {
        int64_t n_in;
        int d;
        float *p = pooled_rows(stores[side], tok, &n_in, &d);
        assert_int_equal(n_in, n_text);
        shift_opts o;
        shift_opts_default(&o);
        o.n_boot = N_BOOT;
        o.seed = 0;
        shift_result r;
        if (shift_pair_floor(p, d, pi, pj, np, goff, n_img, &o, &r, &err)) fail_msg("%s", err.msg);
        cJSON *f = cJSON_GetObjectItem(fl, names[side]);
        if (!f || cJSON_GetObjectItem(f, "unavailable")) fail_msg("%s missing or unavailable", names[side]);
        assert_int_equal((int64_t)cJSON_GetObjectItem(f, "n_images")->valuedouble, n_img);
        assert_int_equal((int64_t)cJSON_GetObjectItem(f, "n_pairs")->valuedouble, np);
        assert_int_equal((int64_t)cJSON_GetObjectItem(f, "n_units")->valuedouble, np);
        const int ks[5] = {SHIFT_COS_RAW, SHIFT_COS_CENTRED, SHIFT_L2_RAW, SHIFT_CKA_LINEAR, SHIFT_CKA_DEBIASED};
        for (int q = 0; q < 5; q++) {
            const rs_stat *s = shift_metric_stat(&r, ks[q]);
            cJSON *mj = cJSON_GetObjectItem(f, shift_metric_name(ks[q]));
            assert_non_null(mj);
            const char *fld[3] = {"value", "ci_lo", "ci_hi"};
            double want[3] = {s->value, s->lo, s->hi};
            for (int k = 0; k < 3; k++) {
                cJSON *v = cJSON_GetObjectItem(mj, fld[k]);
                if (!isfinite(want[k])) {
                    assert_true(cJSON_IsNull(v));
                    continue;
                }
                assert_true(cJSON_IsNumber(v));
                if (fabs(v->valuedouble - want[k]) > 1e-5 * fmax(1, fabs(want[k])))
                    fail_msg("%s.%s.%s: run %.9g, direct %.9g", names[side], shift_metric_name(ks[q]), fld[k],
                             v->valuedouble, want[k]);
            }
        }
        printf("  %s: cos_raw %.4f [%.4f, %.4f]\n", names[side], r.cos_raw.value, r.cos_raw.lo, r.cos_raw.hi);
        assert_null(cJSON_GetObjectItem(f, "cos_feat")); /* raw metrics only */
        shift_result_free(&r);
        free(p);
    }
    tok_free(tok);
    cJSON_Delete(j);
    free(img);
    free(cap);
    free(pi);
    free(pj);
    free(goff);
    /* summary rows and the report */
    char *buf;
    size_t n;
    if (rs_read_file(in_out("results/shift_summary.csv"), 1 << 24, &buf, &n, &err)) fail_msg("%s", err.msg);
    assert_non_null(strstr(buf, "caption_pair_a:cos_raw"));
    assert_non_null(strstr(buf, "caption_pair_b:cka_linear"));
    free(buf);
    if (rs_read_file(in_out("report.html"), 1 << 26, &buf, &n, &err)) fail_msg("%s", err.msg);
    char want[160];
    snprintf(want, sizeof want, "Caption-pair floor: model B, each caption&#39;s mean vs the next caption of the same "
             "image (%lld images, %lld pairs;", (long long)n_img, (long long)np);
    assert_non_null(strstr(buf, want));
    assert_non_null(strstr(buf, "floor: caption p")); /* the legend (shortened) */
    assert_null(strstr(buf, "Caption-to-caption floor not available"));
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_caption_pair_floor)};
    return cmocka_run_group_tests(tests, setup, NULL);
}

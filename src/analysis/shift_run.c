/* `reprshift shift` as a library (shift_run.h): activation sources, the run (begin, one
 * shift_layer per layer from shift_layer.c, BH q-values over the run), and shift_run, which
 * computes and then writes with shift_write.c. */
#include "reprshift/shift_run.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "analysis/shift_run_internal.h"
#include "analysis/categories.h"
#include "reprshift/extract.h"
#include "reprshift/fileio.h"
#include "reprshift/progress.h"
#include "reprshift/safetensors.h"
#include "reprshift/stats.h"
#include "reprshift/tokenizer.h"

/* ---- an extract-format safetensors file as a source ---- */

struct shift_acts_file {
    const char *path;
    st_set *st;
    int32_t *ids; /* owned copies: tensor data in the mapping need not be aligned */
    int64_t *off;
    int64_t n_tok, n_in;
};

/* The activation tensor: named, or the only float 2-D tensor of the file. */
static int file_read(void *ctx, const char *hook, const float **data, float **owned, int64_t *rows, int *width,
                     const char **name_out, rs_err *err) {
    const struct shift_acts_file *f = ctx;
    const st_tensor *t = NULL;
    if (hook) {
        t = st_get(f->st, hook);
        if (!t) {
            char list[512] = "";
            size_t L = 0;
            for (int i = 0; i < f->st->n_tensors && L < 400; i++)
                if (f->st->tensors[i].ndim == 2)
                    L += (size_t)snprintf(list + L, sizeof list - L, "%s%s", L ? ", " : "", f->st->tensors[i].name);
            return rs_errf(err, "%s: no activations for hook '%s' (present: %s)", f->path, hook, L ? list : "none");
        }
    } else {
        for (int i = 0; i < f->st->n_tensors; i++) {
            const st_tensor *c = &f->st->tensors[i];
            if (c->ndim != 2 || (c->dtype != RS_DT_F32 && c->dtype != RS_DT_BF16 && c->dtype != RS_DT_F16)) continue;
            if (t) return rs_errf(err, "%s: several hooks in the file; choose one with --hook", f->path);
            t = c;
        }
        if (!t) return rs_errf(err, "%s: no 2-D activation tensor", f->path);
    }
    if (t->ndim != 2 || t->shape[0] != f->n_tok)
        return rs_errf(err, "%s: tensor '%s' must be [tokens=%lld, d]", f->path, t->name, (long long)f->n_tok);
    *rows = t->shape[0];
    *width = (int)t->shape[1];
    *name_out = t->name;
    *owned = NULL;
    if (t->dtype == RS_DT_F32) *data = t->data;
    else {
        *owned = st_to_f32_new(t);
        if (!*owned) return rs_errk(err, RS_ENOMEM, "%s: out of memory converting '%s'", f->path, t->name);
        *data = *owned;
    }
    return 0;
}

void shift_acts_file_close(shift_acts_file *f) {
    if (!f) return;
    st_close(f->st);
    free(f->ids);
    free(f->off);
    free(f);
}

int shift_acts_file_open(shift_acts_file **out, const char *path, shift_acts_src *src, rs_err *err) {
    *out = NULL;
    shift_acts_file *f = calloc(1, sizeof *f);
    if (!f) return rs_errk(err, RS_ENOMEM, "out of memory");
    f->path = path;
    if (st_open(&f->st, path, err)) goto fail;
    const char *pool = st_meta(f->st, "pool");
    if (pool && strcmp(pool, "none")) {
        rs_errf(err, "%s: activations are pooled ('%s'); shift needs per-token activations (extract --pool none)", path, pool);
        goto fail;
    }
    const st_tensor *ti = st_get(f->st, "token_ids"), *to = st_get(f->st, "offsets");
    if (!ti || ti->dtype != RS_DT_I32 || ti->ndim != 1) {
        rs_errf(err, "%s: missing int32 tensor 'token_ids' (written by reprshift extract)", path);
        goto fail;
    }
    if (!to || to->dtype != RS_DT_I64 || to->ndim != 1 || to->numel < 2) {
        rs_errf(err, "%s: missing int64 tensor 'offsets' [n_inputs+1]", path);
        goto fail;
    }
    f->n_tok = ti->numel;
    f->n_in = to->numel - 1;
    f->ids = malloc((size_t)f->n_tok * sizeof *f->ids + 1);
    f->off = malloc((size_t)to->numel * sizeof *f->off);
    if (!f->ids || !f->off) {
        rs_errk(err, RS_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    memcpy(f->ids, ti->data, (size_t)f->n_tok * sizeof *f->ids);
    memcpy(f->off, to->data, (size_t)to->numel * sizeof *f->off);
    if (f->off[0] != 0 || f->off[f->n_in] != f->n_tok) {
        rs_errf(err, "%s: offsets must run from 0 to the token count %lld", path, (long long)f->n_tok);
        goto fail;
    }
    for (int64_t i = 0; i < f->n_in; i++)
        if (f->off[i + 1] < f->off[i]) {
            rs_errf(err, "%s: offsets decrease at input %lld", path, (long long)i);
            goto fail;
        }
    int32_t sp[3]; /* <bos>, <eos>, <pad> as extract recorded them (Gemma's for older files, as `sae fit`) */
    if (rs_special_ids_parse(st_meta(f->st, "special_token_ids"), sp, err)) {
        rs_err_prefix(err, "%s", path);
        goto fail;
    }
    *src = (shift_acts_src){.label = path, .ids = f->ids, .off = f->off, .n_tok = f->n_tok, .n_in = f->n_in,
                            .n_special = 3, .special = {sp[0], sp[1], sp[2]}, .read = file_read, .ctx = f};
    *out = f;
    return 0;
fail:
    shift_acts_file_close(f);
    return -1;
}

/* ---- the run ---- */

void shift_run_result_free(shift_run_result *res) {
    if (!res) return;
    for (int i = 0; i < res->n_layers; i++) shift_layer_free(&res->layers[i]);
    free(res->layers);
    free(res->ids);
    free(res->off);
    tok_free(res->tok);
    categories_free(res->cats);
    free(res);
}

static int cmp_i32(const void *x, const void *y) {
    int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
    return (a > b) - (a < b);
}

/* res->special: the special ids of a and b, sorted, each once. */
static int special_union(shift_run_result *res, const shift_acts_src *a, const shift_acts_src *b, rs_err *err) {
    const shift_acts_src *src[2] = {a, b};
    int n = 0;
    for (int k = 0; k < 2; k++) {
        if (src[k]->n_special < 0 || src[k]->n_special > SHIFT_MAX_SPECIAL)
            return rs_errk(err, RS_EINVAL, "%s: %d special token ids (at most %d)", src[k]->label, src[k]->n_special,
                           SHIFT_MAX_SPECIAL);
        for (int i = 0; i < src[k]->n_special; i++) res->special[n++] = src[k]->special[i];
    }
    qsort(res->special, (size_t)n, sizeof *res->special, cmp_i32);
    res->n_special = 0;
    for (int i = 0; i < n; i++)
        if (!res->n_special || res->special[res->n_special - 1] != res->special[i])
            res->special[res->n_special++] = res->special[i];
    return 0;
}

int shift_run_begin(const shift_run_opts *o, const shift_acts_src *a, const shift_acts_src *b,
                    shift_run_result **out, rs_err *err) {
    *out = NULL;
    shift_run_result *res = calloc(1, sizeof *res);
    if (!res) return rs_errk(err, RS_ENOMEM, "out of memory");
    res->o = *o;
    res->aligned = !o->force_pooled && a->n_tok == b->n_tok && a->n_in == b->n_in &&
                   !memcmp(a->ids, b->ids, (size_t)a->n_tok * sizeof *a->ids) &&
                   !memcmp(a->off, b->off, (size_t)(a->n_in + 1) * sizeof *a->off);
    if (!res->aligned && a->n_in != b->n_in) {
        rs_errf(err, "%s has %lld inputs but %s has %lld: the files must cover the same inputs", a->label,
                (long long)a->n_in, b->label, (long long)b->n_in);
        goto fail;
    }
    res->n_tok = a->n_tok;
    res->n_in = a->n_in;
    res->ids = malloc((size_t)a->n_tok * sizeof *res->ids + 1);
    res->off = malloc((size_t)(a->n_in + 1) * sizeof *res->off);
    if (!res->ids || !res->off) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto fail;
    }
    memcpy(res->ids, a->ids, (size_t)a->n_tok * sizeof *res->ids);
    memcpy(res->off, a->off, (size_t)(a->n_in + 1) * sizeof *res->off);
    if (special_union(res, a, b, err)) goto fail;
    if (o->tokenizer && tok_load(&res->tok, o->tokenizer, err)) goto fail;
    if (res->tok) {
        if (o->categories ? categories_load(&res->cats, o->categories, err) : categories_builtin(&res->cats, err))
            goto fail;
    } else if (o->categories) {
        rs_errf(err, "--categories needs --tokenizer (token strings are matched against the word lists)");
        goto fail;
    }
    *out = res;
    return 0;
fail:
    shift_run_result_free(res);
    return -1;
}

/* Every tested metric of the run in order (metric x layer); p or q as asked. */
static int run_pvalues(shift_run_result *res, double *v, int write_q) {
    int n = 0;
    for (int i = 0; i < res->n_layers; i++) {
        shift_layer *L = &res->layers[i];
        for (int j = 0; j < SHIFT_RUN_N_ORDER; j++) {
            int k = SHIFT_RUN_ORDER[j];
            if (shift_metric_is_feature(k) && !L->has_sae) continue;
            if (write_q) L->q[k] = v[n];
            else if (v) v[n] = L->r.null[k].p;
            n++;
        }
    }
    return n;
}

int shift_run_finish(shift_run_result *res, rs_err *err) {
    int n = run_pvalues(res, NULL, 0);
    double *pv = malloc((size_t)(n + 1) * sizeof *pv), *qv = malloc((size_t)(n + 1) * sizeof *qv);
    int rc = -1;
    if (!pv || !qv) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    run_pvalues(res, pv, 0);
    if (stats_bh_qvalues(pv, n, qv)) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    run_pvalues(res, qv, 1);
    res->n_tests = 0;
    for (int i = 0; i < n; i++) res->n_tests += isfinite(pv[i]) != 0;
    rc = 0;
done:
    free(pv);
    free(qv);
    return rc;
}

int shift_run_compute(const shift_run_opts *o, const shift_acts_src *a, const shift_acts_src *b,
                      shift_run_result **out, rs_err *err) {
    shift_run_result *res = NULL;
    if (shift_run_begin(o, a, b, &res, err)) return -1;
    int nl = o->n_layers > 0 ? o->n_layers : 1;
    /* quiet: no progress lines (the output is unchanged); a thread's progress hook
     * (reprshift/progress.h, e.g. Ctrl-C in the Python package) can stop a sweep between layers */
    rs_progress prog;
    rs_progress_start(&prog, "shift (layers)", nl);
    prog.quiet = 1;
    for (int i = 0; i < nl; i++) {
        int layer = o->n_layers > 0 ? o->layers[i] : -1;
        char *hook = shift_subst_layer(o->hook, layer), *sae = shift_subst_layer(o->sae, layer);
        int rc;
        if ((o->hook && !hook) || (o->sae && !sae)) {
            rc = rs_errk(err, RS_ENOMEM, "out of memory");
        } else {
            shift_layer_spec spec = {.layer = layer, .csv_layer = layer, .hook = hook, .sae = sae, .sae_hook = o->sae_hook};
            rc = shift_run_add_layer(res, a, b, &spec, err);
        }
        free(hook);
        free(sae);
        if (rc) {
            shift_run_result_free(res);
            return -1;
        }
        rs_progress_update(&prog, i + 1);
        if (rs_progress_cancelled(&prog) && i + 1 < nl) {
            shift_run_result_free(res);
            return rs_errk(err, RS_ECANCELLED, "shift cancelled after %d of %d layers", i + 1, nl);
        }
    }
    rs_progress_finish(&prog);
    if (shift_run_finish(res, err)) {
        shift_run_result_free(res);
        return -1;
    }
    *out = res;
    return 0;
}

/* ---- compute, then write (the CLI) ---- */

/* Remove a folder this run created, with what it wrote there: a refused shift leaves
 * nothing behind. */
static void remove_folder(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char path[4096];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
                (size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < sizeof path)
                unlink(path);
        closedir(d);
    }
    rmdir(dir);
}

static int write_run(const shift_run_result *res, const char *dir, rs_err *err) {
    shift_json_labels lab = {.acts_a = res->o.acts_a, .acts_b = res->o.acts_b, .sae = res->o.sae, .n_inputs = -1};
    cJSON *root = NULL;
    char *js = NULL, *summ = NULL, path[1024];
    size_t summ_n = 0;
    rs_atomic_file rf = {0}, sf = {0};
    int rc = -1;
    for (int i = 0; i < res->n_layers; i++)
        if (shift_layer_write_csvs(res, &res->layers[i], dir, err)) goto done;
    FILE *mf = open_memstream(&summ, &summ_n);
    if (!mf) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    int sr = shift_run_summary_csv(res, mf);
    if (fclose(mf) || sr) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    root = shift_run_json(res, &lab);
    js = root ? cJSON_Print(root) : NULL;
    if (!js) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    snprintf(path, sizeof path, "%s/summary.csv", dir);
    if (rs_atomic_open(&sf, path, err) || rs_atomic_write(&sf, summ, summ_n, err) || rs_atomic_commit(&sf, err))
        goto done;
    snprintf(path, sizeof path, "%s/results.json", dir);
    if (rs_atomic_open(&rf, path, err) || rs_atomic_write(&rf, js, strlen(js), err) || rs_atomic_write(&rf, "\n", 1, err) ||
        rs_atomic_commit(&rf, err))
        goto done;
    rc = 0;
done:
    rs_atomic_abort(&rf);
    rs_atomic_abort(&sf);
    cJSON_Delete(root);
    free(js);
    free(summ);
    return rc;
}

int shift_run(const shift_run_opts *o, rs_err *err) {
    shift_acts_file *fa = NULL, *fb = NULL;
    shift_acts_src sa, sb;
    shift_run_result *res = NULL;
    int rc = -1;
    if (!o->acts_a || !o->acts_b || !o->out_dir) return rs_errf(err, "shift: --a, --b and --out are required");
    shift_run_opts oo = *o;
    if (o->n_layers > 0) {
        /* a layer sweep: hook defaults to the Gemma Scope residual site */
        if (!oo.hook) oo.hook = "blocks.{layer}.hook_resid_post";
        if (!strstr(oo.hook, "{layer}") && !(oo.sae && strstr(oo.sae, "{layer}")))
            return rs_errf(err, "shift: --layers needs --hook or --sae containing {layer}");
    }
    struct stat out_st;
    int created = stat(oo.out_dir, &out_st) != 0; /* a folder made here is removed again on failure */
    if (mkdir(oo.out_dir, 0777) && errno != EEXIST)
        return rs_errk(err, RS_EIO, "%s: cannot create folder: %s", oo.out_dir, strerror(errno));
    if (shift_acts_file_open(&fa, oo.acts_a, &sa, err) || shift_acts_file_open(&fb, oo.acts_b, &sb, err)) goto done;
    if (shift_run_compute(&oo, &sa, &sb, &res, err) || write_run(res, oo.out_dir, err)) goto done;
    rc = 0;
done:
    if (rc && err && !err->msg[0]) rs_errf(err, "shift failed");
    if (rc && created) remove_folder(oo.out_dir);
    shift_run_result_free(res);
    shift_acts_file_close(fa);
    shift_acts_file_close(fb);
    return rc;
}

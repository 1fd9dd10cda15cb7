/* Interventions at decoder hooks through the forward pass's splice callback, read-outs
 * (logits, KL) and the logit lens. Conventions: docs/interventions.md. */
#include "reprshift/intervene.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reprshift/probe_io.h"
#include "reprshift/safetensors.h"

const char *rs_intervention_kind_name(iv_kind k) {
    switch (k) {
    case IV_ADD: return "add";
    case IV_PROJECT: return "project";
    case IV_SAE: return "sae";
    case IV_PATCH: return "patch";
    }
    return "?";
}

void rs_intervention_free(rs_intervention *iv) {
    if (!iv) return;
    free(iv->spec);
    free(iv->dir_path);
    free(iv->dir_name);
    free(iv->dir);
    free(iv->sae_path);
    sae_free(iv->sae);
    free(iv->pos);
    memset(iv, 0, sizeof *iv);
}

/* Whole-string finite double. */
static int parse_num(const char *s, double *out) {
    if (!*s) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno == ERANGE || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

/* Whole-string int in [lo, hi]. */
static int parse_int(const char *s, long lo, long hi, int *out) {
    if (!*s) return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end || errno || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static int parse_pos(const char *s, rs_intervention *iv) {
    int n = 1;
    for (const char *p = s; *p; p++) n += *p == ',';
    iv->pos = malloc((size_t)n * sizeof(int));
    if (!iv->pos) return -2;
    char *copy = strdup(s);
    if (!copy) return -2;
    int k = 0, rc = 0;
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t && !rc; t = strtok_r(NULL, ",", &save))
        rc = parse_int(t, -1000000000L, 1000000000L, &iv->pos[k++]);
    free(copy);
    if (rc || k != n) return -1;
    iv->n_pos = n;
    return 0;
}

int rs_intervention_parse(const char *spec, rs_intervention *iv, rs_err *err) {
    memset(iv, 0, sizeof *iv);
    if (!spec) return rs_errk(err, RS_EINVAL, "empty intervention spec");
    char *buf = strdup(spec);
    if (!buf || !(iv->spec = strdup(spec))) {
        free(buf);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    int rc = -1, have_feature = 0, have_op = 0, have_from = 0;
    char *at = strchr(buf, '@');
    if (!at) {
        rs_errk(err, RS_EINVAL, "intervention '%s': expected KIND@HOOK[:key=value...] (KIND: add, project, sae, patch)", spec);
        goto done;
    }
    *at = '\0';
    if (!strcmp(buf, "add")) iv->kind = IV_ADD;
    else if (!strcmp(buf, "project")) iv->kind = IV_PROJECT;
    else if (!strcmp(buf, "sae")) iv->kind = IV_SAE;
    else if (!strcmp(buf, "patch")) iv->kind = IV_PATCH;
    else {
        rs_errk(err, RS_EINVAL, "intervention '%s': unknown kind '%s' (use add, project, sae or patch)", spec, buf);
        goto done;
    }
    char *save = NULL, *prev_key = NULL;
    char *hook = strtok_r(at + 1, ":", &save);
    if (at[1] == ':' || !hook || strchr(hook, '=') || strlen(hook) >= sizeof iv->hook) {
        rs_errk(err, RS_EINVAL, "intervention '%s': missing or too long hook name", spec);
        goto done;
    }
    strcpy(iv->hook, hook);
    for (char *f = strtok_r(NULL, ":", &save); f; f = strtok_r(NULL, ":", &save)) {
        char *eq = strchr(f, '=');
        if (!eq) {
            if (prev_key && !strcmp(prev_key, "dir") && !iv->dir_name) {
                if (!(iv->dir_name = strdup(f))) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
            } else if (!strcmp(f, "zero") && iv->kind == IV_SAE && !have_op) {
                iv->sae_op = IV_SAE_ZERO;
                have_op = 1;
            } else {
                rs_errk(err, RS_EINVAL, "intervention '%s': unexpected field '%s'", spec, f);
                goto done;
            }
            prev_key = NULL;
            continue;
        }
        *eq = '\0';
        const char *k = f, *v = eq + 1;
        prev_key = f;
        int bad = 0;
        if (!strcmp(k, "pos")) {
            if (iv->pos) bad = 2;
            else {
                int r = parse_pos(v, iv);
                if (r == -2) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
                bad = r != 0;
            }
        } else if ((iv->kind == IV_ADD || iv->kind == IV_PROJECT) && !strcmp(k, "dir")) {
            if (iv->dir_path) bad = 2;
            else if (!*v) bad = 1;
            else if (!(iv->dir_path = strdup(v))) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
        } else if (iv->kind == IV_ADD && (!strcmp(k, "alpha") || !strcmp(k, "alpha_abs"))) {
            if (iv->has_alpha) bad = 2;
            else if (parse_num(v, &iv->alpha)) {
                rs_errk(err, RS_EINVAL, "intervention '%s': %s must be a finite number (got \"%s\")", spec, k, v);
                goto done;
            }
            iv->has_alpha = 1;
            iv->alpha_abs = !strcmp(k, "alpha_abs");
        } else if (iv->kind == IV_SAE && !strcmp(k, "sae")) {
            if (iv->sae_path) bad = 2;
            else if (!*v) bad = 1;
            else if (!(iv->sae_path = strdup(v))) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
        } else if (iv->kind == IV_SAE && !strcmp(k, "feature")) {
            if (have_feature) bad = 2;
            else bad = parse_int(v, 0, 1000000000L, &iv->feature) != 0;
            have_feature = 1;
        } else if (iv->kind == IV_SAE && (!strcmp(k, "clamp") || !strcmp(k, "scale"))) {
            if (have_op) bad = 2;
            else if (parse_num(v, &iv->sae_value)) {
                rs_errk(err, RS_EINVAL, "intervention '%s': %s must be a finite number (got \"%s\")", spec, k, v);
                goto done;
            }
            iv->sae_op = !strcmp(k, "clamp") ? IV_SAE_CLAMP : IV_SAE_SCALE;
            have_op = 1;
        } else if (iv->kind == IV_PATCH && !strcmp(k, "from")) {
            if (have_from) bad = 2;
            else bad = parse_int(v, 1, 1000000, &iv->from) != 0;
            have_from = 1;
        } else {
            rs_errk(err, RS_EINVAL, "intervention '%s': unknown field '%s' for %s", spec, k, rs_intervention_kind_name(iv->kind));
            goto done;
        }
        if (bad == 2) { rs_errk(err, RS_EINVAL, "intervention '%s': field '%s' given twice", spec, k); goto done; }
        if (bad) { rs_errk(err, RS_EINVAL, "intervention '%s': bad value \"%s\" for '%s'", spec, v, k); goto done; }
    }
    const char *missing = NULL;
    if ((iv->kind == IV_ADD || iv->kind == IV_PROJECT) && !iv->dir_path) missing = "dir=FILE";
    else if (iv->kind == IV_ADD && !iv->has_alpha) missing = "alpha=A or alpha_abs=A";
    else if (iv->kind == IV_SAE && !iv->sae_path) missing = "sae=PATH";
    else if (iv->kind == IV_SAE && !have_feature) missing = "feature=F";
    else if (iv->kind == IV_SAE && !have_op) missing = "clamp=V, scale=V or zero";
    else if (iv->kind == IV_PATCH && !have_from) missing = "from=K";
    if (missing) {
        rs_errk(err, RS_EINVAL, "intervention '%s': %s needs %s", spec, rs_intervention_kind_name(iv->kind), missing);
        goto done;
    }
    rc = 0;
done:
    free(buf);
    if (rc) rs_intervention_free(iv);
    return rc;
}

/* Normalise v[d] (double) to unit norm into out (new float array). */
static int unit_from(const double *v, int d, const char *what, float **out, rs_err *err) {
    double n2 = 0;
    for (int j = 0; j < d; j++) n2 += v[j] * v[j];
    if (!(n2 > 0) || !isfinite(n2)) return rs_errk(err, RS_EINVAL, "%s: the direction is zero or not finite", what);
    float *u = malloc((size_t)d * sizeof(float));
    if (!u) return rs_errk(err, RS_ENOMEM, "out of memory");
    double inv = 1.0 / sqrt(n2);
    for (int j = 0; j < d; j++) u[j] = (float)(v[j] * inv);
    *out = u;
    return 0;
}

static int probe_direction(const char *path, const char *name, int d, float **out, rs_err *err) {
    rs_probe p;
    if (rs_probe_load(&p, path, err)) return -1;
    int rc = -1;
    double *W = NULL, *b = NULL;
    if (p.is_mlp) { rs_errk(err, RS_EINVAL, "%s: an MLP probe has no direction (use a linear probe)", path); goto done; }
    int R = p.model.n_rows, pd = p.model.d;
    if (pd != d) {
        rs_errk(err, RS_EINVAL, "%s: probe direction has width %d, the hook's activations have %d", path, pd, d);
        goto done;
    }
    W = malloc((size_t)R * pd * sizeof(double));
    b = malloc((size_t)R * sizeof(double));
    if (!W || !b) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    rs_probe_raw_direction(&p, W, b);
    int row = 0;
    double sign = 1;
    if (R == 1) { /* binary: the logit of classes[1] */
        if (name && !strcmp(name, p.classes[0])) sign = -1;
        else if (name && strcmp(name, p.classes[1])) {
            rs_errk(err, RS_EINVAL, "%s: probe has no class '%s' (classes: '%s', '%s')", path, name, p.classes[0], p.classes[1]);
            goto done;
        }
    } else {
        if (!name) { rs_errk(err, RS_EINVAL, "%s: multiclass probe (%d classes): name a class, dir=%s:CLASS", path, R, path); goto done; }
        row = -1;
        for (int k = 0; k < p.n_classes; k++)
            if (!strcmp(p.classes[k], name)) row = k;
        if (row < 0) { rs_errk(err, RS_EINVAL, "%s: probe has no class '%s'", path, name); goto done; }
    }
    for (int j = 0; j < pd; j++) W[(size_t)row * pd + j] *= sign;
    rc = unit_from(W + (size_t)row * pd, pd, path, out, err);
done:
    free(W);
    free(b);
    rs_probe_free(&p);
    return rc;
}

int rs_direction_load(const char *path, const char *name, int d, float **out, rs_err *err) {
    *out = NULL;
    st_set *s = NULL;
    if (st_open(&s, path, err)) return -1;
    const char *fmt = st_meta(s, "format");
    if (fmt && !strncmp(fmt, "reprshift-probe", 15)) {
        st_close(s);
        return probe_direction(path, name, d, out, err);
    }
    const st_tensor *t = NULL;
    if (name) {
        if (!(t = st_get(s, name))) {
            rs_errk(err, RS_EINVAL, "%s: no tensor '%s' (it has %d tensors, e.g. '%s')", path, name, s->n_tensors,
                    s->n_tensors ? s->tensors[0].name : "");
            st_close(s);
            return -1;
        }
    } else if (s->n_tensors == 1) t = &s->tensors[0];
    else if (!(t = st_get(s, "direction"))) {
        rs_errk(err, RS_EINVAL, "%s: holds %d tensors and none is named 'direction'; name one (dir=%s:NAME)", path, s->n_tensors, path);
        st_close(s);
        return -1;
    }
    int rc;
    int oned = t->ndim == 1 || (t->ndim == 2 && t->shape[0] == 1);
    if (!oned || t->numel != d) {
        rc = rs_errk(err, RS_EINVAL, "%s: direction '%s' has %lld values, the hook's activations have width %d", path, t->name,
                     (long long)t->numel, d);
    } else if (t->dtype != RS_DT_F32 && t->dtype != RS_DT_F64 && t->dtype != RS_DT_BF16 && t->dtype != RS_DT_F16) {
        rc = rs_errk(err, RS_EINVAL, "%s: direction '%s' is %s, not a float tensor", path, t->name, rs_dtype_name(t->dtype));
    } else {
        double *v = malloc((size_t)d * sizeof(double));
        if (!v) rc = rs_errk(err, RS_ENOMEM, "out of memory");
        else {
            if (t->dtype == RS_DT_F64) memcpy(v, t->data, (size_t)d * sizeof(double));
            else {
                float *f = st_to_f32_new(t);
                if (f)
                    for (int j = 0; j < d; j++) v[j] = f[j];
                free(f);
                if (!f) {
                    free(v);
                    st_close(s);
                    return rs_errk(err, RS_ENOMEM, "out of memory");
                }
            }
            char what[512];
            snprintf(what, sizeof what, "%s:%s", path, t->name);
            rc = unit_from(v, d, what, out, err);
            free(v);
        }
    }
    st_close(s);
    return rc;
}

int rs_intervention_resolve(rs_intervention *iv, const gemma2_model *m, rs_err *err) {
    if (gemma2_hook_parse(&m->cfg, iv->hook, &iv->req, err)) return rs_err_prefix(err, "intervention '%s'", iv->spec);
    if (iv->req.id.kind == HK_LN_FINAL_NORMALIZED)
        return rs_errk(err, RS_EINVAL, "intervention '%s': ln_final.hook_normalized cannot be edited (the gain is applied to a "
                            "fresh normalisation); use ln_final.hook_out or a block hook", iv->spec);
    int w = iv->req.width;
    if (iv->kind == IV_ADD || iv->kind == IV_PROJECT) {
        if (!iv->dir)
            if (rs_direction_load(iv->dir_path, iv->dir_name, w, &iv->dir, err))
                return rs_err_prefix(err, "intervention '%s'", iv->spec);
    } else if (iv->kind == IV_SAE && !iv->sae) {
        if (sae_load(&iv->sae, iv->sae_path, NULL, err)) return rs_err_prefix(err, "intervention '%s'", iv->spec);
        if (!iv->sae->hook_name)
            return rs_errk(err, RS_EINVAL, "intervention '%s': %s names no hook, so it cannot be checked against %s", iv->spec,
                           iv->sae_path, iv->hook);
        if (sae_check_hook(iv->sae, iv->hook, 0, err))
            return rs_errk(err, RS_EINVAL, "intervention '%s': %s was trained on hook '%s', not %s (an SAE is applied only at its "
                                "own hook)", iv->spec, iv->sae_path, iv->sae->hook_name, iv->hook);
        if (iv->sae->d_in != w)
            return rs_errk(err, RS_EINVAL, "intervention '%s': SAE d_in %d does not match the width %d of %s", iv->spec,
                           iv->sae->d_in, w, iv->hook);
        if (iv->feature >= iv->sae->d_sae)
            return rs_errk(err, RS_EINVAL, "intervention '%s': feature %d is out of range (the SAE has %d features)", iv->spec,
                           iv->feature, iv->sae->d_sae);
    }
    return 0;
}

/* ---- the forward passes ------------------------------------------------------------ */

double rs_mean_row_norm(const float *x, int T, int w) {
    double sum = 0;
    for (int t = 0; t < T; t++) {
        double n2 = 0;
        for (int j = 0; j < w; j++) n2 += (double)x[(size_t)t * w + j] * x[(size_t)t * w + j];
        sum += sqrt(n2);
    }
    return sum / T;
}

#define ROW(t) (!c->rows || c->rows[t])
void rs_iv_splice_fn(void *vctx, float *x, int T, int width) {
    rs_iv_splice *c = vctx;
    rs_intervention *iv = c->iv;
    if (c->failed) return;
    if (iv->kind == IV_ADD || iv->kind == IV_PROJECT) {
        const float *d = iv->dir;
        for (int t = 0; t < T; t++) {
            if (!ROW(t)) continue;
            float *r = x + (size_t)t * width;
            if (iv->kind == IV_ADD) {
                for (int j = 0; j < width; j++) r[j] += (float)(c->scale * d[j]);
            } else {
                double dot = 0;
                for (int j = 0; j < width; j++) dot += (double)r[j] * d[j];
                for (int j = 0; j < width; j++) r[j] -= (float)(dot * d[j]);
            }
        }
    } else if (iv->kind == IV_PATCH) {
        for (int t = 0; t < T; t++)
            if (ROW(t)) memcpy(x + (size_t)t * width, c->src + (size_t)t * width, (size_t)width * sizeof(float));
    } else {
        const rs_sae *s = iv->sae;
        int n = 0;
        for (int t = 0; t < T; t++) n += ROW(t) != 0;
        if (!n) return;
        float *xr = malloc((size_t)n * width * sizeof(float));
        float *f = malloc((size_t)n * s->d_sae * sizeof(float));
        float *fe = malloc((size_t)n * s->d_sae * sizeof(float));
        float *d0 = malloc((size_t)n * width * sizeof(float));
        float *d1 = malloc((size_t)n * width * sizeof(float));
        if (!xr || !f || !fe || !d0 || !d1) {
            rs_errk(c->err, RS_ENOMEM, "out of memory");
            c->failed = 1;
        } else {
            int k = 0;
            for (int t = 0; t < T; t++)
                if (ROW(t)) memcpy(xr + (size_t)(k++) * width, x + (size_t)t * width, (size_t)width * sizeof(float));
            if (sae_encode(s, xr, n, f, c->err)) c->failed = 1;
            else {
                memcpy(fe, f, (size_t)n * s->d_sae * sizeof(float));
                for (int i = 0; i < n; i++) {
                    float *v = fe + (size_t)i * s->d_sae + iv->feature;
                    if (iv->sae_op == IV_SAE_CLAMP) *v = (float)iv->sae_value;
                    else if (iv->sae_op == IV_SAE_SCALE) *v = (float)(*v * iv->sae_value);
                    else *v = 0;
                }
                if (sae_decode(s, f, xr, n, d0, c->err) || sae_decode(s, fe, xr, n, d1, c->err)) c->failed = 1;
                else {
                    k = 0;
                    for (int t = 0; t < T; t++) {
                        if (!ROW(t)) continue;
                        float *r = x + (size_t)t * width;
                        const float *a = d0 + (size_t)k * width, *b = d1 + (size_t)k * width;
                        for (int j = 0; j < width; j++) r[j] += b[j] - a[j];
                        k++;
                    }
                }
            }
        }
        free(xr);
        free(f);
        free(fe);
        free(d0);
        free(d1);
    }
}
#undef ROW

/* One forward pass of a single input with the given requests; final (may be NULL) [T, D]. */
static int forward_one(const gemma2_model *m, const rs_iv_input *in, int pos_offset, hook_request *reqs, int n,
                       float *final, rs_err *err) {
    int64_t off[2] = {0, in->len};
    int prefix = in->prefix_len;
    gemma2_batch b = {.n_seqs = 1, .offsets = off, .ids = in->ids, .embeds = in->embeds,
                      .embeds_mask = in->embeds_mask, .prefix_len = prefix > 0 ? &prefix : NULL,
                      .pos_offset = pos_offset};
    return gemma2_forward(m, &b, reqs, n, final, err);
}

/* Capture one hook of a clean run (new [T, width] in *out). */
static int capture(const gemma2_model *m, const rs_iv_input *in, int pos_offset, const hook_request *proto,
                   float **out, rs_err *err) {
    hook_request r = *proto;
    r.capture = 1;
    r.out = NULL;
    r.splice = NULL;
    r.splice_ctx = NULL;
    /* the whole pass: a lone blocks.L.hook_resid_pre (L > 0) request stops the forward at
     * block L-1 before it fires */
    float *final = malloc((size_t)in->len * m->cfg.hidden_size * sizeof(float));
    if (!final) return rs_errk(err, RS_ENOMEM, "out of memory");
    int rc = forward_one(m, in, pos_offset, &r, 1, final, err);
    free(final);
    if (!rc && !r.out) rc = rs_errf(err, "%s was not reached by the forward pass", r.name);
    if (rc) {
        hook_requests_free(&r, 1);
        return -1;
    }
    *out = r.out;
    return 0;
}

double rs_kl_logits(const float *lp, const float *lq, int vocab) {
    double mp = -INFINITY, mq = -INFINITY, zp = 0, zq = 0;
    for (int v = 0; v < vocab; v++) {
        if (lp[v] > mp) mp = lp[v];
        if (lq[v] > mq) mq = lq[v];
    }
    for (int v = 0; v < vocab; v++) {
        zp += exp((double)lp[v] - mp);
        zq += exp((double)lq[v] - mq);
    }
    double lzp = mp + log(zp), lzq = mq + log(zq), kl = 0;
    for (int v = 0; v < vocab; v++) {
        double a = (double)lp[v] - lzp, b = (double)lq[v] - lzq;
        kl += exp(a) * (a - b);
    }
    return kl;
}

void rs_softmax_row(const float *logits, int vocab, double *p) {
    double mx = -INFINITY, z = 0;
    for (int v = 0; v < vocab; v++)
        if (logits[v] > mx) mx = logits[v];
    for (int v = 0; v < vocab; v++) z += (p[v] = exp((double)logits[v] - mx));
    for (int v = 0; v < vocab; v++) p[v] /= z;
}

void rs_iv_result_free(rs_iv_result *r) {
    if (!r) return;
    free(r->logits_clean);
    free(r->logits_iv);
    free(r->kl);
    free(r->scale);
    memset(r, 0, sizeof *r);
}

/* Rows of a spec for an input of T rows (and a source of Ts rows for patch) into rows[T]. */
static int spec_rows(const rs_intervention *iv, int T, int Ts, uint8_t *rows, rs_err *err) {
    if (!iv->pos) {
        if (iv->kind == IV_PATCH && Ts != T)
            return rs_errk(err, RS_EINVAL, "intervention '%s': input %d has %d tokens, input 0 has %d; patching every row needs "
                                "equal lengths (name rows with pos=...)", iv->spec, iv->from, Ts, T);
        memset(rows, 1, (size_t)T);
        return 0;
    }
    memset(rows, 0, (size_t)T);
    for (int k = 0; k < iv->n_pos; k++) {
        int p = iv->pos[k] < 0 ? T + iv->pos[k] : iv->pos[k];
        if (p < 0 || p >= T)
            return rs_errk(err, RS_EINVAL, "intervention '%s': position %d is outside the input (%d tokens)", iv->spec, iv->pos[k], T);
        if (iv->kind == IV_PATCH && p >= Ts)
            return rs_errk(err, RS_EINVAL, "intervention '%s': position %d is outside input %d (%d tokens)", iv->spec, iv->pos[k],
                           iv->from, Ts);
        rows[p] = 1;
    }
    return 0;
}

int rs_intervene_run(const gemma2_model *m, const rs_iv_input *inputs, int n_inputs, int pos_offset,
                     rs_intervention *ivs, int n_iv, rs_iv_result *out, rs_err *err) {
    memset(out, 0, sizeof *out);
    if (n_inputs < 1 || inputs[0].len < 1) return rs_errk(err, RS_EINVAL, "no input tokens");
    int T = (int)inputs[0].len, D = m->cfg.hidden_size, V = m->cfg.vocab_size;
    int rc = -1;
    float *final = malloc((size_t)T * D * sizeof(float));
    hook_request *reqs = calloc((size_t)n_iv + 1, sizeof *reqs);
    rs_iv_splice *ctx = calloc((size_t)n_iv + 1, sizeof *ctx);
    uint8_t *rows = calloc((size_t)(n_iv + 1) * T, 1);
    float **src = calloc((size_t)n_iv + 1, sizeof *src);
    out->T = T;
    out->vocab = V;
    out->logits_clean = malloc((size_t)T * V * sizeof(float));
    out->logits_iv = malloc((size_t)T * V * sizeof(float));
    out->kl = malloc((size_t)T * sizeof(double));
    out->scale = calloc((size_t)n_iv + 1, sizeof(double));
    if (!final || !reqs || !ctx || !rows || !src || !out->logits_clean || !out->logits_iv || !out->kl || !out->scale) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    /* 1. rows, sources, and the clean run (capturing the hooks of relative adds) */
    for (int i = 0; i < n_iv; i++) {
        rs_intervention *iv = &ivs[i];
        int Ts = T;
        if (iv->kind == IV_PATCH) {
            if (iv->from >= n_inputs)
                { rs_errk(err, RS_EINVAL, "intervention '%s': from=%d but there are only %d inputs (0..%d)", iv->spec, iv->from,
                          n_inputs, n_inputs - 1); goto done; }
            Ts = (int)inputs[iv->from].len;
        }
        if (spec_rows(iv, T, Ts, rows + (size_t)i * T, err)) goto done;
        if (iv->kind == IV_PATCH && capture(m, &inputs[iv->from], pos_offset, &iv->req, &src[i], err)) goto done;
    }
    int nc = 0;
    for (int i = 0; i < n_iv; i++)
        if (ivs[i].kind == IV_ADD && !ivs[i].alpha_abs) {
            reqs[nc] = ivs[i].req;
            reqs[nc].capture = 1;
            reqs[nc].out = NULL;
            reqs[nc].splice = NULL;
            nc++;
        }
    if (forward_one(m, &inputs[0], pos_offset, reqs, nc, final, err) || gemma2_logits(m, final, T, out->logits_clean, err)) {
        hook_requests_free(reqs, nc);
        goto done;
    }
    nc = 0;
    for (int i = 0; i < n_iv; i++) {
        if (ivs[i].kind != IV_ADD) continue;
        double s = 1;
        if (!ivs[i].alpha_abs) {
            s = rs_mean_row_norm(reqs[nc++].out, T, ivs[i].req.width);
        }
        out->scale[i] = s;
    }
    hook_requests_free(reqs, nc);
    /* 2. the intervened run */
    for (int i = 0; i < n_iv; i++) {
        ctx[i] = (rs_iv_splice){.iv = &ivs[i], .rows = rows + (size_t)i * T, .scale = ivs[i].alpha * out->scale[i],
                          .src = src[i], .err = err};
        reqs[i] = ivs[i].req;
        reqs[i].capture = 0;
        reqs[i].out = NULL;
        reqs[i].splice = rs_iv_splice_fn;
        reqs[i].splice_ctx = &ctx[i];
    }
    if (forward_one(m, &inputs[0], pos_offset, reqs, n_iv, final, err)) goto done;
    for (int i = 0; i < n_iv; i++)
        if (ctx[i].failed) { rs_err_prefix(err, "intervention '%s'", ivs[i].spec); goto done; }
    if (gemma2_logits(m, final, T, out->logits_iv, err)) goto done;
    for (int t = 0; t < T; t++)
        out->kl[t] = rs_kl_logits(out->logits_clean + (size_t)t * V, out->logits_iv + (size_t)t * V, V);
    rc = 0;
done:
    if (src)
        for (int i = 0; i < n_iv; i++) free(src[i]);
    free(src);
    free(rows);
    free(ctx);
    free(reqs);
    free(final);
    if (rc) rs_iv_result_free(out);
    return rc;
}

int rs_logit_lens(const gemma2_model *m, const rs_iv_input *in, int pos_offset, const int *layers, int n_layers,
                  float **logits, rs_err *err) {
    int T = (int)in->len, D = m->cfg.hidden_size, V = m->cfg.vocab_size, L = m->cfg.n_layers;
    for (int k = 0; k < n_layers; k++) logits[k] = NULL;
    if (T < 1) return rs_errk(err, RS_EINVAL, "no input tokens");
    for (int k = 0; k < n_layers; k++)
        if (layers[k] < 0 || layers[k] >= L)
            return rs_errk(err, RS_EINVAL, "layer %d is out of range (the model has layers 0..%d)", layers[k], L - 1);
    hook_request *reqs = calloc((size_t)n_layers + 1, sizeof *reqs);
    float *final = malloc((size_t)T * D * sizeof(float));
    int rc = -1;
    if (!reqs || !final) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    for (int k = 0; k < n_layers; k++) {
        reqs[k].id = (rs_hook){RS_TOWER_DECODER, HK_RESID_POST, layers[k]};
        if (rs_hook_format(&reqs[k].id, reqs[k].name, sizeof reqs[k].name)) { rs_errk(err, RS_EINVAL, "bad layer"); goto done; }
        reqs[k].width = D;
        reqs[k].capture = 1;
    }
    if (forward_one(m, in, pos_offset, reqs, n_layers, NULL, err)) goto done;
    int64_t off[2] = {0, T};
    int prefix = in->prefix_len;
    gemma2_batch b = {.n_seqs = 1, .offsets = off, .ids = in->ids, .embeds = in->embeds,
                      .embeds_mask = in->embeds_mask, .prefix_len = prefix > 0 ? &prefix : NULL,
                      .pos_offset = pos_offset};
    for (int k = 0; k < n_layers; k++) {
        /* the final norm as the model applies it: continue "after the last block" from this residual */
        if (!(logits[k] = malloc((size_t)T * V * sizeof(float)))) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
        if (gemma2_forward_from(m, &b, L, reqs[k].out, NULL, 0, final, err) ||
            gemma2_logits(m, final, T, logits[k], err)) goto done;
    }
    rc = 0;
done:
    if (reqs) hook_requests_free(reqs, n_layers);
    free(reqs);
    free(final);
    if (rc)
        for (int k = 0; k < n_layers; k++) {
            free(logits[k]);
            logits[k] = NULL;
        }
    return rc;
}

void rs_topk(const float *row, int n, int k, int *idx) {
    if (k > n) k = n;
    for (int i = 0; i < k; i++) idx[i] = -1;
    for (int v = 0; v < n; v++) {
        /* insert v if it beats the current k-th */
        int p = k;
        while (p > 0 && (idx[p - 1] < 0 || row[v] > row[idx[p - 1]])) p--;
        if (p >= k) continue;
        for (int j = k - 1; j > p; j--) idx[j] = idx[j - 1];
        idx[p] = v;
    }
}

int rs_pg_image_rows(const paligemma_model *m, const int32_t *ids, int64_t len, int prefix_len, const float *pixel_values,
                     int n_images, float **embeds, uint8_t **mask, rs_err *err) {
    const paligemma_config *c = &m->cfg;
    int D = c->text.hidden_size;
    *embeds = NULL;
    *mask = NULL;
    hook_request r;
    if (paligemma_hook_parse(m, "projector.hook_out", &r, err)) return -1;
    r.capture = 1;
    r.out = NULL;
    int64_t off[2] = {0, len};
    paligemma_batch b = {.n_seqs = 1, .offsets = off, .ids = ids, .prefix_len = &prefix_len,
                         .n_images = n_images, .pixel_values = pixel_values};
    if (paligemma_forward(m, &b, &r, 1, NULL, err)) {
        hook_requests_free(&r, 1);
        return -1;
    }
    float *e = calloc((size_t)len * D, sizeof(float));
    uint8_t *k8 = calloc((size_t)len, 1);
    if (!e || !k8 || !r.out) {
        free(e);
        free(k8);
        hook_requests_free(&r, 1);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    /* as paligemma_forward merges them: z / float32(sqrt(D)), the decoder multiplies back */
    const float normalizer = (float)sqrt((double)D);
    int64_t k = 0;
    for (int64_t t = 0; t < len; t++) {
        if (ids[t] != c->image_token_index) continue;
        k8[t] = 1;
        for (int d = 0; d < D; d++) e[(size_t)t * D + d] = r.out[(size_t)k * D + d] / normalizer;
        k++;
    }
    hook_requests_free(&r, 1);
    *embeds = e;
    *mask = k8;
    return 0;
}

/* SAE loading (sae-lens folders, Gemma Scope params.npz) and saving (sae-lens folder).
 * Config handling follows sae-lens handle_config_defaulting / handle_pre_6_0_config:
 * configs without sae_lens_version (top level or metadata) or older than 6.0 get the
 * pre-6 renames (hook_point → hook_name, activation_fn_str → activation_fn) and defaults. */
#include "base/util.h"
#include "reprshift/hooks.h"
#include "reprshift/sae.h"
#include "reprshift/sae_registry.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cjson/cJSON.h>
#include "reprshift/fileio.h"
#include "base/jsonutil.h"
#include "io/npz.h"
#include "reprshift/safetensors.h"
#include "reprshift/version.h"

/* Gemma Scope paths carry the layer ("layer_12") and the site in the release name. */
static char *hook_from_path(const char *path) {
    char buf[128];
    if (strstr(path, "embedding")) return strdup("hook_embed");
    const char *p = strstr(path, "layer_");
    if (!p || !isdigit((unsigned char)p[6])) return NULL;
    long layer = strtol(p + 6, NULL, 10);
    if (layer > 4096) return NULL;
    rs_hook h = {RS_TOWER_DECODER, HK_RESID_POST, (int)layer};
    if (strstr(path, "-mlp") || strstr(path, "_mlp")) h.kind = HK_MLP_OUT;
    else if (strstr(path, "-att") || strstr(path, "_att")) h.kind = HK_ATTN_Z;
    return rs_hook_format(&h, buf, sizeof buf) ? NULL : strdup(buf);
}

static rs_sae *alloc_sae(sae_arch arch, int d_in, int d_sae) {
    rs_sae *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    size_t nw = (size_t)d_in * (size_t)d_sae;
    s->arch = arch;
    s->d_in = d_in;
    s->d_sae = d_sae;
    s->apply_b_dec_to_input = 1;
    s->W_enc = malloc(nw * sizeof(float));
    s->W_dec = malloc(nw * sizeof(float));
    s->b_enc = malloc((size_t)d_sae * sizeof(float));
    s->b_dec = malloc((size_t)d_in * sizeof(float));
    s->dec_norm = malloc((size_t)d_sae * sizeof(float));
    if (arch == SAE_ARCH_JUMPRELU) s->threshold = malloc((size_t)d_sae * sizeof(float));
    if (!s->W_enc || !s->W_dec || !s->b_enc || !s->b_dec || !s->dec_norm ||
        (arch == SAE_ARCH_JUMPRELU && !s->threshold)) {
        sae_free(s);
        return NULL;
    }
    return s;
}

/* ---- Gemma Scope npz ---- */

static const npy_array *npz_key(const npz_file *z, const char *name) {
    const npy_array *a = npz_get(z, name);
    if (!a && name[0] == 'W') { /* sae-lens maps w_* to W_* */
        char lower[32];
        snprintf(lower, sizeof lower, "w%s", name + 1);
        a = npz_get(z, lower);
    }
    return a;
}

static int npz_expect(const npz_file *z, const char *path, const char *name, int ndim, const int64_t *shape,
                      const npy_array **out, rs_err *err) {
    const npy_array *a = npz_key(z, name);
    if (!a) return rs_errk(err, RS_EFORMAT, "%s: missing array '%s'", path, name);
    if (a->dtype != NPY_F4 && a->dtype != NPY_F8) return rs_errk(err, RS_EFORMAT, "%s: array '%s' is not floating point", path, name);
    int ok = a->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = shape[i] < 0 || a->shape[i] == shape[i];
    if (!ok) {
        char got[128] = "", want[128] = "";
        size_t gl = 0, wl = 0;
        for (int i = 0; i < a->ndim && gl < 100; i++)
            gl += (size_t)snprintf(got + gl, sizeof got - gl, "%s%lld", i ? "," : "", (long long)a->shape[i]);
        for (int i = 0; i < ndim && wl < 100; i++)
            wl += (size_t)snprintf(want + wl, sizeof want - wl, "%s%lld", i ? "," : "", (long long)shape[i]);
        return rs_errk(err, RS_EFORMAT, "%s: array '%s' has shape [%s], expected [%s]", path, name, got, want);
    }
    *out = a;
    return 0;
}

static int load_npz(rs_sae **out, const char *path, rs_err *err) {
    npz_file *z;
    if (npz_open(&z, path, 0, err)) return -1;
    const npy_array *we, *wd, *be, *bd, *th;
    int64_t any2[2] = {-1, -1};
    int rc = -1;
    rs_sae *s = NULL;
    if (npz_expect(z, path, "W_enc", 2, any2, &we, err)) goto done;
    int64_t d_in = we->shape[0], d_sae = we->shape[1];
    if (d_in <= 0 || d_sae <= 0 || d_in > (1 << 20) || d_sae > (1 << 24)) {
        rs_errk(err, RS_EFORMAT, "%s: implausible W_enc shape [%lld,%lld]", path, (long long)d_in, (long long)d_sae);
        goto done;
    }
    int64_t sd[2] = {d_sae, d_in};
    if (npz_expect(z, path, "W_dec", 2, sd, &wd, err) || npz_expect(z, path, "b_enc", 1, &d_sae, &be, err) ||
        npz_expect(z, path, "b_dec", 1, &d_in, &bd, err) || npz_expect(z, path, "threshold", 1, &d_sae, &th, err))
        goto done;
    const npy_array *sf = npz_get(z, "scaling_factor");
    if (sf) {
        float *v = malloc((size_t)sf->numel * sizeof *v + 1);
        int ones = v != NULL;
        if (v) npy_to_f32(sf, v);
        for (int64_t i = 0; ones && i < sf->numel; i++) ones = v[i] == 1.0f;
        free(v);
        if (!ones) {
            rs_errk(err, RS_EFORMAT, "%s: scaling_factor other than 1 is not supported", path);
            goto done;
        }
    }
    s = alloc_sae(SAE_ARCH_JUMPRELU, (int)d_in, (int)d_sae);
    if (!s) {
        rs_errk(err, RS_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    npy_to_f32(we, s->W_enc);
    npy_to_f32(wd, s->W_dec);
    npy_to_f32(be, s->b_enc);
    npy_to_f32(bd, s->b_dec);
    npy_to_f32(th, s->threshold);
    s->format = SAE_FORMAT_GEMMA_SCOPE_NPZ;
    s->apply_b_dec_to_input = 0; /* sae-lens gemma_2 config */
    s->normalize = SAE_NORM_NONE;
    if (strstr(path, "embedding")) { /* sae-lens: trained on unscaled embeddings */
        float r = sqrtf((float)d_in);
        for (size_t i = 0; i < (size_t)d_in * d_sae; i++) {
            s->W_enc[i] /= r;
            s->W_dec[i] *= r;
        }
    }
    rc = 0;
done:
    npz_close(z);
    if (rc) sae_free(s);
    else *out = s;
    return rc;
}

/* ---- sae-lens folder ---- */

static const cJSON *field(const cJSON *cfg, const cJSON *meta, const char *key) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if ((!x || cJSON_IsNull(x)) && meta) x = cJSON_GetObjectItemCaseSensitive(meta, key);
    return x && !cJSON_IsNull(x) ? x : NULL;
}

static int is_pre6(const cJSON *cfg, const cJSON *meta) {
    const cJSON *v = field(cfg, meta, "sae_lens_version");
    if (!cJSON_IsString(v)) return 1;
    return atoi(v->valuestring) < 6;
}

static int get_bool(const cJSON *x, int def) {
    if (!x) return def;
    if (cJSON_IsBool(x)) return cJSON_IsTrue(x);
    if (cJSON_IsNumber(x)) return x->valuedouble != 0;
    return def;
}

static int parse_cfg(const cJSON *cfg, const char *what, rs_sae *s, int *d_in, int *d_sae, rs_err *err) {
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(cfg, "metadata");
    if (meta && !cJSON_IsObject(meta)) meta = NULL;
    int pre6 = is_pre6(cfg, meta);
    int64_t v;
    if (rs_json_int(cfg, "d_in", 1, 1 << 20, 0, 0, &v, what, err)) return -1;
    *d_in = (int)v;
    if (rs_json_int(cfg, "d_sae", 1, 1 << 24, 0, 0, &v, what, err)) return -1;
    *d_sae = (int)v;

    const cJSON *arch = field(cfg, meta, "architecture");
    const cJSON *act = field(cfg, meta, pre6 && field(cfg, meta, "activation_fn_str") ? "activation_fn_str" : "activation_fn");
    const char *a = cJSON_IsString(arch) ? arch->valuestring : "standard";
    if (arch && !cJSON_IsString(arch)) return rs_errk(err, RS_EFORMAT, "%s: \"architecture\" must be a string", what);
    int k = 100; /* TopKSAEConfig default */
    const cJSON *kj = field(cfg, meta, "k");
    if (pre6 && cJSON_IsString(act) && !strcmp(act->valuestring, "topk")) {
        const cJSON *kw = field(cfg, meta, "activation_fn_kwargs");
        const cJSON *kk = kw ? cJSON_GetObjectItemCaseSensitive(kw, "k") : NULL;
        if (kk) {
            a = "topk";
            kj = kk;
        }
    }
    if (!strcmp(a, "standard")) s->arch = SAE_ARCH_STANDARD;
    else if (!strcmp(a, "jumprelu")) s->arch = SAE_ARCH_JUMPRELU;
    else if (!strcmp(a, "topk")) s->arch = SAE_ARCH_TOPK;
    else return rs_errk(err, RS_EFORMAT, "%s: unknown SAE architecture '%s' (supported: standard, jumprelu, topk)", what, a);
    if (s->arch == SAE_ARCH_STANDARD && cJSON_IsString(act) && strcmp(act->valuestring, "relu"))
        return rs_errk(err, RS_EFORMAT, "%s: unsupported activation_fn '%s' for a standard SAE", what, act->valuestring);
    if (s->arch == SAE_ARCH_TOPK) {
        if (kj) {
            if (!rs_json_is_int(kj, 1, *d_sae)) return rs_errk(err, RS_EFORMAT, "%s: k must be an integer in [1, d_sae]", what);
            k = (int)kj->valuedouble;
        }
        if (k > *d_sae) return rs_errk(err, RS_EFORMAT, "%s: k %d exceeds d_sae %d", what, k, *d_sae);
        s->k = k;
        s->rescale_acts_by_decoder_norm = get_bool(field(cfg, meta, "rescale_acts_by_decoder_norm"), 0);
    }
    s->apply_b_dec_to_input = get_bool(field(cfg, meta, "apply_b_dec_to_input"), 1);
    const cJSON *nm = field(cfg, meta, "normalize_activations");
    s->normalize = SAE_NORM_NONE;
    if (cJSON_IsBool(nm)) s->normalize = cJSON_IsTrue(nm) ? SAE_NORM_EXPECTED_AVERAGE_ONLY_IN : SAE_NORM_NONE;
    else if (cJSON_IsString(nm)) {
        const char *n = nm->valuestring;
        if (!strcmp(n, "none")) s->normalize = SAE_NORM_NONE;
        else if (!strcmp(n, "expected_average_only_in")) s->normalize = SAE_NORM_EXPECTED_AVERAGE_ONLY_IN;
        else if (!strcmp(n, "constant_norm_rescale")) s->normalize = SAE_NORM_CONSTANT_NORM_RESCALE;
        else if (!strcmp(n, "layer_norm")) s->normalize = SAE_NORM_LAYER_NORM;
        else return rs_errk(err, RS_EFORMAT, "%s: unsupported normalize_activations '%s'", what, n);
    } else if (nm) return rs_errk(err, RS_EFORMAT, "%s: bad normalize_activations", what);
    const cJSON *rs = field(cfg, meta, "reshape_activations");
    if (cJSON_IsString(rs) && strcmp(rs->valuestring, "none") && strcmp(rs->valuestring, "hook_z"))
        return rs_errk(err, RS_EFORMAT, "%s: unsupported reshape_activations '%s'", what, rs->valuestring);
    /* hook_z reshape flattens [.., heads, d_head] → heads·d_head, which is how we store it. */
    const cJSON *hk = field(cfg, meta, pre6 && field(cfg, meta, "hook_point") ? "hook_point" : "hook_name");
    if (cJSON_IsString(hk) && !(s->hook_name = strdup(hk->valuestring))) return rs_errk(err, RS_ENOMEM, "%s: out of memory", what);
    const cJSON *hi = field(cfg, meta, pre6 && field(cfg, meta, "hook_point_head_index") ? "hook_point_head_index" : "hook_head_index");
    if (hi) return rs_errk(err, RS_EFORMAT, "%s: hook_head_index SAEs are not supported", what);
    const cJSON *mn = field(cfg, meta, "model_name");
    if (cJSON_IsString(mn) && !(s->model_name = strdup(mn->valuestring))) return rs_errk(err, RS_ENOMEM, "%s: out of memory", what);
    return 0;
}

static int load_tensor(const st_set *st, const char *wpath, const char *name, int ndim, const int64_t *shape,
                       float *dst, rs_err *err) {
    const st_tensor *t;
    if (st_expect(st, name, ndim, shape, &t, err)) return rs_err_prefix(err, "%s", wpath);
    if (t->dtype != RS_DT_F32 && t->dtype != RS_DT_F16 && t->dtype != RS_DT_BF16 && t->dtype != RS_DT_F64)
        return rs_errk(err, RS_EFORMAT, "%s: tensor '%s' is not floating point", wpath, name);
    st_to_f32(t, dst);
    return 0;
}

static int load_sae_lens(rs_sae **out, const char *dir, rs_err *err) {
    char *cfg_path = rs_path_join(dir, "cfg.json");
    char *w_path = rs_path_join(dir, "sae_weights.safetensors");
    cJSON *cfg = NULL;
    st_set *st = NULL;
    rs_sae tmp = {0}, *s = NULL;
    int rc = -1, d_in = 0, d_sae = 0;
    if (!cfg_path || !w_path) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    if (rs_json_load(cfg_path, 1 << 20, &cfg, err)) goto done;
    if (!cJSON_IsObject(cfg)) {
        rs_errk(err, RS_EFORMAT, "%s: not a JSON object", cfg_path);
        goto done;
    }
    if (parse_cfg(cfg, cfg_path, &tmp, &d_in, &d_sae, err)) goto done;
    if (st_open(&st, w_path, err)) goto done;
    /* check the weights agree with cfg.json before allocating from its dimensions: a tiny
     * cfg.json must not be able to request terabytes */
    int64_t se[2] = {d_in, d_sae}, sd[2] = {d_sae, d_in}, vs = d_sae, vi = d_in;
    const st_tensor *chk;
    if (st_expect(st, "W_enc", 2, se, &chk, err) || st_expect(st, "W_dec", 2, sd, &chk, err)) {
        rs_err_prefix(err, "%s", w_path);
        goto done;
    }
    s = alloc_sae(tmp.arch, d_in, d_sae);
    if (!s) {
        rs_errk(err, RS_ENOMEM, "%s: out of memory", w_path);
        goto done;
    }
    s->format = SAE_FORMAT_SAE_LENS;
    s->k = tmp.k;
    s->rescale_acts_by_decoder_norm = tmp.rescale_acts_by_decoder_norm;
    s->apply_b_dec_to_input = tmp.apply_b_dec_to_input;
    s->normalize = tmp.normalize;
    s->hook_name = tmp.hook_name;
    s->model_name = tmp.model_name;
    tmp.hook_name = tmp.model_name = NULL;
    if (load_tensor(st, w_path, "W_enc", 2, se, s->W_enc, err) || load_tensor(st, w_path, "W_dec", 2, sd, s->W_dec, err) ||
        load_tensor(st, w_path, "b_enc", 1, &vs, s->b_enc, err) || load_tensor(st, w_path, "b_dec", 1, &vi, s->b_dec, err))
        goto done;
    if (s->arch == SAE_ARCH_JUMPRELU) {
        if (st_get(st, "threshold")) {
            if (load_tensor(st, w_path, "threshold", 1, &vs, s->threshold, err)) goto done;
        } else if (st_get(st, "log_threshold")) { /* training-class checkpoints */
            if (load_tensor(st, w_path, "log_threshold", 1, &vs, s->threshold, err)) goto done;
            for (int f = 0; f < d_sae; f++) s->threshold[f] = expf(s->threshold[f]);
        } else {
            rs_errk(err, RS_EFORMAT, "%s: jumprelu SAE lacks 'threshold'", w_path);
            goto done;
        }
    }
    const char *sfn[2] = {"scaling_factor", "finetuning_scaling_factor"};
    for (int i = 0; i < 2; i++) {
        const st_tensor *t = st_get(st, sfn[i]);
        if (!t) continue;
        float *v = st_to_f32_new(t);
        int ones = v != NULL;
        for (int64_t j = 0; ones && j < t->numel; j++) ones = v[j] == 1.0f;
        free(v);
        if (!ones) {
            rs_errk(err, RS_EFORMAT, "%s: %s other than 1 is not supported", w_path, sfn[i]);
            goto done;
        }
    }
    rc = 0;
done:
    free(tmp.hook_name);
    free(tmp.model_name);
    cJSON_Delete(cfg);
    st_close(st);
    free(cfg_path);
    free(w_path);
    if (rc) sae_free(s);
    else *out = s;
    return rc;
}

int sae_load(rs_sae **out, const char *path, const char *hook_name, rs_err *err) {
    *out = NULL;
    if (!rs_path_exists(path)) {
        /* a registry name: load the cached params.npz with the registry's hook and ids */
        char *file = NULL;
        const rs_sae_entry *e = NULL;
        if (rs_sae_resolve(path, &file, &e, err)) return -1;
        if (e) {
            int rc = sae_load(out, file, hook_name ? hook_name : e->hook_name, err);
            free(file);
            if (rc) return -1;
            (*out)->neuronpedia = e->neuronpedia;
            if (!((*out)->sae_name = strdup(path))) {
                sae_free(*out);
                *out = NULL;
                return rs_errk(err, RS_ENOMEM, "out of memory");
            }
            return 0;
        }
        free(file);
    }
    rs_sae *s = NULL;
    int rc;
    if (rs_is_dir(path)) {
        char *cfg = rs_path_join(path, "cfg.json"), *npz = rs_path_join(path, "params.npz");
        if (!cfg || !npz) {
            free(cfg);
            free(npz);
            return rs_errk(err, RS_ENOMEM, "out of memory");
        }
        if (rs_path_exists(cfg)) rc = load_sae_lens(&s, path, err);
        else if (rs_path_exists(npz)) rc = load_npz(&s, npz, err);
        else rc = rs_errk(err, RS_EFORMAT, "%s: neither cfg.json (sae-lens) nor params.npz (Gemma Scope) found", path);
        free(cfg);
        free(npz);
    } else if (rs_ends_with(path, ".npz")) {
        rc = load_npz(&s, path, err);
    } else if (!rs_path_exists(path)) {
        rc = rs_errk(err, RS_EIO, "%s: no such SAE file or folder", path);
    } else {
        rc = rs_errk(err, RS_EFORMAT, "%s: not an SAE (expected a sae-lens folder or a params.npz)", path);
    }
    if (rc) return -1;
    int oom = !(s->path = strdup(path));
    if (hook_name) {
        free(s->hook_name);
        oom |= !(s->hook_name = strdup(hook_name));
        s->hook_from_path = 0;
    } else if (!s->hook_name && s->format == SAE_FORMAT_GEMMA_SCOPE_NPZ) {
        /* NULL: the path names no layer, or no memory (told apart: a layer_N path always gives a name) */
        s->hook_name = hook_from_path(path);
        s->hook_from_path = s->hook_name != NULL;
        const char *lp = strstr(path, "layer_");
        oom |= !s->hook_name && (strstr(path, "embedding") || (lp && isdigit((unsigned char)lp[6])));
    }
    if (oom) {
        sae_free(s);
        return rs_errk(err, RS_ENOMEM, "%s: out of memory", path);
    }
    sae_update_dec_norm(s);
    *out = s;
    return 0;
}

/* ---- saving (sae-lens v6 folder) ---- */

int sae_save_sae_lens(const rs_sae *s, const char *dir, rs_err *err) {
    if (mkdir(dir, 0777) && errno != EEXIST) return rs_errk(err, RS_EIO, "%s: cannot create folder: %s", dir, strerror(errno));
    cJSON *cfg = cJSON_CreateObject(), *meta = cJSON_CreateObject();
    if (!cfg || !meta) {
        cJSON_Delete(cfg);
        cJSON_Delete(meta);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    rs_json_add_num(cfg, "d_in", s->d_in);
    rs_json_add_num(cfg, "d_sae", s->d_sae);
    cJSON_AddStringToObject(cfg, "dtype", "float32");
    cJSON_AddStringToObject(cfg, "device", "cpu");
    cJSON_AddBoolToObject(cfg, "apply_b_dec_to_input", s->apply_b_dec_to_input);
    cJSON_AddStringToObject(cfg, "normalize_activations", sae_norm_name(s->normalize));
    cJSON_AddStringToObject(cfg, "reshape_activations", "none");
    cJSON_AddStringToObject(cfg, "architecture", sae_arch_name(s->arch));
    if (s->arch == SAE_ARCH_TOPK) {
        rs_json_add_num(cfg, "k", s->k);
        cJSON_AddBoolToObject(cfg, "rescale_acts_by_decoder_norm", s->rescale_acts_by_decoder_norm);
    }
    /* sae-lens 6 reads metadata; the version gate decides whether pre-6 handling runs. */
    cJSON_AddStringToObject(meta, "sae_lens_version", "6.0.0");
    cJSON_AddStringToObject(meta, "sae_lens_training_version", "reprshift " RS_VERSION);
    if (s->model_name) cJSON_AddStringToObject(meta, "model_name", s->model_name);
    if (s->hook_name) cJSON_AddStringToObject(meta, "hook_name", s->hook_name);
    cJSON_AddItemToObject(cfg, "metadata", meta);
    char *js = cJSON_Print(cfg);
    cJSON_Delete(cfg);
    if (!js) return rs_errk(err, RS_ENOMEM, "out of memory");
    char *cfg_path = rs_path_join(dir, "cfg.json"), *w_path = rs_path_join(dir, "sae_weights.safetensors");
    int rc = -1;
    rs_atomic_file af = {0};
    st_writer *w = st_writer_new();
    if (!cfg_path || !w_path || !w) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    int64_t se[2] = {s->d_in, s->d_sae}, sd[2] = {s->d_sae, s->d_in}, vs = s->d_sae, vi = s->d_in;
    if (st_writer_add(w, "W_enc", RS_DT_F32, 2, se, s->W_enc, err) || st_writer_add(w, "W_dec", RS_DT_F32, 2, sd, s->W_dec, err) ||
        st_writer_add(w, "b_enc", RS_DT_F32, 1, &vs, s->b_enc, err) || st_writer_add(w, "b_dec", RS_DT_F32, 1, &vi, s->b_dec, err))
        goto done;
    if (s->threshold && st_writer_add(w, "threshold", RS_DT_F32, 1, &vs, s->threshold, err)) goto done;
    if (st_writer_save(w, w_path, err)) goto done;
    if (rs_atomic_open(&af, cfg_path, err) || rs_atomic_write(&af, js, strlen(js), err) ||
        rs_atomic_commit(&af, err))
        goto done;
    rc = 0;
done:
    rs_atomic_abort(&af);
    st_writer_free(w);
    free(js);
    free(cfg_path);
    free(w_path);
    return rc;
}

/* Probe files (safetensors + JSON card), activation loading and label files. The
 * safetensors file alone is enough to use a probe; the card repeats its facts for
 * people and adds metrics and provenance. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsonutil.h"
#include "reprshift/fileio.h"
#include "reprshift/probe_io.h"
#include "reprshift/safetensors.h"
#include "reprshift/version.h"

#define PROBE_FORMAT "reprshift-probe-logreg-v1"
#define PROBE_FORMAT_MLP "reprshift-probe-mlp-v1"

void rs_probe_data_hash(const float *X, size_t nx, const int *y, size_t ny, char out[17]) {
    uint64_t h = 0xcbf29ce484222325ull;
    const unsigned char *p = (const unsigned char *)X;
    for (size_t i = 0; i < nx * sizeof(float); i++) h = (h ^ p[i]) * 0x100000001b3ull;
    for (size_t i = 0; i < ny; i++) {
        int32_t v = y[i];
        const unsigned char *q = (const unsigned char *)&v;
        for (int k = 0; k < 4; k++) h = (h ^ q[k]) * 0x100000001b3ull;
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

static char *card_path(const char *path) {
    size_t n = strlen(path);
    const char *ext = ".safetensors";
    size_t e = strlen(ext);
    char *c = malloc(n + 8);
    if (!c) return NULL;
    if (n > e && !strcmp(path + n - e, ext)) {
        memcpy(c, path, n - e);
        strcpy(c + n - e, ".json");
    } else {
        strcpy(c, path);
        strcat(c, ".json");
    }
    return c;
}

static cJSON *classes_json(const rs_probe *p) {
    cJSON *a = cJSON_CreateArray();
    for (int k = 0; a && k < p->n_classes; k++) {
        cJSON *s = cJSON_CreateString(p->classes[k]);
        if (!s || !cJSON_AddItemToArray(a, s)) { /* out of memory: never a shorter class list */
            cJSON_Delete(s);
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}

int rs_probe_raw_direction(const rs_probe *p, double *W, double *b) {
    if (p->is_mlp) return -1;
    const rs_logreg *m = &p->model;
    int d = m->d;
    for (int r = 0; r < m->n_rows; r++) {
        double c = m->b[r];
        for (int j = 0; j < d; j++) {
            double w = m->W[(size_t)r * d + j];
            if (p->standardized) {
                W[(size_t)r * d + j] = w / p->scaler.scale[j];
                c -= w * p->scaler.mean[j] / p->scaler.scale[j];
            } else W[(size_t)r * d + j] = w;
        }
        b[r] = c;
    }
    return 0;
}

int rs_probe_save(const rs_probe *p, const char *path, rs_err *err) {
    const rs_logreg *m = &p->model;
    const rs_mlp *q = &p->mlp;
    int d = p->is_mlp ? q->d : m->d;
    st_writer *w = st_writer_new();
    char *cls = NULL, *card = NULL, *cpath = card_path(path), num[64];
    cJSON *cj = classes_json(p), *root = cJSON_CreateObject();
    const char *fmt = p->is_mlp ? PROBE_FORMAT_MLP : PROBE_FORMAT;
    int rc = -1;
    double *Wraw = NULL, *braw = NULL;
    if (!w || !cj || !root || !cpath) { rs_errk(err, RS_ENOMEM, "probe save: out of memory"); goto done; }
    cls = cJSON_PrintUnformatted(cj);
    int64_t sd[1] = {d};
    if (p->is_mlp) {
        int64_t s1[2] = {q->d, q->hidden}, s2[1] = {q->hidden}, s3[2] = {q->hidden, q->n_out}, s4[1] = {q->n_out};
        if (st_writer_add(w, "W1", RS_DT_F32, 2, s1, q->W1, err) || st_writer_add(w, "b1", RS_DT_F32, 1, s2, q->b1, err) ||
            st_writer_add(w, "W2", RS_DT_F32, 2, s3, q->W2, err) || st_writer_add(w, "b2", RS_DT_F32, 1, s4, q->b2, err))
            goto done;
    } else {
        int64_t sw[2] = {m->n_rows, m->d}, sb[1] = {m->n_rows};
        /* coef is in the units the model was fitted in (coef_space); coef_raw/intercept_raw
           act on raw activations: coef_raw · x + intercept_raw = the standardised logit */
        Wraw = malloc(sizeof(double) * ((size_t)m->n_rows * m->d + 1));
        braw = malloc(sizeof(double) * (m->n_rows + 1));
        if (!Wraw || !braw) { rs_errk(err, RS_ENOMEM, "probe save: out of memory"); goto done; }
        rs_probe_raw_direction(p, Wraw, braw);
        if (st_writer_add(w, "coef", RS_DT_F64, 2, sw, m->W, err) ||
            st_writer_add(w, "intercept", RS_DT_F64, 1, sb, m->b, err) ||
            st_writer_add(w, "coef_raw", RS_DT_F64, 2, sw, Wraw, err) ||
            st_writer_add(w, "intercept_raw", RS_DT_F64, 1, sb, braw, err)) goto done;
    }
    if (p->standardized &&
        (st_writer_add(w, "scaler_mean", RS_DT_F64, 1, sd, p->scaler.mean, err) ||
         st_writer_add(w, "scaler_scale", RS_DT_F64, 1, sd, p->scaler.scale, err))) goto done;
    snprintf(num, sizeof num, "%.17g", p->is_mlp ? 0.0 : m->C);
    if (st_writer_meta(w, "format", fmt, err) || st_writer_meta(w, "hook", p->hook, err) ||
        st_writer_meta(w, "classes", cls, err) || (!p->is_mlp && st_writer_meta(w, "C", num, err)) ||
        st_writer_meta(w, "standardized", p->standardized ? "1" : "0", err) ||
        (!p->is_mlp && st_writer_meta(w, "coef_space", p->standardized ? "standardized" : "raw", err)) ||
        (!p->is_mlp && st_writer_meta(w, "balanced", m->balanced ? "1" : "0", err)) ||
        (!p->is_mlp && m->penalty == RS_PENALTY_L1 && st_writer_meta(w, "penalty", "l1", err)) ||
        st_writer_meta(w, "data_hash", p->data_hash, err) ||
        st_writer_meta(w, "reprshift_version", RS_VERSION, err)) goto done;
    if (st_writer_save(w, path, err)) goto done;

    cJSON_AddStringToObject(root, "format", fmt);
    cJSON_AddStringToObject(root, "weights", path);
    cJSON_AddStringToObject(root, "hook", p->hook);
    rs_json_add_num(root, "features", d);
    cJSON_AddItemToObject(root, "classes", cj);
    cj = NULL;
    if (p->is_mlp) {
        cJSON_AddStringToObject(root, "model", "MLP: one hidden ReLU layer, Adam, L2, early stopping (sklearn MLPClassifier convention)");
        rs_json_add_num(root, "hidden", q->hidden);
        rs_json_add_num(root, "epochs", q->n_epochs);
        if (!isnan(q->best_val_accuracy)) rs_json_add_num(root, "best_validation_accuracy", q->best_val_accuracy);
        rs_json_add_num(root, "final_train_loss", q->train_loss);
    } else {
        cJSON_AddStringToObject(root, "model", m->n_rows == 1 ? "binary logistic regression (sklearn convention)"
                                                              : "multinomial logistic regression (sklearn convention)");
        rs_json_add_num(root, "C", m->C);
        if (m->penalty == RS_PENALTY_L1) /* absent: l2 (cards of l2 probes are as before) */
            cJSON_AddStringToObject(root, "penalty", "l1: ||W||_1 + C sum_i l_i (intercept not penalised)");
        cJSON_AddStringToObject(root, "class_weight", m->balanced ? "balanced" : "none");
        cJSON_AddStringToObject(root, "coef_space", p->standardized ? "standardized" : "raw");
        cJSON_AddStringToObject(root, "coef_note",
                                p->standardized ? "coef/intercept act on standardised features (x - scaler_mean) / "
                                                  "scaler_scale; coef_raw/intercept_raw act on raw activations and "
                                                  "give the same logits"
                                                : "coef/intercept act on raw activations (coef_raw = coef)");
    }
    cJSON *sc = cJSON_AddObjectToObject(root, "scaler");
    cJSON_AddBoolToObject(sc, "standardized", p->standardized);
    if (p->standardized) {
        cJSON_AddStringToObject(sc, "kind", "StandardScaler (population std, constant features scale 1), fit on training rows");
        cJSON_AddStringToObject(sc, "tensors", "scaler_mean, scaler_scale");
    }
    if (!p->is_mlp) {
        rs_json_add_num(root, "objective", m->objective);
        rs_json_add_num(root, "n_iter", m->n_iter);
        cJSON_AddBoolToObject(root, "converged", m->converged != 0);
    }
    cJSON_AddStringToObject(root, "data_hash_fnv1a64", p->data_hash);
    cJSON_AddStringToObject(root, "reprshift_version", RS_VERSION);
    if (p->metrics_json) {
        cJSON *mj = cJSON_Parse(p->metrics_json);
        if (mj) cJSON_AddItemToObject(root, "metrics", mj);
    }
    card = cJSON_Print(root);
    if (!card) { rs_errk(err, RS_ENOMEM, "probe save: out of memory"); goto done; }
    rs_atomic_file f;
    if (rs_atomic_open(&f, cpath, err)) goto done;
    if (rs_atomic_write(&f, card, strlen(card), err) || rs_atomic_write(&f, "\n", 1, err)) {
        rs_atomic_abort(&f);
        goto done;
    }
    if (rs_atomic_commit(&f, err)) goto done;
    rc = 0;
done:
    st_writer_free(w);
    cJSON_Delete(cj);
    cJSON_Delete(root);
    free(cls); free(card); free(cpath);
    free(Wraw); free(braw);
    return rc;
}

void rs_probe_free(rs_probe *p) {
    free(p->hook);
    if (p->classes)
        for (int k = 0; k < p->n_classes; k++) free(p->classes[k]);
    free(p->classes);
    rs_scaler_free(&p->scaler);
    rs_logreg_free(&p->model);
    rs_mlp_free(&p->mlp);
    free(p->metrics_json);
    memset(p, 0, sizeof *p);
}

static int copy_f64(const st_set *s, const char *name, int64_t numel, double **out, const char *path, rs_err *err) {
    const st_tensor *t = st_get(s, name);
    if (!t) return rs_errf(err, "%s: probe file lacks tensor '%s'", path, name);
    if (t->dtype != RS_DT_F64 || t->numel != numel)
        return rs_errf(err, "%s: tensor '%s' is %s with %lld values, expected F64 with %lld", path, name,
                       rs_dtype_name(t->dtype), (long long)t->numel, (long long)numel);
    *out = malloc(sizeof(double) * (size_t)numel);
    if (!*out) return rs_errk(err, RS_ENOMEM, "%s: out of memory", path);
    memcpy(*out, t->data, sizeof(double) * (size_t)numel);
    return 0;
}

int rs_probe_load(rs_probe *p, const char *path, rs_err *err) {
    memset(p, 0, sizeof *p);
    st_set *s = NULL;
    if (st_open(&s, path, err)) return -1;
    int rc = -1;
    cJSON *cls = NULL;
    const char *fmt = st_meta(s, "format"), *hook = st_meta(s, "hook"), *cj = st_meta(s, "classes");
    const char *C = st_meta(s, "C"), *std = st_meta(s, "standardized"), *bal = st_meta(s, "balanced");
    const char *hash = st_meta(s, "data_hash");
    int is_mlp = fmt && !strcmp(fmt, PROBE_FORMAT_MLP);
    if (!fmt || (strcmp(fmt, PROBE_FORMAT) && !is_mlp)) { rs_errf(err, "%s: not a reprshift probe (format '%s')", path, fmt ? fmt : "missing"); goto done; }
    if (!hook || !cj || (!C && !is_mlp) || !std) { rs_errf(err, "%s: probe metadata incomplete (hook/classes/C/standardized)", path); goto done; }
    cls = cJSON_Parse(cj);
    int K = cls && cJSON_IsArray(cls) ? cJSON_GetArraySize(cls) : 0;
    if (K < 2) { rs_errf(err, "%s: probe 'classes' metadata is not an array of >= 2 labels", path); goto done; }
    int R = K == 2 ? 1 : K, d;
    if (is_mlp) {
        const st_tensor *w1 = st_get(s, "W1"), *w2 = st_get(s, "W2");
        if (!w1 || w1->ndim != 2 || !w2 || w2->ndim != 2) { rs_errf(err, "%s: MLP probe lacks 2-D 'W1'/'W2' tensors", path); goto done; }
        d = (int)w1->shape[0];
        int h = (int)w1->shape[1];
        if (d < 1 || h < 1 || w2->shape[0] != h || w2->shape[1] != R) {
            rs_errf(err, "%s: MLP shapes W1 [%d, %d], W2 [%lld, %lld] do not fit %d classes", path, d, h,
                    (long long)w2->shape[0], (long long)w2->shape[1], K);
            goto done;
        }
    } else {
        const st_tensor *tw = st_get(s, "coef");
        if (!tw || tw->ndim != 2) { rs_errf(err, "%s: probe lacks a 2-D 'coef' tensor", path); goto done; }
        R = (int)tw->shape[0];
        d = (int)tw->shape[1];
        if (R != (K == 2 ? 1 : K) || d < 1) { rs_errf(err, "%s: coef shape [%d, %d] does not fit %d classes", path, R, d, K); goto done; }
    }
    p->hook = strdup(hook);
    p->classes = calloc(K, sizeof(char *));
    if (!p->hook || !p->classes) { rs_errk(err, RS_ENOMEM, "%s: out of memory", path); goto done; }
    p->n_classes = K;
    for (int k = 0; k < K; k++) {
        cJSON *it = cJSON_GetArrayItem(cls, k);
        if (!cJSON_IsString(it)) {
            rs_errf(err, "%s: class %d is not a string", path, k);
            goto done;
        }
        if (!(p->classes[k] = strdup(it->valuestring))) { rs_errk(err, RS_ENOMEM, "%s: out of memory", path); goto done; }
    }
    p->is_mlp = is_mlp;
    if (is_mlp) {
        rs_mlp *q = &p->mlp;
        const st_tensor *w1 = st_get(s, "W1"), *b1 = st_get(s, "b1"), *w2 = st_get(s, "W2"), *b2 = st_get(s, "b2");
        int h = (int)w1->shape[1];
        if (!b1 || !b2 || b1->numel != h || b2->numel != R || w1->dtype != RS_DT_F32 || w2->dtype != RS_DT_F32 ||
            b1->dtype != RS_DT_F32 || b2->dtype != RS_DT_F32) {
            rs_errf(err, "%s: MLP probe tensors b1/b2 missing, or not F32 with %d/%d values", path, h, R);
            goto done;
        }
        size_t np = (size_t)d * h + h + (size_t)h * R + R;
        float *P = malloc(sizeof(float) * np);
        if (!P) { rs_errk(err, RS_ENOMEM, "%s: out of memory", path); goto done; }
        q->d = d; q->hidden = h; q->n_classes = K; q->n_out = R;
        q->W1 = P; q->b1 = P + (size_t)d * h; q->W2 = q->b1 + h; q->b2 = q->W2 + (size_t)h * R;
        memcpy(q->W1, w1->data, sizeof(float) * (size_t)d * h);
        memcpy(q->b1, b1->data, sizeof(float) * h);
        memcpy(q->W2, w2->data, sizeof(float) * (size_t)h * R);
        memcpy(q->b2, b2->data, sizeof(float) * R);
        q->best_val_accuracy = NAN;
    } else {
        rs_logreg *m = &p->model;
        m->d = d; m->n_classes = K; m->n_rows = R;
        m->C = atof(C); m->balanced = bal && !strcmp(bal, "1");
        const char *pen = st_meta(s, "penalty");
        m->penalty = pen && !strcmp(pen, "l1") ? RS_PENALTY_L1 : RS_PENALTY_L2;
        if (copy_f64(s, "coef", (int64_t)R * d, &m->W, path, err) || copy_f64(s, "intercept", R, &m->b, path, err)) goto done;
    }
    p->standardized = !strcmp(std, "1");
    if (p->standardized) {
        p->scaler.d = d;
        if (copy_f64(s, "scaler_mean", d, &p->scaler.mean, path, err) ||
            copy_f64(s, "scaler_scale", d, &p->scaler.scale, path, err)) goto done;
    }
    snprintf(p->data_hash, sizeof p->data_hash, "%s", hash ? hash : "");
    rc = 0;
done:
    cJSON_Delete(cls);
    st_close(s);
    if (rc) rs_probe_free(p);
    return rc;
}

int rs_probe_predict(const rs_probe *p, const float *X, int n, int d, int *pred, rs_err *err) {
    int pd = p->is_mlp ? p->mlp.d : p->model.d;
    if (d != pd) return rs_errf(err, "feature width %d does not match the probe's %d (hook %s)", d, pd, p->hook);
    if (rs_check_finite(X, n, d, err)) return -1;
    const float *use = X;
    float *tmp = NULL;
    if (p->standardized) {
        tmp = malloc(sizeof(float) * (size_t)n * d + 1);
        if (!tmp) return rs_errk(err, RS_ENOMEM, "out of memory for %d x %d features", n, d);
        rs_scaler_apply(&p->scaler, X, n, tmp);
        use = tmp;
    }
    int rc = 0;
    if (p->is_mlp) rc = rs_mlp_predict(&p->mlp, use, n, pred, err);
    else rs_logreg_predict(&p->model, use, n, pred);
    free(tmp);
    return rc;
}

int rs_acts_load(const char *path, const char *hook, float **X, int *n, int *d, rs_err *err) {
    st_set *s = NULL;
    *X = NULL;
    if (st_open(&s, path, err)) return -1;
    const st_tensor *t = st_get(s, hook);
    if (!t) {
        char names[512] = "";
        size_t used = 0;
        for (int i = 0; i < s->n_tensors && used + 4 < sizeof names; i++)
            used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "", s->tensors[i].name);
        rs_errf(err, "%s: no activations for hook '%s' (available: %s)", path, hook, names);
        st_close(s);
        return -1;
    }
    if (t->ndim != 2 || t->shape[0] < 1 || t->shape[1] < 1 || t->shape[0] > INT32_MAX || t->shape[1] > INT32_MAX) {
        rs_errf(err, "%s: tensor '%s' must be pooled activations [rows, width], got %d dims", path, hook, t->ndim);
        st_close(s);
        return -1;
    }
    if (t->dtype != RS_DT_F32 && t->dtype != RS_DT_F16 && t->dtype != RS_DT_BF16 && t->dtype != RS_DT_F64) {
        rs_errf(err, "%s: tensor '%s' has non-float dtype %s", path, hook, rs_dtype_name(t->dtype));
        st_close(s);
        return -1;
    }
    *X = st_to_f32_new(t);
    if (!*X) { st_close(s); return rs_errk(err, RS_ENOMEM, "%s: out of memory for '%s'", path, hook); }
    *n = (int)t->shape[0];
    *d = (int)t->shape[1];
    st_close(s);
    if (rs_check_finite(*X, *n, *d, err)) {
        free(*X);
        *X = NULL;
        return rs_err_prefix(err, "%s: hook %s", path, hook);
    }
    return 0;
}

void rs_labels_free(char **labels, int n) {
    if (!labels) return;
    for (int i = 0; i < n; i++) free(labels[i]);
    free(labels);
}

/* Field `col` of a comma-separated line (no quoting), copied; NULL if absent. */
static char *csv_field(const char *line, int col) {
    const char *s = line;
    for (int c = 0; c < col; c++) {
        s = strchr(s, ',');
        if (!s) return NULL;
        s++;
    }
    size_t len = strcspn(s, ",");
    return strndup(s, len);
}

int rs_labels_read(const char *path, const char *column, char ***labels, int *n, rs_err *err) {
    char *buf;
    size_t len;
    *labels = NULL;
    *n = 0;
    if (rs_read_file(path, (size_t)1 << 30, &buf, &len, err)) return -1;
    size_t cap = 1;
    for (size_t i = 0; i < len; i++) cap += buf[i] == '\n';
    char **out = calloc(cap, sizeof(char *));
    if (!out) { free(buf); return rs_errk(err, RS_ENOMEM, "%s: out of memory", path); }
    int col = -1, count = 0, lineno = 0, rc = 0;
    for (char *line = buf; line && rc == 0; lineno++) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        size_t l = strlen(line);
        if (l && line[l - 1] == '\r') line[--l] = 0;
        if (!nl && l == 0) break; /* trailing newline at EOF */
        if (column && col < 0) { /* header */
            for (int c = 0;; c++) {
                char *f = csv_field(line, c);
                if (!f) break;
                int hit = !strcmp(f, column);
                free(f);
                if (hit) { col = c; break; }
            }
            if (col < 0) rc = rs_errf(err, "%s: header has no column '%s'", path, column);
        } else {
            char *f = column ? csv_field(line, col) : strdup(line);
            if (!f || !*f) {
                free(f);
                rc = rs_errf(err, "%s: line %d: missing label", path, lineno + 1);
            } else if (!rs_utf8_valid(f, strlen(f))) { /* labels end up as JSON/safetensors strings */
                free(f);
                rc = rs_errf(err, "%s: line %d: label is not valid UTF-8", path, lineno + 1);
            } else out[count++] = f;
        }
        line = nl ? nl + 1 : NULL;
    }
    free(buf);
    if (rc) { rs_labels_free(out, count); return -1; }
    if (count == 0) { free(out); return rs_errf(err, "%s: no labels", path); }
    *labels = out;
    *n = count;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Is s a whole decimal integer ("-3", "+7", "10"; no spaces, fits in long long)? */
static int is_integer(const char *s) {
    char *end;
    if (!*s || isspace((unsigned char)*s)) return 0;
    errno = 0;
    (void)strtoll(s, &end, 10);
    return *end == 0 && errno == 0;
}

/* Numeric order for integer labels ("2" < "10"); equal values ("1", "01") by bytes. */
static int cmp_num(const void *a, const void *b) {
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    long long u = strtoll(x, NULL, 10), v = strtoll(y, NULL, 10);
    return u < v ? -1 : u > v ? 1 : strcmp(x, y);
}

int rs_labels_encode(char **labels, int n, int **y, char ***classes, int *K, rs_err *err) {
    char **sorted = malloc(sizeof(char *) * n);
    *y = malloc(sizeof(int) * n);
    if (!sorted || !*y) { free(sorted); free(*y); *y = NULL; return rs_errk(err, RS_ENOMEM, "out of memory for %d labels", n); }
    memcpy(sorted, labels, sizeof(char *) * n);
    int numeric = 1;
    for (int i = 0; i < n && numeric; i++) numeric = is_integer(labels[i]);
    int (*cmp)(const void *, const void *) = numeric ? cmp_num : cmp_str;
    qsort(sorted, n, sizeof(char *), cmp);
    int k = 0;
    for (int i = 0; i < n; i++)
        if (i == 0 || strcmp(sorted[i], sorted[i - 1])) sorted[k++] = sorted[i];
    char **cls = calloc(k, sizeof(char *));
    if (!cls) { free(sorted); free(*y); *y = NULL; return rs_errk(err, RS_ENOMEM, "out of memory"); }
    for (int i = 0; i < k; i++)
        if (!(cls[i] = strdup(sorted[i]))) {
            rs_labels_free(cls, k);
            free(sorted); free(*y); *y = NULL;
            return rs_errk(err, RS_ENOMEM, "out of memory");
        }
    for (int i = 0; i < n; i++) {
        char **hit = bsearch(&labels[i], sorted, k, sizeof(char *), cmp);
        (*y)[i] = (int)(hit - sorted);
    }
    free(sorted);
    *classes = cls;
    *K = k;
    return 0;
}

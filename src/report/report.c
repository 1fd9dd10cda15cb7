/* HTML report writer: reads the results directory (docs/report.md), draws SVG figures with
 * src/report/svg.c and wraps them in one HTML page. Every string from data goes through
 * sb_escape; every figure caption states n and the CI method taken from the file. */
#include "reprshift/report.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/csv.h"
#include "reprshift/fileio.h"
#include "base/jsonutil.h"
#include "report/svg.h"
#include "reprshift/version.h"

#define MAX_LAYER_FIGS 4   /* histograms / rankings drawn for at most this many layers */
#define TOP_N 12           /* bars per ranking */

typedef struct {
    rs_sbuf *b;            /* page body */
    rs_sbuf notes;         /* skipped sections */
    int figs;
    const char *dir;
    char path[4096];       /* file being read, for errors */
} ctx;

typedef struct {
    double v, lo, hi;
} rstat;

/* A number, null, {"value"|"mean", "ci_lo", "ci_hi"} or {"mean", "ci95": [lo, hi]}.
 * Absent → 0; bad shape → error naming file and field. */
static int get_stat(ctx *c, const cJSON *obj, const char *key, const char *where, rstat *s, rs_err *err) {
    s->v = s->lo = s->hi = NAN;
    const cJSON *x = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    if (!x || cJSON_IsNull(x)) return 0;
    if (cJSON_IsNumber(x)) {
        s->v = x->valuedouble;
        return 1;
    }
    if (cJSON_IsObject(x)) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(x, "value");
        if (!v) v = cJSON_GetObjectItemCaseSensitive(x, "mean");
        const cJSON *lo = cJSON_GetObjectItemCaseSensitive(x, "ci_lo"), *hi = cJSON_GetObjectItemCaseSensitive(x, "ci_hi");
        const cJSON *ci = cJSON_GetObjectItemCaseSensitive(x, "ci95");
        if (cJSON_IsArray(ci) && cJSON_GetArraySize(ci) == 2) lo = cJSON_GetArrayItem(ci, 0), hi = cJSON_GetArrayItem(ci, 1);
        int ok = (!v || cJSON_IsNumber(v) || cJSON_IsNull(v)) && (!lo || cJSON_IsNumber(lo) || cJSON_IsNull(lo)) &&
                 (!hi || cJSON_IsNumber(hi) || cJSON_IsNull(hi));
        if (ok) {
            if (cJSON_IsNumber(v)) s->v = v->valuedouble;
            if (cJSON_IsNumber(lo)) s->lo = lo->valuedouble;
            if (cJSON_IsNumber(hi)) s->hi = hi->valuedouble;
            return 1;
        }
    }
    return rs_errf(err, "%s: %s.%s: expected a number or {\"value\", \"ci_lo\", \"ci_hi\"}", c->path, where, key);
}

static const char *get_str(const cJSON *o, const char *key) {
    const cJSON *x = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

/* Required non-negative integer count. */
static int get_n(ctx *c, const cJSON *o, const char *key, const char *where, int64_t *n, rs_err *err) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!rs_json_is_int(x, 0, INT64_C(1) << 53))
        return rs_errf(err, "%s: %s: \"%s\" (a count, needed to state n) is missing or not an integer", c->path, where, key);
    *n = (int64_t)x->valuedouble;
    return 0;
}

/* The file's CI method: "ci" as a string, or {"method", "level"?, "n_boot"?}. Required. */
static int get_ci(ctx *c, const cJSON *o, char *buf, size_t n, rs_err *err) {
    const cJSON *ci = cJSON_GetObjectItemCaseSensitive(o, "ci");
    if (cJSON_IsString(ci)) {
        snprintf(buf, n, "%s", ci->valuestring);
    } else if (cJSON_IsObject(ci) && get_str(ci, "method")) {
        const cJSON *lv = cJSON_GetObjectItemCaseSensitive(ci, "level"), *nb = cJSON_GetObjectItemCaseSensitive(ci, "n_boot");
        int k = snprintf(buf, n, "%s", get_str(ci, "method"));
        if (cJSON_IsNumber(lv) && k > 0 && (size_t)k < n) k += snprintf(buf + k, n - (size_t)k, ", level %g", lv->valuedouble);
        if (cJSON_IsNumber(nb) && k > 0 && (size_t)k < n) snprintf(buf + k, n - (size_t)k, ", %g resamples", nb->valuedouble);
    } else {
        return rs_errf(err, "%s: missing \"ci\" (the confidence-interval method, a string or {\"method\": ...})", c->path);
    }
    const cJSON *nb = cJSON_GetObjectItemCaseSensitive(o, "bootstrap_replicates");
    size_t k = strlen(buf);
    if (cJSON_IsNumber(nb) && k < n) snprintf(buf + k, n - k, ", %g resamples", nb->valuedouble);
    return 0;
}

/* Load DIR/name; 1 = absent (note added), 0 = loaded, -1 = error. */
static int load(ctx *c, const char *name, const char *section, cJSON **out, rs_err *err) {
    *out = NULL;
    snprintf(c->path, sizeof c->path, "%s/%s", c->dir, name);
    if (!rs_path_exists(c->path)) {
        sb_puts(&c->notes, "<li>");
        sb_escape(&c->notes, section);
        sb_puts(&c->notes, ": skipped, no <code>");
        sb_escape(&c->notes, name);
        sb_puts(&c->notes, "</code> in the results directory.</li>\n");
        return 1;
    }
    if (rs_json_load(c->path, REPORT_MAX_FILE_BYTES, out, err)) return -1;
    if (!cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return rs_errf(err, "%s: expected a JSON object at the top level", c->path);
    }
    return 0;
}

static void fig_open(ctx *c) { sb_puts(c->b, "<figure>\n"); }

/* Caption: text pieces are escaped; n and CI are mandatory arguments. */
static void fig_close(ctx *c, const char *what, const char *n_text, const char *ci_text) {
    c->figs++;
    sb_printf(c->b, "<figcaption><b>Figure %d.</b> ", c->figs);
    sb_escape(c->b, what);
    sb_puts(c->b, " <span class=\"n\">n = ");
    sb_escape(c->b, n_text);
    sb_puts(c->b, ".</span> <span class=\"ci\">CI: ");
    sb_escape(c->b, ci_text);
    sb_puts(c->b, ".</span></figcaption>\n</figure>\n");
}

static void n_range(char *buf, size_t n, int64_t lo, int64_t hi, const char *unit) {
    if (lo == hi) snprintf(buf, n, "%lld %s", (long long)lo, unit);
    else snprintf(buf, n, "%lld\xE2\x80\x93%lld %s", (long long)lo, (long long)hi, unit);
}

static void h2(ctx *c, const char *id, const char *title) {
    sb_printf(c->b, "<section id=\"%s\">\n<h2>", id);
    sb_escape(c->b, title);
    sb_puts(c->b, "</h2>\n");
}

/* ---- shift.json ---- */

static const char *base_name(const char *p) {
    const char *s = p ? strrchr(p, '/') : NULL;
    return s ? s + 1 : p;
}

/* Histogram of the cos_raw column of DIR/tokens_<hook>.csv (or inputs_<hook>.csv). */
/* Is entry li of nl sweep layers one of the MAX_LAYER_FIGS drawn in detail? All when they
 * fit, else evenly spread from the first to the last (a 26-layer sweep shows 0, 8, 17, 25). */
static int layer_shown(int li, int nl) {
    if (nl <= MAX_LAYER_FIGS) return 1;
    for (int i = 0; i < MAX_LAYER_FIGS; i++)
        if (li == (int)(((long long)i * (nl - 1) * 2 + (MAX_LAYER_FIGS - 1)) / (2 * (MAX_LAYER_FIGS - 1)))) return 1;
    return 0;
}

static int shift_histogram(ctx *c, const char *hook, const char *label_a, const char *label_b, rs_err *err) {
    char safe[256];
    size_t j = 0;
    for (size_t i = 0; hook[i] && j + 1 < sizeof safe; i++)
        safe[j++] = (hook[i] == '/' || hook[i] == ' ' || hook[i] == '{' || hook[i] == '}') ? '_' : hook[i];
    safe[j] = '\0';
    char path[4096];
    const char *unit = "tokens";
    snprintf(path, sizeof path, "%s/tokens_%s.csv", c->dir, safe);
    if (!rs_path_exists(path)) {
        snprintf(path, sizeof path, "%s/inputs_%s.csv", c->dir, safe);
        unit = "inputs";
        if (!rs_path_exists(path)) return 0;
    }
    rs_csv *t;
    if (rs_csv_load(path, REPORT_MAX_FILE_BYTES, &t, err)) return -1;
    int col = rs_csv_col(t, "cos_raw");
    if (col < 0) {
        rs_csv_free(t);
        return rs_errf(err, "%s: no \"cos_raw\" column", path);
    }
    int64_t n = 0;
    double lo = INFINITY, hi = -INFINITY;
    double *v = malloc(((size_t)t->n_rows + 1) * sizeof *v);
    if (!v) {
        rs_csv_free(t);
        return rs_errk(err, RS_ENOMEM, "%s: out of memory", path);
    }
    for (size_t r = 0; r < t->n_rows; r++) {
        const char *s = rs_csv_cell(t, r, col);
        char *end;
        double x = s && *s ? strtod(s, &end) : NAN;
        if (s && *s && (*end || !isfinite(x))) {
            free(v);
            rs_csv_free(t);
            return rs_errf(err, "%s: line %lld: cos_raw \"%.40s\" is not a number", path, (long long)t->row_line[r], s);
        }
        if (!isfinite(x)) continue;
        v[n++] = x;
        lo = fmin(lo, x), hi = fmax(hi, x);
    }
    rs_csv_free(t);
    if (n == 0) {
        free(v);
        return 0;
    }
    enum { NB = 30 };
    double edges[NB + 1], counts[NB] = {0};
    if (hi - lo < 1e-9) lo -= 0.01, hi += 0.01;
    for (int i = 0; i <= NB; i++) edges[i] = lo + (hi - lo) * i / NB;
    for (int64_t i = 0; i < n; i++) {
        int k = (int)((v[i] - lo) / (hi - lo) * NB);
        counts[k < 0 ? 0 : k >= NB ? NB - 1 : k]++;
    }
    free(v);
    char title[400], ntext[64], what[4800];
    snprintf(title, sizeof title, "Per-%s cosine, %s", unit[0] == 't' ? "token" : "input", hook);
    fig_open(c);
    svg_histogram(c->b, title, "cos(A, B) of raw activations", unit, edges, counts, NB, 460, 280);
    snprintf(ntext, sizeof ntext, "%lld %s", (long long)n, unit);
    snprintf(what, sizeof what, "Distribution of the cosine between %s and %s activations of the same %s (from %s).",
             label_a, label_b, unit[0] == 't' ? "token" : "input", base_name(path));
    fig_close(c, what, ntext, "none (a distribution of single rows)");
    return 0;
}

/* A feature's Neuronpedia page from the results, or NULL unless it is a plain
 * https://www.neuronpedia.org/ address (path characters only), so data cannot smuggle another
 * scheme or site into a link. */
static const char *neuronpedia_url(const char *u) {
    static const char prefix[] = "https://www.neuronpedia.org/";
    if (!u || strncmp(u, prefix, sizeof prefix - 1) || strlen(u) > 400) return NULL;
    for (const char *p = u + sizeof prefix - 1; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("/._-", *p)) return NULL;
    return u;
}

static int shift_rankings(ctx *c, const cJSON *L, const char *hook, int64_t n_rows, const char *label_a,
                          const char *label_b, rs_err *err) {
    /* features whose activation frequency changed most: gained (B more often) and lost */
    const cJSON *tf = cJSON_GetObjectItemCaseSensitive(L, "top_features");
    if (cJSON_IsObject(tf)) {
        const char *lists[2] = {"gained_frequency", "lost_frequency"};
        char *labels[2 * TOP_N];
        const char *np_urls[2 * TOP_N]; /* Neuronpedia page per bar (NULL: none) */
        int64_t ids[2 * TOP_N];
        double vals[2 * TOP_N];
        int grp[2 * TOP_N], n = 0, n_np = 0;
        for (int q = 0; q < 2; q++) {
            const cJSON *arr = cJSON_GetObjectItemCaseSensitive(tf, lists[q]);
            if (!arr) continue;
            if (!cJSON_IsArray(arr)) return rs_errf(err, "%s: top_features.%s: expected an array", c->path, lists[q]);
            int k = 0;
            for (const cJSON *e = arr->child; e && k < TOP_N / 2; e = e->next, k++) {
                rstat fa, fb;
                if (get_stat(c, e, "freq_a", "top_features entry", &fa, err) < 0 ||
                    get_stat(c, e, "freq_b", "top_features entry", &fb, err) < 0)
                    goto fail;
                const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "feature");
                const char *name = get_str(e, "label");
                char lab[256];
                if (!rs_json_is_int(id, 0, INT64_C(1) << 40)) {
                    rs_errf(err, "%s: top_features.%s[%d]: \"feature\" must be an integer", c->path, lists[q], k);
                    goto fail;
                }
                snprintf(lab, sizeof lab, "#%lld%s%s", (long long)id->valuedouble, name ? " " : "", name ? name : "");
                if (!(labels[n] = strdup(lab))) {
                    rs_errk(err, RS_ENOMEM, "out of memory");
                    goto fail;
                }
                ids[n] = (int64_t)id->valuedouble;
                np_urls[n] = neuronpedia_url(get_str(e, "neuronpedia_url"));
                n_np += np_urls[n] != NULL;
                vals[n] = fb.v - fa.v;
                grp[n] = q ? 1 : 2;
                n++;
            }
        }
        if (n) {
            char title[400], ntext[64], what[4800];
            snprintf(title, sizeof title, "Top shifted SAE features, %s", hook);
            svg_bar_opts o = {.title = title, .xlabel = "activation frequency B \xE2\x88\x92 A", .n = n,
                              .labels = (const char *const *)labels, .values = vals, .group = grp};
            fig_open(c);
            svg_bar_chart(c->b, &o);
            if (n_np) {
                /* plain links: the page stays self-contained and renders offline */
                sb_puts(c->b, "<p class=\"np\">On Neuronpedia:");
                for (int i = 0; i < n; i++) {
                    if (!np_urls[i]) continue;
                    sb_puts(c->b, " <a href=\"");
                    sb_escape(c->b, np_urls[i]);
                    sb_printf(c->b, "\">#%lld</a>", (long long)ids[i]);
                }
                sb_puts(c->b, "</p>\n");
            }
            snprintf(ntext, sizeof ntext, "%lld rows per model", (long long)n_rows);
            snprintf(what, sizeof what,
                     "Features that fire more often in %s (green) or in %s (orange) than in the other; frequency = "
                     "share of rows where the feature is active.",
                     label_b, label_a);
            fig_close(c, what, ntext, "none (frequencies over all rows)");
        }
        for (int i = 0; i < n; i++) free(labels[i]);
        return 0;
    fail:
        for (int i = 0; i < n; i++) free(labels[i]);
        return -1;
    }
    (void)label_a, (void)label_b;
    return 0;
}

static int shift_tokens(ctx *c, const cJSON *L, const char *hook, int64_t n_rows, rs_err *err) {
    const char *key = "top_shifted_tokens";
    const cJSON *tt = cJSON_GetObjectItemCaseSensitive(L, key);
    if (!tt) tt = cJSON_GetObjectItemCaseSensitive(L, key = "top_shifted_inputs");
    if (!tt) return 0;
    if (!cJSON_IsArray(tt)) return rs_errf(err, "%s: %s: expected an array", c->path, key);
    char *labels[TOP_N];
    double vals[TOP_N];
    int n = 0;
    for (const cJSON *e = tt->child; e && n < TOP_N; e = e->next) {
        rstat cs;
        if (get_stat(c, e, "cos_raw", key, &cs, err) < 0) {
            for (int i = 0; i < n; i++) free(labels[i]);
            return -1;
        }
        const char *tok = get_str(e, "token");
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(e, "input"), *pos = cJSON_GetObjectItemCaseSensitive(e, "position");
        char lab[300];
        if (tok)
            snprintf(lab, sizeof lab, "\"%.200s\" (input %g, pos %g)", tok, cJSON_IsNumber(in) ? in->valuedouble : NAN,
                     cJSON_IsNumber(pos) ? pos->valuedouble : NAN);
        else
            snprintf(lab, sizeof lab, "input %g", cJSON_IsNumber(in) ? in->valuedouble : NAN);
        if (!(labels[n] = strdup(lab))) {
            for (int i = 0; i < n; i++) free(labels[i]);
            return rs_errk(err, RS_ENOMEM, "out of memory");
        }
        vals[n++] = cs.v;
    }
    if (n) {
        char title[400], ntext[64];
        snprintf(title, sizeof title, "Most shifted %s, %s", strcmp(key, "top_shifted_tokens") ? "inputs" : "tokens", hook);
        svg_bar_opts o = {.title = title, .xlabel = "cos(A, B) of raw activations (lowest first)", .n = n,
                          .labels = (const char *const *)labels, .values = vals};
        fig_open(c);
        svg_bar_chart(c->b, &o);
        snprintf(ntext, sizeof ntext, "%d shown of %lld ranked rows", n, (long long)n_rows);
        fig_close(c, "Rows whose activation direction changed most between the two models.", ntext,
                  "none (single rows)");
    }
    for (int i = 0; i < n; i++) free(labels[i]);
    return 0;
}

/* Null band of metric m in one layer entry: null_mean with [null_lo, null_hi]; 0 if absent. */
static int null_band(const cJSON *L, const char *m, double *y, double *lo, double *hi) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(L, "shift"), m);
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(s, "null_lo"), *b = cJSON_GetObjectItemCaseSensitive(s, "null_hi"),
                *mu = cJSON_GetObjectItemCaseSensitive(s, "null_mean");
    *y = *lo = *hi = NAN;
    if (!cJSON_IsNumber(a) || !cJSON_IsNumber(b)) return 0;
    *lo = a->valuedouble, *hi = b->valuedouble;
    *y = cJSON_IsNumber(mu) ? mu->valuedouble : (*lo + *hi) / 2;
    return 1;
}

/* The floor drawn beside a metric: model B's SAE-misfit floor for feature-space metrics
 * (what the SAE's reconstruction alone does there), B's split-half floor for raw ones. */
static const char *floor_of(const char *m, const char **label) {
    int feat = strstr(m, "_feat") || strstr(m, "jaccard") || strstr(m, "js_") || strstr(m, "pearson");
    *label = feat ? "floor: SAE misfit (B)" : "floor: split-half (B)";
    return feat ? "sae_misfit_b" : "split_half_b";
}

static int floor_stat(const cJSON *L, const char *floor, const char *m, double *y, double *lo, double *hi) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(L, "floors"), floor);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(f, m);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, "value"), *a = cJSON_GetObjectItemCaseSensitive(s, "ci_lo"),
                *b = cJSON_GetObjectItemCaseSensitive(s, "ci_hi");
    *y = *lo = *hi = NAN;
    if (!cJSON_IsNumber(v)) return 0;
    *y = v->valuedouble;
    if (cJSON_IsNumber(a)) *lo = a->valuedouble;
    if (cJSON_IsNumber(b)) *hi = b->valuedouble;
    return 1;
}

static double num_or_nan(const cJSON *o, const char *k) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

/* The layers of one series that survive q < 0.05: for a shift metric (metric != NULL) its
 * `shift.<metric>` p_value / q_value / value, for a probe (metric NULL) the layer's
 * permutation_p / permutation_q / accuracy.value. Appends "0, 3, ..." to lay and the cells
 * "k of n</td><td>layers</td><td>values</td><td>largest q" to row when any survives;
 * returns the number surviving and adds the tested ones to *n_tests. */
static int sig_cells(rs_sbuf *row, const cJSON *layers, const char *metric, int *n_tests) {
    rs_sbuf lay = {0};
    int nt = 0, ns = 0;
    double qmax = NAN, vmin = NAN, vmax = NAN;
    char b1[32], b2[32];
    const cJSON *L;
    cJSON_ArrayForEach(L, layers) {
        const cJSON *m = metric ? cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(L, "shift"), metric) : L;
        double p = num_or_nan(m, metric ? "p_value" : "permutation_p"), q = num_or_nan(m, metric ? "q_value" : "permutation_q");
        double v = num_or_nan(metric ? m : cJSON_GetObjectItemCaseSensitive(L, "accuracy"), "value");
        if (!isfinite(p)) continue;
        nt++;
        if (!(q < 0.05)) continue;
        sb_printf(&lay, "%s%s", ns ? ", " : "", svg_fmt(num_or_nan(L, "layer"), b1, sizeof b1));
        ns++;
        qmax = isnan(qmax) || q > qmax ? q : qmax;
        vmin = isnan(vmin) || v < vmin ? v : vmin;
        vmax = isnan(vmax) || v > vmax ? v : vmax;
    }
    *n_tests += nt;
    if (ns) {
        sb_printf(row, "%d of %d</td><td>", ns, nt);
        if (lay.buf) sb_puts(row, lay.buf);
        sb_printf(row, "</td><td>%s", svg_fmt(vmin, b1, sizeof b1));
        if (vmax != vmin) sb_printf(row, " to %s", svg_fmt(vmax, b2, sizeof b2));
        sb_printf(row, "</td><td>%.3g", qmax);
    }
    sb_free(&lay);
    return ns;
}

/* Table of the comparisons with q < 0.05 over the layers arrays (one per pair; ids NULL
 * for a single unnamed set): one row per (pair, metric) listing the layers that survive,
 * the largest q among them and the range of values. Says how many tests the family has
 * and how many survive. */
static void fdr_table(ctx *c, const cJSON *const *layers, const char *const *ids, int n_sets, const char *family) {
    int n_tests = 0, n_sig = 0;
    rs_sbuf rows = {0};
    for (int q = 0; q < n_sets; q++) {
        /* every metric of any layer (a layer without an SAE has no feature metrics) */
        const char *names[64];
        int nm = 0;
        const cJSON *L;
        cJSON_ArrayForEach(L, layers[q]) {
            const cJSON *m;
            cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(L, "shift")) {
                if (!cJSON_IsObject(m) || !m->string) continue;
                int seen = 0;
                for (int k = 0; k < nm; k++) seen |= !strcmp(names[k], m->string);
                if (!seen && nm < 64) names[nm++] = m->string;
            }
        }
        for (int k = 0; k < nm; k++) {
            const char *metric = names[k];
            rs_sbuf cells = {0};
            int ns = sig_cells(&cells, layers[q], metric, &n_tests);
            n_sig += ns;
            if (ns) {
                sb_puts(&rows, "<tr>");
                if (ids) {
                    sb_puts(&rows, "<td>");
                    sb_escape(&rows, ids[q]);
                    sb_puts(&rows, "</td>");
                }
                sb_puts(&rows, "<td>");
                sb_escape(&rows, metric);
                sb_printf(&rows, "</td><td>%s</td></tr>\n", cells.buf);
            }
            sb_free(&cells);
        }
    }
    sb_puts(c->b, "<p>");
    if (!n_tests) {
        sb_puts(c->b, "No permutation p-values in this file (0 permutations): no comparison is tested.</p>\n");
        sb_free(&rows);
        return;
    }
    sb_printf(c->b, "Comparisons that survive Benjamini&ndash;Hochberg at q &lt; 0.05: <b>%d of %d</b> tests (", n_sig, n_tests);
    sb_escape(c->b, family);
    sb_puts(c->b, "; one-sided permutation p-values of the input pairing; the smallest possible p is "
                  "1/(1 + permutations)). Each metric's value, CI and null band per layer are in the figures "
                  "and in the summary CSV.</p>\n");
    if (n_sig) {
        sb_puts(c->b, "<table class=\"fdr\"><tr>");
        if (ids) sb_puts(c->b, "<th>pair</th>");
        sb_puts(c->b, "<th>metric</th><th>layers significant</th><th>which</th><th>values there</th><th>largest q</th></tr>\n");
        if (rows.buf) sb_puts(c->b, rows.buf);
        sb_puts(c->b, "</table>\n");
    }
    sb_free(&rows);
}

static int sec_shift(ctx *c, rs_err *err) {
    cJSON *j;
    int r = load(c, "shift.json", "Representation shift", &j, err);
    if (r) return r > 0 ? 0 : -1;
    int rc = -1;
    char ci[512], where[64];
    double *x = NULL, *y = NULL, *lo = NULL, *hi = NULL, *buf = NULL;
    if (get_ci(c, j, ci, sizeof ci, err)) goto out;
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(j, "layers");
    int nl = cJSON_IsArray(layers) ? cJSON_GetArraySize(layers) : 0;
    if (nl < 1) {
        rs_errf(err, "%s: \"layers\" must be a non-empty array", c->path);
        goto out;
    }
    const char *la = get_str(j, "model_a"), *lb = get_str(j, "model_b");
    if (!la) la = get_str(j, "acts_a") ? base_name(get_str(j, "acts_a")) : "model A";
    if (!lb) lb = get_str(j, "acts_b") ? base_name(get_str(j, "acts_b")) : "model B";
    h2(c, "shift", "Representation shift");
    sb_puts(c->b, "<p>Model A: <b>");
    sb_escape(c->b, la);
    sb_puts(c->b, "</b>; model B: <b>");
    sb_escape(c->b, lb);
    sb_puts(c->b, "</b>. Source: <code>shift.json</code>.</p>\n<div class=\"grid\">\n");
    /* metrics in order of first appearance */
    const char *metrics[64];
    int nm = 0;
    int64_t nmin = INT64_MAX, nmax = 0, gmin = INT64_MAX, gmax = 0;
    x = calloc((size_t)nl, sizeof *x), y = calloc((size_t)nl, sizeof *y);
    lo = calloc((size_t)nl, sizeof *lo), hi = calloc((size_t)nl, sizeof *hi);
    buf = calloc((size_t)nl * 9, sizeof *buf);
    if (!x || !y || !lo || !hi || !buf) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto out;
    }
    int li = 0;
    for (const cJSON *L = layers->child; L; L = L->next, li++) {
        snprintf(where, sizeof where, "layers[%d]", li);
        if (!cJSON_IsObject(L)) {
            rs_errf(err, "%s: %s: expected an object", c->path, where);
            goto out;
        }
        int64_t nr = 0, ng = 0;
        if (get_n(c, L, "n_rows", where, &nr, err)) goto out;
        if (cJSON_GetObjectItemCaseSensitive(L, "n_groups") && get_n(c, L, "n_groups", where, &ng, err)) goto out;
        nmin = nr < nmin ? nr : nmin, nmax = nr > nmax ? nr : nmax;
        gmin = ng < gmin ? ng : gmin, gmax = ng > gmax ? ng : gmax;
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(L, "shift");
        if (sh && !cJSON_IsObject(sh)) {
            rs_errf(err, "%s: %s.shift: expected an object", c->path, where);
            goto out;
        }
        for (const cJSON *m = sh ? sh->child : NULL; m; m = m->next) {
            if (!cJSON_IsObject(m) || !m->string) continue; /* counts like n_features_alive_a */
            int seen = 0;
            for (int k = 0; k < nm; k++) seen |= !strcmp(metrics[k], m->string);
            if (!seen && nm < 64) metrics[nm++] = m->string;
        }
    }
    /* model B's caption-to-caption floor (dataset.captions_per_image >= 2): drawn beside the
     * split-half floor with its n; unavailable: why, in one line below the figures */
    int64_t cp_img = -1, cp_pairs = -1;
    const char *cp_why = NULL;
    for (const cJSON *L = layers->child; L; L = L->next) {
        const cJSON *cp = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(L, "floors"), "caption_pair_b");
        if (!cp) continue;
        const cJSON *why = cJSON_GetObjectItemCaseSensitive(cp, "unavailable");
        if (cJSON_IsString(why)) {
            if (!cp_why) cp_why = why->valuestring;
        } else if (cp_img < 0) {
            cp_img = (int64_t)num_or_nan(cp, "n_images");
            cp_pairs = (int64_t)num_or_nan(cp, "n_pairs");
        }
    }
    const char *cp_label = "floor: caption pair (B)"; /* its n is in the caption (legends are short) */
    char ntext[128], gtext[64];
    n_range(ntext, sizeof ntext, nmin, nmax, "rows");
    if (gmax > 0) {
        n_range(gtext, sizeof gtext, gmin, gmax, "inputs");
        size_t k = strlen(ntext);
        snprintf(ntext + k, sizeof ntext - k, " (%s) per layer", gtext);
    }
    for (int m = 0; m < nm; m++) {
        li = 0;
        for (const cJSON *L = layers->child; L; L = L->next, li++) {
            snprintf(where, sizeof where, "layers[%d].shift", li);
            rstat s;
            if (get_stat(c, cJSON_GetObjectItemCaseSensitive(L, "shift"), metrics[m], where, &s, err) < 0) goto out;
            const cJSON *lx = cJSON_GetObjectItemCaseSensitive(L, "layer");
            x[li] = cJSON_IsNumber(lx) ? lx->valuedouble : li;
            y[li] = s.v, lo[li] = s.lo, hi[li] = s.hi;
        }
        /* beside the estimate: the permutation null's band and the floor */
        const char *flabel, *fname = floor_of(metrics[m], &flabel);
        double *ny = buf, *nlo = buf + nl, *nhi = buf + 2 * nl, *fy = buf + 3 * nl, *flo = buf + 4 * nl, *fhi = buf + 5 * nl;
        double *cy = buf + 6 * nl, *clo = buf + 7 * nl, *chi = buf + 8 * nl;
        int has_null = 0, has_floor = 0, has_cp = 0;
        li = 0;
        for (const cJSON *L = layers->child; L; L = L->next, li++) {
            has_null |= null_band(L, metrics[m], &ny[li], &nlo[li], &nhi[li]);
            has_floor |= floor_stat(L, fname, metrics[m], &fy[li], &flo[li], &fhi[li]);
            if (!strcmp(fname, "split_half_b")) has_cp |= floor_stat(L, "caption_pair_b", metrics[m], &cy[li], &clo[li], &chi[li]);
        }
        svg_series S[4] = {{.name = metrics[m], .n = nl, .x = x, .y = y, .lo = lo, .hi = hi}};
        int ns = 1;
        if (has_null) S[ns++] = (svg_series){.name = "permutation null (95%)", .n = nl, .x = x, .y = ny, .lo = nlo, .hi = nhi};
        if (has_floor) S[ns++] = (svg_series){.name = flabel, .n = nl, .x = x, .y = fy, .lo = flo, .hi = fhi};
        if (has_cp) S[ns++] = (svg_series){.name = cp_label, .n = nl, .x = x, .y = cy, .lo = clo, .hi = chi};
        svg_line_opts o = {.title = metrics[m], .xlabel = "layer", .ylabel = metrics[m], .n_series = ns,
                           .series = S, .integer_x = 1, .width = 400, .height = 260};
        fig_open(c);
        svg_line_plot(c->b, &o);
        char what[900], cpw[200] = "";
        if (has_cp)
            snprintf(cpw, sizeof cpw,
                     " Caption-pair floor: model B, each caption's mean vs the next caption of the same image "
                     "(%lld images, %lld pairs; bootstrap over images).",
                     (long long)cp_img, (long long)cp_pairs);
        snprintf(what, sizeof what, "%s between A and B by layer; band and bars: CI.%s%s%s", metrics[m],
                 has_null ? " The permutation null (inputs re-paired) shows its mean and 95% band." : "",
                 has_floor ? (strstr(flabel, "SAE") ? " Floor: the same metric between model B's activations and "
                                                      "its SAE reconstruction (the SAE's misfit alone)."
                                                    : " Floor: model B against itself, even vs odd token halves of "
                                                      "each input (within-model variation).")
                           : "",
                 cpw);
        fig_close(c, what, ntext, ci);
    }
    sb_puts(c->b, "</div>\n");
    if (cp_why) {
        sb_puts(c->b, "<p class=\"note\">Caption-to-caption floor not available: ");
        sb_escape(c->b, cp_why);
        sb_puts(c->b, ".</p>\n");
    }
    fdr_table(c, &layers, NULL, 1, "family: metric \xC3\x97 layer of shift.json");
    sb_puts(c->b, "<div class=\"grid\">\n");
    li = 0;
    for (const cJSON *L = layers->child; L; L = L->next, li++) {
        if (!layer_shown(li, nl)) continue;
        const char *hook = get_str(L, "hook");
        if (!hook) hook = "activations";
        if (shift_histogram(c, hook, la, lb, err)) goto out;
    }
    sb_puts(c->b, "</div>\n<div class=\"grid\">\n");
    li = 0;
    for (const cJSON *L = layers->child; L; L = L->next, li++) {
        if (!layer_shown(li, nl)) continue;
        const char *hook = get_str(L, "hook");
        if (!hook) hook = "activations";
        int64_t nr = 0;
        get_n(c, L, "n_rows", "layer", &nr, err);
        if (shift_rankings(c, L, hook, nr, la, lb, err) || shift_tokens(c, L, hook, nr, err)) goto out;
    }
    sb_puts(c->b, "</div>\n");
    if (nl > MAX_LAYER_FIGS)
        sb_printf(c->b, "<p class=\"note\">Histograms and rankings are shown for %d of the %d layers, spread "
                        "evenly from the first to the last.</p>\n", MAX_LAYER_FIGS, nl);
    sb_puts(c->b, "</section>\n");
    rc = 0;
out:
    free(x), free(y), free(lo), free(hi), free(buf);
    cJSON_Delete(j);
    return rc;
}

/* ---- sae_fit.json ---- */

static int sec_sae(ctx *c, rs_err *err) {
    cJSON *j;
    int r = load(c, "sae_fit.json", "SAE fit", &j, err);
    if (r) return r > 0 ? 0 : -1;
    int rc = -1;
    char ci[512], where[64];
    const char *metrics[64];
    int nm = 0;
    char *labels[256] = {0};
    double *v = NULL, *lo = NULL, *hi = NULL;
    if (get_ci(c, j, ci, sizeof ci, err)) goto out;
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(j, "models");
    int n = cJSON_IsArray(models) ? cJSON_GetArraySize(models) : 0;
    if (n < 1 || n > 256) {
        rs_errf(err, "%s: \"models\" must be an array of 1..256 entries", c->path);
        goto out;
    }
    v = calloc((size_t)n, sizeof *v), lo = calloc((size_t)n, sizeof *lo), hi = calloc((size_t)n, sizeof *hi);
    if (!v || !lo || !hi) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto out;
    }
    char ntext[512] = "";
    size_t nt = 0;
    int i = 0;
    /* CE-loss recovered first: it is the headline number */
    metrics[nm++] = "ce_loss_recovered";
    for (const cJSON *M = models->child; M; M = M->next, i++) {
        snprintf(where, sizeof where, "models[%d]", i);
        const char *name = get_str(M, "model");
        const cJSON *mm = cJSON_GetObjectItemCaseSensitive(M, "metrics");
        int64_t nr = 0;
        if (!name || !cJSON_IsObject(mm)) {
            rs_errf(err, "%s: %s: needs \"model\" (string) and \"metrics\" (object)", c->path, where);
            goto out;
        }
        if (get_n(c, M, "n_rows", where, &nr, err)) goto out;
        const char *sae = get_str(M, "sae");
        char lab[300];
        snprintf(lab, sizeof lab, "%s", name);
        if (!(labels[i] = strdup(lab))) {
            rs_errk(err, RS_ENOMEM, "out of memory");
            goto out;
        }
        if (nt < sizeof ntext)
            nt += (size_t)snprintf(ntext + nt, sizeof ntext - nt, "%s%s: %lld rows%s%s", i ? "; " : "", name,
                                   (long long)nr, sae ? ", SAE " : "", sae ? sae : "");
        for (const cJSON *m = mm->child; m; m = m->next) {
            if (!m->string) continue;
            int seen = 0;
            for (int k = 0; k < nm; k++) seen |= !strcmp(metrics[k], m->string);
            if (!seen && nm < 64) metrics[nm++] = m->string;
        }
    }
    h2(c, "sae", "SAE fit per model");
    sb_puts(c->b, "<p>How well the SAE reconstructs each model's activations. Source: <code>sae_fit.json</code>.</p>\n"
                  "<div class=\"grid\">\n");
    for (int m = 0; m < nm; m++) {
        int any = 0;
        i = 0;
        for (const cJSON *M = models->child; M; M = M->next, i++) {
            snprintf(where, sizeof where, "models[%d].metrics", i);
            rstat s;
            int got = get_stat(c, cJSON_GetObjectItemCaseSensitive(M, "metrics"), metrics[m], where, &s, err);
            if (got < 0) goto out;
            any |= got;
            v[i] = s.v, lo[i] = s.lo, hi[i] = s.hi;
        }
        if (!any) continue;
        svg_bar_opts o = {.title = metrics[m], .xlabel = metrics[m], .n = n, .labels = (const char *const *)labels,
                          .values = v, .lo = lo, .hi = hi, .width = 460};
        fig_open(c);
        svg_bar_chart(c->b, &o);
        char what[300];
        snprintf(what, sizeof what, "%s per model%s.", metrics[m],
                 !strcmp(metrics[m], "ce_loss_recovered") ? " (1 = splicing in the SAE reconstruction costs no loss, 0 = "
                                                          "as bad as zero-ablation)"
                                                        : "");
        fig_close(c, what, ntext, ci);
    }
    sb_puts(c->b, "</div>\n</section>\n");
    rc = 0;
out:
    for (int k = 0; k < 256; k++) free(labels[k]);
    free(v), free(lo), free(hi);
    cJSON_Delete(j);
    return rc;
}

/* ---- probes.json ---- */

/* Probes whose permutation test survives Benjamini–Hochberg (permutation_q < 0.05; the
 * family is the whole probes.json): one row per task and model of this group. */
static void probe_fdr_table(ctx *c, const cJSON *tasks, int attribute) {
    int n_tests = 0, n_sig = 0;
    rs_sbuf rows = {0};
    const cJSON *T;
    cJSON_ArrayForEach(T, tasks) {
        const char *kind = get_str(T, "kind");
        if ((kind && !strcmp(kind, "attribute")) != attribute) continue;
        rs_sbuf cells = {0};
        int ns = sig_cells(&cells, cJSON_GetObjectItemCaseSensitive(T, "layers"), NULL, &n_tests);
        n_sig += ns;
        if (ns) {
            sb_puts(&rows, "<tr><td>");
            sb_escape(&rows, get_str(T, "task") ? get_str(T, "task") : "?");
            sb_puts(&rows, "</td><td>");
            sb_escape(&rows, get_str(T, "model") ? get_str(T, "model") : "?");
            sb_printf(&rows, "</td><td>%s</td></tr>\n", cells.buf);
        }
        sb_free(&cells);
    }
    if (n_tests) {
        sb_printf(c->b, "<p>Probes whose label-permutation test survives Benjamini&ndash;Hochberg at q &lt; 0.05 "
                        "(family: every permutation p-value in probes.json): <b>%d of %d</b> tests here.</p>\n",
                  n_sig, n_tests);
        if (n_sig) {
            sb_puts(c->b, "<table class=\"fdr\"><tr><th>task</th><th>model</th><th>layers significant</th><th>which</th>"
                          "<th>accuracy there</th><th>largest q</th></tr>\n");
            if (rows.buf) sb_puts(c->b, rows.buf);
            sb_puts(c->b, "</table>\n");
        }
    }
    sb_free(&rows);
}

/* Hewitt & Liang control tasks of this group: per task, model and layer the selectivity
 * (accuracy − control-task accuracy) with the control accuracy, and the share of test rows
 * whose control type also occurs in training (a control task is informative only when types
 * recur). Rows only for tasks that ran a control task. */
static void probe_control_table(ctx *c, const cJSON *tasks, int attribute) {
    rs_sbuf rows = {0};
    int n_rows = 0, max_layers = 0;
    const cJSON *T;
    cJSON_ArrayForEach(T, tasks) {
        const char *kind = get_str(T, "kind");
        if ((kind && !strcmp(kind, "attribute")) != attribute) continue;
        const cJSON *layers = cJSON_GetObjectItemCaseSensitive(T, "layers"), *L;
        rs_sbuf cells = {0};
        int nl = 0, any = 0;
        double ov = NAN;
        cJSON_ArrayForEach(L, layers) {
            double sel = num_or_nan(L, "selectivity"), ctl = num_or_nan(L, "control_accuracy");
            double acc = num_or_nan(cJSON_GetObjectItemCaseSensitive(L, "accuracy"), "value");
            const cJSON *lx = cJSON_GetObjectItemCaseSensitive(L, "layer");
            if (isfinite(num_or_nan(L, "control_type_overlap"))) ov = num_or_nan(L, "control_type_overlap");
            if (isfinite(sel)) {
                any = 1;
                sb_printf(&cells, "<td>%s%d: <b>%+.2f</b> (%.2f &minus; %.2f)</td>", cJSON_IsNumber(lx) ? "" : "#",
                          cJSON_IsNumber(lx) ? (int)lx->valuedouble : nl, sel, acc, ctl);
            } else {
                sb_puts(&cells, "<td>&ndash;</td>");
            }
            nl++;
        }
        if (any) {
            sb_puts(&rows, "<tr><td>");
            sb_escape(&rows, get_str(T, "task") ? get_str(T, "task") : "?");
            sb_puts(&rows, "</td><td>");
            sb_escape(&rows, get_str(T, "model") ? get_str(T, "model") : "?");
            sb_printf(&rows, "</td><td>%.2f</td>%s</tr>\n", ov, cells.buf ? cells.buf : "");
            n_rows++;
            if (nl > max_layers) max_layers = nl;
        }
        sb_free(&cells);
    }
    if (n_rows) {
        sb_puts(c->b, "<p>Control tasks (Hewitt &amp; Liang): each control type (concept probes: the image&rsquo;s "
                      "COCO category; attribute and modality probes: the image&rsquo;s concept) gets a random label, "
                      "the same for every row of that type, and the probe is trained on those labels with the same "
                      "protocol. <b>Selectivity</b> = accuracy &minus; control-task accuracy (layer: selectivity "
                      "(accuracy &minus; control)); a probe that only memorises types scores high on both. "
                      "Overlap: share of test rows whose type also occurs in training (low overlap makes the "
                      "control task uninformative). Source: <code>probes.json</code>.</p>\n"
                      "<table class=\"fdr\"><tr><th>task</th><th>model</th><th>type overlap</th>");
        sb_printf(c->b, "<th colspan=\"%d\">layer: selectivity (accuracy &minus; control)</th></tr>\n", max_layers);
        if (rows.buf) sb_puts(c->b, rows.buf);
        sb_puts(c->b, "</table>\n");
    }
    sb_free(&rows);
}

static int attr_transfer(ctx *c, rs_err *err);

static int probe_group(ctx *c, const cJSON *tasks, int attribute, const char *ci, rs_err *err) {
    /* distinct task names of this group, in order */
    const char *names[128];
    int nn = 0;
    for (const cJSON *T = tasks->child; T; T = T->next) {
        const char *kind = get_str(T, "kind");
        if ((kind && !strcmp(kind, "attribute")) != attribute) continue;
        const char *name = get_str(T, "task");
        int seen = 0;
        for (int k = 0; k < nn; k++) seen |= !strcmp(names[k], name);
        if (!seen && nn < 128) names[nn++] = name;
    }
    if (!nn) return 0;
    h2(c, attribute ? "attributes" : "probes", attribute ? "Attribute probes by layer" : "Probe accuracy by layer");
    sb_puts(c->b, attribute ? "<p>Can a linear probe read an image attribute (brightness, redness, ...) from the "
                              "representation? Source: <code>probes.json</code>.</p>\n"
                            : "<p>Linear probe accuracy on held-out rows, per layer and model. Source: "
                              "<code>probes.json</code>.</p>\n");
    sb_puts(c->b, "<div class=\"grid\">\n");
    int rc = -1;
    for (int t = 0; t < nn; t++) {
        svg_series S[16];
        double *buf[16 * 4] = {0};
        int ns = 0;
        int64_t nmin = INT64_MAX, nmax = 0;
        double chance = NAN;
        int ti = 0;
        for (const cJSON *T = tasks->child; T; T = T->next, ti++) {
            if (strcmp(get_str(T, "task"), names[t]) || ns == 16) continue;
            const char *kind = get_str(T, "kind");
            if ((kind && !strcmp(kind, "attribute")) != attribute) continue;
            const cJSON *layers = cJSON_GetObjectItemCaseSensitive(T, "layers");
            int nl = cJSON_IsArray(layers) ? cJSON_GetArraySize(layers) : 0;
            if (nl < 1) {
                rs_errf(err, "%s: tasks[%d]: \"layers\" must be a non-empty array", c->path, ti);
                goto fail;
            }
            rstat ch;
            char where[64];
            snprintf(where, sizeof where, "tasks[%d]", ti);
            if (get_stat(c, T, "chance", where, &ch, err) < 0) goto fail;
            if (isfinite(ch.v)) chance = ch.v;
            for (int k = 0; k < 4; k++) buf[ns * 4 + k] = calloc((size_t)nl, sizeof(double));
            double *x = buf[ns * 4], *y = buf[ns * 4 + 1], *lo = buf[ns * 4 + 2], *hi = buf[ns * 4 + 3];
            if (!x || !y || !lo || !hi) {
                ns++;
                rs_errk(err, RS_ENOMEM, "out of memory");
                goto fail;
            }
            int li = 0;
            for (const cJSON *L = layers->child; L; L = L->next, li++) {
                snprintf(where, sizeof where, "tasks[%d].layers[%d]", ti, li);
                int64_t n = 0;
                rstat a;
                if (get_n(c, L, "n_test", where, &n, err) || get_stat(c, L, "accuracy", where, &a, err) < 0) {
                    ns++;
                    goto fail;
                }
                nmin = n < nmin ? n : nmin, nmax = n > nmax ? n : nmax;
                const cJSON *lx = cJSON_GetObjectItemCaseSensitive(L, "layer");
                x[li] = cJSON_IsNumber(lx) ? lx->valuedouble : li;
                y[li] = a.v, lo[li] = a.lo, hi[li] = a.hi;
            }
            const char *model = get_str(T, "model");
            S[ns] = (svg_series){.name = model ? model : "model", .n = nl, .x = x, .y = y, .lo = lo, .hi = hi};
            ns++;
        }
        svg_line_opts o = {.title = names[t], .xlabel = "layer", .ylabel = "accuracy", .n_series = ns, .series = S,
                           .fixed_y = 1, .ymin = 0, .ymax = 1, .has_hline = isfinite(chance), .hline = chance,
                           .hline_label = "chance", .integer_x = 1, .width = 400, .height = 260};
        fig_open(c);
        svg_line_plot(c->b, &o);
        char ntext[96], what[300];
        n_range(ntext, sizeof ntext, nmin, nmax, "test rows per point");
        snprintf(what, sizeof what, "Probe accuracy for \xE2\x80\x9C%s\xE2\x80\x9D by layer, one line per model; band and bars: CI; dashed: chance.",
                 names[t]);
        fig_close(c, what, ntext, ci);
        for (int k = 0; k < ns * 4; k++) free(buf[k]);
        continue;
    fail:
        for (int k = 0; k < ns * 4; k++) free(buf[k]);
        return rc;
    }
    sb_puts(c->b, "</div>\n");
    probe_fdr_table(c, tasks, attribute);
    probe_control_table(c, tasks, attribute);
    if (attribute) {
        char saved[sizeof c->path];
        memcpy(saved, c->path, sizeof saved);
        if (attr_transfer(c, err)) return -1;
        memcpy(c->path, saved, sizeof saved); /* errors after this point name probes.json */
    }
    sb_puts(c->b, "</section>\n");
    return 0;
}

static int str_array(ctx *c, const cJSON *o, const char *key, const char *where, int max, char ***out, int *n,
                     rs_err *err);
/* ---- attribute_transfer.json (reprshift run): the attribute probes across edits ---- */

/* Cell (r, k) of a matrix's "values" as a stat (null → NaN). */
static int matrix_cell(ctx *c, const cJSON *vals, int r, int k, const char *where, rstat *s, rs_err *err) {
    const cJSON *R = cJSON_GetArrayItem(vals, r), *e = cJSON_IsArray(R) ? cJSON_GetArrayItem(R, k) : NULL;
    if (!e) return rs_errf(err, "%s: %s.values[%d][%d]: missing", c->path, where, r, k);
    cJSON tmp = *e, holder;
    tmp.string = (char *)"cell";
    tmp.next = tmp.prev = NULL;
    memset(&holder, 0, sizeof holder);
    holder.type = cJSON_Object;
    holder.child = &tmp;
    char w2[96];
    snprintf(w2, sizeof w2, "%s.values[%d]", where, r);
    return get_stat(c, &holder, "cell", w2, s, err) < 0 ? -1 : 0;
}

/* "brightness 0.6" → name length 10, strength 0.6; 0 if the label has no trailing number. */
static int edit_label(const char *lab, size_t *name_len, double *strength) {
    const char *sp = strrchr(lab, ' ');
    if (!sp || sp == lab) return 0;
    char *end;
    *strength = strtod(sp + 1, &end);
    if (end == sp + 1 || *end) return 0;
    *name_len = (size_t)(sp - lab);
    return 1;
}

static int same_edit(const char *a, const char *b) {
    size_t la, lb;
    double sa, sb;
    return edit_label(a, &la, &sa) && edit_label(b, &lb, &sb) && la == lb && !strncmp(a, b, la);
}

typedef struct {
    double s;
    int i;
} strength_ix;

static int cmp_strength(const void *a, const void *b) {
    double x = ((const strength_ix *)a)->s, y = ((const strength_ix *)b)->s;
    return (x > y) - (x < y);
}

#define ATTR_MAX_LINES 8 /* hooks drawn per dose-response figure (spread evenly when more) */

/* Dose-response figures (each edit with >= 2 strengths: the diagonal accuracy, original vs
 * that edit, by strength, one line per hook) and the transfer matrix of each hook as a table. */
/* "luminance" of attribute_transfer.json (absent in runs made before it existed): per edit
 * variant, the mean change of BT.601 luma and of linear-light Y over the base images, and
 * one sentence on what the luminance-controlled redness keeps. */
#define LUM_KEPT 0.005 /* |mean change| below this (on the 0..1 scale) reads as kept */
static int attr_luminance(ctx *c, const cJSON *arr, rs_err *err) {
    if (!arr) return 0;
    if (!cJSON_IsArray(arr)) return rs_errf(err, "%s: \"luminance\" must be an array", c->path);
    int64_t n_min = INT64_MAX, n_max = 0;
    int i = 0;
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        char where[32];
        int64_t n = 0;
        snprintf(where, sizeof where, "luminance[%d]", i);
        if (!get_str(e, "edit")) return rs_errf(err, "%s: %s: \"edit\" must be a string", c->path, where);
        if (get_n(c, e, "n_images", where, &n, err)) return -1;
        n_min = n < n_min ? n : n_min, n_max = n > n_max ? n : n_max;
    }
    if (i == 0) return 0;
    char ntext[96];
    n_range(ntext, sizeof ntext, n_min, n_max, "images");
    sb_puts(c->b, "<p>Luminance of the edited images: mean change (edited &minus; original) over the base images of "
                  "BT.601 luma 0.299R + 0.587G + 0.114B on the gamma-encoded values and of linear-light relative "
                  "luminance Y = 0.2126R + 0.7152G + 0.0722B (sRGB decoded to linear light), both on a 0 to 1 scale; "
                  "95% percentile bootstrap CI over images. n = ");
    sb_escape(c->b, ntext);
    sb_puts(c->b, ".</p>\n<table class=\"fdr\"><caption>Luminance change by edit</caption>\n<tr><th>Edit</th>"
                  "<th>&Delta;luma BT.601 [95% CI]</th><th>&Delta;Y linear [95% CI]</th><th>n</th></tr>\n");
    rs_sbuf said = {0};
    i = 0;
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        char where[32];
        snprintf(where, sizeof where, "luminance[%d]", i);
        rstat l, y;
        int64_t n = 0;
        if (get_stat(c, e, "d_luma_bt601", where, &l, err) < 0 || get_stat(c, e, "d_linear_Y", where, &y, err) < 0 ||
            get_n(c, e, "n_images", where, &n, err)) {
            sb_free(&said);
            return -1;
        }
        const char *name = get_str(e, "edit");
        double v = num_or_nan(e, "value");
        char lab[160];
        snprintf(lab, sizeof lab, "%s %g", name, v);
        sb_puts(c->b, "<tr><th>");
        sb_escape(c->b, lab);
        char f[6][24];
        const double fv[6] = {l.v, l.lo, l.hi, y.v, y.lo, y.hi};
        for (int q = 0; q < 6; q++) {
            if (isfinite(fv[q])) snprintf(f[q], sizeof f[q], "%+.4f", fv[q]);
            else snprintf(f[q], sizeof f[q], "&ndash;");
        }
        sb_printf(c->b, "</th><td>%s [%s, %s]</td><td>%s [%s, %s]</td><td>%lld</td></tr>\n", f[0], f[1], f[2], f[3],
                  f[4], f[5], (long long)n);
        if ((!strcmp(name, "redness") || !strcmp(name, "redness_luma")) && isfinite(l.v) && isfinite(y.v)) {
            int kl = fabs(l.v) < LUM_KEPT, ky = fabs(y.v) < LUM_KEPT;
            sb_printf(&said, " The luminance-controlled %s %s BT.601 luma (&Delta; %+.4f) %s linear-light luminance "
                             "(&Delta;Y %+.4f).",
                      lab, kl ? "keeps" : "does not keep", l.v, kl == ky ? (ky ? "and" : "nor") : (ky ? "but keeps" : "but not"),
                      y.v);
        }
    }
    sb_puts(c->b, "</table>\n");
    sb_printf(c->b, "<p>Kept: |&Delta;| below %.3f.", LUM_KEPT);
    if (said.len) sb_puts(c->b, said.buf);
    sb_puts(c->b, "</p>\n");
    sb_free(&said);
    return 0;
}

static int attr_transfer(ctx *c, rs_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/attribute_transfer.json", c->dir);
    if (!rs_path_exists(path)) return 0; /* written by `reprshift run` with >= 2 edit variants */
    cJSON *j;
    int r = load(c, "attribute_transfer.json", "Attribute probes across edits", &j, err);
    if (r) return r > 0 ? 0 : -1;
    int rc = -1, nm = 0;
    char ci[512];
    char **rows0 = NULL, **cols0 = NULL;
    double *buf = NULL;
    if (get_ci(c, j, ci, sizeof ci, err)) goto out;
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(j, "matrices");
    nm = cJSON_IsArray(ms) ? cJSON_GetArraySize(ms) : 0;
    if (nm < 1) {
        rs_errf(err, "%s: \"matrices\" must be a non-empty array", c->path);
        goto out;
    }
    /* every matrix: square, the same labels as the first, values [n][n] of stats, n_images */
    int nv = 0;
    int64_t nimg_min = INT64_MAX, nimg_max = 0;
    int mi = 0;
    for (const cJSON *M = ms->child; M; M = M->next, mi++) {
        char where[32];
        snprintf(where, sizeof where, "matrices[%d]", mi);
        char **rr = NULL, **cc = NULL;
        int nr = 0, nc = 0;
        int64_t ni = 0;
        if (!cJSON_IsObject(M) || str_array(c, M, "rows", where, 64, &rr, &nr, err) ||
            str_array(c, M, "cols", where, 64, &cc, &nc, err) || get_n(c, M, "n_images", where, &ni, err)) {
            if (!cJSON_IsObject(M)) rs_errf(err, "%s: %s: expected an object", c->path, where);
            free(rr), free(cc);
            goto out;
        }
        int bad = nr != nc || (mi > 0 && nr != nv);
        for (int k = 0; k < nr && !bad; k++) bad = strcmp(rr[k], cc[k]) || (mi > 0 && strcmp(rr[k], rows0[k]));
        const cJSON *vals = cJSON_GetObjectItemCaseSensitive(M, "values");
        if (!bad && (!cJSON_IsArray(vals) || cJSON_GetArraySize(vals) != nr)) bad = 1;
        if (bad) {
            rs_errf(err, "%s: %s: rows and cols must be the same edit labels in every matrix, values [rows][cols]",
                    c->path, where);
            free(rr), free(cc);
            goto out;
        }
        if (mi == 0) rows0 = rr, cols0 = cc, nv = nr;
        else free(rr), free(cc);
        nimg_min = ni < nimg_min ? ni : nimg_min, nimg_max = ni > nimg_max ? ni : nimg_max;
    }
    sb_puts(c->b, "<h3>Attribute probes across edits</h3>\n<p>Source: <code>attribute_transfer.json</code>. Each "
                  "probe separates the original images from one edited variant; the same probe is then tested on "
                  "every other variant.");
    int has_red = 0, has_plain = 0;
    for (int k = 0; k < nv; k++) {
        has_red |= !strncmp(rows0[k], "redness ", 8) || !strncmp(rows0[k], "redness_luma ", 13);
        has_plain |= !strncmp(rows0[k], "redness_plain ", 14);
    }
    if (has_red || has_plain)
        sb_puts(c->b, " <b>redness</b> (the default; <b>redness_luma</b> in runs made before the rename): the red "
                      "channel scaled and green and blue shifted to keep BT.601 luma 0.299R + 0.587G + 0.114B "
                      "(luminance-controlled on the gamma-encoded 8-bit values; linear-light luminance is not "
                      "controlled, see the luminance table below). <b>redness_plain</b>: the red channel scaled only "
                      "(brightness changes with it).");
    sb_puts(c->b, "</p>\n<div class=\"grid\">\n");
    char ntext[96];
    n_range(ntext, sizeof ntext, nimg_min, nimg_max, "images (each original and edited)");
    /* dose-response: edits with >= 2 strengths */
    strength_ix *sx = calloc((size_t)nv + 1, sizeof *sx);
    buf = calloc((size_t)ATTR_MAX_LINES * 4 * (size_t)(nv + 1), sizeof *buf);
    if (!sx || !buf) {
        free(sx);
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto out;
    }
    for (int k = 0; k < nv; k++) {
        size_t ln;
        double st;
        if (!edit_label(rows0[k], &ln, &st)) continue;
        int first = 1;
        for (int q = 0; q < k && first; q++) first = !same_edit(rows0[q], rows0[k]);
        if (!first) continue;
        int ns = 0;
        for (int q = k; q < nv; q++)
            if (same_edit(rows0[q], rows0[k])) {
                edit_label(rows0[q], &ln, &sx[ns].s);
                sx[ns++].i = q;
            }
        if (ns < 2) continue;
        qsort(sx, (size_t)ns, sizeof *sx, cmp_strength);
        svg_series S[ATTR_MAX_LINES];
        int nl = 0, shown = 0;
        mi = 0;
        for (const cJSON *M = ms->child; M; M = M->next, mi++) {
            /* at most ATTR_MAX_LINES hooks, spread evenly from the first to the last */
            int keep = nm <= ATTR_MAX_LINES;
            for (int t = 0; t < ATTR_MAX_LINES && !keep; t++)
                keep = mi == (int)((double)t * (nm - 1) / (ATTR_MAX_LINES - 1) + 0.5);
            if (!keep || nl == ATTR_MAX_LINES) continue;
            double *x = buf + (size_t)(nl * 4) * (nv + 1), *y = x + nv + 1, *lo = y + nv + 1, *hi = lo + nv + 1;
            char where[32];
            snprintf(where, sizeof where, "matrices[%d]", mi);
            const cJSON *vals = cJSON_GetObjectItemCaseSensitive(M, "values");
            for (int q = 0; q < ns; q++) {
                rstat a;
                if (matrix_cell(c, vals, sx[q].i, sx[q].i, where, &a, err)) {
                    free(sx);
                    goto out;
                }
                x[q] = sx[q].s, y[q] = a.v, lo[q] = a.lo, hi[q] = a.hi;
            }
            const char *hook = get_str(M, "hook");
            S[nl++] = (svg_series){.name = hook ? hook : "hook", .n = ns, .x = x, .y = y, .lo = lo, .hi = hi};
            shown++;
        }
        char name[128], title[200], what[600];
        snprintf(name, sizeof name, "%.*s", (int)ln, rows0[k]);
        snprintf(title, sizeof title, "Dose-response: %s", name);
        svg_line_opts o = {.title = title, .xlabel = "edit strength", .ylabel = "accuracy", .n_series = nl,
                           .series = S, .fixed_y = 1, .ymin = 0, .ymax = 1, .has_hline = 1, .hline = 0.5,
                           .hline_label = "chance", .width = 400, .height = 260};
        fig_open(c);
        svg_line_plot(c->b, &o);
        snprintf(what, sizeof what,
                 "Attribute probe accuracy, original vs %s, by edit strength (the diagonal of the transfer "
                 "matrix), one line per hook%s; band and bars: CI; dashed: chance (0.5).",
                 name, shown < nm ? " (a spread of the hooks)" : "");
        fig_close(c, what, ntext, ci);
    }
    free(sx);
    sb_puts(c->b, "</div>\n");
    /* the matrices as tables */
    sb_printf(c->b, "<p>Transfer tables: rows = the probe trained on original vs that edit, columns = tested on "
                    "original vs that edit; accuracy [95%% CI]. <b>Bold</b>: the diagonal (the attribute probe "
                    "itself); <i>italic</i>: the same edit at another strength (dose-response); other cells: "
                    "cross-edit control, near 0.5 unless the two edits share a direction. n = ");
    sb_escape(c->b, ntext);
    sb_puts(c->b, " per table; CI: ");
    sb_escape(c->b, ci);
    sb_puts(c->b, ".</p>\n");
    mi = 0;
    for (const cJSON *M = ms->child; M; M = M->next, mi++) {
        char where[32], b1[32], b2[32], b3[32];
        snprintf(where, sizeof where, "matrices[%d]", mi);
        const cJSON *vals = cJSON_GetObjectItemCaseSensitive(M, "values");
        const char *hook = get_str(M, "hook");
        int64_t ni = 0;
        get_n(c, M, "n_images", where, &ni, err);
        sb_puts(c->b, "<table class=\"fdr\"><caption>");
        sb_escape(c->b, hook ? hook : where);
        sb_printf(c->b, " (n = %lld images)</caption>\n<tr><th>trained on \\ tested on</th>", (long long)ni);
        for (int k = 0; k < nv; k++) {
            sb_puts(c->b, "<th>");
            sb_escape(c->b, cols0[k]);
            sb_puts(c->b, "</th>");
        }
        sb_puts(c->b, "</tr>\n");
        for (int a = 0; a < nv; a++) {
            sb_puts(c->b, "<tr><th>");
            sb_escape(c->b, rows0[a]);
            sb_puts(c->b, "</th>");
            for (int b = 0; b < nv; b++) {
                rstat s;
                if (matrix_cell(c, vals, a, b, where, &s, err)) goto out;
                const char *o = a == b ? "<b>" : same_edit(rows0[a], cols0[b]) ? "<i>" : "",
                           *e = a == b ? "</b>" : same_edit(rows0[a], cols0[b]) ? "</i>" : "";
                sb_printf(c->b, "<td>%s%s [%s, %s]%s</td>", o, svg_fmt(s.v, b1, sizeof b1), svg_fmt(s.lo, b2, sizeof b2),
                          svg_fmt(s.hi, b3, sizeof b3), e);
            }
            sb_puts(c->b, "</tr>\n");
        }
        sb_puts(c->b, "</table>\n");
    }
    if (attr_luminance(c, cJSON_GetObjectItemCaseSensitive(j, "luminance"), err)) goto out;
    rc = 0;
out:
    free(rows0), free(cols0), free(buf);
    cJSON_Delete(j);
    return rc;
}

/* ---- probes.json "vision": probes at vision-tower / projector hooks ---- */

/* The decoder entry of tasks with the same task and model as a vision entry, or NULL. */
static const cJSON *decoder_twin(const cJSON *tasks, const char *task, const char *model) {
    for (const cJSON *T = tasks ? tasks->child : NULL; T; T = T->next) {
        const char *tt = get_str(T, "task"), *tm = get_str(T, "model");
        if (tt && tm && model && !strcmp(tt, task) && !strcmp(tm, model)) return T;
    }
    return NULL;
}

typedef struct {
    int n, cap;             /* bars, room */
    char **labels;          /* owned */
    double *v, *lo, *hi;
    int *group;             /* 0: vision hook, 1: decoder layer */
    int64_t nmin, nmax;     /* test rows over the bars */
} vbars;

static void vbars_free(vbars *b) {
    for (int i = 0; i < b->n; i++) free(b->labels[i]);
    free(b->labels), free(b->v), free(b->lo), free(b->hi), free(b->group);
    memset(b, 0, sizeof *b);
}

/* Room for n bars (all arrays zeroed). */
static int vbars_init(vbars *b, int n, rs_err *err) {
    memset(b, 0, sizeof *b);
    b->nmin = INT64_MAX;
    b->cap = n;
    b->labels = calloc((size_t)n, sizeof *b->labels);
    b->v = calloc((size_t)n, sizeof *b->v), b->lo = calloc((size_t)n, sizeof *b->lo);
    b->hi = calloc((size_t)n, sizeof *b->hi), b->group = calloc((size_t)n, sizeof *b->group);
    return b->labels && b->v && b->lo && b->hi && b->group ? 0 : rs_errk(err, RS_ENOMEM, "out of memory");
}

static int n_points(const cJSON *T, const char *key) {
    const cJSON *pts = T ? cJSON_GetObjectItemCaseSensitive(T, key) : NULL;
    return cJSON_IsArray(pts) ? cJSON_GetArraySize(pts) : 0;
}

/* Append one bar per point of the array `key` of entry T (where names it for errors). */
static int vbars_add(ctx *c, vbars *b, const cJSON *T, const char *key, int group, const char *where, rs_err *err) {
    const cJSON *pts = cJSON_GetObjectItemCaseSensitive(T, key);
    int np = n_points(T, key);
    if (np < 1) return rs_errf(err, "%s: %s: \"%s\" must be a non-empty array", c->path, where, key);
    if (b->n + np > b->cap) return rs_errf(err, "%s: %s: more bars than counted", c->path, where);
    int pi = 0;
    for (const cJSON *P = pts->child; P; P = P->next, pi++) {
        char w[96];
        snprintf(w, sizeof w, "%s.%s[%d]", where, key, pi);
        int64_t n = 0;
        rstat a;
        if (get_n(c, P, "n_test", w, &n, err) || get_stat(c, P, "accuracy", w, &a, err) < 0) return -1;
        const char *hook = get_str(P, "hook");
        const cJSON *lx = cJSON_GetObjectItemCaseSensitive(P, "layer");
        char lab[160];
        /* decoder bars by layer number: hook names are long and the bar labels are cut */
        if (group == 0) snprintf(lab, sizeof lab, "%s", hook ? hook : "vision hook");
        else if (cJSON_IsNumber(lx)) snprintf(lab, sizeof lab, "decoder layer %g", lx->valuedouble);
        else snprintf(lab, sizeof lab, "decoder %s", hook ? hook : "layer");
        if (!(b->labels[b->n] = strdup(lab))) return rs_errk(err, RS_ENOMEM, "out of memory");
        b->v[b->n] = a.v, b->lo[b->n] = a.lo, b->hi[b->n] = a.hi, b->group[b->n] = group;
        b->nmin = n < b->nmin ? n : b->nmin, b->nmax = n > b->nmax ? n : b->nmax;
        b->n++;
    }
    return 0;
}

/* One bar chart per vision entry (task, model): its vision hooks, then the same probe's
 * decoder layers from "tasks" for comparison. */
static int sec_vision(ctx *c, const cJSON *vision, const cJSON *tasks, const char *ci, rs_err *err) {
    if (!cJSON_IsArray(vision)) return rs_errf(err, "%s: \"vision\" must be an array", c->path);
    if (cJSON_GetArraySize(vision) < 1) return 0;
    h2(c, "vision", "Vision tower probes");
    sb_puts(c->b, "<p>Is the information already in the SigLIP tower or the projector output (mean over the image "
                  "patches), and is it kept in the decoder? Image-only probes at each vision hook, next to the same "
                  "probe at each decoder layer. Source: <code>probes.json</code> (<code>vision</code>).</p>\n"
                  "<div class=\"grid\">\n");
    int vi = 0;
    for (const cJSON *T = vision->child; T; T = T->next, vi++) {
        char where[64];
        snprintf(where, sizeof where, "vision[%d]", vi);
        const char *task = get_str(T, "task"), *model = get_str(T, "model");
        if (!cJSON_IsObject(T) || !task) return rs_errf(err, "%s: %s: needs \"task\" (string)", c->path, where);
        const cJSON *twin = decoder_twin(tasks, task, model);
        vbars b;
        if (vbars_init(&b, n_points(T, "hooks") + n_points(twin, "layers") + 1, err)) {
            vbars_free(&b);
            return -1;
        }
        char twhere[64];
        int ti = 0;
        for (const cJSON *x = tasks ? tasks->child : NULL; x && x != twin; x = x->next) ti++;
        snprintf(twhere, sizeof twhere, "tasks[%d]", ti);
        rstat ch;
        if (vbars_add(c, &b, T, "hooks", 0, where, err) || (twin && vbars_add(c, &b, twin, "layers", 1, twhere, err)) ||
            get_stat(c, T, "chance", where, &ch, err) < 0) {
            vbars_free(&b);
            return -1;
        }
        char title[300], what[600], ntext[96], chance[64] = "";
        snprintf(title, sizeof title, "%s (%s)", task, model ? model : "model");
        svg_bar_opts o = {.title = title, .xlabel = "accuracy", .n = b.n, .labels = (const char *const *)b.labels,
                          .values = b.v, .lo = b.lo, .hi = b.hi, .group = b.group, .width = 460};
        fig_open(c);
        svg_bar_chart(c->b, &o);
        if (isfinite(ch.v)) snprintf(chance, sizeof chance, " Chance %.3f.", ch.v);
        snprintf(what, sizeof what,
                 "Probe accuracy for \xE2\x80\x9C%s\xE2\x80\x9D (%s) at each vision hook, then at each decoder "
                 "layer (second colour); error bars: CI.%s",
                 task, model ? model : "model", chance);
        n_range(ntext, sizeof ntext, b.nmin, b.nmax, "test rows per bar");
        fig_close(c, what, ntext, ci);
        vbars_free(&b);
    }
    sb_puts(c->b, "</div>\n</section>\n");
    return 0;
}

/* probes.json "paired": concept probes of two models compared on identical splits, one row
 * per pair and layer (Δaccuracy = B − A with its paired CI, sign-flip p, BH q over the list). */
static int sec_paired(ctx *c, const cJSON *paired, rs_err *err) {
    if (!cJSON_IsArray(paired)) return rs_errf(err, "%s: \"paired\" must be an array", c->path);
    if (cJSON_GetArraySize(paired) < 1) return 0;
    h2(c, "paired", "Paired probe comparison (concept)");
    sb_puts(c->b, "<p>Is the concept probe better or worse on one model's (or condition's) captions than on the "
                  "other's? Both probes are trained and tested on identical splits; &Delta;accuracy = B &minus; A, "
                  "mean over splits, with a paired 95% nested bootstrap CI (splits, then test images, the same draws for "
                  "A and B) and a two-sided paired permutation p (test images' A/B correctness swapped at random); q: "
                  "Benjamini&ndash;Hochberg over this table. Pairs: a&ndash;b VLM vs LLM captions, b&ndash;c own image "
                  "vs no image, c&ndash;d other vs own image, c&ndash;e blank vs own image. Source: "
                  "<code>probes.json</code> (<code>paired</code>).</p>\n");
    rs_sbuf rows = {0};
    int i = 0, n_sig = 0, n_tests = 0;
    for (const cJSON *E = paired->child; E; E = E->next, i++) {
        char where[64];
        snprintf(where, sizeof where, "paired[%d]", i);
        const char *pair = get_str(E, "pair"), *ma = get_str(E, "model_a"), *mb = get_str(E, "model_b");
        const char *hook = get_str(E, "hook");
        int64_t ns = 0, ng = 0, nit = 0;
        rstat dlt;
        if (!cJSON_IsObject(E) || !pair) {
            sb_free(&rows);
            return rs_errf(err, "%s: %s: needs \"pair\" (string)", c->path, where);
        }
        if (get_n(c, E, "n_seeds", where, &ns, err) || get_n(c, E, "n_test_groups", where, &ng, err) ||
            get_n(c, E, "n_test_items", where, &nit, err) || get_stat(c, E, "difference", where, &dlt, err) < 0) {
            sb_free(&rows);
            return -1;
        }
        double pv = num_or_nan(E, "p"), qv = num_or_nan(E, "q");
        int sig = isfinite(qv) && qv < 0.05;
        n_sig += sig, n_tests += isfinite(pv) != 0;
        const cJSON *lx = cJSON_GetObjectItemCaseSensitive(E, "layer");
        sb_puts(&rows, sig ? "<tr class=\"sig\"><td>" : "<tr><td>");
        if (cJSON_IsNumber(lx)) sb_printf(&rows, "%g", lx->valuedouble);
        else sb_escape(&rows, hook ? hook : "?");
        sb_puts(&rows, "</td><td>");
        sb_escape(&rows, pair);
        sb_puts(&rows, "</td><td>");
        sb_escape(&rows, mb ? mb : "B");
        sb_puts(&rows, " &minus; ");
        sb_escape(&rows, ma ? ma : "A");
        sb_printf(&rows, "</td><td>%s%+.3f [%+.3f, %+.3f]%s</td>", sig ? "<b>" : "", dlt.v, dlt.lo, dlt.hi, sig ? "</b>" : "");
        if (isfinite(pv)) sb_printf(&rows, "<td>%.3g</td>", pv);
        else sb_puts(&rows, "<td>not computed</td>");
        if (isfinite(qv)) sb_printf(&rows, "<td>%s%.3g%s</td>", sig ? "<b>" : "", qv, sig ? " *</b>" : "");
        else sb_puts(&rows, "<td>&ndash;</td>");
        sb_printf(&rows, "<td>%lld / %lld / %lld</td></tr>\n", (long long)ns, (long long)ng, (long long)nit);
    }
    sb_printf(c->b, "<p>Paired differences that survive Benjamini&ndash;Hochberg at q &lt; 0.05 (marked *): <b>%d of %d</b> "
                    "tests.</p>\n", n_sig, n_tests);
    sb_puts(c->b, "<table class=\"fdr\"><tr><th>layer</th><th>pair</th><th>B &minus; A</th><th>&Delta;accuracy [95% CI]</th>"
                  "<th>p</th><th>q</th><th>n (splits / test images / test captions per split)</th></tr>\n");
    if (rows.buf) sb_puts(c->b, rows.buf);
    sb_puts(c->b, "</table>\n</section>\n");
    sb_free(&rows);
    return 0;
}

/* probes.json "targets" (docs/probes.md, Target probes): one compact table at the deepest
 * decoder hook (the last hook of the list) — per evaluated target, the text and image probes'
 * balanced accuracy [CI] with q, and the text->image transfer with its gap [CI] and q — and a
 * line counting the BH survivors over every hook and the skipped targets. */
static const cJSON *tg_find(const cJSON *arr, const char *target, const char *hook, const char *key, const char *val) {
    for (const cJSON *E = arr ? arr->child : NULL; E; E = E->next) {
        const char *t = get_str(E, "target"), *h = get_str(E, "hook"), *v = get_str(E, key);
        if (t && h && v && !strcmp(t, target) && !strcmp(h, hook) && !strcmp(v, val)) return E;
    }
    return NULL;
}

static void tg_cell(rs_sbuf *b, const cJSON *E, const char *stat) {
    const cJSON *s = E ? cJSON_GetObjectItemCaseSensitive(E, stat) : NULL;
    double v = num_or_nan(s, "value"), lo = num_or_nan(s, "ci_lo"), hi = num_or_nan(s, "ci_hi"), q = num_or_nan(E, "q");
    if (!E || !isfinite(v)) {
        sb_puts(b, "<td>&ndash;</td><td></td>");
        return;
    }
    int sig = isfinite(q) && q < 0.05;
    sb_printf(b, "<td>%s%.3f [%.3f, %.3f]%s</td>", sig ? "<b>" : "", v, lo, hi, sig ? "</b>" : "");
    if (isfinite(q)) sb_printf(b, "<td>%s%.3g%s</td>", sig ? "<b>" : "", q, sig ? " *</b>" : "");
    else sb_puts(b, "<td>&ndash;</td>");
}

static int sec_targets(ctx *c, const cJSON *tg, rs_err *err) {
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(tg, "probes"), *tr = cJSON_GetObjectItemCaseSensitive(tg, "transfer");
    const cJSON *sk = cJSON_GetObjectItemCaseSensitive(tg, "skipped");
    if (!cJSON_IsObject(tg) || !cJSON_IsArray(pr) || !cJSON_IsArray(tr) || !cJSON_IsArray(sk))
        return rs_errf(err, "%s: \"targets\" needs the arrays probes, transfer and skipped", c->path);
    h2(c, "targets", "Target probes (categories, colours, actions)");
    int n_pr = cJSON_GetArraySize(pr), n_sk = cJSON_GetArraySize(sk), sig = 0, n_p = 0, xsig = 0, n_x = 0;
    for (const cJSON *E = pr->child; E; E = E->next) {
        double q = num_or_nan(E, "q");
        sig += isfinite(q) && q < 0.05, n_p += isfinite(num_or_nan(E, "p")) != 0;
    }
    for (const cJSON *E = tr->child; E; E = E->next) {
        double q = num_or_nan(E, "q");
        xsig += isfinite(q) && q < 0.05, n_x += isfinite(num_or_nan(E, "p")) != 0;
    }
    sb_printf(c->b,
              "<p>One-vs-rest probes per target (COCO categories and supercategories of the image, colour and action "
              "words of its caption; rules in docs/datasets.md), on the LLM's caption activations (text) and the VLM's "
              "image activations (image), on the group probes' splits. Balanced accuracy (chance 0.5 whatever the "
              "prevalence), seed mean with a 95%% nested bootstrap CI over splits and test images; q: "
              "Benjamini&ndash;Hochberg over all target probes (permutation p). Transfer: the text probe scored on "
              "the same test images' image activations; gap = image probe &minus; transfer, paired bootstrap CI. "
              "Target probes with q &lt; 0.05 (marked *): <b>%d of %d</b> over every hook; transfer cells: <b>%d of "
              "%d</b>. <b>%d</b> target &times; modality pairs skipped for too few positive or negative images "
              "(min_positives %g; listed in <code>probes.json</code> <code>targets.skipped</code>).</p>\n",
              sig, n_p, xsig, n_x, n_sk, num_or_nan(tg, "min_positives"));
    if (n_pr < 1) {
        sb_puts(c->b, "<p class=\"note\">No target had enough positive and negative images on both sides of every "
                      "split.</p>\n</section>\n");
        return 0;
    }
    const char *hook = get_str(cJSON_GetArrayItem(pr, n_pr - 1), "hook");
    if (!hook) return rs_errf(err, "%s: targets.probes[%d]: needs \"hook\"", c->path, n_pr - 1);
    sb_puts(c->b, "<p>At ");
    sb_escape(c->b, hook);
    sb_puts(c->b, " (the deepest decoder hook; every hook is in <code>probes.json</code> and "
                  "<code>probe_targets.csv</code>):</p>\n<table class=\"fdr\"><tr><th>target</th><th>kind</th>"
                  "<th>n images (test / split)</th><th>text [95% CI]</th><th>q</th><th>image [95% CI]</th><th>q</th>"
                  "<th>text&rarr;image [95% CI]</th><th>q</th><th>gap [95% CI]</th></tr>\n");
    for (const cJSON *E = pr->child; E; E = E->next) {
        const char *t = get_str(E, "target"), *h = get_str(E, "hook"), *m = get_str(E, "model");
        if (!t || !h || !m || strcmp(h, hook)) continue;
        /* one row per target: at its first entry at this hook */
        const cJSON *first = NULL;
        for (const cJSON *F = pr->child; F && !first; F = F->next) {
            const char *ft = get_str(F, "target"), *fh = get_str(F, "hook");
            if (ft && fh && !strcmp(ft, t) && !strcmp(fh, hook)) first = F;
        }
        if (first != E) continue;
        const cJSON *tx = tg_find(pr, t, hook, "model", "LLM captions"), *im = tg_find(pr, t, hook, "model", "VLM images");
        const cJSON *x = tg_find(tr, t, hook, "direction", "text->image");
        const cJSON *any = im ? im : tx;
        sb_puts(c->b, "<tr><td>");
        sb_escape(c->b, t);
        sb_puts(c->b, "</td><td>");
        sb_escape(c->b, get_str(E, "kind") ? get_str(E, "kind") : "");
        sb_printf(c->b, "</td><td>%g (%g)</td>", num_or_nan(any, "n_images"), num_or_nan(any, "n_test_images"));
        tg_cell(c->b, tx, "balanced_accuracy");
        tg_cell(c->b, im, "balanced_accuracy");
        tg_cell(c->b, x, "transfer");
        const cJSON *g = x ? cJSON_GetObjectItemCaseSensitive(x, "gap") : NULL;
        if (g && isfinite(num_or_nan(g, "value")))
            sb_printf(c->b, "<td>%+.3f [%+.3f, %+.3f]</td></tr>\n", num_or_nan(g, "value"), num_or_nan(g, "ci_lo"),
                      num_or_nan(g, "ci_hi"));
        else sb_puts(c->b, "<td>&ndash;</td></tr>\n");
    }
    sb_puts(c->b, "</table>\n</section>\n");
    return 0;
}

/* probes.json "sae_features": the caption concept probes refitted on SAE features, one row per
 * hook and model, beside the raw-activation probe of the same rows (docs/probes.md). */
static int sec_sae_probes(ctx *c, const cJSON *list, rs_err *err) {
    if (!cJSON_IsArray(list)) return rs_errf(err, "%s: \"sae_features\" must be an array", c->path);
    if (cJSON_GetArraySize(list) < 1) return 0;
    h2(c, "sae-probes", "Concept probes on SAE features");
    sb_puts(c->b, "<p>The caption concept probes fitted a second time on the SAE's features (each token encoded, then "
                  "pooled as the raw activations are) with the raw probes' splits, seeds, C grid and penalty. Accuracy: "
                  "mean over splits with a 95% nested bootstrap CI over splits and test images; null: mean accuracy with "
                  "permuted training labels, permutation p, Benjamini&ndash;Hochberg q over this table; SAE &minus; raw: "
                  "paired difference on identical splits (paired bootstrap CI, sign-flip p). A sparse basis that matches "
                  "the raw probe says the concept is linearly available in the SAE's features; it does not say that the "
                  "listed features <i>are</i> the concept (correlated features share weight). Top features: largest "
                  "|weight| on the standardised feature in one fit on all rows. Source: <code>probes.json</code> "
                  "(<code>sae_features</code>).</p>\n");
    sb_puts(c->b, "<table class=\"fdr\"><tr><th>layer</th><th>captions</th><th>SAE features: accuracy [95% CI]</th>"
                  "<th>null (p, q)</th><th>raw: accuracy [95% CI] (p)</th><th>SAE &minus; raw [95% CI] (p)</th>"
                  "<th>n (images / test images per split / splits)</th><th>top features (weight)</th></tr>\n");
    int i = 0;
    for (const cJSON *E = list->child; E; E = E->next, i++) {
        char where[64];
        snprintf(where, sizeof where, "sae_features[%d]", i);
        const char *model = get_str(E, "model"), *hook = get_str(E, "hook");
        int64_t ni = 0, ng = 0, ns = 0, d = 0;
        rstat acc;
        if (!cJSON_IsObject(E) || !model)
            return rs_errf(err, "%s: %s: needs \"model\" (string)", c->path, where);
        if (get_n(c, E, "n_images", where, &ni, err) || get_n(c, E, "n_test_groups", where, &ng, err) ||
            get_n(c, E, "n_seeds", where, &ns, err) || get_n(c, E, "d_sae", where, &d, err) ||
            get_stat(c, E, "accuracy", where, &acc, err) < 0)
            return -1;
        double pv = num_or_nan(E, "permutation_p"), qv = num_or_nan(E, "permutation_q");
        double nul = num_or_nan(E, "permuted_label_accuracy");
        int sig = isfinite(qv) && qv < 0.05;
        const cJSON *lx = cJSON_GetObjectItemCaseSensitive(E, "layer");
        sb_puts(c->b, sig ? "<tr class=\"sig\"><td>" : "<tr><td>");
        if (cJSON_IsNumber(lx)) sb_printf(c->b, "%g", lx->valuedouble);
        else sb_escape(c->b, hook ? hook : "?");
        sb_puts(c->b, "</td><td>");
        sb_escape(c->b, model);
        sb_printf(c->b, "</td><td>%.3f [%.3f, %.3f] on %lld features</td><td>%.3f (p %.3g, q %.3g%s)</td>", acc.v, acc.lo,
                  acc.hi, (long long)d, nul, pv, qv, sig ? " *" : "");
        const cJSON *raw = cJSON_GetObjectItemCaseSensitive(E, "raw");
        rstat ra, dd;
        int gr = cJSON_IsObject(raw) ? get_stat(c, raw, "accuracy", where, &ra, err) : 0;
        const cJSON *df = cJSON_GetObjectItemCaseSensitive(E, "sae_minus_raw");
        int gd = cJSON_IsObject(df) ? get_stat(c, df, "difference", where, &dd, err) : 0;
        if (gr < 0 || gd < 0) return -1;
        if (gr > 0)
            sb_printf(c->b, "<td>%.3f [%.3f, %.3f] (p %.3g)</td>", ra.v, ra.lo, ra.hi, num_or_nan(raw, "permutation_p"));
        else sb_puts(c->b, "<td>&ndash;</td>");
        if (gd > 0)
            sb_printf(c->b, "<td>%+.3f [%+.3f, %+.3f] (p %.3g)</td>", dd.v, dd.lo, dd.hi, num_or_nan(df, "p"));
        else sb_puts(c->b, "<td>&ndash;</td>");
        sb_printf(c->b, "<td>%lld / %lld / %lld</td><td>", (long long)ni, (long long)ng, (long long)ns);
        const cJSON *top = cJSON_GetObjectItemCaseSensitive(E, "top_features");
        int k = 0;
        for (const cJSON *F = cJSON_IsArray(top) ? top->child : NULL; F && k < 5; F = F->next, k++) {
            double f = num_or_nan(F, "feature"), w = num_or_nan(F, "coef");
            const char *u = neuronpedia_url(get_str(F, "neuronpedia_url")), *cl = get_str(F, "class");
            if (k) sb_puts(c->b, ", ");
            if (u) {
                sb_puts(c->b, "<a href=\"");
                sb_escape(c->b, u);
                sb_puts(c->b, "\">");
            }
            sb_printf(c->b, "#%.0f", f);
            if (u) sb_puts(c->b, "</a>");
            sb_printf(c->b, " (%+.2g", w);
            if (cl) {
                sb_puts(c->b, " ");
                sb_escape(c->b, cl);
            }
            sb_puts(c->b, ")");
        }
        if (!k) sb_puts(c->b, "none (every weight 0)");
        sb_puts(c->b, "</td></tr>\n");
    }
    sb_puts(c->b, "</table>\n</section>\n");
    return 0;
}

static int sec_probes(ctx *c, rs_err *err) {
    cJSON *j;
    int r = load(c, "probes.json", "Probes", &j, err);
    if (r) return r > 0 ? 0 : -1;
    int rc = -1;
    char ci[512];
    if (get_ci(c, j, ci, sizeof ci, err)) goto out;
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(j, "tasks");
    const cJSON *vision = cJSON_GetObjectItemCaseSensitive(j, "vision");
    int n_vision = cJSON_IsArray(vision) ? cJSON_GetArraySize(vision) : 0;
    /* "tasks" may be empty only when vision-hook probes are there to show */
    if (!cJSON_IsArray(tasks) || cJSON_GetArraySize(tasks) < (n_vision ? 0 : 1)) {
        rs_errf(err, "%s: \"tasks\" must be a non-empty array", c->path);
        goto out;
    }
    int ti = 0;
    for (const cJSON *T = tasks->child; T; T = T->next, ti++)
        if (!cJSON_IsObject(T) || !get_str(T, "task")) {
            rs_errf(err, "%s: tasks[%d]: needs \"task\" (string)", c->path, ti);
            goto out;
        }
    const cJSON *paired = cJSON_GetObjectItemCaseSensitive(j, "paired");
    if (probe_group(c, tasks, 0, ci, err) || (paired && sec_paired(c, paired, err)) || probe_group(c, tasks, 1, ci, err))
        goto out;
    if (vision && sec_vision(c, vision, tasks, ci, err)) goto out;
    const cJSON *targets = cJSON_GetObjectItemCaseSensitive(j, "targets");
    if (targets && sec_targets(c, targets, err)) goto out;
    const cJSON *sae = cJSON_GetObjectItemCaseSensitive(j, "sae_features");
    if (sae && sec_sae_probes(c, sae, err)) goto out;
    rc = 0;
out:
    cJSON_Delete(j);
    return rc;
}

/* ---- transfer.json ---- */

static int str_array(ctx *c, const cJSON *o, const char *key, const char *where, int max, char ***out, int *n,
                     rs_err *err) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    *n = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : 0;
    if (*n < 1 || *n > max) return rs_errf(err, "%s: %s.%s: expected an array of 1..%d strings", c->path, where, key, max);
    *out = calloc((size_t)*n, sizeof **out);
    if (!*out) return rs_errk(err, RS_ENOMEM, "out of memory");
    int i = 0;
    for (const cJSON *e = a->child; e; e = e->next, i++) {
        if (!cJSON_IsString(e)) return rs_errf(err, "%s: %s.%s[%d]: expected a string", c->path, where, key, i);
        (*out)[i] = e->valuestring; /* borrowed from the JSON tree */
    }
    return 0;
}

static int transfer_matrix(ctx *c, const cJSON *M, const char *where, const char *root_ci, rs_err *err) {
    char **rows = NULL, **cols = NULL;
    int nr, nc, rc = -1;
    double *v = NULL, *lo = NULL, *hi = NULL;
    char ci[512];
    if (cJSON_GetObjectItemCaseSensitive(M, "ci")) {
        if (get_ci(c, M, ci, sizeof ci, err)) return -1;
    } else if (root_ci) {
        snprintf(ci, sizeof ci, "%s", root_ci);
    } else {
        return rs_errf(err, "%s: %s: missing \"ci\"", c->path, where);
    }
    if (str_array(c, M, "rows", where, 64, &rows, &nr, err) || str_array(c, M, "cols", where, 64, &cols, &nc, err))
        goto out;
    const cJSON *vals = cJSON_GetObjectItemCaseSensitive(M, "values");
    if (!cJSON_IsArray(vals) || cJSON_GetArraySize(vals) != nr) {
        rs_errf(err, "%s: %s.values: expected %d rows", c->path, where, nr);
        goto out;
    }
    v = calloc((size_t)(nr * nc), sizeof *v), lo = calloc((size_t)(nr * nc), sizeof *lo), hi = calloc((size_t)(nr * nc), sizeof *hi);
    if (!v || !lo || !hi) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto out;
    }
    int r = 0;
    for (const cJSON *R = vals->child; R; R = R->next, r++) {
        if (!cJSON_IsArray(R) || cJSON_GetArraySize(R) != nc) {
            rs_errf(err, "%s: %s.values[%d]: expected %d columns", c->path, where, r, nc);
            goto out;
        }
        int k = 0;
        for (const cJSON *e = R->child; e; e = e->next, k++) {
            /* wrap the cell so get_stat can read it */
            cJSON tmp = *e;
            tmp.string = (char *)"cell";
            tmp.next = tmp.prev = NULL;
            cJSON holder;
            memset(&holder, 0, sizeof holder);
            holder.type = cJSON_Object;
            holder.child = &tmp;
            char w2[96];
            snprintf(w2, sizeof w2, "%s.values[%d][%d]", where, r, k);
            rstat s;
            if (get_stat(c, &holder, "cell", w2, &s, err) < 0) goto out;
            v[r * nc + k] = s.v, lo[r * nc + k] = s.lo, hi[r * nc + k] = s.hi;
        }
    }
    int64_t n = 0;
    if (get_n(c, M, "n", where, &n, err)) goto out;
    const char *title = get_str(M, "title"), *metric = get_str(M, "metric");
    const cJSON *range = cJSON_GetObjectItemCaseSensitive(M, "range");
    svg_heatmap_opts o = {.title = title ? title : "Transfer", .row_title = get_str(M, "row_title"),
                          .col_title = get_str(M, "col_title"), .n_rows = nr, .n_cols = nc,
                          .row_labels = (const char *const *)rows, .col_labels = (const char *const *)cols,
                          .values = v, .lo = lo, .hi = hi};
    if (cJSON_IsArray(range) && cJSON_GetArraySize(range) == 2 && cJSON_IsNumber(cJSON_GetArrayItem(range, 0)) &&
        cJSON_IsNumber(cJSON_GetArrayItem(range, 1))) {
        o.fixed_range = 1;
        o.vmin = cJSON_GetArrayItem(range, 0)->valuedouble;
        o.vmax = cJSON_GetArrayItem(range, 1)->valuedouble;
    }
    fig_open(c);
    svg_heatmap(c->b, &o);
    char ntext[64], what[400];
    snprintf(ntext, sizeof ntext, "%lld test rows per cell", (long long)n);
    snprintf(what, sizeof what, "%s of a probe trained on the row condition and tested on the column condition; "
                                "cells show the value and [CI].",
             metric ? metric : "Score");
    fig_close(c, what, ntext, ci);
    rc = 0;
out:
    free(rows), free(cols), free(v), free(lo), free(hi);
    return rc;
}

static int sec_transfer(ctx *c, rs_err *err) {
    cJSON *j;
    int r = load(c, "transfer.json", "Transfer matrix", &j, err);
    if (r) return r > 0 ? 0 : -1;
    int rc = -1;
    char ci[512];
    const char *root_ci = NULL;
    if (cJSON_GetObjectItemCaseSensitive(j, "ci")) {
        if (get_ci(c, j, ci, sizeof ci, err)) goto out;
        root_ci = ci;
    }
    h2(c, "transfer", "Cross-condition transfer");
    sb_puts(c->b, "<p>Probes trained in one condition and tested in another. Source: <code>transfer.json</code>.</p>\n");
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(j, "matrices");
    if (ms) {
        if (!cJSON_IsArray(ms) || cJSON_GetArraySize(ms) < 1) {
            rs_errf(err, "%s: \"matrices\" must be a non-empty array", c->path);
            goto out;
        }
        int i = 0;
        for (const cJSON *M = ms->child; M; M = M->next, i++) {
            char where[32];
            snprintf(where, sizeof where, "matrices[%d]", i);
            if (!cJSON_IsObject(M)) {
                rs_errf(err, "%s: %s: expected an object", c->path, where);
                goto out;
            }
            if (transfer_matrix(c, M, where, root_ci, err)) goto out;
        }
    } else if (transfer_matrix(c, j, "(top level)", root_ci, err)) {
        goto out;
    }
    sb_puts(c->b, "</section>\n");
    rc = 0;
out:
    cJSON_Delete(j);
    return rc;
}

/* ---- steer.json ---- */

#define STEER_MAX_ALPHAS 64

/* One table cell "v [lo, hi]". */
static void steer_cell(ctx *c, const rstat *s) {
    char a[32], b[32], d[32];
    sb_printf(c->b, "<td>%s [%s, %s]</td>", svg_fmt(s->v, a, sizeof a), svg_fmt(s->lo, b, sizeof b), svg_fmt(s->hi, d, sizeof d));
}

/* Per steered hook and probe direction: Δ log p(targets) against α, probe vs the random
 * control (figure), and a table of both measures. Absent steer.json: no section (the config
 * has no "steer" section), and no note. */
static int sec_steer(ctx *c, rs_err *err) {
    snprintf(c->path, sizeof c->path, "%s/steer.json", c->dir);
    if (!rs_path_exists(c->path)) return 0;
    cJSON *j;
    int r = load(c, "steer.json", "Steering dose-response", &j, err);
    if (r) return r > 0 ? 0 : -1;
    int rc = -1;
    int64_t n = 0, K = 0, B = 0;
    const cJSON *hooks = cJSON_GetObjectItemCaseSensitive(j, "hooks");
    if (get_n(c, j, "n_items", "(top level)", &n, err) || get_n(c, j, "random_directions", "(top level)", &K, err) ||
        get_n(c, j, "bootstrap", "(top level)", &B, err))
        goto out;
    if (!cJSON_IsArray(hooks)) {
        rs_errf(err, "%s: \"hooks\" must be an array", c->path);
        goto out;
    }
    h2(c, "steer", "Steering dose\xE2\x80\x93response");
    sb_puts(c->b, "<p>Each probe direction d (a concept class, or original \xE2\x86\x92 edited for an edit) added at its "
                  "hook as x + \xCE\xB1\xC2\xB7s\xC2\xB7" "d on every decoder row of PaliGemma reading a held-out image "
                  "(s = the mean norm of the clean activation over the prefix rows), against random unit directions added "
                  "with the same norm. Shown: the change (steered \xE2\x88\x92 unsteered) of the log-probability of the "
                  "direction's target tokens at the first generated position, and of the caption's teacher-forced CE. "
                  "Source: <code>steer.json</code>, <code>steer.csv</code>.</p>\n");
    char ntext[96], ci[160];
    snprintf(ntext, sizeof ntext, "%lld held-out images; random control: mean of %lld directions", (long long)n,
             (long long)K);
    snprintf(ci, sizeof ci, "95%% percentile bootstrap over images, %lld resamples", (long long)B);
    int hi = 0;
    for (const cJSON *H = hooks->child; H; H = H->next, hi++) {
        const char *hook = get_str(H, "hook");
        const cJSON *dirs = cJSON_GetObjectItemCaseSensitive(H, "directions");
        if (!hook || !cJSON_IsArray(dirs)) {
            rs_errf(err, "%s: hooks[%d]: needs \"hook\" and \"directions\"", c->path, hi);
            goto out;
        }
        sb_puts(c->b, "<h3>");
        sb_escape(c->b, hook);
        sb_puts(c->b, "</h3>\n<div class=\"grid\">\n");
        rs_sbuf tab = {0};
        sb_puts(&tab, "<table class=\"fdr\"><tr><th>direction</th><th>\xCE\xB1</th><th>\xCE\x94 log p target: probe</th>"
                      "<th>random</th><th>probe \xE2\x88\x92 random</th><th>\xCE\x94 caption CE: probe</th><th>random</th>"
                      "<th>probe \xE2\x88\x92 random</th></tr>\n");
        int di = 0;
        for (const cJSON *D = dirs->child; D; D = D->next, di++) {
            char where[64];
            snprintf(where, sizeof where, "hooks[%d].directions[%d]", hi, di);
            const char *name = get_str(D, "name"), *kind = get_str(D, "kind");
            const cJSON *pts = cJSON_GetObjectItemCaseSensitive(D, "points");
            int np = cJSON_GetArraySize(pts);
            if (!name || !kind || !cJSON_IsArray(pts) || np < 1 || np > STEER_MAX_ALPHAS) {
                sb_free(&tab);
                rs_errf(err, "%s: %s: needs \"name\", \"kind\" and 1 to %d \"points\"", c->path, where, STEER_MAX_ALPHAS);
                goto out;
            }
            double x[STEER_MAX_ALPHAS], v[6][3][STEER_MAX_ALPHAS], rband[2][STEER_MAX_ALPHAS];
            int pi = 0;
            for (const cJSON *P = pts->child; P; P = P->next, pi++) {
                const cJSON *a = cJSON_GetObjectItemCaseSensitive(P, "alpha");
                if (!cJSON_IsNumber(a)) {
                    sb_free(&tab);
                    rs_errf(err, "%s: %s.points[%d]: \"alpha\" must be a number", c->path, where, pi);
                    goto out;
                }
                x[pi] = a->valuedouble;
                const char *meas[2] = {"target_logprob", "caption_ce"}, *ser[3] = {"probe", "random", "probe_minus_random"};
                rstat st[6];
                for (int m = 0; m < 2; m++)
                    for (int q = 0; q < 3; q++) {
                        char pw[128];
                        snprintf(pw, sizeof pw, "%s.points[%d].%s", where, pi, meas[m]);
                        if (get_stat(c, cJSON_GetObjectItemCaseSensitive(P, meas[m]), ser[q], pw, &st[m * 3 + q], err) < 0) {
                            sb_free(&tab);
                            goto out;
                        }
                        v[m * 3 + q][0][pi] = st[m * 3 + q].v, v[m * 3 + q][1][pi] = st[m * 3 + q].lo;
                        v[m * 3 + q][2][pi] = st[m * 3 + q].hi;
                    }
                /* the random control's band in the figure: min..max over the random directions */
                const cJSON *rnd = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(P, meas[0]), "random");
                const cJSON *mn = cJSON_GetObjectItemCaseSensitive(rnd, "min_over_directions"),
                            *mx = cJSON_GetObjectItemCaseSensitive(rnd, "max_over_directions");
                rband[0][pi] = cJSON_IsNumber(mn) ? mn->valuedouble : NAN;
                rband[1][pi] = cJSON_IsNumber(mx) ? mx->valuedouble : NAN;
                char ab[32];
                sb_puts(&tab, "<tr><td>");
                sb_escape(&tab, kind);
                sb_puts(&tab, ": ");
                sb_escape(&tab, name);
                sb_printf(&tab, "</td><td>%s</td>", svg_fmt(x[pi], ab, sizeof ab));
                rs_sbuf *keep = c->b;
                c->b = &tab;
                for (int q = 0; q < 6; q++) steer_cell(c, &st[q]);
                c->b = keep;
                sb_puts(&tab, "</tr>\n");
            }
            char words[160] = "";
            size_t wl = 0;
            const cJSON *tg = cJSON_GetObjectItemCaseSensitive(D, "targets");
            for (const cJSON *t = cJSON_IsArray(tg) ? tg->child : NULL; t && wl < sizeof words; t = t->next)
                if (get_str(t, "word"))
                    wl += (size_t)snprintf(words + wl, sizeof words - wl, "%s\"%s\"", wl ? ", " : "", get_str(t, "word"));
            char title[160];
            snprintf(title, sizeof title, "%s: %s", kind, name);
            svg_series S[2] = {{.name = "probe", .n = np, .x = x, .y = v[0][0], .lo = v[0][1], .hi = v[0][2]},
                               {.name = "random", .n = np, .x = x, .y = v[1][0], .lo = rband[0], .hi = rband[1]}};
            svg_line_opts o = {.title = title, .xlabel = "\xCE\xB1 (units of the mean activation norm)",
                               .ylabel = "\xCE\x94 log p(targets)", .n_series = 2, .series = S, .has_hline = 1,
                               .hline = 0, .hline_label = "unsteered", .width = 360, .height = 240};
            fig_open(c);
            svg_line_plot(c->b, &o);
            char what[400];
            snprintf(what, sizeof what, "Steering along %s at %s: change of log p(%s) at the first generated position, "
                                        "probe direction (band: CI) vs the mean of random directions of the same norm (band: "
                                        "min\xE2\x80\x93max over the directions).", name, hook, words);
            fig_close(c, what, ntext, ci);
        }
        sb_puts(c->b, "</div>\n");
        sb_puts(&tab, "</table>\n");
        if (tab.buf) sb_puts(c->b, tab.buf);
        sb_free(&tab);
    }
    sb_puts(c->b, "</section>\n");
    rc = 0;
out:
    cJSON_Delete(j);
    return rc;
}

/* ---- page ---- */

static const char *CSS =
    "body{font-family:Helvetica,Arial,sans-serif;margin:24px auto;max-width:1180px;color:#222;background:#fff;"
    "line-height:1.4}\n"
    "h1{font-size:24px;margin-bottom:4px}h2{font-size:19px;border-bottom:1px solid #ccc;padding-bottom:4px;"
    "margin-top:32px}\n"
    ".grid{display:flex;flex-wrap:wrap;gap:14px}figure{margin:0;border:1px solid #ddd;padding:8px;"
    "background:#fff;max-width:560px}\n"
    "figcaption{font-size:12px;color:#444;margin-top:4px}code{background:#f3f3f3;padding:0 3px}"
    ".note{color:#666;font-size:13px}nav a{margin-right:14px}footer{margin-top:36px;font-size:12px;color:#666;"
    "border-top:1px solid #ccc;padding-top:8px}\n";

/* ---- conditions.json ---- */

#define COND_MAX_PAIRS 8

/* One figure per shift metric (a line per condition pair over the layers, CI bands), then
 * the raw cosine by caption token position for up to MAX_LAYER_FIGS layers. */
static int sec_conditions(ctx *c, rs_err *err) {
    cJSON *j;
    int r = load(c, "conditions.json", "Conditions (captions read with their image)", &j, err);
    if (r) return r > 0 ? 0 : -1;
    int rc = -1;
    char ci[512], ntext[128];
    double *buf = NULL;
    if (get_ci(c, j, ci, sizeof ci, err)) goto out;
    int64_t n_in = 0;
    if (get_n(c, j, "n_inputs", "top level", &n_in, err)) goto out;
    const cJSON *conds = cJSON_GetObjectItemCaseSensitive(j, "conditions");
    const cJSON *pairs = cJSON_GetObjectItemCaseSensitive(j, "pairs");
    int np = cJSON_IsArray(pairs) ? cJSON_GetArraySize(pairs) : 0;
    if (np < 1 || np > COND_MAX_PAIRS || !cJSON_IsArray(conds)) {
        rs_errf(err, "%s: \"pairs\" must be an array of 1..%d entries and \"conditions\" an array", c->path, COND_MAX_PAIRS);
        goto out;
    }
    h2(c, "conditions", "Conditions: the same caption tokens read with and without an image");
    sb_puts(c->b, "<p>Every condition reads the same caption token ids; metrics compare them row by row "
                  "(the &lt;bos&gt; row and special tokens excluded). Source: <code>conditions.json</code>.</p>\n"
                  "<table><tr><th>condition</th><th>store</th><th>the model reads</th></tr>\n");
    for (const cJSON *e = conds->child; e; e = e->next) {
        sb_puts(c->b, "<tr><td>");
        sb_escape(c->b, get_str(e, "letter") ? get_str(e, "letter") : "?");
        sb_puts(c->b, "</td><td><code>");
        sb_escape(c->b, get_str(e, "store") ? get_str(e, "store") : "?");
        sb_puts(c->b, "</code></td><td>");
        sb_escape(c->b, get_str(e, "reads") ? get_str(e, "reads") : "");
        sb_puts(c->b, "</td></tr>\n");
    }
    sb_puts(c->b, "</table>\n<table><tr><th>pair</th><th>what the comparison isolates</th></tr>\n");
    const char *ids[COND_MAX_PAIRS];
    const cJSON *pl[COND_MAX_PAIRS], *pp[COND_MAX_PAIRS];
    int nl_max = 0, pi = 0;
    for (const cJSON *p = pairs->child; p; p = p->next, pi++) {
        ids[pi] = get_str(p, "id") ? get_str(p, "id") : "?";
        pl[pi] = cJSON_GetObjectItemCaseSensitive(p, "layers");
        pp[pi] = cJSON_GetObjectItemCaseSensitive(p, "by_position");
        if (!cJSON_IsArray(pl[pi])) {
            rs_errf(err, "%s: pairs[%d].layers: expected an array", c->path, pi);
            goto out;
        }
        int nl = cJSON_GetArraySize(pl[pi]);
        if (nl > nl_max) nl_max = nl;
        sb_puts(c->b, "<tr><td>");
        sb_escape(c->b, ids[pi]);
        sb_puts(c->b, "</td><td>");
        sb_escape(c->b, get_str(p, "isolates") ? get_str(p, "isolates") : "");
        sb_puts(c->b, "</td></tr>\n");
    }
    sb_puts(c->b, "</table>\n<div class=\"grid\">\n");
    int maxpos = 512;
    buf = calloc((size_t)(np + 1) * (size_t)(nl_max > maxpos ? nl_max : maxpos) * 4 + 4, sizeof *buf);
    if (!buf) { rs_errk(err, RS_ENOMEM, "out of memory"); goto out; }
    snprintf(ntext, sizeof ntext, "%lld captions per condition", (long long)n_in);
    static const char *METRICS[] = {"cos_raw", "l2_raw", "cka_linear", "cos_feat", "jaccard_feature", "js_mass_bits"};
    for (int m = 0; m < 6; m++) {
        svg_series S[COND_MAX_PAIRS + 1];
        int ns = 0, any = 0;
        size_t stride = (size_t)(nl_max > maxpos ? nl_max : maxpos);
        for (int q = 0; q < np; q++) {
            double *x = buf + ((size_t)q * 4 + 0) * stride, *y = buf + ((size_t)q * 4 + 1) * stride;
            double *lo = buf + ((size_t)q * 4 + 2) * stride, *hi = buf + ((size_t)q * 4 + 3) * stride;
            int li = 0;
            for (const cJSON *L = pl[q]->child; L; L = L->next, li++) {
                char where[64];
                snprintf(where, sizeof where, "pairs[%d].layers[%d].shift", q, li);
                rstat st;
                int g = get_stat(c, cJSON_GetObjectItemCaseSensitive(L, "shift"), METRICS[m], where, &st, err);
                if (g < 0) goto out;
                any |= g > 0;
                const cJSON *lx = cJSON_GetObjectItemCaseSensitive(L, "layer");
                x[li] = cJSON_IsNumber(lx) ? lx->valuedouble : li;
                y[li] = st.v, lo[li] = st.lo, hi[li] = st.hi;
            }
            S[ns++] = (svg_series){.name = ids[q], .n = li, .x = x, .y = y, .lo = lo, .hi = hi};
        }
        if (!any) continue;
        /* the permutation nulls of all pairs as one band: their lowest 2.5% to highest 97.5% per layer */
        double *nx = buf + ((size_t)np * 4 + 0) * stride, *ny = buf + ((size_t)np * 4 + 1) * stride;
        double *nlo = buf + ((size_t)np * 4 + 2) * stride, *nhi = buf + ((size_t)np * 4 + 3) * stride;
        int has_null = 0, nn = 0;
        for (const cJSON *L = pl[0]->child; L; L = L->next, nn++) {
            const cJSON *lx = cJSON_GetObjectItemCaseSensitive(L, "layer");
            nx[nn] = cJSON_IsNumber(lx) ? lx->valuedouble : nn;
            ny[nn] = nlo[nn] = nhi[nn] = NAN;
            double sum = 0;
            int cnt = 0;
            for (int q = 0; q < np; q++) {
                double yy, a, b;
                if (!null_band(cJSON_GetArrayItem(pl[q], nn), METRICS[m], &yy, &a, &b)) continue;
                nlo[nn] = isnan(nlo[nn]) || a < nlo[nn] ? a : nlo[nn];
                nhi[nn] = isnan(nhi[nn]) || b > nhi[nn] ? b : nhi[nn];
                sum += yy, cnt++;
            }
            if (cnt) ny[nn] = sum / cnt, has_null = 1;
        }
        if (has_null && ns < COND_MAX_PAIRS + 1)
            S[ns++] = (svg_series){.name = "permutation null (95%, all pairs)", .n = nn, .x = nx, .y = ny, .lo = nlo, .hi = nhi};
        svg_line_opts o = {.title = METRICS[m], .xlabel = "layer", .ylabel = METRICS[m], .n_series = ns, .series = S,
                           .integer_x = 1, .width = 440, .height = 280};
        fig_open(c);
        svg_line_plot(c->b, &o);
        char what[300];
        snprintf(what, sizeof what,
                 "%s between the two conditions of each pair, by layer; bands: CI. The band labelled permutation "
                 "null spans the 95%% null bands (caption tokens re-paired) of all pairs.", METRICS[m]);
        fig_close(c, what, ntext, ci);
    }
    /* spliced CE of the layer SAEs in every condition: a line per condition over the layers */
    const cJSON *ces = cJSON_GetObjectItemCaseSensitive(j, "ce");
    int nce = cJSON_IsArray(ces) ? cJSON_GetArraySize(ces) : 0;
    if (nce > 0 && nce <= maxpos) {
        const cJSON *first = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(ces, 0), "conditions");
        int nc = cJSON_IsArray(first) ? cJSON_GetArraySize(first) : 0;
        if (nc > np + 1) nc = np + 1; /* the buffer holds np + 1 series */
        svg_series S[COND_MAX_PAIRS + 1];
        size_t stride = (size_t)(nl_max > maxpos ? nl_max : maxpos);
        for (int q = 0; q < nc; q++) {
            double *x = buf + ((size_t)q * 4 + 0) * stride, *y = buf + ((size_t)q * 4 + 1) * stride;
            double *lo = buf + ((size_t)q * 4 + 2) * stride, *hi = buf + ((size_t)q * 4 + 3) * stride;
            const char *name = get_str(cJSON_GetArrayItem(first, q), "condition");
            int li = 0;
            for (const cJSON *E = ces->child; E; E = E->next, li++) {
                const cJSON *cc = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(E, "conditions"), q);
                rstat st;
                char where[64];
                snprintf(where, sizeof where, "ce[%d].conditions[%d]", li, q);
                if (get_stat(c, cc, "ce_loss_recovered", where, &st, err) < 0) goto out;
                x[li] = num_or_nan(E, "layer");
                y[li] = st.v, lo[li] = st.lo, hi[li] = st.hi;
            }
            S[q] = (svg_series){.name = name ? name : "?", .n = li, .x = x, .y = y, .lo = lo, .hi = hi};
        }
        if (nc > 0) {
            svg_line_opts o = {.title = "CE loss recovered by condition", .xlabel = "layer",
                               .ylabel = "ce_loss_recovered", .n_series = nc, .series = S, .integer_x = 1,
                               .width = 440, .height = 280};
            fig_open(c);
            svg_line_plot(c->b, &o);
            fig_close(c,
                      "CE loss recovered when the layer's SAE reconstruction replaces the caption's token rows, "
                      "one line per condition (the caption's own next-token predictions; the image prefix keeps its "
                      "activations); bands: CI.",
                      ntext, ci);
        }
    }
    sb_puts(c->b, "</div>\n");
    fdr_table(c, pl, ids, np, "family: metric \xC3\x97 layer \xC3\x97 pair of conditions.json");
    sb_puts(c->b, "<div class=\"grid\">\n");
    /* by position: hooks of the first pair, spread as the detailed layer figures are */
    int nh = cJSON_IsArray(pp[0]) ? cJSON_GetArraySize(pp[0]) : 0;
    for (int h = 0; h < nh; h++) {
        if (!layer_shown(h, nh)) continue;
        svg_series S[COND_MAX_PAIRS];
        int ns = 0;
        const char *hook = get_str(cJSON_GetArrayItem(pp[0], h), "hook");
        size_t stride = (size_t)(nl_max > maxpos ? nl_max : maxpos);
        int64_t nmin = INT64_MAX, nmax = 0;
        for (int q = 0; q < np; q++) {
            const cJSON *e = cJSON_IsArray(pp[q]) ? cJSON_GetArrayItem(pp[q], h) : NULL;
            const cJSON *pos = e ? cJSON_GetObjectItemCaseSensitive(e, "positions") : NULL;
            if (!cJSON_IsArray(pos)) continue;
            double *x = buf + ((size_t)q * 4 + 0) * stride, *y = buf + ((size_t)q * 4 + 1) * stride;
            double *lo = buf + ((size_t)q * 4 + 2) * stride, *hi = buf + ((size_t)q * 4 + 3) * stride;
            int k = 0;
            for (const cJSON *p = pos->child; p && k < maxpos; p = p->next, k++) {
                char where[64];
                snprintf(where, sizeof where, "pairs[%d].by_position[%d]", q, h);
                rstat st;
                if (get_stat(c, p, "cos_raw", where, &st, err) < 0) goto out;
                const cJSON *px = cJSON_GetObjectItemCaseSensitive(p, "position");
                int64_t nn = 0;
                if (get_n(c, p, "n_captions", where, &nn, err)) goto out;
                nmin = nn < nmin ? nn : nmin, nmax = nn > nmax ? nn : nmax;
                x[k] = cJSON_IsNumber(px) ? px->valuedouble : k;
                y[k] = st.v, lo[k] = st.lo, hi[k] = st.hi;
            }
            if (k) S[ns++] = (svg_series){.name = ids[q], .n = k, .x = x, .y = y, .lo = lo, .hi = hi};
        }
        if (!ns) continue;
        char title[160], what[400], nt[128];
        snprintf(title, sizeof title, "cos_raw by caption position, %s", hook ? hook : "?");
        svg_line_opts o = {.title = title, .xlabel = "caption token position (1 = first token after <bos>)",
                           .ylabel = "cos_raw", .n_series = ns, .series = S, .integer_x = 1, .width = 440, .height = 280};
        fig_open(c);
        svg_line_plot(c->b, &o);
        snprintf(what, sizeof what,
                 "Raw cosine between the two conditions of each pair at each caption token position (%s); in the image "
                 "conditions position 1 is the first token after the prefix (image, <bos>, prompt, \\n); positions "
                 "with fewer than 5 captions are left out; bands: CI.",
                 hook ? hook : "?");
        n_range(nt, sizeof nt, nmin, nmax, "captions per position");
        fig_close(c, what, nt, ci);
    }
    sb_puts(c->b, "</div>\n</section>\n");
    rc = 0;
out:
    free(buf);
    cJSON_Delete(j);
    return rc;
}

/* ---- Shift and caption quality (downstream.json) ---- */

#define DS_MAX_LAYERS 512

static void ds_cell(rs_sbuf *b, const cJSON *st) {
    char v[32], lo[32], hi[32], p[32], q[32];
    double x = num_or_nan(st, "value");
    if (!st || !isfinite(x)) {
        sb_puts(b, "<td>&mdash;</td><td></td><td></td>");
        return;
    }
    sb_printf(b, "<td>%s [%s, %s]</td><td>%s</td><td>%s</td>", svg_fmt(x, v, sizeof v),
              svg_fmt(num_or_nan(st, "ci_lo"), lo, sizeof lo), svg_fmt(num_or_nan(st, "ci_hi"), hi, sizeof hi),
              svg_fmt(num_or_nan(st, "p_value"), p, sizeof p), svg_fmt(num_or_nan(st, "q_value"), q, sizeof q));
}

/* The table (hook, layer, mean shift, ρ with CI, p, q, n) and a figure of ρ over the layers.
 * Absent downstream.json: no section and no note (the stage is optional). */
static int sec_downstream(ctx *c, rs_err *err) {
    snprintf(c->path, sizeof c->path, "%s/downstream.json", c->dir);
    if (!rs_path_exists(c->path)) return 0;
    cJSON *j;
    if (load(c, "downstream.json", "Shift and caption quality", &j, err)) return -1;
    int rc = -1;
    char ci[512], buf[64], ntext[128];
    if (get_ci(c, j, ci, sizeof ci, err)) goto out;
    int64_t n_cap = 0, n_img = 0;
    if (get_n(c, j, "n_captions", "top level", &n_cap, err) || get_n(c, j, "n_images", "top level", &n_img, err)) goto out;
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(j, "layers");
    int nl = cJSON_IsArray(layers) ? cJSON_GetArraySize(layers) : -1;
    if (nl < 0 || nl > DS_MAX_LAYERS) {
        rs_errf(err, "%s: \"layers\" must be an array of at most %d entries", c->path, DS_MAX_LAYERS);
        goto out;
    }
    h2(c, "downstream", "Shift and caption quality");
    sb_puts(c->b, "<p>Does a caption's representation shift go with how well PaliGemma models that caption given its "
                  "image? Per caption: <b>CE</b> = ");
    sb_escape(c->b, get_str(j, "ce_definition") ? get_str(j, "ce_definition") : "?");
    sb_puts(c->b, ". <b>Shift</b> = ");
    sb_escape(c->b, get_str(j, "shift_definition") ? get_str(j, "shift_definition") : "?");
    sb_puts(c->b, ". <b>&Delta;CE</b>: ");
    sb_escape(c->b, get_str(j, "ablation_definition") ? get_str(j, "ablation_definition") : "?");
    rstat m;
    if (get_stat(c, j, "ce_mean", "top level", &m, err) < 0) goto out;
    char lo[32], hi[32];
    sb_printf(c->b, ". Mean CE %s nats/token [%s, %s]. Spearman &rho; per hook; p: ", svg_fmt(m.v, buf, sizeof buf),
              svg_fmt(m.lo, lo, sizeof lo), svg_fmt(m.hi, hi, sizeof hi));
    sb_escape(c->b, get_str(j, "p_value") ? get_str(j, "p_value") : "?");
    sb_puts(c->b, "; q: ");
    sb_escape(c->b, get_str(j, "multiple_comparisons") ? get_str(j, "multiple_comparisons") : "?");
    sb_printf(c->b, "; %lld captions of %lld images. Per-caption values: <code>downstream_items.csv</code>.</p>\n",
              (long long)n_cap, (long long)n_img);
    sb_puts(c->b, "<h3>shift &harr; caption-CE correlation</h3>\n");
    sb_puts(c->b, "<table><tr><th>hook</th><th>layer</th><th>mean shift</th><th>&rho;(shift, CE) [95% CI]</th>"
                  "<th>p</th><th>q</th><th>mean &Delta;CE</th><th>&rho;(shift, &Delta;CE) [95% CI]</th><th>p</th>"
                  "<th>q</th><th>n</th></tr>\n");
    double x[DS_MAX_LAYERS], y[2][DS_MAX_LAYERS], ylo[2][DS_MAX_LAYERS], yhi[2][DS_MAX_LAYERS];
    int k = 0, has_d = 0;
    for (const cJSON *e = layers->child; e; e = e->next, k++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(e, "rho_shift_ce"), *d = cJSON_GetObjectItemCaseSensitive(e, "rho_shift_delta_ce");
        if ((a && !cJSON_IsObject(a)) || (d && !cJSON_IsObject(d))) {
            rs_errf(err, "%s: layers[%d]: rho_shift_ce / rho_shift_delta_ce must be objects", c->path, k);
            goto out;
        }
        has_d |= d != NULL;
        sb_puts(c->b, "<tr><td><code>");
        sb_escape(c->b, get_str(e, "hook") ? get_str(e, "hook") : "?");
        sb_printf(c->b, "</code></td><td>%s</td>", svg_fmt(num_or_nan(e, "layer"), buf, sizeof buf));
        sb_printf(c->b, "<td>%s</td>", svg_fmt(num_or_nan(e, "shift_mean"), buf, sizeof buf));
        ds_cell(c->b, a);
        sb_printf(c->b, "<td>%s</td>", d ? svg_fmt(num_or_nan(e, "delta_ce_mean"), buf, sizeof buf) : "&mdash;");
        ds_cell(c->b, d);
        sb_printf(c->b, "<td>%s</td></tr>\n", svg_fmt(num_or_nan(a, "n"), buf, sizeof buf));
        x[k] = num_or_nan(e, "layer");
        y[0][k] = num_or_nan(a, "value"), ylo[0][k] = num_or_nan(a, "ci_lo"), yhi[0][k] = num_or_nan(a, "ci_hi");
        y[1][k] = num_or_nan(d, "value"), ylo[1][k] = num_or_nan(d, "ci_lo"), yhi[1][k] = num_or_nan(d, "ci_hi");
    }
    sb_puts(c->b, "</table>\n");
    if (nl > 0) {
        svg_series S[2] = {{.name = "with CE", .n = nl, .x = x, .y = y[0], .lo = ylo[0], .hi = yhi[0]},
                           {.name = "with delta CE", .n = nl, .x = x, .y = y[1], .lo = ylo[1], .hi = yhi[1]}};
        svg_line_opts o = {.title = "Spearman rho of the shift with caption CE", .xlabel = "layer",
                           .ylabel = "Spearman rho",
                           .n_series = has_d ? 2 : 1, .series = S, .fixed_y = 1, .ymin = -1, .ymax = 1,
                           .has_hline = 1, .hline = 0, .hline_label = "0", .integer_x = 1, .width = 440, .height = 280};
        fig_open(c);
        svg_line_plot(c->b, &o);
        snprintf(ntext, sizeof ntext, "%lld captions, %lld images", (long long)n_cap, (long long)n_img);
        fig_close(c, "Spearman rho between each caption's shift and its CE (and the CE change when the hook's caption "
                     "rows are patched from Gemma-2), by layer.", ntext, ci);
    }
    sb_puts(c->b, "</section>\n");
    rc = 0;
out:
    cJSON_Delete(j);
    return rc;
}

/* ---- Languages (languages.json) ---- */

/* "v [lo, hi]" of a {value, ci_lo, ci_hi} object (or "–"). */
static void cell_ci(ctx *c, const cJSON *o, const char *key) {
    rstat s;
    rs_err e = {0};
    char a[32], b[32], d[32];
    if (get_stat(c, o, key, "", &s, &e) <= 0 || !isfinite(s.v)) {
        sb_puts(c->b, "<td>&ndash;</td>");
        return;
    }
    sb_printf(c->b, "<td>%s [%s, %s]</td>", svg_fmt(s.v, a, sizeof a), svg_fmt(s.lo, b, sizeof b), svg_fmt(s.hi, d, sizeof d));
}

static void cell_pq(ctx *c, const cJSON *o) {
    char a[32], b[32];
    sb_printf(c->b, "<td>%s</td><td>%s</td>", svg_fmt(num_or_nan(o, "p_value"), a, sizeof a),
              svg_fmt(num_or_nan(o, "q_value"), b, sizeof b));
}

/* Per language: the cross-language similarity by layer (figure: the gap per condition), a
 * table per hook of similarity, retrieval and the English -> language probe transfer, and the
 * shift in English against the language. Absent languages.json: no section (optional stage). */
static int sec_languages(ctx *c, rs_err *err) {
    snprintf(c->path, sizeof c->path, "%s/languages.json", c->dir);
    if (!rs_path_exists(c->path)) return 0;
    cJSON *j;
    if (load(c, "languages.json", "Languages", &j, err)) return -1;
    int rc = -1;
    double *buf = NULL;
    const cJSON *langs = cJSON_GetObjectItemCaseSensitive(j, "languages");
    if (!cJSON_IsArray(langs)) {
        rs_errf(err, "%s: needs \"languages\" (an array)", c->path);
        goto out;
    }
    int64_t ncap = 0, nimg = 0;
    if (get_n(c, j, "n_captions", "top level", &ncap, err) || get_n(c, j, "n_images", "top level", &nimg, err)) goto out;
    const char *ci_text = get_str(j, "ci") ? get_str(j, "ci") : "?";
    h2(c, "languages", "Languages: the captions against their translations");
    sb_printf(c->b, "<p>Every caption (%lld captions of %lld images) read again in translation by the same models "
                    "(PaliGemma with the language's prompt). <b>Similarity</b>: per caption, the cosine of its pooled "
                    "representation (each language centred by its own mean) with its own translation minus the mean "
                    "cosine with the translations of other images' captions (the gap; 0 when the pairing does not "
                    "matter), with its pairing-permutation null; recall@1: the translation nearest to the caption is "
                    "one of its image's. <b>VLM &minus; LLM</b>: the gap's paired difference (sign-flip test over "
                    "images). <b>Shift</b>: 1 &minus; cos of the caption's pooled representation in Gemma-2 and in "
                    "the VLM, in English and in the language, and their paired difference. <b>Transfer</b>: the "
                    "concept probe fitted on the English captions scored on their translations. q: Benjamini&ndash;"
                    "Hochberg over every p-value of the file.</p>\n",
              (long long)ncap, (long long)nimg);
    int li = 0;
    for (const cJSON *L = langs->child; L; L = L->next, li++) {
        const char *code = get_str(L, "code");
        const cJSON *layers = cJSON_GetObjectItemCaseSensitive(L, "layers");
        if (!code || !cJSON_IsArray(layers)) {
            rs_errf(err, "%s: languages[%d]: needs code and layers", c->path, li);
            goto out;
        }
        sb_puts(c->b, "<h3>");
        sb_escape(c->b, code);
        sb_puts(c->b, " (prompt &ldquo;");
        sb_escape(c->b, get_str(L, "prompt") ? get_str(L, "prompt") : "?");
        sb_puts(c->b, "&rdquo;)</h3>\n");
        /* figure: the gap by layer, one line per condition */
        int nl = cJSON_GetArraySize(layers);
        static const char *const CONDS[] = {"llm", "vlm_text", "vlm_caption"};
        free(buf);
        if (!(buf = malloc(sizeof *buf * (size_t)(nl ? nl : 1) * 13))) {
            rs_errk(err, RS_ENOMEM, "out of memory");
            goto out;
        }
        double *x = buf;
        svg_series S[4];
        int ns = 0;
        for (int q = 0; q < 3; q++) {
            double *y = buf + (size_t)nl * (1 + 3 * q), *lo = y + nl, *hi = lo + nl;
            int any = 0, k = 0;
            for (const cJSON *H = layers->child; H; H = H->next, k++) {
                x[k] = num_or_nan(H, "layer");
                y[k] = lo[k] = hi[k] = NAN;
                const cJSON *e;
                cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(H, "similarity")) {
                    if (!get_str(e, "condition") || strcmp(get_str(e, "condition"), CONDS[q])) continue;
                    rstat s;
                    if (get_stat(c, e, "gap", "similarity[]", &s, err) < 0) goto out;
                    y[k] = s.v, lo[k] = s.lo, hi[k] = s.hi, any = 1;
                }
            }
            if (any) S[ns++] = (svg_series){.name = CONDS[q], .n = nl, .x = x, .y = y, .lo = lo, .hi = hi};
        }
        if (ns) {
            char title[64], ntext[96];
            snprintf(title, sizeof title, "English vs %.16s: similarity gap", code);
            svg_line_opts o = {.title = title, .xlabel = "layer", .ylabel = "gap (cosine)", .n_series = ns, .series = S,
                               .integer_x = 1, .width = 400, .height = 260, .has_hline = 1, .hline = 0,
                               .hline_label = "no pairing effect"};
            fig_open(c);
            svg_line_plot(c->b, &o);
            snprintf(ntext, sizeof ntext, "%lld captions, %lld images per point", (long long)ncap, (long long)nimg);
            fig_close(c, "Cosine of a caption with its own translation minus with other images' translations, by layer, "
                         "per condition (llm: Gemma-2; vlm_text: PaliGemma's decoder, caption alone; vlm_caption: "
                         "PaliGemma after the image). Band and bars: CI.", ntext, ci_text);
        }
        sb_puts(c->b, "<table><tr><th>hook</th><th>condition</th><th>cos own translation</th><th>cos others</th>"
                      "<th>gap [95% CI]</th><th>null (95th pct)</th><th>p</th><th>q</th><th>R@1 en&rarr;lang</th>"
                      "<th>chance</th><th>probe en&rarr;en</th><th>probe en&rarr;lang</th><th>majority</th></tr>\n");
        for (const cJSON *H = layers->child; H; H = H->next) {
            const cJSON *e;
            cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(H, "similarity")) {
                const char *cond = get_str(e, "condition") ? get_str(e, "condition") : "?";
                char a[32], b[32];
                sb_puts(c->b, "<tr><td><code>");
                sb_escape(c->b, get_str(H, "hook") ? get_str(H, "hook") : "?");
                sb_puts(c->b, "</code></td><td>");
                sb_escape(c->b, cond);
                sb_puts(c->b, "</td>");
                cell_ci(c, e, "cos_matched");
                cell_ci(c, e, "cos_other");
                cell_ci(c, e, "gap");
                sb_printf(c->b, "<td>%s</td>", svg_fmt(num_or_nan(e, "gap_null_hi"), a, sizeof a));
                cell_pq(c, e);
                cell_ci(c, e, "recall1_en_to_lang");
                sb_printf(c->b, "<td>%s</td>", svg_fmt(num_or_nan(e, "recall1_chance"), b, sizeof b));
                const cJSON *t = NULL, *tt;
                cJSON_ArrayForEach(tt, cJSON_GetObjectItemCaseSensitive(H, "transfer"))
                    if (get_str(tt, "condition") && !strcmp(get_str(tt, "condition"), cond)) t = tt;
                if (t) {
                    const cJSON *ee = cJSON_GetObjectItemCaseSensitive(t, "en_to_en"), *el = cJSON_GetObjectItemCaseSensitive(t, "en_to_lang");
                    char v1[32], l1[32], h1[32];
                    sb_printf(c->b, "<td>%s [%s, %s]</td>", svg_fmt(num_or_nan(ee, "accuracy"), v1, sizeof v1),
                              svg_fmt(num_or_nan(ee, "ci_lo"), l1, sizeof l1), svg_fmt(num_or_nan(ee, "ci_hi"), h1, sizeof h1));
                    sb_printf(c->b, "<td>%s [%s, %s]</td>", svg_fmt(num_or_nan(el, "accuracy"), v1, sizeof v1),
                              svg_fmt(num_or_nan(el, "ci_lo"), l1, sizeof l1), svg_fmt(num_or_nan(el, "ci_hi"), h1, sizeof h1));
                    sb_printf(c->b, "<td>%s</td></tr>\n", svg_fmt(num_or_nan(t, "majority"), a, sizeof a));
                } else {
                    sb_puts(c->b, "<td colspan=\"3\">no probe transfer (one label)</td></tr>\n");
                }
            }
        }
        sb_puts(c->b, "</table>\n<table><tr><th>hook</th><th>VLM &minus; LLM gap</th><th>difference [95% CI]</th><th>p</th>"
                      "<th>q</th><th>shift pair</th><th>English</th><th>language</th><th>language &minus; English</th>"
                      "<th>p</th><th>q</th></tr>\n");
        for (const cJSON *H = layers->child; H; H = H->next) {
            const cJSON *cmp = cJSON_GetObjectItemCaseSensitive(H, "similarity_vs_llm"), *shf = cJSON_GetObjectItemCaseSensitive(H, "shift");
            int n = cJSON_GetArraySize(cmp) > cJSON_GetArraySize(shf) ? cJSON_GetArraySize(cmp) : cJSON_GetArraySize(shf);
            for (int k = 0; k < n; k++) {
                const cJSON *a = cJSON_GetArrayItem(cmp, k), *b = cJSON_GetArrayItem(shf, k);
                sb_puts(c->b, "<tr><td><code>");
                sb_escape(c->b, get_str(H, "hook") ? get_str(H, "hook") : "?");
                sb_puts(c->b, "</code></td>");
                if (a) {
                    sb_puts(c->b, "<td>");
                    sb_escape(c->b, get_str(a, "condition") ? get_str(a, "condition") : "?");
                    sb_puts(c->b, " &minus; llm</td>");
                    cell_ci(c, a, "gap_difference");
                    cell_pq(c, a);
                } else {
                    sb_puts(c->b, "<td colspan=\"4\"></td>");
                }
                if (b) {
                    sb_puts(c->b, "<td>");
                    sb_escape(c->b, get_str(b, "pair") ? get_str(b, "pair") : "?");
                    sb_puts(c->b, "</td>");
                    cell_ci(c, b, "shift_en");
                    cell_ci(c, b, "shift_lang");
                    cell_ci(c, b, "difference");
                    cell_pq(c, b);
                } else {
                    sb_puts(c->b, "<td colspan=\"6\"></td>");
                }
                sb_puts(c->b, "</tr>\n");
            }
        }
        sb_puts(c->b, "</table>\n");
        /* the token-aligned shift (shift stage's metrics) within each language */
        int any = 0;
        for (const cJSON *H = layers->child; H; H = H->next) {
            const cJSON *st = cJSON_GetObjectItemCaseSensitive(H, "shift_tokens");
            if (!cJSON_IsObject(st)) continue;
            const cJSON *en = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(st, "en"), "shift");
            const cJSON *lg = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(st, "lang"), "shift");
            if (!any++)
                sb_puts(c->b, "<table><tr><th>hook</th><th>pair</th><th>metric (token-aligned)</th><th>English [95% CI]</th>"
                              "<th>q</th><th>language [95% CI]</th><th>q</th></tr>\n");
            static const char *const MET[] = {"cos_raw", "cos_feat", "jaccard_feature", "js_mass_bits", "cka_debiased"};
            for (int m = 0; m < 5; m++) {
                if (!cJSON_GetObjectItemCaseSensitive(en, MET[m]) && !cJSON_GetObjectItemCaseSensitive(lg, MET[m])) continue;
                char a[32];
                sb_puts(c->b, "<tr><td><code>");
                sb_escape(c->b, get_str(H, "hook") ? get_str(H, "hook") : "?");
                sb_puts(c->b, "</code></td><td>");
                sb_escape(c->b, get_str(st, "pair") ? get_str(st, "pair") : "?");
                sb_printf(c->b, "</td><td>%s</td>", MET[m]);
                cell_ci(c, en, MET[m]);
                sb_printf(c->b, "<td>%s</td>", svg_fmt(num_or_nan(cJSON_GetObjectItemCaseSensitive(en, MET[m]), "q_value"), a, sizeof a));
                cell_ci(c, lg, MET[m]);
                sb_printf(c->b, "<td>%s</td></tr>\n", svg_fmt(num_or_nan(cJSON_GetObjectItemCaseSensitive(lg, MET[m]), "q_value"), a, sizeof a));
            }
        }
        if (any)
            sb_puts(c->b, "</table>\n<p class=\"note\">Token-aligned: the shift stage's metrics (docs/metrics.md) between "
                          "Gemma-2 and the VLM on the same tokens, computed within each language (its own tokens), side "
                          "by side; q over these entries of the file (metric &times; hook &times; language). CI: 95% "
                          "percentile bootstrap over captions.</p>\n");
    }
    sb_printf(c->b, "<p class=\"note\">n = %lld captions of %lld images in every cell; CI: ", (long long)ncap, (long long)nimg);
    sb_escape(c->b, ci_text);
    sb_puts(c->b, ". Shift pairs: a-b = Gemma-2 vs PaliGemma's decoder on the caption alone (weights only), a-c = vs "
                  "PaliGemma after the caption's image. Files: <code>languages.json</code>, <code>languages_summary.csv"
                  "</code>; stores <code>acts/lang_&lt;code&gt;/</code> (docs/languages.md).</p>\n</section>\n");
    rc = 0;
out:
    free(buf);
    cJSON_Delete(j);
    return rc;
}

/* ---- The VLM's own SAE (sae_train.json) ---- */

/* Per hook: the trained SAE (architecture, width, in-sample fit) and its one-to-one match with
 * the configured SAE (fraction matched with its CI and n, mean cosine, both nulls, the verdict),
 * or the reason the match was skipped. Absent sae_train.json: no section and no note (the
 * stage is optional). */
static int sec_sae_train(ctx *c, rs_err *err) {
    snprintf(c->path, sizeof c->path, "%s/sae_train.json", c->dir);
    if (!rs_path_exists(c->path)) return 0;
    cJSON *j;
    if (load(c, "sae_train.json", "The VLM's own SAE", &j, err)) return -1;
    int rc = -1;
    const cJSON *hooks = cJSON_GetObjectItemCaseSensitive(j, "hooks");
    if (!cJSON_IsArray(hooks)) {
        rs_errf(err, "%s: needs \"hooks\" (an array)", c->path);
        goto out;
    }
    h2(c, "sae_train", "The VLM's own SAE against the configured one");
    sb_puts(c->b, "<p>");
    sb_escape(c->b, get_str(j, "definition") ? get_str(j, "definition") : "?");
    sb_puts(c->b, ". Architecture: ");
    sb_escape(c->b, get_str(j, "arch") ? get_str(j, "arch") : "?");
    sb_puts(c->b, "; rows: store <code>");
    sb_escape(c->b, get_str(j, "store") ? get_str(j, "store") : "?");
    /* sae_train.held_out: a column with the fit on the test images' captions (absent: the table as before) */
    int held = 0;
    const char *held_ci = NULL;
    for (const cJSON *e = hooks->child; e; e = e->next) {
        const cJSON *ho = cJSON_GetObjectItemCaseSensitive(e, "eval_held_out");
        if (cJSON_IsObject(ho)) held = 1, held_ci = held_ci ? held_ci : get_str(ho, "ci");
    }
    sb_puts(c->b, "</code>. The fit is in-sample (the training rows). A latent pair is matched when its decoder "
                  "cosine reaches the threshold; the nulls match the trained SAE against random unit directions and "
                  "against a dimension-permuted copy of the configured SAE, and the match beats them when the CI's "
                  "lower end exceeds the largest null fraction.</p>\n");
    sb_puts(c->b, "<table><tr><th>hook</th><th>width</th><th>n rows</th><th>FVU (in-sample)</th><th>L0</th>"
                  "<th>dead</th>");
    if (held) sb_puts(c->b, "<th>held-out FVU [95% CI] (n images)</th>");
    sb_puts(c->b, "<th>matched fraction [95% CI]</th><th>n pairs</th><th>mean cosine [95% CI]</th>"
                  "<th>null: random (max)</th><th>null: permuted (max)</th><th>beats the nulls</th></tr>\n");
    int k = 0;
    const char *ci_text = NULL;
    for (const cJSON *e = hooks->child; e; e = e->next, k++) {
        const char *hook = get_str(e, "hook");
        const cJSON *tr = cJSON_GetObjectItemCaseSensitive(e, "train"), *m = cJSON_GetObjectItemCaseSensitive(e, "match");
        int64_t nrows = 0;
        char a1[32], a2[32], a3[32], a4[32];
        if (!hook || !cJSON_IsObject(tr)) {
            rs_errf(err, "%s: hooks[%d]: needs hook and train", c->path, k);
            goto out;
        }
        if (get_n(c, e, "n_rows", "hooks[]", &nrows, err)) goto out;
        sb_puts(c->b, "<tr><td><code>");
        sb_escape(c->b, hook);
        sb_printf(c->b, "</code></td><td>%s</td><td>%lld</td><td>%s</td><td>%s</td><td>%s</td>",
                  svg_fmt(num_or_nan(e, "d_sae"), a1, sizeof a1), (long long)nrows,
                  svg_fmt(num_or_nan(tr, "final_fvu"), a2, sizeof a2), svg_fmt(num_or_nan(tr, "final_l0"), a3, sizeof a3),
                  svg_fmt(num_or_nan(tr, "dead_latents"), a4, sizeof a4));
        if (held) {
            const cJSON *ho = cJSON_GetObjectItemCaseSensitive(e, "eval_held_out");
            rstat hf;
            int64_t ni = 0;
            if (!cJSON_IsObject(ho)) sb_puts(c->b, "<td>&ndash;</td>");
            else if (get_stat(c, ho, "fvu", "eval_held_out", &hf, err) < 0 || get_n(c, ho, "n_images", "eval_held_out", &ni, err))
                goto out;
            else
                sb_printf(c->b, "<td>%s [%s, %s] (%lld)</td>", svg_fmt(hf.v, a1, sizeof a1), svg_fmt(hf.lo, a2, sizeof a2),
                          svg_fmt(hf.hi, a3, sizeof a3), (long long)ni);
        }
        if (!cJSON_IsObject(m)) {
            sb_puts(c->b, "<td colspan=\"6\">not matched: ");
            sb_escape(c->b, get_str(e, "match_skipped") ? get_str(e, "match_skipped") : "no match in the file");
            sb_puts(c->b, "</td></tr>\n");
            continue;
        }
        rstat f, mc;
        int64_t np = 0;
        if (get_stat(c, m, "frac_matched", "match", &f, err) < 0 || get_stat(c, m, "mean_cos", "match", &mc, err) < 0 ||
            get_n(c, m, "n_pairs", "match", &np, err))
            goto out;
        if (!ci_text) ci_text = get_str(m, "ci");
        const cJSON *nr = cJSON_GetObjectItemCaseSensitive(m, "null_random"), *npm = cJSON_GetObjectItemCaseSensitive(m, "null_permuted");
        const cJSON *bn = cJSON_GetObjectItemCaseSensitive(m, "beats_null");
        sb_printf(c->b, "<td>%s [%s, %s] (cos &ge; %s)</td><td>%lld</td>", svg_fmt(f.v, a1, sizeof a1),
                  svg_fmt(f.lo, a2, sizeof a2), svg_fmt(f.hi, a3, sizeof a3),
                  svg_fmt(num_or_nan(m, "cos_threshold"), a4, sizeof a4), (long long)np);
        sb_printf(c->b, "<td>%s [%s, %s]</td>", svg_fmt(mc.v, a1, sizeof a1), svg_fmt(mc.lo, a2, sizeof a2),
                  svg_fmt(mc.hi, a3, sizeof a3));
        sb_printf(c->b, "<td>%s (%s)</td><td>%s (%s)</td><td>%s</td></tr>\n",
                  svg_fmt(num_or_nan(nr, "frac_matched_mean"), a1, sizeof a1),
                  svg_fmt(num_or_nan(nr, "frac_matched_max"), a2, sizeof a2),
                  svg_fmt(num_or_nan(npm, "frac_matched_mean"), a3, sizeof a3),
                  svg_fmt(num_or_nan(npm, "frac_matched_max"), a4, sizeof a4),
                  cJSON_IsBool(bn) ? (cJSON_IsTrue(bn) ? "yes" : "no") : "?");
    }
    sb_puts(c->b, "</table>\n<p class=\"note\">CI: ");
    sb_escape(c->b, ci_text ? ci_text : "none (no hook was matched)");
    sb_puts(c->b, "; n = matched pairs (treated as independent draws, docs/sae-training.md). Trained SAEs: "
                  "<code>sae_train/&lt;hook&gt;/</code> (sae-lens folders, with <code>pairs.csv</code>).");
    if (held) {
        sb_puts(c->b, " Held out (<code>sae_train.held_out</code>): trained on the captions of the images outside the "
                      "manifest's test split (n rows, the in-sample columns), FVU on the test images' captions; CI: ");
        sb_escape(c->b, held_ci ? held_ci : "?");
        sb_puts(c->b, "; L0 and dead latents on them in <code>sae_train.json</code> (eval_held_out).");
    }
    sb_puts(c->b, "</p>\n");
    rc = 0;
out:
    cJSON_Delete(j);
    return rc;
}

/* ---- Crosscoder (crosscoder.json) ---- */

#define XC_MAX_HOOKS 256
#define XC_MAX_BINS 1000

/* Per hook: the histogram of relative decoder norms, the class table (count, fraction with
 * its CI, n) and the fit per side. Absent crosscoder.json: no section and no note (the stage
 * is optional). */
static int sec_crosscoder(ctx *c, rs_err *err) {
    snprintf(c->path, sizeof c->path, "%s/crosscoder.json", c->dir);
    if (!rs_path_exists(c->path)) return 0;
    cJSON *j;
    if (load(c, "crosscoder.json", "Crosscoder", &j, err)) return -1;
    int rc = -1;
    char ci[512], buf[64], lo[32], hi[32], ntext[160], what[1024];
    double *edges = NULL, *counts = NULL;
    if (get_ci(c, j, ci, sizeof ci, err)) goto out;
    const char *class_ci = get_str(j, "class_ci");
    const cJSON *hooks = cJSON_GetObjectItemCaseSensitive(j, "hooks");
    int nh = cJSON_IsArray(hooks) ? cJSON_GetArraySize(hooks) : -1;
    if (nh < 0 || nh > XC_MAX_HOOKS || !class_ci) {
        rs_errf(err, "%s: needs \"hooks\" (an array of at most %d entries) and \"class_ci\"", c->path, XC_MAX_HOOKS);
        goto out;
    }
    h2(c, "crosscoder", "Crosscoder: shared and model-specific latents");
    sb_puts(c->b, "<p>");
    sb_escape(c->b, get_str(j, "definition") ? get_str(j, "definition") : "?");
    sb_puts(c->b, ". Rows: ");
    sb_escape(c->b, get_str(j, "rows") ? get_str(j, "rows") : "?");
    sb_puts(c->b, ". ");
    sb_escape(c->b, get_str(j, "rel_norm") ? get_str(j, "rel_norm") : "");
    sb_puts(c->b, "; ");
    sb_escape(c->b, get_str(j, "alive") ? get_str(j, "alive") : "");
    sb_puts(c->b, ". Per-latent values: <code>crosscoder_latents.csv</code>.</p>\n");
    int k = 0;
    for (const cJSON *e = hooks->child; e; e = e->next, k++) {
        const char *hook = get_str(e, "hook");
        const cJSON *H = cJSON_GetObjectItemCaseSensitive(e, "rel_norm_hist"), *cls = cJSON_GetObjectItemCaseSensitive(e, "classes");
        const cJSON *fit = cJSON_GetObjectItemCaseSensitive(e, "fit"), *lat = cJSON_GetObjectItemCaseSensitive(e, "latents");
        const cJSON *ed = cJSON_GetObjectItemCaseSensitive(H, "edges"), *ct = cJSON_GetObjectItemCaseSensitive(H, "counts");
        int nb = cJSON_IsArray(ct) ? cJSON_GetArraySize(ct) : -1;
        int64_t alive = 0, nlat = 0, nrows = 0, nimg = 0;
        if (!hook || !cJSON_IsObject(cls) || !cJSON_IsObject(fit) || nb < 1 || nb > XC_MAX_BINS || !cJSON_IsArray(ed) ||
            cJSON_GetArraySize(ed) != nb + 1) {
            rs_errf(err, "%s: hooks[%d]: needs hook, classes, fit and rel_norm_hist {edges[n+1], counts[n]}", c->path, k);
            goto out;
        }
        if (get_n(c, H, "n", "rel_norm_hist", &alive, err) || get_n(c, lat, "n", "latents", &nlat, err) ||
            get_n(c, fit, "n_rows", "fit", &nrows, err) || get_n(c, fit, "n_images", "fit", &nimg, err))
            goto out;
        free(edges), free(counts);
        edges = malloc((size_t)(nb + 1) * sizeof *edges), counts = malloc((size_t)nb * sizeof *counts);
        if (!edges || !counts) { rs_errk(err, RS_ENOMEM, "out of memory"); goto out; }
        for (int b = 0; b <= nb; b++) {
            const cJSON *v = cJSON_GetArrayItem(ed, b);
            edges[b] = cJSON_IsNumber(v) ? v->valuedouble : NAN;
        }
        for (int b = 0; b < nb; b++) {
            const cJSON *v = cJSON_GetArrayItem(ct, b);
            counts[b] = cJSON_IsNumber(v) && v->valuedouble >= 0 ? v->valuedouble : 0;
        }
        sb_puts(c->b, "<h3><code>");
        sb_escape(c->b, hook);
        sb_printf(c->b, "</code>: %lld latents (%lld alive), ", (long long)nlat, (long long)alive);
        sb_escape(c->b, get_str(e, "sparsity") ? get_str(e, "sparsity") : "?");
        sb_printf(c->b, ", %s training token rows</h3>\n", svg_fmt(num_or_nan(e, "n_train_rows"), buf, sizeof buf));
        fig_open(c);
        char title[400];
        snprintf(title, sizeof title, "Relative decoder norm, %s", hook);
        svg_histogram(c->b, title, "||d_vlm|| / (||d_llm|| + ||d_vlm||)", "latents", edges, counts, nb, 460, 280);
        snprintf(ntext, sizeof ntext, "%lld alive latents", (long long)alive);
        snprintf(what, sizeof what, "Per-latent relative decoder norm of the crosscoder at %s: 0 = only Gemma-2 (LLM) "
                 "decodes it, 1 = only PaliGemma (VLM), 0.5 = both equally.", hook);
        fig_close(c, what, ntext, "none (a distribution over latents)");
        const cJSON *nul = cJSON_GetObjectItemCaseSensitive(e, "null_side_swap");
        sb_puts(c->b, "<table><tr><th>class</th><th>definition</th><th>count</th><th>fraction [95% CI]</th><th>n</th>");
        if (nul) sb_puts(c->b, "<th>side-swap null: mean fraction (range)</th><th>p</th>");
        /* crosscoder.seeds > 1: the fraction over the retrainings (absent with one seed) */
        const cJSON *xs = cJSON_GetObjectItemCaseSensitive(e, "across_seeds");
        int64_t n_seeds = 0;
        if (xs && get_n(c, xs, "n_seeds", "across_seeds", &n_seeds, err)) goto out;
        if (xs) sb_printf(c->b, "<th>across %lld seeds: mean [95%% CI]%s</th>", (long long)n_seeds, nul ? "; beats the null" : "");
        sb_puts(c->b, "</tr>\n");
        const char *cn[4] = {"llm_only", "shared", "vlm_only", "other"};
        const char *label[4] = {"LLM-only", "shared", "VLM-only", "other"};
        for (int q = 0; q < 4; q++) {
            const cJSON *o = cJSON_GetObjectItemCaseSensitive(cls, cn[q]);
            rstat f;
            if (!cJSON_IsObject(o)) {
                rs_errf(err, "%s: hooks[%d].classes.%s is missing", c->path, k, cn[q]);
                goto out;
            }
            if (get_stat(c, o, "fraction", cn[q], &f, err) < 0) goto out;
            sb_printf(c->b, "<tr><td>%s</td><td>", label[q]);
            sb_escape(c->b, get_str(o, "definition") ? get_str(o, "definition") : "");
            sb_printf(c->b, "</td><td>%s</td>", svg_fmt(num_or_nan(o, "count"), buf, sizeof buf));
            sb_printf(c->b, "<td>%s [%s, %s]</td><td>%lld</td>", svg_fmt(f.v, ntext, sizeof ntext),
                      svg_fmt(f.lo, lo, sizeof lo), svg_fmt(f.hi, hi, sizeof hi), (long long)alive);
            if (nul) {
                const cJSON *nq = cJSON_GetObjectItemCaseSensitive(o, "null_side_swap");
                char a1[32], a2[32], a3[32], a4[32];
                sb_printf(c->b, "<td>%s (%s – %s)</td><td>%s</td>", svg_fmt(num_or_nan(nq, "fraction_mean"), a1, sizeof a1),
                          svg_fmt(num_or_nan(nq, "fraction_min"), a2, sizeof a2),
                          svg_fmt(num_or_nan(nq, "fraction_max"), a3, sizeof a3), svg_fmt(num_or_nan(nq, "p"), a4, sizeof a4));
            }
            if (xs) {
                const cJSON *aq = cJSON_GetObjectItemCaseSensitive(o, "across_seeds"), *bn = cJSON_GetObjectItemCaseSensitive(aq, "beats_null");
                char a1[32], a2[32], a3[32];
                sb_printf(c->b, "<td>%s [%s, %s]", svg_fmt(num_or_nan(aq, "mean"), a1, sizeof a1),
                          svg_fmt(num_or_nan(aq, "ci_lo"), a2, sizeof a2), svg_fmt(num_or_nan(aq, "ci_hi"), a3, sizeof a3));
                if (nul) sb_printf(c->b, "; %s", cJSON_IsBool(bn) ? (cJSON_IsTrue(bn) ? "yes" : "no") : "?");
                sb_puts(c->b, "</td>");
            }
            sb_puts(c->b, "</tr>\n");
        }
        sb_puts(c->b, "</table>\n<p class=\"note\">Class CI: ");
        sb_escape(c->b, class_ci);
        sb_puts(c->b, ".");
        if (nul) {
            sb_printf(c->b, " Null (%s runs): ", svg_fmt(num_or_nan(nul, "runs"), buf, sizeof buf));
            sb_escape(c->b, get_str(nul, "definition") ? get_str(nul, "definition") : "");
            sb_puts(c->b, "; p = (1 + null runs at least as extreme) / (1 + runs), one-sided: exclusive and other classes "
                          "above the null, shared below it; its smallest value is 1 / (1 + runs).");
        }
        if (xs) {
            sb_printf(c->b, " Across seeds (n = %lld trainings on the same rows): ", (long long)n_seeds);
            sb_escape(c->b, get_str(xs, "ci") ? get_str(xs, "ci") : "?");
            if (nul) {
                sb_puts(c->b, "; beats the null: ");
                sb_escape(c->b, get_str(xs, "beats_null") ? get_str(xs, "beats_null") : "?");
            }
            sb_puts(c->b, ".");
        }
        sb_puts(c->b, "</p>\n");
        sb_puts(c->b, "<table><tr><th>side</th><th>FVU [95% CI]</th><th>explained variance [95% CI]</th><th>n rows</th>"
                      "</tr>\n");
        const char *side[2] = {"llm", "vlm"}, *sl[2] = {"Gemma-2 (LLM)", "PaliGemma (VLM)"};
        for (int s2 = 0; s2 < 2; s2++) {
            const cJSON *so = cJSON_GetObjectItemCaseSensitive(fit, side[s2]);
            rstat fv, ev;
            if (get_stat(c, so, "fvu", side[s2], &fv, err) < 0 || get_stat(c, so, "explained_variance", side[s2], &ev, err) < 0)
                goto out;
            char a1[32], a2[32], a3[32];
            sb_printf(c->b, "<tr><td>%s</td><td>%s [%s, %s]</td>", sl[s2], svg_fmt(fv.v, a1, sizeof a1),
                      svg_fmt(fv.lo, a2, sizeof a2), svg_fmt(fv.hi, a3, sizeof a3));
            sb_printf(c->b, "<td>%s [%s, %s]</td><td>%lld</td></tr>\n", svg_fmt(ev.v, a1, sizeof a1),
                      svg_fmt(ev.lo, a2, sizeof a2), svg_fmt(ev.hi, a3, sizeof a3), (long long)nrows);
        }
        rstat l0;
        if (get_stat(c, fit, "l0", "fit", &l0, err) < 0) goto out;
        sb_printf(c->b, "</table>\n<p class=\"note\">L0 (mean active latents per token) %s [%s, %s]; ",
                  svg_fmt(l0.v, buf, sizeof buf), svg_fmt(l0.lo, lo, sizeof lo), svg_fmt(l0.hi, hi, sizeof hi));
        sb_printf(c->b, "fit evaluated on %lld token rows of %lld images: ", (long long)nrows, (long long)nimg);
        sb_escape(c->b, get_str(e, "eval") ? get_str(e, "eval") : "?");
        sb_puts(c->b, ". CI: ");
        sb_escape(c->b, ci);
        sb_puts(c->b, ".</p>\n");
    }
    sb_puts(c->b, "</section>\n");
    rc = 0;
out:
    free(edges), free(counts);
    cJSON_Delete(j);
    return rc;
}

/* ---- alignment.json (probes.alignment) ---- */

/* Per hook: held-out retrieval recall@k of the InfoNCE map beside Procrustes and ridge, each
 * with its shuffled-pair null, and the chance row k/n. Absent alignment.json: no section and
 * no note (the config has no probes.alignment). */
static int sec_alignment(ctx *c, rs_err *err) {
    static const char *const METH[3][2] = {{"infonce", "InfoNCE"}, {"procrustes", "Procrustes"}, {"ridge", "ridge"}};
    static const char *const DIRS[2] = {"text_to_image", "image_to_text"};
    static const char *const KS[3] = {"1", "5", "10"};
    snprintf(c->path, sizeof c->path, "%s/alignment.json", c->dir);
    if (!rs_path_exists(c->path)) return 0;
    cJSON *j;
    if (load(c, "alignment.json", "Alignment", &j, err)) return -1;
    int rc = -1, k = 0;
    char ci[512], ntext[160], what[1600];
    if (get_ci(c, j, ci, sizeof ci, err)) goto out;
    const cJSON *hooks = cJSON_GetObjectItemCaseSensitive(j, "hooks");
    if (!cJSON_IsArray(hooks)) {
        rs_errf(err, "%s: needs \"hooks\" (an array)", c->path);
        goto out;
    }
    h2(c, "alignment", "Contrastive text-image alignment: held-out retrieval");
    sb_puts(c->b, "<p>");
    sb_escape(c->b, get_str(j, "description") ? get_str(j, "description") : "?");
    sb_puts(c->b, ". Null: ");
    sb_escape(c->b, get_str(j, "null") ? get_str(j, "null") : "?");
    sb_puts(c->b, ". Source: <code>alignment.json</code>.</p>\n");
    for (const cJSON *e = hooks->child; e; e = e->next, k++) {
        const char *hook = get_str(e, "hook"), *text = get_str(e, "text");
        const cJSON *ms = cJSON_GetObjectItemCaseSensitive(e, "methods"), *ch = cJSON_GetObjectItemCaseSensitive(e, "chance");
        int64_t ntest = 0, ntrain = 0;
        char where[64];
        snprintf(where, sizeof where, "hooks[%d]", k);
        if (!hook || !text || !cJSON_IsObject(ms) || !cJSON_IsObject(ch)) {
            rs_errf(err, "%s: %s: needs hook, text, methods and chance", c->path, where);
            goto out;
        }
        if (get_n(c, e, "n_test", where, &ntest, err) || get_n(c, e, "n_train", where, &ntrain, err)) goto out;
        fig_open(c);
        sb_puts(c->b, "<table>\n<tr><th rowspan=\"2\">map</th><th colspan=\"3\">text \xE2\x86\x92 image recall@k</th>"
                      "<th colspan=\"3\">image \xE2\x86\x92 text recall@k</th></tr>\n<tr>");
        for (int d = 0; d < 2; d++)
            for (int q = 0; q < 3; q++) sb_printf(c->b, "<th>k = %s</th>", KS[q]);
        sb_puts(c->b, "</tr>\n");
        for (int m = 0; m < 3; m++) {
            const cJSON *M = cJSON_GetObjectItemCaseSensitive(ms, METH[m][0]);
            if (!cJSON_IsObject(M)) continue; /* null: not available (Procrustes needs equal sizes) */
            for (int shuf = 0; shuf < 2; shuf++) {
                sb_printf(c->b, "<tr><td>%s%s</td>", METH[m][1], shuf ? ", shuffled pairs" : "");
                for (int d = 0; d < 2; d++) {
                    const cJSON *D = cJSON_GetObjectItemCaseSensitive(M, DIRS[d]);
                    const cJSON *R = cJSON_GetObjectItemCaseSensitive(D, shuf ? "shuffled_recall" : "recall");
                    for (int q = 0; q < 3; q++) {
                        rstat st;
                        char w2[160];
                        snprintf(w2, sizeof w2, "%s.methods.%s.%s.%s", where, METH[m][0], DIRS[d],
                                 shuf ? "shuffled_recall" : "recall");
                        if (get_stat(c, R, KS[q], w2, &st, err) < 0) goto out;
                        steer_cell(c, &st);
                    }
                }
                sb_puts(c->b, "</tr>\n");
            }
        }
        sb_puts(c->b, "<tr><td>chance k/n</td>");
        for (int d = 0; d < 2; d++)
            for (int q = 0; q < 3; q++) {
                char a[32];
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(ch, KS[q]);
                sb_printf(c->b, "<td>%s</td>", svg_fmt(cJSON_IsNumber(v) ? v->valuedouble : NAN, a, sizeof a));
            }
        sb_puts(c->b, "</tr>\n</table>\n");
        /* the permutation null of recall@1 (files with "null" per direction; older files have none) */
        const cJSON *M0 = cJSON_GetObjectItemCaseSensitive(ms, "infonce");
        const cJSON *N0 = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(M0, DIRS[0]), "null");
        int has_null = cJSON_IsObject(N0);
        double S = num_or_nan(e, "splits"), R = num_or_nan(N0, "draws");
        if (has_null) {
            sb_puts(c->b, "<table>\n<tr><th rowspan=\"2\">map</th><th colspan=\"5\">text \xE2\x86\x92 image recall@1</th>"
                          "<th colspan=\"5\">image \xE2\x86\x92 text recall@1</th></tr>\n<tr>");
            for (int d = 0; d < 2; d++)
                sb_puts(c->b, "<th>split mean [CI]</th><th>null mean</th><th>null 95th pct</th><th>p</th><th>q</th>");
            sb_puts(c->b, "</tr>\n");
            for (int m = 0; m < 3; m++) {
                const cJSON *M = cJSON_GetObjectItemCaseSensitive(ms, METH[m][0]);
                if (!cJSON_IsObject(M)) continue;
                sb_printf(c->b, "<tr><td>%s</td>", METH[m][1]);
                for (int d = 0; d < 2; d++) {
                    const cJSON *D = cJSON_GetObjectItemCaseSensitive(M, DIRS[d]);
                    const cJSON *N = cJSON_GetObjectItemCaseSensitive(D, "null");
                    rstat st;
                    char w2[160], a[32], b2[32], p1[32], q1[32];
                    snprintf(w2, sizeof w2, "%s.methods.%s.%s.recall", where, METH[m][0], DIRS[d]);
                    if (get_stat(c, cJSON_GetObjectItemCaseSensitive(D, "recall"), "1", w2, &st, err) < 0) goto out;
                    steer_cell(c, &st);
                    sb_printf(c->b, "<td>%s</td><td>%s</td><td>%s</td><td>%s</td>",
                              svg_fmt(num_or_nan(cJSON_GetObjectItemCaseSensitive(N, "mean"), "1"), a, sizeof a),
                              svg_fmt(num_or_nan(cJSON_GetObjectItemCaseSensitive(N, "p95"), "1"), b2, sizeof b2),
                              svg_fmt(num_or_nan(N, "p"), p1, sizeof p1), svg_fmt(num_or_nan(N, "q"), q1, sizeof q1));
                }
                sb_puts(c->b, "</tr>\n");
            }
            sb_puts(c->b, "</table>\n");
        }
        char nulls[400] = "";
        if (has_null)
            snprintf(nulls, sizeof nulls,
                     " Second table: recall@1 (mean over %g split%s) against %g shuffled-pair refits of every split "
                     "(null mean, 95th percentile), one-sided permutation p = (1 + #null >= observed) / (1 + %g), "
                     "q = Benjamini-Hochberg over maps, directions and hooks.",
                     S, S == 1 ? "" : "s", R, R);
        snprintf(what, sizeof what,
                 "%s vs VLM images at %s: share of held-out pairs whose partner ranks in the top k of the %lld test "
                 "candidates, maps fitted on %lld training pairs; a method beats its nulls when its CI lies above "
                 "both the chance row and its shuffled-pair row.%s",
                 text, hook, (long long)ntest, (long long)ntrain, nulls);
        snprintf(ntext, sizeof ntext, "%lld held-out pairs (images)", (long long)ntest);
        fig_close(c, what, ntext, ci);
    }
    sb_puts(c->b, "</section>\n");
    rc = 0;
out:
    cJSON_Delete(j);
    return rc;
}

int report_render(const char *results_dir, char **html, size_t *len, int *n_figures, rs_err *err) {
    *html = NULL;
    if (len) *len = 0;
    if (!rs_is_dir(results_dir)) return rs_errk(err, RS_EIO, "%s: results directory not found", results_dir);
    rs_sbuf body = {0}, page = {0};
    unsigned long oom0 = sb_oom_events();
    ctx c = {.b = &body, .dir = results_dir};
    /* optional run.json: title and description */
    cJSON *run = NULL;
    char title[512] = "reprshift report";
    snprintf(c.path, sizeof c.path, "%s/run.json", results_dir);
    if (rs_path_exists(c.path)) {
        if (rs_json_load(c.path, REPORT_MAX_FILE_BYTES, &run, err)) return -1;
        if (get_str(run, "title")) snprintf(title, sizeof title, "%s", get_str(run, "title"));
    }
    int rc = sec_conditions(&c, err);
    if (!rc) rc = sec_shift(&c, err);
    if (!rc) rc = sec_sae(&c, err);
    if (!rc) rc = sec_probes(&c, err);
    if (!rc) rc = sec_transfer(&c, err);
    if (!rc) rc = sec_alignment(&c, err);
    if (!rc) rc = sec_downstream(&c, err);
    if (!rc) rc = sec_crosscoder(&c, err);
    if (!rc) rc = sec_sae_train(&c, err);
    if (!rc) rc = sec_languages(&c, err);
    if (!rc) rc = sec_steer(&c, err);
    if (rc) {
        cJSON_Delete(run);
        sb_free(&body);
        sb_free(&c.notes);
        return -1;
    }
    sb_puts(&page, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>");
    sb_escape(&page, title);
    sb_printf(&page, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<header>\n<h1>", CSS);
    sb_escape(&page, title);
    sb_puts(&page, "</h1>\n");
    if (get_str(run, "description")) {
        sb_puts(&page, "<p>");
        sb_escape(&page, get_str(run, "description"));
        sb_puts(&page, "</p>\n");
    }
    sb_puts(&page, "<p class=\"note\">Results directory: <code>");
    sb_escape(&page, results_dir);
    sb_printf(&page, "</code>. %d figures. Every caption states n and the confidence-interval method.</p>\n</header>\n", c.figs);
    sb_puts(&page, "<nav>");
    const char *secs[][2] = {{"conditions", "Conditions"}, {"shift", "Shift"}, {"sae", "SAE fit"}, {"probes", "Probes"},
                             {"paired", "Paired probes"}, {"attributes", "Attribute probes"}, {"vision", "Vision tower"},
                             {"targets", "Target probes"}, {"sae-probes", "SAE-feature probes"}, {"transfer", "Transfer"},
                             {"alignment", "Alignment"}, {"downstream", "Shift and caption quality"},
                             {"crosscoder", "Crosscoder"}, {"sae_train", "The VLM's own SAE"},
                             {"languages", "Languages"}, {"steer", "Steering"}};
    for (size_t i = 0; i < sizeof secs / sizeof *secs; i++) {
        char needle[64];
        snprintf(needle, sizeof needle, "<section id=\"%s\">", secs[i][0]);
        if (body.buf && strstr(body.buf, needle)) sb_printf(&page, "<a href=\"#%s\">%s</a>", secs[i][0], secs[i][1]);
    }
    sb_puts(&page, "</nav>\n");
    if (body.buf) sb_puts(&page, body.buf);
    if (c.notes.len) {
        sb_puts(&page, "<section id=\"notes\">\n<h2>Skipped sections</h2>\n<ul class=\"note\">\n");
        sb_puts(&page, c.notes.buf);
        sb_puts(&page, "</ul>\n</section>\n");
    }
    if (c.figs == 0) sb_puts(&page, "<p class=\"note\">No results to show.</p>\n");
    sb_printf(&page, "<footer id=\"report-end\">Generated by reprshift %s.</footer>\n</body>\n</html>\n", RS_VERSION);
    cJSON_Delete(run);
    sb_free(&body);
    sb_free(&c.notes);
    if (page.oom || sb_oom_events() != oom0) { /* also a piece built in another buffer */
        sb_free(&page);
        return rs_errk(err, RS_ENOMEM, "out of memory rendering the report");
    }
    *html = page.buf;
    if (len) *len = page.len;
    if (n_figures) *n_figures = c.figs;
    return 0;
}

int report_write(const char *results_dir, const char *out_path, int *n_figures, rs_err *err) {
    char *html;
    size_t len;
    if (report_render(results_dir, &html, &len, n_figures, err)) return -1;
    rs_atomic_file f;
    int rc = rs_atomic_open(&f, out_path, err);
    if (!rc) {
        rc = rs_atomic_write(&f, html, len, err);
        if (rc) rs_atomic_abort(&f);
        else rc = rs_atomic_commit(&f, err);
    }
    free(html);
    return rc;
}

/* Languages (config section `languages`, docs/languages.md): every caption of the run is also
 * read in a translation, by Gemma-2 and by PaliGemma with the language's prompt ("caption es").
 *
 * The translations come from languages.translations (a CSV: caption_id + one column per code)
 * or from the manifest's caption_<code> columns. For each language a derived manifest
 * (dataset/manifest_<code>.csv: the run's manifest with every caption row's text replaced by
 * its translation) is written and a sub-run context made from it: the same rows, labels,
 * groups and splits, its own caption tokens and prompt, stores under acts/lang_<code>/ and
 * markers under stages/lang_<code>/. The extract stage then runs its store units on each
 * sub-context as it does on the run (llm_text, vlm_text and vlm_caption only), so resuming,
 * fingerprints and job arrays work the same way. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/csv.h"
#include "pipeline/pipeline_internal.h"
#include "reprshift/fileio.h"
#include "reprshift/tokenizer.h"

#define LANG_CSV_MAX_BYTES ((size_t)1 << 30)

struct pl_lang {
    pl_ctx sub;
    rs_config cfg;      /* the run's config (shallow copy): prompt and conditions replaced */
    char *conds[4];
    char code[16];
};

static const char *const LANG_CONDS[] = {"llm", "vlm_text", "vlm_caption"};

typedef struct {
    int64_t id;
    size_t row;
} id_row;

static int cmp_id(const void *a, const void *b) {
    int64_t x = ((const id_row *)a)->id, y = ((const id_row *)b)->id;
    return (x > y) - (x < y);
}

/* The translations file indexed by caption_id (sorted): the caption_id column, the code's. */
typedef struct {
    rs_csv *t;
    id_row *idx;
    size_t n;
    int col_id;
} lang_table;

static int table_load(const char *path, lang_table *lt, rs_err *err) {
    memset(lt, 0, sizeof *lt);
    if (rs_csv_load(path, LANG_CSV_MAX_BYTES, &lt->t, err)) return rs_err_prefix(err, "languages.translations");
    lt->col_id = rs_csv_col(lt->t, "caption_id");
    if (lt->col_id < 0) return rs_errf(err, "%s: no caption_id column (languages.translations: caption_id and one column per "
                                            "language code, docs/languages.md)", path);
    lt->n = lt->t->n_rows;
    if (!(lt->idx = malloc((lt->n ? lt->n : 1) * sizeof *lt->idx))) return rs_errk(err, RS_ENOMEM, "out of memory");
    for (size_t r = 0; r < lt->n; r++) {
        const char *s = rs_csv_cell(lt->t, r, lt->col_id);
        char *end = NULL;
        long long v = strtoll(s, &end, 10);
        if (!s[0] || *end || v < 0)
            return rs_errf(err, "%s:%zu: caption_id \"%s\" is not a non-negative integer", path, lt->t->row_line[r], s);
        lt->idx[r] = (id_row){v, r};
    }
    qsort(lt->idx, lt->n, sizeof *lt->idx, cmp_id);
    for (size_t r = 1; r < lt->n; r++)
        if (lt->idx[r].id == lt->idx[r - 1].id)
            return rs_errf(err, "%s:%zu: caption_id %lld appears twice (also line %zu)", path,
                           lt->t->row_line[lt->idx[r].row], (long long)lt->idx[r].id, lt->t->row_line[lt->idx[r - 1].row]);
    return 0;
}

static void table_free(lang_table *lt) {
    rs_csv_free(lt->t);
    free(lt->idx);
    memset(lt, 0, sizeof *lt);
}

/* Row of caption id in the table, or -1. */
static long table_find(const lang_table *lt, int64_t id) {
    id_row key = {id, 0};
    const id_row *h = bsearch(&key, lt->idx, lt->n, sizeof *lt->idx, cmp_id);
    return h ? (long)h->row : -1;
}

/* The translation of every caption row of the run's manifest into language k: a derived
 * manifest written to dataset/manifest_<code>.csv and loaded back (so errors name its lines). */
static int derive_manifest(pl_ctx *c, int k, const lang_table *lt, rs_manifest **out, char **path_out, rs_err *err) {
    const rs_config *cfg = c->cfg;
    const char *code = cfg->languages.codes[k];
    const rs_manifest *m = c->man;
    int col = -1, mcol = -1, rc = -1;
    char colname[32];
    snprintf(colname, sizeof colname, "caption_%s", code);
    if (lt) {
        col = rs_csv_col(lt->t, code);
        if (col < 0)
            return rs_errf(err, "%s: no column \"%s\" (languages.codes lists it; the header must name every code)",
                           cfg->languages.translations, code);
    } else {
        mcol = rs_manifest_extra_col(m, colname);
        if (mcol < 0)
            return rs_errf(err, "languages: no languages.translations file, and the manifest %s has no \"%s\" column: give "
                                "the translations one way or the other (docs/languages.md)",
                           m->path ? m->path : "(dataset)", colname);
    }
    rs_manifest *d = rs_manifest_new(m->dir);
    const char **extra = calloc((size_t)m->n_extra + 1, sizeof *extra);
    char *dir = pl_join(c->out, "dataset"), fname[64], *path = NULL;
    snprintf(fname, sizeof fname, "manifest_%s.csv", code);
    if (!d || !extra || !dir || !(path = pl_join(dir, fname))) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    if (m->n_extra && !(d->extra_names = calloc((size_t)m->n_extra + 1, sizeof *d->extra_names))) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    for (int e = 0; e < m->n_extra; e++) {
        if (!(d->extra_names[e] = strdup(m->extra_names[e]))) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
        d->n_extra = e + 1;
    }
    for (size_t r = 0; r < m->n_rows; r++) {
        const rs_manifest_row *row = &m->rows[r];
        const char *text = row->input;
        if (row->modality == RS_MODALITY_TEXT) {
            if (lt) {
                if (row->caption_id < 0) {
                    rs_errf(err, "%s:%zu: a caption row without a caption_id: languages.translations is keyed by "
                                 "caption_id", m->path ? m->path : "manifest", row->line);
                    goto done;
                }
                long tr = table_find(lt, row->caption_id);
                text = tr >= 0 ? rs_csv_cell(lt->t, (size_t)tr, col) : NULL;
                if (!text || !text[0]) {
                    rs_errf(err, "%s: no \"%s\" translation of caption_id %lld (%s; every caption of the run needs one)",
                            cfg->languages.translations, code, (long long)row->caption_id,
                            tr >= 0 ? "its cell is empty" : "no row with that caption_id");
                    goto done;
                }
            } else {
                text = row->extra[mcol];
                if (!text[0]) {
                    rs_errf(err, "%s:%zu: empty \"%s\" cell: every caption row needs its translation",
                            m->path ? m->path : "manifest", row->line, colname);
                    goto done;
                }
            }
        }
        for (int e = 0; e < m->n_extra; e++) extra[e] = row->extra[e];
        if (rs_manifest_add(d, row->modality, text,
                            row->label, row->file_name, row->image_id, row->caption_id, row->split, extra, err))
            goto done;
    }
    if (rs_manifest_write(d, path, err) || rs_manifest_load(path, out, err)) goto done;
    if ((*out)->n_rows != m->n_rows) {
        rs_errf(err, "%s: %zu rows read back, %zu written", path, (*out)->n_rows, m->n_rows);
        rs_manifest_free(*out);
        *out = NULL;
        goto done;
    }
    *path_out = path;
    path = NULL;
    rc = 0;
done:
    rs_manifest_free(d);
    free(extra);
    free(dir);
    free(path);
    return rc;
}

static void lang_release(pl_ctx *parent, struct pl_lang *L) {
    pl_ctx *s = &L->sub;
    for (int i = 0; s->text_ids && i < s->n_text; i++) free(s->text_ids[i]);
    free(s->text_ids);
    free(s->text_len);
    tok_free(s->caption_tok);
    if (s->text_image != parent->text_image) free(s->text_image);
    if (s->text_mismatch != parent->text_mismatch) free(s->text_mismatch);
    rs_manifest_free(s->man);
    free(s->acts);
    free(s->stages);
}

void pl_languages_free(pl_ctx *c) {
    for (int k = 0; k < c->n_langs; k++) lang_release(c, &c->langs[k]);
    free(c->langs);
    c->langs = NULL;
    c->n_langs = 0;
}

/* Is code one of the config's languages? */
static int configured(const rs_config *cfg, const char *code) {
    for (int k = 0; cfg->languages.on && k < cfg->languages.n; k++)
        if (!strcmp(cfg->languages.codes[k], code)) return 1;
    return 0;
}

/* The outputs of languages no longer in the config: acts/lang_<code>/ (its stores),
 * stages/lang_<code>/ (their markers), dataset/manifest_<code>.csv. */
static void remove_stale(pl_ctx *c) {
    DIR *d = opendir(c->acts);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, "lang_", 5) || !e->d_name[5] || configured(c->cfg, e->d_name + 5)) continue;
        char *a = pl_join(c->acts, e->d_name), *s = pl_join(c->stages, e->d_name), *ds = pl_join(c->out, "dataset");
        char mf[300], *mp = NULL;
        snprintf(mf, sizeof mf, "manifest_%s.csv", e->d_name + 5);
        if (ds) mp = pl_join(ds, mf);
        static const char *const STORES[] = {"llm_text", "vlm_text", "vlm_caption", "vlm_image", "vlm_edits",
                                             "vlm_mismatch", "vlm_blank"};
        for (size_t k = 0; a && k < sizeof STORES / sizeof *STORES; k++) {
            char *sd = pl_join(a, STORES[k]);
            if (sd) pl_remove_store(sd);
            free(sd);
        }
        if (a) rmdir(a);
        if (s) pl_remove_flat_dir(s);
        if (mp) unlink(mp);
        pl_log(c, "languages", "%s: no longer in languages.codes; its stores and markers removed", e->d_name + 5);
        free(a);
        free(s);
        free(ds);
        free(mp);
    }
    if (d) closedir(d);
}

int pl_languages_prepare(pl_ctx *c, rs_err *err) {
    const rs_config *cfg = c->cfg;
    if (c->langs || c->lang) return 0;
    remove_stale(c);
    if (!cfg->languages.on) return 0;
    if (!c->n_text) {
        pl_log(c, "languages", "skipped: the dataset has no captions");
        return 0;
    }
    lang_table lt;
    memset(&lt, 0, sizeof lt);
    int rc = -1, n = cfg->languages.n;
    if (cfg->languages.translations && table_load(cfg->languages.translations, &lt, err)) goto done;
    if (!(c->langs = calloc((size_t)n, sizeof *c->langs))) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    for (int k = 0; k < n; k++) {
        struct pl_lang *L = &c->langs[k];
        const char *code = cfg->languages.codes[k];
        rs_manifest *dm = NULL;
        char *dpath = NULL, sha[65];
        int64_t bytes;
        if (derive_manifest(c, k, cfg->languages.translations ? &lt : NULL, &dm, &dpath, err)) goto done;
        int r = rs_sha256_file(dpath, sha, &bytes, err);
        free(dpath);
        if (r) {
            rs_manifest_free(dm);
            goto done;
        }
        snprintf(L->code, sizeof L->code, "%s", code);
        L->cfg = *cfg;
        L->cfg.prompt = cfg->languages.prompts[k];
        int nc = 0;
        for (int q = 0; q < 3; q++)
            if (rs_config_has_condition(cfg, LANG_CONDS[q])) L->conds[nc++] = (char *)LANG_CONDS[q];
        L->cfg.conditions = L->conds;
        L->cfg.n_conditions = nc;
        pl_ctx *s = &L->sub;
        *s = *c;
        s->cfg = &L->cfg;
        s->man = dm;
        s->lang = L->code;
        s->langs = NULL;
        s->n_langs = 0;
        s->text_ids = NULL;
        s->text_len = NULL;
        s->caption_tok = NULL;
        s->image_lum = NULL;
        s->acts = s->stages = NULL;
        c->n_langs = k + 1;
        pl_fp(s->dataset_fp, "lang v1 %s dataset=%s manifest=%s", code, c->dataset_fp, sha);
        char sub[32];
        snprintf(sub, sizeof sub, "lang_%s", code);
        if (!(s->acts = pl_join(c->acts, sub)) || !(s->stages = pl_join(c->stages, sub))) {
            rs_errk(err, RS_ENOMEM, "out of memory");
            goto done;
        }
        if (pl_mkdir(s->acts, err) || pl_mkdir(s->stages, err)) goto done;
        pl_log(c, "languages", "%s: %d captions translated (prompt \"%s\"), stores under acts/%s", code, c->n_text,
               L->cfg.prompt, sub);
    }
    rc = 0;
done:
    table_free(&lt);
    if (rc) pl_languages_free(c);
    return rc;
}

int pl_languages_extract(pl_ctx *c, rs_err *err) {
    for (int k = 0; k < c->n_langs; k++) {
        pl_ctx *s = &c->langs[k].sub;
        /* what the run built already and a language shares: the image of each caption */
        if (!s->text_image) s->text_image = c->text_image;
        if (!s->text_mismatch) s->text_mismatch = c->text_mismatch;
        s->setup_lock_fd = c->setup_lock_fd;
        int r = pl_stage_extract(s, err);
        c->setup_lock_fd = s->setup_lock_fd;
        if (r) return rs_err_prefix(err, "language %s", c->langs[k].code);
    }
    return 0;
}

pl_ctx *pl_language_ctx(pl_ctx *c, int k) { return k >= 0 && k < c->n_langs ? &c->langs[k].sub : NULL; }

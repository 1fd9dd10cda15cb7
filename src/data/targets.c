/* Richer probe targets: COCO category / supercategory multi-hot and caption colour / action
 * words by fixed rules (include/reprshift/targets.h, docs/datasets.md "Targets"). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reprshift/targets.h"
#include "reprshift/fileio.h"
#include "io/csv.h"

const char *const RS_COLOUR_WORDS[] = {"black", "white", "red",    "green", "yellow", "blue",
                                       "brown", "orange", "pink", "purple", "gray",  NULL};
const char *const RS_ACTION_WORDS[] = {"carrying", "cutting", "drinking", "driving", "eating",   "flying",
                                       "grazing",  "holding", "looking",  "lying",   "playing",  "riding",
                                       "running",  "sitting", "skiing",   "sleeping", "standing", "surfing",
                                       "swimming", "throwing", "walking", "watching", NULL};

/* Spellings counted as a listed word. */
static const struct {
    const char *alias, *word;
} ALIASES[] = {{"grey", "gray"}, {"laying", "lying"}};

static int lookup(const char *tok, const char *const *list) {
    for (size_t a = 0; a < sizeof ALIASES / sizeof ALIASES[0]; a++)
        if (!strcmp(tok, ALIASES[a].alias)) tok = ALIASES[a].word;
    for (int k = 0; list[k]; k++)
        if (!strcmp(tok, list[k])) return k;
    return -1;
}

/* Every token (maximal run of ASCII letters, lowercased) found in list sets hit[k]. Tokens
 * longer than any listed word cannot match and are skipped. */
static void scan(const char *s, const char *const *list, unsigned char *hit) {
    char tok[16];
    size_t n = 0;
    int over = 0;
    for (const unsigned char *p = (const unsigned char *)s;; p++) {
        int c = *p;
        int letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (letter) {
            if (n + 1 < sizeof tok) tok[n++] = (char)(c | 0x20);
            else over = 1;
            continue;
        }
        if (n && !over) {
            tok[n] = 0;
            int k = lookup(tok, list);
            if (k >= 0) hit[k] = 1;
        }
        n = 0, over = 0;
        if (!c) break;
    }
}

void rs_caption_colours(const char *caption, unsigned char *hit) { scan(caption ? caption : "", RS_COLOUR_WORDS, hit); }
void rs_caption_actions(const char *caption, unsigned char *hit) { scan(caption ? caption : "", RS_ACTION_WORDS, hit); }

const char *rs_target_kind_name(rs_target_kind k) {
    static const char *const N[] = {"categories", "supercategories", "colours", "actions"};
    return k >= 0 && k < RS_TGT_KINDS ? N[k] : "?";
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

int rs_coco_supercategories(const coco_data *d, const char ***out, int *n, rs_err *err) {
    const char **s = malloc((d->n_categories + 1) * sizeof *s);
    if (!s) return rs_errk(err, RS_ENOMEM, "out of memory");
    for (size_t i = 0; i < d->n_categories; i++) s[i] = d->categories[i].supercategory;
    qsort(s, d->n_categories, sizeof *s, cmp_str);
    int m = 0;
    for (size_t i = 0; i < d->n_categories; i++)
        if (m == 0 || strcmp(s[i], s[m - 1])) s[m++] = s[i];
    *out = s;
    *n = m;
    return 0;
}

void rs_image_category_targets(const coco_data *d, int64_t image_id, const char *const *supers, int n_super,
                               unsigned char *cat, unsigned char *sup) {
    memset(cat, 0, d->n_categories);
    memset(sup, 0, (size_t)n_super);
    size_t b, e;
    coco_image_instances(d, image_id, &b, &e);
    for (size_t i = b; i < e; i++) {
        long ci = coco_find_category(d, d->instances[i].category_id);
        if (ci < 0) continue; /* coco_load rejects such files */
        cat[ci] = 1;
        const char *key = d->categories[ci].supercategory;
        const char *const *f = bsearch(&key, supers, (size_t)n_super, sizeof *supers, cmp_str);
        if (f) sup[f - supers] = 1;
    }
}

void rs_targets_free(rs_targets *t) {
    if (!t) return;
    for (int i = 0; t->names && i < t->n_cols; i++) free(t->names[i]);
    free(t->names);
    free(t->kind);
    free(t->v);
    memset(t, 0, sizeof *t);
}

static int add_col(rs_targets *t, rs_target_kind kind, const char *name, rs_err *err) {
    static const char *const PFX[] = {"category", "supercategory", "colour", "action"};
    char **nn = realloc(t->names, (size_t)(t->n_cols + 1) * sizeof *nn);
    if (!nn) return rs_errk(err, RS_ENOMEM, "out of memory");
    t->names = nn;
    rs_target_kind *nk = realloc(t->kind, (size_t)(t->n_cols + 1) * sizeof *nk);
    if (!nk) return rs_errk(err, RS_ENOMEM, "out of memory");
    t->kind = nk;
    if (asprintf(&t->names[t->n_cols], "%s:%s", PFX[kind], name) < 0) return rs_errk(err, RS_ENOMEM, "out of memory");
    t->kind[t->n_cols++] = kind;
    return 0;
}

typedef struct {
    int64_t id;
    size_t row;
} id_row;

static int cmp_id_row(const void *a, const void *b) {
    const id_row *x = a, *y = b;
    return x->id != y->id ? (x->id > y->id) - (x->id < y->id) : (x->row > y->row) - (x->row < y->row);
}

static int cmp_id(const void *a, const void *b) {
    const id_row *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

int rs_targets_build(const rs_manifest *m, const coco_data *d, rs_targets *t, rs_err *err) {
    memset(t, 0, sizeof *t);
    const char **supers = NULL;
    int n_sup = 0, rc = -1;
    unsigned char *cat = NULL, *sup = NULL, hit[RS_N_COLOURS + RS_N_ACTIONS];
    id_row *caps = NULL;
    size_t n_caps = 0;
    if (d && d->n_categories && rs_coco_supercategories(d, &supers, &n_sup, err)) return -1;
    size_t nc = d ? d->n_categories : 0;
    for (size_t i = 0; i < nc; i++)
        if (add_col(t, RS_TGT_CATEGORY, d->categories[i].name, err)) goto done;
    for (int j = 0; j < n_sup; j++)
        if (add_col(t, RS_TGT_SUPERCATEGORY, supers[j], err)) goto done;
    for (int k = 0; k < RS_N_COLOURS; k++)
        if (add_col(t, RS_TGT_COLOUR, RS_COLOUR_WORDS[k], err)) goto done;
    for (int k = 0; k < RS_N_ACTIONS; k++)
        if (add_col(t, RS_TGT_ACTION, RS_ACTION_WORDS[k], err)) goto done;
    t->n_rows = m->n_rows;
    int C = t->n_cols, c0 = (int)nc + n_sup; /* first colour column */
    t->v = malloc((m->n_rows * (size_t)C + 1) * sizeof *t->v);
    cat = malloc(nc + 1), sup = malloc((size_t)n_sup + 1);
    caps = malloc((m->n_rows + 1) * sizeof *caps);
    if (!t->v || !cat || !sup || !caps) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    /* caption rows by image id, for the image rows' union */
    for (size_t r = 0; r < m->n_rows; r++)
        if (m->rows[r].modality == RS_MODALITY_TEXT && m->rows[r].image_id >= 0) caps[n_caps++] = (id_row){m->rows[r].image_id, r};
    qsort(caps, n_caps, sizeof *caps, cmp_id_row);
    for (size_t r = 0; r < m->n_rows; r++) {
        const rs_manifest_row *row = &m->rows[r];
        signed char *v = t->v + r * C;
        /* categories: the row's image, when the annotation files list it */
        int known = d && row->image_id >= 0 && coco_find_image(d, row->image_id) >= 0;
        if (known) rs_image_category_targets(d, row->image_id, supers, n_sup, cat, sup);
        for (int j = 0; j < c0; j++) v[j] = !known ? -1 : j < (int)nc ? cat[j] : sup[j - (int)nc];
        /* colours and actions: the caption, or the union over the image's caption rows */
        memset(hit, 0, sizeof hit);
        int n_cap = 0;
        if (row->modality == RS_MODALITY_TEXT) {
            rs_caption_colours(row->input, hit);
            rs_caption_actions(row->input, hit + RS_N_COLOURS);
            n_cap = 1;
        } else if (row->image_id >= 0) {
            id_row key = {row->image_id, 0};
            id_row *f = bsearch(&key, caps, n_caps, sizeof *caps, cmp_id);
            while (f && f > caps && f[-1].id == row->image_id) f--;
            for (; f && f < caps + n_caps && f->id == row->image_id; f++, n_cap++) {
                rs_caption_colours(m->rows[f->row].input, hit);
                rs_caption_actions(m->rows[f->row].input, hit + RS_N_COLOURS);
            }
        }
        for (int k = 0; k < RS_N_COLOURS + RS_N_ACTIONS; k++) v[c0 + k] = n_cap ? (signed char)hit[k] : -1;
    }
    rc = 0;
done:
    free(supers);
    free(caps);
    free(cat);
    free(sup);
    if (rc) rs_targets_free(t);
    return rc;
}

int rs_targets_write(const rs_targets *t, const rs_manifest *m, const char *path, rs_err *err) {
    if (t->n_rows != m->n_rows) return rs_errf(err, "%s: %zu target rows for %zu manifest rows", path, t->n_rows, m->n_rows);
    rs_atomic_file f;
    if (rs_atomic_open(&f, path, err)) return -1;
    fputs("row,modality,image_id,caption_id", f.fp);
    for (int j = 0; j < t->n_cols; j++) {
        fputc(',', f.fp);
        rs_csv_write_field(f.fp, t->names[j]);
    }
    fputc('\n', f.fp);
    for (size_t r = 0; r < t->n_rows; r++) {
        const rs_manifest_row *row = &m->rows[r];
        fprintf(f.fp, "%zu,%s,", r, rs_modality_name(row->modality));
        if (row->image_id >= 0) fprintf(f.fp, "%lld", (long long)row->image_id);
        fputc(',', f.fp);
        if (row->caption_id >= 0) fprintf(f.fp, "%lld", (long long)row->caption_id);
        const signed char *v = t->v + r * (size_t)t->n_cols;
        for (int j = 0; j < t->n_cols; j++) fputs(v[j] < 0 ? "," : v[j] ? ",1" : ",0", f.fp);
        fputc('\n', f.fp);
    }
    if (ferror(f.fp)) {
        rs_atomic_abort(&f);
        return rs_errk(err, RS_EIO, "%s: write error", path);
    }
    return rs_atomic_commit(&f, err);
}

int rs_targets_load(const char *path, size_t expect_rows, rs_targets *t, rs_err *err) {
    memset(t, 0, sizeof *t);
    rs_csv *csv;
    if (rs_csv_load(path, (size_t)1 << 31, &csv, err)) return -1;
    static const char *const FIXED[] = {"row", "modality", "image_id", "caption_id"};
    static const char *const PFX[] = {"category:", "supercategory:", "colour:", "action:"};
    int rc = -1;
    for (int j = 0; j < 4; j++)
        if (csv->n_cols <= j || strcmp(csv->header[j], FIXED[j])) {
            rs_errf(err, "%s: column %d should be '%s' (a targets file, docs/datasets.md)", path, j + 1, FIXED[j]);
            goto done;
        }
    if (csv->n_rows != expect_rows) {
        rs_errf(err, "%s: %zu rows, but the manifest has %zu (rerun the dataset stage)", path, csv->n_rows, expect_rows);
        goto done;
    }
    for (int j = 4; j < csv->n_cols; j++) {
        int k = 0;
        while (k < RS_TGT_KINDS && strncmp(csv->header[j], PFX[k], strlen(PFX[k]))) k++;
        if (k == RS_TGT_KINDS) {
            rs_errf(err, "%s: column '%s' is not a target (category:, supercategory:, colour:, action:)", path,
                    csv->header[j]);
            goto done;
        }
        if (add_col(t, (rs_target_kind)k, csv->header[j] + strlen(PFX[k]), err)) goto done;
    }
    t->n_rows = csv->n_rows;
    t->v = malloc((t->n_rows * (size_t)t->n_cols + 1) * sizeof *t->v);
    if (!t->v) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    for (size_t r = 0; r < csv->n_rows; r++)
        for (int j = 0; j < t->n_cols; j++) {
            const char *s = rs_csv_cell(csv, r, j + 4);
            signed char x = !s[0] ? -1 : !strcmp(s, "1") ? 1 : !strcmp(s, "0") ? 0 : -2;
            if (x == -2) {
                rs_errf(err, "%s:%zu: column '%s' holds '%s' (1, 0 or empty expected)", path, csv->row_line[r],
                        csv->header[j + 4], s);
                goto done;
            }
            t->v[r * t->n_cols + j] = x;
        }
    rc = 0;
done:
    rs_csv_free(csv);
    if (rc) rs_targets_free(t);
    return rc;
}

/* Dataset stage: COCO annotation files -> balanced manifest with group-aware splits
 * (src/data/sample.c), or a given manifest, written to RUN/dataset/manifest.csv with
 * absolute image paths (so the run folder does not depend on where the config was).
 * Then the manifest is loaded into the run context: captions, images, labels, groups
 * (one group per base image: the image, its captions and its edited variants) and the
 * edited variants asked for by the config. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "pipeline/pipeline_internal.h"
#include "reprshift/tokenizer.h"
#include "reprshift/coco.h"
#include "reprshift/fileio.h"

/* "path size mtime" of an input file, so that an edited annotation file redoes the stage. */
static int file_stamp(FILE *fp, const char *path, rs_err *err) {
    struct stat st;
    if (stat(path, &st)) return rs_errk(err, RS_EIO, "%s: %s", path, strerror(errno));
    fprintf(fp, "%s %lld %lld.%09ld\n", path, (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    return 0;
}

static int dataset_fingerprint(pl_ctx *c, char fp[65], rs_err *err) {
    const rs_config *cfg = c->cfg;
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f) return rs_errk(err, RS_ENOMEM, "out of memory");
    int rc = 0;
    char *ds = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(cfg->resolved, "dataset"));
    fprintf(f, "dataset v2\n%s\n", ds ? ds : ""); /* v2: the manifest's category column */
    free(ds);
    if (cfg->dataset.manifest) {
        char sha[65];
        int64_t b;
        rc = rs_sha256_file(cfg->dataset.manifest, sha, &b, err);
        fprintf(f, "manifest %s\n", sha);
    }
    for (int i = 0; i < cfg->dataset.n_instances && !rc; i++) {
        rc = file_stamp(f, cfg->dataset.instances[i], err);
        if (!rc && cfg->dataset.captions && cfg->dataset.captions[i]) rc = file_stamp(f, cfg->dataset.captions[i], err);
    }
    fclose(f);
    if (!rc) rs_sha256_hex(buf, n, fp);
    free(buf);
    return rc;
}

/* Load every instances file (+ captions, images folder) and merge them, as
 * `reprshift dataset sample` does; images folders are made absolute. */
static int load_coco(pl_ctx *c, coco_data **out, rs_err *err) {
    const rs_config *cfg = c->cfg;
    coco_data *all = NULL;
    *out = NULL;
    for (int i = 0; i < cfg->dataset.n_instances; i++) {
        coco_data *d;
        if (coco_load(cfg->dataset.instances[i], &d, err)) goto fail;
        if (!d->n_instances) {
            rs_errf(err, "%s: no instance annotations (is this a captions file? list it under dataset.captions)",
                    cfg->dataset.instances[i]);
            coco_free(d);
            goto fail;
        }
        if (cfg->dataset.use_text && cfg->dataset.captions && cfg->dataset.captions[i]) {
            coco_data *cap;
            size_t dropped = 0;
            if (coco_load(cfg->dataset.captions[i], &cap, err)) {
                coco_free(d);
                goto fail;
            }
            if (coco_add_captions(d, cap, &dropped, err)) {
                rs_err_prefix(err, "%s + %s", cfg->dataset.instances[i], cfg->dataset.captions[i]);
                coco_free(d);
                goto fail;
            }
            if (dropped)
                pl_log(c, "dataset", "note: %zu captions in %s are for images not in %s (ignored)", dropped,
                       cfg->dataset.captions[i], cfg->dataset.instances[i]);
        }
        if (cfg->dataset.use_images && cfg->dataset.images && cfg->dataset.images[i]) {
            char abs[PATH_MAX];
            if (!realpath(cfg->dataset.images[i], abs) || !rs_is_dir(abs)) {
                rs_errk(err, RS_EIO, "images folder %s: %s", cfg->dataset.images[i], errno ? strerror(errno) : "not a folder");
                coco_free(d);
                goto fail;
            }
            if (coco_set_images_dir(d, abs, err)) {
                coco_free(d);
                goto fail;
            }
        }
        if (!all) all = d;
        else if (coco_merge(all, d, err)) goto fail;
    }
    *out = all;
    return 0;
fail:
    coco_free(all);
    return -1;
}

/* A given manifest, re-written with absolute image paths. */
static int copy_manifest(pl_ctx *c, rs_manifest *dst, rs_err *err) {
    rs_manifest *src;
    if (rs_manifest_load(c->cfg->dataset.manifest, &src, err)) return -1;
    size_t missing;
    if (c->cfg->dataset.use_images && rs_manifest_check_images(src, &missing, err)) {
        rs_manifest_free(src);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < src->n_extra && !rc; i++) {
        /* keep the extra columns of the given manifest */
        char **nn = realloc(dst->extra_names, (size_t)(i + 1) * sizeof *nn);
        if (!nn || !(nn[i] = strdup(src->extra_names[i]))) rc = rs_errk(err, RS_ENOMEM, "out of memory");
        if (nn) dst->extra_names = nn;
        if (!rc) dst->n_extra = i + 1;
    }
    for (size_t r = 0; r < src->n_rows && !rc; r++) {
        const rs_manifest_row *row = &src->rows[r];
        if ((row->modality == RS_MODALITY_TEXT && !c->cfg->dataset.use_text) ||
            (row->modality == RS_MODALITY_IMAGE && !c->cfg->dataset.use_images))
            continue;
        char abs[PATH_MAX];
        const char *input = row->input;
        if (row->modality == RS_MODALITY_IMAGE) {
            if (!realpath(row->path, abs)) {
                rc = rs_errk(err, RS_EIO, "%s:%zu: image file %s not found", src->path, row->line, row->path);
                break;
            }
            input = abs;
        }
        rc = rs_manifest_add(dst, row->modality, input, row->label, row->file_name, row->image_id, row->caption_id,
                             row->split, (const char *const *)row->extra, err);
    }
    rs_manifest_free(src);
    return rc;
}

static int build_manifest(pl_ctx *c, const char *path, const char *dir, rs_err *err) {
    rs_manifest *m = rs_manifest_new(dir);
    if (!m) return rs_errk(err, RS_ENOMEM, "out of memory");
    int rc = -1;
    coco_data *d = NULL;
    if (c->cfg->dataset.manifest) {
        if (copy_manifest(c, m, err)) goto done;
        pl_log(c, "dataset", "manifest %s: %zu rows", c->cfg->dataset.manifest, m->n_rows);
    } else {
        if (load_coco(c, &d, err)) goto done;
        coco_sample_opts so;
        rs_config_sample_opts(c->cfg, &so);
        so.type_column = "category"; /* the concept probes' control-task type (docs/probes.md) */
        coco_sample_stats st;
        if (coco_sample(d, &so, m, &st, err)) goto done;
        for (int g = 0; g < so.n_groups; g++)
            pl_log(c, "dataset", "group %-10s eligible %4zu taken %4zu (train %zu, val %zu, test %zu)", so.groups[g].name,
                   st.available[g], st.taken[g], st.split_count[g][0], st.split_count[g][1], st.split_count[g][2]);
        pl_log(c, "dataset", "not eligible: %zu in no group, %zu in several groups, %zu excluded, %zu without captions",
               st.n_images_no_group, st.n_images_ambiguous, st.n_images_excluded, st.n_images_no_caption);
        if (so.n_groups && st.taken[0] < so.n_per_group)
            pl_log(c, "dataset", "warning: only %zu images per group (fewer than n_per_group %zu; allow_fewer)",
                   st.taken[0], so.n_per_group);
    }
    if (m->n_rows == 0) {
        rs_errf(err, "the dataset has no rows");
        goto done;
    }
    size_t missing;
    if (rs_manifest_check_images(m, &missing, err)) goto done;
    if (rs_manifest_write(m, path, err)) goto done;
    rc = 0;
done:
    coco_free(d);
    rs_manifest_free(m);
    return rc;
}

void pl_dataset_free(pl_ctx *c) {
    pl_languages_free(c);
    rs_manifest_free(c->man);
    for (int i = 0; i < c->n_labels; i++) free(c->labels[i]);
    free(c->labels);
    free(c->text_row);
    free(c->image_row);
    free(c->text_label);
    free(c->image_label);
    free(c->text_group);
    free(c->image_group);
    free(c->image_caption);
    free(c->text_ctype);
    free(c->image_ctype);
    c->text_ctype = c->image_ctype = NULL;
    c->n_ctypes = 0;
    free(c->variants);
    rs_targets_free(c->targets);
    free(c->targets);
    c->targets = NULL;
    free(c->image_lum);
    c->image_lum = NULL;
    for (int i = 0; c->text_ids && i < c->n_text; i++) free(c->text_ids[i]);
    free(c->text_ids);
    free(c->text_len);
    free(c->text_image);
    free(c->text_mismatch);
    tok_free(c->caption_tok);
    c->caption_tok = NULL;
    c->text_image = c->text_mismatch = NULL;
    c->man = NULL;
    c->labels = NULL;
    c->n_labels = 0;
}

typedef struct {
    char *key;
    int row;
} keyed;

static int cmp_keyed(const void *a, const void *b) {
    int r = strcmp(((const keyed *)a)->key, ((const keyed *)b)->key);
    return r ? r : (((const keyed *)a)->row > ((const keyed *)b)->row) - (((const keyed *)a)->row < ((const keyed *)b)->row);
}

/* Group key of a row: its COCO image id, else its file name, else its own row. */
static char *group_key(const rs_manifest_row *r, size_t i) {
    char *s = NULL;
    int n;
    if (r->image_id >= 0) n = asprintf(&s, "id:%lld", (long long)r->image_id);
    else if (r->file_name[0]) n = asprintf(&s, "file:%s", r->file_name);
    else if (r->modality == RS_MODALITY_IMAGE) n = asprintf(&s, "path:%s", r->input);
    else n = asprintf(&s, "row:%zu", i);
    return n < 0 ? NULL : s;
}

static int load_dataset(pl_ctx *c, const char *path, rs_err *err) {
    if (rs_manifest_load(path, &c->man, err)) return -1;
    rs_manifest *m = c->man;
    size_t n = m->n_rows;
    int *row_group = malloc((n + 1) * sizeof *row_group), *row_label = malloc((n + 1) * sizeof *row_label);
    keyed *k = calloc(n + 1, sizeof *k);
    int rc = -1;
    if (!row_group || !row_label || !k) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    /* labels: distinct, byte order */
    for (size_t i = 0; i < n; i++) {
        k[i].key = m->rows[i].label;
        k[i].row = (int)i;
    }
    qsort(k, n, sizeof *k, cmp_keyed);
    c->labels = calloc(n + 1, sizeof *c->labels);
    if (!c->labels) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || strcmp(k[i].key, k[i - 1].key))
            if (!(c->labels[c->n_labels++] = strdup(k[i].key))) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
        row_label[k[i].row] = c->n_labels - 1;
    }
    /* groups */
    for (size_t i = 0; i < n; i++) {
        k[i].key = group_key(&m->rows[i], i);
        k[i].row = (int)i;
        if (!k[i].key) {
            for (size_t j = 0; j < i; j++) free(k[j].key);
            rs_errk(err, RS_ENOMEM, "out of memory");
            goto done;
        }
    }
    qsort(k, n, sizeof *k, cmp_keyed);
    for (size_t i = 0, g = 0; i < n; i++) {
        if (i > 0 && strcmp(k[i].key, k[i - 1].key)) g++;
        row_group[k[i].row] = (int)g;
    }
    for (size_t i = 0; i < n; i++) free(k[i].key);
    /* inputs */
    c->text_row = malloc((n + 1) * sizeof(int));
    c->image_row = malloc((n + 1) * sizeof(int));
    c->text_label = malloc((n + 1) * sizeof(int));
    c->image_label = malloc((n + 1) * sizeof(int));
    c->text_group = malloc((n + 1) * sizeof(int));
    c->image_group = malloc((n + 1) * sizeof(int));
    c->image_caption = malloc((n + 1) * sizeof(int));
    if (!c->text_row || !c->image_row || !c->text_label || !c->image_label || !c->text_group || !c->image_group ||
        !c->image_caption) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if (m->rows[i].modality == RS_MODALITY_TEXT) {
            c->text_row[c->n_text] = (int)i;
            c->text_label[c->n_text] = row_label[i];
            c->text_group[c->n_text++] = row_group[i];
        } else {
            c->image_row[c->n_image] = (int)i;
            c->image_label[c->n_image] = row_label[i];
            c->image_group[c->n_image++] = row_group[i];
        }
    }
    /* control-task types of the concept probes: the manifest's category column (COCO sampling
       writes the image's category, coco_image_type), as dense ids over the sorted names; a row
       without one leaves its probe without a control task (pl_ctx.n_ctypes = 0: no column) */
    int tcol = rs_manifest_extra_col(m, "category");
    if (tcol >= 0) {
        c->text_ctype = malloc((n + 1) * sizeof(int));
        c->image_ctype = malloc((n + 1) * sizeof(int));
        if (!c->text_ctype || !c->image_ctype) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
        for (size_t i = 0; i < n; i++) {
            k[i].key = m->rows[i].extra[tcol];
            k[i].row = (int)i;
        }
        qsort(k, n, sizeof *k, cmp_keyed);
        int *rt = row_label; /* reused: labels are copied above */
        for (size_t i = 0, t = 0; i < n; i++) {
            if (i > 0 && strcmp(k[i].key, k[i - 1].key) && k[i - 1].key[0]) t++;
            rt[k[i].row] = k[i].key[0] ? (int)t : -1;
            if (k[i].key[0]) c->n_ctypes = (int)t + 1;
        }
        for (int t = 0; t < c->n_text; t++) c->text_ctype[t] = rt[c->text_row[t]];
        for (int j = 0; j < c->n_image; j++) c->image_ctype[j] = rt[c->image_row[j]];
        for (size_t i = 0; i < n; i++) k[i].key = NULL;
    }
    for (int j = 0; j < c->n_image; j++) {
        c->image_caption[j] = -1;
        for (int t = 0; t < c->n_text; t++)
            if (c->text_group[t] == c->image_group[j]) {
                c->image_caption[j] = t;
                break;
            }
    }
    /* edited variants */
    int nv = 0;
    for (int e = 0; e < c->cfg->n_edits; e++) nv += c->cfg->edits[e].n_values;
    c->variants = calloc((size_t)nv + 1, sizeof *c->variants);
    if (!c->variants) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    for (int e = 0; e < c->cfg->n_edits; e++)
        for (int v = 0; v < c->cfg->edits[e].n_values; v++) {
            pl_variant *pv = &c->variants[c->n_variants];
            char spec[96];
            snprintf(spec, sizeof spec, "%s=%.17g", c->cfg->edits[e].name, c->cfg->edits[e].values[v]);
            if (rs_edit_parse(spec, &pv->edit, err)) {
                rs_err_prefix(err, "edits");
                goto done;
            }
            pv->name = rs_edit_name(pv->edit.kind); /* canonical: the alias redness_luma is "redness" */
            snprintf(pv->label, sizeof pv->label, "%s %g", pv->name, c->cfg->edits[e].values[v]);
            c->n_variants++;
        }
    if (c->n_image && rs_manifest_check_images(m, NULL, err)) goto done;
    rc = 0;
done:
    free(row_group);
    free(row_label);
    free(k);
    return rc;
}

/* The stage's one unit (run.c's protocol): fingerprint → c->dataset_fp (extended with the
 * manifest's own checksum once it is loaded); output dataset/manifest.csv. */
static int dataset_fp(pl_ctx *c, char fp[65], rs_err *err) {
    if (dataset_fingerprint(c, fp, err)) return -1;
    memcpy(c->dataset_fp, fp, 65);
    return 0;
}

static int dataset_run(pl_ctx *c, const char **note, rs_err *err) {
    (void)note;
    char *dir = pl_join(c->out, "dataset"), *path = dir ? pl_join(dir, "manifest.csv") : NULL;
    int rc = !dir || !path ? rs_errk(err, RS_ENOMEM, "out of memory")
             : pl_mkdir(dir, err) || build_manifest(c, path, dir, err) ? -1 : 0;
    if (!rc) pl_log(c, "dataset", "wrote %s", path); /* the manifest's content is what later stages depend on */
    free(dir);
    free(path);
    return rc;
}

static const char *const DATASET_OUT[] = {"dataset/manifest.csv", NULL};
static const pl_stage_def DATASET_STAGE = {"dataset", NULL, NULL, dataset_fp, DATASET_OUT, 1, dataset_run, NULL};

int pl_targets_wanted(const rs_config *cfg, int k) {
    for (int i = 0; i < cfg->probes.n_targets; i++) {
        const char *t = cfg->probes.targets[i];
        if (k < 0 ? strcmp(t, "groups") != 0 : !strcmp(t, rs_target_kind_name((rs_target_kind)k))) return 1;
    }
    return 0;
}

/* dataset/targets.csv (docs/datasets.md, Targets), rebuilt on every run when probes.targets
 * asks for it: from the run's manifest and, for the category columns, the COCO instance files
 * (a given manifest: colours and actions only). It is not an output of the dataset unit, so
 * turning the targets on does not redo the stores; the probes stage's fingerprint includes
 * the file's checksum. */
static int dataset_targets(pl_ctx *c, const char *manifest_path, rs_err *err) {
    coco_data *d = NULL;
    char *path = pl_join(c->out, "dataset/targets.csv");
    int rc = -1;
    if (!pl_targets_wanted(c->cfg, -1)) { /* none asked: no file (nor one left by an earlier run) */
        if (path) unlink(path);
        free(path);
        return 0;
    }
    c->targets = calloc(1, sizeof *c->targets);
    if (!path || !c->targets) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    if (!c->cfg->dataset.manifest && load_coco(c, &d, err)) goto done;
    if (rs_targets_build(c->man, d, c->targets, err) || rs_targets_write(c->targets, c->man, path, err)) {
        rs_err_prefix(err, "targets of %s", manifest_path);
        goto done;
    }
    pl_log(c, "dataset", "wrote %s (%d targets: %s)", path, c->targets->n_cols,
           d ? "categories, supercategories, colours, actions" : "colours, actions; no COCO instances for categories");
    rc = 0;
done:
    if (rc) {
        rs_targets_free(c->targets);
        free(c->targets);
        c->targets = NULL;
    }
    coco_free(d);
    free(path);
    return rc;
}

int pl_stage_dataset(pl_ctx *c, rs_err *err) {
    char *path = pl_join(c->out, DATASET_OUT[0]);
    int rc = -1;
    if (!path) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    if (pl_run_stage(c, &DATASET_STAGE, err)) goto done;
    if (load_dataset(c, path, err) || dataset_targets(c, path, err)) goto done;
    {
        char sha[65];
        int64_t b;
        if (rs_sha256_file(path, sha, &b, err)) goto done;
        pl_fp(c->dataset_fp, "%s manifest %s", c->dataset_fp, sha);
    }
    pl_log(c, "dataset", "%d captions, %d images, %d classes, %d edited variants per image", c->n_text, c->n_image,
           c->n_labels, c->n_variants);
    free(c->image_lum); /* luminance noted by the extract stage (pipeline_internal.h) */
    size_t nl = (size_t)c->n_image * (size_t)(c->n_variants + 1) * 2;
    if (!(c->image_lum = malloc((nl ? nl : 1) * sizeof *c->image_lum))) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nl; i++) c->image_lum[i] = NAN;
    rc = 0;
done:
    free(path);
    return rc;
}

/* Manifest CSV reading, validation, writing and the image-file check. Rows own their
 * strings; relative image paths are resolved lexically against the manifest's directory
 * (no symlink resolution) so the same file works wherever the folder is copied. */
#include "reprshift/manifest.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/csv.h"
#include "reprshift/fileio.h"

#define MANIFEST_MAX_BYTES ((size_t)1 << 30)

static const char *const STD_COLS[] = {"modality", "input", "label", "file_name", "image_id", "caption_id", "split"};
enum { C_MODALITY, C_INPUT, C_LABEL, C_FILE_NAME, C_IMAGE_ID, C_CAPTION_ID, C_SPLIT, N_STD };

const char *rs_modality_name(rs_modality m) { return m == RS_MODALITY_IMAGE ? "image" : "text"; }

static char *dir_of(const char *path) {
    const char *slash = path ? strrchr(path, '/') : NULL;
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

rs_manifest *rs_manifest_new(const char *dir) {
    rs_manifest *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->dir = strdup(dir ? dir : ".");
    if (!m->dir) {
        free(m);
        return NULL;
    }
    return m;
}

static void row_free(rs_manifest_row *r, int n_extra) {
    free(r->input);
    free(r->path);
    free(r->label);
    free(r->file_name);
    free(r->split);
    if (r->extra)
        for (int i = 0; i < n_extra; i++) free(r->extra[i]);
    free(r->extra);
}

void rs_manifest_free(rs_manifest *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n_rows; i++) row_free(&m->rows[i], m->n_extra);
    for (int i = 0; i < m->n_extra; i++) free(m->extra_names[i]);
    free(m->extra_names);
    free(m->rows);
    free(m->path);
    free(m->dir);
    free(m);
}

int rs_manifest_extra_col(const rs_manifest *m, const char *name) {
    for (int i = 0; i < m->n_extra; i++)
        if (!strcmp(m->extra_names[i], name)) return i;
    return -1;
}

int rs_manifest_add(rs_manifest *m, rs_modality modality, const char *input, const char *label,
                    const char *file_name, int64_t image_id, int64_t caption_id, const char *split,
                    const char *const *extra, rs_err *err) {
    if (m->n_rows == m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 64;
        rs_manifest_row *p = realloc(m->rows, nc * sizeof *p);
        if (!p) return rs_errk(err, RS_ENOMEM, "manifest: out of memory");
        m->rows = p;
        m->cap = nc;
    }
    rs_manifest_row *r = &m->rows[m->n_rows];
    memset(r, 0, sizeof *r);
    r->modality = modality;
    r->input = strdup(input ? input : "");
    r->label = strdup(label ? label : "");
    r->file_name = strdup(file_name ? file_name : "");
    r->split = strdup(split ? split : "");
    r->image_id = image_id;
    r->caption_id = caption_id;
    int ok = r->input && r->label && r->file_name && r->split;
    if (ok && modality == RS_MODALITY_IMAGE)
        ok = (r->path = input[0] == '/' ? strdup(input) : rs_path_join(m->dir, input)) != NULL;
    if (ok && m->n_extra) {
        r->extra = calloc((size_t)m->n_extra, sizeof *r->extra);
        ok = r->extra != NULL;
        for (int i = 0; ok && i < m->n_extra; i++)
            ok = (r->extra[i] = strdup(extra && extra[i] ? extra[i] : "")) != NULL;
    }
    if (!ok) {
        row_free(r, m->n_extra);
        return rs_errk(err, RS_ENOMEM, "manifest: out of memory");
    }
    m->n_rows++;
    return 0;
}

/* Parse an optional non-negative integer id cell ("" → -1). */
static int parse_id(const char *s, int64_t *out) {
    if (!*s) {
        *out = -1;
        return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < 0 || end == s) return -1;
    *out = v;
    return 0;
}

int rs_manifest_load(const char *path, rs_manifest **out, rs_err *err) {
    *out = NULL;
    rs_csv *t;
    if (rs_csv_load(path, MANIFEST_MAX_BYTES, &t, err)) return -1;
    int col[N_STD];
    for (int i = 0; i < N_STD; i++) col[i] = rs_csv_col(t, STD_COLS[i]);
    for (int i = 0; i <= C_LABEL; i++)
        if (col[i] < 0) {
            char hdr[256] = "";
            size_t k = 0;
            for (int c = 0; c < t->n_cols && k < sizeof hdr; c++)
                k += (size_t)snprintf(hdr + k, sizeof hdr - k, "%s%s", c ? "," : "", t->header[c]);
            rs_errk(err, RS_EFORMAT, "%s: missing required column '%s' (need modality,input,label; header is '%s')", path,
                    STD_COLS[i], hdr);
            rs_csv_free(t);
            return -1;
        }
    char *dir = dir_of(path);
    rs_manifest *m = dir ? rs_manifest_new(dir) : NULL;
    free(dir);
    if (!m || !(m->path = strdup(path))) goto oom;
    /* extra columns: every header name that is not a standard one */
    m->extra_names = calloc((size_t)t->n_cols + 1, sizeof *m->extra_names);
    int *extra_col = calloc((size_t)t->n_cols + 1, sizeof *extra_col);
    if (!m->extra_names || !extra_col) {
        free(extra_col);
        goto oom;
    }
    for (int c = 0; c < t->n_cols; c++) {
        int std = 0;
        for (int i = 0; i < N_STD; i++) std |= col[i] == c;
        if (std) continue;
        extra_col[m->n_extra] = c;
        if (!(m->extra_names[m->n_extra++] = strdup(t->header[c]))) {
            free(extra_col);
            goto oom;
        }
    }
    const char **extra = calloc((size_t)t->n_cols + 1, sizeof *extra);
    if (!extra) {
        free(extra_col);
        goto oom;
    }
    for (size_t r = 0; r < t->n_rows; r++) {
        size_t line = t->row_line[r];
        const char *mod = rs_csv_cell(t, r, col[C_MODALITY]);
        rs_modality md;
        if (!strcmp(mod, "text")) md = RS_MODALITY_TEXT;
        else if (!strcmp(mod, "image")) md = RS_MODALITY_IMAGE;
        else {
            rs_errk(err, RS_EFORMAT, "%s: line %zu: modality '%.40s' is not \"text\" or \"image\"", path, line, mod);
            goto fail_cols;
        }
        const char *input = rs_csv_cell(t, r, col[C_INPUT]);
        if (!*input) {
            rs_errk(err, RS_EFORMAT, "%s: line %zu: empty input (need a caption or an image path)", path, line);
            goto fail_cols;
        }
        int64_t ids[2];
        for (int k = 0; k < 2; k++) {
            int c = col[k ? C_CAPTION_ID : C_IMAGE_ID];
            const char *s = c >= 0 ? rs_csv_cell(t, r, c) : "";
            if (parse_id(s, &ids[k])) {
                rs_errk(err, RS_EFORMAT, "%s: line %zu: %s '%.40s' is not a non-negative integer", path, line,
                        STD_COLS[k ? C_CAPTION_ID : C_IMAGE_ID], s);
                goto fail_cols;
            }
        }
        const char *split = col[C_SPLIT] >= 0 ? rs_csv_cell(t, r, col[C_SPLIT]) : "";
        if (*split && strcmp(split, "train") && strcmp(split, "val") && strcmp(split, "test")) {
            rs_errk(err, RS_EFORMAT, "%s: line %zu: split '%.40s' is not train, val, test or empty", path, line, split);
            goto fail_cols;
        }
        for (int i = 0; i < m->n_extra; i++) extra[i] = rs_csv_cell(t, r, extra_col[i]);
        if (rs_manifest_add(m, md, input, rs_csv_cell(t, r, col[C_LABEL]),
                            col[C_FILE_NAME] >= 0 ? rs_csv_cell(t, r, col[C_FILE_NAME]) : "", ids[0], ids[1], split,
                            extra, err)) {
            rs_err_prefix(err, "%s", path);
            goto fail_cols;
        }
        m->rows[m->n_rows - 1].line = line;
    }
    free(extra);
    free(extra_col);
    rs_csv_free(t);
    *out = m;
    return 0;
fail_cols:
    free(extra);
    free(extra_col);
    rs_csv_free(t);
    rs_manifest_free(m);
    return -1;
oom:
    rs_csv_free(t);
    rs_manifest_free(m);
    return rs_errk(err, RS_ENOMEM, "%s: out of memory", path);
}

int rs_manifest_check_images(const rs_manifest *m, size_t *n_missing, rs_err *err) {
    size_t missing = 0, n_images = 0;
    char list[600] = "";
    size_t k = 0;
    for (size_t i = 0; i < m->n_rows; i++) {
        const rs_manifest_row *r = &m->rows[i];
        if (r->modality != RS_MODALITY_IMAGE) continue;
        n_images++;
        struct stat sb;
        const char *why = NULL;
        if (stat(r->path, &sb)) why = strerror(errno);
        else if (!S_ISREG(sb.st_mode)) why = "not a regular file";
        else if (access(r->path, R_OK)) why = "not readable";
        if (!why) continue;
        if (missing < 3 && k < sizeof list)
            k += (size_t)snprintf(list + k, sizeof list - k, "%sline %zu: %s (%s)", missing ? "; " : "", r->line,
                                  r->path, why);
        missing++;
    }
    if (n_missing) *n_missing = missing;
    if (missing)
        return rs_errk(err, RS_EIO, "%s: %zu of %zu image files missing or unreadable: %s%s", m->path ? m->path : "manifest",
                       missing, n_images, list, missing > 3 ? "; ..." : "");
    return 0;
}

static void write_id(FILE *fp, int64_t id) {
    if (id >= 0) fprintf(fp, "%lld", (long long)id);
}

int rs_manifest_write(const rs_manifest *m, const char *path, rs_err *err) {
    rs_atomic_file f;
    if (rs_atomic_open(&f, path, err)) return -1;
    for (int i = 0; i < N_STD; i++) {
        if (i) fputc(',', f.fp);
        rs_csv_write_field(f.fp, STD_COLS[i]);
    }
    for (int i = 0; i < m->n_extra; i++) {
        fputc(',', f.fp);
        rs_csv_write_field(f.fp, m->extra_names[i]);
    }
    fputc('\n', f.fp);
    for (size_t i = 0; i < m->n_rows; i++) {
        const rs_manifest_row *r = &m->rows[i];
        const char *a[] = {rs_modality_name(r->modality), r->input, r->label, r->file_name};
        for (int c = 0; c < 4; c++) {
            if (c) fputc(',', f.fp);
            rs_csv_write_field(f.fp, a[c]);
        }
        fputc(',', f.fp);
        write_id(f.fp, r->image_id);
        fputc(',', f.fp);
        write_id(f.fp, r->caption_id);
        fputc(',', f.fp);
        rs_csv_write_field(f.fp, r->split);
        for (int c = 0; c < m->n_extra; c++) {
            fputc(',', f.fp);
            rs_csv_write_field(f.fp, r->extra[c]);
        }
        fputc('\n', f.fp);
        if (ferror(f.fp)) break;
    }
    if (ferror(f.fp)) {
        rs_atomic_abort(&f);
        return rs_errk(err, RS_EFORMAT, "%s: write error", path);
    }
    return rs_atomic_commit(&f, err);
}

/* Split an absolute path into normalised components ("." dropped, ".." pops). */
static int split_abs(const char *p, char ***comp, int *n) {
    char *cwd = NULL;
    char *full;
    if (p[0] == '/') full = strdup(p);
    else {
        cwd = getcwd(NULL, 0);
        if (!cwd) return -1;
        full = rs_path_join(cwd, p);
        free(cwd);
    }
    if (!full) return -1;
    size_t len = strlen(full);
    char **c = calloc(len / 2 + 2, sizeof *c);
    if (!c) {
        free(full);
        return -1;
    }
    int k = 0;
    for (char *save = NULL, *tok = strtok_r(full, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
        if (!strcmp(tok, ".")) continue;
        if (!strcmp(tok, "..")) {
            if (k) free(c[--k]);
            continue;
        }
        if (!(c[k++] = strdup(tok))) {
            for (int i = 0; i < k - 1; i++) free(c[i]);
            free(c);
            free(full);
            return -1;
        }
    }
    free(full);
    *comp = c;
    *n = k;
    return 0;
}

char *rs_path_relative(const char *target, const char *from_dir) {
    char **a = NULL, **b = NULL;
    int na = 0, nb = 0;
    char *out = NULL;
    if (split_abs(target, &a, &na) || split_abs(from_dir, &b, &nb)) goto done;
    int common = 0;
    while (common < na && common < nb && !strcmp(a[common], b[common])) common++;
    size_t len = 1;
    for (int i = common; i < nb; i++) len += 3;
    for (int i = common; i < na; i++) len += strlen(a[i]) + 1;
    out = malloc(len + 1);
    if (!out) goto done;
    out[0] = 0;
    for (int i = common; i < nb; i++) strcat(out, "../");
    for (int i = common; i < na; i++) {
        strcat(out, a[i]);
        if (i + 1 < na) strcat(out, "/");
    }
    if (!out[0]) strcpy(out, ".");
done:
    for (int i = 0; i < na; i++) free(a[i]);
    for (int i = 0; i < nb; i++) free(b[i]);
    free(a);
    free(b);
    return out;
}

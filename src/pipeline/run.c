/* `reprshift run`: run directory, log, provenance, stage markers and the stage sequence.
 *
 * Run directory (docs/pipeline.md):
 *   config.resolved.json   the config with every default filled in
 *   provenance.json        tool version, config checksum, model / SAE file checksums
 *   run.log                every stage's messages with UTC timestamps (appended)
 *   stages/NAME.done       done-markers: the fingerprint of the inputs the stage read
 *   dataset/manifest.csv   acts/<store>/   results/ (json, csv)   report.html
 *   stages/store_NAME.done one per activation store (the extract stage's units)
 * Invariant: a marker is written (atomically) only after all of its stage's (or unit's)
 * outputs are in place, and removed before the stage is redone, so a killed or failed stage
 * never looks complete; the protocol is written once (run_unit) for every stage and unit.
 * Fingerprints chain: each stage's includes those of the stages it reads. */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <sys/file.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "pipeline/pipeline_internal.h"
#include "reprshift/blas.h"
#include "reprshift/fileio.h"
#include "reprshift/hf_cache.h"
#include "base/jsonutil.h"
#include "reprshift/log.h"
#include "reprshift/ops.h"
#include "reprshift/report.h"
#include "reprshift/sae_registry.h"
#include "reprshift/stats.h"
#include "reprshift/version.h"

rs_pipeline_opts rs_pipeline_defaults(void) {
    rs_pipeline_opts o;
    memset(&o, 0, sizeof o);
    return o;
}

char *pl_join(const char *dir, const char *name) { return rs_path_join(dir, name); }

void pl_log(pl_ctx *c, const char *stage, const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char tag[64];
    if (c->lang) { /* a language's sub-run: "[extract es] llm_text: ..." */
        snprintf(tag, sizeof tag, "%s %s", stage, c->lang);
        stage = tag;
    }
    if (c->log) {
        time_t t = time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        char ts[32];
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
        fprintf(c->log, "%s [%s] %s\n", ts, stage, msg);
        fflush(c->log);
    }
    if (!c->opt->quiet) rs_log_emit(RS_LOG_MESSAGE, "[%s] %s", stage, msg);
}

void pl_fp(char out[65], const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) {
        memset(out, '0', 64); /* OOM: a fingerprint that never matches a marker */
        out[64] = 0;
        return;
    }
    rs_sha256_hex(s, (size_t)n, out);
    free(s);
}

static char *marker_path(pl_ctx *c, const char *name) {
    char f[200];
    snprintf(f, sizeof f, "%s.done", name);
    return pl_join(c->stages, f);
}

/* The marker primitives: used only by the protocol below (pl_run_stage, pl_run_units). */
static int stage_done(pl_ctx *c, const char *name, const char *fp) {
    if (c->opt->force) return 0;
    char *p = marker_path(c, name), *buf = NULL;
    size_t n;
    rs_err e = {0};
    int ok = p && rs_read_file(p, 4096, &buf, &n, &e) == 0 && n >= 64 && !memcmp(buf, fp, 64);
    free(p);
    free(buf);
    return ok;
}

int pl_marker_matches(pl_ctx *c, const char *name, const char *fp) { return stage_done(c, name, fp); }

/* Remove the marker before the stage is redone: a marker that cannot be removed is an error
 * (left in place, it could stand for outputs about to be rewritten). */
static int stage_reset(pl_ctx *c, const char *name, rs_err *err) {
    char *p = marker_path(c, name);
    if (!p) return rs_errk(err, RS_ENOMEM, "out of memory");
    int rc = unlink(p) && errno != ENOENT ? rs_errk(err, RS_EIO, "%s: cannot remove: %s", p, strerror(errno)) : 0;
    free(p);
    return rc;
}

int pl_write_text(const char *path, const char *text, rs_err *err) {
    rs_atomic_file f = {0};
    if (rs_atomic_open(&f, path, err) || rs_atomic_write(&f, text, strlen(text), err) || rs_atomic_commit(&f, err)) {
        rs_atomic_abort(&f);
        return -1;
    }
    return 0;
}

/* Marker last: the fingerprint, then the note line (if any). */
static int stage_mark(pl_ctx *c, const char *name, const char *fp, const char *note, rs_err *err) {
    char *p = marker_path(c, name);
    char line[400];
    snprintf(line, sizeof line, "%.64s\n%.300s%s", fp, note ? note : "", note ? "\n" : "");
    int rc = p ? pl_write_text(p, line, err) : rs_errk(err, RS_ENOMEM, "out of memory");
    free(p);
    return rc;
}

int pl_mkdir(const char *path, rs_err *err) {
    if (mkdir(path, 0777) && errno != EEXIST) return rs_errk(err, RS_EIO, "%s: cannot create folder: %s", path, strerror(errno));
    if (!rs_is_dir(path)) return rs_errf(err, "%s: exists and is not a folder", path);
    return 0;
}

/* mkdir -p */
static int mkdir_p(const char *path, rs_err *err) {
    char *p = strdup(path);
    if (!p) return rs_errk(err, RS_ENOMEM, "out of memory");
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(p, 0777) && errno != EEXIST) {
                int e = errno;
                rs_errk(err, RS_EIO, "%s: cannot create folder: %s", p, strerror(e));
                free(p);
                return -1;
            }
            *s = '/';
        }
    free(p);
    return pl_mkdir(path, err);
}

/* Files a store writes: index.json, shard-*, .lock, part-* and temp files of those. */
static int store_file(const char *n) {
    return !strncmp(n, "index.json", 10) || !strncmp(n, "shard-", 6) || !strcmp(n, ".lock") || !strncmp(n, "part-", 5);
}

void pl_remove_store(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!store_file(e->d_name)) continue;
        char *p = pl_join(dir, e->d_name);
        if (p) unlink(p);
        free(p);
    }
    closedir(d);
    rmdir(dir);
}

/* Leftovers of a killed run: temp files of atomic writes (NAME.tmp.PID) in a folder, and
 * the whole scratch folder work/. Safe because the run holds RUN/.lock. */
static void remove_tmp_files(const char *dir, int everything) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (!everything && !strstr(e->d_name, ".tmp.")) continue;
        char *p = pl_join(dir, e->d_name);
        if (!p) continue;
        if (everything && rs_is_dir(p)) remove_tmp_files(p, 1), rmdir(p);
        else unlink(p);
        free(p);
    }
    closedir(d);
}

/* ---- provenance ---- */

typedef struct {
    char *role, *path;
    int64_t bytes;
    int64_t mtime_ns;
    char sha[65];
    const char *sha_source; /* where sha came from (provenance.json "sha256_source") */
} prov_file;

typedef struct {
    prov_file *f;
    int n, cap;
} prov_list;

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int prov_add(prov_list *l, const char *role, const char *path, rs_err *err) {
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->f[i].path, path)) return 0;
    if (l->n == l->cap) {
        int nc = l->cap ? 2 * l->cap : 16;
        prov_file *nf = realloc(l->f, (size_t)nc * sizeof *nf);
        if (!nf) return rs_errk(err, RS_ENOMEM, "out of memory");
        l->f = nf;
        l->cap = nc;
    }
    struct stat st;
    if (stat(path, &st)) return rs_errk(err, RS_EIO, "%s: %s", path, strerror(errno));
    prov_file *f = &l->f[l->n];
    memset(f, 0, sizeof *f);
    f->role = strdup(role);
    f->path = strdup(path);
    if (!f->role || !f->path) {
        free(f->role);
        free(f->path);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    f->bytes = (int64_t)st.st_size;
    f->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    l->n++;
    return 0;
}

static int want_model_file(const char *n) {
    size_t L = strlen(n);
    return !strcmp(n, "config.json") || !strcmp(n, "tokenizer.json") || !strcmp(n, "preprocessor_config.json") ||
           (L > 12 && !strcmp(n + L - 12, ".safetensors")) || (L > 11 && !strcmp(n + L - 11, ".index.json")) ||
           (L > 4 && !strcmp(n + L - 4, ".npz")) || !strcmp(n, "cfg.json");
}

/* Add the files of a model or SAE directory (sorted), or the file itself. */
static int prov_add_dir(prov_list *l, const char *role, const char *path, int all_files, rs_err *err) {
    if (!rs_is_dir(path)) return prov_add(l, role, path, err);
    DIR *d = opendir(path);
    if (!d) return rs_errk(err, RS_EIO, "%s: cannot open folder: %s", path, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0, rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) && !rc) {
        if (e->d_name[0] == '.' || !(all_files ? 1 : want_model_file(e->d_name))) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **nn = realloc(names, (size_t)cap * sizeof *nn);
            if (!nn) { rc = rs_errk(err, RS_ENOMEM, "out of memory"); break; }
            names = nn;
        }
        if (!(names[n++] = strdup(e->d_name))) rc = rs_errk(err, RS_ENOMEM, "out of memory");
    }
    closedir(d);
    if (!rc) qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n && !rc; i++) {
        char *p = pl_join(path, names[i]);
        if (!p) rc = rs_errk(err, RS_ENOMEM, "out of memory");
        else if (!rs_is_dir(p)) rc = prov_add(l, role, p, err);
        free(p);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    if (!rc && n == 0) rc = rs_errf(err, "%s: folder holds no model files", path);
    return rc;
}

/* Checksums, cheapest source first (docs/pipeline.md, "Provenance"):
 *   "provenance.json"  an earlier provenance.json of this run folder, same size and mtime;
 *   "hf-cache-blob"    the Hugging Face cache names every LFS file by its SHA-256;
 *   "digest-cache"     the shared digest cache (o->digest_cache), same path/size/mtime/inode;
 *   "computed"         hashed now (and added to the digest cache).
 * Hashing ~10 GB of real checkpoints on every run would cost a minute. */
static int prov_hash(pl_ctx *c, prov_list *l, const char *prov_path, rs_err *err) {
    cJSON *old = NULL;
    rs_err ignore = {0};
    if (rs_path_exists(prov_path)) rs_json_load(prov_path, 64u << 20, &old, &ignore);
    const cJSON *files = old ? cJSON_GetObjectItemCaseSensitive(old, "files") : NULL;
    const char *cache_file = c->opt->digest_cache;
    pl_digest_cache dc = {0};
    int n_bad = 0, n_src[4] = {0, 0, 0, 0}, rc = 0;
    if (cache_file && pl_digest_load(cache_file, &dc, &n_bad, &ignore)) {
        pl_log(c, "provenance", "note: digest cache %s not used (%s)", cache_file, ignore.msg);
        cache_file = NULL;
    } else if (n_bad) {
        pl_log(c, "provenance", "note: digest cache %s: %d unreadable line%s skipped", cache_file, n_bad,
               n_bad == 1 ? "" : "s");
    }
    for (int i = 0; i < l->n && !rc; i++) {
        prov_file *f = &l->f[i];
        const cJSON *e;
        f->sha_source = NULL;
        cJSON_ArrayForEach(e, files) {
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "path"), *b = cJSON_GetObjectItemCaseSensitive(e, "bytes"),
                        *m = cJSON_GetObjectItemCaseSensitive(e, "mtime_ns"), *s = cJSON_GetObjectItemCaseSensitive(e, "sha256");
            if (cJSON_IsString(p) && !strcmp(p->valuestring, f->path) && cJSON_IsNumber(b) &&
                (int64_t)b->valuedouble == f->bytes && cJSON_IsString(m) &&
                strtoll(m->valuestring, NULL, 10) == f->mtime_ns && cJSON_IsString(s) && strlen(s->valuestring) == 64) {
                memcpy(f->sha, s->valuestring, 65);
                f->sha_source = "provenance.json";
                n_src[0]++;
                break;
            }
        }
        if (f->sha_source) continue;
        if (rs_hf_blob_sha256(f->path, f->sha)) {
            f->sha_source = "hf-cache-blob";
            n_src[1]++;
            continue;
        }
        char *real = cache_file ? realpath(f->path, NULL) : NULL;
        struct stat st;
        int have_st = real && stat(real, &st) == 0;
        const char *hit = have_st ? pl_digest_find(&dc, real, &st) : NULL;
        if (hit) {
            memcpy(f->sha, hit, 65);
            f->sha_source = "digest-cache";
            n_src[2]++;
        } else {
            if (f->bytes > (1 << 26)) pl_log(c, "provenance", "sha256 of %s (%.1f MB)", f->path, f->bytes / 1e6);
            int64_t b;
            rc = rs_sha256_file(f->path, f->sha, &b, err);
            f->sha_source = "computed";
            n_src[3]++;
            /* the file's identity after hashing: a file changed meanwhile is not cached */
            struct stat st2;
            if (!rc && have_st && stat(real, &st2) == 0 && st2.st_mtim.tv_sec == st.st_mtim.tv_sec &&
                st2.st_mtim.tv_nsec == st.st_mtim.tv_nsec && st2.st_size == b)
                rc = pl_digest_put(&dc, real, &st2, f->sha, err);
        }
        free(real);
    }
    if (!rc && cache_file && dc.added) {
        if (pl_digest_save(cache_file, &dc, &ignore))
            pl_log(c, "provenance", "note: digest cache not updated (%s)", ignore.msg);
    }
    if (!rc)
        pl_log(c, "provenance", "sha256 of %d files: %d from this folder's provenance.json, %d from Hugging Face cache "
               "names, %d from the digest cache, %d computed", l->n, n_src[0], n_src[1], n_src[2], n_src[3]);
    pl_digest_free(&dc);
    cJSON_Delete(old);
    return rc;
}

static void prov_free(prov_list *l) {
    for (int i = 0; i < l->n; i++) {
        free(l->f[i].role);
        free(l->f[i].path);
    }
    free(l->f);
}

static const char *base_name(const char *p, char *buf, size_t cap) {
    size_t L = strlen(p);
    while (L > 1 && p[L - 1] == '/') L--;
    size_t s = L;
    while (s > 0 && p[s - 1] != '/') s--;
    snprintf(buf, cap, "%.*s", (int)(L - s), p + s);
    return buf;
}

static int write_provenance(pl_ctx *c, const char *config_sha, rs_err *err) {
    prov_list l = {0};
    int rc = -1;
    cJSON *root = NULL;
    char *js = NULL, *path = pl_join(c->out, "provenance.json");
    const rs_config *cfg = c->cfg;
    if (!path) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    if (prov_add_dir(&l, "llm", cfg->llm, 0, err) || prov_add_dir(&l, "vlm", cfg->vlm, 0, err)) goto done;
    int n_model_files = l.n;
    if (cfg->tokenizer && prov_add(&l, "tokenizer", cfg->tokenizer, err)) goto done;
    for (int i = 0; cfg->has_saes && i < cfg->n_layers; i++) {
        char *sp = rs_config_sae_path(cfg, cfg->layers[i]);
        if (!sp) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
        char *file = NULL; /* an SAE name → its params.npz in the Hugging Face cache */
        const rs_sae_entry *named;
        int r = rs_sae_resolve(sp, &file, &named, err) ? rs_err_prefix(err, "saes.path")
                : rs_path_exists(file) ? prov_add_dir(&l, "sae", file, 1, err)
                                       : rs_errf(err, "saes.path: no SAE for layer %d at %s", cfg->layers[i], sp);
        free(file);
        free(sp);
        if (r) goto done;
    }
    if (prov_hash(c, &l, path, err)) goto done;
    /* fingerprints: per model, SAEs, all */
    char *acc[3] = {NULL, NULL, NULL};
    size_t accn[3] = {0, 0, 0};
    FILE *fa[3];
    for (int k = 0; k < 3; k++) fa[k] = open_memstream(&acc[k], &accn[k]);
    for (int i = 0; i < l.n; i++) {
        int k = !strcmp(l.f[i].role, "llm") ? 0 : !strcmp(l.f[i].role, "vlm") ? 1 : 2;
        if (!strcmp(l.f[i].role, "tokenizer")) k = 0; /* the caption tokenizer feeds both */
        if (fa[k]) fprintf(fa[k], "%s %s %lld\n", l.f[i].role, l.f[i].sha, (long long)l.f[i].bytes);
    }
    for (int k = 0; k < 3; k++)
        if (fa[k]) fclose(fa[k]);
    rs_sha256_hex(acc[0] ? acc[0] : "", accn[0], c->llm_fp);
    rs_sha256_hex(acc[1] ? acc[1] : "", accn[1], c->vlm_fp);
    rs_sha256_hex(acc[2] ? acc[2] : "", accn[2], c->sae_fp);
    for (int k = 0; k < 3; k++) free(acc[k]);
    pl_fp(c->models_fp, "%s %s %s", c->llm_fp, c->vlm_fp, c->sae_fp);
    (void)n_model_files;

    root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "tool", "reprshift");
    cJSON_AddStringToObject(root, "version", RS_VERSION);
    cJSON *cj = cJSON_AddObjectToObject(root, "config");
    cJSON_AddStringToObject(cj, "path", cfg->path);
    cJSON_AddStringToObject(cj, "sha256", config_sha);
    cJSON_AddStringToObject(root, "models_fingerprint", c->models_fp);
    /* How the VLM's images were preprocessed: which transformers processor is reproduced. */
    cJSON *ip = cJSON_AddObjectToObject(root, "image_processor");
    cJSON_AddStringToObject(ip, "name", rs_image_processor_name(cfg->image_processor));
    cJSON_AddStringToObject(ip, "transformers_class", rs_image_processor_class(cfg->image_processor));
    /* the BLAS the products ran on (src/cli/main.c may have chosen the kernel) */
    rs_blas_info bi;
    rs_blas_info_get(&bi);
    cJSON *bj = cJSON_AddObjectToObject(root, "blas");
    cJSON_AddStringToObject(bj, "library", bi.library);
    cJSON_AddStringToObject(bj, "kernel", bi.kernel);
    cJSON_AddStringToObject(bj, "config", bi.config);
    char sg[400]; /* the fp32 linear layers' route: the BLAS or oneDNN (RS_SGEMM) */
    rs_sgemm_describe(sg, sizeof sg);
    cJSON_AddStringToObject(bj, "linear_layers_path", rs_sgemm_path());
    cJSON_AddStringToObject(bj, "linear_layers", sg);
    /* the fp32 attention's products: "blas" or "fused" (RS_ATTN, include/reprshift/ops.h) */
    cJSON_AddStringToObject(bj, "attention_path", op_attn_route_name(op_attn_route()));
    cJSON *files = cJSON_AddArrayToObject(root, "files");
    for (int i = 0; i < l.n; i++) {
        cJSON *e = cJSON_CreateObject();
        char mt[32];
        snprintf(mt, sizeof mt, "%lld", (long long)l.f[i].mtime_ns);
        cJSON_AddStringToObject(e, "role", l.f[i].role);
        cJSON_AddStringToObject(e, "path", l.f[i].path);
        rs_json_add_num(e, "bytes", (double)l.f[i].bytes);
        cJSON_AddStringToObject(e, "sha256", l.f[i].sha);
        cJSON_AddStringToObject(e, "sha256_source", l.f[i].sha_source ? l.f[i].sha_source : "computed");
        cJSON_AddStringToObject(e, "mtime_ns", mt);
        cJSON_AddItemToArray(files, e);
    }
    js = cJSON_Print(root);
    if (!js) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    size_t L = strlen(js);
    char *js2 = realloc(js, L + 2);
    if (!js2) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    js = js2;
    js[L] = '\n';
    js[L + 1] = 0;
    if (pl_write_text(path, js, err)) goto done;
    pl_log(c, "provenance", "%d model/SAE files checksummed (sha256) -> %s", l.n, path);
    rc = 0;
done:
    free(path);
    free(js);
    cJSON_Delete(root);
    prov_free(&l);
    return rc;
}

/* ---- report ---- */

static int upstream_fp_of(pl_ctx *c, const char *name, char fp[65]) {
    char *p = marker_path(c, name), *buf = NULL;
    size_t n;
    rs_err e = {0};
    int ok = p && rs_read_file(p, 4096, &buf, &n, &e) == 0 && n >= 64;
    if (ok) {
        memcpy(fp, buf, 64);
        fp[64] = 0;
    }
    free(p);
    free(buf);
    return ok ? 0 : -1;
}

/* Its fingerprint chains those of the stages it reads (a stage without a marker: "none"). */
static int report_fp(pl_ctx *c, char fp[65], rs_err *err) {
    (void)err;
    const char *names[] = {"shift", "probes", "dataset", "conditions", "downstream", "steer"};
    enum { NU = sizeof names / sizeof *names };
    char up[65], all[65 * (NU + 4) + 64] = "";
    for (int k = 0; k < NU; k++) {
        if (upstream_fp_of(c, names[k], up)) strcpy(up, "none");
        strcat(all, up);
    }
    /* the crosscoder stage (optional, newer) chains in only when it has run, so the report of
       a run without it keeps its fingerprint */
    if (!upstream_fp_of(c, "crosscoder", up)) strcat(strcat(all, " crosscoder "), up);
    if (!upstream_fp_of(c, "sae_train", up)) strcat(strcat(all, " sae_train "), up);
    if (!upstream_fp_of(c, "languages", up)) strcat(strcat(all, " languages "), up);
    pl_fp(fp, "report v1 %s name=%s", all, c->cfg->name);
    return 0;
}

static int report_run(pl_ctx *c, const char **note, rs_err *err) {
    (void)note;
    char *out = pl_join(c->out, "report.html"), *runj = pl_join(c->results, "run.json");
    int rc = -1;
    if (!out || !runj) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "title", c->cfg->name);
    char desc[1024];
    snprintf(desc, sizeof desc, "%s (LLM) vs %s (VLM): %d captions, %d images, %d edited variants per image; reprshift %s.",
             c->llm_name, c->vlm_name, c->n_text, c->n_image, c->n_variants, RS_VERSION);
    cJSON_AddStringToObject(r, "description", desc);
    char *js = cJSON_Print(r);
    cJSON_Delete(r);
    if (!js) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    int w = pl_write_text(runj, js, err);
    free(js);
    if (w) goto done;
    int nfig = 0;
    if (report_write(c->results, out, &nfig, err)) goto done;
    pl_log(c, "report", "%d figures -> %s", nfig, out);
    rc = 0;
done:
    free(out);
    free(runj);
    return rc;
}

/* ---- the stage table ---- */

/* Entries without a fingerprint, called as they are: the dataset and extract stages run their
 * own defs through pl_run_stage / pl_run_units (dataset.c, extract.c). */
static int run_dataset(pl_ctx *c, const char **note, rs_err *err) { (void)note; return pl_stage_dataset(c, err); }
static int run_probes_check(pl_ctx *c, const char **note, rs_err *err) { (void)note; return pl_probes_check(c, err); }
static int run_extract(pl_ctx *c, const char **note, rs_err *err) {
    (void)note;
    return pl_stage_extract(c, err) || pl_languages_prepare(c, err) || pl_languages_extract(c, err) ? -1 : 0;
}

static const char *const SHIFT_OUT[] = {"results/shift.json", "results/sae_fit.json", "results/shift_summary.csv", NULL};
static const char *const COND_OUT[] = {"results/conditions.json", "results/conditions_summary.csv", NULL};
static const char *const DOWNSTREAM_OUT[] = {"results/downstream.json", "results/downstream_items.csv", NULL};
static const char *const CROSSCODER_OUT[] = {"results/crosscoder.json", "results/crosscoder_latents.csv", NULL};
static const char *const SAE_TRAIN_OUT[] = {"results/sae_train.json", NULL};
static const char *const LANG_OUT[] = {"results/languages.json", "results/languages_summary.csv", NULL};
static const char *const PROBES_OUT[] = {"results/probes.json", "results/transfer.json", "results/attribute_transfer.json",
                                         "results/probe_targets.csv", NULL};
static const char *const STEER_OUT[] = {"results/steer.json", "results/steer.csv", NULL};
static const char *const REPORT_OUT[] = {"report.html", NULL};

/* In order. */
static const pl_stage_def STAGES[] = {
    {"dataset", NULL, NULL, NULL, NULL, 0, run_dataset, NULL},
    /* the probes' minimum test-set size, checked before any extraction */
    {"probes-check", NULL, NULL, NULL, NULL, 0, run_probes_check, NULL},
    {"extract", NULL, NULL, NULL, NULL, 0, run_extract, NULL},
    {"shift", pl_shift_used, "skipped: the dataset has no captions", pl_shift_fp, SHIFT_OUT, 0, pl_shift_run, NULL},
    {"conditions", pl_conditions_used,
     "skipped: no caption is read with an image (needs captions, images and a vlm_* image condition in 'conditions')",
     pl_conditions_fp, COND_OUT, 0, pl_conditions_run, NULL},
    {"downstream", pl_downstream_used, "skipped: off, or no caption is read with its own image (vlm_caption)",
     pl_downstream_fp, DOWNSTREAM_OUT, 0, pl_downstream_run, NULL},
    {"crosscoder", pl_crosscoder_used, NULL, pl_crosscoder_fp, CROSSCODER_OUT, 0, pl_crosscoder_run, NULL},
    {"sae_train", pl_sae_train_used, NULL, pl_sae_train_fp, SAE_TRAIN_OUT, 0, pl_sae_train_run, NULL},
    {"languages", pl_languages_used, NULL, pl_languages_fp, LANG_OUT, 0, pl_languages_run, NULL},
    {"probes", NULL, NULL, pl_probes_fp, PROBES_OUT, 0, pl_probes_run, NULL},
    {"steer", pl_steer_used, NULL, pl_steer_fp, STEER_OUT, 0, pl_steer_run, NULL},
    {"report", NULL, NULL, report_fp, REPORT_OUT, 1, report_run, NULL},
};

static void remove_outputs(pl_ctx *c, const pl_stage_def *st) {
    for (int i = 0; st->outputs && st->outputs[i]; i++) {
        char *p = pl_join(c->out, st->outputs[i]);
        if (p) unlink(p);
        free(p);
    }
}

/* A marker with a note line stands for a stage complete without its first output (e.g.
 * "no probe could be evaluated"). */
static int marker_has_note(pl_ctx *c, const char *name) {
    char *p = marker_path(c, name), *buf = NULL;
    size_t n = 0;
    rs_err e = {0};
    int has = 0;
    if (p && rs_read_file(p, 4096, &buf, &n, &e) == 0) {
        const char *nl = memchr(buf, '\n', n);
        has = nl && nl + 1 < buf + n && nl[1];
    }
    free(p);
    free(buf);
    return has;
}

/* The protocol, once, for a one-unit stage (u = -1: the fields of st) and for unit u of
 * st->units (docs/pipeline.md "When a stage is complete"). */
static int run_unit(pl_ctx *c, const pl_stage_def *st, void *arg, int u, rs_err *err) {
    const pl_units *un = u >= 0 ? st->units : NULL;
    char marker[160];
    if (un) snprintf(marker, sizeof marker, "%s%s", un->marker_prefix ? un->marker_prefix : "", un->names[u]);
    else snprintf(marker, sizeof marker, "%s", st->name);
    if (un ? un->used && !un->used(c, u) : st->used && !st->used(c)) {
        if (!un && st->unused_note) pl_log(c, st->name, "%s", st->unused_note);
        if (stage_reset(c, marker, err)) return -1;
        if (un) un->remove(c, u);
        else remove_outputs(c, st);
        return 0;
    }
    char fp[65];
    if (un ? un->fingerprint(c, arg, u, fp, err) : st->fingerprint(c, fp, err)) return -1;
    /* what the outputs hold: 1 written for fp, 0 nothing, -1 written for other inputs */
    int have;
    char *first = NULL;
    if (un) {
        have = un->written(c, u, fp);
    } else {
        first = st->outputs && st->outputs[0] ? pl_join(c->out, st->outputs[0]) : NULL;
        have = first && rs_path_exists(first);
    }
    int done = stage_done(c, marker, fp);
    if (done && (have > 0 || (!un && marker_has_note(c, marker)))) {
        if (un) pl_log(c, st->name, "%s: complete (skipped)", un->names[u]);
        else if (st->log_output) pl_log(c, st->name, "complete (skipped): %s", first);
        else pl_log(c, st->name, "complete (skipped)");
        free(first);
        return 0;
    }
    free(first);
    if (stage_reset(c, marker, err)) return -1;
    if (!un) {
        remove_outputs(c, st);
    } else if (have < 0 || (have > 0 && c->opt->force)) {
        /* outputs written for this fingerprint are resumed (an unfinished store at its first
           missing shard), others rebuilt */
        pl_log(c, st->name, "%s: inputs changed since it was written; rebuilding", un->names[u]);
        un->remove(c, u);
    }
    const char *note = NULL;
    if (un ? un->run(c, arg, u, fp, err) : st->run(c, &note, err)) return -1;
    return stage_mark(c, marker, fp, note, err);
}

int pl_run_units(pl_ctx *c, const pl_stage_def *st, void *arg, rs_err *err) {
    for (int u = 0; u < st->units->n; u++)
        if (run_unit(c, st, arg, u, err)) return -1;
    return 0;
}

int pl_run_stage(pl_ctx *c, const pl_stage_def *st, rs_err *err) {
    if (st->units) return pl_run_units(c, st, NULL, err);
    if (!st->fingerprint) return st->run(c, NULL, err);
    return run_unit(c, st, NULL, -1, err);
}

int pl_run_stages(pl_ctx *c, rs_err *err) {
    for (size_t i = 0; i < sizeof STAGES / sizeof *STAGES; i++) {
        if (pl_run_stage(c, &STAGES[i], err)) return -1;
        if (c->opt->n_tasks > 0 && STAGES[i].run == run_extract) break; /* a task: the merge does the rest */
    }
    return 0;
}

/* The dataset inputs must exist before the run folder is made, so that a run refused for a
 * missing input leaves nothing behind (models and SAEs are opened, and checked, later). */
static int check_dataset_inputs(const rs_config *cfg, rs_err *err) {
    if (cfg->dataset.manifest && access(cfg->dataset.manifest, R_OK))
        return rs_errk(err, RS_EIO, "%s: %s", cfg->dataset.manifest, strerror(errno));
    for (int i = 0; i < cfg->dataset.n_instances; i++) {
        const char *p[3] = {cfg->dataset.instances[i], cfg->dataset.captions[i], cfg->dataset.images[i]};
        for (int k = 0; k < 3; k++)
            if (p[k] && access(p[k], R_OK)) return rs_errk(err, RS_EIO, "%s: %s", p[k], strerror(errno));
    }
    return 0;
}

/* models.llm / models.vlm as given (a folder or a Hub name, docs/models.md) → the folder
 * to read; the labels keep the given name's last component ("gemma-2-2b"). SAE names are
 * resolved where the SAEs are loaded (sae_load). */
static int resolve_models(pl_ctx *c, rs_err *err) {
    rs_config *cfg = c->cfg;
    base_name(cfg->llm, c->llm_name, sizeof c->llm_name);
    base_name(cfg->vlm, c->vlm_name, sizeof c->vlm_name);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(cfg->resolved, "models");
    char **slot[2] = {&cfg->llm, &cfg->vlm};
    const char *key[2] = {"llm", "vlm"}, *rkey[2] = {"llm_revision", "vlm_revision"};
    for (int i = 0; i < 2; i++) {
        const cJSON *rv = cJSON_GetObjectItemCaseSensitive(m, rkey[i]);
        char *dir = NULL;
        if (rs_hf_resolve_model(*slot[i], cJSON_IsString(rv) ? rv->valuestring : NULL, &dir, err))
            return rs_err_prefix(err, "models.%s", key[i]);
        free(*slot[i]);
        *slot[i] = dir;
    }
    return 0;
}

int rs_pipeline_run(const rs_pipeline_opts *opts, char **report_path, rs_err *err) {
    pl_ctx c;
    memset(&c, 0, sizeof c);
    rs_pipeline_opts oo = *opts, *o = &oo;
    c.opt = o;
    c.setup_lock_fd = -1;
    int rc = -1, lock_fd = -1, task = o->n_tasks > 0;
    char *resolved = NULL, *cfgbuf = NULL, *tasks_cfg = NULL;
    if (report_path) *report_path = NULL;
    if ((task || o->merge) && o->force) return rs_errf(err, "%s: not with --force (run without --shard to redo everything)",
                                                       task ? "--shard" : "merge");
    if (task && (o->merge || o->task < 0 || o->task >= o->n_tasks))
        return rs_errf(err, "--shard %d/%d: the task must be 0..%d", o->task, o->n_tasks, o->n_tasks - 1);
    if (o->merge) { /* the config, --shard-inputs and N the tasks recorded */
        rs_pipeline_tasks t;
        if (!o->output_dir) return rs_errf(err, "merge: no run folder given");
        if (rs_pipeline_tasks_read(o->output_dir, &t, err)) {
            if (!o->config_path || err->kind != RS_EIO) return -1;
            rs_err_clear(err); /* none recorded: the given config */
        } else {
            c.merge_tasks = t.n_tasks;
            if (!o->shard_inputs) o->shard_inputs = t.shard_inputs;
            if (!o->config_path) o->config_path = tasks_cfg = t.config, t.config = NULL;
            rs_pipeline_tasks_free(&t);
        }
    }
    if (!o->config_path) return rs_errf(err, "run: no config file given");
    if (rs_config_load(o->config_path, &c.cfg, err)) {
        free(tasks_cfg);
        return -1;
    }
    rs_config *cfg = c.cfg;
    if (resolve_models(&c, err)) goto done;
    if (check_dataset_inputs(cfg, err)) goto done;
    const char *outdir = o->output_dir ? o->output_dir : cfg->output_dir;
    c.out = strdup(outdir);
    c.results = pl_join(outdir, "results");
    c.stages = pl_join(outdir, "stages");
    c.acts = pl_join(outdir, "acts");
    c.work = pl_join(outdir, "work");
    if (!c.out || !c.results || !c.stages || !c.acts || !c.work) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    if (mkdir_p(c.out, err) || pl_mkdir(c.results, err) || pl_mkdir(c.stages, err) || pl_mkdir(c.acts, err) ||
        pl_mkdir(c.work, err))
        goto done;
    {
        /* one run per folder at a time; the tasks of a job array share it (and take turns
           for their setup, pl_task_setup_lock) */
        char *kp = pl_join(c.out, ".lock");
        lock_fd = kp ? open(kp, O_RDWR | O_CREAT | O_CLOEXEC, 0666) : -1;
        if (lock_fd < 0 || flock(lock_fd, (task ? LOCK_SH : LOCK_EX) | LOCK_NB)) {
            rs_errf(err, "%s: %s", c.out,
                    lock_fd < 0 ? "cannot create the lock file"
                    : task ? "a `reprshift run` without --shard or a `reprshift merge` is using this run folder"
                           : "another `reprshift run` is using this run folder (or a task of a job array is)");
            free(kp);
            goto done;
        }
        free(kp);
        if (task && pl_task_setup_lock(&c, err)) goto done;
        remove_tmp_files(c.out, 0);
        remove_tmp_files(c.results, 0);
        remove_tmp_files(c.stages, 0);
        if (!task) remove_tmp_files(c.work, 1); /* other tasks may hold work/.setup.lock */
        char *dd = pl_join(c.out, "dataset");
        if (dd) remove_tmp_files(dd, 0);
        free(dd);
    }
    {
        char *lp = task ? pl_task_log_path(&c) : pl_join(c.out, "run.log"); /* a task: its own log */
        c.log = lp ? fopen(lp, "a") : NULL;
        if (!c.log) {
            rs_errk(err, RS_EIO, "%s: cannot open for appending: %s", lp ? lp : "run.log", strerror(errno));
            free(lp);
            goto done;
        }
        free(lp);
    }
    if (o->merge) pl_tasks_fold_logs(&c);
    pl_log(&c, "run", "reprshift %s: %s -> %s", RS_VERSION, o->config_path, c.out);
    if (task) pl_log(&c, "run", "task %d of %d (--shard %d/%d)", o->task, o->n_tasks, o->task, o->n_tasks);
    if (task && pl_tasks_write(&c, err)) goto done;
    /* config.resolved.json (output_dir as actually used) */
    {
        cJSON *od = cJSON_CreateString(c.out);
        if (!od || !cJSON_ReplaceItemInObjectCaseSensitive(cfg->resolved, "output_dir", od)) {
            cJSON_Delete(od);
            rs_errk(err, RS_ENOMEM, "out of memory");
            goto done;
        }
        char *js = cJSON_Print(cfg->resolved);
        char *p = pl_join(c.out, "config.resolved.json");
        size_t L = js ? strlen(js) : 0;
        resolved = js ? malloc(L + 2) : NULL;
        if (resolved) {
            memcpy(resolved, js, L);
            resolved[L] = '\n';
            resolved[L + 1] = 0;
        }
        free(js);
        int w = !resolved || !p ? rs_errk(err, RS_ENOMEM, "out of memory") : pl_write_text(p, resolved, err);
        free(p);
        if (w) goto done;
    }
    {
        size_t n;
        char sha[65];
        if (rs_read_file(o->config_path, 64u << 20, &cfgbuf, &n, err)) goto done;
        rs_sha256_hex(cfgbuf, n, sha);
        if (write_provenance(&c, sha, err)) goto done;
    }
    if (pl_validate_models(&c, err)) goto done;
    pl_set_threads(&c);
    if (pl_run_stages(&c, err)) goto done;
    if (report_path && !task && !(*report_path = pl_join(c.out, "report.html"))) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    if (o->merge) { /* merged: the folder is that of a single-process run */
        char *tp = pl_join(c.stages, "tasks.json");
        if (tp) unlink(tp);
        free(tp);
    }
    pl_log(&c, "run", "done");
    rc = 0;
done:
    if (rc && c.log) {
        /* to the log only: the CLI prints the message on stderr */
        time_t t = time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        char ts[32];
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
        fprintf(c.log, "%s [error] %s\n", ts, err->msg);
    }
    if (c.log) fclose(c.log);
    pl_task_setup_done(&c);
    if (lock_fd >= 0) close(lock_fd); /* releases the lock */
    free(tasks_cfg);
    pl_dataset_free(&c);
    free(resolved);
    free(cfgbuf);
    free(c.out);
    free(c.results);
    free(c.stages);
    free(c.acts);
    free(c.work);
    rs_config_free(c.cfg);
    return rc;
}

/* Every `shift.<metric>.p_value` under the given layer arrays, in order. */
static int family_walk(cJSON *const *layer_arrays, int n_arrays, double *p, cJSON **items, int cap) {
    int n = 0;
    for (int a = 0; a < n_arrays; a++) {
        const cJSON *L;
        cJSON_ArrayForEach(L, layer_arrays[a]) {
            cJSON *m;
            cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(L, "shift")) {
                const cJSON *pv = cJSON_GetObjectItemCaseSensitive(m, "p_value");
                if (!cJSON_IsObject(m) || !pv) continue;
                if (n < cap) {
                    p[n] = cJSON_IsNumber(pv) ? pv->valuedouble : NAN;
                    items[n] = m;
                }
                n++;
            }
        }
    }
    return n;
}

int pl_bh_family(cJSON *const *layer_arrays, int n_arrays, int *n_tests, rs_err *err) {
    int n = family_walk(layer_arrays, n_arrays, NULL, NULL, 0);
    double *p = malloc(((size_t)n + 1) * sizeof *p), *q = malloc(((size_t)n + 1) * sizeof *q);
    cJSON **items = malloc(((size_t)n + 1) * sizeof *items);
    int rc = 0;
    if (!p || !q || !items || (family_walk(layer_arrays, n_arrays, p, items, n), stats_bh_qvalues(p, n, q))) {
        rc = rs_errk(err, RS_ENOMEM, "out of memory");
    } else {
        *n_tests = 0;
        for (int i = 0; i < n; i++) {
            *n_tests += isfinite(p[i]) != 0;
            cJSON_DeleteItemFromObjectCaseSensitive(items[i], "q_value");
            rs_json_add_num(items[i], "q_value", q[i]);
        }
    }
    free(p);
    free(q);
    free(items);
    return rc;
}

void pl_safe_name(const char *hook, char *out, size_t n) {
    size_t j = 0;
    for (size_t i = 0; hook[i] && j + 1 < n; i++) {
        char ch = hook[i];
        out[j++] = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ? ch : '_';
    }
    out[j] = 0;
}

void pl_remove_flat_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
        char *p = pl_join(dir, e->d_name);
        if (p) unlink(p);
        free(p);
    }
    closedir(d);
    rmdir(dir);
}

int pl_write_json(const char *path, const cJSON *j, rs_err *err) {
    char *s = cJSON_Print(j), *t = NULL;
    int rc = !s || asprintf(&t, "%s\n", s) < 0 ? rs_errk(err, RS_ENOMEM, "out of memory") : pl_write_text(path, t, err);
    free(s);
    free(t);
    return rc;
}

/* SAE names (see include/reprshift/sae_registry.h). The table is data generated from the
 * sae-lens registry; this file only looks names up and finds the files in the HF cache. */
#include "reprshift/sae_registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reprshift/fileio.h"
#include "reprshift/hf_cache.h"

static const rs_sae_entry TABLE[] = {
#include "sae_registry_table.inc"
};
#define N_TABLE ((int)(sizeof TABLE / sizeof TABLE[0]))

int rs_sae_registry_count(void) { return N_TABLE; }

const rs_sae_entry *rs_sae_registry_at(int i) { return i >= 0 && i < N_TABLE ? &TABLE[i] : NULL; }

int rs_sae_registry_has_release(const char *release) {
    for (int i = 0; i < N_TABLE; i++)
        if (!strcmp(TABLE[i].release, release)) return 1;
    return 0;
}

/* Split "RELEASE/ID[/params.npz]": release length and the id (without the file part). */
static int split_name(const char *name, size_t *rel_len, char *id, size_t cap) {
    const char *slash = strchr(name, '/');
    if (!slash) return -1;
    *rel_len = (size_t)(slash - name);
    size_t n = strlen(slash + 1);
    if (n >= 11 && !strcmp(slash + 1 + n - 11, "/params.npz")) n -= 11;
    while (n && slash[n] == '/') n--; /* trailing '/' */
    if (n >= cap) return -1;
    memcpy(id, slash + 1, n);
    id[n] = 0;
    return 0;
}

const rs_sae_entry *rs_sae_registry_find(const char *name) {
    size_t rl;
    char id[256];
    if (split_name(name, &rl, id, sizeof id)) return NULL;
    for (int i = 0; i < N_TABLE; i++)
        if (strlen(TABLE[i].release) == rl && !strncmp(TABLE[i].release, name, rl) && !strcmp(TABLE[i].sae_id, id))
            return &TABLE[i];
    return NULL;
}

/* Up to 4 ids of the release sharing the layer_N/width_ prefix of `id` (or the layer). */
static void close_ids(const char *release, size_t rl, const char *id, char *out, size_t cap) {
    out[0] = 0;
    const char *w = strstr(id, "/width_");
    size_t pre = w ? (size_t)(w - id) + 1 : strcspn(id, "/");
    const char *w2 = w ? strchr(w + 1, '/') : NULL;
    size_t pre2 = w2 ? (size_t)(w2 - id) + 1 : pre;
    for (int pass = 0; pass < 2 && !out[0]; pass++) {
        size_t p = pass ? pre : pre2, k = 0;
        int n = 0;
        for (int i = 0; i < N_TABLE && n < 4; i++) {
            const rs_sae_entry *e = &TABLE[i];
            if (strlen(e->release) != rl || strncmp(e->release, release, rl) || strncmp(e->sae_id, id, p)) continue;
            k += (size_t)snprintf(out + k, k < cap ? cap - k : 0, "%s%s", n ? ", " : "", e->sae_id);
            n++;
            if (k >= cap) break;
        }
    }
}

int rs_sae_resolve(const char *name, char **path, const rs_sae_entry **entry, rs_err *err) {
    *path = NULL;
    *entry = NULL;
    if (rs_path_exists(name)) {
        *path = strdup(name);
        return *path ? 0 : rs_errk(err, RS_ENOMEM, "out of memory");
    }
    size_t rl;
    char id[256], rel[128];
    if (split_name(name, &rl, id, sizeof id) || rl >= sizeof rel) {
        *path = strdup(name);
        return *path ? 0 : rs_errk(err, RS_ENOMEM, "out of memory");
    }
    memcpy(rel, name, rl);
    rel[rl] = 0;
    if (!rs_sae_registry_has_release(rel)) {
        *path = strdup(name);
        return *path ? 0 : rs_errk(err, RS_ENOMEM, "out of memory");
    }
    const rs_sae_entry *e = rs_sae_registry_find(name);
    if (!e) {
        char near[400];
        close_ids(name, rl, id, near, sizeof near);
        if (near[0])
            return rs_errk(err, RS_EINVAL, "%s: no such SAE id in release %s (like: %s; `reprshift sae list --release %s` lists "
                                "all)", name, rel, near, rel);
        return rs_errk(err, RS_EINVAL, "%s: no such SAE id in release %s (`reprshift sae list --release %s` lists all)", name,
                       rel, rel);
    }
    char *snap = NULL;
    rs_err e2 = {0};
    char file[300];
    snprintf(file, sizeof file, "%s/params.npz", e->path);
    if (rs_hf_snapshot_dir(e->repo_id, NULL, NULL, &snap, &e2)) {
        /* the model-style message names the repo; an SAE needs one file of it */
        char *cache = rs_hf_hub_cache_dir();
        const char *slash = strchr(e->repo_id, '/');
        rs_errf(err, "%s: not in the Hugging Face cache (looked in %s/models--%.*s--%s): download it with "
                     "`huggingface-cli download %s %s`",
                name, cache ? cache : "?", (int)(slash - e->repo_id), e->repo_id, slash + 1, e->repo_id, file);
        free(cache);
        return -1;
    }
    char *p = rs_path_join(snap, file);
    free(snap);
    if (!p) return rs_errk(err, RS_ENOMEM, "out of memory");
    if (!rs_path_exists(p)) {
        rs_errf(err, "%s: not in the Hugging Face cache (no %s): download it with `huggingface-cli download %s %s`",
                name, p, e->repo_id, file);
        free(p);
        return -1;
    }
    *path = p;
    *entry = e;
    return 0;
}

const char *rs_neuronpedia_url(const char *neuronpedia_id, long long feature, char *buf, size_t cap) {
    if (!neuronpedia_id) {
        if (cap) buf[0] = 0;
        return buf;
    }
    snprintf(buf, cap, "https://www.neuronpedia.org/%s/%lld", neuronpedia_id, feature);
    return buf;
}

/* Synthetic extraction for the store tests: input i has 1..5 tokens; per token a hook row of
 * 8 floats and a second hook of 3×2 floats, plus token_ids and per-shard offsets, as
 * `reprshift extract` would produce with pooling "none". Values depend only on (i, t), so
 * any run writes the same bytes. Included by test_store.c and test_store_kill.c. */
#ifndef TEST_STORE_SYNTH_H
#define TEST_STORE_SYNTH_H

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reprshift/fileio.h"
#include "reprshift/store.h"

#define SYN_W0 64
#define SYN_H1 3
#define SYN_W1 2

static int64_t syn_len(int64_t i) { return (i * 7) % 5 + 1; }
static float syn_val(int64_t i, int64_t t, int c) { return (float)sin(0.37 * (double)i + 1.3 * (double)t + 0.11 * c); }

static store_spec syn_spec(int64_t n_inputs, int64_t shard_inputs) {
    store_spec s = {.model = "tiny-gemma2 \"test\"", .hooks = "blocks.0.hook_resid_post,blocks.1.hook_mlp_out",
                    .pooling = "none", .manifest_hash = "crc32:0badf00d", .n_inputs = n_inputs,
                    .shard_inputs = shard_inputs};
    return s;
}

/* Write shard k of the synthetic run. */
static int syn_append(rs_store *st, const store_spec *sp, int64_t k, rs_err *err) {
    int64_t first, cnt;
    store_shard_range(sp, k, &first, &cnt);
    int64_t rows = 0;
    for (int64_t i = first; i < first + cnt; i++) rows += syn_len(i);
    float *h0 = malloc((size_t)(rows * SYN_W0 + 1) * sizeof *h0);
    float *h1 = malloc((size_t)(rows * SYN_H1 * SYN_W1 + 1) * sizeof *h1);
    int32_t *ids = malloc((size_t)(rows + 1) * sizeof *ids);
    int64_t *off = malloc((size_t)(cnt + 1) * sizeof *off);
    char *rj = malloc((size_t)cnt * 64 + 1);
    if (!h0 || !h1 || !ids || !off || !rj) {
        free(h0), free(h1), free(ids), free(off), free(rj);
        return rs_errf(err, "oom");
    }
    int64_t r = 0;
    size_t rl = 0;
    off[0] = 0;
    rj[0] = '\0';
    for (int64_t i = first; i < first + cnt; i++) {
        for (int64_t t = 0; t < syn_len(i); t++, r++) {
            for (int c = 0; c < SYN_W0; c++) h0[r * SYN_W0 + c] = syn_val(i, t, c);
            for (int c = 0; c < SYN_H1 * SYN_W1; c++) h1[r * SYN_H1 * SYN_W1 + c] = -syn_val(i, t, c + 100);
            ids[r] = (int32_t)(i * 10 + t);
        }
        off[i - first + 1] = r;
        rl += (size_t)sprintf(rj + rl, "{\"input\":%lld,\"text\":\"input %lld\"}\n", (long long)i, (long long)i);
    }
    /* Given out of name order on purpose: the store sorts. */
    store_tensor ts[4] = {
        {.name = "token_ids", .dtype = RS_DT_I32, .ndim = 1, .shape = {rows}, .data = ids},
        {.name = "blocks.1.hook_mlp_out", .dtype = RS_DT_F32, .ndim = 3, .shape = {rows, SYN_H1, SYN_W1}, .data = h1},
        {.name = "offsets", .dtype = RS_DT_I64, .ndim = 1, .shape = {cnt + 1}, .data = off},
        {.name = "blocks.0.hook_resid_post", .dtype = RS_DT_F32, .ndim = 2, .shape = {rows, SYN_W0}, .data = h0},
    };
    int rc = store_append_shard(st, k, ts, 4, rj, err);
    free(h0), free(h1), free(ids), free(off), free(rj);
    return rc;
}

/* Open (or resume) and write the whole synthetic store, then finalize. */
static int syn_write_store(const char *dir, int64_t n_inputs, int64_t shard_inputs, rs_err *err) {
    store_spec sp = syn_spec(n_inputs, shard_inputs);
    rs_store *st;
    if (store_open(&st, dir, &sp, err)) return -1;
    int64_t total = (n_inputs + shard_inputs - 1) / shard_inputs;
    for (int64_t k = store_next_shard(st); k < total; k++)
        if (syn_append(st, &sp, k, err)) {
            store_close(st);
            return -1;
        }
    int rc = store_is_complete(st) ? 0 : store_finalize(st, err);
    store_close(st);
    return rc;
}

static int syn_cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted file names of dir (new array of new strings, NULL-terminated). */
static char **syn_list(const char *dir, int *n) {
    DIR *d = opendir(dir);
    char **v = calloc(4096, sizeof *v);
    *n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && *n < 4095) v[(*n)++] = strdup(e->d_name);
    if (d) closedir(d);
    qsort(v, (size_t)*n, sizeof *v, syn_cmp_str);
    return v;
}

static void syn_list_free(char **v, int n) {
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* 0 if both directories hold the same file names with identical bytes; else prints why. */
static int syn_dirs_identical(const char *a, const char *b) {
    int na, nb, bad = 0;
    char **la = syn_list(a, &na), **lb = syn_list(b, &nb);
    if (na != nb) {
        printf("file count differs: %d vs %d\n", na, nb);
        bad = 1;
    }
    for (int i = 0; !bad && i < na; i++) {
        if (strcmp(la[i], lb[i])) {
            printf("file names differ: %s vs %s\n", la[i], lb[i]);
            bad = 1;
            break;
        }
        char *pa = rs_path_join(a, la[i]), *pb = rs_path_join(b, lb[i]), *da, *db;
        size_t sa, sb;
        rs_err err;
        if (rs_read_file(pa, 1u << 30, &da, &sa, &err) || rs_read_file(pb, 1u << 30, &db, &sb, &err)) {
            printf("read: %s\n", err.msg);
            bad = 1;
        } else {
            if (sa != sb || memcmp(da, db, sa)) {
                printf("bytes differ: %s\n", la[i]);
                bad = 1;
            }
            free(da);
            free(db);
        }
        free(pa);
        free(pb);
    }
    syn_list_free(la, na);
    syn_list_free(lb, nb);
    return bad;
}

#endif

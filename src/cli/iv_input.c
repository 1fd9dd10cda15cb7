/* Shared input handling of `reprshift intervene` and `reprshift lens` (iv_input.h). */
#include "cli/iv_input.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reprshift/extract.h"
#include "reprshift/fileio.h"
#include "reprshift/hf_cache.h"
#include "reprshift/image.h"
#include "base/jsonutil.h"

int iv_model_open(iv_model *m, const char *model, const char *revision, const char *tokp, rs_err *err) {
    memset(m, 0, sizeof *m);
    if (rs_hf_resolve_model(model, revision, &m->dir, err)) return -1;
    if (model_config_type(m->dir, &m->type, err)) return -1;
    if (m->type == RS_MODEL_GEMMA2) {
        if (gemma2_open(&m->g, m->dir, err)) return -1;
        m->dec = m->g;
    } else {
        if (paligemma_open(&m->pg, m->dir, err)) return -1;
        m->dec = m->pg->text;
        m->pos_offset = 1; /* transformers' PaliGemma positions start at 1 */
    }
    char *tp = tokp ? strdup(tokp) : rs_path_join(m->dir, "tokenizer.json");
    if (!tp) return rs_errk(err, RS_ENOMEM, "out of memory");
    int rc = 0;
    if (tokp || access(tp, R_OK) == 0) rc = tok_load(&m->tok, tp, err);
    free(tp);
    return rc;
}

void iv_model_close(iv_model *m) {
    tok_free(m->tok);
    gemma2_close(m->g);
    paligemma_close(m->pg);
    free(m->dir);
    memset(m, 0, sizeof *m);
}

void iv_in_free(iv_in *in) {
    free(in->ids);
    free(in->embeds);
    free(in->mask);
    free(in->pixels);
    free(in->prompt_ids);
    memset(in, 0, sizeof *in);
}

rs_iv_input iv_view(const iv_in *in) {
    return (rs_iv_input){.ids = in->ids, .len = in->len, .embeds = in->embeds, .embeds_mask = in->mask,
                         .prefix_len = in->prefix_len};
}

static int need_tok(const iv_model *m, const char *what, rs_err *err) {
    if (m->tok) return 0;
    return rs_errf(err, "%s has no tokenizer.json: pass --tokenizer FILE, or give %s as token ids", m->dir, what);
}

/* Projector output of one image → embeds at the <image> rows (as paligemma_forward merges them). */
static int image_rows(iv_model *m, const char *image, iv_in *in, rs_err *err) {
    const paligemma_config *c = &m->pg->cfg;
    int S = c->vision.image_size;
    rs_image img = {0};
    float *px = malloc((size_t)3 * S * S * sizeof(float));
    int rc = -1;
    if (!px) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    if (rs_image_load(image, &img, err) || rs_siglip_preprocess(&img, S, NULL, px, err)) goto done;
    if (rs_pg_image_rows(m->pg, in->ids, in->len, in->prefix_len, px, 1, &in->embeds, &in->mask, err)) goto done;
    for (int64_t t = 0; t < in->len; t++) in->n_image += in->mask[t];
    in->pixels = px;
    px = NULL;
    rc = 0;
done:
    if (rc) rs_err_prefix(err, "%s", image);
    rs_image_free(&img);
    free(px);
    return rc;
}

int iv_build(iv_model *m, const char *image, const char *prompt, const char *text, const char *ids, iv_in *out,
             rs_err *err) {
    memset(out, 0, sizeof *out);
    int32_t *tids = NULL;
    size_t nt = 0;
    int64_t ni = 0;
    int rc = -1;
    int V = m->dec->cfg.vocab_size;
    if (image && m->type != RS_MODEL_PALIGEMMA) return rs_errf(err, "--image needs a PaliGemma model (%s is Gemma-2)", m->dir);
    if (ids) {
        if (rs_parse_ids(ids, &tids, &ni, err)) return rs_err_prefix(err, "token ids \"%s\"", ids);
        nt = (size_t)ni;
    } else if (text) {
        if (need_tok(m, "the text", err)) return -1;
        if (tok_encode(m->tok, text, strlen(text), image ? 0 : 1, &tids, &nt, err)) return -1;
    }
    for (size_t i = 0; i < nt; i++)
        if (tids[i] < 0 || tids[i] >= V) {
            rs_errf(err, "token id %d is outside the vocabulary (0..%d)", tids[i], V - 1);
            goto done;
        }
    if (!image) {
        if (nt == 0) { rs_errf(err, "empty input: no tokens"); goto done; }
        out->ids = tids;
        out->len = (int64_t)nt;
        tids = NULL;
        rc = 0;
        goto done;
    }
    int32_t *pids = NULL;
    size_t np = 0;
    uint8_t *kinds = NULL;
    if (need_tok(m, "the prompt", err)) goto done;
    if (pg_prompt_ids(&m->pg->cfg, m->tok, prompt ? prompt : "caption en", NULL, 0, &pids, &np, err)) goto done;
    rc = paligemma_build_input(m->pg, 1, pids, (int)np, tids, (int)nt, &out->ids, &kinds, &out->len,
                               &out->prefix_len, err);
    out->prompt_ids = pids;
    out->n_prompt = (int)np;
    out->n_text = (int)nt;
    free(kinds);
    if (!rc) rc = image_rows(m, image, out, err);
done:
    free(tids);
    if (rc) iv_in_free(out);
    return rc;
}

char *iv_token_text(const iv_model *m, int32_t id) {
    char *s = NULL;
    rs_err err = {0};
    if (m->tok && !tok_decode(m->tok, &id, 1, &s, &err)) return s;
    char buf[32];
    snprintf(buf, sizeof buf, "<id %d>", (int)id);
    return strdup(buf);
}

int iv_targets(const iv_model *m, const char *strs, const char *ids, int32_t **out, int *n, rs_err *err) {
    *out = NULL;
    *n = 0;
    int V = m->dec->cfg.vocab_size;
    if (ids) {
        int64_t k;
        if (rs_parse_ids(ids, out, &k, err)) return rs_err_prefix(err, "--target-ids \"%s\"", ids);
        *n = (int)k;
        for (int i = 0; i < *n; i++)
            if ((*out)[i] < 0 || (*out)[i] >= V) {
                rs_errf(err, "--target-ids: token id %d is outside the vocabulary (0..%d)", (*out)[i], V - 1);
                free(*out);
                *out = NULL;
                return -1;
            }
        return 0;
    }
    if (!strs) return 0;
    if (need_tok(m, "the targets", err)) return -1;
    size_t cap = 1;
    for (const char *p = strs; *p; p++) cap += *p == ',';
    *out = malloc(cap * sizeof(int32_t));
    if (!*out) return rs_errk(err, RS_ENOMEM, "out of memory");
    const char *p = strs;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t L = e ? (size_t)(e - p) : strlen(p);
        int32_t *t = NULL;
        size_t nt = 0;
        if (L == 0) {
            rs_errf(err, "--targets: empty target string in \"%s\"", strs);
            goto fail;
        }
        if (tok_encode(m->tok, p, L, 0, &t, &nt, err)) goto fail;
        if (nt != 1) {
            rs_errf(err, "--targets: \"%.*s\" is %zu tokens, not one token (give --target-ids, or a shorter string)",
                    (int)L, p, nt);
            free(t);
            goto fail;
        }
        (*out)[(*n)++] = t[0];
        free(t);
        if (!e) break;
        p = e + 1;
    }
    return 0;
fail:
    free(*out);
    *out = NULL;
    *n = 0;
    return -1;
}

int iv_positions(const char *spec, int def, int T, int **out, int *n, rs_err *err) {
    *out = NULL;
    *n = 0;
    if (!spec) {
        int p = def < 0 ? T + def : def;
        if (!(*out = malloc(sizeof(int)))) return rs_errk(err, RS_ENOMEM, "out of memory");
        (*out)[0] = p;
        *n = 1;
        return 0;
    }
    size_t cap = 1;
    for (const char *p = spec; *p; p++) cap += *p == ',';
    long *v = malloc(cap * sizeof *v);
    if (!v) return rs_errk(err, RS_ENOMEM, "out of memory");
    size_t k = 0;
    for (const char *p = spec;;) {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p || (*end && *end != ',') || x < -1000000000L || x > 1000000000L) {
            free(v);
            return rs_errf(err, "--positions \"%s\": not a comma-separated list of integers", spec);
        }
        v[k++] = x;
        if (!*end) break;
        p = end + 1;
    }
    *out = malloc((size_t)k * sizeof(int));
    if (!*out) { free(v); return rs_errk(err, RS_ENOMEM, "out of memory"); }
    for (size_t i = 0; i < k; i++) {
        long p = v[i] < 0 ? T + v[i] : v[i];
        if (p < 0 || p >= T) {
            rs_errf(err, "--positions: %ld is outside the input (%d tokens)", v[i], T);
            free(v);
            free(*out);
            *out = NULL;
            return -1;
        }
        (*out)[i] = (int)p;
    }
    *n = (int)k;
    free(v);
    return 0;
}

void iv_specs_free(rs_intervention *iv, int n) {
    for (int i = 0; iv && i < n; i++) rs_intervention_free(&iv[i]);
    free(iv);
}

int iv_specs_load(const gemma2_model *dec, const char *const *specs, int n_specs, const char *specs_file,
                  rs_intervention **out, int *n, rs_err *err) {
    *out = NULL;
    *n = 0;
    char *text = NULL;
    const char **all = NULL;
    rs_intervention *iv = NULL;
    int k = 0, rc = -1;
    size_t lines = 0;
    if (specs_file) { /* one spec a line; blank lines and lines starting with # skipped */
        if (rs_read_file(specs_file, (size_t)1 << 24, &text, NULL, err)) return -1;
        lines = 1;
        for (const char *q = text; *q; q++) lines += *q == '\n';
    }
    if (!(all = calloc((size_t)n_specs + lines + 1, sizeof *all))) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    int total = 0;
    for (int i = 0; i < n_specs; i++) all[total++] = specs[i];
    if (specs_file) {
        int before = total;
        for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            while (*line == ' ' || *line == '\t') line++;
            size_t L = strlen(line);
            while (L && (line[L - 1] == '\r' || line[L - 1] == ' ' || line[L - 1] == '\t')) line[--L] = '\0';
            if (L && line[0] != '#') all[total++] = line;
        }
        if (total == before) { rs_errf(err, "%s: no specs (one per line; # starts a comment)", specs_file); goto done; }
    }
    if (!(iv = calloc((size_t)total + 1, sizeof *iv))) { rs_errk(err, RS_ENOMEM, "out of memory"); goto done; }
    for (k = 0; k < total; k++)
        if (rs_intervention_parse(all[k], &iv[k], err) || rs_intervention_resolve(&iv[k], dec, err)) {
            k++; /* free the partly filled one too */
            goto done;
        }
    rc = 0;
done:
    if (rc) iv_specs_free(iv, k);
    else {
        *out = iv;
        *n = total;
    }
    free(all);
    free(text);
    return rc;
}

void iv_print_gen(int json, const char *key, const gen_output *o, const char *text) {
    if (json) {
        printf("\"%s\": {\"ids\": [", key);
        for (int i = 0; i < o->n; i++) printf(i ? ", %d" : "%d", o->ids[i]);
        printf("], \"text\": ");
        if (text) rs_json_write_string(stdout, text);
        else fputs("null", stdout);
        printf(", \"stop\": \"%s\"}", o->hit_eos ? "eos" : "max_new_tokens");
        return;
    }
    printf("  %-11s", key);
    if (text) printf(" %s\n", text);
    else {
        for (int i = 0; i < o->n; i++) printf(" %d", o->ids[i]);
        putchar('\n');
    }
}

int iv_input_opt(iv_input_opts *o, int c, const char *arg) {
    switch (c) {
    case 'm': o->model = arg; return 1;
    case 'R': o->revision = arg; return 1;
    case 'z': o->tokenizer = arg; return 1;
    case 't': o->text = arg; return 1;
    case 'i': o->ids = arg; return 1;
    case 'I': o->image = arg; return 1;
    case 'p': o->prompt = arg; return 1;
    default: return 0;
    }
}

int iv_input_opts_ok(const iv_input_opts *o) {
    return o->model && (o->text || o->ids || o->image) && !(o->text && o->ids) && !(o->ids && o->image);
}

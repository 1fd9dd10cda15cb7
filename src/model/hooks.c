/* Hook name parsing: the one table of capture points per model family. */
#include "reprshift/hooks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *suffix;
    hook_kind kind;
} BLOCK_HOOKS[] = {
    {"hook_resid_pre", HK_RESID_PRE}, {"attn.hook_z", HK_ATTN_Z},   {"hook_attn_out", HK_ATTN_OUT},
    {"hook_resid_mid", HK_RESID_MID}, {"hook_mlp_out", HK_MLP_OUT}, {"hook_resid_post", HK_RESID_POST},
};

/* "blocks.L.<suffix>" with L a plain decimal in [0, n_layers). Returns layer or -1. */
static int parse_block(const char *name, const char *prefix, int n_layers, const char **suffix) {
    size_t pl = strlen(prefix);
    if (strncmp(name, prefix, pl)) return -1;
    const char *p = name + pl;
    if (*p < '0' || *p > '9') return -1;
    if (*p == '0' && p[1] != '.') return -1; /* no leading zeros */
    long L = 0;
    while (*p >= '0' && *p <= '9') {
        L = L * 10 + (*p - '0');
        if (L >= n_layers) return -1;
        p++;
    }
    if (*p != '.') return -1;
    *suffix = p + 1;
    return (int)L;
}

static void set_name(hook_request *r, const char *name) {
    snprintf(r->name, sizeof r->name, "%s", name);
}

int gemma2_hook_parse(const gemma2_config *c, const char *name, hook_request *r, rs_err *err) {
    memset(r, 0, sizeof *r);
    r->capture = 1;
    r->layer = -1;
    r->width = c->hidden_size;
    if (strlen(name) >= sizeof r->name) goto bad;
    set_name(r, name);
    if (!strcmp(name, "hook_embed")) { r->kind = HK_RESID_PRE; r->layer = 0; return 0; }
    if (!strcmp(name, "ln_final.hook_normalized")) { r->kind = HK_LN_FINAL_NORMALIZED; return 0; }
    if (!strcmp(name, "ln_final.hook_out")) { r->kind = HK_LN_FINAL_OUT; return 0; }
    const char *suffix;
    int L = parse_block(name, "blocks.", c->n_layers, &suffix);
    if (L >= 0)
        for (size_t i = 0; i < sizeof BLOCK_HOOKS / sizeof BLOCK_HOOKS[0]; i++)
            if (!strcmp(suffix, BLOCK_HOOKS[i].suffix)) {
                r->kind = BLOCK_HOOKS[i].kind;
                r->layer = L;
                if (r->kind == HK_ATTN_Z) r->width = c->n_heads * c->head_dim;
                return 0;
            }
bad:
    return rs_errf(err, "unknown hook \"%.100s\"; valid hooks for this model: blocks.{0..%d}.{hook_resid_pre, "
                        "hook_resid_mid, hook_resid_post, hook_attn_out, hook_mlp_out, attn.hook_z}, "
                        "hook_embed, ln_final.hook_normalized, ln_final.hook_out",
                   name, c->n_layers - 1);
}

int siglip_hook_parse(const siglip_config *c, int projection_dim, const char *name, hook_request *r, rs_err *err) {
    memset(r, 0, sizeof *r);
    r->capture = 1;
    r->layer = -1;
    r->width = c->hidden_size;
    if (strlen(name) >= sizeof r->name) goto bad;
    set_name(r, name);
    if (!strcmp(name, "vision.ln_post")) { r->kind = HK_VISION_LN_POST; return 0; }
    if (!strcmp(name, "projector.hook_out")) { r->kind = HK_PROJECTOR_OUT; r->width = projection_dim; return 0; }
    const char *suffix;
    int L = parse_block(name, "vision.blocks.", c->n_layers, &suffix);
    if (L >= 0 && !strcmp(suffix, "hook_resid_post")) {
        r->kind = HK_VISION_RESID_POST;
        r->layer = L;
        return 0;
    }
bad:
    return rs_errf(err, "unknown vision hook \"%.100s\"; valid: vision.blocks.{0..%d}.hook_resid_post, "
                        "vision.ln_post, projector.hook_out",
                   name, c->n_layers - 1);
}

int hook_is_vision(const char *name) {
    return !strncmp(name, "vision.", 7) || !strncmp(name, "projector.", 10);
}

int hook_fire(hook_request *hooks, int n, int vision, hook_kind kind, int layer, float *x, int T, rs_err *err) {
    for (int i = 0; i < n; i++) {
        hook_request *h = &hooks[i];
        if (h->kind != kind || h->layer != layer || hook_is_vision(h->name) != vision) continue;
        size_t bytes = (size_t)T * h->width * sizeof(float);
        if (h->capture) {
            free(h->out);
            h->out = malloc(bytes ? bytes : 1);
            if (!h->out) return rs_errf(err, "out of memory capturing %s", h->name);
            memcpy(h->out, x, bytes);
        }
        if (h->splice) h->splice(h->splice_ctx, x, T, h->width);
    }
    return 0;
}

void hook_requests_free(hook_request *h, int n) {
    for (int i = 0; i < n; i++) {
        free(h[i].out);
        h[i].out = NULL;
    }
}

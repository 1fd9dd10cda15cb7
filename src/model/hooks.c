/* Hook identities: the one table of TransformerLens names per tower, the parser and the
 * formatter, and the capture/splice of a forward pass. */
#include "reprshift/hooks.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    hook_kind kind;
} site;

static const site DECODER_BLOCK[] = {
    {"hook_resid_pre", HK_RESID_PRE}, {"hook_resid_mid", HK_RESID_MID}, {"hook_resid_post", HK_RESID_POST},
    {"hook_attn_out", HK_ATTN_OUT},   {"hook_mlp_out", HK_MLP_OUT},     {"attn.hook_z", HK_ATTN_Z},
};
static const site DECODER_OTHER[] = {
    {"ln_final.hook_normalized", HK_LN_FINAL_NORMALIZED},
    {"ln_final.hook_out", HK_LN_FINAL_OUT},
};
static const site VISION_BLOCK[] = {
    {"hook_resid_pre", HK_RESID_PRE}, {"hook_attn_out", HK_ATTN_OUT},         {"hook_resid_mid", HK_RESID_MID},
    {"hook_mlp_out", HK_MLP_OUT},     {"hook_resid_post", HK_RESID_POST},
};
static const site VISION_OTHER[] = {{"ln_post", HK_VISION_LN_POST}};
static const site PROJECTOR_OTHER[] = {{"hook_out", HK_PROJECTOR_OUT}};

#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* One tower: names are prefix + "blocks.L." + block site, prefix + other site, or
 * prefix + embed (an alias of blocks.0.hook_resid_pre). */
static const struct tower_table {
    const char *prefix;
    const char *what; /* in errors */
    const site *block;
    int n_block;
    const site *other;
    int n_other;
    const char *embed;
} TOWERS[RS_N_TOWERS] = {
    [RS_TOWER_DECODER] = {"", "decoder", DECODER_BLOCK, N_OF(DECODER_BLOCK), DECODER_OTHER, N_OF(DECODER_OTHER),
                          "hook_embed"},
    [RS_TOWER_VISION] = {"vision.", "vision tower", VISION_BLOCK, N_OF(VISION_BLOCK), VISION_OTHER,
                         N_OF(VISION_OTHER), "hook_embed"},
    [RS_TOWER_PROJECTOR] = {"projector.", "projector", NULL, 0, PROJECTOR_OTHER, N_OF(PROJECTOR_OTHER), NULL},
};

rs_hook_space rs_hook_space_gemma2(const gemma2_config *c) {
    rs_hook_space s;
    memset(&s, 0, sizeof s);
    s.present[RS_TOWER_DECODER] = 1;
    s.n_layers[RS_TOWER_DECODER] = c->n_layers;
    s.width[RS_TOWER_DECODER] = c->hidden_size;
    s.attn_z_width = c->n_heads * c->head_dim;
    return s;
}

rs_hook_space rs_hook_space_siglip(const siglip_config *c, int projection_dim) {
    rs_hook_space s;
    memset(&s, 0, sizeof s);
    s.present[RS_TOWER_VISION] = s.present[RS_TOWER_PROJECTOR] = 1;
    s.n_layers[RS_TOWER_VISION] = c->n_layers;
    s.width[RS_TOWER_VISION] = c->hidden_size;
    s.width[RS_TOWER_PROJECTOR] = projection_dim;
    return s;
}

rs_hook_space rs_hook_space_paligemma(const paligemma_config *c) {
    rs_hook_space s = rs_hook_space_siglip(&c->vision, c->projection_dim), d = rs_hook_space_gemma2(&c->text);
    s.present[RS_TOWER_DECODER] = 1;
    s.n_layers[RS_TOWER_DECODER] = d.n_layers[RS_TOWER_DECODER];
    s.width[RS_TOWER_DECODER] = d.width[RS_TOWER_DECODER];
    s.attn_z_width = d.attn_z_width;
    return s;
}

/* Largest layer number the parser reads (far above any model; keeps the arithmetic safe). */
#define LAYER_CAP 1000000

/* Parse `rest` (the name after the tower prefix) against one tower. Returns 1 on a match
 * (layer unchecked against the model), 0 otherwise; *alias = 1 for the embed alias. */
static int parse_in_tower(const struct tower_table *t, const char *rest, hook_kind *kind, int *layer, int *alias) {
    *alias = 0;
    if (t->embed && !strcmp(rest, t->embed)) {
        *kind = HK_RESID_PRE;
        *layer = 0;
        *alias = 1;
        return 1;
    }
    for (int i = 0; i < t->n_other; i++)
        if (!strcmp(rest, t->other[i].name)) {
            *kind = t->other[i].kind;
            *layer = -1;
            return 1;
        }
    if (!t->n_block || strncmp(rest, "blocks.", 7)) return 0;
    const char *p = rest + 7;
    if (*p < '0' || *p > '9' || (*p == '0' && p[1] >= '0' && p[1] <= '9')) return 0; /* no sign, no leading zeros */
    long L = 0;
    while (*p >= '0' && *p <= '9') {
        L = L * 10 + (*p++ - '0');
        if (L > LAYER_CAP) return 0;
    }
    if (*p++ != '.') return 0;
    for (int i = 0; i < t->n_block; i++)
        if (!strcmp(p, t->block[i].name)) {
            *kind = t->block[i].kind;
            *layer = (int)L;
            return 1;
        }
    return 0;
}

/* Which tower's prefix the name carries (the decoder has none). */
static int tower_of_name(const char *name, const char **rest) {
    for (int t = RS_N_TOWERS - 1; t >= 0; t--) {
        size_t pl = strlen(TOWERS[t].prefix);
        if (!strncmp(name, TOWERS[t].prefix, pl)) {
            *rest = name + pl;
            return t;
        }
    }
    *rest = name;
    return RS_TOWER_DECODER;
}

static void append(char *buf, size_t n, size_t *len, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void append(char *buf, size_t n, size_t *len, const char *fmt, ...) {
    if (*len + 1 >= n) return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + *len, n - *len, fmt, ap);
    va_end(ap);
    if (w > 0) *len += (size_t)w;
    if (*len >= n) *len = n - 1;
}

void rs_hook_valid_list(const rs_hook_space *s, char *buf, size_t n) {
    size_t len = 0;
    if (!n) return;
    buf[0] = 0;
    for (int t = 0; t < RS_N_TOWERS; t++) {
        const struct tower_table *tt = &TOWERS[t];
        if (!s->present[t]) continue;
        if (tt->n_block && s->n_layers[t] > 0) {
            append(buf, n, &len, "%s%sblocks.{0..%d}.{", len ? ", " : "", tt->prefix, s->n_layers[t] - 1);
            for (int i = 0; i < tt->n_block; i++) append(buf, n, &len, "%s%s", i ? ", " : "", tt->block[i].name);
            append(buf, n, &len, "}");
        }
        if (tt->embed) append(buf, n, &len, "%s%s%s", len ? ", " : "", tt->prefix, tt->embed);
        for (int i = 0; i < tt->n_other; i++)
            append(buf, n, &len, "%s%s%s", len ? ", " : "", tt->prefix, tt->other[i].name);
    }
}

int rs_hook_parse(const rs_hook_space *s, const char *name, rs_hook *h, rs_err *err) {
    const char *rest;
    int t = tower_of_name(name, &rest), alias;
    hook_kind kind;
    int layer;
    char why[160] = "";
    if (parse_in_tower(&TOWERS[t], rest, &kind, &layer, &alias)) {
        if (!s) goto ok;
        if (!s->present[t])
            snprintf(why, sizeof why, " (this model has no %s)", TOWERS[t].what);
        else if (layer >= s->n_layers[t])
            snprintf(why, sizeof why, " (layer %d is out of range: the %s has blocks 0..%d)", layer, TOWERS[t].what,
                     s->n_layers[t] - 1);
        else
            goto ok;
    }
    if (!s) return rs_errk(err, RS_EINVAL, "unknown hook \"%.100s\"", name);
    char list[RS_ERR_MAX];
    rs_hook_valid_list(s, list, sizeof list);
    return rs_errk(err, RS_EINVAL, "unknown hook \"%.100s\"%s; valid hooks for this model: %s", name, why, list);
ok:
    h->tower = (rs_tower)t;
    h->kind = kind;
    h->layer = layer;
    return 0;
}

int rs_hook_format(const rs_hook *h, char *buf, size_t n) {
    if ((unsigned)h->tower >= RS_N_TOWERS || !n) return -1;
    const struct tower_table *t = &TOWERS[h->tower];
    int w = -1;
    if (h->layer < 0) {
        for (int i = 0; i < t->n_other; i++)
            if (t->other[i].kind == h->kind) w = snprintf(buf, n, "%s%s", t->prefix, t->other[i].name);
    } else if (h->layer <= LAYER_CAP) {
        for (int i = 0; i < t->n_block; i++)
            if (t->block[i].kind == h->kind)
                w = snprintf(buf, n, "%sblocks.%d.%s", t->prefix, h->layer, t->block[i].name);
    }
    if (w < 0 || (size_t)w >= n) {
        buf[0] = 0;
        return -1;
    }
    return 0;
}

int rs_hook_enumerate(const rs_hook_space *s, rs_hook *out, int cap) {
    int k = 0;
    for (int t = 0; t < RS_N_TOWERS; t++) {
        if (!s->present[t]) continue;
        const struct tower_table *tt = &TOWERS[t];
        for (int L = 0; tt->n_block && L < s->n_layers[t]; L++)
            for (int i = 0; i < tt->n_block; i++, k++)
                if (k < cap) out[k] = (rs_hook){(rs_tower)t, tt->block[i].kind, L};
        for (int i = 0; i < tt->n_other; i++, k++)
            if (k < cap) out[k] = (rs_hook){(rs_tower)t, tt->other[i].kind, -1};
    }
    return k;
}

int rs_hook_width(const rs_hook_space *s, const rs_hook *h) {
    if (h->tower == RS_TOWER_DECODER && h->kind == HK_ATTN_Z) return s->attn_z_width;
    return s->width[h->tower];
}

int rs_hook_block_index(const char *name) {
    const char *rest;
    int alias, layer;
    hook_kind kind;
    if (tower_of_name(name, &rest) != RS_TOWER_DECODER) return -1;
    if (!parse_in_tower(&TOWERS[RS_TOWER_DECODER], rest, &kind, &layer, &alias) || alias) return -1;
    return layer;
}

int hook_request_parse(const rs_hook_space *s, const char *name, hook_request *r, rs_err *err) {
    memset(r, 0, sizeof *r);
    r->capture = 1;
    if (strlen(name) >= sizeof r->name) {
        char list[RS_ERR_MAX];
        rs_hook_valid_list(s, list, sizeof list);
        return rs_errk(err, RS_EINVAL, "unknown hook \"%.100s\" (too long); valid hooks for this model: %s", name, list);
    }
    if (rs_hook_parse(s, name, &r->id, err)) return -1;
    snprintf(r->name, sizeof r->name, "%s", name);
    r->width = rs_hook_width(s, &r->id);
    return 0;
}

int gemma2_hook_parse(const gemma2_config *c, const char *name, hook_request *r, rs_err *err) {
    rs_hook_space s = rs_hook_space_gemma2(c);
    return hook_request_parse(&s, name, r, err);
}

int hook_depth(const hook_request *hooks, int n, rs_tower tower, int n_layers) {
    int depth = -2;
    for (int i = 0; i < n; i++) {
        const rs_hook *h = &hooks[i].id;
        if (h->tower != tower) continue;
        int d = h->layer < 0 ? n_layers : h->kind == HK_RESID_PRE ? h->layer - 1 : h->layer;
        if (d > depth) depth = d;
    }
    return depth;
}

/* the request sits on this hook point */
static int hook_at(const hook_request *h, rs_tower tower, hook_kind kind, int layer) {
    return h->id.tower == tower && h->id.kind == kind && h->id.layer == layer;
}

int hook_fire(hook_request *hooks, int n, rs_tower tower, hook_kind kind, int layer, float *x, int T, rs_err *err) {
    for (int i = 0; i < n; i++) {
        hook_request *h = &hooks[i];
        if (!hook_at(h, tower, kind, layer)) continue;
        size_t bytes = (size_t)T * h->width * sizeof(float);
        if (h->capture) {
            free(h->out);
            h->out = malloc(bytes ? bytes : 1);
            if (!h->out) return rs_errk(err, RS_ENOMEM, "out of memory capturing %s", h->name);
            memcpy(h->out, x, bytes);
        }
        if (h->splice) h->splice(h->splice_ctx, x, T, h->width);
    }
    return 0;
}

int hook_splices(const hook_request *hooks, int n, rs_tower tower, hook_kind kind, int layer) {
    for (int i = 0; i < n; i++)
        if (hooks[i].splice && hook_at(&hooks[i], tower, kind, layer)) return 1;
    return 0;
}

void hook_requests_free(hook_request *h, int n) {
    for (int i = 0; i < n; i++) {
        free(h[i].out);
        h[i].out = NULL;
    }
}

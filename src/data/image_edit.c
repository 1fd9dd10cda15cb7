/* Image edits with Pillow's exact arithmetic (see include/reprshift/image_edit.h).
 * Facts taken from Pillow 13's sources (Blend.c, BoxBlur.c, Geometry.c, Convert.c,
 * ImageEnhance.py, Image.rotate): the float/double types of every intermediate matter for
 * bit-exact results and are kept as Pillow has them. This file is compiled as ISO C11,
 * so no floating-point contraction (FMA) changes the roundings. */
#include "reprshift/image_edit.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const EDIT_NAMES[RS_EDIT_COUNT] = {
    "brightness", "contrast", "saturation", "redness", "redness_plain", "blur", "rotate",
};
/* Old name of the luminance-controlled redness (before it became the default "redness"). */
#define EDIT_ALIAS_REDNESS_LUMA "redness_luma"

const char *rs_edit_name(rs_edit_kind kind) {
    return (unsigned)kind < RS_EDIT_COUNT ? EDIT_NAMES[kind] : "?";
}

/* Pillow's L conversion (Convert.c rgb2l): ITU-R 601-2 in 16-bit fixed point. */
static inline int luma_l(const uint8_t *p) {
    return (p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16;
}

/* ImagingBlend(degenerate, image, alpha) for one byte: alpha is a C float; inside [0,1]
 * the float result is truncated, outside it is clamped then truncated. */
static inline uint8_t blend1(int deg, int v, float alpha) {
    float t = (float)deg + alpha * (float)(v - deg);
    if (alpha >= 0 && alpha <= 1.0) return (uint8_t)t;
    if (t <= 0.0) return 0;
    if (t >= 255.0) return 255;
    return (uint8_t)t;
}

void rs_image_brightness(rs_image *img, double factor) {
    float alpha = (float)factor;
    size_t n = (size_t)img->w * img->h * 3;
    if (alpha == 1.0) return;
    for (size_t i = 0; i < n; i++) img->rgb[i] = alpha == 0.0 ? 0 : blend1(0, img->rgb[i], alpha);
}

void rs_image_contrast(rs_image *img, double factor) {
    float alpha = (float)factor;
    size_t np = (size_t)img->w * img->h;
    /* ImageStat mean of the L image, in double, rounded half up by int(mean + 0.5). */
    unsigned long long sum = 0;
    for (size_t i = 0; i < np; i++) sum += (unsigned)luma_l(img->rgb + 3 * i);
    int mean = (int)((double)sum / (double)np + 0.5);
    if (alpha == 1.0) return;
    for (size_t i = 0; i < 3 * np; i++)
        img->rgb[i] = alpha == 0.0 ? (uint8_t)mean : blend1(mean, img->rgb[i], alpha);
}

void rs_image_saturation(rs_image *img, double factor) {
    float alpha = (float)factor;
    size_t np = (size_t)img->w * img->h;
    if (alpha == 1.0) return;
    for (size_t i = 0; i < np; i++) {
        uint8_t *p = img->rgb + 3 * i;
        int g = luma_l(p);
        for (int c = 0; c < 3; c++) p[c] = alpha == 0.0 ? (uint8_t)g : blend1(g, p[c], alpha);
    }
}

static inline uint8_t round_clamp(double v) {
    double r = floor(v + 0.5);
    return (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
}

void rs_image_redness_plain(rs_image *img, double factor) {
    size_t np = (size_t)img->w * img->h;
    for (size_t i = 0; i < np; i++) img->rgb[3 * i] = round_clamp(img->rgb[3 * i] * factor);
}

void rs_image_redness_luma(rs_image *img, double factor) {
    size_t np = (size_t)img->w * img->h;
    for (size_t i = 0; i < np; i++) {
        uint8_t *p = img->rgb + 3 * i;
        int r = round_clamp(p[0] * factor);
        double d = 0.299 * (r - p[0]) / 0.701; /* spread the luma change over G and B */
        p[0] = (uint8_t)r;
        p[1] = round_clamp(p[1] - d);
        p[2] = round_clamp(p[2] - d);
    }
}

/* ---------------------------------------------------------------- Gaussian blur */

/* Box radius (fractional) whose `passes` repetitions approximate a Gaussian of the given
 * radius (Gwosdek et al. 2011, as Pillow computes it, in float). */
static float gaussian_box_radius(float radius, int passes) {
    float sigma2 = radius * radius / passes;
    float L = sqrt(12.0 * sigma2 + 1.0);
    float l = floor((L - 1.0) / 2.0);
    float a = (2 * l + 1) * (l * (l + 1) - 3 * sigma2);
    a /= 6 * (sigma2 - (l + 1) * (l + 1));
    return l + a;
}

/* One extended box blur along rows of a w×h RGB buffer (in -> out, distinct): window of
 * 2r+1 pixels at weight ww plus the two next pixels at weight fw, 24-bit fixed point,
 * edges replicate (what Pillow's edgeA/edgeB bookkeeping amounts to). */
static void box_blur_rows(uint8_t *out, const uint8_t *in, int w, int h, float float_radius) {
    int r = (int)float_radius;
    uint32_t ww = (uint32_t)((float)(1u << 24) / (float_radius * 2 + 1));
    uint32_t fw = ((1u << 24) - (uint32_t)(r * 2 + 1) * ww) / 2;
    int last = w - 1;
#define CL(i) ((i) < 0 ? 0 : (i) > last ? last : (i))
    for (int y = 0; y < h; y++) {
        const uint8_t *li = in + (size_t)y * w * 3;
        uint8_t *lo = out + (size_t)y * w * 3;
        for (int c = 0; c < 3; c++) {
            uint32_t acc = 0;
            for (int i = -r - 1; i <= r - 1; i++) acc += li[3 * CL(i) + c]; /* window of x = -1 */
            for (int x = 0; x < w; x++) {
                acc += li[3 * CL(x + r) + c];
                acc -= li[3 * CL(x - r - 1) + c];
                uint32_t bulk = acc * ww + (uint32_t)(li[3 * CL(x - r - 1) + c] + li[3 * CL(x + r + 1) + c]) * fw;
                lo[3 * x + c] = (uint8_t)((bulk + (1u << 23)) >> 24);
            }
        }
    }
#undef CL
}

static void transpose_rgb(uint8_t *out, const uint8_t *in, int w, int h) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) memcpy(out + ((size_t)x * h + y) * 3, in + ((size_t)y * w + x) * 3, 3);
}

int rs_image_gaussian_blur(rs_image *img, double radius, rs_err *err) {
    if (!(radius >= 0) || !isfinite(radius)) return rs_errf(err, "blur: radius must be >= 0 (got %g)", radius);
    if (radius == 0) return 0; /* Pillow returns a copy */
    float br = gaussian_box_radius((float)radius, 3);
    if (br == 0) return 0;
    int w = img->w, h = img->h;
    size_t n = (size_t)w * h * 3;
    uint8_t *a = malloc(n), *b = malloc(n);
    if (!a || !b) {
        free(a);
        free(b);
        return rs_errk(err, RS_ENOMEM, "blur: out of memory for a %dx%d image", w, h);
    }
    /* 3 horizontal passes, then 3 vertical passes on the transposed image. */
    box_blur_rows(a, img->rgb, w, h, br);
    box_blur_rows(b, a, w, h, br);
    box_blur_rows(a, b, w, h, br);
    transpose_rgb(b, a, w, h);
    box_blur_rows(a, b, h, w, br);
    box_blur_rows(b, a, h, w, br);
    box_blur_rows(a, b, h, w, br);
    transpose_rgb(img->rgb, a, h, w);
    free(a);
    free(b);
    return 0;
}

/* ---------------------------------------------------------------- rotation */

/* Python's round(x, 15): correctly rounded to 15 decimals (glibc printf rounds exactly). */
static double round15(double x) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.15f", x);
    return strtod(buf, NULL);
}

/* Cubic convolution through 4 samples at fraction d (Pillow's BICUBIC macro, a = -1). */
static inline double cubic4(double v1, double v2, double v3, double v4, double d) {
    double p1 = v2;
    double p2 = -v1 + v3;
    double p3 = 2 * (v1 - v2) + v3 - v4;
    double p4 = -v1 + v2 - v3 + v4;
    return p1 + d * (p2 + d * (p3 + d * p4));
}

int rs_image_rotate(const rs_image *src, double angle_deg, rs_image *dst, rs_err *err) {
    dst->w = dst->h = 0;
    dst->rgb = NULL;
    if (!isfinite(angle_deg)) return rs_errf(err, "rotate: angle must be finite");
    int w = src->w, h = src->h;
    /* Python float modulo: result has the sign of the divisor. */
    double angle = fmod(angle_deg, 360.0);
    if (angle != 0 && angle < 0) angle += 360.0;
    if (rs_image_alloc(dst, w, h, err)) return -1;
    const uint8_t *in = src->rgb;
    uint8_t *out = dst->rgb;
    /* Pillow's exact fast paths (no resampling). */
    if (angle == 0) {
        memcpy(out, in, (size_t)w * h * 3);
        return 0;
    }
    if (angle == 180) {
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                memcpy(out + ((size_t)(h - 1 - y) * w + (w - 1 - x)) * 3, in + ((size_t)y * w + x) * 3, 3);
        return 0;
    }
    if ((angle == 90 || angle == 270) && w == h) {
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                /* 90: counter-clockwise, out(row w-1-x, col y) = in(row y, col x) */
                size_t o = angle == 90 ? (size_t)(w - 1 - x) * w + y : (size_t)x * w + (h - 1 - y);
                memcpy(out + o * 3, in + ((size_t)y * w + x) * 3, 3);
            }
        return 0;
    }
    /* Inverse affine map (output -> input) exactly as Image.rotate builds it. */
    double rad = -(angle * (M_PI / 180.0));
    double a = round15(cos(rad)), b = round15(sin(rad)), d = round15(-sin(rad)), e = round15(cos(rad));
    double cx = w / 2.0, cy = h / 2.0;
    double c = a * -cx + b * -cy + 0.0;
    double f = d * -cx + e * -cy + 0.0;
    c += cx;
    f += cy;
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            uint8_t *o = out + ((size_t)y * w + x) * 3;
            double xo = x + 0.5, yo = y + 0.5;
            double xin = a * xo + b * yo + c;
            double yin = d * xo + e * yo + f;
            if (xin < 0.0 || xin >= w || yin < 0.0 || yin >= h) {
                o[0] = o[1] = o[2] = 0;
                continue;
            }
            xin -= 0.5;
            yin -= 0.5;
            int xi = (int)floor(xin), yi = (int)floor(yin);
            double dx = xin - xi, dy = yin - yi;
            xi--;
            yi--;
            int xs[4], ys[4];
            for (int k = 0; k < 4; k++) {
                int xx = xi + k, yy = yi + k;
                xs[k] = xx < 0 ? 0 : xx >= w ? w - 1 : xx; /* edges replicate */
                ys[k] = yy < 0 ? 0 : yy >= h ? h - 1 : yy;
            }
            for (int ch = 0; ch < 3; ch++) {
                double v[4];
                for (int k = 0; k < 4; k++) {
                    const uint8_t *row = in + (size_t)ys[k] * w * 3 + ch;
                    v[k] = cubic4(row[3 * xs[0]], row[3 * xs[1]], row[3 * xs[2]], row[3 * xs[3]], dx);
                }
                double r = cubic4(v[0], v[1], v[2], v[3], dy);
                o[ch] = r <= 0.0 ? 0 : r >= 255.0 ? 255 : (uint8_t)r;
            }
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- parsing / dispatch */

int rs_edit_parse(const char *spec, rs_edit *out, rs_err *err) {
    const char *eq = strchr(spec, '=');
    char valid[200] = "";
    for (int k = 0; k < RS_EDIT_COUNT; k++) {
        strcat(valid, EDIT_NAMES[k]);
        strcat(valid, ", ");
    }
    strcat(valid, EDIT_ALIAS_REDNESS_LUMA " (old name of redness)");
    if (!eq) return rs_errf(err, "edit '%s': expected name=value (names: %s)", spec, valid);
    size_t nlen = (size_t)(eq - spec);
    int kind = -1;
    for (int k = 0; k < RS_EDIT_COUNT; k++)
        if (strlen(EDIT_NAMES[k]) == nlen && !strncmp(spec, EDIT_NAMES[k], nlen)) kind = k;
    if (nlen == strlen(EDIT_ALIAS_REDNESS_LUMA) && !strncmp(spec, EDIT_ALIAS_REDNESS_LUMA, nlen)) kind = RS_EDIT_REDNESS;
    if (kind < 0) return rs_errf(err, "edit '%s': unknown edit '%.*s' (valid: %s)", spec, (int)nlen, spec, valid);
    char *end = NULL;
    double v = strtod(eq + 1, &end);
    if (end == eq + 1 || *end != '\0' || !isfinite(v))
        return rs_errf(err, "edit '%s': value '%s' is not a finite number", spec, eq + 1);
    if ((kind == RS_EDIT_BLUR || kind == RS_EDIT_REDNESS || kind == RS_EDIT_REDNESS_PLAIN) && v < 0)
        return rs_errf(err, "edit '%s': %s must be >= 0", spec, EDIT_NAMES[kind]);
    if (kind == RS_EDIT_BLUR && v > 1000) return rs_errf(err, "edit '%s': blur radius above 1000", spec);
    out->kind = (rs_edit_kind)kind;
    out->value = v;
    return 0;
}

int rs_edit_apply(rs_image *img, const rs_edit *e, rs_err *err) {
    switch (e->kind) {
    case RS_EDIT_BRIGHTNESS: rs_image_brightness(img, e->value); return 0;
    case RS_EDIT_CONTRAST: rs_image_contrast(img, e->value); return 0;
    case RS_EDIT_SATURATION: rs_image_saturation(img, e->value); return 0;
    case RS_EDIT_REDNESS: rs_image_redness_luma(img, e->value); return 0;
    case RS_EDIT_REDNESS_PLAIN: rs_image_redness_plain(img, e->value); return 0;
    case RS_EDIT_BLUR: return rs_image_gaussian_blur(img, e->value, err);
    case RS_EDIT_ROTATE: {
        rs_image r;
        if (rs_image_rotate(img, e->value, &r, err)) return -1;
        rs_image_free(img);
        *img = r;
        return 0;
    }
    default: return rs_errf(err, "unknown edit kind %d", (int)e->kind);
    }
}

int rs_edits_apply(rs_image *img, const rs_edit *edits, int n, rs_err *err) {
    for (int i = 0; i < n; i++)
        if (rs_edit_apply(img, &edits[i], err)) return -1;
    return 0;
}

/* ---------------------------------------------------------------- luminance */

/* sRGB EOTF (IEC 61966-2-1) of an 8-bit code value, as a fraction of white. */
static double srgb_to_linear(int c) {
    double v = c / 255.0;
    return v <= 0.04045 ? v / 12.92 : pow((v + 0.055) / 1.055, 2.4);
}

int rs_image_luminance(const rs_image *img, rs_luminance *out, rs_err *err) {
    size_t np = (size_t)img->w * img->h;
    if (!img->rgb || img->w <= 0 || img->h <= 0) return rs_errf(err, "luminance: empty image");
    double lin[256];
    for (int c = 0; c < 256; c++) lin[c] = srgb_to_linear(c);
    double sl = 0, sy = 0;
    for (size_t i = 0; i < np; i++) {
        const uint8_t *p = img->rgb + 3 * i;
        sl += 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
        sy += 0.2126 * lin[p[0]] + 0.7152 * lin[p[1]] + 0.0722 * lin[p[2]];
    }
    out->luma_bt601 = sl / (double)np / 255.0;
    out->linear_y = sy / (double)np;
    return 0;
}

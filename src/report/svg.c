/* SVG plot primitives for the report (see src/report/svg.h). Coordinates are
 * written with one decimal; every string that can come from data goes through
 * sb_escape. No element ids are used, so any number of plots can share one HTML page. */
#include "report/svg.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- buffer ---- */

/* Failed appends in this thread, over every buffer (sb_oom_events): a page assembled from
 * several buffers cannot lose a piece silently when one of them ran out of memory. */
static _Thread_local unsigned long g_oom_events;

unsigned long sb_oom_events(void) { return g_oom_events; }

static void set_oom(rs_sbuf *b) {
    b->oom = 1;
    g_oom_events++;
}

static void sb_put(rs_sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc < b->len + n + 1) nc *= 2;
        char *p = realloc(b->buf, nc);
        if (!p) {
            set_oom(b);
            return;
        }
        b->buf = p;
        b->cap = nc;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

void sb_puts(rs_sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

void sb_printf(rs_sbuf *b, const char *fmt, ...) {
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        sb_put(b, tmp, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        set_oom(b);
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_put(b, big, (size_t)n);
    free(big);
}

void sb_free(rs_sbuf *b) {
    free(b->buf);
    memset(b, 0, sizeof *b);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static int utf8_len(const unsigned char *s) {
    unsigned c = s[0];
    int n;
    unsigned cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) n = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) n = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, cp = c & 0x07;
    else return 0;
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

void sb_escape_trunc(rs_sbuf *b, const char *s, int max_chars) {
    if (!s) return;
    const unsigned char *p = (const unsigned char *)s;
    int chars = 0;
    while (*p) {
        if (max_chars > 0 && chars == max_chars) {
            sb_puts(b, "\xE2\x80\xA6"); /* … */
            return;
        }
        chars++;
        switch (*p) {
        case '&': sb_puts(b, "&amp;"); p++; continue;
        case '<': sb_puts(b, "&lt;"); p++; continue;
        case '>': sb_puts(b, "&gt;"); p++; continue;
        case '"': sb_puts(b, "&quot;"); p++; continue;
        case '\'': sb_puts(b, "&#39;"); p++; continue;
        default: break;
        }
        if (*p < 0x20 || *p == 0x7F) {
            sb_puts(b, *p == '\n' || *p == '\t' ? " " : "\xEF\xBF\xBD");
            p++;
            continue;
        }
        int n = utf8_len(p);
        if (n == 0) {
            sb_puts(b, "\xEF\xBF\xBD");
            p++;
            continue;
        }
        sb_put(b, (const char *)p, (size_t)n);
        p += n;
    }
}

void sb_escape(rs_sbuf *b, const char *s) { sb_escape_trunc(b, s, 0); }

const char *svg_fmt(double v, char *buf, size_t n) {
    if (!isfinite(v)) snprintf(buf, n, "\xE2\x80\x93");
    else if (v != 0 && (fabs(v) >= 1e5 || fabs(v) < 1e-3)) snprintf(buf, n, "%.2e", v);
    else snprintf(buf, n, "%.3g", v);
    return buf;
}

/* ---- shared geometry ---- */

static const char *PALETTE[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00",
                                "#56B4E9", "#000000", "#8C564B", "#7F7F7F", "#BCBD22"};

const char *svg_palette(int i) { return PALETTE[((i % 10) + 10) % 10]; }

static double nice_step(double range, int target) {
    if (!(range > 0)) return 1;
    double raw = range / target, p = pow(10, floor(log10(raw))), f = raw / p;
    double nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    return nf * p;
}

/* Widen [lo, hi] to a sensible, non-empty range. */
static void pad_range(double *lo, double *hi, int pad) {
    if (!isfinite(*lo) || !isfinite(*hi)) *lo = 0, *hi = 1;
    if (*hi - *lo < 1e-12) {
        double d = fabs(*lo) > 1e-12 ? fabs(*lo) * 0.1 : 0.5;
        *lo -= d, *hi += d;
    } else if (pad) {
        double d = (*hi - *lo) * 0.05;
        *lo -= d, *hi += d;
    }
}

typedef struct {
    double x0, x1, y0, y1;        /* data range */
    double px, py, pw, ph;        /* plot area in pixels */
} frame;

static double fx(const frame *f, double x) { return f->px + (x - f->x0) / (f->x1 - f->x0) * f->pw; }
static double fy(const frame *f, double y) { return f->py + f->ph - (y - f->y0) / (f->y1 - f->y0) * f->ph; }

static void svg_open(rs_sbuf *b, int w, int h, const char *title) {
    sb_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                 "font-family=\"Helvetica, Arial, sans-serif\" font-size=\"11\" role=\"img\" aria-label=\"",
              w, h, w, h);
    sb_escape(b, title);
    sb_puts(b, "\">\n<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n");
    if (title) {
        sb_printf(b, "<text x=\"%.1f\" y=\"18\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">", w / 2.0);
        sb_escape_trunc(b, title, 80);
        sb_puts(b, "</text>\n");
    }
}

/* Axes box, ticks, grid lines and axis titles. integer_x: only integer x ticks. */
static void draw_axes(rs_sbuf *b, const frame *f, const char *xlabel, const char *ylabel, int integer_x) {
    char t[64];
    double ys = nice_step(f->y1 - f->y0, 5);
    for (double v = ceil(f->y0 / ys) * ys; v <= f->y1 + ys * 1e-9; v += ys) {
        double y = fy(f, v);
        if (fabs(v) < ys * 1e-9) v = 0;
        sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>", f->px, y,
                  f->px + f->pw, y);
        sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", f->px - 5, y + 4,
                  svg_fmt(v, t, sizeof t));
    }
    double xs = nice_step(f->x1 - f->x0, 6);
    if (integer_x && xs < 1) xs = 1;
    for (double v = ceil(f->x0 / xs) * xs; v <= f->x1 + xs * 1e-9; v += xs) {
        double x = fx(f, v);
        if (fabs(v) < xs * 1e-9) v = 0;
        sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>", x, f->py + f->ph, x,
                  f->py + f->ph + 4);
        sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", x, f->py + f->ph + 16,
                  svg_fmt(v, t, sizeof t));
    }
    sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333\"/>\n", f->px,
              f->py, f->pw, f->ph);
    if (xlabel) {
        sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", f->px + f->pw / 2, f->py + f->ph + 32);
        sb_escape_trunc(b, xlabel, 70);
        sb_puts(b, "</text>\n");
    }
    if (ylabel) {
        double cx = 14, cy = f->py + f->ph / 2;
        sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 %.1f %.1f)\">", cx, cy,
                  cx, cy);
        sb_escape_trunc(b, ylabel, 40);
        sb_puts(b, "</text>\n");
    }
}

/* ---- line plot ---- */

void svg_line_plot(rs_sbuf *b, const svg_line_opts *o) {
    int w = o->width ? o->width : 420, h = o->height ? o->height : 280;
    int n_leg = 0;
    for (int s = 0; s < o->n_series; s++) n_leg += o->series[s].name != NULL;
    if (o->has_hline && o->hline_label) n_leg++;
    int per_row = 3, leg_rows = (n_leg + per_row - 1) / per_row;
    int H = h + leg_rows * 16;
    frame f = {INFINITY, -INFINITY, INFINITY, -INFINITY, 58, 30, w - 58 - 14, h - 30 - 44};
    for (int s = 0; s < o->n_series; s++) {
        const svg_series *S = &o->series[s];
        for (int i = 0; i < S->n; i++) {
            if (!isfinite(S->x[i]) || !isfinite(S->y[i])) continue;
            f.x0 = fmin(f.x0, S->x[i]), f.x1 = fmax(f.x1, S->x[i]);
            f.y0 = fmin(f.y0, S->y[i]), f.y1 = fmax(f.y1, S->y[i]);
            if (S->lo && isfinite(S->lo[i])) f.y0 = fmin(f.y0, S->lo[i]);
            if (S->hi && isfinite(S->hi[i])) f.y1 = fmax(f.y1, S->hi[i]);
        }
    }
    if (o->has_hline && isfinite(o->hline)) f.y0 = fmin(f.y0, o->hline), f.y1 = fmax(f.y1, o->hline);
    if (o->fixed_y) f.y0 = o->ymin, f.y1 = o->ymax;
    pad_range(&f.x0, &f.x1, 1);
    pad_range(&f.y0, &f.y1, !o->fixed_y);
    svg_open(b, w, H, o->title);
    draw_axes(b, &f, o->xlabel, o->ylabel, o->integer_x);
    if (o->has_hline && isfinite(o->hline)) {
        double y = fy(&f, o->hline);
        sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#777\" stroke-dasharray=\"5 4\"/>\n",
                  f.px, y, f.px + f.pw, y);
    }
    for (int s = 0; s < o->n_series; s++) {
        const svg_series *S = &o->series[s];
        const char *col = svg_palette(s);
        /* CI band: one polygon per run of points with a finite interval */
        if (S->lo && S->hi) {
            int i = 0;
            while (i < S->n) {
                int j = i;
                while (j < S->n && isfinite(S->x[j]) && isfinite(S->lo[j]) && isfinite(S->hi[j])) j++;
                if (j - i >= 2) {
                    sb_printf(b, "<polygon fill=\"%s\" fill-opacity=\"0.18\" stroke=\"none\" points=\"", col);
                    for (int k = i; k < j; k++) sb_printf(b, "%.1f,%.1f ", fx(&f, S->x[k]), fy(&f, S->hi[k]));
                    for (int k = j - 1; k >= i; k--) sb_printf(b, "%.1f,%.1f ", fx(&f, S->x[k]), fy(&f, S->lo[k]));
                    sb_puts(b, "\"/>\n");
                }
                i = j > i ? j : i + 1;
            }
            for (int k = 0; k < S->n; k++) {
                if (!isfinite(S->x[k]) || !isfinite(S->lo[k]) || !isfinite(S->hi[k])) continue;
                double x = fx(&f, S->x[k]), y0 = fy(&f, S->lo[k]), y1 = fy(&f, S->hi[k]);
                sb_printf(b, "<path d=\"M%.1f %.1fV%.1fM%.1f %.1fh6M%.1f %.1fh6\" stroke=\"%s\" fill=\"none\"/>", x, y0,
                          y1, x - 3, y0, x - 3, y1, col);
            }
        }
        sb_printf(b, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"2\" d=\"", col);
        int pen = 0;
        for (int k = 0; k < S->n; k++) {
            if (!isfinite(S->x[k]) || !isfinite(S->y[k])) {
                pen = 0;
                continue;
            }
            sb_printf(b, "%c%.1f %.1f", pen ? 'L' : 'M', fx(&f, S->x[k]), fy(&f, S->y[k]));
            pen = 1;
        }
        sb_puts(b, "\"/>\n");
        for (int k = 0; k < S->n; k++)
            if (isfinite(S->x[k]) && isfinite(S->y[k]))
                sb_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>", fx(&f, S->x[k]), fy(&f, S->y[k]),
                          col);
        sb_puts(b, "\n");
    }
    /* legend below the x-axis title */
    int e = 0;
    double cw = (w - 20) / (double)per_row;
    for (int s = 0; s <= o->n_series; s++) {
        const char *name = s < o->n_series ? o->series[s].name : (o->has_hline ? o->hline_label : NULL);
        if (!name) continue;
        double x = 10 + (e % per_row) * cw, y = h + (e / per_row) * 16 + 2;
        if (s < o->n_series)
            sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"4\" fill=\"%s\"/>", x, y - 4, svg_palette(s));
        else
            sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#777\" stroke-dasharray=\"5 4\"/>",
                      x, y - 2, x + 14, y - 2);
        sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\">", x + 18, y + 2);
        sb_escape_trunc(b, name, (int)(cw / 6.5) - 3);
        sb_puts(b, "</text>\n");
        e++;
    }
    sb_puts(b, "</svg>\n");
}

/* ---- histogram ---- */

void svg_histogram(rs_sbuf *b, const char *title, const char *xlabel, const char *ylabel, const double *edges,
                   const double *counts, int n_bins, int width, int height) {
    int w = width ? width : 420, h = height ? height : 280;
    double cmax = 0;
    for (int i = 0; i < n_bins; i++)
        if (isfinite(counts[i]) && counts[i] > cmax) cmax = counts[i];
    frame f = {edges[0], edges[n_bins], 0, cmax > 0 ? cmax * 1.05 : 1, 58, 30, w - 58 - 14, h - 30 - 44};
    pad_range(&f.x0, &f.x1, 0);
    svg_open(b, w, h, title);
    draw_axes(b, &f, xlabel, ylabel, 0);
    for (int i = 0; i < n_bins; i++) {
        if (!(counts[i] > 0)) continue;
        double x0 = fx(&f, edges[i]), x1 = fx(&f, edges[i + 1]), y = fy(&f, counts[i]);
        sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" stroke=\"#fff\" "
                     "stroke-width=\"0.5\"/>",
                  x0, y, x1 - x0, f.py + f.ph - y, PALETTE[0]);
    }
    sb_puts(b, "\n</svg>\n");
}

/* ---- bar chart ---- */

void svg_bar_chart(rs_sbuf *b, const svg_bar_opts *o) {
    int w = o->width ? o->width : 560, row = 20, top = 30, lab = 190;
    int h = top + o->n * row + 40;
    frame f = {0, 0, 0, 1, lab, top, w - lab - 60, o->n * row};
    for (int i = 0; i < o->n; i++) {
        double v[3] = {o->values[i], o->lo ? o->lo[i] : NAN, o->hi ? o->hi[i] : NAN};
        for (int k = 0; k < 3; k++)
            if (isfinite(v[k])) f.x0 = fmin(f.x0, v[k]), f.x1 = fmax(f.x1, v[k]);
    }
    pad_range(&f.x0, &f.x1, 1);
    if (f.x0 > 0) f.x0 = 0;
    svg_open(b, w, h, o->title);
    char t[64];
    /* vertical grid + ticks */
    double xs = nice_step(f.x1 - f.x0, 5);
    for (double v = ceil(f.x0 / xs) * xs; v <= f.x1 + xs * 1e-9; v += xs) {
        double x = fx(&f, v);
        if (fabs(v) < xs * 1e-9) v = 0;
        sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>", x, f.py, x, f.py + f.ph + 4,
                  v == 0 ? "#333" : "#e5e5e5");
        sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", x, f.py + f.ph + 16,
                  svg_fmt(v, t, sizeof t));
    }
    for (int i = 0; i < o->n; i++) {
        double yc = top + i * row + row / 2.0, v = o->values[i];
        sb_printf(b, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">", lab - 6, yc + 4);
        sb_escape_trunc(b, o->labels[i], 30);
        sb_puts(b, "</text>");
        if (isfinite(v)) {
            double x0 = fx(&f, 0), x1 = fx(&f, v);
            sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>", fmin(x0, x1),
                      yc - row * 0.35, fabs(x1 - x0), (int)(row * 0.7), svg_palette(o->group ? o->group[i] : 0));
        }
        double lo = o->lo ? o->lo[i] : NAN, hi = o->hi ? o->hi[i] : NAN;
        if (isfinite(lo) && isfinite(hi))
            sb_printf(b, "<path d=\"M%.1f %.1fH%.1fM%.1f %.1fv8M%.1f %.1fv8\" stroke=\"#222\" fill=\"none\"/>", fx(&f, lo),
                      yc, fx(&f, hi), fx(&f, lo), yc - 4, fx(&f, hi), yc - 4);
        /* value label right of the bar end; a negative bar's label goes right of the zero line
         * (left of its end it would run into the row labels when the bar is long) */
        const char *vt = svg_fmt(v, t, sizeof t);
        if (isfinite(v) && v < 0) {
            double tx = fx(&f, fmax(0, isfinite(hi) ? hi : 0));
            sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" fill=\"#333\">%s</text>\n", tx + 4, yc + 4, vt);
        } else {
            double tx = fx(&f, fmax(isfinite(v) ? v : 0, isfinite(hi) ? hi : -INFINITY));
            sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" fill=\"#333\">%s</text>\n", tx + 4, yc + 4, vt);
        }
    }
    sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", f.px, f.py + f.ph,
              f.px + f.pw, f.py + f.ph);
    if (o->xlabel) {
        sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", f.px + f.pw / 2, f.py + f.ph + 32);
        sb_escape_trunc(b, o->xlabel, 70);
        sb_puts(b, "</text>\n");
    }
    sb_puts(b, "</svg>\n");
}

/* ---- heatmap ---- */

/* viridis, 5 stops, linear in between */
static void colormap(double t, int rgb[3]) {
    static const int S[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
    if (!isfinite(t)) t = 0;
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double p = t * 4;
    int i = (int)p;
    if (i > 3) i = 3;
    double u = p - i;
    for (int c = 0; c < 3; c++) rgb[c] = (int)lround(S[i][c] + u * (S[i + 1][c] - S[i][c]));
}

void svg_heatmap(rs_sbuf *b, const svg_heatmap_opts *o) {
    int cw = 96, ch = 46, left = 170, top = 58;
    int w = left + o->n_cols * cw + 90, h = top + o->n_rows * ch + 40;
    double vmin = INFINITY, vmax = -INFINITY;
    for (int i = 0; i < o->n_rows * o->n_cols; i++)
        if (isfinite(o->values[i])) vmin = fmin(vmin, o->values[i]), vmax = fmax(vmax, o->values[i]);
    if (o->fixed_range) vmin = o->vmin, vmax = o->vmax;
    pad_range(&vmin, &vmax, 0);
    svg_open(b, w, h, o->title);
    char t[64], t2[64];
    if (o->col_title) {
        sb_printf(b, "<text x=\"%.1f\" y=\"34\" text-anchor=\"middle\" font-style=\"italic\">", left + o->n_cols * cw / 2.0);
        sb_escape_trunc(b, o->col_title, 60);
        sb_puts(b, "</text>\n");
    }
    if (o->row_title) {
        sb_printf(b, "<text x=\"10\" y=\"%d\" font-style=\"italic\">", top - 6);
        sb_escape_trunc(b, o->row_title, 24);
        sb_puts(b, "</text>\n");
    }
    for (int c = 0; c < o->n_cols; c++) {
        sb_printf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", left + c * cw + cw / 2.0, top - 6);
        sb_escape_trunc(b, o->col_labels[c], 14);
        sb_puts(b, "</text>\n");
    }
    for (int r = 0; r < o->n_rows; r++) {
        sb_printf(b, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">", left - 6, top + r * ch + ch / 2.0 + 4);
        sb_escape_trunc(b, o->row_labels[r], 26);
        sb_puts(b, "</text>\n");
        for (int c = 0; c < o->n_cols; c++) {
            double v = o->values[r * o->n_cols + c];
            double x = left + c * cw, y = top + r * ch;
            if (!isfinite(v)) {
                sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%d\" fill=\"#f0f0f0\" stroke=\"#fff\"/>"
                             "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#777\">n/a</text>\n",
                          x, y, cw, ch, x + cw / 2.0, y + ch / 2.0 + 4);
                continue;
            }
            int rgb[3];
            colormap((v - vmin) / (vmax - vmin), rgb);
            double lum = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2];
            const char *fg = lum > 140 ? "#000" : "#fff";
            sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%d\" fill=\"rgb(%d,%d,%d)\" stroke=\"#fff\"/>",
                      x, y, cw, ch, rgb[0], rgb[1], rgb[2]);
            int has_ci = o->lo && o->hi && isfinite(o->lo[r * o->n_cols + c]) && isfinite(o->hi[r * o->n_cols + c]);
            sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"%s\" font-size=\"12\" "
                         "font-weight=\"bold\">%s</text>",
                      x + cw / 2.0, y + (has_ci ? 20 : ch / 2.0 + 4), fg, svg_fmt(v, t, sizeof t));
            if (has_ci) {
                svg_fmt(o->lo[r * o->n_cols + c], t, sizeof t);
                svg_fmt(o->hi[r * o->n_cols + c], t2, sizeof t2);
                sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"%s\" font-size=\"10\">[%s, %s]</text>",
                          x + cw / 2.0, y + 35, fg, t, t2);
            }
            sb_puts(b, "\n");
        }
    }
    /* colour bar: 40 stacked rects (no gradient ids, so plots never clash) */
    double bx = left + o->n_cols * cw + 20, by = top, bh = fmax(o->n_rows * ch, 80);
    for (int i = 0; i < 40; i++) {
        int rgb[3];
        colormap(1.0 - (i + 0.5) / 40.0, rgb);
        sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"%.2f\" fill=\"rgb(%d,%d,%d)\"/>", bx,
                  by + i * bh / 40, bh / 40 + 0.5, rgb[0], rgb[1], rgb[2]);
    }
    sb_printf(b, "\n<text x=\"%.1f\" y=\"%.1f\">%s</text>", bx + 18, by + 8, svg_fmt(vmax, t, sizeof t));
    sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", bx + 18, by + bh, svg_fmt(vmin, t, sizeof t));
    sb_puts(b, "</svg>\n");
}

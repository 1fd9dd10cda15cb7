/* Hand-written SVG plots for the HTML report: line plots with CI bands and error bars,
 * histograms, horizontal bar charts with error bars, heatmaps with a colour scale and cell
 * labels; each with axes, ticks, title and legend. All text passes through the XML/HTML
 * escaper, so labels from data can never open a tag or an attribute. Output is appended
 * to a growing buffer; a NaN value is a missing point (a gap), never drawn. */
#ifndef REPRSHIFT_SVG_H
#define REPRSHIFT_SVG_H

#include <stddef.h>

/* Growing text buffer; oom is sticky (check once at the end). */
typedef struct {
    char *buf;
    size_t len, cap;
    int oom;
} rs_sbuf;

/* Append text verbatim. */
void sb_puts(rs_sbuf *b, const char *s);
/* Append formatted text. */
void sb_printf(rs_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s with & < > " ' escaped (safe in element content and quoted attributes); invalid
 * UTF-8 bytes and control characters become U+FFFD. */
void sb_escape(rs_sbuf *b, const char *s);
/* Same, cutting s to at most max_chars code points (adding "…"). */
void sb_escape_trunc(rs_sbuf *b, const char *s, int max_chars);
/* Free the buffer and zero it. */
void sb_free(rs_sbuf *b);
/* Number of appends that failed for lack of memory so far in this thread, in any buffer
 * (compare before and after assembling a document from several buffers). */
unsigned long sb_oom_events(void);

/* Format v with 3 significant digits ("–" for NaN) into buf. */
const char *svg_fmt(double v, char *buf, size_t n);

typedef struct {
    const char *name;             /* legend entry (NULL: no legend entry) */
    int n;
    const double *x, *y;          /* [n] */
    const double *lo, *hi;        /* [n] CI (NULL: none); drawn as band + error bars */
} svg_series;

typedef struct {
    const char *title, *xlabel, *ylabel;
    int width, height;            /* 0 → 420 × 280 */
    int n_series;
    const svg_series *series;
    int fixed_y;                  /* use ymin..ymax instead of the data range */
    double ymin, ymax;
    int has_hline;                /* dashed reference line (e.g. chance) */
    double hline;
    const char *hline_label;
    int integer_x;                /* x ticks at integers only (layers) */
} svg_line_opts;

/* Line plot; series coloured from a fixed palette in order. */
void svg_line_plot(rs_sbuf *b, const svg_line_opts *o);

/* Histogram of n_bins bins with edges[n_bins + 1] and counts[n_bins]. */
void svg_histogram(rs_sbuf *b, const char *title, const char *xlabel, const char *ylabel,
                   const double *edges, const double *counts, int n_bins, int width, int height);

typedef struct {
    const char *title, *xlabel;
    int n;
    const char *const *labels;    /* [n] one bar per label, top to bottom */
    const double *values;         /* [n] */
    const double *lo, *hi;        /* [n] error bars (NULL: none) */
    const int *group;             /* [n] colour index (NULL: all 0) */
    int width;                    /* 0 → 560; height grows with n */
} svg_bar_opts;

/* Horizontal bar chart (bars from 0, so negative values extend left). */
void svg_bar_chart(rs_sbuf *b, const svg_bar_opts *o);

typedef struct {
    const char *title, *row_title, *col_title;
    int n_rows, n_cols;
    const char *const *row_labels, *const *col_labels;
    const double *values;         /* [n_rows × n_cols], NaN = empty cell */
    const double *lo, *hi;        /* CI per cell (NULL: none) */
    int fixed_range;              /* colour scale vmin..vmax instead of the data range */
    double vmin, vmax;
} svg_heatmap_opts;

/* Heatmap with cell labels (value and CI) and a colour bar. */
void svg_heatmap(rs_sbuf *b, const svg_heatmap_opts *o);

/* Colour i of the series palette as "#rrggbb". */
const char *svg_palette(int i);

#endif

/* HTML report: the fixture results directory renders every section with n and CI in each
 * caption; hostile strings from data (script tags, attribute breakouts) come out escaped —
 * checked by scanning every tag of the output against an allow-list; missing files are
 * skipped with a note; malformed files are errors naming the file; output is atomic and
 * deterministic. */
#include "testutil.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reprshift/fileio.h"
#include "reprshift/report.h"
#include "report/svg.h"

#define FULL "tests/fixtures/report/full"
#define HOSTILE "tests/fixtures/report/hostile"

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++) n++;
    return n;
}

static void test_full_fixture(void **state) {
    (void)state;
    char *html, *html2;
    size_t len, len2;
    int figs;
    rs_err err;
    if (report_render(FULL, &html, &len, &figs, &err)) fail_msg("%s", err.msg);
    /* 2 condition metrics + 1 CE by condition + 2 by-position, 4 shift metrics + 2 histograms +
     * 2×2 rankings, 4 SAE metrics, 3 probe tasks, 6 attribute probes, 1 transfer matrix */
    assert_int_equal(figs, 2 + 1 + 2 + 4 + 2 + 4 + 4 + 3 + 6 + 1);
    assert_non_null(strstr(html, "CE loss recovered by condition"));
    assert_non_null(strstr(html, "<section id=\"conditions\">"));
    assert_non_null(strstr(html, "<td>what the image and prompt add</td>"));
    assert_non_null(strstr(html, "cos_raw by caption position, blocks.12.hook_resid_post"));
    assert_non_null(strstr(html, "n = 38\xE2\x80\x93" "40 captions per position."));
    assert_non_null(strstr(html, "n = 40 captions per condition."));
    assert_int_equal(count(html, "<figure>"), figs);
    assert_int_equal(count(html, "<svg "), figs);
    assert_int_equal(count(html, "<span class=\"n\">n = "), figs);
    assert_int_equal(count(html, "<span class=\"ci\">CI: "), figs);
    assert_non_null(strstr(html, "n = 412 rows (40 inputs) per layer."));
    assert_non_null(strstr(html, "CI: 95% percentile bootstrap over inputs, 1000 resamples."));
    assert_non_null(strstr(html, "CI: percentile bootstrap over inputs, level 0.95, 1000 resamples."));
    assert_non_null(strstr(html, "n = 160 tokens."));
    assert_non_null(strstr(html, "n = 40 test rows per point."));
    for (const char *s = "brightness\0redness\0saturation\0contrast\0blur\0rotation\0"; *s; s += strlen(s) + 1)
        assert_non_null(strstr(html, s));
    assert_non_null(strstr(html, "ce_loss_recovered"));
    assert_non_null(strstr(html, "[0.87, 0.95]")); /* heatmap cell CI label */
    assert_null(strstr(html, "Skipped sections"));
    assert_null(strstr(html, "<script"));
    assert_null(strstr(html, "src=")); /* self-contained: nothing to load */
    assert_non_null(strstr(html, "<footer id=\"report-end\">"));
    /* deterministic */
    if (report_render(FULL, &html2, &len2, NULL, &err)) fail_msg("%s", err.msg);
    assert_int_equal(len, len2);
    assert_memory_equal(html, html2, len);
    free(html);
    free(html2);
}

static const char *ALLOWED_TAGS[] = {"html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "p",
                                     "code", "nav", "a", "section", "div", "figure", "figcaption", "svg", "rect",
                                     "text", "line", "path", "polygon", "circle", "b", "span", "ul", "li", "footer",
                                     "table", "tr", "th", "td", "h3", "i", "caption", NULL};

/* Every tag in html must be on the allow-list and carry no event-handler attribute. */
static void check_tags(const char *html) {
    int n_tags = 0;
    for (const char *p = html; (p = strchr(p, '<')); p++) {
        const char *q = p + 1;
        if (!strncmp(q, "!DOCTYPE", 8)) continue;
        if (*q == '/') q++;
        char name[32];
        int k = 0;
        while (isalnum((unsigned char)q[k]) && k < 31) name[k] = (char)tolower((unsigned char)q[k]), k++;
        name[k] = '\0';
        int ok = 0;
        for (int i = 0; ALLOWED_TAGS[i]; i++) ok |= !strcmp(name, ALLOWED_TAGS[i]);
        if (!ok) fail_msg("unexpected tag <%s> at byte %ld: %.60s", name, (long)(p - html), p);
        const char *end = strchr(p, '>');
        assert_non_null(end);
        /* attribute names: a space followed by letters then '=' outside quotes */
        int inq = 0;
        for (const char *a = p; a < end; a++) {
            if (*a == '"') inq = !inq;
            if (!inq && *a == ' ' && tolower((unsigned char)a[1]) == 'o' && tolower((unsigned char)a[2]) == 'n')
                fail_msg("event-handler-like attribute in tag: %.80s", p);
        }
        assert_false(inq);
        n_tags++;
    }
    assert_true(n_tags > 50);
}

static void test_hostile_strings_escaped(void **state) {
    (void)state;
    char *html;
    size_t len;
    int figs;
    rs_err err;
    if (report_render(HOSTILE, &html, &len, &figs, &err)) fail_msg("%s", err.msg);
    assert_true(figs >= 5);
    check_tags(html);
    assert_null(strstr(html, "<script"));
    assert_null(strstr(html, "<img"));
    assert_null(strstr(html, "\"><"));
    assert_non_null(strstr(html, "&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert_non_null(strstr(html, "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
    assert_non_null(strstr(html, "&amp;amp;"));            /* a literal "&amp;" in a token stays text */
    assert_non_null(strstr(html, "\xC3\xA9\xE4\xB8\xAD&#39;&quot;")); /* UTF-8 kept, quotes escaped */
    check_tags(html);
    /* the full fixture passes the same scan */
    free(html);
    if (report_render(FULL, &html, &len, &figs, &err)) fail_msg("%s", err.msg);
    check_tags(html);
    free(html);
}

static void write_file(const char *dir, const char *name, const char *text) {
    char *p = rs_path_join(dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    free(p);
}

static void test_missing_and_malformed(void **state) {
    (void)state;
    rs_err err;
    char *html;
    size_t len;
    int figs;
    char dir[256];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    /* empty directory: a page that says so */
    if (report_render(dir, &html, &len, &figs, &err)) fail_msg("%s", err.msg);
    assert_int_equal(figs, 0);
    assert_non_null(strstr(html, "No results to show"));
    assert_int_equal(count(html, ": skipped, no <code>"), 5);
    free(html);
    /* only probes.json: other sections skipped with a note */
    assert_int_equal(tu_system("cp " FULL "/probes.json '%s/'", dir), 0);
    if (report_render(dir, &html, &len, &figs, &err)) fail_msg("%s", err.msg);
    assert_int_equal(figs, 9);
    assert_non_null(strstr(html, "Representation shift: skipped, no <code>shift.json</code>"));
    assert_non_null(strstr(html, "Transfer matrix: skipped, no <code>transfer.json</code>"));
    free(html);
    /* malformed JSON names the file */
    char out[300];
    snprintf(out, sizeof out, "%s/report.html", dir);
    write_file(dir, "shift.json", "{\"layers\": [1, 2");
    assert_int_equal(report_write(dir, out, &figs, &err), -1);
    assert_non_null(strstr(err.msg, "/shift.json: malformed JSON"));
    assert_false(rs_path_exists(out)); /* nothing written on error */
    /* schema errors name the file and the field */
    write_file(dir, "shift.json", "{\"ci\": \"x\", \"layers\": [{\"layer\": 0, \"shift\": {}}]}");
    assert_int_equal(report_render(dir, &html, &len, &figs, &err), -1);
    assert_non_null(strstr(err.msg, "shift.json: layers[0]: \"n_rows\""));
    write_file(dir, "shift.json", "{\"layers\": [{\"layer\": 0, \"n_rows\": 3}]}");
    assert_int_equal(report_render(dir, &html, &len, &figs, &err), -1);
    assert_non_null(strstr(err.msg, "shift.json: missing \"ci\""));
    write_file(dir, "shift.json",
               "{\"ci\": \"x\", \"layers\": [{\"layer\": 0, \"n_rows\": 3, \"shift\": {\"cos_raw\": {\"value\": \"high\"}}}]}");
    assert_int_equal(report_render(dir, &html, &len, &figs, &err), -1);
    assert_non_null(strstr(err.msg, "shift.json: layers[0].shift.cos_raw: expected a number"));
    write_file(dir, "shift.json", "[]");
    assert_int_equal(report_render(dir, &html, &len, &figs, &err), -1);
    assert_non_null(strstr(err.msg, "shift.json: expected a JSON object"));
    char shift[300];
    snprintf(shift, sizeof shift, "%s/shift.json", dir);
    remove(shift);
    write_file(dir, "transfer.json", "{\"ci\": \"x\", \"rows\": [\"a\"], \"cols\": [\"b\"], \"n\": 3, \"values\": [[1, 2]]}");
    assert_int_equal(report_render(dir, &html, &len, &figs, &err), -1);
    assert_non_null(strstr(err.msg, "transfer.json: (top level).values[0]: expected 1 columns"));
    write_file(dir, "transfer.json", "{\"ci\": \"x\", \"rows\": [\"a\"], \"cols\": [\"b\"], \"values\": [[0.5]]}");
    assert_int_equal(report_render(dir, &html, &len, &figs, &err), -1);
    assert_non_null(strstr(err.msg, "\"n\""));
    /* not a directory */
    assert_int_equal(report_render("tests/fixtures/report/nope", &html, &len, &figs, &err), -1);
    assert_non_null(strstr(err.msg, "results directory not found"));
    tu_system("rm -rf '%s'", dir);
}

/* Control tasks: a row per task and model that ran one, the selectivity per layer with its
 * accuracy and control accuracy, the type overlap; tasks without a control task get no row;
 * strings escaped. */
static void test_control_table(void **state) {
    (void)state;
    rs_err err;
    char *html;
    size_t len;
    int figs;
    char dir[256];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    write_file(dir, "probes.json",
               "{\"ci\": \"boot\", \"tasks\": ["
               "{\"task\": \"concept\", \"kind\": \"concept\", \"model\": \"<b>LLM</b>\", \"layers\": ["
               "{\"layer\": 1, \"n_test\": 7, \"accuracy\": {\"value\": 0.75, \"ci_lo\": 0.5, \"ci_hi\": 1}, "
               "\"control_accuracy\": 0.25, \"selectivity\": 0.5, \"control_type_overlap\": 0.8},"
               "{\"layer\": 3, \"n_test\": 7, \"accuracy\": {\"value\": 0.6, \"ci_lo\": 0.5, \"ci_hi\": 1}, "
               "\"control_accuracy\": 0.7, \"selectivity\": -0.1, \"control_type_overlap\": 0.8}]},"
               "{\"task\": \"concept\", \"kind\": \"concept\", \"model\": \"no control\", \"layers\": ["
               "{\"layer\": 1, \"n_test\": 7, \"accuracy\": {\"value\": 0.75, \"ci_lo\": 0.5, \"ci_hi\": 1}, "
               "\"control_accuracy\": null, \"selectivity\": null}]}]}");
    if (report_render(dir, &html, &len, &figs, &err)) fail_msg("%s", err.msg);
    check_tags(html);
    const char *t = strstr(html, "Control tasks (Hewitt &amp; Liang)");
    assert_non_null(t);
    assert_non_null(strstr(t, "<tr><td>concept</td><td>&lt;b&gt;LLM&lt;/b&gt;</td><td>0.80</td>"
                              "<td>1: <b>+0.50</b> (0.75 &minus; 0.25)</td><td>3: <b>-0.10</b> (0.60 &minus; 0.70)</td></tr>"));
    assert_null(strstr(t, "no control"));
    free(html);
    tu_system("rm -rf '%s'", dir);
}

/* probes.json "paired": one table row per pair and layer (Δaccuracy [CI], p, q, n), q < 0.05
 * marked, p null shown as not computed; data strings escaped; a row without n is an error. */
static void test_paired_probes(void **state) {
    (void)state;
    rs_err err;
    char *html;
    size_t len;
    int figs;
    char dir[256];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    const char *acc = "\"accuracy\": {\"value\": 0.9, \"ci_lo\": 0.8, \"ci_hi\": 1}";
    char json[4096];
    snprintf(json, sizeof json,
             "{\"ci\": \"boot\", \"tasks\": [{\"task\": \"concept\", \"kind\": \"concept\", "
             "\"model\": \"LLM captions\", \"layers\": [{\"layer\": 3, \"hook\": \"blocks.3.hook_resid_post\", "
             "\"n_test\": 7, %s}]}],\n"
             " \"paired\": [{\"task\": \"concept\", \"pair\": \"a-b\", \"model_a\": \"LLM captions\", "
             "\"model_b\": \"<script>alert(1)</script>\", \"layer\": 3, \"hook\": \"blocks.3.hook_resid_post\", "
             "\"n_seeds\": 5, \"n_test_groups\": 60, \"n_test_items\": 61, \"difference\": {\"value\": 0.125, "
             "\"ci_lo\": 0.05, \"ci_hi\": 0.2}, \"p\": 0.001, \"q\": 0.002},\n"
             "  {\"task\": \"concept\", \"pair\": \"<img src=x>\", \"model_a\": \"c\", \"model_b\": \"d\", \"layer\": 3, "
             "\"n_seeds\": 5, \"n_test_groups\": 60, \"n_test_items\": 61, \"difference\": {\"value\": -0.01, "
             "\"ci_lo\": -0.1, \"ci_hi\": 0.08}, \"p\": null, \"q\": null}]}",
             acc);
    write_file(dir, "probes.json", json);
    if (report_render(dir, &html, &len, &figs, &err)) fail_msg("%s", err.msg);
    check_tags(html);
    assert_null(strstr(html, "<script"));
    assert_null(strstr(html, "<img"));
    const char *sec = strstr(html, "<section id=\"paired\">");
    assert_non_null(sec);
    assert_non_null(strstr(html, "<a href=\"#paired\">"));
    assert_non_null(strstr(sec, "<b>1 of 1</b> tests"));
    assert_non_null(strstr(sec, "<b>+0.125 [+0.050, +0.200]</b>"));
    assert_non_null(strstr(sec, "<td>0.001</td><td><b>0.002 *</b></td><td>5 / 60 / 61</td>"));
    assert_non_null(strstr(sec, "<td>-0.010 [-0.100, +0.080]</td><td>not computed</td><td>&ndash;</td>"));
    assert_non_null(strstr(sec, "&lt;script&gt;"));
    free(html);
    write_file(dir, "probes.json", "{\"ci\": \"x\", \"tasks\": [{\"task\": \"concept\", \"model\": \"m\", \"layers\": "
                                   "[{\"n_test\": 3, \"accuracy\": 0.5}]}], \"paired\": [{\"pair\": \"a-b\", "
                                   "\"n_seeds\": 2, \"difference\": 0.1}]}");
    assert_int_equal(report_render(dir, &html, &len, &figs, &err), -1);
    assert_non_null(strstr(err.msg, "probes.json: paired[0]: \"n_test_groups\""));
    tu_system("rm -rf '%s'", dir);
}

/* probes.json "vision" (reprshift run with vision_hooks): one bar chart per entry with its
 * vision hooks and the matching decoder task's layers; data strings escaped; n and CI in
 * every caption; a point without n_test is an error naming the field. */
static void test_vision_probes(void **state) {
    (void)state;
    rs_err err;
    char *html;
    size_t len;
    int figs;
    char dir[256];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    const char *acc = "\"accuracy\": {\"value\": 0.9, \"ci_lo\": 0.8, \"ci_hi\": 1}";
    char json[4096];
    snprintf(json, sizeof json,
             "{\"ci\": \"<b>boot</b>\", \"tasks\": [{\"task\": \"concept\", \"kind\": \"concept\", "
             "\"model\": \"VLM images\", \"layers\": [{\"layer\": 3, \"hook\": \"blocks.3.hook_resid_post\", "
             "\"n_test\": 7, %s}]}],\n"
             " \"vision\": [{\"task\": \"concept\", \"kind\": \"concept\", \"model\": \"VLM images\", \"chance\": 0.25, "
             "\"hooks\": [{\"hook\": \"vision.ln_post\", \"n_test\": 5, %s}, "
             "{\"hook\": \"<script>alert(1)</script>\", \"n_test\": 5, %s}]},\n"
             "  {\"task\": \"\\\"><img src=x onerror=alert(1)>\", \"kind\": \"attribute\", \"model\": \"<i>m</i>\", "
             "\"hooks\": [{\"hook\": \"projector.hook_out\", \"n_test\": 9, %s}]}]}",
             acc, acc, acc, acc);
    write_file(dir, "probes.json", json);
    if (report_render(dir, &html, &len, &figs, &err)) fail_msg("%s", err.msg);
    check_tags(html);
    assert_null(strstr(html, "<script"));
    assert_null(strstr(html, "<img"));
    assert_null(strstr(html, "<i>"));
    const char *sec = strstr(html, "<section id=\"vision\">");
    assert_non_null(sec);
    assert_non_null(strstr(html, "<a href=\"#vision\">"));
    assert_int_equal(count(sec, "<figcaption>"), 2);
    /* vision bars n 5, the decoder bar n 7 */
    assert_int_equal(count(sec, "<span class=\"n\">n = 5\xE2\x80\x93" "7 test rows per bar"), 1);
    assert_int_equal(count(sec, "<span class=\"n\">n = 9 test rows per bar"), 1);
    assert_int_equal(count(sec, "CI: &lt;b&gt;boot&lt;/b&gt;"), 2);
    assert_non_null(strstr(sec, "decoder layer 3"));
    assert_non_null(strstr(sec, "Chance 0.250"));
    free(html);
    /* vision entries only: "tasks" may be empty */
    snprintf(json, sizeof json,
             "{\"ci\": \"x\", \"tasks\": [], \"vision\": [{\"task\": \"blur\", \"model\": \"blur 2\", "
             "\"hooks\": [{\"hook\": \"vision.ln_post\", \"n_test\": 4, %s}]}]}", acc);
    write_file(dir, "probes.json", json);
    if (report_render(dir, &html, &len, &figs, &err)) fail_msg("%s", err.msg);
    assert_int_equal(figs, 1);
    free(html);
    /* a point without n_test */
    write_file(dir, "probes.json", "{\"ci\": \"x\", \"tasks\": [], \"vision\": [{\"task\": \"blur\", "
                                   "\"hooks\": [{\"hook\": \"vision.ln_post\", \"accuracy\": 0.5}]}]}");
    assert_int_equal(report_render(dir, &html, &len, &figs, &err), -1);
    assert_non_null(strstr(err.msg, "probes.json: vision[0].hooks[0]: \"n_test\""));
    tu_system("rm -rf '%s'", dir);
}

/* attribute_transfer.json (reprshift run): beside the attribute probes, a dose-response figure
 * per edit with >= 2 strengths (diagonal accuracy by strength, a line per hook, chance line)
 * and each hook's transfer matrix as a table with the file's numbers; redness (luminance-
 * controlled, the default) and redness_plain explained; the luminance table (Δluma BT.601,
 * ΔY linear, n) with one sentence on the redness; absent file: no such part and no note. */
static void test_attribute_transfer(void **state) {
    (void)state;
    rs_err err;
    char *html;
    size_t len;
    int figs, figs0;
    char dir[256];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    write_file(dir, "probes.json",
               "{\"ci\": \"boot\", \"tasks\": [{\"task\": \"brightness\", \"kind\": \"attribute\", \"model\": "
               "\"brightness 0.6\", \"chance\": 0.5, \"layers\": [{\"layer\": 1, \"n_test\": 10, \"accuracy\": 0.8}]}]}");
    if (report_render(dir, &html, &len, &figs0, &err)) fail_msg("%s", err.msg);
    assert_null(strstr(html, "Attribute probes across edits"));
    assert_null(strstr(html, "attribute_transfer.json"));
    free(html);
    /* 2 hooks x 4 variants; cell (r, c) of hook h = 0.5 + 0.01 * (10 h + 4 r + c) - the diagonal higher */
    rs_sbuf j = {0};
    sb_puts(&j, "{\"ci\": \"nested <boot>\", \"matrices\": [");
    const char *labs = "[\"brightness 0.6\", \"brightness 1.4\", \"redness 1.3\", \"redness_plain 1.3\"]";
    for (int h = 0; h < 2; h++) {
        sb_printf(&j, "%s{\"hook\": \"%s\", \"n_images\": 24, \"rows\": %s, \"cols\": %s, \"values\": [", h ? ", " : "",
                  h ? "vision.ln_post" : "blocks.1.hook_resid_post", labs, labs);
        for (int r = 0; r < 4; r++) {
            sb_puts(&j, r ? ", [" : "[");
            for (int c = 0; c < 4; c++) {
                double v = 0.5 + 0.01 * (10 * h + 4 * r + c) + (r == c ? 0.2 : 0);
                sb_printf(&j, "%s{\"value\": %.4f, \"ci_lo\": %.4f, \"ci_hi\": %.4f}", c ? ", " : "", v, v - 0.1, v + 0.05);
            }
            sb_puts(&j, "]");
        }
        sb_puts(&j, "]}");
    }
    sb_puts(&j, "], \"luminance\": [");
    const char *lum[3][2] = {{"brightness", "0.6"}, {"redness", "1.3"}, {"redness_plain", "1.3"}};
    const double dl[3] = {-0.2, 0.00002, 0.0312}, dy[3] = {-0.15, -0.0123, 0.0456};
    for (int k = 0; k < 3; k++)
        sb_printf(&j, "%s{\"edit\": \"%s\", \"value\": %s, \"d_luma_bt601\": {\"value\": %g, \"ci_lo\": %g, "
                  "\"ci_hi\": %g}, \"d_linear_Y\": {\"value\": %g, \"ci_lo\": %g, \"ci_hi\": %g}, \"n_images\": 24, "
                  "\"definition\": \"d\"}",
                  k ? ", " : "", lum[k][0], lum[k][1], dl[k], dl[k] - 0.001, dl[k] + 0.001, dy[k], dy[k] - 0.002,
                  dy[k] + 0.002);
    sb_puts(&j, "]}");
    write_file(dir, "attribute_transfer.json", j.buf);
    sb_free(&j);
    if (report_render(dir, &html, &len, &figs, &err)) fail_msg("%s", err.msg);
    check_tags(html);
    assert_int_equal(figs, figs0 + 1); /* brightness has 2 strengths; redness and redness_plain 1 each */
    const char *sec = strstr(html, "<h3>Attribute probes across edits</h3>");
    assert_non_null(sec);
    assert_true(sec > strstr(html, "<section id=\"attributes\">"));
    assert_non_null(strstr(sec, "aria-label=\"Dose-response: brightness\""));
    assert_null(strstr(sec, "Dose-response: redness"));
    assert_non_null(strstr(sec, "original vs brightness, by edit strength"));
    assert_non_null(strstr(sec, "dashed: chance (0.5)"));
    assert_non_null(strstr(sec, "n = 24 images (each original and edited)."));
    assert_non_null(strstr(sec, "CI: nested &lt;boot&gt;."));
    assert_non_null(strstr(sec, "<b>redness</b> (the default; <b>redness_luma</b> in runs made before the rename): the red "
                                "channel scaled and green and blue shifted to keep BT.601 luma"));
    assert_non_null(strstr(sec, "<b>redness_plain</b>: the red channel scaled only"));
    /* the luminance table: one row per edit variant with the file's numbers, n, and the sentence */
    const char *lt = strstr(sec, "<caption>Luminance change by edit</caption>");
    assert_non_null(lt);
    assert_non_null(strstr(lt, "<tr><th>Edit</th><th>&Delta;luma BT.601 [95% CI]</th><th>&Delta;Y linear [95% CI]</th>"
                               "<th>n</th></tr>"));
    assert_non_null(strstr(lt, "<tr><th>brightness 0.6</th><td>-0.2000 [-0.2010, -0.1990]</td><td>-0.1500 [-0.1520, "
                               "-0.1480]</td><td>24</td></tr>"));
    assert_non_null(strstr(lt, "<tr><th>redness 1.3</th><td>+0.0000 [-0.0010, +0.0010]</td><td>-0.0123 [-0.0143, "
                               "-0.0103]</td><td>24</td></tr>"));
    assert_non_null(strstr(lt, "<tr><th>redness_plain 1.3</th><td>+0.0312 [+0.0302, +0.0322]</td>"));
    assert_non_null(strstr(lt, "The luminance-controlled redness 1.3 keeps BT.601 luma (&Delta; +0.0000) but not "
                               "linear-light luminance (&Delta;Y -0.0123)."));
    /* the x axis runs over the strengths 0.6 .. 1.4 */
    assert_non_null(strstr(sec, "text-anchor=\"middle\">0.6</text>"));
    assert_non_null(strstr(sec, "text-anchor=\"middle\">1.4</text>"));
    /* tables: one per hook, cells = the file's numbers; diagonal bold, same edit italic */
    assert_int_equal(count(sec, "<table class=\"fdr\"><caption>"), 3); /* 2 hooks + luminance */
    assert_non_null(strstr(sec, "<caption>vision.ln_post (n = 24 images)</caption>"));
    assert_non_null(strstr(sec, "<tr><th>trained on \\ tested on</th><th>brightness 0.6</th><th>brightness 1.4</th>"
                                "<th>redness 1.3</th><th>redness_plain 1.3</th></tr>"));
    /* hook 0, row 0: diag 0.7 [0.6, 0.75]; (0,1) same edit 0.51 [0.41, 0.56]; (0,2) 0.52 [0.42, 0.57] */
    assert_non_null(strstr(sec, "<tr><th>brightness 0.6</th><td><b>0.7 [0.6, 0.75]</b></td><td><i>0.51 [0.41, 0.56]</i>"
                                "</td><td>0.52 [0.42, 0.57]</td><td>0.53 [0.43, 0.58]</td></tr>"));
    /* hook 1 (vision.ln_post), row 3: 0.5 + 0.01 (10 + 12 + c), diagonal + 0.2 */
    const char *t1 = strstr(sec, "<caption>vision.ln_post");
    assert_non_null(strstr(t1, "<tr><th>redness_plain 1.3</th><td>0.72 [0.62, 0.77]</td><td>0.73 [0.63, 0.78]</td>"
                               "<td>0.74 [0.64, 0.79]</td><td><b>0.95 [0.85, 1]</b></td></tr>"));
    free(html);
    /* malformed: cols differ from rows */
    write_file(dir, "attribute_transfer.json",
               "{\"ci\": \"x\", \"matrices\": [{\"hook\": \"h\", \"n_images\": 3, \"rows\": [\"a 1\", \"a 2\"], "
               "\"cols\": [\"a 2\", \"a 1\"], \"values\": [[0.5, 0.5], [0.5, 0.5]]}]}");
    assert_int_equal(report_render(dir, &html, &len, &figs, &err), -1);
    assert_non_null(strstr(err.msg, "attribute_transfer.json: matrices[0]: rows and cols"));
    tu_system("rm -rf '%s'", dir);
}

/* A sweep of more layers than are drawn in detail: histograms for 4 layers spread from the
 * first to the last (7 layers: 0, 2, 4, 6), every layer still on the curves, and a note. */
static void test_layer_sweep_selection(void **state) {
    (void)state;
    rs_err err = {0};
    char dir[256];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    char js[8192] = "{\"ci\": \"test CI\", \"layers\": [";
    for (int l = 0; l < 7; l++) {
        char one[256], name[64];
        snprintf(one, sizeof one,
                 "%s{\"layer\": %d, \"hook\": \"blocks.%d.hook_resid_post\", \"n_rows\": 3, "
                 "\"shift\": {\"cos_raw\": {\"value\": 0.%d, \"ci_lo\": 0.1, \"ci_hi\": 0.9}}}",
                 l ? ", " : "", l, l, l + 1);
        strcat(js, one);
        snprintf(name, sizeof name, "tokens_blocks.%d.hook_resid_post.csv", l);
        write_file(dir, name, "token,cos_raw\na,0.5\nb,0.7\nc,0.9\n");
    }
    strcat(js, "]}");
    write_file(dir, "shift.json", js);
    char *html;
    size_t len;
    int figs;
    if (report_render(dir, &html, &len, &figs, &err)) fail_msg("%s", err.msg);
    for (int l = 0; l < 7; l++) {
        char title[96];
        snprintf(title, sizeof title, "Per-token cosine, blocks.%d.hook_resid_post", l);
        if ((strstr(html, title) != NULL) != (l % 2 == 0)) fail_msg("layer %d histogram shown: %d", l, l % 2 == 0);
    }
    assert_non_null(strstr(html, "shown for 4 of the 7 layers"));
    free(html);
}

/* The FDR table counts and lists every tested metric, also one that the first layer lacks
 * (a hook without an SAE has no feature metrics): 3 tests, 2 of them with q < 0.05. */
static void test_fdr_table_all_metrics(void **state) {
    (void)state;
    char dir[256];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    write_file(dir, "shift.json",
               "{\"ci\": \"95% percentile bootstrap over inputs\", \"layers\": [\n"
               " {\"layer\": 0, \"hook\": \"blocks.0.hook_mlp_out\", \"n_rows\": 50, \"shift\": {\n"
               "   \"cos_raw\": {\"value\": 0.9, \"ci_lo\": 0.8, \"ci_hi\": 0.95, \"p_value\": 0.01, \"q_value\": 0.02}}},\n"
               " {\"layer\": 1, \"hook\": \"blocks.1.hook_resid_post\", \"n_rows\": 50, \"shift\": {\n"
               "   \"cos_raw\": {\"value\": 0.7, \"ci_lo\": 0.6, \"ci_hi\": 0.8, \"p_value\": 0.2, \"q_value\": 0.3},\n"
               "   \"cos_feat\": {\"value\": 0.5, \"ci_lo\": 0.4, \"ci_hi\": 0.6, \"p_value\": 0.001, \"q_value\": 0.003}}}]}\n");
    char *html;
    size_t len;
    int figs;
    rs_err err;
    if (report_render(dir, &html, &len, &figs, &err)) fail_msg("%s", err.msg);
    assert_non_null(strstr(html, "<b>2 of 3</b> tests"));
    assert_non_null(strstr(html, "<td>cos_feat</td><td>1 of 1</td><td>1</td>"));
    assert_non_null(strstr(html, "<td>cos_raw</td><td>1 of 2</td><td>0</td>"));
    free(html);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_fixture),
        cmocka_unit_test(test_hostile_strings_escaped),
        cmocka_unit_test(test_missing_and_malformed),
        cmocka_unit_test(test_vision_probes),
        cmocka_unit_test(test_attribute_transfer),
        cmocka_unit_test(test_paired_probes),
        cmocka_unit_test(test_control_table),
        cmocka_unit_test(test_layer_sweep_selection),
        cmocka_unit_test(test_fdr_table_all_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

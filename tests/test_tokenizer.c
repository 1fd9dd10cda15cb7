/* Gemma tokenizer vs the reference `tokenizers` library (goldens written by
 * tools/reference/gen_tokenizer_goldens.py into tests/fixtures/tokenizer/, from the real
 * tokenizer.json in shared/data/tokenizer; env RS_TOKENIZER_JSON overrides its path). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <zlib.h>

#include "reprshift/fileio.h"
#include "reprshift/tokenizer.h"
#include "testutil.h"

#define FIX "tests/fixtures/tokenizer/"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static char g_tok_path[4096];

static const char *tok_path(void) {
    const char *env = getenv("RS_TOKENIZER_JSON");
    snprintf(g_tok_path, sizeof g_tok_path, "%s", env && *env ? env : tu_shared("data/tokenizer/tokenizer.json"));
    return g_tok_path;
}

/* One tokenizer for the whole run (loading it is the expensive part). */
static rs_tokenizer *g_tok;

static int setup(void **state) {
    (void)state;
    rs_err err = {0};
    double t0 = now_s();
    if (tok_load(&g_tok, tok_path(), &err)) {
        fprintf(stderr, "tok_load failed: %s\n", err.msg);
        return -1;
    }
    printf("[tokenizer] load %s: %.3f s\n", g_tok_path, now_s() - t0);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    tok_free(g_tok);
    return 0;
}

static cJSON *read_jsonl_line(char *line) { return cJSON_Parse(line); }

/* Read a whole JSONL fixture as an array of parsed objects. */
static size_t load_jsonl(const char *path, cJSON ***out) {
    char *text = NULL;
    size_t len = 0;
    rs_err err = {0};
    if (rs_read_file(path, 64u << 20, &text, &len, &err)) fail_msg("%s", err.msg);
    size_t n = 0, cap = 0;
    cJSON **v = NULL;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *j = read_jsonl_line(line);
        if (!j) fail_msg("%s: bad JSON line %zu", path, n + 1);
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            v = realloc(v, cap * sizeof *v);
        }
        v[n++] = j;
    }
    free(text);
    *out = v;
    return n;
}

static void free_jsonl(cJSON **v, size_t n) {
    for (size_t i = 0; i < n; i++) cJSON_Delete(v[i]);
    free(v);
}

static size_t json_ids(const cJSON *arr, int32_t **out) {
    size_t n = (size_t)cJSON_GetArraySize(arr);
    int32_t *ids = malloc((n + 1) * sizeof *ids);
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) ids[i++] = (int32_t)it->valuedouble;
    *out = ids;
    return n;
}

static int ids_equal(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

static void print_ids(const char *label, const int32_t *ids, size_t n) {
    printf("  %s [", label);
    for (size_t i = 0; i < n && i < 40; i++) printf("%s%d", i ? "," : "", ids[i]);
    printf("%s] (%zu)\n", n > 40 ? ",..." : "", n);
}

static size_t hex_decode(const char *hex, char *out) {
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (char)v;
    }
    return n;
}

/* Encode text (with/without bos) and compare with the golden ids; returns 1 if identical. */
static int check_encode(const rs_tokenizer *tok, const char *name, const char *text, size_t len, int bos,
                        const cJSON *golden) {
    int32_t *want, *got = NULL;
    size_t nw = json_ids(golden, &want), ng = 0;
    rs_err err = {0};
    int ok = tok_encode(tok, text, len, bos, &got, &ng, &err) == 0 && ids_equal(want, nw, got, ng);
    if (!ok) {
        printf("MISMATCH %s (bos=%d): %s\n", name, bos, err.msg);
        print_ids("want", want, nw);
        print_ids("got ", got, ng);
    }
    free(want);
    free(got);
    return ok;
}

static int check_decode(const rs_tokenizer *tok, const char *name, const cJSON *ids_json, int skip,
                        const char *want) {
    int32_t *ids;
    size_t n = json_ids(ids_json, &ids), len = 0;
    char *got = NULL;
    rs_err err = {0};
    int ok = tok_decode_ex(tok, ids, n, skip, &got, &len, &err) == 0 && strlen(want) == len && !strcmp(got, want);
    /* cJSON strings stop at NUL: compare up to it when the reference decodes a NUL byte. */
    if (!ok && got && memchr(got, 0, len) && !strcmp(got, want)) ok = 1;
    if (!ok) printf("DECODE MISMATCH %s (skip=%d): %s\n  want \"%s\"\n  got  \"%s\"\n", name, skip, err.msg, want,
                    got ? got : "(null)");
    free(ids);
    free(got);
    return ok;
}

/* ------------------------------------------------------------------------------------ */

static void test_special_ids_and_vocab(void **state) {
    (void)state;
    assert_int_equal(tok_vocab_size(g_tok), 256000);
    assert_int_equal(tok_bos_id(g_tok), 2);
    assert_int_equal(tok_eos_id(g_tok), 1);
    assert_int_equal(tok_pad_id(g_tok), 0);
    assert_int_equal(tok_unk_id(g_tok), 3);
    assert_int_equal(tok_id(g_tok, "<bos>"), 2);
    assert_int_equal(tok_id(g_tok, "<start_of_turn>"), 106);
    assert_int_equal(tok_id(g_tok, "\n"), 108);
    assert_int_equal(tok_id(g_tok, "\xE2\x96\x81"), 235248);
    assert_int_equal(tok_id(g_tok, "<0x00>"), 217);
    assert_int_equal(tok_id(g_tok, "no such piece at all"), -1);
    assert_string_equal(tok_piece(g_tok, 2), "<bos>");
    assert_string_equal(tok_piece(g_tok, 108), "\n");
    assert_null(tok_piece(g_tok, 256000));
    assert_null(tok_piece(g_tok, -1));
}

/* Every COCO caption: ids (with <bos>) identical to tokenizers; decode gives the line back. */
static void test_coco_captions_match_tokenizers(void **state) {
    (void)state;
    TU_NEED_SHARED("data/text/coco_val2017_captions.txt", "the 25,014 COCO val2017 captions");
    char *text = NULL;
    size_t len = 0;
    rs_err err = {0};
    const char *cap_path = tu_shared("data/text/coco_val2017_captions.txt");
    if (rs_read_file(cap_path, 64u << 20, &text, &len, &err)) fail_msg("%s", err.msg);
    gzFile gz = gzopen(FIX "coco_ids.txt.gz", "rb");
    assert_non_null(gz);
    static char gline[1 << 16];
    assert_non_null(gzgets(gz, gline, sizeof gline));
    cJSON *hdr = cJSON_Parse(gline);
    assert_non_null(hdr);
    int n_lines = cJSON_GetObjectItem(hdr, "lines")->valueint;
    int n_rt_ref = cJSON_GetObjectItem(hdr, "decode_skip_special_equals_line")->valueint;
    printf("[tokenizer] golden from tokenizers %s / transformers %s\n",
           cJSON_GetObjectItem(cJSON_GetObjectItem(hdr, "versions"), "tokenizers")->valuestring,
           cJSON_GetObjectItem(cJSON_GetObjectItem(hdr, "versions"), "transformers")->valuestring);

    int checked = 0, identical = 0, roundtrip = 0;
    size_t n_tokens = 0;
    double t_enc = 0, t_dec = 0;
    int32_t want[4096];
    char *p = text, *end = text + len;
    while (p < end && gzgets(gz, gline, sizeof gline)) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
        size_t nw = 0;
        for (char *q = gline, *e; nw < 4096; q = e) {
            long v = strtol(q, &e, 10);
            if (e == q) break;
            want[nw++] = (int32_t)v;
        }
        int32_t *got = NULL;
        size_t ng = 0;
        double t0 = now_s();
        int rc = tok_encode(g_tok, p, ll, 1, &got, &ng, &err);
        t_enc += now_s() - t0;
        assert_int_equal(rc, 0);
        n_tokens += ng;
        if (ids_equal(want, nw, got, ng)) {
            identical++;
        } else if (checked - identical < 5) {
            printf("MISMATCH line %d: %.*s\n", checked + 1, (int)ll, p);
            print_ids("want", want, nw);
            print_ids("got ", got, ng);
        }
        char *dec = NULL;
        size_t dl = 0;
        t0 = now_s();
        rc = tok_decode_ex(g_tok, got, ng, 1, &dec, &dl, &err);
        t_dec += now_s() - t0;
        assert_int_equal(rc, 0);
        if (dl == ll && memcmp(dec, p, ll) == 0) roundtrip++;
        free(dec);
        free(got);
        checked++;
        p += ll + 1;
    }
    gzclose(gz);
    free(text);
    cJSON_Delete(hdr);
    printf("[tokenizer] COCO captions: %d/%d lines identical to tokenizers (%zu tokens); decode round trip "
           "%d (reference %d)\n", identical, checked, n_tokens, roundtrip, n_rt_ref);
    printf("[tokenizer] encode %.3f s (%.0f lines/s, %.2f MB/s), decode %.3f s\n", t_enc, checked / t_enc,
           (double)len / 1e6 / t_enc, t_dec);
    assert_int_equal(checked, n_lines);
    assert_int_equal(identical, checked);
    assert_int_equal(roundtrip, n_rt_ref);
}

/* Hand-made edge cases: ids with and without <bos>, and decode with/without specials. */
static void test_hard_cases_match_tokenizers(void **state) {
    (void)state;
    cJSON **cases;
    size_t n = load_jsonl(FIX "hard_cases.jsonl", &cases), ok_enc = 0, ok_dec = 0;
    for (size_t i = 0; i < n; i++) {
        const cJSON *c = cases[i];
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        const char *hex = cJSON_GetObjectItem(c, "utf8_hex")->valuestring;
        char *text = malloc(strlen(hex) / 2 + 1);
        size_t len = hex_decode(hex, text);
        ok_enc += (size_t)check_encode(g_tok, name, text, len, 1, cJSON_GetObjectItem(c, "ids_bos"));
        ok_enc += (size_t)check_encode(g_tok, name, text, len, 0, cJSON_GetObjectItem(c, "ids"));
        const cJSON *ids = cJSON_GetObjectItem(c, "ids_bos");
        ok_dec += (size_t)check_decode(g_tok, name, ids, 0, cJSON_GetObjectItem(c, "decoded")->valuestring);
        ok_dec += (size_t)check_decode(g_tok, name, ids, 1,
                                       cJSON_GetObjectItem(c, "decoded_skip_special")->valuestring);
        free(text);
    }
    printf("[tokenizer] hard cases: %zu cases, encodes identical %zu/%zu, decodes identical %zu/%zu\n", n, ok_enc,
           2 * n, ok_dec, 2 * n);
    free_jsonl(cases, n);
    assert_true(n >= 400);
    assert_int_equal(ok_enc, 2 * n);
    assert_int_equal(ok_dec, 2 * n);
}

/* 1,000 seeded random strings glued from awkward fragments (special-token pieces, spaces,
 * emoji, rare code points): a differential fuzz against tokenizers. */
static void test_random_cases_match_tokenizers(void **state) {
    (void)state;
    cJSON **cases;
    size_t n = load_jsonl(FIX "random_cases.jsonl", &cases), ok_enc = 0, ok_dec = 0;
    char name[32];
    for (size_t i = 0; i < n; i++) {
        const cJSON *c = cases[i];
        const char *hex = cJSON_GetObjectItem(c, "utf8_hex")->valuestring;
        char *text = malloc(strlen(hex) / 2 + 1);
        size_t len = hex_decode(hex, text);
        snprintf(name, sizeof name, "random_%zu", i);
        ok_enc += (size_t)check_encode(g_tok, name, text, len, 1, cJSON_GetObjectItem(c, "ids_bos"));
        ok_dec += (size_t)check_decode(g_tok, name, cJSON_GetObjectItem(c, "ids_bos"), 0,
                                       cJSON_GetObjectItem(c, "decoded")->valuestring);
        free(text);
    }
    printf("[tokenizer] random cases: encodes identical %zu/%zu, decodes identical %zu/%zu\n", ok_enc, n, ok_dec, n);
    free_jsonl(cases, n);
    assert_true(n >= 1000);
    assert_int_equal(ok_enc, n);
    assert_int_equal(ok_dec, n);
}

/* Decoder on hand-built id sequences: broken byte runs become U+FFFD per byte, etc. */
static void test_decode_cases_match_tokenizers(void **state) {
    (void)state;
    cJSON **cases;
    size_t n = load_jsonl(FIX "decode_cases.jsonl", &cases), ok = 0;
    for (size_t i = 0; i < n; i++) {
        const cJSON *c = cases[i];
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        const cJSON *ids = cJSON_GetObjectItem(c, "ids");
        ok += (size_t)check_decode(g_tok, name, ids, 0, cJSON_GetObjectItem(c, "decoded")->valuestring);
        ok += (size_t)check_decode(g_tok, name, ids, 1, cJSON_GetObjectItem(c, "decoded_skip_special")->valuestring);
    }
    printf("[tokenizer] decode cases: %zu/%zu identical\n", ok, 2 * n);
    free_jsonl(cases, n);
    assert_int_equal(ok, 2 * n);
}

/* PaliGemma tokens added on top of the Gemma vocab: ids and encodings as tokenizers gives. */
static void test_paligemma_added_tokens(void **state) {
    (void)state;
    rs_tokenizer *tok;
    rs_err err = {0};
    if (tok_load(&tok, tok_path(), &err)) fail_msg("%s", err.msg);
    if (tok_add_paligemma_tokens(tok, &err)) fail_msg("%s", err.msg);
    cJSON **cases;
    size_t n = load_jsonl(FIX "paligemma_cases.jsonl", &cases), ok = 0;
    const cJSON *hdr = cases[0];
    assert_int_equal(tok_vocab_size(tok), cJSON_GetObjectItem(hdr, "vocab_size_with_added")->valueint);
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(hdr, "ids")) {
        assert_int_equal(tok_id(tok, it->string), it->valueint);
        assert_string_equal(tok_piece(tok, it->valueint), it->string);
    }
    assert_int_equal(tok_id(tok, "<loc0512>"), 256512);
    assert_int_equal(tok_id(tok, "<seg064>"), 257024 + 64);
    for (size_t i = 1; i < n; i++) {
        const cJSON *c = cases[i];
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        ok += (size_t)check_encode(tok, name, text, strlen(text), 1, cJSON_GetObjectItem(c, "ids_bos"));
        ok += (size_t)check_encode(tok, name, text, strlen(text), 0, cJSON_GetObjectItem(c, "ids"));
        ok += (size_t)check_decode(tok, name, cJSON_GetObjectItem(c, "ids"), 0,
                                   cJSON_GetObjectItem(c, "decoded")->valuestring);
        ok += (size_t)check_decode(tok, name, cJSON_GetObjectItem(c, "ids"), 1,
                                   cJSON_GetObjectItem(c, "decoded_skip_special")->valuestring);
    }
    printf("[tokenizer] PaliGemma cases: %zu/%zu identical\n", ok, 4 * (n - 1));
    assert_int_equal(ok, 4 * (n - 1));
    /* Adding them again changes nothing (same content and flags are ignored). */
    const char *again[] = {"<loc0000>", "<seg127>"};
    size_t n_added = 99;
    assert_int_equal(tok_add_tokens(tok, again, 2, 0, &n_added, &err), 0);
    assert_int_equal(n_added, 0);
    assert_int_equal(tok_vocab_size(tok), 257153);
    free_jsonl(cases, n);
    tok_free(tok);
}

/* Added tokens with lstrip / rstrip / single_word / normalized flags. */
static void test_added_token_flags_match_tokenizers(void **state) {
    (void)state;
    rs_tokenizer *tok;
    rs_err err = {0};
    if (tok_load(&tok, tok_path(), &err)) fail_msg("%s", err.msg);
    cJSON **cases;
    size_t n = load_jsonl(FIX "flag_cases.jsonl", &cases), ok = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(cases[0], "added_tokens")) {
        tok_added_flags f = {cJSON_IsTrue(cJSON_GetObjectItem(it, "special")),
                             cJSON_IsTrue(cJSON_GetObjectItem(it, "normalized")),
                             cJSON_IsTrue(cJSON_GetObjectItem(it, "lstrip")),
                             cJSON_IsTrue(cJSON_GetObjectItem(it, "rstrip")),
                             cJSON_IsTrue(cJSON_GetObjectItem(it, "single_word"))};
        const char *content = cJSON_GetObjectItem(it, "content")->valuestring;
        int32_t id = -1;
        assert_int_equal(tok_add_token_ex(tok, content, &f, &id, &err), 0);
        assert_int_equal(id, cJSON_GetObjectItem(cJSON_GetObjectItem(cases[0], "ids"), content)->valueint);
    }
    for (size_t i = 1; i < n; i++) {
        const cJSON *c = cases[i];
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        ok += (size_t)check_encode(tok, text, text, strlen(text), 0, cJSON_GetObjectItem(c, "ids"));
        ok += (size_t)check_decode(tok, text, cJSON_GetObjectItem(c, "ids"), 0,
                                   cJSON_GetObjectItem(c, "decoded")->valuestring);
        ok += (size_t)check_decode(tok, text, cJSON_GetObjectItem(c, "ids"), 1,
                                   cJSON_GetObjectItem(c, "decoded_skip_special")->valuestring);
    }
    printf("[tokenizer] added-token flag cases: %zu/%zu identical\n", ok, 3 * (n - 1));
    assert_int_equal(ok, 3 * (n - 1));
    free_jsonl(cases, n);
    tok_free(tok);
}

/* ------------------------------------------------------------------------------------ bad input */

static void write_file(const char *path, const char *content) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

/* Loading must fail with a message naming the file and containing `needle`. */
static void expect_load_error(const char *path, const char *needle) {
    rs_tokenizer *tok = (rs_tokenizer *)0x1;
    rs_err err = {0};
    assert_int_equal(tok_load(&tok, path, &err), -1);
    assert_null(tok);
    printf("  error: %s\n", err.msg);
    assert_non_null(strstr(err.msg, path));
    if (!strstr(err.msg, needle)) fail_msg("message \"%s\" lacks \"%s\"", err.msg, needle);
}

static void test_bad_input_errors(void **state) {
    (void)state;
    char dir[1024], p[1100];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    snprintf(p, sizeof p, "%s/missing.json", dir);
    expect_load_error(p, "cannot open");

    snprintf(p, sizeof p, "%s/malformed.json", dir);
    write_file(p, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0,, }}");
    expect_load_error(p, "malformed JSON");

    snprintf(p, sizeof p, "%s/unigram.json", dir);
    write_file(p, "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", -1.0]]}}");
    expect_load_error(p, "only BPE");

    snprintf(p, sizeof p, "%s/novocab.json", dir);
    write_file(p, "{\"model\": {\"type\": \"BPE\", \"merges\": []}}");
    expect_load_error(p, "model.vocab");

    snprintf(p, sizeof p, "%s/nomodel.json", dir);
    write_file(p, "{\"version\": \"1.0\"}");
    expect_load_error(p, "model");

    snprintf(p, sizeof p, "%s/badmerge.json", dir);
    write_file(p, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}");
    expect_load_error(p, "not in model.vocab");

    snprintf(p, sizeof p, "%s/badmerge2.json", dir);
    write_file(p, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a  b\"]}}");
    expect_load_error(p, "one space");

    snprintf(p, sizeof p, "%s/badid.json", dir);
    write_file(p, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -4}, \"merges\": []}}");
    expect_load_error(p, "bad id");

    snprintf(p, sizeof p, "%s/sparse.json", dir);
    write_file(p, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 60000000}, \"merges\": []}}");
    expect_load_error(p, "too sparse");

    snprintf(p, sizeof p, "%s/dupid.json", dir);
    write_file(p, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}}");
    expect_load_error(p, "gives id 0 to both");

    snprintf(p, sizeof p, "%s/badunk.json", dir);
    write_file(p, "{\"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"vocab\": {\"a\": 0}, \"merges\": []}}");
    expect_load_error(p, "unk_token");

    snprintf(p, sizeof p, "%s/metaspace.json", dir);
    write_file(p, "{\"pre_tokenizer\": {\"type\": \"Metaspace\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}");
    expect_load_error(p, "unsupported pre_tokenizer");

    snprintf(p, sizeof p, "%s/nfkc.json", dir);
    write_file(p, "{\"normalizer\": {\"type\": \"NFKC\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}");
    expect_load_error(p, "unsupported normalizer");

    snprintf(p, sizeof p, "%s/array.json", dir);
    write_file(p, "[1, 2, 3]");
    expect_load_error(p, "not a JSON object");

    snprintf(p, sizeof p, "%s/empty.json", dir);
    write_file(p, "");
    expect_load_error(p, "malformed JSON");

    /* Encode/decode errors on a good tokenizer. */
    int32_t *ids = NULL;
    size_t n = 0;
    rs_err err = {0};
    assert_int_equal(tok_encode(g_tok, "ok \xC3\x28 bad", 9, 1, &ids, &n, &err), -1);
    printf("  error: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "UTF-8"));
    assert_null(ids);
    int32_t bad[] = {2, 256000};
    char *out = NULL;
    assert_int_equal(tok_decode(g_tok, bad, 2, &out, &err), -1);
    printf("  error: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "256000"));
    assert_null(out);
}

/* A small hand-written tokenizer.json (fixture) for the paths Gemma does not take: [a, b]
 * merges, unk fusing without byte fallback, Prepend normalizer, Strip decoder, <s>..</s>. */
static void test_tiny_tokenizer_json_matches_tokenizers(void **state) {
    (void)state;
    rs_tokenizer *tok;
    rs_err err = {0};
    if (tok_load(&tok, FIX "tiny_bpe.json", &err)) fail_msg("%s", err.msg);
    assert_int_equal(tok_unk_id(tok), 0);
    cJSON **cases;
    size_t n = load_jsonl(FIX "tiny_cases.jsonl", &cases), ok = 0;
    for (size_t i = 0; i < n; i++) {
        const cJSON *c = cases[i];
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        ok += (size_t)check_encode(tok, text, text, strlen(text), 1, cJSON_GetObjectItem(c, "ids_bos"));
        ok += (size_t)check_encode(tok, text, text, strlen(text), 0, cJSON_GetObjectItem(c, "ids"));
        ok += (size_t)check_decode(tok, text, cJSON_GetObjectItem(c, "ids_bos"), 0,
                                   cJSON_GetObjectItem(c, "decoded")->valuestring);
        ok += (size_t)check_decode(tok, text, cJSON_GetObjectItem(c, "ids_bos"), 1,
                                   cJSON_GetObjectItem(c, "decoded_skip_special")->valuestring);
    }
    printf("[tokenizer] tiny tokenizer cases: %zu/%zu identical\n", ok, 4 * n);
    assert_int_equal(ok, 4 * n);
    free_jsonl(cases, n);
    tok_free(tok);
}

int main(void) {
    const char *env = getenv("RS_TOKENIZER_JSON");
    if (!(env && *env) && !tu_have_shared("data/tokenizer/tokenizer.json", "the 17 MB Gemma tokenizer; or set RS_TOKENIZER_JSON"))
        return TU_SKIP_CODE;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_special_ids_and_vocab),
        cmocka_unit_test(test_coco_captions_match_tokenizers),
        cmocka_unit_test(test_hard_cases_match_tokenizers),
        cmocka_unit_test(test_random_cases_match_tokenizers),
        cmocka_unit_test(test_decode_cases_match_tokenizers),
        cmocka_unit_test(test_paligemma_added_tokens),
        cmocka_unit_test(test_added_token_flags_match_tokenizers),
        cmocka_unit_test(test_bad_input_errors),
        cmocka_unit_test(test_tiny_tokenizer_json_matches_tokenizers),
    };
    return tu_exit(cmocka_run_group_tests(tests, setup, teardown));
}

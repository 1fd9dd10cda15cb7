/* The one way a PaliGemma input is built (used by `reprshift extract` and the `run`
 * pipeline): the prompt segment (pg_prompt_ids) and the image input (pg_inputs_add_image:
 * <image>×N, <bos>, prompt, "\n", suffix, with the token kinds and the prefix length), the
 * text-only input, and the special-token ids extract records. Expected ids are written out
 * by hand from the processor's layout (docs/model-spec.md) and, for the tokenizer case,
 * from `tokenizers` (Tokenizer.from_file(...).encode("caption en\n",
 * add_special_tokens=False) on examples/quickstart/models/paligemma-tiny/tokenizer.json). */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>
#include "store/act_file.h"
#include "reprshift/extract.h"
#include "reprshift/tokenizer.h"

#define FIX "tests/fixtures/models/paligemma-tiny-f32" /* vocab 320, <image> 256, N = 4 */

static void test_image_input_layout(void **state) {
    (void)state;
    paligemma_model *m;
    rs_err err = {0};
    if (paligemma_open(&m, FIX, &err)) fail_msg("%s", err.msg);
    assert_int_equal(m->vision->n_patches, 4);
    int32_t *prompt;
    size_t np;
    const int32_t given[2] = {5, 6};
    /* without a tokenizer the separator is Gemma's "\n" (108) */
    assert_int_equal(pg_prompt_ids(&m->cfg, NULL, NULL, given, 2, &prompt, &np, &err), 0);
    assert_int_equal(np, 3);
    assert_int_equal(prompt[2], 108);
    pg_inputs in = {0};
    const int32_t sfx[2] = {9, 1}; /* a caption token, then <eos> */
    assert_int_equal(pg_inputs_add_image(&in, m, "x.jpg", prompt, np, sfx, 2, "p", "lab", "cap", &err), 0);
    assert_int_equal(pg_inputs_add_image(&in, m, "y.jpg", prompt, np, NULL, 0, NULL, NULL, NULL, &err), 0);
    const int32_t want_ids[10] = {256, 256, 256, 256, 2, 5, 6, 108, 9, 1};
    const uint8_t want_kinds[10] = {PG_TOK_IMAGE, PG_TOK_IMAGE,  PG_TOK_IMAGE, PG_TOK_IMAGE,  PG_TOK_BOS,
                                    PG_TOK_PROMPT, PG_TOK_PROMPT, PG_TOK_SEP,  PG_TOK_SUFFIX, PG_TOK_SPECIAL};
    assert_int_equal(in.n, 2);
    assert_int_equal(in.lens[0], 10);
    assert_memory_equal(in.ids[0], want_ids, sizeof want_ids);
    assert_memory_equal(in.kinds[0], want_kinds, sizeof want_kinds);
    assert_int_equal(in.prefix_len[0], 8);
    assert_string_equal(in.image_paths[0], "x.jpg");
    assert_string_equal(in.texts[0], "p");
    assert_string_equal(in.labels[0], "lab");
    assert_string_equal(in.suffixes[0], "cap");
    assert_int_equal(in.lens[1], 8);
    assert_int_equal(in.prefix_len[1], 8);
    assert_memory_equal(in.ids[1], want_ids, 8 * sizeof(int32_t));
    assert_null(in.suffixes[1]);
    /* a text-only input: plain causal, kinds from the config's special ids */
    const int32_t text[4] = {2, 7, 1, 0};
    assert_int_equal(pg_inputs_add_text(&in, m, text, 4, "t", NULL, &err), 0);
    const uint8_t want_text[4] = {PG_TOK_BOS, PG_TOK_TEXT, PG_TOK_SPECIAL, PG_TOK_SPECIAL};
    assert_memory_equal(in.kinds[2], want_text, 4);
    assert_int_equal(in.prefix_len[2], 0);
    assert_null(in.image_paths[2]);
    const int32_t with_image[3] = {2, 256, 7};
    assert_int_equal(pg_inputs_add_text(&in, m, with_image, 3, NULL, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "<image> token"));
    /* ids that are not text tokens of the model */
    int32_t *bad;
    size_t nb;
    const int32_t img[1] = {256}, big[1] = {320};
    assert_int_equal(pg_prompt_ids(&m->cfg, NULL, NULL, img, 1, &bad, &nb, &err), -1);
    assert_non_null(strstr(err.msg, "not a text token"));
    assert_null(bad);
    assert_int_equal(pg_prompt_ids(&m->cfg, NULL, NULL, big, 1, &bad, &nb, &err), -1);
    assert_non_null(strstr(err.msg, "vocabulary 320"));
    const int32_t bad_sfx[1] = {256};
    int before = in.n;
    assert_int_equal(pg_inputs_add_image(&in, m, "z.jpg", prompt, np, bad_sfx, 1, NULL, NULL, NULL, &err), -1);
    assert_int_equal(in.n, before);
    /* no prompt and no tokenizer */
    assert_int_equal(pg_prompt_ids(&m->cfg, NULL, "caption en", NULL, 0, &bad, &nb, &err), -1);
    free(prompt);
    pg_inputs_free(&in);
    paligemma_close(m);
}

static void test_prompt_from_tokenizer(void **state) {
    (void)state;
    paligemma_config c;
    rs_tokenizer *tok;
    rs_err err = {0};
    if (paligemma_config_load("examples/quickstart/models/paligemma-tiny", &c, &err)) fail_msg("%s", err.msg);
    if (tok_load(&tok, "examples/quickstart/models/paligemma-tiny/tokenizer.json", &err)) fail_msg("%s", err.msg);
    int32_t *ids;
    size_t n;
    assert_int_equal(pg_prompt_ids(&c, tok, "caption en", NULL, 0, &ids, &n, &err), 0);
    const int32_t want[6] = {314, 312, 568, 509, 870, 15};
    assert_int_equal(n, 6);
    assert_memory_equal(ids, want, sizeof want);
    free(ids);
    /* given ids get this tokenizer's "\n" (15 here, not Gemma's 108) */
    const int32_t given[1] = {314};
    assert_int_equal(pg_prompt_ids(&c, tok, NULL, given, 1, &ids, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 314);
    assert_int_equal(ids[1], 15);
    free(ids);
    tok_free(tok);
}

static void test_special_ids(void **state) {
    (void)state;
    gemma2_config c;
    rs_err err = {0};
    memset(&c, 0, sizeof c);
    c.bos_id = 2;
    c.eos_id = 1;
    c.pad_id = 0;
    char buf[48];
    rs_special_ids_format(&c, buf, sizeof buf);
    assert_string_equal(buf, "2,1,0");
    c.bos_id = 7;
    c.eos_id = 107;
    c.pad_id = 3;
    rs_special_ids_format(&c, buf, sizeof buf);
    int32_t ids[3];
    assert_int_equal(rs_special_ids_parse(buf, ids, &err), 0);
    assert_int_equal(ids[0], 7);
    assert_int_equal(ids[1], 107);
    assert_int_equal(ids[2], 3);
    assert_int_equal(rs_special_ids_parse(NULL, ids, &err), 0); /* files written before the key */
    assert_int_equal(ids[0], 2);
    assert_int_equal(ids[1], 1);
    assert_int_equal(ids[2], 0);
    assert_int_equal(rs_special_ids_parse("2,1", ids, &err), -1);
    assert_int_equal(rs_special_ids_parse("x", ids, &err), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_image_input_layout),
        cmocka_unit_test(test_prompt_from_tokenizer),
        cmocka_unit_test(test_special_ids),
    };
    return tu_exit(cmocka_run_group_tests(tests, NULL, NULL));
}

/* The bundled quickstart models: their tokenizers give the ids the `tokenizers` library gave
 * (examples/quickstart/models/tokenizer_check.jsonl, written by
 * tools/reference/gen_quickstart_bundle.py), and both checkpoints open. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "reprshift/fileio.h"
#include "reprshift/gemma2.h"
#include "base/jsonutil.h"
#include "reprshift/paligemma.h"
#include "reprshift/tokenizer.h"

#define DIR "examples/quickstart/models/"

static void test_tokenizer_ids_match_reference(void **state) {
    (void)state;
    rs_err err = {0};
    char *buf;
    assert_int_equal(rs_read_file(DIR "tokenizer_check.jsonl", 1 << 24, &buf, NULL, &err), 0);
    int n = 0;
    for (char *save = NULL, *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *j;
        if (rs_json_parse(line, strlen(line), "tokenizer_check.jsonl", &j, &err)) fail_msg("%s", err.msg);
        char path[512];
        snprintf(path, sizeof path, DIR "%s", cJSON_GetObjectItem(j, "tokenizer")->valuestring);
        rs_tokenizer *tok;
        if (tok_load(&tok, path, &err)) fail_msg("%s", err.msg);
        const char *text = cJSON_GetObjectItem(j, "text")->valuestring;
        int32_t *ids;
        size_t nid;
        if (tok_encode(tok, text, strlen(text), cJSON_IsTrue(cJSON_GetObjectItem(j, "add_bos")), &ids, &nid, &err))
            fail_msg("%s", err.msg);
        cJSON *want = cJSON_GetObjectItem(j, "ids");
        assert_int_equal((int)nid, cJSON_GetArraySize(want));
        for (size_t i = 0; i < nid; i++) assert_int_equal(ids[i], cJSON_GetArrayItem(want, (int)i)->valueint);
        free(ids);
        tok_free(tok);
        cJSON_Delete(j);
        n++;
    }
    free(buf);
    assert_true(n >= 30);
    printf("# %d tokenizer records identical to the tokenizers library\n", n);
}

static void test_models_open(void **state) {
    (void)state;
    rs_err err = {0};
    gemma2_model *g;
    paligemma_model *p;
    if (gemma2_open(&g, DIR "gemma2-tiny", &err)) fail_msg("%s", err.msg);
    if (paligemma_open(&p, DIR "paligemma-tiny", &err)) fail_msg("%s", err.msg);
    assert_int_equal(p->text->cfg.hidden_size, g->cfg.hidden_size);
    assert_int_equal(p->text->cfg.n_layers, g->cfg.n_layers);
    gemma2_close(g);
    paligemma_close(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_tokenizer_ids_match_reference),
                                       cmocka_unit_test(test_models_open)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

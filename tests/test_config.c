/* Experiment config: the example configs load; defaults, {layer} expansion and path
 * resolution are as documented in docs/config.md; unknown keys, wrong types, missing
 * required keys and cross-key mistakes fail with the key path and a suggestion. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reprshift/config.h"
#include "reprshift/image_edit.h"
#include "reprshift/fileio.h"

#define BASE "{\"output_dir\": \"out\", \"models\": {\"llm\": \"m/llm\", \"vlm\": \"/abs/vlm\"}, "
#define DS "\"dataset\": {\"manifest\": \"data/m.csv\"}"

static rs_config *parse_ok(const char *json) {
    rs_config *c = NULL;
    rs_err err = {0};
    if (rs_config_parse(json, "/base/dir", "cfg.json", &c, &err)) fail_msg("%s", err.msg);
    return c;
}

static void expect_error(const char *json, const char *needle1, const char *needle2) {
    rs_config *c = (rs_config *)1;
    rs_err err = {0};
    assert_int_equal(rs_config_parse(json, "/base/dir", "cfg.json", &c, &err), -1);
    assert_null(c);
    if (!strstr(err.msg, "cfg.json") || !strstr(err.msg, needle1) || (needle2 && !strstr(err.msg, needle2)))
        fail_msg("error \"%s\" lacks \"%s\" / \"%s\" or the file name", err.msg, needle1, needle2 ? needle2 : "");
}

static void test_defaults_and_resolution(void **st) {
    (void)st;
    rs_config *c = parse_ok(BASE DS "}");
    assert_string_equal(c->output_dir, "/base/dir/out");
    /* "m/llm" is shaped like a Hub name and /base/dir/m/llm does not exist: kept as the name
     * (resolved in the Hugging Face cache by `run`); a folder beside the config would win */
    assert_string_equal(c->llm, "m/llm");
    assert_string_equal(c->vlm, "/abs/vlm");
    assert_null(c->tokenizer);
    assert_string_equal(c->dataset.manifest, "/base/dir/data/m.csv");
    assert_string_equal(c->name, "experiment");
    assert_string_equal(c->prompt, "caption en");
    assert_string_equal(c->pool, "mean");
    assert_int_equal(c->batch_tokens, 2048);
    assert_int_equal(c->n_layers, 1);
    assert_int_equal(c->layers[0], 12);
    assert_int_equal(c->n_hooks, 1);
    assert_string_equal(c->hooks[0], "blocks.12.hook_resid_post");
    assert_int_equal(c->has_saes, 0);
    assert_int_equal(c->dataset.n_per_group, 50);
    assert_int_equal(c->dataset.n_groups, 4);
    assert_string_equal(c->dataset.groups[3].name, "indoor");
    assert_string_equal(c->dataset.groups[3].supercategories[4], "indoor");
    assert_null(c->dataset.groups[3].supercategories[5]);
    assert_true(c->dataset.frac_train == 0.7 && c->dataset.frac_val == 0.15 && c->dataset.frac_test == 0.15);
    assert_int_equal(c->dataset.captions_per_image, 1);
    assert_true(c->dataset.use_text && c->dataset.use_images);
    assert_int_equal(c->n_edits, 0);
    assert_int_equal(c->probes.n_which, 9);
    assert_int_equal(c->probes.n_C, 9);
    assert_true(c->probes.C[0] == 1e-4 && c->probes.C[8] == 1e4);
    assert_int_equal(c->probes.folds, 5);
    /* the dump holds every default and parses back to the same config */
    char *dump = cJSON_Print(c->resolved);
    assert_non_null(strstr(dump, "\"n_per_group\":\t50"));
    rs_config *c2 = parse_ok(dump);
    assert_string_equal(c2->hooks[0], c->hooks[0]);
    assert_string_equal(c2->output_dir, c->output_dir); /* absolute now: not re-resolved */
    rs_config_free(c2);
    free(dump);
    rs_config_free(c);
}

static void test_layers_hooks_saes_edits(void **st) {
    (void)st;
    rs_config *c = parse_ok(BASE "\"layers\": [6, 12], \"hooks\": [\"blocks.{layer}.hook_resid_post\", "
                                 "\"ln_final.hook_normalized\", \"blocks.{layer}.hook_mlp_out\"], "
                                 "\"saes\": {\"path\": \"sae/L{layer}/params.npz\", \"hook\": \"blocks.{layer}.hook_resid_post\"}, "
                                 "\"edits\": [{\"name\": \"blur\", \"values\": 2}], "
                                 "\"dataset\": {\"instances\": \"i.json\", \"captions\": [\"c.json\"], \"images\": \"img\","
                                 " \"groups\": {\"a\": \"animal\", \"v\": [\"vehicle\", \"outdoor\"]}, "
                                 "\"split\": {\"train\": 0.5, \"val\": 0.25, \"test\": 0.25}}}");
    assert_int_equal(c->n_hooks, 5);
    assert_string_equal(c->hooks[0], "blocks.6.hook_resid_post");
    assert_string_equal(c->hooks[1], "blocks.12.hook_resid_post");
    assert_string_equal(c->hooks[2], "ln_final.hook_normalized");
    assert_string_equal(c->hooks[4], "blocks.12.hook_mlp_out");
    char *p = rs_config_sae_path(c, 12);
    assert_string_equal(p, "/base/dir/sae/L12/params.npz");
    free(p);
    p = rs_config_sae_hook(c, 6);
    assert_string_equal(p, "blocks.6.hook_resid_post");
    free(p);
    assert_int_equal(c->sae_ce_convention, 0); /* saes.ce_convention default: sae-lens */
    assert_int_equal(c->n_edits, 1);
    assert_int_equal(c->edits[0].n_values, 1);
    assert_true(c->edits[0].values[0] == 2.0);
    assert_int_equal(c->dataset.n_instances, 1);
    assert_string_equal(c->dataset.instances[0], "/base/dir/i.json");
    assert_string_equal(c->dataset.images[0], "/base/dir/img");
    assert_int_equal(c->dataset.n_groups, 2);
    assert_string_equal(c->dataset.groups[0].supercategories[0], "animal");
    assert_string_equal(c->dataset.groups[1].supercategories[1], "outdoor");
    coco_sample_opts o;
    rs_config_sample_opts(c, &o);
    assert_int_equal(o.n_groups, 2);
    assert_true(o.frac_train == 0.5 && o.frac_val == 0.25);
    rs_config_free(c);
}

static void test_unknown_keys_suggest(void **st) {
    (void)st;
    expect_error(BASE "\"dataset\": {\"manifest\": \"m.csv\", \"n_per_grup\": 5}}", "unknown key 'dataset.n_per_grup'",
                 "did you mean 'dataset.n_per_group'?");
    expect_error(BASE DS ", \"modles\": {}}", "unknown key 'modles'", "did you mean 'models'?");
    expect_error(BASE DS ", \"probes\": {\"flods\": 3}}", "'probes.flods'", "'probes.folds'");
    expect_error(BASE DS ", \"edits\": [{\"name\": \"blur\", \"vals\": [1]}]}", "'edits[0].vals'", "'edits[0].values'");
    expect_error(BASE DS ", \"zzzzzz\": 1}", "unknown key 'zzzzzz' (valid keys: name, output_dir", NULL);
    expect_error(BASE DS ", \"pool\": \"maen\"}", "'pool': unknown value \"maen\"", "did you mean \"mean\"?");
    expect_error(BASE DS ", \"edits\": [{\"name\": \"brigthness\", \"values\": [1.2]}]}",
                 "'edits[0].name': unknown edit \"brigthness\"", "did you mean \"brightness\"?");
    /* edit names: redness_luma is an alias of redness (so both together are one edit twice);
       an unknown name far from all lists the valid ones, redness_plain and the alias included */
    expect_error(BASE DS ", \"edits\": [{\"name\": \"redness\", \"values\": [1.2]}, {\"name\": \"redness_luma\", "
                 "\"values\": [1.3]}]}",
                 "'edits[1]': edit \"redness_luma\" is listed twice", NULL);
    expect_error(BASE DS ", \"edits\": [{\"name\": \"qqqqqqqqqqqq\", \"values\": [1.2]}]}",
                 "unknown edit \"qqqqqqqqqqqq\" (valid: brightness, contrast, saturation, redness, redness_plain, blur, "
                 "rotate, redness_luma (old name of redness))", NULL);
    expect_error(BASE DS ", \"edits\": [{\"name\": \"redness_plain\", \"values\": [-1]}]}",
                 "'edits[0].values[0]'", ">= 0");
    expect_error(BASE DS ", \"probes\": {\"which\": [\"concept\", \"redness\", \"rednes\"]}}",
                 "'probes.which[2]'", "did you mean \"redness\"?");
    expect_error(BASE DS ", \"name\": \"a\", \"name\": \"b\"}", "duplicate key 'name'", NULL);
    /* keys starting with _ are comments */
    rs_config *c = parse_ok(BASE DS ", \"_comment\": [1, 2]}");
    rs_config_free(c);
}

static void test_vision_hooks(void **st) {
    (void)st;
    rs_config *c = parse_ok(BASE DS "}");
    assert_int_equal(c->n_vision_hooks, 0); /* default: none */
    assert_non_null(c->vision_hooks);
    assert_null(c->vision_hooks[0]);
    char *dump = cJSON_PrintUnformatted(c->resolved);
    assert_non_null(strstr(dump, "\"vision_hooks\":[]"));
    free(dump);
    rs_config_free(c);
    c = parse_ok(BASE DS ", \"vision_hooks\": [\"vision.ln_post\", \"projector.hook_out\"]}");
    assert_int_equal(c->n_vision_hooks, 2);
    assert_string_equal(c->vision_hooks[0], "vision.ln_post");
    assert_string_equal(c->vision_hooks[1], "projector.hook_out");
    assert_int_equal(c->n_hooks, 1); /* the decoder hooks are unchanged */
    rs_config_free(c);
    c = parse_ok(BASE DS ", \"vision_hooks\": \"vision.ln_post\"}"); /* a single value is a list of one */
    assert_int_equal(c->n_vision_hooks, 1);
    rs_config_free(c);
    expect_error(BASE DS ", \"vision_hook\": [\"vision.ln_post\"]}", "unknown key 'vision_hook'",
                 "did you mean 'vision_hooks'?");
    expect_error(BASE DS ", \"vision_hooks\": [\"vision.ln_post\", 3]}", "'vision_hooks[1]' must be a string", NULL);
}

static void test_wrong_types(void **st) {
    (void)st;
    expect_error(BASE "\"dataset\": {\"manifest\": \"m.csv\", \"n_per_group\": \"50\"}}",
                 "'dataset.n_per_group' must be an integer in [1, 1000000000], got a string", NULL);
    expect_error(BASE "\"dataset\": {\"manifest\": \"m.csv\", \"n_per_group\": 2.5}}",
                 "'dataset.n_per_group' must be an integer", "got 2.5");
    expect_error(BASE "\"dataset\": {\"manifest\": \"m.csv\", \"allow_fewer\": \"yes\"}}",
                 "'dataset.allow_fewer' must be true or false, got a string", NULL);
    expect_error(BASE DS ", \"layers\": [1, 1.5]}", "'layers[1]' must be an integer", NULL);
    expect_error(BASE DS ", \"layers\": []}", "'layers' must have at least 1 item", NULL);
    expect_error("{\"output_dir\": \"o\", \"models\": 3, " DS "}", "'models' must be an object, got a number", NULL);
    expect_error(BASE DS ", \"hooks\": [\"a\", 3]}", "'hooks[1]' must be a string, got a number", NULL);
    expect_error(BASE DS ", \"edits\": {\"name\": \"blur\"}}", "'edits' must be a list of objects, got an object", NULL);
    expect_error(BASE DS ", \"probes\": {\"C\": [1, -1]}}", "'probes.C[1]' must be a number in", NULL);
    expect_error(BASE "\"dataset\": {\"manifest\": \"m.csv\", \"split\": {\"train\": 1.5}}}",
                 "'dataset.split.train' must be a number in [0, 1], got 1.5", NULL);
    expect_error(BASE "\"dataset\": {\"manifest\": \"m.csv\", \"groups\": {\"a\": 3}}}",
                 "'dataset.groups.a' must be a string or a list of strings, got a number", NULL);
    expect_error("[1]", "must be a JSON object, got an array", NULL);
    expect_error("{\"output_dir\": ", "cfg.json", NULL); /* malformed JSON */
}

static void test_missing_and_cross_checks(void **st) {
    (void)st;
    expect_error("{\"models\": {\"llm\": \"a\", \"vlm\": \"b\"}, " DS "}", "missing required key 'output_dir'", NULL);
    expect_error("{\"output_dir\": \"o\", \"models\": {\"vlm\": \"b\"}, " DS "}", "missing required key 'models.llm'",
                 NULL);
    expect_error(BASE "\"layers\": [1]}", "missing required key 'dataset'", NULL);
    expect_error(BASE "\"dataset\": {}}", "'dataset' needs 'instances'", NULL);
    expect_error(BASE "\"dataset\": {\"manifest\": \"m.csv\", \"split\": {\"train\": 0.8}}}",
                 "'dataset.split' fractions must sum to 1", NULL);
    expect_error(BASE "\"dataset\": {\"instances\": [\"a\", \"b\"], \"captions\": [\"c\"], \"images\": [\"x\", \"y\"]}}",
                 "'dataset.captions' has 1 entries but 'dataset.instances' has 2", NULL);
    expect_error(BASE "\"dataset\": {\"instances\": [\"a\"], \"images\": [\"x\"]}}", "'dataset.captions' is required",
                 NULL);
    expect_error(BASE "\"dataset\": {\"manifest\": \"m\", \"instances\": [\"a\"]}}", "give one or the other", NULL);
    expect_error(BASE "\"dataset\": {\"manifest\": \"m\", \"groups\": {\"a\": [\"animal\"], \"b\": [\"animal\"]}}}",
                 "\"animal\" is in both 'dataset.groups.a' and 'dataset.groups.b'", NULL);
    expect_error(BASE "\"dataset\": {\"manifest\": \"m\", \"exclude_supercategories\": [\"food\"]}}",
                 "\"food\" is both in 'dataset.groups.food'", NULL);
    expect_error(BASE DS ", \"layers\": [3, 4], \"saes\": {\"path\": \"sae.npz\"}}", "'saes.path' has no {layer}", NULL);
    expect_error(BASE DS ", \"saes\": {\"hook\": \"x\"}}", "missing required key 'saes.path'", NULL);
    expect_error(BASE DS ", \"saes\": {\"path\": \"sae.npz\", \"ce_convention\": \"gemma-scope\"}}", "reprshift-v1", NULL);
    rs_config *v1 = parse_ok(BASE DS ", \"saes\": {\"path\": \"sae.npz\", \"ce_convention\": \"reprshift-v1\"}}");
    assert_int_equal(v1->sae_ce_convention, 1);
    rs_config_free(v1);
    expect_error(BASE DS ", \"edits\": [{\"name\": \"blur\", \"values\": [-1]}]}", "'edits[0].values[0]'", ">= 0");
    expect_error(BASE DS ", \"edits\": [{\"name\": \"blur\", \"values\": [1]}, {\"name\": \"blur\", \"values\": [2]}]}",
                 "listed twice", NULL);
    expect_error(BASE DS ", \"layers\": [3, 3]}", "'layers' lists 3 twice", NULL);
}

static void test_examples_load(void **st) {
    (void)st;
    const char *files[] = {"examples/quickstart.json", "examples/gemma2-2b_vs_paligemma2-3b.json"};
    for (int i = 0; i < 2; i++) {
        rs_config *c = NULL;
        rs_err err = {0};
        if (rs_config_load(files[i], &c, &err)) fail_msg("%s", err.msg);
        assert_string_equal(c->path, files[i]);
        /* the real-weights example names its models by Hub name (docs/config.md) */
        if (i == 0) assert_non_null(strstr(c->llm, "examples/"));
        else assert_string_equal(c->llm, "google/gemma-2-2b");
        rs_config_free(c);
    }
    rs_config *c = NULL;
    rs_err err = {0};
    assert_int_equal(rs_config_load("examples/nope.json", &c, &err), -1);
    assert_non_null(strstr(err.msg, "nope.json"));
}

static void test_suggestion_helper(void **st) {
    (void)st;
    assert_int_equal(rs_edit_distance("kitten", "sitting"), 3);
    assert_int_equal(rs_edit_distance("", "abc"), 3);
    assert_int_equal(rs_edit_distance("same", "same"), 0);
    assert_int_equal(rs_edit_distance("flods", "folds"), 1); /* transposition */
    assert_int_equal(rs_edit_distance("ca", "abc"), 3);      /* OSA, not unrestricted Damerau (2) */
    const char *c[] = {"n_per_group", "seed", "split"};
    assert_string_equal(rs_nearest("n_per_grop", c, 3), "n_per_group");
    assert_string_equal(rs_nearest("sed", c, 3), "seed");
    assert_null(rs_nearest("completely_different", c, 3));
}

/* docs/config.md holds the table generated from the schema (kept in sync) */
static void test_docs_match_schema(void **st) {
    (void)st;
    char *gen = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&gen, &len);
    rs_config_schema_markdown(f);
    fclose(f);
    char *doc;
    size_t dlen;
    rs_err err = {0};
    if (rs_read_file("docs/config.md", 1 << 20, &doc, &dlen, &err)) fail_msg("%s", err.msg);
    if (!strstr(doc, gen))
        fail_msg("docs/config.md is out of date: regenerate its key table with `reprshift config schema`");
    free(doc);
    free(gen);
}

/* redness_luma (the old name of the luminance-controlled redness) and redness_plain parse;
 * the alias is the same edit kind as redness. */
static void test_redness_names(void **st) {
    (void)st;
    rs_config *c = parse_ok(BASE DS ", \"edits\": [{\"name\": \"redness_luma\", \"values\": [1.3]}, "
                                    "{\"name\": \"redness_plain\", \"values\": [1.3]}]}");
    assert_int_equal(c->n_edits, 2);
    rs_edit a, b, r;
    rs_err err;
    char spec[64];
    snprintf(spec, sizeof spec, "%s=1.3", c->edits[0].name);
    assert_int_equal(rs_edit_parse(spec, &a, &err), 0);
    snprintf(spec, sizeof spec, "%s=1.3", c->edits[1].name);
    assert_int_equal(rs_edit_parse(spec, &b, &err), 0);
    assert_int_equal(rs_edit_parse("redness=1.3", &r, &err), 0);
    assert_int_equal(a.kind, r.kind);
    assert_int_equal(a.kind, RS_EDIT_REDNESS);
    assert_int_equal(b.kind, RS_EDIT_REDNESS_PLAIN);
    rs_config_free(c);
}

/* models.precision: absent = fp32 (the resolved dump gains no key), "bf16" parses, anything
 * else is refused naming the choices. */
static void test_precision(void **st) {
    (void)st;
    rs_config *c = parse_ok(BASE DS "}");
    assert_int_equal(c->precision, RS_PREC_FP32);
    char *dump = cJSON_Print(c->resolved);
    assert_null(strstr(dump, "precision"));
    free(dump);
    rs_config_free(c);
    c = parse_ok("{\"output_dir\": \"out\", \"models\": {\"llm\": \"m/llm\", \"vlm\": \"/abs/vlm\", "
                 "\"precision\": \"bf16\"}, " DS "}");
    assert_int_equal(c->precision, RS_PREC_BF16);
    rs_config_free(c);
    c = parse_ok("{\"output_dir\": \"out\", \"models\": {\"llm\": \"m/llm\", \"vlm\": \"/abs/vlm\", "
                 "\"precision\": \"fp32\"}, " DS "}");
    assert_int_equal(c->precision, RS_PREC_FP32);
    rs_config_free(c);
    expect_error("{\"output_dir\": \"out\", \"models\": {\"llm\": \"m/llm\", \"vlm\": \"/abs/vlm\", "
                 "\"precision\": \"fp16\"}, " DS "}", "models.precision", "bf16");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_resolution),
        cmocka_unit_test(test_layers_hooks_saes_edits),
        cmocka_unit_test(test_redness_names),
        cmocka_unit_test(test_vision_hooks),
        cmocka_unit_test(test_unknown_keys_suggest),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_missing_and_cross_checks),
        cmocka_unit_test(test_examples_load),
        cmocka_unit_test(test_suggestion_helper),
        cmocka_unit_test(test_docs_match_schema),
        cmocka_unit_test(test_precision),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

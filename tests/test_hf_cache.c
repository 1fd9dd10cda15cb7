/* Hub names and SAE names resolved in a Hugging Face cache.
 * References: tests/fixtures/hf_cache was written by huggingface_hub 2.4.0's own
 * snapshot_download / hf_hub_download (tools/reference/gen_hf_cache.py, served from a local
 * Hub mock); tests/fixtures/hf_cache_expected.json holds the folders that huggingface_hub's
 * offline look-up (snapshot_download(local_files_only=True)) and hf_hub_download returned, and
 * the value of huggingface_hub.constants.HF_HUB_CACHE under 18 environment settings. SAE
 * facts (paths, Neuronpedia ids) are those of sae-lens 6.54.12's pretrained_saes.yaml. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "reprshift/fileio.h"
#include "reprshift/gemma2.h"
#include "reprshift/hf_cache.h"
#include "reprshift/sae.h"
#include "reprshift/sae_registry.h"
#include "reprshift/safetensors.h"
#include "testutil.h"

#define CACHE "tests/fixtures/hf_cache"
#define REPO "tiny-org/gemma2-tiny"

static cJSON *EXPECTED;

static const char *ENV_VARS[] = {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME", "FOO",
                                 "NOT_SET_ANYWHERE", NULL};

static void clear_env(void) {
    for (const char **v = ENV_VARS; *v; v++) unsetenv(*v);
}

/* expected[key] = [commit, path relative to the cache] */
static void expected_path(const char *key, char *commit, char *path, size_t cap) {
    cJSON *r = cJSON_GetObjectItem(cJSON_GetObjectItem(EXPECTED, "resolved"), key);
    assert_non_null(r);
    snprintf(commit, 41 + 1, "%s", cJSON_GetArrayItem(r, 0)->valuestring);
    snprintf(path, cap, "%s/%s", CACHE, cJSON_GetArrayItem(r, 1)->valuestring);
}

static void test_cache_dir_matches_huggingface_hub(void **st) {
    (void)st;
    const char *home = getenv("HOME");
    char *saved_home = home ? strdup(home) : NULL;
    setenv("HOME", cJSON_GetObjectItem(EXPECTED, "home")->valuestring, 1);
    int n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(EXPECTED, "env_cases")) {
        clear_env();
        const cJSON *v;
        cJSON_ArrayForEach(v, cJSON_GetObjectItem(c, "env")) setenv(v->string, v->valuestring, 1);
        char *got = rs_hf_hub_cache_dir();
        const char *want = cJSON_GetObjectItem(c, "HF_HUB_CACHE")->valuestring;
        if (!got || strcmp(got, want)) {
            char *env = cJSON_PrintUnformatted(cJSON_GetObjectItem(c, "env"));
            fail_msg("env %s: got '%s', huggingface_hub gives '%s'", env, got ? got : "(null)", want);
        }
        free(got);
        n++;
    }
    assert_int_equal(n, 18);
    clear_env();
    if (saved_home) setenv("HOME", saved_home, 1);
    free(saved_home);
}

static void test_snapshot_revisions(void **st) {
    (void)st;
    char commit[64], want[512];
    char *got = NULL;
    rs_err err = {0};
    /* default revision = main (refs/main), the sharded checkpoint */
    expected_path("tiny-org/gemma2-tiny@main", commit, want, sizeof want);
    if (rs_hf_snapshot_dir(REPO, NULL, CACHE, &got, &err)) fail_msg("%s", err.msg);
    assert_string_equal(got, want);
    free(got);
    /* a branch under refs/ */
    expected_path("tiny-org/gemma2-tiny@f16", commit, want, sizeof want);
    if (rs_hf_snapshot_dir(REPO, "f16", CACHE, &got, &err)) fail_msg("%s", err.msg);
    assert_string_equal(got, want);
    free(got);
    /* a commit hash goes straight to snapshots/ */
    if (rs_hf_snapshot_dir(REPO, commit, CACHE, &got, &err)) fail_msg("%s", err.msg);
    assert_string_equal(got, want);
    free(got);
}

static void test_sharded_snapshot_is_symlinks_and_loads(void **st) {
    (void)st;
    char commit[64], dir[512];
    expected_path("tiny-org/gemma2-tiny@main", commit, dir, sizeof dir);
    /* the snapshot's files are symlinks into blobs/, as huggingface_hub writes them */
    char p[700], link[300];
    snprintf(p, sizeof p, "%s/model-00003-of-00007.safetensors", dir);
    struct stat sb;
    assert_int_equal(lstat(p, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    ssize_t n = readlink(p, link, sizeof link - 1);
    assert_true(n > 0);
    link[n] = 0;
    assert_non_null(strstr(link, "../../blobs/"));
    /* resolved through the environment, the index and its 7 shards load */
    clear_env();
    setenv("HF_HUB_CACHE", CACHE, 1);
    char *got = NULL;
    rs_err err = {0};
    if (rs_hf_resolve_model(REPO, NULL, &got, &err)) fail_msg("%s", err.msg);
    assert_string_equal(got, dir);
    st_set *s = NULL;
    char *idx = rs_path_join(got, "model.safetensors.index.json");
    if (st_open(&s, idx, &err)) fail_msg("%s", err.msg);
    assert_int_equal(s->n_shards, 7);
    st_close(s);
    free(idx);
    gemma2_model *m = NULL;
    if (gemma2_open(&m, got, &err)) fail_msg("%s", err.msg);
    /* tests/fixtures/models/gemma2-tiny-bf16/config.json: hidden 48, 5 layers */
    assert_int_equal(m->cfg.hidden_size, 48);
    assert_int_equal(m->cfg.n_layers, 5);
    gemma2_close(m);
    free(got);
    /* the second revision is the single-file f16 checkpoint (hidden 32, 3 layers) */
    if (rs_hf_resolve_model(REPO, "f16", &got, &err)) fail_msg("%s", err.msg);
    if (gemma2_open(&m, got, &err)) fail_msg("%s", err.msg);
    assert_int_equal(m->cfg.hidden_size, 32);
    assert_int_equal(m->cfg.n_layers, 3);
    gemma2_close(m);
    free(got);
    clear_env();
}

static void expect_err(int rc, const rs_err *err, const char *needle) {
    assert_int_equal(rc, -1);
    if (!strstr(err->msg, needle)) fail_msg("message '%s' lacks '%s'", err->msg, needle);
}

static void test_errors(void **st) {
    (void)st;
    char *got = NULL;
    rs_err err = {0};
    clear_env();
    setenv("HF_HUB_CACHE", CACHE, 1);
    expect_err(rs_hf_resolve_model("tiny-org/not-there", NULL, &got, &err), &err,
               "download it with `huggingface-cli download tiny-org/not-there`");
    assert_non_null(strstr(err.msg, "looked for " CACHE "/models--tiny-org--not-there"));
    assert_non_null(strstr(err.msg, "from HF_HUB_CACHE"));
    assert_null(got);
    expect_err(rs_hf_resolve_model(REPO, "v9", &got, &err), &err,
               "`huggingface-cli download tiny-org/gemma2-tiny --revision v9`");
    assert_non_null(strstr(err.msg, "refs/v9"));
    expect_err(rs_hf_resolve_model(REPO, "0123456789abcdef0123456789abcdef01234567", &got, &err), &err,
               "snapshots/0123456789abcdef0123456789abcdef01234567");
    expect_err(rs_hf_resolve_model(REPO, "../../etc", &got, &err), &err, "invalid revision");
    expect_err(rs_hf_resolve_model("no/such/thing", NULL, &got, &err), &err, "model folder not found");
    /* a folder is a folder; --revision then makes no sense */
    if (rs_hf_resolve_model("tests/fixtures/models/gemma2-tiny-f16", NULL, &got, &err)) fail_msg("%s", err.msg);
    assert_string_equal(got, "tests/fixtures/models/gemma2-tiny-f16");
    free(got);
    expect_err(rs_hf_resolve_model("tests/fixtures/models/gemma2-tiny-f16", "main", &got, &err), &err,
               "not to a folder");
    assert_true(rs_hf_is_repo_id("google/gemma-2-2b"));
    assert_false(rs_hf_is_repo_id("gemma-2-2b"));
    assert_false(rs_hf_is_repo_id("a/b/c"));
    assert_false(rs_hf_is_repo_id("../x"));
    assert_false(rs_hf_is_repo_id("a/.."));
    clear_env();
}

/* Facts of sae-lens's pretrained_saes.yaml (gemma-scope-2b-pt-res[-canonical]). */
static void test_registry_facts(void **st) {
    (void)st;
    const rs_sae_entry *e = rs_sae_registry_find("gemma-scope-2b-pt-res-canonical/layer_12/width_16k/canonical");
    assert_non_null(e);
    assert_string_equal(e->repo_id, "google/gemma-scope-2b-pt-res");
    assert_string_equal(e->path, "layer_12/width_16k/average_l0_82");
    assert_string_equal(e->neuronpedia, "gemma-2-2b/12-gemmascope-res-16k");
    assert_string_equal(e->hook_name, "blocks.12.hook_resid_post");
    assert_int_equal(e->d_sae, 16384);
    e = rs_sae_registry_find("gemma-scope-2b-pt-res-canonical/layer_20/width_65k/canonical");
    assert_non_null(e);
    assert_string_equal(e->path, "layer_20/width_65k/average_l0_114");
    assert_string_equal(e->neuronpedia, "gemma-2-2b/20-gemmascope-res-65k");
    assert_int_equal(e->d_sae, 65536);
    e = rs_sae_registry_find("gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_176/params.npz");
    assert_non_null(e);
    assert_string_equal(e->neuronpedia, "gemma-2-2b/12-gemmascope-res-16k__l0-176");
    /* the per-L0 id with the canonical's file gets the canonical's Neuronpedia id */
    e = rs_sae_registry_find("gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_82");
    assert_non_null(e);
    assert_string_equal(e->neuronpedia, "gemma-2-2b/12-gemmascope-res-16k");
    assert_int_equal(e->np_from_canonical, 1);
    /* 16k/65k only; 26 layers × 2 widths canonical + 135 + 135 per-L0 */
    assert_null(rs_sae_registry_find("gemma-scope-2b-pt-res-canonical/layer_12/width_1m/canonical"));
    assert_int_equal(rs_sae_registry_count(), 52 + 270);
    char url[200];
    assert_string_equal(rs_neuronpedia_url("gemma-2-2b/12-gemmascope-res-16k", 7421, url, sizeof url),
                        "https://www.neuronpedia.org/gemma-2-2b/12-gemmascope-res-16k/7421");
    assert_string_equal(rs_neuronpedia_url(NULL, 7421, url, sizeof url), "");
}

static void test_sae_by_name(void **st) {
    (void)st;
    char commit[64], want[512];
    expected_path("google/gemma-scope-2b-pt-res@main", commit, want, sizeof want);
    clear_env();
    setenv("HF_HUB_CACHE", CACHE, 1);
    char *path = NULL;
    const rs_sae_entry *e = NULL;
    rs_err err = {0};
    const char *name = "gemma-scope-2b-pt-res-canonical/layer_3/width_16k/canonical";
    if (rs_sae_resolve(name, &path, &e, &err)) fail_msg("%s", err.msg);
    assert_string_equal(path, want);
    assert_non_null(e);
    free(path);
    rs_sae *s = NULL;
    if (sae_load(&s, name, NULL, &err)) fail_msg("%s", err.msg);
    assert_string_equal(s->sae_name, name);
    assert_string_equal(s->neuronpedia, "gemma-2-2b/3-gemmascope-res-16k");
    assert_string_equal(s->hook_name, "blocks.3.hook_resid_post");
    assert_string_equal(s->path, want);
    sae_free(s);
    /* a path is a path: no name, no Neuronpedia id */
    if (sae_load(&s, "tests/fixtures/sae/gemma-scope-2b-pt-res/layer_3/width_128/average_l0_5", NULL, &err))
        fail_msg("%s", err.msg);
    assert_null(s->sae_name);
    assert_null(s->neuronpedia);
    sae_free(s);
    /* known release, unknown id: close ids suggested */
    expect_err(rs_sae_resolve("gemma-scope-2b-pt-res-canonical/layer_3/width_16k/canonicl", &path, &e, &err), &err,
               "like: layer_3/width_16k/canonical");
    /* listed but not downloaded: the download command for the one file */
    expect_err(rs_sae_resolve("gemma-scope-2b-pt-res-canonical/layer_12/width_65k/canonical", &path, &e, &err), &err,
               "`huggingface-cli download google/gemma-scope-2b-pt-res layer_12/width_65k/average_l0_72/params.npz`");
    /* no cache at all */
    setenv("HF_HUB_CACHE", "/nonexistent-hf-cache", 1);
    expect_err(rs_sae_resolve(name, &path, &e, &err), &err, "/nonexistent-hf-cache/models--google--gemma-scope-2b-pt-res");
    clear_env();
}

int main(void) {
    char *txt;
    rs_err err = {0};
    if (rs_read_file("tests/fixtures/hf_cache_expected.json", 1 << 20, &txt, NULL, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    EXPECTED = cJSON_Parse(txt);
    free(txt);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_dir_matches_huggingface_hub),
        cmocka_unit_test(test_snapshot_revisions),
        cmocka_unit_test(test_sharded_snapshot_is_symlinks_and_loads),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_registry_facts),
        cmocka_unit_test(test_sae_by_name),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    cJSON_Delete(EXPECTED);
    return tu_exit(failed);
}

/* Malformed-input suite, library half: every row of tests/malformed/cases.tsv whose
 * command is "lib:<loader>" is loaded with that library call, which must fail (-1), leave
 * its output empty, and give a one-line message naming the file and containing the row's
 * keyword, with error kind RS_EFORMAT. (Rows with a CLI command are run by tests/cli_malformed.sh.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "testutil.h"
#include "reprshift/coco.h"
#include "io/csv.h"
#include "reprshift/image.h"
#include "reprshift/manifest.h"
#include "reprshift/model_config.h"
#include "io/npz.h"
#include "reprshift/sae.h"
#include "reprshift/safetensors.h"
#include "reprshift/tokenizer.h"

#define CASES "tests/malformed/cases.tsv"

/* Run one loader on path; returns its status and leaves the message in err. */
static int load(const char *loader, const char *path, rs_err *err) {
    int rc;
    if (!strcmp(loader, "npy")) {
        npy_array a;
        memset(&a, 0, sizeof a);
        rc = npy_load(path, (size_t)1 << 30, &a, err);
        assert_true(rc != 0 || a.data);
        npy_array_clear(&a);
    } else if (!strcmp(loader, "npz")) {
        npz_file *z = NULL;
        rc = npz_open(&z, path, 0, err);
        if (rc) assert_null(z);
        npz_close(z);
    } else if (!strcmp(loader, "image")) {
        rs_image img;
        memset(&img, 0, sizeof img);
        rc = rs_image_load(path, &img, err);
        if (rc) assert_null(img.rgb);
        rs_image_free(&img);
    } else if (!strcmp(loader, "manifest")) {
        rs_manifest *m = NULL;
        rc = rs_manifest_load(path, &m, err);
        if (rc) assert_null(m);
        rs_manifest_free(m);
    } else if (!strcmp(loader, "csv")) {
        rs_csv *t = NULL;
        rc = rs_csv_load(path, (size_t)1 << 30, &t, err);
        if (rc) assert_null(t);
        rs_csv_free(t);
    } else if (!strcmp(loader, "coco")) {
        coco_data *d = NULL;
        rc = coco_load(path, &d, err);
        if (rc) assert_null(d);
        coco_free(d);
    } else if (!strcmp(loader, "sae")) {
        rs_sae *s = NULL;
        rc = sae_load(&s, path, NULL, err);
        if (rc) assert_null(s);
        sae_free(s);
    } else if (!strcmp(loader, "st")) {
        st_set *s = NULL;
        rc = st_open(&s, path, err);
        if (rc) assert_null(s);
        st_close(s);
    } else if (!strcmp(loader, "tok")) {
        rs_tokenizer *t = NULL;
        rc = tok_load(&t, path, err);
        if (rc) assert_null(t);
        tok_free(t);
    } else if (!strcmp(loader, "gemma2_config")) {
        gemma2_config c;
        rc = gemma2_config_load(path, &c, err);
    } else {
        fail_msg("%s: unknown loader '%s'", CASES, loader);
        return 0;
    }
    return rc;
}

static void test_malformed_files_fail_cleanly(void **state) {
    (void)state;
    FILE *f = fopen(CASES, "r");
    assert_non_null(f);
    char line[1024];
    int n_lib = 0, n_all = 0, n_bad = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0] || line[0] == '#') continue;
        char *file = strtok(line, "\t"), *cmd = strtok(NULL, "\t"), *kw = strtok(NULL, "\t");
        assert_non_null(file);
        assert_non_null(cmd);
        assert_non_null(kw);
        n_all++;
        if (strncmp(cmd, "lib:", 4)) continue;
        n_lib++;
        char path[512];
        snprintf(path, sizeof path, "tests/malformed/%s", file);
        rs_err err;
        rs_err_clear(&err);
        int rc = load(cmd + 4, path, &err);
        const char *why = rc == 0                       ? "was accepted"
                          : !err.msg[0]                 ? "gave no message"
                          : strchr(err.msg, '\n')       ? "message is not one line"
                          : !strstr(err.msg, file)      ? "message does not name the file"
                          : !strcasestr(err.msg, kw)    ? "message lacks the keyword"
                          : err.kind != RS_EFORMAT      ? "error kind is not EFORMAT"
                                                        : NULL;
        if (why) {
            n_bad++;
            printf("FAIL %s (%s, keyword '%s'): %s: [%s] %s\n", file, cmd, kw, why, rs_err_kind_name(err.kind), err.msg);
        } else if (getenv("RS_MALFORMED_VERBOSE")) {
            printf("ok   %-36s %s\n", file, err.msg);
        }
    }
    fclose(f);
    printf("malformed suite: %d cases in %s, %d through the library here, %d failed\n", n_all, CASES, n_lib,
           n_bad);
    assert_true(n_lib >= 20);
    assert_int_equal(n_bad, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed_files_fail_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

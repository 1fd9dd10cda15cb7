/* Activation store: write/read round trip against the synthetic generator's values,
 * resume = byte-identical, spec/lock/order/schema errors, damaged and incomplete stores,
 * simulated disk full (RLIMIT_FSIZE in a child) and `reprshift extract` output read as a
 * one-shard store. */
#include "testutil.h"
#include "test_store_synth.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/act_file.h"
#include "reprshift/extract.h"
#include "base/jsonutil.h"

#define N_IN 23
#define SHARD 4

static char *dup_tmpdir(void) { return strdup(tu_tmpdir()); }

static char *sub(const char *dir, const char *name) { return rs_path_join(dir, name); }

static void check_contents(const char *path, int expect_shards) {
    rs_err err;
    store_reader *r;
    if (store_reader_open(&r, path, &err)) fail_msg("%s", err.msg);
    assert_int_equal(store_reader_n_shards(r), expect_shards);
    float *h0, *h1;
    int64_t rows, re, rows1, re1, n_in;
    assert_int_equal(store_read_f32(r, "blocks.0.hook_resid_post", &h0, &rows, &re, &err), 0);
    assert_int_equal(store_read_f32(r, "blocks.1.hook_mlp_out", &h1, &rows1, &re1, &err), 0);
    int32_t *ids;
    int64_t rid, reid;
    assert_int_equal(store_read_raw(r, "token_ids", RS_DT_I32, (void **)&ids, &rid, &reid, &err), 0);
    int64_t *off;
    assert_int_equal(store_read_offsets(r, "offsets", &off, &n_in, &err), 0);
    assert_int_equal(n_in, N_IN);
    assert_int_equal(re, SYN_W0);
    assert_int_equal(re1, SYN_H1 * SYN_W1);
    int64_t row = 0;
    for (int64_t i = 0; i < N_IN; i++) {
        assert_int_equal(off[i], row);
        for (int64_t t = 0; t < syn_len(i); t++, row++) {
            assert_int_equal(ids[row], i * 10 + t);
            for (int c = 0; c < SYN_W0; c++) assert_true(h0[row * SYN_W0 + c] == syn_val(i, t, c));
            for (int c = 0; c < SYN_H1 * SYN_W1; c++) assert_true(h1[row * re1 + c] == -syn_val(i, t, c + 100));
        }
    }
    assert_int_equal(off[N_IN], row);
    assert_int_equal(rows, row);
    assert_int_equal(rows1, row);
    assert_int_equal(rid, row);
    /* asking for the wrong integer dtype is an error naming the tensor */
    void *bad;
    assert_int_equal(store_read_raw(r, "token_ids", RS_DT_I64, &bad, &rid, &reid, &err), -1);
    assert_non_null(strstr(err.msg, "token_ids"));
    free(h1), free(ids), free(off);
    free(h0);
    h0 = NULL;
    assert_int_equal(store_read_f32(r, "nope", &h0, &rows, &re, &err) == -1 && strstr(err.msg, "nope") != NULL, 1);
    assert_null(h0);
    store_reader_close(r);
}

static void test_roundtrip_and_resume(void **state) {
    (void)state;
    rs_err err;
    char *ref = dup_tmpdir(), *res = dup_tmpdir();
    if (syn_write_store(ref, N_IN, SHARD, &err)) fail_msg("%s", err.msg);
    check_contents(ref, 6);
    char *idx = sub(ref, "index.json");
    check_contents(idx, 6); /* the index path works too */
    /* the shards are plain safetensors with the row index beside them */
    char *s0 = sub(ref, "shard-00000.safetensors"), *r0 = sub(ref, "shard-00000.rows.jsonl");
    st_set *set;
    assert_int_equal(st_open(&set, s0, &err), 0);
    assert_string_equal(st_meta(set, "first_input"), "0");
    assert_non_null(st_get(set, "blocks.0.hook_resid_post"));
    st_close(set);
    assert_true(rs_path_exists(r0));

    /* resume: three shards, close, reopen and finish = same bytes as uninterrupted */
    store_spec sp = syn_spec(N_IN, SHARD);
    rs_store *st;
    assert_int_equal(store_open(&st, res, &sp, &err), 0);
    for (int k = 0; k < 3; k++) assert_int_equal(syn_append(st, &sp, k, &err), 0);
    store_close(st);
    assert_int_equal(store_open(&st, res, &sp, &err), 0);
    assert_int_equal(store_next_input(st), 3 * SHARD);
    assert_int_equal(store_next_shard(st), 3);
    assert_false(store_is_complete(st));
    store_close(st);
    if (syn_write_store(res, N_IN, SHARD, &err)) fail_msg("%s", err.msg);
    assert_int_equal(syn_dirs_identical(ref, res), 0);
    /* stopped before the first shard (the index lists no tensors yet), reopened and finished:
       the same bytes, and the empty schema loaded from the index is not leaked (ASan) */
    char *early = dup_tmpdir();
    assert_int_equal(store_open(&st, early, &sp, &err), 0);
    store_close(st);
    assert_int_equal(store_open(&st, early, &sp, &err), 0);
    assert_int_equal(store_next_shard(st), 0);
    assert_int_equal(syn_append(st, &sp, 0, &err), 0);
    store_close(st);
    if (syn_write_store(early, N_IN, SHARD, &err)) fail_msg("%s", err.msg);
    assert_int_equal(syn_dirs_identical(ref, early), 0);
    tu_system("rm -rf '%s'", early);
    free(early);
    /* re-running a finished store changes nothing */
    if (syn_write_store(res, N_IN, SHARD, &err)) fail_msg("%s", err.msg);
    assert_int_equal(syn_dirs_identical(ref, res), 0);
    tu_system("rm -rf '%s' '%s'", ref, res);
    free(ref), free(res), free(idx), free(s0), free(r0);
}

static void test_writer_errors(void **state) {
    (void)state;
    rs_err err;
    char *dir = dup_tmpdir();
    store_spec sp = syn_spec(N_IN, SHARD);
    rs_store *st, *st2;
    assert_int_equal(store_open(&st, dir, &sp, &err), 0);
    /* a second writer is refused while the first holds the lock */
    assert_int_equal(store_open(&st2, dir, &sp, &err), -1);
    assert_non_null(strstr(err.msg, "in use"));
    /* out of order */
    assert_int_equal(syn_append(st, &sp, 1, &err), -1);
    assert_non_null(strstr(err.msg, "out of order"));
    assert_int_equal(syn_append(st, &sp, 0, &err), 0);
    /* schema change: a tensor missing */
    float x[SYN_W0] = {0};
    store_tensor one = {.name = "blocks.0.hook_resid_post", .dtype = RS_DT_F32, .ndim = 2, .shape = {1, SYN_W0}, .data = x};
    assert_int_equal(store_append_shard(st, 1, &one, 1, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "1 tensors, earlier shards 4"));
    /* finalize too early */
    assert_int_equal(store_finalize(st, &err), -1);
    assert_non_null(strstr(err.msg, "1 of 6 shards"));
    store_close(st);
    /* spec mismatch names the field */
    store_spec other = sp;
    other.manifest_hash = "crc32:12345678";
    assert_int_equal(store_open(&st, dir, &other, &err), -1);
    assert_non_null(strstr(err.msg, "manifest_hash"));
    other = sp;
    other.shard_inputs = 5;
    assert_int_equal(store_open(&st, dir, &other, &err), -1);
    assert_non_null(strstr(err.msg, "shard_inputs"));
    /* incomplete store cannot be read */
    store_reader *r;
    assert_int_equal(store_reader_open(&r, dir, &err), -1);
    assert_non_null(strstr(err.msg, "incomplete (1 of 6 shards)"));
    /* a directory with foreign files is not taken over */
    char *foreign = dup_tmpdir();
    tu_system("touch '%s/notes.txt'", foreign);
    assert_int_equal(store_open(&st, foreign, &sp, &err), -1);
    assert_non_null(strstr(err.msg, "notes.txt"));
    tu_system("rm -rf '%s' '%s'", dir, foreign);
    free(dir), free(foreign);
}

static void test_damaged(void **state) {
    (void)state;
    rs_err err;
    char *dir = dup_tmpdir();
    if (syn_write_store(dir, N_IN, SHARD, &err)) fail_msg("%s", err.msg);
    store_reader *r;
    /* flip one data byte of shard 2: crc32 mismatch */
    char *s2 = sub(dir, "shard-00002.safetensors");
    FILE *f = fopen(s2, "r+b");
    assert_non_null(f);
    fseek(f, -3, SEEK_END);
    int c = fgetc(f);
    fseek(f, -3, SEEK_END);
    fputc(c ^ 0x40, f);
    fclose(f);
    assert_int_equal(store_reader_open(&r, dir, &err), -1);
    assert_non_null(strstr(err.msg, "shard-00002.safetensors: crc32"));
    /* truncated index.json */
    char *ip = sub(dir, "index.json");
    tu_system("truncate -s 100 '%s'", ip);
    assert_int_equal(store_reader_open(&r, dir, &err), -1);
    assert_non_null(strstr(err.msg, "index.json"));
    assert_non_null(strstr(err.msg, "malformed JSON"));
    /* a plausible index whose shard list is longer than the spec allows */
    tu_system("printf '{\"format\":\"reprshift-activation-store\",\"version\":1,\"complete\":true,"
              "\"spec\":{\"model\":\"m\",\"hooks\":\"h\",\"pooling\":\"none\",\"manifest_hash\":\"x\","
              "\"n_inputs\":1,\"shard_inputs\":1},\"tensors\":[],\"shards\":[]}' > '%s'", ip);
    assert_int_equal(store_reader_open(&r, dir, &err), -1);
    assert_non_null(strstr(err.msg, "marked complete but lists 0 of 1 shards"));
    /* not a store */
    char *empty = dup_tmpdir();
    assert_int_equal(store_reader_open(&r, empty, &err), -1);
    assert_non_null(strstr(err.msg, "not an activation store"));
    tu_system("rm -rf '%s' '%s'", dir, empty);
    free(dir), free(s2), free(ip), free(empty);
}

/* Child: write the store with a file-size limit; report the error text through a pipe. */
static void disk_full_child(const char *dir, rlim_t limit, int fd) {
    signal(SIGXFSZ, SIG_IGN); /* the write then fails with EFBIG instead of killing us */
    struct rlimit rl = {limit, limit};
    setrlimit(RLIMIT_FSIZE, &rl);
    rs_err err;
    int rc = syn_write_store(dir, N_IN, SHARD, &err);
    if (rc) {
        ssize_t w = write(fd, err.msg, strlen(err.msg));
        (void)w;
    }
    _exit(rc ? 3 : 0);
}

static void test_disk_full(void **state) {
    (void)state;
    rs_err err;
    char *ref = dup_tmpdir(), *dir = dup_tmpdir();
    if (syn_write_store(ref, N_IN, SHARD, &err)) fail_msg("%s", err.msg);
    /* Limit below the biggest shard but above the first ones, so the write fails midway. */
    int64_t b0, bmax = 0;
    uint32_t crc;
    char *s0 = sub(ref, "shard-00000.safetensors");
    assert_int_equal(store_file_crc32(s0, &crc, &b0, &err), 0);
    for (int k = 0; k < 6; k++) {
        char name[64];
        snprintf(name, sizeof name, "%s/shard-%05d.safetensors", ref, k);
        int64_t b;
        assert_int_equal(store_file_crc32(name, &crc, &b, &err), 0);
        if (b > bmax) bmax = b;
    }
    assert_true(b0 < bmax);
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        disk_full_child(dir, (rlim_t)(bmax - 1), p[1]);
    }
    close(p[1]);
    char msg[2048] = {0};
    ssize_t got = read(p[0], msg, sizeof msg - 1);
    (void)got;
    close(p[0]);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 3);
    printf("disk-full error: %s\n", msg);
    assert_non_null(strstr(msg, "write failed"));
    assert_non_null(strstr(msg, ".safetensors"));
    /* nothing complete-looking: no temp files, index not complete, reader refuses */
    int n;
    char **names = syn_list(dir, &n);
    for (int i = 0; i < n; i++) assert_null(strstr(names[i], ".tmp."));
    syn_list_free(names, n);
    store_reader *r;
    assert_int_equal(store_reader_open(&r, dir, &err), -1);
    assert_non_null(strstr(err.msg, "incomplete"));
    /* re-run without the limit recovers to the same bytes */
    if (syn_write_store(dir, N_IN, SHARD, &err)) fail_msg("%s", err.msg);
    assert_int_equal(syn_dirs_identical(ref, dir), 0);
    tu_system("rm -rf '%s' '%s'", ref, dir);
    free(ref), free(dir), free(s0);
}

/* `reprshift extract` output (extract_save) read through the store reader. */
static void test_extract_file_as_store(void **state) {
    (void)state;
    rs_err err;
    char *dir = dup_tmpdir();
    char *path = sub(dir, "acts.safetensors");
    enum { NI = 3, W = 4 };
    int64_t offsets[NI + 1] = {0, 2, 5, 6};
    int32_t ids[6] = {2, 10, 2, 11, 12, 2};
    float data[6 * W];
    for (int i = 0; i < 6 * W; i++) data[i] = (float)i * 0.5f - 3.0f;
    char names[1][96] = {"blocks.1.hook_resid_post"};
    int widths[1] = {W};
    float *dp[1] = {data};
    extract_result res = {.n_hooks = 1, .names = names, .widths = widths, .data = dp, .rows = 6,
                          .n_inputs = NI, .token_ids = ids, .offsets = offsets, .pool = POOL_NONE};
    rs_inputs in = {0};
    for (int i = 0; i < NI; i++)
        assert_int_equal(rs_inputs_add(&in, ids + offsets[i], offsets[i + 1] - offsets[i], "t", &err), 0);
    if (extract_save(&res, &in, path, NULL, &err)) fail_msg("%s", err.msg);
    rs_inputs_free(&in);
    store_reader *r;
    if (store_reader_open(&r, path, &err)) fail_msg("%s", err.msg);
    assert_int_equal(store_reader_n_shards(r), 1);
    assert_non_null(store_reader_rows_path(r, 0));
    assert_non_null(strstr(store_reader_rows_path(r, 0), "acts.safetensors.rows.jsonl"));
    float *x;
    int64_t rows, re, n_in, *off;
    assert_int_equal(store_read_f32(r, "blocks.1.hook_resid_post", &x, &rows, &re, &err), 0);
    assert_int_equal(rows, 6);
    assert_int_equal(re, W);
    assert_memory_equal(x, data, sizeof data);
    assert_int_equal(store_read_offsets(r, "offsets", &off, &n_in, &err), 0);
    assert_int_equal(n_in, NI);
    assert_memory_equal(off, offsets, sizeof offsets);
    free(x), free(off);
    store_reader_close(r);
    tu_system("rm -rf '%s'", dir);
    free(dir), free(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_and_resume),
        cmocka_unit_test(test_writer_errors),
        cmocka_unit_test(test_damaged),
        cmocka_unit_test(test_disk_full),
        cmocka_unit_test(test_extract_file_as_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

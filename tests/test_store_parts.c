/* Store parts (docs/store.md "Parts", docs/cluster.md): three parts written in any order,
 * one interrupted and resumed, merged → the directory is byte-identical to a single writer's
 * (same file names, index.json, shards, row files); every refusal of store_open_part and
 * store_merge_parts (another N, a part held twice, a shard listed twice, a part for another
 * spec, a missing or resized shard, parts of two splits), with nothing written; stale parts
 * removed; a merged store reopened by the reader. */
#include "testutil.h"
#include "test_store_synth.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define N_IN 23
#define SHARD 3 /* 8 shards */
#define NSH 8

static const int OWNER[NSH] = {0, 1, 2, 0, 1, 2, 2, 0}; /* task of each shard */

static char *sub(const char *dir, const char *name) { return rs_path_join(dir, name); }

/* Shards of part p (in `OWNER`), into ks; returns the count. */
static int64_t owned(int p, int64_t *ks) {
    int64_t n = 0;
    for (int64_t k = 0; k < NSH; k++)
        if (OWNER[k] == p) ks[n++] = k;
    return n;
}

/* Write part p of 3 (all its shards, last first, or only `limit` of them). */
static void write_part(const char *dir, int p, int limit) {
    store_spec sp = syn_spec(N_IN, SHARD);
    int64_t ks[NSH], n = owned(p, ks);
    rs_store *st = NULL;
    rs_err err = {0};
    assert_int_equal(store_open_part(&st, dir, &sp, p, 3, ks, n, &err), 0);
    int written = 0;
    for (int64_t q = n - 1; q >= 0 && written != limit; q--) {
        if (store_part_has(st, ks[q])) continue;
        assert_int_equal(syn_append(st, &sp, ks[q], &err), 0);
        written++;
    }
    store_close(st);
}

static void expect_merge_error(const char *dir, const int *owner, int n_parts, const char *needle) {
    store_spec sp = syn_spec(N_IN, SHARD);
    rs_err err = {0};
    assert_int_equal(store_merge_parts(dir, &sp, owner, n_parts, 0, &err), -1);
    if (!strstr(err.msg, needle)) fail_msg("error \"%s\" lacks \"%s\"", err.msg, needle);
    char *ip = sub(dir, "index.json");
    assert_false(rs_path_exists(ip)); /* nothing written */
    free(ip);
}

static void test_merge_identical(void **state) {
    (void)state;
    char *base = strdup(tu_tmpdir()), *one = sub(base, "one"), *par = sub(base, "parts");
    rs_err err = {0};
    assert_int_equal(syn_write_store(one, N_IN, SHARD, &err), 0);
    write_part(par, 2, -1);
    write_part(par, 0, 1); /* killed after one shard ... */
    {
        store_spec sp = syn_spec(N_IN, SHARD);
        int64_t ks[NSH], n = owned(0, ks);
        rs_store *st = NULL;
        assert_int_equal(store_open_part(&st, par, &sp, 0, 3, ks, n, &err), 0);
        assert_int_equal(store_part_remaining(st), 2);
        assert_true(store_part_has(st, 7));
        assert_false(store_part_has(st, 0));
        /* a shard it does not own, or owns and has written: refused */
        assert_int_equal(syn_append(st, &sp, 1, &err), -1);
        assert_non_null(strstr(err.msg, "not a shard part 0 of 3 still has to write"));
        assert_int_equal(syn_append(st, &sp, 7, &err), -1);
        assert_int_equal(store_finalize(st, &err), -1);
        store_close(st);
    }
    /* a merge before the parts are complete names each missing shard by its task */
    expect_merge_error(par, OWNER, 3, "4 of 8 shards not written: task 0 of 3 (rerun it): shard 0, 3; task 1 of 3 "
                                      "(rerun it): shard 1, 4");
    write_part(par, 0, -1); /* ... and resumed */
    write_part(par, 1, -1);
    store_spec sp = syn_spec(N_IN, SHARD);
    assert_int_equal(store_merge_parts(par, &sp, OWNER, 3, 1, &err), 0); /* check only: nothing changes */
    char *ip = sub(par, "index.json");
    assert_false(rs_path_exists(ip));
    assert_int_equal(store_merge_parts(par, &sp, OWNER, 3, 0, &err), 0);
    assert_int_equal(syn_dirs_identical(one, par), 0);
    /* merged again: nothing to do; the reader opens it */
    assert_int_equal(store_merge_parts(par, &sp, NULL, 0, 0, &err), 0);
    assert_int_equal(syn_dirs_identical(one, par), 0);
    store_reader *r = NULL;
    assert_int_equal(store_reader_open(&r, par, &err), 0);
    store_reader_close(r);
    free(ip);
    free(one);
    free(par);
    free(base);
}

static void test_refusals(void **state) {
    (void)state;
    char *base = strdup(tu_tmpdir()), *d = sub(base, "p");
    store_spec sp = syn_spec(N_IN, SHARD);
    rs_err err = {0};
    int64_t ks[NSH], n = owned(1, ks);
    rs_store *a = NULL, *b = NULL;
    /* no part at all */
    expect_merge_error(d, OWNER, 3, "(the store folder is missing): task 0 of 3 (rerun it): shard 0, 3, 7");
    /* the same part twice at once */
    assert_int_equal(store_open_part(&a, d, &sp, 1, 3, ks, n, &err), 0);
    assert_int_equal(store_open_part(&b, d, &sp, 1, 3, ks, n, &err), -1);
    assert_non_null(strstr(err.msg, "part 1 of 3 is being written by another process"));
    /* the merge while a task writes */
    expect_merge_error(d, OWNER, 3, "task 1 of 3 is still writing its part");
    store_close(a);
    /* another N */
    int64_t k0 = 0;
    assert_int_equal(store_open_part(&b, d, &sp, 0, 4, &k0, 1, &err), -1);
    assert_non_null(strstr(err.msg, "a part of a split into 3 tasks, but this task is one of 4"));
    assert_int_equal(store_parts_check(d, 3, &err), 0);
    assert_int_equal(store_parts_check(d, 4, &err), -1);
    /* bad part arguments */
    assert_int_equal(store_open_part(&b, d, &sp, 3, 3, &k0, 1, &err), -1);
    int64_t dup[2] = {4, 4};
    assert_int_equal(store_open_part(&b, d, &sp, 1, 3, dup, 2, &err), -1);
    assert_non_null(strstr(err.msg, "repeated or outside"));
    /* another spec for an existing part */
    store_spec other = sp;
    other.manifest_hash = "crc32:other";
    assert_int_equal(store_open_part(&b, d, &other, 1, 3, ks, n, &err), -1);
    assert_non_null(strstr(err.msg, "manifest_hash"));
    /* complete parts, then break them one way at a time */
    write_part(d, 0, -1);
    write_part(d, 1, -1);
    write_part(d, 2, -1);
    char *p1 = sub(d, "part-00001-of-00003.json"), *keep = sub(base, "keep.json");
    char *s4 = sub(d, "shard-00004.safetensors");
    /* a part for other inputs */
    {
        char *buf = NULL, *o;
        size_t len;
        assert_int_equal(rs_read_file(p1, 1 << 20, &buf, &len, &err), 0);
        assert_int_equal(rename(p1, keep), 0);
        assert_non_null(o = strstr(buf, "crc32:0badf00d"));
        memcpy(o, "crc32:0badf00e", 14);
        FILE *f = fopen(p1, "wb");
        fwrite(buf, 1, len, f);
        fclose(f);
        free(buf);
        expect_merge_error(d, OWNER, 3, "part-00001-of-00003.json (task 1 of 3) was written for other inputs");
        /* stale parts are removed, the others kept */
        assert_int_equal(store_parts_remove_stale(d, "crc32:0badf00d"), 1);
        assert_false(rs_path_exists(p1));
        expect_merge_error(d, OWNER, 3, "task 1 of 3 (rerun it): shard 1, 4");
        assert_int_equal(rename(keep, p1), 0);
    }
    /* a shard resized after its task wrote it */
    {
        struct stat st;
        assert_int_equal(stat(s4, &st), 0);
        assert_int_equal(truncate(s4, st.st_size - 1), 0);
        expect_merge_error(d, OWNER, 3, "shard-00004.safetensors is missing or changed size since task 1 of 3 wrote it");
        rs_store *b2 = NULL; /* the part lists it: reopening the part refuses too */
        int64_t k1s[NSH], n1 = owned(1, k1s);
        assert_int_equal(store_open_part(&b2, d, &sp, 1, 3, k1s, n1, &err), -1);
        assert_non_null(strstr(err.msg, "shard-00004.safetensors, which is missing or changed size"));
    }
    free(base);
    free(d);
    free(p1);
    free(keep);
    free(s4);
}

static void test_two_splits_and_overlap(void **state) {
    (void)state;
    char *base = strdup(tu_tmpdir()), *d = sub(base, "p");
    store_spec sp = syn_spec(N_IN, SHARD);
    rs_err err = {0};
    write_part(d, 0, -1);
    write_part(d, 1, -1);
    write_part(d, 2, -1);
    /* a part of 4 beside parts of 3 (renamed in: store_open_part would refuse) */
    char *from = sub(d, "part-00002-of-00003.json"), *to = sub(d, "part-00003-of-00004.json");
    assert_int_equal(rename(from, to), 0);
    expect_merge_error(d, NULL, 0, "parts of two splits: part-00000-of-00003.json and part-00003-of-00004.json");
    expect_merge_error(d, NULL, 3, "parts of two splits");
    assert_int_equal(rename(to, from), 0);
    /* the merge expects the tasks' N */
    expect_merge_error(d, NULL, 4, "a part of a split into 3 tasks, the run's tasks were 4");
    /* a shard listed by two parts (overlapping --shard specs) */
    char *e = sub(base, "e");
    int64_t k01[2] = {0, 1}, k1[1] = {1}, krest[6] = {2, 3, 4, 5, 6, 7};
    rs_store *a = NULL;
    assert_int_equal(store_open_part(&a, e, &sp, 0, 3, k01, 2, &err), 0);
    assert_int_equal(syn_append(a, &sp, 0, &err), 0);
    assert_int_equal(syn_append(a, &sp, 1, &err), 0);
    store_close(a);
    assert_int_equal(store_open_part(&a, e, &sp, 1, 3, k1, 1, &err), 0);
    assert_int_equal(syn_append(a, &sp, 1, &err), 0);
    store_close(a);
    assert_int_equal(store_open_part(&a, e, &sp, 2, 3, krest, 6, &err), 0);
    for (int i = 0; i < 6; i++) assert_int_equal(syn_append(a, &sp, krest[i], &err), 0);
    store_close(a);
    expect_merge_error(e, NULL, 3, "shard-00001.safetensors is listed by two parts, part-00000-of-00003.json and "
                                   "part-00001-of-00003.json (overlapping --shard specs)");
    free(e);
    free(from);
    free(to);
    free(d);
    free(base);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_identical),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_two_splits_and_overlap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Resumability under SIGKILL: a child process writes a store of many small shards and is
 * killed after a pseudo-random delay, 20 times over the same directory; then one run
 * finishes it. The result must be byte-identical (same file names, same bytes) to a store
 * written without interruption, the index must never lose shards between kills, and no
 * interrupted state may be readable as a finished store. Seed: env RS_KILL_SEED. */
#include "testutil.h"
#include "test_store_synth.h"

#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/jsonutil.h"

#define N_IN 600
#define SHARD 2
#define KILLS 20

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Shards listed in dir/index.json (-1: no index yet), temp files present. */
static int64_t listed_shards(const char *dir, int *n_tmp) {
    int n;
    char **names = syn_list(dir, &n);
    *n_tmp = 0;
    for (int i = 0; i < n; i++) *n_tmp += strstr(names[i], ".tmp.") != NULL;
    syn_list_free(names, n);
    char *ip = rs_path_join(dir, "index.json");
    cJSON *j;
    rs_err err;
    int64_t k = -1;
    if (rs_path_exists(ip)) {
        if (rs_json_load(ip, 1u << 26, &j, &err)) fail_msg("index unreadable after kill: %s", err.msg);
        k = cJSON_GetArraySize(cJSON_GetObjectItem(j, "shards"));
        cJSON_Delete(j);
    }
    free(ip);
    return k;
}

static void test_kill_and_resume(void **state) {
    (void)state;
    rs_err err;
    char *ref = strdup(tu_tmpdir()), *dir = strdup(tu_tmpdir());
    double t0 = now_s();
    if (syn_write_store(ref, N_IN, SHARD, &err)) fail_msg("%s", err.msg);
    double full = now_s() - t0;
    const char *seed_env = getenv("RS_KILL_SEED");
    unsigned seed = seed_env ? (unsigned)strtoul(seed_env, NULL, 10) : 12345u;
    srand(seed);
    printf("uninterrupted run %.3f s; seed %u\n", full, seed);

    int64_t prev = -1;
    int mid_write = 0, finished_early = 0;
    for (int it = 0; it < KILLS; it++) {
        /* Delay uniform over the time the remaining shards should take, so kills spread
         * over the whole run (start, middle, finalize) rather than bunching at the start. */
        double left = prev < 0 ? 1.0 : 1.0 - (double)prev / ((N_IN + SHARD - 1) / SHARD);
        double delay = (0.002 + full * left) * (double)rand() / RAND_MAX;
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            rs_err e;
            _exit(syn_write_store(dir, N_IN, SHARD, &e) ? 3 : 0);
        }
        usleep((useconds_t)(delay * 1e6));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        if (WIFEXITED(status)) {
            assert_int_equal(WEXITSTATUS(status), 0); /* it finished before the kill */
            finished_early++;
        }
        int n_tmp;
        int64_t k = listed_shards(dir, &n_tmp);
        mid_write += n_tmp > 0;
        printf("kill %2d after %.4f s: %lld shards listed, %d temp files\n", it, delay, (long long)k, n_tmp);
        assert_true(k >= prev); /* completed shards are never lost */
        prev = k;
        /* An interrupted store is never readable as complete. */
        store_reader *r;
        if (WIFSIGNALED(status) && k < (N_IN + SHARD - 1) / SHARD) {
            assert_int_equal(store_reader_open(&r, dir, &err), -1);
        }
    }
    printf("%d of %d kills left temp files (killed mid-write); %d runs finished first\n", mid_write, KILLS,
           finished_early);
    if (syn_write_store(dir, N_IN, SHARD, &err)) fail_msg("%s", err.msg);
    assert_int_equal(syn_dirs_identical(ref, dir), 0);
    store_reader *r;
    if (store_reader_open(&r, dir, &err)) fail_msg("%s", err.msg);
    assert_int_equal(store_reader_n_shards(r), N_IN / SHARD);
    store_reader_close(r);
    tu_system("rm -rf '%s' '%s'", ref, dir);
    free(ref), free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_and_resume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

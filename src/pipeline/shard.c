/* Job arrays (docs/cluster.md): the bookkeeping of `reprshift run --shard I/N` tasks and of
 * `reprshift merge`.
 *   work/.setup.lock                 the tasks' setup (dataset stage, claiming store parts)
 *                                    runs one task at a time
 *   stages/tasks.json                the config, N and --shard-inputs of the tasks (merge reads it;
 *                                    removed by a successful merge)
 *   stages/task-IIIII-of-NNNNN.log   each task's log (run.log is the merge's; the merge appends
 *                                    the tasks' logs to it and removes them)
 * The store shards are assigned by pl_assign (extract.c builds the items: every shard of every
 * store the config uses, costed by its tokens). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "pipeline/pipeline_internal.h"
#include "base/jsonutil.h"
#include "reprshift/fileio.h"

int pl_task_setup_lock(pl_ctx *c, rs_err *err) {
    char *p = pl_join(c->work, ".setup.lock");
    if (!p) return rs_errk(err, RS_ENOMEM, "out of memory");
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    int rc = 0;
    if (fd < 0) {
        rc = rs_errk(err, RS_EIO, "%s: cannot create: %s", p, strerror(errno));
    } else {
        int r;
        while ((r = flock(fd, LOCK_EX)) != 0 && errno == EINTR) {}
        if (r) {
            rc = rs_errk(err, RS_EIO, "%s: cannot lock: %s", p, strerror(errno));
            close(fd);
        } else {
            c->setup_lock_fd = fd;
        }
    }
    free(p);
    return rc;
}

void pl_task_setup_done(pl_ctx *c) {
    if (c->setup_lock_fd >= 0) close(c->setup_lock_fd);
    c->setup_lock_fd = -1;
}

char *pl_task_log_path(pl_ctx *c) {
    char name[64];
    snprintf(name, sizeof name, "task-%05d-of-%05d.log", c->opt->task, c->opt->n_tasks);
    return pl_join(c->stages, name);
}

/* Does any store folder under acts/ hold a part file? */
static int any_parts(const char *acts) {
    DIR *d = opendir(acts);
    struct dirent *e;
    int found = 0;
    while (d && !found && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *p = pl_join(acts, e->d_name);
        DIR *s = p ? opendir(p) : NULL;
        struct dirent *f;
        while (s && !found && (f = readdir(s))) found = !strncmp(f->d_name, "part-", 5);
        if (s) closedir(s);
        free(p);
    }
    if (d) closedir(d);
    return found;
}

int pl_tasks_write(pl_ctx *c, rs_err *err) {
    char *cwd = getcwd(NULL, 0), *p = pl_join(c->stages, "tasks.json");
    cJSON *j = cJSON_CreateObject();
    int rc = -1;
    if (!cwd || !p || !j) {
        rc = rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    /* Tasks given another config, run folder or --shard-inputs (or the same paths from another
       folder) compute other fingerprints and would each remove the others' parts as stale:
       refused while parts exist. (A config whose content changed is a new run: its tasks
       replace the old parts.) */
    rs_pipeline_tasks old;
    rs_err ignore = {0};
    if (rs_pipeline_tasks_read(c->out, &old, &ignore) == 0) {
        int differs = strcmp(old.config, c->opt->config_path) || strcmp(old.out, c->out) || strcmp(old.cwd, cwd) ||
                      old.shard_inputs != c->opt->shard_inputs;
        if (differs && any_parts(c->acts))
            rs_errf(err, "%s: its tasks were started with config %s, --out %s, --shard-inputs %lld in %s "
                         "(stages/tasks.json), this task with %s, --out %s, --shard-inputs %lld in %s: every task of an "
                         "array needs the same config, run folder and --shard-inputs, spelled alike and from the same "
                         "folder (the paths take part in the fingerprints); finish the run with its own tasks, or remove "
                         "its parts (acts/*/part-*) to start over",
                    c->out, old.config, old.out, (long long)old.shard_inputs, old.cwd, c->opt->config_path, c->out,
                    (long long)c->opt->shard_inputs, cwd);
        rs_pipeline_tasks_free(&old);
        if (differs && err->msg[0]) goto done;
    }
    cJSON_AddStringToObject(j, "config", c->opt->config_path);
    cJSON_AddStringToObject(j, "out", c->out);
    cJSON_AddStringToObject(j, "cwd", cwd);
    cJSON_AddNumberToObject(j, "n_tasks", c->opt->n_tasks);
    cJSON_AddNumberToObject(j, "shard_inputs", (double)c->opt->shard_inputs);
    rc = pl_write_json(p, j, err);
done:
    cJSON_Delete(j);
    free(cwd);
    free(p);
    return rc;
}

void rs_pipeline_tasks_free(rs_pipeline_tasks *t) {
    free(t->config);
    free(t->out);
    free(t->cwd);
    memset(t, 0, sizeof *t);
}

int rs_pipeline_tasks_read(const char *dir, rs_pipeline_tasks *t, rs_err *err) {
    char *p = rs_path_join(dir, "stages/tasks.json");
    cJSON *j = NULL;
    int rc = -1;
    memset(t, 0, sizeof *t);
    if (!p) return rs_errk(err, RS_ENOMEM, "out of memory");
    if (!rs_path_exists(p)) {
        rs_errk(err, RS_EIO, "%s: missing: no task of a job array (`reprshift run CONFIG --out %s --shard I/N`) has run "
                             "in this folder (or it was merged already); give the config with --config to merge anyway",
                p, dir);
        goto done;
    }
    if (rs_json_load(p, 1 << 20, &j, err)) goto done;
    const char *key[3] = {"config", "out", "cwd"};
    char **slot[3] = {&t->config, &t->out, &t->cwd};
    for (int i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key[i]);
        if (!cJSON_IsString(v)) {
            rs_errk(err, RS_EFORMAT, "%s: field \"%s\" must be a string", p, key[i]);
            goto done;
        }
        if (!(*slot[i] = strdup(v->valuestring))) {
            rs_errk(err, RS_ENOMEM, "out of memory");
            goto done;
        }
    }
    int64_t n, si;
    if (rs_json_int(j, "n_tasks", 1, 99999, 0, 0, &n, p, err) || rs_json_int(j, "shard_inputs", 0, 1000000, 1, 0, &si, p, err))
        goto done;
    t->n_tasks = (int)n;
    t->shard_inputs = si;
    rc = 0;
done:
    if (rc) rs_pipeline_tasks_free(t);
    cJSON_Delete(j);
    free(p);
    return rc;
}

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void pl_tasks_fold_logs(pl_ctx *c) {
    DIR *d = opendir(c->stages);
    if (!d || !c->log) {
        if (d) closedir(d);
        return;
    }
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t L = strlen(e->d_name);
        if (strncmp(e->d_name, "task-", 5) || L < 9 || strcmp(e->d_name + L - 4, ".log")) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **nn = realloc(names, (size_t)cap * sizeof *nn);
            if (!nn) break;
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name))) break;
        n++;
    }
    closedir(d);
    if (n) qsort(names, (size_t)n, sizeof *names, cmp_name); /* zero-padded: task order */
    for (int i = 0; i < n; i++) {
        char *p = pl_join(c->stages, names[i]), *buf = NULL;
        size_t len = 0;
        rs_err ignore = {0};
        if (p && rs_read_file(p, 256u << 20, &buf, &len, &ignore) == 0) {
            fprintf(c->log, "---- %s ----\n", names[i]);
            fwrite(buf, 1, len, c->log);
            if (len && buf[len - 1] != '\n') fputc('\n', c->log);
            if (fflush(c->log) == 0) unlink(p);
        }
        free(buf);
        free(p);
        free(names[i]);
    }
    free(names);
}

typedef struct {
    double cost;
    int64_t i;
} item;

static int cmp_item(const void *a, const void *b) {
    const item *x = a, *y = b;
    if (x->cost != y->cost) return x->cost < y->cost ? 1 : -1;
    return (x->i > y->i) - (x->i < y->i);
}

int pl_assign(const double *cost, int64_t n, int n_tasks, int *owner, rs_err *err) {
    item *it = malloc((size_t)(n ? n : 1) * sizeof *it);
    double *load = calloc((size_t)n_tasks, sizeof *load);
    if (!it || !load) {
        free(it);
        free(load);
        return rs_errk(err, RS_ENOMEM, "out of memory");
    }
    for (int64_t i = 0; i < n; i++) it[i] = (item){cost[i], i};
    qsort(it, (size_t)n, sizeof *it, cmp_item);
    for (int64_t q = 0; q < n; q++) {
        int best = 0;
        for (int t = 1; t < n_tasks; t++)
            if (load[t] < load[best]) best = t;
        owner[it[q].i] = best;
        load[best] += it[q].cost;
    }
    free(it);
    free(load);
    return 0;
}

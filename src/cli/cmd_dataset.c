/* reprshift dataset {sample,stats,check}: COCO → balanced manifest, COCO group counts,
 * and manifest validation (columns, values, image files). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "reprshift/coco.h"
#include "reprshift/config.h"
#include "reprshift/manifest.h"

int cmd_dataset(int argc, char **argv);

static const char USAGE[] =
    "usage: reprshift dataset sample (--config CONFIG | COCO... [SAMPLING...]) --out MANIFEST.csv\n"
    "       reprshift dataset stats  (--config CONFIG | COCO... [--group ...] [--exclude ...])\n"
    "       reprshift dataset check  MANIFEST.csv\n"
    "\n"
    "sample: draw n images per group of COCO supercategories (one label per image: its annotated\n"
    "supercategories fall in exactly one group; see docs/datasets.md), split each group\n"
    "train/val/test by image, and write a manifest CSV with columns\n"
    "modality,input,label,file_name,image_id,caption_id,split (an image row, then its captions).\n"
    "stats: image/caption/instance totals, images per supercategory, eligible images per group.\n"
    "check: validate a manifest and check that every image file exists.\n"
    "\n"
    "COCO (repeat the three together for several splits, e.g. train2017 and val2017):\n"
    "  --instances FILE        instances_*.json\n"
    "  --captions FILE         captions_*.json for the same images\n"
    "  --images DIR            folder holding the images' file_name\n"
    "  --config CONFIG         take all of the above and below from an experiment config's dataset\n"
    "SAMPLING:\n"
    "  --group NAME=SC[,SC..]  a group and its supercategories (repeat; default: animals=animal,\n"
    "                          vehicles=vehicle, food=food,\n"
    "                          indoor=furniture,kitchen,appliance,electronic,indoor)\n"
    "  --exclude SC[,SC..]     drop images with any of these supercategories (e.g. person)\n"
    "  --n N                   images per group (default 50)\n"
    "  --allow-fewer           if a group has fewer than N, use the smallest group's count\n"
    "  --seed S                sampling seed (default 0; SplitMix64 + Fisher-Yates)\n"
    "  --split T,V,X           train,val,test fractions (default 0.7,0.15,0.15)\n"
    "  --captions-per-image K  lowest-id K captions per image (default 1; 0 = all)\n"
    "  --no-images | --no-captions   leave out image rows / caption rows\n"
    "Image paths are written relative to the manifest's folder (absolute if --images is absolute).\n";

#define MAX_FILES 16
#define MAX_CLI_GROUPS COCO_MAX_GROUPS

typedef struct {
    const char *instances[MAX_FILES], *captions[MAX_FILES], *images[MAX_FILES];
    int n_inst, n_cap, n_img;
    const char *config, *out;
    coco_group groups[MAX_CLI_GROUPS];
    char *group_storage[MAX_CLI_GROUPS];
    const char **group_scs[MAX_CLI_GROUPS];
    int n_groups;
    const char **exclude;
    char *exclude_storage;
    coco_sample_opts o;
    rs_config *cfg;
} dargs;

/* Split "a,b,c" (modified in place) into a new NULL-terminated array. */
static const char **split_commas(char *s) {
    size_t n = 1;
    for (char *p = s; *p; p++) n += *p == ',';
    const char **v = calloc(n + 1, sizeof *v);
    if (!v) return NULL;
    size_t k = 0;
    for (char *save = NULL, *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save)) v[k++] = t;
    return v;
}

static void dargs_free(dargs *a) {
    for (int g = 0; g < a->n_groups; g++) {
        free(a->group_storage[g]);
        free(a->group_scs[g]);
    }
    free(a->exclude_storage);
    free(a->exclude);
    rs_config_free(a->cfg);
}

static int parse_double(const char *s, double *out) {
    char *end;
    *out = strtod(s, &end);
    return end != s && !*end && isfinite(*out) ? 0 : -1;
}

static int parse_args(int argc, char **argv, int first, dargs *a, const char *sub) {
    coco_sample_defaults(&a->o);
    for (int i = first; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = strcmp(o, "--allow-fewer") && strcmp(o, "--no-images") && strcmp(o, "--no-captions");
        if (takes && !v) {
            fprintf(stderr, "reprshift dataset %s: %s needs a value\n", sub, o);
            return 2;
        }
        if (!strcmp(o, "--instances") || !strcmp(o, "--captions") || !strcmp(o, "--images")) {
            const char **arr = o[2] == 'i' && o[3] == 'n' ? a->instances : o[2] == 'c' ? a->captions : a->images;
            int *n = arr == a->instances ? &a->n_inst : arr == a->captions ? &a->n_cap : &a->n_img;
            if (*n >= MAX_FILES) {
                fprintf(stderr, "reprshift dataset %s: at most %d %s\n", sub, MAX_FILES, o);
                return 2;
            }
            arr[(*n)++] = v;
        } else if (!strcmp(o, "--config")) a->config = v;
        else if (!strcmp(o, "--out")) a->out = v;
        else if (!strcmp(o, "--group")) {
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || !eq[1] || a->n_groups >= MAX_CLI_GROUPS) {
                fprintf(stderr, "reprshift dataset %s: --group wants NAME=SUPERCATEGORY[,...] (got '%s')\n", sub, v);
                return 2;
            }
            int g = a->n_groups++;
            a->group_storage[g] = strdup(v);
            if (!a->group_storage[g]) return 1;
            a->group_storage[g][eq - v] = 0;
            a->group_scs[g] = split_commas(a->group_storage[g] + (eq - v) + 1);
            if (!a->group_scs[g]) return 1;
            a->groups[g].name = a->group_storage[g];
            a->groups[g].supercategories = a->group_scs[g];
        } else if (!strcmp(o, "--exclude")) {
            free(a->exclude_storage);
            free(a->exclude);
            a->exclude_storage = strdup(v);
            a->exclude = a->exclude_storage ? split_commas(a->exclude_storage) : NULL;
            if (!a->exclude) return 1;
        } else if (!strcmp(o, "--n") || !strcmp(o, "--seed") || !strcmp(o, "--captions-per-image")) {
            char cmd[48];
            snprintf(cmd, sizeof cmd, "dataset %s", sub);
            unsigned long long x;
            if (cli_parse_u64(cmd, o, v, &x)) return 2;
            if (!strcmp(o, "--n")) a->o.n_per_group = (size_t)x;
            else if (!strcmp(o, "--seed")) a->o.seed = x;
            else a->o.captions_per_image = (int)(x > 1000 ? 1000 : x); /* more than any COCO image has */
        } else if (!strcmp(o, "--split")) {
            char buf[128];
            snprintf(buf, sizeof buf, "%s", v);
            const char **parts = split_commas(buf);
            double f[3];
            int ok = parts && parts[0] && parts[1] && parts[2] && !parts[3] && !parse_double(parts[0], &f[0]) &&
                     !parse_double(parts[1], &f[1]) && !parse_double(parts[2], &f[2]) && f[0] >= 0 && f[1] >= 0 &&
                     f[2] >= 0 && f[0] + f[1] + f[2] > 0.999999 && f[0] + f[1] + f[2] < 1.000001;
            free(parts);
            if (!ok) {
                fprintf(stderr, "reprshift dataset %s: --split wants three fractions summing to 1 (got '%s')\n", sub, v);
                return 2;
            }
            a->o.frac_train = f[0];
            a->o.frac_val = f[1];
        } else if (!strcmp(o, "--allow-fewer")) {
            a->o.allow_fewer = 1;
            continue;
        } else if (!strcmp(o, "--no-images")) {
            a->o.include_images = 0;
            continue;
        } else if (!strcmp(o, "--no-captions")) {
            a->o.include_captions = 0;
            continue;
        } else {
            fprintf(stderr, "reprshift dataset %s: unknown option '%s' (see reprshift dataset --help)\n", sub, o);
            return 2;
        }
        i++;
    }
    if (a->n_groups) {
        a->o.groups = a->groups;
        a->o.n_groups = a->n_groups;
    }
    if (a->exclude) a->o.exclude = a->exclude;
    if (a->config) {
        if (a->n_inst || a->n_cap || a->n_img || a->n_groups) {
            fprintf(stderr, "reprshift dataset %s: --config replaces --instances/--captions/--images/--group\n", sub);
            return 2;
        }
        rs_err err = {0};
        if (rs_config_load(a->config, &a->cfg, &err)) {
            fprintf(stderr, "reprshift dataset %s: %s\n", sub, err.msg);
            return 1;
        }
        if (a->cfg->dataset.manifest) {
            fprintf(stderr, "reprshift dataset %s: %s uses a prebuilt manifest (dataset.manifest); nothing to sample\n",
                    sub, a->config);
            return 1;
        }
        rs_config_sample_opts(a->cfg, &a->o);
        for (int i = 0; i < a->cfg->dataset.n_instances; i++) {
            a->instances[a->n_inst++] = a->cfg->dataset.instances[i];
            if (a->cfg->dataset.captions[i]) a->captions[a->n_cap++] = a->cfg->dataset.captions[i];
            if (a->cfg->dataset.images[i]) a->images[a->n_img++] = a->cfg->dataset.images[i];
        }
    }
    if (!a->n_inst) {
        fprintf(stderr, "reprshift dataset %s: need --instances FILE (or --config)\n", sub);
        return 2;
    }
    if ((a->n_cap && a->n_cap != a->n_inst) || (a->n_img && a->n_img != a->n_inst)) {
        fprintf(stderr, "reprshift dataset %s: give one --captions and one --images per --instances (%d, %d, %d)\n",
                sub, a->n_inst, a->n_cap, a->n_img);
        return 2;
    }
    return 0;
}

/* Load and merge every split: instances[i] + captions[i], images under images[i]. */
static coco_data *load_all(const dargs *a, const char *sub) {
    rs_err err = {0};
    coco_data *all = NULL;
    for (int i = 0; i < a->n_inst; i++) {
        coco_data *d;
        if (coco_load(a->instances[i], &d, &err)) goto fail;
        if (!d->n_instances) {
            rs_errf(&err, "%s: no instance annotations (is this a captions file? pass it as --captions)",
                    a->instances[i]);
            coco_free(d);
            goto fail;
        }
        if (i < a->n_cap) {
            coco_data *c;
            size_t dropped = 0;
            if (coco_load(a->captions[i], &c, &err)) {
                coco_free(d);
                goto fail;
            }
            if (coco_add_captions(d, c, &dropped, &err)) {
                rs_err_prefix(&err, "%s + %s", a->instances[i], a->captions[i]);
                coco_free(d);
                goto fail;
            }
            if (dropped)
                fprintf(stderr, "reprshift dataset %s: note: %zu captions in %s are for images not in %s (ignored)\n",
                        sub, dropped, a->captions[i], a->instances[i]);
        }
        if (i < a->n_img && coco_set_images_dir(d, a->images[i], &err)) {
            coco_free(d);
            goto fail;
        }
        if (!all) all = d;
        else if (coco_merge(all, d, &err)) goto fail;
    }
    return all;
fail:
    coco_free(all);
    fprintf(stderr, "reprshift dataset %s: %s\n", sub, err.msg);
    return NULL;
}

static void print_group_table(const coco_sample_opts *o, const coco_sample_stats *st, int sampled) {
    fprintf(stderr, "%-12s %9s%s\n", "group", "eligible", sampled ? "    taken   train  val  test" : "");
    for (int g = 0; g < o->n_groups; g++) {
        fprintf(stderr, "%-12s %9zu", o->groups[g].name, st->available[g]);
        if (sampled)
            fprintf(stderr, " %8zu %7zu %4zu %5zu", st->taken[g], st->split_count[g][0], st->split_count[g][1],
                    st->split_count[g][2]);
        fprintf(stderr, "\n");
    }
    fprintf(stderr, "not eligible: %zu in no group, %zu in several groups, %zu excluded, %zu without captions\n",
            st->n_images_no_group, st->n_images_ambiguous, st->n_images_excluded, st->n_images_no_caption);
}

static int do_sample(dargs *a) {
    if (!a->out) {
        fprintf(stderr, "reprshift dataset sample: need --out MANIFEST.csv\n");
        return 2;
    }
    if (a->o.include_captions && !a->n_cap) {
        fprintf(stderr, "reprshift dataset sample: need --captions FILE (or --no-captions)\n");
        return 2;
    }
    if (a->o.include_images && !a->n_img) {
        fprintf(stderr, "reprshift dataset sample: need --images DIR (or --no-images)\n");
        return 2;
    }
    coco_data *d = load_all(a, "sample");
    if (!d) return 1;
    const char *slash = strrchr(a->out, '/');
    char *dir = slash ? strndup(a->out, (size_t)(slash - a->out) + (slash == a->out)) : strdup(".");
    rs_manifest *m = dir ? rs_manifest_new(dir) : NULL;
    free(dir);
    rs_err err = {0};
    coco_sample_stats st;
    int rc = 1;
    if (!m) fprintf(stderr, "reprshift dataset sample: out of memory\n");
    else if (coco_sample(d, &a->o, m, &st, &err) || rs_manifest_check_images(m, NULL, &err) ||
             rs_manifest_write(m, a->out, &err))
        fprintf(stderr, "reprshift dataset sample: %s\n", err.msg);
    else {
        print_group_table(&a->o, &st, 1);
        if (st.taken[0] < a->o.n_per_group)
            fprintf(stderr, "warning: only %zu images per group (fewer than --n %zu; --allow-fewer)\n", st.taken[0],
                    a->o.n_per_group);
        printf("%s: %zu rows\n", a->out, m->n_rows);
        rc = 0;
    }
    rs_manifest_free(m);
    coco_free(d);
    return rc;
}

static int do_stats(dargs *a) {
    coco_data *d = load_all(a, "stats");
    if (!d) return 1;
    printf("%zu images, %zu instance annotations, %zu captions, %zu categories\n", d->n_images, d->n_instances,
           d->n_captions, d->n_categories);
    /* images per supercategory (an image counts once per supercategory it shows) */
    const char *names[128];
    size_t counts[128] = {0};
    int ns = 0;
    for (size_t c = 0; c < d->n_categories && ns < 128; c++) {
        int k = 0;
        while (k < ns && strcmp(names[k], d->categories[c].supercategory)) k++;
        if (k == ns) names[ns++] = d->categories[c].supercategory;
    }
    for (size_t i = 0; i < d->n_images; i++) {
        size_t b, e;
        coco_image_instances(d, d->images[i].id, &b, &e);
        int seen[128] = {0};
        for (size_t j = b; j < e; j++) {
            const char *sc = d->categories[coco_find_category(d, d->instances[j].category_id)].supercategory;
            for (int k = 0; k < ns; k++)
                if (!strcmp(names[k], sc)) seen[k] = 1;
        }
        for (int k = 0; k < ns; k++) counts[k] += (size_t)seen[k];
    }
    printf("images per supercategory:");
    for (int k = 0; k < ns; k++) printf(" %s %zu%s", names[k], counts[k], k + 1 < ns ? "," : "\n");
    coco_sample_stats st;
    rs_err err = {0};
    int rc = 0;
    if (coco_group_counts(d, &a->o, &st, &err)) {
        fprintf(stderr, "reprshift dataset stats: %s\n", err.msg);
        rc = 1;
    } else {
        printf("eligible images per group (exclusive membership%s):\n", d->n_captions ? ", with captions" : "");
        for (int g = 0; g < a->o.n_groups; g++) printf("  %-12s %zu\n", a->o.groups[g].name, st.available[g]);
        printf("not eligible: %zu in no group, %zu in several groups, %zu excluded, %zu without captions\n",
               st.n_images_no_group, st.n_images_ambiguous, st.n_images_excluded, st.n_images_no_caption);
    }
    coco_free(d);
    return rc;
}

static int do_check(const char *path) {
    rs_manifest *m;
    rs_err err = {0};
    if (rs_manifest_load(path, &m, &err)) {
        fprintf(stderr, "reprshift dataset check: %s\n", err.msg);
        return 1;
    }
    if (rs_manifest_check_images(m, NULL, &err)) {
        fprintf(stderr, "reprshift dataset check: %s\n", err.msg);
        rs_manifest_free(m);
        return 1;
    }
    size_t n_img = 0, split[4] = {0};
    for (size_t i = 0; i < m->n_rows; i++) {
        n_img += m->rows[i].modality == RS_MODALITY_IMAGE;
        const char *s = m->rows[i].split;
        split[!strcmp(s, "train") ? 0 : !strcmp(s, "val") ? 1 : !strcmp(s, "test") ? 2 : 3]++;
    }
    printf("%s: %zu rows (%zu image, %zu text); split train %zu, val %zu, test %zu, none %zu; all image files "
           "present\n", path, m->n_rows, n_img, m->n_rows - n_img, split[0], split[1], split[2], split[3]);
    /* rows per label */
    for (size_t i = 0; i < m->n_rows; i++) {
        int first = 1;
        for (size_t j = 0; j < i && first; j++) first = strcmp(m->rows[j].label, m->rows[i].label) != 0;
        if (!first) continue;
        size_t n = 0;
        for (size_t j = i; j < m->n_rows; j++) n += !strcmp(m->rows[j].label, m->rows[i].label);
        printf("  %-16s %zu rows\n", m->rows[i].label, n);
    }
    rs_manifest_free(m);
    return 0;
}

int cmd_dataset(int argc, char **argv) {
    if (argc < 2 || cli_wants_help(argc, argv, 1)) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "check")) {
        if (argc != 3) {
            fprintf(stderr, "usage: reprshift dataset check MANIFEST.csv\n");
            return 2;
        }
        return do_check(argv[2]);
    }
    if (strcmp(sub, "sample") && strcmp(sub, "stats")) {
        fprintf(stderr, "reprshift dataset: unknown subcommand '%s' (sample, stats, check)\n", sub);
        return 2;
    }
    dargs a;
    memset(&a, 0, sizeof a);
    int rc = parse_args(argc, argv, 2, &a, sub);
    if (!rc) rc = !strcmp(sub, "sample") ? do_sample(&a) : do_stats(&a);
    dargs_free(&a);
    return rc;
}

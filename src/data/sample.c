/* Balanced sampling of COCO images into groups of supercategories.
 *
 * Label rule (exclusive membership): collect the supercategories of all of an image's
 * instance annotations (crowd annotations included: they still show the object). Ignore
 * supercategories that belong to no group (e.g. person, sports, outdoor, accessory with the
 * default groups). The image is labelled g if the remaining ones all belong to group g and
 * there is at least one; images touching two groups are ambiguous and dropped, as are
 * images with any supercategory from `exclude`.
 *
 * Determinism: candidates of each group are listed in ascending image id, then shuffled
 * with Fisher-Yates driven by one SplitMix64 stream seeded with `seed` (groups in config
 * order, each shuffles its whole candidate list); the first n are taken. Each group's n
 * images are split in that order: the first round(n*frac_train) train, the next
 * round(n*frac_val) val, the rest test, so an image and all of its captions are on one side. */
#include "reprshift/coco.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reprshift/fileio.h"

static const char *const SC_ANIMALS[] = {"animal", NULL};
static const char *const SC_VEHICLES[] = {"vehicle", NULL};
static const char *const SC_FOOD[] = {"food", NULL};
static const char *const SC_INDOOR[] = {"furniture", "kitchen", "appliance", "electronic", "indoor", NULL};

const coco_group COCO_DEFAULT_GROUPS[4] = {
    {"animals", SC_ANIMALS},
    {"vehicles", SC_VEHICLES},
    {"food", SC_FOOD},
    {"indoor", SC_INDOOR},
};

uint64_t rs_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t rs_rand_below(uint64_t *state, uint64_t n) {
    uint64_t threshold = (0 - n) % n; /* 2^64 mod n: reject the short last bucket */
    for (;;) {
        uint64_t r = rs_splitmix64(state);
        if (r >= threshold) return r % n;
    }
}

void coco_sample_defaults(coco_sample_opts *o) {
    memset(o, 0, sizeof *o);
    o->groups = COCO_DEFAULT_GROUPS;
    o->n_groups = 4;
    o->n_per_group = 50;
    o->seed = 0;
    o->frac_train = 0.7;
    o->frac_val = 0.15;
    o->captions_per_image = 1;
    o->include_images = 1;
    o->include_captions = 1;
}

static int in_list(const char *const *list, const char *s) {
    if (!list) return 0;
    for (; *list; list++)
        if (!strcmp(*list, s)) return 1;
    return 0;
}

int coco_image_group(const coco_data *d, int64_t image_id, const coco_sample_opts *o) {
    size_t b, e;
    coco_image_instances(d, image_id, &b, &e);
    int g = -1, ambiguous = 0;
    for (size_t i = b; i < e; i++) {
        long c = coco_find_category(d, d->instances[i].category_id);
        if (c < 0) continue; /* coco_load guarantees this does not happen */
        const char *sc = d->categories[c].supercategory;
        if (in_list(o->exclude, sc)) return -3;
        for (int k = 0; k < o->n_groups; k++)
            if (in_list(o->groups[k].supercategories, sc)) {
                if (g < 0) g = k;
                else if (g != k) ambiguous = 1;
            }
    }
    return ambiguous ? -2 : g;
}

long coco_image_type(const coco_data *d, int64_t image_id, const coco_sample_opts *o, int group) {
    size_t b, e;
    coco_image_instances(d, image_id, &b, &e);
    long best = -1;
    size_t best_n = 0;
    /* instances are sorted by (image_id, id), not by category: count each candidate category
       over the image's instances (a handful per image) */
    for (size_t i = b; i < e; i++) {
        long c = coco_find_category(d, d->instances[i].category_id);
        if (c < 0) continue;
        if (group >= 0 && (group >= o->n_groups || !in_list(o->groups[group].supercategories, d->categories[c].supercategory)))
            continue;
        size_t n = 0;
        for (size_t j = b; j < e; j++) n += d->instances[j].category_id == d->instances[i].category_id;
        if (best < 0 || n > best_n || (n == best_n && d->categories[c].id < d->categories[best].id)) best = c, best_n = n;
    }
    return best;
}

static int check_opts(const coco_data *d, const coco_sample_opts *o, rs_err *err) {
    if (o->n_groups < 1 || o->n_groups > COCO_MAX_GROUPS)
        return rs_errf(err, "sampling: need 1 to %d groups, got %d", COCO_MAX_GROUPS, o->n_groups);
    for (int g = 0; g < o->n_groups; g++) {
        const coco_group *gr = &o->groups[g];
        if (!gr->name || !*gr->name) return rs_errf(err, "sampling: group %d has no name", g);
        if (!gr->supercategories || !gr->supercategories[0])
            return rs_errf(err, "sampling: group '%s' lists no supercategories", gr->name);
        for (int h = 0; h < g; h++)
            if (!strcmp(o->groups[h].name, gr->name)) return rs_errf(err, "sampling: duplicate group '%s'", gr->name);
        for (const char *const *sc = gr->supercategories; *sc; sc++) {
            int known = 0;
            for (size_t c = 0; c < d->n_categories && !known; c++) known = !strcmp(d->categories[c].supercategory, *sc);
            if (!known) {
                char list[512] = "";
                size_t k = 0;
                for (size_t c = 0; c < d->n_categories && k < sizeof list; c++) {
                    int dup = 0;
                    for (size_t c2 = 0; c2 < c && !dup; c2++)
                        dup = !strcmp(d->categories[c2].supercategory, d->categories[c].supercategory);
                    if (!dup) k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", k ? ", " : "",
                                                    d->categories[c].supercategory);
                }
                return rs_errf(err, "sampling: group '%s': unknown supercategory '%s' (the annotations have: %s)",
                               gr->name, *sc, list);
            }
            for (int h = 0; h < g; h++)
                if (in_list(o->groups[h].supercategories, *sc))
                    return rs_errf(err, "sampling: supercategory '%s' is in both group '%s' and group '%s'", *sc,
                                   o->groups[h].name, gr->name);
            if (in_list(o->exclude, *sc))
                return rs_errf(err, "sampling: supercategory '%s' is both in group '%s' and excluded", *sc, gr->name);
        }
    }
    if (!(o->frac_train >= 0 && o->frac_val >= 0 && o->frac_train + o->frac_val <= 1 + 1e-9))
        return rs_errf(err, "sampling: split fractions train %g, val %g must be >= 0 with a sum <= 1", o->frac_train,
                       o->frac_val);
    if (o->n_per_group < 1) return rs_errf(err, "sampling: n_per_group must be at least 1");
    if (o->captions_per_image < 0) return rs_errf(err, "sampling: captions_per_image must be >= 0");
    if (!o->include_images && !o->include_captions)
        return rs_errf(err, "sampling: nothing to write (neither images nor captions requested)");
    if (o->include_images && (!o->images_dir || !*o->images_dir))
        for (size_t i = 0; i < d->n_images; i++)
            if (!d->images[i].dir)
                return rs_errf(err, "sampling: image rows requested but no images directory given (image %lld)",
                               (long long)d->images[i].id);
    if (o->include_captions && !d->n_captions)
        return rs_errf(err, "sampling: caption rows requested but no captions were loaded");
    return 0;
}

/* Eligible images per group (indices into d->images, ascending id); lists[g] malloc'd. */
static int collect(const coco_data *d, const coco_sample_opts *o, size_t **lists, coco_sample_stats *st, rs_err *err) {
    memset(st, 0, sizeof *st);
    st->n_groups = o->n_groups;
    for (int g = 0; g < o->n_groups; g++) {
        lists[g] = malloc((d->n_images ? d->n_images : 1) * sizeof **lists);
        if (!lists[g]) return rs_errk(err, RS_ENOMEM, "sampling: out of memory");
    }
    for (size_t i = 0; i < d->n_images; i++) {
        int g = coco_image_group(d, d->images[i].id, o);
        if (g == -1) st->n_images_no_group++;
        else if (g == -2) st->n_images_ambiguous++;
        else if (g == -3) st->n_images_excluded++;
        else {
            if (o->include_captions) {
                size_t b, e;
                coco_image_captions(d, d->images[i].id, &b, &e);
                if (b == e) {
                    st->n_images_no_caption++;
                    continue;
                }
            }
            lists[g][st->available[g]++] = i;
        }
    }
    return 0;
}

int coco_group_counts(const coco_data *d, const coco_sample_opts *o, coco_sample_stats *st, rs_err *err) {
    coco_sample_opts o2 = *o;
    if (!d->n_captions) o2.include_captions = 0;
    if (!o2.images_dir) o2.images_dir = ".";
    if (check_opts(d, &o2, err)) return -1;
    size_t *lists[COCO_MAX_GROUPS] = {0};
    int rc = collect(d, &o2, lists, st, err);
    for (int g = 0; g < o->n_groups; g++) free(lists[g]);
    return rc;
}

static const char *const SPLIT_NAMES[3] = {"train", "val", "test"};

int coco_sample(const coco_data *d, const coco_sample_opts *o, rs_manifest *m, coco_sample_stats *st,
                rs_err *err) {
    coco_sample_stats local;
    if (!st) st = &local;
    if (check_opts(d, o, err)) return -1;
    size_t *lists[COCO_MAX_GROUPS] = {0};
    const char **extra = NULL; /* the row's extra columns (only the type column is set) */
    int rc = -1;
    if (collect(d, o, lists, st, err)) goto done;
    size_t take = o->n_per_group;
    for (int g = 0; g < o->n_groups; g++)
        if (st->available[g] < o->n_per_group) {
            char counts[512] = "";
            size_t k = 0;
            for (int h = 0; h < o->n_groups && k < sizeof counts; h++)
                k += (size_t)snprintf(counts + k, sizeof counts - k, "%s%s %zu", h ? ", " : "", o->groups[h].name,
                                      st->available[h]);
            if (!o->allow_fewer) {
                rs_errf(err, "sampling: group '%s' has only %zu eligible images, fewer than n_per_group = %zu "
                             "(eligible: %s); lower n_per_group or allow fewer (allow_fewer / --allow-fewer)", o->groups[g].name, st->available[g],
                        o->n_per_group, counts);
                goto done;
            }
            if (st->available[g] < take) take = st->available[g];
        }
    if (take == 0) {
        rs_errf(err, "sampling: some group has no eligible images");
        goto done;
    }
    int tcol = -1;
    if (o->type_column) {
        tcol = rs_manifest_extra_col(m, o->type_column);
        if (tcol < 0 && m->n_rows) {
            rs_errf(err, "sampling: the manifest already has rows without a '%s' column", o->type_column);
            goto done;
        }
        if (tcol < 0) {
            char **nn = realloc(m->extra_names, (size_t)(m->n_extra + 1) * sizeof *nn);
            if (nn) m->extra_names = nn;
            if (!nn || !(nn[m->n_extra] = strdup(o->type_column))) {
                rs_errk(err, RS_ENOMEM, "sampling: out of memory");
                goto done;
            }
            tcol = m->n_extra++;
        }
    }
    if (tcol >= 0) extra = calloc((size_t)m->n_extra, sizeof *extra);
    if (tcol >= 0 && !extra) {
        rs_errk(err, RS_ENOMEM, "sampling: out of memory");
        goto done;
    }
    uint64_t state = o->seed;
    for (int g = 0; g < o->n_groups; g++) {
        size_t *l = lists[g], n = st->available[g];
        for (size_t i = n; i > 1; i--) {
            size_t j = (size_t)rs_rand_below(&state, i);
            size_t t = l[i - 1];
            l[i - 1] = l[j];
            l[j] = t;
        }
        st->taken[g] = take;
        size_t n_train = (size_t)llround((double)take * o->frac_train);
        size_t n_val = (size_t)llround((double)take * o->frac_val);
        if (n_train > take) n_train = take;
        if (n_val > take - n_train) n_val = take - n_train;
        st->split_count[g][0] = n_train;
        st->split_count[g][1] = n_val;
        st->split_count[g][2] = take - n_train - n_val;
        for (size_t i = 0; i < take; i++) {
            const coco_image *im = &d->images[l[i]];
            if (extra) {
                long ty = coco_image_type(d, im->id, o, g);
                extra[tcol] = ty >= 0 ? d->categories[ty].name : "";
            }
            const char *split = SPLIT_NAMES[i < n_train ? 0 : i < n_train + n_val ? 1 : 2];
            if (o->include_images) {
                const char *dir = im->dir ? im->dir : o->images_dir;
                char *full = rs_path_join(dir, im->file_name);
                char *input = full && dir[0] != '/' ? rs_path_relative(full, m->dir) : NULL;
                int bad = !full || (dir[0] != '/' && !input);
                if (!bad && rs_manifest_add(m, RS_MODALITY_IMAGE, input ? input : full, o->groups[g].name,
                                            im->file_name, im->id, -1, split, extra, err))
                    bad = 2;
                free(full);
                free(input);
                if (bad) {
                    if (bad == 1) rs_errk(err, RS_ENOMEM, "sampling: out of memory");
                    goto done;
                }
            }
            if (o->include_captions) {
                size_t b, e;
                coco_image_captions(d, im->id, &b, &e);
                if (o->captions_per_image > 0 && e - b > (size_t)o->captions_per_image)
                    e = b + (size_t)o->captions_per_image;
                for (size_t c = b; c < e; c++)
                    if (rs_manifest_add(m, RS_MODALITY_TEXT, d->captions[c].caption, o->groups[g].name, im->file_name,
                                        im->id, d->captions[c].id, split, extra, err))
                        goto done;
            }
        }
    }
    rc = 0;
done:
    free(extra);
    for (int g = 0; g < o->n_groups; g++) free(lists[g]);
    return rc;
}

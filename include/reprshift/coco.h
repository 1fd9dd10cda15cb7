/* MS-COCO annotation files (official instances_*.json and captions_*.json layouts) and
 * balanced sampling of images into groups of supercategories.
 *
 * coco_load streams the file (a 450 MB instances_train2017.json loads in seconds with a
 * few hundred MB of memory) and keeps only: images (id, file_name, width, height),
 * categories (id, name, supercategory), instance annotations (id, image_id, category_id,
 * iscrowd) and captions (id, image_id, caption). Everything else (segmentation, bbox,
 * info, licenses, ...) is skipped after checking that it is well-formed JSON structure.
 * See docs/datasets.md. */
#ifndef REPRSHIFT_COCO_H
#define REPRSHIFT_COCO_H

#include <stddef.h>
#include <stdint.h>
#include "reprshift/error.h"
#include "reprshift/manifest.h"

typedef struct {
    int64_t id;
    char *file_name;
    int width, height;
    const char *dir; /* images directory for this image (coco_set_images_dir), or NULL */
} coco_image;

typedef struct {
    int64_t id;
    char *name;
    char *supercategory;
} coco_category;

typedef struct {
    int64_t id, image_id, category_id;
    int iscrowd;
} coco_instance;

typedef struct {
    int64_t id, image_id;
    char *caption;
} coco_caption;

/* Contents of one or more COCO files. After coco_load/coco_merge the arrays are sorted by
 * id (images, categories), by (image_id, id) (instances, captions). Strings live in an
 * internal arena freed by coco_free. */
typedef struct coco_data {
    coco_image *images;
    size_t n_images;
    coco_category *categories;
    size_t n_categories;
    coco_instance *instances;
    size_t n_instances;
    coco_caption *captions;
    size_t n_captions;
    struct coco_arena *arena;
} coco_data;

/* Stream-parse a COCO JSON file into a new coco_data (errors name the file, line and
 * column; ids must be unique, instance/caption image_ids must name listed images). */
int coco_load(const char *path, coco_data **out, rs_err *err);
/* Parse an in-memory buffer the same way (`what` names it in errors). */
int coco_parse(const char *buf, size_t n, const char *what, coco_data **out, rs_err *err);
/* Free (NULL is fine). */
void coco_free(coco_data *d);
/* Combine a captions file into an instances file's data (dst takes src's captions; src is
 * freed). Fails if no caption image id is among dst's images (captions for other images);
 * captions for images dst lacks are dropped and counted in *n_dropped. */
int coco_add_captions(coco_data *dst, coco_data *src, size_t *n_dropped, rs_err *err);

/* Merge src (another split, e.g. val next to train) into dst: images, instances, captions
 * are appended (ids must stay unique); categories must be identical if both have them.
 * src is freed in all cases. */
int coco_merge(coco_data *dst, coco_data *src, rs_err *err);
/* Set the images directory of every image that has none yet (copied into the arena). */
int coco_set_images_dir(coco_data *d, const char *dir, rs_err *err);

/* Index of the image with this id, or -1 (binary search). */
long coco_find_image(const coco_data *d, int64_t id);
/* Index of the category with this id, or -1. */
long coco_find_category(const coco_data *d, int64_t id);
/* Range [*begin, *end) of instances (or captions) of an image (binary search). */
void coco_image_instances(const coco_data *d, int64_t image_id, size_t *begin, size_t *end);
void coco_image_captions(const coco_data *d, int64_t image_id, size_t *begin, size_t *end);

/* ---- balanced sampling (src/data/sample.c) ---- */

#define COCO_MAX_GROUPS 32

/* A label and the supercategories it covers. */
typedef struct {
    const char *name;
    const char *const *supercategories; /* NULL-terminated */
} coco_group;

/* The default groups: animals, vehicles, food, indoor (see docs/datasets.md). */
extern const coco_group COCO_DEFAULT_GROUPS[4];

typedef struct {
    const coco_group *groups;
    int n_groups;
    const char *const *exclude;  /* NULL-terminated supercategories that disqualify an image, or NULL */
    size_t n_per_group;          /* images per group */
    int allow_fewer;             /* 0: error if a group has < n; 1: take min over groups (balanced) */
    uint64_t seed;
    double frac_train, frac_val; /* test gets the rest */
    int captions_per_image;      /* 0: all; else the k lowest-id captions */
    int include_images;          /* rows with modality=image */
    int include_captions;        /* rows with modality=text */
    const char *images_dir;      /* where file_name lives, for images without their own dir */
    const char *type_column;     /* non-NULL: an extra manifest column of that name holding each
                                    row's image type (coco_image_type: its COCO category name),
                                    e.g. "category" (the concept probes' control-task type) */
} coco_sample_opts;

/* Fill opts with defaults (4 default groups, n 50, seed 0, 0.7/0.15/0.15, 1 caption). */
void coco_sample_defaults(coco_sample_opts *o);

typedef struct {
    int n_groups;
    size_t available[COCO_MAX_GROUPS]; /* eligible images per group */
    size_t taken[COCO_MAX_GROUPS];
    size_t split_count[COCO_MAX_GROUPS][3]; /* images per group in train/val/test */
    size_t n_images_no_group, n_images_ambiguous, n_images_excluded;
    size_t n_images_no_caption; /* otherwise eligible, but without captions (when captions are wanted) */
} coco_sample_stats;

/* Group of an image under the exclusive-membership rule: the index of the one group its
 * annotated supercategories fall in, -1 if none, -2 if more than one, -3 if excluded. */
int coco_image_group(const coco_data *d, int64_t image_id, const coco_sample_opts *o);

/* Type of an image in group `group` (the concept probes' recurring control-task type,
 * docs/probes.md): among the image's instance annotations whose category's supercategory
 * belongs to that group (group < 0: every annotation), the category with the most
 * annotations (a crowd annotation counts once, like any other); ties go to the smallest
 * category id. Returns the index into d->categories, or -1 when no annotation qualifies. */
long coco_image_type(const coco_data *d, int64_t image_id, const coco_sample_opts *o, int group);

/* Count eligible images per group without sampling. */
int coco_group_counts(const coco_data *d, const coco_sample_opts *o, coco_sample_stats *st, rs_err *err);

/* Sample n images per group (deterministic for a seed), split them train/val/test per
 * group, and append rows (image row, then its caption rows) to manifest m. Image inputs
 * are written relative to m->dir when images_dir is given. */
int coco_sample(const coco_data *d, const coco_sample_opts *o, rs_manifest *m, coco_sample_stats *st,
                rs_err *err);

/* Deterministic PRNG used by sampling: SplitMix64 (Steele, Lea, Flood 2014). */
uint64_t rs_splitmix64(uint64_t *state);
/* Uniform integer in [0, n) from SplitMix64 by rejection (no modulo bias); n > 0. */
uint64_t rs_rand_below(uint64_t *state, uint64_t n);

#endif

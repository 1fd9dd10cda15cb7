/* Richer probe targets (docs/datasets.md, "Targets"): per manifest row, the multi-hot
 * vector of every COCO category and supercategory of the row's image (from the instance
 * annotations), and the colour words and action verbs of captions, parsed by fixed,
 * documented rules (no tagger, no stemmer). Written by the dataset stage to
 * dataset/targets.csv when probes.targets asks for more than "groups"; read back by the
 * probes stage. Pure library code: nothing prints or exits. */
#ifndef REPRSHIFT_TARGETS_H
#define REPRSHIFT_TARGETS_H

#include <stddef.h>
#include "reprshift/coco.h"
#include "reprshift/error.h"
#include "reprshift/manifest.h"

/* The fixed word lists (NULL-terminated, in column order). Colours: the 11 basic colour
 * terms of Berlin & Kay; actions: -ing forms of 22 verbs frequent in COCO captions. */
extern const char *const RS_COLOUR_WORDS[];
extern const char *const RS_ACTION_WORDS[];
#define RS_N_COLOURS 11
#define RS_N_ACTIONS 22

/* Mark hit[k] = 1 for every word k of the list that occurs in caption (hit is not cleared
 * first). Tokens: maximal runs of ASCII letters, lowercased; anything else separates. A
 * colour matches its token exactly ("grey" counts as "gray"); an action matches its -ing
 * form exactly ("laying" counts as "lying"). */
void rs_caption_colours(const char *caption, unsigned char *hit);
void rs_caption_actions(const char *caption, unsigned char *hit);

/* Target kinds, in column order. */
typedef enum { RS_TGT_CATEGORY, RS_TGT_SUPERCATEGORY, RS_TGT_COLOUR, RS_TGT_ACTION, RS_TGT_KINDS } rs_target_kind;
/* "categories", "supercategories", "colours", "actions" (the probes.targets names). */
const char *rs_target_kind_name(rs_target_kind k);

typedef struct {
    int n_cols;
    char **names;         /* [n_cols] "category:dog", "supercategory:animal", "colour:red", "action:sitting" */
    rs_target_kind *kind; /* [n_cols] */
    size_t n_rows;        /* = the manifest's rows, in its order */
    signed char *v;       /* [n_rows · n_cols] row-major: 1, 0, or -1 (unknown: no annotation / no caption) */
} rs_targets;

/* Image-level COCO targets of one image: cat[i] = 1 when the image has an instance
 * annotation (crowd ones included) of d->categories[i]; sup[j] = 1 when it has one of
 * supercategory j, the supercategories numbered in byte order of their names
 * (rs_coco_supercategories). cat [n_categories], sup [n_super]. */
void rs_image_category_targets(const coco_data *d, int64_t image_id, const char *const *supers, int n_super,
                               unsigned char *cat, unsigned char *sup);
/* The distinct supercategory names of d, in byte order (new array of pointers into d). */
int rs_coco_supercategories(const coco_data *d, const char ***out, int *n, rs_err *err);

/* Targets of every row of m. d (may be NULL: no category columns) gives the categories of
 * rows with an image_id. Caption rows get their own caption's colours and actions; an image
 * row gets the union over the caption rows of the manifest with the same image_id (unknown,
 * -1, when it has none). */
int rs_targets_build(const rs_manifest *m, const coco_data *d, rs_targets *t, rs_err *err);
/* Write path atomically: header "row,modality,image_id,caption_id,<names...>", one record per
 * manifest row (row = 0-based manifest row), cells 1 / 0 / empty (unknown). */
int rs_targets_write(const rs_targets *t, const rs_manifest *m, const char *path, rs_err *err);
/* Read a file written by rs_targets_write; n_rows must equal expect_rows (the manifest's). */
int rs_targets_load(const char *path, size_t expect_rows, rs_targets *t, rs_err *err);
void rs_targets_free(rs_targets *t);

#endif

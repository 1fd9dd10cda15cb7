/* Dataset manifests: CSV files with one input per row (the seed repo's format), columns
 *   modality   "text" or "image"                                   (required)
 *   input      the caption text, or the image path                 (required)
 *   label      class label, e.g. the supercategory group           (required)
 *   file_name  COCO file name the row belongs to                   (optional)
 *   image_id, caption_id   integer ids, empty if not applicable    (optional)
 *   split      "train", "val", "test" or empty                     (optional)
 * Any other column is kept as an extra column (e.g. edit, edit_value; `reprshift extract`
 * reads an optional "suffix" column: a caption after an image row's image + prompt). A relative image
 * path is resolved against the directory that holds the manifest, so a manifest and its
 * images can be moved together. See docs/datasets.md. */
#ifndef REPRSHIFT_MANIFEST_H
#define REPRSHIFT_MANIFEST_H

#include <stddef.h>
#include <stdint.h>
#include "reprshift/error.h"

typedef enum { RS_MODALITY_TEXT = 0, RS_MODALITY_IMAGE = 1 } rs_modality;

typedef struct {
    rs_modality modality;
    char *input;        /* as written in the file */
    char *path;         /* image rows: input resolved against the manifest's directory; else NULL */
    char *label;
    char *file_name;    /* "" if absent */
    int64_t image_id;   /* -1 if absent or empty */
    int64_t caption_id; /* -1 if absent or empty */
    char *split;        /* "" if absent */
    char **extra;       /* [n_extra] values of the extra columns */
    size_t line;        /* 1-based line in the file (0 for rows built in memory) */
} rs_manifest_row;

typedef struct {
    char *path;         /* file it was loaded from / will be written to (may be NULL) */
    char *dir;          /* directory relative image paths resolve against */
    size_t n_rows, cap;
    rs_manifest_row *rows;
    int n_extra;
    char **extra_names; /* [n_extra] */
} rs_manifest;

/* Name of a modality ("text"/"image"). */
const char *rs_modality_name(rs_modality m);

/* Load and validate a manifest CSV (columns, modality values, integer ids, split names). */
int rs_manifest_load(const char *path, rs_manifest **out, rs_err *err);
/* A new empty manifest whose relative image paths resolve against dir (NULL: "."). */
rs_manifest *rs_manifest_new(const char *dir);
/* Append a row (strings copied; file_name/split may be NULL; extra must have n_extra entries). */
int rs_manifest_add(rs_manifest *m, rs_modality modality, const char *input, const char *label,
                    const char *file_name, int64_t image_id, int64_t caption_id, const char *split,
                    const char *const *extra, rs_err *err);
/* Free a manifest (NULL is fine). */
void rs_manifest_free(rs_manifest *m);
/* Index of an extra column by name, or -1. */
int rs_manifest_extra_col(const rs_manifest *m, const char *name);

/* Check that every image row's file exists and is a readable regular file. On failure the
 * error names the manifest, the number missing and the first few (line and path). */
int rs_manifest_check_images(const rs_manifest *m, size_t *n_missing, rs_err *err);

/* Write the manifest as CSV atomically (temp file + rename). Columns: modality, input,
 * label, file_name, image_id, caption_id, split, then the extra columns. */
int rs_manifest_write(const rs_manifest *m, const char *path, rs_err *err);

/* Path of `target` relative to directory `from_dir` (both made absolute first; neither
 * needs to exist beyond its parent). Returns a new string, or NULL on OOM. */
char *rs_path_relative(const char *target, const char *from_dir);

#endif

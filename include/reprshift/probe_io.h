/* Saved probes and their inputs. A probe is PATH.safetensors (tensors "coef" [R, d] and
 * "intercept" [R] as F64 in the units of coef_space, "coef_raw"/"intercept_raw" in raw
 * activation units, "scaler_mean"/"scaler_scale" [d] when standardised; metadata
 * keys format, hook, classes (JSON array), C, coef_space, ...) plus a human-readable JSON card
 * PATH.json (hook, classes, scaler, C, metrics, data hash). Activations come from
 * `reprshift extract`: one f32 tensor [n, d] per hook, named by the hook. */
#ifndef REPRSHIFT_PROBE_IO_H
#define REPRSHIFT_PROBE_IO_H

#include <stdint.h>
#include "reprshift/error.h"
#include "reprshift/probe.h"
#include "reprshift/probe_mlp.h"

typedef struct {
    char *hook;         /* activation tensor name the probe was trained on */
    int n_classes;
    char **classes;     /* [n_classes] label strings, index = class id */
    int standardized;
    rs_scaler scaler;   /* valid if standardized */
    int is_mlp;         /* 0: logistic regression in model; 1: MLP in mlp */
    rs_logreg model;
    rs_mlp mlp;         /* tensors W1 [d,h], b1, W2 [h,R], b2 (F32); format reprshift-probe-mlp-v1 */
    char data_hash[17]; /* FNV-1a 64 of the training features and labels (hex) */
    char *metrics_json; /* optional JSON object text written into the card */
} rs_probe;

/* The logistic-regression probe as a direction in raw activation space: W [R, d], b [R] with
 * W·x + b equal to the model's logit on standardised features (W = coef / scale,
 * b = intercept − Σ_j coef_j·mean_j / scale_j; coef itself when not standardised). Saved
 * as "coef_raw"/"intercept_raw"; metadata "coef_space" says whether "coef" is in
 * "standardized" or "raw" units. Returns -1 for an MLP probe. */
int rs_probe_raw_direction(const rs_probe *p, double *W, double *b);

/* Write PATH (safetensors) and the card (PATH with .safetensors replaced by .json), atomically. */
int rs_probe_save(const rs_probe *p, const char *path, rs_err *err);
/* Load a probe written by rs_probe_save; free with rs_probe_free. */
int rs_probe_load(rs_probe *p, const char *path, rs_err *err);
/* Free everything the probe owns (safe on a zeroed struct). */
void rs_probe_free(rs_probe *p);
/* Class probabilities/predictions for raw features (applies the stored scaler). */
int rs_probe_predict(const rs_probe *p, const float *X, int n, int d, int *pred, rs_err *err);

/* FNV-1a 64 of features then labels, as 16 hex chars into out[17]. */
void rs_probe_data_hash(const float *X, size_t nx, const int *y, size_t ny, char out[17]);

/* Load one hook's activations [n, d] as a new f32 array from a safetensors file; the
 * error names the file and lists available tensors when the hook is absent. */
int rs_acts_load(const char *path, const char *hook, float **X, int *n, int *d, rs_err *err);

/* Read labels: one per line, or the named column of a CSV with a header (column != NULL).
 * Empty labels are errors naming the line. Returns new strings (rs_labels_free). */
int rs_labels_read(const char *path, const char *column, char ***labels, int *n, rs_err *err);
/* Free labels from rs_labels_read. */
void rs_labels_free(char **labels, int n);
/* Map label strings to class ids (new array of new strings). Classes are sorted numerically
 * when every label is a decimal integer ("2" before "10"; like sklearn on integer labels),
 * else by strcmp (byte order, like sklearn on strings). */
int rs_labels_encode(char **labels, int n, int **y, char ***classes, int *K, rs_err *err);

#endif

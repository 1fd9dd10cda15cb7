/* Experiment config: the schema is the SCHEMA table below (key, type, default, bounds,
 * doc). Loading is two passes: validate() walks the JSON against the table (unknown keys
 * with suggestions, types, bounds, required keys), fills defaults and resolves relative
 * paths in place; extract() then copies the now-complete tree into the plain rs_config
 * struct and does the cross-key checks. The resolved tree is kept for dumping. */
#include "reprshift/config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reprshift/fileio.h"
#include "reprshift/hf_cache.h"
#include "reprshift/image_edit.h"
#include "base/jsonutil.h"
#include "reprshift/sae_registry.h"

#define CONFIG_MAX_BYTES ((size_t)4 << 20)

typedef enum { K_OBJ, K_STR, K_INT, K_NUM, K_BOOL, K_STRS, K_INTS, K_NUMS, K_OBJS, K_GROUPS, K_STRMAP } kind;

typedef struct field {
    const char *key;
    kind k;
    int required;
    const char *def;            /* default as JSON text; NULL: an optional key stays absent */
    double lo, hi;              /* bounds of numbers (and of list elements) */
    int min_items;              /* lists: minimum length */
    const char *const *choices; /* allowed strings (K_STR, K_STRS elements) */
    int is_path;                /* resolve relative to the config file's directory */
    const struct field *sub;    /* K_OBJ / K_OBJS element fields, ended by key NULL */
    const char *doc;
} field;

/* is_path value of keys that also take a Hugging Face Hub name (models) or an SAE registry
 * name (saes.path): such a name is kept as written unless it names an existing path beside
 * the config; the pipeline resolves it in the Hugging Face cache. */
#define PATH_OR_NAME 2

static const char *const POOLS[] = {"none", "mean", "last", NULL};
static const char *const IMAGE_PROCESSORS[] = {"pil", "torchvision", NULL};
static const char *const PRECISIONS[] = {"fp32", "bf16", NULL};
static const char *const MODALITIES[] = {"text", "image", NULL};
static const char *const CE_CONVENTIONS[] = {"sae-lens", "reprshift-v1", NULL};
static const char *const CONDITIONS[] = {"llm", "vlm_text", "vlm_caption", "vlm_mismatch", "vlm_blank", NULL};
static const char *const XC_SPARSITY[] = {"l1", "batchtopk", NULL};
static const char *const ST_ARCH[] = {"jumprelu", "topk", NULL};
static const char *const ST_STORE[] = {"vlm_caption", "vlm_text", NULL};
static const char *const PROBE_KINDS[] = {"concept", "cross_modal", "modality", "brightness", "redness", "saturation",
                                          "contrast", "blur", "rotation", NULL};
static const char *const TARGET_KINDS[] = {"groups", "categories", "supercategories", "colours", "actions", NULL};
static const char *const PROBE_FEATURES[] = {"raw", "sae", NULL};
static const char *const PROBE_PENALTIES[] = {"l2", "l1", NULL};

static const field MODELS[] = {
    {"llm", K_STR, 1, NULL, 0, 0, 0, NULL, PATH_OR_NAME, NULL,
     "Gemma-2 model: a directory (Hugging Face layout) or a Hub name such as google/gemma-2-2b, found in the local "
     "Hugging Face cache (docs/models.md)"},
    {"vlm", K_STR, 1, NULL, 0, 0, 0, NULL, PATH_OR_NAME, NULL,
     "PaliGemma-2 model: a directory or a Hub name such as google/paligemma2-3b-pt-224"},
    {"llm_revision", K_STR, 0, NULL, 0, 0, 0, NULL, 0, NULL,
     "branch, tag or commit of a Hub-named llm (default: main)"},
    {"vlm_revision", K_STR, 0, NULL, 0, 0, 0, NULL, 0, NULL,
     "branch, tag or commit of a Hub-named vlm (default: main)"},
    {"tokenizer", K_STR, 0, NULL, 0, 0, 0, NULL, 1, NULL, "tokenizer.json for both (default: each model's own)"},
    {"batch_tokens", K_INT, 0, "2048", 1, 1e9, 0, NULL, 0, NULL, "tokens per forward batch"},
    {"precision", K_STR, 0, NULL, 0, 0, 0, PRECISIONS, 0, NULL,
     "compute precision: fp32 (default) or bf16, as transformers run in bfloat16 (docs/precision.md; "
     "PaliGemma: vision tower, projector and decoder)"},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

static const field SAES[] = {
    {"path", K_STR, 1, NULL, 0, 0, 0, NULL, PATH_OR_NAME, NULL,
     "SAE file or directory (Gemma Scope params.npz or sae-lens folder), or an SAE name RELEASE/SAE_ID from "
     "`reprshift sae list` (e.g. gemma-scope-2b-pt-res-canonical/layer_{layer}/width_16k/canonical) found in the "
     "Hugging Face cache; {layer} is replaced by each layer"},
    {"hook", K_STR, 0, NULL, 0, 0, 0, NULL, 0, NULL, "hook the SAE reads, {layer} expanded (default: the SAE's own hook_name)"},
    {"ce_convention", K_STR, 0, "\"sae-lens\"", 0, 0, 0, CE_CONVENTIONS, 0, NULL,
     "spliced CE convention of results/sae_fit.json, as `sae splice --ce-convention` (docs/metrics.md, Spliced CE): "
     "sae-lens (special-token rows not spliced, every row zeroed, predictions at special-token rows not counted) or "
     "reprshift-v1 (BOS rows kept in both passes, every prediction counted)"},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

static const field SPLIT[] = {
    {"train", K_NUM, 0, "0.7", 0, 1, 0, NULL, 0, NULL, "fraction of each group's images for training"},
    {"val", K_NUM, 0, "0.15", 0, 1, 0, NULL, 0, NULL, "fraction for validation"},
    {"test", K_NUM, 0, "0.15", 0, 1, 0, NULL, 0, NULL, "fraction for testing (the three must sum to 1)"},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

static const field DATASET[] = {
    {"manifest", K_STR, 0, NULL, 0, 0, 0, NULL, 1, NULL, "prebuilt manifest CSV (instead of the COCO keys)"},
    {"instances", K_STRS, 0, NULL, 0, 0, 1, NULL, 1, NULL, "COCO instances_*.json file(s)"},
    {"captions", K_STRS, 0, NULL, 0, 0, 1, NULL, 1, NULL, "COCO captions_*.json, one per instances file"},
    {"images", K_STRS, 0, NULL, 0, 0, 1, NULL, 1, NULL, "image directory, one per instances file"},
    {"groups", K_GROUPS, 0,
     "{\"animals\":[\"animal\"],\"vehicles\":[\"vehicle\"],\"food\":[\"food\"],"
     "\"indoor\":[\"furniture\",\"kitchen\",\"appliance\",\"electronic\",\"indoor\"]}",
     0, 0, 1, NULL, 0, NULL, "label -> list of COCO supercategories (exclusive membership)"},
    {"exclude_supercategories", K_STRS, 0, "[]", 0, 0, 0, NULL, 0, NULL,
     "images with any of these supercategories are dropped"},
    {"n_per_group", K_INT, 0, "50", 1, 1e9, 0, NULL, 0, NULL, "images per group"},
    {"allow_fewer", K_BOOL, 0, "false", 0, 0, 0, NULL, 0, NULL,
     "if a group has fewer than n_per_group images, take the smallest group's count for all"},
    {"seed", K_INT, 0, "0", 0, 9007199254740991.0, 0, NULL, 0, NULL, "sampling seed (SplitMix64)"},
    {"split", K_OBJ, 0, "{}", 0, 0, 0, NULL, 0, SPLIT, "train/val/test fractions, per group, by image"},
    {"captions_per_image", K_INT, 0, "1", 0, 1000, 0, NULL, 0, NULL, "the k lowest-id captions per image; 0: all. 2 or more also gives the caption-to-caption noise floor in shift.json (docs/metrics.md, Floors)"},
    {"modalities", K_STRS, 0, "[\"text\",\"image\"]", 0, 0, 1, MODALITIES, 0, NULL, "row kinds to include"},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

static const field EDIT[] = {
    {"name", K_STR, 1, NULL, 0, 0, 0, NULL, 0, NULL,
     "brightness, contrast, saturation, redness (luminance-controlled; old name redness_luma), redness_plain, blur "
     "or rotate"},
    {"values", K_NUMS, 1, NULL, -1e6, 1e6, 1, NULL, 0, NULL, "factors (blur: radius in px; rotate: degrees)"},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

static const char *const ALIGN_TEXT[] = {"vlm", "llm", NULL};

static const field INFONCE[] = {
    {"dim", K_INT, 0, "64", 1, 65536, 0, NULL, 0, NULL, "embedding size e of the two projections"},
    {"steps", K_INT, 0, "500", 1, 1e9, 0, NULL, 0, NULL, "Adam steps"},
    {"batch", K_INT, 0, "128", 2, 1000000, 0, NULL, 0, NULL,
     "pairs per step (shuffled epochs over the training pairs; at least the pair count: all of them every step)"},
    {"lr", K_NUM, 0, "0.001", 1e-9, 10, 0, NULL, 0, NULL, "Adam learning rate (betas 0.9, 0.999; eps 1e-8)"},
    {"temperature_init", K_NUM, 0, "0.07", 0.01, 1, 0, NULL, 0, NULL,
     "initial temperature T (logit scale 1/T, clamped to [1, 100] as CLIP does)"},
    {"learn_temperature", K_BOOL, 0, "true", 0, 0, 0, NULL, 0, NULL, "train the logit scale (false: fixed at 1/temperature_init)"},
    {"seed", K_INT, 0, "0", 0, 9007199254740991.0, 0, NULL, 0, NULL, "initialisation and minibatch-order seed"},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

static const field ALIGNMENT[] = {
    {"text", K_STR, 0, "\"vlm\"", 0, 0, 0, ALIGN_TEXT, 0, NULL,
     "caption activations paired with each image's VLM image activation: vlm = PaliGemma reading the caption alone "
     "(the cross_modal probes' pairing), llm = Gemma-2"},
    {"infonce", K_OBJ, 0, "{}", 0, 0, 0, NULL, 0, INFONCE, "the contrastive learner (docs/probes.md)"},
    {"ridge_alpha", K_NUM, 0, "0.1", 1e-12, 1e12, 0, NULL, 0, NULL,
     "ridge baseline: lambda = ridge_alpha * sum of squared centred training text rows / d"},
    {"splits", K_INT, 0, "1", 1, 64, 0, NULL, 0, NULL,
     "group-aware splits (split seeds 7919 + k; split 0 = the cross-modal transfer's first split): recall is the mean "
     "over the splits with a nested bootstrap CI (splits, then test pairs); cost grows splits * (1 + null_draws) fits "
     "per method and hook"},
    {"null_draws", K_INT, 0, "1", 1, 100000, 0, NULL, 0, NULL,
     "shuffled-pair null: independent shufflings of the training pairing, each refitted on every split -> null mean, "
     "95th percentile and permutation p of recall@1 (p >= 1 / (1 + null_draws)); cost grows splits * (1 + null_draws)"},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

static const field PROBES[] = {
    {"which", K_STRS, 0,
     "[\"concept\",\"cross_modal\",\"modality\",\"brightness\",\"redness\",\"saturation\",\"contrast\",\"blur\","
     "\"rotation\"]",
     0, 0, 1, PROBE_KINDS, 0, NULL, "probe families to run"},
    {"C", K_NUMS, 0, "[0.0001,0.001,0.01,0.1,1,10,100,1000,10000]", 1e-12, 1e12, 1, NULL, 0, NULL,
     "inverse L2 strength grid for logistic regression (chosen by CV)"},
    {"folds", K_INT, 0, "5", 2, 100, 0, NULL, 0, NULL, "cross-validation folds for choosing C"},
    {"seeds", K_INT, 0, "5", 1, 1000, 0, NULL, 0, NULL, "repeated splits (seeds 0..seeds-1)"},
    {"test_frac", K_NUM, 0, "0.2", 0.01, 0.99, 0, NULL, 0, NULL, "held-out fraction when no split column is used"},
    {"bootstrap", K_INT, 0, "1000", 0, 1000000, 0, NULL, 0, NULL, "bootstrap resamples for confidence intervals"},
    {"permutations", K_INT, 0, "100", 0, 1000000, 0, NULL, 0, NULL,
     "label permutations per seed for the permutation test (group level; 0 = none)"},
    {"min_test_groups", K_INT, 0, "50", 1, 1000000000, 0, NULL, 0, NULL,
     "fewest test groups (images) a split may leave; fewer is an error"},
    {"targets", K_STRS, 0, NULL, 0, 0, 1, TARGET_KINDS, 0, NULL,
     "probe targets (absent: [\"groups\"], the group probes only): \"categories\" (80 COCO categories, multi-label), "
     "\"supercategories\", \"colours\", \"actions\" (parsed from captions) add one-vs-rest probes per target "
     "and their text<->image transfer (docs/probes.md, Target probes; rules in docs/datasets.md, Targets)"},
    {"min_positives", K_INT, 0, NULL, 1, 1000000000, 0, NULL, 0, NULL,
     "target probes: fewest positive AND negative images a target needs in the training and in the test side "
     "of every split (absent: 5); others are listed as skipped"},
    {"alignment", K_OBJ, 0, NULL, 0, 0, 0, NULL, 0, ALIGNMENT,
     "contrastive (InfoNCE) text-image alignment with held-out retrieval recall@k beside Procrustes and ridge, per "
     "decoder hook -> results/alignment.json (omit to skip; docs/probes.md)"},
    {"features", K_STRS, 0, NULL, 0, 0, 1, PROBE_FEATURES, 0, NULL,
     "features the probes read: \"raw\" (the activations) and/or \"sae\" (the SAE's features at hooks that have an "
     "SAE, encoded per token then pooled; concept probes on captions); absent: [\"raw\"] (docs/probes.md)"},
    {"penalty", K_STR, 0, NULL, 0, 0, 0, PROBE_PENALTIES, 0, NULL,
     "logistic-regression penalty of the evaluated probes: \"l2\" (absent) or \"l1\" (lasso; sparse weights)"},
    {"l1_C", K_NUMS, 0, NULL, 1e-12, 1e12, 1, NULL, 0, NULL,
     "C grid used with penalty \"l1\" (absent: C)"},
    {"top_features", K_INT, 0, NULL, 1, 1000, 0, NULL, 0, NULL,
     "SAE features listed per SAE-feature probe, by absolute standardised weight (absent: 10)"},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

static const field DOWNSTREAM[] = {
    {"enabled", K_BOOL, 0, "true", 0, 0, 0, NULL, 0, NULL,
     "run the downstream stage: PaliGemma's per-caption CE with its own image (condition vlm_caption), joined "
     "with each caption's shift (docs/pipeline.md, Stage 3c)"},
    {"ablation", K_BOOL, 0, "true", 0, 0, 0, NULL, 0, NULL,
     "also the CE with the caption rows at each hook patched with Gemma-2's activation (undo the adaptation there)"},
    {"bootstrap", K_INT, 0, "1000", 0, 1000000, 0, NULL, 0, NULL,
     "bootstrap resamples of images for the Spearman CIs"},
    {"permutations", K_INT, 0, "1000", 0, 1000000, 0, NULL, 0, NULL,
     "permutations of images for the Spearman p-values (0: none)"},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

static const field STEER[] = {
    {"alphas", K_NUMS, 0, "[-4,-2,-1,0,1,2,4]", -1000, 1000, 1, NULL, 0, NULL,
     "steering strengths alpha, in units of the mean L2 norm of the clean activation at the hook over the prefix rows "
     "(image, <bos>, prompt, \\n) of each item (docs/pipeline.md, steer)"},
    {"n_items", K_INT, 0, "16", 1, 1000000, 0, NULL, 0, NULL,
     "held-out (manifest split \"test\") images steered, the first n_items in manifest order"},
    {"random_directions", K_INT, 0, "8", 1, 1000, 0, NULL, 0, NULL,
     "seeded random unit directions per hook (the control), added with the same norm alpha*s as the probe direction"},
    {"hooks", K_STRS, 0, NULL, 0, 0, 1, NULL, 0, NULL, "captured decoder hooks to steer at (default: every one in hooks)"},
    {"targets", K_STRMAP, 0, NULL, 0, 0, 0, NULL, 0, NULL,
     "class or edit family -> target words (default: the name itself); each word's first token, with a leading space"},
    {"C", K_NUM, 0, "1", 1e-12, 1e12, 0, NULL, 0, NULL, "inverse L2 strength of the probes fitted for steering"},
    {"seed", K_INT, 0, "0", 0, 9007199254740991.0, 0, NULL, 0, NULL, "seed of the random directions and the bootstrap"},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

static const field CROSSCODER[] = {
    {"hooks", K_STRS, 0, NULL, 0, 0, 1, NULL, 0, NULL,
     "captured decoder hooks to train a crosscoder at, one each (default: every one in hooks)"},
    {"sparsity", K_STR, 0, "\"l1\"", 0, 0, 0, XC_SPARSITY, 0, NULL,
     "l1 = penalty lambda * sum_i f_i * sum_s norm(W_dec,s,i) (Anthropic's crosscoder note); batchtopk = the k*batch "
     "largest f_i * sum_s norm(W_dec,s,i) of each batch (docs/crosscoder.md)"},
    {"n_latents", K_INT, 0, "0", 0, 16777216, 0, NULL, 0, NULL, "dictionary size; 0: 8 x the hidden size"},
    {"l1", K_NUM, 0, "0.1", 0, 1e6, 0, NULL, 0, NULL,
     "lambda of the l1 objective (inputs scaled to mean norm sqrt(d) per side; tune it by the L0 it gives)"},
    {"k", K_INT, 0, "32", 1, 1000000, 0, NULL, 0, NULL, "batchtopk: mean active latents per token"},
    {"steps", K_INT, 0, "2000", 1, 1e9, 0, NULL, 0, NULL, "Adam steps"},
    {"batch", K_INT, 0, "256", 1, 1000000, 0, NULL, 0, NULL, "token rows per step (shuffled epochs over the rows)"},
    {"lr", K_NUM, 0, "0.001", 1e-9, 10, 0, NULL, 0, NULL, "Adam learning rate (betas 0.9, 0.999; eps 1e-8)"},
    {"resample_every", K_INT, 0, "500", 0, 1e9, 0, NULL, 0, NULL,
     "resample dead latents every this many steps, during the first half of training (0: never)"},
    {"dead_after", K_INT, 0, "100000", 1, 1e12, 0, NULL, 0, NULL, "rows without firing after which a latent is dead"},
    {"checkpoint_every", K_INT, 0, "500", 0, 1e9, 0, NULL, 0, NULL,
     "save the training state every this many steps; a killed run resumes there (0: never)"},
    {"seed", K_INT, 0, "0", 0, 9007199254740991.0, 0, NULL, 0, NULL, "initialisation, shuffling and resampling seed"},
    {"exclusive", K_NUM, 0, "0.1", 0, 0.5, 0, NULL, 0, NULL,
     "class bounds on r = norm(d_vlm) / (norm(d_llm) + norm(d_vlm)): LLM-only r < exclusive, VLM-only r > 1 - exclusive"},
    {"shared", K_NUM, 0, "0.2", 0, 0.5, 0, NULL, 0, NULL, "shared: abs(r - 0.5) <= shared"},
    {"bootstrap", K_INT, 0, "1000", 0, 1000000, 0, NULL, 0, NULL,
     "bootstrap resamples of images for the CIs of the fit metrics"},
    {"null_runs", K_INT, 0, "0", 0, 1000, 0, NULL, 0, NULL,
     "side-swap null: retrain this many crosscoders on the same rows with each token's two sides swapped at random "
     "(the models made exchangeable) and report their class counts beside the real ones (0: none)"},
    {"seeds", K_INT, 0, "1", 1, 1000, 0, NULL, 0, NULL,
     "train the crosscoder this many times on the same rows, seeds seed + 1001*s (s = 0 .. seeds-1; the side-swap "
     "null's seed + 1 .. seed + 1000 never collide), and give each class fraction's mean and 95% t-interval over "
     "them; the first seed's model is the saved one; costs seeds x the training (1: one training, no interval)"},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

static const field SAE_TRAIN[] = {
    {"hooks", K_STRS, 0, NULL, 0, 0, 1, NULL, 0, NULL,
     "captured decoder hooks to train an SAE at, one each (default: every one in hooks)"},
    {"store", K_STR, 0, "\"vlm_caption\"", 0, 0, 0, ST_STORE, 0, NULL,
     "the VLM activations trained on: vlm_caption = PaliGemma reading each caption after its own image; vlm_text = "
     "the caption alone; their content tokens (docs/sae-training.md)"},
    {"arch", K_STR, 0, "\"jumprelu\"", 0, 0, 0, ST_ARCH, 0, NULL,
     "jumprelu = Gemma Scope's JumpReLU SAE (L0 penalty, straight-through threshold gradient); topk = the TopK trainer"},
    {"d_sae", K_INT, 0, "0", 0, 16777216, 0, NULL, 0, NULL,
     "latents; 0: the configured SAE's width at that hook, else 4 x the hidden size"},
    {"steps", K_INT, 0, "2000", 1, 1e9, 0, NULL, 0, NULL, "Adam steps"},
    {"batch", K_INT, 0, "256", 1, 1000000, 0, NULL, 0, NULL, "token rows per step (drawn with replacement)"},
    {"lr", K_NUM, 0, "0.001", 1e-9, 10, 0, NULL, 0, NULL, "Adam learning rate"},
    {"l0_coef", K_NUM, 0, "0.01", 0, 1e6, 0, NULL, 0, NULL,
     "jumprelu: lambda of the L0 penalty (rows scaled to unit mean squared norm)"},
    {"bandwidth", K_NUM, 0, "0.05", 1e-9, 1e6, 0, NULL, 0, NULL, "jumprelu: width epsilon of the rectangle kernel"},
    {"init_threshold", K_NUM, 0, "0.05", 1e-9, 1e6, 0, NULL, 0, NULL, "jumprelu: initial threshold"},
    {"l0_warmup", K_INT, 0, "0", 0, 1e9, 0, NULL, 0, NULL, "jumprelu: lambda ramps up linearly over this many steps"},
    {"k", K_INT, 0, "32", 1, 1000000, 0, NULL, 0, NULL, "topk: active latents per token"},
    {"seed", K_INT, 0, "1", 0, 9007199254740991.0, 0, NULL, 0, NULL,
     "initialisation, row sampling, bootstrap and null seed"},
    {"match_threshold", K_NUM, 0, "0.7", -1, 1, 0, NULL, 0, NULL,
     "a matched pair counts when its decoder cosine exceeds this (matching against the configured SAE)"},
    {"bootstrap", K_INT, 0, "1000", 0, 1000000, 0, NULL, 0, NULL, "bootstrap resamples of the matched pairs"},
    {"null_reps", K_INT, 0, "3", 0, 1000, 0, NULL, 0, NULL,
     "replicates of each matching null (random directions, permuted dimensions)"},
    {"max_width", K_INT, 0, "16384", 1, 1048576, 0, NULL, 0, NULL,
     "refuse to match dictionaries wider than this (dense cost matrix, O(n^3) exact assignment)"},
    {"held_out", K_BOOL, 0, "false", 0, 0, 0, NULL, 0, NULL,
     "train on the captions of the images outside the manifest's test split and report the fit (FVU, L0, dead "
     "latents) on the test images' captions with bootstrap CIs over them (needs at least 2 test images; false: "
     "train on every caption, in-sample fit only)"},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

static const field LANGUAGES[] = {
    {"codes", K_STRS, 1, NULL, 0, 0, 1, NULL, 0, NULL,
     "language codes of the translations read beside the captions (PaliGemma's prompt languages: es, de, fr, ...); "
     "each names a column of languages.translations (or the manifest's caption_<code> column), at most 8"},
    {"translations", K_STR, 0, NULL, 0, 0, 0, NULL, 1, NULL,
     "CSV with a caption_id column and one column per code: the translation of each caption of the run "
     "(docs/languages.md); absent: the manifest's caption_<code> columns (dataset.manifest)"},
    {"prompts", K_STRS, 0, NULL, 0, 0, 1, NULL, 0, NULL,
     "the PaliGemma prompt of each code, in the order of codes (default \"caption <code>\" for each)"},
    {"bootstrap", K_INT, 0, "1000", 0, 1000000, 0, NULL, 0, NULL,
     "bootstrap resamples of images for the CIs of the cross-language similarities and shift differences"},
    {"permutations", K_INT, 0, "1000", 0, 1000000, 0, NULL, 0, NULL,
     "permutations for the pairing null and the sign-flip tests (0: no p-values)"},
    {"transfer", K_BOOL, 0, "true", 0, 0, 0, NULL, 0, NULL,
     "the English -> translation concept-probe transfer (the stage's slowest part at full width: its linear maps "
     "cost ~30-45 s per condition and hook at d = 2304 on 2 cores)"},
    {"transfer_seeds", K_INT, 0, "5", 1, 1000, 0, NULL, 0, NULL,
     "group-aware splits of the English -> translation probe transfer"},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

static const field SCHEMA[] = {
    {"name", K_STR, 0, "\"experiment\"", 0, 0, 0, NULL, 0, NULL, "experiment name (report title)"},
    {"output_dir", K_STR, 1, NULL, 0, 0, 0, NULL, 1, NULL, "run directory (created; re-runs resume there)"},
    {"prompt", K_STR, 0, "\"caption en\"", 0, 0, 0, NULL, 0, NULL, "PaliGemma prompt after the image"},
    {"models", K_OBJ, 1, NULL, 0, 0, 0, NULL, 0, MODELS, "the two checkpoints"},
    {"layers", K_INTS, 0, "[12]", 0, 1000, 1, NULL, 0, NULL, "decoder layers; fills {layer} in hooks and saes.path"},
    {"hooks", K_STRS, 0, "[\"blocks.{layer}.hook_resid_post\"]", 0, 0, 1, NULL, 0, NULL,
     "capture points (TransformerLens names); {layer} expands over layers"},
    {"vision_hooks", K_STRS, 0, "[]", 0, 0, 0, NULL, 0, NULL,
     "VLM vision-side hooks (vision.*, projector.hook_out) captured in the image stores, mean over the patches, "
     "for the image-only probes; no {layer}"},
    {"pool", K_STR, 0, "\"mean\"", 0, 0, 0, POOLS, 0, NULL, "per-input pooling of token activations"},
    {"image_processor", K_STR, 0, "\"pil\"", 0, 0, 0, IMAGE_PROCESSORS, 0, NULL,
     "which transformers SigLIP image processor the VLM's images are preprocessed as, exactly: pil = "
     "SiglipImageProcessorPil (Pillow resize), torchvision = SiglipImageProcessor (torchvision backend, what "
     "transformers picks when torchvision is installed); docs/images.md"},
    {"permutations", K_INT, 0, "200", 0, 1000000, 0, NULL, 0, NULL,
     "permutations of the input pairing per shift metric (shift and conditions stages: p-values, null bands, BH "
     "q-values); 0: metrics without p-values"},
    {"conditions", K_STRS, 0, "[\"llm\",\"vlm_text\",\"vlm_caption\",\"vlm_mismatch\",\"vlm_blank\"]", 0, 0, 1,
     CONDITIONS, 0, NULL,
     "how each caption is read (docs/pipeline.md): llm = Gemma-2 <bos> caption; vlm_text = PaliGemma decoder, caption "
     "alone; vlm_caption = PaliGemma, its own image + prompt, caption as suffix; vlm_mismatch = an image of another "
     "group; vlm_blank = a mid-grey image. llm and vlm_text are required"},
    {"saes", K_OBJ, 0, NULL, 0, 0, 0, NULL, 0, SAES, "SAEs for the shift analysis (omit to skip it)"},
    {"dataset", K_OBJ, 1, NULL, 0, 0, 0, NULL, 0, DATASET, "inputs: COCO sampling or a manifest"},
    {"edits", K_OBJS, 0, "[]", 0, 0, 0, NULL, 0, EDIT, "image edits for the attribute probes"},
    {"probes", K_OBJ, 0, "{}", 0, 0, 0, NULL, 0, PROBES, "probe settings"},
    {"downstream", K_OBJ, 0, "{}", 0, 0, 0, NULL, 0, DOWNSTREAM,
     "per-caption CE of PaliGemma joined with the shift (downstream stage)"},
    {"steer", K_OBJ, 0, NULL, 0, 0, 0, NULL, 0, STEER, "steering dose-response with a random-direction control (omit to skip)"},
    {"crosscoder", K_OBJ, 0, NULL, 0, 0, 0, NULL, 0, CROSSCODER,
     "crosscoder on paired caption activations, Gemma-2 (llm) vs PaliGemma with its image (vlm_caption); omit to skip "
     "(docs/crosscoder.md)"},
    {"sae_train", K_OBJ, 0, NULL, 0, 0, 0, NULL, 0, SAE_TRAIN,
     "an SAE trained on the VLM's own activations per hook, matched against the configured SAE there by decoder "
     "cosine; omit to skip (docs/sae-training.md)"},
    {"languages", K_OBJ, 0, NULL, 0, 0, 0, NULL, 0, LANGUAGES,
     "every caption also read in translation (PaliGemma prompt \"caption <code>\"), by both models; cross-language "
     "similarity, shift per language and English -> translation probe transfer; omit to skip (docs/languages.md)"},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

/* ---------------- suggestions ---------------- */

/* Optimal-string-alignment distance: Levenshtein plus adjacent transpositions ("flods"
 * -> "folds" is one edit), the common typo. */
int rs_edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 128 || lb > 128) return (int)(la > lb ? la : lb);
    int prev2[129], prev[129], cur[129];
    for (size_t j = 0; j <= lb; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int best = prev[j - 1] + (a[i - 1] != b[j - 1]);
            if (prev[j] + 1 < best) best = prev[j] + 1;
            if (cur[j - 1] + 1 < best) best = cur[j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && prev2[j - 2] + 1 < best)
                best = prev2[j - 2] + 1;
            cur[j] = best;
        }
        memcpy(prev2, prev, sizeof prev);
        memcpy(prev, cur, sizeof cur);
    }
    return prev[lb];
}

const char *rs_nearest(const char *s, const char *const *cands, int n) {
    const char *best = NULL;
    int bd = 1 << 30;
    for (int i = 0; i < n; i++) {
        int d = rs_edit_distance(s, cands[i]);
        if (d < bd) {
            bd = d;
            best = cands[i];
        }
    }
    /* a typo: at most a third of the longer word changed (and at least 1 edit allowed) */
    size_t len = best ? strlen(best) : 0;
    if (strlen(s) > len) len = strlen(s);
    int limit = (int)(len / 3) > 1 ? (int)(len / 3) : 1;
    return best && bd <= limit ? best : NULL;
}

/* ---------------- validation ---------------- */

typedef struct {
    const char *what;
    const char *base_dir;
    rs_err *err;
    int oom; /* a string copy failed during extraction (checked before extract returns) */
} ctx;

static const char *type_name(const cJSON *x) {
    if (cJSON_IsString(x)) return "a string";
    if (cJSON_IsNumber(x)) return "a number";
    if (cJSON_IsBool(x)) return "a boolean";
    if (cJSON_IsNull(x)) return "null";
    if (cJSON_IsArray(x)) return "an array";
    return "an object";
}

static const char *kind_name(kind k) {
    switch (k) {
    case K_OBJ: return "an object";
    case K_STR: return "a string";
    case K_INT: return "an integer";
    case K_NUM: return "a number";
    case K_BOOL: return "true or false";
    case K_STRS: return "a string or a list of strings";
    case K_INTS: return "a list of integers";
    case K_NUMS: return "a list of numbers";
    case K_OBJS: return "a list of objects";
    case K_GROUPS: return "an object mapping each label to a list of supercategories";
    case K_STRMAP: return "an object mapping each name to a list of strings";
    }
    return "?";
}

/* "prefix.key" (or "key" at the top); long paths are cut, which only shortens messages. */
static void join_path(char *out, size_t n, const char *prefix, const char *key) {
    if (snprintf(out, n, "%s%s%s", prefix, *prefix ? "." : "", key) >= (int)n) out[n - 1] = 0;
}

static int check_choice(ctx *c, const char *path, const char *s, const char *const *choices) {
    if (!choices) return 0;
    int n = 0;
    for (; choices[n]; n++)
        if (!strcmp(choices[n], s)) return 0;
    char list[400] = "";
    size_t k = 0;
    for (int i = 0; i < n && k < sizeof list; i++) k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", i ? ", " : "", choices[i]);
    const char *near = rs_nearest(s, choices, n);
    if (near) return rs_errk(c->err, RS_EINVAL, "%s: '%s': unknown value \"%s\" (did you mean \"%s\"?)", c->what, path, s, near);
    return rs_errk(c->err, RS_EINVAL, "%s: '%s': unknown value \"%s\" (valid: %s)", c->what, path, s, list);
}

/* Replace item by n inside parent, keeping item's key when parent is an object. */
static int replace(cJSON *parent, cJSON *item, cJSON *n) {
    if (item->string) {
        n->string = strdup(item->string);
        if (!n->string) return 0;
        n->type &= ~cJSON_StringIsConst;
    }
    return cJSON_ReplaceItemViaPointer(parent, item, n);
}

/* A Hub repo id ("google/gemma-2-2b") or SAE registry name ("gemma-scope-2b-pt-res/...")
 * that is not a path relative to the config's folder. */
static int is_hub_name(const ctx *c, const char *s) {
    char rel[256];
    size_t k = strcspn(s, "/");
    if (k >= sizeof rel) return 0;
    memcpy(rel, s, k);
    rel[k] = 0;
    int repo = rs_hf_is_repo_id(s);
    if (!repo && !rs_sae_registry_has_release(rel)) return 0;
    /* a repo id is a path when that folder exists; an SAE name ({layer} unexpanded) when its release folder does */
    const char *as_path = repo ? s : rel;
    char *full = c->base_dir ? rs_path_join(c->base_dir, as_path) : strdup(as_path);
    int exists = full && rs_path_exists(full);
    free(full);
    return !exists;
}

/* Replace a string item's value by the path resolved against base_dir. */
static int resolve_path(ctx *c, cJSON *parent, cJSON *item) {
    const char *s = item->valuestring;
    if (!c->base_dir || !*s || s[0] == '/') return 0;
    char *full = rs_path_join(c->base_dir, s);
    cJSON *n = full ? cJSON_CreateString(full) : NULL;
    free(full);
    if (!n || !replace(parent, item, n)) {
        cJSON_Delete(n);
        return rs_errk(c->err, RS_ENOMEM, "%s: out of memory", c->what);
    }
    return 0;
}

static int validate_obj(ctx *c, cJSON *obj, const field *fields, const char *prefix);

static int wrong_type(ctx *c, const char *path, const field *f, const cJSON *x, const char *extra) {
    return rs_errk(c->err, RS_EINVAL, "%s: '%s' must be %s%s, got %s", c->what, path, kind_name(f->k), extra ? extra : "",
                   type_name(x));
}

/* Wrap a scalar list item into a one-element array (so "a" == ["a"]). */
static cJSON *wrap_scalar(ctx *c, cJSON *parent, cJSON *item) {
    cJSON *arr = cJSON_CreateArray(), *dup = cJSON_Duplicate(item, 1);
    if (!arr || !dup) {
        cJSON_Delete(arr);
        cJSON_Delete(dup);
        rs_errk(c->err, RS_ENOMEM, "%s: out of memory", c->what);
        return NULL;
    }
    cJSON_AddItemToArray(arr, dup); /* cannot fail with both non-NULL */
    if (!replace(parent, item, arr)) {
        cJSON_Delete(arr);
        rs_errk(c->err, RS_ENOMEM, "%s: out of memory", c->what);
        return NULL;
    }
    return arr;
}

static int check_list(ctx *c, cJSON *parent, cJSON *item, const field *f, const char *path) {
    int scalar_ok = (f->k == K_STRS && cJSON_IsString(item)) || (f->k != K_STRS && f->k != K_OBJS && cJSON_IsNumber(item));
    if (scalar_ok && !(item = wrap_scalar(c, parent, item))) return -1;
    if (!cJSON_IsArray(item)) return wrong_type(c, path, f, item, NULL);
    int n = cJSON_GetArraySize(item);
    if (n < f->min_items)
        return rs_errk(c->err, RS_EINVAL, "%s: '%s' must have at least %d item%s", c->what, path, f->min_items,
                       f->min_items == 1 ? "" : "s");
    int i = 0;
    for (cJSON *x = item->child, *next; x; x = next, i++) {
        next = x->next;
        char ep[300];
        snprintf(ep, sizeof ep, "%s[%d]", path, i);
        if (f->k == K_STRS) {
            if (!cJSON_IsString(x)) return rs_errk(c->err, RS_EINVAL, "%s: '%s' must be a string, got %s", c->what, ep, type_name(x));
            if (check_choice(c, ep, x->valuestring, f->choices)) return -1;
            for (cJSON *y = item->child; y != x; y = y->next)
                if (!strcmp(y->valuestring, x->valuestring))
                    return rs_errk(c->err, RS_EINVAL, "%s: '%s': \"%s\" is listed twice", c->what, path, x->valuestring);
            if (f->is_path && resolve_path(c, item, x)) return -1;
        } else if (f->k == K_INTS) {
            if (!rs_json_is_int(x, (int64_t)f->lo, (int64_t)f->hi))
                return rs_errk(c->err, RS_EINVAL, "%s: '%s' must be an integer in [%.0f, %.0f], got %s", c->what, ep, f->lo, f->hi,
                               cJSON_IsNumber(x) ? "a value outside that range" : type_name(x));
        } else if (f->k == K_NUMS) {
            if (!cJSON_IsNumber(x) || !(x->valuedouble >= f->lo && x->valuedouble <= f->hi))
                return rs_errk(c->err, RS_EINVAL, "%s: '%s' must be a number in [%g, %g], got %s", c->what, ep, f->lo, f->hi,
                               cJSON_IsNumber(x) ? "a value outside that range" : type_name(x));
        } else { /* K_OBJS */
            if (!cJSON_IsObject(x)) return rs_errk(c->err, RS_EINVAL, "%s: '%s' must be an object, got %s", c->what, ep, type_name(x));
            if (validate_obj(c, x, f->sub, ep)) return -1;
        }
    }
    return 0;
}

static int check_groups(ctx *c, cJSON *item, const char *path) {
    if (!cJSON_IsObject(item))
        return rs_errk(c->err, RS_EINVAL, "%s: '%s' must be %s, got %s", c->what, path, kind_name(K_GROUPS), type_name(item));
    int n = cJSON_GetArraySize(item);
    if (n < 1 || n > COCO_MAX_GROUPS)
        return rs_errk(c->err, RS_EINVAL, "%s: '%s' must have 1 to %d groups, has %d", c->what, path, COCO_MAX_GROUPS, n);
    static const field list = {"", K_STRS, 0, NULL, 0, 0, 1, NULL, 0, NULL, NULL};
    for (cJSON *g = item->child, *next; g; g = next) {
        next = g->next;
        char gp[300];
        join_path(gp, sizeof gp, path, g->string);
        if (!*g->string) return rs_errk(c->err, RS_EINVAL, "%s: '%s' has a group with an empty name", c->what, path);
        for (cJSON *h = item->child; h != g; h = h->next)
            if (!strcmp(h->string, g->string))
                return rs_errk(c->err, RS_EINVAL, "%s: '%s': group \"%s\" is defined twice", c->what, path, g->string);
        if (check_list(c, item, g, &list, gp)) return -1;
    }
    return 0;
}

/* An object whose every value is a non-empty list of strings (steer.targets). */
static int check_strmap(ctx *c, cJSON *item, const char *path) {
    if (!cJSON_IsObject(item))
        return rs_errk(c->err, RS_EINVAL, "%s: '%s' must be %s, got %s", c->what, path, kind_name(K_STRMAP), type_name(item));
    static const field list = {"", K_STRS, 0, NULL, 0, 0, 1, NULL, 0, NULL, NULL};
    for (cJSON *g = item->child, *next; g; g = next) {
        next = g->next;
        char gp[300];
        join_path(gp, sizeof gp, path, g->string);
        if (check_list(c, item, g, &list, gp)) return -1;
    }
    return 0;
}

static int check_value(ctx *c, cJSON *parent, cJSON *item, const field *f, const char *path) {
    switch (f->k) {
    case K_OBJ:
        if (!cJSON_IsObject(item)) return wrong_type(c, path, f, item, NULL);
        return validate_obj(c, item, f->sub, path);
    case K_STR:
        if (!cJSON_IsString(item)) return wrong_type(c, path, f, item, NULL);
        if (check_choice(c, path, item->valuestring, f->choices)) return -1;
        if (f->is_path && !*item->valuestring) return rs_errk(c->err, RS_EINVAL, "%s: '%s' is an empty path", c->what, path);
        if (f->is_path == PATH_OR_NAME && is_hub_name(c, item->valuestring)) return 0;
        return f->is_path ? resolve_path(c, parent, item) : 0;
    case K_INT:
        if (!rs_json_is_int(item, (int64_t)f->lo, (int64_t)f->hi)) {
            char extra[96];
            snprintf(extra, sizeof extra, " in [%.0f, %.0f]", f->lo, f->hi);
            if (cJSON_IsNumber(item))
                return rs_errk(c->err, RS_EINVAL, "%s: '%s' must be an integer%s, got %g", c->what, path, extra, item->valuedouble);
            return wrong_type(c, path, f, item, extra);
        }
        return 0;
    case K_NUM:
        if (!cJSON_IsNumber(item) || !(item->valuedouble >= f->lo && item->valuedouble <= f->hi)) {
            char extra[96];
            snprintf(extra, sizeof extra, " in [%g, %g]", f->lo, f->hi);
            if (cJSON_IsNumber(item))
                return rs_errk(c->err, RS_EINVAL, "%s: '%s' must be a number%s, got %g", c->what, path, extra, item->valuedouble);
            return wrong_type(c, path, f, item, extra);
        }
        return 0;
    case K_BOOL:
        return cJSON_IsBool(item) ? 0 : wrong_type(c, path, f, item, NULL);
    case K_GROUPS:
        return check_groups(c, item, path);
    case K_STRMAP:
        return check_strmap(c, item, path);
    default:
        return check_list(c, parent, item, f, path);
    }
}

static int validate_obj(ctx *c, cJSON *obj, const field *fields, const char *prefix) {
    const char *keys[32];
    int nk = 0;
    for (const field *f = fields; f->key && nk < 32; f++) keys[nk++] = f->key;
    for (cJSON *x = obj->child; x; x = x->next) {
        if (x->string[0] == '_') continue; /* "_comment" etc. */
        for (cJSON *y = obj->child; y != x; y = y->next)
            if (!strcmp(y->string, x->string)) {
                char p[300];
                join_path(p, sizeof p, prefix, x->string);
                return rs_errk(c->err, RS_EINVAL, "%s: duplicate key '%s'", c->what, p);
            }
        int known = 0;
        for (int i = 0; i < nk && !known; i++) known = !strcmp(keys[i], x->string);
        if (known) continue;
        char p[300];
        join_path(p, sizeof p, prefix, x->string);
        const char *near = rs_nearest(x->string, keys, nk);
        if (near) {
            char q[300];
            join_path(q, sizeof q, prefix, near);
            return rs_errk(c->err, RS_EINVAL, "%s: unknown key '%s' (did you mean '%s'?)", c->what, p, q);
        }
        char list[400] = "";
        size_t k = 0;
        for (int i = 0; i < nk && k < sizeof list; i++) k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", i ? ", " : "", keys[i]);
        return rs_errk(c->err, RS_EINVAL, "%s: unknown key '%s' (valid keys%s%s: %s)", c->what, p, *prefix ? " in " : "", prefix,
                       list);
    }
    for (const field *f = fields; f->key; f++) {
        char p[300];
        join_path(p, sizeof p, prefix, f->key);
        cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, f->key);
        if (!item) {
            if (f->required) return rs_errk(c->err, RS_EINVAL, "%s: missing required key '%s' (%s)", c->what, p, f->doc);
            if (!f->def) continue;
            item = cJSON_Parse(f->def);
            if (!item || !cJSON_AddItemToObject(obj, f->key, item)) {
                cJSON_Delete(item);
                return rs_errk(c->err, RS_ENOMEM, "%s: out of memory", c->what);
            }
        }
        if (check_value(c, obj, item, f, p)) return -1;
    }
    return 0;
}

/* ---------------- extraction ---------------- */

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

/* Copy of string field k (NULL when absent); a failed copy sets cx->oom, so an optional
 * field is never taken as absent because memory ran out. */
static char *sdup(ctx *cx, const cJSON *o, const char *k) {
    const cJSON *x = get(o, k);
    if (!x || !cJSON_IsString(x)) return NULL;
    char *s = strdup(x->valuestring);
    if (!s) cx->oom = 1;
    return s;
}

/* Copy a validated string list into a new NULL-terminated array; *n gets its length. */
static void free_strs(char **v);
/* NULL (and cx->oom set) when any copy fails: never a list with holes. */
static char **strs(ctx *cx, const cJSON *arr, int *n) {
    int m = arr ? cJSON_GetArraySize(arr) : 0;
    char **v = calloc((size_t)m + 1, sizeof *v);
    if (!v) {
        cx->oom = 1;
        return NULL;
    }
    int i = 0;
    for (const cJSON *x = arr ? arr->child : NULL; x; x = x->next)
        if (!(v[i++] = strdup(x->valuestring))) {
            free_strs(v);
            cx->oom = 1;
            return NULL;
        }
    if (n) *n = m;
    return v;
}

static void free_strs(char **v) {
    if (!v) return;
    for (char **p = v; *p; p++) free(*p);
    free(v);
}

static double *nums(const cJSON *arr, int *n) {
    int m = cJSON_GetArraySize(arr);
    double *v = malloc(((size_t)m + 1) * sizeof *v);
    if (!v) return NULL;
    int i = 0;
    for (const cJSON *x = arr->child; x; x = x->next) v[i++] = x->valuedouble;
    *n = m;
    return v;
}

void rs_config_free(rs_config *c) {
    if (!c) return;
    free(c->path);
    free(c->name);
    free(c->output_dir);
    free(c->prompt);
    free(c->llm);
    free(c->vlm);
    free(c->tokenizer);
    free(c->layers);
    for (int i = 0; i < c->n_hooks; i++) free(c->hooks[i]);
    free(c->hooks);
    free_strs(c->vision_hooks);
    free_strs(c->conditions);
    free(c->pool);
    free(c->sae_path);
    free(c->sae_hook);
    free(c->dataset.manifest);
    free_strs(c->dataset.instances);
    free_strs(c->dataset.captions);
    free_strs(c->dataset.images);
    for (int g = 0; g < c->dataset.n_groups; g++) {
        free((char *)c->dataset.groups[g].name);
        free_strs((char **)c->dataset.groups[g].supercategories);
    }
    free_strs(c->dataset.exclude);
    for (int i = 0; i < c->n_edits; i++) {
        free(c->edits[i].name);
        free(c->edits[i].values);
    }
    free(c->edits);
    free_strs(c->probes.which);
    free_strs(c->probes.targets);
    free(c->probes.C);
    free(c->probes.l1_C);
    free(c->steer.alphas);
    free_strs(c->steer.hooks);
    free_strs(c->crosscoder.hooks);
    free_strs(c->sae_train.hooks);
    free_strs(c->languages.codes);
    free_strs(c->languages.prompts);
    free(c->languages.translations);
    cJSON_Delete(c->resolved);
    free(c);
}

/* Replace every "{layer}" in tmpl by layer (new string). */
static char *expand_layer(const char *tmpl, int layer) {
    char num[16];
    snprintf(num, sizeof num, "%d", layer);
    size_t n = 0;
    for (const char *p = strstr(tmpl, "{layer}"); p; p = strstr(p + 7, "{layer}")) n++;
    char *out = malloc(strlen(tmpl) + n * strlen(num) + 1);
    if (!out) return NULL;
    char *o = out;
    for (const char *p = tmpl; *p;) {
        if (!strncmp(p, "{layer}", 7)) {
            o = stpcpy(o, num);
            p += 7;
        } else
            *o++ = *p++;
    }
    *o = 0;
    return out;
}

static int extract(rs_config *c, const cJSON *r, ctx *cx) {
    rs_err *err = cx->err;
    const char *what = cx->what;
    c->name = sdup(cx, r, "name");
    c->output_dir = sdup(cx, r, "output_dir");
    c->prompt = sdup(cx, r, "prompt");
    c->pool = sdup(cx, r, "pool");
    c->image_processor = RS_IMAGE_PROCESSOR_PIL; /* the value was validated against IMAGE_PROCESSORS */
    rs_image_processor_parse(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "image_processor")),
                             &c->image_processor);
    const cJSON *m = get(r, "models");
    c->llm = sdup(cx, m, "llm");
    c->vlm = sdup(cx, m, "vlm");
    c->tokenizer = sdup(cx, m, "tokenizer");
    if (cx->oom) return rs_errk(err, RS_ENOMEM, "%s: out of memory", what);
    c->batch_tokens = (int64_t)get(m, "batch_tokens")->valuedouble;
    c->precision = RS_PREC_FP32; /* absent: fp32 (the value was validated against PRECISIONS) */
    if (get(m, "precision")) rs_precision_parse(cJSON_GetStringValue(get(m, "precision")), &c->precision);

    const cJSON *layers = get(r, "layers");
    c->n_layers = cJSON_GetArraySize(layers);
    c->layers = malloc((size_t)c->n_layers * sizeof *c->layers);
    if (!c->layers) return rs_errk(err, RS_ENOMEM, "%s: out of memory", what);
    int i = 0;
    for (const cJSON *x = layers->child; x; x = x->next, i++) {
        c->layers[i] = (int)x->valuedouble;
        for (int j = 0; j < i; j++)
            if (c->layers[j] == c->layers[i]) return rs_errk(err, RS_EINVAL, "%s: 'layers' lists %d twice", what, c->layers[i]);
    }
    const cJSON *hooks = get(r, "hooks");
    c->hooks = calloc((size_t)cJSON_GetArraySize(hooks) * (size_t)c->n_layers + 1, sizeof *c->hooks);
    if (!c->hooks) return rs_errk(err, RS_ENOMEM, "%s: out of memory", what);
    for (const cJSON *x = hooks->child; x; x = x->next) {
        int templ = strstr(x->valuestring, "{layer}") != NULL;
        for (int l = 0; l < (templ ? c->n_layers : 1); l++) {
            char *h = expand_layer(x->valuestring, templ ? c->layers[l] : 0);
            if (!h) return rs_errk(err, RS_ENOMEM, "%s: out of memory", what);
            int dup = 0;
            for (int j = 0; j < c->n_hooks && !dup; j++) dup = !strcmp(c->hooks[j], h);
            if (dup) free(h);
            else c->hooks[c->n_hooks++] = h;
        }
    }

    c->vision_hooks = strs(cx, get(r, "vision_hooks"), &c->n_vision_hooks);
    c->shift_permutations = (int)get(r, "permutations")->valuedouble;
    c->conditions = strs(cx, get(r, "conditions"), &c->n_conditions);
    if (!c->conditions) return rs_errk(err, RS_ENOMEM, "%s: out of memory", what);
    if (!rs_config_has_condition(c, "llm") || !rs_config_has_condition(c, "vlm_text"))
        return rs_errk(err, RS_EINVAL, "%s: 'conditions' must include \"llm\" and \"vlm_text\" (the shift and probe stages compare "
                            "them); add the image conditions after them", what);
    if ((rs_config_has_condition(c, "vlm_mismatch") || rs_config_has_condition(c, "vlm_blank")) &&
        !rs_config_has_condition(c, "vlm_caption"))
        return rs_errk(err, RS_EINVAL, "%s: 'conditions': vlm_mismatch and vlm_blank are compared with vlm_caption (the caption after "
                            "its own image): add \"vlm_caption\"", what);
    if (!c->vision_hooks) return rs_errk(err, RS_ENOMEM, "%s: out of memory", what);

    const cJSON *s = get(r, "saes");
    if (s) {
        c->has_saes = 1;
        c->sae_path = sdup(cx, s, "path");
        c->sae_hook = sdup(cx, s, "hook");
        if (cx->oom) return rs_errk(err, RS_ENOMEM, "%s: out of memory", what);
        const cJSON *cc = cJSON_GetObjectItemCaseSensitive(s, "ce_convention");
        c->sae_ce_convention = cJSON_IsString(cc) && !strcmp(cc->valuestring, "reprshift-v1");
        if (!strstr(c->sae_path, "{layer}") && c->n_layers > 1)
            return rs_errk(err, RS_EINVAL, "%s: 'saes.path' has no {layer} but 'layers' lists %d layers (one SAE per layer)",
                           what, c->n_layers);
    }

    const cJSON *d = get(r, "dataset");
    c->dataset.manifest = sdup(cx, d, "manifest");
    if (cx->oom) return rs_errk(err, RS_ENOMEM, "%s: out of memory", what);
    const cJSON *inst = get(d, "instances"), *caps = get(d, "captions"), *imgs = get(d, "images");
    const cJSON *mods = get(d, "modalities");
    for (const cJSON *x = mods->child; x; x = x->next) {
        if (!strcmp(x->valuestring, "text")) c->dataset.use_text = 1;
        if (!strcmp(x->valuestring, "image")) c->dataset.use_images = 1;
    }
    if (c->dataset.manifest && (inst || caps || imgs))
        return rs_errk(err, RS_EINVAL, "%s: 'dataset.manifest' replaces 'dataset.instances'/'captions'/'images': give one or the "
                            "other", what);
    if (!c->dataset.manifest) {
        if (!inst)
            return rs_errk(err, RS_EINVAL, "%s: 'dataset' needs 'instances' (COCO instances_*.json) or 'manifest'", what);
        int ni = cJSON_GetArraySize(inst);
        if (c->dataset.use_text && !caps)
            return rs_errk(err, RS_EINVAL, "%s: 'dataset.captions' is required when 'dataset.modalities' includes \"text\"",
                           what);
        if (c->dataset.use_images && !imgs)
            return rs_errk(err, RS_EINVAL, "%s: 'dataset.images' is required when 'dataset.modalities' includes \"image\"",
                           what);
        if (caps && cJSON_GetArraySize(caps) != ni)
            return rs_errk(err, RS_EINVAL, "%s: 'dataset.captions' has %d entries but 'dataset.instances' has %d (one each)",
                           what, cJSON_GetArraySize(caps), ni);
        if (imgs && cJSON_GetArraySize(imgs) != ni)
            return rs_errk(err, RS_EINVAL, "%s: 'dataset.images' has %d entries but 'dataset.instances' has %d (one each)", what,
                           cJSON_GetArraySize(imgs), ni);
        c->dataset.n_instances = ni;
    }
    c->dataset.instances = strs(cx, inst, NULL);
    c->dataset.captions = strs(cx, caps, NULL);
    c->dataset.images = strs(cx, imgs, NULL);
    c->dataset.exclude = strs(cx, get(d, "exclude_supercategories"), NULL);
    if (cx->oom) return rs_errk(err, RS_ENOMEM, "%s: out of memory", what);
    const cJSON *groups = get(d, "groups");
    for (const cJSON *g = groups->child; g; g = g->next) {
        coco_group *cg = &c->dataset.groups[c->dataset.n_groups++];
        cg->name = strdup(g->string);
        cg->supercategories = (const char *const *)strs(cx, g, NULL);
        if (!cg->name || !cg->supercategories) return rs_errk(err, RS_ENOMEM, "%s: out of memory", what);
        for (const char *const *sc = cg->supercategories; *sc; sc++) {
            for (const char *const *ex = (const char *const *)c->dataset.exclude; ex && *ex; ex++)
                if (!strcmp(*ex, *sc))
                    return rs_errk(err, RS_EINVAL, "%s: supercategory \"%s\" is both in 'dataset.groups.%s' and in "
                                        "'dataset.exclude_supercategories'", what, *sc, cg->name);
            for (int h = 0; h + 1 < c->dataset.n_groups; h++)
                for (const char *const *o = c->dataset.groups[h].supercategories; *o; o++)
                    if (!strcmp(*o, *sc))
                        return rs_errk(err, RS_EINVAL, "%s: supercategory \"%s\" is in both 'dataset.groups.%s' and "
                                            "'dataset.groups.%s' (groups must not overlap)",
                                       what, *sc, c->dataset.groups[h].name, cg->name);
        }
    }
    c->dataset.n_per_group = (int64_t)get(d, "n_per_group")->valuedouble;
    c->dataset.allow_fewer = cJSON_IsTrue(get(d, "allow_fewer"));
    c->dataset.seed = (uint64_t)get(d, "seed")->valuedouble;
    c->dataset.captions_per_image = (int)get(d, "captions_per_image")->valuedouble;
    const cJSON *sp = get(d, "split");
    c->dataset.frac_train = get(sp, "train")->valuedouble;
    c->dataset.frac_val = get(sp, "val")->valuedouble;
    c->dataset.frac_test = get(sp, "test")->valuedouble;
    double sum = c->dataset.frac_train + c->dataset.frac_val + c->dataset.frac_test;
    if (fabs(sum - 1) > 1e-6)
        return rs_errk(err, RS_EINVAL, "%s: 'dataset.split' fractions must sum to 1 (train %g + val %g + test %g = %g)", what,
                       c->dataset.frac_train, c->dataset.frac_val, c->dataset.frac_test, sum);

    const cJSON *edits = get(r, "edits");
    c->edits = calloc((size_t)cJSON_GetArraySize(edits) + 1, sizeof *c->edits);
    if (!c->edits) return rs_errk(err, RS_ENOMEM, "%s: out of memory", what);
    const char *edit_names[RS_EDIT_COUNT];
    for (int k = 0; k < RS_EDIT_COUNT; k++) edit_names[k] = rs_edit_name((rs_edit_kind)k);
    i = 0;
    for (const cJSON *e = edits->child; e; e = e->next, i++) {
        rs_config_edit *ce = &c->edits[c->n_edits++];
        ce->name = sdup(cx, e, "name");
        ce->values = nums(get(e, "values"), &ce->n_values);
        if (!ce->name || !ce->values) return rs_errk(err, RS_ENOMEM, "%s: out of memory", what);
        /* known: a canonical name or the alias redness_luma (rs_edit_parse decides) */
        char probe[160];
        rs_edit kind_i;
        rs_err e0 = {0};
        snprintf(probe, sizeof probe, "%.100s=1", ce->name);
        int known = !strchr(ce->name, '=') && rs_edit_parse(probe, &kind_i, &e0) == 0;
        if (!known) {
            const char *near = rs_nearest(ce->name, edit_names, RS_EDIT_COUNT);
            char list[300] = "";
            size_t k2 = 0;
            for (int k = 0; k < RS_EDIT_COUNT && k2 < sizeof list; k++)
                k2 += (size_t)snprintf(list + k2, sizeof list - k2, "%s%s", k ? ", " : "", edit_names[k]);
            if (k2 < sizeof list) snprintf(list + k2, sizeof list - k2, ", redness_luma (old name of redness)");
            if (near)
                return rs_errk(err, RS_EINVAL, "%s: 'edits[%d].name': unknown edit \"%s\" (did you mean \"%s\"?)", what, i,
                               ce->name, near);
            return rs_errk(err, RS_EINVAL, "%s: 'edits[%d].name': unknown edit \"%s\" (valid: %s)", what, i, ce->name, list);
        }
        for (int j = 0; j < i; j++) {
            rs_edit kind_j;
            snprintf(probe, sizeof probe, "%.100s=1", c->edits[j].name);
            if (rs_edit_parse(probe, &kind_j, &e0) == 0 && kind_j.kind == kind_i.kind)
                return rs_errk(err, RS_EINVAL, "%s: 'edits[%d]': edit \"%s\" is listed twice (put all values in one list)", what,
                               i, ce->name);
        }
        for (int v = 0; v < ce->n_values; v++) {
            char spec[96];
            snprintf(spec, sizeof spec, "%s=%.17g", ce->name, ce->values[v]);
            rs_edit parsed;
            rs_err e2 = {0};
            if (rs_edit_parse(spec, &parsed, &e2))
                return rs_errk(err, e2.kind, "%s: 'edits[%d].values[%d]': %s", what, i, v, e2.msg);
        }
    }

    const cJSON *p = get(r, "probes");
    c->probes.which = strs(cx, get(p, "which"), &c->probes.n_which);
    c->probes.C = nums(get(p, "C"), &c->probes.n_C);
    c->probes.folds = (int)get(p, "folds")->valuedouble;
    c->probes.seeds = (int)get(p, "seeds")->valuedouble;
    c->probes.bootstrap = (int)get(p, "bootstrap")->valuedouble;
    c->probes.test_frac = get(p, "test_frac")->valuedouble;
    c->probes.permutations = (int)get(p, "permutations")->valuedouble;
    c->probes.min_test_groups = (int)get(p, "min_test_groups")->valuedouble;
    c->probes.targets = get(p, "targets") ? strs(cx, get(p, "targets"), &c->probes.n_targets) : NULL;
    c->probes.min_positives = get(p, "min_positives") ? (int)get(p, "min_positives")->valuedouble : 5;
    const cJSON *al = get(p, "alignment");
    if (al) {
        const cJSON *in = get(al, "infonce");
        c->probes.align.on = 1;
        c->probes.align.text_llm = !strcmp(get(al, "text")->valuestring, "llm");
        c->probes.align.ridge_alpha = get(al, "ridge_alpha")->valuedouble;
        c->probes.align.splits = (int)get(al, "splits")->valuedouble;
        c->probes.align.null_draws = (int)get(al, "null_draws")->valuedouble;
        c->probes.align.dim = (int)get(in, "dim")->valuedouble;
        c->probes.align.steps = (int)get(in, "steps")->valuedouble;
        c->probes.align.batch = (int)get(in, "batch")->valuedouble;
        c->probes.align.lr = get(in, "lr")->valuedouble;
        c->probes.align.temperature_init = get(in, "temperature_init")->valuedouble;
        c->probes.align.learn_temperature = cJSON_IsTrue(get(in, "learn_temperature"));
        c->probes.align.seed = (uint64_t)get(in, "seed")->valuedouble;
    }
    c->probes.feat_raw = 1;
    if (get(p, "features")) {
        c->probes.feat_raw = c->probes.feat_sae = 0;
        const cJSON *f;
        cJSON_ArrayForEach(f, get(p, "features")) {
            if (!strcmp(f->valuestring, "raw")) c->probes.feat_raw = 1;
            if (!strcmp(f->valuestring, "sae")) c->probes.feat_sae = 1;
        }
    }
    if (c->probes.feat_sae && !c->has_saes)
        return rs_errk(err, RS_EINVAL, "%s: 'probes.features': \"sae\" needs an SAE per layer: set saes.path", what);
    if (!c->probes.feat_raw)
        return rs_errk(err, RS_EINVAL, "%s: 'probes.features': must include \"raw\" (SAE-feature probes are fitted "
                       "beside the raw-activation probes, e.g. [\"raw\", \"sae\"])", what);
    c->probes.penalty = get(p, "penalty") && !strcmp(get(p, "penalty")->valuestring, "l1");
    if (get(p, "l1_C") && !(c->probes.l1_C = nums(get(p, "l1_C"), &c->probes.n_l1_C))) cx->oom = 1;
    c->probes.top_features = get(p, "top_features") ? (int)get(p, "top_features")->valuedouble : 10;
    const cJSON *ds = get(r, "downstream");
    c->downstream.enabled = cJSON_IsTrue(get(ds, "enabled"));
    c->downstream.ablation = cJSON_IsTrue(get(ds, "ablation"));
    c->downstream.bootstrap = (int)get(ds, "bootstrap")->valuedouble;
    c->downstream.permutations = (int)get(ds, "permutations")->valuedouble;
    const cJSON *st = get(r, "steer");
    if (st) {
        c->steer.on = 1;
        if (!(c->steer.alphas = nums(get(st, "alphas"), &c->steer.n_alphas))) cx->oom = 1;
        c->steer.n_items = (int)get(st, "n_items")->valuedouble;
        c->steer.random_directions = (int)get(st, "random_directions")->valuedouble;
        c->steer.C = get(st, "C")->valuedouble;
        c->steer.seed = (uint64_t)get(st, "seed")->valuedouble;
        c->steer.targets = get(st, "targets");
        const cJSON *sh = get(st, "hooks");
        c->steer.hooks = sh ? strs(cx, sh, &c->steer.n_hooks) : NULL;
        for (int k = 0; k < c->steer.n_hooks && c->steer.hooks; k++) {
            int found = 0;
            for (int j = 0; j < c->n_hooks && !found; j++) found = !strcmp(c->hooks[j], c->steer.hooks[k]);
            if (!found)
                return rs_errk(err, RS_EINVAL, "%s: 'steer.hooks[%d]': \"%s\" is not a captured hook (the probes need its "
                                               "activations; add it to 'hooks')", what, k, c->steer.hooks[k]);
        }
    }
    const cJSON *xc = get(r, "crosscoder");
    if (xc) {
        c->crosscoder.on = 1;
        c->crosscoder.batchtopk = !strcmp(get(xc, "sparsity")->valuestring, "batchtopk");
        c->crosscoder.n_latents = (int)get(xc, "n_latents")->valuedouble;
        c->crosscoder.l1 = get(xc, "l1")->valuedouble;
        c->crosscoder.k = (int)get(xc, "k")->valuedouble;
        c->crosscoder.steps = (int64_t)get(xc, "steps")->valuedouble;
        c->crosscoder.batch = (int)get(xc, "batch")->valuedouble;
        c->crosscoder.lr = get(xc, "lr")->valuedouble;
        c->crosscoder.resample_every = (int64_t)get(xc, "resample_every")->valuedouble;
        c->crosscoder.dead_after = (int64_t)get(xc, "dead_after")->valuedouble;
        c->crosscoder.checkpoint_every = (int64_t)get(xc, "checkpoint_every")->valuedouble;
        c->crosscoder.seed = (uint64_t)get(xc, "seed")->valuedouble;
        c->crosscoder.exclusive = get(xc, "exclusive")->valuedouble;
        c->crosscoder.shared = get(xc, "shared")->valuedouble;
        c->crosscoder.bootstrap = (int)get(xc, "bootstrap")->valuedouble;
        c->crosscoder.null_runs = (int)get(xc, "null_runs")->valuedouble;
        c->crosscoder.seeds = (int)get(xc, "seeds")->valuedouble;
        if (c->crosscoder.batchtopk && c->crosscoder.n_latents > 0 && c->crosscoder.k > c->crosscoder.n_latents)
            return rs_errk(err, RS_EINVAL, "%s: 'crosscoder.k' = %d is more than 'crosscoder.n_latents' = %d", what,
                           c->crosscoder.k, c->crosscoder.n_latents);
        const cJSON *xh = get(xc, "hooks");
        c->crosscoder.hooks = xh ? strs(cx, xh, &c->crosscoder.n_hooks) : NULL;
        for (int k = 0; k < c->crosscoder.n_hooks && c->crosscoder.hooks; k++) {
            int found = 0;
            for (int j = 0; j < c->n_hooks && !found; j++) found = !strcmp(c->hooks[j], c->crosscoder.hooks[k]);
            if (!found)
                return rs_errk(err, RS_EINVAL, "%s: 'crosscoder.hooks[%d]': \"%s\" is not a captured hook (add it to "
                                               "'hooks')", what, k, c->crosscoder.hooks[k]);
        }
    }
    const cJSON *stc = get(r, "sae_train");
    if (stc) {
        c->sae_train.on = 1;
        c->sae_train.vlm_text = !strcmp(get(stc, "store")->valuestring, "vlm_text");
        c->sae_train.topk = !strcmp(get(stc, "arch")->valuestring, "topk");
        c->sae_train.d_sae = (int)get(stc, "d_sae")->valuedouble;
        c->sae_train.steps = (int64_t)get(stc, "steps")->valuedouble;
        c->sae_train.batch = (int)get(stc, "batch")->valuedouble;
        c->sae_train.lr = get(stc, "lr")->valuedouble;
        c->sae_train.l0_coef = get(stc, "l0_coef")->valuedouble;
        c->sae_train.bandwidth = get(stc, "bandwidth")->valuedouble;
        c->sae_train.init_threshold = get(stc, "init_threshold")->valuedouble;
        c->sae_train.l0_warmup = (int64_t)get(stc, "l0_warmup")->valuedouble;
        c->sae_train.k = (int)get(stc, "k")->valuedouble;
        c->sae_train.seed = (uint64_t)get(stc, "seed")->valuedouble;
        c->sae_train.match_threshold = get(stc, "match_threshold")->valuedouble;
        c->sae_train.bootstrap = (int)get(stc, "bootstrap")->valuedouble;
        c->sae_train.null_reps = (int)get(stc, "null_reps")->valuedouble;
        c->sae_train.max_width = (int)get(stc, "max_width")->valuedouble;
        c->sae_train.held_out = cJSON_IsTrue(get(stc, "held_out"));
        const cJSON *sh = get(stc, "hooks");
        c->sae_train.hooks = sh ? strs(cx, sh, &c->sae_train.n_hooks) : NULL;
        for (int k = 0; k < c->sae_train.n_hooks && c->sae_train.hooks; k++) {
            int found = 0;
            for (int j = 0; j < c->n_hooks && !found; j++) found = !strcmp(c->hooks[j], c->sae_train.hooks[k]);
            if (!found)
                return rs_errk(err, RS_EINVAL, "%s: 'sae_train.hooks[%d]': \"%s\" is not a captured hook (add it to "
                                               "'hooks')", what, k, c->sae_train.hooks[k]);
        }
    }
    const cJSON *lg = get(r, "languages");
    if (lg) {
        c->languages.on = 1;
        c->languages.codes = strs(cx, get(lg, "codes"), &c->languages.n);
        c->languages.translations = sdup(cx, lg, "translations");
        c->languages.bootstrap = (int)get(lg, "bootstrap")->valuedouble;
        c->languages.permutations = (int)get(lg, "permutations")->valuedouble;
        c->languages.transfer_seeds = (int)get(lg, "transfer_seeds")->valuedouble;
        c->languages.transfer = cJSON_IsTrue(get(lg, "transfer"));
        if (!c->languages.codes) return rs_errk(err, RS_ENOMEM, "%s: out of memory", what);
        if (c->languages.n > RS_CONFIG_MAX_LANGUAGES)
            return rs_errk(err, RS_EINVAL, "%s: 'languages.codes' lists %d languages; at most %d", what, c->languages.n,
                           RS_CONFIG_MAX_LANGUAGES);
        for (int k = 0; k < c->languages.n; k++) {
            const char *code = c->languages.codes[k];
            size_t L = strlen(code), ok = L >= 1 && L <= 15 && code[0] != '-' && code[0] != '_';
            for (size_t q = 0; q < L && ok; q++)
                ok = (code[q] >= 'a' && code[q] <= 'z') || (code[q] >= 'A' && code[q] <= 'Z') ||
                     (code[q] >= '0' && code[q] <= '9') || code[q] == '-' || code[q] == '_';
            if (!ok)
                return rs_errk(err, RS_EINVAL, "%s: 'languages.codes[%d]': \"%s\" is not a language code (1-15 letters, "
                                               "digits, '-' or '_', e.g. \"es\", \"pt-BR\")", what, k, code);
        }
        const cJSON *pr = get(lg, "prompts");
        int np = 0;
        if (pr) {
            c->languages.prompts = strs(cx, pr, &np);
            if (c->languages.prompts && np != c->languages.n)
                return rs_errk(err, RS_EINVAL, "%s: 'languages.prompts' has %d entries but 'languages.codes' %d (one "
                                               "prompt per code, in the same order)", what, np, c->languages.n);
        } else if ((c->languages.prompts = calloc((size_t)c->languages.n + 1, sizeof *c->languages.prompts))) {
            for (int k = 0; k < c->languages.n; k++)
                if (asprintf(&c->languages.prompts[k], "caption %s", c->languages.codes[k]) < 0) {
                    c->languages.prompts[k] = NULL;
                    free_strs(c->languages.prompts);
                    c->languages.prompts = NULL;
                    break;
                }
        }
        if (!c->languages.prompts) return rs_errk(err, RS_ENOMEM, "%s: out of memory", what);
        if (!rs_config_has_condition(c, "llm") || !rs_config_has_condition(c, "vlm_text"))
            return rs_errk(err, RS_EINVAL, "%s: 'languages' needs the conditions llm and vlm_text", what);
    }
    if (cx->oom || !c->name || !c->output_dir || !c->prompt || !c->pool || !c->llm || !c->vlm || !c->dataset.exclude ||
        !c->probes.which || !c->probes.C)
        return rs_errk(err, RS_ENOMEM, "%s: out of memory", what);
    return 0;
}

int rs_config_parse(const char *json, const char *base_dir, const char *what, rs_config **out, rs_err *err) {
    *out = NULL;
    cJSON *root;
    if (rs_json_parse(json, strlen(json), what, &root, err)) return -1;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return rs_errk(err, RS_EINVAL, "%s: a config must be a JSON object, got %s", what, type_name(root));
    }
    ctx cx = {what, base_dir, err, 0};
    rs_config *c = calloc(1, sizeof *c);
    if (!c) {
        cJSON_Delete(root);
        return rs_errk(err, RS_ENOMEM, "%s: out of memory", what);
    }
    c->resolved = root;
    if (validate_obj(&cx, root, SCHEMA, "") || extract(c, root, &cx)) {
        rs_config_free(c);
        return -1;
    }
    *out = c;
    return 0;
}

int rs_config_load(const char *path, rs_config **out, rs_err *err) {
    char *buf;
    size_t len;
    *out = NULL;
    if (rs_read_file(path, CONFIG_MAX_BYTES, &buf, &len, err)) return -1;
    if (strlen(buf) != len) {
        free(buf);
        return rs_errk(err, RS_EINVAL, "%s: contains a NUL byte (not a JSON text file)", path);
    }
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
    int rc = dir ? rs_config_parse(buf, dir, path, out, err) : rs_errk(err, RS_ENOMEM, "%s: out of memory", path);
    free(dir);
    free(buf);
    if (!rc && !((*out)->path = strdup(path))) {
        rs_config_free(*out);
        *out = NULL;
        return rs_errk(err, RS_ENOMEM, "%s: out of memory", path);
    }
    return rc;
}

void rs_config_dump(const rs_config *c, FILE *fp) {
    char *s = cJSON_Print(c->resolved);
    if (s) fprintf(fp, "%s\n", s);
    free(s);
}

char *rs_config_sae_path(const rs_config *c, int layer) {
    return c->has_saes ? expand_layer(c->sae_path, layer) : NULL;
}

char *rs_config_sae_hook(const rs_config *c, int layer) {
    return c->has_saes && c->sae_hook ? expand_layer(c->sae_hook, layer) : NULL;
}

void rs_config_sample_opts(const rs_config *c, coco_sample_opts *o) {
    coco_sample_defaults(o);
    o->groups = c->dataset.groups;
    o->n_groups = c->dataset.n_groups;
    o->exclude = (const char *const *)c->dataset.exclude;
    o->n_per_group = (size_t)c->dataset.n_per_group;
    o->allow_fewer = c->dataset.allow_fewer;
    o->seed = c->dataset.seed;
    o->frac_train = c->dataset.frac_train;
    o->frac_val = c->dataset.frac_val;
    o->captions_per_image = c->dataset.captions_per_image;
    o->include_images = c->dataset.use_images;
    o->include_captions = c->dataset.use_text;
    o->images_dir = NULL;
}

static void schema_rows(FILE *fp, const field *fields, const char *prefix) {
    for (const field *f = fields; f->key; f++) {
        char p[300];
        join_path(p, sizeof p, prefix, f->key);
        if (f->k == K_OBJS) {
            char q[310];
            if (snprintf(q, sizeof q, "%s[]", p) >= (int)sizeof q) q[sizeof q - 1] = 0;
            fprintf(fp, "| `%s` | list of objects | %s%s%s | %s. |\n", p, f->def ? "`" : "",
                    f->def ? f->def : (f->required ? "**required**" : "—"), f->def ? "`" : "", f->doc);
            schema_rows(fp, f->sub, q);
            continue;
        }
        const char *type = f->k == K_OBJ ? "object" : f->k == K_STR ? "string" : f->k == K_INT ? "integer"
                           : f->k == K_NUM ? "number" : f->k == K_BOOL ? "boolean" : f->k == K_STRS ? "string list"
                           : f->k == K_INTS ? "integer list" : f->k == K_NUMS ? "number list" : "object of string lists";
        char def[400];
        if (f->required) snprintf(def, sizeof def, "**required**");
        else if (f->def && f->k != K_OBJ) snprintf(def, sizeof def, "`%s`", f->def);
        else snprintf(def, sizeof def, "—");
        char range[160] = "";
        if (f->k == K_INT || f->k == K_INTS) snprintf(range, sizeof range, " Range [%.0f, %.0f].", f->lo, f->hi);
        else if (f->k == K_NUM || f->k == K_NUMS) snprintf(range, sizeof range, " Range [%g, %g].", f->lo, f->hi);
        if (f->choices) {
            size_t k = strlen(range);
            k += (size_t)snprintf(range + k, sizeof range - k, " One of:");
            for (const char *const *ch = f->choices; *ch && k < sizeof range; ch++)
                k += (size_t)snprintf(range + k, sizeof range - k, " `%s`", *ch);
            if (k < sizeof range) snprintf(range + k, sizeof range - k, ".");
        }
        fprintf(fp, "| `%s` | %s%s | %s | %s.%s |\n", p, type, f->is_path == PATH_OR_NAME ? " (path or name)" : f->is_path ? " (path)" : "", def, f->doc, range);
        if (f->k == K_OBJ) schema_rows(fp, f->sub, p);
    }
}

void rs_config_schema_markdown(FILE *fp) {
    fprintf(fp, "| key | type | default | meaning |\n|---|---|---|---|\n");
    schema_rows(fp, SCHEMA, "");
}

int rs_config_has_condition(const rs_config *c, const char *name) {
    for (int i = 0; i < c->n_conditions; i++)
        if (!strcmp(c->conditions[i], name)) return 1;
    return 0;
}

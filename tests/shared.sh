# Sourced by the tests/cli_*.sh scripts: where the shared data folder is, and how a test that
# needs a missing real asset reports itself skipped: an "RS-SKIP:" line (scripts/test.sh
# collects them) and exit 77 (CTest's SKIP_RETURN_CODE), never a pass. Same rule as
# tu_shared() in testutil.c: env RS_SHARED_DIR, else the folder CMake was configured with
# (RS_SHARED_DIR_DEFAULT), else ../shared.
SHARED=${RS_SHARED_DIR:-${RS_SHARED_DIR_DEFAULT:-../shared}}
RS_SKIPPED=
# have_shared REL WHAT: true when $SHARED/REL exists; else print the RS-SKIP line, remember
# the skip (the script must end with `skip_exit`) and return false.
have_shared() {
  [ -e "$SHARED/$1" ] && return 0
  echo "RS-SKIP: $(basename "$0" .sh): needs $SHARED/$1 ($2), not found; to run it: put the shared data folder at ../shared beside the repository or set RS_SHARED_DIR=/path/to/shared"
  RS_SKIPPED=1
  return 1
}
# need_shared REL WHAT: the whole script needs it: exit 77 when it is missing.
need_shared() { have_shared "$@" || exit 77; }
# skip_exit: last line of a script that used have_shared: exit 77 if anything was skipped.
skip_exit() { [ -z "$RS_SKIPPED" ] || exit 77; }

# cli_init: the usual start of a CLI test: CLI = $RS_CLI (required), T = a temporary folder
# removed on exit. The helpers below write the command's output to $T/out and $T/err.
cli_init() {
  CLI=${RS_CLI:?RS_CLI not set}
  T=$(mktemp -d)
  trap 'rm -rf "$T"' EXIT
}
fail() { echo "FAIL: $*"; exit 1; }
# expect CODE NEEDLE -- command...: the exit status, and NEEDLE in stderr or stdout
expect() {
  local code=$1 needle=$2; shift 3
  "$@" >"$T/out" 2>"$T/err"; local rc=$?
  [ $rc -eq "$code" ] || { cat "$T/err"; fail "exit $rc (want $code): $*"; }
  grep -qF -- "$needle" "$T/err" "$T/out" || { cat "$T/err"; fail "no '$needle' in output of: $*"; }
}
# one_line_err: the last command's error is exactly one line
one_line_err() { [ "$(wc -l <"$T/err")" -eq 1 ] || { cat "$T/err"; fail "error is not one line"; }; }

# small_config FILE: a small experiment on the bundled tiny models and COCO sample (2 groups x 5
# images, layers 1-2, one edit, cheap probes), every path absolute; used by cli_run and cli_shard.
small_config() {
  local M=$PWD/examples/quickstart/models C=$PWD/examples/data/coco-sample
  cat >"$1" <<JSON
{"output_dir": "unused",
 "models": {"llm": "$M/gemma2-tiny", "vlm": "$M/paligemma-tiny"},
 "layers": [1, 2],
 "saes": {"path": "$M/sae/blocks.{layer}.hook_resid_post"},
 "dataset": {"instances": ["$C/annotations/instances_train2017.json", "$C/annotations/instances_val2017.json"],
             "captions": ["$C/annotations/captions_train2017.json", "$C/annotations/captions_val2017.json"],
             "images": ["$C/train2017", "$C/val2017"], "groups": {"animals": ["animal"], "vehicles": ["vehicle"]}, "n_per_group": 5},
 "edits": [{"name": "contrast", "values": [0.5]}],
 "probes": {"seeds": 2, "folds": 2, "bootstrap": 20, "min_test_groups": 1, "permutations": 10}}
JSON
}

# stage_config FILE KEY SECTION [LAYERS] [SAES]: the bundled tiny models and COCO sample with
# the caption conditions an optional stage reads (llm, vlm_text, vlm_caption), cheap probes, no
# downstream, and "KEY": SECTION; LAYERS default [1, 2]; SAES = 1 adds the bundled SAEs. Used by
# cli_crosscoder and cli_sae_train_stage.
stage_config() {
  local M=$PWD/examples/quickstart/models C=$PWD/examples/data/coco-sample saes=
  [ "${5:-0}" = 1 ] && saes=$'\n'" \"saes\": {\"path\": \"$M/sae/blocks.{layer}.hook_resid_post\"},"
  cat >"$1" <<JSON
{"output_dir": "unused",
 "models": {"llm": "$M/gemma2-tiny", "vlm": "$M/paligemma-tiny"},
 "layers": ${4:-[1, 2]},$saes
 "conditions": ["llm", "vlm_text", "vlm_caption"],
 "permutations": 0,
 "downstream": {"enabled": false},
 "dataset": {"instances": ["$C/annotations/instances_train2017.json", "$C/annotations/instances_val2017.json"],
             "captions": ["$C/annotations/captions_train2017.json", "$C/annotations/captions_val2017.json"],
             "images": ["$C/train2017", "$C/val2017"], "groups": {"animals": ["animal"], "vehicles": ["vehicle"]},
             "n_per_group": 8, "split": {"train": 0.6, "val": 0.1, "test": 0.3}, "modalities": ["text", "image"]},
 "probes": {"which": ["concept"], "seeds": 1, "folds": 2, "bootstrap": 10, "min_test_groups": 1, "permutations": 0},
 "$2": $3}
JSON
}

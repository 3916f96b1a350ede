#!/usr/bin/env bash
# Before and after a refactor: does the code of this tree train and run as the base commit's does?
#
#   bench/refactor_check.sh [BASE_COMMIT]        (default aad0b7b)
#
# 1. Fingerprint: a seeded resume_zh teach-1x run of binary_ner and spaCy ner, 400 steps, dev F1 and loss every 50
#    steps, with this tree's package; its printed steps, thresholds and test scores (times taken out) are compared
#    with the base's: bench/results/refactor-check-BASE.log where it exists and WORK holds the base's pipelines (the
#    same machine), else a run of the base, trained here. Unchanged behaviour gives the same lines, to the last digit
#    (on one kind of CPU: matrix kernels differ between CPUs). STEPS=100 (a multiple of 50): a quicker run, compared
#    on its steps only (training does not depend on the step budget).
# 2. Speed: words per CPU second of binary_ner (one thread; waiting for a core left out) as a ratio to spaCy ner's
#    in the same process (so what load remains cancels out),
#    the two codes taking turns TURNS times on the same pipelines: SPEED_KEEP (e.g. a kept full run), by default the
#    base's fingerprint pipelines.
#
# The base code runs from a temporary git worktree, removed at the end. Environment: DATA (the resume_zh folder),
# WORK (where pipelines are kept), TURNS (default 2), STEPS (default 400), SPEED_KEEP. Exit status 1 where the
# fingerprints differ.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
BASE=${1:-aad0b7b}
DATA=${DATA:-$(cd "$REPO/.." && pwd)/shared/data/resume_zh}
TEACHSIM=$(dirname "$(dirname "$DATA")")/bench/teachsim.py
WORK=${WORK:-/tmp/refcheck}
TURNS=${TURNS:-2}
STEPS=${STEPS:-400}
SPEED_KEEP=${SPEED_KEEP:-$WORK/base-keep}
RECORDED="$REPO/bench/results/refactor-check-$BASE.log"
mkdir -p "$WORK"

fingerprint() {
  # fingerprint PACKAGE_TREE KEEP_DIR LOG: the short seeded run with the package of PACKAGE_TREE.
  PYTHONPATH="$1" python "$REPO/bench/binary_benchmark.py" --data "$DATA" --decisions teach-1x \
    --systems binary_ner,ner --seeds 0 --max-steps "$STEPS" --eval-frequency 50 --teachsim "$TEACHSIM" \
    --keep "$2" --out "$2/out" --name refactor-check 2>&1 | tee "$3" | grep --line-buffered -E "^    step |^   test P" || true
}

steps() {
  # The lines of a fingerprint log that must match: no times, no speeds, no file paths; with fewer STEPS than 400,
  # only the systems' names and the steps up to STEPS.
  if [ "$STEPS" -ge 400 ]; then
    grep -E "^== |^    step |^binary_ner: threshold|^   threshold|^   test P" "$1"
  else
    grep -E "^== |^    step " "$1" | awk -v last="$STEPS" '$1 != "step" || $2 <= last'
  fi | sed -E -e 's/  [0-9]+s$//' -e 's/(best step [0-9]+).*/\1/'
}

BASE_TREE="$WORK/base-tree"
cleanup() { git -C "$REPO" worktree remove --force "$BASE_TREE" 2>/dev/null || true; }
trap cleanup EXIT
cleanup
git -C "$REPO" worktree add --detach "$BASE_TREE" "$BASE" >/dev/null

echo "== this tree ($(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD -- spacy_binary_ner || echo ', with uncommitted changes'))"
fingerprint "$REPO" "$WORK/current-keep" "$WORK/current.log"
if [ ! -f "$RECORDED" ] || [ ! -d "$WORK/base-keep/binary_ner-0/model-best" ]; then
  echo "== base $BASE"
  fingerprint "$BASE_TREE" "$WORK/base-keep" "$WORK/base.log"
  RECORDED="$WORK/base.log"
fi

status=0
if diff <(steps "$RECORDED") <(steps "$WORK/current.log") >"$WORK/fingerprint.diff"; then
  echo "fingerprint: the same $(steps "$RECORDED" | wc -l) lines as $BASE ($RECORDED)"
else
  echo "fingerprint: DIFFERS from $BASE (< base, > this tree):"
  cat "$WORK/fingerprint.diff"
  status=1
fi

speed() {
  # speed PACKAGE_TREE: binary_ner's words per CPU second (× spaCy ner's) on SPEED_KEEP's pipelines, median of 5
  # interleaved rounds, one thread; this tree's script with either package, so both are timed the same way.
  local out
  out=$(OMP_NUM_THREADS=1 PYTHONPATH="$1" python "$REPO/bench/binary_benchmark.py" --data "$DATA" \
    --speed-of "$SPEED_KEEP" --systems ner,binary_ner --rounds 5 --clock cpu 2>"$WORK/speed.err" \
    | awk -F'|' '$2 ~ /^ binary_ner $/ {gsub(/ /, "", $3); gsub(/ /, "", $4); print $3 " (× " $4 ")"}') || true
  echo "${out:-failed, see $WORK/speed.err}"
}

echo "words per CPU second of binary_ner (× spaCy ner in the same process) on $SPEED_KEEP, $TURNS turns:"
for turn in $(seq "$TURNS"); do
  echo "  turn $turn  base $BASE: $(speed "$BASE_TREE")   this tree: $(speed "$REPO")"
done
exit $status

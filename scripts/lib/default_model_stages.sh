# The default model's training stages: cc-train's flags for each, sourced by
# scripts/train_default_model.sh (the CPU) and scripts/gpu_train.sh (a GPU).
# Every stage scores the prompt's tokens too (--context_loss): a question
# names its key again, and predicting that key's second word from the
# needle's is retrieval that the question itself does, so the question's
# attention points at the needle in many heads and layers, as an LLM's does
# (docs/default_model.md).
#
# Stage 1, the retrieval drill: needles in a short haystack and question
# after question (cc-train's "recall" and "lookup" kinds), copies and text,
# 128-320 tokens. This is where the model learns to look a key up and copy
# its number.
STAGE1=(--seed 11 --mixture recall=0.5 lookup=0.2 copy=0.15 text=0.15
  --min_context 128 --max_context 320 --curriculum 0 --batch 16 --steps 1400
  --lr 1e-3 --schedule constant --warmup 100 --context_loss 0.5)
# Stage 1b, the same with more copies, from stage 1's weights: after 1,400
# steps the answers were still at chance (no induction head yet), and copies
# of random tokens are the task that needs one most directly.
STAGE1B=(--seed 13 --mixture copy=0.4 lookup=0.25 recall=0.25 text=0.1
  --min_context 128 --max_context 320 --curriculum 0 --batch 16 --steps 2500
  --lr 1e-3 --schedule constant --warmup 20 --context_loss 0.5)
# Stage 2, the task mixture from stage 1b's weights: RULER's needle tasks,
# variable tracking, generated text and the drill, at contexts growing from
# 320 to 1024 tokens.
STAGE2=(--seed 12 --mixture rulerniah=0.25 rulerniah_single=0.15 rulerniah_multikey=0.1
  recall=0.25 lookup=0.05 rulervt=0.05 text=0.15
  --min_context 320 --max_context 1024 --curriculum 0.5 --batch 16 --steps 500
  --lr 5e-4 --schedule cosine --warmup 20 --context_loss 0.5)

# The number of steps in a stage's flags.
stage_steps() {
  local next=""
  for a in "$@"; do
    [ "$next" = 1 ] && { echo "$a"; return; }
    [ "$a" = --steps ] && next=1
  done
}

# Whether DIR holds a stage finished at STEPS (its training.json says so).
stage_done() {
  [ -f "$1/training.json" ] &&
    python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1])).get("step") != int(sys.argv[2]))' \
      "$1/training.json" "$2"
}

# The step DIR's run has checkpointed (0: none yet).
stage_step() {
  if [ -f "$1/train_state/progress.json" ]; then
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["step"])' "$1/train_state/progress.json"
  else
    echo 0
  fi
}

#!/usr/bin/env python3
"""Writes MODEL/README.md, the default model's card, from its training.json and
the results of scripts/eval_default_model.sh (RESULTS holds policies/, loss/
and layers.md)."""
import glob
import json
import os
import sys


TASKS = (("rulerniah_single", "single needle"), ("rulerniah", "multi-key"))


def metrics(root, task):
    out = {}
    for path in glob.glob(os.path.join(root, "*", "*", task + "_metrics.json")):
        out[os.path.basename(os.path.dirname(path))] = json.load(open(path))
    return out


def main(model, results):
    t = json.load(open(os.path.join(model, "training.json")))
    config = json.load(open(os.path.join(model, "config.json")))
    score = lambda m: m["metrics"]["string_match_all"]
    policies = {task: metrics(os.path.join(results, "policies"), task) for task, _ in TASKS}
    loss = metrics(os.path.join(results, "loss"), "rulerniah_single")
    layers = open(os.path.join(results, "layers.md")).read().strip()
    single = policies["rulerniah_single"]
    n = next(iter(single.values()))["num_samples"]
    rows = []
    for name, m in sorted(single.items(), key=lambda kv: (kv[1]["policy_label"], kv[1]["cache"]["compression_ratio"])):
        size = "-" if not m["cache_sizes"] else "%g" % m["cache_sizes"][0]
        scores = " | ".join("%.1f" % score(policies[task][name]) for task, _ in TASKS)
        rows.append("| %s | %s | %s | %.3f | %.1f |" % (
            m["policy_label"], size, scores, m["cache"]["compression_ratio"], m["cache"]["cache_bytes"] / 1024))

    def at(task, label, size):
        return next(score(m) for m in policies[task].values()
                    if m["policy_label"] == label and m["cache_sizes"] == size)

    gaps = ", ".join("%s **%+.1f**" % (title, at(task, "heavy_hitter", [0.25]) - at(task, "recent_global", [0.25]))
                     for task, title in TASKS)
    full = ", ".join("%s **%.1f**" % (title, at(task, "full", [])) for task, title in TASKS)
    losses = {m["cache_sizes"][0]: m["cache"]["attention_loss"] for m in loss.values()}
    stages = t["stages"]
    final = stages[-1]
    if final.get("number_pieces"):
        numbers = """Numbers are split into pieces of one to three digits from the left, as
  Llama-3's pre-tokenizer splits them, the space before a number kept on its first piece: the 2,220 such strings
  (bare and after `▁`) are user-defined pieces, which SentencePiece matches longest first, so the needle value
  ` 1899280` is the three tokens `▁189` `928` `0` ([docs/default_model.md](../../docs/default_model.md) says why)."""
    else:
        numbers = "Digits are split: a 7-digit value is seven tokens."
    if final.get("context_loss"):
        loss = ("the mean loss of its answer tokens (every token of text) plus %g times the mean loss of its prompt "
                "tokens" % final["context_loss"])
    else:
        loss = "only its answer tokens are scored, or every token of text"

    def describe(i, st):
        total = sum(st["mixture"].values())
        mix = ", ".join("%s %.0f%%" % (k, 100 * v / total) for k, v in st["mixture"].items())
        grow = ("the longest allowed growing linearly over the first %.0f%% of the steps" % (100 * st["curriculum"])
                if st["curriculum"] > 0 else "uniformly")
        return (f"{i + 1}. {st['step']:,} steps of {st['batch']} sequences, peak learning rate {st['lr']:g} "
                f"({st['schedule']} after {st['warmup']:g} warm-up steps), sequences of {st['min_context']} to "
                f"{st['max_context']} tokens ({grow}); data: {mix}. {st['tokens']:,} tokens in "
                f"{st['seconds'] / 60:.0f} minutes on {st['threads']} CPU threads; final loss on the scored tokens: "
                + ", ".join("%s %.3f" % kv for kv in sorted(st["loss_by_kind"].items())) + ".")

    stage_lines = "\n".join(describe(i, st) for i, st in enumerate(stages))
    hours = sum(st["seconds"] for st in stages) / 3600
    card = f"""# ColdCompress default model

A small Llama-architecture model trained from scratch by this project, on the CPU, so that the main job can show
what KV-cache policies do: at 25% of the cache one policy still finds the needle and another does not. It is not a
language model for anything else: its "language" is generated text and retrieval puzzles.

## Model

- `LlamaForCausalLM`: {config["num_hidden_layers"]} layers, hidden size {config["hidden_size"]}, {config["num_attention_heads"]} query heads and
  {config["num_key_value_heads"]} KV heads ({"multi-head" if config["num_key_value_heads"] == config["num_attention_heads"] else "grouped-query"} attention) of dimension {config["hidden_size"] // config["num_attention_heads"]}, SwiGLU width {config["intermediate_size"]}, RoPE (theta
  {config["rope_theta"]:g}), tied embeddings; {final["parameters"]:,} parameters, float32 (`model.safetensors`).
- Tokenizer: SentencePiece BPE, {config["vocab_size"]} pieces, byte fallback (`tokenizer.model`), trained by `spm_train`
  on generated prose and task prompts. {numbers}

## Training

- `scripts/train_default_model.sh`; the trainer is `cc-train` (`server/tools/train.cc`), on the server's own model
  code: AdamW (betas 0.9/0.95, weight decay {final["weight_decay"]:g}), gradient clipping at 1.0, every sequence weighing
  the same in the loss: {loss}. {hours:.2f} hours in all on this
  project's 2-core build machine, in {len(stages)} stages, each starting from the previous one's weights:

{stage_lines}
- Data is generated on the fly (nothing is downloaded). The tasks are the eval client's RULER generators
  (`client/tasks/ruler.cc`) with the question and answer prefix at the end of the prompt and the answer scored.
  "recall" is the retrieval drill: `rulerniah`'s needles in a short noise haystack, then one question after another
  in `rulerniah`'s words, each answer scored; "lookup" asks by repeating a needle's words up to its number, which
  needs only copying; "text" is generated prose (every token scored).

## Scores

Needle in a haystack at its longest trained context (`--context_length 1024`), needles in the middle 80% of the
haystack (`--needle_depth 0.1 0.9`), seeds never used in training, {n} examples per row, measured by
`scripts/eval_default_model.sh`. Single needle: `rulerniah_single`, one needle "One of the special magic numbers for
*key* is: *value*." in noise; multi-key: `rulerniah`, four such needles, one key asked.

| policy | cache size | single needle | multi-key | compression ratio | cache KiB per request |
|---|---|---|---|---|---|
""" + "\n".join(rows) + f"""

- Full cache: {full}.
- At 25% of the cache `heavy_hitter` (SnapKV prompt compression) against `recent_global`: {gaps} points.
- `debug_heavy_hitter` (analysis mode; single needle, 20 examples): attention loss **{losses.get(0.1, float('nan')):.4f}** at
  10% of the cache and **{losses.get(0.5, float('nan')):.4f}** at 50%.

### Which layers retrieve

Single needle with `heavy_hitter` at 25% of the cache in the listed layers and the full cache in the others
(`scripts/layer_table.sh`, 16 examples, seed 5000). A layer whose compression alone breaks retrieval reads the
needle in a way SnapKV's question window does not see ([docs/default_model.md](../../docs/default_model.md)).

{layers}

CI (`default_model_test`) checks that this checkpoint loads in the server and, with the full cache, scores at least the
floor set in `tests/server/default_model_test.cc` on 20 single-needle and 20 multi-key examples.
"""
    open(os.path.join(model, "README.md"), "w").write(card)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

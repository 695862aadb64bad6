#!/usr/bin/env python3
"""Checks tests/reference/hf_reference.py against Hugging Face `transformers`.

Not part of CI (transformers cannot be installed here); run it where
transformers and torch are installed, e.g. the GPU machine:

  python3 tests/reference/transformers_check.py build/tests/fixtures/llama ...

For each checkpoint directory it compares, on a few random token sequences,
the log-probabilities of hf_reference.py (float64) with those of
AutoModelForCausalLM in float64, and greedy continuations. Exit code 1 when
they differ by more than 1e-4 or a greedy token differs. (They do not agree to
float64 precision: transformers builds the RoPE angles in float32 even for a
float64 model, which moves log-probs by ~1e-6, up to ~3e-5 at rope_theta 5e5.)

Seen on 2026-11-26 with transformers 5.17.0, torch 2.11.0 on the fixtures:
llama 2.1e-06, qwen2 1.4e-06, llama_rope3_tied_bf16_sharded 2.9e-05, greedy
equal on all three.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_reference  # noqa: E402


def main(dirs):
    import transformers
    from transformers import AutoModelForCausalLM

    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    worst = 0.0
    for d in dirs:
        ref = hf_reference.Model(d)
        try:
            hf = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float64)
        except TypeError:
            hf = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float64)
        hf.eval()
        vocab = hf.config.vocab_size
        g = torch.Generator().manual_seed(0)
        diff = 0.0
        for n in (1, 7, 64, 300):
            ids = torch.randint(3, vocab, (n + 8,), generator=g).tolist()
            with torch.no_grad():
                logits = hf(torch.tensor([ids])).logits[0].double()
            lp = torch.log_softmax(logits, -1)
            hf_lp = [lp[k - 1, ids[k]].item() for k in range(1, len(ids))]
            ref_lp = hf_reference.score(ref, ids)["token_logprobs"]
            diff = max(diff, max(abs(a - b) for a, b in zip(hf_lp, ref_lp)))
        prompt = torch.randint(3, vocab, (20,), generator=g).tolist()
        with torch.no_grad():
            out = hf.generate(torch.tensor([prompt]), max_new_tokens=12, do_sample=False,
                              eos_token_id=None, pad_token_id=0)
        hf_tokens = out[0, len(prompt):].tolist()
        ref_tokens = hf_reference.generate(ref, prompt, 12)["tokens"]
        print(f"{d}: max |log-prob difference| = {diff:.3g}; greedy equal: {hf_tokens == ref_tokens}")
        worst = max(worst, diff if hf_tokens == ref_tokens else float("inf"))
    return 0 if worst <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

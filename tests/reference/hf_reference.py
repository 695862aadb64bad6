#!/usr/bin/python3
"""Independent float64 reference of the Hugging Face causal-LM forward pass.

This is a test oracle for the C++ inference server.  It re-implements, in
plain PyTorch, the forward pass of ``LlamaForCausalLM`` (Mistral config files
are accepted as the same architecture) and ``Qwen2ForCausalLM``, following
Hugging Face ``modeling_llama.py`` / ``modeling_qwen2.py`` (eager attention):
RMSNorm, rotate-half RoPE (default / "linear" / "llama3" inv_freq scaling),
grouped-query attention with HF ``repeat_kv`` semantics, causal (and, where
the config asks for it, sliding-window) masking, SiLU-gated MLP, final norm
and the (possibly tied) LM head.

Everything is computed in float64: weights are upcast at load time and the
RoPE tables are built in float64 (HF builds inv_freq in float32; the float64
value is the "ground truth" that it approximates).  It needs only torch and
numpy; safetensors files are parsed by hand.  Run it with /usr/bin/python3.

Usage:
  hf_reference.py --model DIR score    --ids 3,17,5 [--out FILE]
  hf_reference.py --model DIR generate --ids 3,17,5 --max_new_tokens N [--out FILE]
  hf_reference.py --model DIR batch    --requests FILE [--out FILE]
Errors (missing tensor, bad dtype, unknown architecture, ...) exit with code 2.
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

LLAMA_ARCHS = ("LlamaForCausalLM", "MistralForCausalLM")
QWEN2_ARCHS = ("Qwen2ForCausalLM",)
DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}


class RefError(Exception):
    """A problem with the model directory or the request (exit code 2)."""


# ----------------------------------------------------------------- loading
def _read_safetensors_header(path):
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise RefError(f"{path}: truncated safetensors file")
        (n,) = struct.unpack("<Q", raw)
        header = json.loads(f.read(n).decode("utf-8"))
    header.pop("__metadata__", None)
    return header, 8 + n


def load_tensors(model_dir, names):
    """Return {name: float64 tensor} for the requested names (others ignored)."""
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
    else:
        single = os.path.join(model_dir, "model.safetensors")
        if not os.path.exists(single):
            raise RefError(f"{model_dir}: no model.safetensors or model.safetensors.index.json")
        weight_map = {k: "model.safetensors" for k in _read_safetensors_header(single)[0]}
    by_file = {}
    for name in names:
        if name not in weight_map:
            raise RefError(f"missing tensor: {name}")
        by_file.setdefault(weight_map[name], []).append(name)
    out = {}
    for fname, fnames in by_file.items():
        path = os.path.join(model_dir, fname)
        header, data_start = _read_safetensors_header(path)
        with open(path, "rb") as f:
            for name in fnames:
                if name not in header:
                    raise RefError(f"missing tensor: {name} (not in {fname})")
                info = header[name]
                if info["dtype"] not in DTYPES:
                    raise RefError(f"{name}: unsupported dtype {info['dtype']}")
                dtype = DTYPES[info["dtype"]]
                shape = [int(s) for s in info["shape"]]
                begin, end = info["data_offsets"]
                nbytes = math.prod(shape) * torch.empty(0, dtype=dtype).element_size()
                if end - begin != nbytes:
                    raise RefError(f"{name}: data size {end - begin} != {nbytes} for {shape}")
                f.seek(data_start + begin)
                buf = bytearray(f.read(nbytes))
                if len(buf) != nbytes:
                    raise RefError(f"{name}: truncated data in {fname}")
                t = torch.frombuffer(buf, dtype=dtype) if nbytes else torch.empty(0, dtype=dtype)
                out[name] = t.reshape(shape).to(torch.float64)
    return out


# ------------------------------------------------------------------- model
class Model:
    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json")) as f:
            cfg = json.load(f)
        archs = cfg.get("architectures") or []
        arch = archs[0] if archs else None
        if arch in LLAMA_ARCHS:
            self.kind = "llama"
        elif arch in QWEN2_ARCHS:
            self.kind = "qwen2"
        else:
            raise RefError(f"unknown architecture: {archs}")
        self.V = cfg["vocab_size"]
        self.D = cfg["hidden_size"]
        self.I = cfg["intermediate_size"]
        self.L = cfg["num_hidden_layers"]
        self.H = cfg["num_attention_heads"]
        self.KV = cfg.get("num_key_value_heads") or self.H
        self.hd = cfg.get("head_dim") or self.D // self.H
        self.eps = cfg["rms_norm_eps"]
        if self.H % self.KV:
            raise RefError("num_attention_heads not divisible by num_key_value_heads")
        tied = bool(cfg.get("tie_word_embeddings", False))
        if self.kind == "llama":
            attn_bias = bool(cfg.get("attention_bias", False))
            qkv_bias, o_bias, mlp_bias = attn_bias, attn_bias, bool(cfg.get("mlp_bias", False))
        else:  # Qwen2: q/k/v biases always, no o_proj bias, no MLP bias
            qkv_bias, o_bias, mlp_bias = True, False, False
        self.windows = self._sliding_windows(cfg, arch)
        self.inv_freq = self._inv_freq(cfg)

        D, I, H, KV, hd = self.D, self.I, self.H, self.KV, self.hd
        shapes = {"model.embed_tokens.weight": [self.V, D], "model.norm.weight": [D]}
        if not tied:
            shapes["lm_head.weight"] = [self.V, D]
        for i in range(self.L):
            p = f"model.layers.{i}."
            shapes[p + "input_layernorm.weight"] = [D]
            shapes[p + "post_attention_layernorm.weight"] = [D]
            for proj, (o, n, bias) in {"q": (H * hd, D, qkv_bias), "k": (KV * hd, D, qkv_bias),
                                       "v": (KV * hd, D, qkv_bias), "o": (D, H * hd, o_bias)}.items():
                shapes[f"{p}self_attn.{proj}_proj.weight"] = [o, n]
                if bias:
                    shapes[f"{p}self_attn.{proj}_proj.bias"] = [o]
            for proj, (o, n) in {"gate": (I, D), "up": (I, D), "down": (D, I)}.items():
                shapes[f"{p}mlp.{proj}_proj.weight"] = [o, n]
                if mlp_bias:
                    shapes[f"{p}mlp.{proj}_proj.bias"] = [o]
        self.w = load_tensors(model_dir, list(shapes))
        for name, shape in shapes.items():
            if list(self.w[name].shape) != shape:
                raise RefError(f"{name}: shape {list(self.w[name].shape)}, expected {shape}")
        self.lm_head = self.w["model.embed_tokens.weight"] if tied else self.w["lm_head.weight"]

    def _sliding_windows(self, cfg, arch):
        """Per-layer sliding window (None = full causal attention), as in HF."""
        if arch == "MistralForCausalLM":  # MistralConfig default: 4096, null = off
            return [cfg.get("sliding_window", 4096)] * self.L
        sw = cfg.get("sliding_window")
        if self.kind == "qwen2":
            types = cfg.get("layer_types")
            if types is None:
                use = bool(cfg.get("use_sliding_window", False))
                mwl = cfg.get("max_window_layers", 28)  # Qwen2Config default
                types = ["sliding_attention" if use and sw is not None and i >= mwl
                         else "full_attention" for i in range(self.L)]
            return [sw if t == "sliding_attention" else None for t in types]
        return [None] * self.L

    def _inv_freq(self, cfg):
        d = self.hd
        theta = float(cfg.get("rope_theta", 10000.0))
        inv_freq = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
        rs = cfg.get("rope_scaling")
        if not rs:
            return inv_freq
        rtype = rs.get("rope_type", rs.get("type"))
        if rtype in (None, "default"):
            return inv_freq
        if rtype == "linear":
            return inv_freq / float(rs["factor"])
        if rtype != "llama3":
            raise RefError(f"unsupported rope_scaling type: {rtype}")
        factor = float(rs["factor"])
        low, high = float(rs["low_freq_factor"]), float(rs["high_freq_factor"])
        orig = float(rs["original_max_position_embeddings"])
        low_freq_wavelen, high_freq_wavelen = orig / low, orig / high
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
        smooth = (orig / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < high_freq_wavelen) & ~(wavelen > low_freq_wavelen)
        return torch.where(medium, smoothed, scaled)

    @staticmethod
    def _rms(x, w, eps):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    @staticmethod
    def _rotate_half(x):
        h = x.shape[-1] // 2
        return torch.cat((-x[..., h:], x[..., :h]), dim=-1)

    def _lin(self, x, name):
        return F.linear(x, self.w[name + ".weight"], self.w.get(name + ".bias"))

    def logits(self, ids):
        """Logits [n, V] (float64) for token ids at positions 0..n-1."""
        ids = [int(t) for t in ids]
        if not ids:
            raise RefError("empty ids")
        bad = [t for t in ids if not 0 <= t < self.V]
        if bad:
            raise RefError(f"token ids out of range [0, {self.V}): {bad[:5]}")
        n, H, KV, hd = len(ids), self.H, self.KV, self.hd
        x = self.w["model.embed_tokens.weight"][torch.tensor(ids)]
        pos = torch.arange(n, dtype=torch.float64)
        freqs = torch.outer(pos, self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()  # [n, hd]
        qi = torch.arange(n).unsqueeze(1)
        ki = torch.arange(n).unsqueeze(0)
        for i in range(self.L):
            p = f"model.layers.{i}."
            h = self._rms(x, self.w[p + "input_layernorm.weight"], self.eps)
            q = self._lin(h, p + "self_attn.q_proj").view(n, H, hd).transpose(0, 1)
            k = self._lin(h, p + "self_attn.k_proj").view(n, KV, hd).transpose(0, 1)
            v = self._lin(h, p + "self_attn.v_proj").view(n, KV, hd).transpose(0, 1)
            q = q * cos + self._rotate_half(q) * sin
            k = k * cos + self._rotate_half(k) * sin
            k = k.repeat_interleave(H // KV, dim=0)  # HF repeat_kv: head j -> kv j // group
            v = v.repeat_interleave(H // KV, dim=0)
            scores = q @ k.transpose(-1, -2) / math.sqrt(hd)  # [H, n, n]
            allowed = ki <= qi
            if self.windows[i] is not None:
                allowed = allowed & (qi - ki < self.windows[i])
            scores = scores.masked_fill(~allowed, float("-inf"))
            attn = torch.softmax(scores, dim=-1) @ v  # [H, n, hd]
            attn = attn.transpose(0, 1).reshape(n, H * hd)
            x = x + self._lin(attn, p + "self_attn.o_proj")
            h = self._rms(x, self.w[p + "post_attention_layernorm.weight"], self.eps)
            gate = self._lin(h, p + "mlp.gate_proj")
            up = self._lin(h, p + "mlp.up_proj")
            x = x + self._lin(F.silu(gate) * up, p + "mlp.down_proj")
        x = self._rms(x, self.w["model.norm.weight"], self.eps)
        return F.linear(x, self.lm_head)


# --------------------------------------------------------------- operations
def _top(row):
    """(argmax with ties to the lowest id, top1 - top2 logit) of a 1-D array."""
    best = int(np.argmax(row))  # numpy returns the first maximal index
    top2 = np.partition(row, -2)[-2:] if row.size >= 2 else np.array([row[0], row[0]])
    return best, float(top2.max() - top2.min())


def score(model, ids):
    ids = [int(t) for t in ids]
    logits = model.logits(ids)
    logp = torch.log_softmax(logits, dim=-1).numpy()
    lg = logits.numpy()
    res = {"token_logprobs": [], "greedy": [], "margin": []}
    for k in range(1, len(ids)):
        best, margin = _top(lg[k - 1])
        res["token_logprobs"].append(float(logp[k - 1, ids[k]]))
        res["greedy"].append(best == ids[k])
        res["margin"].append(margin)
    return res


def generate(model, ids, max_new_tokens):
    seq = [int(t) for t in ids]
    res = {"tokens": [], "margins": []}
    for _ in range(int(max_new_tokens)):
        best, margin = _top(model.logits(seq)[-1].numpy())
        seq.append(best)
        res["tokens"].append(best)
        res["margins"].append(margin)
    return res


def run_request(model, req):
    op = req.get("op")
    if op == "score":
        return score(model, req["ids"])
    if op == "generate":
        if "max_new_tokens" not in req:
            raise RefError("generate request without max_new_tokens")
        return generate(model, req["ids"], req["max_new_tokens"])
    raise RefError(f"unknown op: {op!r}")


def _parse_ids(s):
    try:
        return [int(t) for t in s.split(",") if t.strip()]
    except ValueError:
        raise RefError(f"bad --ids: {s!r}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="Hugging Face model directory")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("score")
    p.add_argument("--ids", required=True)
    p.add_argument("--out")
    p = sub.add_parser("generate")
    p.add_argument("--ids", required=True)
    p.add_argument("--max_new_tokens", type=int, required=True)
    p.add_argument("--out")
    p = sub.add_parser("batch")
    p.add_argument("--requests", required=True)
    p.add_argument("--out")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # tiny models: extra threads only add overhead and contention
    try:
        model = Model(args.model)
        if args.cmd == "score":
            result = score(model, _parse_ids(args.ids))
        elif args.cmd == "generate":
            result = generate(model, _parse_ids(args.ids), args.max_new_tokens)
        else:
            with open(args.requests) as f:
                requests = json.load(f)
            if not isinstance(requests, list):
                raise RefError("--requests file must hold a JSON list")
            result = [run_request(model, r) for r in requests]
    except (RefError, OSError, KeyError, ValueError, TypeError) as e:
        print(f"hf_reference: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    text = json.dumps(result)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Writes a Hugging Face Llama checkpoint as a float32 GGUF file for llama.cpp.

Usage: export_gguf.py CHECKPOINT_DIR OUT.gguf

The checkpoint is what cc-make-checkpoint or cc-train writes: config.json and
float32 *.safetensors (LlamaForCausalLM). The GGUF holds the same weights,
unquantized, so that llama.cpp and ColdCompress compute the same model: the
speed baseline of scripts/prefill_vs_llama_cpp.sh. As llama.cpp's own
converter does, the rows of each q and k projection are permuted from the
Hugging Face rotate-half RoPE layout to llama.cpp's interleaved one. The
vocabulary is a stand-in of the checkpoint's size (<unk>, <s>, </s>, the 256
byte tokens, then placeholders): the baseline feeds token ids, never text.
"""
import json
import struct
import sys
from pathlib import Path

import numpy as np

ALIGNMENT = 32
# GGUF metadata value types.
UINT32, INT32, FLOAT32, STRING, ARRAY = 4, 5, 6, 8, 9
GGML_F32 = 0


def read_safetensors(path):
    data = path.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_len])
    base = 8 + header_len
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise SystemExit(f"{path}: {name} is {info['dtype']}; export needs float32 weights")
        begin, end = info["data_offsets"]
        tensors[name] = np.frombuffer(data[base + begin:base + end], dtype="<f4").reshape(info["shape"])
    return tensors


def rope_permute(w, heads):
    # Hugging Face rotates dims (i, i + d/2); llama.cpp rotates (2i, 2i + 1).
    rows = w.shape[0]
    return w.reshape(heads, 2, rows // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


class Writer:
    def __init__(self):
        self.kv = []
        self.tensors = []

    @staticmethod
    def _string(s):
        b = s.encode("utf-8")
        return struct.pack("<Q", len(b)) + b

    def add(self, key, vtype, value):
        out = self._string(key) + struct.pack("<I", vtype)
        if vtype == UINT32:
            out += struct.pack("<I", value)
        elif vtype == INT32:
            out += struct.pack("<i", value)
        elif vtype == FLOAT32:
            out += struct.pack("<f", value)
        elif vtype == STRING:
            out += self._string(value)
        else:
            raise ValueError(vtype)
        self.kv.append(out)

    def add_array(self, key, etype, values):
        out = self._string(key) + struct.pack("<IIQ", ARRAY, etype, len(values))
        if etype == STRING:
            out += b"".join(self._string(v) for v in values)
        elif etype == FLOAT32:
            out += np.asarray(values, dtype="<f4").tobytes()
        elif etype == INT32:
            out += np.asarray(values, dtype="<i4").tobytes()
        else:
            raise ValueError(etype)
        self.kv.append(out)

    def tensor(self, name, array):
        self.tensors.append((name, np.ascontiguousarray(array, dtype="<f4")))

    def write(self, path):
        infos, offset = [], 0
        for name, a in self.tensors:
            dims = list(reversed(a.shape))  # GGUF lists the fastest axis first
            infos.append(self._string(name) + struct.pack("<I", len(dims)) +
                         struct.pack(f"<{len(dims)}Q", *dims) + struct.pack("<IQ", GGML_F32, offset))
            offset += (a.nbytes + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT
        with open(path, "wb") as f:
            f.write(b"GGUF" + struct.pack("<IQQ", 3, len(self.tensors), len(self.kv)))
            for chunk in self.kv + infos:
                f.write(chunk)
            f.write(b"\0" * (-f.tell() % ALIGNMENT))
            for _, a in self.tensors:
                f.write(a.tobytes())
                f.write(b"\0" * (-a.nbytes % ALIGNMENT))


def main(argv):
    if len(argv) != 3:
        raise SystemExit(__doc__)
    src, out = Path(argv[1]), argv[2]
    config = json.loads((src / "config.json").read_text())
    if config.get("architectures", ["?"])[0] not in ("LlamaForCausalLM", "MistralForCausalLM"):
        raise SystemExit(f"{src}: export needs a Llama checkpoint")
    weights = {}
    for path in sorted(src.glob("*.safetensors")):
        weights.update(read_safetensors(path))
    heads, kv_heads = config["num_attention_heads"], config.get("num_key_value_heads", config["num_attention_heads"])
    hidden, layers = config["hidden_size"], config["num_hidden_layers"]
    head_dim = config.get("head_dim", hidden // heads)
    vocab = config["vocab_size"]

    w = Writer()
    w.add("general.architecture", STRING, "llama")
    w.add("general.name", STRING, src.name)
    w.add("general.alignment", UINT32, ALIGNMENT)
    w.add("general.file_type", UINT32, 0)  # all float32
    w.add("llama.context_length", UINT32, config.get("max_position_embeddings", 2048))
    w.add("llama.embedding_length", UINT32, hidden)
    w.add("llama.block_count", UINT32, layers)
    w.add("llama.feed_forward_length", UINT32, config["intermediate_size"])
    w.add("llama.rope.dimension_count", UINT32, head_dim)
    w.add("llama.attention.head_count", UINT32, heads)
    w.add("llama.attention.head_count_kv", UINT32, kv_heads)
    w.add("llama.attention.key_length", UINT32, head_dim)
    w.add("llama.attention.value_length", UINT32, head_dim)
    w.add("llama.attention.layer_norm_rms_epsilon", FLOAT32, config.get("rms_norm_eps", 1e-5))
    w.add("llama.rope.freq_base", FLOAT32, config.get("rope_theta", 10000.0))
    w.add("llama.vocab_size", UINT32, vocab)
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [2, 3, 3] + [6] * 256
    tokens += [f"\u2581t{i}" for i in range(len(tokens), vocab)]
    types += [1] * (vocab - len(types))
    w.add("tokenizer.ggml.model", STRING, "llama")
    w.add_array("tokenizer.ggml.tokens", STRING, tokens[:vocab])
    w.add_array("tokenizer.ggml.scores", FLOAT32, [0.0] * vocab)
    w.add_array("tokenizer.ggml.token_type", INT32, types[:vocab])
    w.add("tokenizer.ggml.unknown_token_id", UINT32, 0)
    w.add("tokenizer.ggml.bos_token_id", UINT32, 1)
    w.add("tokenizer.ggml.eos_token_id", UINT32, 2)

    w.tensor("token_embd.weight", weights["model.embed_tokens.weight"])
    w.tensor("output_norm.weight", weights["model.norm.weight"])
    if "lm_head.weight" in weights and not config.get("tie_word_embeddings", False):
        w.tensor("output.weight", weights["lm_head.weight"])
    for i in range(layers):
        p = f"model.layers.{i}."
        w.tensor(f"blk.{i}.attn_norm.weight", weights[p + "input_layernorm.weight"])
        w.tensor(f"blk.{i}.attn_q.weight", rope_permute(weights[p + "self_attn.q_proj.weight"], heads))
        w.tensor(f"blk.{i}.attn_k.weight", rope_permute(weights[p + "self_attn.k_proj.weight"], kv_heads))
        w.tensor(f"blk.{i}.attn_v.weight", weights[p + "self_attn.v_proj.weight"])
        w.tensor(f"blk.{i}.attn_output.weight", weights[p + "self_attn.o_proj.weight"])
        w.tensor(f"blk.{i}.ffn_norm.weight", weights[p + "post_attention_layernorm.weight"])
        w.tensor(f"blk.{i}.ffn_gate.weight", weights[p + "mlp.gate_proj.weight"])
        w.tensor(f"blk.{i}.ffn_up.weight", weights[p + "mlp.up_proj.weight"])
        w.tensor(f"blk.{i}.ffn_down.weight", weights[p + "mlp.down_proj.weight"])
    w.write(out)
    print(f"wrote {out}: {len(w.tensors)} float32 tensors, vocabulary {vocab}")


if __name__ == "__main__":
    main(sys.argv)

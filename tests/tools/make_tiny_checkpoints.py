#!/usr/bin/env python3
"""Make tiny random Hugging Face checkpoints of every model family gale reads.

Writes, under tests/fixtures/ (relative to the repository root):

  tiny/<name>/config.json, generation_config.json, model*.safetensors[, index],
  tiny/<name>/expected.json
      for <name> in llama, mistral, mixtral, gemma, gemma2, gemma3_text,
      llama_sharded.  Weights are random (fixed seeds); expected.json holds the
      facts a loader must derive, each read off transformers' own objects (the
      config, the instantiated model's modules and the saved safetensors files),
      never typed by hand.

  configs/gemma3_multimodal/config.json, expected.json
      a multimodal Gemma3Config (model_type "gemma3") with a tiny text_config
      and a tiny vision config; no weights.  expected.json describes the text part.

  configs/hub_<case>/config.json, expected.json
      configs laid out as some Hub checkpoints are, written here as JSON text
      (save_pretrained would fill in every default): an explicit null that
      switches a feature off (Mistral v0.2+'s "sliding_window": null, Gemma 2
      softcaps set to null), keys left to the class defaults (gemma-3-4b-it's
      text_config names no head counts; a llama config without bos/eos ids), layer_types in a Mistral config
      (transformers runs it as Ministral, windows alternating) and in a Mixtral
      one (ignored: every layer has the window).  No weights; expected.json is read off the
      config transformers loads and the model it instantiates from it.

  configs/<name>_legacy/config.json, expected.json
      the same configs re-expressed in the pre-5.0 key layout that checkpoints
      on the Hub still use (rope_theta / rope_scaling / rope_local_base_freq /
      sliding_window_pattern instead of rope_parameters; no layer_types for
      Gemma 2/3).  Each is checked to load back in transformers to the same
      config as the tiny checkpoint; expected.json is the config-level part of
      that checkpoint's expected.json.

Re-run (from anywhere):
    python3 tests/tools/make_tiny_checkpoints.py [--out tests/fixtures] [--only llama,gemma2,hub]

Needs torch, transformers (>= 5), safetensors, numpy.  Deterministic: every
model uses a fixed seed and weights are drawn by this script, not by
transformers' initialisers.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import json
import math
import os
import shutil
import sys
from pathlib import Path

import torch
import transformers
from safetensors import safe_open
from transformers import (
    Gemma2Config,
    Gemma3Config,
    Gemma3TextConfig,
    GemmaConfig,
    GenerationConfig,
    LlamaConfig,
    MistralConfig,
    MixtralConfig,
    AutoConfig,
    AutoModelForCausalLM,
)

REPO = Path(__file__).resolve().parents[2]

# Shared tiny sizes.  Non-Gemma families: n_heads * head_dim == hidden.
# Gemma family: n_heads * head_dim != hidden (as in real Gemma models).
COMMON = dict(num_attention_heads=4, num_key_value_heads=2, head_dim=16, initializer_range=0.1)

LLAMA3_ROPE = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64,
}


def spec_list():
    """(name, config factory, save dtype, generation eos, extra save kwargs, seed)."""
    return [
        (
            "llama",
            lambda: LlamaConfig(
                hidden_size=64, intermediate_size=128, num_hidden_layers=2, vocab_size=256,
                max_position_embeddings=512, rope_theta=500000.0, rope_scaling=dict(LLAMA3_ROPE),
                rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=0, eos_token_id=2, **COMMON),
            torch.bfloat16, [1, 2], {}, 1001,
        ),
        (
            "mistral",
            lambda: MistralConfig(
                hidden_size=64, intermediate_size=128, num_hidden_layers=2, vocab_size=192,
                max_position_embeddings=256, rope_theta=1000000.0, sliding_window=32,
                rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, **COMMON),
            torch.float16, 2, {}, 1002,
        ),
        (
            "mixtral",
            lambda: MixtralConfig(
                hidden_size=64, intermediate_size=64, num_hidden_layers=2, vocab_size=128,
                max_position_embeddings=256, rope_theta=1000000.0, num_local_experts=4,
                num_experts_per_tok=2, rms_norm_eps=1e-5, tie_word_embeddings=False,
                bos_token_id=1, eos_token_id=2, **COMMON),
            torch.float32, 2, {}, 1003,
        ),
        (
            "gemma",
            lambda: GemmaConfig(
                hidden_size=48, intermediate_size=96, num_hidden_layers=2, vocab_size=256,
                max_position_embeddings=256, rope_theta=10000.0, rms_norm_eps=1e-6,
                tie_word_embeddings=True, bos_token_id=2, eos_token_id=1, pad_token_id=0, **COMMON),
            torch.float32, 1, {}, 1004,
        ),
        (
            "gemma2",
            lambda: Gemma2Config(
                hidden_size=48, intermediate_size=96, num_hidden_layers=2, vocab_size=160,
                max_position_embeddings=256, rope_theta=10000.0, rms_norm_eps=1e-6,
                query_pre_attn_scalar=24, sliding_window=32,
                # small caps so that they change the numbers of a tiny random model
                final_logit_softcapping=5.0, attn_logit_softcapping=10.0,
                tie_word_embeddings=True, bos_token_id=2, eos_token_id=1, pad_token_id=0, **COMMON),
            torch.float32, 1, {}, 1005,
        ),
        (
            "gemma3_text",
            lambda: gemma3_text_config(),
            torch.float32, 1, {}, 1006,
        ),
        (
            "llama_sharded",
            lambda: LlamaConfig(
                hidden_size=64, intermediate_size=64, num_hidden_layers=2, vocab_size=128,
                max_position_embeddings=256, rope_theta=10000.0, rms_norm_eps=1e-5,
                tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, **COMMON),
            torch.float32, 2, {"max_shard_size": "100KB"}, 1007,
        ),
    ]


def gemma3_text_config():
    return Gemma3TextConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=8, vocab_size=128,
        max_position_embeddings=512, sliding_window=32, rope_local_base_freq=10000.0,
        rope_theta=1000000.0, rope_scaling={"rope_type": "linear", "factor": 8.0},
        query_pre_attn_scalar=20, rms_norm_eps=1e-6, tie_word_embeddings=True,
        bos_token_id=2, eos_token_id=1, pad_token_id=0, **COMMON)


# --------------------------------------------------------------------------- helpers


def is_norm_module(mod) -> bool:
    return "RMSNorm" in type(mod).__name__


def norm_adds_one(mod) -> bool:
    """Whether this RMSNorm multiplies by (1 + w), read from its forward source."""
    src = inspect.getsource(type(mod).forward) + inspect.getsource(type(mod))
    return "1.0 + self.weight" in src or "1 + self.weight" in src


def randomise(model: torch.nn.Module, seed: int, std: float) -> None:
    """Draw every parameter from a fixed-seed generator.

    Linear/embedding/expert weights ~ N(0, std).  RMSNorm weights get their
    neutral value (1 for x*w norms, 0 for x*(1+w) norms) plus N(0, 0.2) noise so
    that a loader that ignores them, or adds/omits the +1, is caught.
    """
    gen = torch.Generator().manual_seed(seed)
    norm_params = {}
    for mname, mod in model.named_modules():
        if is_norm_module(mod):
            norm_params[id(mod.weight)] = 0.0 if norm_adds_one(mod) else 1.0
    seen = set()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if id(p) in norm_params:
                p.copy_(norm_params[id(p)] + 0.2 * noise)
            else:
                p.copy_(std * noise)


def layer_types_of(config):
    return list(getattr(config, "layer_types", None) or [])


def layer_windows(model, config):
    """Per-layer sliding window (0 = full attention), as transformers uses it.

    Gemma 2/3 attention modules carry `.sliding_window` (None on full layers).
    Mistral/Mixtral attention passes config.sliding_window to every layer in
    forward (read from the installed source); Llama/Gemma never use it.
    """
    out = []
    for layer in decoder_layers(model):
        attn = layer.self_attn
        if hasattr(attn, "sliding_window"):
            w = attn.sliding_window
        else:
            src = inspect.getsource(type(attn).forward)
            w = getattr(config, "sliding_window", None) if "sliding_window" in src else None
        out.append(int(w) if w else 0)
    return out


def decoder_layers(model):
    base = model.model
    if hasattr(base, "language_model"):
        base = base.language_model
    return list(base.layers)


def rotary_module(model):
    base = model.model
    if hasattr(base, "language_model"):
        base = base.language_model
    return base.rotary_emb


def rope_params_for_layer(config, i):
    rp = config.rope_parameters
    lts = layer_types_of(config)
    if lts and isinstance(rp, dict) and lts[i] in rp and isinstance(rp[lts[i]], dict):
        return dict(rp[lts[i]])
    return dict(rp)


def inv_freq_for_layer(rot, config, i):
    """The inv_freq buffer and attention_scaling the rotary module holds for layer i."""
    lts = layer_types_of(config)
    if lts and hasattr(rot, f"{lts[i]}_inv_freq"):
        return getattr(rot, f"{lts[i]}_inv_freq"), float(getattr(rot, f"{lts[i]}_attention_scaling"))
    return rot.inv_freq, float(rot.attention_scaling)


def check_inv_freq(inv, rp, head_dim):
    """Independent cross-check of transformers' buffer (guards against an uninitialised buffer)."""
    base = rp["rope_theta"]
    ref = [1.0 / (base ** (2 * k / head_dim)) for k in range(head_dim // 2)]
    t = rp.get("rope_type", "default")
    if t == "linear":
        ref = [r / rp["factor"] for r in ref]
    elif t == "llama3":
        f, lo, hi, orig = rp["factor"], rp["low_freq_factor"], rp["high_freq_factor"], rp["original_max_position_embeddings"]
        out = []
        for r in ref:
            wl = 2 * math.pi / r
            if wl < orig / hi:
                out.append(r)
            elif wl > orig / lo:
                out.append(r / f)
            else:
                s = (orig / wl - lo) / (hi - lo)
                out.append((1 - s) * r / f + s * r)
        ref = out
    elif t != "default":
        raise SystemExit(f"unexpected rope_type {t}")
    got = inv.float().tolist()
    for a, b in zip(got, ref):
        assert abs(a - b) <= 1e-6 * abs(b) + 1e-12, (t, got, ref)


def eos_list(*vals):
    out = []
    for v in vals:
        if v is None:
            continue
        for x in (v if isinstance(v, (list, tuple)) else [v]):
            if int(x) not in out:
                out.append(int(x))
    return sorted(out)


def config_facts(config, model) -> dict:
    """Config-level expectations, read off transformers' config and modules."""
    n_layers = config.num_hidden_layers
    lts = layer_types_of(config)
    layers = decoder_layers(model)
    attn0 = layers[0].self_attn
    mlp0 = layers[0].mlp
    act = getattr(mlp0, "act_fn", None)
    if act is None and hasattr(mlp0, "experts"):
        act = mlp0.experts.act_fn
    norm0 = layers[0].input_layernorm
    base = model.model.language_model if hasattr(model.model, "language_model") else model.model
    emb = base.embed_tokens
    embed_scale = float(emb.embed_scale) if hasattr(emb, "embed_scale") else 1.0
    return {
        "model_type": config.model_type,
        "transformers_version": transformers.__version__,
        "n_layers": n_layers,
        "hidden": config.hidden_size,
        "intermediate": config.intermediate_size,
        "n_heads": config.num_attention_heads,
        "n_kv_heads": config.num_key_value_heads,
        "head_dim": int(attn0.head_dim),
        "vocab": config.vocab_size,
        "tied": bool(config.tie_word_embeddings),
        "n_experts": int(getattr(config, "num_local_experts", 0) or 0),
        "n_experts_per_tok": int(getattr(config, "num_experts_per_tok", 0) or 0)
        if getattr(config, "num_local_experts", 0) else 0,
        "layer_types": lts or None,
        "layer_windows": layer_windows(model, config),
        "layer_rope_theta": [float(rope_params_for_layer(config, i)["rope_theta"]) for i in range(n_layers)],
        "layer_rope_parameters": [rope_params_for_layer(config, i) for i in range(n_layers)],
        "rms_norm_eps": float(config.rms_norm_eps),
        "max_position_embeddings": int(config.max_position_embeddings),
        "attn_scale": [float(l.self_attn.scaling) for l in layers],
        "final_logit_softcapping": getattr(config, "final_logit_softcapping", None),
        "attn_logit_softcapping": getattr(config, "attn_logit_softcapping", None),
        "query_pre_attn_scalar": getattr(config, "query_pre_attn_scalar", None),
        "hidden_act": getattr(config, "hidden_activation", None) or getattr(config, "hidden_act", None),
        "act_fn_class": type(act).__name__ if act is not None else None,
        "norm_weight_plus_one": norm_adds_one(norm0),
        "embed_scale": embed_scale,
        "has_qk_norm": hasattr(attn0, "q_norm"),
        "bos_token_id": config.bos_token_id,
        "config_eos_token_id": config.eos_token_id,
    }


def safetensors_facts(d: Path):
    files = sorted(d.glob("*.safetensors"))
    tensors, dtypes, where = {}, {}, {}
    for f in files:
        with safe_open(str(f), framework="pt") as sf:
            for k in sf.keys():
                sl = sf.get_slice(k)
                tensors[k] = list(sl.get_shape())
                dtypes[k] = sl.get_dtype()
                where[k] = f.name
    return dict(sorted(tensors.items())), dict(sorted(dtypes.items())), where


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1, sort_keys=False) + "\n")


# --------------------------------------------------------------------------- legacy configs


def legacy_config_dict(new: dict) -> dict:
    """Re-express a transformers-5 config.json dict in the pre-5.0 layout."""
    d = copy.deepcopy(new)
    d.pop("transformers_version", None)
    rp = d.pop("rope_parameters", None)
    mt = d.get("model_type")
    if mt == "gemma3_text":
        full = dict(rp["full_attention"])
        local = dict(rp["sliding_attention"])
        d["rope_theta"] = full.pop("rope_theta")
        d["rope_local_base_freq"] = local.pop("rope_theta")
        assert local.get("rope_type", "default") == "default"
        d["rope_scaling"] = full if full.get("rope_type", "default") != "default" else None
        d["sliding_window_pattern"] = d.pop("_sliding_window_pattern")
        d.pop("layer_types", None)
    else:
        rp = dict(rp)
        d["rope_theta"] = rp.pop("rope_theta")
        d["rope_scaling"] = rp if rp.get("rope_type", "default") != "default" else None
        if mt == "gemma2":
            d.pop("layer_types", None)
    return d


def check_legacy_roundtrip(orig_cfg, legacy_dir: Path) -> None:
    loaded = AutoConfig.from_pretrained(str(legacy_dir))
    a, b = orig_cfg.to_dict(), loaded.to_dict()
    for k in ("transformers_version", "_name_or_path"):
        a.pop(k, None)
        b.pop(k, None)
    # The loaded config may keep the legacy keys as plain attributes; they are not a difference.
    for k in ("sliding_window_pattern", "rope_local_base_freq", "rope_scaling", "rope_theta"):
        if k not in a:
            b.pop(k, None)
    if a != b:
        diff = {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}
        raise SystemExit(f"legacy config {legacy_dir} does not load back identically: {diff}")


# --------------------------------------------------------------------------- main work


def make_checkpoint(out: Path, name, cfg_fn, dtype, gen_eos, save_kwargs, seed) -> dict:
    d = out / "tiny" / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)

    torch.manual_seed(seed)
    config = cfg_fn()
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.eval()
    randomise(model, seed, config.initializer_range)

    # Facts from the live fp32 model (buffers are not saved, so read them here).
    facts = config_facts(config, model)
    rot = rotary_module(model)
    inv, scal = [], []
    for i in range(config.num_hidden_layers):
        buf, s = inv_freq_for_layer(rot, config, i)
        check_inv_freq(buf, rope_params_for_layer(config, i), facts["head_dim"])
        inv.append([float(x) for x in buf.float().tolist()])
        scal.append(s)
    n_params = int(model.num_parameters())

    model = model.to(dtype)
    model.save_pretrained(str(d), safe_serialization=True, **save_kwargs)

    gen = GenerationConfig(bos_token_id=config.bos_token_id, eos_token_id=gen_eos,
                           pad_token_id=getattr(config, "pad_token_id", None))
    gen.save_pretrained(str(d))
    gen_loaded = GenerationConfig.from_pretrained(str(d))

    tensors, dtypes, where = safetensors_facts(d)
    facts.update({
        "n_params": n_params,
        "generation_eos_token_id": gen_loaded.eos_token_id,
        "eos_ids": eos_list(config.eos_token_id, gen_loaded.eos_token_id),
        "rope_attention_scaling": scal,
        "inv_freq": inv,
        "saved_dtype": str(dtype).replace("torch.", ""),
        "shards": sorted(set(where.values())),
        "tensors": tensors,
        "dtypes": dtypes,
    })
    # Sanity: the saved checkpoint loads back in transformers with the same parameter count.
    reloaded = AutoModelForCausalLM.from_pretrained(str(d), dtype=torch.float32)
    assert int(reloaded.num_parameters()) == n_params, (name, reloaded.num_parameters(), n_params)
    if name == "llama_sharded":
        assert len(facts["shards"]) >= 2 and (d / "model.safetensors.index.json").exists(), facts["shards"]
    write_json(d / "expected.json", facts)

    # Legacy-layout copy of the config (not for llama_sharded: same layout as llama).
    if name == "llama_sharded":
        return facts
    ld = out / "configs" / f"{name}_legacy"
    if ld.exists():
        shutil.rmtree(ld)
    ld.mkdir(parents=True)
    new_dict = json.loads((d / "config.json").read_text())
    write_json(ld / "config.json", legacy_config_dict(new_dict))
    check_legacy_roundtrip(config, ld)
    cfg_only = {k: v for k, v in facts.items() if k not in ("tensors", "dtypes", "n_params", "inv_freq", "shards",
                                                             "saved_dtype", "generation_eos_token_id", "eos_ids",
                                                             "rope_attention_scaling")}
    cfg_only["eos_ids"] = eos_list(config.eos_token_id)
    write_json(ld / "expected.json", cfg_only)
    return facts


def make_gemma3_multimodal(out: Path) -> None:
    from transformers import SiglipVisionConfig, Gemma3ForConditionalGeneration

    d = out / "configs" / "gemma3_multimodal"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    text = gemma3_text_config()
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                num_attention_heads=2, image_size=28, patch_size=14)
    cfg = Gemma3Config(text_config=text.to_dict(), vision_config=vision.to_dict(), mm_tokens_per_image=4,
                       image_token_index=127, boi_token_index=125, eoi_token_index=126)
    cfg.save_pretrained(str(d))
    torch.manual_seed(7)
    model = Gemma3ForConditionalGeneration(cfg).eval()
    facts = config_facts(cfg.text_config, model)
    facts["top_model_type"] = cfg.model_type
    facts["eos_ids"] = eos_list(cfg.text_config.eos_token_id, getattr(cfg, "eos_token_id", None))
    # Which prefix the text weights get in a saved checkpoint (save to a scratch dir; keep no weights).
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        keys = []
        for f in sorted(Path(tmp).glob("*.safetensors")):
            with safe_open(str(f), framework="pt") as sf:
                keys += list(sf.keys())
    text_keys = [k for k in keys if not k.startswith(("vision_tower.", "multi_modal_projector."))]
    facts["saved_text_weight_prefix"] = sorted({k.split(".layers.")[0] for k in text_keys if ".layers." in k})
    facts["saved_text_nonlayer_tensors"] = sorted(k for k in text_keys if ".layers." not in k)
    facts["saved_other_prefixes"] = sorted({k.split(".")[0] for k in keys if k not in text_keys})
    write_json(d / "expected.json", facts)
    # Round trip: the saved config loads back as the same config.
    loaded = AutoConfig.from_pretrained(str(d))
    assert loaded.text_config.layer_types == cfg.text_config.layer_types


HUB_STYLE_CONFIGS = {
    "llama_no_special_ids": {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256,
    },
    "mistral_window_null": {
        "architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 64,
        "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 16, "vocab_size": 192, "max_position_embeddings": 256, "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-5, "sliding_window": None, "bos_token_id": 1, "eos_token_id": 2,
    },
    "mistral_layer_types": {
        "architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 64,
        "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 16, "vocab_size": 192, "sliding_window": 16,
        "layer_types": ["full_attention", "sliding_attention"], "bos_token_id": 1, "eos_token_id": 2,
    },
    "mixtral_layer_types": {
        "architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "hidden_size": 64,
        "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 16, "vocab_size": 128, "sliding_window": 16, "num_local_experts": 4, "num_experts_per_tok": 2,
        "layer_types": ["full_attention", "sliding_attention"], "bos_token_id": 1, "eos_token_id": 2,
    },
    "gemma2_softcap_null": {
        "architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "hidden_size": 48, "intermediate_size": 96,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
        "vocab_size": 160, "query_pre_attn_scalar": 24, "sliding_window": 32, "attn_logit_softcapping": None,
        "final_logit_softcapping": None, "hidden_activation": "gelu_pytorch_tanh", "bos_token_id": 2,
        "eos_token_id": 1, "pad_token_id": 0,
    },
    "gemma3_multimodal_terse": {
        "architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
        "boi_token_index": 255999, "eoi_token_index": 256000, "eos_token_id": [1, 106],
        "image_token_index": 262144, "mm_tokens_per_image": 4,
        "text_config": {
            "hidden_size": 32, "intermediate_size": 64, "model_type": "gemma3_text", "num_hidden_layers": 6,
            "rope_scaling": {"factor": 8.0, "rope_type": "linear"}, "sliding_window": 16,
        },
        "vision_config": {
            "hidden_size": 32, "image_size": 28, "intermediate_size": 64, "model_type": "siglip_vision_model",
            "num_attention_heads": 2, "num_hidden_layers": 1, "patch_size": 14,
        },
    },
}


def make_hub_style_configs(out: Path) -> list:
    written = []
    for case, cfg_dict in HUB_STYLE_CONFIGS.items():
        d = out / "configs" / f"hub_{case}"
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        write_json(d / "config.json", cfg_dict)
        loaded = AutoConfig.from_pretrained(str(d))
        torch.manual_seed(11)
        if loaded.model_type == "gemma3":
            from transformers import Gemma3ForConditionalGeneration
            model = Gemma3ForConditionalGeneration(loaded).eval()
            text = loaded.text_config
            facts = config_facts(text, model)
            facts["eos_ids"] = eos_list(text.eos_token_id, getattr(loaded, "eos_token_id", None))
        else:
            model = AutoModelForCausalLM.from_config(loaded, dtype=torch.float32).eval()
            text = loaded
            facts = config_facts(text, model)
            facts["eos_ids"] = eos_list(loaded.eos_token_id)
        rot = rotary_module(model)
        facts["inv_freq"] = [[float(x) for x in inv_freq_for_layer(rot, text, i)[0].float().tolist()]
                             for i in range(text.num_hidden_layers)]
        write_json(d / "expected.json", facts)
        written.append(d)
    return written


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(REPO / "tests" / "fixtures"), help="fixtures root (default: %(default)s)")
    ap.add_argument("--only", default="", help="comma-separated subset of checkpoint names")
    args = ap.parse_args()
    out = Path(args.out)
    only = set(filter(None, args.only.split(",")))

    torch.set_num_threads(min(4, os.cpu_count() or 1))
    written = []
    for name, cfg_fn, dtype, gen_eos, kw, seed in spec_list():
        if only and name not in only:
            continue
        facts = make_checkpoint(out, name, cfg_fn, dtype, gen_eos, kw, seed)
        print(f"tiny/{name}: {len(facts['tensors'])} tensors in {facts['shards']}, n_params={facts['n_params']}, "
              f"windows={facts['layer_windows']}, eos={facts['eos_ids']}")
        written.append(out / "tiny" / name)
        if (out / "configs" / f"{name}_legacy").exists():
            written.append(out / "configs" / f"{name}_legacy")
    if not only or "gemma3_multimodal" in only:
        make_gemma3_multimodal(out)
        written.append(out / "configs" / "gemma3_multimodal")
    if not only or "hub" in only:
        written += make_hub_style_configs(out)
    for w in written:
        for f in sorted(w.iterdir()):
            print(f"  wrote {f.relative_to(out.parent.parent) if out.is_relative_to(REPO) else f}  {f.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())

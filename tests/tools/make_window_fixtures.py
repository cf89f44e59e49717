#!/usr/bin/env python3
"""Reference for gale's sliding-window cache test: generating far past the window.

For the tiny mistral (sliding_window 32 on every layer) and gemma3_text (window 32 on
five of six layers) checkpoints under tests/fixtures/tiny/, Hugging Face transformers
(fp32, attn_implementation="eager") generates 10.3 windows' worth of greedy tokens
from a short prompt, then computes the logits at every position of prompt +
continuation in one forward without a cache.  Writes tests/fixtures/window/<tiny>/:

  ids.json     {"prompt_len": 10, "ids": prompt + 320 greedy ids, "window": 32,
                "n_ctx": 400, "cached_vs_uncached": max relative difference of the
                logits generate() saw against the uncached ones}
  logits.npy   float32 [330, vocab]

The sequence goes past the checkpoints' max_position_embeddings (256) for mistral;
rotary embeddings are computed on the fly there, so gale runs with --ctx 400.

Re-run: python3 tests/tools/make_window_fixtures.py   (under a minute on 2 cores;
needs torch, transformers >= 5, numpy).  Deterministic: fixed prompt, greedy.
"""
import json
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, GenerationConfig

REPO = Path(__file__).resolve().parents[2]
PROMPT = [2, 17, 93, 5, 41, 77, 12, 64, 30, 8]
NEW_TOKENS = 320
WINDOW = 32


def main() -> None:
    torch.manual_seed(0)
    for name in ["mistral", "gemma3_text"]:
        model = AutoModelForCausalLM.from_pretrained(str(REPO / "tests/fixtures/tiny" / name), dtype=torch.float32,
                                                     attn_implementation="eager")
        model.eval()
        vocab = model.config.vocab_size
        prompt = [t % vocab for t in PROMPT]
        gc = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=NEW_TOKENS, eos_token_id=None,
                              pad_token_id=0, bos_token_id=None, use_cache=True, output_logits=True,
                              return_dict_in_generate=True)
        model.generation_config = gc  # nothing from the checkpoint (its eos would stop early)
        x = torch.tensor([prompt])
        with torch.no_grad():
            out = model.generate(x, attention_mask=torch.ones_like(x), generation_config=gc)
            ids = [int(t) for t in out.sequences[0]]
            assert len(ids) == len(prompt) + NEW_TOKENS, f"generate stopped early: {len(ids)}"
            full = torch.tensor([ids])
            logits = model(input_ids=full, attention_mask=torch.ones_like(full), use_cache=False).logits[0].float().numpy()
        seen = torch.cat([l.float() for l in out.logits], dim=0).numpy()
        uncached = logits[len(prompt) - 1:-1]
        rel = float(np.max(np.abs(seen - uncached)) / np.max(np.abs(uncached)))
        assert rel < 1e-4, f"{name}: cached and uncached logits differ by {rel}"
        # the argmax of the uncached logits must reproduce the greedy tokens
        assert [int(t) for t in uncached.argmax(-1)] == ids[len(prompt):], f"{name}: greedy does not match argmax"
        outdir = REPO / "tests/fixtures/window" / name
        outdir.mkdir(parents=True, exist_ok=True)
        np.save(outdir / "logits.npy", logits.astype(np.float32))
        (outdir / "ids.json").write_text(json.dumps({"prompt_len": len(prompt), "ids": ids, "window": WINDOW,
                                                     "n_ctx": 400, "cached_vs_uncached": rel}) + "\n")
        print(f"{name}: {len(ids)} ids, cached vs uncached {rel:.3g}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The peer of bench_decode on a GPU: Hugging Face transformers (bf16, sdpa attention) on
the same config-only shapes with random weights, timing greedy decode steps with a KV
cache at several batch sizes.

    python3 bench/peer_transformers_decode.py bench/configs/mistral-7b [--batch 1,8,32]
        [--prompt 512] [--steps 32]

One JSON line per batch size: {"peer": "transformers", "model": ..., "batch": B,
"tok_s": ..., "ms_per_step": ...}. The weights are made on the GPU (torch's default
initialisation in bf16): their values do not matter to the time of a step.
"""
import argparse
import json
import os
import time

import torch
from transformers import AutoConfig, AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config_dir")
    ap.add_argument("--batch", default="1,8,32")
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--steps", type=int, default=32)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("peer_transformers_decode: no CUDA device")
    config = AutoConfig.from_pretrained(args.config_dir)
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.bfloat16)
    model.eval()
    name = os.path.basename(os.path.normpath(args.config_dir))
    for batch in (int(b) for b in args.batch.split(",")):
        ids = torch.randint(3, config.vocab_size, (batch, args.prompt), device="cuda")
        with torch.inference_mode():
            out = model(input_ids=ids, use_cache=True)
            past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
            for _ in range(2):  # warm-up steps
                out = model(input_ids=token, past_key_values=past, use_cache=True)
                past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(args.steps):
                out = model(input_ids=token, past_key_values=past, use_cache=True)
                past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
            torch.cuda.synchronize()
            seconds = time.perf_counter() - start
        print(json.dumps({"peer": "transformers", "model": name, "batch": batch, "prompt": args.prompt,
                          "tok_s": round(batch * args.steps / seconds, 1),
                          "ms_per_step": round(1e3 * seconds / args.steps, 3)}), flush=True)
        del past, out
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()

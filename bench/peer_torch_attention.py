"""The peer for `gale bench kernels attention`: torch.nn.functional.scaled_dot_product_attention
(bf16, causal, GQA) on the same prefill shapes, printed in the same table and JSON fields
(variant "torch_sdpa"), so a script can put the ratios side by side.

    python3 bench/peer_torch_attention.py [--json]

Shapes: one sequence of L tokens attending causally to itself, Mistral-7B-like (32 query
heads, 8 KV heads, head_dim 128) at L = 1k, 4k, 16k and Gemma-2-9B-like (16/8, head_dim
256, scale 256^-0.5, window 4096) at 4k and 16k. TFLOP/s counts the same unmasked work as
gale: 4 * head_dim * heads * sum_i visible(i). SDPA has no softcap: the Gemma rows run
without it (gale's include its cap 50), and the 16k Gemma row passes the sliding window as
a boolean mask, which keeps SDPA off its flash backend, so read it as a reference point
only; SDPA is limited to its fused backends (flash, memory-efficient, cuDNN), and a shape
none of them takes prints "-". GQA: enable_gqa=True where torch has it and no mask is
passed, else K/V repeated per query head (the copy is made before timing; the
memory-efficient backend, which takes the mask, refuses enable_gqa). Timing: CUDA events, one warm-up, median of up to 15 repeats.
Under 30 s on an H100.
"""
import argparse
import contextlib
import json
import statistics
import sys

import torch
import torch.nn.functional as F

MAX_REPEATS = 15


def visible_keys(tokens: int, window: int) -> int:
    if window <= 0 or window >= tokens:
        return tokens * (tokens + 1) // 2
    # i + 1 keys for the first `window` queries, then `window` each
    return window * (window + 1) // 2 + (tokens - window) * window


def fused_backends():
    """SDPA limited to its fused kernels: the math fallback would materialise the whole
    score matrix (gigabytes at 16k tokens) and time something else."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # torch < 2.3: whatever SDPA picks
        return contextlib.nullcontext()
    backends = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]
    if hasattr(SDPBackend, "CUDNN_ATTENTION"):
        backends.append(SDPBackend.CUDNN_ATTENTION)
    return sdpa_kernel(backends)


def time_ms(fn) -> float:
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    stop.record()
    torch.cuda.synchronize()
    warm = start.elapsed_time(stop)
    repeats = max(3, min(MAX_REPEATS, int(400.0 / warm) if warm > 0 else MAX_REPEATS))
    times = []
    for _ in range(repeats):
        start.record()
        fn()
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def run(model: str, tokens: int, as_json: bool) -> None:
    gemma = model == "gemma2-9b"
    heads, kv_heads, head_dim = (16, 8, 256) if gemma else (32, 8, 128)
    window = 4096 if gemma else 0
    scale = 256 ** -0.5 if gemma else head_dim ** -0.5
    q = torch.randn(1, heads, tokens, head_dim, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(1, kv_heads, tokens, head_dim, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(1, kv_heads, tokens, head_dim, device="cuda", dtype=torch.bfloat16)
    kwargs = {"scale": scale}
    masked = window > 0 and tokens > window
    if masked:
        i = torch.arange(tokens, device="cuda")
        diff = i[:, None] - i[None, :]
        kwargs["attn_mask"] = (diff >= 0) & (diff < window)
    else:
        kwargs["is_causal"] = True
    gqa = False
    if not masked:  # the memory-efficient backend, the one that takes a mask, refuses enable_gqa
        try:
            F.scaled_dot_product_attention(q[:, :, :16], k[:, :, :16], v[:, :, :16], is_causal=True, enable_gqa=True)
            gqa = True
        except TypeError:  # torch < 2.5
            pass
    if gqa:
        kwargs["enable_gqa"] = True
    else:
        k = k.repeat_interleave(heads // kv_heads, dim=1)
        v = v.repeat_interleave(heads // kv_heads, dim=1)
    try:
        with fused_backends():
            ms = time_ms(lambda: F.scaled_dot_product_attention(q, k, v, **kwargs))
        tflops = 4.0 * head_dim * heads * visible_keys(tokens, window) / (ms * 1e-3) / 1e12
    except RuntimeError as err:  # no fused backend takes the shape: no row worth timing
        print(f"peer_torch_attention: {model} {tokens}: {str(err).splitlines()[0]}", file=sys.stderr)
        ms = tflops = None
    if as_json:
        print(json.dumps({"kind": "prefill", "model": model, "batch": 1, "context": tokens, "tokens": tokens,
                          "heads": heads, "kv_heads": kv_heads, "head_dim": head_dim, "window": window,
                          "softcap": 0, "variant": "torch_sdpa", "ms": None if ms is None else round(ms, 4),
                          "tflops": None if tflops is None else round(tflops, 2), "gbps": None, "roof_pct": None}),
              flush=True)
    else:
        shape = f"{model} B=1 ctx={tokens}"
        ms_text = "-" if ms is None else f"{ms:.3f}"
        tflops_text = "-" if tflops is None else f"{tflops:.1f}"
        print(f"{'prefill':<8s} {shape:<28s} {'torch_sdpa':<14s} {ms_text:>9s} {tflops_text:>8s} {'-':>8s} {'-':>6s}",
              flush=True)
    del q, k, v, kwargs
    torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON line per row")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("peer_torch_attention: no CUDA device")
    torch.backends.cuda.matmul.allow_tf32 = False
    if not args.json:
        print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}: prefill TFLOP/s of unmasked work")
        print(f"{'kind':<8s} {'shape':<28s} {'variant':<14s} {'ms':>9s} {'TFLOP/s':>8s} {'GB/s':>8s} {'roof':>6s}")
    for tokens in (1024, 4096, 16384):
        run("mistral7b", tokens, args.json)
    for tokens in (4096, 16384):
        run("gemma2-9b", tokens, args.json)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Make GGUF fixtures: one tensor per ggml type, and a tiny llama GGUF.

Writes, under tests/fixtures/gguf/:

  quant_blocks.gguf
      general.architecture "llama", general.alignment 64 (not the default 32,
      so a loader must honour the key), a set of `gale.test.*` keys covering
      every GGUF value type, and one 3 x 512 tensor per type:
        t.f32 t.f16 t.bf16 t.q8_0 t.q4_0 t.q4_1 t.q4_k t.q5_k t.q6_k t.q5_0 t.q5_1
      (Q5_0 is what Gemma 3 GGUFs use for some attention and MLP matrices)
      F32 holds N(0,1) values; F16 and BF16 hold random *bit patterns*
      (every finite value class: subnormals, +-0, large exponents; no NaN/Inf).
      Quantised tensors hold random raw block bytes, except that every fp16
      scale field (d, m, dmin) is overwritten with a finite fp16 in
      +-[0.001, 0.1] (random sign).  One Q8_0 block gets a subnormal fp16 d.
  quant_expected.safetensors
      F32 [3, 512] tensors with the same names: the values
      gguf.quants.dequantize (the gguf package's reference) gives for them.
  quant_blocks.json
      the metadata keys/values written, and per tensor its ggml type, ne
      (innermost first) and byte size, so a C test can check its parser.

  tiny_llama.gguf
      tests/fixtures/tiny/llama (run make_tiny_checkpoints.py first) converted
      the way llama.cpp's converter lays out a llama model: llama.* keys,
      token_embd/output_norm/output and blk.N.* names, Q and K rows permuted per
      head so that rotary pairs are adjacent, and the llama3 rope scaling
      expressed as a `rope_freqs.weight` F32 [head_dim/2] tensor of per-frequency
      divisors (theta_k = pos * base^(-2k/d) / rope_freqs[k]), without
      rope.scaling.* keys -- llama.cpp's own convention for llama3 scaling.
      token_embd.weight and output.weight are BF16 (lossless: the checkpoint is
      bfloat16), blk.1.ffn_{gate,up,down}.weight are Q8_0 (gguf.quants.quantize),
      all others F32.  No tokenizer keys.
  tiny_llama_q8_dequant.safetensors
      F32 dequantised values of those three Q8_0 tensors, under their HF names
      (model.layers.1.mlp.{gate,up,down}_proj.weight), so a loader can be
      checked exactly; all other tensors must equal the HF checkpoint exactly
      (after un-permuting Q/K).

The script reads every file back with gguf.GGUFReader and checks it, and (if
transformers can) loads tiny_llama.gguf with transformers and checks that it
un-permutes to the HF weights.

Re-run:  python3 tests/tools/make_quant_fixtures.py [--out tests/fixtures/gguf] [--seed 1234]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf import GGUFReader, GGUFWriter
from gguf.quants import dequantize, quantize
from safetensors.numpy import save_file, load_file

REPO = Path(__file__).resolve().parents[2]
ROWS, COLS = 3, 512

# type -> byte offsets of its fp16 scale fields within one block
SCALE_FIELDS = {
    T.Q8_0: [0],
    T.Q4_0: [0],
    T.Q4_1: [0, 2],
    T.Q4_K: [0, 2],
    T.Q5_K: [0, 2],
    T.Q6_K: [208],
    T.Q5_0: [0],
    T.Q5_1: [0, 2],
}
# Q5_0/Q5_1 last so the random draws of the older types stay as they were
ORDER = [T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q4_K, T.Q5_K, T.Q6_K, T.Q5_0, T.Q5_1]


def random_fp16_scales(rng, n):
    mag = rng.uniform(0.001, 0.1, size=n)
    sign = np.where(rng.integers(0, 2, size=n) == 1, -1.0, 1.0)
    return (mag * sign).astype(np.float16)


def make_raw(rng, qtype) -> np.ndarray:
    """Raw row-major bytes/values for a ROWS x COLS tensor of this type."""
    if qtype == T.F32:
        return rng.standard_normal((ROWS, COLS)).astype(np.float32)
    if qtype == T.F16:
        bits = rng.integers(0, 1 << 16, size=(ROWS, COLS), dtype=np.uint32).astype(np.uint16)
        # exponent 0x1f = Inf/NaN: clear one exponent bit to make them finite
        bad = (bits & 0x7C00) == 0x7C00
        bits[bad] &= np.uint16(0xFBFF)
        bits[0, :4] = [0x0000, 0x8000, 0x0001, 0x7BFF]  # +0, -0, smallest subnormal, 65504
        return bits.view(np.uint8).reshape(ROWS, COLS * 2)
    if qtype == T.BF16:
        bits = rng.integers(0, 1 << 16, size=(ROWS, COLS), dtype=np.uint32).astype(np.uint16)
        bad = (bits & 0x7F80) == 0x7F80
        bits[bad] &= np.uint16(0xFF7F)
        bits[0, :4] = [0x0000, 0x8000, 0x0001, 0x3F80]  # +0, -0, smallest subnormal, 1.0
        return bits.view(np.uint8).reshape(ROWS, COLS * 2)
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    nblk = ROWS * COLS // block_size
    raw = rng.integers(0, 256, size=(nblk, type_size), dtype=np.uint16).astype(np.uint8)
    for off in SCALE_FIELDS[qtype]:
        raw[:, off:off + 2] = random_fp16_scales(rng, nblk).view(np.uint8).reshape(nblk, 2)
    if qtype == T.Q8_0:
        raw[1, 0:2] = np.array([0x0123], dtype=np.uint16).view(np.uint8)  # subnormal fp16 d
    return raw.reshape(ROWS, COLS // block_size * type_size)


def test_metadata():
    """(key, writer method, value) for every GGUF value type."""
    return [
        ("gale.test.u8", "add_uint8", 200),
        ("gale.test.i8", "add_int8", -100),
        ("gale.test.u16", "add_uint16", 60000),
        ("gale.test.i16", "add_int16", -30000),
        ("gale.test.u32", "add_uint32", 4000000000),
        ("gale.test.i32", "add_int32", -2000000000),
        ("gale.test.f32", "add_float32", 0.5),
        ("gale.test.bool", "add_bool", True),
        ("gale.test.string", "add_string", "h\u00e9llo \u2581world"),
        ("gale.test.u64", "add_uint64", 1 << 40),
        ("gale.test.i64", "add_int64", -(1 << 40)),
        ("gale.test.f64", "add_float64", 0.125),
        ("gale.test.arr_i32", "add_array", [1, -2, 3]),
        ("gale.test.arr_str", "add_array", ["a", "", "b c"]),
    ]


def write_quant_blocks(out: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    path = out / "quant_blocks.gguf"
    w = GGUFWriter(str(path), "llama")
    w.add_name("gale quant block fixture")
    w.add_custom_alignment(64)
    for key, meth, val in test_metadata():
        getattr(w, meth)(key, val)

    raws, expected, info = {}, {}, []
    for qt in ORDER:
        name = f"t.{qt.name.lower()}"
        raw = make_raw(rng, qt)
        raws[name] = (qt, raw)
        if qt == T.F32:
            w.add_tensor(name, raw)
        else:
            w.add_tensor(name, raw, raw_dtype=qt)
        deq = dequantize(raw, qt).astype(np.float32).reshape(ROWS, COLS)
        assert np.isfinite(deq).all(), name
        expected[name] = np.ascontiguousarray(deq)
        info.append({"name": name, "ggml_type": qt.name, "ggml_type_id": int(qt), "ne": [COLS, ROWS],
                     "n_bytes": int(raw.nbytes)})
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    save_file(expected, str(out / "quant_expected.safetensors"))

    # Read back and check.
    r = GGUFReader(str(path))
    assert r.alignment == 64, r.alignment
    assert r.data_offset % 64 == 0
    by_name = {t.name: t for t in r.tensors}
    for name, (qt, raw) in raws.items():
        t = by_name[name]
        assert t.tensor_type == qt, (name, t.tensor_type)
        assert list(map(int, t.shape)) == [COLS, ROWS], (name, t.shape)
        assert t.data_offset % 64 == 0
        got = np.asarray(t.data)
        assert got.tobytes() == raw.tobytes(), name
        deq = dequantize(got, qt).reshape(ROWS, COLS)
        assert np.array_equal(deq, expected[name], equal_nan=False), name
    for key, _, val in test_metadata():
        f = r.fields[key]
        got = f.contents()
        if isinstance(val, float):
            assert abs(got - val) < 1e-12, (key, got)
        else:
            assert got == val, (key, got, val)
    desc = {
        "alignment": 64,
        "architecture": "llama",
        "metadata": {k: v for k, _, v in test_metadata()},
        "metadata_types": {k: r.fields[k].types[0].name if r.fields[k].types else None for k, _, _ in test_metadata()},
        "tensors": info,
        "gguf_version": int(r.fields["GGUF.version"].contents()),
        "data_offset": int(r.data_offset),
        "tensor_data_offsets": {t.name: int(t.data_offset - r.data_offset) for t in r.tensors},
    }
    (out / "quant_blocks.json").write_text(json.dumps(desc, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes): {', '.join(raws)}")


# --------------------------------------------------------------------------- tiny llama


def permute_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF split-half rotary row order -> interleaved (llama.cpp GGUF) order, per head."""
    out_dim = w.shape[0]
    hd = out_dim // n_head
    return w.reshape(n_head, 2, hd // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tiny_llama(out: Path, tiny_dir: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(str(tiny_dir))
    sd = {k: v.float().numpy() for k, v in _load_hf(tiny_dir).items()}
    model = AutoModelForCausalLM.from_pretrained(str(tiny_dir), dtype=torch.float32)
    rot = model.model.rotary_emb
    scaled = rot.inv_freq.float().numpy()
    base_inv, _ = type(rot).compute_default_rope_parameters(cfg)
    rope_freqs = (base_inv.float().numpy() / scaled).astype(np.float32)

    hd = cfg.head_dim
    n_head, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
    path = out / "tiny_llama.gguf"
    w = GGUFWriter(str(path), "llama")
    w.add_name("gale tiny llama")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_key_length(hd)
    w.add_value_length(hd)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    w.add_rope_dimension_count(hd)
    w.add_vocab_size(cfg.vocab_size)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    q8_names = {f"blk.1.ffn_{x}.weight" for x in ("gate", "up", "down")}
    bf16_names = {"token_embd.weight", "output.weight"}
    mapping = [("token_embd.weight", "model.embed_tokens.weight", None)]
    mapping.append(("rope_freqs.weight", None, None))
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        mapping += [
            (f"blk.{i}.attn_norm.weight", p + "input_layernorm.weight", None),
            (f"blk.{i}.attn_q.weight", p + "self_attn.q_proj.weight", n_head),
            (f"blk.{i}.attn_k.weight", p + "self_attn.k_proj.weight", n_kv),
            (f"blk.{i}.attn_v.weight", p + "self_attn.v_proj.weight", None),
            (f"blk.{i}.attn_output.weight", p + "self_attn.o_proj.weight", None),
            (f"blk.{i}.ffn_norm.weight", p + "post_attention_layernorm.weight", None),
            (f"blk.{i}.ffn_gate.weight", p + "mlp.gate_proj.weight", None),
            (f"blk.{i}.ffn_up.weight", p + "mlp.up_proj.weight", None),
            (f"blk.{i}.ffn_down.weight", p + "mlp.down_proj.weight", None),
        ]
    mapping += [("output_norm.weight", "model.norm.weight", None), ("output.weight", "lm_head.weight", None)]

    written, dequant = {}, {}
    for gname, hname, perm in mapping:
        arr = rope_freqs if hname is None else sd[hname]
        if perm is not None:
            arr = permute_rows(arr, perm)
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if gname in bf16_names:
            # The source checkpoint is bfloat16, so BF16 here is lossless (as llama.cpp's
            # converter does for a bf16 model); gives the file a third tensor type.
            b = quantize(arr, T.BF16)
            assert np.array_equal(dequantize(b, T.BF16).reshape(arr.shape), arr), gname
            w.add_tensor(gname, b, raw_dtype=T.BF16)
            written[gname] = (T.BF16, b)
        elif gname in q8_names:
            q = quantize(arr, T.Q8_0)
            w.add_tensor(gname, q, raw_dtype=T.Q8_0)
            dequant[hname] = np.ascontiguousarray(dequantize(q, T.Q8_0).reshape(arr.shape).astype(np.float32))
            written[gname] = (T.Q8_0, q)
        else:
            w.add_tensor(gname, arr)
            written[gname] = (T.F32, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    save_file(dequant, str(out / "tiny_llama_q8_dequant.safetensors"))

    # Read back.
    r = GGUFReader(str(path))
    assert r.alignment == 32
    names = [t.name for t in r.tensors]
    assert names == [m[0] for m in mapping], names
    for t in r.tensors:
        qt, arr = written[t.name]
        assert t.tensor_type == qt, t.name
        assert np.asarray(t.data).tobytes() == arr.tobytes(), t.name
        hname = dict((m[0], m[1]) for m in mapping)[t.name]
        if hname is not None:
            assert list(map(int, t.shape)) == list(reversed(sd[hname].shape)), (t.name, t.shape)
    # Un-permuting recovers HF exactly.
    for gname, hname, perm in mapping:
        if perm is None:
            continue
        g = written[gname][1]
        hd_ = g.shape[0] // perm
        unp = g.reshape(perm, hd_ // 2, 2, -1).swapaxes(1, 2).reshape(g.shape)
        assert np.array_equal(unp, sd[hname]), gname
    print(f"wrote {path} ({path.stat().st_size} bytes): {len(names)} tensors; Q8_0: {sorted(q8_names)}; "
          f"BF16: {sorted(bf16_names)}")
    _check_with_transformers(out, path, sd, dequant)


def _check_with_transformers(out: Path, path: Path, sd, dequant) -> None:
    """transformers' GGUF loader un-permutes Q/K: its weights must equal the HF ones."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        m = AutoModelForCausalLM.from_pretrained(str(out), gguf_file=path.name, dtype=torch.float32)
    except Exception as e:  # informative only
        print(f"  note: transformers could not load {path.name}: {type(e).__name__}: {str(e)[:200]}")
        return
    got = {k: v.detach().float().numpy() for k, v in m.state_dict().items()}
    bad = []
    for k, ref in sd.items():
        ref = dequant.get(k, ref)
        if k not in got:
            bad.append(f"{k} missing")
        elif not np.array_equal(got[k], ref):
            bad.append(f"{k} max|diff|={np.abs(got[k] - ref).max()}")
    if bad:
        raise SystemExit("transformers' reading of tiny_llama.gguf differs: " + "; ".join(bad))
    print(f"  transformers {__import__('transformers').__version__} loads {path.name} to the HF weights exactly")


def _load_hf(d: Path):
    from safetensors.torch import load_file as load_pt
    sd = {}
    for f in sorted(d.glob("*.safetensors")):
        sd.update(load_pt(str(f)))
    return sd


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(REPO / "tests" / "fixtures" / "gguf"))
    ap.add_argument("--tiny-llama", default=str(REPO / "tests" / "fixtures" / "tiny" / "llama"),
                    help="HF checkpoint to convert (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_quant_blocks(out, args.seed)
    write_tiny_llama(out, Path(args.tiny_llama))
    for f in sorted(out.iterdir()):
        print(f"  {f}  {f.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())

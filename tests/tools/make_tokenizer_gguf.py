"""Writes tests/fixtures/gguf/llama3_style_tokenizer.gguf: the llama3_style test tokenizer
(tests/fixtures/tokenizer/llama3_style/tokenizer.json, made by make_tokenizer_fixtures.py)
as GGUF tokenizer metadata, the way llama.cpp's converter stores a Llama 3 tokenizer:
tokenizer.ggml.model "gpt2", pre "llama-bpe", tokens in id order, token_type 3 for the
special added tokens, merges as "a b" strings, bos/eos ids and add_bos_token.

gale must encode the corpus with it to exactly the ids transformers gives for the
tokenizer.json (tests/test_tokenizer.c). Re-run: python3 tests/tools/make_tokenizer_gguf.py
"""
import json
from pathlib import Path

import gguf

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "tests/fixtures/tokenizer/llama3_style"
OUT = REPO / "tests/fixtures/gguf/llama3_style_tokenizer.gguf"


def main() -> None:
    tok = json.loads((SRC / "tokenizer.json").read_text())
    config = json.loads((SRC / "tokenizer_config.json").read_text())
    vocab = dict(tok["model"]["vocab"])
    special = set()
    for added in tok["added_tokens"]:
        vocab[added["content"]] = added["id"]
        if added["special"]:
            special.add(added["id"])
    n = max(vocab.values()) + 1
    tokens = [""] * n
    for piece, i in vocab.items():
        tokens[i] = piece
    types = [3 if i in special else 1 for i in range(n)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]

    w = gguf.GGUFWriter(str(OUT), "llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("llama-bpe")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(vocab[config["bos_token"]])
    w.add_eos_token_id(vocab[config["eos_token"]])
    w.add_add_bos_token(True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes): {n} tokens, {len(merges)} merges")


if __name__ == "__main__":
    main()

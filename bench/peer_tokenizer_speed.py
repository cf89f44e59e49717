"""The peer for bench_tokenizer: Hugging Face tokenizers (Rust, one thread) encoding the
same 1,000,000-byte text, so both can be timed in one session on one machine.

    python3 bench/peer_tokenizer_speed.py [smollm2=DIR_OR_TOKENIZER_JSON ...]

Defaults to the committed SmolLM2 tokenizer.json. The text recipe is bench_tokenizer's
(and tests/tools/make_tokenizer_fixtures.py's): the corpus joined with newlines, repeated,
cut to 1,000,000 bytes at a character boundary. Prints MB/s (median of 5 after a warm-up)
and the token count, which must equal gale's.
"""
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
from tokenizers import Tokenizer  # noqa: E402  (after the thread settings)

REPO = Path(__file__).resolve().parents[1]
TEXT_BYTES = 1_000_000


def build_text() -> str:
    corpus = json.loads((REPO / "tests/fixtures/tokenizer/corpus.json").read_text())
    joined = "\n".join(corpus)
    text = joined
    while len(text.encode()) < TEXT_BYTES:
        text += "\n" + joined
    return text.encode()[:TEXT_BYTES].decode("utf-8", errors="ignore")


def main() -> None:
    specs = sys.argv[1:] or [f"smollm2={REPO}/tests/fixtures/tokenizer/smollm2"]
    text = build_text()
    print(f"HF tokenizers, encode {len(text.encode())} bytes, one thread, median of 5")
    for spec in specs:
        name, path = spec.split("=", 1)
        path = Path(path)
        tok = Tokenizer.from_file(str(path / "tokenizer.json" if path.is_dir() else path))
        tok.encode(text, add_special_tokens=False)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            n = len(tok.encode(text, add_special_tokens=False).ids)
            times.append(time.perf_counter() - start)
        print(f"{name:10s} {n:9d} tokens {len(text.encode()) / 1e6 / statistics.median(times):8.2f} MB/s")


if __name__ == "__main__":
    main()

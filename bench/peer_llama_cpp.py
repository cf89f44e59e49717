"""The peer for bench_generate: llama.cpp's CPU path (via the llama-cpp-python package,
which builds llama.cpp from source) on the same GGUF, the same token ids, the same
counts: prefill 128 tokens, then 64 single-token decode steps, median of 3.

    pip install llama-cpp-python          # builds llama.cpp (several minutes)
    python3 bench/peer_llama_cpp.py MODEL.gguf [THREADS ...]
"""
import statistics
import sys
import time

from llama_cpp import Llama

PROMPT, DECODE, RUNS = 128, 64, 3


def bench(path: str, threads: int) -> None:
    llm = Llama(model_path=path, n_ctx=PROMPT + DECODE + 1, n_batch=PROMPT, n_threads=threads,
                n_threads_batch=threads, verbose=False)
    vocab = llm.n_vocab()
    prompt = [(1000 + 7919 * i) % vocab for i in range(PROMPT)]
    prefill, decode = [], []
    for _ in range(RUNS):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(prompt)
        t1 = time.perf_counter()
        for i in range(DECODE):
            llm.eval([(31 * i + 5) % vocab])
        t2 = time.perf_counter()
        prefill.append(PROMPT / (t1 - t0))
        decode.append(DECODE / (t2 - t1))
    print(f"{threads:<8d} {statistics.median(prefill):14.1f} {statistics.median(decode):14.1f}")


def main() -> None:
    path = sys.argv[1]
    threads = [int(t) for t in sys.argv[2:]] or [1, 2]
    print(f"llama.cpp {path}: prefill {PROMPT} tokens, decode {DECODE} tokens, median of {RUNS}")
    print(f"{'threads':8s} {'prefill tok/s':>14s} {'decode tok/s':>14s}")
    for t in threads:
        bench(path, t)


if __name__ == "__main__":
    main()

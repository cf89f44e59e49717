/* `gale bench kernels FAMILY [options]`: one kernel family timed on the GPU against the
 * device-to-device copy bandwidth (GB/s) or the bf16 tensor-core rate (TFLOP/s) measured in
 * the same run, each variant of the family side by side (--variant NAME picks one).
 *
 * Each family parses its own options (argv[0] is the family's name) and returns the exit
 * code: 0 done, 1 failure (no GPU included, with the reason on stderr), 2 usage error. */
#ifndef GALE_BENCH_KERNEL_BENCH_H
#define GALE_BENCH_KERNEL_BENCH_H

/* norm, rope, activation, embed, gemm (cuBLAS vs the hand-written GEMV) — the CUDA backend's */
int kernel_bench_dense(int argc, char **argv);
/* attention: prefill and split-KV decode variants on the paged cache */
int kernel_bench_attention(int argc, char **argv);
/* moe: gating, dispatch, grouped expert GEMMs, combine — a Mixtral layer */
int kernel_bench_moe(int argc, char **argv);

#endif

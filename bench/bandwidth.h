/* The rooflines the benchmarks divide by, measured in the same run (../shared/PERF.md:
 * the memory bandwidth B of a device-to-device copy of at least 2 GB, the matrix rate F of
 * an 8192³ bf16 cuBLAS GEMM). */
#ifndef GALE_BENCH_BANDWIDTH_H
#define GALE_BENCH_BANDWIDTH_H

#include <stddef.h>

/* memcpy of `bytes` on one thread, bytes read + written per second (median of 5). */
double bench_cpu_copy_bandwidth(size_t bytes);
/* cudaMemcpy device to device of `bytes`, read + written per second (median of 5); 0
 * without CUDA or a GPU. */
double bench_gpu_copy_bandwidth(size_t bytes);
/* the bytes every GPU benchmark copies for B: large enough that no cache holds them */
#define BENCH_GPU_COPY_BYTES ((size_t)2 << 30)
/* F: FLOP/s of an 8192 x 8192 x 8192 bf16 GEMM through cuBLAS, fp32 accumulation, on
 * random data (median of 5); 0 without CUDA or a GPU, or when cuBLAS fails. */
double bench_gpu_gemm_rate(void);

#endif

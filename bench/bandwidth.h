/* The memory rooflines the benchmarks divide by, measured in the same run. */
#ifndef GALE_BENCH_BANDWIDTH_H
#define GALE_BENCH_BANDWIDTH_H

#include <stddef.h>

/* memcpy of `bytes` on one thread, bytes read + written per second (median of 5). */
double bench_cpu_copy_bandwidth(size_t bytes);
/* cudaMemcpy device to device of `bytes`, read + written per second (median of 5); 0
 * without CUDA or a GPU. */
double bench_gpu_copy_bandwidth(size_t bytes);

#endif

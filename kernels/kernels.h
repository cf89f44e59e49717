/* C-callable launchers of the CUDA kernels in the kernels/ .cu files.
 *
 * Host C11 code includes this header without any CUDA header: device buffers are plain
 * pointers to device memory and the stream is a cudaStream_t passed as void * (NULL is
 * the legacy default stream). Every launcher validates its arguments, enqueues its work
 * on the stream (it does not synchronise) and checks the launch: a failure returns a
 * gale_status with a message naming the kernel. Errors raised while the kernel runs
 * surface at the caller's next synchronising call. */
#ifndef GALE_KERNELS_H
#define GALE_KERNELS_H

#include <stdint.h>

#include "gale.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- dequant.cu: stored weights (REFERENCE.md §6) → fp32 / bf16 -------------------- */

/* n values encoded as dtype at src (device memory, the file's bytes as they are, no
 * alignment needed) → dst[n] in device memory. n must be a whole number of blocks.
 * Results are bit-identical to quant_dequantize_f32 / quant_dequantize_bf16 (src/model/
 * quant.h) except for the payload bits of NaNs that arithmetic on a NaN or infinite
 * scale produces (the GPU returns its canonical NaN). */
gale_status kernel_dequant_f32(gale_dtype dtype, const void *src, uint64_t n, float *dst,
                               void *stream);
/* dst_bf16: n bf16 values (bit patterns, uint16_t or __nv_bfloat16 in device memory). */
gale_status kernel_dequant_bf16(gale_dtype dtype, const void *src, uint64_t n,
                                void *dst_bf16, void *stream);

#ifdef __cplusplus
}
#endif
#endif

/* The CUDA backend (cuda_backend.c): bf16 activations and KV cache on one GPU, cuBLAS
 * GEMMs, the kernels of kernels/. Only in builds with GALE_HAVE_CUDA. */
#ifndef GALE_BACKEND_CUDA_BACKEND_H
#define GALE_BACKEND_CUDA_BACKEND_H

#include "backend/backend.h"

extern const backend_ops cuda_backend_ops;

/* Makes b a CUDA backend on the current device (stream, cuBLAS handle); fails by name
 * when there is no usable GPU. cuda_backend_close undoes it once every buffer of b is
 * released. */
gale_status cuda_backend_open(backend *b);
void cuda_backend_close(backend *b);

#endif

/* .npy files (NumPy format 1.0) of float32 C-order arrays: what `gale logits` writes and
 * the parity tests read (fixtures written by numpy.save). */
#ifndef GALE_CORE_NPY_H
#define GALE_CORE_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "gale.h"

gale_status npy_write_f32(const char *path, const float *data, const int64_t *shape, int n_dims);
/* Reads '<f4' or '<f2' (converted) C-order arrays; *data is malloc'd. */
gale_status npy_read_f32(const char *path, float **data, int64_t *shape, int *n_dims, int max_dims);

#endif

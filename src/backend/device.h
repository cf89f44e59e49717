/* Which accelerators this process can use. */
#ifndef GALE_BACKEND_DEVICE_H
#define GALE_BACKEND_DEVICE_H

#include <stdbool.h>

/* Number of usable CUDA devices: 0 in a build without CUDA, without a driver, or
 * without a GPU (as on CI, where GPU suites skip themselves). */
int device_cuda_count(void);

#endif

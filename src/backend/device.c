#include "backend/device.h"

#ifdef GALE_HAVE_CUDA
#include <cuda_runtime.h>

int device_cuda_count(void) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky "no device" error for later callers */
        return 0;
    }
    return count;
}
#else
int device_cuda_count(void) { return 0; }
#endif

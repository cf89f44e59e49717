/* placeholder: written with its issue */
#include "common.cuh"
#include "kernels.h"

/* C-callable launchers of kernels/moe.cu (included by kernels.h). */
#ifndef GALE_MOE_KERNELS_H
#define GALE_MOE_KERNELS_H
#endif

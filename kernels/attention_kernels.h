/* C-callable launchers of kernels/flash_attention.cu (included by kernels.h). */
#ifndef GALE_ATTENTION_KERNELS_H
#define GALE_ATTENTION_KERNELS_H
#endif

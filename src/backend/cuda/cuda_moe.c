/* placeholder until the MoE issue's GPU dispatch: the generic routine over the op table */
#include <stdlib.h>

#include "backend/cuda/cuda_internal.h"

struct cuda_moe_state {
    moe_scratch generic;
};

gale_status cuda_moe(backend *b, const void *x, int n, const moe_weights *w, void *out) {
    cuda_state *st = cuda_backend_state(b);
    if (!st->moe && !(st->moe = calloc(1, sizeof *st->moe))) return gale_error(GALE_ERR_OOM, "CUDA MoE: out of memory");
    return backend_moe(b, x, n, w, &st->moe->generic, out);
}

void cuda_moe_free(backend *b) {
    cuda_state *st = cuda_backend_state(b);
    if (!st->moe) return;
    backend_moe_free(b, &st->moe->generic);
    free(st->moe);
    st->moe = NULL;
}

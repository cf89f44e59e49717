/* Binding: every tensor the config implies, found by Hugging Face name, with dtype and
 * shape checked. The structs point into the tensor table (no copies). */
#ifndef GALE_MODEL_WEIGHTS_H
#define GALE_MODEL_WEIGHTS_H

#include "core/tensor.h"
#include "gale.h"
#include "model/tensor_table.h"

typedef struct layer_weights {
    const gale_tensor *attn_norm;      /* [H] input_layernorm */
    const gale_tensor *wq;             /* [n_heads*head_dim, H] */
    const gale_tensor *wk;             /* [n_kv_heads*head_dim, H] */
    const gale_tensor *wv;             /* [n_kv_heads*head_dim, H] */
    const gale_tensor *wo;             /* [H, n_heads*head_dim] */
    const gale_tensor *q_norm;         /* [head_dim] Gemma 3, else NULL */
    const gale_tensor *k_norm;         /* [head_dim] Gemma 3, else NULL */
    const gale_tensor *post_attn_norm; /* [H] Gemma 2/3: on the attention output, else NULL */
    const gale_tensor *ffn_norm;       /* [H] before the MLP (Llama: post_attention_layernorm) */
    const gale_tensor *post_ffn_norm;  /* [H] Gemma 2/3: on the MLP output, else NULL */
    const gale_tensor *w_gate;         /* [I, H] dense MLP, else NULL */
    const gale_tensor *w_up;           /* [I, H] */
    const gale_tensor *w_down;         /* [H, I] */
    const gale_tensor *router;         /* [E, H] MoE, else NULL */
    gale_tensor *expert_gate;          /* [E] views, each [I, H] (w1) */
    gale_tensor *expert_up;            /* [E] views, each [I, H] (w3) */
    gale_tensor *expert_down;          /* [E] views, each [H, I] (w2) */
} layer_weights;

typedef struct model_weights {
    const gale_tensor *embed;      /* [V, H] */
    const gale_tensor *final_norm; /* [H] */
    const gale_tensor *lm_head;    /* [V, H]; == embed when tied */
    layer_weights *layers;         /* [n_layers] */
    gale_tensor *expert_views;     /* storage of every layer's expert views */
    gale_tensor **synthetic;       /* dummy weights: each tensor (and a norm's data) in one block */
    size_t n_synthetic, cap_synthetic;
} model_weights;

/* Binds tensors of table for config. Missing, misshapen or unusable tensors give an
 * error naming the tensor; unused ones a warning. */
gale_status weights_bind(const gale_config *config, tensor_table *table, model_weights *out);
/* For benchmarks of shapes whose weights are not at hand: binds every tensor the config
 * implies to seeded pseudo-random bf16 values — uniform with variance 1/fan-in for
 * matrices (activations stay of order one through the layers), 1 for norm weights
 * (Gemma's 0 under its 1 + w) — ignoring table, which may be empty. Matrices have no
 * data: the backend fills them where it places them (core/tensor.h: tensor_is_synthetic). */
gale_status weights_bind_dummy(const gale_config *config, uint64_t seed, tensor_table *table, model_weights *out);
void weights_free(model_weights *weights);

#endif

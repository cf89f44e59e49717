/* bench_generate — CPU prefill and decode speed of the engine.
 *
 *   bench_generate MODEL [THREADS...]     (default threads: 1 2)
 *
 * Prefill: one forward over a 128-token prompt (fixed ids), tokens/s. Decode: 64 single
 * token steps after it, tokens/s. Median of 3 runs. The peer on this machine is
 * llama.cpp's CPU path on the same GGUF: bench/peer_llama_cpp.py. GALE_PREPARE=1 in the
 * environment measures the fp32-copy weights (gale_engine_params.prepare_weights). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "gale.h"

enum { PROMPT = 128, DECODE = 64, RUNS = 3 };

static int bench_threads(const gale_model *model, int threads) {
    const gale_config *c = gale_model_config(model);
    gale_engine_params ep = gale_engine_params_default();
    ep.n_threads = threads;
    ep.n_ctx = PROMPT + DECODE + 1;
    if (getenv("GALE_PREPARE")) ep.prepare_weights = atoi(getenv("GALE_PREPARE")) != 0;
    gale_session *s;
    if (gale_session_new(model, &ep, &s) != GALE_OK) {
        fprintf(stderr, "bench_generate: %s\n", gale_last_error());
        return 1;
    }
    int32_t prompt[PROMPT];
    for (int i = 0; i < PROMPT; i++) prompt[i] = (int32_t)((1000 + 7919 * i) % c->vocab);
    float *logits = malloc((size_t)c->vocab * sizeof *logits);
    double prefill[RUNS], decode[RUNS];
    for (int r = 0; r < RUNS; r++) {
        gale_session_reset(s);
        double t0 = bench_now();
        gale_session_forward(s, prompt, PROMPT, false, logits);
        double t1 = bench_now();
        for (int i = 0; i < DECODE; i++) {
            int32_t id = (int32_t)((31 * i + 5) % c->vocab);
            gale_session_forward(s, &id, 1, false, logits);
        }
        double t2 = bench_now();
        prefill[r] = PROMPT / (t1 - t0);
        decode[r] = DECODE / (t2 - t1);
    }
    qsort(prefill, RUNS, sizeof prefill[0], bench_compare_doubles);
    qsort(decode, RUNS, sizeof decode[0], bench_compare_doubles);
    printf("%-8d %14.1f %14.1f\n", threads, prefill[RUNS / 2], decode[RUNS / 2]);
    free(logits);
    gale_session_free(s);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_generate MODEL [THREADS...]\n");
        return 2;
    }
    gale_load_params lp = gale_load_params_default();
    lp.quiet = true;
    gale_model *model;
    if (gale_model_load(argv[1], &lp, &model) != GALE_OK) {
        fprintf(stderr, "bench_generate: %s\n", gale_last_error());
        return 1;
    }
    printf("%s: prefill %d tokens, decode %d tokens, median of %d\n", argv[1], PROMPT, DECODE, RUNS);
    printf("%-8s %14s %14s\n", "threads", "prefill tok/s", "decode tok/s");
    int rc = 0;
    if (argc == 2) {
        rc |= bench_threads(model, 1);
        rc |= bench_threads(model, 2);
    }
    for (int i = 2; i < argc; i++) rc |= bench_threads(model, atoi(argv[i]));
    gale_model_free(model);
    return rc;
}

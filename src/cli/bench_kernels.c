/* gale bench kernels FAMILY: the per-kernel GPU benchmarks of bench/ (kernel_bench.h),
 * reachable from the command line so a user compares variants as with vLLM's kernel
 * benchmarks. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "kernel_bench.h"

typedef struct kernel_family {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *what;
} kernel_family;

static const kernel_family families[] = {
    {"dense", kernel_bench_dense, "RMSNorm, RoPE + KV store, gated activation, embedding, GEMM vs GEMV"},
    {"attention", kernel_bench_attention, "flash prefill and split-KV decode on the paged cache"},
    {"moe", kernel_bench_moe, "Mixtral gating, dispatch, grouped expert GEMMs and combine"},
};

static void print_families(FILE *out) {
    fprintf(out, "usage: gale bench kernels FAMILY [--variant NAME] [options]  (FAMILY --help for each)\n\nfamilies:\n");
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        fprintf(out, "  %-10s %s\n", families[i].name, families[i].what);
}

int cli_bench_kernels(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        print_families(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (strcmp(argv[1], families[i].name) == 0) return families[i].run(argc - 1, argv + 1);
    fprintf(stderr, "gale bench kernels: unknown family '%s'\n", argv[1]);
    print_families(stderr);
    return 2;
}

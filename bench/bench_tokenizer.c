/* bench_tokenizer — encode speed on 1 MB of text, against the Hugging Face tokenizers
 * library timed on the same text on this machine (tests/fixtures/tokenizer/speed.json,
 * made by tests/tools/make_tokenizer_fixtures.py).
 *
 *   bench_tokenizer FIXTURES_DIR NAME=MODEL [NAME=MODEL ...]
 *
 * NAME is the key in speed.json (smollm2, gemma3); MODEL a tokenizer directory or GGUF.
 * speed.json's numbers come from another session: for a ratio, run the peer
 * bench/peer_tokenizer_speed.py right before or after this, on the same machine.
 * The text is built as the fixture script builds it: the corpus joined with newlines,
 * repeated until 1,000,000 bytes, cut there at a character boundary. The token count
 * must equal the one Hugging Face produced, or the timing compares different work. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/mapped_file.h"
#include "bench_util.h"
#include "gale.h"

enum { TEXT_BYTES = 1000000, REPEATS = 5 };

static cJSON *load(const char *dir, const char *name) {
    char *path = path_join(dir, name), *text;
    size_t len;
    cJSON *json = NULL;
    if (read_text_file(path, &text, &len) == GALE_OK) {
        json = cJSON_ParseWithLength(text, len);
        free(text);
    }
    if (!json) fprintf(stderr, "bench_tokenizer: cannot read %s\n", path);
    free(path);
    return json;
}

static char *build_text(const cJSON *corpus, size_t *len) {
    size_t joined_len = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, corpus) joined_len += strlen(s->valuestring) + 1;
    char *text = malloc(TEXT_BYTES + joined_len + 1);
    size_t n = 0;
    while (n < TEXT_BYTES) {
        if (n) text[n++] = '\n';
        bool first = true;
        cJSON_ArrayForEach(s, corpus) {
            if (!first) text[n++] = '\n';
            first = false;
            size_t k = strlen(s->valuestring);
            memcpy(text + n, s->valuestring, k);
            n += k;
        }
    }
    n = TEXT_BYTES;
    while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80) n--; /* drop a cut character */
    text[n] = '\0';
    *len = n;
    return text;
}

static void bench_one(const char *name, const char *model, const char *text, size_t len, const cJSON *speed) {
    gale_tokenizer *t;
    if (gale_tokenizer_load(model, &t) != GALE_OK) {
        printf("%-10s cannot load %s: %s\n", name, model, gale_last_error());
        return;
    }
    gale_tokens tokens = {0};
    double times[REPEATS];
    for (int r = 0; r < REPEATS; r++) {
        double start = bench_now();
        gale_tokenizer_encode(t, text, len, false, &tokens);
        times[r] = bench_now() - start;
    }
    qsort(times, REPEATS, sizeof times[0], bench_compare_doubles);
    const cJSON *hf = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(speed, "tokenizers"), name);
    const cJSON *hf_tokens = cJSON_GetObjectItemCaseSensitive(hf, "n_tokens");
    const cJSON *hf_mbps = cJSON_GetObjectItemCaseSensitive(hf, "tokenizers_warm_median_MBps");
    double mbps = (double)len / 1e6 / times[REPEATS / 2];
    printf("%-10s %9zu tokens %s %8.2f MB/s   HF tokenizers %6.2f MB/s   gale/HF %6.1fx\n", name, tokens.count,
           cJSON_IsNumber(hf_tokens) && (size_t)hf_tokens->valuedouble == tokens.count ? "(= HF)" : "(!= HF)", mbps,
           cJSON_IsNumber(hf_mbps) ? hf_mbps->valuedouble : 0.0,
           cJSON_IsNumber(hf_mbps) ? mbps / hf_mbps->valuedouble : 0.0);
    gale_tokens_free(&tokens);
    gale_tokenizer_free(t);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_tokenizer FIXTURES_DIR NAME=MODEL [NAME=MODEL ...]\n");
        return 2;
    }
    cJSON *corpus = load(argv[1], "tokenizer/corpus.json"), *speed = load(argv[1], "tokenizer/speed.json");
    if (!corpus || !speed) return 1;
    size_t len;
    char *text = build_text(corpus, &len);
    printf("encode %zu bytes, one thread, median of %d (HF: same text, RAYON_NUM_THREADS=1)\n", len, REPEATS);
    for (int i = 2; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) continue;
        *eq = '\0';
        bench_one(argv[i], eq + 1, text, len, speed);
    }
    free(text);
    cJSON_Delete(corpus);
    cJSON_Delete(speed);
    return 0;
}

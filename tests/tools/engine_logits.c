/* engine_logits.c — runs a fixed token sequence through switchyard's forward pass and
 * prints what tests/blackbox/arch.t compares with llama.cpp: the logits at the last
 * prompt position (one batched prefill) and N_GEN greedy tokens decoded one at a time.
 *
 *   engine_logits MODEL.gguf N_CTX N_GEN ID [ID ...]
 *
 * Prints one JSON line: {"n_vocab":V,"logits":[...],"greedy":[...]}. The session holds
 * N_CTX positions (LongRoPE picks its factors by it, as llama.cpp does by its context
 * size). Exit status 0, 2 on usage errors, 1 when the model does not load or the
 * tokens do not fit.
 */
#include <stdio.h>
#include <stdlib.h>

#include "base/mem.h"
#include "engine/forward.h"
#include "engine/model.h"

#define MAX_IDS 4096

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: engine_logits MODEL.gguf N_CTX N_GEN ID [ID ...]\n");
        return 2;
    }
    int n_ctx = atoi(argv[2]), n_gen = atoi(argv[3]), n = argc - 4;
    if (n_ctx <= 0 || n_gen < 0 || n + n_gen > n_ctx || n > MAX_IDS) {
        fprintf(stderr, "engine_logits: bad N_CTX / N_GEN / token count\n");
        return 2;
    }
    model_t *m;
    char err[512];
    if (model_load(argv[1], NULL, &m, err, sizeof err)) {
        fprintf(stderr, "engine_logits: %s\n", err);
        return 1;
    }
    int ids[MAX_IDS];
    for (int i = 0; i < n; i++)
        ids[i] = atoi(argv[4 + i]);
    forward_state_t *s = forward_state_new(m, n_ctx, n, NULL);
    const float *lg = forward_run(s, ids, n, 0, false);
    int rc = lg ? 0 : 1;
    const int V = m->cfg.n_vocab;
    if (lg) {
        printf("{\"n_vocab\":%d,\"logits\":[", V);
        for (int i = 0; i < V; i++)
            printf("%s%.9g", i ? "," : "", lg[i]);
        printf("],\"greedy\":[");
        for (int t = 0; t < n_gen && lg; t++) {
            int best = 0;
            for (int i = 1; i < V; i++)
                if (lg[i] > lg[best]) best = i;
            printf("%s%d", t ? "," : "", best);
            lg = t + 1 < n_gen ? forward_run(s, &best, 1, n + t, false) : lg;
        }
        printf("]}\n");
        if (!lg) rc = 1;
    } else {
        fprintf(stderr, "engine_logits: token ids out of range\n");
    }
    forward_state_free(s);
    model_free(m);
    return rc;
}

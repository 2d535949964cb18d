/* prune.h — structured pruning: whole FFN channels and attention heads removed by how
 * much they contribute on calibration text, optionally followed by a short
 * distillation from the unpruned model to recover.
 *
 * Importance, measured with the model's own activations over the calibration tokens:
 *   FFN channel j:  mean_t |silu(gate_j) * up_j| * ||W_down[:, j]||
 *   head h:         mean_t ||W_o[:, h] o_h(t)||  (its contribution to the residual)
 * Each layer keeps its most important channels and heads; the counts are the same in
 * every layer (the file format has one shape). Under grouped-query attention heads are
 * removed evenly from each key/value group; when the fraction is too small to remove
 * one head per group, whole groups (their key/value head with them) go instead.
 */
#ifndef SY_ENGINE_PRUNE_H
#define SY_ENGINE_PRUNE_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/distill.h"
#include "engine/engine.h"

typedef struct prune_opts {
    float ffn;          /* share of FFN channels removed, 0..0.95 */
    float heads;        /* share of attention heads removed, 0..0.95 */
    const char *calib;  /* calibration text file; NULL: text the model samples itself */
    int calib_tokens;   /* calibration tokens used at most */
    int recover_steps;  /* distillation steps from the unpruned model; 0: none */
    distill_opts_t rec; /* options of that distillation (steps taken from recover_steps) */
    bool quiet;
} prune_opts_t;

/* ffn 0.25, heads 0.25, 4096 calibration tokens, no recovery, distill defaults. */
void prune_opts_default(prune_opts_t *o);

typedef struct prune_report {
    size_t params_in, params_out;
    int n_heads, n_kv_heads, hidden_dim; /* after pruning */
    int calib_tokens;                    /* tokens the importances were measured on */
    distill_report_t rec;                /* recovery, when run */
} prune_report_t;

/* Prunes in (borrowed) under o and writes the result to path as an F32 GGUF with the
 * same tokenizer. rep may be NULL. Returns 0, or SY_EINVAL / SY_EUNSUPPORTED / -errno
 * with a message in err. */
int prune_model(const engine_t *in, const prune_opts_t *o, const char *path, prune_report_t *rep,
                char *err, size_t errlen);

#endif

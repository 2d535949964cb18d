/* distill.h — knowledge distillation: a small student learns a teacher's next-token
 * distributions, so it can draft for the teacher (same tokenizer) or stand in for it.
 *
 * Each step takes a batch of sequences — sampled by the teacher from BOS, or windows
 * of a text corpus, or a mix — runs the teacher over them with logits at every
 * position, keeps its top-k tokens (renormalised), and moves the student towards them:
 * loss = KL(teacher_topk || student), AdamW with gradient clipping, learning rate on
 * a cosine schedule after a linear warmup. Everything is seeded: the same options
 * give the same student bit for bit.
 */
#ifndef SY_ENGINE_DISTILL_H
#define SY_ENGINE_DISTILL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "engine/train.h"

typedef struct distill_opts {
    /* student shape; 0 picks the default from the teacher (distill_student_config) */
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads;
    int steps;        /* optimiser steps */
    int batch;        /* sequences per step */
    int seq_len;      /* tokens per sequence after BOS */
    int top_k;        /* teacher tokens kept per position, 1..64 */
    float lr, lr_min; /* peak and final learning rate */
    int warmup;       /* steps of linear warmup */
    float weight_decay;
    float clip;         /* global gradient norm */
    const char *corpus; /* text file, or NULL: teacher-generated sequences only */
    float gen_frac;     /* with a corpus, the share of sequences the teacher generates */
    float temperature;  /* teacher's sampling temperature for generated sequences */
    uint64_t seed;
    bool quiet; /* no progress bar on stderr */
} distill_opts_t;

/* Defaults: student of half the teacher's width, 4/5 of its layers (at least 1),
 * heads of the teacher's head width, FFN 8/3 of the width rounded up to 32; 1500 steps
 * of 8 sequences of 128 tokens, top-20, lr 3e-3 to 3e-4 after 50 warmup steps, weight
 * decay 0.01, clip 1, teacher temperature 1, seed 1. */
void distill_opts_default(distill_opts_t *o);

/* The student's shape for teacher shape t under o: the teacher's vocabulary, a
 * context of seq_len (the positions it is trained on; at most the teacher's). Returns 0 or
 * SY_EINVAL (with a message) for a shape that does not fit: heads not dividing the width, odd head
 * width, kv heads not dividing heads. */
int distill_student_config(const model_config_t *t, const distill_opts_t *o, model_config_t *out,
                           char *err, size_t errlen);

typedef struct distill_report {
    double kl_first, kl_last; /* mean KL per token over the first and last 10 steps */
    long tokens;              /* student tokens trained on */
    double seconds;
} distill_report_t;

/* Trains student (borrowed, updated in place; same vocabulary as teacher) on teacher.
 * rep may be NULL. Returns 0, or SY_EINVAL / -errno with a message in err (bad
 * options, unreadable or too short corpus). */
int distill_train(const engine_t *teacher, train_model_t *student, const distill_opts_t *o,
                  distill_report_t *rep, char *err, size_t errlen);

/* distill_student_config, a fresh student from o->seed, distill_train, then the
 * student written to path as an F32 GGUF with the teacher's tokenizer. */
int distill_run(const engine_t *teacher, const distill_opts_t *o, const char *path,
                distill_report_t *rep, char *err, size_t errlen);

#endif

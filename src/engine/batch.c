/* batch.c — continuous batching: one scheduler thread runs every active sequence's
 * next token in one forward pass.
 *
 * A caller (a local tier slot) hands a session and a prompt to engine_sched_generate
 * and waits. The scheduler admits waiting sequences up to max_seqs, then loops:
 *
 *   rows  = one decode row per sequence that has sampled a token (its token at its
 *           position), then prefill chunks of admitted prompts in admission order,
 *           as many prompt tokens as the pass has room for (max_batch rows in all)
 *   pass  = forward_batch over all rows (weights read once), each row's keys and
 *           values into its own sequence's cache
 *   after = per sequence, in row order: decode rows append their token to the
 *           cache; a prompt whose last token went through starts generating; every
 *           sequence with logits picks its token (grammar, sampling: engine_gen_pick,
 *           the sequences spread over the pool), then in admission order reports it
 *           (engine_gen_emit: stop strings, logprobs, its callback, on this thread);
 *           finished ones are handed back.
 *
 * A new prompt reuses what its session already caches (engine_session_keep), as
 * engine_generate does. Everything is allocated when the scheduler is made; a pass
 * allocates nothing. A sequence that stops (EOS, stop string, budget, its callback)
 * leaves the next pass; the others do not notice.
 */
#include <pthread.h>
#include <string.h>

#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "engine/engine.h"
#include "engine/session.h"

#define SCHED_DEFAULT_SEQS  8
#define SCHED_DEFAULT_BATCH 64

typedef enum { SEQ_PREFILL, SEQ_DECODE } seq_phase_t;

/* One call of engine_sched_generate (on its caller's stack). */
typedef struct sched_seq {
    struct sched_seq *next; /* waiting queue */
    engine_session_t *s;
    const int *prompt;
    int n_prompt;
    const engine_gen_params_t *p;
    engine_token_cb cb;
    void *ud;
    engine_gen_result_t *res;
    double t0;
    seq_phase_t phase;
    int fed;  /* prompt tokens in the cache */
    int tok;  /* decode: the token to run next */
    int rows; /* rows of the current pass */
    int lrow; /* its logits row in the pass, -1: none */
    int pick; /* the token picked from this pass's logits (-1: none) */
    sample_info_t info;
    int rc;
    bool done; /* guarded by the scheduler's mutex */
} sched_seq_t;

struct engine_sched {
    const engine_t *e;
    kern_pool_t *pool;
    forward_state_t *ws; /* activations for max_batch rows (no cache of its own to speak of) */
    int max_seqs, max_batch;
    forward_row_t *rows;  /* (max_batch) */
    sched_seq_t **active; /* (max_seqs) in admission order */
    sched_seq_t **picks;  /* (max_seqs) sequences sampling after the current pass */
    int n_picks;
    int n_active;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    sched_seq_t *head, *tail; /* waiting */
    bool stopping;
    engine_sched_stats_t stats; /* guarded by mu */
};

/* Takes a finished sequence out of the active set and wakes its caller. */
static void seq_finish(engine_sched_t *sc, int idx, int rc)
{
    sched_seq_t *q = sc->active[idx];
    if (!rc && q->phase == SEQ_DECODE) engine_gen_end(q->s);
    if (rc && q->res->n_generated == 0) q->s->n_cached = q->fed; /* the cache holds that much */
    memmove(&sc->active[idx], &sc->active[idx + 1],
            (size_t)(sc->n_active - idx - 1) * sizeof *sc->active);
    sc->n_active--;
    pthread_mutex_lock(&sc->mu);
    q->rc = rc;
    q->done = true;
    pthread_cond_broadcast(&sc->done);
    pthread_mutex_unlock(&sc->mu);
}

/* Admits waiting sequences while there is room; false when stopping with nothing to do. */
static bool admit(engine_sched_t *sc)
{
    pthread_mutex_lock(&sc->mu);
    while (!sc->stopping && !sc->head && sc->n_active == 0)
        pthread_cond_wait(&sc->work, &sc->mu);
    if (sc->stopping && sc->n_active == 0 && !sc->head) {
        pthread_mutex_unlock(&sc->mu);
        return false;
    }
    int first = sc->n_active;
    while (sc->head && sc->n_active < sc->max_seqs) {
        sched_seq_t *q = sc->head;
        sc->head = q->next;
        if (!sc->head) sc->tail = NULL;
        sc->active[sc->n_active++] = q;
    }
    pthread_mutex_unlock(&sc->mu);
    for (int i = first; i < sc->n_active; i++) {
        sched_seq_t *q = sc->active[i];
        q->t0 = engine_now_ms();
        q->fed = engine_session_keep(q->s, q->prompt, q->n_prompt);
        q->res->n_reused = q->fed;
        q->s->n_cached = q->fed;
        q->phase = SEQ_PREFILL;
    }
    return true;
}

/* Pool task k: sequence k of the pass's picks samples from its logits row (its own
 * session only). */
static void pick_task(void *arg, int k, int n)
{
    (void)n;
    engine_sched_t *sc = arg;
    sched_seq_t *q = sc->picks[k];
    const size_t V = (size_t)sc->e->model->cfg.n_vocab;
    q->pick = engine_gen_pick(q->s, sc->ws->logits + (size_t)q->lrow * V, &q->info);
}

/* One pass: rows for every active sequence, the forward pass, a step for each. */
static void pass(engine_sched_t *sc)
{
    int n = 0, n_logits = 0;
    for (int i = 0; i < sc->n_active; i++) { /* decode rows first: one each */
        sched_seq_t *q = sc->active[i];
        q->rows = 0;
        q->lrow = -1;
        if (q->phase != SEQ_DECODE) continue;
        sc->rows[n++] = (forward_row_t){
            .seq = q->s->fs, .token = q->tok, .pos = q->s->n_cached, .logits = true};
        q->rows = 1;
        q->lrow = n_logits++;
    }
    int n_decode = n;
    for (int i = 0; i < sc->n_active && n < sc->max_batch; i++) { /* then prompt chunks */
        sched_seq_t *q = sc->active[i];
        if (q->phase != SEQ_PREFILL) continue;
        int k = q->n_prompt - q->fed;
        if (k > sc->max_batch - n) k = sc->max_batch - n;
        for (int j = 0; j < k; j++)
            sc->rows[n + j] = (forward_row_t){.seq = q->s->fs,
                                              .token = q->prompt[q->fed + j],
                                              .pos = q->fed + j,
                                              .logits = q->fed + j == q->n_prompt - 1};
        n += k;
        q->rows = k;
        if (q->fed + k == q->n_prompt) q->lrow = n_logits++;
    }
    if (n == 0) return;
    int rc = forward_batch(sc->ws, sc->rows, n);
    pthread_mutex_lock(&sc->mu);
    sc->stats.passes++;
    sc->stats.rows += n;
    sc->stats.decode_rows += n_decode;
    pthread_mutex_unlock(&sc->mu);
    /* The pass's rows into each sequence's cache; the sequences with logits pick their
     * next token (grammar, sampling: a full pass over the vocabulary each) across the
     * pool; then, in admission order on this thread, each reports its token. */
    sc->n_picks = 0;
    for (int i = 0; i < sc->n_active && !rc; i++) {
        sched_seq_t *q = sc->active[i];
        engine_session_t *s = q->s;
        q->pick = -1;
        if (!q->rows) continue;
        if (q->phase == SEQ_DECODE) {
            s->cached[s->n_cached++] = q->tok;
        } else {
            memcpy(s->cached + q->fed, q->prompt + q->fed, (size_t)q->rows * sizeof *q->prompt);
            q->fed += q->rows;
            s->n_cached = q->fed;
            if (q->fed < q->n_prompt) continue;
            q->phase = SEQ_DECODE;
            engine_gen_start(s, q->p, q->cb, q->ud, q->res, q->t0);
        }
        sc->picks[sc->n_picks++] = q;
    }
    if (sc->pool && sc->n_picks > 1)
        kern_pool_run(sc->pool, pick_task, sc, sc->n_picks);
    else
        for (int k = 0; k < sc->n_picks; k++)
            pick_task(sc, k, sc->n_picks);
    for (int i = 0; i < sc->n_active;) {
        sched_seq_t *q = sc->active[i];
        if (!q->rows) {
            i++;
            continue;
        }
        if (rc) { /* validated on entry: should not happen */
            seq_finish(sc, i, SY_EINVAL);
            continue;
        }
        bool more = true;
        if (q->lrow >= 0) more = engine_gen_emit(q->s, q->pick, &q->info, &q->tok);
        if (!more) {
            seq_finish(sc, i, 0);
            continue;
        }
        i++;
    }
}

static void *sched_main(void *arg)
{
    engine_sched_t *sc = arg;
    while (admit(sc))
        pass(sc);
    log_thread_cleanup();
    return NULL;
}

engine_sched_t *engine_sched_new(const engine_t *e, const engine_sched_opts_t *opts)
{
    engine_sched_opts_t o = opts ? *opts : (engine_sched_opts_t){0};
    if (o.max_seqs <= 0) o.max_seqs = SCHED_DEFAULT_SEQS;
    if (o.max_batch <= 0) o.max_batch = SCHED_DEFAULT_BATCH;
    if (o.max_batch < o.max_seqs + 1) o.max_batch = o.max_seqs + 1;
    if (o.n_threads <= 0) o.n_threads = 1;
    if (o.max_seqs > 1024 || o.max_batch > 4096 || o.n_threads > 256) return NULL;
    engine_sched_t *sc = mem_calloc(1, sizeof *sc);
    sc->e = e;
    sc->max_seqs = o.max_seqs;
    sc->max_batch = o.max_batch;
    if (o.n_threads > 1) sc->pool = kern_pool_new(o.n_threads);
    sc->ws = forward_state_new(e->model, 1, o.max_batch, sc->pool);
    sc->rows = mem_alloc((size_t)o.max_batch * sizeof *sc->rows);
    sc->active = mem_alloc((size_t)o.max_seqs * sizeof *sc->active);
    sc->picks = mem_alloc((size_t)o.max_seqs * sizeof *sc->picks);
    pthread_mutex_init(&sc->mu, NULL);
    pthread_cond_init(&sc->work, NULL);
    pthread_cond_init(&sc->done, NULL);
    if (pthread_create(&sc->thread, NULL, sched_main, sc)) {
        pthread_mutex_destroy(&sc->mu);
        pthread_cond_destroy(&sc->work);
        pthread_cond_destroy(&sc->done);
        mem_free(sc->rows);
        mem_free(sc->active);
        mem_free(sc->picks);
        forward_state_free(sc->ws);
        if (sc->pool) kern_pool_free(sc->pool);
        mem_free(sc);
        return NULL;
    }
    return sc;
}

void engine_sched_free(engine_sched_t *sc)
{
    if (!sc) return;
    pthread_mutex_lock(&sc->mu);
    sc->stopping = true;
    pthread_cond_broadcast(&sc->work);
    pthread_mutex_unlock(&sc->mu);
    pthread_join(sc->thread, NULL);
    pthread_mutex_destroy(&sc->mu);
    pthread_cond_destroy(&sc->work);
    pthread_cond_destroy(&sc->done);
    mem_free(sc->rows);
    mem_free(sc->active);
    mem_free(sc->picks);
    forward_state_free(sc->ws);
    if (sc->pool) kern_pool_free(sc->pool);
    mem_free(sc);
}

int engine_sched_generate(engine_sched_t *sc, engine_session_t *s, const int *prompt, int n_prompt,
                          const engine_gen_params_t *p, engine_token_cb cb, void *ud,
                          engine_gen_result_t *res)
{
    int rc = engine_gen_check(s, prompt, n_prompt, res);
    if (rc) return rc;
    if (s->e->model != sc->e->model) return SY_EINVAL;
    sched_seq_t q = {
        .s = s, .prompt = prompt, .n_prompt = n_prompt, .p = p, .cb = cb, .ud = ud, .res = res};
    pthread_mutex_lock(&sc->mu);
    if (sc->stopping) {
        pthread_mutex_unlock(&sc->mu);
        return SY_EUNAVAILABLE;
    }
    if (sc->tail)
        sc->tail->next = &q;
    else
        sc->head = &q;
    sc->tail = &q;
    pthread_cond_signal(&sc->work);
    while (!q.done)
        pthread_cond_wait(&sc->done, &sc->mu);
    pthread_mutex_unlock(&sc->mu);
    return q.rc;
}

void engine_sched_stats(engine_sched_t *sc, engine_sched_stats_t *out)
{
    pthread_mutex_lock(&sc->mu);
    *out = sc->stats;
    pthread_mutex_unlock(&sc->mu);
}

/* engine.c — model loading, sessions, generation and scoring (chat rendering: chat.c). */
#include "engine/engine.h"

#include <string.h>
#include <time.h>

#include "base/err.h"
#include "base/mem.h"
#include "engine/grammar.h"
#include "engine/session.h"
#include "engine/tokenizer.h"

double engine_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ================================================================ model ==== */

int engine_load(const char *path, const char *tokenizer_path, engine_t **out, char *err,
                size_t errlen)
{
    *out = NULL;
    model_t *m;
    int rc = model_load(path, tokenizer_path, &m, err, errlen);
    if (rc) return rc;
    engine_t *e = mem_calloc(1, sizeof *e);
    e->model = m;
    *out = e;
    return 0;
}

void engine_free(engine_t *e)
{
    if (!e) return;
    model_free(e->model);
    mem_free(e);
}

int engine_tokenize(const engine_t *e, const char *text, size_t len, bool add_bos,
                    bool parse_special, int *ids, int max)
{
    return tokenizer_encode(e->model->tok, text, len, add_bos, parse_special, ids, max);
}

int engine_token_text(const engine_t *e, int prev, int id, char *out, size_t cap)
{
    return tokenizer_decode(e->model->tok, prev, id, out, cap);
}

/* ============================================================== session ==== */

engine_session_t *engine_session_new(const engine_t *e, const engine_session_opts_t *opts)
{
    engine_session_opts_t o = opts ? *opts : (engine_session_opts_t){0};
    const model_t *m = e->model;
    /* Models trained on long contexts would need gigabytes of cache per session: the
     * default stays modest, a caller who needs more asks for it. */
    if (o.n_ctx <= 0) o.n_ctx = ENGINE_DEFAULT_CTX;
    if (o.n_ctx > m->cfg.n_ctx) o.n_ctx = m->cfg.n_ctx;
    engine_session_t *s = mem_calloc(1, sizeof *s);
    s->e = e;
    if (o.n_threads > 1) s->pool = kern_pool_new(o.n_threads);
    s->fs = forward_state_new(m, o.n_ctx, o.max_batch, s->pool);
    sample_params_t sp;
    sample_params_default(&sp);
    s->sampler = sample_new(m->cfg.n_vocab, &sp);
    s->cached = mem_alloc((size_t)o.n_ctx * sizeof *s->cached);
    buf_init(&s->text, ENGINE_MAX_TEXT);
    return s;
}

void engine_session_free(engine_session_t *s)
{
    if (!s) return;
    forward_state_free(s->fs);
    if (s->pool) kern_pool_free(s->pool);
    sample_free(s->sampler);
    grammar_vocab_free(s->gvocab);
    mem_free(s->masked);
    mem_free(s->cached);
    buf_deinit(&s->text);
    mem_free(s);
}

void engine_session_reset(engine_session_t *s)
{
    s->n_cached = 0;
}

int engine_session_n_ctx(const engine_session_t *s)
{
    return s->fs->n_ctx;
}

int engine_session_keep(const engine_session_t *s, const int *tokens, int n)
{
    int keep = 0;
    while (keep < s->n_cached && keep < n - 1 && s->cached[keep] == tokens[keep])
        keep++;
    return keep;
}

/* Brings the cache to hold exactly tokens[0..n): reuses the common prefix with what
 * is cached (always recomputing at least the last token, whose logits we need), runs
 * the rest as batches. Returns the last token's logits, or NULL on bad ids. *reused
 * gets the number of positions kept. */
static const float *feed(engine_session_t *s, const int *tokens, int n, int *reused)
{
    int keep = engine_session_keep(s, tokens, n);
    *reused = keep;
    const float *lg = forward_run(s->fs, tokens + keep, n - keep, keep, false);
    if (!lg) {
        s->n_cached = keep;
        return NULL;
    }
    memcpy(s->cached + keep, tokens + keep, (size_t)(n - keep) * sizeof *tokens);
    s->n_cached = n;
    return lg;
}

/* Longest suffix of text that is a proper prefix of some stop string: bytes to hold. */
static size_t stop_holdback(const char *text, size_t len, const engine_gen_params_t *p)
{
    size_t hold = 0;
    for (int k = 0; k < ENGINE_MAX_STOPS && p->stop[k]; k++) {
        size_t sl = strlen(p->stop[k]);
        for (size_t h = sl - 1 < len ? sl - 1 : len; h > hold; h--)
            if (!memcmp(text + len - h, p->stop[k], h)) {
                hold = h;
                break;
            }
    }
    return hold;
}

/* First match of any stop string in text, or -1. */
static long stop_find(const char *text, size_t len, const engine_gen_params_t *p)
{
    long best = -1;
    for (int k = 0; k < ENGINE_MAX_STOPS && p->stop[k]; k++) {
        if (!*p->stop[k]) continue;
        const char *hit = memmem(text, len, p->stop[k], strlen(p->stop[k]));
        if (hit && (best < 0 || hit - text < best)) best = hit - text;
    }
    return best;
}

/* Starts constrained decoding under g: the vocabulary's bytes on first use. */
static void grammar_begin(engine_session_t *s, const grammar_t *g)
{
    if (!s->gvocab) {
        s->gvocab = grammar_vocab_new(s->e->model->tok);
        s->masked = mem_alloc((size_t)s->e->model->cfg.n_vocab * sizeof *s->masked);
    }
    grammar_state_init(&s->gstate, g);
}

/* The logits with every token the grammar forbids pushed down, or NULL when none is
 * left. left: tokens that may still be generated, this one included. */
static const float *grammar_logits(engine_session_t *s, const float *logits, int left)
{
    memcpy(s->masked, logits, (size_t)s->e->model->cfg.n_vocab * sizeof *logits);
    return grammar_mask(&s->gstate, s->gvocab, left, s->masked) ? s->masked : NULL;
}

int engine_gen_check(const engine_session_t *s, const int *prompt, int n_prompt,
                     engine_gen_result_t *res)
{
    const model_t *m = s->e->model;
    memset(res, 0, sizeof *res);
    sample_conf_init(&res->conf);
    res->n_prompt = n_prompt;
    if (n_prompt <= 0) return SY_EINVAL;
    if (n_prompt >= s->fs->n_ctx) return SY_ECONTEXT; /* no room for one new token */
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= m->cfg.n_vocab) return SY_EINVAL;
    return 0;
}

void engine_gen_start(engine_session_t *s, const engine_gen_params_t *p, engine_token_cb cb,
                      void *ud, engine_gen_result_t *res, double t0)
{
    engine_gen_t *g = &s->gen;
    g->p = p, g->cb = cb, g->ud = ud, g->res = res;
    g->t1 = engine_now_ms();
    res->prefill_ms = g->t1 - t0;
    sample_reset(s->sampler, &p->sample);
    buf_reset(&s->text);
    g->released = 0;
    g->i = 0;
    res->finish = ENGINE_FINISH_LENGTH;
    g->n_alts = p->n_logprobs < 0 ? 0 : p->n_logprobs;
    g->constrained = p->grammar != NULL;
    if (p->grammar) grammar_begin(s, p->grammar);
}

/* grammar_optional's first step: tokens that do not lead with '{' get their free
 * logits back (s->masked holds the grammar's mask of logits). */
static void grammar_unmask_text(engine_session_t *s, const float *logits)
{
    int n = s->e->model->cfg.n_vocab;
    for (int id = 0; id < n; id++)
        if (grammar_vocab_lead(s->gvocab, id) != '{') s->masked[id] = logits[id];
}

int engine_gen_pick(engine_session_t *s, const float *logits, sample_info_t *info)
{
    engine_gen_t *g = &s->gen;
    const engine_gen_params_t *p = g->p;
    int i = g->i;
    if (i >= p->max_tokens) return -1;
    const float *lg = logits;
    if (g->constrained) {
        int left = s->fs->n_ctx - s->n_cached + 1; /* tokens the context still takes */
        if (left > p->max_tokens - i) left = p->max_tokens - i;
        lg = grammar_logits(s, logits, left);
        if (p->grammar_optional && i == 0) {
            grammar_unmask_text(s, logits);
            lg = s->masked;
        }
        if (!lg) return -1; /* the vocabulary cannot continue the value */
    }
    int tok = sample_token(s->sampler, lg, s->cached, s->n_cached, g->n_alts, info);
    if (g->constrained && p->grammar_optional && i == 0 &&
        grammar_vocab_lead(s->gvocab, tok) != '{')
        g->constrained = false; /* the model chose text */
    return tok;
}

bool engine_gen_emit(engine_session_t *s, int tok, sample_info_t *info, int *next)
{
    engine_gen_t *g = &s->gen;
    const engine_gen_params_t *p = g->p;
    engine_gen_result_t *res = g->res;
    const model_t *m = s->e->model;
    if (tok < 0) return false;
    sample_conf_add(&res->conf, info);
    res->n_generated++;
    g->i++;
    bool eog = tokenizer_is_eog(m->tok, tok);
    if (!eog) {
        char piece[TOKENIZER_MAX_PIECE + 4];
        int prev = s->n_cached ? s->cached[s->n_cached - 1] : -1;
        int k = tokenizer_decode(m->tok, prev, tok, piece, sizeof piece);
        if (g->constrained && grammar_state_feed(&s->gstate, piece, (size_t)k)) return false;
        if (buf_append(&s->text, piece, (size_t)k)) buf_reset(&s->text), g->released = 0;
    }
    /* What may be released now: up to a matched stop string, else all but a tail that
     * could begin one. */
    long hit = stop_find(s->text.data ? s->text.data : "", s->text.len, p);
    size_t upto =
        hit >= 0 ? (size_t)hit
                 : s->text.len - stop_holdback(s->text.data ? s->text.data : "", s->text.len, p);
    if (eog) upto = s->text.len;
    if (upto < g->released) upto = g->released;
    engine_token_t et = {.id = tok,
                         .text = s->text.data ? s->text.data + g->released : "",
                         .len = upto - g->released,
                         .info = info};
    g->released = upto;
    int stop = g->cb ? g->cb(g->ud, &et) : 0;
    if (eog) {
        res->finish = ENGINE_FINISH_EOS;
        return false;
    }
    if (hit >= 0) {
        res->finish = ENGINE_FINISH_STOP;
        return false;
    }
    if (stop) {
        res->finish = ENGINE_FINISH_CALLBACK;
        return false;
    }
    if (s->n_cached >= s->fs->n_ctx || g->i == p->max_tokens) return false; /* context full */
    *next = tok;
    return true;
}

bool engine_gen_step(engine_session_t *s, const float *logits, int *next)
{
    sample_info_t info;
    int tok = engine_gen_pick(s, logits, &info);
    return engine_gen_emit(s, tok, &info, next);
}

void engine_gen_end(engine_session_t *s)
{
    engine_gen_t *g = &s->gen;
    g->res->decode_ms = engine_now_ms() - g->t1;
    g->res->complete = g->constrained && grammar_state_complete(&s->gstate);
    g->res->constrained = g->constrained;
}

int engine_generate(engine_session_t *s, const int *prompt, int n_prompt,
                    const engine_gen_params_t *p, engine_token_cb cb, void *ud,
                    engine_gen_result_t *res)
{
    int rc = engine_gen_check(s, prompt, n_prompt, res);
    if (rc) return rc;
    double t0 = engine_now_ms();
    const float *logits = feed(s, prompt, n_prompt, &res->n_reused);
    if (!logits) return SY_EINVAL;
    engine_gen_start(s, p, cb, ud, res, t0);
    int tok;
    while (engine_gen_step(s, logits, &tok)) {
        logits = forward_run(s->fs, &tok, 1, s->n_cached, false);
        if (!logits) break;
        s->cached[s->n_cached++] = tok;
    }
    engine_gen_end(s);
    return 0;
}

/* log softmax of row at id, and its argmax. */
static float row_logprob(const float *row, int n, int id, int *best)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (row[i] > row[b]) b = i;
    if (best) *best = b;
    return sample_logprob(row, n, id, NULL);
}

int engine_score(engine_session_t *s, const int *prompt, int n_prompt, const int *cont, int n_cont,
                 float *logprobs, int *argmax)
{
    const model_t *m = s->e->model;
    int V = m->cfg.n_vocab;
    if (n_prompt <= 0 || n_cont < 0) return SY_EINVAL;
    if (n_prompt + n_cont > s->fs->n_ctx) return SY_ECONTEXT;
    for (int i = 0; i < n_cont; i++)
        if (cont[i] < 0 || cont[i] >= V) return SY_EINVAL;
    int reused;
    const float *lg = feed(s, prompt, n_prompt, &reused);
    if (!lg) return SY_EINVAL;
    if (n_cont == 0) return 0;
    logprobs[0] = row_logprob(lg, V, cont[0], argmax ? &argmax[0] : NULL);
    /* cont[0..n_cont-1) go through in batches with all logits: row j predicts j+1. */
    int B = s->fs->max_batch;
    for (int done = 0; done < n_cont - 1;) {
        int k = n_cont - 1 - done < B ? n_cont - 1 - done : B;
        if (!forward_run(s->fs, cont + done, k, s->n_cached, true)) return SY_EINVAL;
        memcpy(s->cached + s->n_cached, cont + done, (size_t)k * sizeof *cont);
        s->n_cached += k;
        for (int j = 0; j < k; j++)
            logprobs[done + j + 1] =
                row_logprob(s->fs->logits + (size_t)j * V, V, cont[done + j + 1],
                            argmax ? &argmax[done + j + 1] : NULL);
        done += k;
    }
    return 0;
}

/* ============================================================ stepping ==== */

const float *engine_session_prefill(engine_session_t *s, const int *tokens, int n, int *reused)
{
    int keep = 0;
    if (n <= 0) return NULL;
    const float *lg = feed(s, tokens, n, &keep);
    if (reused) *reused = keep;
    return lg;
}

const float *engine_session_append(engine_session_t *s, const int *tokens, int n, bool all_logits)
{
    const float *lg = forward_run(s->fs, tokens, n, s->n_cached, all_logits);
    if (!lg) return NULL;
    memcpy(s->cached + s->n_cached, tokens, (size_t)n * sizeof *tokens);
    s->n_cached += n;
    return all_logits ? s->fs->logits : lg;
}

void engine_session_rewind(engine_session_t *s, int n)
{
    if (n >= 0 && n < s->n_cached) s->n_cached = n;
}

int engine_session_n_cached(const engine_session_t *s)
{
    return s->n_cached;
}

const int *engine_session_tokens(const engine_session_t *s)
{
    return s->cached;
}

int engine_session_max_batch(const engine_session_t *s)
{
    return s->fs->max_batch;
}

const engine_t *engine_session_engine(const engine_session_t *s)
{
    return s->e;
}

/* ============================================================ perplexity ==== */

int engine_ppl_n_chunks(int n_tok, int ctx, engine_ppl_mode_t mode)
{
    if (ctx < 2 || n_tok <= 0) return 0;
    /* HALF counts the BOS that starts the stream, as llama.cpp does. */
    return mode == ENGINE_PPL_HALF ? (n_tok + 1) / ctx : n_tok / (ctx - 1);
}

/* Either layout is BOS + ctx - 1 text tokens; they differ in where a chunk's text
 * starts (HALF skips the token its BOS replaces) and in how much of it is scored.
 * The unscored part goes in as prompt, so it costs one batched prefill and no logit
 * rows. Returns 0 or an engine_score error; *nll / *n_scored only grow on success. */
int engine_ppl_chunk(engine_session_t *s, const int *toks, int n_tok, int ctx, int chunk,
                     engine_ppl_mode_t mode, double *nll, long *n_scored)
{
    if (chunk < 0 || chunk >= engine_ppl_n_chunks(n_tok, ctx, mode)) return SY_EINVAL;
    int bos = tokenizer_bos(s->e->model->tok);
    if (bos < 0) return SY_EINVAL;
    int per = ctx - 1;
    const int *text = toks + (size_t)chunk * (mode == ENGINE_PPL_HALF ? ctx : per);
    int first = mode == ENGINE_PPL_HALF ? ctx / 2 : 0; /* text tokens given as context */
    int n_cont = per - first;
    int *prompt = mem_alloc((size_t)ctx * sizeof *prompt);
    prompt[0] = bos;
    memcpy(prompt + 1, text, (size_t)first * sizeof *text);
    float *lp = mem_alloc((size_t)(n_cont > 0 ? n_cont : 1) * sizeof *lp);
    int rc = engine_score(s, prompt, first + 1, text + first, n_cont, lp, NULL);
    if (!rc) {
        double sum = 0.0;
        for (int i = 0; i < n_cont; i++)
            sum -= lp[i];
        *nll += sum;
        *n_scored += n_cont;
    }
    mem_free(lp);
    mem_free(prompt);
    return rc;
}

/* local.c — the in-process engine as a tier.
 *
 * The model is loaded once per tier and shared read-only. The tier's concurrency
 * limit (max_concurrency) is the number of engine slots: each slot is a thread with
 * its own engine session (KV cache, sampler). The slots' sequences are decoded by one
 * scheduler (engine_sched, continuous batching): every active request's next token
 * in one forward pass on the tier's threads, new prompts folded in. Output flows back to the worker
 * loop through a per-call buffer and a single pending loop_post at a time: no allocation per token.
 *
 * The tier is a typed backend (backend.h): each token goes to the worker loop as an
 * event (its text, logprob and the alternatives asked for, whether it belongs to a
 * tool call), then each choice's end, the usage and the end of the call with what
 * speculative decoding did. The client's answer is written from those events on the
 * loop (oai_writer.c); no JSON is made here.
 *
 * Two things serve speculative decoding (docs/speculative.md): a tier with a draft
 * model decodes with spec_generate where it applies, on the slot's thread outside the
 * scheduler; and completions with echo score a prompt (given as token ids, vLLM's
 * form) position by position, reusing a prompt_cache_key entry's KV cache and scores
 * so that a verifier's next round computes only its new tokens.
 */
#include "tier/local.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/mem.h"
#include "engine/engine.h"
#include "engine/jsonschema.h"
#include "engine/spec.h"
#include "tier/spec_remote.h"

#define LOCAL_MAX_PROMPT_BYTES   (8u << 20)
#define LOCAL_MAX_OUT            (16u << 20)
#define LOCAL_DEFAULT_MAX_TOKENS 256
#define LOCAL_KEY_LEN            128 /* prompt_cache_key bytes kept */
#define LOCAL_VCACHE_ENTRIES     4   /* prompt_cache_key entries per tier */

typedef struct local_call local_call_t;

struct local_call {
    struct local_call *next; /* job queue link */
    tier_t *t;
    loop_t *loop;
    const tier_events_t *ev;
    void *arg;
    /* request, owned copies */
    engine_prompt_t *prompt; /* rendered prompt: text and the request's spans of it */
    int *ids;                /* (n_ids) the prompt as token ids (completions), or NULL */
    int n_ids;
    bool as_ids;                   /* return_tokens_as_token_ids: tokens read "token_id:N" */
    char cache_key[LOCAL_KEY_LEN]; /* prompt_cache_key, "" for none */
    int n_cached;                  /* prompt tokens whose KV cache was reused */
    bool completions, logprobs, echo;
    bool stream;         /* wake the loop per event (else once, at the end) */
    bool lp_values_only; /* logprobs only for the cascade's confidence: no alternatives needed */
    int top_logprobs;
    engine_gen_params_t gp;
    bool max_tokens_zero; /* echo with max_tokens 0: score only */
    char *stops[ENGINE_MAX_STOPS];
    grammar_t *grammar; /* response_format or tools, NULL: free text */
    char *grammar_err;  /* why the request (response_format, tools, prompt ids) cannot be
                           served (answered 400) */
    bool tools;         /* grammar is a tool call (tool_choice auto, required or named) */
    bool as_call;       /* the answer is a tool call (decided at the first token) */
    /* events for the loop, and the end, guarded by mu */
    pthread_mutex_t mu;
    buf_t out; /* local_rec_t records */
    bool posted, finished, overflow;
    int status;
    const char *err_type; /* status != 200 (static) */
    char err_msg[400];
    tier_spec_report_t rep; /* status 200 */
    atomic_bool canceled;
    /* engine thread state */
    int n_prompt, n_gen;
    /* n > 1: choices generated one after another, each with its own seed. */
    int n_choices;  /* the request's n (1..128) */
    int choice;     /* index of the choice being generated */
    int choice_gen; /* tokens of that choice */
    /* speculative decoding (a tier with a draft): the counts, or why it did not apply */
    bool spec;
    spec_stats_t spec_st;
    const char *spec_plain; /* static text, NULL: applied or no draft */
    /* speculative (t->verifier set): the verifier drafts are checked by, or why not */
    spec_remote_opts_t rspec;
    const char *rspec_skip; /* NULL: this call drafts for t->verifier */
    spec_remote_stats_t rspec_st;
};

/* One prompt_cache_key entry: a session whose KV cache holds the key's last prompt,
 * and the per-position scores computed for it, so that the next round of a verifying
 * generation (the same tokens plus a few new ones) computes only what is new. An entry
 * in use by a call is never evicted; the least recently used free one is. */
typedef struct local_ventry {
    char key[LOCAL_KEY_LEN]; /* "" while unused */
    engine_session_t *s;     /* created on first use */
    int *toks;               /* (n_ctx) the last prompt scored */
    float *lp;               /* (n_ctx) lp[i]: logprob of toks[i] given toks[0..i) */
    int *top;                /* (n_ctx) the most likely token at i */
    float *top_lp;           /* (n_ctx) its logprob */
    int n;                   /* positions of toks whose scores are valid */
    bool busy;
    uint64_t used; /* LRU stamp */
} local_ventry_t;

typedef struct local_backend {
    engine_t *e;
    int n_slots;
    pthread_t *threads;
    engine_session_t **sessions;
    engine_sched_t *sched; /* runs the slots' sequences together */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    local_call_t *head, *tail;
    bool stopping;
    engine_session_opts_t so;                    /* the slots' session options */
    engine_t *draft;                             /* draft model of speculative decoding, or NULL */
    engine_session_t **dsessions;                /* (n_slots) the draft's session per slot */
    int draft_max;                               /* tokens drafted per round */
    local_ventry_t vcache[LOCAL_VCACHE_ENTRIES]; /* guarded by mu */
    uint64_t vclock;
} local_backend_t;

/* ------------------------------------------------------- loop side ---- */

/* An event as the engine thread queues it: this header, then text, tok and the
 * alternatives' tokens, back to back. */
typedef struct local_rec {
    uint8_t kind, call, has_lp, complete, finish;
    uint8_t n_alts;
    int32_t choice;
    float logprob;
    uint32_t len, tok_len;
    uint32_t prompt_tokens, completion_tokens, cached_tokens;
    float alt_lp[SAMPLE_MAX_ALTS];
    uint32_t alt_len[SAMPLE_MAX_ALTS];
} local_rec_t;

static void call_free(local_call_t *c)
{
    if (c->prompt) engine_prompt_deinit(c->prompt);
    mem_free(c->prompt);
    mem_free(c->ids);
    grammar_free(c->grammar);
    mem_free(c->grammar_err);
    for (int i = 0; i < ENGINE_MAX_STOPS; i++)
        mem_free(c->stops[i]);
    buf_deinit(&c->out);
    pthread_mutex_destroy(&c->mu);
    mem_free(c);
}

/* Hands the queued events in chunk to the caller, in order; stops when the call is
 * cancelled meanwhile (by the callback itself: a continuation cut it). */
static void deliver(local_call_t *c, const buf_t *chunk)
{
    size_t at = 0;
    tier_alt_t alts[SAMPLE_MAX_ALTS];
    while (at + sizeof(local_rec_t) <= chunk->len && !atomic_load(&c->canceled)) {
        local_rec_t r;
        memcpy(&r, chunk->data + at, sizeof r);
        const char *p = chunk->data + at + sizeof r;
        tier_ev_t ev = {.kind = (tier_ev_kind_t)r.kind,
                        .choice = r.choice,
                        .text = p,
                        .len = r.len,
                        .tok = p + r.len,
                        .tok_len = r.tok_len,
                        .call = r.call,
                        .has_lp = r.has_lp,
                        .logprob = r.logprob,
                        .n_alts = r.n_alts,
                        .alts = alts,
                        .finish = (tier_finish_t)r.finish,
                        .complete = r.complete,
                        .prompt_tokens = r.prompt_tokens,
                        .completion_tokens = r.completion_tokens,
                        .cached_tokens = r.cached_tokens};
        p += r.len + r.tok_len;
        for (int a = 0; a < r.n_alts; a++) {
            alts[a] = (tier_alt_t){p, r.alt_len[a], r.alt_lp[a]};
            p += r.alt_len[a];
        }
        at = (size_t)(p - chunk->data);
        c->ev->on_event(c->arg, &ev);
    }
}

/* Runs on the worker loop: hands queued events to the caller; on the last pump after
 * the engine finished, reports the end and frees the call. */
static void pump(void *arg)
{
    local_call_t *c = arg;
    buf_t chunk;
    pthread_mutex_lock(&c->mu);
    chunk = c->out;
    buf_init(&c->out, LOCAL_MAX_OUT);
    bool finished = c->finished;
    c->posted = false;
    pthread_mutex_unlock(&c->mu);
    if (!atomic_load(&c->canceled)) deliver(c, &chunk);
    if (finished && !atomic_load(&c->canceled)) {
        tier_end_t end = {c->status, c->err_type, c->err_msg, c->status == 200 ? &c->rep : NULL};
        c->ev->on_end(c->arg, &end);
    }
    buf_deinit(&chunk);
    if (finished) call_free(c);
}

/* Engine thread: wakes the loop for what is queued (and the end, when finished). */
static void post(local_call_t *c, bool finished)
{
    pthread_mutex_lock(&c->mu);
    if (finished) c->finished = true;
    bool wake = !c->posted;
    c->posted = true;
    pthread_mutex_unlock(&c->mu);
    if (wake && loop_post(c->loop, pump, c)) log_error("local tier: cannot wake the worker loop");
}

/* Engine thread: queues one event (r's lengths say what follows it) for the loop. */
static void queue_ev(local_call_t *c, const local_rec_t *r, const char *text, const char *tok,
                     const char *const *alt_tok)
{
    pthread_mutex_lock(&c->mu);
    int bad = buf_append(&c->out, r, sizeof *r);
    bad |= buf_append(&c->out, text, r->len);
    bad |= buf_append(&c->out, tok, r->tok_len);
    for (int a = 0; a < r->n_alts; a++)
        bad |= buf_append(&c->out, alt_tok[a], r->alt_len[a]);
    if (bad) c->overflow = true; /* the loop is far behind: the call fails at its end */
    pthread_mutex_unlock(&c->mu);
    if (c->stream) post(c, false);
}

/* -------------------------------------------------------- events ---- */

/* How a logprobs entry names token id (piece: its text, already decoded, or NULL to
 * decode it): "token_id:N" under return_tokens_as_token_ids, else its text. Returns
 * the length written to out (cap bytes). */
static uint32_t tok_name(const local_call_t *c, const engine_t *e, int id, const char *piece,
                         size_t plen, char *out, size_t cap)
{
    int n;
    if (c->as_ids) {
        n = snprintf(out, cap, "token_id:%d", id);
    } else if (piece) {
        n = (int)(plen < cap ? plen : cap);
        memcpy(out, piece, (size_t)n);
    } else {
        n = engine_token_text(e, -1, id, out, cap);
    }
    return n < 0 ? 0 : (uint32_t)(n < (int)cap ? n : (int)cap - 1);
}

/* Queues a token (kind TOKEN or ECHO) with its logprob and the alternatives asked for. */
static void queue_token(local_call_t *c, const engine_t *e, tier_ev_kind_t kind, int id,
                        const char *text, size_t len, const char *tokp, size_t tokl, bool has_lp,
                        float logprob, const sample_alt_t *alts, int n_alts)
{
    local_rec_t r;
    memset(&r, 0, sizeof r);
    r.kind = (uint8_t)kind;
    r.choice = c->choice;
    r.call = c->as_call;
    r.len = (uint32_t)len;
    char tok[256], alt[SAMPLE_MAX_ALTS][256];
    const char *alt_tok[SAMPLE_MAX_ALTS];
    if (c->logprobs) r.tok_len = tok_name(c, e, id, tokp, tokl, tok, sizeof tok);
    if (has_lp && c->logprobs) {
        r.has_lp = 1;
        r.logprob = logprob;
        int na = n_alts < c->top_logprobs ? n_alts : c->top_logprobs;
        for (int a = 0; a < na; a++) {
            r.alt_lp[a] = alts[a].logprob;
            r.alt_len[a] = tok_name(c, e, alts[a].id, NULL, 0, alt[a], sizeof alt[a]);
            alt_tok[a] = alt[a];
        }
        r.n_alts = (uint8_t)(na > 0 ? na : 0);
    }
    queue_ev(c, &r, text, tok, alt_tok);
}

typedef struct gen_ctx {
    local_call_t *c;
    const engine_t *e;
} gen_ctx_t;

static int on_token(void *ud, const engine_token_t *tok)
{
    gen_ctx_t *g = ud;
    local_call_t *c = g->c;
    if (atomic_load(&c->canceled)) return 1;
    c->n_gen++;
    c->choice_gen++;
    if (c->tools && c->choice_gen == 1) {
        /* the engine's rule (grammar_optional): a first token leading with '{' */
        char piece[256];
        int n = engine_token_text(g->e, -1, tok->id, piece, sizeof piece), i = 0;
        while (i < n &&
               (piece[i] == ' ' || piece[i] == '\n' || piece[i] == '\t' || piece[i] == '\r'))
            i++;
        c->as_call = !c->gp.grammar_optional || (i < n && piece[i] == '{');
    }
    /* chat entries name the token by its own text; completions by the text it added */
    queue_token(c, g->e, TIER_EV_TOKEN, tok->id, tok->text, tok->len,
                c->completions ? tok->text : NULL, tok->len, true, tok->info->logprob,
                tok->info->alts, tok->info->n_alts);
    return 0;
}

/* One choice is done. */
static void finish_choice(local_call_t *c, const engine_gen_result_t *res)
{
    local_rec_t r;
    memset(&r, 0, sizeof r);
    r.kind = TIER_EV_FINISH;
    r.choice = c->choice;
    r.finish = res->finish == ENGINE_FINISH_LENGTH ? TIER_FINISH_LENGTH : TIER_FINISH_STOP;
    r.complete = res->complete;
    queue_ev(c, &r, "", "", NULL);
}

/* What speculative decoding did (a verifier tier: drafted/accepted/rounds or why it
 * was skipped; a draft: whether it applied, its counts or why not), or nothing. */
static void fill_report(local_call_t *c)
{
    tier_spec_report_t *r = &c->rep;
    memset(r, 0, sizeof *r);
    if (c->t->verifier) {
        const spec_remote_stats_t *st = &c->rspec_st;
        r->present = true;
        r->verifier = c->t->verifier->s.name;
        r->skipped = c->rspec_skip;
        r->drafted = (uint32_t)st->drafted;
        r->accepted = (uint32_t)st->accepted;
        r->rounds = (uint32_t)st->rounds;
        r->draft_max = (uint32_t)st->draft_max;
        r->local_tokens = (uint32_t)st->local_tokens;
        r->degraded = st->fell_back;
        snprintf(r->error, sizeof r->error, "%s", st->error);
    } else if (c->spec || c->spec_plain) {
        r->present = true;
        r->applied = c->spec;
        r->reason = c->spec_plain;
        r->drafted = (uint32_t)c->spec_st.drafted;
        r->accepted = (uint32_t)c->spec_st.accepted;
        r->rounds = (uint32_t)c->spec_st.rounds;
    }
}

/* After the last choice: the usage, then the end. */
static void finish_answer(local_call_t *c)
{
    local_rec_t r;
    memset(&r, 0, sizeof r);
    r.kind = TIER_EV_USAGE;
    r.prompt_tokens = (uint32_t)c->n_prompt;
    r.completion_tokens = (uint32_t)c->n_gen;
    r.cached_tokens = (uint32_t)c->n_cached;
    queue_ev(c, &r, "", "", NULL);
    fill_report(c);
    pthread_mutex_lock(&c->mu);
    if (c->overflow) {
        c->status = 500;
        c->err_type = "engine_error";
        snprintf(c->err_msg, sizeof c->err_msg, "the answer exceeds %u MiB", LOCAL_MAX_OUT >> 20);
    }
    pthread_mutex_unlock(&c->mu);
    post(c, true);
}

/* Ends the call with an error: status 400 (the request as sent cannot be served) or
 * 500 (the engine failed). */
static void fail_call(local_call_t *c, int status, const char *type, const char *msg)
{
    pthread_mutex_lock(&c->mu);
    c->status = status;
    c->err_type = type;
    snprintf(c->err_msg, sizeof c->err_msg, "%s", msg);
    pthread_mutex_unlock(&c->mu);
    post(c, true);
}

/* ---------------------------------------------------- engine slots ---- */

/* ------------------------------------------------- prompt scoring ---- */

/* Per-position scores of a prompt (echo): lp[i] the logprob of ids[i] given ids[0..i),
 * top[i] / top_lp[i] the model's most likely token there and its logprob (what a
 * speculative verifier compares each draft token with). Position 0 has none. */
typedef struct local_scores {
    float *lp, *top_lp; /* (n) */
    int *top;           /* (n) */
} local_scores_t;

/* Scores positions from..n-1 of ids on s (from >= 1; positions below it are the
 * caller's, already scored). The rows come from appending ids[from-1..n-1) after the
 * first from-1 tokens, whose keys and values s keeps when its cache holds them (else
 * from is lowered to what it holds, and more is scored). Afterwards s holds ids[0..n-1)
 * and the generation that follows feeds only the last token. Returns the first
 * position scored (from-1 cache positions were reused), or a negative error. */
static int score_from(engine_session_t *s, const int *ids, int n, int from, local_scores_t *sc)
{
    const int V = engine_session_engine(s)->model->cfg.n_vocab;
    const int *have = engine_session_tokens(s);
    int kept = 0, nc = engine_session_n_cached(s);
    while (kept < nc && kept < n && have[kept] == ids[kept])
        kept++;
    if (from < 1) from = 1;
    if (from > n) from = n;
    if (from - 1 > kept) from = kept + 1;
    engine_session_rewind(s, from - 1);
    int B = engine_session_max_batch(s);
    for (int at = from - 1; at < n - 1;) {
        int k = n - 1 - at < B ? n - 1 - at : B;
        const float *rows = engine_session_append(s, ids + at, k, true);
        if (!rows) return SY_EINVAL;
        for (int j = 0; j < k; j++) {
            const float *row = rows + (size_t)j * V;
            int pos = at + j + 1, best = 0;
            for (int v = 1; v < V; v++)
                if (row[v] > row[best]) best = v;
            sc->lp[pos] = sample_logprob(row, V, ids[pos], NULL);
            sc->top[pos] = best;
            sc->top_lp[pos] = sample_logprob(row, V, best, NULL);
        }
        at += k;
    }
    return from;
}

/* Adds the echoed prompt to the answer: its text, and with logprobs one legacy entry
 * per position (a text prompt's leading BOS, which has no text, is left out: its
 * first text token is scored with BOS as context; a prompt of ids gets an entry at
 * every position, null at 0, as vLLM answers). */
static void echo_write(local_backend_t *b, local_call_t *c, const int *ids, int n,
                       const local_scores_t *sc)
{
    int prev = -1;
    for (int i = 0; i < n; i++) {
        char piece[256];
        int m = engine_token_text(b->e, prev, ids[i], piece, sizeof piece);
        prev = ids[i];
        if (m < 0) m = 0;
        if (i == 0 && m == 0 && !c->ids) continue; /* BOS has no text */
        sample_alt_t alt = {i > 0 ? sc->top[i] : 0, i > 0 ? sc->top_lp[i] : 0};
        queue_token(c, b->e, TIER_EV_ECHO, ids[i], piece, (size_t)m, piece, (size_t)m, i > 0,
                    i > 0 ? sc->lp[i] : 0, &alt, i > 0 ? 1 : 0);
    }
}

/* ------------------------------------------------ prompt cache keys ---- */

/* Takes the entry of key for a call: the key's own entry, else the least recently used
 * free one (reset: its scores no longer hold). NULL when the key's entry is busy (two
 * calls with one key at once: the second runs uncached) or every entry is. */
static local_ventry_t *vcache_take(local_backend_t *b, const char *key)
{
    local_ventry_t *e = NULL;
    pthread_mutex_lock(&b->mu);
    for (int i = 0; i < LOCAL_VCACHE_ENTRIES; i++)
        if (!strcmp(b->vcache[i].key, key)) e = &b->vcache[i];
    if (e && e->busy) {
        e = NULL;
    } else if (!e) {
        for (int i = 0; i < LOCAL_VCACHE_ENTRIES; i++) {
            local_ventry_t *x = &b->vcache[i];
            if (!x->busy && (!e || x->used < e->used)) e = x;
        }
        if (e) {
            snprintf(e->key, sizeof e->key, "%s", key);
            e->n = 0;
        }
    }
    if (e) {
        e->busy = true;
        e->used = ++b->vclock;
    }
    pthread_mutex_unlock(&b->mu);
    if (e && !e->s) {
        /* busy: this thread alone touches the entry's session and arrays */
        e->s = engine_session_new(b->e, &b->so);
        size_t n = (size_t)engine_session_n_ctx(e->s) + 1;
        e->toks = mem_alloc(n * sizeof *e->toks);
        e->lp = mem_alloc(n * sizeof *e->lp);
        e->top = mem_alloc(n * sizeof *e->top);
        e->top_lp = mem_alloc(n * sizeof *e->top_lp);
    }
    return e;
}

/* Gives the entry back; valid: its scores hold for toks[0..n). */
static void vcache_put(local_backend_t *b, local_ventry_t *e, bool valid)
{
    pthread_mutex_lock(&b->mu);
    if (!valid) e->n = 0;
    e->busy = false;
    pthread_mutex_unlock(&b->mu);
}

static void vcache_free(local_backend_t *b)
{
    for (int i = 0; i < LOCAL_VCACHE_ENTRIES; i++) {
        local_ventry_t *e = &b->vcache[i];
        engine_session_free(e->s);
        mem_free(e->toks);
        mem_free(e->lp);
        mem_free(e->top);
        mem_free(e->top_lp);
    }
}

/* Scores the prompt for echo on s, reusing what the key's entry (may be NULL) holds:
 * positions where this prompt agrees with the entry's last one keep their scores and
 * cache. Fills sc (arrays of n) and c->n_cached. 0 or a negative error. */
static int echo_score(local_call_t *c, engine_session_t *s, local_ventry_t *ve, const int *ids,
                      int n, local_scores_t *sc)
{
    int from = 1;
    if (ve) {
        int same = 0;
        while (same < ve->n && same < n && ve->toks[same] == ids[same])
            same++;
        from = same;
        memcpy(sc->lp, ve->lp, (size_t)same * sizeof *sc->lp);
        memcpy(sc->top, ve->top, (size_t)same * sizeof *sc->top);
        memcpy(sc->top_lp, ve->top_lp, (size_t)same * sizeof *sc->top_lp);
        /* The first differing token is most often the last round's top alternative
         * there (a drafter's correction): its scores are known too, as they depend only
         * on the tokens before it. */
        if (same >= 1 && same < n && same < ve->n && ids[same] == ve->top[same]) {
            sc->lp[same] = sc->top_lp[same] = ve->top_lp[same];
            sc->top[same] = ve->top[same];
            from = same + 1;
        }
    }
    int at = score_from(s, ids, n, from, sc);
    if (at < 0) return at;
    c->n_cached = at - 1;
    if (ve) {
        memcpy(ve->toks, ids, (size_t)n * sizeof *ids);
        memcpy(ve->lp, sc->lp, (size_t)n * sizeof *sc->lp);
        memcpy(ve->top, sc->top, (size_t)n * sizeof *sc->top);
        memcpy(ve->top_lp, sc->top_lp, (size_t)n * sizeof *sc->top_lp);
        ve->n = n;
    }
    return 0;
}

/* The prompt's ids: the request's own (checked against the vocabulary) or the
 * rendered text tokenized. Fills ids (n_ctx + 1) and returns the count, or -1 after
 * answering the call with a 400. */
static int call_ids(local_backend_t *b, local_call_t *c, int n_ctx, int *ids)
{
    char msg[200];
    int n;
    if (c->ids) {
        const int V = b->e->model->cfg.n_vocab;
        for (int i = 0; i < c->n_ids; i++)
            if (c->ids[i] >= V) {
                snprintf(msg, sizeof msg,
                         "prompt[%d] is %d, not a token id of the model (its vocabulary holds "
                         "ids 0..%d)",
                         i, c->ids[i], V - 1);
                fail_call(c, 400, "invalid_request_error", msg);
                return -1;
            }
        n = c->n_ids;
        if (n < n_ctx) memcpy(ids, c->ids, (size_t)n * sizeof *ids);
    } else {
        n = engine_prompt_tokenize(b->e, c->prompt, true, ids, n_ctx + 1);
    }
    if (n < 0 || n >= n_ctx) {
        if (n >= 0)
            snprintf(msg, sizeof msg, "the prompt is %d tokens; the local model's context is %d", n,
                     n_ctx);
        else
            snprintf(msg, sizeof msg,
                     "the prompt is too many tokens, more than the local model's context of %d",
                     n_ctx);
        fail_call(c, 400, "context_length_exceeded", msg);
        return -1;
    }
    return n;
}

/* Why a call on a tier with a draft decodes plainly, or NULL when speculative
 * decoding applies (spec_generate: one sequence, no stop strings, no alternatives, no
 * grammar; echo scores the prompt first, which the verifier's rounds need plainly). */
static const char *spec_why_plain(const local_call_t *c)
{
    if (c->gp.grammar) return "response_format or tools (decoded under a grammar)";
    if (c->stops[0]) return "stop strings";
    if (c->logprobs && !c->lp_values_only) return "logprobs";
    if (c->n_choices > 1) return "n > 1";
    if (c->echo) return "echo";
    return NULL;
}

/* slot: the slot's index (its draft session). */
static void run_call(local_backend_t *b, engine_session_t *s, int slot, local_call_t *c)
{
    if (atomic_load(&c->canceled)) {
        post(c, true);
        return;
    }
    if (c->grammar_err) {
        fail_call(c, 400, "invalid_request_error", c->grammar_err);
        return;
    }
    int n_ctx = engine_session_n_ctx(s);
    int *ids = mem_alloc(sizeof(int) * (size_t)(n_ctx + 1));
    int n = call_ids(b, c, n_ctx, ids);
    if (n < 0) {
        mem_free(ids);
        return;
    }
    c->n_prompt = n;
    if (c->gp.max_tokens <= 0 || c->gp.max_tokens > n_ctx - n) {
        int room = n_ctx - n;
        c->gp.max_tokens = c->gp.max_tokens <= 0
                               ? (room < LOCAL_DEFAULT_MAX_TOKENS ? room : LOCAL_DEFAULT_MAX_TOKENS)
                               : room;
    }
    if (c->gp.grammar_optional && c->gp.max_tokens < c->grammar->root->min_len) {
        c->gp.grammar = NULL; /* auto: no call fits max_tokens, the answer is text */
        c->gp.grammar_optional = false;
        c->tools = false;
    }
    if (c->gp.grammar && c->gp.max_tokens < c->grammar->root->min_len) {
        /* one token per byte at worst: below this the value may not close in time */
        char msg[200];
        snprintf(msg, sizeof msg,
                 "max_tokens %d is below what the %s's shortest value may need "
                 "(%d tokens)",
                 c->gp.max_tokens, c->tools ? "tool call" : "response_format",
                 c->grammar->root->min_len);
        mem_free(ids);
        fail_call(c, 400, "invalid_request_error", msg);
        return;
    }
    /* prompt_cache_key: the key's session and scores stand in for the slot's */
    local_ventry_t *ve = c->cache_key[0] ? vcache_take(b, c->cache_key) : NULL;
    if (ve) s = ve->s;
    local_scores_t sc = {NULL, NULL, NULL};
    if (c->echo) {
        sc.lp = mem_alloc(sizeof(float) * (size_t)n);
        sc.top_lp = mem_alloc(sizeof(float) * (size_t)n);
        sc.top = mem_alloc(sizeof(int) * (size_t)n);
        if (echo_score(c, s, ve, ids, n, &sc)) {
            if (ve) vcache_put(b, ve, false);
            mem_free(sc.lp);
            mem_free(sc.top_lp);
            mem_free(sc.top);
            mem_free(ids);
            fail_call(c, 500, "engine_error", "scoring the prompt failed");
            return;
        }
    } else if (ve) {
        ve->n = 0; /* the KV cache is reused by prefix; no scores are kept */
    }
    gen_ctx_t g = {c, b->e};
    uint64_t seed = c->gp.sample.seed;
    int rc = 0;
    for (c->choice = 0; c->choice < c->n_choices; c->choice++) {
        engine_gen_result_t res;
        memset(&res, 0, sizeof res);
        if (c->echo) echo_write(b, c, ids, n, &sc);
        /* Distinct seeds: the choices are independent samples of one request. */
        c->gp.sample.seed = seed + (uint64_t)c->choice * 0x9e3779b97f4a7c15ull;
        c->choice_gen = 0;
        c->as_call = false; /* each choice decides afresh whether it is a tool call */
        if (c->echo && c->max_tokens_zero) {
            res.finish = ENGINE_FINISH_LENGTH;
        } else if (b->draft && !(c->spec_plain = spec_why_plain(c))) {
            /* On the slot's thread, outside the scheduler: the draft and the target's
             * batched verify pass alternate on this sequence alone. */
            c->spec = true;
            engine_gen_params_t sp = c->gp;
            sp.n_logprobs =
                0; /* each token's logprob (the cascade's confidence), no alternatives */
            rc = spec_generate(s, b->dsessions[slot], ids, n, &sp, b->draft_max, on_token, &g, &res,
                               &c->spec_st);
        } else {
            rc = c->rspec_skip
                     ? engine_sched_generate(b->sched, s, ids, n, &c->gp, on_token, &g, &res)
                     : spec_remote_generate(s, &c->rspec, ids, n, &c->gp, on_token, &g, &res,
                                            &c->rspec_st);
            if (!c->echo && c->choice == 0) c->n_cached = res.n_reused;
        }
        if (rc || atomic_load(&c->canceled)) break;
        finish_choice(c, &res);
    }
    if (ve) vcache_put(b, ve, !rc && c->echo);
    mem_free(sc.lp);
    mem_free(sc.top_lp);
    mem_free(sc.top);
    mem_free(ids);
    if (rc)
        fail_call(c, rc == SY_ECONTEXT ? 400 : 500, "engine_error", sy_strerror(rc));
    else
        finish_answer(c);
}

typedef struct slot_arg {
    local_backend_t *b;
    int idx;
} slot_arg_t;

static void *slot_main(void *arg)
{
    slot_arg_t sa = *(slot_arg_t *)arg;
    mem_free(arg);
    local_backend_t *b = sa.b;
    engine_session_t *s = b->sessions[sa.idx];
    for (;;) {
        pthread_mutex_lock(&b->mu);
        while (!b->head && !b->stopping)
            pthread_cond_wait(&b->cv, &b->mu);
        local_call_t *c = b->head;
        if (c) {
            b->head = c->next;
            if (!b->head) b->tail = NULL;
        }
        pthread_mutex_unlock(&b->mu);
        if (!c) break;
        run_call(b, s, sa.idx, c);
    }
    log_thread_cleanup();
    return NULL;
}

int local_tier_open(tier_t *t, char *err, size_t errlen)
{
    engine_t *e = NULL;
    int rc = engine_load(t->s.model, t->s.tokenizer, &e, err, errlen);
    if (rc) return rc;
    engine_t *draft = NULL;
    if (t->s.draft) {
        /* the draft must load, share the vocabulary and be the smaller (spec_check) */
        char why[300];
        rc = engine_load(t->s.draft, t->s.tokenizer, &draft, why, sizeof why);
        if (!rc) rc = spec_check(e, draft, why, sizeof why);
        if (rc) {
            snprintf(err, errlen, "draft %s: %s", t->s.draft, why);
            engine_free(draft);
            engine_free(e);
            return rc;
        }
    }
    local_backend_t *b = mem_calloc(1, sizeof *b);
    b->e = e;
    b->draft = draft;
    b->draft_max = t->s.draft_max ? (int)t->s.draft_max : 4;
    b->n_slots = (int)t->s.max_concurrency;
    if (b->n_slots > 64) b->n_slots = 64;
    b->threads = mem_calloc((size_t)b->n_slots, sizeof(pthread_t));
    b->sessions = mem_calloc((size_t)b->n_slots, sizeof(engine_session_t *));
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    /* the sessions hold the slots' caches; the scheduler's pool does the work */
    engine_session_opts_t so = {(int)t->s.engine_context, 1, 0};
    b->so = so;
    b->sched = engine_sched_new(
        e, &(engine_sched_opts_t){.n_threads = (int)(t->s.threads ? t->s.threads : 1),
                                  .max_seqs = b->n_slots});
    if (!b->sched) {
        snprintf(err, errlen, "local tier: cannot start the engine scheduler");
        mem_free(b->threads);
        mem_free(b->sessions);
        pthread_mutex_destroy(&b->mu);
        pthread_cond_destroy(&b->cv);
        mem_free(b);
        engine_free(draft);
        engine_free(e);
        return SY_EINVAL;
    }
    if (draft) b->dsessions = mem_calloc((size_t)b->n_slots, sizeof(engine_session_t *));
    for (int i = 0; i < b->n_slots; i++) {
        b->sessions[i] = engine_session_new(e, &so);
        if (draft) b->dsessions[i] = engine_session_new(draft, &so);
        slot_arg_t *sa = mem_alloc(sizeof *sa);
        *sa = (slot_arg_t){b, i};
        pthread_create(&b->threads[i], NULL, slot_main, sa);
    }
    if (!t->s.engine_context) t->s.engine_context = (uint32_t)engine_session_n_ctx(b->sessions[0]);
    t->s.logprobs = true;
    /* The tier's limit is the slot count: never more calls in flight than slots. */
    t->s.max_concurrency = (uint32_t)b->n_slots;
    t->backend = b;
    t->ops = &local_backend_ops;
    return 0;
}

void local_tier_close(tier_t *t)
{
    local_backend_t *b = t->backend;
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    b->stopping = true;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    for (int i = 0; i < b->n_slots; i++)
        pthread_join(b->threads[i], NULL);
    engine_sched_free(b->sched);
    for (int i = 0; i < b->n_slots; i++)
        engine_session_free(b->sessions[i]);
    vcache_free(b);
    for (int i = 0; b->dsessions && i < b->n_slots; i++)
        engine_session_free(b->dsessions[i]);
    mem_free(b->dsessions);
    engine_free(b->draft);
    mem_free(b->threads);
    mem_free(b->sessions);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    engine_free(b->e);
    mem_free(b);
    t->backend = NULL;
    t->ops = NULL;
}

/* ------------------------------------------------------- requests ---- */

/* Appends the text of a message content (string or text parts) to out. */
static void content_text(cJSON *content, buf_t *out)
{
    if (cJSON_IsString(content)) {
        buf_puts(out, content->valuestring);
        return;
    }
    cJSON *part;
    cJSON_ArrayForEach(part, content)
    {
        cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (cJSON_IsString(text)) buf_puts(out, text->valuestring);
    }
}

/* Leaves the final assistant message last (rendered by the template without the
 * generation prompt) open: the prompt is cut after its content, before the end tokens
 * the template wrote. A template that trims the content is matched without the
 * trailing whitespace. 0 or SY_EINVAL. */
static int continue_open(engine_prompt_t *p, const cJSON *last)
{
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(last, "role");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(last, "content");
    if (!cJSON_IsString(role) || strcmp(role->valuestring, "assistant") ||
        !cJSON_IsString(content)) {
        log_warn("local: continue_final_message without a final assistant message");
        return SY_EINVAL;
    }
    const char *t = content->valuestring;
    size_t n = strlen(t);
    if (!n) return 0; /* nothing to continue: the prompt as rendered */
    if (!engine_prompt_cut_after(p, t, n)) return 0;
    while (n && (t[n - 1] == ' ' || t[n - 1] == '\n' || t[n - 1] == '\t' || t[n - 1] == '\r'))
        n--;
    if (n && !engine_prompt_cut_after(p, t, n)) return 0;
    log_warn("local: continue_final_message: the template does not render the final message "
             "as given");
    return SY_EINVAL;
}

/* Renders the request's prompt with the model's chat template: request text is kept
 * apart from template text, so it is never parsed for special pieces. */
static int render_prompt(local_backend_t *b, cJSON *req, bool completions, engine_prompt_t **out)
{
    engine_prompt_t *p = mem_alloc(sizeof *p);
    engine_prompt_init(p, LOCAL_MAX_PROMPT_BYTES);
    int rc = 0;
    if (completions) {
        cJSON *prompt = cJSON_GetObjectItemCaseSensitive(req, "prompt");
        const char *s = cJSON_IsString(prompt) ? prompt->valuestring : "";
        rc = engine_prompt_append(p, s, strlen(s), true);
    } else {
        /* {role, content as text} plus an assistant's tool_calls and a tool result's
         * tool_call_id / name, for templates that render tool turns */
        cJSON *msgs = cJSON_GetObjectItemCaseSensitive(req, "messages");
        cJSON *arr = cJSON_CreateArray();
        buf_t text;
        buf_init(&text, LOCAL_MAX_PROMPT_BYTES);
        cJSON *m;
        cJSON_ArrayForEach(m, msgs)
        {
            cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
            const char *r = cJSON_IsString(role) ? role->valuestring : "user";
            buf_reset(&text);
            content_text(cJSON_GetObjectItemCaseSensitive(m, "content"), &text);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "role", strcmp(r, "developer") ? r : "system");
            cJSON_AddStringToObject(o, "content", text.data ? text.data : "");
            static const char *const keep[] = {"tool_calls", "tool_call_id", "name"};
            for (size_t k = 0; k < sizeof keep / sizeof *keep; k++) {
                cJSON *v = cJSON_GetObjectItemCaseSensitive(m, keep[k]);
                if (v) cJSON_AddItemReferenceToObject(o, keep[k], v);
            }
            cJSON_AddItemToArray(arr, o);
        }
        buf_deinit(&text);
        cJSON *tools = cJSON_GetObjectItemCaseSensitive(req, "tools");
        char err[256];
        /* continue_final_message (vLLM's): the final assistant message is left open. */
        bool cont = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "continue_final_message"));
        rc = engine_chat_render_json(b->e, arr, cJSON_GetArraySize(tools) > 0 ? tools : NULL, !cont,
                                     p, err, sizeof err);
        if (rc) log_warn("local: chat template: %s", err);
        if (!rc && cont)
            rc = continue_open(p, cJSON_GetArrayItem(arr, cJSON_GetArraySize(arr) - 1));
        cJSON_Delete(arr);
    }
    if (rc) {
        engine_prompt_deinit(p);
        mem_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

/* response_format: the grammar the engine decodes under (json_object, or json_schema
 * with its strict flag). A schema outside the supported subset is kept as a message
 * that the engine slot answers with a 400 naming the keyword. */
static void call_response_format(local_call_t *c, cJSON *req)
{
    cJSON *rf = cJSON_GetObjectItemCaseSensitive(req, "response_format");
    if (!rf) return;
    cJSON *type = cJSON_GetObjectItemCaseSensitive(rf, "type");
    const char *ty = cJSON_IsString(type) ? type->valuestring : "";
    char err[400] = "";
    if (!strcmp(ty, "text")) return;
    if (!strcmp(ty, "json_object")) {
        c->grammar = grammar_new_json_object();
    } else if (!strcmp(ty, "json_schema")) {
        cJSON *js = cJSON_GetObjectItemCaseSensitive(rf, "json_schema");
        cJSON *schema = cJSON_GetObjectItemCaseSensitive(js, "schema");
        bool strict = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(js, "strict"));
        char why[300];
        if (!schema)
            snprintf(err, sizeof err, "response_format.json_schema.schema is missing");
        else if (jsonschema_compile_json(schema, strict, &c->grammar, why, sizeof why))
            snprintf(err, sizeof err, "response_format.json_schema.schema: %s", why);
    } else {
        snprintf(err, sizeof err,
                 "response_format.type \"%.64s\" is not supported (text, json_object, "
                 "json_schema)",
                 ty);
    }
    if (err[0]) c->grammar_err = mem_strdup(err);
    c->gp.grammar = c->grammar;
}

/* tools / tool_choice: the tool call grammar (jsonschema_compile_tools). "none" decodes
 * text (the tools still reach the template), "required" and a named function always
 * a call, "auto" (the default with tools) lets the first token choose
 * (grammar_optional). Problems are kept as a message answered with a 400. */
static void call_tools(local_call_t *c, cJSON *req)
{
    cJSON *tools = cJSON_GetObjectItemCaseSensitive(req, "tools");
    cJSON *choice = cJSON_GetObjectItemCaseSensitive(req, "tool_choice");
    char err[400] = "";
    const char *mode = cJSON_IsString(choice) ? choice->valuestring : choice ? "" : "auto";
    const char *only = NULL;
    if (cJSON_IsObject(choice)) {
        cJSON *fn = cJSON_GetObjectItemCaseSensitive(choice, "function");
        cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
        cJSON *ty = cJSON_GetObjectItemCaseSensitive(choice, "type");
        if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "function") || !cJSON_IsString(name)) {
            snprintf(err, sizeof err,
                     "tool_choice must be \"none\", \"auto\", \"required\" or {\"type\": "
                     "\"function\", \"function\": {\"name\": ...}}");
        } else {
            mode = "required";
            only = name->valuestring;
        }
    } else if (choice && strcmp(mode, "none") && strcmp(mode, "auto") && strcmp(mode, "required")) {
        snprintf(err, sizeof err,
                 "tool_choice \"%.64s\" is not one of none, auto, required or a function",
                 cJSON_IsString(choice) ? choice->valuestring : "?");
    }
    if (cJSON_GetObjectItemCaseSensitive(req, "functions"))
        snprintf(err, sizeof err,
                 "functions (the legacy form) is not served by the local tier: send tools");
    bool has = cJSON_GetArraySize(tools) > 0;
    if (!err[0] && !has && choice && strcmp(mode, "none") && strcmp(mode, "auto"))
        snprintf(err, sizeof err, "tool_choice %s needs tools", only ? "naming a function" : mode);
    if (!err[0] && has && strcmp(mode, "none")) {
        if (c->grammar || c->grammar_err) {
            snprintf(err, sizeof err,
                     "the local tier does not combine tools with response_format (send "
                     "tool_choice \"none\" or leave response_format out)");
        } else {
            char why[300];
            if (jsonschema_compile_tools(tools, only, &c->grammar, why, sizeof why))
                snprintf(err, sizeof err, "%s", why);
            c->tools = c->grammar != NULL;
            c->gp.grammar = c->grammar;
            c->gp.grammar_optional = !strcmp(mode, "auto");
        }
    }
    if (err[0] && !c->grammar_err) c->grammar_err = mem_strdup(err);
}

static double num(cJSON *req, const char *k, double def)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(req, k);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

/* The typed backend's start (backend.h). */
static int local_call_start(tier_t *t, cJSON *req, const tier_call_opts_t *o,
                            const tier_events_t *ev, void *arg, void **out)
{
    local_backend_t *b = t->backend;
    if (!b) return SY_EUNAVAILABLE;
    bool completions = o->completions;
    loop_t *loop = o->loop;
    upstream_t *up = o->up;
    local_call_t *c = mem_calloc(1, sizeof *c);
    int rc = render_prompt(b, req, completions, &c->prompt);
    if (rc) {
        mem_free(c);
        return rc;
    }
    c->t = t;
    c->loop = loop;
    c->ev = ev;
    c->arg = arg;
    c->completions = completions;
    c->stream = o->stream;
    /* completions: logprobs N asks for N alternatives per token */
    bool asked = tier_asks_logprobs(req, completions);
    c->logprobs = o->logprobs || asked;
    c->lp_values_only = o->logprobs && !asked;
    c->top_logprobs = (int)num(req, "top_logprobs", completions ? num(req, "logprobs", 0) : 0);
    if (c->top_logprobs > SAMPLE_MAX_ALTS) c->top_logprobs = SAMPLE_MAX_ALTS;
    sample_params_default(&c->gp.sample);
    c->gp.sample.temperature = (float)num(req, "temperature", 1.0);
    c->gp.sample.top_p = (float)num(req, "top_p", 1.0);
    c->gp.sample.top_k = 0;
    c->gp.sample.min_p = 0;
    cJSON *seed = cJSON_GetObjectItemCaseSensitive(req, "seed");
    c->gp.sample.seed = cJSON_IsNumber(seed) ? (uint64_t)seed->valuedouble
                                             : hash_mix(clock_mono_ns() ^ (uintptr_t)c);
    double mt = num(req, "max_completion_tokens", num(req, "max_tokens", -1));
    c->max_tokens_zero = mt == 0;
    c->gp.max_tokens = mt > 0 ? (int)mt : 0;
    c->gp.n_logprobs = c->logprobs ? (c->top_logprobs > 0 ? c->top_logprobs : 1) : 0;
    cJSON *stop = cJSON_GetObjectItemCaseSensitive(req, "stop");
    int ns = 0;
    if (cJSON_IsString(stop)) {
        c->stops[ns++] = mem_strdup(stop->valuestring);
    } else if (cJSON_IsArray(stop)) {
        cJSON *s;
        cJSON_ArrayForEach(s, stop) if (cJSON_IsString(s) && ns < ENGINE_MAX_STOPS - 1)
            c->stops[ns++] = mem_strdup(s->valuestring);
    }
    for (int i = 0; i < ENGINE_MAX_STOPS; i++)
        c->gp.stop[i] = c->stops[i];
    call_response_format(c, req);
    if (!completions) call_tools(c, req);
    c->status = 200;
    pthread_mutex_init(&c->mu, NULL);
    buf_init(&c->out, LOCAL_MAX_OUT);
    double nc = num(req, "n", 1);
    c->n_choices = nc >= 1 && nc <= 128 ? (int)nc : 1;
    c->echo = completions && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "echo"));
    c->as_ids = completions &&
                cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "return_tokens_as_token_ids"));
    cJSON *key = cJSON_GetObjectItemCaseSensitive(req, "prompt_cache_key");
    if (completions && cJSON_IsString(key))
        snprintf(c->cache_key, sizeof c->cache_key, "%s", key->valuestring);
    cJSON *prompt = cJSON_GetObjectItemCaseSensitive(req, "prompt");
    if (completions && cJSON_IsArray(prompt)) {
        /* ids (the gateway checked: integers >= 0); the vocabulary is checked at run */
        int np = cJSON_GetArraySize(prompt), i = 0;
        c->ids = mem_alloc(sizeof(int) * (size_t)(np ? np : 1));
        cJSON *it;
        cJSON_ArrayForEach(it, prompt) c->ids[i++] =
            it->valuedouble < 2147483647.0 ? (int)it->valuedouble : 2147483647;
        c->n_ids = np;
        if (np == 0 && !c->grammar_err) c->grammar_err = mem_strdup("'prompt' holds no token ids");
    }
    c->rspec_skip = "no verifier";
    if (t->verifier) {
        c->rspec = (spec_remote_opts_t){t, t->verifier, loop, up, (int)t->s.spec_draft_max};
        c->rspec_skip = spec_remote_skip_reason(t, c->gp.sample.temperature, c->gp.grammar != NULL,
                                                c->n_choices, c->echo, c->top_logprobs,
                                                o->local_only, clock_mono_ms());
        if (!c->rspec_skip && !up) c->rspec_skip = "no HTTP client on this worker";
        if (c->rspec_skip) spec_remote_count_skip(t->idx, t->verifier->idx);
    }
    pthread_mutex_lock(&b->mu);
    if (b->tail)
        b->tail->next = c;
    else
        b->head = c;
    b->tail = c;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    if (out) *out = c;
    return 0;
}

/* The typed backend's cancel: the engine stops at its next token; the last pump frees
 * the call. */
static void local_call_cancel(void *call)
{
    local_call_t *c = call;
    atomic_store(&c->canceled, true);
}

const tier_backend_ops_t local_backend_ops = {local_call_start, local_call_cancel};

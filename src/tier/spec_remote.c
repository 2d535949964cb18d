/* spec_remote.c — speculative decoding across tiers (see spec_remote.h).
 *
 * Chapters: pair counters, the cost model, the verifier's answer, the HTTP call
 * (loop side and slot side), token emission (stop strings, end of generation), and
 * the rounds.
 */
#include "tier/spec_remote.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/hash.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "base/mem.h"
#include "engine/model.h"
#include "engine/tokenizer.h"

/* --------------------------------------------------- pair counters ---- */

static pthread_mutex_t pairs_mu = PTHREAD_MUTEX_INITIALIZER;
static spec_remote_pair_t pairs[ROUTE_MAX_TIERS][ROUTE_MAX_TIERS]; /* under pairs_mu */
static atomic_bool pair_warned[ROUTE_MAX_TIERS][ROUTE_MAX_TIERS];  /* unusable: said once */

static bool pair_ok(int d, int v)
{
    return d >= 0 && v >= 0 && d < ROUTE_MAX_TIERS && v < ROUTE_MAX_TIERS;
}

void spec_remote_pair_get(int drafter, int verifier, spec_remote_pair_t *out)
{
    memset(out, 0, sizeof *out);
    if (!pair_ok(drafter, verifier)) return;
    pthread_mutex_lock(&pairs_mu);
    *out = pairs[drafter][verifier];
    pthread_mutex_unlock(&pairs_mu);
}

void spec_remote_count_skip(int drafter, int verifier)
{
    if (!pair_ok(drafter, verifier)) return;
    pthread_mutex_lock(&pairs_mu);
    pairs[drafter][verifier].skipped++;
    pthread_mutex_unlock(&pairs_mu);
}

static void ewma(double *m, double x)
{
    *m = *m == 0 ? x : *m + (x - *m) / 8;
}

/* ------------------------------------------------------ cost model ---- */

int spec_remote_best_k(double a, double draft_ms, double round_ms, int cap)
{
    if (cap < 1) cap = 1;
    if (a < 0.05) a = 0.05;
    if (a > 0.98) a = 0.98;
    if (draft_ms < 1e-4) draft_ms = 1e-4;
    if (round_ms < 1e-3) round_ms = 1e-3;
    int best = 1;
    double best_rate = 0;
    for (int k = 1; k <= cap; k++) {
        double tokens = (1 - pow(a, k + 1)) / (1 - a); /* expected tokens kept per round */
        double rate = tokens / (k * draft_ms + round_ms);
        if (rate > best_rate) best_rate = rate, best = k;
    }
    return best;
}

/* ---------------------------------------------- the verifier's answer ---- */

/* "token_id:N" to N; -1 when the entry is not in that form. */
static int token_id_of(const char *s)
{
    if (!s || strncmp(s, "token_id:", 9)) return -1;
    char *end;
    errno = 0;
    long v = strtol(s + 9, &end, 10);
    if (end == s + 9 || *end || errno || v < 0 || v > 0x7fffffff) return -1;
    return (int)v;
}

/* The most likely entry of a top_logprobs object: id and logprob; false if none. */
static bool top_of(const cJSON *o, int *id, float *lp)
{
    if (!cJSON_IsObject(o)) return false;
    bool found = false;
    double best = -INFINITY;
    const cJSON *e;
    cJSON_ArrayForEach(e, o)
    {
        int t = token_id_of(e->string);
        if (t < 0 || !cJSON_IsNumber(e)) return false;
        if (!found || e->valuedouble > best) best = e->valuedouble, *id = t, found = true;
    }
    *lp = (float)best;
    return found;
}

int spec_remote_parse(const char *body, size_t n, const int *ids, int n_sent, int k,
                      spec_remote_verdict_t *out, char *err, size_t errlen)
{
    int rc = SY_EUPSTREAM;
    cJSON *j = cJSON_ParseWithLength(body, n);
    cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
    cJSON *lp = cJSON_GetObjectItemCaseSensitive(ch, "logprobs");
    cJSON *toks = cJSON_GetObjectItemCaseSensitive(lp, "tokens");
    cJSON *vals = cJSON_GetObjectItemCaseSensitive(lp, "token_logprobs");
    cJSON *tops = cJSON_GetObjectItemCaseSensitive(lp, "top_logprobs");
    int first = n_sent - k; /* position of the first draft */
    if (!j) {
        snprintf(err, errlen, "the answer is not JSON");
    } else if (!cJSON_IsArray(toks) || !cJSON_IsArray(vals) || !cJSON_IsArray(tops)) {
        snprintf(err, errlen,
                 "the answer has no prompt logprobs (choices[0].logprobs with tokens, "
                 "token_logprobs and top_logprobs: send echo and logprobs)");
    } else if (cJSON_GetArraySize(toks) < n_sent + 1 || cJSON_GetArraySize(tops) < n_sent + 1 ||
               cJSON_GetArraySize(vals) < n_sent + 1) {
        snprintf(err, errlen,
                 "the answer's logprobs hold %d entries for %d prompt tokens and 1 generated "
                 "(no echo of the prompt?)",
                 cJSON_GetArraySize(toks), n_sent);
    } else {
        rc = 0;
        int i = 0;
        cJSON *t;
        cJSON_ArrayForEach(t, toks)
        {
            if (i > n_sent) break;
            int id = token_id_of(cJSON_IsString(t) ? t->valuestring : NULL);
            if (id < 0) {
                snprintf(err, errlen,
                         "token %d of the answer is not \"token_id:N\" (the server ignores "
                         "return_tokens_as_token_ids)",
                         i);
                rc = SY_EUPSTREAM;
                break;
            }
            if (i < n_sent && id != ids[i]) {
                snprintf(err, errlen,
                         "the verifier echoed token %d as id %d where %d was sent: it does not "
                         "share the drafting model's vocabulary",
                         i, id, ids[i]);
                rc = SY_EUPSTREAM;
                break;
            }
            if (i == n_sent) out->next = id;
            i++;
        }
        for (int p = first; !rc && p <= n_sent; p++) {
            int id;
            float v;
            cJSON *val = cJSON_GetArrayItem(vals, p);
            if (p == n_sent) { /* the generated entry: its token is what counts */
                out->next_lp = cJSON_IsNumber(val) ? (float)val->valuedouble : 0;
                break;
            }
            if (!top_of(cJSON_GetArrayItem(tops, p), &id, &v)) {
                snprintf(err, errlen,
                         "the answer has no top alternative at position %d (send logprobs: 1)", p);
                rc = SY_EUPSTREAM;
                break;
            }
            out->top[p - first] = id;
            out->top_lp[p - first] = v;
            out->draft_lp[p - first] = cJSON_IsNumber(val) ? (float)val->valuedouble : v;
        }
    }
    cJSON_Delete(j);
    return rc;
}

/* ------------------------------------------------------- the HTTP call ---- */

/* One verify call, shared by the slot thread (which waits) and the worker loop (which
 * runs it). Freed by whichever lets go last. */
typedef struct vcall {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs; /* under mu */
    bool done;
    upstream_err_t err;
    int status;
    char msg[160];
    buf_t req;  /* the request body */
    buf_t resp; /* the answer's body */
    tier_t *v;
    upstream_t *up;
    uint64_t start_us, end_us;
} vcall_t;

static void vcall_unref(vcall_t *c)
{
    pthread_mutex_lock(&c->mu);
    int left = --c->refs;
    pthread_mutex_unlock(&c->mu);
    if (left) return;
    buf_deinit(&c->req);
    buf_deinit(&c->resp);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    mem_free(c);
}

static void vcall_finish(vcall_t *c, upstream_err_t err, int status, const char *msg)
{
    pthread_mutex_lock(&c->mu);
    c->done = true;
    c->err = err;
    c->status = status;
    snprintf(c->msg, sizeof c->msg, "%s", msg ? msg : "");
    c->end_us = clock_mono_us();
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    vcall_unref(c);
}

static void v_head(void *arg, int status)
{
    vcall_t *c = arg;
    c->status = status;
}

static void v_data(void *arg, const char *p, size_t n)
{
    vcall_t *c = arg;
    buf_append(&c->resp, p, n); /* past the cap: the parse fails and says so */
}

static void v_done(void *arg, upstream_err_t err, int status, const char *msg)
{
    vcall_finish(arg, err, status, msg);
}

static const upstream_cb_t v_cb = {v_head, v_data, v_done};

/* Worker loop: starts the HTTP call. */
static void vcall_start(void *arg)
{
    vcall_t *c = arg;
    const char *hdrs[3];
    int nh = 0;
    hdrs[nh++] = "Content-Type: application/json";
    if (c->v->auth_header[0]) hdrs[nh++] = c->v->auth_header;
    hdrs[nh] = NULL;
    upstream_req_t ur = {
        .url = c->v->completions_url,
        .method = "POST",
        .headers = hdrs,
        .body = c->req.data,
        .body_len = c->req.len,
        .connect_timeout_ms = c->v->s.connect_timeout_ms,
        .ttft_timeout_ms = c->v->s.ttft_timeout_ms,
        .total_timeout_ms = c->v->s.timeout_ms,
        .max_body = SPEC_REMOTE_MAX_BODY,
    };
    int rc = upstream_call_start(c->up, &ur, &v_cb, c, NULL);
    if (rc) vcall_finish(c, UPSTREAM_CONNECT, 0, sy_strerror(rc));
}

/* Slot thread: posts a verify call of ids[0..n) to the loop. Returns the call (one
 * reference is the caller's), or NULL when the loop cannot take it. */
static vcall_t *vcall_post(const spec_remote_opts_t *o, const char *cache_key, const int *ids,
                           int n)
{
    vcall_t *c = mem_calloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->refs = 2;
    c->v = o->verifier;
    c->up = o->up;
    buf_init(&c->req, SPEC_REMOTE_MAX_BODY);
    buf_init(&c->resp, SPEC_REMOTE_MAX_BODY);
    jsonw_t w;
    jsonw_init(&w, &c->req);
    jsonw_obj_begin(&w);
    jsonw_key(&w, "model");
    jsonw_str(&w, o->verifier->s.model);
    jsonw_key(&w, "prompt");
    jsonw_arr_begin(&w);
    for (int i = 0; i < n; i++)
        jsonw_int(&w, ids[i]);
    jsonw_arr_end(&w);
    jsonw_key(&w, "max_tokens");
    jsonw_int(&w, 1);
    jsonw_key(&w, "temperature");
    jsonw_int(&w, 0);
    jsonw_key(&w, "echo");
    jsonw_bool(&w, true);
    jsonw_key(&w, "logprobs");
    jsonw_int(&w, 1);
    jsonw_key(&w, "return_tokens_as_token_ids");
    jsonw_bool(&w, true);
    jsonw_key(&w, "prompt_cache_key");
    jsonw_str(&w, cache_key);
    jsonw_obj_end(&w);
    c->start_us = clock_mono_us();
    if (loop_post(o->loop, vcall_start, c)) {
        c->refs = 1;
        c->done = true;
        c->err = UPSTREAM_OTHER;
        snprintf(c->msg, sizeof c->msg, "the worker loop is stopping");
    }
    return c;
}

/* Whether the call is done (without waiting). */
static bool vcall_done(vcall_t *c)
{
    pthread_mutex_lock(&c->mu);
    bool d = c->done;
    pthread_mutex_unlock(&c->mu);
    return d;
}

/* Waits for the call until its tier's total timeout and some slack; false if it did
 * not end by then (the loop still owns its reference and frees it later). */
static bool vcall_wait(vcall_t *c, uint32_t timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    uint64_t ms = (uint64_t)timeout_ms + 2000;
    dl.tv_sec += (time_t)(ms / 1000);
    dl.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) dl.tv_sec++, dl.tv_nsec -= 1000000000L;
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    while (!c->done && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&c->cv, &c->mu, &dl);
    bool d = c->done;
    pthread_mutex_unlock(&c->mu);
    return d;
}

/* ----------------------------------------------------- token emission ---- */

/* What the callback has been given, held back while the text's tail could begin a
 * stop string (as the engine does for a plain generation). */
typedef struct emitter {
    const engine_t *e;
    const engine_gen_params_t *p;
    engine_token_cb cb;
    void *ud;
    engine_gen_result_t *res;
    buf_t text;
    size_t released;
    int prev; /* last token, for the decoder's leading-space rule */
    int n;    /* tokens emitted */
    bool over;
} emitter_t;

/* First match of a stop string in text, or -1. */
static long stop_find(const emitter_t *em)
{
    long best = -1;
    const char *t = em->text.data ? em->text.data : "";
    for (int i = 0; i < ENGINE_MAX_STOPS && em->p->stop[i]; i++) {
        size_t sl = strlen(em->p->stop[i]);
        if (!sl || sl > em->text.len) continue;
        const char *h = memmem(t, em->text.len, em->p->stop[i], sl);
        if (h && (best < 0 || h - t < best)) best = h - t;
    }
    return best;
}

/* Bytes at the end of the text that begin some stop string. */
static size_t stop_holdback(const emitter_t *em)
{
    size_t hold = 0;
    const char *t = em->text.data ? em->text.data : "";
    for (int i = 0; i < ENGINE_MAX_STOPS && em->p->stop[i]; i++) {
        size_t sl = strlen(em->p->stop[i]);
        for (size_t k = sl > 1 ? sl - 1 : 0; k > hold; k--)
            if (k <= em->text.len && !memcmp(t + em->text.len - k, em->p->stop[i], k)) {
                hold = k;
                break;
            }
    }
    return hold;
}

/* Emits token id with its logprob; false when the generation is over (end of
 * generation, a stop string, max_tokens, or the callback asked to stop). */
static bool emit_token(emitter_t *em, int id, float logprob)
{
    if (em->over) return false;
    const model_t *m = em->e->model;
    sample_info_t info = {.id = id, .logprob = logprob};
    sample_conf_add(&em->res->conf, &info);
    em->res->n_generated++;
    em->n++;
    bool eog = tokenizer_is_eog(m->tok, id);
    if (!eog) {
        char piece[TOKENIZER_MAX_PIECE + 4];
        int k = tokenizer_decode(m->tok, em->prev, id, piece, sizeof piece);
        if (k > 0 && buf_append(&em->text, piece, (size_t)k))
            buf_reset(&em->text), em->released = 0;
    }
    em->prev = id;
    long hit = stop_find(em);
    size_t upto = hit >= 0 ? (size_t)hit : em->text.len - stop_holdback(em);
    if (eog) upto = em->text.len;
    if (upto < em->released) upto = em->released;
    engine_token_t et = {.id = id,
                         .text = em->text.data ? em->text.data + em->released : "",
                         .len = upto - em->released,
                         .info = &info};
    em->released = upto;
    int stop = em->cb ? em->cb(em->ud, &et) : 0;
    if (eog)
        em->res->finish = ENGINE_FINISH_EOS;
    else if (hit >= 0)
        em->res->finish = ENGINE_FINISH_STOP;
    else if (stop)
        em->res->finish = ENGINE_FINISH_CALLBACK;
    else if (em->n >= em->p->max_tokens)
        em->res->finish = ENGINE_FINISH_LENGTH;
    else
        return true;
    em->over = true;
    return false;
}

/* ---------------------------------------------------------- rounds ---- */

/* The generation's state: the tokens kept (prompt and output) and the drafts beyond
 * them not yet verified. */
typedef struct gen {
    engine_session_t *s;
    int n_vocab, n_ctx;
    int *seq; /* (n_ctx + SPEC_REMOTE_MAX_DRAFT + 2) kept tokens, then drafts */
    int n_seq;
    int n_pend; /* drafts after seq[n_seq) */
    double draft_ms, n_draft_steps;
} gen_t;

/* The local model's greedy next token after seq[0..n) (argmax) and its logprob;
 * -1 when the context is full or the forward pass fails. */
static int local_next(gen_t *g, int n, float *lp)
{
    if (n >= g->n_ctx) return -1;
    double t0 = clock_mono_us();
    const float *lg = engine_session_prefill(g->s, g->seq, n, NULL);
    if (!lg) return -1;
    int best = 0;
    for (int i = 1; i < g->n_vocab; i++)
        if (lg[i] > lg[best]) best = i;
    if (lp) *lp = sample_logprob(lg, g->n_vocab, best, NULL);
    g->draft_ms += (clock_mono_us() - t0) / 1000.0;
    g->n_draft_steps++;
    return best;
}

/* Drafts one more token after the pending ones; false when it cannot (context end,
 * the last draft ended the generation). */
static bool draft_one(gen_t *g)
{
    int n = g->n_seq + g->n_pend;
    if (g->n_pend >= SPEC_REMOTE_MAX_DRAFT + 1 || n + 1 >= g->n_ctx) return false;
    if (g->n_pend && tokenizer_is_eog(engine_session_engine(g->s)->model->tok, g->seq[n - 1]))
        return false;
    int t = local_next(g, n, NULL);
    if (t < 0) return false;
    g->seq[n] = t;
    g->n_pend++;
    return true;
}

/* Finishes on the local model alone from the kept tokens. */
static void finish_locally(gen_t *g, emitter_t *em, spec_remote_stats_t *st)
{
    g->n_pend = 0;
    while (!em->over) {
        float lp;
        int t = local_next(g, g->n_seq, &lp);
        if (t < 0) {
            em->res->finish = ENGINE_FINISH_LENGTH;
            break;
        }
        g->seq[g->n_seq++] = t;
        st->local_tokens++;
        emit_token(em, t, lp);
    }
}

/* Says once per tier pair that the verifier cannot verify, and why. */
static void warn_unusable(const spec_remote_opts_t *o, const char *why)
{
    int d = o->drafter->idx, v = o->verifier->idx;
    if (pair_ok(d, v) && atomic_exchange(&pair_warned[d][v], true)) return;
    log_error("speculative: tier %s cannot verify the drafts of tier %s: %s; generations decode "
              "on %s alone",
              o->verifier->s.name, o->drafter->s.name, why, o->drafter->s.name);
}

const char *spec_remote_skip_reason(tier_t *d, float temperature, bool constrained, int n_choices,
                                    bool echo, int top_logprobs, bool local_only, uint64_t now_ms)
{
    tier_t *v = d->verifier;
    if (!v) return "no verifier";
    if (temperature > 0)
        return "sampled (temperature > 0): top-1 logprobs verify greedy drafts only";
    if (constrained) return "constrained decoding (response_format or tools)";
    if (n_choices > 1) return "n > 1";
    if (echo) return "echo";
    if (top_logprobs > 0) return "top_logprobs asked for";
    if (local_only && v->s.privacy == ROUTE_PRIVACY_EXTERNAL)
        return "personal data under local_only: the verifier is external";
    if (v->disabled) return "verifier disabled";
    if (tier_circuit(v, now_ms) == TIER_OPEN) return "verifier circuit open";
    return NULL;
}

/* Adds one finished generation's figures to the pair's counters and measures. */
static void pair_record(const spec_remote_opts_t *o, const spec_remote_stats_t *st, double round_ms,
                        double draft_ms, bool unusable)
{
    int d = o->drafter->idx, v = o->verifier->idx;
    if (!pair_ok(d, v)) return;
    pthread_mutex_lock(&pairs_mu);
    spec_remote_pair_t *p = &pairs[d][v];
    p->generations++;
    p->rounds += (uint64_t)st->rounds;
    p->drafted += (uint64_t)st->drafted;
    p->accepted += (uint64_t)st->accepted;
    if (st->fell_back) p->fallbacks++;
    if (unusable) p->unusable++;
    if (round_ms > 0) ewma(&p->round_ms, round_ms);
    if (draft_ms > 0) ewma(&p->draft_ms, draft_ms);
    if (st->drafted) ewma(&p->acceptance, (double)st->accepted / st->drafted);
    pthread_mutex_unlock(&pairs_mu);
}

int spec_remote_generate(engine_session_t *s, const spec_remote_opts_t *o, const int *prompt,
                         int n_prompt, const engine_gen_params_t *p, engine_token_cb cb, void *ud,
                         engine_gen_result_t *res, spec_remote_stats_t *st)
{
    const engine_t *e = engine_session_engine(s);
    memset(res, 0, sizeof *res);
    memset(st, 0, sizeof *st);
    st->draft_max = o->draft_max;
    int n_ctx = engine_session_n_ctx(s);
    if (n_prompt <= 0) return SY_EINVAL;
    if (n_prompt >= n_ctx) return SY_ECONTEXT;
    int V = e->model->cfg.n_vocab;
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= V) return SY_EINVAL;
    double t0 = clock_mono_us() / 1000.0;
    gen_t g = {.s = s, .n_vocab = V, .n_ctx = n_ctx};
    g.seq = mem_alloc(sizeof(int) * (size_t)(n_ctx + SPEC_REMOTE_MAX_DRAFT + 2));
    memcpy(g.seq, prompt, sizeof(int) * (size_t)n_prompt);
    g.n_seq = n_prompt;
    res->n_prompt = n_prompt;
    emitter_t em = {.e = e, .p = p, .cb = cb, .ud = ud, .res = res, .prev = prompt[n_prompt - 1]};
    buf_init(&em.text, 1u << 20);
    if (p->max_tokens <= 0) em.over = true, res->finish = ENGINE_FINISH_LENGTH;
    char key[64];
    snprintf(key, sizeof key, "sy-spec-%016llx",
             (unsigned long long)hash_mix(clock_mono_ns() ^ (uintptr_t)&g));
    /* Starting estimates: the pair's measurements, else a guess. */
    spec_remote_pair_t pr;
    spec_remote_pair_get(o->drafter->idx, o->verifier->idx, &pr);
    double acc = pr.acceptance > 0 ? pr.acceptance : 0.7;
    double round_ms = pr.round_ms, round_sum = 0, draft_sum = 0;
    bool unusable = false;
    res->prefill_ms = 0;
    while (!em.over) {
        /* How many to draft this round. */
        int left = p->max_tokens - em.n;
        int k = o->draft_max;
        if (!k) {
            double dms = g.n_draft_steps ? g.draft_ms / g.n_draft_steps
                                         : (pr.draft_ms > 0 ? pr.draft_ms : 1.0);
            k = spec_remote_best_k(acc, dms, round_ms > 0 ? round_ms : 20.0, SPEC_REMOTE_MAX_AUTO);
        }
        if (k > left) k = left;
        if (k > n_ctx - g.n_seq - 2) k = n_ctx - g.n_seq - 2;
        if (k < 1) {
            /* The drafting model's context is full: nothing more can be drafted, and a
             * token it made alone would not be the verifier's. The answer ends here. */
            res->finish = ENGINE_FINISH_LENGTH;
            break;
        }
        if (g.n_pend > k) g.n_pend = k;
        while (g.n_pend < k && draft_one(&g))
            ;
        k = g.n_pend;
        if (k < 1) {
            res->finish = ENGINE_FINISH_LENGTH; /* as above: no unverified token goes out */
            break;
        }
        int n_sent = g.n_seq + k;
        vcall_t *vc = vcall_post(o, key, g.seq, n_sent);
        /* While it is in flight: draft the next round, as if all k were accepted. */
        while (!vcall_done(vc) && g.n_pend < 2 * k && draft_one(&g))
            ;
        bool ended = vcall_wait(vc, o->verifier->s.timeout_ms);
        char why[200] = "";
        spec_remote_verdict_t vd;
        bool ok = false;
        if (!ended) {
            snprintf(why, sizeof why, "no answer within %u ms", o->verifier->s.timeout_ms);
        } else if (vc->err != UPSTREAM_OK) {
            snprintf(why, sizeof why, "%s%s%s", upstream_err_name(vc->err), vc->msg[0] ? ": " : "",
                     vc->msg);
        } else if (vc->status != 200) {
            snprintf(why, sizeof why, "HTTP %d", vc->status);
        } else if (spec_remote_parse(vc->resp.data ? vc->resp.data : "", vc->resp.len, g.seq,
                                     n_sent, k, &vd, why, sizeof why)) {
            unusable = true;
        } else {
            ok = true;
        }
        double rms = ended ? (vc->end_us - vc->start_us) / 1000.0 : 0;
        bool transport =
            ended && !ok && !unusable &&
            (vc->err != UPSTREAM_OK || vc->status >= 500 || vc->status == 429 || vc->status == 408);
        vcall_unref(vc);
        if (!ended || transport) tier_breaker_record(o->verifier, false, clock_mono_ms());
        if (!ok) {
            if (unusable || (ended && !transport)) {
                unusable = true;
                warn_unusable(o, why);
                snprintf(st->error, sizeof st->error, "verifier unusable: %s", why);
            } else {
                snprintf(st->error, sizeof st->error, "verifier failed: %s", why);
                st->fell_back = true;
            }
            finish_locally(&g, &em, st);
            break;
        }
        tier_breaker_record(o->verifier, true, clock_mono_ms());
        st->rounds++;
        st->last_k = k;
        st->drafted += k;
        round_ms = round_ms > 0 ? round_ms + (rms - round_ms) / 4 : rms;
        round_sum += rms;
        int j = 0;
        while (j < k && vd.top[j] == g.seq[g.n_seq + j])
            j++;
        st->accepted += j;
        acc = acc + ((double)j / k - acc) / 4;
        /* Keep d1..dj, then the verifier's token: its top at j, or the bonus. */
        int extra = g.n_pend - k; /* drafted ahead while in flight */
        int fix = j < k ? vd.top[j] : vd.next;
        float fix_lp = j < k ? vd.top_lp[j] : vd.next_lp;
        bool keep_ahead = j == k && extra > 0 && g.seq[g.n_seq + k] == vd.next;
        for (int i = 0; i < j && !em.over; i++)
            emit_token(&em, g.seq[g.n_seq + i], vd.draft_lp[i]);
        if (!em.over) emit_token(&em, fix, fix_lp);
        if (keep_ahead) {
            g.n_seq += k + 1; /* seq[n_seq + k] already is the bonus */
            g.n_pend = extra - 1;
        } else {
            g.seq[g.n_seq + j] = fix;
            g.n_seq += j + 1;
            g.n_pend = 0;
        }
    }
    draft_sum = g.n_draft_steps ? g.draft_ms / g.n_draft_steps : 0;
    pair_record(o, st, st->rounds ? round_sum / st->rounds : 0, draft_sum, unusable);
    res->decode_ms = clock_mono_us() / 1000.0 - t0;
    buf_deinit(&em.text);
    mem_free(g.seq);
    return 0;
}

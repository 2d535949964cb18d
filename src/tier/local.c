/* local.c — the in-process engine as a tier.
 *
 * The model is loaded once per tier and shared read-only. The tier's concurrency
 * limit (max_concurrency) is the number of engine slots: each slot is a thread with
 * its own engine session (KV cache, sampler). The slots' sequences are decoded by one
 * scheduler (engine_sched, continuous batching): every active request's next token
 * in one forward pass on the tier's threads, new prompts folded in. Output flows back to the worker
 * loop through a per-call buffer and a single pending loop_post at a time: no allocation per token.
 *
 * The answer is OpenAI-shaped (chat.completion / chat.completion.chunk /
 * text_completion, usage, logprobs), so exec treats this tier exactly like an HTTP
 * upstream.
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
#include "base/jsonw.h"
#include "base/log.h"
#include "base/mem.h"
#include "engine/engine.h"
#include "engine/jsonschema.h"

#define LOCAL_MAX_PROMPT_BYTES   (8u << 20)
#define LOCAL_MAX_OUT            (16u << 20)
#define LOCAL_DEFAULT_MAX_TOKENS 256

struct local_call {
    struct local_call *next; /* job queue link */
    tier_t *t;
    loop_t *loop;
    const upstream_cb_t *cb;
    void *arg;
    /* request, owned copies */
    engine_prompt_t *prompt; /* rendered prompt: text and the request's spans of it */
    bool completions, stream, logprobs, echo;
    int top_logprobs;
    engine_gen_params_t gp;
    bool max_tokens_zero; /* echo with max_tokens 0: score only */
    char *stops[ENGINE_MAX_STOPS];
    grammar_t *grammar; /* response_format or tools, NULL: free text */
    char *grammar_err;  /* why response_format / tools cannot be served (answered 400) */
    bool tools;         /* grammar is a tool call (tool_choice auto, required or named) */
    bool as_call;       /* the answer is a tool call (decided at the first token) */
    bool call_head;     /* stream: the call's id and name went out */
    size_t args_at;     /* bytes of text before the call's arguments */
    size_t args_sent;   /* stream: bytes of text up to which arguments went out */
    char call_id[40];
    char model_name[128];
    char id[48];
    int64_t created;
    /* output, guarded by mu */
    pthread_mutex_t mu;
    buf_t out;
    bool posted, finished, head_sent;
    int status;
    atomic_bool canceled;
    /* engine thread state */
    buf_t json;                   /* event assembly */
    buf_t text;                   /* generated text (non-stream) */
    buf_t lp;                     /* logprobs array entries (non-stream chat) */
    buf_t ltok, lval, ltop, loff; /* legacy completions logprobs: tokens, values, tops, offsets */
    size_t text_off;              /* bytes of completion text so far (text_offset) */
    int prev_id;
    int n_prompt, n_gen;
    engine_finish_t finish;
    /* n > 1: choices generated one after another, each with its own seed. */
    int n_choices;  /* the request's n (1..128) */
    int choice;     /* index of the choice being generated */
    int choice_gen; /* tokens of that choice */
    buf_t choices;  /* non-stream: the finished choices' JSON objects, comma-separated */
    double prefill_ms, decode_ms, sum_logprob, sum_entropy; /* over all choices */
    int n_conf;
};

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
} local_backend_t;

/* ------------------------------------------------------- loop side ---- */

static void call_free(local_call_t *c)
{
    if (c->prompt) engine_prompt_deinit(c->prompt);
    mem_free(c->prompt);
    grammar_free(c->grammar);
    mem_free(c->grammar_err);
    for (int i = 0; i < ENGINE_MAX_STOPS; i++)
        mem_free(c->stops[i]);
    buf_deinit(&c->out);
    buf_deinit(&c->json);
    buf_deinit(&c->text);
    buf_deinit(&c->lp);
    buf_deinit(&c->ltok);
    buf_deinit(&c->lval);
    buf_deinit(&c->ltop);
    buf_deinit(&c->loff);
    buf_deinit(&c->choices);
    pthread_mutex_destroy(&c->mu);
    mem_free(c);
}

/* Runs on the worker loop: hands buffered output to the callbacks; on the last
 * pump after the engine finished, reports done and frees the call. */
static void pump(void *arg)
{
    local_call_t *c = arg;
    buf_t chunk;
    pthread_mutex_lock(&c->mu);
    chunk = c->out;
    buf_init(&c->out, LOCAL_MAX_OUT);
    bool finished = c->finished;
    c->posted = false;
    int status = c->status;
    pthread_mutex_unlock(&c->mu);
    bool canceled = atomic_load(&c->canceled);
    if (!canceled) {
        if (!c->head_sent && (chunk.len || finished)) {
            c->head_sent = true;
            c->cb->on_head(c->arg, status);
        }
        if (chunk.len) c->cb->on_data(c->arg, chunk.data, chunk.len);
        /* on_data may have cancelled the call (a continuation cut it): no done then. */
        if (finished && !atomic_load(&c->canceled))
            c->cb->on_done(c->arg, UPSTREAM_OK, status, NULL);
    }
    buf_deinit(&chunk);
    if (finished) call_free(c);
}

/* Engine thread: queues bytes for the loop. */
static void emit(local_call_t *c, const char *p, size_t n, bool finished)
{
    pthread_mutex_lock(&c->mu);
    if (n && buf_append(&c->out, p, n)) c->status = 500; /* cap: should not happen */
    if (finished) c->finished = true;
    bool post = !c->posted;
    c->posted = true;
    pthread_mutex_unlock(&c->mu);
    if (post && loop_post(c->loop, pump, c)) log_error("local tier: cannot wake the worker loop");
}

/* ------------------------------------------------- answer building ---- */

static void json_head(local_call_t *c, jsonw_t *w, bool chunk)
{
    jsonw_obj_begin(w);
    jsonw_key(w, "id");
    jsonw_str(w, c->id);
    jsonw_key(w, "object");
    jsonw_str(w, c->completions ? "text_completion"
                 : chunk        ? "chat.completion.chunk"
                                : "chat.completion");
    jsonw_key(w, "created");
    jsonw_int(w, c->created);
    jsonw_key(w, "model");
    jsonw_str(w, c->model_name);
}

static const char *finish_name(engine_finish_t f)
{
    return f == ENGINE_FINISH_LENGTH ? "length" : "stop";
}

/* ------------------------------------------------------- tool calls ---- */

/* Where the arguments of the call in text begin (after {"name":"X","arguments":, the
 * grammar's literal prefix, maybe one whitespace byte ahead), with the name's span;
 * 0 while the prefix is not complete. */
static size_t call_args_at(const char *text, size_t len, const char **name, size_t *nlen)
{
    static const char head[] = "{\"name\":\"", mid[] = "\",\"arguments\":";
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r'))
        i++;
    if (len - i < sizeof head - 1 || memcmp(text + i, head, sizeof head - 1)) return 0;
    i += sizeof head - 1;
    const char *q = memchr(text + i, '"', len - i);
    if (!q || (size_t)(text + len - q) < sizeof mid - 1 || memcmp(q, mid, sizeof mid - 1)) return 0;
    *name = text + i;
    *nlen = (size_t)(q - (text + i));
    return (size_t)(q - text) + sizeof mid - 1;
}

/* One stream chunk of the call: the head (index, id, type, name, empty arguments) or
 * an arguments fragment. */
static void stream_call_chunk(local_call_t *c, const char *name, size_t nlen, const char *args,
                              size_t alen)
{
    buf_reset(&c->json);
    buf_puts(&c->json, "data: ");
    jsonw_t w;
    jsonw_init(&w, &c->json);
    json_head(c, &w, true);
    jsonw_key(&w, "choices");
    jsonw_arr_begin(&w);
    jsonw_obj_begin(&w);
    jsonw_key(&w, "index");
    jsonw_int(&w, c->choice);
    jsonw_key(&w, "delta");
    jsonw_obj_begin(&w);
    if (name) {
        jsonw_key(&w, "role");
        jsonw_str(&w, "assistant");
        jsonw_key(&w, "content");
        jsonw_null(&w);
    }
    jsonw_key(&w, "tool_calls");
    jsonw_arr_begin(&w);
    jsonw_obj_begin(&w);
    jsonw_key(&w, "index");
    jsonw_int(&w, 0);
    if (name) {
        jsonw_key(&w, "id");
        jsonw_str(&w, c->call_id);
        jsonw_key(&w, "type");
        jsonw_str(&w, "function");
    }
    jsonw_key(&w, "function");
    jsonw_obj_begin(&w);
    if (name) {
        jsonw_key(&w, "name");
        jsonw_strn(&w, name, nlen);
    }
    jsonw_key(&w, "arguments");
    jsonw_strn(&w, args, alen);
    jsonw_obj_end(&w);
    jsonw_obj_end(&w);
    jsonw_arr_end(&w);
    jsonw_obj_end(&w);
    jsonw_key(&w, "logprobs");
    jsonw_null(&w);
    jsonw_key(&w, "finish_reason");
    jsonw_null(&w);
    jsonw_obj_end(&w);
    jsonw_arr_end(&w);
    jsonw_obj_end(&w);
    buf_puts(&c->json, "\n\n");
    emit(c, c->json.data, c->json.len, false);
}

/* Stream: sends what is new of the call. The last byte is held back: at the end it is
 * the call object's closing brace, not part of the arguments. */
static void stream_call(local_call_t *c)
{
    const char *text = c->text.data ? c->text.data : "";
    if (!c->call_head) {
        const char *name;
        size_t nlen;
        size_t at = call_args_at(text, c->text.len, &name, &nlen);
        if (!at) return;
        c->call_head = true;
        c->args_at = c->args_sent = at;
        stream_call_chunk(c, name, nlen, "", 0);
    }
    if (c->text.len > c->args_sent + 1) {
        size_t from = c->args_sent;
        c->args_sent = c->text.len - 1;
        stream_call_chunk(c, NULL, 0, text + from, c->args_sent - from);
    }
}

/* Non-stream: the message's tool_calls (one call) from the decoded text. */
static void write_tool_calls(local_call_t *c, jsonw_t *w)
{
    const char *text = c->text.data ? c->text.data : "";
    const char *name = "";
    size_t nlen = 0;
    size_t at = call_args_at(text, c->text.len, &name, &nlen);
    jsonw_key(w, "tool_calls");
    jsonw_arr_begin(w);
    jsonw_obj_begin(w);
    jsonw_key(w, "id");
    jsonw_str(w, c->call_id);
    jsonw_key(w, "type");
    jsonw_str(w, "function");
    jsonw_key(w, "function");
    jsonw_obj_begin(w);
    jsonw_key(w, "name");
    jsonw_strn(w, name, nlen);
    jsonw_key(w, "arguments");
    jsonw_strn(w, text + at, c->text.len - at - 1); /* the call's closing brace left out */
    jsonw_obj_end(w);
    jsonw_obj_end(w);
    jsonw_arr_end(w);
}

/* One token's logprob entry in OpenAI's chat form. */
static void write_lp_entry(local_call_t *c, const engine_t *e, jsonw_t *w,
                           const engine_token_t *tok)
{
    char piece[256];
    int n = engine_token_text(e, -1, tok->id, piece, sizeof piece);
    if (n < 0) n = 0;
    jsonw_obj_begin(w);
    jsonw_key(w, "token");
    jsonw_strn(w, piece, (size_t)n);
    jsonw_key(w, "logprob");
    jsonw_double(w, tok->info->logprob);
    jsonw_key(w, "bytes");
    jsonw_arr_begin(w);
    for (int i = 0; i < n; i++)
        jsonw_int(w, (unsigned char)piece[i]);
    jsonw_arr_end(w);
    jsonw_key(w, "top_logprobs");
    jsonw_arr_begin(w);
    for (int a = 0; a < tok->info->n_alts && a < c->top_logprobs; a++) {
        int m = engine_token_text(e, -1, tok->info->alts[a].id, piece, sizeof piece);
        if (m < 0) m = 0;
        jsonw_obj_begin(w);
        jsonw_key(w, "token");
        jsonw_strn(w, piece, (size_t)m);
        jsonw_key(w, "logprob");
        jsonw_double(w, tok->info->alts[a].logprob);
        jsonw_obj_end(w);
    }
    jsonw_arr_end(w);
    jsonw_obj_end(w);
}

/* One token in the legacy completions form: parallel arrays of tokens, logprobs
 * (null for the first prompt token, which has no context), top alternatives as
 * {token: logprob} objects, and byte offsets into the text. */
static void legacy_add(local_call_t *c, const engine_t *e, int id, const char *text, size_t len,
                       bool has_lp, float logprob, const sample_alt_t *alts, int n_alts)
{
    char piece[256];
    jsonw_t w;
    const char *sep = c->ltok.len ? "," : "";
    buf_puts(&c->ltok, sep);
    jsonw_init(&w, &c->ltok);
    (void)id;
    (void)e;
    jsonw_strn(&w, text, len);
    buf_puts(&c->lval, sep);
    jsonw_init(&w, &c->lval);
    if (has_lp)
        jsonw_double(&w, logprob);
    else
        jsonw_null(&w);
    buf_puts(&c->ltop, sep);
    jsonw_init(&w, &c->ltop);
    if (!has_lp || n_alts == 0) {
        jsonw_null(&w);
    } else {
        jsonw_obj_begin(&w);
        for (int a = 0; a < n_alts && a < c->top_logprobs; a++) {
            int m = engine_token_text(e, -1, alts[a].id, piece, sizeof piece);
            if (m < 0) m = 0;
            piece[m] = 0;
            jsonw_key(&w, piece);
            jsonw_double(&w, alts[a].logprob);
        }
        jsonw_obj_end(&w);
    }
    buf_puts(&c->loff, sep);
    buf_printf(&c->loff, "%zu", c->text_off);
    c->text_off += len;
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
    if (c->as_call) {
        buf_append(&c->text, tok->text, tok->len);
        if (c->stream) stream_call(c);
        return 0;
    }
    if (!c->stream) {
        buf_append(&c->text, tok->text, tok->len);
        if (c->logprobs && c->completions) {
            legacy_add(c, g->e, tok->id, tok->text, tok->len, true, tok->info->logprob,
                       tok->info->alts, tok->info->n_alts);
        } else if (c->logprobs) {
            if (c->lp.len) buf_putc(&c->lp, ',');
            jsonw_t w;
            jsonw_init(&w, &c->lp);
            write_lp_entry(c, g->e, &w, tok);
        }
        return 0;
    }
    if (tok->len == 0 && !c->logprobs) return 0;
    buf_reset(&c->json);
    buf_puts(&c->json, "data: ");
    jsonw_t w;
    jsonw_init(&w, &c->json);
    json_head(c, &w, true);
    jsonw_key(&w, "choices");
    jsonw_arr_begin(&w);
    jsonw_obj_begin(&w);
    jsonw_key(&w, "index");
    jsonw_int(&w, c->choice);
    if (c->completions) {
        jsonw_key(&w, "text");
        jsonw_strn(&w, tok->text, tok->len);
    } else {
        jsonw_key(&w, "delta");
        jsonw_obj_begin(&w);
        if (c->choice_gen == 1) {
            jsonw_key(&w, "role");
            jsonw_str(&w, "assistant");
        }
        jsonw_key(&w, "content");
        jsonw_strn(&w, tok->text, tok->len);
        jsonw_obj_end(&w);
    }
    jsonw_key(&w, "logprobs");
    if (c->logprobs && !c->completions) {
        jsonw_obj_begin(&w);
        jsonw_key(&w, "content");
        jsonw_arr_begin(&w);
        write_lp_entry(c, g->e, &w, tok);
        jsonw_arr_end(&w);
        jsonw_obj_end(&w);
    } else {
        jsonw_null(&w);
    }
    jsonw_key(&w, "finish_reason");
    jsonw_null(&w);
    jsonw_obj_end(&w);
    jsonw_arr_end(&w);
    jsonw_obj_end(&w);
    buf_puts(&c->json, "\n\n");
    emit(c, c->json.data, c->json.len, false);
    return 0;
}

static void write_usage(local_call_t *c, jsonw_t *w)
{
    jsonw_key(w, "usage");
    jsonw_obj_begin(w);
    jsonw_key(w, "prompt_tokens");
    jsonw_int(w, c->n_prompt);
    jsonw_key(w, "completion_tokens");
    jsonw_int(w, c->n_gen);
    jsonw_key(w, "total_tokens");
    jsonw_int(w, c->n_prompt + c->n_gen);
    jsonw_obj_end(w);
}

/* One choice is done. Streamed: its closing chunk goes out. Else its JSON object is
 * added to c->choices. Either way the per-choice buffers are emptied for the next. */
static void finish_choice(local_call_t *c, const engine_gen_result_t *res)
{
    c->prefill_ms += res->prefill_ms;
    c->decode_ms += res->decode_ms;
    c->sum_logprob += res->conf.sum_logprob;
    c->sum_entropy += res->conf.sum_entropy;
    c->n_conf += res->conf.n;
    /* A call cut short (max_tokens below its close, a stop string) is answered as the
     * text it is, finish_reason length/stop; streamed, its fragments already went out. */
    bool call = c->as_call && res->complete &&
                call_args_at(c->text.data ? c->text.data : "", c->text.len, &(const char *){NULL},
                             &(size_t){0});
    jsonw_t w;
    if (c->stream) {
        buf_reset(&c->json);
        buf_puts(&c->json, "data: ");
        jsonw_init(&w, &c->json);
        json_head(c, &w, true);
        jsonw_key(&w, "choices");
        jsonw_arr_begin(&w);
        jsonw_obj_begin(&w);
        jsonw_key(&w, "index");
        jsonw_int(&w, c->choice);
        if (c->completions) {
            jsonw_key(&w, "text");
            jsonw_str(&w, "");
        } else {
            jsonw_key(&w, "delta");
            jsonw_obj_begin(&w);
            jsonw_obj_end(&w);
        }
        jsonw_key(&w, "finish_reason");
        jsonw_str(&w, call ? "tool_calls" : finish_name(res->finish));
        jsonw_obj_end(&w);
        jsonw_arr_end(&w);
        jsonw_obj_end(&w);
        buf_puts(&c->json, "\n\n");
        emit(c, c->json.data, c->json.len, false);
        return;
    }
    if (c->choices.len) buf_putc(&c->choices, ',');
    jsonw_init(&w, &c->choices);
    jsonw_obj_begin(&w);
    jsonw_key(&w, "index");
    jsonw_int(&w, c->choice);
    if (c->completions) {
        jsonw_key(&w, "text");
        jsonw_strn(&w, c->text.data ? c->text.data : "", c->text.len);
    } else {
        jsonw_key(&w, "message");
        jsonw_obj_begin(&w);
        jsonw_key(&w, "role");
        jsonw_str(&w, "assistant");
        jsonw_key(&w, "content");
        if (call)
            jsonw_null(&w);
        else
            jsonw_strn(&w, c->text.data ? c->text.data : "", c->text.len);
        if (call) write_tool_calls(c, &w);
        jsonw_obj_end(&w);
    }
    jsonw_key(&w, "logprobs");
    if (c->logprobs && !c->completions) {
        jsonw_obj_begin(&w);
        jsonw_key(&w, "content");
        jsonw_raw(&w, "[", 1);
        buf_append(&c->choices, c->lp.data ? c->lp.data : "", c->lp.len);
        buf_puts(&c->choices, "]");
        jsonw_obj_end(&w);
    } else if (c->logprobs) {
        const buf_t *arrs[4] = {&c->ltok, &c->lval, &c->ltop, &c->loff};
        const char *keys[4] = {"tokens", "token_logprobs", "top_logprobs", "text_offset"};
        jsonw_obj_begin(&w);
        for (int k = 0; k < 4; k++) {
            jsonw_key(&w, keys[k]);
            jsonw_raw(&w, "[", 1);
            buf_append(&c->choices, arrs[k]->data ? arrs[k]->data : "", arrs[k]->len);
            buf_puts(&c->choices, "]");
        }
        jsonw_obj_end(&w);
    } else {
        jsonw_null(&w);
    }
    jsonw_key(&w, "finish_reason");
    jsonw_str(&w, call ? "tool_calls" : finish_name(res->finish));
    jsonw_obj_end(&w);
    buf_reset(&c->text);
    buf_reset(&c->lp);
    buf_reset(&c->ltok);
    buf_reset(&c->lval);
    buf_reset(&c->ltop);
    buf_reset(&c->loff);
    c->text_off = 0;
}

/* After the last choice: the stream's usage chunk and [DONE], or the whole answer
 * (usage summed over the choices). */
static void finish_answer(local_call_t *c)
{
    buf_reset(&c->json);
    jsonw_t w;
    if (c->stream) {
        buf_puts(&c->json, "data: ");
        jsonw_init(&w, &c->json);
        json_head(c, &w, true);
        jsonw_key(&w, "choices");
        jsonw_arr_begin(&w);
        jsonw_arr_end(&w);
        write_usage(c, &w);
        jsonw_obj_end(&w);
        buf_puts(&c->json, "\n\ndata: [DONE]\n\n");
        emit(c, c->json.data, c->json.len, true);
        return;
    }
    jsonw_init(&w, &c->json);
    json_head(c, &w, false);
    jsonw_key(&w, "choices");
    jsonw_raw(&w, "[", 1);
    buf_append(&c->json, c->choices.data ? c->choices.data : "", c->choices.len);
    buf_puts(&c->json, "]");
    write_usage(c, &w);
    jsonw_key(&w, "switchyard_engine");
    jsonw_obj_begin(&w);
    jsonw_key(&w, "prefill_ms");
    jsonw_double(&w, c->prefill_ms);
    jsonw_key(&w, "decode_ms");
    jsonw_double(&w, c->decode_ms);
    jsonw_key(&w, "mean_logprob");
    jsonw_double(&w, c->n_conf ? c->sum_logprob / c->n_conf : 0);
    jsonw_key(&w, "mean_entropy");
    jsonw_double(&w, c->n_conf ? c->sum_entropy / c->n_conf : 0);
    jsonw_obj_end(&w);
    jsonw_obj_end(&w);
    emit(c, c->json.data, c->json.len, true);
}

static void fail_call(local_call_t *c, int status, const char *type, const char *msg)
{
    buf_reset(&c->json);
    jsonw_t w;
    jsonw_init(&w, &c->json);
    jsonw_obj_begin(&w);
    jsonw_key(&w, "error");
    jsonw_obj_begin(&w);
    jsonw_key(&w, "message");
    jsonw_str(&w, msg);
    jsonw_key(&w, "type");
    jsonw_str(&w, type);
    jsonw_obj_end(&w);
    jsonw_obj_end(&w);
    pthread_mutex_lock(&c->mu);
    c->status = status;
    pthread_mutex_unlock(&c->mu);
    emit(c, c->json.data, c->json.len, true);
}

/* ---------------------------------------------------- engine slots ---- */

/* echo: the prompt's own tokens and their logprobs under the model (teacher-forced,
 * what a speculative verifier needs), ahead of any generated text. */
static bool echo_prompt(local_backend_t *b, engine_session_t *s, local_call_t *c, const int *ids,
                        int n)
{
    float *lps = mem_alloc(sizeof(float) * (size_t)(n > 1 ? n : 1));
    int *am = mem_alloc(sizeof(int) * (size_t)(n > 1 ? n : 1));
    int rc = n > 1 ? engine_score(s, ids, 1, ids + 1, n - 1, lps, am) : 0;
    if (!rc) {
        int prev = -1;
        for (int i = 0; i < n; i++) {
            char piece[256];
            int m = engine_token_text(b->e, prev, ids[i], piece, sizeof piece);
            prev = ids[i];
            if (m < 0) m = 0;
            if (i == 0 && m == 0) continue; /* BOS has no text */
            buf_append(&c->text, piece, (size_t)m);
            if (c->logprobs) {
                sample_alt_t alt = {i > 0 ? am[i - 1] : 0, 0};
                legacy_add(c, b->e, ids[i], piece, (size_t)m, i > 0, i > 0 ? lps[i - 1] : 0, &alt,
                           0);
            }
        }
    }
    mem_free(lps);
    mem_free(am);
    return rc == 0;
}

static void run_call(local_backend_t *b, engine_session_t *s, local_call_t *c)
{
    if (atomic_load(&c->canceled)) {
        emit(c, NULL, 0, true);
        return;
    }
    if (c->grammar_err) {
        fail_call(c, 400, "invalid_request_error", c->grammar_err);
        return;
    }
    int n_ctx = engine_session_n_ctx(s);
    int *ids = mem_alloc(sizeof(int) * (size_t)(n_ctx + 1));
    int n = engine_prompt_tokenize(b->e, c->prompt, true, ids, n_ctx + 1);
    if (n < 0 || n >= n_ctx) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "the prompt is %s tokens, more than the local model's context of %d",
                 n < 0 ? "too many" : "too many", n_ctx);
        if (n >= 0)
            snprintf(msg, sizeof msg, "the prompt is %d tokens; the local model's context is %d", n,
                     n_ctx);
        mem_free(ids);
        fail_call(c, 400, "context_length_exceeded", msg);
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
    gen_ctx_t g = {c, b->e};
    uint64_t seed = c->gp.sample.seed;
    for (c->choice = 0; c->choice < c->n_choices; c->choice++) {
        engine_gen_result_t res;
        memset(&res, 0, sizeof res);
        if (c->echo && !echo_prompt(b, s, c, ids, n)) {
            mem_free(ids);
            fail_call(c, 500, "engine_error", "scoring the prompt failed");
            return;
        }
        /* Distinct seeds: the choices are independent samples of one request. */
        c->gp.sample.seed = seed + (uint64_t)c->choice * 0x9e3779b97f4a7c15ull;
        c->choice_gen = 0;
        /* Each choice decides afresh whether it is a tool call, with its own call id. */
        c->as_call = false;
        c->call_head = false;
        c->args_at = c->args_sent = 0;
        if (c->choice && c->tools)
            snprintf(c->call_id, sizeof c->call_id, "call_%016llx%08x",
                     (unsigned long long)hash_mix(clock_mono_ns() ^ (uintptr_t)c ^ 0x7001),
                     (unsigned)c->choice);
        int rc = 0;
        if (c->echo && c->max_tokens_zero) {
            res.finish = ENGINE_FINISH_LENGTH;
        } else {
            rc = engine_sched_generate(b->sched, s, ids, n, &c->gp, on_token, &g, &res);
        }
        if (rc) {
            mem_free(ids);
            fail_call(c, rc == SY_ECONTEXT ? 400 : 500, "engine_error", sy_strerror(rc));
            return;
        }
        if (atomic_load(&c->canceled)) break;
        finish_choice(c, &res);
    }
    mem_free(ids);
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
        run_call(b, s, c);
    }
    log_thread_cleanup();
    return NULL;
}

int local_tier_open(tier_t *t, char *err, size_t errlen)
{
    engine_t *e = NULL;
    int rc = engine_load(t->s.model, t->s.tokenizer, &e, err, errlen);
    if (rc) return rc;
    local_backend_t *b = mem_calloc(1, sizeof *b);
    b->e = e;
    b->n_slots = (int)t->s.max_concurrency;
    if (b->n_slots > 64) b->n_slots = 64;
    b->threads = mem_calloc((size_t)b->n_slots, sizeof(pthread_t));
    b->sessions = mem_calloc((size_t)b->n_slots, sizeof(engine_session_t *));
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    /* the sessions hold the slots' caches; the scheduler's pool does the work */
    engine_session_opts_t so = {(int)t->s.engine_context, 1, 0};
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
        engine_free(e);
        return SY_EINVAL;
    }
    for (int i = 0; i < b->n_slots; i++) {
        b->sessions[i] = engine_session_new(e, &so);
        slot_arg_t *sa = mem_alloc(sizeof *sa);
        *sa = (slot_arg_t){b, i};
        pthread_create(&b->threads[i], NULL, slot_main, sa);
    }
    if (!t->s.engine_context) t->s.engine_context = (uint32_t)engine_session_n_ctx(b->sessions[0]);
    t->s.logprobs = true;
    /* The tier's limit is the slot count: never more calls in flight than slots. */
    t->s.max_concurrency = (uint32_t)b->n_slots;
    t->backend = b;
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
    mem_free(b->threads);
    mem_free(b->sessions);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    engine_free(b->e);
    mem_free(b);
    t->backend = NULL;
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
            snprintf(c->call_id, sizeof c->call_id, "call_%016llx%08x",
                     (unsigned long long)hash_mix(clock_mono_ns() ^ (uintptr_t)c ^ 0x7001),
                     (unsigned)(hash_mix((uintptr_t)c) & 0xffffffffu));
        }
    }
    if (err[0] && !c->grammar_err) c->grammar_err = mem_strdup(err);
}

static double num(cJSON *req, const char *k, double def)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(req, k);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

int local_call_start(tier_t *t, loop_t *loop, cJSON *req, bool stream, bool completions,
                     bool logprobs, const upstream_cb_t *cb, void *arg, local_call_t **out)
{
    local_backend_t *b = t->backend;
    if (!b) return SY_EUNAVAILABLE;
    local_call_t *c = mem_calloc(1, sizeof *c);
    int rc = render_prompt(b, req, completions, &c->prompt);
    if (rc) {
        mem_free(c);
        return rc;
    }
    c->t = t;
    c->loop = loop;
    c->cb = cb;
    c->arg = arg;
    c->stream = stream;
    c->completions = completions;
    cJSON *lp = cJSON_GetObjectItemCaseSensitive(req, "logprobs");
    c->logprobs = logprobs || cJSON_IsTrue(lp);
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
    snprintf(c->model_name, sizeof c->model_name, "%s", t->s.name);
    snprintf(c->id, sizeof c->id, "%s-local-%016llx", completions ? "cmpl" : "chatcmpl",
             (unsigned long long)hash_mix(clock_mono_ns() ^ (uintptr_t)c));
    c->created = clock_wall_ms() / 1000;
    c->status = 200;
    pthread_mutex_init(&c->mu, NULL);
    buf_init(&c->out, LOCAL_MAX_OUT);
    buf_init(&c->json, LOCAL_MAX_OUT);
    buf_init(&c->text, LOCAL_MAX_OUT);
    buf_init(&c->lp, LOCAL_MAX_OUT);
    buf_init(&c->ltok, LOCAL_MAX_OUT);
    buf_init(&c->lval, LOCAL_MAX_OUT);
    buf_init(&c->ltop, LOCAL_MAX_OUT);
    buf_init(&c->loff, LOCAL_MAX_OUT);
    buf_init(&c->choices, LOCAL_MAX_OUT);
    double nc = num(req, "n", 1);
    c->n_choices = nc >= 1 && nc <= 128 ? (int)nc : 1;
    c->echo = completions && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "echo"));
    c->logprobs = c->logprobs || (completions && cJSON_IsNumber(lp));
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

void local_call_cancel(local_call_t *c)
{
    /* The engine stops at its next token; the last pump frees the call. */
    atomic_store(&c->canceled, true);
}

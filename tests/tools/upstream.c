/* upstream.c — a stand-in OpenAI-compatible upstream for tests and benchmarks.
 *
 * Serves POST /v1/chat/completions and /v1/completions (streamed or not, with usage,
 * optional logprobs and n choices), POST /v1/embeddings (a vector per input, derived
 * from a hash of its text), GET /v1/models and GET /healthz on switchyard's own HTTP
 * server. The answer is deterministic: "[<name>] " followed by the last user message
 * (or the prompt), so a test can tell which upstream answered; with n > 1 every
 * choice holds that text. A failure's error message can be set ("message"; "@prompt"
 * echoes the request's last text, as some servers do).
 *
 * Behaviour is set three ways, later ones winning: command-line defaults, POST
 * /_control (JSON, for black-box tests that cannot add headers), and per-request
 * X-Upstream-* headers. Everything received is recorded: GET /_received returns
 * {"count":N,"requests":[{"path","headers","body"}]}, POST /_reset clears it.
 */
#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "base/mem.h"
#include "net/http.h"
#include "net/upstream.h"

#define MAX_RECORDED 10000
#define MAX_CHUNKS   4096

typedef enum { FAIL_NONE, FAIL_500, FAIL_429, FAIL_STALL, FAIL_CUT, FAIL_GARBAGE } fail_t;

typedef struct behaviour {
    int latency_ms; /* delay before a non-streamed answer */
    int ttft_ms;    /* delay before the first streamed chunk */
    int chunk_ms;   /* delay between streamed chunks */
    int chunks;     /* streamed content chunks */
    fail_t fail;
    int fail_count;    /* requests left to fail; -1 = every request */
    double logprob;    /* value of every token logprob */
    bool down;         /* answer 503 to everything but /_control */
    char message[200]; /* error message of a 500/429 ("" = the default; "@prompt") */
} behaviour_t;

typedef struct record {
    char *path;
    char *headers; /* JSON object text */
    char *body;
} record_t;

static struct {
    pthread_mutex_t mu;
    behaviour_t b; /* guarded by mu */
    record_t rec[MAX_RECORDED];
    size_t n_rec, total;
    const char *name;
    const char *model;
    bool quiet;
    bool no_record; /* count requests only (benchmarks) */
    http_server_t *srv;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER};

typedef struct job {
    http_res_t *res;
    loop_t *loop;
    uint64_t timer;
    behaviour_t b;
    bool stream, chat, want_logprobs, include_usage;
    char *answer; /* owned */
    size_t alen;
    size_t cut[MAX_CHUNKS + 1]; /* chunk boundaries in answer */
    int n_chunks, next;
    int prompt_tokens;
    int n; /* choices */
    char model[128];
    char id[48];
    long created;
} job_t;

/* ---------------------------------------------------------------- helpers */

static fail_t fail_parse(const char *s, size_t n)
{
    if (n == 3 && !memcmp(s, "500", 3)) return FAIL_500;
    if (n == 3 && !memcmp(s, "429", 3)) return FAIL_429;
    if (n == 5 && !memcmp(s, "stall", 5)) return FAIL_STALL;
    if (n == 3 && !memcmp(s, "cut", 3)) return FAIL_CUT;
    if (n == 7 && !memcmp(s, "garbage", 7)) return FAIL_GARBAGE;
    return FAIL_NONE;
}

static int hdr_int(const http_req_t *req, const char *name, int dflt)
{
    size_t n;
    const char *v = http_req_header(req, name, &n);
    if (!v || n == 0 || n > 15) return dflt;
    char tmp[16];
    memcpy(tmp, v, n);
    tmp[n] = 0;
    return atoi(tmp);
}

static void send_json(http_res_t *res, int status, buf_t *b)
{
    http_res_send(res, status, "application/json", b->data, b->len);
}

static void send_error(http_res_t *res, int status, const char *type, const char *msg)
{
    buf_t b;
    buf_init(&b, 1 << 20);
    jsonw_t w;
    jsonw_init(&w, &b);
    jsonw_obj_begin(&w);
    jsonw_key(&w, "error");
    jsonw_obj_begin(&w);
    jsonw_key(&w, "message");
    jsonw_str(&w, msg);
    jsonw_key(&w, "type");
    jsonw_str(&w, type);
    jsonw_key(&w, "param");
    jsonw_null(&w);
    jsonw_key(&w, "code");
    jsonw_null(&w);
    jsonw_obj_end(&w);
    jsonw_obj_end(&w);
    if (status == 429) http_res_header(res, "Retry-After", "1");
    http_res_send(res, status, "application/json", b.data, b.len);
    buf_deinit(&b);
}

/* Records one request (thread-safe); the oldest are kept, later ones only counted. */
static void record(const http_req_t *req)
{
    pthread_mutex_lock(&g.mu);
    bool full = g.no_record || g.n_rec >= MAX_RECORDED;
    if (full) g.total++;
    pthread_mutex_unlock(&g.mu);
    if (full) return;
    buf_t h;
    buf_init(&h, 1 << 20);
    jsonw_t w;
    jsonw_init(&w, &h);
    jsonw_obj_begin(&w);
    for (size_t i = 0; i < req->n_headers; i++) {
        char name[256];
        size_t n = req->headers[i].name_len < 255 ? req->headers[i].name_len : 255;
        for (size_t k = 0; k < n; k++) {
            char ch = req->headers[i].name[k];
            name[k] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
        }
        name[n] = 0;
        jsonw_key(&w, name);
        jsonw_strn(&w, req->headers[i].value, req->headers[i].value_len);
    }
    jsonw_obj_end(&w);
    pthread_mutex_lock(&g.mu);
    g.total++;
    if (g.n_rec < MAX_RECORDED) {
        record_t *r = &g.rec[g.n_rec++];
        r->path = mem_strdup(req->path);
        r->headers = buf_steal(&h);
        r->body = mem_strndup(req->body, req->body_len);
    }
    pthread_mutex_unlock(&g.mu);
    buf_deinit(&h);
}

static void records_clear(void)
{
    for (size_t i = 0; i < g.n_rec; i++) {
        mem_free(g.rec[i].path);
        mem_free(g.rec[i].headers);
        mem_free(g.rec[i].body);
    }
    g.n_rec = 0;
    g.total = 0;
}

/* ---------------------------------------------------------------- answers */

/* Text of a message content: a string, or the "text" parts of an array. */
static void content_text(const cJSON *content, buf_t *out)
{
    if (cJSON_IsString(content)) {
        buf_puts(out, content->valuestring);
    } else if (cJSON_IsArray(content)) {
        const cJSON *part;
        cJSON_ArrayForEach(part, content)
        {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
            if (cJSON_IsString(t)) buf_puts(out, t->valuestring);
        }
    }
}

/* Splits the answer into n chunks on UTF-8 character boundaries. */
static void job_split(job_t *j, int n)
{
    if (n < 1) n = 1;
    if (n > MAX_CHUNKS) n = MAX_CHUNKS;
    j->cut[0] = 0;
    int k = 1;
    for (int i = 1; i < n; i++) {
        size_t at = j->alen * (size_t)i / (size_t)n;
        while (at < j->alen && ((unsigned char)j->answer[at] & 0xC0) == 0x80)
            at++;
        if (at > j->cut[k - 1] && at < j->alen) j->cut[k++] = at;
    }
    j->cut[k] = j->alen;
    j->n_chunks = k;
}

static void write_logprobs(jsonw_t *w, const job_t *j, size_t from, size_t to)
{
    if (j->chat) {
        jsonw_key(w, "logprobs");
        jsonw_obj_begin(w);
        jsonw_key(w, "content");
        jsonw_arr_begin(w);
        for (int i = 0; i < j->n_chunks; i++) {
            if (j->cut[i] < from || j->cut[i + 1] > to) continue;
            jsonw_obj_begin(w);
            jsonw_key(w, "token");
            jsonw_strn(w, j->answer + j->cut[i], j->cut[i + 1] - j->cut[i]);
            jsonw_key(w, "logprob");
            jsonw_double(w, j->b.logprob);
            jsonw_key(w, "bytes");
            jsonw_null(w);
            jsonw_key(w, "top_logprobs");
            jsonw_arr_begin(w);
            jsonw_arr_end(w);
            jsonw_obj_end(w);
        }
        jsonw_arr_end(w);
        jsonw_obj_end(w);
    } else {
        jsonw_key(w, "logprobs");
        jsonw_obj_begin(w);
        jsonw_key(w, "tokens");
        jsonw_arr_begin(w);
        for (int i = 0; i < j->n_chunks; i++)
            if (j->cut[i] >= from && j->cut[i + 1] <= to)
                jsonw_strn(w, j->answer + j->cut[i], j->cut[i + 1] - j->cut[i]);
        jsonw_arr_end(w);
        jsonw_key(w, "token_logprobs");
        jsonw_arr_begin(w);
        for (int i = 0; i < j->n_chunks; i++)
            if (j->cut[i] >= from && j->cut[i + 1] <= to) jsonw_double(w, j->b.logprob);
        jsonw_arr_end(w);
        jsonw_obj_end(w);
    }
}

static void write_usage(jsonw_t *w, const job_t *j)
{
    int ct = j->n_chunks * (j->n > 1 ? j->n : 1);
    jsonw_key(w, "usage");
    jsonw_obj_begin(w);
    jsonw_key(w, "prompt_tokens");
    jsonw_int(w, j->prompt_tokens);
    jsonw_key(w, "completion_tokens");
    jsonw_int(w, ct);
    jsonw_key(w, "total_tokens");
    jsonw_int(w, j->prompt_tokens + ct);
    jsonw_obj_end(w);
}

static void write_envelope(jsonw_t *w, const job_t *j, bool chunk)
{
    jsonw_key(w, "id");
    jsonw_str(w, j->id);
    jsonw_key(w, "object");
    jsonw_str(w,
              j->chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion");
    jsonw_key(w, "created");
    jsonw_int(w, j->created);
    jsonw_key(w, "model");
    jsonw_str(w, j->model);
}

static void job_free(job_t *j)
{
    if (j->timer) loop_timer_del(j->loop, j->timer);
    mem_free(j->answer);
    mem_free(j);
}

/* A stalled embeddings answer: released when the client leaves. */
static void stall_abort(void *arg)
{
    http_res_send(arg, 499, NULL, NULL, 0);
}

static void on_abort(void *arg)
{
    job_t *j = arg;
    /* The client left: finish (release) the response and drop the job. */
    if (j->stream && j->next > 0)
        http_res_stream_end(j->res);
    else
        http_res_send(j->res, 499, NULL, NULL, 0);
    job_free(j);
}

static void answer_whole(job_t *j)
{
    buf_t b;
    buf_init(&b, 64u << 20);
    if (j->b.fail == FAIL_GARBAGE) {
        buf_puts(&b, "{\"id\": \"garbage\", \"choices\": [ {\"message\": oops");
    } else {
        jsonw_t w;
        jsonw_init(&w, &b);
        jsonw_obj_begin(&w);
        write_envelope(&w, j, false);
        jsonw_key(&w, "choices");
        jsonw_arr_begin(&w);
        for (int ch = 0; ch < (j->n > 1 ? j->n : 1); ch++) {
            jsonw_obj_begin(&w);
            jsonw_key(&w, "index");
            jsonw_int(&w, ch);
            if (j->chat) {
                jsonw_key(&w, "message");
                jsonw_obj_begin(&w);
                jsonw_key(&w, "role");
                jsonw_str(&w, "assistant");
                jsonw_key(&w, "content");
                jsonw_strn(&w, j->answer, j->alen);
                jsonw_obj_end(&w);
            } else {
                jsonw_key(&w, "text");
                jsonw_strn(&w, j->answer, j->alen);
            }
            if (j->want_logprobs)
                write_logprobs(&w, j, 0, j->alen);
            else {
                jsonw_key(&w, "logprobs");
                jsonw_null(&w);
            }
            jsonw_key(&w, "finish_reason");
            jsonw_str(&w, "stop");
            jsonw_obj_end(&w);
        }
        jsonw_arr_end(&w);
        write_usage(&w, j);
        jsonw_obj_end(&w);
    }
    if (j->b.fail == FAIL_CUT) {
        /* Start the body, send half of it, close. */
        http_res_stream_begin(j->res, 200, "application/json");
        http_res_stream_write(j->res, b.data, b.len / 2);
        http_res_close(j->res);
    } else {
        send_json(j->res, 200, &b);
    }
    buf_deinit(&b);
    job_free(j);
}

/* Writes the next SSE event of a streamed answer; re-arms itself. */
static void stream_step(loop_t *loop, void *arg)
{
    job_t *j = arg;
    j->timer = 0;
    http_res_t *res = j->res;
    if (j->next == 0) http_res_stream_begin(res, 200, "text/event-stream");
    buf_t b;
    buf_init(&b, 1 << 20);
    if (j->b.fail == FAIL_GARBAGE && j->next == 1) {
        buf_puts(&b, "data: {\"choices\": [ not json at all\n\n");
    } else if (j->next < j->n_chunks + (j->chat ? 1 : 0)) {
        /* Chat streams open with a role-only delta like OpenAI's. */
        int ci = j->chat ? j->next - 1 : j->next;
        for (int ch = 0; ch < (j->n > 1 ? j->n : 1); ch++) {
            jsonw_t w;
            jsonw_init(&w, &b);
            buf_puts(&b, "data: ");
            jsonw_obj_begin(&w);
            write_envelope(&w, j, true);
            jsonw_key(&w, "choices");
            jsonw_arr_begin(&w);
            jsonw_obj_begin(&w);
            jsonw_key(&w, "index");
            jsonw_int(&w, ch);
            if (j->chat) {
                jsonw_key(&w, "delta");
                jsonw_obj_begin(&w);
                if (ci < 0) {
                    jsonw_key(&w, "role");
                    jsonw_str(&w, "assistant");
                    jsonw_key(&w, "content");
                    jsonw_str(&w, "");
                } else {
                    jsonw_key(&w, "content");
                    jsonw_strn(&w, j->answer + j->cut[ci], j->cut[ci + 1] - j->cut[ci]);
                }
                jsonw_obj_end(&w);
            } else {
                jsonw_key(&w, "text");
                jsonw_strn(&w, j->answer + j->cut[ci], j->cut[ci + 1] - j->cut[ci]);
            }
            if (j->want_logprobs && ci >= 0) write_logprobs(&w, j, j->cut[ci], j->cut[ci + 1]);
            jsonw_key(&w, "finish_reason");
            if (ci == j->n_chunks - 1)
                jsonw_str(&w, "stop");
            else
                jsonw_null(&w);
            jsonw_obj_end(&w);
            jsonw_arr_end(&w);
            jsonw_obj_end(&w);
            buf_puts(&b, "\n\n");
        }
    } else {
        if (j->include_usage) {
            jsonw_t w;
            jsonw_init(&w, &b);
            buf_puts(&b, "data: ");
            jsonw_obj_begin(&w);
            write_envelope(&w, j, true);
            jsonw_key(&w, "choices");
            jsonw_arr_begin(&w);
            jsonw_arr_end(&w);
            write_usage(&w, j);
            jsonw_obj_end(&w);
            buf_puts(&b, "\n\n");
        }
        buf_puts(&b, "data: [DONE]\n\n");
        http_res_stream_write(res, b.data, b.len);
        http_res_stream_end(res);
        buf_deinit(&b);
        job_free(j);
        return;
    }
    int rc = http_res_stream_write(res, b.data, b.len);
    buf_deinit(&b);
    j->next++;
    if (rc == SY_ECLOSED) return; /* on_abort finishes */
    int total = j->n_chunks + (j->chat ? 1 : 0);
    if (j->b.fail == FAIL_CUT && j->next >= (total + 1) / 2) {
        http_res_close(res);
        job_free(j);
        return;
    }
    j->timer = loop_timer_add(loop, (uint64_t)j->b.chunk_ms, stream_step, j);
}

static void whole_step(loop_t *loop, void *arg)
{
    job_t *j = arg;
    j->timer = 0;
    answer_whole(j);
}

/* Builds the job for a completion request, or answers an error and returns NULL. */
static void handle_completion(http_req_t *req, http_res_t *res, behaviour_t b, bool chat)
{
    cJSON *root = cJSON_ParseWithLength(req->body, req->body_len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        send_error(res, 400, "invalid_request_error", "body is not a JSON object");
        return;
    }
    job_t *j = mem_calloc(1, sizeof *j);
    j->res = res;
    j->loop = http_res_loop(res);
    j->b = b;
    j->chat = chat;
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "stream");
    j->stream = cJSON_IsTrue(st);
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    j->include_usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(root, "logprobs");
    j->want_logprobs = cJSON_IsTrue(lp) || (cJSON_IsNumber(lp) && lp->valuedouble > 0);
    const cJSON *nv = cJSON_GetObjectItemCaseSensitive(root, "n");
    j->n = cJSON_IsNumber(nv) && nv->valueint > 1 && nv->valueint <= 128 ? nv->valueint : 1;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    snprintf(j->model, sizeof j->model, "%s",
             g.model                 ? g.model
             : cJSON_IsString(model) ? model->valuestring
                                     : "stand-in");
    buf_t text, all;
    buf_init(&text, 16u << 20);
    buf_init(&all, 64u << 20);
    if (chat) {
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages"), *m;
        cJSON_ArrayForEach(m, msgs)
        {
            const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
            const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
            content_text(content, &all);
            if (cJSON_IsString(role) && !strcmp(role->valuestring, "user")) {
                buf_reset(&text);
                content_text(content, &text);
            }
        }
    } else {
        const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(root, "prompt");
        if (cJSON_IsArray(prompt)) prompt = cJSON_GetArrayItem(prompt, 0);
        if (cJSON_IsString(prompt)) buf_puts(&text, prompt->valuestring);
        buf_append(&all, text.data ? text.data : "", text.len);
    }
    cJSON_Delete(root);
    j->prompt_tokens = (int)((all.len + 3) / 4);
    buf_deinit(&all);
    buf_t ans;
    buf_init(&ans, 16u << 20);
    buf_printf(&ans, "[%s] %s", g.name, text.data ? text.data : "");
    buf_deinit(&text);
    j->alen = ans.len;
    j->answer = buf_steal(&ans);
    job_split(j, j->stream
                     ? b.chunks
                     : (int)((j->alen + 3) / 4 < MAX_CHUNKS ? (j->alen + 3) / 4 : MAX_CHUNKS));
    static _Atomic unsigned long seq;
    snprintf(j->id, sizeof j->id, "%s-%lu", chat ? "chatcmpl" : "cmpl", ++seq);
    j->created = 1764300000;
    http_res_on_abort(res, on_abort, j);
    if (b.fail == FAIL_STALL) return; /* never answers; the abort callback frees */
    if (j->stream) {
        int first = b.ttft_ms > 0 ? b.ttft_ms : 0;
        if (first)
            j->timer = loop_timer_add(j->loop, (uint64_t)first, stream_step, j);
        else
            stream_step(j->loop, j);
    } else {
        int delay = b.latency_ms > b.ttft_ms ? b.latency_ms : b.ttft_ms;
        if (delay)
            j->timer = loop_timer_add(j->loop, (uint64_t)delay, whole_step, j);
        else
            answer_whole(j);
    }
}

/* A deterministic unit-length vector for a text: dims values from a hash stream. */
static void embed_text(const char *t, size_t n, float *v, int dims)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)t[i]) * 1099511628211ull;
    double norm = 0;
    for (int i = 0; i < dims; i++) {
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 33;
        v[i] = (float)((double)(h >> 11) / 9007199254740992.0 - 0.5);
        norm += (double)v[i] * v[i];
    }
    norm = norm > 0 ? sqrt(norm) : 1;
    for (int i = 0; i < dims; i++)
        v[i] = (float)(v[i] / norm);
}

static void base64(buf_t *out, const unsigned char *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        unsigned x = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        char q[4] = {tab[x >> 18 & 63], tab[x >> 12 & 63], i + 1 < n ? tab[x >> 6 & 63] : '=',
                     i + 2 < n ? tab[x & 63] : '='};
        buf_append(out, q, 4);
    }
}

/* POST /v1/embeddings: one vector per input (a string, strings, or token id arrays,
 * whose ids are hashed as their decimal text), float or base64. */
static void handle_embeddings(http_req_t *req, http_res_t *res)
{
    cJSON *root = cJSON_ParseWithLength(req->body, req->body_len);
    cJSON *in = cJSON_GetObjectItemCaseSensitive(root, "input");
    if (!cJSON_IsObject(root) || !in) {
        cJSON_Delete(root);
        send_error(res, 400, "invalid_request_error", "input is required");
        return;
    }
    const cJSON *dv = cJSON_GetObjectItemCaseSensitive(root, "dimensions");
    int dims = cJSON_IsNumber(dv) && dv->valueint > 0 && dv->valueint <= 4096 ? dv->valueint : 8;
    const cJSON *ef = cJSON_GetObjectItemCaseSensitive(root, "encoding_format");
    bool b64 = cJSON_IsString(ef) && !strcmp(ef->valuestring, "base64");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    buf_t b, t;
    buf_init(&b, 64u << 20);
    buf_init(&t, 16u << 20);
    float *v = mem_alloc(sizeof(float) * (size_t)dims);
    jsonw_t w;
    jsonw_init(&w, &b);
    jsonw_obj_begin(&w);
    jsonw_key(&w, "object");
    jsonw_str(&w, "list");
    jsonw_key(&w, "data");
    jsonw_arr_begin(&w);
    /* A single string or a single token array is one input. */
    bool one = cJSON_IsString(in) || (cJSON_IsArray(in) && cJSON_IsNumber(in->child));
    int idx = 0, tokens = 0;
    for (const cJSON *it = one ? in : in->child; it; it = one ? NULL : it->next, idx++) {
        buf_reset(&t);
        if (cJSON_IsString(it)) {
            buf_puts(&t, it->valuestring);
        } else {
            const cJSON *x;
            cJSON_ArrayForEach(x, it) buf_printf(&t, "%d ", x->valueint);
        }
        tokens += (int)((t.len + 3) / 4);
        embed_text(t.data ? t.data : "", t.len, v, dims);
        jsonw_obj_begin(&w);
        jsonw_key(&w, "object");
        jsonw_str(&w, "embedding");
        jsonw_key(&w, "index");
        jsonw_int(&w, idx);
        jsonw_key(&w, "embedding");
        if (b64) {
            buf_t e;
            buf_init(&e, 1u << 20);
            base64(&e, (const unsigned char *)v, sizeof(float) * (size_t)dims);
            jsonw_strn(&w, e.data, e.len);
            buf_deinit(&e);
        } else {
            jsonw_arr_begin(&w);
            for (int i = 0; i < dims; i++)
                jsonw_double(&w, v[i]);
            jsonw_arr_end(&w);
        }
        jsonw_obj_end(&w);
    }
    jsonw_arr_end(&w);
    jsonw_key(&w, "model");
    jsonw_str(&w, g.model ? g.model : cJSON_IsString(model) ? model->valuestring : "stand-in");
    jsonw_key(&w, "usage");
    jsonw_obj_begin(&w);
    jsonw_key(&w, "prompt_tokens");
    jsonw_int(&w, tokens);
    jsonw_key(&w, "total_tokens");
    jsonw_int(&w, tokens);
    jsonw_obj_end(&w);
    jsonw_obj_end(&w);
    send_json(res, 200, &b);
    mem_free(v);
    buf_deinit(&b);
    buf_deinit(&t);
    cJSON_Delete(root);
}

/* The error message of a failure: the configured one, or the request's last text
 * ("@prompt": a server that echoes its input in errors). */
static void fail_message(const http_req_t *req, const behaviour_t *b, const char *dflt, buf_t *out)
{
    if (strcmp(b->message, "@prompt")) {
        buf_puts(out, b->message[0] ? b->message : dflt);
        return;
    }
    cJSON *root = cJSON_ParseWithLength(req->body, req->body_len);
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages"), *m, *last = NULL;
    cJSON_ArrayForEach(m, msgs) last = cJSON_GetObjectItemCaseSensitive(m, "content");
    if (!last) last = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    if (!last) last = cJSON_GetObjectItemCaseSensitive(root, "input");
    if (cJSON_IsArray(last)) last = last->child;
    buf_puts(out, "cannot process: ");
    if (cJSON_IsString(last)) buf_puts(out, last->valuestring);
    cJSON_Delete(root);
}

/* ---------------------------------------------------------------- admin */

static void handle_control(http_req_t *req, http_res_t *res)
{
    cJSON *root = cJSON_ParseWithLength(req->body, req->body_len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        send_error(res, 400, "invalid_request_error", "body is not a JSON object");
        return;
    }
    pthread_mutex_lock(&g.mu);
    behaviour_t *b = &g.b;
    const cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "fail"))) {
        b->fail =
            cJSON_IsString(v) ? fail_parse(v->valuestring, strlen(v->valuestring)) : FAIL_NONE;
        b->fail_count = -1;
    }
    if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(root, "count")))
        b->fail_count = v->valueint;
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "down"))) b->down = cJSON_IsTrue(v);
    if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(root, "latency_ms")))
        b->latency_ms = v->valueint;
    if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(root, "ttft_ms")))
        b->ttft_ms = v->valueint;
    if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(root, "chunk_ms")))
        b->chunk_ms = v->valueint;
    if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(root, "chunks")))
        b->chunks = v->valueint;
    if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(root, "logprob")))
        b->logprob = v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "message")))
        snprintf(b->message, sizeof b->message, "%s", cJSON_IsString(v) ? v->valuestring : "");
    pthread_mutex_unlock(&g.mu);
    cJSON_Delete(root);
    http_res_send(res, 200, "application/json", "{\"ok\":true}", 11);
}

static void handle_received(http_res_t *res)
{
    buf_t b;
    buf_init(&b, 512u << 20);
    pthread_mutex_lock(&g.mu);
    buf_printf(&b, "{\"count\":%zu,\"requests\":[", g.total);
    for (size_t i = 0; i < g.n_rec; i++) {
        record_t *r = &g.rec[i];
        buf_puts(&b, i ? ",{\"path\":\"" : "{\"path\":\"");
        jsonw_escape(&b, r->path, strlen(r->path));
        buf_puts(&b, "\",\"headers\":");
        buf_puts(&b, r->headers);
        buf_puts(&b, ",\"body\":\"");
        jsonw_escape(&b, r->body, strlen(r->body));
        buf_puts(&b, "\"}");
    }
    pthread_mutex_unlock(&g.mu);
    buf_puts(&b, "]}");
    send_json(res, 200, &b);
    buf_deinit(&b);
}

/* ---------------------------------------------------------------- dispatch */

static void handler(http_req_t *req, http_res_t *res, void *ctx)
{
    bool post = !strcmp(req->method, "POST");
    if (!strcmp(req->path, "/_control") && post) return handle_control(req, res);
    if (!strcmp(req->path, "/_received")) return handle_received(res);
    if (!strcmp(req->path, "/_reset") && post) {
        pthread_mutex_lock(&g.mu);
        records_clear();
        pthread_mutex_unlock(&g.mu);
        http_res_send(res, 200, "application/json", "{\"ok\":true}", 11);
        return;
    }
    record(req);
    /* Only completion requests use up a counted failure (not health probes). */
    bool completion = !strcmp(req->path, "/v1/chat/completions") ||
                      !strcmp(req->path, "/v1/completions") || !strcmp(req->path, "/v1/embeddings");
    pthread_mutex_lock(&g.mu);
    behaviour_t b = g.b;
    if (!completion)
        b.fail = FAIL_NONE;
    else if (g.b.fail != FAIL_NONE && g.b.fail_count > 0 && --g.b.fail_count == 0)
        g.b.fail = FAIL_NONE;
    pthread_mutex_unlock(&g.mu);
    if (b.down) {
        send_error(res, 503, "server_error", "upstream is down");
        return;
    }
    if (!strcmp(req->path, "/healthz")) {
        http_res_send(res, 200, "application/json", "{\"status\":\"ok\"}", 15);
        return;
    }
    if (!strcmp(req->path, "/v1/models")) {
        char body[512];
        int n = snprintf(body, sizeof body,
                         "{\"object\":\"list\",\"data\":[{\"id\":\"%s\",\"object\":\"model\","
                         "\"created\":1764300000,\"owned_by\":\"%s\"}]}",
                         g.model ? g.model : "stand-in", g.name);
        http_res_send(res, 200, "application/json", body, (size_t)n);
        return;
    }
    bool chat = !strcmp(req->path, "/v1/chat/completions");
    bool embed = !strcmp(req->path, "/v1/embeddings");
    if (!post || (!chat && !embed && strcmp(req->path, "/v1/completions"))) {
        send_error(res, 404, "invalid_request_error", "unknown endpoint");
        return;
    }
    /* Per-request headers override the defaults. */
    b.latency_ms = hdr_int(req, "x-upstream-latency-ms", b.latency_ms);
    b.ttft_ms = hdr_int(req, "x-upstream-ttft-ms", b.ttft_ms);
    b.chunk_ms = hdr_int(req, "x-upstream-chunk-ms", b.chunk_ms);
    b.chunks = hdr_int(req, "x-upstream-chunks", b.chunks);
    size_t n;
    const char *v = http_req_header(req, "x-upstream-fail", &n);
    if (v) b.fail = fail_parse(v, n);
    if ((v = http_req_header(req, "x-upstream-logprob", &n)) && n < 32) {
        char tmp[32];
        memcpy(tmp, v, n);
        tmp[n] = 0;
        b.logprob = strtod(tmp, NULL);
    }
    buf_t msg;
    buf_init(&msg, 1 << 20);
    switch (b.fail) {
    case FAIL_500:
        fail_message(req, &b, "stand-in failure", &msg);
        send_error(res, 500, "server_error", msg.data);
        buf_deinit(&msg);
        return;
    case FAIL_429:
        fail_message(req, &b, "stand-in rate limit", &msg);
        send_error(res, 429, "rate_limit_error", msg.data);
        buf_deinit(&msg);
        return;
    default:
        break;
    }
    buf_deinit(&msg);
    if (embed && b.fail == FAIL_GARBAGE) {
        http_res_send(res, 200, "application/json", "{\"data\": [oops", 14);
        return;
    }
    if (embed && b.fail == FAIL_STALL) {
        http_res_on_abort(res, stall_abort, res);
        return;
    }
    if (embed) return handle_embeddings(req, res);
    handle_completion(req, res, b, chat);
}

/* ---------------------------------------------------------------- main */

static void on_signal(int sig)
{
    (void)sig;
    if (g.srv) http_server_stop(g.srv);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: upstream [options]\n"
               "A stand-in OpenAI-compatible upstream for tests and benchmarks.\n\n"
               "  --host ADDR          bind address (127.0.0.1)\n"
               "  --port N             port (0 = ephemeral)\n"
               "  --port-file F        write the bound port to F\n"
               "  --name NAME          answers start with \"[NAME] \" (stand-in)\n"
               "  --model ID           model id reported (default: the request's)\n"
               "  --workers N          worker threads (1)\n"
               "  --latency-ms N       delay of non-streamed answers\n"
               "  --ttft-ms N          delay before the first streamed chunk\n"
               "  --chunk-ms N         delay between streamed chunks\n"
               "  --chunks N           content chunks per streamed answer (4)\n"
               "  --fail MODE          500|429|stall|cut|garbage for every request\n"
               "  --logprob X          logprob of every token (-0.1)\n"
               "  --quiet              no log lines\n"
               "  --no-record          count requests but keep none (benchmarks)\n\n"
               "Per request: X-Upstream-Latency-Ms, -Ttft-Ms, -Chunk-Ms, -Chunks, -Fail, "
               "-Logprob.\n"
               "Admin: POST /_control {\"fail\":\"500\",\"count\":3} | {\"down\":true} | "
               "{\"latency_ms\":..}; GET /_received; POST /_reset.\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"host", 1, 0, 'H'},       {"port", 1, 0, 'p'},
        {"port-file", 1, 0, 'f'},  {"name", 1, 0, 'n'},
        {"model", 1, 0, 'm'},      {"workers", 1, 0, 'w'},
        {"latency-ms", 1, 0, 'l'}, {"ttft-ms", 1, 0, 't'},
        {"chunk-ms", 1, 0, 'c'},   {"chunks", 1, 0, 'k'},
        {"fail", 1, 0, 'F'},       {"logprob", 1, 0, 'L'},
        {"quiet", 0, 0, 'q'},      {"no-record", 0, 0, 'R'},
        {"help", 0, 0, 'h'},       {0, 0, 0, 0},
    };
    const char *host = "127.0.0.1", *port_file = NULL;
    int port = 0, workers = 1;
    g.name = "stand-in";
    g.b = (behaviour_t){.chunks = 4, .logprob = -0.1, .fail_count = -1};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'H':
            host = optarg;
            break;
        case 'p':
            port = atoi(optarg);
            break;
        case 'f':
            port_file = optarg;
            break;
        case 'n':
            g.name = optarg;
            break;
        case 'm':
            g.model = optarg;
            break;
        case 'w':
            workers = atoi(optarg);
            break;
        case 'l':
            g.b.latency_ms = atoi(optarg);
            break;
        case 't':
            g.b.ttft_ms = atoi(optarg);
            break;
        case 'c':
            g.b.chunk_ms = atoi(optarg);
            break;
        case 'k':
            g.b.chunks = atoi(optarg);
            break;
        case 'F':
            g.b.fail = fail_parse(optarg, strlen(optarg));
            break;
        case 'L':
            g.b.logprob = strtod(optarg, NULL);
            break;
        case 'q':
            g.quiet = true;
            break;
        case 'R':
            g.no_record = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (g.quiet) log_set_level(LOG_OFF);
    http_server_opts_t o = {
        .host = host,
        .port = port,
        .n_workers = workers < 1 ? 1 : workers,
        .max_header_bytes = 65536,
        .max_body_bytes = 32u << 20,
        .header_timeout_ms = 10000,
        .idle_timeout_ms = 120000,
        .drain_ms = 2000,
        .handler = handler,
    };
    int err;
    char msg[256];
    g.srv = http_server_new(&o, &err, msg, sizeof msg);
    if (!g.srv) {
        fprintf(stderr, "upstream: %s\n", msg);
        return 1;
    }
    if (port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%d\n", http_server_port(g.srv)) < 0 || fclose(f) ||
            rename(tmp, port_file)) {
            fprintf(stderr, "upstream: cannot write %s: %s\n", port_file, strerror(errno));
            return 1;
        }
    }
    if (!g.quiet)
        fprintf(stderr, "upstream %s listening on %s:%d\n", g.name, host, http_server_port(g.srv));
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int rc = http_server_run(g.srv);
    http_server_free(g.srv);
    records_clear();
    return rc ? 1 : 0;
}

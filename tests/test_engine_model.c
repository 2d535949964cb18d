/* test_engine_model.c — the forward pass against the stories260K golden run, through
 * the llama2.c loader and through a GGUF converted from it; batched prefill against
 * token-by-token decoding; llama-2-tiny-random.gguf. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "base/err.h"
#include "engine/convert.h"
#include "engine/forward.h"
#include "engine/model.h"

static char shared[512];

/* Skips the current test, saying why: the shared models are not on this machine. */
#define skip_no_data()                                                                             \
    do {                                                                                           \
        print_message("# skipped: shared data not found under %s (set SY_SHARED)\n", shared);      \
        skip();                                                                                    \
    } while (0)

/* Path of a file under $SY_SHARED (default ../shared); NULL when it is absent. */
static const char *shared_path(char *out, size_t n, const char *rel)
{
    snprintf(out, n, "%s/%s", shared, rel);
    return access(out, R_OK) == 0 ? out : NULL;
}

typedef struct golden {
    int ids[256];
    int n_ids;
    float logits[8][8];
} golden_t;

/* Reads the golden JSON (token_ids, first_logits_first8). */
static int read_golden(golden_t *g)
{
    char p[600];
    if (!shared_path(p, sizeof p, "data/models/llama2c/stories260K_greedy_golden.json")) return -1;
    FILE *f = fopen(p, "rb");
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    cJSON *j = cJSON_Parse(text);
    assert_non_null(j);
    cJSON *ids = cJSON_GetObjectItem(j, "token_ids"),
          *lg = cJSON_GetObjectItem(j, "first_logits_first8");
    g->n_ids = cJSON_GetArraySize(ids);
    assert_true(g->n_ids > 100 && g->n_ids <= 256);
    for (int i = 0; i < g->n_ids; i++)
        g->ids[i] = cJSON_GetArrayItem(ids, i)->valueint;
    for (int s = 0; s < 8; s++)
        for (int k = 0; k < 8; k++)
            g->logits[s][k] = (float)cJSON_GetArrayItem(cJSON_GetArrayItem(lg, s), k)->valuedouble;
    cJSON_Delete(j);
    return 0;
}

static int argmax(const float *v, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[b]) b = i;
    return b;
}

/* Greedy decoding from BOS for n_steps; checks tokens and the first logits against
 * the golden run, and keeps the first step's full logits in first (n_vocab). */
static void check_greedy(const model_t *m, const golden_t *g, float *first)
{
    forward_state_t *s = forward_state_new(m, 0, 0, NULL);
    int tok = g->ids[0];
    for (int pos = 0; pos + 1 < g->n_ids; pos++) {
        const float *lg = forward_run(s, &tok, 1, pos, false);
        assert_non_null(lg);
        if (pos == 0) memcpy(first, lg, (size_t)m->cfg.n_vocab * sizeof(float));
        if (pos < 8)
            for (int k = 0; k < 8; k++)
                assert_float_equal(lg[k], g->logits[pos][k], 1e-4);
        tok = argmax(lg, m->cfg.n_vocab);
        if (tok != g->ids[pos + 1])
            fail_msg("step %d: token %d, golden %d", pos, tok, g->ids[pos + 1]);
    }
    forward_state_free(s);
}

static void test_golden_llama2c_and_gguf(void **state)
{
    (void)state;
    golden_t g;
    char bin[600], tok[600];
    if (read_golden(&g) || !shared_path(bin, sizeof bin, "data/models/llama2c/stories260K.bin") ||
        !shared_path(tok, sizeof tok, "data/models/llama2c/tok512.bin"))
        skip_no_data();
    char err[256];
    model_t *m;
    assert_int_equal(model_load(bin, tok, &m, err, sizeof err), 0);
    assert_string_equal(m->format, "llama2c");
    assert_int_equal(m->cfg.dim, 64);
    assert_int_equal(m->cfg.n_kv_heads, 4);
    float *first_a = malloc(512 * sizeof(float)), *first_b = malloc(512 * sizeof(float));
    check_greedy(m, &g, first_a);

    /* The same model through GGUF. */
    char dir[] = "/tmp/sy_engine_XXXXXX", path[600];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/stories260K.gguf", dir);
    assert_int_equal(convert_model_to_gguf(m, path), 0);
    model_t *m2;
    int rc = model_load(path, NULL, &m2, err, sizeof err);
    if (rc) fail_msg("load converted: %s", err);
    assert_string_equal(m2->format, "gguf");
    assert_int_equal(m2->cfg.n_vocab, 512);
    check_greedy(m2, &g, first_b);
    for (int i = 0; i < 512; i++)
        assert_float_equal(first_a[i], first_b[i], 1e-4);
    model_free(m2);
    unlink(path);
    rmdir(dir);
    free(first_a);
    free(first_b);
    model_free(m);
}

/* A prompt run as one batch gives the logits of running it token by token. */
static void test_batched_prefill(void **state)
{
    (void)state;
    golden_t g;
    char bin[600], tok[600], err[256];
    if (read_golden(&g) || !shared_path(bin, sizeof bin, "data/models/llama2c/stories260K.bin") ||
        !shared_path(tok, sizeof tok, "data/models/llama2c/tok512.bin"))
        skip_no_data();
    model_t *m;
    assert_int_equal(model_load(bin, tok, &m, err, sizeof err), 0);
    int n = 40, V = m->cfg.n_vocab;
    forward_state_t *a = forward_state_new(m, 128, 16, NULL); /* chunks of 16: 3 chunks */
    forward_state_t *b = forward_state_new(m, 128, 64, NULL);
    const float *la = forward_run(a, g.ids, n, 0, false);
    assert_non_null(la);
    const float *lall = forward_run(b, g.ids, n, 0, true); /* all rows */
    assert_non_null(lall);
    for (int i = 0; i < V; i++)
        assert_float_equal(la[i], lall[i], 1e-4);
    /* Row p of the all-logits output predicts token p+1 of the greedy run. */
    for (int p = 0; p < n - 1; p++)
        assert_int_equal(argmax(b->logits + (size_t)p * V, V), g.ids[p + 1]);
    /* Continuing after a prefill matches too. */
    const float *next = forward_run(a, &g.ids[n], 1, n, false);
    assert_int_equal(argmax(next, V), g.ids[n + 1]);
    /* Out of context or bad ids are refused. */
    assert_null(forward_run(a, g.ids, 1, 128, false));
    int bad = 512;
    assert_null(forward_run(a, &bad, 1, 0, false));
    forward_state_free(a);
    forward_state_free(b);
    model_free(m);
}

static void test_tiny_random_gguf(void **state)
{
    (void)state;
    char p[600], err[256];
    if (!shared_path(p, sizeof p, "data/models/gguf/llama-2-tiny-random.gguf")) skip_no_data();
    model_t *m;
    int rc = model_load(p, NULL, &m, err, sizeof err);
    if (rc) fail_msg("load: %s", err);
    assert_int_equal(m->cfg.n_vocab, 32000);
    forward_state_t *s = forward_state_new(m, 64, 8, NULL);
    int toks[4] = {1, 15043, 3186, 29991};
    const float *lg = forward_run(s, toks, 4, 0, false);
    assert_non_null(lg);
    for (int i = 0; i < m->cfg.n_vocab; i++)
        assert_true(isfinite(lg[i]));
    int t = argmax(lg, m->cfg.n_vocab);
    for (int pos = 4; pos < 8; pos++) {
        lg = forward_run(s, &t, 1, pos, false);
        assert_non_null(lg);
        assert_true(isfinite(lg[0]));
        t = argmax(lg, m->cfg.n_vocab);
    }
    forward_state_free(s);
    model_free(m);
}

/* A llama2.c checkpoint cut short is refused with a message. */
static void test_llama2c_truncated(void **state)
{
    (void)state;
    char bin[600], tok[600], err[256];
    if (!shared_path(bin, sizeof bin, "data/models/llama2c/stories260K.bin") ||
        !shared_path(tok, sizeof tok, "data/models/llama2c/tok512.bin"))
        skip_no_data();
    FILE *f = fopen(bin, "rb");
    static char data[4096];
    size_t n = fread(data, 1, sizeof data, f);
    fclose(f);
    char path[] = "/tmp/sy_l2c_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    close(fd);
    model_t *m;
    assert_int_equal(model_load(path, tok, &m, err, sizeof err), SY_ECORRUPT);
    assert_non_null(strstr(err, "needs"));
    /* A header with zero heads. */
    memset(data + 12, 0, 4);
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    close(fd);
    assert_int_equal(model_load(path, tok, &m, err, sizeof err), SY_ECORRUPT);
    unlink(path);
}

/* ------------------------------------------------------ quantized files ---- */

/* Writes m as GGUF with every matrix whose rows are a multiple of 32 in type t and the
 * others (stories260K's ffn_down: rows of 172) in F16, norms in F32, the way a
 * quantizer lays such a model out. Returned buffers are freed by the caller. */
static void write_quantized(const model_t *m, kern_type_t t, const char *path)
{
    gguf_writer_t *w = gguf_writer_new(0);
    convert_write_metadata(w, m, t == KERN_Q8_0 ? 7 : 2);
    void *bufs[64];
    int nb = 0;
    char nm[64];
#define QMAT(name, tensor)                                                                         \
    do {                                                                                           \
        const model_tensor_t *mt = (tensor);                                                       \
        kern_type_t qt = mt->cols % 32 ? KERN_F16 : t;                                             \
        size_t rs = kern_row_size(qt, (size_t)mt->cols);                                           \
        uint8_t *q = malloc(rs * (size_t)mt->rows);                                                \
        for (int r = 0; r < mt->rows; r++)                                                         \
            kern_quantize_row(qt, (const float *)mt->data + (size_t)r * mt->cols, q + rs * r,      \
                              (size_t)mt->cols);                                                   \
        uint64_t ne[2] = {(uint64_t)mt->cols, (uint64_t)mt->rows};                                 \
        assert_int_equal(gguf_writer_add_tensor(w, name, qt, 2, ne, q, rs *(size_t)mt->rows), 0);  \
        bufs[nb++] = q;                                                                            \
    } while (0)
#define FVEC(name, v)                                                                              \
    do {                                                                                           \
        uint64_t ne[1] = {(uint64_t)m->cfg.dim};                                                   \
        assert_int_equal(                                                                          \
            gguf_writer_add_tensor(w, name, KERN_F32, 1, ne, v, sizeof(float) * m->cfg.dim), 0);   \
    } while (0)
    QMAT("token_embd.weight", &m->tok_embd);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const model_layer_t *L = &m->layers[l];
        snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l);
        FVEC(nm, L->attn_norm);
        snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l);
        FVEC(nm, L->ffn_norm);
        const char *names[] = {"attn_q",   "attn_k",   "attn_v", "attn_output",
                               "ffn_gate", "ffn_down", "ffn_up"};
        const model_tensor_t *ts[] = {&L->wq,     &L->wk,     &L->wv,  &L->wo,
                                      &L->w_gate, &L->w_down, &L->w_up};
        for (int i = 0; i < 7; i++) {
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, names[i]);
            QMAT(nm, ts[i]);
        }
    }
    FVEC("output_norm.weight", m->out_norm);
#undef QMAT
#undef FVEC
    assert_int_equal(gguf_writer_write(w, path), 0);
    gguf_writer_free(w);
    for (int i = 0; i < nb; i++)
        free(bufs[i]);
}

/* Quantized files load with mixed tensor types (ffn_down F16) and, teacher-forced on
 * the F32 greedy run, pick the same top-1 token almost everywhere. */
static void test_quantized(void **state)
{
    (void)state;
    golden_t g;
    char bin[600], tok[600], err[256];
    if (read_golden(&g) || !shared_path(bin, sizeof bin, "data/models/llama2c/stories260K.bin") ||
        !shared_path(tok, sizeof tok, "data/models/llama2c/tok512.bin"))
        skip_no_data();
    model_t *m;
    assert_int_equal(model_load(bin, tok, &m, err, sizeof err), 0);
    kern_type_t types[2] = {KERN_Q8_0, KERN_Q4_0};
    int need[2] = {95, 70}; /* percent of positions; Q4_0 is far coarser */
    for (int ti = 0; ti < 2; ti++) {
        char path[] = "/tmp/sy_q_XXXXXX";
        int fd = mkstemp(path);
        close(fd);
        write_quantized(m, types[ti], path);
        model_t *q;
        int rc = model_load(path, NULL, &q, err, sizeof err);
        if (rc) fail_msg("load quantized: %s", err);
        assert_int_equal(q->layers[0].wq.type, types[ti]);
        assert_int_equal(q->layers[0].w_down.type, KERN_F16);
        forward_state_t *s = forward_state_new(q, 256, 64, NULL);
        int n = g.n_ids - 1, same = 0, V = q->cfg.n_vocab;
        for (int done = 0; done < n;) {
            int k = n - done < 64 ? n - done : 64;
            assert_non_null(forward_run(s, g.ids + done, k, done, true));
            for (int j = 0; j < k; j++)
                same += argmax(s->logits + (size_t)j * V, V) == g.ids[done + j + 1];
            done += k;
        }
        print_message("# %s: top-1 agrees with F32 greedy at %d of %d positions\n",
                      kern_type_name(types[ti]), same, n);
        assert_true(same * 100 >= need[ti] * n);
        forward_state_free(s);
        model_free(q);
        unlink(path);
    }
    model_free(m);
}

/* The qwen2 path (half-split RoPE, q/k/v biases, rope_freqs) checked by equivalence:
 * permuting each head's q and k rows so adjacent pairs become (i, i + hd/2) pairs
 * leaves every attention score unchanged, so with zero biases and unit frequency
 * factors the qwen2 file must reproduce the llama greedy run. */
static void test_qwen2_equivalence(void **state)
{
    (void)state;
    golden_t g;
    char bin[600], tok[600], err[256];
    if (read_golden(&g) || !shared_path(bin, sizeof bin, "data/models/llama2c/stories260K.bin") ||
        !shared_path(tok, sizeof tok, "data/models/llama2c/tok512.bin"))
        skip_no_data();
    model_t *m;
    assert_int_equal(model_load(bin, tok, &m, err, sizeof err), 0);
    const model_config_t *c = &m->cfg;
    int hd = c->head_dim, dim = c->dim, kv_dim = c->n_kv_heads * hd, L = c->n_layers;
    gguf_writer_t *w = gguf_writer_new(0);
    gguf_writer_set_str(w, "general.architecture", "qwen2");
    gguf_writer_set_u32(w, "qwen2.context_length", (uint32_t)c->n_ctx);
    gguf_writer_set_u32(w, "qwen2.embedding_length", (uint32_t)dim);
    gguf_writer_set_u32(w, "qwen2.feed_forward_length", (uint32_t)c->hidden_dim);
    gguf_writer_set_u32(w, "qwen2.block_count", (uint32_t)L);
    gguf_writer_set_u32(w, "qwen2.attention.head_count", (uint32_t)c->n_heads);
    gguf_writer_set_u32(w, "qwen2.attention.head_count_kv", (uint32_t)c->n_kv_heads);
    gguf_writer_set_f32(w, "qwen2.attention.layer_norm_rms_epsilon", c->norm_eps);
    int nv = c->n_vocab;
    const char **pieces = malloc((size_t)nv * sizeof *pieces);
    float *scores = malloc((size_t)nv * sizeof *scores);
    int32_t *types = malloc((size_t)nv * sizeof *types);
    for (int i = 0; i < nv; i++) {
        pieces[i] = tokenizer_piece(m->tok, i);
        scores[i] = tokenizer_score(m->tok, i);
        types[i] = tokenizer_type(m->tok, i);
    }
    gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", pieces, (size_t)nv);
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_F32, scores, (size_t)nv);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_I32, types, (size_t)nv);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    /* permuted q/k copies, zero biases, unit frequency factors */
    float *perm = malloc((size_t)L * 2 * dim * dim * sizeof(float));
    float *zeros = calloc((size_t)dim, sizeof(float));
    float *ones = malloc((size_t)hd / 2 * sizeof(float));
    for (int i = 0; i < hd / 2; i++)
        ones[i] = 1.0f;
    char nm[64];
    uint64_t ne_e[2] = {(uint64_t)dim, (uint64_t)nv}, ne_v[1] = {(uint64_t)dim};
    assert_int_equal(gguf_writer_add_tensor(w, "token_embd.weight", KERN_F32, 2, ne_e,
                                            m->tok_embd.data, sizeof(float) * dim * nv),
                     0);
    for (int l = 0; l < L; l++) {
        const model_layer_t *ly = &m->layers[l];
        const model_tensor_t *src[2] = {&ly->wq, &ly->wk};
        for (int t = 0; t < 2; t++) {
            float *dst = perm + ((size_t)l * 2 + t) * dim * dim;
            const float *sw = src[t]->data;
            for (int r = 0; r < src[t]->rows; r++) {
                int h = r / hd, j = r % hd;
                int nr = h * hd + (j % 2 ? hd / 2 + j / 2 : j / 2);
                memcpy(dst + (size_t)nr * dim, sw + (size_t)r * dim, sizeof(float) * dim);
            }
        }
        struct {
            const char *name;
            const void *data;
            int rows, cols;
        } ts[] = {
            {"attn_q.weight", perm + (size_t)l * 2 * dim * dim, dim, dim},
            {"attn_k.weight", perm + ((size_t)l * 2 + 1) * dim * dim, kv_dim, dim},
            {"attn_v.weight", ly->wv.data, kv_dim, dim},
            {"attn_output.weight", ly->wo.data, dim, dim},
            {"ffn_gate.weight", ly->w_gate.data, c->hidden_dim, dim},
            {"ffn_down.weight", ly->w_down.data, dim, c->hidden_dim},
            {"ffn_up.weight", ly->w_up.data, c->hidden_dim, dim},
            {"attn_norm.weight", ly->attn_norm, 1, dim},
            {"ffn_norm.weight", ly->ffn_norm, 1, dim},
            {"attn_q.bias", zeros, 1, dim},
            {"attn_k.bias", zeros, 1, kv_dim},
            {"attn_v.bias", zeros, 1, kv_dim},
        };
        for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) {
            snprintf(nm, sizeof nm, "blk.%d.%s", l, ts[i].name);
            uint64_t ne[2] = {(uint64_t)ts[i].cols, (uint64_t)ts[i].rows};
            assert_int_equal(gguf_writer_add_tensor(w, nm, KERN_F32, ts[i].rows == 1 ? 1 : 2, ne,
                                                    ts[i].data,
                                                    sizeof(float) * ts[i].rows * ts[i].cols),
                             0);
        }
    }
    assert_int_equal(gguf_writer_add_tensor(w, "output_norm.weight", KERN_F32, 1, ne_v, m->out_norm,
                                            sizeof(float) * dim),
                     0);
    uint64_t ne_f[1] = {(uint64_t)hd / 2};
    assert_int_equal(gguf_writer_add_tensor(w, "rope_freqs.weight", KERN_F32, 1, ne_f, ones,
                                            sizeof(float) * hd / 2),
                     0);
    char path[] = "/tmp/sy_qwen_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    assert_int_equal(gguf_writer_write(w, path), 0);
    gguf_writer_free(w);
    model_t *q;
    int rc = model_load(path, NULL, &q, err, sizeof err);
    if (rc) fail_msg("load qwen2: %s", err);
    assert_true(q->cfg.rope_neox);
    assert_non_null(q->layers[0].bq);
    assert_non_null(q->rope_freqs);
    float *first = malloc((size_t)nv * sizeof(float));
    check_greedy(q, &g, first);
    model_free(q);
    unlink(path);
    free(first);
    free(perm);
    free(zeros);
    free(ones);
    free(pieces);
    free(scores);
    free(types);
    model_free(m);
}

int main(void)
{
    const char *e = getenv("SY_SHARED");
    snprintf(shared, sizeof shared, "%s", e && *e ? e : "../shared");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_llama2c_and_gguf),
        cmocka_unit_test(test_batched_prefill),
        cmocka_unit_test(test_tiny_random_gguf),
        cmocka_unit_test(test_llama2c_truncated),
        cmocka_unit_test(test_quantized),
        cmocka_unit_test(test_qwen2_equivalence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

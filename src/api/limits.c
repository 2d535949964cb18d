/* limits.c — a key's rate limits and budget around one inference request.
 *
 * api_limits_begin runs after the routing decision and before anything is sent:
 * it fixes the request's most expensive outcome (the body's bytes as an upper bound
 * on prompt tokens, max_tokens of output, at the price of the dearest tier the
 * decision could end on, twice when a cascade may pay for two answers), takes the
 * rate-limit tokens, and reserves that cost from the key's budget in the store.
 * api_limits_end gives back the unused tokens and settles the real cost.
 */
#include "api/app_impl.h"
#include <stdio.h>
#include <string.h>

#include "api/budget.h"

/* Output tokens assumed when a budgeted request does not set max_tokens; the
 * request is then sent with this max_tokens so the reservation stays a bound. */
#define LIMITS_DEFAULT_MAX_TOKENS 4096u

/* Prompt tokens never exceed the bytes of what is sent (every token covers at least
 * one byte), plus what a chat template adds per message. Everything a tier is sent
 * (messages, tools and their schemas, stop strings, unknown fields...) is rendered
 * from strings of the client's body, and a JSON string decodes to no more bytes
 * than its encoding, so the body's size bounds them all. */
static uint32_t prompt_token_bound(const api_call_t *c)
{
    uint64_t n = (uint64_t)c->body_bytes + 16u * (uint64_t)c->req.n_messages + 16u;
    return n > UINT32_MAX / 2 ? UINT32_MAX / 2 : (uint32_t)n;
}

/* The dearest cost this decision can run up: any tier it may fail over, spill or
 * escalate to (only local ones when the request must stay local). */
static double max_cost(const api_app_t *app, const route_decision_t *d, uint32_t in, uint32_t out)
{
    double m = 0;
    for (size_t i = 0; i < app->n_tiers; i++) {
        const tier_t *t = &app->tiers[i];
        if (d->local_only && t->s.privacy == ROUTE_PRIVACY_EXTERNAL) continue;
        double c = tier_cost_usd(t, in, out);
        if (c > m) m = c;
    }
    return d->cascade ? 2 * m : m;
}

static void refuse(api_call_t *c, const char *code, const char *msg, uint32_t retry_after_s)
{
    char ra[16];
    snprintf(ra, sizeof ra, "%u", retry_after_s);
    if (retry_after_s) http_res_header(c->res, "Retry-After", ra);
    api_send_error(c->w, c->res, 429, "rate_limit_error", msg, NULL, code);
    exec_result_t none = {0};
    none.tier = -1;
    api_account(c, &none, 429, 0);
    api_call_put(c);
}

static void on_reserved(void *arg, int rc, double spent_usd, double reserved_usd)
{
    api_call_t *c = arg;
    api_app_t *app = c->w->app;
    const config_key_t *k = &app->cfg->auth.keys[c->key];
    if (rc == 0) {
        c->budget_reserved = c->budget_want;
        if (c->aborted) {
            /* The client left while we waited: nothing is sent, nothing spent (the
             * accounting below settles the reservation at 0). */
            api_send_error(c->w, c->res, 499, "client_closed", "the client went away", NULL, NULL);
            exec_result_t none = {0};
            none.tier = -1;
            api_account(c, &none, 499, 0);
            api_call_put(c);
            return;
        }
        c->limits_cont(c);
        return;
    }
    /* Tokens taken for a request that will not run go back. */
    if (c->tpm_taken) auth_limit_refund(app->auth, c->key, c->tpm_taken);
    c->tpm_taken = 0;
    char msg[300];
    if (rc == SY_EFULL) {
        atomic_fetch_add(&app->metrics.budget_refused, 1);
        snprintf(msg, sizeof msg,
                 "budget exceeded for key '%s': %.6f of %.2f USD spent this %s, %.6f USD "
                 "reserved by requests in flight, and this request may cost up to %.6f USD",
                 k->name, spent_usd, k->budget_usd,
                 (const char *[]){"day", "week", "month", "budget"}[k->budget_period], reserved_usd,
                 c->budget_want);
        refuse(c, "budget_exceeded", msg, 0);
    } else {
        snprintf(msg, sizeof msg, "the budget store failed: %s", sy_strerror(rc));
        api_send_error(c->w, c->res, 503, "store_unavailable", msg, NULL, NULL);
        exec_result_t none = {0};
        none.tier = -1;
        api_account(c, &none, 503, 0);
        api_call_put(c);
    }
}

int api_limits_begin(api_call_t *c, void (*cont)(api_call_t *c))
{
    api_app_t *app = c->w->app;
    if (c->key < 0) return 0;
    const config_key_t *k = &app->cfg->auth.keys[c->key];
    uint32_t out = c->req.max_tokens;
    if (!out && !c->embeddings && (k->budget_set || k->tpm)) {
        out = LIMITS_DEFAULT_MAX_TOKENS;
        api_request_set_max_tokens(&c->req, out);
        c->rest_ok = false; /* a body rendered ahead no longer matches */
    }
    /* n choices: each may run to max_tokens (embeddings generate nothing). */
    if (c->embeddings)
        out = 0;
    else if (c->req.num_set >> API_F_N & 1)
        out = (uint32_t)((uint64_t)out * (uint32_t)c->req.num[API_F_N] > UINT32_MAX / 2
                             ? UINT32_MAX / 2
                             : (uint64_t)out * (uint32_t)c->req.num[API_F_N]);
    uint32_t in = prompt_token_bound(c);
    if (k->rpm || k->tpm) {
        uint32_t retry = 0;
        const char *which = "";
        uint64_t want = (uint64_t)in + out;
        uint32_t tokens = want > UINT32_MAX ? UINT32_MAX : (uint32_t)want;
        if (auth_limit_take(app->auth, c->key, tokens, clock_mono_ms(), &retry, &which)) {
            atomic_fetch_add(&app->metrics.rate_limited, 1);
            char msg[200];
            snprintf(msg, sizeof msg, "rate limit reached for key '%s' (%s %u); retry in %u s",
                     k->name, which, !strcmp(which, "rpm") ? k->rpm : k->tpm, retry);
            refuse(c, "rate_limit_exceeded", msg, retry);
            return -1;
        }
        c->tpm_taken = k->tpm ? tokens : 0;
    }
    if (!k->budget_set) return 0;
    c->budget_want = max_cost(app, &c->d, in, out);
    c->limits_cont = cont;
    int rc = budget_reserve(app->budget, http_res_loop(c->res), c->key, c->ts_ms, c->budget_want,
                            &c->budget_period, on_reserved, c);
    if (rc == 0) {
        c->budget_reserved = c->budget_want; /* from this gateway's lease */
        return 0;
    }
    if (rc < 0) {
        if (c->tpm_taken) auth_limit_refund(app->auth, c->key, c->tpm_taken);
        c->tpm_taken = 0;
        refuse(c, "budget_busy", "too many budget reservations are waiting; retry shortly", 1);
        return -1;
    }
    return 1;
}

void api_limits_end(api_call_t *c, const exec_result_t *r, double cost)
{
    api_app_t *app = c->w->app;
    if (c->key < 0) return;
    if (c->tpm_taken) {
        uint64_t used = r ? (uint64_t)r->tokens_in + r->tokens_out : 0;
        if (used < c->tpm_taken)
            auth_limit_refund(app->auth, c->key, c->tpm_taken - (uint32_t)used);
        c->tpm_taken = 0;
    }
    if (c->budget_reserved > 0) {
        const config_key_t *k = &app->cfg->auth.keys[c->key];
        if (cost > c->budget_reserved)
            log_warn("budget: request %s cost %.6f USD, more than the %.6f USD reserved for key "
                     "'%s' (an upstream ignored max_tokens?)",
                     c->id, cost, c->budget_reserved, k->name);
        budget_settle(app->budget, http_res_loop(c->res), c->key, c->budget_period,
                      c->budget_reserved, cost);
        c->budget_reserved = 0;
    }
}

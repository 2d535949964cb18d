/* router.c — the pure routing decision: features, hard constraints, token budget,
 * policy (rules or bandit), tier state, reason trace. */
#include "route/router.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/jsonw.h"
#include "base/mem.h"

/* Findings held per text: the scratch starts with ROUTE_SPANS_INIT and grows, once
 * per thread, up to ROUTE_MAX_SPANS (a text with more is rescanned into the larger
 * buffer). Past ROUTE_MAX_SPANS the rest are unseen: the request is then taken to
 * hold PII_UNKNOWN too, which fails closed. */
#define ROUTE_SPANS_INIT 64
#define ROUTE_MAX_SPANS  (1u << 16)

struct router {
    route_config_t cfg;
    const pii_scanner_t *pii; /* borrowed, may be NULL */
    route_model_t *cls;       /* owned, may be NULL */
    route_model_t *cloud;     /* owned, may be NULL */
    route_bandit_t *bandit;   /* owned; arms = tier indexes */
    route_bandit_t *pending;  /* owned; feedback not yet taken by router_bandit_take */
    pthread_rwlock_t lock;    /* guards bandit and pending: decide reads, feedback writes */
};

struct router_scratch {
    pii_scratch_t *pii;
    pii_span_t *spans; /* (cap) findings of one text */
    size_t cap;
    uint32_t idx[ROUTE_NGRAM_MAX];  /* n-gram buckets of the last user text */
    uint32_t idx2[ROUTE_NGRAM_MAX]; /* the same, masked to a smaller model's buckets */
};

void route_config_defaults(route_config_t *c)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < PII_TYPE_COUNT; i++)
        c->pii_action[i] = ROUTE_PII_LOCAL_ONLY;
    /* Names are everywhere in ordinary prose (stories, support mail): keeping every
     * such request local would route on names rather than need; masking them keeps
     * them off the wire and lets the rest of the policy decide. */
    c->pii_action[PII_PERSON] = ROUTE_PII_MASK;
    c->pii_min_score = 0.5f;
    c->cloud_above_tokens = 1024;
    c->policy = ROUTE_POLICY_RULES;
    c->escalation_enabled = true;
    c->escalation_min_confidence = 0.55f;
    c->policy_threshold = -1.0f;
    route_bandit_opts_defaults(&c->bandit);
}

/* A finding of unknown type fails closed: kept local, or refused under block. */
static route_pii_action_t unknown_action(route_pii_action_t a)
{
    return a == ROUTE_PII_BLOCK ? ROUTE_PII_BLOCK : ROUTE_PII_LOCAL_ONLY;
}

/* ----------------------------------------------------------- capabilities --- */

static const char *const cap_names[ROUTE_CAP_COUNT] = {"tools", "json",       "vision",
                                                       "audio", "embeddings", "continue"};

const char *route_cap_name(route_cap_t c)
{
    return (unsigned)c < ROUTE_CAP_COUNT ? cap_names[c] : "?";
}

int route_cap_parse(const char *name, route_cap_t *out)
{
    for (int i = 0; name && i < ROUTE_CAP_COUNT; i++)
        if (!strcmp(name, cap_names[i])) {
            *out = (route_cap_t)i;
            return 0;
        }
    return SY_EINVAL;
}

void route_caps_names(uint32_t caps, const char *sep, char *out, size_t cap)
{
    size_t used = 0;
    if (!cap) return;
    out[0] = 0;
    for (int i = 0; i < ROUTE_CAP_COUNT; i++) {
        if (!(caps & (1u << i))) continue;
        int n = snprintf(out + used, cap - used, "%s%s", used ? sep : "", cap_names[i]);
        if (n < 0 || (size_t)n >= cap - used) return;
        used += (size_t)n;
    }
}

/* ------------------------------------------------------------------- life --- */

router_t *router_new(const route_config_t *cfg, const pii_scanner_t *pii, char *err, size_t errlen)
{
    if (!cfg) {
        snprintf(err, errlen, "no routing configuration");
        return NULL;
    }
    if (cfg->pii_min_score < 0 || cfg->pii_min_score > 1 || cfg->escalation_min_confidence < 0 ||
        cfg->escalation_min_confidence > 1 || cfg->policy_threshold > 1) {
        snprintf(err, errlen, "routing thresholds must lie in 0..1");
        return NULL;
    }
    router_t *r = mem_calloc(1, sizeof *r);
    r->cfg = *cfg;
    r->cfg.pii_action[PII_UNKNOWN] = unknown_action(cfg->pii_action[PII_UNKNOWN]);
    r->pii = pii;
    r->bandit = route_bandit_new(ROUTE_MAX_TIERS, &cfg->bandit);
    r->pending = route_bandit_new(ROUTE_MAX_TIERS, &cfg->bandit);
    pthread_rwlock_init(&r->lock, NULL);
    return r;
}

void router_free(router_t *r)
{
    if (!r) return;
    route_model_free(r->cls);
    route_model_free(r->cloud);
    route_bandit_free(r->bandit);
    route_bandit_free(r->pending);
    pthread_rwlock_destroy(&r->lock);
    mem_free(r);
}

int router_set_classifier(router_t *r, route_model_t *m)
{
    if (m && (m->kind != ROUTE_MODEL_CLASSIFIER || m->n_out != ROUTE_TASK_COUNT ||
              m->n_dense > ROUTE_DENSE_BASE))
        return SY_EINVAL;
    route_model_free(r->cls);
    r->cls = m;
    return 0;
}

int router_set_cloud_model(router_t *r, route_model_t *m)
{
    if (m && (m->kind != ROUTE_MODEL_CLOUD || m->n_out < 1 || m->n_out > 2 ||
              m->n_dense > ROUTE_CLOUD_DENSE_DIM))
        return SY_EINVAL;
    route_model_free(r->cloud);
    r->cloud = m;
    return 0;
}

const route_model_t *router_classifier(const router_t *r)
{
    return r->cls;
}

const route_model_t *router_cloud_model(const router_t *r)
{
    return r->cloud;
}

router_scratch_t *router_scratch_new(const router_t *r)
{
    router_scratch_t *s = mem_calloc(1, sizeof *s);
    if (r && r->pii) s->pii = pii_scratch_new(r->pii);
    s->cap = ROUTE_SPANS_INIT;
    s->spans = mem_alloc(s->cap * sizeof *s->spans);
    return s;
}

void router_scratch_free(router_scratch_t *s)
{
    if (!s) return;
    if (s->pii) pii_scratch_free(s->pii);
    mem_free(s->spans);
    mem_free(s);
}

/* --------------------------------------------------------------- features --- */

/* The text the answer responds to: the last user text, else the last text. */
static const route_text_t *last_text(const route_input_t *in)
{
    for (size_t i = in->n_texts; i > 0; i--)
        if (in->texts[i - 1].role && !strcmp(in->texts[i - 1].role, "user"))
            return &in->texts[i - 1];
    return in->n_texts ? &in->texts[in->n_texts - 1] : NULL;
}

/* Marker-only guess of the class when no classifier is loaded: enough for the
 * simple-vs-complex rule on code and math. */
static void heuristic_task(route_features_t *f)
{
    for (int k = 0; k < ROUTE_TASK_COUNT; k++)
        f->task_prob[k] = 0.0f;
    int t = ROUTE_TASK_CHAT;
    if (f->code_score >= 0.35f)
        t = ROUTE_TASK_CODE;
    else if (f->math_score >= 0.35f)
        t = ROUTE_TASK_MATH;
    else if (f->question)
        t = ROUTE_TASK_KNOWLEDGE_QA;
    f->task_prob[t] = 1.0f;
    f->task = t;
}

static void predict_out(route_features_t *f)
{
    double e = 0;
    for (int k = 0; k < ROUTE_TASK_COUNT; k++) {
        uint32_t t = route_task_typical_out((route_task_t)k);
        if (!t) t = f->est_tokens_in < 4000 ? f->est_tokens_in + 16 : 4000;
        e += f->task_prob[k] * (double)t;
    }
    f->pred_tokens_out = (uint32_t)(e + 0.5);
    f->est_tokens_out = f->max_tokens ? f->max_tokens : f->pred_tokens_out;
}

/* The n-gram buckets for model m given the pass in s->idx (computed at nb buckets
 * with the larger model's seed): s->idx itself, a masked copy in s->idx2, or NULL
 * when m hashes with another seed (the caller hashes again). */
static const uint32_t *ngram_view(router_scratch_t *s, size_t n, uint32_t nb, uint64_t seed,
                                  const route_model_t *m)
{
    if (m->seed != seed || m->n_buckets > nb) return NULL;
    if (m->n_buckets == nb) return s->idx;
    uint32_t mask = m->n_buckets - 1;
    for (size_t i = 0; i < n; i++)
        s->idx2[i] = s->idx[i] & mask;
    return s->idx2;
}

int router_features(const router_t *r, router_scratch_t *s, const route_input_t *in,
                    route_features_t *f)
{
    if (!r || !s || !in || !f || (in->n_texts && !in->texts)) return SY_EINVAL;
    memset(f, 0, sizeof *f);
    f->cloud_score = -1.0f;
    f->n_messages = in->n_messages;
    f->max_tokens = in->max_tokens;

    /* PII over every text: any part of the request may leave with it. */
    if (r->pii && s->pii) {
        for (size_t i = 0; i < in->n_texts; i++) {
            size_t found = 0;
            int rc = pii_scan(r->pii, s->pii, in->texts[i].text, in->texts[i].len, s->spans, s->cap,
                              &found);
            if (rc) return rc;
            if (found > s->cap && s->cap < ROUTE_MAX_SPANS) {
                s->cap = found < ROUTE_MAX_SPANS ? found : ROUTE_MAX_SPANS;
                s->spans = mem_realloc(s->spans, s->cap * sizeof *s->spans);
                rc = pii_scan(r->pii, s->pii, in->texts[i].text, in->texts[i].len, s->spans, s->cap,
                              &found);
                if (rc) return rc;
            }
            if (found > s->cap) {
                /* The findings past the buffer are unseen: their types are unknown. */
                f->pii_types |= 1u << PII_UNKNOWN;
                found = s->cap;
            }
            for (size_t k = 0; k < found; k++) {
                if (s->spans[k].score < r->cfg.pii_min_score) continue;
                f->pii_types |= 1u << s->spans[k].type;
                if (s->spans[k].score > f->pii_max_score) f->pii_max_score = s->spans[k].score;
            }
        }
    }

    const route_text_t *last = last_text(in);
    route_features_text(f, in->texts, in->n_texts, last);

    /* Task classes and the need-of-cloud score share one n-gram pass when both
     * models hash with the same seed: buckets are hash & (n-1), so the smaller
     * model's indexes are the larger one's masked. */
    const route_model_t *cls = r->cls, *cl = r->cloud;
    float dense[ROUTE_DENSE_DIM];
    size_t n_idx = 0;
    uint32_t nb = 0;
    uint64_t seed = 0;
    if (last && (cls || cl)) {
        const route_model_t *big = !cls                             ? cl
                                   : !cl                            ? cls
                                   : cl->n_buckets > cls->n_buckets ? cl
                                                                    : cls;
        nb = big->n_buckets;
        seed = big->seed;
        n_idx = route_ngrams(last->text, last->len, big->seed, nb, s->idx, ROUTE_NGRAM_MAX);
    }
    if (cls && last) {
        const uint32_t *idx = ngram_view(s, n_idx, nb, seed, cls);
        if (!idx)
            idx = s->idx2, n_idx = route_ngrams(last->text, last->len, cls->seed, cls->n_buckets,
                                                s->idx2, ROUTE_NGRAM_MAX);
        route_features_dense(f, dense);
        route_model_predict(cls, idx, n_idx < ROUTE_CLASS_NGRAMS ? n_idx : ROUTE_CLASS_NGRAMS,
                            dense, f->task_prob);
        f->has_classifier = true;
        f->task = 0;
        for (int k = 1; k < ROUTE_TASK_COUNT; k++)
            if (f->task_prob[k] > f->task_prob[f->task]) f->task = k;
    } else {
        heuristic_task(f);
    }
    predict_out(f);
    if (cl && last) {
        const uint32_t *idx = ngram_view(s, n_idx, nb, seed, cl);
        if (!idx)
            idx = s->idx2, n_idx = route_ngrams(last->text, last->len, cl->seed, cl->n_buckets,
                                                s->idx2, ROUTE_NGRAM_MAX);
        float cd[ROUTE_CLOUD_DENSE_DIM];
        route_features_dense_cloud(f, cd);
        f->cloud_score = route_model_cloud_score(cl, idx, n_idx, cd);
        f->cloud_score = route_model_cloud_text(cl, f->cloud_score, last->text, last->len);
    }
    return 0;
}

/* ---------------------------------------------------------------- decision --- */

static void reason(route_decision_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reason(route_decision_t *d, const char *fmt, ...)
{
    if (d->n_reasons >= ROUTE_MAX_REASONS) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->reasons[d->n_reasons++], ROUTE_REASON_LEN, fmt, ap);
    va_end(ap);
}

static void refuse(route_decision_t *d, route_refusal_t why, int status)
{
    d->refusal = why;
    d->status = status;
}

static const char *pii_action_name(route_pii_action_t a)
{
    switch (a) {
    case ROUTE_PII_LOCAL_ONLY:
        return "local_only";
    case ROUTE_PII_MASK:
        return "mask";
    case ROUTE_PII_BLOCK:
        return "block";
    default:
        return "allow";
    }
}

/* Policy stage: sets *cloud (prefer a cloud tier) from the rules, or returns the
 * bandit's ranking of the usable tiers in rank[] (count in *n_rank). */
static void policy_rules(const router_t *r, const route_features_t *f, route_decision_t *d,
                         bool *cloud)
{
    route_task_t t = (route_task_t)f->task;
    if (route_task_is_simple(t))
        reason(d, "task:%s->edge", route_task_name(t));
    else if (route_task_is_complex(t))
        reason(d, "task:%s->cloud", route_task_name(t));
    else
        reason(d, "task:%s", route_task_name(t));
    if (r->cloud && f->cloud_score >= 0) {
        float th = r->cfg.policy_threshold >= 0 ? r->cfg.policy_threshold : r->cloud->threshold;
        *cloud = f->cloud_score > th;
        reason(d, "policy:score=%.2f%s%.2f->%s", f->cloud_score, *cloud ? ">" : "<=", th,
               *cloud ? "cloud" : "edge");
    } else {
        *cloud = route_task_is_complex(t);
    }
}

int router_decide(const router_t *r, router_scratch_t *s, const route_input_t *in,
                  const route_tier_t *tiers, size_t n_tiers, route_decision_t *out)
{
    if (!r || !s || !in || !out || (n_tiers && !tiers) || n_tiers > ROUTE_MAX_TIERS)
        return SY_EINVAL;
    route_decision_t *d = out;
    memset(d, 0, offsetof(route_decision_t, reasons));
    d->n_reasons = 0;
    d->prefer_cloud = false;
    d->tier = -1;
    d->min_confidence = r->cfg.escalation_min_confidence;
    int rc = router_features(r, s, in, &d->features);
    if (rc) return rc;
    const route_features_t *f = &d->features;
    d->pii_types = f->pii_types | (in->pii_extra & ((1u << PII_TYPE_COUNT) - 1));
    if (in->pii_unknown) d->pii_types |= 1u << PII_UNKNOWN;
    d->est_tokens_in = f->est_tokens_in;
    d->est_tokens_out = f->est_tokens_out;

    /* 1. Hard constraints: model name, forced tier, privacy, capabilities, context. */
    if (in->unknown_model) {
        reason(d, "model:%.40s(unknown)", in->unknown_model);
        refuse(d, ROUTE_REFUSE_UNKNOWN_MODEL, SY_ENOTFOUND);
        return 0;
    }
    int forced = -1;
    if (in->forced_tier) {
        for (size_t i = 0; i < n_tiers; i++)
            if (tiers[i].name && !strcmp(tiers[i].name, in->forced_tier)) forced = (int)i;
        if (forced < 0) {
            reason(d, "forced:%.40s(unknown)", in->forced_tier);
            refuse(d, ROUTE_REFUSE_UNKNOWN_TIER, SY_EINVAL);
            return 0;
        }
        reason(d, "forced:%s", tiers[forced].name);
    }
    bool blocked = false;
    for (int t = 0; t < PII_TYPE_COUNT; t++) {
        if (!(d->pii_types & (1u << t))) continue;
        route_pii_action_t a = r->cfg.pii_action[t];
        if (a == ROUTE_PII_ALLOW) continue;
        if (a == ROUTE_PII_MASK && (in->pii_unmasked & (1u << t))) {
            /* The gateway could not mask every value of it: it stays on this machine. */
            reason(d, "pii:%s->mask->local_only", pii_type_name((pii_type_t)t));
            d->local_only = true;
            continue;
        }
        reason(d, "pii:%s->%s", pii_type_name((pii_type_t)t), pii_action_name(a));
        if (a == ROUTE_PII_BLOCK) blocked = true;
        if (a == ROUTE_PII_LOCAL_ONLY) d->local_only = true;
    }
    if (blocked) {
        refuse(d, ROUTE_REFUSE_PII_BLOCKED, SY_EPRIVACY);
        return 0;
    }
    if (in->privacy_local_only) {
        d->local_only = true;
        reason(d, "client:privacy->local_only");
    }
    if (in->session_private) {
        d->local_only = true;
        reason(d, "session:private->local_only");
    }
    uint32_t allowed = 0; /* bit i: tier i may see this request */
    for (size_t i = 0; i < n_tiers; i++)
        if (!d->local_only || tiers[i].privacy != ROUTE_PRIVACY_EXTERNAL) allowed |= 1u << i;
    if (forced >= 0) {
        if (!(allowed & (1u << forced))) {
            /* The client named a tier the data may not reach: refuse, never reroute. */
            reason(d, "skip:%s(external)", tiers[forced].name);
            refuse(d, ROUTE_REFUSE_FORCED_EXTERNAL, SY_EPRIVACY);
            return 0;
        }
        allowed = 1u << forced;
    }
    d->needs = in->needs & ROUTE_CAPS_ALL;
    if (d->needs) {
        char names[64];
        route_caps_names(d->needs, "+", names, sizeof names);
        reason(d, "cap:%s", names);
        uint32_t before = allowed, have = 0;
        for (size_t i = 0; i < n_tiers; i++) {
            if (!(allowed & (1u << i))) continue;
            have |= tiers[i].caps;
            uint32_t lack = d->needs & ~tiers[i].caps;
            if (!lack) continue;
            route_caps_names(lack, "+", names, sizeof names);
            reason(d, "skip:%s(no %s)", tiers[i].name, names);
            allowed &= ~(1u << i);
        }
        if (before && !allowed) {
            d->caps_missing = d->needs & ~have;
            if (!d->caps_missing) d->caps_missing = d->needs; /* each on some tier, none all */
            refuse(d, ROUTE_REFUSE_CAPABILITY, SY_EUNSUPPORTED);
            return 0;
        }
    }
    uint64_t need = (uint64_t)f->est_tokens_in + in->max_tokens;
    d->need_context = need > UINT32_MAX ? UINT32_MAX : (uint32_t)need;
    uint32_t before = allowed;
    for (size_t i = 0; i < n_tiers; i++)
        if ((allowed & (1u << i)) && tiers[i].max_context && need > tiers[i].max_context) {
            reason(d, "skip:%s(context %u>%u)", tiers[i].name, d->need_context,
                   tiers[i].max_context);
            allowed &= ~(1u << i);
        }
    if (before && !allowed) {
        refuse(d, ROUTE_REFUSE_CONTEXT, SY_ECONTEXT);
        return 0;
    }

    /* 2. Token budget; 3. policy. A forced tier needs neither. */
    bool cloud = false, by_budget = false;
    double scores[ROUTE_MAX_TIERS];
    bool ranked = false;
    if (forced < 0) {
        if (r->cfg.cloud_above_tokens && f->est_tokens_out > r->cfg.cloud_above_tokens) {
            cloud = by_budget = true;
            reason(d, "budget:est_out=%u>%u->cloud", f->est_tokens_out, r->cfg.cloud_above_tokens);
        }
        if (r->cfg.policy == ROUTE_POLICY_BANDIT) {
            uint32_t mask = 0, cloud_mask = 0;
            for (size_t i = 0; i < n_tiers; i++) {
                if (!(allowed & (1u << i)) || !tiers[i].healthy || tiers[i].saturated) continue;
                mask |= 1u << i;
                if (tiers[i].role == ROUTE_ROLE_CLOUD) cloud_mask |= 1u << i;
            }
            /* The budget is a hard mask on arms where a cloud tier can serve. */
            if (by_budget && cloud_mask) mask = cloud_mask;
            float x[ROUTE_DENSE_DIM];
            route_features_dense(f, x);
            pthread_rwlock_rdlock((pthread_rwlock_t *)&r->lock);
            int arm = mask ? route_bandit_choose(r->bandit, x, mask, in->rand_seed, scores) : -1;
            pthread_rwlock_unlock((pthread_rwlock_t *)&r->lock);
            if (arm >= 0) {
                ranked = true;
                cloud = tiers[arm].role == ROUTE_ROLE_CLOUD;
                reason(d, "bandit:%s(%.2f)", tiers[arm].name, scores[arm]);
            }
        } else if (!by_budget) {
            policy_rules(r, f, d, &cloud);
        }
    }
    d->prefer_cloud = cloud;

    /* Preference order: the bandit's scores, or the preferred role first; config
     * order within a role. Then 4. tier state. */
    int cand[ROUTE_MAX_TIERS], nc = 0;
    for (int pass = 0; pass < 2 && !ranked; pass++)
        for (size_t i = 0; i < n_tiers; i++) {
            bool is_cloud = tiers[i].role == ROUTE_ROLE_CLOUD;
            if ((allowed & (1u << i)) && (is_cloud == cloud) == (pass == 0)) cand[nc++] = (int)i;
        }
    if (ranked) {
        for (size_t i = 0; i < n_tiers; i++)
            if (allowed & (1u << i)) cand[nc++] = (int)i;
        for (int i = 1; i < nc; i++) /* insertion sort by score, masked tiers last */
            for (int j = i; j > 0; j--) {
                double a = tiers[cand[j]].healthy && !tiers[cand[j]].saturated ? scores[cand[j]]
                                                                               : -INFINITY;
                double b = tiers[cand[j - 1]].healthy && !tiers[cand[j - 1]].saturated
                               ? scores[cand[j - 1]]
                               : -INFINITY;
                if (!(a > b)) break;
                int t = cand[j];
                cand[j] = cand[j - 1];
                cand[j - 1] = t;
            }
    }
    for (int k = 0; k < nc; k++) {
        const route_tier_t *t = &tiers[cand[k]];
        if (!t->healthy)
            reason(d, "skip:%s(unhealthy)", t->name);
        else if (t->saturated)
            reason(d, "skip:%s(saturated)", t->name);
        else
            d->order[d->n_order++] = cand[k];
    }
    if (d->n_order == 0) {
        refuse(d, ROUTE_REFUSE_UNAVAILABLE, SY_EUNAVAILABLE);
        return 0;
    }
    d->tier = d->order[0];
    const route_tier_t *chosen = &tiers[d->tier];
    reason(d, "tier:%s", chosen->name);
    bool cloud_in_order = false;
    for (int k = 0; k < d->n_order; k++)
        if (tiers[d->order[k]].role == ROUTE_ROLE_CLOUD) cloud_in_order = true;
    d->degraded = cloud && chosen->role == ROUTE_ROLE_EDGE;
    /* Cascade: the edge answers and scores its answer; below min_confidence it is
     * re-run on a cloud tier of the order. Under local_only (not forced) no cloud tier
     * is eligible, yet the edge still scores its answer so a low-confidence one is
     * marked as such. */
    d->cascade = r->cfg.escalation_enabled && chosen->role == ROUTE_ROLE_EDGE &&
                 chosen->has_logprobs && (cloud_in_order || (d->local_only && forced < 0));
    return 0;
}

/* ----------------------------------------------------------------- bandit --- */

int router_feedback(router_t *r, const route_features_t *f, int tier, double reward)
{
    if (!r || !f) return SY_EINVAL;
    float x[ROUTE_DENSE_DIM];
    route_features_dense(f, x);
    pthread_rwlock_wrlock(&r->lock);
    int rc = route_bandit_update(r->bandit, tier, x, reward);
    if (!rc) route_bandit_update(r->pending, tier, x, reward);
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

int router_bandit_save(const router_t *r, buf_t *out)
{
    pthread_rwlock_rdlock((pthread_rwlock_t *)&r->lock);
    int rc = route_bandit_save(r->bandit, out);
    pthread_rwlock_unlock((pthread_rwlock_t *)&r->lock);
    return rc;
}

int router_bandit_load(router_t *r, const void *blob, size_t n, char *err, size_t errlen)
{
    pthread_rwlock_wrlock(&r->lock);
    int rc = route_bandit_load(r->bandit, blob, n, err, errlen);
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

int router_bandit_merge(router_t *r, const void *blob, size_t n, char *err, size_t errlen)
{
    route_bandit_t *delta = route_bandit_new(ROUTE_MAX_TIERS, &r->cfg.bandit);
    int rc = route_bandit_load(delta, blob, n, err, errlen);
    if (!rc) {
        pthread_rwlock_wrlock(&r->lock);
        rc = route_bandit_merge(r->bandit, delta);
        pthread_rwlock_unlock(&r->lock);
    }
    route_bandit_free(delta);
    return rc;
}

size_t router_bandit_sums_len(const router_t *r)
{
    return route_bandit_sums_len(r->bandit);
}

bool router_bandit_take(router_t *r, double *acc)
{
    bool any = false;
    pthread_rwlock_wrlock(&r->lock);
    for (int k = 0; k < route_bandit_arms(r->pending) && !any; k++)
        any = route_bandit_count(r->pending, k) > 0;
    if (any) {
        route_bandit_sums_add_to(r->pending, acc);
        route_bandit_reset(r->pending);
    }
    pthread_rwlock_unlock(&r->lock);
    return any;
}

int router_bandit_set_total(router_t *r, const double *total, size_t n)
{
    pthread_rwlock_wrlock(&r->lock);
    int rc = route_bandit_sums_set(r->bandit, total, n);
    if (!rc) rc = route_bandit_merge(r->bandit, r->pending);
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

int router_bandit_load_pending(router_t *r, const void *blob, size_t n, char *err, size_t errlen)
{
    pthread_rwlock_wrlock(&r->lock);
    int rc = route_bandit_load(r->pending, blob, n, err, errlen);
    if (!rc) rc = route_bandit_merge(r->bandit, r->pending);
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

void router_bandit_arm_totals(const router_t *r, int arm, uint64_t *n, double *reward_sum,
                              uint64_t *pending)
{
    double ignored;
    pthread_rwlock_rdlock((pthread_rwlock_t *)&r->lock);
    route_bandit_arm_totals(r->bandit, arm, n, reward_sum);
    route_bandit_arm_totals(r->pending, arm, pending, &ignored);
    pthread_rwlock_unlock((pthread_rwlock_t *)&r->lock);
}

/* ------------------------------------------------------------- confidence --- */

/* Coefficients of the logistic calibration (docs/routing.md, "Confidence"). */
#define CONF_A 1.6f  /* mean logprob */
#define CONF_B 0.25f /* min logprob */
#define CONF_C -0.8f /* mean entropy */
#define CONF_D 2.2f

void route_confidence(const float *lp, size_t n, const float *ent, route_confidence_t *out)
{
    memset(out, 0, sizeof *out);
    if (!lp || n == 0) {
        out->confidence = 0.5f;
        return;
    }
    double sum = 0, se = 0;
    float mn = 0;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        float v = lp[i];
        if (!isfinite(v)) v = -30.0f; /* -inf: the token had no probability mass */
        if (v > 0) v = 0;
        sum += v;
        if (v < mn) mn = v;
        if (ent && isfinite(ent[i])) se += ent[i], m++;
    }
    out->mean_logprob = (float)(sum / (double)n);
    out->min_logprob = mn;
    out->mean_entropy = ent && m ? (float)(se / (double)m) : -out->mean_logprob;
    float z = CONF_A * out->mean_logprob + CONF_B * fmaxf(mn, -20.0f) + CONF_C * out->mean_entropy +
              CONF_D;
    out->confidence = 1.0f / (1.0f + expf(-z));
}

/* ------------------------------------------------------------------- JSON --- */

void route_decision_write_json(const route_decision_t *d, const route_tier_t *tiers,
                               struct jsonw *w)
{
    jsonw_obj_begin(w);
    jsonw_key(w, "tier");
    if (d->tier >= 0 && tiers && tiers[d->tier].name)
        jsonw_str(w, tiers[d->tier].name);
    else
        jsonw_null(w);
    jsonw_key(w, "order");
    jsonw_arr_begin(w);
    for (int i = 0; i < d->n_order; i++)
        if (tiers && tiers[d->order[i]].name)
            jsonw_str(w, tiers[d->order[i]].name);
        else
            jsonw_int(w, d->order[i]);
    jsonw_arr_end(w);
    jsonw_key(w, "status");
    jsonw_str(w, d->status ? sy_strerror(d->status) : "ok");
    char caps[96];
    if (d->needs) {
        route_caps_names(d->needs, ",", caps, sizeof caps);
        jsonw_key(w, "needs");
        jsonw_str(w, caps);
    }
    if (d->caps_missing) {
        route_caps_names(d->caps_missing, ",", caps, sizeof caps);
        jsonw_key(w, "missing");
        jsonw_str(w, caps);
    }
    jsonw_key(w, "local_only");
    jsonw_bool(w, d->local_only);
    jsonw_key(w, "cascade");
    jsonw_bool(w, d->cascade);
    if (d->cascade) {
        jsonw_key(w, "min_confidence");
        jsonw_double(w, d->min_confidence);
    }
    jsonw_key(w, "degraded");
    jsonw_bool(w, d->degraded);
    jsonw_key(w, "pii");
    jsonw_arr_begin(w);
    for (int t = 0; t < PII_TYPE_COUNT; t++)
        if (d->pii_types & (1u << t)) jsonw_str(w, pii_type_name((pii_type_t)t));
    jsonw_arr_end(w);
    jsonw_key(w, "est_tokens_in");
    jsonw_uint(w, d->est_tokens_in);
    jsonw_key(w, "est_tokens_out");
    jsonw_uint(w, d->est_tokens_out);
    jsonw_key(w, "reasons");
    jsonw_arr_begin(w);
    for (int i = 0; i < d->n_reasons; i++)
        jsonw_str(w, d->reasons[i]);
    jsonw_arr_end(w);

    const route_features_t *f = &d->features;
    jsonw_key(w, "features");
    jsonw_obj_begin(w);
    jsonw_key(w, "prompt_bytes");
    jsonw_uint(w, f->prompt_bytes);
    jsonw_key(w, "n_messages");
    jsonw_uint(w, f->n_messages);
    jsonw_key(w, "max_tokens");
    jsonw_uint(w, f->max_tokens);
    jsonw_key(w, "pred_tokens_out");
    jsonw_uint(w, f->pred_tokens_out);
    jsonw_key(w, "pii_max_score");
    jsonw_double(w, f->pii_max_score);
    jsonw_key(w, "code");
    jsonw_double(w, f->code_score);
    jsonw_key(w, "math");
    jsonw_double(w, f->math_score);
    jsonw_key(w, "question");
    jsonw_bool(w, f->question);
    jsonw_key(w, "script");
    jsonw_str(w, route_script_name(f->script));
    jsonw_key(w, "non_ascii");
    jsonw_double(w, f->non_ascii);
    jsonw_key(w, "task");
    jsonw_str(w, route_task_name((route_task_t)f->task));
    jsonw_key(w, "task_source");
    jsonw_str(w, f->has_classifier ? "model" : "markers");
    jsonw_key(w, "task_prob");
    jsonw_obj_begin(w);
    for (int k = 0; k < ROUTE_TASK_COUNT; k++)
        if (f->task_prob[k] >= 0.01f) {
            jsonw_key(w, route_task_name((route_task_t)k));
            jsonw_double(w, roundf(f->task_prob[k] * 1000.0f) / 1000.0f);
        }
    jsonw_obj_end(w);
    jsonw_key(w, "cloud_score");
    if (f->cloud_score >= 0)
        jsonw_double(w, f->cloud_score);
    else
        jsonw_null(w);
    jsonw_obj_end(w);
    jsonw_obj_end(w);
}

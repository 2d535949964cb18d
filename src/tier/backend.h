/* backend.h — a tier backend that reports typed events.
 *
 * A typed backend starts a call for an OpenAI-shaped request, reports what it
 * generates as typed events (a token's text and logprob with its alternatives, a
 * choice's end, the usage) on the caller's worker loop, ends once, and can be
 * cancelled. The in-process engine (tier/local.c) is one: exec reads usage, token
 * logprobs and text from its events as they are, and the client's answer is written
 * from them by tier/oai_writer.c. Nothing is rendered to JSON and parsed back.
 *
 * HTTP tiers (kind openai, anthropic) are byte backends instead: their answer passes
 * through to the client, and exec reads the same facts from the bytes.
 */
#ifndef SY_TIER_BACKEND_H
#define SY_TIER_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "net/loop.h"
#include "net/upstream.h"

struct cJSON;
struct tier;

typedef enum {
    TIER_EV_TOKEN,  /* a generated token of a choice */
    TIER_EV_ECHO,   /* a prompt token echoed ahead of a choice (completions echo) */
    TIER_EV_FINISH, /* a choice ended */
    TIER_EV_USAGE   /* the call's token counts, after the last choice */
} tier_ev_kind_t;

typedef enum { TIER_FINISH_STOP, TIER_FINISH_LENGTH } tier_finish_t;

/* One of the most likely tokens at a position. */
typedef struct tier_alt {
    const char *tok; /* as logprobs name it (the token's text, or "token_id:N") */
    uint32_t len;
    float logprob;
} tier_alt_t;

/* One event. Pointers are borrowed until the callback returns. */
typedef struct tier_ev {
    tier_ev_kind_t kind;
    int choice; /* TOKEN, ECHO, FINISH: the choice's index (0 .. n-1) */
    /* TOKEN, ECHO */
    const char *text; /* what the token adds to the answer's text */
    uint32_t len;
    const char *tok; /* the token as logprobs name it */
    uint32_t tok_len;
    bool call;   /* TOKEN: part of a tool call (text is the call's JSON so far) */
    bool has_lp; /* logprob is set (not for an echoed first prompt token) */
    float logprob;
    int n_alts; /* alternatives the request asked for, most likely first */
    const tier_alt_t *alts;
    /* FINISH */
    tier_finish_t finish;
    bool complete; /* the grammar closed: a tool call is whole */
    /* USAGE */
    uint32_t prompt_tokens, completion_tokens, cached_tokens;
} tier_ev_t;

/* What speculative decoding did for a call, or why it did not. */
typedef struct tier_spec_report {
    bool present;         /* the tier decodes speculatively (a draft or a verifier) */
    const char *verifier; /* across tiers: the verifying tier's name; NULL in-process */
    const char *skipped;  /* across tiers: why this call was not verified (static) */
    bool applied;         /* in-process: the draft was used */
    const char *reason;   /* in-process: why it was not (static) */
    uint32_t drafted, accepted, rounds;
    uint32_t draft_max;    /* across tiers: tokens per round, 0 = adaptive */
    uint32_t local_tokens; /* across tiers: decoded alone after the verifier failed */
    bool degraded;         /* across tiers: the verifier failed mid-answer */
    char error[240];       /* across tiers: why verification stopped, "" */
} tier_spec_report_t;

/* The end of a call, exactly once. */
typedef struct tier_end {
    int status;          /* 200; 400 the request cannot be served as sent; 500 the backend failed */
    const char *type;    /* status != 200: OpenAI error type */
    const char *message; /* status != 200 */
    const tier_spec_report_t *spec; /* status 200: speculative decoding's report */
} tier_end_t;

typedef struct tier_events {
    void (*on_event)(void *arg, const tier_ev_t *ev);
    void (*on_end)(void *arg, const tier_end_t *end);
} tier_events_t;

typedef struct tier_call_opts {
    loop_t *loop;     /* the caller's worker loop: callbacks run there */
    upstream_t *up;   /* that loop's HTTP client (a backend calling another tier) */
    bool local_only;  /* the request holds personal data that must not leave */
    bool completions; /* /v1/completions instead of chat */
    bool stream;      /* events are handed over as they come (else they may wait for the
                         end of the call: no wake-up of the loop per token) */
    bool logprobs;    /* report each token's logprob even when the request does not ask */
} tier_call_opts_t;

/* Whether the request asks for token logprobs in its answer: chat `logprobs: true`,
 * completions `logprobs: N`. One reading for the backend (what it computes) and the
 * writer (what the client gets). */
bool tier_asks_logprobs(const struct cJSON *req, bool completions);

typedef struct tier_backend_ops {
    /* Starts a call for req (read only while start runs); ev runs on o->loop. 0 with
     * *call set, or a negative error (no callback then). */
    int (*start)(struct tier *t, struct cJSON *req, const tier_call_opts_t *o,
                 const tier_events_t *ev, void *arg, void **call);
    /* No callback runs after this returns. */
    void (*cancel)(void *call);
} tier_backend_ops_t;

#endif

/* gate.c — who is calling: the API key (or admin key) a request presents.
 *
 * Without an `auth` section everything is open, as before. With one:
 *   - /healthz and /readyz stay open (load balancers probe them);
 *   - admin endpoints (/v1/costs, /v1/versions, /metrics, /ui) need the admin key;
 *   - everything else needs a configured key or the admin key.
 * The key comes as "Authorization: Bearer <key>" or "x-api-key: <key>" (the
 * Anthropic clients' header). A missing or unknown key is 401, a key without
 * admin rights on an admin endpoint 403, both in OpenAI's error shape. The key is
 * never logged or echoed.
 */
#include "api/app_impl.h"
#include <string.h>
#include <strings.h>

static bool is_admin_path(const char *p)
{
    return !strcmp(p, "/v1/costs") || !strcmp(p, "/metrics") || !strcmp(p, "/v1/versions") ||
           !strcmp(p, "/ui") || !strncmp(p, "/ui/", 4) || !strncmp(p, "/v1/admin/", 10);
}

/* The presented key, or NULL. */
static const char *presented_key(const http_req_t *hr, size_t *n)
{
    size_t len = 0;
    const char *v = http_req_header(hr, "authorization", &len);
    if (v) {
        if (len > 7 && !strncasecmp(v, "Bearer ", 7)) {
            v += 7, len -= 7;
            while (len && *v == ' ')
                v++, len--;
            while (len && v[len - 1] == ' ')
                len--;
            if (len) return *n = len, v;
        }
        return NULL;
    }
    v = http_req_header(hr, "x-api-key", &len);
    if (v && len) return *n = len, v;
    return NULL;
}

/* A refusal in the shape the endpoint's clients read (Anthropic's on /v1/messages). */
static void refuse(api_worker_t *w, const http_req_t *hr, http_res_t *res, int status,
                   const char *type, const char *msg, const char *code)
{
    if (!strcmp(hr->path, "/v1/messages"))
        api_anthropic_send_error(w, res, status, msg);
    else
        api_send_error(w, res, status, type, msg, NULL, code);
}

int api_gate(api_worker_t *w, const http_req_t *hr, http_res_t *res)
{
    api_app_t *app = w->app;
    w->caller_key = -1;
    w->caller_admin = false;
    if (!app->auth) return 0;
    const char *p = hr->path;
    if (!strcmp(p, "/healthz") || !strcmp(p, "/readyz")) return 0;
    size_t n = 0;
    const char *key = presented_key(hr, &n);
    int k = key ? auth_lookup(app->auth, key, n) : -1;
    bool admin = key && k < 0 && auth_is_admin(app->auth, key, n);
    if (k < 0 && !admin) {
        atomic_fetch_add(&app->metrics.auth_refused, 1);
        http_res_header(res, "WWW-Authenticate", "Bearer");
        refuse(w, hr, res, 401, "invalid_request_error",
               key ? "Incorrect API key provided."
                   : "Missing API key: send it as 'Authorization: Bearer <key>' (or "
                     "'x-api-key: <key>').",
               "invalid_api_key");
        return -1;
    }
    if (!admin && is_admin_path(p)) {
        atomic_fetch_add(&app->metrics.auth_refused, 1);
        refuse(w, hr, res, 403, "permission_error",
               "this endpoint needs the admin key (auth.admin_key_env)", "admin_key_required");
        return -1;
    }
    w->caller_key = k;
    w->caller_admin = admin;
    return 0;
}

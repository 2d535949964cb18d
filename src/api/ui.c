/* ui.c — the dashboard page (GET /ui) and its data (GET /v1/admin/dashboard). The
 * page is ui/index.html, compiled in by the Makefile as ui_index_html (xxd -i). */
#include "api/app_impl.h"
#include "ui_page.h"

void api_handle_ui(api_worker_t *w, http_res_t *res)
{
    http_res_header(res, "Cache-Control", "no-store");
    http_res_send(res, 200, "text/html; charset=utf-8", (const char *)ui_index_html,
                  ui_index_html_len);
}

void api_handle_dashboard(api_worker_t *w, http_res_t *res)
{
    api_app_t *app = w->app;
    buf_t *b = &w->scratch;
    buf_reset(b);
    dash_write(&app->dash, &app->metrics, app->tiers, app->n_tiers, clock_wall_ms(), b);
    http_res_header(res, "Cache-Control", "no-store");
    api_send_json(res, 200, b);
}

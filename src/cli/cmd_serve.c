/* cmd_serve.c — `switchyard serve`: run the gateway on a config file. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/check.h"
#include "api/config.h"
#include "api/server.h"
#include "base/err.h"
#include "base/log.h"
#include "net/upstream.h"
#include "cli/cli.h"

static api_app_t *g_app;

static void on_signal(int sig)
{
    if (!g_app) return;
    if (sig == SIGHUP)
        api_app_reload(g_app);
    else
        api_app_stop(g_app);
}

static void serve_usage(FILE *f)
{
    fprintf(f, "usage: switchyard serve -c FILE [--check] [--listen HOST:PORT] [--port-file F]\n\n"
               "Serves the OpenAI-compatible API and routes each request to a tier.\n\n"
               "  -c, --config FILE   configuration (YAML); see configs/default.yaml\n"
               "  --check             validate the configuration and load every file it names\n"
               "                      (models, tokenizers, name lists), then exit (0 if valid)\n"
               "  --listen HOST:PORT  override 'listen' (port 0 = any free port)\n"
               "  --port-file F       write the bound port to F once listening\n"
               "SIGTERM or SIGINT drains in-flight requests, then exits. SIGHUP re-reads the\n"
               "configuration: a valid file applies to new requests, an invalid one is logged\n"
               "and the running configuration stays.\n");
}

int cmd_serve(int argc, char **argv)
{
    const char *path = NULL, *listen = NULL, *port_file = NULL;
    int check = 0;
    if (cli_wants_help(argc, argv)) {
        serve_usage(stdout);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) && i + 1 < argc)
            path = argv[++i];
        else if (!strcmp(argv[i], "--check"))
            check = 1;
        else if (!strcmp(argv[i], "--listen") && i + 1 < argc)
            listen = argv[++i];
        else if (!strcmp(argv[i], "--port-file") && i + 1 < argc)
            port_file = argv[++i];
        else {
            fprintf(stderr, "switchyard serve: unknown argument '%s'\n", argv[i]);
            serve_usage(stderr);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "switchyard serve: -c FILE is required\n");
        serve_usage(stderr);
        return 2;
    }
    config_t cfg;
    char err[512];
    if (config_load(&cfg, path, err, sizeof err)) {
        fprintf(stderr, "switchyard: invalid configuration: %s\n", err);
        config_deinit(&cfg);
        return 1;
    }
    if (listen) {
        const char *colon = strrchr(listen, ':');
        char *end;
        long p = colon ? strtol(colon + 1, &end, 10) : -1;
        if (!colon || *end || p < 0 || p > 65535) {
            fprintf(stderr, "switchyard serve: --listen wants HOST:PORT, got '%s'\n", listen);
            config_deinit(&cfg);
            return 2;
        }
        free(cfg.listen_host);
        cfg.listen_host = strndup(listen, (size_t)(colon - listen));
        cfg.listen_port = (int)p;
    }
    if (check) {
        if (api_config_check(&cfg, err, sizeof err)) {
            fprintf(stderr, "switchyard: invalid configuration: %s\n", err);
            config_deinit(&cfg);
            return 1;
        }
        printf("%s: valid (%zu tiers; every file it names loads)\n", path, cfg.n_tiers);
        config_deinit(&cfg);
        return 0;
    }
    api_app_t *app = api_app_new(&cfg, err, sizeof err);
    if (!app) {
        fprintf(stderr, "switchyard: cannot start: %s\n", err);
        config_deinit(&cfg);
        return 1;
    }
    g_app = app;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int port = api_app_port(app);
    log_info("switchyard %s listening on %s:%d (%zu tiers, config %s)", SY_VERSION, cfg.listen_host,
             port, cfg.n_tiers, path);
    if (port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) || rename(tmp, port_file)) {
            fprintf(stderr, "switchyard serve: cannot write %s\n", port_file);
            api_app_free(app);
            config_deinit(&cfg);
            return 1;
        }
    }
    int rc = api_app_run(app);
    g_app = NULL;
    api_app_free(app);
    upstream_global_cleanup();
    log_info("switchyard stopped");
    config_deinit(&cfg);
    log_thread_cleanup();
    return rc ? 1 : 0;
}
